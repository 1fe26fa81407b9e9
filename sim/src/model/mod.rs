//! The model: a userland FreeBSD GEOM. The mesh and `geom_subr.c`'s
//! operations ([`topology`]), the topology lock ([`toplock`]), bios and
//! the `g_down`/`g_up` paths ([`bio`]), the schedulers ([`sched`]), disks
//! with shared backing stores and faults ([`disk`], [`store`], [`fault`]),
//! the DEV class ([`dev`]) and a pass-through class for tests
//! ([`passthrough`]), the mesh as XML ([`confxml`]), gctl requests run
//! the way `geom_ctl.c` runs them ([`ctl`]), and the rules the model enforces
//! ([`violation`]). [`sim`] ties them together.
//!
//! The crate root re-exports each module, so `geom_sim::sim`,
//! `geom_sim::topology` and the rest keep their paths.

pub mod bio;
pub mod class;
pub mod confxml;
pub mod ctl;
pub mod dev;
pub mod disk;
pub mod fault;
pub mod ids;
pub mod passthrough;
pub mod sched;
pub mod sim;
pub mod store;
pub(crate) mod toplock;
pub mod topology;
pub mod violation;
