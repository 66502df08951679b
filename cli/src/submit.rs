//! `eddy submit FILE.sql`: send a file's statements to a running server, one by one, as
//! Flink's `sql-client -f` does, printing one line per statement.

use std::path::Path;

use tokio_postgres::{NoTls, SimpleQueryMessage};

use crate::{EXIT_FAILURE, EXIT_USAGE};

/// Submit `path` to the server at `url`; returns the exit code.
pub fn submit_file(path: &Path, url: &str) -> u8 {
    let name = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{name}: {e}");
            return EXIT_USAGE;
        }
    };
    // Split here, so an error names the statement's place in the file.
    let statements = match eddy_sql::parse_sql(&text) {
        Ok(s) => s,
        Err(e) => {
            eprint!("{}", e.render(&name, &text));
            return EXIT_USAGE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    runtime.block_on(async {
        let (client, connection) = match tokio_postgres::connect(url, NoTls).await {
            Ok(c) => c,
            Err(e) => {
                // tokio-postgres keeps the cause (refused, timed out...) as the source.
                let cause = std::error::Error::source(&e).map(|c| format!(": {c}")).unwrap_or_default();
                eprintln!("error: cannot connect to {url}: {e}{cause} (is `eddy serve` running?)");
                return EXIT_FAILURE;
            }
        };
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection closed");
            }
        });
        for (i, statement) in statements.iter().enumerate() {
            // Padded with the lines and columns before it, so the server's line:col are the file's.
            let loc = statement.location;
            let padded = format!(
                "{}{}{}",
                "\n".repeat(loc.line.saturating_sub(1) as usize),
                " ".repeat(loc.column.saturating_sub(1) as usize),
                eddy_sql::statement_text(&text, &statements, i)
            );
            match client.simple_query(&padded).await {
                Ok(messages) => {
                    let job_ids: Vec<String> = messages
                        .iter()
                        .filter_map(|m| match m {
                            SimpleQueryMessage::Row(r) if r.columns().first().is_some_and(|c| c.name() == "job_id") => {
                                r.get(0).map(str::to_string)
                            }
                            _ => None,
                        })
                        .collect();
                    if job_ids.is_empty() {
                        println!("[INFO] Execute statement succeeded.");
                    } else {
                        println!("[INFO] Submitting SQL update statement to the cluster...");
                        for id in job_ids {
                            println!("[INFO] SQL update statement has been successfully submitted to the cluster:");
                            println!("Job ID: {id}");
                        }
                    }
                }
                Err(e) => {
                    let message = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string());
                    eprintln!("[ERROR] Could not execute SQL statement at {name}:{}:{}:", loc.line, loc.column);
                    eprintln!("{}", message.replace("statement:", &format!("{name}:")));
                    return EXIT_FAILURE;
                }
            }
        }
        0
    })
}
