//! Top-N tests: ranks kept up to date from an append-only input (rows pushed down and out),
//! from an updating input (a retracted top row makes room for the next), keep-last
//! deduplication, no partition keys, state TTL, and restore at every message.

use std::time::Duration;

use arrow::array::{Int64Array, StringArray, UInt64Array};
use arrow::datatypes::{Field, Schema};
use datafusion::physical_expr::expressions::Column;
use eddy_sql::plan::{ExprSpec, SortKey};

use super::*;
use crate::metrics::LateRowCounter;
use crate::operators::snapshot::assert_restores_everywhere;
use crate::operators::ttl::ManualClock;

/// `[k, name, v]` in; out with `rownum` (UInt64, as DataFusion's ROW_NUMBER).
fn schemas() -> (SchemaRef, SchemaRef) {
    let fields = vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
    ];
    let input = Arc::new(Schema::new(fields.clone()));
    let mut out = fields;
    out.push(Field::new("rownum", DataType::UInt64, false));
    (input, Arc::new(Schema::new(out)))
}

fn column(name: &str, i: usize) -> ExprSpec {
    ExprSpec { expr: Arc::new(Column::new(name, i)), display: name.into() }
}

/// Top `limit` per `k` by `v DESC`.
fn operator(limit: usize, ties: TieBreak, input_updating: bool, keyed: bool, ttl: Option<Duration>) -> TopNOperator {
    let (input, output) = schemas();
    let spec = TopNSpec {
        partition_keys: if keyed { vec![column("k", 0)] } else { vec![] },
        order_by: vec![SortKey { expr: column("v", 2), descending: true, nulls_first: false }],
        limit,
        ties,
        input_updating,
    };
    let ctx = OperatorContext {
        input_schema: input,
        output_schema: output,
        late_rows: LateRowCounter::detached(),
        state_ttl: ttl,
    };
    TopNOperator::new(spec, ctx).expect("operator")
}

fn rows(rows: &[(RowKind, &str, &str, i64)]) -> Message {
    let (input, _) = schemas();
    let data = RecordBatch::try_new(
        input,
        vec![
            Arc::new(StringArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
            Arc::new(StringArray::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
            Arc::new(Int64Array::from(rows.iter().map(|r| r.3).collect::<Vec<_>>())),
        ],
    )
    .expect("batch");
    let kinds = rows
        .iter()
        .any(|r| r.0 != RowKind::Insert)
        .then(|| Int8Array::from_iter_values(rows.iter().map(|r| r.0.code())));
    Message::Data(Batch { row_kinds: kinds, ..Batch::append(data) })
}

fn ins(r: &[(&str, &str, i64)]) -> Message {
    rows(&r.iter().map(|(k, n, v)| (RowKind::Insert, *k, *n, *v)).collect::<Vec<_>>())
}

fn run(op: &mut TopNOperator, input: &[Message]) -> Vec<String> {
    let mut out = Vec::new();
    for m in input {
        if let Message::Data(b) = m.clone() {
            op.process_batch(b, &mut out).expect("batch");
        }
    }
    changes(&out)
}

/// `+I(k, name, v, rank)`.
fn changes(out: &[Message]) -> Vec<String> {
    let mut v = Vec::new();
    for m in out {
        if let Message::Data(b) = m {
            let k = b.data.column(0).as_string::<i32>();
            let n = b.data.column(1).as_string::<i32>();
            let x = b.data.column(2).as_primitive::<arrow::datatypes::Int64Type>();
            let r = b.data.column(3).as_any().downcast_ref::<UInt64Array>().expect("UInt64 rank");
            for i in 0..b.num_rows() {
                let kind = b.row_kinds.as_ref().map_or(0, |k| k.value(i));
                let kind = RowKind::from_code(kind).expect("kind").short_string();
                v.push(format!("{kind}({}, {}, {}, {})", k.value(i), n.value(i), x.value(i), r.value(i)));
            }
        }
    }
    v
}

#[test]
fn ranks_follow_an_append_only_input() {
    let mut op = operator(2, TieBreak::Oldest, false, true, None);
    assert_eq!(run(&mut op, &[ins(&[("a", "x", 5), ("b", "y", 1)])]), ["+I(a, x, 5, 1)", "+I(b, y, 1, 1)"]);
    // A better row pushes x down to rank 2; a tie ranks after the row that came first.
    assert_eq!(run(&mut op, &[ins(&[("a", "z", 7)])]), ["-U(a, x, 5, 1)", "+U(a, z, 7, 1)", "+I(a, x, 5, 2)"]);
    assert_eq!(run(&mut op, &[ins(&[("a", "t", 5)])]), Vec::<String>::new(), "t ties with x, after it: rank 3");
    // A row entering at the top pushes x out.
    assert_eq!(
        run(&mut op, &[ins(&[("a", "w", 9)])]),
        ["-U(a, z, 7, 1)", "+U(a, w, 9, 1)", "-U(a, x, 5, 2)", "+U(a, z, 7, 2)"]
    );
    // Within a batch only the net change per rank goes out.
    assert_eq!(
        run(&mut op, &[ins(&[("b", "p", 3), ("b", "q", 4)])]),
        ["-U(b, y, 1, 1)", "+U(b, q, 4, 1)", "+I(b, p, 3, 2)"]
    );
    // An append-only input holds only the top rows.
    assert_eq!(op.partitions.values().map(|p| p.ranked.len()).sum::<usize>(), 4);
}

#[test]
fn a_retracted_top_row_makes_room_for_the_next() {
    let mut op = operator(2, TieBreak::Oldest, true, true, None);
    let out = run(
        &mut op,
        &[
            ins(&[("a", "x", 5), ("a", "y", 3), ("a", "z", 1)]),
            rows(&[(RowKind::UpdateBefore, "a", "x", 5), (RowKind::UpdateAfter, "a", "x", 2)]),
            rows(&[(RowKind::Delete, "a", "y", 3)]),
            rows(&[(RowKind::Delete, "a", "x", 2), (RowKind::Delete, "a", "z", 1)]),
        ],
    );
    assert_eq!(
        out,
        [
            "+I(a, x, 5, 1)",
            "+I(a, y, 3, 2)",
            "-U(a, x, 5, 1)",
            "+U(a, y, 3, 1)",
            "-U(a, y, 3, 2)",
            "+U(a, x, 2, 2)",
            "-U(a, y, 3, 1)",
            "+U(a, x, 2, 1)",
            "-U(a, x, 2, 2)",
            "+U(a, z, 1, 2)",
            "-D(a, x, 2, 1)",
            "-D(a, z, 1, 2)",
        ]
    );
    assert!(op.partitions.is_empty());
}

#[test]
fn keep_last_dedup_replaces_on_ties_and_without_keys_there_is_one_partition() {
    let mut op = operator(1, TieBreak::Newest, false, true, None);
    let out = run(&mut op, &[ins(&[("a", "x", 5)]), ins(&[("a", "y", 5)]), ins(&[("a", "old", 4)])]);
    assert_eq!(out, ["+I(a, x, 5, 1)", "-U(a, x, 5, 1)", "+U(a, y, 5, 1)"]);
    let mut op = operator(1, TieBreak::Oldest, false, false, None);
    let out = run(&mut op, &[ins(&[("a", "x", 5), ("b", "y", 6), ("c", "z", 6)])]);
    assert_eq!(out, ["+I(b, y, 6, 1)"]);
}

#[test]
fn partitions_expire_after_the_ttl() {
    let clock = ManualClock::new();
    let mut op = operator(1, TieBreak::Oldest, false, true, Some(Duration::from_secs(10)));
    op.set_clock(clock.clock());
    run(&mut op, &[ins(&[("a", "x", 5), ("b", "y", 5)])]);
    clock.advance(Duration::from_secs(6));
    run(&mut op, &[ins(&[("a", "low", 1)])]);
    clock.advance(Duration::from_secs(5));
    // b expired: a lower row is first again; a did not.
    assert_eq!(run(&mut op, &[ins(&[("a", "low2", 2), ("b", "low", 1)])]), ["+I(b, low, 1, 1)"]);
}

#[test]
fn restores_at_every_message() {
    let input = vec![
        ins(&[("a", "x", 5), ("a", "y", 3), ("b", "z", 1)]),
        rows(&[(RowKind::UpdateBefore, "a", "x", 5), (RowKind::UpdateAfter, "a", "x", 2)]),
        ins(&[("a", "w", 3), ("b", "q", 8)]),
        rows(&[(RowKind::Delete, "a", "y", 3)]),
        ins(&[("a", "v", 4)]),
    ];
    let out = assert_restores_everywhere(|| operator(2, TieBreak::Oldest, true, true, None), &input);
    assert_eq!(
        changes(&out),
        [
            "+I(a, x, 5, 1)",
            "+I(a, y, 3, 2)",
            "+I(b, z, 1, 1)",
            "-U(a, x, 5, 1)",
            "+U(a, y, 3, 1)",
            "-U(a, y, 3, 2)",
            "+U(a, x, 2, 2)",
            "-U(a, x, 2, 2)",
            "+U(a, w, 3, 2)",
            "-U(b, z, 1, 1)",
            "+U(b, q, 8, 1)",
            "+I(b, z, 1, 2)",
            "-U(a, y, 3, 1)",
            "+U(a, w, 3, 1)",
            "-U(a, w, 3, 2)",
            "+U(a, x, 2, 2)",
            "-U(a, w, 3, 1)",
            "+U(a, v, 4, 1)",
            "-U(a, x, 2, 2)",
            "+U(a, w, 3, 2)",
        ]
    );
}
