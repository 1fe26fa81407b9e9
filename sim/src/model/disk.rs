//! Disks with several paths: one LUN (a backing store) reachable through N
//! providers ("da0", "da1" for LUN 0), each path with its own completion
//! thread and fault controls. A path can die (its provider is withered and
//! in-flight I/O completes with ENXIO) and come back (a new provider of the
//! same name appears and is tasted).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use geom_multipath_rs::platform::{BioCmd, Errno, EFAULT, EIO, ENXIO, EOPNOTSUPP};

use crate::bio::Bio;
use crate::class::{ConfNode, Dumpconf, SimClass};
use crate::fault::Faults;
use crate::ids::{ConsumerId, GeomId, ProviderId};
use crate::sched::{Ctx, Queue, TID_DISK_BASE};
use crate::sim::SimPlatform;
use crate::store::{FileStore, MemStore, Store};
use crate::topology::Direct;
use crate::util::lock;

/// Where a LUN keeps its bytes.
#[derive(Clone, Debug, Default)]
pub enum StoreKind {
    /// Sparse memory.
    #[default]
    Memory,
    /// A sparse file at this path (created, and removed at the end).
    SparseFile(PathBuf),
}

/// A LUN and its paths.
#[derive(Clone, Debug)]
pub struct LunConfig {
    /// One provider name per path ("da0", "da1"; or "md0", "md1").
    pub paths: Vec<String>,
    pub mediasize: u64,
    pub sectorsize: u32,
    /// The LUN's physical alignment as its providers report it
    /// (`stripesize`, `stripeoffset`): 4096 and 0 for a 512e disk.
    pub stripesize: u64,
    pub stripeoffset: u64,
    /// Whether the paths' providers take unmapped bios
    /// (`G_PF_ACCEPT_UNMAPPED`, as da(4) and md(4) do). Per path it can be
    /// changed with [`PathHandle::set_accepts_unmapped`] (an HBA without it).
    pub unmapped: bool,
    pub store: StoreKind,
}

impl LunConfig {
    /// A memory LUN of `mediasize` bytes, 512-byte sectors, no stripe,
    /// taking unmapped I/O, with paths named `names`.
    pub fn new(names: &[&str], mediasize: u64) -> LunConfig {
        LunConfig {
            paths: names.iter().map(|s| s.to_string()).collect(),
            mediasize,
            sectorsize: 512,
            stripesize: 0,
            stripeoffset: 0,
            unmapped: true,
            store: StoreKind::Memory,
        }
    }
}

/// Per-path counters.
#[derive(Debug, Default)]
pub struct PathStats {
    pub started: AtomicU64,
    pub completed: AtomicU64,
    pub failed: AtomicU64,
    pub bytes: AtomicU64,
}

/// A snapshot of [`PathStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathCounts {
    pub started: u64,
    pub completed: u64,
    pub failed: u64,
    pub bytes: u64,
}

pub(crate) struct PathState {
    pub name: String,
    pub queue: Arc<Queue>,
    pub faults: Mutex<Faults>,
    pub stats: PathStats,
    pub dead: AtomicBool,
    /// Bumped on death: completions of an older generation get ENXIO.
    pub generation: AtomicU64,
    pub geom: Mutex<Option<GeomId>>,
    pub provider: Mutex<Option<ProviderId>>,
    /// String attributes the path answers BIO_GETATTR for, by name
    /// ("GEOM::physpath" as `gnop -z` sets it); others get EOPNOTSUPP.
    pub attrs: Mutex<BTreeMap<String, String>>,
    /// The size its provider reports (the LUN's, until the path is resized).
    pub mediasize: AtomicU64,
    /// (stripesize, stripeoffset) its provider reports.
    pub stripe: Mutex<(u64, u64)>,
    /// Its provider has `G_PF_ACCEPT_UNMAPPED`.
    pub unmapped: AtomicBool,
}

/// The attribute `diskinfo -p` reads: where the device sits physically.
pub const PHYSPATH: &str = "GEOM::physpath";

pub(crate) struct LunState {
    pub store: Arc<dyn Store>,
    pub mediasize: u64,
    pub sectorsize: u32,
    pub paths: Vec<Arc<PathState>>,
}

/// The disk drivers' class (`da`, `md`): a geom and a provider per path.
pub(crate) struct DiskClass;

struct DiskSoftc {
    path: Arc<PathState>,
    store: Arc<dyn Store>,
    generation: u64,
}

impl SimClass for DiskClass {
    fn name(&self) -> &str {
        "DISK"
    }

    fn start(&self, plat: &SimPlatform, gp: GeomId, bp: Bio) {
        plat.start_with_softc(gp, bp, |sc: Arc<DiskSoftc>, bp| {
            let path = sc.path.clone();
            path.stats.started.fetch_add(1, Ordering::Relaxed);
            let cmd = plat.bio_cmd_of(&bp);
            let (err, delay) = {
                let mut f = lock(&path.faults);
                let mut rng = lock(&plat.sh.rng);
                let e = f.decide(cmd, &mut rng);
                (e, f.delay_ns(&mut rng))
            };
            let due = plat.now_ns() + delay;
            let me = plat.clone();
            // The bio now lives on the path's completion queue ("the HBA").
            plat.sh.sched.post_at(
                &path.queue,
                due,
                Box::new(move || me.disk_complete(&sc, bp, err)),
            );
        });
    }

    fn orphan(&self, _plat: &SimPlatform, _cp: ConsumerId) {}

    fn dumpconf(&self, plat: &SimPlatform, d: &mut Dumpconf<'_>) {
        if let ConfNode::Provider(_) = d.node {
            if let Some(sc) = plat.geom_softc::<DiskSoftc>(d.gp) {
                d.line("path", &sc.path.name);
            }
        }
    }
}

impl SimPlatform {
    fn disk_complete(&self, sc: &DiskSoftc, mut bp: Bio, err: Errno) {
        let path = &sc.path;
        let dead = path.dead.load(Ordering::Acquire)
            || path.generation.load(Ordering::Acquire) != sc.generation;
        let err = if dead { ENXIO } else { err };
        if err != 0 {
            path.stats.failed.fetch_add(1, Ordering::Relaxed);
            self.sh.path_errors.fetch_add(1, Ordering::Relaxed);
            return self.g_io_deliver(bp, err);
        }
        let cmd = self.bio_cmd_of(&bp);
        let offset = self.bio_offset_of(&bp);
        let length = self.bio_length_of(&bp);
        let res = match cmd {
            BioCmd::Read => match self.bio_data(&bp) {
                Some(d) => {
                    let mut d = lock(&d);
                    let n = (length as usize).min(d.len());
                    sc.store.read(offset, &mut d[..n]).map_err(|_| EIO)
                }
                None => Err(EIO),
            },
            BioCmd::Write => match self.bio_data(&bp) {
                Some(d) => {
                    let d = lock(&d);
                    let n = (length as usize).min(d.len());
                    sc.store.write(offset, &d[..n]).map_err(|_| EIO)
                }
                None => Err(EIO),
            },
            BioCmd::Delete => sc.store.zero(offset, length).map_err(|_| EIO),
            BioCmd::Flush => Ok(()),
            BioCmd::GetAttr => self.disk_getattr(path, &bp),
            BioCmd::Other => Err(EOPNOTSUPP),
        };
        match res {
            Ok(()) => {
                path.stats.completed.fetch_add(1, Ordering::Relaxed);
                path.stats.bytes.fetch_add(length, Ordering::Relaxed);
                self.set_bio_completed(&mut bp, length);
                self.g_io_deliver(bp, 0);
            }
            Err(e) => {
                path.stats.failed.fetch_add(1, Ordering::Relaxed);
                self.g_io_deliver(bp, e);
            }
        }
    }

    /// BIO_GETATTR on a path, as `g_handleattr_str` answers it: the string
    /// and its NUL, zero-filled to `bio_length` (all of which counts as
    /// completed), or EFAULT when it does not fit; EOPNOTSUPP for an
    /// attribute the path does not have.
    fn disk_getattr(&self, path: &PathState, bp: &Bio) -> Result<(), Errno> {
        let Some(name) = self.bio_attribute_of(bp) else {
            return Err(EOPNOTSUPP);
        };
        let Some(value) = lock(&path.attrs).get(&*name).cloned() else {
            return Err(EOPNOTSUPP);
        };
        let data = self.bio_data(bp).ok_or(EFAULT)?;
        let mut d = lock(&data);
        let n = (self.bio_length_of(bp) as usize).min(d.len());
        if value.len() >= n {
            return Err(EFAULT);
        }
        d[..n].fill(0);
        d[..value.len()].copy_from_slice(value.as_bytes());
        Ok(())
    }

    /// Adds a LUN with its paths; their providers appear (and are tasted)
    /// before this returns.
    pub fn add_lun(&self, cfg: LunConfig) -> Result<Lun, String> {
        if cfg.sectorsize == 0
            || cfg.mediasize == 0
            || !cfg.mediasize.is_multiple_of(cfg.sectorsize as u64)
        {
            return Err(format!(
                "LUN size {} must be a non-zero multiple of the sector size {}",
                cfg.mediasize, cfg.sectorsize
            ));
        }
        if cfg.paths.is_empty() {
            return Err("a LUN needs at least one path".into());
        }
        for p in &cfg.paths {
            if self.g_provider_by_name(p).is_some() {
                return Err(format!("provider {p} already exists"));
            }
        }
        let store: Arc<dyn Store> = match &cfg.store {
            StoreKind::Memory => Arc::new(MemStore::new()),
            StoreKind::SparseFile(path) => Arc::new(
                FileStore::create(path, cfg.mediasize, true)
                    .map_err(|e| format!("cannot create {}: {e}", path.display()))?,
            ),
        };
        // Paths of every LUN so far: a running count, not a walk of the
        // LUNs (adding N LUNs stays linear).
        let base = self
            .sh
            .disk_paths
            .fetch_add(cfg.paths.len() as u64, Ordering::AcqRel);
        let paths: Vec<Arc<PathState>> = cfg
            .paths
            .iter()
            .enumerate()
            .map(|(i, name)| {
                Arc::new(PathState {
                    name: name.clone(),
                    queue: self.sh.sched.add_queue(
                        &format!("disk-{name}"),
                        TID_DISK_BASE + base + i as u64,
                        Ctx::Disk,
                        false,
                    ),
                    faults: Mutex::new(Faults::default()),
                    stats: PathStats::default(),
                    dead: AtomicBool::new(false),
                    generation: AtomicU64::new(0),
                    geom: Mutex::new(None),
                    provider: Mutex::new(None),
                    attrs: Mutex::new(BTreeMap::new()),
                    mediasize: AtomicU64::new(cfg.mediasize),
                    stripe: Mutex::new((cfg.stripesize, cfg.stripeoffset)),
                    unmapped: AtomicBool::new(cfg.unmapped),
                })
            })
            .collect();
        let lun = Arc::new(LunState {
            store,
            mediasize: cfg.mediasize,
            sectorsize: cfg.sectorsize,
            paths,
        });
        lock(&self.sh.luns).push(lun.clone());
        let l2 = lun.clone();
        self.g_waitfor_event(move |p| {
            for path in &l2.paths {
                p.disk_path_arrive(&l2, path);
            }
        })
        .ok_or("the event thread did not run the LUN's creation")?;
        // Let the tasting of the new providers happen before returning.
        self.run_until_idle();
        Ok(Lun {
            plat: self.clone(),
            lun,
        })
    }

    /// Creates a path's geom and provider (topology held).
    fn disk_path_arrive(&self, lun: &Arc<LunState>, path: &Arc<PathState>) {
        let Some(disk) = *lock(&self.sh.disk_class) else {
            return;
        };
        let p = self.bound(disk);
        let sc = Arc::new(DiskSoftc {
            path: path.clone(),
            store: lun.store.clone(),
            generation: path.generation.load(Ordering::Acquire),
        });
        let Ok(gp) = p.g_new_geom(&path.name, Some(sc)) else {
            return;
        };
        let mediasize = path.mediasize.load(Ordering::Acquire);
        let Ok(pp) = p.g_new_provider(gp, &path.name, mediasize, lun.sectorsize) else {
            return;
        };
        let (stripesize, stripeoffset) = *lock(&path.stripe);
        p.set_provider_stripe(pp, stripesize, stripeoffset);
        p.set_provider_accepts_unmapped(pp, path.unmapped.load(Ordering::Acquire));
        // As da(4) disks: started in the requester's thread, completed in
        // the completion thread (DISKFLAG_DIRECT_COMPLETION).
        p.set_provider_direct(pp, Direct::BOTH);
        p.g_error_provider(pp, 0);
        *lock(&path.geom) = Some(gp);
        *lock(&path.provider) = Some(pp);
    }

    /// Per-path counters of every LUN, by path name.
    pub fn path_counts(&self) -> Vec<(String, PathCounts)> {
        lock(&self.sh.luns)
            .iter()
            .flat_map(|l| l.paths.iter())
            .map(|p| {
                let s = &p.stats;
                (
                    p.name.clone(),
                    PathCounts {
                        started: s.started.load(Ordering::Relaxed),
                        completed: s.completed.load(Ordering::Relaxed),
                        failed: s.failed.load(Ordering::Relaxed),
                        bytes: s.bytes.load(Ordering::Relaxed),
                    },
                )
            })
            .collect()
    }
}

/// A LUN added to a simulator.
#[derive(Clone)]
pub struct Lun {
    plat: SimPlatform,
    lun: Arc<LunState>,
}

impl Lun {
    pub fn paths(&self) -> usize {
        self.lun.paths.len()
    }
    /// The size the LUN was created with (each path's current size:
    /// [`PathHandle::mediasize`]).
    pub fn mediasize(&self) -> u64 {
        self.lun.mediasize
    }
    /// The LUN changes size on the array and every path is re-probed
    /// ([`PathHandle::resize`] on each, dead ones included: they come back
    /// with the new size).
    pub fn resize(&self, mediasize: u64) -> Result<(), String> {
        for i in 0..self.paths() {
            if let Some(p) = self.path(i) {
                p.resize(mediasize)?;
            }
        }
        Ok(())
    }
    pub fn sectorsize(&self) -> u32 {
        self.lun.sectorsize
    }
    /// Path `i`, or None.
    pub fn path(&self, i: usize) -> Option<PathHandle> {
        self.lun.paths.get(i).map(|p| PathHandle {
            plat: self.plat.clone(),
            lun: self.lun.clone(),
            path: p.clone(),
        })
    }
    /// The path named `name`.
    pub fn path_named(&self, name: &str) -> Option<PathHandle> {
        self.lun
            .paths
            .iter()
            .position(|p| p.name == name)
            .and_then(|i| self.path(i))
    }
    /// Reads the medium directly (not through GEOM): for checking results.
    pub fn read_raw(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let mut b = vec![0; len];
        self.lun.store.read(offset, &mut b)?;
        Ok(b)
    }
    /// Writes the medium directly (not through GEOM).
    pub fn write_raw(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.lun.store.write(offset, data)
    }
}

impl SimPlatform {
    /// Every LUN's path with this provider name.
    pub fn path_by_name(&self, name: &str) -> Option<PathHandle> {
        let luns = lock(&self.sh.luns).clone();
        luns.iter().find_map(|l| {
            l.paths.iter().find(|p| p.name == name).map(|p| PathHandle {
                plat: self.clone(),
                lun: l.clone(),
                path: p.clone(),
            })
        })
    }
}

/// One path of a LUN: fault controls, death and return.
#[derive(Clone)]
pub struct PathHandle {
    plat: SimPlatform,
    lun: Arc<LunState>,
    path: Arc<PathState>,
}

impl PathHandle {
    pub fn name(&self) -> &str {
        &self.path.name
    }
    /// The path's current provider (None while dead).
    pub fn provider(&self) -> Option<ProviderId> {
        *lock(&self.path.provider)
    }
    pub fn faults(&self) -> Faults {
        lock(&self.path.faults).clone()
    }
    /// Replaces the path's fault settings.
    pub fn set_faults(&self, f: Faults) {
        *lock(&self.path.faults) = f;
    }
    /// Reads and writes fail with `errno` at `permille` / 1000.
    pub fn fail_rate(&self, errno: Errno, permille: u32) {
        let mut f = lock(&self.path.faults);
        f.errno = errno;
        f.read_fail_permille = permille;
        f.write_fail_permille = permille;
    }
    /// The next `k` bios fail with `errno`.
    pub fn fail_next(&self, k: u32, errno: Errno) {
        let mut f = lock(&self.path.faults);
        f.fail_next = k;
        f.fail_next_errno = errno;
    }
    /// Completions take `us` microseconds plus up to `jitter_us` more.
    pub fn set_latency(&self, us: u64, jitter_us: u64) {
        let mut f = lock(&self.path.faults);
        f.latency_us = us;
        f.jitter_us = jitter_us;
    }
    /// Sets the physical path the path reports for "GEOM::physpath" (what
    /// `gnop create -z PHYSPATH` does), or removes it with `None`: then
    /// the attribute gets EOPNOTSUPP, as from a disk that has none.
    pub fn set_physpath(&self, physpath: Option<&str>) {
        self.set_attribute(PHYSPATH, physpath);
    }
    /// The physical path the path reports, if any.
    pub fn physpath(&self) -> Option<String> {
        lock(&self.path.attrs).get(PHYSPATH).cloned()
    }
    /// Sets (or with `None` removes) a string attribute the path answers
    /// BIO_GETATTR for.
    pub fn set_attribute(&self, name: &str, value: Option<&str>) {
        let mut a = lock(&self.path.attrs);
        match value {
            Some(v) => a.insert(name.to_string(), v.to_string()),
            None => a.remove(name),
        };
    }
    /// Sets the stripe its provider reports: at once on the live provider
    /// (a driver's own field; classes above read it when they attach) and
    /// on every later arrival.
    pub fn set_stripe(&self, stripesize: u64, stripeoffset: u64) {
        *lock(&self.path.stripe) = (stripesize, stripeoffset);
        if let Some(pp) = self.provider() {
            self.plat.set_provider_stripe(pp, stripesize, stripeoffset);
        }
    }
    /// The stripe its provider reports.
    pub fn stripe(&self) -> (u64, u64) {
        *lock(&self.path.stripe)
    }
    /// Whether its provider takes unmapped bios (`G_PF_ACCEPT_UNMAPPED`):
    /// a path through an HBA that cannot do unmapped I/O says no. Applies at
    /// once to the live provider and to every later arrival.
    pub fn set_accepts_unmapped(&self, accept: bool) {
        self.path.unmapped.store(accept, Ordering::Release);
        if let Some(pp) = self.provider() {
            self.plat.set_provider_accepts_unmapped(pp, accept);
        }
    }
    /// Whether its provider takes unmapped bios.
    pub fn accepts_unmapped(&self) -> bool {
        self.path.unmapped.load(Ordering::Acquire)
    }
    /// The size the path's provider reports (or will, when it comes back).
    pub fn mediasize(&self) -> u64 {
        self.path.mediasize.load(Ordering::Acquire)
    }
    /// The path sees the LUN at a new size (`camcontrol reprobe` after the
    /// array grew or shrank it): the medium grows if need be, and the
    /// path's provider is resized as a driver does, through
    /// `g_resize_provider`, whose event calls the resize method of every
    /// geom attached to it. Asynchronous, like [`PathHandle::die`]. Error:
    /// a size that is zero or not a whole number of sectors, or a medium
    /// that cannot grow.
    pub fn resize(&self, mediasize: u64) -> Result<(), String> {
        let ss = u64::from(self.lun.sectorsize);
        if mediasize == 0 || !mediasize.is_multiple_of(ss) {
            return Err(format!(
                "path {}: size {mediasize} must be a non-zero multiple of the sector size {ss}",
                self.path.name
            ));
        }
        self.lun
            .store
            .grow(mediasize)
            .map_err(|e| format!("path {}: cannot grow the medium: {e}", self.path.name))?;
        self.path.mediasize.store(mediasize, Ordering::Release);
        let path = self.path.clone();
        self.plat.g_post_event(move |p| {
            let pp = *lock(&path.provider);
            if let Some(pp) = pp {
                p.g_resize_provider(pp, mediasize);
            }
        });
        Ok(())
    }
    /// Clears every fault (not death).
    pub fn heal(&self) {
        *lock(&self.path.faults) = Faults::default();
    }
    pub fn is_dead(&self) -> bool {
        self.path.dead.load(Ordering::Acquire)
    }
    pub fn counts(&self) -> PathCounts {
        let s = &self.path.stats;
        PathCounts {
            started: s.started.load(Ordering::Relaxed),
            completed: s.completed.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
        }
    }

    /// The path dies: its in-flight bios complete with ENXIO and its
    /// provider is withered (consumers are orphaned). Asynchronous: the
    /// orphaning happens on the event thread.
    pub fn die(&self) {
        if self.path.dead.swap(true, Ordering::AcqRel) {
            return;
        }
        self.path.generation.fetch_add(1, Ordering::AcqRel);
        let path = self.path.clone();
        self.plat.g_post_event(move |p| {
            let gp = lock(&path.geom).take();
            *lock(&path.provider) = None;
            if let Some(gp) = gp {
                if p.geom_exists(gp) {
                    p.g_wither_geom(gp, ENXIO);
                }
            }
        });
    }

    /// The path comes back: a new provider of the same name appears and is
    /// tasted. Asynchronous, like a device arrival.
    pub fn revive(&self) {
        if !self.path.dead.swap(false, Ordering::AcqRel) {
            return;
        }
        let (lun, path) = (self.lun.clone(), self.path.clone());
        self.plat
            .g_post_event(move |p| p.disk_path_arrive(&lun, &path));
    }
}
