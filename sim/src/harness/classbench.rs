//! `mpsim bench-class`: the class's own cost per bio, without the
//! simulator.
//!
//! [`NullPlat`] is a [`Platform`] that costs nearly nothing: no thread
//! hand-off, no rule checking, no allocation per bio. `g_clone_bio` hands
//! out a child record embedded in the parent's, `g_io_request` completes
//! the child at once on the calling thread (a path with no latency), and
//! `g_std_done` folds it into the parent and delivers that. What is left
//! to time is the class's `start` and `done`, and the same few platform
//! calls a pass-through class makes: the baseline, [`pass_start`], clones
//! and forwards every bio to one consumer, as PASS (g_nop) does. For
//! comparison it also runs a model of FreeBSD's own design ([`stock`]:
//! a device mutex taken in start and again in done).
//!
//! Each run builds a fresh device (not timed), then 1 or 2 threads issue
//! bios to it at once, each as its own CPU (`Platform::cpu_hint`), half
//! reads and half writes. A round runs every variant on 1 and 2 threads,
//! in an order shuffled per round; warm-up rounds are thrown away. The
//! report gives per variant the median CPU time per bio, per-round ratios
//! to pass-through (median and spread), and per variant the 2-thread over
//! 1-thread throughput, per round. Nothing here asserts a speed.

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex, OnceLock};
use std::time::Instant;

use geom_multipath_rs::path::PathTable;
use geom_multipath_rs::platform::{
    Access, BioCmd, BioQueue, Errno, Platform, WaitQueue, EINVAL, EIO, ENOMEM,
};
use geom_multipath_rs::worker::Worker;
use geom_multipath_rs::{Class, Softc};

use crate::bench::{quantile, thread_cpu_seconds, Spread};

mod stock;
use crate::ctl::SimCtlReq;
use crate::util::Rng;
use stock::StockDev;

/// One bio: a parent sent to the device, or the child the class cloned.
struct Rec {
    cmd: BioCmd,
    offset: u64,
    length: u64,
    error: Errno,
    cookie: usize,
    /// A child's parent; null for a parent and for a free child.
    parent: *mut Rec,
    /// A parent's embedded child record (see [`Pair`]).
    child: *mut Rec,
    /// A parent's children not yet folded back.
    children: u32,
    /// Times a parent was delivered: exactly 1 a bio, checked per bio.
    delivered: u32,
}

impl Rec {
    fn new() -> Rec {
        Rec {
            cmd: BioCmd::Read,
            offset: 0,
            length: 0,
            error: 0,
            cookie: 0,
            parent: std::ptr::null_mut(),
            child: std::ptr::null_mut(),
            children: 0,
            delivered: 0,
        }
    }
}

/// A parent and the record its one child lives in.
struct Pair {
    parent: Rec,
    child: Rec,
}

/// A bio handle: a pointer to a record of the issuing thread's pool.
pub struct NullBio(NonNull<Rec>);

// SAFETY: a record is only touched through the one live handle to it (a
// handle is move-only and the pool hands each record to one bio at a
// time); the pool outlives every handle (the issuing thread waits for
// each bio before reusing or dropping its records), and the thread that
// holds a handle may be any.
unsafe impl Send for NullBio {}

impl NullBio {
    fn rec(&self) -> &Rec {
        // SAFETY: see `Send`: the record is live and only this handle
        // reaches it.
        unsafe { self.0.as_ref() }
    }
    fn rec_mut(&mut self) -> &mut Rec {
        // SAFETY: as in `rec`; `&mut self` makes the access unique.
        unsafe { self.0.as_mut() }
    }
}

thread_local! {
    /// The CPU the calling bench thread stands for.
    static CPU: Cell<usize> = const { Cell::new(0) };
}

/// A spin lock with explicit lock and unlock (the topology lock and the
/// worker's mutex, neither contended here).
#[derive(Default)]
struct Spin(AtomicBool);

impl Spin {
    fn lock(&self) {
        while self
            .0
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
    }
    fn unlock(&self) {
        self.0.store(false, Ordering::Release);
    }
    fn held(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The worker's queue. No bio fails here, so nothing is ever queued.
#[derive(Default)]
pub struct NullWq {
    lock: Spin,
    queue: Mutex<VecDeque<(NullBio, Arc<Softc<NullPlat>>)>>,
}

impl WaitQueue for NullWq {
    fn lock(&self) {
        self.lock.lock();
    }
    fn unlock(&self) {
        self.lock.unlock();
    }
    fn sleep(&self) {
        // No worker thread runs here: nothing would wake it.
        panic!("the class bench has no worker thread to sleep");
    }
    fn wakeup(&self) {}
}

impl BioQueue<NullBio, Softc<NullPlat>> for NullWq {
    fn push_bio(&self, bp: NullBio, tag: Arc<Softc<NullPlat>>) {
        if let Ok(mut q) = self.queue.lock() {
            q.push_back((bp, tag));
        }
    }
    fn pop_bio(&self) -> Option<(NullBio, Arc<Softc<NullPlat>>)> {
        self.queue.lock().ok()?.pop_front()
    }
    fn has_bios(&self) -> bool {
        self.queue.lock().is_ok_and(|q| !q.is_empty())
    }
}

/// A geom: its name and softc.
type NullGeom = (String, Option<Arc<Softc<NullPlat>>>);

/// Topology state: just enough for `gmultipath create` to build a device.
#[derive(Default)]
struct Topo {
    /// Geoms; `None` once destroyed.
    geoms: Vec<Option<NullGeom>>,
    /// Providers: name, size, sector size, access.
    providers: Vec<(String, u64, u32, Access)>,
    /// Consumers: attached provider, access.
    consumers: Vec<(Option<usize>, Access)>,
}

/// The nearly free platform. Handles are indices (consumers are
/// index + 1, so no consumer is 0).
#[derive(Default)]
pub struct NullPlat {
    topology: Spin,
    topo: Mutex<Topo>,
    /// The multipath device bios go to; unset for pass-through.
    softc: OnceLock<Arc<Softc<NullPlat>>>,
    /// The device when it is run FreeBSD's way (see [`stock`]).
    stock: OnceLock<StockDev>,
    /// Events posted (teardowns): run by [`NullPlat::run_events`].
    #[allow(clippy::type_complexity)]
    events: Mutex<Vec<Box<dyn FnOnce(&NullPlat) + Send>>>,
    /// Console lines.
    pub log: Mutex<Vec<String>>,
}

const SIZE: u64 = 1 << 30;
const SECTOR: u32 = 512;

impl NullPlat {
    /// A platform with two disks, `da0` and `da1`.
    pub fn new() -> NullPlat {
        let p = NullPlat::default();
        if let Ok(mut t) = p.topo.lock() {
            for n in ["da0", "da1"] {
                t.providers
                    .push((n.to_string(), SIZE, SECTOR, Access::NONE));
            }
        }
        p
    }

    fn topo(&self) -> std::sync::MutexGuard<'_, Topo> {
        match self.topo.lock() {
            Ok(t) => t,
            Err(e) => e.into_inner(),
        }
    }

    /// Runs posted events with the topology lock held.
    pub fn run_events(&self) {
        loop {
            let evs: Vec<_> = match self.events.lock() {
                Ok(mut e) => std::mem::take(&mut *e),
                Err(_) => return,
            };
            if evs.is_empty() {
                return;
            }
            for f in evs {
                self.topology.lock();
                f(self);
                self.topology.unlock();
            }
        }
    }
}

impl Platform for NullPlat {
    type Geom = usize;
    type Provider = usize;
    type Consumer = usize;
    type Bio = NullBio;
    type Wq = NullWq;

    fn topology_lock(&self) {
        self.topology.lock();
    }
    fn topology_unlock(&self) {
        self.topology.unlock();
    }
    fn topology_assert(&self) {
        assert!(self.topology.held(), "topology lock not held");
    }
    fn log(&self, args: fmt::Arguments<'_>) {
        if let Ok(mut l) = self.log.lock() {
            l.push(args.to_string());
        }
    }
    fn random(&self) -> u32 {
        4
    }
    fn cpu_hint(&self) -> usize {
        CPU.with(Cell::get)
    }

    fn new_geom(&self, name: &str, softc: Option<Arc<Softc<Self>>>) -> Result<usize, Errno> {
        let mut t = self.topo();
        t.geoms.push(Some((name.to_string(), softc)));
        Ok(t.geoms.len() - 1)
    }
    fn destroy_geom(&self, gp: usize) {
        let old = self.topo().geoms.get_mut(gp).and_then(Option::take);
        drop(old);
    }
    fn wither_geom(&self, gp: usize, _error: Errno) {
        self.destroy_geom(gp);
    }
    fn class_geoms(&self) -> Vec<usize> {
        let t = self.topo();
        (0..t.geoms.len())
            .rev()
            .filter(|&g| t.geoms[g].is_some())
            .collect()
    }
    fn geom_name(&self, gp: usize) -> String {
        self.topo().geoms[gp]
            .as_ref()
            .map(|g| g.0.clone())
            .unwrap_or_default()
    }
    fn geom_softc(&self, gp: usize) -> Option<Arc<Softc<Self>>> {
        self.topo().geoms.get(gp)?.as_ref()?.1.clone()
    }

    fn new_provider(
        &self,
        _gp: usize,
        name: &str,
        mediasize: u64,
        sectorsize: u32,
    ) -> Result<usize, Errno> {
        let mut t = self.topo();
        t.providers
            .push((name.to_string(), mediasize, sectorsize, Access::NONE));
        Ok(t.providers.len() - 1)
    }
    fn provider_announce(&self, _pp: usize) {}
    fn wither_provider(&self, _pp: usize, _error: Errno) {}
    fn provider_by_name(&self, name: &str) -> Option<usize> {
        self.topo().providers.iter().position(|p| p.0 == name)
    }
    fn provider_name(&self, pp: usize) -> String {
        self.topo().providers[pp].0.clone()
    }
    fn provider_mediasize(&self, pp: usize) -> u64 {
        self.topo().providers[pp].1
    }
    fn provider_sectorsize(&self, pp: usize) -> u32 {
        self.topo().providers[pp].2
    }
    fn provider_access(&self, pp: usize) -> Access {
        self.topo().providers[pp].3
    }
    fn provider_stripe(&self, _pp: usize) -> (u64, u64) {
        (0, 0)
    }
    fn set_provider_stripe(&self, _pp: usize, _size: u64, _offset: u64) {}
    fn provider_accepts_unmapped(&self, _pp: usize) -> bool {
        false
    }
    fn set_provider_unmapped(&self, _pp: usize, _accept: bool) {}
    // This platform always calls start and done directly.
    fn set_provider_direct(&self, _pp: usize) {}
    fn set_consumer_direct(&self, _cp: usize) {}
    fn resize_provider(&self, _pp: usize, _mediasize: u64) {}

    fn new_consumer(&self, _gp: usize) -> Result<usize, Errno> {
        let mut t = self.topo();
        t.consumers.push((None, Access::NONE));
        Ok(t.consumers.len())
    }
    fn attach(&self, cp: usize, pp: usize) -> Result<(), Errno> {
        self.topo().consumers[cp - 1].0 = Some(pp);
        Ok(())
    }
    fn detach(&self, cp: usize) {
        self.topo().consumers[cp - 1].0 = None;
    }
    fn destroy_consumer(&self, _cp: usize) {}
    fn access(&self, cp: usize, d: Access) -> Result<(), Errno> {
        let mut t = self.topo();
        let c = &mut t.consumers[cp - 1];
        c.1 = Access::new(c.1.r + d.r, c.1.w + d.w, c.1.e + d.e);
        Ok(())
    }
    fn consumer_access(&self, cp: usize) -> Access {
        self.topo().consumers[cp - 1].1
    }
    fn consumer_provider(&self, cp: usize) -> Option<usize> {
        self.topo().consumers[cp - 1].0
    }
    fn consumer_to_raw(cp: usize) -> usize {
        cp
    }
    fn consumer_from_raw(raw: usize) -> usize {
        raw
    }

    fn read_data(&self, _cp: usize, _offset: u64, _length: usize) -> Result<Vec<u8>, Errno> {
        Err(EIO)
    }
    fn write_data(&self, _cp: usize, _offset: u64, _data: &[u8]) -> Result<(), Errno> {
        Err(EIO)
    }

    fn bio_cmd(&self, bp: &NullBio) -> BioCmd {
        bp.rec().cmd
    }
    fn bio_offset(&self, bp: &NullBio) -> u64 {
        bp.rec().offset
    }
    fn bio_length(&self, bp: &NullBio) -> u64 {
        bp.rec().length
    }
    fn bio_error(&self, bp: &NullBio) -> Errno {
        bp.rec().error
    }
    fn bio_set_cookie(&self, bp: &mut NullBio, cookie: usize) {
        bp.rec_mut().cookie = cookie;
    }
    fn bio_cookie(&self, bp: &NullBio) -> usize {
        bp.rec().cookie
    }
    fn bio_attribute_is(&self, _bp: &NullBio, _name: &str) -> bool {
        false
    }
    fn bio_append_attr_str(&self, _bp: &mut NullBio, _suffix: &str) -> Result<(), Errno> {
        Err(EINVAL)
    }
    fn clone_bio(&self, mut parent: NullBio) -> Result<NullBio, NullBio> {
        let pptr = parent.0.as_ptr();
        let p = parent.rec_mut();
        let Some(mut child) = NonNull::new(p.child) else {
            return Err(parent);
        };
        // SAFETY: the child record belongs to this parent alone (its
        // pair) and is free (no parent set) unless a child is out, which
        // is checked first; nothing else reaches it.
        let c = unsafe { child.as_mut() };
        if !c.parent.is_null() {
            return Err(parent);
        }
        c.cmd = p.cmd;
        c.offset = p.offset;
        c.length = p.length;
        c.error = 0;
        c.cookie = 0;
        c.parent = pptr;
        p.children += 1;
        // The parent handle is now held by its child (g_clone_bio keeps
        // bio_parent); it comes back through std_done or retire_child.
        let _ = parent;
        Ok(NullBio(child))
    }
    fn io_request(&self, child: NullBio, _cp: usize) {
        // The path completes it at once, on this thread.
        if let Some(sc) = self.softc.get() {
            sc.child_done(self, child);
        } else if let Some(st) = self.stock.get() {
            st.done(self, child);
        } else {
            self.std_done(child);
        }
    }
    fn io_deliver(&self, mut bp: NullBio, error: Errno) {
        let r = bp.rec_mut();
        r.error = error;
        r.delivered += 1;
    }
    fn std_done(&self, mut child: NullBio) {
        let c = child.rec_mut();
        let error = c.error;
        let pptr = std::mem::replace(&mut c.parent, std::ptr::null_mut());
        let Some(parent) = NonNull::new(pptr) else {
            return;
        };
        let mut parent = NullBio(parent);
        let p = parent.rec_mut();
        if p.error == 0 {
            p.error = error;
        }
        p.children -= 1;
        if p.children == 0 {
            let e = p.error;
            self.io_deliver(parent, e);
        }
    }
    fn retire_child(&self, mut child: NullBio) -> NullBio {
        let c = child.rec_mut();
        let pptr = std::mem::replace(&mut c.parent, std::ptr::null_mut());
        match NonNull::new(pptr) {
            Some(p) => {
                let mut parent = NullBio(p);
                parent.rec_mut().children -= 1;
                parent
            }
            // Never: a child always has a parent here.
            None => child,
        }
    }

    fn post_event<F: FnOnce(&Self) + Send + 'static>(&self, f: F) -> Result<(), Errno> {
        self.events.lock().map_err(|_| ENOMEM)?.push(Box::new(f));
        Ok(())
    }
    fn new_wait_queue(&self, _name: &'static str) -> Result<NullWq, Errno> {
        Ok(NullWq::default())
    }
    fn start_worker(&self, _w: Arc<Worker<Self>>) -> Result<(), Errno> {
        // No bio fails here: the worker never has anything to do.
        Ok(())
    }
    fn join_worker(&self, _w: &Arc<Worker<Self>>) {}
}

/// What to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Pass,
    Ap,
    Aa,
    Ar,
    /// FreeBSD's design ([`stock`]): a device mutex in start and done.
    StockAp,
    StockAa,
}

impl Variant {
    pub const ALL: [Variant; 6] = [
        Variant::Pass,
        Variant::Ap,
        Variant::Aa,
        Variant::Ar,
        Variant::StockAp,
        Variant::StockAa,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Variant::Pass => "pass-through (1 path)",
            Variant::Ap => "multipath A/P (2 paths)",
            Variant::Aa => "multipath A/A (2 paths)",
            Variant::Ar => "multipath A/R (2 paths)",
            Variant::StockAp => "FreeBSD's design A/P",
            Variant::StockAa => "FreeBSD's design A/A",
        }
    }
    /// Ours (the core's class), not the baseline nor the model.
    fn is_ours(self) -> bool {
        matches!(self, Variant::Ap | Variant::Aa | Variant::Ar)
    }
}

/// PASS's start: clone the bio and send the clone to its one consumer.
pub fn pass_start(plat: &NullPlat, bp: NullBio) {
    match plat.clone_bio(bp) {
        Ok(child) => plat.io_request(child, 1),
        Err(parent) => plat.io_deliver(parent, ENOMEM),
    }
}

/// A device of `v` on `plat`: for multipath, `gmultipath create` of
/// `mp0` over da0 and da1 in its mode (the class is returned, the softc
/// kept by the platform); for FreeBSD's design, its model's device.
pub fn build(plat: &NullPlat, v: Variant) -> Result<Option<Arc<Class<NullPlat>>>, String> {
    if !v.is_ours() {
        if v != Variant::Pass {
            let dev = StockDev::new(v == Variant::StockAa);
            plat.stock
                .set(dev)
                .map_err(|_| "platform used twice".to_string())?;
        }
        return Ok(None);
    }
    let class = Arc::new(Class::new());
    plat.topology_lock();
    let r = (|| {
        class.init(plat).map_err(|e| format!("init: {e}"))?;
        let mut req = SimCtlReq::new();
        req.add_u32("version", geom_multipath_rs::metadata::VERSION)
            .add_int("nargs", 3)
            .add_str("arg0", "mp0")
            .add_str("arg1", "da0")
            .add_str("arg2", "da1")
            .add_int("active_active", i32::from(v == Variant::Aa))
            .add_int("active_read", i32::from(v == Variant::Ar));
        class.ctlreq(plat, &mut req, "create");
        if let Some(e) = req.error_text() {
            return Err(format!("create: {e}"));
        }
        let sc = class
            .find_geom(plat, "mp0")
            .ok_or("create made no device mp0")?;
        plat.softc
            .set(sc)
            .map_err(|_| "platform used twice".to_string())?;
        Ok(())
    })();
    plat.topology_unlock();
    r.map(|()| Some(class))
}

/// Sends `bios` bios to the device from the calling thread, as CPU
/// `cpu`, half reads and half writes; returns the thread's CPU seconds
/// (None where that clock is unknown), or an error when a bio was not
/// completed exactly once or failed.
pub fn issue(plat: &NullPlat, cpu: usize, bios: u64) -> Result<Option<f64>, String> {
    CPU.with(|c| c.set(cpu));
    const RING: usize = 64;
    let mut pool: Vec<Pair> = (0..RING)
        .map(|_| Pair {
            parent: Rec::new(),
            child: Rec::new(),
        })
        .collect();
    for p in &mut pool {
        p.parent.child = &mut p.child;
    }
    let sc = plat.softc.get();
    let stock = plat.stock.get();
    let c0 = thread_cpu_seconds();
    let mut bad = 0u64;
    for i in 0..bios {
        let pair = &mut pool[(i as usize) % RING];
        let r = &mut pair.parent;
        r.cmd = if i & 1 == 0 {
            BioCmd::Read
        } else {
            BioCmd::Write
        };
        r.offset = (i % 1024) * 4096;
        r.length = 4096;
        r.error = 0;
        r.delivered = 0;
        let bp = NullBio(NonNull::from(&mut *r));
        match (sc, stock) {
            (Some(sc), _) => sc.start(plat, bp),
            (None, Some(st)) => st.start(plat, bp),
            (None, None) => pass_start(plat, bp),
        }
        let r = &pair.parent;
        bad += u64::from(r.delivered != 1 || r.error != 0 || r.children != 0);
    }
    let cpu_s = match (c0, thread_cpu_seconds()) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    if bad != 0 {
        return Err(format!(
            "{bad} of {bios} bios not completed exactly once without error"
        ));
    }
    Ok(cpu_s)
}

/// One run: wall seconds, CPU seconds of the issuing threads, bios.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    pub wall: f64,
    pub cpu: Option<f64>,
    pub bios: u64,
}

impl Run {
    /// Nanoseconds of CPU per bio (wall time per bio per thread when the
    /// CPU clock is unknown).
    pub fn ns_per_bio(&self, threads: usize) -> f64 {
        let t = self.cpu.unwrap_or(self.wall * threads as f64);
        t * 1e9 / self.bios.max(1) as f64
    }
    /// Bios per wall-clock second.
    pub fn rate(&self) -> f64 {
        self.bios as f64 / self.wall.max(1e-12)
    }
}

/// Measures `v` on `threads` threads issuing `bios` bios each at once.
pub fn measure(v: Variant, threads: usize, bios: u64) -> Result<Run, String> {
    let plat = NullPlat::new();
    let class = build(&plat, v)?;
    let barrier = Barrier::new(threads + 1);
    let (wall, cpus) = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|cpu| {
                let (plat, barrier) = (&plat, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    issue(plat, cpu, bios)
                })
            })
            .collect();
        barrier.wait();
        let t0 = Instant::now();
        let cpus: Vec<_> = hs
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("an issuer panicked".into()))
            })
            .collect();
        (t0.elapsed().as_secs_f64(), cpus)
    });
    // Every in-flight count a bio took was given back.
    let left = plat.stock.get().map_or(0, StockDev::inflight)
        + plat.softc.get().map_or(0, |sc| {
            (0..geom_multipath_rs::path::MAX_PATHS)
                .map(|i| sc.paths().inflight(i) as usize)
                .sum()
        });
    if left != 0 {
        return Err(format!("{}: {left} bios still counted in flight", v.name()));
    }
    let mut cpu = Some(0.0);
    for c in cpus {
        cpu = match (cpu, c?) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
    }
    drop(class);
    Ok(Run {
        wall,
        cpu,
        bios: bios * threads as u64,
    })
}

/// What `mpsim bench --class` runs.
#[derive(Clone, Copy, Debug)]
pub struct ClassBenchConfig {
    pub rounds: usize,
    pub warmup: usize,
    /// Bios per issuing thread per run.
    pub bios: u64,
    pub order_seed: u64,
}

/// Memory per device and per path, from the types' sizes and the table's
/// own heap figure: (per device, per path, text).
pub fn memory() -> (usize, usize, String) {
    let plat = NullPlat::new();
    let dev = match build(&plat, Variant::Ap) {
        Ok(Some(class)) => {
            plat.topology_lock();
            let sc = class.find_geom(&plat, "mp0");
            plat.topology_unlock();
            sc
        }
        _ => None,
    };
    let Some(sc) = dev else {
        return (0, 0, "  memory: could not build a device\n".into());
    };
    // The Arc's two counts, the softc, its strings, and the table.
    let softc = 2 * std::mem::size_of::<usize>() + std::mem::size_of::<Softc<NullPlat>>();
    let strings = sc.name().len() + sc.uuid().len();
    let table = PathTable::TABLE_BYTES;
    let per_device = softc + strings + table;
    // A slot, and its name (Arc<str>: two counts and the bytes).
    let name = 2 * std::mem::size_of::<usize>() + "da0".len();
    let per_path = PathTable::SLOT_BYTES + name;
    let paths = sc.paths().heap_bytes() - table;
    let text = format!(
        "\n  memory: per device {per_device} bytes (Arc+Softc {softc}, name and uuid {strings}, \
         path table {table}), per path {per_path} bytes (slot {}, name {name}); \
         paths past the first {} share {} bytes of counters once\n  \
         (this device: table and slots on the heap {} bytes, {paths} of them for its 2 paths)\n",
        PathTable::SLOT_BYTES,
        PathTable::INLINE_PATHS,
        PathTable::MORE_BYTES,
        sc.paths().heap_bytes(),
    );
    (per_device, per_path, text)
}

/// The report.
pub fn run(cfg: &ClassBenchConfig) -> Result<String, String> {
    let threads = [1usize, 2];
    let nv = Variant::ALL.len();
    // runs[threads][variant][round]
    let mut runs: Vec<Vec<Vec<Run>>> = vec![vec![Vec::new(); nv]; threads.len()];
    let mut rng = Rng::new(cfg.order_seed);
    let started = Instant::now();
    for round in 0..cfg.warmup + cfg.rounds {
        let mut order: Vec<(usize, usize)> = (0..threads.len())
            .flat_map(|t| (0..nv).map(move |v| (t, v)))
            .collect();
        for i in (1..order.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        for (t, v) in order {
            let r = measure(Variant::ALL[v], threads[t], cfg.bios)?;
            if round >= cfg.warmup {
                runs[t][v].push(r);
            }
        }
    }
    let cpu_known = runs.iter().flatten().flatten().all(|r| r.cpu.is_some());
    let mut out = format!(
        "mpsim bench-class: {} rounds after {} warm-up rounds, {} bios a thread a run, \
         {:.0} s; order seed {}\n  \
         the class's start and done on a platform that costs nearly nothing (child record \
         embedded in the parent, completed inline on the issuing thread, no rule checks);\n  \
         half reads, half writes; {}\n",
        cfg.rounds,
        cfg.warmup,
        cfg.bios,
        started.elapsed().as_secs_f64(),
        cfg.order_seed,
        if cpu_known {
            "ns/bio is the issuing threads' CPU time per bio"
        } else {
            "ns/bio is wall time per bio per thread (no CPU clock here)"
        }
    );
    for (t, &n) in threads.iter().enumerate() {
        out.push_str(&format!(
            "\n  {n} thread{} issuing at once:\n  {:<26} {:>9} {:>13} {:>11}   ratio to pass-through \
             (per round: median, 95% CI, IQR, range)\n",
            if n == 1 { "" } else { "s" },
            "",
            "ns/bio",
            "ns/bio IQR",
            "Mbios/s"
        ));
        for (v, var) in Variant::ALL.iter().enumerate() {
            let ns: Vec<f64> = runs[t][v].iter().map(|r| r.ns_per_bio(n)).collect();
            let rate: Vec<f64> = runs[t][v].iter().map(|r| r.rate() / 1e6).collect();
            let ratio = if v == 0 {
                "1 (the baseline)".to_string()
            } else {
                let r: Vec<f64> = runs[t][v]
                    .iter()
                    .zip(&runs[t][0])
                    .map(|(m, p)| m.ns_per_bio(n) / p.ns_per_bio(n).max(1e-12))
                    .collect();
                show(&Spread::of(&r))
            };
            out.push_str(&format!(
                "  {:<26} {:>9.1} {:>6.1}-{:<6.1} {:>11.2}   {ratio}\n",
                var.name(),
                quantile(&ns, 0.5),
                quantile(&ns, 0.25),
                quantile(&ns, 0.75),
                quantile(&rate, 0.5),
            ));
        }
    }
    out.push_str(
        "\n  2 threads' throughput over 1 thread's (wall clock, per round: median, 95% CI, IQR, range)\n",
    );
    for (v, var) in Variant::ALL.iter().enumerate() {
        let s: Vec<f64> = runs[1][v]
            .iter()
            .zip(&runs[0][v])
            .map(|(two, one)| two.rate() / one.rate().max(1e-12))
            .collect();
        out.push_str(&format!("  {:<26} {}\n", var.name(), show(&Spread::of(&s))));
    }
    out.push_str(
        "\n  CPU time per bio on 2 threads over 1 thread's (per round; above 1 when the \
         threads write shared cache lines, and only when they really ran on two cores at once)\n",
    );
    for (v, var) in Variant::ALL.iter().enumerate() {
        let s: Vec<f64> = runs[1][v]
            .iter()
            .zip(&runs[0][v])
            .map(|(two, one)| two.ns_per_bio(2) / one.ns_per_bio(1).max(1e-12))
            .collect();
        out.push_str(&format!("  {:<26} {}\n", var.name(), show(&Spread::of(&s))));
    }
    out.push_str(&memory().2);
    Ok(out)
}

fn show(s: &Spread) -> String {
    let ci = if s.n < 6 {
        "CI n/a".to_string()
    } else {
        format!("CI {:.3}-{:.3}", s.ci_low, s.ci_high)
    };
    format!(
        "{:.3}  {ci}  IQR {:.3}-{:.3}  range {:.3}-{:.3}",
        s.median, s.q1, s.q3, s.min, s.max
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bench's platform completes every bio exactly once, on every
    /// variant and with two threads at once (`issue` checks each bio).
    #[test]
    fn every_bio_is_completed_exactly_once() {
        for v in Variant::ALL {
            for threads in [1, 2] {
                let r = measure(v, threads, 5_000).expect("a clean run");
                assert_eq!(r.bios, 5_000 * threads as u64);
            }
        }
    }

    /// Bios reach the paths as the mode says, and every in-flight
    /// reference is given back.
    #[test]
    fn modes_use_their_paths_and_give_every_reference_back() {
        for v in [Variant::Ap, Variant::Aa, Variant::Ar] {
            let plat = NullPlat::new();
            let class = build(&plat, v).expect("a device").expect("multipath");
            let sc = plat.softc.get().expect("the device").clone();
            // Send bios with one held back (a child not completed) to see
            // where they go: count the path each child is sent to.
            let mut seen = [0u32; 2];
            for i in 0..8u64 {
                let mut pair = Box::new(Pair {
                    parent: Rec::new(),
                    child: Rec::new(),
                });
                pair.parent.child = &mut pair.child;
                pair.parent.cmd = if i % 2 == 0 {
                    BioCmd::Read
                } else {
                    BioCmd::Write
                };
                sc.start(&plat, NullBio(NonNull::from(&mut pair.parent)));
                assert_eq!(pair.parent.delivered, 1);
                let slot = geom_multipath_rs::path::Cookie::decode(pair.child.cookie).slot;
                seen[slot] += 1;
            }
            match v {
                Variant::Ap => assert!(seen.contains(&8), "one path only: {seen:?}"),
                Variant::Aa => assert_eq!(seen, [4, 4], "turns"),
                _ => assert_eq!(seen.iter().min(), Some(&2), "reads spread: {seen:?}"),
            }
            assert_eq!(sc.paths().inflight(0) + sc.paths().inflight(1), 0);
            plat.run_events();
            drop(class);
        }
    }

    /// The model of FreeBSD's design sends active/active bios to its two
    /// paths in turns, active/passive ones to the active path, and
    /// uncounts every bio it counted.
    #[test]
    fn stock_model_chooses_as_freebsd_and_uncounts() {
        for (v, want) in [(Variant::StockAa, [4, 4]), (Variant::StockAp, [8, 0])] {
            let plat = NullPlat::new();
            build(&plat, v).expect("a device");
            let st = plat.stock.get().expect("the model");
            let mut seen = [0u32; 2];
            for _ in 0..8 {
                let mut pair = Box::new(Pair {
                    parent: Rec::new(),
                    child: Rec::new(),
                });
                pair.parent.child = &mut pair.child;
                st.start(&plat, NullBio(NonNull::from(&mut pair.parent)));
                assert_eq!(pair.parent.delivered, 1);
                seen[pair.child.cookie] += 1;
            }
            assert_eq!(seen, want, "{v:?}");
            assert_eq!(st.inflight(), 0);
        }
    }

    /// Issue 12's memory bounds: at most 1 KiB a device plus 256 bytes a
    /// path, for this platform's softc and the simulator's.
    #[test]
    fn memory_per_device_and_path_within_bounds() {
        let (dev, path, text) = memory();
        assert!(dev > 0 && dev <= 1024, "{text}");
        assert!(path <= 256, "{text}");
        let sim_softc = 2 * std::mem::size_of::<usize>()
            + std::mem::size_of::<Softc<crate::sim::SimPlatform>>();
        assert!(
            sim_softc + PathTable::TABLE_BYTES + 64 <= 1024,
            "{sim_softc}"
        );
    }
}
