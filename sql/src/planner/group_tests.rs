//! Planner tests for non-windowed GROUP BY: the group aggregation node, its keys and
//! exchange, its updating output (and its final, append-only output in batch mode), and the
//! aggregates it refuses over an updating input.

use super::{JobStatement, Outcome, Session};
use crate::error::SqlErrorKind;
use crate::explain;
use crate::parser::parse_sql;
use crate::plan::{GroupEmit, Operator, StreamPlan};
use crate::SqlError;

const BIDS: &str = "CREATE TABLE bids (
  auction BIGINT,
  price BIGINT,
  channel STRING,
  ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = 'in', 'format' = 'json');
CREATE TABLE users (
  id BIGINT,
  name STRING,
  PRIMARY KEY (id) NOT ENFORCED
) WITH (
  'connector' = 'upsert-kafka',
  'topic' = 'users',
  'properties.bootstrap.servers' = 'localhost:9092',
  'key.format' = 'json',
  'value.format' = 'json'
);
CREATE TABLE out2 (k STRING, c BIGINT) WITH ('connector' = 'blackhole');
";

/// Plan `sql` (DDL and SET, then one job).
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

fn group_aggregates(p: &StreamPlan) -> Vec<usize> {
    (0..p.nodes.len()).filter(|i| matches!(p.nodes[*i].operator, Operator::GroupAggregate(_))).collect()
}

#[test]
fn group_by_is_an_updating_group_aggregate_hashed_by_its_keys() {
    let sql = format!(
        "SET 'parallelism.default' = '4';\n{BIDS}INSERT INTO out2 SELECT channel, COUNT(*) AS c FROM bids GROUP BY channel;"
    );
    let p = plan(&sql).unwrap();
    let text = explain::render(&p);
    assert!(text.contains("GroupAggregate: keys=[bids.channel], aggs=[count(1)] [parallelism=4, changelog]"), "{text}");
    assert!(text.starts_with("#") && text.lines().next().is_some_and(|l| l.ends_with("[parallelism=4, changelog]")));
    let [g] = group_aggregates(&p)[..] else { panic!("{text}") };
    let node = &p.nodes[g];
    assert!(node.updating && !p.batch);
    assert_eq!(
        node.schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>(),
        ["channel", "count(Int64(1))"]
    );
    assert_eq!(node.operator.input_partitioning().map(|k| k.len()), Some(1));
    let Operator::GroupAggregate(spec) = &node.operator else { unreachable!() };
    assert!(!spec.input_updating && spec.emit == GroupEmit::Changelog);
    // Flink's name of the node, as the sink check says it.
    assert_eq!(explain::update_producer(&p, g), "GroupAggregate(groupBy=[channel], select=[channel, count(1)])");
}

#[test]
fn a_global_aggregate_runs_on_one_subtask() {
    let sql = format!(
        "SET 'parallelism.default' = '4';\n{BIDS}CREATE TABLE o1 (c BIGINT, m BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO o1 SELECT COUNT(*), MAX(price) FROM bids;"
    );
    let p = plan(&sql).unwrap();
    let [g] = group_aggregates(&p)[..] else { panic!("{}", explain::render(&p)) };
    assert_eq!(p.nodes[g].parallelism, 1);
    assert_eq!(p.nodes[g].operator.input_partitioning().map(|k| k.len()), Some(0));
}

#[test]
fn over_an_updating_input_rows_are_taken_back() {
    // Over an upsert source (normalized into a changelog), and over another GROUP BY.
    for query in [
        "INSERT INTO out2 SELECT name, COUNT(*) FROM users GROUP BY name",
        "INSERT INTO out2 SELECT CAST(c AS STRING), COUNT(*) FROM (SELECT channel, COUNT(*) AS c FROM bids GROUP BY channel) GROUP BY c",
        "INSERT INTO out2 SELECT name, COUNT(DISTINCT id) FROM users GROUP BY name",
    ] {
        let p = plan(&format!("{BIDS}{query};")).unwrap();
        let text = explain::render(&p);
        let last = *group_aggregates(&p).last().unwrap();
        assert!(p.nodes[last].updating, "{text}");
        let Operator::GroupAggregate(spec) = &p.nodes[last].operator else { unreachable!() };
        assert!(spec.input_updating, "{query}: {text}");
        assert!(text.contains(", retracting input [parallelism=1, changelog]"), "{text}");
    }
    // MIN/MAX, AVG, SUM and DISTINCT take rows back; FIRST_VALUE cannot.
    plan(&format!(
        "{BIDS}CREATE TABLE o3 (k STRING, a BIGINT, b BIGINT, c DOUBLE) WITH ('connector' = 'blackhole');
INSERT INTO o3 SELECT name, MIN(id), MAX(id), AVG(id) FROM users GROUP BY name;"
    ))
    .unwrap();
    let sql = format!("{BIDS}CREATE TABLE o4 (k STRING, a BIGINT) WITH ('connector' = 'blackhole');\nINSERT INTO o4 SELECT name, FIRST_VALUE(id) FROM users GROUP BY name;");
    let e = plan(&sql).unwrap_err();
    assert_eq!(e.kind, SqlErrorKind::Unsupported, "{e}");
    assert!(e.message.starts_with("first_value(users.id) over an updating input is not supported yet"), "{e}");
    assert_eq!(e.location.line, sql.lines().count() as u64, "{e}");
}

#[test]
fn in_batch_mode_the_final_rows_are_append_only() {
    let sql = format!(
        "SET 'execution.runtime-mode' = 'batch';\n{BIDS}CREATE TABLE f (k STRING, c BIGINT) WITH ('connector' = 'filesystem', 'path' = 'o', 'format' = 'csv');
INSERT INTO f SELECT channel, COUNT(*) FROM bids GROUP BY channel;"
    );
    let p = plan(&sql).unwrap();
    assert!(p.batch);
    let text = explain::render(&p);
    assert!(
        text.contains("GroupAggregate: keys=[bids.channel], aggs=[count(1)], emit=final [parallelism=1, append]"),
        "{text}"
    );
    assert!(p.nodes.iter().all(|n| !n.updating), "{text}");
}

#[test]
fn select_distinct_is_a_group_aggregate_without_aggregates() {
    let p = plan(&format!("{BIDS}CREATE TABLE o5 (k STRING) WITH ('connector' = 'blackhole');\nINSERT INTO o5 SELECT DISTINCT channel FROM bids;")).unwrap();
    let [g] = group_aggregates(&p)[..] else { panic!("{}", explain::render(&p)) };
    let Operator::GroupAggregate(spec) = &p.nodes[g].operator else { unreachable!() };
    assert_eq!((spec.keys.len(), spec.aggregates.len()), (1, 0));
    assert!(p.nodes.last().is_some_and(|n| n.updating));
}
