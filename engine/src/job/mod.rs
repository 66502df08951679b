//! Jobs: a StreamPlan running as tasks.
//!
//! [`Job::new`] checks the plan and its connectors' options; [`Job::run`] starts one tokio
//! task per chain subtask (see [`graph`]), wires them with bounded channels, and waits until
//! every sink has finished (bounded sources) or the job is stopped ([`StopHandle`]). The
//! first error stops the whole job; sinks commit only when their input ended normally.

pub mod graph;
mod task;

use std::sync::Arc;
use std::time::{Duration, Instant};

use eddy_connectors::{ConnectorTable, Options};
use eddy_sql::plan::{Operator, StreamPlan, TableSpec};
use tokio::sync::watch;

use crate::checkpoint::{self, CheckpointConfig};
use crate::error::{EngineError, Result};
use crate::metrics::JobMetrics;
use crate::result_table::{ResultTable, ResultTables, TableShape};

/// Stops a running job: sources end, in-flight data drains, sinks commit.
#[derive(Clone, Debug)]
pub struct StopHandle {
    tx: Arc<watch::Sender<bool>>,
}

impl StopHandle {
    fn new() -> Self {
        Self { tx: Arc::new(watch::channel(false).0) }
    }

    /// Ask the job to stop.
    pub fn stop(&self) {
        self.tx.send_replace(true);
    }

    /// Whether stop was asked.
    pub fn is_stopped(&self) -> bool {
        *self.tx.borrow()
    }

    fn subscribe(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }
}

/// What a finished job did.
#[derive(Debug, Clone)]
pub struct JobSummary {
    /// Rows read by sources.
    pub rows_in: u64,
    /// Rows written by sinks.
    pub rows_out: u64,
    /// Malformed records skipped.
    pub records_skipped: u64,
    /// Late rows dropped.
    pub late_rows_dropped: u64,
    /// Late rows dropped per operator (`#4 WindowAggregate`), those that dropped any.
    pub late_rows_by_operator: Vec<(String, u64)>,
    /// Wall time.
    pub elapsed: Duration,
    /// Whether it ended because it was stopped (rather than its sources ending).
    pub stopped: bool,
    /// The checkpoint it started from (0: none), and how long reading it took.
    pub restored_epoch: u64,
    /// See `restored_epoch`.
    pub restore_time: Duration,
    /// From the start of the job to its first row read (after a restore: recovery time).
    pub first_row_after: Option<Duration>,
    /// The job had already run to its end (its final checkpoint was found): nothing ran.
    pub already_finished: bool,
    /// Checkpoints completed, the longest one, and the last one's size in bytes.
    pub checkpoints: u64,
    /// See `checkpoints`.
    pub max_checkpoint: Duration,
    /// See `checkpoints`.
    pub last_checkpoint_bytes: u64,
}

/// A job ready to run.
pub struct Job {
    plan: StreamPlan,
    metrics: Arc<JobMetrics>,
    stop: StopHandle,
    /// Where the plan's managed result tables live.
    tables: Option<Arc<ResultTables>>,
    /// Started again (after a restart): sources resume from their committed positions.
    resume: bool,
    /// Checkpoints, if the job takes them (and resumes from the latest one).
    checkpoints: Option<CheckpointConfig>,
    /// State TTL and memory limit.
    limits: StateLimits,
}

/// Bounds on a job's state.
#[derive(Debug, Clone, Copy, Default)]
pub struct StateLimits {
    /// `table.exec.state.ttl`: non-windowed operators forget a key this long after its
    /// last write.
    pub ttl: Option<Duration>,
    /// `eddy.state.memory-limit`: the job fails when its operators' state outgrows it.
    pub memory_limit: Option<u64>,
}

impl StateLimits {
    /// The limits `table.exec.state.ttl` and `eddy.state.memory-limit` set.
    pub fn from_settings(settings: &eddy_sql::planner::Settings) -> Self {
        Self { ttl: settings.state_ttl_ms().map(Duration::from_millis), memory_limit: settings.state_memory_limit() }
    }
}

impl Job {
    /// Check the plan and the options of every connector it uses.
    pub fn new(plan: StreamPlan) -> Result<Self> {
        check(&plan)?;
        Ok(Self {
            plan,
            metrics: JobMetrics::new(),
            stop: StopHandle::new(),
            tables: None,
            resume: false,
            checkpoints: None,
            limits: StateLimits::default(),
        })
    }

    /// Keep the plan's managed result tables (tables declared with no connector) in `tables`.
    pub fn with_result_tables(mut self, tables: Arc<ResultTables>) -> Self {
        self.tables = Some(tables);
        self
    }

    /// This job ran before (the server restarted): Kafka sources resume from the offsets
    /// their group committed instead of `scan.startup.mode`'s position, where there are some.
    pub fn resuming(mut self) -> Self {
        self.resume = true;
        self
    }

    /// Take checkpoints as `config` says, and start from the latest complete one in its
    /// directory, if there is one (a checkpoint of another plan is refused).
    pub fn with_checkpoints(mut self, config: CheckpointConfig) -> Self {
        self.checkpoints = Some(config);
        self
    }

    /// Bound the job's state.
    pub fn with_state_limits(mut self, limits: StateLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Whether the plan writes a managed result table.
    pub fn writes_result_tables(&self) -> bool {
        self.plan.nodes.iter().any(|n| matches!(&n.operator, Operator::Sink(t) if is_managed(t)))
    }

    /// Live counters.
    pub fn metrics(&self) -> Arc<JobMetrics> {
        self.metrics.clone()
    }

    /// A handle that stops the job.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Whether every source of the job ends by itself.
    pub fn is_bounded(&self) -> Result<bool> {
        for n in &self.plan.nodes {
            if let Operator::Source(t) = &n.operator {
                // A result table is followed for its changes until the job is stopped.
                if is_managed(t) || !eddy_connectors::is_bounded(&connector_table(t))? {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Run to completion.
    pub async fn run(self) -> Result<JobSummary> {
        let start = Instant::now();
        let graph = graph::ChainGraph::build(&self.plan);
        self.metrics.job_started.get_or_init(Instant::now);
        let reading = Instant::now();
        let (link, coordinator, restored) = self.start_checkpoints(&graph)?;
        let restore_time = if restored.is_some() { reading.elapsed() } else { Duration::ZERO };
        let restored_epoch = restored.as_ref().map_or(0, |r| r.epoch());
        let finished = restored.as_ref().and_then(|r| r.manifest.as_ref()).is_some_and(|m| m.finished);
        let result = if finished {
            // The job had ended; only its sinks' last commit may be missing.
            tracing::info!(epoch = restored_epoch, "the job had ended: publishing its final checkpoint");
            match restored {
                Some(r) => {
                    let dir = self.checkpoints.as_ref().map(|c| c.dir.clone()).unwrap_or_default();
                    task::publish_final(&self.plan, &graph, self.tables.as_ref(), &dir, r).await
                }
                None => Ok(()),
            }
        } else {
            task::run_graph(
                &self.plan,
                &graph,
                self.metrics.clone(),
                &self.stop,
                self.tables.as_ref(),
                self.resume,
                link,
                restored,
                self.limits,
            )
            .await
        };
        if let Some(c) = coordinator {
            c.abort();
        }
        result?;
        // A job that ran to its end keeps its final checkpoint: run again, it only makes
        // sure its last output is published (a kill between that and the exit must not
        // make the next run write everything a second time). Starting over is explicit.
        let m = &self.metrics;
        Ok(JobSummary {
            rows_in: JobMetrics::get(&m.rows_in),
            rows_out: JobMetrics::get(&m.rows_out),
            records_skipped: JobMetrics::get(&m.records_skipped),
            late_rows_dropped: JobMetrics::get(&m.late_rows_dropped),
            late_rows_by_operator: m.late_rows_by_operator(),
            elapsed: start.elapsed(),
            stopped: self.stop.is_stopped(),
            restored_epoch,
            restore_time,
            already_finished: finished,
            first_row_after: match JobMetrics::get(&m.first_row_micros) {
                0 => None,
                us => Some(Duration::from_micros(us)),
            },
            checkpoints: JobMetrics::get(&m.checkpoints_completed),
            max_checkpoint: Duration::from_millis(JobMetrics::get(&m.max_checkpoint_duration_ms)),
            last_checkpoint_bytes: JobMetrics::get(&m.last_checkpoint_bytes),
        })
    }
}

impl Job {
    /// With checkpoints: read the latest complete one (refusing one of another plan) and
    /// start the coordinator. Returns the subtasks' link to it, its task, and the state to
    /// restore.
    #[allow(clippy::type_complexity)]
    fn start_checkpoints(
        &self,
        graph: &graph::ChainGraph,
    ) -> Result<(Option<checkpoint::TaskLink>, Option<tokio::task::JoinHandle<()>>, Option<checkpoint::Restored>)> {
        let Some(config) = &self.checkpoints else {
            refuse_exactly_once_without_checkpoints(&self.plan)?;
            return Ok((None, None, None));
        };
        let fingerprint = fingerprint(&self.plan);
        let restored = checkpoint::store::latest(&config.dir)?;
        if let Some(m) = restored.as_ref().and_then(|r| r.manifest.as_ref()) {
            if m.fingerprint != fingerprint {
                return Err(EngineError::Checkpoint(format!(
                    "the checkpoint in {} (epoch {}) was written by a different plan: the SQL or its settings \
                     changed since. Start fresh by removing that directory (eddy run --fresh does)",
                    config.dir.display(),
                    m.epoch
                )));
            }
            tracing::info!(epoch = m.epoch, dir = %config.dir.display(), "restoring from checkpoint");
        }
        let last = checkpoint::store::last_epoch(&config.dir)?;
        let restored_epoch = restored.as_ref().map_or(0, |r| r.epoch());
        let tasks = graph.chains.iter().map(|c| c.parallelism).sum();
        let (link, handle) = checkpoint::start(
            config.clone(),
            fingerprint,
            tasks,
            last,
            restored_epoch,
            self.metrics.clone(),
            self.stop.subscribe(),
        );
        Ok((Some(link), Some(handle), restored))
    }
}

/// A plan's identity for checkpoints: a hash (FNV-1a, stable across builds) of its
/// EXPLAIN text, which names every operator, its keys, schema-relevant settings and
/// parallelism. A checkpoint restores only into the plan that wrote it.
pub fn fingerprint(plan: &StreamPlan) -> String {
    format!("{:016x}", checkpoint::stable_hash(&eddy_sql::explain::render(plan)))
}

/// Validate a plan without running it (`eddy check`): connector options of every source
/// and sink, and operators the runtime can execute.
pub fn check(plan: &StreamPlan) -> Result<()> {
    if plan.batch {
        check_bounded(plan)?;
    }
    for n in &plan.nodes {
        match &n.operator {
            Operator::Source(t) if is_managed(t) => {
                shape(t)?;
            }
            Operator::Source(t) => eddy_connectors::validate(&connector_table(t), true, false)?,
            Operator::Sink(t) if is_managed(t) => {
                if n.updating && t.primary_key.is_empty() {
                    let producer = match n.inputs.first() {
                        Some(i) => eddy_sql::explain::update_producer(plan, *i),
                        None => "(unknown)".into(),
                    };
                    return Err(EngineError::Plan(format!(
                        "Table sink '{}' doesn't support consuming update changes which is produced by node {producer}; \
                         declare a PRIMARY KEY on the result table to keep the latest row per key",
                        t.name
                    )));
                }
                shape(t)?;
            }
            Operator::Sink(t) => {
                let table = connector_table(t);
                eddy_connectors::validate(&table, false, true)?;
                if n.updating && !eddy_connectors::accepts_updates(&table)? {
                    // Flink's wording, naming the operator that turns the stream into updates.
                    let producer = match n.inputs.first() {
                        Some(i) => eddy_sql::explain::update_producer(plan, *i),
                        None => "(unknown)".into(),
                    };
                    return Err(EngineError::Plan(format!(
                        "Table sink '{}' doesn't support consuming update changes which is produced by node {producer}",
                        t.name
                    )));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Batch mode reads bounded sources only (Flink's rule): a job that never ends has no
/// final result to emit.
fn check_bounded(plan: &StreamPlan) -> Result<()> {
    for n in &plan.nodes {
        let Operator::Source(t) = &n.operator else { continue };
        // A result table is followed for its changes until the job is stopped.
        if is_managed(t) || !eddy_connectors::is_bounded(&connector_table(t))? {
            return Err(EngineError::Plan(format!(
                "Querying an unbounded table '{}' in batch mode is not allowed. The table source is unbounded. \
                 Bound it (Kafka: 'scan.bounded.mode'; datagen: 'number-of-rows') or run in streaming mode",
                t.name
            )));
        }
    }
    Ok(())
}

/// Whether a table is kept by Eddy (declared with no `connector`).
pub fn is_managed(t: &TableSpec) -> bool {
    !t.options.iter().any(|(k, _)| k == "connector")
}

/// How a managed table is opened: its columns, key and retention.
fn shape(t: &TableSpec) -> Result<TableShape> {
    result_table_shape(&t.name, t.schema.clone(), &t.primary_key, &t.options, t.rowtime.as_deref())
}

/// How a table declared with no `connector` is kept: `schema` holds the columns a sink
/// writes, `rowtime` is its WATERMARK column (retention counts event time by it when the
/// table stores it, insert time otherwise). The only option is `'retention'`.
pub fn result_table_shape(
    name: &str,
    schema: arrow::datatypes::SchemaRef,
    primary_key: &[String],
    options: &[(String, String)],
    rowtime: Option<&str>,
) -> Result<TableShape> {
    let mut retention = None;
    for (k, v) in options {
        match k.as_str() {
            "retention" => {
                let keep = eddy_connectors::options::parse_duration(v).ok_or_else(|| {
                    EngineError::Plan(format!(
                        "table '{name}': option 'retention' = '{v}' is not a duration (e.g. '1 h', '30 min', '7 d')"
                    ))
                })?;
                let column = rowtime.filter(|c| schema.index_of(c).is_ok()).map(str::to_string);
                retention = Some((keep, column));
            }
            "sink.parallelism" => {}
            other => {
                return Err(EngineError::Plan(format!(
                    "table '{name}' has no 'connector', so Eddy keeps it as a result table, which takes only the \
                     option 'retention'; unsupported option '{other}' (did you forget 'connector'?)"
                )))
            }
        }
    }
    Ok(TableShape { name: name.to_string(), schema, primary_key: primary_key.to_vec(), retention })
}

/// Open the result table a sink writes.
/// An exactly-once Kafka sink publishes at checkpoints: without them it would publish
/// nothing until the input ends (never, for a stream).
fn refuse_exactly_once_without_checkpoints(plan: &StreamPlan) -> Result<()> {
    for node in &plan.nodes {
        let Operator::Sink(t) = &node.operator else { continue };
        let exactly_once = t.options.iter().any(|(k, v)| {
            matches!(k.as_str(), "sink.delivery-guarantee" | "sink.semantic")
                && matches!(v.trim().to_ascii_lowercase().as_str(), "exactly-once" | "exactly_once")
        });
        if exactly_once {
            return Err(EngineError::Plan(format!(
                "table '{}' has 'sink.delivery-guarantee' = 'exactly-once', which publishes rows when a \
                 checkpoint completes, but this job takes no checkpoints: SET \
                 'execution.checkpointing.interval' = '10 s' (eddy run also needs --state-dir), or use \
                 'at-least-once'",
                t.name
            )));
        }
    }
    Ok(())
}

pub(crate) fn open_result_table(tables: Option<&Arc<ResultTables>>, t: &TableSpec) -> Result<Arc<ResultTable>> {
    let tables = tables.ok_or_else(|| {
        EngineError::Plan(format!(
            "table '{}' has no 'connector' and this job has no state directory to keep it in",
            t.name
        ))
    })?;
    tables.open(&shape(t)?).map_err(|e| EngineError::Plan(format!("result table '{}': {e}", t.name)))
}

/// The connector's view of a table.
pub fn connector_table(t: &TableSpec) -> ConnectorTable {
    ConnectorTable {
        name: t.name.clone(),
        schema: t.schema.clone(),
        metadata: t.metadata.clone(),
        primary_key: t.primary_key.clone(),
        partition_keys: t.partition_keys.clone(),
        distribution: t
            .distribution
            .as_ref()
            .map(|(columns, buckets)| eddy_connectors::Distribution { columns: columns.clone(), buckets: *buckets }),
        options: Options::new(t.options.iter().cloned()),
        unread: t.unread.clone(),
    }
}
