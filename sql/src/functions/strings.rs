//! Flink string functions DataFusion lacks or defines differently: `SPLIT_INDEX`,
//! `CONCAT`, `LOCATE`, `HASH_CODE`, `INITCAP`, `IS_ALPHA`, `IS_DIGIT`, `IS_DECIMAL`,
//! `TO_BASE64` and `FROM_BASE64`.
//!
//! Replaced DataFusion functions: `concat` (DataFusion skips NULL arguments, Flink returns
//! NULL if any argument is NULL) and `initcap` (DataFusion capitalises after any
//! non-alphanumeric Unicode character; Flink uses Calcite's ASCII-only rule). DataFusion's
//! `instr` already matches Flink's two-argument `INSTR` and is kept.
//!
//! Java counts string positions in UTF-16 units and Flink's own string type in code
//! points; positions here are code points (`LOCATE`), and `HASH_CODE` hashes UTF-16 units
//! exactly like `String.hashCode`.

use std::sync::{Arc, LazyLock};

use arrow::array::{ArrayRef, BooleanBuilder, Int32Builder, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::{exec_err, plan_err, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use regex::Regex;

use super::common::{check_arity, coerce_integer, coerce_string, finish, is_string, output_shape, IntArg, StrArg};

/// `SPLIT_INDEX(str, separator, index)`: the `index`-th (0-based) piece of `str` split on
/// the literal `separator` (Apache Commons `splitByWholeSeparatorPreserveAllTokens`: empty
/// pieces are kept, an empty separator splits on whitespace, an empty string has no
/// pieces). NULL for a negative or too large index and for NULL arguments.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SplitIndex {
    signature: Signature,
}

impl SplitIndex {
    pub fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl Default for SplitIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for SplitIndex {
    fn name(&self) -> &str {
        "split_index"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("SPLIT_INDEX", arg_types, 3, 3)?;
        Ok(vec![
            coerce_string(&arg_types[0]),
            coerce_string(&arg_types[1]),
            coerce_integer("SPLIT_INDEX", &arg_types[2])?,
        ])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let args = &args.args;
        if args.len() != 3 {
            return exec_err!("SPLIT_INDEX expects 3 arguments, got {}", args.len());
        }
        let (n, all_scalar) = output_shape(args, 1);
        let strings = StrArg::new("SPLIT_INDEX", &args[0])?;
        let separators = StrArg::new("SPLIT_INDEX", &args[1])?;
        let indexes = IntArg::new("SPLIT_INDEX", &args[2])?;
        let mut out = StringBuilder::with_capacity(n, n * 8);
        for i in 0..n {
            let (Some(s), Some(sep), Some(idx)) = (strings.get(i), separators.get(i), indexes.get(i)) else {
                out.append_null();
                continue;
            };
            out.append_option(split_index(s, sep, idx));
        }
        finish(Arc::new(out.finish()), all_scalar)
    }
}

fn split_index<'a>(s: &'a str, sep: &str, index: i64) -> Option<&'a str> {
    let index = usize::try_from(index).ok()?;
    if s.is_empty() {
        return None;
    }
    match sep.as_bytes() {
        [] => s.split(java_is_whitespace).nth(index),
        // One ASCII character (a '/' or ','): found with memchr, where a str pattern sets
        // up a two-way searcher per call (and a char pattern checks each find with memcmp).
        [b] if b.is_ascii() => nth_piece(s, *b, index),
        _ => s.split(sep).nth(index),
    }
}

/// Strings up to this long are scanned a byte at a time for a separator: memchr's setup
/// per call costs more than it saves between separators a few bytes apart (a URL's '/').
const SHORT_SPLIT: usize = 256;

/// `s.split(sep).nth(index)` for an ASCII `sep`.
fn nth_piece(s: &str, sep: u8, index: usize) -> Option<&str> {
    if s.len() <= SHORT_SPLIT {
        let separators = s.bytes().enumerate().filter(|(_, b)| *b == sep).map(|(at, _)| at);
        return nth_between(s, separators, index);
    }
    nth_between(s, memchr::memchr_iter(sep, s.as_bytes()), index)
}

/// The `index`-th piece of `s` between the ASCII separators at `separators`.
fn nth_between(s: &str, separators: impl Iterator<Item = usize>, index: usize) -> Option<&str> {
    let mut start = 0;
    let mut pieces = 0;
    for at in separators {
        if pieces == index {
            // Cut at an ASCII byte: always a character boundary.
            return s.get(start..at);
        }
        pieces += 1;
        start = at + 1;
    }
    (pieces == index).then(|| s.get(start..)).flatten()
}

/// `Character.isWhitespace`: Unicode spaces except the non-breaking ones, plus the ASCII
/// separators U+001C..U+001F.
fn java_is_whitespace(c: char) -> bool {
    match c {
        '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | '\u{1C}'..='\u{1F}' | ' ' => true,
        '\u{85}' | '\u{A0}' | '\u{2007}' | '\u{202F}' => false,
        c => c.is_whitespace(),
    }
}

/// `CONCAT(s1, s2, ...)`: NULL if any argument is NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Concat {
    signature: Signature,
}

impl Concat {
    pub fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl Default for Concat {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for Concat {
    fn name(&self) -> &str {
        "concat"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.is_empty() {
            return plan_err!("CONCAT expects at least one argument");
        }
        Ok(arg_types.iter().map(coerce_string).collect())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let args = &args.args;
        if args.is_empty() {
            return exec_err!("CONCAT expects at least one argument");
        }
        let (n, all_scalar) = output_shape(args, 1);
        let parts = args.iter().map(|a| StrArg::new("CONCAT", a)).collect::<Result<Vec<_>>>()?;
        let mut out = StringBuilder::with_capacity(n, n * 16);
        let mut buf = String::new();
        'rows: for i in 0..n {
            buf.clear();
            for p in &parts {
                match p.get(i) {
                    Some(v) => buf.push_str(v),
                    None => {
                        out.append_null();
                        continue 'rows;
                    }
                }
            }
            out.append_value(&buf);
        }
        finish(Arc::new(out.finish()), all_scalar)
    }
}

/// `LOCATE(needle, haystack [, from])`: 1-based code point position of the first
/// `needle` at or after position `from` (default 1), 0 when absent; an empty needle is
/// found at 1 (Flink's `BinaryStringData.indexOf`).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Locate {
    signature: Signature,
}

impl Locate {
    pub fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl Default for Locate {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for Locate {
    fn name(&self) -> &str {
        "locate"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("LOCATE", arg_types, 2, 3)?;
        let mut out = vec![coerce_string(&arg_types[0]), coerce_string(&arg_types[1])];
        if let Some(t) = arg_types.get(2) {
            out.push(coerce_integer("LOCATE", t)?);
        }
        Ok(out)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let args = &args.args;
        if args.len() < 2 || args.len() > 3 {
            return exec_err!("LOCATE expects 2 or 3 arguments, got {}", args.len());
        }
        let (n, all_scalar) = output_shape(args, 1);
        let needles = StrArg::new("LOCATE", &args[0])?;
        let haystacks = StrArg::new("LOCATE", &args[1])?;
        let froms = match args.get(2) {
            Some(a) => IntArg::new("LOCATE", a)?,
            None => IntArg::Scalar(Some(1)),
        };
        let mut out = Int32Builder::with_capacity(n);
        for i in 0..n {
            match (needles.get(i), haystacks.get(i), froms.get(i)) {
                (Some(needle), Some(hay), Some(from)) => out.append_value(locate(needle, hay, from)),
                _ => out.append_null(),
            }
        }
        finish(Arc::new(out.finish()), all_scalar)
    }
}

fn locate(needle: &str, hay: &str, from: i64) -> i32 {
    if needle.is_empty() {
        return 1;
    }
    let skip = usize::try_from(from.saturating_sub(1)).unwrap_or(0);
    let start = hay.char_indices().nth(skip).map_or(hay.len(), |(b, _)| b);
    match hay[start..].find(needle) {
        Some(b) => {
            let chars = skip.min(hay.chars().count()) + hay[start..start + b].chars().count();
            i32::try_from(chars + 1).unwrap_or(i32::MAX)
        }
        None => 0,
    }
}

/// One-argument string functions returning a string or an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StringFn {
    /// `INITCAP`: Calcite's rule — a word is a run of ASCII letters and digits; its first
    /// letter is upper-cased and the rest lower-cased; other characters are untouched.
    InitCap,
    /// `HASH_CODE`: `Math.abs(s.hashCode())` as `INT` (wrapping like Java).
    HashCode,
    /// `TO_BASE64`: standard Base64 of the UTF-8 bytes, with padding.
    ToBase64,
    /// `FROM_BASE64`: decodes standard Base64 (padding optional) to a string; invalid
    /// input fails, as Java's decoder throws.
    FromBase64,
}

/// The UDF for a [`StringFn`].
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct StringUnary {
    func: StringFn,
    signature: Signature,
}

impl StringUnary {
    pub fn new(func: StringFn) -> Self {
        Self { func, signature: Signature::user_defined(Volatility::Immutable) }
    }

    fn sql_name(&self) -> &'static str {
        match self.func {
            StringFn::InitCap => "INITCAP",
            StringFn::HashCode => "HASH_CODE",
            StringFn::ToBase64 => "TO_BASE64",
            StringFn::FromBase64 => "FROM_BASE64",
        }
    }
}

impl ScalarUDFImpl for StringUnary {
    fn name(&self) -> &str {
        match self.func {
            StringFn::InitCap => "initcap",
            StringFn::HashCode => "hash_code",
            StringFn::ToBase64 => "to_base64",
            StringFn::FromBase64 => "from_base64",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(self.sql_name(), arg_types, 1, 1)?;
        Ok(vec![coerce_string(&arg_types[0])])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.func {
            StringFn::HashCode => DataType::Int32,
            _ => DataType::Utf8,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let args = &args.args;
        if args.len() != 1 {
            return exec_err!("{} expects 1 argument, got {}", self.sql_name(), args.len());
        }
        let (n, all_scalar) = output_shape(args, 1);
        let values = StrArg::new(self.sql_name(), &args[0])?;
        let array: ArrayRef = match self.func {
            StringFn::HashCode => {
                let mut out = Int32Builder::with_capacity(n);
                for i in 0..n {
                    out.append_option(values.get(i).map(|s| java_hash_code(s).wrapping_abs()));
                }
                Arc::new(out.finish())
            }
            func => {
                let mut out = StringBuilder::with_capacity(n, n * 16);
                for i in 0..n {
                    let Some(s) = values.get(i) else {
                        out.append_null();
                        continue;
                    };
                    match func {
                        StringFn::InitCap => out.append_value(initcap(s)),
                        StringFn::ToBase64 => out.append_value(base64_encode(s.as_bytes())),
                        _ => match base64_decode(s) {
                            Ok(bytes) => out.append_value(String::from_utf8_lossy(&bytes)),
                            Err(e) => return exec_err!("FROM_BASE64: {e}"),
                        },
                    }
                }
                Arc::new(out.finish())
            }
        };
        finish(array, all_scalar)
    }
}

/// Java's `String.hashCode` over UTF-16 code units.
fn java_hash_code(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(i32::from(u)))
}

/// Calcite's `SqlFunctions.initcap`.
fn initcap(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            if c.is_ascii_alphanumeric() {
                start = false;
                out.push(c.to_ascii_uppercase());
            } else {
                out.push(c);
            }
        } else if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else {
            start = true;
            out.push(c);
        }
    }
    out
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(BASE64[((v >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `java.util.Base64.getDecoder().decode`: standard alphabet, padding optional but
/// correct when present, nothing after it.
fn base64_decode(s: &str) -> std::result::Result<Vec<u8>, String> {
    let src = s.as_bytes();
    let mut out = Vec::with_capacity(src.len() / 4 * 3);
    let (mut bits, mut shift) = (0u32, 18i32);
    let mut sp = 0;
    while sp < src.len() {
        let b = src[sp];
        sp += 1;
        if b == b'=' {
            if (shift == 6 && (sp == src.len() || src[sp] != b'=')) || shift == 18 {
                return Err("Input byte array has wrong 4-byte ending unit".to_string());
            }
            if shift == 6 {
                sp += 1;
            }
            break;
        }
        let Some(v) = BASE64.iter().position(|&c| c == b) else {
            return Err(format!("Illegal base64 character {b:x}"));
        };
        bits |= (v as u32) << shift;
        shift -= 6;
        if shift < 0 {
            out.extend_from_slice(&[(bits >> 16) as u8, (bits >> 8) as u8, bits as u8]);
            bits = 0;
            shift = 18;
        }
    }
    match shift {
        6 => out.push((bits >> 16) as u8),
        0 => out.extend_from_slice(&[(bits >> 16) as u8, (bits >> 8) as u8]),
        12 => return Err("Last unit does not have enough valid bits".to_string()),
        _ => {}
    }
    if sp < src.len() {
        return Err(format!("Input byte array has incorrect ending byte at {sp}"));
    }
    Ok(out)
}

/// `IS_ALPHA`, `IS_DIGIT`, `IS_DECIMAL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StringPredicate {
    /// All characters are letters (`Character.isLetter`), non-empty.
    IsAlpha,
    /// All characters are digits (`Character.isDigit`), non-empty; integers are digits.
    IsDigit,
    /// Parses as a Java `int`, `long` or `double`; any number is decimal.
    IsDecimal,
}

/// The UDF for a [`StringPredicate`]. NULL input gives `FALSE`, as in Flink.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct StringCheck {
    predicate: StringPredicate,
    signature: Signature,
}

impl StringCheck {
    pub fn new(predicate: StringPredicate) -> Self {
        Self { predicate, signature: Signature::user_defined(Volatility::Immutable) }
    }

    fn sql_name(&self) -> &'static str {
        match self.predicate {
            StringPredicate::IsAlpha => "IS_ALPHA",
            StringPredicate::IsDigit => "IS_DIGIT",
            StringPredicate::IsDecimal => "IS_DECIMAL",
        }
    }
}

static LETTERS: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"\A\p{L}+\z").ok());
static DIGITS: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"\A\p{Nd}+\z").ok());
static JAVA_INTEGER: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"\A[+-]?\p{Nd}+\z").ok());
static JAVA_DOUBLE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(concat!(
        r"\A[+-]?(?:NaN|Infinity|(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?",
        r"|0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+)[fFdD]?)\z"
    ))
    .ok()
});

fn matches(re: &LazyLock<Option<Regex>>, s: &str) -> bool {
    re.as_ref().is_some_and(|re| re.is_match(s))
}

fn is_alpha(s: &str) -> bool {
    // Java tests each UTF-16 unit, so characters outside the BMP never count.
    s.chars().all(|c| (c as u32) < 0x10000) && matches(&LETTERS, s)
}

fn is_digit(s: &str) -> bool {
    s.chars().all(|c| (c as u32) < 0x10000) && matches(&DIGITS, s)
}

fn is_decimal(s: &str) -> bool {
    if s.is_empty() {
        return false;
    }
    let trimmed = s.trim_matches(|c: char| c <= ' ');
    matches(&JAVA_INTEGER, s) || matches(&JAVA_DOUBLE, trimmed)
}

impl ScalarUDFImpl for StringCheck {
    fn name(&self) -> &str {
        match self.predicate {
            StringPredicate::IsAlpha => "is_alpha",
            StringPredicate::IsDigit => "is_digit",
            StringPredicate::IsDecimal => "is_decimal",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(self.sql_name(), arg_types, 1, 1)?;
        let t = &arg_types[0];
        Ok(vec![if t.is_numeric() { t.clone() } else { coerce_string(t) }])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let args = &args.args;
        if args.len() != 1 {
            return exec_err!("{} expects 1 argument, got {}", self.sql_name(), args.len());
        }
        let (n, all_scalar) = output_shape(args, 1);
        let dt = args[0].data_type();
        let mut out = BooleanBuilder::with_capacity(n);
        if is_string(&dt) || dt == DataType::Null {
            let values = StrArg::new(self.sql_name(), &args[0])?;
            for i in 0..n {
                let v = values.get(i).is_some_and(|s| match self.predicate {
                    StringPredicate::IsAlpha => is_alpha(s),
                    StringPredicate::IsDigit => is_digit(s),
                    StringPredicate::IsDecimal => is_decimal(s),
                });
                out.append_value(v);
            }
        } else {
            // Numbers: Flink answers from the Java type, for non-NULL values.
            let answer = match self.predicate {
                StringPredicate::IsAlpha => false,
                StringPredicate::IsDigit => dt.is_integer(),
                StringPredicate::IsDecimal => dt.is_numeric(),
            };
            let array = args[0].to_array(n)?;
            for i in 0..n {
                out.append_value(answer && !arrow::array::Array::is_null(&array, i));
            }
        }
        finish(Arc::new(out.finish()), all_scalar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::common::test_util::{i, invoke, invoke_array, invoke_scalar, null_str, s};
    use arrow::array::{Array, AsArray, StringArray};
    use datafusion::common::ScalarValue;

    #[test]
    fn split_index_cases() {
        let f = SplitIndex::new();
        let run = |v: &str, sep: &str, idx: i64| invoke_scalar(&f, vec![s(v), s(sep), i(idx)]);
        assert_eq!(run("a;b;c", ";", 1), s("b"));
        assert_eq!(run("a;b;c", ";", 0), s("a"));
        assert_eq!(run("a;b;c", ";", 5), null_str());
        assert_eq!(run("a;b;c", ";", -1), null_str());
        assert_eq!(run("a;;c", ";", 1), s(""));
        assert_eq!(run("a;b;", ";", 2), s(""));
        assert_eq!(run("a<>b<>c", "<>", 2), s("c"));
        assert_eq!(run("a.b", ".", 1), s("b"));
        assert_eq!(run("a b", "", 1), s("b"));
        assert_eq!(run("", ";", 0), null_str());
        assert_eq!(run("abc", "x", 0), s("abc"));
        assert_eq!(invoke_scalar(&f, vec![null_str(), s(";"), i(0)]), null_str());
        assert_eq!(invoke_scalar(&f, vec![s("a;b"), s(";"), ScalarValue::Int64(None)]), null_str());

        let values = StringArray::from(vec![Some("x,y"), None, Some("z")]);
        let out = invoke_array(
            &f,
            vec![ColumnarValue::Array(Arc::new(values)), ColumnarValue::Scalar(s(",")), ColumnarValue::Scalar(i(1))],
        );
        let out = out.as_string::<i32>();
        assert_eq!(out.value(0), "y");
        assert!(out.is_null(1) && out.is_null(2));
    }

    #[test]
    fn one_ascii_separator_splits_as_str_split() {
        // Short texts are scanned a byte at a time, long ones (over `SHORT_SPLIT`) with memchr.
        let long = format!("{}/é/{}//", "a/".repeat(SHORT_SPLIT), "b".repeat(SHORT_SPLIT));
        let texts = ["", "/", "//", "a", "/a", "a/", "a//b", "https://www.nexmark.com/a/b/item.htm", "é/ü/x", "/é//"];
        for text in texts.iter().copied().chain([long.as_str()]) {
            for index in (0..8).chain(SHORT_SPLIT - 2..SHORT_SPLIT + 6) {
                assert_eq!(nth_piece(text, b'/', index), text.split('/').nth(index), "{text:?} {index}");
            }
        }
    }

    #[test]
    fn concat_is_null_if_any_argument_is() {
        let f = Concat::new();
        assert_eq!(invoke_scalar(&f, vec![s("AA"), s("BB"), s("CC")]), s("AABBCC"));
        assert_eq!(invoke_scalar(&f, vec![s("AA"), null_str(), s("CC")]), null_str());
        let values = StringArray::from(vec![Some("a"), None]);
        let out = invoke_array(&f, vec![ColumnarValue::Array(Arc::new(values)), ColumnarValue::Scalar(s("-"))]);
        let out = out.as_string::<i32>();
        assert_eq!(out.value(0), "a-");
        assert!(out.is_null(1));
    }

    #[test]
    fn locate_positions() {
        let f = Locate::new();
        let int = |v| ScalarValue::Int32(Some(v));
        assert_eq!(invoke_scalar(&f, vec![s("b"), s("abcb")]), int(2));
        assert_eq!(invoke_scalar(&f, vec![s("b"), s("abcb"), i(3)]), int(4));
        assert_eq!(invoke_scalar(&f, vec![s("x"), s("abc")]), int(0));
        assert_eq!(invoke_scalar(&f, vec![s("ü"), s("äöü")]), int(3));
        assert_eq!(invoke_scalar(&f, vec![s(""), s("abc"), i(3)]), int(1));
        assert_eq!(invoke_scalar(&f, vec![s("b"), s("abc"), i(-5)]), int(2));
        assert_eq!(invoke_scalar(&f, vec![s("b"), s("abc"), i(10)]), int(0));
        assert_eq!(invoke_scalar(&f, vec![null_str(), s("abc")]), ScalarValue::Int32(None));
    }

    #[test]
    fn unary_string_functions() {
        let hash = StringUnary::new(StringFn::HashCode);
        assert_eq!(invoke_scalar(&hash, vec![s("hello")]), ScalarValue::Int32(Some(99_162_322)));
        assert_eq!(invoke_scalar(&hash, vec![s("")]), ScalarValue::Int32(Some(0)));
        // "polygenelubricants".hashCode() is Integer.MIN_VALUE; abs keeps it.
        assert_eq!(invoke_scalar(&hash, vec![s("polygenelubricants")]), ScalarValue::Int32(Some(i32::MIN)));
        assert_eq!(invoke_scalar(&hash, vec![s("Aa")]), invoke_scalar(&hash, vec![s("BB")]));

        let initcap = StringUnary::new(StringFn::InitCap);
        assert_eq!(invoke_scalar(&initcap, vec![s("hello wORLD-foo_bar 1st")]), s("Hello World-Foo_Bar 1st"));
        assert_eq!(invoke_scalar(&initcap, vec![s("élan vital")]), s("éLan Vital"));

        let enc = StringUnary::new(StringFn::ToBase64);
        let dec = StringUnary::new(StringFn::FromBase64);
        assert_eq!(invoke_scalar(&enc, vec![s("hello world")]), s("aGVsbG8gd29ybGQ="));
        assert_eq!(invoke_scalar(&enc, vec![s("ab")]), s("YWI="));
        assert_eq!(invoke_scalar(&dec, vec![s("aGVsbG8gd29ybGQ=")]), s("hello world"));
        assert_eq!(invoke_scalar(&dec, vec![s("YWI")]), s("ab"));
        assert_eq!(invoke_scalar(&dec, vec![null_str()]), null_str());
        assert!(invoke(&dec, vec![ColumnarValue::Scalar(s("a"))]).is_err());
        assert!(invoke(&dec, vec![ColumnarValue::Scalar(s("YW=I"))]).is_err());
        assert!(invoke(&dec, vec![ColumnarValue::Scalar(s("YQ==x"))]).is_err());
    }

    #[test]
    fn predicates() {
        let alpha = StringCheck::new(StringPredicate::IsAlpha);
        let digit = StringCheck::new(StringPredicate::IsDigit);
        let decimal = StringCheck::new(StringPredicate::IsDecimal);
        let b = |v| ScalarValue::Boolean(Some(v));
        assert_eq!(invoke_scalar(&alpha, vec![s("abcÉ")]), b(true));
        assert_eq!(invoke_scalar(&alpha, vec![s("ab1")]), b(false));
        assert_eq!(invoke_scalar(&alpha, vec![s("")]), b(false));
        assert_eq!(invoke_scalar(&alpha, vec![null_str()]), b(false));
        assert_eq!(invoke_scalar(&digit, vec![s("0123")]), b(true));
        assert_eq!(invoke_scalar(&digit, vec![s("-1")]), b(false));
        assert_eq!(invoke_scalar(&digit, vec![i(-1)]), b(true));
        assert_eq!(invoke_scalar(&digit, vec![ScalarValue::Float64(Some(1.0))]), b(false));
        for ok in ["1", "-1", "+1.5", "1e10", ".5", "5.", " 1.5 ", "1.5f", "NaN", "-Infinity", "0x1p3"] {
            assert_eq!(invoke_scalar(&decimal, vec![s(ok)]), b(true), "{ok}");
        }
        for bad in ["", "abc", "1.2.3", "e5", "1e", "--1"] {
            assert_eq!(invoke_scalar(&decimal, vec![s(bad)]), b(false), "{bad}");
        }
        assert_eq!(invoke_scalar(&decimal, vec![ScalarValue::Float64(Some(1.0))]), b(true));
        assert_eq!(invoke_scalar(&decimal, vec![ScalarValue::Float64(None)]), b(false));
    }
}
