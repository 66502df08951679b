//! Projection: one expression per output column (also computed columns and sink casts).

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::physical_expr::expressions::{CaseExpr, Column};
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_expr::PhysicalExpr;

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

/// An expression with a CASE, rewritten to read only the columns it refers to.
///
/// Why: DataFusion's CASE filters the whole batch it is given once per WHEN branch after
/// the first. The Nexmark table's computed `dateTime` is a CASE over a batch of three
/// nested structs (person, auction, bid), and filtering them cost more than the query's
/// own work in the simple queries; given only the columns it reads, it filters those.
struct Narrowed {
    /// The input columns it reads, in input order.
    columns: Vec<usize>,
    /// The expression with column `columns[i]` renumbered `i`.
    expr: Arc<dyn PhysicalExpr>,
}

impl Narrowed {
    fn of(expr: &Arc<dyn PhysicalExpr>) -> Option<Self> {
        let has_case = expr.exists(|e| Ok(any(e.as_ref()).is::<CaseExpr>())).unwrap_or(false);
        if !has_case {
            return None;
        }
        let mut columns: Vec<usize> = collect_columns(expr).iter().map(Column::index).collect();
        columns.sort_unstable();
        columns.dedup();
        let renumbered = Arc::clone(expr)
            .transform(|e| {
                let Some(c) = any(e.as_ref()).downcast_ref::<Column>() else { return Ok(Transformed::no(e)) };
                let at = columns.binary_search(&c.index()).unwrap_or_default();
                Ok(Transformed::yes(Arc::new(Column::new(c.name(), at)) as Arc<dyn PhysicalExpr>))
            })
            .ok()?;
        Some(Self { columns, expr: renumbered.data })
    }
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
                    Some(n) => batch
                        .data
                        .project(&n.columns)
                        .map_err(|e| datafusion::error::DataFusionError::ArrowError(Box::new(e), None))
                        .and_then(|input| n.expr.evaluate(&input)),
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
        assert_eq!(narrowed.columns, [1, 2]);
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
