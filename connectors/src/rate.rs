//! A rate limiter for generator sources (`datagen`, `nexmark`).
//!
//! Sources pull-produce whole batches, so the limiter hands out permits per batch: a batch of
//! `n` rows is released once the rows before it have had their share of time. After a stall
//! (backpressure downstream) it does not burst to catch up, as Flink's Guava limiter does not.

use std::time::Duration;

use tokio::time::Instant;

/// How far behind schedule the limiter may fall before it forgets the debt.
const MAX_DEBT: Duration = Duration::from_secs(1);

/// Paces batches to `per_second` rows per second.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    per_second: f64,
    start: Option<Instant>,
    permits: f64,
}

impl RateLimiter {
    /// A limiter releasing `per_second` rows per second (must be > 0).
    pub(crate) fn new(per_second: f64) -> Self {
        Self { per_second, start: None, permits: 0.0 }
    }

    /// Rows per batch that keep output smooth: about ten batches a second, 1..=8192 rows.
    pub(crate) fn batch_hint(&self) -> usize {
        (self.per_second / 10.0).clamp(1.0, 8192.0) as usize
    }

    /// Wait until `n` more rows may be emitted.
    pub(crate) async fn acquire(&mut self, n: usize) {
        let now = Instant::now();
        let start = *self.start.get_or_insert(now);
        let offset = Duration::try_from_secs_f64(self.permits / self.per_second).unwrap_or(Duration::MAX);
        // A rate so low that the due time is out of range: wait a day at a time.
        let due = start.checked_add(offset).unwrap_or(now + Duration::from_secs(86_400));
        if due > now {
            tokio::time::sleep_until(due).await;
        } else if now.duration_since(due) > MAX_DEBT {
            // Fell behind (slow consumer): restart the schedule from now instead of bursting.
            self.start = now.checked_sub(offset);
        }
        self.permits += n as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn paces_batches() {
        let mut limiter = RateLimiter::new(1000.0);
        assert_eq!(limiter.batch_hint(), 100);
        let t0 = std::time::Instant::now();
        for _ in 0..4 {
            limiter.acquire(50).await;
        }
        // 150 rows had to pass before the 4th batch: >= 150 ms at 1000 rows/s.
        assert!(t0.elapsed() >= Duration::from_millis(140), "{:?}", t0.elapsed());
    }
}
