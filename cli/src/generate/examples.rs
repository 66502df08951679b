//! The five examples' event streams (see each `examples/<name>/README.md`).

use std::collections::VecDeque;
use std::sync::Arc;

use anyhow::{bail, Result};
use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::Generator;

/// The examples `eddy generate` knows, with what each writes.
pub(super) const EXAMPLES: &[(&str, &str)] = &[
    ("trending-hashtags", "posts (post_id, user_name, text with #hashtags, created_at)"),
    ("stock-trades", "trades of ten tickers (trade_id, ticker, price, volume, trade_ts), keyed by ticker"),
    ("market-quotes", "quotes (symbol, price, bid, ask, quote_ts), keyed by symbol"),
    ("iot-boats", "six boats' positions (boat_id, lat, lon, reading_ts); 5 % arrive 10-60 s late"),
    ("auction-bids", "bids (name, price, bid_ts), keyed by name"),
];

pub(super) fn make(name: &str, seed: u64) -> Result<Box<dyn Generator>> {
    let rng = ChaCha8Rng::seed_from_u64(seed);
    Ok(match name {
        "trending-hashtags" => Box::new(Hashtags { rng }),
        "stock-trades" => Box::new(Walk::new(rng, Walk::TICKERS, "trade")),
        "market-quotes" => Box::new(Walk::new(rng, Walk::SYMBOLS, "quote")),
        "iot-boats" => Box::new(Boats::new(rng)),
        "auction-bids" => Box::new(Bids { rng, price: 100.0 }),
        other => {
            let known: Vec<&str> = EXAMPLES.iter().map(|(n, _)| *n).collect();
            bail!("no example '{other}'; there are: {}", known.join(", "))
        }
    })
}

fn ts_field(name: &str) -> Field {
    Field::new(name, DataType::Timestamp(TimeUnit::Millisecond, None), false)
}

fn batch(schema: SchemaRef, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// Two decimals, as prices are quoted.
fn cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

struct Hashtags {
    rng: ChaCha8Rng,
}

impl Hashtags {
    const TAGS: &'static [&'static str] = &[
        "rust",
        "flink",
        "kafka",
        "streaming",
        "sql",
        "arrow",
        "datafusion",
        "postgres",
        "grafana",
        "iot",
        "ai",
        "cloud",
        "devops",
        "opensource",
        "dataeng",
        "analytics",
        "realtime",
        "python",
        "java",
        "linux",
        "security",
        "startup",
        "music",
        "football",
    ];
    const WORDS: &'static [&'static str] =
        &["loving", "the new", "release of", "talk about", "why I use", "benchmarks for", "thread on", "notes from"];
    const USERS: &'static [&'static str] =
        &["ada", "grace", "linus", "ken", "barbara", "edsger", "margaret", "dennis", "frances", "guido"];
}

impl Generator for Hashtags {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("post_id", DataType::Int64, false),
            Field::new("user_name", DataType::Utf8, false),
            Field::new("text", DataType::Utf8, false),
            ts_field("created_at"),
        ]))
    }

    fn batch(&mut self, first: u64, n: usize, time_ms: &dyn Fn(u64) -> i64) -> Result<RecordBatch> {
        let (mut ids, mut users, mut texts, mut times) = (vec![], vec![], vec![], vec![]);
        for i in first..first + n as u64 {
            // One tag trends for a while (600 posts), then the next.
            let trending = Self::TAGS[(i / 600) as usize % Self::TAGS.len()];
            let tags: Vec<&str> = (0..self.rng.random_range(1..=3))
                .map(|_| match self.rng.random_bool(0.4) {
                    true => trending,
                    false => Self::TAGS[self.rng.random_range(0..Self::TAGS.len())],
                })
                .collect();
            let words = Self::WORDS[self.rng.random_range(0..Self::WORDS.len())];
            let tags: Vec<String> = tags.iter().map(|t| format!("#{t}")).collect();
            ids.push(i as i64 + 1);
            users.push(Self::USERS[self.rng.random_range(0..Self::USERS.len())]);
            texts.push(format!("{words} {}", tags.join(" ")));
            times.push(time_ms(i));
        }
        batch(
            self.schema(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(users)),
                Arc::new(StringArray::from(texts)),
                Arc::new(TimestampMillisecondArray::from(times)),
            ],
        )
    }
}

/// Trades or quotes: a random walk of each instrument's price.
struct Walk {
    rng: ChaCha8Rng,
    names: &'static [(&'static str, f64)],
    prices: Vec<f64>,
    kind: &'static str,
}

impl Walk {
    const TICKERS: &'static [(&'static str, f64)] = &[
        ("AAPL", 190.0),
        ("MSFT", 410.0),
        ("GOOG", 140.0),
        ("AMZN", 175.0),
        ("NVDA", 880.0),
        ("JPM", 195.0),
        ("XOM", 115.0),
        ("JNJ", 155.0),
        ("KO", 60.0),
        ("TSLA", 175.0),
    ];
    const SYMBOLS: &'static [(&'static str, f64)] = &[
        ("EURUSD", 1.08),
        ("GBPUSD", 1.27),
        ("USDJPY", 151.0),
        ("BTCUSD", 64000.0),
        ("XAUUSD", 2300.0),
        ("SPX", 5200.0),
    ];

    fn new(rng: ChaCha8Rng, names: &'static [(&'static str, f64)], kind: &'static str) -> Self {
        Self { rng, names, prices: names.iter().map(|(_, p)| *p).collect(), kind }
    }
}

impl Generator for Walk {
    fn schema(&self) -> SchemaRef {
        let fields = match self.kind {
            "trade" => vec![
                Field::new("trade_id", DataType::Int64, false),
                Field::new("ticker", DataType::Utf8, false),
                Field::new("price", DataType::Float64, false),
                Field::new("volume", DataType::Int64, false),
                ts_field("trade_ts"),
            ],
            _ => vec![
                Field::new("symbol", DataType::Utf8, false),
                Field::new("price", DataType::Float64, false),
                Field::new("bid", DataType::Float64, false),
                Field::new("ask", DataType::Float64, false),
                ts_field("quote_ts"),
            ],
        };
        Arc::new(Schema::new(fields))
    }

    fn key(&self) -> &'static [&'static str] {
        match self.kind {
            "trade" => &["ticker"],
            _ => &["symbol"],
        }
    }

    fn batch(&mut self, first: u64, n: usize, time_ms: &dyn Fn(u64) -> i64) -> Result<RecordBatch> {
        let (mut ids, mut names, mut prices, mut volumes, mut bids, mut asks, mut times) =
            (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        for i in first..first + n as u64 {
            let k = self.rng.random_range(0..self.names.len());
            // A step of up to 0.2 % either way.
            let price = self.prices[k] * (1.0 + self.rng.random_range(-0.002..0.002));
            self.prices[k] = price;
            let spread = price * 0.0005;
            ids.push(i as i64 + 1);
            names.push(self.names[k].0);
            prices.push(if price > 100.0 { cents(price) } else { (price * 1e5).round() / 1e5 });
            volumes.push(self.rng.random_range(1..=50) * 10);
            bids.push(price - spread);
            asks.push(price + spread);
            times.push(time_ms(i));
        }
        let columns: Vec<ArrayRef> = match self.kind {
            "trade" => vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(names)),
                Arc::new(Float64Array::from(prices)),
                Arc::new(Int64Array::from(volumes)),
                Arc::new(TimestampMillisecondArray::from(times)),
            ],
            _ => vec![
                Arc::new(StringArray::from(names)),
                Arc::new(Float64Array::from(prices)),
                Arc::new(Float64Array::from(bids)),
                Arc::new(Float64Array::from(asks)),
                Arc::new(TimestampMillisecondArray::from(times)),
            ],
        };
        batch(self.schema(), columns)
    }
}

/// Six boats sailing straight lines in the Solent; 5 % of readings are delayed 10-60 s
/// (a flaky uplink), so they arrive after later ones.
struct Boats {
    rng: ChaCha8Rng,
    /// Position (lat, lon) and velocity (degrees per second) per boat.
    boats: Vec<(f64, f64, f64, f64)>,
    /// Readings held back: (event time they are released at, boat, lat, lon, time).
    delayed: VecDeque<(i64, usize, f64, f64, i64)>,
    last_ms: Option<i64>,
}

impl Boats {
    const NAMES: [&'static str; 6] = ["aurora", "borealis", "cormorant", "dolphin", "egret", "falcon"];

    fn new(mut rng: ChaCha8Rng) -> Self {
        let boats = (0..6)
            .map(|_| {
                let speed = rng.random_range(0.00002..0.0001);
                let heading: f64 = rng.random_range(0.0..std::f64::consts::TAU);
                (
                    50.75 + rng.random_range(-0.05..0.05),
                    -1.3 + rng.random_range(-0.1..0.1),
                    speed * heading.cos(),
                    speed * heading.sin(),
                )
            })
            .collect();
        Self { rng, boats, delayed: VecDeque::new(), last_ms: None }
    }
}

impl Generator for Boats {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("boat_id", DataType::Utf8, false),
            Field::new("lat", DataType::Float64, false),
            Field::new("lon", DataType::Float64, false),
            ts_field("reading_ts"),
        ]))
    }

    fn key(&self) -> &'static [&'static str] {
        &["boat_id"]
    }

    fn batch(&mut self, first: u64, n: usize, time_ms: &dyn Fn(u64) -> i64) -> Result<RecordBatch> {
        let (mut ids, mut lats, mut lons, mut times) = (vec![], vec![], vec![], vec![]);
        for i in first..first + n as u64 {
            let now = time_ms(i);
            while self.delayed.front().is_some_and(|d| d.0 <= now) {
                if let Some((_, b, lat, lon, t)) = self.delayed.pop_front() {
                    ids.push(Self::NAMES[b]);
                    lats.push(lat);
                    lons.push(lon);
                    times.push(t);
                }
            }
            let dt = self.last_ms.map_or(0.0, |l| (now - l) as f64 / 1000.0);
            self.last_ms = Some(now);
            for boat in &mut self.boats {
                boat.0 += boat.2 * dt;
                boat.1 += boat.3 * dt;
            }
            let b = (i % 6) as usize;
            let (lat, lon) = ((self.boats[b].0 * 1e6).round() / 1e6, (self.boats[b].1 * 1e6).round() / 1e6);
            if self.rng.random_bool(0.05) {
                let release = now + self.rng.random_range(10_000..=60_000);
                let at = self.delayed.iter().position(|d| d.0 > release).unwrap_or(self.delayed.len());
                self.delayed.insert(at, (release, b, lat, lon, now));
                continue;
            }
            ids.push(Self::NAMES[b]);
            lats.push(lat);
            lons.push(lon);
            times.push(now);
        }
        batch(
            self.schema(),
            vec![
                Arc::new(StringArray::from(ids)),
                Arc::new(Float64Array::from(lats)),
                Arc::new(Float64Array::from(lons)),
                Arc::new(TimestampMillisecondArray::from(times)),
            ],
        )
    }
}

struct Bids {
    rng: ChaCha8Rng,
    price: f64,
}

impl Bids {
    const BIDDERS: &'static [&'static str] =
        &["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "oscar"];
}

impl Generator for Bids {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("price", DataType::Float64, false),
            ts_field("bid_ts"),
        ]))
    }

    fn key(&self) -> &'static [&'static str] {
        &["name"]
    }

    fn batch(&mut self, first: u64, n: usize, time_ms: &dyn Fn(u64) -> i64) -> Result<RecordBatch> {
        let (mut names, mut prices, mut times) = (vec![], vec![], vec![]);
        for i in first..first + n as u64 {
            // Most bids go a little over the last; some are low-ball offers.
            let price = match self.rng.random_bool(0.8) {
                true => self.price + self.rng.random_range(0.5..5.0),
                false => self.price * self.rng.random_range(0.5..0.95),
            };
            self.price = self.price.max(price);
            names.push(Self::BIDDERS[self.rng.random_range(0..Self::BIDDERS.len())]);
            prices.push(cents(price));
            times.push(time_ms(i));
        }
        batch(
            self.schema(),
            vec![
                Arc::new(StringArray::from(names)),
                Arc::new(Float64Array::from(prices)),
                Arc::new(TimestampMillisecondArray::from(times)),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(name: &str, seed: u64, n: usize) -> Vec<String> {
        let mut g = make(name, seed).unwrap();
        let b = g.batch(0, n, &|i| 1_709_287_200_000 + i as i64 * 100).unwrap();
        let options = arrow::util::display::FormatOptions::default();
        let f: Vec<_> = b
            .columns()
            .iter()
            .map(|c| arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        (0..b.num_rows()).map(|r| f.iter().map(|f| f.value(r).to_string()).collect::<Vec<_>>().join("|")).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_events_and_another_seed_others() {
        for (name, _) in EXAMPLES {
            assert_eq!(rows(name, 7, 50), rows(name, 7, 50), "{name}");
            assert_ne!(rows(name, 7, 50), rows(name, 8, 50), "{name}");
        }
        let first = &rows("stock-trades", 7, 1)[0];
        assert!(first.starts_with("1|") && first.ends_with("|2024-03-01T10:00:00"), "{first}");
    }

    #[test]
    fn some_boat_readings_arrive_late() {
        let mut g = make("iot-boats", 1).unwrap();
        let b = g.batch(0, 2000, &|i| i as i64 * 100).unwrap();
        let times = b.column(3).as_any().downcast_ref::<TimestampMillisecondArray>().unwrap();
        let late = (1..times.len()).filter(|i| times.value(*i) < times.value(i - 1) - 10_000).count();
        assert!((20..=200).contains(&late), "{late} late of {}", times.len());
        assert!(b.num_rows() < 2000, "readings still held back at the end are not emitted yet");
    }

    #[test]
    fn hashtags_are_in_the_text() {
        assert!(rows("trending-hashtags", 3, 20).iter().all(|r| r.contains(" #")));
        assert!(make("nope", 1).is_err());
    }
}
