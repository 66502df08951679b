//! The checkpoint coordinator of one job: triggers epochs, collects the subtasks'
//! acknowledgements, completes an epoch by writing its manifest, and tells sinks to commit.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
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

/// What a subtask reports for an epoch.
#[derive(Debug)]
pub(crate) enum Ack {
    /// Its states for `epoch` are written (names of their directories, bytes).
    Done { epoch: u64, states: Vec<String>, bytes: u64 },
    /// It cannot take part in `epoch` (an operator or source that cannot snapshot).
    Declined { epoch: u64, reason: String },
    /// The subtask ended: no later epoch can complete.
    Finished,
}

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
) -> (TaskLink, tokio::task::JoinHandle<()>) {
    let (trigger_tx, trigger) = watch::channel(last_epoch);
    let (completed_tx, completed) = watch::channel(restored_epoch);
    let (acks_tx, acks) = mpsc::unbounded_channel();
    let link = TaskLink { trigger, completed, acks: acks_tx, dir: config.dir.clone() };
    let coordinator = Coordinator {
        config,
        fingerprint,
        tasks,
        epoch: last_epoch,
        trigger: trigger_tx,
        completed: completed_tx,
        acks,
        metrics,
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
}

/// How an epoch ended.
enum Outcome {
    Complete {
        states: Vec<String>,
        bytes: u64,
    },
    Declined(String),
    /// A subtask ended (or the job is going away): no more checkpoints.
    Over,
}

impl Coordinator {
    async fn run(mut self) {
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + self.config.interval, self.config.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            // A subtask that ended before this epoch: nothing more can complete.
            while let Ok(ack) = self.acks.try_recv() {
                if matches!(ack, Ack::Finished) {
                    return;
                }
            }
            self.epoch += 1;
            let epoch = self.epoch;
            let started = Instant::now();
            self.trigger.send_replace(epoch);
            match self.collect(epoch).await {
                Outcome::Complete { states, bytes } => {
                    if let Err(e) = self.complete(epoch, states, bytes, started) {
                        tracing::warn!(epoch, error = %e, "checkpoint could not be completed");
                        self.metrics.checkpoints_failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Outcome::Declined(reason) => {
                    // An operator or source that cannot snapshot declines every epoch: say so
                    // once and stop asking.
                    tracing::warn!(epoch, %reason, "checkpoint declined; this job runs without checkpoints");
                    self.metrics.checkpoints_failed.fetch_add(1, Ordering::Relaxed);
                    let _ = std::fs::remove_dir_all(store::epoch_dir(&self.config.dir, epoch));
                    return;
                }
                Outcome::Over => return,
            }
        }
    }

    async fn collect(&mut self, epoch: u64) -> Outcome {
        let (mut acked, mut states, mut bytes, mut declined) = (0, Vec::new(), 0, None);
        while acked < self.tasks {
            match self.acks.recv().await {
                None | Some(Ack::Finished) => return Outcome::Over,
                Some(Ack::Done { epoch: e, states: s, bytes: b }) if e == epoch => {
                    acked += 1;
                    states.extend(s);
                    bytes += b;
                }
                Some(Ack::Declined { epoch: e, reason }) if e == epoch => {
                    acked += 1;
                    declined.get_or_insert(reason);
                }
                Some(_) => {}
            }
        }
        match declined {
            Some(reason) => Outcome::Declined(reason),
            None => Outcome::Complete { states, bytes },
        }
    }

    fn complete(&self, epoch: u64, states: Vec<String>, bytes: u64, started: Instant) -> crate::error::Result<()> {
        let completed_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let manifest = Manifest { epoch, fingerprint: self.fingerprint.clone(), completed_ms, states, bytes };
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
