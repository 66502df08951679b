//! `GROUP BY window_start, window_end` over rows that already carry their window: a window
//! aggregation's output aggregated again per window, as Nexmark q5 takes the maximum of the
//! per-auction counts of each window.
//!
//! Flink keeps the window properties of a window aggregation's output and plans such a
//! GROUP BY as another window aggregation (its "window attached" strategy): append-only,
//! each window emitted once when the watermark passes its end. Eddy does the same with its
//! window aggregation operator: every window of TUMBLE, HOP and CUMULATE ends on a grid
//! (the size, the slide or the step, plus the offset) and no two windows of one end have
//! different starts, so a row placed at `window_end - 1 ms` in a TUMBLE of that grid lands
//! in a window with the same end, which fires exactly when the original would. The
//! original `window_start` is carried as a grouping key. Over an updating input (a window
//! aggregation with allowed lateness or early fire) the GROUP BY stays a group aggregation.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{lit, Aggregate, Expr};

use super::window::{passthrough_columns, window_of, WindowColumns};
use super::PlanBuilder;
use crate::error::{Result, SqlError};
use crate::plan::{EmitStrategy, NodeId, Operator, PlanNode, ProjectExpr, WindowAggSpec, WindowKind, WindowOutput};
use crate::planner::time_attr::passthrough_index;

/// The window of `agg`'s input when `agg` groups by its window_start and window_end and the
/// window ends on a grid (not SESSION); `None` for any other aggregate.
pub(super) fn attached_window(agg: &Aggregate) -> Option<WindowColumns> {
    let w = window_of(&agg.input)?;
    if matches!(w.window, WindowKind::Session { .. })
        || agg.group_expr.iter().any(|e| matches!(e, Expr::GroupingSet(_)))
    {
        return None;
    }
    let grouped = |c: usize| agg.group_expr.iter().any(|e| passthrough_index(e, &agg.input) == Some(c));
    (w.start.is_some_and(grouped) && grouped(w.end)).then_some(w)
}

impl PlanBuilder<'_> {
    /// A window aggregation of rows windowed upstream (see the module docs).
    pub(super) fn convert_window_reaggregate(
        &mut self,
        agg: &Aggregate,
        schema: SchemaRef,
        w: WindowColumns,
    ) -> Result<NodeId> {
        let input = self.convert(&agg.input)?;
        if self.plan.nodes[input].updating {
            return self.group_aggregate_over(agg, schema, input);
        }
        let (grid, offset) = match w.window {
            WindowKind::Tumble { size, offset } => (size, offset),
            WindowKind::Hop { slide, offset, .. } => (slide, offset),
            WindowKind::Cumulate { step, offset, .. } => (step, offset),
            WindowKind::Session { .. } => return Err(SqlError::internal("SESSION windows have no grid")),
        };
        // The input's columns, then each row's place in time: window_end - 1 ms.
        let input_schema = self.plan.nodes[input].schema.clone();
        let mut exprs = passthrough_columns(&input_schema);
        let end = Expr::Column(agg.input.schema().columns()[w.end].clone());
        let place = end - lit(ScalarValue::new_interval_dt(0, 1));
        let time_column = exprs.len();
        exprs
            .push(ProjectExpr { expr: self.physical(&place, agg.input.schema())?, name: "__eddy_window_place".into() });
        let mut fields: Vec<_> = input_schema.fields().iter().cloned().collect();
        let place_type =
            exprs[time_column].expr.expr.data_type(&input_schema).map_err(|e| SqlError::internal(e.to_string()))?;
        fields.push(Arc::new(arrow::datatypes::Field::new("__eddy_window_place", place_type, true)));
        let placed = self.add(Operator::Project(exprs), vec![input], Arc::new(arrow::datatypes::Schema::new(fields)));

        let mut keys = Vec::new();
        let mut output = Vec::new();
        for e in &agg.group_expr {
            if passthrough_index(e, &agg.input) == Some(w.end) {
                output.push(WindowOutput::WindowEnd);
            } else {
                keys.push(self.physical(e, agg.input.schema())?);
                output.push(WindowOutput::Key(keys.len() - 1));
            }
        }
        let placed_schema = self.plan.nodes[placed].schema.clone();
        let mut aggregates = Vec::with_capacity(agg.aggr_expr.len());
        for (i, e) in agg.aggr_expr.iter().enumerate() {
            let name = agg.schema.field(agg.group_expr.len() + i).name().clone();
            aggregates.push(self.lower_aggregate(e, name, &agg.input, &placed_schema)?);
            output.push(WindowOutput::Aggregate(aggregates.len() - 1));
        }
        let spec = WindowAggSpec {
            window: WindowKind::Tumble { size: grid, offset },
            time_column,
            keys,
            aggregates,
            output,
            emit: EmitStrategy::default(),
        };
        let parallelism = self.parallelism;
        Ok(self.plan.add(PlanNode {
            operator: Operator::WindowAggregate(spec),
            inputs: vec![placed],
            schema,
            parallelism,
            updating: false,
        }))
    }
}
