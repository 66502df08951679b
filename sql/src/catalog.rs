//! The catalog: tables and views declared so far, with their resolved schemas.
//!
//! A [`TableDef`] keeps everything `CREATE TABLE` said (columns of the three kinds,
//! watermark, keys, distribution, options) plus the Arrow schemas the planner and the
//! runtime need: the full row as queries see it, the part a source produces, and the part
//! a sink receives. Names are case-sensitive, as in Flink.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use sqlparser::ast::{Expr, ObjectName, ObjectNamePart, Query};

use crate::ast::{Distribution, WatermarkDef};
use crate::error::{Location, Result, SqlError};
use crate::types::FlinkType;

/// A column of a table.
#[derive(Debug, Clone)]
pub struct Column {
    /// Name (case kept).
    pub name: String,
    /// Type (for computed columns: the type of the expression).
    pub data_type: FlinkType,
    /// Physical, computed or metadata.
    pub kind: ColumnSource,
    /// `COMMENT`
    pub comment: Option<String>,
}

/// Where a column's values come from.
#[derive(Debug, Clone)]
pub enum ColumnSource {
    /// Read from the record's payload.
    Physical,
    /// Computed from other columns.
    Computed(Box<Expr>),
    /// Connector metadata (`key`); `virtual_` columns are not written by sinks.
    Metadata {
        /// Metadata key, e.g. `timestamp` or `file.path`.
        key: String,
        /// Read-only.
        virtual_: bool,
    },
}

/// A table declared with `CREATE TABLE`.
#[derive(Debug, Clone)]
pub struct TableDef {
    /// Name.
    pub name: String,
    /// Where it was declared.
    pub location: Location,
    /// Columns in declaration order.
    pub columns: Vec<Column>,
    /// `WATERMARK FOR`
    pub watermark: Option<WatermarkDef>,
    /// `PRIMARY KEY` columns (empty when none).
    pub primary_key: Vec<String>,
    /// `DISTRIBUTED ...`
    pub distribution: Option<Distribution>,
    /// `PARTITIONED BY`
    pub partitioned_by: Vec<String>,
    /// `WITH` options in the order written.
    pub options: Vec<(String, String)>,
    /// `COMMENT`
    pub comment: Option<String>,
    /// `TEMPORARY`
    pub temporary: bool,
}

impl TableDef {
    /// Every column, as queries see the table.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(self.columns.iter().map(|c| c.data_type.to_field(&c.name)).collect::<Vec<Field>>()))
    }

    /// The columns a source produces: physical and metadata columns, in declaration order.
    pub fn source_columns(&self) -> Vec<usize> {
        (0..self.columns.len()).filter(|i| !matches!(self.columns[*i].kind, ColumnSource::Computed(_))).collect()
    }

    /// The column declared `name AS PROCTIME()`, Flink's processing-time attribute.
    pub fn proctime_column(&self) -> Option<usize> {
        self.columns.iter().position(|c| match &c.kind {
            ColumnSource::Computed(e) => match e.as_ref() {
                Expr::Function(f) => {
                    f.name.to_string().eq_ignore_ascii_case("PROCTIME")
                        && matches!(&f.args, sqlparser::ast::FunctionArguments::List(l) if l.args.is_empty())
                }
                _ => false,
            },
            _ => false,
        })
    }

    /// The columns a sink receives: physical and non-virtual metadata columns.
    pub fn sink_columns(&self) -> Vec<usize> {
        (0..self.columns.len())
            .filter(|i| match &self.columns[*i].kind {
                ColumnSource::Physical => true,
                ColumnSource::Metadata { virtual_, .. } => !virtual_,
                ColumnSource::Computed(_) => false,
            })
            .collect()
    }

    /// Schema of the given columns.
    pub fn schema_of(&self, columns: &[usize]) -> SchemaRef {
        Arc::new(Schema::new(
            columns.iter().map(|i| self.columns[*i].data_type.to_field(&self.columns[*i].name)).collect::<Vec<Field>>(),
        ))
    }

    /// The value of option `key`.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Index of a column by name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Whether the table, read as a source, produces a changelog rather than inserts, and
    /// which kind; `None` for an append-only source. Decided from the options alone, as
    /// Flink's factories do: `'connector' = 'upsert-kafka'` is an upsert stream keyed by the
    /// PRIMARY KEY; a CDC format (`format` or `value.format` = `debezium-json`,
    /// `debezium-avro-confluent`, `canal-json`, `maxwell-json`, `ogg-json`) is a full
    /// changelog. (The connector checks the options themselves when the job is built.)
    pub fn changelog_source(&self) -> Option<ChangelogKind> {
        if self.option("connector").is_some_and(|c| c.trim().eq_ignore_ascii_case("upsert-kafka")) {
            return Some(ChangelogKind::Upsert);
        }
        // A result table kept by Eddy with a PRIMARY KEY is read as its upserts.
        if self.option("connector").is_none() && !self.primary_key.is_empty() {
            return Some(ChangelogKind::Upsert);
        }
        let cdc = |f: &str| {
            let f = f.trim().to_ascii_lowercase();
            CDC_FORMATS.contains(&f.as_str())
        };
        if self.option("format").is_some_and(cdc) || self.option("value.format").is_some_and(cdc) {
            return Some(ChangelogKind::Retract);
        }
        None
    }
}

/// Flink's formats that decode a database changelog into `+I -U +U -D` rows.
const CDC_FORMATS: &[&str] = &["debezium-json", "debezium-avro-confluent", "canal-json", "maxwell-json", "ogg-json"];

/// How a changelog source encodes changes (see [`TableDef::changelog_source`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangelogKind {
    /// Flink's upsert semantics (`upsert-kafka`): every row is the new value of its PRIMARY
    /// KEY (`+U`), a tombstone deletes its key (`-D`, only the key columns meaningful). The
    /// planner puts a `ChangelogNormalize` behind it to turn that into a proper changelog.
    Upsert,
    /// Full changelog rows (`+I -U +U -D`, old values included), e.g. `debezium-json`.
    Retract,
}

/// A view declared with `CREATE VIEW`.
#[derive(Debug, Clone)]
pub struct ViewDef {
    /// Name.
    pub name: String,
    /// Column names given in `CREATE VIEW v (a, b)`.
    pub columns: Vec<String>,
    /// The query, planned each time the view is used.
    pub query: Box<Query>,
    /// The output schema, computed at creation.
    pub schema: SchemaRef,
    /// `TEMPORARY`
    pub temporary: bool,
}

/// Tables and views by name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    tables: BTreeMap<String, Arc<TableDef>>,
    views: BTreeMap<String, Arc<ViewDef>>,
}

/// A table or a view.
#[derive(Debug, Clone)]
pub enum CatalogEntry {
    /// A table.
    Table(Arc<TableDef>),
    /// A view.
    View(Arc<ViewDef>),
}

impl Catalog {
    /// Look a name up.
    pub fn get(&self, name: &str) -> Option<CatalogEntry> {
        if let Some(t) = self.tables.get(name) {
            return Some(CatalogEntry::Table(t.clone()));
        }
        self.views.get(name).map(|v| CatalogEntry::View(v.clone()))
    }

    /// A table by name.
    pub fn table(&self, name: &str) -> Option<&Arc<TableDef>> {
        self.tables.get(name)
    }

    /// Whether the name is taken by a table or view.
    pub fn contains(&self, name: &str) -> bool {
        self.tables.contains_key(name) || self.views.contains_key(name)
    }

    /// Add a table (the caller checked the name is free).
    pub fn add_table(&mut self, t: TableDef) {
        self.tables.insert(t.name.clone(), Arc::new(t));
    }

    /// Add a view.
    pub fn add_view(&mut self, v: ViewDef) {
        self.views.insert(v.name.clone(), Arc::new(v));
    }

    /// Remove a table; whether it existed.
    pub fn drop_table(&mut self, name: &str) -> bool {
        self.tables.remove(name).is_some()
    }

    /// Remove a view; whether it existed.
    pub fn drop_view(&mut self, name: &str) -> bool {
        self.views.remove(name).is_some()
    }

    /// Table names, sorted.
    pub fn table_names(&self) -> Vec<String> {
        self.tables.keys().cloned().collect()
    }

    /// View names, sorted.
    pub fn view_names(&self) -> Vec<String> {
        self.views.keys().cloned().collect()
    }
}

/// The catalog key of `[catalog.][database.]name`: Eddy has one catalog and one database,
/// so Flink's `default_catalog.default_database.` prefix is accepted and dropped.
pub fn table_key(name: &ObjectName, location: Location) -> Result<String> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => i.value.clone(),
            other => other.to_string(),
        })
        .collect();
    match parts.as_slice() {
        [t] => Ok(t.clone()),
        [db, t] if db == "default_database" => Ok(t.clone()),
        [c, db, t] if c == "default_catalog" && db == "default_database" => Ok(t.clone()),
        _ => Err(SqlError::unsupported(location, format!("table name '{name}' names another catalog or database"))
            .with_hint("Eddy has one catalog (default_catalog) and one database (default_database)")),
    }
}
