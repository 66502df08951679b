//! `GET /health` and `GET /metrics` (Prometheus text format) for probes and scrapers.
//!
//! Two fixed endpoints over HTTP/1.1 with `Connection: close`: small enough not to need an
//! HTTP stack.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::jobs::JobRow;
use crate::service::Eddy;
use crate::ServerError;

/// Listen on `addr` and answer until aborted; returns the address bound (port 0 picks one).
pub async fn spawn(addr: SocketAddr, eddy: Arc<Eddy>) -> Result<(SocketAddr, JoinHandle<()>), ServerError> {
    let io = |e| ServerError::Io { context: format!("listening on {addr}"), source: e };
    let listener = TcpListener::bind(addr).await.map_err(io)?;
    let bound = listener.local_addr().map_err(io)?;
    let task = tokio::spawn(async move {
        loop {
            let mut socket = match listener.accept().await {
                Ok((socket, _)) => socket,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "http accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let eddy = eddy.clone();
            tokio::spawn(async move {
                // The request head, up to its blank line (bodies are not read: GET only).
                let mut buf = Vec::with_capacity(1024);
                let mut chunk = [0u8; 1024];
                let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
                    match tokio::time::timeout_at(deadline, socket.read(&mut chunk)).await {
                        Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                        Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let request = String::from_utf8_lossy(&buf);
                let path = request.lines().next().and_then(|l| l.split_whitespace().nth(1)).unwrap_or("");
                let (status, content_type, body) = match path {
                    "/health" => ("200 OK", "application/json", "{\"status\":\"UP\"}\n".to_string()),
                    "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics(&eddy)),
                    _ => ("404 Not Found", "text/plain", "not found: try /health or /metrics\n".to_string()),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    Ok((bound, task))
}

/// Per-job and per-operator counters and the protocol's, in Prometheus' text format. Each
/// metric family is written whole (HELP, TYPE, then its samples), as the format requires.
fn metrics(eddy: &Eddy) -> String {
    let jobs = eddy.jobs().list();
    let mut out = String::new();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let labels = |j: &JobRow| format!("job_id=\"{}\",job_name=\"{}\"", escape(&j.id), escape(&j.name));
    let per_job = |f: &dyn Fn(&JobRow) -> Option<String>| -> Vec<(String, String)> {
        jobs.iter().filter_map(|j| f(j).map(|v| (labels(j), v))).collect()
    };
    let get = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let families: Vec<(&str, &str, &str, Vec<(String, String)>)> = vec![
        (
            "eddy_job_rows_in_total",
            "Rows read by the job's sources.",
            "counter",
            per_job(&|j| Some(j.rows_in.to_string())),
        ),
        (
            "eddy_job_rows_out_total",
            "Rows written by the job's sinks.",
            "counter",
            per_job(&|j| Some(j.rows_out.to_string())),
        ),
        (
            "eddy_job_running",
            "1 while the job runs.",
            "gauge",
            per_job(&|j| Some(u8::from(j.status == crate::jobs::JobStatus::Running).to_string())),
        ),
        (
            "eddy_job_late_rows_dropped_total",
            "Rows dropped because they arrived behind the watermark.",
            "counter",
            per_job(&|j| Some(get(&j.metrics.late_rows_dropped).to_string())),
        ),
        (
            "eddy_job_bad_records_total",
            "Malformed records skipped by the job's sources (*.ignore-parse-errors).",
            "counter",
            per_job(&|j| Some(get(&j.metrics.records_skipped).to_string())),
        ),
        (
            "eddy_job_state_bytes",
            "Estimated bytes of state the job's operators hold.",
            "gauge",
            per_job(&|j| Some(j.metrics.state_bytes.load(std::sync::atomic::Ordering::Relaxed).max(0).to_string())),
        ),
        (
            "eddy_job_watermark_seconds",
            "The job's watermark (its sinks' least), seconds since the epoch.",
            "gauge",
            per_job(&|j| j.watermark.map(|w| (w as f64 / 1000.0).to_string())),
        ),
        (
            "eddy_job_watermark_lag_seconds",
            "How far the job's watermark is behind the wall clock.",
            "gauge",
            per_job(&|j| j.watermark.map(|w| format!("{:.3}", now - w as f64 / 1000.0))),
        ),
        (
            "eddy_job_checkpoints_completed_total",
            "Checkpoints completed.",
            "counter",
            per_job(&|j| Some(j.checkpoints.completed.to_string())),
        ),
        (
            "eddy_job_checkpoints_failed_total",
            "Checkpoints declined or abandoned.",
            "counter",
            per_job(&|j| Some(j.checkpoints.failed.to_string())),
        ),
        (
            "eddy_job_last_checkpoint_duration_ms",
            "Trigger to manifest of the last completed checkpoint.",
            "gauge",
            per_job(&|j| Some(j.checkpoints.last_duration_ms.to_string())),
        ),
        (
            "eddy_job_last_checkpoint_size_bytes",
            "Bytes written by the last completed checkpoint.",
            "gauge",
            per_job(&|j| Some(j.checkpoints.last_bytes.to_string())),
        ),
        (
            "eddy_job_last_checkpoint_age_seconds",
            "Time since the last completed checkpoint.",
            "gauge",
            per_job(&|j| {
                let done = j.checkpoints.last_completed_ms;
                (done > 0).then(|| format!("{:.3}", now - done as f64 / 1000.0))
            }),
        ),
        (
            "eddy_operator_late_rows_dropped_total",
            "Rows an operator dropped because they arrived behind the watermark.",
            "counter",
            jobs.iter()
                .flat_map(|j| {
                    j.metrics
                        .late_rows_by_operator()
                        .into_iter()
                        .map(move |(op, n)| (format!("{},operator=\"{}\"", labels(j), escape(&op)), n.to_string()))
                })
                .collect(),
        ),
        (
            "eddy_kafka_consumer_lag",
            "Records a job's Kafka source has not read yet, per partition (high watermark of the last fetch minus the next offset).",
            "gauge",
            jobs.iter()
                .flat_map(|j| {
                    j.metrics.source_lag().into_iter().map(move |(table, part, n)| {
                        let (topic, partition) = part.rsplit_once('/').unwrap_or((part.as_str(), ""));
                        let labels = format!(
                            "{},table=\"{}\",topic=\"{}\",partition=\"{}\"",
                            labels(j),
                            escape(&table),
                            escape(topic),
                            escape(partition)
                        );
                        (labels, n.to_string())
                    })
                })
                .collect(),
        ),
    ];
    for (name, help, kind, samples) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
    eddy.pg_metrics().render(&mut out);
    out
}

/// A label value with `\` and `"` escaped.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
