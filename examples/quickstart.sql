-- Eddy quickstart: the Nexmark online-auction event stream, generated in-process
-- (no Kafka, no JVM, no database), filtered and transformed by Flink SQL.
--
--   cargo run --release -p eddy -- run examples/quickstart.sql
--
-- It reads 200,000 events (people, auctions, bids), paced at 20,000 per second of event time,
-- keeps the bids on a few auctions (Nexmark q2), converts their price to euros (q1),
-- formats their time, and prints them in Flink's print-connector format:
-- bid:N> +I[auction, bidder, ...] (N: the task). In the same job it counts the bids per channel in
-- 5-second windows sliding every second, and prints each window's top channel once the
-- watermark has passed it: top:N> +I[window_start, window_end, channel, bids, max_price].

SET 'parallelism.default' = '2';

CREATE TABLE nexmark (
  event_type INT,
  person ROW<id BIGINT, name STRING, emailAddress STRING, creditCard STRING,
             city STRING, state STRING, dateTime TIMESTAMP(3), extra STRING>,
  auction ROW<id BIGINT, itemName STRING, description STRING, initialBid BIGINT,
              reserve BIGINT, dateTime TIMESTAMP(3), expires TIMESTAMP(3),
              seller BIGINT, category BIGINT, extra STRING>,
  bid ROW<auction BIGINT, bidder BIGINT, price BIGINT, channel STRING,
          url STRING, dateTime TIMESTAMP(3), extra STRING>,
  dateTime AS CASE
    WHEN event_type = 0 THEN person.dateTime
    WHEN event_type = 1 THEN auction.dateTime
    ELSE bid.dateTime
  END,
  WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
) WITH (
  'connector' = 'nexmark',
  'first-event.rate' = '20000',
  'events.num' = '200000'
);

CREATE VIEW bids AS
SELECT bid.auction AS auction, bid.bidder AS bidder, bid.price AS price,
       bid.channel AS channel, dateTime
FROM nexmark
WHERE event_type = 2;

CREATE TABLE selected_bids (
  auction BIGINT,
  bidder BIGINT,
  price_eur DECIMAL(12, 2),
  channel STRING,
  bid_minute STRING
) WITH (
  'connector' = 'print',
  'print-identifier' = 'bid'
);

CREATE TABLE top_channels (
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3),
  channel STRING,
  bids BIGINT,
  max_price BIGINT
) WITH (
  'connector' = 'print',
  'print-identifier' = 'top'
);

EXECUTE STATEMENT SET BEGIN

INSERT INTO selected_bids
SELECT auction,
       bidder,
       CAST(price * 0.908 AS DECIMAL(12, 2)) AS price_eur,
       UPPER(channel),
       DATE_FORMAT(dateTime, 'yyyy-MM-dd HH:mm')
FROM bids
WHERE auction IN (1007, 1020, 2001, 2019, 2087) AND price > 5000000;

INSERT INTO top_channels
SELECT window_start, window_end, channel, bids, max_price
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY bids DESC) AS rn
  FROM (
    SELECT window_start, window_end, channel, COUNT(*) AS bids, MAX(price) AS max_price
    FROM TABLE(HOP(TABLE bids, DESCRIPTOR(dateTime), INTERVAL '1' SECOND, INTERVAL '5' SECOND))
    GROUP BY window_start, window_end, channel
  )
)
WHERE rn = 1;

END;
