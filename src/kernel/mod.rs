//! The kernel platform: [`Platform`] over the C shim in `geom_multipath_rs/`.
//!
//! Every call here is one shim function (declared in `sys-bindings/shim.h`,
//! bound in the `freebsd-kpi` crate). The shim owns all FreeBSD struct
//! layouts: handles are opaque non-NULL pointers and Rust never reads a field
//! of a bio, consumer, provider or geom. The parts:
//!
//! - `platform`: [`KernelPlatform`], the [`Platform`] impl, one shim call a
//!   method;
//! - `handles`: the handle types ([`Geom`], [`Provider`], [`Consumer`],
//!   [`Bio`]);
//! - `graveyard`: the softc reference's lifetime (below), with host tests;
//! - `events`: closures posted to GEOM's event thread; `mem`: malloc(9);
//! - `wq`, `ctl`, `text`: the worker's wait queue, gctl and sbuf, C text;
//! - [`entry`]: the `extern "C"` functions the shim's GEOM callbacks call,
//!   which forward to one static [`Class`] and to the geom's [`Softc`];
//! - `rt` (kernel target only): the malloc(9) global allocator and the
//!   panic(9) panic handler.
//!
//! ## The softc reference (`gp->softc`)
//!
//! `gp->softc` holds one strong reference to the geom's [`Softc`]
//! (`Arc::into_raw`). Callbacks borrow it without touching the count. When the
//! core withers a geom ([`Platform::wither_geom`]) the platform gives up that
//! reference, but not at once: GEOM may still call start, done, access and
//! orphan on the geom until its washer destroys it, so the pointer moves to a
//! graveyard and is released once the geom has left the class's geom list
//! (checked under the topology lock at the next geom operation, and at class
//! fini). [`Platform::destroy_geom`] releases it immediately: GEOM requires
//! such a geom to have no provider and no consumer, so no callback can come.
//!
//! [`Platform`]: crate::platform::Platform
//! [`Platform::wither_geom`]: crate::platform::Platform::wither_geom
//! [`Platform::destroy_geom`]: crate::platform::Platform::destroy_geom
//! [`Class`]: crate::class::Class
//! [`Softc`]: crate::class::Softc

#![deny(clippy::undocumented_unsafe_blocks)]

mod ctl;
pub mod entry;
mod events;
mod graveyard;
mod handles;
mod lane;
mod mem;
mod platform;
mod text;
mod wq;

#[cfg(target_os = "none")]
mod rt;

pub use ctl::{GctlReq, SbufWriter};
pub(crate) use graveyard::release_all_softcs;
pub use handles::{Bio, Consumer, Geom, Provider};
pub(crate) use platform::CLASS;
pub use platform::{KSoftc, KernelPlatform, PLATFORM};
pub use wq::KernelWq;
