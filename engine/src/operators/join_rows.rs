//! The rows a regular join holds for one key and side ([`SideRows`]), in one of two forms:
//!
//! - **distinct**: each distinct row once, with how many copies are held and, for an outer
//!   side, how many rows of the other side it matches. A retraction finds its row by its
//!   bytes, so an updating side needs this form, and so does an outer side (its padded row
//!   depends on the matches).
//! - **appended**: an append-only side that is not outer, in a streaming join without state
//!   TTL or windows. Its rows are only ever added and live until the job ends, so each is
//!   written once into the side's [`RowArena`] and the key keeps an 8-byte reference per
//!   row, in arrival order (a copy is simply there twice).
//!
//! Why: Nexmark's joins (q4, q9, q20) hold every bid. In the distinct form a row costs its
//! own allocation (rounded up to a size class), a map entry and index, and a hash of the
//! whole row; appended, it costs its bytes, a length and a reference. The state is a
//! fifth smaller, and growing it (the kernel zeroing new pages) is what those queries
//! spend most time on.

use std::mem::size_of;

use indexmap::IndexMap;

use super::KeyHasher;

/// A distinct row held for one key and side.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Held {
    /// How many copies of the row are held.
    pub(super) count: u64,
    /// For a row of an outer side: how many rows of the other side (with their
    /// multiplicity) it matches; its padded row is out while this is 0.
    pub(super) matches: u64,
}

/// One key's rows of one side.
pub(super) enum SideRows {
    /// Row bytes -> copies, in arrival order.
    Distinct(IndexMap<Box<[u8]>, Held, KeyHasher>),
    /// References into the side's [`RowArena`], in arrival order, one per copy.
    Appended(Vec<u64>),
}

impl Default for SideRows {
    fn default() -> Self {
        SideRows::Distinct(IndexMap::default())
    }
}

/// The copies an appended row stands for: one, matching nothing anyone reads (its side is
/// never outer).
const ONE_COPY: Held = Held { count: 1, matches: 0 };

impl SideRows {
    /// Empty, in the appended form when `appended`.
    pub(super) fn new(appended: bool) -> Self {
        if appended {
            SideRows::Appended(Vec::new())
        } else {
            SideRows::default()
        }
    }

    /// Entries: distinct rows, or rows.
    pub(super) fn len(&self) -> usize {
        match self {
            SideRows::Distinct(rows) => rows.len(),
            SideRows::Appended(refs) => refs.len(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Each entry's row and copies, in order.
    pub(super) fn rows<'a>(&'a self, arena: &'a RowArena) -> impl Iterator<Item = (&'a [u8], Held)> + 'a {
        let (distinct, appended) = match self {
            SideRows::Distinct(rows) => (Some(rows.iter().map(|(r, h)| (&**r, *h))), None),
            SideRows::Appended(refs) => (None, Some(refs.iter().map(|r| (arena.get(*r), ONE_COPY)))),
        };
        distinct.into_iter().flatten().chain(appended.into_iter().flatten())
    }

    /// Entry `j`'s row, and its copies to update (`None` for an appended row: one copy,
    /// whose matches nobody reads).
    pub(super) fn entry_mut<'a>(
        &'a mut self,
        j: usize,
        arena: &'a RowArena,
    ) -> Option<(&'a [u8], Option<&'a mut Held>)> {
        match self {
            SideRows::Distinct(rows) => rows.get_index_mut(j).map(|(r, h)| (&**r, Some(h))),
            SideRows::Appended(refs) => refs.get(j).map(|r| (arena.get(*r), None)),
        }
    }

    /// Adds `count` copies of `row` matching `matches` rows of the other side (a restore).
    pub(super) fn restore(&mut self, arena: &mut RowArena, row: &[u8], held: Held) -> usize {
        match self {
            SideRows::Distinct(rows) => {
                rows.insert(row.into(), held);
                held_bytes(row)
            }
            SideRows::Appended(refs) => {
                for _ in 0..held.count {
                    refs.push(arena.push(row));
                }
                appended_bytes(row) * held.count as usize
            }
        }
    }

    /// Adds a copy of `row` (matching `matches` rows of the other side) or takes one back,
    /// keeping `bytes` (the memory held) in step.
    pub(super) fn change(&mut self, arena: &mut RowArena, row: &[u8], add: bool, matches: u64, bytes: &mut usize) {
        match self {
            SideRows::Distinct(rows) => change_distinct(rows, row, add, matches, bytes),
            SideRows::Appended(refs) if add => {
                *bytes += appended_bytes(row);
                refs.push(arena.push(row));
            }
            SideRows::Appended(refs) => {
                // An append-only input takes nothing back; should one come, the row is no
                // longer joined (its bytes stay in the arena until the job ends).
                if let Some(j) = refs.iter().rposition(|r| arena.get(*r) == row) {
                    refs.remove(j);
                    *bytes = bytes.saturating_sub(size_of::<u64>());
                }
            }
        }
    }

    /// Memory held for these rows (appended: what the arena holds for them too).
    pub(super) fn bytes(&self, arena: &RowArena) -> usize {
        match self {
            SideRows::Distinct(rows) => rows.keys().map(|r| held_bytes(r)).sum(),
            SideRows::Appended(refs) => refs.iter().map(|r| appended_bytes(arena.get(*r))).sum(),
        }
    }
}

/// Memory a distinct row takes: its bytes, its `Box`, its copies and its hash in the map.
pub(super) fn held_bytes(row: &[u8]) -> usize {
    row.len() + size_of::<Box<[u8]>>() + size_of::<Held>() + size_of::<u64>()
}

/// Memory an appended row takes: its bytes and length in the arena, its reference.
fn appended_bytes(row: &[u8]) -> usize {
    row.len() + size_of::<u32>() + size_of::<u64>()
}

fn change_distinct(
    rows: &mut IndexMap<Box<[u8]>, Held, KeyHasher>,
    row: &[u8],
    add: bool,
    matches: u64,
    bytes: &mut usize,
) {
    if add {
        match rows.get_mut(row) {
            Some(held) => {
                held.count += 1;
                held.matches = matches;
            }
            None => {
                *bytes += held_bytes(row);
                rows.insert(row.into(), Held { count: 1, matches });
            }
        }
    } else if let Some(held) = rows.get_mut(row) {
        held.count -= 1;
        if held.count == 0 {
            *bytes = bytes.saturating_sub(held_bytes(row));
            rows.swap_remove(row);
        }
    }
}

/// Bytes of a [`RowArena`] slab.
const SLAB: usize = 1 << 20;

/// Rows written one after another into slabs of [`SLAB`] bytes (a longer row gets a slab
/// of its own), each as its length (`u32`, little-endian) then its bytes. A row is
/// referred to by `slab << 32 | offset`; nothing is freed before the arena is.
#[derive(Default)]
pub(super) struct RowArena {
    slabs: Vec<Vec<u8>>,
}

impl RowArena {
    /// Writes `row`; returns its reference.
    pub(super) fn push(&mut self, row: &[u8]) -> u64 {
        let need = size_of::<u32>() + row.len();
        let fits = self.slabs.last().is_some_and(|s| s.capacity() - s.len() >= need);
        if !fits {
            self.slabs.push(Vec::with_capacity(need.max(SLAB)));
        }
        let index = self.slabs.len() - 1;
        let slab = &mut self.slabs[index];
        let offset = slab.len();
        // A row is far shorter than 4 GiB: an arrow row of one side's columns.
        slab.extend_from_slice(&u32::try_from(row.len()).unwrap_or(u32::MAX).to_le_bytes());
        slab.extend_from_slice(row);
        (index as u64) << 32 | offset as u64
    }

    /// The row `reference` refers to (empty for a reference this arena did not make).
    pub(super) fn get(&self, reference: u64) -> &[u8] {
        let (index, offset) = ((reference >> 32) as usize, (reference & u64::from(u32::MAX)) as usize);
        let Some(slab) = self.slabs.get(index) else { return &[] };
        let Some(len) = slab.get(offset..offset + size_of::<u32>()) else { return &[] };
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let start = offset + size_of::<u32>();
        slab.get(start..start + len).unwrap_or(&[])
    }

    /// Memory of the slabs.
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.slabs.iter().map(Vec::capacity).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_arena_gives_back_each_row_it_was_given() {
        let mut arena = RowArena::default();
        let rows: Vec<Vec<u8>> = (0..5000usize).map(|i| vec![(i % 251) as u8; i % 700]).collect();
        let refs: Vec<u64> = rows.iter().map(|r| arena.push(r)).collect();
        // Longer than a slab: a slab of its own, and the next row goes on after it.
        let long = vec![7u8; SLAB + 3];
        let long_ref = arena.push(&long);
        let after = arena.push(b"after");
        for (r, row) in refs.iter().zip(&rows) {
            assert_eq!(arena.get(*r), &row[..]);
        }
        assert_eq!(arena.get(long_ref), &long[..]);
        assert_eq!(arena.get(after), b"after");
        assert_eq!(arena.get(u64::MAX), b"");
        assert!(arena.capacity() < 4 * SLAB + long.len(), "{}", arena.capacity());
    }

    #[test]
    fn both_forms_hold_the_same_rows() {
        let mut arena = RowArena::default();
        let mut bytes = [0usize; 2];
        let mut sides = [SideRows::new(false), SideRows::new(true)];
        for (side, bytes) in sides.iter_mut().zip(&mut bytes) {
            for row in [&b"a"[..], b"bb", b"a", b"ccc"] {
                side.change(&mut arena, row, true, 0, bytes);
            }
            side.change(&mut arena, b"bb", false, 0, bytes);
        }
        let copies = |s: &SideRows, arena: &RowArena| {
            let mut rows: Vec<(Vec<u8>, u64)> = s.rows(arena).map(|(r, h)| (r.to_vec(), h.count)).collect();
            rows.sort();
            rows
        };
        assert_eq!(copies(&sides[0], &arena), [(b"a".to_vec(), 2), (b"ccc".to_vec(), 1)]);
        let mut appended = copies(&sides[1], &arena);
        appended.dedup_by(|b, a| {
            let same = a.0 == b.0;
            if same {
                a.1 += b.1;
            }
            same
        });
        assert_eq!(appended, [(b"a".to_vec(), 2), (b"ccc".to_vec(), 1)]);
        assert_eq!((sides[0].len(), sides[1].len()), (2, 3));
        assert!(bytes[0] > 0 && bytes[1] > 0);
    }
}
