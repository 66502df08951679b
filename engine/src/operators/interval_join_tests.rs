//! Interval join tests: matches within the bounds from either side, none outside, state
//! freed by the watermark, late rows dropped, the output watermark held back, and restore
//! at every message.

use arrow::array::{Int8Array, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{Field, Schema, TimeUnit};

use super::*;
use crate::operators::snapshot::assert_restores_everywhere;

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

/// `[key, side, l_name, l_ts, r_name, r_ts]`.
fn tagged() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("__join_key0", DataType::Int64, true),
        Field::new("__join_side", DataType::Int8, false),
        Field::new("l_name", DataType::Utf8, true),
        Field::new("l_ts", ts_type(), true),
        Field::new("r_name", DataType::Utf8, true),
        Field::new("r_ts", ts_type(), true),
    ]))
}

/// `r.ts BETWEEN l.ts + lower AND l.ts + upper`.
fn operator(lower: i64, upper: i64) -> (IntervalJoinOperator, LateRowCounter) {
    let output = Arc::new(Schema::new(tagged().fields()[2..].to_vec()));
    let spec = IntervalJoinSpec {
        key_names: vec!["__join_key0".into()],
        left_width: 2,
        right_width: 2,
        left_time: 1,
        right_time: 1,
        lower_ms: lower,
        upper_ms: upper,
        display: "l.k = r.k".into(),
    };
    let late_rows = LateRowCounter::detached();
    let ctx = OperatorContext {
        input_schema: tagged(),
        output_schema: output,
        late_rows: late_rows.clone(),
        state_ttl: None,
    };
    (IntervalJoinOperator::new(spec, ctx).expect("operator"), late_rows)
}

/// Rows of one side: (key, name, ts).
fn rows(side: i8, rows: &[(Option<i64>, &str, i64)]) -> Message {
    let n = rows.len();
    let names: ArrayRef = Arc::new(StringArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>()));
    let times: ArrayRef = Arc::new(TimestampMillisecondArray::from(rows.iter().map(|r| r.2).collect::<Vec<_>>()));
    let null_names: ArrayRef = Arc::new(StringArray::from(vec![None::<&str>; n]));
    let null_times: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![None::<i64>; n]));
    let (l, r) =
        if side == 0 { ((names, times), (null_names, null_times)) } else { ((null_names, null_times), (names, times)) };
    let data = RecordBatch::try_new(
        tagged(),
        vec![
            Arc::new(Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
            Arc::new(Int8Array::from(vec![side; n])),
            l.0,
            l.1,
            r.0,
            r.1,
        ],
    )
    .expect("batch");
    Message::Data(Batch::append(data))
}

fn left(r: &[(i64, &str, i64)]) -> Message {
    rows(0, &r.iter().map(|(k, n, t)| (Some(*k), *n, *t)).collect::<Vec<_>>())
}

fn right(r: &[(i64, &str, i64)]) -> Message {
    rows(1, &r.iter().map(|(k, n, t)| (Some(*k), *n, *t)).collect::<Vec<_>>())
}

fn run(op: &mut IntervalJoinOperator, input: &[Message]) -> Vec<Message> {
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

/// The joined (left name, right name) pairs, in order.
fn pairs(out: &[Message]) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for m in out {
        if let Message::Data(b) = m {
            let l = b.data.column(0).as_string::<i32>();
            let r = b.data.column(2).as_string::<i32>();
            for i in 0..b.num_rows() {
                v.push((l.value(i).to_string(), r.value(i).to_string()));
            }
        }
    }
    v
}

fn pair(l: &str, r: &str) -> (String, String) {
    (l.to_string(), r.to_string())
}

#[test]
fn rows_join_within_the_bounds_from_either_side() {
    let (mut op, _) = operator(0, 10);
    let out = run(
        &mut op,
        &[
            left(&[(1, "a", 100), (2, "b", 100)]),
            // Bounds inclusive; one ms outside either bound, or another key: no match.
            right(&[(1, "x0", 100), (1, "x10", 110), (1, "x11", 111), (1, "x-1", 99), (3, "y", 105)]),
            // A left row arriving after right rows joins the buffered ones in its range.
            left(&[(1, "c", 101), (3, "d", 95)]),
        ],
    );
    assert_eq!(
        pairs(&out),
        vec![pair("a", "x0"), pair("a", "x10"), pair("c", "x10"), pair("c", "x11"), pair("d", "y")]
    );
    let Some(Message::Data(b)) = out.first() else { panic!("{out:?}") };
    assert_eq!(b.data.schema().fields().len(), 4);
}

#[test]
fn negative_bounds_and_null_keys() {
    // r.ts BETWEEN l.ts - 5 AND l.ts - 1.
    let (mut op, _) = operator(-5, -1);
    let out = run(
        &mut op,
        &[
            right(&[(1, "x", 100)]),
            rows(0, &[(None, "null", 101)]),
            left(&[(1, "a", 101), (1, "b", 105), (1, "c", 106), (1, "d", 100)]),
        ],
    );
    assert_eq!(pairs(&out), vec![pair("a", "x"), pair("b", "x")]);
}

/// Rows of `side` still in its log: in the key table's lists, and not yet indexed.
fn held(op: &IntervalJoinOperator, side: usize) -> usize {
    op.state.values().map(|heads| op.logs[side].list(heads[side]).count()).sum::<usize>()
        + op.unindexed[side].keys.len()
}

#[test]
fn the_watermark_frees_state_holds_back_its_output_and_late_rows_are_dropped() {
    let (mut op, late) = operator(0, 10);
    // Two left batches: a (can match right rows up to 110) and b (up to 210); y (right, at
    // 195) can match left rows from 195.
    let out = run(&mut op, &[left(&[(1, "a", 100)]), left(&[(2, "b", 200)]), right(&[(2, "y", 195)])]);
    assert!(pairs(&out).is_empty());
    let full = op.state_bytes();
    assert!(full > 0);
    let out = run(&mut op, &[Message::Watermark(Watermark(109))]);
    assert!(matches!(out.as_slice(), [Message::Watermark(Watermark(99))]), "held back by 10: {out:?}");
    assert_eq!((held(&op, LEFT), held(&op, RIGHT)), (2, 1));
    // a's batch goes at 110 and, once as many rows went as there are keys, its key.
    run(&mut op, &[Message::Watermark(Watermark(110))]);
    assert_eq!((held(&op, LEFT), held(&op, RIGHT)), (1, 1));
    assert!(op.state_bytes() < full);
    run(&mut op, &[Message::Watermark(Watermark(195))]);
    assert_eq!((held(&op, LEFT), held(&op, RIGHT)), (1, 0), "y freed");
    // At or behind the watermark: late, dropped, counted.
    let out = run(&mut op, &[right(&[(2, "late", 195), (2, "z", 205)])]);
    assert_eq!(pairs(&out), vec![pair("b", "z")]);
    assert_eq!(late.get(), 1);
    run(&mut op, &[Message::Watermark(Watermark(210))]);
    assert!(op.state.is_empty());
    assert!(op.logs.iter().all(|log| log.buffered().bytes() == 0), "every batch's columns freed");
    let out = run(&mut op, &[Message::Watermark(Watermark::MAX)]);
    assert!(matches!(out.as_slice(), [Message::Watermark(Watermark::MAX)]), "{out:?}");
}

/// Rows of one batch are freed together, when the last of them expires; an expired row
/// still held never matches.
#[test]
fn a_batch_is_freed_with_its_latest_row_and_expired_rows_never_match() {
    let (mut op, _) = operator(0, 10);
    run(&mut op, &[left(&[(1, "a", 100), (1, "b", 150)]), Message::Watermark(Watermark(120))]);
    assert_eq!(held(&op, LEFT), 2, "a stays with b");
    // a could only match right rows up to 110: behind the watermark, so none can come.
    let out = run(&mut op, &[right(&[(1, "x", 121), (1, "y", 155)])]);
    assert_eq!(pairs(&out), vec![pair("b", "y")]);
    run(&mut op, &[Message::Watermark(Watermark(160))]);
    assert_eq!(held(&op, LEFT), 0);
}

#[test]
fn restores_at_every_message() {
    let input = vec![
        left(&[(1, "a", 100), (2, "b", 100)]),
        right(&[(1, "x", 104), (2, "y", 99)]),
        Message::Watermark(Watermark(102)),
        left(&[(1, "c", 103), (2, "late", 90)]),
        right(&[(1, "z", 110), (2, "w", 108)]),
        Message::Watermark(Watermark(111)),
        right(&[(1, "v", 112)]),
        left(&[(1, "e", 112)]),
        Message::Watermark(Watermark::MAX),
    ];
    let out = assert_restores_everywhere(|| operator(0, 10).0, &input);
    assert_eq!(
        pairs(&out),
        vec![
            pair("a", "x"),
            pair("c", "x"),
            pair("a", "z"),
            pair("c", "z"),
            pair("b", "w"),
            pair("c", "v"),
            pair("e", "v")
        ]
    );
}

/// A side's rows go into the key table once the other side's rows scanned them four times
/// over; rows matched before and after are the same, and keys without rows leave the table.
#[test]
fn rows_are_indexed_once_scanned_enough() {
    let (mut op, _) = operator(0, 10);
    run(&mut op, &[left(&[(1, "a", 100), (2, "b", 100)])]);
    assert!(op.state.is_empty());
    // Each right row scans the 2 left rows: the fifth finds them scanned 8 times.
    let probes: Vec<Message> =
        (0..5).map(|k| right(&[(1 + k % 2, ["x0", "x1", "x2", "x3", "x4"][k as usize], 101)])).collect();
    let out = run(&mut op, &probes);
    assert_eq!(op.state.len(), 2, "the left rows were indexed");
    assert_eq!(op.unindexed[LEFT].keys.len(), 0);
    assert_eq!(op.unindexed[RIGHT].keys.len(), 5);
    assert_eq!(held(&op, LEFT), 2);
    assert_eq!(pairs(&out), vec![pair("a", "x0"), pair("b", "x1"), pair("a", "x2"), pair("b", "x3"), pair("a", "x4")]);
    // A later left row of key 1 matches the right rows held before it, in their order.
    let out = run(&mut op, &[left(&[(1, "d", 101)])]);
    assert_eq!(pairs(&out), vec![pair("d", "x0"), pair("d", "x2"), pair("d", "x4")]);
    // Every row expires at 111; a sweep drops the keys.
    run(&mut op, &[Message::Watermark(Watermark(111))]);
    assert!(op.state.is_empty());
    assert_eq!((held(&op, LEFT), held(&op, RIGHT)), (0, 0));
}

/// A key's entry in the table is its key and two row indexes: a join on a price holds
/// millions of keys.
#[test]
fn a_key_costs_its_key_and_two_indexes() {
    assert_eq!(std::mem::size_of::<(CompactKey, Heads)>(), 40);
}
