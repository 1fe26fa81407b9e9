//! The kernel's handle types: opaque non-NULL pointers to GEOM objects,
//! which Rust never dereferences (the shim reads their fields). [`Geom`],
//! [`Provider`] and [`Consumer`] are `Copy`; [`Bio`] is owned and moves.

use core::ptr::NonNull;

use freebsd_kpi as kpi;

use super::PLATFORM;

macro_rules! handle {
    ($(#[$doc:meta])* $name:ident, $c:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Debug)]
        pub struct $name(NonNull<kpi::$c>);

        // SAFETY: the pointer is a handle to a GEOM object that GEOM itself
        // shares between threads (event thread, g_down/g_up, the worker); the
        // Rust side never dereferences it, and every KPI call made with it
        // follows GEOM's locking rules (topology lock, or start/done context),
        // which the core obeys (see platform.rs).
        unsafe impl Send for $name {}
        // SAFETY: as above; &handle only allows copying the pointer.
        unsafe impl Sync for $name {}

        impl $name {
            /// The raw pointer, for the shim.
            pub fn as_ptr(self) -> *mut kpi::$c {
                self.0.as_ptr()
            }
            /// `None` for NULL.
            pub fn from_ptr(p: *mut kpi::$c) -> Option<Self> {
                NonNull::new(p).map($name)
            }
        }
    };
}

handle!(
    /// A `struct g_geom *` of the MULTIPATH class.
    Geom,
    g_geom
);
handle!(
    /// A `struct g_provider *`.
    Provider,
    g_provider
);
handle!(
    /// A `struct g_consumer *`.
    Consumer,
    g_consumer
);

/// An owned `struct bio *`: neither `Copy` nor `Clone`, so each bio is handed
/// back to GEOM (requested, delivered, folded or retired) by exactly one
/// owner. Dropping one instead would leave its I/O hanging forever: `Drop`
/// says so on the console (it cannot know how the bio should have ended).
#[derive(Debug)]
pub struct Bio(pub(super) NonNull<kpi::bio>);

// SAFETY: a bio belongs to whoever holds it: GEOM hands it to start or done
// on one thread, and the core may pass it to the worker thread; only the
// holder of this move-only wrapper touches it, through the shim.
unsafe impl Send for Bio {}

impl Bio {
    /// # Safety
    /// `p` is a bio the caller owns (GEOM passed it to start or done, or the
    /// shim returned it) and that nothing else will complete.
    pub unsafe fn from_raw(p: NonNull<kpi::bio>) -> Self {
        Bio(p)
    }
    pub(super) fn ptr(&self) -> *mut kpi::bio {
        self.0.as_ptr()
    }
    /// Gives up ownership (the bio goes back to GEOM).
    pub(super) fn into_ptr(self) -> *mut kpi::bio {
        let p = self.0.as_ptr();
        core::mem::forget(self);
        p
    }
}

impl Drop for Bio {
    fn drop(&mut self) {
        crate::mp_log!(
            &PLATFORM,
            "bio {:p} dropped without being completed: its I/O will never finish",
            self.0
        );
    }
}
