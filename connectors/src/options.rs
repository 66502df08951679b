//! Typed access to a table's `WITH (...)` options, with errors that name the option.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use crate::{ConnectorError, Result};

/// The `WITH ('k' = 'v', ...)` options of a table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    map: BTreeMap<String, String>,
}

impl Options {
    /// Options from key/value pairs.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self { map: pairs.into_iter().collect() }
    }

    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    /// All options, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Options whose key starts with `prefix`, with the prefix removed.
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.iter().filter_map(move |(k, v)| k.strip_prefix(prefix).map(|rest| (rest, v)))
    }

    /// A required option.
    pub fn required(&self, table: &str, key: &str) -> Result<&str> {
        self.get(key).ok_or_else(|| ConnectorError::options(table, format!("missing required option '{key}'")))
    }

    /// An option parsed with `FromStr`, or `None` when absent.
    pub fn parse<T: FromStr>(&self, table: &str, key: &str) -> Result<Option<T>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.trim().parse::<T>().map(Some).map_err(|_| {
                ConnectorError::options(
                    table,
                    format!("option '{key}' = '{v}' is not a valid {}", short_type_name::<T>()),
                )
            }),
        }
    }

    /// A boolean option (`true`/`false`, any case), or `default` when absent.
    pub fn bool_or(&self, table: &str, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(ConnectorError::options(table, format!("option '{key}' = '{v}' must be 'true' or 'false'"))),
        }
    }

    /// A memory-size option in Flink's syntax (`'128MB'`, `'1 kb'`, `'200b'`, `'4096'` = bytes;
    /// units are powers of 1024 as in Flink's `MemorySize`), or `None` when absent.
    pub fn memory_size(&self, table: &str, key: &str) -> Result<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => parse_memory_size(v).map(Some).ok_or_else(|| {
                ConnectorError::options(
                    table,
                    format!("option '{key}' = '{v}' is not a memory size (e.g. '128MB', '64 kb')"),
                )
            }),
        }
    }

    /// Keys of all options, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }

    /// A duration option in Flink's syntax (`'10 s'`, `'200ms'`, `'1 min'`, `'5'` = ms).
    pub fn duration(&self, table: &str, key: &str) -> Result<Option<Duration>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => parse_duration(v).map(Some).ok_or_else(|| {
                ConnectorError::options(
                    table,
                    format!("option '{key}' = '{v}' is not a duration (e.g. '10 s', '200 ms')"),
                )
            }),
        }
    }
}

/// Parse a Flink duration string: a number and an optional unit (default milliseconds).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let ms = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => n,
        "s" | "sec" | "secs" | "second" | "seconds" => n.checked_mul(1_000)?,
        "min" | "m" | "minute" | "minutes" => n.checked_mul(60_000)?,
        "h" | "hour" | "hours" => n.checked_mul(3_600_000)?,
        "d" | "day" | "days" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

/// Parse a Flink memory size: a number and an optional unit (default bytes), 1024-based.
pub fn parse_memory_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" | "bytes" => 1,
        "k" | "kb" | "kibibytes" => 1 << 10,
        "m" | "mb" | "mebibytes" => 1 << 20,
        "g" | "gb" | "gibibytes" => 1 << 30,
        "t" | "tb" | "tebibytes" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(factor)
}

fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10 s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("200ms"), Some(Duration::from_millis(200)));
        assert_eq!(parse_duration("0 ms"), Some(Duration::ZERO));
        assert_eq!(parse_duration("5"), Some(Duration::from_millis(5)));
        assert_eq!(parse_duration("1 min"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("x"), None);
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory_size("128MB"), Some(128 << 20));
        assert_eq!(parse_memory_size("1 kb"), Some(1024));
        assert_eq!(parse_memory_size("200b"), Some(200));
        assert_eq!(parse_memory_size("4096"), Some(4096));
        assert_eq!(parse_memory_size("12 parsecs"), None);
    }

    #[test]
    fn typed_access_names_the_option() {
        let o = Options::new([("rows-per-second".to_string(), "abc".to_string())]);
        let e = o.parse::<u64>("t", "rows-per-second").unwrap_err().to_string();
        assert!(e.contains("rows-per-second"), "{e}");
        assert!(o.required("t", "path").unwrap_err().to_string().contains("'path'"));
    }
}
