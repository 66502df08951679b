//! The memory the window aggregation's state holds, for [`StreamOperator::state_bytes`]:
//! the live partials (DataFusion's `GroupValues::size` and `GroupsAccumulator::size`), the
//! frozen state arrays, CUMULATE's running state, and (updating output) the rows last
//! emitted per window with their key index.
//!
//! The operator keeps the figure in `state_bytes`: a batch adds what the partials it
//! updated grew by; everything else that changes state (firing, early fires, snapshots,
//! which freeze partials, restores) recounts it over the slices and kept windows, which
//! is O(slices + windows), never O(rows). The maps' own entries are added when asked.
//!
//! [`StreamOperator::state_bytes`]: crate::operators::StreamOperator::state_bytes

use arrow::array::{Array, ArrayRef};

use super::{Emitted, Finished, Frozen, KeyTable, Partial, Slice, WindowAggregateOperator};
use crate::operators::memory::btree_bytes;

fn arrays_bytes<'a>(arrays: impl IntoIterator<Item = &'a ArrayRef>) -> usize {
    arrays.into_iter().map(|a| a.get_array_memory_size()).sum()
}

impl KeyTable {
    fn size(&self) -> usize {
        match self {
            KeyTable::Global { .. } => 0,
            KeyTable::Grouped(values) => values.size(),
        }
    }
}

impl Partial {
    /// The key table and the accumulators.
    pub(super) fn size(&self) -> usize {
        self.keys.size() + self.accumulators.iter().map(|a| a.size()).sum::<usize>()
    }
}

impl Frozen {
    fn size(&self) -> usize {
        arrays_bytes(&self.keys) + arrays_bytes(self.states.iter().flatten())
    }
}

impl Finished {
    fn size(&self) -> usize {
        arrays_bytes(&self.keys) + arrays_bytes(&self.values)
    }
}

impl Emitted {
    fn size(&self) -> usize {
        self.index.size() + self.result.size()
    }
}

impl Slice {
    fn size(&self) -> usize {
        self.live.iter().map(|(_, p)| p.size()).sum::<usize>() + self.frozen.iter().map(Frozen::size).sum::<usize>()
    }
}

impl WindowAggregateOperator {
    /// What the slices, CUMULATE's running state and the emitted rows hold, counted from
    /// scratch.
    pub(super) fn count_state_bytes(&self) -> usize {
        self.slices.values().map(Slice::size).sum::<usize>()
            + self.cumulate_running.as_ref().map_or(0, |(_, f)| f.size())
            + self.emitted.values().map(Emitted::size).sum::<usize>()
    }

    /// Brings the running figure up to date after a change it does not follow.
    pub(super) fn recount_state_bytes(&mut self) {
        self.state_bytes = self.count_state_bytes();
    }

    /// The running figure plus the entries of the operator's maps.
    pub(super) fn total_state_bytes(&self) -> usize {
        self.state_bytes
            + btree_bytes::<i64, Slice>(self.slices.len())
            + btree_bytes::<i64, Emitted>(self.emitted.len())
            + btree_bytes::<i64, ()>(self.dirty.len())
    }
}
