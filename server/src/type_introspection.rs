//! asyncpg's type introspection, answered from `pg_catalog.pg_type`.
//!
//! asyncpg has built-in codecs for scalar types only; for any other type in a result or a
//! parameter (every array type: `int4[]`, `text[]`, ...) it runs one query, a recursive CTE
//! over `pg_type`, `pg_range` and `pg_attribute` whose shape DataFusion cannot plan
//! (correlated subqueries under `CASE`, a recursive CTE inside a scalar subquery). It must
//! also describe `$1` as `oid[]` and its array columns as `oid[]`/`text[]`, the only array
//! types asyncpg decodes before introspecting; anything else makes it introspect its own
//! introspection query, without end.
//!
//! So the query is recognised by its text and answered here with the rows Postgres gives:
//! the requested types and, transitively, their element, base and range subtypes, deepest
//! first. Eddy has no composite types, so `attrtypoids`/`attrnames` are NULL.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Int32Array, ListArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use datafusion::prelude::SessionContext;
use datafusion_postgres::arrow_pg::datatypes::{arrow_schema_to_pg_fields, PG_CHAR_KEY, PG_OID_ALIAS_KEY};
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::api::results::FieldInfo;
use datafusion_postgres::pgwire::api::Type;
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};

/// Whether `sql` is asyncpg's introspection query (all its versions share these).
pub fn is_type_introspection(sql: &str) -> bool {
    sql.contains("typeinfo_tree") && sql.contains("$1::oid[]")
}

/// `$1`'s type.
pub fn parameter_types() -> Vec<Type> {
    vec![Type::OID_ARRAY]
}

fn schema() -> SchemaRef {
    let meta = |k: &str, v: &str| HashMap::from([(k.to_string(), v.to_string())]);
    let oid = |name: &str, nullable: bool| {
        Field::new(name, DataType::Int32, nullable).with_metadata(meta(PG_OID_ALIAS_KEY, "oid"))
    };
    let char = |name: &str| Field::new(name, DataType::Utf8, true).with_metadata(meta(PG_CHAR_KEY, "char"));
    let list = |item: DataType| DataType::List(Arc::new(Field::new_list_field(item, true)));
    Arc::new(Schema::new(vec![
        oid("oid", false),
        Field::new("ns", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        char("kind"),
        oid("basetype", true),
        oid("elemtype", true),
        char("elemdelim"),
        oid("range_subtype", true),
        Field::new("attrtypoids", list(DataType::Int32), true),
        Field::new("attrnames", list(DataType::Utf8), true),
        Field::new("depth", DataType::Int32, false),
        Field::new("basetype_name", DataType::Utf8, true),
        Field::new("elemtype_name", DataType::Utf8, true),
        Field::new("range_subtype_name", DataType::Utf8, true),
    ]))
}

/// The result's columns as the client is told them (`attrtypoids` is `oid[]`,
/// `attrnames` `text[]`).
pub fn fields(format: &Format) -> PgWireResult<Vec<FieldInfo>> {
    let fields = arrow_schema_to_pg_fields(&schema(), format, None)?;
    Ok(fields
        .into_iter()
        .map(|f| {
            let datatype = match f.name() {
                "attrtypoids" => Type::OID_ARRAY,
                "attrnames" => Type::TEXT_ARRAY,
                _ => return f,
            };
            FieldInfo::new(f.name().to_string(), f.table_id(), f.column_id(), datatype, f.format())
                .with_format_options(f.format_options().clone())
        })
        .collect())
}

/// The oids in `$1`, an `oid[]` in the binary or text format.
pub fn requested_oids(raw: Option<&[u8]>, binary: bool) -> PgWireResult<Vec<i32>> {
    let bad = |why: &str| {
        PgWireError::UserError(Box::new(ErrorInfo::new(
            "ERROR".into(),
            "22P02".into(),
            format!("type introspection: $1 is not an oid[] ({why})"),
        )))
    };
    let Some(raw) = raw else { return Ok(Vec::new()) };
    if !binary {
        let text = std::str::from_utf8(raw).map_err(|_| bad("not UTF-8"))?;
        let inner = text.trim().trim_start_matches('{').trim_end_matches('}');
        return inner
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("null"))
            .map(|s| s.parse::<u32>().map(|o| o as i32).map_err(|_| bad("an element is not a number")))
            .collect();
    }
    // ndim, has-nulls flag, element type, then (length, lower bound) per dimension and
    // each element as (length, bytes).
    let word = |at: usize| -> PgWireResult<i32> {
        let b = raw.get(at..at + 4).ok_or_else(|| bad("truncated"))?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let ndim = word(0)?;
    if ndim == 0 {
        return Ok(Vec::new());
    }
    if ndim != 1 {
        return Err(bad("more than one dimension"));
    }
    let len = word(12)?;
    let mut at = 20;
    let mut oids = Vec::with_capacity(len.max(0) as usize);
    for _ in 0..len {
        let n = word(at)?;
        at += 4;
        if n == -1 {
            continue;
        }
        if n != 4 {
            return Err(bad("an element is not 4 bytes"));
        }
        oids.push(word(at)?);
        at += 4;
    }
    Ok(oids)
}

/// One `pg_type` row, as far as the answer needs it.
struct TypeRow {
    ns: String,
    name: String,
    kind: String,
    len: i32,
    elem: i32,
    delim: String,
    base: i32,
}

/// The answer for `oids`: each type and what it is made of, deepest first.
pub async fn answer(ctx: &SessionContext, oids: &[i32]) -> PgWireResult<(SchemaRef, Vec<RecordBatch>)> {
    let fail = |e: datafusion::error::DataFusionError| PgWireError::ApiError(Box::new(e));
    let types = ctx
        .sql(
            "SELECT CAST(t.oid AS INT), CAST(n.nspname AS TEXT), CAST(t.typname AS TEXT), CAST(t.typtype AS TEXT), \
             CAST(t.typlen AS INT), CAST(t.typelem AS INT), CAST(t.typdelim AS TEXT), CAST(t.typbasetype AS INT) \
             FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace",
        )
        .await
        .map_err(fail)?
        .collect()
        .await
        .map_err(fail)?;
    let mut by_oid: HashMap<i32, TypeRow> = HashMap::new();
    // Read through casts: the catalog's columns are Utf8View or Utf8, Int16 or Int32.
    let cast_fail = |e: arrow::error::ArrowError| PgWireError::ApiError(Box::new(e));
    let as_type = |b: &RecordBatch, i: usize, t: &DataType| arrow::compute::cast(b.column(i), t).map_err(cast_fail);
    for b in &types {
        let int = |i: usize| -> PgWireResult<Int32Array> {
            Ok(as_type(b, i, &DataType::Int32)?.as_primitive::<Int32Type>().clone())
        };
        let text =
            |i: usize| -> PgWireResult<StringArray> { Ok(as_type(b, i, &DataType::Utf8)?.as_string::<i32>().clone()) };
        let (oid, ns, name, kind, len, elem, delim, base) =
            (int(0)?, text(1)?, text(2)?, text(3)?, int(4)?, int(5)?, text(6)?, int(7)?);
        for r in 0..b.num_rows() {
            by_oid.insert(
                oid.value(r),
                TypeRow {
                    ns: ns.value(r).to_string(),
                    name: name.value(r).to_string(),
                    kind: kind.value(r).to_string(),
                    len: len.value(r),
                    elem: elem.value(r),
                    delim: delim.value(r).to_string(),
                    base: base.value(r),
                },
            );
        }
    }
    let ranges = ctx
        .sql("SELECT CAST(rngtypid AS INT), CAST(rngsubtype AS INT) FROM pg_catalog.pg_range")
        .await
        .map_err(fail)?
        .collect()
        .await
        .map_err(fail)?;
    let mut subtype: HashMap<i32, i32> = HashMap::new();
    for b in &ranges {
        let (t, s) = (as_type(b, 0, &DataType::Int32)?, as_type(b, 1, &DataType::Int32)?);
        let (t, s) = (t.as_primitive::<Int32Type>(), s.as_primitive::<Int32Type>());
        for r in 0..b.num_rows() {
            subtype.insert(t.value(r), s.value(r));
        }
    }

    // Breadth first from the requested types; a type reached twice keeps its first depth.
    let mut rows: Vec<(i32, i32)> = Vec::new();
    let mut seen = HashSet::new();
    let mut frontier: Vec<i32> = oids.to_vec();
    let mut depth = 0;
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for oid in frontier {
            let Some(t) = by_oid.get(&oid) else { continue };
            if !seen.insert(oid) {
                continue;
            }
            rows.push((oid, depth));
            for part in [t.elem, if t.kind == "d" { t.base } else { 0 }, subtype.get(&oid).copied().unwrap_or(0)] {
                if part != 0 {
                    next.push(part);
                }
            }
        }
        frontier = next;
        depth += 1;
    }
    rows.sort_by_key(|(_, depth)| std::cmp::Reverse(*depth));

    let get = |oid: &i32| by_oid.get(oid);
    let name_of = |oid: Option<i32>| oid.and_then(|o| get(&o)).map(|t| t.name.clone());
    let elem_delim =
        |t: &TypeRow| (t.len == -1 && t.elem != 0).then(|| get(&t.elem).map(|e| e.delim.clone())).flatten();
    let base = |t: &TypeRow| (t.kind == "d").then_some(t.base);
    let range = |oid: &i32| subtype.get(oid).copied();
    let types: Vec<&TypeRow> = rows.iter().filter_map(|(oid, _)| get(oid)).collect();
    let schema = schema();
    let n = rows.len();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|(oid, _)| *oid))),
        Arc::new(StringArray::from_iter_values(types.iter().map(|t| t.ns.as_str()))),
        Arc::new(StringArray::from_iter_values(types.iter().map(|t| t.name.as_str()))),
        Arc::new(StringArray::from_iter_values(types.iter().map(|t| t.kind.as_str()))),
        Arc::new(types.iter().map(|t| base(t)).collect::<Int32Array>()),
        Arc::new(Int32Array::from_iter_values(types.iter().map(|t| t.elem))),
        Arc::new(types.iter().map(|t| elem_delim(t)).collect::<StringArray>()),
        Arc::new(rows.iter().map(|(oid, _)| range(oid)).collect::<Int32Array>()),
        Arc::new(ListArray::new_null(Arc::new(Field::new_list_field(DataType::Int32, true)), n)),
        Arc::new(ListArray::new_null(Arc::new(Field::new_list_field(DataType::Utf8, true)), n)),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|(_, depth)| *depth))),
        Arc::new(types.iter().map(|t| name_of(base(t))).collect::<StringArray>()),
        Arc::new(types.iter().map(|t| name_of((t.elem != 0).then_some(t.elem))).collect::<StringArray>()),
        Arc::new(rows.iter().map(|(oid, _)| name_of(range(oid))).collect::<StringArray>()),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    Ok((schema, vec![batch]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oid_arrays_in_both_formats() {
        // ndim 1, no nulls, element oid 26; one dimension of 2 from 1; 1007 and 23.
        let mut raw = Vec::new();
        for w in [1i32, 0, 26, 2, 1, 4, 1007, 4, 23] {
            raw.extend_from_slice(&w.to_be_bytes());
        }
        assert_eq!(requested_oids(Some(&raw), true).unwrap(), vec![1007, 23]);
        assert_eq!(requested_oids(Some(b"{1007,23}"), false).unwrap(), vec![1007, 23]);
        assert!(requested_oids(Some(&raw[..10]), true).is_err());
    }

    #[test]
    fn recognises_asyncpg_query() {
        assert!(is_type_introspection(
            "WITH RECURSIVE typeinfo_tree(oid) AS (SELECT ... WHERE ti.oid = any($1::oid[]))"
        ));
        assert!(!is_type_introspection("SELECT * FROM typeinfo_tree"));
    }
}
