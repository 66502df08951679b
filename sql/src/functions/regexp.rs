//! `REGEXP_EXTRACT(str, regex [, index])` and `REGEXP_REPLACE(str, regex, replacement)`
//! with Flink's semantics (Java patterns, see the `java_regex` module).
//!
//! - `REGEXP_EXTRACT` returns group `index` of the first match; without `index` Flink
//!   returns the whole match (group 0). No match, a group that did not participate, an
//!   index out of range, an invalid pattern or any NULL argument give NULL. DataFusion has
//!   no such function.
//! - `REGEXP_REPLACE` replaces **all** matches, and Flink passes the replacement through
//!   `Matcher.quoteReplacement`, so it is literal text: `$1` is the two characters `$1`,
//!   not a group reference. DataFusion's `regexp_replace` replaces only the first match
//!   (without the `g` flag) and expands `\1`/`${1}`, so this replaces it. An invalid
//!   pattern gives NULL, as Flink catches the exception.

use std::sync::Arc;

use arrow::array::StringBuilder;
use arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use regex::{CaptureLocations, NoExpand, Regex};

use super::common::{check_arity, coerce_integer, coerce_string, finish, output_shape, IntArg, StrArg};
use super::java_regex::Regexes;

/// The `REGEXP_EXTRACT` function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RegexpExtract {
    signature: Signature,
}

impl RegexpExtract {
    pub fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl Default for RegexpExtract {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for RegexpExtract {
    fn name(&self) -> &str {
        "regexp_extract"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("REGEXP_EXTRACT", arg_types, 2, 3)?;
        let mut out = vec![coerce_string(&arg_types[0]), coerce_string(&arg_types[1])];
        if let Some(t) = arg_types.get(2) {
            out.push(coerce_integer("REGEXP_EXTRACT", t)?);
        }
        Ok(out)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let args = &args.args;
        if args.len() < 2 || args.len() > 3 {
            return exec_err!("REGEXP_EXTRACT expects 2 or 3 arguments, got {}", args.len());
        }
        let (n, all_scalar) = output_shape(args, 1);
        let strings = StrArg::new("REGEXP_EXTRACT", &args[0])?;
        let patterns = StrArg::new("REGEXP_EXTRACT", &args[1])?;
        let indexes = match args.get(2) {
            Some(a) => IntArg::new("REGEXP_EXTRACT", a)?,
            None => IntArg::Scalar(Some(0)),
        };
        let mut regexes = Regexes::new();
        let mut out = StringBuilder::with_capacity(n, n * 8);
        // The capture slots of the last pattern, reused from row to row (the pattern is
        // nearly always one literal).
        let mut slots: Option<(Arc<Option<Regex>>, CaptureLocations)> = None;
        for i in 0..n {
            let (Some(s), Some(p), Some(idx)) = (strings.get(i), patterns.get(i), indexes.get(i)) else {
                out.append_null();
                continue;
            };
            let re = regexes.get(p);
            let Some(regex) = (*re).as_ref() else {
                out.append_null();
                continue;
            };
            let locs = match &mut slots {
                Some((last, locs)) if Arc::ptr_eq(last, &re) => locs,
                _ => &mut slots.insert((Arc::clone(&re), regex.capture_locations())).1,
            };
            let group = usize::try_from(idx).ok().filter(|idx| *idx < regex.captures_len()).and_then(|idx| {
                regex.captures_read(locs, s)?;
                locs.get(idx).map(|(start, end)| &s[start..end])
            });
            out.append_option(group);
        }
        finish(Arc::new(out.finish()), all_scalar)
    }
}

/// The `REGEXP_REPLACE` function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RegexpReplace {
    signature: Signature,
}

impl RegexpReplace {
    pub fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl Default for RegexpReplace {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for RegexpReplace {
    fn name(&self) -> &str {
        "regexp_replace"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("REGEXP_REPLACE", arg_types, 3, 3)?;
        Ok(arg_types.iter().map(coerce_string).collect())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let args = &args.args;
        if args.len() != 3 {
            return exec_err!("REGEXP_REPLACE expects 3 arguments, got {}", args.len());
        }
        let (n, all_scalar) = output_shape(args, 1);
        let strings = StrArg::new("REGEXP_REPLACE", &args[0])?;
        let patterns = StrArg::new("REGEXP_REPLACE", &args[1])?;
        let replacements = StrArg::new("REGEXP_REPLACE", &args[2])?;
        let mut regexes = Regexes::new();
        let mut out = StringBuilder::with_capacity(n, n * 16);
        for i in 0..n {
            let (Some(s), Some(p), Some(r)) = (strings.get(i), patterns.get(i), replacements.get(i)) else {
                out.append_null();
                continue;
            };
            let re = regexes.get(p);
            match (*re).as_ref() {
                Some(re) => out.append_value(re.replace_all(s, NoExpand(r))),
                None => out.append_null(),
            }
        }
        finish(Arc::new(out.finish()), all_scalar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::common::test_util::{i, invoke_array, invoke_scalar, null_str, s};
    use arrow::array::{Array, AsArray, StringArray};

    fn extract(v: &str, re: &str, idx: i64) -> datafusion::common::ScalarValue {
        invoke_scalar(&RegexpExtract::new(), vec![s(v), s(re), i(idx)])
    }

    #[test]
    fn extracts_groups() {
        let re = "([a-zA-Z0-9._]+)@([a-zA-Z0-9.]+)";
        assert_eq!(extract("charlie.364@example.com", re, 2), s("example.com"));
        assert_eq!(extract("charlie.364@example.com", re, 1), s("charlie.364"));
        assert_eq!(extract("charlie.364@example.com", re, 0), s("charlie.364@example.com"));
        assert_eq!(extract("no at sign", re, 1), null_str());
        assert_eq!(extract("charlie.364@example.com", re, 3), null_str());
        assert_eq!(extract("charlie.364@example.com", re, -1), null_str());
        assert_eq!(extract("foothebar", "foo(.*?)(bar)", 2), s("bar"));
        assert_eq!(extract("ab", "a(x)?b", 1), null_str());
        assert_eq!(extract("abc", "(unclosed", 1), null_str());
        assert_eq!(invoke_scalar(&RegexpExtract::new(), vec![s("100-200"), s(r"(\d+)-(\d+)")]), s("100-200"));
        assert_eq!(invoke_scalar(&RegexpExtract::new(), vec![null_str(), s("a"), i(0)]), null_str());
    }

    #[test]
    fn extracts_over_arrays() {
        let values = StringArray::from(vec![Some("a1"), None, Some("b22"), Some("c")]);
        let out = invoke_array(
            &RegexpExtract::new(),
            vec![
                ColumnarValue::Array(Arc::new(values)),
                ColumnarValue::Scalar(s(r"[a-z](\d+)")),
                ColumnarValue::Scalar(i(1)),
            ],
        );
        let out = out.as_string::<i32>();
        assert_eq!(out.value(0), "1");
        assert!(out.is_null(1));
        assert_eq!(out.value(2), "22");
        assert!(out.is_null(3));
        // The capture slots go from row to row: an optional group matched in one row is
        // NULL in the next where it takes no part, and a pattern per row is its own.
        let values = StringArray::from(vec!["axb", "ab", "axb", "x9"]);
        let patterns = StringArray::from(vec!["a(x)?b", "a(x)?b", "a(x)?b", "(x)(9)"]);
        let out = invoke_array(
            &RegexpExtract::new(),
            vec![
                ColumnarValue::Array(Arc::new(values)),
                ColumnarValue::Array(Arc::new(patterns)),
                ColumnarValue::Scalar(i(1)),
            ],
        );
        let out = out.as_string::<i32>();
        assert_eq!(out.iter().collect::<Vec<_>>(), [Some("x"), None, Some("x"), Some("x")]);
    }

    #[test]
    fn replaces_all_matches_literally() {
        let replace = |v: &str, re: &str, r: &str| invoke_scalar(&RegexpReplace::new(), vec![s(v), s(re), s(r)]);
        assert_eq!(replace("foobar", "oo|ar", ""), s("fb"));
        assert_eq!(replace("a1b22c333", r"\d+", "#"), s("a#b#c#"));
        assert_eq!(replace("111222333", r"(\d{3})\d*(\d{3})", "$1***$2"), s("$1***$2"));
        assert_eq!(replace("abc", "", "-"), s("-a-b-c-"));
        assert_eq!(replace("abc", "(", "-"), null_str());
        assert_eq!(invoke_scalar(&RegexpReplace::new(), vec![s("abc"), s("b"), null_str()]), null_str());
    }
}
