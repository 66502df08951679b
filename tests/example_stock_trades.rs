//! `examples/stock-trades` end to end, as its README runs it: `eddy generate stock-trades`
//! writes a seeded, bounded input into the real broker (`../shared/scripts/kafka-up`) and,
//! with the same seed, a copy of it into files; `eddy serve
//! examples/stock-trades/stock-trades-kafka.sql` runs the pipeline (the file's broker, topic,
//! PostgreSQL database and table swapped for the test's own, the retention shortened and
//! checkpoints taken every second); the results are read back over the Postgres protocol
//! with psql and from the machine's PostgreSQL, then again after a restart. Every
//! expected value is computed here from the file copy and `companies.csv`, not taken from
//! Eddy. Every query of the dashboard (`deploy/grafana/stock-trades.json`), with Grafana's
//! macros expanded as Grafana would, runs against the server and returns rows.
//!
//! The embedded variant (`stock-trades.sql`, reading `eddy generate --to file://` output)
//! runs too, on a smaller input.

mod example_server;
mod kafka_util;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use chrono::NaiveDateTime;
use example_server::{close, grafana_ts, num, pg_ts, postgres, Server};
use kafka_util::{broker, repo, unique};
use serde_json::Value as Json;

// ---------------------------------------------------------------------------------------
// Helpers

/// `examples/stock-trades/<file>` with each `(from, to)` replaced.
fn example_sql(file: &str, replace: &[(&str, &str)]) -> String {
    example_server::example_sql("stock-trades", file, replace)
}

/// The example's company file, as an absolute path (the SQL names it relative to the
/// repository's root).
fn companies_path() -> String {
    std::fs::canonicalize(repo().join("examples/stock-trades/companies.csv")).unwrap().display().to_string()
}

/// `eddy generate stock-trades <args>` in `dir`.
fn generate(dir: &Path, args: &[&str]) {
    example_server::generate(dir, &[&["stock-trades"][..], args].concat());
}

impl Server {
    /// SHOW JOBS: (id, name, status, rows in) per job, in the order they were submitted.
    fn jobs(&self) -> Vec<(String, String, String, u64)> {
        let mut jobs: Vec<(String, String, String, u64, String)> = self
            .rows("SHOW JOBS")
            .into_iter()
            .map(|r| (r[0].clone(), r[1].clone(), r[2].clone(), r[3].parse().unwrap_or(0), r[7].clone()))
            .collect();
        jobs.sort_by(|a, b| a.4.cmp(&b.4));
        jobs.into_iter().map(|j| (j.0, j.1, j.2, j.3)).collect()
    }
}

/// Drops a PostgreSQL table at the end of the test, however it ends.
struct PgTable(String);

impl Drop for PgTable {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-X", "-q", "-c"])
            .arg(format!("DROP TABLE IF EXISTS {}", self.0))
            .output();
    }
}

/// Deletes a topic at the end of the test (if the broker lets it).
struct Topic(String);

impl Drop for Topic {
    fn drop(&mut self) {
        use rdkafka::admin::{AdminClient, AdminOptions};
        use rdkafka::client::DefaultClientContext;
        let admin: Result<AdminClient<DefaultClientContext>, _> =
            rdkafka::ClientConfig::new().set("bootstrap.servers", broker()).create();
        if let (Ok(admin), Ok(rt)) = (admin, tokio::runtime::Builder::new_current_thread().enable_all().build()) {
            let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));
            let _ = rt.block_on(admin.delete_topics(&[self.0.as_str()], &options));
        }
    }
}

/// A generated trade.
#[derive(Debug, Clone)]
struct Trade {
    id: i64,
    ticker: String,
    price: f64,
    volume: i64,
    ts: i64,
}

/// Milliseconds since the epoch of a Flink JSON timestamp (`2024-03-01 10:00:00.100`).
fn ms(text: &str) -> i64 {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .and_utc()
        .timestamp_millis()
}

/// Every trade `eddy generate --to file://DIR` wrote (JSON lines), by trade_id.
fn trades_in(dir: &Path) -> Vec<Trade> {
    let mut trades = Vec::new();
    for f in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
        if f.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        for line in std::fs::read_to_string(f.path()).unwrap().lines().filter(|l| !l.trim().is_empty()) {
            let v: Json = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            trades.push(Trade {
                id: v["trade_id"].as_i64().unwrap(),
                ticker: v["ticker"].as_str().unwrap().to_string(),
                price: v["price"].as_f64().unwrap(),
                volume: v["volume"].as_i64().unwrap(),
                ts: ms(v["trade_ts"].as_str().unwrap()),
            });
        }
    }
    trades.sort_by_key(|t| t.id);
    trades
}

/// A company of `companies.csv`.
#[derive(Debug, Clone)]
struct Company {
    name: String,
    sector: String,
    shares: i64,
}

/// `companies.csv` by ticker (`#` lines are comments).
fn companies() -> BTreeMap<String, Company> {
    let text = std::fs::read_to_string(repo().join("examples/stock-trades/companies.csv")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 4, "{l}");
            let company = Company { name: f[1].to_string(), sector: f[2].to_string(), shares: f[3].parse().unwrap() };
            (f[0].to_string(), company)
        })
        .collect()
}

fn pg_date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap().naive_utc().format("%Y-%m-%d").to_string()
}

const MINUTE: i64 = 60_000;
const DAY: i64 = 86_400_000;

/// Each sector's (volume, trades) per 1-minute window start, for the windows the watermark
/// `wm` has closed (Flink fires a window once `window_end - 1 <= watermark`).
fn sector_minutes(
    trades: &[Trade],
    companies: &BTreeMap<String, Company>,
    wm: i64,
) -> BTreeMap<(i64, String), (i64, i64)> {
    let mut out: BTreeMap<(i64, String), (i64, i64)> = BTreeMap::new();
    for t in trades {
        let start = t.ts - t.ts.rem_euclid(MINUTE);
        if start + MINUTE - 1 <= wm {
            let e = out.entry((start, companies[&t.ticker].sector.clone())).or_default();
            *e = (e.0 + t.volume, e.1 + 1);
        }
    }
    out
}

/// `volume_today`'s rows for watermark `wm`: per ticker, the last CUMULATE step (1-minute
/// steps of a day from midnight) the watermark closed that holds a trade of it, which
/// replaced the steps before it: (trade date, volume, trades, as_of = the step's end).
fn volume_today(trades: &[Trade], wm: i64) -> BTreeMap<String, (String, i64, i64, i64)> {
    // Steps that end at or before `closed` have fired (`window_end - 1 <= watermark`).
    let closed = (wm + 1) - (wm + 1).rem_euclid(MINUTE);
    let mut out = BTreeMap::new();
    let tickers: std::collections::BTreeSet<&str> = trades.iter().map(|t| t.ticker.as_str()).collect();
    for ticker in tickers {
        let mine: Vec<&Trade> = trades.iter().filter(|t| t.ticker == ticker).collect();
        let Some(latest) = mine.iter().filter(|t| t.ts < closed).map(|t| t.ts).max() else { continue };
        let day = latest - latest.rem_euclid(DAY);
        let end = closed.min(day + DAY);
        let (volume, n) =
            mine.iter().filter(|t| t.ts >= day && t.ts < end).fold((0, 0), |a, t| (a.0 + t.volume, a.1 + 1));
        out.insert(ticker.to_string(), (pg_date(day), volume, n, end));
    }
    out
}

/// Every SQL query of `deploy/grafana/stock-trades.json` (query variables, then every
/// panel's targets) runs against `server` and returns rows, with `$__timeFilter(col)`
/// expanded as Grafana expands it for the PostgreSQL data source over [from, to] and each
/// `$var` replaced by the first value of its variable's query. Returns how many ran.
fn check_dashboard(server: &Server, from_ms: i64, to_ms: i64) -> usize {
    let path = repo().join("deploy/grafana/stock-trades.json");
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
        assert!(!sql.contains('$'), "a variable this test does not know: {sql}");
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
    let mut time_series = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        assert_eq!(panel["datasource"]["type"], "grafana-postgresql-datasource", "{}", panel["title"]);
        let targets = panel["targets"].as_array().unwrap_or_else(|| panic!("{}: no targets", panel["title"]));
        for target in targets {
            let raw = target["rawSql"].as_str().unwrap_or_else(|| panic!("{}: no rawSql", panel["title"]));
            if panel["type"] == "timeseries" {
                assert!(raw.contains("$__timeFilter("), "time series '{}' is not filtered by time", panel["title"]);
                time_series += 1;
            }
            let sql = expand(raw, &vars);
            let rows = server.query(&sql);
            assert!(!rows.is_empty(), "panel '{}': no rows from\n{sql}", panel["title"]);
            ran += 1;
        }
    }
    assert!(time_series >= 3, "{time_series} time series");
    ran
}

// ---------------------------------------------------------------------------------------
// Kafka and PostgreSQL

/// What the Kafka variant must end with, computed from the trades and the companies.
struct Expected {
    /// `sector_volume`, ordered by window_start, sector.
    sector_volume: String,
    /// `volume_today`, ordered by ticker.
    volume_today: String,
    /// The trades `raw_trades` and `market_caps` keep (2 minutes behind the newest).
    kept: Vec<Trade>,
}

/// What the jobs must make of `trades` (in order, one partition, so the watermark is 1 s
/// behind the newest trade): each sector's volume per closed minute, each ticker's volume
/// since midnight as of the last closed minute, the trades within 2 minutes of the newest.
fn expected_results(trades: &[Trade], companies: &BTreeMap<String, Company>) -> Expected {
    let newest = trades.iter().map(|t| t.ts).max().unwrap();
    let wm = newest - 1000;
    let sector_volume: Vec<String> = sector_minutes(trades, companies, wm)
        .iter()
        .map(|((start, sector), (volume, n))| {
            format!("{sector}|{}|{}|{volume}|{n}", pg_ts(*start), pg_ts(start + MINUTE))
        })
        .collect();
    let volume_today: Vec<String> = volume_today(trades, wm)
        .iter()
        .map(|(ticker, (date, volume, n, as_of))| format!("{ticker}|{date}|{volume}|{n}|{}", pg_ts(*as_of)))
        .collect();
    let kept: Vec<Trade> = trades.iter().filter(|t| t.ts >= newest - 2 * MINUTE).cloned().collect();
    Expected { sector_volume: sector_volume.join("\n"), volume_today: volume_today.join("\n"), kept }
}

/// Wait until every result table and the PostgreSQL table hold what they must, and check
/// their rows one by one.
fn check_results(
    server: &Server,
    expected: &Expected,
    trades: &[Trade],
    companies: &BTreeMap<String, Company>,
    pg_table: &str,
) {
    server.wait_for(
        "SELECT sector, window_start, window_end, volume, trades FROM sector_volume ORDER BY window_start, sector",
        &expected.sector_volume,
        Duration::from_secs(60),
    );
    server.wait_for(
        "SELECT ticker, trade_date, volume, trades, as_of FROM volume_today ORDER BY ticker",
        &expected.volume_today,
        Duration::from_secs(30),
    );

    // The raw trades and their market caps, within the retention.
    let kept = &expected.kept;
    server.wait_for(
        "SELECT count(*), min(trade_id), max(trade_id), sum(volume) FROM raw_trades",
        &format!(
            "{}|{}|{}|{}",
            kept.len(),
            kept[0].id,
            kept.last().unwrap().id,
            kept.iter().map(|t| t.volume).sum::<i64>()
        ),
        Duration::from_secs(30),
    );
    let raw = server.rows("SELECT trade_id, ticker, price, volume, trade_ts FROM raw_trades ORDER BY trade_id");
    assert_eq!(raw.len(), kept.len());
    for (row, t) in raw.iter().zip(kept) {
        assert_eq!(
            (row[0].as_str(), row[1].as_str(), num(&row[2]), row[3].as_str(), row[4].as_str()),
            (
                t.id.to_string().as_str(),
                t.ticker.as_str(),
                t.price,
                t.volume.to_string().as_str(),
                pg_ts(t.ts).as_str()
            )
        );
    }
    server.wait_for(
        "SELECT count(*), min(trade_id), max(trade_id) FROM market_caps",
        &format!("{}|{}|{}", kept.len(), kept[0].id, kept.last().unwrap().id),
        Duration::from_secs(30),
    );
    let caps = server.rows(
        "SELECT trade_id, ticker, company_name, sector, price, market_cap, trade_ts FROM market_caps ORDER BY trade_id",
    );
    assert_eq!(caps.len(), kept.len());
    for (row, t) in caps.iter().zip(kept) {
        let c = &companies[&t.ticker];
        let cap = t.price * c.shares as f64;
        assert_eq!(
            [&row[0], &row[1], &row[2], &row[3], &row[6]],
            [&t.id.to_string(), &t.ticker, &c.name, &c.sector, &pg_ts(t.ts)],
            "{row:?}"
        );
        assert!(num(&row[4]) == t.price && close(num(&row[5]), cap), "{row:?}: market cap {cap}");
    }

    // PostgreSQL, through the jdbc sink: every trade, retention or not.
    server.wait("the trades in PostgreSQL", Duration::from_secs(30), || {
        (postgres(&format!("SELECT count(*) FROM {pg_table}")) == trades.len().to_string()).then_some(())
    });
    let pg = postgres(&format!(
        "SELECT trade_id, ticker, price, volume, (extract(epoch FROM trade_ts) * 1000)::bigint FROM {pg_table} ORDER BY 1"
    ));
    let pg: Vec<&str> = pg.lines().collect();
    assert_eq!(pg.len(), trades.len());
    for (line, t) in pg.iter().zip(trades) {
        let f: Vec<&str> = line.split('|').collect();
        let want = [t.id.to_string(), t.ticker.clone(), t.volume.to_string(), t.ts.to_string()];
        assert_eq!([f[0], f[1], f[3], f[4]], want.each_ref().map(String::as_str), "{line}");
        assert_eq!(num(f[2]), t.price, "{line}");
    }
    let totals = postgres(&format!("SELECT count(DISTINCT ticker), sum(volume) FROM {pg_table}"));
    assert_eq!(totals, format!("10|{}", trades.iter().map(|t| t.volume).sum::<i64>()));
}

/// 3,000 trades (300 s at 10/s, from 23:57:30, so across midnight) into a one-partition
/// topic and, with the same seed, into files. The jobs must put every trade into PostgreSQL
/// and into `raw_trades` (here kept for 2 minutes of event time instead of an hour, so the
/// retention shows), every trade within the retention with its company and market cap into
/// `market_caps`, each sector's volume per closed minute into `sector_volume`, and each
/// ticker's volume since midnight (the new day's, as of the last closed minute) into
/// `volume_today`. Then the server is stopped and started again: both jobs go on from
/// their checkpoints (the second without reading the company file again), and every table
/// holds the same as before.
#[test]
fn stock_trades_from_kafka_to_postgresql_and_result_tables() {
    let bootstrap = broker();
    let topic = unique("trades");
    let _topic = Topic(topic.clone());
    let table = unique("stock_trades").replace('-', "_");
    let _table = PgTable(table.clone());
    postgres(&format!(
        "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (trade_id BIGINT PRIMARY KEY, ticker TEXT, \
         price DOUBLE PRECISION, volume BIGINT, trade_ts TIMESTAMP(3))"
    ));
    let dir = tempfile::tempdir().unwrap();
    let args = ["--count", "3000", "--fast", "--seed", "21", "--start", "2024-03-01 23:57:30"];
    let to = format!("kafka://{bootstrap}/{topic}");
    generate(dir.path(), &[&["--to", to.as_str(), "--partitions", "1"][..], &args[..]].concat());
    generate(dir.path(), &[&["--to", "file://copy"][..], &args[..]].concat());

    let companies_csv = companies_path();
    let sql = example_sql(
        "stock-trades-kafka.sql",
        &[
            ("127.0.0.1:9092", bootstrap),
            ("'topic' = 'trades'", &format!("'topic' = '{topic}'")),
            ("127.0.0.1:5432/postgres", "127.0.0.1:5432/test"),
            ("'table-name' = 'stock_trades'", &format!("'table-name' = '{table}'")),
            ("'examples/stock-trades/companies.csv'", &format!("'{companies_csv}'")),
            ("'retention' = '1 h'", "'retention' = '2 min'"),
            ("'execution.checkpointing.interval' = '10 s'", "'execution.checkpointing.interval' = '1 s'"),
        ],
    );
    let mut server = Server::start(dir.path(), "stock-trades.sql", &sql);

    // What the jobs must make of the trades: all in order, one partition, so the watermark
    // ends 1 s behind the newest trade.
    let trades = trades_in(&dir.path().join("copy"));
    let companies = companies();
    assert_eq!(trades.len(), 3000);
    assert_eq!(companies.len(), 10);
    assert!(trades.iter().all(|t| companies.contains_key(&t.ticker)), "a ticker without a company");
    let newest = trades.iter().map(|t| t.ts).max().unwrap();
    let first = trades.iter().map(|t| t.ts).min().unwrap();
    let wm = newest - 1000;

    // Each sector's volume per closed minute: 23:57 (half a minute) to 00:01; 00:02 is open.
    let minutes = sector_minutes(&trades, &companies, wm);
    assert_eq!(minutes.len(), 5 * 7, "five closed minutes of seven sectors");
    // Each ticker's volume since midnight: the new day's first two minutes.
    let today = volume_today(&trades, wm);
    assert_eq!(today.len(), 10);
    assert!(today.values().all(|r| r.0 == "2024-03-02" && r.3 == 1_709_337_600_000 + 2 * MINUTE), "{today:?}");
    let since_midnight: i64 = trades.iter().filter(|t| t.ts >= 1_709_337_600_000).map(|t| t.volume).sum();
    assert!(today.values().map(|r| r.1).sum::<i64>() < since_midnight, "the open minute is not counted yet");
    let expected = expected_results(&trades, &companies);
    assert!(expected.kept.len() < trades.len() && expected.kept.len() > 1000, "{}", expected.kept.len());

    check_results(&server, &expected, &trades, &companies, &table);
    let it = minutes.iter().find(|((s, sector), _)| *s == 1_709_337_600_000 && sector == "Information Technology");
    eprintln!("sector_volume: Information Technology 00:00-00:01 {:?}", it.unwrap().1);
    eprintln!("volume_today: {}", expected.volume_today.replace('\n', ", "));
    let last = expected.kept.last().unwrap();
    eprintln!(
        "market_caps: {} rows; trade {} ({} at {}): {}",
        expected.kept.len(),
        last.id,
        last.ticker,
        last.price,
        last.price * companies[&last.ticker].shares as f64
    );

    let ran = check_dashboard(&server, first - MINUTE, newest + MINUTE);
    assert!(ran >= 8, "{ran} dashboard queries");
    eprintln!("dashboard: {ran} queries returned rows");

    // Two jobs; both checkpoint, the second also after its company file was read.
    let jobs = server.jobs();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    let (first_job, second_job) = (jobs[0].0.clone(), jobs[1].0.clone());
    assert!(jobs[0].1.contains("volume_today") && jobs[1].1.contains("market_caps"), "{jobs:?}");
    server.wait("a checkpoint of the first job", Duration::from_secs(30), || {
        server.metric(&format!("eddy_job_checkpoints_completed_total{{job_id=\"{first_job}\"")).filter(|n| *n >= 1.0)
    });
    server.wait("a checkpoint of the second job", Duration::from_secs(30), || {
        server.metric(&format!("eddy_job_checkpoints_completed_total{{job_id=\"{second_job}\"")).filter(|n| *n >= 1.0)
    });

    // Stop the server (as Ctrl-C does) and start it again on its state directory, then add
    // a minute of trades to the topic (600, by hand).
    server.stop();
    let server = Server::start(dir.path(), "stock-trades.sql", &sql);
    let tickers: Vec<&String> = companies.keys().collect();
    let more: Vec<Trade> = (0..600)
        .map(|i| Trade {
            id: 3001 + i,
            ticker: tickers[(i * 7 % 10) as usize].clone(),
            price: 100.0 + (i % 50) as f64 * 0.25,
            volume: 10 * (1 + i % 30),
            ts: newest + 100 * (i + 1),
        })
        .collect();
    let records: Vec<kafka_util::Rec> = more
        .iter()
        .map(|t| {
            let time = chrono::DateTime::from_timestamp_millis(t.ts).unwrap().format("%Y-%m-%d %H:%M:%S%.3f");
            kafka_util::Rec::value(&format!(
                r#"{{"trade_id":{},"ticker":"{}","price":{},"volume":{},"trade_ts":"{time}"}}"#,
                t.id, t.ticker, t.price, t.volume
            ))
            .key(&format!(r#"{{"ticker":"{}"}}"#, t.ticker))
        })
        .collect();
    kafka_util::produce(bootstrap, &topic, &records);
    let trades: Vec<Trade> = trades.into_iter().chain(more).collect();
    let expected = expected_results(&trades, &companies);
    check_results(&server, &expected, &trades, &companies, &table);
    let jobs = server.jobs();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    // Both jobs went on from their checkpoints: the new trades only, the company file not
    // read again (its rows are in the join's state).
    assert_eq!((jobs[0].0.as_str(), jobs[0].3), (first_job.as_str(), 600), "{jobs:?}");
    assert_eq!((jobs[1].0.as_str(), jobs[1].3), (second_job.as_str(), 600), "{jobs:?}");
    eprintln!(
        "after the restart and 600 more trades: {jobs:?}; volume_today: {}",
        expected.volume_today.replace('\n', ", ")
    );
}

// ---------------------------------------------------------------------------------------
// Embedded

/// The README's two commands: 1,500 generated trades in files (2.5 minutes from 10:00),
/// served with `stock-trades.sql`. The files end, so every window closes: each sector's
/// volume in all three minutes, and each ticker's volume for the whole day.
#[test]
fn stock_trades_embedded_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--count", "1500", "--fast", "--seed", "4", "--start", "2024-03-01 10:00:00"];
    generate(dir.path(), &[&["--to", "file://data/trades"][..], &args[..]].concat());
    let companies_csv = companies_path();
    let sql =
        example_sql("stock-trades.sql", &[("'examples/stock-trades/companies.csv'", &format!("'{companies_csv}'"))]);
    let server = Server::start(dir.path(), "stock-trades.sql", &sql);
    let trades = trades_in(&dir.path().join("data/trades"));
    assert_eq!(trades.len(), 1500);
    let companies = companies();

    let minutes = sector_minutes(&trades, &companies, i64::MAX - 1);
    let expected: Vec<String> = minutes
        .iter()
        .map(|((start, sector), (volume, n))| format!("{}|{sector}|{volume}|{n}", pg_ts(*start)))
        .collect();
    assert_eq!(expected.len(), 3 * 7);
    server.wait_for(
        "SELECT window_start, sector, volume, trades FROM sector_volume ORDER BY window_start, sector",
        &expected.join("\n"),
        Duration::from_secs(60),
    );
    let today = volume_today(&trades, i64::MAX - 1);
    assert!(today.values().all(|r| r.0 == "2024-03-01" && r.3 == 1_709_337_600_000), "{today:?}");
    assert_eq!(today.values().map(|r| r.2).sum::<i64>(), 1500);
    let expected: Vec<String> = today
        .iter()
        .map(|(ticker, (date, volume, n, as_of))| format!("{ticker}|{date}|{volume}|{n}|{}", pg_ts(*as_of)))
        .collect();
    server.wait_for(
        "SELECT ticker, trade_date, volume, trades, as_of FROM volume_today ORDER BY ticker",
        &expected.join("\n"),
        Duration::from_secs(30),
    );
    server.wait_for(
        "SELECT count(*), sum(volume) FROM raw_trades",
        &format!("1500|{}", trades.iter().map(|t| t.volume).sum::<i64>()),
        Duration::from_secs(30),
    );
    let t = &trades[700];
    let cap = server.query(&format!("SELECT ticker, market_cap FROM market_caps WHERE trade_id = {}", t.id));
    let (ticker, cap) = cap.split_once('|').unwrap();
    assert_eq!(ticker, t.ticker);
    assert!(close(num(cap), t.price * companies[&t.ticker].shares as f64), "{cap}");
}
