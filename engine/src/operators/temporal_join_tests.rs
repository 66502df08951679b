//! Temporal join tests: each left row joins the version valid at its time whatever the
//! arrival order, deletes end a key's versions, versions are freed behind the watermark,
//! processing time joins the latest version, and restore at every message.

use arrow::array::{Int8Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{Field, Schema, TimeUnit};

use super::*;
use crate::metrics::LateRowCounter;
use crate::operators::snapshot::assert_restores_everywhere;

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

/// `[key, side, l_name, l_ts, r_name, r_ts]`.
fn tagged() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("__join_key0", DataType::Utf8, true),
        Field::new("__join_side", DataType::Int8, false),
        Field::new("l_name", DataType::Utf8, true),
        Field::new("l_ts", ts_type(), true),
        Field::new("r_name", DataType::Utf8, true),
        Field::new("r_ts", ts_type(), true),
    ]))
}

fn operator(kind: JoinKind, event_time: bool) -> TemporalJoinOperator {
    let spec = TemporalJoinSpec {
        kind,
        key_names: vec!["__join_key0".into()],
        left_width: 2,
        right_width: 2,
        left_time: event_time.then_some(1),
        right_time: event_time.then_some(1),
        condition: None,
        display: "l.k = r.k".into(),
    };
    let ctx = OperatorContext {
        input_schema: tagged(),
        output_schema: Arc::new(Schema::new(tagged().fields()[2..].to_vec())),
        late_rows: LateRowCounter::detached(),
        state_ttl: None,
    };
    TemporalJoinOperator::new(spec, ctx).expect("operator")
}

/// Rows of one side: (kind, key, name, ts).
fn rows(side: i8, rows: &[(RowKind, &str, &str, i64)]) -> Message {
    let n = rows.len();
    let names: ArrayRef = Arc::new(StringArray::from(rows.iter().map(|r| r.2).collect::<Vec<_>>()));
    let times: ArrayRef = Arc::new(TimestampMillisecondArray::from(rows.iter().map(|r| r.3).collect::<Vec<_>>()));
    let null_names: ArrayRef = Arc::new(StringArray::from(vec![None::<&str>; n]));
    let null_times: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![None::<i64>; n]));
    let (l, r) =
        if side == 0 { ((names, times), (null_names, null_times)) } else { ((null_names, null_times), (names, times)) };
    let data = RecordBatch::try_new(
        tagged(),
        vec![
            Arc::new(StringArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
            Arc::new(Int8Array::from(vec![side; n])),
            l.0,
            l.1,
            r.0,
            r.1,
        ],
    )
    .expect("batch");
    let kinds = rows
        .iter()
        .any(|r| r.0 != RowKind::Insert)
        .then(|| Int8Array::from_iter_values(rows.iter().map(|r| r.0.code())));
    Message::Data(Batch { row_kinds: kinds, ..Batch::append(data) })
}

fn left(r: &[(&str, &str, i64)]) -> Message {
    rows(0, &r.iter().map(|(k, n, t)| (RowKind::Insert, *k, *n, *t)).collect::<Vec<_>>())
}

fn version(kind: RowKind, k: &str, n: &str, t: i64) -> Message {
    rows(1, &[(kind, k, n, t)])
}

fn wm(t: i64) -> Message {
    Message::Watermark(Watermark(t))
}

fn run(op: &mut TemporalJoinOperator, input: &[Message]) -> Vec<Message> {
    let mut out = Vec::new();
    for m in input {
        match m.clone() {
            Message::Data(b) => op.process_batch(b, &mut out).expect("batch"),
            Message::Watermark(w) => op.handle_watermark(w, &mut out).expect("watermark"),
            _ => {}
        }
    }
    out
}

/// `(left name, right name)`, `_` for NULL.
fn pairs(out: &[Message]) -> Vec<String> {
    let mut v = Vec::new();
    for m in out {
        if let Message::Data(b) = m {
            assert!(b.row_kinds.is_none(), "append-only");
            let l = b.data.column(0).as_string::<i32>();
            let r = b.data.column(2).as_string::<i32>();
            for i in 0..b.num_rows() {
                let r = if r.is_null(i) { "_" } else { r.value(i) };
                v.push(format!("({}, {r})", l.value(i)));
            }
        }
    }
    v
}

#[test]
fn each_row_joins_the_version_valid_at_its_time() {
    let mut op = operator(JoinKind::Left, true);
    let out = run(
        &mut op,
        &[
            // The row at 12 arrives before the version it reads.
            left(&[("eur", "o7", 7), ("eur", "o12", 12), ("eur", "o3", 3), ("usd", "u1", 8)]),
            version(RowKind::Insert, "eur", "r5", 5),
            version(RowKind::UpdateBefore, "eur", "r5", 5),
            version(RowKind::UpdateAfter, "eur", "r10", 10),
        ],
    );
    assert!(pairs(&out).is_empty(), "rows wait for the watermark");
    let out = run(&mut op, &[wm(12)]);
    assert_eq!(pairs(&out), ["(o3, _)", "(o7, r5)", "(u1, _)", "(o12, r10)"]);
    assert!(matches!(out.last(), Some(Message::Watermark(_))), "rows go before the watermark");
    // r5 can no longer be read: only r10 is held.
    assert_eq!(op.versions.values().map(BTreeMap::len).sum::<usize>(), 1);
    // A delete ends the key's versions from its time on.
    let out = run(
        &mut op,
        &[version(RowKind::Delete, "eur", "r10", 15), left(&[("eur", "o14", 14), ("eur", "o16", 16)]), wm(20)],
    );
    assert_eq!(pairs(&out), ["(o14, r10)", "(o16, _)"]);
    assert!(op.versions.is_empty() && op.waiting.is_empty());
    // An inner join drops the rows without a version.
    let mut op = operator(JoinKind::Inner, true);
    let out =
        run(&mut op, &[left(&[("eur", "o1", 1), ("eur", "o9", 9)]), version(RowKind::Insert, "eur", "r5", 5), wm(10)]);
    assert_eq!(pairs(&out), ["(o9, r5)"]);
}

#[test]
fn processing_time_joins_the_latest_version_at_once() {
    let mut op = operator(JoinKind::Left, false);
    let out = run(
        &mut op,
        &[
            left(&[("eur", "o1", 0)]),
            version(RowKind::Insert, "eur", "r1", 0),
            left(&[("eur", "o2", 0)]),
            version(RowKind::UpdateAfter, "eur", "r2", 0),
            left(&[("eur", "o3", 0)]),
            version(RowKind::Delete, "eur", "r2", 0),
            left(&[("eur", "o4", 0)]),
        ],
    );
    assert_eq!(pairs(&out), ["(o1, _)", "(o2, r1)", "(o3, r2)", "(o4, _)"]);
}

#[test]
fn restores_at_every_message() {
    let input = vec![
        left(&[("eur", "o7", 7), ("eur", "o12", 12)]),
        version(RowKind::Insert, "eur", "r5", 5),
        wm(8),
        version(RowKind::UpdateAfter, "eur", "r10", 10),
        left(&[("usd", "u9", 9)]),
        version(RowKind::Insert, "usd", "d1", 1),
        wm(20),
    ];
    let out = assert_restores_everywhere(|| operator(JoinKind::Left, true), &input);
    assert_eq!(pairs(&out), ["(o7, r5)", "(u9, d1)", "(o12, r10)"]);
}
