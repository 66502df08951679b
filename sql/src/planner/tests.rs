//! Planner tests: DDL into the catalog, plans of stateless pipelines, and the errors a user
//! sees for wrong statements (with their place).

use super::{JobStatement, Outcome, Session};
use crate::error::SqlErrorKind;
use crate::explain;
use crate::parser::parse_sql;
use crate::SqlError;

/// Execute every statement; return the jobs' statements, or the first error.
fn exec(session: &mut Session, sql: &str) -> Result<Vec<JobStatement>, SqlError> {
    let mut job = Vec::new();
    for s in parse_sql(sql)? {
        if let Outcome::Job(j) = session.execute(&s)? {
            job.extend(j);
        }
    }
    Ok(job)
}

const EVENTS: &str = "CREATE TABLE events (
  id BIGINT,
  name STRING,
  amount DOUBLE,
  ts TIMESTAMP(3),
  cents AS CAST(amount * 100 AS BIGINT),
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH ('connector' = 'datagen');
";

#[test]
fn explain_shows_source_chain_and_projection() {
    let mut s = Session::new();
    let sql = format!("{EVENTS}CREATE TABLE out1 (id BIGINT, c BIGINT) WITH ('connector' = 'blackhole');\nINSERT INTO out1 SELECT id, cents FROM events WHERE amount > 10;");
    let job = exec(&mut s, &sql).unwrap();
    let plan = s.plan_job(&job).unwrap();
    let text = explain::render(&plan);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("#"), "{text}");
    assert!(lines[0].contains("Sink: out1 (blackhole) fields=[id, c]"), "{text}");
    assert!(text.contains("WatermarkAssigner: rowtime=#3, watermark=[ts - INTERVAL '5' SECOND]"), "{text}");
    assert!(text.contains("CAST(amount * 100 AS BIGINT) AS cents"), "{text}");
    assert!(text.contains("Filter: events.amount > "), "{text}");
    assert!(text.contains("Source: events (datagen) fields=[id, name, amount, ts] unread=[name]"), "{text}");
}

#[test]
fn sources_learn_which_columns_and_fields_are_never_read() {
    let ddl = "CREATE TABLE datagen (
  event_type INT,
  person ROW<id BIGINT, name VARCHAR, dateTime TIMESTAMP(3)>,
  bid ROW<auction BIGINT, price BIGINT, extra VARCHAR, dateTime TIMESTAMP(3)>,
  dateTime AS CASE WHEN event_type = 0 THEN person.dateTime ELSE bid.dateTime END,
  WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark');
CREATE VIEW bid AS SELECT bid.auction, bid.price, bid.extra, dateTime FROM datagen WHERE event_type = 2;
CREATE TABLE out1 (auction BIGINT, price BIGINT) WITH ('connector' = 'blackhole');
";
    let plan = |query: &str| {
        let mut s = Session::new();
        let job = exec(&mut s, &format!("{ddl}{query}")).unwrap();
        explain::render(&s.plan_job(&job).unwrap())
    };
    // Through the view, its filter, the watermark and the computed column.
    let text = plan("INSERT INTO out1 SELECT auction, price FROM bid WHERE price > 10;");
    assert!(text.contains("fields=[event_type, person, bid] unread=[person.id, person.name, bid.extra]"), "{text}");
    // Fields used on both sides of a join (DataFusion extracts them below it).
    let text = plan(
        "INSERT INTO out1 SELECT b1.auction, b2.bid.price FROM bid b1 JOIN datagen b2 ON b1.auction = b2.bid.auction;",
    );
    assert!(text.contains("fields=[event_type, person, bid] unread=[person.id, person.name, bid.extra] "), "{text}");
    // A ROW column passed on whole to an operator the analysis does not look into is read.
    let text = plan(
        "CREATE TABLE out2 (b ROW<auction BIGINT, price BIGINT, extra VARCHAR, dateTime TIMESTAMP(3)>) \
         WITH ('connector' = 'blackhole');\nINSERT INTO out2 SELECT bid FROM datagen;",
    );
    assert!(text.contains("fields=[event_type, person, bid] unread=[person.id, person.name] "), "{text}");
}

#[test]
fn insert_column_count_mismatch_uses_flinks_message() {
    let mut s = Session::new();
    let sql = format!("{EVENTS}CREATE TABLE out1 (id BIGINT, c BIGINT) WITH ('connector' = 'blackhole');\nINSERT INTO out1 SELECT id FROM events;");
    let e = exec(&mut s, &sql).unwrap_err();
    assert!(e.message.contains("Column types of query result and sink for 'out1' do not match"), "{e}");
    assert!(e.message.contains("Different number of columns"), "{e}");
    assert_eq!(e.location.line, 10);
}

#[test]
fn incompatible_insert_type_hints_a_cast() {
    let mut s = Session::new();
    let sql = format!("{EVENTS}CREATE TABLE out1 (id BIGINT, c INT) WITH ('connector' = 'blackhole');\nINSERT INTO out1 SELECT id, name FROM events;");
    let e = exec(&mut s, &sql).unwrap_err();
    assert!(e.message.contains("sink column 'c'"), "{e}");
    assert_eq!(e.hint.as_deref(), Some("CAST the value to INT in the SELECT"));
    // Numbers widen or narrow implicitly, as in Flink.
    let ok = "CREATE TABLE out2 (id INT, c DOUBLE) WITH ('connector' = 'blackhole');\nINSERT INTO out2 SELECT id, cents FROM events;";
    exec(&mut s, ok).unwrap();
}

#[test]
fn watermark_must_be_on_a_timestamp_column() {
    let mut s = Session::new();
    let sql = "CREATE TABLE t (\n  id BIGINT,\n  WATERMARK FOR id AS id - 5\n) WITH ('connector' = 'datagen');";
    let e = exec(&mut s, sql).unwrap_err();
    assert_eq!((e.location.line, e.location.column), (3, 17), "{e}");
    assert!(e.hint.as_deref().unwrap_or("").contains("TIMESTAMP(p) or TIMESTAMP_LTZ(p)"), "{e}");
}

#[test]
fn unknown_table_and_column_are_located() {
    let mut s = Session::new();
    let e = exec(&mut s, "SELECT a\nFROM nope;").unwrap_err();
    assert_eq!(e.kind, SqlErrorKind::Plan);
    assert!(e.message.contains("nope"), "{e}");
    let sql = format!("{EVENTS}SELECT id,\n  nmae\nFROM events;");
    let e = exec(&mut s, &sql).unwrap_err();
    assert_eq!((e.location.line, e.location.column), (10, 3), "{e}");
}

#[test]
fn ctas_views_drop_and_describe() {
    let mut s = Session::new();
    let sql = format!(
        "{EVENTS}CREATE VIEW big AS SELECT id, UPPER(name) AS who FROM events WHERE amount > 100;
CREATE TABLE copy WITH ('connector' = 'blackhole') AS SELECT id, who FROM big;"
    );
    let job = exec(&mut s, &sql).unwrap();
    assert_eq!(job.len(), 1, "CTAS runs an INSERT");
    let copy = s.catalog().table("copy").unwrap();
    assert_eq!(copy.columns.iter().map(|c| c.data_type.to_string()).collect::<Vec<_>>(), vec!["BIGINT", "STRING"]);
    let Outcome::Rows(rows) = s.execute(&parse_sql("DESCRIBE big").unwrap()[0]).unwrap() else { panic!() };
    assert_eq!(rows.rows[1][0..2], ["who".to_string(), "STRING".to_string()]);
    exec(&mut s, "DROP VIEW big; DROP TABLE IF EXISTS nope;").unwrap();
    let e = exec(&mut s, "DROP TABLE nope").unwrap_err();
    assert!(e.hint.as_deref().unwrap_or("").contains("IF EXISTS"));
    assert!(exec(&mut s, "CREATE TABLE copy (a INT) WITH ('connector' = 'blackhole')").is_err());
    exec(&mut s, "CREATE TABLE IF NOT EXISTS copy (a INT) WITH ('connector' = 'blackhole')").unwrap();
}

#[test]
fn stateful_queries_are_rejected_not_mis_planned() {
    let mut s = Session::new();
    exec(&mut s, EVENTS).unwrap();
    for (sql, what) in [
        (
            "SELECT id FROM events WHERE id IN (SELECT id FROM events WHERE id > 3) OR id = 1",
            "IN and EXISTS subqueries",
        ),
        ("SELECT id FROM events ORDER BY id", "ORDER BY on a stream"),
    ] {
        let e = exec(&mut s, sql).unwrap_err();
        assert_eq!(e.kind, SqlErrorKind::Unsupported, "{sql}: {e}");
        assert!(e.message.starts_with(what), "{sql}: {e}");
    }
}

#[test]
fn set_checks_values_and_parallelism_reaches_the_plan() {
    let mut s = Session::new();
    let e = exec(&mut s, "SET 'parallelism.default' = 'lots';").unwrap_err();
    assert!(e.message.contains("parallelism.default"));
    let sql = format!("SET 'parallelism.default' = '3';\n{EVENTS}CREATE TABLE o (id BIGINT) WITH ('connector' = 'blackhole');\nINSERT INTO o SELECT id FROM events;");
    let job = exec(&mut s, &sql).unwrap();
    let plan = s.plan_job(&job).unwrap();
    assert!(plan.nodes.iter().all(|n| n.parallelism == 3));
}
