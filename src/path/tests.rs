//! The path table's protocol, checked on its own: claim and release,
//! teardown claimed exactly once, faults that never leave `start` without
//! a path, and the same under threads racing as far as a host shows it.

use super::*;
use std::sync::atomic::AtomicBool;
use std::thread;

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
fn empty_table_refuses_io() {
    let t = PathTable::new();
    assert_eq!(t.acquire(false, no_drain), None);
    assert_eq!(t.acquire(true, no_drain), None);
    assert_eq!(t.active(), None);
    assert_eq!((t.attached(), t.ndisks(), t.good_count()), (0, 0, 0));
    assert!(t.all_free());
}

#[test]
fn new_path_is_invisible_until_published() {
    let t = PathTable::new();
    t.occupy(0, 7, "da0");
    assert!(t.has(0, st::NEW) && !t.is_good(0));
    assert_eq!(t.acquire(false, no_drain), None);
    assert_eq!(t.acquire(true, no_drain), None);
    assert!(t.publish(0), "the first path becomes active");
    assert_eq!(t.acquire(false, no_drain), Some((0, 7)));
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
    assert_eq!(t.acquire(false, no_drain), Some((0, 100)));
    assert_eq!(t.acquire(false, no_drain), Some((0, 100)));
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
    t.slots[0].set(st::LOST);
    assert_eq!(t.slots[0].try_get(), Err(true));
    assert_eq!(t.inflight(0), 0);
    assert_eq!(t.slots[0].try_get(), Err(false));
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
    assert_eq!(t.acquire(false, no_drain), None);
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
        let (slot, _) = t.acquire(true, no_drain).expect("a path");
        seen.push(slot);
        assert!(!t.put(slot));
    }
    assert_eq!(seen, [0, 1, 0, 1]);
    // A busy path is passed over.
    let (busy, _) = t.acquire(true, no_drain).expect("a path");
    let (other, _) = t.acquire(true, no_drain).expect("a path");
    assert_ne!(busy, other);
    assert_eq!(t.acquire(false, no_drain).map(|(s, _)| s), Some(0));
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
            for _ in 0..3 {
                s.spawn(|| {
                    for _ in 0..500 {
                        let was_lost = lost.load(Ordering::SeqCst);
                        let got = t.acquire(round % 2 == 0, |slot| {
                            assert_eq!(slot, 0);
                            claims.fetch_add(1, Ordering::SeqCst);
                        });
                        let (slot, _) = got.expect("path 1 stays good");
                        assert!(!(was_lost && slot == 0), "took a path already lost");
                        if t.put(slot) {
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
/// (Not shown here, as it is not so: a fault that takes the last good path
/// restores the others first, but a bio's scan of the table is not one
/// snapshot, so a bio racing two faults in a row could still find none.)
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
                    match t.acquire(balanced, no_drain) {
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
