//! Planner tests for OVER aggregations: the plans EXPLAIN shows, and the errors for the
//! windows Flink cannot run on a stream.

use crate::explain;
use crate::parser::parse_sql;
use crate::plan::{Operator, OverFrame, OverFunction, StreamPlan};
use crate::planner::{JobStatement, Outcome, Session};
use crate::SqlError;

const READINGS: &str = "CREATE TABLE readings (
  sensor_id INT,
  lat DOUBLE,
  speed DOUBLE,
  ts TIMESTAMP(3),
  plain_ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '2' SECOND
) WITH ('connector' = 'datagen');
CREATE TABLE clicks (url BIGINT, n INT, proc AS PROCTIME()) WITH ('connector' = 'datagen');
";

/// The plan of `query` (a SELECT) after `READINGS` and `extra`.
fn plan(extra: &str, query: &str) -> Result<StreamPlan, SqlError> {
    let mut s = Session::new();
    let mut job: Vec<JobStatement> = Vec::new();
    for st in parse_sql(&format!("{READINGS}{extra}{query};"))? {
        if let Outcome::Job(j) = s.execute(&st)? {
            job.extend(j);
        }
    }
    s.plan_job(&job)
}

fn over_line(text: &str) -> &str {
    text.lines().find(|l| l.contains("OverAggregate")).unwrap_or_else(|| panic!("no OverAggregate in\n{text}"))
}

fn over_spec(p: &StreamPlan) -> &crate::plan::OverAggSpec {
    p.nodes
        .iter()
        .find_map(|n| match &n.operator {
            Operator::OverAggregate(o) => Some(o),
            _ => None,
        })
        .expect("an OverAggregate node")
}

#[test]
fn named_window_with_lag_of_several_columns() {
    let q = "SELECT sensor_id, ts, lat, LAG(lat) OVER w AS prev_lat, LAG(ts) OVER w AS prev_ts,
        lat - LAG(lat) OVER w AS dlat
      FROM readings
      WINDOW w AS (PARTITION BY sensor_id ORDER BY ts)";
    let p = plan("", q).unwrap();
    let text = explain::render(&p);
    let line = over_line(&text);
    assert!(
        line.contains("OverAggregate: partition=[readings.sensor_id], order=[rowtime #2 ASC], RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"),
        "{text}"
    );
    assert!(line.contains("calls=[lag(readings.lat), lag(readings.ts)]"), "{text}");
    let spec = over_spec(&p);
    assert!(!spec.processing_time);
    assert!(matches!(spec.calls[0].function, OverFunction::Lag { offset: 1, .. }));
    // Keyed: parallel behind a hash exchange, append-only.
    let par = plan("SET 'parallelism.default' = '2';\n", q).unwrap();
    assert!(over_line(&explain::render(&par)).contains("[parallelism=2, append]"));
}

#[test]
fn frames_and_functions() {
    for (over, frame) in [
        ("(PARTITION BY sensor_id ORDER BY ts ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)", OverFrame::Rows(2)),
        (
            "(PARTITION BY sensor_id ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)",
            OverFrame::RowsUnbounded,
        ),
        (
            "(PARTITION BY sensor_id ORDER BY ts RANGE BETWEEN INTERVAL '10' SECOND PRECEDING AND CURRENT ROW)",
            OverFrame::Range(10_000),
        ),
        (
            "(PARTITION BY sensor_id ORDER BY ts RANGE BETWEEN INTERVAL '1' HOUR PRECEDING AND CURRENT ROW)",
            OverFrame::Range(3_600_000),
        ),
        ("(ORDER BY ts)", OverFrame::RangeUnbounded),
    ] {
        let q = format!(
            "SELECT sensor_id, SUM(speed) OVER {over}, COUNT(*) OVER {over}, AVG(speed) OVER {over},
               MIN(speed) OVER {over}, MAX(lat) OVER {over}, FIRST_VALUE(lat) OVER {over}, LAST_VALUE(lat) OVER {over}
             FROM readings"
        );
        let p = plan("", &q).unwrap_or_else(|e| panic!("{over}: {e}"));
        let spec = over_spec(&p);
        assert_eq!(spec.frame, frame, "{over}");
        assert_eq!(spec.calls.len(), 7, "{over}");
        let keyed = !spec.partition_keys.is_empty();
        let node = p.nodes.iter().find(|n| matches!(n.operator, Operator::OverAggregate(_))).unwrap();
        assert_eq!(node.parallelism, 1, "{over}");
        assert_eq!(keyed, over.contains("PARTITION"), "{over}");
        assert!(matches!(spec.calls[5].function, OverFunction::FirstValue(_)));
        assert!(matches!(spec.calls[6].function, OverFunction::LastValue(_)));
    }
}

#[test]
fn lag_with_offset_and_default_and_row_number() {
    let q = "SELECT sensor_id, LAG(speed, 2, 0.5) OVER w, ROW_NUMBER() OVER w
      FROM readings WINDOW w AS (PARTITION BY sensor_id ORDER BY ts)";
    let p = plan("", q).unwrap();
    let spec = over_spec(&p);
    let OverFunction::Lag { offset, default, .. } = &spec.calls[0].function else { panic!("{:?}", spec.calls) };
    assert_eq!((*offset, default.to_string()), (2, "0.5".to_string()));
    assert!(matches!(spec.calls[1].function, OverFunction::RowNumber));
}

#[test]
fn processing_time_order() {
    let p = plan("", "SELECT url, SUM(n) OVER (PARTITION BY url ORDER BY proc) FROM clicks").unwrap();
    let text = explain::render(&p);
    assert!(over_line(&text).contains("order=[proctime #2 ASC]"), "{text}");
    assert!(over_spec(&p).processing_time);
}

#[test]
fn order_by_must_be_an_ascending_time_attribute() {
    // Line 3 of the script (after READINGS' 9 lines): the ORDER BY column is named.
    let e =
        plan("", "SELECT sensor_id,\n  SUM(speed) OVER (PARTITION BY sensor_id\n    ORDER BY plain_ts) FROM readings")
            .unwrap_err();
    assert!(e.message.contains("OVER windows' ordering in stream mode must be defined on a time attribute."), "{e}");
    assert_eq!((e.location.line, e.location.column), (12, 14), "{e}");
    assert!(e.hint.as_deref().unwrap_or("").contains("WATERMARK"), "{e:?}");
    let e = plan("", "SELECT SUM(speed) OVER (PARTITION BY sensor_id ORDER BY ts DESC) FROM readings").unwrap_err();
    assert!(e.message.contains("must be ascending"), "{e}");
    let e = plan("", "SELECT SUM(speed) OVER (PARTITION BY sensor_id) FROM readings").unwrap_err();
    assert!(e.message.contains("must be defined on a time attribute"), "{e}");
    let e = plan("", "SELECT SUM(speed) OVER (ORDER BY ts, sensor_id) FROM readings").unwrap_err();
    assert!(e.message.contains("must be defined on a time attribute"), "{e}");
}

#[test]
fn windows_flink_cannot_run_are_refused() {
    for (q, message) in [
        (
            "SELECT SUM(speed) OVER (PARTITION BY sensor_id ORDER BY ts), COUNT(*) OVER (ORDER BY ts) FROM readings",
            "All aggregates must be computed on the same window.",
        ),
        (
            "SELECT SUM(speed) OVER (ORDER BY ts ROWS 2 PRECEDING), COUNT(*) OVER (ORDER BY ts) FROM readings",
            "All aggregates must be computed on the same window.",
        ),
        (
            "SELECT SUM(speed) OVER (ORDER BY ts ROWS BETWEEN 2 PRECEDING AND 1 FOLLOWING) FROM readings",
            "OVER ROWS FOLLOWING windows are not supported yet.",
        ),
        ("SELECT LEAD(speed) OVER (ORDER BY ts) FROM readings", "LEAD Function is not supported in stream mode."),
        ("SELECT RANK() OVER (ORDER BY ts) FROM readings", "RANK in an OVER window is not supported yet"),
        (
            "SELECT LAG(speed, sensor_id) OVER (ORDER BY ts) FROM readings",
            "LAG's offset must be a non-negative integer literal",
        ),
    ] {
        let e = plan("", q).unwrap_err();
        assert!(e.message.contains(message), "{q}: {e}");
    }
}

#[test]
fn a_subquery_has_its_own_window() {
    let q = "SELECT ts, s, LAG(s) OVER (ORDER BY ts) AS prev_s FROM (
        SELECT ts, SUM(speed) OVER (PARTITION BY sensor_id ORDER BY ts) AS s FROM readings)";
    let text = explain::render(&plan("", q).unwrap());
    assert_eq!(text.lines().filter(|l| l.contains("OverAggregate")).count(), 2, "{text}");
    // In one SELECT, the second window is named.
    let e = plan(
        "",
        "SELECT SUM(speed) OVER (PARTITION BY sensor_id ORDER BY ts),\n  COUNT(*) OVER (ORDER BY ts) FROM readings",
    )
    .unwrap_err();
    assert!(e.message.contains("All aggregates must be computed on the same window."), "{e}");
    assert_eq!(e.location.line, 11, "{e}");
}

#[test]
fn an_updating_input_is_refused_with_flinks_message() {
    let users = "CREATE TABLE users (id BIGINT, name STRING, ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts, PRIMARY KEY (id) NOT ENFORCED
) WITH ('connector' = 'upsert-kafka', 'topic' = 'users', 'properties.bootstrap.servers' = 'localhost:9092',
  'key.format' = 'json', 'value.format' = 'json');\n";
    let e = plan(users, "SELECT id, LAG(name) OVER (PARTITION BY id ORDER BY ts) FROM users").unwrap_err();
    assert!(
        e.message.starts_with("StreamPhysicalOverAggregate doesn't support consuming update and delete changes"),
        "{e}"
    );
}
