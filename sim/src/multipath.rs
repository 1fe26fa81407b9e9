//! The adapter that plugs the multipath core into the simulator: each
//! class callback is forwarded to `geom_multipath_rs::Class<SimPlatform>`
//! or to the geom's `Arc<Softc<SimPlatform>>` (the softc the core passed to
//! `Platform::new_geom`).

use std::sync::Arc;

use geom_multipath_rs::platform::{Access, CtlReq, Errno, ENXIO};
use geom_multipath_rs::{Class, Platform, Softc};

use crate::bio::Bio;
use crate::class::SimClass;
use crate::ids::{ConsumerId, GeomId, ProviderId};
use crate::sim::SimPlatform;
use crate::violation::rule;

/// The MULTIPATH class as the simulator loads it.
#[derive(Default)]
pub struct MultipathClass {
    core: Class<SimPlatform>,
}

impl MultipathClass {
    pub fn new() -> MultipathClass {
        MultipathClass { core: Class::new() }
    }

    /// The core's class object.
    pub fn core(&self) -> &Class<SimPlatform> {
        &self.core
    }
}

fn softc(plat: &SimPlatform, gp: GeomId) -> Option<Arc<Softc<SimPlatform>>> {
    Platform::geom_softc(plat, gp)
}

impl SimClass for MultipathClass {
    fn name(&self) -> &str {
        "MULTIPATH"
    }
    fn init(&self, plat: &SimPlatform) -> Result<(), Errno> {
        self.core.init(plat)
    }
    fn fini(&self, plat: &SimPlatform) {
        self.core.fini(plat);
    }
    fn tastes(&self) -> bool {
        true
    }
    fn taste(&self, plat: &SimPlatform, pp: ProviderId) -> Option<GeomId> {
        self.core.taste(plat, pp)
    }
    fn start(&self, plat: &SimPlatform, gp: GeomId, bp: Bio) {
        match softc(plat, gp) {
            Some(sc) => sc.start(plat, bp),
            None => {
                plat.violation(
                    rule::CLASS,
                    format!("MULTIPATH start on {gp:?}, which has no softc"),
                );
                plat.g_io_deliver(bp, ENXIO);
            }
        }
    }
    fn done(&self, plat: &SimPlatform, gp: GeomId, bp: Bio) {
        match softc(plat, gp) {
            Some(sc) => sc.child_done(plat, bp),
            None => {
                // A child of a geom that lost its softc: fold it back the
                // standard way so the parent still completes.
                plat.violation(
                    rule::CLASS,
                    format!("MULTIPATH done on {gp:?}, which has no softc"),
                );
                plat.g_std_done(bp);
            }
        }
    }
    fn orphan(&self, plat: &SimPlatform, cp: ConsumerId) {
        let Some(gp) = plat.consumer_geom(cp) else {
            return;
        };
        if let Some(sc) = softc(plat, gp) {
            sc.orphan(plat, cp);
        }
    }
    fn has_resize(&self) -> bool {
        true
    }
    fn resize(&self, plat: &SimPlatform, cp: ConsumerId) {
        let Some(gp) = plat.consumer_geom(cp) else {
            return;
        };
        // The taste geom has no softc and nothing to resize.
        if let Some(sc) = softc(plat, gp) {
            sc.resize(plat, cp);
        }
    }
    fn access(&self, plat: &SimPlatform, pp: ProviderId, delta: Access) -> Result<(), Errno> {
        let gp = plat.provider_geom(pp).ok_or(ENXIO)?;
        match softc(plat, gp) {
            Some(sc) => sc.access(plat, pp, delta),
            None => Err(ENXIO),
        }
    }
    fn ctlreq(&self, plat: &SimPlatform, req: &mut dyn CtlReq, verb: &str) {
        self.core.ctlreq(plat, req, verb);
    }
    fn dumpconf(
        &self,
        plat: &SimPlatform,
        sb: &mut dyn std::fmt::Write,
        indent: &str,
        gp: GeomId,
        cp: Option<ConsumerId>,
        pp: Option<ProviderId>,
    ) {
        if let Some(sc) = softc(plat, gp) {
            sc.dumpconf(plat, sb, indent, cp, pp);
        }
    }
    fn destroy_geom(&self, plat: &SimPlatform, gp: GeomId) -> Result<(), Errno> {
        self.core.destroy_geom(plat, gp)
    }
}

impl SimPlatform {
    /// Loads the MULTIPATH class (`kldload geom_multipath`).
    pub fn load_multipath(&self) -> Result<crate::ids::ClassId, Errno> {
        self.load_class(Arc::new(MultipathClass::new()))
    }
}
