//! The StreamPlan: the operator graph the runtime executes.
//!
//! A plan is a DAG of [`PlanNode`]s stored in topological order (a node's inputs have smaller
//! ids). Each node says what it computes ([`Operator`]), the Arrow schema of the batches it
//! emits, its parallelism, and whether its output is an updating changelog. Expressions are
//! DataFusion `PhysicalExpr`s, ready to evaluate against the input's batches; this is data,
//! not code: the runtime decides how to run it.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::PhysicalExpr;

mod group_agg;
mod interval_join;
mod join;
mod topn;

pub use group_agg::{GroupAggSpec, GroupEmit, Retraction};
pub use interval_join::IntervalJoinSpec;
pub use join::{JoinKind, JoinSpec, LookupJoinSpec, TemporalJoinSpec};
pub use topn::{TieBreak, TopNSpec};

/// Index of a node in [`StreamPlan::nodes`].
pub type NodeId = usize;

/// The operator graph of a job.
#[derive(Debug, Clone, Default)]
pub struct StreamPlan {
    /// Nodes in topological order.
    pub nodes: Vec<PlanNode>,
    /// `execution.runtime-mode` = `batch`: every source must be bounded, and a group
    /// aggregation emits its final rows at the end of the input.
    pub batch: bool,
}

/// One operator of the graph.
#[derive(Debug, Clone)]
pub struct PlanNode {
    /// What the node computes.
    pub operator: Operator,
    /// Input nodes (one, except for Union; none for sources).
    pub inputs: Vec<NodeId>,
    /// Schema of the batches the node emits.
    pub schema: SchemaRef,
    /// Number of parallel tasks.
    pub parallelism: usize,
    /// Whether the output is an updating changelog (carries row kinds).
    pub updating: bool,
}

/// What a node computes.
#[derive(Debug, Clone)]
pub enum Operator {
    /// Reads a connector table.
    Source(TableSpec),
    /// Literal rows (`VALUES`, or a query with no FROM).
    Values(Vec<RecordBatch>),
    /// Evaluates one expression per output column.
    Project(Vec<ProjectExpr>),
    /// Keeps rows where the predicate is true.
    Filter(ExprSpec),
    /// Generates watermarks from the rowtime column.
    Watermark(WatermarkSpec),
    /// Expands a list column into one row per element (`CROSS JOIN UNNEST`).
    Unnest(UnnestSpec),
    /// Merges its inputs (`UNION ALL`).
    Union,
    /// A window table function whose rows are used as such (not aggregated): appends
    /// `window_start`, `window_end`, `window_time`; HOP and CUMULATE emit a row per window.
    WindowAssign(WindowAssignSpec),
    /// Aggregation per window and key (`GROUP BY window_start, window_end, k`), emitted
    /// append-only when the watermark passes the window's end. Input hash-partitioned by `keys`.
    WindowAggregate(WindowAggSpec),
    /// `ROW_NUMBER() OVER (PARTITION BY window_start, window_end, k ORDER BY ..) <= n` over
    /// windowed rows, emitted when the watermark passes the window's end.
    WindowTopN(WindowTopNSpec),
    /// `ROW_NUMBER() OVER (PARTITION BY k ORDER BY rowtime ASC) = 1` on an append-only stream:
    /// the first row per key in event time, emitted once the watermark passes it.
    Deduplicate(DeduplicateSpec),
    /// Turns an upsert stream (`+U` = new value of a key, `-D` = delete of a key) into a
    /// proper changelog, as Flink's `ChangelogNormalize`: keeps the last row per key and
    /// emits `+I` for a new key, `-U` old / `+U` new for a changed row, `-D` with the full
    /// old row for a delete. Input hash-partitioned by the keys.
    ChangelogNormalize(ChangelogNormalizeSpec),
    /// Non-windowed `GROUP BY` (Flink's `GroupAggregate`): per key, aggregates over every
    /// row so far; streaming, an updating changelog of the results, batch, the final row per
    /// key at the end (see [`GroupEmit`]). Input hash-partitioned by the keys.
    GroupAggregate(GroupAggSpec),
    /// `f(..) OVER (PARTITION BY k ORDER BY time ..)` on an append-only stream: every input
    /// row once, followed by its OVER results, in time order per key (event time: once the
    /// watermark passes the row). Input hash-partitioned by the partition keys.
    OverAggregate(OverAggSpec),
    /// Event-time interval join of two append-only streams, read as one tagged stream (see
    /// [`IntervalJoinSpec`]); append-only output. Input hash-partitioned by the keys.
    IntervalJoin(IntervalJoinSpec),
    /// Regular join of two streams, append-only or updating, read as one tagged stream (see
    /// [`JoinSpec`]). Input hash-partitioned by the keys.
    Join(JoinSpec),
    /// Temporal join against a versioned table (`FOR SYSTEM_TIME AS OF`), read as one tagged
    /// stream (see [`TemporalJoinSpec`]); append-only output. Input hash-partitioned by the
    /// keys.
    TemporalJoin(TemporalJoinSpec),
    /// Lookup join: each input row joined with the rows a database table holds for its key
    /// (see [`LookupJoinSpec`]); append-only, chained after its input.
    LookupJoin(LookupJoinSpec),
    /// `ROW_NUMBER() OVER (PARTITION BY k ORDER BY ..) <= n` without a window (Flink's
    /// `Rank`), also deduplication keeping the last row: an updating changelog of the top
    /// rows per partition with their rank (see [`TopNSpec`]). Input hash-partitioned by the
    /// partition keys.
    TopN(TopNSpec),
    /// Writes to a connector table.
    Sink(TableSpec),
}

/// A physical expression and how EXPLAIN shows it.
#[derive(Debug, Clone)]
pub struct ExprSpec {
    /// The evaluable expression.
    pub expr: Arc<dyn PhysicalExpr>,
    /// Its SQL-ish text.
    pub display: String,
}

/// One output column of a projection.
#[derive(Debug, Clone)]
pub struct ProjectExpr {
    /// The expression.
    pub expr: ExprSpec,
    /// The output column name.
    pub name: String,
}

/// How watermarks are generated.
#[derive(Debug, Clone)]
pub struct WatermarkSpec {
    /// Index of the rowtime column in the input.
    pub rowtime_column: usize,
    /// The watermark expression (`ts - INTERVAL '5' SECOND`), evaluated per row.
    pub expr: ExprSpec,
    /// `pipeline.auto-watermark-interval` in ms (0 = after every row that advances it).
    pub interval_ms: u64,
    /// `table.exec.source.idle-timeout` in ms (0 = never idle).
    pub idle_timeout_ms: u64,
    /// A processing-time attribute (`AS PROCTIME()`): the watermark follows the wall clock,
    /// every `interval_ms`, whether rows arrive or not, so processing-time windows close on
    /// time.
    pub processing_time: bool,
}

/// How a list column is expanded (one output row per element; NULL or empty lists give
/// no rows, as a CROSS JOIN does).
#[derive(Debug, Clone)]
pub struct UnnestSpec {
    /// Index of the list column in the input.
    pub list_column: usize,
    /// For each output column, the input column it comes from; the list column's position
    /// yields the element.
    pub output_sources: Vec<usize>,
}

/// How a window table function assigns rows to windows. Times are milliseconds; windows are
/// aligned to the epoch plus `offset` (Flink's optional OFFSET argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd)]
pub enum WindowKind {
    /// `TUMBLE(.., size)`: `[k*size + offset, (k+1)*size + offset)`.
    Tumble {
        /// Window size.
        size: i64,
        /// Alignment offset.
        offset: i64,
    },
    /// `HOP(.., slide, size)`: windows of `size` starting every `slide`.
    Hop {
        /// Distance between window starts.
        slide: i64,
        /// Window size.
        size: i64,
        /// Alignment offset.
        offset: i64,
    },
    /// `CUMULATE(.., step, size)`: within each `size`-aligned period, windows
    /// `[period_start, period_start + n*step)` for n = 1..size/step.
    Cumulate {
        /// Growth step.
        step: i64,
        /// Maximum window size (the period).
        size: i64,
        /// Alignment offset.
        offset: i64,
    },
    /// `SESSION(.., gap)`: per key, rows closer than or exactly `gap` apart share a window
    /// `[first, last + gap)`.
    Session {
        /// Inactivity gap.
        gap: i64,
    },
}

/// As EXPLAIN and operator names show it: `HOP(slide=2000ms, size=10000ms)`, the offset
/// only when there is one.
impl std::fmt::Display for WindowKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let offset = |o: i64| if o == 0 { String::new() } else { format!(", offset={o}ms") };
        match *self {
            WindowKind::Tumble { size, offset: o } => write!(f, "TUMBLE(size={size}ms{})", offset(o)),
            WindowKind::Hop { slide, size, offset: o } => write!(f, "HOP(slide={slide}ms, size={size}ms{})", offset(o)),
            WindowKind::Cumulate { step, size, offset: o } => {
                write!(f, "CUMULATE(step={step}ms, size={size}ms{})", offset(o))
            }
            WindowKind::Session { gap } => write!(f, "SESSION(gap={gap}ms)"),
        }
    }
}

/// Where an output column of a windowed operator comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowOutput {
    /// The i-th grouping key.
    Key(usize),
    /// `window_start`.
    WindowStart,
    /// `window_end`.
    WindowEnd,
    /// `window_time` (= window_end - 1 ms, a rowtime attribute).
    WindowTime,
    /// The i-th aggregate's value.
    Aggregate(usize),
}

/// A window table function whose rows are used directly.
#[derive(Debug, Clone)]
pub struct WindowAssignSpec {
    /// The window.
    pub window: WindowKind,
    /// Index of the time attribute column in the input (a millisecond timestamp).
    pub time_column: usize,
}

/// One aggregate call of a [`WindowAggSpec`].
#[derive(Debug, Clone)]
pub struct AggregateSpec {
    /// DataFusion's physical aggregate (arguments bound to the operator's input schema).
    pub function: Arc<AggregateFunctionExpr>,
    /// The `FILTER (WHERE ..)` predicate, if any.
    pub filter: Option<ExprSpec>,
    /// How EXPLAIN shows the call.
    pub display: String,
}

/// Windowed aggregation.
#[derive(Debug, Clone)]
pub struct WindowAggSpec {
    /// The window.
    pub window: WindowKind,
    /// Index of the time attribute column in the input (a millisecond timestamp).
    pub time_column: usize,
    /// Grouping keys besides the window columns, evaluated on the input. For SESSION they
    /// also partition the sessions.
    pub keys: Vec<ExprSpec>,
    /// Aggregate calls.
    pub aggregates: Vec<AggregateSpec>,
    /// For each output column (in `PlanNode::schema` order), where it comes from.
    pub output: Vec<WindowOutput>,
    /// When results are emitted besides the window's close.
    pub emit: EmitStrategy,
}

/// Beyond Flink's window TVF aggregation (which emits each window once, when it closes):
/// updates for late rows and early results. Either makes the output an updating stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmitStrategy {
    /// `table.exec.emit.allow-lateness`: a fired window keeps its state until the watermark
    /// passes `window_end - 1 + allowed_lateness_ms`; a late row in that time updates it
    /// (`-U` old, `+U` new). 0: late rows are dropped.
    pub allowed_lateness_ms: i64,
    /// `table.exec.emit.early-fire.delay`: every this many ms of wall-clock time, open
    /// windows whose result changed emit it (`+I` first, then `-U`/`+U`); the final result at
    /// close is an update too. 0: off.
    pub early_fire_delay_ms: u64,
}

impl EmitStrategy {
    /// Whether the output carries updates.
    pub fn is_updating(&self) -> bool {
        self.allowed_lateness_ms > 0 || self.early_fire_delay_ms > 0
    }
}

/// One `ORDER BY` key of a Top-N.
#[derive(Debug, Clone)]
pub struct SortKey {
    /// The expression (on the operator's input).
    pub expr: ExprSpec,
    /// `DESC`.
    pub descending: bool,
    /// `NULLS FIRST`.
    pub nulls_first: bool,
}

/// Window Top-N: rows of windowed input ranked within each window and partition.
#[derive(Debug, Clone)]
pub struct WindowTopNSpec {
    /// Index of the `window_start` column in the input.
    pub window_start_column: usize,
    /// Index of the `window_end` column in the input.
    pub window_end_column: usize,
    /// Partition keys besides the window (the exchange hashes on these and the window end).
    pub partition_keys: Vec<ExprSpec>,
    /// Ranking order.
    pub order_by: Vec<SortKey>,
    /// Keep ranks `1..=limit`.
    pub limit: usize,
    /// Whether the rank is output as the last column (`rownum` kept in the SELECT).
    pub emit_rank: bool,
}

/// Event-time deduplication keeping each key's first row.
#[derive(Debug, Clone)]
pub struct DeduplicateSpec {
    /// Keys (the exchange hashes on these).
    pub keys: Vec<ExprSpec>,
    /// Index of the rowtime column in the input (a millisecond timestamp).
    pub time_column: usize,
    /// Whether the rank (always 1) is output as the last column.
    pub emit_rank: bool,
}

/// Normalization of an upsert stream by its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangelogNormalizeSpec {
    /// Indices of the key columns (the PRIMARY KEY) in the input, which has the same columns
    /// as the output.
    pub keys: Vec<usize>,
    /// Their names, in the same order (for EXPLAIN and the exchange).
    pub key_names: Vec<String>,
}

/// Which rows before the current one (in time order, within its partition) the aggregates
/// of an OVER aggregation see; the frame always ends at the current row, as Flink requires
/// on streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverFrame {
    /// `ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW`: every row up to the current one.
    RowsUnbounded,
    /// `ROWS BETWEEN n PRECEDING AND CURRENT ROW`: the `n` rows before and the current one.
    Rows(u64),
    /// `RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW` (the default with ORDER BY):
    /// every row up to the current one and its peers (rows of the same time).
    RangeUnbounded,
    /// `RANGE BETWEEN INTERVAL 'd' PRECEDING AND CURRENT ROW`: rows whose time is within
    /// `[t - d, t]` of the current row's `t`, in milliseconds (peers included).
    Range(i64),
}

/// As EXPLAIN shows it, in SQL.
impl std::fmt::Display for OverFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OverFrame::RowsUnbounded => write!(f, "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"),
            OverFrame::Rows(n) => write!(f, "ROWS BETWEEN {n} PRECEDING AND CURRENT ROW"),
            OverFrame::RangeUnbounded => write!(f, "RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"),
            OverFrame::Range(ms) => write!(f, "RANGE BETWEEN {ms}ms PRECEDING AND CURRENT ROW"),
        }
    }
}

/// What one OVER call computes for a row.
#[derive(Debug, Clone)]
pub enum OverFunction {
    /// SUM, COUNT, AVG, MIN or MAX over the frame: DataFusion's physical aggregate
    /// (arguments bound to the operator's input schema).
    Aggregate(Arc<AggregateFunctionExpr>),
    /// `FIRST_VALUE(x)`: the first non-NULL `x` of the frame (Flink skips NULLs).
    FirstValue(Arc<dyn PhysicalExpr>),
    /// `LAST_VALUE(x)`: the last non-NULL `x` of the frame.
    LastValue(Arc<dyn PhysicalExpr>),
    /// `LAG(x, offset, default)`: `x` of the row `offset` rows before, `default` when
    /// there is none (NULL unless given, already of `x`'s type).
    Lag {
        /// The value expression.
        value: Arc<dyn PhysicalExpr>,
        /// How many rows back (0 = the row itself).
        offset: usize,
        /// The value when the partition has fewer rows before.
        default: ScalarValue,
    },
    /// `ROW_NUMBER()`: the row's position in its partition, from 1.
    RowNumber,
}

/// One OVER call of an [`OverAggSpec`].
#[derive(Debug, Clone)]
pub struct OverCall {
    /// What it computes.
    pub function: OverFunction,
    /// How EXPLAIN shows it.
    pub display: String,
}

/// An OVER aggregation: all calls share one window (Flink's rule).
#[derive(Debug, Clone)]
pub struct OverAggSpec {
    /// `PARTITION BY` expressions (the exchange hashes on these; none: one subtask).
    pub partition_keys: Vec<ExprSpec>,
    /// Index of the `ORDER BY` time attribute in the input.
    pub time_column: usize,
    /// Whether that attribute is processing time (`PROCTIME()`): rows are then processed
    /// as they arrive instead of when the watermark passes them.
    pub processing_time: bool,
    /// The frame.
    pub frame: OverFrame,
    /// The calls; their results follow the input columns in the output.
    pub calls: Vec<OverCall>,
}

/// A connector table as a source or sink sees it.
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// Table name (for messages and metrics).
    pub name: String,
    /// For a source: the columns it produces. For a sink: the columns it receives.
    pub schema: SchemaRef,
    /// Metadata columns: (index into `schema`, key).
    pub metadata: Vec<(usize, String)>,
    /// `PRIMARY KEY` column names.
    pub primary_key: Vec<String>,
    /// `PARTITIONED BY` column names.
    pub partition_keys: Vec<String>,
    /// `DISTRIBUTED BY (columns)` (empty for `DISTRIBUTED INTO`) and `INTO n BUCKETS`;
    /// `None` without the clause.
    pub distribution: Option<(Vec<String>, Option<u64>)>,
    /// `WITH` options.
    pub options: Vec<(String, String)>,
    /// The `WATERMARK FOR` column, if the table declares one.
    pub rowtime: Option<String>,
    /// For a source: the parts of `schema` the job never reads, as (column index, `None`
    /// for the whole column or `Some(field)` for a ROW column's field). A hint: the source
    /// may fill them with NULL instead of producing them (see `planner::read_columns`).
    pub unread: Vec<(usize, Option<String>)>,
}

impl TableSpec {
    /// The `connector` option.
    pub fn connector(&self) -> &str {
        self.options.iter().find(|(k, _)| k == "connector").map(|(_, v)| v.as_str()).unwrap_or("")
    }
}

impl Operator {
    /// For a keyed operator, the expressions its input must be hash-partitioned by when it
    /// runs in parallel (an empty list means all rows go to one subtask).
    pub fn input_partitioning(&self) -> Option<Vec<Arc<dyn PhysicalExpr>>> {
        use datafusion::physical_expr::expressions::Column;
        let exprs = |keys: &[ExprSpec]| keys.iter().map(|k| k.expr.clone()).collect::<Vec<_>>();
        match self {
            Operator::WindowAggregate(a) => Some(exprs(&a.keys)),
            Operator::Deduplicate(d) => Some(exprs(&d.keys)),
            Operator::TopN(t) => Some(exprs(&t.partition_keys)),
            Operator::GroupAggregate(a) => Some(exprs(&a.keys)),
            Operator::OverAggregate(o) => Some(exprs(&o.partition_keys)),
            Operator::ChangelogNormalize(n) => Some(
                n.keys
                    .iter()
                    .zip(&n.key_names)
                    .map(|(i, name)| Arc::new(Column::new(name, *i)) as Arc<dyn PhysicalExpr>)
                    .collect(),
            ),
            Operator::TemporalJoin(j) => Some(
                j.key_names
                    .iter()
                    .enumerate()
                    .map(|(i, name)| Arc::new(Column::new(name, i)) as Arc<dyn PhysicalExpr>)
                    .collect(),
            ),
            Operator::Join(j) => Some(
                j.key_names
                    .iter()
                    .enumerate()
                    .map(|(i, name)| Arc::new(Column::new(name, i)) as Arc<dyn PhysicalExpr>)
                    .collect(),
            ),
            Operator::IntervalJoin(j) => Some(
                j.key_names
                    .iter()
                    .enumerate()
                    .map(|(i, name)| Arc::new(Column::new(name, i)) as Arc<dyn PhysicalExpr>)
                    .collect(),
            ),
            Operator::WindowTopN(t) => {
                let mut keys = exprs(&t.partition_keys);
                keys.push(Arc::new(Column::new("window_end", t.window_end_column)));
                Some(keys)
            }
            _ => None,
        }
    }
}

impl StreamPlan {
    /// Append a node, returning its id.
    pub fn add(&mut self, node: PlanNode) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Ids of the nodes that read `id`'s output.
    pub fn consumers(&self, id: NodeId) -> Vec<NodeId> {
        (0..self.nodes.len()).filter(|n| self.nodes[*n].inputs.contains(&id)).collect()
    }

    /// Ids of the sink nodes.
    pub fn sinks(&self) -> Vec<NodeId> {
        (0..self.nodes.len()).filter(|n| matches!(self.nodes[*n].operator, Operator::Sink(_))).collect()
    }
}
