//! Exactly-once across crashes (issue 6): a job killed with SIGKILL at seeded random
//! moments, and started again each time with the same command, ends with the same output
//! as one uninterrupted run: no row lost, none written twice.

#[path = "kafka_util.rs"]
mod kafka_util;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn eddy() -> Command {
    Command::new(env!("CARGO_BIN_EXE_eddy"))
}

/// A HOP aggregation over a rate-limited generator (about 5 s of input) into CSV files,
/// checkpointing every 300 ms.
fn pipeline(out: &Path) -> String {
    format!(
        "SET 'execution.checkpointing.interval' = '300 ms';
SET 'parallelism.default' = '2';
CREATE TABLE bids (
  id BIGINT,
  ts AS TO_TIMESTAMP_LTZ(id * 100, 3),
  auction AS id % 7,
  price AS (id * 37) % 1000,
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH (
  'connector' = 'datagen', 'rows-per-second' = '8000', 'number-of-rows' = '40000',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '40000'
);
CREATE TABLE totals (auction BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3), bids BIGINT, top BIGINT)
  WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
INSERT INTO totals
SELECT auction, window_start, window_end, COUNT(*), MAX(price)
FROM TABLE(HOP(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND, INTERVAL '60' SECOND))
GROUP BY auction, window_start, window_end;
",
        out.display()
    )
}

/// Every line of every committed file under `dir` (in-progress files are hidden: `.` or
/// `_` first), sorted.
fn committed_lines(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let text = std::fs::read_to_string(&path).expect("read output");
                lines.extend(text.lines().map(str::to_string));
            }
        }
    }
    lines.sort();
    lines
}

/// Deterministic pseudo-random numbers (an LCG): the kill moments of a run are the same
/// every time.
struct Seeded(u64);

impl Seeded {
    fn next_ms(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        lo + (self.0 >> 33) % (hi - lo)
    }
}

fn manifests(state: &Path) -> usize {
    let Ok(jobs) = std::fs::read_dir(state.join("checkpoints")) else { return 0 };
    jobs.flatten()
        .filter_map(|j| std::fs::read_dir(j.path()).ok())
        .flat_map(|epochs| epochs.flatten())
        .filter(|e| e.path().join("_manifest.json").exists())
        .count()
}

/// Run `ref.sql` in `dir` once, uninterrupted, and read what it wrote to `out`.
fn reference_lines(dir: &Path, out: &Path) -> Vec<String> {
    let reference =
        eddy().args(["run", "--quiet", "--state-dir", "ref-state", "ref.sql"]).current_dir(dir).output().expect("run");
    assert!(reference.status.success(), "{}", String::from_utf8_lossy(&reference.stderr));
    committed_lines(out)
}

/// Run `eddy run --state-dir <state> <file>` in `dir` again and again, killing it with
/// SIGKILL after a seeded random pause in `pause_ms` while it still runs, up to `max_kills`
/// times, then let the last run finish. Returns the kills and, at each, how many complete
/// checkpoints were on disk.
fn run_with_kills(
    dir: &Path,
    file: &str,
    state: &str,
    seed: u64,
    max_kills: usize,
    pause_ms: (u64, u64),
) -> (usize, Vec<usize>) {
    let mut rng = Seeded(seed);
    let (mut kills, mut restored_from) = (0, Vec::new());
    loop {
        let mut child = eddy()
            .args(["run", "--quiet", "--state-dir", state, file])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        if kills < max_kills {
            std::thread::sleep(Duration::from_millis(rng.next_ms(pause_ms.0, pause_ms.1)));
            if child.try_wait().expect("wait").is_none() {
                child.kill().expect("SIGKILL");
                child.wait().expect("reap");
                kills += 1;
                restored_from.push(manifests(&dir.join(state)));
                continue;
            }
        }
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "the last run failed: {}", String::from_utf8_lossy(&out.stderr));
        return (kills, restored_from);
    }
}

#[test]
fn a_job_killed_at_random_moments_writes_what_an_uninterrupted_run_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ref_out, chaos_out) = (dir.path().join("ref-out"), dir.path().join("chaos-out"));
    std::fs::write(dir.path().join("ref.sql"), pipeline(&ref_out)).expect("write");
    std::fs::write(dir.path().join("chaos.sql"), pipeline(&chaos_out)).expect("write");

    let want = reference_lines(dir.path(), &ref_out);
    assert!(want.len() > 1000, "the reference run wrote {} rows", want.len());

    let started = Instant::now();
    let (kills, restored_from) = run_with_kills(dir.path(), "chaos.sql", "chaos-state", 20261206, 6, (400, 1600));
    assert!(started.elapsed() < Duration::from_secs(240), "the chaos run took {:?}", started.elapsed());
    assert!(kills >= 3, "the job was killed only {kills} times: it ended too soon to test recovery");
    assert!(restored_from.iter().any(|n| *n > 0), "no checkpoint completed before any kill: {restored_from:?}");
    eprintln!("killed {kills} times; complete checkpoints on disk at each kill: {restored_from:?}");
    let got = committed_lines(&chaos_out);
    assert_eq!(got.len(), want.len(), "rows after {kills} kills (checkpoints seen at each: {restored_from:?})");
    assert!(got == want, "the output differs from the uninterrupted run's");
}

#[test]
fn a_checkpoint_of_another_plan_is_refused_until_started_fresh() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let sql = dir.path().join("job.sql");
    std::fs::write(&sql, pipeline(&out)).expect("write");
    let mut child = eddy()
        .args(["run", "--quiet", "--state-dir", "state", "job.sql"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    // Wait for a complete checkpoint, then crash.
    let deadline = Instant::now() + Duration::from_secs(30);
    while manifests(&dir.path().join("state")) == 0 {
        assert!(Instant::now() < deadline, "no checkpoint completed");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");

    // The same file, now with another aggregate: the checkpoint does not fit it.
    std::fs::write(&sql, pipeline(&out).replace("MAX(price)", "MIN(price)")).expect("write");
    let refused = eddy()
        .args(["run", "--quiet", "--state-dir", "state", "job.sql"])
        .current_dir(dir.path())
        .output()
        .expect("run");
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("was written by a different plan") && err.contains("--fresh"), "{err}");

    let fresh = eddy()
        .args(["run", "--quiet", "--fresh", "--state-dir", "state", "job.sql"])
        .current_dir(dir.path())
        .output()
        .expect("run");
    assert!(fresh.status.success(), "{}", String::from_utf8_lossy(&fresh.stderr));
}

/// The same with a Kafka source (2 partitions, bounded at the latest offsets): the
/// checkpoint holds each partition's next offset, and a restarted run reads on from there.
#[test]
fn a_kafka_job_killed_at_random_moments_writes_what_an_uninterrupted_run_writes() {
    use kafka_util::{broker, create_topic, produce, unique, Rec};
    let bootstrap = broker();
    let topic = unique("chaos-bids");
    create_topic(bootstrap, &topic, 2);
    let records: Vec<Rec> = (0..30_000i64)
        .map(|id| Rec {
            partition: (id % 2) as i32,
            ..Rec::value(&format!("{{\"id\":{id},\"auction\":{},\"price\":{}}}", id % 13, (id * 37) % 1000))
        })
        .collect();
    produce(bootstrap, &topic, &records);

    let job = |out: &Path, group: &str| {
        format!(
            "SET 'execution.checkpointing.interval' = '100 ms';
SET 'parallelism.default' = '2';
CREATE TABLE bids (id BIGINT, auction BIGINT, price BIGINT, ts AS TO_TIMESTAMP_LTZ(id * 10, 3), WATERMARK FOR ts AS ts)
WITH ('connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{bootstrap}',
      'properties.group.id' = '{group}', 'scan.startup.mode' = 'earliest-offset',
      'scan.bounded.mode' = 'latest-offset', 'format' = 'json',
      'properties.max.partition.fetch.bytes' = '2048');
CREATE TABLE totals (auction BIGINT, window_start TIMESTAMP(3), bids BIGINT, top BIGINT)
  WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
INSERT INTO totals SELECT auction, window_start, COUNT(*), MAX(price)
FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '5' SECOND)) GROUP BY auction, window_start, window_end;
",
            out.display()
        )
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (ref_out, chaos_out) = (dir.path().join("ref-out"), dir.path().join("chaos-out"));
    std::fs::write(dir.path().join("ref.sql"), job(&ref_out, &unique("ref"))).expect("write");
    std::fs::write(dir.path().join("chaos.sql"), job(&chaos_out, &unique("chaos"))).expect("write");
    let want = reference_lines(dir.path(), &ref_out);
    // 30,000 bids 10 ms apart: 60 windows of 5 s, 13 auctions each.
    assert_eq!(want.len(), 60 * 13, "the reference run's rows");

    let (kills, restored_from) = run_with_kills(dir.path(), "chaos.sql", "chaos-state", 7, 8, (150, 700));
    assert!(kills >= 2, "the job was killed only {kills} times: it ended too soon to test recovery");
    assert!(restored_from.iter().any(|n| *n > 0), "no checkpoint completed before any kill: {restored_from:?}");
    eprintln!("killed {kills} times; complete checkpoints on disk at each kill: {restored_from:?}");
    let got = committed_lines(&chaos_out);
    assert_eq!(got.len(), want.len(), "rows after {kills} kills (checkpoints seen at each: {restored_from:?})");
    assert!(got == want, "the output differs from the uninterrupted run's");
}

/// Ctrl-C stops a checkpointing job at a checkpoint (its windows are not flushed half
/// full, nothing past the checkpoint is published), and running the file again goes on
/// from there: three interruptions leave the output of one uninterrupted run.
#[test]
fn a_job_interrupted_with_ctrl_c_goes_on_where_it_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ref_out, out) = (dir.path().join("ref-out"), dir.path().join("out"));
    std::fs::write(dir.path().join("ref.sql"), pipeline(&ref_out)).expect("write");
    std::fs::write(dir.path().join("job.sql"), pipeline(&out)).expect("write");
    let want = reference_lines(dir.path(), &ref_out);

    let mut rng = Seeded(42);
    let mut stops = 0;
    loop {
        let child = eddy()
            .args(["run", "--quiet", "--state-dir", "state", "job.sql"])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        if stops < 3 {
            std::thread::sleep(Duration::from_millis(rng.next_ms(700, 1400)));
            let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
        }
        let out = child.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("Job stopped") {
            assert_eq!(out.status.code(), Some(130), "{err}");
            stops += 1;
            continue;
        }
        assert!(out.status.success(), "{err}");
        break;
    }
    assert!(stops >= 2, "stopped only {stops} times: the job ended too soon");
    let got = committed_lines(&out);
    assert_eq!(got.len(), want.len(), "rows after {stops} stops");
    assert!(got == want, "the output differs from the uninterrupted run's");
}

/// A job that ran to its end keeps its final checkpoint: the same file run again publishes
/// nothing twice and says it had finished; `--fresh` runs it again.
#[test]
fn a_finished_job_run_again_does_nothing_until_fresh() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let sql = pipeline(&out).replace("'number-of-rows' = '40000'", "'number-of-rows' = '4000'");
    std::fs::write(dir.path().join("job.sql"), sql).expect("write");
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--quiet", "--state-dir", "state"];
        args.extend_from_slice(extra);
        args.push("job.sql");
        eddy().args(&args).current_dir(dir.path()).output().expect("run")
    };
    let first = run(&[]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let rows = committed_lines(&out);
    assert!(!rows.is_empty());

    let again = run(&[]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("Job already finished") && err.contains("--fresh"), "{err}");
    assert_eq!(committed_lines(&out), rows, "nothing written twice");

    let fresh = run(&["--fresh"]);
    assert!(fresh.status.success(), "{}", String::from_utf8_lossy(&fresh.stderr));
    assert_eq!(committed_lines(&out).len(), 2 * rows.len(), "run again from the start");
}
