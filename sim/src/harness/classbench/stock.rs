//! FreeBSD's design for the same job, modelled for comparison in
//! `mpsim bench-class`: one mutex per device, taken in start (to choose a
//! path and count the bio on it) and again in done (to uncount it and see
//! whether a lost path drained). Written from the documented behaviour of
//! `g_multipath_start`, `g_multipath_done` and `g_multipath_choose` (the
//! softc mutex around the choice and the per-consumer count; active/active
//! takes the good path with the fewest bios in flight, the one passed over
//! longest among equals), not from FreeBSD's code. Only the parts a bio
//! that succeeds goes through are here: nothing fails on this platform.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};

use geom_multipath_rs::io::{PHYSPATH_ATTR, PHYSPATH_SUFFIX};
use geom_multipath_rs::platform::{BioCmd, Platform, ENOMEM, ENXIO};

use super::{NullBio, NullPlat, CPU};

/// mtx(9) as amd64 takes and drops it: a compare-and-swap of the owner
/// word to lock, and (the unlock fast path) another to unlock. A
/// contended lock spins while the owner runs, as an adaptive mutex does,
/// the way `_mtx_lock_sleep` spins: reading the word (not writing it)
/// between tries, with exponential back-off (`lock_delay`).
struct Mtx(AtomicUsize);

/// Back-off bounds, in spin-loop hints.
const DELAY_MIN: u32 = 1;
const DELAY_MAX: u32 = 256;

impl Mtx {
    fn lock(&self, me: usize) {
        let mut delay = DELAY_MIN;
        while self
            .0
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            loop {
                for _ in 0..delay {
                    std::hint::spin_loop();
                }
                delay = (delay * 2).min(DELAY_MAX);
                if self.0.load(Ordering::Relaxed) == 0 {
                    break;
                }
            }
        }
    }
    fn unlock(&self, me: usize) {
        let _ = self
            .0
            .compare_exchange(me, 0, Ordering::Release, Ordering::Relaxed);
    }
}

/// One path as the stock class keeps it on its consumer.
#[derive(Clone, Copy, Default)]
struct Path {
    /// Bios in flight (`cp->private`).
    inflight: usize,
    /// Choices that passed this path over (`cp->index`'s idle count).
    idle: u32,
    /// FAIL, LOST or NEW.
    bad: bool,
}

/// What the mutex guards.
struct State {
    paths: [Path; 2],
    active: Option<usize>,
}

impl State {
    /// The path for a bio (A/R is not modelled: the variants are A/P and
    /// A/A, so the command does not matter).
    fn choose(&mut self, active_active: bool) -> Option<usize> {
        if !active_active {
            return self.active;
        }
        let mut best: Option<usize> = None;
        for i in 0..self.paths.len() {
            if self.paths[i].bad {
                continue;
            }
            self.paths[i].idle += 1;
            let better = best.is_none_or(|b| {
                let (p, q) = (&self.paths[i], &self.paths[b]);
                p.inflight < q.inflight || (p.inflight == q.inflight && p.idle > q.idle)
            });
            if better {
                best = Some(i);
            }
        }
        if let Some(b) = best {
            self.paths[b].idle = 0;
        }
        best
    }
}

/// A two-path device run the stock way.
pub struct StockDev {
    mtx: Mtx,
    state: UnsafeCell<State>,
    active_active: bool,
}

// SAFETY: `state` is only reached through `StockDev::locked`, with `mtx`
// held, so one thread at a time uses it.
unsafe impl Sync for StockDev {}

impl StockDev {
    pub fn new(active_active: bool) -> StockDev {
        StockDev {
            mtx: Mtx(AtomicUsize::new(0)),
            state: UnsafeCell::new(State {
                paths: [Path::default(); 2],
                active: Some(0),
            }),
            active_active,
        }
    }

    /// Runs `f` on the state with the device mutex held.
    fn locked<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        // The owner word: any non-zero value unique to the thread.
        let me = CPU.with(std::cell::Cell::get) + 1;
        self.mtx.lock(me);
        // SAFETY: the mutex is held, so this is the only reference to
        // the state until it is released below.
        let r = f(unsafe { &mut *self.state.get() });
        self.mtx.unlock(me);
        r
    }

    /// Start: clone, choose and count under the mutex, send.
    pub fn start(&self, plat: &NullPlat, bp: NullBio) {
        let mut child = match plat.clone_bio(bp) {
            Ok(c) => c,
            Err(parent) => return plat.io_deliver(parent, ENOMEM),
        };
        let aa = self.active_active;
        let path = self.locked(|s| {
            let p = s.choose(aa)?;
            s.paths[p].inflight += 1;
            Some(p)
        });
        match path {
            Some(p) => {
                plat.bio_set_cookie(&mut child, p);
                plat.io_request(child, p + 1);
            }
            None => {
                let parent = plat.retire_child(child);
                plat.io_deliver(parent, ENXIO);
            }
        }
    }

    /// Done: uncount under the mutex (a drained lost path would be torn
    /// down), the physical path suffix, fold into the parent.
    pub fn done(&self, plat: &NullPlat, mut child: NullBio) {
        let p = plat.bio_cookie(&child).min(1);
        let drained_lost = self.locked(|s| {
            let path = &mut s.paths[p];
            path.inflight -= 1;
            path.inflight == 0 && path.bad
        });
        debug_assert!(!drained_lost, "no path is lost in the bench");
        if plat.bio_error(&child) == 0
            && plat.bio_cmd(&child) == BioCmd::GetAttr
            && plat.bio_attribute_is(&child, PHYSPATH_ATTR)
        {
            let _ = plat.bio_append_attr_str(&mut child, PHYSPATH_SUFFIX);
        }
        plat.std_done(child);
    }

    /// Bios in flight on both paths (0 between runs).
    pub fn inflight(&self) -> usize {
        self.locked(|s| s.paths.iter().map(|p| p.inflight).sum())
    }
}
