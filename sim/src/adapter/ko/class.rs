//! [`KoClass`]: the loaded module's `struct g_class` as a simulator class.
//! Each [`SimClass`] method calls the module's own C callback (from the
//! class, or from the geom as `g_new_geomf` copied it), inside
//! [`crate::ko::enter`], with the C mirrors refreshed before and the
//! module's writes taken back after. And `g_modevent`, which registers
//! the class as FreeBSD's `geom_subr.c` does.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::Arc;

use geom_multipath_rs::platform::{Access, CtlReq, Errno, EBUSY, EINVAL, ENXIO, EOPNOTSUPP};

use crate::bio::Bio;
use crate::class::{Dumpconf, SimClass};
use crate::ids::{ConsumerId, GeomId, ProviderId};
use crate::ko::{self, KoKernel};
use crate::sim::SimPlatform;
use crate::violation::rule;

use super::gctl::{run_ctlreq, Sbuf};
use super::geom::c_string;
use super::kstructs as k;

/// The module's class, as the simulator loads it.
pub struct KoClass {
    kk: Arc<KoKernel>,
    mp: usize,
    name: String,
}

// SAFETY: `mp` is the module's static class object, which lives as long as
// the module is mapped (the instance unloads the class before unmapping);
// GEOM serialises the callbacks that write it.
unsafe impl Send for KoClass {}
// SAFETY: as above.
unsafe impl Sync for KoClass {}

impl KoClass {
    /// # Safety
    /// `mp` is the module's `struct g_class`, mapped for the instance's
    /// lifetime.
    pub unsafe fn new(kk: Arc<KoKernel>, mp: *mut k::g_class) -> KoClass {
        // SAFETY: per the contract; the class's name is a C string.
        let name = unsafe { super::geom::str_of((*mp).name) };
        KoClass {
            kk,
            mp: mp as usize,
            name,
        }
    }

    fn mp(&self) -> *mut k::g_class {
        self.mp as *mut k::g_class
    }

    /// Runs module code for this instance with the mirrors in sync, under
    /// the panic guard: None when the module called `panic(9)` (recorded
    /// as a violation by the kernel side).
    fn call<R: Copy>(&self, plat: &SimPlatform, mut f: impl FnMut() -> R) -> Option<R> {
        ko::enter(&self.kk, plat, || {
            self.kk.geom.sync_out(plat);
            let r = guard(&mut f);
            self.kk.geom.sync(plat);
            r
        })
    }

    /// Module code on g_down/g_up: no topology sync (the lock is not held
    /// and I/O paths read no topology fields that change there).
    fn call_io(&self, plat: &SimPlatform, mut f: impl FnMut()) {
        ko::enter(&self.kk, plat, || guard(&mut f));
    }

    fn geom_ptr(&self, plat: &SimPlatform, gp: GeomId) -> *mut k::g_geom {
        self.kk.geom.geom_ptr(plat, gp)
    }
}

/// Runs `f` (a call of a module function pointer, with plain results)
/// under the kernel side's panic guard.
pub(crate) fn guard<R: Copy>(f: &mut dyn FnMut() -> R) -> Option<R> {
    let mut r = None;
    match ko::guarded(&mut || r = Some(f())) {
        ko::Outcome::Returned => r,
        _ => None,
    }
}

impl SimClass for KoClass {
    fn name(&self) -> &str {
        &self.name
    }

    fn init(&self, plat: &SimPlatform) -> Result<(), Errno> {
        // SAFETY: the module's class; init takes it.
        if let Some(f) = unsafe { (*self.mp()).init } {
            // SAFETY: as g_load_class calls it, topology lock held.
            let _ = self.call(plat, || unsafe { f(self.mp()) });
        }
        Ok(())
    }

    fn fini(&self, plat: &SimPlatform) {
        // SAFETY: the module's class.
        if let Some(f) = unsafe { (*self.mp()).fini } {
            // SAFETY: as g_unload_class calls it, topology lock held.
            let _ = self.call(plat, || unsafe { f(self.mp()) });
        }
    }

    fn tastes(&self) -> bool {
        // SAFETY: the module's class.
        unsafe { (*self.mp()).taste }.is_some()
    }

    fn taste(&self, plat: &SimPlatform, pp: ProviderId) -> Option<GeomId> {
        // SAFETY: the module's class.
        let f = unsafe { (*self.mp()).taste }?;
        let c_pp = self.kk.geom.provider_ptr(plat, pp);
        // SAFETY: taste(mp, pp, 0) as g_new_provider_event calls it.
        let gp = self.call(plat, || unsafe { f(self.mp(), c_pp, 0) })?;
        if gp.is_null() {
            None
        } else {
            self.kk.geom.geom_id(gp)
        }
    }

    fn start(&self, plat: &SimPlatform, gp: GeomId, bp: Bio) {
        let g = self.geom_ptr(plat, gp);
        // SAFETY: a live geom mirror.
        let Some(f) = (unsafe { (*g).start }) else {
            plat.violation(rule::CLASS, format!("start on {gp:?}, which has no start"));
            return plat.g_io_deliver(bp, ENXIO);
        };
        let c = self.kk.geom.bio_for_start(plat, bp);
        // SAFETY: gp->start(bp) with a bio at one of its providers, as
        // g_down calls it.
        self.call_io(plat, || unsafe { f(c) });
    }

    fn done(&self, plat: &SimPlatform, gp: GeomId, bp: Bio) {
        // The child's bio_done runs under the guard in child_done.
        ko::enter(&self.kk, plat, || self.kk.geom.child_done(plat, gp, bp));
    }

    fn orphan(&self, plat: &SimPlatform, cp: ConsumerId) {
        let c = self.kk.geom.consumer_ptr(plat, cp);
        // SAFETY: a live consumer mirror, on a geom mirror.
        let f = unsafe { (*(*c).geom).orphan };
        match f {
            // SAFETY: gp->orphan(cp), topology lock held.
            Some(f) => {
                let _ = self.call(plat, || unsafe { f(c) });
            }
            None => plat.violation(rule::CLASS, format!("orphan of {cp:?}: geom has no orphan")),
        }
    }

    fn has_resize(&self) -> bool {
        // SAFETY: the module's class.
        unsafe { (*self.mp()).resize }.is_some()
    }

    fn resize(&self, plat: &SimPlatform, cp: ConsumerId) {
        let c = self.kk.geom.consumer_ptr(plat, cp);
        // SAFETY: a live consumer mirror, on a geom mirror.
        if let Some(f) = unsafe { (*(*c).geom).resize } {
            // SAFETY: gp->resize(cp), topology lock held.
            let _ = self.call(plat, || unsafe { f(c) });
        }
    }

    fn access(&self, plat: &SimPlatform, pp: ProviderId, d: Access) -> Result<(), Errno> {
        let p = self.kk.geom.provider_ptr(plat, pp);
        // SAFETY: a live provider mirror, on a geom mirror.
        let f = unsafe { (*(*p).geom).access }.ok_or(ENXIO)?;
        // SAFETY: gp->access(pp, dr, dw, de), topology lock held.
        let e = self
            .call(plat, || unsafe { f(p, d.r, d.w, d.e) })
            .unwrap_or(ENXIO);
        if e == 0 {
            // g_access adds the delta once the method said yes, before
            // anyone else runs: so does the mirror (the simulator's counts
            // change right after this returns).
            self.kk.geom.add_provider_access(pp, d);
            Ok(())
        } else {
            Err(e)
        }
    }

    fn ctlreq(&self, plat: &SimPlatform, req: &mut dyn CtlReq, _verb: &str) {
        let geom = &self.kk.geom;
        ko::enter(&self.kk, plat, || run_ctlreq(geom, plat, self.mp(), req));
    }

    fn dumpconf(&self, plat: &SimPlatform, d: &mut Dumpconf<'_>) {
        let g = self.geom_ptr(plat, d.gp);
        // SAFETY: a live geom mirror.
        let Some(f) = (unsafe { (*g).dumpconf }) else {
            return;
        };
        let geom = &self.kk.geom;
        let c = d
            .cp()
            .map_or(std::ptr::null_mut(), |c| geom.consumer_ptr(plat, c));
        let p = d
            .pp()
            .map_or(std::ptr::null_mut(), |p| geom.provider_ptr(plat, p));
        let s = Sbuf::new(geom);
        let ind = c_string(d.indent);
        // SAFETY: gp->dumpconf(sb, indent, gp, cp, pp), topology lock held.
        let (sp, ip) = (s.as_ptr(), ind.as_ptr());
        let _ = self.call(plat, || unsafe { f(sp, ip, g, c, p) });
        let _ = d.sb.write_str(&s.text());
        s.free(&self.kk.geom);
    }

    fn destroy_geom(&self, plat: &SimPlatform, gp: GeomId) -> Result<(), Errno> {
        // SAFETY: the module's class.
        let f = unsafe { (*self.mp()).destroy_geom }.ok_or(EOPNOTSUPP)?;
        let g = self.geom_ptr(plat, gp);
        // SAFETY: destroy_geom(NULL, mp, gp) as g_unload_class calls it.
        let e = self
            .call(plat, || unsafe { f(std::ptr::null_mut(), self.mp(), g) })
            .unwrap_or(ENXIO);
        if e == 0 {
            Ok(())
        } else {
            Err(e)
        }
    }
}

/// `g_modevent(mod, type, mp)`: the event handler `DECLARE_GEOM_CLASS`
/// puts in the module's moduledata. MOD_LOAD checks the class version and
/// loads the class (init, then taste of every provider); MOD_UNLOAD
/// unloads it (EBUSY while anything of it is open).
pub(crate) extern "C" fn g_modevent(_mod: k::module_t, what: c_int, data: *mut c_void) -> c_int {
    let kk = ko::current();
    let plat = ko::current_plat();
    let mp = data as *mut k::g_class;
    if mp.is_null() {
        plat.violation(rule::CLASS, "g_modevent with a NULL class".into());
        return EINVAL;
    }
    // SAFETY: the module passes its class; its name is a C string or NULL.
    let (version, name) = unsafe { ((*mp).version, class_name(mp)) };
    if version != k::G_VERSION {
        plat.console(format!("GEOM class {name} has Wrong version {version:x}"));
        return EINVAL;
    }
    match what as k::modeventtype {
        k::MOD_LOAD => load(&kk, &plat, mp, &name),
        k::MOD_UNLOAD => unload(&kk, &plat, mp, &name),
        _ => EOPNOTSUPP,
    }
}

/// The class's name (empty when it has none, which g_load_class asserts).
///
/// # Safety
/// `mp` is a live class.
unsafe fn class_name(mp: *mut k::g_class) -> String {
    // SAFETY: per the contract.
    unsafe {
        if (*mp).name.is_null() {
            String::new()
        } else {
            CStr::from_ptr((*mp).name as *const c_char)
                .to_string_lossy()
                .into_owned()
        }
    }
}

fn load(kk: &Arc<KoKernel>, plat: &SimPlatform, mp: *mut k::g_class, name: &str) -> c_int {
    if name.is_empty() {
        plat.violation(rule::CLASS, "GEOM class has no name".into());
        return EINVAL;
    }
    let (old, _) = kk.geom.class();
    if !old.is_null() {
        plat.console(format!("The GEOM class {name} is already loaded."));
        return geom_multipath_rs::platform::EEXIST;
    }
    // LIST_INIT(&mp->geom) as g_load_class does, before init and taste.
    // SAFETY: the module's class, not yet registered.
    unsafe { (*mp).geom.lh_first = std::ptr::null_mut() };
    kk.geom.set_class(mp, None);
    // SAFETY: `mp` is the module's class, mapped while the instance lives.
    let imp = Arc::new(unsafe { KoClass::new(kk.clone(), mp) });
    match plat.load_class(imp) {
        Ok(id) => {
            kk.geom.set_class(mp, Some(id));
            0
        }
        Err(e) => {
            kk.geom.set_class(std::ptr::null_mut(), None);
            e
        }
    }
}

fn unload(kk: &Arc<KoKernel>, plat: &SimPlatform, mp: *mut k::g_class, name: &str) -> c_int {
    let (cur, id) = kk.geom.class();
    let Some(id) = id.filter(|_| cur == mp) else {
        // module_register_init sends MOD_UNLOAD after a failed MOD_LOAD
        // (e.g. EEXIST): nothing of the class was registered to remove.
        return 0;
    };
    match plat.unload_class(id) {
        Ok(()) => {
            kk.geom.sync_out(plat);
            // SAFETY: the module's class.
            if !unsafe { (*mp).geom.lh_first }.is_null() {
                plat.violation(
                    rule::CLASS,
                    format!("Unloaded class ({name}) still has geom"),
                );
            }
            kk.geom.set_class(std::ptr::null_mut(), None);
            0
        }
        Err(e) if e == EBUSY => EBUSY,
        Err(e) => e,
    }
}

/// `g_modevent` for the symbol table.
pub fn symbols() -> Vec<(&'static str, crate::ko::Sym)> {
    funcs![
        "g_modevent" => g_modevent,
    ]
}
