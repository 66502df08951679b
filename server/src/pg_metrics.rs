//! Counters of the Postgres protocol side, for `/metrics`: open connections, and queries
//! with a latency histogram (time from receiving a statement to its response being ready,
//! before rows stream to the client).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histogram's buckets, in seconds (Prometheus' `le`).
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// The server's protocol counters.
#[derive(Debug, Default)]
pub struct PgMetrics {
    open: AtomicI64,
    accepted: AtomicU64,
    queries: AtomicU64,
    failed: AtomicU64,
    /// Queries per bucket (not cumulative; made cumulative when rendered), plus one for
    /// slower than the last bound.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

/// Counts a connection as open until dropped.
#[derive(Debug)]
pub struct OpenConnection<'a>(&'a PgMetrics);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl PgMetrics {
    /// A connection was accepted; it counts as open while the guard lives.
    pub fn connection(&self) -> OpenConnection<'_> {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self)
    }

    /// A query took `took`; `ok` is false when it failed.
    pub fn query(&self, took: Duration, ok: bool) {
        self.queries.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        let secs = took.as_secs_f64();
        let bucket = BUCKETS.iter().position(|le| secs <= *le).unwrap_or(BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// The counters in Prometheus' text format.
    pub fn render(&self, out: &mut String) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP eddy_pg_connections Open Postgres protocol connections.\n# TYPE eddy_pg_connections gauge\n\
             eddy_pg_connections {}",
            self.open.load(Ordering::Relaxed).max(0)
        );
        let _ = writeln!(
            out,
            "# HELP eddy_pg_connections_accepted_total Postgres protocol connections accepted.\n\
             # TYPE eddy_pg_connections_accepted_total counter\neddy_pg_connections_accepted_total {}",
            get(&self.accepted)
        );
        let _ = writeln!(
            out,
            "# HELP eddy_pg_query_errors_total Queries answered with an error.\n\
             # TYPE eddy_pg_query_errors_total counter\neddy_pg_query_errors_total {}",
            get(&self.failed)
        );
        let _ = writeln!(
            out,
            "# HELP eddy_pg_query_duration_seconds Time from a statement's arrival to its response.\n\
             # TYPE eddy_pg_query_duration_seconds histogram"
        );
        let mut cumulative = 0;
        for (le, count) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += get(count);
            let _ = writeln!(out, "eddy_pg_query_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}");
        }
        cumulative += get(&self.buckets[BUCKETS.len()]);
        let _ = writeln!(out, "eddy_pg_query_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "eddy_pg_query_duration_seconds_sum {}", get(&self.sum_micros) as f64 / 1e6);
        let _ = writeln!(out, "eddy_pg_query_duration_seconds_count {}", get(&self.queries));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_is_cumulative_and_connections_close() {
        let m = PgMetrics::default();
        {
            let _a = m.connection();
            let _b = m.connection();
            m.query(Duration::from_micros(300), true);
            m.query(Duration::from_millis(30), false);
            m.query(Duration::from_secs(9), true);
        }
        let mut out = String::new();
        m.render(&mut out);
        for line in [
            "eddy_pg_connections 0",
            "eddy_pg_connections_accepted_total 2",
            "eddy_pg_query_errors_total 1",
            "eddy_pg_query_duration_seconds_bucket{le=\"0.0005\"} 1",
            "eddy_pg_query_duration_seconds_bucket{le=\"0.025\"} 1",
            "eddy_pg_query_duration_seconds_bucket{le=\"0.05\"} 2",
            "eddy_pg_query_duration_seconds_bucket{le=\"5\"} 2",
            "eddy_pg_query_duration_seconds_bucket{le=\"+Inf\"} 3",
            "eddy_pg_query_duration_seconds_count 3",
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line} in\n{out}");
        }
    }
}
