//! The mesh — classes, geoms, providers, consumers — and the operations of
//! `geom_subr.c` on it: new/destroy, attach/detach, `g_access`, orphaning,
//! withering and the washer, tasting new providers, loading and unloading
//! classes. Each operation asserts the topology lock as GEOM does.
//!
//! The data lives behind a plain mutex (`SimShared::topo`) that is only held
//! for bookkeeping, never across a call into a class: classes call back into
//! the simulator from every method, and GEOM's real serialisation is the
//! topology lock, which the callers hold.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use geom_multipath_rs::platform::{Access, Errno, EBUSY, EEXIST, ENXIO, EPERM};

use crate::class::SimClass;
use crate::ids::{ClassId, ConsumerId, GeomId, ProviderId};
use crate::sched::{current, Ctx};
use crate::sim::{Res, SimPlatform};
use crate::util::lock;
use crate::violation::rule;

/// The softc a geom carries (`gp->softc`), of the class's own type.
pub type AnySoftc = Arc<dyn Any + Send + Sync>;

pub(crate) struct ClassRec {
    pub name: String,
    pub imp: Arc<dyn SimClass>,
    /// Newest first, as `LIST_INSERT_HEAD` keeps them.
    pub geoms: Vec<GeomId>,
    /// Taste and ctlreq are barred once unloading starts.
    pub unloading: bool,
}

pub(crate) struct GeomRec {
    pub class: ClassId,
    pub name: String,
    pub softc: Option<AnySoftc>,
    pub providers: Vec<ProviderId>,
    pub consumers: Vec<ConsumerId>,
    pub wither: bool,
    pub rank: u32,
}

pub(crate) struct ProviderRec {
    pub geom: GeomId,
    pub name: String,
    pub mediasize: u64,
    pub sectorsize: u32,
    pub stripesize: u64,
    pub stripeoffset: u64,
    /// `G_PF_ACCEPT_UNMAPPED`: takes bios whose data has no kernel address.
    pub accept_unmapped: bool,
    pub error: Errno,
    pub acc: Access,
    pub consumers: Vec<ConsumerId>,
    pub orphan: bool,
    pub wither: bool,
    pub nstart: u64,
    pub nend: u64,
}

pub(crate) struct ConsumerRec {
    pub geom: GeomId,
    pub provider: Option<ProviderId>,
    pub acc: Access,
    /// `G_CF_ORPHAN`.
    pub orphan: bool,
    pub nstart: u64,
    pub nend: u64,
}

#[derive(Default)]
pub(crate) struct Topology {
    /// Class list order: newest first (`LIST_INSERT_HEAD` in g_load_class).
    pub classes: Vec<ClassId>,
    pub class: BTreeMap<ClassId, ClassRec>,
    pub geom: BTreeMap<GeomId, GeomRec>,
    pub provider: BTreeMap<ProviderId, ProviderRec>,
    pub consumer: BTreeMap<ConsumerId, ConsumerRec>,
    /// Providers by name, for `g_provider_by_name` without walking every
    /// provider (assembly stays linear in paths).
    pub by_name: HashMap<String, Vec<ProviderId>>,
    /// Per class: tastes run and the time spent in them (ns).
    pub taste_time: HashMap<ClassId, (u64, u64)>,
}

fn add(a: Access, d: Access) -> Access {
    Access::new(a.r + d.r, a.w + d.w, a.e + d.e)
}

impl SimPlatform {
    pub(crate) fn topo(&self) -> std::sync::MutexGuard<'_, Topology> {
        lock(&self.sh.topo)
    }

    /// The class implementation behind geom `gp`, with a handle bound to it.
    pub(crate) fn geom_class(&self, gp: GeomId) -> Option<(Arc<dyn SimClass>, SimPlatform)> {
        let t = self.topo();
        let g = t.geom.get(&gp)?;
        let c = t.class.get(&g.class)?;
        Some((c.imp.clone(), self.bound(g.class)))
    }

    pub fn class_name(&self, c: ClassId) -> Option<String> {
        self.topo().class.get(&c).map(|c| c.name.clone())
    }

    /// Loaded class by name.
    pub fn class_by_name(&self, name: &str) -> Option<ClassId> {
        let t = self.topo();
        t.classes
            .iter()
            .copied()
            .find(|c| t.class.get(c).is_some_and(|r| r.name == name))
    }

    fn stale(&self, what: &str, id: impl std::fmt::Debug) {
        self.violation(
            rule::STALE,
            format!("{what}: {id:?} does not exist (destroyed, or never created)"),
        );
    }

    // ---- geoms ---------------------------------------------------------

    /// `g_new_geomf`: a geom of the bound class with softc `softc`.
    pub fn g_new_geom(&self, name: &str, softc: Option<AnySoftc>) -> Res<GeomId> {
        if !self.g_topology_assert("g_new_geom") {
            return Err(EPERM);
        }
        let Some(cid) = self.class else {
            self.violation(
                rule::CLASS,
                "g_new_geom through a handle bound to no class".into(),
            );
            return Err(EPERM);
        };
        let id = GeomId(self.next_id());
        let mut t = self.topo();
        let Some(c) = t.class.get_mut(&cid) else {
            drop(t);
            self.stale("g_new_geom: class", cid);
            return Err(ENXIO);
        };
        c.geoms.insert(0, id);
        t.geom.insert(
            id,
            GeomRec {
                class: cid,
                name: name.to_string(),
                softc,
                providers: Vec::new(),
                consumers: Vec::new(),
                wither: false,
                rank: 1,
            },
        );
        Ok(id)
    }

    /// `g_destroy_geom`: only a geom without consumers and providers.
    pub fn g_destroy_geom(&self, gp: GeomId) {
        if !self.g_topology_assert("g_destroy_geom") {
            return;
        }
        let mut t = self.topo();
        let Some(g) = t.geom.get(&gp) else {
            drop(t);
            return self.stale("g_destroy_geom", gp);
        };
        if !g.consumers.is_empty() || !g.providers.is_empty() {
            let msg = format!(
                "g_destroy_geom({}) with {} consumer(s) and {} provider(s)",
                g.name,
                g.consumers.len(),
                g.providers.len()
            );
            drop(t);
            return self.violation(rule::DESTROY, msg);
        }
        let Some(g) = t.geom.remove(&gp) else { return };
        if let Some(c) = t.class.get_mut(&g.class) {
            c.geoms.retain(|&x| x != gp);
        }
        drop(t);
        // The softc is dropped here, outside the data lock: its destructor
        // is the class's code.
        drop(g);
    }

    /// The geoms of the bound class, newest first, skipping withering ones.
    pub fn g_class_geoms(&self) -> Vec<GeomId> {
        let Some(cid) = self.class else {
            return Vec::new();
        };
        let t = self.topo();
        t.class
            .get(&cid)
            .map(|c| {
                c.geoms
                    .iter()
                    .copied()
                    .filter(|g| t.geom.get(g).is_some_and(|g| !g.wither))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn geom_name_of(&self, gp: GeomId) -> Option<String> {
        self.topo().geom.get(&gp).map(|g| g.name.clone())
    }

    /// `gp->softc`.
    pub fn geom_softc_any(&self, gp: GeomId) -> Option<AnySoftc> {
        let t = self.topo();
        match t.geom.get(&gp) {
            Some(g) => g.softc.clone(),
            None => {
                drop(t);
                self.stale("gp->softc", gp);
                None
            }
        }
    }

    /// `gp->softc` as the class's own type.
    pub fn geom_softc<T: Any + Send + Sync>(&self, gp: GeomId) -> Option<Arc<T>> {
        self.geom_softc_any(gp).and_then(|s| s.downcast::<T>().ok())
    }

    pub fn geom_exists(&self, gp: GeomId) -> bool {
        self.topo().geom.contains_key(&gp)
    }

    pub fn geom_providers(&self, gp: GeomId) -> Vec<ProviderId> {
        self.topo()
            .geom
            .get(&gp)
            .map(|g| g.providers.clone())
            .unwrap_or_default()
    }

    pub fn geom_consumers(&self, gp: GeomId) -> Vec<ConsumerId> {
        self.topo()
            .geom
            .get(&gp)
            .map(|g| g.consumers.clone())
            .unwrap_or_default()
    }

    pub fn geom_withering(&self, gp: GeomId) -> bool {
        self.topo().geom.get(&gp).is_some_and(|g| g.wither)
    }

    /// Every geom of the class named `class` (newest first), withering ones
    /// included.
    pub fn geoms_of_class(&self, class: &str) -> Vec<GeomId> {
        let t = self.topo();
        t.class
            .values()
            .filter(|c| c.name == class)
            .flat_map(|c| c.geoms.clone())
            .collect()
    }

    // ---- providers -------------------------------------------------------

    /// `g_new_providerf` + size fields. Created with error ENXIO, as GEOM
    /// does, and its taste event is posted at once; it runs once the
    /// creator releases the topology lock.
    pub fn g_new_provider(
        &self,
        gp: GeomId,
        name: &str,
        mediasize: u64,
        sectorsize: u32,
    ) -> Res<ProviderId> {
        if !self.g_topology_assert("g_new_providerf") {
            return Err(EPERM);
        }
        let id = ProviderId(self.next_id());
        let mut t = self.topo();
        let Some(g) = t.geom.get_mut(&gp) else {
            drop(t);
            self.stale("g_new_providerf", gp);
            return Err(ENXIO);
        };
        if g.wither {
            let msg = format!("new provider on WITHERing geom({})", g.name);
            drop(t);
            self.violation(rule::DESTROY, msg);
            return Err(ENXIO);
        }
        g.providers.insert(0, id);
        t.by_name.entry(name.to_string()).or_default().push(id);
        t.provider.insert(
            id,
            ProviderRec {
                geom: gp,
                name: name.to_string(),
                mediasize,
                sectorsize,
                stripesize: 0,
                stripeoffset: 0,
                accept_unmapped: false,
                error: ENXIO,
                acc: Access::NONE,
                consumers: Vec::new(),
                orphan: false,
                wither: false,
                nstart: 0,
                nend: 0,
            },
        );
        drop(t);
        self.g_post_event(move |p| p.new_provider_event(id));
        Ok(id)
    }

    /// `g_error_provider(pp, error)`: 0 makes the provider usable.
    pub fn g_error_provider(&self, pp: ProviderId, error: Errno) {
        let mut t = self.topo();
        match t.provider.get_mut(&pp) {
            Some(p) => p.error = error,
            None => {
                drop(t);
                self.stale("g_error_provider", pp)
            }
        }
    }

    /// Sets stripe size and offset (what `gmultipath` copies from paths).
    /// A driver sets them on its own provider before announcing it; a class
    /// changing a live provider does it under the topology lock.
    pub fn set_provider_stripe(&self, pp: ProviderId, stripesize: u64, stripeoffset: u64) {
        match self.topo().provider.get_mut(&pp) {
            Some(p) => {
                p.stripesize = stripesize;
                p.stripeoffset = stripeoffset;
            }
            None => self.stale("set stripe", pp),
        }
    }

    /// (stripesize, stripeoffset).
    pub fn provider_stripe_of(&self, pp: ProviderId) -> Option<(u64, u64)> {
        self.topo()
            .provider
            .get(&pp)
            .map(|p| (p.stripesize, p.stripeoffset))
    }

    /// Sets or clears `G_PF_ACCEPT_UNMAPPED`.
    pub fn set_provider_accepts_unmapped(&self, pp: ProviderId, accept: bool) {
        match self.topo().provider.get_mut(&pp) {
            Some(p) => p.accept_unmapped = accept,
            None => self.stale("set G_PF_ACCEPT_UNMAPPED", pp),
        }
    }

    /// Whether `G_PF_ACCEPT_UNMAPPED` is set.
    pub fn provider_accepts_unmapped_of(&self, pp: ProviderId) -> Option<bool> {
        self.topo().provider.get(&pp).map(|p| p.accept_unmapped)
    }

    /// Changes a provider's size fields (topology held): used by classes that
    /// size their provider from their first path.
    pub fn set_provider_size(&self, pp: ProviderId, mediasize: u64, sectorsize: u32) {
        if !self.g_topology_assert("provider resize") {
            return;
        }
        if let Some(p) = self.topo().provider.get_mut(&pp) {
            p.mediasize = mediasize;
            p.sectorsize = sectorsize;
        }
    }

    /// `g_resize_provider(pp, size)`: posts the resize event, unless the
    /// provider is withering or already that size. Callable from any
    /// context that may allocate (the event is posted, not run).
    pub fn g_resize_provider(&self, pp: ProviderId, size: u64) {
        {
            let t = self.topo();
            match t.provider.get(&pp) {
                None => {
                    drop(t);
                    return self.stale("g_resize_provider", pp);
                }
                Some(p) if p.wither || p.mediasize == size => return,
                Some(_) => {}
            }
        }
        self.g_post_event(move |p| p.resize_provider_event(pp, size));
    }

    /// `g_resize_provider_event`: on a shrink, consumers of geoms without a
    /// resize method are orphaned (once); then the new size is set, each
    /// consumer's geom that has one and is not withering gets its resize
    /// method called, and the provider is retasted (metadata that did not
    /// fit before may now).
    fn resize_provider_event(&self, pp: ProviderId, size: u64) {
        let (old, consumers) = {
            let t = self.topo();
            match t.provider.get(&pp) {
                // Gone meanwhile, or on its way out: nothing to resize.
                None => return,
                Some(p) if p.wither || p.orphan => return,
                Some(p) => (p.mediasize, p.consumers.clone()),
            }
        };
        let class_of = |cp: ConsumerId| -> Option<(GeomId, Arc<dyn SimClass>, SimPlatform)> {
            let gp = self.consumer_geom(cp)?;
            let (imp, plat) = self.geom_class(gp)?;
            Some((gp, imp, plat))
        };
        if size < old {
            for &cp in &consumers {
                let Some((_, imp, plat)) = class_of(cp) else {
                    continue;
                };
                if imp.has_resize() {
                    continue;
                }
                {
                    let mut t = self.topo();
                    let Some(c) = t.consumer.get_mut(&cp) else {
                        continue;
                    };
                    if c.orphan || c.provider != Some(pp) {
                        continue;
                    }
                    c.orphan = true;
                }
                imp.orphan(&plat, cp);
                self.g_topology_assert("return from orphan");
            }
        }
        {
            let mut t = self.topo();
            let Some(p) = t.provider.get_mut(&pp) else {
                return;
            };
            p.mediasize = size;
        }
        for cp in self.provider_consumers(pp) {
            // An earlier resize method may have torn this one down.
            if self.consumer_attached_to(cp) != Some(pp) {
                continue;
            }
            let Some((gp, imp, plat)) = class_of(cp) else {
                continue;
            };
            if imp.has_resize() && !self.geom_withering(gp) {
                imp.resize(&plat, cp);
                self.g_topology_assert("return from resize");
            }
        }
        self.new_provider_event(pp);
    }

    /// `g_new_provider_event`: every class with a taste method, except those
    /// already attached to `pp` (by a consumer not orphaned), tastes it.
    pub(crate) fn new_provider_event(&self, pp: ProviderId) {
        {
            let t = self.topo();
            match t.provider.get(&pp) {
                // Destroyed meanwhile: g_cancel_event would have dropped it.
                None => return,
                // Orphaned before its taste ran (its geom withered in the
                // same event): FreeBSD's washer runs right after that event
                // and destroys the unconsumed provider, cancelling this one.
                Some(p) if p.wither || p.orphan => return,
                _ => {}
            }
        }
        if self.sh.notaste.load(Ordering::Acquire) {
            return;
        }
        let classes: Vec<ClassId> = self.topo().classes.clone();
        for c in classes {
            let imp = {
                let t = self.topo();
                let Some(rec) = t.class.get(&c) else { continue };
                if rec.unloading || !rec.imp.tastes() {
                    continue;
                }
                let Some(p) = t.provider.get(&pp) else { return };
                let attached = p.consumers.iter().any(|cp| {
                    t.consumer.get(cp).is_some_and(|r| {
                        !r.orphan && t.geom.get(&r.geom).is_some_and(|g| g.class == c)
                    })
                });
                if attached {
                    continue;
                }
                rec.imp.clone()
            };
            self.timed_taste(c, &*imp, pp);
            self.g_topology_assert("return from taste");
        }
    }

    /// `g_wither_provider`.
    pub fn g_wither_provider(&self, pp: ProviderId, error: Errno) {
        let orphaned = {
            let mut t = self.topo();
            let Some(p) = t.provider.get_mut(&pp) else {
                drop(t);
                return self.stale("g_wither_provider", pp);
            };
            p.wither = true;
            p.orphan
        };
        if !orphaned {
            self.g_orphan_provider(pp, error);
        }
    }

    /// `g_orphan_provider`: callable from any context; the consumers'
    /// orphan methods run later on the event thread.
    pub fn g_orphan_provider(&self, pp: ProviderId, error: Errno) {
        if error == 0 {
            self.violation(
                rule::DESTROY,
                format!("g_orphan_provider({pp:?}) with error 0"),
            );
            return;
        }
        {
            let mut t = self.topo();
            let Some(p) = t.provider.get_mut(&pp) else {
                drop(t);
                return self.stale("g_orphan_provider", pp);
            };
            if p.orphan {
                let msg = format!("g_orphan_provider({}) twice", p.name);
                drop(t);
                return self.violation(rule::DESTROY, msg);
            }
            p.error = error;
            p.orphan = true;
        }
        lock(&self.sh.doorstep).push_back(pp);
        let me = self.clone();
        // The doorstep is served before any other event (g_run_events).
        self.sh
            .sched
            .post_front(&self.sh.q_event, Box::new(move || me.g_post_doorstep()));
    }

    fn g_post_doorstep(&self) {
        self.g_topology_lock();
        loop {
            let next = lock(&self.sh.doorstep).pop_front();
            let Some(pp) = next else { break };
            self.orphan_register(pp);
        }
        self.g_topology_unlock();
    }

    /// `g_orphan_register`: tells every consumer of `pp` (once each).
    fn orphan_register(&self, pp: ProviderId) {
        let (wf, consumers) = {
            let mut t = self.topo();
            let Some(p) = t.provider.get_mut(&pp) else {
                return;
            };
            let wf = p.wither;
            p.wither = false;
            (wf, p.consumers.clone())
        };
        for cp in consumers {
            let gp = {
                let mut t = self.topo();
                let Some(c) = t.consumer.get_mut(&cp) else {
                    continue;
                };
                if c.orphan || c.provider != Some(pp) {
                    continue;
                }
                c.orphan = true;
                c.geom
            };
            if let Some((imp, plat)) = self.geom_class(gp) {
                imp.orphan(&plat, cp);
                self.g_topology_assert("return from orphan");
            }
        }
        let empty = {
            let mut t = self.topo();
            let Some(p) = t.provider.get_mut(&pp) else {
                return;
            };
            if !(p.consumers.is_empty() && wf) {
                p.wither |= wf;
                false
            } else {
                true
            }
        };
        if empty {
            self.g_destroy_provider(pp);
        }
    }

    /// `g_destroy_provider`: no consumers, no access.
    pub fn g_destroy_provider(&self, pp: ProviderId) {
        if !self.g_topology_assert("g_destroy_provider") {
            return;
        }
        let gp = {
            let mut t = self.topo();
            let Some(p) = t.provider.get(&pp) else {
                drop(t);
                return self.stale("g_destroy_provider", pp);
            };
            if !p.consumers.is_empty() || p.acc.is_open() {
                let msg = format!(
                    "g_destroy_provider({}) still attached ({} consumers) or open {:?}",
                    p.name,
                    p.consumers.len(),
                    p.acc
                );
                drop(t);
                return self.violation(rule::DESTROY, msg);
            }
            let gp = p.geom;
            if let Some(p) = t.provider.remove(&pp) {
                if let Some(v) = t.by_name.get_mut(&p.name) {
                    v.retain(|&x| x != pp);
                    if v.is_empty() {
                        t.by_name.remove(&p.name);
                    }
                }
            }
            if let Some(g) = t.geom.get_mut(&gp) {
                g.providers.retain(|&x| x != pp);
                g.wither
            } else {
                false
            }
        };
        if gp {
            self.g_do_wither();
        }
    }

    pub fn provider_exists(&self, pp: ProviderId) -> bool {
        self.topo().provider.contains_key(&pp)
    }

    /// Runs class `c`'s taste of `pp`, adding its time to the class's.
    fn timed_taste(&self, c: ClassId, imp: &dyn SimClass, pp: ProviderId) {
        let t0 = std::time::Instant::now();
        imp.taste(&self.bound(c), pp);
        let ns = t0.elapsed().as_nanos() as u64;
        let mut t = self.topo();
        let e = t.taste_time.entry(c).or_default();
        e.0 += 1;
        e.1 += ns;
    }

    /// Tastes class `class` ran and the wall time they took (seconds):
    /// its own code and the platform calls it made.
    pub fn taste_time(&self, class: &str) -> (u64, f64) {
        let Some(c) = self.class_by_name(class) else {
            return (0, 0.0);
        };
        let (n, ns) = self.topo().taste_time.get(&c).copied().unwrap_or_default();
        (n, ns as f64 * 1e-9)
    }

    /// `g_provider_by_name` (a leading `/dev/` is ignored).
    pub fn g_provider_by_name(&self, name: &str) -> Option<ProviderId> {
        let name = name.strip_prefix("/dev/").unwrap_or(name);
        let t = self.topo();
        match t.by_name.get(name).map(|v| v.as_slice()) {
            None | Some([]) => return None,
            Some([one]) => return Some(*one),
            // Several of that name (one withering, its successor new):
            // the first in GEOM's own order, as below.
            Some(_) => {}
        }
        for c in &t.classes {
            let Some(cr) = t.class.get(c) else { continue };
            for g in &cr.geoms {
                let Some(gr) = t.geom.get(g) else { continue };
                for p in &gr.providers {
                    if t.provider.get(p).is_some_and(|r| r.name == name) {
                        return Some(*p);
                    }
                }
            }
        }
        None
    }

    pub fn provider_name_of(&self, pp: ProviderId) -> Option<String> {
        self.topo().provider.get(&pp).map(|p| p.name.clone())
    }

    /// (mediasize, sectorsize).
    pub fn provider_size(&self, pp: ProviderId) -> Option<(u64, u32)> {
        self.topo()
            .provider
            .get(&pp)
            .map(|p| (p.mediasize, p.sectorsize))
    }

    pub fn provider_acc(&self, pp: ProviderId) -> Option<Access> {
        self.topo().provider.get(&pp).map(|p| p.acc)
    }

    pub fn provider_error(&self, pp: ProviderId) -> Option<Errno> {
        self.topo().provider.get(&pp).map(|p| p.error)
    }

    pub fn provider_geom(&self, pp: ProviderId) -> Option<GeomId> {
        self.topo().provider.get(&pp).map(|p| p.geom)
    }

    pub fn provider_consumers(&self, pp: ProviderId) -> Vec<ConsumerId> {
        self.topo()
            .provider
            .get(&pp)
            .map(|p| p.consumers.clone())
            .unwrap_or_default()
    }

    // ---- consumers -------------------------------------------------------

    /// `g_new_consumer`.
    pub fn g_new_consumer(&self, gp: GeomId) -> Res<ConsumerId> {
        if !self.g_topology_assert("g_new_consumer") {
            return Err(EPERM);
        }
        let id = ConsumerId(self.next_id());
        let mut t = self.topo();
        let Some(g) = t.geom.get_mut(&gp) else {
            drop(t);
            self.stale("g_new_consumer", gp);
            return Err(ENXIO);
        };
        if g.wither {
            let msg = format!("g_new_consumer on WITHERing geom({})", g.name);
            drop(t);
            self.violation(rule::DESTROY, msg);
            return Err(ENXIO);
        }
        g.consumers.insert(0, id);
        t.consumer.insert(
            id,
            ConsumerRec {
                geom: gp,
                provider: None,
                acc: Access::NONE,
                orphan: false,
                nstart: 0,
                nend: 0,
            },
        );
        Ok(id)
    }

    /// Whether geom `below` is `above` or (transitively) under it.
    fn reaches(t: &super::topology::Topology, from: GeomId, target: GeomId) -> bool {
        let mut stack = vec![from];
        let mut seen = std::collections::BTreeSet::new();
        while let Some(g) = stack.pop() {
            if g == target {
                return true;
            }
            if !seen.insert(g) {
                continue;
            }
            if let Some(gr) = t.geom.get(&g) {
                for c in &gr.consumers {
                    if let Some(p) = t.consumer.get(c).and_then(|c| c.provider) {
                        if let Some(pr) = t.provider.get(&p) {
                            stack.push(pr.geom);
                        }
                    }
                }
            }
        }
        false
    }

    /// `g_attach`: ELOOP when it would close a loop in the mesh.
    pub fn g_attach(&self, cp: ConsumerId, pp: ProviderId) -> Res<()> {
        if !self.g_topology_assert("g_attach") {
            return Err(EPERM);
        }
        let mut t = self.topo();
        let Some(c) = t.consumer.get(&cp) else {
            drop(t);
            self.stale("g_attach consumer", cp);
            return Err(ENXIO);
        };
        if c.provider.is_some() {
            drop(t);
            self.violation(
                rule::ATTACH,
                format!("g_attach({cp:?}): attach but attached"),
            );
            return Err(EEXIST);
        }
        let cgeom = c.geom;
        let Some(p) = t.provider.get(&pp) else {
            drop(t);
            self.stale("g_attach provider", pp);
            return Err(ENXIO);
        };
        if Self::reaches(&t, p.geom, cgeom) {
            return Err(40); // ELOOP
        }
        let prank = t.geom.get(&p.geom).map_or(1, |g| g.rank);
        if let Some(p) = t.provider.get_mut(&pp) {
            p.consumers.insert(0, cp);
        }
        if let Some(c) = t.consumer.get_mut(&cp) {
            c.provider = Some(pp);
        }
        if let Some(g) = t.geom.get_mut(&cgeom) {
            g.rank = g.rank.max(prank + 1);
        }
        Ok(())
    }

    /// `g_detach`: no access counts, no I/O in flight.
    pub fn g_detach(&self, cp: ConsumerId) {
        if !self.g_topology_assert("g_detach") {
            return;
        }
        let wither = {
            let mut t = self.topo();
            let Some(c) = t.consumer.get(&cp) else {
                drop(t);
                return self.stale("g_detach", cp);
            };
            let Some(pp) = c.provider else {
                drop(t);
                return self.violation(
                    rule::ATTACH,
                    format!("g_detach({cp:?}): detach but not attached"),
                );
            };
            if c.acc.is_open() {
                let msg = format!("g_detach({cp:?}): detach but nonzero access {:?}", c.acc);
                drop(t);
                return self.violation(rule::ATTACH, msg);
            }
            if c.nstart != c.nend {
                let msg = format!(
                    "g_detach({cp:?}): detach with active requests ({} in flight)",
                    c.nstart - c.nend
                );
                drop(t);
                return self.violation(rule::ATTACH, msg);
            }
            let cgeom = c.geom;
            if let Some(c) = t.consumer.get_mut(&cp) {
                c.provider = None;
            }
            let mut wither = t.geom.get(&cgeom).is_some_and(|g| g.wither);
            if let Some(p) = t.provider.get_mut(&pp) {
                p.consumers.retain(|&x| x != cp);
                wither |= p.wither;
                let pg = p.geom;
                wither |= t.geom.get(&pg).is_some_and(|g| g.wither);
            }
            wither
        };
        if wither {
            self.g_do_wither();
        }
    }

    /// `g_destroy_consumer`: detached, no access.
    pub fn g_destroy_consumer(&self, cp: ConsumerId) {
        if !self.g_topology_assert("g_destroy_consumer") {
            return;
        }
        let wither = {
            let mut t = self.topo();
            let Some(c) = t.consumer.get(&cp) else {
                drop(t);
                return self.stale("g_destroy_consumer", cp);
            };
            if c.provider.is_some() {
                drop(t);
                return self.violation(
                    rule::DESTROY,
                    format!("g_destroy_consumer({cp:?}) but attached"),
                );
            }
            if c.acc.is_open() {
                let msg = format!(
                    "g_destroy_consumer({cp:?}) with access {:?} (leaked access count)",
                    c.acc
                );
                drop(t);
                return self.violation(rule::ACCESS, msg);
            }
            let gp = c.geom;
            t.consumer.remove(&cp);
            match t.geom.get_mut(&gp) {
                Some(g) => {
                    g.consumers.retain(|&x| x != cp);
                    g.wither
                }
                None => false,
            }
        };
        if wither {
            self.g_do_wither();
        }
    }

    pub fn consumer_exists(&self, cp: ConsumerId) -> bool {
        self.topo().consumer.contains_key(&cp)
    }

    pub fn consumer_geom(&self, cp: ConsumerId) -> Option<GeomId> {
        self.topo().consumer.get(&cp).map(|c| c.geom)
    }

    pub fn consumer_attached_to(&self, cp: ConsumerId) -> Option<ProviderId> {
        self.topo().consumer.get(&cp).and_then(|c| c.provider)
    }

    pub fn consumer_acc(&self, cp: ConsumerId) -> Option<Access> {
        self.topo().consumer.get(&cp).map(|c| c.acc)
    }

    /// I/O requested through `cp` and not yet delivered.
    pub fn consumer_inflight(&self, cp: ConsumerId) -> u64 {
        self.topo()
            .consumer
            .get(&cp)
            .map_or(0, |c| c.nstart - c.nend)
    }

    pub fn consumer_orphaned(&self, cp: ConsumerId) -> bool {
        self.topo().consumer.get(&cp).is_some_and(|c| c.orphan)
    }

    // ---- access ----------------------------------------------------------

    /// `g_access(cp, dr, dw, de)`.
    pub fn g_access(&self, cp: ConsumerId, d: Access) -> Res<()> {
        if !self.g_topology_assert("g_access") {
            return Err(EPERM);
        }
        let (pp, pgeom, cur, pacc, perror, pwither_geom) = {
            let t = self.topo();
            let Some(c) = t.consumer.get(&cp) else {
                drop(t);
                self.stale("g_access", cp);
                return Err(ENXIO);
            };
            let Some(pp) = c.provider else {
                drop(t);
                self.violation(
                    rule::ACCESS,
                    format!("g_access({cp:?}): access but not attached"),
                );
                return Err(ENXIO);
            };
            let Some(p) = t.provider.get(&pp) else {
                drop(t);
                self.stale("g_access provider", pp);
                return Err(ENXIO);
            };
            let gw = t.geom.get(&p.geom).is_some_and(|g| g.wither);
            (pp, p.geom, c.acc, p.acc, p.error, gw)
        };
        let next = add(cur, d);
        if next.r < 0 || next.w < 0 || next.e < 0 {
            self.violation(
                rule::ACCESS,
                format!(
                    "g_access({cp:?}, {}, {}, {}): access resulting in negative counts (had {:?})",
                    d.r, d.w, d.e, cur
                ),
            );
            return Err(EPERM);
        }
        if !d.is_open() {
            self.violation(
                rule::ACCESS,
                format!("g_access({cp:?}, 0, 0, 0): NOP access request"),
            );
            return Ok(());
        }
        let (pr, pw, pe) = (pacc.r - cur.r, pacc.w - cur.w, pacc.e - cur.e);
        let _ = pr;
        let opening = d.r > 0 || d.w > 0 || d.e > 0;
        if d.e > 0 && pw > 0 {
            return Err(EPERM);
        }
        if d.w > 0 && pe > 0 {
            return Err(EPERM);
        }
        if opening && perror != 0 {
            return Err(perror);
        }
        let error = match self.geom_class(pgeom) {
            Some((imp, plat)) => imp.access(&plat, pp, d),
            None => Err(ENXIO),
        };
        self.g_topology_assert("return from access method");
        if let Err(e) = error {
            if !opening {
                self.violation(rule::ACCESS, format!("access method of provider {pp:?} failed closing ({e}): a close cannot fail"));
            }
            return Err(e);
        }
        let (retaste, washer) = {
            let mut t = self.topo();
            let mut retaste = false;
            if let Some(p) = t.provider.get_mut(&pp) {
                // Last writer closing on a healthy provider: retaste it.
                retaste = p.acc.w != 0 && p.acc.w == -d.w && p.error == 0 && !pwither_geom;
                p.acc = add(p.acc, d);
            }
            let mut washer = false;
            if let Some(c) = t.consumer.get_mut(&cp) {
                c.acc = add(c.acc, d);
                let g = c.geom;
                washer = !c.acc.is_open() && t.geom.get(&g).is_some_and(|g| g.wither);
            }
            (retaste, washer)
        };
        if retaste {
            self.g_post_event(move |p| p.new_provider_event(pp));
        }
        if washer {
            self.g_do_wither();
        }
        Ok(())
    }

    // ---- withering -------------------------------------------------------

    /// `g_wither_geom`: orphans the geom's providers, then the washer
    /// detaches and destroys idle consumers and frees the geom (and softc).
    pub fn g_wither_geom(&self, gp: GeomId, error: Errno) {
        if !self.g_topology_assert("g_wither_geom") {
            return;
        }
        let to_orphan = {
            let mut t = self.topo();
            let Some(g) = t.geom.get_mut(&gp) else {
                drop(t);
                return self.stale("g_wither_geom", gp);
            };
            if g.wither {
                Vec::new()
            } else {
                g.wither = true;
                let provs = g.providers.clone();
                provs
                    .into_iter()
                    .filter(|p| t.provider.get(p).is_some_and(|p| !p.orphan))
                    .collect()
            }
        };
        for pp in to_orphan {
            self.g_orphan_provider(pp, error);
        }
        self.g_do_wither();
    }

    /// `g_do_wither`: schedules one washer run.
    pub(crate) fn g_do_wither(&self) {
        if !self.sh.washer_pending.swap(true, Ordering::AcqRel) {
            self.g_post_event(|p| {
                p.sh.washer_pending.store(false, Ordering::Release);
                p.g_wither_washer();
            });
        }
    }

    /// `g_wither_washer`. A consumer is idle when it holds no access and,
    /// beyond GEOM's own test, has no I/O in flight (GEOM would KASSERT in
    /// g_detach; the simulator waits for the last completion instead).
    fn g_wither_washer(&self) {
        let geoms: Vec<GeomId> = {
            let t = self.topo();
            t.classes
                .iter()
                .filter_map(|c| t.class.get(c))
                .flat_map(|c| c.geoms.clone())
                .collect()
        };
        for gp in geoms {
            let (wither, provs, cons) = {
                let t = self.topo();
                let Some(g) = t.geom.get(&gp) else { continue };
                (g.wither, g.providers.clone(), g.consumers.clone())
            };
            for pp in &provs {
                let gone = {
                    let t = self.topo();
                    t.provider
                        .get(pp)
                        .is_some_and(|p| (p.wither || wither) && p.consumers.is_empty())
                };
                if gone {
                    self.g_destroy_provider(*pp);
                }
            }
            if !wither {
                continue;
            }
            for cp in cons {
                let (idle, attached) = {
                    let t = self.topo();
                    match t.consumer.get(&cp) {
                        Some(c) => (!c.acc.is_open() && c.nstart == c.nend, c.provider.is_some()),
                        None => continue,
                    }
                };
                if !idle {
                    continue;
                }
                if attached {
                    self.g_detach(cp);
                }
                self.g_destroy_consumer(cp);
            }
            let empty = self
                .topo()
                .geom
                .get(&gp)
                .is_some_and(|g| g.providers.is_empty() && g.consumers.is_empty());
            if empty {
                self.g_destroy_geom(gp);
            }
        }
    }

    // ---- classes ---------------------------------------------------------

    /// Loads a class (`g_load_class` via `g_waitfor_event`): init, then it
    /// tastes every existing provider.
    pub fn load_class(&self, imp: Arc<dyn SimClass>) -> Res<ClassId> {
        let id = ClassId(self.next_id());
        let r = self.g_waitfor_event(move |p| -> Res<ClassId> {
            {
                let mut t = p.topo();
                let name = imp.name().to_string();
                if t.class.values().any(|c| c.name == name) {
                    drop(t);
                    p.console(format!("A GEOM class {name} is already loaded."));
                    return Err(EEXIST);
                }
                t.classes.insert(0, id);
                t.class.insert(
                    id,
                    ClassRec {
                        name,
                        imp: imp.clone(),
                        geoms: Vec::new(),
                        unloading: false,
                    },
                );
            }
            let bound = p.bound(id);
            if let Err(e) = imp.init(&bound) {
                p.console(format!("GEOM class {}: init failed: {e}", imp.name()));
            }
            if !imp.tastes() {
                return Ok(id);
            }
            let provs: Vec<ProviderId> = {
                let t = p.topo();
                t.classes
                    .iter()
                    .filter(|&&c| c != id)
                    .filter_map(|c| t.class.get(c))
                    .flat_map(|c| c.geoms.iter())
                    .filter_map(|g| t.geom.get(g))
                    .flat_map(|g| g.providers.clone())
                    .collect()
            };
            for pp in provs {
                if p.provider_exists(pp) {
                    p.timed_taste(id, &*imp, pp);
                    p.g_topology_assert("return from taste");
                }
            }
            Ok(id)
        });
        r.unwrap_or(Err(ENXIO))
    }

    /// `g_unload_class`: EBUSY while anything of the class is open;
    /// otherwise destroy_geom on every geom, wait for withering, then fini.
    pub fn unload_class(&self, id: ClassId) -> Res<()> {
        if current().1 != Ctx::User {
            self.violation(rule::NOSLEEP, "unload_class outside user context".into());
            return Err(EPERM);
        }
        let imp = match self.topo().class.get(&id) {
            Some(c) => c.imp.clone(),
            None => return Err(ENXIO),
        };
        let bound = self.bound(id);
        let deadline = std::time::Instant::now() + self.sh.cfg.wait_timeout;
        self.g_topology_lock();
        // Refuse while open; wait for withering geoms.
        loop {
            let (open, withering) = self.class_open_state(id);
            if open {
                self.g_topology_unlock();
                return Err(EBUSY);
            }
            if !withering {
                break;
            }
            if self.unload_stuck(deadline) {
                self.violation(rule::LEAK, format!("unload of class {}: a geom never finished withering (I/O or access still held below it)", imp.name()));
                self.g_topology_unlock();
                return Err(EBUSY);
            }
            self.topology_sleep();
        }
        if let Some(c) = self.topo().class.get_mut(&id) {
            c.unloading = true;
        }
        let geoms: Vec<GeomId> = self
            .topo()
            .class
            .get(&id)
            .map(|c| c.geoms.clone())
            .unwrap_or_default();
        for gp in geoms {
            if !self.geom_exists(gp) || self.geom_withering(gp) {
                continue;
            }
            if let Err(e) = imp.destroy_geom(&bound, gp) {
                if let Some(c) = self.topo().class.get_mut(&id) {
                    c.unloading = false;
                }
                self.g_topology_unlock();
                return Err(e);
            }
        }
        loop {
            let left = self.topo().class.get(&id).map_or(0, |c| c.geoms.len());
            if left == 0 {
                break;
            }
            let stuck = self.unload_stuck(deadline);
            if stuck {
                self.violation(
                    rule::LEAK,
                    format!(
                        "unload of class {}: {left} geom(s) never finished withering",
                        imp.name()
                    ),
                );
                self.g_topology_unlock();
                return Err(EBUSY);
            }
            self.topology_sleep();
        }
        imp.fini(&bound);
        {
            let mut t = self.topo();
            t.classes.retain(|&c| c != id);
            t.class.remove(&id);
        }
        self.g_topology_unlock();
        Ok(())
    }

    /// Calls the class's destroy_geom on each of its live geoms (topology
    /// lock taken here), as an administrator stopping them all would.
    pub fn destroy_class_geoms(&self, id: ClassId) {
        let Some(imp) = self.topo().class.get(&id).map(|c| c.imp.clone()) else {
            return;
        };
        let bound = self.bound(id);
        self.g_topology_lock();
        let geoms: Vec<GeomId> = self
            .topo()
            .class
            .get(&id)
            .map(|c| c.geoms.clone())
            .unwrap_or_default();
        for gp in geoms {
            if self.geom_exists(gp) && !self.geom_withering(gp) {
                let _ = imp.destroy_geom(&bound, gp);
            }
        }
        self.g_topology_unlock();
    }

    /// Whether waiting for withering can still end: in deterministic mode
    /// nothing left to run means never; threaded, the wait timeout.
    fn unload_stuck(&self, deadline: std::time::Instant) -> bool {
        match self.mode() {
            crate::sched::Mode::Deterministic => self.sh.sched.is_idle(),
            crate::sched::Mode::Threaded => std::time::Instant::now() > deadline,
        }
    }

    fn class_open_state(&self, id: ClassId) -> (bool, bool) {
        let t = self.topo();
        let Some(c) = t.class.get(&id) else {
            return (false, false);
        };
        let mut open = false;
        let mut withering = false;
        for g in c.geoms.iter().filter_map(|g| t.geom.get(g)) {
            open |= g
                .providers
                .iter()
                .any(|p| t.provider.get(p).is_some_and(|p| p.acc.is_open()));
            open |= g
                .consumers
                .iter()
                .any(|cp| t.consumer.get(cp).is_some_and(|c| c.acc.is_open()));
            withering |= g.wither;
        }
        (open, withering)
    }

    /// `g_topology_sleep`: drops the lock, lets the rest run, retakes it.
    pub(crate) fn topology_sleep(&self) {
        self.g_topology_unlock();
        match self.mode() {
            crate::sched::Mode::Deterministic => {
                self.sh.sched.det_step();
            }
            crate::sched::Mode::Threaded => std::thread::sleep(std::time::Duration::from_millis(1)),
        }
        self.g_topology_lock();
    }

    /// The sim-wide leak check: bios never completed, access counts that do
    /// not add up or are still held, geoms still withering.
    pub fn leak_check(&self) {
        let mut found: Vec<String> = Vec::new();
        {
            let t = self.topo();
            for (id, p) in &t.provider {
                let mut sum = Access::NONE;
                for c in p.consumers.iter().filter_map(|c| t.consumer.get(c)) {
                    sum = add(sum, c.acc);
                }
                if sum != p.acc {
                    found.push(format!(
                        "provider {} {id:?}: access {:?} but its consumers hold {:?}",
                        p.name, p.acc, sum
                    ));
                }
            }
            for (id, c) in &t.consumer {
                if c.acc.is_open() {
                    let g = t
                        .geom
                        .get(&c.geom)
                        .map(|g| g.name.clone())
                        .unwrap_or_default();
                    let pn = c
                        .provider
                        .and_then(|p| t.provider.get(&p))
                        .map(|p| p.name.clone())
                        .unwrap_or_default();
                    found.push(format!(
                        "consumer {id:?} of geom {g} still holds access {:?} on {pn}",
                        c.acc
                    ));
                }
            }
            for (id, g) in &t.geom {
                if g.wither {
                    found.push(format!("geom {} {id:?} withering but never freed", g.name));
                }
            }
        }
        for b in self.bios_outstanding() {
            found.push(format!("bio never completed: {b}"));
        }
        for f in found {
            self.violation(rule::LEAK, f);
        }
    }
}

impl SimPlatform {
    /// Sets `gp->softc` after creation (topology held): for classes that
    /// build the softc from objects made after the geom.
    pub fn topo_set_softc(&self, gp: GeomId, softc: AnySoftc) {
        if !self.g_topology_assert("set gp->softc") {
            return;
        }
        if let Some(g) = self.topo().geom.get_mut(&gp) {
            g.softc = Some(softc);
        }
    }
}
