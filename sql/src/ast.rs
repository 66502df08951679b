//! Eddy's statements: sqlparser's AST for queries and expressions, wrapped in Flink's
//! statement shapes (as DataFusion's `DFParser` wraps sqlparser) — CREATE TABLE with
//! WATERMARK/METADATA/DISTRIBUTED, statement sets, SET/RESET.

use sqlparser::ast::{Expr, ObjectName, Query};

use crate::error::Location;
use crate::types::FlinkType;

/// One statement of a SQL file with the place it starts.
#[derive(Debug, Clone)]
pub struct Located<T> {
    /// The statement.
    pub node: T,
    /// Where it starts.
    pub location: Location,
}

/// A Flink SQL statement.
#[derive(Debug, Clone)]
pub enum Statement {
    /// `CREATE [TEMPORARY] TABLE ...`
    CreateTable(Box<CreateTable>),
    /// `CREATE [TEMPORARY] VIEW name [(cols)] AS query`
    CreateView(Box<CreateView>),
    /// `INSERT INTO|OVERWRITE t [(cols)] query`
    Insert(Box<Insert>),
    /// A plain query (`SELECT`, `WITH`, `VALUES`).
    Query(Box<Query>),
    /// `EXECUTE STATEMENT SET BEGIN ... END` or `BEGIN STATEMENT SET; ... END`.
    StatementSet(Vec<Located<Insert>>),
    /// `SET 'k' = 'v'`, or `SET` alone (key `None`) to list the settings.
    Set {
        /// The key, `None` to list all.
        key: Option<String>,
        /// The value (present iff key is).
        value: Option<String>,
    },
    /// `RESET 'k'` or `RESET` (all).
    Reset {
        /// The key, `None` for all.
        key: Option<String>,
    },
    /// `SHOW TABLES`
    ShowTables,
    /// `SHOW VIEWS`
    ShowViews,
    /// `SHOW CREATE TABLE t` / `SHOW CREATE VIEW v`
    ShowCreate {
        /// The table or view.
        name: ObjectName,
    },
    /// `DESCRIBE t` / `DESC t`
    Describe {
        /// The table or view.
        name: ObjectName,
    },
    /// `EXPLAIN [PLAN FOR] stmt`
    Explain(Box<Located<Statement>>),
    /// `DROP [TEMPORARY] TABLE|VIEW [IF EXISTS] name`
    Drop {
        /// Table or view.
        object: DropObject,
        /// The name.
        name: ObjectName,
        /// `IF EXISTS`
        if_exists: bool,
    },
}

/// What `DROP` drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropObject {
    /// `DROP TABLE`
    Table,
    /// `DROP VIEW`
    View,
}

/// `CREATE TABLE` as Flink writes it.
#[derive(Debug, Clone)]
pub struct CreateTable {
    /// Table name (`[catalog.][db.]name`).
    pub name: ObjectName,
    /// Where the name is.
    pub name_location: Location,
    /// `TEMPORARY`
    pub temporary: bool,
    /// `IF NOT EXISTS`
    pub if_not_exists: bool,
    /// Columns in declaration order.
    pub columns: Vec<ColumnDef>,
    /// `WATERMARK FOR col AS expr`
    pub watermark: Option<WatermarkDef>,
    /// `PRIMARY KEY (..) NOT ENFORCED` (column or table level).
    pub primary_key: Option<Vec<String>>,
    /// `COMMENT '...'` on the table.
    pub comment: Option<String>,
    /// `DISTRIBUTED ...`
    pub distribution: Option<Distribution>,
    /// `PARTITIONED BY (..)`
    pub partitioned_by: Vec<String>,
    /// `WITH ('k' = 'v', ...)`
    pub options: Vec<(String, String)>,
    /// `AS query` (CREATE TABLE ... AS SELECT).
    pub as_query: Option<Box<Query>>,
}

impl CreateTable {
    /// A table with nothing declared yet but its name.
    pub fn named(name: ObjectName, name_location: Location, temporary: bool, if_not_exists: bool) -> Self {
        Self {
            name,
            name_location,
            temporary,
            if_not_exists,
            columns: Vec::new(),
            watermark: None,
            primary_key: None,
            comment: None,
            distribution: None,
            partitioned_by: Vec::new(),
            options: Vec::new(),
            as_query: None,
        }
    }
}

/// One column of a `CREATE TABLE`.
#[derive(Debug, Clone)]
pub struct ColumnDef {
    /// Column name as written (case kept).
    pub name: String,
    /// Where the name is.
    pub location: Location,
    /// Physical, computed or metadata.
    pub kind: ColumnKind,
    /// `COMMENT '...'`
    pub comment: Option<String>,
}

/// The three kinds of column Flink has.
#[derive(Debug, Clone)]
pub enum ColumnKind {
    /// `name TYPE`
    Physical(FlinkType),
    /// `name AS expr`
    Computed(Box<Expr>),
    /// `name TYPE METADATA [FROM 'key'] [VIRTUAL]`
    Metadata {
        /// Declared type.
        data_type: FlinkType,
        /// `FROM 'key'` (defaults to the column name).
        key: Option<String>,
        /// `VIRTUAL`: read-only, not written by sinks.
        virtual_: bool,
    },
}

/// `WATERMARK FOR column AS expr`
#[derive(Debug, Clone)]
pub struct WatermarkDef {
    /// The rowtime column.
    pub column: String,
    /// Where the column name is.
    pub location: Location,
    /// The watermark strategy expression.
    pub expr: Expr,
}

/// `DISTRIBUTED BY [HASH|RANGE] (cols) [INTO n BUCKETS]` / `DISTRIBUTED INTO n BUCKETS`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distribution {
    /// `HASH`, `RANGE` or unspecified.
    pub kind: Option<DistributionKind>,
    /// Bucket key columns (empty with `DISTRIBUTED INTO`).
    pub columns: Vec<String>,
    /// `INTO n BUCKETS`
    pub buckets: Option<u64>,
}

/// The algorithm named in `DISTRIBUTED BY HASH|RANGE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DistributionKind {
    /// `HASH`
    Hash,
    /// `RANGE`
    Range,
}

/// `CREATE VIEW`
#[derive(Debug, Clone)]
pub struct CreateView {
    /// View name.
    pub name: ObjectName,
    /// `TEMPORARY`
    pub temporary: bool,
    /// `IF NOT EXISTS`
    pub if_not_exists: bool,
    /// Optional column names.
    pub columns: Vec<String>,
    /// The query.
    pub query: Box<Query>,
    /// `COMMENT`
    pub comment: Option<String>,
}

/// `INSERT INTO`
#[derive(Debug, Clone)]
pub struct Insert {
    /// Target table.
    pub table: ObjectName,
    /// Where the target name is.
    pub table_location: Location,
    /// `OVERWRITE` instead of `INTO`.
    pub overwrite: bool,
    /// Explicit target columns, if listed.
    pub columns: Vec<String>,
    /// The rows (`SELECT ...` or `VALUES ...`).
    pub query: Box<Query>,
}
