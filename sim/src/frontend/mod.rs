//! Front ends: how a person or a test script drives the simulator as they
//! would a FreeBSD machine. [`gmultipath`] is the gmultipath(8) command
//! over the simulated mesh; the binaries in `src/bin/` use it.
//!
//! The crate root re-exports each module, so their paths do not change.

pub mod gmultipath;
