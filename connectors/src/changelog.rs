//! Row kinds of a changelog stream, as in Flink's `RowKind`.
//!
//! An updating stream carries one `Int8` per row holding the [`RowKind`] as its `i8` code;
//! an append-only stream carries none (every row is an insert).

use std::fmt;

/// Name of the `Int8` column that carries row kinds inside a changelog `RecordBatch`.
pub const ROW_KIND_COLUMN: &str = "_eddy_row_kind";

/// Flink's `RowKind`: what a row in a changelog means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i8)]
pub enum RowKind {
    /// `+I`: a new row.
    Insert = 0,
    /// `-U`: the previous version of an updated row (retracted).
    UpdateBefore = 1,
    /// `+U`: the new version of an updated row.
    UpdateAfter = 2,
    /// `-D`: a deleted row.
    Delete = 3,
}

impl RowKind {
    /// The code stored in the row-kind column.
    pub fn code(self) -> i8 {
        self as i8
    }

    /// The kind for a stored code; `None` for a code no kind has.
    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            0 => Some(Self::Insert),
            1 => Some(Self::UpdateBefore),
            2 => Some(Self::UpdateAfter),
            3 => Some(Self::Delete),
            _ => None,
        }
    }

    /// Flink's short string: `+I`, `-U`, `+U`, `-D`.
    pub fn short_string(self) -> &'static str {
        match self {
            Self::Insert => "+I",
            Self::UpdateBefore => "-U",
            Self::UpdateAfter => "+U",
            Self::Delete => "-D",
        }
    }

    /// Whether the row adds to the result (`+I`, `+U`) rather than retracts (`-U`, `-D`).
    pub fn is_accumulate(self) -> bool {
        matches!(self, Self::Insert | Self::UpdateAfter)
    }
}

impl fmt::Display for RowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for k in [RowKind::Insert, RowKind::UpdateBefore, RowKind::UpdateAfter, RowKind::Delete] {
            assert_eq!(RowKind::from_code(k.code()), Some(k));
        }
        assert_eq!(RowKind::from_code(9), None);
        assert_eq!(RowKind::UpdateBefore.to_string(), "-U");
    }
}
