//! Lookup join (Flink's `LookupJoin`): each input row is joined, as it arrives, with the
//! rows a database table holds for its key, read through the table's lookup cache (see
//! `eddy_connectors::LookupTable`). A key with no rows, a NULL key, or rows that fail the
//! rest of the ON condition: no output for an inner join, the row padded with NULLs for a
//! left join. The output is append-only (an updating input's row kinds are kept on each of
//! its output rows).
//!
//! Per batch, the distinct keys are looked up at once; the rows come back as text and are
//! cast to the right columns' types (Arrow's casts from strings: numbers, booleans,
//! dates and timestamps as databases print them).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray, UInt32Array};
use arrow::compute::{cast_with_options, take, take_record_batch, CastOptions};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::row::{RowConverter, SortField};
use eddy_connectors::{LookupTable, TextRow};

use super::{OperatorContext, StreamOperator};
use crate::error::{EngineError, Result};
use crate::message::{Batch, Message};
use eddy_sql::plan::{JoinKind, LookupJoinSpec};

/// The lookup join operator.
pub struct LookupJoinOperator {
    spec: LookupJoinSpec,
    name: String,
    output_schema: SchemaRef,
    /// The table's columns as read (for the filter on them).
    read_schema: SchemaRef,
    keys: RowConverter,
    table: LookupTable,
}

impl LookupJoinOperator {
    /// An operator reading `ctx.input_schema` and emitting it joined with the table's columns.
    pub fn new(spec: LookupJoinSpec, ctx: OperatorContext) -> Result<Self> {
        let name = format!("LookupJoin[{} {}]", spec.table.name, spec.display);
        let input_width = ctx.input_schema.fields().len();
        if ctx.output_schema.fields().len() != input_width + spec.right_output.len()
            || spec.right_output.iter().any(|i| *i >= spec.read_columns.len())
        {
            return Err(EngineError::Plan(format!("{name}: output does not fit the input and the table's columns")));
        }
        let key_types = spec
            .left_keys
            .iter()
            .map(|k| k.expr.data_type(&ctx.input_schema))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| EngineError::Expression { operator: name.clone(), source: e })?;
        let keys = RowConverter::new(key_types.into_iter().map(SortField::new).collect())
            .map_err(|source| EngineError::Arrow { operator: name.clone(), source })?;
        let table = LookupTable::new(&crate::job::connector_table(&spec.table), &spec.read_columns, &spec.right_keys)?;
        let mut read_fields = Vec::with_capacity(spec.read_columns.len());
        for c in &spec.read_columns {
            let field = spec
                .table
                .schema
                .field_with_name(c)
                .map_err(|source| EngineError::Arrow { operator: name.clone(), source })?;
            read_fields.push(field.clone().with_nullable(true));
        }
        let read_schema = Arc::new(arrow::datatypes::Schema::new(read_fields));
        Ok(Self { spec, name, output_schema: ctx.output_schema, read_schema, keys, table })
    }

    fn arrow_err(&self) -> impl Fn(ArrowError) -> EngineError + '_ {
        move |source| EngineError::Arrow { operator: self.name.clone(), source }
    }

    /// The table's rows as the read columns: one text column per column, cast.
    fn read_columns(&self, rows: &[&TextRow]) -> Result<RecordBatch> {
        let options = CastOptions { safe: false, ..Default::default() };
        let columns = (0..self.spec.read_columns.len())
            .map(|c| {
                let text: StringArray = rows.iter().map(|r| r.get(c).cloned().flatten()).collect();
                let target = self.read_schema.field(c).data_type();
                cast_with_options(&text, target, &options).map_err(|e| {
                    EngineError::Plan(format!(
                        "{}: column '{}' of table '{}' does not read as {target}: {e}",
                        self.name, self.spec.read_columns[c], self.spec.table.name
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows.len()));
        RecordBatch::try_new_with_options(self.read_schema.clone(), columns, &options).map_err(self.arrow_err())
    }

    /// Whether `mask` holds (true, not NULL) at each of its `n` rows.
    fn holds(&self, value: datafusion::error::Result<arrow::array::ArrayRef>, n: usize) -> Result<Vec<bool>> {
        let value = value.map_err(|e| EngineError::Expression { operator: self.name.clone(), source: e })?;
        let mask = value
            .as_boolean_opt()
            .ok_or_else(|| EngineError::Plan(format!("{}: the join condition is not boolean", self.name)))?;
        Ok((0..n).map(|i| mask.is_valid(i) && mask.value(i)).collect())
    }
}

impl StreamOperator for LookupJoinOperator {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn process_batch(&mut self, batch: Batch, out: &mut Vec<Message>) -> Result<()> {
        let data = &batch.data;
        let n = data.num_rows();
        if n == 0 {
            return Ok(());
        }
        let key_columns = self
            .spec
            .left_keys
            .iter()
            .map(|k| k.expr.evaluate(data).and_then(|v| v.into_array(n)))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| EngineError::Expression { operator: self.name.clone(), source: e })?;
        // Distinct non-NULL keys, each looked up once.
        let encoded = self.keys.convert_columns(&key_columns).map_err(self.arrow_err())?;
        let mut distinct: HashMap<&[u8], usize> = HashMap::new();
        let mut firsts: Vec<usize> = Vec::new();
        let mut key_of: Vec<Option<usize>> = Vec::with_capacity(n);
        for i in 0..n {
            if key_columns.iter().any(|k| k.is_null(i)) {
                key_of.push(None);
                continue;
            }
            let next = firsts.len();
            let k = *distinct.entry(encoded.row(i).data()).or_insert(next);
            if k == next {
                firsts.push(i);
            }
            key_of.push(Some(k));
        }
        let found = self.table.lookup(&key_columns, &firsts)?;
        // Candidate pairs (input row, table row), then each input row padded (for LEFT).
        let mut left_index: Vec<u32> = Vec::new();
        let mut right_rows: Vec<&TextRow> = Vec::new();
        for (i, k) in key_of.iter().enumerate() {
            if let Some(k) = k {
                for r in found[*k].iter() {
                    left_index.push(i as u32);
                    right_rows.push(r);
                }
            }
        }
        let candidates = left_index.len();
        let padding: Vec<Option<String>> = Vec::new();
        if self.spec.kind == JoinKind::Left {
            left_index.extend(0..n as u32);
            right_rows.extend(std::iter::repeat_n(&padding, n));
        }
        let left_index = UInt32Array::from(left_index);
        let mut columns: Vec<ArrayRef> = data
            .columns()
            .iter()
            .map(|c| take(c, &left_index, None))
            .collect::<std::result::Result<_, _>>()
            .map_err(self.arrow_err())?;
        let read = self.read_columns(&right_rows)?;
        columns.extend(self.spec.right_output.iter().map(|i| read.column(*i).clone()));
        let all = RecordBatch::try_new(self.output_schema.clone(), columns).map_err(self.arrow_err())?;
        // Which candidates match: the conditions on the table's rows, then the rest of ON.
        let mut holds = vec![true; candidates];
        if candidates > 0 {
            if let Some(f) = &self.spec.right_filter {
                let rows = read.slice(0, candidates);
                let ok = self.holds(f.expr.evaluate(&rows).and_then(|v| v.into_array(candidates)), candidates)?;
                holds.iter_mut().zip(ok).for_each(|(h, ok)| *h &= ok);
            }
            if let Some(c) = &self.spec.condition {
                let rows = all.slice(0, candidates);
                let ok = self.holds(c.expr.evaluate(&rows).and_then(|v| v.into_array(candidates)), candidates)?;
                holds.iter_mut().zip(ok).for_each(|(h, ok)| *h &= ok);
            }
        }
        // The output in input order: each row's matches, or its padded row.
        let mut by_row: Vec<Vec<u32>> = vec![Vec::new(); n];
        for (c, ok) in holds.iter().enumerate() {
            if *ok {
                by_row[left_index.value(c) as usize].push(c as u32);
            }
        }
        let mut chosen: Vec<u32> = Vec::new();
        let mut kinds_index: Vec<u32> = Vec::new();
        for (i, matches) in by_row.iter().enumerate() {
            if matches.is_empty() && self.spec.kind == JoinKind::Left {
                chosen.push((candidates + i) as u32);
                kinds_index.push(i as u32);
            }
            for m in matches {
                chosen.push(*m);
                kinds_index.push(i as u32);
            }
        }
        if chosen.is_empty() {
            return Ok(());
        }
        let joined = take_record_batch(&all, &UInt32Array::from(chosen)).map_err(self.arrow_err())?;
        let row_kinds = match &batch.row_kinds {
            Some(k) => {
                Some(take(k, &UInt32Array::from(kinds_index), None).map_err(self.arrow_err())?.as_primitive().clone())
            }
            None => None,
        };
        out.push(Message::Data(Batch { row_kinds, ..Batch::append(joined) }));
        Ok(())
    }
}
