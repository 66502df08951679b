-- Auction bids, embedded: bids that `eddy generate` wrote to files, read by two parallel
-- tasks; every bid into a result table, a JSON backup of every bid, and the bids per bidder
-- and the highest bid so far kept queryable. No Kafka, registry or PostgreSQL needed: see
-- README.md (auction-bids-kafka.sql reads Avro from Kafka and also writes to PostgreSQL).
--
--   eddy generate auction-bids --to file://data/bids --start now-1h --count 36000 --fast
--   eddy serve examples/auction-bids/auction-bids.sql

-- Two tasks share the work (the file is read in byte ranges).
SET 'parallelism.default' = '2';

CREATE TABLE bids (
  name STRING,
  price DOUBLE,
  bid_ts TIMESTAMP(3)
) WITH (
  'connector' = 'filesystem',
  'path' = 'data/bids',
  'format' = 'json'
);

-- Every bid in a result table (kept by Eddy, queried over the Postgres protocol).
CREATE TABLE all_bids (
  name STRING,
  price DOUBLE,
  bid_ts TIMESTAMP(3)
);

-- The bids as JSON lines, one directory per day: data/bids-backup/dt=2024-03-01/part-...
CREATE TABLE bids_backup (
  name STRING,
  price DOUBLE,
  bid_ts TIMESTAMP(3),
  dt STRING
) PARTITIONED BY (dt) WITH (
  'connector' = 'filesystem',
  'path' = 'data/bids-backup',
  'format' = 'json'
);

-- Bids per bidder, each bidder's highest and latest bid: an updating aggregate, upserted by
-- bidder. The highest bid so far is the first row by `highest` (see README.md).
CREATE TABLE bidder_stats (
  name STRING,
  bids BIGINT,
  highest DOUBLE,
  last_bid_ts TIMESTAMP(3),
  PRIMARY KEY (name) NOT ENFORCED
);

EXECUTE STATEMENT SET
BEGIN
  INSERT INTO all_bids SELECT name, price, bid_ts FROM bids;
  INSERT INTO bids_backup SELECT name, price, bid_ts, DATE_FORMAT(bid_ts, 'yyyy-MM-dd') FROM bids;
  INSERT INTO bidder_stats SELECT name, COUNT(*), MAX(price), MAX(bid_ts) FROM bids GROUP BY name;
END;
