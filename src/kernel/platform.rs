//! [`KernelPlatform`]: the core's [`Platform`] over the C shim, one shim
//! call per method; the softc reference's lifetime is in
//! [`super::graveyard`], event nodes in [`super::events`].

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ffi::c_void;
use core::fmt;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, Ordering};

use freebsd_kpi as kpi;

use super::handles::{Bio, Consumer, Geom, Provider};
use super::text::{cstr_eq, cstr_to_string, with_cstr, LineBuf};
use super::wq::KernelWq;
use super::{events, graveyard};
use crate::class::{Class, Softc};
use crate::platform::{append_c_str, Access, BioCmd, Errno, Platform, EBUSY, EINVAL, EIO, ENOMEM};
use crate::worker::Worker;

/// The kernel platform. Stateless: the state is GEOM's, reached through the
/// shim; the one instance is [`PLATFORM`].
#[derive(Debug)]
pub struct KernelPlatform {
    _private: (),
}

/// The platform every entry point passes to the core.
pub static PLATFORM: KernelPlatform = KernelPlatform { _private: () };

/// The class state (`struct g_class` is the shim's; this is the core's).
pub(crate) static CLASS: Class<KernelPlatform> = Class::new();

/// The core's softc type on this platform.
pub type KSoftc = Softc<KernelPlatform>;

fn errno_result(e: i32) -> Result<(), Errno> {
    if e == 0 {
        Ok(())
    } else {
        Err(e)
    }
}

fn counts(f: impl FnOnce(*mut kpi::gmr_access)) -> Access {
    let mut a = kpi::gmr_access { r: 0, w: 0, e: 0 };
    f(&mut a);
    Access::new(a.r, a.w, a.e)
}

// ---- the worker --------------------------------------------------------------

/// The worker's `Arc` reference, lent to the kproc from start_worker until
/// join_worker has seen it exit.
static WORKER: AtomicPtr<Worker<KernelPlatform>> = AtomicPtr::new(core::ptr::null_mut());

/// The kproc's name (`ps`, `procstat`), as the stock class names its thread.
const WORKER_NAME: &core::ffi::CStr = c"g_mp_kt";

impl Platform for KernelPlatform {
    type Geom = Geom;
    type Provider = Provider;
    type Consumer = Consumer;
    type Bio = Bio;
    type Wq = KernelWq;

    fn topology_lock(&self) {
        // SAFETY: g_topology_lock() has no precondition beyond being allowed
        // to sleep, which the core guarantees (never from start or done).
        unsafe { kpi::gmr_topology_lock() }
    }
    fn topology_unlock(&self) {
        // SAFETY: the core only unlocks what it locked (platform rules).
        unsafe { kpi::gmr_topology_unlock() }
    }
    fn topology_assert(&self) {
        // SAFETY: g_topology_assert() only checks (with INVARIANTS) the lock.
        unsafe { kpi::gmr_topology_assert() }
    }

    // Never inlined: its 512-byte line buffer then sits in this one frame,
    // not in the frame of every function that logs (check-ko's frame rule).
    #[inline(never)]
    fn log(&self, args: fmt::Arguments<'_>) {
        // A fixed buffer: logging may happen in done, where allocating is
        // best avoided, and a long line is better cut than lost.
        // Filled in place (not returned by value, which copies it).
        let mut line = LineBuf::<512>::new();
        line.write_args(args);
        let b = line.as_bytes();
        // SAFETY: `b` is readable for the call; printf copies it ("%.*s").
        unsafe { kpi::gmr_log(b.as_ptr().cast(), b.len()) }
    }
    fn random(&self) -> u32 {
        // SAFETY: arc4random(9) has no preconditions.
        unsafe { kpi::gmr_random() }
    }
    fn cpu_hint(&self) -> usize {
        // Start and done run in any thread (direct dispatch): see lane.rs.
        super::lane::stack_hint()
    }

    fn new_geom(&self, name: &str, softc: Option<Arc<KSoftc>>) -> Result<Geom, Errno> {
        graveyard::purge(false);
        let raw = softc.map_or(core::ptr::null(), Arc::into_raw);
        // SAFETY: topology lock held (platform rules); `name` is readable for
        // the call and g_new_geomf copies it; `raw` is NULL or a strong
        // reference the geom now owns (released by destroy/wither).
        let gp = unsafe { kpi::gmr_geom_new(name.as_ptr().cast(), name.len(), raw as *mut c_void) };
        match Geom::from_ptr(gp) {
            Some(g) => Ok(g),
            None => {
                if !raw.is_null() {
                    // SAFETY: no geom took the reference made above.
                    unsafe { graveyard::release_softc(raw as usize) };
                }
                Err(ENOMEM)
            }
        }
    }

    fn destroy_geom(&self, gp: Geom) {
        // SAFETY: topology lock held; gp is a live geom of ours.
        let raw = unsafe { kpi::gmr_geom_softc(gp.as_ptr()) } as usize;
        let buried = graveyard::unbury(gp.as_ptr() as usize);
        // SAFETY: topology lock held; the core destroys only a geom without
        // providers or consumers (platform rules), so no callback can still
        // use gp or its softc.
        unsafe {
            kpi::gmr_geom_set_softc(gp.as_ptr(), core::ptr::null_mut());
            kpi::gmr_geom_destroy(gp.as_ptr());
        }
        // gp->softc and a grave of the same geom are the same reference.
        if let Some(r) = buried.or((raw != 0).then_some(raw)) {
            // SAFETY: `r` is the geom's softc reference (Arc::into_raw in
            // new_geom), released once: the grave is gone and gp destroyed.
            unsafe { graveyard::release_softc(r) };
        }
        graveyard::purge(false);
    }

    fn wither_geom(&self, gp: Geom, error: Errno) {
        let key = gp.as_ptr() as usize;
        // SAFETY: topology lock held; gp is a live geom of ours.
        let raw = unsafe { kpi::gmr_geom_softc(gp.as_ptr()) } as usize;
        if raw != 0 {
            let buried = graveyard::bury(key, raw);
            if !buried {
                crate::mp_log!(self, "out of memory: {} softc kept", self.geom_name(gp));
            }
        }
        // SAFETY: topology lock held; gp is a live geom of ours.
        unsafe { kpi::gmr_geom_wither(gp.as_ptr(), error) };
        graveyard::purge(false);
    }

    fn class_geoms(&self) -> Vec<Geom> {
        let mut v = Vec::new();
        // SAFETY: topology lock held (platform rules) while walking the list.
        let mut cur = unsafe { kpi::gmr_class_geom_first() };
        while let Some(gp) = Geom::from_ptr(cur) {
            // SAFETY: gp is on the class list, topology lock held.
            if unsafe { kpi::gmr_geom_withering(gp.as_ptr()) } == 0 {
                if v.try_reserve(1).is_err() {
                    crate::mp_log!(self, "out of memory listing geoms");
                    break;
                }
                v.push(gp);
            }
            // SAFETY: as above.
            cur = unsafe { kpi::gmr_class_geom_next(gp.as_ptr()) };
        }
        v
    }

    fn geom_name(&self, gp: Geom) -> String {
        // SAFETY: gp is live; its name is a NUL-terminated string GEOM keeps
        // until the geom is destroyed, and it is copied here.
        unsafe { cstr_to_string(kpi::gmr_geom_name(gp.as_ptr())) }
    }

    fn geom_softc(&self, gp: Geom) -> Option<Arc<KSoftc>> {
        // SAFETY: gp is live.
        let raw = unsafe { kpi::gmr_geom_softc(gp.as_ptr()) } as *const KSoftc;
        if raw.is_null() {
            return None;
        }
        // SAFETY: gp->softc is only ever set to NULL or to Arc::into_raw of a
        // KSoftc (new_geom), and that reference stays alive while the geom
        // does (destroy/graveyard); taking a second one is therefore sound.
        unsafe {
            Arc::increment_strong_count(raw);
            Some(Arc::from_raw(raw))
        }
    }

    fn new_provider(
        &self,
        gp: Geom,
        name: &str,
        mediasize: u64,
        sectorsize: u32,
    ) -> Result<Provider, Errno> {
        // SAFETY: topology lock held; gp live; `name` readable for the call
        // and copied by g_new_providerf.
        let pp = unsafe {
            kpi::gmr_provider_new(
                gp.as_ptr(),
                name.as_ptr().cast(),
                name.len(),
                mediasize,
                sectorsize,
            )
        };
        Provider::from_ptr(pp).ok_or(ENOMEM)
    }
    fn provider_announce(&self, pp: Provider) {
        // SAFETY: topology lock held; pp live.
        unsafe { kpi::gmr_provider_announce(pp.as_ptr()) }
    }
    fn wither_provider(&self, pp: Provider, error: Errno) {
        // SAFETY: topology lock held; pp live.
        unsafe { kpi::gmr_provider_wither(pp.as_ptr(), error) }
    }
    fn provider_by_name(&self, name: &str) -> Option<Provider> {
        let pp = with_cstr(name, |c| {
            // SAFETY: topology lock held; `c` is NUL-terminated for the call.
            unsafe { kpi::gmr_provider_by_name(c) }
        })
        .ok()?;
        Provider::from_ptr(pp)
    }
    fn provider_name(&self, pp: Provider) -> String {
        // SAFETY: pp live; its name is NUL-terminated and copied here.
        unsafe { cstr_to_string(kpi::gmr_provider_name(pp.as_ptr())) }
    }
    fn provider_mediasize(&self, pp: Provider) -> u64 {
        // SAFETY: pp live.
        unsafe { kpi::gmr_provider_mediasize(pp.as_ptr()) }
    }
    fn provider_sectorsize(&self, pp: Provider) -> u32 {
        // SAFETY: pp live.
        unsafe { kpi::gmr_provider_sectorsize(pp.as_ptr()) }
    }
    fn provider_access(&self, pp: Provider) -> Access {
        // SAFETY: pp live; `a` is a writable gmr_access.
        counts(|a| unsafe { kpi::gmr_provider_counts(pp.as_ptr(), a) })
    }
    fn provider_stripe(&self, pp: Provider) -> (u64, u64) {
        let (mut size, mut offset) = (0u64, 0u64);
        // SAFETY: pp live; both out-pointers are writable u64s on this stack.
        unsafe { kpi::gmr_provider_stripe(pp.as_ptr(), &mut size, &mut offset) };
        (size, offset)
    }
    fn set_provider_stripe(&self, pp: Provider, stripesize: u64, stripeoffset: u64) {
        // SAFETY: topology lock held; pp is one of our own live providers.
        unsafe { kpi::gmr_provider_set_stripe(pp.as_ptr(), stripesize, stripeoffset) }
    }
    fn provider_accepts_unmapped(&self, pp: Provider) -> bool {
        // SAFETY: pp live.
        unsafe { kpi::gmr_provider_accepts_unmapped(pp.as_ptr()) != 0 }
    }
    fn set_provider_unmapped(&self, pp: Provider, accept: bool) {
        // SAFETY: topology lock held (which serialises writers of
        // pp->flags); pp is one of our own live providers.
        unsafe { kpi::gmr_provider_set_unmapped(pp.as_ptr(), i32::from(accept)) }
    }
    fn set_provider_direct(&self, pp: Provider) {
        // SAFETY: topology lock held (which serialises writers of
        // pp->flags); pp is one of our own live providers, not yet
        // announced.
        unsafe { kpi::gmr_provider_set_direct(pp.as_ptr()) }
    }
    fn resize_provider(&self, pp: Provider, mediasize: u64) {
        // SAFETY: topology lock held; pp is one of our own live providers;
        // g_resize_provider only posts an event (M_WAITOK: the callers run
        // in event or ctlreq context, where sleeping for memory is allowed).
        unsafe { kpi::gmr_provider_resize(pp.as_ptr(), mediasize) }
    }

    fn new_consumer(&self, gp: Geom) -> Result<Consumer, Errno> {
        // SAFETY: topology lock held; gp live (and has an orphan method: the
        // class sets one, which g_new_consumer requires).
        let cp = unsafe { kpi::gmr_consumer_new(gp.as_ptr()) };
        Consumer::from_ptr(cp).ok_or(ENOMEM)
    }
    fn set_consumer_direct(&self, cp: Consumer) {
        // SAFETY: topology lock held; cp is one of our own live consumers,
        // not yet attached.
        unsafe { kpi::gmr_consumer_set_direct(cp.as_ptr()) }
    }
    fn attach(&self, cp: Consumer, pp: Provider) -> Result<(), Errno> {
        // SAFETY: topology lock held; cp and pp live.
        errno_result(unsafe { kpi::gmr_consumer_attach(cp.as_ptr(), pp.as_ptr()) })
    }
    fn detach(&self, cp: Consumer) {
        // SAFETY: topology lock held; the core detaches only an idle consumer
        // with zero access counts (platform rules), as g_detach requires.
        unsafe { kpi::gmr_consumer_detach(cp.as_ptr()) }
    }
    fn destroy_consumer(&self, cp: Consumer) {
        // SAFETY: topology lock held; cp is detached (platform rules).
        unsafe { kpi::gmr_consumer_destroy(cp.as_ptr()) }
    }
    fn access(&self, cp: Consumer, delta: Access) -> Result<(), Errno> {
        // SAFETY: topology lock held; cp live and attached.
        errno_result(unsafe { kpi::gmr_consumer_access(cp.as_ptr(), delta.r, delta.w, delta.e) })
    }
    fn consumer_access(&self, cp: Consumer) -> Access {
        // SAFETY: cp live; `a` is a writable gmr_access.
        counts(|a| unsafe { kpi::gmr_consumer_counts(cp.as_ptr(), a) })
    }
    fn consumer_provider(&self, cp: Consumer) -> Option<Provider> {
        // SAFETY: cp live.
        Provider::from_ptr(unsafe { kpi::gmr_consumer_provider(cp.as_ptr()) })
    }
    fn consumer_to_raw(cp: Consumer) -> usize {
        cp.as_ptr() as usize
    }
    fn consumer_from_raw(raw: usize) -> Consumer {
        match Consumer::from_ptr(raw as *mut kpi::g_consumer) {
            Some(cp) => cp,
            // Only values consumer_to_raw made come back (platform rules);
            // zero means the core broke that contract, not bad input.
            None => panic!("consumer_from_raw(0)"),
        }
    }

    fn read_data(&self, cp: Consumer, offset: u64, length: usize) -> Result<Vec<u8>, Errno> {
        let mut err: i32 = 0;
        // SAFETY: no topology lock, sleeping allowed (platform rules); cp is
        // open for reading; `err` is writable.
        let buf = unsafe { kpi::gmr_read_data(cp.as_ptr(), offset, length, &mut err) };
        if buf.is_null() {
            return Err(if err != 0 { err } else { EIO });
        }
        let mut v = Vec::new();
        let r = if v.try_reserve_exact(length).is_ok() {
            // SAFETY: g_read_data returned a buffer of `length` bytes.
            v.extend_from_slice(unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), length) });
            Ok(v)
        } else {
            Err(ENOMEM)
        };
        // SAFETY: `buf` came from g_read_data and is freed once, here.
        unsafe { kpi::gmr_read_data_free(buf) };
        r
    }
    fn write_data(&self, cp: Consumer, offset: u64, data: &[u8]) -> Result<(), Errno> {
        // SAFETY: no topology lock, sleeping allowed; cp open for writing;
        // `data` readable for the call (g_write_data only reads it).
        errno_result(unsafe {
            kpi::gmr_write_data(cp.as_ptr(), offset, data.as_ptr().cast(), data.len())
        })
    }

    fn bio_cmd(&self, bp: &Bio) -> BioCmd {
        // SAFETY: the caller owns the bio.
        match unsafe { kpi::gmr_bio_cmd(bp.ptr()) } as u32 {
            kpi::GMR_BIO_READ => BioCmd::Read,
            kpi::GMR_BIO_WRITE => BioCmd::Write,
            kpi::GMR_BIO_DELETE => BioCmd::Delete,
            kpi::GMR_BIO_FLUSH => BioCmd::Flush,
            kpi::GMR_BIO_GETATTR => BioCmd::GetAttr,
            _ => BioCmd::Other,
        }
    }
    fn bio_offset(&self, bp: &Bio) -> u64 {
        // SAFETY: the caller owns the bio.
        unsafe { kpi::gmr_bio_offset(bp.ptr()) }
    }
    fn bio_length(&self, bp: &Bio) -> u64 {
        // SAFETY: the caller owns the bio.
        unsafe { kpi::gmr_bio_length(bp.ptr()) }
    }
    fn bio_error(&self, bp: &Bio) -> Errno {
        // SAFETY: the caller owns the bio.
        unsafe { kpi::gmr_bio_error(bp.ptr()) }
    }
    fn bio_set_cookie(&self, bp: &mut Bio, cookie: usize) {
        // SAFETY: the caller owns the bio exclusively (&mut).
        unsafe { kpi::gmr_bio_set_caller1(bp.ptr(), cookie) }
    }
    fn bio_cookie(&self, bp: &Bio) -> usize {
        // SAFETY: the caller owns the bio.
        unsafe { kpi::gmr_bio_caller1(bp.ptr()) }
    }
    fn bio_attribute_is(&self, bp: &Bio, name: &str) -> bool {
        // SAFETY: the caller owns the bio.
        let attr = unsafe { kpi::gmr_bio_attribute(bp.ptr()) };
        // SAFETY: a non-NULL bio_attribute is a NUL-terminated string that
        // the bio's issuer keeps for the bio's life, and `bp` keeps the bio
        // alive for this call.
        !attr.is_null() && unsafe { cstr_eq(attr, name) }
    }
    fn bio_append_attr_str(&self, bp: &mut Bio, suffix: &str) -> Result<(), Errno> {
        // SAFETY: the caller owns the bio exclusively (&mut).
        let data = unsafe { kpi::gmr_bio_data(bp.ptr()) };
        let len = usize::try_from(self.bio_length(bp)).map_err(|_| EINVAL)?;
        if data.is_null() || len == 0 {
            return Err(EINVAL);
        }
        // SAFETY: a mapped bio's bio_data is kernel memory of bio_length
        // bytes (gmr_bio_data gives NULL for an unmapped one). The caller
        // owns the bio exclusively, and with it the buffer: a clone shares
        // its parent's buffer, and the parent's issuer leaves it alone until
        // the parent completes, which needs this child's std_done first.
        // The slice ends with this function.
        let buf = unsafe { core::slice::from_raw_parts_mut(data.cast::<u8>(), len) };
        let used = append_c_str(buf, suffix)? as u64;
        // g_multipath_done leaves bio_completed alone: a string attribute's
        // provider sets it to bio_length (g_handleattr), which still covers
        // the longer string. Raise it only if a provider reported less.
        // SAFETY: the caller owns the bio exclusively.
        unsafe {
            if kpi::gmr_bio_completed(bp.ptr()) < used {
                kpi::gmr_bio_set_completed(bp.ptr(), used);
            }
        }
        Ok(())
    }
    fn clone_bio(&self, parent: Bio) -> Result<Bio, Bio> {
        // SAFETY: the caller owns the parent; g_clone_bio allocates with
        // M_NOWAIT, so this is allowed in start and done.
        let child = unsafe { kpi::gmr_bio_clone(parent.ptr()) };
        match NonNull::new(child) {
            Some(c) => {
                // The parent now completes through its child (g_std_done or
                // retire_child hands it back), not through this handle.
                core::mem::forget(parent);
                Ok(Bio(c))
            }
            None => Err(parent),
        }
    }
    fn io_request(&self, child: Bio, cp: Consumer) {
        // SAFETY: ownership of the bio passes to GEOM; cp is live and open.
        unsafe { kpi::gmr_bio_request(child.into_ptr(), cp.as_ptr()) }
    }
    fn io_deliver(&self, bp: Bio, error: Errno) {
        // SAFETY: ownership of the bio passes back to GEOM, once.
        unsafe { kpi::gmr_bio_deliver(bp.into_ptr(), error) }
    }
    fn std_done(&self, child: Bio) {
        // SAFETY: the child is a clone (it has a parent); GEOM takes it.
        unsafe { kpi::gmr_bio_std_done(child.into_ptr()) }
    }
    fn retire_child(&self, child: Bio) -> Bio {
        // SAFETY: the child is a clone the caller owns; it is destroyed and
        // its parent, which the caller now owns again, is returned.
        let parent = unsafe { kpi::gmr_bio_retire(child.into_ptr()) };
        match NonNull::new(parent) {
            Some(p) => Bio(p),
            // Every bio from clone_bio has a parent.
            None => panic!("retire_child: child bio without parent"),
        }
    }

    fn post_event<F: FnOnce(&Self) + Send + 'static>(&self, f: F) -> Result<(), Errno> {
        events::post(f)
    }
    fn post_event_sleeping<F: FnOnce(&Self) + Send + 'static>(&self, f: F) -> Result<(), Errno> {
        events::post_sleeping(f)
    }

    fn new_wait_queue(&self, name: &'static str) -> Result<KernelWq, Errno> {
        KernelWq::new(name)
    }

    fn start_worker(&self, w: Arc<Worker<Self>>) -> Result<(), Errno> {
        let raw = Arc::into_raw(w).cast_mut();
        if WORKER
            .compare_exchange(
                core::ptr::null_mut(),
                raw,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            // SAFETY: `raw` was made just above and not lent out.
            drop(unsafe { Arc::from_raw(raw) });
            return Err(EBUSY);
        }
        // SAFETY: `raw` stays valid until join_worker releases it, which
        // happens only after the kproc has left module code
        // (gmr_kproc_join); the worker's wait queue, which the kproc uses
        // for that handshake, lives as long as `raw` does.
        let e = unsafe {
            kpi::gmr_kproc_start(
                (*raw).wait_queue().as_ptr(),
                raw.cast(),
                WORKER_NAME.as_ptr(),
            )
        };
        if e != 0 {
            WORKER.store(core::ptr::null_mut(), Ordering::Release);
            // SAFETY: no kproc was created, so nothing borrowed `raw`.
            drop(unsafe { Arc::from_raw(raw) });
            return Err(e);
        }
        Ok(())
    }

    fn join_worker(&self, w: &Arc<Worker<Self>>) {
        let raw = WORKER.swap(core::ptr::null_mut(), Ordering::AcqRel);
        if raw.is_null() {
            // No kproc was started (or it was joined already).
            return;
        }
        // Not Worker::wait_exited: the kproc sets `exited` while still in
        // module code, and the module's text may be freed as soon as fini
        // returns. gmr_kproc_join returns only once kproc_exit() has woken
        // the proc's sleepers, from kernel text, after Worker::run and the
        // shim's trampoline are done with this module.
        // SAFETY: `raw` is the worker start_worker lent to the kproc (still
        // alive: its reference is released below), whose wait queue that
        // kproc uses; request_stop() was called (Platform rules); fini may
        // sleep and holds no wait-queue mutex here.
        unsafe { kpi::gmr_kproc_join((*raw).wait_queue().as_ptr()) };
        debug_assert!(core::ptr::eq(raw, Arc::as_ptr(w)));
        // SAFETY: the kproc has left module code, so its borrow of the
        // reference lent in start_worker has ended.
        drop(unsafe { Arc::from_raw(raw) });
    }
}
