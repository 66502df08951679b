//! `COPY table|(query) TO STDOUT [WITH (FORMAT text|csv|binary, HEADER, DELIMITER, NULL)]`:
//! the rows of an ad-hoc query streamed as COPY data (psql's `\copy ... to stdout`, bulk
//! exports). `COPY ... FROM` is refused: result tables are written by jobs.

use std::sync::Arc;

use datafusion::prelude::SessionContext;
use datafusion_postgres::arrow_pg::datatypes::arrow_schema_to_pg_fields;
use datafusion_postgres::arrow_pg::encoder::encode_value;
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::api::results::{CopyCsvOptions, CopyEncoder, CopyResponse, CopyTextOptions, Response};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::copy::CopyData;
use futures::StreamExt;
use sqlparser::ast::{CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Statement};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

fn error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".into(), code.into(), message)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CopyFormat {
    Text,
    Csv,
    Binary,
}

/// Whether `sql` is a COPY statement (the caller then answers it with [`copy_to_stdout`]).
pub fn is_copy(sql: &str) -> bool {
    sql.trim_start().get(..4).is_some_and(|w| w.eq_ignore_ascii_case("copy"))
}

/// Run a `COPY ... TO STDOUT` over the query context.
pub async fn copy_to_stdout(ctx: &SessionContext, sql: &str) -> PgWireResult<Response> {
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).map_err(|e| error("42601", e.to_string()))?;
    let [Statement::Copy { source, to, target, options, legacy_options, .. }] = statements.as_slice() else {
        return Err(error("42601", "expected one COPY statement".into()));
    };
    if !*to || !matches!(target, CopyTarget::Stdout) {
        return Err(error(
            "0A000",
            "only COPY ... TO STDOUT is supported: result tables are written by jobs (INSERT INTO ... SELECT)".into(),
        ));
    }
    let query = match source {
        CopySource::Table { table_name, columns } if columns.is_empty() => format!("SELECT * FROM {table_name}"),
        CopySource::Table { table_name, columns } => format!(
            "SELECT {} FROM {table_name}",
            columns.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        ),
        CopySource::Query(q) => q.to_string(),
    };
    let mut format = CopyFormat::Text;
    let mut header = false;
    let mut delimiter: Option<String> = None;
    let mut null: Option<String> = None;
    for o in options {
        match o {
            CopyOption::Format(f) => {
                format = match f.value.to_ascii_lowercase().as_str() {
                    "text" => CopyFormat::Text,
                    "csv" => CopyFormat::Csv,
                    "binary" => CopyFormat::Binary,
                    other => return Err(error("22023", format!("COPY format \"{other}\" not recognized"))),
                }
            }
            CopyOption::Header(h) => header = *h,
            CopyOption::Delimiter(c) => delimiter = Some(c.to_string()),
            CopyOption::Null(n) => null = Some(n.clone()),
            other => return Err(error("0A000", format!("COPY option {other} is not supported"))),
        }
    }
    for o in legacy_options {
        match o {
            CopyLegacyOption::Binary => format = CopyFormat::Binary,
            CopyLegacyOption::Csv(csv) => {
                format = CopyFormat::Csv;
                header |= csv.iter().any(|c| matches!(c, CopyLegacyCsvOption::Header));
            }
            CopyLegacyOption::Header => header = true,
            CopyLegacyOption::Delimiter(c) => delimiter = Some(c.to_string()),
            CopyLegacyOption::Null(n) => null = Some(n.clone()),
            other => return Err(error("0A000", format!("COPY option {other} is not supported"))),
        }
    }

    let df = ctx.sql(&query).await.map_err(|e| error("42000", e.to_string()))?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let wire = if format == CopyFormat::Binary { Format::UnifiedBinary } else { Format::UnifiedText };
    let fields = Arc::new(arrow_schema_to_pg_fields(&schema, &wire, None)?);
    let stream = df.execute_stream().await.map_err(|e| error("XX000", e.to_string()))?;
    let columns = fields.len();

    let mut head = Vec::new();
    if header && format == CopyFormat::Csv {
        let sep = delimiter.clone().unwrap_or_else(|| ",".into());
        let names: Vec<String> = schema.fields().iter().map(|f| csv_quote(f.name(), &sep)).collect();
        head.push(Ok(CopyData::new(format!("{}\n", names.join(&sep)).into_bytes().into())));
    }
    let make_encoder = {
        let fields = fields.clone();
        move || match format {
            CopyFormat::Binary => CopyEncoder::new_binary(fields.clone()),
            CopyFormat::Csv => {
                let mut o = CopyCsvOptions::default();
                if let Some(d) = &delimiter {
                    o.delimiter = d.as_str().into();
                }
                if let Some(n) = &null {
                    o.null_string = n.as_str().into();
                }
                CopyEncoder::new_csv(fields.clone(), o)
            }
            CopyFormat::Text => {
                let mut o = CopyTextOptions::default();
                if let Some(d) = &delimiter {
                    o.delimiter = d.as_str().into();
                }
                if let Some(n) = &null {
                    o.null_string = n.as_str().into();
                }
                CopyEncoder::new_text(fields.clone(), o)
            }
        }
    };
    let mut encoder = make_encoder();
    let rows = stream.flat_map(move |batch| {
        let out: Vec<PgWireResult<CopyData>> = match batch {
            Err(e) => vec![Err(error("XX000", e.to_string()))],
            Ok(batch) => {
                let mut out = Vec::with_capacity(batch.num_rows());
                let schema = batch.schema();
                'rows: for row in 0..batch.num_rows() {
                    for (c, column) in batch.columns().iter().enumerate() {
                        if let Err(e) = encode_value(&mut encoder, column, row, schema.field(c), &fields[c]) {
                            out.push(Err(e));
                            break 'rows;
                        }
                    }
                    out.push(Ok(encoder.take_copy()));
                }
                out
            }
        };
        futures::stream::iter(out)
    });
    let wire_format = if format == CopyFormat::Binary { 1 } else { 0 };
    Ok(Response::CopyOut(CopyResponse::new(wire_format, columns, futures::stream::iter(head).chain(rows))))
}

/// A CSV header cell.
fn csv_quote(name: &str, sep: &str) -> String {
    if name.contains(sep) || name.contains('"') || name.contains('\n') {
        format!("\"{}\"", name.replace('"', "\"\""))
    } else {
        name.to_string()
    }
}
