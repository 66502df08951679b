//! eddy-server: `eddy serve` — result tables queried over the Postgres wire protocol,
//! statements that keep a persistent catalog and start jobs that outlive the connection.

pub mod jobs;
pub mod query;
pub mod service;

use thiserror::Error;

/// Why the server or one of its statements failed.
#[derive(Debug, Error)]
pub enum ServerError {
    /// A statement is wrong; rendered with line:col, caret and hint.
    #[error("{0}")]
    Sql(String),
    /// The engine refused the job.
    #[error("{0}")]
    Engine(String),
    /// A command used wrongly.
    #[error("{0}")]
    Usage(String),
    /// `STOP JOB` of an id that is not there.
    #[error("no job with id '{0}'; SHOW JOBS lists them")]
    NoSuchJob(String),
    /// The state directory's files.
    #[error("{0}")]
    State(String),
    /// Reading or writing a file, binding a port.
    #[error("{context}: {source}")]
    Io {
        /// The path or address.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

pub mod auth;
pub mod copy;
pub mod http;
pub mod info_schema;
pub mod pg;
pub mod pg_catalog_keys;
pub mod pg_catalog_overlay;
pub mod pg_compat;
pub mod pg_metrics;
pub mod pg_rewrite;
pub mod point_lookup;
pub mod type_introspection;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion_postgres::pgwire::tokio::process_socket;
use tokio::net::TcpListener;

pub use service::Eddy;

/// Default Postgres protocol address: loopback, and not 5432 (a real Postgres may be there).
pub const DEFAULT_PG_LISTEN: &str = "127.0.0.1:5433";
/// Default HTTP address (/health, /metrics).
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:9249";

/// How `eddy serve` runs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// State directory: catalog, jobs, result tables.
    pub state_dir: PathBuf,
    /// Postgres wire protocol address.
    pub pg_listen: SocketAddr,
    /// HTTP address; `None` for no HTTP endpoint.
    pub http_listen: Option<SocketAddr>,
    /// Client authentication.
    pub auth: auth::Auth,
    /// TLS certificate and key (PEM), if clients may use TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// Open the state, then serve until `shutdown` resolves; jobs are stopped at the end (and
/// started again by the next `serve` on the same state directory).
pub async fn serve(config: ServeConfig, shutdown: impl std::future::Future<Output = ()>) -> Result<(), ServerError> {
    let state_dir = config.state_dir.clone();
    let eddy = tokio::task::spawn_blocking({
        let handle = tokio::runtime::Handle::current();
        move || {
            let _guard = handle.enter();
            Eddy::open(&state_dir)
        }
    })
    .await
    .map_err(|e| ServerError::State(format!("opening the state failed: {e}")))??;
    pg_catalog_overlay::install(&eddy.query_context(), eddy.primary_keys()).await?;
    let listener = TcpListener::bind(config.pg_listen)
        .await
        .map_err(|e| ServerError::Io { context: format!("listening on {}", config.pg_listen), source: e })?;
    let http = match config.http_listen {
        Some(addr) => Some(http::spawn(addr, eddy.clone()).await?),
        None => None,
    };
    tracing::info!(pg = %config.pg_listen, http = ?config.http_listen, state = %config.state_dir.display(), "eddy serve ready");
    let tls = match &config.tls {
        Some((cert, key)) => Some(auth::tls_acceptor(cert, key)?),
        None => None,
    };
    let handlers = Arc::new(pg::Handlers::new(eddy.clone(), config.auth.clone()));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                match accepted {
                    Ok((socket, peer)) => {
                        let handlers = handlers.clone();
                        let tls = tls.clone();
                        let eddy = eddy.clone();
                        tokio::spawn(async move {
                            let _open = eddy.pg_metrics().connection();
                            if let Err(e) = process_socket(socket, tls, handlers).await {
                                tracing::debug!(%peer, error = %e, "connection ended with an error");
                            }
                        });
                    }
                    Err(e) => tracing::warn!(error = %e, "accept failed"),
                }
            }
            _ = &mut shutdown => break,
        }
    }
    if let Some(h) = http {
        h.abort();
    }
    eddy.jobs().stop_all_for_restart(std::time::Duration::from_secs(10)).await;
    Ok(())
}
