//! Tests of the window aggregation operator: results checked row by row against
//! hand-computed values and brute-force window expansion.

use std::collections::BTreeMap;

use arrow::array::{StringArray, TimestampMillisecondArray};
use arrow::util::display::array_value_to_string;
use datafusion::functions_aggregate::average::avg_udaf;
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::functions_aggregate::min_max::max_udaf;
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::logical_expr::{AggregateUDF, Operator as BinaryOp};
use datafusion::physical_expr::aggregate::AggregateExprBuilder;
use datafusion::physical_expr::expressions::{binary, cast as expr_cast, col, lit};
use eddy_sql::plan::{AggregateSpec, EmitStrategy, ExprSpec};

use super::*;

type Row<'a> = (i64, &'a str, i64);

fn input_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new("k", DataType::Utf8, false),
        Field::new("v", DataType::Int64, false),
    ]))
}

fn batch(rows: &[Row]) -> Batch {
    let ts = TimestampMillisecondArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>());
    let k = StringArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>());
    let v = Int64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>());
    Batch::append(RecordBatch::try_new(input_schema(), vec![Arc::new(ts), Arc::new(k), Arc::new(v)]).unwrap())
}

/// A batch whose rows arrived under the given watermarks.
fn batch_arriving(rows: &[Row], arrival: &[i64]) -> Batch {
    Batch { arrival_watermarks: Some(Int64Array::from(arrival.to_vec())), ..batch(rows) }
}

fn agg(udaf: Arc<AggregateUDF>, distinct: bool, filter: Option<Arc<dyn PhysicalExpr>>) -> AggregateSpec {
    agg_of(udaf, col("v", &input_schema()).unwrap(), distinct, filter)
}

fn agg_of(
    udaf: Arc<AggregateUDF>,
    arg: Arc<dyn PhysicalExpr>,
    distinct: bool,
    filter: Option<Arc<dyn PhysicalExpr>>,
) -> AggregateSpec {
    let schema = input_schema();
    let name = format!("{}{}(v)", udaf.name(), if distinct { "_distinct" } else { "" });
    let function = AggregateExprBuilder::new(udaf, vec![arg])
        .schema(schema)
        .alias(name.clone())
        .with_distinct(distinct)
        .build()
        .unwrap();
    let filter = filter.map(|expr| ExprSpec { expr, display: "filter".into() });
    AggregateSpec { function: Arc::new(function), filter, display: name }
}

/// `v > n`.
fn v_greater_than(n: i64) -> Arc<dyn PhysicalExpr> {
    let schema = input_schema();
    binary(col("v", &schema).unwrap(), BinaryOp::Gt, lit(n), &schema).unwrap()
}

/// Output: [k,] window_start, window_end, window_time, aggregates...
fn operator(
    window: WindowKind,
    keyed: bool,
    aggregates: Vec<AggregateSpec>,
) -> (WindowAggregateOperator, LateRowCounter) {
    operator_with(window, keyed, aggregates, EmitStrategy::default())
}

fn operator_with(
    window: WindowKind,
    keyed: bool,
    aggregates: Vec<AggregateSpec>,
    emit: EmitStrategy,
) -> (WindowAggregateOperator, LateRowCounter) {
    let schema = input_schema();
    let ts_type = DataType::Timestamp(TimeUnit::Millisecond, None);
    let mut fields = Vec::new();
    let mut output = Vec::new();
    let mut keys = Vec::new();
    if keyed {
        keys.push(ExprSpec { expr: col("k", &schema).unwrap(), display: "k".into() });
        fields.push(Field::new("k", DataType::Utf8, false));
        output.push(WindowOutput::Key(0));
    }
    for (name, o) in [
        ("window_start", WindowOutput::WindowStart),
        ("window_end", WindowOutput::WindowEnd),
        ("window_time", WindowOutput::WindowTime),
    ] {
        fields.push(Field::new(name, ts_type.clone(), false));
        output.push(o);
    }
    for (i, a) in aggregates.iter().enumerate() {
        fields.push(a.function.field().as_ref().clone());
        output.push(WindowOutput::Aggregate(i));
    }
    let late = LateRowCounter::detached();
    let ctx = OperatorContext {
        input_schema: schema,
        output_schema: Arc::new(Schema::new(fields)),
        late_rows: late.clone(),
        state_ttl: None,
    };
    let spec = WindowAggSpec { window, time_column: 0, keys, aggregates, output, emit };
    (WindowAggregateOperator::new(spec, ctx).unwrap(), late)
}

fn feed(op: &mut WindowAggregateOperator, input: Vec<Message>) -> Vec<Message> {
    let mut out = Vec::new();
    for m in input {
        match m {
            Message::Data(b) => op.process_batch(b, &mut out).unwrap(),
            Message::Watermark(w) => op.handle_watermark(w, &mut out).unwrap(),
            Message::End => op.on_end(&mut out).unwrap(),
            Message::Idle | Message::Barrier(_) => {}
        }
    }
    out
}

/// Output rows as sorted `k|start|end|agg..` strings (times in ms); checks window_time.
fn rows(out: &[Message]) -> Vec<String> {
    let mut rows = Vec::new();
    for m in out {
        let Message::Data(b) = m else { continue };
        rows.extend(row_strings(b));
    }
    rows.sort();
    rows
}

/// Changelog output as sorted `kind|k|start|end|agg..` strings; checks that every row has
/// a kind and that each `-U` is directly followed by the `+U` of its key and window.
fn changes(out: &[Message]) -> Vec<String> {
    let mut all = Vec::new();
    for m in out {
        let Message::Data(b) = m else { continue };
        let kinds = b.row_kinds.as_ref().expect("updating output carries row kinds");
        let rows = row_strings(b);
        assert_eq!(kinds.len(), rows.len());
        let kinds: Vec<RowKind> = kinds.iter().map(|k| RowKind::from_code(k.unwrap()).unwrap()).collect();
        for (i, kind) in kinds.iter().enumerate() {
            if *kind == RowKind::UpdateBefore {
                assert_eq!(kinds.get(i + 1), Some(&RowKind::UpdateAfter), "-U without +U: {rows:?}");
                // Keys, window_start and window_end: the columns before window_time.
                let time_idx = b.data.schema().index_of("window_time").unwrap();
                let window = |r: &str| r.split('|').take(time_idx).collect::<Vec<_>>().join("|");
                assert_eq!(window(&rows[i]), window(&rows[i + 1]));
            }
            all.push(format!("{kind}|{}", rows[i]));
        }
    }
    all.sort();
    all
}

/// One batch's rows as `k|start|end|agg..` strings, in order; checks window_time.
fn row_strings(b: &Batch) -> Vec<String> {
    let columns: Vec<ArrayRef> = b
        .data
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Timestamp(..) => cast(c, &DataType::Int64).unwrap(),
            _ => c.clone(),
        })
        .collect();
    let time_idx = b.data.schema().index_of("window_time").unwrap();
    let mut rows = Vec::new();
    for r in 0..b.num_rows() {
        let end = columns[time_idx - 1].as_primitive::<Int64Type>().value(r);
        assert_eq!(columns[time_idx].as_primitive::<Int64Type>().value(r), end - 1);
        let cells: Vec<String> = columns
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != time_idx)
            .map(|(_, c)| if c.is_null(r) { "NULL".into() } else { array_value_to_string(c, r).unwrap() })
            .collect();
        rows.push(cells.join("|"));
    }
    rows
}

fn sorted(rows: &[&str]) -> Vec<String> {
    let mut rows: Vec<String> = rows.iter().map(|r| r.to_string()).collect();
    rows.sort();
    rows
}

/// COUNT(v) and SUM(v) per key and window, computed row by row over every window of a row.
fn brute_force(rows: &[Row], windows: impl Fn(i64) -> Vec<(i64, i64)>) -> Vec<String> {
    let mut acc: BTreeMap<(String, i64, i64), (i64, i64)> = BTreeMap::new();
    for (ts, k, v) in rows {
        for (start, end) in windows(*ts) {
            let e = acc.entry((k.to_string(), start, end)).or_default();
            e.0 += 1;
            e.1 += v;
        }
    }
    let mut out: Vec<String> = acc.into_iter().map(|((k, s, e), (c, v))| format!("{k}|{s}|{e}|{c}|{v}")).collect();
    out.sort();
    out
}

fn hop_windows(ts: i64, slide: i64, size: i64) -> Vec<(i64, i64)> {
    let mut end = ts.div_euclid(slide) * slide + slide;
    let mut out = Vec::new();
    while end - size <= ts {
        out.push((end - size, end));
        end += slide;
    }
    out
}

fn cumulate_windows(ts: i64, step: i64, size: i64) -> Vec<(i64, i64)> {
    let period = ts.div_euclid(size) * size;
    (1..=size / step).map(|n| (period, period + n * step)).filter(|(_, end)| ts < *end).collect()
}

/// Rows in roughly increasing time, up to 1.9 s out of order, over keys a..d.
fn generated_rows(n: usize) -> Vec<(i64, &'static str, i64)> {
    let keys = ["a", "b", "c", "d"];
    let mut seed: u64 = 42;
    let mut next = || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        seed >> 33
    };
    (0..n)
        .map(|i| (i as i64 * 97 + (next() % 1900) as i64, keys[(next() % 4) as usize], (next() % 100) as i64))
        .collect()
}

/// Feeds `rows` in batches of 17, each followed by the watermark max(ts) - 2 s (so no row
/// is late), then the end-of-input watermark.
fn feed_in_order(op: &mut WindowAggregateOperator, rows: &[Row]) -> Vec<Message> {
    let mut input = Vec::new();
    let mut max_ts = i64::MIN;
    for chunk in rows.chunks(17) {
        input.push(Message::Data(batch(chunk)));
        max_ts = chunk.iter().map(|r| r.0).fold(max_ts, i64::max);
        input.push(Message::Watermark(Watermark(max_ts - 2000)));
    }
    input.push(Message::Watermark(Watermark::MAX));
    feed(op, input)
}

fn count_sum() -> Vec<AggregateSpec> {
    vec![agg(count_udaf(), false, None), agg(sum_udaf(), false, None)]
}

#[test]
fn tumble_count_and_sum_per_key() {
    let (mut op, late) = operator(WindowKind::Tumble { size: 10_000, offset: 0 }, true, count_sum());
    let rows_in = [(1000, "a", 1), (2000, "b", 2), (9999, "a", 3), (10_000, "a", 4), (25_000, "b", 5)];
    let out = feed(&mut op, vec![Message::Data(batch(&rows_in)), Message::Watermark(Watermark(9999))]);
    assert_eq!(rows(&out), sorted(&["a|0|10000|2|4", "b|0|10000|1|2"]));
    assert!(matches!(out.last(), Some(Message::Watermark(Watermark(9999)))));
    let out = feed(&mut op, vec![Message::Watermark(Watermark::MAX)]);
    assert_eq!(rows(&out), sorted(&["a|10000|20000|1|4", "b|20000|30000|1|5"]));
    assert_eq!(late.get(), 0);
    assert!(op.slices.is_empty());
}

#[test]
fn tumble_with_offset() {
    let (mut op, _) = operator(WindowKind::Tumble { size: 10_000, offset: 3000 }, true, count_sum());
    let rows_in = [(2999, "a", 1), (3000, "a", 2), (12_999, "a", 4)];
    let out = feed(&mut op, vec![Message::Data(batch(&rows_in)), Message::Watermark(Watermark::MAX)]);
    assert_eq!(rows(&out), sorted(&["a|-7000|3000|1|1", "a|3000|13000|2|6"]));
}

#[test]
fn hop_matches_brute_force() {
    let (mut op, late) = operator(WindowKind::Hop { slide: 2000, size: 10_000, offset: 0 }, true, count_sum());
    let rows_in = generated_rows(600);
    let out = rows(&feed_in_order(&mut op, &rows_in));
    assert_eq!(out, brute_force(&rows_in, |ts| hop_windows(ts, 2000, 10_000)));
    // Every row lands in size / slide = 5 windows.
    let counted: i64 = out.iter().map(|r| r.split('|').nth(3).unwrap().parse::<i64>().unwrap()).sum();
    assert_eq!(counted, 5 * rows_in.len() as i64);
    assert_eq!(late.get(), 0);
    assert!(op.slices.is_empty());
}

#[test]
fn hop_slide_not_dividing_size_matches_brute_force() {
    let (mut op, _) = operator(WindowKind::Hop { slide: 4000, size: 10_000, offset: 1000 }, true, count_sum());
    let rows_in = generated_rows(300);
    let out = rows(&feed_in_order(&mut op, &rows_in));
    let windows =
        |ts: i64| hop_windows(ts - 1000, 4000, 10_000).into_iter().map(|(s, e)| (s + 1000, e + 1000)).collect();
    assert_eq!(out, brute_force(&rows_in, windows));
}

#[test]
fn cumulate_matches_brute_force() {
    let (mut op, late) = operator(WindowKind::Cumulate { step: 2000, size: 10_000, offset: 0 }, true, count_sum());
    let rows_in = generated_rows(600);
    let out = rows(&feed_in_order(&mut op, &rows_in));
    assert_eq!(out, brute_force(&rows_in, |ts| cumulate_windows(ts, 2000, 10_000)));
    assert_eq!(late.get(), 0);
    assert!(op.slices.is_empty() && op.cumulate_running.is_none());
}

#[test]
fn late_row_dropped_by_its_arrival_watermark() {
    let (mut op, late) = operator(WindowKind::Tumble { size: 10_000, offset: 0 }, true, count_sum());
    // The third row arrives after the watermark reached 12 s: its window [0, 10 s) closed.
    let b = batch_arriving(&[(1000, "a", 1), (12_000, "a", 2), (3000, "a", 4)], &[i64::MIN, 1000, 12_000]);
    let out = feed(&mut op, vec![Message::Data(b), Message::Watermark(Watermark::MAX)]);
    assert_eq!(rows(&out), sorted(&["a|0|10000|1|1", "a|10000|20000|1|2"]));
    assert_eq!(late.get(), 1);
}

#[test]
fn late_row_dropped_by_the_current_watermark() {
    let (mut op, late) = operator(WindowKind::Tumble { size: 10_000, offset: 0 }, true, count_sum());
    let out = feed(
        &mut op,
        vec![
            Message::Data(batch(&[(1000, "a", 1)])),
            Message::Watermark(Watermark(10_000)),
            Message::Data(batch(&[(9999, "a", 2), (10_000, "a", 4)])),
            Message::Watermark(Watermark::MAX),
        ],
    );
    assert_eq!(rows(&out), sorted(&["a|0|10000|1|1", "a|10000|20000|1|4"]));
    assert_eq!(late.get(), 1);
}

#[test]
fn null_time_dropped_and_counted() {
    let (mut op, late) = operator(WindowKind::Tumble { size: 10_000, offset: 0 }, true, count_sum());
    let ts = TimestampMillisecondArray::from(vec![Some(1000), None]);
    let data = RecordBatch::try_new(
        input_schema(),
        vec![Arc::new(ts), Arc::new(StringArray::from(vec!["a", "a"])), Arc::new(Int64Array::from(vec![1, 2]))],
    )
    .unwrap();
    let out = feed(&mut op, vec![Message::Data(Batch::append(data)), Message::Watermark(Watermark::MAX)]);
    assert_eq!(rows(&out), sorted(&["a|0|10000|1|1"]));
    assert_eq!(late.get(), 1);
}

#[test]
fn late_hop_row_counts_only_in_unfired_windows() {
    let (mut op, late) = operator(WindowKind::Hop { slide: 5000, size: 10_000, offset: 0 }, true, count_sum());
    let out = feed(&mut op, vec![Message::Data(batch(&[(1000, "a", 1)])), Message::Watermark(Watermark(5000))]);
    assert_eq!(rows(&out), sorted(&["a|-5000|5000|1|1"]));
    let out = feed(
        &mut op,
        vec![
            // Window [-5 s, 5 s) fired: 2000 still counts in [0, 10 s); -3000 has no window left.
            Message::Data(batch(&[(2000, "a", 10), (-3000, "a", 100)])),
            // Per row: 7000 arrives once the watermark is 12 s, after [0, 10 s) closed, so it
            // counts only in [5 s, 15 s).
            Message::Data(batch_arriving(&[(12_000, "b", 1000), (7000, "b", 10_000)], &[i64::MIN, 12_000])),
            Message::Watermark(Watermark::MAX),
        ],
    );
    assert_eq!(rows(&out), sorted(&["a|0|10000|2|11", "b|5000|15000|2|11000", "b|10000|20000|1|1000"]));
    assert_eq!(late.get(), 1);
}

#[test]
fn late_cumulate_row_counts_only_in_unfired_windows() {
    let (mut op, late) = operator(WindowKind::Cumulate { step: 2000, size: 10_000, offset: 0 }, true, count_sum());
    let out = feed(&mut op, vec![Message::Data(batch(&[(1000, "a", 1)])), Message::Watermark(Watermark(3999))]);
    assert_eq!(rows(&out), sorted(&["a|0|2000|1|1", "a|0|4000|1|1"]));
    let out = feed(
        &mut op,
        vec![Message::Data(batch(&[(500, "a", 10), (3000, "a", 100)])), Message::Watermark(Watermark::MAX)],
    );
    assert_eq!(rows(&out), sorted(&["a|0|6000|3|111", "a|0|8000|3|111", "a|0|10000|3|111"]));
    assert_eq!(late.get(), 0);
}

#[test]
fn count_distinct_merges_across_slices() {
    let aggs = vec![agg(count_udaf(), true, None), agg(count_udaf(), false, None)];
    let (mut op, _) = operator(WindowKind::Hop { slide: 5000, size: 10_000, offset: 0 }, true, aggs);
    let rows_in = [(1000, "a", 1), (2000, "a", 1), (6000, "a", 1), (7000, "a", 2), (8000, "a", 2)];
    let out = feed(&mut op, vec![Message::Data(batch(&rows_in)), Message::Watermark(Watermark::MAX)]);
    assert_eq!(rows(&out), sorted(&["a|-5000|5000|1|2", "a|0|10000|2|5", "a|5000|15000|2|3"]));
}

#[test]
fn filter_clause_keeps_keys_whose_rows_are_all_filtered_out() {
    let aggs =
        vec![agg(count_udaf(), false, Some(v_greater_than(10))), agg(sum_udaf(), false, Some(v_greater_than(10)))];
    let (mut op, _) = operator(WindowKind::Tumble { size: 10_000, offset: 0 }, true, aggs);
    let rows_in = [(1000, "a", 5), (2000, "a", 20), (3000, "b", 3)];
    let out = feed(&mut op, vec![Message::Data(batch(&rows_in)), Message::Watermark(Watermark::MAX)]);
    assert_eq!(rows(&out), sorted(&["a|0|10000|1|20", "b|0|10000|0|NULL"]));
}

#[test]
fn filter_clause_through_hop_merge() {
    let aggs =
        vec![agg(count_udaf(), false, Some(v_greater_than(10))), agg(max_udaf(), false, Some(v_greater_than(10)))];
    let (mut op, _) = operator(WindowKind::Hop { slide: 5000, size: 10_000, offset: 0 }, true, aggs);
    let rows_in = [(1000, "a", 5), (6000, "a", 20)];
    let out = feed(&mut op, vec![Message::Data(batch(&rows_in)), Message::Watermark(Watermark::MAX)]);
    assert_eq!(rows(&out), sorted(&["a|-5000|5000|0|NULL", "a|0|10000|1|20", "a|5000|15000|1|20"]));
}

#[test]
fn global_aggregation_without_keys() {
    // DataFusion averages floats: the planner casts the argument, as here.
    let v_double = expr_cast(col("v", &input_schema()).unwrap(), &input_schema(), DataType::Float64).unwrap();
    let aggs =
        vec![agg(count_udaf(), false, None), agg(sum_udaf(), false, None), agg_of(avg_udaf(), v_double, false, None)];
    let (mut op, _) = operator(WindowKind::Hop { slide: 5000, size: 10_000, offset: 0 }, false, aggs);
    let rows_in = [(1000, "a", 1), (6000, "b", 2), (30_000, "c", 3)];
    let out = feed(&mut op, vec![Message::Data(batch(&rows_in)), Message::Watermark(Watermark::MAX)]);
    assert_eq!(
        rows(&out),
        sorted(&[
            "-5000|5000|1|1|1.0",
            "0|10000|2|3|1.5",
            "5000|15000|1|2|2.0",
            "25000|35000|1|3|3.0",
            "30000|40000|1|3|3.0"
        ])
    );

    let aggs = vec![agg(count_udaf(), false, None)];
    let (mut op, _) = operator(WindowKind::Tumble { size: 10_000, offset: 0 }, false, aggs);
    let out = feed(&mut op, vec![Message::Data(batch(&rows_in)), Message::Watermark(Watermark::MAX)]);
    assert_eq!(rows(&out), sorted(&["0|10000|2", "30000|40000|1"]));
}

#[test]
fn one_large_batch_with_long_and_short_hops() {
    let keys = ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"];
    let rows_in: Vec<Row> = (0..100_000).map(|i| (i as i64 * 7, keys[i % 10], (i % 100) as i64)).collect();
    for size in [60_000, 10_000] {
        let (mut op, _) = operator(WindowKind::Hop { slide: 1000, size, offset: 0 }, true, count_sum());
        let out = feed(&mut op, vec![Message::Data(batch(&rows_in)), Message::Watermark(Watermark::MAX)]);
        assert_eq!(rows(&out), brute_force(&rows_in, |ts| hop_windows(ts, 1000, size)), "size {size}");
    }
}

fn lateness(ms: i64) -> EmitStrategy {
    EmitStrategy { allowed_lateness_ms: ms, early_fire_delay_ms: 0 }
}

fn early_fire(ms: u64) -> EmitStrategy {
    EmitStrategy { allowed_lateness_ms: 0, early_fire_delay_ms: ms }
}

fn tick(op: &mut WindowAggregateOperator, now: Instant) -> Vec<Message> {
    let mut out = Vec::new();
    op.on_processing_time(now, &mut out).unwrap();
    out
}

const NONE: [&str; 0] = [];

#[test]
fn default_emit_stays_append_only() {
    let (mut op, late) = operator(WindowKind::Hop { slide: 5000, size: 10_000, offset: 0 }, true, count_sum());
    let out = feed(
        &mut op,
        vec![
            Message::Data(batch(&[(1000, "a", 1), (6000, "b", 2)])),
            Message::Watermark(Watermark(9999)),
            Message::Data(batch(&[(2000, "a", 4)])),
            Message::Watermark(Watermark::MAX),
        ],
    );
    assert_eq!(rows(&out), sorted(&["a|-5000|5000|1|1", "a|0|10000|1|1", "b|0|10000|1|2", "b|5000|15000|1|2"]));
    assert_eq!(out.iter().filter(|m| matches!(m, Message::Data(b) if b.row_kinds.is_none())).count(), 2);
    assert!(out.iter().all(|m| !matches!(m, Message::Data(b) if b.row_kinds.is_some())));
    assert_eq!(late.get(), 1);
    assert_eq!(op.next_processing_time(), None);
    assert!(op.emitted.is_empty() && op.dirty.is_empty() && op.slices.is_empty());
}

#[test]
fn allowed_lateness_updates_a_fired_tumble_window_until_it_expires() {
    let window = WindowKind::Tumble { size: 10_000, offset: 0 };
    let (mut op, late) = operator_with(window, true, count_sum(), lateness(5000));
    let out = feed(
        &mut op,
        vec![Message::Data(batch(&[(1000, "a", 1), (2000, "b", 2)])), Message::Watermark(Watermark(9999))],
    );
    assert_eq!(changes(&out), sorted(&["+I|a|0|10000|1|1", "+I|b|0|10000|1|2"]));
    assert!(matches!(out.last(), Some(Message::Watermark(Watermark(9999)))));
    assert_eq!(op.retained_windows(), 1);
    assert_eq!(op.next_processing_time(), None);

    // Late for [0, 10 s) but within its lateness: an update. 15 s goes to the open window.
    let out = feed(
        &mut op,
        vec![Message::Watermark(Watermark(12_000)), Message::Data(batch(&[(3000, "a", 10), (15_000, "a", 7)]))],
    );
    assert_eq!(changes(&out), sorted(&["-U|a|0|10000|1|1", "+U|a|0|10000|2|11"]));
    // A key the window has not emitted yet: an insert.
    let out = feed(&mut op, vec![Message::Data(batch(&[(4000, "c", 5)]))]);
    assert_eq!(changes(&out), sorted(&["+I|c|0|10000|1|5"]));
    // Still within 9999 + 5000: two rows of a batch, one update.
    let out = feed(
        &mut op,
        vec![Message::Watermark(Watermark(14_998)), Message::Data(batch(&[(6000, "b", 1), (7000, "b", 1)]))],
    );
    assert_eq!(changes(&out), sorted(&["-U|b|0|10000|1|2", "+U|b|0|10000|3|4"]));
    assert_eq!(late.get(), 0);

    // At 10_000 - 1 + 5000 the window expires: its state is freed, its rows dropped.
    let out = feed(&mut op, vec![Message::Watermark(Watermark(14_999)), Message::Data(batch(&[(5000, "a", 100)]))]);
    assert_eq!(changes(&out), NONE);
    assert_eq!(late.get(), 1);
    assert_eq!(op.retained_windows(), 0);
    assert_eq!(op.slices.keys().copied().collect::<Vec<_>>(), vec![20_000]);

    let out = feed(&mut op, vec![Message::Watermark(Watermark::MAX)]);
    assert_eq!(changes(&out), sorted(&["+I|a|10000|20000|1|7"]));
    assert!(op.slices.is_empty() && op.retained_windows() == 0);
}

#[test]
fn allowed_lateness_with_hop_updates_fired_windows_and_counts_in_open_ones() {
    let window = WindowKind::Hop { slide: 5000, size: 10_000, offset: 0 };
    let (mut op, late) = operator_with(window, true, count_sum(), lateness(5000));
    let out = feed(&mut op, vec![Message::Data(batch(&[(1000, "a", 1)])), Message::Watermark(Watermark(4999))]);
    assert_eq!(changes(&out), sorted(&["+I|a|-5000|5000|1|1"]));

    // 2000 is in [-5 s, 5 s), fired but within lateness (updated), and in [0, 10 s), open
    // (counted, emitted when it closes).
    let out = feed(&mut op, vec![Message::Watermark(Watermark(7000)), Message::Data(batch(&[(2000, "a", 10)]))]);
    assert_eq!(changes(&out), sorted(&["-U|a|-5000|5000|1|1", "+U|a|-5000|5000|2|11"]));

    // [0, 10 s) closes; [-5 s, 5 s) expires (4999 + 5000 <= 9999).
    let out = feed(&mut op, vec![Message::Watermark(Watermark(9999))]);
    assert_eq!(changes(&out), sorted(&["+I|a|0|10000|2|11"]));
    assert_eq!(op.retained_windows(), 1);

    // 3000: [-5 s, 5 s) expired, [0, 10 s) updated. 6000: [0, 10 s) gets a new key,
    // [5 s, 15 s) is open. -1000: both its windows expired, dropped.
    let out = feed(&mut op, vec![Message::Data(batch(&[(3000, "a", 100), (6000, "b", 1000), (-1000, "a", 5)]))]);
    assert_eq!(changes(&out), sorted(&["-U|a|0|10000|2|11", "+U|a|0|10000|3|111", "+I|b|0|10000|1|1000"]));
    assert_eq!(late.get(), 1);

    let out = feed(&mut op, vec![Message::Watermark(Watermark::MAX)]);
    assert_eq!(changes(&out), sorted(&["+I|b|5000|15000|1|1000"]));
    assert!(op.slices.is_empty() && op.retained_windows() == 0);
}

#[test]
fn early_fire_emits_running_results_then_only_changes() {
    let window = WindowKind::Tumble { size: 10_000, offset: 0 };
    let (mut op, _) = operator_with(window, true, count_sum(), early_fire(1000));
    let second = Duration::from_secs(1);
    let t0 = Instant::now();
    assert_eq!(op.next_processing_time(), None);
    let out = feed(&mut op, vec![Message::Data(batch(&[(1000, "a", 1), (2000, "b", 2), (3000, "a", 3)]))]);
    assert!(out.is_empty());
    let due = op.next_processing_time().expect("an early fire is scheduled");
    assert!(due >= t0 + second && due <= Instant::now() + second);

    let out = tick(&mut op, t0 + second);
    assert_eq!(changes(&out), sorted(&["+I|a|0|10000|2|4", "+I|b|0|10000|1|2"]));
    assert_eq!(op.next_processing_time(), None);
    // Nothing changed: nothing emitted, nothing scheduled.
    assert!(tick(&mut op, t0 + 2 * second).is_empty());
    assert_eq!(op.next_processing_time(), None);

    let out = feed(&mut op, vec![Message::Data(batch(&[(4000, "a", 5), (12_000, "c", 7)]))]);
    assert!(out.is_empty());
    // Due D after the last early fire at the earliest.
    assert!(op.next_processing_time().unwrap() >= t0 + 2 * second);
    let out = tick(&mut op, t0 + 3 * second);
    // b did not change: no rows for it.
    assert_eq!(changes(&out), sorted(&["-U|a|0|10000|2|4", "+U|a|0|10000|3|9", "+I|c|10000|20000|1|7"]));
    assert_eq!(op.next_processing_time(), None);

    // Closing [0, 10 s): b changed since the last early fire, d was never emitted, a is
    // unchanged.
    let out = feed(
        &mut op,
        vec![Message::Data(batch(&[(5000, "b", 3), (6000, "d", 1)])), Message::Watermark(Watermark(9999))],
    );
    assert_eq!(changes(&out), sorted(&["-U|b|0|10000|1|2", "+U|b|0|10000|2|5", "+I|d|0|10000|1|1"]));
    assert_eq!(op.next_processing_time(), None);
    assert_eq!(op.retained_windows(), 1);

    // [10 s, 20 s) closes as it was emitted early: nothing.
    let out = feed(&mut op, vec![Message::Watermark(Watermark::MAX)]);
    assert!(matches!(out.as_slice(), [Message::Watermark(Watermark::MAX)]));
    assert!(op.slices.is_empty() && op.retained_windows() == 0);
}

#[test]
fn early_fire_hop_without_keys() {
    let window = WindowKind::Hop { slide: 5000, size: 10_000, offset: 0 };
    let (mut op, _) = operator_with(window, false, vec![agg(count_udaf(), false, None)], early_fire(1000));
    let t0 = Instant::now();
    feed(&mut op, vec![Message::Data(batch(&[(1000, "a", 1), (6000, "b", 2)]))]);
    let out = tick(&mut op, t0 + Duration::from_secs(1));
    assert_eq!(changes(&out), sorted(&["+I|-5000|5000|1", "+I|0|10000|2", "+I|5000|15000|1"]));
    feed(&mut op, vec![Message::Data(batch(&[(7000, "c", 3)]))]);
    let out = tick(&mut op, t0 + Duration::from_secs(2));
    assert_eq!(changes(&out), sorted(&["-U|0|10000|2", "+U|0|10000|3", "-U|5000|15000|1", "+U|5000|15000|2"]));
    let out = feed(&mut op, vec![Message::Watermark(Watermark::MAX)]);
    assert!(matches!(out.as_slice(), [Message::Watermark(Watermark::MAX)]));
    assert!(op.slices.is_empty() && op.retained_windows() == 0);
}

#[test]
fn cumulate_with_lateness_and_early_fire() {
    let emit = EmitStrategy { allowed_lateness_ms: 3000, early_fire_delay_ms: 1000 };
    let window = WindowKind::Cumulate { step: 2000, size: 6000, offset: 0 };
    let (mut op, late) = operator_with(window, true, count_sum(), emit);
    let second = Duration::from_secs(1);
    let t0 = Instant::now();
    feed(&mut op, vec![Message::Data(batch(&[(1000, "a", 1)]))]);
    let out = tick(&mut op, t0 + second);
    assert_eq!(changes(&out), sorted(&["+I|a|0|2000|1|1", "+I|a|0|4000|1|1", "+I|a|0|6000|1|1"]));

    // [0, 2 s) closes as emitted early (nothing); [0, 4 s) closes with 3000 added.
    let out = feed(&mut op, vec![Message::Data(batch(&[(3000, "a", 10)])), Message::Watermark(Watermark(3999))]);
    assert_eq!(changes(&out), sorted(&["-U|a|0|4000|1|1", "+U|a|0|4000|2|11"]));

    // Late for both fired windows (within lateness: updated at once), counted in the
    // open one (emitted by the next early fire).
    let out = feed(&mut op, vec![Message::Data(batch(&[(500, "a", 100)]))]);
    assert_eq!(
        changes(&out),
        sorted(&["-U|a|0|2000|1|1", "+U|a|0|2000|2|101", "-U|a|0|4000|2|11", "+U|a|0|4000|3|111"])
    );
    let out = tick(&mut op, t0 + 2 * second);
    assert_eq!(changes(&out), sorted(&["-U|a|0|6000|1|1", "+U|a|0|6000|3|111"]));

    // [0, 2 s) expires at 1999 + 3000; 1500 now counts in [0, 4 s) and [0, 6 s) only.
    let out = feed(&mut op, vec![Message::Watermark(Watermark(5000)), Message::Data(batch(&[(1500, "a", 1000)]))]);
    assert_eq!(changes(&out), sorted(&["-U|a|0|4000|3|111", "+U|a|0|4000|4|1111"]));
    assert_eq!(op.retained_windows(), 2);
    assert_eq!(late.get(), 0);

    let out = feed(&mut op, vec![Message::Watermark(Watermark::MAX)]);
    assert_eq!(changes(&out), sorted(&["-U|a|0|6000|3|111", "+U|a|0|6000|4|1111"]));
    assert!(op.slices.is_empty() && op.retained_windows() == 0);
    assert_eq!(op.next_processing_time(), None);
}

/// With lateness covering the disorder no row is dropped, so however the changelog is
/// split into early, closing and late results, it must end at the brute-force windows.
#[test]
fn updating_changelog_converges_to_brute_force() {
    let emit = EmitStrategy { allowed_lateness_ms: 2000, early_fire_delay_ms: 1000 };
    type WindowsOf = Box<dyn Fn(i64) -> Vec<(i64, i64)>>;
    let cases: [(WindowKind, WindowsOf); 3] = [
        (WindowKind::Tumble { size: 3000, offset: 0 }, Box::new(|ts| hop_windows(ts, 3000, 3000))),
        (WindowKind::Hop { slide: 2000, size: 10_000, offset: 0 }, Box::new(|ts| hop_windows(ts, 2000, 10_000))),
        (
            WindowKind::Cumulate { step: 2000, size: 10_000, offset: 0 },
            Box::new(|ts| cumulate_windows(ts, 2000, 10_000)),
        ),
    ];
    for (window, windows) in cases {
        let (mut op, late) = operator_with(window, true, count_sum(), emit);
        let rows_in = generated_rows(400);
        let t0 = Instant::now();
        let mut out = Vec::new();
        let mut max_ts = i64::MIN;
        for (n, chunk) in rows_in.chunks(17).enumerate() {
            out.extend(feed(&mut op, vec![Message::Data(batch(chunk))]));
            if n % 3 == 0 {
                out.extend(tick(&mut op, t0 + Duration::from_secs(n as u64)));
            }
            max_ts = chunk.iter().map(|r| r.0).fold(max_ts, i64::max);
            out.extend(feed(&mut op, vec![Message::Watermark(Watermark(max_ts - 500))]));
        }
        out.extend(feed(&mut op, vec![Message::Watermark(Watermark::MAX)]));
        let mut state: BTreeMap<String, String> = BTreeMap::new();
        changes(&out); // checks -U/+U pairing
                       // Applied in output order, checking retractions match what was emitted.
        for m in &out {
            let Message::Data(b) = m else { continue };
            let kinds = b.row_kinds.as_ref().unwrap();
            for (kind, row) in kinds.iter().zip(row_strings(b)) {
                let (window_key, values) = {
                    let cut = row.match_indices('|').nth(2).unwrap().0;
                    (row[..cut].to_string(), row[cut + 1..].to_string())
                };
                match RowKind::from_code(kind.unwrap()).unwrap() {
                    RowKind::Insert | RowKind::UpdateAfter => {
                        assert!(state.insert(window_key, values).is_none(), "{window:?}: double insert");
                    }
                    RowKind::UpdateBefore => {
                        assert_eq!(state.remove(&window_key), Some(values), "{window:?}: wrong retraction")
                    }
                    RowKind::Delete => panic!("no deletes expected"),
                }
            }
        }
        let mut result: Vec<String> = state.into_iter().map(|(k, v)| format!("{k}|{v}")).collect();
        result.sort();
        assert_eq!(result, brute_force(&rows_in, windows), "{window:?}");
        assert_eq!(late.get(), 0);
        assert!(op.slices.is_empty() && op.retained_windows() == 0 && op.dirty.is_empty());
    }
}

/// One step of a test run: a message, or an early fire at a processing time.
// Test input, a few dozen steps: boxing messages would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Step {
    M(Message),
    Tick(Instant),
}

fn drive(op: &mut WindowAggregateOperator, steps: &[Step]) -> Vec<Message> {
    let mut out = Vec::new();
    for s in steps {
        match s {
            Step::M(m) => out.extend(feed(op, vec![m.clone()])),
            Step::Tick(now) => out.extend(tick(op, *now)),
        }
    }
    out
}

/// The output in order: each batch as its rows (with their kinds), each watermark.
fn trace(out: &[Message]) -> Vec<String> {
    let mut lines = Vec::new();
    for m in out {
        match m {
            Message::Data(b) => {
                let kinds: Vec<String> = match &b.row_kinds {
                    Some(k) => k.iter().map(|k| RowKind::from_code(k.unwrap()).unwrap().to_string()).collect(),
                    None => vec!["append".into(); b.num_rows()],
                };
                let rows = row_strings(b);
                lines.push(format!("batch of {}", rows.len()));
                lines.extend(kinds.iter().zip(rows).map(|(k, r)| format!("{k}|{r}")));
            }
            Message::Watermark(w) => lines.push(format!("watermark {}", w.0)),
            other => lines.push(format!("{other:?}")),
        }
    }
    lines
}

/// Runs `steps` straight through one operator and, for every split point, through one
/// that is snapshotted there (the snapshot written and read back as checkpoint files) and
/// goes on, and through a fresh one restored from that snapshot: all three must emit the
/// same after the split. Returns the straight run's output.
fn assert_restores_everywhere(make: impl Fn() -> WindowAggregateOperator, steps: &[Step]) -> Vec<Message> {
    let mut straight = make();
    let mut expected = Vec::new();
    let mut after_each = Vec::new();
    for s in steps {
        let out = drive(&mut straight, std::slice::from_ref(s));
        expected.extend(out.iter().cloned());
        after_each.push(trace(&out));
    }
    for split in 0..=steps.len() {
        let mut original = make();
        drive(&mut original, &steps[..split]);
        let snapshot = original.snapshot_state().unwrap().expect("a stateful operator has state");
        assert!(snapshot.batches.iter().all(|b| b.schema().fields().len() == b.num_columns()));
        let mut restored = make();
        restored.restore_state(crate::operators::snapshot::through_files(snapshot)).unwrap();
        assert_eq!(restored.next_processing_time().is_some(), original.next_processing_time().is_some());
        let want: Vec<String> = after_each[split..].iter().flatten().cloned().collect();
        let rest = &steps[split..];
        assert_eq!(trace(&drive(&mut original, rest)), want, "snapshotted at step {split}");
        assert_eq!(trace(&drive(&mut restored, rest)), want, "restored at step {split}");
        assert!(restored.slices.is_empty() && restored.emitted.is_empty() && restored.dirty.is_empty());
    }
    expected
}

/// Batches of 17 generated rows, each followed by a watermark 500 ms behind the largest
/// time so far (so some rows are late, some partly late), an early fire every third batch
/// when `ticks`, then the end-of-input watermark.
fn generated_steps(n: usize, ticks: bool) -> Vec<Step> {
    let t0 = Instant::now();
    let mut steps = Vec::new();
    let mut max_ts = i64::MIN;
    for (i, chunk) in generated_rows(n).chunks(17).enumerate() {
        steps.push(Step::M(Message::Data(batch(chunk))));
        if ticks && i % 3 == 0 {
            steps.push(Step::Tick(t0 + Duration::from_secs(i as u64)));
        }
        max_ts = chunk.iter().map(|r| r.0).fold(max_ts, i64::max);
        steps.push(Step::M(Message::Watermark(Watermark(max_ts - 500))));
    }
    steps.push(Step::M(Message::Watermark(Watermark::MAX)));
    steps
}

fn windows_under_test() -> [WindowKind; 3] {
    [
        WindowKind::Tumble { size: 3000, offset: 0 },
        WindowKind::Hop { slide: 2000, size: 10_000, offset: 0 },
        WindowKind::Cumulate { step: 2000, size: 10_000, offset: 0 },
    ]
}

/// COUNT, SUM, COUNT(DISTINCT) and AVG: state arrays of one, list and two columns.
fn checkpointed_aggregates() -> Vec<AggregateSpec> {
    let v_double = expr_cast(col("v", &input_schema()).unwrap(), &input_schema(), DataType::Float64).unwrap();
    vec![
        agg(count_udaf(), false, None),
        agg(sum_udaf(), false, Some(v_greater_than(10))),
        agg(count_udaf(), true, None),
        agg_of(avg_udaf(), v_double, false, None),
    ]
}

#[test]
fn append_output_restores_at_every_step() {
    for window in windows_under_test() {
        for keyed in [true, false] {
            let make = || operator(window, keyed, checkpointed_aggregates()).0;
            let out = assert_restores_everywhere(make, &generated_steps(120, false));
            assert!(rows(&out).len() > 3, "{window:?}: some windows fired");
        }
    }
}

#[test]
fn updating_output_restores_at_every_step() {
    let emits = [
        EmitStrategy { allowed_lateness_ms: 2000, early_fire_delay_ms: 1000 },
        EmitStrategy { allowed_lateness_ms: 1000, early_fire_delay_ms: 0 },
        EmitStrategy { allowed_lateness_ms: 0, early_fire_delay_ms: 1000 },
    ];
    for window in windows_under_test() {
        for emit in emits {
            for keyed in [true, false] {
                let make = || operator_with(window, keyed, checkpointed_aggregates(), emit).0;
                let out = assert_restores_everywhere(make, &generated_steps(120, true));
                assert!(changes(&out).iter().any(|r| r.starts_with("-U")), "{window:?} {emit:?}: some updates");
            }
        }
    }
}

/// Without keys and aggregates a partial has groups but no columns.
#[test]
fn windows_without_keys_or_aggregates_restore() {
    for window in windows_under_test() {
        let make = || operator(window, false, Vec::new()).0;
        let out = assert_restores_everywhere(make, &generated_steps(60, false));
        assert!(!rows(&out).is_empty());
        let make = || operator_with(window, false, Vec::new(), lateness(1000)).0;
        assert_restores_everywhere(make, &generated_steps(60, false));
    }
}

#[test]
fn snapshot_keeps_live_partials_of_a_tumble_window() {
    let window = WindowKind::Tumble { size: 10_000, offset: 0 };
    let (mut op, _) = operator(window, true, count_sum());
    feed(&mut op, vec![Message::Data(batch(&[(1000, "a", 1), (2000, "b", 2)]))]);
    let snapshot = op.snapshot_state().unwrap().unwrap();
    feed(&mut op, vec![Message::Data(batch(&[(3000, "a", 4)]))]);
    let (mut restored, _) = operator(window, true, count_sum());
    restored.restore_state(snapshot).unwrap();
    let out = feed(&mut op, vec![Message::Watermark(Watermark::MAX)]);
    assert_eq!(rows(&out), sorted(&["a|0|10000|2|5", "b|0|10000|1|2"]));
    let out = feed(&mut restored, vec![Message::Watermark(Watermark::MAX)]);
    assert_eq!(rows(&out), sorted(&["a|0|10000|1|1", "b|0|10000|1|2"]));
}

#[test]
fn malformed_snapshots_are_refused() {
    let window = WindowKind::Hop { slide: 2000, size: 10_000, offset: 0 };
    let (mut op, _) = operator_with(window, true, count_sum(), lateness(1000));
    feed(&mut op, vec![Message::Data(batch(&[(1000, "a", 1)])), Message::Watermark(Watermark(2500))]);
    let good = op.snapshot_state().unwrap().unwrap();
    let fresh = || operator_with(window, true, count_sum(), lateness(1000)).0;
    let refused = |state: crate::checkpoint::StateSnapshot| {
        let err = fresh().restore_state(state).unwrap_err();
        assert!(matches!(err, EngineError::Checkpoint(_)), "{err}");
    };
    refused(crate::checkpoint::StateSnapshot { batches: Vec::new(), ..good.clone() });
    refused(crate::checkpoint::StateSnapshot::meta(serde_json::json!({ "watermark": "soon" })));
    // Another aggregate's state.
    let (mut other, _) = operator_with(window, true, vec![agg(max_udaf(), false, None)], lateness(1000));
    feed(&mut other, vec![Message::Data(batch(&[(1000, "a", 1)]))]);
    refused(other.snapshot_state().unwrap().unwrap());
    // Another key type.
    let (mut global, _) = operator_with(window, false, count_sum(), lateness(1000));
    feed(&mut global, vec![Message::Data(batch(&[(1000, "a", 1)]))]);
    refused(global.snapshot_state().unwrap().unwrap());
    fresh().restore_state(good).unwrap();
}

#[test]
fn state_bytes_grow_with_keys_and_drop_when_windows_fire() {
    let (mut op, _) = operator(WindowKind::Tumble { size: 3000, offset: 0 }, true, checkpointed_aggregates());
    assert_eq!(op.state_bytes(), 0);
    feed(&mut op, vec![Message::Data(batch(&[(100, "a", 1), (3100, "a", 2)]))]);
    let one_key = op.state_bytes();
    let many: Vec<String> = (0..200).map(|i| format!("k{i}")).collect();
    let rows_in: Vec<Row> = many.iter().enumerate().map(|(i, k)| (200, k.as_str(), i as i64)).collect();
    feed(&mut op, vec![Message::Data(batch(&rows_in))]);
    let many_keys = op.state_bytes();
    assert!(many_keys > one_key && one_key > 0, "{many_keys} > {one_key} > 0");
    // [0, 3000) fires and is freed; [3000, 6000) is left.
    feed(&mut op, vec![Message::Watermark(Watermark(2999))]);
    let left = op.state_bytes();
    assert!(0 < left && left < many_keys, "0 < {left} < {many_keys}");
    feed(&mut op, vec![Message::Watermark(Watermark::MAX)]);
    assert_eq!(op.state_bytes(), 0);
}

/// The running figure equals a recount after every step, for every window and output
/// mode, and everything is freed at the end.
#[test]
fn state_bytes_stay_equal_to_a_recount() {
    let emits = [EmitStrategy::default(), EmitStrategy { allowed_lateness_ms: 2000, early_fire_delay_ms: 1000 }];
    for window in windows_under_test() {
        for emit in emits {
            let (mut op, _) = operator_with(window, true, checkpointed_aggregates(), emit);
            let mut peak = 0;
            for (i, step) in generated_steps(120, emit.is_updating()).iter().enumerate() {
                drive(&mut op, std::slice::from_ref(step));
                assert_eq!(op.state_bytes, op.count_state_bytes(), "{window:?} {emit:?} step {i}");
                peak = peak.max(op.state_bytes());
                if i % 7 == 0 {
                    op.snapshot_state().unwrap();
                    assert_eq!(op.state_bytes, op.count_state_bytes(), "{window:?} {emit:?} snapshot at {i}");
                }
            }
            assert!(peak > 0);
            assert_eq!(op.state_bytes(), 0, "{window:?} {emit:?}: all freed");
        }
    }
}

/// Aligning a time to a window grid: in i64 where it fits, saturating where it does not,
/// as the i128 arithmetic it stands for.
#[test]
fn align_down_agrees_with_wide_arithmetic() {
    let wide = |t: i64, unit: i64, offset: i64| {
        let t = i128::from(t);
        i64::try_from(t - (t - i128::from(offset)).rem_euclid(i128::from(unit))).unwrap_or(i64::MIN)
    };
    let times = [i64::MIN, i64::MIN + 1, -5_001, -1, 0, 1, 4_999, 5_000, 1_709_337_585_123, i64::MAX - 1, i64::MAX];
    for t in times {
        for unit in [1, 2, 1_000, 5_000, 86_400_000, i64::MAX] {
            for offset in [0, 1, -7_200_000, 3_600_000, i64::MIN, i64::MAX] {
                assert_eq!(super::align_down(t, unit, offset), wide(t, unit, offset), "{t} {unit} {offset}");
            }
        }
    }
}
