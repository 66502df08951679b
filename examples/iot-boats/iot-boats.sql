-- IoT boats, embedded: six boats' positions that `eddy generate` wrote to files (5 % of them
-- delayed 10-60 s); each reading gets the boat's speed since its previous position (LAG + the
-- haversine distance); late readings are dropped and counted; the boats' positions and tracks
-- stay queryable for a map; every raw reading is archived to Parquet. No Kafka needed: see
-- README.md (iot-boats-kafka.sql also sends the enriched stream back to Kafka).
--
--   eddy generate iot-boats --to file://data/boat-readings --start now-30m --count 18000 --fast
--   eddy serve examples/iot-boats/iot-boats.sql

-- Lateness is decided per reading, not per 200 ms tick: a replay drops the same readings as
-- the live run did.
SET 'pipeline.auto-watermark-interval' = '0 ms';

CREATE TABLE readings (
  boat_id STRING,
  lat DOUBLE,
  lon DOUBLE,
  reading_ts TIMESTAMP(3),
  WATERMARK FOR reading_ts AS reading_ts - INTERVAL '2' SECOND
) WITH (
  'connector' = 'filesystem',
  'path' = 'data/boat-readings',
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

-- The boats' tracks (the last 10 minutes of event time) and where each boat is now: result
-- tables, queried over the Postgres protocol (a Grafana geomap, psql). The positions are
-- loaded from the track by a second job, so that the readings go through one LAG operator
-- (and each late reading is counted once).
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

CREATE TABLE boat_positions (
  boat_id STRING,
  lat DOUBLE,
  lon DOUBLE,
  reading_ts TIMESTAMP(3),
  speed_knots DOUBLE,
  PRIMARY KEY (boat_id) NOT ENFORCED
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
  INSERT INTO boat_track SELECT boat_id, lat, lon, reading_ts, speed_knots FROM enriched;
  INSERT INTO readings_archive
  SELECT boat_id, lat, lon, reading_ts, DATE_FORMAT(reading_ts, 'yyyy-MM-dd'), DATE_FORMAT(reading_ts, 'HH')
  FROM readings;
END;

INSERT INTO boat_positions SELECT boat_id, lat, lon, reading_ts, speed_knots FROM boat_track;
