-- Market quotes against Kafka: the average price of each symbol per 5 seconds, replayed from
-- a chosen offset of the `quotes` topic; the last 20 windows of each symbol stay queryable for
-- a line chart. See README.md.
--
--   eddy generate market-quotes --to kafka://127.0.0.1:9092/quotes --partitions 1 --rate 20
--   eddy serve examples/market-quotes/market-quotes-kafka.sql

-- One partition (one bucket): the quotes stay in the order they were quoted, and one offset
-- names a point of the whole stream. Replaying from another point is a change of
-- 'scan.startup.specific-offsets' (partition:0,offset:N) and a new --state-dir.
CREATE TABLE quotes (
  symbol STRING,
  price DOUBLE,
  bid DOUBLE,
  ask DOUBLE,
  quote_ts TIMESTAMP(3),
  WATERMARK FOR quote_ts AS quote_ts - INTERVAL '1' SECOND
) DISTRIBUTED INTO 1 BUCKETS WITH (
  'connector' = 'kafka',
  'topic' = 'quotes',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'properties.group.id' = 'market-quotes',
  'scan.startup.mode' = 'specific-offsets',
  'scan.startup.specific-offsets' = 'partition:0,offset:0',
  'format' = 'json'
);

-- A result table (no connector: Eddy keeps it and serves it over the Postgres protocol).
-- The retention keeps the windows that start at most 95 s before the newest one: the last
-- 20 five-second windows of every symbol.
CREATE TABLE price_5s (
  symbol STRING,
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3),
  period STRING,
  avg_price DOUBLE,
  min_price DOUBLE,
  max_price DOUBLE,
  quotes BIGINT,
  WATERMARK FOR window_start AS window_start
) WITH (
  'retention' = '95 s'
);

INSERT INTO price_5s
SELECT
  symbol,
  window_start,
  window_end,
  CONCAT(DATE_FORMAT(window_start, 'HH:mm:ss'), '-', DATE_FORMAT(window_end, 'HH:mm:ss')) AS period,
  AVG(price) AS avg_price,
  MIN(price) AS min_price,
  MAX(price) AS max_price,
  COUNT(*) AS quotes
FROM TABLE(TUMBLE(TABLE quotes, DESCRIPTOR(quote_ts), INTERVAL '5' SECOND))
GROUP BY symbol, window_start, window_end;
