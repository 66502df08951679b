//! `eddy top`: a live terminal view of a server's jobs, read from its `/metrics`.
//!
//! Every refresh reads the Prometheus text once; rates (rows per second) are the change of
//! the row counters since the previous read. On a terminal the screen is redrawn in place;
//! otherwise each frame is printed after the last (for logs and tests).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// One job's figures from one read of `/metrics`.
#[derive(Debug, Default, Clone)]
struct JobFigures {
    name: String,
    running: bool,
    rows_in: f64,
    rows_out: f64,
    late: f64,
    bad: f64,
    state_bytes: f64,
    watermark_lag: Option<f64>,
    checkpoint_age: Option<f64>,
}

/// The server's figures from one read.
#[derive(Debug, Default)]
struct Scrape {
    jobs: BTreeMap<String, JobFigures>,
    connections: f64,
    queries: f64,
}

/// Show the jobs of the server at `url` every `every`, `frames` times (forever when `None`).
pub(crate) fn top(url: &str, every: Duration, frames: Option<u64>) -> u8 {
    match run(url, every, frames) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("eddy top: {e:#}");
            crate::EXIT_FAILURE
        }
    }
}

fn run(url: &str, every: Duration, frames: Option<u64>) -> Result<()> {
    let metrics_url = format!("{}/metrics", url.trim_end_matches('/'));
    let terminal = std::io::stdout().is_terminal();
    let mut previous: Option<(Instant, Scrape)> = None;
    let mut shown = 0u64;
    loop {
        let now = Instant::now();
        let scrape = read(&metrics_url)?;
        let frame = render(url, &scrape, previous.as_ref().map(|(t, s)| (now.duration_since(*t), s)));
        let mut out = std::io::stdout().lock();
        if terminal {
            // Clear the screen and go home: the frame replaces the last one.
            write!(out, "\x1b[2J\x1b[H")?;
        } else if shown > 0 {
            writeln!(out)?;
        }
        write!(out, "{frame}")?;
        out.flush()?;
        drop(out);
        shown += 1;
        if frames.is_some_and(|n| shown >= n) {
            return Ok(());
        }
        previous = Some((now, scrape));
        std::thread::sleep(every);
    }
}

fn read(url: &str) -> Result<Scrape> {
    let body = ureq::get(url)
        .call()
        .with_context(|| format!("cannot read {url} (is `eddy serve` running with --http-listen?)"))?
        .body_mut()
        .read_to_string()
        .with_context(|| format!("reading {url}"))?;
    Ok(parse(&body))
}

/// The figures `eddy top` shows, from Prometheus' text format.
fn parse(text: &str) -> Scrape {
    let mut scrape = Scrape::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let Ok(value) = value.parse::<f64>() else { continue };
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (series, ""),
        };
        match name {
            "eddy_pg_connections" => scrape.connections = value,
            "eddy_pg_query_duration_seconds_count" => scrape.queries = value,
            _ => {}
        }
        let Some(id) = label(labels, "job_id") else { continue };
        let job = scrape.jobs.entry(id).or_default();
        if let Some(n) = label(labels, "job_name") {
            job.name = n;
        }
        match name {
            "eddy_job_running" => job.running = value > 0.0,
            "eddy_job_rows_in_total" => job.rows_in = value,
            "eddy_job_rows_out_total" => job.rows_out = value,
            "eddy_job_late_rows_dropped_total" => job.late = value,
            "eddy_job_bad_records_total" => job.bad = value,
            "eddy_job_state_bytes" => job.state_bytes = value,
            "eddy_job_watermark_lag_seconds" => job.watermark_lag = Some(value),
            "eddy_job_last_checkpoint_age_seconds" => job.checkpoint_age = Some(value),
            _ => {}
        }
    }
    scrape
}

/// The value of label `key` in `a="x",b="y"` (escapes undone).
fn label(labels: &str, key: &str) -> Option<String> {
    let start = labels.find(&format!("{key}=\""))? + key.len() + 2;
    let mut value = String::new();
    let mut chars = labels[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => value.push('\n'),
                Some(other) => value.push(other),
                None => break,
            },
            '"' => return Some(value),
            c => value.push(c),
        }
    }
    None
}

fn render(url: &str, now: &Scrape, before: Option<(Duration, &Scrape)>) -> String {
    let running = now.jobs.values().filter(|j| j.running).count();
    let mut out = format!(
        "eddy top  {url}  {} jobs ({running} running)  {} connections  {} queries\n\n",
        now.jobs.len(),
        now.connections,
        now.queries
    );
    out.push_str(&format!(
        "{:<10} {:<28} {:<8} {:>10} {:>10} {:>8} {:>6} {:>9} {:>9} {:>10}\n",
        "JOB", "NAME", "STATUS", "IN/s", "OUT/s", "LATE", "BAD", "WM LAG", "STATE", "CHECKPOINT"
    ));
    for (id, j) in &now.jobs {
        let rate = |f: fn(&JobFigures) -> f64| match before.and_then(|(dt, b)| b.jobs.get(id).map(|p| (dt, p))) {
            Some((dt, p)) if dt.as_secs_f64() > 0.0 => format!("{:.0}", (f(j) - f(p)).max(0.0) / dt.as_secs_f64()),
            _ => "-".to_string(),
        };
        let seconds = |s: Option<f64>| s.map_or("-".to_string(), |s| format!("{s:.1}s"));
        out.push_str(&format!(
            "{:<10} {:<28} {:<8} {:>10} {:>10} {:>8} {:>6} {:>9} {:>9} {:>10}\n",
            shorten(id, 10),
            shorten(&j.name, 28),
            if j.running { "RUNNING" } else { "ENDED" },
            rate(|j| j.rows_in),
            rate(|j| j.rows_out),
            j.late,
            j.bad,
            seconds(j.watermark_lag),
            bytes(j.state_bytes),
            seconds(j.checkpoint_age),
        ));
    }
    out
}

fn shorten(s: &str, width: usize) -> String {
    match s.char_indices().nth(width) {
        Some((i, _)) => format!("{}…", &s[..s.char_indices().nth(width - 1).map_or(i, |(j, _)| j)]),
        None => s.to_string(),
    }
}

fn bytes(b: f64) -> String {
    match b {
        b if b >= 1e9 => format!("{:.1} GB", b / 1e9),
        b if b >= 1e6 => format!("{:.1} MB", b / 1e6),
        b if b >= 1e3 => format!("{:.0} kB", b / 1e3),
        b => format!("{b:.0} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS: &str = "# TYPE eddy_job_rows_in_total counter
eddy_job_rows_in_total{job_id=\"j1\",job_name=\"insert-into_\\\"q\\\"\"} 1000
eddy_job_running{job_id=\"j1\",job_name=\"insert-into_\\\"q\\\"\"} 1
eddy_job_late_rows_dropped_total{job_id=\"j1\",job_name=\"x\"} 3
eddy_job_state_bytes{job_id=\"j1\",job_name=\"x\"} 2500000
eddy_job_watermark_lag_seconds{job_id=\"j1\",job_name=\"x\"} 2.5
eddy_pg_connections 4
";

    #[test]
    fn figures_and_rates_come_from_the_metrics_text() {
        let before = parse(METRICS);
        let now = parse(&METRICS.replace("} 1000", "} 3000"));
        let j = &now.jobs["j1"];
        assert!(j.running);
        assert_eq!((j.rows_in, j.late, j.watermark_lag), (3000.0, 3.0, Some(2.5)));
        let frame = render("http://h", &now, Some((Duration::from_secs(2), &before)));
        let row = frame.lines().find(|l| l.starts_with("j1")).unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(&cells[2..5], &["RUNNING", "1000", "0"], "{frame}");
        assert!(row.contains("2.5 MB") && row.contains("2.5s"), "{row}");
        assert!(frame.contains("4 connections"), "{frame}");
    }

    #[test]
    fn label_values_are_unescaped() {
        assert_eq!(label("job_id=\"a\",job_name=\"say \\\"hi\\\"\"", "job_name").as_deref(), Some("say \"hi\""));
        assert_eq!(label("job_id=\"a\"", "job_name"), None);
    }
}
