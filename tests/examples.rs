//! The examples of `examples/` end to end, as their READMEs run them: `eddy generate` writes
//! a seeded, bounded input into the real broker (`../shared/scripts/kafka-up`), `eddy serve
//! examples/<name>/<name>-kafka.sql` runs the pipeline (the file's broker, topics, paths and
//! databases swapped for the test's own), and the results are read back over the Postgres
//! protocol with psql, from Kafka, from the files written and from PostgreSQL. Every
//! expected value is computed here from the events read back from the input topic, not
//! taken from Eddy. Each example's Grafana dashboard (`deploy/grafana/<name>.json`) is
//! checked too: every query in it, with Grafana's macros expanded as Grafana would, runs
//! against the server and returns rows.
//!
//! The embedded variants (`examples/<name>/<name>.sql`, reading `eddy generate --to
//! file://` output) run as well, on a smaller input, with a few of their figures checked.

mod example_server;
mod kafka_util;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::NaiveDateTime;
use example_server::{close, example_sql, generate, grafana_ts, num, pg_ts, postgres, Server};
use kafka_util::{broker, consume_all, repo, unique, Rec};
use serde_json::Value as Json;

// ---------------------------------------------------------------------------------------
// Helpers

impl Server {
    /// Late rows dropped, over all jobs (`eddy_job_late_rows_dropped_total` in /metrics).
    fn late_rows(&self) -> f64 {
        self.http_get("/metrics")
            .lines()
            .filter(|l| l.starts_with("eddy_job_late_rows_dropped_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// SHOW JOBS: (name, status, rows in, rows out) per job.
    fn jobs(&self) -> Vec<(String, String, u64, u64)> {
        self.rows("SHOW JOBS")
            .into_iter()
            .map(|r| (r[1].clone(), r[2].clone(), r[3].parse().unwrap_or(0), r[4].parse().unwrap_or(0)))
            .collect()
    }
}

/// The JSON values of every record of `topic`, in partition then offset order, with the
/// partition and offset of each.
fn topic_json(bootstrap: &str, topic: &str) -> Vec<(Rec, Json)> {
    consume_all(bootstrap, topic)
        .into_iter()
        .map(|r| {
            let v = serde_json::from_str(r.value.as_deref().unwrap_or("null")).expect("a JSON record");
            (r, v)
        })
        .collect()
}

/// Milliseconds since the epoch of a Flink JSON timestamp (`2024-03-01 10:00:00.100`).
fn ms(v: &Json) -> i64 {
    let text = v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}"));
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .and_utc()
        .timestamp_millis()
}

/// Every SQL query of `deploy/grafana/<name>.json` (panel targets and query variables) runs
/// against `server` and returns rows, with `$__timeFilter(col)` expanded as Grafana expands
/// it for the PostgreSQL data source over [from, to], and each `$var` replaced by the first
/// value of its variable's query. Returns how many queries ran.
fn check_dashboard(server: &Server, name: &str, from_ms: i64, to_ms: i64) -> usize {
    let path = repo().join("deploy/grafana").join(format!("{name}.json"));
    let dashboard: Json =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("the dashboard is JSON");
    assert!(dashboard["title"].is_string() && dashboard["uid"].is_string(), "{}", path.display());
    let expand = |sql: &str, vars: &[(String, String)]| -> String {
        let mut sql = sql.to_string();
        while let Some(at) = sql.find("$__timeFilter(") {
            let end = at + sql[at..].find(')').expect("$__timeFilter(col)");
            let col = sql[at + "$__timeFilter(".len()..end].trim().to_string();
            let filter = format!("{col} BETWEEN '{}' AND '{}'", grafana_ts(from_ms), grafana_ts(to_ms));
            sql.replace_range(at..=end, &filter);
        }
        assert!(!sql.contains("$__"), "a Grafana macro this test does not expand: {sql}");
        for (var, value) in vars {
            sql = sql.replace(&format!("${{{var}}}"), value).replace(&format!("${var}"), value);
        }
        sql
    };
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut ran = 0;
    for v in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] != "query" {
            continue;
        }
        let sql = v["query"].as_str().or_else(|| v["query"]["rawSql"].as_str()).expect("a variable's query");
        let rows = server.query(&expand(sql, &vars));
        let first = rows.lines().next().unwrap_or_else(|| panic!("variable {}: no rows from {sql}", v["name"]));
        vars.push((v["name"].as_str().unwrap().to_string(), first.to_string()));
        ran += 1;
    }
    let panels = dashboard["panels"].as_array().expect("panels");
    for panel in panels {
        assert_eq!(panel["datasource"]["type"], "grafana-postgresql-datasource", "{}", panel["title"]);
        for target in panel["targets"].as_array().into_iter().flatten() {
            let raw = target["rawSql"].as_str().unwrap_or_else(|| panic!("{}: no rawSql", panel["title"]));
            let sql = expand(raw, &vars);
            let rows = server.query(&sql);
            assert!(!rows.is_empty(), "panel '{}': no rows from\n{sql}", panel["title"]);
            ran += 1;
        }
        if panel["type"] == "timeseries" {
            let raw = panel["targets"][0]["rawSql"].as_str().unwrap_or_default();
            assert!(raw.contains("$__timeFilter("), "time series '{}' is not filtered by time", panel["title"]);
        }
    }
    ran
}

// ---------------------------------------------------------------------------------------
// market-quotes

/// 1,500 quotes (150 s at 10/s) into a one-partition topic, replayed from offset 337: the
/// job reads only the records from there; each symbol's 5-second windows (closed by the
/// watermark, 1 s behind the newest quote) have the averages, extremes and counts computed
/// here; the result table keeps only the last 20 windows; DATE_FORMAT labels the windows.
#[test]
fn market_quotes() {
    let bootstrap = broker();
    let topic = unique("quotes");
    let dir = tempfile::tempdir().unwrap();
    let to = format!("kafka://{bootstrap}/{topic}");
    generate(
        dir.path(),
        &["market-quotes", "--to", &to, "--partitions", "1", "--count", "1500", "--fast", "--seed", "11"]
            .into_iter()
            .chain(["--start", "2024-03-01 10:00:00"])
            .collect::<Vec<_>>(),
    );
    const FROM: usize = 337;
    let group = unique("market-quotes");
    let sql = example_sql(
        "market-quotes",
        "market-quotes-kafka.sql",
        &[
            ("127.0.0.1:9092", bootstrap),
            ("'topic' = 'quotes'", &format!("'topic' = '{topic}'")),
            ("'market-quotes'", &format!("'{group}'")),
            ("partition:0,offset:0", &format!("partition:0,offset:{FROM}")),
        ],
    );
    let server = Server::start(dir.path(), "market-quotes.sql", &sql);

    // The input, from the topic, and what the job must make of it from offset FROM on.
    let records = topic_json(bootstrap, &topic);
    assert_eq!(records.len(), 1500);
    let quotes: Vec<(String, f64, i64)> = records
        .iter()
        .filter(|(r, _)| r.offset as usize >= FROM)
        .map(|(_, v)| (v["symbol"].as_str().unwrap().to_string(), v["price"].as_f64().unwrap(), ms(&v["quote_ts"])))
        .collect();
    let watermark = quotes.iter().map(|q| q.2).max().unwrap() - 1000;
    let mut windows: BTreeMap<(i64, String), Vec<f64>> = BTreeMap::new();
    for (symbol, price, ts) in &quotes {
        windows.entry((ts - ts.rem_euclid(5000), symbol.clone())).or_default().push(*price);
    }
    windows.retain(|(start, _), _| start + 5000 <= watermark);
    let newest = windows.keys().map(|k| k.0).max().unwrap();
    windows.retain(|(start, _), _| *start >= newest - 95_000);
    let starts: BTreeSet<i64> = windows.keys().map(|k| k.0).collect();
    assert_eq!(starts.len(), 20, "the input spans more than 20 windows after the replay point");

    server.wait_for(
        "SELECT count(*), count(DISTINCT window_start), max(window_start) FROM price_5s",
        &format!("{}|20|{}", windows.len(), pg_ts(newest)),
        Duration::from_secs(60),
    );
    let rows = server.rows(
        "SELECT symbol, window_start, window_end, period, avg_price, min_price, max_price, quotes \
         FROM price_5s ORDER BY window_start, symbol",
    );
    assert_eq!(rows.len(), windows.len());
    for (row, ((start, symbol), prices)) in rows.iter().zip(&windows) {
        let label = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).unwrap().format("%H:%M:%S").to_string();
        let expected_head =
            [symbol.clone(), pg_ts(*start), pg_ts(start + 5000), format!("{}-{}", label(*start), label(start + 5000))];
        assert_eq!(row[..4], expected_head, "{row:?}");
        let avg = prices.iter().sum::<f64>() / prices.len() as f64;
        let min = prices.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = prices.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        assert!(close(num(&row[4]), avg), "{row:?}: average {avg}");
        assert_eq!((num(&row[5]), num(&row[6])), (min, max), "{row:?}");
        assert_eq!(row[7], prices.len().to_string(), "{row:?}");
    }
    // The replay started at offset FROM: the job read the records from there, no others.
    let jobs = server.jobs();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].2, (1500 - FROM) as u64, "{jobs:?}");

    let ran = check_dashboard(&server, "market-quotes", newest - 600_000, newest + 600_000);
    assert!(ran >= 4, "{ran} dashboard queries");
    eprintln!(
        "market-quotes: {} quotes read from offset {FROM}, {} window rows kept (20 windows), {ran} dashboard queries",
        quotes.len(),
        windows.len()
    );
}

// ---------------------------------------------------------------------------------------
// iot-boats

/// The haversine distance in meters, as the example writes it in SQL.
fn haversine(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let a = ((lat2 - lat1).to_radians() / 2.0).sin().powi(2)
        + p1.cos() * p2.cos() * ((lon2 - lon1).to_radians() / 2.0).sin().powi(2);
    2.0 * 6371000.0 * a.sqrt().asin()
}

/// 3,000 readings of six boats (300 s at 10/s, from 09:57:30), 5 % of them held back 10-60 s
/// by the generator: those arrive more than 2 s behind the newest reading and are late. The
/// test replays the topic's order to find them, then checks the late count in /metrics, the
/// enriched topic (every on-time reading the watermark has passed, with the distance and
/// speed from the boat's previous on-time reading), each boat's last position, the track
/// table, and the Parquet archive of every raw reading (late ones too) in two hourly
/// directories.
#[test]
fn iot_boats() {
    let bootstrap = broker();
    let (input, output) = (unique("boat-readings"), unique("boat-speeds"));
    let dir = tempfile::tempdir().unwrap();
    let to = format!("kafka://{bootstrap}/{input}");
    let args = ["iot-boats", "--to", &to, "--partitions", "1", "--count", "3000", "--fast", "--seed", "5"];
    generate(dir.path(), &[&args[..], &["--start", "2024-03-01 09:57:30"]].concat());
    let sql = example_sql(
        "iot-boats",
        "iot-boats-kafka.sql",
        &[
            ("127.0.0.1:9092", bootstrap),
            ("'boat-readings'", &format!("'{input}'")),
            ("'boat-speeds'", &format!("'{output}'")),
            ("'iot-boats'", &format!("'{}'", unique("iot-boats"))),
            ("'iot-boats-map'", &format!("'{}'", unique("iot-boats-map"))),
            ("'10 s'", "'1 s'"),
        ],
    );
    let server = Server::start(dir.path(), "iot-boats.sql", &sql);

    // The readings in the order the job reads them; late: at or behind the watermark (2 s
    // behind the newest reading before it).
    struct Reading {
        boat: String,
        lat: f64,
        lon: f64,
        ts: i64,
    }
    let readings: Vec<Reading> = topic_json(bootstrap, &input)
        .into_iter()
        .map(|(_, v)| Reading {
            boat: v["boat_id"].as_str().unwrap().to_string(),
            lat: v["lat"].as_f64().unwrap(),
            lon: v["lon"].as_f64().unwrap(),
            ts: ms(&v["reading_ts"]),
        })
        .collect();
    let mut newest = i64::MIN;
    let mut late = 0;
    let mut on_time: BTreeMap<String, Vec<&Reading>> = BTreeMap::new();
    for r in &readings {
        if newest != i64::MIN && r.ts <= newest - 2000 {
            late += 1;
        } else {
            on_time.entry(r.boat.clone()).or_default().push(r);
        }
        newest = newest.max(r.ts);
    }
    let watermark = newest - 2000;
    assert!(late >= 50 && readings.len() < 3000, "{late} late of {}", readings.len());
    // Per boat in time order, up to the watermark: the boat, the reading, and (meters, knots)
    // from the previous one.
    type Leg<'a> = (String, &'a Reading, Option<(f64, f64)>);
    let mut expected: Vec<Leg> = Vec::new();
    for (boat, rs) in &mut on_time {
        rs.sort_by_key(|r| r.ts);
        for (i, r) in rs.iter().enumerate().filter(|(_, r)| r.ts <= watermark) {
            let leg = (i > 0).then(|| {
                let p = rs[i - 1];
                let meters = haversine(p.lat, p.lon, r.lat, r.lon);
                (meters, meters / (r.ts - p.ts) as f64 * 1000.0 * 3600.0 / 1852.0)
            });
            expected.push((boat.clone(), r, leg));
        }
    }

    // The map's tables: each boat's last position, and the track.
    let last: Vec<String> = on_time
        .iter()
        .map(|(boat, rs)| {
            let r = rs.iter().rfind(|r| r.ts <= watermark).unwrap();
            format!("{boat}|{}|{}|{}", r.lat, r.lon, pg_ts(r.ts))
        })
        .collect();
    assert_eq!(last.len(), 6);
    server.wait_for(
        "SELECT boat_id, lat, lon, reading_ts FROM boat_positions ORDER BY boat_id",
        &last.join("\n"),
        Duration::from_secs(60),
    );
    server.wait_for(
        "SELECT count(*), count(speed_knots) FROM boat_track",
        &format!("{}|{}", expected.len(), expected.len() - 6),
        Duration::from_secs(30),
    );
    let speeds = server.rows("SELECT boat_id, speed_knots FROM boat_positions ORDER BY boat_id");
    for (row, (boat, rs)) in speeds.iter().zip(&on_time) {
        let want = expected.iter().rev().find(|e| &e.0 == boat).and_then(|e| e.2).unwrap().1;
        assert!(close(num(&row[1]), want) && row[0] == *boat, "{row:?}: {want} knots ({} readings)", rs.len());
    }

    // The enriched topic: every expected row, with its distance and speed.
    let got = server.wait("the enriched topic", Duration::from_secs(30), || {
        let got = topic_json(bootstrap, &output);
        (got.len() >= expected.len()).then_some(got)
    });
    assert_eq!(got.len(), expected.len());
    let mut by_key: HashMap<(String, i64), &Json> = HashMap::new();
    for (_, v) in &got {
        by_key.insert((v["boat_id"].as_str().unwrap().to_string(), ms(&v["reading_ts"])), v);
    }
    for (boat, r, leg) in &expected {
        let v = by_key.get(&(boat.clone(), r.ts)).unwrap_or_else(|| panic!("{boat} at {} missing", pg_ts(r.ts)));
        assert_eq!((v["lat"].as_f64(), v["lon"].as_f64()), (Some(r.lat), Some(r.lon)), "{v}");
        match leg {
            None => assert!(v["meters"].is_null() && v["speed_knots"].is_null(), "{v}"),
            Some((meters, knots)) => {
                assert!(close(v["meters"].as_f64().unwrap(), *meters), "{v}: {meters} m");
                assert!(close(v["speed_knots"].as_f64().unwrap(), *knots), "{v}: {knots} knots");
            }
        }
    }

    // The late readings, counted in /metrics by the operator that dropped them.
    let metrics = server.http_get("/metrics");
    assert_eq!(server.late_rows(), late as f64, "{metrics}");
    let over = metrics.lines().find(|l| l.starts_with("eddy_operator_late_rows_dropped_total{") && l.contains("Over"));
    assert!(over.is_some_and(|l| l.ends_with(&format!(" {late}"))), "{metrics}");

    // The archive: every raw reading, one directory per hour.
    let mut per_hour: BTreeMap<String, usize> = BTreeMap::new();
    for r in &readings {
        let t = chrono::DateTime::from_timestamp_millis(r.ts).unwrap();
        *per_hour.entry(t.format("%Y-%m-%d|%H").to_string()).or_default() += 1;
    }
    let expected_archive: Vec<String> = per_hour.iter().map(|(k, n)| format!("{k}|{n}")).collect();
    assert_eq!(expected_archive.len(), 2, "{expected_archive:?}");
    server.wait_for(
        "SELECT dt, hr, count(*) FROM readings_archive GROUP BY dt, hr ORDER BY dt, hr",
        &expected_archive.join("\n"),
        Duration::from_secs(30),
    );
    for hour in ["09", "10"] {
        let d = dir.path().join(format!("data/boat-archive/dt=2024-03-01/hr={hour}"));
        let parts = std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        assert!(parts.flatten().any(|p| p.file_name().to_string_lossy().starts_with("part-")), "{}", d.display());
    }
    assert_eq!(
        server.query("SELECT count(*) FROM readings_archive WHERE reading_ts < '2024-03-01 09:58:00'"),
        readings.iter().filter(|r| r.ts < 1_709_287_080_000).count().to_string()
    );

    let ran = check_dashboard(&server, "iot-boats", newest - 3_600_000, newest + 60_000);
    assert!(ran >= 4, "{ran} dashboard queries");
    eprintln!(
        "iot-boats: {} readings, {late} late, {} enriched, archive {expected_archive:?}, {ran} dashboard queries",
        readings.len(),
        expected.len()
    );
}

// ---------------------------------------------------------------------------------------
// auction-bids

/// `tests/support/schema_registry.py` on a free port, killed when dropped.
struct Registry {
    child: Child,
    url: String,
}

impl Registry {
    fn start() -> Self {
        use std::io::BufRead;
        let mut child = Command::new("python3")
            .arg(repo().join("tests/support/schema_registry.py"))
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start tests/support/schema_registry.py (needs python3)");
        let mut url = None;
        for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            if let Some(u) = line.strip_prefix("listening on ") {
                url = Some(u.trim().to_string());
            }
            if line.trim() == "ready" {
                break;
            }
        }
        Self { url: url.expect("the registry's address"), child }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bid as read from the topic: Confluent framing (magic 0, schema id), then the Avro
/// record `{name: string, price: double, bid_ts: timestamp-millis}`.
#[derive(Debug, Clone, PartialEq)]
struct Bid {
    partition: i32,
    offset: i64,
    name: String,
    price: f64,
    ts: i64,
}

/// Avro's `long`: a zig-zag varint at `at`.
fn avro_long(bytes: &[u8], at: &mut usize) -> i64 {
    let (mut z, mut shift) = (0u64, 0);
    loop {
        let b = bytes[*at];
        *at += 1;
        z |= u64::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return ((z >> 1) as i64) ^ -((z & 1) as i64);
        }
    }
}

fn decode_bid(partition: i32, offset: i64, bytes: &[u8]) -> Bid {
    assert_eq!(bytes[0], 0, "Confluent magic byte");
    let mut at = 5;
    let len = avro_long(bytes, &mut at) as usize;
    let name = String::from_utf8(bytes[at..at + len].to_vec()).unwrap();
    at += len;
    let price = f64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    at += 8;
    let ts = avro_long(bytes, &mut at);
    assert_eq!(at, bytes.len(), "one record");
    Bid { partition, offset, name, price, ts }
}

/// 2,000 Avro bids (schema registry) over two partitions, two tasks: every bid once in
/// PostgreSQL, in the result table and in the JSON backup (written by both tasks), each
/// bidder's count, highest and latest bid, and the highest bid overall, all computed here
/// from the records decoded by hand.
#[test]
fn auction_bids() {
    let bootstrap = broker();
    let registry = Registry::start();
    let topic = unique("bids");
    let table = format!("auction_bids_{}", std::process::id());
    postgres(&format!(
        "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (bid_partition INT, bid_offset BIGINT, name TEXT, \
         price DOUBLE PRECISION, bid_ts TIMESTAMP(3), PRIMARY KEY (bid_partition, bid_offset))"
    ));
    let dir = tempfile::tempdir().unwrap();
    let to = format!("kafka://{bootstrap}/{topic}");
    let args = ["auction-bids", "--to", &to, "--partitions", "2", "--count", "2000", "--fast", "--seed", "3"];
    let avro = ["--format", "avro-confluent", "--registry", &registry.url, "--start", "2024-03-01 23:58:00"];
    generate(dir.path(), &[&args[..], &avro[..]].concat());
    let sql = example_sql(
        "auction-bids",
        "auction-bids-kafka.sql",
        &[
            ("127.0.0.1:9092", bootstrap),
            ("'topic' = 'bids'", &format!("'topic' = '{topic}'")),
            ("'auction-bids'", &format!("'{}'", unique("auction-bids"))),
            ("http://127.0.0.1:8081", &registry.url),
            ("127.0.0.1:5432/postgres", "127.0.0.1:5432/test"),
            ("'table-name' = 'auction_bids'", &format!("'table-name' = '{table}'")),
            ("'10 s'", "'1 s'"),
        ],
    );
    let server = Server::start(dir.path(), "auction-bids.sql", &sql);

    let bids: Vec<Bid> = kafka_util::consume_all_bytes(bootstrap, &topic)
        .into_iter()
        .map(|r| decode_bid(r.partition, r.offset, r.value.as_deref().expect("a value")))
        .collect();
    assert_eq!(bids.len(), 2000);
    assert!(bids.iter().any(|b| b.partition == 0) && bids.iter().any(|b| b.partition == 1));

    // The result table: every bid once.
    let sum: f64 = bids.iter().map(|b| b.price).sum();
    server.wait_for("SELECT count(*), count(DISTINCT name) FROM all_bids", "2000|12", Duration::from_secs(60));
    let rows = server.rows("SELECT bid_partition, bid_offset, name, price, bid_ts FROM all_bids ORDER BY 1, 2");
    for (row, b) in rows.iter().zip(&bids) {
        let want = [b.partition.to_string(), b.offset.to_string(), b.name.clone()];
        assert_eq!(row[..3], want, "{row:?}");
        assert_eq!((num(&row[3]), row[4].as_str()), (b.price, pg_ts(b.ts).as_str()), "{row:?}");
    }
    assert!(close(num(&server.query("SELECT sum(price) FROM all_bids")), sum));

    // Bids per bidder, and the highest bid so far.
    let mut per_bidder: BTreeMap<&str, (usize, f64, i64)> = BTreeMap::new();
    for b in &bids {
        let e = per_bidder.entry(&b.name).or_insert((0, f64::MIN, i64::MIN));
        *e = (e.0 + 1, e.1.max(b.price), e.2.max(b.ts));
    }
    let stats = server.rows("SELECT name, bids, highest, last_bid_ts FROM bidder_stats ORDER BY name");
    assert_eq!(stats.len(), per_bidder.len(), "{stats:?}");
    for (row, (name, (n, highest, last))) in stats.iter().zip(&per_bidder) {
        assert_eq!(
            (row[0].as_str(), row[1].as_str(), num(&row[2]), row[3].as_str()),
            (*name, n.to_string().as_str(), *highest, pg_ts(*last).as_str())
        );
    }
    let top = bids.iter().max_by(|a, b| a.price.total_cmp(&b.price)).unwrap();
    let highest = server.rows("SELECT name, highest FROM bidder_stats ORDER BY highest DESC LIMIT 1");
    assert_eq!((highest[0][0].as_str(), num(&highest[0][1])), (top.name.as_str(), top.price));

    // PostgreSQL, through the jdbc sink: the same bids.
    let pg_rows = server.wait("the bids in PostgreSQL", Duration::from_secs(30), || {
        let n = postgres(&format!("SELECT count(*) FROM {table}"));
        (n == "2000").then(|| {
            postgres(&format!(
                "SELECT bid_partition, bid_offset, name, price, (extract(epoch FROM bid_ts) * 1000)::bigint \
                 FROM {table} ORDER BY 1, 2"
            ))
        })
    });
    for (line, b) in pg_rows.lines().zip(&bids) {
        let f: Vec<&str> = line.split('|').collect();
        let want = [b.partition.to_string(), b.offset.to_string(), b.name.clone(), b.ts.to_string()];
        assert_eq!([f[0], f[1], f[2], f[4]], want.each_ref().map(String::as_str), "{line}");
        assert_eq!(num(f[3]), b.price, "{line}");
    }
    postgres(&format!("DROP TABLE {table}"));

    // The JSON backup: every raw bid, one directory per day, written by both tasks.
    let backup = dir.path().join("data/bids-backup");
    let (lines, files) = server.wait("the JSON backup", Duration::from_secs(30), || {
        let mut lines = Vec::new();
        let mut files = Vec::new();
        for day in std::fs::read_dir(&backup).ok()?.flatten() {
            for f in std::fs::read_dir(day.path()).ok()?.flatten() {
                let name = f.file_name().to_string_lossy().to_string();
                if !name.starts_with('.') {
                    let text = std::fs::read_to_string(f.path()).ok()?;
                    lines.extend(text.lines().map(|l| (day.file_name().to_string_lossy().to_string(), l.to_string())));
                    files.push(name);
                }
            }
        }
        (lines.len() >= 2000).then_some((lines, files))
    });
    assert_eq!(lines.len(), 2000);
    let mut backed_up: Vec<Bid> = lines
        .iter()
        .map(|(day, l)| {
            let v: Json = serde_json::from_str(l).unwrap();
            let ts = ms(&v["bid_ts"]);
            let want_day = chrono::DateTime::from_timestamp_millis(ts).unwrap().format("dt=%Y-%m-%d").to_string();
            assert_eq!(*day, want_day, "{l}");
            Bid {
                partition: v["bid_partition"].as_i64().unwrap() as i32,
                offset: v["bid_offset"].as_i64().unwrap(),
                name: v["name"].as_str().unwrap().to_string(),
                price: v["price"].as_f64().unwrap(),
                ts,
            }
        })
        .collect();
    backed_up.sort_by_key(|b| (b.partition, b.offset));
    assert_eq!(backed_up, bids);
    let days: BTreeSet<&str> = lines.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(days.len(), 2, "the bids span midnight: {days:?}");
    // part-<uuid>-<subtask>-<n>: both tasks wrote.
    let subtasks: BTreeSet<&str> = files.iter().filter_map(|f| f.rsplit('-').nth(1)).collect();
    assert_eq!(subtasks, BTreeSet::from(["0", "1"]), "{files:?}");
    // Each task read its partition to the end.
    let metrics = server.http_get("/metrics");
    let lags: Vec<&str> = metrics.lines().filter(|l| l.starts_with("eddy_kafka_consumer_lag{")).collect();
    assert_eq!(lags.len(), 2, "{metrics}");
    assert!(lags.iter().all(|l| l.ends_with(" 0")), "{lags:?}");

    let first = bids.iter().map(|b| b.ts).min().unwrap();
    let ran = check_dashboard(&server, "auction-bids", first - 60_000, first + 3_600_000);
    assert!(ran >= 4, "{ran} dashboard queries");
    eprintln!(
        "auction-bids: 2000 bids, highest {} by {}, {} backup files by tasks {subtasks:?}, {ran} dashboard queries",
        top.price,
        top.name,
        files.len()
    );
}

// ---------------------------------------------------------------------------------------
// trending-hashtags

/// The hashtags of a post's text, as `REGEXP_EXTRACT_ALL(text, '#(\w+)', 1)` finds them,
/// lower-cased.
fn hashtags(text: &str) -> Vec<String> {
    let mut tags = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('#') {
        let tag: String = rest[at + 1..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        rest = &rest[at + 1 + tag.len()..];
        if !tag.is_empty() {
            tags.push(tag.to_lowercase());
        }
    }
    tags
}

/// Mentions per (window_start, tag) of 2-minute windows sliding by 20 s, for the windows
/// that end at or before `watermark`.
fn hop_counts(mentions: &[(String, i64)], watermark: i64) -> BTreeMap<(i64, String), u64> {
    let mut counts = BTreeMap::new();
    for (tag, ts) in mentions {
        let last = ts - ts.rem_euclid(20_000);
        for k in 0..6 {
            let start = last - k * 20_000;
            if start + 120_000 <= watermark {
                *counts.entry((start, tag.clone())).or_insert(0) += 1;
            }
        }
    }
    counts
}

/// The top 10 of each window: (window_start, ranking, tag, mentions), by mentions then tag.
fn top10(counts: &BTreeMap<(i64, String), u64>) -> Vec<(i64, usize, String, u64)> {
    let mut by_window: BTreeMap<i64, Vec<(u64, String)>> = BTreeMap::new();
    for ((start, tag), n) in counts {
        by_window.entry(*start).or_default().push((*n, tag.clone()));
    }
    let mut out = Vec::new();
    for (start, mut tags) in by_window {
        tags.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        out.extend(tags.into_iter().take(10).enumerate().map(|(i, (n, tag))| (start, i + 1, tag, n)));
    }
    out
}

/// 3,000 posts (300 s at 10/s, from 09:58), their hashtags through a topic of their own:
/// every tag's mentions per 2-minute window sliding by 20 s, and the top 10 of each window in
/// a result table and in hourly Parquet directories, all computed here from the posts. Then
/// 120 posts 150 s behind the newest: they update the counts of the six windows they fall in
/// (5 minutes of allowed lateness), while the on-time top 10s stay as they were.
#[test]
fn trending_hashtags() {
    let bootstrap = broker();
    let (posts_topic, tags_topic) = (unique("posts"), unique("post-tags"));
    let dir = tempfile::tempdir().unwrap();
    let to = format!("kafka://{bootstrap}/{posts_topic}");
    let args = ["trending-hashtags", "--to", &to, "--partitions", "1", "--count", "3000", "--fast", "--seed", "8"];
    generate(dir.path(), &[&args[..], &["--start", "2024-03-01 09:58:00"]].concat());
    let sql = example_sql(
        "trending-hashtags",
        "trending-hashtags-kafka.sql",
        &[
            ("127.0.0.1:9092", bootstrap),
            ("'topic' = 'posts'", &format!("'topic' = '{posts_topic}'")),
            ("'topic' = 'post-tags'", &format!("'topic' = '{tags_topic}'")),
            ("'trending-hashtags'", &format!("'{}'", unique("trending"))),
            ("'trending-hashtags-windows'", &format!("'{}'", unique("trending-windows"))),
            ("'10 s'", "'1 s'"),
        ],
    );
    let server = Server::start(dir.path(), "trending-hashtags.sql", &sql);

    let mut mentions: Vec<(String, i64)> = Vec::new();
    for (_, v) in topic_json(bootstrap, &posts_topic) {
        let ts = ms(&v["created_at"]);
        mentions.extend(hashtags(v["text"].as_str().unwrap()).into_iter().map(|t| (t, ts)));
    }
    let newest = mentions.iter().map(|m| m.1).max().unwrap();
    let watermark = newest - 5000;
    let on_time = hop_counts(&mentions, watermark);
    let rows = |counts: &BTreeMap<(i64, String), u64>| -> String {
        let lines: Vec<String> =
            counts.iter().map(|((s, tag), n)| format!("{}|{}|{tag}|{n}", pg_ts(*s), pg_ts(s + 120_000))).collect();
        lines.join("\n")
    };
    let counts_sql = "SELECT window_start, window_end, tag, mentions FROM tag_counts ORDER BY window_start, tag";
    server.wait_for(counts_sql, &rows(&on_time), Duration::from_secs(60));

    // The top 10s, in the result table and in the Parquet archive.
    let top = top10(&on_time);
    let top_rows: Vec<String> =
        top.iter().map(|(s, rank, tag, n)| format!("{}|{}|{rank}|{tag}|{n}", pg_ts(*s), pg_ts(s + 120_000))).collect();
    server.wait_for(
        "SELECT window_start, window_end, ranking, tag, mentions FROM top_hashtags ORDER BY window_start, ranking",
        &top_rows.join("\n"),
        Duration::from_secs(30),
    );
    let archived: Vec<String> = top
        .iter()
        .map(|(s, rank, tag, n)| {
            let t = chrono::DateTime::from_timestamp_millis(*s).unwrap();
            format!("{}|{}|{rank}|{tag}|{n}", t.format("%Y-%m-%d|%H"), pg_ts(*s))
        })
        .collect();
    server.wait_for(
        "SELECT dt, hr, window_start, ranking, tag, mentions FROM trending_archive ORDER BY window_start, ranking",
        &archived.join("\n"),
        Duration::from_secs(30),
    );
    for hour in ["09", "10"] {
        let d = dir.path().join(format!("data/trending/dt=2024-03-01/hr={hour}"));
        assert!(std::fs::read_dir(&d).is_ok_and(|mut e| e.next().is_some()), "{} is empty", d.display());
    }

    // Late posts: the windows they fall in are updated; the top 10s were final.
    let late_ts = newest - 150_000;
    let late_time = chrono::DateTime::from_timestamp_millis(late_ts).unwrap().format("%Y-%m-%d %H:%M:%S%.3f");
    let late: Vec<Rec> = (0..120)
        .map(|i| {
            Rec::value(&format!(
                r#"{{"post_id":{},"user_name":"late","text":"catching up on #Eddy and #rust","created_at":"{late_time}"}}"#,
                100_000 + i
            ))
        })
        .collect();
    kafka_util::produce(bootstrap, &posts_topic, &late);
    for _ in 0..120 {
        mentions.push(("eddy".into(), late_ts));
        mentions.push(("rust".into(), late_ts));
    }
    let updated = hop_counts(&mentions, watermark);
    let changed = updated.iter().filter(|(k, n)| on_time.get(*k) != Some(*n)).count();
    assert_eq!(changed, 12, "six windows, two tags each");
    server.wait_for(counts_sql, &rows(&updated), Duration::from_secs(30));
    // The top 10 of the latest updated window, as the README queries it: #eddy is in it.
    let updated_window = late_ts - late_ts.rem_euclid(20_000);
    let top_now = server.rows(&format!(
        "SELECT tag, mentions FROM (SELECT tag, mentions, ROW_NUMBER() OVER (PARTITION BY window_start \
         ORDER BY mentions DESC, tag) AS ranking FROM tag_counts WHERE window_start = '{}') t \
         WHERE ranking <= 10 ORDER BY ranking",
        pg_ts(updated_window)
    ));
    let window: BTreeMap<(i64, String), u64> =
        updated.iter().filter(|((s, _), _)| *s == updated_window).map(|(k, n)| (k.clone(), *n)).collect();
    let expected_now = top10(&window);
    assert_eq!(top_now, expected_now.iter().map(|(_, _, tag, n)| vec![tag.clone(), n.to_string()]).collect::<Vec<_>>());
    assert!(top_now.contains(&vec!["eddy".to_string(), "120".to_string()]), "{top_now:?}");
    assert_eq!(server.query("SELECT count(*) FROM top_hashtags WHERE tag = 'eddy'"), "0");
    assert_eq!(server.query("SELECT count(*) FROM trending_archive WHERE tag = 'eddy'"), "0");

    let ran = check_dashboard(&server, "trending-hashtags", newest - 3_600_000, newest + 60_000);
    assert!(ran >= 4, "{ran} dashboard queries");
    eprintln!(
        "trending-hashtags: {} mentions, {} (window, tag) counts, {} top-10 rows, {changed} counts updated late, {ran} dashboard queries",
        mentions.len(),
        updated.len(),
        top.len()
    );
}

// ---------------------------------------------------------------------------------------
// The embedded variants: the README's two commands (a smaller input, a fixed start)

/// `eddy generate <example> --to file://data/<dir>` in `dir`, and the events it wrote, in
/// the order written.
fn generate_files(dir: &Path, example: &str, to: &str, count: &str, seed: &str) -> Vec<Json> {
    let target = format!("file://data/{to}");
    let args = [example, "--to", &target, "--count", count, "--fast", "--seed", seed, "--start", "2024-03-01 09:58:00"];
    generate(dir, &args);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("data").join(to))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    files.sort();
    assert_eq!(files.len(), 1, "{files:?}");
    std::fs::read_to_string(&files[0]).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The file source ends: the watermark passes every window, so all 300 s of quotes count
/// and the table keeps the last 20 windows.
#[test]
fn market_quotes_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let quotes = generate_files(dir.path(), "market-quotes", "quotes", "3000", "12");
    let sql = example_sql("market-quotes", "market-quotes.sql", &[]);
    let server = Server::start(dir.path(), "market-quotes.sql", &sql);
    let mut windows: BTreeMap<(i64, String), (f64, usize)> = BTreeMap::new();
    for q in &quotes {
        let ts = ms(&q["quote_ts"]);
        let e = windows.entry((ts - ts.rem_euclid(5000), q["symbol"].as_str().unwrap().to_string())).or_default();
        *e = (e.0 + q["price"].as_f64().unwrap(), e.1 + 1);
    }
    let newest = windows.keys().map(|k| k.0).max().unwrap();
    windows.retain(|(start, _), _| *start >= newest - 95_000);
    server.wait_for(
        "SELECT count(*), count(DISTINCT window_start), max(window_start) FROM price_5s",
        &format!("{}|20|{}", windows.len(), pg_ts(newest)),
        Duration::from_secs(60),
    );
    let rows =
        server.rows("SELECT window_start, symbol, avg_price, quotes FROM price_5s ORDER BY window_start, symbol");
    for (row, ((start, symbol), (sum, n))) in rows.iter().zip(&windows) {
        assert_eq!(
            [row[0].as_str(), row[1].as_str(), row[3].as_str()],
            [pg_ts(*start).as_str(), symbol, &n.to_string()]
        );
        assert!(close(num(&row[2]), sum / *n as f64), "{row:?}");
    }
    check_dashboard(&server, "market-quotes", newest - 600_000, newest + 600_000);
}

/// The readings in the file's order: the late ones counted once, each boat's last on-time
/// position (the file's end lets the watermark pass them all), the Parquet archive.
#[test]
fn iot_boats_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let readings = generate_files(dir.path(), "iot-boats", "boat-readings", "3000", "6");
    let sql = example_sql("iot-boats", "iot-boats.sql", &[]);
    let server = Server::start(dir.path(), "iot-boats.sql", &sql);
    let (mut newest, mut late) = (i64::MIN, 0);
    let mut last: BTreeMap<&str, (i64, f64, f64)> = BTreeMap::new();
    for r in &readings {
        let ts = ms(&r["reading_ts"]);
        if newest != i64::MIN && ts <= newest - 2000 {
            late += 1;
        } else {
            let e = last.entry(r["boat_id"].as_str().unwrap()).or_insert((i64::MIN, 0.0, 0.0));
            if ts > e.0 {
                *e = (ts, r["lat"].as_f64().unwrap(), r["lon"].as_f64().unwrap());
            }
        }
        newest = newest.max(ts);
    }
    let expected: Vec<String> =
        last.iter().map(|(boat, (ts, lat, lon))| format!("{boat}|{lat}|{lon}|{}", pg_ts(*ts))).collect();
    server.wait_for(
        "SELECT boat_id, lat, lon, reading_ts FROM boat_positions ORDER BY boat_id",
        &expected.join("\n"),
        Duration::from_secs(60),
    );
    let late_total = server
        .wait("the late readings' count", Duration::from_secs(30), || Some(server.late_rows()).filter(|n| *n > 0.0));
    assert_eq!(late_total, late as f64);
    server.wait_for("SELECT count(*) FROM readings_archive", &readings.len().to_string(), Duration::from_secs(30));
    check_dashboard(&server, "iot-boats", newest - 3_600_000, newest + 60_000);
}

/// Every bid in the result table and the backup; bids per bidder and the highest bid.
#[test]
fn auction_bids_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let bids = generate_files(dir.path(), "auction-bids", "bids", "2000", "4");
    let sql = example_sql("auction-bids", "auction-bids.sql", &[]);
    let server = Server::start(dir.path(), "auction-bids.sql", &sql);
    let mut per_bidder: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
    for b in &bids {
        let e = per_bidder.entry(b["name"].as_str().unwrap()).or_insert((0, f64::MIN));
        *e = (e.0 + 1, e.1.max(b["price"].as_f64().unwrap()));
    }
    let expected: Vec<String> = per_bidder.iter().map(|(name, (n, max))| format!("{name}|{n}|{max}")).collect();
    server.wait_for(
        "SELECT name, bids, highest FROM bidder_stats ORDER BY name",
        &expected.join("\n"),
        Duration::from_secs(60),
    );
    server.wait_for("SELECT count(*) FROM all_bids", "2000", Duration::from_secs(30));
    let backup = server.wait("the JSON backup", Duration::from_secs(30), || {
        let text = kafka_util::read_dir_text(&dir.path().join("data/bids-backup"));
        (text.lines().count() >= 2000).then_some(text)
    });
    assert_eq!(backup.lines().count(), 2000);
    let first = bids.iter().map(|b| ms(&b["bid_ts"])).min().unwrap();
    check_dashboard(&server, "auction-bids", first - 60_000, first + 3_600_000);
}

/// The hashtags through the result table `post_tags`: every tag's count per window and the
/// top 10s, as in the Kafka variant.
#[test]
fn trending_hashtags_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let posts = generate_files(dir.path(), "trending-hashtags", "posts", "3000", "9");
    let sql = example_sql("trending-hashtags", "trending-hashtags.sql", &[]);
    let server = Server::start(dir.path(), "trending-hashtags.sql", &sql);
    let mut mentions = Vec::new();
    for p in &posts {
        let ts = ms(&p["created_at"]);
        mentions.extend(hashtags(p["text"].as_str().unwrap()).into_iter().map(|t| (t, ts)));
    }
    let newest = mentions.iter().map(|m| m.1).max().unwrap();
    let counts = hop_counts(&mentions, newest - 5000);
    let lines: Vec<String> = counts.iter().map(|((s, tag), n)| format!("{}|{tag}|{n}", pg_ts(*s))).collect();
    server.wait_for(
        "SELECT window_start, tag, mentions FROM tag_counts ORDER BY window_start, tag",
        &lines.join("\n"),
        Duration::from_secs(60),
    );
    let top: Vec<String> = top10(&counts).iter().map(|(s, r, tag, n)| format!("{}|{r}|{tag}|{n}", pg_ts(*s))).collect();
    server.wait_for(
        "SELECT window_start, ranking, tag, mentions FROM top_hashtags ORDER BY window_start, ranking",
        &top.join("\n"),
        Duration::from_secs(30),
    );
    check_dashboard(&server, "trending-hashtags", newest - 3_600_000, newest + 60_000);
}
