//! Flink's built-in scalar functions that DataFusion lacks or implements differently.
//!
//! The planner registers [`flink_functions`] after DataFusion's built-ins, so a function
//! here with the same name as a DataFusion one replaces it.
//!
//! Every function is vectorised over Arrow arrays (scalars stay scalars), treats NULLs as
//! Flink does, and never panics on input: it returns NULL where Flink returns NULL and an
//! execution error where Flink throws.
//!
//! # Functions
//!
//! | name | arguments | result |
//! |---|---|---|
//! | `date_format` | timestamp / timestamp_ltz / date / string, Java pattern | STRING |
//! | `timestampdiff` | `'UNIT'`, t1, t2 (date or timestamp) | INT |
//! | `floor_ts`, `ceil_ts` | `'UNIT'`, date or timestamp | the input type |
//! | `round` | number [, INT] | the input type (DECIMAL: Flink's rounded type) |
//! | `to_timestamp` | string [, Java pattern] | TIMESTAMP(3) |
//! | `to_timestamp_ltz` | number [, precision] or string [, pattern [, zone]] | TIMESTAMP_LTZ(3) |
//! | `to_date` | string [, Java pattern] | DATE |
//! | `unix_timestamp` | () or string [, pattern] or timestamp | BIGINT |
//! | `from_unixtime` | BIGINT [, pattern] | STRING |
//! | `convert_tz` | string, from zone, to zone | STRING |
//! | `regexp_extract` | string, regex [, INT group (default 0)] | STRING |
//! | `regexp_extract_all` | string, regex [, INT group (default 0)] | ARRAY<STRING> |
//! | `regexp_replace` | string, regex, replacement | STRING |
//! | `split_index` | string, separator, INT | STRING |
//! | `concat` | string, ... | STRING |
//! | `locate` | needle, haystack [, INT from] | INT |
//! | `initcap`, `to_base64`, `from_base64` | string | STRING |
//! | `hash_code` | string | INT |
//! | `is_alpha`, `is_digit`, `is_decimal` | string or number | BOOLEAN |
//! | `str_to_map` | string [, pair regex, key-value regex] | MAP<STRING, STRING> |
//! | `mod` | number, number | the divisor's type (DECIMAL: Flink's modulo type) |
//! | `json_value` | json, path | STRING |
//! | `now` (`current_timestamp`), `proctime` | () | TIMESTAMP_LTZ(3), read per batch |
//! | `localtimestamp` | () | TIMESTAMP(3) (UTC), read per batch |
//! | `year`, `quarter`, `month`, `week`, `dayofyear`, `dayofmonth`, `dayofweek`, `hour`, `minute`, `second` | date or timestamp | BIGINT |
//!
//! Units for `timestampdiff`/`floor_ts`/`ceil_ts` are strings such as `'SECOND'`
//! (plurals and the `SQL_TSI_` prefix are accepted); the planner rewrites
//! `TIMESTAMPDIFF(SECOND, ...)`, `FLOOR(t TO MINUTE)` and `CEIL(t TO MINUTE)` into them.
//!
//! # Replaced DataFusion functions, and why
//!
//! | name | DataFusion | Flink |
//! |---|---|---|
//! | `date_format` | alias of `to_char`, chrono `%` patterns | Java patterns |
//! | `to_timestamp` | chrono patterns, nanosecond result, errors on bad input | Java pattern, `TIMESTAMP(3)`, NULL on bad input |
//! | `to_date` | chrono patterns | Java pattern (`SimpleDateFormat`) |
//! | `from_unixtime` | returns a timestamp | returns a formatted string |
//! | `round` | rounds the binary double (`ROUND(1.15, 1)` = 1.1) | half-up on the shortest decimal form (= 1.2) |
//! | `concat` | skips NULL arguments | NULL if any argument is NULL |
//! | `regexp_replace` | first match only unless flag `g`; `\1`/`${1}` group references | all matches; the replacement is literal text |
//! | `initcap` | Unicode word rules | Calcite's ASCII-only rules |
//! | `now` | stable: folded to one constant at plan time | read per record |
//! | `avg` (aggregate) | DOUBLE for integers | the integer type, truncated (`AVG(BIGINT)` is BIGINT) |
//!
//! Functions DataFusion already has with Flink's semantics (`instr`, `split_part`, ...)
//! are deliberately not redefined.

use std::sync::Arc;

use datafusion::logical_expr::ScalarUDF;

pub mod avg;
pub mod clock;
pub(crate) mod common;
pub mod date_format;
pub mod date_part;
pub mod floor_ceil;
pub(crate) mod java_datetime_format;
pub(crate) mod java_datetime_parse;
pub(crate) mod java_regex;
pub(crate) mod java_timezone;
pub mod json_value;
pub mod modulo;
pub mod regexp;
pub mod regexp_extract_all;
pub mod round;
pub mod str_to_map;
pub mod strings;
pub(crate) mod time_unit;
pub mod timestampdiff;
pub mod to_timestamp;
pub mod unix_time;

/// Every Flink function defined here, each registered under its Flink name in lower case.
pub fn flink_functions() -> Vec<Arc<ScalarUDF>> {
    let mut fns = vec![
        udf(date_format::DateFormat::new()),
        udf(timestampdiff::TimestampDiff::new()),
        udf(floor_ceil::TimeFloorCeil::floor()),
        udf(floor_ceil::TimeFloorCeil::ceil()),
        udf(round::Round::new()),
        udf(to_timestamp::ToTimestamp::new()),
        udf(to_timestamp::ToTimestampLtz::new()),
        udf(to_timestamp::ToDate::new()),
        udf(unix_time::UnixTimestamp::new()),
        udf(unix_time::FromUnixtime::new()),
        udf(unix_time::ConvertTz::new()),
        udf(regexp::RegexpExtract::new()),
        udf(regexp_extract_all::RegexpExtractAll::new()),
        udf(regexp::RegexpReplace::new()),
        udf(strings::SplitIndex::new()),
        udf(strings::Concat::new()),
        udf(strings::Locate::new()),
        udf(strings::StringUnary::new(strings::StringFn::InitCap)),
        udf(strings::StringUnary::new(strings::StringFn::HashCode)),
        udf(strings::StringUnary::new(strings::StringFn::ToBase64)),
        udf(strings::StringUnary::new(strings::StringFn::FromBase64)),
        udf(strings::StringCheck::new(strings::StringPredicate::IsAlpha)),
        udf(strings::StringCheck::new(strings::StringPredicate::IsDigit)),
        udf(strings::StringCheck::new(strings::StringPredicate::IsDecimal)),
        udf(str_to_map::StrToMap::new()),
        udf(modulo::Mod::new()),
        udf(json_value::JsonValue::new()),
        udf(clock::Clock::new(clock::ClockFn::Now)),
        udf(clock::Clock::new(clock::ClockFn::LocalTimestamp)),
        udf(clock::Clock::new(clock::ClockFn::Proctime)),
    ];
    fns.extend(date_part::DatePartKind::ALL.into_iter().map(|k| udf(date_part::DatePart::new(k))));
    fns
}

/// Flink's aggregate functions that differ from DataFusion's (registered after them).
pub fn flink_aggregates() -> Vec<Arc<datafusion::logical_expr::AggregateUDF>> {
    vec![Arc::new(datafusion::logical_expr::AggregateUDF::new_from_impl(avg::FlinkAvg::new()))]
}

fn udf(f: impl datafusion::logical_expr::ScalarUDFImpl + 'static) -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(f))
}

#[cfg(test)]
mod tests;
