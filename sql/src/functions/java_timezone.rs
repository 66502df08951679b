//! Time zone ids as `java.util.TimeZone.getTimeZone` understands them, for the functions
//! that take a zone by name (`CONVERT_TZ`) or read one from text (`UNIX_TIMESTAMP` with a
//! `z`/`Z`/`X` pattern letter).
//!
//! Java accepts IANA names (`America/Los_Angeles`), `UTC`/`GMT`, custom ids
//! (`GMT+8`, `GMT-08:00`, `GMT+0530`) and its legacy three-letter ids (`PST`, `CTT`, ...).
//! Anything else silently means GMT in Java; [`zone_by_id`] keeps that behaviour while
//! [`resolve`] reports it so parsers can reject unknown names.

use std::str::FromStr;

use arrow::array::timezone::Tz;

use super::java_datetime_parse::ParsedZone;

/// Java's legacy three-letter zone ids that are not IANA names.
const SHORT_IDS: [(&str, &str); 25] = [
    ("ACT", "Australia/Darwin"),
    ("AET", "Australia/Sydney"),
    ("AGT", "America/Argentina/Buenos_Aires"),
    ("ART", "Africa/Cairo"),
    ("AST", "America/Anchorage"),
    ("BET", "America/Sao_Paulo"),
    ("BST", "Asia/Dhaka"),
    ("CAT", "Africa/Harare"),
    ("CNT", "America/St_Johns"),
    ("CST", "America/Chicago"),
    ("CTT", "Asia/Shanghai"),
    ("EAT", "Africa/Addis_Ababa"),
    ("ECT", "Europe/Paris"),
    ("IET", "America/Indiana/Indianapolis"),
    ("IST", "Asia/Kolkata"),
    ("JST", "Asia/Tokyo"),
    ("MIT", "Pacific/Apia"),
    ("NET", "Asia/Yerevan"),
    ("NST", "Pacific/Auckland"),
    ("PLT", "Asia/Karachi"),
    ("PNT", "America/Phoenix"),
    ("PRT", "America/Puerto_Rico"),
    ("PST", "America/Los_Angeles"),
    ("SST", "Pacific/Guadalcanal"),
    ("VST", "Asia/Ho_Chi_Minh"),
];

/// The zone for a Java zone id, or `None` when Java would not recognise it.
pub(crate) fn resolve(id: &str) -> Option<ParsedZone> {
    match id {
        "UTC" | "GMT" | "UT" | "Z" => return Some(ParsedZone::Fixed(0)),
        // Fixed offsets in Java (not the US zones with daylight saving).
        "EST" => return Some(ParsedZone::Fixed(-5 * 3600)),
        "MST" => return Some(ParsedZone::Fixed(-7 * 3600)),
        "HST" => return Some(ParsedZone::Fixed(-10 * 3600)),
        _ => {}
    }
    if let Some(rest) = id.strip_prefix("GMT") {
        return custom_offset(rest).map(ParsedZone::Fixed);
    }
    if id.starts_with(['+', '-']) || id.is_empty() {
        return None;
    }
    let name = SHORT_IDS.iter().find(|(short, _)| *short == id).map_or(id, |(_, full)| full);
    Tz::from_str(name).ok().map(ParsedZone::Named)
}

/// The zone for a Java zone id; unknown ids mean GMT, as in Java.
pub(crate) fn zone_by_id(id: &str) -> ParsedZone {
    resolve(id).unwrap_or(ParsedZone::Fixed(0))
}

/// The zone of an Arrow timestamp type's zone string (`UTC`, `+08:00`, an IANA name).
pub(crate) fn arrow_zone(tz: &str) -> ParsedZone {
    Tz::from_str(tz).map_or(ParsedZone::Fixed(0), ParsedZone::Named)
}

/// `+h`, `+hh`, `+hhmm`, `+h:mm`, `+hh:mm` after `GMT`.
fn custom_offset(s: &str) -> Option<i32> {
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let body = &s[1..];
    if !body.bytes().all(|b| b.is_ascii_digit() || b == b':') {
        return None;
    }
    let (h, m) = match body.split_once(':') {
        Some((h, m)) if (1..=2).contains(&h.len()) && m.len() == 2 => (h, m),
        Some(_) => return None,
        None if (1..=2).contains(&body.len()) => (body, "0"),
        None if body.len() == 4 => (&body[..2], &body[2..]),
        None => return None,
    };
    if h.contains(':') || m.contains(':') {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if h > 23 || m > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset(id: &str) -> Option<i32> {
        match resolve(id)? {
            ParsedZone::Fixed(s) => Some(s),
            ParsedZone::Named(_) => None,
        }
    }

    #[test]
    fn resolves_java_ids() {
        assert_eq!(offset("UTC"), Some(0));
        assert_eq!(offset("GMT-08:00"), Some(-8 * 3600));
        assert_eq!(offset("GMT+0530"), Some(5 * 3600 + 1800));
        assert_eq!(offset("GMT+8"), Some(8 * 3600));
        assert!(matches!(resolve("PST"), Some(ParsedZone::Named(_))));
        assert!(matches!(resolve("Asia/Shanghai"), Some(ParsedZone::Named(_))));
        assert!(resolve("Not/AZone").is_none());
        assert!(resolve("+08:00").is_none());
        assert!(matches!(zone_by_id("Not/AZone"), ParsedZone::Fixed(0)));
    }
}
