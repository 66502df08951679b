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

/// A server whose state is open and whose ports are bound, not yet answering: its
/// addresses are known (a port 0 in the configuration is the one the system picked), so a
/// caller can say where it listens before it serves.
pub struct Listening {
    eddy: Arc<Eddy>,
    pg: TcpListener,
    pg_addr: SocketAddr,
    http: Option<(SocketAddr, tokio::task::JoinHandle<()>)>,
    tls: Option<datafusion_postgres::pgwire::tokio::TlsAcceptor>,
    auth: auth::Auth,
}

/// Open the state (restarting its jobs) and bind the ports.
pub async fn listen(config: ServeConfig) -> Result<Listening, ServerError> {
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
    let io = |e| ServerError::Io { context: format!("listening on {}", config.pg_listen), source: e };
    let pg = TcpListener::bind(config.pg_listen).await.map_err(io)?;
    let pg_addr = pg.local_addr().map_err(io)?;
    let http = match config.http_listen {
        Some(addr) => Some(http::spawn(addr, eddy.clone()).await?),
        None => None,
    };
    let tls = match &config.tls {
        Some((cert, key)) => Some(auth::tls_acceptor(cert, key)?),
        None => None,
    };
    Ok(Listening { eddy, pg, pg_addr, http, tls, auth: config.auth })
}

impl Listening {
    /// The Postgres protocol's address.
    pub fn pg_addr(&self) -> SocketAddr {
        self.pg_addr
    }

    /// The HTTP endpoint's address, if there is one.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(|(addr, _)| *addr)
    }

    /// Answer until `shutdown` resolves, then stop the jobs (the next `listen` on the same
    /// state directory starts them again).
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()>) -> Result<(), ServerError> {
        let Listening { eddy, pg: listener, pg_addr, http, tls, auth } = self;
        tracing::info!(pg = %pg_addr, http = ?http.as_ref().map(|(a, _)| a), "eddy serve ready");
        let handlers = Arc::new(pg::Handlers::new(eddy.clone(), auth));
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
                        Err(e) => {
                            // Out of file descriptors, say: wait rather than spin.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        }
                    }
                }
                _ = &mut shutdown => break,
            }
        }
        if let Some((_, task)) = http {
            task.abort();
        }
        eddy.jobs().stop_all_for_restart(std::time::Duration::from_secs(10)).await;
        Ok(())
    }
}
