//! The simulator object: shared state, the platform handle, events,
//! logging, violations, and the owner type tests hold.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use geom_multipath_rs::platform::Errno;

use crate::bio::BioTable;
use crate::disk::LunState;
use crate::ids::{ClassId, ProviderId};
use crate::sched::{current, Ctx, Mode, Queue, Sched, TID_DOWN, TID_EVENT, TID_UP};
use crate::toplock::TopoLock;
use crate::topology::Topology;
use crate::util::{lock, wait_timeout, Rng};
use crate::violation::{rule, Violation};

/// How to build a simulator.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub mode: Mode,
    /// Seeds the scheduler (deterministic mode), `Platform::random` and
    /// every fault's odds.
    pub seed: u64,
    /// Threaded mode: how long a synchronous wait may take before it is
    /// reported as a deadlock.
    pub wait_timeout: Duration,
    /// Echo console lines to stderr as they are logged.
    pub echo_log: bool,
    /// Honour the direct dispatch flags (`G_PF_DIRECT_*`, `G_CF_DIRECT_*`)
    /// as `geom_io.c` does; off, every bio goes through `g_down` and
    /// `g_up` whatever the flags (`SIM_DIRECT=0` in the environment).
    pub direct_dispatch: bool,
}

impl SimConfig {
    pub fn new(mode: Mode, seed: u64) -> SimConfig {
        SimConfig {
            mode,
            seed,
            wait_timeout: Duration::from_secs(30),
            echo_log: std::env::var_os("SIM_LOG").is_some(),
            direct_dispatch: std::env::var("SIM_DIRECT").map_or(true, |v| v != "0"),
        }
    }
}

/// Shared state behind every [`SimPlatform`] handle.
pub struct SimShared {
    pub(crate) cfg: SimConfig,
    pub(crate) sched: Arc<Sched>,
    pub(crate) q_event: Arc<Queue>,
    pub(crate) q_down: Arc<Queue>,
    pub(crate) q_up: Arc<Queue>,
    pub(crate) topo: Mutex<Topology>,
    pub(crate) toplock: TopoLock,
    pub(crate) bios: Mutex<BioTable>,
    violations: Mutex<Vec<Violation>>,
    pub(crate) rng: Mutex<Rng>,
    next_id: AtomicU64,
    log: Mutex<Vec<String>>,
    /// `g_doorstep`: orphaned providers waiting for the event thread.
    pub(crate) doorstep: Mutex<VecDeque<ProviderId>>,
    pub(crate) washer_pending: AtomicBool,
    /// `kern.geom.notaste`.
    pub(crate) notaste: AtomicBool,
    pub(crate) luns: Mutex<Vec<Arc<LunState>>>,
    /// The class mutexes (`Platform::Wq`) each simulated thread holds,
    /// by name, for the direct dispatch rule ([`crate::violation::rule::DIRECT`]).
    pub(crate) wq_held: Mutex<HashMap<u64, Vec<&'static str>>>,
    /// Paths of every LUN added: numbers each path's disk thread.
    pub(crate) disk_paths: AtomicU64,
    pub(crate) workers: Mutex<Vec<crate::platform::WorkerRef>>,
    pub(crate) disk_class: Mutex<Option<ClassId>>,
    pub(crate) dev_class: Mutex<Option<ClassId>>,
    /// Bios completed to users and sync waiters (for progress lines).
    pub(crate) user_completions: AtomicU64,
    /// Bios a class sent again after one of their clones failed on a path
    /// (counted in `g_io_request`, whatever the class: core or module).
    pub(crate) reissued: AtomicU64,
    /// `pace`: an ENOMEM was re-requested; direct dispatch waits until
    /// g_down has run once.
    pub(crate) pace: AtomicBool,
    /// Starts and dones GEOM called directly rather than from g_down/g_up.
    pub(crate) direct_starts: AtomicU64,
    pub(crate) direct_dones: AtomicU64,
    /// Bios a path failed: an injected fault (`fail_rate`, `fail_next`)
    /// or a dead path.
    pub(crate) path_errors: AtomicU64,
    /// Modules `load_multipath` loaded (`GMR_CLASS=ko`), and their class:
    /// unloaded by [`Sim::finish`] or on drop.
    pub(crate) ko: Mutex<Vec<(Arc<crate::ko::KoKernel>, ClassId)>>,
    /// Bios started at the geoms of a `GMR_CLASS=ko` module's class.
    pub(crate) ko_starts: AtomicU64,
    /// Whether `ko` ever held a module (spares g_down the lookup).
    pub(crate) ko_loaded: AtomicBool,
    /// How many of the core's next `M_NOWAIT` event posts fail with
    /// ENOMEM (`SimPlatform::fail_nowait_posts`).
    pub(crate) fail_nowait_posts: AtomicU64,
}

/// A cheap, cloneable handle onto the simulator: what classes receive and
/// what implements [`geom_multipath_rs::Platform`]. A handle may be *bound*
/// to a class: the class a geom created through it belongs to (in the
/// kernel a class's code knows its own `g_class`).
#[derive(Clone)]
pub struct SimPlatform {
    pub(crate) sh: Arc<SimShared>,
    pub(crate) class: Option<ClassId>,
}

impl fmt::Debug for SimPlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SimPlatform({:?}, {:?})", self.sh.cfg.mode, self.class)
    }
}

impl SimPlatform {
    pub(crate) fn from_shared(sh: Arc<SimShared>, class: Option<ClassId>) -> SimPlatform {
        SimPlatform { sh, class }
    }

    pub(crate) fn weak(&self) -> Weak<SimShared> {
        Arc::downgrade(&self.sh)
    }

    /// The same simulator, bound to class `class`.
    pub fn bound(&self, class: ClassId) -> SimPlatform {
        SimPlatform {
            sh: self.sh.clone(),
            class: Some(class),
        }
    }

    /// The class this handle is bound to.
    pub fn class_id(&self) -> Option<ClassId> {
        self.class
    }

    pub fn mode(&self) -> Mode {
        self.sh.cfg.mode
    }

    pub fn seed(&self) -> u64 {
        self.sh.cfg.seed
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.sh.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Records a broken rule (see [`crate::violation`]).
    pub fn violation(&self, rule: &'static str, message: String) {
        record_violation(&self.sh, rule, message);
    }

    /// Every violation recorded so far (threaded-mode panics included).
    pub fn violations(&self) -> Vec<Violation> {
        let mut v = lock(&self.sh.violations).clone();
        for p in lock(&self.sh.sched.panics).iter() {
            v.push(Violation {
                rule: rule::CLASS,
                message: p.clone(),
            });
        }
        v
    }

    /// Removes and returns the violations recorded so far.
    pub fn take_violations(&self) -> Vec<Violation> {
        let mut v: Vec<Violation> = lock(&self.sh.violations).drain(..).collect();
        for p in lock(&self.sh.sched.panics).drain(..) {
            v.push(Violation {
                rule: rule::CLASS,
                message: p,
            });
        }
        v
    }

    /// Whether a violation of `rule` was recorded.
    pub fn has_violation(&self, rule: &str) -> bool {
        self.violations().iter().any(|v| v.rule == rule)
    }

    /// Panics, listing them, if any violation was recorded.
    pub fn assert_clean(&self) {
        let v = self.violations();
        if !v.is_empty() {
            let list: Vec<String> = v.iter().map(|v| v.to_string()).collect();
            panic!(
                "{} GEOM rule violation(s):\n  {}",
                v.len(),
                list.join("\n  ")
            );
        }
    }

    /// Writes one console line (`printf(9)`).
    pub fn console(&self, line: String) {
        if self.sh.cfg.echo_log {
            eprintln!("{line}");
        }
        lock(&self.sh.log).push(line);
    }

    /// The console lines so far.
    pub fn log_lines(&self) -> Vec<String> {
        lock(&self.sh.log).clone()
    }

    /// A random number from the simulator's seeded generator.
    pub fn rand_u64(&self) -> u64 {
        lock(&self.sh.rng).next_u64()
    }

    /// True with probability `permille / 1000`, from the seeded generator.
    pub fn chance(&self, permille: u32) -> bool {
        lock(&self.sh.rng).chance(permille)
    }

    /// Sim time in nanoseconds (virtual in deterministic mode).
    pub fn now_ns(&self) -> u64 {
        self.sh.sched.now()
    }

    /// The deterministic run's trace hash: equal for equal seeds.
    pub fn trace_hash(&self) -> u64 {
        self.sh.sched.trace_hash()
    }

    /// `kern.geom.notaste`.
    pub fn set_notaste(&self, on: bool) {
        self.sh.notaste.store(on, Ordering::Release);
    }

    /// `g_post_event`: runs `f` on the event thread with the topology lock
    /// held. Callable from any context, done included.
    pub fn g_post_event(&self, f: impl FnOnce(&SimPlatform) + Send + 'static) {
        let me = self.clone();
        self.sh
            .sched
            .post(&self.sh.q_event, Box::new(move || me.run_event(f)));
    }

    /// Event-thread body for one event: lock, run, check it was unlocked.
    fn run_event(&self, f: impl FnOnce(&SimPlatform)) {
        self.g_topology_lock();
        f(self);
        if self.topology_held() {
            self.g_topology_unlock();
        } else {
            self.violation(
                rule::TOPOLOGY,
                "an event handler returned without the topology lock it was called with".into(),
            );
        }
    }

    /// `g_waitfor_event`: posts `f` and waits until the event thread ran it.
    /// A user-context call (it sleeps).
    pub fn g_waitfor_event<R: Send + 'static>(
        &self,
        f: impl FnOnce(&SimPlatform) -> R + Send + 'static,
    ) -> Option<R> {
        let (_, ctx) = current();
        if ctx != Ctx::User && ctx != Ctx::Worker {
            self.violation(
                rule::NOSLEEP,
                format!("g_waitfor_event() from {ctx:?} context"),
            );
            return None;
        }
        if self.topology_held() {
            self.violation(
                rule::DEADLOCK,
                "g_waitfor_event() with the topology lock held: the event can never run".into(),
            );
            return None;
        }
        let slot = Arc::new(Completion::<R>::new());
        let s2 = slot.clone();
        self.g_post_event(move |p| s2.set(f(p)));
        self.wait_completion(&slot, "g_waitfor_event")
    }

    /// Waits for `c` as a sleeping thread would: a condvar in threaded
    /// mode, nested scheduling in deterministic mode.
    pub(crate) fn wait_completion<R>(&self, c: &Completion<R>, what: &str) -> Option<R> {
        match self.sh.sched.mode {
            Mode::Deterministic => {
                if !self.sh.sched.det_block_until(&mut || c.is_set()) {
                    self.violation(
                        rule::DEADLOCK,
                        format!("{what}: nothing left to run and it never completed"),
                    );
                    return None;
                }
                c.take()
            }
            Mode::Threaded => {
                let r = c.wait(self.sh.cfg.wait_timeout);
                if r.is_none() {
                    self.violation(
                        rule::DEADLOCK,
                        format!("{what}: not completed after {:?}", self.sh.cfg.wait_timeout),
                    );
                }
                r
            }
        }
    }

    /// Runs the simulation until nothing is queued or running. Returns
    /// false on timeout (threaded) or livelock (deterministic).
    pub fn run_until_idle(&self) -> bool {
        let ok = self.sh.sched.run_until_idle(self.sh.cfg.wait_timeout);
        if !ok {
            self.violation(rule::DEADLOCK, "the simulation did not become idle".into());
        }
        ok
    }

    /// Deterministic mode: runs until `pred` holds (or nothing can run).
    /// Threaded mode: polls `pred` until it holds or the wait times out.
    pub fn run_until(&self, mut pred: impl FnMut() -> bool) -> bool {
        match self.sh.sched.mode {
            Mode::Deterministic => self.sh.sched.det_block_until(&mut pred),
            Mode::Threaded => {
                let deadline = Instant::now() + self.sh.cfg.wait_timeout;
                while !pred() {
                    if Instant::now() > deadline {
                        return false;
                    }
                    std::thread::sleep(Duration::from_micros(100));
                }
                true
            }
        }
    }

    /// Deterministic steps taken so far.
    pub fn steps(&self) -> u64 {
        self.sh.sched.steps()
    }

    /// (starts, dones) GEOM called directly, in the requester's or the
    /// completer's thread, rather than from g_down or g_up.
    pub fn direct_calls(&self) -> (u64, u64) {
        (
            self.sh.direct_starts.load(Ordering::Relaxed),
            self.sh.direct_dones.load(Ordering::Relaxed),
        )
    }

    /// Bios a class sent to a path again after a clone of theirs failed
    /// (the retries after path errors), counted by GEOM whatever the
    /// class: the linked core or the loaded module.
    pub fn reissued(&self) -> u64 {
        self.sh.reissued.load(Ordering::Acquire)
    }

    /// Bios a path failed: injected faults and dead paths.
    pub fn path_errors(&self) -> u64 {
        self.sh.path_errors.load(Ordering::Acquire)
    }

    /// Whether `class` is the class of a module `load_multipath` loaded.
    pub(crate) fn is_ko_class(&self, class: Option<ClassId>) -> bool {
        class.is_some_and(|c| lock(&self.sh.ko).iter().any(|(_, k)| *k == c))
    }

    /// The module instances `load_multipath` loaded under `GMR_CLASS=ko`
    /// (empty when the class is the linked core).
    pub fn ko_kernels(&self) -> Vec<Arc<crate::ko::KoKernel>> {
        lock(&self.sh.ko).iter().map(|(k, _)| k.clone()).collect()
    }
}

pub(crate) fn record_violation(sh: &SimShared, rule: &'static str, message: String) {
    let v = Violation { rule, message };
    if sh.cfg.echo_log {
        eprintln!("{v}");
    }
    lock(&sh.violations).push(v);
}

/// A one-shot result slot a sleeping thread waits on (`biowait`).
pub(crate) struct Completion<R> {
    m: Mutex<Option<R>>,
    done: AtomicBool,
    cv: Condvar,
}

impl<R> Completion<R> {
    pub fn new() -> Completion<R> {
        Completion {
            m: Mutex::new(None),
            done: AtomicBool::new(false),
            cv: Condvar::new(),
        }
    }
    pub fn set(&self, r: R) {
        *lock(&self.m) = Some(r);
        self.done.store(true, Ordering::Release);
        self.cv.notify_all();
    }
    pub fn is_set(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }
    pub fn take(&self) -> Option<R> {
        lock(&self.m).take()
    }
    pub fn wait(&self, timeout: Duration) -> Option<R> {
        let deadline = Instant::now() + timeout;
        let mut g = lock(&self.m);
        while g.is_none() {
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            g = wait_timeout(&self.cv, g, deadline - now);
        }
        g.take()
    }
}

/// What [`Sim::finish`] found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub violations: Vec<Violation>,
    pub trace_hash: u64,
    pub steps: u64,
}

impl Report {
    /// Panics, listing them, if any violation was recorded.
    pub fn assert_clean(&self) {
        if !self.violations.is_empty() {
            let list: Vec<String> = self.violations.iter().map(|v| v.to_string()).collect();
            panic!(
                "{} GEOM rule violation(s):\n  {}",
                list.len(),
                list.join("\n  ")
            );
        }
    }
    pub fn has(&self, rule: &str) -> bool {
        self.violations.iter().any(|v| v.rule == rule)
    }
}

/// The owner of a simulator: builds it, and on drop stops its threads.
/// Dereferences to the (unbound) [`SimPlatform`] for everything else.
pub struct Sim {
    plat: SimPlatform,
    finished: bool,
}

impl Deref for Sim {
    type Target = SimPlatform;
    fn deref(&self) -> &SimPlatform {
        &self.plat
    }
}

impl Sim {
    pub fn new(cfg: SimConfig) -> Sim {
        let sched = Sched::new(cfg.mode, cfg.seed);
        let q_event = sched.add_queue("g_event", TID_EVENT, Ctx::Event, true);
        let q_down = sched.add_queue("g_down", TID_DOWN, Ctx::Start, false);
        let q_up = sched.add_queue("g_up", TID_UP, Ctx::Done, false);
        let sh = Arc::new(SimShared {
            rng: Mutex::new(Rng::new(cfg.seed)),
            cfg,
            sched,
            q_event,
            q_down,
            q_up,
            topo: Mutex::new(Topology::default()),
            toplock: TopoLock::default(),
            bios: Mutex::new(BioTable::default()),
            violations: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            log: Mutex::new(Vec::new()),
            doorstep: Mutex::new(VecDeque::new()),
            washer_pending: AtomicBool::new(false),
            notaste: AtomicBool::new(false),
            luns: Mutex::new(Vec::new()),
            disk_paths: AtomicU64::new(0),
            wq_held: Mutex::new(HashMap::new()),
            workers: Mutex::new(Vec::new()),
            disk_class: Mutex::new(None),
            dev_class: Mutex::new(None),
            user_completions: AtomicU64::new(0),
            reissued: AtomicU64::new(0),
            pace: AtomicBool::new(false),
            direct_starts: AtomicU64::new(0),
            direct_dones: AtomicU64::new(0),
            path_errors: AtomicU64::new(0),
            ko: Mutex::new(Vec::new()),
            ko_starts: AtomicU64::new(0),
            ko_loaded: AtomicBool::new(false),
            fail_nowait_posts: AtomicU64::new(0),
        });
        let sim = Sim {
            plat: SimPlatform::from_shared(sh, None),
            finished: false,
        };
        // The disk drivers' class and DEV (which gives every provider its
        // /dev node) exist from boot, as in the kernel.
        let disk = sim.load_class(Arc::new(crate::disk::DiskClass));
        let dev = sim.load_class(Arc::new(crate::dev::DevClass));
        *lock(&sim.sh.disk_class) = disk.ok();
        *lock(&sim.sh.dev_class) = dev.ok();
        sim
    }

    /// A threaded simulator.
    pub fn threaded(seed: u64) -> Sim {
        Sim::new(SimConfig::new(Mode::Threaded, seed))
    }

    /// A deterministic simulator.
    pub fn deterministic(seed: u64) -> Sim {
        Sim::new(SimConfig::new(Mode::Deterministic, seed))
    }

    /// The platform handle (unbound), to clone into closures.
    pub fn plat(&self) -> SimPlatform {
        self.plat.clone()
    }

    /// Tears the simulation down the way a shutdown would, and checks for
    /// leaks: unloads every loaded class (newest first), runs until idle,
    /// then reports bios never completed, open access counts and leftover
    /// geoms as "leak" violations.
    pub fn finish(mut self) -> Report {
        self.finished = true;
        self.plat.run_until_idle();
        // A module loaded for the class (GMR_CLASS=ko) is unloaded as
        // kldunload does, so that its SYSUNINITs report leaks as
        // violations; a refused unload is one too.
        for (kk, summary) in self.unload_ko() {
            if let Err(e) = summary {
                self.plat
                    .violation(rule::LEAK, format!("kldunload at shutdown: {e}"));
            }
            drop(kk);
        }
        let builtin = [*lock(&self.sh.disk_class), *lock(&self.sh.dev_class)];
        let classes: Vec<ClassId> = lock(&self.sh.topo).classes.clone();
        for c in classes {
            if builtin.contains(&Some(c)) {
                continue;
            }
            // Stop every geom first (`geom CLASS stop` for each): a class
            // whose geoms hold their providers open refuses to unload, as
            // g_unload_class does.
            self.plat.destroy_class_geoms(c);
            self.plat.run_until_idle();
            if let Err(e) = self.plat.unload_class(c) {
                let name = self.plat.class_name(c).unwrap_or_default();
                self.plat.violation(rule::LEAK, format!("class {name} cannot be unloaded at shutdown: error {e} (something is still open)"));
            }
        }
        self.plat.run_until_idle();
        self.plat.leak_check();
        let report = Report {
            violations: self.plat.violations(),
            trace_hash: self.plat.trace_hash(),
            steps: self.plat.steps(),
        };
        self.stop_threads();
        report
    }

    /// Stops the geoms of each module `load_multipath` loaded and unloads
    /// it; records its summary line (see [`crate::harness::ko_summary::record`]).
    fn unload_ko(&self) -> Vec<(Arc<crate::ko::KoKernel>, Result<(), String>)> {
        let kos: Vec<_> = lock(&self.sh.ko).drain(..).collect();
        let mut out = Vec::new();
        for (kk, class) in kos {
            if !kk.is_loaded() {
                // The test unloaded it itself (ko::unload).
                let bios = self.sh.ko_starts.load(Ordering::Acquire);
                crate::ko_summary::record(&kk.summary_data(bios, self.plat.path_errors()));
                out.push((kk, Ok(())));
                continue;
            }
            if self.plat.class_name(class).is_some() {
                self.plat.destroy_class_geoms(class);
                self.plat.run_until_idle();
            }
            let r = crate::ko::unload(&kk)
                .map(|_| ())
                .map_err(|e| e.to_string());
            self.plat.run_until_idle();
            let bios = self.sh.ko_starts.load(Ordering::Acquire);
            crate::ko_summary::record(&kk.summary_data(bios, self.plat.path_errors()));
            out.push((kk, r));
        }
        out
    }

    fn stop_threads(&self) {
        let workers: Vec<crate::platform::WorkerRef> = lock(&self.sh.workers).drain(..).collect();
        for w in workers {
            w.stop_and_join(&self.plat);
        }
        self.sh.sched.shutdown();
        lock(&self.sh.luns).clear();
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if !self.finished {
            // A test that drops its simulator without finish() still
            // unloads the module, and fails on what only the module's
            // unload can see: a refused kldunload, a panic(9), a leak.
            let mut bad = Vec::new();
            for (kk, r) in self.unload_ko() {
                let rep = kk.report();
                match r {
                    Err(e) => bad.push(format!("kldunload at drop: {e}")),
                    Ok(()) if rep.panics > 0 || rep.live_at_unload > 0 => bad.push(format!(
                        "the module called panic(9) {} times and leaked {} allocations: {:?}",
                        rep.panics,
                        rep.live_at_unload,
                        self.plat.violations()
                    )),
                    Ok(()) => {}
                }
            }
            self.stop_threads();
            self.break_cycles();
            if !bad.is_empty() && !std::thread::panicking() {
                panic!("GMR_CLASS=ko: {}", bad.join("; "));
            }
            return;
        }
        self.break_cycles();
    }
}

impl Sim {
    fn break_cycles(&mut self) {
        // Break the class → softc → platform cycles so memory is returned.
        let mut t = lock(&self.sh.topo);
        let classes = std::mem::take(&mut t.class);
        let geoms = std::mem::take(&mut t.geom);
        drop(t);
        drop(geoms);
        drop(classes);
    }
}

/// Errno shorthand used across the simulator.
pub(crate) type Res<T> = Result<T, Errno>;
