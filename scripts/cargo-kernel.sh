#!/bin/sh
# Builds the Rust core as the kernel staticlib:
#   $CARGO_TARGET_DIR/x86_64-unknown-none/release/libgeom_multipath_rs.a
# One recipe for the Linux cross-build (scripts/kbuild.sh) and the FreeBSD
# build (geom_multipath_rs/Makefile). POSIX sh.
#
# x86_64-unknown-none already means kernel code model, no red zone and
# soft-float (no SSE/x87), as amd64 kernel code needs; its core and alloc are
# rebuilt from source with the same flags (-Zbuild-std, hence a rustc with
# rust-src and RUSTC_BOOTSTRAP=1). Set RUSTC to pick that rustc.
#   -C relocation-model=static, -Z plt=yes: no GOT-relative relocations, which
#      the amd64 kernel linker rejects (rustc's default -Zplt=no has LLVM call
#      memcpy & co through the GOT even in static code)
#   -C force-unwind-tables=no: panic=abort needs none (kern.mk drops them too)
#   -C force-frame-pointers=yes: usable backtraces in ddb(4)
#   LTO into one object; compiler_builtins in one object per function, so
#   scripts/rustlib-prune.sh can leave memcpy & co to the kernel.
set -eu
cd "$(dirname "$0")/.."
: "${CARGO_TARGET_DIR:?set CARGO_TARGET_DIR}"
export CARGO_TARGET_DIR
RUSTC_BOOTSTRAP=1 \
RUSTFLAGS="-C relocation-model=static -Z plt=yes -C force-unwind-tables=no -C force-frame-pointers=yes" \
CARGO_PROFILE_RELEASE_PANIC=abort \
CARGO_PROFILE_RELEASE_LTO=fat \
CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
CARGO_PROFILE_RELEASE_DEBUG=false \
	"${CARGO:-cargo}" --config 'profile.release.package.compiler_builtins.codegen-units=10000' \
	rustc -p geom_multipath_rs --lib --crate-type staticlib --release --features kernel \
	-Zbuild-std=core,alloc --target x86_64-unknown-none
lib=$CARGO_TARGET_DIR/x86_64-unknown-none/release/libgeom_multipath_rs.a
[ -f "$lib" ] || {
	echo "cargo-kernel: cargo made no $lib" >&2
	exit 1
}
