//! Non-windowed `GROUP BY`: an `Aggregate` with no window table function below it becomes a
//! [`GroupAggSpec`], Flink's `GroupAggregate`.
//!
//! Streaming, its output is an updating changelog (a key's result changes with every row),
//! so an append-only sink refuses it when the job is built, with Flink's message; its input
//! may update too, and then every aggregate must be able to take rows back
//! ([`Retraction`]), which is checked here so the error points at the statement. In batch
//! mode (`execution.runtime-mode` = `batch`) it emits the final row per key at the end of
//! the input: append-only, as Flink's batch mode gives.

use arrow::datatypes::SchemaRef;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan};
use datafusion::physical_expr::aggregate::LoweredAggregateBuilder;

use super::PlanBuilder;
use crate::error::{Result, SqlError};
use crate::plan::{AggregateSpec, ExprSpec, GroupAggSpec, GroupEmit, NodeId, Operator, PlanNode, Retraction};
use crate::planner::query::df_error;

impl PlanBuilder<'_> {
    /// `GROUP BY keys` over rows without a window: a group aggregation.
    pub(super) fn convert_group_aggregate(&mut self, agg: &Aggregate, schema: SchemaRef) -> Result<NodeId> {
        if agg.group_expr.iter().any(|e| matches!(e, Expr::GroupingSet(_))) {
            return Err(self.unsupported("GROUPING SETS, ROLLUP and CUBE", ""));
        }
        let input = self.convert(&agg.input)?;
        self.group_aggregate_over(agg, schema, input)
    }

    /// A group aggregation of `agg` over its already converted input.
    pub(super) fn group_aggregate_over(&mut self, agg: &Aggregate, schema: SchemaRef, input: NodeId) -> Result<NodeId> {
        let input_schema = self.plan.nodes[input].schema.clone();
        let input_updating = self.plan.nodes[input].updating;
        let keys = agg.group_expr.iter().map(|e| self.physical(e, agg.input.schema())).collect::<Result<Vec<_>>>()?;
        let mut aggregates = Vec::with_capacity(agg.aggr_expr.len());
        for (i, e) in agg.aggr_expr.iter().enumerate() {
            let name = agg.schema.field(agg.group_expr.len() + i).name().clone();
            let spec = self.lower_aggregate(e, name, &agg.input, &input_schema)?;
            if input_updating {
                self.check_retraction(&spec, &input_schema)?;
            }
            aggregates.push(spec);
        }
        let emit = if self.session.settings.is_batch() { GroupEmit::Final } else { GroupEmit::Changelog };
        let spec = GroupAggSpec { keys, aggregates, input_updating, emit };
        // A global aggregate has one group: all rows go to one subtask.
        let parallelism = if spec.keys.is_empty() { 1 } else { self.parallelism };
        let updating = spec.is_updating();
        Ok(self.plan.add(PlanNode {
            operator: Operator::GroupAggregate(spec),
            inputs: vec![input],
            schema,
            parallelism,
            updating,
        }))
    }

    /// One aggregate call of an `Aggregate` over `input` (the logical input, whose converted
    /// node has `input_schema`), lowered to DataFusion's physical aggregate named `name`.
    pub(super) fn lower_aggregate(
        &self,
        e: &Expr,
        name: String,
        input: &LogicalPlan,
        input_schema: &SchemaRef,
    ) -> Result<AggregateSpec> {
        let display = super::display_expr(e);
        let props = self.session.state().execution_props().clone();
        let planning = PhysicalPlanningContext::default();
        let lowered = LoweredAggregateBuilder::new(e, input.schema(), input_schema, &props, &planning)
            .with_name(name)
            .build()
            .map_err(|err| df_error(err, self.at))?;
        if !lowered.order_bys.is_empty() {
            return Err(self.unsupported("ORDER BY inside an aggregate call", ""));
        }
        Ok(AggregateSpec {
            function: lowered.aggregate,
            filter: lowered.filter.map(|f| ExprSpec { expr: f, display: "filter".into() }),
            display,
        })
    }

    /// An aggregate over an updating input must take back the rows its input retracts.
    fn check_retraction(&self, spec: &AggregateSpec, input_schema: &SchemaRef) -> Result<()> {
        match Retraction::of(&spec.function, input_schema) {
            Ok(_) => Ok(()),
            Err(e) => Err(SqlError::unsupported(
                self.at,
                format!(
                    "{} over an updating input is not supported yet in this version of Eddy: it cannot take back \
                     retracted rows",
                    spec.display
                ),
            )
            .with_hint(format!(
                "SUM, COUNT, AVG, MIN and MAX (also with DISTINCT) take back rows; or aggregate an append-only \
                 stream ({})",
                e.strip_backtrace()
            ))),
        }
    }
}
