//! Operators: what runs between a source and a sink.
//!
//! An operator is lifecycle-shaped ([`StreamOperator`]): only `process_batch` is required;
//! watermarks are forwarded and end-of-input is a no-op unless an operator needs more.
//! Contract for every hook: outputs are appended to `out` in order; an `Err` fails the job
//! (bad rows are a connector's business and never reach here as errors); watermarks
//! passed to `handle_watermark` only move forward.

mod changelog_normalize;
mod compact_key;
mod dedup;
mod filter;
mod group_agg;
mod interval_join;
mod join;
mod join_rows;
mod keyed_case;
mod lookup_join;
mod memory;
mod over_agg;
mod project;
mod row_log;
mod session_agg;
mod snapshot;
mod tagged;
mod temporal_join;
mod topn;
mod ttl;
mod unnest;
mod watermark;
mod window_agg;
mod window_assign;
mod window_topn;
mod windowing;

pub use changelog_normalize::ChangelogNormalizeOperator;
pub use dedup::DeduplicateOperator;
pub use filter::FilterOperator;
pub use group_agg::GroupAggregateOperator;
pub use interval_join::IntervalJoinOperator;
pub use join::JoinOperator;
pub use lookup_join::LookupJoinOperator;
pub use over_agg::OverAggregateOperator;
pub use project::ProjectOperator;
pub use session_agg::SessionWindowOperator;
pub use temporal_join::TemporalJoinOperator;
pub use topn::TopNOperator;
pub use unnest::UnnestOperator;
pub use watermark::WatermarkOperator;
pub use window_agg::WindowAggregateOperator;
pub use window_assign::WindowAssignOperator;
pub use window_topn::WindowTopNOperator;

use arrow::datatypes::SchemaRef;
use eddy_sql::plan::{Operator, WindowKind};

use crate::checkpoint::StateSnapshot;
use crate::error::Result;
use crate::message::{Batch, Message, Watermark};
use crate::metrics::LateRowCounter;

/// The hasher of the operators' state tables (keys, rows, values): foldhash, as DataFusion's
/// hash tables use. std's SipHash resists hash flooding, which keys of one's own pipeline
/// do not call for, and cost up to 5 % of a stateful Nexmark query's time.
pub(crate) type KeyHasher = datafusion::common::hash_utils::RandomState;

/// What a stateful operator is built from.
pub struct OperatorContext {
    /// Schema of the batches it receives.
    pub input_schema: SchemaRef,
    /// Schema of the batches it emits.
    pub output_schema: SchemaRef,
    /// Where it counts the late rows it drops.
    pub late_rows: LateRowCounter,
    /// `table.exec.state.ttl`: how long a non-windowed operator keeps a key's state after
    /// the key was last written (processing time, as Flink's state TTL); `None`: forever.
    /// Windowed operators free a window's state once the watermark passes it instead.
    pub state_ttl: Option<std::time::Duration>,
}

/// Build the operator for a windowed or keyed plan node (window aggregation and assignment,
/// Top-N, deduplication, changelog normalization, group aggregation); `None` for the stateless ones,
/// which the task builds itself.
pub fn build_stateful(op: &Operator, ctx: OperatorContext) -> Result<Option<Box<dyn StreamOperator>>> {
    match op {
        Operator::WindowAssign(a) => Ok(Some(Box::new(WindowAssignOperator::new(a.clone(), ctx)?))),
        Operator::WindowAggregate(a) if !matches!(a.window, WindowKind::Session { .. }) => {
            Ok(Some(Box::new(WindowAggregateOperator::new(a.clone(), ctx)?)))
        }
        Operator::WindowAggregate(a) => Ok(Some(Box::new(SessionWindowOperator::new(a.clone(), ctx)?))),
        Operator::WindowTopN(t) => Ok(Some(Box::new(WindowTopNOperator::new(t.clone(), ctx)?))),
        Operator::Deduplicate(d) => Ok(Some(Box::new(DeduplicateOperator::new(d.clone(), ctx)?))),
        Operator::ChangelogNormalize(n) => Ok(Some(Box::new(ChangelogNormalizeOperator::new(n.clone(), ctx)?))),
        Operator::GroupAggregate(a) => Ok(Some(Box::new(GroupAggregateOperator::new(a.clone(), ctx)?))),
        Operator::OverAggregate(o) => Ok(Some(Box::new(OverAggregateOperator::new(o.clone(), ctx)?))),
        Operator::IntervalJoin(j) => Ok(Some(Box::new(IntervalJoinOperator::new(j.clone(), ctx)?))),
        Operator::Join(j) => Ok(Some(Box::new(JoinOperator::new(j.clone(), ctx)?))),
        Operator::TopN(t) => Ok(Some(Box::new(TopNOperator::new(t.clone(), ctx)?))),
        Operator::TemporalJoin(j) => Ok(Some(Box::new(TemporalJoinOperator::new(j.clone(), ctx)?))),
        Operator::LookupJoin(j) => Ok(Some(Box::new(LookupJoinOperator::new(j.clone(), ctx)?))),
        _ => Ok(None),
    }
}

/// A step of an operator chain.
pub trait StreamOperator: Send {
    /// Name for errors and EXPLAIN-like logs.
    fn name(&self) -> String;

    /// Process one batch of rows.
    fn process_batch(&mut self, batch: Batch, out: &mut Vec<Message>) -> Result<()>;

    /// Event time advanced to `wm` on all inputs. Default: forward it.
    fn handle_watermark(&mut self, wm: Watermark, out: &mut Vec<Message>) -> Result<()> {
        out.push(Message::Watermark(wm));
        Ok(())
    }

    /// When the operator next has wall-clock work to do (early firing), if ever.
    fn next_processing_time(&self) -> Option<std::time::Instant> {
        None
    }

    /// Do the wall-clock work due at `now`.
    fn on_processing_time(&mut self, _now: std::time::Instant, _out: &mut Vec<Message>) -> Result<()> {
        Ok(())
    }

    /// All inputs ended. Default: nothing to flush. (`End` itself is forwarded by the chain.)
    fn on_end(&mut self, _out: &mut Vec<Message>) -> Result<()> {
        Ok(())
    }

    /// An estimate of the memory the operator's state holds, in bytes (0 for stateless
    /// operators). Checked against `eddy.state.memory-limit` after every message, so it
    /// must be cheap: keep a running figure rather than walking the state.
    fn state_bytes(&self) -> usize {
        0
    }

    /// The operator's state at a checkpoint barrier (everything before the barrier has been
    /// processed, nothing after it). `None`: the operator keeps no state (the default, for
    /// stateless operators). A stateful operator that cannot snapshot yet must return an
    /// error naming itself, never `None`: the checkpoint is then declined, not made wrong.
    /// Must not change what the operator emits later.
    fn snapshot_state(&mut self) -> Result<Option<StateSnapshot>> {
        Ok(None)
    }

    /// Take the state of a snapshot made by an operator of the same plan node (same spec,
    /// same subtask), before any message is processed.
    fn restore_state(&mut self, _state: StateSnapshot) -> Result<()> {
        Err(crate::error::EngineError::Checkpoint(format!("{}: keeps no state to restore", self.name())))
    }
}

/// Whether each row of `batch` adds (`+I`/`+U`, every row of an append-only batch) or takes
/// back (`-U`/`-D`). An operator planned for an append-only input (`retracting` false)
/// fails on a row that takes back: the planner should not have let it reach it.
pub(crate) fn row_adds(batch: &Batch, operator: &str, retracting: bool) -> Result<Vec<bool>> {
    use eddy_connectors::RowKind;
    let n = batch.num_rows();
    let Some(kinds) = &batch.row_kinds else { return Ok(vec![true; n]) };
    (0..n)
        .map(|r| {
            let code = if arrow::array::Array::is_valid(kinds, r) { kinds.value(r) } else { RowKind::Insert.code() };
            match RowKind::from_code(code) {
                Some(k) if k.is_accumulate() || retracting => Ok(k.is_accumulate()),
                Some(k) => Err(crate::error::EngineError::Plan(format!(
                    "{operator}: planned for an append-only input, got a {} row",
                    k.short_string()
                ))),
                None => Err(crate::error::EngineError::Plan(format!("{operator}: unknown row kind code {code}"))),
            }
        })
        .collect()
}

/// The error of a stateful operator that cannot be checkpointed yet.
pub fn not_checkpointable(name: &str) -> crate::error::EngineError {
    crate::error::EngineError::Checkpoint(format!("{name} cannot be checkpointed yet"))
}

/// Run messages through a chain of operators, in order.
pub fn run_chain(ops: &mut [Box<dyn StreamOperator>], input: Message) -> Result<Vec<Message>> {
    let mut current = vec![input];
    for op in ops.iter_mut() {
        let mut next = Vec::with_capacity(current.len());
        for m in current {
            match m {
                Message::Data(b) => op.process_batch(b, &mut next)?,
                Message::Watermark(w) => op.handle_watermark(w, &mut next)?,
                Message::Idle => next.push(Message::Idle),
                // The subtask snapshots its operators when the barrier reaches it; operators
                // themselves only pass it on.
                Message::Barrier(e) => next.push(Message::Barrier(e)),
                Message::End => {
                    op.on_end(&mut next)?;
                    next.push(Message::End);
                }
            }
        }
        current = next;
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int8Array, RecordBatch, TimestampMillisecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::physical_expr::expressions::{lit, Column};
    use eddy_sql::plan::{ExprSpec, ProjectExpr, WatermarkSpec};

    use super::*;
    use crate::message::PartitionMark;

    fn column(name: &str, i: usize) -> ExprSpec {
        ExprSpec { expr: Arc::new(Column::new(name, i)), display: name.into() }
    }

    /// A source chain (computed column, filter, watermark) keeps partition marks and row
    /// kinds up to the watermark assigner; a filter dropping every row keeps the mark.
    #[test]
    fn partition_marks_reach_the_watermark_assigner() {
        let ts = Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true);
        let schema = Arc::new(Schema::new(vec![ts.clone(), ts.with_name("ts2")]));
        let keep = |v: bool| ExprSpec { expr: lit(v), display: v.to_string() };
        let wm = WatermarkSpec {
            rowtime_column: 1,
            expr: column("ts2", 1),
            interval_ms: 0,
            idle_timeout_ms: 0,
            processing_time: false,
        };
        let project = vec![
            ProjectExpr { expr: column("ts", 0), name: "ts".into() },
            ProjectExpr { expr: column("ts", 0), name: "ts2".into() },
        ];
        let mut ops: Vec<Box<dyn StreamOperator>> = vec![
            Box::new(ProjectOperator::new(project.clone(), schema.clone())),
            Box::new(FilterOperator::new(keep(true))),
            Box::new(WatermarkOperator::new(wm)),
        ];
        let mut drop_all: Vec<Box<dyn StreamOperator>> =
            vec![Box::new(ProjectOperator::new(project, schema)), Box::new(FilterOperator::new(keep(false)))];
        let input =
            Arc::new(Schema::new(vec![Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true)]));
        let batch = |partition: u32, ts: &[i64]| {
            let data =
                RecordBatch::try_new(input.clone(), vec![Arc::new(TimestampMillisecondArray::from(ts.to_vec()))])
                    .expect("batch");
            Message::Data(Batch {
                row_kinds: Some(Int8Array::from(vec![2i8; ts.len()])),
                partition: Some(PartitionMark { partition, ended: false }),
                ..Batch::append(data)
            })
        };
        let watermarks = |out: Vec<Message>| {
            out.into_iter()
                .filter_map(|m| match m {
                    Message::Watermark(w) => Some(w.0),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        // A filter that drops every row passes the mark on in an empty batch.
        let out = run_chain(&mut drop_all, batch(0, &[10])).expect("run");
        assert!(matches!(out.as_slice(), [Message::Data(b)] if b.num_rows() == 0 && b.partition.is_some()), "{out:?}");
        assert!(run_chain(&mut ops, batch(0, &[])).expect("run").is_empty());
        assert!(run_chain(&mut ops, batch(1, &[])).expect("run").is_empty());
        assert_eq!(watermarks(run_chain(&mut ops, batch(0, &[10])).expect("run")), Vec::<i64>::new());
        assert_eq!(watermarks(run_chain(&mut ops, batch(1, &[20])).expect("run")), vec![10]);
        let out = run_chain(&mut ops, batch(0, &[30])).expect("run");
        let Some(Message::Data(b)) = out.first() else { panic!("{out:?}") };
        assert_eq!(b.row_kinds.as_ref().map(|k| k.value(0)), Some(2), "row kinds kept");
        assert_eq!(watermarks(out), vec![20]);
    }
}
