//! What the examples' end-to-end tests share: `eddy serve FILE` on free ports, queried with
//! psql and over HTTP, the example files with the test's own broker and tables swapped in,
//! `eddy generate`, the machine's PostgreSQL, and the timestamp forms of the answers.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::kafka_util::repo;

/// `examples/<name>/<file>` with each `(from, to)` replaced (every occurrence, and each
/// must occur): the test's broker, topics, paths and databases.
pub fn example_sql(name: &str, file: &str, replace: &[(&str, &str)]) -> String {
    let path = repo().join("examples").join(name).join(file);
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for (from, to) in replace {
        assert!(text.contains(from), "{}: '{from}' is not in the example any more", path.display());
        text = text.replace(from, to);
    }
    text
}

/// `eddy generate <args>` in `dir`; panics with its stderr when it fails.
pub fn generate(dir: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .arg("generate")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run eddy generate");
    assert!(out.status.success(), "eddy generate {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// `eddy serve FILE` in `dir` (the README's second command), on free ports, with its output
/// kept in `dir/serve.out` and `dir/serve.err`.
pub struct Server {
    pub child: Child,
    pub dir: PathBuf,
    pub pg: u16,
    pub http: u16,
}

impl Server {
    /// Write `sql` to `dir/<file>`, serve it, and wait until its statements went through.
    /// The ports are the system's pick (port 0), read back from the line the server prints
    /// once it has bound them, so no other test can take one in between.
    pub fn start(dir: &Path, file: &str, sql: &str) -> Self {
        std::fs::write(dir.join(file), sql).unwrap();
        let out = std::fs::File::create(dir.join("serve.out")).unwrap();
        let err = std::fs::File::create(dir.join("serve.err")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_eddy"))
            .args(["serve", file, "--state-dir", "state"])
            .args(["--pg-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
            .current_dir(dir)
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start eddy serve");
        let mut server = Self { child, dir: dir.to_path_buf(), pg: 0, http: 0 };
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut waited = |what: &str, done: &dyn Fn() -> bool| {
            while !done() {
                assert!(
                    matches!(server.child.try_wait(), Ok(None)) && Instant::now() < deadline,
                    "{what}\n{}",
                    server.output()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        };
        // "eddy serve: Postgres protocol on 127.0.0.1:P, http://127.0.0.1:H/metrics; ..."
        let err = || std::fs::read_to_string(dir.join("serve.err")).unwrap_or_default();
        let announced =
            |e: &str| e.lines().any(|l| l.starts_with("eddy serve: Postgres protocol on") && l.contains("; state in"));
        waited("eddy serve did not say where it listens", &|| announced(&err()));
        // The file is noted in the state directory once every statement went through (at
        // once on a restart: it was noted before).
        waited("the statements were not submitted", &|| dir.join("state/served-files").exists());
        let err = err();
        let port_after = |prefix: &str| -> u16 {
            let at = err.find(prefix).unwrap_or_else(|| panic!("no '{prefix}' in {err}"));
            let digits: String = err[at + prefix.len()..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse().unwrap_or_else(|_| panic!("no port after '{prefix}' in {err}"))
        };
        (server.pg, server.http) = (port_after("Postgres protocol on 127.0.0.1:"), port_after("http://127.0.0.1:"));
        server
    }

    /// What the server printed, for failure messages.
    pub fn output(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        format!("--- serve.out\n{}--- serve.err\n{}", read("serve.out"), read("serve.err"))
    }

    /// Poll `f` every 200 ms until it gives a value; panics after `limit` with the server's
    /// output.
    pub fn wait<T>(&self, what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}\n{}", self.output());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// psql's answer to `sql`: rows of `|`-separated values, or the error.
    pub fn try_query(&self, sql: &str) -> Result<String, String> {
        let out = Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.pg.to_string(), "-U", "eddy", "-d", "eddy"])
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("run psql");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).to_string())
        }
    }

    pub fn query(&self, sql: &str) -> String {
        self.try_query(sql).unwrap_or_else(|e| panic!("{sql}: {e}\n{}", self.output()))
    }

    pub fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        self.query(sql).lines().filter(|l| !l.is_empty()).map(|l| l.split('|').map(str::to_string).collect()).collect()
    }

    /// Wait until `sql` answers `expected`, then check that it still does a moment later
    /// (no more rows were on their way).
    pub fn wait_for(&self, sql: &str, expected: &str, limit: Duration) {
        let mut last = String::new();
        let found = Instant::now() + limit;
        while Instant::now() < found {
            last = self.try_query(sql).unwrap_or_else(|e| e);
            if last == expected {
                std::thread::sleep(Duration::from_millis(700));
                let again = self.query(sql);
                assert_eq!(again, expected, "{sql}: changed after reaching the expected answer");
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("{sql}: still\n{last}\nwaiting for\n{expected}\n{}", self.output());
    }

    pub fn http_get(&self, path: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.http)).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    /// The value of the `/metrics` sample whose line starts with `prefix`.
    pub fn metric(&self, prefix: &str) -> Option<f64> {
        let text = self.http_get("/metrics");
        text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    /// Stop the server as Ctrl-C does (SIGTERM: its jobs stop at a checkpoint) and wait for it.
    pub fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "eddy serve ended with {status}\n{}", self.output());
                return;
            }
            assert!(Instant::now() < deadline, "eddy serve did not stop\n{}", self.output());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The machine's PostgreSQL (user postgres, database test).
pub fn postgres(sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql");
    assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

/// A timestamp as the Postgres protocol shows it (`2024-03-01 10:00:05.000000`).
pub fn pg_ts(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap().naive_utc().format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

/// A timestamp as Grafana writes it into `$__timeFilter` (`2024-03-01T10:00:05Z`).
pub fn grafana_ts(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap().naive_utc().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Equal up to floating-point rounding.
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

pub fn num(s: &str) -> f64 {
    s.parse().unwrap_or_else(|_| panic!("not a number: '{s}'"))
}
