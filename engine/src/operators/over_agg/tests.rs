//! Tests of the OVER aggregation: results checked row by row against hand-computed values,
//! for every frame, out-of-order and late input, several keys, and restores.

use std::sync::Arc;

use arrow::array::{Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::util::display::array_value_to_string;
use datafusion::common::ScalarValue;
use datafusion::functions_aggregate::average::avg_udaf;
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::functions_aggregate::min_max::{max_udaf, min_udaf};
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::logical_expr::AggregateUDF;
use datafusion::physical_expr::aggregate::AggregateExprBuilder;
use datafusion::physical_expr::expressions::{cast as cast_expr, col};
use datafusion::physical_expr::PhysicalExpr;
use eddy_sql::plan::{ExprSpec, OverAggSpec, OverCall, OverFrame, OverFunction};

use super::OverAggregateOperator;
use crate::message::{Batch, Message, Watermark};
use crate::metrics::LateRowCounter;
use crate::operators::snapshot::assert_restores_everywhere;
use crate::operators::{OperatorContext, StreamOperator};

/// (k, ts, v).
type Row<'a> = (&'a str, i64, Option<i64>);

fn input_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new("v", DataType::Int64, true),
    ]))
}

fn batch(rows: &[Row]) -> Batch {
    let k = StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>());
    let ts = TimestampMillisecondArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>());
    let v = Int64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>());
    Batch::append(RecordBatch::try_new(input_schema(), vec![Arc::new(k), Arc::new(ts), Arc::new(v)]).unwrap())
}

fn data(rows: &[Row]) -> Message {
    Message::Data(batch(rows))
}

fn wm(t: i64) -> Message {
    Message::Watermark(Watermark(t))
}

fn v() -> Arc<dyn PhysicalExpr> {
    col("v", &input_schema()).unwrap()
}

fn agg(udaf: Arc<AggregateUDF>) -> OverCall {
    let name = format!("{}(v)", udaf.name());
    // AVG takes a DOUBLE: the planner's type coercion casts its argument.
    let arg = if udaf.name() == "avg" { cast_expr(v(), &input_schema(), DataType::Float64).unwrap() } else { v() };
    let function =
        AggregateExprBuilder::new(udaf, vec![arg]).schema(input_schema()).alias(name.clone()).build().unwrap();
    OverCall { function: OverFunction::Aggregate(Arc::new(function)), display: name }
}

fn lag(offset: usize, default: Option<i64>) -> OverCall {
    let default = ScalarValue::Int64(default);
    OverCall { function: OverFunction::Lag { value: v(), offset, default }, display: format!("lag(v, {offset})") }
}

fn first_value() -> OverCall {
    OverCall { function: OverFunction::FirstValue(v()), display: "first_value(v)".into() }
}

fn last_value() -> OverCall {
    OverCall { function: OverFunction::LastValue(v()), display: "last_value(v)".into() }
}

fn row_number() -> OverCall {
    OverCall { function: OverFunction::RowNumber, display: "row_number()".into() }
}

/// The type a call's output column has.
fn output_type(call: &OverCall) -> DataType {
    match &call.function {
        OverFunction::Aggregate(f) => f.field().data_type().clone(),
        // The planner types ROW_NUMBER as DataFusion does (UInt64); a BIGINT column checks
        // the cast to the output type.
        _ => DataType::Int64,
    }
}

struct Setup {
    frame: OverFrame,
    keyed: bool,
    processing_time: bool,
}

const EVENT_TIME: Setup = Setup { frame: OverFrame::RangeUnbounded, keyed: true, processing_time: false };

fn operator(setup: &Setup, calls: Vec<OverCall>) -> (OverAggregateOperator, LateRowCounter) {
    let input = input_schema();
    let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (i, c) in calls.iter().enumerate() {
        fields.push(Field::new(format!("c{i}"), output_type(c), true));
    }
    let partition_keys =
        if setup.keyed { vec![ExprSpec { expr: col("k", &input).unwrap(), display: "k".into() }] } else { Vec::new() };
    let spec = OverAggSpec {
        partition_keys,
        time_column: 1,
        processing_time: setup.processing_time,
        frame: setup.frame,
        calls,
    };
    let late_rows = LateRowCounter::detached();
    let ctx = OperatorContext {
        input_schema: input,
        output_schema: Arc::new(Schema::new(fields)),
        late_rows: late_rows.clone(),
        state_ttl: None,
    };
    (OverAggregateOperator::new(spec, ctx).unwrap(), late_rows)
}

fn run(op: &mut OverAggregateOperator, input: Vec<Message>) -> Vec<Message> {
    let mut out = Vec::new();
    for m in input {
        match m {
            Message::Data(b) => op.process_batch(b, &mut out).unwrap(),
            Message::Watermark(w) => op.handle_watermark(w, &mut out).unwrap(),
            Message::End => op.on_end(&mut out).unwrap(),
            _ => {}
        }
    }
    out
}

/// Output rows as `k ts v | results..`, NULL as `NULL`.
fn rows(out: &[Message]) -> Vec<String> {
    let mut rows = Vec::new();
    for m in out {
        let Message::Data(b) = m else { continue };
        let columns: Vec<_> = b
            .data
            .columns()
            .iter()
            .map(|c| match c.data_type() {
                DataType::Timestamp(_, _) => cast(c, &DataType::Int64).unwrap(),
                _ => c.clone(),
            })
            .collect();
        for r in 0..b.num_rows() {
            let cell = |c: &Arc<dyn Array>| {
                if c.is_null(r) {
                    "NULL".to_string()
                } else {
                    array_value_to_string(c, r).unwrap()
                }
            };
            let input: Vec<String> = columns[..3].iter().map(cell).collect();
            let results: Vec<String> = columns[3..].iter().map(cell).collect();
            rows.push(format!("{} | {}", input.join(" "), results.join(" ")));
        }
    }
    rows
}

#[test]
fn out_of_order_rows_wait_for_the_watermark_and_late_rows_are_dropped() {
    let calls = vec![agg(sum_udaf()), agg(count_udaf()), row_number(), lag(1, None)];
    let (mut op, late) = operator(&EVENT_TIME, calls);
    let out = run(&mut op, vec![data(&[("a", 5, Some(1)), ("a", 3, Some(2)), ("b", 4, Some(10))]), wm(4)]);
    // Rows up to the watermark, in time order; the watermark after them.
    assert_eq!(rows(&out), ["a 3 2 | 2 1 1 NULL", "b 4 10 | 10 1 1 NULL"]);
    assert!(matches!(out.last(), Some(Message::Watermark(Watermark(4)))));
    // a@4 is at the watermark: late. a@5 then a@6 follow a@3.
    let out = run(&mut op, vec![data(&[("a", 4, Some(7)), ("a", 6, Some(3))]), wm(i64::MAX)]);
    assert_eq!(rows(&out), ["a 5 1 | 3 2 2 2", "a 6 3 | 6 3 3 1"]);
    assert_eq!(late.get(), 1);
}

#[test]
fn a_row_arriving_under_a_finer_watermark_is_late() {
    let (mut op, late) = operator(&EVENT_TIME, vec![agg(count_udaf())]);
    let mut input = batch(&[("a", 10, Some(1)), ("a", 8, Some(2)), ("a", 9, Some(3))]);
    input.arrival_watermarks = Some(Int64Array::from(vec![None, Some(8), Some(8)]));
    let out = run(&mut op, vec![Message::Data(input), wm(i64::MAX)]);
    assert_eq!(rows(&out), ["a 9 3 | 1", "a 10 1 | 2"]);
    assert_eq!(late.get(), 1);
}

#[test]
fn rows_2_preceding() {
    let setup = Setup { frame: OverFrame::Rows(2), ..EVENT_TIME };
    let calls = vec![
        agg(sum_udaf()),
        agg(min_udaf()),
        agg(max_udaf()),
        agg(avg_udaf()),
        first_value(),
        last_value(),
        agg(count_udaf()),
    ];
    let (mut op, _) = operator(&setup, calls);
    let input = [("a", 1, Some(1)), ("a", 2, Some(5)), ("a", 3, Some(3)), ("a", 4, Some(2)), ("a", 5, Some(4))];
    let out = run(&mut op, vec![data(&input[2..]), data(&input[..2]), wm(i64::MAX)]);
    assert_eq!(
        rows(&out),
        [
            "a 1 1 | 1 1 1 1.0 1 1 1",
            "a 2 5 | 6 1 5 3.0 1 5 2",
            "a 3 3 | 9 1 5 3.0 1 3 3",
            "a 4 2 | 10 2 5 3.3333333333333335 5 2 3",
            "a 5 4 | 9 2 4 3.0 3 4 3",
        ]
    );
}

#[test]
fn rows_0_preceding_is_the_row_itself() {
    let setup = Setup { frame: OverFrame::Rows(0), ..EVENT_TIME };
    let (mut op, _) = operator(&setup, vec![agg(sum_udaf()), agg(max_udaf())]);
    let out = run(&mut op, vec![data(&[("a", 1, Some(4)), ("a", 2, Some(1))]), wm(i64::MAX)]);
    assert_eq!(rows(&out), ["a 1 4 | 4 4", "a 2 1 | 1 1"]);
}

#[test]
fn range_interval_frames_hold_peers_and_drop_older_rows() {
    let setup = Setup { frame: OverFrame::Range(10), ..EVENT_TIME };
    let calls = vec![agg(sum_udaf()), agg(count_udaf()), lag(1, None), row_number(), agg(min_udaf()), first_value()];
    let (mut op, _) = operator(&setup, calls);
    let input = [
        ("a", 0, Some(1)),
        ("a", 5, Some(2)),
        ("a", 10, Some(4)),
        ("a", 10, Some(8)),
        ("a", 16, Some(16)),
        ("a", 30, Some(32)),
    ];
    let out = run(&mut op, vec![data(&input), wm(i64::MAX)]);
    // Frame [t - 10, t]: the two rows at 10 are peers, with the same results (LAG is the
    // row before the last peer, as Flink's aggregate LAG); ROW_NUMBER still counts rows.
    assert_eq!(
        rows(&out),
        [
            "a 0 1 | 1 1 NULL 1 1 1",
            "a 5 2 | 3 2 1 2 1 1",
            "a 10 4 | 15 4 4 3 1 1",
            "a 10 8 | 15 4 4 4 1 1",
            "a 16 16 | 28 3 8 5 4 4",
            "a 30 32 | 32 1 16 6 32 32",
        ]
    );
}

#[test]
fn rows_frames_do_not_make_peers() {
    let setup = Setup { frame: OverFrame::RowsUnbounded, ..EVENT_TIME };
    let (mut op, _) = operator(&setup, vec![agg(sum_udaf()), lag(1, None)]);
    let out = run(&mut op, vec![data(&[("a", 10, Some(1)), ("a", 10, Some(2))]), wm(i64::MAX)]);
    assert_eq!(rows(&out), ["a 10 1 | 1 NULL", "a 10 2 | 3 1"]);
}

#[test]
fn lag_with_offset_and_default_over_several_keys() {
    let setup = Setup { frame: OverFrame::RowsUnbounded, ..EVENT_TIME };
    let (mut op, _) = operator(&setup, vec![lag(2, Some(-1)), lag(0, None), lag(1, None)]);
    let out = run(
        &mut op,
        vec![
            data(&[("a", 1, Some(1)), ("b", 1, Some(10)), ("a", 2, None), ("b", 2, Some(20))]),
            wm(2),
            data(&[("a", 3, Some(3)), ("b", 3, Some(30)), ("a", 4, Some(4))]),
            wm(i64::MAX),
        ],
    );
    assert_eq!(
        rows(&out),
        [
            "a 1 1 | -1 1 NULL",
            "b 1 10 | -1 10 NULL",
            "a 2 NULL | -1 NULL 1",
            "b 2 20 | -1 20 10",
            "a 3 3 | 1 3 NULL",
            "b 3 30 | 10 30 20",
            "a 4 4 | NULL 4 3",
        ]
    );
}

#[test]
fn first_and_last_value_skip_nulls() {
    for frame in [OverFrame::RowsUnbounded, OverFrame::Rows(1)] {
        let setup = Setup { frame, ..EVENT_TIME };
        let (mut op, _) = operator(&setup, vec![first_value(), last_value()]);
        let input = [("a", 1, None), ("a", 2, Some(2)), ("a", 3, None), ("a", 4, Some(4))];
        let out = run(&mut op, vec![data(&input), wm(i64::MAX)]);
        let expected = match frame {
            OverFrame::RowsUnbounded => ["a 1 NULL | NULL NULL", "a 2 2 | 2 2", "a 3 NULL | 2 2", "a 4 4 | 2 4"],
            _ => ["a 1 NULL | NULL NULL", "a 2 2 | 2 2", "a 3 NULL | 2 2", "a 4 4 | 4 4"],
        };
        assert_eq!(rows(&out), expected, "{frame}");
    }
}

#[test]
fn without_partition_keys_all_rows_are_one_partition() {
    let setup = Setup { keyed: false, ..EVENT_TIME };
    let (mut op, _) = operator(&setup, vec![agg(sum_udaf()), row_number()]);
    let out = run(&mut op, vec![data(&[("a", 2, Some(1)), ("b", 1, Some(10))]), Message::End]);
    // End of input processes what waits.
    assert_eq!(rows(&out), ["b 1 10 | 10 1", "a 2 1 | 11 2"]);
}

#[test]
fn processing_time_rows_are_processed_as_they_arrive() {
    let setup = Setup { frame: OverFrame::Range(10), keyed: true, processing_time: true };
    let (mut op, late) = operator(&setup, vec![agg(sum_udaf()), lag(1, None)]);
    let out = run(&mut op, vec![data(&[("a", 100, Some(1)), ("a", 105, Some(2))])]);
    assert_eq!(rows(&out), ["a 100 1 | 1 NULL", "a 105 2 | 3 1"]);
    // A watermark (the clock) is only forwarded; no row is late in processing time.
    let out = run(&mut op, vec![wm(200), data(&[("a", 111, Some(4)), ("b", 111, Some(8))])]);
    assert_eq!(rows(&out), ["a 111 4 | 6 2", "b 111 8 | 8 NULL"]);
    assert_eq!(late.get(), 0);
}

#[test]
fn state_follows_waiting_rows_and_keys() {
    let (mut op, _) = operator(&Setup { frame: OverFrame::Rows(1), ..EVENT_TIME }, vec![agg(sum_udaf())]);
    assert_eq!(op.state_bytes(), 0);
    run(&mut op, vec![data(&[("a", 1, Some(1)), ("b", 2, Some(2)), ("c", 3, Some(3))])]);
    let waiting = op.state_bytes();
    assert!(waiting > 0);
    run(&mut op, vec![wm(i64::MAX)]);
    let keys = op.state_bytes();
    assert!(keys > 0 && op.rows.bytes() == 0, "{keys}");
    // A key's frame holds at most two rows, however many came.
    let many: Vec<Row> = (10..200).map(|t| ("a", t, Some(t))).collect();
    run(&mut op, vec![data(&many), wm(i64::MAX)]);
    assert!(op.state_bytes() < keys * 2, "{} < 2 * {keys}", op.state_bytes());
    // The running figure matches the one a restore counts from scratch.
    let snapshot = op.snapshot_state().unwrap().unwrap();
    let (mut restored, _) = operator(&Setup { frame: OverFrame::Rows(1), ..EVENT_TIME }, vec![agg(sum_udaf())]);
    restored.restore_state(snapshot).unwrap();
    assert_eq!(restored.key_bytes, op.key_bytes);
}

/// Input covering out-of-order rows, peers, late rows, NULLs and several keys.
fn restore_input() -> Vec<Message> {
    vec![
        data(&[("a", 5, Some(1)), ("b", 3, Some(2)), ("a", 3, Some(3))]),
        data(&[("a", 4, None), ("b", 3, Some(4))]),
        wm(3),
        data(&[("a", 3, Some(9)), ("a", 7, Some(5)), ("b", 12, Some(6))]),
        wm(6),
        data(&[("a", 9, Some(7)), ("a", 9, Some(8)), ("b", 14, Some(9)), ("a", 30, Some(1))]),
        wm(13),
        data(&[("b", 20, Some(5)), ("a", 40, None)]),
        wm(i64::MAX),
    ]
}

#[test]
fn restores_at_every_message() {
    let all = || {
        vec![
            agg(sum_udaf()),
            agg(count_udaf()),
            agg(avg_udaf()),
            agg(min_udaf()),
            agg(max_udaf()),
            first_value(),
            last_value(),
            lag(2, Some(0)),
            row_number(),
        ]
    };
    for frame in [OverFrame::RangeUnbounded, OverFrame::RowsUnbounded, OverFrame::Rows(2), OverFrame::Range(5)] {
        for keyed in [true, false] {
            let setup = Setup { frame, keyed, processing_time: false };
            let out = assert_restores_everywhere(|| operator(&setup, all()).0, &restore_input());
            // Every row but the late one (a@3 under watermark 3).
            assert_eq!(rows(&out).len(), 13, "{frame}");
        }
    }
    let setup = Setup { frame: OverFrame::Range(5), keyed: true, processing_time: true };
    let out = assert_restores_everywhere(|| operator(&setup, all()).0, &restore_input());
    assert_eq!(rows(&out).len(), 14);
}
