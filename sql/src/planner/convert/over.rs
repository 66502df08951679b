//! OVER aggregations: DataFusion's `Window` node as Flink's streaming `OverAggregate`.
//!
//! Flink runs `f(..) OVER (PARTITION BY k ORDER BY t [frame])` on a stream only when the
//! window is ordered by one time attribute, ascending (rows then come in order per key once
//! the watermark passes them), the frame ends at the current row (a row's result never
//! waits for later rows), and every OVER call of the query uses the same window (one
//! operator computes them all). Everything else is refused here, with Flink's message
//! where Flink has one. ROW_NUMBER with a rank filter never gets here: it is a Top-N or a
//! deduplication (see `window.rs`).

use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::expr::{NullTreatment, WindowFunction, WindowFunctionParams};
use datafusion::logical_expr::{
    Expr, LogicalPlan, Window, WindowFrame, WindowFrameBound, WindowFrameUnits, WindowFunctionDefinition,
};
use datafusion::physical_expr::aggregate::AggregateExprBuilder;
use datafusion::physical_expr::PhysicalExpr;

use super::{display_expr, PlanBuilder};
use crate::error::{Location, Result, SqlError};
use crate::plan::{NodeId, OverAggSpec, OverCall, OverFrame, OverFunction, PlanNode};
use crate::planner::query::df_error;
use crate::planner::time_attr::{passthrough_index, rowtime_columns};

/// The aggregate functions an OVER window computes over its frame (DataFusion's names).
const AGGREGATES: &[&str] = &["sum", "count", "avg", "min", "max"];

impl PlanBuilder<'_> {
    /// `Window` (not a rank filter's): an OVER aggregation.
    pub(super) fn convert_over(&mut self, win: &Window, schema: SchemaRef) -> Result<NodeId> {
        let calls: Vec<&WindowFunction> =
            win.window_expr.iter().map(|e| self.window_function(e)).collect::<Result<_>>()?;
        let Some(first) = calls.first() else {
            return Err(SqlError::internal("a Window node without window functions"));
        };
        let shared = &first.params;
        if calls.iter().any(|c| !same_window(&c.params, shared)) {
            return Err(self.different_windows());
        }
        let time_column = self.order_by_time(win, shared)?;
        let frame = self.frame(&shared.window_frame)?;
        let mut partition_keys = Vec::with_capacity(shared.partition_by.len());
        for e in &shared.partition_by {
            partition_keys.push(self.physical(e, win.input.schema())?);
        }
        let input = self.convert(&win.input)?;
        let input_schema = self.plan.nodes[input].schema.clone();
        let width = input_schema.fields().len();
        let mut over_calls = Vec::with_capacity(calls.len());
        for (i, call) in calls.iter().enumerate() {
            let name = schema.field(width + i).name().clone();
            over_calls.push(self.over_call(call, win, &input_schema, name)?);
        }
        let spec = OverAggSpec {
            partition_keys,
            time_column,
            processing_time: self.is_processing_time(input),
            frame,
            calls: over_calls,
        };
        let parallelism = if spec.partition_keys.is_empty() { 1 } else { self.parallelism };
        let updating = self.plan.nodes[input].updating;
        Ok(self.plan.add(PlanNode {
            operator: crate::plan::Operator::OverAggregate(spec),
            inputs: vec![input],
            schema,
            parallelism,
            updating,
        }))
    }

    fn window_function<'e>(&self, e: &'e Expr) -> Result<&'e WindowFunction> {
        match e {
            Expr::Alias(a) => self.window_function(&a.expr),
            Expr::WindowFunction(wf) => Ok(wf.as_ref()),
            other => Err(SqlError::internal(format!("unexpected window expression {other}"))),
        }
    }

    fn different_windows(&self) -> SqlError {
        different_windows(self.at)
    }

    /// The input column of the single ascending time attribute the window is ordered by.
    fn order_by_time(&self, win: &Window, params: &WindowFunctionParams) -> Result<usize> {
        let rowtimes = rowtime_columns(&win.input, &self.session.catalog);
        let (at, column) = match params.order_by.as_slice() {
            [sort] => {
                (location_of(&sort.expr).unwrap_or(self.at), Some((sort, passthrough_index(&sort.expr, &win.input))))
            }
            [first, ..] => (location_of(&first.expr).unwrap_or(self.at), None),
            [] => (self.at, None),
        };
        match column {
            Some((sort, Some(i))) if rowtimes.contains(&i) && sort.asc => Ok(i),
            Some((sort, Some(i))) if rowtimes.contains(&i) => Err(SqlError::unsupported(
                at,
                format!(
                    "OVER windows' ordering in stream mode must be ascending, but '{}' is DESC",
                    display_expr(&sort.expr)
                ),
            )
            .with_hint("ORDER BY the time attribute ASC")),
            _ => Err(SqlError::unsupported(
                at,
                "OVER windows' ordering in stream mode must be defined on a time attribute.",
            )
            .with_hint(
                "ORDER BY exactly one time attribute: the column of the table's WATERMARK, or its PROCTIME() column",
            )),
        }
    }

    /// The frame, which must end at the current row.
    fn frame(&self, frame: &WindowFrame) -> Result<OverFrame> {
        if !matches!(frame.end_bound, WindowFrameBound::CurrentRow) {
            let units = if frame.units == WindowFrameUnits::Rows { "ROWS" } else { "RANGE" };
            return Err(SqlError::unsupported(
                self.at,
                format!("OVER {units} FOLLOWING windows are not supported yet."),
            )
            .with_hint("end the frame at CURRENT ROW"));
        }
        let WindowFrameBound::Preceding(start) = &frame.start_bound else {
            return Err(self.unsupported("an OVER frame starting after the current row", ""));
        };
        match (frame.units, start.is_null()) {
            (WindowFrameUnits::Rows, true) => Ok(OverFrame::RowsUnbounded),
            (WindowFrameUnits::Range, true) => Ok(OverFrame::RangeUnbounded),
            (WindowFrameUnits::Rows, false) => match start.cast_to(&DataType::UInt64) {
                Ok(ScalarValue::UInt64(Some(n))) => Ok(OverFrame::Rows(n)),
                _ => Err(SqlError::plan(self.at, format!("ROWS {start} PRECEDING needs a row count"))),
            },
            (WindowFrameUnits::Range, false) => match interval_ms(start) {
                Some(ms) if ms >= 0 => Ok(OverFrame::Range(ms)),
                _ => Err(SqlError::unsupported(
                    self.at,
                    format!("RANGE {start} PRECEDING: a RANGE frame on a time attribute needs a day-time interval"),
                )
                .with_hint("write RANGE BETWEEN INTERVAL '10' SECOND PRECEDING AND CURRENT ROW")),
            },
            (WindowFrameUnits::Groups, _) => {
                Err(self.unsupported("GROUPS frames in OVER windows", "use ROWS or RANGE"))
            }
        }
    }

    /// Whether the time attribute of the rows of `node` is processing time: the watermark
    /// assigner upstream says (the planner checked the column is a time attribute).
    fn is_processing_time(&self, mut node: NodeId) -> bool {
        loop {
            let n = &self.plan.nodes[node];
            if let crate::plan::Operator::Watermark(w) = &n.operator {
                return w.processing_time;
            }
            match n.inputs.first() {
                Some(i) => node = *i,
                None => return false,
            }
        }
    }

    fn over_call(&self, call: &WindowFunction, win: &Window, input: &SchemaRef, name: String) -> Result<OverCall> {
        let WindowFunction { fun, params } = call;
        let function_name = fun.name().to_ascii_lowercase();
        if params.filter.is_some() {
            return Err(self.unsupported("FILTER (WHERE ..) on an OVER call", ""));
        }
        if params.distinct {
            return Err(self.unsupported("DISTINCT in an OVER call", ""));
        }
        if params.null_treatment == Some(NullTreatment::IgnoreNulls) {
            return Err(self.unsupported("IGNORE NULLS", ""));
        }
        let args = params.args.iter().map(|a| self.physical(a, win.input.schema())).collect::<Result<Vec<_>>>()?;
        let display =
            format!("{function_name}({})", args.iter().map(|a| a.display.as_str()).collect::<Vec<_>>().join(", "));
        let exprs: Vec<Arc<dyn PhysicalExpr>> = args.iter().map(|a| a.expr.clone()).collect();
        let function = match (fun, function_name.as_str()) {
            (WindowFunctionDefinition::AggregateUDF(udaf), n) if AGGREGATES.contains(&n) => {
                let aggregate = AggregateExprBuilder::new(udaf.clone(), exprs)
                    .schema(input.clone())
                    .alias(name)
                    .human_display(display.clone())
                    .build()
                    .map_err(|e| df_error(e, self.at))?;
                OverFunction::Aggregate(Arc::new(aggregate))
            }
            (WindowFunctionDefinition::WindowUDF(_), "lag") => self.lag(&params.args, exprs, input)?,
            (WindowFunctionDefinition::WindowUDF(_), "lead") => {
                return Err(SqlError::unsupported(self.at, "LEAD Function is not supported in stream mode.")
                    .with_hint("a row's LEAD is only known once later rows came; use LAG ordered the same way"))
            }
            (WindowFunctionDefinition::WindowUDF(_), "row_number") if exprs.is_empty() => OverFunction::RowNumber,
            (WindowFunctionDefinition::WindowUDF(_), "first_value") => {
                OverFunction::FirstValue(one_arg(&exprs, self.at)?)
            }
            (WindowFunctionDefinition::WindowUDF(_), "last_value") => {
                OverFunction::LastValue(one_arg(&exprs, self.at)?)
            }
            _ => {
                return Err(self.unsupported(
                    &format!("{} in an OVER window", function_name.to_uppercase()),
                    "OVER windows compute SUM, COUNT, AVG, MIN, MAX, FIRST_VALUE, LAST_VALUE, LAG and ROW_NUMBER",
                ))
            }
        };
        Ok(OverCall { function, display })
    }

    /// `LAG(x [, offset [, default]])` with literal offset and default, as Flink requires.
    fn lag(&self, args: &[Expr], exprs: Vec<Arc<dyn PhysicalExpr>>, input: &SchemaRef) -> Result<OverFunction> {
        let value = one_arg(&exprs[..exprs.len().min(1)], self.at)?;
        let value_type = value.data_type(input).map_err(|e| df_error(e, self.at))?;
        let offset = match args.get(1) {
            None => 1,
            Some(e) => match literal(e).and_then(|v| v.cast_to(&DataType::Int64).ok()) {
                Some(ScalarValue::Int64(Some(n))) if n >= 0 => usize::try_from(n).unwrap_or(usize::MAX),
                _ => {
                    return Err(SqlError::plan(
                        self.at,
                        format!("LAG's offset must be a non-negative integer literal, not {}", display_expr(e)),
                    ))
                }
            },
        };
        let default = match args.get(2) {
            None => ScalarValue::try_from(&value_type).map_err(|e| df_error(e, self.at))?,
            Some(e) => match literal(e).map(|v| v.cast_to(&value_type)) {
                Some(Ok(v)) => v,
                _ => {
                    return Err(SqlError::plan(
                        self.at,
                        format!("LAG's default must be a literal of the value's type, not {}", display_expr(e)),
                    ))
                }
            },
        };
        Ok(OverFunction::Lag { value, offset, default })
    }
}

/// Flink computes all OVER calls of one SELECT in one operator, so they must share one
/// window. DataFusion plans a SELECT's calls with different PARTITION BY or ORDER BY as
/// nested `Window` nodes, directly on each other before optimization (the optimizer may
/// put projections between them, and a subquery's own SELECT, which Flink allows, always
/// has a projection on top): this checks the plan before optimization. Calls with the same
/// partitioning and order but different frames share a node and are checked when it is
/// converted.
pub(super) fn check_one_window_per_select(plan: &LogicalPlan, at: Location) -> Result<()> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let mut nested = None;
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::Window(w) = node {
            if matches!(w.input.as_ref(), LogicalPlan::Window(_)) {
                nested = Some(w.window_expr.iter().find_map(location_of).unwrap_or(at));
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .map_err(|e| df_error(e, at))?;
    match nested {
        Some(location) => Err(different_windows(location)),
        None => Ok(()),
    }
}

fn different_windows(at: Location) -> SqlError {
    SqlError::unsupported(at, "All aggregates must be computed on the same window.").with_hint(
        "give every OVER call of the SELECT the same PARTITION BY, ORDER BY and frame, \
         e.g. with a named window: WINDOW w AS (PARTITION BY .. ORDER BY ..) and OVER w",
    )
}

/// Whether two calls use the same window: partitioning, order and frame.
fn same_window(a: &WindowFunctionParams, b: &WindowFunctionParams) -> bool {
    a.partition_by == b.partition_by && a.order_by == b.order_by && a.window_frame == b.window_frame
}

/// Where an expression is in the SQL text, when DataFusion kept its column's span.
fn location_of(e: &Expr) -> Option<Location> {
    let column = e.column_refs().into_iter().next()?;
    let span = column.spans().first()?;
    Some(Location::new(span.start.line, span.start.column)).filter(Location::is_known)
}

/// A literal, possibly under the casts type coercion adds.
fn literal(e: &Expr) -> Option<ScalarValue> {
    match e {
        Expr::Literal(v, _) => Some(v.clone()),
        Expr::Cast(c) => literal(&c.expr)?.cast_to(c.field.data_type()).ok(),
        Expr::TryCast(c) => literal(&c.expr)?.cast_to(c.field.data_type()).ok(),
        Expr::Alias(a) => literal(&a.expr),
        _ => None,
    }
}

/// A RANGE bound as milliseconds: day-time intervals only (a month has no fixed length).
fn interval_ms(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::IntervalDayTime(Some(i)) => Some(i64::from(i.days) * 86_400_000 + i64::from(i.milliseconds)),
        ScalarValue::IntervalMonthDayNano(Some(i)) if i.months == 0 => {
            Some(i64::from(i.days) * 86_400_000 + i.nanoseconds / 1_000_000)
        }
        ScalarValue::DurationMillisecond(Some(ms)) => Some(*ms),
        ScalarValue::DurationSecond(Some(s)) => s.checked_mul(1000),
        ScalarValue::DurationMicrosecond(Some(us)) => Some(us / 1000),
        ScalarValue::DurationNanosecond(Some(ns)) => Some(ns / 1_000_000),
        _ => None,
    }
}

fn one_arg(exprs: &[Arc<dyn PhysicalExpr>], at: Location) -> Result<Arc<dyn PhysicalExpr>> {
    match exprs.first() {
        Some(e) => Ok(e.clone()),
        None => Err(SqlError::plan(at, "the function needs an argument")),
    }
}

#[cfg(test)]
#[path = "over_tests.rs"]
mod tests;
