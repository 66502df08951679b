//! Time attributes: which columns of a logical plan are rowtime attributes.
//!
//! In Flink a column is a *time attribute* when it is the column of a table's WATERMARK
//! declaration (or, in a table without one, its `AS PROCTIME()` column, or `PROCTIME()` in a
//! view's SELECT), passed through unchanged (projections may rename it), or the `window_time`
//! of a window table function or window aggregation. Only time attributes can drive event
//! time windows, deduplication and Top-N on a stream; computing on one (even a CAST)
//! turns it into a plain timestamp.

use datafusion::logical_expr::{Expr, LogicalPlan};

use super::context::EddyTableSource;
use super::window_node::{WindowTableFunction, WINDOW_COLUMNS};
use crate::catalog::Catalog;

/// Indices of the rowtime attributes among `plan`'s output columns.
pub(crate) fn rowtime_columns(plan: &LogicalPlan, catalog: &Catalog) -> Vec<usize> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            let Some(src) = scan.source.as_ref().downcast_ref::<EddyTableSource>() else {
                return vec![];
            };
            if let Some(inlined) = src.inlined_plan() {
                return rowtime_columns(inlined, catalog);
            }
            let Some(table) = catalog.table(&src.name) else {
                return vec![];
            };
            // The WATERMARK column; without one, a `PROCTIME()` column (processing time, whose
            // watermark is the clock).
            let full = match &table.watermark {
                Some(wm) => table.column_index(&wm.column),
                None => table.proctime_column(),
            };
            let Some(full) = full else {
                return vec![];
            };
            match &scan.projection {
                None => vec![full],
                Some(p) => p.iter().position(|i| *i == full).into_iter().collect(),
            }
        }
        LogicalPlan::Projection(p) => {
            let input = rowtime_columns(&p.input, catalog);
            p.expr
                .iter()
                .enumerate()
                .filter(|(_, e)| {
                    passthrough_index(e, &p.input).is_some_and(|i| input.contains(&i)) || is_proctime_call(e)
                })
                .map(|(i, _)| i)
                .collect()
        }
        LogicalPlan::Filter(f) => rowtime_columns(&f.input, catalog),
        LogicalPlan::SubqueryAlias(a) => rowtime_columns(&a.input, catalog),
        LogicalPlan::Window(w) => rowtime_columns(&w.input, catalog),
        LogicalPlan::Extension(e) => match e.node.as_any().downcast_ref::<WindowTableFunction>() {
            Some(w) => {
                let mut cols = rowtime_columns(&w.input, catalog);
                cols.push(w.input_width() + 2);
                cols
            }
            None => vec![],
        },
        LogicalPlan::Aggregate(a) => {
            // A window aggregation's window_time stays a time attribute; any other grouped
            // time column is materialised.
            let input = rowtime_columns(&a.input, catalog);
            a.group_expr
                .iter()
                .enumerate()
                .filter(|(_, e)| {
                    passthrough_index(e, &a.input)
                        .is_some_and(|i| input.contains(&i) && a.input.schema().field(i).name() == WINDOW_COLUMNS[2])
                })
                .map(|(i, _)| i)
                .collect()
        }
        // An inner join keeps both sides' time attributes (Flink keeps them through interval
        // joins; Eddy also through regular inner joins, whose output is append-only when
        // both inputs are, so that an enriched stream can still be windowed). Outer joins
        // pad rows with NULL times and update: their times are plain timestamps.
        LogicalPlan::Join(j) if j.join_type == datafusion::common::JoinType::Inner => {
            let left_width = j.left.schema().fields().len();
            let mut cols = rowtime_columns(&j.left, catalog);
            cols.extend(rowtime_columns(&j.right, catalog).into_iter().map(|c| c + left_width));
            cols
        }
        // `CROSS JOIN UNNEST`: every other column is its input column, repeated per element.
        LogicalPlan::Unnest(u) => {
            let input = rowtime_columns(&u.input, catalog);
            let unnested: Vec<usize> = u.list_type_columns.iter().map(|(i, _)| *i).collect();
            u.dependency_indices
                .iter()
                .enumerate()
                .filter(|(_, d)| input.contains(d) && !unnested.contains(d))
                .map(|(i, _)| i)
                .collect()
        }
        LogicalPlan::Union(u) => {
            let mut iter = u.inputs.iter().map(|i| rowtime_columns(i, catalog));
            let first = iter.next().unwrap_or_default();
            iter.fold(first, |acc, cols| acc.into_iter().filter(|c| cols.contains(c)).collect())
        }
        _ => vec![],
    }
}

/// `PROCTIME()` in a SELECT list (possibly aliased): a processing-time attribute, as in Flink.
fn is_proctime_call(e: &Expr) -> bool {
    match e {
        Expr::Alias(a) => is_proctime_call(&a.expr),
        Expr::ScalarFunction(f) => f.func.name() == "proctime",
        _ => false,
    }
}

/// Whether column `col` of `plan` is a `PROCTIME()` computed in a query (a view's or a
/// subquery's SELECT list) rather than a table's column. Such a column has no watermark of
/// its own upstream, so an operator timed by it gets the clock as its watermark.
pub(crate) fn is_query_proctime(plan: &LogicalPlan, col: usize) -> bool {
    match plan {
        LogicalPlan::Projection(p) => match p.expr.get(col) {
            Some(e) if is_proctime_call(e) => true,
            Some(e) => passthrough_index(e, &p.input).is_some_and(|i| is_query_proctime(&p.input, i)),
            None => false,
        },
        LogicalPlan::Filter(f) => is_query_proctime(&f.input, col),
        LogicalPlan::SubqueryAlias(a) => is_query_proctime(&a.input, col),
        LogicalPlan::Window(w) => is_query_proctime(&w.input, col),
        LogicalPlan::TableScan(scan) => scan
            .source
            .as_ref()
            .downcast_ref::<EddyTableSource>()
            .and_then(EddyTableSource::inlined_plan)
            .is_some_and(|inlined| is_query_proctime(inlined, col)),
        _ => false,
    }
}

/// The input column an expression passes through unchanged (possibly renamed).
pub(crate) fn passthrough_index(e: &Expr, input: &LogicalPlan) -> Option<usize> {
    match e {
        Expr::Alias(a) => passthrough_index(&a.expr, input),
        Expr::Column(c) => input.schema().index_of_column(c).ok(),
        _ => None,
    }
}
