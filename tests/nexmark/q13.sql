-- Nexmark q13, from nexmark/nexmark (nexmark-flink/src/main/resources/queries/q13.sql).
-- tests/nexmark.rs runs it on the nexmark source (ddl_gen.sql, ddl_views.sql) and checks the result
-- against DuckDB (check.py). Unchanged except:
--   * the sink writes CSV files into ${OUTPUT} (connector 'filesystem') instead of 'blackhole', so the
--     result can be read back; benches/nexmark.py points it at 'blackhole' again.
--   * side_input uses the current filesystem connector ('connector' = 'filesystem', 'path',
--     'format') instead of the legacy 'connector.type' options, as the TODO below asks; the test
--     writes ${SIDE_INPUT} (key 0..9999, value 'v<key>' for even keys: odd keys have no row).
-- The side input never changes while the job runs, so the processing-time lookup join has one
-- answer, which the test checks. Note: Flink 2.3 rejects this form too ("Temporal Table Join
-- requires primary key in versioned table"): the current filesystem connector is no lookup
-- source, where the legacy CSV source of the original was one.
-- -------------------------------------------------------------------------------------------------
-- Query 13: Bounded Side Input Join (Not in original suite)
-- -------------------------------------------------------------------------------------------------
-- Joins a stream to a bounded side input, modeling basic stream enrichment.
-- -------------------------------------------------------------------------------------------------

-- TODO: use the new "filesystem" connector once FLINK-17397 is done
CREATE TABLE side_input (
  key BIGINT,
  `value` VARCHAR
) WITH (
  'connector' = 'filesystem',
  'path' = '${SIDE_INPUT}',
  'format' = 'csv'
);

CREATE TABLE nexmark_q13 (
  auction  BIGINT,
  bidder  BIGINT,
  price  BIGINT,
  `dateTime`  TIMESTAMP(3),
  `value`  VARCHAR
) WITH (
  'connector' = 'filesystem',
  'path' = '${OUTPUT}',
  'format' = 'csv'
);

INSERT INTO nexmark_q13
SELECT
    B.auction,
    B.bidder,
    B.price,
    B.`dateTime`,
    S.`value`
FROM (SELECT *, PROCTIME() as p_time FROM bid) B
JOIN side_input FOR SYSTEM_TIME AS OF B.p_time AS S
ON mod(B.auction, 10000) = S.key;
