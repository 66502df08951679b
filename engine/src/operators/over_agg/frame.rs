//! The computation of an OVER aggregation for one partition key: what a key keeps of the
//! rows before ([`KeyState`]) and how a run of its rows, in time order, turns into their
//! results ([`Calls::process`]).
//!
//! ```text
//!   recent (oldest .. newest)                      accumulators
//!   ┌────┬────┬────┬────┬────┬────┐
//!   │ r1 │ r2 │ r3 │ r4 │ r5 │ r6 │ ◄── a row is added here, and to every accumulator
//!   └────┴────┴────┴────┴────┴────┘
//!     kept for LAG  └── in_frame ──┘ ◄── bounded frames: rows leaving the frame are
//!                                        retracted from the accumulators (oldest first)
//! ```
//!
//! As Flink's `RowTime*PrecedingFunction`s: with a RANGE frame on event time, rows of the
//! same time are *peers*: all of them are added before any result is read, so they all get
//! the same results (LAG included: Flink computes LAG as an aggregate over the rows added
//! so far). A ROWS frame, and processing time, read the results after every row.
//! ROW_NUMBER counts rows one by one in either case (Flink frames it by ROWS).

use std::collections::VecDeque;
use std::mem::size_of;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{DataType, Schema};
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::PhysicalExpr;
use eddy_sql::plan::{OverAggSpec, OverFrame, OverFunction};

type DfResult<T> = std::result::Result<T, DataFusionError>;

/// One call, with where its arguments are among the evaluated argument columns ("slots").
pub(super) enum Call {
    Aggregate {
        function: Arc<AggregateFunctionExpr>,
        slots: Range<usize>,
        /// Index among the key's accumulators.
        accumulator: usize,
    },
    FirstValue {
        slot: usize,
    },
    LastValue {
        slot: usize,
    },
    Lag {
        slot: usize,
        offset: usize,
        default: ScalarValue,
    },
    RowNumber,
}

/// The calls of an OVER aggregation and its frame: everything a key's computation needs
/// besides the key's state.
pub(super) struct Calls {
    pub(super) calls: Vec<Call>,
    pub(super) frame: OverFrame,
    /// Rows of equal time are peers (RANGE frames on event time).
    peers: bool,
    /// The argument expressions, one per slot, evaluated on the input rows.
    pub(super) args: Vec<Arc<dyn PhysicalExpr>>,
    /// Their types.
    pub(super) arg_types: Vec<DataType>,
    /// The newest rows LAG needs: the largest offset + 1 (0 without LAG).
    lag_rows: usize,
}

/// What a partition key keeps between rows.
pub(super) struct KeyState {
    /// One per aggregate call.
    pub(super) accumulators: Vec<Box<dyn Accumulator>>,
    /// Per call: FIRST_VALUE's first and LAST_VALUE's last non-NULL value so far, in
    /// unbounded frames (`None` for other calls and before any non-NULL value).
    pub(super) values: Vec<Option<ScalarValue>>,
    /// The newest rows' time and arguments: the frame's rows (bounded frames) and the rows
    /// LAG reads.
    pub(super) recent: VecDeque<RecentRow>,
    /// Bounded frames: how many of the newest rows of `recent` are in the frame (added to
    /// the accumulators and not retracted yet).
    pub(super) in_frame: usize,
    /// Rows processed so far (ROW_NUMBER).
    pub(super) rows_seen: u64,
    /// Memory of `recent`'s values.
    recent_bytes: usize,
}

/// A row as a key remembers it.
pub(super) struct RecentRow {
    pub(super) ts: i64,
    /// One value per slot.
    pub(super) args: Vec<ScalarValue>,
}

impl RecentRow {
    fn bytes(&self) -> usize {
        size_of::<Self>() + self.args.iter().map(ScalarValue::size).sum::<usize>()
    }
}

impl Calls {
    /// The calls of `spec`, their arguments typed against `input`.
    pub(super) fn new(spec: &OverAggSpec, input: &Schema) -> DfResult<Self> {
        let peers = !spec.processing_time && matches!(spec.frame, OverFrame::RangeUnbounded | OverFrame::Range(_));
        let mut calls = Vec::with_capacity(spec.calls.len());
        let mut args: Vec<Arc<dyn PhysicalExpr>> = Vec::new();
        let mut accumulators = 0;
        let mut lag_rows = 0;
        for c in &spec.calls {
            let first = args.len();
            let call = match &c.function {
                OverFunction::Aggregate(f) => {
                    args.extend(f.expressions());
                    accumulators += 1;
                    Call::Aggregate { function: f.clone(), slots: first..args.len(), accumulator: accumulators - 1 }
                }
                OverFunction::FirstValue(e) => {
                    args.push(e.clone());
                    Call::FirstValue { slot: first }
                }
                OverFunction::LastValue(e) => {
                    args.push(e.clone());
                    Call::LastValue { slot: first }
                }
                OverFunction::Lag { value, offset, default } => {
                    args.push(value.clone());
                    lag_rows = lag_rows.max(offset.saturating_add(1));
                    Call::Lag { slot: first, offset: *offset, default: default.clone() }
                }
                OverFunction::RowNumber => Call::RowNumber,
            };
            calls.push(call);
        }
        let arg_types = args.iter().map(|a| a.data_type(input)).collect::<DfResult<Vec<_>>>()?;
        let this = Self { calls, frame: spec.frame, peers, args, arg_types, lag_rows };
        // A key's state now, so an aggregate that cannot slide fails the plan, not a batch.
        this.new_key()?;
        Ok(this)
    }

    /// Whether the frame is bounded (rows leave it).
    pub(super) fn bounded(&self) -> bool {
        matches!(self.frame, OverFrame::Rows(_) | OverFrame::Range(_))
    }

    /// Whether a key remembers rows (for its frame or for LAG).
    fn keeps_rows(&self) -> bool {
        self.bounded() || self.lag_rows > 0
    }

    /// The state of a key not seen yet. Bounded frames take DataFusion's sliding
    /// accumulators (MIN and MAX keep a monotonic queue of the frame's values), which
    /// retract rows in the order they were added: the frame's oldest first.
    pub(super) fn new_key(&self) -> DfResult<KeyState> {
        let mut accumulators = Vec::new();
        for call in &self.calls {
            let Call::Aggregate { function, .. } = call else { continue };
            let acc = if self.bounded() {
                let acc = function.create_sliding_accumulator()?;
                if !acc.supports_retract_batch() {
                    return Err(DataFusionError::NotImplemented(format!(
                        "{} cannot retract rows, which a bounded OVER frame needs",
                        function.name()
                    )));
                }
                acc
            } else {
                function.create_accumulator()?
            };
            accumulators.push(acc);
        }
        Ok(KeyState {
            accumulators,
            values: vec![None; self.calls.len()],
            recent: VecDeque::new(),
            in_frame: 0,
            rows_seen: 0,
            recent_bytes: 0,
        })
    }

    /// Whether aggregate `function`'s state is rebuilt by adding the frame's rows again at
    /// a restore rather than read from its accumulator: sliding MIN and MAX, whose state
    /// (the current extreme) cannot retract.
    pub(super) fn replays(&self, function: &AggregateFunctionExpr) -> bool {
        self.bounded() && matches!(function.fun().name(), "min" | "max")
    }

    /// Process a key's rows `rows` (row index in `args`, time), in time order, writing each
    /// call's result for row `r` to `results[call][r]`.
    pub(super) fn process(
        &self,
        state: &mut KeyState,
        rows: &[(usize, i64)],
        args: &[ArrayRef],
        results: &mut [Vec<ScalarValue>],
    ) -> DfResult<()> {
        let mut i = 0;
        while i < rows.len() {
            let ts = rows[i].1;
            let end = if self.peers { i + rows[i..].iter().take_while(|r| r.1 == ts).count() } else { i + 1 };
            if let OverFrame::Range(d) = self.frame {
                self.leave_range(state, ts.saturating_sub(d))?;
            }
            for &(row, ts) in &rows[i..end] {
                self.add(state, row, ts, args)?;
                if let OverFrame::Rows(n) = self.frame {
                    while state.in_frame as u64 > n.saturating_add(1) {
                        self.retract_oldest(state)?;
                    }
                }
            }
            let values = self.evaluate(state)?;
            let first_number = state.rows_seen - (end - i) as u64 + 1;
            for (k, &(row, _)) in rows[i..end].iter().enumerate() {
                for (c, call) in self.calls.iter().enumerate() {
                    results[c][row] = match (call, &values[c]) {
                        (Call::RowNumber, _) => ScalarValue::UInt64(Some(first_number + k as u64)),
                        (_, Some(v)) => v.clone(),
                        (_, None) => ScalarValue::Null,
                    };
                }
            }
            self.trim(state);
            i = end;
        }
        Ok(())
    }

    /// Add row `row` to the key: to its accumulators, its first/last values, its rows.
    fn add(&self, state: &mut KeyState, row: usize, ts: i64, args: &[ArrayRef]) -> DfResult<()> {
        for call in &self.calls {
            if let Call::Aggregate { slots, accumulator, .. } = call {
                let values: Vec<ArrayRef> = args[slots.clone()].iter().map(|a| a.slice(row, 1)).collect();
                state.accumulators[*accumulator].update_batch(&values)?;
            }
        }
        if !self.bounded() {
            for (c, call) in self.calls.iter().enumerate() {
                let (Call::FirstValue { slot } | Call::LastValue { slot }) = call else { continue };
                let is_first = matches!(call, Call::FirstValue { .. });
                if (is_first && state.values[c].is_some()) || args[*slot].is_null(row) {
                    continue;
                }
                state.values[c] = Some(ScalarValue::try_from_array(&args[*slot], row)?);
            }
        }
        if self.keeps_rows() {
            let values = args.iter().map(|a| ScalarValue::try_from_array(a, row)).collect::<DfResult<Vec<_>>>()?;
            let recent = RecentRow { ts, args: values };
            state.recent_bytes += recent.bytes();
            state.recent.push_back(recent);
            if self.bounded() {
                state.in_frame += 1;
            }
        }
        state.rows_seen += 1;
        Ok(())
    }

    /// RANGE frames: retract the rows older than `from`.
    fn leave_range(&self, state: &mut KeyState, from: i64) -> DfResult<()> {
        while state.in_frame > 0 && state.recent[state.recent.len() - state.in_frame].ts < from {
            self.retract_oldest(state)?;
        }
        Ok(())
    }

    /// Retract the oldest row of the frame from the accumulators.
    fn retract_oldest(&self, state: &mut KeyState) -> DfResult<()> {
        let oldest = &state.recent[state.recent.len() - state.in_frame];
        for call in &self.calls {
            if let Call::Aggregate { slots, accumulator, .. } = call {
                let values =
                    oldest.args[slots.clone()].iter().map(ScalarValue::to_array).collect::<DfResult<Vec<_>>>()?;
                state.accumulators[*accumulator].retract_batch(&values)?;
            }
        }
        state.in_frame -= 1;
        Ok(())
    }

    /// Forget the rows neither the frame nor LAG needs any more.
    fn trim(&self, state: &mut KeyState) {
        let keep = state.in_frame.max(self.lag_rows);
        while state.recent.len() > keep {
            if let Some(r) = state.recent.pop_front() {
                state.recent_bytes = state.recent_bytes.saturating_sub(r.bytes());
            }
        }
    }

    /// Every call's current result (`None` for ROW_NUMBER, which is per row).
    fn evaluate(&self, state: &mut KeyState) -> DfResult<Vec<Option<ScalarValue>>> {
        let frame_start = state.recent.len() - state.in_frame;
        let mut out = Vec::with_capacity(self.calls.len());
        for (c, call) in self.calls.iter().enumerate() {
            let value = match call {
                Call::Aggregate { accumulator, .. } => Some(state.accumulators[*accumulator].evaluate()?),
                Call::FirstValue { slot } | Call::LastValue { slot } if self.bounded() => {
                    let mut frame = state.recent.range(frame_start..).map(|r| &r.args[*slot]);
                    let found = if matches!(call, Call::FirstValue { .. }) {
                        frame.find(|v| !v.is_null())
                    } else {
                        frame.rev().find(|v| !v.is_null())
                    };
                    Some(self.or_null(found.cloned(), *slot)?)
                }
                Call::FirstValue { slot } | Call::LastValue { slot } => {
                    Some(self.or_null(state.values[c].clone(), *slot)?)
                }
                Call::Lag { slot, offset, default } => Some(match state.recent.len().checked_sub(offset + 1) {
                    Some(at) => state.recent[at].args[*slot].clone(),
                    None => default.clone(),
                }),
                Call::RowNumber => None,
            };
            out.push(value);
        }
        Ok(out)
    }

    fn or_null(&self, value: Option<ScalarValue>, slot: usize) -> DfResult<ScalarValue> {
        match value {
            Some(v) => Ok(v),
            None => ScalarValue::try_from(&self.arg_types[slot]),
        }
    }
}

impl KeyState {
    /// Memory of the key's state (without the key).
    pub(super) fn bytes(&self) -> usize {
        size_of::<Self>()
            + self.accumulators.iter().map(|a| a.size()).sum::<usize>()
            + self
                .values
                .iter()
                .map(|v| v.as_ref().map_or(size_of::<Option<ScalarValue>>(), ScalarValue::size))
                .sum::<usize>()
            + self.recent_bytes
            + self.recent.capacity().saturating_sub(self.recent.len()) * size_of::<RecentRow>()
    }

    /// Add a remembered row back (restore), newest last.
    pub(super) fn push_recent(&mut self, row: RecentRow) {
        self.recent_bytes += row.bytes();
        self.recent.push_back(row);
    }
}
