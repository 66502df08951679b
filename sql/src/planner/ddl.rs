//! DDL: CREATE TABLE / VIEW, DROP, DESCRIBE and SHOW CREATE against the catalog.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::{DataType, Schema, TimeUnit};
use datafusion::common::DFSchema;
use sqlparser::ast::{Expr as SqlExpr, Ident, ObjectName};

use super::query::{df_error, plan_query, sql_to_rel};
use super::rewrite::rewrite_flink_syntax;
use super::{ResultRows, Session};
use crate::ast::{ColumnKind, CreateTable, CreateView, DropObject, Insert};
use crate::catalog::{table_key, CatalogEntry, Column, ColumnSource, TableDef, ViewDef};
use crate::error::{Location, Result, SqlError};
use crate::types::FlinkType;

impl Session {
    /// Register a table. For `CREATE TABLE ... AS SELECT` returns the INSERT that fills it.
    pub(crate) fn create_table(&mut self, ct: &CreateTable) -> Result<Option<Insert>> {
        let name = table_key(&ct.name, ct.name_location)?;
        if self.catalog.contains(&name) {
            if ct.if_not_exists {
                return Ok(None);
            }
            return Err(SqlError::plan(ct.name_location, format!("table or view '{name}' already exists"))
                .with_hint(format!("use CREATE TABLE IF NOT EXISTS, or DROP TABLE {name} first")));
        }
        let mut columns: Vec<Column> = Vec::new();
        let mut seen = HashSet::new();
        for c in &ct.columns {
            if !seen.insert(c.name.clone()) {
                return Err(SqlError::plan(c.location, format!("column '{}' is declared twice", c.name)));
            }
            let (data_type, kind) = match &c.kind {
                ColumnKind::Physical(t) => (t.clone(), ColumnSource::Physical),
                ColumnKind::Metadata { data_type, key, virtual_ } => (
                    data_type.clone(),
                    ColumnSource::Metadata { key: key.clone().unwrap_or_else(|| c.name.clone()), virtual_: *virtual_ },
                ),
                // Typed below, once all non-computed columns are known.
                ColumnKind::Computed(e) => {
                    (FlinkType::nullable(crate::types::TypeKind::Boolean), ColumnSource::Computed(e.clone()))
                }
            };
            columns.push(Column { name: c.name.clone(), data_type, kind, comment: c.comment.clone() });
        }
        if let Some(q) = &ct.as_query {
            if !columns.is_empty() {
                return Err(SqlError::unsupported(ct.name_location, "CREATE TABLE AS SELECT with a column list")
                    .with_hint("the columns come from the query; drop the column list"));
            }
            let plan = plan_query(&self.context(), q).map_err(|e| df_error(e, ct.name_location))?;
            for f in plan.schema().fields() {
                columns.push(Column {
                    name: f.name().clone(),
                    data_type: FlinkType::from_arrow(f.data_type(), f.is_nullable()),
                    kind: ColumnSource::Physical,
                    comment: None,
                });
            }
        }
        // Computed columns see the physical and metadata columns.
        let base: Vec<usize> =
            (0..columns.len()).filter(|i| !matches!(columns[*i].kind, ColumnSource::Computed(_))).collect();
        let base_schema =
            Schema::new(base.iter().map(|i| columns[*i].data_type.to_field(&columns[*i].name)).collect::<Vec<_>>());
        for (i, c) in ct.columns.iter().enumerate() {
            if let ColumnKind::Computed(e) = &c.kind {
                let dt = self.expr_type(e, &base_schema, c.location)?;
                columns[i].data_type = FlinkType::from_arrow(&dt, true);
            }
        }
        let table = TableDef {
            name: name.clone(),
            location: ct.name_location,
            columns,
            watermark: ct.watermark.clone(),
            primary_key: ct.primary_key.clone().unwrap_or_default(),
            distribution: ct.distribution.clone(),
            partitioned_by: ct.partitioned_by.clone(),
            options: ct.options.clone(),
            comment: ct.comment.clone(),
            temporary: ct.temporary,
        };
        self.check_table(&table, ct)?;
        self.catalog.add_table(table);
        Ok(ct.as_query.as_ref().map(|q| Insert {
            table: ct.name.clone(),
            table_location: ct.name_location,
            overwrite: false,
            columns: vec![],
            query: q.clone(),
        }))
    }

    /// Keys, partitions, distribution and watermark must name real columns of the right type.
    fn check_table(&self, t: &TableDef, ct: &CreateTable) -> Result<()> {
        let at = ct.name_location;
        let must_exist = |cols: &[String], what: &str| -> Result<()> {
            for c in cols {
                if t.column_index(c).is_none() {
                    return Err(SqlError::plan(
                        at,
                        format!("{what} column '{c}' is not a column of table '{}'", t.name),
                    ));
                }
            }
            Ok(())
        };
        must_exist(&t.primary_key, "PRIMARY KEY")?;
        must_exist(&t.partitioned_by, "PARTITIONED BY")?;
        if let Some(d) = &t.distribution {
            must_exist(&d.columns, "DISTRIBUTED BY")?;
        }
        if let Some(wm) = &t.watermark {
            let Some(idx) = t.column_index(&wm.column) else {
                return Err(SqlError::plan(
                    wm.location,
                    format!(
                        "the rowtime attribute '{}' of the WATERMARK is not a column of table '{}'",
                        wm.column, t.name
                    ),
                ));
            };
            let dt = t.columns[idx].data_type.to_arrow();
            let ok = matches!(&dt, DataType::Timestamp(TimeUnit::Millisecond | TimeUnit::Second, _));
            if !ok {
                return Err(SqlError::plan(
                    wm.location,
                    format!("invalid data type of time field for watermark definition: '{}' is {}", wm.column, t.columns[idx].data_type),
                )
                .with_hint("the field must be of type TIMESTAMP(p) or TIMESTAMP_LTZ(p) with precision 0 to 3; CAST it in a computed column"));
            }
            let full = t.schema();
            let wm_type = self.expr_type(&wm.expr, &full, wm.location)?;
            if !matches!(wm_type, DataType::Timestamp(_, _)) {
                return Err(SqlError::plan(
                    wm.location,
                    format!("the watermark expression must return a timestamp, it returns {wm_type}"),
                ));
            }
        }
        Ok(())
    }

    /// The Arrow type of a SQL expression over `schema` (plans it with DataFusion).
    pub(crate) fn expr_type(&self, e: &SqlExpr, schema: &Schema, at: Location) -> Result<DataType> {
        let phys = self.plan_expr(e, schema, at)?;
        phys.data_type(schema).map_err(|e| df_error(e, at))
    }

    /// A physical expression for a SQL expression over an (unqualified) schema.
    pub(crate) fn plan_expr(
        &self,
        e: &SqlExpr,
        schema: &Schema,
        at: Location,
    ) -> Result<Arc<dyn datafusion::physical_expr::PhysicalExpr>> {
        let mut e = e.clone();
        rewrite_flink_syntax(&mut e);
        let df_schema = DFSchema::try_from(schema.clone()).map_err(|e| df_error(e, at))?;
        let ctx = self.context();
        let planner = sql_to_rel(&ctx);
        let logical = planner.sql_to_expr(e, &df_schema, &mut Default::default()).map_err(|e| df_error(e, at))?;
        self.state().create_physical_expr(logical, &df_schema).map_err(|e| df_error(e, at))
    }

    pub(crate) fn create_view(&mut self, cv: &CreateView) -> Result<()> {
        let at = Location::default();
        let name = table_key(&cv.name, at)?;
        if self.catalog.contains(&name) {
            if cv.if_not_exists {
                return Ok(());
            }
            return Err(SqlError::plan(at, format!("table or view '{name}' already exists")));
        }
        let plan = plan_query(&self.context(), &cv.query).map_err(|e| df_error(e, at))?;
        let fields = plan.schema().fields().clone();
        if !cv.columns.is_empty() && cv.columns.len() != fields.len() {
            return Err(SqlError::plan(
                at,
                format!(
                    "view '{name}' lists {} column names but its query returns {} columns",
                    cv.columns.len(),
                    fields.len()
                ),
            ));
        }
        let schema = Schema::new(
            fields
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let n = cv.columns.get(i).cloned().unwrap_or_else(|| f.name().clone());
                    f.as_ref().clone().with_name(n)
                })
                .collect::<Vec<_>>(),
        );
        self.catalog.add_view(ViewDef {
            name,
            columns: cv.columns.clone(),
            query: cv.query.clone(),
            schema: Arc::new(schema),
            temporary: cv.temporary,
        });
        Ok(())
    }

    pub(crate) fn drop(&mut self, object: DropObject, name: &ObjectName, if_exists: bool) -> Result<()> {
        let at = Location::default();
        let key = table_key(name, at)?;
        let dropped = match object {
            DropObject::Table => self.catalog.drop_table(&key),
            DropObject::View => self.catalog.drop_view(&key),
        };
        if !dropped && !if_exists {
            let what = if object == DropObject::Table { "table" } else { "view" };
            return Err(SqlError::plan(at, format!("{what} '{key}' does not exist"))
                .with_hint(format!("use DROP {} IF EXISTS", what.to_uppercase())));
        }
        Ok(())
    }

    /// Flink's DESCRIBE: name, type, null, key, extras, watermark.
    pub(crate) fn describe(&self, name: &ObjectName, at: Location) -> Result<ResultRows> {
        let key = table_key(name, at)?;
        let header = ["name", "type", "null", "key", "extras", "watermark"].map(String::from).to_vec();
        match self.catalog.get(&key) {
            Some(CatalogEntry::Table(t)) => {
                let rows = t
                    .columns
                    .iter()
                    .map(|c| {
                        let mut ty = c.data_type.clone();
                        let nullable = ty.nullable && !t.primary_key.contains(&c.name);
                        ty.nullable = true;
                        let extras = match &c.kind {
                            ColumnSource::Physical => String::new(),
                            ColumnSource::Computed(e) => format!("AS {e}"),
                            ColumnSource::Metadata { key, virtual_ } => {
                                format!("METADATA FROM '{key}'{}", if *virtual_ { " VIRTUAL" } else { "" })
                            }
                        };
                        let is_rowtime = t.watermark.as_ref().map(|w| w.column == c.name).unwrap_or(false);
                        let type_text = if is_rowtime { format!("{ty} *ROWTIME*") } else { ty.to_string() };
                        let key_text = if t.primary_key.contains(&c.name) {
                            format!("PRI({})", t.primary_key.join(", "))
                        } else {
                            String::new()
                        };
                        let wm = t
                            .watermark
                            .as_ref()
                            .filter(|w| w.column == c.name)
                            .map(|w| w.expr.to_string())
                            .unwrap_or_default();
                        vec![
                            c.name.clone(),
                            type_text,
                            if nullable { "TRUE".into() } else { "FALSE".into() },
                            key_text,
                            extras,
                            wm,
                        ]
                    })
                    .collect();
                Ok(ResultRows { header, rows })
            }
            Some(CatalogEntry::View(v)) => Ok(ResultRows {
                header,
                rows: v
                    .schema
                    .fields()
                    .iter()
                    .map(|f| {
                        let ty = FlinkType::from_arrow(f.data_type(), true);
                        vec![
                            f.name().clone(),
                            ty.to_string(),
                            if f.is_nullable() { "TRUE" } else { "FALSE" }.into(),
                            String::new(),
                            String::new(),
                            String::new(),
                        ]
                    })
                    .collect(),
            }),
            None => Err(SqlError::plan(at, format!("table or view '{key}' does not exist"))),
        }
    }

    /// `SHOW CREATE TABLE`: the table's DDL as Eddy understood it.
    pub(crate) fn show_create(&self, name: &ObjectName, at: Location) -> Result<String> {
        let key = table_key(name, at)?;
        match self.catalog.get(&key) {
            Some(CatalogEntry::Table(t)) => {
                let mut lines: Vec<String> = t
                    .columns
                    .iter()
                    .map(|c| match &c.kind {
                        ColumnSource::Physical => format!("  {} {}", quote(&c.name), c.data_type),
                        ColumnSource::Computed(e) => format!("  {} AS {e}", quote(&c.name)),
                        ColumnSource::Metadata { key, virtual_ } => format!(
                            "  {} {} METADATA FROM '{key}'{}",
                            quote(&c.name),
                            c.data_type,
                            if *virtual_ { " VIRTUAL" } else { "" }
                        ),
                    })
                    .collect();
                if let Some(w) = &t.watermark {
                    lines.push(format!("  WATERMARK FOR {} AS {}", quote(&w.column), w.expr));
                }
                if !t.primary_key.is_empty() {
                    lines.push(format!(
                        "  PRIMARY KEY ({}) NOT ENFORCED",
                        t.primary_key.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ")
                    ));
                }
                let mut out = format!("CREATE TABLE {} (\n{}\n)", quote(&t.name), lines.join(",\n"));
                if let Some(d) = &t.distribution {
                    out.push_str("\nDISTRIBUTED");
                    if !d.columns.is_empty() {
                        out.push_str(&format!(
                            " BY ({})",
                            d.columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ")
                        ));
                    }
                    if let Some(n) = d.buckets {
                        out.push_str(&format!(" INTO {n} BUCKETS"));
                    }
                }
                if !t.partitioned_by.is_empty() {
                    out.push_str(&format!(
                        "\nPARTITIONED BY ({})",
                        t.partitioned_by.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ")
                    ));
                }
                out.push_str(&format!(
                    "\nWITH (\n{}\n)\n",
                    t.options
                        .iter()
                        .map(|(k, v)| format!("  '{k}' = '{}'", v.replace('\'', "''")))
                        .collect::<Vec<_>>()
                        .join(",\n")
                ));
                Ok(out)
            }
            Some(CatalogEntry::View(v)) => Ok(format!("CREATE VIEW {} AS\n{}\n", quote(&v.name), v.query)),
            None => Err(SqlError::plan(at, format!("table or view '{key}' does not exist"))),
        }
    }
}

fn quote(name: &str) -> String {
    Ident::with_quote('`', name).to_string()
}
