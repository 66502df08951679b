//! What Postgres clients ask a server on connect and between queries, answered as
//! PostgreSQL 16 would: `version()`, `current_setting()`/`set_config()`, `SHOW <setting>`,
//! and the session statements drivers and pools send (`DISCARD ALL`, `RESET ALL`,
//! `UNLISTEN *`, `pg_advisory_unlock_all()`), plus the catalog helpers reflection tools call
//! (`pg_get_serial_sequence`, `json_build_object`).
//!
//! Session settings are the server's defaults: a `SET` of a Postgres parameter is accepted
//! and does not change how Eddy answers (timestamps are UTC, dates ISO).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::prelude::SessionContext;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use datafusion_postgres::pgwire::api::results::FieldInfo;

use crate::service::Reply;

/// The version clients read: SQLAlchemy and others parse `PostgreSQL <major>.<minor>`.
pub fn version_string() -> String {
    format!("PostgreSQL 16.6 on x86_64-pc-linux-gnu, compiled by rustc (Eddy {})", env!("CARGO_PKG_VERSION"))
}

/// Postgres parameters as a PostgreSQL 16 server with Eddy's defaults reports them.
pub fn setting(name: &str) -> Option<String> {
    let v = match name.to_ascii_lowercase().as_str() {
        // As the startup message's server_version says (libpq and drivers read both).
        "server_version" => {
            return Some(
                datafusion_postgres::pgwire::api::auth::DefaultServerParameterProvider::default().server_version,
            )
        }
        "server_version_num" => "160006",
        "server_encoding" | "client_encoding" => "UTF8",
        "standard_conforming_strings" | "integer_datetimes" => "on",
        "timezone" | "log_timezone" => "UTC",
        "datestyle" => "ISO, MDY",
        "intervalstyle" => "postgres",
        "search_path" => "\"$user\", public",
        "transaction_isolation" | "default_transaction_isolation" => "read committed",
        "transaction_read_only" | "default_transaction_read_only" | "jit" | "is_superuser" | "in_hot_standby" => "off",
        "max_identifier_length" => "63",
        "max_index_keys" => "32",
        "extra_float_digits" => "1",
        "application_name" => "",
        "lc_collate" | "lc_ctype" | "lc_messages" | "lc_monetary" | "lc_numeric" | "lc_time" => "C.UTF-8",
        "bytea_output" => "hex",
        "statement_timeout" | "lock_timeout" | "idle_in_transaction_session_timeout" => "0",
        "max_connections" => "100",
        "block_size" => "8192",
        _ => return None,
    };
    Some(v.to_string())
}

/// Register the functions of this module in the query context.
pub fn register_functions(ctx: &SessionContext) {
    let text = |s: Option<String>| ScalarValue::Utf8(s);
    for f in [
        Fixed::new("version", 0, text(Some(version_string()))),
        Fixed::new("pg_advisory_unlock_all", 0, text(None)),
        // Result tables have no sequences, comments or view definitions.
        Fixed::new("pg_get_serial_sequence", 2, text(None)),
        Fixed::new("obj_description", 2, text(None)),
        Fixed::new("col_description", 2, text(None)),
        Fixed::new("shobj_description", 2, text(None)),
        Fixed::new("pg_get_viewdef", 1, text(None)),
        // One schema, everything in it visible.
        Fixed::new("pg_collation_is_visible", 1, ScalarValue::Boolean(Some(true))),
        Fixed::new("pg_type_is_visible", 1, ScalarValue::Boolean(Some(true))),
        Fixed::new("pg_function_is_visible", 1, ScalarValue::Boolean(Some(true))),
        Fixed::new("pg_is_in_recovery", 0, ScalarValue::Boolean(Some(false))),
    ] {
        ctx.register_udf(ScalarUDF::from(f));
    }
    ctx.register_udf(ScalarUDF::from(CurrentSetting::new()));
    ctx.register_udf(ScalarUDF::from(SetConfig::new()));
    ctx.register_udf(ScalarUDF::from(JsonBuildObject::new()));
    ctx.register_udf(ScalarUDF::from(ExpandArray::new()));
}

/// A function answering the same value whatever its arguments.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Fixed {
    name: &'static str,
    value: ScalarValue,
    signature: Signature,
}

impl Fixed {
    fn new(name: &'static str, args: usize, value: ScalarValue) -> Self {
        let signature = match args {
            0 => Signature::nullary(Volatility::Stable),
            n => Signature::any(n, Volatility::Stable),
        };
        Self { name, value, signature }
    }
}

impl ScalarUDFImpl for Fixed {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(self.value.data_type())
    }
    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Ok(ColumnarValue::Scalar(self.value.clone()))
    }
}

/// Map each row's text argument through `f`.
fn map_text(arg: &ColumnarValue, f: impl Fn(&str) -> Option<String>) -> DfResult<ColumnarValue> {
    Ok(match arg {
        ColumnarValue::Scalar(s) => {
            let text = match s {
                ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => v.clone(),
                other => Some(other.to_string()),
            };
            ColumnarValue::Scalar(ScalarValue::Utf8(text.and_then(|t| f(&t))))
        }
        ColumnarValue::Array(a) => {
            let a = arrow::compute::cast(a, &DataType::Utf8)?;
            let strings = a.as_string::<i32>();
            let out: StringArray =
                (0..strings.len()).map(|i| strings.is_valid(i).then(|| f(strings.value(i))).flatten()).collect();
            ColumnarValue::Array(Arc::new(out))
        }
    })
}

/// `current_setting(name [, missing_ok])`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentSetting {
    signature: Signature,
}

impl CurrentSetting {
    fn new() -> Self {
        Self { signature: Signature::variadic_any(Volatility::Stable) }
    }
}

impl ScalarUDFImpl for CurrentSetting {
    fn name(&self) -> &str {
        "current_setting"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let Some(name) = args.args.first() else {
            return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)));
        };
        // An unknown name answers NULL (as with missing_ok) rather than failing a client's
        // connect sequence.
        map_text(name, setting)
    }
}

/// `set_config(name, value, is_local)`: accepted; answers the value.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SetConfig {
    signature: Signature,
}

impl SetConfig {
    fn new() -> Self {
        Self { signature: Signature::any(3, Volatility::Volatile) }
    }
}

impl ScalarUDFImpl for SetConfig {
    fn name(&self) -> &str {
        "set_config"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        match args.args.get(1) {
            Some(v) => map_text(v, |s| Some(s.to_string())),
            None => Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None))),
        }
    }
}

/// `json_build_object(k1, v1, ...)` as JSON text.
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonBuildObject {
    signature: Signature,
}

impl JsonBuildObject {
    fn new() -> Self {
        Self { signature: Signature::variadic_any(Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for JsonBuildObject {
    fn name(&self) -> &str {
        "json_build_object"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let arrays: Vec<ArrayRef> = args.args.iter().map(|a| a.to_array(rows.max(1))).collect::<DfResult<_>>()?;
        let mut out = StringBuilder::new();
        for row in 0..rows.max(1) {
            let mut object = serde_json::Map::new();
            for pair in arrays.chunks(2) {
                let key = ScalarValue::try_from_array(&pair[0], row)?;
                let value = match pair.get(1) {
                    Some(v) => ScalarValue::try_from_array(v, row)?,
                    None => ScalarValue::Null,
                };
                let value = match value {
                    v if v.is_null() => serde_json::Value::Null,
                    ScalarValue::Boolean(Some(b)) => serde_json::Value::Bool(b),
                    v @ (ScalarValue::Int8(_)
                    | ScalarValue::Int16(_)
                    | ScalarValue::Int32(_)
                    | ScalarValue::Int64(_)
                    | ScalarValue::UInt8(_)
                    | ScalarValue::UInt16(_)
                    | ScalarValue::UInt32(_)
                    | ScalarValue::UInt64(_)
                    | ScalarValue::Float32(_)
                    | ScalarValue::Float64(_)) => {
                        serde_json::from_str(&v.to_string()).unwrap_or(serde_json::Value::String(v.to_string()))
                    }
                    v => serde_json::Value::String(v.to_string()),
                };
                object.insert(key.to_string(), value);
            }
            out.append_value(serde_json::Value::Object(object).to_string());
        }
        let array: ArrayRef = Arc::new(out.finish());
        Ok(if rows == 0 {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&array, 0)?)
        } else {
            ColumnarValue::Array(array)
        })
    }
}

/// Postgres' name for a result column DataFusion named after its expression: a function
/// call is named after the function (`count(*)` -> `count`), a qualified column after the
/// column (`t.id` -> `id`). `None`: keep the name (an alias, or another expression).
pub fn pg_column_name(name: &str) -> Option<String> {
    let is_ident = |s: &str| {
        !s.is_empty()
            && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if name.ends_with(')') {
        let (func, _) = name.split_once('(')?;
        return is_ident(func).then(|| func.to_ascii_lowercase());
    }
    let (table, column) = name.split_once('.')?;
    (is_ident(table) && is_ident(column)).then(|| column.to_string())
}

/// A result column with its Postgres name (see [`pg_column_name`]).
pub fn pg_field(f: &FieldInfo) -> FieldInfo {
    match pg_column_name(f.name()) {
        Some(name) => FieldInfo::new(name, f.table_id(), f.column_id(), f.datatype().clone(), f.format())
            .with_format_options(f.format_options().clone())
            .with_type_size(f.type_size())
            .with_type_modifier(f.type_modifier()),
        None => f.clone(),
    }
}

/// The statements of a simple query, split at top-level semicolons (empty ones dropped).
pub fn split_statements(sql: &str) -> Vec<String> {
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else { return vec![sql.to_string()] };
    let mut out = Vec::new();
    let mut current = String::new();
    for t in tokens {
        if t == Token::SemiColon {
            if !current.trim().is_empty() {
                out.push(std::mem::take(&mut current));
            }
            current.clear();
        } else {
            current.push_str(&t.to_string());
        }
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

/// A session statement answered without DataFusion: `DISCARD`, `RESET`, `UNLISTEN`, `LISTEN`,
/// `SHOW <setting>`, `SHOW ALL`, `SHOW TRANSACTION ISOLATION LEVEL`.
pub fn session_statement(sql: &str) -> Option<Reply> {
    let words: Vec<String> = sql.split_whitespace().map(|w| w.trim_end_matches(';').to_ascii_lowercase()).collect();
    let w = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    let rows = |column: &str, value: String| {
        let schema = Arc::new(Schema::new(vec![Field::new(column, DataType::Utf8, true)]));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(vec![value])) as ArrayRef]).ok()?;
        Some(Reply::Rows(schema, vec![batch]))
    };
    match (w(0), w(1)) {
        ("discard", _) => Some(Reply::Command(format!("DISCARD {}", w(1).to_ascii_uppercase()))),
        ("reset", _) => Some(Reply::Command("RESET".into())),
        ("unlisten", _) => Some(Reply::Command("UNLISTEN".into())),
        ("listen", _) => Some(Reply::Command("LISTEN".into())),
        ("show", "transaction") if w(2) == "isolation" => rows("transaction_isolation", "read committed".into()),
        ("show", "all") => {
            let names = [
                "application_name",
                "client_encoding",
                "DateStyle",
                "integer_datetimes",
                "IntervalStyle",
                "search_path",
                "server_encoding",
                "server_version",
                "server_version_num",
                "standard_conforming_strings",
                "TimeZone",
                "transaction_isolation",
            ];
            let schema = Arc::new(Schema::new(vec![
                Field::new("name", DataType::Utf8, false),
                Field::new("setting", DataType::Utf8, true),
                Field::new("description", DataType::Utf8, true),
            ]));
            let values: Vec<Option<String>> = names.iter().map(|n| setting(n)).collect();
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(names.to_vec())) as ArrayRef,
                    Arc::new(StringArray::from(values)),
                    Arc::new(StringArray::from(vec![Option::<String>::None; names.len()])),
                ],
            )
            .ok()?;
            Some(Reply::Rows(schema, vec![batch]))
        }
        ("show", name) if w(2).is_empty() => {
            let name = name.trim_matches('"');
            let value = setting(name)?;
            // Postgres names the column after the parameter, lower-cased.
            rows(name, value)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_top_level_semicolons_only() {
        let s = split_statements("SELECT pg_advisory_unlock_all();\nCLOSE ALL;\nUNLISTEN *;\nRESET ALL;");
        assert_eq!(s.len(), 4);
        assert_eq!(s[1].trim(), "CLOSE ALL");
        assert_eq!(split_statements("SELECT 'a;b'; SELECT 2").len(), 2);
        assert!(split_statements(" ; ").is_empty());
    }

    #[test]
    fn result_columns_are_named_as_postgres_names_them() {
        assert_eq!(pg_column_name("count(*)").as_deref(), Some("count"));
        assert_eq!(pg_column_name("sum(all_bids.id)").as_deref(), Some("sum"));
        assert_eq!(pg_column_name("all_bids.id").as_deref(), Some("id"));
        assert_eq!(pg_column_name("total"), None);
        assert_eq!(pg_column_name("a + b"), None);
        assert_eq!(pg_column_name("(a)"), None);
    }

    #[test]
    fn show_answers_settings_as_postgres_names_them() {
        let Some(Reply::Rows(schema, batches)) = session_statement("SHOW server_version_num") else { panic!() };
        assert_eq!(schema.field(0).name(), "server_version_num");
        assert_eq!(batches[0].column(0).as_string::<i32>().value(0), "160006");
        assert!(session_statement("SHOW TABLES").is_none());
        assert!(matches!(session_statement("DISCARD ALL"), Some(Reply::Command(t)) if t == "DISCARD ALL"));
        assert!(version_string().starts_with("PostgreSQL 16.6 "));
    }
}

/// `pg_expandarray(a)`: the `(x, n)` pairs of an array's elements and their 1-based
/// positions, as pgjdbc's `information_schema._pg_expandarray` yields them (see
/// crate::pg_rewrite, which unnests them).
#[derive(Debug, PartialEq, Eq, Hash)]
struct ExpandArray {
    signature: Signature,
}

impl ExpandArray {
    fn new() -> Self {
        Self { signature: Signature::any(1, Volatility::Immutable) }
    }

    fn pair_fields(element: &DataType) -> arrow::datatypes::Fields {
        vec![Field::new("x", element.clone(), true), Field::new("n", DataType::Int32, false)].into()
    }

    fn pair(element: &DataType) -> DataType {
        DataType::Struct(Self::pair_fields(element))
    }
}

impl ScalarUDFImpl for ExpandArray {
    fn name(&self) -> &str {
        "pg_expandarray"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        match args.first() {
            Some(DataType::List(item)) => {
                Ok(DataType::List(Arc::new(Field::new_list_field(Self::pair(item.data_type()), true))))
            }
            other => Err(datafusion::error::DataFusionError::Plan(format!(
                "_pg_expandarray() takes an array, not {other:?}"
            ))),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let Some(arg) = args.args.first() else {
            return Err(datafusion::error::DataFusionError::Plan("_pg_expandarray() takes an array".into()));
        };
        let lists = arg.to_array(args.number_rows)?;
        let lists = lists.as_list::<i32>();
        let DataType::List(item) = lists.data_type() else {
            return Err(datafusion::error::DataFusionError::Plan("_pg_expandarray() takes an array".into()));
        };
        // The elements stay as they are; n counts 1.. within each list.
        let mut positions = Vec::with_capacity(lists.values().len());
        for offsets in lists.offsets().windows(2) {
            positions.extend(1..=(offsets[1] - offsets[0]));
        }
        let fields = Self::pair_fields(item.data_type());
        let start = lists.offsets()[0] as usize;
        let len = *lists.offsets().last().unwrap_or(&0) as usize - start;
        let pairs = arrow::array::StructArray::try_new(
            fields,
            vec![lists.values().slice(start, len), Arc::new(arrow::array::Int32Array::from(positions))],
            None,
        )?;
        let offsets =
            arrow::buffer::OffsetBuffer::new(lists.offsets().iter().map(|o| o - lists.offsets()[0]).collect());
        let out = arrow::array::ListArray::try_new(
            Arc::new(Field::new_list_field(Self::pair(item.data_type()), true)),
            offsets,
            Arc::new(pairs),
            lists.nulls().cloned(),
        )?;
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}
