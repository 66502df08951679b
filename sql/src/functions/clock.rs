//! The clock: `CURRENT_TIMESTAMP` / `NOW()` (TIMESTAMP_LTZ(3)), `LOCALTIMESTAMP`
//! (TIMESTAMP(3) in the session zone, UTC) and `PROCTIME()` (TIMESTAMP_LTZ(3)).
//!
//! In a stream these are read when a batch is processed, as Flink evaluates them per record.
//! DataFusion's `now()` is *stable*: its optimizer folds it into a constant at plan time, and
//! it refuses to run unfolded (in a computed column). These are *volatile*, so they are never
//! folded and always run.

use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

/// Which reading of the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClockFn {
    /// `NOW()`, `CURRENT_TIMESTAMP`: an instant (TIMESTAMP_LTZ(3)).
    Now,
    /// `LOCALTIMESTAMP`: wall-clock time in the session zone (UTC), TIMESTAMP(3).
    LocalTimestamp,
    /// `PROCTIME()`: the processing time of the row, TIMESTAMP_LTZ(3).
    Proctime,
}

/// A clock function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Clock {
    kind: ClockFn,
    aliases: Vec<String>,
    signature: Signature,
}

impl Clock {
    /// The function for `kind`.
    pub fn new(kind: ClockFn) -> Self {
        let aliases = match kind {
            ClockFn::Now => vec!["current_timestamp".to_string()],
            _ => vec![],
        };
        Self { kind, aliases, signature: Signature::nullary(Volatility::Volatile) }
    }
}

impl ScalarUDFImpl for Clock {
    fn name(&self) -> &str {
        match self.kind {
            ClockFn::Now => "now",
            ClockFn::LocalTimestamp => "localtimestamp",
            ClockFn::Proctime => "proctime",
        }
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            ClockFn::LocalTimestamp => DataType::Timestamp(TimeUnit::Millisecond, None),
            _ => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        })
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let now = chrono::Utc::now().timestamp_millis();
        Ok(ColumnarValue::Scalar(match self.kind {
            ClockFn::LocalTimestamp => ScalarValue::TimestampMillisecond(Some(now), None),
            _ => ScalarValue::TimestampMillisecond(Some(now), Some("UTC".into())),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_names() {
        let now = Clock::new(ClockFn::Now);
        assert_eq!(now.name(), "now");
        assert_eq!(now.aliases(), ["current_timestamp"]);
        assert_eq!(now.return_type(&[]).unwrap(), DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())));
        let local = Clock::new(ClockFn::LocalTimestamp);
        assert_eq!(local.return_type(&[]).unwrap(), DataType::Timestamp(TimeUnit::Millisecond, None));
        assert_eq!(Clock::new(ClockFn::Proctime).signature().volatility, Volatility::Volatile);
    }
}
