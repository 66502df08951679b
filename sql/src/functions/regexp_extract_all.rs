//! `REGEXP_EXTRACT_ALL(str, regex [, index])` with Flink's semantics (Flink 2.0,
//! FLINK-35931; Java patterns, see the `java_regex` module): an `ARRAY<STRING>` of group
//! `index` of every match, left to right. Without `index` the whole match (group 0) is
//! taken, as Flink does (Spark's default is 1).
//!
//! No match gives an empty array; a group that did not take part in a match gives a NULL
//! element. Any NULL argument, an invalid pattern, or an index below 0 or above the
//! pattern's group count give NULL. DataFusion has no such function (its `regexp_match`
//! returns the groups of the first match only).
//!
//! `CROSS JOIN UNNEST(REGEXP_EXTRACT_ALL(text, '#(\w+)', 1)) AS t (tag)` turns each post
//! into one row per hashtag.

use std::sync::Arc;

use arrow::array::{ListBuilder, StringBuilder};
use arrow::datatypes::{DataType, Field};
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use super::common::{check_arity, coerce_integer, coerce_string, finish, output_shape, IntArg, StrArg};
use super::java_regex::Regexes;

/// The `REGEXP_EXTRACT_ALL` function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RegexpExtractAll {
    signature: Signature,
}

impl RegexpExtractAll {
    pub fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl Default for RegexpExtractAll {
    fn default() -> Self {
        Self::new()
    }
}

/// The element field of the result (DataFusion's default list field).
fn item() -> Field {
    Field::new("item", DataType::Utf8, true)
}

impl ScalarUDFImpl for RegexpExtractAll {
    fn name(&self) -> &str {
        "regexp_extract_all"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("REGEXP_EXTRACT_ALL", arg_types, 2, 3)?;
        let mut out = vec![coerce_string(&arg_types[0]), coerce_string(&arg_types[1])];
        if let Some(t) = arg_types.get(2) {
            out.push(coerce_integer("REGEXP_EXTRACT_ALL", t)?);
        }
        Ok(out)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(item())))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let args = &args.args;
        if args.len() < 2 || args.len() > 3 {
            return exec_err!("REGEXP_EXTRACT_ALL expects 2 or 3 arguments, got {}", args.len());
        }
        let (n, all_scalar) = output_shape(args, 1);
        let strings = StrArg::new("REGEXP_EXTRACT_ALL", &args[0])?;
        let patterns = StrArg::new("REGEXP_EXTRACT_ALL", &args[1])?;
        let indexes = match args.get(2) {
            Some(a) => IntArg::new("REGEXP_EXTRACT_ALL", a)?,
            None => IntArg::Scalar(Some(0)),
        };
        let mut regexes = Regexes::new();
        let mut out = ListBuilder::with_capacity(StringBuilder::with_capacity(n * 2, n * 16), n).with_field(item());
        for i in 0..n {
            let (Some(s), Some(p), Some(idx)) = (strings.get(i), patterns.get(i), indexes.get(i)) else {
                out.append_null();
                continue;
            };
            let re = regexes.get(p);
            let Some(re) = (*re).as_ref() else {
                out.append_null();
                continue;
            };
            // `captures_len` counts group 0 as well: Java's `groupCount() < index` is this.
            let Some(idx) = usize::try_from(idx).ok().filter(|idx| *idx < re.captures_len()) else {
                out.append_null();
                continue;
            };
            for caps in re.captures_iter(s) {
                out.values().append_option(caps.get(idx).map(|m| m.as_str()));
            }
            out.append(true);
        }
        finish(Arc::new(out.finish()), all_scalar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::common::test_util::{i, invoke_array, invoke_scalar, null_str, s};
    use arrow::array::{Array, AsArray, StringArray};
    use datafusion::common::ScalarValue;

    /// The elements of a one-row result, `None` for a NULL array.
    fn all(args: Vec<ScalarValue>) -> Option<Vec<Option<String>>> {
        let out = invoke_scalar(&RegexpExtractAll::new(), args).to_array().unwrap();
        let list = out.as_list::<i32>();
        if list.is_null(0) {
            return None;
        }
        let values = list.value(0);
        let values = values.as_string::<i32>();
        Some((0..values.len()).map(|k| values.is_valid(k).then(|| values.value(k).to_string())).collect())
    }

    fn some(items: &[&str]) -> Option<Vec<Option<String>>> {
        Some(items.iter().map(|x| Some(x.to_string())).collect())
    }

    #[test]
    fn extracts_every_match() {
        let re = r"(\d+)-(\d+)";
        assert_eq!(all(vec![s("100-200, 300-400"), s(re), i(1)]), some(&["100", "300"]));
        assert_eq!(all(vec![s("100-200, 300-400"), s(re), i(2)]), some(&["200", "400"]));
        assert_eq!(all(vec![s("100-200, 300-400"), s(re)]), some(&["100-200", "300-400"]), "group 0 by default");
        assert_eq!(all(vec![s("loving #rust and #flink #rust"), s(r"#(\w+)"), i(1)]), some(&["rust", "flink", "rust"]));
        assert_eq!(all(vec![s("no tags"), s(r"#(\w+)"), i(1)]), some(&[]), "no match: an empty array");
        assert_eq!(all(vec![s("ab b"), s("(a)?b"), i(1)]), Some(vec![Some("a".into()), None]));
        assert_eq!(all(vec![s("100-200"), s(re), i(3)]), None, "no such group");
        assert_eq!(all(vec![s("100-200"), s(re), i(-1)]), None);
        assert_eq!(all(vec![s("abc"), s("(unclosed"), i(1)]), None, "an invalid pattern");
        assert_eq!(all(vec![null_str(), s(re), i(1)]), None);
    }

    #[test]
    fn extracts_over_arrays() {
        let texts = StringArray::from(vec![Some("#a #b"), None, Some("plain"), Some("#c")]);
        let out = invoke_array(
            &RegexpExtractAll::new(),
            vec![
                ColumnarValue::Array(Arc::new(texts)),
                ColumnarValue::Scalar(s(r"#(\w+)")),
                ColumnarValue::Scalar(i(1)),
            ],
        );
        let list = out.as_list::<i32>();
        assert_eq!(list.len(), 4);
        let row = |r: usize| -> Vec<String> {
            let v = list.value(r);
            let v = v.as_string::<i32>();
            (0..v.len()).map(|k| v.value(k).to_string()).collect()
        };
        assert_eq!(row(0), ["a", "b"]);
        assert!(list.is_null(1));
        assert!(row(2).is_empty() && list.is_valid(2));
        assert_eq!(row(3), ["c"]);
    }
}
