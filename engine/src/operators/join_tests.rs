//! Regular join tests: inner pairs from either side, outer joins padding and taking the
//! padding back, retractions, duplicates, the ON condition beyond the keys, NULL keys,
//! state TTL, batch mode, and restore at every message.

use std::time::Duration;

use arrow::array::{Int64Array, StringArray};
use arrow::datatypes::{Field, Schema};
use datafusion::logical_expr::Operator as BinOp;
use datafusion::physical_expr::expressions::{BinaryExpr, Column};
use eddy_sql::plan::{ExprSpec, JoinKind};

use super::*;
use crate::message::Watermark;
use crate::metrics::LateRowCounter;
use crate::operators::snapshot::assert_restores_everywhere;
use crate::operators::ttl::ManualClock;

/// `[key, side, l_name, l_v, r_name, r_v]`.
fn tagged() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("__join_key0", DataType::Int64, true),
        Field::new("__join_side", DataType::Int8, false),
        Field::new("l_name", DataType::Utf8, true),
        Field::new("l_v", DataType::Int64, true),
        Field::new("r_name", DataType::Utf8, true),
        Field::new("r_v", DataType::Int64, true),
    ]))
}

struct Options {
    kind: JoinKind,
    /// `l_v < r_v` on top of the key.
    condition: bool,
    final_only: bool,
    ttl: Option<Duration>,
    /// A window join: the key is the window end (ms).
    window: bool,
    /// Both inputs are append-only (a side that is not outer is then held appended).
    append_only: bool,
}

fn join(kind: JoinKind) -> Options {
    Options { kind, condition: false, final_only: false, ttl: None, window: false, append_only: false }
}

fn operator(o: &Options) -> JoinOperator {
    let output = Arc::new(Schema::new(tagged().fields()[2..].to_vec()));
    let condition = o.condition.then(|| ExprSpec {
        expr: Arc::new(BinaryExpr::new(Arc::new(Column::new("l_v", 1)), BinOp::Lt, Arc::new(Column::new("r_v", 3)))),
        display: "l_v < r_v".into(),
    });
    let spec = JoinSpec {
        kind: o.kind,
        key_names: vec!["__join_key0".into()],
        nulls_equal: false,
        left_width: 2,
        right_width: 2,
        condition,
        final_only: o.final_only,
        window_end_key: o.window.then_some(0),
        display: "l.k = r.k".into(),
        append_only: [o.append_only; 2],
    };
    operator_counting(o, LateRowCounter::detached(), spec, output)
}

fn operator_counting(o: &Options, late_rows: LateRowCounter, spec: JoinSpec, output: SchemaRef) -> JoinOperator {
    let ctx = OperatorContext { input_schema: tagged(), output_schema: output, late_rows, state_ttl: o.ttl };
    JoinOperator::new(spec, ctx).expect("operator")
}

/// Rows of one side: (kind, key, name, v).
fn rows(side: i8, rows: &[(RowKind, Option<i64>, &str, i64)]) -> Message {
    let n = rows.len();
    let names: ArrayRef = Arc::new(StringArray::from(rows.iter().map(|r| r.2).collect::<Vec<_>>()));
    let values: ArrayRef = Arc::new(Int64Array::from(rows.iter().map(|r| r.3).collect::<Vec<_>>()));
    let null_names: ArrayRef = Arc::new(StringArray::from(vec![None::<&str>; n]));
    let null_values: ArrayRef = Arc::new(Int64Array::from(vec![None::<i64>; n]));
    let (l, r) = if side == 0 {
        ((names, values), (null_names, null_values))
    } else {
        ((null_names, null_values), (names, values))
    };
    let data = RecordBatch::try_new(
        tagged(),
        vec![
            Arc::new(Int64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
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

fn ins(side: i8, r: &[(i64, &str, i64)]) -> Message {
    rows(side, &r.iter().map(|(k, n, v)| (RowKind::Insert, Some(*k), *n, *v)).collect::<Vec<_>>())
}

fn del(side: i8, r: &[(i64, &str, i64)]) -> Message {
    rows(side, &r.iter().map(|(k, n, v)| (RowKind::Delete, Some(*k), *n, *v)).collect::<Vec<_>>())
}

fn run(op: &mut JoinOperator, input: &[Message]) -> Vec<Message> {
    let mut out = Vec::new();
    for m in input {
        match m.clone() {
            Message::Data(b) => op.process_batch(b, &mut out).expect("batch"),
            Message::Watermark(w) => op.handle_watermark(w, &mut out).expect("watermark"),
            Message::End => op.on_end(&mut out).expect("end"),
            _ => {}
        }
    }
    out
}

/// The output as `+I(a, x)` strings, NULL as `_`.
fn changes(out: &[Message]) -> Vec<String> {
    let mut v = Vec::new();
    for m in out {
        if let Message::Data(b) = m {
            let l = b.data.column(0).as_string::<i32>();
            let r = b.data.column(2).as_string::<i32>();
            for i in 0..b.num_rows() {
                let kind = b.row_kinds.as_ref().map_or(0, |k| k.value(i));
                let kind = RowKind::from_code(kind).expect("kind").short_string();
                let name =
                    |a: &arrow::array::StringArray| if a.is_null(i) { "_".to_string() } else { a.value(i).to_string() };
                v.push(format!("{kind}({}, {})", name(l), name(r)));
            }
        }
    }
    v
}

#[test]
fn inner_join_of_append_only_inputs_pairs_rows_from_either_side() {
    let mut op = operator(&join(JoinKind::Inner));
    let out = run(
        &mut op,
        &[
            ins(0, &[(1, "a", 0), (2, "b", 0)]),
            ins(1, &[(1, "x", 0), (1, "y", 0), (3, "z", 0)]),
            ins(0, &[(1, "c", 0), (3, "d", 0), (1, "a", 0)]),
        ],
    );
    assert_eq!(changes(&out), ["+I(a, x)", "+I(a, y)", "+I(c, x)", "+I(c, y)", "+I(d, z)", "+I(a, x)", "+I(a, y)"]);
    for m in &out {
        let Message::Data(b) = m else { continue };
        assert!(b.row_kinds.is_none(), "append-only output");
        assert_eq!(b.data.num_columns(), 4);
    }
    // A duplicate is held twice: a new right row joins both copies of a.
    assert_eq!(changes(&run(&mut op, &[ins(1, &[(1, "w", 0)])])), ["+I(a, w)", "+I(a, w)", "+I(c, w)"]);
}

/// Append-only inputs of an inner join are held appended (`join_rows`): the same pairs,
/// a duplicate held as a second row in arrival order; restored at every message, with the
/// condition beyond the keys.
#[test]
fn append_only_sides_are_held_appended_with_the_same_pairs() {
    let mut op = operator(&Options { append_only: true, ..join(JoinKind::Inner) });
    assert_eq!(op.appended, [true, true]);
    let input = [
        ins(0, &[(1, "a", 0), (2, "b", 0)]),
        ins(1, &[(1, "x", 0), (1, "y", 0), (3, "z", 0)]),
        ins(0, &[(1, "c", 0), (3, "d", 0), (1, "a", 0)]),
    ];
    let out = run(&mut op, &input);
    assert_eq!(changes(&out), ["+I(a, x)", "+I(a, y)", "+I(c, x)", "+I(c, y)", "+I(d, z)", "+I(a, x)", "+I(a, y)"]);
    assert!(out.iter().all(|m| matches!(m, Message::Data(b) if b.row_kinds.is_none())));
    assert_eq!(changes(&run(&mut op, &[ins(1, &[(1, "w", 0)])])), ["+I(a, w)", "+I(c, w)", "+I(a, w)"]);
    let input = vec![
        ins(0, &[(1, "a", 1), (2, "b", 5)]),
        ins(1, &[(1, "x", 3), (1, "x", 3), (2, "y", 0)]),
        Message::Watermark(Watermark(10)),
        ins(0, &[(1, "c", 0), (3, "d", 0), (1, "e", 4)]),
        ins(1, &[(3, "z", 7), (1, "w", 9)]),
    ];
    let appended = Options { condition: true, append_only: true, ..join(JoinKind::Inner) };
    let out = assert_restores_everywhere(|| operator(&appended), &input);
    assert_eq!(
        changes(&out),
        ["+I(a, x)", "+I(a, x)", "+I(c, x)", "+I(c, x)", "+I(d, z)", "+I(a, w)", "+I(c, w)", "+I(e, w)"]
    );
    // A LEFT join holds its left (outer) side distinct and its right side appended; the
    // padding comes and goes as without.
    for append_only in [false, true] {
        let mut op = operator(&Options { append_only, ..join(JoinKind::Left) });
        assert_eq!(op.appended, [false, append_only]);
        let input = [
            ins(0, &[(1, "a", 0), (2, "b", 0)]),
            ins(1, &[(1, "x", 0), (1, "x", 0)]),
            ins(0, &[(1, "c", 0), (2, "b", 0)]),
        ];
        assert_eq!(
            changes(&run(&mut op, &input)),
            ["+I(a, _)", "+I(b, _)", "-D(a, _)", "+I(a, x)", "+I(a, x)", "+I(c, x)", "+I(c, x)", "+I(b, _)"],
            "append-only: {append_only}"
        );
    }
    // With a state TTL (which frees a key's rows) nothing is appended.
    let op = operator(&Options { append_only: true, ttl: Some(Duration::from_secs(1)), ..join(JoinKind::Inner) });
    assert_eq!(op.appended, [false, false]);
}

/// One batch of the rows of two (a batch whose runs come from both sides).
fn both(first: Message, second: Message) -> Message {
    let (Message::Data(a), Message::Data(b)) = (first, second) else { panic!("two batches") };
    let data = arrow::compute::concat_batches(&tagged(), [&a.data, &b.data]).expect("concat");
    let kinds =
        |x: &Batch| x.row_kinds.clone().unwrap_or_else(|| Int8Array::from(vec![RowKind::Insert.code(); x.num_rows()]));
    let kinds = Int8Array::from_iter_values(kinds(&a).values().iter().chain(kinds(&b).values()).copied());
    Message::Data(Batch { row_kinds: Some(kinds), ..Batch::append(data) })
}

/// An inner join with a condition emits a run of added rows from the candidate pairs the
/// condition was evaluated on; a batch's earlier run of retractions still comes first.
#[test]
fn pairs_from_the_condition_batch_keep_the_output_order() {
    let mut op = operator(&Options { condition: true, ..join(JoinKind::Inner) });
    let out = run(
        &mut op,
        &[
            ins(0, &[(1, "a", 1), (1, "b", 5)]),
            ins(1, &[(1, "x", 3)]),
            both(del(0, &[(1, "a", 1)]), ins(1, &[(1, "y", 9), (1, "z", 2)])),
            both(ins(1, &[(1, "w", 6)]), ins(0, &[(1, "c", 0)])),
        ],
    );
    assert_eq!(
        changes(&out),
        ["+I(a, x)", "-D(a, x)", "+I(b, y)", "+I(b, w)", "+I(c, x)", "+I(c, y)", "+I(c, z)", "+I(c, w)"]
    );
    let kinds: Vec<bool> = out
        .iter()
        .filter_map(|m| match m {
            Message::Data(b) => Some(b.row_kinds.is_none()),
            _ => None,
        })
        .collect();
    // One batch per run: the retraction's carries kinds, the pairs' are append-only.
    assert_eq!(kinds, [true, false, true, true, true]);
}

#[test]
fn left_join_pads_and_takes_the_padding_back() {
    let mut op = operator(&join(JoinKind::Left));
    let out = run(
        &mut op,
        &[
            ins(0, &[(1, "a", 0)]),
            ins(1, &[(1, "x", 0)]),
            ins(1, &[(1, "y", 0), (2, "lonely", 0)]),
            del(1, &[(1, "x", 0)]),
            del(1, &[(1, "y", 0)]),
            del(0, &[(1, "a", 0)]),
        ],
    );
    assert_eq!(
        changes(&out),
        ["+I(a, _)", "-D(a, _)", "+I(a, x)", "+I(a, y)", "-D(a, x)", "-D(a, y)", "+I(a, _)", "-D(a, _)",]
    );
    // Only the right row of key 2 is left.
    assert_eq!(op.state.len(), 1);
}

#[test]
fn full_join_pads_both_sides_with_duplicates() {
    let mut op = operator(&join(JoinKind::Full));
    let out = run(
        &mut op,
        &[
            ins(1, &[(1, "x", 0), (1, "x", 0)]),
            ins(0, &[(1, "a", 0)]),
            ins(0, &[(1, "b", 0)]),
            del(0, &[(1, "a", 0)]),
            del(0, &[(1, "b", 0)]),
        ],
    );
    assert_eq!(
        changes(&out),
        [
            "+I(_, x)", "+I(_, x)", // a matches both copies of x: their padding goes, once per copy.
            "-D(_, x)", "-D(_, x)", "+I(a, x)", "+I(a, x)", "+I(b, x)", "+I(b, x)", "-D(a, x)", "-D(a, x)",
            // x still matches b: no padding yet.
            "-D(b, x)", "-D(b, x)", "+I(_, x)", "+I(_, x)",
        ]
    );
}

#[test]
fn right_join_with_a_condition_beyond_the_keys() {
    let mut op = operator(&Options { condition: true, ..join(JoinKind::Right) });
    let out = run(
        &mut op,
        &[
            ins(0, &[(1, "a", 5), (1, "b", 1)]),
            // x (3) matches b (1 < 3) only; y (0) matches nothing.
            ins(1, &[(1, "x", 3), (1, "y", 0)]),
            // c (2) also matches x, which was matched already: no padding change.
            ins(0, &[(1, "c", 2), (1, "d", 9)]),
            del(0, &[(1, "b", 1)]),
            del(0, &[(1, "c", 2)]),
        ],
    );
    assert_eq!(changes(&out), ["+I(b, x)", "+I(_, y)", "+I(c, x)", "-D(b, x)", "-D(c, x)", "+I(_, x)"]);
}

#[test]
fn updates_of_an_input_retract_their_pairs_and_null_keys_match_nothing() {
    let mut op = operator(&join(JoinKind::Left));
    let out = run(
        &mut op,
        &[
            ins(1, &[(1, "x", 0)]),
            rows(0, &[(RowKind::Insert, Some(1), "a", 1), (RowKind::Insert, None, "n", 0)]),
            rows(0, &[(RowKind::UpdateBefore, Some(1), "a", 1), (RowKind::UpdateAfter, Some(1), "a", 2)]),
            rows(1, &[(RowKind::Insert, None, "m", 0)]),
        ],
    );
    let Some(Message::Data(b)) = out.iter().find(|m| matches!(m, Message::Data(_))) else { panic!("{out:?}") };
    assert!(b.row_kinds.is_none(), "only inserts so far");
    assert_eq!(changes(&out), ["+I(a, x)", "+I(n, _)", "-D(a, x)", "+I(a, x)"]);
    assert_eq!(op.state.len(), 1, "NULL keys are not held");
}

#[test]
fn state_expires_per_key_after_the_ttl() {
    let clock = ManualClock::new();
    let mut op = operator(&Options { ttl: Some(Duration::from_secs(10)), ..join(JoinKind::Inner) });
    op.set_clock(clock.clock());
    run(&mut op, &[ins(1, &[(1, "x", 0), (2, "y", 0)])]);
    clock.advance(Duration::from_secs(6));
    // Key 1 written again: it lives on, key 2 does not.
    assert_eq!(changes(&run(&mut op, &[ins(0, &[(1, "a", 0)])])), ["+I(a, x)"]);
    clock.advance(Duration::from_secs(5));
    assert_eq!(changes(&run(&mut op, &[ins(0, &[(1, "b", 0), (2, "c", 0)])])), ["+I(b, x)"]);
    let key2 = op.tagged.keys.convert_columns(&[Arc::new(Int64Array::from(vec![2])) as ArrayRef]).expect("key");
    let sides = op.state.get(key2.row(0).as_ref()).map(|s| (s.sides[LEFT].len(), s.sides[RIGHT].len()));
    assert_eq!(sides, Some((1, 0)), "key 2's right row expired; c is held anew");
    clock.advance(Duration::from_secs(11));
    assert!(changes(&run(&mut op, &[ins(0, &[(1, "d", 0)])])).is_empty(), "key 1 expired");
}

#[test]
fn batch_mode_emits_the_final_result_at_the_end() {
    let mut op = operator(&Options { final_only: true, condition: true, ..join(JoinKind::Full) });
    let out = run(
        &mut op,
        &[
            ins(0, &[(1, "a", 1), (2, "b", 1)]),
            ins(1, &[(1, "x", 3), (1, "y", 0)]),
            rows(0, &[(RowKind::Insert, None, "n", 0)]),
            del(0, &[(2, "b", 1)]),
            ins(0, &[(1, "a", 1)]),
        ],
    );
    assert!(out.is_empty(), "nothing before the end: {out:?}");
    let mut got = changes(&run(&mut op, &[Message::End]));
    got.sort();
    assert_eq!(got, ["+I(_, y)", "+I(a, x)", "+I(a, x)", "+I(n, _)"]);
    assert!(op.snapshot_state().is_err(), "batch mode takes no checkpoints");
}

#[test]
fn restores_at_every_message() {
    let input = vec![
        ins(0, &[(1, "a", 1), (2, "b", 5)]),
        ins(1, &[(1, "x", 3), (1, "x", 3), (2, "y", 0)]),
        Message::Watermark(Watermark(10)),
        del(1, &[(1, "x", 3)]),
        ins(0, &[(1, "c", 0), (3, "d", 0)]),
        del(0, &[(1, "a", 1)]),
        ins(1, &[(3, "z", 7), (1, "w", 9)]),
    ];
    let out = assert_restores_everywhere(|| operator(&Options { condition: true, ..join(JoinKind::Full) }), &input);
    assert_eq!(
        changes(&out),
        [
            "+I(a, _)", "+I(b, _)", "-D(a, _)", "+I(a, x)", "+I(a, x)", "+I(_, y)",
            // One copy of x goes: a still matches the other.
            "-D(a, x)", "+I(c, x)", "+I(d, _)", "-D(a, x)", "-D(d, _)", "+I(d, z)", "+I(c, w)",
        ]
    );
}

#[test]
fn a_window_join_emits_each_window_once_the_watermark_closes_it() {
    let o = Options { window: true, ..join(JoinKind::Left) };
    let late = LateRowCounter::detached();
    let mut op = {
        let probe = operator(&o);
        let spec = probe.spec.clone();
        operator_counting(&o, late.clone(), spec, probe.output_schema.clone())
    };
    // The key is the window end: 10 and 20.
    let out = run(&mut op, &[ins(0, &[(10, "a", 0), (20, "b", 0)]), ins(1, &[(10, "x", 0), (10, "y", 0)])]);
    assert!(changes(&out).is_empty(), "nothing before the window closes: {out:?}");
    let out = run(&mut op, &[Message::Watermark(Watermark(8))]);
    assert!(changes(&out).is_empty());
    // Window 10 closes at watermark 9 (window_end - 1).
    let out = run(&mut op, &[Message::Watermark(Watermark(9))]);
    assert_eq!(changes(&out), ["+I(a, x)", "+I(a, y)"]);
    assert!(matches!(out.last(), Some(Message::Watermark(Watermark(9)))), "rows before the watermark");
    for m in &out {
        if let Message::Data(b) = m {
            assert!(b.row_kinds.is_none(), "append-only, outer join included");
        }
    }
    // A row of the closed window is late; b's window closes unmatched: padded.
    let out = run(&mut op, &[ins(1, &[(10, "late", 0)]), Message::Watermark(Watermark(19))]);
    assert_eq!(changes(&out), ["+I(b, _)"]);
    assert_eq!(late.get(), 1);
    assert!(op.state.is_empty() && op.windows.is_empty(), "closed windows are freed");
}

#[test]
fn a_window_join_restores_at_every_message() {
    let input = vec![
        ins(0, &[(10, "a", 1), (20, "b", 5)]),
        ins(1, &[(10, "x", 3), (20, "y", 0)]),
        Message::Watermark(Watermark(9)),
        ins(1, &[(10, "late", 3), (20, "z", 9)]),
        Message::Watermark(Watermark(30)),
    ];
    let out = assert_restores_everywhere(
        || operator(&Options { window: true, condition: true, ..join(JoinKind::Full) }),
        &input,
    );
    assert_eq!(changes(&out), ["+I(a, x)", "+I(b, z)", "+I(_, y)"]);
}

/// A semi or anti join over `tagged()`, emitting the left columns only.
fn filtering(kind: JoinKind) -> JoinOperator {
    let spec = JoinSpec {
        kind,
        key_names: vec!["__join_key0".into()],
        nulls_equal: false,
        left_width: 2,
        right_width: 2,
        condition: None,
        final_only: false,
        window_end_key: None,
        display: "l.k = r.k".into(),
        append_only: [false, false],
    };
    let output = Arc::new(Schema::new(tagged().fields()[2..4].to_vec()));
    let ctx = OperatorContext {
        input_schema: tagged(),
        output_schema: output,
        late_rows: LateRowCounter::detached(),
        state_ttl: None,
    };
    JoinOperator::new(spec, ctx).expect("operator")
}

/// `+I(a)` for the left-only output.
fn left_changes(out: &[Message]) -> Vec<String> {
    let mut v = Vec::new();
    for m in out {
        if let Message::Data(b) = m {
            assert_eq!(b.data.num_columns(), 2, "left columns only");
            let l = b.data.column(0).as_string::<i32>();
            for i in 0..b.num_rows() {
                let kind = b.row_kinds.as_ref().map_or(0, |k| k.value(i));
                let kind = RowKind::from_code(kind).expect("kind").short_string();
                v.push(format!("{kind}({})", if l.is_null(i) { "_" } else { l.value(i) }));
            }
        }
    }
    v
}

#[test]
fn semi_and_anti_joins_emit_left_rows_by_whether_they_match() {
    let input = [
        ins(0, &[(1, "a", 0), (2, "b", 0)]),
        // Two matches for a: a goes out (semi) or back (anti) once.
        ins(1, &[(1, "x", 0), (1, "y", 0)]),
        ins(0, &[(1, "c", 0)]),
        rows(0, &[(RowKind::Insert, None, "n", 0)]),
        del(1, &[(1, "x", 0)]),
        del(1, &[(1, "y", 0)]),
    ];
    let mut semi = filtering(JoinKind::Semi);
    assert_eq!(left_changes(&run(&mut semi, &input)), ["+I(a)", "+I(c)", "-D(a)", "-D(c)"]);
    let mut anti = filtering(JoinKind::Anti);
    assert_eq!(left_changes(&run(&mut anti, &input)), ["+I(a)", "+I(b)", "-D(a)", "+I(n)", "+I(a)", "+I(c)"]);
    // An append-only semi join only ever adds rows.
    let mut semi = filtering(JoinKind::Semi);
    let out = run(
        &mut semi,
        &[ins(1, &[(1, "x", 0)]), ins(0, &[(1, "a", 0), (2, "b", 0)]), ins(1, &[(2, "z", 0), (1, "w", 0)])],
    );
    assert_eq!(left_changes(&out), ["+I(a)", "+I(b)"]);
    assert!(out.iter().all(|m| !matches!(m, Message::Data(b) if b.row_kinds.is_some())));
}
