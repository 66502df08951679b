//! Executing a SQL file's statements in a session: DDL and SET apply in order; INSERTs and
//! queries are collected into one job. Shared by `run` and `check`.

use std::path::Path;

use eddy_sql::planner::{JobStatement, Outcome, Session};
use eddy_sql::SqlError;

use crate::output;

/// A file read and its statements executed.
pub struct Script {
    /// The file name as given (for messages).
    pub name: String,
    /// The file's text.
    pub text: String,
    /// The session after every statement.
    pub session: Session,
    /// Statements of the job to run.
    pub job: Vec<JobStatement>,
}

/// Why a script could not be prepared.
pub enum ScriptError {
    /// The file could not be read.
    Io(String),
    /// A statement is wrong; already rendered with line:col and caret.
    Sql(String),
}

/// Read `path`, parse it and execute its statements. Rows answering SHOW/DESCRIBE/EXPLAIN
/// are printed to stdout as they come when `print` is set.
pub fn prepare(path: &Path, print: bool) -> Result<Script, ScriptError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ScriptError::Io(format!("{name}: {e}")))?;
    let statements = eddy_sql::parse_sql(&text).map_err(|e| ScriptError::Sql(e.render(&name, &text)))?;
    let mut session = Session::new();
    let mut job = Vec::new();
    let render = |e: SqlError| ScriptError::Sql(e.render(&name, &text));
    for s in &statements {
        let outcome = session.execute(s).map_err(render)?;
        match outcome {
            Outcome::Done(msg) => tracing::info!(line = s.location.line, "{msg}"),
            Outcome::Rows(rows) if print => output::print_rows(&rows),
            Outcome::Explain(text) if print => println!("{text}"),
            Outcome::Rows(_) | Outcome::Explain(_) => {}
            Outcome::Job(stmts) => job.extend(stmts),
        }
    }
    Ok(Script { name, text, session, job })
}

impl Script {
    /// A job that failed its checks, as the user reads it: a connector's bad option is
    /// placed at the table's `CREATE TABLE` (line:col and a caret), anything else is named
    /// by the file.
    pub fn render_job_error(&self, e: &eddy_engine::EngineError) -> String {
        if let eddy_engine::EngineError::Connector(eddy_connectors::ConnectorError::Options { table, message }) = e {
            if let Some(def) = self.session.catalog().table(table).filter(|t| t.location.is_known()) {
                let err = eddy_sql::SqlError::plan(def.location, format!("table '{table}': {message}"));
                return err.render(&self.name, &self.text);
            }
        }
        format!("{}: error: {e}\n", self.name)
    }
}
