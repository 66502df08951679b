//! `eddy serve`: the long-running server (Postgres protocol, HTTP health and metrics).

use std::net::SocketAddr;
use std::path::PathBuf;

use eddy_server::auth::{Auth, Users};
use eddy_server::{serve, ServeConfig};

use crate::{EXIT_FAILURE, EXIT_USAGE};

/// `eddy serve`'s command line.
pub struct ServeArgs {
    pub state_dir: PathBuf,
    pub pg_listen: String,
    pub http_listen: String,
    pub auth: String,
    pub users: Vec<String>,
    pub users_file: Option<PathBuf>,
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// Serve until Ctrl-C or SIGTERM; returns the exit code.
pub fn serve_forever(args: ServeArgs) -> u8 {
    let ServeArgs { state_dir, pg_listen, http_listen, auth, users, users_file, tls } = args;
    let (pg_listen, http_listen) = (pg_listen.as_str(), http_listen.as_str());
    let auth = match auth.as_str() {
        "trust" => Auth::Trust,
        "scram" | "scram-sha-256" => {
            let users = match &users_file {
                Some(f) => Users::from_file(f),
                None => Users::from_pairs(users.iter().map(String::as_str)),
            };
            match users {
                Ok(u) => Auth::Scram(std::sync::Arc::new(u)),
                Err(e) => {
                    eprintln!("error: {e}");
                    return EXIT_USAGE;
                }
            }
        }
        other => {
            eprintln!("error: --auth '{other}': write trust or scram");
            return EXIT_USAGE;
        }
    };
    let pg_listen: SocketAddr = match pg_listen.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: --pg-listen '{pg_listen}': {e} (write host:port, e.g. 127.0.0.1:5433)");
            return EXIT_USAGE;
        }
    };
    let http_listen: Option<SocketAddr> = match http_listen {
        "" | "off" => None,
        a => match a.parse() {
            Ok(a) => Some(a),
            Err(e) => {
                eprintln!("error: --http-listen '{a}': {e} (write host:port, or 'off')");
                return EXIT_USAGE;
            }
        },
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    let config = ServeConfig { state_dir, pg_listen, http_listen, auth, tls };
    eprintln!(
        "eddy serve: Postgres protocol on {pg_listen}{}; state in {}",
        http_listen.map(|a| format!(", http://{a}/metrics")).unwrap_or_default(),
        config.state_dir.display()
    );
    let result = runtime.block_on(serve(config, shutdown_signal()));
    // Jobs were asked to stop; give them a moment to write what is in flight.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILURE
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
