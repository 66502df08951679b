-- Trending hashtags against Kafka: posts with free text; their hashtags counted in 2-minute
-- windows sliding every 20 seconds; the top 10 of each window archived to Parquet (one
-- directory per hour) and kept queryable; every tag's count per window kept queryable too,
-- and updated by posts up to 5 minutes late. See README.md.
--
--   eddy generate trending-hashtags --to kafka://127.0.0.1:9092/posts --partitions 1 --rate 20
--   eddy serve examples/trending-hashtags/trending-hashtags-kafka.sql

-- The Parquet files are published at each checkpoint.
SET 'execution.checkpointing.interval' = '10 s';

CREATE TABLE posts (
  post_id BIGINT,
  user_name STRING,
  `text` STRING,
  created_at TIMESTAMP(3)
) WITH (
  'connector' = 'kafka',
  'topic' = 'posts',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'properties.group.id' = 'trending-hashtags',
  'scan.startup.mode' = 'earliest-offset',
  'format' = 'json'
);

-- One row per hashtag of a post, in a topic of its own (created when missing), which the
-- window jobs below read with the posts' event time. (Eddy does not yet keep a time
-- attribute through CROSS JOIN UNNEST, so a window cannot follow the UNNEST in one query.)
CREATE TABLE post_tags (
  post_id BIGINT,
  tag STRING,
  created_at TIMESTAMP(3),
  WATERMARK FOR created_at AS created_at - INTERVAL '5' SECOND
) DISTRIBUTED INTO 1 BUCKETS WITH (
  'connector' = 'kafka',
  'topic' = 'post-tags',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'properties.group.id' = 'trending-hashtags-windows',
  'scan.startup.mode' = 'earliest-offset',
  'format' = 'json'
);

INSERT INTO post_tags
SELECT post_id, LOWER(tag), created_at
FROM posts CROSS JOIN UNNEST(REGEXP_EXTRACT_ALL(`text`, '#(\w+)', 1)) AS t (tag);

-- Mentions of each tag in 2-minute windows sliding every 20 seconds.
CREATE VIEW tag_windows AS
SELECT window_start, window_end, tag, COUNT(*) AS mentions
FROM TABLE(HOP(TABLE post_tags, DESCRIPTOR(created_at), INTERVAL '20' SECOND, INTERVAL '2' MINUTE))
GROUP BY window_start, window_end, tag;

-- The top 10 of each window, once the watermark closes it (ties broken by tag).
CREATE VIEW top_tags AS
SELECT window_start, window_end, ranking, tag, mentions
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY mentions DESC, tag) AS ranking
  FROM tag_windows
)
WHERE ranking <= 10;

-- Parquet, one directory per hour: data/trending/dt=2024-03-01/hr=10/part-...
CREATE TABLE trending_archive (
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3),
  ranking BIGINT,
  tag STRING,
  mentions BIGINT,
  dt STRING,
  hr STRING
) PARTITIONED BY (dt, hr) WITH (
  'connector' = 'filesystem',
  'path' = 'data/trending',
  'format' = 'parquet'
);

-- The same top 10s, queryable for the last hour.
CREATE TABLE top_hashtags (
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3),
  ranking BIGINT,
  tag STRING,
  mentions BIGINT,
  WATERMARK FOR window_end AS window_end
) WITH (
  'retention' = '1 h'
);

EXECUTE STATEMENT SET
BEGIN
  INSERT INTO trending_archive
  SELECT window_start, window_end, ranking, tag, mentions,
    DATE_FORMAT(window_start, 'yyyy-MM-dd'), DATE_FORMAT(window_start, 'HH')
  FROM top_tags;
  INSERT INTO top_hashtags SELECT * FROM top_tags;
END;

-- Every tag's mentions per window, kept for the last hour and updated (-U/+U) by posts that
-- arrive up to 5 minutes after their window closed. The top 10 of a window with the late
-- posts counted is a query away (README.md). An updating result: an append-only sink such as
-- the Parquet files above would refuse it, and so would a window Top-N, as in Flink.
SET 'table.exec.emit.allow-lateness' = '5 min';

CREATE TABLE tag_counts (
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3),
  tag STRING,
  mentions BIGINT,
  PRIMARY KEY (window_start, window_end, tag) NOT ENFORCED,
  WATERMARK FOR window_end AS window_end
) WITH (
  'retention' = '1 h'
);

INSERT INTO tag_counts SELECT * FROM tag_windows;
