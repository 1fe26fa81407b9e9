//! Paths: one slot per consumer, with state the I/O path reads without locks.
//!
//! A geom keeps a fixed table of [`PathSlot`]s. State changes (add, fail,
//! restore, lose, remove) happen under the topology lock; `start` and `done`
//! only read state and move the in-flight counter, all with atomics. A slot's
//! consumer is torn down only after its in-flight count drained to zero, and
//! exactly one party (whoever sets `POSTED` first) does that teardown.

use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Paths per geom. Real SANs have 2 to 8; the table is fixed so the start
/// path never follows a pointer that could be freed under it.
pub const MAX_PATHS: usize = 32;

/// Slot index meaning "no path".
pub const NONE: usize = usize::MAX;

/// State bits of a slot. A slot is *good* when none of FREE, NEW, FAIL and
/// LOST is set.
pub mod st {
    /// Unused slot.
    pub const FREE: u32 = 1 << 0;
    /// Being attached: not yet usable for I/O.
    pub const NEW: u32 = 1 << 1;
    /// Marked failed (by an I/O error or `gmultipath fail`); still attached.
    pub const FAIL: u32 = 1 << 2;
    /// Gone (orphaned or removed): waits for its I/O to drain, then torn down.
    pub const LOST: u32 = 1 << 3;
    /// Teardown claimed: set once, by whoever saw the drain first.
    pub const POSTED: u32 = 1 << 4;
    /// Access dropped, detach deferred to a later event (see teardown).
    pub const WITHER: u32 = 1 << 5;
    /// Not usable for I/O.
    pub const BAD: u32 = FREE | NEW | FAIL | LOST;
}

/// One path of a multipath geom.
pub struct PathSlot {
    state: AtomicU32,
    /// The consumer (`Platform::consumer_to_raw`); meaningful unless FREE.
    consumer: AtomicUsize,
    /// Child bios sent on this path and not yet back.
    inflight: AtomicU32,
    /// Load-balancing idle counter: grows while the path is passed over.
    idle: AtomicU32,
    /// Order of addition; the kernel's consumer list is newest first.
    seq: AtomicU64,
    /// Counters for status and the simulator's summary.
    pub ios: AtomicU64,
    pub errors: AtomicU64,
    /// The path provider's name. Written by [`PathSlot::occupy`] and read
    /// by [`PathSlot::name`], both only with the topology lock held (the
    /// I/O path never reads it), so this spin lock is never contended: it
    /// only makes the shared slot `Sync`. It is held for a pointer copy or
    /// swap (an `Arc` count increment): never across an allocation, a free,
    /// a sleep or a KPI call, so WITNESS has nothing to see.
    name: spin::Mutex<Option<Arc<str>>>,
}

impl Default for PathSlot {
    fn default() -> Self {
        Self::new()
    }
}

impl PathSlot {
    pub const fn new() -> Self {
        PathSlot {
            state: AtomicU32::new(st::FREE),
            consumer: AtomicUsize::new(0),
            inflight: AtomicU32::new(0),
            idle: AtomicU32::new(0),
            seq: AtomicU64::new(0),
            ios: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            name: spin::Mutex::new(None),
        }
    }

    pub fn state(&self) -> u32 {
        self.state.load(Ordering::SeqCst)
    }
    pub fn is_free(&self) -> bool {
        self.state() & st::FREE != 0
    }
    pub fn is_good(&self) -> bool {
        self.state() & st::BAD == 0
    }
    pub fn has(&self, bits: u32) -> bool {
        self.state() & bits != 0
    }
    pub fn set(&self, bits: u32) -> u32 {
        self.state.fetch_or(bits, Ordering::SeqCst)
    }
    pub fn clear(&self, bits: u32) -> u32 {
        self.state.fetch_and(!bits, Ordering::SeqCst)
    }
    /// Claims the teardown: true for the first caller only.
    pub fn claim_teardown(&self) -> bool {
        self.set(st::POSTED) & st::POSTED == 0
    }

    pub fn consumer_raw(&self) -> usize {
        self.consumer.load(Ordering::SeqCst)
    }
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::Relaxed)
    }
    /// The path's name (topology held). Copied after the lock is dropped.
    pub fn name(&self) -> String {
        let name = self.name.lock().clone();
        name.map_or_else(String::new, |n| String::from(&*n))
    }

    /// Takes a free slot for a new consumer (topology held). The slot stays
    /// NEW, invisible to I/O, until [`PathSlot::publish`].
    pub fn occupy(&self, consumer: usize, name: &str, seq: u64) {
        // Allocated before, and the old name freed after, the lock.
        let new: Arc<str> = Arc::from(name);
        let old = self.name.lock().replace(new);
        drop(old);
        self.consumer.store(consumer, Ordering::SeqCst);
        self.seq.store(seq, Ordering::Relaxed);
        self.idle.store(0, Ordering::Relaxed);
        self.ios.store(0, Ordering::Relaxed);
        self.errors.store(0, Ordering::Relaxed);
        self.state.store(st::NEW, Ordering::SeqCst);
    }
    /// Makes an attached slot usable for I/O.
    pub fn publish(&self) {
        self.clear(st::NEW);
    }
    /// Returns the slot to the free pool once its consumer is destroyed.
    pub fn release_slot(&self) {
        self.state.store(st::FREE, Ordering::SeqCst);
    }

    pub fn inflight(&self) -> u32 {
        self.inflight.load(Ordering::SeqCst)
    }
    /// Takes a reference for a bio about to be sent. Returns the consumer
    /// when the path is still good after the increment; otherwise undoes it.
    /// Returns `Err(true)` when the undo drained a lost path whose teardown
    /// the caller now owns.
    pub fn try_get(&self) -> Result<usize, bool> {
        self.inflight.fetch_add(1, Ordering::SeqCst);
        // Increment first, then check: a concurrent lose/fail either sees
        // our count (and waits for us) or we see its state bit.
        if self.is_good() {
            Ok(self.consumer_raw())
        } else {
            Err(self.put())
        }
    }
    /// Takes a reference for synchronous I/O of the class's own (a label
    /// read or write) whatever the path's state: its consumer is not
    /// detached before the matching [`PathSlot::put`].
    pub fn hold(&self) {
        self.inflight.fetch_add(1, Ordering::SeqCst);
    }
    /// Drops a bio reference. Returns true when this drained a LOST path and
    /// the caller has claimed its teardown.
    pub fn put(&self) -> bool {
        let before = self.inflight.fetch_sub(1, Ordering::SeqCst);
        before == 1 && self.has(st::LOST) && self.claim_teardown()
    }

    pub fn idle(&self) -> u32 {
        self.idle.load(Ordering::Relaxed)
    }
    pub fn bump_idle(&self) {
        self.idle.fetch_add(1, Ordering::Relaxed);
    }
    pub fn reset_idle(&self) {
        self.idle.store(0, Ordering::Relaxed);
    }
}

/// The cookie on a child bio: which slot it went to, which try this is and
/// how many tries the parent may have (FreeBSD keeps the budget in the
/// parent; the child's own word serves here, as the worker re-clones).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cookie {
    pub slot: usize,
    pub attempt: u8,
    pub budget: u8,
}

impl Cookie {
    pub fn encode(self) -> usize {
        (self.slot & 0xff) | (usize::from(self.attempt) << 8) | (usize::from(self.budget) << 16)
    }
    pub fn decode(word: usize) -> Cookie {
        Cookie {
            slot: word & 0xff,
            attempt: ((word >> 8) & 0xff) as u8,
            budget: ((word >> 16) & 0xff) as u8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_round_trip() {
        let c = Cookie {
            slot: 31,
            attempt: 3,
            budget: 4,
        };
        assert_eq!(Cookie::decode(c.encode()), c);
    }

    #[test]
    fn free_slot_is_not_good_and_refuses_io() {
        let s = PathSlot::new();
        assert!(!s.is_good());
        assert_eq!(s.try_get(), Err(false));
        assert_eq!(s.inflight(), 0);
    }

    #[test]
    fn new_slot_is_invisible_until_published() {
        let s = PathSlot::new();
        s.occupy(7, "da0", 1);
        assert!(s.try_get().is_err());
        s.publish();
        assert_eq!(s.try_get(), Ok(7));
        assert_eq!(s.inflight(), 1);
        assert!(!s.put());
    }

    #[test]
    fn last_put_on_lost_path_claims_teardown_once() {
        let s = PathSlot::new();
        s.occupy(7, "da0", 1);
        s.publish();
        assert_eq!(s.try_get(), Ok(7));
        assert_eq!(s.try_get(), Ok(7));
        s.set(st::LOST);
        assert!(!s.put(), "one bio still out: no teardown yet");
        assert!(s.put(), "the drain claims the teardown");
        assert!(!s.claim_teardown(), "nobody claims it twice");
    }

    #[test]
    fn get_on_lost_path_undoes_and_may_own_teardown() {
        let s = PathSlot::new();
        s.occupy(7, "da0", 1);
        s.publish();
        s.set(st::LOST);
        assert_eq!(s.try_get(), Err(true));
        assert_eq!(s.inflight(), 0);
        assert_eq!(s.try_get(), Err(false));
    }
}
