//! Checkpoints of the filesystem connector: the source resumed at its position, the sink's
//! two-phase commit and its recovery.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::*;
use arrow::datatypes::*;
use arrow::record_batch::RecordBatch;

use super::tests::{cols, fs_table, ids, write};
use crate::test_util::{concat, drain};
use crate::{create_sink, create_source, create_source_at, ConnectorTable, Sink, Split};

/// Read the split straight; then, for every batch boundary, read up to it, take the
/// position (through its JSON text, as a checkpoint keeps it), resume a new source there
/// and read the rest: each time the same rows as straight.
async fn resumes_at_every_batch(t: &ConnectorTable, split: Split) -> usize {
    let straight = {
        let mut src = create_source(t, split).unwrap();
        drain(src.as_mut()).await
    };
    let whole = concat(&straight);
    for k in 1..=straight.len() {
        let mut src = create_source(t, split).unwrap();
        let mut got = Vec::new();
        for _ in 0..k {
            got.push(src.next_batch().await.unwrap().unwrap().batch);
        }
        let text = src.position().unwrap().to_string();
        drop(src);
        let position: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut resumed = create_source_at(t, split, Some(&position)).unwrap();
        got.extend(drain(resumed.as_mut()).await);
        let got = concat(&got);
        let (a, b) = (ids(&got), ids(&whole));
        let first_difference = a.iter().zip(&b).position(|(x, y)| x != y);
        assert!(
            a.len() == b.len() && first_difference.is_none(),
            "resumed after batch {k} at {text}: {} rows, not {}; first difference at {first_difference:?}: {:?}/{:?}",
            a.len(),
            b.len(),
            first_difference.map(|i| &a[i..(i + 5).min(a.len())]),
            first_difference.map(|i| &b[i..(i + 5).min(b.len())]),
        );
        assert_eq!(got, whole, "resumed after batch {k} at {text}");
    }
    straight.len()
}

#[tokio::test]
async fn text_files_resume_at_the_next_line() {
    let dir = tempfile::tempdir().unwrap();
    // 20,000 lines: three batches from one file; blank lines between records.
    let a: String = (0..20_000)
        .map(|i| format!("{{\"id\": {i}, \"name\": \"a{i}\"}}\n{}", if i % 999 == 0 { "\n" } else { "" }))
        .collect();
    write(&dir.path().join("a.jsonl"), &a);
    write(&dir.path().join("b.jsonl"), "{\"id\": -1}\n\n{\"id\": -2}");
    write(&dir.path().join("sub/c.jsonl"), "{\"id\": -3}\n");
    let t = fs_table(dir.path(), "json", &[]);
    assert_eq!(resumes_at_every_batch(&t, Split { index: 0, count: 1 }).await, 5);
    for index in 0..2 {
        resumes_at_every_batch(&t, Split { index, count: 2 }).await;
    }

    // CSV, with quoted fields that hold line breaks.
    let dir = tempfile::tempdir().unwrap();
    let csv: String = (0..9_000).map(|i| format!("{i},\"line\n{i}\"\n")).collect();
    write(&dir.path().join("x.csv"), &csv);
    write(&dir.path().join("y.csv"), "1,y\n");
    let t = fs_table(dir.path(), "csv", &[]);
    assert_eq!(resumes_at_every_batch(&t, Split { index: 0, count: 1 }).await, 3);
}

#[tokio::test]
async fn a_resumed_file_names_bad_lines_by_their_line_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut text: String = (1..=9_000).map(|i| format!("{i},n\n")).collect();
    text.push_str("oops,n\n");
    write(&dir.path().join("f.csv"), &text);
    let t = fs_table(dir.path(), "csv", &[]);
    let mut src = create_source(&t, Split { index: 0, count: 1 }).unwrap();
    assert_eq!(src.next_batch().await.unwrap().unwrap().batch.num_rows(), 8192);
    let position = src.position().unwrap();
    assert_eq!(position["files"][0]["at"]["line"], 8192, "{position}");
    let mut resumed = create_source_at(&t, Split { index: 0, count: 1 }, Some(&position)).unwrap();
    let e = resumed.next_batch().await.unwrap_err().to_string();
    assert!(e.contains("f.csv:9001"), "{e}");
}

#[tokio::test]
async fn byte_ranges_of_a_big_json_file_resume_within_their_range() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.jsonl");
    let text: String =
        (1..=120_000).map(|i| format!("{{\"id\": {i}, \"name\": \"{}\"}}\n", "n".repeat(i % 37))).collect();
    assert!(text.len() as u64 > super::source::MIN_SPLIT_BYTES);
    write(&path, &text);
    let t = fs_table(&path, "json", &[]);
    let mut all = Vec::new();
    for index in 0..2 {
        let split = Split { index, count: 2 };
        let mut src = create_source(&t, split).unwrap();
        for _ in 0..3 {
            all.extend(ids(&src.next_batch().await.unwrap().unwrap().batch));
        }
        let position = src.position().unwrap();
        assert!(position["files"][0]["range"].is_array(), "{position}");
        let mut resumed = create_source_at(&t, split, Some(&position)).unwrap();
        all.extend(drain(resumed.as_mut()).await.iter().flat_map(ids));
    }
    all.sort();
    assert_eq!(all, (1..=120_000).collect::<Vec<i64>>());
}

/// A later byte range counts its lines from its first line, and the lines before it only
/// when an error names a line: also after resuming from a checkpoint taken before that.
#[tokio::test]
async fn a_resumed_byte_range_names_a_bad_line_by_its_line_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.jsonl");
    super::tests::big_json(&path, 200_000, Some(190_001));
    let t = fs_table(&path, "json", &[]);
    let split = Split { index: 1, count: 2 };
    let mut src = create_source(&t, split).unwrap();
    let first = ids(&src.next_batch().await.unwrap().unwrap().batch);
    let position = src.position().unwrap();
    let at = &position["files"][0]["at"];
    assert_eq!(at["line"], 8192, "lines from the range's first line: {position}");
    // The range's first line is the first row decoded; the lines before it are its id - 1.
    let from = at["lines_from"].as_u64().expect("the range's first line");
    let text = std::fs::read(&path).unwrap();
    assert_eq!(text[..from as usize].iter().filter(|b| **b == b'\n').count() as i64, first[0] - 1);
    let mut resumed = create_source_at(&t, split, Some(&position)).unwrap();
    let err = super::tests::first_error(resumed.as_mut()).await.expect("the bad line is in the second half");
    assert!(err.contains("big.jsonl:190001:"), "{err}");
}

fn write_parquet(path: &Path, ids: std::ops::Range<i64>, row_group: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let schema = Arc::new(Schema::new(cols()));
    let names: Vec<String> = ids.clone().map(|i| format!("n{i}")).collect();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(Int64Array::from_iter_values(ids)), Arc::new(StringArray::from(names))],
    )
    .unwrap();
    let props =
        parquet::file::properties::WriterProperties::builder().set_max_row_group_row_count(Some(row_group)).build();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[tokio::test]
async fn parquet_resumes_inside_a_row_group() {
    let dir = tempfile::tempdir().unwrap();
    // Row groups of 10,000 rows come out as batches of 8192 + 1808: positions fall inside
    // row groups and at their ends.
    write_parquet(&dir.path().join("a.parquet"), 0..25_000, 10_000);
    write_parquet(&dir.path().join("b.parquet"), 25_000..25_100, 10_000);
    let t = fs_table(dir.path(), "parquet", &[]);
    assert_eq!(resumes_at_every_batch(&t, Split { index: 0, count: 1 }).await, 6);
    let mut src = create_source(&t, Split { index: 0, count: 1 }).unwrap();
    src.next_batch().await.unwrap();
    let position = src.position().unwrap();
    assert_eq!(position["files"][0]["at"], serde_json::json!({ "rows": 8192 }), "{position}");
    assert!(position["files"][1]["path"].as_str().unwrap().ends_with("b.parquet"), "{position}");
}

#[tokio::test]
async fn a_position_must_fit_the_table() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("a.csv"), "1,a\n");
    let t = fs_table(dir.path(), "csv", &[]);
    let at =
        |p: serde_json::Value| create_source_at(&t, Split { index: 0, count: 1 }, Some(&p)).err().unwrap().to_string();
    let e = at(serde_json::json!({ "files": [{ "path": "/elsewhere/a.csv" }] }));
    assert!(e.contains("cannot resume from the checkpoint") && e.contains("not under the table's path"), "{e}");
    let inside = dir.path().join("a.csv");
    let e = at(serde_json::json!({ "files": [{ "path": inside, "at": { "rows": 3 } }] }));
    assert!(e.contains("parquet position for format 'csv'"), "{e}");
    let e = at(serde_json::json!({ "files": "a.csv" }));
    assert!(e.contains("cannot be read"), "{e}");
    // Finished: nothing left.
    let mut done =
        create_source_at(&t, Split { index: 0, count: 1 }, Some(&serde_json::json!({ "files": [] }))).unwrap();
    assert!(done.next_batch().await.unwrap().is_none());
}

// ---- the sink ----

fn batch(ids: std::ops::Range<i64>) -> RecordBatch {
    let schema = Arc::new(Schema::new(cols()));
    let names: Vec<String> = ids.clone().map(|i| format!("n{i}")).collect();
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(ids)), Arc::new(StringArray::from(names))])
        .unwrap()
}

/// Every file under `dir` (relative paths), sorted, hidden ones included.
fn all_files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p: PathBuf = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn visible(dir: &Path) -> Vec<String> {
    all_files(dir).into_iter().filter(|f| !f.split('/').any(|c| c.starts_with('.') || c.starts_with('_'))).collect()
}

/// The ids in the committed (visible) files, sorted.
async fn committed_ids(t: &ConnectorTable) -> Vec<i64> {
    let mut src = create_source(t, Split { index: 0, count: 1 }).unwrap();
    let mut ids: Vec<i64> = drain(src.as_mut()).await.iter().flat_map(ids).collect();
    ids.sort();
    ids
}

fn sink(t: &ConnectorTable, index: usize) -> Box<dyn Sink> {
    create_sink(t, Split { index, count: 2 }).unwrap()
}

#[tokio::test]
async fn pre_commit_closes_parts_and_commit_publishes_them() {
    for format in ["csv", "parquet"] {
        let dir = tempfile::tempdir().unwrap();
        let t = fs_table(dir.path(), format, &[]);
        let mut s = sink(&t, 0);
        s.write_batch(&batch(0..10), None).await.unwrap();
        let state = s.pre_commit(1).await.unwrap().unwrap();
        assert_eq!(state["pending"].as_array().unwrap().len(), 1, "{state}");
        assert_eq!(state["pending"][0]["epoch"], 1);
        // Rows after the barrier go to a new part; nothing is visible before the commit.
        s.write_batch(&batch(10..15), None).await.unwrap();
        assert!(visible(dir.path()).is_empty());
        assert_eq!(all_files(dir.path()).len(), 2);
        let state2 = s.pre_commit(2).await.unwrap().unwrap();
        // Checkpoint 1 is not committed yet: its part is still listed.
        assert_eq!(state2["pending"].as_array().unwrap().len(), 2, "{state2}");
        s.commit(1).await.unwrap();
        assert_eq!(committed_ids(&t).await, (0..10).collect::<Vec<_>>(), "{format}");
        s.commit(2).await.unwrap();
        assert_eq!(committed_ids(&t).await, (0..15).collect::<Vec<_>>(), "{format}");
        // An empty epoch pre-commits nothing; the final names keep the sink's pattern.
        let state3 = s.pre_commit(3).await.unwrap().unwrap();
        assert!(state3["pending"].as_array().unwrap().is_empty(), "{state3}");
        s.commit(3).await.unwrap();
        s.finish().await.unwrap();
        let names = visible(dir.path());
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(
            names.iter().all(|n| n.starts_with("part-") && (n.ends_with("-0-0") || n.ends_with("-0-1"))),
            "{names:?}"
        );
    }
}

#[tokio::test]
async fn recover_publishes_the_checkpoint_and_drops_what_came_after() {
    let dir = tempfile::tempdir().unwrap();
    let t = fs_table(dir.path(), "json", &[("sink.rolling-policy.file-size", "60b")]);
    // Another subtask's in-progress part must survive subtask 0's recovery.
    let mut other = sink(&t, 1);
    other.write_batch(&batch(1000..1002), None).await.unwrap();

    let mut s = sink(&t, 0);
    s.write_batch(&batch(0..10), None).await.unwrap();
    let state1 = s.pre_commit(1).await.unwrap().unwrap();
    // Rolled by size: several parts pending for the one epoch.
    assert!(state1["pending"].as_array().unwrap().len() > 1, "{state1}");
    s.commit(1).await.unwrap();
    s.write_batch(&batch(10..20), None).await.unwrap();
    let state2 = s.pre_commit(2).await.unwrap().unwrap();
    // Written after checkpoint 2, some rolled (closed) and one open; then a crash before
    // checkpoint 2's commit.
    s.write_batch(&batch(20..30), None).await.unwrap();
    drop(s);
    assert_eq!(committed_ids(&t).await, (0..10).collect::<Vec<_>>());

    let mut r = sink(&t, 0);
    r.recover(Some(state2.clone())).await.unwrap();
    // Checkpoint 2 is published; rows 20..30 are gone (the sources send them again).
    assert_eq!(committed_ids(&t).await, (0..20).collect::<Vec<_>>());
    let hidden: Vec<String> = all_files(dir.path()).into_iter().filter(|f| f.starts_with('.')).collect();
    assert_eq!(hidden.len(), 1, "only subtask 1's part is in progress: {hidden:?}");
    assert!(hidden[0].contains("-1-0.inprogress"), "{hidden:?}");
    // Replayed rows go to new parts, named after the recovered ones.
    r.write_batch(&batch(20..30), None).await.unwrap();
    let state3 = r.pre_commit(3).await.unwrap().unwrap();
    assert_eq!(state3["uuid"], state2["uuid"]);
    assert!(state3["next_part"].as_u64() > state2["next_part"].as_u64());
    r.commit(3).await.unwrap();
    assert_eq!(committed_ids(&t).await, (0..30).collect::<Vec<_>>());

    // Recovering from the same checkpoint again: already published, nothing changes.
    let before = all_files(dir.path());
    let mut again = sink(&t, 0);
    again.recover(Some(state2)).await.unwrap();
    assert_eq!(all_files(dir.path()), before);
    other.finish().await.unwrap();
    assert_eq!(committed_ids(&t).await.len(), 32);
}

#[tokio::test]
async fn recover_in_partition_directories_and_finish_publishes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = fs_table(dir.path(), "csv", &[]);
    let mut fields = cols();
    fields.push(Field::new("city", DataType::Utf8, true));
    t.schema = Arc::new(Schema::new(fields));
    t.partition_keys = vec!["city".into()];
    let rows = |ids: std::ops::Range<i64>, city: &str| {
        let n = ids.end - ids.start;
        RecordBatch::try_new(
            t.schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(ids.clone())),
                Arc::new(StringArray::from_iter_values(ids.map(|i| format!("n{i}")))),
                Arc::new(StringArray::from_iter_values((0..n).map(|_| city))),
            ],
        )
        .unwrap()
    };
    let mut s = create_sink(&t, Split { index: 0, count: 1 }).unwrap();
    s.write_batch(&rows(0..3, "a"), None).await.unwrap();
    s.write_batch(&rows(3..5, "b"), None).await.unwrap();
    let state = s.pre_commit(7).await.unwrap().unwrap();
    s.write_batch(&rows(5..6, "b"), None).await.unwrap();
    s.write_batch(&rows(6..7, "c"), None).await.unwrap();
    drop(s);
    let mut r = create_sink(&t, Split { index: 0, count: 1 }).unwrap();
    r.recover(Some(state)).await.unwrap();
    assert_eq!(visible(dir.path()).len(), 2, "{:?}", all_files(dir.path()));
    assert!(all_files(dir.path()).iter().all(|f| !f.contains(".inprogress")), "{:?}", all_files(dir.path()));
    // End of input: everything written is committed without a checkpoint, as before.
    r.write_batch(&rows(5..7, "c"), None).await.unwrap();
    r.finish().await.unwrap();
    assert_eq!(visible(dir.path()).len(), 3);
    let mut src = create_source(&t, Split { index: 0, count: 1 }).unwrap();
    let mut got: Vec<i64> = drain(src.as_mut()).await.iter().flat_map(ids).collect();
    got.sort();
    assert_eq!(got, (0..7).collect::<Vec<_>>());
}

#[tokio::test]
async fn recover_refuses_a_state_that_does_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let t = fs_table(dir.path(), "csv", &[]);
    let mut s = sink(&t, 0);
    s.write_batch(&batch(0..3), None).await.unwrap();
    let state = s.pre_commit(1).await.unwrap().unwrap();
    let e = sink(&t, 1).recover(Some(state.clone())).await.unwrap_err().to_string();
    assert!(e.contains("state of sink subtask 0 was given to subtask 1"), "{e}");
    let e = sink(&t, 0).recover(Some(serde_json::json!({ "pending": 3 }))).await.unwrap_err().to_string();
    assert!(e.contains("cannot resume from the checkpoint"), "{e}");
    // A pending part that vanished: its rows would be lost, so recovery fails.
    for f in all_files(dir.path()) {
        std::fs::remove_file(dir.path().join(f)).unwrap();
    }
    let e = sink(&t, 0).recover(Some(state)).await.unwrap_err().to_string();
    assert!(e.contains("is gone"), "{e}");
    // No state (no checkpoint yet): nothing to do.
    sink(&t, 0).recover(None).await.unwrap();
}
