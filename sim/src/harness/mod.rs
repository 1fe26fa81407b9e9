//! The harness: what drives the model and measures it. Scenarios from
//! TOML ([`scenario`]), workloads and their latency ([`workload`],
//! [`latency`]), seed sweeps ([`seeds`]), `mpsim scale` ([`scale`]), and
//! the summary of `.ko` runs ([`ko_summary`]).
//!
//! The crate root re-exports each module, so their paths do not change.

pub mod ko_summary;
pub mod latency;
pub mod scale;
pub mod scenario;
pub mod seeds;
pub mod workload;
