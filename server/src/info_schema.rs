//! `information_schema` as Postgres clients read it: Postgres type names (`bigint`,
//! `timestamp without time zone`), `YES`/`NO` nullability, primary keys in
//! `table_constraints`/`key_column_usage`. DataFusion's own lists Arrow type names, which
//! BI tools (Grafana's query builder, DBeaver) do not understand.
//!
//! The tables are rebuilt after every DDL statement (the catalog changes only then), so a
//! query reads plain in-memory tables.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use crate::query::{CATALOG, SCHEMA};
use crate::ServerError;

/// A table as information_schema describes it.
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// Name.
    pub name: String,
    /// Columns.
    pub schema: SchemaRef,
    /// Primary key columns (empty: none).
    pub primary_key: Vec<String>,
}

/// Postgres' name of an Arrow type (`data_type`) and its `udt_name`.
pub fn pg_type_name(t: &DataType) -> (&'static str, &'static str) {
    match t {
        DataType::Boolean => ("boolean", "bool"),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => ("smallint", "int2"),
        DataType::Int32 | DataType::UInt16 => ("integer", "int4"),
        DataType::Int64 | DataType::UInt32 => ("bigint", "int8"),
        DataType::UInt64
        | DataType::Decimal32(_, _)
        | DataType::Decimal64(_, _)
        | DataType::Decimal128(_, _)
        | DataType::Decimal256(_, _) => ("numeric", "numeric"),
        DataType::Float16 | DataType::Float32 => ("real", "float4"),
        DataType::Float64 => ("double precision", "float8"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ("text", "text"),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
            ("bytea", "bytea")
        }
        DataType::Date32 | DataType::Date64 => ("date", "date"),
        DataType::Time32(_) | DataType::Time64(_) => ("time without time zone", "time"),
        DataType::Timestamp(_, None) => ("timestamp without time zone", "timestamp"),
        DataType::Timestamp(_, Some(_)) => ("timestamp with time zone", "timestamptz"),
        DataType::Interval(_) | DataType::Duration(_) => ("interval", "interval"),
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _) => ("ARRAY", "_text"),
        _ => ("USER-DEFINED", "record"),
    }
}

fn precision(t: &DataType) -> (Option<i32>, Option<i32>, Option<i32>) {
    match t {
        DataType::Int16 | DataType::Int8 | DataType::UInt8 => (Some(16), Some(0), None),
        DataType::Int32 | DataType::UInt16 => (Some(32), Some(0), None),
        DataType::Int64 | DataType::UInt32 => (Some(64), Some(0), None),
        DataType::Float32 => (Some(24), None, None),
        DataType::Float64 => (Some(53), None, None),
        DataType::Decimal128(p, s) => (Some(i32::from(*p)), Some(i32::from(*s)), None),
        DataType::Timestamp(unit, _) | DataType::Time64(unit) | DataType::Time32(unit) => {
            let digits = match unit {
                TimeUnit::Second => 0,
                TimeUnit::Millisecond => 3,
                TimeUnit::Microsecond => 6,
                TimeUnit::Nanosecond => 9,
            };
            (None, None, Some(digits))
        }
        DataType::Date32 | DataType::Date64 => (None, None, Some(0)),
        _ => (None, None, None),
    }
}

fn text(values: Vec<Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from(values))
}

fn same(value: &str, n: usize) -> ArrayRef {
    text(vec![Some(value.to_string()); n])
}

fn int(values: Vec<Option<i32>>) -> ArrayRef {
    Arc::new(Int32Array::from(values))
}

fn table(fields: &[(&str, DataType)], columns: Vec<ArrayRef>) -> Result<Arc<MemTable>, ServerError> {
    let schema = Arc::new(Schema::new(fields.iter().map(|(n, t)| Field::new(*n, t.clone(), true)).collect::<Vec<_>>()));
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| ServerError::State(e.to_string()))?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]]).map_err(|e| ServerError::State(e.to_string()))?))
}

/// Replace `information_schema` in `ctx` with one describing `tables`.
pub fn refresh(ctx: &SessionContext, tables: &[TableInfo]) -> Result<(), ServerError> {
    let utf8 = DataType::Utf8;
    let schema = Arc::new(MemorySchemaProvider::new());
    let reg = |name: &str, t: Arc<MemTable>| {
        schema.register_table(name.to_string(), t).map(|_| ()).map_err(|e| ServerError::State(e.to_string()))
    };

    let n = tables.len();
    reg(
        "tables",
        table(
            &[
                ("table_catalog", utf8.clone()),
                ("table_schema", utf8.clone()),
                ("table_name", utf8.clone()),
                ("table_type", utf8.clone()),
                ("is_insertable_into", utf8.clone()),
            ],
            vec![
                same(CATALOG, n),
                same(SCHEMA, n),
                text(tables.iter().map(|t| Some(t.name.clone())).collect()),
                same("BASE TABLE", n),
                same("NO", n),
            ],
        )?,
    )?;

    let mut col =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for t in tables {
        for (i, f) in t.schema.fields().iter().enumerate() {
            let (data_type, udt) = pg_type_name(f.data_type());
            let (p, s, d) = precision(f.data_type());
            col.0.push(Some(t.name.clone()));
            col.1.push(Some(f.name().clone()));
            col.2.push(Some(i as i32 + 1));
            col.3.push(Some(if f.is_nullable() { "YES" } else { "NO" }.to_string()));
            col.4.push(Some(data_type.to_string()));
            col.5.push(Some(udt.to_string()));
            col.6.push(p);
            col.7.push(s);
            col.8.push(d);
        }
    }
    let m = col.0.len();
    reg(
        "columns",
        table(
            &[
                ("table_catalog", utf8.clone()),
                ("table_schema", utf8.clone()),
                ("table_name", utf8.clone()),
                ("column_name", utf8.clone()),
                ("ordinal_position", DataType::Int32),
                ("column_default", utf8.clone()),
                ("is_nullable", utf8.clone()),
                ("data_type", utf8.clone()),
                ("character_maximum_length", DataType::Int32),
                ("numeric_precision", DataType::Int32),
                ("numeric_scale", DataType::Int32),
                ("datetime_precision", DataType::Int32),
                ("udt_catalog", utf8.clone()),
                ("udt_schema", utf8.clone()),
                ("udt_name", utf8.clone()),
                ("is_updatable", utf8.clone()),
            ],
            vec![
                same(CATALOG, m),
                same(SCHEMA, m),
                text(col.0),
                text(col.1),
                int(col.2),
                text(vec![None; m]),
                text(col.3),
                text(col.4),
                int(vec![None; m]),
                int(col.6),
                int(col.7),
                int(col.8),
                same(CATALOG, m),
                same("pg_catalog", m),
                text(col.5),
                same("NO", m),
            ],
        )?,
    )?;

    let schemas = ["public", "information_schema", "pg_catalog"];
    reg(
        "schemata",
        table(
            &[("catalog_name", utf8.clone()), ("schema_name", utf8.clone()), ("schema_owner", utf8.clone())],
            vec![same(CATALOG, 3), text(schemas.iter().map(|s| Some(s.to_string())).collect()), same("eddy", 3)],
        )?,
    )?;

    let keyed: Vec<&TableInfo> = tables.iter().filter(|t| !t.primary_key.is_empty()).collect();
    let k = keyed.len();
    let constraint = |t: &TableInfo| Some(format!("{}_pkey", t.name));
    reg(
        "table_constraints",
        table(
            &[
                ("constraint_catalog", utf8.clone()),
                ("constraint_schema", utf8.clone()),
                ("constraint_name", utf8.clone()),
                ("table_catalog", utf8.clone()),
                ("table_schema", utf8.clone()),
                ("table_name", utf8.clone()),
                ("constraint_type", utf8.clone()),
                ("is_deferrable", utf8.clone()),
                ("initially_deferred", utf8.clone()),
            ],
            vec![
                same(CATALOG, k),
                same(SCHEMA, k),
                text(keyed.iter().map(|t| constraint(t)).collect()),
                same(CATALOG, k),
                same(SCHEMA, k),
                text(keyed.iter().map(|t| Some(t.name.clone())).collect()),
                same("PRIMARY KEY", k),
                same("NO", k),
                same("NO", k),
            ],
        )?,
    )?;
    let (mut names, mut tabs, mut cols, mut pos) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for t in &keyed {
        for (i, c) in t.primary_key.iter().enumerate() {
            names.push(constraint(t));
            tabs.push(Some(t.name.clone()));
            cols.push(Some(c.clone()));
            pos.push(Some(i as i32 + 1));
        }
    }
    let kc = names.len();
    reg(
        "key_column_usage",
        table(
            &[
                ("constraint_catalog", utf8.clone()),
                ("constraint_schema", utf8.clone()),
                ("constraint_name", utf8.clone()),
                ("table_catalog", utf8.clone()),
                ("table_schema", utf8.clone()),
                ("table_name", utf8.clone()),
                ("column_name", utf8.clone()),
                ("ordinal_position", DataType::Int32),
                ("position_in_unique_constraint", DataType::Int32),
            ],
            vec![
                same(CATALOG, kc),
                same(SCHEMA, kc),
                text(names),
                same(CATALOG, kc),
                same(SCHEMA, kc),
                text(tabs),
                text(cols),
                int(pos),
                int(vec![None; kc]),
            ],
        )?,
    )?;
    // Result tables have no foreign keys; the table exists so that the query works.
    reg(
        "referential_constraints",
        table(
            &[
                ("constraint_catalog", utf8.clone()),
                ("constraint_schema", utf8.clone()),
                ("constraint_name", utf8.clone()),
                ("unique_constraint_catalog", utf8.clone()),
                ("unique_constraint_schema", utf8.clone()),
                ("unique_constraint_name", utf8.clone()),
                ("match_option", utf8.clone()),
                ("update_rule", utf8.clone()),
                ("delete_rule", utf8.clone()),
            ],
            (0..9).map(|_| text(vec![])).collect(),
        )?,
    )?;
    reg(
        "views",
        table(
            &[
                ("table_catalog", utf8.clone()),
                ("table_schema", utf8.clone()),
                ("table_name", utf8.clone()),
                ("view_definition", utf8.clone()),
            ],
            (0..4).map(|_| text(vec![])).collect(),
        )?,
    )?;

    let catalog = ctx.catalog(CATALOG).ok_or_else(|| ServerError::State(format!("no catalog '{CATALOG}'")))?;
    catalog
        .register_schema("information_schema", schema)
        .map_err(|e| ServerError::State(format!("information_schema: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_have_postgres_type_names() {
        let ctx = crate::query::query_context().unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]));
        refresh(&ctx, &[TableInfo { name: "t".into(), schema, primary_key: vec!["k".into()] }]).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let rows = rt.block_on(async {
            let df = ctx
                .sql("SELECT column_name, data_type, is_nullable, datetime_precision FROM information_schema.columns ORDER BY ordinal_position")
                .await
                .unwrap();
            arrow::util::pretty::pretty_format_batches(&df.collect().await.unwrap()).unwrap().to_string()
        });
        assert!(rows.contains("| k           | bigint                      | NO          |"), "{rows}");
        assert!(rows.contains("| ts          | timestamp without time zone | YES         | 3 "), "{rows}");
        let keys = rt.block_on(async {
            let df =
                ctx.sql("SELECT constraint_name, column_name FROM information_schema.key_column_usage").await.unwrap();
            arrow::util::pretty::pretty_format_batches(&df.collect().await.unwrap()).unwrap().to_string()
        });
        assert!(keys.contains("t_pkey"), "{keys}");
    }
}
