//! `mtx(9)` for module mutexes and WITNESS-like checks over every lock the
//! module takes (its mutexes and the topology sx): lock order reversals,
//! duplicate acquires, recursion, unlocking a lock not held, destroying a
//! lock another thread holds, sleeping with a mutex held.
//!
//! Locks are owned by *simulated* threads (`sched::current`), so the checks
//! mean the same in deterministic mode (one OS thread, many GEOM threads)
//! and in threaded mode.

use std::collections::{HashMap, HashSet};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::sched::{current, Ctx, Mode};
use crate::util::{lock, wait_timeout};

/// The lock name the topology sx has in FreeBSD (`g_init`).
pub const TOPOLOGY_NAME: &str = "GEOM topology";

#[derive(Clone, Debug)]
struct Held {
    addr: usize,
    name: String,
    sleepable: bool,
}

#[derive(Debug)]
struct KMtx {
    name: String,
    dupok: bool,
    owner: Option<u64>,
}

#[derive(Default)]
struct Inner {
    mtx: HashMap<usize, KMtx>,
    held: HashMap<u64, Vec<Held>>,
    /// Lock classes (names) seen acquired in this order: (first, second).
    order: HashSet<(String, String)>,
    reported: HashSet<(String, String)>,
    /// Lock calls refused (reported) per thread, so the matching unlock
    /// is not reported a second time.
    refused: HashMap<u64, u32>,
}

/// The lock registry of one emulated kernel.
#[derive(Default)]
pub struct LockState {
    inner: Mutex<Inner>,
    cv: Condvar,
}

/// What a lock operation found wrong: (rule, message).
pub type Finding = (&'static str, String);

/// How to wait for a contested mutex.
pub struct WaitPolicy {
    pub mode: Mode,
    pub timeout: Duration,
}

impl LockState {
    /// `_mtx_init`.
    pub fn init(&self, addr: usize, name: String, dupok: bool) -> Option<Finding> {
        let mut g = lock(&self.inner);
        let old = g.mtx.insert(
            addr,
            KMtx {
                name: name.clone(),
                dupok,
                owner: None,
            },
        );
        old.map(|_| {
            (
                crate::violation::rule::WITNESS,
                format!("mtx_init: lock \"{name}\" {addr:#x} already initialized"),
            )
        })
    }

    /// `_mtx_destroy`. A mutex held by the caller may be destroyed (it is
    /// released); one held by another thread may not.
    pub fn destroy(&self, addr: usize) -> Option<Finding> {
        let (tid, _) = current();
        let mut g = lock(&self.inner);
        let Some(m) = g.mtx.remove(&addr) else {
            return Some(witness(format!(
                "mtx_destroy of {addr:#x}, which is not an initialized mutex"
            )));
        };
        match m.owner {
            Some(o) if o == tid => {
                drop_held(&mut g, tid, addr);
                None
            }
            Some(o) => {
                drop_held(&mut g, o, addr);
                Some(witness(format!(
                    "mtx_destroy of \"{}\" held by simulated thread {o:#x}",
                    m.name
                )))
            }
            None => None,
        }
    }

    /// `__mtx_lock_flags`. Returns the findings; the lock is taken unless
    /// the call had to be refused (recursion, deadlock). `topo_held`: the
    /// caller holds the topology lock (maybe taken by the simulator for
    /// it, as around taste), which counts for the lock order.
    pub fn lock_mtx(&self, addr: usize, wp: &WaitPolicy, topo_held: bool) -> Vec<Finding> {
        let (tid, _) = current();
        let mut out = Vec::new();
        let mut g = lock(&self.inner);
        if let std::collections::hash_map::Entry::Vacant(e) = g.mtx.entry(addr) {
            out.push(witness(format!(
                "mtx_lock of {addr:#x}, which is not an initialized mutex"
            )));
            e.insert(KMtx {
                name: format!("mtx@{addr:#x}"),
                dupok: false,
                owner: None,
            });
        }
        let (name, dupok, owner) = match g.mtx.get(&addr) {
            Some(m) => (m.name.clone(), m.dupok, m.owner),
            None => return out,
        };
        if owner == Some(tid) {
            *g.refused.entry(tid).or_default() += 1;
            out.push(witness(format!(
                "mtx_lock of non-recursive mutex \"{name}\" already held by this thread"
            )));
            return out;
        }
        out.extend(check_order(&mut g, tid, &name, dupok, false, topo_held));
        let deadline = Instant::now() + wp.timeout;
        while let Some(holder) = g.mtx.get(&addr).and_then(|m| m.owner) {
            if wp.mode == Mode::Deterministic || Instant::now() > deadline {
                *g.refused.entry(tid).or_default() += 1;
                out.push((crate::violation::rule::DEADLOCK, format!("mtx_lock of \"{name}\": held by simulated thread {holder:#x}, which cannot release it")));
                return out;
            }
            g = wait_timeout(&self.cv, g, Duration::from_millis(20));
        }
        if let Some(m) = g.mtx.get_mut(&addr) {
            m.owner = Some(tid);
        }
        g.held.entry(tid).or_default().push(Held {
            addr,
            name,
            sleepable: false,
        });
        out
    }

    /// `__mtx_unlock_flags`.
    pub fn unlock_mtx(&self, addr: usize) -> Option<Finding> {
        let (tid, _) = current();
        let mut g = lock(&self.inner);
        let (name, owner) = match g.mtx.get(&addr) {
            Some(m) => (m.name.clone(), m.owner),
            None => (format!("mtx@{addr:#x}"), None),
        };
        if owner == Some(tid) {
            if let Some(m) = g.mtx.get_mut(&addr) {
                m.owner = None;
            }
            drop_held(&mut g, tid, addr);
            drop(g);
            self.cv.notify_all();
            return None;
        }
        if let Some(n) = g.refused.get_mut(&tid).filter(|n| **n > 0) {
            *n -= 1;
            return None;
        }
        Some(witness(format!(
            "mtx_unlock of \"{name}\", which this thread does not hold (owner {owner:?})"
        )))
    }

    /// Whether the mutex at `addr` is free (a sleeper may retake it).
    pub fn is_free(&self, addr: usize) -> bool {
        lock(&self.inner)
            .mtx
            .get(&addr)
            .is_none_or(|m| m.owner.is_none())
    }

    /// Whether the calling thread holds the mutex at `addr`.
    pub fn held_by_me(&self, addr: usize) -> bool {
        let (tid, _) = current();
        lock(&self.inner)
            .mtx
            .get(&addr)
            .is_some_and(|m| m.owner == Some(tid))
    }

    /// The newest mutex (non-sleepable lock) the calling thread holds.
    pub fn held_mutex(&self) -> Option<String> {
        let (tid, _) = current();
        lock(&self.inner)
            .held
            .get(&tid)?
            .iter()
            .rev()
            .find(|h| !h.sleepable)
            .map(|h| h.name.clone())
    }

    /// Records the topology sx as taken by the caller (after the check).
    pub fn note_sx_locked(&self, addr: usize) {
        let (tid, _) = current();
        lock(&self.inner).held.entry(tid).or_default().push(Held {
            addr,
            name: TOPOLOGY_NAME.into(),
            sleepable: true,
        });
    }

    /// Records the topology sx as released by the caller.
    pub fn note_sx_unlocked(&self, addr: usize) {
        let (tid, _) = current();
        drop_held(&mut lock(&self.inner), tid, addr);
    }

    /// The order checks for taking the sleepable topology sx.
    pub fn check_sx_order(&self) -> Vec<Finding> {
        let (tid, _) = current();
        let mut g = lock(&self.inner);
        check_order(&mut g, tid, TOPOLOGY_NAME, false, true, false)
    }

    /// What is wrong with sleeping (`what`: msleep, malloc(M_WAITOK)...)
    /// here: start/done context, or a mutex held other than `interlock`.
    pub fn check_may_sleep(&self, what: &str, interlock: Option<usize>) -> Vec<Finding> {
        let (tid, ctx) = current();
        let mut out = Vec::new();
        if ctx.is_io() {
            out.push((
                crate::violation::rule::NOSLEEP,
                format!("{what} from {ctx:?} context, which must not sleep"),
            ));
        }
        let g = lock(&self.inner);
        for h in g.held.get(&tid).into_iter().flatten() {
            if !h.sleepable && Some(h.addr) != interlock {
                out.push(witness(format!(
                    "{what} with non-sleepable lock \"{}\" held",
                    h.name
                )));
            }
        }
        out
    }

    /// Forgets mutexes living in freed memory `[addr, addr+len)`;
    /// reports one still held.
    pub fn forget_range(&self, addr: usize, len: usize) -> Vec<Finding> {
        let mut g = lock(&self.inner);
        let dead: Vec<usize> = g
            .mtx
            .keys()
            .copied()
            .filter(|a| *a >= addr && *a < addr + len.max(1))
            .collect();
        let mut out = Vec::new();
        for a in dead {
            if let Some(m) = g.mtx.remove(&a) {
                if let Some(o) = m.owner {
                    drop_held(&mut g, o, a);
                    out.push(witness(format!(
                        "free(9) of memory holding mutex \"{}\", still held",
                        m.name
                    )));
                }
            }
        }
        out
    }

    /// Mutexes the calling thread holds, by name (kproc_exit checks).
    pub fn held_names(&self) -> Vec<String> {
        let (tid, _) = current();
        lock(&self.inner)
            .held
            .get(&tid)
            .map(|v| v.iter().map(|h| h.name.clone()).collect())
            .unwrap_or_default()
    }

    /// The thread's context, for callers that need it with the checks.
    pub fn ctx() -> Ctx {
        current().1
    }
}

fn witness(msg: String) -> Finding {
    (crate::violation::rule::WITNESS, msg)
}

fn drop_held(g: &mut Inner, tid: u64, addr: usize) {
    if let Some(v) = g.held.get_mut(&tid) {
        if let Some(i) = v.iter().rposition(|h| h.addr == addr) {
            v.remove(i);
        }
    }
}

/// WITNESS's order check for `tid` acquiring a lock of class `name`.
fn check_order(
    g: &mut Inner,
    tid: u64,
    name: &str,
    dupok: bool,
    sleepable: bool,
    topo_held: bool,
) -> Vec<Finding> {
    let mut held: Vec<Held> = g.held.get(&tid).cloned().unwrap_or_default();
    if topo_held && !held.iter().any(|h| h.name == TOPOLOGY_NAME) {
        held.insert(
            0,
            Held {
                addr: 0,
                name: TOPOLOGY_NAME.into(),
                sleepable: true,
            },
        );
    }
    let mut out = Vec::new();
    for h in &held {
        if sleepable && !h.sleepable {
            out.push(witness(format!(
                "acquiring sleepable lock \"{name}\" with non-sleepable lock \"{}\" held",
                h.name
            )));
        }
        if h.name == name {
            if !dupok {
                out.push(witness(format!(
                    "acquiring duplicate lock of same type: \"{name}\""
                )));
            }
            continue;
        }
        let fwd = (h.name.clone(), name.to_string());
        let rev = (name.to_string(), h.name.clone());
        if g.order.contains(&rev) && g.reported.insert(fwd.clone()) {
            out.push(witness(format!(
                "lock order reversal: 1st \"{}\" 2nd \"{name}\" (established order: \"{name}\" before \"{}\")",
                h.name, h.name
            )));
        }
        g.order.insert(fwd);
    }
    out
}
