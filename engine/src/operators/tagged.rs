//! What the two-sided joins (regular, temporal) share: their input is one tagged stream,
//! `[key_1..key_n, side, left columns.., right columns..]` (see `eddy_sql::plan::JoinSpec`),
//! whose keys and sides they hold in Arrow's row format, and the rest of their ON
//! condition, evaluated on candidate pairs.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Int8Type, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::row::{OwnedRow, RowConverter, Rows, SortField};
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
    operator: String,
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
        Ok(Self {
            keys: converter(&key_types)?,
            sides,
            null_rows,
            key_types,
            side_types,
            offsets,
            pair_schema: Arc::new(Schema::new(pair_fields)),
            condition,
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
        let rows = [
            self.sides[LEFT].convert_columns(columns(LEFT)).map_err(self.arrow_err())?,
            self.sides[RIGHT].convert_columns(columns(RIGHT)).map_err(self.arrow_err())?,
        ];
        let side = (0..data.num_rows()).map(|i| usize::from(tags.is_valid(i) && tags.value(i) != 0)).collect();
        Ok(Decoded { keys, rows, side })
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
        Ok(self.holds_keeping(pairs)?.0)
    }

    /// As [`Self::holds`], also returning the pairs as a batch (left then right columns)
    /// when the condition was evaluated on one.
    pub fn holds_keeping(&self, pairs: &[Rows; 2]) -> Result<(Vec<bool>, Option<RecordBatch>)> {
        let n = pairs[LEFT].num_rows();
        let Some(condition) = &self.condition else { return Ok((vec![true; n], None)) };
        if n == 0 {
            return Ok((Vec::new(), None));
        }
        let batch = self.pairs_batch(pairs, &self.pair_schema)?;
        let value = condition
            .evaluate(&batch)
            .and_then(|v| v.into_array(n))
            .map_err(|e| EngineError::Expression { operator: self.operator.clone(), source: e })?;
        let mask = value
            .as_boolean_opt()
            .ok_or_else(|| EngineError::Plan(format!("{}: the join condition is not boolean", self.operator)))?;
        Ok(((0..n).map(|i| mask.is_valid(i) && mask.value(i)).collect(), Some(batch)))
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
