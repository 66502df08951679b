//! Projection: one expression per output column (also computed columns and sink casts).

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::physical_expr::expressions::{CaseExpr, Column, Literal};
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};

use super::keyed_case::KeyedCase;
use super::StreamOperator;
use crate::error::{EngineError, Result};
use crate::message::{Batch, Message};
use eddy_sql::plan::ProjectExpr;

/// `SELECT expr AS name, ...`
pub struct ProjectOperator {
    exprs: Vec<ProjectExpr>,
    /// Per expression, the form evaluated on the columns it reads only, if it has one.
    narrowed: Vec<Option<Narrowed>>,
    schema: SchemaRef,
}

/// An expression with a CASE, rewritten to read only what it refers to.
///
/// Why: DataFusion's CASE filters the whole batch it is given once per WHEN branch after
/// the first. The Nexmark table's computed `dateTime` is a CASE over three nested structs
/// (`person.dateTime`, `auction.dateTime`, `bid.dateTime`), and filtering the structs cost
/// more than the simple queries' own work. The columns and struct fields it reads are
/// taken from the batch first (a field is its struct's child array: no copy), and the CASE
/// filters only those.
struct Narrowed {
    /// What it reads: columns, and fields of struct columns (`s.f`, `s.f.g`).
    inputs: Vec<Arc<dyn PhysicalExpr>>,
    /// The expression reading input `i` as column `i`.
    expr: Arc<dyn PhysicalExpr>,
    /// `expr` evaluated as a mapping of values, when it is one (see `keyed_case`); known
    /// at the first batch, which gives the inputs' types.
    keyed: std::cell::OnceCell<Option<KeyedCase>>,
}

impl Narrowed {
    fn of(expr: &Arc<dyn PhysicalExpr>) -> Option<Self> {
        let has_case = expr.exists(|e| Ok(any(e.as_ref()).is::<CaseExpr>())).unwrap_or(false);
        if !has_case {
            return None;
        }
        let mut inputs: Vec<Arc<dyn PhysicalExpr>> = Vec::new();
        let rewritten = Arc::clone(expr)
            .transform_down(|e| {
                if !is_input(&e) {
                    return Ok(Transformed::no(e));
                }
                let at = match inputs.iter().position(|i| i == &e) {
                    Some(at) => at,
                    None => {
                        inputs.push(Arc::clone(&e));
                        inputs.len() - 1
                    }
                };
                let column = Arc::new(Column::new(&format!("input{at}"), at)) as Arc<dyn PhysicalExpr>;
                Ok(Transformed::new(column, true, TreeNodeRecursion::Jump))
            })
            .ok()?;
        Some(Self { inputs, expr: rewritten.data, keyed: std::cell::OnceCell::new() })
    }

    /// The expression's value on `batch`.
    fn evaluate(&self, batch: &RecordBatch) -> datafusion::error::Result<datafusion::logical_expr::ColumnarValue> {
        let rows = batch.num_rows();
        let arrays = self
            .inputs
            .iter()
            .map(|i| i.evaluate(batch).and_then(|v| v.into_array(rows)))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        let fields: Vec<Field> = arrays
            .iter()
            .enumerate()
            .map(|(i, a)| Field::new(format!("input{i}"), a.data_type().clone(), true))
            .collect();
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        let input = RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), arrays, &options)?;
        match self.keyed.get_or_init(|| KeyedCase::of(&self.expr, &input.schema())) {
            Some(keyed) => keyed.evaluate(&input).map(datafusion::logical_expr::ColumnarValue::Array),
            None => self.expr.evaluate(&input),
        }
    }
}

/// A column, or a field of one (`get_field` by literal names, nested).
fn is_input(e: &Arc<dyn PhysicalExpr>) -> bool {
    if any(e.as_ref()).is::<Column>() {
        return true;
    }
    let Some(f) = any(e.as_ref()).downcast_ref::<ScalarFunctionExpr>() else { return false };
    let args = f.args();
    f.name() == "get_field"
        && args.first().is_some_and(is_input)
        && args.len() > 1
        && args[1..].iter().all(|a| any(a.as_ref()).is::<Literal>())
}

fn any(e: &dyn PhysicalExpr) -> &dyn std::any::Any {
    e
}

impl ProjectOperator {
    /// A projection producing `schema`.
    pub fn new(exprs: Vec<ProjectExpr>, schema: SchemaRef) -> Self {
        let narrowed = exprs.iter().map(|p| Narrowed::of(&p.expr.expr)).collect();
        Self { exprs, narrowed, schema }
    }
}

impl StreamOperator for ProjectOperator {
    fn name(&self) -> String {
        let cols: Vec<&str> = self.exprs.iter().map(|e| e.name.as_str()).collect();
        format!("Project[{}]", cols.join(", "))
    }

    fn process_batch(&mut self, batch: Batch, out: &mut Vec<Message>) -> Result<()> {
        let rows = batch.num_rows();
        let columns = self
            .exprs
            .iter()
            .zip(&self.narrowed)
            .map(|(p, narrowed)| {
                let evaluated = match narrowed {
                    Some(n) => n.evaluate(&batch.data),
                    None => p.expr.expr.evaluate(&batch.data),
                };
                evaluated.and_then(|v| v.into_array(rows)).map_err(|source| EngineError::Expression {
                    operator: format!("{} AS {}", p.expr.display, p.name),
                    source,
                })
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        let data = RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(|source| EngineError::Arrow { operator: self.name(), source })?;
        out.push(Message::Data(Batch {
            data,
            row_kinds: batch.row_kinds,
            arrival_watermarks: batch.arrival_watermarks,
            partition: batch.partition,
        }));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::expressions::{binary, case, col, lit};
    use eddy_sql::plan::ExprSpec;

    use super::*;

    /// A CASE over the last two of three columns is evaluated on those two, renumbered,
    /// with the values it has on the whole batch.
    #[test]
    fn a_case_reads_only_its_columns() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("wide", DataType::Utf8, true),
            Field::new("kind", DataType::Int64, true),
            Field::new("v", DataType::Int64, true),
        ]));
        let (kind, v) = (col("kind", &schema).expect("kind"), col("v", &schema).expect("v"));
        let is = |n: i64| binary(Arc::clone(&kind), Operator::Eq, lit(n), &schema).expect("when");
        let plus = |n: i64| binary(Arc::clone(&v), Operator::Plus, lit(n), &schema).expect("then");
        let expr = case(None, vec![(is(0), plus(100)), (is(1), plus(200))], Some(Arc::clone(&v))).expect("case");
        let narrowed = Narrowed::of(&expr).expect("a CASE is narrowed");
        assert_eq!(narrowed.inputs.len(), 2, "kind and v");
        assert!(Narrowed::of(&plus(1)).is_none(), "only CASE expressions are");

        let out_schema = Arc::new(Schema::new(vec![Field::new("t", DataType::Int64, true)]));
        let project = ProjectExpr { expr: ExprSpec { expr, display: "CASE".into() }, name: "t".into() };
        let mut op = ProjectOperator::new(vec![project], out_schema);
        let data = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["x"; 5])),
                Arc::new(Int64Array::from(vec![Some(0), Some(1), Some(2), None, Some(1)])),
                Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])),
            ],
        )
        .expect("batch");
        let mut out = Vec::new();
        op.process_batch(Batch::append(data), &mut out).expect("project");
        let Some(Message::Data(b)) = out.first() else { panic!("no batch") };
        let t: Vec<i64> = b.data.column(0).as_primitive::<Int64Type>().values().to_vec();
        assert_eq!(t, [101, 202, 3, 4, 205]);
    }
}
