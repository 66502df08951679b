//! Counters of a running job, shared with whoever shows progress (the CLI's progress line,
//! later `/metrics`). Plain atomics: tasks bump them per batch, readers poll.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counters of one job.
#[derive(Debug, Default)]
pub struct JobMetrics {
    /// Rows read by all sources.
    pub rows_in: AtomicU64,
    /// Rows written by all sinks.
    pub rows_out: AtomicU64,
    /// Malformed records skipped by sources (`*.ignore-parse-errors`).
    pub records_skipped: AtomicU64,
    /// Rows dropped because they arrived behind the watermark.
    pub late_rows_dropped: AtomicU64,
}

impl JobMetrics {
    /// New zeroed counters.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Read one counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Add to one counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
