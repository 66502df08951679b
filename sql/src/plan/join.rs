//! The plan of a regular (non-windowed) equi-join.

use super::ExprSpec;

/// Which rows of a regular join are kept when they match nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    /// Only matching pairs.
    Inner,
    /// Also every left row without a match, padded with NULLs.
    Left,
    /// Also every right row without a match, padded with NULLs.
    Right,
    /// Both.
    Full,
    /// Each left row that has a match, once, without the right columns (`IN` / `EXISTS`).
    Semi,
    /// Each left row that has no match, without the right columns (`NOT EXISTS`).
    Anti,
}

impl JoinKind {
    /// Whether unmatched rows of `side` (0: left, 1: right) are emitted padded.
    pub fn keeps_unmatched(self, side: usize) -> bool {
        match self {
            JoinKind::Inner => false,
            JoinKind::Left => side == 0,
            JoinKind::Right => side == 1,
            JoinKind::Full => true,
            // An anti join emits the left rows that match nothing (the padding is dropped).
            JoinKind::Anti => side == 0,
            JoinKind::Semi => false,
        }
    }

    /// For a semi (`Some(true)`) or anti (`Some(false)`) join, which emits left rows only:
    /// whether a left row is emitted while it has matches.
    pub fn filtering(self) -> Option<bool> {
        match self {
            JoinKind::Semi => Some(true),
            JoinKind::Anti => Some(false),
            _ => None,
        }
    }

    /// The SQL words.
    pub fn sql(self) -> &'static str {
        match self {
            JoinKind::Inner => "INNER",
            JoinKind::Left => "LEFT",
            JoinKind::Right => "RIGHT",
            JoinKind::Full => "FULL",
            JoinKind::Semi => "SEMI",
            JoinKind::Anti => "ANTI",
        }
    }
}

/// A regular join (Flink's `Join`): every row of either side, as long as it is held, joins
/// every row of the other side with equal keys for which `condition` holds. Both sides may
/// be updating: a retracted row takes back the pairs it made.
///
/// As the interval join, it reads both inputs as one tagged stream (a Union), with columns
/// `[key_1..key_n, side, left columns.., right columns..]`, hash-partitioned by the keys.
/// The output is the left columns then the right columns (semi and anti joins: the left
/// columns only); it is an updating changelog when an input is or when the join is outer
/// or anti (a padded or unmatched row is taken back once a match arrives), else
/// append-only.
#[derive(Debug, Clone)]
pub struct JoinSpec {
    /// Inner or outer.
    pub kind: JoinKind,
    /// Names of the leading key columns of the input (for the exchange). None: every row
    /// goes to one subtask (a join without equalities).
    pub key_names: Vec<String>,
    /// `IS NOT DISTINCT FROM`: NULL keys match each other (else a NULL key matches nothing).
    pub nulls_equal: bool,
    /// Number of left columns.
    pub left_width: usize,
    /// Number of right columns.
    pub right_width: usize,
    /// The rest of the ON condition, evaluated on a pair (left columns then right columns):
    /// a pair for which it is not true does not match.
    pub condition: Option<ExprSpec>,
    /// Batch mode (`execution.runtime-mode` = `batch`): emit the final result, append-only,
    /// at the end of the input instead of a changelog.
    pub final_only: bool,
    /// A window join: both sides are windowed and joined on their `window_end` (this is the
    /// index of that equality among the keys). A window's rows are joined once the
    /// watermark passes its end, then freed; rows of a window that has closed are late.
    /// The output is append-only, outer joins included.
    pub window_end_key: Option<usize>,
    /// How EXPLAIN shows the equalities.
    pub display: String,
    /// Per side (left, right): its input is append-only (rows are never taken back).
    pub append_only: [bool; 2],
}

impl JoinSpec {
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

    /// Whether the output is an updating changelog, given whether an input is.
    pub fn output_updating(&self, input_updating: bool) -> bool {
        // An inner or semi join of append-only inputs only ever adds rows.
        !self.final_only
            && self.window_end_key.is_none()
            && (input_updating || !matches!(self.kind, JoinKind::Inner | JoinKind::Semi))
    }

    /// Whether pairs are emitted only once a key's rows are complete (batch mode, or a
    /// window join's window closing) rather than as rows arrive.
    pub fn deferred(&self) -> bool {
        self.final_only || self.window_end_key.is_some()
    }
}

/// A temporal join (`JOIN r FOR SYSTEM_TIME AS OF l.time ON l.k = r.k`): each left row
/// joins the version of the right row with its key that was valid at the left row's time.
///
/// As the other joins it reads a tagged Union of both sides (see [`JoinSpec`]). The right
/// side is a versioned table: a changelog keyed by the join keys, each row a new version
/// from its time on (a `-D` ends the key's versions). The output is append-only.
#[derive(Debug, Clone)]
pub struct TemporalJoinSpec {
    /// Inner or left (Flink allows no other temporal join).
    pub kind: JoinKind,
    /// Names of the leading key columns of the input (for the exchange).
    pub key_names: Vec<String>,
    /// Number of left columns.
    pub left_width: usize,
    /// Number of right columns.
    pub right_width: usize,
    /// Event time: the left time attribute (index among the left columns), the row waits
    /// until the watermark passes it and joins the last version at or before it; the right
    /// time attribute is `right_time`. `None`: processing time, each left row joins the
    /// latest version at once (the versions arrive as the table changes).
    pub left_time: Option<usize>,
    /// Index of the right time attribute among the right columns (event time).
    pub right_time: Option<usize>,
    /// The rest of the ON condition, evaluated on the pair (left then right columns).
    pub condition: Option<ExprSpec>,
    /// How EXPLAIN shows the equalities.
    pub display: String,
}

impl TemporalJoinSpec {
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
}

/// A lookup join (`JOIN t FOR SYSTEM_TIME AS OF o.proctime ON o.k = t.k` with `t` a jdbc
/// table): each row of the input (the stream, the left side) is joined, as it arrives,
/// with the rows the database holds for its key, read through the table's lookup cache.
/// Runs chained after its input (no exchange); append-only output: the input's columns,
/// then `right_columns`.
#[derive(Debug, Clone)]
pub struct LookupJoinSpec {
    /// Inner or left.
    pub kind: JoinKind,
    /// The looked-up table (its connector and options).
    pub table: super::TableSpec,
    /// Key expressions on the input.
    pub left_keys: Vec<ExprSpec>,
    /// The table's columns they equal, in the same order.
    pub right_keys: Vec<String>,
    /// The table's columns read (the right output's and those `right_filter` needs).
    pub read_columns: Vec<String>,
    /// The right output columns: indices into `read_columns`.
    pub right_output: Vec<usize>,
    /// Conditions on the table's rows alone (`ON .. AND t.x = 'a'`), on `read_columns`.
    pub right_filter: Option<ExprSpec>,
    /// The rest of the ON condition, on the output row (input columns then right columns).
    pub condition: Option<ExprSpec>,
    /// How EXPLAIN shows the equalities.
    pub display: String,
}
