//! The time units Flink's `TIMESTAMPDIFF`, `FLOOR(ts TO unit)` and `CEIL(ts TO unit)` take.
//! The planner passes the unit as a string literal (`'SECOND'`); this parses it, accepting
//! plural forms and the JDBC `SQL_TSI_` prefix as Flink's parser does.

/// A Flink `TimeUnit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum FlinkTimeUnit {
    Millisecond,
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Quarter,
    Year,
    Decade,
    Century,
    Millennium,
}

impl FlinkTimeUnit {
    /// Parses `SECOND`, `seconds`, `SQL_TSI_SECOND`, ...
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let upper = text.trim().to_ascii_uppercase();
        let unit = upper.strip_prefix("SQL_TSI_").unwrap_or(&upper);
        let unit = match unit {
            "CENTURIES" => "CENTURY",
            "MILLENNIA" => "MILLENNIUM",
            u => u.strip_suffix('S').unwrap_or(u),
        };
        Some(match unit {
            "MILLISECOND" => Self::Millisecond,
            "SECOND" => Self::Second,
            "MINUTE" => Self::Minute,
            "HOUR" => Self::Hour,
            "DAY" => Self::Day,
            "WEEK" => Self::Week,
            "MONTH" => Self::Month,
            "QUARTER" => Self::Quarter,
            "YEAR" => Self::Year,
            "DECADE" => Self::Decade,
            "CENTURY" => Self::Century,
            "MILLENNIUM" => Self::Millennium,
            _ => return None,
        })
    }

    /// Length in milliseconds of the fixed-length units (up to a week).
    pub(crate) fn millis(self) -> Option<i64> {
        Some(match self {
            Self::Millisecond => 1,
            Self::Second => 1000,
            Self::Minute => 60_000,
            Self::Hour => 3_600_000,
            Self::Day => 86_400_000,
            Self::Week => 7 * 86_400_000,
            _ => return None,
        })
    }

    /// Length in months of the calendar units.
    pub(crate) fn months(self) -> Option<i64> {
        Some(match self {
            Self::Month => 1,
            Self::Quarter => 3,
            Self::Year => 12,
            Self::Decade => 120,
            Self::Century => 1200,
            Self::Millennium => 12000,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(FlinkTimeUnit::parse("SECOND"), Some(FlinkTimeUnit::Second));
        assert_eq!(FlinkTimeUnit::parse("minutes"), Some(FlinkTimeUnit::Minute));
        assert_eq!(FlinkTimeUnit::parse("SQL_TSI_DAY"), Some(FlinkTimeUnit::Day));
        assert_eq!(FlinkTimeUnit::parse("centuries"), Some(FlinkTimeUnit::Century));
        assert_eq!(FlinkTimeUnit::parse("fortnight"), None);
    }
}
