-- Nexmark q22, from nexmark/nexmark (nexmark-flink/src/main/resources/queries/q22.sql).
-- tests/nexmark.rs runs it on the nexmark source (ddl_gen.sql, ddl_views.sql) and checks the result
-- against DuckDB (check.py). Unchanged except:
--   * the sink writes CSV files into ${OUTPUT} (connector 'filesystem') instead of 'blackhole', so the
--     result can be read back; benches/nexmark.py points it at 'blackhole' again.
-- -------------------------------------------------------------------------------------------------
-- Query 22: Get URL Directories (Not in original suite)
-- -------------------------------------------------------------------------------------------------
-- What is the directory structure of the URL?
-- Illustrates a SPLIT_INDEX SQL.
-- -------------------------------------------------------------------------------------------------

CREATE TABLE nexmark_q22 (
      auction  BIGINT,
      bidder  BIGINT,
      price  BIGINT,
      channel  VARCHAR,
      dir1  VARCHAR,
      dir2  VARCHAR,
      dir3  VARCHAR
) WITH (
    'connector' = 'filesystem',
  'path' = '${OUTPUT}',
  'format' = 'csv'
);

INSERT INTO nexmark_q22
SELECT
    auction, bidder, price, channel,
    SPLIT_INDEX(url, '/', 3) as dir1,
    SPLIT_INDEX(url, '/', 4) as dir2,
    SPLIT_INDEX(url, '/', 5) as dir3 FROM bid;
