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
