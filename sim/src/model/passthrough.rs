//! PASS: a pass-through class (g_nop without faults). A geom `NAME.pass`
//! over provider `NAME` clones every bio, sends the clone down and folds it
//! back with g_std_done; opens and closes are passed to its consumer.
//! It tests the simulator itself and is the benchmark baseline.

use crate::topology::Direct;
use std::any::Any;
use std::sync::Arc;

use geom_multipath_rs::platform::{Access, CtlReq, Errno, EBUSY, ENOMEM, ENXIO};

use crate::bio::Bio;
use crate::class::{ConfNode, Dumpconf, SimClass};
use crate::ctl::{param_int, param_str};
use crate::ids::{ConsumerId, GeomId, ProviderId};
use crate::sim::SimPlatform;

/// The class. Verbs: `create` (arg0 = provider), `destroy` (arg0 = geom
/// name; `force` int).
#[derive(Default)]
pub struct PassClass;

/// The geom's softc.
pub struct PassSoftc {
    pub cp: ConsumerId,
}

/// The softc of a geom that passes its provider's opens and I/O to its
/// one consumer (PASS here, the VM dry run's gnop in mpsim-serve).
pub trait PassThrough: Any + Send + Sync {
    fn consumer(&self) -> ConsumerId;
}

impl PassThrough for PassSoftc {
    fn consumer(&self) -> ConsumerId {
        self.cp
    }
}

impl PassClass {
    fn create(&self, plat: &SimPlatform, req: &mut dyn CtlReq, prov: &str) {
        let Some(pp) = plat.g_provider_by_name(prov) else {
            return req.error(format_args!("Provider {prov} is invalid"));
        };
        let name = format!("{}.pass", prov.strip_prefix("/dev/").unwrap_or(prov));
        if plat.g_provider_by_name(&name).is_some() {
            return req.error(format_args!("Provider {name} already exists"));
        }
        let Some((size, ss)) = plat.provider_size(pp) else {
            return req.error(format_args!("Provider {prov} is invalid"));
        };
        let gp = match plat.g_new_geom(&name, None) {
            Ok(g) => g,
            Err(e) => return req.error(format_args!("Cannot create geom {name}: {e}")),
        };
        let cp = match plat.g_new_consumer(gp) {
            Ok(c) => c,
            Err(e) => return req.error(format_args!("Cannot create consumer: {e}")),
        };
        // As g_nop: direct dispatch both ways, on both ends.
        plat.set_consumer_direct(cp, Direct::BOTH);
        if let Err(e) = plat.g_attach(cp, pp) {
            plat.g_destroy_consumer(cp);
            plat.g_destroy_geom(gp);
            return req.error(format_args!("Cannot attach to {prov}: {e}"));
        }
        if let Some(g) = plat.topo().geom.get_mut(&gp) {
            g.softc = Some(Arc::new(PassSoftc { cp }));
        }
        match plat.g_new_provider(gp, &name, size, ss) {
            Ok(np) => {
                plat.set_provider_direct(np, Direct::BOTH);
                plat.g_error_provider(np, 0);
            }
            Err(e) => req.error(format_args!("Cannot create provider {name}: {e}")),
        }
    }

    fn destroy(&self, plat: &SimPlatform, req: &mut dyn CtlReq, name: &str, force: bool) {
        let Some(gp) = plat
            .g_class_geoms()
            .into_iter()
            .find(|&g| plat.geom_name_of(g).as_deref() == Some(name))
        else {
            return req.error(format_args!("Device {name} is invalid"));
        };
        if let Err(e) = self.destroy_one(plat, gp, force) {
            req.error(format_args!("Cannot destroy device {name} (error={e})"));
        }
    }

    fn destroy_one(&self, plat: &SimPlatform, gp: GeomId, force: bool) -> Result<(), Errno> {
        let open = plat
            .geom_providers(gp)
            .iter()
            .any(|&p| plat.provider_acc(p).is_some_and(|a| a.is_open()));
        if open && !force {
            return Err(EBUSY);
        }
        plat.g_wither_geom(gp, ENXIO);
        Ok(())
    }
}

impl SimClass for PassClass {
    fn name(&self) -> &str {
        "PASS"
    }

    fn start(&self, plat: &SimPlatform, gp: GeomId, bp: Bio) {
        plat.start_with_softc(gp, bp, |sc: Arc<PassSoftc>, bp| {
            plat.pass_down(bp, sc.cp, |_| {});
        });
    }

    fn orphan(&self, plat: &SimPlatform, cp: ConsumerId) {
        plat.wither_consumer_geom(cp);
    }

    fn access(&self, plat: &SimPlatform, pp: ProviderId, delta: Access) -> Result<(), Errno> {
        plat.pass_access::<PassSoftc>(pp, delta)
    }

    fn ctlreq(&self, plat: &SimPlatform, req: &mut dyn CtlReq, verb: &str) {
        match verb {
            "create" => match param_str(req, "arg0") {
                Some(p) => self.create(plat, req, &p),
                None => req.error(format_args!("No 'arg0' argument")),
            },
            "destroy" => {
                let force = param_int(req, "force").unwrap_or(0) != 0;
                match param_str(req, "arg0") {
                    Some(n) => self.destroy(plat, req, &n, force),
                    None => req.error(format_args!("No 'arg0' argument")),
                }
            }
            _ => req.error(format_args!("Unknown verb {verb}")),
        }
    }

    fn dumpconf(&self, plat: &SimPlatform, d: &mut Dumpconf<'_>) {
        if d.node == ConfNode::Geom {
            if let Some(sc) = plat.geom_softc::<PassSoftc>(d.gp) {
                d.line("Inflight", plat.consumer_inflight(sc.cp));
            }
        }
    }

    fn destroy_geom(&self, plat: &SimPlatform, gp: GeomId) -> Result<(), Errno> {
        self.destroy_one(plat, gp, false)
    }
}

impl SimPlatform {
    /// The pass-through part of a start method: sends a clone of `bp`,
    /// changed by `adjust`, down `cp` and gives `bp` up to it (g_std_done
    /// completes it); fails `bp` with ENOMEM when it cannot be cloned.
    pub fn pass_down(&self, bp: Bio, cp: ConsumerId, adjust: impl FnOnce(&mut Bio)) {
        let Some(mut child) = self.g_clone_bio(&bp) else {
            return self.g_io_deliver(bp, ENOMEM);
        };
        adjust(&mut child);
        self.release_to_children(bp);
        self.g_io_request(child, cp);
    }

    /// `gp->orphan` of a geom over one consumer: the geom withers (ENXIO).
    pub fn wither_consumer_geom(&self, cp: ConsumerId) {
        if let Some(gp) = self.consumer_geom(cp) {
            self.g_wither_geom(gp, ENXIO);
        }
    }

    /// `gp->access` of a pass-through geom whose softc is a `T`: the open
    /// or close of `pp` goes to its consumer; ENXIO without a softc.
    pub fn pass_access<T: PassThrough>(&self, pp: ProviderId, delta: Access) -> Result<(), Errno> {
        let gp = self.provider_geom(pp).ok_or(ENXIO)?;
        let sc = self.geom_softc::<T>(gp).ok_or(ENXIO)?;
        self.g_access(sc.consumer(), delta)
    }

    /// A start method that cloned children and sent them gives the parent
    /// handle up: it lives on through `bio_parent` and is delivered by the
    /// last child's g_std_done. Giving it up with no child in flight loses
    /// it, which is reported.
    pub fn release_to_children(&self, parent: Bio) {
        // Release before sending the children: once sent, a child may
        // complete the parent on another thread at any moment.
        let idle = self
            .bio_state(parent.id())
            .is_some_and(|(children, inbed)| children <= inbed);
        if idle {
            self.violation(
                crate::violation::rule::ONCE,
                format!("{parent:?} released with no child in flight: it will never complete"),
            );
        }
        let _ = parent.into_id();
    }

    /// Creates `NAME.pass` over provider `prov` (a gctl `create`).
    pub fn pass_create(&self, prov: &str) -> Result<(), String> {
        self.gctl_run("PASS", "create", &[], &[prov], false)
            .map(|_| ())
    }

    /// Destroys `NAME.pass` (a gctl `destroy`).
    pub fn pass_destroy(&self, name: &str, force: bool) -> Result<(), String> {
        self.gctl_run("PASS", "destroy", &[("force", force)], &[name], false)
            .map(|_| ())
    }
}
