//! `eddy generate`: the examples' inputs, written to files and to the real broker, the same
//! for the same seed.

#[path = "kafka_util.rs"]
mod kafka_util;

use std::path::Path;
use std::process::{Command, Output};

fn eddy(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_eddy")).args(args).current_dir(dir).output().expect("run eddy")
}

fn lines_under(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for e in std::fs::read_dir(dir).expect("output directory").flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.starts_with('.') {
            lines.extend(std::fs::read_to_string(e.path()).expect("read").lines().map(str::to_string));
        }
    }
    lines.sort();
    lines
}

#[test]
fn every_example_writes_files_and_a_seed_repeats_them() {
    let dir = tempfile::tempdir().unwrap();
    for example in ["trending-hashtags", "stock-trades", "market-quotes", "iot-boats", "auction-bids"] {
        let mut runs = Vec::new();
        for (run, seed) in [("a", "7"), ("b", "7"), ("c", "8")] {
            let to = format!("file://{example}-{run}");
            let args = [
                "generate",
                example,
                "--to",
                &to,
                "--count",
                "200",
                "--fast",
                "--seed",
                seed,
                "--start",
                "2024-03-01 10:00:00",
            ];
            let out = eddy(&args, dir.path());
            assert!(out.status.success(), "{example}: {}", String::from_utf8_lossy(&out.stderr));
            runs.push(lines_under(&dir.path().join(format!("{example}-{run}"))));
        }
        assert!(runs[0].len() > 150, "{example}: {} rows", runs[0].len());
        assert_eq!(runs[0], runs[1], "{example}: the same seed, the same events");
        assert_ne!(runs[0], runs[2], "{example}: another seed, other events");
        let first: serde_json::Value = serde_json::from_str(&runs[0][0]).expect("JSON lines");
        assert!(first.as_object().is_some_and(|o| o.len() >= 3), "{first}");
    }
    let trades = lines_under(&dir.path().join("stock-trades-a"));
    assert!(trades.iter().any(|l| l.contains("\"trade_ts\":\"2024-03-01 10:00:00\"")), "{:?}", &trades[..3]);
}

#[test]
fn trades_go_to_kafka_keyed_by_ticker() {
    use kafka_util::{broker, consume_all, unique};
    let bootstrap = broker();
    let topic = unique("generated-trades");
    let dir = tempfile::tempdir().unwrap();
    let to = format!("kafka://{bootstrap}/{topic}");
    let args = ["generate", "stock-trades", "--to", &to, "--count", "500", "--rate", "5000", "--partitions", "2"];
    let out = eddy(&args, dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("500 stock-trades events written"));
    let records = consume_all(bootstrap, &topic);
    assert_eq!(records.len(), 500);
    // Keyed by ticker: each ticker's records are all in one partition.
    let mut partition_of = std::collections::HashMap::new();
    for r in &records {
        let key = r.key.clone().expect("a key");
        assert!(key.starts_with("{\"ticker\":"), "{key}");
        assert_eq!(*partition_of.entry(key.clone()).or_insert(r.partition), r.partition, "{key}");
    }
    assert_eq!(partition_of.len(), 10, "ten tickers");
    assert!(partition_of.values().any(|p| *p == 0) && partition_of.values().any(|p| *p == 1));
}
