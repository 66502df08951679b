//! `JSON_VALUE(json, path)`: the scalar at a basic SQL/JSON path, as a string.
//!
//! DataFusion has no JSON functions. This covers Flink's default form — `RETURNING
//! STRING`, `NULL ON EMPTY`, `NULL ON ERROR` — so anything that is not a single scalar at
//! the path gives NULL: a missing member, an object or array, invalid JSON, an
//! unsupported path. Paths: an optional `lax`/`strict` mode, `$`, then `.name`,
//! `."name"`, `['name']`, `["name"]`, `[index]` (and `.['name']`, as in Flink's docs).
//! In lax mode `[0]` on a non-array is the value itself. Strings come back unquoted;
//! numbers as Java prints the value Jackson reads (`1.50` is `1.5`, `1e10` is `1.0E10`);
//! `true`/`false`; JSON `null` is NULL. `RETURNING` other types and `DEFAULT` clauses
//! are not supported.

use std::sync::Arc;

use arrow::array::StringBuilder;
use arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use super::common::{check_arity, coerce_string, finish, output_shape, StrArg};

/// The `JSON_VALUE` function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonValue {
    signature: Signature,
}

impl JsonValue {
    pub fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl Default for JsonValue {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for JsonValue {
    fn name(&self) -> &str {
        "json_value"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("JSON_VALUE", arg_types, 2, 2)?;
        Ok(arg_types.iter().map(coerce_string).collect())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let args = &args.args;
        if args.len() != 2 {
            return exec_err!("JSON_VALUE expects 2 arguments, got {}", args.len());
        }
        let (n, all_scalar) = output_shape(args, 1);
        let docs = StrArg::new("JSON_VALUE", &args[0])?;
        let paths = StrArg::new("JSON_VALUE", &args[1])?;
        let mut last_path: Option<(&str, Option<Path>)> = None;
        let mut out = StringBuilder::with_capacity(n, n * 8);
        for i in 0..n {
            let (Some(doc), Some(path_text)) = (docs.get(i), paths.get(i)) else {
                out.append_null();
                continue;
            };
            if last_path.as_ref().is_none_or(|(t, _)| *t != path_text) {
                last_path = Some((path_text, Path::parse(path_text)));
            }
            let path = last_path.as_ref().and_then(|(_, p)| p.as_ref());
            out.append_option(path.and_then(|p| json_value(doc, p)));
        }
        finish(Arc::new(out.finish()), all_scalar)
    }
}

fn json_value(doc: &str, path: &Path) -> Option<String> {
    let mut parser = Parser { s: doc.as_bytes(), pos: 0, depth: 0 };
    let root = parser.value()?;
    parser.skip_ws();
    if parser.pos != parser.s.len() {
        return None;
    }
    let mut current = &root;
    for step in &path.steps {
        current = match (step, current) {
            (Step::Key(k), Json::Object(members)) => &members.iter().rev().find(|(name, _)| name == k)?.1,
            (Step::Index(i), Json::Array(items)) => items.get(*i)?,
            (Step::Index(0), other) if path.lax => other,
            _ => return None,
        };
    }
    match current {
        Json::Null | Json::Array(_) | Json::Object(_) => None,
        Json::Bool(b) => Some(b.to_string()),
        Json::String(s) => Some(s.clone()),
        Json::Number(text) => Some(java_number_text(text)),
    }
}

/// How Jackson reads a JSON number and Java prints it: integers verbatim, anything with a
/// fraction or exponent as a `double` via `Double.toString`.
fn java_number_text(text: &str) -> String {
    if !text.contains(['.', 'e', 'E']) {
        return text.to_string();
    }
    match text.parse::<f64>() {
        Ok(v) => java_double_to_string(v),
        Err(_) => text.to_string(),
    }
}

/// Java's `Double.toString`: plain notation with at least one fractional digit for
/// 1e-3 <= |v| < 1e7, otherwise `d.dddE±n`.
pub(crate) fn java_double_to_string(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    let abs = v.abs();
    let sign = if v < 0.0 { "-" } else { "" };
    if (1e-3..1e7).contains(&abs) {
        let s = format!("{abs}");
        return if s.contains('.') { format!("{sign}{s}") } else { format!("{sign}{s}.0") };
    }
    let e = format!("{abs:e}");
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let mantissa = if mantissa.contains('.') { mantissa.to_string() } else { format!("{mantissa}.0") };
    format!("{sign}{mantissa}E{exp}")
}

#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// A small recursive-descent JSON parser (RFC 8259), depth-limited.
struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && matches!(self.s[self.pos], b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
    }

    fn eat(&mut self, lit: &[u8]) -> Option<()> {
        self.s[self.pos..].starts_with(lit).then(|| self.pos += lit.len())
    }

    fn value(&mut self) -> Option<Json> {
        self.skip_ws();
        match *self.s.get(self.pos)? {
            b'n' => self.eat(b"null").map(|_| Json::Null),
            b't' => self.eat(b"true").map(|_| Json::Bool(true)),
            b'f' => self.eat(b"false").map(|_| Json::Bool(false)),
            b'"' => self.string().map(Json::String),
            b'[' => {
                self.enter()?;
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_ws();
                if self.eat(b"]").is_none() {
                    loop {
                        items.push(self.value()?);
                        self.skip_ws();
                        if self.eat(b",").is_some() {
                            continue;
                        }
                        self.eat(b"]")?;
                        break;
                    }
                }
                self.depth -= 1;
                Some(Json::Array(items))
            }
            b'{' => {
                self.enter()?;
                self.pos += 1;
                let mut members = Vec::new();
                self.skip_ws();
                if self.eat(b"}").is_none() {
                    loop {
                        self.skip_ws();
                        let key = self.string()?;
                        self.skip_ws();
                        self.eat(b":")?;
                        members.push((key, self.value()?));
                        self.skip_ws();
                        if self.eat(b",").is_some() {
                            continue;
                        }
                        self.eat(b"}")?;
                        break;
                    }
                }
                self.depth -= 1;
                Some(Json::Object(members))
            }
            _ => self.number(),
        }
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= 256).then_some(())
    }

    fn number(&mut self) -> Option<Json> {
        let start = self.pos;
        self.eat(b"-");
        let digits = |p: &mut Self| {
            let s = p.pos;
            while p.pos < p.s.len() && p.s[p.pos].is_ascii_digit() {
                p.pos += 1;
            }
            p.pos - s
        };
        let int_start = self.pos;
        let n = digits(self);
        if n == 0 || (n > 1 && self.s[int_start] == b'0') {
            return None;
        }
        if self.eat(b".").is_some() && digits(self) == 0 {
            return None;
        }
        if matches!(self.s.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.s.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return None;
            }
        }
        let text = std::str::from_utf8(&self.s[start..self.pos]).ok()?;
        Some(Json::Number(text.to_string()))
    }

    fn string(&mut self) -> Option<String> {
        self.eat(b"\"")?;
        let mut out = String::new();
        loop {
            let start = self.pos;
            while self.pos < self.s.len() && !matches!(self.s[self.pos], b'"' | b'\\') && self.s[self.pos] >= 0x20 {
                self.pos += 1;
            }
            out.push_str(std::str::from_utf8(&self.s[start..self.pos]).ok()?);
            match *self.s.get(self.pos)? {
                b'"' => {
                    self.pos += 1;
                    return Some(out);
                }
                b'\\' => {
                    self.pos += 1;
                    let c = *self.s.get(self.pos)?;
                    self.pos += 1;
                    match c {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{08}'),
                        b'f' => out.push('\u{0C}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let c = if (0xD800..0xDC00).contains(&hi) {
                                self.eat(b"\\u")?;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return None;
                                }
                                char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))?
                            } else {
                                char::from_u32(hi)?
                            };
                            out.push(c);
                        }
                        _ => return None,
                    }
                }
                _ => return None, // control character
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = std::str::from_utf8(self.s.get(self.pos..self.pos + 4)?).ok()?;
        self.pos += 4;
        u32::from_str_radix(h, 16).ok()
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// A parsed SQL/JSON path without filters or wildcards.
#[derive(Debug, Clone, PartialEq)]
struct Path {
    lax: bool,
    steps: Vec<Step>,
}

impl Path {
    fn parse(text: &str) -> Option<Self> {
        let t = text.trim();
        let (lax, rest) = if let Some(r) = strip_prefix_ci(t, "strict ") {
            (false, r)
        } else if let Some(r) = strip_prefix_ci(t, "lax ") {
            (true, r)
        } else {
            (true, t)
        };
        let b = rest.trim_start().strip_prefix('$')?.as_bytes();
        let mut steps = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'.' if b.get(i + 1) == Some(&b'[') => i += 1,
                b'.' => {
                    i += 1;
                    if matches!(b.get(i), Some(b'"')) {
                        let (name, next) = quoted(b, i)?;
                        steps.push(Step::Key(name));
                        i = next;
                    } else {
                        let start = i;
                        while i < b.len() && !matches!(b[i], b'.' | b'[' | b' ') {
                            i += 1;
                        }
                        let name = std::str::from_utf8(&b[start..i]).ok()?;
                        if name.is_empty() || name == "*" {
                            return None;
                        }
                        steps.push(Step::Key(name.to_string()));
                    }
                }
                b'[' => {
                    i += 1;
                    while b.get(i) == Some(&b' ') {
                        i += 1;
                    }
                    if matches!(b.get(i), Some(b'\'' | b'"')) {
                        let (name, next) = quoted(b, i)?;
                        steps.push(Step::Key(name));
                        i = next;
                    } else {
                        let start = i;
                        while i < b.len() && b[i].is_ascii_digit() {
                            i += 1;
                        }
                        let idx = std::str::from_utf8(&b[start..i]).ok()?.parse().ok()?;
                        steps.push(Step::Index(idx));
                    }
                    while b.get(i) == Some(&b' ') {
                        i += 1;
                    }
                    if b.get(i) != Some(&b']') {
                        return None;
                    }
                    i += 1;
                }
                b' ' => i += 1,
                _ => return None,
            }
        }
        Some(Self { lax, steps })
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    s.get(..prefix.len()).filter(|h| h.eq_ignore_ascii_case(prefix)).map(|_| &s[prefix.len()..])
}

/// A `'...'` or `"..."` name starting at `i`; returns it and the index after the quote.
fn quoted(b: &[u8], i: usize) -> Option<(String, usize)> {
    let q = b[i];
    let len = b[i + 1..].iter().position(|&c| c == q)?;
    let name = std::str::from_utf8(&b[i + 1..i + 1 + len]).ok()?;
    Some((name.to_string(), i + len + 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::common::test_util::{invoke_array, invoke_scalar, null_str, s};
    use arrow::array::{Array, AsArray, StringArray};

    fn jv(doc: &str, path: &str) -> datafusion::common::ScalarValue {
        invoke_scalar(&JsonValue::new(), vec![s(doc), s(path)])
    }

    #[test]
    fn extracts_scalars() {
        assert_eq!(jv(r#"{"a": true}"#, "$.a"), s("true"));
        assert_eq!(jv(r#"{"a": {"b": "x\"y"}}"#, "$.a.b"), s("x\"y"));
        assert_eq!(jv(r#"{"a": [1, 2.50, 1e10]}"#, "$.a[1]"), s("2.5"));
        assert_eq!(jv(r#"{"a": [1, 2.50, 1e10]}"#, "$.a[2]"), s("1.0E10"));
        assert_eq!(jv(r#"{"a": [1, 2.50, 1e10]}"#, "lax $.a[0]"), s("1"));
        assert_eq!(jv(r#"{"a.b": [0.998, 0.996]}"#, r#"$.["a.b"][0]"#), s("0.998"));
        assert_eq!(jv(r#"{"contains blank": "right"}"#, "strict $.['contains blank']"), s("right"));
        assert_eq!(jv(r#"{"a": "\u00e9\ud83d\ude00"}"#, "$.a"), s("é😀"));
        assert_eq!(jv(r#"{"a": 1, "a": 2}"#, "$.a"), s("2"));
        assert_eq!(jv(r#"{"a": 5}"#, "$.a[0]"), s("5"));
    }

    #[test]
    fn non_scalars_and_errors_are_null() {
        assert_eq!(jv(r#"{"a": true}"#, "$.b"), null_str());
        assert_eq!(jv(r#"{"a": [1]}"#, "$.a"), null_str());
        assert_eq!(jv(r#"{"a": {"b": 1}}"#, "$.a"), null_str());
        assert_eq!(jv(r#"{"a": null}"#, "$.a"), null_str());
        assert_eq!(jv(r#"{"a": tru}"#, "$.a"), null_str());
        assert_eq!(jv(r#"{"a": 1} x"#, "$.a"), null_str());
        assert_eq!(jv(r#"{"a": 1}"#, "a"), null_str());
        assert_eq!(jv(r#"{"a": [1, 2]}"#, "$.a[*]"), null_str());
        assert_eq!(invoke_scalar(&JsonValue::new(), vec![null_str(), s("$.a")]), null_str());

        let docs = StringArray::from(vec![Some(r#"{"id": 7}"#), None, Some("[")]);
        let out = invoke_array(
            &JsonValue::new(),
            vec![ColumnarValue::Array(Arc::new(docs)), ColumnarValue::Scalar(s("$.id"))],
        );
        let out = out.as_string::<i32>();
        assert_eq!(out.value(0), "7");
        assert!(out.is_null(1) && out.is_null(2));
    }

    #[test]
    fn java_double_formatting() {
        assert_eq!(java_double_to_string(100.0), "100.0");
        assert_eq!(java_double_to_string(0.001), "0.001");
        assert_eq!(java_double_to_string(1.0e7), "1.0E7");
        assert_eq!(java_double_to_string(1.234e-5), "1.234E-5");
        assert_eq!(java_double_to_string(-2.5), "-2.5");
    }
}
