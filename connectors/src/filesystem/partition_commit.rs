//! Partition commit: when the filesystem sink tells readers that a partition directory is
//! complete, as Flink's `sink.partition-commit.*` options.
//!
//! A partition is *committable* once its part files are visible (the checkpoint that covers
//! them completed, or the input ended). It is *committed* — its success file written (the
//! `success-file` policy, the only one without a metastore) — when its trigger says so:
//!
//! | `sink.partition-commit.trigger` | commits a committable partition when |
//! |---|---|
//! | `process-time` (default) | this subtask first wrote into it more than `sink.partition-commit.delay` ago |
//! | `partition-time` | the watermark at the checkpoint passed the time in the partition's values plus the delay |
//!
//! The partition time comes from its values (`partition.time-extractor.*`): the pattern
//! (`timestamp-pattern`, e.g. `$dt $hm:00`; default: the first partition value) with each
//! `$key` replaced by the partition's value, parsed with `timestamp-formatter` (default
//! `yyyy-MM-dd HH:mm:ss`, or a date alone meaning midnight) as a local date-time in
//! `sink.partition-commit.watermark-time-zone` (default UTC). A partition whose values do
//! not give a time is only committed at the end of the input, with a warning.
//!
//! Rows that arrive for a committed partition (late rows) make it committable again with
//! the checkpoint that covers them, and it is committed again (the success file is written
//! again). At the end of the input every partition written since its last commit is
//! committed, whatever the trigger says, as Flink does when a bounded job ends.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::time::{Duration, Instant};

use arrow::array::timezone::Tz;
use chrono::format::{Parsed, StrftimeItems};
use chrono::{NaiveDate, NaiveDateTime, TimeZone};

use super::unescape_partition_value;
use crate::{ConnectorError, Options, Result};

/// The options of the partition commit that concern the sink's behaviour.
pub(super) const OPTIONS: &[&str] = &[
    "sink.partition-commit.trigger",
    "sink.partition-commit.delay",
    "sink.partition-commit.watermark-time-zone",
    "partition.time-extractor.kind",
    "partition.time-extractor.timestamp-pattern",
    "partition.time-extractor.timestamp-formatter",
];

/// When a committable partition is committed.
#[derive(Debug, Clone)]
pub(super) enum Trigger {
    /// `delay` after this subtask first wrote into it.
    ProcessTime,
    /// When the watermark passes the partition's time plus `delay`.
    PartitionTime(TimeExtractor),
}

/// The commit options.
#[derive(Debug, Clone)]
pub(super) struct CommitConfig {
    pub trigger: Trigger,
    pub delay: Duration,
}

impl CommitConfig {
    pub(super) fn parse(table: &str, o: &Options) -> Result<Self> {
        let delay = o.duration(table, "sink.partition-commit.delay")?.unwrap_or(Duration::ZERO);
        let trigger = match o.get("sink.partition-commit.trigger").map(str::to_ascii_lowercase).as_deref() {
            None | Some("process-time") => Trigger::ProcessTime,
            Some("partition-time") => Trigger::PartitionTime(TimeExtractor::parse(table, o)?),
            Some(other) => {
                return Err(ConnectorError::options(
                    table,
                    format!(
                        "'sink.partition-commit.trigger' = '{other}' is neither 'process-time' nor 'partition-time'"
                    ),
                ))
            }
        };
        // Checked even with the process-time trigger, where Flink ignores them, so a typo
        // shows before the trigger is changed.
        if matches!(trigger, Trigger::ProcessTime) {
            TimeExtractor::parse(table, o)?;
        }
        Ok(Self { trigger, delay })
    }
}

/// Flink's `default` partition time extractor.
#[derive(Debug, Clone)]
pub(super) struct TimeExtractor {
    /// `$key` placeholders; `None`: the first partition value.
    pattern: Option<String>,
    /// A chrono format; `None`: Flink's default (`yyyy-MM-dd HH:mm:ss[.fff]` or a date).
    format: Option<String>,
    /// The zone the partition's local time is in.
    zone: Tz,
}

impl TimeExtractor {
    fn parse(table: &str, o: &Options) -> Result<Self> {
        match o.get("partition.time-extractor.kind").map(str::to_ascii_lowercase).as_deref() {
            None | Some("default") => {}
            Some(other) => {
                return Err(ConnectorError::options(
                    table,
                    format!(
                        "'partition.time-extractor.kind' = '{other}' is not supported in this version of Eddy \
                         (custom extractor classes cannot run here); use 'default' with \
                         'partition.time-extractor.timestamp-pattern'"
                    ),
                ))
            }
        }
        let format = match o.get("partition.time-extractor.timestamp-formatter") {
            None => None,
            Some(java) => Some(chrono_format(java).map_err(|why| {
                ConnectorError::options(
                    table,
                    format!("'partition.time-extractor.timestamp-formatter' = '{java}': {why}"),
                )
            })?),
        };
        let zone_name = o.get("sink.partition-commit.watermark-time-zone").unwrap_or("UTC");
        let zone = Tz::from_str(zone_name).map_err(|_| {
            ConnectorError::options(
                table,
                format!(
                    "'sink.partition-commit.watermark-time-zone' = '{zone_name}' is not a time zone id \
                     (e.g. 'UTC', 'Asia/Shanghai', '+08:00')"
                ),
            )
        })?;
        Ok(Self { pattern: o.get("partition.time-extractor.timestamp-pattern").map(str::to_string), format, zone })
    }

    /// The partition's time in epoch milliseconds, from its directory `k1=v1/k2=v2`;
    /// `None` when its values do not give one.
    pub(super) fn extract(&self, dir: &str) -> Option<i64> {
        let values: Vec<(String, String)> = dir
            .split('/')
            .filter_map(|part| part.split_once('='))
            .map(|(k, v)| (unescape_partition_value(k), unescape_partition_value(v)))
            .collect();
        let text = match &self.pattern {
            None => values.first()?.1.clone(),
            Some(pattern) => {
                // Longer keys first, so `$dt` does not eat the start of `$dthour`.
                let mut by_length: Vec<&(String, String)> = values.iter().collect();
                by_length.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
                by_length.iter().fold(pattern.clone(), |text, (k, v)| text.replace(&format!("${k}"), v))
            }
        };
        let local = match &self.format {
            None => NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S%.f")
                .ok()
                .or_else(|| NaiveDate::parse_from_str(&text, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)))?,
            Some(f) => parse_local(&text, f)?,
        };
        // A local time in a gap of the zone (DST) has no instant; an ambiguous one takes
        // the earlier, as java.time does.
        Some(self.zone.from_local_datetime(&local).earliest()?.timestamp_millis())
    }
}

/// `text` as a local date-time by a chrono `format`: a time without minutes or seconds has
/// them 0, a date alone is midnight (as java.time resolves `yyyyMMddHH` or `yyyy-MM-dd`).
fn parse_local(text: &str, format: &str) -> Option<NaiveDateTime> {
    let mut parsed = Parsed::new();
    chrono::format::parse(&mut parsed, text, StrftimeItems::new(format)).ok()?;
    let date = parsed.to_naive_date().ok()?;
    if parsed.hour_div_12().is_none() {
        return date.and_hms_opt(0, 0, 0);
    }
    if parsed.minute().is_none() {
        parsed.set_minute(0).ok()?;
    }
    if parsed.second().is_none() {
        parsed.set_second(0).ok()?;
    }
    Some(date.and_time(parsed.to_naive_time().ok()?))
}

/// A Java `DateTimeFormatter` pattern of the letters a partition time uses, as a chrono
/// format; other letters are refused by name.
fn chrono_format(java: &str) -> std::result::Result<String, String> {
    let chars: Vec<char> = java.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // 'literal' ('' is a quote).
            let mut j = i + 1;
            if chars.get(j) == Some(&'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            while j < chars.len() && chars[j] != '\'' {
                push_literal(&mut out, chars[j]);
                j += 1;
            }
            if j == chars.len() {
                return Err("an unclosed quote".into());
            }
            i = j + 1;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            push_literal(&mut out, c);
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|&&d| d == c).count();
        let spec = match (c, run) {
            ('y' | 'u', 4) => "%Y".to_string(),
            ('y' | 'u', 2) => "%y".to_string(),
            ('M', 1 | 2) => "%m".to_string(),
            ('d', 1 | 2) => "%d".to_string(),
            ('H', 1 | 2) => "%H".to_string(),
            ('m', 1 | 2) => "%M".to_string(),
            ('s', 1 | 2) => "%S".to_string(),
            ('S', n @ (3 | 6 | 9)) => format!("%{n}f"),
            _ => {
                return Err(format!(
                    "pattern letters '{}' are not supported here (supported: yyyy, yy, MM, dd, HH, mm, ss, SSS, \
                     quoted text)",
                    chars[i..i + run].iter().collect::<String>()
                ))
            }
        };
        out.push_str(&spec);
        i += run;
    }
    Ok(out)
}

fn push_literal(out: &mut String, c: char) {
    if c == '%' {
        out.push_str("%%");
    } else {
        out.push(c);
    }
}

/// A partition this subtask wrote into and has not committed since.
#[derive(Debug)]
struct Written {
    /// When this subtask first wrote into it (since its last commit).
    first_written: Instant,
}

/// Which partitions are due for a commit, for one sink subtask. Partitions are named by
/// their directory relative to the table's path (`k1=v1/k2=v2`).
#[derive(Debug)]
pub(super) struct CommitTracker {
    config: CommitConfig,
    /// Written since the last checkpoint barrier (files not visible yet).
    written: BTreeMap<String, Written>,
    /// Written before a barrier, per epoch: visible once that epoch completes.
    by_epoch: Vec<(u64, i64, BTreeMap<String, Written>)>,
    /// Visible, waiting for the trigger.
    committable: BTreeMap<String, Written>,
    /// The latest watermark this subtask saw.
    watermark: i64,
    /// The watermark at the barrier of the latest completed checkpoint: what the
    /// partition-time trigger compares with (rows up to it are visible).
    completed_watermark: i64,
    /// Partitions already warned about (no time in their values).
    warned: BTreeSet<String>,
}

impl CommitTracker {
    pub(super) fn new(config: CommitConfig) -> Self {
        Self {
            config,
            written: BTreeMap::new(),
            by_epoch: Vec::new(),
            committable: BTreeMap::new(),
            watermark: i64::MIN,
            completed_watermark: i64::MIN,
            warned: BTreeSet::new(),
        }
    }

    /// Rows were written into `dir`.
    pub(super) fn wrote(&mut self, dir: &str) {
        if !self.written.contains_key(dir) {
            self.written.insert(dir.to_string(), Written { first_written: Instant::now() });
        }
    }

    pub(super) fn watermark(&mut self, watermark: i64) {
        self.watermark = self.watermark.max(watermark);
    }

    /// A checkpoint barrier `epoch`: what was written so far becomes visible with it.
    /// Returns every partition not committed yet that the checkpoint covers, for its state.
    pub(super) fn barrier(&mut self, epoch: u64) -> Vec<String> {
        let written = std::mem::take(&mut self.written);
        self.by_epoch.push((epoch, self.watermark, written));
        let mut covered: BTreeSet<String> = self.committable.keys().cloned().collect();
        for (_, _, dirs) in &self.by_epoch {
            covered.extend(dirs.keys().cloned());
        }
        covered.into_iter().collect()
    }

    /// Checkpoint `epoch` completed: the partitions it covers are visible; returns the
    /// visible partitions the trigger commits now (with the watermark of that checkpoint).
    pub(super) fn completed(&mut self, epoch: u64) -> Vec<String> {
        let (done, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.by_epoch).into_iter().partition(|e| e.0 <= epoch);
        self.by_epoch = later;
        for (_, at_barrier, dirs) in done {
            self.completed_watermark = self.completed_watermark.max(at_barrier);
            for (dir, w) in dirs {
                self.committable.entry(dir).or_insert(w);
            }
        }
        let watermark = self.completed_watermark;
        let now = Instant::now();
        let delay = self.config.delay;
        let mut due = Vec::new();
        for (dir, w) in &self.committable {
            let ready = match &self.config.trigger {
                Trigger::ProcessTime => now.duration_since(w.first_written) >= delay,
                // An unpartitioned table has no partition time: it commits at the end.
                Trigger::PartitionTime(_) if dir.is_empty() => false,
                Trigger::PartitionTime(extractor) => match extractor.extract(dir) {
                    Some(time) => {
                        let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                        watermark > time.saturating_add(delay_ms)
                    }
                    None => {
                        if self.warned.insert(dir.clone()) {
                            tracing::warn!(
                                partition = %dir,
                                "partition values give no time for the partition-time commit trigger; \
                                 the partition is committed when the input ends"
                            );
                        }
                        false
                    }
                },
            };
            if ready {
                due.push(dir.clone());
            }
        }
        for dir in &due {
            self.committable.remove(dir);
        }
        due
    }

    /// After a restart: partitions the checkpoint covered and had not committed; their
    /// files are visible now.
    pub(super) fn recovered(&mut self, dirs: &[String]) {
        for dir in dirs {
            self.committable.entry(dir.clone()).or_insert(Written { first_written: Instant::now() });
        }
    }

    /// The input ended: every partition written and not committed since.
    pub(super) fn finish(&mut self) -> Vec<String> {
        let mut all: BTreeSet<String> = std::mem::take(&mut self.committable).into_keys().collect();
        for (_, _, dirs) in std::mem::take(&mut self.by_epoch) {
            all.extend(dirs.into_keys());
        }
        all.extend(std::mem::take(&mut self.written).into_keys());
        all.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> Options {
        Options::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    fn extractor(pairs: &[(&str, &str)]) -> TimeExtractor {
        TimeExtractor::parse("t", &options(pairs)).unwrap()
    }

    #[test]
    fn partition_times() {
        let ms = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap().and_utc().timestamp_millis();
        let nexmark = extractor(&[("partition.time-extractor.timestamp-pattern", "$dt $hm:00")]);
        assert_eq!(nexmark.extract("dt=2024-03-01/hm=23%3A59"), Some(ms("2024-03-01 23:59:00")));
        assert_eq!(nexmark.extract("dt=__DEFAULT_PARTITION__/hm=23%3A59"), None);
        let first = extractor(&[]);
        assert_eq!(first.extract("day=2024-03-02"), Some(ms("2024-03-02 00:00:00")));
        assert_eq!(first.extract("day=2024-03-02 10:11:12.5/x=1"), Some(ms("2024-03-02 10:11:12") + 500));
        let hourly = extractor(&[
            ("partition.time-extractor.timestamp-pattern", "$dt$hour"),
            ("partition.time-extractor.timestamp-formatter", "yyyyMMddHH"),
        ]);
        assert_eq!(hourly.extract("dt=20240301/hour=07"), Some(ms("2024-03-01 07:00:00")));
        let dated = extractor(&[("partition.time-extractor.timestamp-formatter", "yyyy/MM/dd")]);
        assert_eq!(dated.extract("d=2024%2F03%2F01"), Some(ms("2024-03-01 00:00:00")));
        let shanghai = extractor(&[("sink.partition-commit.watermark-time-zone", "Asia/Shanghai")]);
        assert_eq!(shanghai.extract("d=2024-03-01 08:00:00"), Some(ms("2024-03-01 00:00:00")));
    }

    #[test]
    fn bad_options_are_named() {
        let e = CommitConfig::parse("t", &options(&[("sink.partition-commit.trigger", "watermark")])).unwrap_err();
        assert!(e.to_string().contains("'watermark' is neither 'process-time' nor 'partition-time'"), "{e}");
        let e = CommitConfig::parse(
            "t",
            &options(&[
                ("sink.partition-commit.trigger", "partition-time"),
                ("partition.time-extractor.timestamp-formatter", "yyyy-MM-dd EEE"),
            ]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("pattern letters 'EEE' are not supported"), "{e}");
        let e = CommitConfig::parse("t", &options(&[("partition.time-extractor.kind", "custom")])).unwrap_err();
        assert!(e.to_string().contains("custom extractor classes"), "{e}");
        let e = CommitConfig::parse("t", &options(&[("sink.partition-commit.watermark-time-zone", "Mars/Base")]))
            .unwrap_err();
        assert!(e.to_string().contains("'Mars/Base' is not a time zone id"), "{e}");
    }

    #[test]
    fn partition_time_trigger_waits_for_the_watermark_and_the_delay() {
        let config = CommitConfig::parse(
            "t",
            &options(&[
                ("sink.partition-commit.trigger", "partition-time"),
                ("sink.partition-commit.delay", "1 min"),
                ("partition.time-extractor.timestamp-pattern", "$dt $hm:00"),
            ]),
        )
        .unwrap();
        let mut t = CommitTracker::new(config);
        let at = |hm: &str| {
            NaiveDateTime::parse_from_str(&format!("2024-03-01 {hm}:00"), "%Y-%m-%d %H:%M:%S")
                .unwrap()
                .and_utc()
                .timestamp_millis()
        };
        t.wrote("dt=2024-03-01/hm=10%3A00");
        t.wrote("dt=2024-03-01/hm=10%3A01");
        t.watermark(at("10:01") + 30_000);
        assert_eq!(t.barrier(1).len(), 2);
        // 10:01:30 passed 10:00 + 1 min, not 10:01 + 1 min.
        assert_eq!(t.completed(1), vec!["dt=2024-03-01/hm=10%3A00".to_string()]);
        // The watermark moves on, but nothing commits before the next checkpoint completes.
        t.watermark(at("10:02") + 1);
        t.wrote("dt=2024-03-01/hm=10%3A00"); // a late row
        let covered = t.barrier(2);
        assert_eq!(covered, vec!["dt=2024-03-01/hm=10%3A00".to_string(), "dt=2024-03-01/hm=10%3A01".to_string()]);
        assert_eq!(t.completed(2), covered);
        // Nothing left; a third partition is only committed at the end.
        t.wrote("dt=2024-03-01/hm=10%3A05");
        t.barrier(3);
        assert!(t.completed(3).is_empty());
        assert_eq!(t.finish(), vec!["dt=2024-03-01/hm=10%3A05".to_string()]);
    }

    #[test]
    fn process_time_trigger_commits_at_the_checkpoint_without_delay() {
        let mut t = CommitTracker::new(CommitConfig::parse("t", &options(&[])).unwrap());
        t.wrote("a=1");
        assert!(t.completed(1).is_empty(), "no barrier yet");
        t.barrier(1);
        t.wrote("a=2");
        assert_eq!(t.completed(1), vec!["a=1".to_string()]);
        let mut slow =
            CommitTracker::new(CommitConfig::parse("t", &options(&[("sink.partition-commit.delay", "1 h")])).unwrap());
        slow.wrote("a=1");
        slow.barrier(1);
        assert!(slow.completed(1).is_empty());
        slow.recovered(&["a=2".to_string()]);
        assert_eq!(slow.finish(), vec!["a=1".to_string(), "a=2".to_string()]);
    }
}
