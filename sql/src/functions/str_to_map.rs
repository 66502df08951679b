//! `STR_TO_MAP(text [, pair_delimiter, key_value_delimiter])`: splits `text` into pairs on
//! `pair_delimiter` (default `,`) and each pair into key and value on the first
//! `key_value_delimiter` (default `=`), giving a `MAP<STRING, STRING>`.
//!
//! DataFusion has no such function. Both delimiters are Java regular expressions, split
//! with `String.split` rules (trailing empty pairs dropped, no empty leading pair for a
//! zero-width match); a pair without the key-value delimiter maps to NULL; a later
//! duplicate key wins. Flink builds a `java.util.HashMap`, so the entries come out in
//! `HashMap` iteration order — reproduced here, since it is visible when a map is
//! printed. An empty `text` is an empty map; NULL arguments give NULL; an invalid
//! delimiter pattern fails like Java's `PatternSyntaxException`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{MapBuilder, MapFieldNames, StringBuilder};
use arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use regex::Regex;

use super::common::{check_arity, coerce_string, finish, output_shape, StrArg};
use super::java_regex::Regexes;

/// The `STR_TO_MAP` function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct StrToMap {
    signature: Signature,
}

impl StrToMap {
    pub fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl Default for StrToMap {
    fn default() -> Self {
        Self::new()
    }
}

fn field_names() -> MapFieldNames {
    MapFieldNames { entry: "entries".to_string(), key: "key".to_string(), value: "value".to_string() }
}

/// `MAP<STRING, STRING>` as the builder produces it.
fn map_type() -> DataType {
    let entries =
        Fields::from(vec![Field::new("key", DataType::Utf8, false), Field::new("value", DataType::Utf8, true)]);
    DataType::Map(Arc::new(Field::new("entries", DataType::Struct(entries), false)), false)
}

impl ScalarUDFImpl for StrToMap {
    fn name(&self) -> &str {
        "str_to_map"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("STR_TO_MAP", arg_types, 1, 3)?;
        if arg_types.len() == 2 {
            return datafusion::common::plan_err!("STR_TO_MAP takes 1 or 3 arguments");
        }
        Ok(arg_types.iter().map(coerce_string).collect())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(map_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let args = &args.args;
        if args.len() != 1 && args.len() != 3 {
            return exec_err!("STR_TO_MAP expects 1 or 3 arguments, got {}", args.len());
        }
        let (n, all_scalar) = output_shape(args, 1);
        let texts = StrArg::new("STR_TO_MAP", &args[0])?;
        let (pair_delims, kv_delims) = if args.len() == 3 {
            (StrArg::new("STR_TO_MAP", &args[1])?, StrArg::new("STR_TO_MAP", &args[2])?)
        } else {
            (StrArg::Scalar(Some(",")), StrArg::Scalar(Some("=")))
        };
        let mut pair_res = Regexes::new();
        let mut kv_res = Regexes::new();
        let mut out = MapBuilder::new(Some(field_names()), StringBuilder::new(), StringBuilder::new());
        for i in 0..n {
            let (Some(text), Some(pd), Some(kd)) = (texts.get(i), pair_delims.get(i), kv_delims.get(i)) else {
                out.append(false)?;
                continue;
            };
            let (pair_re, kv_re) = (pair_res.get(pd), kv_res.get(kd));
            let (Some(pair_re), Some(kv_re)) = ((*pair_re).as_ref(), (*kv_re).as_ref()) else {
                return exec_err!("STR_TO_MAP: invalid delimiter pattern '{pd}' or '{kd}'");
            };
            for (k, v) in str_to_map(text, pair_re, kv_re) {
                out.keys().append_value(k);
                out.values().append_option(v);
            }
            out.append(true)?;
        }
        finish(Arc::new(out.finish()), all_scalar)
    }
}

/// The entries of the map, in Java `HashMap` iteration order.
fn str_to_map<'a>(text: &'a str, pair_re: &Regex, kv_re: &Regex) -> Vec<(&'a str, Option<&'a str>)> {
    if text.is_empty() {
        return Vec::new();
    }
    let pairs = java_split(pair_re, text, 0);
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut entries: Vec<(&str, Option<&str>)> = Vec::new();
    for pair in &pairs {
        let kv = java_split(kv_re, pair, 2);
        let (k, v) = match kv.as_slice() {
            [k, v, ..] => (*k, Some(*v)),
            _ => (*pair, None),
        };
        match index.get(k) {
            Some(&at) => entries[at].1 = v,
            None => {
                index.insert(k, entries.len());
                entries.push((k, v));
            }
        }
    }
    hash_map_order(&mut entries, pairs.len());
    entries
}

/// `String.split(regex, limit)`: `limit` 0 drops trailing empty strings, a positive limit
/// caps the number of pieces.
fn java_split<'a>(re: &Regex, s: &'a str, limit: usize) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut index = 0;
    let mut matched = false;
    for m in re.find_iter(s) {
        if limit > 0 && out.len() + 1 >= limit {
            break;
        }
        if m.start() == 0 && m.end() == 0 {
            continue; // no empty leading piece for a zero-width match at the start
        }
        out.push(&s[index..m.start()]);
        index = m.end();
        matched = true;
    }
    if !matched {
        return vec![s];
    }
    out.push(&s[index..]);
    if limit == 0 {
        while out.last().is_some_and(|p| p.is_empty()) {
            out.pop();
        }
    }
    out
}

/// Reorders entries (given in first-insertion order) into the iteration order of a
/// `java.util.HashMap` created with `new HashMap<>(initial_capacity)`: by bucket of the
/// final table, then insertion order within a bucket.
fn hash_map_order(entries: &mut [(&str, Option<&str>)], initial_capacity: usize) {
    let mut capacity = initial_capacity.max(1).next_power_of_two();
    while entries.len() > capacity * 3 / 4 {
        capacity *= 2;
    }
    let mask = (capacity - 1) as u32;
    entries.sort_by_key(|(k, _)| {
        let h = k.encode_utf16().fold(0u32, |h, u| h.wrapping_mul(31).wrapping_add(u32::from(u)));
        (h ^ (h >> 16)) & mask
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::common::test_util::{invoke_array, invoke_scalar, null_str, s};
    use arrow::array::{Array, AsArray, MapArray, StringArray};

    fn entries(map: &MapArray, row: usize) -> Vec<(String, Option<String>)> {
        let e = map.value(row);
        let keys = e.column(0).as_string::<i32>();
        let values = e.column(1).as_string::<i32>();
        (0..e.len())
            .map(|i| (keys.value(i).to_string(), (!values.is_null(i)).then(|| values.value(i).to_string())))
            .collect()
    }

    fn kv(k: &str, v: Option<&str>) -> (String, Option<String>) {
        (k.to_string(), v.map(str::to_string))
    }

    #[test]
    fn splits_pairs() {
        let values = StringArray::from(vec![Some("a=1,b=2,c"), None, Some(""), Some("x=1=2,,x=3,")]);
        let out = invoke_array(&StrToMap::new(), vec![ColumnarValue::Array(Arc::new(values))]);
        let map = out.as_map();
        assert_eq!(entries(map, 0), vec![kv("a", Some("1")), kv("b", Some("2")), kv("c", None)]);
        assert!(map.is_null(1));
        assert_eq!(entries(map, 2), vec![]);
        assert_eq!(entries(map, 3), vec![kv("x", Some("3")), kv("", None)]);
    }

    #[test]
    fn custom_regex_delimiters_and_hash_order() {
        let out = invoke_scalar(&StrToMap::new(), vec![s("k1:v1;k2:v2"), s(";"), s(":")]);
        let arr = out.to_array().unwrap();
        assert_eq!(entries(arr.as_map(), 0), vec![kv("k1", Some("v1")), kv("k2", Some("v2"))]);
        // '|' is a regex metacharacter and must be escaped, as in Flink.
        let out = invoke_scalar(&StrToMap::new(), vec![s("a=1|b=2"), s(r"\|"), s("=")]);
        assert_eq!(entries(out.to_array().unwrap().as_map(), 0), vec![kv("a", Some("1")), kv("b", Some("2"))]);
        // HashMap order: by bucket (hash 97 for "a", 98 for "b" in a table of 4).
        let out = invoke_scalar(&StrToMap::new(), vec![s("b=1,a=2")]);
        assert_eq!(entries(out.to_array().unwrap().as_map(), 0), vec![kv("a", Some("2")), kv("b", Some("1"))]);
        let out = invoke_scalar(&StrToMap::new(), vec![null_str()]);
        assert!(out.is_null());
    }

    #[test]
    fn java_split_rules() {
        let comma = Regex::new(",").unwrap();
        assert_eq!(java_split(&comma, "a,b,,", 0), vec!["a", "b"]);
        assert_eq!(java_split(&comma, ",a", 0), vec!["", "a"]);
        assert_eq!(java_split(&comma, "abc", 0), vec!["abc"]);
        assert_eq!(java_split(&comma, "a,b,c", 2), vec!["a", "b,c"]);
        assert_eq!(java_split(&comma, "a,", 2), vec!["a", ""]);
        let empty = Regex::new("").unwrap();
        assert_eq!(java_split(&empty, "ab", 0), vec!["a", "b"]);
    }
}
