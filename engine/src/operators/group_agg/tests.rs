//! Tests of the group aggregation: changelogs checked row by row against hand-computed
//! values, on append-only and retracting inputs, in streaming and batch mode.

use std::time::Duration;

use arrow::array::{Int64Array, StringArray};
use arrow::datatypes::{Field, Schema};
use arrow::util::display::array_value_to_string;
use datafusion::functions_aggregate::average::avg_udaf;
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::functions_aggregate::first_last::first_value_udaf;
use datafusion::functions_aggregate::min_max::{max_udaf, min_udaf};
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::logical_expr::{AggregateUDF, Operator as BinaryOp};
use datafusion::physical_expr::aggregate::AggregateExprBuilder;
use datafusion::physical_expr::expressions::{binary, cast, col, lit};
use eddy_connectors::RowKind::{Delete as D, Insert as I, UpdateAfter as UA, UpdateBefore as UB};
use eddy_sql::plan::{AggregateSpec, ExprSpec};

use super::*;
use crate::metrics::LateRowCounter;
use crate::operators::snapshot::assert_restores_everywhere;
use crate::operators::ttl::ManualClock;

fn input_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true), Field::new("v", DataType::Int64, true)]))
}

/// Rows `(kind, k, v)`.
fn changes(rows: &[(RowKind, Option<&str>, Option<i64>)]) -> Batch {
    let k = StringArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>());
    let v = Int64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>());
    let data = RecordBatch::try_new(input_schema(), vec![Arc::new(k), Arc::new(v)]).expect("batch");
    let kinds = Int8Array::from(rows.iter().map(|r| r.0.code()).collect::<Vec<_>>());
    Batch { row_kinds: Some(kinds), ..Batch::append(data) }
}

/// Append-only rows `(k, v)`.
fn rows(rows: &[(&str, i64)]) -> Batch {
    let mut b = changes(&rows.iter().map(|(k, v)| (I, Some(*k), Some(*v))).collect::<Vec<_>>());
    b.row_kinds = None;
    b
}

fn agg(udaf: Arc<AggregateUDF>, distinct: bool) -> AggregateSpec {
    agg_with(udaf, col("v", &input_schema()).expect("v"), distinct, None)
}

/// `AVG(v)`, its argument cast to DOUBLE as DataFusion's type coercion does.
fn avg() -> AggregateSpec {
    let schema = input_schema();
    let v = cast(col("v", &schema).expect("v"), &schema, DataType::Float64).expect("cast");
    agg_with(avg_udaf(), v, false, None)
}

fn count_star() -> AggregateSpec {
    agg_with(count_udaf(), lit(1i64), false, None)
}

fn agg_with(
    udaf: Arc<AggregateUDF>,
    arg: Arc<dyn PhysicalExpr>,
    distinct: bool,
    filter: Option<Arc<dyn PhysicalExpr>>,
) -> AggregateSpec {
    let name = format!("{}{}", udaf.name(), if distinct { "_distinct" } else { "" });
    let function = AggregateExprBuilder::new(udaf, vec![arg])
        .schema(input_schema())
        .alias(name.clone())
        .with_distinct(distinct)
        .build()
        .expect("aggregate");
    let filter = filter.map(|expr| ExprSpec { expr, display: "filter".into() });
    AggregateSpec { function: Arc::new(function), filter, display: name }
}

struct Setup {
    keyed: bool,
    aggregates: Vec<AggregateSpec>,
    retracting: bool,
    emit: GroupEmit,
    ttl: Option<Duration>,
}

impl Setup {
    fn new(aggregates: Vec<AggregateSpec>) -> Self {
        Self { keyed: true, aggregates, retracting: false, emit: GroupEmit::Changelog, ttl: None }
    }

    fn retracting(self) -> Self {
        Self { retracting: true, ..self }
    }

    fn global(self) -> Self {
        Self { keyed: false, ..self }
    }

    fn batch(self) -> Self {
        Self { emit: GroupEmit::Final, ..self }
    }

    fn ttl(self, ttl: Duration) -> Self {
        Self { ttl: Some(ttl), ..self }
    }

    fn build(&self) -> Result<GroupAggregateOperator> {
        let schema = input_schema();
        let mut keys = Vec::new();
        let mut fields = Vec::new();
        if self.keyed {
            keys.push(ExprSpec { expr: col("k", &schema).expect("k"), display: "k".into() });
            fields.push(Field::new("k", DataType::Utf8, true));
        }
        fields.extend(self.aggregates.iter().map(|a| a.function.field().as_ref().clone()));
        let spec = GroupAggSpec {
            keys,
            aggregates: self.aggregates.clone(),
            input_updating: self.retracting,
            emit: self.emit,
        };
        let ctx = OperatorContext {
            input_schema: schema,
            output_schema: Arc::new(Schema::new(fields)),
            late_rows: LateRowCounter::detached(),
            state_ttl: self.ttl,
        };
        GroupAggregateOperator::new(spec, ctx)
    }

    fn operator(&self) -> GroupAggregateOperator {
        self.build().expect("operator")
    }
}

/// `+I[a, 1, 10]` per output row.
fn changelog(out: &[Message]) -> Vec<String> {
    let mut lines = Vec::new();
    for m in out {
        let Message::Data(b) = m else { continue };
        for r in 0..b.num_rows() {
            let kind = match &b.row_kinds {
                Some(k) => RowKind::from_code(k.value(r)).expect("kind"),
                None => RowKind::Insert,
            };
            let values: Vec<String> = b
                .data
                .columns()
                .iter()
                .map(|c| if c.is_null(r) { "null".into() } else { array_value_to_string(c, r).expect("value") })
                .collect();
            lines.push(format!("{kind}[{}]", values.join(", ")));
        }
    }
    lines
}

fn run(op: &mut GroupAggregateOperator, b: Batch) -> Vec<String> {
    let mut out = Vec::new();
    op.process_batch(b, &mut out).expect("process");
    changelog(&out)
}

fn end(op: &mut GroupAggregateOperator) -> (Vec<String>, bool) {
    let mut out = Vec::new();
    op.on_end(&mut out).expect("end");
    let append_only = out.iter().all(|m| matches!(m, Message::Data(b) if b.row_kinds.is_none()));
    (changelog(&out), append_only)
}

#[test]
fn append_input_emits_inserts_then_updates_of_changed_keys() {
    let mut op = Setup::new(vec![count_star(), agg(sum_udaf(), false), agg(max_udaf(), false), avg()]).operator();
    // Two rows of one key in one batch make one insert.
    let out = run(&mut op, rows(&[("a", 10), ("b", 4), ("a", 2)]));
    assert_eq!(out, ["+I[a, 2, 12, 10, 6.0]", "+I[b, 1, 4, 4, 4.0]"]);
    let out = run(&mut op, rows(&[("b", 8), ("c", 1)]));
    assert_eq!(out, ["-U[b, 1, 4, 4, 4.0]", "+U[b, 2, 12, 8, 6.0]", "+I[c, 1, 1, 1, 1.0]"]);
    // End of input and watermarks change nothing in streaming mode.
    assert_eq!(end(&mut op).0, Vec::<String>::new());
    let mut out = Vec::new();
    op.handle_watermark(crate::message::Watermark(7), &mut out).expect("watermark");
    assert!(matches!(out.as_slice(), [Message::Watermark(crate::message::Watermark(7))]));
}

#[test]
fn an_unchanged_result_emits_nothing() {
    let mut op = Setup::new(vec![agg(max_udaf(), false)]).operator();
    assert_eq!(run(&mut op, rows(&[("a", 10)])), ["+I[a, 10]"]);
    assert!(run(&mut op, rows(&[("a", 3), ("a", 10)])).is_empty());
    assert_eq!(run(&mut op, rows(&[("a", 11)])), ["-U[a, 10]", "+U[a, 11]"]);
}

#[test]
fn retracted_min_and_max_go_back_to_earlier_values() {
    let mut op = Setup::new(vec![agg(min_udaf(), false), agg(max_udaf(), false), agg(sum_udaf(), false)])
        .retracting()
        .operator();
    let out = run(&mut op, changes(&[(I, Some("a"), Some(5)), (I, Some("a"), Some(9)), (I, Some("a"), Some(1))]));
    assert_eq!(out, ["+I[a, 1, 9, 15]"]);
    // The minimum leaves: the next one is the minimum again.
    let out = run(&mut op, changes(&[(D, Some("a"), Some(1))]));
    assert_eq!(out, ["-U[a, 1, 9, 15]", "+U[a, 5, 9, 14]"]);
    // 9 updated to 3: the maximum falls back to 5, the minimum is the new value.
    let out = run(&mut op, changes(&[(UB, Some("a"), Some(9)), (UA, Some("a"), Some(3))]));
    assert_eq!(out, ["-U[a, 5, 9, 14]", "+U[a, 3, 5, 8]"]);
    // Duplicates count: taking back one 5 of two keeps 5.
    run(&mut op, changes(&[(I, Some("a"), Some(5))]));
    let out = run(&mut op, changes(&[(D, Some("a"), Some(5)), (D, Some("a"), Some(3))]));
    assert_eq!(out, ["-U[a, 3, 5, 13]", "+U[a, 5, 5, 5]"]);
    // NULLs are ignored, as in SQL: a key with only NULLs has NULL results.
    let out = run(&mut op, changes(&[(D, Some("a"), Some(5)), (I, Some("a"), None)]));
    assert_eq!(out, ["-U[a, 5, 5, 5]", "+U[a, null, null, null]"]);
}

#[test]
fn count_distinct_takes_values_back_when_their_last_row_leaves() {
    let mut op = Setup::new(vec![agg(count_udaf(), true), agg(sum_udaf(), true)]).retracting().operator();
    let out = run(&mut op, changes(&[(I, Some("a"), Some(1)), (I, Some("a"), Some(1)), (I, Some("a"), Some(2))]));
    assert_eq!(out, ["+I[a, 2, 3]"]);
    // One of two 1s leaves: the distinct values are the same, nothing is emitted.
    assert!(run(&mut op, changes(&[(D, Some("a"), Some(1))])).is_empty());
    let out = run(&mut op, changes(&[(D, Some("a"), Some(1))]));
    assert_eq!(out, ["-U[a, 2, 3]", "+U[a, 1, 2]"]);
    let out = run(&mut op, changes(&[(I, Some("a"), Some(7)), (I, Some("a"), None), (I, Some("a"), Some(1))]));
    assert_eq!(out, ["-U[a, 1, 2]", "+U[a, 3, 10]"]);
}

#[test]
fn a_key_whose_rows_are_all_taken_back_is_deleted() {
    let mut op = Setup::new(vec![count_star(), agg(sum_udaf(), false)]).retracting().operator();
    assert_eq!(
        run(&mut op, changes(&[(I, Some("a"), Some(1)), (I, Some("b"), Some(2))])),
        ["+I[a, 1, 1]", "+I[b, 1, 2]"]
    );
    // The -D carries the row last emitted; a retraction of a key without rows is ignored.
    let out = run(&mut op, changes(&[(D, Some("a"), Some(1)), (D, Some("x"), Some(5))]));
    assert_eq!(out, ["-D[a, 1, 1]"]);
    assert_eq!(op.groups.len(), 1);
    // The key starts afresh.
    assert_eq!(run(&mut op, changes(&[(I, Some("a"), Some(4))])), ["+I[a, 1, 4]"]);
    // Added and taken back within one batch: never seen downstream.
    assert!(run(&mut op, changes(&[(I, Some("c"), Some(1)), (UB, Some("c"), Some(1))])).is_empty());
    // Taken back to nothing and added again in one batch: one update. Extra retractions
    // after the key is gone retract nothing.
    let out = run(
        &mut op,
        changes(&[(D, Some("b"), Some(2)), (D, Some("b"), Some(2)), (I, Some("b"), Some(9)), (I, Some("b"), Some(1))]),
    );
    assert_eq!(out, ["-U[b, 1, 2]", "+U[b, 2, 10]"]);
    assert_eq!(op.groups.len(), 2);
}

#[test]
fn a_null_key_is_a_group_of_its_own() {
    let mut op = Setup::new(vec![count_star()]).operator();
    let out = run(&mut op, changes(&[(I, None, Some(1)), (I, Some("a"), Some(2)), (I, None, Some(3))]));
    assert_eq!(out, ["+I[null, 2]", "+I[a, 1]"]);
    assert_eq!(run(&mut op, changes(&[(I, None, None)])), ["-U[null, 2]", "+U[null, 3]"]);
}

#[test]
fn a_global_aggregate_has_one_group() {
    let mut op = Setup::new(vec![count_star(), agg(sum_udaf(), false)]).global().retracting().operator();
    assert_eq!(run(&mut op, changes(&[(I, Some("a"), Some(1)), (I, Some("b"), Some(2))])), ["+I[2, 3]"]);
    assert_eq!(run(&mut op, changes(&[(D, Some("b"), Some(2))])), ["-U[2, 3]", "+U[1, 1]"]);
    assert_eq!(run(&mut op, changes(&[(D, Some("a"), Some(1))])), ["-D[1, 1]"]);
}

#[test]
fn batch_mode_emits_the_final_row_per_key_at_the_end() {
    let mut op = Setup::new(vec![count_star(), agg(max_udaf(), false)]).batch().operator();
    assert!(run(&mut op, rows(&[("b", 1), ("a", 5)])).is_empty());
    assert!(run(&mut op, changes(&[(I, None, Some(2)), (I, Some("b"), Some(7))])).is_empty());
    let (out, append_only) = end(&mut op);
    assert!(append_only);
    assert_eq!(out, ["+I[null, 1, 2]", "+I[a, 1, 5]", "+I[b, 2, 7]"]);
    assert_eq!(op.state_bytes(), 0);
    // Retractions are applied before the end.
    let mut op = Setup::new(vec![count_star(), agg(max_udaf(), false)]).retracting().batch().operator();
    run(&mut op, changes(&[(I, Some("a"), Some(5)), (I, Some("a"), Some(6)), (I, Some("b"), Some(1))]));
    run(&mut op, changes(&[(D, Some("a"), Some(6)), (D, Some("b"), Some(1))]));
    assert_eq!(end(&mut op).0, ["+I[a, 1, 5]"]);
}

#[test]
fn a_global_aggregate_in_batch_mode_has_a_row_without_input() {
    let mut op = Setup::new(vec![count_star(), agg(sum_udaf(), false)]).global().batch().operator();
    assert_eq!(end(&mut op).0, ["+I[0, null]"]);
    // Keyed, no input: no rows.
    let mut op = Setup::new(vec![count_star()]).batch().operator();
    assert!(end(&mut op).0.is_empty());
}

#[test]
fn filter_and_a_group_by_without_aggregates() {
    let schema = input_schema();
    let positive = binary(col("v", &schema).expect("v"), BinaryOp::Gt, lit(0i64), &schema).expect("filter");
    let filtered = agg_with(count_udaf(), lit(1i64), false, Some(positive));
    let mut op = Setup::new(vec![filtered]).retracting().operator();
    let out = run(&mut op, changes(&[(I, Some("a"), Some(-1)), (I, Some("a"), Some(3)), (I, Some("a"), None)]));
    assert_eq!(out, ["+I[a, 1]"]);
    assert_eq!(run(&mut op, changes(&[(D, Some("a"), Some(3))])), ["-U[a, 1]", "+U[a, 0]"]);
    // `SELECT DISTINCT k`: keys only, inserted once and deleted with their last row.
    let mut op = Setup::new(vec![]).retracting().operator();
    assert_eq!(run(&mut op, changes(&[(I, Some("a"), Some(1)), (I, Some("a"), Some(2))])), ["+I[a]"]);
    assert!(run(&mut op, changes(&[(D, Some("a"), Some(1))])).is_empty());
    assert_eq!(run(&mut op, changes(&[(D, Some("a"), Some(2))])), ["-D[a]"]);
}

#[test]
fn a_changelog_into_an_append_only_plan_or_an_aggregate_without_retraction_is_refused() {
    let mut op = Setup::new(vec![count_star()]).operator();
    let mut out = Vec::new();
    let e = op.process_batch(changes(&[(D, Some("a"), Some(1))]), &mut out).unwrap_err();
    assert!(e.to_string().contains("append-only input, got a -D row"), "{e}");
    let Err(e) = Setup::new(vec![agg(first_value_udaf(), false)]).retracting().build() else {
        panic!("FIRST_VALUE cannot retract here")
    };
    assert!(e.to_string().contains("first_value over an updating input"), "{e}");
    // On an append-only input it is a plain accumulator.
    assert!(Setup::new(vec![agg(first_value_udaf(), false)]).build().is_ok());
}

/// Aggregates sharing an argument and a FILTER, beside one without: keys interleaved, and a
/// key's rows in runs of adds and retractions, some of them rows the FILTER drops.
#[test]
fn shared_filters_apply_each_keys_runs_to_the_rows_they_keep() {
    let schema = input_schema();
    let v = || col("v", &schema).expect("v");
    let positive = || Some(binary(v(), BinaryOp::Gt, lit(0i64), &schema).expect("filter"));
    let aggregates = vec![
        agg_with(count_udaf(), v(), false, positive()),
        agg_with(sum_udaf(), v(), false, positive()),
        agg_with(sum_udaf(), v(), false, None),
        agg_with(count_udaf(), v(), true, positive()),
    ];
    let mut op = Setup::new(aggregates).retracting().operator();
    let first = [(I, "a", 1), (I, "b", -2), (I, "a", -3), (I, "a", 2), (I, "b", 5), (I, "a", 2)];
    let first: Vec<_> = first.iter().map(|(kind, k, v)| (*kind, Some(*k), Some(*v))).collect();
    assert_eq!(run(&mut op, changes(&first)), ["+I[a, 3, 5, 2, 2]", "+I[b, 1, 5, 3, 1]"]);
    // a: 2 and -3 taken back; b: -1 added, then 5 taken back.
    let second = [(D, "a", 2), (I, "b", -1), (D, "a", -3), (D, "b", 5)];
    let second: Vec<_> = second.iter().map(|(kind, k, v)| (*kind, Some(*k), Some(*v))).collect();
    assert_eq!(
        run(&mut op, changes(&second)),
        ["-U[a, 3, 5, 2, 2]", "+U[a, 2, 3, 3, 2]", "-U[b, 1, 5, 3, 1]", "+U[b, 0, null, -3, 0]"]
    );
}

/// COUNT(DISTINCT v) with different FILTERs (and one FILTER twice) on an append-only input
/// share one set per key, a bit per aggregate: NULLs and rows a FILTER drops count for none
/// or only some of them; the values restore at every message.
#[test]
fn distinct_counts_of_one_argument_share_a_set_with_a_bit_per_filter() {
    let schema = input_schema();
    let v = || col("v", &schema).expect("v");
    let positive = || Some(binary(v(), BinaryOp::Gt, lit(0i64), &schema).expect("filter"));
    let negative = || Some(binary(v(), BinaryOp::Lt, lit(0i64), &schema).expect("filter"));
    let aggregates = vec![
        agg_with(count_udaf(), v(), true, None),
        agg_with(count_udaf(), v(), true, positive()),
        agg_with(count_udaf(), v(), true, negative()),
        agg_with(count_udaf(), v(), true, positive()),
        agg_with(count_udaf(), lit(1i64), false, positive()),
    ];
    let setup = Setup::new(aggregates);
    let op = setup.operator();
    assert_eq!(op.shared.iter().map(|s| s.members.clone()).collect::<Vec<_>>(), [vec![0, 1, 2, 3]]);
    let some = |rows: &[(&'static str, Option<i64>)]| {
        let mut b = changes(&rows.iter().map(|(k, v)| (I, Some(*k), *v)).collect::<Vec<_>>());
        b.row_kinds = None;
        Message::Data(b)
    };
    let input = vec![
        some(&[("a", Some(1)), ("b", Some(5)), ("a", Some(-2)), ("a", Some(1)), ("a", None)]),
        some(&[("a", Some(3)), ("a", Some(-2)), ("a", Some(0)), ("b", Some(5))]),
        Message::End,
    ];
    let out = assert_restores_everywhere(|| setup.operator(), &input);
    assert_eq!(
        changelog(&out),
        [
            "+I[a, 2, 1, 1, 1, 2]",
            "+I[b, 1, 1, 0, 1, 1]",
            "-U[a, 2, 1, 1, 1, 2]",
            "+U[a, 4, 2, 1, 2, 3]",
            "-U[b, 1, 1, 0, 1, 1]",
            "+U[b, 1, 1, 0, 1, 2]"
        ]
    );
    // Nine over one argument: eight share a set, the ninth keeps its own.
    let nine = Setup::new((0..9).map(|_| agg(count_udaf(), true)).collect());
    let mut op = nine.operator();
    assert_eq!(op.shared.iter().map(|s| s.members.len()).collect::<Vec<_>>(), [8]);
    assert_eq!(run(&mut op, rows(&[("a", 1), ("a", 2), ("a", 1)])), ["+I[a, 2, 2, 2, 2, 2, 2, 2, 2, 2]"]);
    // On an updating input nothing is shared (a set of bits cannot take a row back).
    let op = Setup::new((0..2).map(|_| agg(count_udaf(), true)).collect()).retracting().operator();
    assert!(op.shared.is_empty());
}

/// A changelog input with every kind of state: accumulators, MIN/MAX counts, DISTINCT counts.
fn mixed_input() -> Vec<Message> {
    vec![
        Message::Data(changes(&[(I, Some("a"), Some(5)), (I, Some("b"), Some(2)), (I, None, Some(3))])),
        Message::Data(changes(&[(I, Some("a"), Some(9)), (I, Some("a"), Some(5)), (UB, Some("b"), Some(2))])),
        Message::Watermark(crate::message::Watermark(5)),
        Message::Data(changes(&[(UA, Some("b"), Some(4)), (D, Some("a"), Some(9)), (I, Some("c"), None)])),
        Message::Data(changes(&[(D, Some("c"), None), (D, Some("a"), Some(5)), (I, Some("d"), Some(1))])),
        Message::Data(changes(&[(I, Some("c"), Some(8)), (D, Some("a"), Some(5)), (I, Some("a"), Some(2))])),
        Message::End,
    ]
}

fn every_kind() -> Vec<AggregateSpec> {
    vec![
        count_star(),
        agg(sum_udaf(), false),
        avg(),
        agg(min_udaf(), false),
        agg(max_udaf(), false),
        agg(count_udaf(), true),
        agg(sum_udaf(), true),
    ]
}

#[test]
fn restores_at_every_message() {
    let input = mixed_input();
    let setup = Setup::new(every_kind()).retracting();
    let out = assert_restores_everywhere(|| setup.operator(), &input);
    let log = changelog(&out);
    assert!(log.contains(&"-D[c, 1, null, null, null, null, 0, null]".to_string()), "{log:?}");
    // a's last row leaves and a new one comes in one batch: an update, not -D/+I.
    assert_eq!(
        log[log.len() - 3..],
        ["+I[c, 1, 8, 8.0, 8, 8, 1, 8]", "-U[a, 1, 5, 5.0, 5, 5, 1, 5]", "+U[a, 1, 2, 2.0, 2, 2, 1, 2]"],
        "{log:?}"
    );
    // An append-only input: COUNT and COUNT(DISTINCT) are updated in place (`native.rs`),
    // and restore like the accumulators beside them.
    let appended = vec![
        Message::Data(rows(&[("a", 5), ("b", 2), ("a", 5)])),
        Message::Data(rows(&[("a", 9), ("b", 2), ("c", 1)])),
        Message::Data(rows(&[("a", 1), ("c", 1)])),
        Message::End,
    ];
    let setup = Setup::new(every_kind());
    let out = assert_restores_everywhere(|| setup.operator(), &appended);
    let log = changelog(&out);
    assert_eq!(log.len(), 11, "{log:?}");
    assert_eq!(
        log[8..],
        ["+U[a, 4, 20, 5.0, 1, 9, 3, 15]", "-U[c, 1, 1, 1.0, 1, 1, 1, 1]", "+U[c, 2, 2, 1.0, 1, 1, 1, 1]"],
        "{log:?}"
    );
    assert_eq!(log[..2], ["+I[a, 2, 10, 5.0, 5, 5, 1, 5]", "+I[b, 1, 2, 2.0, 2, 2, 1, 2]"], "{log:?}");

    // Batch mode: the state is every key's, emitted at the end.
    let setup = Setup::new(every_kind()).retracting().batch();
    let out = assert_restores_everywhere(|| setup.operator(), &input);
    assert_eq!(
        changelog(&out),
        [
            "+I[null, 1, 3, 3.0, 3, 3, 1, 3]",
            "+I[a, 1, 2, 2.0, 2, 2, 1, 2]",
            "+I[b, 1, 4, 4.0, 4, 4, 1, 4]",
            "+I[c, 1, 8, 8.0, 8, 8, 1, 8]",
            "+I[d, 1, 1, 1.0, 1, 1, 1, 1]"
        ]
    );
    // Append-only input (plain accumulators, DISTINCT included), with a TTL that nothing
    // reaches (the snapshot then has the keys' ages), and a global aggregate.
    let append: Vec<Message> = vec![
        Message::Data(rows(&[("a", 1), ("b", 2), ("a", 1)])),
        Message::Data(rows(&[("a", 3), ("c", 2)])),
        Message::Data(rows(&[("b", 2)])),
    ];
    let setup = Setup::new(every_kind()).ttl(Duration::from_secs(3600));
    assert_eq!(changelog(&assert_restores_everywhere(|| setup.operator(), &append)).len(), 7);
    let setup = Setup::new(every_kind()).global();
    assert_eq!(changelog(&assert_restores_everywhere(|| setup.operator(), &append)).len(), 5);
}

#[test]
fn state_bytes_follow_the_keys() {
    let mut op = Setup::new(every_kind()).retracting().operator();
    assert_eq!(op.state_bytes(), 0);
    run(&mut op, changes(&[(I, Some("a"), Some(1)), (I, Some("b"), Some(2))]));
    let two = op.state_bytes();
    run(&mut op, changes(&[(I, Some("c"), Some(3)), (I, Some("a"), Some(7)), (I, Some("a"), Some(8))]));
    let three = op.state_bytes();
    assert!(three > two && two > 0, "{three} > {two} > 0");
    let values: usize = op.groups.values().map(|g| g.bytes).sum();
    assert_eq!(op.heap_bytes, values, "the running figure is the sum of the groups'");
    run(
        &mut op,
        changes(&[
            (D, Some("a"), Some(1)),
            (D, Some("a"), Some(7)),
            (D, Some("a"), Some(8)),
            (D, Some("b"), Some(2)),
            (D, Some("c"), Some(3)),
        ]),
    );
    assert_eq!(op.heap_bytes, 0);
    assert!(op.state_bytes() < three);
}

#[test]
fn with_state_ttl_an_untouched_key_is_forgotten() {
    let clock = ManualClock::new();
    let run_with = |ttl: Option<Duration>| {
        let mut setup = Setup::new(vec![agg(max_udaf(), false)]);
        setup.ttl = ttl;
        let mut op = setup.operator();
        op.set_clock(clock.clock());
        let mut out = run(&mut op, rows(&[("a", 10), ("b", 20)]));
        clock.advance(Duration::from_secs(6));
        // a is written again (same result): its state lives on.
        out.extend(run(&mut op, rows(&[("a", 1)])));
        clock.advance(Duration::from_secs(4));
        // b was last written 10 s ago: forgotten, so its row is an insert again.
        out.extend(run(&mut op, rows(&[("a", 12), ("b", 5)])));
        (out, op.groups.len(), op.expiry.as_ref().map_or(0, |e| e.len()))
    };
    let (out, keys, expiring) = run_with(Some(Duration::from_secs(10)));
    // With TTL an unchanged result is emitted as an update, as in Flink.
    assert_eq!(out, ["+I[a, 10]", "+I[b, 20]", "-U[a, 10]", "+U[a, 10]", "-U[a, 10]", "+U[a, 12]", "+I[b, 5]"]);
    assert_eq!((keys, expiring), (2, 2));
    let (out, _, _) = run_with(None);
    assert_eq!(out, ["+I[a, 10]", "+I[b, 20]", "-U[a, 10]", "+U[a, 12]"]);
}

#[test]
fn state_ttl_ages_survive_a_restore() {
    let clock = ManualClock::new();
    let make = || {
        let mut op = Setup::new(vec![count_star()]).retracting().ttl(Duration::from_secs(10)).operator();
        op.set_clock(clock.clock());
        op
    };
    let mut op = make();
    run(&mut op, rows(&[("a", 1)]));
    clock.advance(Duration::from_secs(5));
    run(&mut op, rows(&[("b", 1)]));
    clock.advance(Duration::from_secs(2));
    let snapshot = op.snapshot_state().expect("snapshot").expect("state");
    let mut restored = make();
    restored.restore_state(crate::operators::snapshot::through_files(snapshot)).expect("restore");
    assert_eq!(restored.heap_bytes, op.heap_bytes);
    // a was written 10 s ago, b 5 s ago: only a is new again, in both.
    clock.advance(Duration::from_secs(3));
    for op in [&mut op, &mut restored] {
        assert_eq!(run(op, rows(&[("a", 1), ("b", 1)])), ["+I[a, 1]", "-U[b, 1]", "+U[b, 2]"]);
    }
}

/// MIN and MAX of a STRING on an append-only input are updated in place (`native.rs`):
/// NULLs skipped, compared as DataFusion's (by bytes), restored at every message.
#[test]
fn min_and_max_of_strings_are_updated_in_place() {
    let k = || col("k", &input_schema()).expect("k");
    let setup = Setup::new(vec![agg_with(min_udaf(), k(), false, None), agg_with(max_udaf(), k(), false, None)]);
    let append = |values: &[Option<&str>]| {
        let mut b = changes(&values.iter().map(|v| (I, *v, Some(1))).collect::<Vec<_>>());
        b.row_kinds = None;
        Message::Data(b)
    };
    let setup = setup.global();
    let input = vec![
        append(&[None]),
        append(&[Some("m"), Some("b"), None]),
        append(&[Some("z"), Some("é"), Some("a")]),
        append(&[Some("c")]),
        Message::End,
    ];
    let out = assert_restores_everywhere(|| setup.operator(), &input);
    assert_eq!(
        changelog(&out),
        ["+I[null, null]", "-U[null, null]", "+U[b, m]", "-U[b, m]", "+U[a, é]"],
        "by bytes 'é' > 'z'; 'c' changes nothing"
    );
}
