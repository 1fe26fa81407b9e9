#!/usr/bin/env bash
# Cross-builds geom_multipath_rs/geom_multipath_rs.ko on Linux:
#   1. the Rust core as a staticlib for x86_64-unknown-none (kernel code
#      model, no red zone, soft-float), with core and alloc rebuilt from
#      source by the same flags (-Zbuild-std);
#   2. the C shim with clang against FreeBSD kernel headers (SYSDIR, or the
#      ziglang wheel's);
#   3. `ld.lld -r` of both into one ELF relocatable object, the form of an
#      amd64 .ko, whose own symbols are then made local as bsd.kmod.mk does.
# Intermediate files go to build/kmod, cargo's to build/cargo-kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

if [ "$(uname -s)" = FreeBSD ]; then
	exec make -C geom_multipath_rs
fi

scripts/toolchain.sh kbuild >/dev/null
GMR_ROOT=$PWD gmr_kernel_headers

out=$PWD/build/kmod
ko=geom_multipath_rs/geom_multipath_rs.ko
mkdir -p "$out"

gmr_step "kbuild: Rust core -> staticlib (x86_64-unknown-none, -Zbuild-std=core,alloc)"
export CARGO_TARGET_DIR=$PWD/build/cargo-kernel
RUSTC=$GMR_KERNEL_RUSTC scripts/cargo-kernel.sh
staticlib=$CARGO_TARGET_DIR/x86_64-unknown-none/release/libgeom_multipath_rs.a

# compiler_builtins carries weak memcpy/memset/memmove/memcmp/bcmp/strlen for
# targets without a libc. The kernel has its own (sys/systm.h): drop the
# archive members that define nothing else, so those calls stay undefined and
# bind to the kernel's at kldload.
cp "$staticlib" "$out/librust.a"
NM=$GMR_NM AR=$GMR_AR scripts/rustlib-prune.sh "$out/librust.a"

gmr_step "kbuild: C shim (clang-$GMR_LLVM_VERSION, $GMR_HEADERS_DESC)"
gmr_kernel_cflags "$out"
"$GMR_CLANG" "${GMR_KCFLAGS[@]}" -Isys-bindings \
	-c geom_multipath_rs/g_multipath_shim.c -o "$out/g_multipath_shim.o"

gmr_step "kbuild: link $ko (ld.lld-$GMR_LLVM_VERSION -r)"
"$GMR_LD" -r -m elf_x86_64 --build-id=none -o "$out/geom_multipath_rs.kld" \
	"$out/g_multipath_shim.o" "$out/librust.a"
# Like bsd.kmod.mk with EXPORT_SYMS=NO (kmod_syms.awk lists every defined
# global symbol, objcopy -L localizes each): every symbol the module defines
# becomes local, so none of ours (the shim's gmr_* accessors, M_GMR) lands in
# the kernel's global namespace. Undefined symbols stay global and bind at
# kldload. (An empty --keep-global-symbols list does not do this: llvm-objcopy
# treats an empty list as no list and keeps every global.) check-ko's rule
# symbols-local checks the result.
"$GMR_NM" --no-llvm-bc -g --defined-only "$out/geom_multipath_rs.kld" |
	awk '{ print $NF }' | sort -u >"$out/localize_syms"
# The LLVM bitcode rustc embeds for LTO (.llvmbc, .llvmcmd) is dropped too.
"$GMR_OBJCOPY" --localize-symbols="$out/localize_syms" \
	--remove-section=.llvmbc --remove-section=.llvmcmd \
	"$out/geom_multipath_rs.kld" "$ko"
# Record which headers it was built against, for the audit.
{
	printf 'GMR_HEADERS_DESC=%q\n' "$GMR_HEADERS_DESC"
	printf 'GMR_KINC=(%s)\n' "$(printf '%q ' "${GMR_KINC[@]}")"
	printf 'GMR_FREEBSD_VERSION=%q\n' "$GMR_FREEBSD_VERSION"
} >"$out/headers.env"
echo "kbuild: built $ko ($(wc -c <"$ko") bytes)"
