//! Planner tests for event time: window table functions (all argument forms), legacy group
//! windows, window aggregation, Top-N and deduplication plans, and the errors users see.

use super::{JobStatement, Outcome, Session};
use crate::explain;
use crate::parser::parse_sql;
use crate::SqlError;

const BIDS: &str = "CREATE TABLE bids (
  auction BIGINT,
  bidder BIGINT,
  price BIGINT,
  ts TIMESTAMP(3),
  plain_ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH ('connector' = 'datagen');
CREATE TABLE out1 (a BIGINT, ws TIMESTAMP(3), we TIMESTAMP(3), c BIGINT) WITH ('connector' = 'blackhole');
";

/// EXPLAIN of `INSERT INTO out1 <query>` after `BIDS` (+ `extra` statements).
fn explain(extra: &str, query: &str) -> Result<String, SqlError> {
    let mut s = Session::new();
    let mut job: Vec<JobStatement> = Vec::new();
    for st in parse_sql(&format!("{BIDS}{extra}INSERT INTO out1 {query};"))? {
        if let Outcome::Job(j) = s.execute(&st)? {
            job.extend(j);
        }
    }
    Ok(explain::render(&s.plan_job(&job)?))
}

fn window_line(text: &str) -> &str {
    text.lines().find(|l| l.contains("WindowAggregate")).unwrap_or_else(|| panic!("no WindowAggregate in\n{text}"))
}

#[test]
fn window_tvfs_in_positional_and_named_form_with_offsets() {
    for (tvf, expected) in [
        ("TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)", "TUMBLE(size=10000ms)"),
        ("TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '15' SECOND)", "TUMBLE(size=60000ms, offset=15000ms)"),
        (
            "TUMBLE(DATA => TABLE bids, TIMECOL => DESCRIPTOR(ts), SIZE => INTERVAL '10' SECOND)",
            "TUMBLE(size=10000ms)",
        ),
        (
            "HOP(DATA => TABLE bids, TIMECOL => DESCRIPTOR(ts), SLIDE => INTERVAL '20' SECOND, SIZE => INTERVAL '2' MINUTE)",
            "HOP(slide=20000ms, size=120000ms)",
        ),
        ("HOP(TABLE bids, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '10' SECOND)", "HOP(slide=2000ms, size=10000ms)"),
        ("CUMULATE(TABLE bids, DESCRIPTOR(ts), INTERVAL '1' HOUR, INTERVAL '1' DAY)", "CUMULATE(step=3600000ms, size=86400000ms)"),
        ("SESSION(TABLE bids PARTITION BY auction, DESCRIPTOR(ts), INTERVAL '5' MINUTE)", "SESSION(gap=300000ms)"),
        ("SESSION(TABLE bids PARTITION BY (auction), DESCRIPTOR(ts), INTERVAL '5' SECOND)", "SESSION(gap=5000ms)"),
    ] {
        let q = format!(
            "SELECT auction, window_start, window_end, COUNT(*) FROM TABLE({tvf}) GROUP BY auction, window_start, window_end"
        );
        let text = explain("", &q).unwrap_or_else(|e| panic!("{tvf}: {e}"));
        let line = window_line(&text);
        assert!(line.contains(expected), "{tvf}: {line}");
        assert!(line.contains("keys=[auction]"), "{tvf}: {line}");
        assert!(line.contains("aggs=[count(1)]"), "{tvf}: {line}");
    }
}

#[test]
fn legacy_group_windows_become_window_aggregations() {
    for (group, select, expected) in [
        ("TUMBLE(ts, INTERVAL '10' SECOND)", "TUMBLE_START(ts, INTERVAL '10' SECOND), TUMBLE_END(ts, INTERVAL '10' SECOND)", "TUMBLE(size=10000ms)"),
        ("HOP(ts, INTERVAL '5' SECOND, INTERVAL '1' MINUTE)", "HOP_START(ts, INTERVAL '5' SECOND, INTERVAL '1' MINUTE), HOP_END(ts, INTERVAL '5' SECOND, INTERVAL '1' MINUTE)", "HOP(slide=5000ms, size=60000ms)"),
        ("SESSION(ts, INTERVAL '30' SECOND)", "SESSION_START(ts, INTERVAL '30' SECOND), SESSION_END(ts, INTERVAL '30' SECOND)", "SESSION(gap=30000ms)"),
    ] {
        let q = format!("SELECT auction, {select}, COUNT(*) FROM bids GROUP BY {group}, auction");
        let text = explain("", &q).unwrap_or_else(|e| panic!("{group}: {e}"));
        let line = window_line(&text);
        assert!(line.contains(expected), "{group}: {line}");
        assert!(line.contains("keys=[bids.auction]"), "{group}: {line}");
    }
}

#[test]
fn windows_cascade_through_window_time() {
    let view = "CREATE VIEW w10 AS SELECT auction, window_start AS s10, window_time AS rt, COUNT(*) AS c
        FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND))
        GROUP BY auction, window_start, window_end, window_time;\n";
    let q = "SELECT auction, window_start, window_end, SUM(c) FROM TABLE(TUMBLE(TABLE w10, DESCRIPTOR(rt), INTERVAL '1' MINUTE)) GROUP BY auction, window_start, window_end";
    let text = explain(view, q).unwrap();
    assert_eq!(text.matches("WindowAggregate").count(), 2, "{text}");
    assert!(text.contains("TUMBLE(size=60000ms)") && text.contains("TUMBLE(size=10000ms)"), "{text}");
}

#[test]
fn keyed_window_operators_run_in_parallel_behind_the_exchange() {
    let text = explain(
        "SET 'parallelism.default' = '2';\n",
        "SELECT auction, window_start, window_end, COUNT(*) FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)) GROUP BY auction, window_start, window_end",
    )
    .unwrap();
    assert!(window_line(&text).contains("[parallelism=2, append]"), "{text}");
    // Without keys all rows meet in one task.
    let text = explain(
        "SET 'parallelism.default' = '2';\n",
        "SELECT 1, window_start, window_end, COUNT(*) FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)) GROUP BY window_start, window_end",
    )
    .unwrap();
    assert!(window_line(&text).contains("[parallelism=1, append]"), "{text}");
}

#[test]
fn top_n_and_dedup_plans() {
    let topn = "SELECT auction, window_start, window_end, c FROM (
        SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY c DESC) AS rn FROM (
          SELECT auction, window_start, window_end, COUNT(*) AS c
          FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND))
          GROUP BY auction, window_start, window_end)) WHERE rn <= 3";
    let text = explain("", topn).unwrap();
    assert!(text.contains("WindowRank: window=[#1, #2], partition=[], order=[c DESC], rownum<=3"), "{text}");

    let dedup = "SELECT auction, ts AS t1, ts AS t2, bidder FROM (
        SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY ts) AS rn FROM bids) WHERE rn = 1";
    let text = explain("", dedup).unwrap();
    assert!(text.contains("Deduplicate: keep=FirstRow, keys=[bids.auction], rowtime=#2"), "{text}");

    let keep_last = "SELECT auction, ts AS t1, ts AS t2, bidder FROM (
        SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY ts DESC) AS rn FROM bids) WHERE rn = 1";
    let text = explain("", keep_last).unwrap();
    assert!(
        text.contains("Rank: partition=[bids.auction], order=[bids.ts DESC], rows 1..=1, ties: newest first"),
        "{text}"
    );

    // Top-N without a window: an updating changelog of the top rows per partition.
    let top = "SELECT auction, ts AS t1, ts AS t2, price FROM (
        SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC, ts) AS rn FROM bids) WHERE rn <= 3";
    let text = explain("", top).unwrap();
    let rank = text.lines().find(|l| l.contains("Rank:")).unwrap_or_else(|| panic!("{text}"));
    assert!(
        rank.contains("Rank: partition=[bids.auction], order=[bids.price DESC, bids.ts ASC], rows 1..=3"),
        "{text}"
    );
    let e = explain(
        "",
        "SELECT auction, ts AS t1, ts AS t2, price FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY auction) AS rn FROM bids) WHERE rn <= 3",
    )
        .unwrap_err();
    assert!(e.message.starts_with("ROW_NUMBER() without ORDER BY on a stream"), "{e}");
}

#[test]
fn window_errors_name_the_place() {
    let cases: &[(&str, &str, (u64, u64))] = &[
        (
            "SELECT auction, window_start, window_end, COUNT(*) FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(plain_ts), INTERVAL '10' SECOND)) GROUP BY auction, window_start, window_end",
            "requires the timecol to be a time attribute type, but 'plain_ts' is TIMESTAMP(3)",
            (10, 110),
        ),
        (
            "SELECT auction, window_start, window_end, COUNT(*) FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(nope), INTERVAL '10' SECOND)) GROUP BY auction, window_start, window_end",
            "column 'nope' of DESCRIPTOR not found in 'bids'",
            (10, 110),
        ),
        (
            "SELECT auction, window_start, window_end, COUNT(*) FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), WIDTH => INTERVAL '10' SECOND)) GROUP BY auction, window_start, window_end",
            "TUMBLE has no parameter named 'WIDTH'",
            (10, 115),
        ),
        (
            "SELECT auction, window_start, window_end, COUNT(*) FROM TABLE(HOP(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)) GROUP BY auction, window_start, window_end",
            "HOP is missing its SIZE argument",
            (10, 80),
        ),
        (
            "SELECT auction, window_start, window_end, COUNT(*) FROM TABLE(TUMBLE(TABLE nosuch, DESCRIPTOR(ts), INTERVAL '10' SECOND)) GROUP BY auction, window_start, window_end",
            "TUMBLE: table or view 'nosuch' not found",
            (10, 80),
        ),
        (
            "SELECT auction, window_start, window_end, COUNT(*) FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '0' SECOND)) GROUP BY auction, window_start, window_end",
            "TUMBLE's SIZE must be a positive interval",
            (10, 124),
        ),
        (
            "SELECT auction, window_start, window_end, COUNT(*) FROM TABLE(CUMULATE(TABLE bids, DESCRIPTOR(ts), INTERVAL '7' SECOND, INTERVAL '1' MINUTE)) GROUP BY auction, window_start, window_end",
            "CUMULATE requires the max size to be an integral multiple of the step",
            (10, 147),
        ),
    ];
    for (q, message, (line, col)) in cases {
        let e = explain("", q).unwrap_err();
        assert!(e.message.contains(message), "{q}: {e}");
        assert_eq!((e.location.line, e.location.column), (*line, *col), "{q}: {e}");
    }
    let e = explain(
        "",
        "SELECT auction, window_start, window_start AS s2, COUNT(*) FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)) GROUP BY auction, window_start",
    )
    .unwrap_err();
    assert!(e.message.contains("must GROUP BY both window_start and window_end"), "{e}");
}

#[test]
fn processing_time_windows_follow_the_clock() {
    let table = "CREATE TABLE clicks (url BIGINT, proc AS PROCTIME()) WITH ('connector' = 'datagen');\n";
    let text = explain(
        table,
        "SELECT url, window_start, window_end, COUNT(*) FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(proc), INTERVAL '1' MINUTE)) GROUP BY url, window_start, window_end",
    )
    .unwrap();
    assert!(text.contains("WatermarkAssigner: proctime=#1, watermark=[the clock]"), "{text}");
    assert!(window_line(&text).contains("TUMBLE(size=60000ms)"), "{text}");
    // With a WATERMARK the table runs on event time: its PROCTIME() column cannot drive windows.
    let both = "CREATE TABLE clicks (url BIGINT, ts TIMESTAMP(3), proc AS PROCTIME(), WATERMARK FOR ts AS ts) WITH ('connector' = 'datagen');\n";
    let e = explain(
        both,
        "SELECT url, window_start, window_end, COUNT(*) FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(proc), INTERVAL '1' MINUTE)) GROUP BY url, window_start, window_end",
    )
    .unwrap_err();
    assert!(e.message.contains("time attribute"), "{e}");
}

#[test]
fn grouping_a_window_aggregate_by_its_window_is_a_window_aggregation() {
    // Nexmark q5's shape: the per-window maximum of per-auction counts, joined back by window.
    let view = "CREATE VIEW counts AS SELECT auction, COUNT(*) AS num, window_start AS s, window_end AS e
        FROM TABLE(HOP(TABLE bids, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
        GROUP BY auction, window_start, window_end;\n";
    let text = explain(view, "SELECT MAX(num), s, e, COUNT(*) FROM counts GROUP BY s, e").unwrap();
    assert_eq!(text.matches("WindowAggregate").count(), 2, "{text}");
    // Re-aggregated on the slide's grid, the original window_start kept as a key.
    assert!(text.contains("TUMBLE(size=2000ms)") && text.contains("keys=[counts.s]"), "{text}");
    assert!(!text.contains("GroupAggregate"), "{text}");
    let joined = "SELECT c.auction, c.s, c.e, c.num FROM counts c JOIN
        (SELECT MAX(num) AS maxn, s, e FROM counts GROUP BY s, e) m
        ON c.s = m.s AND c.e = m.e AND c.num >= m.maxn";
    let text = explain(view, joined).unwrap();
    assert!(text.contains("window join"), "{text}");

    // Grouped by window_end only, it stays a group aggregation (updating), as in Flink.
    let text = explain(view, "SELECT MAX(num), e, e AS e2, COUNT(*) FROM counts GROUP BY e").unwrap();
    assert!(text.contains("GroupAggregate"), "{text}");
}

#[test]
fn proctime_in_a_view_times_a_window_by_the_clock() {
    // Nexmark q12: PROCTIME() added by a view over a table that has an event-time watermark.
    let view = "CREATE VIEW b AS SELECT *, PROCTIME() AS p_time FROM bids;\n";
    let q = "SELECT bidder, window_start, window_end, COUNT(*)
        FROM TABLE(TUMBLE(TABLE b, DESCRIPTOR(p_time), INTERVAL '10' SECOND)) GROUP BY bidder, window_start, window_end";
    let text = explain(view, q).unwrap();
    let clock = text.find("WatermarkAssigner: proctime=").unwrap_or_else(|| panic!("no clock watermark in\n{text}"));
    // The clock watermark sits between the view's projection and the window aggregation;
    // the table's event-time watermark is still there at the source.
    assert!(text[..clock].contains("WindowAggregate") && text.contains("WatermarkAssigner: rowtime="), "{text}");
    // A plain timestamp is still refused.
    let err = explain("", &q.replace("TABLE b, DESCRIPTOR(p_time)", "TABLE bids, DESCRIPTOR(plain_ts)")).unwrap_err();
    assert!(err.to_string().contains("time attribute"), "{err}");
}
