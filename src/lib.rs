//! geom_multipath_rs: the FreeBSD GEOM `MULTIPATH` class as a `no_std` Rust core.
//!
//! One core, two platforms (see `../shared/DESIGN.md` and [`platform`]): the
//! kernel, through the C shim in `geom_multipath_rs/`, and the userland GEOM
//! simulator in `sim/`. Everything here is written against
//! [`platform::Platform`] and knows nothing of either.
#![no_std]
#![forbid(unsafe_op_in_unsafe_fn)]
// The docs are built with --document-private-items (make test's doc step),
// for the kernel engineers who read the code: public items may point at
// the crate-private ones that do the work.
#![allow(rustdoc::private_intra_doc_links)]

extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod class;
pub mod ctl;
pub mod dumpconf;
pub mod io;
pub mod metadata;
pub mod path;
pub mod platform;
pub mod resize;
pub mod taste;
pub mod worker;

#[cfg(feature = "kernel")]
pub mod kernel;

pub use class::{Class, Softc};
pub use platform::{Access, BioCmd, CtlReq, Errno, Platform, WaitQueue};
