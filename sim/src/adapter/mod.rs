//! The platform adapter: what plugs the multipath core into the model.
//! [`platform`] implements `geom_multipath_rs::Platform` over the model's
//! checked operations, and [`multipath`] is the MULTIPATH class that
//! forwards GEOM's callbacks to the core, or to the built `.ko` that
//! [`ko`] loads in-process over an emulated FreeBSD KPI.
//!
//! The crate root re-exports each module, so their paths do not change.

pub mod ko;
pub mod multipath;
pub mod platform;
