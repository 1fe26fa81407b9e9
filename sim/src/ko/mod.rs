//! `geom_sim::ko`: an emulated FreeBSD kernel KPI backed by the simulator, on
//! which the real `geom_multipath_rs.ko` is loaded in-process.
//!
//! (Placeholder until the loader orchestration lands: only the vendored
//! kernel structure layouts for now.)

pub mod kstructs;
