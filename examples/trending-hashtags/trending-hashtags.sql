-- Trending hashtags, embedded: posts that `eddy generate` wrote to files; their hashtags
-- counted in 2-minute windows sliding every 20 seconds; the top 10 of each window and every
-- tag's count per window (updated by posts up to 5 minutes late) kept queryable. No Kafka
-- needed: see README.md (trending-hashtags-kafka.sql also archives the top 10s to Parquet).
--
--   eddy generate trending-hashtags --to file://data/posts --start now-30m --count 36000 --rate 20 --fast
--   eddy serve examples/trending-hashtags/trending-hashtags.sql

CREATE TABLE posts (
  post_id BIGINT,
  user_name STRING,
  `text` STRING,
  created_at TIMESTAMP(3)
) WITH (
  'connector' = 'filesystem',
  'path' = 'data/posts',
  'format' = 'json'
);

-- One row per hashtag of a post, in a result table that the window jobs below read with the
-- posts' event time. (Eddy does not yet keep a time attribute through CROSS JOIN UNNEST, so a
-- window cannot follow the UNNEST in one query.)
CREATE TABLE post_tags (
  post_id BIGINT,
  tag STRING,
  created_at TIMESTAMP(3),
  WATERMARK FOR created_at AS created_at - INTERVAL '5' SECOND
) WITH (
  'retention' = '1 h'
);

INSERT INTO post_tags
SELECT post_id, LOWER(tag), created_at
FROM posts CROSS JOIN UNNEST(REGEXP_EXTRACT_ALL(`text`, '#(\w+)', 1)) AS t (tag);

-- Mentions of each tag in 2-minute windows sliding every 20 seconds.
CREATE VIEW tag_windows AS
SELECT window_start, window_end, tag, COUNT(*) AS mentions
FROM TABLE(HOP(TABLE post_tags, DESCRIPTOR(created_at), INTERVAL '20' SECOND, INTERVAL '2' MINUTE))
GROUP BY window_start, window_end, tag;

-- The top 10 of each window, once the watermark closes it (ties broken by tag), for the last
-- hour.
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

INSERT INTO top_hashtags
SELECT window_start, window_end, ranking, tag, mentions
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY mentions DESC, tag) AS ranking
  FROM tag_windows
)
WHERE ranking <= 10;

-- Every tag's mentions per window, kept for the last hour and updated (-U/+U) by posts that
-- arrive up to 5 minutes after their window closed. The top 10 of a window with the late
-- posts counted is a query away (README.md).
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
