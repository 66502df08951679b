//! The live progress line of `eddy run` (on a terminal only) and the final summary.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eddy_engine::{JobMetrics, JobSummary};

/// Redraw `rows in / out / rows/s / elapsed` on stderr until the returned task is aborted.
pub fn spawn_progress(metrics: Arc<JobMetrics>) -> Option<tokio::task::JoinHandle<()>> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    Some(tokio::spawn(async move {
        let start = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            let secs = start.elapsed().as_secs_f64();
            let rows_in = JobMetrics::get(&metrics.rows_in);
            let rows_out = JobMetrics::get(&metrics.rows_out);
            let rate = if secs > 0.0 { rows_in as f64 / secs } else { 0.0 };
            let mut err = std::io::stderr().lock();
            let _ = write!(
                err,
                "\r\x1b[2K  rows in {} | out {} | {}/s | {:.1}s",
                group(rows_in),
                group(rows_out),
                group(rate as u64),
                secs
            );
            let _ = err.flush();
        }
    }))
}

/// Clear the progress line.
pub fn clear_line() {
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[2K");
    }
}

/// The closing summary line.
pub fn summary(s: &JobSummary) -> String {
    let secs = s.elapsed.as_secs_f64();
    let rate = if secs > 0.0 { s.rows_in as f64 / secs } else { 0.0 };
    let mut line = format!(
        "Job {}: {} rows in, {} rows out in {:.2}s ({}/s)",
        if s.stopped { "stopped" } else { "finished" },
        group(s.rows_in),
        group(s.rows_out),
        secs,
        group(rate as u64)
    );
    if s.records_skipped > 0 {
        line.push_str(&format!(", {} malformed records skipped", group(s.records_skipped)));
    }
    if s.already_finished {
        return format!(
            "Job already finished (its final checkpoint {} is in the state directory): nothing to run; \
             run it with --fresh to start over",
            s.restored_epoch
        );
    }
    if s.restored_epoch > 0 {
        line.push_str(&format!(
            ", restored from checkpoint {} (read in {} ms",
            s.restored_epoch,
            s.restore_time.as_millis()
        ));
        if let Some(first) = s.first_row_after {
            line.push_str(&format!(", first row after {} ms", first.as_millis()));
        }
        line.push(')');
    }
    if s.checkpoints > 0 {
        line.push_str(&format!(
            ", {} checkpoints (longest {} ms, last {:.1} MB)",
            s.checkpoints,
            s.max_checkpoint.as_millis(),
            s.last_checkpoint_bytes as f64 / 1e6
        ));
    }
    if s.late_rows_dropped > 0 {
        line.push_str(&format!(", {} late rows dropped", group(s.late_rows_dropped)));
        let by: Vec<String> = s.late_rows_by_operator.iter().map(|(op, n)| format!("{op}: {}", group(*n))).collect();
        line.push_str(&format!(" ({})", by.join(", ")));
    }
    line
}

/// 1234567 -> "1,234,567".
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn groups_thousands() {
        assert_eq!(super::group(1234567), "1,234,567");
        assert_eq!(super::group(12), "12");
        assert_eq!(super::group(100), "100");
        assert_eq!(super::group(1000), "1,000");
    }
}
