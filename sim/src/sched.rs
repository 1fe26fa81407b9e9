//! The two schedulers behind one API.
//!
//! GEOM runs its work on a few kernel threads: `g_event` (events, under the
//! topology lock), `g_down` (start), `g_up` (done), plus driver completion
//! threads and class threads such as the multipath worker. The simulator
//! keeps that shape: each of these is a [`Queue`] of tasks.
//!
//! - **Threaded**: every queue has its own OS thread, so real races happen.
//! - **Deterministic**: one OS thread; a seeded RNG picks which runnable
//!   queue steps next (a disk queue also picks which ready completion, which
//!   is how latency reorders I/O), time is a virtual clock, and the same seed
//!   replays the same run. A context that must wait (a synchronous read from
//!   the event thread, a `WaitQueue::sleep`) runs the *other* queues nested
//!   until its condition holds; queues already on the stack are busy.

use std::cell::Cell;
use std::collections::{BTreeMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::util::{lock, mix, wait, wait_timeout, Rng};

/// Which scheduler runs the simulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Real threads: event, down, up, one per disk path, one per worker.
    Threaded,
    /// One OS thread, seeded choice of the next step, virtual time.
    Deterministic,
}

/// What kind of GEOM thread the current code runs on. The rules depend on
/// it: start and done may not sleep or take the topology lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ctx {
    /// A user process (a test, the scenario runner, gctl callers).
    User,
    /// `g_event`: events, taste, orphan, ctlreq (topology lock held).
    Event,
    /// `g_down`: a class's start method.
    Start,
    /// `g_up`: a bio's done method.
    Done,
    /// A disk's completion ("interrupt") thread.
    Disk,
    /// A class thread (the multipath worker).
    Worker,
}

impl Ctx {
    /// Start and done run where sleeping is forbidden.
    pub fn is_io(self) -> bool {
        matches!(self, Ctx::Start | Ctx::Done | Ctx::Disk)
    }
}

thread_local! {
    /// The simulated thread the current code runs as: (thread id, context).
    static CURRENT: Cell<(u64, Ctx)> = const { Cell::new((0, Ctx::User)) };
}

/// User threads get ids from here; queue threads use ids above 2^40.
static NEXT_USER_TID: AtomicU64 = AtomicU64::new(1);

pub(crate) const TID_EVENT: u64 = 1 << 40;
pub(crate) const TID_DOWN: u64 = (1 << 40) + 1;
pub(crate) const TID_UP: u64 = (1 << 40) + 2;
pub(crate) const TID_DISK_BASE: u64 = 1 << 41;
pub(crate) const TID_WORKER_BASE: u64 = 1 << 42;

/// The current simulated thread id and context.
pub(crate) fn current() -> (u64, Ctx) {
    CURRENT.with(|c| {
        let (tid, ctx) = c.get();
        if tid != 0 {
            return (tid, ctx);
        }
        let tid = NEXT_USER_TID.fetch_add(1, Ordering::Relaxed);
        c.set((tid, Ctx::User));
        (tid, Ctx::User)
    })
}

/// Restores the previous simulated thread on drop.
pub(crate) struct CtxGuard((u64, Ctx));

impl Drop for CtxGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

/// Runs the following code as simulated thread `tid` in context `ctx`.
pub(crate) fn enter(tid: u64, ctx: Ctx) -> CtxGuard {
    let prev = current();
    CURRENT.with(|c| c.set((tid, ctx)));
    CtxGuard(prev)
}

pub(crate) type Task = Box<dyn FnOnce() + Send>;

struct QState {
    fifo: VecDeque<Task>,
    /// Completions with a due time (ns of sim time), for disk queues.
    timed: BTreeMap<(u64, u64), Task>,
    seq: u64,
    stop: bool,
}

/// One simulated kernel thread's run queue.
pub(crate) struct Queue {
    pub idx: usize,
    pub name: String,
    pub tid: u64,
    pub ctx: Ctx,
    /// Tasks on this queue take the topology lock (the event queue).
    pub takes_topology: bool,
    st: Mutex<QState>,
    cv: Condvar,
}

/// A class thread driven by polling in deterministic mode (the worker).
pub(crate) struct Poller {
    pub key: usize,
    pub tid: u64,
    pub has_work: Box<dyn Fn() -> bool + Send + Sync>,
    pub step: Box<dyn Fn() + Send + Sync>,
}

struct DetState {
    clock: u64,
    rng: Rng,
    /// Simulated threads currently on the (nested) stack: they cannot step.
    busy: Vec<u64>,
    trace: u64,
    steps: u64,
}

/// Virtual time a deterministic step costs: a microsecond.
const STEP_NS: u64 = 1_000;

pub(crate) struct Sched {
    pub mode: Mode,
    start: Instant,
    queues: Mutex<Vec<Arc<Queue>>>,
    pollers: Mutex<Vec<Arc<Poller>>>,
    /// Keys of pollers that may step while the topology lock is held (a
    /// loaded module's kprocs: their `has_work` checks the lock itself).
    free_pollers: Mutex<Vec<usize>>,
    /// Tasks posted and not finished yet (idle detection).
    pending: AtomicUsize,
    det: Mutex<DetState>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    workers: Mutex<BTreeMap<usize, JoinHandle<()>>>,
    /// Mirrors whether the topology lock is held: events and workers are
    /// not runnable meanwhile in deterministic mode.
    pub topo_held: AtomicBool,
    /// Panics caught on queue threads (threaded mode), reported as
    /// violations so that a panicking class does not just hang the sim.
    pub panics: Mutex<Vec<String>>,
    /// Deterministic step budget before a run is declared a livelock.
    pub max_steps: u64,
}

/// Whether a deterministic step ran something.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Ran,
    Idle,
}

impl Sched {
    pub fn new(mode: Mode, seed: u64) -> Arc<Sched> {
        Arc::new(Sched {
            mode,
            start: Instant::now(),
            queues: Mutex::new(Vec::new()),
            pollers: Mutex::new(Vec::new()),
            free_pollers: Mutex::new(Vec::new()),
            pending: AtomicUsize::new(0),
            det: Mutex::new(DetState {
                clock: 0,
                rng: Rng::new(seed ^ 0x5eed_5eed),
                busy: Vec::new(),
                trace: 0xcbf2_9ce4_8422_2325,
                steps: 0,
            }),
            threads: Mutex::new(Vec::new()),
            workers: Mutex::new(BTreeMap::new()),
            topo_held: AtomicBool::new(false),
            panics: Mutex::new(Vec::new()),
            max_steps: 200_000_000,
        })
    }

    /// Sim time in nanoseconds: wall time since start (threaded) or the
    /// virtual clock (deterministic).
    pub fn now(&self) -> u64 {
        match self.mode {
            Mode::Threaded => self.start.elapsed().as_nanos() as u64,
            Mode::Deterministic => lock(&self.det).clock,
        }
    }

    /// Creates a queue; in threaded mode also its thread.
    pub fn add_queue(
        self: &Arc<Self>,
        name: &str,
        tid: u64,
        ctx: Ctx,
        takes_topology: bool,
    ) -> Arc<Queue> {
        let mut qs = lock(&self.queues);
        let q = Arc::new(Queue {
            idx: qs.len(),
            name: name.to_string(),
            tid,
            ctx,
            takes_topology,
            st: Mutex::new(QState {
                fifo: VecDeque::new(),
                timed: BTreeMap::new(),
                seq: 0,
                stop: false,
            }),
            cv: Condvar::new(),
        });
        qs.push(q.clone());
        drop(qs);
        if self.mode == Mode::Threaded {
            let me = self.clone();
            let q2 = q.clone();
            let h = std::thread::Builder::new()
                .name(format!("sim-{name}"))
                .spawn(move || me.queue_thread(&q2));
            match h {
                Ok(h) => lock(&self.threads).push(h),
                Err(e) => lock(&self.panics).push(format!("cannot spawn thread {name}: {e}")),
            }
        }
        q
    }

    fn run_task(&self, q: &Queue, t: Task) {
        let _g = enter(q.tid, q.ctx);
        if self.mode == Mode::Threaded {
            if let Err(p) = catch_unwind(AssertUnwindSafe(t)) {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "non-string panic".into());
                lock(&self.panics).push(format!("panic on {}: {msg}", q.name));
            }
        } else {
            t();
        }
        self.pending.fetch_sub(1, Ordering::AcqRel);
    }

    fn queue_thread(&self, q: &Queue) {
        loop {
            let task = {
                let mut st = lock(&q.st);
                loop {
                    if let Some(t) = st.fifo.pop_front() {
                        break Some(t);
                    }
                    if let Some((&key, _)) = st.timed.first_key_value() {
                        let now = self.now();
                        if key.0 <= now {
                            break st.timed.remove(&key);
                        }
                        st = wait_timeout(&q.cv, st, Duration::from_nanos(key.0 - now));
                        continue;
                    }
                    if st.stop {
                        break None;
                    }
                    st = wait(&q.cv, st);
                }
            };
            match task {
                Some(t) => self.run_task(q, t),
                None => return,
            }
        }
    }

    /// Queues `t` at the tail of `q`.
    pub fn post(&self, q: &Queue, t: Task) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        lock(&q.st).fifo.push_back(t);
        q.cv.notify_one();
    }

    /// Queues `t` at the head of `q` (the orphan doorstep goes first).
    pub fn post_front(&self, q: &Queue, t: Task) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        lock(&q.st).fifo.push_front(t);
        q.cv.notify_one();
    }

    /// Queues `t` to run on `q` once sim time reaches `due`.
    pub fn post_at(&self, q: &Queue, due: u64, t: Task) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        let mut st = lock(&q.st);
        st.seq += 1;
        let seq = st.seq;
        st.timed.insert((due, seq), t);
        drop(st);
        q.cv.notify_one();
    }

    /// Registers a polled class thread (deterministic mode).
    pub fn add_poller(&self, p: Poller) {
        lock(&self.pollers).push(Arc::new(p));
    }

    /// Registers a polled thread that may also step while the topology
    /// lock is held (its `has_work` decides that itself).
    pub fn add_free_poller(&self, p: Poller) {
        lock(&self.free_pollers).push(p.key);
        self.add_poller(p);
    }

    /// Unregisters a polled class thread.
    pub fn remove_poller(&self, key: usize) {
        lock(&self.pollers).retain(|p| p.key != key);
        lock(&self.free_pollers).retain(|k| *k != key);
    }

    /// Starts a class thread (threaded mode).
    pub fn spawn_worker(
        &self,
        key: usize,
        name: &str,
        tid: u64,
        f: Box<dyn FnOnce() + Send>,
    ) -> Result<(), String> {
        let h = std::thread::Builder::new()
            .name(format!("sim-{name}"))
            .spawn(move || {
                let _g = enter(tid, Ctx::Worker);
                f()
            })
            .map_err(|e| e.to_string())?;
        lock(&self.workers).insert(key, h);
        Ok(())
    }

    /// Waits for a class thread started with [`Sched::spawn_worker`].
    pub fn join_worker(&self, key: usize) -> bool {
        let h = lock(&self.workers).remove(&key);
        match h {
            Some(h) => h.join().is_ok(),
            None => false,
        }
    }

    /// Whether any polled class thread has work.
    fn pollers_busy(&self) -> bool {
        let ps: Vec<Arc<Poller>> = lock(&self.pollers).clone();
        ps.iter().any(|p| (p.has_work)())
    }

    /// Tasks posted and not finished.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// Nothing queued, running or waiting in a worker.
    pub fn is_idle(&self) -> bool {
        self.pending() == 0 && !self.pollers_busy()
    }

    /// One deterministic step: picks a runnable queue (or worker) with the
    /// seeded RNG and runs one of its tasks. Advances the virtual clock to
    /// the next completion when only timed work remains.
    pub fn det_step(&self) -> Step {
        let queues: Vec<Arc<Queue>> = lock(&self.queues).clone();
        let pollers: Vec<Arc<Poller>> = lock(&self.pollers).clone();
        let free: Vec<usize> = lock(&self.free_pollers).clone();
        loop {
            let (busy, clock) = {
                let d = lock(&self.det);
                (d.busy.clone(), d.clock)
            };
            let topo = self.topo_held.load(Ordering::Acquire);
            // Candidates: (queue index or poller index + offset).
            let mut cands: Vec<usize> = Vec::new();
            let mut next_due: Option<u64> = None;
            for q in &queues {
                if busy.contains(&q.tid) || (q.takes_topology && topo) {
                    continue;
                }
                let st = lock(&q.st);
                let ready = !st.fifo.is_empty()
                    || st
                        .timed
                        .first_key_value()
                        .is_some_and(|(k, _)| k.0 <= clock);
                if ready {
                    cands.push(q.idx);
                } else if let Some((k, _)) = st.timed.first_key_value() {
                    next_due = Some(next_due.map_or(k.0, |d: u64| d.min(k.0)));
                }
            }
            for (i, p) in pollers.iter().enumerate() {
                let topo_ok = !topo || free.contains(&p.key);
                if !busy.contains(&p.tid) && topo_ok && (p.has_work)() {
                    cands.push(queues.len() + i);
                }
            }
            if cands.is_empty() {
                match next_due {
                    Some(due) => {
                        lock(&self.det).clock = due.max(clock);
                        continue;
                    }
                    None => return Step::Idle,
                }
            }
            let (pick, tid) = {
                let mut d = lock(&self.det);
                let pick = cands[d.rng.below(cands.len() as u64) as usize];
                d.clock += STEP_NS;
                d.steps += 1;
                d.trace = mix(d.trace, pick as u64);
                let tid = if pick < queues.len() {
                    queues[pick].tid
                } else {
                    pollers[pick - queues.len()].tid
                };
                d.busy.push(tid);
                (pick, tid)
            };
            if pick < queues.len() {
                let q = &queues[pick];
                let task = {
                    let mut st = lock(&q.st);
                    if let Some(t) = st.fifo.pop_front() {
                        Some(t)
                    } else {
                        let ready: Vec<(u64, u64)> =
                            st.timed.range(..(clock + 1, 0)).map(|(k, _)| *k).collect();
                        let k = if ready.is_empty() {
                            None
                        } else {
                            let mut d = lock(&self.det);
                            let i = d.rng.below(ready.len() as u64) as usize;
                            d.trace = mix(d.trace, i as u64);
                            Some(ready[i])
                        };
                        k.and_then(|k| st.timed.remove(&k))
                    }
                };
                if let Some(t) = task {
                    self.run_task(q, t);
                }
            } else {
                let p = &pollers[pick - queues.len()];
                let _g = enter(p.tid, Ctx::Worker);
                (p.step)();
            }
            let mut d = lock(&self.det);
            if let Some(pos) = d.busy.iter().rposition(|&t| t == tid) {
                d.busy.remove(pos);
            }
            return Step::Ran;
        }
    }

    /// Deterministic mode: steps other queues until `pred` holds. The
    /// current simulated thread is marked busy so it is not re-entered.
    /// Returns false when nothing can run any more (a deadlock) or the
    /// step budget is spent (a livelock).
    pub fn det_block_until(&self, pred: &mut dyn FnMut() -> bool) -> bool {
        let (tid, _) = current();
        let nested = {
            let mut d = lock(&self.det);
            let nested = !d.busy.contains(&tid);
            if nested {
                d.busy.push(tid);
            }
            nested
        };
        let ok = loop {
            if pred() {
                break true;
            }
            if lock(&self.det).steps > self.max_steps {
                break false;
            }
            if self.det_step() == Step::Idle {
                break pred();
            }
        };
        if nested {
            let mut d = lock(&self.det);
            if let Some(pos) = d.busy.iter().rposition(|&t| t == tid) {
                d.busy.remove(pos);
            }
        }
        ok
    }

    /// Waits until nothing is queued or running. Deterministic: runs the
    /// scheduler. Threaded: polls until idle or `timeout`.
    pub fn run_until_idle(&self, timeout: Duration) -> bool {
        match self.mode {
            Mode::Deterministic => self.det_block_until(&mut || false) || self.is_idle(),
            Mode::Threaded => {
                let deadline = Instant::now() + timeout;
                let mut quiet = 0;
                loop {
                    if self.is_idle() {
                        quiet += 1;
                        // Idle twice in a row: a task between the checks
                        // would have bumped `pending`.
                        if quiet >= 2 {
                            return true;
                        }
                    } else {
                        quiet = 0;
                    }
                    if Instant::now() > deadline {
                        return false;
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
    }

    /// Mixes a value into the deterministic trace hash.
    pub fn trace(&self, v: u64) {
        if self.mode == Mode::Deterministic {
            let mut d = lock(&self.det);
            d.trace = mix(d.trace, v);
        }
    }

    pub fn trace_hash(&self) -> u64 {
        lock(&self.det).trace
    }

    pub fn steps(&self) -> u64 {
        lock(&self.det).steps
    }

    /// Stops and joins every queue thread; drops queued tasks.
    pub fn shutdown(&self) {
        let queues: Vec<Arc<Queue>> = lock(&self.queues).clone();
        for q in &queues {
            let mut st = lock(&q.st);
            st.stop = true;
            let dropped = st.fifo.len() + st.timed.len();
            st.fifo.clear();
            st.timed.clear();
            drop(st);
            self.pending.fetch_sub(dropped, Ordering::AcqRel);
            q.cv.notify_all();
        }
        let threads: Vec<JoinHandle<()>> = lock(&self.threads).drain(..).collect();
        let me = std::thread::current().id();
        for h in threads {
            if h.thread().id() != me {
                let _ = h.join();
            }
        }
    }
}
