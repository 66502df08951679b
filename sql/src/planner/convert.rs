//! DataFusion LogicalPlan -> Eddy StreamPlan.
//!
//! Each logical node maps to a stream node with exactly the same output columns, so the
//! physical expressions DataFusion builds against a logical input schema evaluate directly
//! on the batches of the corresponding stream node. A table scan becomes the table's source
//! chain — source, computed columns, watermark, and for an upsert source the normalization
//! into a changelog — built once per job and shared by every statement that reads the table.
//! Operators that need state and are not built yet are rejected here with a message naming
//! the construct, never planned into a wrong answer; so are operators that cannot consume
//! the updates of a changelog input (Flink's message).

mod group;
mod join;
mod over;
mod window;
mod window_reagg;

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::compute::can_cast_types;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{cast, lit, Expr, LogicalPlan, LogicalPlanBuilder, ScalarUDF};
use datafusion::physical_expr::expressions::{CastExpr, Column};
use datafusion::physical_expr::PhysicalExpr;

use super::context::EddyTableSource;
use super::query::{df_error, plan_query};
use super::window_node::WindowTableFunction;
use super::{JobStatement, Session};
use crate::catalog::{table_key, ChangelogKind, ColumnSource, TableDef};
use crate::error::{Location, Result, SqlError};
use crate::functions::regexp::RegexpExtractIsNotNull;
use crate::plan::{
    ChangelogNormalizeSpec, ExprSpec, NodeId, Operator, PlanNode, ProjectExpr, StreamPlan, TableSpec, UnnestSpec,
    WatermarkSpec,
};
use crate::types::FlinkType;

/// Builds one job's StreamPlan statement by statement.
pub(crate) struct PlanBuilder<'a> {
    session: &'a Session,
    plan: StreamPlan,
    /// Table name -> the node that emits its full rows (after computed columns/watermark).
    sources: HashMap<String, NodeId>,
    parallelism: usize,
    /// Where the statement being planned starts (for errors without a better place).
    at: Location,
}

impl<'a> PlanBuilder<'a> {
    pub(crate) fn new(session: &'a Session) -> Self {
        Self {
            session,
            plan: StreamPlan { batch: session.settings.is_batch(), ..StreamPlan::default() },
            sources: HashMap::new(),
            parallelism: session.settings.parallelism(),
            at: Location::default(),
        }
    }

    pub(crate) fn finish(mut self) -> StreamPlan {
        super::read_columns::mark_unread(&mut self.plan);
        self.plan
    }

    pub(crate) fn add_statement(&mut self, s: &JobStatement) -> Result<()> {
        match s {
            JobStatement::Insert(ins) => {
                self.at = ins.location;
                let insert = &ins.node;
                let name = table_key(&insert.table, insert.table_location)?;
                let Some(table) = self.session.catalog.table(&name).cloned() else {
                    let what = if self.session.catalog.contains(&name) {
                        "is a view; INSERT needs a table"
                    } else {
                        "does not exist"
                    };
                    return Err(SqlError::plan(insert.table_location, format!("table '{name}' {what}")));
                };
                let ctx = self.session.context();
                let query = plan_query(&ctx, &insert.query).map_err(|e| df_error(e, self.at))?;
                let sink_cols = table.sink_columns();
                let query = self.map_to_sink(query, &table, &sink_cols, &insert.columns, insert.table_location)?;
                let first = self.plan.nodes.len();
                let node = self.convert_optimized(&query)?;
                self.check_update_consumers(first)?;
                let schema = table.schema_of(&sink_cols);
                let metadata = sink_cols
                    .iter()
                    .enumerate()
                    .filter_map(|(pos, i)| match &table.columns[*i].kind {
                        ColumnSource::Metadata { key, .. } => Some((pos, key.clone())),
                        _ => None,
                    })
                    .collect();
                let spec = table_spec(&table, schema.clone(), metadata);
                let parallelism = sink_parallelism(&table).unwrap_or(self.parallelism);
                let updating = self.plan.nodes[node].updating;
                self.plan.add(PlanNode {
                    operator: Operator::Sink(spec),
                    inputs: vec![node],
                    schema,
                    parallelism,
                    updating,
                });
            }
            JobStatement::Query(q) => {
                self.at = q.location;
                let ctx = self.session.context();
                let query = plan_query(&ctx, &q.node).map_err(|e| df_error(e, self.at))?;
                let first = self.plan.nodes.len();
                let node = self.convert_optimized(&query)?;
                self.check_update_consumers(first)?;
                let schema = self.plan.nodes[node].schema.clone();
                let updating = self.plan.nodes[node].updating;
                // A plain SELECT prints its rows, like Flink's print connector.
                let spec = TableSpec {
                    name: format!("select at line {}", q.location.line),
                    schema: schema.clone(),
                    metadata: vec![],
                    primary_key: vec![],
                    partition_keys: vec![],
                    distribution: None,
                    options: vec![("connector".into(), "print".into())],
                    rowtime: None,
                    unread: vec![],
                };
                self.plan.add(PlanNode {
                    operator: Operator::Sink(spec),
                    inputs: vec![node],
                    schema,
                    parallelism: 1,
                    updating,
                });
            }
        }
        Ok(())
    }

    /// Project the query's columns onto the sink's, casting where Flink casts implicitly.
    fn map_to_sink(
        &self,
        query: LogicalPlan,
        table: &TableDef,
        sink_cols: &[usize],
        listed: &[String],
        at: Location,
    ) -> Result<LogicalPlan> {
        let qfields: Vec<(Expr, DataType, String)> = query
            .schema()
            .iter()
            .map(|(q, f)| {
                (
                    Expr::Column(datafusion::common::Column::new(q.cloned(), f.name())),
                    f.data_type().clone(),
                    f.name().clone(),
                )
            })
            .collect();
        let sink_names: Vec<&str> = sink_cols.iter().map(|i| table.columns[*i].name.as_str()).collect();
        // Which query column feeds each sink column (None = NULL).
        let sources: Vec<Option<usize>> = if listed.is_empty() {
            if qfields.len() != sink_cols.len() {
                return Err(self.schema_mismatch(table, sink_cols, &qfields, "Different number of columns.", at));
            }
            (0..sink_cols.len()).map(Some).collect()
        } else {
            if listed.len() != qfields.len() {
                return Err(SqlError::plan(
                    at,
                    format!("INSERT lists {} columns but the query returns {}", listed.len(), qfields.len()),
                ));
            }
            for l in listed {
                if !sink_names.contains(&l.as_str()) {
                    return Err(SqlError::plan(
                        at,
                        format!("column '{l}' is not a writable column of table '{}'", table.name),
                    ));
                }
            }
            sink_names.iter().map(|n| listed.iter().position(|l| l == n)).collect()
        };
        let mut exprs = Vec::with_capacity(sink_cols.len());
        for (pos, (i, src)) in sink_cols.iter().zip(&sources).enumerate() {
            let column = &table.columns[*i];
            let target = column.data_type.to_arrow();
            let e = match src {
                None => cast(lit(ScalarValue::Null), target.clone()),
                Some(q) => {
                    let (e, from, _) = &qfields[*q];
                    if from == &target {
                        e.clone()
                    } else if implicitly_castable(from, &target) {
                        cast(e.clone(), target.clone())
                    } else {
                        let cause = format!(
                            "Incompatible types for sink column '{}' at position {pos}: the query gives {}, the sink expects {}.",
                            column.name,
                            FlinkType::from_arrow(from, true),
                            column.data_type
                        );
                        return Err(self
                            .schema_mismatch(table, sink_cols, &qfields, &cause, at)
                            .with_hint(format!("CAST the value to {} in the SELECT", column.data_type)));
                    }
                }
            };
            exprs.push(e.alias(column.name.as_str()));
        }
        LogicalPlanBuilder::from(query).project(exprs).and_then(|b| b.build()).map_err(|e| df_error(e, at))
    }

    fn schema_mismatch(
        &self,
        table: &TableDef,
        sink_cols: &[usize],
        q: &[(Expr, DataType, String)],
        cause: &str,
        at: Location,
    ) -> SqlError {
        let query_schema: Vec<String> =
            q.iter().map(|(_, t, n)| format!("{n}: {}", FlinkType::from_arrow(t, true))).collect();
        let sink_schema: Vec<String> =
            sink_cols.iter().map(|i| format!("{}: {}", table.columns[*i].name, table.columns[*i].data_type)).collect();
        SqlError::plan(
            at,
            format!(
                "Column types of query result and sink for '{}' do not match. Cause: {cause} Query schema: [{}] Sink schema: [{}]",
                table.name,
                query_schema.join(", "),
                sink_schema.join(", ")
            ),
        )
    }

    fn convert_optimized(&mut self, plan: &LogicalPlan) -> Result<NodeId> {
        over::check_one_window_per_select(plan, self.at)?;
        let optimized = self.session.state().optimize(plan).map_err(|e| df_error(e, self.at))?;
        tracing::debug!(plan = %optimized.display_indent(), "optimized logical plan");
        self.convert(&optimized)
    }

    fn convert(&mut self, lp: &LogicalPlan) -> Result<NodeId> {
        let schema: SchemaRef = Arc::new(lp.schema().as_arrow().clone());
        match lp {
            LogicalPlan::Projection(p) => {
                let input = self.convert(&p.input)?;
                let exprs = p
                    .expr
                    .iter()
                    .zip(schema.fields())
                    .map(|(e, f)| Ok(ProjectExpr { expr: self.physical(e, p.input.schema())?, name: f.name().clone() }))
                    .collect::<Result<Vec<_>>>()?;
                Ok(self.add(Operator::Project(exprs), vec![input], schema))
            }
            LogicalPlan::Filter(f) => {
                if let Some(node) = self.convert_rank_filter(f, schema.clone())? {
                    return Ok(node);
                }
                let input = self.convert(&f.input)?;
                let pred = self.physical(&f.predicate, f.input.schema())?;
                Ok(self.add(Operator::Filter(pred), vec![input], schema))
            }
            LogicalPlan::SubqueryAlias(a) => self.convert(&a.input),
            LogicalPlan::TableScan(scan) => {
                let Some(src) = scan.source.as_ref().downcast_ref::<EddyTableSource>() else {
                    return Err(SqlError::internal(format!("unknown table source for '{}'", scan.table_name)));
                };
                if src.is_view() {
                    return Err(SqlError::internal(format!("view '{}' was not inlined", src.name)));
                }
                let mut node = self.source_chain(&src.name.clone())?;
                let full = self.plan.nodes[node].schema.clone();
                if !scan.filters.is_empty() {
                    let df_full = DFSchema::try_from_qualified_schema(scan.table_name.clone(), &full)
                        .map_err(|e| df_error(e, self.at))?;
                    for f in &scan.filters {
                        let pred = self.physical(f, &df_full)?;
                        node = self.add(Operator::Filter(pred), vec![node], full.clone());
                    }
                }
                if scan.fetch.is_some() {
                    return Err(self.unsupported(
                        "LIMIT on a stream",
                        "a streaming LIMIT needs a stateful operator that is not built yet",
                    ));
                }
                if let Some(proj) = &scan.projection {
                    let identity = proj.len() == full.fields().len() && proj.iter().enumerate().all(|(i, p)| i == *p);
                    if !identity {
                        let exprs = proj
                            .iter()
                            .map(|i| {
                                let f = full.field(*i);
                                ProjectExpr {
                                    expr: ExprSpec {
                                        expr: Arc::new(Column::new(f.name(), *i)),
                                        display: f.name().clone(),
                                    },
                                    name: f.name().clone(),
                                }
                            })
                            .collect();
                        node = self.add(Operator::Project(exprs), vec![node], schema);
                    }
                }
                Ok(node)
            }
            LogicalPlan::Union(u) => {
                let inputs = u.inputs.iter().map(|i| self.convert(i)).collect::<Result<Vec<_>>>()?;
                Ok(self.add(Operator::Union, inputs, schema))
            }
            LogicalPlan::Values(v) => {
                let batch = self.values_batch(&v.values, &schema)?;
                Ok(self.add_values(vec![batch], schema))
            }
            LogicalPlan::EmptyRelation(e) => {
                let rows = usize::from(e.produce_one_row);
                let columns: Vec<ArrayRef> =
                    schema.fields().iter().map(|f| new_null_array(f.data_type(), rows)).collect();
                let batch = RecordBatch::try_new_with_options(
                    schema.clone(),
                    columns,
                    &RecordBatchOptions::new().with_row_count(Some(rows)),
                )
                .map_err(|e| SqlError::internal(e.to_string()))?;
                Ok(self.add_values(if rows == 0 { vec![] } else { vec![batch] }, schema))
            }
            LogicalPlan::Unnest(u) => self.convert_unnest(u, schema),
            LogicalPlan::Aggregate(agg) => self.convert_aggregate(agg, schema),
            LogicalPlan::Extension(e) => match e.node.as_any().downcast_ref::<WindowTableFunction>() {
                Some(w) => self.convert_window_tvf(w, schema),
                None => Err(SqlError::internal(format!("unknown plan node {}", e.node.name()))),
            },
            LogicalPlan::Join(j) => self.convert_join(j, schema),
            LogicalPlan::Window(w) => self.convert_over(w, schema),
            LogicalPlan::Sort(_) => {
                Err(self
                    .unsupported("ORDER BY on a stream", "Flink allows only ORDER BY the time attribute on streams"))
            }
            LogicalPlan::Limit(_) => Err(self
                .unsupported("LIMIT on a stream", "a streaming LIMIT needs a stateful operator that is not built yet")),
            LogicalPlan::Distinct(_) => {
                Err(self.unsupported("SELECT DISTINCT", "DISTINCT needs a stateful operator that is not built yet"))
            }
            other => Err(self.unsupported(&format!("the '{}' operator", other.display()), "")),
        }
    }

    fn unsupported(&self, what: &str, why: &str) -> SqlError {
        let e = SqlError::unsupported(self.at, format!("{what} is not supported yet in this version of Eddy"));
        if why.is_empty() {
            e
        } else {
            e.with_hint(why.to_string())
        }
    }

    fn add(&mut self, operator: Operator, inputs: Vec<NodeId>, schema: SchemaRef) -> NodeId {
        let updating = inputs.iter().any(|i| self.plan.nodes[*i].updating);
        let parallelism = self.parallelism;
        self.plan.add(PlanNode { operator, inputs, schema, parallelism, updating })
    }

    fn add_values(&mut self, batches: Vec<RecordBatch>, schema: SchemaRef) -> NodeId {
        self.plan.add(PlanNode {
            operator: Operator::Values(batches),
            inputs: vec![],
            schema,
            parallelism: 1,
            updating: false,
        })
    }

    fn physical(&self, e: &Expr, schema: &DFSchema) -> Result<ExprSpec> {
        let expr = self
            .session
            .state()
            .create_physical_expr(regexp_extract_tests(e.clone()), schema)
            .map_err(|err| df_error(err, self.at))?;
        Ok(ExprSpec { expr, display: display_expr(e) })
    }

    /// Evaluate `VALUES` rows into one batch of `schema`.
    fn values_batch(&self, rows: &[Vec<Expr>], schema: &SchemaRef) -> Result<RecordBatch> {
        let empty = DFSchema::empty();
        let one_row = RecordBatch::try_new_with_options(
            Arc::new(Schema::empty()),
            vec![],
            &RecordBatchOptions::new().with_row_count(Some(1)),
        )
        .map_err(|e| SqlError::internal(e.to_string()))?;
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for (c, field) in schema.fields().iter().enumerate() {
            let mut scalars = Vec::with_capacity(rows.len());
            for row in rows {
                let Some(e) = row.get(c) else {
                    return Err(SqlError::plan(self.at, "VALUES rows have different lengths"));
                };
                let phys = self.physical(e, &empty)?;
                let v = phys.expr.evaluate(&one_row).map_err(|e| df_error(e, self.at))?;
                let array = v.into_array(1).map_err(|e| df_error(e, self.at))?;
                let s = ScalarValue::try_from_array(&array, 0).map_err(|e| df_error(e, self.at))?;
                scalars.push(s.cast_to(field.data_type()).map_err(|e| df_error(e, self.at))?);
            }
            let array = if scalars.is_empty() {
                new_null_array(field.data_type(), 0)
            } else {
                ScalarValue::iter_to_array(scalars).map_err(|e| df_error(e, self.at))?
            };
            columns.push(array);
        }
        RecordBatch::try_new_with_options(
            schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows.len())),
        )
        .map_err(|e| SqlError::plan(self.at, format!("VALUES: {e}")))
    }

    /// The nodes that read a table and give its full rows: source, then computed columns,
    /// then the watermark generator, then for an upsert source the normalization into a
    /// changelog. Built once per job.
    ///
    /// A changelog source ([`TableDef::changelog_source`]) is an updating stream from the
    /// source on. An upsert source's rows are normalized by key *after* the watermark, as in
    /// Flink, where the watermark of an upsert-kafka table is generated in the source, per
    /// partition (watermark push-down), and `ChangelogNormalize` sits behind a hash exchange:
    /// assigning watermarks behind the exchange would lose the per-partition watermarks.
    /// Computed columns are evaluated on the upsert rows; a tombstone's are never emitted
    /// (the normalization emits the stored full row instead).
    fn source_chain(&mut self, name: &str) -> Result<NodeId> {
        if let Some(id) = self.sources.get(name) {
            return Ok(*id);
        }
        let Some(table) = self.session.catalog.table(name).cloned() else {
            return Err(SqlError::internal(format!("table '{name}' vanished from the catalog")));
        };
        let src_cols = table.source_columns();
        let spec = table.source_spec();
        let src_schema = spec.schema.clone();
        let changelog = table.changelog_source();
        let normalize = match changelog {
            Some(ChangelogKind::Upsert) => Some(self.normalize_spec(&table)?),
            _ => None,
        };
        let mut node = self.plan.add(PlanNode {
            operator: Operator::Source(spec),
            inputs: vec![],
            schema: src_schema.clone(),
            parallelism: scan_parallelism(&table).unwrap_or(self.parallelism),
            updating: changelog.is_some(),
        });
        let full = table.schema();
        if src_cols.len() != table.columns.len() {
            let mut exprs = Vec::with_capacity(table.columns.len());
            for (i, c) in table.columns.iter().enumerate() {
                let target = c.data_type.to_arrow();
                let spec = match &c.kind {
                    ColumnSource::Computed(e) => {
                        let phys = self.session.plan_expr(e, &src_schema, table.location)?;
                        let actual = phys.data_type(&src_schema).map_err(|e| df_error(e, table.location))?;
                        // Keep the batch type identical to the catalog's (e.g. time zone names).
                        let phys: Arc<dyn PhysicalExpr> =
                            if actual == target { phys } else { Arc::new(CastExpr::new(phys, target.clone(), None)) };
                        ExprSpec { expr: phys, display: e.to_string() }
                    }
                    _ => {
                        let pos = src_cols.iter().position(|s| *s == i).unwrap_or(0);
                        ExprSpec { expr: Arc::new(Column::new(&c.name, pos)), display: c.name.clone() }
                    }
                };
                exprs.push(ProjectExpr { expr: spec, name: c.name.clone() });
            }
            node = self.add(Operator::Project(exprs), vec![node], full.clone());
        }
        if let Some(wm) = &table.watermark {
            let rowtime_column = table.column_index(&wm.column).unwrap_or(0);
            let expr = self.session.plan_expr(&wm.expr, &full, wm.location)?;
            let spec = WatermarkSpec {
                rowtime_column,
                expr: ExprSpec { expr, display: wm.expr.to_string() },
                interval_ms: self.session.settings.watermark_interval_ms(),
                idle_timeout_ms: self.session.settings.idle_timeout_ms(),
                processing_time: false,
            };
            node = self.add(Operator::Watermark(spec), vec![node], full);
        } else if let Some(proc) = table.proctime_column() {
            // Processing time: the clock is the watermark (see WatermarkSpec::processing_time).
            let name = table.columns[proc].name.clone();
            let spec = WatermarkSpec {
                rowtime_column: proc,
                expr: ExprSpec { expr: Arc::new(Column::new(&name, proc)), display: name },
                interval_ms: self.session.settings.watermark_interval_ms().max(1),
                idle_timeout_ms: 0,
                processing_time: true,
            };
            node = self.add(Operator::Watermark(spec), vec![node], full);
        }
        if let Some(spec) = normalize {
            let schema = self.plan.nodes[node].schema.clone();
            node = self.add(Operator::ChangelogNormalize(spec), vec![node], schema);
        }
        self.sources.insert(name.to_string(), node);
        Ok(node)
    }

    /// The normalization of an upsert table: by its PRIMARY KEY, which upsert-kafka requires.
    fn normalize_spec(&self, table: &TableDef) -> Result<ChangelogNormalizeSpec> {
        if table.primary_key.is_empty() {
            return Err(SqlError::plan(
                table.location,
                "'upsert-kafka' tables require to define a PRIMARY KEY constraint. The PRIMARY KEY specifies which \
                 columns should be read from or write to the Kafka message key. The PRIMARY KEY also defines records \
                 in the 'upsert-kafka' table should update or delete on which keys.",
            )
            .with_hint(format!("add PRIMARY KEY (..) NOT ENFORCED to table '{}'", table.name)));
        }
        let mut keys = Vec::with_capacity(table.primary_key.len());
        for k in &table.primary_key {
            let Some(i) = table.column_index(k) else {
                return Err(SqlError::plan(table.location, format!("PRIMARY KEY column '{k}' does not exist")));
            };
            keys.push(i);
        }
        Ok(ChangelogNormalizeSpec { keys, key_names: table.primary_key.clone() })
    }

    /// Flink rejects, at plan time, operators that cannot consume updates on an updating
    /// input; so does Eddy, for the nodes planned since `first`, with Flink's message naming
    /// the node where the stream starts updating. (Filter, Project, Unnest and Union pass
    /// row kinds through; sinks are checked against their connector when the job is built.)
    fn check_update_consumers(&self, first: NodeId) -> Result<()> {
        let plan = &self.plan;
        for id in first..plan.nodes.len() {
            let node = &plan.nodes[id];
            let Some(input) = node.inputs.iter().copied().find(|i| plan.nodes[*i].updating) else {
                continue;
            };
            let consumer = match &node.operator {
                Operator::WindowAggregate(_) => "StreamPhysicalWindowAggregate",
                Operator::WindowTopN(_) => "StreamPhysicalWindowRank",
                Operator::Deduplicate(_) => "StreamPhysicalDeduplicate",
                Operator::OverAggregate(_) => "StreamPhysicalOverAggregate",
                Operator::IntervalJoin(_) => "StreamPhysicalIntervalJoin",
                // Flink fuses a window table function into the window Top-N that reads it.
                Operator::WindowAssign(_) if !feeds_window_rank(plan, id) => "StreamPhysicalWindowTableFunction",
                _ => continue,
            };
            return Err(SqlError::plan(
                self.at,
                format!(
                    "{consumer} doesn't support consuming update and delete changes which is produced by node {}",
                    crate::explain::update_producer(plan, input)
                ),
            ));
        }
        Ok(())
    }

    /// DataFusion's Unnest of one list column, one level deep: every other output column is
    /// an input column repeated per element.
    fn convert_unnest(&mut self, u: &datafusion::logical_expr::Unnest, schema: SchemaRef) -> Result<NodeId> {
        let ([(list_column, list)], []) = (u.list_type_columns.as_slice(), u.struct_type_columns.as_slice()) else {
            return Err(self.unsupported("UNNEST of several columns or of a ROW", ""));
        };
        if list.depth != 1 {
            return Err(self.unsupported("nested UNNEST", ""));
        }
        let input = self.convert(&u.input)?;
        let spec = UnnestSpec { list_column: *list_column, output_sources: u.dependency_indices.clone() };
        Ok(self.add(Operator::Unnest(spec), vec![input], schema))
    }
}

/// Whether the rows of node `id` reach a window Top-N through projections and filters only.
fn feeds_window_rank(plan: &StreamPlan, id: NodeId) -> bool {
    plan.consumers(id).into_iter().any(|c| match &plan.nodes[c].operator {
        Operator::WindowTopN(_) => true,
        Operator::Project(_) | Operator::Filter(_) => feeds_window_rank(plan, c),
        _ => false,
    })
}

/// How EXPLAIN shows an expression: without aliases and without the generated relation
/// names of window table functions (`__window_tvf_0.price` is just `price` to the user).
/// `REGEXP_EXTRACT(..) IS NOT NULL` as `regexp_extract_is_not_null(..)`, which asks the
/// pattern only whether the group matched (see `functions::regexp`).
fn regexp_extract_tests(e: Expr) -> Expr {
    let rewritten = e.clone().transform_up(|e| match e {
        Expr::IsNotNull(inner) => match *inner {
            Expr::ScalarFunction(f) if f.func.name() == "regexp_extract" => {
                let udf = Arc::new(ScalarUDF::from(RegexpExtractIsNotNull::new()));
                Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(udf, f.args))))
            }
            other => Ok(Transformed::no(Expr::IsNotNull(Box::new(other)))),
        },
        other => Ok(Transformed::no(other)),
    });
    rewritten.map(|t| t.data).unwrap_or(e)
}

fn display_expr(e: &Expr) -> String {
    let text = e.clone().unalias().human_display().to_string();
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find(super::window_tvf::WINDOW_TVF_PREFIX) {
        out.push_str(&rest[..at]);
        let after = &rest[at + super::window_tvf::WINDOW_TVF_PREFIX.len()..];
        let digits = after.chars().take_while(|c| c.is_ascii_digit()).count();
        rest = after[digits..].strip_prefix('.').unwrap_or(&after[digits..]);
    }
    out.push_str(rest);
    // A versioned table is planned under a prefixed name (see `planner::temporal`).
    out.replace(super::temporal::VERSIONED_PREFIX, "")
}

/// Whether Flink would insert `from` into a column of type `to` without an explicit CAST:
/// within numbers, within strings, within timestamps/dates, NULL into anything.
fn implicitly_castable(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let numeric = |t: &DataType| t.is_numeric();
    let stringy = |t: &DataType| matches!(t, Utf8 | LargeUtf8 | Utf8View);
    let temporal = |t: &DataType| matches!(t, Timestamp(_, _) | Date32 | Date64);
    match (from, to) {
        (Null, _) => true,
        (a, b) if numeric(a) && numeric(b) => true,
        (a, b) if stringy(a) && stringy(b) => true,
        (a, b) if temporal(a) && temporal(b) => true,
        (Binary | LargeBinary | BinaryView, Binary | LargeBinary | BinaryView) => true,
        (List(_) | LargeList(_), List(_) | LargeList(_)) | (Map(_, _), Map(_, _)) | (Struct(_), Struct(_)) => {
            can_cast_types(from, to)
        }
        _ => false,
    }
}

impl TableDef {
    /// The table as a source reads it: its physical and metadata columns.
    pub fn source_spec(&self) -> TableSpec {
        let src_cols = self.source_columns();
        let metadata = src_cols
            .iter()
            .enumerate()
            .filter_map(|(pos, i)| match &self.columns[*i].kind {
                ColumnSource::Metadata { key, .. } => Some((pos, key.clone())),
                _ => None,
            })
            .collect();
        table_spec(self, self.schema_of(&src_cols), metadata)
    }
}

fn table_spec(table: &TableDef, schema: SchemaRef, metadata: Vec<(usize, String)>) -> TableSpec {
    TableSpec {
        name: table.name.clone(),
        schema,
        metadata,
        primary_key: table.primary_key.clone(),
        partition_keys: table.partitioned_by.clone(),
        distribution: table.distribution.as_ref().map(|d| (d.columns.clone(), d.buckets)),
        options: table.options.clone(),
        rowtime: table.watermark.as_ref().map(|w| w.column.clone()),
        unread: vec![],
    }
}

fn sink_parallelism(t: &TableDef) -> Option<usize> {
    t.option("sink.parallelism").and_then(|v| v.trim().parse().ok()).filter(|n| *n > 0)
}

fn scan_parallelism(t: &TableDef) -> Option<usize> {
    t.option("scan.parallelism").and_then(|v| v.trim().parse().ok()).filter(|n| *n > 0)
}
