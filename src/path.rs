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
//!   (`PathTable::fault`), so `start` never sees a moment with none: not
//!   in one load of the good mask, which alone decides that a bio has no
//!   path (a scan of the slots' states is not one moment; `choose`).
//!
//! Path choice (which good path a bio takes) lives here too, behind
//! `PathTable::acquire`, so it can change without touching the class.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Paths per geom. Real SANs have 2 to 8. The table reserves a pointer
/// per possible path and allocates a path's slot when a path first needs
/// it; a slot is reused, never freed, until the table goes, so the start
/// path never follows a pointer that could be freed under it.
pub const MAX_PATHS: usize = 32;

/// Slot index meaning "no path".
pub const NONE: usize = usize::MAX;

/// In-flight counters are kept per *lane*: each lane is a cache line of
/// its own, and a bio counts itself in the lane of the CPU that started
/// it (`Platform::cpu_hint` modulo `LANES`), and uncounts itself there
/// on completion (the lane travels in its [`Cookie`]). Bios started on
/// different CPUs thus write different lines, whichever path they take.
pub const LANES: usize = 4;

/// Paths whose counters live in the table's own lanes; the others' in
/// [`MoreLane`]s allocated when the first of them is added.
const INLINE: usize = 15;

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
/// reads and writes it. One cache line, written only by the topology
/// side: the I/O path reads its state and consumer and writes nothing
/// here (its counters are in the lanes).
#[repr(align(64))]
pub struct PathSlot {
    state: AtomicU32,
    /// The consumer (`Platform::consumer_to_raw`); meaningful unless FREE.
    consumer: AtomicUsize,
    /// Order of addition; the kernel's consumer list is newest first.
    seq: AtomicU64,
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
            seq: AtomicU64::new(0),
            name: spin::Mutex::new(None),
        }
    }

    fn state(&self) -> u32 {
        self.state.load(Ordering::SeqCst)
    }
    fn is_good(&self) -> bool {
        self.state() & st::BAD == 0
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
        self.state.store(st::NEW, Ordering::SeqCst);
    }
}

/// One CPU lane of the table: the in-flight counters of paths
/// `0..INLINE` and the lane's active/active cursor, on one cache line
/// (the line the lane's bios write, and no other).
#[repr(align(64))]
struct Lane {
    /// Where this lane's next balanced bio starts looking: after the
    /// path the last one took, so equal paths take turns.
    cursor: AtomicU32,
    inflight: [AtomicU32; INLINE],
}

/// A lane's counters of paths `INLINE..MAX_PATHS`.
#[repr(align(64))]
struct MoreLane {
    inflight: [AtomicU32; MAX_PATHS - INLINE],
}

/// The table proper, on the heap by itself and made there zeroed (every
/// field is valid as zero bytes): a softc built by value moves through
/// the stack of `create_geom`, and the kernel stack (16 KB on amd64,
/// shared by the whole taste or gctl chain) has no room for big frames.
/// `check-ko` bounds every frame.
struct Inner {
    lanes: [Lane; LANES],
    /// The path slots, allocated when first occupied (topology held) and
    /// freed only when the table is dropped.
    slots: [AtomicPtr<PathSlot>; MAX_PATHS],
    /// Counters of paths from `INLINE` on, allocated with the first one
    /// (topology held), freed with the table.
    more: AtomicPtr<[MoreLane; LANES]>,
    /// Bit i set when slot i is good: set after a slot becomes good and
    /// cleared after it goes bad (topology held), so it is a hint that
    /// the choice re-checks (see [`PathTable::acquire`]). A fault sets the
    /// bits of the paths it restores before it clears its own, so one load
    /// is never 0 while a path is good: only such a load says "no path".
    good: AtomicU32,
    /// Slot of the active path (A/P, and writes in A/R) plus one; 0 for
    /// none.
    active: AtomicUsize,
    /// Attached paths that are not LOST.
    ndisks: AtomicU32,
    /// Occupied slots (LOST ones still draining included).
    occupied: AtomicU32,
    next_seq: AtomicU64,
    /// Bit i set when slot i's teardown was claimed but its event could
    /// not be posted: destroy takes it over ([`PathTable::take_stranded`]).
    stranded: AtomicU32,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for p in &self.slots {
            let p = p.swap(core::ptr::null_mut(), Ordering::SeqCst);
            if !p.is_null() {
                // SAFETY: a non-null slot pointer came from Box::into_raw
                // in `PathTable::slot_or_new` and is released only here,
                // once (swapped out); `&mut self` means no one else holds
                // the table, so nothing reads the slot any more.
                drop(unsafe { Box::from_raw(p) });
            }
        }
        let more = self.more.swap(core::ptr::null_mut(), Ordering::SeqCst);
        if !more.is_null() {
            // SAFETY: as for the slots: made by Box::into_raw in
            // `slot_or_new`, released here once, with no reader left.
            drop(unsafe { Box::from_raw(more) });
        }
    }
}

/// One geom's paths: the slots, the active path and the counts.
pub struct PathTable {
    inner: Box<Inner>,
}

/// A path taken for a bio by [`PathTable::acquire`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Taken {
    pub slot: usize,
    /// Its consumer (`Platform::consumer_to_raw`).
    pub consumer: usize,
    /// The lane the bio is counted in: give it back to [`PathTable::put_on`].
    pub lane: usize,
}

/// Bit `slot` of a per-slot mask, or None past the mask's 32 bits.
fn slot_bit(slot: usize) -> Option<u32> {
    u32::try_from(slot).ok().and_then(|s| 1u32.checked_shl(s))
}

impl Default for PathTable {
    fn default() -> Self {
        Self::new()
    }
}

impl PathTable {
    pub(crate) fn new() -> Self {
        let zeroed = Box::<Inner>::new_zeroed();
        // SAFETY: every field of Inner is an atomic integer, an atomic
        // pointer or an array of them, for which zero bytes are a valid
        // value (0, or null); and zero is each field's starting value
        // (no path, no counts, cursors at slot 0, no active path).
        PathTable {
            inner: unsafe { zeroed.assume_init() },
        }
    }

    /// Bytes this table holds on the heap: the table, its slots and the
    /// counters of paths past the first `INLINE` (path names not counted).
    pub fn heap_bytes(&self) -> usize {
        let slots = (0..MAX_PATHS).filter(|&i| self.slot(i).is_some()).count();
        core::mem::size_of::<Inner>()
            + slots * core::mem::size_of::<PathSlot>()
            + if self.more().is_some() {
                core::mem::size_of::<[MoreLane; LANES]>()
            } else {
                0
            }
    }

    /// Heap bytes per path slot, and of the table without slots.
    pub const SLOT_BYTES: usize = core::mem::size_of::<PathSlot>();
    pub const TABLE_BYTES: usize = core::mem::size_of::<Inner>();
    /// Heap bytes of the counters of paths `INLINE..`, allocated once.
    pub const MORE_BYTES: usize = core::mem::size_of::<[MoreLane; LANES]>();
    /// Paths whose counters live in the table itself.
    pub const INLINE_PATHS: usize = INLINE;

    /// Slot `i`, if it was ever allocated.
    fn slot(&self, i: usize) -> Option<&PathSlot> {
        let p = self.inner.slots.get(i)?.load(Ordering::Acquire);
        // SAFETY: a non-null pointer here came from Box::into_raw in
        // `slot_or_new` (published with Release after the slot was built)
        // and is freed only by `Inner::drop`, which needs the table to
        // itself; so the slot lives at least as long as `&self`.
        unsafe { p.as_ref() }
    }

    /// Slot `i`, allocated if it never was (topology held; may sleep
    /// for memory, as the topology side may).
    fn slot_or_new(&self, i: usize) -> &PathSlot {
        let cell = &self.inner.slots[i];
        if cell.load(Ordering::Acquire).is_null() {
            let p = Box::into_raw(Box::new(PathSlot::new()));
            // Only the topology side stores here, one at a time.
            cell.store(p, Ordering::Release);
        }
        if i >= INLINE && self.more().is_none() {
            let more = Box::new(
                [const {
                    MoreLane {
                        inflight: [const { AtomicU32::new(0) }; MAX_PATHS - INLINE],
                    }
                }; LANES],
            );
            // Only the topology side stores here, one at a time.
            self.inner
                .more
                .store(Box::into_raw(more), Ordering::Release);
        }
        match self.slot(i) {
            Some(s) => s,
            // Stored just above, never removed while the table lives.
            None => unreachable!("path slot {i} vanished"),
        }
    }

    /// The in-flight counter of `slot` in `lane`.
    fn counter(&self, lane: usize, slot: usize) -> Option<&AtomicU32> {
        let lane = lane % LANES;
        if slot < INLINE {
            Some(&self.inner.lanes[lane].inflight[slot])
        } else {
            self.more()?[lane].inflight.get(slot - INLINE)
        }
    }

    /// The counters of paths past `INLINE`, once allocated.
    fn more(&self) -> Option<&[MoreLane; LANES]> {
        let p = self.inner.more.load(Ordering::Acquire);
        // SAFETY: non-null only once `slot_or_new` stored a Box::into_raw
        // pointer (Release, after the counters were built), freed only by
        // `Inner::drop`, which needs the table to itself.
        unsafe { p.as_ref() }
    }

    /// Re-derives bit `slot` of the good mask from its state (topology).
    fn sync_good(&self, slot: usize) {
        let bit = 1u32 << slot;
        if self.is_good(slot) {
            self.inner.good.fetch_or(bit, Ordering::SeqCst);
        } else {
            self.inner.good.fetch_and(!bit, Ordering::SeqCst);
        }
    }

    // ---- Reading a path (any context; names with the topology held) ----

    /// The state bits of `slot` (see [`st`]).
    pub fn state(&self, slot: usize) -> u32 {
        self.slot(slot).map_or(st::FREE, PathSlot::state)
    }
    /// Whether `slot` has any of `bits`.
    pub fn has(&self, slot: usize, bits: u32) -> bool {
        self.state(slot) & bits != 0
    }
    pub fn is_free(&self, slot: usize) -> bool {
        self.has(slot, st::FREE)
    }
    /// Usable for I/O: attached, published, neither failed nor lost.
    pub fn is_good(&self, slot: usize) -> bool {
        self.state(slot) & st::BAD == 0
    }
    /// The path provider's name (topology held).
    pub fn name(&self, slot: usize) -> String {
        self.slot(slot).map_or_else(String::new, PathSlot::name)
    }
    /// The consumer of an occupied slot (`Platform::consumer_to_raw`).
    pub fn consumer_raw(&self, slot: usize) -> usize {
        self.slot(slot).map_or(0, PathSlot::consumer_raw)
    }
    fn seq(&self, slot: usize) -> u64 {
        self.slot(slot).map_or(0, PathSlot::seq)
    }
    /// Bios in flight on `slot`: the sum over the lanes.
    pub fn inflight(&self, slot: usize) -> u32 {
        (0..LANES)
            .filter_map(|l| self.counter(l, slot))
            .map(|c| c.load(Ordering::SeqCst))
            .fold(0, u32::wrapping_add)
    }

    // ---- The whole table ----

    /// Occupied slots (attached consumers), newest first like the kernel's
    /// consumer list.
    pub fn newest_first(&self) -> Vec<usize> {
        let mut v: Vec<usize> = (0..MAX_PATHS).filter(|&i| !self.is_free(i)).collect();
        // Unstable is enough (every occupied slot has its own seq), and it
        // sorts in place: the stable sort keeps a scratch buffer on the
        // stack.
        v.sort_unstable_by_key(|&i| core::cmp::Reverse(self.seq(i)));
        v
    }
    /// Occupied slots, LOST ones still draining included. One load: the
    /// start path reads it for every bio.
    pub fn attached(&self) -> usize {
        self.inner.occupied.load(Ordering::SeqCst) as usize
    }
    pub fn all_free(&self) -> bool {
        self.attached() == 0
    }
    pub fn good_count(&self) -> usize {
        (0..MAX_PATHS).filter(|&i| self.is_good(i)).count()
    }
    /// Attached paths that are not LOST.
    pub fn ndisks(&self) -> usize {
        self.inner.ndisks.load(Ordering::SeqCst) as usize
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
    /// Allocation-free: `start` falls back on it (seqs are unique, so the
    /// newest good path is the one with the largest seq).
    pub fn first_good(&self) -> Option<usize> {
        (0..MAX_PATHS)
            .filter(|&i| self.is_good(i))
            .max_by_key(|&i| self.seq(i))
    }
    /// Sets the active path (topology held).
    fn set_active(&self, slot: Option<usize>) {
        let v = slot.filter(|&s| s < MAX_PATHS).map_or(0, |s| s + 1);
        self.inner.active.store(v, Ordering::SeqCst);
    }
    /// The active path, if any.
    pub fn active(&self) -> Option<usize> {
        let a = self.inner.active.load(Ordering::SeqCst);
        a.checked_sub(1).filter(|&a| a < MAX_PATHS)
    }

    // ---- The I/O path: no lock, no allocation ----

    /// Chooses a path for a bio and takes an in-flight reference on it,
    /// counted in the lane of `cpu` (`Platform::cpu_hint`): `balanced`
    /// spreads bios over every good path (active/active, reads in
    /// active/read), otherwise the active path carries them. A path that
    /// went bad under the choice is given up and another chosen, from the
    /// paths' states rather than the hints; when that undo drained a LOST
    /// path, `drained` is called with its slot and owns its teardown.
    ///
    /// What a bio writes: its path's counter in its own lane and, when
    /// balanced, that lane's cursor: one cache line, the lane's. It reads
    /// the active slot or the good mask, and its path's state and consumer,
    /// all written only by the topology side.
    pub(crate) fn acquire(
        &self,
        balanced: bool,
        cpu: usize,
        mut drained: impl FnMut(usize),
    ) -> Option<Taken> {
        let lane = cpu % LANES;
        // A few tries: a path can go bad between choosing and taking it.
        // Each retry follows a change of the topology side's; the bound
        // keeps a bio that loses every race from spinning for ever.
        for attempt in 0..MAX_PATHS {
            let slot = self.choose(balanced, lane, attempt)?;
            match self.try_get(slot, lane) {
                Ok(consumer) => {
                    return Some(Taken {
                        slot,
                        consumer,
                        lane,
                    })
                }
                Err(true) => drained(slot),
                Err(false) => {}
            }
        }
        None
    }

    /// The path to try for a bio's `attempt`; `None` only when one load
    /// of the good mask found it empty.
    ///
    /// The first try goes by the hints: the active path, or the good mask.
    /// A retry (the path taken went bad) goes by the slots' states. Those
    /// are read one after another, not as one snapshot, so a scan can
    /// miss every good path while faults move under it (a fault restores
    /// B and fails A, the scan reads A; another restores A and fails B,
    /// the scan reads B). The mask cannot: the topology side sets a bit
    /// before it clears another (a fault restores before it fails), so one
    /// load of it is never empty while a path is good. An empty scan falls
    /// back on that load: empty, there is no path (the bio fails with
    /// ENXIO, as FreeBSD's start would); else its path is tried.
    fn choose(&self, balanced: bool, lane: usize, attempt: usize) -> Option<usize> {
        if balanced {
            let mask = if attempt == 0 {
                self.good_mask()
            } else {
                match self.good_now() {
                    0 => self.good_mask(),
                    now => now,
                }
            };
            return self.least_busy(lane, mask);
        }
        match self.active() {
            // The hint, as is the first time; a retry checks it first.
            Some(a) if attempt == 0 || self.is_good(a) => return Some(a),
            _ => {}
        }
        // No active path, or it just went bad: the first good one (the
        // worker will move the active pointer under the topology lock).
        match self.good_now() {
            0 => self.newest_of(self.good_mask()),
            now => self.newest_of(now),
        }
    }

    /// Takes a reference on `slot` in `lane`. Returns the consumer when
    /// the path is still good after the increment; otherwise undoes it.
    /// Returns `Err(true)` when the undo drained a lost path whose
    /// teardown the caller now owns.
    fn try_get(&self, slot: usize, lane: usize) -> Result<usize, bool> {
        let (Some(s), Some(c)) = (self.slot(slot), self.counter(lane, slot)) else {
            return Err(false);
        };
        c.fetch_add(1, Ordering::SeqCst);
        // Increment first, then check: a concurrent lose/fail either sees
        // our count (and waits for us) or we see its state bit.
        if s.is_good() {
            Ok(s.consumer_raw())
        } else {
            Err(self.put_on(slot, lane))
        }
    }

    /// The good mask as the topology side keeps it: one load.
    fn good_mask(&self) -> u32 {
        self.inner.good.load(Ordering::SeqCst)
    }

    /// The good mask from the slots' states (not the hint), read one slot
    /// after another.
    fn good_now(&self) -> u32 {
        (0..MAX_PATHS)
            .filter(|&i| {
                #[cfg(test)]
                tests::before_scan_read(i);
                self.is_good(i)
            })
            .fold(0, |m, i| m | 1 << i)
    }

    /// The newest path (kernel list order) among those of `mask`.
    fn newest_of(&self, mask: u32) -> Option<usize> {
        (0..MAX_PATHS)
            .filter(|&i| mask & 1 << i != 0)
            .max_by_key(|&i| self.seq(i))
    }

    /// Active/active choice among the paths of `mask`: the fewest bios in
    /// flight from this lane; among equals the next after the lane's last
    /// choice, so equal paths take turns. Reads and writes only the lane's
    /// own line (and the overflow counters past `INLINE` paths).
    fn least_busy(&self, lane: usize, mask: u32) -> Option<usize> {
        if mask == 0 {
            return None;
        }
        let cursor = &self.inner.lanes[lane].cursor;
        let from = cursor.load(Ordering::Relaxed) as usize % MAX_PATHS;
        // Bit k of `order` is slot (from + k) % MAX_PATHS.
        let mut order = mask.rotate_right(from as u32);
        let mut best: Option<(u32, usize)> = None;
        while order != 0 {
            let k = order.trailing_zeros() as usize;
            order &= order - 1;
            let slot = (from + k) % MAX_PATHS;
            let n = self
                .counter(lane, slot)
                .map_or(u32::MAX, |c| c.load(Ordering::Relaxed));
            if best.is_none_or(|(b, _)| n < b) {
                best = Some((n, slot));
                if n == 0 {
                    break;
                }
            }
        }
        let (_, slot) = best?;
        let next = (slot + 1) % MAX_PATHS;
        if next != from {
            cursor.store(next as u32, Ordering::Relaxed);
        }
        Some(slot)
    }

    /// Takes a reference for synchronous I/O of the class's own (a label
    /// read or write) whatever the path's state: its consumer is not
    /// detached before the matching [`PathTable::put`]. Counted in lane 0.
    pub(crate) fn hold(&self, slot: usize) {
        if let Some(c) = self.counter(0, slot) {
            c.fetch_add(1, Ordering::SeqCst);
        }
    }
    /// Drops a reference taken by [`PathTable::hold`]. Returns true when
    /// this drained a LOST path: the caller has claimed its teardown.
    pub(crate) fn put(&self, slot: usize) -> bool {
        self.put_on(slot, 0)
    }
    /// Drops a reference a bio took in `lane` ([`Taken::lane`]). Returns
    /// true when this drained a LOST path: the caller has claimed its
    /// teardown.
    ///
    /// Each lane's count only moves up then down by one bio's reference,
    /// so no lane is ever below zero; a lane reaching zero on a LOST path
    /// adds up every lane, and the put that makes the sum zero (the last
    /// one, in the order of these atomics) sees it so. A sum cannot read
    /// zero while a bio holds the path: that bio's increment came before
    /// its check saw the path good, hence before LOST, hence before the
    /// sum, and its lane stays above zero until its own put.
    pub(crate) fn put_on(&self, slot: usize, lane: usize) -> bool {
        let Some(c) = self.counter(lane, slot) else {
            return false;
        };
        let before = c.fetch_sub(1, Ordering::SeqCst);
        before == 1
            && self.has(slot, st::LOST)
            && self.inflight(slot) == 0
            && self.slot(slot).is_some_and(PathSlot::claim_teardown)
    }

    // ---- Changes: topology held ----

    /// A free slot for a new path, if the table has one: the lowest, so
    /// paths keep to the table's own counters while they can.
    pub(crate) fn free_slot(&self) -> Option<usize> {
        (0..MAX_PATHS).find(|&i| self.is_free(i))
    }
    /// Takes the free `slot` for consumer `raw` named `name`. It stays NEW,
    /// invisible to I/O, until [`PathTable::publish`]. Allocates the slot
    /// the first time it is used (topology side; may sleep for memory).
    pub(crate) fn occupy(&self, slot: usize, raw: usize, name: &str) {
        let seq = self.inner.next_seq.fetch_add(1, Ordering::Relaxed);
        let s = self.slot_or_new(slot);
        s.occupy(raw, name, seq);
        self.inner.occupied.fetch_add(1, Ordering::SeqCst);
        self.sync_good(slot);
    }
    /// Makes an occupied slot usable for I/O and counts it. It becomes the
    /// active path when there was none; returns whether it did.
    pub(crate) fn publish(&self, slot: usize) -> bool {
        if let Some(s) = self.slot(slot) {
            s.clear(st::NEW);
        }
        self.sync_good(slot);
        self.inner.ndisks.fetch_add(1, Ordering::SeqCst);
        if self.active().is_some() {
            return false;
        }
        self.set_active(Some(slot));
        true
    }

    /// Sets state bits on an allocated slot and updates the good mask.
    fn set_bits(&self, slot: usize, bits: u32) {
        if let Some(s) = self.slot(slot) {
            s.set(bits);
        }
        self.sync_good(slot);
    }
    /// Clears state bits on an allocated slot and updates the good mask.
    fn clear_bits(&self, slot: usize, bits: u32) {
        if let Some(s) = self.slot(slot) {
            s.clear(bits);
        }
        self.sync_good(slot);
    }

    /// Marks `slot` FAIL or LOST (`cause`; `g_multipath_fault`). When no
    /// good path would remain, the failed others are restored first, so
    /// the I/O path never sees a moment with none; the only path, failing,
    /// is kept instead. An active path that goes is replaced by the first
    /// good one.
    pub(crate) fn fault(&self, slot: usize, cause: u32) -> Faulted {
        let mut out = Faulted::default();
        let ndisks = self.inner.ndisks.load(Ordering::SeqCst);
        let others_good = (0..MAX_PATHS).any(|i| i != slot && self.is_good(i));
        if !others_good && ndisks > 0 {
            // Every path has now failed: give the others another chance
            // (FreeBSD's automatic restore). The path that just failed is
            // left out unless it is the only one, which then restores itself.
            for i in self.newest_first() {
                if i != slot && self.has(i, st::FAIL) && !self.has(i, st::LOST | st::NEW) {
                    out.restored.push(i);
                    self.clear_bits(i, st::FAIL);
                }
            }
            // FreeBSD's restore loop skips LOST and NEW paths, the one
            // failing now included.
            if cause == st::FAIL && ndisks <= 1 && !self.has(slot, st::LOST | st::NEW) {
                out.kept = true;
                return out;
            }
        }
        self.set_bits(slot, cause);
        if self.active() == Some(slot) {
            let next = self.first_good();
            self.set_active(next);
            out.moved = Some(next);
        }
        out
    }

    /// Clears FAIL (`gmultipath restore`). The active path does not move,
    /// unless there was none (or it is bad): then I/O would fail with a
    /// good path present, and `slot` becomes active. Returns whether it did.
    pub(crate) fn restore(&self, slot: usize) -> bool {
        self.clear_bits(slot, st::FAIL);
        if self.active().is_none_or(|a| !self.is_good(a)) {
            self.set_active(Some(slot));
            return true;
        }
        false
    }

    /// Makes `slot` the active path (`prefer`).
    pub(crate) fn prefer(&self, slot: usize) {
        self.set_active(Some(slot));
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
                self.set_active(Some(n));
                Some(n)
            }
            _ => None,
        }
    }

    /// Marks a path LOST (orphaned or removed): it no longer counts, and
    /// an active path is replaced as by [`PathTable::fault`]. Its teardown
    /// waits for its I/O: see [`PathTable::claim_idle`].
    pub(crate) fn lose(&self, slot: usize) -> Faulted {
        self.inner.ndisks.fetch_sub(1, Ordering::SeqCst);
        self.fault(slot, st::LOST)
    }

    /// Claims the teardown of a LOST path with no I/O in flight. False
    /// when I/O is still out (its last [`PathTable::put_on`] claims it) or
    /// the teardown is already someone's.
    pub(crate) fn claim_idle(&self, slot: usize) -> bool {
        self.inflight(slot) == 0 && self.slot(slot).is_some_and(PathSlot::claim_teardown)
    }

    /// Destroy: no path is active any more.
    pub(crate) fn deactivate(&self) {
        self.set_active(None);
    }

    /// Destroy: marks `slot` LOST if it is not yet, then claims its
    /// teardown as [`PathTable::claim_idle`] does.
    pub(crate) fn retire(&self, slot: usize) -> bool {
        if !self.has(slot, st::LOST) {
            self.set_bits(slot, st::LOST);
            self.inner.ndisks.fetch_sub(1, Ordering::SeqCst);
        }
        self.claim_idle(slot)
    }

    /// Teardown: `slot`'s teardown was claimed but its event could not be
    /// posted; it stays attached until destroy takes it over. No
    /// allocation: callable from start and done.
    pub(crate) fn strand(&self, slot: usize) {
        if let Some(bit) = slot_bit(slot) {
            self.inner.stranded.fetch_or(bit, Ordering::SeqCst);
        }
    }

    /// Destroy: takes over a stranded path's teardown (topology held);
    /// whether `slot` was stranded.
    pub(crate) fn take_stranded(&self, slot: usize) -> bool {
        slot_bit(slot)
            .is_some_and(|bit| self.inner.stranded.fetch_and(!bit, Ordering::SeqCst) & bit != 0)
    }

    /// Teardown: access dropped, detach deferred to a later event.
    pub(crate) fn mark_withering(&self, slot: usize) {
        self.set_bits(slot, st::WITHER);
    }

    /// Returns `slot` to the free pool once its consumer is destroyed.
    /// The slot's memory stays with the table for the next path.
    pub(crate) fn release(&self, slot: usize) {
        if let Some(s) = self.slot(slot) {
            if s.state.swap(st::FREE, Ordering::SeqCst) & st::FREE == 0 {
                self.inner.occupied.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.sync_good(slot);
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

/// The cookie on a child bio: which slot it went to and in which lane it
/// is counted, which try this is and how many tries the parent may have
/// (FreeBSD keeps the budget in the parent; the child's own word serves
/// here, as the worker re-clones).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cookie {
    pub slot: usize,
    pub attempt: u8,
    pub budget: u8,
    pub lane: u8,
}

impl Cookie {
    pub fn encode(self) -> usize {
        (self.slot & 0xff)
            | (usize::from(self.attempt) << 8)
            | (usize::from(self.budget) << 16)
            | (usize::from(self.lane) << 24)
    }
    pub fn decode(word: usize) -> Cookie {
        Cookie {
            slot: word & 0xff,
            attempt: ((word >> 8) & 0xff) as u8,
            budget: ((word >> 16) & 0xff) as u8,
            lane: ((word >> 24) & 0xff) as u8,
        }
    }
}

#[cfg(test)]
mod tests;
