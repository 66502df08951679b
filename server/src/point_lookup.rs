//! Prepared point lookups without the query engine: `SELECT <columns> FROM t WHERE <key> = $n`
//! on a result table whose PRIMARY KEY is that one column is answered straight from the
//! table's key index when the portal executes. Planning, optimizing and running such a
//! query in DataFusion costs far more than the lookup itself, and dashboards and services
//! send it over and over (issue 5's target: 5 k lookups/s under ingest).
//!
//! The plan DataFusion made at Parse time decides whether a statement qualifies (and gave
//! the client its result columns); anything else goes the general way.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Schema};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator};
use datafusion_postgres::arrow_pg::datatypes::df::deserialize_parameters;
use datafusion_postgres::arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use datafusion_postgres::pgwire::api::portal::Portal;
use datafusion_postgres::pgwire::api::results::{QueryResponse, Response};
use datafusion_postgres::pgwire::error::PgWireResult;
use eddy_engine::result_table::ResultTables;

/// What a qualifying plan asks: the table, the key column, the placeholder, the columns.
struct Lookup<'a> {
    table: String,
    key: &'a str,
    placeholder: &'a str,
    columns: Vec<&'a str>,
}

/// `Projection(columns) <- Filter(key = $n) <- TableScan(t)`.
fn shape(plan: &LogicalPlan) -> Option<Lookup<'_>> {
    let LogicalPlan::Projection(p) = plan else { return None };
    let LogicalPlan::Filter(f) = p.input.as_ref() else { return None };
    let LogicalPlan::TableScan(scan) = f.input.as_ref() else { return None };
    if scan.fetch.is_some() || !scan.filters.is_empty() {
        return None;
    }
    let Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) = &f.predicate else { return None };
    let (key, placeholder) = match (left.as_ref(), right.as_ref()) {
        (Expr::Column(c), Expr::Placeholder(ph)) | (Expr::Placeholder(ph), Expr::Column(c)) => {
            (c.name.as_str(), ph.id.as_str())
        }
        _ => return None,
    };
    let mut columns = Vec::with_capacity(p.expr.len());
    for e in &p.expr {
        let Expr::Column(c) = e else { return None };
        columns.push(c.name.as_str());
    }
    Some(Lookup { table: scan.table_name.table().to_string(), key, placeholder, columns })
}

/// The answer to `portal`, if its statement is a point lookup this module serves.
pub fn try_answer<S: Clone>(
    tables: &ResultTables,
    plan: &LogicalPlan,
    portal: &Portal<S>,
) -> Option<PgWireResult<Response>> {
    let Some(lookup) = shape(plan) else {
        tracing::trace!(plan = %plan.display_indent(), "not a point lookup");
        return None;
    };
    let Some(table) = tables.get(&lookup.table) else {
        tracing::trace!(table = %lookup.table, "not a result table");
        return None;
    };
    if table.primary_key() != [lookup.key.to_string()] {
        tracing::trace!(table = %lookup.table, key = lookup.key, "not the whole primary key");
        return None;
    }
    let schema = table.schema().clone();
    let key_type: DataType = schema.field_with_name(lookup.key).ok()?.data_type().clone();
    let index: usize = lookup.placeholder.strip_prefix('$')?.parse().ok()?;
    if index != 1 {
        return None;
    }
    let params = match deserialize_parameters(portal, &[Some(&key_type)]) {
        Ok(p) => p,
        Err(e) => return Some(Err(e)),
    };
    let value: ScalarValue = match params.get_placeholders_with_values(lookup.placeholder) {
        Ok(v) => v.value,
        Err(e) => {
            tracing::trace!(error = %e, "no parameter value");
            return None;
        }
    };
    let projection: Vec<usize> = lookup.columns.iter().map(|c| schema.index_of(c).ok()).collect::<Option<_>>()?;
    let out_schema = Arc::new(Schema::new(projection.iter().map(|i| schema.field(*i).clone()).collect::<Vec<_>>()));
    let fields = match arrow_schema_to_pg_fields(&out_schema, &portal.result_column_format, None) {
        Ok(f) => Arc::new(f.iter().map(crate::pg_compat::pg_field).collect::<Vec<_>>()),
        Err(e) => return Some(Err(e)),
    };
    // A NULL key or one that does not fit the column's type matches nothing.
    let row = if value.is_null() {
        None
    } else {
        let key = value.to_array_of_size(1).ok().and_then(|a| arrow::compute::cast(&a, &key_type).ok())?;
        match table.lookup(&[key]) {
            Ok(row) => row,
            Err(_) => return None,
        }
    };
    tracing::debug!(table = %lookup.table, found = row.is_some(), "point lookup from the key index");
    let mut rows = Vec::new();
    if let Some(row) = row {
        match row.project(&projection) {
            Ok(b) => rows.extend(encode_recordbatch(fields.clone(), RecordBatch::from(b))),
            Err(_) => return None,
        }
    }
    Some(Ok(Response::Query(QueryResponse::new(fields, futures::stream::iter(rows)))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Field;
    use datafusion::datasource::MemTable;

    #[test]
    fn a_prepared_lookup_by_key_has_the_shape_served_here() {
        let ctx = crate::query::query_context().unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int32, false),
            Field::new("v", DataType::Int64, true),
        ]));
        ctx.register_table("t", Arc::new(MemTable::try_new(schema, vec![vec![]]).unwrap())).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let plan = rt.block_on(ctx.state().create_logical_plan("SELECT v, k FROM t WHERE k = $1")).unwrap();
        let l = shape(&plan).unwrap_or_else(|| panic!("not served:\n{}", plan.display_indent()));
        assert_eq!((l.table.as_str(), l.key, l.placeholder, l.columns), ("t", "k", "$1", vec!["v", "k"]));
        let other = rt.block_on(ctx.state().create_logical_plan("SELECT v FROM t WHERE k > $1")).unwrap();
        assert!(shape(&other).is_none());
    }
}
