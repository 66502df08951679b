//! One side of an interval join's held rows: an append-only log in arrival order, with the
//! rows of each key linked from the newest back (the key table holds only the newest
//! row's index), freed a whole input batch at a time once the watermark passed every row
//! of the batch.
//!
//! ```text
//!   key table:  price 100 -> 7        log: #5 {t, row 3, prev: -}   chunk A (rows #0..#6)
//!               price 250 -> 6             #6 {t, row 0, prev: -}   chunk B (rows #6..)
//!                                          #7 {t, row 1, prev: #5}
//! ```
//!
//! Why: Nexmark q7 holds every bid by price, millions of keys of one or two rows each. A
//! list per key (an allocation, or an inline row in a wider table entry) and a cleanup
//! timer per key (a copy of the key in a time-ordered map) made each held row three or four
//! cache misses and the key table three times the size; here it is at most one miss in a
//! table of 40-byte entries (none while the rows are not indexed yet, see `Unindexed` in
//! `interval_join`), and the row's entry is appended where the last one was.
//!
//! What it costs: a row's entry (24 bytes) is freed with the oldest batch still holding a
//! live row, so rows far apart in time that arrive interleaved are kept as long as the
//! latest of them (the arrays were already held per batch). Entries of expired rows that
//! are still in the log never match: a row is expired when no row ahead of the watermark
//! is within its bounds, and only such rows are matched (see `interval_join`).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::mem::size_of;

use arrow::array::ArrayRef;

use super::windowing::{BufferedRows, RowRef};
use crate::message::Timestamp;

/// The end of a key's list: no earlier row.
pub(super) const NO_ROW: u64 = u64::MAX;

/// A held row: its time, its row in its batch's columns, and the key's previous row.
#[derive(Clone, Copy, Debug)]
struct Entry {
    time: Timestamp,
    prev: u64,
    row: u32,
}

/// The entries of one input batch: `start` is the index of the first.
#[derive(Debug)]
struct LogChunk {
    start: u64,
    /// The batch's columns in `buffered`.
    id: u64,
    /// When the last of its rows expires.
    expiry: Timestamp,
    /// The watermark passed `expiry`: its columns are freed, its entries go once every
    /// earlier chunk's have.
    expired: bool,
}

/// One side's held rows.
#[derive(Default)]
pub(super) struct RowLog {
    /// Entry `first + i` is `entries[i]`.
    entries: VecDeque<Entry>,
    first: u64,
    chunks: VecDeque<LogChunk>,
    /// The chunks not yet expired, by expiry (and `start`, which names a chunk): checking
    /// each chunk at every watermark would cost the whole list when the bounds are long.
    expiries: BinaryHeap<Reverse<(Timestamp, u64)>>,
    buffered: BufferedRows,
}

impl RowLog {
    fn end(&self) -> u64 {
        self.first + self.entries.len() as u64
    }

    /// Starts the entries of a batch whose columns (this side's) are `columns`; returns the
    /// chunk id its rows are referenced by. [`Self::close`] ends it.
    pub(super) fn open(&mut self, columns: Vec<ArrayRef>) -> u64 {
        let id = self.buffered.push(columns);
        let start = self.end();
        self.chunks.push_back(LogChunk { start, id, expiry: Timestamp::MIN, expired: false });
        id
    }

    /// Holds row `row` of the open batch, at `time`, until `expiry`; `prev` is its key's
    /// newest row before it. Returns its index: the key's new newest row.
    pub(super) fn hold(&mut self, prev: u64, time: Timestamp, row: u32, expiry: Timestamp) -> u64 {
        let index = self.end();
        self.entries.push_back(Entry { time, prev, row });
        if let Some(chunk) = self.chunks.back_mut() {
            chunk.expiry = chunk.expiry.max(expiry);
        }
        index
    }

    /// Ends the open batch: its columns are kept if it holds a row, else dropped.
    pub(super) fn close(&mut self) {
        let Some(chunk) = self.chunks.back() else { return };
        let id = chunk.id;
        if chunk.start == self.end() {
            self.chunks.pop_back();
            self.buffered.free_if_unused(id);
        } else {
            self.buffered.acquire(id);
            self.expiries.push(Reverse((chunk.expiry, chunk.start)));
        }
    }

    /// The rows of the list starting at `newest` still in the log, newest first: (index,
    /// time).
    pub(super) fn list(&self, newest: u64) -> impl Iterator<Item = (u64, Timestamp)> + '_ {
        let mut next = newest;
        std::iter::from_fn(move || {
            let index = next;
            let entry = self.entries.get(usize::try_from(index.checked_sub(self.first)?).ok()?)?;
            next = entry.prev;
            Some((index, entry.time))
        })
    }

    /// The index of the oldest row still in the log.
    pub(super) fn first(&self) -> u64 {
        self.first
    }

    /// The time of the row of entry `index`, if still in the log.
    pub(super) fn time(&self, index: u64) -> Option<Timestamp> {
        Some(self.entries.get(usize::try_from(index.checked_sub(self.first)?).ok()?)?.time)
    }

    /// Links the row of entry `index` to its key's previous row `prev` (a row held before
    /// its key's list was known).
    pub(super) fn set_prev(&mut self, index: u64, prev: u64) {
        let Some(at) = index.checked_sub(self.first).and_then(|i| usize::try_from(i).ok()) else { return };
        if let Some(entry) = self.entries.get_mut(at) {
            entry.prev = prev;
        }
    }

    /// Whether a list starting at `newest` still has rows in the log.
    pub(super) fn holds(&self, newest: u64) -> bool {
        newest != NO_ROW && newest >= self.first
    }

    /// Where the row of entry `index` is in the columns.
    pub(super) fn row_ref(&self, index: u64) -> Option<RowRef> {
        let entry = self.entries.get(usize::try_from(index.checked_sub(self.first)?).ok()?)?;
        let chunk = self.chunks.partition_point(|c| c.start <= index).checked_sub(1)?;
        Some((self.chunks[chunk].id, entry.row))
    }

    pub(super) fn buffered(&self) -> &BufferedRows {
        &self.buffered
    }

    /// Frees the batches whose rows all expire at or before `watermark`: their columns at
    /// once, their entries once the batches before them are freed too. Returns the number
    /// of entries freed.
    pub(super) fn expire(&mut self, watermark: Timestamp) -> usize {
        while let Some(Reverse((expiry, start))) = self.expiries.peek().copied() {
            if expiry > watermark {
                break;
            }
            self.expiries.pop();
            let at = self.chunks.partition_point(|c| c.start < start);
            if let Some(chunk) = self.chunks.get_mut(at).filter(|c| c.start == start) {
                chunk.expired = true;
                self.buffered.release(chunk.id);
            }
        }
        let before = self.entries.len();
        while self.chunks.front().is_some_and(|c| c.expired) {
            self.chunks.pop_front();
            let end = self.chunks.front().map_or(self.end(), |c| c.start);
            let freed = usize::try_from(end - self.first).unwrap_or(usize::MAX).min(self.entries.len());
            self.entries.drain(..freed);
            self.first = end;
        }
        if self.entries.capacity() > 1024 && self.entries.len() < self.entries.capacity() / 4 {
            self.entries.shrink_to_fit();
        }
        before - self.entries.len()
    }

    /// Memory held: the entries, the chunk list and the batches' columns.
    pub(super) fn bytes(&self) -> usize {
        self.entries.capacity() * size_of::<Entry>()
            + self.chunks.capacity() * size_of::<LogChunk>()
            + self.expiries.capacity() * size_of::<(Timestamp, u64)>()
            + self.buffered.bytes()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{AsArray, Int32Array};
    use arrow::datatypes::Int32Type;

    use super::*;

    fn column(values: &[i32]) -> Vec<ArrayRef> {
        vec![Arc::new(Int32Array::from(values.to_vec())) as ArrayRef]
    }

    fn times(log: &RowLog, newest: u64) -> Vec<Timestamp> {
        log.list(newest).map(|(_, t)| t).collect()
    }

    #[test]
    fn lists_link_a_keys_rows_and_batches_go_when_all_their_rows_expired() {
        let mut log = RowLog::default();
        // Batch A: key x at 10 (expires 20) and 30 (expires 40); key y at 15 (expires 25).
        let a = log.open(column(&[1, 2, 3]));
        let x = log.hold(NO_ROW, 10, 0, 20);
        let y = log.hold(NO_ROW, 15, 1, 25);
        let x = log.hold(x, 30, 2, 40);
        log.close();
        // Batch B holds nothing: dropped at once.
        log.open(column(&[9]));
        log.close();
        // Batch C: key y at 50 (expires 60).
        let c = log.open(column(&[4]));
        let y = log.hold(y, 50, 0, 60);
        log.close();
        assert_eq!(times(&log, x), vec![30, 10]);
        assert_eq!(times(&log, y), vec![50, 15]);
        assert_eq!(log.row_ref(x), Some((a, 2)));
        assert_eq!(log.row_ref(y), Some((c, 0)));
        let gathered = log.buffered().gather(0, &[log.row_ref(y).expect("y"), (a, 0)]).expect("gather");
        assert_eq!(gathered.as_primitive::<Int32Type>().values().to_vec(), vec![4, 1]);
        let full = log.bytes();

        // Batch A is kept while its row at 30 is not expired, whole.
        assert_eq!(log.expire(39), 0);
        assert_eq!(times(&log, y), vec![50, 15]);
        // Then its entries go; y's list ends where the log begins.
        assert_eq!(log.expire(40), 3);
        assert!(!log.holds(x));
        assert!(log.holds(y));
        assert_eq!(times(&log, y), vec![50]);
        assert!(log.bytes() < full);
        assert_eq!(log.expire(60), 1);
        assert!(!log.holds(y));
        assert_eq!(log.row_ref(y), None);
    }

    #[test]
    fn a_later_batch_expiring_first_frees_its_columns_before_its_entries() {
        let mut log = RowLog::default();
        let a = log.open(column(&[1]));
        let old = log.hold(NO_ROW, 100, 0, 200);
        log.close();
        let b = log.open(column(&[2]));
        let young = log.hold(NO_ROW, 10, 0, 20);
        log.close();
        let held = log.buffered().bytes();
        // B's columns go at 20; its entry stays behind A's (its time still says expired).
        assert_eq!(log.expire(20), 0);
        assert!(log.buffered().bytes() < held);
        assert!(log.buffered().gather(0, &[(b, 0)]).is_err());
        assert_eq!(times(&log, young), vec![10]);
        assert_eq!(log.expire(200), 2);
        assert!(!log.holds(old));
        assert!(log.buffered().gather(0, &[(a, 0)]).is_err());
        assert_eq!(log.buffered().bytes(), 0);
        assert!(log.expiries.is_empty());
    }
}
