//! The plan of a non-windowed Top-N (Flink's `Rank`), which also covers deduplication
//! keeping the last row.

use super::{ExprSpec, SortKey};

/// Which of two rows that tie on the ORDER BY ranks first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TieBreak {
    /// The one that arrived first (Flink's Top-N buffer).
    Oldest,
    /// The one that arrived last (Flink's keep-last deduplication: a later row with the
    /// same time replaces the held one).
    Newest,
}

/// `ROW_NUMBER() OVER (PARTITION BY k ORDER BY ..) <= n` over a stream (no window): per
/// partition, the first `limit` rows by the ORDER BY of every row so far, kept up to date as
/// rows arrive (and, from an updating input, as rows are retracted). The output is the input
/// columns and the rank, an updating changelog: a rank whose row changes emits `-U` old /
/// `+U` new, a rank that fills `+I`, a rank that empties `-D`. The input is hash-partitioned
/// by the partition keys (none: one subtask).
#[derive(Debug, Clone)]
pub struct TopNSpec {
    /// Partition keys, evaluated on the input.
    pub partition_keys: Vec<ExprSpec>,
    /// Ranking order.
    pub order_by: Vec<SortKey>,
    /// Keep ranks `1..=limit`.
    pub limit: usize,
    /// How ties are ranked.
    pub ties: TieBreak,
    /// Whether the input is an updating changelog: every row is then held (a retracted row
    /// of the top makes room for the next one); an append-only input holds `limit` rows per
    /// partition.
    pub input_updating: bool,
}
