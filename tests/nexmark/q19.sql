-- Nexmark q19, from nexmark/nexmark (nexmark-flink/src/main/resources/queries/q19.sql).
-- tests/nexmark.rs runs it on the nexmark source (ddl_gen.sql, ddl_views.sql) and checks the result
-- against DuckDB (check.py). Unchanged except:
--   * the sink is 'print' instead of 'blackhole': the result is an updating stream (+I/-U/+U/-D),
--     which the filesystem sink does not take; the test applies the changelog printed on stdout and
--     compares the final table. benches/nexmark.py points it at 'blackhole' again.
-- Bids of equal price on one auction rank in arrival order, so the check accepts any of them at
-- a tied rank (the prices by rank, and that each row is a real bid, are checked exactly).
-- -------------------------------------------------------------------------------------------------
-- Query 19: Auction TOP-10 Price (Not in original suite)
-- -------------------------------------------------------------------------------------------------
-- What's the top price 10 bids of an auction?
-- Illustrates a TOP-N query.
-- -------------------------------------------------------------------------------------------------

CREATE TABLE nexmark_q19 (
    auction  BIGINT,
    bidder  BIGINT,
    price  BIGINT,
    channel  VARCHAR,
    url  VARCHAR,
    `dateTime`  TIMESTAMP(3),
    extra  VARCHAR,
    rank_number  BIGINT
) WITH (
  'connector' = 'print'
);

INSERT INTO nexmark_q19
SELECT * FROM
(SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rank_number FROM bid)
WHERE rank_number <= 10;
