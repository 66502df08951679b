-- Auction bids against Kafka: bids arrive as Avro (Confluent Schema Registry) on a topic of two
-- partitions, read by two parallel tasks. Every bid goes to PostgreSQL (the jdbc connector)
-- and to a result table, its raw record is backed up to JSON files, and the bids per bidder
-- and the highest bid so far stay queryable. See README.md.
--
--   eddy generate auction-bids --to kafka://127.0.0.1:9092/bids --partitions 2 \
--     --format avro-confluent --registry http://127.0.0.1:8081
--   eddy serve examples/auction-bids/auction-bids-kafka.sql
--
-- The PostgreSQL table, once (psql -h 127.0.0.1 -U postgres -d postgres):
--   CREATE TABLE auction_bids (bid_partition INT, bid_offset BIGINT, name TEXT,
--     price DOUBLE PRECISION, bid_ts TIMESTAMP(3), PRIMARY KEY (bid_partition, bid_offset));

-- Two tasks: each reads one of the two partitions (and runs its share of what follows).
SET 'parallelism.default' = '2';
-- The JSON backup's files are published at each checkpoint.
SET 'execution.checkpointing.interval' = '10 s';

CREATE TABLE bids (
  name STRING,
  price DOUBLE,
  bid_ts TIMESTAMP(3),
  -- where the record is in Kafka: a bid's identity
  bid_partition INT METADATA FROM 'partition' VIRTUAL,
  bid_offset BIGINT METADATA FROM 'offset' VIRTUAL
) WITH (
  'connector' = 'kafka',
  'topic' = 'bids',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'properties.group.id' = 'auction-bids',
  'scan.startup.mode' = 'earliest-offset',
  'format' = 'avro-confluent',
  'avro-confluent.url' = 'http://127.0.0.1:8081'
);

-- Every bid in PostgreSQL, upserted by its Kafka position: a bid read again after a restart
-- overwrites itself.
CREATE TABLE bids_pg (
  bid_partition INT,
  bid_offset BIGINT,
  name STRING,
  price DOUBLE,
  bid_ts TIMESTAMP(3),
  PRIMARY KEY (bid_partition, bid_offset) NOT ENFORCED
) WITH (
  'connector' = 'jdbc',
  'url' = 'jdbc:postgresql://127.0.0.1:5432/postgres',
  'table-name' = 'auction_bids',
  'username' = 'postgres'
);

-- Every bid in a result table (kept by Eddy, queried over the Postgres protocol).
CREATE TABLE all_bids (
  bid_partition INT,
  bid_offset BIGINT,
  name STRING,
  price DOUBLE,
  bid_ts TIMESTAMP(3),
  PRIMARY KEY (bid_partition, bid_offset) NOT ENFORCED
);

-- The raw bids as JSON lines, one directory per day: data/bids-backup/dt=2024-03-01/part-...
CREATE TABLE bids_backup (
  name STRING,
  price DOUBLE,
  bid_ts TIMESTAMP(3),
  bid_partition INT,
  bid_offset BIGINT,
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
  INSERT INTO bids_pg SELECT bid_partition, bid_offset, name, price, bid_ts FROM bids;
  INSERT INTO all_bids SELECT bid_partition, bid_offset, name, price, bid_ts FROM bids;
  INSERT INTO bids_backup
  SELECT name, price, bid_ts, bid_partition, bid_offset, DATE_FORMAT(bid_ts, 'yyyy-MM-dd') FROM bids;
  INSERT INTO bidder_stats
  SELECT name, COUNT(*), MAX(price), MAX(bid_ts) FROM bids GROUP BY name;
END;
