//! The Flink oracle harness: runs every case of `../shared/oracle` with the real `eddy`
//! binary and compares its output, canonicalised by the oracle's own `canon.py`, with
//! the output Apache Flink produced (`expected.csv`).
//!
//! It prints `oracle: N passed, M failed` and lists every case that does not pass yet with
//! the reason (cases needing operators of later issues fail until then: they are listed,
//! never skipped). The run fails when a case in [`MUST_PASS`] fails, so a regression of a
//! case that worked cannot land. Set `EDDY_ORACLE_DIR` to run another oracle folder and
//! `EDDY_ORACLE_CASE` to run one case.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// Cases that pass today; each later issue adds its cases here.
const MUST_PASS: &[&str] = &[
    "scalar_functions",
    // Event time (windows, Top-N, dedup, late data).
    "tumble_agg",
    "hop_agg",
    "cumulate_agg",
    "session_agg",
    "window_topn",
    "late_events",
    "dedup_first",
    "legacy_group_window",
    // OVER aggregations.
    "over_lag",
    // Non-windowed GROUP BY (batch mode).
    "group_agg_final",
    // Joins.
    "interval_join",
];

/// A case that runs longer is failed (the inputs are a few thousand rows).
const CASE_TIMEOUT: Duration = Duration::from_secs(120);

fn main() -> ExitCode {
    let oracle = std::env::var_os("EDDY_ORACLE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/oracle"));
    let only = std::env::var("EDDY_ORACLE_CASE").ok();
    let Ok(entries) = std::fs::read_dir(&oracle) else {
        eprintln!("oracle: cannot read {}", oracle.display());
        return ExitCode::FAILURE;
    };
    let mut cases: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("query.sql").is_file())
        .filter(|p| only.as_deref().map(|o| p.file_name().map(|n| n == o).unwrap_or(false)).unwrap_or(true))
        .collect();
    cases.sort();
    let mut passed = Vec::new();
    let mut failed: Vec<(String, String)> = Vec::new();
    for case in &cases {
        let name = case.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let started = Instant::now();
        match run_case(case, &oracle) {
            Ok(()) => {
                println!("PASS {name} ({:.2}s)", started.elapsed().as_secs_f64());
                passed.push(name);
            }
            Err(reason) => {
                println!("FAIL {name} ({:.2}s): {}", started.elapsed().as_secs_f64(), first_line(&reason));
                failed.push((name, reason));
            }
        }
    }
    // The same cases with two tasks per operator: keyed operators run behind a hash exchange
    // and must give the same rows (Flink's output does not depend on parallelism here).
    let mut parallel_failed: Vec<(String, String)> = Vec::new();
    let mut parallel_passed = 0;
    for case in &cases {
        let name = case.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if !passed.contains(&name) || !is_parallelisable(case) {
            continue;
        }
        match run_case_with(case, &oracle, Some(2)) {
            Ok(()) => {
                println!("PASS {name} (parallelism 2)");
                parallel_passed += 1;
            }
            Err(reason) => {
                println!("FAIL {name} (parallelism 2): {}", first_line(&reason));
                parallel_failed.push((name, reason));
            }
        }
    }
    println!();
    println!("oracle: {} passed, {} failed", passed.len(), failed.len());
    println!("oracle with parallelism 2: {parallel_passed} passed, {} failed", parallel_failed.len());
    if !failed.is_empty() {
        println!("not passing yet:");
        for (name, reason) in &failed {
            println!("  - {name}: {}", first_line(reason));
        }
    }
    failed.extend(parallel_failed.into_iter().map(|(n, r)| (n, format!("with parallelism 2: {r}"))));
    let regressions: Vec<&str> = failed.iter().map(|(n, _)| n.as_str()).filter(|n| MUST_PASS.contains(n)).collect();
    if regressions.is_empty() {
        ExitCode::SUCCESS
    } else {
        for (name, reason) in failed.iter().filter(|(n, _)| MUST_PASS.contains(&n.as_str())) {
            println!("\nREGRESSION in {name}:\n{reason}");
        }
        ExitCode::FAILURE
    }
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or("")
}

const PARALLELISM_1: &str = "SET 'parallelism.default' = '1';";

/// A streaming case that sets parallelism 1 can be run again with more.
fn is_parallelisable(case: &Path) -> bool {
    std::fs::read_to_string(case.join("query.sql"))
        .map(|q| q.contains(PARALLELISM_1) && !q.contains("'batch'"))
        .unwrap_or(false)
}

/// Run one case in a scratch folder (query.sql + a link to its input) and compare.
fn run_case(case: &Path, oracle: &Path) -> Result<(), String> {
    run_case_with(case, oracle, None)
}

/// [`run_case`], optionally with `parallelism.default` replaced.
fn run_case_with(case: &Path, oracle: &Path, parallelism: Option<usize>) -> Result<(), String> {
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut query = std::fs::read_to_string(case.join("query.sql")).map_err(|e| e.to_string())?;
    if let Some(p) = parallelism {
        query = query.replace(PARALLELISM_1, &format!("SET 'parallelism.default' = '{p}';"));
    }
    std::fs::write(work.path().join("query.sql"), query).map_err(|e| e.to_string())?;
    let input = case.join("input").canonicalize().map_err(|e| format!("input: {e}"))?;
    std::os::unix::fs::symlink(&input, work.path().join("input")).map_err(|e| e.to_string())?;

    let mut child = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(["run", "--quiet", "query.sql"])
        .current_dir(work.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start eddy: {e}"))?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > CASE_TIMEOUT => {
                let _ = child.kill();
                return Err(format!("timed out after {}s", CASE_TIMEOUT.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("eddy exited with {}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()));
    }
    compare(case, oracle, work.path(), "result", "output", "expected.csv")?;
    if case.join("expected2.csv").is_file() {
        compare(case, oracle, work.path(), "result2", "output2", "expected2.csv")?;
    }
    Ok(())
}

/// Canonicalise `work/<dir>` with canon.py and diff it against the case's expectation.
fn compare(case: &Path, oracle: &Path, work: &Path, table: &str, dir: &str, expected: &str) -> Result<(), String> {
    let out_dir = work.join(dir);
    if !out_dir.is_dir() {
        return Err(format!("the job wrote no '{dir}' directory"));
    }
    let canon = Command::new("python3")
        .arg(oracle.join("canon.py"))
        .arg(work.join("query.sql"))
        .arg(&out_dir)
        .args(["--table", table])
        .output()
        .map_err(|e| format!("cannot run canon.py: {e}"))?;
    if !canon.status.success() {
        return Err(format!("canon.py failed: {}", String::from_utf8_lossy(&canon.stderr).trim()));
    }
    let actual = String::from_utf8_lossy(&canon.stdout).into_owned();
    let want = std::fs::read_to_string(case.join(expected)).map_err(|e| e.to_string())?;
    if actual == want {
        return Ok(());
    }
    let a: Vec<&str> = actual.lines().collect();
    let w: Vec<&str> = want.lines().collect();
    let mut report = format!("{table}: {} rows, expected {}", a.len().saturating_sub(1), w.len().saturating_sub(1));
    let missing: Vec<&&str> = w.iter().filter(|l| !a.contains(l)).take(3).collect();
    let extra: Vec<&&str> = a.iter().filter(|l| !w.contains(l)).take(3).collect();
    for l in missing {
        report.push_str(&format!("\n    expected: {l}"));
    }
    for l in extra {
        report.push_str(&format!("\n    got:      {l}"));
    }
    Err(report)
}
