//! Java date-time patterns (`yyyy-MM-dd HH:mm:ss.SSS`, `EEE, d MMM yyyy`, ...) compiled once
//! into a token list, then used to format and parse values row by row.
//!
//! Flink uses two Java pattern engines and they disagree in places, so both are modelled:
//! - [`Dialect::DateTimeFormatter`] (`java.time`), used by `DATE_FORMAT` on timestamps and
//!   by `TO_TIMESTAMP(str, fmt)`: `S..S` is the fraction of second truncated to that many
//!   digits, numeric fields are fixed-width when the letter is doubled, `u` is the year,
//!   parsing is strict and must consume the whole input.
//! - [`Dialect::SimpleDateFormat`] (`java.text`), used by `DATE_FORMAT` on strings and
//!   dates, `UNIX_TIMESTAMP`, `FROM_UNIXTIME`, `TO_DATE(str, fmt)` and `CONVERT_TZ`: `S` is
//!   the millisecond *number*, `u` is the ISO day of week, numbers are parsed greedily,
//!   out-of-range values roll over (lenient calendar) and trailing text is ignored.
//!
//! chrono's own `%` format items cannot express these rules (`SS` as two fraction digits,
//! `S` as an unpadded millisecond count, `yyyy` with `EXCEEDS_PAD`, ...), so patterns are
//! compiled to our own [`JavaDateFormat`] token list instead, and rendered with chrono's
//! calendar accessors. Text is English (Flink runs with the JVM default locale, in
//! practice `en`), weeks follow the US convention (Sunday first, week 1 holds January 1).
//! Parsing lives in [`super::java_datetime_parse`].

use std::sync::{Arc, LazyLock};

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Timelike};

use super::common::{LastPattern, PatternCache};

pub(super) const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Monday first, like chrono's `num_days_from_monday`.
pub(super) const WEEKDAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// Which Java formatter's rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Dialect {
    /// `java.time.format.DateTimeFormatter.ofPattern`.
    DateTimeFormatter,
    /// `java.text.SimpleDateFormat`.
    SimpleDateFormat,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Token {
    Literal(String),
    Field(char, usize),
    /// `[` in a `DateTimeFormatter` pattern: the section up to the matching `]` is optional.
    OptionalStart,
    OptionalEnd,
}

/// A compiled Java date-time pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JavaDateFormat {
    pub(super) dialect: Dialect,
    pub(super) tokens: Vec<Token>,
}

/// A zone or offset read from the input by a zone pattern letter.
impl JavaDateFormat {
    /// Compiles `pattern`; the error text says what is wrong, as Java's would.
    pub(crate) fn compile(pattern: &str, dialect: Dialect) -> Result<Self, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut literal = String::new();
        let mut depth = 0usize;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                if chars.get(i + 1) == Some(&'\'') {
                    literal.push('\'');
                    i += 2;
                    continue;
                }
                i += 1;
                let mut closed = false;
                while i < chars.len() {
                    if chars[i] == '\'' {
                        if chars.get(i + 1) == Some(&'\'') {
                            literal.push('\'');
                            i += 2;
                            continue;
                        }
                        closed = true;
                        i += 1;
                        break;
                    }
                    literal.push(chars[i]);
                    i += 1;
                }
                if !closed {
                    return Err(format!("Pattern ends with an incomplete string literal: {pattern}"));
                }
                continue;
            }
            if c.is_ascii_alphabetic() {
                let mut n = 1;
                while chars.get(i + n) == Some(&c) {
                    n += 1;
                }
                validate_letter(dialect, c, n)?;
                if !literal.is_empty() {
                    tokens.push(Token::Literal(std::mem::take(&mut literal)));
                }
                tokens.push(Token::Field(c, n));
                i += n;
                continue;
            }
            if dialect == Dialect::DateTimeFormatter {
                match c {
                    '[' | ']' => {
                        if !literal.is_empty() {
                            tokens.push(Token::Literal(std::mem::take(&mut literal)));
                        }
                        if c == '[' {
                            depth += 1;
                            tokens.push(Token::OptionalStart);
                        } else {
                            if depth == 0 {
                                return Err(format!("Pattern invalid as it contains ] without previous [: {pattern}"));
                            }
                            depth -= 1;
                            tokens.push(Token::OptionalEnd);
                        }
                        i += 1;
                        continue;
                    }
                    '{' | '}' | '#' => {
                        return Err(format!("Pattern includes reserved character: '{c}'"));
                    }
                    _ => {}
                }
            }
            literal.push(c);
            i += 1;
        }
        if !literal.is_empty() {
            tokens.push(Token::Literal(literal));
        }
        for _ in 0..depth {
            tokens.push(Token::OptionalEnd);
        }
        Ok(Self { dialect, tokens })
    }

    /// Formats a local date-time; `offset_secs` is its offset from UTC, used by the zone
    /// letters (`Z`, `X`, `z`, ...).
    pub(crate) fn format(&self, dt: &NaiveDateTime, offset_secs: i32) -> String {
        let mut out = String::with_capacity(32);
        for t in &self.tokens {
            match t {
                Token::Literal(s) => out.push_str(s),
                Token::Field(c, n) => match self.dialect {
                    Dialect::DateTimeFormatter => format_dtf(&mut out, *c, *n, dt, offset_secs),
                    Dialect::SimpleDateFormat => format_sdf(&mut out, *c, *n, dt, offset_secs),
                },
                Token::OptionalStart | Token::OptionalEnd => {}
            }
        }
        out
    }
}

/// A compiled pattern, or the reason it does not compile.
pub(crate) type Compiled = Result<JavaDateFormat, String>;

static DATE_TIME_FORMATTER_CACHE: LazyLock<PatternCache<Compiled>> = LazyLock::new(|| PatternCache::new(256));
static SIMPLE_DATE_FORMAT_CACHE: LazyLock<PatternCache<Compiled>> = LazyLock::new(|| PatternCache::new(256));

/// Looks up compiled patterns of one dialect during a batch: each distinct pattern is
/// compiled once per process, and a repeated pattern costs no lookup at all.
pub(crate) struct Formats<'a> {
    dialect: Dialect,
    memo: LastPattern<'a, Compiled>,
}

impl<'a> Formats<'a> {
    pub(crate) fn new(dialect: Dialect) -> Self {
        Self { dialect, memo: LastPattern::new() }
    }

    /// The compiled form of `pattern`.
    pub(crate) fn get(&mut self, pattern: &'a str) -> Arc<Compiled> {
        let dialect = self.dialect;
        let cache: &PatternCache<Compiled> = match dialect {
            Dialect::DateTimeFormatter => &DATE_TIME_FORMATTER_CACHE,
            Dialect::SimpleDateFormat => &SIMPLE_DATE_FORMAT_CACHE,
        };
        self.memo.get(cache, pattern, |p| JavaDateFormat::compile(p, dialect))
    }
}

/// Rejects letters and counts the Java formatter would reject.
fn validate_letter(dialect: Dialect, c: char, n: usize) -> Result<(), String> {
    let too_many = || Err(format!("Too many pattern letters: {c}"));
    match dialect {
        Dialect::DateTimeFormatter => match c {
            'G' | 'M' | 'L' | 'Q' | 'q' | 'E' | 'e' | 'X' | 'x' | 'Z' => {
                if n > 5 {
                    too_many()
                } else {
                    Ok(())
                }
            }
            'c' => {
                if n == 2 || n > 5 {
                    Err(format!("Invalid pattern \"{}\"", "c".repeat(n)))
                } else {
                    Ok(())
                }
            }
            'd' | 'h' | 'H' | 'k' | 'K' | 'm' | 's' | 'w' => {
                if n > 2 {
                    too_many()
                } else {
                    Ok(())
                }
            }
            'D' => {
                if n > 3 {
                    too_many()
                } else {
                    Ok(())
                }
            }
            'a' | 'W' | 'F' => {
                if n > 1 {
                    too_many()
                } else {
                    Ok(())
                }
            }
            'S' => {
                if n > 9 {
                    too_many()
                } else {
                    Ok(())
                }
            }
            'z' => {
                if n > 4 {
                    too_many()
                } else {
                    Ok(())
                }
            }
            'O' => {
                if n == 1 || n == 4 {
                    Ok(())
                } else {
                    Err(format!("Pattern letter count must be 1 or 4: {c}"))
                }
            }
            'V' => {
                if n == 2 {
                    Ok(())
                } else {
                    Err(format!("Pattern letter count must be 2: {c}"))
                }
            }
            'y' | 'u' | 'Y' | 'A' | 'n' | 'N' => Ok(()),
            _ => Err(format!("Unknown pattern letter: {c}")),
        },
        Dialect::SimpleDateFormat => match c {
            'G' | 'y' | 'Y' | 'M' | 'L' | 'w' | 'W' | 'D' | 'd' | 'F' | 'E' | 'u' | 'a' | 'H' | 'k' | 'K' | 'h'
            | 'm' | 's' | 'S' | 'z' | 'Z' => Ok(()),
            'X' => {
                if n > 3 {
                    Err("invalid ISO 8601 format: length=4".to_string())
                } else {
                    Ok(())
                }
            }
            _ => Err(format!("Illegal pattern character '{c}'")),
        },
    }
}

fn push_num(out: &mut String, v: i64, width: usize) {
    if v < 0 {
        out.push('-');
    }
    let digits = v.unsigned_abs().to_string();
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(&digits);
}

fn year_of_era(dt: &NaiveDateTime) -> i64 {
    let y = i64::from(dt.year());
    if y <= 0 {
        1 - y
    } else {
        y
    }
}

/// Day of week with Sunday = 0.
fn dow_sunday0(date: NaiveDate) -> i64 {
    i64::from(date.weekday().num_days_from_sunday())
}

/// US week-based year and week of year: weeks start on Sunday and week 1 is the week
/// holding January 1.
fn us_week_of_year(date: NaiveDate) -> (i64, i64) {
    let year = i64::from(date.year());
    let week_end = date.checked_add_signed(Duration::days(6 - dow_sunday0(date)));
    if week_end.is_some_and(|end| i64::from(end.year()) > year) {
        return (year + 1, 1);
    }
    let first_start = NaiveDate::from_ymd_opt(date.year(), 1, 1)
        .and_then(|jan1| jan1.checked_sub_signed(Duration::days(dow_sunday0(jan1))));
    match first_start {
        Some(start) => (year, (date - start).num_days() / 7 + 1),
        None => (year, 1),
    }
}

/// US week of month: week 1 holds the first of the month.
fn us_week_of_month(date: NaiveDate) -> i64 {
    let first = date.with_day(1).unwrap_or(date);
    (i64::from(date.day()) - 1 + dow_sunday0(first)) / 7 + 1
}

fn push_offset(out: &mut String, secs: i32, colon: bool, with_minutes: bool) {
    out.push(if secs < 0 { '-' } else { '+' });
    let abs = secs.unsigned_abs();
    let (h, m) = (abs / 3600, abs / 60 % 60);
    out.push_str(&format!("{h:02}"));
    if with_minutes || m != 0 {
        if colon {
            out.push(':');
        }
        out.push_str(&format!("{m:02}"));
    }
}

fn push_gmt(out: &mut String, secs: i32, long: bool) {
    out.push_str("GMT");
    if secs == 0 {
        return;
    }
    if long {
        push_offset(out, secs, true, true);
    } else {
        out.push(if secs < 0 { '-' } else { '+' });
        let abs = secs.unsigned_abs();
        out.push_str(&(abs / 3600).to_string());
        if !(abs / 60).is_multiple_of(60) {
            out.push_str(&format!(":{:02}", abs / 60 % 60));
        }
    }
}

fn push_zone_name(out: &mut String, secs: i32, long: bool) {
    if secs == 0 {
        out.push_str(if long { "Coordinated Universal Time" } else { "UTC" });
    } else {
        push_gmt(out, secs, true);
    }
}

fn format_dtf(out: &mut String, c: char, n: usize, dt: &NaiveDateTime, offset: i32) {
    let date = dt.date();
    let text = |full: &str, out: &mut String| match n {
        4 => out.push_str(full),
        5 => out.push_str(&full[..1]),
        _ => out.push_str(&full[..3]),
    };
    match c {
        'G' => out.push_str(match (n, dt.year() > 0) {
            (4, true) => "Anno Domini",
            (4, false) => "Before Christ",
            (5, true) => "A",
            (5, false) => "B",
            (_, true) => "AD",
            (_, false) => "BC",
        }),
        'y' | 'u' | 'Y' => {
            let v = match c {
                'y' => year_of_era(dt),
                'u' => i64::from(dt.year()),
                _ => us_week_of_year(date).0,
            };
            if n == 2 {
                push_num(out, v.rem_euclid(100), 2);
            } else {
                if n >= 4 && v > 9999 && v.to_string().len() > n {
                    out.push('+');
                }
                push_num(out, v, n);
            }
        }
        'Q' | 'q' => {
            let q = i64::from(dt.month0() / 3 + 1);
            match n {
                1 | 5 => push_num(out, q, 1),
                2 => push_num(out, q, 2),
                3 => out.push_str(&format!("Q{q}")),
                _ => out.push_str(["1st quarter", "2nd quarter", "3rd quarter", "4th quarter"][(q - 1) as usize]),
            }
        }
        'M' | 'L' => {
            if n <= 2 {
                push_num(out, i64::from(dt.month()), n);
            } else {
                text(MONTHS[dt.month0() as usize], out);
            }
        }
        'w' => push_num(out, us_week_of_year(date).1, n),
        'W' => push_num(out, us_week_of_month(date), n),
        'd' => push_num(out, i64::from(dt.day()), n),
        'D' => push_num(out, i64::from(dt.ordinal()), n),
        'F' => push_num(out, (i64::from(dt.day()) - 1) % 7 + 1, n),
        'E' => text(WEEKDAYS[dt.weekday().num_days_from_monday() as usize], out),
        'e' | 'c' => {
            if n <= 2 {
                push_num(out, dow_sunday0(date) + 1, n);
            } else {
                text(WEEKDAYS[dt.weekday().num_days_from_monday() as usize], out);
            }
        }
        'a' => out.push_str(if dt.hour() < 12 { "AM" } else { "PM" }),
        'h' => push_num(out, i64::from((dt.hour() + 11) % 12 + 1), n),
        'K' => push_num(out, i64::from(dt.hour() % 12), n),
        'k' => push_num(out, i64::from(if dt.hour() == 0 { 24 } else { dt.hour() }), n),
        'H' => push_num(out, i64::from(dt.hour()), n),
        'm' => push_num(out, i64::from(dt.minute()), n),
        's' => push_num(out, i64::from(dt.second()), n),
        'S' => {
            let frac = format!("{:09}", dt.nanosecond() % 1_000_000_000);
            out.push_str(&frac[..n.min(9)]);
        }
        'A' => {
            push_num(out, i64::from(dt.num_seconds_from_midnight()) * 1000 + i64::from(dt.nanosecond() / 1_000_000), n)
        }
        'n' => push_num(out, i64::from(dt.nanosecond() % 1_000_000_000), n),
        'N' => push_num(
            out,
            i64::from(dt.num_seconds_from_midnight()) * 1_000_000_000 + i64::from(dt.nanosecond() % 1_000_000_000),
            n,
        ),
        'V' => {
            if offset == 0 {
                out.push_str("UTC");
            } else {
                push_offset(out, offset, true, true);
            }
        }
        'z' => push_zone_name(out, offset, n == 4),
        'O' => push_gmt(out, offset, n == 4),
        'X' | 'x' => {
            if c == 'X' && offset == 0 {
                out.push('Z');
            } else {
                match n {
                    1 => push_offset(out, offset, false, false),
                    2 | 4 => push_offset(out, offset, false, true),
                    _ => push_offset(out, offset, true, true),
                }
            }
        }
        'Z' => match n {
            4 => push_gmt(out, offset, true),
            5 => {
                if offset == 0 {
                    out.push('Z');
                } else {
                    push_offset(out, offset, true, true);
                }
            }
            _ => push_offset(out, offset, false, true),
        },
        _ => {}
    }
}

fn format_sdf(out: &mut String, c: char, n: usize, dt: &NaiveDateTime, offset: i32) {
    let date = dt.date();
    match c {
        'G' => out.push_str(if dt.year() > 0 { "AD" } else { "BC" }),
        'y' | 'Y' => {
            let v = if c == 'y' { year_of_era(dt) } else { us_week_of_year(date).0 };
            if n == 2 {
                push_num(out, v.rem_euclid(100), 2);
            } else {
                push_num(out, v, n);
            }
        }
        'M' | 'L' => match n {
            1 | 2 => push_num(out, i64::from(dt.month()), n),
            3 => out.push_str(&MONTHS[dt.month0() as usize][..3]),
            _ => out.push_str(MONTHS[dt.month0() as usize]),
        },
        'w' => push_num(out, us_week_of_year(date).1, n),
        'W' => push_num(out, us_week_of_month(date), n),
        'D' => push_num(out, i64::from(dt.ordinal()), n),
        'd' => push_num(out, i64::from(dt.day()), n),
        'F' => push_num(out, (i64::from(dt.day()) - 1) / 7 + 1, n),
        'E' => {
            let name = WEEKDAYS[dt.weekday().num_days_from_monday() as usize];
            out.push_str(if n >= 4 { name } else { &name[..3] });
        }
        'u' => push_num(out, i64::from(dt.weekday().number_from_monday()), n),
        'a' => out.push_str(if dt.hour() < 12 { "AM" } else { "PM" }),
        'H' => push_num(out, i64::from(dt.hour()), n),
        'k' => push_num(out, i64::from(if dt.hour() == 0 { 24 } else { dt.hour() }), n),
        'K' => push_num(out, i64::from(dt.hour() % 12), n),
        'h' => push_num(out, i64::from((dt.hour() + 11) % 12 + 1), n),
        'm' => push_num(out, i64::from(dt.minute()), n),
        's' => push_num(out, i64::from(dt.second()), n),
        'S' => push_num(out, i64::from(dt.nanosecond() % 1_000_000_000 / 1_000_000), n),
        'z' => push_zone_name(out, offset, n >= 4),
        'Z' => push_offset(out, offset, false, true),
        'X' => {
            if offset == 0 {
                out.push('Z');
            } else {
                match n {
                    1 => push_offset(out, offset, false, false),
                    2 => push_offset(out, offset, false, true),
                    _ => push_offset(out, offset, true, true),
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap()
    }

    fn dtf(p: &str, v: &str) -> String {
        JavaDateFormat::compile(p, Dialect::DateTimeFormatter).unwrap().format(&dt(v), 0)
    }

    fn sdf(p: &str, v: &str) -> String {
        JavaDateFormat::compile(p, Dialect::SimpleDateFormat).unwrap().format(&dt(v), 0)
    }

    #[test]
    fn formats_common_patterns() {
        let v = "2024-03-01 22:30:07.885";
        assert_eq!(dtf("yyyy-MM-dd HH:mm", v), "2024-03-01 22:30");
        assert_eq!(dtf("yyyy-MM-dd HH:mm:ss.SSS", v), "2024-03-01 22:30:07.885");
        assert_eq!(dtf("yy/M/d H:m:s", v), "24/3/1 22:30:7");
        assert_eq!(dtf("hh:mm a", v), "10:30 PM");
        assert_eq!(dtf("h", "2024-03-01 00:05:00.000"), "12");
        assert_eq!(dtf("EEE, d MMM yyyy", v), "Fri, 1 Mar 2024");
        assert_eq!(dtf("EEEE MMMM", v), "Friday March");
        assert_eq!(dtf("D DDD", v), "61 061");
        assert_eq!(dtf("S SS SSSSSS", v), "8 88 885000");
        assert_eq!(dtf("'at' HH 'o''clock' ''", v), "at 22 o'clock '");
        assert_eq!(dtf("yyyyMMdd", v), "20240301");
        assert_eq!(dtf("Z X xxx", v), "+0000 Z +00:00");
        assert_eq!(dtf("QQQ", v), "Q1");
        assert_eq!(dtf("[yyyy]", v), "2024");
    }

    #[test]
    fn simple_date_format_differs_on_fraction_and_u() {
        let v = "2024-03-01 22:30:07.005";
        assert_eq!(sdf("S", v), "5");
        assert_eq!(sdf("SSS", v), "005");
        assert_eq!(sdf("SSSS", v), "0005");
        assert_eq!(sdf("u E", v), "5 Fri");
        assert_eq!(sdf("yyyy-MM-dd HH:mm:ss", v), "2024-03-01 22:30:07");
        assert_eq!(sdf("z", v), "UTC");
    }

    #[test]
    fn week_fields_follow_us_rules() {
        // 2024-12-31 is a Tuesday in the week holding 2025-01-01.
        assert_eq!(dtf("YYYY-ww", "2024-12-31 00:00:00.0"), "2025-01");
        assert_eq!(dtf("w", "2024-01-07 00:00:00.0"), "2");
        assert_eq!(dtf("W", "2024-03-03 00:00:00.0"), "2");
    }

    #[test]
    fn rejects_invalid_patterns() {
        assert!(JavaDateFormat::compile("yyyy-bb", Dialect::DateTimeFormatter).is_err());
        assert!(JavaDateFormat::compile("ddd", Dialect::DateTimeFormatter).is_err());
        assert!(JavaDateFormat::compile("'open", Dialect::DateTimeFormatter).is_err());
        assert!(JavaDateFormat::compile("{", Dialect::DateTimeFormatter).is_err());
        assert!(JavaDateFormat::compile("yyyy-T", Dialect::SimpleDateFormat).is_err());
        assert!(JavaDateFormat::compile("ddd", Dialect::SimpleDateFormat).is_ok());
    }
}
