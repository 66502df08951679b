//! Running chains: one tokio task per chain subtask, bounded channels between them.
//!
//! ```text
//!  input (source split | VALUES | channel merge) ─▶ operator chain ─▶ output (sink | channels)
//! ```
//! A channel-fed subtask merges its inputs: watermarks are min-combined over the inputs
//! still open, and it ends when every input has ended. A channel that closes without an
//! `End` means the upstream task failed; the job's first error is the one reported.

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
        }
    }
}

pub(crate) async fn run_graph(
    plan: &StreamPlan,
    graph: &ChainGraph,
    metrics: Arc<JobMetrics>,
    stop: &StopHandle,
    tables: Option<&Arc<ResultTables>>,
    resume: bool,
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

    let mut tasks: JoinSet<Result<()>> = JoinSet::new();
    for (c, chain) in graph.chains.iter().enumerate() {
        for sub in (0..chain.parallelism).rev() {
            let head = &plan.nodes[chain.head()];
            let input = match &head.operator {
                Operator::Source(t) if is_managed(t) => Input::Source(SourceFeed::start(
                    Box::new(ResultTableSource::new(
                        open_result_table(tables, t)?,
                        Split { index: sub, count: chain.parallelism },
                    )),
                    stop.subscribe(),
                    t.name.clone(),
                )),
                Operator::Source(t) => Input::Source(SourceFeed::start(
                    eddy_connectors::create_source(
                        &source_table(t, resume),
                        Split { index: sub, count: chain.parallelism },
                    )?,
                    stop.subscribe(),
                    t.name.clone(),
                )),
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
            let mut sink: Option<SinkOut> = None;
            for id in &chain.nodes {
                let node = &plan.nodes[*id];
                match &node.operator {
                    Operator::Project(exprs) => {
                        ops.push(Box::new(ProjectOperator::new(exprs.clone(), node.schema.clone())))
                    }
                    Operator::Filter(p) => ops.push(Box::new(FilterOperator::new(p.clone()))),
                    Operator::Watermark(w) => ops.push(Box::new(WatermarkOperator::new(w.clone()))),
                    Operator::Unnest(u) => ops.push(Box::new(UnnestOperator::new(u.clone(), node.schema.clone()))),
                    Operator::Sink(t) if is_managed(t) => {
                        let table = open_result_table(tables, t)?;
                        sink = Some(SinkOut::new(Box::new(ResultTableSink::new(table)), &metrics))
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
                        };
                        if let Some(op) = build_stateful(stateful, ctx)? {
                            ops.push(op);
                        }
                    }
                }
            }
            let outs = outputs[c].pop().ok_or_else(|| EngineError::Internal("missing outputs".into()))?;
            let metrics = metrics.clone();
            tasks.spawn(run_subtask(input, ops, sink, outs, metrics));
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
) -> Result<()> {
    loop {
        // Operators with wall-clock work (periodic watermarks, idleness, early firing) are
        // woken when it is due. Waiting on a channel (from upstream tasks or from the
        // source's reader) can be abandoned for that without losing anything.
        let timer = ops.iter().filter_map(|o| o.next_processing_time()).min();
        let msg = match timer {
            Some(at) if !matches!(input, Input::Values(_)) => {
                tokio::select! {
                    m = next_message(&mut input, &metrics) => Some(m?),
                    _ = tokio::time::sleep_until(at.into()) => None,
                }
            }
            _ => Some(next_message(&mut input, &metrics).await?),
        };
        let Some(msg) = msg else {
            for out in fire_processing_time(&mut ops, Instant::now())? {
                deliver(out, &mut sink, &mut outputs, &metrics).await?;
            }
            continue;
        };
        let is_end = matches!(msg, Message::End);
        for out in run_chain(&mut ops, msg)? {
            deliver(out, &mut sink, &mut outputs, &metrics).await?;
        }
        if is_end {
            if let Input::Source(feed) = &mut input {
                JobMetrics::add(&metrics.records_skipped, feed.finish().await);
            }
            return Ok(());
        }
    }
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
            Some(Ok(b)) => {
                JobMetrics::add(&metrics.rows_in, b.batch.num_rows() as u64);
                Ok(Message::Data(Batch {
                    data: b.batch,
                    row_kinds: b.row_kinds,
                    arrival_watermarks: None,
                    partition: b.partition,
                }))
            }
            Some(Err(e)) => {
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
    rx: mpsc::Receiver<eddy_connectors::Result<eddy_connectors::SourceBatch>>,
    /// The reader; returns the source's count of skipped malformed records.
    reader: Option<tokio::task::JoinHandle<u64>>,
    table: String,
}

impl SourceFeed {
    fn start(mut source: Box<dyn Source>, mut stop: watch::Receiver<bool>, table: String) -> Self {
        let (tx, rx) = mpsc::channel(2);
        let reader = tokio::spawn(async move {
            loop {
                if *stop.borrow() {
                    break;
                }
                let next = tokio::select! {
                    r = source.next_batch() => r,
                    _ = stop.changed() => break,
                };
                let last = !matches!(next, Ok(Some(_)));
                let item = match next {
                    Ok(Some(b)) => Ok(b),
                    Ok(None) => break,
                    Err(e) => Err(e),
                };
                if tx.send(item).await.is_err() || last {
                    break;
                }
            }
            source.skipped_records()
        });
        Self { rx, reader: Some(reader), table }
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
            if self.ended.iter().all(|e| *e) {
                return Ok(Message::End);
            }
            let Some((i, msg)) = self.rx.recv().await else {
                return Err(EngineError::UpstreamStopped);
            };
            if let Some(m) = self.receive(i, msg) {
                return Ok(m);
            }
        }
    }

    /// Take one input message; what to pass on, if anything.
    fn receive(&mut self, i: usize, msg: Message) -> Option<Message> {
        match msg {
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
                    return Some(Message::End);
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
            Message::Watermark(w) => watermark.store(w.0, std::sync::atomic::Ordering::Relaxed),
            Message::Idle => {}
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
        assert!(matches!(c.receive(0, Message::End), Some(Message::End)));
    }

    fn empty() -> arrow::record_batch::RecordBatch {
        arrow::record_batch::RecordBatch::new_empty(Arc::new(arrow::datatypes::Schema::empty()))
    }
}
