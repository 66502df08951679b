//! `eddy`: run Flink SQL files on Eddy's streaming engine.
//!
//! Exit codes: 0 success, 1 the job failed while running, 2 the SQL or the command line is
//! wrong (nothing ran), 130 stopped with Ctrl-C.

mod check;
mod generate;
mod output;
mod progress;
mod run;
mod script;
mod serve;
mod submit;
mod top;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Arrow's many short-lived, batch-sized buffers: jemalloc serves them faster than the system
/// allocator and hands freed memory back to the OS.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its start (the `MALLOC_CONF` environment variable still
/// overrides them). Why: batch buffers are allocated, filled and freed at a high rate.
/// - `thp:always` asks for transparent huge pages on jemalloc's memory where the kernel
///   grants them on request (`transparent_hugepage` = `madvise`, Debian's default). On 4 KiB
///   pages every first write to a recycled page faulted and flushed the other cores' TLBs:
///   40 % of Nexmark q0's time (2.2 M events/s; 5.2 M with huge pages).
/// - Freed pages go back to the kernel over 30 s instead of 10 s (dirty) and at once
///   (muzzy): a page handed back and touched again must be zeroed, which with huge pages
///   was up to 30 % of q7's time while its state grows (1.4-2.0 M events/s; 2.0-2.2 M).
#[allow(non_upper_case_globals)]
#[export_name = "malloc_conf"]
pub static malloc_conf: &[u8; 53] = b"thp:always,dirty_decay_ms:30000,muzzy_decay_ms:30000\0";

/// Eddy — a streaming SQL engine for Flink SQL pipelines.
#[derive(Parser, Debug)]
#[command(
    name = "eddy",
    version,
    about = "Eddy — a streaming SQL engine that runs Flink SQL files",
    after_help = "Examples:
  eddy run examples/quickstart.sql        run every statement of a file (embedded, no Kafka needed)
  eddy check pipeline.sql                 parse and plan a file, print its operator graph, run nothing
  EDDY_LOG=debug eddy run pipeline.sql    more logging on stderr (RUST_LOG works too)
  eddy --log-format json serve            logs as JSON lines, for log collectors

Exit codes: 0 ok, 1 runtime failure, 2 SQL or usage error, 130 stopped with Ctrl-C."
)]
struct Cli {
    /// Log lines on stderr: 'text' (readable, the default) or 'json' (one object per line,
    /// for log collectors). The level comes from EDDY_LOG or RUST_LOG (default 'warn').
    #[arg(long, global = true, default_value = "text", value_name = "text|json")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a SQL file: DDL and SET apply in order, then all INSERTs (and SELECTs) run as one
    /// job until bounded sources end or Ctrl-C.
    Run {
        /// The Flink SQL file.
        file: PathBuf,
        /// Do not show the live progress line (it is shown only on a terminal anyway).
        #[arg(long)]
        quiet: bool,
        /// Where tables declared without a connector (result tables) keep their rows, and
        /// checkpoints (with `SET 'execution.checkpointing.interval'`) are kept; a run of the
        /// same file resumes from its latest checkpoint.
        #[arg(long, default_value = "eddy-state", value_name = "DIR")]
        state_dir: PathBuf,
        /// Start from the beginning: discard this file's checkpoints.
        #[arg(long)]
        fresh: bool,
    },
    /// Serve result tables over the Postgres wire protocol; statements sent to it keep a
    /// persistent catalog and start jobs that outlive the connection and a restart.
    Serve {
        /// A Flink SQL file whose statements are submitted once the server listens (as
        /// `eddy submit` would), the first time this state directory serves it; later
        /// starts resume its jobs from the state directory.
        file: Option<PathBuf>,
        /// Catalog, jobs and result tables live here.
        #[arg(long, default_value = "eddy-state", value_name = "DIR")]
        state_dir: PathBuf,
        /// Postgres protocol address (psql -h 127.0.0.1 -p 5433). Port 0 takes any free port;
        /// the line printed at start says which.
        #[arg(long, default_value = eddy_server::DEFAULT_PG_LISTEN, value_name = "HOST:PORT")]
        pg_listen: String,
        /// HTTP address of /health and /metrics ('off' for none; port 0 for any free port).
        #[arg(long, default_value = eddy_server::DEFAULT_HTTP_LISTEN, value_name = "HOST:PORT")]
        http_listen: String,
        /// Client authentication: 'trust' (anyone; for loopback) or 'scram' (SCRAM-SHA-256
        /// against --user / --users-file).
        #[arg(long, default_value = "trust", value_name = "trust|scram")]
        auth: String,
        /// A user for --auth scram, as name:password (repeatable).
        #[arg(long = "user", value_name = "NAME:PASSWORD")]
        users: Vec<String>,
        /// A file of name:password lines for --auth scram.
        #[arg(long, value_name = "FILE")]
        users_file: Option<PathBuf>,
        /// TLS certificate chain (PEM); with --tls-key, clients may connect with TLS.
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM).
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Send a SQL file's statements to a running `eddy serve`, one line per statement; stops
    /// at the first error.
    Submit {
        /// The Flink SQL file.
        file: PathBuf,
        /// The server.
        #[arg(long, default_value = "postgres://eddy@127.0.0.1:5433/eddy")]
        url: String,
    },
    /// Write an example's input (see examples/): `eddy generate stock-trades --to
    /// kafka://127.0.0.1:19092/trades` or `--to file://trades/`; deterministic with --seed.
    Generate {
        /// trending-hashtags, stock-trades, market-quotes, iot-boats or auction-bids.
        example: String,
        /// kafka://HOST:PORT/TOPIC or file://DIRECTORY.
        #[arg(long)]
        to: String,
        /// Events per second of event time (and of wall time, unless --fast).
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
        /// Stop after this many events (default: until Ctrl-C).
        #[arg(long)]
        count: Option<u64>,
        /// The random stream's seed: the same seed gives the same events.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Event time of the first event: 'YYYY-MM-DD HH:MM:SS' (UTC), ms since the epoch, or
        /// relative to now ('now-1h'; default: now).
        #[arg(long, value_parser = generate::parse_start)]
        start: Option<i64>,
        /// Write as fast as possible (event times still --rate apart).
        #[arg(long)]
        fast: bool,
        /// Record format: json, csv, or avro-confluent (Kafka, with --registry).
        #[arg(long, default_value = "json")]
        format: String,
        /// Schema Registry URL for --format avro-confluent.
        #[arg(long)]
        registry: Option<String>,
        /// Create a missing topic with this many partitions.
        #[arg(long)]
        partitions: Option<u64>,
    },
    /// A live view of a running `eddy serve`'s jobs (rows/s in and out, late rows, bad
    /// records, watermark lag, state, checkpoint age), refreshed from its /metrics.
    Top {
        /// The server's HTTP address (its --http-listen).
        #[arg(long, default_value = "http://127.0.0.1:9249")]
        url: String,
        /// Seconds between refreshes.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// Stop after this many refreshes (default: until Ctrl-C).
        #[arg(long, value_name = "N")]
        iterations: Option<u64>,
    },
    /// Parse and plan a SQL file and print the operator graph (EXPLAIN) without running it.
    Check {
        /// The Flink SQL file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let code = match cli.command {
        Command::Run { file, quiet, state_dir, fresh } => run::run_file(&file, quiet, &state_dir, fresh),
        Command::Check { file } => check::check_file(&file),
        Command::Serve { file, state_dir, pg_listen, http_listen, auth, users, users_file, tls_cert, tls_key } => {
            serve::serve_forever(serve::ServeArgs {
                file,
                state_dir,
                pg_listen,
                http_listen,
                auth,
                users,
                users_file,
                tls: tls_cert.zip(tls_key),
            })
        }
        Command::Submit { file, url } => submit::submit_file(&file, &url),
        Command::Generate { example, to, rate, count, seed, start, fast, format, registry, partitions } => {
            generate::generate(&generate::GenerateArgs {
                example,
                to,
                rate,
                count,
                seed,
                start_ms: start,
                fast,
                format,
                registry,
                partitions,
            })
        }
        Command::Top { url, interval, iterations } => {
            top::top(&url, std::time::Duration::from_secs_f64(interval.max(0.05)), iterations)
        }
    };
    ExitCode::from(code)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EDDY_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().with_current_span(false).init(),
    }
}

/// Exit code: the SQL or the command line is wrong.
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit code: the job failed while running.
pub(crate) const EXIT_FAILURE: u8 = 1;
/// Exit code: stopped with Ctrl-C.
pub(crate) const EXIT_INTERRUPTED: u8 = 130;
