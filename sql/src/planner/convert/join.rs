//! Joins, recognised in DataFusion's logical `Join`: the event-time interval join and the
//! regular join.
//!
//! An interval join is an inner join with at least one equality between the two sides and
//! bounds on the distance between the sides' time attributes (`r.ts BETWEEN l.ts AND
//! l.ts + INTERVAL '10' SECOND`, or the same with `<`, `>`, intervals on either side, sides
//! swapped); the watermark frees its state. Every other INNER, LEFT, RIGHT or FULL join is a
//! regular join, which holds every row until it is retracted or its state expires
//! (`table.exec.state.ttl`), and evaluates the rest of its ON condition on each candidate
//! pair.
//!
//! Both kinds read their two inputs as one stream: each side is projected onto a common
//! *tagged* schema (`[keys.., side, left columns.., right columns..]`, the other side's
//! columns NULL), the two are merged by a Union — whose watermark is the minimum of both
//! sides', which is what the interval join needs to free its state — and the join operator
//! reads that stream hash-partitioned by the keys. So the runtime needs no two-input
//! operator.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{Column as DfColumn, JoinType, NullEquality, ScalarValue};
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{BinaryExpr, Expr, Join, Operator as BinOp};
use datafusion::physical_expr::expressions::{CastExpr, Column, Literal};
use datafusion::physical_expr::PhysicalExpr;

use super::PlanBuilder;
use crate::error::{Result, SqlError};
use crate::plan::{
    ExprSpec, IntervalJoinSpec, JoinKind, JoinSpec, LookupJoinSpec, NodeId, Operator, PlanNode, ProjectExpr,
    TemporalJoinSpec,
};
use crate::planner::time_attr::{is_query_proctime, passthrough_index, rowtime_columns};

/// Which input of the join a column belongs to, and its index there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SideCol {
    Left(usize),
    Right(usize),
}

/// Bounds on `right time - left time` found in the join condition.
#[derive(Debug, Default)]
struct TimeBounds {
    /// The (left, right) time attribute columns the bounds are on.
    columns: Option<(usize, usize)>,
    lower: Option<i64>,
    upper: Option<i64>,
}

impl PlanBuilder<'_> {
    /// A join: an event-time interval join when an inner join bounds the distance between
    /// both sides' time attributes, else a regular join.
    pub(super) fn convert_join(&mut self, join: &Join, schema: SchemaRef) -> Result<NodeId> {
        let kind = match join.join_type {
            JoinType::Inner => JoinKind::Inner,
            JoinType::Left => JoinKind::Left,
            JoinType::Right => JoinKind::Right,
            JoinType::Full => JoinKind::Full,
            JoinType::LeftSemi => JoinKind::Semi,
            JoinType::LeftAnti if !join.null_aware => JoinKind::Anti,
            JoinType::LeftAnti => {
                return Err(self.unsupported(
                    "NOT IN subqueries",
                    "NOT IN treats a NULL in the subquery specially; write NOT EXISTS (SELECT .. WHERE t.k = o.k) \
                     if the subquery's column has no NULLs",
                ))
            }
            JoinType::RightSemi | JoinType::LeftMark | JoinType::RightMark => {
                return Err(self.unsupported(
                    "IN and EXISTS subqueries under OR (mark joins) or as right semi joins",
                    "write it as a JOIN on the subquery's keys, made unique with SELECT DISTINCT",
                ))
            }
            JoinType::RightAnti => {
                return Err(self.unsupported(
                    "NOT EXISTS subqueries planned as right anti joins",
                    "write it as a LEFT JOIN on the subquery's keys, made unique with SELECT DISTINCT, \
                     keeping the rows whose right side IS NULL",
                ))
            }
        };
        if let Some(table) = versioned_table(&join.right) {
            return self.temporal_join(join, kind, schema, &table);
        }
        let left_width = join.left.schema().fields().len();
        let right_width = join.right.schema().fields().len();
        let mut left_times = rowtime_columns(&join.left, &self.session.catalog);
        let mut right_times = rowtime_columns(&join.right, &self.session.catalog);
        left_times.extend(window_end_time(&join.left));
        right_times.extend(window_end_time(&join.right));
        let mut bounds = TimeBounds::default();
        let mut residual = Vec::new();
        if let Some(filter) = &join.filter {
            for c in split_conjunction(filter) {
                if !self.time_bound(c, join, left_width, &left_times, &right_times, &mut bounds)? {
                    residual.push(c.clone());
                }
            }
        }
        let interval = match (bounds.columns, bounds.lower, bounds.upper) {
            (Some(columns), Some(lower), Some(upper))
                if kind == JoinKind::Inner
                    && !join.on.is_empty()
                    && join.null_equality != NullEquality::NullEqualsNull =>
            {
                Some((columns, lower, upper))
            }
            _ => None,
        };
        let left = self.convert(&join.left)?;
        let right = self.convert(&join.right)?;
        let (keys, left_keys, right_keys) = self.join_keys(join, left, right)?;
        let updating = self.plan.nodes[left].updating || self.plan.nodes[right].updating;
        let Some(((left_time, right_time), lower, upper)) = interval.filter(|_| !updating) else {
            return self.regular_join(join, kind, schema, (left, right), (keys, left_keys, right_keys));
        };
        if self.reads_processing_time(left) || self.reads_processing_time(right) {
            return Err(self.unsupported(
                "processing-time interval joins",
                "bound the join on rowtime attributes (columns with a WATERMARK)",
            ));
        }
        let (union, key_names) = self.tagged_union((left, right), (keys, left_keys, right_keys))?;
        let spec = IntervalJoinSpec {
            key_names,
            left_width,
            right_width,
            left_time,
            right_time,
            lower_ms: lower,
            upper_ms: upper,
            display: on_display(join),
        };
        let parallelism = self.parallelism;
        let mut node = self.plan.add(PlanNode {
            operator: Operator::IntervalJoin(spec),
            inputs: vec![union],
            schema: schema.clone(),
            parallelism,
            updating: false,
        });
        if let Some(rest) = conjunction(residual) {
            let pred = self.physical(&rest, &join.schema)?;
            node = self.add(Operator::Filter(pred), vec![node], schema);
        }
        Ok(node)
    }

    /// A regular join: both sides tagged and merged, the whole ON condition beyond the
    /// equalities evaluated on each candidate pair (for outer joins it decides what matches).
    fn regular_join(
        &mut self,
        join: &Join,
        kind: JoinKind,
        schema: SchemaRef,
        (left, right): (NodeId, NodeId),
        keys: (Vec<Field>, Vec<ExprSpec>, Vec<ExprSpec>),
    ) -> Result<NodeId> {
        let input_updating = self.plan.nodes[left].updating || self.plan.nodes[right].updating;
        // The condition reads a pair: left then right columns (a semi or anti join's own
        // schema has the left columns only).
        let pair_schema =
            join.left.schema().join(join.right.schema()).map_err(|e| SqlError::internal(e.to_string()))?;
        let condition = match &join.filter {
            Some(f) => Some(self.physical(f, &pair_schema)?),
            None => None,
        };
        // A window join: both sides windowed (append-only) and joined on their window_end.
        let window_end_key = match (super::window::window_bounds(&join.left), super::window::window_bounds(&join.right))
        {
            (Some((_, left_end)), Some((_, right_end))) if !input_updating => join.on.iter().position(|(l, r)| {
                passthrough_index(l, &join.left) == Some(left_end)
                    && passthrough_index(r, &join.right) == Some(right_end)
            }),
            _ => None,
        };
        let (union, key_names) = self.tagged_union((left, right), keys)?;
        let spec = JoinSpec {
            window_end_key,
            kind,
            key_names,
            nulls_equal: join.null_equality == NullEquality::NullEqualsNull,
            left_width: join.left.schema().fields().len(),
            right_width: join.right.schema().fields().len(),
            condition,
            final_only: self.session.settings.is_batch(),
            display: on_display(join),
            append_only: [!self.plan.nodes[left].updating, !self.plan.nodes[right].updating],
        };
        let updating = spec.output_updating(input_updating);
        let parallelism = self.parallelism;
        Ok(self.plan.add(PlanNode {
            operator: Operator::Join(spec),
            inputs: vec![union],
            schema,
            parallelism,
            updating,
        }))
    }

    /// `JOIN table FOR SYSTEM_TIME AS OF l.time`: a temporal join against the versioned
    /// `table`, in event time when the left side's time attribute is a rowtime, else in
    /// processing time.
    fn temporal_join(&mut self, join: &Join, kind: JoinKind, schema: SchemaRef, table: &str) -> Result<NodeId> {
        if !matches!(kind, JoinKind::Inner | JoinKind::Left) {
            return Err(self.unsupported(
                &format!("{} temporal joins", kind.sql()),
                "a temporal join is an INNER or LEFT JOIN of a stream with a versioned table",
            ));
        }
        // The marker the rewrite added names the AS OF time; the rest is the condition.
        let mut as_of = None;
        let mut rest = Vec::new();
        for c in join.filter.iter().flat_map(split_conjunction) {
            match c {
                Expr::ScalarFunction(f) if f.name() == crate::planner::temporal::AS_OF => {
                    as_of = f.args.first().and_then(|a| passthrough_index(a, &join.left));
                }
                other => rest.push(other.clone()),
            }
        }
        let left_times = rowtime_columns(&join.left, &self.session.catalog);
        let Some(as_of) = as_of.filter(|t| left_times.contains(t)) else {
            return Err(self.unsupported(
                "FOR SYSTEM_TIME AS OF an expression that is not a time attribute of the other side",
                "write FOR SYSTEM_TIME AS OF o.ts, with o.ts the stream's rowtime (WATERMARK) or PROCTIME() column",
            ));
        };
        let left = self.convert(&join.left)?;
        let processing_time = is_query_proctime(&join.left, as_of) || self.reads_processing_time(left);
        // A jdbc table is looked up (its rows are read per key from the database), and so is
        // a filesystem table in processing time (read whole, as Flink's filesystem lookup);
        // any other is a versioned table, kept from its changelog.
        let def = self.session.catalog.table(table);
        let connector = def.and_then(|t| t.option("connector")).map(str::to_ascii_lowercase);
        let is_lookup = match connector.as_deref() {
            Some("jdbc") => true,
            Some("filesystem") => processing_time,
            _ => false,
        };
        let primary_key = def.map(|t| t.primary_key.clone()).unwrap_or_default();
        if primary_key.is_empty() && !is_lookup {
            return Err(SqlError::plan(
                self.at,
                format!(
                    "Temporal Table Join requires primary key in versioned table, but no primary key can be found. \
                     The versioned table is '{table}'"
                ),
            )
            .with_hint(format!("declare PRIMARY KEY (..) NOT ENFORCED on '{table}'")));
        }
        let right_key_names: Vec<String> = join
            .on
            .iter()
            .filter_map(|(_, r)| passthrough_index(r, &join.right).map(|i| join.right.schema().field(i).name().clone()))
            .collect();
        if let Some(missing) = primary_key.iter().find(|k| !is_lookup && !right_key_names.contains(k)) {
            return Err(SqlError::plan(
                self.at,
                format!(
                    "Temporal Table Join requires the join condition to cover the primary key of the versioned table \
                     '{table}': '{missing}' is not joined on"
                ),
            ));
        }
        if is_lookup {
            return self.lookup_join(join, kind, schema, table, (left, processing_time), rest);
        }
        let right = self.convert(&join.right)?;
        let (left_time, right_time) = if processing_time {
            (None, None)
        } else {
            let Some(right_time) = rowtime_columns(&join.right, &self.session.catalog).first().copied() else {
                return Err(SqlError::plan(
                    self.at,
                    format!(
                        "Event-Time Temporal Table Join requires both primary key and row time attribute in versioned \
                         table, but no row time attribute can be found. The versioned table is '{table}'"
                    ),
                )
                .with_hint(format!("declare a WATERMARK on '{table}'")));
            };
            (Some(as_of), Some(right_time))
        };
        let condition = match conjunction(rest) {
            Some(f) => Some(self.physical(&f, &join.schema)?),
            None => None,
        };
        let keys = self.join_keys(join, left, right)?;
        let (union, key_names) = self.tagged_union((left, right), keys)?;
        let spec = TemporalJoinSpec {
            kind,
            key_names,
            left_width: join.left.schema().fields().len(),
            right_width: join.right.schema().fields().len(),
            left_time,
            right_time,
            condition,
            display: on_display(join),
        };
        let parallelism = self.parallelism;
        Ok(self.plan.add(PlanNode {
            operator: Operator::TemporalJoin(spec),
            inputs: vec![union],
            schema,
            parallelism,
            updating: false,
        }))
    }

    /// A lookup join: the stream `left` joined, row by row as it arrives, with the rows the
    /// jdbc or filesystem `table` holds for each key. `rest` is the ON condition beyond the
    /// equalities. `processing_time`: whether the left side's AS OF time is a PROCTIME().
    fn lookup_join(
        &mut self,
        join: &Join,
        kind: JoinKind,
        schema: SchemaRef,
        table: &str,
        (left, processing_time): (NodeId, bool),
        rest: Vec<Expr>,
    ) -> Result<NodeId> {
        if !processing_time {
            return Err(self.unsupported(
                &format!("FOR SYSTEM_TIME AS OF an event time with the jdbc table '{table}'"),
                "a jdbc table is a lookup table: join it FOR SYSTEM_TIME AS OF a PROCTIME() column of the stream",
            ));
        }
        let Some(def) = self.session.catalog.table(table) else {
            return Err(SqlError::internal(format!("lookup table '{table}' vanished")));
        };
        // The right side is a scan of the table's columns, maybe filtered (conditions on the
        // table alone in ON are pushed down there), projected as they are.
        let refuse = || {
            self.unsupported(
                &format!("computed columns of the lookup table '{table}'"),
                "select the table's columns as they are and compute after the join",
            )
        };
        let Some((scan, filters)) = lookup_scan(&join.right) else { return Err(refuse()) };
        let read_columns: Vec<String> = scan.projected_schema.fields().iter().map(|f| f.name().clone()).collect();
        if read_columns.iter().any(|c| def.column_index(c).is_none()) {
            return Err(refuse());
        }
        let mut right_output = Vec::new();
        for f in join.right.schema().fields() {
            let Some(i) = read_columns.iter().position(|c| c == f.name()) else { return Err(refuse()) };
            right_output.push(i);
        }
        let right_filter = match conjunction(filters) {
            Some(f) => Some(self.physical(&f, &scan.projected_schema)?),
            None => None,
        };
        let mut left_keys = Vec::new();
        let mut right_keys = Vec::new();
        for (l, r) in &join.on {
            let Some(i) = passthrough_index(r, &join.right) else {
                return Err(self.unsupported(
                    "lookup keys that are expressions",
                    "join on the lookup table's columns: ON o.k = t.k",
                ));
            };
            left_keys.push(self.physical(l, join.left.schema())?);
            right_keys.push(join.right.schema().field(i).name().clone());
        }
        let condition = match conjunction(rest) {
            Some(f) => Some(self.physical(&f, &join.schema)?),
            None => None,
        };
        let spec = LookupJoinSpec {
            kind,
            table: def.source_spec(),
            left_keys,
            right_keys,
            read_columns,
            right_output,
            right_filter,
            condition,
            display: on_display(join),
        };
        let parallelism = self.plan.nodes[left].parallelism;
        let updating = self.plan.nodes[left].updating;
        Ok(self.plan.add(PlanNode {
            operator: Operator::LookupJoin(spec),
            inputs: vec![left],
            schema,
            parallelism,
            updating,
        }))
    }

    /// The equalities of the join as key expressions of each side (the right key cast to
    /// the left key's type) and the fields of the tagged schema's key columns.
    #[allow(clippy::type_complexity)]
    fn join_keys(
        &self,
        join: &Join,
        left: NodeId,
        right: NodeId,
    ) -> Result<(Vec<Field>, Vec<ExprSpec>, Vec<ExprSpec>)> {
        let left_schema = self.plan.nodes[left].schema.clone();
        let right_schema = self.plan.nodes[right].schema.clone();
        let mut left_keys = Vec::with_capacity(join.on.len());
        let mut right_keys = Vec::with_capacity(join.on.len());
        let mut fields = Vec::new();
        for (i, (l, r)) in join.on.iter().enumerate() {
            let lk = self.physical(l, join.left.schema())?;
            let mut rk = self.physical(r, join.right.schema())?;
            let lt = lk.expr.data_type(&left_schema).map_err(|e| SqlError::internal(e.to_string()))?;
            let rt = rk.expr.data_type(&right_schema).map_err(|e| SqlError::internal(e.to_string()))?;
            if lt != rt {
                rk.expr = Arc::new(CastExpr::new(rk.expr, lt.clone(), None));
            }
            fields.push(Field::new(format!("__join_key{i}"), lt, true));
            left_keys.push(lk);
            right_keys.push(rk);
        }
        Ok((fields, left_keys, right_keys))
    }

    /// Both sides projected onto the tagged schema (keys, side, left columns, right
    /// columns) and merged by a Union; returns the Union and the key columns' names.
    fn tagged_union(
        &mut self,
        (left, right): (NodeId, NodeId),
        (mut fields, left_keys, right_keys): (Vec<Field>, Vec<ExprSpec>, Vec<ExprSpec>),
    ) -> Result<(NodeId, Vec<String>)> {
        let left_schema = self.plan.nodes[left].schema.clone();
        let right_schema = self.plan.nodes[right].schema.clone();
        let key_names: Vec<String> = fields.iter().map(|f| f.name().clone()).collect();
        fields.push(Field::new("__join_side", DataType::Int8, false));
        let nullable = |f: &Arc<Field>| f.as_ref().clone().with_nullable(true);
        fields.extend(left_schema.fields().iter().map(nullable));
        fields.extend(right_schema.fields().iter().map(nullable));
        let tagged: SchemaRef = Arc::new(Schema::new(fields));
        let left_tagged = self.tag(left, left_keys, 0, &left_schema, &right_schema)?;
        let left_tagged = self.add(Operator::Project(left_tagged), vec![left], tagged.clone());
        let right_tagged = self.tag(right, right_keys, 1, &left_schema, &right_schema)?;
        let right_tagged = self.add(Operator::Project(right_tagged), vec![right], tagged.clone());
        Ok((self.add(Operator::Union, vec![left_tagged, right_tagged], tagged), key_names))
    }

    /// The projection of one side (`side` 0: left, 1: right) onto the tagged schema.
    fn tag(
        &self,
        node: NodeId,
        keys: Vec<ExprSpec>,
        side: i8,
        left: &SchemaRef,
        right: &SchemaRef,
    ) -> Result<Vec<ProjectExpr>> {
        let mut out: Vec<ProjectExpr> = keys
            .into_iter()
            .enumerate()
            .map(|(i, expr)| ProjectExpr { expr, name: format!("__join_key{i}") })
            .collect();
        out.push(ProjectExpr {
            expr: ExprSpec { expr: Arc::new(Literal::new(ScalarValue::Int8(Some(side)))), display: side.to_string() },
            name: "__join_side".into(),
        });
        let own = self.plan.nodes[node].schema.clone();
        for (s, schema) in [(0, left), (1, right)] {
            for (i, f) in schema.fields().iter().enumerate() {
                let expr: Arc<dyn PhysicalExpr> = if s == side {
                    Arc::new(Column::new(own.field(i).name(), i))
                } else {
                    let null = ScalarValue::try_from(f.data_type())
                        .map_err(|_| self.unsupported(&format!("joining a column of type {}", f.data_type()), ""))?;
                    Arc::new(Literal::new(null))
                };
                let display = if s == side { f.name().clone() } else { "NULL".into() };
                out.push(ProjectExpr { expr: ExprSpec { expr, display }, name: f.name().clone() });
            }
        }
        Ok(out)
    }

    /// If `c` bounds `right time - left time` on the inputs' time attributes, record the
    /// bound and say so; `false` for any other condition (applied after the join).
    fn time_bound(
        &self,
        c: &Expr,
        join: &Join,
        left_width: usize,
        left_times: &[usize],
        right_times: &[usize],
        bounds: &mut TimeBounds,
    ) -> Result<bool> {
        let comparisons = match c {
            Expr::Between(b) if !b.negated => {
                vec![(b.expr.as_ref(), BinOp::GtEq, b.low.as_ref()), (b.expr.as_ref(), BinOp::LtEq, b.high.as_ref())]
            }
            Expr::BinaryExpr(BinaryExpr { left, op, right })
                if matches!(op, BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq) =>
            {
                vec![(left.as_ref(), *op, right.as_ref())]
            }
            _ => return Ok(false),
        };
        let side = |col: &DfColumn| -> Option<SideCol> {
            let i = join.schema.index_of_column(col).ok()?;
            Some(if i < left_width { SideCol::Left(i) } else { SideCol::Right(i - left_width) })
        };
        let mut found = Vec::with_capacity(comparisons.len());
        for (a, op, b) in comparisons {
            let (Some((ca, xa)), Some((cb, xb))) = (time_term(a), time_term(b)) else {
                return Ok(false);
            };
            // Normalise to `right - left <op> constant`.
            let (l, r, op, k) = match (side(&ca), side(&cb)) {
                (Some(SideCol::Right(r)), Some(SideCol::Left(l))) => (l, r, op, xb - xa),
                (Some(SideCol::Left(l)), Some(SideCol::Right(r))) => (l, r, flip(op), xa - xb),
                _ => return Ok(false),
            };
            if !left_times.contains(&l) || !right_times.contains(&r) {
                return Ok(false);
            }
            found.push((l, r, op, k));
        }
        for (l, r, op, k) in found {
            match bounds.columns {
                Some(cols) if cols != (l, r) => {
                    return Err(self.unsupported(
                        "interval joins bounding several pairs of time attributes",
                        "bound one time attribute of each side",
                    ))
                }
                _ => bounds.columns = Some((l, r)),
            }
            match op {
                BinOp::GtEq => bounds.lower = Some(bounds.lower.map_or(k, |v| v.max(k))),
                BinOp::Gt => bounds.lower = Some(bounds.lower.map_or(k + 1, |v| v.max(k + 1))),
                BinOp::LtEq => bounds.upper = Some(bounds.upper.map_or(k, |v| v.min(k))),
                _ => bounds.upper = Some(bounds.upper.map_or(k - 1, |v| v.min(k - 1))),
            }
        }
        Ok(true)
    }

    /// Whether the time attribute of the rows of `node` is processing time.
    fn reads_processing_time(&self, mut node: NodeId) -> bool {
        loop {
            let n = &self.plan.nodes[node];
            if let Operator::Watermark(w) = &n.operator {
                return w.processing_time;
            }
            match n.inputs.first() {
                Some(i) => node = *i,
                None => return false,
            }
        }
    }
}

/// The `window_end` of windowed rows, which can bound an interval join like a time
/// attribute (Nexmark q7 joins bids to the maximum of their TUMBLE window by
/// `B.dateTime BETWEEN B1.window_end - INTERVAL '10' SECOND AND B1.window_end`).
///
/// Flink joins on it with a regular join, which holds every row of both sides forever. But a
/// row's `window_end` is never behind the watermark where the row travels: a window table
/// function's row ends its window after its own time, and a window aggregation emits a
/// window when the watermark reaches `window_end - 1`, before passing that watermark on. So
/// the interval join, which frees rows once the watermark passes the last time that can
/// still match them, gives the same rows as the regular join with bounded state (an
/// updating input, as with allowed lateness, still gets the regular join).
fn window_end_time(plan: &datafusion::logical_expr::LogicalPlan) -> Option<usize> {
    super::window::window_of(plan).map(|w| w.end)
}

/// The table a plan reads `FOR SYSTEM_TIME AS OF` (through aliases, projections and
/// filters), if any.
fn versioned_table(plan: &datafusion::logical_expr::LogicalPlan) -> Option<String> {
    use datafusion::logical_expr::LogicalPlan;
    match plan {
        LogicalPlan::SubqueryAlias(a) => versioned_table(&a.input),
        LogicalPlan::Projection(p) => versioned_table(&p.input),
        LogicalPlan::Filter(f) => versioned_table(&f.input),
        LogicalPlan::TableScan(scan) => {
            let src = scan.source.as_ref().downcast_ref::<crate::planner::context::EddyTableSource>()?;
            src.versioned.then(|| src.name.clone())
        }
        _ => None,
    }
}

/// The scan under the right side of a lookup join and the conditions on its rows, through
/// aliases, column-only projections and filters; `None` for anything else.
fn lookup_scan(
    plan: &datafusion::logical_expr::LogicalPlan,
) -> Option<(&datafusion::logical_expr::TableScan, Vec<Expr>)> {
    use datafusion::logical_expr::LogicalPlan;
    match plan {
        LogicalPlan::SubqueryAlias(a) => lookup_scan(&a.input),
        LogicalPlan::Projection(p) if p.expr.iter().all(|e| passthrough_index(e, &p.input).is_some()) => {
            lookup_scan(&p.input)
        }
        LogicalPlan::Filter(f) => {
            let (scan, mut filters) = lookup_scan(&f.input)?;
            // Only over the scan itself (its columns are what the filter reads).
            if !matches!(f.input.as_ref(), LogicalPlan::TableScan(_)) {
                return None;
            }
            filters.push(f.predicate.clone());
            Some((scan, filters))
        }
        LogicalPlan::TableScan(scan) => Some((scan, scan.filters.clone())),
        _ => None,
    }
}

/// How EXPLAIN shows the equalities of a join.
fn on_display(join: &Join) -> String {
    let on: Vec<String> =
        join.on.iter().map(|(l, r)| format!("{} = {}", super::display_expr(l), super::display_expr(r))).collect();
    on.join(" AND ")
}

/// `a op b` as `b flip(op) a`.
fn flip(op: BinOp) -> BinOp {
    match op {
        BinOp::Lt => BinOp::Gt,
        BinOp::LtEq => BinOp::GtEq,
        BinOp::Gt => BinOp::Lt,
        BinOp::GtEq => BinOp::LtEq,
        other => other,
    }
}

/// `column [+|- interval]..` as the column and the offset in ms.
fn time_term(e: &Expr) -> Option<(DfColumn, i64)> {
    match e {
        Expr::Column(c) => Some((c.clone(), 0)),
        Expr::Alias(a) => time_term(&a.expr),
        Expr::Cast(c) if matches!(c.field.data_type(), DataType::Timestamp(_, _)) => time_term(&c.expr),
        Expr::BinaryExpr(BinaryExpr { left, op: BinOp::Plus, right }) => match (time_term(left), interval_ms(right)) {
            (Some((c, x)), Some(ms)) => Some((c, x.checked_add(ms)?)),
            _ => {
                let (c, x) = time_term(right)?;
                Some((c, x.checked_add(interval_ms(left)?)?))
            }
        },
        Expr::BinaryExpr(BinaryExpr { left, op: BinOp::Minus, right }) => {
            let (c, x) = time_term(left)?;
            Some((c, x.checked_sub(interval_ms(right)?)?))
        }
        _ => None,
    }
}

/// A constant day-time interval in ms (a month has no fixed length).
fn interval_ms(e: &Expr) -> Option<i64> {
    match e {
        Expr::Alias(a) => interval_ms(&a.expr),
        Expr::Literal(ScalarValue::IntervalDayTime(Some(v)), _) => {
            Some(i64::from(v.days) * 86_400_000 + i64::from(v.milliseconds))
        }
        Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(v)), _) if v.months == 0 => {
            Some(i64::from(v.days) * 86_400_000 + v.nanoseconds.div_euclid(1_000_000))
        }
        Expr::Literal(ScalarValue::DurationMillisecond(Some(v)), _) => Some(*v),
        Expr::Literal(ScalarValue::DurationSecond(Some(v)), _) => v.checked_mul(1000),
        _ => None,
    }
}

#[cfg(test)]
#[path = "join_tests.rs"]
mod tests;
