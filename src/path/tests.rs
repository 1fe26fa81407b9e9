//! The path table's protocol, checked on its own: claim and release,
//! teardown claimed exactly once, faults that never leave `start` without
//! a path, and the same under threads racing as far as a host shows it.

use super::*;
use core::cell::RefCell;
use std::boxed::Box as StdBox;
use std::sync::atomic::AtomicBool;
use std::sync::Arc as StdArc;
use std::thread;

/// A test's step, run with the slot a scan is about to read.
type ScanHook = StdBox<dyn FnMut(usize)>;

std::thread_local! {
    /// What runs on this thread before `good_now` reads a slot's state.
    static SCAN_HOOK: RefCell<Option<ScanHook>> = const { RefCell::new(None) };
}

/// `good_now`'s hook: runs this thread's [`SCAN_HOOK`], if any, before
/// slot `i` is read; so a test can change the table at exactly that point
/// of a bio's scan. The hook is taken out while it runs: what it calls
/// does not run it again.
pub(super) fn before_scan_read(i: usize) {
    if let Some(mut hook) = SCAN_HOOK.with(|h| h.borrow_mut().take()) {
        hook(i);
        SCAN_HOOK.with(|h| *h.borrow_mut() = Some(hook));
    }
}

/// Runs `body` with `hook` called before each slot read of this thread's
/// scans.
fn with_scan_hook<R>(hook: impl FnMut(usize) + 'static, body: impl FnOnce() -> R) -> R {
    SCAN_HOOK.with(|h| *h.borrow_mut() = Some(StdBox::new(hook)));
    let r = body();
    SCAN_HOOK.with(|h| *h.borrow_mut() = None);
    r
}

/// A table with `n` published paths: slot i holds consumer 100 + i, named
/// `da<i>`, added in slot order (so the last is the newest).
fn table(n: usize) -> PathTable {
    let t = PathTable::new();
    for i in 0..n {
        let slot = t.free_slot().expect("a free slot");
        assert_eq!(slot, i);
        t.occupy(slot, 100 + i, &std::format!("da{i}"));
        t.publish(slot);
    }
    t
}

fn no_drain(slot: usize) {
    panic!("nothing should drain here (slot {slot})");
}

impl PathTable {
    /// `acquire` from CPU 0, as (slot, consumer).
    fn acquire0(&self, balanced: bool, drained: impl FnMut(usize)) -> Option<(usize, usize)> {
        self.acquire(balanced, 0, drained)
            .map(|t| (t.slot, t.consumer))
    }
}

#[test]
fn cookie_round_trip() {
    let c = Cookie {
        slot: 31,
        attempt: 3,
        budget: 4,
        lane: 3,
    };
    assert_eq!(Cookie::decode(c.encode()), c);
}

#[test]
fn empty_table_refuses_io() {
    let t = PathTable::new();
    assert_eq!(t.acquire0(false, no_drain), None);
    assert_eq!(t.acquire0(true, no_drain), None);
    assert_eq!(t.active(), None);
    assert_eq!((t.attached(), t.ndisks(), t.good_count()), (0, 0, 0));
    assert!(t.all_free());
}

#[test]
fn new_path_is_invisible_until_published() {
    let t = PathTable::new();
    t.occupy(0, 7, "da0");
    assert!(t.has(0, st::NEW) && !t.is_good(0));
    assert_eq!(t.acquire0(false, no_drain), None);
    assert_eq!(t.acquire0(true, no_drain), None);
    assert!(t.publish(0), "the first path becomes active");
    assert_eq!(t.acquire0(false, no_drain), Some((0, 7)));
    assert_eq!(t.inflight(0), 1);
    assert!(!t.put(0));
    assert_eq!(t.inflight(0), 0);
    t.occupy(1, 8, "da1");
    assert!(!t.publish(1), "a second path does not take over");
    assert_eq!(t.active(), Some(0));
    assert_eq!(t.ndisks(), 2);
}

#[test]
fn lookups_follow_the_kernel_list_order() {
    let t = table(3);
    assert_eq!(t.newest_first(), [2, 1, 0]);
    assert_eq!(t.first_good(), Some(2));
    assert_eq!(t.find_consumer(101), Some(1));
    assert_eq!(t.find_consumer(7), None);
    assert_eq!(t.find_name("da0", false), Some(0));
    let _ = t.lose(0);
    assert_eq!(t.find_name("da0", false), None);
    assert_eq!(t.find_name("da0", true), Some(0));
}

#[test]
fn last_put_on_lost_path_claims_teardown_once() {
    let t = table(2);
    assert_eq!(t.acquire0(false, no_drain), Some((0, 100)));
    assert_eq!(t.acquire0(false, no_drain), Some((0, 100)));
    let f = t.lose(0);
    assert_eq!(f.moved, Some(Some(1)), "the active path moves on");
    assert!(!t.claim_idle(0), "bios are out: no teardown yet");
    assert!(!t.put(0), "one bio still out: no teardown yet");
    assert!(t.put(0), "the drain claims the teardown");
    assert!(!t.claim_idle(0), "nobody claims it twice");
    t.release(0);
    assert!(t.is_free(0));
    assert_eq!((t.attached(), t.ndisks()), (1, 1));
}

#[test]
fn get_on_lost_path_undoes_and_may_own_teardown() {
    let t = table(1);
    t.set_bits(0, st::LOST);
    assert_eq!(t.try_get(0, 1), Err(true));
    assert_eq!(t.inflight(0), 0);
    assert_eq!(t.try_get(0, 2), Err(false));
    assert_eq!(t.inflight(0), 0);
}

#[test]
fn an_idle_lost_path_is_claimed_by_the_topology_side() {
    let t = table(2);
    let _ = t.lose(1);
    assert!(t.claim_idle(1));
    assert!(!t.claim_idle(1));
    // A held path (label I/O) is not torn down under the holder.
    t.hold(0);
    assert!(!t.retire(0));
    assert!(t.put(0), "the holder's put owns the teardown");
    assert_eq!(t.ndisks(), 0);
}

#[test]
fn fault_moves_the_active_path() {
    let t = table(3);
    assert_eq!(t.active(), Some(0));
    let f = t.fault(0, st::FAIL);
    assert_eq!(
        f,
        Faulted {
            restored: std::vec![],
            kept: false,
            moved: Some(Some(2)),
        }
    );
    assert_eq!(t.active(), Some(2));
    let f = t.fault(1, st::FAIL);
    assert_eq!(f.moved, None, "a passive path's fault moves nothing");
    assert_eq!(t.good_count(), 1);
}

#[test]
fn faulting_the_last_good_path_restores_the_others_first() {
    let t = table(3);
    let _ = t.fault(0, st::FAIL);
    let _ = t.fault(1, st::FAIL);
    let f = t.fault(2, st::FAIL);
    assert_eq!(f.restored, [1, 0], "newest first");
    assert!(!f.kept);
    assert_eq!(f.moved, Some(Some(1)));
    assert!(t.has(2, st::FAIL) && t.is_good(1) && t.is_good(0));
}

#[test]
fn the_only_path_is_kept_not_failed() {
    let t = table(1);
    let f = t.fault(0, st::FAIL);
    assert!(f.kept && f.restored.is_empty() && f.moved.is_none());
    assert!(t.is_good(0));
    assert_eq!(t.active(), Some(0));
    // Lost, it goes: out of paths.
    let f = t.lose(0);
    assert_eq!(f.moved, Some(None));
    assert_eq!(t.active(), None);
    assert_eq!(t.acquire0(false, no_drain), None);
}

#[test]
fn restore_takes_over_only_without_a_good_active_path() {
    let t = table(2);
    let _ = t.fault(1, st::FAIL);
    assert!(!t.restore(1), "active path 0 is good: it stays");
    assert_eq!(t.active(), Some(0));
    let _ = t.fault(1, st::FAIL);
    let f = t.lose(0);
    assert_eq!(f.restored, [1], "losing the last good path restores 1");
    assert_eq!(f.moved, Some(Some(1)));
    let _ = t.fault(1, st::FAIL);
    assert!(t.is_good(1), "the only path left is kept");
    t.deactivate();
    assert!(t.restore(1), "no active path: the restored one takes over");
    assert_eq!(t.active(), Some(1));
}

#[test]
fn rotate_walks_the_good_paths_newest_first() {
    let t = table(3);
    assert_eq!(t.active(), Some(0));
    assert_eq!(t.rotate(), Some(2), "after the oldest comes the newest");
    let _ = t.fault(1, st::FAIL);
    assert_eq!(t.rotate(), Some(0), "a failed path is skipped");
    t.prefer(1);
    assert_eq!(t.active(), Some(1));
    let lone = table(1);
    assert_eq!(lone.rotate(), None, "nowhere to go");
}

#[test]
fn balanced_choice_takes_turns_and_prefers_the_idle() {
    let t = table(2);
    let mut seen = std::vec::Vec::new();
    for _ in 0..4 {
        let (slot, _) = t.acquire0(true, no_drain).expect("a path");
        seen.push(slot);
        assert!(!t.put(slot));
    }
    assert_eq!(seen, [0, 1, 0, 1]);
    // A busy path is passed over.
    let (busy, _) = t.acquire0(true, no_drain).expect("a path");
    let (other, _) = t.acquire0(true, no_drain).expect("a path");
    assert_ne!(busy, other);
    assert_eq!(t.acquire0(false, no_drain).map(|(s, _)| s), Some(0));
}

#[test]
fn destroy_retires_every_path_once() {
    let t = table(2);
    let _ = t.lose(0);
    t.deactivate();
    assert_eq!(t.active(), None);
    assert!(t.retire(0));
    assert!(t.retire(1));
    assert_eq!(t.ndisks(), 0, "an already lost path is not counted twice");
    t.mark_withering(1);
    assert!(t.has(1, st::WITHER));
}

/// Bios race a path's loss: whatever the interleaving, its teardown is
/// claimed exactly once, after its last bio, and no bio takes it after
/// the loss is complete.
#[test]
fn race_lose_against_io_claims_teardown_exactly_once() {
    for round in 0..100 {
        let t = table(2);
        let claims = AtomicU32::new(0);
        let lost = AtomicBool::new(false);
        thread::scope(|s| {
            for cpu in 0..3 {
                let (t, claims, lost) = (&t, &claims, &lost);
                s.spawn(move || {
                    for _ in 0..500 {
                        let was_lost = lost.load(Ordering::SeqCst);
                        // Each thread its own lane (CPU), as on a machine.
                        let got = t.acquire(round % 2 == 0, cpu + round, |slot| {
                            assert_eq!(slot, 0);
                            claims.fetch_add(1, Ordering::SeqCst);
                        });
                        let Taken { slot, lane, .. } = got.expect("path 1 stays good");
                        assert!(!(was_lost && slot == 0), "took a path already lost");
                        if t.put_on(slot, lane) {
                            assert_eq!(slot, 0);
                            claims.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
            }
            for _ in 0..round % 7 {
                thread::yield_now();
            }
            let _ = t.lose(0);
            lost.store(true, Ordering::SeqCst);
            if t.claim_idle(0) {
                claims.fetch_add(1, Ordering::SeqCst);
            }
        });
        assert_eq!(t.inflight(0), 0, "round {round}");
        assert_eq!(t.inflight(1), 0, "round {round}");
        assert_eq!(claims.load(Ordering::SeqCst), 1, "round {round}");
    }
}

/// The active path fails and comes back while bios are chosen: a bio
/// that finds the active path bad falls back to a good one, so while one
/// path stays good no bio finds none, in either choice.
///
/// (Two faults in a row under one bio's scan are run deterministically by
/// `a_scan_racing_two_faults_still_finds_the_good_path`.)
#[test]
fn race_fault_and_restore_never_leave_io_without_a_path() {
    let t = table(3);
    let stop = AtomicBool::new(false);
    let missed = AtomicU32::new(0);
    thread::scope(|s| {
        for balanced in [false, true] {
            let (t, stop, missed) = (&t, &stop, &missed);
            s.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match t.acquire0(balanced, no_drain) {
                        Some((slot, _)) => assert!(!t.put(slot)),
                        None => {
                            missed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            });
        }
        for i in 0..4_000 {
            let slot = i % 2;
            t.prefer(slot);
            let f = t.fault(slot, st::FAIL);
            assert!(f.restored.is_empty() && !f.kept);
            assert_eq!(f.moved, Some(Some(2)));
            assert!(!t.restore(slot), "path 2 is active and good");
        }
        stop.store(true, Ordering::SeqCst);
    });
    assert_eq!(missed.load(Ordering::SeqCst), 0);
    assert_eq!(t.good_count(), 3);
    assert_eq!((0..3).map(|i| t.inflight(i)).sum::<u32>(), 0);
}

/// Bios from different CPUs are counted in different lanes, each on a
/// cache line of its own; the in-flight figure is their sum, and a lost
/// path drains only when every lane has.
#[test]
fn lanes_count_apart_and_drain_together() {
    let t = table(2);
    let a = t.acquire(false, 1, no_drain).expect("a path");
    let b = t.acquire(false, 2, no_drain).expect("a path");
    assert_eq!((a.slot, b.slot), (0, 0));
    assert_eq!((a.lane, b.lane), (1, 2));
    assert_eq!(t.inflight(0), 2);
    let w = t.acquire(false, LANES + 1, no_drain).expect("a path");
    assert_eq!(w.lane, 1, "CPUs beyond the lanes share them");
    assert!(!t.put_on(0, w.lane));
    let _ = t.lose(0);
    assert!(!t.claim_idle(0));
    assert!(!t.put_on(0, a.lane), "lane 2 still holds a bio");
    assert!(t.put_on(0, b.lane), "the last lane to drain claims");
    assert!(!t.claim_idle(0));
    // Every lane's counters are on lines no other lane writes.
    let line = |lane: usize, slot: usize| {
        let c = t.counter(lane, slot).expect("a counter") as *const AtomicU32 as usize;
        c / 64
    };
    for slot in [0, INLINE - 1] {
        for l in 0..LANES {
            for m in 0..LANES {
                assert_eq!(
                    line(l, slot) == line(m, slot),
                    l == m,
                    "slot {slot} lanes {l} {m}"
                );
            }
        }
    }
}

/// Paths past the table's own counters get theirs from the overflow
/// lanes, allocated with the first of them; all 32 slots work.
#[test]
fn every_slot_up_to_the_limit_carries_io() {
    let t = table(MAX_PATHS);
    assert_eq!(t.free_slot(), None);
    for slot in 0..MAX_PATHS {
        t.prefer(slot);
        for cpu in 0..LANES {
            let got = t.acquire(false, cpu, no_drain).expect("a path");
            assert_eq!((got.slot, got.consumer), (slot, 100 + slot));
        }
        assert_eq!(t.inflight(slot), LANES as u32);
        for lane in 0..LANES {
            assert!(!t.put_on(slot, lane));
        }
    }
    let mut seen = [0u32; MAX_PATHS];
    for _ in 0..MAX_PATHS * 2 {
        let got = t.acquire(true, 3, no_drain).expect("a path");
        seen[got.slot] += 1;
        assert!(!t.put_on(got.slot, got.lane));
    }
    assert_eq!(seen, [2; MAX_PATHS], "equal paths take turns over all 32");
}

/// The good mask is a hint: a slot gone bad that it still shows (its
/// bit is cleared just after the state) costs a retry, never a failure.
#[test]
fn a_stale_good_mask_falls_back_to_the_states() {
    let t = table(2);
    // Fail slot 0 behind the mask's back.
    t.slot(0).expect("slot 0").set(st::FAIL);
    assert_ne!(t.inner.good.load(Ordering::SeqCst) & 1, 0);
    for _ in 0..4 {
        let got = t.acquire(true, 0, no_drain).expect("slot 1 is good");
        assert_eq!(got.slot, 1);
        assert!(!t.put_on(1, got.lane));
    }
    // The active path, bad behind its back, is passed over too.
    let got = t.acquire(false, 0, no_drain).expect("slot 1 is good");
    assert_eq!(got.slot, 1);
    assert!(!t.put_on(1, got.lane));
}

/// A released slot is reused (lowest first) and its memory kept; the
/// table's heap figure grows only with the paths it ever held at once.
#[test]
fn slots_are_allocated_on_first_use_and_reused() {
    let t = PathTable::new();
    assert_eq!(t.heap_bytes(), PathTable::TABLE_BYTES);
    let t = table(2);
    let two = t.heap_bytes();
    assert_eq!(two, PathTable::TABLE_BYTES + 2 * PathTable::SLOT_BYTES);
    let _ = t.lose(0);
    assert!(t.claim_idle(0));
    t.release(0);
    assert_eq!(t.attached(), 1);
    assert_eq!(t.free_slot(), Some(0));
    t.occupy(0, 200, "da9");
    t.publish(0);
    assert_eq!(t.heap_bytes(), two, "slot 0 reused, nothing allocated");
    assert_eq!(t.consumer_raw(0), 200);
    assert_eq!(t.find_name("da9", false), Some(0));
    // Past the inline counters: one overflow block, once.
    let t = table(INLINE + 2);
    assert_eq!(
        t.heap_bytes(),
        PathTable::TABLE_BYTES + (INLINE + 2) * PathTable::SLOT_BYTES + PathTable::MORE_BYTES
    );
}

/// The memory bounds of issue 12, for the path table's share: a slot
/// (one cache line) plus a short name well within 256 bytes a path, the
/// overflow counters under 64 bytes a path they serve, and the table
/// small enough to leave the rest of a 1 KiB device to the softc.
#[test]
fn path_memory_stays_within_its_bounds() {
    let empty = PathTable::new().heap_bytes();
    assert!(empty <= 640, "table {empty} bytes");
    for n in [1, 2, 4, 8, INLINE, INLINE + 1, MAX_PATHS] {
        let per_path = (table(n).heap_bytes() - empty) / n;
        // The name's Arc<str>: two counts and the bytes ("da31").
        let name = 2 * core::mem::size_of::<usize>() + 4;
        assert!(per_path + name <= 256, "{n} paths: {per_path} bytes a path");
    }
    assert!(core::mem::size_of::<PathTable>() <= 8);
}

/// The race of two faults under one bio's scan, run step by step:
/// (1) the bio takes B from a stale hint while B is FAIL, and gives it
/// up; (2) a fault of A restores B, then fails A; (3) the bio's scan reads
/// A, bad; (4) a fault of B restores A, then fails B; (5) the scan reads
/// B, bad. No moment had no good path, so the bio must not fail: it gets
/// A, in either choice.
#[test]
fn a_scan_racing_two_faults_still_finds_the_good_path() {
    for balanced in [false, true] {
        let t = StdArc::new(table(2));
        let (a, b) = (0, 1);
        // (1) B failed; the hints (the active path, the good mask) still
        // show it good.
        t.slot(b).expect("slot B").set(st::FAIL);
        if balanced {
            // Lane 0's cursor at B: equal paths, B's turn.
            t.inner.lanes[0].cursor.store(b as u32, Ordering::Relaxed);
        } else {
            t.prefer(b);
        }
        let steps = StdArc::new(AtomicU32::new(0));
        let hook = {
            let (t, steps) = (StdArc::clone(&t), StdArc::clone(&steps));
            move |i: usize| match (steps.load(Ordering::SeqCst), i) {
                (0, 0) => {
                    // (2), before the scan reads A.
                    let f = t.fault(a, st::FAIL);
                    assert_eq!(f.restored, [b], "B restored before A fails");
                    steps.store(1, Ordering::SeqCst);
                }
                (1, 1) => {
                    // (4), after the scan read A and before it reads B.
                    let f = t.fault(b, st::FAIL);
                    assert_eq!(f.restored, [a], "A restored before B fails");
                    steps.store(2, Ordering::SeqCst);
                }
                _ => {}
            }
        };
        let got = with_scan_hook(hook, || t.acquire(balanced, 0, no_drain));
        assert_eq!(
            steps.load(Ordering::SeqCst),
            2,
            "both faults ran in the scan"
        );
        assert!(t.is_good(a) && t.has(b, st::FAIL), "A is the good path");
        let got = got.unwrap_or_else(|| panic!("balanced {balanced}: no path, A is good"));
        assert_eq!(
            (got.slot, got.consumer),
            (a, 100 + a),
            "balanced {balanced}"
        );
        assert_eq!((t.inflight(a), t.inflight(b)), (1, 0));
        assert!(!t.put_on(a, got.lane));
    }
}

/// A good mask that keeps showing a path gone bad (its bit not cleared
/// yet) while no path is good costs retries, a bounded number: the bio
/// then fails, having left no count behind.
#[test]
fn a_stale_mask_with_no_good_path_does_not_spin() {
    for balanced in [false, true] {
        let t = table(1);
        t.slot(0).expect("slot 0").set(st::FAIL);
        assert_ne!(t.good_mask(), 0);
        let scans = StdArc::new(AtomicU32::new(0));
        let counter = StdArc::clone(&scans);
        let hook = move |i: usize| {
            if i == 0 {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        };
        let got = with_scan_hook(hook, || t.acquire(balanced, 0, no_drain));
        assert_eq!(got, None, "balanced {balanced}");
        // The first try goes by the hint, every retry scans the states.
        assert_eq!(scans.load(Ordering::SeqCst), MAX_PATHS as u32 - 1);
        assert_eq!(t.inflight(0), 0);
    }
}
