//! The Postgres wire protocol front end (pgwire).
//!
//! Each statement goes to Eddy ([`Eddy::handles`]: Flink SQL DDL, INSERT, SET 'k' = 'v',
//! SHOW JOBS, ...) or to datafusion-postgres' handlers over the query context (SELECT,
//! pg_catalog, Postgres session statements), in the simple and the extended protocol.
//! Eddy's statements travel through the extended protocol as `(text, None)`: the
//! statement type stays datafusion-postgres' own, whose hooks expect it.

use std::fmt::Debug;
use std::sync::Arc;

use arrow::datatypes::DataType;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion_postgres::arrow_pg::datatypes::df::{deserialize_parameters, encode_dataframe};
use datafusion_postgres::arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use datafusion_postgres::pgwire::api::auth::StartupHandler;
use datafusion_postgres::pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use datafusion_postgres::pgwire::api::portal::{Format, Portal};
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use datafusion_postgres::pgwire::api::stmt::{QueryParser, StoredStatement};
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionManager, PgWireServerHandlers, Type, METADATA_USER,
};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use datafusion_postgres::{DfSessionService, Parser};
use futures::Sink;

use crate::auth::{Auth, Startup};
use crate::service::{Eddy, Reply};
use crate::ServerError;
use crate::{pg_compat, pg_rewrite, type_introspection};

/// datafusion-postgres' statement: the text, and the parsed statement with its plan
/// (`None` for Eddy's statements).
type DfStatement = (String, Option<(sqlparser::ast::Statement, datafusion::logical_expr::LogicalPlan)>);

/// The handlers of every connection.
pub struct Handlers {
    query: Arc<EddyQueryHandler>,
    auth: Auth,
    connections: Arc<ConnectionManager>,
    cancel: Arc<DefaultCancelHandler>,
}

impl Handlers {
    /// Handlers over `eddy`, authenticating with `auth`.
    pub fn new(eddy: Arc<Eddy>, auth: Auth) -> Self {
        let df = Arc::new(DfSessionService::new(eddy.query_context()));
        let parser = Arc::new(EddyParser {
            df: <DfSessionService as ExtendedQueryHandler>::query_parser(&df),
            eddy: eddy.clone(),
        });
        let connections = Arc::new(ConnectionManager::new());
        Self {
            query: Arc::new(EddyQueryHandler { eddy, df, parser }),
            auth,
            cancel: Arc::new(DefaultCancelHandler::new(connections.clone())),
            connections,
        }
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.query.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.query.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::new(Startup::new(&self.auth, &self.connections))
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.cancel.clone()
    }
}

/// Routes statements to Eddy or DataFusion.
pub struct EddyQueryHandler {
    eddy: Arc<Eddy>,
    df: Arc<DfSessionService>,
    parser: Arc<EddyParser>,
}

/// An Eddy error as the client sees it: SQLSTATE by kind, the whole rendered message (with
/// line:col, caret and hint).
fn pg_error(e: ServerError) -> PgWireError {
    tracing::debug!(error = %e, "statement failed");
    let code = match &e {
        ServerError::Sql(m) if m.contains("not supported") => "0A000",
        ServerError::Sql(m) if m.contains("already exists") => "42P07",
        ServerError::Sql(m) if m.contains("syntax") || m.contains("expected") => "42601",
        ServerError::Sql(_) => "42000",
        ServerError::Usage(_) => "42601",
        ServerError::NoSuchJob(_) => "42704",
        ServerError::Engine(_) => "XX000",
        ServerError::State(_) | ServerError::Io { .. } => "58000",
    };
    PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".to_string(), code.to_string(), e.to_string())))
}

/// DataFusion's result columns under the names Postgres would give them.
fn with_pg_names(response: Response) -> Response {
    match response {
        Response::Query(mut q) => {
            q.row_schema = Arc::new(q.row_schema.iter().map(pg_compat::pg_field).collect());
            Response::Query(q)
        }
        other => other,
    }
}

/// Rows in the formats the client asked for.
fn rows_response(schema: &SchemaRef, batches: Vec<RecordBatch>, format: &Format) -> PgWireResult<Response> {
    let fields = Arc::new(arrow_schema_to_pg_fields(schema, format, None)?);
    let mut rows = Vec::new();
    for b in batches {
        rows.extend(encode_recordbatch(fields.clone(), b));
    }
    Ok(Response::Query(QueryResponse::new(fields, futures::stream::iter(rows))))
}

/// Rows under columns described as `fields`.
fn rows_with_fields(fields: Vec<FieldInfo>, batches: Vec<RecordBatch>) -> Response {
    let fields = Arc::new(fields);
    let mut rows = Vec::new();
    for b in batches {
        rows.extend(encode_recordbatch(fields.clone(), b));
    }
    Response::Query(QueryResponse::new(fields, futures::stream::iter(rows)))
}

fn to_response(reply: Reply, format: &Format) -> PgWireResult<Response> {
    match reply {
        Reply::Command(tag) => Ok(Response::Execution(Tag::new(&tag))),
        Reply::Rows(schema, batches) => rows_response(&schema, batches, format),
    }
}

fn to_responses(replies: Vec<Reply>, format: &Format) -> PgWireResult<Vec<Response>> {
    replies.into_iter().map(|r| to_response(r, format)).collect()
}

/// The key of a connection's own settings: its peer address and backend pid (a later
/// connection from the same port gets another pid).
fn conn_key<C: ClientInfo>(client: &C) -> String {
    format!("{}/{}", client.socket_addr(), client.pid_and_secret_key().0)
}

/// The user a connection logged in as.
fn user_of<C: ClientInfo>(client: &C) -> String {
    client.metadata().get(METADATA_USER).cloned().unwrap_or_else(|| "eddy".to_string())
}

/// Run Eddy's statement off the async threads (planning and catalog files are blocking).
async fn run_eddy(eddy: &Arc<Eddy>, sql: &str, conn: String) -> PgWireResult<Vec<Reply>> {
    let eddy = eddy.clone();
    let sql = sql.to_string();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _guard = handle.enter();
        eddy.execute(&sql, &conn)
    })
    .await
    .map_err(|e| pg_error(ServerError::State(format!("statement task failed: {e}"))))?
    .map_err(pg_error)
}

impl EddyQueryHandler {
    /// `DECLARE c CURSOR FOR <query with $n>` in the extended protocol, bound with the
    /// portal's parameters (datafusion-postgres' cursor hook plans the query without them,
    /// and keeps no plan with which a Describe of the cursor could name its columns). The
    /// rows are fetched with FETCH as those of the hook's cursors.
    async fn declare_cursor<C>(
        &self,
        client: &mut C,
        declares: &[sqlparser::ast::Declare],
        portal: &Portal<DfStatement>,
    ) -> PgWireResult<Response>
    where
        C: ClientPortalStore,
        C::PortalStore: PortalStore<Statement = DfStatement>,
    {
        let fail = |e: datafusion::error::DataFusionError| PgWireError::ApiError(Box::new(e));
        let ctx = self.eddy.query_context();
        for declare in declares {
            let (Some(name), Some(query)) = (declare.names.first(), &declare.for_query) else {
                return Err(pg_error(ServerError::Usage("DECLARE needs a cursor name and FOR <query>".into())));
            };
            let sql = query.to_string();
            let plan = ctx.state().create_logical_plan(&sql).await.map_err(fail)?;
            let types = plan.get_parameter_types().map_err(fail)?;
            let mut ids: Vec<(usize, Option<DataType>)> = types
                .into_iter()
                .filter_map(|(id, t)| id.trim_start_matches('$').parse::<usize>().ok().map(|n| (n, t)))
                .collect();
            ids.sort_by_key(|(n, _)| *n);
            let inferred: Vec<Option<&DataType>> = ids.iter().map(|(_, t)| t.as_ref()).collect();
            let values = deserialize_parameters(portal, &inferred)?;
            let plan = plan.replace_params_with_values(&values).map_err(fail)?;
            let frame = ctx.execute_logical_plan(plan.clone()).await.map_err(fail)?;
            let rows = encode_dataframe(frame, &Format::UnifiedText, None).await?;
            // With its plan, so that a Describe of the cursor's portal names its columns.
            let statement = (sql, Some((sqlparser::ast::Statement::Query(query.clone()), plan)));
            let stored = Arc::new(StoredStatement::new(name.value.clone(), statement, vec![]));
            let cursor = Portal::new_cursor(name.value.clone(), stored);
            cursor.start(rows).await;
            client.portal_store().put_portal(Arc::new(cursor));
        }
        Ok(Response::Execution(Tag::new("DECLARE CURSOR")))
    }

    /// Answer one statement (or a text of Eddy statements) in the simple protocol.
    async fn simple_one<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if Eddy::handles(query) {
            tracing::debug!(%query, "eddy statement");
            let replies = run_eddy(&self.eddy, query, conn_key(client)).await?;
            return to_responses(replies, &Format::UnifiedText);
        }
        if crate::copy::is_copy(query) {
            return Ok(vec![crate::copy::copy_to_stdout(&self.eddy.query_context(), query).await?]);
        }
        if let Some(reply) = pg_compat::session_statement(query) {
            return to_responses(vec![reply], &Format::UnifiedText);
        }
        tracing::debug!(%query, "query");
        let rewritten = pg_rewrite::rewrite(query, &user_of(client));
        let query = rewritten.as_deref().unwrap_or(query);
        let responses = <DfSessionService as SimpleQueryHandler>::do_query(&self.df, client, query)
            .await
            .inspect_err(|e| tracing::debug!(%query, error = %e, "query failed"))?;
        Ok(responses.into_iter().map(with_pg_names).collect())
    }
}

#[async_trait]
impl SimpleQueryHandler for EddyQueryHandler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let started = std::time::Instant::now();
        // A text of Flink statements goes to Eddy whole (it splits and locates them itself);
        // a text of several Postgres statements (a pool's reset sequence) is answered one by one.
        let result = async {
            if !Eddy::handles(query) {
                let pieces = pg_compat::split_statements(query);
                if pieces.len() > 1 {
                    let mut responses = Vec::new();
                    for piece in &pieces {
                        responses.extend(self.simple_one(client, piece).await?);
                    }
                    return Ok(responses);
                }
            }
            self.simple_one(client, query).await
        }
        .await;
        self.eddy.pg_metrics().query(started.elapsed(), result.is_ok());
        result
    }
}

#[async_trait]
impl ExtendedQueryHandler for EddyQueryHandler {
    type Statement = DfStatement;
    type QueryParser = EddyParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let started = std::time::Instant::now();
        let result: PgWireResult<Response> = async {
            let (sql, parsed) = &portal.statement.statement;
            if parsed.is_none() && type_introspection::is_type_introspection(sql) {
                let raw = portal.parameters.first().and_then(|p| p.as_deref());
                let oids = type_introspection::requested_oids(raw, portal.parameter_format.is_binary(0))?;
                let (_, batches) = type_introspection::answer(&self.eddy.query_context(), &oids).await?;
                return Ok(rows_with_fields(type_introspection::fields(&portal.result_column_format)?, batches));
            }
            if parsed.is_none() {
                if let Some(reply) = pg_compat::session_statement(sql) {
                    return to_response(reply, &portal.result_column_format);
                }
            }
            if parsed.is_none() && Eddy::handles(sql) {
                let mut replies = run_eddy(&self.eddy, sql, conn_key(client)).await?;
                // One statement per Parse, as Postgres allows in the extended protocol.
                let last = replies.pop().unwrap_or(Reply::Command("OK".into()));
                return to_response(last, &portal.result_column_format);
            }
            if let Some((sqlparser::ast::Statement::Declare { stmts }, _)) = parsed {
                return self.declare_cursor(client, stmts, portal).await;
            }
            if let Some((_, plan)) = parsed {
                if let Some(answer) = crate::point_lookup::try_answer(self.eddy.result_tables(), plan, portal) {
                    return answer;
                }
            }
            <DfSessionService as ExtendedQueryHandler>::do_query(&self.df, client, portal, max_rows)
                .await
                .map(with_pg_names)
        }
        .await;
        self.eddy.pg_metrics().query(started.elapsed(), result.is_ok());
        result
    }
}

/// Parses Eddy's statements as `(text, None)` and the rest as datafusion-postgres does.
pub struct EddyParser {
    df: Arc<Parser>,
    eddy: Arc<Eddy>,
}

#[async_trait]
impl QueryParser for EddyParser {
    type Statement = DfStatement;

    async fn parse_sql<C>(&self, client: &C, sql: &str, types: &[Option<Type>]) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        if Eddy::handles(sql)
            || pg_compat::session_statement(sql).is_some()
            || type_introspection::is_type_introspection(sql)
        {
            return Ok(Some((sql.to_string(), None)));
        }
        let rewritten = pg_rewrite::rewrite(sql, &user_of(client));
        self.df.parse_sql(client, rewritten.as_deref().unwrap_or(sql), types).await
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        if stmt.1.is_none() && type_introspection::is_type_introspection(&stmt.0) {
            return Ok(type_introspection::parameter_types());
        }
        self.df.get_parameter_types(stmt)
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let (sql, parsed) = stmt;
        if parsed.is_none() && type_introspection::is_type_introspection(sql) {
            return type_introspection::fields(column_format.unwrap_or(&Format::UnifiedText));
        }
        if parsed.is_none() {
            if let Some(crate::service::Reply::Rows(schema, _)) = pg_compat::session_statement(sql) {
                return arrow_schema_to_pg_fields(&schema, column_format.unwrap_or(&Format::UnifiedText), None);
            }
        }
        if parsed.is_none() && Eddy::handles(sql) {
            // Describe has no connection at hand: the server's settings describe as well.
            let Some(schema) = self.eddy.result_schema(sql, "describe").map_err(pg_error)? else {
                return Ok(Vec::new());
            };
            return arrow_schema_to_pg_fields(&schema, column_format.unwrap_or(&Format::UnifiedText), None);
        }
        Ok(self.df.get_result_schema(stmt, column_format)?.iter().map(pg_compat::pg_field).collect())
    }
}
