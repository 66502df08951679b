//! `eddy serve` as a user meets it with psql and `eddy submit`: DDL kept across restarts,
//! jobs that outlive the client and the server, result tables queried live, /health and
//! /metrics.

#[allow(dead_code)]
mod kafka_util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    pg: u16,
    http: u16,
}

impl Server {
    fn start(state: &Path) -> Self {
        Self::start_with(state, &[])
    }

    /// Start on ports the system picks (port 0), read back from the line the server prints
    /// once it has bound them: no port is chosen first and bound later, so no other test
    /// can take one in between. The server's other output is passed on to stderr.
    fn start_with(state: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_eddy"))
            .args(["serve", "--state-dir"])
            .arg(state)
            .args(["--pg-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start eddy serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let announced = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with("eddy serve: Postgres protocol on ") => break line,
                Ok(_) => continue,
                Err(e) => panic!("eddy serve did not say where it listens ({e})"),
            }
        };
        // "eddy serve: Postgres protocol on 127.0.0.1:P, http://127.0.0.1:H/metrics; state in ..."
        let port_after = |prefix: &str| -> u16 {
            let rest = &announced[announced.find(prefix).unwrap_or_else(|| panic!("{announced}")) + prefix.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().unwrap_or_else(|_| panic!("no port after {prefix} in {announced}"))
        };
        let (pg, http) = (port_after("on 127.0.0.1:"), port_after("http://127.0.0.1:"));
        Self { child, pg, http }
    }

    /// Stop with SIGTERM, as a service manager does, and wait.
    fn stop(mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("eddy serve did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn psql(&self, args: &[&str]) -> Output {
        Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.pg.to_string(),
                "-U",
                "eddy",
                "-d",
                "eddy",
                "-X",
                "-v",
                "ON_ERROR_STOP=1",
            ])
            .args(args)
            .output()
            .expect("run psql")
    }

    /// One query's rows, `|`-separated, no header.
    fn query(&self, sql: &str) -> String {
        let out = self.psql(&["-A", "-t", "-c", sql]);
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Wait until `sql` answers `expected`.
    fn wait_for(&self, sql: &str, expected: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.query(sql);
            if got == expected {
                return;
            }
            assert!(Instant::now() < deadline, "{sql}: still {got:?}, waiting for {expected:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn http_get(&self, path: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.http)).unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const PIPELINE: &str = "\
SET 'parallelism.default' = '2';
CREATE TABLE bids (
  id BIGINT,
  bidder AS CAST(id % 4 AS INT),
  ts AS TO_TIMESTAMP_LTZ(id * 1000, 3),
  WATERMARK FOR ts AS ts
) WITH ('connector' = 'datagen', 'number-of-rows' = '1000', 'fields.id.kind' = 'sequence',
        'fields.id.start' = '1', 'fields.id.end' = '1000');
-- every bid, as it comes
CREATE TABLE all_bids (id BIGINT, bidder INT);
-- bids per bidder per 100 s window; the latest window per bidder (upserted by key)
CREATE TABLE per_bidder (bidder INT, window_start TIMESTAMP(3), bids BIGINT, PRIMARY KEY (bidder) NOT ENFORCED);
INSERT INTO all_bids SELECT id, bidder FROM bids;
INSERT INTO per_bidder
SELECT bidder, window_start, COUNT(*)
FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '100' SECOND))
GROUP BY bidder, window_start, window_end;
-- a result table and the job that keeps it, in one statement
CREATE MATERIALIZED VIEW big_ids AS SELECT id, bidder FROM bids WHERE id > 990;
-- result tables feed other jobs: an append table's rows, an upsert table's changes
CREATE TABLE late (id BIGINT, bidder INT, PRIMARY KEY (id) NOT ENFORCED);
INSERT INTO late SELECT id, bidder FROM big_ids WHERE id > 995;
CREATE TABLE bidder_copy (bidder INT, bids BIGINT, PRIMARY KEY (bidder) NOT ENFORCED);
INSERT INTO bidder_copy SELECT bidder, bids FROM per_bidder;
";

#[test]
fn psql_file_starts_jobs_whose_tables_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let server = Server::start(&state);
    std::fs::write(dir.path().join("pipeline.sql"), PIPELINE).unwrap();

    // psql -f: each statement in turn; the INSERTs answer with their job ids.
    let out = server.psql(&["-f", dir.path().join("pipeline.sql").to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("CREATE TABLE"), "{stdout}");
    assert_eq!(stdout.matches("job_id").count(), 5, "{stdout}");

    // Every bid arrives; the upsert table holds one row per bidder: its last window.
    server.wait_for("SELECT count(*), sum(id) FROM all_bids", "1000|500500");
    server.wait_for("SELECT bidder, window_start, bids FROM per_bidder ORDER BY bidder", &expected_last_windows());
    // A point lookup by primary key (answered from the key index), with a parameter too.
    assert_eq!(server.query("SELECT bids FROM per_bidder WHERE bidder = 2"), "25");
    assert_eq!(server.query("SELECT bids FROM per_bidder WHERE bidder = 2 AND bids > 100"), "");
    assert_eq!(server.query("SELECT count(*) FROM per_bidder WHERE bidder = 7"), "0");
    // Ad-hoc SQL over result tables: joins, aggregates, time ranges.
    assert_eq!(
        server.query(
            "SELECT a.bidder, count(*) FROM all_bids a JOIN per_bidder p ON a.bidder = p.bidder \
             WHERE a.id > 900 GROUP BY a.bidder ORDER BY a.bidder LIMIT 2"
        ),
        "0|25\n1|25"
    );
    server.wait_for("SELECT count(*), min(id), max(id) FROM big_ids", "10|991|1000");
    server.wait_for("SELECT id, bidder FROM late ORDER BY id", "996|0\n997|1\n998|2\n999|3\n1000|0");
    server.wait_for("SELECT bidder, bids FROM bidder_copy ORDER BY bidder", "0|1\n1|25\n2|25\n3|25");
    let jobs = server.query("SHOW JOBS");
    assert_eq!(jobs.matches("|FINISHED|").count(), 3, "{jobs}");
    assert_eq!(jobs.matches("|RUNNING|").count(), 2, "jobs reading result tables follow them: {jobs}");
    assert!(jobs.contains("insert-into_all_bids|FINISHED|1000|1000|"), "{jobs}");

    // COPY ... TO STDOUT, as psql's \copy sends it, in text and CSV.
    let copied = server.psql(&["-c", "\\copy (SELECT id, bidder FROM late ORDER BY id) to stdout"]);
    assert_eq!(String::from_utf8_lossy(&copied.stdout), "996\t0\n997\t1\n998\t2\n999\t3\n1000\t0\n");
    let csv = server.psql(&[
        "-c",
        "COPY (SELECT bidder, bids FROM bidder_copy ORDER BY bidder) TO STDOUT WITH (FORMAT csv, HEADER)",
    ]);
    assert_eq!(String::from_utf8_lossy(&csv.stdout), "bidder,bids\n0,1\n1,25\n2,25\n3,25\n");

    // psql's catalog queries see the tables and their columns.
    let dt = String::from_utf8_lossy(&server.psql(&["-c", "\\dt"]).stdout).to_string();
    assert!(dt.contains("all_bids") && dt.contains("per_bidder"), "{dt}");

    // Health and metrics.
    assert!(server.http_get("/health").contains("\"UP\""));
    let metrics = server.http_get("/metrics");
    assert!(metrics.contains("eddy_job_rows_out_total{job_id="), "{metrics}");
    assert!(metrics.contains("job_name=\"insert-into_all_bids\"} 1000"), "{metrics}");
    assert_prometheus_text(&metrics);
    for family in ["eddy_job_late_rows_dropped_total{", "eddy_job_bad_records_total{", "eddy_job_state_bytes{"] {
        assert!(metrics.contains(family), "{family} missing: {metrics}");
    }
    // The queries above were timed; psql's connections have closed.
    let count = metrics
        .lines()
        .find_map(|l| l.strip_prefix("eddy_pg_query_duration_seconds_count "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(count.is_some_and(|n| n >= 10), "{metrics}");
    // The server sees the last psql's connection close a moment after psql exits.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut connections = metrics.clone();
    while !connections.lines().any(|l| l == "eddy_pg_connections 0") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        connections = server.http_get("/metrics");
    }
    assert!(connections.lines().any(|l| l == "eddy_pg_connections 0"), "{connections}");
    // Every metric the provisioned Grafana dashboard queries is served.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/grafana/eddy-metrics.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let exprs: Vec<&str> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str())
        .collect();
    assert!(exprs.len() >= 12, "{exprs:?}");
    for expr in exprs {
        for name in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("eddy_")) {
            let family = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
            assert!(metrics.contains(&format!("# TYPE {family} ")), "{name} (in '{expr}') is not served");
        }
    }
    // `eddy top` shows the jobs from the same figures, twice.
    let top = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(["top", "--url", &format!("http://127.0.0.1:{}", server.http), "--iterations", "2", "--interval", "0.2"])
        .output()
        .expect("eddy top");
    let shown = String::from_utf8_lossy(&top.stdout);
    assert!(top.status.success(), "{}", String::from_utf8_lossy(&top.stderr));
    assert_eq!(shown.matches("eddy top  http://127.0.0.1:").count(), 2, "{shown}");
    let row = shown.lines().rev().find(|l| l.contains("insert-into_all_bids")).unwrap_or_default();
    assert!(row.contains("RUNNING") || row.contains("ENDED"), "{shown}");

    // A table dropped and declared again with other columns: after a restart, the rows of
    // the last declaration are there.
    for sql in ["CREATE TABLE scratch (a INT)", "INSERT INTO scratch VALUES (1), (2)"] {
        assert!(server.psql(&["-c", sql]).status.success(), "{sql}");
    }
    server.wait_for("SELECT count(*) FROM scratch", "2");
    for sql in ["DROP TABLE scratch", "CREATE TABLE scratch (b STRING, c INT)", "INSERT INTO scratch VALUES ('x', 3)"] {
        assert!(server.psql(&["-c", sql]).status.success(), "{sql}");
    }
    server.wait_for("SELECT b, c FROM scratch", "x|3");

    // A restart: the catalog and the rows come back.
    server.stop();
    let server = Server::start(&state);
    assert_eq!(server.query("SELECT count(*), sum(id) FROM all_bids"), "1000|500500");
    assert_eq!(
        server.query("SELECT bidder, window_start, bids FROM per_bidder ORDER BY bidder"),
        expected_last_windows()
    );
    let tables = server.query("SHOW TABLES");
    assert_eq!(tables, "all_bids\nbidder_copy\nbids\nbig_ids\nlate\nper_bidder\nscratch");
    assert_eq!(server.query("SELECT count(*) FROM big_ids"), "10");
    assert_eq!(server.query("SELECT b, c FROM scratch"), "x|3");
    // The following jobs run again; upserting the same rows changes nothing.
    let jobs = server.query("SHOW JOBS");
    assert_eq!(jobs.matches("|RUNNING|").count(), 2, "{jobs}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(server.query("SELECT count(*) FROM late"), "5");
    assert_eq!(server.query("SELECT bidder, bids FROM bidder_copy ORDER BY bidder"), "0|1\n1|25\n2|25\n3|25");
    // Finished jobs are not run again (the rows would double).
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(server.query("SELECT count(*) FROM all_bids"), "1000");
    server.stop();
}

/// Each bidder's last 100 s window: bid `id` happens at second `id` and belongs to bidder
/// `id % 4`; id 1000 (bidder 0) alone opens [1000 s, 1100 s), the others' last window is
/// [900 s, 1000 s) with 25 bids each. (pgwire writes timestamps' six fraction digits even
/// when they are zero, where Postgres leaves them out; clients parse both.)
fn expected_last_windows() -> String {
    "0|1970-01-01 00:16:40.000000|1\n1|1970-01-01 00:15:00.000000|25\n2|1970-01-01 00:15:00.000000|25\n\
     3|1970-01-01 00:15:00.000000|25"
        .to_string()
}

fn submit(dir: &Path, file: &str, pg: u16) -> Output {
    Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(["submit", file, "--url", &format!("postgres://eddy@127.0.0.1:{pg}/eddy")])
        .current_dir(dir)
        .output()
        .expect("run eddy submit")
}

#[test]
fn submitted_jobs_keep_running_across_restarts_until_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let server = Server::start(&state);
    std::fs::write(
        dir.path().join("live.sql"),
        "CREATE TABLE ticks (n BIGINT, ts AS TO_TIMESTAMP_LTZ(n * 1000, 3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)\n\
         WITH ('connector' = 'datagen', 'rows-per-second' = '200',\n\
         'fields.n.kind' = 'sequence', 'fields.n.start' = '1', 'fields.n.end' = '100000000');\n\
         CREATE TABLE seen (n BIGINT);\n\
         INSERT INTO seen SELECT n FROM ticks;\n",
    )
    .unwrap();
    let out = submit(dir.path(), "live.sql", server.pg);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.matches("[INFO] Execute statement succeeded.").count(), 2, "{stdout}");
    let id = stdout.lines().find_map(|l| l.strip_prefix("Job ID: ")).expect("a job id").to_string();

    // The client is gone; the job goes on.
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.query("SELECT count(*) FROM seen").parse::<u64>().unwrap() < 50 {
        assert!(Instant::now() < deadline, "no rows arrive");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(server.query("SHOW JOBS").contains(&format!("{id}|insert-into_seen|RUNNING|")));
    // Its watermark (ticks are stamped n seconds after the epoch), in SHOW JOBS and /metrics.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server.query("SHOW JOBS").contains("||1970-01-01 00:") {
        assert!(Instant::now() < deadline, "no watermark: {}", server.query("SHOW JOBS"));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(server.http_get("/metrics").contains("eddy_job_watermark_lag_seconds{job_id="));

    // Restarted with the server (datagen has no offsets to resume from: it starts again).
    server.stop();
    let server = Server::start(&state);
    let before = server.query("SELECT count(*) FROM seen").parse::<u64>().unwrap();
    assert!(before >= 50, "rows kept: {before}");
    assert!(server.query("SHOW JOBS").contains(&format!("{id}|insert-into_seen|RUNNING|")));
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.query("SELECT count(*) FROM seen").parse::<u64>().unwrap() < before + 50 {
        assert!(Instant::now() < deadline, "the job did not resume");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A table a running job writes cannot be dropped under it.
    let drop = server.psql(&["-c", "DROP TABLE seen"]);
    assert!(
        String::from_utf8_lossy(&drop.stderr).contains(&format!("STOP JOB '{id}' first")),
        "{}",
        String::from_utf8_lossy(&drop.stderr)
    );

    // STOP JOB ends it, for good.
    let out = server.psql(&["-c", &format!("STOP JOB '{id}'")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server.query("SHOW JOBS").contains(&format!("{id}|insert-into_seen|CANCELED|")) {
        assert!(Instant::now() < deadline, "the job did not stop: {}", server.query("SHOW JOBS"));
        std::thread::sleep(Duration::from_millis(100));
    }
    let err = server.psql(&["-c", "STOP JOB 'nope'"]);
    assert!(String::from_utf8_lossy(&err.stderr).contains("no job with id 'nope'"));
    server.stop();
    let server = Server::start(&state);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.query("SHOW JOBS"), "", "a stopped job is not started again");

    // A file table is read to its end for each ad-hoc query; an endless source is refused.
    std::fs::write(dir.path().join("events.jsonl"), "{\"id\": 1, \"name\": \"a\"}\n{\"id\": 5, \"name\": \"b\"}\n")
        .unwrap();
    let ddl = format!(
        "CREATE TABLE events (id BIGINT, name STRING) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json')",
        dir.path().join("events.jsonl").display()
    );
    assert!(server.psql(&["-c", &ddl]).status.success());
    assert_eq!(server.query("SELECT count(*), max(id), min(name) FROM events"), "2|5|a");
    assert!(server.psql(&["-c", "CREATE TABLE forever (n BIGINT) WITH ('connector' = 'datagen')"]).status.success());
    let endless = server.psql(&["-c", "SELECT count(*) FROM forever"]);
    assert!(
        String::from_utf8_lossy(&endless.stderr).contains("never ends"),
        "{}",
        String::from_utf8_lossy(&endless.stderr)
    );

    // SET holds for the connection that sent it, not for others.
    let own = server.psql(&["-A", "-t", "-c", "SET 'parallelism.default' = '3'", "-c", "SET"]);
    assert!(
        String::from_utf8_lossy(&own.stdout).contains("parallelism.default|3"),
        "{}",
        String::from_utf8_lossy(&own.stdout)
    );
    assert!(!server.query("SET").contains("parallelism.default|3"), "another connection sees the default");

    // A wrong statement: the file's line and column, a caret, and nothing after it runs.
    std::fs::write(
        dir.path().join("bad.sql"),
        "CREATE TABLE ok1 (a INT);\n\nINSERT INTO ok1 SELECT b FROM seen;\nCREATE TABLE never (a INT);\n",
    )
    .unwrap();
    let out = submit(dir.path(), "bad.sql", server.pg);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(stderr.contains("bad.sql:3:24"), "{stderr}");
    assert!(stderr.contains("3 | INSERT INTO ok1 SELECT b FROM seen;"), "{stderr}");
    assert_eq!(server.query("SHOW TABLES"), "events\nforever\nok1\nseen\nticks");
    server.stop();
}

#[test]
fn scram_users_and_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let server = Server::start_with(
        &dir.path().join("state"),
        &[
            "--auth",
            "scram",
            "--user",
            "alice:s3cret",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let psql = |password: &str, sslmode: &str| {
        Command::new("psql")
            .arg(format!("host=127.0.0.1 port={} user=alice dbname=eddy sslmode={sslmode}", server.pg))
            .args(["-X", "-A", "-t", "-c", "SELECT 40 + 2"])
            .env("PGPASSWORD", password)
            .output()
            .expect("run psql")
    };
    let ok = psql("s3cret", "require");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "42");
    let plain = psql("s3cret", "disable");
    assert_eq!(String::from_utf8_lossy(&plain.stdout).trim(), "42", "TLS is offered, not required");
    let wrong = psql("guess", "require");
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("authentication failed"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    server.stop();
}

#[test]
fn kafka_jobs_resume_from_committed_offsets_after_a_restart() {
    use kafka_util::{broker, create_topic, produce, unique, Rec};
    let bootstrap = broker();
    let topic = unique("serve-resume");
    create_topic(bootstrap, &topic, 2);
    let records = |from: i64, to: i64| (from..=to).map(|n| Rec::value(&format!("{{\"n\": {n}}}"))).collect::<Vec<_>>();
    produce(bootstrap, &topic, &records(1, 50));

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let server = Server::start(&state);
    let sql = format!(
        "CREATE TABLE src (n BIGINT) WITH ('connector' = 'kafka', 'topic' = '{topic}',\n\
         'properties.bootstrap.servers' = '{bootstrap}', 'properties.group.id' = '{}',\n\
         'scan.startup.mode' = 'earliest-offset', 'format' = 'json');\n\
         CREATE TABLE got (n BIGINT);\n\
         INSERT INTO got SELECT n FROM src;\n",
        unique("serve-resume-group")
    );
    std::fs::write(dir.path().join("resume.sql"), sql).unwrap();
    let out = server.psql(&["-f", dir.path().join("resume.sql").to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    server.wait_for("SELECT count(*), sum(n) FROM got", "50|1275");

    // Records written while the server is down are read after it; none twice.
    server.stop();
    produce(bootstrap, &topic, &records(51, 80));
    let server = Server::start(&state);
    server.wait_for("SELECT count(*), sum(n) FROM got", "80|3240");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(server.query("SELECT count(*), count(DISTINCT n) FROM got"), "80|80");
    // Every record was read: each partition's consumer lag in /metrics is 0.
    let metrics = server.http_get("/metrics");
    let lags: Vec<&str> = metrics.lines().filter(|l| l.starts_with("eddy_kafka_consumer_lag{")).collect();
    assert_eq!(lags.len(), 2, "{metrics}");
    for partition in ["0", "1"] {
        let series = format!("table=\"src\",topic=\"{topic}\",partition=\"{partition}\"}} 0");
        assert!(lags.iter().any(|l| l.ends_with(&series)), "{lags:?}");
    }
    server.stop();
}

/// Exactly-once across a crash of the server (issue 6): a job checkpointing every 300 ms,
/// the server killed with SIGKILL mid-way and started again: the job resumes from its
/// last checkpoint (source position and window state), so every window counts each row
/// once — neither the rows before the checkpoint twice nor those after it never. (The
/// upsert table takes the windows emitted again after the checkpoint as updates of the
/// same rows.)
#[test]
fn a_killed_server_resumes_its_jobs_from_their_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut server = Server::start(&state);
    std::fs::write(
        dir.path().join("windows.sql"),
        "SET 'execution.checkpointing.interval' = '300 ms';\n\
         SET 'parallelism.default' = '2';\n\
         CREATE TABLE ticks (id BIGINT, k AS id % 5, ts AS TO_TIMESTAMP_LTZ(id, 3), WATERMARK FOR ts AS ts)\n\
         WITH ('connector' = 'datagen', 'rows-per-second' = '4000', 'number-of-rows' = '20000',\n\
         'fields.id.kind' = 'sequence', 'fields.id.start' = '0', 'fields.id.end' = '19999');\n\
         CREATE TABLE per_second (k BIGINT, window_start TIMESTAMP(3), n BIGINT, PRIMARY KEY (k, window_start) NOT ENFORCED);\n\
         INSERT INTO per_second SELECT k, window_start, COUNT(*)\n\
         FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' SECOND)) GROUP BY k, window_start, window_end;\n",
    )
    .unwrap();
    let out = submit(dir.path(), "windows.sql", server.pg);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Crash once a checkpoint is complete and some windows are out.
    let deadline = Instant::now() + Duration::from_secs(30);
    let complete = |state: &Path| {
        std::fs::read_dir(state.join("checkpoints"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|job| std::fs::read_dir(job.path()).ok())
            .flat_map(|epochs| epochs.flatten())
            .any(|e| e.path().join("_manifest.json").exists())
    };
    while !complete(&state) || server.query("SELECT count(*) FROM per_second").parse::<u64>().unwrap() < 10 {
        assert!(Instant::now() < deadline, "no checkpoint or no windows yet");
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = server.query("SELECT count(*) FROM per_second").parse::<u64>().unwrap();
    assert!(before < 100, "the job finished before the crash ({before} windows): nothing to test");
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let server = Server::start(&state);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !server.query("SHOW JOBS").contains("|FINISHED|") {
        assert!(Instant::now() < deadline, "the job did not finish: {}", server.query("SHOW JOBS"));
        std::thread::sleep(Duration::from_millis(100));
    }
    // 20 one-second windows x 5 keys, 200 rows each: the windows open at the checkpoint
    // came back with their counts (without them, those windows would count fewer rows).
    assert_eq!(server.query("SELECT count(*), min(n), max(n), sum(n) FROM per_second"), "100|200|200|20000");
    // And the source went on from its position: the restarted job read only the rest.
    let jobs = server.query("SHOW JOBS");
    let rows_in: u64 = jobs
        .lines()
        .find(|l| l.contains("|FINISHED|"))
        .and_then(|l| l.split('|').nth(3))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no rows_in in {jobs}"));
    assert!(rows_in > 0 && rows_in < 20000, "the restarted job read {rows_in} rows: it did not resume");
}

/// Prometheus' text format as a scraper reads it: every sample belongs to the family whose
/// `# TYPE` line came last (a family's samples are not split), and every value is a number.
fn assert_prometheus_text(response: &str) {
    let text = response.split_once("\r\n\r\n").map_or(response, |(_, body)| body);
    let mut family = String::new();
    let mut seen = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            family = rest.split_whitespace().next().unwrap_or_default().to_string();
            assert!(seen.insert(family.clone()), "family {family} appears twice:\n{text}");
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        let base = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        assert!(name == family || base == family, "sample '{line}' is not under its family (last TYPE: {family})");
        let value = line.rsplit(' ').next().unwrap_or_default();
        assert!(value.parse::<f64>().is_ok(), "sample '{line}' has no numeric value");
    }
}
