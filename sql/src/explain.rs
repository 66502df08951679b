//! EXPLAIN: the operator graph as an indented tree, sink first, with parallelism and
//! whether each edge carries an updating changelog.

use crate::plan::{NodeId, Operator, StreamPlan};

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
            format!("Source: {} ({}) fields=[{}]", t.name, t.connector(), cols.join(", "))
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
        Operator::Watermark(w) => format!(
            "WatermarkAssigner: rowtime=#{}, watermark=[{}], interval={}ms",
            w.rowtime_column, w.expr.display, w.interval_ms
        ),
        Operator::Unnest(u) => format!("Unnest: column #{}", u.list_column),
        Operator::Union => "Union".to_string(),
        Operator::Sink(t) => {
            let cols: Vec<&str> = t.schema.fields().iter().map(|f| f.name().as_str()).collect();
            format!("Sink: {} ({}) fields=[{}]", t.name, t.connector(), cols.join(", "))
        }
    }
}
