//! Parsing with compiled Java date-time patterns (see [`super::java_datetime_format`]).
//!
//! `DateTimeFormatter` parsing is strict: the whole input must match, doubled numeric
//! letters take exactly that many digits, adjacent numeric fields share the digits the way
//! java.time's adjacent value parsing does (`yyyyMMdd`), values must be in range (days past
//! the month end are clamped like the SMART resolver) and missing fields default to
//! 1970-01-01 00:00:00 as in Flink. `SimpleDateFormat` parsing is lenient: blanks before a
//! field are skipped, numbers are read greedily unless the next field abuts, trailing text
//! is ignored and out-of-range values roll over like a lenient `java.util.Calendar`.

use arrow::array::timezone::Tz;
use chrono::{Datelike, Duration, Months, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone};

use super::java_datetime_format::{Dialect, JavaDateFormat, Token, MONTHS, WEEKDAYS};

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
            Self::Named(tz) => {
                tz.offset_from_local_datetime(local).earliest().map(|o| o.fix().local_minus_utc()).unwrap_or(0)
            }
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
    /// `default_zone` (else UTC); `None` if it falls outside the supported range.
    pub(crate) fn to_utc(self, default_zone: Option<&ParsedZone>) -> Option<NaiveDateTime> {
        let offset = match (&self.zone, default_zone) {
            (Some(z), _) | (None, Some(z)) => z.offset_at(&self.local),
            (None, None) => 0,
        };
        self.local.checked_sub_signed(Duration::seconds(i64::from(offset)))
    }
}

impl JavaDateFormat {
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
        let next_numeric =
            matches!(tokens.get(k + 1), Some(Token::Field(c2, n2)) if is_numeric(self.dialect, *c2, *n2));
        match self.dialect {
            Dialect::SimpleDateFormat => {
                // Abutting numeric fields obey the letter count; otherwise greedy.
                if next_numeric {
                    (1, n)
                } else {
                    (1, 18)
                }
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
                        Token::Field(c2, n2) if is_numeric(self.dialect, *c2, *n2) => match dtf_fixed_width(*c2, *n2) {
                            Some(w) => reserved += w,
                            None => break,
                        },
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
        if self.bc {
            1 - y
        } else {
            y
        }
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
            if k == 24 {
                0
            } else {
                k
            }
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
        'y' | 'u' | 'Y' | 'd' | 'D' | 'H' | 'h' | 'K' | 'k' | 'm' | 's' | 'S' | 'w' | 'W' | 'F' | 'A' | 'n' | 'N' => {
            true
        }
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
        'M' | 'L' | 'd' | 'H' | 'h' | 'K' | 'k' | 'm' | 's' | 'w' | 'Q' | 'q' | 'e' | 'c' => (n == 2).then_some(2),
        'D' => (n == 3).then_some(3),
        'W' | 'F' => Some(1),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap()
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
        assert_eq!(p.to_utc(None), Some(dt("1970-01-01 00:00:01.001")));
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
