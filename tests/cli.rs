//! The `eddy` binary as a user meets it: exit codes, error locations, results on stdout.

use std::path::Path;
use std::process::{Command, Output};

fn eddy(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_eddy")).args(args).current_dir(dir).output().expect("run eddy")
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write file");
}

#[test]
fn check_points_at_a_typo_with_line_and_caret() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "typo.sql",
        "CREATE TABLE t (\n  a INT\n) WITH ('connector' = 'datagen', 'number-of-rows' = '3');\n\nSELEC a FROM t;\n",
    );
    let out = eddy(&["check", "typo.sql"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("typo.sql:5:1: syntax error"), "{err}");
    assert!(err.contains("5 | SELEC a FROM t;\n    ^"), "{err}");
    assert!(err.contains("did you mean SELECT?"), "{err}");
}

#[test]
fn a_bad_connector_option_points_at_its_create_table() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "opt.sql",
        "CREATE TABLE src (a INT) WITH ('connector' = 'datagen', 'number-of-rows' = '3');\n\n\
         CREATE TABLE out1 (a INT) WITH (\n  'connector' = 'filesystem', 'path' = 'o', 'format' = 'csv',\n  \
         'sink.rolling-policy.file-sise' = '1mb'\n);\nINSERT INTO out1 SELECT a FROM src;\n",
    );
    for cmd in ["check", "run"] {
        let out = eddy(&[cmd, "opt.sql"], dir.path());
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("opt.sql:3:14: error: table 'out1': unsupported option 'sink.rolling-policy.file-sise'"),
            "{cmd}: {err}"
        );
        assert!(
            err.contains(&format!("3 | CREATE TABLE out1 (a INT) WITH (\n{}^", " ".repeat(4 + 13))),
            "{cmd}: {err}"
        );
    }
}

#[test]
fn unknown_column_is_located() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "col.sql",
        "CREATE TABLE t (a INT) WITH ('connector' = 'datagen', 'number-of-rows' = '3');\nSELECT\n  a,\n  bb + 1\nFROM t;\n",
    );
    let out = eddy(&["check", "col.sql"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("col.sql:4:3: error:"), "{err}");
    assert!(err.contains("bb"), "{err}");
}

#[test]
fn unsupported_stateful_query_is_rejected_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "agg.sql",
        "CREATE TABLE t (a INT, b INT) WITH ('connector' = 'datagen', 'number-of-rows' = '3');\n\nSELECT a FROM t LIMIT 2;\n",
    );
    let out = eddy(&["run", "agg.sql"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("agg.sql:3:1: not supported: LIMIT on a stream"), "{err}");
    assert!(err.contains("stateful operator"), "{err}");
}

#[test]
fn run_values_into_print_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "v.sql",
        "CREATE TABLE out_print (id INT, name STRING, score DOUBLE) WITH ('connector' = 'print');
CREATE TABLE out_csv (id INT, name STRING) WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');
EXECUTE STATEMENT SET BEGIN
  INSERT INTO out_print VALUES (1, 'a', 1.5), (2, CAST(NULL AS STRING), 2.0);
  INSERT INTO out_csv SELECT id, UPPER(name) FROM (VALUES (3, 'x,y'), (4, 'z')) AS t(id, name) WHERE id > 2;
END;
",
    );
    let out = eddy(&["run", "v.sql"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout, "+I[1, a, 1.5]\n+I[2, null, 2.0]\n");
    let mut lines: Vec<String> = Vec::new();
    for f in std::fs::read_dir(dir.path().join("out")).unwrap() {
        let p = f.unwrap().path();
        assert!(!p.file_name().unwrap().to_string_lossy().starts_with('.'), "in-progress file left: {p:?}");
        lines.extend(std::fs::read_to_string(&p).unwrap().lines().map(String::from));
    }
    lines.sort();
    assert_eq!(lines, vec!["3,\"X,Y\"".to_string(), "4,Z".to_string()]);
}

#[test]
fn show_and_describe_print_tables() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "d.sql",
        "CREATE TABLE t (id BIGINT, ts TIMESTAMP(3), k AS id * 2, PRIMARY KEY (id) NOT ENFORCED, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) WITH ('connector' = 'datagen');
SHOW TABLES;
DESCRIBE t;
",
    );
    let out = eddy(&["run", "d.sql"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("| table name |\n+------------+\n| t          |"), "{stdout}");
    assert!(stdout.contains("| id   | BIGINT                 | FALSE | PRI(id) |"), "{stdout}");
    assert!(stdout.contains("| ts   | TIMESTAMP(3) *ROWTIME* | TRUE  |"), "{stdout}");
    assert!(stdout.contains("AS id * 2"), "{stdout}");
    assert!(stdout.contains("ts - INTERVAL '5' SECOND"), "{stdout}");
}

#[test]
fn bad_connector_option_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "o.sql", "CREATE TABLE t (a INT) WITH ('connector' = 'nope');\nINSERT INTO t VALUES (1);\n");
    let out = eddy(&["run", "o.sql"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn a_closed_stdout_is_not_a_failure() {
    use std::io::Read;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "many.sql",
        "CREATE TABLE g (id BIGINT) WITH ('connector' = 'datagen', 'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '2000000');
CREATE TABLE p (id BIGINT) WITH ('connector' = 'print');
INSERT INTO p SELECT * FROM g;
",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(["run", "--quiet", "many.sql"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    assert_eq!(&first[..7], b"+I[1]\n+");
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

/// One JSON row per file, so each row is its own batch followed by its own watermark.
fn write_rows(dir: &Path, rows: &[&str]) {
    std::fs::create_dir_all(dir.join("in")).unwrap();
    for (i, r) in rows.iter().enumerate() {
        write(&dir.join("in"), &format!("{i:02}.jsonl"), &format!("{r}\n"));
    }
}

const LATE_ROWS: [&str; 6] = [
    r#"{"k":"a","v":1,"ts":"2024-03-01 10:00:01.000"}"#,
    r#"{"k":"a","v":2,"ts":"2024-03-01 10:00:12.000"}"#,
    r#"{"k":"a","v":3,"ts":"2024-03-01 10:00:05.000"}"#,
    r#"{"k":"b","v":4,"ts":"2024-03-01 10:00:06.000"}"#,
    r#"{"k":"a","v":5,"ts":"2024-03-01 10:00:20.000"}"#,
    r#"{"k":"a","v":6,"ts":"2024-03-01 10:00:07.000"}"#,
];

fn window_counts_sql(settings: &str, sink: &str) -> String {
    format!(
        "SET 'pipeline.auto-watermark-interval' = '0 ms';
{settings}
CREATE TABLE t (k STRING, v BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts)
WITH ('connector' = 'filesystem', 'path' = 'in', 'format' = 'json');
{sink}SELECT k, window_start, window_end, COUNT(*), SUM(v)
FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '10' SECOND))
GROUP BY k, window_start, window_end;
"
    )
}

/// Run the window count over `LATE_ROWS` with `settings`: (printed rows, stderr).
fn run_window_counts(settings: &str) -> (Vec<String>, String) {
    let dir = tempfile::tempdir().unwrap();
    write_rows(dir.path(), &LATE_ROWS);
    write(dir.path(), "w.sql", &window_counts_sql(settings, ""));
    let out = eddy(&["run", "w.sql"], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    (String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect(), stderr)
}

#[test]
fn late_rows_are_dropped_and_counted() {
    let (lines, stderr) = run_window_counts("");
    // [10:00:00, 10:00:10) closes at watermark 10:00:12: rows 3, 4 and 6 are late for it.
    assert_eq!(
        lines,
        [
            "+I[a, 2024-03-01T10:00, 2024-03-01T10:00:10, 1, 1]",
            "+I[a, 2024-03-01T10:00:10, 2024-03-01T10:00:20, 1, 2]",
            "+I[a, 2024-03-01T10:00:20, 2024-03-01T10:00:30, 1, 5]",
        ]
    );
    assert!(stderr.contains("3 late rows dropped (#4 WindowAggregate: 3)"), "{stderr}");
}

/// OVER aggregation end to end: each car's speed from its previous position with LAG, rows
/// in time order per car although one arrives out of order; a late one is dropped.
#[test]
fn over_window_lag_computes_speed_per_key() {
    let dir = tempfile::tempdir().unwrap();
    write_rows(
        dir.path(),
        &[
            r#"{"car":"a","x":0,"ts":"2024-03-01 10:00:00"}"#,
            r#"{"car":"b","x":0,"ts":"2024-03-01 10:00:00"}"#,
            r#"{"car":"a","x":40,"ts":"2024-03-01 10:00:04"}"#,
            r#"{"car":"a","x":10,"ts":"2024-03-01 10:00:02.500"}"#,
            r#"{"car":"b","x":100,"ts":"2024-03-01 10:00:10"}"#,
            r#"{"car":"a","x":5,"ts":"2024-03-01 10:00:06"}"#,
            r#"{"car":"a","x":100,"ts":"2024-03-01 10:00:12"}"#,
        ],
    );
    write(
        dir.path(),
        "speed.sql",
        "SET 'pipeline.auto-watermark-interval' = '0 ms';
CREATE TABLE positions (car STRING, x DOUBLE, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
WITH ('connector' = 'filesystem', 'path' = 'in', 'format' = 'json');
SELECT car, ts, LAG(x) OVER w AS prev_x,
  (x - LAG(x) OVER w) / TIMESTAMPDIFF(SECOND, LAG(ts) OVER w, ts) AS speed
FROM positions
WINDOW w AS (PARTITION BY car ORDER BY ts);
",
    );
    let out = eddy(&["run", "speed.sql"], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // a@10:00:02.5 arrives after a@10:00:04 (watermark 10:00:02) and is emitted before it;
    // a@10:00:06 arrives when the watermark is 10:00:08: late.
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "+I[a, 2024-03-01T10:00, null, null]",
            "+I[b, 2024-03-01T10:00, null, null]",
            "+I[a, 2024-03-01T10:00:02.500, 0.0, 5.0]",
            "+I[a, 2024-03-01T10:00:04, 10.0, 30.0]",
            "+I[b, 2024-03-01T10:00:10, 0.0, 10.0]",
            "+I[a, 2024-03-01T10:00:12, 40.0, 7.5]",
        ]
    );
    assert!(stderr.contains("1 late rows dropped"), "{stderr}");
    assert!(stderr.contains("OverAggregate: 1"), "{stderr}");
}

#[test]
fn allowed_lateness_updates_fired_windows() {
    let (lines, stderr) = run_window_counts("SET 'table.exec.emit.allow-lateness' = '5 s';");
    // The first window stays updatable until the watermark reaches 10:00:09.999 + 5 s:
    // rows 3 (update) and 4 (a new key) count; row 6 arrives after watermark 10:00:20.
    assert_eq!(
        lines,
        [
            "+I[a, 2024-03-01T10:00, 2024-03-01T10:00:10, 1, 1]",
            "-U[a, 2024-03-01T10:00, 2024-03-01T10:00:10, 1, 1]",
            "+U[a, 2024-03-01T10:00, 2024-03-01T10:00:10, 2, 4]",
            "+I[b, 2024-03-01T10:00, 2024-03-01T10:00:10, 1, 4]",
            "+I[a, 2024-03-01T10:00:10, 2024-03-01T10:00:20, 1, 2]",
            "+I[a, 2024-03-01T10:00:20, 2024-03-01T10:00:30, 1, 5]",
        ]
    );
    assert!(stderr.contains("1 late rows dropped"), "{stderr}");
}

#[test]
fn updating_results_are_refused_by_an_append_only_sink() {
    let dir = tempfile::tempdir().unwrap();
    write_rows(dir.path(), &LATE_ROWS);
    let sink = "CREATE TABLE o (k STRING, ws TIMESTAMP(3), we TIMESTAMP(3), c BIGINT, s BIGINT)
WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');
INSERT INTO o ";
    write(dir.path(), "w.sql", &window_counts_sql("SET 'table.exec.emit.early-fire.delay' = '1 s';", sink));
    let out = eddy(&["check", "w.sql"], dir.path());
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "Table sink 'o' doesn't support consuming update changes which is produced by node WindowAggregate"
        ),
        "{stderr}"
    );
}

const GROUP_ROWS: [&str; 4] = [r#"{"k":"a","v":1}"#, r#"{"k":"b","v":2}"#, r#"{"k":null,"v":5}"#, r#"{"k":"a","v":3}"#];

/// A GROUP BY without a window prints its changelog: one row per file is one batch each, so
/// every row is a change, as Flink prints it.
#[test]
fn group_by_prints_a_changelog() {
    let dir = tempfile::tempdir().unwrap();
    write_rows(dir.path(), &GROUP_ROWS);
    write(
        dir.path(),
        "g.sql",
        "CREATE TABLE t (k STRING, v BIGINT) WITH ('connector' = 'filesystem', 'path' = 'in', 'format' = 'json');
SELECT k, COUNT(*) AS c, SUM(v) AS s, MAX(v) AS m FROM t GROUP BY k;
",
    );
    let out = eddy(&["run", "g.sql"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().collect::<Vec<_>>(),
        ["+I[a, 1, 1, 1]", "+I[b, 1, 2, 2]", "+I[null, 1, 5, 5]", "-U[a, 1, 1, 1]", "+U[a, 2, 4, 3]"]
    );
    // A GROUP BY over a GROUP BY takes back the rows its input retracts: how many keys
    // have each count.
    write(
        dir.path(),
        "gg.sql",
        "CREATE TABLE t (k STRING, v BIGINT) WITH ('connector' = 'filesystem', 'path' = 'in', 'format' = 'json');
SELECT c, COUNT(*) AS n FROM (SELECT k, COUNT(*) AS c FROM t GROUP BY k) GROUP BY c;
",
    );
    let out = eddy(&["run", "gg.sql"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().collect::<Vec<_>>(),
        ["+I[1, 1]", "-U[1, 1]", "+U[1, 2]", "-U[1, 2]", "+U[1, 3]", "-U[1, 3]", "+U[1, 2]", "+I[2, 1]"]
    );
}

/// An updating GROUP BY goes into sinks that take updates (a result table with a PRIMARY
/// KEY, upsert-kafka), not into append-only ones (Flink's message).
#[test]
fn group_by_results_need_a_sink_that_takes_updates() {
    let dir = tempfile::tempdir().unwrap();
    let source =
        "CREATE TABLE t (k STRING, v BIGINT) WITH ('connector' = 'filesystem', 'path' = 'in', 'format' = 'json');\n";
    let query = "SELECT k, COUNT(*) FROM t GROUP BY k;\n";
    for (sink, refused) in [
        (
            "CREATE TABLE o (k STRING, c BIGINT) WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');",
            true,
        ),
        ("CREATE TABLE o (k STRING, c BIGINT);", true),
        ("CREATE TABLE o (k STRING, c BIGINT, PRIMARY KEY (k) NOT ENFORCED);", false),
        (
            "CREATE TABLE o (k STRING, c BIGINT, PRIMARY KEY (k) NOT ENFORCED) WITH ('connector' = 'upsert-kafka',
  'topic' = 'o', 'properties.bootstrap.servers' = '127.0.0.1:1', 'key.format' = 'json', 'value.format' = 'json');",
            false,
        ),
    ] {
        write(dir.path(), "g.sql", &format!("{source}{sink}\nINSERT INTO o {query}"));
        let out = eddy(&["check", "g.sql"], dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.success(), !refused, "{sink}: {stderr}");
        if refused {
            assert!(
                stderr.contains(
                    "Table sink 'o' doesn't support consuming update changes which is produced by node \
                     GroupAggregate(groupBy=[k], select=[k, count(1)])"
                ),
                "{stderr}"
            );
        }
    }
}

/// A GROUP BY into a result table with a PRIMARY KEY: the table keeps the latest row per key.
/// Its log on disk (Arrow IPC, each batch with its row kinds) replayed by key gives the
/// final counts.
#[test]
fn group_by_upserts_a_result_table_by_its_key() {
    use arrow::array::AsArray;
    use arrow::datatypes::Int8Type;
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let dir = tempfile::tempdir().unwrap();
    write_rows(dir.path(), &GROUP_ROWS);
    write(
        dir.path(),
        "u.sql",
        "CREATE TABLE t (k STRING, v BIGINT) WITH ('connector' = 'filesystem', 'path' = 'in', 'format' = 'json');
CREATE TABLE counts (k STRING, c BIGINT, s BIGINT, PRIMARY KEY (k) NOT ENFORCED);
INSERT INTO counts SELECT k, COUNT(*), SUM(v) FROM t WHERE k IS NOT NULL GROUP BY k;
",
    );
    let out = eddy(&["run", "--quiet", "--state-dir", "state", "u.sql"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let logs = std::fs::read_dir(dir.path().join("state/tables/counts")).unwrap();
    let log = logs.flatten().map(|e| e.path()).find(|p| p.extension().is_some_and(|x| x == "arrow")).unwrap();
    let reader = arrow::ipc::reader::StreamReader::try_new(std::fs::File::open(log).unwrap(), None).unwrap();
    let mut table = std::collections::BTreeMap::new();
    let mut kinds = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let kind = batch.column_by_name("_eddy_kind").unwrap().as_primitive::<Int8Type>().clone();
        let options = FormatOptions::default();
        let f: Vec<_> = (0..3).map(|c| ArrayFormatter::try_new(batch.column(c), &options).unwrap()).collect();
        for r in 0..batch.num_rows() {
            let key = f[0].value(r).to_string();
            kinds.push(kind.value(r));
            match kind.value(r) {
                0 | 2 => table.insert(key, format!("{}|{}", f[1].value(r), f[2].value(r))),
                _ => table.remove(&key),
            };
        }
    }
    assert_eq!(table.into_iter().collect::<Vec<_>>(), [("a".into(), "2|4".into()), ("b".into(), "1|2".into())]);
    assert!(kinds.contains(&1) && kinds.contains(&2), "the table took updates: {kinds:?}");
}

/// Batch mode: the final row per key, append-only, so a filesystem sink takes it; keyed
/// subtasks each write their keys at the end of the input.
#[test]
fn batch_mode_writes_the_final_rows_to_files() {
    let dir = tempfile::tempdir().unwrap();
    write_rows(dir.path(), &GROUP_ROWS);
    write(
        dir.path(),
        "b.sql",
        "SET 'execution.runtime-mode' = 'batch';
SET 'parallelism.default' = '2';
CREATE TABLE t (k STRING, v BIGINT) WITH ('connector' = 'filesystem', 'path' = 'in', 'format' = 'json');
CREATE TABLE o (k STRING, c BIGINT, s BIGINT) WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');
CREATE TABLE total (c BIGINT, s BIGINT) WITH ('connector' = 'filesystem', 'path' = 'total', 'format' = 'csv');
EXECUTE STATEMENT SET BEGIN
  INSERT INTO o SELECT k, COUNT(*), SUM(v) FROM t GROUP BY k;
  INSERT INTO total SELECT COUNT(*), SUM(v) FROM t;
END;
",
    );
    let out = eddy(&["run", "b.sql"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = |sub: &str| file_lines(&dir.path().join(sub));
    assert_eq!(lines("out"), [",1,5", "a,2,4", "b,1,2"]);
    assert_eq!(lines("total"), ["4,11"]);
    // Batch mode reads bounded tables only.
    write(
        dir.path(),
        "u.sql",
        "SET 'execution.runtime-mode' = 'batch';
CREATE TABLE g (k INT) WITH ('connector' = 'datagen');
CREATE TABLE o (k INT, c BIGINT) WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');
INSERT INTO o SELECT k, COUNT(*) FROM g GROUP BY k;
",
    );
    let out = eddy(&["check", "u.sql"], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("Querying an unbounded table 'g' in batch mode is not allowed"), "{stderr}");
}

#[test]
fn window_table_function_rows_without_aggregation() {
    let dir = tempfile::tempdir().unwrap();
    write_rows(dir.path(), &[r#"{"k":"a","v":1,"ts":"2024-03-01 10:00:05.000"}"#]);
    write(
        dir.path(),
        "w.sql",
        "CREATE TABLE t (k STRING, v BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts)
WITH ('connector' = 'filesystem', 'path' = 'in', 'format' = 'json');
SELECT k, window_start, window_end, window_time
FROM TABLE(HOP(DATA => TABLE t, TIMECOL => DESCRIPTOR(ts), SLIDE => INTERVAL '5' SECOND, SIZE => INTERVAL '15' SECOND));
SELECT k, window_start, window_end FROM TABLE(CUMULATE(TABLE t, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '6' SECOND));
",
    );
    let out = eddy(&["run", "w.sql"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "+I[a, 2024-03-01T09:59:55, 2024-03-01T10:00:10, 2024-03-01T10:00:09.999]",
            "+I[a, 2024-03-01T10:00, 2024-03-01T10:00:06]",
            "+I[a, 2024-03-01T10:00, 2024-03-01T10:00:15, 2024-03-01T10:00:14.999]",
            "+I[a, 2024-03-01T10:00:05, 2024-03-01T10:00:20, 2024-03-01T10:00:19.999]",
        ]
    );
}

#[test]
fn processing_time_windows_close_as_the_clock_passes() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "p.sql",
        "CREATE TABLE g (k INT, proc AS PROCTIME())
WITH ('connector' = 'datagen', 'rows-per-second' = '20', 'number-of-rows' = '30', 'fields.k.min' = '1', 'fields.k.max' = '1');
SELECT k, window_start, window_end, COUNT(*) FROM TABLE(TUMBLE(TABLE g, DESCRIPTOR(proc), INTERVAL '1' SECOND))
GROUP BY k, window_start, window_end;
",
    );
    let out = eddy(&["run", "p.sql"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // 30 rows at 20 per second span about 1.5 s of wall-clock time: two or three windows,
    // one second each, holding every row once.
    let counts: Vec<u64> = stdout
        .lines()
        .map(|l| l.trim_start_matches("+I[").trim_end_matches(']').rsplit(", ").next().unwrap().parse().unwrap())
        .collect();
    assert!(counts.len() >= 2, "{stdout}");
    assert_eq!(counts.iter().sum::<u64>(), 30, "{stdout}");
}

/// `eddy.state.memory-limit`: a job whose window state outgrows it fails with a message
/// naming the operator and what to do, instead of being killed by the system.
#[test]
fn state_beyond_the_memory_limit_fails_the_job_naming_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "big.sql",
        "SET 'eddy.state.memory-limit' = '2 mb';\n\
         CREATE TABLE t (id BIGINT, ts AS TO_TIMESTAMP_LTZ(id, 3), WATERMARK FOR ts AS ts)\n\
         WITH ('connector' = 'datagen', 'number-of-rows' = '300000', 'rows-per-second' = '10000000',\n\
         'fields.id.kind' = 'sequence',\n\
         'fields.id.start' = '1', 'fields.id.end' = '300000');\n\
         CREATE TABLE s (id BIGINT, n BIGINT) WITH ('connector' = 'blackhole');\n\
         INSERT INTO s SELECT id, COUNT(*) FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' DAY))\n\
         GROUP BY id, window_start, window_end;\n",
    );
    let out = eddy(&["run", "--quiet", "big.sql"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("outgrew 'eddy.state.memory-limit' (2.1 MB)") && err.contains("WindowAggregate"), "{err}");
    assert!(err.contains("'table.exec.state.ttl'"), "{err}");

    // Under a limit it fits, the same job runs to its end.
    let fits = std::fs::read_to_string(dir.path().join("big.sql")).unwrap().replace("'2 mb'", "'1 gb'");
    write(dir.path(), "fits.sql", &fits);
    let out = eddy(&["run", "--quiet", "fits.sql"], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// An exactly-once Kafka sink publishes at checkpoints: a job without them is refused
/// before anything runs, saying what to set.
#[test]
fn exactly_once_without_checkpoints_is_refused_with_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "job.sql",
        "CREATE TABLE out (n INT) WITH ('connector' = 'kafka', 'topic' = 'out',
  'properties.bootstrap.servers' = '127.0.0.1:1', 'format' = 'json',
  'sink.delivery-guarantee' = 'exactly-once', 'sink.transactional-id-prefix' = 'job');
INSERT INTO out VALUES (1);
",
    );
    let out = eddy(&["run", "--state-dir", "state", "job.sql"], dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("table 'out'") && err.contains("exactly-once"), "{err}");
    assert!(err.contains("execution.checkpointing.interval"), "{err}");
}

/// `'connector' = 'jdbc'` into the machine's PostgreSQL and MariaDB: window counts with
/// allowed lateness (`+I`, then `-U`/`+U` of a fired window) upsert by the PRIMARY KEY into
/// PostgreSQL; the same windows without updates append into MariaDB.
#[test]
fn window_results_reach_postgresql_and_mariadb_through_jdbc() {
    let dir = tempfile::tempdir().unwrap();
    write_rows(dir.path(), &LATE_ROWS);
    let table = format!("eddy_cli_{}", std::process::id());
    let psql = |sql: &str| {
        let out = std::process::Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("psql");
        assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let mariadb = |sql: &str| {
        let out = std::process::Command::new("mariadb")
            .args(["-h", "127.0.0.1", "-u", "root", "-N", "-B", "test", "-e", sql])
            .output()
            .expect("mariadb client");
        assert!(out.status.success(), "mariadb: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    psql(&format!(
        "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (k TEXT, window_start TIMESTAMP(3), \
         window_end TIMESTAMP(3), n BIGINT, total BIGINT, PRIMARY KEY (k, window_start))"
    ));
    mariadb(&format!(
        "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (k VARCHAR(10), window_start DATETIME(3), \
         window_end DATETIME(3), n BIGINT, total BIGINT)"
    ));
    let sink = |name: &str, url: &str, key: &str| {
        format!(
            "CREATE TABLE {name} (k STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3), n BIGINT, total BIGINT{key})
WITH ('connector' = 'jdbc', 'url' = '{url}', 'table-name' = '{table}', 'username' = '{}');
INSERT INTO {name} ",
            if url.contains("postgresql") { "postgres" } else { "root" }
        )
    };
    let pg_sink =
        sink("pg_counts", "jdbc:postgresql://127.0.0.1:5432/test", ", PRIMARY KEY (k, window_start) NOT ENFORCED");
    write(dir.path(), "pg.sql", &window_counts_sql("SET 'table.exec.emit.allow-lateness' = '5 s';", &pg_sink));
    let my_sink = sink("my_counts", "jdbc:mysql://127.0.0.1:3306/test", "");
    write(dir.path(), "my.sql", &window_counts_sql("", &my_sink));
    for file in ["pg.sql", "my.sql"] {
        let out = eddy(&["run", file], dir.path());
        assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let pg =
        psql(&format!("SELECT k, to_char(window_start, 'HH24:MI:SS'), n, total FROM {table} ORDER BY window_start, k"));
    assert_eq!(pg, "a|10:00:00|2|4\nb|10:00:00|1|4\na|10:00:10|1|2\na|10:00:20|1|5", "the updated window upserted");
    let my = mariadb(&format!("SELECT k, TIME(window_start), n, total FROM {table} ORDER BY window_start, k"));
    assert_eq!(my, "a\t10:00:00.000\t1\t1\na\t10:00:10.000\t1\t2\na\t10:00:20.000\t1\t5");
    psql(&format!("DROP TABLE {table}"));
    mariadb(&format!("DROP TABLE {table}"));
}

/// `--log-format json` writes one JSON object per log line (for collectors), at the level
/// RUST_LOG asks for; the default is readable text.
#[test]
fn logs_are_json_lines_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "v.sql",
        "CREATE TABLE out (n INT) WITH ('connector' = 'blackhole');\nINSERT INTO out VALUES (1);\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(["--log-format", "json", "run", "v.sql"])
        .env("RUST_LOG", "info")
        .env_remove("EDDY_LOG")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let logs: Vec<serde_json::Value> =
        stderr.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!logs.is_empty(), "{stderr}");
    assert!(logs.iter().all(|l| l["level"].is_string() && l["fields"]["message"].is_string()), "{stderr}");
}

/// The rows the print sink wrote to stdout (without a `task>` prefix), sorted.
fn printed_rows(out: &std::process::Output) -> Vec<String> {
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_once("> ").map_or(l, |(_, r)| r).to_string())
        .collect();
    lines.sort();
    lines
}

/// Trades (a stream with a watermark) and a company file (a static dimension table).
fn write_trades_and_companies(dir: &Path) {
    std::fs::create_dir_all(dir.join("trades")).unwrap();
    std::fs::create_dir_all(dir.join("companies")).unwrap();
    write(
        &dir.join("trades"),
        "t.jsonl",
        r#"{"ticker":"AAPL","qty":10,"ts":"2024-03-01 10:00:01.000"}
{"ticker":"MSFT","qty":5,"ts":"2024-03-01 10:00:20.000"}
{"ticker":"AAPL","qty":7,"ts":"2024-03-01 10:00:59.000"}
{"ticker":"XOM","qty":3,"ts":"2024-03-01 10:01:02.000"}
{"ticker":"NOPE","qty":1,"ts":"2024-03-01 10:01:03.000"}
{"ticker":"MSFT","qty":2,"ts":"2024-03-01 10:01:30.000"}
"#,
    );
    write(
        &dir.join("companies"),
        "c.csv",
        "AAPL,Apple Inc.,Technology\nMSFT,Microsoft Corp.,Technology\nXOM,Exxon Mobil,Energy\nIDLE,Idle Corp.,Energy\n",
    );
}

const TRADES_AND_COMPANIES: &str = "CREATE TABLE trades (ticker STRING, qty BIGINT, ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
WITH ('connector' = 'filesystem', 'path' = 'trades', 'format' = 'json');
CREATE TABLE companies (ticker STRING, company_name STRING, sector STRING)
WITH ('connector' = 'filesystem', 'path' = 'companies', 'format' = 'csv');
";

/// Every line of every file in `dir`, sorted.
fn file_lines(dir: &Path) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for f in std::fs::read_dir(dir).unwrap() {
        lines.extend(std::fs::read_to_string(f.unwrap().path()).unwrap().lines().map(String::from));
    }
    lines.sort();
    lines
}

/// Runs `sql` after the trades and companies tables at parallelism 2 (as `name` in `dir`):
/// the printed rows, without the task prefix.
fn run_on_trades(dir: &Path, name: &str, sql: &str) -> Vec<String> {
    write(dir, name, &format!("SET 'parallelism.default' = '2';\n{TRADES_AND_COMPANIES}{sql}"));
    let out = eddy(&["run", name], dir);
    assert_eq!(out.status.code(), Some(0), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| l.split_once("> ").map_or(l, |(_, r)| r).to_string()).collect()
}

/// The rows a changelog leaves: `+I`/`+U` add a row, `-U`/`-D` take one back.
fn final_rows(lines: &[String]) -> Vec<String> {
    let mut held: Vec<String> = Vec::new();
    for l in lines {
        let (kind, row) = l.split_at(2);
        match kind {
            "+I" | "+U" => held.push(row.to_string()),
            _ => {
                let at =
                    held.iter().position(|r| r == row).unwrap_or_else(|| panic!("{l} takes back nothing: {lines:?}"));
                held.remove(at);
            }
        }
    }
    held.sort();
    held
}

/// A stream joined to a static dimension table loaded from a file: inner (append-only,
/// and the trade time stays a time attribute, so the enriched stream is windowed per
/// sector), left (the unknown ticker padded; streaming, the padding of a row whose match
/// arrives later is taken back), full in batch mode (final rows only, into files).
#[test]
fn regular_joins_enrich_a_stream_with_a_dimension_file() {
    let dir = tempfile::tempdir().unwrap();
    write_trades_and_companies(dir.path());
    let run = |name: &str, sql: &str| run_on_trades(dir.path(), name, sql);
    let mut inner = run(
        "inner.sql",
        "SELECT t.ticker, c.company_name, t.qty FROM trades t JOIN companies c ON t.ticker = c.ticker;\n",
    );
    inner.sort();
    assert_eq!(
        inner,
        [
            "+I[AAPL, Apple Inc., 10]",
            "+I[AAPL, Apple Inc., 7]",
            "+I[MSFT, Microsoft Corp., 2]",
            "+I[MSFT, Microsoft Corp., 5]",
            "+I[XOM, Exxon Mobil, 3]",
        ]
    );
    let mut windows = run(
        "sectors.sql",
        "CREATE VIEW enriched AS SELECT t.ticker, t.qty, t.ts, c.sector FROM trades t JOIN companies c ON t.ticker = c.ticker;
SELECT window_start, sector, SUM(qty) AS volume
FROM TABLE(TUMBLE(TABLE enriched, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, sector;\n",
    );
    windows.sort();
    assert_eq!(
        windows,
        [
            "+I[2024-03-01T10:00, Technology, 22]",
            "+I[2024-03-01T10:01, Energy, 3]",
            "+I[2024-03-01T10:01, Technology, 2]",
        ]
    );
    let left = run(
        "left.sql",
        "SELECT t.ticker, c.sector, t.qty FROM trades t LEFT JOIN companies c ON t.ticker = c.ticker AND c.sector <> 'Energy';\n",
    );
    assert_eq!(
        final_rows(&left),
        [
            "[AAPL, Technology, 10]",
            "[AAPL, Technology, 7]",
            "[MSFT, Technology, 2]",
            "[MSFT, Technology, 5]",
            "[NOPE, null, 1]",
            "[XOM, null, 3]",
        ]
    );
    write(
        dir.path(),
        "full.sql",
        &format!(
            "SET 'execution.runtime-mode' = 'batch';\nSET 'parallelism.default' = '2';\n{TRADES_AND_COMPANIES}
CREATE TABLE o (ticker STRING, company STRING, qty BIGINT) WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');
INSERT INTO o SELECT COALESCE(t.ticker, c.ticker), c.company_name, t.qty FROM trades t FULL JOIN companies c ON t.ticker = c.ticker;\n"
        ),
    );
    let out = eddy(&["run", "full.sql"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = file_lines(&dir.path().join("out"));
    assert_eq!(
        lines,
        [
            "AAPL,\"Apple Inc.\",10",
            "AAPL,\"Apple Inc.\",7",
            "IDLE,\"Idle Corp.\",",
            "MSFT,\"Microsoft Corp.\",2",
            "MSFT,\"Microsoft Corp.\",5",
            "NOPE,,1",
            "XOM,\"Exxon Mobil\",3",
        ]
    );
}

/// Top-N without a window and keep-last deduplication print updating changelogs whose
/// final rows are the top trades per ticker and the last trade per ticker.
#[test]
fn top_n_and_keep_last_without_a_window() {
    let dir = tempfile::tempdir().unwrap();
    write_trades_and_companies(dir.path());
    let run = |name: &str, sql: &str| run_on_trades(dir.path(), name, sql);
    let top = run(
        "top.sql",
        "SELECT ticker, qty, rn FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY ticker ORDER BY qty DESC) AS rn FROM trades) WHERE rn <= 1;\n",
    );
    assert_eq!(final_rows(&top), ["[AAPL, 10, 1]", "[MSFT, 5, 1]", "[NOPE, 1, 1]", "[XOM, 3, 1]"]);
    let last = run(
        "last.sql",
        "SELECT ticker, qty, ts FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY ticker ORDER BY ts DESC) AS rn FROM trades) WHERE rn = 1;\n",
    );
    assert_eq!(
        final_rows(&last),
        [
            "[AAPL, 7, 2024-03-01T10:00:59]",
            "[MSFT, 2, 2024-03-01T10:01:30]",
            "[NOPE, 1, 2024-03-01T10:01:03]",
            "[XOM, 3, 2024-03-01T10:01:02]",
        ]
    );
}

/// A window join (both sides in 1-minute TUMBLE windows, joined on the window and the
/// ticker): FULL OUTER, yet append-only, each window's result emitted once it closes, so a
/// CSV sink takes it.
#[test]
fn a_window_join_is_append_only_even_when_outer() {
    let dir = tempfile::tempdir().unwrap();
    write_trades_and_companies(dir.path());
    write(
        dir.path(),
        "wj.sql",
        &format!(
            "SET 'parallelism.default' = '2';\n{TRADES_AND_COMPANIES}
CREATE TABLE o (ws TIMESTAMP(3), lt STRING, lq BIGINT, rt STRING, rq BIGINT)
WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');
INSERT INTO o
SELECT COALESCE(L.window_start, R.window_start), L.ticker, L.qty, R.ticker, R.qty
FROM (SELECT * FROM TABLE(TUMBLE(TABLE trades, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) WHERE qty >= 3) L
FULL JOIN (SELECT * FROM TABLE(TUMBLE(TABLE trades, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) WHERE qty <= 5) R
ON L.ticker = R.ticker AND L.window_start = R.window_start AND L.window_end = R.window_end;\n"
        ),
    );
    let out = eddy(&["check", "wj.sql"], dir.path());
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(plan.contains("Join: type=FULL") && plan.contains(", window join"), "{plan}");
    let out = eddy(&["run", "wj.sql"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = file_lines(&dir.path().join("out"));
    assert_eq!(
        lines,
        [
            "\"2024-03-01 10:00:00\",AAPL,10,,",
            "\"2024-03-01 10:00:00\",AAPL,7,,",
            "\"2024-03-01 10:00:00\",MSFT,5,MSFT,5",
            "\"2024-03-01 10:01:00\",,,MSFT,2",
            "\"2024-03-01 10:01:00\",,,NOPE,1",
            "\"2024-03-01 10:01:00\",XOM,3,XOM,3",
        ]
    );
}

/// A temporal join: each trade is priced with the version of its ticker's price that was
/// valid at the trade's time (a versioned table: PRIMARY KEY and WATERMARK), whichever
/// arrives first; the trades without a price are kept by the LEFT join.
#[test]
fn a_temporal_join_reads_the_version_valid_at_each_row() {
    let dir = tempfile::tempdir().unwrap();
    write_trades_and_companies(dir.path());
    std::fs::create_dir_all(dir.path().join("prices")).unwrap();
    write(
        &dir.path().join("prices"),
        "p.csv",
        "AAPL,100,2024-03-01 10:00:00\nMSFT,200,2024-03-01 10:00:00\nAAPL,110,2024-03-01 10:00:30\nMSFT,210,2024-03-01 10:02:00\n",
    );
    write(
        dir.path(),
        "tj.sql",
        &format!(
            "SET 'parallelism.default' = '2';\n{TRADES_AND_COMPANIES}
CREATE TABLE prices (ticker STRING, price BIGINT, ts TIMESTAMP(3),
  PRIMARY KEY (ticker) NOT ENFORCED, WATERMARK FOR ts AS ts)
WITH ('connector' = 'filesystem', 'path' = 'prices', 'format' = 'csv');
SELECT t.ticker, t.qty, p.price, t.qty * p.price AS amount
FROM trades AS t LEFT JOIN prices FOR SYSTEM_TIME AS OF t.ts AS p ON t.ticker = p.ticker;\n"
        ),
    );
    let out = eddy(&["check", "tj.sql"], dir.path());
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(plan.contains("TemporalJoin: type=LEFT, where=[t.ticker = p.ticker], as of left #2"), "{plan}");
    let out = eddy(&["run", "tj.sql"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_once("> ").map_or(l, |(_, r)| r).to_string())
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "+I[AAPL, 10, 100, 1000]",
            "+I[AAPL, 7, 110, 770]",
            "+I[MSFT, 2, 200, 400]",
            "+I[MSFT, 5, 200, 1000]",
            "+I[NOPE, 1, null, null]",
            "+I[XOM, 3, null, null]",
        ]
    );
    // A versioned table needs a primary key (Flink's message).
    write(
        dir.path(),
        "nopk.sql",
        &format!(
            "{TRADES_AND_COMPANIES}
CREATE TABLE prices (ticker STRING, price BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts)
WITH ('connector' = 'filesystem', 'path' = 'prices', 'format' = 'csv');
SELECT t.ticker, p.price FROM trades AS t JOIN prices FOR SYSTEM_TIME AS OF t.ts AS p ON t.ticker = p.ticker;\n"
        ),
    );
    let out = eddy(&["check", "nopk.sql"], dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nopk.sql:9:1") && err.contains("Temporal Table Join requires primary key in versioned table"),
        "{err}"
    );
}

/// A lookup join: each trade (processing time) is enriched with its company's row read from
/// PostgreSQL and from MariaDB through the jdbc lookup cache; the unknown ticker is padded
/// by the LEFT join, and a condition on the looked-up row drops a match. Values of several
/// types (text, numbers, decimals, dates, timestamps) come back as the columns' types.
#[test]
fn lookup_joins_read_postgresql_and_mariadb() {
    let dir = tempfile::tempdir().unwrap();
    write_trades_and_companies(dir.path());
    let table = format!("eddy_lookup_{}", std::process::id());
    let run_db = |program: &str, args: &[&str], sql: &str| {
        let out = std::process::Command::new(program).args(args).arg(sql).output().expect("database client");
        assert!(out.status.success(), "{program}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let psql = |sql: &str| {
        run_db("psql", &["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-v", "ON_ERROR_STOP=1", "-c"], sql)
    };
    let mariadb = |sql: &str| run_db("mariadb", &["-h", "127.0.0.1", "-u", "root", "test", "-e"], sql);
    let rows = "('AAPL', 'Apple Inc.', 'Technology', 15000000000, 1.50, DATE '1976-04-01', TIMESTAMP '2024-03-01 09:00:00'), \
                ('MSFT', 'Microsoft Corp.', 'Technology', 7400000000, NULL, DATE '1975-04-04', TIMESTAMP '2024-03-01 09:30:00'), \
                ('XOM', 'Exxon Mobil', 'Energy', 4000000000, 0.95, DATE '1999-11-30', TIMESTAMP '2024-03-01 08:00:00')";
    psql(&format!(
        "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (ticker TEXT PRIMARY KEY, company_name TEXT, sector TEXT, \
         shares BIGINT, dividend NUMERIC(6,2), founded DATE, updated TIMESTAMP(3)); INSERT INTO {table} VALUES {rows}"
    ));
    mariadb(&format!(
        "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (ticker VARCHAR(10) PRIMARY KEY, company_name TEXT, \
         sector TEXT, shares BIGINT, dividend DECIMAL(6,2), founded DATE, updated DATETIME(3)); INSERT INTO {table} VALUES {rows}"
    ));
    for (url, user) in
        [("jdbc:postgresql://127.0.0.1:5432/test", "postgres"), ("jdbc:mariadb://127.0.0.1:3306/test", "root")]
    {
        write(
            dir.path(),
            "lookup.sql",
            &format!(
                "CREATE TABLE trades (ticker STRING, qty BIGINT, ts TIMESTAMP(3), proc AS PROCTIME())
WITH ('connector' = 'filesystem', 'path' = 'trades', 'format' = 'json');
CREATE TABLE companies (ticker STRING, company_name STRING, sector STRING, shares BIGINT,
  dividend DECIMAL(6, 2), founded DATE, updated TIMESTAMP(3))
WITH ('connector' = 'jdbc', 'url' = '{url}', 'table-name' = '{table}', 'username' = '{user}',
  'lookup.cache' = 'PARTIAL', 'lookup.partial-cache.max-rows' = '100',
  'lookup.partial-cache.expire-after-write' = '1 min');
SELECT t.ticker, t.qty, c.company_name, c.shares * t.qty AS exposure, c.dividend, c.founded, c.updated
FROM trades AS t LEFT JOIN companies FOR SYSTEM_TIME AS OF t.proc AS c
  ON t.ticker = c.ticker AND c.sector <> 'Energy';\n"
            ),
        );
        let out = eddy(&["check", "lookup.sql"], dir.path());
        let plan = String::from_utf8_lossy(&out.stdout);
        assert!(
            plan.contains(
                "LookupJoin: table=[companies] (jdbc), type=LEFT, where=[t.ticker = c.ticker AND companies.sector != Energy], \
                 select=[ticker, company_name, shares, dividend, founded, updated]"
            ),
            "{plan}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = eddy(&["run", "lookup.sql"], dir.path());
        assert_eq!(out.status.code(), Some(0), "{url}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(
            printed_rows(&out),
            [
                "+I[AAPL, 10, Apple Inc., 150000000000, 1.50, 1976-04-01, 2024-03-01T09:00]",
                "+I[AAPL, 7, Apple Inc., 105000000000, 1.50, 1976-04-01, 2024-03-01T09:00]",
                "+I[MSFT, 2, Microsoft Corp., 14800000000, null, 1975-04-04, 2024-03-01T09:30]",
                "+I[MSFT, 5, Microsoft Corp., 37000000000, null, 1975-04-04, 2024-03-01T09:30]",
                "+I[NOPE, 1, null, null, null, null, null]",
                "+I[XOM, 3, null, null, null, null, null]",
            ],
            "{url}"
        );

        // The same table read whole (a bounded scan) as the static side of a regular join;
        // the columns the job does not use are not fetched.
        write(
            dir.path(),
            "scan.sql",
            &format!(
                "CREATE TABLE trades (ticker STRING, qty BIGINT, ts TIMESTAMP(3))
WITH ('connector' = 'filesystem', 'path' = 'trades', 'format' = 'json');
CREATE TABLE companies (ticker STRING, company_name STRING, sector STRING, shares BIGINT,
  dividend DECIMAL(6, 2), founded DATE, updated TIMESTAMP(3))
WITH ('connector' = 'jdbc', 'url' = '{url}', 'table-name' = '{table}', 'username' = '{user}');
SELECT t.ticker, t.qty, c.company_name, c.dividend * t.qty AS paid, c.founded
FROM trades AS t JOIN companies AS c ON t.ticker = c.ticker;\n"
            ),
        );
        let out = eddy(&["check", "scan.sql"], dir.path());
        let plan = String::from_utf8_lossy(&out.stdout);
        assert!(
            plan.contains("Source: companies (jdbc)") && plan.contains("unread=[sector, shares, updated]"),
            "{plan}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = eddy(&["run", "scan.sql"], dir.path());
        assert_eq!(out.status.code(), Some(0), "{url}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(
            printed_rows(&out),
            [
                "+I[AAPL, 10, Apple Inc., 15.00, 1976-04-01]",
                "+I[AAPL, 7, Apple Inc., 10.50, 1976-04-01]",
                "+I[MSFT, 2, Microsoft Corp., null, 1975-04-04]",
                "+I[MSFT, 5, Microsoft Corp., null, 1975-04-04]",
                "+I[XOM, 3, Exxon Mobil, 2.85, 1999-11-30]",
            ],
            "{url}"
        );
    }
    psql(&format!("DROP TABLE {table}"));
    mariadb(&format!("DROP TABLE {table}"));
}

/// `CROSS JOIN UNNEST` keeps the row's time attribute: hashtags counted per window.
#[test]
fn unnested_rows_keep_their_time_attribute() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("posts")).unwrap();
    write(
        &dir.path().join("posts"),
        "p.jsonl",
        r##"{"tags":["#rust","#sql"],"ts":"2024-03-01 10:00:01.000"}
{"tags":["#rust"],"ts":"2024-03-01 10:00:07.000"}
{"tags":["#sql","#rust"],"ts":"2024-03-01 10:00:12.000"}
"##,
    );
    write(
        dir.path(),
        "u.sql",
        "CREATE TABLE posts (tags ARRAY<STRING>, ts TIMESTAMP(3), WATERMARK FOR ts AS ts)
WITH ('connector' = 'filesystem', 'path' = 'posts', 'format' = 'json');
CREATE VIEW mentions AS SELECT tag, ts FROM posts CROSS JOIN UNNEST(tags) AS t (tag);
SELECT window_start, tag, COUNT(*) AS n
FROM TABLE(TUMBLE(TABLE mentions, DESCRIPTOR(ts), INTERVAL '10' SECOND))
GROUP BY window_start, window_end, tag;
",
    );
    let out = eddy(&["run", "u.sql"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "+I[2024-03-01T10:00, #rust, 2]",
            "+I[2024-03-01T10:00, #sql, 1]",
            "+I[2024-03-01T10:00:10, #rust, 1]",
            "+I[2024-03-01T10:00:10, #sql, 1]",
        ]
    );
}

/// `IN` and `NOT EXISTS` subqueries run as semi and anti joins: the trades of technology
/// companies (append-only), and the trades of tickers no company has (updating: a trade
/// read before the companies is taken back when its company arrives).
#[test]
fn in_and_not_exists_subqueries_are_semi_and_anti_joins() {
    let dir = tempfile::tempdir().unwrap();
    write_trades_and_companies(dir.path());
    let run = |name: &str, sql: &str| run_on_trades(dir.path(), name, sql);
    let mut tech = run(
        "semi.sql",
        "SELECT ticker, qty FROM trades WHERE ticker IN (SELECT ticker FROM companies WHERE sector = 'Technology');\n",
    );
    tech.sort();
    assert_eq!(tech, ["+I[AAPL, 10]", "+I[AAPL, 7]", "+I[MSFT, 2]", "+I[MSFT, 5]"]);
    let unknown = run(
        "anti.sql",
        "SELECT t.ticker, t.qty FROM trades t WHERE NOT EXISTS (SELECT 1 FROM companies c WHERE c.ticker = t.ticker);\n",
    );
    assert_eq!(final_rows(&unknown), ["[NOPE, 1]"]);
}

/// A view selecting fields of a ROW column names them by the field, as Flink does, so the
/// Nexmark views (`CREATE VIEW bid AS SELECT bid.auction, ...`) run unchanged.
#[test]
fn selected_row_fields_are_named_by_the_field() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "v.sql",
        "CREATE TABLE events (
  event_type INT,
  bid ROW<auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING, dateTime TIMESTAMP(3), extra STRING>
) WITH ('connector' = 'nexmark', 'events.num' = '100', 'base-time' = '1709287200000');
CREATE VIEW bid AS SELECT bid.auction, bid.price FROM events WHERE event_type = 2;
DESCRIBE bid;
SELECT COUNT(*) AS bids, MIN(auction) AS first_auction FROM bid;
",
    );
    let out = eddy(&["run", "v.sql"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("auction") && stdout.contains("price") && !stdout.contains("bid[auction]"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("+U[92, 1000]") || l.starts_with("+I[92, 1000]")), "{stdout}");
}
