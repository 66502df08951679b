//! What the two-sided joins (regular, temporal) share: their input is one tagged stream,
//! `[key_1..key_n, side, left columns.., right columns..]` (see `eddy_sql::plan::JoinSpec`),
//! whose keys and sides they hold in Arrow's row format, and the rest of their ON
//! condition, evaluated on candidate pairs.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions, UInt32Array};
use arrow::datatypes::{DataType, Field, Int8Type, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::row::{OwnedRow, RowConverter, Rows, SortField};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_expr::PhysicalExpr;

use super::snapshot::{check_types, malformed, part_columns, Part};
use crate::error::{EngineError, Result};

pub(super) const LEFT: usize = 0;
pub(super) const RIGHT: usize = 1;

/// The layout of a tagged input and the converters of its keys and sides.
pub(super) struct TaggedInput {
    pub key_types: Vec<DataType>,
    pub side_types: [Vec<DataType>; 2],
    pub keys: RowConverter,
    pub sides: [RowConverter; 2],
    /// Each side's all-NULL row, for padding.
    pub null_rows: [OwnedRow; 2],
    /// The first column of each side.
    offsets: [usize; 2],
    /// The schema a pair is evaluated in: left columns then right columns.
    pair_schema: SchemaRef,
    /// The rest of the ON condition, if any.
    condition: Option<Arc<dyn PhysicalExpr>>,
    /// The condition over only the pair columns it reads (see [`Self::holds_at`]).
    compact: Option<CompactCondition>,
    operator: String,
}

/// A condition rewritten to read only its columns of a pair: column `k` of `schema` is
/// pair column `columns[k]`.
struct CompactCondition {
    expr: Arc<dyn PhysicalExpr>,
    columns: Vec<usize>,
    schema: SchemaRef,
}

impl CompactCondition {
    fn of(condition: &Arc<dyn PhysicalExpr>, pair_schema: &Schema) -> datafusion::error::Result<Self> {
        let mut columns: Vec<usize> = collect_columns(condition).iter().map(Column::index).collect();
        columns.sort_unstable();
        let rewritten = Arc::clone(condition).transform_up(|e| {
            let any: &dyn std::any::Any = e.as_ref();
            let Some(c) = any.downcast_ref::<Column>() else { return Ok(Transformed::no(e)) };
            let Ok(k) = columns.binary_search(&c.index()) else { return Ok(Transformed::no(e)) };
            Ok(Transformed::yes(Arc::new(Column::new(c.name(), k)) as Arc<dyn PhysicalExpr>))
        })?;
        let fields: Vec<Field> = columns.iter().map(|&c| pair_schema.field(c).clone()).collect();
        Ok(Self { expr: rewritten.data, columns, schema: Arc::new(Schema::new(fields)) })
    }
}

/// A batch of the tagged input, decoded.
pub(super) struct Decoded {
    pub keys: Rows,
    /// Each side's columns as rows (the other side's rows of a row are its NULLs).
    pub rows: [Rows; 2],
    /// The side of each row.
    pub side: Vec<usize>,
}

impl TaggedInput {
    /// The layout of `input` with `key_count` keys and sides of `widths` columns.
    pub fn new(
        input: &SchemaRef,
        key_count: usize,
        widths: [usize; 2],
        condition: Option<Arc<dyn PhysicalExpr>>,
        operator: &str,
    ) -> Result<Self> {
        let offsets = [key_count + 1, key_count + 1 + widths[LEFT]];
        let width = offsets[RIGHT] + widths[RIGHT];
        if input.fields().len() != width {
            return Err(EngineError::Plan(format!(
                "{operator}: input of {} columns does not fit the join of {} and {} columns",
                input.fields().len(),
                widths[LEFT],
                widths[RIGHT]
            )));
        }
        let arrow_err = |source| EngineError::Arrow { operator: operator.to_string(), source };
        let types = |r: std::ops::Range<usize>| r.map(|i| input.field(i).data_type().clone()).collect::<Vec<_>>();
        let key_types = types(0..key_count);
        let side_types = [types(offsets[LEFT]..offsets[RIGHT]), types(offsets[RIGHT]..width)];
        let converter = |t: &[DataType]| {
            RowConverter::new(t.iter().map(|t| SortField::new(t.clone())).collect()).map_err(arrow_err)
        };
        let sides = [converter(&side_types[LEFT])?, converter(&side_types[RIGHT])?];
        let null_row = |side: usize| -> Result<OwnedRow> {
            let nulls: Vec<ArrayRef> = side_types[side].iter().map(|t| arrow::array::new_null_array(t, 1)).collect();
            Ok(sides[side].convert_columns(&nulls).map_err(arrow_err)?.row(0).owned())
        };
        let null_rows = [null_row(LEFT)?, null_row(RIGHT)?];
        let pair_fields: Vec<Field> =
            input.fields()[offsets[LEFT]..width].iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
        let pair_schema = Arc::new(Schema::new(pair_fields));
        let compact = condition
            .as_ref()
            .map(|c| CompactCondition::of(c, &pair_schema))
            .transpose()
            .map_err(|e| EngineError::Expression { operator: operator.to_string(), source: e })?;
        Ok(Self {
            keys: converter(&key_types)?,
            sides,
            null_rows,
            key_types,
            side_types,
            offsets,
            pair_schema,
            condition,
            compact,
            operator: operator.to_string(),
        })
    }

    fn arrow_err(&self) -> impl Fn(ArrowError) -> EngineError + '_ {
        move |source| EngineError::Arrow { operator: self.operator.clone(), source }
    }

    /// Whether the join has a condition beyond its keys.
    pub fn has_condition(&self) -> bool {
        self.condition.is_some()
    }

    /// The keys, both sides' rows and each row's side.
    pub fn decode(&self, data: &RecordBatch) -> Result<Decoded> {
        let nk = self.key_types.len();
        let keys = self.keys.convert_columns(&data.columns()[..nk]).map_err(self.arrow_err())?;
        let Some(tags) = data.column(nk).as_primitive_opt::<Int8Type>() else {
            return Err(EngineError::Plan(format!("{}: the side column is not Int8", self.operator)));
        };
        let columns = |side: usize| {
            let from = self.offsets[side];
            &data.columns()[from..from + self.side_types[side].len()]
        };
        let side: Vec<usize> =
            (0..data.num_rows()).map(|i| usize::from(tags.is_valid(i) && tags.value(i) != 0)).collect();
        // A side's columns are encoded only when the batch has rows of it (a batch is
        // normally one input's): the other side's are all NULL, and never read.
        let right_rows = side.iter().filter(|s| **s == RIGHT).count();
        let encode = |s: usize, rows: usize| match rows {
            0 => Ok(self.sides[s].empty_rows(0, 0)),
            _ => self.sides[s].convert_columns(columns(s)).map_err(self.arrow_err()),
        };
        let rows = [encode(LEFT, side.len() - right_rows)?, encode(RIGHT, right_rows)?];
        Ok(Decoded { keys, rows, side })
    }

    /// `side`'s columns of `data`.
    pub fn side_columns<'a>(&self, data: &'a RecordBatch, side: usize) -> &'a [ArrayRef] {
        let from = self.offsets[side];
        &data.columns()[from..from + self.side_types[side].len()]
    }

    /// The column of `data` at `index` among `side`'s columns.
    pub fn side_column<'a>(&self, data: &'a RecordBatch, side: usize, index: usize) -> &'a ArrayRef {
        data.column(self.offsets[side] + index)
    }

    /// Empty rows of both sides, to gather pairs in.
    pub fn empty_pairs(&self) -> [Rows; 2] {
        [self.sides[LEFT].empty_rows(0, 0), self.sides[RIGHT].empty_rows(0, 0)]
    }

    /// The pairs (left and right rows at the same positions) as a batch of the left then
    /// the right columns.
    pub fn pairs_batch(&self, pairs: &[Rows; 2], schema: &SchemaRef) -> Result<RecordBatch> {
        let mut columns = self.sides[LEFT].convert_rows(&pairs[LEFT]).map_err(self.arrow_err())?;
        columns.extend(self.sides[RIGHT].convert_rows(&pairs[RIGHT]).map_err(self.arrow_err())?);
        RecordBatch::try_new(schema.clone(), columns).map_err(self.arrow_err())
    }

    /// Whether the condition holds (is true, not NULL) for each pair; every pair holds
    /// without one.
    pub fn holds(&self, pairs: &[Rows; 2]) -> Result<Vec<bool>> {
        let n = pairs[LEFT].num_rows();
        let Some(condition) = &self.condition else { return Ok(vec![true; n]) };
        if n == 0 {
            return Ok(Vec::new());
        }
        let batch = self.pairs_batch(pairs, &self.pair_schema)?;
        self.true_rows(condition, &batch)
    }

    /// As [`Self::holds`], for the pairs `(columns[LEFT] row indices[LEFT][k],
    /// columns[RIGHT] row indices[RIGHT][k])`: only the columns the condition reads are
    /// gathered, instead of every column of every pair.
    pub fn holds_at(&self, columns: [&[ArrayRef]; 2], indices: [&UInt32Array; 2]) -> Result<Vec<bool>> {
        let n = indices[LEFT].len();
        // (`compact` is the condition's, made with it.)
        let Some(compact) = &self.compact else { return Ok(vec![true; n]) };
        if n == 0 {
            return Ok(Vec::new());
        }
        let left_width = self.side_types[LEFT].len();
        let gathered = compact
            .columns
            .iter()
            .map(|&c| {
                let (side, at) = if c < left_width { (LEFT, c) } else { (RIGHT, c - left_width) };
                arrow::compute::take(columns[side][at].as_ref(), indices[side], None)
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(self.arrow_err())?;
        let options = RecordBatchOptions::new().with_row_count(Some(n));
        let batch = RecordBatch::try_new_with_options(Arc::clone(&compact.schema), gathered, &options)
            .map_err(self.arrow_err())?;
        self.true_rows(&compact.expr, &batch)
    }

    /// Per row of `batch`, whether `condition` is true (not NULL) there.
    fn true_rows(&self, condition: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> Result<Vec<bool>> {
        let n = batch.num_rows();
        let value = condition
            .evaluate(batch)
            .and_then(|v| v.into_array(n))
            .map_err(|e| EngineError::Expression { operator: self.operator.clone(), source: e })?;
        let mask = value
            .as_boolean_opt()
            .ok_or_else(|| EngineError::Plan(format!("{}: the join condition is not boolean", self.operator)))?;
        Ok((0..n).map(|i| mask.is_valid(i) && mask.value(i)).collect())
    }

    /// A snapshot part of `side`'s rows, `[keys.., middle_0, middle_1, side columns..]`:
    /// the keys, the two middle columns (checked to be of `middle`'s types) and the rows.
    pub fn restore_part(
        &self,
        batches: &[RecordBatch],
        part: Part,
        side: usize,
        middle: [DataType; 2],
    ) -> Result<(Rows, [ArrayRef; 2], Rows)> {
        let name = &self.operator;
        let n = self.key_types.len();
        let columns = part_columns(name, batches, part, n + 2 + self.side_types[side].len())?;
        let expected: Vec<DataType> =
            self.key_types.iter().cloned().chain(middle).chain(self.side_types[side].iter().cloned()).collect();
        check_types(name, &columns, &expected)?;
        let keys = self.keys.convert_columns(&columns[..n]).map_err(|e| malformed(name, e))?;
        let rows = self.sides[side].convert_columns(&columns[n + 2..]).map_err(|e| malformed(name, e))?;
        Ok((keys, [columns[n].clone(), columns[n + 1].clone()], rows))
    }
}
