//! `eddy serve [FILE.sql]`: the long-running server (Postgres protocol, HTTP health and
//! metrics); with a file, its statements are submitted once the server listens.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use eddy_server::auth::{Auth, Users};
use eddy_server::{listen, ServeConfig};

use crate::script::{prepare, ScriptError};
use crate::{EXIT_FAILURE, EXIT_USAGE};

/// `eddy serve`'s command line.
pub struct ServeArgs {
    pub file: Option<PathBuf>,
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
    let ServeArgs { file, state_dir, pg_listen, http_listen, auth, users, users_file, tls } = args;
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
    let submit = match &file {
        Some(file) => match file_to_submit(file, &state_dir) {
            Ok(s) => s,
            Err(code) => return code,
        },
        None => None,
    };
    let config = ServeConfig { state_dir, pg_listen, http_listen, auth: auth.clone(), tls };
    let state_dir = config.state_dir.clone();
    let result = runtime.block_on(async {
        let server = listen(config).await?;
        // Where it listens, as bound: a port 0 asked for any free port.
        let pg = server.pg_addr();
        eprintln!(
            "eddy serve: Postgres protocol on {pg}{}; state in {}",
            server.http_addr().map(|a| format!(", http://{a}/metrics")).unwrap_or_default(),
            state_dir.display()
        );
        if let Some(file) = submit {
            let url = submit_url(pg, &auth, &users);
            let marker = state_dir.join(SERVED_FILES);
            std::thread::spawn(move || submit_file_once(&file, &url, &marker));
        }
        server.serve(shutdown_signal()).await
    });
    // Said at once: the runtime's shutdown below may wait for jobs.
    if let Err(e) = &result {
        eprintln!("error: {e}");
    }
    // Jobs were asked to stop; give them a moment to write what is in flight.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(()) => 0,
        Err(_) => EXIT_FAILURE,
    }
}

/// Under the state directory: the SQL files `eddy serve FILE` submitted, one absolute path
/// a line, so a restart resumes their jobs instead of submitting them again.
const SERVED_FILES: &str = "served-files";

/// The file to submit once listening, or `None` when this state directory already took it.
/// A file that does not parse, or whose DDL is wrong, stops `eddy serve` before it starts.
fn file_to_submit(file: &Path, state_dir: &Path) -> Result<Option<PathBuf>, u8> {
    if let Err(ScriptError::Io(m) | ScriptError::Sql(m)) = prepare(file, false) {
        eprint!("{m}");
        if !m.ends_with('\n') {
            eprintln!();
        }
        return Err(EXIT_USAGE);
    }
    let absolute = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let served = std::fs::read_to_string(state_dir.join(SERVED_FILES)).unwrap_or_default();
    if served.lines().any(|l| Path::new(l) == absolute) {
        eprintln!(
            "eddy serve: {} was submitted to {} before; its tables and jobs resume from there \
             (a new --state-dir starts over)",
            file.display(),
            state_dir.display()
        );
        return Ok(None);
    }
    Ok(Some(absolute))
}

/// The URL `eddy submit` would use for this server (loopback when it listens on all
/// addresses; the first --user when clients must authenticate).
fn submit_url(pg_listen: SocketAddr, auth: &Auth, users: &[String]) -> String {
    let mut addr = pg_listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let user = match (auth, users.first()) {
        (Auth::Scram(_), Some(pair)) => pair.clone(),
        _ => "eddy".to_string(),
    };
    format!("postgres://{user}@{addr}/eddy")
}

/// Send `file`'s statements to the server (printing what `eddy submit` prints) and remember
/// the file under the state directory. The server is bound already: the connection waits in
/// its backlog until it answers.
fn submit_file_once(file: &Path, url: &str, marker: &Path) {
    if crate::submit::submit_file(file, url) != 0 {
        eprintln!(
            "eddy serve: {} stopped at the statement above; the statements before it were applied \
             (fix it and send the rest with `eddy submit`, or start over with a new --state-dir)",
            file.display()
        );
        return;
    }
    let line = format!("{}\n", file.display());
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(marker)
        .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
    if let Err(e) = written {
        eprintln!("eddy serve: cannot note {} in {}: {e}", file.display(), marker.display());
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
