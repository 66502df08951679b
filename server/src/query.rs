//! Ad-hoc queries: a DataFusion context in which every result table is a table.
//!
//! A scan takes the table's [`Snapshot`](eddy_engine::result_table::Snapshot) at that moment
//! (whole batches only, never half of one a job is applying) and reads it from memory.
//! `pg_catalog` (datafusion-pg-catalog) and DataFusion's `information_schema` describe the
//! same tables, so Postgres clients can list them and their columns.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog;
use eddy_engine::result_table::ResultTable;
use eddy_sql::plan::TableSpec;

use crate::ServerError;

/// The catalog and schema result tables appear in (`datafusion.public.t`).
pub const CATALOG: &str = "eddy";
/// See [`CATALOG`].
pub const SCHEMA: &str = "public";

/// A context for ad-hoc queries, with `pg_catalog`, `information_schema` and Flink's
/// functions (DATE_FORMAT, ...) as the streaming planner has them.
pub fn query_context() -> Result<SessionContext, ServerError> {
    let config = SessionConfig::new()
        // Ours (crate::info_schema): Postgres type names, primary keys.
        .with_information_schema(false)
        .with_default_catalog_and_schema(CATALOG, SCHEMA)
        .set_str("datafusion.execution.time_zone", "+00:00");
    let ctx = SessionContext::new_with_config(config);
    for f in eddy_sql::functions::flink_functions() {
        ctx.register_udf(f.as_ref().clone());
    }
    setup_pg_catalog(&ctx, CATALOG, EmptyContextProvider)
        .map_err(|e| ServerError::State(format!("pg_catalog: {e}")))?;
    // After pg_catalog's, so version() and friends answer as PostgreSQL does.
    crate::pg_compat::register_functions(&ctx);
    crate::info_schema::refresh(&ctx, &[])?;
    Ok(ctx)
}

/// Make `table` queryable under its name (replacing an earlier table of that name).
pub fn register(ctx: &SessionContext, table: Arc<ResultTable>) -> Result<(), ServerError> {
    let name = table.name().to_string();
    ctx.deregister_table(name.as_str()).map_err(|e| ServerError::State(e.to_string()))?;
    ctx.register_table(name.as_str(), Arc::new(ResultTableProvider { table }))
        .map_err(|e| ServerError::State(format!("cannot register table '{name}': {e}")))?;
    Ok(())
}

/// Forget a table.
pub fn deregister(ctx: &SessionContext, name: &str) {
    let _ = ctx.deregister_table(name);
}

/// A result table as DataFusion reads it.
#[derive(Debug)]
struct ResultTableProvider {
    table: Arc<ResultTable>,
}

#[async_trait]
impl TableProvider for ResultTableProvider {
    fn schema(&self) -> SchemaRef {
        self.table.schema().clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// `key = literal` on every PRIMARY KEY column is answered from the key index (a point
    /// lookup reads one row, not a snapshot of the table); other filters are DataFusion's.
    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match key_equality(f, self.table.primary_key()) {
                Some(_) => TableProviderFilterPushDown::Inexact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if let Some(key) = point_key(filters, self.table.primary_key(), &self.schema()) {
            // Inexact: DataFusion still applies the filters to the row found.
            let rows = self.table.lookup(&key).map_err(|e| DataFusionError::External(Box::new(e)))?;
            let batches: Vec<RecordBatch> = rows.into_iter().collect();
            return Ok(MemorySourceConfig::try_new_exec(&[batches], self.schema(), projection.cloned())?);
        }
        let snapshot = self.table.snapshot();
        // One partition per two segments' worth is not worth it here: the batches are in
        // memory already; DataFusion repartitions where an operator gains from it.
        let exec = MemorySourceConfig::try_new_exec(&[snapshot.batches], self.schema(), projection.cloned())?;
        Ok(exec)
    }
}

/// `column = literal` (either way round) where the column is one of `key`: (column, value).
fn key_equality<'a>(filter: &'a Expr, key: &[String]) -> Option<(&'a str, &'a ScalarValue)> {
    let Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) = filter else { return None };
    let pair = match (left.as_ref(), right.as_ref()) {
        (Expr::Column(c), Expr::Literal(v, _)) | (Expr::Literal(v, _), Expr::Column(c)) => (c.name.as_str(), v),
        _ => return None,
    };
    (key.iter().any(|k| k == pair.0) && !pair.1.is_null()).then_some(pair)
}

/// The primary key a conjunction of `filters` pins down, as one-value arrays of the key
/// columns' types; `None` unless every key column has an equality.
fn point_key(filters: &[Expr], key: &[String], schema: &SchemaRef) -> Option<Vec<ArrayRef>> {
    if key.is_empty() {
        return None;
    }
    let mut values = Vec::with_capacity(key.len());
    for k in key {
        let value = filters.iter().filter_map(|f| key_equality(f, key)).find(|(c, _)| *c == k.as_str())?.1;
        let field = schema.field_with_name(k).ok()?;
        let array = value.to_array_of_size(1).ok()?;
        let array = arrow::compute::cast(&array, field.data_type()).ok()?;
        if array.null_count() > 0 {
            return None;
        }
        values.push(array);
    }
    Some(values)
}

/// Make a connector table (Kafka, files, datagen...) queryable: each query reads it as a
/// bounded scan — a Kafka topic from its startup position (the earliest offsets unless the
/// table says otherwise) up to the latest offsets at the time of the query, with a group of
/// its own (it commits nothing the table's jobs would see).
pub fn register_connector_table(ctx: &SessionContext, spec: TableSpec) -> Result<(), ServerError> {
    let name = spec.name.clone();
    ctx.deregister_table(name.as_str()).map_err(|e| ServerError::State(e.to_string()))?;
    ctx.register_table(name.as_str(), Arc::new(ConnectorScan { spec }))
        .map_err(|e| ServerError::State(format!("cannot register table '{name}': {e}")))?;
    Ok(())
}

/// A connector table read to its end for one query.
#[derive(Debug)]
struct ConnectorScan {
    spec: TableSpec,
}

impl ConnectorScan {
    /// The table's options for a bounded read of its current contents.
    fn bounded_table(&self) -> eddy_connectors::ConnectorTable {
        let mut table = eddy_engine::job::connector_table(&self.spec);
        let connector = self.spec.connector().to_ascii_lowercase();
        if connector == "kafka" {
            let mut options: Vec<(String, String)> = self.spec.options.clone();
            let mut set = |k: &str, v: String, keep: bool| {
                if let Some(o) = options.iter_mut().find(|(key, _)| key == k) {
                    if !keep {
                        o.1 = v;
                    }
                } else {
                    options.push((k.to_string(), v));
                }
            };
            set("scan.startup.mode", "earliest-offset".into(), true);
            set("scan.bounded.mode", "latest-offset".into(), true);
            set("properties.group.id", format!("eddy-adhoc-{:016x}", rand::random::<u64>()), false);
            table.options = eddy_connectors::Options::new(options);
        }
        table
    }
}

#[async_trait]
impl TableProvider for ConnectorScan {
    fn schema(&self) -> SchemaRef {
        self.spec.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let table = self.bounded_table();
        let fail = |e: eddy_connectors::ConnectorError| DataFusionError::External(Box::new(e));
        if !eddy_connectors::is_bounded(&table).map_err(fail)? {
            return Err(DataFusionError::Plan(format!(
                "table '{}' never ends (connector '{}' without a bound, e.g. datagen without 'number-of-rows'), \
                 so it cannot be queried ad hoc; write it into a result table with INSERT INTO and query that",
                self.spec.name,
                self.spec.connector()
            )));
        }
        let mut source =
            eddy_connectors::create_source(&table, eddy_connectors::Split { index: 0, count: 1 }).map_err(fail)?;
        let mut batches = Vec::new();
        while let Some(b) = source.next_batch().await.map_err(fail)? {
            if b.row_kinds.is_some() {
                return Err(DataFusionError::Plan(format!(
                    "table '{}' is a changelog (upsert or CDC); query the result table a job keeps from it instead",
                    self.spec.name
                )));
            }
            if b.batch.num_rows() > 0 {
                batches.push(b.batch);
            }
        }
        Ok(MemorySourceConfig::try_new_exec(&[batches], self.schema(), projection.cloned())?)
    }
}
