//! EXPLAIN: the operator graph as an indented tree, sink first, with parallelism and
//! whether each edge carries an updating changelog.

use crate::plan::{ExprSpec, GroupAggSpec, GroupEmit, NodeId, Operator, SortKey, StreamPlan};

/// Render a plan: one tree per sink; a node shared by several sinks (a source read once
/// for a statement set) is printed in full the first time and referenced after.
pub fn render(plan: &StreamPlan) -> String {
    let mut out = String::new();
    let mut printed = vec![false; plan.nodes.len()];
    for sink in plan.sinks() {
        render_node(plan, sink, 0, &mut printed, &mut out);
    }
    out
}

fn render_node(plan: &StreamPlan, id: NodeId, depth: usize, printed: &mut [bool], out: &mut String) {
    let node = &plan.nodes[id];
    let indent = "  ".repeat(depth);
    let mode = if node.updating { "changelog" } else { "append" };
    if printed[id] {
        out.push_str(&format!("{indent}-> #{id} (shared, see above)\n"));
        return;
    }
    printed[id] = true;
    out.push_str(&format!("{indent}#{id} {} [parallelism={}, {mode}]\n", describe(&node.operator), node.parallelism));
    for input in &node.inputs {
        render_node(plan, *input, depth + 1, printed, out);
    }
}

/// One line describing an operator.
pub fn describe(op: &Operator) -> String {
    match op {
        Operator::Source(t) => {
            let cols: Vec<&str> = t.schema.fields().iter().map(|f| f.name().as_str()).collect();
            let mut line = format!("Source: {} ({}) fields=[{}]", t.name, t.connector(), cols.join(", "));
            if !t.unread.is_empty() {
                let unread: Vec<String> = t
                    .unread
                    .iter()
                    .map(|(i, field)| {
                        let column = t.schema.fields().get(*i).map_or("?", |f| f.name().as_str());
                        field.as_ref().map_or(column.to_string(), |f| format!("{column}.{f}"))
                    })
                    .collect();
                line.push_str(&format!(" unread=[{}]", unread.join(", ")));
            }
            line
        }
        Operator::Values(b) => format!("Values: {} rows", b.iter().map(|b| b.num_rows()).sum::<usize>()),
        Operator::Project(exprs) => {
            let items: Vec<String> = exprs
                .iter()
                .map(|p| {
                    if p.expr.display == p.name {
                        p.name.clone()
                    } else {
                        format!("{} AS {}", p.expr.display, p.name)
                    }
                })
                .collect();
            format!("Project: {}", items.join(", "))
        }
        Operator::Filter(e) => format!("Filter: {}", e.display),
        Operator::Watermark(w) if w.processing_time => {
            format!(
                "WatermarkAssigner: proctime=#{}, watermark=[the clock], interval={}ms",
                w.rowtime_column, w.interval_ms
            )
        }
        Operator::Watermark(w) => format!(
            "WatermarkAssigner: rowtime=#{}, watermark=[{}], interval={}ms",
            w.rowtime_column, w.expr.display, w.interval_ms
        ),
        Operator::Unnest(u) => format!("Unnest: column #{}", u.list_column),
        Operator::Union => "Union".to_string(),
        Operator::WindowAssign(w) => format!("WindowTableFunction: {}, time=#{}", w.window, w.time_column),
        Operator::WindowAggregate(a) => {
            let aggs: Vec<&str> = a.aggregates.iter().map(|a| a.display.as_str()).collect();
            let mut emit = String::new();
            if a.emit.allowed_lateness_ms > 0 {
                emit.push_str(&format!(", allow-lateness={}ms", a.emit.allowed_lateness_ms));
            }
            if a.emit.early_fire_delay_ms > 0 {
                emit.push_str(&format!(", early-fire every {}ms", a.emit.early_fire_delay_ms));
            }
            format!(
                "WindowAggregate: {}, time=#{}, keys=[{}], aggs=[{}]{emit}",
                a.window,
                a.time_column,
                exprs(&a.keys),
                aggs.join(", ")
            )
        }
        Operator::WindowTopN(t) => format!(
            "WindowRank: window=[#{}, #{}], partition=[{}], order=[{}], rownum<={}{}",
            t.window_start_column,
            t.window_end_column,
            exprs(&t.partition_keys),
            sort_keys(&t.order_by),
            t.limit,
            if t.emit_rank { ", rownum emitted" } else { "" }
        ),
        Operator::Deduplicate(d) => {
            format!("Deduplicate: keep=FirstRow, keys=[{}], rowtime=#{}", exprs(&d.keys), d.time_column)
        }
        Operator::ChangelogNormalize(n) => format!("ChangelogNormalize: key=[{}]", n.key_names.join(", ")),
        Operator::GroupAggregate(a) => group_aggregate(a),
        Operator::OverAggregate(o) => {
            let calls: Vec<&str> = o.calls.iter().map(|c| c.display.as_str()).collect();
            format!(
                "OverAggregate: partition=[{}], order=[{} #{} ASC], {}, calls=[{}]",
                exprs(&o.partition_keys),
                if o.processing_time { "proctime" } else { "rowtime" },
                o.time_column,
                o.frame,
                calls.join(", ")
            )
        }
        Operator::IntervalJoin(j) => format!(
            "IntervalJoin: type=inner, where=[{}], right.time - left.time in [{}ms, {}ms], left=#{}, right=#{}",
            j.display, j.lower_ms, j.upper_ms, j.left_time, j.right_time
        ),
        Operator::TopN(t) => {
            format!(
                "Rank: partition=[{}], order=[{}], rows 1..={}{}{}",
                exprs(&t.partition_keys),
                sort_keys(&t.order_by),
                t.limit,
                if t.ties == crate::plan::TieBreak::Newest { ", ties: newest first" } else { "" },
                if t.input_updating { ", retracting input" } else { "" }
            )
        }
        Operator::LookupJoin(j) => format!(
            "LookupJoin: table=[{}] ({}), type={}, where=[{}{}{}], select=[{}]",
            j.table.name,
            j.table.connector(),
            j.kind.sql(),
            j.display,
            j.right_filter.as_ref().map(|c| format!(" AND {}", c.display)).unwrap_or_default(),
            j.condition.as_ref().map(|c| format!(" AND {}", c.display)).unwrap_or_default(),
            j.right_output.iter().map(|i| j.read_columns[*i].as_str()).collect::<Vec<_>>().join(", ")
        ),
        Operator::TemporalJoin(j) => format!(
            "TemporalJoin: type={}, where=[{}{}], {}",
            j.kind.sql(),
            j.display,
            j.condition.as_ref().map(|c| format!(" AND {}", c.display)).unwrap_or_default(),
            match (j.left_time, j.right_time) {
                (Some(l), Some(r)) => format!("as of left #{l}, versions by right #{r}"),
                _ => "as of processing time (latest version)".to_string(),
            }
        ),
        Operator::Join(j) => format!(
            "Join: type={}, where=[{}{}]{}",
            j.kind.sql(),
            if j.key_names.is_empty() { "" } else { j.display.as_str() },
            match &j.condition {
                Some(c) if j.key_names.is_empty() => c.display.clone(),
                Some(c) => format!(" AND {}", c.display),
                None => String::new(),
            },
            if j.final_only {
                ", final"
            } else if j.window_end_key.is_some() {
                ", window join"
            } else {
                ""
            }
        ),
        Operator::Sink(t) => {
            let cols: Vec<&str> = t.schema.fields().iter().map(|f| f.name().as_str()).collect();
            format!("Sink: {} ({}) fields=[{}]", t.name, t.connector(), cols.join(", "))
        }
    }
}

/// The node where the stream read by `id` (updating) starts updating, as Flink names it in its
/// "doesn't support consuming update ... changes which is produced by node .." errors:
/// `TableSourceScan(table=[[default_catalog, default_database, t]], fields=[..])` for a
/// changelog source, `ChangelogNormalize(key=[..])` for an upsert source, else as
/// [`describe`] shows it.
pub fn update_producer(plan: &StreamPlan, mut id: NodeId) -> String {
    loop {
        let node = &plan.nodes[id];
        // Operators that pass row kinds through are skipped; the first one that makes
        // changes itself is named.
        let passes = matches!(
            node.operator,
            Operator::Project(_)
                | Operator::Filter(_)
                | Operator::Watermark(_)
                | Operator::Unnest(_)
                | Operator::Union
                | Operator::WindowAssign(_)
        );
        match node.inputs.iter().find(|i| plan.nodes[**i].updating).filter(|_| passes) {
            Some(i) => id = *i,
            None => {
                return match &node.operator {
                    Operator::Source(t) => {
                        let fields: Vec<&str> = t.schema.fields().iter().map(|f| f.name().as_str()).collect();
                        format!(
                            "TableSourceScan(table=[[default_catalog, default_database, {}]], fields=[{}])",
                            t.name,
                            fields.join(", ")
                        )
                    }
                    Operator::ChangelogNormalize(n) => format!("ChangelogNormalize(key=[{}])", n.key_names.join(", ")),
                    Operator::GroupAggregate(a) => flink_group_aggregate(a, &node.schema),
                    other => describe(other),
                }
            }
        }
    }
}

/// `GroupAggregate: keys=[k], aggs=[COUNT(*)]`, with `, retracting input` when the input
/// updates and `, emit=final` in batch mode.
fn group_aggregate(a: &GroupAggSpec) -> String {
    let aggs: Vec<&str> = a.aggregates.iter().map(|a| a.display.as_str()).collect();
    format!(
        "GroupAggregate: keys=[{}], aggs=[{}]{}{}",
        exprs(&a.keys),
        aggs.join(", "),
        if a.input_updating { ", retracting input" } else { "" },
        if a.emit == GroupEmit::Final { ", emit=final" } else { "" }
    )
}

/// As Flink names the node, `GroupAggregate(groupBy=[k], select=[k, COUNT(*)])` (without
/// Flink's `AS` names: the aggregates' columns are named by DataFusion until a projection).
fn flink_group_aggregate(a: &GroupAggSpec, schema: &arrow::datatypes::SchemaRef) -> String {
    let keys: Vec<&str> = schema.fields().iter().take(a.keys.len()).map(|f| f.name().as_str()).collect();
    let select: Vec<&str> = keys.iter().copied().chain(a.aggregates.iter().map(|a| a.display.as_str())).collect();
    format!("GroupAggregate(groupBy=[{}], select=[{}])", keys.join(", "), select.join(", "))
}

fn exprs(e: &[ExprSpec]) -> String {
    e.iter().map(|e| e.display.as_str()).collect::<Vec<_>>().join(", ")
}

fn sort_keys(keys: &[SortKey]) -> String {
    keys.iter()
        .map(|k| format!("{} {}", k.expr.display, if k.descending { "DESC" } else { "ASC" }))
        .collect::<Vec<_>>()
        .join(", ")
}
