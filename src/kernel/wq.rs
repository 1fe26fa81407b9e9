//! [`KernelWq`]: the worker's mutex and sleep channel, a `struct mtx` the shim
//! allocates (Rust never sees its layout) with `msleep(9)`/`wakeup(9)` on the
//! same address.

use core::ptr::NonNull;

use freebsd_kpi as kpi;

use crate::platform::{Errno, WaitQueue, ENOMEM};

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

impl Drop for KernelWq {
    fn drop(&mut self) {
        // SAFETY: self.0 came from gmr_wq_new, this is its only owner, and
        // nobody can hold or sleep on the mutex once the owner is dropped.
        unsafe { kpi::gmr_wq_destroy(self.0.as_ptr()) }
    }
}
