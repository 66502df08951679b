//! Planner tests for joins: the interval joins EXPLAIN shows, the bounds read from each form
//! of the condition, and the joins refused with their place.

use crate::error::SqlErrorKind;
use crate::explain;
use crate::parser::parse_sql;
use crate::plan::{IntervalJoinSpec, JoinKind, Operator, StreamPlan};
use crate::planner::{JobStatement, Outcome, Session};
use crate::SqlError;

const TABLES: &str = "CREATE TABLE orders (
  order_id BIGINT,
  customer STRING,
  amount DOUBLE,
  ts TIMESTAMP(3),
  plain_ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH ('connector' = 'datagen');
CREATE TABLE shipments (
  order_id BIGINT,
  carrier STRING,
  ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH ('connector' = 'datagen');
CREATE TABLE clicks (order_id BIGINT, proc AS PROCTIME()) WITH ('connector' = 'datagen');
";

/// The plan of `query` (a SELECT) after `TABLES`.
fn plan(query: &str) -> Result<StreamPlan, SqlError> {
    let mut s = Session::new();
    let mut job: Vec<JobStatement> = Vec::new();
    for st in parse_sql(&format!("{TABLES}{query};"))? {
        if let Outcome::Job(j) = s.execute(&st)? {
            job.extend(j);
        }
    }
    s.plan_job(&job)
}

fn join_spec(p: &StreamPlan) -> &IntervalJoinSpec {
    p.nodes
        .iter()
        .find_map(|n| match &n.operator {
            Operator::IntervalJoin(j) => Some(j),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no IntervalJoin in\n{}", explain::render(p)))
}

fn bounds(on: &str) -> (i64, i64) {
    let p = plan(&format!("SELECT o.order_id, s.carrier FROM orders o JOIN shipments s ON {on}"))
        .unwrap_or_else(|e| panic!("{on}: {e}"));
    let j = join_spec(&p);
    (j.lower_ms, j.upper_ms)
}

#[test]
fn explain_shows_the_tagged_union_under_the_interval_join() {
    let p = plan(
        "SELECT o.order_id, o.customer, s.carrier FROM orders o JOIN shipments s \
         ON o.order_id = s.order_id AND s.ts BETWEEN o.ts AND o.ts + INTERVAL '10' SECOND AND o.customer <> s.carrier",
    )
    .unwrap();
    let text = explain::render(&p);
    assert!(
        text.contains(
            "IntervalJoin: type=inner, where=[o.order_id = s.order_id], right.time - left.time in [0ms, 10000ms], \
             left=#2, right=#2 [parallelism=1, append]"
        ),
        "{text}"
    );
    assert!(text.contains("Filter: o.customer != s.carrier"), "{text}");
    assert!(text.contains("Union"), "{text}");
    assert!(
        text.contains("Project: o.order_id AS __join_key0, 0 AS __join_side, order_id, customer, ts, NULL AS order_id"),
        "{text}"
    );
    let j = join_spec(&p);
    assert_eq!((j.key_names.len(), j.left_width, j.right_width), (1, 3, 3));
    assert_eq!(j.output_delay_ms(), 10_000);
}

#[test]
fn every_form_of_the_bounds_is_read() {
    let k = "o.order_id = s.order_id AND ";
    assert_eq!(bounds(&format!("{k}s.ts BETWEEN o.ts AND o.ts + INTERVAL '10' SECOND")), (0, 10_000));
    assert_eq!(bounds(&format!("{k}s.ts >= o.ts AND s.ts <= o.ts + INTERVAL '10' SECOND")), (0, 10_000));
    assert_eq!(bounds(&format!("{k}s.ts > o.ts AND s.ts < o.ts + INTERVAL '10' SECOND")), (1, 9_999));
    assert_eq!(
        bounds(&format!("{k}o.ts <= s.ts + INTERVAL '1' MINUTE AND o.ts + INTERVAL '2' SECOND >= s.ts")),
        (-60_000, 2_000)
    );
    assert_eq!(
        bounds(&format!("{k}o.ts BETWEEN s.ts - INTERVAL '1' HOUR AND s.ts")),
        (0, 3_600_000),
        "the sides swapped"
    );
}

#[test]
fn other_joins_are_regular_joins() {
    let regular = |q: &str| {
        let p = plan(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        let node = p
            .nodes
            .iter()
            .find(|n| matches!(n.operator, Operator::Join(_)))
            .unwrap_or_else(|| panic!("no Join in\n{}", explain::render(&p)));
        let Operator::Join(j) = &node.operator else { unreachable!() };
        (j.clone(), node.updating, explain::render(&p))
    };
    // Equalities only: an inner join of append-only inputs is append-only.
    let (j, updating, text) =
        regular("SELECT o.order_id, s.carrier FROM orders o JOIN shipments s ON o.order_id = s.order_id");
    assert_eq!((j.kind, j.key_names.len(), j.condition.is_none(), updating), (JoinKind::Inner, 1, true, false));
    assert!(text.contains("Join: type=INNER, where=[o.order_id = s.order_id]"), "{text}");
    // A one-sided bound, or bounds on columns that are not time attributes: the rest of the
    // condition is evaluated on each pair.
    let (j, _, text) =
        regular("SELECT o.order_id FROM orders o JOIN shipments s ON o.order_id = s.order_id AND s.ts >= o.ts");
    assert!(j.condition.is_some());
    assert!(text.contains("Join: type=INNER, where=[o.order_id = s.order_id AND s.ts >= o.ts]"), "{text}");
    let (j, _, _) = regular(
        "SELECT o.order_id FROM orders o JOIN shipments s ON o.order_id = s.order_id \
         AND s.ts BETWEEN o.plain_ts AND o.plain_ts + INTERVAL '1' SECOND",
    );
    assert_eq!(j.kind, JoinKind::Inner);
    // Outer joins update (a padded row is taken back when its match arrives), bounded or not.
    for (word, kind) in [("LEFT", JoinKind::Left), ("RIGHT", JoinKind::Right), ("FULL OUTER", JoinKind::Full)] {
        let (j, updating, _) = regular(&format!(
            "SELECT o.order_id FROM orders o {word} JOIN shipments s ON o.order_id = s.order_id \
             AND s.ts BETWEEN o.ts AND o.ts + INTERVAL '1' SECOND"
        ));
        assert_eq!((j.kind, updating, j.condition.is_some()), (kind, true, true), "{word}");
    }
    // No equality: one key for all rows.
    let (j, _, _) =
        regular("SELECT o.order_id FROM orders o JOIN shipments s ON s.ts BETWEEN o.ts AND o.ts + INTERVAL '1' SECOND");
    assert!(j.key_names.is_empty());
}

#[test]
fn joins_that_cannot_run_are_refused_with_their_place() {
    let q = "SELECT o.order_id FROM orders o JOIN clicks c ON o.order_id = c.order_id \
             AND c.proc BETWEEN o.ts AND o.ts + INTERVAL '1' SECOND";
    let e = plan(q).expect_err(q);
    assert_eq!(e.kind, SqlErrorKind::Unsupported, "{q}: {e}");
    assert!(e.to_string().contains("processing-time interval joins"), "{q}: {e}");
    assert_eq!(e.location.line, TABLES.lines().count() as u64 + 1, "{q}: {e}");
}

#[test]
fn a_window_aggregates_window_end_bounds_an_interval_join() {
    // Nexmark q7's shape: rows joined to their TUMBLE window's maximum within the window.
    let q = "SELECT o.order_id, o.amount FROM orders o JOIN (
          SELECT MAX(amount) AS top, window_end AS we
          FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '10' SECOND))
          GROUP BY window_start, window_end) m
        ON o.amount = m.top WHERE o.ts BETWEEN m.we - INTERVAL '10' SECOND AND m.we";
    let p = plan(q).unwrap();
    let j = join_spec(&p);
    assert_eq!((j.lower_ms, j.upper_ms), (0, 10_000));
    // With allowed lateness the window aggregation updates: a regular join then.
    let p = plan(&format!("SET 'table.exec.emit.allow-lateness' = '1 min';\n{q}")).unwrap();
    let text = explain::render(&p);
    assert!(!text.contains("IntervalJoin") && text.contains("Join: type=INNER"), "{text}");
    // window_start is behind the rows' times: never an interval join bound.
    let q = q.replace("window_end AS we", "window_start AS we");
    let text = explain::render(&plan(&q).unwrap());
    assert!(!text.contains("IntervalJoin"), "{text}");
}

#[test]
fn a_file_joined_as_of_a_views_proctime_is_a_lookup_join() {
    // Nexmark q13: a side input file without a PRIMARY KEY, as of a PROCTIME() added in a subquery.
    let file = "CREATE TABLE side (key BIGINT, v STRING) WITH ('connector' = 'filesystem', 'path' = '/tmp/side.csv', 'format' = 'csv');\n";
    let q = "SELECT o.order_id, s.v FROM (SELECT *, PROCTIME() AS p FROM orders) o
        JOIN side FOR SYSTEM_TIME AS OF o.p AS s ON MOD(o.order_id, 10) = s.key";
    let text = explain::render(&plan(&format!("{file}{q}")).unwrap());
    assert!(text.contains("LookupJoin: table=[side]"), "{text}");
    // In event time the file would be a versioned table, which needs a PRIMARY KEY.
    let q = "SELECT o.order_id, s.v FROM orders o JOIN side FOR SYSTEM_TIME AS OF o.ts AS s ON o.order_id = s.key";
    let err = plan(&format!("{file}{q}")).unwrap_err();
    assert!(err.to_string().contains("requires primary key"), "{err}");
}
