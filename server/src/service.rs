//! What the server does with a statement, whatever protocol brought it.
//!
//! Flink SQL statements (DDL, `SET 'k' = 'v'`, INSERT, statement sets, SHOW/DESCRIBE,
//! EXPLAIN of an INSERT) and Eddy's own (`SHOW JOBS`, `STOP JOB 'id'`) are Eddy's: they
//! change the persistent catalog or start jobs. Everything else (SELECT, Postgres session
//! statements, catalog queries) goes to DataFusion over the result tables ([`crate::query`]).
//!
//! DDL is appended to `<state-dir>/catalog.sql` and replayed at start, so tables and views
//! survive a restart; result tables reopen with their rows; jobs come back from
//! `<state-dir>/jobs.json`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::prelude::SessionContext;
use eddy_engine::checkpoint::CheckpointConfig;
use eddy_engine::result_table::{ResultTables, TableShape};
use eddy_engine::{Job, StateLimits};
use eddy_sql::ast::{Located, Statement};
use eddy_sql::planner::{JobStatement, Outcome, ResultRows, Session};
use eddy_sql::statement_text;
use sqlparser::dialect::GenericDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::jobs::{JobSpec, Jobs};
use crate::{query, ServerError};

/// The answer to one statement.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Done; the command tag (`CREATE TABLE`, `SET`, ...).
    Command(String),
    /// Rows.
    Rows(SchemaRef, Vec<RecordBatch>),
}

/// The server's state: catalog, result tables, jobs, query context.
pub struct Eddy {
    session: Mutex<Session>,
    tables: Arc<ResultTables>,
    jobs: Arc<Jobs>,
    ctx: Arc<SessionContext>,
    catalog_file: PathBuf,
    /// Each connection's `SET` options (by peer address), applied around its statements.
    conn_settings: Mutex<std::collections::HashMap<String, Vec<(String, String)>>>,
    /// The tables' primary keys as pg_catalog shows them.
    keys: Arc<crate::pg_catalog_keys::PrimaryKeys>,
    /// Jobs' checkpoints: `<state-dir>/checkpoints/<job id>`.
    checkpoints_dir: PathBuf,
    /// Connections and query latencies, for `/metrics`.
    pg_metrics: crate::pg_metrics::PgMetrics,
}

/// `execution.checkpointing.interval` of a job started by the server, unless set.
const DEFAULT_CHECKPOINT_INTERVAL_MS: u64 = 10_000;

impl Eddy {
    /// The Postgres protocol's counters.
    pub fn pg_metrics(&self) -> &crate::pg_metrics::PgMetrics {
        &self.pg_metrics
    }

    /// Open the state in `state_dir`: replay the catalog, reopen result tables and start
    /// the jobs a previous run left running. Must run inside a tokio runtime.
    pub fn open(state_dir: &Path) -> Result<Arc<Self>, ServerError> {
        std::fs::create_dir_all(state_dir)
            .map_err(|e| ServerError::Io { context: state_dir.display().to_string(), source: e })?;
        let eddy = Arc::new(Self {
            session: Mutex::new(Session::new()),
            tables: ResultTables::new(state_dir),
            jobs: Arc::new(Jobs::new(state_dir.join("jobs.json"))),
            ctx: Arc::new(query::query_context()?),
            catalog_file: state_dir.join("catalog.sql"),
            conn_settings: Mutex::new(std::collections::HashMap::new()),
            keys: Arc::default(),
            checkpoints_dir: state_dir.join("checkpoints"),
            pg_metrics: Default::default(),
        });
        eddy.replay_catalog()?;
        for spec in eddy.jobs.saved()? {
            let id = spec.id.clone();
            if let Err(e) = eddy.restart_job(spec) {
                tracing::error!(job = %id, error = %e, "cannot start a saved job again");
            }
        }
        Ok(eddy)
    }

    /// How job `id` checkpoints: every `execution.checkpointing.interval` of its settings
    /// (10 s by default in the server, so that a restart resumes exactly where it was),
    /// under `<state-dir>/checkpoints/<id>`.
    /// `'0'` turns them off.
    fn checkpoint_config(&self, id: &str, settings: &[(String, String)]) -> Option<CheckpointConfig> {
        let s = job_settings(settings);
        let interval = match s.get("execution.checkpointing.interval") {
            Some(_) => s.checkpoint_interval_ms()?,
            None => DEFAULT_CHECKPOINT_INTERVAL_MS,
        };
        Some(CheckpointConfig {
            dir: self.checkpoints_dir.join(id),
            interval: std::time::Duration::from_millis(interval),
            retained: s.checkpoints_retained(),
        })
    }

    /// The state bounds a job's settings ask for.
    fn state_limits(settings: &[(String, String)]) -> StateLimits {
        StateLimits::from_settings(&job_settings(settings))
    }

    /// The query context (result tables, pg_catalog).
    pub fn query_context(&self) -> Arc<SessionContext> {
        self.ctx.clone()
    }

    /// The tables' primary keys (for pg_catalog).
    pub fn primary_keys(&self) -> Arc<crate::pg_catalog_keys::PrimaryKeys> {
        self.keys.clone()
    }

    /// The result tables.
    pub fn result_tables(&self) -> &ResultTables {
        &self.tables
    }

    /// The jobs.
    pub fn jobs(&self) -> &Arc<Jobs> {
        &self.jobs
    }

    fn session(&self) -> Result<std::sync::MutexGuard<'_, Session>, ServerError> {
        self.session.lock().map_err(|_| ServerError::State("the catalog is unusable after a panic".into()))
    }

    fn replay_catalog(&self) -> Result<(), ServerError> {
        let text = match std::fs::read_to_string(&self.catalog_file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(ServerError::Io { context: self.catalog_file.display().to_string(), source: e }),
        };
        let name = self.catalog_file.display().to_string();
        let statements = eddy_sql::parse_sql(&text).map_err(|e| ServerError::Sql(e.render(&name, &text)))?;
        let mut session = self.session()?;
        for s in &statements {
            if let Err(e) = session.execute(s) {
                tracing::error!("{}", e.render(&name, &text));
            }
        }
        // Only the tables that exist at the end are opened: a table dropped and declared
        // again keeps its files under the same name, which belong to the last declaration.
        self.refresh_info_schema(&session)?;
        for table in session.catalog().table_names() {
            if let Some(def) = session.catalog().table(&table) {
                self.open_table(def)?;
            }
        }
        Ok(())
    }

    /// Make a declared table queryable: a result table opened (its rows read back), a
    /// connector table as a bounded scan.
    fn open_table(&self, def: &eddy_sql::catalog::TableDef) -> Result<(), ServerError> {
        if def.option("connector").is_some() {
            return query::register_connector_table(&self.ctx, def.source_spec());
        }
        let shape = result_table_shape(def)?;
        let table = self.tables.open(&shape).map_err(|e| ServerError::State(format!("table '{}': {e}", def.name)))?;
        query::register(&self.ctx, table)
    }

    /// Describe the catalog's tables in information_schema.
    fn refresh_info_schema(&self, session: &Session) -> Result<(), ServerError> {
        let tables: Vec<crate::info_schema::TableInfo> = session
            .catalog()
            .table_names()
            .into_iter()
            .filter_map(|name| session.catalog().table(&name).cloned())
            .map(|def| {
                let schema = if def.option("connector").is_some() {
                    def.source_spec().schema
                } else {
                    def.schema_of(&def.sink_columns())
                };
                crate::info_schema::TableInfo { name: def.name.clone(), schema, primary_key: def.primary_key.clone() }
            })
            .collect();
        self.keys.set(&tables);
        crate::info_schema::refresh(&self.ctx, &tables)
    }

    /// Keep result tables and information_schema in step with the catalog after DDL.
    fn after_ddl(&self, session: &Session, stmt: &Statement) -> Result<(), ServerError> {
        self.refresh_info_schema(session)?;
        match stmt {
            Statement::CreateTable(ct) => match session.catalog().table(&ct.name.to_string()) {
                Some(def) => self.open_table(def),
                None => Ok(()),
            },
            Statement::Drop { name, .. } => {
                let name = name.to_string();
                if !session.catalog().contains(&name) {
                    query::deregister(&self.ctx, &name);
                    if self.tables.get(&name).is_some() {
                        self.tables.drop_table(&name).map_err(|e| ServerError::State(e.to_string()))?;
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn persist_ddl(&self, text: &str) -> Result<(), ServerError> {
        use std::io::Write;
        let io = |e| ServerError::Io { context: self.catalog_file.display().to_string(), source: e };
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.catalog_file).map_err(io)?;
        let text = text.trim().trim_end_matches(';').trim_end();
        writeln!(f, "{text};").map_err(io)?;
        f.sync_data().map_err(io)
    }

    /// Start a saved job again after a restart.
    fn restart_job(&self, spec: JobSpec) -> Result<(), ServerError> {
        let statements = eddy_sql::parse_sql(&spec.sql).map_err(|e| ServerError::Sql(e.render("job", &spec.sql)))?;
        let job = {
            let mut session = self.session()?;
            let saved = settings_of(&session);
            replace_settings(&mut session, &spec.settings);
            let mut job_statements = Vec::new();
            let mut result = Ok(());
            for s in &statements {
                match session.execute(s) {
                    Ok(Outcome::Job(j)) => job_statements.extend(j),
                    Ok(_) => {}
                    Err(e) => {
                        result = Err(ServerError::Sql(e.render("job", &spec.sql)));
                        break;
                    }
                }
            }
            let planned = result.and_then(|_| {
                session.plan_job(&job_statements).map_err(|e| ServerError::Sql(e.render("job", &spec.sql)))
            });
            replace_settings(&mut session, &saved);
            planned?
        };
        let job = Job::new(job)
            .map_err(|e| ServerError::Engine(e.to_string()))?
            .with_result_tables(self.tables.clone())
            .resuming()
            .with_state_limits(Self::state_limits(&spec.settings));
        let job = match self.checkpoint_config(&spec.id, &spec.settings) {
            Some(config) => job.with_checkpoints(config),
            None => job,
        };
        tracing::info!(job = %spec.id, name = %spec.name, "starting a saved job again");
        self.jobs.start(spec, job)
    }

    /// Whether Eddy (rather than DataFusion) answers `text`: Flink SQL statements and
    /// Eddy's own, recognised by their first words.
    pub fn handles(text: &str) -> bool {
        let words = leading_words(text, 3);
        let w = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
        match w(0) {
            "CREATE" => matches!(w(1), "TABLE" | "TEMPORARY" | "VIEW" | "OR" | "MATERIALIZED"),
            "DROP" => matches!(w(1), "TABLE" | "VIEW" | "TEMPORARY" | "MATERIALIZED"),
            "INSERT" | "DESCRIBE" | "DESC" => true,
            "EXECUTE" => w(1) == "STATEMENT",
            "BEGIN" => w(1) == "STATEMENT",
            // Flink's `SET 'key' = 'value'` (quoted) and `SET;` — Postgres' SET is unquoted.
            "SET" | "RESET" => w(1).starts_with('\'') || w(1).is_empty(),
            "SHOW" => matches!(w(1), "TABLES" | "VIEWS" | "JOBS" | "CREATE"),
            "STOP" => w(1) == "JOB",
            "EXPLAIN" => matches!(w(1), "INSERT" | "PLAN" | "STATEMENT" | "EXECUTE" | "BEGIN"),
            _ => false,
        }
    }

    /// Execute the Eddy statements in `text` for connection `conn`, in order; the first
    /// error stops the rest. `SET 'k' = 'v'` holds for that connection only (as in Flink's
    /// SQL client, a session's), and the jobs it starts; the catalog is everyone's.
    pub fn execute(&self, text: &str, conn: &str) -> Result<Vec<Reply>, ServerError> {
        let words = leading_words(text, 3);
        if words.first().map(String::as_str) == Some("SHOW") && words.get(1).map(String::as_str) == Some("JOBS") {
            return Ok(vec![self.show_jobs()]);
        }
        if words.first().map(String::as_str) == Some("STOP") {
            return self.stop_job(text).map(|r| vec![r]);
        }
        let statements = eddy_sql::parse_sql(text).map_err(|e| ServerError::Sql(e.render("statement", text)))?;
        self.in_session(conn, |eddy, session| {
            let mut replies = Vec::new();
            for (i, s) in statements.iter().enumerate() {
                let own_text = statement_text(text, &statements, i);
                replies.push(eddy.execute_one(session, s, own_text, text)?);
            }
            Ok(replies)
        })
    }

    /// Run `f` on the shared session with connection `conn`'s settings in force, keeping
    /// what it set for that connection and leaving the server's own settings as they were.
    fn in_session<T>(
        &self,
        conn: &str,
        f: impl FnOnce(&Self, &mut Session) -> Result<T, ServerError>,
    ) -> Result<T, ServerError> {
        let mut session = self.session()?;
        let server_settings = settings_of(&session);
        let mine = self.conn_settings.lock().ok().and_then(|m| m.get(conn).cloned()).unwrap_or_default();
        replace_settings(&mut session, &mine);
        let result = f(self, &mut session);
        if let Ok(mut m) = self.conn_settings.lock() {
            m.insert(conn.to_string(), settings_of(&session));
        }
        replace_settings(&mut session, &server_settings);
        result
    }

    /// Forget a connection's settings (it closed).
    pub fn forget_connection(&self, conn: &str) {
        if let Ok(mut m) = self.conn_settings.lock() {
            m.remove(conn);
        }
    }

    fn execute_one(
        &self,
        session: &mut Session,
        s: &Located<Statement>,
        own_text: &str,
        text: &str,
    ) -> Result<Reply, ServerError> {
        let render = |e: eddy_sql::SqlError| ServerError::Sql(e.render("statement", text));
        if let Statement::Drop { object: eddy_sql::ast::DropObject::Table, name, .. } = &s.node {
            // Its rows would be written again by the job (and its files made anew).
            let name = name.to_string();
            if let Some((id, job)) = self.jobs.running_writers(&name).into_iter().next() {
                return Err(ServerError::Usage(format!(
                    "table '{name}' is written by running job {id} ({job}); STOP JOB '{id}' first"
                )));
            }
        }
        let outcome = session.execute(s).map_err(render)?;
        let is_ddl = matches!(s.node, Statement::CreateTable(_) | Statement::CreateView(_) | Statement::Drop { .. });
        if is_ddl {
            self.persist_ddl(own_text)?;
            self.after_ddl(session, &s.node)?;
        }
        match outcome {
            Outcome::Done(_) => Ok(Reply::Command(command_tag(&s.node))),
            Outcome::Rows(rows) => Ok(text_rows(&rows)),
            Outcome::Explain(text) => Ok(text_rows(&ResultRows {
                header: vec!["result".into()],
                rows: text.lines().map(|l| vec![l.to_string()]).collect(),
            })),
            Outcome::Job(statements) => {
                let plan = session.plan_job(&statements).map_err(render)?;
                let settings = settings_of(session);
                let (name, sql, targets) = job_name_and_text(&s.node, &statements, own_text);
                let job = Job::new(plan).map_err(|e| ServerError::Engine(e.to_string()))?;
                let id = Jobs::new_id();
                let job = job.with_result_tables(self.tables.clone()).with_state_limits(Self::state_limits(&settings));
                let job = match self.checkpoint_config(&id, &settings) {
                    Some(config) => job.with_checkpoints(config),
                    None => job,
                };
                let submitted = std::time::SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                let spec = JobSpec { id: id.clone(), name, sql, settings, submitted, ended: false, targets };
                self.jobs.start(spec, job)?;
                let schema = job_id_schema();
                let batch =
                    RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(vec![id])) as ArrayRef])
                        .map_err(|e| ServerError::State(e.to_string()))?;
                Ok(Reply::Rows(schema, vec![batch]))
            }
        }
    }

    /// The columns `text` answers with, without running it (the extended protocol's
    /// Describe): job ids for statements that start jobs, listings for SHOW/DESCRIBE/EXPLAIN
    /// (read-only, so run to see), none for DDL and SET.
    pub fn result_schema(&self, text: &str, conn: &str) -> Result<Option<SchemaRef>, ServerError> {
        let words = leading_words(text, 2);
        if words.first().map(String::as_str) == Some("SHOW") && words.get(1).map(String::as_str) == Some("JOBS") {
            return Ok(match self.show_jobs() {
                Reply::Rows(schema, _) => Some(schema),
                Reply::Command(_) => None,
            });
        }
        if words.first().map(String::as_str) == Some("STOP") {
            return Ok(None);
        }
        let statements = eddy_sql::parse_sql(text).map_err(|e| ServerError::Sql(e.render("statement", text)))?;
        let Some(last) = statements.last() else { return Ok(None) };
        match &last.node {
            Statement::Insert(_) | Statement::StatementSet(_) => Ok(Some(job_id_schema())),
            Statement::CreateTable(ct) if ct.as_query.is_some() => Ok(Some(job_id_schema())),
            Statement::Set { key: None, .. }
            | Statement::ShowTables
            | Statement::ShowViews
            | Statement::ShowCreate { .. }
            | Statement::Describe { .. }
            | Statement::Explain(_) => {
                let own = statement_text(text, &statements, statements.len() - 1);
                match self.in_session(conn, |eddy, session| eddy.execute_one(session, last, own, text))? {
                    Reply::Rows(schema, _) => Ok(Some(schema)),
                    Reply::Command(_) => Ok(None),
                }
            }
            _ => Ok(None),
        }
    }

    fn show_jobs(&self) -> Reply {
        let jobs = self.jobs.list();
        let schema = Arc::new(Schema::new(vec![
            Field::new("job_id", DataType::Utf8, false),
            Field::new("job_name", DataType::Utf8, false),
            Field::new("status", DataType::Utf8, false),
            Field::new("rows_in", DataType::Int64, false),
            Field::new("rows_out", DataType::Int64, false),
            Field::new("error", DataType::Utf8, true),
            Field::new("watermark", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("start_time", DataType::Timestamp(TimeUnit::Millisecond, None), false),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>())),
            Arc::new(StringArray::from(jobs.iter().map(|j| j.name.clone()).collect::<Vec<_>>())),
            Arc::new(StringArray::from(jobs.iter().map(|j| j.status.name()).collect::<Vec<_>>())),
            Arc::new(Int64Array::from(jobs.iter().map(|j| j.rows_in as i64).collect::<Vec<_>>())),
            Arc::new(Int64Array::from(jobs.iter().map(|j| j.rows_out as i64).collect::<Vec<_>>())),
            Arc::new(StringArray::from(
                jobs.iter()
                    .map(|j| match &j.status {
                        crate::jobs::JobStatus::Failed(m) => Some(m.clone()),
                        _ => None,
                    })
                    .collect::<Vec<_>>(),
            )),
            Arc::new(TimestampMillisecondArray::from(jobs.iter().map(|j| j.watermark).collect::<Vec<_>>())),
            Arc::new(TimestampMillisecondArray::from(
                jobs.iter()
                    .map(|j| j.started.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64))
                    .collect::<Vec<_>>(),
            )),
        ];
        match RecordBatch::try_new(schema.clone(), columns) {
            Ok(b) => Reply::Rows(schema, vec![b]),
            Err(_) => Reply::Rows(schema, vec![]),
        }
    }

    fn stop_job(&self, text: &str) -> Result<Reply, ServerError> {
        // STOP JOB 'id' [WITH SAVEPOINT] [WITH DRAIN], as Flink's SQL client.
        let id = text
            .split('\'')
            .nth(1)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| ServerError::Usage("write STOP JOB '<job id>' (the id as SHOW JOBS lists it)".into()))?;
        self.jobs.stop(id)?;
        Ok(Reply::Command("STOP JOB".into()))
    }
}

/// What a statement that starts a job answers: its id.
fn job_id_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("job_id", DataType::Utf8, false)]))
}

/// The session's `SET` options.
/// A job's saved `SET` options as settings (they were checked when they were set).
fn job_settings(settings: &[(String, String)]) -> eddy_sql::planner::Settings {
    let mut s = eddy_sql::planner::Settings::default();
    for (k, v) in settings {
        let _ = s.set(k, v);
    }
    s
}

fn settings_of(session: &Session) -> Vec<(String, String)> {
    session.settings().iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Make `settings` the session's options (those not listed at their defaults).
fn replace_settings(session: &mut Session, settings: &[(String, String)]) {
    let _ = session.execute(&Located { node: Statement::Reset { key: None }, location: Default::default() });
    for (k, v) in settings {
        let _ = session.execute(&set_statement(k, v));
    }
}

/// A `SET 'k' = 'v'` statement.
fn set_statement(k: &str, v: &str) -> Located<Statement> {
    Located {
        node: Statement::Set { key: Some(k.to_string()), value: Some(v.to_string()) },
        location: Default::default(),
    }
}

/// How a managed table declared in the catalog is opened.
fn result_table_shape(def: &eddy_sql::catalog::TableDef) -> Result<TableShape, ServerError> {
    let schema = def.schema_of(&def.sink_columns());
    eddy_engine::job::result_table_shape(
        &def.name,
        schema,
        &def.primary_key,
        &def.options,
        def.watermark.as_ref().map(|w| w.column.as_str()),
    )
    .map_err(|e| ServerError::Engine(e.to_string()))
}

/// The first `n` words of `text` (upper-cased keywords, quoted strings as written),
/// skipping whitespace and comments.
fn leading_words(text: &str, n: usize) -> Vec<String> {
    let dialect = GenericDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, text).tokenize() else { return Vec::new() };
    tokens
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .take(n)
        .map(|t| match t {
            Token::Word(w) if w.quote_style.is_none() => w.value.to_uppercase(),
            Token::SingleQuotedString(s) => format!("'{s}'"),
            other => other.to_string(),
        })
        .collect()
}

/// The command tag a Postgres client expects.
fn command_tag(stmt: &Statement) -> String {
    match stmt {
        Statement::CreateTable(_) => "CREATE TABLE",
        Statement::CreateView(_) => "CREATE VIEW",
        Statement::Drop { object: eddy_sql::ast::DropObject::Table, .. } => "DROP TABLE",
        Statement::Drop { .. } => "DROP VIEW",
        Statement::Set { .. } => "SET",
        Statement::Reset { .. } => "RESET",
        _ => "OK",
    }
    .to_string()
}

/// Flink's job name (`insert-into_out`) and the text that starts the job again.
fn job_name_and_text(stmt: &Statement, statements: &[JobStatement], own_text: &str) -> (String, String, Vec<String>) {
    let targets: Vec<String> = statements
        .iter()
        .filter_map(|s| match s {
            JobStatement::Insert(i) => Some(i.node.table.to_string()),
            JobStatement::Query(_) => None,
        })
        .collect();
    let name = format!("insert-into_{}", targets.join(","));
    let text = match (stmt, statements) {
        // CREATE TABLE ... AS: the catalog keeps the table; the job is its INSERT.
        (Statement::CreateTable(_), [JobStatement::Insert(i)]) => {
            format!("INSERT INTO {} {}", i.node.table, i.node.query)
        }
        _ => own_text.trim().trim_end_matches(';').to_string(),
    };
    (name, text, targets)
}

/// SHOW/DESCRIBE rows (text) as a batch.
fn text_rows(rows: &ResultRows) -> Reply {
    let schema = Arc::new(Schema::new(
        rows.header.iter().map(|h| Field::new(h.replace(' ', "_"), DataType::Utf8, true)).collect::<Vec<_>>(),
    ));
    let columns: Vec<ArrayRef> = (0..rows.header.len())
        .map(|c| {
            Arc::new(StringArray::from(rows.rows.iter().map(|r| r.get(c).cloned()).collect::<Vec<Option<String>>>()))
                as ArrayRef
        })
        .collect();
    match RecordBatch::try_new(schema.clone(), columns) {
        Ok(b) => Reply::Rows(schema, vec![b]),
        Err(_) => Reply::Rows(schema, vec![]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flink_statements_are_eddys_and_the_rest_datafusions() {
        for eddy in [
            "CREATE TABLE t (a INT) WITH ('connector' = 'datagen')",
            "-- a comment\n  insert into t select 1",
            "SET 'parallelism.default' = '2'",
            "SHOW JOBS",
            "show tables",
            "STOP JOB 'abc'",
            "EXECUTE STATEMENT SET BEGIN INSERT INTO t SELECT 1; END",
            "DESCRIBE t",
            "EXPLAIN PLAN FOR INSERT INTO t SELECT 1",
        ] {
            assert!(Eddy::handles(eddy), "{eddy}");
        }
        for df in [
            "SELECT 1",
            "SET extra_float_digits = 3",
            "SHOW server_version",
            "BEGIN",
            "select * from pg_catalog.pg_type",
            "-- ping",
            "",
            "EXPLAIN SELECT 1",
        ] {
            assert!(!Eddy::handles(df), "{df}");
        }
    }
}
