// The core has no C to build: the shim is compiled by the module Makefile.
// This script only tells cargo when the ABI header changes, so a kernel build
// rebuilds after shim.h (and so the vendored bindings) move.
fn main() {
    println!("cargo:rerun-if-changed=sys-bindings/shim.h");
    println!("cargo:rerun-if-changed=build.rs");
}
