//! Which parts of a source's columns a job reads.
//!
//! Why: a source that knows a column (or a ROW column's field) is never read can skip
//! producing it. The Nexmark generator is the case that pays: a query over `bid` never
//! reads the `person` and `auction` rows' strings, most queries never read `extra`, and
//! producing those strings is most of the source's work. The planner records the rest in
//! [`TableSpec::unread`]; a source may fill those parts with NULL (or ignore the hint).
//!
//! The analysis walks back from each source through its consumers. Only three operators
//! are looked into: a `Project` reads what its used outputs' expressions read, a `Filter`
//! what its consumers read plus its predicate, a `Watermark` the same plus its expression
//! and rowtime. `get_field(col, 'f')` reads field `f` of `col`; any other mention of a
//! column reads all of it. Every other operator (joins, aggregations, sinks, ...) counts
//! as reading every column of its input, so the result errs only towards reading more.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};

use crate::plan::{NodeId, Operator, StreamPlan};

/// How much of one column is read.
#[derive(Debug, Clone, PartialEq)]
enum Read {
    Whole,
    /// Only these fields of a ROW column.
    Fields(BTreeSet<String>),
}

impl Read {
    fn merge(&mut self, other: Read) {
        match (&mut *self, other) {
            (Read::Fields(mine), Read::Fields(theirs)) => mine.extend(theirs),
            _ => *self = Read::Whole,
        }
    }
}

/// Per column index of a node's output: what is read (absent: nothing).
type Reads = BTreeMap<usize, Read>;

fn add(reads: &mut Reads, column: usize, read: Read) {
    match reads.get_mut(&column) {
        Some(r) => r.merge(read),
        None => {
            reads.insert(column, read);
        }
    }
}

/// Fill in `unread` of every source of `plan`.
pub(crate) fn mark_unread(plan: &mut StreamPlan) {
    let mut consumers: Vec<Vec<NodeId>> = vec![Vec::new(); plan.nodes.len()];
    for (id, node) in plan.nodes.iter().enumerate() {
        for &input in &node.inputs {
            consumers[input].push(id);
        }
    }
    let mut analysis = Analysis { plan: &*plan, consumers, memo: HashMap::new() };
    let sources: Vec<NodeId> = plan
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| matches!(n.operator, Operator::Source(_)))
        .map(|(i, _)| i)
        .collect();
    let mut unread_by_source = Vec::new();
    for id in sources {
        let reads = analysis.output_reads(id);
        let schema = &analysis.plan.nodes[id].schema;
        let mut unread = Vec::new();
        for (i, field) in schema.fields().iter().enumerate() {
            match reads.get(&i) {
                None => unread.push((i, None)),
                Some(Read::Whole) => {}
                Some(Read::Fields(read)) => {
                    if let DataType::Struct(children) = field.data_type() {
                        // Case-insensitive, to err towards reading.
                        let is_read = |name: &str| read.iter().any(|r| r.eq_ignore_ascii_case(name));
                        unread.extend(
                            children.iter().filter(|c| !is_read(c.name())).map(|c| (i, Some(c.name().clone()))),
                        );
                    }
                }
            }
        }
        unread_by_source.push((id, unread));
    }
    for (id, unread) in unread_by_source {
        if let Operator::Source(spec) = &mut plan.nodes[id].operator {
            spec.unread = unread;
        }
    }
}

struct Analysis<'a> {
    plan: &'a StreamPlan,
    consumers: Vec<Vec<NodeId>>,
    memo: HashMap<NodeId, Reads>,
}

impl Analysis<'_> {
    /// What the consumers of node `id` read of its output.
    fn output_reads(&mut self, id: NodeId) -> Reads {
        if let Some(r) = self.memo.get(&id) {
            return r.clone();
        }
        let mut reads = Reads::new();
        for consumer in self.consumers[id].clone() {
            for (column, read) in self.input_reads(consumer, id) {
                add(&mut reads, column, read);
            }
        }
        self.memo.insert(id, reads.clone());
        reads
    }

    /// What node `consumer` reads of its input `input`.
    fn input_reads(&mut self, consumer: NodeId, input: NodeId) -> Reads {
        let node = &self.plan.nodes[consumer];
        let everything = || (0..self.plan.nodes[input].schema.fields().len()).map(|i| (i, Read::Whole)).collect();
        if node.inputs.len() != 1 {
            return everything();
        }
        match &node.operator {
            Operator::Project(exprs) => {
                let exprs: Vec<Arc<dyn PhysicalExpr>> = exprs.iter().map(|p| p.expr.expr.clone()).collect();
                let mut reads = Reads::new();
                for (j, read) in self.output_reads(consumer) {
                    let Some(expr) = exprs.get(j) else { return everything() };
                    match as_column(expr.as_ref()) {
                        // Passed through: read as its consumers read it.
                        Some(i) => add(&mut reads, i, read),
                        None => expr_reads(expr.as_ref(), &mut reads),
                    }
                }
                reads
            }
            Operator::Filter(predicate) => {
                let predicate = predicate.expr.clone();
                let mut reads = self.output_reads(consumer);
                expr_reads(predicate.as_ref(), &mut reads);
                reads
            }
            Operator::Watermark(spec) => {
                let (expr, rowtime) = (spec.expr.expr.clone(), spec.rowtime_column);
                let mut reads = self.output_reads(consumer);
                add(&mut reads, rowtime, Read::Whole);
                expr_reads(expr.as_ref(), &mut reads);
                reads
            }
            _ => everything(),
        }
    }
}

fn any(e: &dyn PhysicalExpr) -> &dyn std::any::Any {
    e
}

fn as_column(expr: &dyn PhysicalExpr) -> Option<usize> {
    any(expr).downcast_ref::<Column>().map(Column::index)
}

/// Add what evaluating `expr` reads.
fn expr_reads(expr: &dyn PhysicalExpr, reads: &mut Reads) {
    if let Some(i) = as_column(expr) {
        add(reads, i, Read::Whole);
        return;
    }
    if let Some(f) = any(expr).downcast_ref::<ScalarFunctionExpr>() {
        if let (true, [struct_arg, name]) = (f.name() == "get_field", f.args()) {
            let name = any(name.as_ref()).downcast_ref::<Literal>().and_then(|l| match l.value() {
                ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => {
                    Some(s.clone())
                }
                _ => None,
            });
            if let (Some(i), Some(name)) = (as_column(struct_arg.as_ref()), name) {
                add(reads, i, Read::Fields(BTreeSet::from([name])));
                return;
            }
        }
    }
    for child in expr.children() {
        expr_reads(child.as_ref(), reads);
    }
}
