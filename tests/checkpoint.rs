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

/// A HOP aggregation over a rate-limited generator (about 5 s of input) into CSV files and
/// a managed result table (`totals_kept`, append-only), checkpointing every 300 ms.
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
CREATE TABLE totals_kept (auction BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3), bids BIGINT, top BIGINT);
CREATE VIEW hop_totals AS
SELECT auction, window_start, window_end, COUNT(*) AS bids, MAX(price) AS top
FROM TABLE(HOP(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND, INTERVAL '60' SECOND))
GROUP BY auction, window_start, window_end;
INSERT INTO totals SELECT * FROM hop_totals;
INSERT INTO totals_kept SELECT * FROM hop_totals;
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

/// Run `job.sql` in `dir` (state in `state`) until `n` complete checkpoints are on disk
/// (within 60 s, before the job ends), then SIGKILL it.
fn kill_after_checkpoints(dir: &Path, n: usize) {
    let mut child = eddy()
        .args(["run", "--quiet", "--state-dir", "state", "job.sql"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(60);
    while manifests(&dir.join("state")) < n {
        assert!(Instant::now() < deadline, "no {n} checkpoints completed in 60 s");
        assert!(child.try_wait().expect("wait").is_none(), "the job ended before {n} checkpoints");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
}

/// Run `ref.sql` in `dir` once, uninterrupted, and read what it wrote to `out`.
fn reference_lines(dir: &Path, out: &Path) -> Vec<String> {
    let reference =
        eddy().args(["run", "--quiet", "--state-dir", "ref-state", "ref.sql"]).current_dir(dir).output().expect("run");
    assert!(reference.status.success(), "{}", String::from_utf8_lossy(&reference.stderr));
    committed_lines(out)
}

/// The newest complete checkpoint's epoch under `state` (0: none).
fn newest_epoch(state: &Path) -> u64 {
    let Ok(jobs) = std::fs::read_dir(state.join("checkpoints")) else { return 0 };
    jobs.flatten()
        .filter_map(|j| std::fs::read_dir(j.path()).ok())
        .flat_map(|epochs| epochs.flatten())
        .filter(|e| e.path().join("_manifest.json").exists())
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("chk-")?.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
}

/// Run `eddy run --state-dir <state> <file>` in `dir` again and again, killing it with
/// SIGKILL after a seeded random pause in `pause_ms` while it still runs, up to `max_kills`
/// times, then let the last run finish. The first run is killed after that pause; then
/// three runs of four are killed 50-400 ms after they start (while starting or restoring),
/// and every fourth 20-300 ms after it completed a checkpoint of its own (waiting up to 30 s
/// for it). Each run so moves the job on by at most a little, whatever the machine's speed, and
/// the kills land at seeded moments over the job's whole length. Returns the kills and, at each, how many
/// complete checkpoints were on disk.
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
            let pause = match kills {
                0 => rng.next_ms(pause_ms.0, pause_ms.1),
                // Early: while starting or restoring, mostly before a checkpoint of its own.
                k if k % 4 != 3 => rng.next_ms(50, 400),
                _ => rng.next_ms(20, 300),
            };
            if kills % 4 == 3 {
                // Soon after its own first checkpoint.
                let before = newest_epoch(&dir.join(state));
                let deadline = Instant::now() + Duration::from_secs(30);
                while newest_epoch(&dir.join(state)) == before
                    && Instant::now() < deadline
                    && child.try_wait().expect("wait").is_none()
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            std::thread::sleep(Duration::from_millis(pause));
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
    let want_table = table_rows(&dir.path().join("ref-state"), "totals_kept");
    assert_eq!(want_table.len(), want.len(), "the reference run's table rows");
    let got_table = table_rows(&dir.path().join("chaos-state"), "totals_kept");
    assert!(got_table == want_table, "the table differs from the uninterrupted run's: {} rows", got_table.len());
}

#[test]
fn a_checkpoint_of_another_plan_is_refused_until_started_fresh() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let sql = dir.path().join("job.sql");
    std::fs::write(&sql, pipeline(&out)).expect("write");
    // Wait for a complete checkpoint, then crash.
    kill_after_checkpoints(dir.path(), 1);

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

/// The chaos test: Kafka (2 partitions, bounded at the latest offsets) -> a
/// windowed aggregate -> a managed result table, an exactly-once Kafka sink and a file
/// sink, SIGKILLed at 10 seeded moments and started again each time. Every output ends
/// identical to an uninterrupted run's: the CSV files, the table's rows, and the topic as
/// a `read_committed` consumer reads it.
#[test]
fn a_kafka_job_killed_at_random_moments_writes_what_an_uninterrupted_run_writes() {
    use kafka_util::{broker, create_topic, produce, unique, Rec};
    let bootstrap = broker();
    let topic = unique("chaos-bids");
    create_topic(bootstrap, &topic, 2);
    let records: Vec<Rec> = (0..150_000i64)
        .map(|id| Rec {
            partition: (id % 2) as i32,
            ..Rec::value(&format!("{{\"id\":{id},\"auction\":{},\"price\":{}}}", id % 13, (id * 37) % 1000))
        })
        .collect();
    produce(bootstrap, &topic, &records);

    let job = |run: &str, out: &Path, out_topic: &str| {
        format!(
            "SET 'execution.checkpointing.interval' = '100 ms';
SET 'parallelism.default' = '2';
CREATE TABLE bids (id BIGINT, auction BIGINT, price BIGINT, ts AS TO_TIMESTAMP_LTZ(id * 10, 3), WATERMARK FOR ts AS ts)
WITH ('connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{bootstrap}',
      'properties.group.id' = '{group}', 'scan.startup.mode' = 'earliest-offset',
      'scan.bounded.mode' = 'latest-offset', 'format' = 'json',
      'properties.max.partition.fetch.bytes' = '2048');
CREATE VIEW windows AS SELECT auction, window_start, COUNT(*) AS bids, MAX(price) AS top
FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '5' SECOND)) GROUP BY auction, window_start, window_end;
CREATE TABLE totals_files (auction BIGINT, window_start TIMESTAMP(3), bids BIGINT, top BIGINT)
  WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'csv');
CREATE TABLE totals_topic (auction BIGINT, window_start TIMESTAMP(3), bids BIGINT, top BIGINT)
  WITH ('connector' = 'kafka', 'topic' = '{out_topic}', 'properties.bootstrap.servers' = '{bootstrap}',
        'format' = 'json', 'sink.delivery-guarantee' = 'exactly-once',
        'sink.transactional-id-prefix' = '{prefix}');
CREATE TABLE totals (auction BIGINT, window_start TIMESTAMP(3), bids BIGINT, top BIGINT);
INSERT INTO totals_files SELECT * FROM windows;
INSERT INTO totals_topic SELECT * FROM windows;
INSERT INTO totals SELECT * FROM windows;
",
            group = unique(run),
            out = out.display(),
            prefix = unique(&format!("{run}-txn")),
        )
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (ref_out, chaos_out) = (dir.path().join("ref-out"), dir.path().join("chaos-out"));
    let (ref_topic, chaos_topic) = (unique("ref-totals"), unique("chaos-totals"));
    create_topic(bootstrap, &ref_topic, 2);
    create_topic(bootstrap, &chaos_topic, 2);
    std::fs::write(dir.path().join("ref.sql"), job("ref", &ref_out, &ref_topic)).expect("write");
    std::fs::write(dir.path().join("chaos.sql"), job("chaos", &chaos_out, &chaos_topic)).expect("write");
    let want = reference_lines(dir.path(), &ref_out);
    // 150,000 bids 10 ms apart: 300 windows of 5 s, 13 auctions each.
    assert_eq!(want.len(), 300 * 13, "the reference run's rows");
    let want_topic = committed_values(bootstrap, &ref_topic);
    let want_table = table_rows(&dir.path().join("ref-state"), "totals");
    assert_eq!(want_topic.len(), want.len(), "the reference run's records");
    assert_eq!(want_table.len(), want.len(), "the reference run's table rows");

    let (kills, restored_from) = run_with_kills(dir.path(), "chaos.sql", "chaos-state", 7, 10, (300, 1200));
    assert!(kills >= 8, "the job was killed only {kills} times: it ended too soon to test recovery");
    assert!(restored_from.iter().any(|n| *n > 0), "no checkpoint completed before any kill: {restored_from:?}");
    eprintln!("killed {kills} times; complete checkpoints on disk at each kill: {restored_from:?}");
    let context = format!("after {kills} kills (checkpoints seen at each: {restored_from:?})");
    let got = committed_lines(&chaos_out);
    assert_eq!(got.len(), want.len(), "file rows {context}");
    assert!(got == want, "the files differ from the uninterrupted run's {context}");
    let got_topic = committed_values(bootstrap, &chaos_topic);
    assert_eq!(got_topic.len(), want_topic.len(), "records read_committed {context}");
    assert!(got_topic == want_topic, "the topic differs from the uninterrupted run's {context}");
    let got_table = table_rows(&dir.path().join("chaos-state"), "totals");
    assert_eq!(got_table.len(), want_table.len(), "table rows {context}");
    assert!(got_table == want_table, "the table differs from the uninterrupted run's {context}");
}

/// The values of a topic's records as a `read_committed` consumer sees them, sorted.
fn committed_values(bootstrap: &str, topic: &str) -> Vec<String> {
    let mut values: Vec<String> =
        kafka_util::consume_committed(bootstrap, topic).into_iter().filter_map(|r| r.value).collect();
    values.sort();
    values
}

/// The rows of managed table `name` under `state` (its newest log generation, read as
/// Arrow IPC; an append-only table's log holds only inserts), each as its values joined
/// by `|`, sorted.
fn table_rows(state: &Path, name: &str) -> Vec<String> {
    let mut rows: Vec<String> = logged_rows(state, name).into_iter().map(|(_, _, row)| row).collect();
    rows.sort();
    rows
}

/// Every row of the newest log generation of managed table `name` under `state`, in log
/// order: (row kind code, first column's value, all values joined by `|`).
fn logged_rows(state: &Path, name: &str) -> Vec<(i8, String, String)> {
    use arrow::array::AsArray;
    use arrow::datatypes::Int8Type;
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let dir = state.join("tables").join(name);
    let newest = std::fs::read_dir(&dir)
        .expect("table directory")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "arrow"))
        .max_by_key(|p| {
            let name = p.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
            name.trim_start_matches("gen-").parse::<u64>().unwrap_or(0)
        })
        .expect("a log generation");
    let file = std::fs::File::open(&newest).expect("open log");
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::BufReader::new(file), None).expect("log");
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.expect("whole batches after a clean exit");
        let kinds = batch.column_by_name("_eddy_kind").expect("kinds").as_primitive::<Int8Type>().clone();
        // The table's columns; the log's own (_eddy_kind, _eddy_writer, _eddy_epoch) follow.
        let columns = batch.num_columns() - 3;
        let options = FormatOptions::default();
        let formatters: Vec<_> =
            (0..columns).map(|c| ArrayFormatter::try_new(batch.column(c), &options).expect("format")).collect();
        for r in 0..batch.num_rows() {
            let row = formatters.iter().map(|f| f.value(r).to_string()).collect::<Vec<_>>().join("|");
            rows.push((kinds.value(r), formatters[0].value(r).to_string(), row));
        }
    }
    rows
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

/// A checkpoint torn by a crash while it was written (its state files cut short, its
/// manifest still the temporary file) is ignored: the next run resumes from the complete
/// checkpoint before it, removes the torn one, and the output is the uninterrupted run's.
#[test]
fn a_torn_checkpoint_is_ignored_on_recovery() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ref_out, out) = (dir.path().join("ref-out"), dir.path().join("out"));
    std::fs::write(dir.path().join("ref.sql"), pipeline(&ref_out)).expect("write");
    std::fs::write(dir.path().join("job.sql"), pipeline(&out)).expect("write");
    let want = reference_lines(dir.path(), &ref_out);

    kill_after_checkpoints(dir.path(), 2);

    // Tear a copy of the newest complete checkpoint, numbered after it.
    let jobs = dir.path().join("state").join("checkpoints");
    let job = std::fs::read_dir(&jobs).expect("jobs").flatten().next().expect("a job's checkpoints").path();
    let epoch_of = |p: &Path| p.file_name()?.to_str()?.strip_prefix("chk-")?.parse::<u64>().ok();
    let (newest, epoch) = std::fs::read_dir(&job)
        .expect("epochs")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("_manifest.json").exists())
        .filter_map(|p| epoch_of(&p).map(|e| (p, e)))
        .max_by_key(|(_, e)| *e)
        .expect("a complete checkpoint");
    let torn = job.join(format!("chk-{}", epoch + 1000));
    let mut cut = 0;
    for subtask in std::fs::read_dir(&newest).expect("states").flatten().filter(|e| e.path().is_dir()) {
        let to = torn.join(subtask.file_name());
        std::fs::create_dir_all(&to).expect("mkdir");
        for file in std::fs::read_dir(subtask.path()).expect("files").flatten() {
            let bytes = std::fs::read(file.path()).expect("read state");
            std::fs::write(to.join(file.file_name()), &bytes[..bytes.len() / 2]).expect("write torn state");
            cut += 1;
        }
    }
    assert!(cut > 0, "the checkpoint held no state files");
    let manifest = std::fs::read(newest.join("_manifest.json")).expect("manifest");
    std::fs::write(torn.join("_manifest.json.tmp"), &manifest[..manifest.len() / 2]).expect("write");

    let run = eddy().args(["run", "--state-dir", "state", "job.sql"]).current_dir(dir.path()).output().expect("run");
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert!(!torn.exists(), "the torn checkpoint is removed");
    let got = committed_lines(&out);
    assert_eq!(got.len(), want.len(), "rows after resuming past a torn checkpoint: {err}");
    assert!(got == want, "the output differs from the uninterrupted run's");
    let got_table = table_rows(&dir.path().join("state"), "totals_kept");
    assert_eq!(got_table, table_rows(&dir.path().join("ref-state"), "totals_kept"), "the table's rows");
}

/// The rows of upsert table `name` under `state`: its newest log generation replayed by
/// key (the first column), `+I`/`+U` writing a key's row and `-U`/`-D` removing it; each
/// row as its values joined by `|`, sorted by key.
fn upserted_rows(state: &Path, name: &str) -> Vec<String> {
    let mut rows = std::collections::BTreeMap::new();
    for (kind, key, row) in logged_rows(state, name) {
        match kind {
            0 | 2 => rows.insert(key, row),
            _ => rows.remove(&key),
        };
    }
    rows.into_values().collect()
}

/// A non-windowed GROUP BY (keyed, at parallelism 2, with MIN/MAX over a GROUP BY's
/// retractions) into an upsert result table, SIGKILLed at seeded moments and started again:
/// restored from its checkpoints, it ends with the rows of an uninterrupted run.
#[test]
fn a_group_by_killed_at_random_moments_ends_as_an_uninterrupted_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sql = "SET 'execution.checkpointing.interval' = '300 ms';
SET 'parallelism.default' = '2';
CREATE TABLE bids (
  id BIGINT,
  auction AS id % 97,
  price AS (id * 37) % 1000
) WITH (
  'connector' = 'datagen', 'rows-per-second' = '8000', 'number-of-rows' = '40000',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '40000'
);
CREATE TABLE per_auction (auction BIGINT, bids BIGINT, total BIGINT, top BIGINT, PRIMARY KEY (auction) NOT ENFORCED);
CREATE TABLE per_count (bids BIGINT, auctions BIGINT, lowest BIGINT, highest BIGINT, PRIMARY KEY (bids) NOT ENFORCED);
CREATE VIEW counts AS SELECT auction, COUNT(*) AS bids, SUM(price) AS total, MAX(price) AS top FROM bids GROUP BY auction;
INSERT INTO per_auction SELECT * FROM counts;
INSERT INTO per_count SELECT bids, COUNT(*), MIN(auction), MAX(auction) FROM counts GROUP BY bids;
";
    std::fs::write(dir.path().join("job.sql"), sql).expect("write");
    let reference = eddy()
        .args(["run", "--quiet", "--state-dir", "ref-state", "job.sql"])
        .current_dir(dir.path())
        .output()
        .expect("run");
    assert!(reference.status.success(), "{}", String::from_utf8_lossy(&reference.stderr));
    let want = upserted_rows(&dir.path().join("ref-state"), "per_auction");
    assert_eq!(want.len(), 97);
    let want_counts = upserted_rows(&dir.path().join("ref-state"), "per_count");
    // 40000 rows over 97 auctions: 36 auctions with 413 bids and 61 with 412.
    assert_eq!(want_counts, ["412|61|0|96", "413|36|1|36"]);
    let (kills, restored_from) = run_with_kills(dir.path(), "job.sql", "chaos-state", 7, 4, (600, 2400));
    assert!(kills >= 2, "the job was killed only {kills} times: it ended too soon to test recovery");
    assert!(restored_from.iter().any(|n| *n > 0), "no checkpoint completed before any kill: {restored_from:?}");
    assert_eq!(upserted_rows(&dir.path().join("chaos-state"), "per_auction"), want);
    assert_eq!(upserted_rows(&dir.path().join("chaos-state"), "per_count"), want_counts);
}

/// A stream joined to a file (a dimension table read at once) keeps checkpointing after the
/// file's source finished: later checkpoints record that subtask as finished, and a job
/// restored from one does not read the file again (the names would join twice: the counts
/// would double). Killed at seeded moments, the job writes what an uninterrupted run writes.
#[test]
fn checkpoints_go_on_after_a_dimension_file_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("names")).expect("mkdir");
    std::fs::write(dir.path().join("names/n.csv"), "0,zero\n1,one\n2,two\n").expect("write");
    let job = |out: &str| {
        format!(
            "SET 'execution.checkpointing.interval' = '100 ms';
SET 'parallelism.default' = '2';
CREATE TABLE trades (
  id BIGINT,
  k AS id % 3,
  ts AS TO_TIMESTAMP_LTZ(id * 100, 3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH (
  'connector' = 'datagen', 'rows-per-second' = '5000', 'number-of-rows' = '20000',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '20000'
);
CREATE TABLE names (k BIGINT, name STRING) WITH ('connector' = 'filesystem', 'path' = 'names', 'format' = 'csv');
CREATE TABLE counts (name STRING, window_start TIMESTAMP(3), n BIGINT)
  WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'csv');
CREATE VIEW named AS SELECT t.id, t.ts, n.name FROM trades t JOIN names n ON t.k = n.k;
INSERT INTO counts
SELECT name, window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE named, DESCRIPTOR(ts), INTERVAL '10' SECOND))
GROUP BY name, window_start, window_end;
"
        )
    };
    std::fs::write(dir.path().join("job.sql"), job("out")).expect("write");
    std::fs::write(dir.path().join("ref.sql"), job("ref-out")).expect("write");
    let expected = reference_lines(dir.path(), &dir.path().join("ref-out"));
    let total: u64 = expected.iter().filter_map(|l| l.rsplit(',').next()?.parse::<u64>().ok()).sum();
    assert_eq!(total, 20_000, "every trade counted once: {} lines", expected.len());
    let (kills, restored_from) = run_with_kills(dir.path(), "job.sql", "state", 0x5eed_f11e, 6, (600, 2500));
    println!("killed {kills} times; complete checkpoints on disk at each kill: {restored_from:?}");
    assert_eq!(committed_lines(&dir.path().join("out")), expected);
    // While the job runs, its checkpoints after the file was read list the file's
    // subtasks as finished (the final checkpoint, which is all a finished job keeps, holds
    // only the sinks' commits).
    let mut child = eddy()
        .args(["run", "--quiet", "--state-dir", "state-watch", "job.sql"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut finished_seen = Vec::new();
    while finished_seen.is_empty() && Instant::now() < deadline && child.try_wait().expect("wait").is_none() {
        for job in std::fs::read_dir(dir.path().join("state-watch/checkpoints")).into_iter().flatten().flatten() {
            for epoch in std::fs::read_dir(job.path()).into_iter().flatten().flatten() {
                let Ok(text) = std::fs::read_to_string(epoch.path().join("_manifest.json")) else { continue };
                let Ok(manifest) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
                if manifest["finished"] != serde_json::Value::Bool(true) {
                    finished_seen.extend(manifest["finished_tasks"].as_array().cloned().unwrap_or_default());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(!finished_seen.is_empty(), "no checkpoint recorded the file's finished subtasks");
}
