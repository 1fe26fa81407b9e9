//! The MULTIPATH class: per-class state and the callbacks GEOM makes.
//! (skeleton: entry points fixed, bodies being written)

use alloc::sync::Arc;
use core::fmt;

use crate::platform::{Access, CtlReq, Errno, Platform};
use crate::worker::Worker;

/// The class (`struct g_class` state): one per platform instance.
pub struct Class<P: Platform> {
    worker: spin::Mutex<Option<Arc<Worker<P>>>>,
}

/// One multipath geom's state (`gp->softc`).
pub struct Softc<P: Platform> {
    _p: core::marker::PhantomData<P>,
}

impl<P: Platform> Default for Class<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Platform> Class<P> {
    pub const fn new() -> Self {
        Class { worker: spin::Mutex::new(None) }
    }
    /// `g_init_t`: starts the worker.
    pub fn init(&self, plat: &P) -> Result<(), Errno> {
        let w = Arc::new(Worker::new(plat)?);
        plat.start_worker(w.clone())?;
        *self.worker.lock() = Some(w);
        Ok(())
    }
    /// `g_fini_t`: stops and joins the worker.
    pub fn fini(&self, plat: &P) {
        let w = self.worker.lock().take();
        if let Some(w) = w {
            w.request_stop();
            plat.join_worker(&w);
        }
    }
    /// `g_taste_t` (topology held).
    pub fn taste(&self, _plat: &P, _pp: P::Provider) -> Option<P::Geom> {
        None
    }
    /// `g_ctl_req_t` (topology held).
    pub fn ctlreq(&self, _plat: &P, req: &mut dyn CtlReq, verb: &str) {
        req.error(format_args!("Unknown verb {}", verb));
    }
    /// `g_ctl_destroy_geom_t` (topology held).
    pub fn destroy_geom(&self, _plat: &P, _gp: P::Geom) -> Result<(), Errno> {
        Ok(())
    }
}

impl<P: Platform> Softc<P> {
    /// `g_start_t`: no topology lock, must not sleep.
    pub fn start(self: &Arc<Self>, plat: &P, bp: P::Bio) {
        plat.io_deliver(bp, crate::platform::ENXIO);
    }
    /// The child bio's done: no topology lock, must not sleep.
    pub fn child_done(self: &Arc<Self>, plat: &P, child: P::Bio) {
        plat.std_done(child);
    }
    /// Worker context: a child failed with EIO or ENXIO.
    pub fn handle_failed(self: Arc<Self>, plat: &P, child: P::Bio) {
        plat.std_done(child);
    }
    /// `g_orphan_t` (topology held).
    pub fn orphan(self: &Arc<Self>, _plat: &P, _cp: P::Consumer) {}
    /// `g_access_t` (topology held).
    pub fn access(self: &Arc<Self>, _plat: &P, _pp: P::Provider, _delta: Access) -> Result<(), Errno> {
        Ok(())
    }
    /// `g_dumpconf_t` (topology held): the XML `geom multipath list` reads.
    pub fn dumpconf(&self, _plat: &P, _sb: &mut dyn fmt::Write, _indent: &str, _cp: Option<P::Consumer>, _pp: Option<P::Provider>) {}
}
