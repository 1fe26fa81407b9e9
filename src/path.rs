//! The path table: one geom's paths, and the lock-free protocol by which
//! the I/O path uses them while the topology side changes them.
//!
//! [`PathTable`] is the only owner of the paths' state; the rest of the
//! class names a path by its slot index and asks the table. The protocol,
//! all of it in this file:
//!
//! - State changes (add, fail, restore, lose, remove, the active path)
//!   happen under the topology lock. `start` and `done` only read state and
//!   move a path's in-flight counter, all with atomics.
//! - A bio takes a path by incrementing its in-flight count *first* and
//!   checking the state *after* (`PathTable::acquire`): a concurrent
//!   fail or lose either sees the count or is seen by the check.
//! - A LOST path's consumer is torn down only after its in-flight count
//!   drained to zero, and by exactly one party: whoever sets `POSTED`
//!   first (the last `PathTable::put`, a failed acquire's undo, or the
//!   topology side finding it idle, `PathTable::claim_idle`).
//! - Faulting the last good path restores the failed others first
//!   (`PathTable::fault`), so `start` never sees a moment with none.
//!
//! Path choice (which good path a bio takes) lives here too, behind
//! `PathTable::acquire`, so it can change without touching the class.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
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

/// One path of a multipath geom: a slot of the [`PathTable`], which alone
/// reads and writes it.
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
    ios: AtomicU64,
    errors: AtomicU64,
    /// The path provider's name. Written by [`PathSlot::occupy`] and read
    /// by [`PathSlot::name`], both only with the topology lock held (the
    /// I/O path never reads it), so this spin lock is never contended: it
    /// only makes the shared slot `Sync`. It is held for a pointer copy or
    /// swap (an `Arc` count increment): never across an allocation, a free,
    /// a sleep or a KPI call, so WITNESS has nothing to see.
    name: spin::Mutex<Option<Arc<str>>>,
}

impl PathSlot {
    const fn new() -> Self {
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

    fn state(&self) -> u32 {
        self.state.load(Ordering::SeqCst)
    }
    fn is_free(&self) -> bool {
        self.state() & st::FREE != 0
    }
    fn is_good(&self) -> bool {
        self.state() & st::BAD == 0
    }
    fn has(&self, bits: u32) -> bool {
        self.state() & bits != 0
    }
    fn set(&self, bits: u32) -> u32 {
        self.state.fetch_or(bits, Ordering::SeqCst)
    }
    fn clear(&self, bits: u32) -> u32 {
        self.state.fetch_and(!bits, Ordering::SeqCst)
    }
    /// Claims the teardown: true for the first caller only.
    fn claim_teardown(&self) -> bool {
        self.set(st::POSTED) & st::POSTED == 0
    }

    fn consumer_raw(&self) -> usize {
        self.consumer.load(Ordering::SeqCst)
    }
    fn seq(&self) -> u64 {
        self.seq.load(Ordering::Relaxed)
    }
    /// The path's name (topology held). Copied after the lock is dropped.
    fn name(&self) -> String {
        let name = self.name.lock().clone();
        name.map_or_else(String::new, |n| String::from(&*n))
    }

    /// Takes a free slot for a new consumer (topology held). The slot stays
    /// NEW, invisible to I/O, until published.
    fn occupy(&self, consumer: usize, name: &str, seq: u64) {
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

    fn inflight(&self) -> u32 {
        self.inflight.load(Ordering::SeqCst)
    }
    /// Takes a reference for a bio about to be sent. Returns the consumer
    /// when the path is still good after the increment; otherwise undoes it.
    /// Returns `Err(true)` when the undo drained a lost path whose teardown
    /// the caller now owns.
    fn try_get(&self) -> Result<usize, bool> {
        self.inflight.fetch_add(1, Ordering::SeqCst);
        // Increment first, then check: a concurrent lose/fail either sees
        // our count (and waits for us) or we see its state bit.
        if self.is_good() {
            Ok(self.consumer_raw())
        } else {
            Err(self.put())
        }
    }
    /// Drops a bio reference. Returns true when this drained a LOST path and
    /// the caller has claimed its teardown.
    fn put(&self) -> bool {
        let before = self.inflight.fetch_sub(1, Ordering::SeqCst);
        before == 1 && self.has(st::LOST) && self.claim_teardown()
    }

    fn idle(&self) -> u32 {
        self.idle.load(Ordering::Relaxed)
    }
}

/// What [`PathTable::fault`] changed, for the caller to report.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Faulted {
    /// FAIL paths restored because no good one would have remained, in
    /// list order (newest first).
    pub restored: Vec<usize>,
    /// The path was the only one and is kept (restored) instead of failed:
    /// nothing else changed.
    pub kept: bool,
    /// The faulted path was the active one: the new active path, or `None`
    /// when no good path remains.
    pub moved: Option<Option<usize>>,
}

/// One geom's paths: the slots, the active path and the counts.
pub struct PathTable {
    /// On the heap by itself (2.5 KB): a softc built by value moves through
    /// the stack of `create_geom`, and the kernel stack (16 KB on amd64,
    /// shared by the whole taste or gctl chain) has no room for such
    /// frames. `check-ko` bounds every frame.
    slots: Box<[PathSlot; MAX_PATHS]>,
    /// Slot of the active path (A/P, and writes in A/R), or [`NONE`].
    active: AtomicUsize,
    /// Attached paths that are not LOST.
    ndisks: AtomicU32,
    next_seq: AtomicU64,
}

/// The slots, built in place on the heap (never as a whole on the stack):
/// one by one into a vector of the final size, whose buffer becomes the box.
fn new_slots() -> Box<[PathSlot; MAX_PATHS]> {
    let mut v = Vec::with_capacity(MAX_PATHS);
    v.resize_with(MAX_PATHS, PathSlot::new);
    match v.into_boxed_slice().try_into() {
        Ok(b) => b,
        // The vector holds exactly MAX_PATHS slots (resize_with above).
        Err(_) => unreachable!("path table of the wrong length"),
    }
}

impl PathTable {
    pub(crate) fn new() -> Self {
        PathTable {
            slots: new_slots(),
            active: AtomicUsize::new(NONE),
            ndisks: AtomicU32::new(0),
            next_seq: AtomicU64::new(1),
        }
    }

    /// Bytes this table holds on the heap (its slots).
    pub fn heap_bytes(&self) -> usize {
        core::mem::size_of_val(&*self.slots)
    }

    // ---- Reading a path (any context; names with the topology held) ----

    /// The state bits of `slot` (see [`st`]).
    pub fn state(&self, slot: usize) -> u32 {
        self.slots[slot].state()
    }
    /// Whether `slot` has any of `bits`.
    pub fn has(&self, slot: usize, bits: u32) -> bool {
        self.slots[slot].has(bits)
    }
    pub fn is_free(&self, slot: usize) -> bool {
        self.slots[slot].is_free()
    }
    /// Usable for I/O: attached, published, neither failed nor lost.
    pub fn is_good(&self, slot: usize) -> bool {
        self.slots[slot].is_good()
    }
    /// The path provider's name (topology held).
    pub fn name(&self, slot: usize) -> String {
        self.slots[slot].name()
    }
    /// The consumer of an occupied slot (`Platform::consumer_to_raw`).
    pub fn consumer_raw(&self, slot: usize) -> usize {
        self.slots[slot].consumer_raw()
    }
    /// Bios in flight on `slot`.
    pub fn inflight(&self, slot: usize) -> u32 {
        self.slots[slot].inflight()
    }
    /// Bios sent on `slot`, and errors it returned, since it was added.
    pub fn io_counts(&self, slot: usize) -> (u64, u64) {
        let s = &self.slots[slot];
        (
            s.ios.load(Ordering::Relaxed),
            s.errors.load(Ordering::Relaxed),
        )
    }

    // ---- The whole table ----

    /// Occupied slots (attached consumers), newest first like the kernel's
    /// consumer list.
    pub fn newest_first(&self) -> Vec<usize> {
        let mut v: Vec<usize> = (0..MAX_PATHS).filter(|&i| !self.is_free(i)).collect();
        // Unstable is enough (every occupied slot has its own seq), and it
        // sorts in place: the stable sort keeps a 4 KB scratch buffer on the
        // stack.
        v.sort_unstable_by(|&a, &b| self.slots[b].seq().cmp(&self.slots[a].seq()));
        v
    }
    /// Occupied slots, LOST ones still draining included.
    pub fn attached(&self) -> usize {
        self.slots.iter().filter(|s| !s.is_free()).count()
    }
    pub fn all_free(&self) -> bool {
        self.slots.iter().all(PathSlot::is_free)
    }
    pub fn good_count(&self) -> usize {
        self.slots.iter().filter(|s| s.is_good()).count()
    }
    /// Attached paths that are not LOST.
    pub fn ndisks(&self) -> usize {
        self.ndisks.load(Ordering::SeqCst) as usize
    }
    /// The slot holding consumer `raw`.
    pub fn find_consumer(&self, raw: usize) -> Option<usize> {
        (0..MAX_PATHS).find(|&i| !self.is_free(i) && self.consumer_raw(i) == raw)
    }
    /// The newest slot whose path provider is named `name`; LOST ones only
    /// when `lost_too`.
    pub fn find_name(&self, name: &str, lost_too: bool) -> Option<usize> {
        self.newest_first()
            .into_iter()
            .find(|&i| (lost_too || !self.has(i, st::LOST)) && self.name(i) == name)
    }
    /// The first good path in kernel list order (newest first).
    /// Allocation-free: `start` uses it too (seqs are unique, so the
    /// newest good path is the one with the largest seq).
    pub fn first_good(&self) -> Option<usize> {
        (0..MAX_PATHS)
            .filter(|&i| self.is_good(i))
            .max_by_key(|&i| self.slots[i].seq())
    }
    /// The active path, if any.
    pub fn active(&self) -> Option<usize> {
        let a = self.active.load(Ordering::SeqCst);
        (a < MAX_PATHS).then_some(a)
    }

    // ---- The I/O path: no lock, no allocation ----

    /// Chooses a path for a bio and takes an in-flight reference on it:
    /// `balanced` spreads bios over every good path (active/active, reads
    /// in active/read), otherwise the active path carries them. Returns
    /// the slot and its consumer. A path that went bad under the choice
    /// is given up and another chosen; when that undo drained a LOST path,
    /// `drained` is called with its slot and owns its teardown.
    pub(crate) fn acquire(
        &self,
        balanced: bool,
        mut drained: impl FnMut(usize),
    ) -> Option<(usize, usize)> {
        // A few tries: a path can go bad between choosing and taking it.
        for _ in 0..MAX_PATHS {
            let slot = if balanced {
                self.least_busy()
            } else {
                self.active_or_first_good()
            }?;
            match self.slots[slot].try_get() {
                Ok(raw) => return Some((slot, raw)),
                Err(true) => drained(slot),
                Err(false) => {}
            }
        }
        None
    }

    /// The active path; if it just went bad, the first good one (the worker
    /// will move the active pointer under the topology lock shortly).
    fn active_or_first_good(&self) -> Option<usize> {
        match self.active() {
            Some(a) if self.is_good(a) => Some(a),
            _ => self.first_good(),
        }
    }

    /// Active/active choice: fewest bios in flight; among equals the one
    /// passed over longest, so equal paths take turns.
    fn least_busy(&self) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, s) in self.slots.iter().enumerate() {
            if !s.is_good() {
                continue;
            }
            s.idle.fetch_add(1, Ordering::Relaxed);
            best = match best {
                None => Some(i),
                Some(b) => {
                    let sb = &self.slots[b];
                    if (s.inflight(), core::cmp::Reverse(s.idle()))
                        < (sb.inflight(), core::cmp::Reverse(sb.idle()))
                    {
                        Some(i)
                    } else {
                        Some(b)
                    }
                }
            };
        }
        if let Some(b) = best {
            self.slots[b].idle.store(0, Ordering::Relaxed);
        }
        best
    }

    /// Counts a bio sent on `slot` (after [`PathTable::acquire`]).
    pub(crate) fn count_io(&self, slot: usize) {
        self.slots[slot].ios.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts an error returned by `slot`.
    pub(crate) fn count_error(&self, slot: usize) {
        self.slots[slot].errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes a reference for synchronous I/O of the class's own (a label
    /// read or write) whatever the path's state: its consumer is not
    /// detached before the matching [`PathTable::put`].
    pub(crate) fn hold(&self, slot: usize) {
        self.slots[slot].inflight.fetch_add(1, Ordering::SeqCst);
    }
    /// Drops a reference taken by [`PathTable::acquire`] or
    /// [`PathTable::hold`]. Returns true when this drained a LOST path: the
    /// caller has claimed its teardown.
    pub(crate) fn put(&self, slot: usize) -> bool {
        self.slots[slot].put()
    }

    // ---- Changes: topology held ----

    /// A free slot for a new path, if the table has one.
    pub(crate) fn free_slot(&self) -> Option<usize> {
        self.slots.iter().position(PathSlot::is_free)
    }
    /// Takes the free `slot` for consumer `raw` named `name`. It stays NEW,
    /// invisible to I/O, until [`PathTable::publish`].
    pub(crate) fn occupy(&self, slot: usize, raw: usize, name: &str) {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        self.slots[slot].occupy(raw, name, seq);
    }
    /// Makes an occupied slot usable for I/O and counts it. It becomes the
    /// active path when there was none; returns whether it did.
    pub(crate) fn publish(&self, slot: usize) -> bool {
        self.slots[slot].clear(st::NEW);
        self.ndisks.fetch_add(1, Ordering::SeqCst);
        if self.active().is_some() {
            return false;
        }
        self.active.store(slot, Ordering::SeqCst);
        true
    }

    /// Marks `slot` FAIL or LOST (`cause`; `g_multipath_fault`). When no
    /// good path would remain, the failed others are restored first, so
    /// the I/O path never sees a moment with none; the only path, failing,
    /// is kept instead. An active path that goes is replaced by the first
    /// good one.
    pub(crate) fn fault(&self, slot: usize, cause: u32) -> Faulted {
        let mut out = Faulted::default();
        let ndisks = self.ndisks.load(Ordering::SeqCst);
        let others_good = (0..MAX_PATHS).any(|i| i != slot && self.is_good(i));
        if !others_good && ndisks > 0 {
            // Every path has now failed: give the others another chance
            // (FreeBSD's automatic restore). The path that just failed is
            // left out unless it is the only one, which then restores itself.
            for i in self.newest_first() {
                let s = &self.slots[i];
                if i != slot && s.has(st::FAIL) && !s.has(st::LOST | st::NEW) {
                    out.restored.push(i);
                    s.clear(st::FAIL);
                }
            }
            // FreeBSD's restore loop skips LOST and NEW paths, the one
            // failing now included.
            if cause == st::FAIL && ndisks <= 1 && !self.has(slot, st::LOST | st::NEW) {
                out.kept = true;
                return out;
            }
        }
        self.slots[slot].set(cause);
        if self.active() == Some(slot) {
            let next = self.first_good();
            self.active.store(next.unwrap_or(NONE), Ordering::SeqCst);
            out.moved = Some(next);
        }
        out
    }

    /// Clears FAIL (`gmultipath restore`). The active path does not move,
    /// unless there was none (or it is bad): then I/O would fail with a
    /// good path present, and `slot` becomes active. Returns whether it did.
    pub(crate) fn restore(&self, slot: usize) -> bool {
        self.slots[slot].clear(st::FAIL);
        if self.active().is_none_or(|a| !self.is_good(a)) {
            self.active.store(slot, Ordering::SeqCst);
            return true;
        }
        false
    }

    /// Makes `slot` the active path (`prefer`).
    pub(crate) fn prefer(&self, slot: usize) {
        self.active.store(slot, Ordering::SeqCst);
    }

    /// Moves the active path to the next good one in list order
    /// (`rotate`). Returns the new active path when it moved.
    pub(crate) fn rotate(&self) -> Option<usize> {
        let order = self.newest_first();
        let cur = self.active();
        let after = cur
            .and_then(|c| order.iter().position(|&i| i == c))
            .map(|p| p + 1)
            .unwrap_or(0);
        let next = order[after.min(order.len())..]
            .iter()
            .chain(order.iter())
            .copied()
            .find(|&i| self.is_good(i));
        match next {
            Some(n) if next != cur => {
                self.active.store(n, Ordering::SeqCst);
                Some(n)
            }
            _ => None,
        }
    }

    /// Marks a path LOST (orphaned or removed): it no longer counts, and
    /// an active path is replaced as by [`PathTable::fault`]. Its teardown
    /// waits for its I/O: see [`PathTable::claim_idle`].
    pub(crate) fn lose(&self, slot: usize) -> Faulted {
        self.ndisks.fetch_sub(1, Ordering::SeqCst);
        self.fault(slot, st::LOST)
    }

    /// Claims the teardown of a LOST path with no I/O in flight. False
    /// when I/O is still out (its last [`PathTable::put`] claims it) or
    /// the teardown is already someone's.
    pub(crate) fn claim_idle(&self, slot: usize) -> bool {
        let s = &self.slots[slot];
        s.inflight() == 0 && s.claim_teardown()
    }

    /// Destroy: no path is active any more.
    pub(crate) fn deactivate(&self) {
        self.active.store(NONE, Ordering::SeqCst);
    }

    /// Destroy: marks `slot` LOST if it is not yet, then claims its
    /// teardown as [`PathTable::claim_idle`] does.
    pub(crate) fn retire(&self, slot: usize) -> bool {
        let s = &self.slots[slot];
        if !s.has(st::LOST) {
            s.set(st::LOST);
            self.ndisks.fetch_sub(1, Ordering::SeqCst);
        }
        self.claim_idle(slot)
    }

    /// Teardown: access dropped, detach deferred to a later event.
    pub(crate) fn mark_withering(&self, slot: usize) {
        self.slots[slot].set(st::WITHER);
    }

    /// Returns `slot` to the free pool once its consumer is destroyed.
    pub(crate) fn release(&self, slot: usize) {
        self.slots[slot].state.store(st::FREE, Ordering::SeqCst);
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
mod tests;
