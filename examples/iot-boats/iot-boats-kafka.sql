-- IoT boats against Kafka: six boats report their position about ten times a second; each
-- reading gets the boat's speed since its previous position (LAG + the haversine distance)
-- and goes back to Kafka enriched, from where a second job keeps the boats' positions for a
-- map. Readings that come in more than 2 s behind the newest are late: dropped from the
-- speeds and counted in /metrics. Every raw reading, late or not, is archived to Parquet for
-- replay. See README.md.
--
--   eddy generate iot-boats --to kafka://127.0.0.1:9092/boat-readings --partitions 2
--   eddy serve examples/iot-boats/iot-boats-kafka.sql

-- Lateness is decided per reading, not per 200 ms tick: a replay of the topic drops the same
-- readings as the live run did.
SET 'pipeline.auto-watermark-interval' = '0 ms';
-- The Parquet files are published at each checkpoint.
SET 'execution.checkpointing.interval' = '10 s';

CREATE TABLE readings (
  boat_id STRING,
  lat DOUBLE,
  lon DOUBLE,
  reading_ts TIMESTAMP(3),
  WATERMARK FOR reading_ts AS reading_ts - INTERVAL '2' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = 'boat-readings',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'properties.group.id' = 'iot-boats',
  'scan.startup.mode' = 'earliest-offset',
  'format' = 'json'
);

-- Each reading with the boat's previous one (in event time; late readings are dropped here).
CREATE VIEW legs AS
SELECT
  boat_id, lat, lon, reading_ts,
  LAG(lat) OVER w AS prev_lat,
  LAG(lon) OVER w AS prev_lon,
  LAG(reading_ts) OVER w AS prev_ts
FROM readings
WINDOW w AS (PARTITION BY boat_id ORDER BY reading_ts);

-- The haversine distance from the previous position (Earth radius 6,371 km), and the speed
-- over it in knots (1 knot = 1,852 m/h). A boat's first reading has no speed.
CREATE VIEW boat_legs AS
SELECT
  boat_id, lat, lon, reading_ts,
  2 * 6371000 * ASIN(SQRT(
    POWER(SIN(RADIANS(lat - prev_lat) / 2), 2)
    + COS(RADIANS(prev_lat)) * COS(RADIANS(lat)) * POWER(SIN(RADIANS(lon - prev_lon) / 2), 2)
  )) AS meters,
  TIMESTAMPDIFF(MILLISECOND, prev_ts, reading_ts) AS millis
FROM legs;

CREATE VIEW enriched AS
SELECT boat_id, lat, lon, reading_ts, meters, meters / millis * 1000 * 3600 / 1852 AS speed_knots
FROM boat_legs;

-- The enriched stream, back to Kafka (the topic is created keyed by boat when missing); the
-- map's tables below are loaded from it.
CREATE TABLE boat_speeds (
  boat_id STRING,
  lat DOUBLE,
  lon DOUBLE,
  reading_ts TIMESTAMP(3),
  meters DOUBLE,
  speed_knots DOUBLE
) DISTRIBUTED BY (boat_id) INTO 2 BUCKETS WITH (
  'connector' = 'kafka',
  'topic' = 'boat-speeds',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'properties.group.id' = 'iot-boats-map',
  'scan.startup.mode' = 'earliest-offset',
  'format' = 'json'
);

-- Every raw reading, late or not, one directory per day and hour:
-- data/boat-archive/dt=2024-03-01/hr=10/part-...
CREATE TABLE readings_archive (
  boat_id STRING,
  lat DOUBLE,
  lon DOUBLE,
  reading_ts TIMESTAMP(3),
  dt STRING,
  hr STRING
) PARTITIONED BY (dt, hr) WITH (
  'connector' = 'filesystem',
  'path' = 'data/boat-archive',
  'format' = 'parquet'
);

EXECUTE STATEMENT SET
BEGIN
  INSERT INTO boat_speeds SELECT * FROM enriched;
  INSERT INTO readings_archive
  SELECT boat_id, lat, lon, reading_ts, DATE_FORMAT(reading_ts, 'yyyy-MM-dd'), DATE_FORMAT(reading_ts, 'HH')
  FROM readings;
END;

-- Where each boat is now (one row per boat), and the last 10 minutes of their tracks: result
-- tables, queried over the Postgres protocol (a Grafana geomap, psql), loaded from the
-- enriched topic by a second job.
CREATE TABLE boat_positions (
  boat_id STRING,
  lat DOUBLE,
  lon DOUBLE,
  reading_ts TIMESTAMP(3),
  speed_knots DOUBLE,
  PRIMARY KEY (boat_id) NOT ENFORCED
);

CREATE TABLE boat_track (
  boat_id STRING,
  lat DOUBLE,
  lon DOUBLE,
  reading_ts TIMESTAMP(3),
  speed_knots DOUBLE,
  WATERMARK FOR reading_ts AS reading_ts
) WITH (
  'retention' = '10 min'
);

EXECUTE STATEMENT SET
BEGIN
  INSERT INTO boat_positions SELECT boat_id, lat, lon, reading_ts, speed_knots FROM boat_speeds;
  INSERT INTO boat_track SELECT boat_id, lat, lon, reading_ts, speed_knots FROM boat_speeds;
END;
