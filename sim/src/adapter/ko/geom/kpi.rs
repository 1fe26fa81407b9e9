//! The GEOM functions the module imports (`geom_subr.c`, `geom_io.c`,
//! `geom_event.c`), as `extern "C"` functions over the simulator. Each runs
//! for the calling thread's instance ([`crate::ko::current`]), maps the C
//! pointers to simulator ids, calls the simulator's checked operation, and
//! refreshes the C mirrors.

use std::ffi::{c_char, c_int, c_void};
use std::ptr;
use std::sync::Arc;

use geom_multipath_rs::platform::Access;

use crate::ids::{ConsumerId, GeomId, ProviderId};
use crate::ko::{self, KoKernel};
use crate::sim::SimPlatform;
use crate::violation::rule;

use super::super::kstructs as k;
use super::str_of;

/// The calling thread's instance and its class-bound simulator handle,
/// with the module's own provider writes already pushed in.
fn ctx() -> (Arc<KoKernel>, SimPlatform) {
    let kk = ko::current();
    let plat = kk.geom.bound(&ko::current_plat());
    kk.geom.sync_in(&plat);
    (kk, plat)
}

/// Reports a pointer that names no object of this GEOM.
fn unknown(plat: &SimPlatform, what: &str, p: *const c_void) {
    plat.violation(
        rule::STALE,
        format!("{what}({p:p}): no such object (never created, or already destroyed)"),
    );
}

/// The body of a void GEOM function on one object: maps `ptr` to its
/// simulator id with `id_of` (a pointer that names no object is reported
/// as a call of `what`, and nothing else happens), runs `op` on it, then
/// refreshes the C mirrors.
fn on_object<P, I>(
    what: &str,
    ptr: *mut P,
    id_of: impl FnOnce(&KoKernel) -> Option<I>,
    op: impl FnOnce(&SimPlatform, I),
) {
    let (kk, plat) = ctx();
    let Some(id) = id_of(&kk) else {
        return unknown(&plat, what, ptr as *const c_void);
    };
    op(&plat, id);
    kk.geom.sync_out(&plat);
}

/// [`on_object`] for a geom.
fn on_geom(what: &str, gp: *mut k::g_geom, op: impl FnOnce(&SimPlatform, GeomId)) {
    on_object(what, gp, |kk| kk.geom.geom_id(gp), op);
}

/// [`on_object`] for a provider.
fn on_provider(what: &str, pp: *mut k::g_provider, op: impl FnOnce(&SimPlatform, ProviderId)) {
    on_object(what, pp, |kk| kk.geom.provider_id(pp), op);
}

/// [`on_object`] for a consumer.
fn on_consumer(what: &str, cp: *mut k::g_consumer, op: impl FnOnce(&SimPlatform, ConsumerId)) {
    on_object(what, cp, |kk| kk.geom.consumer_id(cp), op);
}

/// `g_new_geomf`'s backend with C's `void *` types, for kprintf.c.
pub(crate) unsafe extern "C" fn gmr_emu_g_new_geom_raw(
    mp: *mut c_void,
    name: *const c_char,
) -> *mut c_void {
    gmr_emu_g_new_geom(mp as *mut k::g_class, name) as *mut c_void
}

/// `g_new_providerf`'s backend with C's `void *` types, for kprintf.c.
pub(crate) unsafe extern "C" fn gmr_emu_g_new_provider_raw(
    gp: *mut c_void,
    name: *const c_char,
) -> *mut c_void {
    gmr_emu_g_new_provider(gp as *mut k::g_geom, name) as *mut c_void
}

/// `g_new_geomf`'s backend (the C wrapper formats the name).
pub(crate) extern "C" fn gmr_emu_g_new_geom(
    mp: *mut k::g_class,
    name: *const c_char,
) -> *mut k::g_geom {
    let (kk, plat) = ctx();
    let (class, _) = kk.geom.class();
    if mp.is_null() || mp != class {
        plat.violation(
            rule::CLASS,
            format!("g_new_geomf({mp:p}): not the class this module registered ({class:p})"),
        );
        return ptr::null_mut();
    }
    // SAFETY: the C wrapper passes a NUL-terminated formatted name.
    let name = unsafe { str_of(name) };
    match plat.g_new_geom(&name, None) {
        Ok(gp) => kk.geom.new_geom(gp, mp, &name),
        Err(_) => ptr::null_mut(),
    }
}

/// `g_new_providerf`'s backend.
pub(crate) extern "C" fn gmr_emu_g_new_provider(
    gp: *mut k::g_geom,
    name: *const c_char,
) -> *mut k::g_provider {
    let (kk, plat) = ctx();
    let Some(gid) = kk.geom.geom_id(gp) else {
        unknown(&plat, "g_new_providerf", gp as *const c_void);
        return ptr::null_mut();
    };
    // SAFETY: `gp` is a live mirror.
    let (access, start) = unsafe { ((*gp).access, (*gp).start) };
    if access.is_none() || start.is_none() {
        plat.violation(
            rule::CLASS,
            "new provider on a geom without ->access or ->start".into(),
        );
    }
    // SAFETY: the C wrapper passes a NUL-terminated formatted name.
    let name = unsafe { str_of(name) };
    match plat.g_new_provider(gid, &name, 0, 0) {
        Ok(pp) => kk.geom.new_provider(&plat, pp),
        Err(_) => ptr::null_mut(),
    }
}

/// `g_new_consumer(gp)`.
pub(crate) extern "C" fn g_new_consumer(gp: *mut k::g_geom) -> *mut k::g_consumer {
    let (kk, plat) = ctx();
    let Some(gid) = kk.geom.geom_id(gp) else {
        unknown(&plat, "g_new_consumer", gp as *const c_void);
        return ptr::null_mut();
    };
    // SAFETY: `gp` is a live mirror.
    if unsafe { (*gp).orphan }.is_none() {
        plat.violation(
            rule::CLASS,
            "g_new_consumer on a geom without orphan".into(),
        );
    }
    match plat.g_new_consumer(gid) {
        Ok(cp) => kk.geom.new_consumer(&plat, cp),
        Err(_) => ptr::null_mut(),
    }
}

/// `g_attach(cp, pp)`.
pub(crate) extern "C" fn g_attach(cp: *mut k::g_consumer, pp: *mut k::g_provider) -> c_int {
    let (kk, plat) = ctx();
    let (Some(c), Some(p)) = (kk.geom.consumer_id(cp), kk.geom.provider_id(pp)) else {
        unknown(&plat, "g_attach", cp as *const c_void);
        return crate::ENXIO;
    };
    // SAFETY: `cp` is a live mirror.
    if !unsafe { (*cp).provider }.is_null() {
        plat.violation(rule::ATTACH, "g_attach of an attached consumer".into());
    }
    let r = plat.g_attach(c, p);
    kk.geom.sync_out(&plat);
    r.err().unwrap_or(0)
}

/// `g_detach(cp)`.
pub(crate) extern "C" fn g_detach(cp: *mut k::g_consumer) {
    on_consumer("g_detach", cp, |plat, c| plat.g_detach(c));
}

/// `g_destroy_consumer(cp)`.
pub(crate) extern "C" fn g_destroy_consumer(cp: *mut k::g_consumer) {
    on_consumer("g_destroy_consumer", cp, |plat, c| {
        plat.g_destroy_consumer(c)
    });
}

/// `g_access(cp, dr, dw, de)`.
pub(crate) extern "C" fn g_access(
    cp: *mut k::g_consumer,
    dr: c_int,
    dw: c_int,
    de: c_int,
) -> c_int {
    let (kk, plat) = ctx();
    let Some(c) = kk.geom.consumer_id(cp) else {
        unknown(&plat, "g_access", cp as *const c_void);
        return crate::ENXIO;
    };
    let r = plat.g_access(c, Access::new(dr, dw, de));
    kk.geom.sync_out(&plat);
    r.err().unwrap_or(0)
}

/// `g_destroy_geom(gp)`.
pub(crate) extern "C" fn g_destroy_geom(gp: *mut k::g_geom) {
    on_geom("g_destroy_geom", gp, |plat, g| plat.g_destroy_geom(g));
}

/// `g_wither_geom(gp, error)`.
pub(crate) extern "C" fn g_wither_geom(gp: *mut k::g_geom, error: c_int) {
    on_geom("g_wither_geom", gp, |plat, g| plat.g_wither_geom(g, error));
}

/// `g_wither_provider(pp, error)`.
pub(crate) extern "C" fn g_wither_provider(pp: *mut k::g_provider, error: c_int) {
    on_provider("g_wither_provider", pp, |plat, p| {
        plat.g_wither_provider(p, error)
    });
}

/// `g_error_provider(pp, error)`.
pub(crate) extern "C" fn g_error_provider(pp: *mut k::g_provider, error: c_int) {
    on_provider("g_error_provider", pp, |plat, p| {
        plat.g_error_provider(p, error)
    });
}

/// `g_resize_provider(pp, size)`.
pub(crate) extern "C" fn g_resize_provider(pp: *mut k::g_provider, size: k::off_t) {
    let (kk, plat) = ctx();
    let Some(p) = kk.geom.provider_id(pp) else {
        return unknown(&plat, "g_resize_provider", pp as *const c_void);
    };
    if size < 0 {
        return plat.violation(rule::IO, format!("g_resize_provider to {size}"));
    }
    plat.g_resize_provider(p, size as u64);
    kk.geom.sync_out(&plat);
}

/// `g_provider_by_name(name)` (a leading "/dev/" is skipped).
pub(crate) extern "C" fn g_provider_by_name(name: *const c_char) -> *mut k::g_provider {
    let (kk, plat) = ctx();
    // SAFETY: the module passes a NUL-terminated string.
    let name = unsafe { str_of(name) };
    let name = name.strip_prefix("/dev/").unwrap_or(&name);
    match plat.g_provider_by_name(name) {
        Some(pp) => kk.geom.provider_ptr(&plat, pp),
        None => ptr::null_mut(),
    }
}

/// `g_read_data(cp, offset, length, &error)`: a buffer the module frees
/// with `g_free` (`free(p, M_GEOM)`).
pub(crate) extern "C" fn g_read_data(
    cp: *mut k::g_consumer,
    offset: k::off_t,
    length: k::off_t,
    error: *mut c_int,
) -> *mut c_void {
    let (kk, plat) = ctx();
    let set_err = |e: c_int| {
        if !error.is_null() {
            // SAFETY: the module passes its own int.
            unsafe { *error = e };
        }
    };
    let Some(c) = kk.geom.consumer_id(cp) else {
        unknown(&plat, "g_read_data", cp as *const c_void);
        set_err(crate::ENXIO);
        return ptr::null_mut();
    };
    if offset < 0 || length <= 0 {
        set_err(crate::EINVAL);
        return ptr::null_mut();
    }
    match plat.g_read_data(c, offset as u64, length as usize) {
        Ok(data) => {
            let mtp = kk.geom.m_geom(&kk);
            let p = ko::kern::kmalloc(&kk, data.len(), mtp, k::M_WAITOK as c_int);
            if p.is_null() {
                set_err(crate::ENOMEM);
                return p;
            }
            // SAFETY: `p` has room for `data.len()` bytes.
            unsafe { ptr::copy_nonoverlapping(data.as_ptr(), p as *mut u8, data.len()) };
            set_err(0);
            p
        }
        Err(e) => {
            set_err(e);
            ptr::null_mut()
        }
    }
}

/// `g_write_data(cp, offset, ptr, length)`.
pub(crate) extern "C" fn g_write_data(
    cp: *mut k::g_consumer,
    offset: k::off_t,
    data: *mut c_void,
    length: k::off_t,
) -> c_int {
    let (kk, plat) = ctx();
    let Some(c) = kk.geom.consumer_id(cp) else {
        unknown(&plat, "g_write_data", cp as *const c_void);
        return crate::ENXIO;
    };
    if offset < 0 || length <= 0 || data.is_null() {
        return crate::EINVAL;
    }
    // SAFETY: the module passes `length` readable bytes at `data`.
    let buf = unsafe { std::slice::from_raw_parts(data as *const u8, length as usize) };
    plat.g_write_data(c, offset as u64, buf).err().unwrap_or(0)
}

/// `g_event_t`: `void fn(void *arg, int flag)`.
type EventFn = unsafe extern "C" fn(*mut c_void, c_int);

/// `g_post_event(func, arg, flag, ...)`: runs `func(arg, 0)` on the event
/// thread with the topology lock held. The references after `flag` (for
/// `g_cancel_event`, which the module does not import) are not read.
pub(crate) extern "C" fn g_post_event(
    func: Option<EventFn>,
    arg: *mut c_void,
    flag: c_int,
) -> c_int {
    let (kk, plat) = ctx();
    let Some(func) = func else {
        plat.violation(rule::CLASS, "g_post_event with a NULL function".into());
        return crate::EINVAL;
    };
    // g_post_event's KASSERT: exactly one of M_WAITOK and M_NOWAIT; and
    // M_WAITOK (g_alloc_event's malloc) may sleep.
    let (nowait, waitok) = (k::M_NOWAIT as c_int, k::M_WAITOK as c_int);
    if flag != nowait && flag != waitok {
        plat.violation(
            rule::CLASS,
            format!("g_post_event with flag {flag:#x}: exactly one of M_WAITOK and M_NOWAIT"),
        );
    }
    // A bad flag is forced to M_WAITOK, as INVARIANTS' malloc does.
    if flag != nowait {
        for (r, m) in kk
            .kern
            .locks
            .check_may_sleep("g_post_event(M_WAITOK)", None)
        {
            plat.violation(r, m);
        }
    } else if ko::kern::should_fail_nowait_at("g_post_event") {
        return crate::ENOMEM;
    }
    let arg = arg as usize;
    let bound = plat.clone();
    plat.g_post_event(move |_| {
        ko::enter(&kk, &bound, || {
            kk.geom.sync_out(&bound);
            // SAFETY: the module's event handler with its own argument, on
            // the event thread with the topology lock held, as GEOM runs it.
            let _ = crate::ko::class::guard(&mut || unsafe { func(arg as *mut c_void, 0) });
            kk.geom.sync(&bound);
        });
    });
    0
}

/// `g_clone_bio(bp)`.
pub(crate) extern "C" fn g_clone_bio(bp: *mut k::bio) -> *mut k::bio {
    let kk = ko::current();
    let plat = kk.geom.bound(&ko::current_plat());
    if ko::kern::should_fail_nowait_at("g_clone_bio") {
        return ptr::null_mut();
    }
    kk.geom.clone_bio(&plat, bp)
}

/// `g_io_request(bp, cp)`.
pub(crate) extern "C" fn g_io_request(bp: *mut k::bio, cp: *mut k::g_consumer) {
    let kk = ko::current();
    let plat = kk.geom.bound(&ko::current_plat());
    if kk
        .geom
        .consumer_id(cp)
        .is_some_and(|c| plat.request_may_go_direct(c))
    {
        plat.mutex_across("g_io_request", kk.kern.locks.held_mutex());
    }
    kk.geom.io_request(&plat, bp, cp);
}

/// `g_io_deliver(bp, error)`.
pub(crate) extern "C" fn g_io_deliver(bp: *mut k::bio, error: c_int) {
    let kk = ko::current();
    let plat = kk.geom.bound(&ko::current_plat());
    if kk
        .geom
        .bio_id(bp)
        .is_some_and(|id| plat.deliver_may_go_direct(id))
    {
        plat.mutex_across("g_io_deliver", kk.kern.locks.held_mutex());
    }
    kk.geom.io_deliver(&plat, bp, error);
}

/// `g_std_done(bp)`.
pub(crate) extern "C" fn g_std_done(bp: *mut k::bio) {
    let kk = ko::current();
    let plat = kk.geom.bound(&ko::current_plat());
    // The parent is delivered when this is its last child.
    let parent = kk.geom.last_child_parent(bp);
    if parent
        .and_then(|p| kk.geom.bio_id(p))
        .is_some_and(|id| plat.deliver_may_go_direct(id))
    {
        plat.mutex_across("g_std_done", kk.kern.locks.held_mutex());
    }
    kk.geom.std_done(&plat, bp);
}

/// `g_destroy_bio(bp)`.
pub(crate) extern "C" fn g_destroy_bio(bp: *mut k::bio) {
    let kk = ko::current();
    let plat = kk.geom.bound(&ko::current_plat());
    kk.geom.destroy_bio(&plat, bp);
}

/// The non-variadic GEOM functions above, for the symbol table.
pub fn symbols() -> Vec<(&'static str, crate::ko::Sym)> {
    funcs![
        "g_access" => g_access,
        "g_attach" => g_attach,
        "g_clone_bio" => g_clone_bio,
        "g_destroy_bio" => g_destroy_bio,
        "g_destroy_consumer" => g_destroy_consumer,
        "g_destroy_geom" => g_destroy_geom,
        "g_detach" => g_detach,
        "g_error_provider" => g_error_provider,
        "g_io_deliver" => g_io_deliver,
        "g_io_request" => g_io_request,
        "g_new_consumer" => g_new_consumer,
        "g_post_event" => g_post_event,
        "g_provider_by_name" => g_provider_by_name,
        "g_read_data" => g_read_data,
        "g_resize_provider" => g_resize_provider,
        "g_std_done" => g_std_done,
        "g_wither_geom" => g_wither_geom,
        "g_wither_provider" => g_wither_provider,
        "g_write_data" => g_write_data,
    ]
}
