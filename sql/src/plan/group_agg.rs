//! The plan of a non-windowed `GROUP BY` (Flink's `GroupAggregate`), and how each of its
//! aggregates takes back the rows an updating input retracts.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::error::Result as DfResult;
use datafusion::physical_expr::aggregate::{AggregateExprBuilder, AggregateFunctionExpr};

use super::{AggregateSpec, ExprSpec};

/// Aggregation per key over every row so far, as Flink's `GroupAggregate`.
#[derive(Debug, Clone)]
pub struct GroupAggSpec {
    /// Grouping keys, evaluated on the input (the exchange hashes on them). None: one
    /// global group, on one subtask.
    pub keys: Vec<ExprSpec>,
    /// Aggregate calls. The output is the keys, then one column per aggregate (DataFusion's
    /// `Aggregate` schema).
    pub aggregates: Vec<AggregateSpec>,
    /// Whether the input is an updating changelog, whose `-U`/`-D` rows are taken back
    /// from the aggregates ([`Retraction`]).
    pub input_updating: bool,
    /// When results are emitted.
    pub emit: GroupEmit,
}

/// When a [`GroupAggSpec`] emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupEmit {
    /// Streaming: after each input batch, the keys whose result changed (`+I` for a new
    /// key, `-U` old / `+U` new, `-D` when a key's last row is retracted). An updating
    /// changelog.
    Changelog,
    /// Batch (`execution.runtime-mode` = `batch`): one `+I` row per key with its final
    /// values at the end of the input. Append-only.
    Final,
}

impl GroupAggSpec {
    /// Whether the output is an updating changelog.
    pub fn is_updating(&self) -> bool {
        self.emit == GroupEmit::Changelog
    }
}

/// How an aggregate of a group aggregation takes back a retracted row.
#[derive(Debug, Clone)]
pub enum Retraction {
    /// DataFusion's retracting accumulator (`create_sliding_accumulator`, whose
    /// `retract_batch` undoes `update_batch`: SUM, COUNT, AVG, ..).
    Accumulator,
    /// MIN or MAX (`max`): a count per value, the result being the least or greatest value
    /// held (DataFusion's sliding MIN/MAX only retract the oldest rows first).
    Extreme {
        /// MAX rather than MIN.
        max: bool,
    },
    /// `DISTINCT`: a count per value; `inner` (the same call without DISTINCT, retracting)
    /// sees a value when its count leaves 0 and takes it back when it returns to 0.
    Distinct {
        /// The aggregate without DISTINCT.
        inner: Arc<AggregateFunctionExpr>,
    },
}

impl Retraction {
    /// How `function` (with arguments bound to `input`) takes back rows; DataFusion's error
    /// when it cannot (an aggregate without `retract_batch`, such as FIRST_VALUE).
    pub fn of(function: &AggregateFunctionExpr, input: &SchemaRef) -> DfResult<Retraction> {
        let name = function.fun().name().to_ascii_lowercase();
        if function.expressions().len() == 1 && matches!(name.as_str(), "min" | "max") {
            // MIN(DISTINCT x) is MIN(x).
            return Ok(Retraction::Extreme { max: name == "max" });
        }
        if function.is_distinct() {
            let inner = AggregateExprBuilder::new(Arc::new(function.fun().clone()), function.expressions())
                .schema(Arc::clone(input))
                .alias(function.name())
                .with_ignore_nulls(function.ignore_nulls())
                .build()?;
            inner.create_sliding_accumulator()?;
            return Ok(Retraction::Distinct { inner: Arc::new(inner) });
        }
        function.create_sliding_accumulator()?;
        Ok(Retraction::Accumulator)
    }
}
