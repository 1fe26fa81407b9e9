//! The FreeBSD kernel structures the emulated KPI shares with the loaded
//! module, with their real amd64 layouts (bindgen's output, vendored in
//! `kstructs/layouts.rs` by `scripts/kstructs.sh`; `make kstructs`
//! regenerates it, `scripts/kstructs.sh --check` verifies it).
#![allow(non_camel_case_types, non_snake_case, non_upper_case_globals)]
#![allow(dead_code, clippy::all, missing_docs)]

include!("kstructs/layouts.rs");
