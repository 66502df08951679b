-- Nexmark q12, from nexmark/nexmark (nexmark-flink/src/main/resources/queries/q12.sql).
-- tests/nexmark.rs runs it on the nexmark source (ddl_gen.sql, ddl_views.sql) and checks the result
-- against DuckDB (check.py). Unchanged except:
--   * the sink writes CSV files into ${OUTPUT} (connector 'filesystem') instead of 'blackhole', so the
--     result can be read back; benches/nexmark.py points it at 'blackhole' again.
-- Processing-time windows: which window a bid falls in depends on the wall clock, so the rows
-- cannot be compared with a fixed answer. The test checks what does not depend on it: per bidder,
-- the counts over all windows add up to the bidder's bids, and every window is 10 s long and
-- aligned to 10 s.
-- -------------------------------------------------------------------------------------------------
-- Query 12: Processing Time Windows (Not in original suite)
-- -------------------------------------------------------------------------------------------------
-- How many bids does a user make within a fixed processing time limit?
-- Illustrates working in processing time window.
--
-- Group bids by the same user into processing time windows of 10 seconds.
-- Emit the count of bids per window.
-- -------------------------------------------------------------------------------------------------

CREATE TABLE discard_sink (
  bidder BIGINT,
  bid_count BIGINT,
  starttime TIMESTAMP(3),
  endtime TIMESTAMP(3)
) WITH (
  'connector' = 'filesystem',
  'path' = '${OUTPUT}',
  'format' = 'csv'
);

CREATE VIEW B AS SELECT *, PROCTIME() as p_time FROM bid;

INSERT INTO discard_sink
SELECT
    bidder,
    count(*) as bid_count,
    window_start AS starttime,
    window_end AS endtime
FROM TABLE(
        TUMBLE(TABLE B, DESCRIPTOR(p_time), INTERVAL '10' SECOND))
GROUP BY bidder, window_start, window_end;
