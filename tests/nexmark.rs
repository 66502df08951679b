//! The Nexmark suite: the Flink SQL versions of Nexmark q0–q22 (tests/nexmark/qN.sql, from the
//! nexmark project, unchanged but for the deviations written at the top of each file) run with
//! the real `eddy` binary on the `nexmark` source, each result checked against an answer
//! computed independently by DuckDB over the same events (tests/nexmark/check.py).
//!
//! How: one `eddy run` dumps the generated events through the Nexmark views (person, auction,
//! bid) into JSON-lines files; every query runs (all jobs at once) on the same generator
//! settings (fixed `base-time`, so the same events with the same timestamps) at parallelism 2,
//! append-only results into a filesystem CSV sink and updating ones into the print sink (a
//! changelog the checker applies). check.py computes each query's answer with DuckDB over the
//! dumped events and compares. The generator's timestamps only grow with the event number and
//! the watermark trails them by 4 s, so no event is late and every window fires when the
//! bounded source ends (a job that reports late rows is a failure).
//!
//! If Eddy rejects ddl_views.sql as written (as it did while it named the column of
//! `bid.auction` `datagen.bid[auction]`, where Flink names it `auction`), the report says so
//! first and every job uses the views with each field aliased to its own name, so that the
//! queries are still checked.
//!
//! It prints `qN: pass (N rows)`, `qN: fail: <reason>` or `qN: unsupported: <Eddy's error>` per
//! query, then `nexmark: X passed, Y failed, Z unsupported`. It fails when a query of
//! [`MUST_PASS`] does not pass; every other query is listed with its reason, never skipped.
//! `EDDY_NEXMARK_QUERY=q5,q7` runs only those queries; `EDDY_NEXMARK_KEEP=1` keeps the work
//! folder (printed) to look at the outputs.
//!
//! DuckDB comes from the first Python that has it: `$EDDY_PYTHON`, the benchmarks' venv
//! (~/.cache/eddy-bench/venv, where .ci/run installs it), `python3`; failing all, the venv is
//! created and DuckDB installed into it with pip.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Queries that pass today: a regression of any of them fails the test. Stateless (q0-q2, q21,
/// q22), regular joins (q3, whose result is empty: see the report; q20), non-windowed
/// aggregation with retractions and COUNT(DISTINCT) .. FILTER (q4, q15-q17), windows (q5: HOP
/// counts re-aggregated per window and window-joined back; q7: TUMBLE joined back to the
/// stream; q8: two TUMBLE aggregations joined; q11: legacy SESSION; q12: a processing-time
/// TUMBLE on a view's PROCTIME()), partitioned files committed by partition time (q10), a
/// lookup join against a file (q13), Top-N and deduplication without a window (q9: after a
/// join, q18: keep last, q19: top 10).
const MUST_PASS: &[&str] = &[
    "q0", "q1", "q2", "q3", "q4", "q5", "q7", "q8", "q9", "q10", "q11", "q12", "q13", "q15", "q16", "q17", "q18",
    "q19", "q20", "q21", "q22",
];

/// Events generated per query (persons, auctions and bids 1:3:46, as Nexmark's default).
const EVENTS: u64 = 50_000;

/// Events per second of event time. The source paces emission to event time, so this also
/// sets how long each job runs: EVENTS / TPS seconds.
const TPS: u64 = 2_500;

/// Event time of the first event: 2024-03-01 23:59:45 UTC, so the events cross midnight (q15–q17
/// group by day, q10 partitions by day and minute).
const BASE_TIME: i64 = 1_709_337_585_000;

/// Jobs run at once: all of them. They mostly wait for the source's pacing; when they share
/// the cores, each source takes more events per batch and keeps up with event time.
const JOBS_AT_ONCE: usize = 24;

/// A job that runs longer is failed.
const JOB_TIMEOUT: Duration = Duration::from_secs(300);

/// Lines of q13's side input (key 0..9999; only even keys have a row).
const SIDE_INPUT_KEYS: u64 = 10_000;

/// How a query ended.
enum Outcome {
    Pass(String),
    Fail(String),
    Unsupported(String),
}

fn main() -> ExitCode {
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/nexmark");
    let only: Option<Vec<String>> =
        std::env::var("EDDY_NEXMARK_QUERY").ok().map(|s| s.split(',').map(|q| q.trim().to_string()).collect());
    let queries: Vec<String> =
        (0..=22).map(|i| format!("q{i}")).filter(|q| only.as_ref().map(|o| o.contains(q)).unwrap_or(true)).collect();

    let python = match duckdb_python() {
        Ok(p) => p,
        Err(e) => {
            println!("nexmark: no Python with DuckDB: {e}");
            return ExitCode::FAILURE;
        }
    };
    let work = match tempfile::Builder::new().prefix("eddy-nexmark-").tempdir() {
        Ok(w) => w,
        Err(e) => {
            println!("nexmark: cannot make a work folder: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    match run_suite(&suite, work.path(), &python, &queries) {
        Ok(outcomes) => {
            let code = report(&queries, &outcomes, started.elapsed());
            if std::env::var_os("EDDY_NEXMARK_KEEP").is_some() {
                println!("work folder kept: {}", work.keep().display());
            }
            code
        }
        Err(e) => {
            println!("nexmark: {e}");
            if std::env::var_os("EDDY_NEXMARK_KEEP").is_some() {
                println!("work folder kept: {}", work.keep().display());
            }
            ExitCode::FAILURE
        }
    }
}

/// Dump the events, run every query, check the results.
fn run_suite(suite: &Path, work: &Path, python: &Path, queries: &[String]) -> Result<HashMap<String, Outcome>, String> {
    let side_input = work.join("side_input.csv");
    let side: String = (0..SIDE_INPUT_KEYS).filter(|k| k % 2 == 0).map(|k| format!("{k},v{k}\n")).collect();
    std::fs::write(&side_input, side).map_err(|e| format!("cannot write the side input: {e}"))?;

    // The events, through the views, as JSON lines (a job like the others, run alongside them).
    // If Eddy rejects the views as the nexmark project wrote them, every job uses them with
    // each field aliased to its own name, and the report says so.
    let dump_dir = work.join("dump");
    std::fs::create_dir_all(&dump_dir).map_err(|e| e.to_string())?;
    let mut prelude = prelude(suite, false)?;
    std::fs::write(dump_dir.join("query.sql"), dump_sql(&prelude, &work.join("data"))).map_err(|e| e.to_string())?;
    if let Err(e) = check_sql(&dump_dir) {
        println!("note: ddl_views.sql as written is rejected ({e});");
        println!("      every query below runs with the views' fields aliased (`bid.auction AS auction`)\n");
        prelude = prelude_aliased(suite)?;
        std::fs::write(dump_dir.join("query.sql"), dump_sql(&prelude, &work.join("data")))
            .map_err(|e| e.to_string())?;
    }

    // Every job at once (see JOBS_AT_ONCE).
    let mut outcomes: HashMap<String, Outcome> = HashMap::new();
    let jobs: Vec<String> = std::iter::once("dump".to_string()).chain(queries.iter().cloned()).rev().collect();
    let pending: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(jobs));
    let finished: Arc<Mutex<Vec<(String, Result<String, Outcome>)>>> = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..JOBS_AT_ONCE)
        .map(|_| {
            let (pending, finished) = (pending.clone(), finished.clone());
            let (suite, work, prelude) = (suite.to_path_buf(), work.to_path_buf(), prelude.clone());
            let (side_input, dump_dir) = (side_input.clone(), dump_dir.clone());
            std::thread::spawn(move || loop {
                let Some(q) = pending.lock().unwrap().pop() else { break };
                let result = if q == "dump" {
                    run_eddy(&dump_dir)
                } else {
                    prepare(&suite, &work, &prelude, &q, &side_input).and_then(|dir| run_eddy(&dir))
                };
                finished.lock().unwrap().push((q, result));
            })
        })
        .collect();
    for w in workers {
        w.join().map_err(|_| "a worker thread panicked".to_string())?;
    }
    let mut results = std::mem::take(&mut *finished.lock().unwrap());
    let dump = results.iter().position(|(q, _)| q == "dump").map(|i| results.remove(i).1);
    match dump {
        Some(Ok(late)) if late.is_empty() => {}
        Some(Ok(late)) => return Err(format!("dumping the events dropped rows: {late}")),
        Some(Err(Outcome::Fail(e) | Outcome::Unsupported(e))) => return Err(format!("dumping the events failed: {e}")),
        _ => return Err("dumping the events gave no outcome".to_string()),
    }
    let mut ran = Vec::new();
    for (q, result) in results {
        match result {
            Ok(late) if !late.is_empty() => {
                outcomes.insert(q, Outcome::Fail(late));
            }
            Ok(_) => ran.push(q),
            Err(o) => {
                outcomes.insert(q, o);
            }
        }
    }
    ran.sort_by_key(|q| query_number(q));

    // The checks, all in one DuckDB session.
    let out = Command::new(python)
        .arg(suite.join("check.py"))
        .arg(work)
        .arg(EVENTS.to_string())
        .args(&ran)
        .output()
        .map_err(|e| format!("cannot run check.py: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout.lines() {
        let mut f = line.splitn(4, '\t');
        let (q, status, rest, note) = (f.next(), f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        match (q, status) {
            (Some("data"), Some("fail")) => return Err(format!("the dumped events are wrong: {rest}")),
            (Some(q), Some("pass")) => {
                let note = if note.is_empty() { String::new() } else { format!("; {note}") };
                outcomes.insert(q.to_string(), Outcome::Pass(format!("{rest} rows{note}")));
            }
            (Some(q), Some("fail")) => {
                outcomes.insert(q.to_string(), Outcome::Fail(rest.to_string()));
            }
            _ => {}
        }
    }
    for q in &ran {
        outcomes.entry(q.clone()).or_insert_with(|| {
            Outcome::Fail(format!("check.py gave no verdict: {}", first_line(&String::from_utf8_lossy(&out.stderr))))
        });
    }
    Ok(outcomes)
}

/// Print one line per query and the totals; fail on a regression of [`MUST_PASS`].
fn report(queries: &[String], outcomes: &HashMap<String, Outcome>, took: Duration) -> ExitCode {
    let (mut passed, mut failed, mut unsupported) = (0, 0, 0);
    let mut regressions = Vec::new();
    for q in queries {
        let line = match outcomes.get(q) {
            Some(Outcome::Pass(detail)) => {
                passed += 1;
                format!("pass ({detail})")
            }
            Some(Outcome::Fail(reason)) => {
                failed += 1;
                format!("fail: {reason}")
            }
            Some(Outcome::Unsupported(error)) => {
                unsupported += 1;
                format!("unsupported: {error}")
            }
            None => {
                failed += 1;
                "fail: no outcome".to_string()
            }
        };
        if MUST_PASS.contains(&q.as_str()) && !matches!(outcomes.get(q), Some(Outcome::Pass(_))) {
            regressions.push(q.clone());
        }
        println!("{q}: {line}");
    }
    println!();
    println!("({EVENTS} events at {TPS}/s of event time, parallelism 2, {:.0}s in all)", took.as_secs_f64());
    println!("nexmark: {passed} passed, {failed} failed, {unsupported} unsupported");
    if regressions.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!("REGRESSION: {} passed before and no longer do", regressions.join(", "));
        ExitCode::FAILURE
    }
}

/// [`prelude`] with each field of the views aliased to its name: `bid.auction AS auction`.
fn prelude_aliased(suite: &Path) -> Result<String, String> {
    prelude(suite, true)
}

/// The generator table and the views, with this suite's settings filled in; `alias`: see
/// [`prelude_aliased`].
fn prelude(suite: &Path, alias: bool) -> Result<String, String> {
    let read = |name: &str| std::fs::read_to_string(suite.join(name)).map_err(|e| format!("{name}: {e}"));
    let ddl = read("ddl_gen.sql")?
        .replace("${TPS}", &TPS.to_string())
        .replace("${EVENTS_NUM}", &EVENTS.to_string())
        .replace("${PERSON_PROPORTION}", "1")
        .replace("${AUCTION_PROPORTION}", "3")
        .replace("${BID_PROPORTION}", "46")
        .replace("${BASE_TIME}", &BASE_TIME.to_string());
    let mut views = read("ddl_views.sql")?.replace("${NEXMARK_TABLE}", "datagen");
    if alias {
        views = views
            .lines()
            .map(|line| {
                let field = line.trim().trim_end_matches(',');
                match field.split_once('.') {
                    Some((row, name)) if ["person", "auction", "bid"].contains(&row) && !field.contains(' ') => {
                        line.replacen(field, &format!("{field} AS {name}"), 1)
                    }
                    _ => line.to_string(),
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
    }
    Ok(format!("SET 'parallelism.default' = '2';\n\n{ddl}\n\n{views}\n\n"))
}

/// A job writing the three views into `data/{person,auction,bid}` as JSON lines.
fn dump_sql(prelude: &str, data: &Path) -> String {
    let sink = |name: &str, cols: &str| {
        format!(
            "CREATE TABLE {name}_out ({cols}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\n",
            data.join(name).display()
        )
    };
    let mut sql = prelude.to_string();
    sql += &sink(
        "person",
        "id BIGINT, name STRING, emailAddress STRING, creditCard STRING, city STRING, state STRING, \
         `dateTime` TIMESTAMP(3), extra STRING",
    );
    sql += &sink(
        "auction",
        "id BIGINT, itemName STRING, description STRING, initialBid BIGINT, reserve BIGINT, \
         `dateTime` TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, category BIGINT, extra STRING",
    );
    sql += &sink(
        "bid",
        "auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING, `dateTime` TIMESTAMP(3), \
         extra STRING",
    );
    // The columns by name, as the queries use them.
    sql += "EXECUTE STATEMENT SET BEGIN\n";
    sql += "INSERT INTO person_out SELECT id, name, emailAddress, creditCard, city, state, `dateTime`, extra \
            FROM person;\n";
    sql += "INSERT INTO auction_out SELECT id, itemName, description, initialBid, reserve, `dateTime`, expires, \
            seller, category, extra FROM auction;\n";
    sql += "INSERT INTO bid_out SELECT auction, bidder, price, channel, url, `dateTime`, extra FROM bid;\n";
    sql += "END;\n";
    sql
}

/// Write `work/qN/query.sql`: the prelude and the query with its paths filled in.
fn prepare(suite: &Path, work: &Path, prelude: &str, q: &str, side_input: &Path) -> Result<PathBuf, Outcome> {
    let dir = work.join(q);
    let text = std::fs::read_to_string(suite.join(format!("{q}.sql")))
        .map_err(|e| Outcome::Fail(format!("cannot read {q}.sql: {e}")))?;
    let query = text
        .replace("${OUTPUT}", &dir.join("output").display().to_string())
        .replace("${SIDE_INPUT}", &side_input.display().to_string());
    std::fs::create_dir_all(&dir).map_err(|e| Outcome::Fail(e.to_string()))?;
    std::fs::write(dir.join("query.sql"), format!("{prelude}{query}")).map_err(|e| Outcome::Fail(e.to_string()))?;
    Ok(dir)
}

/// Run `dir/query.sql`, stdout into `dir/stdout`. Ok: the job ran (with a description of the
/// late rows it dropped, if any); a rejected query is unsupported, any other error a failure.
fn run_eddy(dir: &Path) -> Result<String, Outcome> {
    let stdout = std::fs::File::create(dir.join("stdout")).map_err(|e| Outcome::Fail(e.to_string()))?;
    let stderr = std::fs::File::create(dir.join("stderr")).map_err(|e| Outcome::Fail(e.to_string()))?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(["run", "--quiet", "--state-dir", "state", "query.sql"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|e| Outcome::Fail(format!("cannot start eddy: {e}")))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > JOB_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Outcome::Fail(format!("timed out after {}s", JOB_TIMEOUT.as_secs())));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(Outcome::Fail(e.to_string())),
        }
    };
    let err = std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
    match status.code() {
        Some(0) => {
            // The closing summary names the late rows dropped, if any.
            Ok(err.lines().find(|l| l.contains("late rows dropped")).map(|l| l.trim().to_string()).unwrap_or_default())
        }
        Some(2) => Err(Outcome::Unsupported(locate(dir, first_line(&err)))),
        _ => Err(Outcome::Fail(format!("eddy exited with {status}: {}", locate(dir, first_line(&err))))),
    }
}

/// `eddy check dir/query.sql`: Err with the first line of the error if the SQL is rejected.
fn check_sql(dir: &Path) -> Result<(), String> {
    let out = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(["check", "query.sql"])
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cannot start eddy: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(first_line(&String::from_utf8_lossy(&out.stderr)).to_string())
    }
}

/// Point `query.sql:L:C:` at the line of the query file itself (the prelude comes first).
fn locate(dir: &Path, line: &str) -> String {
    let q = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let Some(rest) = line.strip_prefix("query.sql:") else { return line.to_string() };
    let mut parts = rest.splitn(2, ':');
    let (Some(l), Some(tail)) = (parts.next().and_then(|l| l.parse::<usize>().ok()), parts.next()) else {
        return line.to_string();
    };
    let Some(prelude_lines) = std::fs::read_to_string(dir.join("query.sql"))
        .ok()
        .and_then(|text| text.find("-- Nexmark q").map(|at| text[..at].lines().count()))
    else {
        return line.to_string();
    };
    if l > prelude_lines {
        format!("{q}.sql:{}:{tail}", l - prelude_lines)
    } else {
        format!("ddl (query.sql):{l}:{tail}")
    }
}

/// The first line of an error, without the list of supported options it may end with.
fn first_line(s: &str) -> &str {
    let line = s.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    line.split("; supported: ").next().unwrap_or(line)
}

fn query_number(q: &str) -> u32 {
    q.trim_start_matches('q').parse().unwrap_or(u32::MAX)
}

/// A Python that can `import duckdb` (see the module docs).
fn duckdb_python() -> Result<PathBuf, String> {
    let has_duckdb = |py: &Path| {
        Command::new(py)
            .args(["-c", "import duckdb"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let venv = home.join(".cache/eddy-bench/venv");
    let venv_python = venv.join("bin/python");
    let mut candidates: Vec<PathBuf> = std::env::var_os("EDDY_PYTHON").map(PathBuf::from).into_iter().collect();
    candidates.push(venv_python.clone());
    candidates.push(PathBuf::from("python3"));
    if let Some(p) = candidates.iter().find(|p| has_duckdb(p)) {
        return Ok(p.clone());
    }
    eprintln!("nexmark: installing DuckDB into {} ...", venv.display());
    if !venv_python.exists() {
        let ok = Command::new("python3").arg("-m").arg("venv").arg(&venv).status().is_ok_and(|s| s.success());
        if !ok {
            return Err(format!("cannot create a venv at {}", venv.display()));
        }
    }
    let ok =
        Command::new(&venv_python).args(["-m", "pip", "install", "-q", "duckdb"]).status().is_ok_and(|s| s.success());
    if ok && has_duckdb(&venv_python) {
        Ok(venv_python)
    } else {
        Err(format!("pip could not install duckdb into {}", venv.display()))
    }
}
