//! Handles onto simulator objects.
//!
//! Every object gets a fresh number from one per-simulator counter and numbers
//! are never reused, so a handle kept past its object's destruction is caught
//! ("stale") instead of silently naming a newer object, which is the bug a
//! kernel's use-after-free would be.

use std::fmt;

macro_rules! sim_id {
    ($(#[$m:meta])* $name:ident, $prefix:literal) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub(crate) u64);

        impl $name {
            /// The raw number (unique for the simulator's lifetime).
            pub fn raw(self) -> u64 {
                self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "#{}"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }
    };
}

sim_id!(
    /// A loaded class (`struct g_class *`).
    ClassId, "class");
sim_id!(
    /// `struct g_geom *`.
    GeomId, "gp");
sim_id!(
    /// `struct g_provider *`.
    ProviderId, "pp");
sim_id!(
    /// `struct g_consumer *`.
    ConsumerId, "cp");
sim_id!(
    /// `struct bio *` (the number behind a move-only [`crate::Bio`]).
    BioId, "bio");

/// A hasher for ids: the number times an odd constant (Fibonacci
/// hashing). Fixed, so a table of ids iterates in the same order in every
/// run with the same history (a seed replays bit for bit), and cheap: the
/// mesh's tables are looked up on every bio.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A table keyed by ids: O(1) look-ups whatever the mesh's size (an
/// ordered map costs log n, which made assembly per LUN grow with the
/// number of LUNs), iterated in a fixed order.
pub type IdMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<IdHasher>>;
