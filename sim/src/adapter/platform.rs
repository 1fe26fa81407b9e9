//! `geom_multipath_rs::Platform` for the simulator: the core's whole view of
//! GEOM, mapped onto the simulator's checked operations.

use crate::topology::Direct;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use std::collections::VecDeque;

use geom_multipath_rs::platform::{
    Access, BioCmd, BioQueue, Errno, Platform, WaitQueue, ENOMEM, ENXIO,
};
use geom_multipath_rs::worker::Worker;
use geom_multipath_rs::Softc;

use crate::bio::Bio;
use crate::ids::{BioId, ConsumerId, GeomId, ProviderId};
use crate::sched::{current, Mode, Poller, TID_WORKER_BASE};
use crate::sim::{record_violation, SimPlatform, SimShared};
use crate::topology::AnySoftc;
use crate::util::{lock, wait_timeout};
use crate::violation::rule;

impl SimPlatform {
    /// `name`, or (the object `id` is gone) a STALE violation and "".
    fn name_or_stale(&self, name: Option<String>, kind: &str, id: impl fmt::Debug) -> String {
        name.unwrap_or_else(|| {
            self.violation(
                rule::STALE,
                format!("{kind} name of {id:?}, which does not exist"),
            );
            String::new()
        })
    }
}

impl Platform for SimPlatform {
    type Geom = GeomId;
    type Provider = ProviderId;
    type Consumer = ConsumerId;
    type Bio = Bio;
    type Wq = SimWaitQueue;

    fn topology_lock(&self) {
        self.g_topology_lock();
    }
    fn topology_unlock(&self) {
        self.g_topology_unlock();
    }
    fn topology_assert(&self) {
        self.g_topology_assert("g_topology_assert()");
    }

    fn log(&self, args: fmt::Arguments<'_>) {
        self.console(args.to_string());
    }
    fn random(&self) -> u32 {
        self.rand_u64() as u32
    }
    /// The simulated thread: with direct dispatch, start and done run in
    /// the issuing and completing threads, whose bios then count in
    /// different lanes of the path table, as on CPUs of their own.
    fn cpu_hint(&self) -> usize {
        crate::sched::current().0 as usize
    }

    fn new_geom(&self, name: &str, softc: Option<Arc<Softc<Self>>>) -> Result<GeomId, Errno> {
        self.g_new_geom(name, softc.map(|s| s as AnySoftc))
    }
    fn destroy_geom(&self, gp: GeomId) {
        self.g_destroy_geom(gp);
    }
    fn wither_geom(&self, gp: GeomId, error: Errno) {
        self.g_wither_geom(gp, error);
    }
    fn class_geoms(&self) -> Vec<GeomId> {
        self.g_class_geoms()
    }
    fn geom_name(&self, gp: GeomId) -> String {
        self.name_or_stale(self.geom_name_of(gp), "geom", gp)
    }
    fn geom_softc(&self, gp: GeomId) -> Option<Arc<Softc<Self>>> {
        self.geom_softc::<Softc<Self>>(gp)
    }

    fn new_provider(
        &self,
        gp: GeomId,
        name: &str,
        mediasize: u64,
        sectorsize: u32,
    ) -> Result<ProviderId, Errno> {
        self.g_new_provider(gp, name, mediasize, sectorsize)
    }
    fn provider_announce(&self, pp: ProviderId) {
        self.g_error_provider(pp, 0);
    }
    fn wither_provider(&self, pp: ProviderId, error: Errno) {
        self.g_wither_provider(pp, error);
    }
    fn provider_by_name(&self, name: &str) -> Option<ProviderId> {
        self.g_provider_by_name(name)
    }
    fn provider_name(&self, pp: ProviderId) -> String {
        self.name_or_stale(self.provider_name_of(pp), "provider", pp)
    }
    fn provider_mediasize(&self, pp: ProviderId) -> u64 {
        self.provider_size(pp).map_or(0, |s| s.0)
    }
    fn provider_sectorsize(&self, pp: ProviderId) -> u32 {
        self.provider_size(pp).map_or(0, |s| s.1)
    }
    fn provider_access(&self, pp: ProviderId) -> Access {
        self.provider_acc(pp).unwrap_or(Access::NONE)
    }
    fn provider_stripe(&self, pp: ProviderId) -> (u64, u64) {
        self.provider_stripe_of(pp).unwrap_or((0, 0))
    }
    fn set_provider_stripe(&self, pp: ProviderId, stripesize: u64, stripeoffset: u64) {
        if self.g_topology_assert("set pp->stripesize") {
            SimPlatform::set_provider_stripe(self, pp, stripesize, stripeoffset);
        }
    }
    fn provider_accepts_unmapped(&self, pp: ProviderId) -> bool {
        self.provider_accepts_unmapped_of(pp).unwrap_or(false)
    }
    fn set_provider_direct(&self, pp: ProviderId) {
        SimPlatform::set_provider_direct(self, pp, Direct::BOTH);
    }
    fn set_consumer_direct(&self, cp: ConsumerId) {
        SimPlatform::set_consumer_direct(self, cp, Direct::BOTH);
    }
    fn set_provider_unmapped(&self, pp: ProviderId, accept: bool) {
        if self.g_topology_assert("set G_PF_ACCEPT_UNMAPPED") {
            self.set_provider_accepts_unmapped(pp, accept);
        }
    }
    fn resize_provider(&self, pp: ProviderId, mediasize: u64) {
        if self.g_topology_assert("g_resize_provider") {
            self.g_resize_provider(pp, mediasize);
        }
    }

    fn new_consumer(&self, gp: GeomId) -> Result<ConsumerId, Errno> {
        self.g_new_consumer(gp)
    }
    fn attach(&self, cp: ConsumerId, pp: ProviderId) -> Result<(), Errno> {
        self.g_attach(cp, pp)
    }
    fn detach(&self, cp: ConsumerId) {
        self.g_detach(cp);
    }
    fn destroy_consumer(&self, cp: ConsumerId) {
        self.g_destroy_consumer(cp);
    }
    fn access(&self, cp: ConsumerId, delta: Access) -> Result<(), Errno> {
        self.g_access(cp, delta)
    }
    fn consumer_access(&self, cp: ConsumerId) -> Access {
        self.consumer_acc(cp).unwrap_or(Access::NONE)
    }
    fn consumer_provider(&self, cp: ConsumerId) -> Option<ProviderId> {
        self.consumer_attached_to(cp)
    }
    fn consumer_to_raw(cp: ConsumerId) -> usize {
        cp.0 as usize
    }
    fn consumer_from_raw(raw: usize) -> ConsumerId {
        ConsumerId(raw as u64)
    }

    fn read_data(&self, cp: ConsumerId, offset: u64, length: usize) -> Result<Vec<u8>, Errno> {
        self.g_read_data(cp, offset, length)
    }
    fn write_data(&self, cp: ConsumerId, offset: u64, data: &[u8]) -> Result<(), Errno> {
        self.g_write_data(cp, offset, data)
    }

    fn bio_cmd(&self, bp: &Bio) -> BioCmd {
        self.bio_cmd_of(bp)
    }
    fn bio_offset(&self, bp: &Bio) -> u64 {
        self.bio_offset_of(bp)
    }
    fn bio_length(&self, bp: &Bio) -> u64 {
        self.bio_length_of(bp)
    }
    fn bio_error(&self, bp: &Bio) -> Errno {
        self.bio_error_of(bp)
    }
    fn bio_set_cookie(&self, bp: &mut Bio, cookie: usize) {
        self.set_bio_cookie(bp, cookie);
    }
    fn bio_cookie(&self, bp: &Bio) -> usize {
        self.bio_cookie_of(bp)
    }
    fn bio_attribute_is(&self, bp: &Bio, name: &str) -> bool {
        self.bio_attribute_eq(bp, name)
    }
    fn bio_append_attr_str(&self, bp: &mut Bio, suffix: &str) -> Result<(), Errno> {
        self.bio_append_str(bp, suffix)
    }
    fn clone_bio(&self, parent: Bio) -> Result<Bio, Bio> {
        match self.g_clone_bio(&parent) {
            Some(child) => {
                // The parent now lives through its child (bio_parent).
                let _ = parent.into_id();
                Ok(child)
            }
            None => Err(parent),
        }
    }
    fn io_request(&self, child: Bio, cp: ConsumerId) {
        self.g_io_request(child, cp);
    }
    fn io_deliver(&self, bp: Bio, error: Errno) {
        self.g_io_deliver(bp, error);
    }
    fn std_done(&self, child: Bio) {
        self.g_std_done(child);
    }
    fn retire_child(&self, child: Bio) -> Bio {
        // On misuse (already reported) hand back an inert handle: later
        // uses of it are reported as stale rather than crashing.
        self.g_retire_child(child)
            .unwrap_or_else(|| Bio::inert(BioId(0)))
    }

    fn post_event<F: FnOnce(&Self) + Send + 'static>(&self, f: F) -> Result<(), Errno> {
        // g_post_event(M_NOWAIT) may fail: as many as a test asked for do
        // (fail_nowait_posts), and `f` is dropped unrun.
        let take = |n: u64| n.checked_sub(1);
        if self
            .sh
            .fail_nowait_posts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, take)
            .is_ok()
        {
            return Err(ENOMEM);
        }
        // Userland: the event queue boxes it (an allocation failure aborts
        // the simulator, which is fine there).
        self.g_post_event(f);
        Ok(())
    }
    fn post_event_sleeping<F: FnOnce(&Self) + Send + 'static>(&self, f: F) -> Result<(), Errno> {
        // g_post_event(M_WAITOK): may sleep for memory, so never from
        // start or done (the topology lock, an sx, may be held). It waits
        // rather than fails, so injected failures do not reach it.
        let (_, ctx) = current();
        if ctx.is_io() {
            self.violation(
                rule::NOSLEEP,
                format!("g_post_event(M_WAITOK) from {ctx:?} context, which must not sleep"),
            );
        }
        self.g_post_event(f);
        Ok(())
    }
    fn new_wait_queue(&self, name: &'static str) -> Result<SimWaitQueue, Errno> {
        Ok(SimWaitQueue::new(self, name))
    }
    fn start_worker(&self, w: Arc<Worker<Self>>) -> Result<(), Errno> {
        let key = Arc::as_ptr(&w) as usize;
        let n = lock(&self.sh.workers).len() as u64;
        let tid = TID_WORKER_BASE + n;
        lock(&self.sh.workers).push(WorkerRef { key, w: w.clone() });
        match self.mode() {
            Mode::Threaded => {
                let plat = self.clone();
                self.sh
                    .sched
                    .spawn_worker(key, "g_mp_kt", tid, Box::new(move || w.run(&plat)))
                    .map_err(|e| {
                        self.violation(rule::CLASS, format!("cannot start the worker thread: {e}"));
                        ENXIO
                    })
            }
            Mode::Deterministic => {
                let (w1, w2, plat) = (w.clone(), w, self.clone());
                self.sh.sched.add_poller(Poller {
                    key,
                    tid,
                    has_work: Box::new(move || w1.has_work()),
                    step: Box::new(move || {
                        w2.process_one(&plat);
                    }),
                });
                Ok(())
            }
        }
    }
    fn join_worker(&self, w: &Arc<Worker<Self>>) {
        let key = Arc::as_ptr(w) as usize;
        lock(&self.sh.workers).retain(|r| r.key != key);
        match self.mode() {
            Mode::Threaded => {
                if self.topology_held() && w.has_work() {
                    self.violation(rule::DEADLOCK, "join_worker with the topology lock held while the worker has queued bios it needs the lock for".into());
                    return;
                }
                self.sh.sched.join_worker(key);
            }
            Mode::Deterministic => {
                self.sh.sched.remove_poller(key);
                while w.process_one(self) {}
                w.mark_exited();
            }
        }
    }
}

/// A worker the platform started, so shutdown can stop it.
pub(crate) struct WorkerRef {
    key: usize,
    w: Arc<Worker<SimPlatform>>,
}

impl WorkerRef {
    pub(crate) fn stop_and_join(&self, plat: &SimPlatform) {
        if !self.w.is_exited() {
            self.w.request_stop();
            plat.join_worker(&self.w);
        }
    }

    /// Bios the worker handled.
    pub(crate) fn handled(&self) -> usize {
        self.w.handled()
    }
}

impl SimPlatform {
    /// Makes the core's next `n` `M_NOWAIT` event posts
    /// ([`Platform::post_event`], which start and done use) fail with
    /// ENOMEM, as `g_post_event(M_NOWAIT)` does when memory is short;
    /// `M_WAITOK` posts ([`Platform::post_event_sleeping`]) wait instead
    /// and still succeed. 0 stops it. Returns how many were still due.
    pub fn fail_nowait_posts(&self, n: u64) -> u64 {
        self.sh.fail_nowait_posts.swap(n, Ordering::SeqCst)
    }

    /// Bios handled by every class worker so far (re-issues after failures).
    pub fn worker_handled(&self) -> usize {
        lock(&self.sh.workers).iter().map(|w| w.handled()).sum()
    }
}

impl Bio {
    /// A handle to nothing, never reported when dropped.
    pub(crate) fn inert(id: BioId) -> Bio {
        Bio::new(id, Weak::new())
    }
}

struct WqState {
    owner: Option<u64>,
    generation: u64,
    refused: u32,
}

/// `mtx` + `msleep`/`wakeup` on one channel, with owner tracking: sleeping
/// from start or done, or with the topology lock held, is a violation; in
/// deterministic mode a sleeper runs the other queues until woken.
pub struct SimWaitQueue {
    sh: Weak<SimShared>,
    name: &'static str,
    st: Mutex<WqState>,
    cv: Condvar,
    /// The worker's failed bios ([`BioQueue`]). The kernel links bios
    /// through themselves; here a deque with room reserved up front, so
    /// done does not allocate unless more than that many are waiting.
    failed: Mutex<VecDeque<(Bio, Arc<Softc<SimPlatform>>)>>,
}

/// Failed bios the simulator's queue holds before it has to grow.
const FAILED_QUEUE_RESERVE: usize = 256;

impl SimWaitQueue {
    fn new(plat: &SimPlatform, name: &'static str) -> SimWaitQueue {
        SimWaitQueue {
            sh: plat.weak(),
            name,
            st: Mutex::new(WqState {
                owner: None,
                generation: 0,
                refused: 0,
            }),
            cv: Condvar::new(),
            failed: Mutex::new(VecDeque::with_capacity(FAILED_QUEUE_RESERVE)),
        }
    }

    fn report(&self, rule: &'static str, msg: String) {
        if let Some(sh) = self.sh.upgrade() {
            record_violation(&sh, rule, format!("mutex {}: {msg}", self.name));
        }
    }

    /// Wakes OS threads waiting on the condition variable: threaded mode
    /// only. In deterministic mode no thread ever waits on it (a sleeper
    /// runs the scheduler instead), and a notify is a futex system call
    /// each time: `Worker::has_work` locks and unlocks on every poll.
    fn notify(&self) {
        let threaded = self
            .sh
            .upgrade()
            .is_none_or(|sh| sh.sched.mode == Mode::Threaded);
        if threaded {
            self.cv.notify_all();
        }
    }

    fn plat(&self) -> Option<SimPlatform> {
        self.sh
            .upgrade()
            .map(|sh| SimPlatform::from_shared(sh, None))
    }

    /// Records that simulated thread `tid` now holds (`held`) or no
    /// longer holds this mutex, for the direct dispatch rule.
    fn note_held(&self, tid: u64, held: bool) {
        let Some(sh) = self.sh.upgrade() else { return };
        let mut m = lock(&sh.wq_held);
        if held {
            m.entry(tid).or_default().push(self.name);
        } else if let Some(v) = m.get_mut(&tid) {
            if let Some(i) = v.iter().rposition(|n| *n == self.name) {
                v.remove(i);
            }
            if v.is_empty() {
                m.remove(&tid);
            }
        }
    }
}

impl WaitQueue for SimWaitQueue {
    fn lock(&self) {
        let (tid, _) = current();
        let det = self.plat().is_some_and(|p| p.mode() == Mode::Deterministic);
        let mut st = lock(&self.st);
        if st.owner == Some(tid) {
            st.refused += 1;
            drop(st);
            return self.report(rule::DEADLOCK, "mtx_lock while already holding it".into());
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while st.owner.is_some() {
            if det || Instant::now() > deadline {
                st.refused += 1;
                drop(st);
                return self.report(
                    rule::DEADLOCK,
                    "mtx_lock: held by a thread that cannot run".into(),
                );
            }
            st = wait_timeout(&self.cv, st, Duration::from_millis(50));
        }
        st.owner = Some(tid);
        drop(st);
        self.note_held(tid, true);
    }

    fn unlock(&self) {
        let (tid, _) = current();
        let mut st = lock(&self.st);
        if st.owner == Some(tid) {
            st.owner = None;
            drop(st);
            self.note_held(tid, false);
            self.notify();
        } else if st.refused > 0 {
            st.refused -= 1;
        } else {
            drop(st);
            self.report(
                rule::DEADLOCK,
                "mtx_unlock by a thread that does not own it".into(),
            );
        }
    }

    fn sleep(&self) {
        let (tid, ctx) = current();
        let Some(plat) = self.plat() else { return };
        if ctx.is_io() {
            return self.report(
                rule::NOSLEEP,
                format!("msleep from {ctx:?} context, which must not sleep"),
            );
        }
        if plat.topology_held() {
            return self.report(rule::NOSLEEP, "msleep with the topology lock held".into());
        }
        let mut st = lock(&self.st);
        if st.owner != Some(tid) {
            drop(st);
            return self.report(rule::DEADLOCK, "msleep without holding the mutex".into());
        }
        let gen0 = st.generation;
        st.owner = None;
        self.note_held(tid, false);
        self.cv.notify_all();
        match plat.mode() {
            Mode::Threaded => {
                while st.generation == gen0 {
                    st = wait_timeout(&self.cv, st, Duration::from_millis(100));
                }
                while st.owner.is_some() {
                    st = wait_timeout(&self.cv, st, Duration::from_millis(50));
                }
                st.owner = Some(tid);
                drop(st);
                self.note_held(tid, true);
            }
            Mode::Deterministic => {
                drop(st);
                let woke = plat
                    .sh
                    .sched
                    .det_block_until(&mut || lock(&self.st).generation != gen0);
                if !woke {
                    self.report(
                        rule::DEADLOCK,
                        "msleep: nothing left to run will ever wake it".into(),
                    );
                }
                let mut st = lock(&self.st);
                st.owner = Some(tid);
                drop(st);
                self.note_held(tid, true);
            }
        }
    }

    fn wakeup(&self) {
        let mut st = lock(&self.st);
        st.generation += 1;
        drop(st);
        self.notify();
    }
}

impl BioQueue<Bio, Softc<SimPlatform>> for SimWaitQueue {
    fn push_bio(&self, bp: Bio, tag: Arc<Softc<SimPlatform>>) {
        lock(&self.failed).push_back((bp, tag));
    }
    fn pop_bio(&self) -> Option<(Bio, Arc<Softc<SimPlatform>>)> {
        lock(&self.failed).pop_front()
    }
    fn has_bios(&self) -> bool {
        !lock(&self.failed).is_empty()
    }
}
