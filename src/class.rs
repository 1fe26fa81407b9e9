//! The MULTIPATH class and one multipath geom's state (`Softc`).
//!
//! Topology-side work lives here: creating a geom, adding a path, faulting
//! and restoring paths, open/close, orphan, teardown and destroy. The I/O
//! side is in [`crate::io`], taste in [`crate::taste`], gctl verbs in
//! [`crate::ctl`], the XML in [`crate::dumpconf`].

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicU8, Ordering};

use crate::metadata::{Metadata, Mode, Name, Uuid};
use crate::mp_log;
use crate::path::{st, Faulted, PathTable, MAX_PATHS};
use crate::platform::{Access, Errno, Platform, EBUSY, EEXIST, EINPROGRESS, EINVAL, ENOSPC, ENXIO};
use crate::worker::Worker;

/// The class (`struct g_class` state): one per platform instance.
pub struct Class<P: Platform> {
    /// Set by init, taken by fini, cloned by create_geom: all three run with
    /// the topology lock held (GEOM calls init and fini with it; geoms are
    /// created under it), so this spin lock is never contended; it only
    /// makes the static `Class` `Sync`. It is held for an `Arc` clone or a
    /// pointer move: never across an allocation, a drop that could free, a
    /// sleep or a KPI call.
    worker: spin::Mutex<Option<Arc<Worker<P>>>>,
    /// `kern.geom.multipath.exclusive`: paths are held open r1w1e1 so
    /// nothing else can write to them behind the multipath device.
    pub exclusive: AtomicBool,
    /// `kern.geom.multipath.debug`.
    pub debug: AtomicU32,
    /// The softcs by name and uuid (`crate::taste::SoftcIndex`).
    pub(crate) index: crate::taste::SoftcIndex<P>,
}

/// One multipath geom's state (`gp->softc`).
pub struct Softc<P: Platform> {
    pub(crate) name: String,
    /// Empty for a manual (`create`) geom, the label's uuid otherwise.
    pub(crate) uuid: String,
    mode: AtomicU8,
    /// Set once, under the topology lock, by create_geom; read lock-free.
    geom: spin::Once<P::Geom>,
    /// Set by create_geom, read by taste, gctl and resize, taken by destroy:
    /// all with the topology lock held (start and done never read it), so
    /// this spin lock is never contended. It is held for a copy of a
    /// handle: never across an allocation, a sleep or a KPI call.
    provider: spin::Mutex<Option<P::Provider>>,
    /// Raw path size (label included on automatic geoms), as in the label.
    pub(crate) size: AtomicU64,
    pub(crate) sectorsize: AtomicU32,
    /// The paths, and the lock-free protocol by which I/O uses them.
    pub(crate) paths: PathTable,
    /// Sum of the access deltas granted on our provider.
    opened: AtomicI64,
    stopping: AtomicBool,
    /// Withered: nothing more to do.
    gone: AtomicBool,
    /// The device came from a label on its paths (taste), so configure and
    /// destroy keep that label up to date. A device made by the original
    /// `create NAME P0 P1 UUID` has a uuid but nothing on disk.
    labelled: AtomicBool,
    /// Paths opened r1w1e1 beyond the provider's counts.
    exclusive: bool,
    pub(crate) worker: Arc<Worker<P>>,
    /// Counters for status.
    pub(crate) failovers: AtomicU64,
    pub(crate) retries: AtomicU64,
}

/// Why a destroy is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DestroyHow {
    /// `stop`, `destroy`, class unload: refused while the device is open.
    Polite,
    /// The last path is gone: the provider is withered even if open and the
    /// geom goes at the last close.
    Forced,
}

impl<P: Platform> Default for Class<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Platform> Class<P> {
    pub const fn new() -> Self {
        Class {
            worker: spin::Mutex::new(None),
            exclusive: AtomicBool::new(true),
            debug: AtomicU32::new(0),
            index: crate::taste::SoftcIndex::new(),
        }
    }

    /// `g_init_t`: starts the failover worker.
    pub fn init(&self, plat: &P) -> Result<(), Errno> {
        let w = Arc::new(Worker::new(plat)?);
        plat.start_worker(w.clone())?;
        let old = self.worker.lock().replace(w);
        // Dropped outside the lock (init runs once: there is none).
        drop(old);
        Ok(())
    }

    /// `g_fini_t`: stops the worker once it has drained its queue.
    ///
    /// GEOM calls this with the topology lock held, and the worker takes
    /// that lock for each failed bio, so the queue must be empty here. It
    /// is: unload refuses while any device is open and destroys every geom
    /// first, and a device is only closed once all its bios, retries
    /// included, have completed.
    pub fn fini(&self, plat: &P) {
        // Every geom is gone by now: the index's weak references go too.
        self.index.clear(plat);
        let w = self.worker.lock().take();
        if let Some(w) = w {
            w.request_stop();
            plat.join_worker(&w);
        }
    }

    pub fn worker(&self) -> Option<Arc<Worker<P>>> {
        self.worker.lock().clone()
    }

    /// `g_ctl_destroy_geom_t` (topology held): used by class unload.
    pub fn destroy_geom(&self, plat: &P, gp: P::Geom) -> Result<(), Errno> {
        match plat.geom_softc(gp) {
            Some(sc) => sc.destroy(plat, DestroyHow::Polite),
            None => Err(ENXIO),
        }
    }

    /// A live geom by exact name (stopping geoms are invisible).
    /// Topology held; looked up in the class's index, not by a walk.
    pub fn find_geom(&self, plat: &P, name: &str) -> Option<Arc<Softc<P>>> {
        self.index.live_by_name(plat, name)
    }

    /// Softcs of live (not stopping) geoms, in the class list order.
    pub fn live_softcs(&self, plat: &P) -> Vec<Arc<Softc<P>>> {
        plat.class_geoms()
            .into_iter()
            .filter_map(|gp| plat.geom_softc(gp))
            .filter(|sc| !sc.is_stopping())
            .collect()
    }

    /// Creates a geom and its (not yet announced) provider.
    /// `provider_size` is what `multipath/NAME` exposes.
    pub(crate) fn create_geom(
        &self,
        plat: &P,
        name: &str,
        uuid: &str,
        mode: Mode,
        raw_size: u64,
        sectorsize: u32,
    ) -> Result<Arc<Softc<P>>, Errno> {
        plat.topology_assert();
        // Geoms without a softc and stopping ones are skipped, as in
        // FreeBSD: a device going away does not keep its name.
        if self.find_geom(plat, name).is_some() {
            mp_log!(plat, "name {} already exists", name);
            return Err(EEXIST);
        }
        let worker = self.worker().ok_or(ENXIO)?;
        let sc = Arc::new(Softc::new(
            name,
            uuid,
            mode,
            raw_size,
            sectorsize,
            self.exclusive.load(Ordering::Relaxed),
            worker,
        ));
        let gp = plat.new_geom(name, Some(sc.clone()))?;
        sc.geom.call_once(|| gp);
        let mut pname = String::from("multipath/");
        pname.push_str(name);
        match plat.new_provider(gp, &pname, sc.provider_size(), sectorsize) {
            Ok(pp) => {
                plat.set_provider_direct(pp);
                *sc.provider.lock() = Some(pp);
                self.index.insert(plat, &sc);
            }
            Err(e) => {
                plat.wither_geom(gp, ENXIO);
                return Err(e);
            }
        }
        mp_log!(plat, "{} created", name);
        Ok(sc)
    }
}

impl<P: Platform> Softc<P> {
    fn new(
        name: &str,
        uuid: &str,
        mode: Mode,
        size: u64,
        sectorsize: u32,
        exclusive: bool,
        worker: Arc<Worker<P>>,
    ) -> Self {
        Softc {
            name: String::from(name),
            uuid: String::from(uuid),
            mode: AtomicU8::new(mode.as_byte()),
            geom: spin::Once::new(),
            provider: spin::Mutex::new(None),
            size: AtomicU64::new(size),
            sectorsize: AtomicU32::new(sectorsize),
            paths: PathTable::new(),
            opened: AtomicI64::new(0),
            stopping: AtomicBool::new(false),
            gone: AtomicBool::new(false),
            labelled: AtomicBool::new(false),
            exclusive,
            worker,
            failovers: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn uuid(&self) -> &str {
        &self.uuid
    }
    /// Has a uuid (labelled, or the original create form): the provider
    /// hides the last sector of the paths.
    pub fn is_automatic(&self) -> bool {
        !self.uuid.is_empty()
    }
    /// Its paths carry our label on disk.
    pub fn is_labelled(&self) -> bool {
        self.labelled.load(Ordering::Relaxed)
    }
    pub(crate) fn mark_labelled(&self) {
        self.labelled.store(true, Ordering::Relaxed);
    }
    pub fn mode(&self) -> Mode {
        Mode::from_byte(self.mode.load(Ordering::Relaxed)).unwrap_or(Mode::ActivePassive)
    }
    pub(crate) fn set_mode(&self, m: Mode) {
        self.mode.store(m.as_byte(), Ordering::Relaxed);
    }
    pub fn geom(&self) -> Option<P::Geom> {
        self.geom.get().copied()
    }
    pub fn provider(&self) -> Option<P::Provider> {
        *self.provider.lock()
    }
    pub fn sectorsize(&self) -> u32 {
        self.sectorsize.load(Ordering::Relaxed)
    }
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
    pub fn failovers(&self) -> u64 {
        self.failovers.load(Ordering::Relaxed)
    }
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
    /// What `multipath/NAME` exposes: the label sector is hidden.
    pub(crate) fn provider_size(&self) -> u64 {
        let size = self.size.load(Ordering::Relaxed);
        if self.is_automatic() {
            size.saturating_sub(u64::from(self.sectorsize.load(Ordering::Relaxed)))
        } else {
            size
        }
    }

    /// The last sector of a path holding this device's label: for a path
    /// of `size` bytes in `sectorsize`-byte sectors, in `mode`. EINVAL when
    /// the device has no uuid or the geometry cannot carry a label.
    pub(crate) fn label_sector(
        &self,
        size: u64,
        sectorsize: u32,
        mode: Mode,
    ) -> Result<Vec<u8>, Errno> {
        let md = Metadata::new(
            Name::new(&self.name).map_err(|_| EINVAL)?,
            Uuid::from_label(&self.uuid).map_err(|_| EINVAL)?,
            sectorsize,
            size,
            mode,
        )
        .map_err(|_| EINVAL)?;
        let len = usize::try_from(sectorsize).map_err(|_| EINVAL)?;
        let mut sector = vec![0u8; len];
        md.encode_sector(&mut sector).map_err(|_| EINVAL)?;
        Ok(sector)
    }

    /// The slot holding consumer `cp`.
    pub(crate) fn slot_of(&self, cp: P::Consumer) -> Option<usize> {
        self.paths.find_consumer(P::consumer_to_raw(cp))
    }

    pub(crate) fn consumer(&self, slot: usize) -> P::Consumer {
        P::consumer_from_raw(self.paths.consumer_raw(slot))
    }

    /// Whether one of the paths is attached to `pp`.
    pub(crate) fn has_path_to(&self, plat: &P, pp: P::Provider) -> bool {
        self.paths
            .newest_first()
            .into_iter()
            .any(|i| plat.consumer_provider(self.consumer(i)) == Some(pp))
    }

    /// The paths, read-only: state, names, counts.
    pub fn paths(&self) -> &PathTable {
        &self.paths
    }

    /// Logs a newly chosen active path, as FreeBSD does outside A/A.
    fn announce_active(&self, plat: &P, slot: Option<usize>) {
        if let Some(s) = slot {
            if self.mode() != Mode::ActiveActive {
                mp_log!(
                    plat,
                    "{} is now active path in {}",
                    self.paths.name(s),
                    self.name
                );
            }
        }
    }

    /// Adds `pp` as a path (topology held; `g_multipath_add_disk`).
    pub(crate) fn add_disk(&self, plat: &P, pp: P::Provider) -> Result<(), Errno> {
        plat.topology_assert();
        let gp = self.geom().ok_or(ENXIO)?;
        let pname = plat.provider_name(pp);
        if self.has_path_to(plat, pp) {
            mp_log!(plat, "provider {} already attached to {}", pname, self.name);
            return Err(EEXIST);
        }
        let slot = self.paths.free_slot().ok_or_else(|| {
            mp_log!(
                plat,
                "cannot add {} to {}: {} paths is the limit",
                pname,
                self.name,
                MAX_PATHS
            );
            ENOSPC
        })?;
        let cp = plat.new_consumer(gp)?;
        plat.set_consumer_direct(cp);
        if let Err(e) = plat.attach(cp, pp) {
            mp_log!(plat, "cannot attach {} to {} ({})", pname, self.name, e);
            plat.destroy_consumer(cp);
            return Err(e);
        }
        // Match the provider's current opens, plus the exclusive hold.
        let mut want = self
            .provider()
            .map(|p| plat.provider_access(p))
            .unwrap_or(Access::NONE);
        if self.exclusive {
            want = Access::new(want.r + 1, want.w + 1, want.e + 1);
        }
        if want.is_open() {
            if let Err(e) = plat.access(cp, want) {
                mp_log!(
                    plat,
                    "cannot set access in attaching {} to {} ({})",
                    pname,
                    self.name,
                    e
                );
                plat.detach(cp);
                plat.destroy_consumer(cp);
                return Err(e);
            }
        }
        self.paths.occupy(slot, P::consumer_to_raw(cp), &pname);
        // Provider properties before the path carries I/O: the first path
        // that has a stripe gives it (a 512e disk shows 4 KiB physical
        // sectors to ZFS through us), and the unmapped flag must be gone
        // before a path that cannot take unmapped bios is chosen.
        if let Some(mpp) = self.provider() {
            if plat.provider_stripe(mpp) == (0, 0) {
                let (size, offset) = plat.provider_stripe(pp);
                if (size, offset) != (0, 0) {
                    plat.set_provider_stripe(mpp, size, offset);
                }
            }
        }
        self.update_unmapped(plat);
        let activated = self.paths.publish(slot);
        mp_log!(plat, "{} added to {}", pname, self.name);
        if activated {
            self.announce_active(plat, Some(slot));
        }
        Ok(())
    }

    /// `G_PF_ACCEPT_UNMAPPED` on our provider, recomputed whenever a path
    /// comes or goes (topology held): set only when every path that may
    /// still carry I/O (attached and not LOST; FAIL ones can be restored)
    /// takes unmapped bios. FreeBSD ORs the paths' flags instead, so an
    /// unmapped bio can be sent down a path that cannot take one; GEOM then
    /// maps it into scarce transient KVA on the way (`g_io_check`), which
    /// can stall. Upper layers read the flag when they build a bio, so one
    /// built just before a path without it is added may still arrive
    /// unmapped; GEOM's mapping covers that window.
    fn update_unmapped(&self, plat: &P) {
        let Some(mpp) = self.provider() else { return };
        let mut any = false;
        let mut all = true;
        for i in self.paths.newest_first() {
            if self.paths.has(i, st::LOST) {
                continue;
            }
            if let Some(pp) = plat.consumer_provider(self.consumer(i)) {
                any = true;
                all &= plat.provider_accepts_unmapped(pp);
            }
        }
        let want = any && all;
        if plat.provider_accepts_unmapped(mpp) != want {
            plat.set_provider_unmapped(mpp, want);
        }
    }

    /// Marks a path FAIL (`cause`; topology held; `g_multipath_fault`):
    /// see [`PathTable::fault`].
    pub(crate) fn fault(&self, plat: &P, slot: usize, cause: u32) {
        plat.topology_assert();
        let f = self.paths.fault(slot, cause);
        self.report_fault(plat, slot, f);
    }

    /// Logs what a fault did, and counts a failover.
    fn report_fault(&self, plat: &P, slot: usize, f: Faulted) {
        let restored = f.restored.iter().chain(f.kept.then_some(&slot));
        for &i in restored {
            mp_log!(
                plat,
                "all paths in {} were marked FAIL, restore {}",
                self.name,
                self.paths.name(i)
            );
        }
        if let Some(next) = f.moved {
            match next {
                Some(_) => {
                    self.failovers.fetch_add(1, Ordering::Relaxed);
                }
                None => mp_log!(plat, "out of providers for {}", self.name),
            }
            self.announce_active(plat, next);
        }
    }

    /// Clears FAIL (`gmultipath restore`). The active path does not move,
    /// unless there was none: then I/O would fail with a good path present.
    pub(crate) fn restore(&self, plat: &P, slot: usize) {
        if self.paths.restore(slot) {
            self.announce_active(plat, Some(slot));
        }
    }

    /// Makes `slot` the active path (`prefer`).
    pub(crate) fn prefer(&self, plat: &P, slot: usize) {
        self.paths.prefer(slot);
        if self.mode() == Mode::ActivePassive {
            mp_log!(
                plat,
                "{} now active path in {}",
                self.paths.name(slot),
                self.name
            );
        }
    }

    /// Moves the active path to the next good one in list order (`rotate`).
    pub(crate) fn rotate(&self, plat: &P) {
        if let Some(next) = self.paths.rotate() {
            self.announce_active(plat, Some(next));
        }
    }

    /// `g_orphan_t` (topology held): a path provider went away.
    pub fn orphan(self: &Arc<Self>, plat: &P, cp: P::Consumer) {
        plat.topology_assert();
        let Some(slot) = self.slot_of(cp) else { return };
        if self.paths.has(slot, st::LOST) {
            return;
        }
        mp_log!(
            plat,
            "{} in {} was disconnected",
            self.paths.name(slot),
            self.name
        );
        self.lose(plat, slot, false);
    }

    /// Marks a path LOST and tears it down now if idle, else at its drain.
    pub(crate) fn lose(self: &Arc<Self>, plat: &P, slot: usize, guard_retaste: bool) {
        plat.topology_assert();
        let f = self.paths.lose(slot);
        self.report_fault(plat, slot, f);
        self.update_unmapped(plat);
        if self.paths.claim_idle(slot) {
            self.teardown(plat, slot, guard_retaste);
        }
    }

    /// Posts the teardown of a drained LOST path from start or done, where
    /// sleeping is forbidden: `M_NOWAIT`, which can fail for want of
    /// memory (then see [`Softc::strand`]).
    pub(crate) fn post_teardown(self: &Arc<Self>, plat: &P, slot: usize) {
        let sc = self.clone();
        // Guarded as FreeBSD's g_mpd always is: a path held open for
        // writing is closed first and detached by a later event, so the
        // retaste its close causes skips this class and a removed path is
        // not tasted straight back in. A disconnected path's provider is
        // gone, so the guard only delays its detach by one event.
        let posted = plat.post_event(move |plat: &P| sc.teardown(plat, slot, true));
        if let Err(e) = posted {
            self.strand(plat, slot, e);
        }
    }

    /// [`Softc::post_teardown`] where sleeping is allowed (the worker): the
    /// post waits for memory, so in the kernel it does not fail.
    pub(crate) fn post_teardown_sleeping(self: &Arc<Self>, plat: &P, slot: usize) {
        let sc = self.clone();
        let posted = plat.post_event_sleeping(move |plat: &P| sc.teardown(plat, slot, true));
        if let Err(e) = posted {
            self.strand(plat, slot, e);
        }
    }

    /// The teardown of `slot` was claimed (POSTED) but its event could not
    /// be posted: the path stays as it is, LOST (no I/O uses it), and
    /// destroy, which finds it here, tears it down. As in FreeBSD, where a
    /// failed `M_NOWAIT` post of `g_mpd` leaves the consumer to
    /// `g_multipath_destroy`. Called from start and done too: no allocation
    /// here, so the path is named by its slot, not by its name (which is
    /// only read with the topology lock held).
    ///
    /// One window is left: a destroy whose walk of the paths runs on
    /// another CPU between this path's claim and its failed post finds it
    /// neither free nor stranded, and ends in EINPROGRESS; the path then
    /// goes at the next destroy (class unload). Destroy runs with the
    /// device closed, so only I/O a closed device still has in flight can
    /// meet that window.
    fn strand(&self, plat: &P, slot: usize, e: Errno) {
        self.paths.strand(slot);
        mp_log!(
            plat,
            "cannot post teardown of path {} in {} (error {}): it stays attached until {} is destroyed",
            slot,
            self.name,
            e,
            self.name
        );
    }

    /// Detaches and destroys a path's consumer (topology held; `g_mpd`);
    /// when it was the last one, the geom goes too.
    pub(crate) fn teardown(self: &Arc<Self>, plat: &P, slot: usize, guard_retaste: bool) {
        if self.teardown_one(plat, slot, guard_retaste) && self.paths.all_free() {
            // Last path gone. An error only means it is already on its way.
            let _ = self.destroy(plat, DestroyHow::Forced);
        }
    }

    /// Closes and detaches one path. With `guard_retaste`, a path we held
    /// open for writing is only closed now and detached by a later event:
    /// closing it makes GEOM retaste the provider, and while we are still
    /// attached that retaste skips this class, so a path being removed or
    /// stopped is not tasted straight back in. Returns whether it detached.
    fn teardown_one(self: &Arc<Self>, plat: &P, slot: usize, guard_retaste: bool) -> bool {
        plat.topology_assert();
        if self.paths.is_free(slot) {
            return false;
        }
        let cp = self.consumer(slot);
        let held = plat.consumer_access(cp);
        if held.is_open() {
            // Dropping access never fails in GEOM; an error here is logged.
            if let Err(e) = plat.access(cp, held.neg()) {
                mp_log!(
                    plat,
                    "cannot close {} in {} ({})",
                    self.paths.name(slot),
                    self.name,
                    e
                );
            }
            if held.w > 0 && guard_retaste {
                self.paths.mark_withering(slot);
                let sc = self.clone();
                // Every caller runs where sleeping is allowed (ctlreq,
                // orphan, events, destroy), as FreeBSD's g_mpd posts
                // itself with M_WAITOK: this does not fail in the kernel.
                let posted =
                    plat.post_event_sleeping(move |plat: &P| sc.teardown(plat, slot, false));
                if let Err(e) = posted {
                    // Detaching now would let the retaste this close caused
                    // add the path straight back: it stays attached,
                    // closed, until destroy.
                    self.strand(plat, slot, e);
                }
                return false;
            }
        }
        mp_log!(plat, "{} removed from {}", self.paths.name(slot), self.name);
        if plat.consumer_provider(cp).is_some() {
            plat.detach(cp);
        }
        plat.destroy_consumer(cp);
        self.paths.release(slot);
        true
    }

    /// Destroys the geom (topology held). `Polite` refuses an open device
    /// with EBUSY and changes nothing; `Forced` withers the provider of an
    /// open device and finishes at the last close. EINPROGRESS means the
    /// teardown continues in later events.
    pub fn destroy(self: &Arc<Self>, plat: &P, how: DestroyHow) -> Result<(), Errno> {
        plat.topology_assert();
        if self.gone.load(Ordering::SeqCst) {
            return Err(ENXIO);
        }
        let opened = self.opened.load(Ordering::SeqCst);
        if how == DestroyHow::Polite && opened != 0 {
            return Err(EBUSY);
        }
        if !self.stopping.swap(true, Ordering::SeqCst) {
            mp_log!(plat, "destroying {}", self.name);
        }
        if opened != 0 {
            // Upper layers are orphaned now; they close, and the last close
            // brings us back here (see access).
            // Taken first: the lock is released before g_wither_provider.
            let pp = self.provider.lock().take();
            if let Some(pp) = pp {
                plat.wither_provider(pp, ENXIO);
            }
            return Err(EINPROGRESS);
        }
        self.paths.deactivate();
        for i in self.paths.newest_first() {
            // A path whose teardown could not be posted is destroy's too.
            if self.paths.retire(i) || self.paths.take_stranded(i) {
                self.teardown_one(plat, i, true);
            }
        }
        if !self.paths.all_free() {
            return Err(EINPROGRESS);
        }
        if !self.gone.swap(true, Ordering::SeqCst) {
            mp_log!(plat, "{} destroyed", self.name);
            if let Some(gp) = self.geom() {
                plat.wither_geom(gp, ENXIO);
            }
        }
        Ok(())
    }

    /// `g_access_t` (topology held): opening the multipath provider opens
    /// every path alike; a refusal part-way undoes what was granted.
    pub fn access(
        self: &Arc<Self>,
        plat: &P,
        _pp: P::Provider,
        delta: Access,
    ) -> Result<(), Errno> {
        plat.topology_assert();
        let targets: Vec<usize> = self
            .paths
            .newest_first()
            .into_iter()
            .filter(|&i| !self.paths.has(i, st::WITHER | st::LOST | st::NEW))
            .collect();
        if targets.is_empty() && (delta.r > 0 || delta.w > 0 || delta.e > 0) {
            return Err(ENXIO);
        }
        for (n, &i) in targets.iter().enumerate() {
            if let Err(e) = plat.access(self.consumer(i), delta) {
                for &j in &targets[..n] {
                    // Undoing a grant lowers counts, which GEOM never refuses.
                    let _ = plat.access(self.consumer(j), delta.neg());
                }
                return Err(e);
            }
        }
        let now = self
            .opened
            .fetch_add(i64::from(delta.r + delta.w + delta.e), Ordering::SeqCst)
            + i64::from(delta.r + delta.w + delta.e);
        if now == 0 && self.is_stopping() {
            // The device was withered while open: finish the destroy at the
            // last close, after GEOM has applied this close. Access runs
            // where sleeping is allowed (g_access callers, topology held),
            // so the post waits for memory: it does not fail in the kernel.
            let sc = self.clone();
            let posted = plat.post_event_sleeping(move |plat: &P| {
                let _ = sc.destroy(plat, DestroyHow::Forced);
            });
            if let Err(e) = posted {
                mp_log!(
                    plat,
                    "cannot post the end of destroying {} (error {}): it ends when the class is unloaded",
                    self.name,
                    e
                );
            }
        }
        Ok(())
    }

    /// Current total of opens on the provider (r + w + e).
    pub fn opened(&self) -> i64 {
        self.opened.load(Ordering::SeqCst)
    }

    /// `g_dumpconf_t` (topology held).
    pub fn dumpconf(
        &self,
        plat: &P,
        sb: &mut dyn fmt::Write,
        indent: &str,
        cp: Option<P::Consumer>,
        pp: Option<P::Provider>,
    ) {
        crate::dumpconf::dumpconf(self, plat, sb, indent, cp, pp);
    }
}
