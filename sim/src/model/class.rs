//! The simulator's class interface: what a GEOM class implements
//! (`struct g_class` methods). The multipath core plugs in through
//! [`crate::multipath::MultipathClass`]; the pass-through test class, the
//! disk drivers and DEV implement it directly.
//!
//! Every method gets a [`SimPlatform`] bound to the class, and runs in the
//! context GEOM runs it in: taste, orphan, resize, access, ctlreq, dumpconf,
//! destroy_geom, init and fini with the topology lock held on the event
//! thread (or by the user thread that loads or unloads); start on `g_down`
//! and done on `g_up`, where the lock may not be taken and nothing may sleep.

use std::any::Any;
use std::sync::Arc;

use geom_multipath_rs::platform::{Access, CtlReq, Errno, ENXIO, EOPNOTSUPP};

use crate::bio::Bio;
use crate::ids::{ConsumerId, GeomId, ProviderId};
use crate::sim::SimPlatform;

pub trait SimClass: Send + Sync + 'static {
    /// `g_class.name`.
    fn name(&self) -> &str;
    /// `g_class.init` (topology held).
    fn init(&self, _plat: &SimPlatform) -> Result<(), Errno> {
        Ok(())
    }
    /// `g_class.fini` (topology held).
    fn fini(&self, _plat: &SimPlatform) {}
    /// Whether the class has a taste method at all (`mp->taste != NULL`).
    fn tastes(&self) -> bool {
        false
    }
    /// `g_class.taste` (topology held): may create a geom on `pp`.
    fn taste(&self, _plat: &SimPlatform, _pp: ProviderId) -> Option<GeomId> {
        None
    }
    /// `gp->start`: a bio sent to one of the geom's providers.
    fn start(&self, plat: &SimPlatform, gp: GeomId, bp: Bio);
    /// The done of a bio the geom cloned (`bio_done` of a child).
    fn done(&self, plat: &SimPlatform, _gp: GeomId, bp: Bio) {
        plat.g_std_done(bp);
    }
    /// `gp->orphan` (topology held): the provider under `cp` went away.
    fn orphan(&self, plat: &SimPlatform, cp: ConsumerId);
    /// Whether the class has a resize method (`gp->resize != NULL`). When a
    /// provider shrinks, consumers of geoms without one are orphaned.
    fn has_resize(&self) -> bool {
        false
    }
    /// `gp->resize` (topology held): the provider under `cp` changed size
    /// (its new size is already set). Only called when
    /// [`SimClass::has_resize`] says so.
    fn resize(&self, _plat: &SimPlatform, _cp: ConsumerId) {}
    /// `gp->access` (topology held): the geom's provider `pp` is being
    /// opened or closed by `delta`.
    fn access(&self, _plat: &SimPlatform, _pp: ProviderId, _delta: Access) -> Result<(), Errno> {
        Ok(())
    }
    /// `g_class.ctlreq` (topology held).
    fn ctlreq(&self, _plat: &SimPlatform, req: &mut dyn CtlReq, verb: &str) {
        req.error(format_args!("Unknown verb {verb}"));
    }
    /// `gp->dumpconf` (topology held): XML for the geom, one of its
    /// consumers, or one of its providers, as `d` says.
    fn dumpconf(&self, _plat: &SimPlatform, _d: &mut Dumpconf<'_>) {}
    /// `g_class.destroy_geom` (topology held), for unload.
    fn destroy_geom(&self, _plat: &SimPlatform, _gp: GeomId) -> Result<(), Errno> {
        Err(EOPNOTSUPP)
    }
}

impl SimPlatform {
    /// The head of a start method: `f` gets the softc of the geom `bp`
    /// reached (a `T`) and `bp`; a geom without one (it was torn down
    /// under the bio) fails `bp` with ENXIO.
    pub fn start_with_softc<T: Any + Send + Sync>(
        &self,
        gp: GeomId,
        bp: Bio,
        f: impl FnOnce(Arc<T>, Bio),
    ) {
        match self.geom_softc::<T>(gp) {
            Some(sc) => f(sc, bp),
            None => self.g_io_deliver(bp, ENXIO),
        }
    }
}

/// What a `gp->dumpconf` call describes: the geom itself (FreeBSD passes
/// `cp` and `pp` NULL), one of its consumers or one of its providers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfNode {
    Geom,
    Consumer(ConsumerId),
    Provider(ProviderId),
}

/// One `gp->dumpconf(sb, indent, gp, cp, pp)` call.
pub struct Dumpconf<'a> {
    /// Where the XML goes.
    pub sb: &'a mut dyn std::fmt::Write,
    /// What each line starts with.
    pub indent: &'a str,
    pub gp: GeomId,
    pub node: ConfNode,
}

impl Dumpconf<'_> {
    /// `cp`: the consumer described, if it is one.
    pub fn cp(&self) -> Option<ConsumerId> {
        match self.node {
            ConfNode::Consumer(cp) => Some(cp),
            _ => None,
        }
    }

    /// `pp`: the provider described, if it is one.
    pub fn pp(&self) -> Option<ProviderId> {
        match self.node {
            ConfNode::Provider(pp) => Some(pp),
            _ => None,
        }
    }

    /// `<tag>value</tag>` on its own line at the indent.
    pub fn line(&mut self, tag: &str, value: impl std::fmt::Display) {
        xml_line(self.sb, self.indent, tag, value);
    }
}

/// Writes `<tag>value</tag>` on its own line at `indent` (dumpconf helper).
pub fn xml_line(
    sb: &mut dyn std::fmt::Write,
    indent: &str,
    tag: &str,
    value: impl std::fmt::Display,
) {
    let _ = writeln!(sb, "{indent}<{tag}>{value}</{tag}>");
}
