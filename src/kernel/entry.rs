//! The `extern "C"` functions the shim's GEOM callbacks call (`gmr_rs_*` in
//! `sys-bindings/shim.h`). Each one turns raw pointers into the platform's
//! handles and forwards to the static [`Class`](crate::class::Class) or to the
//! geom's [`Softc`](crate::class::Softc); none makes a decision of its own
//! beyond what to do when GEOM calls a geom that has no softc (the transient
//! taste geom, which never has a provider or an open consumer).
//!
//! The `const _` lines check each definition against the signature shim.h
//! declares, so the two cannot drift apart silently.
//!
//! On the kernel target the symbols are exported unmangled for the shim; on
//! the host (clippy and tests with `--features kernel`) they are ordinary
//! functions, so nothing links against a missing shim.

use alloc::sync::Arc;
use core::ffi::{c_char, c_void};
use core::mem::ManuallyDrop;
use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use freebsd_kpi as kpi;

use super::text::cstr_as_str;
use super::{
    Bio, Consumer, GctlReq, Geom, KSoftc, KernelPlatform, Provider, SbufWriter, CLASS, PLATFORM,
};
use crate::platform::{Access, CtlReq, Platform, ENXIO};
use crate::worker::Worker;

/// Borrows the geom's softc without changing its reference count.
///
/// # Safety
/// `softc` is NULL or the `gp->softc` of a geom GEOM is calling back into
/// right now; that reference (see the module docs of `kernel`) outlives the
/// callback.
unsafe fn softc_ref(softc: *mut c_void) -> Option<ManuallyDrop<Arc<KSoftc>>> {
    if softc.is_null() {
        return None;
    }
    // SAFETY: gp->softc is only NULL or Arc::into_raw of a KSoftc, alive for
    // the callback (this function's contract); ManuallyDrop keeps this
    // borrowed Arc from releasing the geom's reference.
    Some(ManuallyDrop::new(unsafe {
        Arc::from_raw(softc as *const KSoftc)
    }))
}

/// Copies kern.geom.multipath.{debug,exclusive} into the class before the
/// callbacks that use them (taste and ctlreq add paths), so a sysctl
/// change applies to paths added from then on, as in FreeBSD.
fn refresh_tunables() {
    // SAFETY: plain reads of two integers owned by the shim; no pointers.
    let (debug, exclusive) = unsafe { (kpi::gmr_tunable_debug(), kpi::gmr_tunable_exclusive()) };
    CLASS.debug.store(debug, Ordering::Relaxed);
    CLASS.exclusive.store(exclusive != 0, Ordering::Relaxed);
}

/// `g_taste_t` (topology lock held).
///
/// # Safety
/// Called by the shim's taste callback with the provider GEOM passed.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn gmr_rs_taste(pp: *mut kpi::g_provider) -> *mut kpi::g_geom {
    refresh_tunables();
    match Provider::from_ptr(pp) {
        Some(pp) => CLASS
            .taste(&PLATFORM, pp)
            .map_or(core::ptr::null_mut(), Geom::as_ptr),
        None => core::ptr::null_mut(),
    }
}
const _: kpi::gmr_rs_taste_t = Some(gmr_rs_taste);

/// `g_start_t`: no topology lock, must not sleep.
///
/// # Safety
/// `bp` is the bio GEOM passed to start (owned from now on) and `softc` its
/// geom's `gp->softc`.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn gmr_rs_start(bp: *mut kpi::bio, softc: *mut c_void) {
    let Some(bp) = NonNull::new(bp) else { return };
    // SAFETY: GEOM hands the bio to start, which now owns it.
    let bio = unsafe { Bio::from_raw(bp) };
    // SAFETY: `softc` is the geom's softc pointer (function contract).
    match unsafe { softc_ref(softc) } {
        Some(sc) => sc.start(&PLATFORM, bio),
        None => PLATFORM.io_deliver(bio, ENXIO),
    }
}
const _: kpi::gmr_rs_start_t = Some(gmr_rs_start);

/// A child bio's done (`bio_done` of every clone): no topology lock, must not
/// sleep.
///
/// # Safety
/// `bp` is a child bio made by `gmr_bio_clone`, now complete, and `softc` the
/// `gp->softc` of the geom whose consumer it was sent down.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn gmr_rs_child_done(bp: *mut kpi::bio, softc: *mut c_void) {
    let Some(bp) = NonNull::new(bp) else { return };
    // SAFETY: GEOM hands the completed child to its done, which owns it.
    let bio = unsafe { Bio::from_raw(bp) };
    // SAFETY: `softc` is the geom's softc pointer (function contract); the
    // geom outlives its consumers' in-flight bios.
    match unsafe { softc_ref(softc) } {
        Some(sc) => sc.child_done(&PLATFORM, bio),
        None => PLATFORM.std_done(bio),
    }
}
const _: kpi::gmr_rs_child_done_t = Some(gmr_rs_child_done);

/// `g_orphan_t` (topology lock held).
///
/// # Safety
/// `cp` is the consumer GEOM orphans and `softc` its geom's `gp->softc`.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn gmr_rs_orphan(cp: *mut kpi::g_consumer, softc: *mut c_void) {
    let Some(cp) = Consumer::from_ptr(cp) else {
        return;
    };
    // SAFETY: `softc` is the geom's softc pointer (function contract).
    match unsafe { softc_ref(softc) } {
        Some(sc) => sc.orphan(&PLATFORM, cp),
        None => crate::mp_log!(&PLATFORM, "orphan event on a geom without state ignored"),
    }
}
const _: kpi::gmr_rs_orphan_t = Some(gmr_rs_orphan);

/// `g_resize_t` (topology lock held): the provider under `cp` changed size.
///
/// # Safety
/// `cp` is the consumer GEOM passed and `softc` its geom's `gp->softc`.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn gmr_rs_resize(cp: *mut kpi::g_consumer, softc: *mut c_void) {
    let Some(cp) = Consumer::from_ptr(cp) else {
        return;
    };
    // SAFETY: `softc` is the geom's softc pointer (function contract).
    // The taste geom has none, and nothing to resize.
    if let Some(sc) = unsafe { softc_ref(softc) } {
        sc.resize(&PLATFORM, cp);
    }
}
const _: kpi::gmr_rs_resize_t = Some(gmr_rs_resize);

/// `g_access_t` (topology lock held).
///
/// # Safety
/// `pp` is the provider being opened or closed and `softc` its geom's
/// `gp->softc`.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn gmr_rs_access(
    pp: *mut kpi::g_provider,
    softc: *mut c_void,
    dr: i32,
    dw: i32,
    de: i32,
) -> i32 {
    let Some(pp) = Provider::from_ptr(pp) else {
        return ENXIO;
    };
    // SAFETY: `softc` is the geom's softc pointer (function contract).
    match unsafe { softc_ref(softc) } {
        Some(sc) => match sc.access(&PLATFORM, pp, Access::new(dr, dw, de)) {
            Ok(()) => 0,
            Err(e) => e,
        },
        // A geom without state can always be closed, never opened.
        None if dr <= 0 && dw <= 0 && de <= 0 => 0,
        None => ENXIO,
    }
}
const _: kpi::gmr_rs_access_t = Some(gmr_rs_access);

/// `g_ctl_req_t` (topology lock held).
///
/// # Safety
/// `req` is the request GEOM passed and `verb` its NUL-terminated verb.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn gmr_rs_ctlreq(req: *mut kpi::gctl_req, verb: *const c_char) {
    refresh_tunables();
    let Some(req) = NonNull::new(req) else { return };
    // SAFETY: `req` is the request of this callback, and `r` is dropped
    // before the callback returns.
    let mut r = unsafe { GctlReq::new(req) };
    // SAFETY: `verb` is NULL or a NUL-terminated string GEOM keeps for the
    // duration of the callback.
    match unsafe { cstr_as_str(verb) } {
        Some(v) => CLASS.ctlreq(&PLATFORM, &mut r, v),
        None => r.error(format_args!("Invalid verb.")),
    }
}
const _: kpi::gmr_rs_ctlreq_t = Some(gmr_rs_ctlreq);

/// `g_ctl_destroy_geom_t` (topology lock held): class unload asks every geom
/// to go.
///
/// # Safety
/// `gp` is a geom of the class.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn gmr_rs_destroy_geom(gp: *mut kpi::g_geom) -> i32 {
    let Some(gp) = Geom::from_ptr(gp) else {
        return 0;
    };
    match CLASS.destroy_geom(&PLATFORM, gp) {
        Ok(()) => 0,
        Err(e) => e,
    }
}
const _: kpi::gmr_rs_destroy_geom_t = Some(gmr_rs_destroy_geom);

/// `g_init_t`: the class is being loaded.
///
/// # Safety
/// Called once by the shim's init callback.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn gmr_rs_init() {
    if let Err(e) = CLASS.init(&PLATFORM) {
        crate::mp_log!(&PLATFORM, "cannot start the failover worker (error {})", e);
    }
}
const _: kpi::gmr_rs_init_t = Some(gmr_rs_init);

/// `g_fini_t`: the class is being unloaded; GEOM has destroyed its geoms.
///
/// # Safety
/// Called once by the shim's fini callback, after init.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn gmr_rs_fini() {
    CLASS.fini(&PLATFORM);
    super::release_all_softcs();
}
const _: kpi::gmr_rs_fini_t = Some(gmr_rs_fini);

/// `g_dumpconf_t` (topology lock held): the XML of `geom multipath list`.
///
/// # Safety
/// `sb` and `indent` are what GEOM passed; `softc` is the geom's `gp->softc`;
/// `cp` and `pp` are NULL or the consumer or provider being described.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn gmr_rs_dumpconf(
    sb: *mut kpi::sbuf,
    indent: *const c_char,
    softc: *mut c_void,
    cp: *mut kpi::g_consumer,
    pp: *mut kpi::g_provider,
) {
    let Some(sb) = NonNull::new(sb) else { return };
    // SAFETY: `softc` is the geom's softc pointer (function contract).
    let Some(sc) = (unsafe { softc_ref(softc) }) else {
        return;
    };
    // SAFETY: `sb` is this callback's sbuf and `w` is dropped before it
    // returns.
    let mut w = unsafe { SbufWriter::new(sb) };
    // SAFETY: `indent` is NULL or a NUL-terminated string GEOM keeps for the
    // callback.
    let indent = unsafe { cstr_as_str(indent) }.unwrap_or("");
    sc.dumpconf(
        &PLATFORM,
        &mut w,
        indent,
        Consumer::from_ptr(cp),
        Provider::from_ptr(pp),
    );
}
const _: kpi::gmr_rs_dumpconf_t = Some(gmr_rs_dumpconf);

/// The failover worker kproc's body; when it returns, the shim waits for
/// fini's `gmr_kproc_join` and calls kproc_exit(0).
///
/// # Safety
/// `arg` is the worker pointer `KernelPlatform::start_worker` lent, which
/// stays valid until `join_worker` has seen the kproc leave module code.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn gmr_rs_worker_main(arg: *mut c_void) {
    if arg.is_null() {
        return;
    }
    // SAFETY: see the function contract: the Arc reference behind `arg` is
    // released only by join_worker, after run() has returned.
    let w = unsafe { &*arg.cast::<Worker<KernelPlatform>>() };
    w.run(&PLATFORM);
}
const _: kpi::gmr_rs_worker_main_t = Some(gmr_rs_worker_main);
