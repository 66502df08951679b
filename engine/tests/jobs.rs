//! Jobs run end to end through the engine: planned from SQL, run on tokio, written by real
//! filesystem sinks, read back and checked row by row.

use std::path::Path;

use eddy_engine::Job;
use eddy_sql::planner::{Outcome, Session};

/// Execute `sql` (paths relative to `dir`), run its job, return the sorted lines of every
/// part file under `dir/out`.
fn run(dir: &Path, sql: &str) -> Vec<String> {
    let sql = sql.replace("$DIR", &dir.display().to_string());
    let mut session = Session::new();
    let mut job = Vec::new();
    for s in eddy_sql::parse_sql(&sql).unwrap() {
        if let Outcome::Job(j) = session.execute(&s).unwrap_or_else(|e| panic!("{}", e.render("t.sql", &sql))) {
            job.extend(j)
        }
    }
    let plan = session.plan_job(&job).unwrap();
    let job = Job::new(plan).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let summary = rt.block_on(job.run()).unwrap();
    assert!(!summary.stopped);
    read_lines(&dir.join("out"))
}

fn read_lines(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for f in std::fs::read_dir(dir).unwrap() {
        let p = f.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        assert!(!name.starts_with('.'), "uncommitted file {name}");
        lines.extend(std::fs::read_to_string(&p).unwrap().lines().map(String::from));
    }
    lines.sort();
    lines
}

#[test]
fn union_all_of_two_values_with_parallelism_two() {
    let dir = tempfile::tempdir().unwrap();
    let lines = run(
        dir.path(),
        "SET 'parallelism.default' = '2';
         CREATE TABLE o (a INT, b STRING) WITH ('connector' = 'filesystem', 'path' = '$DIR/out', 'format' = 'csv');
         INSERT INTO o
           SELECT a, b FROM (VALUES (1, 'x'), (2, 'y')) AS t(a, b) WHERE a > 1
           UNION ALL
           SELECT a * 10, UPPER(b) FROM (VALUES (3, 'z')) AS s(a, b);",
    );
    assert_eq!(lines, vec!["2,y", "30,Z"]);
}

#[test]
fn cross_join_unnest_expands_arrays() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("posts.jsonl"),
        "{\"id\": 1, \"text\": \"hello #rust #sql\"}\n{\"id\": 2, \"text\": null}\n{\"id\": 3, \"text\": \"#eddy\"}\n",
    )
    .unwrap();
    let lines = run(
        dir.path(),
        "CREATE TABLE posts (id BIGINT, text STRING) WITH ('connector' = 'filesystem', 'path' = '$DIR/posts.jsonl', 'format' = 'json');
         CREATE TABLE o (id BIGINT, word STRING) WITH ('connector' = 'filesystem', 'path' = '$DIR/out', 'format' = 'csv');
         INSERT INTO o
         SELECT p.id, w.word
         FROM posts AS p CROSS JOIN UNNEST(string_to_array(p.text, ' ')) AS w (word)
         WHERE w.word LIKE '#%';",
    );
    // '#' sorts below ',': Flink's CSV writer (Jackson) quotes such text.
    assert_eq!(lines, vec!["1,\"#rust\"", "1,\"#sql\"", "3,\"#eddy\""]);
}

#[test]
fn statement_set_reads_a_shared_source_once_into_two_sinks() {
    let dir = tempfile::tempdir().unwrap();
    let lines = run(
        dir.path(),
        "CREATE TABLE src (id BIGINT, v INT) WITH ('connector' = 'datagen', 'fields.id.kind' = 'sequence',
           'fields.id.start' = '1', 'fields.id.end' = '100', 'fields.v.min' = '0', 'fields.v.max' = '9');
         CREATE TABLE o (id BIGINT, v INT) WITH ('connector' = 'filesystem', 'path' = '$DIR/out', 'format' = 'csv');
         CREATE TABLE o2 (id BIGINT, v INT) WITH ('connector' = 'filesystem', 'path' = '$DIR/out2', 'format' = 'csv');
         EXECUTE STATEMENT SET BEGIN
           INSERT INTO o SELECT id, v FROM src WHERE id % 10 = 0;
           INSERT INTO o2 SELECT id, v FROM src;
         END;",
    );
    let ids: Vec<i64> = {
        let mut v: Vec<i64> = lines.iter().map(|l| l.split(',').next().unwrap().parse().unwrap()).collect();
        v.sort();
        v
    };
    assert_eq!(ids, vec![10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
    let o2 = read_lines(&dir.path().join("out2"));
    assert_eq!(o2.len(), 100);
    // The random `v` of a row is the same in both sinks only if the source was read once.
    for line in &lines {
        assert!(o2.contains(line), "{line} missing from the second sink");
    }
}
