//! Corrections to datafusion-pg-catalog's `pg_catalog` that real clients need, laid over it:
//! the schema answers with Eddy's version of a table where there is one, and with the
//! original otherwise.
//!
//! `pg_type`: Postgres' `typinput`/`typoutput`/`typreceive`/`typsend` are `regproc`, the
//! oid of a `pg_proc` row, and drivers join on it (Npgsql, which Power BI bundles:
//! `JOIN pg_proc ON pg_proc.oid = a.typreceive`). The snapshot holds the functions' names;
//! here they are the oids of the `pg_proc` rows of those names (0 for none, as `-` is).
//!
//! `pg_class`, `pg_index`, `pg_constraint`: primary keys (crate::pg_catalog_keys).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int32Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::prelude::SessionContext;

use datafusion::logical_expr::ScalarUDF;

use crate::pg_catalog_keys::{KeyDefinition, PgClass, PgConstraint, PgIndex, PrimaryKeys};
use crate::query::CATALOG;
use crate::ServerError;

/// `pg_catalog` with some tables replaced.
#[derive(Debug)]
struct Overlay {
    inner: Arc<dyn SchemaProvider>,
    tables: HashMap<String, Arc<dyn TableProvider>>,
}

#[async_trait]
impl SchemaProvider for Overlay {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        match self.tables.get(name) {
            Some(t) => Ok(Some(t.clone())),
            None => self.inner.table(name).await,
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.contains_key(name) || self.inner.table_exist(name)
    }
}

/// Lay the corrections over `pg_catalog` in `ctx` (after `setup_pg_catalog`).
pub async fn install(ctx: &SessionContext, keys: Arc<PrimaryKeys>) -> Result<(), ServerError> {
    let fail = |e: DataFusionError| ServerError::State(format!("pg_catalog: {e}"));
    let catalog = ctx.catalog(CATALOG).ok_or_else(|| ServerError::State(format!("no catalog '{CATALOG}'")))?;
    let Some(inner) = catalog.schema("pg_catalog") else { return Ok(()) };

    let procs = ctx.sql("SELECT proname, min(oid) FROM pg_catalog.pg_proc GROUP BY proname").await.map_err(fail)?;
    let mut oid_of: HashMap<String, i32> = HashMap::new();
    for b in procs.collect().await.map_err(fail)? {
        let names = arrow::compute::cast(b.column(0), &DataType::Utf8).map_err(|e| fail(e.into()))?;
        let oids = arrow::compute::cast(b.column(1), &DataType::Int32).map_err(|e| fail(e.into()))?;
        let (names, oids) = (names.as_string::<i32>(), oids.as_primitive::<arrow::datatypes::Int32Type>());
        for i in 0..b.num_rows() {
            if names.is_valid(i) && oids.is_valid(i) {
                oid_of.insert(names.value(i).to_string(), oids.value(i));
            }
        }
    }

    let types = ctx.sql("SELECT * FROM pg_catalog.pg_type").await.map_err(fail)?;
    let schema = Arc::new(types.schema().as_arrow().clone());
    let batches = types.collect().await.map_err(fail)?;
    let procs_columns = ["typinput", "typoutput", "typreceive", "typsend", "typmodin", "typmodout", "typanalyze"];
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if procs_columns.contains(&f.name().as_str()) && f.data_type() != &DataType::Int32 {
                Field::new(f.name(), DataType::Int32, f.is_nullable()).with_metadata(f.metadata().clone())
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    let new_schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(b.num_columns());
        for (f, c) in schema.fields().iter().zip(b.columns()) {
            if procs_columns.contains(&f.name().as_str()) && f.data_type() != &DataType::Int32 {
                let names = arrow::compute::cast(c, &DataType::Utf8).map_err(|e| fail(e.into()))?;
                let names = names.as_string::<i32>();
                let oids: Int32Array = (0..names.len())
                    .map(|i| names.is_valid(i).then(|| oid_of.get(names.value(i)).copied().unwrap_or(0)))
                    .collect();
                columns.push(Arc::new(oids));
            } else {
                columns.push(c.clone());
            }
        }
        out.push(RecordBatch::try_new(new_schema.clone(), columns).map_err(|e| fail(e.into()))?);
    }
    let pg_type = MemTable::try_new(new_schema, vec![out]).map_err(fail)?;

    let mut tables: HashMap<String, Arc<dyn TableProvider>> = HashMap::new();
    tables.insert("pg_type".into(), Arc::new(pg_type));
    let class = inner.table("pg_class").await.map_err(fail)?.ok_or_else(|| ServerError::State("no pg_class".into()))?;
    tables.insert("pg_class".into(), Arc::new(PgClass::new(class.clone(), keys.clone())));
    tables.insert("pg_index".into(), Arc::new(PgIndex::new(class.clone(), keys.clone())));
    tables.insert("pg_constraint".into(), Arc::new(PgConstraint::new(class, keys.clone())));
    ctx.register_udf(ScalarUDF::from(KeyDefinition::index(keys.clone())));
    ctx.register_udf(ScalarUDF::from(KeyDefinition::constraint(keys)));
    catalog
        .register_schema("pg_catalog", Arc::new(Overlay { inner, tables }))
        .map_err(|e| ServerError::State(format!("pg_catalog: {e}")))?;
    Ok(())
}
