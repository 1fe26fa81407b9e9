//! The harness: what drives the model and measures it. Scenarios from
//! TOML ([`scenario`]), workloads and their latency ([`workload`],
//! [`latency`]), seed sweeps ([`seeds`]), `mpsim scale` ([`scale`]), the
//! summary of `.ko` runs ([`ko_summary`]), `mpsim bench` and
//! `mpsim bench-class` ([`mod@bench`], [`classbench`]), and the fuzz target
//! bodies ([`fuzzing`]).
//!
//! The crate root re-exports each module, so their paths do not change.

pub mod bench;
pub mod classbench;
pub mod fuzzing;
pub mod ko_summary;
pub mod latency;
pub mod scale;
pub mod scenario;
pub mod seeds;
pub mod workload;
