-- Stock trades against Kafka: trades of ten tickers (about ten a second) from a topic; every
-- raw trade into PostgreSQL (the jdbc connector) and into a result table that keeps the last
-- hour; each trade joined with its company's profile from a CSV file, for the company's
-- market capitalisation at the trade's price; each sector's volume per minute; and each
-- ticker's volume since midnight (volume_today). See README.md.
--
--   eddy generate stock-trades --to kafka://127.0.0.1:9092/trades --partitions 1
--   eddy serve examples/stock-trades/stock-trades-kafka.sql
--
-- The PostgreSQL table, once (psql -h 127.0.0.1 -U postgres -d postgres):
--   CREATE TABLE stock_trades (trade_id BIGINT PRIMARY KEY, ticker TEXT,
--     price DOUBLE PRECISION, volume BIGINT, trade_ts TIMESTAMP(3));

-- Both jobs below take a checkpoint this often (eddy serve's default, written out).
SET 'execution.checkpointing.interval' = '10 s';

-- No 'properties.group.id': no offsets are committed to a group; the jobs keep their
-- offsets in their checkpoints.
CREATE TABLE trades (
  trade_id BIGINT,
  ticker STRING,
  price DOUBLE,
  volume BIGINT,
  trade_ts TIMESTAMP(3),
  WATERMARK FOR trade_ts AS trade_ts - INTERVAL '1' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = 'trades',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'scan.startup.mode' = 'earliest-offset',
  'format' = 'json'
);

-- The company profiles: a static dimension table, read once from the file (path relative
-- to where eddy serve runs: the repository's root).
CREATE TABLE companies (
  ticker STRING,
  company_name STRING,
  sector STRING,
  shares BIGINT
) WITH (
  'connector' = 'filesystem',
  'path' = 'examples/stock-trades/companies.csv',
  'format' = 'csv',
  'csv.allow-comments' = 'true'
);

-- Each trade with its company, and the company's market capitalisation at the trade's
-- price. An inner join keeps trade_ts a time attribute, so the view can be windowed.
CREATE VIEW enriched_trades AS
SELECT
  t.trade_id, t.ticker, c.company_name, c.sector, t.price, t.volume,
  t.price * c.shares AS market_cap,
  t.trade_ts
FROM trades AS t
JOIN companies AS c ON t.ticker = c.ticker;

-- Every raw trade in PostgreSQL, upserted by trade_id: a trade read again after a restart
-- overwrites itself.
CREATE TABLE trades_pg (
  trade_id BIGINT,
  ticker STRING,
  price DOUBLE,
  volume BIGINT,
  trade_ts TIMESTAMP(3),
  PRIMARY KEY (trade_id) NOT ENFORCED
) WITH (
  'connector' = 'jdbc',
  'url' = 'jdbc:postgresql://127.0.0.1:5432/postgres',
  'table-name' = 'stock_trades',
  'username' = 'postgres'
);

-- Result tables (no connector: Eddy keeps them and serves them over the Postgres protocol).
-- The raw trades of the last hour of event time, append-only.
CREATE TABLE raw_trades (
  trade_id BIGINT,
  ticker STRING,
  price DOUBLE,
  volume BIGINT,
  trade_ts TIMESTAMP(3),
  WATERMARK FOR trade_ts AS trade_ts
) WITH (
  'retention' = '1 h'
);

-- Each trade's market capitalisation, for the last hour.
CREATE TABLE market_caps (
  trade_id BIGINT,
  ticker STRING,
  company_name STRING,
  sector STRING,
  price DOUBLE,
  market_cap DOUBLE,
  trade_ts TIMESTAMP(3),
  WATERMARK FOR trade_ts AS trade_ts
) WITH (
  'retention' = '1 h'
);

-- Each sector's volume (shares traded) per minute, once the watermark closes the minute;
-- kept for a day.
CREATE TABLE sector_volume (
  sector STRING,
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3),
  volume BIGINT,
  trades BIGINT,
  WATERMARK FOR window_start AS window_start
) WITH (
  'retention' = '24 h'
);

-- Each ticker's volume since midnight (UTC), as of the last closed minute: a CUMULATE
-- window grows from midnight by a minute at a time, and each step replaces the ticker's row,
-- so the table holds one row per ticker for the current day (its first minute starts the
-- count again).
CREATE TABLE volume_today (
  ticker STRING,
  trade_date DATE,
  volume BIGINT,
  trades BIGINT,
  as_of TIMESTAMP(3),
  PRIMARY KEY (ticker) NOT ENFORCED
);

-- Two jobs. This one reads only the trades; a restart goes on from its last checkpoint,
-- exactly once.
EXECUTE STATEMENT SET
BEGIN
  INSERT INTO trades_pg SELECT trade_id, ticker, price, volume, trade_ts FROM trades;
  INSERT INTO raw_trades SELECT trade_id, ticker, price, volume, trade_ts FROM trades;
  INSERT INTO volume_today
  SELECT ticker, CAST(window_start AS DATE), SUM(volume), COUNT(*), window_end
  FROM TABLE(CUMULATE(TABLE trades, DESCRIPTOR(trade_ts), INTERVAL '1' MINUTE, INTERVAL '1' DAY))
  GROUP BY ticker, window_start, window_end;
END;

-- This one joins the company file, which ends once read; checkpoints go on after it, and a
-- restart does not read it again (its rows are in the join's state).
EXECUTE STATEMENT SET
BEGIN
  INSERT INTO market_caps
  SELECT trade_id, ticker, company_name, sector, price, market_cap, trade_ts FROM enriched_trades;
  INSERT INTO sector_volume
  SELECT sector, window_start, window_end, SUM(volume), COUNT(*)
  FROM TABLE(TUMBLE(TABLE enriched_trades, DESCRIPTOR(trade_ts), INTERVAL '1' MINUTE))
  GROUP BY sector, window_start, window_end;
END;
