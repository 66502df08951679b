-- Nexmark q18, from nexmark/nexmark (nexmark-flink/src/main/resources/queries/q18.sql).
-- tests/nexmark.rs runs it on the nexmark source (ddl_gen.sql, ddl_views.sql) and checks the result
-- against DuckDB (check.py). Unchanged except:
--   * the sink is 'print' instead of 'blackhole': the result is an updating stream (+I/-U/+U/-D),
--     which the filesystem sink does not take; the test applies the changelog printed on stdout and
--     compares the final table. benches/nexmark.py points it at 'blackhole' again.
-- Bids of one bidder on one auction can share a millisecond; which of them is "last" then depends
-- on arrival order, so the check accepts any of the latest bids of each (bidder, auction).
-- -------------------------------------------------------------------------------------------------
-- Query 18: Find last bid (Not in original suite)
-- -------------------------------------------------------------------------------------------------
-- What's a's last bid for bidder to auction?
-- Illustrates a Deduplicate query.
-- -------------------------------------------------------------------------------------------------

CREATE TABLE nexmark_q18 (
    auction  BIGINT,
    bidder  BIGINT,
    price  BIGINT,
    channel  VARCHAR,
    url  VARCHAR,
    `dateTime`  TIMESTAMP(3),
    extra  VARCHAR
) WITH (
  'connector' = 'print'
);

INSERT INTO nexmark_q18
SELECT auction, bidder, price, channel, url, `dateTime`, extra
 FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder, auction ORDER BY `dateTime` DESC) AS rank_number
       FROM bid)
 WHERE rank_number <= 1;
