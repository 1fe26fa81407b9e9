//! The softc graveyard: softc references of withered geoms, kept until GEOM
//! has destroyed the geom.
//!
//! `gp->softc` holds one strong reference to the geom's softc. When the
//! core withers a geom, GEOM may still call start, done, access and orphan
//! on it until its washer destroys it, so the reference cannot be released
//! then: it is buried here with the geom's address, and released once that
//! geom has left the class's geom list (looked at, topology lock held, at
//! the next geom operation) or at class fini.
//!
//! [`Graves`] is the bookkeeping, generic and free of `unsafe`, with host
//! tests; the rest of this file is the kernel's one graveyard: the list
//! under the topology lock, and the release of a reference.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::UnsafeCell;

use freebsd_kpi as kpi;

use super::KSoftc;

/// A list of graves: for each withered geom (its address), the reference
/// `T` it held. Each reference leaves the list once: by
/// [`Graves::unbury`], [`Graves::take_gone`] or [`Graves::take_any`].
#[derive(Debug, Default)]
pub(crate) struct Graves<T> {
    list: Vec<(usize, T)>,
}

impl<T: Copy + Eq> Graves<T> {
    pub(crate) const fn new() -> Self {
        Graves { list: Vec::new() }
    }

    /// Buries `softc`, the reference geom `gp` held. Burying the same pair
    /// twice (a geom withered again) keeps one grave. False when there is
    /// no memory for the grave: the caller then keeps the reference for
    /// ever, which is safe (a leak); releasing it while GEOM may still call
    /// the geom is not. Never sleeps for memory.
    pub(crate) fn bury(&mut self, gp: usize, softc: T) -> bool {
        if self.list.iter().any(|&(g, s)| g == gp && s == softc) {
            return true;
        }
        if self.list.try_reserve(1).is_err() {
            return false;
        }
        self.list.push((gp, softc));
        true
    }

    /// Takes `gp`'s grave out, if it has one, with its reference.
    pub(crate) fn unbury(&mut self, gp: usize) -> Option<T> {
        let i = self.list.iter().position(|&(g, _)| g == gp)?;
        Some(self.list.swap_remove(i).1)
    }

    /// Takes out one grave whose geom is gone (`alive` says it is not),
    /// with its reference. A new geom at a recycled address only delays
    /// its predecessor's release.
    pub(crate) fn take_gone(&mut self, alive: impl Fn(usize) -> bool) -> Option<T> {
        let i = self.list.iter().position(|&(g, _)| !alive(g))?;
        Some(self.list.swap_remove(i).1)
    }

    /// Takes out any grave (class fini: every geom is gone).
    pub(crate) fn take_any(&mut self) -> Option<T> {
        self.take_gone(|_| false)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.list.len()
    }
}

// ---- the kernel's graveyard ------------------------------------------------

/// State the topology lock protects: the lock is GEOM's own sx (which
/// WITNESS sees), not a spin lock of ours that a preempted holder could
/// leave other threads spinning on. Allocating, freeing and KPI calls under
/// it are allowed, as under any sx.
struct TopologyLocked<T>(UnsafeCell<T>);

// SAFETY: the value is only reached through `with`, whose callers hold the
// topology lock, an exclusive lock: one thread at a time.
unsafe impl<T: Send> Sync for TopologyLocked<T> {}

impl<T> TopologyLocked<T> {
    const fn new(v: T) -> Self {
        TopologyLocked(UnsafeCell::new(v))
    }

    /// Runs `f` on the value. The caller holds the topology lock (asserted
    /// on INVARIANTS kernels), and `f` does not call `with` on the same cell
    /// (it only works on the value: no callback into the core).
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: g_topology_assert() only checks the lock.
        unsafe { kpi::gmr_topology_assert() };
        // SAFETY: the topology lock is held exclusively (caller contract),
        // so no other thread is in `with`; and `f` does not re-enter it, so
        // this is the only reference to the value while it lives.
        f(unsafe { &mut *self.0.get() })
    }
}

/// Only touched with the topology lock held (by wither, destroy, new_geom
/// and fini, which GEOM calls with it held). Holds `Arc::into_raw` softc
/// references as addresses.
static GRAVEYARD: TopologyLocked<Graves<usize>> = TopologyLocked::new(Graves::new());

/// Releases one strong softc reference taken with `Arc::into_raw`.
///
/// # Safety
/// `raw` came from `Arc::<KSoftc>::into_raw` and the reference it stands for
/// is released here once.
pub(super) unsafe fn release_softc(raw: usize) {
    // SAFETY: per this function's contract.
    drop(unsafe { Arc::from_raw(raw as *const KSoftc) });
}

fn geom_in_class(gp: usize) -> bool {
    // SAFETY: the class list is walked with the topology lock held (every
    // caller holds it); first/next return NULL at the end.
    let mut cur = unsafe { kpi::gmr_class_geom_first() };
    while !cur.is_null() {
        if cur as usize == gp {
            return true;
        }
        // SAFETY: `cur` is a geom on the class list, topology lock held.
        cur = unsafe { kpi::gmr_class_geom_next(cur) };
    }
    false
}

/// Buries geom `gp`'s softc reference `raw` (wither; topology held). False
/// when out of memory: the reference is then kept for ever.
pub(super) fn bury(gp: usize, raw: usize) -> bool {
    GRAVEYARD.with(|g| g.bury(gp, raw))
}

/// Removes `gp`'s grave, if any, and returns its softc reference.
pub(super) fn unbury(gp: usize) -> Option<usize> {
    GRAVEYARD.with(|g| g.unbury(gp))
}

/// Releases the softc of every buried geom GEOM has destroyed since, or
/// of every buried geom (`all`).
pub(super) fn purge(all: bool) {
    loop {
        let victim = GRAVEYARD.with(|g| {
            if all {
                g.take_any()
            } else {
                g.take_gone(geom_in_class)
            }
        });
        let Some(victim) = victim else { return };
        // Dropped outside the lock: the core's Drop may call the platform.
        // SAFETY: graves hold references taken from gp->softc (Arc::into_raw)
        // and handed to the graveyard by wither_geom; each is removed from
        // the list once, above, and released once here.
        unsafe { release_softc(victim) };
    }
}

/// Releases every buried softc: called at class fini, when GEOM has
/// destroyed all the class's geoms.
pub(crate) fn release_all_softcs() {
    purge(true);
    // The empty list's buffer too: it is module memory, which malloc_uninit
    // would find still allocated at unload. Freed outside `with`.
    let list = GRAVEYARD.with(core::mem::take);
    drop(list);
}

#[cfg(test)]
mod tests {
    use super::Graves;
    use std::vec::Vec;

    /// Drains `g` as the kernel's purge does, returning what it released.
    fn purge(g: &mut Graves<u32>, alive: &[usize]) -> Vec<u32> {
        let mut out = Vec::new();
        while let Some(s) = g.take_gone(|gp| alive.contains(&gp)) {
            out.push(s);
        }
        out.sort_unstable();
        out
    }

    #[test]
    fn a_reference_waits_while_its_geom_lives() {
        let mut g = Graves::new();
        assert!(g.bury(0x1000, 1));
        assert!(g.bury(0x2000, 2));
        assert_eq!(purge(&mut g, &[0x1000, 0x2000]), [] as [u32; 0]);
        assert_eq!(purge(&mut g, &[0x2000]), [1]);
        assert_eq!(purge(&mut g, &[]), [2]);
        assert_eq!(g.len(), 0);
    }

    #[test]
    fn withering_twice_keeps_one_grave() {
        let mut g = Graves::new();
        assert!(g.bury(0x1000, 1));
        assert!(g.bury(0x1000, 1));
        assert_eq!(g.len(), 1);
        assert_eq!(purge(&mut g, &[]), [1], "released once");
    }

    #[test]
    fn destroy_takes_its_grave_out_once() {
        let mut g = Graves::new();
        assert!(g.bury(0x1000, 1));
        assert!(g.bury(0x2000, 2));
        assert_eq!(g.unbury(0x1000), Some(1));
        assert_eq!(g.unbury(0x1000), None, "no second release");
        assert_eq!(g.unbury(0x3000), None);
        assert_eq!(purge(&mut g, &[]), [2]);
    }

    #[test]
    fn a_recycled_address_only_delays_the_release() {
        let mut g = Graves::new();
        // Geom 0x1000 withered; GEOM destroyed it and a new geom got the
        // same address, which is alive: the old reference waits.
        assert!(g.bury(0x1000, 1));
        assert_eq!(purge(&mut g, &[0x1000]), [] as [u32; 0]);
        // The new geom withers too: two graves, same address.
        assert!(g.bury(0x1000, 2));
        assert_eq!(g.len(), 2);
        assert_eq!(purge(&mut g, &[]), [1, 2]);
    }

    #[test]
    fn fini_takes_every_grave() {
        let mut g = Graves::new();
        for i in 0..5 {
            assert!(g.bury(0x1000 * (i + 1), i as u32));
        }
        let mut out = Vec::new();
        while let Some(s) = g.take_any() {
            out.push(s);
        }
        out.sort_unstable();
        assert_eq!(out, [0, 1, 2, 3, 4]);
    }
}
