//! Windowed and keyed operators: window table functions, window aggregation, window Top-N
//! and event-time deduplication, recognised in DataFusion's logical plan.
//!
//! A window aggregation is `Aggregate(GROUP BY window_start, window_end, keys)` over a window
//! table function, possibly through projections and filters. Slicing (HOP, CUMULATE) means
//! the rows are never expanded per window: between the table function and the aggregate the
//! window columns are *virtual* — each holds the row's time attribute — and the aggregate
//! operator assigns windows itself. So those columns may only be passed through on the way.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::expr::WindowFunction;
use datafusion::logical_expr::{
    Aggregate, BinaryExpr, Expr, Filter, LogicalPlan, Operator as BinOp, UserDefinedLogicalNodeCore,
};
use datafusion::physical_expr::expressions::{CastExpr, Column};
use datafusion::physical_expr::PhysicalExpr;

use super::PlanBuilder;
use crate::error::{Result, SqlError};
use crate::plan::{
    DeduplicateSpec, EmitStrategy, ExprSpec, NodeId, Operator, PlanNode, ProjectExpr, SortKey, TieBreak, TopNSpec,
    WatermarkSpec, WindowAggSpec, WindowAssignSpec, WindowKind, WindowOutput, WindowTopNSpec,
};
use crate::planner::time_attr::{is_query_proctime, passthrough_index, rowtime_columns};
use crate::planner::window_node::{WindowTableFunction, WINDOW_COLUMNS};

/// The window table function feeding an aggregate, and which of the converted columns are
/// its (virtual) window columns.
struct VirtualWindow {
    window: WindowKind,
    /// Column index -> WindowStart / WindowEnd / WindowTime.
    roles: HashMap<usize, WindowOutput>,
    partition_by: Vec<String>,
}

impl PlanBuilder<'_> {
    /// A window table function whose rows are used as they are.
    pub(super) fn convert_window_tvf(&mut self, w: &WindowTableFunction, schema: SchemaRef) -> Result<NodeId> {
        if matches!(w.window, WindowKind::Session { .. }) {
            return Err(self.unsupported(
                "SESSION windows outside of a window aggregation",
                "use SESSION in GROUP BY window_start, window_end",
            ));
        }
        let input = self.convert(&w.input)?;
        let input = self.clock_for_query_proctime(w, input);
        let spec = WindowAssignSpec { window: w.window, time_column: w.time_column };
        Ok(self.add(Operator::WindowAssign(spec), vec![input], schema))
    }

    /// `GROUP BY`: a window aggregation when it groups by a window table function's
    /// window_start and window_end, else a group aggregation.
    pub(super) fn convert_aggregate(&mut self, agg: &Aggregate, schema: SchemaRef) -> Result<NodeId> {
        let Some((input, virt)) = self.convert_windowed_input(&agg.input)? else {
            if let Some(window) = super::window_reagg::attached_window(agg) {
                return self.convert_window_reaggregate(agg, schema, window);
            }
            return self.convert_group_aggregate(agg, schema);
        };
        if agg.group_expr.iter().any(|e| matches!(e, Expr::GroupingSet(_))) {
            return Err(self.unsupported("GROUPING SETS, ROLLUP and CUBE", ""));
        }
        let mut keys = Vec::new();
        let mut output = Vec::new();
        let mut time_column = None;
        for e in &agg.group_expr {
            match passthrough_index(e, &agg.input).and_then(|i| virt.roles.get(&i).map(|r| (i, *r))) {
                Some((i, role)) => {
                    time_column = Some(i);
                    output.push(role);
                }
                None => {
                    if self.references_roles(e, &agg.input, &virt) {
                        return Err(self.window_column_misuse());
                    }
                    keys.push(self.physical(e, agg.input.schema())?);
                    output.push(WindowOutput::Key(keys.len() - 1));
                }
            }
        }
        let has = |r: WindowOutput| output.contains(&r);
        let Some(time_column) = time_column.filter(|_| has(WindowOutput::WindowStart) && has(WindowOutput::WindowEnd))
        else {
            return Err(SqlError::unsupported(
                self.at,
                "a window aggregation must GROUP BY both window_start and window_end",
            )
            .with_hint("add window_start, window_end to the GROUP BY"));
        };
        if let WindowKind::Session { .. } = virt.window {
            let key_names: Vec<String> = agg.group_expr.iter().map(|e| e.schema_name().to_string()).collect();
            for p in &virt.partition_by {
                if !key_names.iter().any(|k| k == p || k.ends_with(&format!(".{p}"))) {
                    return Err(SqlError::plan(
                        self.at,
                        format!("the SESSION window is partitioned by '{p}', which the GROUP BY must contain"),
                    ));
                }
            }
        }
        if let WindowKind::Hop { slide, size, .. } = virt.window {
            if size % slide != 0 {
                return Err(SqlError::plan(
                    self.at,
                    "HOP window aggregation requires the size to be an integral multiple of the slide",
                ));
            }
        }
        let input_schema: SchemaRef = self.plan.nodes[input].schema.clone();
        let mut aggregates = Vec::with_capacity(agg.aggr_expr.len());
        for (i, e) in agg.aggr_expr.iter().enumerate() {
            if self.references_roles(e, &agg.input, &virt) {
                return Err(self.window_column_misuse());
            }
            let name = agg.schema.field(agg.group_expr.len() + i).name().clone();
            aggregates.push(self.lower_aggregate(e, name, &agg.input, &input_schema)?);
            output.push(WindowOutput::Aggregate(aggregates.len() - 1));
        }
        let parallelism = if keys.is_empty() { 1 } else { self.parallelism };
        let settings = &self.session.settings;
        let emit = EmitStrategy {
            allowed_lateness_ms: i64::try_from(settings.allow_lateness_ms()).unwrap_or(i64::MAX),
            early_fire_delay_ms: settings.early_fire_delay_ms(),
        };
        if emit.is_updating() && matches!(virt.window, WindowKind::Session { .. }) {
            return Err(self.unsupported(
                "allow-lateness and early-fire on SESSION windows",
                "they work on TUMBLE, HOP and CUMULATE windows",
            ));
        }
        let spec = WindowAggSpec { window: virt.window, time_column, keys, aggregates, output, emit };
        Ok(self.plan.add(PlanNode {
            operator: Operator::WindowAggregate(spec),
            inputs: vec![input],
            schema,
            parallelism,
            updating: emit.is_updating(),
        }))
    }

    /// Convert the input of an aggregate, keeping track of a window table function's
    /// columns; `None` when there is no window table function on the way.
    fn convert_windowed_input(&mut self, lp: &LogicalPlan) -> Result<Option<(NodeId, VirtualWindow)>> {
        match lp {
            LogicalPlan::SubqueryAlias(a) => self.convert_windowed_input(&a.input),
            LogicalPlan::Projection(p) => {
                let Some((input, virt)) = self.convert_windowed_input(&p.input)? else {
                    return Ok(None);
                };
                let schema: SchemaRef = Arc::new(p.schema.as_arrow().clone());
                let mut roles = HashMap::new();
                let mut exprs = Vec::with_capacity(p.expr.len());
                for (i, (e, f)) in p.expr.iter().zip(schema.fields()).enumerate() {
                    match passthrough_index(e, &p.input).and_then(|c| virt.roles.get(&c)) {
                        Some(role) => {
                            roles.insert(i, *role);
                        }
                        None if self.references_roles(e, &p.input, &virt) => return Err(self.window_column_misuse()),
                        None => {}
                    }
                    exprs.push(ProjectExpr { expr: self.physical(e, p.input.schema())?, name: f.name().clone() });
                }
                let node = self.add(Operator::Project(exprs), vec![input], schema);
                Ok(Some((node, VirtualWindow { roles, ..virt })))
            }
            LogicalPlan::Filter(f) => {
                let Some((input, virt)) = self.convert_windowed_input(&f.input)? else {
                    return Ok(None);
                };
                if self.references_roles(&f.predicate, &f.input, &virt) {
                    return Err(self.window_column_misuse());
                }
                let pred = self.physical(&f.predicate, f.input.schema())?;
                let schema: SchemaRef = Arc::new(f.input.schema().as_arrow().clone());
                Ok(Some((self.add(Operator::Filter(pred), vec![input], schema), virt)))
            }
            LogicalPlan::Extension(e) => {
                let Some(w) = e.node.as_any().downcast_ref::<WindowTableFunction>() else {
                    return Ok(None);
                };
                let input = self.convert(&w.input)?;
                let input = self.clock_for_query_proctime(w, input);
                let in_schema = self.plan.nodes[input].schema.clone();
                let out_schema: SchemaRef = Arc::new(w.schema().as_arrow().clone());
                // Input columns, then the time attribute three times (virtual window columns).
                let mut exprs = passthrough_columns(&in_schema);
                let time_field = in_schema.field(w.time_column);
                for (k, name) in WINDOW_COLUMNS.iter().enumerate() {
                    let target = out_schema.field(w.input_width() + k).data_type().clone();
                    let col: Arc<dyn PhysicalExpr> = Arc::new(Column::new(time_field.name(), w.time_column));
                    let expr: Arc<dyn PhysicalExpr> = if time_field.data_type() == &target {
                        col
                    } else {
                        Arc::new(CastExpr::new(col, target, None))
                    };
                    exprs.push(ProjectExpr {
                        expr: ExprSpec { expr, display: format!("{} (window assigned later)", time_field.name()) },
                        name: name.to_string(),
                    });
                }
                let node = self.add(Operator::Project(exprs), vec![input], out_schema);
                let width = w.input_width();
                let roles = HashMap::from([
                    (width, WindowOutput::WindowStart),
                    (width + 1, WindowOutput::WindowEnd),
                    (width + 2, WindowOutput::WindowTime),
                ]);
                Ok(Some((node, VirtualWindow { window: w.window, roles, partition_by: w.partition_by.clone() })))
            }
            _ => Ok(None),
        }
    }

    /// A window timed by a `PROCTIME()` computed in a query (`CREATE VIEW v AS SELECT *,
    /// PROCTIME() AS p ..`): the clock becomes its rows' watermark, replacing the event-time
    /// watermark from upstream, which does not time them (a table's own `PROCTIME()` column
    /// gets the same at its source).
    fn clock_for_query_proctime(&mut self, w: &WindowTableFunction, input: NodeId) -> NodeId {
        if !is_query_proctime(&w.input, w.time_column) {
            return input;
        }
        let schema = self.plan.nodes[input].schema.clone();
        let name = schema.field(w.time_column).name().clone();
        let spec = WatermarkSpec {
            rowtime_column: w.time_column,
            expr: ExprSpec { expr: Arc::new(Column::new(&name, w.time_column)), display: name },
            interval_ms: self.session.settings.watermark_interval_ms().max(1),
            idle_timeout_ms: 0,
            processing_time: true,
        };
        self.add(Operator::Watermark(spec), vec![input], schema)
    }

    fn references_roles(&self, e: &Expr, input: &LogicalPlan, virt: &VirtualWindow) -> bool {
        e.column_refs().iter().any(|c| input.schema().index_of_column(c).is_ok_and(|i| virt.roles.contains_key(&i)))
    }

    fn window_column_misuse(&self) -> SqlError {
        SqlError::unsupported(
            self.at,
            "window_start, window_end and window_time can only be grouped by (or passed through) before a window aggregation",
        )
        .with_hint("compute on them after the GROUP BY, e.g. in an outer SELECT")
    }

    /// `WHERE rownum <= n` over `ROW_NUMBER() OVER (..)`: window Top-N or deduplication.
    pub(super) fn convert_rank_filter(&mut self, f: &Filter, schema: SchemaRef) -> Result<Option<NodeId>> {
        let LogicalPlan::Window(win) = f.input.as_ref() else {
            return Ok(None);
        };
        let width = win.input.schema().fields().len();
        let Some(limit) = rank_limit(&f.predicate, &f.input, width) else {
            return Ok(None);
        };
        let [Expr::WindowFunction(wf)] = win.window_expr.as_slice() else {
            return Ok(None);
        };
        let WindowFunction { fun, params } = wf.as_ref();
        if !fun.name().eq_ignore_ascii_case("row_number") {
            return Ok(None);
        }
        let catalog = &self.session.catalog;
        let rowtimes = rowtime_columns(&win.input, catalog);
        let bounds = window_bounds(&win.input);
        let mut partition_keys = Vec::new();
        let mut in_window = (false, false);
        for e in &params.partition_by {
            let idx = passthrough_index(e, &win.input);
            match (idx, bounds) {
                (Some(i), Some((s, _))) if i == s => in_window.0 = true,
                (Some(i), Some((_, e))) if i == e => in_window.1 = true,
                _ => partition_keys.push(self.physical(e, win.input.schema())?),
            }
        }
        let mut order_by = Vec::with_capacity(params.order_by.len());
        for s in &params.order_by {
            order_by.push(SortKey {
                expr: self.physical(&s.expr, win.input.schema())?,
                descending: !s.asc,
                nulls_first: s.nulls_first,
            });
        }
        let input = self.convert(&win.input)?;
        if let (true, true, Some((s, e))) = (in_window.0, in_window.1, bounds) {
            let spec = WindowTopNSpec {
                window_start_column: s,
                window_end_column: e,
                partition_keys,
                order_by,
                limit,
                emit_rank: true,
            };
            let parallelism = self.parallelism;
            return Ok(Some(self.plan.add(PlanNode {
                operator: Operator::WindowTopN(spec),
                inputs: vec![input],
                schema,
                parallelism,
                updating: false,
            })));
        }
        // Deduplication: first row per key in event time (Flink's Deduplicate, which, as
        // there, refuses an updating input).
        let by_rowtime = match params.order_by.as_slice() {
            [s] => passthrough_index(&s.expr, &win.input).filter(|i| rowtimes.contains(i)).map(|i| (i, s.asc)),
            _ => None,
        };
        let input_updating = self.plan.nodes[input].updating;
        if let (Some((time_column, true)), 1) = (by_rowtime, limit) {
            let parallelism = if partition_keys.is_empty() { 1 } else { self.parallelism };
            let spec = DeduplicateSpec { keys: partition_keys, time_column, emit_rank: true };
            return Ok(Some(self.plan.add(PlanNode {
                operator: Operator::Deduplicate(spec),
                inputs: vec![input],
                schema,
                parallelism,
                updating: false,
            })));
        }
        if order_by.is_empty() {
            return Err(self.unsupported(
                "ROW_NUMBER() without ORDER BY on a stream",
                "rank the rows by a column: ROW_NUMBER() OVER (PARTITION BY k ORDER BY ..)",
            ));
        }
        // Any other ranking: a Top-N over every row so far, an updating changelog. Keeping
        // the last row by time is a Top-1 where a later row with the same time wins.
        let ties = match by_rowtime {
            Some((_, false)) if limit == 1 => TieBreak::Newest,
            _ => TieBreak::Oldest,
        };
        let parallelism = if partition_keys.is_empty() { 1 } else { self.parallelism };
        let spec = TopNSpec { partition_keys, order_by, limit, ties, input_updating };
        Ok(Some(self.plan.add(PlanNode {
            operator: Operator::TopN(spec),
            inputs: vec![input],
            schema,
            parallelism,
            updating: true,
        })))
    }
}

/// A projection's expressions that pass every column of `schema` through as it is.
pub(super) fn passthrough_columns(schema: &SchemaRef) -> Vec<ProjectExpr> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| ProjectExpr {
            expr: ExprSpec { expr: Arc::new(Column::new(f.name(), i)), display: f.name().clone() },
            name: f.name().clone(),
        })
        .collect()
}

/// `rownum <= n`, `rownum < n`, `rownum = 1` (and mirrored) on the window function column
/// (the first column after the input's): the number of rows kept.
fn rank_limit(pred: &Expr, input: &LogicalPlan, width: usize) -> Option<usize> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = pred else {
        return None;
    };
    let is_rank = |e: &Expr| passthrough_index(e, input) == Some(width);
    let literal = |e: &Expr| match e {
        Expr::Literal(v, _) => match v.cast_to(&DataType::Int64).ok()? {
            ScalarValue::Int64(Some(n)) => Some(n),
            _ => None,
        },
        Expr::Cast(c) => match c.expr.as_ref() {
            Expr::Literal(v, _) => match v.cast_to(&DataType::Int64).ok()? {
                ScalarValue::Int64(Some(n)) => Some(n),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    };
    let (op, n) = if is_rank(left) {
        (*op, literal(right)?)
    } else if is_rank(right) {
        (op.swap()?, literal(left)?)
    } else {
        return None;
    };
    let limit = match op {
        BinOp::LtEq => n,
        BinOp::Lt => n - 1,
        BinOp::Eq if n == 1 => 1,
        _ => return None,
    };
    usize::try_from(limit).ok().filter(|l| *l >= 1)
}

/// Indices of `window_start` and `window_end` when `plan`'s rows are windowed (a window table
/// function or window aggregation, passed through projections).
pub(super) fn window_bounds(plan: &LogicalPlan) -> Option<(usize, usize)> {
    window_of(plan).and_then(|w| Some((w.start?, w.end)))
}

/// The columns of windowed rows that hold their window, and the window table function
/// that assigned it.
#[derive(Debug, Clone, Copy)]
pub(super) struct WindowColumns {
    /// `window_start`, unless it was projected away.
    pub start: Option<usize>,
    pub end: usize,
    pub window: WindowKind,
}

/// Where `plan`'s rows carry their window (see [`window_bounds`]): at least its
/// `window_end`.
pub(super) fn window_of(plan: &LogicalPlan) -> Option<WindowColumns> {
    let map_through = |exprs: &[Expr], input: &LogicalPlan, w: WindowColumns| {
        let find = |target: usize| exprs.iter().position(|x| passthrough_index(x, input) == Some(target));
        Some(WindowColumns { start: w.start.and_then(find), end: find(w.end)?, window: w.window })
    };
    match plan {
        LogicalPlan::SubqueryAlias(a) => window_of(&a.input),
        LogicalPlan::Filter(f) => window_of(&f.input),
        LogicalPlan::Projection(p) => map_through(&p.expr, &p.input, window_of(&p.input)?),
        LogicalPlan::Aggregate(a) => map_through(&a.group_expr, &a.input, window_of(&a.input)?),
        LogicalPlan::Extension(e) => {
            let w = e.node.as_any().downcast_ref::<WindowTableFunction>()?;
            Some(WindowColumns { start: Some(w.input_width()), end: w.input_width() + 1, window: w.window })
        }
        _ => None,
    }
}
