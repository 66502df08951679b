//! Planner tests for changelog sources: upsert tables get a `ChangelogNormalize`, CDC formats
//! are updating as they are, and operators that cannot consume updates say so (Flink's words).

use super::{JobStatement, Outcome, Session};
use crate::error::SqlErrorKind;
use crate::explain;
use crate::parser::parse_sql;
use crate::plan::{Operator, StreamPlan};
use crate::SqlError;

const USERS: &str = "CREATE TABLE users (
  id BIGINT,
  name STRING,
  ts TIMESTAMP(3),
  PRIMARY KEY (id) NOT ENFORCED
) WITH (
  'connector' = 'upsert-kafka',
  'topic' = 'users',
  'properties.bootstrap.servers' = 'localhost:9092',
  'key.format' = 'json',
  'value.format' = 'json'
);
";

const ORDERS: &str = "CREATE TABLE orders (
  id BIGINT,
  amount DOUBLE,
  ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = 'orders',
  'properties.bootstrap.servers' = 'localhost:9092',
  'format' = 'debezium-json'
);
";

const SINKS: &str = "CREATE TABLE out3 (id BIGINT, name STRING, ts TIMESTAMP(3)) WITH ('connector' = 'blackhole');
CREATE TABLE outw (ws TIMESTAMP(3), c BIGINT) WITH ('connector' = 'blackhole');
";

/// Plan `sql` (DDL then one job).
fn plan(sql: &str) -> Result<StreamPlan, SqlError> {
    let mut s = Session::new();
    let mut job: Vec<JobStatement> = Vec::new();
    for st in parse_sql(sql)? {
        if let Outcome::Job(j) = s.execute(&st)? {
            job.extend(j);
        }
    }
    s.plan_job(&job)
}

fn ops(plan: &StreamPlan) -> Vec<(String, bool)> {
    plan.nodes.iter().map(|n| (explain::describe(&n.operator), n.updating)).collect()
}

#[test]
fn upsert_source_is_updating_and_normalized_by_its_key() {
    let p = plan(&format!("{USERS}{SINKS}INSERT INTO out3 SELECT id, name, ts FROM users WHERE name <> 'x';")).unwrap();
    let nodes = ops(&p);
    assert!(nodes[0].0.starts_with("Source: users (upsert-kafka)") && nodes[0].1, "{nodes:?}");
    assert_eq!(nodes[1], ("ChangelogNormalize: key=[id]".to_string(), true));
    let Operator::ChangelogNormalize(n) = &p.nodes[1].operator else { panic!("{nodes:?}") };
    assert_eq!((n.keys.as_slice(), n.key_names.as_slice()), (&[0][..], &["id".to_string()][..]));
    assert_eq!(p.nodes[1].inputs, vec![0]);
    // Filters and projections pass the changelog on, to the sink.
    assert!(p.nodes.iter().skip(1).all(|n| n.updating), "{nodes:?}");
    let text = explain::render(&p);
    assert!(text.contains("ChangelogNormalize: key=[id] [parallelism=1, changelog]"), "{text}");
    assert!(p.nodes[1].operator.input_partitioning().is_some_and(|k| k.len() == 1));
}

#[test]
fn upsert_source_with_watermark_normalizes_after_the_watermark() {
    // The watermark is generated per source partition, before the exchange by key (Flink's
    // watermark push-down into the upsert-kafka source); computed columns come first.
    let users = USERS.replace(
        "  PRIMARY KEY (id) NOT ENFORCED",
        "  name_len AS CHAR_LENGTH(name),\n  WATERMARK FOR ts AS ts,\n  PRIMARY KEY (id) NOT ENFORCED",
    );
    let p = plan(&format!("{users}{SINKS}INSERT INTO out3 SELECT id, name, ts FROM users;")).unwrap();
    let kinds: Vec<String> =
        ops(&p).into_iter().map(|(d, _)| d.split(':').next().unwrap_or_default().to_string()).collect();
    assert_eq!(kinds[..4], ["Source", "Project", "WatermarkAssigner", "ChangelogNormalize"], "{kinds:?}");
    let Operator::ChangelogNormalize(n) = &p.nodes[3].operator else { panic!("{kinds:?}") };
    assert_eq!(n.keys, vec![0]);
    assert_eq!(p.nodes[3].schema.fields().len(), 4, "the full row, computed column included");
}

#[test]
fn cdc_format_is_updating_without_normalize() {
    for format in ["'format' = 'debezium-json'", "'value.format' = 'debezium-json'", "'format' = 'canal-json'"] {
        let orders = ORDERS.replace("'format' = 'debezium-json'", format);
        let sql = format!("{orders}CREATE TABLE o (id BIGINT) WITH ('connector' = 'blackhole');\nINSERT INTO o SELECT id FROM orders;");
        let p = plan(&sql).unwrap();
        assert!(p.nodes[0].updating, "{format}");
        assert!(!p.nodes.iter().any(|n| matches!(n.operator, Operator::ChangelogNormalize(_))), "{format}");
        assert!(p.nodes.last().is_some_and(|n| n.updating), "{format}");
    }
    // A plain json Kafka table is append-only.
    let plain = ORDERS.replace("debezium-json", "json");
    let p = plan(&format!(
        "{plain}CREATE TABLE o (id BIGINT) WITH ('connector' = 'blackhole');\nINSERT INTO o SELECT id FROM orders;"
    ))
    .unwrap();
    assert!(p.nodes.iter().all(|n| !n.updating));
}

#[test]
fn upsert_source_needs_a_primary_key() {
    let users = USERS.replace(",\n  PRIMARY KEY (id) NOT ENFORCED", "");
    let e = plan(&format!("{users}{SINKS}INSERT INTO out3 SELECT id, name, ts FROM users;")).unwrap_err();
    assert_eq!(e.kind, SqlErrorKind::Plan);
    assert!(e.message.starts_with("'upsert-kafka' tables require to define a PRIMARY KEY constraint."), "{e}");
    assert_eq!(e.location.line, 1, "{e}");
}

// (A window Top-N reading a window table function directly, which would be rejected as
// `StreamPhysicalWindowRank`, is not planned yet at all; over a window aggregation, the
// aggregation is the first to reject the updates.)
#[test]
fn window_operators_reject_updating_input_with_flinks_message() {
    let with_wm = USERS.replace("  PRIMARY KEY", "  WATERMARK FOR ts AS ts,\n  PRIMARY KEY");
    let upsert = "ChangelogNormalize(key=[id])";
    let scan = "TableSourceScan(table=[[default_catalog, default_database, orders]], fields=[id, amount, ts])";
    for (ddl, query, consumer, producer) in [
        (
            with_wm.as_str(),
            "INSERT INTO outw SELECT window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE users, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY window_start, window_end",
            "StreamPhysicalWindowAggregate",
            upsert,
        ),
        (
            ORDERS,
            "INSERT INTO outw SELECT window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY window_start, window_end",
            "StreamPhysicalWindowAggregate",
            scan,
        ),
        (
            ORDERS,
            "INSERT INTO outw SELECT TUMBLE_START(ts, INTERVAL '1' MINUTE), COUNT(*) FROM orders GROUP BY TUMBLE(ts, INTERVAL '1' MINUTE)",
            "StreamPhysicalWindowAggregate",
            scan,
        ),
        (
            with_wm.as_str(),
            "INSERT INTO outw SELECT window_start, id FROM TABLE(TUMBLE(TABLE users, DESCRIPTOR(ts), INTERVAL '1' MINUTE))",
            "StreamPhysicalWindowTableFunction",
            upsert,
        ),
        (
            ORDERS,
            "INSERT INTO outw SELECT ts, id FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY id ORDER BY ts ASC) AS rn FROM orders) WHERE rn = 1",
            "StreamPhysicalDeduplicate",
            scan,
        ),
    ] {
        let sql = format!("{ddl}{SINKS}\n{query};");
        let insert_line = sql.lines().count() as u64;
        let e = plan(&sql).unwrap_err();
        assert_eq!(e.kind, SqlErrorKind::Plan, "{query}: {e}");
        assert_eq!(
            e.message,
            format!("{consumer} doesn't support consuming update and delete changes which is produced by node {producer}"),
            "{query}"
        );
        assert_eq!(e.location.line, insert_line, "{query}: {e}");
    }
}
