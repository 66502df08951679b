//! Counters of a running job, shared with whoever shows progress (the CLI's progress line,
//! later `/metrics`). Plain atomics: tasks bump them per batch, readers poll.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Counters of one job.
#[derive(Debug, Default)]
pub struct JobMetrics {
    /// Rows read by all sources.
    pub rows_in: AtomicU64,
    /// Rows written by all sinks.
    pub rows_out: AtomicU64,
    /// Malformed records skipped by sources (`*.ignore-parse-errors`).
    pub records_skipped: AtomicU64,
    /// Rows dropped because they arrived behind the watermark (all operators).
    pub late_rows_dropped: AtomicU64,
    /// Late rows dropped per operator subtask: (operator name, counter).
    late_by_operator: Mutex<Vec<(String, Arc<AtomicU64>)>>,
    /// The watermark each sink subtask has reached (ms; `i64::MIN` before the first).
    sink_watermarks: Mutex<Vec<Arc<AtomicI64>>>,
    /// Checkpoints completed.
    pub checkpoints_completed: AtomicU64,
    /// Checkpoints declined or abandoned.
    pub checkpoints_failed: AtomicU64,
    /// The last completed checkpoint's epoch.
    pub last_checkpoint_epoch: AtomicU64,
    /// How long the last completed checkpoint took, trigger to manifest, in ms.
    pub last_checkpoint_duration_ms: AtomicU64,
    /// The size of the last completed checkpoint, in bytes.
    pub last_checkpoint_bytes: AtomicU64,
    /// When the last checkpoint completed, ms since the epoch (0: none yet).
    pub last_checkpoint_completed_ms: AtomicU64,
    /// The longest checkpoint so far, in ms.
    pub max_checkpoint_duration_ms: AtomicU64,
    /// When the first row was read, µs after the job started (0: none yet; recovery time).
    pub first_row_micros: AtomicU64,
    /// When the job started running.
    pub job_started: std::sync::OnceLock<std::time::Instant>,
    /// The state its operators hold now, in bytes (estimated; see `state_bytes`).
    pub state_bytes: AtomicI64,
    /// The most it held at once.
    pub peak_state_bytes: AtomicI64,
    /// Each source part's lag (Kafka: records behind the partition's end), by (table, part).
    source_lag: Mutex<std::collections::BTreeMap<(String, String), i64>>,
}

/// Counts the late rows one operator subtask drops, into its own counter and the job's.
#[derive(Debug, Clone)]
pub struct LateRowCounter {
    job: Arc<JobMetrics>,
    own: Arc<AtomicU64>,
}

impl LateRowCounter {
    /// Record `n` dropped rows.
    pub fn add(&self, n: u64) {
        if n > 0 {
            self.own.fetch_add(n, Ordering::Relaxed);
            self.job.late_rows_dropped.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// A counter attached to no job (for operator unit tests).
    pub fn detached() -> Self {
        Self::register(&JobMetrics::new(), "detached")
    }

    /// Rows recorded by this counter.
    pub fn get(&self) -> u64 {
        self.own.load(Ordering::Relaxed)
    }

    fn register(job: &Arc<JobMetrics>, operator: &str) -> Self {
        let own = Arc::new(AtomicU64::new(0));
        if let Ok(mut list) = job.late_by_operator.lock() {
            list.push((operator.to_string(), own.clone()));
        }
        Self { job: job.clone(), own }
    }
}

impl JobMetrics {
    /// A slot for one sink subtask's watermark.
    pub fn sink_watermark_slot(&self) -> Arc<AtomicI64> {
        let slot = Arc::new(AtomicI64::new(i64::MIN));
        if let Ok(mut slots) = self.sink_watermarks.lock() {
            slots.push(slot.clone());
        }
        slot
    }

    /// The job's watermark, as Flink shows an operator's: the least over its sink subtasks,
    /// once every one has one (ms since the epoch; `i64::MAX` once bounded input ended).
    pub fn watermark(&self) -> Option<i64> {
        let slots = self.sink_watermarks.lock().ok()?;
        let values: Vec<i64> = slots.iter().map(|s| s.load(Ordering::Relaxed)).collect();
        if values.is_empty() || values.contains(&i64::MIN) {
            return None;
        }
        values.into_iter().min()
    }

    /// New zeroed counters.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A late-row counter for one operator subtask.
    pub fn late_counter(self: &Arc<Self>, operator: &str) -> LateRowCounter {
        LateRowCounter::register(self, operator)
    }

    /// A source split's latest lag figures (see `Source::lag`), replacing its earlier ones.
    pub fn record_source_lag(&self, table: &str, lag: Vec<(String, i64)>) {
        if let Ok(mut all) = self.source_lag.lock() {
            for (part, records) in lag {
                all.insert((table.to_string(), part), records);
            }
        }
    }

    /// Every source part's lag: (table, part, records behind).
    pub fn source_lag(&self) -> Vec<(String, String, i64)> {
        match self.source_lag.lock() {
            Ok(all) => all.iter().map(|((t, p), n)| (t.clone(), p.clone(), *n)).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Late rows dropped per operator, summed over its subtasks, in registration order;
    /// operators that dropped nothing are left out.
    pub fn late_rows_by_operator(&self) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = Vec::new();
        if let Ok(list) = self.late_by_operator.lock() {
            for (name, c) in list.iter() {
                let n = c.load(Ordering::Relaxed);
                match out.iter_mut().find(|(o, _)| o == name) {
                    Some((_, total)) => *total += n,
                    None => out.push((name.clone(), n)),
                }
            }
        }
        out.retain(|(_, n)| *n > 0);
        out
    }

    /// Read one counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Note that a source read rows (the first time: how long after the start).
    pub fn row_read(&self) {
        if self.first_row_micros.load(Ordering::Relaxed) == 0 {
            if let Some(start) = self.job_started.get() {
                let us = (start.elapsed().as_micros() as u64).max(1);
                let _ = self.first_row_micros.compare_exchange(0, us, Ordering::Relaxed, Ordering::Relaxed);
            }
        }
    }

    /// Add to one counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
