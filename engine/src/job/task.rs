//! Running chains: one tokio task per chain subtask, bounded channels between them.
//!
//! ```text
//!  input (source split | VALUES | channel merge) ─▶ operator chain ─▶ output (sink | channels)
//! ```
//! A channel-fed subtask merges its inputs: watermarks are min-combined over the inputs
//! still open, and it ends when every input has ended. A channel that closes without an
//! `End` means the upstream task failed; the job's first error is the one reported.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::UInt32Array;
use arrow::compute::take_record_batch;
use datafusion::common::hash_utils::{create_hashes, RandomState};
use datafusion::physical_expr::PhysicalExpr;
use eddy_connectors::{Sink, Source, Split};
use eddy_sql::plan::{Operator, StreamPlan};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::graph::{ChainGraph, Partitioning};
use super::{connector_table, is_managed, open_result_table, StopHandle};
use crate::checkpoint::{store, Ack, Restored, StateSnapshot, TaskLink, FINAL_EPOCH};
use crate::error::{EngineError, Result};
use crate::message::{Batch, Message, Watermark};
use crate::metrics::JobMetrics;
use crate::operators::{
    build_stateful, run_chain, FilterOperator, OperatorContext, ProjectOperator, StreamOperator, UnnestOperator,
    WatermarkOperator,
};
use crate::result_table::{ResultTableSink, ResultTableSource, ResultTables};
use eddy_sql::explain::describe;

/// Messages buffered per channel: enough to keep both sides busy, small enough that a slow
/// sink quickly slows its sources.
const CHANNEL_CAPACITY: usize = 16;

/// A message tagged with the receiving subtask's input number.
type Envelope = (usize, Message);

/// Where one subtask's outputs go along one edge.
enum EdgeOutput {
    Forward(mpsc::Sender<Envelope>, usize),
    Rebalance { targets: Vec<(mpsc::Sender<Envelope>, usize)>, next: usize },
    Hash { targets: Vec<(mpsc::Sender<Envelope>, usize)>, keys: Vec<Arc<dyn PhysicalExpr>> },
}

/// Key groups (Flink's default maximum parallelism): the unit keyed state is sharded in.
const KEY_GROUPS: u64 = 128;

/// Every subtask must send a key to the same place: a fixed seed, not a random one.
const EXCHANGE_HASH: RandomState = RandomState::with_seed(0x5eed_edd1);

/// What feeds a subtask.
enum Input {
    Source(SourceFeed),
    Values(std::vec::IntoIter<arrow::record_batch::RecordBatch>),
    Channels(ChannelInput),
}

/// Merges the channel inputs of a subtask.
struct ChannelInput {
    rx: mpsc::Receiver<Envelope>,
    watermarks: Vec<Watermark>,
    ended: Vec<bool>,
    /// Inputs that said they are idle and have sent nothing since.
    idle: Vec<bool>,
    emitted: Watermark,
    /// Whether `Idle` was passed on (all open inputs idle) and nothing arrived since.
    emitted_idle: bool,
    /// Barrier alignment: the epoch being aligned, and the inputs that delivered it. Their
    /// later messages wait in `held` until every open input has delivered it too.
    aligning: Option<u64>,
    arrived: Vec<bool>,
    held: std::collections::VecDeque<Envelope>,
    /// Messages released after an alignment, taken before the channel.
    released: std::collections::VecDeque<Envelope>,
    /// Messages to pass on before reading more (a barrier completed by an input's end).
    pending_out: std::collections::VecDeque<Message>,
}

impl ChannelInput {
    fn new(rx: mpsc::Receiver<Envelope>, inputs: usize) -> Self {
        Self {
            rx,
            watermarks: vec![Watermark::MIN; inputs],
            ended: vec![false; inputs],
            idle: vec![false; inputs],
            emitted: Watermark::MIN,
            emitted_idle: false,
            aligning: None,
            arrived: vec![false; inputs],
            held: std::collections::VecDeque::new(),
            released: std::collections::VecDeque::new(),
            pending_out: std::collections::VecDeque::new(),
        }
    }
}

/// A subtask's part in checkpoints: which plan nodes its state belongs to, and how it
/// reaches the coordinator.
struct SubtaskCheckpoint {
    link: Option<TaskLink>,
    /// The plan node at the head of its chain.
    head: usize,
    subtask: usize,
    /// The plan node of the source split it reads, if any.
    source_node: Option<usize>,
    /// The plan node of each operator in the chain.
    op_nodes: Vec<usize>,
    /// The plan node of its sink, if any.
    sink_node: Option<usize>,
    /// After a restore: the sink's state at the checkpoint (`Some(None)`: it kept none).
    sink_recover: Option<Option<serde_json::Value>>,
    /// The job's stop: an input that ended because of it is not the job's end (no final
    /// checkpoint; the job resumes from its last one).
    stop: StopHandle,
}

pub(crate) async fn run_graph(
    plan: &StreamPlan,
    graph: &ChainGraph,
    metrics: Arc<JobMetrics>,
    stop: &StopHandle,
    tables: Option<&Arc<ResultTables>>,
    resume: bool,
    checkpoints: Option<TaskLink>,
    mut restored: Option<Restored>,
    limits: super::StateLimits,
) -> Result<()> {
    // Receivers and input counts per (chain, subtask).
    let mut senders: Vec<Vec<Option<mpsc::Sender<Envelope>>>> = Vec::new();
    let mut receivers: Vec<Vec<Option<mpsc::Receiver<Envelope>>>> = Vec::new();
    let mut input_counts: Vec<Vec<usize>> = Vec::new();
    for chain in &graph.chains {
        let has_inputs = graph.edges.iter().any(|e| e.to == senders.len());
        let mut s = Vec::new();
        let mut r = Vec::new();
        for _ in 0..chain.parallelism {
            if has_inputs {
                let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
                s.push(Some(tx));
                r.push(Some(rx));
            } else {
                s.push(None);
                r.push(None);
            }
        }
        senders.push(s);
        receivers.push(r);
        input_counts.push(vec![0; chain.parallelism]);
    }
    // Outputs per (chain, subtask), assigning input numbers on the receiving side.
    let mut outputs: Vec<Vec<Vec<EdgeOutput>>> =
        graph.chains.iter().map(|c| (0..c.parallelism).map(|_| Vec::new()).collect()).collect();
    for edge in &graph.edges {
        let down = graph.chains[edge.to].parallelism;
        for (u, upstream) in outputs[edge.from].iter_mut().enumerate() {
            let out = match &edge.partitioning {
                Partitioning::Forward => {
                    let tx = sender(&senders, edge.to, u)?;
                    let id = next_input(&mut input_counts, edge.to, u);
                    EdgeOutput::Forward(tx, id)
                }
                Partitioning::Rebalance | Partitioning::Hash(_) => {
                    let mut targets = Vec::with_capacity(down);
                    for d in 0..down {
                        let tx = sender(&senders, edge.to, d)?;
                        targets.push((tx, next_input(&mut input_counts, edge.to, d)));
                    }
                    match &edge.partitioning {
                        Partitioning::Hash(keys) => EdgeOutput::Hash { targets, keys: keys.clone() },
                        _ => EdgeOutput::Rebalance { targets, next: u % down.max(1) },
                    }
                }
            };
            upstream.push(out);
        }
    }
    drop(senders);

    let is_restoring = restored.is_some();
    let mut tasks: JoinSet<Result<()>> = JoinSet::new();
    for (c, chain) in graph.chains.iter().enumerate() {
        for sub in (0..chain.parallelism).rev() {
            let head = &plan.nodes[chain.head()];
            let trigger = checkpoints.as_ref().map(|l| l.trigger.clone());
            // With checkpoints a stop is taken at a checkpoint (the coordinator asks the
            // sources); sources end at once only when it says so.
            let drain = match &checkpoints {
                Some(l) => l.drain.clone(),
                None => stop.subscribe(),
            };
            let stop_epoch = checkpoints.as_ref().map(|l| l.stop_epoch.clone());
            // A source subtask that had read all its input when the checkpoint was taken
            // is not run again: what it read is in the state downstream.
            let finished_before = restored
                .as_ref()
                .and_then(|r| r.manifest.as_ref())
                .is_some_and(|m| m.finished_tasks.contains(&(chain.head(), sub)));
            let mut take_state = |node: usize| restored.as_mut().and_then(|r| r.take(node, sub));
            let input = match &head.operator {
                Operator::Source(_) | Operator::Values(_) if finished_before => Input::Values(Vec::new().into_iter()),
                Operator::Source(t) if is_managed(t) => Input::Source(SourceFeed::start(
                    Box::new(ResultTableSource::new(
                        open_result_table(tables, t)?,
                        Split { index: sub, count: chain.parallelism },
                    )),
                    drain.clone(),
                    trigger.clone(),
                    stop_epoch.clone(),
                    t.name.clone(),
                    metrics.clone(),
                )),
                Operator::Source(t) => {
                    let position = take_state(chain.head()).map(|s| s.meta);
                    Input::Source(SourceFeed::start(
                        eddy_connectors::create_source_at(
                            &source_table(t, resume && position.is_none()),
                            Split { index: sub, count: chain.parallelism },
                            position.as_ref(),
                        )?,
                        drain.clone(),
                        trigger.clone(),
                        stop_epoch.clone(),
                        t.name.clone(),
                        metrics.clone(),
                    ))
                }
                Operator::Values(batches) => {
                    Input::Values(if sub == 0 { batches.clone() } else { Vec::new() }.into_iter())
                }
                _ => {
                    let n = input_counts[c][sub];
                    let rx =
                        receivers[c][sub].take().ok_or_else(|| EngineError::Internal("receiver taken twice".into()))?;
                    Input::Channels(ChannelInput::new(rx, n))
                }
            };
            let mut ops: Vec<Box<dyn StreamOperator>> = Vec::new();
            let mut op_nodes: Vec<usize> = Vec::new();
            let mut sink: Option<SinkOut> = None;
            let mut sink_node = None;
            for id in &chain.nodes {
                let node = &plan.nodes[*id];
                let before = ops.len();
                if matches!(node.operator, Operator::Sink(_)) {
                    sink_node = Some(*id);
                }
                match &node.operator {
                    Operator::Project(exprs) => {
                        ops.push(Box::new(ProjectOperator::new(exprs.clone(), node.schema.clone())))
                    }
                    Operator::Filter(p) => ops.push(Box::new(FilterOperator::new(p.clone()))),
                    Operator::Watermark(w) => ops.push(Box::new(WatermarkOperator::new(w.clone()))),
                    Operator::Unnest(u) => ops.push(Box::new(UnnestOperator::new(u.clone(), node.schema.clone()))),
                    Operator::Sink(t) if is_managed(t) => {
                        let job_dir = checkpoints.as_ref().map(|l| l.dir.as_path());
                        let out = result_table_sink(tables, t, job_dir, *id, sub, is_restoring)?;
                        sink = Some(SinkOut::new(out, &metrics))
                    }
                    Operator::Sink(t) => {
                        sink = Some(SinkOut::new(
                            eddy_connectors::create_sink(
                                &connector_table(t),
                                Split { index: sub, count: chain.parallelism },
                            )?,
                            &metrics,
                        ))
                    }
                    Operator::Source(_) | Operator::Values(_) | Operator::Union => {}
                    stateful => {
                        let input_schema = match node.inputs.first() {
                            Some(i) => plan.nodes[*i].schema.clone(),
                            None => node.schema.clone(),
                        };
                        let ctx = OperatorContext {
                            input_schema,
                            output_schema: node.schema.clone(),
                            late_rows: metrics.late_counter(&operator_label(*id, stateful)),
                            state_ttl: limits.ttl,
                        };
                        if let Some(op) = build_stateful(stateful, ctx)? {
                            ops.push(op);
                        }
                    }
                }
                if ops.len() > before {
                    op_nodes.push(*id);
                }
            }
            // Restored: each operator takes its state back before the first message.
            let mut take_state = |node: usize| restored.as_mut().and_then(|r| r.take(node, sub));
            for (op, node) in ops.iter_mut().zip(&op_nodes) {
                if let Some(state) = take_state(*node) {
                    op.restore_state(state)?;
                }
            }
            let sink_recover = match sink_node {
                Some(node) if is_restoring => Some(take_state(node).map(|s| s.meta)),
                _ => None,
            };
            let source_node = matches!(head.operator, Operator::Source(_)).then(|| chain.head());
            let labels: Vec<String> = op_nodes.iter().map(|n| operator_label(*n, &plan.nodes[*n].operator)).collect();
            let cp = SubtaskCheckpoint {
                link: checkpoints.clone(),
                head: chain.head(),
                subtask: sub,
                source_node,
                op_nodes,
                sink_node,
                sink_recover,
                stop: stop.clone(),
            };
            let outs = outputs[c].pop().ok_or_else(|| EngineError::Internal("missing outputs".into()))?;
            let metrics = metrics.clone();
            let state = StateAccount { limit: limits.memory_limit, labels, held: 0, subtask: sub };
            tasks.spawn(run_subtask(input, ops, sink, outs, metrics, cp, state));
        }
    }
    let mut first_error: Option<EngineError> = None;
    let mut upstream_stopped = false;
    while let Some(joined) = tasks.join_next().await {
        let result = joined.unwrap_or_else(|e| Err(EngineError::Internal(format!("task failed: {e}"))));
        match result {
            // A downstream task may notice a failure before the failed task is joined:
            // keep waiting for the cause (closed channels end the rest).
            Err(EngineError::UpstreamStopped) => upstream_stopped = true,
            Err(e) if first_error.is_none() => {
                first_error = Some(e);
                // Fail fast: the other tasks would only wait on closed channels.
                tasks.abort_all();
            }
            _ => {}
        }
    }
    match first_error {
        Some(e) => Err(e),
        None if upstream_stopped => Err(EngineError::UpstreamStopped),
        None => Ok(()),
    }
}

/// After a crash that followed a job's final checkpoint: its input had ended, so nothing
/// runs again; each sink publishes what the final checkpoint says it pre-committed.
pub(crate) async fn publish_final(
    plan: &StreamPlan,
    graph: &ChainGraph,
    tables: Option<&Arc<ResultTables>>,
    job_dir: &Path,
    mut restored: Restored,
) -> Result<()> {
    for chain in &graph.chains {
        for id in &chain.nodes {
            let Operator::Sink(t) = &plan.nodes[*id].operator else { continue };
            for sub in 0..chain.parallelism {
                let mut sink: Box<dyn Sink> = if is_managed(t) {
                    result_table_sink(tables, t, Some(job_dir), *id, sub, true)?
                } else {
                    eddy_connectors::create_sink(&connector_table(t), Split { index: sub, count: chain.parallelism })?
                };
                let state = restored.take(*id, sub).map(|s| s.meta).filter(|m| !m.is_null());
                sink.recover(state).await?;
                sink.finish().await?;
            }
        }
    }
    Ok(())
}

/// The sink into a managed table. In a checkpointing job (`job_dir` is its checkpoint
/// directory) it is exactly once, as sink subtask `sub` of node `node` of that job: the
/// identity is the directory's name (not its path: a moved state directory is the same
/// job), the node and the subtask.
fn result_table_sink(
    tables: Option<&Arc<ResultTables>>,
    t: &eddy_sql::plan::TableSpec,
    job_dir: Option<&Path>,
    node: usize,
    sub: usize,
    resuming: bool,
) -> Result<Box<dyn Sink>> {
    let table = open_result_table(tables, t)?;
    let Some(dir) = job_dir else { return Ok(Box::new(ResultTableSink::new(table))) };
    let job = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // Never 0, which means "no checkpointing writer".
    let writer = crate::checkpoint::stable_hash(&format!("{job}#{node}-{sub}")).max(1);
    Ok(Box::new(ResultTableSink::checkpointed(table, writer, resuming)?))
}

/// A source's connector table; a resumed job's Kafka sources start at their group's
/// committed offsets.
fn source_table(t: &eddy_sql::plan::TableSpec, resume: bool) -> eddy_connectors::ConnectorTable {
    let mut table = connector_table(t);
    let kafka = matches!(t.connector().trim().to_ascii_lowercase().as_str(), "kafka" | "upsert-kafka");
    if resume && kafka {
        let options = table
            .options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain(std::iter::once((eddy_connectors::KAFKA_RESUME_OPTION.to_string(), "true".to_string())))
            .collect::<Vec<_>>();
        table.options = eddy_connectors::Options::new(options);
    }
    table
}

/// `#4 WindowAggregate`: the node id (as EXPLAIN prints it) and the operator kind.
fn operator_label(id: usize, op: &Operator) -> String {
    let d = describe(op);
    format!("#{id} {}", d.split(':').next().unwrap_or(&d))
}

fn sender(senders: &[Vec<Option<mpsc::Sender<Envelope>>>], chain: usize, sub: usize) -> Result<mpsc::Sender<Envelope>> {
    senders[chain][sub].clone().ok_or_else(|| EngineError::Internal("no channel for a chained input".into()))
}

fn next_input(counts: &mut [Vec<usize>], chain: usize, sub: usize) -> usize {
    let id = counts[chain][sub];
    counts[chain][sub] += 1;
    id
}

async fn run_subtask(
    mut input: Input,
    mut ops: Vec<Box<dyn StreamOperator>>,
    mut sink: Option<SinkOut>,
    mut outputs: Vec<EdgeOutput>,
    metrics: Arc<JobMetrics>,
    mut cp: SubtaskCheckpoint,
    mut state: StateAccount,
) -> Result<()> {
    let result = run_subtask_loop(&mut input, &mut ops, &mut sink, &mut outputs, &metrics, &mut cp, &mut state).await;
    // What it held is no longer held.
    let _ = state.record(&[], &metrics);
    // A failed subtask: the job ends without a final checkpoint. (One that ended normally
    // said so when its input ended.)
    if let (Some(link), Err(_)) = (&cp.link, &result) {
        let _ = link.acks.send(Ack::Failed);
    }
    result
}

/// The state a subtask's operators hold, in the job's total, against the job's limit.
struct StateAccount {
    limit: Option<u64>,
    /// Each operator's name for messages (`#4 WindowAggregate`).
    labels: Vec<String>,
    /// What this subtask added to the job's total.
    held: i64,
    subtask: usize,
}

impl StateAccount {
    /// Bring the job's total up to date with the operators' state now; fail when it
    /// outgrew the limit, naming this subtask's biggest operator.
    fn record(&mut self, ops: &[Box<dyn StreamOperator>], metrics: &JobMetrics) -> Result<()> {
        if ops.is_empty() && self.held == 0 {
            return Ok(());
        }
        let sizes: Vec<usize> = ops.iter().map(|o| o.state_bytes()).collect();
        let now: i64 = sizes.iter().sum::<usize>() as i64;
        let delta = now - self.held;
        self.held = now;
        if delta == 0 {
            return Ok(());
        }
        let total = metrics.state_bytes.fetch_add(delta, std::sync::atomic::Ordering::Relaxed) + delta;
        metrics.peak_state_bytes.fetch_max(total, std::sync::atomic::Ordering::Relaxed);
        match self.limit {
            Some(limit) if total > limit as i64 && delta > 0 => {
                let (i, biggest) = sizes.iter().enumerate().max_by_key(|(_, s)| **s).unwrap_or((0, &0));
                let label = self.labels.get(i).map_or("an operator", String::as_str);
                Err(EngineError::StateLimit(format!(
                    "the job's state ({:.1} MB) outgrew 'eddy.state.memory-limit' ({:.1} MB); the largest here is \
                     {label} (subtask {}) with {:.1} MB. Raise the limit, shorten the windows, or let non-windowed \
                     state expire with 'table.exec.state.ttl'",
                    total as f64 / 1e6,
                    limit as f64 / 1e6,
                    self.subtask,
                    *biggest as f64 / 1e6
                )))
            }
            _ => Ok(()),
        }
    }
}

/// What woke a subtask.
enum Wake {
    Message(Message),
    Timer,
    Completed(u64),
}

async fn run_subtask_loop(
    input: &mut Input,
    ops: &mut Vec<Box<dyn StreamOperator>>,
    sink: &mut Option<SinkOut>,
    outputs: &mut [EdgeOutput],
    metrics: &Arc<JobMetrics>,
    cp: &mut SubtaskCheckpoint,
    state: &mut StateAccount,
) -> Result<()> {
    if let (Some(state), Some(s)) = (cp.sink_recover.take(), sink.as_mut()) {
        s.sink.recover(state).await?;
    }
    // A sink commits what it pre-committed once the coordinator completes the epoch.
    let mut completed = cp.link.as_ref().filter(|_| sink.is_some()).map(|l| l.completed.clone());
    loop {
        // Operators with wall-clock work (periodic watermarks, idleness, early firing) are
        // woken when it is due. Waiting on a channel (from upstream tasks or from the
        // source's reader) can be abandoned for that without losing anything.
        let timer = ops.iter().filter_map(|o| o.next_processing_time()).min();
        let timed = timer.filter(|_| !matches!(input, Input::Values(_)));
        let wake = tokio::select! {
            m = next_message(input, metrics) => Wake::Message(m?),
            _ = sleep_until(timed), if timed.is_some() => Wake::Timer,
            epoch = next_completed(&mut completed) => Wake::Completed(epoch),
        };
        let msg = match wake {
            Wake::Message(m) => m,
            Wake::Timer => {
                for out in fire_processing_time(ops, Instant::now())? {
                    deliver(out, sink, outputs, metrics).await?;
                }
                state.record(ops, metrics)?;
                continue;
            }
            Wake::Completed(epoch) => {
                if let Some(s) = sink.as_mut() {
                    s.sink.commit(epoch).await?;
                }
                continue;
            }
        };
        if let Message::Barrier(epoch) = msg {
            take_checkpoint(epoch, input, ops, sink, outputs, metrics, cp).await?;
            if let Some(link) =
                cp.link.as_ref().filter(|l| l.stop_epoch.load(std::sync::atomic::Ordering::SeqCst) == epoch)
            {
                // Stopped at this checkpoint: a sink publishes what it covers, once complete;
                // nothing after it exists, and the end-of-input flush does not happen (the
                // job resumes from here).
                if let Some(s) = sink.as_mut() {
                    let mut completed = link.completed.clone();
                    if completed.wait_for(|e| *e >= epoch).await.is_ok() && *completed.borrow() == epoch {
                        s.sink.commit(epoch).await?;
                    }
                }
                if let Input::Source(feed) = input {
                    JobMetrics::add(&metrics.records_skipped, feed.finish().await);
                }
                return Ok(());
            }
            continue;
        }
        let is_end = matches!(msg, Message::End);
        for out in run_chain(ops, msg)? {
            if matches!(out, Message::End) && cp.link.is_some() {
                end_with_final_checkpoint(sink, outputs, metrics, cp).await?;
            } else {
                deliver(out, sink, outputs, metrics).await?;
            }
        }
        state.record(ops, metrics)?;
        if is_end {
            if let Input::Source(feed) = input {
                JobMetrics::add(&metrics.records_skipped, feed.finish().await);
            }
            return Ok(());
        }
    }
}

/// The input ended, in a job that checkpoints: pass the end on, then — for a sink —
/// pre-commit everything written, give that to the coordinator's final checkpoint, and
/// publish only once that checkpoint is written. A crash before it re-runs from the last
/// checkpoint (nothing was published); a crash after it publishes from the final one.
async fn end_with_final_checkpoint(
    sink: &mut Option<SinkOut>,
    outputs: &mut [EdgeOutput],
    metrics: &Arc<JobMetrics>,
    cp: &SubtaskCheckpoint,
) -> Result<()> {
    let link = match &cp.link {
        Some(link) if !cp.stop.is_stopped() => link,
        _ => return deliver(Message::End, sink, outputs, metrics).await,
    };
    let mut no_sink = None;
    deliver(Message::End, &mut no_sink, outputs, metrics).await?;
    let (Some(s), Some(node)) = (sink.as_mut(), cp.sink_node) else {
        let _ = link.acks.send(Ack::Finished { task: (cp.head, cp.subtask), sink: None });
        return Ok(());
    };
    let state = s.sink.pre_commit(FINAL_EPOCH).await?;
    let mut completed = link.completed.clone();
    let _ = link.acks.send(Ack::Finished { task: (cp.head, cp.subtask), sink: Some((node, cp.subtask, state)) });
    if completed.wait_for(|e| *e == FINAL_EPOCH).await.is_err() {
        return Err(EngineError::Checkpoint("the job ended before its final checkpoint was written".into()));
    }
    s.sink.finish().await?;
    Ok(())
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// The next epoch the coordinator completes (never, without a coordinator).
async fn next_completed(rx: &mut Option<watch::Receiver<u64>>) -> u64 {
    let Some(r) = rx.as_mut() else { return std::future::pending().await };
    if r.changed().await.is_err() {
        *rx = None;
        return std::future::pending().await;
    }
    rx.as_mut().map_or(0, |r| *r.borrow_and_update())
}

/// Checkpoint barrier `epoch` reached this subtask (aligned over its inputs): snapshot the
/// source position and every operator's state, pre-commit the sink, pass the barrier on,
/// then write the states and acknowledge.
async fn take_checkpoint(
    epoch: u64,
    input: &mut Input,
    ops: &mut [Box<dyn StreamOperator>],
    sink: &mut Option<SinkOut>,
    outputs: &mut [EdgeOutput],
    metrics: &Arc<JobMetrics>,
    cp: &SubtaskCheckpoint,
) -> Result<()> {
    let Some(link) = &cp.link else {
        return deliver(Message::Barrier(epoch), sink, outputs, metrics).await;
    };
    let mut states: Vec<(usize, StateSnapshot)> = Vec::new();
    let mut declined: Option<String> = None;
    if let (Input::Source(feed), Some(node)) = (&mut *input, cp.source_node) {
        match feed.barrier_position.take().flatten() {
            Some(position) => states.push((node, StateSnapshot::meta(position))),
            None => declined = Some(format!("source '{}' cannot resume from a checkpoint", feed.table)),
        }
    }
    for (op, node) in ops.iter_mut().zip(&cp.op_nodes) {
        match op.snapshot_state() {
            Ok(Some(state)) => states.push((*node, state)),
            Ok(None) => {}
            Err(EngineError::Checkpoint(reason)) => {
                declined.get_or_insert(reason);
            }
            Err(e) => return Err(e),
        }
    }
    if let (Some(s), Some(node)) = (sink.as_mut(), cp.sink_node) {
        if let Some(state) = s.sink.pre_commit(epoch).await? {
            states.push((node, StateSnapshot::meta(state)));
        }
    }
    // Downstream can go on with its part while this one writes its files.
    deliver(Message::Barrier(epoch), sink, outputs, metrics).await?;
    let ack = match declined {
        Some(reason) => Ack::Declined { task: (cp.head, cp.subtask), epoch, reason },
        None => {
            let (dir, subtask) = (link.dir.clone(), cp.subtask);
            let written = tokio::task::spawn_blocking(move || -> Result<(Vec<String>, u64)> {
                let (mut names, mut bytes) = (Vec::new(), 0);
                for (node, state) in &states {
                    bytes += store::write_state(&dir, epoch, *node, subtask, state)?;
                    names.push(store::state_name(*node, subtask));
                }
                Ok((names, bytes))
            })
            .await
            .map_err(|e| EngineError::Internal(format!("checkpoint writer failed: {e}")))?;
            match written {
                Ok((states, bytes)) => Ack::Done { task: (cp.head, cp.subtask), epoch, states, bytes },
                // A full disk fails the checkpoint, not the job.
                Err(e) => Ack::Declined { task: (cp.head, cp.subtask), epoch, reason: e.to_string() },
            }
        }
    };
    let _ = link.acks.send(ack);
    Ok(())
}

/// Run the wall-clock work that is due, passing each operator's output down the rest of
/// the chain.
fn fire_processing_time(ops: &mut [Box<dyn StreamOperator>], now: Instant) -> Result<Vec<Message>> {
    let mut outputs = Vec::new();
    for i in 0..ops.len() {
        if ops[i].next_processing_time().is_some_and(|t| t <= now) {
            let mut produced = Vec::new();
            ops[i].on_processing_time(now, &mut produced)?;
            let (_, rest) = ops.split_at_mut(i + 1);
            for m in produced {
                outputs.extend(run_chain(rest, m)?);
            }
        }
    }
    Ok(outputs)
}

async fn next_message(input: &mut Input, metrics: &JobMetrics) -> Result<Message> {
    match input {
        Input::Source(feed) => match feed.rx.recv().await {
            Some(FeedItem::Barrier(epoch, position)) => {
                feed.barrier_position = Some(position);
                Ok(Message::Barrier(epoch))
            }
            Some(FeedItem::Batch(Ok(b))) => {
                JobMetrics::add(&metrics.rows_in, b.batch.num_rows() as u64);
                if b.batch.num_rows() > 0 {
                    metrics.row_read();
                }
                Ok(Message::Data(Batch {
                    data: b.batch,
                    row_kinds: b.row_kinds,
                    arrival_watermarks: None,
                    partition: b.partition,
                }))
            }
            Some(FeedItem::Batch(Err(e))) => {
                tracing::debug!(table = %feed.table, "source failed");
                Err(e.into())
            }
            None => Ok(Message::End),
        },
        Input::Values(it) => Ok(match it.next() {
            Some(b) => {
                JobMetrics::add(&metrics.rows_in, b.num_rows() as u64);
                Message::Data(Batch::append(b))
            }
            None => Message::End,
        }),
        Input::Channels(ch) => ch.next().await,
    }
}

/// A source split read by its own tokio task into a channel: the subtask can then wait for
/// the next batch and for a timer at once (a source's `next_batch` cannot be abandoned
/// half-way), and a source that blocks (a quiet Kafka partition) does not stop the timers.
struct SourceFeed {
    /// Batches; closed after the last one (end of input, stop, or an error sent before).
    rx: mpsc::Receiver<FeedItem>,
    /// The reader; returns the source's count of skipped malformed records.
    reader: Option<tokio::task::JoinHandle<u64>>,
    table: String,
    /// The position sent with the last barrier, until the checkpoint takes it.
    barrier_position: Option<Option<serde_json::Value>>,
}

/// What a source's reader sends: batches, and checkpoint barriers in order with them.
enum FeedItem {
    Batch(eddy_connectors::Result<eddy_connectors::SourceBatch>),
    /// Barrier `epoch`, with where the source stands after the batches before it (`None`:
    /// it cannot resume, and the checkpoint is declined).
    Barrier(u64, Option<serde_json::Value>),
}

impl SourceFeed {
    fn start(
        mut source: Box<dyn Source>,
        mut stop: watch::Receiver<bool>,
        trigger: Option<watch::Receiver<u64>>,
        stop_epoch: Option<Arc<std::sync::atomic::AtomicU64>>,
        table: String,
        metrics: Arc<JobMetrics>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(2);
        let lag_of = table.clone();
        let reader = tokio::spawn(async move {
            // The source's lag, for /metrics: once a second is plenty.
            let mut lag_reported: Option<Instant> = None;
            // Barriers are injected between batches (a batch being read cannot be abandoned
            // half-way): the epochs asked for since the last one.
            let mut injected = trigger.as_ref().map_or(0, |t| *t.borrow());
            loop {
                if *stop.borrow() {
                    break;
                }
                if let Some(t) = &trigger {
                    let wanted = *t.borrow();
                    if wanted > injected {
                        injected = wanted;
                        if tx.send(FeedItem::Barrier(wanted, source.position())).await.is_err() {
                            break;
                        }
                        // The stop's barrier is the last thing this source sends.
                        if stop_epoch.as_ref().is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst) == wanted) {
                            return source.skipped_records();
                        }
                    }
                }
                let next = tokio::select! {
                    r = source.next_batch() => r,
                    _ = stop.changed() => break,
                };
                if lag_reported.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(1)) {
                    metrics.record_source_lag(&lag_of, source.lag());
                    lag_reported = Some(Instant::now());
                }
                let last = !matches!(next, Ok(Some(_)));
                let item = match next {
                    Ok(Some(b)) => Ok(b),
                    Ok(None) => break,
                    Err(e) => Err(e),
                };
                if tx.send(FeedItem::Batch(item)).await.is_err() || last {
                    break;
                }
            }
            source.skipped_records()
        });
        Self { rx, reader: Some(reader), table, barrier_position: None }
    }

    /// Wait for the reader to end; the malformed records it skipped.
    async fn finish(&mut self) -> u64 {
        match self.reader.take() {
            Some(r) => r.await.unwrap_or(0),
            None => 0,
        }
    }
}

impl Drop for SourceFeed {
    fn drop(&mut self) {
        // A failed job must not leave a reader blocked in a source.
        if let Some(r) = &self.reader {
            r.abort();
        }
    }
}

impl ChannelInput {
    async fn next(&mut self) -> Result<Message> {
        loop {
            if let Some(m) = self.pending_out.pop_front() {
                return Ok(m);
            }
            let (i, msg) = match self.released.pop_front() {
                Some(envelope) => envelope,
                None => {
                    if self.ended.iter().all(|e| *e) {
                        return Ok(Message::End);
                    }
                    match self.rx.recv().await {
                        Some(envelope) => envelope,
                        None => return Err(EngineError::UpstreamStopped),
                    }
                }
            };
            if let Some(m) = self.receive(i, msg) {
                return Ok(m);
            }
        }
    }

    /// Whether every open input has delivered the barrier being aligned; if so, end the
    /// alignment (the held messages go first, in order) and answer its epoch.
    fn alignment_done(&mut self) -> Option<u64> {
        let epoch = self.aligning?;
        if (0..self.arrived.len()).any(|j| !self.arrived[j] && !self.ended[j]) {
            return None;
        }
        self.aligning = None;
        self.arrived.iter_mut().for_each(|a| *a = false);
        let held = std::mem::take(&mut self.held);
        // Held messages came after the barrier: after what was released before them.
        self.released.extend(held);
        Some(epoch)
    }

    /// Take one input message; what to pass on, if anything.
    fn receive(&mut self, i: usize, msg: Message) -> Option<Message> {
        // An input that delivered the barrier being aligned waits for the others.
        if self.aligning.is_some() && self.arrived[i] {
            self.held.push_back((i, msg));
            return None;
        }
        match msg {
            Message::Barrier(epoch) => {
                self.arrived[i] = true;
                self.aligning = Some(epoch);
                self.alignment_done().map(Message::Barrier)
            }
            Message::Data(b) => {
                self.active(i);
                Some(Message::Data(b))
            }
            Message::Watermark(w) => {
                self.active(i);
                self.watermarks[i] = self.watermarks[i].max(w);
                self.advance().map(Message::Watermark)
            }
            Message::Idle => {
                self.idle[i] = true;
                if let Some(w) = self.advance() {
                    return Some(Message::Watermark(w));
                }
                let all_idle = (0..self.idle.len()).all(|j| self.idle[j] || self.ended[j]);
                if all_idle && !self.emitted_idle {
                    self.emitted_idle = true;
                    return Some(Message::Idle);
                }
                None
            }
            Message::End => {
                self.ended[i] = true;
                self.watermarks[i] = Watermark::MAX;
                if self.ended.iter().all(|e| *e) {
                    // Every input ended: event time is over. The last input to end may
                    // never have sent a watermark (a table without one, such as a
                    // dimension file joined to a stream), so MAX goes out here, before End,
                    // whatever the inputs sent.
                    if self.emitted < Watermark::MAX {
                        self.emitted = Watermark::MAX;
                        self.pending_out.push_back(Message::End);
                        return Some(Message::Watermark(Watermark::MAX));
                    }
                    return Some(Message::End);
                }
                // The inputs still aligning no longer wait for this one.
                if let Some(epoch) = self.alignment_done() {
                    self.pending_out.push_back(Message::Barrier(epoch));
                }
                self.advance().map(Message::Watermark)
            }
        }
    }

    fn active(&mut self, i: usize) {
        self.idle[i] = false;
        self.emitted_idle = false;
    }

    /// The min over the inputs that are not idle, if it moved forward. (An input that comes
    /// back from idleness behind it cannot move it back: watermarks only advance.)
    fn advance(&mut self) -> Option<Watermark> {
        let min = (0..self.watermarks.len()).filter(|j| !self.idle[*j]).map(|j| self.watermarks[j]).min()?;
        if min > self.emitted {
            self.emitted = min;
            Some(min)
        } else {
            None
        }
    }
}

/// A sink subtask and the watermark it has reached (shown as the job's watermark).
struct SinkOut {
    sink: Box<dyn Sink>,
    watermark: Arc<std::sync::atomic::AtomicI64>,
}

impl SinkOut {
    fn new(sink: Box<dyn Sink>, metrics: &Arc<JobMetrics>) -> Self {
        Self { sink, watermark: metrics.sink_watermark_slot() }
    }
}

async fn deliver(
    msg: Message,
    sink: &mut Option<SinkOut>,
    outputs: &mut [EdgeOutput],
    metrics: &JobMetrics,
) -> Result<()> {
    if let Some(SinkOut { sink: s, watermark }) = sink {
        match &msg {
            Message::Data(b) => {
                s.write_batch(&b.data, b.row_kinds.as_ref()).await?;
                JobMetrics::add(&metrics.rows_out, b.num_rows() as u64);
            }
            Message::Watermark(w) => {
                watermark.store(w.0, std::sync::atomic::Ordering::Relaxed);
                s.watermark(w.0);
            }
            Message::Idle | Message::Barrier(_) => {}
            Message::End => s.finish().await?,
        }
    }
    for out in outputs.iter_mut() {
        match (out, &msg) {
            (EdgeOutput::Forward(tx, id), m) => send(tx, *id, m.clone()).await?,
            (EdgeOutput::Rebalance { targets, next }, Message::Data(_)) => {
                let (tx, id) = &targets[*next];
                send(tx, *id, msg.clone()).await?;
                *next = (*next + 1) % targets.len();
            }
            (EdgeOutput::Hash { targets, keys }, Message::Data(b)) => {
                for (target, part) in hash_partition(b, keys, targets.len())? {
                    let (tx, id) = &targets[target];
                    send(tx, *id, Message::Data(part)).await?;
                }
            }
            (EdgeOutput::Rebalance { targets, .. } | EdgeOutput::Hash { targets, .. }, m) => {
                for (tx, id) in targets.iter() {
                    send(tx, *id, m.clone()).await?;
                }
            }
        }
    }
    Ok(())
}

/// Split a batch by the hash of its keys over `n` targets, keeping row order per target.
fn hash_partition(b: &Batch, keys: &[Arc<dyn PhysicalExpr>], n: usize) -> Result<Vec<(usize, Batch)>> {
    if n <= 1 || keys.is_empty() {
        return Ok(vec![(0, b.clone())]);
    }
    let operator = || "hash exchange".to_string();
    let rows = b.num_rows();
    let arrays = keys
        .iter()
        .map(|k| k.evaluate(&b.data).and_then(|v| v.into_array(rows)))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|source| EngineError::Expression { operator: operator(), source })?;
    let mut hashes = vec![0u64; rows];
    create_hashes(&arrays, &EXCHANGE_HASH, &mut hashes)
        .map_err(|source| EngineError::Expression { operator: operator(), source })?;
    // Keys map to key groups, and key groups to subtasks in contiguous ranges, as Flink
    // does: keyed state can later move between processes a key group at a time.
    let key_groups = KEY_GROUPS.max(n as u64);
    let mut indices: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (row, h) in hashes.iter().enumerate() {
        let key_group = h % key_groups;
        indices[(key_group * n as u64 / key_groups) as usize].push(row as u32);
    }
    let mut out = Vec::new();
    for (target, idx) in indices.into_iter().enumerate() {
        if idx.is_empty() {
            continue;
        }
        if idx.len() == rows {
            return Ok(vec![(target, b.clone())]);
        }
        let idx = UInt32Array::from(idx);
        let arrow_err = |source| EngineError::Arrow { operator: operator(), source };
        let data = take_record_batch(&b.data, &idx).map_err(arrow_err)?;
        out.push((target, b.taken(data, &idx).map_err(arrow_err)?));
    }
    Ok(out)
}

async fn send(tx: &mpsc::Sender<Envelope>, id: usize, msg: Message) -> Result<()> {
    tx.send((id, msg)).await.map_err(|_| EngineError::Internal("a downstream task stopped early".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(n: usize) -> ChannelInput {
        let (_tx, rx) = mpsc::channel(1);
        ChannelInput::new(rx, n)
    }

    fn wm(m: Option<Message>) -> Option<i64> {
        match m {
            Some(Message::Watermark(w)) => Some(w.0),
            _ => None,
        }
    }

    #[test]
    fn watermarks_are_min_combined_and_idle_inputs_left_out() {
        let mut c = input(2);
        assert_eq!(wm(c.receive(0, Message::Watermark(Watermark(100)))), None, "input 1 has none yet");
        assert_eq!(wm(c.receive(1, Message::Watermark(Watermark(50)))), Some(50));
        assert_eq!(wm(c.receive(1, Message::Watermark(Watermark(80)))), Some(80));
        // Input 1 goes quiet: input 0 alone decides.
        assert_eq!(wm(c.receive(1, Message::Idle)), Some(100));
        assert_eq!(wm(c.receive(0, Message::Watermark(Watermark(150)))), Some(150));
        // Input 1 comes back behind: the watermark does not go back, and waits for it.
        assert_eq!(wm(c.receive(1, Message::Watermark(Watermark(120)))), None);
        assert_eq!(wm(c.receive(0, Message::Watermark(Watermark(200)))), None);
        assert_eq!(wm(c.receive(1, Message::Watermark(Watermark(210)))), Some(200));
    }

    #[test]
    fn all_inputs_idle_passes_idle_on_once() {
        let mut c = input(2);
        assert!(c.receive(0, Message::Idle).is_none());
        assert!(matches!(c.receive(1, Message::Idle), Some(Message::Idle)));
        assert!(c.receive(1, Message::Idle).is_none(), "only once");
        assert!(matches!(c.receive(0, Message::Data(Batch::append(empty()))), Some(Message::Data(_))));
        assert!(c.receive(1, Message::Idle).is_none(), "input 0 is active again");
    }

    #[test]
    fn ended_inputs_count_as_infinitely_late() {
        let mut c = input(2);
        assert_eq!(wm(c.receive(0, Message::Watermark(Watermark(10)))), None);
        assert_eq!(wm(c.receive(1, Message::End)), Some(10));
        assert!(matches!(c.receive(0, Message::End), Some(Message::Watermark(Watermark::MAX))));
        assert!(matches!(c.pending_out.pop_front(), Some(Message::End)));
    }

    /// The last input to end never sent a watermark (a dimension table joined to a
    /// stream): MAX still goes out before End, so windows downstream fire.
    #[test]
    fn the_end_of_every_input_is_the_end_of_event_time() {
        let mut c = input(2);
        assert_eq!(wm(c.receive(0, Message::Watermark(Watermark(10)))), None);
        assert_eq!(wm(c.receive(0, Message::Watermark(Watermark::MAX))), None);
        assert!(c.receive(0, Message::End).is_none());
        assert!(matches!(c.receive(1, Message::End), Some(Message::Watermark(Watermark::MAX))));
        assert!(matches!(c.pending_out.pop_front(), Some(Message::End)));
        // Once MAX went out, End follows alone.
        let mut c = input(1);
        assert_eq!(wm(c.receive(0, Message::Watermark(Watermark::MAX))), Some(i64::MAX));
        assert!(matches!(c.receive(0, Message::End), Some(Message::End)));
    }

    #[test]
    fn barriers_are_aligned_over_inputs() {
        let mut c = input(2);
        let data = || Message::Data(Batch::append(empty()));
        assert!(c.receive(0, Message::Barrier(1)).is_none(), "input 1 has not delivered it");
        assert!(c.receive(0, data()).is_none(), "input 0's rows after the barrier wait");
        assert!(c.receive(0, Message::Watermark(Watermark(5))).is_none(), "and so do its watermarks");
        assert!(matches!(c.receive(1, data()), Some(Message::Data(_))), "input 1's rows before it go on");
        assert!(matches!(c.receive(1, Message::Barrier(1)), Some(Message::Barrier(1))));
        // What input 0 sent after the barrier comes next, in order.
        assert!(matches!(c.released.pop_front(), Some((0, Message::Data(_)))));
        assert!(matches!(c.released.pop_front(), Some((0, Message::Watermark(Watermark(5))))));
        assert!(c.aligning.is_none());
    }

    #[test]
    fn an_input_that_ends_completes_the_alignment() {
        let mut c = input(2);
        assert!(c.receive(0, Message::Barrier(3)).is_none());
        c.receive(1, Message::End);
        assert!(matches!(c.pending_out.pop_front(), Some(Message::Barrier(3))));
    }

    fn empty() -> arrow::record_batch::RecordBatch {
        arrow::record_batch::RecordBatch::new_empty(Arc::new(arrow::datatypes::Schema::empty()))
    }
}
