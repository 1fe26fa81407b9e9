//! The mesh — classes, geoms, providers, consumers — and the operations of
//! `geom_subr.c` on it: new/destroy, attach/detach, `g_access`, orphaning,
//! withering and the washer, tasting new providers, loading and unloading
//! classes. Each operation asserts the topology lock as GEOM does.
//!
//! One file per concern of `geom_subr.c`: [`class`] load and unload,
//! [`geom`] new and destroy, [`provider`] new, error and destroy,
//! [`orphan`] orphaning and withering a provider, [`consumer`] new,
//! attach, detach and destroy, [`access`], [`wither`] geoms and the
//! washer, [`taste`] tasting, retasting and resizing, and the end-of-run
//! [`leak`] check. This file holds the records they share.
//!
//! The data lives behind a plain mutex (`SimShared::topo`) that is only held
//! for bookkeeping, never across a call into a class: classes call back into
//! the simulator from every method, and GEOM's real serialisation is the
//! topology lock, which the callers hold.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};

use geom_multipath_rs::platform::{Access, Errno, ENXIO, EPERM};

use crate::class::SimClass;
use crate::ids::{ClassId, ConsumerId, GeomId, IdMap, ProviderId};
use crate::sim::{Res, SimPlatform};
use crate::util::lock;
use crate::violation::rule;

mod access;
mod class;
mod consumer;
mod geom;
mod leak;
mod orphan;
mod provider;
mod taste;
mod wither;

/// The softc a geom carries (`gp->softc`), of the class's own type.
pub type AnySoftc = Arc<dyn Any + Send + Sync>;

pub(crate) struct ClassRec {
    pub name: String,
    pub imp: Arc<dyn SimClass>,
    /// Read newest first, as `LIST_INSERT_HEAD` keeps them.
    pub geoms: GeomList,
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

/// Direct dispatch flags of a provider or a consumer. A bio goes from
/// `g_io_request` straight into the provider's start, in the requester's
/// thread, when the consumer may send directly, the provider may receive
/// directly and the caller is not `g_down` itself; its completion goes
/// from `g_io_deliver` straight into the consumer's done when the provider
/// may send and the consumer may receive directly and the caller is not
/// `g_up` (`geom_io.c`). Otherwise the bio waits on `g_down`/`g_up`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Direct {
    pub send: bool,
    pub receive: bool,
}

impl Direct {
    /// Both flags, as da(4) disks, DEV and FreeBSD's multipath set them.
    pub const BOTH: Direct = Direct {
        send: true,
        receive: true,
    };
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
    /// `G_PF_DIRECT_SEND` / `G_PF_DIRECT_RECEIVE`: see [`Direct`].
    pub direct: Direct,
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
    /// `G_CF_DIRECT_SEND` / `G_CF_DIRECT_RECEIVE`: see [`Direct`].
    pub direct: Direct,
    pub nstart: u64,
    pub nend: u64,
}

/// A class's geoms in GEOM's order, newest first. Stored oldest first and
/// read backwards, so that adding one is O(1) (a class may hold thousands:
/// DEV has one per provider).
#[derive(Default)]
pub(crate) struct GeomList(Vec<GeomId>);

impl GeomList {
    /// Puts `gp` at the head (`LIST_INSERT_HEAD`).
    pub fn push_newest(&mut self, gp: GeomId) {
        self.0.push(gp);
    }
    /// Takes `gp` off the list. Searched from the newest end: the geom
    /// most often removed is the one just made (a taste's temporary
    /// geom), which is then found at once and removed without moving
    /// the others; a walk from the oldest made assembly quadratic.
    pub fn remove(&mut self, gp: GeomId) {
        if let Some(i) = self.0.iter().rposition(|&x| x == gp) {
            self.0.remove(i);
        }
    }
    /// Newest first.
    pub fn iter(&self) -> impl Iterator<Item = GeomId> + '_ {
        self.0.iter().rev().copied()
    }
    /// Newest first.
    pub fn newest_first(&self) -> Vec<GeomId> {
        self.iter().collect()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

#[derive(Default)]
pub(crate) struct Topology {
    /// Class list order: newest first (`LIST_INSERT_HEAD` in g_load_class).
    pub classes: Vec<ClassId>,
    pub class: IdMap<ClassId, ClassRec>,
    pub geom: IdMap<GeomId, GeomRec>,
    pub provider: IdMap<ProviderId, ProviderRec>,
    pub consumer: IdMap<ConsumerId, ConsumerRec>,
    /// Providers by name, for `g_provider_by_name` without walking every
    /// provider (assembly stays linear in paths).
    pub by_name: HashMap<String, Vec<ProviderId>>,
    /// Per class: tastes run and the time spent in them (ns).
    pub taste_time: HashMap<ClassId, (u64, u64)>,
}

impl Topology {
    /// Whether a request on `cp` may run its provider's start inside
    /// `g_io_request` (`G_CF_DIRECT_SEND` and `G_PF_DIRECT_RECEIVE`),
    /// whatever the thread.
    pub fn request_may_go_direct(&self, cp: ConsumerId) -> bool {
        self.consumer.get(&cp).is_some_and(|c| {
            c.direct.send
                && c.provider
                    .and_then(|p| self.provider.get(&p))
                    .is_some_and(|p| p.direct.receive)
        })
    }

    /// Whether a bio from `pp` back to `cp` may run the consumer's done
    /// inside `g_io_deliver` (`G_PF_DIRECT_SEND` and
    /// `G_CF_DIRECT_RECEIVE`), whatever the thread.
    pub fn done_may_go_direct(&self, pp: Option<ProviderId>, cp: Option<ConsumerId>) -> bool {
        let send = pp
            .and_then(|p| self.provider.get(&p))
            .is_some_and(|p| p.direct.send);
        let receive = cp
            .and_then(|c| self.consumer.get(&c))
            .is_some_and(|c| c.direct.receive);
        send && receive
    }
}

fn add(a: Access, d: Access) -> Access {
    Access::new(a.r + d.r, a.w + d.w, a.e + d.e)
}

/// An id with a table of records in [`Topology`], so that one look-up
/// ([`SimPlatform::rec`]) serves classes, geoms, providers and consumers.
pub(crate) trait MeshId: Copy + Ord + std::hash::Hash + std::fmt::Debug + 'static {
    type Rec: 'static;
    fn table(t: &mut Topology) -> &mut IdMap<Self, Self::Rec>;
}

macro_rules! mesh_id {
    ($id:ty, $rec:ty, $field:ident) => {
        impl MeshId for $id {
            type Rec = $rec;
            fn table(t: &mut Topology) -> &mut IdMap<Self, $rec> {
                &mut t.$field
            }
        }
    };
}
mesh_id!(ClassId, ClassRec, class);
mesh_id!(GeomId, GeomRec, geom);
mesh_id!(ProviderId, ProviderRec, provider);
mesh_id!(ConsumerId, ConsumerRec, consumer);

impl SimPlatform {
    pub(crate) fn topo(&self) -> MutexGuard<'_, Topology> {
        lock(&self.sh.topo)
    }

    /// Reads `id`'s record through `f`; None when there is none.
    pub(crate) fn peek<K: MeshId, R>(&self, id: K, f: impl FnOnce(&K::Rec) -> R) -> Option<R> {
        K::table(&mut self.topo()).get(&id).map(f)
    }

    /// The preamble of an operation that changes the mesh: the topology
    /// lock held by the caller (else a TOPOLOGY violation naming `op`, and
    /// EPERM), then the data.
    fn topo_for(&self, op: &str) -> Res<MutexGuard<'_, Topology>> {
        if !self.g_topology_assert(op) {
            return Err(EPERM);
        }
        Ok(self.topo())
    }

    /// The record of `id`, or a STALE violation naming `op`, and ENXIO.
    /// (Recording a violation takes only the violations' own lock.)
    fn rec<'t, K: MeshId>(&self, t: &'t mut Topology, op: &str, id: K) -> Res<&'t mut K::Rec> {
        match K::table(t).get_mut(&id) {
            Some(r) => Ok(r),
            None => {
                self.stale(op, id);
                Err(ENXIO)
            }
        }
    }

    /// Geom `gp`, about to get a new provider or consumer (`what`): it
    /// exists and is not withering, else a violation and ENXIO.
    fn growing_geom<'t>(
        &self,
        t: &'t mut Topology,
        op: &str,
        gp: GeomId,
        what: &str,
    ) -> Res<&'t mut GeomRec> {
        let g = self.rec(t, op, gp)?;
        if g.wither {
            let msg = format!("{what} on WITHERing geom({})", g.name);
            self.violation(rule::DESTROY, msg);
            return Err(ENXIO);
        }
        Ok(g)
    }

    fn stale(&self, what: &str, id: impl std::fmt::Debug) {
        self.violation(
            rule::STALE,
            format!("{what}: {id:?} does not exist (destroyed, or never created)"),
        );
    }
}
