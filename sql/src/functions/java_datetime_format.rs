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

use std::sync::{Arc, LazyLock};

use arrow::array::timezone::Tz;
use chrono::{
    Datelike, Duration, Months, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Timelike,
};

use super::common::{LastPattern, PatternCache};

const MONTHS: [&str; 12] = [
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
const WEEKDAYS: [&str; 7] =
    ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// Which Java formatter's rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Dialect {
    /// `java.time.format.DateTimeFormatter.ofPattern`.
    DateTimeFormatter,
    /// `java.text.SimpleDateFormat`.
    SimpleDateFormat,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(String),
    Field(char, usize),
    /// `[` in a `DateTimeFormatter` pattern: the section up to the matching `]` is optional.
    OptionalStart,
    OptionalEnd,
}

/// A compiled Java date-time pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JavaDateFormat {
    dialect: Dialect,
    tokens: Vec<Token>,
}

/// A zone or offset read from the input by a zone pattern letter.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ParsedZone {
    Fixed(i32),
    Named(Tz),
}

impl ParsedZone {
    /// Offset from UTC in seconds of this zone at a local date-time.
    pub(crate) fn offset_at(&self, local: &NaiveDateTime) -> i32 {
        match self {
            Self::Fixed(secs) => *secs,
            Self::Named(tz) => tz
                .offset_from_local_datetime(local)
                .earliest()
                .map(|o| o.fix().local_minus_utc())
                .unwrap_or(0),
        }
    }

    /// Offset from UTC in seconds of this zone at a UTC date-time.
    pub(crate) fn offset_at_utc(&self, utc: &NaiveDateTime) -> i32 {
        match self {
            Self::Fixed(secs) => *secs,
            Self::Named(tz) => tz.offset_from_utc_datetime(utc).fix().local_minus_utc(),
        }
    }
}

/// The result of parsing: the local date-time and the zone found in the text, if any.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ParsedDateTime {
    pub(crate) local: NaiveDateTime,
    pub(crate) zone: Option<ParsedZone>,
}

impl ParsedDateTime {
    /// The instant as UTC, interpreting the local value in the parsed zone, else in
    /// `default_offset` (seconds east of UTC).
    pub(crate) fn to_utc(&self, default_zone: Option<&ParsedZone>) -> NaiveDateTime {
        let offset = match (&self.zone, default_zone) {
            (Some(z), _) | (None, Some(z)) => z.offset_at(&self.local),
            (None, None) => 0,
        };
        self.local - Duration::seconds(i64::from(offset))
    }
}

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
                                return Err(format!(
                                    "Pattern invalid as it contains ] without previous [: {pattern}"
                                ));
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

    /// Parses `text`. `DateTimeFormatter` patterns must consume all of it and fields must be
    /// in range (days past the month end are clamped, as the SMART resolver does); missing
    /// fields default to 1970-01-01 00:00:00 as in Flink. `SimpleDateFormat` patterns may
    /// leave trailing text, and out-of-range values roll over like a lenient `Calendar`.
    pub(crate) fn parse(&self, text: &str) -> Option<ParsedDateTime> {
        let mut fields = Fields::default();
        let end = self.parse_tokens(&self.tokens, text, 0, &mut fields)?;
        if self.dialect == Dialect::DateTimeFormatter && end != text.len() {
            return None;
        }
        let local = match self.dialect {
            Dialect::DateTimeFormatter => fields.resolve_strict()?,
            Dialect::SimpleDateFormat => fields.resolve_lenient()?,
        };
        Some(ParsedDateTime { local, zone: fields.zone })
    }

    fn parse_tokens(&self, tokens: &[Token], text: &str, mut pos: usize, f: &mut Fields) -> Option<usize> {
        let mut k = 0;
        while k < tokens.len() {
            match &tokens[k] {
                Token::OptionalStart => {
                    let end = matching_end(tokens, k);
                    let saved = f.clone();
                    match self.parse_tokens(&tokens[k + 1..end], text, pos, f) {
                        Some(p) => pos = p,
                        None => *f = saved,
                    }
                    k = end + 1;
                    continue;
                }
                Token::OptionalEnd => {}
                Token::Literal(lit) => {
                    pos = match_literal(text, pos, lit)?;
                }
                Token::Field(c, n) => {
                    if self.dialect == Dialect::SimpleDateFormat {
                        // SimpleDateFormat skips blanks before each field.
                        while text[pos..].starts_with([' ', '\t']) {
                            pos += 1;
                        }
                    }
                    pos = self.parse_field(tokens, k, *c, *n, text, pos, f)?;
                }
            }
            k += 1;
        }
        Some(pos)
    }

    #[allow(clippy::too_many_arguments)]
    fn parse_field(
        &self,
        tokens: &[Token],
        k: usize,
        c: char,
        n: usize,
        text: &str,
        pos: usize,
        f: &mut Fields,
    ) -> Option<usize> {
        let rest = &text[pos..];
        if is_numeric(self.dialect, c, n) {
            let (min, max) = self.digit_bounds(tokens, k, c, n, rest);
            let avail = rest.bytes().take_while(u8::is_ascii_digit).count();
            if avail < min {
                return None;
            }
            let take = avail.min(max);
            if take == 0 || take < min {
                return None;
            }
            let digits = &rest[..take];
            let v: i64 = digits.parse().ok()?;
            self.store_number(f, c, n, v, take, digits);
            return Some(pos + take);
        }
        match c {
            'M' | 'L' => {
                let (idx, len) = match_name(rest, &MONTHS)?;
                f.month = Some(idx as i64 + 1);
                Some(pos + len)
            }
            'E' | 'e' | 'c' => {
                let (_, len) = match_name(rest, &WEEKDAYS)?;
                Some(pos + len)
            }
            'a' => {
                let head = rest.get(..2)?;
                if head.eq_ignore_ascii_case("AM") {
                    f.pm = Some(false);
                } else if head.eq_ignore_ascii_case("PM") {
                    f.pm = Some(true);
                } else {
                    return None;
                }
                Some(pos + 2)
            }
            'G' => {
                for (word, bc) in [("Anno Domini", false), ("Before Christ", true), ("AD", false), ("BC", true)] {
                    if starts_with_ignore_case(rest, word) {
                        f.bc = bc;
                        return Some(pos + word.len());
                    }
                }
                None
            }
            'z' | 'Z' | 'X' | 'x' | 'O' | 'V' => {
                let (zone, len) = parse_zone(rest)?;
                f.zone = Some(zone);
                Some(pos + len)
            }
            _ => None,
        }
    }

    /// Minimum and maximum digits a numeric field may take at this point.
    fn digit_bounds(&self, tokens: &[Token], k: usize, c: char, n: usize, rest: &str) -> (usize, usize) {
        let next_numeric = matches!(tokens.get(k + 1), Some(Token::Field(c2, n2)) if is_numeric(self.dialect, *c2, *n2));
        match self.dialect {
            Dialect::SimpleDateFormat => {
                // Abutting numeric fields obey the letter count; otherwise greedy.
                if next_numeric { (1, n) } else { (1, 18) }
            }
            Dialect::DateTimeFormatter => {
                if let Some(w) = dtf_fixed_width(c, n) {
                    return (w, w);
                }
                let min = if matches!(c, 'y' | 'u' | 'Y') && n != 2 { n } else { 1 };
                // Adjacent value parsing: leave room for the fixed-width fields that follow.
                let mut reserved = 0;
                for t in &tokens[k + 1..] {
                    match t {
                        Token::Field(c2, n2) if is_numeric(self.dialect, *c2, *n2) => {
                            match dtf_fixed_width(*c2, *n2) {
                                Some(w) => reserved += w,
                                None => break,
                            }
                        }
                        _ => break,
                    }
                }
                let avail = rest.bytes().take_while(u8::is_ascii_digit).count();
                let max = if reserved > 0 { avail.saturating_sub(reserved) } else { 18 };
                (min, max.min(18))
            }
        }
    }

    fn store_number(&self, f: &mut Fields, c: char, n: usize, v: i64, ndigits: usize, digits: &str) {
        match c {
            'y' | 'u' | 'Y' => {
                let sdf_u = self.dialect == Dialect::SimpleDateFormat && c == 'u';
                if sdf_u {
                    return; // day number of week: does not set the date
                }
                if n == 2 && ndigits == 2 {
                    f.year = Some(match self.dialect {
                        Dialect::DateTimeFormatter => 2000 + v,
                        Dialect::SimpleDateFormat => two_digit_year(v),
                    });
                } else {
                    f.year = Some(v);
                }
            }
            'M' | 'L' => f.month = Some(v),
            'd' => f.day = Some(v),
            'D' => f.day_of_year = Some(v),
            'H' => f.hour_of_day = Some(v),
            'k' => f.clock_hour_of_day = Some(v),
            'K' => f.hour_of_ampm = Some(v),
            'h' => f.clock_hour_of_ampm = Some(v),
            'm' => f.minute = Some(v),
            's' => f.second = Some(v),
            'S' => match self.dialect {
                Dialect::SimpleDateFormat => f.millis = Some(v),
                Dialect::DateTimeFormatter => {
                    // Fraction of second: right-pad to nine digits.
                    let mut nanos: i64 = digits.parse().unwrap_or(0);
                    for _ in ndigits..9 {
                        nanos *= 10;
                    }
                    f.nanos = Some(nanos);
                }
            },
            'n' => f.nanos = Some(v),
            'A' => f.milli_of_day = Some(v),
            'N' => f.nano_of_day = Some(v),
            _ => {} // week fields and the like are read but do not set the date
        }
    }
}

/// A compiled pattern, or the reason it does not compile.
pub(crate) type Compiled = Result<JavaDateFormat, String>;

static DATE_TIME_FORMATTER_CACHE: LazyLock<PatternCache<Compiled>> =
    LazyLock::new(|| PatternCache::new(256));
static SIMPLE_DATE_FORMAT_CACHE: LazyLock<PatternCache<Compiled>> =
    LazyLock::new(|| PatternCache::new(256));

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

/// Index of the `OptionalEnd` matching the `OptionalStart` at `start`.
fn matching_end(tokens: &[Token], start: usize) -> usize {
    let mut depth = 0;
    for (i, t) in tokens.iter().enumerate().skip(start) {
        match t {
            Token::OptionalStart => depth += 1,
            Token::OptionalEnd => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    tokens.len()
}

fn match_literal(text: &str, pos: usize, lit: &str) -> Option<usize> {
    text[pos..].starts_with(lit).then(|| pos + lit.len())
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len()).is_some_and(|h| h.eq_ignore_ascii_case(prefix))
}

/// Matches a full or three-letter English name, returning its index and length.
fn match_name(s: &str, names: &[&str]) -> Option<(usize, usize)> {
    for (i, name) in names.iter().enumerate() {
        if starts_with_ignore_case(s, name) {
            return Some((i, name.len()));
        }
    }
    for (i, name) in names.iter().enumerate() {
        if starts_with_ignore_case(s, &name[..3]) {
            return Some((i, 3));
        }
    }
    None
}

/// SimpleDateFormat's two-digit year: the century that puts it within 80 years before and
/// 20 years after now.
fn two_digit_year(v: i64) -> i64 {
    let start = i64::from(chrono::Utc::now().year()) - 80;
    let mut year = start / 100 * 100 + v;
    if year < start {
        year += 100;
    }
    year
}

/// Parses an offset or zone: `Z`, `+08`, `+0800`, `+08:00`, `GMT+8`, `UTC`, `GMT`, or a
/// zone name such as `Asia/Shanghai`.
pub(crate) fn parse_zone(s: &str) -> Option<(ParsedZone, usize)> {
    if s.starts_with('Z') && !s.starts_with("Zulu") {
        return Some((ParsedZone::Fixed(0), 1));
    }
    if s.starts_with(['+', '-']) {
        let (secs, len) = parse_offset(s)?;
        return Some((ParsedZone::Fixed(secs), len));
    }
    for prefix in ["GMT", "UTC", "UT"] {
        if let Some(rest) = s.strip_prefix(prefix) {
            if rest.starts_with(['+', '-']) {
                if let Some((secs, len)) = parse_offset(rest) {
                    return Some((ParsedZone::Fixed(secs), prefix.len() + len));
                }
            }
            return Some((ParsedZone::Fixed(0), prefix.len()));
        }
    }
    let len = s
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+')))
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    let name = &s[..len];
    super::java_timezone::resolve(name).map(|z| (z, len))
}

/// `+H`, `+HH`, `+HHMM`, `+HH:MM` (and `-`); returns seconds east of UTC and length.
fn parse_offset(s: &str) -> Option<(i32, usize)> {
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let b = s.as_bytes();
    let digits = b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
    let (h, m, len) = match digits {
        1 | 2 => {
            let h: i32 = s[1..1 + digits].parse().ok()?;
            if b.get(1 + digits) == Some(&b':')
                && b.len() >= 4 + digits
                && b[2 + digits..4 + digits].iter().all(u8::is_ascii_digit)
            {
                let m: i32 = s[2 + digits..4 + digits].parse().ok()?;
                (h, m, 4 + digits)
            } else {
                (h, 0, 1 + digits)
            }
        }
        4 => (s[1..3].parse().ok()?, s[3..5].parse().ok()?, 5),
        _ => return None,
    };
    if h > 18 || m > 59 {
        return None;
    }
    Some((sign * (h * 3600 + m * 60), len))
}

/// Fields collected while parsing.
#[derive(Debug, Clone, Default)]
struct Fields {
    year: Option<i64>,
    bc: bool,
    month: Option<i64>,
    day: Option<i64>,
    day_of_year: Option<i64>,
    hour_of_day: Option<i64>,
    clock_hour_of_day: Option<i64>,
    hour_of_ampm: Option<i64>,
    clock_hour_of_ampm: Option<i64>,
    pm: Option<bool>,
    minute: Option<i64>,
    second: Option<i64>,
    millis: Option<i64>,
    nanos: Option<i64>,
    milli_of_day: Option<i64>,
    nano_of_day: Option<i64>,
    zone: Option<ParsedZone>,
}

impl Fields {
    fn year(&self) -> i64 {
        let y = self.year.unwrap_or(1970);
        if self.bc { 1 - y } else { y }
    }

    /// `DateTimeFormatter` (SMART resolver, then Flink's defaults for missing fields).
    fn resolve_strict(&self) -> Option<NaiveDateTime> {
        let year = i32::try_from(self.year()).ok()?;
        let date = if self.month.is_some() || self.day.is_some() || self.day_of_year.is_none() {
            let month = self.month.unwrap_or(1);
            let day = self.day.unwrap_or(1);
            if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
                return None;
            }
            let month = month as u32;
            let last = last_day_of_month(year, month)?;
            NaiveDate::from_ymd_opt(year, month, (day as u32).min(last))?
        } else {
            let doy = u32::try_from(self.day_of_year?).ok()?;
            NaiveDate::from_yo_opt(year, doy)?
        };
        let hour = if let Some(h) = self.hour_of_day {
            (0..=23).contains(&h).then_some(h)?
        } else if let Some(k) = self.clock_hour_of_day {
            (1..=24).contains(&k).then_some(k % 24)?
        } else if let (Some(pm), Some(h)) = (self.pm, self.clock_hour_of_ampm) {
            (1..=12).contains(&h).then_some(h % 12 + if pm { 12 } else { 0 })?
        } else if let (Some(pm), Some(h)) = (self.pm, self.hour_of_ampm) {
            (0..=11).contains(&h).then_some(h + if pm { 12 } else { 0 })?
        } else {
            // An am/pm hour without `a` does not resolve to an hour of day in java.time,
            // and Flink then defaults the hour to 0.
            0
        };
        let minute = self.minute.unwrap_or(0);
        let second = self.second.unwrap_or(0);
        let nanos = self.nanos.unwrap_or(0);
        if !(0..=59).contains(&minute) || !(0..=59).contains(&second) || !(0..1_000_000_000).contains(&nanos) {
            return None;
        }
        let mut time = NaiveTime::from_hms_nano_opt(hour as u32, minute as u32, second as u32, nanos as u32)?;
        if self.hour_of_day.is_none() && self.minute.is_none() {
            if let Some(ms) = self.milli_of_day {
                time = NaiveTime::MIN + Duration::milliseconds(ms.rem_euclid(86_400_000));
            } else if let Some(ns) = self.nano_of_day {
                time = NaiveTime::MIN + Duration::nanoseconds(ns.rem_euclid(86_400_000_000_000));
            }
        }
        Some(date.and_time(time))
    }

    /// `SimpleDateFormat` with a lenient `Calendar`: values roll over into larger fields.
    fn resolve_lenient(&self) -> Option<NaiveDateTime> {
        let year = i32::try_from(self.year()).ok()?;
        let mut date = NaiveDate::from_ymd_opt(year, 1, 1)?;
        if self.month.is_some() || self.day.is_some() || self.day_of_year.is_none() {
            date = add_months(date, self.month.unwrap_or(1) - 1)?;
            date = date.checked_add_signed(Duration::try_days(self.day.unwrap_or(1) - 1)?)?;
        } else {
            date = date.checked_add_signed(Duration::try_days(self.day_of_year.unwrap_or(1) - 1)?)?;
        }
        let pm = if self.pm == Some(true) { 12 } else { 0 };
        let hour = if let Some(h) = self.hour_of_day {
            h
        } else if let Some(k) = self.clock_hour_of_day {
            if k == 24 { 0 } else { k }
        } else if let Some(h) = self.clock_hour_of_ampm {
            (if h == 12 { 0 } else { h }) + pm
        } else if let Some(h) = self.hour_of_ampm {
            h + pm
        } else {
            0
        };
        let offset = Duration::try_hours(hour)?
            .checked_add(&Duration::try_minutes(self.minute.unwrap_or(0))?)?
            .checked_add(&Duration::try_seconds(self.second.unwrap_or(0))?)?
            .checked_add(&Duration::try_milliseconds(self.millis.unwrap_or(0))?)?;
        date.and_time(NaiveTime::MIN).checked_add_signed(offset)
    }
}

fn add_months(date: NaiveDate, months: i64) -> Option<NaiveDate> {
    if months >= 0 {
        date.checked_add_months(Months::new(u32::try_from(months).ok()?))
    } else {
        date.checked_sub_months(Months::new(u32::try_from(-months).ok()?))
    }
}

fn last_day_of_month(year: i32, month: u32) -> Option<u32> {
    let first_next = if month == 12 {
        NaiveDate::from_ymd_opt(year.checked_add(1)?, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)?
    };
    Some(first_next.pred_opt()?.day())
}

/// Whether a pattern letter is a number (as opposed to text or a zone) in this dialect.
fn is_numeric(dialect: Dialect, c: char, n: usize) -> bool {
    match c {
        'y' | 'u' | 'Y' | 'd' | 'D' | 'H' | 'h' | 'K' | 'k' | 'm' | 's' | 'S' | 'w' | 'W' | 'F'
        | 'A' | 'n' | 'N' => true,
        'M' | 'L' => n <= 2,
        'Q' | 'q' | 'e' | 'c' => dialect == Dialect::DateTimeFormatter && n <= 2,
        _ => false,
    }
}

/// Width of a `DateTimeFormatter` numeric field that always prints (and parses) a fixed
/// number of digits.
fn dtf_fixed_width(c: char, n: usize) -> Option<usize> {
    match c {
        'S' => Some(n),
        'y' | 'u' | 'Y' => (n == 2).then_some(2),
        'M' | 'L' | 'd' | 'H' | 'h' | 'K' | 'k' | 'm' | 's' | 'w' | 'Q' | 'q' | 'e' | 'c' => {
            (n == 2).then_some(2)
        }
        'D' => (n == 3).then_some(3),
        'W' | 'F' => Some(1),
        _ => None,
    }
}

/// Rejects letters and counts the Java formatter would reject.
fn validate_letter(dialect: Dialect, c: char, n: usize) -> Result<(), String> {
    let too_many = || Err(format!("Too many pattern letters: {c}"));
    match dialect {
        Dialect::DateTimeFormatter => match c {
            'G' | 'M' | 'L' | 'Q' | 'q' | 'E' | 'e' | 'X' | 'x' | 'Z' => {
                if n > 5 { too_many() } else { Ok(()) }
            }
            'c' => {
                if n == 2 || n > 5 { Err(format!("Invalid pattern \"{}\"", "c".repeat(n))) } else { Ok(()) }
            }
            'd' | 'h' | 'H' | 'k' | 'K' | 'm' | 's' | 'w' => {
                if n > 2 { too_many() } else { Ok(()) }
            }
            'D' => {
                if n > 3 { too_many() } else { Ok(()) }
            }
            'a' | 'W' | 'F' => {
                if n > 1 { too_many() } else { Ok(()) }
            }
            'S' => {
                if n > 9 { too_many() } else { Ok(()) }
            }
            'z' => {
                if n > 4 { too_many() } else { Ok(()) }
            }
            'O' => {
                if n == 1 || n == 4 { Ok(()) } else { Err(format!("Pattern letter count must be 1 or 4: {c}")) }
            }
            'V' => {
                if n == 2 { Ok(()) } else { Err(format!("Pattern letter count must be 2: {c}")) }
            }
            'y' | 'u' | 'Y' | 'A' | 'n' | 'N' => Ok(()),
            _ => Err(format!("Unknown pattern letter: {c}")),
        },
        Dialect::SimpleDateFormat => match c {
            'G' | 'y' | 'Y' | 'M' | 'L' | 'w' | 'W' | 'D' | 'd' | 'F' | 'E' | 'u' | 'a' | 'H'
            | 'k' | 'K' | 'h' | 'm' | 's' | 'S' | 'z' | 'Z' => Ok(()),
            'X' => {
                if n > 3 { Err("invalid ISO 8601 format: length=4".to_string()) } else { Ok(()) }
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
    if y <= 0 { 1 - y } else { y }
}

/// Day of week with Sunday = 0.
fn dow_sunday0(date: NaiveDate) -> i64 {
    i64::from(date.weekday().num_days_from_sunday())
}

/// US week-based year and week of year: weeks start on Sunday and week 1 is the week
/// holding January 1.
fn us_week_of_year(date: NaiveDate) -> (i64, i64) {
    let year = i64::from(date.year());
    let week_start = date - Duration::days(dow_sunday0(date));
    let week_end = week_start + Duration::days(6);
    if i64::from(week_end.year()) > year {
        return (year + 1, 1);
    }
    let Some(jan1) = NaiveDate::from_ymd_opt(date.year(), 1, 1) else {
        return (year, 1);
    };
    let first_start = jan1 - Duration::days(dow_sunday0(jan1));
    (year, (date - first_start).num_days() / 7 + 1)
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
        if abs / 60 % 60 != 0 {
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
        'A' => push_num(out, i64::from(dt.num_seconds_from_midnight()) * 1000 + i64::from(dt.nanosecond() / 1_000_000), n),
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

    #[test]
    fn parses_strictly_with_date_time_formatter() {
        let f = JavaDateFormat::compile("yyyy-MM-dd HH:mm:ss.SSS", Dialect::DateTimeFormatter).unwrap();
        let p = f.parse("2024-03-01 22:30:07.885").unwrap();
        assert_eq!(p.local, dt("2024-03-01 22:30:07.885"));
        assert!(f.parse("2024-03-01 22:30:07.88").is_none());
        assert!(f.parse("2024-03-01 22:30:07.885 trailing").is_none());
        assert!(f.parse("2024-13-01 22:30:07.885").is_none());

        let compact = JavaDateFormat::compile("yyyyMMddHHmmss", Dialect::DateTimeFormatter).unwrap();
        assert_eq!(compact.parse("20240301223007").unwrap().local, dt("2024-03-01 22:30:07.0"));

        // Missing fields default to 1970-01-01 00:00:00; days past month end clamp.
        let hm = JavaDateFormat::compile("HH:mm", Dialect::DateTimeFormatter).unwrap();
        assert_eq!(hm.parse("10:20").unwrap().local, dt("1970-01-01 10:20:00.0"));
        let ymd = JavaDateFormat::compile("yyyy-MM-dd", Dialect::DateTimeFormatter).unwrap();
        assert_eq!(ymd.parse("2023-02-30").unwrap().local, dt("2023-02-28 00:00:00.0"));

        let text = JavaDateFormat::compile("dd MMM yyyy hh:mm a", Dialect::DateTimeFormatter).unwrap();
        assert_eq!(text.parse("05 Mar 2024 01:15 PM").unwrap().local, dt("2024-03-05 13:15:00.0"));
    }

    #[test]
    fn parses_leniently_with_simple_date_format() {
        let f = JavaDateFormat::compile("yyyy-MM-dd HH:mm:ss", Dialect::SimpleDateFormat).unwrap();
        // Trailing text is ignored, single digits are fine, overflow rolls over.
        assert_eq!(f.parse("2024-03-01 22:30:07.885").unwrap().local, dt("2024-03-01 22:30:07.0"));
        assert_eq!(f.parse("2024-3-1 2:3:4").unwrap().local, dt("2024-03-01 02:03:04.0"));
        assert_eq!(f.parse("2024-13-01 00:00:00").unwrap().local, dt("2025-01-01 00:00:00.0"));
        assert!(f.parse("2024-03-01").is_none());

        let ms = JavaDateFormat::compile("yyyy-MM-dd HH:mm:ss.SSS X", Dialect::SimpleDateFormat).unwrap();
        let p = ms.parse("1970-01-01 08:00:01.001 +0800").unwrap();
        assert_eq!(p.to_utc(None), dt("1970-01-01 00:00:01.001"));
    }

    #[test]
    fn parses_zones() {
        assert!(matches!(parse_zone("+08:00"), Some((ParsedZone::Fixed(28800), 6))));
        assert!(matches!(parse_zone("-0530"), Some((ParsedZone::Fixed(-19800), 5))));
        assert!(matches!(parse_zone("GMT+8"), Some((ParsedZone::Fixed(28800), 5))));
        assert!(matches!(parse_zone("Z"), Some((ParsedZone::Fixed(0), 1))));
        assert!(matches!(parse_zone("UTC"), Some((ParsedZone::Fixed(0), 3))));
    }
}
