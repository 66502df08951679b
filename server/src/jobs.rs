//! Jobs started over the wire: they run on the server's runtime, outlive the connection that
//! started them, and are written to `<state-dir>/jobs.json` so that a restarted server
//! starts them again (from their sources' committed offsets; exactly-once comes with
//! checkpoints).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use eddy_engine::{Job, JobMetrics, StopHandle};
use serde::{Deserialize, Serialize};

use crate::ServerError;

/// What a job is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStatus {
    /// Running.
    Running,
    /// Its bounded sources ended and everything was written.
    Finished,
    /// Stopped with `STOP JOB`.
    Stopped,
    /// Failed; the reason.
    Failed(String),
}

impl JobStatus {
    /// Flink's word for it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Finished => "FINISHED",
            Self::Stopped => "CANCELED",
            Self::Failed(_) => "FAILED",
        }
    }
}

/// How a job is started again after a restart: its statements and the settings they were
/// planned with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobSpec {
    /// Id (16 hex digits).
    pub id: String,
    /// `insert-into_out`, as Flink names them.
    pub name: String,
    /// The statement text (an INSERT, a statement set, a CREATE TABLE AS ...).
    pub sql: String,
    /// `SET` options in force when it was submitted.
    pub settings: Vec<(String, String)>,
    /// Seconds since the epoch when first submitted.
    pub submitted: u64,
    /// Ended (stopped, finished or failed): not started again.
    #[serde(default)]
    pub ended: bool,
    /// The tables it writes.
    #[serde(default)]
    pub targets: Vec<String>,
}

/// A job's checkpoint counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckpointStats {
    /// Checkpoints completed.
    pub completed: u64,
    /// Checkpoints declined or abandoned.
    pub failed: u64,
    /// The last completed checkpoint: epoch, duration (ms), size (bytes), completion time
    /// (ms since the epoch; 0: none yet).
    pub last_epoch: u64,
    /// See `last_epoch`.
    pub last_duration_ms: u64,
    /// See `last_epoch`.
    pub last_bytes: u64,
    /// See `last_epoch`.
    pub last_completed_ms: u64,
}

/// One job as `SHOW JOBS` shows it.
#[derive(Debug, Clone)]
pub struct JobRow {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Status.
    pub status: JobStatus,
    /// Rows read by its sources.
    pub rows_in: u64,
    /// Rows written by its sinks.
    pub rows_out: u64,
    /// Its sinks' watermark (ms since the epoch); `None` before every sink subtask has
    /// one, and after bounded input ended.
    pub watermark: Option<i64>,
    /// When it started (this server run).
    pub started: SystemTime,
    /// Its checkpoints.
    pub checkpoints: CheckpointStats,
    /// Its live counters (late rows per operator, state size, ...).
    pub metrics: Arc<JobMetrics>,
}

struct Entry {
    spec: JobSpec,
    status: Arc<Mutex<JobStatus>>,
    metrics: Arc<JobMetrics>,
    stop: StopHandle,
    started: SystemTime,
}

/// The server's jobs.
pub struct Jobs {
    entries: Mutex<Vec<Entry>>,
    file: PathBuf,
    /// Set at shutdown: jobs stopped now are to run again at the next start, so their end
    /// is not saved.
    shutting_down: std::sync::atomic::AtomicBool,
}

impl Jobs {
    /// Jobs saved in `file` (not started: see [`Jobs::saved`]).
    pub fn new(file: PathBuf) -> Self {
        Self { entries: Mutex::new(Vec::new()), file, shutting_down: Default::default() }
    }

    /// The jobs a previous run left running.
    pub fn saved(&self) -> Result<Vec<JobSpec>, ServerError> {
        match std::fs::read(&self.file) {
            Ok(bytes) => {
                let specs: Vec<JobSpec> = serde_json::from_slice(&bytes).map_err(|e| {
                    ServerError::State(format!(
                        "{}: {e}; move it away to start without the saved jobs",
                        self.file.display()
                    ))
                })?;
                Ok(specs.into_iter().filter(|s| !s.ended).collect())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(ServerError::Io { context: self.file.display().to_string(), source: e }),
        }
    }

    /// A new job id.
    pub fn new_id() -> String {
        format!("{:016x}", rand::random::<u64>())
    }

    /// Start `job` (planned from `spec`) on the current runtime.
    pub fn start(self: &Arc<Self>, spec: JobSpec, job: Job) -> Result<(), ServerError> {
        let status = Arc::new(Mutex::new(JobStatus::Running));
        let metrics = job.metrics();
        let stop = job.stop_handle();
        let id = spec.id.clone();
        {
            let mut entries = self.lock()?;
            entries.retain(|e| e.spec.id != spec.id);
            entries.push(Entry { spec, status: status.clone(), metrics, stop, started: SystemTime::now() });
        }
        self.save()?;
        let jobs = self.clone();
        tokio::spawn(async move {
            let result = job.run().await;
            let end = match result {
                Ok(summary) if summary.stopped => JobStatus::Stopped,
                Ok(_) => JobStatus::Finished,
                Err(e) => {
                    tracing::warn!(job = %id, error = %e, "job failed");
                    JobStatus::Failed(e.to_string())
                }
            };
            tracing::info!(job = %id, status = end.name(), "job ended");
            let (stopped, finished) = (end == JobStatus::Stopped, end == JobStatus::Finished);
            if let Ok(mut s) = status.lock() {
                *s = end;
            }
            if !jobs.shutting_down.load(std::sync::atomic::Ordering::SeqCst) {
                jobs.mark_ended(&id);
                // Not started again: nothing will resume from its checkpoints. (A failed
                // job keeps them, for a look at what it held.)
                if stopped || finished {
                    jobs.remove_checkpoints(&id);
                }
            }
        });
        Ok(())
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Vec<Entry>>, ServerError> {
        self.entries.lock().map_err(|_| ServerError::State("the job list is unusable after a panic".into()))
    }

    /// Remove `<state-dir>/checkpoints/<id>`.
    fn remove_checkpoints(&self, id: &str) {
        let Some(state_dir) = self.file.parent() else { return };
        let dir = state_dir.join("checkpoints").join(id);
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a stopped job's checkpoints");
            }
        }
    }

    fn mark_ended(&self, id: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            for e in entries.iter_mut().filter(|e| e.spec.id == id) {
                e.spec.ended = true;
            }
        }
        if let Err(e) = self.save() {
            tracing::warn!(error = %e, "cannot save the job list");
        }
    }

    /// Every job of this server run, oldest first.
    pub fn list(&self) -> Vec<JobRow> {
        let Ok(entries) = self.entries.lock() else { return Vec::new() };
        entries
            .iter()
            .map(|e| JobRow {
                id: e.spec.id.clone(),
                name: e.spec.name.clone(),
                status: e.status.lock().map(|s| s.clone()).unwrap_or(JobStatus::Failed("unknown".into())),
                rows_in: JobMetrics::get(&e.metrics.rows_in),
                rows_out: JobMetrics::get(&e.metrics.rows_out),
                watermark: e.metrics.watermark().filter(|w| *w != i64::MAX),
                started: e.started,
                checkpoints: CheckpointStats {
                    completed: JobMetrics::get(&e.metrics.checkpoints_completed),
                    failed: JobMetrics::get(&e.metrics.checkpoints_failed),
                    last_epoch: JobMetrics::get(&e.metrics.last_checkpoint_epoch),
                    last_duration_ms: JobMetrics::get(&e.metrics.last_checkpoint_duration_ms),
                    last_bytes: JobMetrics::get(&e.metrics.last_checkpoint_bytes),
                    last_completed_ms: JobMetrics::get(&e.metrics.last_checkpoint_completed_ms),
                },
                metrics: e.metrics.clone(),
            })
            .collect()
    }

    /// Running jobs that write `table`: (id, name).
    pub fn running_writers(&self, table: &str) -> Vec<(String, String)> {
        let Ok(entries) = self.entries.lock() else { return Vec::new() };
        entries
            .iter()
            .filter(|e| e.spec.targets.iter().any(|t| t == table))
            .filter(|e| e.status.lock().is_ok_and(|s| *s == JobStatus::Running))
            .map(|e| (e.spec.id.clone(), e.spec.name.clone()))
            .collect()
    }

    /// Ask a job to stop (`STOP JOB 'id'`): its sources end, what is in flight is written.
    pub fn stop(&self, id: &str) -> Result<(), ServerError> {
        let entries = self.lock()?;
        let Some(e) = entries.iter().find(|e| e.spec.id == id) else {
            return Err(ServerError::NoSuchJob(id.to_string()));
        };
        e.stop.stop();
        Ok(())
    }

    /// Stop every job (server shutdown) and wait up to `grace` for them to write what is in
    /// flight; they are started again at the next start.
    pub async fn stop_all_for_restart(&self, grace: std::time::Duration) {
        self.shutting_down.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Ok(entries) = self.entries.lock() {
            for e in entries.iter() {
                e.stop.stop();
            }
        }
        let deadline = tokio::time::Instant::now() + grace;
        while self.list().iter().any(|j| j.status == JobStatus::Running) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Write the job list (atomically: a temporary file renamed over it).
    fn save(&self) -> Result<(), ServerError> {
        let specs: Vec<JobSpec> = self.lock()?.iter().map(|e| e.spec.clone()).collect();
        let bytes = serde_json::to_vec_pretty(&specs).map_err(|e| ServerError::State(e.to_string()))?;
        let tmp = self.file.with_extension("json.tmp");
        let io = |e| ServerError::Io { context: self.file.display().to_string(), source: e };
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(&tmp, &self.file).map_err(io)
    }
}
