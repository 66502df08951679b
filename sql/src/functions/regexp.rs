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

use arrow::array::{BooleanBuilder, StringBuilder};
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
        let call = ExtractCall::new(&args.args)?;
        let mut out = StringBuilder::with_capacity(call.rows, call.rows * 8);
        call.for_each(|row| {
            let group = row.and_then(|(s, regex, idx, locs)| {
                regex.captures_read(locs, s)?;
                locs.get(idx?).map(|(start, end)| &s[start..end])
            });
            out.append_option(group);
        });
        finish(Arc::new(out.finish()), call.all_scalar)
    }
}

/// `REGEXP_EXTRACT(str, regex [, index]) IS NOT NULL`, which the planner calls instead (see
/// `planner::convert`): whether group `index` of the first match exists, without
/// extracting it. Where every match has every group (no optional group, as Nexmark q21's
/// `(&|^)channel_id=([^&]*)`) that is whether the pattern matches at all, which the regex
/// engine answers in one forward scan that stops early, where extracting takes three
/// (the match's end, its start, then its groups).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RegexpExtractIsNotNull {
    signature: Signature,
}

impl RegexpExtractIsNotNull {
    pub fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl Default for RegexpExtractIsNotNull {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for RegexpExtractIsNotNull {
    fn name(&self) -> &str {
        "regexp_extract_is_not_null"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        RegexpExtract::new().coerce_types(arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let call = ExtractCall::new(&args.args)?;
        // IS NOT NULL of a NULL argument, a pattern that does not compile or an index out of
        // range is false, as of the NULL that REGEXP_EXTRACT gives for them.
        let mut out = BooleanBuilder::with_capacity(call.rows);
        call.for_each(|row| {
            let found = match row {
                None | Some((_, _, None, _)) => false,
                Some((s, regex, Some(_), _)) if regex.static_captures_len() == Some(regex.captures_len()) => {
                    regex.is_match(s)
                }
                Some((s, regex, Some(idx), locs)) => regex.captures_read(locs, s).is_some() && locs.get(idx).is_some(),
            };
            out.append_value(found);
        });
        finish(Arc::new(out.finish()), call.all_scalar)
    }
}

/// The arguments of a `REGEXP_EXTRACT` call.
struct ExtractCall<'a> {
    rows: usize,
    all_scalar: bool,
    strings: StrArg<'a>,
    patterns: StrArg<'a>,
    indexes: IntArg,
}

impl<'a> ExtractCall<'a> {
    fn new(args: &'a [ColumnarValue]) -> Result<Self> {
        if args.len() < 2 || args.len() > 3 {
            return exec_err!("REGEXP_EXTRACT expects 2 or 3 arguments, got {}", args.len());
        }
        let (rows, all_scalar) = output_shape(args, 1);
        let strings = StrArg::new("REGEXP_EXTRACT", &args[0])?;
        let patterns = StrArg::new("REGEXP_EXTRACT", &args[1])?;
        let indexes = match args.get(2) {
            Some(a) => IntArg::new("REGEXP_EXTRACT", a)?,
            None => IntArg::Scalar(Some(0)),
        };
        Ok(Self { rows, all_scalar, strings, patterns, indexes })
    }

    /// Calls `each` per row with the string, its compiled pattern, the group index if the
    /// pattern has it, and capture slots for the pattern; with `None` for a row with a NULL
    /// argument or a pattern that does not compile.
    fn for_each(&self, mut each: impl FnMut(Option<(&'a str, &Regex, Option<usize>, &mut CaptureLocations)>)) {
        if let (StrArg::Scalar(pattern), IntArg::Scalar(idx)) = (&self.patterns, &self.indexes) {
            // One pattern and index for every row (nearly always, literals): looked up once.
            let re = pattern.map(|p| Regexes::new().get(p));
            let (Some(regex), Some(idx)) = (re.as_deref().and_then(Option::as_ref), idx) else {
                (0..self.rows).for_each(|_| each(None));
                return;
            };
            let mut locs = regex.capture_locations();
            let idx = usize::try_from(*idx).ok().filter(|idx| *idx < regex.captures_len());
            for i in 0..self.rows {
                match self.strings.get(i) {
                    Some(s) => each(Some((s, regex, idx, &mut locs))),
                    None => each(None),
                }
            }
            return;
        }
        let mut regexes = Regexes::new();
        // The capture slots of the last pattern, reused from row to row (the pattern is
        // nearly always one literal).
        let mut slots: Option<(Arc<Option<Regex>>, CaptureLocations)> = None;
        for i in 0..self.rows {
            let (Some(s), Some(p), Some(idx)) = (self.strings.get(i), self.patterns.get(i), self.indexes.get(i)) else {
                each(None);
                continue;
            };
            let re = regexes.get(p);
            let Some(regex) = (*re).as_ref() else {
                each(None);
                continue;
            };
            let locs = match &mut slots {
                Some((last, locs)) if Arc::ptr_eq(last, &re) => locs,
                _ => &mut slots.insert((Arc::clone(&re), regex.capture_locations())).1,
            };
            let idx = usize::try_from(idx).ok().filter(|idx| *idx < regex.captures_len());
            each(Some((s, regex, idx, locs)));
        }
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

    /// `regexp_extract_is_not_null` is `REGEXP_EXTRACT(..) IS NOT NULL` row for row: patterns
    /// whose every match has every group (answered by `is_match`) and with an optional
    /// group (answered from the groups), NULL arguments, a bad pattern, indexes out of range.
    #[test]
    fn is_not_null_agrees_with_extract() {
        let strings = vec![
            Some("k=1&channel_id=9"),
            Some("channel_id="),
            Some("xchannel_id=3"),
            Some("ab"),
            Some("axb"),
            None,
            Some("a1"),
        ];
        let patterns = ["(&|^)channel_id=([^&]*)", "a(x)?b", "(unclosed", r"[a-z](\d+)"];
        for pattern in patterns {
            for idx in [-1, 0, 1, 2, 3] {
                let args = || {
                    vec![
                        ColumnarValue::Array(Arc::new(StringArray::from(strings.clone()))),
                        ColumnarValue::Scalar(s(pattern)),
                        ColumnarValue::Scalar(i(idx)),
                    ]
                };
                let extracted = invoke_array(&RegexpExtract::new(), args());
                let tested = invoke_array(&RegexpExtractIsNotNull::new(), args());
                let tested = tested.as_boolean();
                assert_eq!(tested.null_count(), 0);
                let expected: Vec<bool> = (0..strings.len()).map(|r| extracted.is_valid(r)).collect();
                let got: Vec<bool> = tested.values().iter().collect();
                assert_eq!(got, expected, "{pattern} group {idx}");
            }
        }
        // A NULL pattern or index: false.
        let tested = invoke_scalar(&RegexpExtractIsNotNull::new(), vec![s("ab"), null_str(), i(0)]);
        assert_eq!(tested, datafusion::common::ScalarValue::Boolean(Some(false)));
        let tested = invoke_scalar(&RegexpExtractIsNotNull::new(), vec![s("ab"), s("a"), i(1)]);
        assert_eq!(tested, datafusion::common::ScalarValue::Boolean(Some(false)));
        let tested = invoke_scalar(&RegexpExtractIsNotNull::new(), vec![s("ab"), s("a(b)")]);
        assert_eq!(tested, datafusion::common::ScalarValue::Boolean(Some(true)));
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
