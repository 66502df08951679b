//! The plan of an event-time interval join.

/// An inner join of two append-only streams on equal keys whose rows' time attributes lie
/// within a bounded distance: `l.k = r.k AND r.t BETWEEN l.t + lower AND l.t + upper`.
///
/// The two inputs arrive as one stream (a Union of both sides, tagged), so the merged
/// watermark is the minimum of both sides'. The input's columns are
/// `[key_1..key_n, side, left columns.., right columns..]`: the join keys (of one type on
/// both sides), the side (`Int8`: 0 left, 1 right) and the row of its side, the other
/// side's columns NULL. The output is the left columns then the right columns, append-only.
/// The input is hash-partitioned by the keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntervalJoinSpec {
    /// Names of the leading key columns of the input (for the exchange).
    pub key_names: Vec<String>,
    /// Number of left columns.
    pub left_width: usize,
    /// Number of right columns.
    pub right_width: usize,
    /// Index of the left time attribute among the left columns (a millisecond timestamp).
    pub left_time: usize,
    /// Index of the right time attribute among the right columns.
    pub right_time: usize,
    /// Inclusive lower bound of `right time - left time`, in ms.
    pub lower_ms: i64,
    /// Inclusive upper bound of `right time - left time`, in ms.
    pub upper_ms: i64,
    /// How EXPLAIN shows the condition.
    pub display: String,
}

impl IntervalJoinSpec {
    /// Index of the side column in the input.
    pub fn side_column(&self) -> usize {
        self.key_names.len()
    }

    /// Index of the first left column in the input.
    pub fn left_offset(&self) -> usize {
        self.key_names.len() + 1
    }

    /// Index of the first right column in the input.
    pub fn right_offset(&self) -> usize {
        self.left_offset() + self.left_width
    }

    /// How far output rows' times can be behind the input watermark: a row joins a partner
    /// up to `max(upper, -lower)` ms older than itself, so the output watermark is held back
    /// by that much (Flink's `getMaxOutputDelay`).
    pub fn output_delay_ms(&self) -> i64 {
        self.upper_ms.max(self.lower_ms.saturating_neg()).max(0)
    }
}
