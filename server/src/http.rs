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

use crate::service::Eddy;
use crate::ServerError;

/// Listen on `addr` and answer until aborted.
pub async fn spawn(addr: SocketAddr, eddy: Arc<Eddy>) -> Result<JoinHandle<()>, ServerError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| ServerError::Io { context: format!("listening on {addr}"), source: e })?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { continue };
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
    }))
}

/// Per-job counters in Prometheus' text format.
fn metrics(eddy: &Eddy) -> String {
    let jobs = eddy.jobs().list();
    let mut out = String::new();
    let escape = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    for (name, help, kind) in [
        ("eddy_job_rows_in_total", "Rows read by the job's sources.", "counter"),
        ("eddy_job_rows_out_total", "Rows written by the job's sinks.", "counter"),
        ("eddy_job_running", "1 while the job runs.", "gauge"),
        ("eddy_job_checkpoints_completed_total", "Checkpoints completed.", "counter"),
        ("eddy_job_checkpoints_failed_total", "Checkpoints declined or abandoned.", "counter"),
        ("eddy_job_last_checkpoint_duration_ms", "Trigger to manifest of the last completed checkpoint.", "gauge"),
        ("eddy_job_last_checkpoint_size_bytes", "Bytes written by the last completed checkpoint.", "gauge"),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for j in &jobs {
            let c = &j.checkpoints;
            let value = match name {
                "eddy_job_rows_in_total" => j.rows_in,
                "eddy_job_rows_out_total" => j.rows_out,
                "eddy_job_checkpoints_completed_total" => c.completed,
                "eddy_job_checkpoints_failed_total" => c.failed,
                "eddy_job_last_checkpoint_duration_ms" => c.last_duration_ms,
                "eddy_job_last_checkpoint_size_bytes" => c.last_bytes,
                _ => u64::from(j.status == crate::jobs::JobStatus::Running),
            };
            let _ = writeln!(out, "{name}{{job_id=\"{}\",job_name=\"{}\"}} {value}", j.id, escape(&j.name));
        }
    }
    let _ = writeln!(
        out,
        "# HELP eddy_job_watermark_seconds The job's watermark (its sinks' least), seconds since the epoch.\n\
         # TYPE eddy_job_watermark_seconds gauge"
    );
    for j in jobs.iter().filter(|j| j.watermark.is_some()) {
        let w = j.watermark.unwrap_or_default() as f64 / 1000.0;
        let _ = writeln!(out, "eddy_job_watermark_seconds{{job_id=\"{}\",job_name=\"{}\"}} {w}", j.id, escape(&j.name));
    }
    let _ = writeln!(
        out,
        "# HELP eddy_job_watermark_lag_seconds How far the job's watermark is behind the wall clock.\n\
         # TYPE eddy_job_watermark_lag_seconds gauge"
    );
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let _ = writeln!(
        out,
        "# HELP eddy_job_last_checkpoint_age_seconds Time since the last completed checkpoint.\n\
         # TYPE eddy_job_last_checkpoint_age_seconds gauge"
    );
    for j in jobs.iter().filter(|j| j.checkpoints.last_completed_ms > 0) {
        let age = now - j.checkpoints.last_completed_ms as f64 / 1000.0;
        let _ = writeln!(
            out,
            "eddy_job_last_checkpoint_age_seconds{{job_id=\"{}\",job_name=\"{}\"}} {age:.3}",
            j.id,
            escape(&j.name)
        );
    }
    for j in jobs.iter().filter(|j| j.watermark.is_some()) {
        let lag = now - j.watermark.unwrap_or_default() as f64 / 1000.0;
        let _ = writeln!(
            out,
            "eddy_job_watermark_lag_seconds{{job_id=\"{}\",job_name=\"{}\"}} {lag:.3}",
            j.id,
            escape(&j.name)
        );
    }
    out
}
