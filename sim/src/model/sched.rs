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
//!
//! Both scale with the number of paths: the deterministic scheduler keeps
//! an index of the queues that have work (a step costs the ready queues,
//! not all of them), and in threaded mode the disk queues (one per path)
//! share a bounded pool of OS threads ([`DISK_POOL_THREADS`]), each queue
//! still running one task at a time, in order.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
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
pub const STEP_NS: u64 = 1_000;

/// Deterministic mode: which queues have work, so that a step looks at
/// those and not at every queue.
#[derive(Default)]
struct DetIndex {
    /// Queues whose fifo is not empty.
    fifo: BTreeSet<usize>,
    /// Every timed task: (due, queue index, its sequence number there).
    timed: BTreeSet<(u64, usize, u64)>,
}

/// OS threads serving the disk queues in threaded mode (the paths'
/// completion threads): bounded whatever the number of paths.
/// `SIM_DISK_THREADS` overrides it.
pub const DISK_POOL_THREADS: usize = 4;

/// Threaded mode: the disk queues' shared threads.
#[derive(Default)]
struct PoolState {
    /// Queues to run, each once (it is in `scheduled` meanwhile).
    ready: VecDeque<usize>,
    /// Queued or running: a queue runs on one thread at a time.
    scheduled: BTreeSet<usize>,
    /// (due, queue) of timed work on queues not scheduled.
    timers: BTreeSet<(u64, usize)>,
    stop: bool,
}

#[derive(Default)]
struct Pool {
    st: Mutex<PoolState>,
    cv: Condvar,
}

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
    /// Deterministic mode: the queues with work.
    index: Mutex<DetIndex>,
    /// Threaded mode: the disk queues' threads (started with the first).
    pool: Arc<Pool>,
    pool_started: AtomicBool,
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
            index: Mutex::new(DetIndex::default()),
            pool: Arc::new(Pool::default()),
            pool_started: AtomicBool::new(false),
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
        if self.mode == Mode::Threaded && ctx == Ctx::Disk {
            self.start_pool();
        } else if self.mode == Mode::Threaded {
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

    /// Starts the disk queues' threads once (threaded mode). A thread that
    /// cannot be started is reported; with none, disk I/O never completes
    /// and the run ends with that report and a deadlock, not an abort.
    fn start_pool(self: &Arc<Self>) {
        if self.pool_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let n = std::env::var("SIM_DISK_THREADS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(DISK_POOL_THREADS);
        for i in 0..n {
            let me = self.clone();
            let h = std::thread::Builder::new()
                .name(format!("sim-disk{i}"))
                .spawn(move || me.pool_thread());
            match h {
                Ok(h) => lock(&self.threads).push(h),
                Err(e) => lock(&self.panics).push(format!(
                    "cannot start disk completion thread {i} of {n}: {e} (OS thread limit?)"
                )),
            }
        }
    }

    /// Makes pool queue `idx` run (or wait for its next due time).
    fn pool_kick(&self, idx: usize, due: Option<u64>) {
        let mut ps = lock(&self.pool.st);
        if ps.scheduled.contains(&idx) {
            return;
        }
        match due {
            Some(d) if d > self.now() => {
                ps.timers.insert((d, idx));
            }
            _ => {
                ps.scheduled.insert(idx);
                ps.ready.push_back(idx);
            }
        }
        drop(ps);
        self.pool.cv.notify_one();
    }

    /// One of the disk queues' threads: runs ready queues a few tasks at a
    /// time, each queue on one thread at a time.
    fn pool_thread(&self) {
        let mut ps = lock(&self.pool.st);
        loop {
            let now = self.now();
            while let Some(&(due, idx)) = ps.timers.first() {
                if due > now {
                    break;
                }
                ps.timers.pop_first();
                if ps.scheduled.insert(idx) {
                    ps.ready.push_back(idx);
                }
            }
            if let Some(idx) = ps.ready.pop_front() {
                drop(ps);
                let q = lock(&self.queues).get(idx).cloned();
                if let Some(q) = &q {
                    for _ in 0..32 {
                        match self.pop_due(q) {
                            Some(t) => self.run_task(q, t),
                            None => break,
                        }
                    }
                }
                ps = lock(&self.pool.st);
                ps.scheduled.remove(&idx);
                if let Some(q) = q {
                    // Checked with the pool locked: a post after this
                    // finds the queue unscheduled and schedules it.
                    let st = lock(&q.st);
                    let next = if !st.fifo.is_empty() {
                        Some(0)
                    } else {
                        st.timed.first_key_value().map(|(k, _)| k.0)
                    };
                    drop(st);
                    match next {
                        Some(d) if d > self.now() => {
                            ps.timers.insert((d, idx));
                        }
                        Some(_) => {
                            ps.scheduled.insert(idx);
                            ps.ready.push_back(idx);
                        }
                        None => {}
                    }
                }
                continue;
            }
            if ps.stop {
                return;
            }
            ps = match ps.timers.first() {
                Some(&(due, _)) => {
                    let wait_ns = due.saturating_sub(self.now()).max(1);
                    wait_timeout(&self.pool.cv, ps, Duration::from_nanos(wait_ns))
                }
                None => wait(&self.pool.cv, ps),
            };
        }
    }

    /// The next task of `q` that may run now: fifo first, then the
    /// earliest due completion.
    fn pop_due(&self, q: &Queue) -> Option<Task> {
        let mut st = lock(&q.st);
        if let Some(t) = st.fifo.pop_front() {
            return Some(t);
        }
        let (&key, _) = st.timed.first_key_value()?;
        if key.0 <= self.now() {
            return st.timed.remove(&key);
        }
        None
    }

    fn is_pooled(&self, q: &Queue) -> bool {
        self.mode == Mode::Threaded && q.ctx == Ctx::Disk
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
        self.posted(q, None);
    }

    /// Queues `t` at the head of `q` (the orphan doorstep goes first).
    pub fn post_front(&self, q: &Queue, t: Task) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        lock(&q.st).fifo.push_front(t);
        self.posted(q, None);
    }

    /// Queues `t` to run on `q` once sim time reaches `due`.
    pub fn post_at(&self, q: &Queue, due: u64, t: Task) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        let mut st = lock(&q.st);
        st.seq += 1;
        let seq = st.seq;
        st.timed.insert((due, seq), t);
        drop(st);
        self.posted(q, Some((due, seq)));
    }

    /// Wakes whatever runs `q`: its thread, the pool, or the index of the
    /// deterministic scheduler. `timed`: (due, seq) of a timed task.
    fn posted(&self, q: &Queue, timed: Option<(u64, u64)>) {
        match self.mode {
            Mode::Deterministic => {
                let mut ix = lock(&self.index);
                match timed {
                    Some((due, seq)) => ix.timed.insert((due, q.idx, seq)),
                    None => ix.fifo.insert(q.idx),
                };
            }
            Mode::Threaded if self.is_pooled(q) => self.pool_kick(q.idx, timed.map(|t| t.0)),
            Mode::Threaded => q.cv.notify_one(),
        }
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
        let pollers: Vec<Arc<Poller>> = lock(&self.pollers).clone();
        let free: Vec<usize> = lock(&self.free_pollers).clone();
        loop {
            let (busy, clock) = {
                let d = lock(&self.det);
                (d.busy.clone(), d.clock)
            };
            let topo = self.topo_held.load(Ordering::Acquire);
            // The queues with work, in index order: those with a fifo task
            // or a completion due by now. Then the pollers with work.
            let ready = {
                let ix = lock(&self.index);
                let mut ready: Vec<usize> = ix.fifo.iter().copied().collect();
                for &(due, idx, _) in &ix.timed {
                    if due > clock {
                        break;
                    }
                    ready.push(idx);
                }
                ready.sort_unstable();
                ready.dedup();
                ready
            };
            let mut cands: Vec<(usize, Option<Arc<Queue>>)> = Vec::new();
            {
                let qs = lock(&self.queues);
                for idx in ready {
                    let Some(q) = qs.get(idx) else { continue };
                    if busy.contains(&q.tid) || (q.takes_topology && topo) {
                        continue;
                    }
                    cands.push((idx, Some(q.clone())));
                }
            }
            let nq = lock(&self.queues).len();
            for (i, p) in pollers.iter().enumerate() {
                let topo_ok = !topo || free.contains(&p.key);
                if !busy.contains(&p.tid) && topo_ok && (p.has_work)() {
                    cands.push((nq + i, None));
                }
            }
            if cands.is_empty() {
                // Only timed work (or work of busy queues) is left: jump
                // to the next completion a non-busy queue can take.
                let due = {
                    let ix = lock(&self.index);
                    let qs = lock(&self.queues);
                    ix.timed
                        .iter()
                        .find(|&&(due, idx, _)| {
                            due > clock
                                && qs.get(idx).is_some_and(|q| {
                                    !(busy.contains(&q.tid) || (q.takes_topology && topo))
                                })
                        })
                        .map(|&(due, _, _)| due)
                };
                match due {
                    Some(due) => {
                        lock(&self.det).clock = due;
                        continue;
                    }
                    _ => return Step::Idle,
                }
            }
            let (pick, tid) = {
                let mut d = lock(&self.det);
                let pick = cands[d.rng.below(cands.len() as u64) as usize].0;
                d.clock += STEP_NS;
                d.steps += 1;
                d.trace = mix(d.trace, pick as u64);
                let tid = match cands.iter().find(|c| c.0 == pick) {
                    Some((_, Some(q))) => q.tid,
                    _ => pollers[pick - nq].tid,
                };
                d.busy.push(tid);
                (pick, tid)
            };
            if pick < nq {
                let q = cands.iter().find(|c| c.0 == pick).and_then(|c| c.1.clone());
                if let Some(q) = q {
                    if let Some(t) = self.det_pop(&q, clock) {
                        self.run_task(&q, t);
                    }
                }
            } else {
                let p = &pollers[pick - nq];
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

    /// Deterministic mode: takes the task of `q` a step runs (its fifo's
    /// head, else a seeded pick among the completions due by `clock`) and
    /// keeps the index in step.
    fn det_pop(&self, q: &Queue, clock: u64) -> Option<Task> {
        let mut st = lock(&q.st);
        if let Some(t) = st.fifo.pop_front() {
            if st.fifo.is_empty() {
                lock(&self.index).fifo.remove(&q.idx);
            }
            return Some(t);
        }
        lock(&self.index).fifo.remove(&q.idx);
        let ready: Vec<(u64, u64)> = st.timed.range(..(clock + 1, 0)).map(|(k, _)| *k).collect();
        if ready.is_empty() {
            return None;
        }
        let k = {
            let mut d = lock(&self.det);
            let i = d.rng.below(ready.len() as u64) as usize;
            d.trace = mix(d.trace, i as u64);
            ready[i]
        };
        lock(&self.index).timed.remove(&(k.0, q.idx, k.1));
        st.timed.remove(&k)
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
        {
            let mut ix = lock(&self.index);
            ix.fifo.clear();
            ix.timed.clear();
        }
        {
            let mut ps = lock(&self.pool.st);
            ps.stop = true;
            ps.ready.clear();
            ps.timers.clear();
        }
        self.pool.cv.notify_all();
        let threads: Vec<JoinHandle<()>> = lock(&self.threads).drain(..).collect();
        let me = std::thread::current().id();
        for h in threads {
            if h.thread().id() != me {
                let _ = h.join();
            }
        }
    }
}
