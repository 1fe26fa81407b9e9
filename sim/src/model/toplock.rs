//! The topology lock (`g_topology_lock`, an sx lock in the kernel).
//!
//! One lock for the whole mesh, with its owner recorded so that
//! `g_topology_assert()` can check the *caller* holds it. Taking it from
//! start or done, taking it twice, or unlocking it from a thread that does
//! not own it are violations. A refused `lock` is remembered per thread so
//! that the matching `unlock` does not pile a second report on the first.

use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::sched::{current, Mode};
use crate::sim::SimPlatform;
use crate::util::{lock, wait_timeout};
use crate::violation::rule;

thread_local! {
    static REFUSED: Cell<u32> = const { Cell::new(0) };
}

#[derive(Default)]
pub(crate) struct TopoLock {
    owner: Mutex<Option<u64>>,
    cv: Condvar,
}

impl SimPlatform {
    /// `g_topology_lock()`.
    pub fn g_topology_lock(&self) {
        let (tid, ctx) = current();
        if ctx.is_io() {
            self.violation(rule::TOPOLOGY, format!("g_topology_lock() from {ctx:?} context: start and done run where the topology lock may not be taken"));
            REFUSED.with(|r| r.set(r.get() + 1));
            return;
        }
        let tl = &self.sh.toplock;
        let mut g = lock(&tl.owner);
        if *g == Some(tid) {
            drop(g);
            self.violation(
                rule::TOPOLOGY,
                "g_topology_lock() while already holding it (the lock is not recursive)".into(),
            );
            REFUSED.with(|r| r.set(r.get() + 1));
            return;
        }
        let deadline = Instant::now() + self.sh.cfg.wait_timeout;
        while let Some(holder) = *g {
            if self.sh.sched.mode == Mode::Deterministic || Instant::now() > deadline {
                drop(g);
                self.violation(rule::DEADLOCK, format!("g_topology_lock(): held by simulated thread {holder:#x}, which cannot release it while {tid:#x} waits"));
                REFUSED.with(|r| r.set(r.get() + 1));
                return;
            }
            g = wait_timeout(&tl.cv, g, Duration::from_millis(50));
        }
        *g = Some(tid);
        self.sh.sched.topo_held.store(true, Ordering::Release);
    }

    /// `g_topology_unlock()`.
    pub fn g_topology_unlock(&self) {
        let (tid, _) = current();
        let tl = &self.sh.toplock;
        let mut g = lock(&tl.owner);
        if *g == Some(tid) {
            *g = None;
            self.sh.sched.topo_held.store(false, Ordering::Release);
            drop(g);
            // Only threaded mode has OS threads waiting (in deterministic
            // mode a notify is just a futex system call).
            if self.sh.sched.mode == Mode::Threaded {
                tl.cv.notify_one();
            }
            return;
        }
        drop(g);
        let refused = REFUSED.with(|r| {
            let n = r.get();
            if n > 0 {
                r.set(n - 1);
            }
            n > 0
        });
        if !refused {
            self.violation(
                rule::TOPOLOGY,
                "g_topology_unlock() by a thread that does not hold the topology lock".into(),
            );
        }
    }

    /// Whether the calling simulated thread holds the topology lock.
    pub fn topology_held(&self) -> bool {
        *lock(&self.sh.toplock.owner) == Some(current().0)
    }

    /// `g_topology_assert()`: records a violation naming `what` when the
    /// caller does not hold the lock. Returns whether it does.
    pub fn g_topology_assert(&self, what: &str) -> bool {
        if self.topology_held() {
            true
        } else {
            self.violation(
                rule::TOPOLOGY,
                format!("{what} without the topology lock held (g_topology_assert)"),
            );
            false
        }
    }

    /// Runs `f` with the topology lock held by the caller (user context).
    pub fn with_topology<R>(&self, f: impl FnOnce() -> R) -> R {
        self.g_topology_lock();
        let r = f();
        self.g_topology_unlock();
        r
    }
}
