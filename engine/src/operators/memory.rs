//! Estimates of the memory an operator's state holds, for [`StreamOperator::state_bytes`].
//!
//! The figure is checked after every message, so operators keep running counts (bytes of
//! buffered Arrow arrays, of encoded keys and rows) and add the fixed size of their
//! collections, which these helpers estimate from a length or capacity in O(1). The result
//! is an estimate: allocator overhead and small bookkeeping are left out.
//!
//! [`StreamOperator::state_bytes`]: super::StreamOperator::state_bytes

use std::collections::{HashMap, HashSet};
use std::mem::size_of;

/// The table of a `HashMap` (without what its keys and values own on the heap): its
/// buckets (capacity is 7/8 of them) of one entry and one control byte each.
pub(super) fn hash_map_bytes<K, V, S>(map: &HashMap<K, V, S>) -> usize {
    map.capacity().saturating_mul(size_of::<(K, V)>() + 1) / 7 * 8
}

/// The table of a `HashSet`, as [`hash_map_bytes`].
pub(super) fn hash_set_bytes<T, S>(set: &HashSet<T, S>) -> usize {
    set.capacity().saturating_mul(size_of::<T>() + 1) / 7 * 8
}

/// The nodes of a `BTreeMap` or `BTreeSet` of `len` entries (without what they own on the
/// heap): nodes are about two thirds full.
pub(super) fn btree_bytes<K, V>(len: usize) -> usize {
    len.saturating_mul(size_of::<(K, V)>()) / 2 * 3
}

/// Gives a map's memory back once most of its entries are gone (a `HashMap` never shrinks
/// by itself). Amortised O(1): a shrink rehashes the entries left, and takes removing
/// three quarters of the table first.
pub(super) fn shrink_if_sparse<K: Eq + std::hash::Hash, V, S: std::hash::BuildHasher>(map: &mut HashMap<K, V, S>) {
    if map.capacity() > 64 && map.len() < map.capacity() / 4 {
        map.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparse_map_shrinks() {
        let mut map: HashMap<u64, u64> = (0..1000).map(|i| (i, i)).collect();
        let full = hash_map_bytes(&map);
        assert!(full >= 1000 * 16, "{full}");
        map.retain(|k, _| *k < 100);
        shrink_if_sparse(&mut map);
        assert!(hash_map_bytes(&map) < full / 4, "{} of {full}", hash_map_bytes(&map));
        assert_eq!(btree_bytes::<u64, u64>(10), 240);
    }
}
