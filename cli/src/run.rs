//! `eddy run FILE.sql`: execute the file's statements and run its job to the end.

use std::path::Path;

use eddy_engine::checkpoint::CheckpointConfig;
use eddy_engine::result_table::ResultTables;
use eddy_engine::{Job, StateLimits};

use crate::progress;
use crate::script::{prepare, ScriptError};
use crate::{EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE};

/// Where the checkpoints of `file`'s job live: one directory per file (by its name and a
/// hash of its absolute path), so a later run of the same file resumes from them.
fn checkpoint_dir(state_dir: &Path, file: &Path) -> std::path::PathBuf {
    let absolute = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let hash = eddy_engine::checkpoint::stable_hash(&absolute.to_string_lossy());
    let stem = file.file_stem().map_or_else(|| "job".into(), |s| s.to_string_lossy().to_string());
    state_dir.join("checkpoints").join(format!("{stem}-{:08x}", hash as u32))
}

/// Run a file; returns the exit code.
pub fn run_file(path: &Path, quiet: bool, state_dir: &Path, fresh: bool) -> u8 {
    let script = match prepare(path, true) {
        Ok(s) => s,
        Err(ScriptError::Io(m)) | Err(ScriptError::Sql(m)) => {
            eprint!("{m}");
            if !m.ends_with('\n') {
                eprintln!();
            }
            return EXIT_USAGE;
        }
    };
    if script.job.is_empty() {
        return 0;
    }
    let plan = match script.session.plan_job(&script.job) {
        Ok(p) => p,
        Err(e) => {
            eprint!("{}", e.render(&script.name, &script.text));
            return EXIT_USAGE;
        }
    };
    let mut job = match Job::new(plan) {
        // Nothing is created under the state directory unless a result table is written.
        Ok(j) => j.with_result_tables(ResultTables::new(state_dir)),
        Err(e) => {
            eprint!("{}", script.render_job_error(&e));
            return EXIT_USAGE;
        }
    };
    let checkpoints = checkpoint_dir(state_dir, path);
    if fresh {
        if let Err(e) = std::fs::remove_dir_all(&checkpoints) {
            if e.kind() != std::io::ErrorKind::NotFound {
                eprintln!("error: cannot remove {}: {e}", checkpoints.display());
                return EXIT_FAILURE;
            }
        }
    }
    let settings = script.session.settings();
    job = job.with_state_limits(StateLimits::from_settings(settings));
    if let Some(ms) = settings.checkpoint_interval_ms() {
        job = job.with_checkpoints(CheckpointConfig {
            dir: checkpoints,
            interval: std::time::Duration::from_millis(ms),
            retained: settings.checkpoints_retained(),
        });
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    runtime.block_on(async move {
        let metrics = job.metrics();
        let stop = job.stop_handle();
        let ticker = if quiet { None } else { progress::spawn_progress(metrics) };
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.stop();
                // A second Ctrl-C does not wait for the job to drain.
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(i32::from(EXIT_INTERRUPTED));
                }
            }
        });
        let result = job.run().await;
        if let Some(t) = ticker {
            t.abort();
        }
        progress::clear_line();
        match result {
            Ok(summary) => {
                eprintln!("{}", progress::summary(&summary));
                if summary.stopped {
                    EXIT_INTERRUPTED
                } else {
                    0
                }
            }
            // `eddy run x.sql | head`: the reader left; that is not a failure (as ripgrep).
            Err(e) if is_broken_pipe(&e) => 0,
            Err(e) => {
                eprintln!("Job failed: {e}");
                EXIT_FAILURE
            }
        }
    })
}

/// Whether an error comes from writing to a closed pipe.
fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::BrokenPipe {
                return true;
            }
        }
        cur = err.source();
    }
    false
}
