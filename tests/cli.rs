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
        "CREATE TABLE t (a INT, b INT) WITH ('connector' = 'datagen', 'number-of-rows' = '3');\n\nSELECT a, COUNT(*) FROM t GROUP BY a;\n",
    );
    let out = eddy(&["run", "agg.sql"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("agg.sql:3:1: not supported: GROUP BY aggregation"), "{err}");
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
