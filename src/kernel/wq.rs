//! [`KernelWq`]: the worker's mutex and sleep channel, a `struct mtx` the shim
//! allocates (Rust never sees its layout) with `msleep(9)`/`wakeup(9)` on the
//! same address.

use alloc::sync::Arc;
use core::ffi::c_void;
use core::ptr::NonNull;

use freebsd_kpi as kpi;

use super::{Bio, KSoftc};
use crate::platform::{BioQueue, Errno, WaitQueue, ENOMEM};

/// An owned shim wait queue; destroyed (`mtx_destroy` + `free`) on drop.
pub struct KernelWq(NonNull<kpi::gmr_wq>);

// SAFETY: the wait queue is a kernel mutex and a sleep channel, both made to
// be used from any thread; the handle is only ever passed to the shim's
// lock/unlock/sleep/wakeup functions, which do their own synchronisation.
unsafe impl Send for KernelWq {}
// SAFETY: as above: every operation on it is a thread-safe kernel primitive.
unsafe impl Sync for KernelWq {}

impl KernelWq {
    /// `mtx_init` of a new mutex named `name` (the shim copies the name, so
    /// it needs no NUL and no 'static lifetime on the C side).
    pub fn new(name: &str) -> Result<Self, Errno> {
        // SAFETY: `name` points to `name.len()` readable bytes for the call;
        // the shim copies them.
        let wq = unsafe { kpi::gmr_wq_new(name.as_ptr().cast(), name.len()) };
        NonNull::new(wq).map(KernelWq).ok_or(ENOMEM)
    }

    /// The shim's handle, for the kproc handshake (`gmr_kproc_start`,
    /// `gmr_kproc_join`), which uses this queue's mutex.
    pub fn as_ptr(&self) -> *mut kpi::gmr_wq {
        self.0.as_ptr()
    }
}

impl WaitQueue for KernelWq {
    fn lock(&self) {
        // SAFETY: self.0 came from gmr_wq_new and is destroyed only in Drop,
        // which cannot run while &self is alive.
        unsafe { kpi::gmr_wq_lock(self.0.as_ptr()) }
    }
    fn unlock(&self) {
        // SAFETY: as in lock(); the caller holds the mutex (WaitQueue rules).
        unsafe { kpi::gmr_wq_unlock(self.0.as_ptr()) }
    }
    fn sleep(&self) {
        // SAFETY: as in lock(); the caller holds the mutex and may sleep
        // (WaitQueue rules), as msleep(9) requires.
        unsafe { kpi::gmr_wq_sleep(self.0.as_ptr()) }
    }
    fn wakeup(&self) {
        // SAFETY: as in lock(); wakeup(9) may be called from any context.
        unsafe { kpi::gmr_wq_wakeup(self.0.as_ptr()) }
    }
}

/// The failed-bio queue, intrusive as FreeBSD's classes keep theirs: the
/// shim links each bio through its own `bio_queue` entry and keeps the
/// softc reference (`Arc::into_raw`) in its `bio_caller2`. Nothing is
/// allocated, so done can always queue a failed bio.
impl BioQueue<Bio, KSoftc> for KernelWq {
    fn push_bio(&self, bp: Bio, tag: Arc<KSoftc>) {
        let tag = Arc::into_raw(tag).cast_mut().cast::<c_void>();
        // SAFETY: the caller holds this queue's mutex (BioQueue rules); the
        // bio is ours (done handed it back), so its bio_queue entry and
        // bio_caller2 are free; ownership of the bio and of the reference
        // passes to the queue until pop_bio.
        unsafe { kpi::gmr_wq_bio_push(self.0.as_ptr(), bp.into_ptr(), tag) }
    }

    fn pop_bio(&self) -> Option<(Bio, Arc<KSoftc>)> {
        let mut tag: *mut c_void = core::ptr::null_mut();
        // SAFETY: the caller holds this queue's mutex; `tag` is writable.
        let bp = NonNull::new(unsafe { kpi::gmr_wq_bio_pop(self.0.as_ptr(), &mut tag) })?;
        // SAFETY: push_bio queued this bio, which nothing else completes,
        // with `tag` from Arc::<KSoftc>::into_raw; both come back once here.
        Some(unsafe {
            (
                Bio::from_raw(bp),
                Arc::from_raw(tag.cast_const().cast::<KSoftc>()),
            )
        })
    }

    fn has_bios(&self) -> bool {
        // SAFETY: the caller holds this queue's mutex.
        unsafe { kpi::gmr_wq_bio_pending(self.0.as_ptr()) != 0 }
    }
}

impl Drop for KernelWq {
    fn drop(&mut self) {
        // SAFETY: self.0 came from gmr_wq_new, this is its only owner, and
        // nobody can hold or sleep on the mutex once the owner is dropped.
        unsafe { kpi::gmr_wq_destroy(self.0.as_ptr()) }
    }
}
