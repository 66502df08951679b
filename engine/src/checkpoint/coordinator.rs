//! The checkpoint coordinator of one job: triggers epochs, collects the subtasks'
//! acknowledgements, completes an epoch by writing its manifest, and tells sinks to commit.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};

use super::store::{self, Manifest};
use crate::metrics::JobMetrics;

/// How a job checkpoints.
#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    /// The job's own checkpoint directory (`<state-dir>/checkpoints/<job>`).
    pub dir: PathBuf,
    /// `execution.checkpointing.interval`.
    pub interval: Duration,
    /// `execution.checkpointing.num-retained`: complete checkpoints kept.
    pub retained: usize,
}

/// A subtask: the plan node at the head of its chain, and its index.
pub(crate) type TaskId = (usize, usize);

/// What a subtask reports for an epoch.
#[derive(Debug)]
pub(crate) enum Ack {
    /// Its states for `epoch` are written (names of their directories, bytes).
    Done { task: TaskId, epoch: u64, states: Vec<String>, bytes: u64 },
    /// It cannot take part in `epoch` (an operator or source that cannot snapshot).
    Declined { task: TaskId, epoch: u64, reason: String },
    /// The subtask's input ended. A subtask without a sink takes no part in later epochs
    /// (checkpoints go on without it, recording it as finished). A sink subtask gives what
    /// it pre-committed at the end, `(plan node, subtask, state)`, and waits for the final
    /// checkpoint before publishing it; no later periodic epoch can complete.
    Finished { task: TaskId, sink: Option<(usize, usize, Option<serde_json::Value>)> },
    /// The subtask failed: the job ends without a final checkpoint.
    Failed,
}

/// The epoch number a sink's end-of-input pre-commit is made under, and the value of the
/// `completed` channel once the final checkpoint is written.
pub(crate) const FINAL_EPOCH: u64 = u64::MAX;

/// A subtask's side of the coordinator.
#[derive(Debug, Clone)]
pub(crate) struct TaskLink {
    /// The newest epoch sources should inject a barrier for.
    pub trigger: watch::Receiver<u64>,
    /// The newest complete epoch (sinks commit up to it).
    pub completed: watch::Receiver<u64>,
    /// Acknowledgements.
    pub acks: mpsc::UnboundedSender<Ack>,
    /// Where states are written.
    pub dir: PathBuf,
    /// The epoch a stop is taken at (0: no stop asked): sources end after its barrier and
    /// every subtask leaves once it passed, without the end-of-input flush, so that the
    /// job resumes from it exactly where it stopped.
    pub stop_epoch: Arc<AtomicU64>,
    /// Sources end now, as without checkpoints (a stop when checkpoints cannot be taken).
    pub drain: watch::Receiver<bool>,
}

/// Start the coordinator of a job with `tasks` subtasks, whose last epoch (complete or
/// not) under the directory is `last_epoch`. Returns the subtasks' link and the
/// coordinator's task (abort it when the job ends).
pub(crate) fn start(
    config: CheckpointConfig,
    fingerprint: String,
    tasks: usize,
    last_epoch: u64,
    restored_epoch: u64,
    metrics: Arc<JobMetrics>,
    stop: watch::Receiver<bool>,
) -> (TaskLink, tokio::task::JoinHandle<()>) {
    let (trigger_tx, trigger) = watch::channel(last_epoch);
    let (completed_tx, completed) = watch::channel(restored_epoch);
    let (acks_tx, acks) = mpsc::unbounded_channel();
    let (drain_tx, drain) = watch::channel(false);
    let stop_epoch = Arc::new(AtomicU64::new(0));
    let link =
        TaskLink { trigger, completed, acks: acks_tx, dir: config.dir.clone(), stop_epoch: stop_epoch.clone(), drain };
    let coordinator = Coordinator {
        config,
        fingerprint,
        tasks,
        epoch: last_epoch,
        trigger: trigger_tx,
        completed: completed_tx,
        acks,
        metrics,
        finished: 0,
        finished_tasks: Vec::new(),
        sink_finished: false,
        final_states: Vec::new(),
        stop,
        stop_epoch,
        drain: drain_tx,
    };
    (link, tokio::spawn(coordinator.run()))
}

struct Coordinator {
    config: CheckpointConfig,
    fingerprint: String,
    tasks: usize,
    epoch: u64,
    trigger: watch::Sender<u64>,
    completed: watch::Sender<u64>,
    acks: mpsc::UnboundedReceiver<Ack>,
    metrics: Arc<JobMetrics>,
    /// Subtasks whose input ended.
    finished: usize,
    /// The subtasks without a sink whose input ended: later checkpoints record them as
    /// finished, and a restore from one does not run their sources again.
    finished_tasks: Vec<TaskId>,
    /// A sink subtask's input ended: only the final checkpoint is left.
    sink_finished: bool,
    /// What the sink subtasks pre-committed at their end.
    final_states: Vec<(usize, usize, Option<serde_json::Value>)>,
    /// The job's stop; see [`TaskLink::stop_epoch`] and [`TaskLink::drain`].
    stop: watch::Receiver<bool>,
    stop_epoch: Arc<AtomicU64>,
    drain: watch::Sender<bool>,
}

/// How an epoch ended.
enum Outcome {
    Complete {
        states: Vec<String>,
        bytes: u64,
    },
    Declined(String),
    /// A sink subtask ended: no more periodic checkpoints, only the final one.
    Over,
    /// A subtask failed or the job is going away.
    Gone,
}

impl Coordinator {
    async fn run(mut self) {
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + self.config.interval, self.config.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut periodic = true;
        let mut stopping = false;
        loop {
            tokio::select! {
                _ = ticker.tick(), if periodic && !self.sink_finished && self.finished < self.tasks => {}
                changed = self.stop.changed(), if !stopping => {
                    if changed.is_err() || !*self.stop.borrow() {
                        continue;
                    }
                    stopping = true;
                    if !periodic || self.sink_finished {
                        // No checkpoint can be taken: end the sources as a job without
                        // checkpoints does.
                        self.drain.send_replace(true);
                        continue;
                    }
                    // The next epoch is the stop's.
                    self.stop_epoch.store(self.epoch + 1, Ordering::SeqCst);
                }
                ack = self.acks.recv() => {
                    match self.note(ack) {
                        Some(Outcome::Gone) => return,
                        _ if self.finished == self.tasks => return self.finish().await,
                        _ => continue,
                    }
                }
            }
            self.epoch += 1;
            let epoch = self.epoch;
            let started = Instant::now();
            self.trigger.send_replace(epoch);
            let is_stop = self.stop_epoch.load(Ordering::SeqCst) == epoch;
            match self.collect(epoch).await {
                Outcome::Complete { states, bytes } => {
                    if let Err(e) = self.complete(epoch, states, bytes, started) {
                        tracing::warn!(epoch, error = %e, "checkpoint could not be completed");
                        self.metrics.checkpoints_failed.fetch_add(1, Ordering::Relaxed);
                    }
                    if is_stop {
                        tracing::info!(epoch, "stopped at a checkpoint");
                        return;
                    }
                }
                Outcome::Declined(reason) => {
                    // An operator or source that cannot snapshot declines every epoch: say so
                    // once and stop asking (the end of input still commits its sinks).
                    tracing::warn!(epoch, %reason, "checkpoint declined; this job runs without checkpoints");
                    self.metrics.checkpoints_failed.fetch_add(1, Ordering::Relaxed);
                    let _ = std::fs::remove_dir_all(store::epoch_dir(&self.config.dir, epoch));
                    periodic = false;
                    if is_stop {
                        // The subtasks left after the stop's barrier with nothing published
                        // past the last checkpoint, from which the job resumes.
                        return;
                    }
                }
                Outcome::Over if is_stop => return,
                Outcome::Over => {
                    let _ = std::fs::remove_dir_all(store::epoch_dir(&self.config.dir, epoch));
                    if self.finished == self.tasks {
                        return self.finish().await;
                    }
                }
                Outcome::Gone => return,
            }
        }
    }

    /// Take note of an acknowledgement outside an epoch: subtasks ending, or failing.
    fn note(&mut self, ack: Option<Ack>) -> Option<Outcome> {
        match ack {
            None | Some(Ack::Failed) => Some(Outcome::Gone),
            Some(Ack::Finished { task, sink: None }) => {
                self.finished += 1;
                self.finished_tasks.push(task);
                None
            }
            Some(Ack::Finished { sink: Some(sink), .. }) => {
                self.finished += 1;
                self.sink_finished = true;
                self.final_states.push(sink);
                Some(Outcome::Over)
            }
            Some(_) => None,
        }
    }

    /// Every subtask's input ended: write the final checkpoint (the sinks' end-of-input
    /// pre-commits) and let the sinks publish. After a crash from here on, the job is not
    /// run again: its sinks publish what the final checkpoint holds.
    async fn finish(mut self) {
        self.epoch += 1;
        let epoch = self.epoch;
        let states = std::mem::take(&mut self.final_states);
        let dir = self.config.dir.clone();
        let written = tokio::task::spawn_blocking(move || -> crate::error::Result<(Vec<String>, u64)> {
            let (mut names, mut bytes) = (Vec::new(), 0);
            for (node, subtask, state) in &states {
                let snapshot = super::StateSnapshot::meta(state.clone().unwrap_or(serde_json::Value::Null));
                bytes += store::write_state(&dir, epoch, *node, *subtask, &snapshot)?;
                names.push(store::state_name(*node, *subtask));
            }
            Ok((names, bytes))
        })
        .await;
        let result = match written {
            Ok(Ok((states, bytes))) => {
                let completed_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
                let manifest = Manifest {
                    epoch,
                    fingerprint: self.fingerprint.clone(),
                    completed_ms,
                    states,
                    bytes,
                    finished: true,
                    finished_tasks: Vec::new(),
                };
                store::write_manifest(&self.config.dir, &manifest)
            }
            Ok(Err(e)) => Err(e),
            Err(e) => Err(crate::error::EngineError::Internal(format!("checkpoint writer failed: {e}"))),
        };
        match result {
            Ok(()) => {
                self.completed.send_replace(FINAL_EPOCH);
                if let Err(e) = store::prune(&self.config.dir, 1, epoch) {
                    tracing::warn!(error = %e, "cannot remove checkpoints before the final one");
                }
            }
            // The sinks are not told: the job fails rather than publish what no checkpoint
            // records (a restart would then publish it a second time).
            Err(e) => tracing::error!(error = %e, "the final checkpoint could not be written"),
        }
    }

    /// The acknowledgements of `epoch`: one from every subtask, except those that finished
    /// (before the epoch or during it) without a sink.
    async fn collect(&mut self, epoch: u64) -> Outcome {
        let (mut acked, mut states, mut bytes, mut declined) = (Vec::<TaskId>::new(), Vec::new(), 0, None);
        loop {
            let answered = acked.len() + self.finished_tasks.iter().filter(|t| !acked.contains(t)).count();
            if answered >= self.tasks {
                break;
            }
            let ack = self.acks.recv().await;
            match ack {
                Some(Ack::Done { task, epoch: e, states: s, bytes: b }) if e == epoch => {
                    acked.push(task);
                    states.extend(s);
                    bytes += b;
                }
                Some(Ack::Declined { task, epoch: e, reason }) if e == epoch => {
                    acked.push(task);
                    declined.get_or_insert(reason);
                }
                other => {
                    if let Some(outcome) = self.note(other) {
                        return outcome;
                    }
                }
            }
        }
        match declined {
            Some(reason) => Outcome::Declined(reason),
            None => Outcome::Complete { states, bytes },
        }
    }

    fn complete(&self, epoch: u64, states: Vec<String>, bytes: u64, started: Instant) -> crate::error::Result<()> {
        let completed_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let manifest = Manifest {
            epoch,
            fingerprint: self.fingerprint.clone(),
            completed_ms,
            states,
            bytes,
            finished: false,
            finished_tasks: self.finished_tasks.clone(),
        };
        store::write_manifest(&self.config.dir, &manifest)?;
        self.completed.send_replace(epoch);
        store::prune(&self.config.dir, self.config.retained, epoch)?;
        let m = &self.metrics;
        let took = started.elapsed();
        m.checkpoints_completed.fetch_add(1, Ordering::Relaxed);
        m.last_checkpoint_epoch.store(epoch, Ordering::Relaxed);
        m.last_checkpoint_duration_ms.store(took.as_millis() as u64, Ordering::Relaxed);
        m.max_checkpoint_duration_ms.fetch_max(took.as_millis() as u64, Ordering::Relaxed);
        m.last_checkpoint_bytes.store(bytes, Ordering::Relaxed);
        m.last_checkpoint_completed_ms.store(completed_ms, Ordering::Relaxed);
        tracing::debug!(epoch, bytes, took_ms = took.as_millis() as u64, "checkpoint complete");
        Ok(())
    }
}
