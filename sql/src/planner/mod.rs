//! The planner: statements in, catalog changes and StreamPlans out.
//!
//! A [`Session`] holds the catalog, the `SET` options and a DataFusion session state (for
//! built-in and Flink functions). [`Session::execute`] applies DDL and settings and answers
//! SHOW/DESCRIBE/EXPLAIN; INSERTs and queries come back as [`JobStatement`]s, and
//! [`Session::plan_job`] turns all of a job's statements into one [`StreamPlan`] whose
//! sources are shared, so two INSERTs reading one table read it once.

mod context;
mod convert;
mod ddl;
mod group_window;
mod query;
mod read_columns;
pub mod rewrite;
pub mod settings;
mod temporal;
mod time_attr;
mod unnest;
mod window_node;
mod window_tvf;

use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::execution::FunctionRegistry;
use datafusion::prelude::SessionConfig;
use sqlparser::ast::Query;

use crate::ast::{Insert, Located, Statement};
use crate::catalog::Catalog;
use crate::error::{Result, SqlError};
use crate::explain;
use crate::plan::StreamPlan;

pub use context::EddyTableSource;
pub use settings::Settings;

/// A statement that runs as (part of) a job.
#[derive(Debug, Clone)]
pub enum JobStatement {
    /// `INSERT INTO`
    Insert(Located<Insert>),
    /// A plain `SELECT`: its rows are printed.
    Query(Located<Box<Query>>),
}

/// Rows answering SHOW / DESCRIBE / SET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultRows {
    /// Column names.
    pub header: Vec<String>,
    /// Rows of text.
    pub rows: Vec<Vec<String>>,
}

/// What executing one statement produced.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// DDL or SET applied; the message to show (Flink's `[INFO] ...`).
    Done(String),
    /// Rows to show.
    Rows(ResultRows),
    /// An EXPLAIN text.
    Explain(String),
    /// Statements to run as a job (a statement set is one job).
    Job(Vec<JobStatement>),
}

/// The planner's state across the statements of a file or a connection.
pub struct Session {
    pub(crate) catalog: Catalog,
    pub(crate) settings: Settings,
    pub(crate) state: SessionState,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    /// A session with an empty catalog and default settings.
    pub fn new() -> Self {
        let mut config = SessionConfig::new();
        let opts = config.options_mut();
        opts.sql_parser.enable_ident_normalization = false;
        opts.sql_parser.map_string_types_to_utf8view = false;
        opts.execution.time_zone = Some("+00:00".to_string());
        let mut state = SessionStateBuilder::new().with_config(config).with_default_features().build();
        for f in crate::functions::flink_functions() {
            // Same-named UDFs replace DataFusion's (e.g. ROUND, CONCAT with Flink semantics).
            let _ = state.register_udf(f);
        }
        let _ = state.register_udf(std::sync::Arc::new(datafusion::logical_expr::ScalarUDF::new_from_impl(
            temporal::AsOf::new(),
        )));
        for f in crate::functions::flink_aggregates() {
            let _ = state.register_udaf(f);
        }
        Self { catalog: Catalog::default(), settings: Settings::default(), state }
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The `SET` options.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Execute one statement: apply DDL/SET, answer SHOW/DESCRIBE/EXPLAIN, and return
    /// INSERTs/queries (checked by planning them) as a job to run.
    pub fn execute(&mut self, stmt: &Located<Statement>) -> Result<Outcome> {
        let at = stmt.location;
        match &stmt.node {
            Statement::CreateTable(ct) => {
                let job = self.create_table(ct).map_err(|e| e.or_at(at))?;
                match job {
                    Some(insert) => {
                        let job = vec![JobStatement::Insert(Located { node: insert, location: at })];
                        self.plan_job(&job)?;
                        Ok(Outcome::Job(job))
                    }
                    None => Ok(Outcome::Done("[INFO] Execute statement succeeded.".into())),
                }
            }
            Statement::CreateView(cv) => {
                self.create_view(cv).map_err(|e| e.or_at(at))?;
                Ok(Outcome::Done("[INFO] Execute statement succeeded.".into()))
            }
            Statement::Drop { object, name, if_exists } => {
                self.drop(*object, name, *if_exists).map_err(|e| e.or_at(at))?;
                Ok(Outcome::Done("[INFO] Execute statement succeeded.".into()))
            }
            Statement::Set { key: Some(k), value: Some(v) } => {
                self.settings.set(k, v).map_err(|m| SqlError::plan(at, m))?;
                Ok(Outcome::Done("[INFO] Execute statement succeeded.".into()))
            }
            Statement::Set { .. } => Ok(Outcome::Rows(ResultRows {
                header: vec!["key".into(), "value".into()],
                rows: self.settings.iter().map(|(k, v)| vec![k.to_string(), v.to_string()]).collect(),
            })),
            Statement::Reset { key } => {
                self.settings.reset(key.as_deref());
                Ok(Outcome::Done("[INFO] Execute statement succeeded.".into()))
            }
            Statement::ShowTables => Ok(Outcome::Rows(ResultRows {
                header: vec!["table name".into()],
                rows: {
                    let mut names = self.catalog.table_names();
                    names.extend(self.catalog.view_names());
                    names.sort();
                    names.into_iter().map(|n| vec![n]).collect()
                },
            })),
            Statement::ShowViews => Ok(Outcome::Rows(ResultRows {
                header: vec!["view name".into()],
                rows: self.catalog.view_names().into_iter().map(|n| vec![n]).collect(),
            })),
            Statement::ShowCreate { name } => Ok(Outcome::Explain(self.show_create(name, at)?)),
            Statement::Describe { name } => Ok(Outcome::Rows(self.describe(name, at)?)),
            Statement::Explain(inner) => {
                let job = match &inner.node {
                    Statement::Insert(i) => {
                        vec![JobStatement::Insert(Located { node: (**i).clone(), location: inner.location })]
                    }
                    Statement::Query(q) => {
                        vec![JobStatement::Query(Located { node: q.clone(), location: inner.location })]
                    }
                    Statement::StatementSet(s) => s.iter().cloned().map(JobStatement::Insert).collect(),
                    _ => return Err(SqlError::syntax(at, "EXPLAIN takes an INSERT, a SELECT or a statement set")),
                };
                let plan = self.plan_job(&job)?;
                Ok(Outcome::Explain(explain::render(&plan)))
            }
            Statement::Insert(i) => {
                let job = vec![JobStatement::Insert(Located { node: (**i).clone(), location: at })];
                self.plan_job(&job)?;
                Ok(Outcome::Job(job))
            }
            Statement::StatementSet(inserts) => {
                let job: Vec<JobStatement> = inserts.iter().cloned().map(JobStatement::Insert).collect();
                self.plan_job(&job)?;
                Ok(Outcome::Job(job))
            }
            Statement::Query(q) => {
                let job = vec![JobStatement::Query(Located { node: q.clone(), location: at })];
                self.plan_job(&job)?;
                Ok(Outcome::Job(job))
            }
        }
    }

    /// Plan the statements of one job into a single operator graph.
    pub fn plan_job(&self, statements: &[JobStatement]) -> Result<StreamPlan> {
        let mut builder = convert::PlanBuilder::new(self);
        for s in statements {
            builder.add_statement(s)?;
        }
        Ok(builder.finish())
    }

    pub(crate) fn context(&self) -> context::EddyContext<'_> {
        context::EddyContext::new(&self.catalog, &self.state)
    }

    pub(crate) fn state(&self) -> &SessionState {
        &self.state
    }
}

#[cfg(test)]
mod changelog_tests;
#[cfg(test)]
mod group_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod window_tests;
