use std::path::Path;
use std::sync::Arc;

use arrow::array::*;
use arrow::datatypes::*;
use arrow::record_batch::RecordBatch;

use crate::test_util::{concat, drain, table};
use crate::{create_sink, create_source, ConnectorTable, Split};

pub(super) fn cols() -> Vec<Field> {
    vec![Field::new("id", DataType::Int64, true), Field::new("name", DataType::Utf8, true)]
}

pub(super) fn fs_table(path: &Path, format: &str, extra: &[(&str, &str)]) -> ConnectorTable {
    let path = path.to_str().unwrap().to_string();
    let mut options = vec![("connector", "filesystem"), ("path", path.as_str()), ("format", format)];
    options.extend_from_slice(extra);
    table(cols(), &options)
}

pub(super) fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Visible (non-hidden) file names in `dir`, sorted.
fn visible(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && !n.starts_with('_'))
        .collect();
    names.sort();
    names
}

pub(super) fn ids(batch: &RecordBatch) -> Vec<i64> {
    batch.column(0).as_primitive::<Int64Type>().values().to_vec()
}

async fn read_all(t: &ConnectorTable, split: Split) -> RecordBatch {
    let mut src = create_source(t, split).unwrap();
    concat(&drain(src.as_mut()).await)
}

#[tokio::test]
async fn reads_a_directory_in_order_and_splits_files() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("a.jsonl"), "{\"id\": 1, \"name\": \"x\"}\n{\"id\": 2}\n");
    write(&dir.path().join("b.jsonl"), "{\"id\": 3}");
    write(&dir.path().join("sub/c.jsonl"), "{\"id\": 4}\n");
    write(&dir.path().join(".hidden"), "garbage");
    write(&dir.path().join("_SUCCESS"), "");
    let t = fs_table(dir.path(), "json", &[]);
    assert_eq!(ids(&read_all(&t, Split { index: 0, count: 1 }).await), vec![1, 2, 3, 4]);
    // Files round-robin over subtasks: a, sub/c to subtask 0; b to subtask 1.
    assert_eq!(ids(&read_all(&t, Split { index: 0, count: 2 }).await), vec![1, 2, 4]);
    assert_eq!(ids(&read_all(&t, Split { index: 1, count: 2 }).await), vec![3]);
    assert!(crate::is_bounded(&t).unwrap());
    // A single file works as well.
    let one = fs_table(&dir.path().join("b.jsonl"), "json", &[]);
    assert_eq!(ids(&read_all(&one, Split { index: 0, count: 1 }).await), vec![3]);
}

#[tokio::test]
async fn malformed_line_is_named_or_skipped() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("file.jsonl"), "{\"id\": 1}\n{\"id\": 2}\n{\"id\": 3, \"name\": \"trunc\n{\"id\": 4}\n");
    let t = fs_table(dir.path(), "json", &[]);
    let mut src = create_source(&t, Split { index: 0, count: 1 }).unwrap();
    let err = src.next_batch().await.unwrap_err().to_string();
    assert!(err.contains("file.jsonl:3"), "{err}");

    let t = fs_table(dir.path(), "json", &[("json.ignore-parse-errors", "true")]);
    let mut src = create_source(&t, Split { index: 0, count: 1 }).unwrap();
    let rows = concat(&drain(src.as_mut()).await);
    assert_eq!(ids(&rows), vec![1, 2, 4]);
    assert_eq!(src.skipped_records(), 1);
}

#[tokio::test]
async fn large_file_spans_chunks_in_full_batches() {
    let dir = tempfile::tempdir().unwrap();
    let n = 40_000;
    let text: String = (0..n).map(|i| format!("{i},name-{i:0>20}\n")).collect();
    assert!(text.len() > 1 << 20);
    write(&dir.path().join("big.csv"), &text);
    let t = fs_table(dir.path(), "csv", &[]);
    let mut src = create_source(&t, Split { index: 0, count: 1 }).unwrap();
    let batches = drain(src.as_mut()).await;
    assert!(batches.iter().all(|b| b.num_rows() <= 8192));
    let all = concat(&batches);
    assert_eq!(ids(&all), (0..n).collect::<Vec<i64>>());
    assert_eq!(all.column(1).as_string::<i32>().value(39_999), "name-00000000000000039999");
}

#[tokio::test]
async fn metadata_and_partition_columns() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("dt=2024-03-01/city=New%20York/f.csv"), "1,a\n2,b\n");
    write(&dir.path().join("dt=__DEFAULT_PARTITION__/city=x/g.csv"), "3,c\n");
    let mut t = fs_table(dir.path(), "csv", &[]);
    let mut fields = cols();
    fields.push(Field::new("dt", DataType::Date32, true));
    fields.push(Field::new("city", DataType::Utf8, true));
    fields.push(Field::new("fname", DataType::Utf8, true));
    fields.push(Field::new("fsize", DataType::Int64, true));
    fields.push(Field::new("mtime", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), true));
    fields.push(Field::new("fpath", DataType::Utf8, true));
    t.schema = Arc::new(Schema::new(fields));
    t.partition_keys = vec!["dt".into(), "city".into()];
    t.metadata = vec![
        (4, "file.name".into()),
        (5, "file.size".into()),
        (6, "file.modification-time".into()),
        (7, "file.path".into()),
    ];
    crate::validate(&t, true, false).unwrap();
    let b = read_all(&t, Split { index: 0, count: 1 }).await;
    assert_eq!(ids(&b), vec![1, 2, 3]);
    let dt = b.column(2).as_primitive::<Date32Type>();
    assert_eq!(dt.value(0), 19783);
    assert!(dt.is_null(2));
    assert_eq!(b.column(3).as_string::<i32>().value(0), "New York");
    assert_eq!(b.column(4).as_string::<i32>().value(2), "g.csv");
    assert_eq!(b.column(5).as_primitive::<Int64Type>().value(0), 8);
    assert!(b.column(6).as_primitive::<TimestampMillisecondType>().value(0) > 1_600_000_000_000);
    assert!(b.column(7).as_string::<i32>().value(0).ends_with("city=New%20York/f.csv"));

    t.metadata = vec![(4, "file.owner".into())];
    let e = crate::validate(&t, true, false).unwrap_err().to_string();
    assert!(e.contains("file.owner") && e.contains("file.path"), "{e}");
}

fn batch(ids: std::ops::Range<i64>) -> RecordBatch {
    let schema = Arc::new(Schema::new(cols()));
    let names: Vec<String> = ids.clone().map(|i| format!("n{i}")).collect();
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(ids)), Arc::new(StringArray::from(names))])
        .unwrap()
}

#[tokio::test]
async fn sink_commits_part_files_on_finish() {
    for format in ["json", "csv"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let t = fs_table(&out, format, &[]);
        let mut sinks: Vec<_> = (0..2).map(|i| create_sink(&t, Split { index: i, count: 2 }).unwrap()).collect();
        sinks[0].write_batch(&batch(0..3), None).await.unwrap();
        sinks[1].write_batch(&batch(3..5), None).await.unwrap();
        // Written, but hidden until the commit.
        assert!(visible(&out).is_empty());
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 2);
        for s in &mut sinks {
            s.finish().await.unwrap();
        }
        let names = visible(&out);
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(
            names.iter().all(|n| n.starts_with("part-") && (n.ends_with("-0-0") || n.ends_with("-1-0"))),
            "{names:?}"
        );
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 2, "no in-progress file left");
        let mut got = ids(&read_all(&t, Split { index: 0, count: 1 }).await);
        got.sort();
        assert_eq!(got, vec![0, 1, 2, 3, 4], "{format}");
    }
}

#[tokio::test]
async fn sink_rolls_files_between_rows_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let t = fs_table(dir.path(), "csv", &[("sink.rolling-policy.file-size", "20b")]);
    let mut sink = create_sink(&t, Split { index: 0, count: 1 }).unwrap();
    sink.write_batch(&batch(0..10), None).await.unwrap();
    sink.write_batch(&batch(10..12), None).await.unwrap();
    sink.finish().await.unwrap();
    let mut names = visible(dir.path());
    // Order parts by their counter, the last `-<n>` of the name.
    names.sort_by_key(|n| n.rsplit('-').next().unwrap().parse::<u32>().unwrap());
    // 5-7 byte rows: parts hold rows 0-3, 4-7, then 8-11 (the second batch continues the part).
    assert_eq!(names.len(), 3, "{names:?}");
    let text: String = names.iter().map(|n| std::fs::read_to_string(dir.path().join(n)).unwrap()).collect();
    let expected: String = (0..12).map(|i| format!("{i},n{i}\n")).collect();
    assert_eq!(text, expected);
    for n in &names {
        // A part is closed once it reaches 20 bytes, so none holds more than one row past that.
        let size = std::fs::metadata(dir.path().join(n)).unwrap().len();
        assert!(size < 20 + 7, "{n}: {size}");
    }
}

#[tokio::test]
async fn partitioned_sink_writes_directories() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = fs_table(dir.path(), "json", &[("sink.partition-commit.policy.kind", "success-file")]);
    let mut fields = cols();
    fields.push(Field::new("city", DataType::Utf8, true));
    t.schema = Arc::new(Schema::new(fields));
    t.partition_keys = vec!["city".into()];
    let b = RecordBatch::try_new(
        t.schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(StringArray::from(vec!["a", "b", "c"])),
            Arc::new(StringArray::from(vec![Some("x/y"), None, Some("x/y")])),
        ],
    )
    .unwrap();
    let mut sink = create_sink(&t, Split { index: 0, count: 1 }).unwrap();
    sink.write_batch(&b, None).await.unwrap();
    sink.finish().await.unwrap();
    assert_eq!(visible(dir.path()), vec!["city=__DEFAULT_PARTITION__", "city=x%2Fy"]);
    let xy = dir.path().join("city=x%2Fy");
    assert!(xy.join("_SUCCESS").exists());
    let part = visible(&xy).pop().unwrap();
    assert_eq!(
        std::fs::read_to_string(xy.join(part)).unwrap(),
        "{\"id\":1,\"name\":\"a\"}\n{\"id\":3,\"name\":\"c\"}\n"
    );
    // Reading the directory back restores the partition column.
    let mut back = read_all(&t, Split { index: 0, count: 1 }).await;
    back = arrow::compute::sort_to_indices(back.column(0), None, None)
        .map(|idx| arrow::compute::take_record_batch(&back, &idx).unwrap())
        .unwrap();
    assert_eq!(back, b);
}

/// Nexmark q10's sink: partitions by day and minute, committed (success file) once the
/// watermark at a completed checkpoint passes the minute's end plus the delay.
#[tokio::test]
async fn partition_time_commit_waits_for_the_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = fs_table(
        dir.path(),
        "csv",
        &[
            ("sink.partition-commit.trigger", "partition-time"),
            ("sink.partition-commit.delay", "1 min"),
            ("sink.partition-commit.policy.kind", "success-file"),
            ("partition.time-extractor.timestamp-pattern", "$dt $hm:00"),
        ],
    );
    let mut fields = cols();
    fields.push(Field::new("dt", DataType::Utf8, true));
    fields.push(Field::new("hm", DataType::Utf8, true));
    t.schema = Arc::new(Schema::new(fields));
    t.partition_keys = vec!["dt".into(), "hm".into()];
    let rows = |id: i64, hm: &str| {
        RecordBatch::try_new(
            t.schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![id])),
                Arc::new(StringArray::from(vec!["x"])),
                Arc::new(StringArray::from(vec!["2024-03-01"])),
                Arc::new(StringArray::from(vec![hm])),
            ],
        )
        .unwrap()
    };
    let minute = |hm: &str| dir.path().join("dt=2024-03-01").join(format!("hm={}", hm.replace(':', "%3A")));
    // 2024-03-01 10:02:30 UTC.
    let watermark = 1_709_287_350_000;
    let mut sink = create_sink(&t, Split { index: 0, count: 1 }).unwrap();
    sink.write_batch(&rows(1, "10:00"), None).await.unwrap();
    sink.write_batch(&rows(2, "10:01"), None).await.unwrap();
    sink.write_batch(&rows(3, "10:02"), None).await.unwrap();
    sink.watermark(watermark);
    sink.pre_commit(1).await.unwrap();
    assert!(!minute("10:00").join("_SUCCESS").exists(), "committed before the checkpoint completed");
    sink.commit(1).await.unwrap();
    // 10:00 + 1 min < 10:02:30; 10:01 + 1 min < 10:02:30; 10:02 + 1 min is not.
    assert!(minute("10:00").join("_SUCCESS").exists());
    assert!(minute("10:01").join("_SUCCESS").exists());
    assert!(!minute("10:02").join("_SUCCESS").exists());
    assert_eq!(visible(&minute("10:00")).len(), 1, "{:?}", visible(&minute("10:00")));
    // A later watermark commits nothing until the next checkpoint completes.
    sink.watermark(watermark + 60_000);
    sink.write_batch(&rows(4, "10:03"), None).await.unwrap();
    sink.pre_commit(2).await.unwrap();
    sink.commit(2).await.unwrap();
    assert!(minute("10:02").join("_SUCCESS").exists());
    assert!(!minute("10:03").join("_SUCCESS").exists());
    // The end of the input commits the rest.
    sink.finish().await.unwrap();
    assert!(minute("10:03").join("_SUCCESS").exists());
    assert_eq!(std::fs::read_to_string(minute("10:03").join(visible(&minute("10:03"))[0].clone())).unwrap(), "4,x\n");
}

#[tokio::test]
async fn parquet_sink_is_readable() {
    let dir = tempfile::tempdir().unwrap();
    let t = fs_table(dir.path(), "parquet", &[]);
    let mut sink = create_sink(&t, Split { index: 0, count: 1 }).unwrap();
    sink.write_batch(&batch(0..100), None).await.unwrap();
    assert!(visible(dir.path()).is_empty());
    sink.finish().await.unwrap();
    let name = visible(dir.path()).pop().unwrap();
    let file = std::fs::File::open(dir.path().join(name)).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    assert_eq!(concat(&batches), batch(0..100));

    // The filesystem source reads it back; columns are matched by name, a missing one is NULL.
    assert_eq!(read_all(&t, Split { index: 0, count: 1 }).await, batch(0..100));
    let mut t2 = t.clone();
    t2.schema = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, true),
        Field::new("missing", DataType::Int32, true),
        Field::new("id", DataType::Int32, true),
    ]));
    let b = read_all(&t2, Split { index: 0, count: 1 }).await;
    assert_eq!(b.column(0).as_string::<i32>().value(7), "n7");
    assert_eq!(b.column(1).null_count(), 100);
    assert_eq!(b.column(2).as_primitive::<Int32Type>().value(7), 7);
}

#[tokio::test]
async fn sink_rejects_updates_and_bad_options() {
    let dir = tempfile::tempdir().unwrap();
    let t = fs_table(dir.path(), "csv", &[]);
    let mut sink = create_sink(&t, Split { index: 0, count: 1 }).unwrap();
    let kinds = Int8Array::from(vec![0, 1, 2]);
    let e = sink.write_batch(&batch(0..3), Some(&kinds)).await.unwrap_err().to_string();
    assert!(e.contains("only accepts inserts"), "{e}");

    let e = crate::validate(&fs_table(dir.path(), "csv", &[("sink.rolling-policy.file-size", "big")]), false, true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("sink.rolling-policy.file-size"), "{e}");
    let e = crate::validate(&fs_table(dir.path(), "csv", &[("json.ignore-parse-errors", "true")]), true, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("'json.ignore-parse-errors'"), "{e}");
    let e = crate::validate(&fs_table(dir.path(), "json", &[("source.monitor-interval", "1 s")]), true, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not supported yet"), "{e}");
    let e = crate::validate(&fs_table(Path::new("s3://bucket/x"), "json", &[]), true, false).unwrap_err().to_string();
    assert!(e.contains("s3://"), "{e}");
    // Nothing is created by validate.
    let missing = dir.path().join("not-created");
    crate::validate(&fs_table(&missing, "json", &[]), false, true).unwrap();
    assert!(!missing.exists());
}

/// A JSON-lines file big enough to be read in byte ranges by several subtasks.
pub(super) fn big_json(path: &Path, rows: i64, bad_line: Option<i64>) {
    let mut text = String::new();
    for i in 1..=rows {
        if Some(i) == bad_line {
            text.push_str("{\"id\": oops}\n");
        } else {
            // Varying lengths so range ends fall at different places within lines.
            text.push_str(&format!("{{\"id\": {i}, \"name\": \"{}\"}}\n", "n".repeat((i % 37) as usize)));
        }
    }
    write(path, &text);
}

#[tokio::test]
async fn one_big_json_file_is_read_in_byte_ranges_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.jsonl");
    big_json(&path, 200_000, None);
    assert!(std::fs::metadata(&path).unwrap().len() > 2 * super::source::MIN_SPLIT_BYTES);
    for count in [1, 2, 3, 7] {
        let t = fs_table(&path, "json", &[]);
        let mut all = Vec::new();
        let mut per_split = Vec::new();
        for index in 0..count {
            let mut src = create_source(&t, Split { index, count }).unwrap();
            let got: Vec<i64> = drain(src.as_mut()).await.iter().flat_map(ids).collect();
            per_split.push(got.len());
            all.extend(got);
        }
        all.sort();
        assert_eq!(all, (1..=200_000).collect::<Vec<i64>>(), "count {count}");
        if count > 1 {
            assert!(per_split.iter().all(|n| *n > 0), "every subtask reads a range: {per_split:?}");
        }
    }
}

/// The first error reading `src` to its end, if any.
pub(super) async fn first_error(src: &mut dyn crate::Source) -> Option<String> {
    loop {
        match src.next_batch().await {
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(e) => return Some(e.to_string()),
        }
    }
}

#[tokio::test]
async fn a_bad_line_in_a_later_range_names_its_line_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.jsonl");
    big_json(&path, 200_000, Some(150_001));
    let t = fs_table(&path, "json", &[]);
    let mut src = create_source(&t, Split { index: 1, count: 2 }).unwrap();
    let err = first_error(src.as_mut()).await.expect("the bad line is in the second half");
    assert!(err.contains("big.jsonl:150001:"), "{err}");
}
