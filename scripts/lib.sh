# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables are used by the scripts that source this file
# Shared settings and helpers of the build scripts. Source it from the repo root.
#
# Everything that pins a tool version lives here, so the build, the checks and
# the toolchain installer agree.

# LLVM 14 (Debian 12's clang-14/lld-14/llvm-14) builds the C shim, links the
# module and disassembles it for the audit.
GMR_LLVM_VERSION=14
GMR_CLANG=clang-$GMR_LLVM_VERSION
GMR_LD=ld.lld-$GMR_LLVM_VERSION
GMR_READELF=${READELF:-llvm-readelf-$GMR_LLVM_VERSION}
GMR_OBJDUMP=${OBJDUMP:-llvm-objdump-$GMR_LLVM_VERSION}
GMR_NM=${NM:-llvm-nm-$GMR_LLVM_VERSION}
GMR_AR=llvm-ar-$GMR_LLVM_VERSION
GMR_OBJCOPY=llvm-objcopy-$GMR_LLVM_VERSION

# The second rustc (Debian's rustc-web) has matching library sources
# (rust-web-src), which -Zbuild-std needs; rustup's toolchain has none.
GMR_KERNEL_RUSTC=/usr/bin/rustc
GMR_RUST_SRC=/usr/lib/rustlib/src/rust/library

# bindgen for sys-bindings/src/bindings.rs. Changing the version changes the
# vendored output: regenerate with `make bindings` and commit.
GMR_BINDGEN_VERSION=0.72.1
GMR_BINDGEN=${BINDGEN:-$HOME/.cargo/bin/bindgen}
GMR_LIBCLANG_DIR=/usr/lib/llvm-$GMR_LLVM_VERSION/lib

# FreeBSD headers from the PyPI wheel `ziglang` when no SYSDIR is given.
GMR_ZIGLANG_VERSION=0.17.1

gmr_die() {
	echo "error: $*" >&2
	exit 1
}

gmr_step() {
	printf '\n==> %s\n' "$*"
}

# The clang resource headers (stddef.h, stdint.h) bindgen parses shim.h with.
gmr_libclang_include() {
	echo "$("$GMR_CLANG" -print-resource-dir)/include"
}

# Prints the folder of the installed ziglang package, or nothing.
gmr_ziglang_dir() {
	python3 - <<'PY' 2>/dev/null || true
import importlib.util, os
spec = importlib.util.find_spec("ziglang")
if spec is not None and spec.origin:
    print(os.path.dirname(spec.origin))
PY
}

# Sets the FreeBSD kernel header settings the shim is compiled (and the module
# audited) against:
#   GMR_KINC          include folders, in search order
#   GMR_KDEFS         extra -D flags
#   GMR_FREEBSD_MAJOR major version of those headers
#   GMR_FREEBSD_VERSION the __FreeBSD_version the module is built for (its
#                     MDT_DEPEND on `kernel` is [this, roundup(this, 100000) - 1])
#   GMR_HEADERS_DESC  where they come from
# With SYSDIR (a FreeBSD kernel source tree, e.g. /usr/src/sys) its headers are
# used; otherwise the FreeBSD headers of the ziglang wheel.
gmr_kernel_headers() {
	local root=${GMR_ROOT:-$PWD}
	if [ -n "${SYSDIR:-}" ]; then
		[ -f "$SYSDIR/sys/param.h" ] || gmr_die "SYSDIR=$SYSDIR is not a FreeBSD kernel source tree (no sys/param.h)"
		# bsd.kmod.mk makes these two links in the object folder.
		mkdir -p "$root/build/kinc"
		ln -sfn "$SYSDIR/amd64/include" "$root/build/kinc/machine"
		ln -sfn "$SYSDIR/x86/include" "$root/build/kinc/x86"
		GMR_KINC=("$root/build/kinc" "$SYSDIR" "$SYSDIR/contrib/ck/include")
		GMR_KDEFS=()
		local v
		v=$(awk '/^#define[[:space:]]*__FreeBSD_version/ {print $3}' "$SYSDIR/sys/param.h")
		[ -n "$v" ] || gmr_die "no __FreeBSD_version in $SYSDIR/sys/param.h"
		GMR_FREEBSD_MAJOR=$((v / 100000))
		GMR_FREEBSD_VERSION=$v
		GMR_HEADERS_DESC="SYSDIR=$SYSDIR (__FreeBSD_version $v)"
	else
		local zig inc maxrel
		zig=$(gmr_ziglang_dir)
		[ -n "$zig" ] || gmr_die "the ziglang Python package is missing: run scripts/toolchain.sh kbuild, or set SYSDIR"
		inc=$zig/lib/libc/include
		[ -f "$inc/generic-freebsd/geom/geom.h" ] || gmr_die "$inc has no FreeBSD headers"
		GMR_KINC=("$inc/generic-freebsd" "$inc/x86_64-freebsd-none" "$inc/x86-freebsd-none")
		# zig's sys/param.h leaves __FreeBSD_version to the compiler. Take the
		# branch from the newest P_OSREL_* value the headers know, then the
		# __FreeBSD_version of that branch's .0 release (the oldest kernel of
		# the branch, so every kernel of it accepts the module). Never the
		# round major * 100000: MODULE_KERNEL_MAXVER (sys/module.h) is
		# roundup(v, 100000) - 1, which for a round v is v - 1, an empty
		# range every kernel refuses. Release values from sys/param.h of each
		# releng/N.0 branch (the Porter's Handbook, __FreeBSD_version values).
		maxrel=$(awk '/^#define[[:space:]]+P_OSREL_[A-Z0-9_]+[[:space:]]+[0-9]+/ { if ($3 > m) m = $3 } END { print m + 0 }' \
			"$inc/generic-freebsd/sys/param.h")
		[ "$maxrel" -gt 0 ] || gmr_die "cannot tell the FreeBSD version of $inc"
		GMR_FREEBSD_MAJOR=$((maxrel / 100000))
		case $GMR_FREEBSD_MAJOR in
		14) GMR_FREEBSD_VERSION=1400097 ;; # 14.0-RELEASE
		15) GMR_FREEBSD_VERSION=1500068 ;; # 15.0-RELEASE
		*) gmr_die "headers of FreeBSD $GMR_FREEBSD_MAJOR (P_OSREL up to $maxrel): no known .0 release __FreeBSD_version; add it to gmr_kernel_headers or set SYSDIR" ;;
		esac
		[ "$GMR_FREEBSD_VERSION" -ge "$maxrel" ] || gmr_die "the headers know P_OSREL $maxrel, newer than $GMR_FREEBSD_VERSION"
		GMR_KDEFS=("-D__FreeBSD_version=$GMR_FREEBSD_VERSION")
		GMR_HEADERS_DESC="ziglang $(python3 -c 'import importlib.metadata as m; print(m.version("ziglang"))' 2>/dev/null || echo '?') FreeBSD $GMR_FREEBSD_MAJOR headers, __FreeBSD_version $GMR_FREEBSD_VERSION ($inc)"
	fi
}

# The flags kernel C is compiled with (after gmr_kernel_headers): those of
# FreeBSD's kern.mk/kmod.mk for amd64 that matter to the object's form:
# kernel code model, no red zone, no FPU/SIMD, no PIC, no unwind tables.
# Prints nothing; sets GMR_KCFLAGS. Needs $1, a folder holding opt_global.h.
gmr_kernel_cflags() {
	local optdir=$1 d
	mkdir -p "$optdir"
	[ -f "$optdir/opt_global.h" ] || : >"$optdir/opt_global.h"
	GMR_KCFLAGS=(--target="x86_64-unknown-freebsd$GMR_FREEBSD_MAJOR.0"
		-D_KERNEL -DKLD_MODULE "${GMR_KDEFS[@]}"
		-ffreestanding -nostdinc -fno-common -fno-pic -fno-strict-aliasing -fwrapv
		-mcmodel=kernel -mno-red-zone -mno-mmx -mno-sse -mno-avx -mno-aes -msoft-float
		-fno-asynchronous-unwind-tables -fno-omit-frame-pointer
		-O2 -Wall -Werror=implicit-function-declaration -Werror=incompatible-pointer-types
		-include "$optdir/opt_global.h" -I"$optdir")
	for d in "${GMR_KINC[@]}"; do GMR_KCFLAGS+=("-I$d"); done
}

# The mode of a script that regenerates a vendored file, from its arguments:
# sets `mode` to "write" with none, "check" with --check; anything else is a
# usage error (exit 2).
gmr_vendored_mode() {
	case "${1:-}" in
	"") mode="write" ;;
	--check) mode=check ;;
	*)
		echo "usage: $0 [--check]" >&2
		exit 2
		;;
	esac
}

# Runs the pinned bindgen on the header $1 with the options every vendored
# file shares (libclang $GMR_LLVM_VERSION, prettyplease, the Rust target and
# edition), then the rest of the arguments.
gmr_bindgen() {
	LIBCLANG_PATH="$GMR_LIBCLANG_DIR" "$GMR_BINDGEN" "$1" \
		--formatter prettyplease \
		--rust-target 1.82 --rust-edition 2021 \
		"${@:2}"
}

# Ends a regeneration of a vendored file. In check mode, fails with a diff
# when the vendored file $3 differs from the fresh output $4; otherwise
# copies $4 over $3. $1 is the mode, $2 the make target that regenerates it
# (also the name in the messages), $5 what the OK line says $3 matches.
gmr_vendored_finish() {
	local mode=$1 name=$2 vendored=$3 fresh=$4 source=$5
	if [ "$mode" = check ]; then
		if ! diff -u "$vendored" "$fresh"; then
			echo "check-$name: FAIL: $vendored is stale; run 'make $name' and commit it" >&2
			exit 1
		fi
		echo "check-$name: OK: $vendored matches $source"
	else
		cp "$fresh" "$vendored"
		echo "$name: wrote $vendored"
	fi
}
