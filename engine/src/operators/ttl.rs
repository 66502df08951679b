//! `table.exec.state.ttl` for the keyed operators that are not windowed (deduplication,
//! changelog normalization), whose per-key state would otherwise grow with every key ever
//! seen. Windowed operators ignore it: the watermark frees their state.
//!
//! As Flink's state TTL with its defaults (processing time, `OnCreateAndWrite`,
//! `NeverReturnExpired`): a key's state expires once its last *write* is the TTL or more
//! ago (reading it does not count), and an expired key is as if it had never been seen.
//!
//! [`KeyExpiry`] keeps the keys in last-write order (a key written again moves to the
//! back), so the keys that expired are always at the front: an operator pops them at each
//! batch, without looking at the rest of its state.
//!
//! Checkpoints store each key's age at the snapshot ([`age_column`]), oldest write first;
//! a restore takes every key as written that long before the restore ([`written_at`]).
//! The time the job was down is not counted: across a restart a key lives longer than the
//! TTL, never shorter. (Flink stores wall-clock timestamps, so downtime counts there.)

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, UInt64Array};

use super::memory::btree_bytes;

/// Where an operator reads processing time: `Instant::now`, or a test's clock.
pub(super) type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// Identifies a key's last write in a [`KeyExpiry`]; the operator keeps it with the key's
/// state to move the key to the back when it is written again.
pub(super) type WriteId = u64;

/// The keys of an operator's state in last-write order, with the time of that write.
pub(super) struct KeyExpiry {
    ttl: Duration,
    clock: Clock,
    /// By write id, which grows with the time of the write: (that time, key).
    writes: BTreeMap<WriteId, (Instant, Box<[u8]>)>,
    next: WriteId,
    /// Bytes of the keys in `writes`.
    key_bytes: usize,
}

impl KeyExpiry {
    /// Keys expire `ttl` after their last write, in `Instant::now` time.
    pub(super) fn new(ttl: Duration) -> Self {
        Self { ttl, clock: Arc::new(Instant::now), writes: BTreeMap::new(), next: 0, key_bytes: 0 }
    }

    /// Processing time now.
    pub(super) fn now(&self) -> Instant {
        (self.clock)()
    }

    /// Reads processing time from `clock` instead.
    #[cfg(test)]
    pub(super) fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    /// `key` was written at `at` (not before any earlier write); `previous` is its last
    /// write, if it has state already. Returns the id of this write.
    pub(super) fn write(&mut self, key: &[u8], previous: Option<WriteId>, at: Instant) -> WriteId {
        let key = match previous.and_then(|p| self.writes.remove(&p)) {
            Some((_, old)) if *old == *key => old,
            Some((_, old)) => {
                self.key_bytes = self.key_bytes.saturating_sub(old.len()) + key.len();
                key.into()
            }
            None => {
                self.key_bytes += key.len();
                key.into()
            }
        };
        let id = self.next;
        self.next += 1;
        self.writes.insert(id, (at, key));
        id
    }

    /// The key of write `id` left the state for another reason (a delete).
    pub(super) fn forget(&mut self, id: WriteId) {
        if let Some((_, key)) = self.writes.remove(&id) {
            self.key_bytes = self.key_bytes.saturating_sub(key.len());
        }
    }

    /// The key written longest ago, removed, if its state expired at `now`.
    pub(super) fn pop_expired(&mut self, now: Instant) -> Option<Box<[u8]>> {
        let entry = self.writes.first_entry()?;
        if now.saturating_duration_since(entry.get().0) < self.ttl {
            return None;
        }
        let (_, key) = entry.remove();
        self.key_bytes = self.key_bytes.saturating_sub(key.len());
        Some(key)
    }

    /// The keys, oldest write first, with the age of their last write at `now`.
    pub(super) fn oldest_first(&self, now: Instant) -> impl Iterator<Item = (&[u8], Duration)> {
        self.writes.values().map(move |(at, key)| (&**key, now.saturating_duration_since(*at)))
    }

    /// How many keys are held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.writes.len()
    }

    /// Forgets every key (before a restore).
    pub(super) fn clear(&mut self) {
        self.writes.clear();
        self.key_bytes = 0;
    }

    /// Memory held: the order and a copy of every key.
    pub(super) fn bytes(&self) -> usize {
        btree_bytes::<WriteId, (Instant, Box<[u8]>)>(self.writes.len()) + self.key_bytes
    }
}

/// Ages as a checkpoint column: milliseconds since each key's last write.
pub(super) fn age_column(ages: impl IntoIterator<Item = Duration>) -> ArrayRef {
    let ms = ages.into_iter().map(|a| u64::try_from(a.as_millis()).unwrap_or(u64::MAX));
    Arc::new(UInt64Array::from_iter_values(ms))
}

/// When a key restored at `now` with an age of `age_ms` was written (`now` if the clock
/// cannot go back that far).
pub(super) fn written_at(now: Instant, age_ms: u64) -> Instant {
    now.checked_sub(Duration::from_millis(age_ms)).unwrap_or(now)
}

/// A clock for tests: starts at the real now and moves only when told.
#[cfg(test)]
#[derive(Clone)]
pub(super) struct ManualClock(Arc<std::sync::Mutex<Instant>>);

#[cfg(test)]
impl ManualClock {
    pub(super) fn new() -> Self {
        Self(Arc::new(std::sync::Mutex::new(Instant::now())))
    }

    pub(super) fn advance(&self, by: Duration) {
        let mut now = self.0.lock().expect("clock");
        *now += by;
    }

    pub(super) fn clock(&self) -> Clock {
        let now = Arc::clone(&self.0);
        Arc::new(move || *now.lock().expect("clock"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_expire_in_last_write_order() {
        let clock = ManualClock::new();
        let mut expiry = KeyExpiry::new(Duration::from_secs(10));
        expiry.set_clock(clock.clock());
        let a = expiry.write(b"a", None, expiry.now());
        clock.advance(Duration::from_secs(4));
        expiry.write(b"b", None, expiry.now());
        let c = expiry.write(b"c", None, expiry.now());
        clock.advance(Duration::from_secs(4));
        // a written again at 8 s: it moves behind b and c.
        expiry.write(b"a", Some(a), expiry.now());
        expiry.forget(c);
        clock.advance(Duration::from_secs(5));
        assert_eq!(expiry.pop_expired(expiry.now()), None);
        clock.advance(Duration::from_secs(1));
        // b is exactly 10 s old: expired, as in Flink (`expiration <= now`).
        assert_eq!(expiry.pop_expired(expiry.now()).as_deref(), Some(&b"b"[..]));
        assert_eq!(expiry.pop_expired(expiry.now()), None);
        let ages: Vec<(&[u8], Duration)> = expiry.oldest_first(expiry.now()).collect();
        assert_eq!(ages, vec![(&b"a"[..], Duration::from_secs(6))]);
        assert!(expiry.bytes() > 1);
        clock.advance(Duration::from_secs(4));
        assert_eq!(expiry.pop_expired(expiry.now()).as_deref(), Some(&b"a"[..]));
        assert_eq!(expiry.bytes(), 0);
    }
}
