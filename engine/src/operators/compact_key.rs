//! A key of keyed state in Arrow's row format, held inline when it is short.
//!
//! Why: a keyed operator with millions of keys (Nexmark q7 holds every bid by price) paid
//! for a heap allocation per key (twice, with its cleanup timer) and for a `memcmp` call
//! on every probe of its hash table. Most keys are a number or two or a short string: in
//! the row format at most [`INLINE`] bytes, which are kept in the key itself (zero-padded),
//! so cloning is a copy and equality is a comparison of two fixed arrays.

use std::hash::{Hash, Hasher};
use std::mem::size_of;

/// Longest key kept inline: the enum is then 24 bytes, as large as `Box<[u8]>` plus a tag.
pub(super) const INLINE: usize = 22;

/// Row-format key bytes. A key has one representation, chosen by its length, so keys
/// of the two variants are never equal.
#[derive(Clone, Debug)]
pub(super) enum CompactKey {
    /// `len` bytes, then zeros.
    Inline {
        len: u8,
        bytes: [u8; INLINE],
    },
    Heap(Box<[u8]>),
}

impl CompactKey {
    pub(super) fn new(key: &[u8]) -> Self {
        if key.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..key.len()].copy_from_slice(key);
            Self::Inline { len: key.len() as u8, bytes }
        } else {
            Self::Heap(key.into())
        }
    }

    pub(super) fn as_slice(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Heap(b) => b,
        }
    }

    /// Memory the key holds: itself, and its heap bytes if any.
    pub(super) fn bytes(&self) -> usize {
        size_of::<Self>()
            + match self {
                Self::Inline { .. } => 0,
                Self::Heap(b) => b.len(),
            }
    }
}

impl PartialEq for CompactKey {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            // Both zero-padded: comparing the whole arrays is comparing the keys.
            (Self::Inline { len: a, bytes: x }, Self::Inline { len: b, bytes: y }) => a == b && x == y,
            (Self::Heap(x), Self::Heap(y)) => x == y,
            _ => false,
        }
    }
}

impl Eq for CompactKey {}

impl Hash for CompactKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Self::Inline { len, bytes } => {
                state.write_u8(*len);
                state.write(bytes);
            }
            Self::Heap(b) => state.write(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn short_keys_are_inline_and_keys_compare_by_their_bytes() {
        assert_eq!(size_of::<CompactKey>(), 24);
        let short = CompactKey::new(&[1, 2, 3]);
        assert!(matches!(short, CompactKey::Inline { len: 3, .. }));
        assert_eq!(short.as_slice(), &[1, 2, 3]);
        // A shorter key that is a prefix, or the same bytes plus a zero, is another key.
        assert_ne!(short, CompactKey::new(&[1, 2]));
        assert_ne!(short, CompactKey::new(&[1, 2, 3, 0]));
        let long: Vec<u8> = (0..40).collect();
        let heap = CompactKey::new(&long);
        assert!(matches!(heap, CompactKey::Heap(_)));
        assert_eq!(heap.as_slice(), &long[..]);
        assert_eq!(heap.bytes(), 24 + 40);
        let edge = CompactKey::new(&long[..INLINE]);
        assert!(matches!(edge, CompactKey::Inline { .. }));
        assert_eq!(edge.as_slice(), &long[..INLINE]);
        let mut map = HashMap::new();
        map.insert(short.clone(), 1);
        map.insert(heap.clone(), 2);
        map.insert(CompactKey::new(&[1, 2]), 3);
        assert_eq!(map.get(&CompactKey::new(&[1, 2, 3])), Some(&1));
        assert_eq!(map.get(&CompactKey::new(&long)), Some(&2));
        assert_eq!(map.len(), 3);
    }
}
