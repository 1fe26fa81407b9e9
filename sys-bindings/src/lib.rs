//! `freebsd-kpi`: the C ABI between the geom_multipath_rs C shim and its Rust
//! core.
//!
//! The ABI is declared once, in C, in `sys-bindings/shim.h`. `bindings.rs` is
//! bindgen's translation of that header (see `scripts/bindings.sh` for the
//! pinned bindgen version and options), committed so that building the module
//! needs neither bindgen nor libclang; `make check-bindings` regenerates it and
//! fails when the committed copy is stale.
//!
//! Only opaque struct pointers cross this boundary: the Rust side never reads a
//! field of a FreeBSD structure. The `gmr_rs_*_t` types are the signatures of
//! the functions the core exports to the shim; the core checks its definitions
//! against them at compile time.
#![no_std]
#![allow(non_camel_case_types, non_upper_case_globals, non_snake_case)]
#![allow(clippy::all)]

include!("bindings.rs");
