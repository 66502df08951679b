//! Watermark assigner: turns the `WATERMARK FOR ts AS expr` strategy into watermarks.
//!
//! Per subtask (= per source split), the watermark is the maximum of `expr` over the rows
//! seen so far; it is emitted after the batch that advanced it. End of input emits
//! [`Watermark::MAX`] so every window fires.

use arrow::array::{Array, AsArray};
use arrow::compute::{cast, max};
use arrow::datatypes::{DataType, Int64Type, TimeUnit};

use super::StreamOperator;
use crate::error::{EngineError, Result};
use crate::message::{Batch, Message, Watermark};
use eddy_sql::plan::WatermarkSpec;

/// Generates watermarks from the rowtime column.
pub struct WatermarkOperator {
    spec: WatermarkSpec,
    current: Watermark,
}

impl WatermarkOperator {
    /// A generator for `spec`.
    pub fn new(spec: WatermarkSpec) -> Self {
        Self { spec, current: Watermark::MIN }
    }

    /// The largest watermark value of the batch, in ms.
    fn batch_max(&self, batch: &Batch) -> Result<Option<i64>> {
        let value = self
            .spec
            .expr
            .expr
            .evaluate(&batch.data)
            .and_then(|v| v.into_array(batch.num_rows()))
            .map_err(|source| EngineError::Expression { operator: self.name(), source })?;
        let millis =
            to_millis(value.as_ref()).map_err(|source| EngineError::Arrow { operator: self.name(), source })?;
        Ok(max(millis.as_primitive::<Int64Type>()))
    }
}

/// Timestamps of any unit as i64 milliseconds.
pub(crate) fn to_millis(a: &dyn Array) -> std::result::Result<arrow::array::ArrayRef, arrow::error::ArrowError> {
    let ms = cast(a, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
    cast(&ms, &DataType::Int64)
}

impl StreamOperator for WatermarkOperator {
    fn name(&self) -> String {
        format!("WatermarkAssigner[{}]", self.spec.expr.display)
    }

    fn process_batch(&mut self, batch: Batch, out: &mut Vec<Message>) -> Result<()> {
        let m = self.batch_max(&batch)?;
        out.push(Message::Data(batch));
        if let Some(m) = m {
            if Watermark(m) > self.current {
                self.current = Watermark(m);
                out.push(Message::Watermark(self.current));
            }
        }
        Ok(())
    }

    fn handle_watermark(&mut self, _wm: Watermark, _out: &mut Vec<Message>) -> Result<()> {
        // Watermarks from upstream (none for a source) are replaced by this assigner's.
        Ok(())
    }

    fn on_end(&mut self, out: &mut Vec<Message>) -> Result<()> {
        self.current = Watermark::MAX;
        out.push(Message::Watermark(Watermark::MAX));
        Ok(())
    }
}
