use std::sync::Arc;

use arrow::array::*;
use arrow::datatypes::*;

use super::*;
use crate::test_util::{concat, drain, table};

fn ints(batch: &RecordBatch, col: usize) -> Vec<i64> {
    let a = arrow::compute::cast(batch.column(col), &DataType::Int64).unwrap();
    a.as_any().downcast_ref::<Int64Array>().unwrap().iter().map(|v| v.unwrap()).collect()
}

#[tokio::test]
async fn sequence_is_split_over_subtasks_and_ends() {
    let t = table(
        vec![Field::new("id", DataType::Int32, false), Field::new("s", DataType::Utf8, true)],
        &[
            ("connector", "datagen"),
            ("rows-per-second", "1000000"),
            ("fields.id.kind", "sequence"),
            ("fields.id.start", "1"),
            ("fields.id.end", "10"),
            ("fields.s.length", "5"),
        ],
    );
    assert!(is_bounded(&t).unwrap());
    let mut all = Vec::new();
    for index in 0..3 {
        let mut src = create_source(&t, Split { index, count: 3 }, None).unwrap();
        let rows = concat(&drain(src.as_mut()).await);
        let ids = ints(&rows, 0);
        // Subtask i gets start + i, start + i + 3, ... (Flink's strided split).
        assert!(ids.windows(2).all(|w| w[1] - w[0] == 3), "{ids:?}");
        assert_eq!(ids[0], 1 + index as i64);
        let s = rows.column(1).as_string::<i32>();
        assert!(s.iter().all(|v| v.unwrap().len() == 5 && v.unwrap().chars().all(|c| c.is_ascii_hexdigit())));
        all.extend(ids);
    }
    all.sort();
    assert_eq!(all, (1..=10).collect::<Vec<_>>());
}

#[tokio::test]
async fn number_of_rows_and_ranges() {
    let t = table(
        vec![
            Field::new("a", DataType::Int64, true),
            Field::new("d", DataType::Float64, true),
            Field::new("b", DataType::Boolean, true),
            Field::new("dec", DataType::Decimal128(6, 2), true),
        ],
        &[
            ("connector", "datagen"),
            ("number-of-rows", "25"),
            ("rows-per-second", "1000000"),
            ("fields.a.min", "5"),
            ("fields.a.max", "7"),
            ("fields.d.min", "0.5"),
            ("fields.d.max", "1.5"),
            ("fields.dec.min", "-1"),
            ("fields.dec.max", "1"),
            ("seed", "42"),
        ],
    );
    assert!(is_bounded(&t).unwrap());
    let mut total = 0;
    for index in 0..2 {
        let mut src = create_source(&t, Split { index, count: 2 }, None).unwrap();
        let rows = concat(&drain(src.as_mut()).await);
        total += rows.num_rows();
        assert_eq!(rows.num_rows(), if index == 0 { 13 } else { 12 });
        assert!(ints(&rows, 0).iter().all(|v| (5..=7).contains(v)));
        let d = rows.column(1).as_primitive::<Float64Type>();
        assert!(d.values().iter().all(|v| (0.5..=1.5).contains(v)));
        let dec = rows.column(3).as_primitive::<Decimal128Type>();
        assert!(dec.values().iter().all(|v| (-100..=100).contains(v)));
    }
    assert_eq!(total, 25);
}

#[tokio::test]
async fn seed_makes_output_reproducible() {
    let t = table(
        vec![Field::new("a", DataType::Int32, true), Field::new("s", DataType::Utf8, true)],
        &[("connector", "datagen"), ("number-of-rows", "50"), ("seed", "7"), ("fields.a.null-rate", "0.5")],
    );
    let run = || async {
        let mut src = create_source(&t, Split { index: 0, count: 1 }, None).unwrap();
        concat(&drain(src.as_mut()).await)
    };
    let (x, y) = (run().await, run().await);
    assert_eq!(x, y);
    let nulls = x.column(0).null_count();
    assert!(nulls > 5 && nulls < 45, "null-rate 0.5 gave {nulls} of 50");
    assert!(!is_bounded(&table(vec![Field::new("a", DataType::Int32, true)], &[("connector", "datagen")])).unwrap());
}

#[tokio::test]
async fn timestamps_nested_types_and_max_past() {
    let row =
        DataType::Struct(vec![Field::new("x", DataType::Int16, true), Field::new("y", DataType::Utf8, true)].into());
    let list = DataType::List(Arc::new(Field::new("item", DataType::Int8, true)));
    let t = table(
        vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("ltz", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
            Field::new("r", row, true),
            Field::new("l", list, true),
            Field::new("day", DataType::Date32, true),
            Field::new("t", DataType::Time32(TimeUnit::Millisecond), true),
            Field::new("bin", DataType::Binary, true),
        ],
        &[
            ("connector", "datagen"),
            ("number-of-rows", "20"),
            ("fields.ts.max-past", "10 s"),
            ("fields.r.x.min", "1"),
            ("fields.r.x.max", "3"),
            ("fields.r.y.length", "2"),
            ("fields.l.length", "4"),
            ("fields.l.element.min", "0"),
            ("fields.l.element.max", "9"),
            ("fields.bin.length", "3"),
        ],
    );
    let before = chrono::Utc::now().timestamp_millis();
    let mut src = create_source(&t, Split { index: 0, count: 1 }, None).unwrap();
    let rows = concat(&drain(src.as_mut()).await);
    let after = chrono::Utc::now().timestamp_millis();
    assert_eq!(rows.num_rows(), 20);
    let ts = rows.column(0).as_primitive::<TimestampMillisecondType>();
    assert!(ts.values().iter().all(|v| *v >= before - 10_000 && *v <= after));
    let ltz = rows.column(1).as_primitive::<TimestampMicrosecondType>();
    assert!(ltz.values().iter().all(|v| *v >= before * 1000 && *v <= after * 1000));
    let r = rows.column(2).as_struct();
    assert!(r.column(0).as_primitive::<Int16Type>().values().iter().all(|v| (1..=3).contains(v)));
    assert!(r.column(1).as_string::<i32>().iter().all(|v| v.unwrap().len() == 2));
    let l = rows.column(3).as_list::<i32>();
    assert!((0..20).all(|i| l.value_length(i) == 4));
    assert!(l.values().as_primitive::<Int8Type>().values().iter().all(|v| (0..=9).contains(v)));
    assert_eq!(rows.column(6).as_binary::<i32>().value(0).len(), 3);
}

#[test]
fn bad_options_name_the_field() {
    let f = vec![Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true)];
    let e = validate(&table(f.clone(), &[("connector", "datagen"), ("fields.ts.kind", "sequence")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("field 'ts'") && e.contains("sequence"), "{e}");
    let e = validate(&table(f.clone(), &[("connector", "datagen"), ("fields.nope.kind", "random")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("fields.nope.kind"), "{e}");
    let e = validate(&table(f.clone(), &[("connector", "datagen"), ("fields.ts.min", "1")])).unwrap_err().to_string();
    assert!(e.contains("fields.ts.min"), "{e}");
    let ints = vec![Field::new("i", DataType::Int8, true)];
    let e =
        validate(&table(ints.clone(), &[("connector", "datagen"), ("fields.i.max", "1000")])).unwrap_err().to_string();
    assert!(e.contains("field 'i'"), "{e}");
    let e = validate(&table(ints, &[("connector", "datagen"), ("fields.i.kind", "sequence"), ("fields.i.start", "1")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("fields.i.end"), "{e}");
    let e = validate(&table(f, &[("connector", "datagen"), ("rows-per-second", "0")])).unwrap_err().to_string();
    assert!(e.contains("rows-per-second"), "{e}");
}

#[tokio::test]
async fn rate_limit_is_respected() {
    let t = table(
        vec![Field::new("a", DataType::Int32, true)],
        &[("connector", "datagen"), ("rows-per-second", "200"), ("number-of-rows", "60")],
    );
    let start = std::time::Instant::now();
    let mut src = create_source(&t, Split { index: 0, count: 1 }, None).unwrap();
    let rows: usize = drain(src.as_mut()).await.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 60);
    // 60 rows at 200/s: the last 20-row batch is released after 40 rows' time = 200 ms.
    assert!(start.elapsed() >= std::time::Duration::from_millis(190), "{:?}", start.elapsed());
}

/// Read `first` batches, checkpoint, resume a new source at the position and read the rest:
/// the rows before and after, together.
async fn run_with_restart(t: &ConnectorTable, split: Split, first: usize) -> RecordBatch {
    let mut src = create_source(t, split, None).unwrap();
    let mut batches = Vec::new();
    for _ in 0..first {
        batches.push(src.next_batch().await.unwrap().unwrap().batch);
    }
    let position = src.position().unwrap();
    drop(src);
    let mut resumed = crate::create_source_at(t, split, Some(&position)).unwrap();
    batches.extend(drain(resumed.as_mut()).await);
    concat(&batches)
}

#[tokio::test]
async fn resumed_split_continues_rows_sequences_and_seeded_values() {
    let row = DataType::Struct(vec![Field::new("n", DataType::Int64, false)].into());
    let t = table(
        vec![
            Field::new("id", DataType::Int64, false),
            Field::new("r", row, true),
            Field::new("a", DataType::Int32, true),
            Field::new("s", DataType::Utf8, true),
        ],
        &[
            ("connector", "datagen"),
            // 100 rows per batch at 1000/s over one split.
            ("rows-per-second", "1000"),
            ("number-of-rows", "250"),
            ("seed", "11"),
            ("fields.id.kind", "sequence"),
            ("fields.id.start", "1"),
            ("fields.id.end", "100000"),
            ("fields.r.n.kind", "sequence"),
            ("fields.r.n.start", "-5"),
            ("fields.r.n.end", "100000"),
            ("fields.a.null-rate", "0.3"),
            ("fields.s.length", "4"),
            ("fields.s.var-len", "true"),
        ],
    );
    let whole = {
        let mut src = create_source(&t, Split { index: 0, count: 1 }, None).unwrap();
        concat(&drain(src.as_mut()).await)
    };
    assert_eq!(whole.num_rows(), 250);
    for first in [1, 2] {
        let restarted = run_with_restart(&t, Split { index: 0, count: 1 }, first).await;
        assert_eq!(restarted, whole, "restart after {first} batches");
    }
    // A split of two: each resumes its own strided sequence and its own share.
    for index in 0..2 {
        let split = Split { index, count: 2 };
        let mut src = create_source(&t, split, None).unwrap();
        let straight = concat(&drain(src.as_mut()).await);
        assert_eq!(src.position(), Some(serde_json::json!({ "rows": 125 })));
        assert_eq!(run_with_restart(&t, split, 2).await, straight);
    }
}

#[tokio::test]
async fn unseeded_resume_keeps_count_and_sequences() {
    let t = table(
        vec![Field::new("id", DataType::Int32, false), Field::new("v", DataType::Float64, true)],
        &[
            ("connector", "datagen"),
            ("rows-per-second", "1000"),
            ("fields.id.kind", "sequence"),
            ("fields.id.start", "0"),
            ("fields.id.end", "349"),
        ],
    );
    let rows = run_with_restart(&t, Split { index: 0, count: 1 }, 2).await;
    assert_eq!(ints(&rows, 0), (0..350).collect::<Vec<_>>());
}

#[test]
fn bad_positions_are_checkpoint_errors() {
    let t = table(
        vec![Field::new("id", DataType::Int32, false)],
        &[("connector", "datagen"), ("fields.id.kind", "sequence"), ("fields.id.start", "1"), ("fields.id.end", "10")],
    );
    let at = |p: serde_json::Value| crate::create_source_at(&t, Split { index: 0, count: 1 }, Some(&p)).err();
    let e = at(serde_json::json!({ "offset": 3 })).unwrap().to_string();
    assert!(e.contains("cannot resume from the checkpoint") && e.contains("'rows'"), "{e}");
    let e = at(serde_json::json!({ "rows": 11 })).unwrap().to_string();
    assert!(e.contains("only 10 values left"), "{e}");
    assert!(at(serde_json::json!({ "rows": 10 })).is_none());
}
