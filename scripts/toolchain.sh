#!/usr/bin/env bash
# Installs what the build and the checks need, and nothing when it is all
# there (a few dpkg/command look-ups: fast enough to run before every build).
# This is the only script that installs anything: `make test` runs it once,
# first, and then forbids installing (GMR_NO_INSTALL=1); see
# scripts/check-installs.sh, which checks both.
#
#   scripts/toolchain.sh [kbuild|check|bindgen|lint|vmtest|vm|all]...   (default: all)
#
#   kbuild   cross-build the module: clang-14, lld-14, llvm-14, rustc-web +
#            rust-web-src (a rustc with library sources for -Zbuild-std), and
#            FreeBSD headers (pip ziglang) unless SYSDIR is set
#   check    audit the module: llvm-14 tools, clang-14
#   bindgen  regenerate sys-bindings: bindgen-cli (pinned, cargo install),
#            libclang 14
#   lint     shellcheck
#   vmtest   the self-test of the VM harness (tests/vm/selftest.sh): atf-sh
#            and kyua (the ATF dry runs), mtools and dosfstools (the FAT
#            carrier), python3 (console driver, fakebsd model)
#   vm       booting a FreeBSD image (tests/vm/run.sh, make vm): QEMU, OVMF,
#            qemu-img, xz, mtools, dosfstools, python3
#   all      everything `make test` runs: kbuild check bindgen lint vmtest,
#            and vm when FREEBSD_IMAGE is set (make test then boots it)
#
# Debian/Ubuntu only (apt-get); runs apt-get update once, and only when a
# package is missing. On FreeBSD nothing is installed: see the README.
#
# With GMR_NO_INSTALL=1 nothing is installed: what is missing is listed and
# the script fails (make test sets it after its first step).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

[ $# -gt 0 ] || set -- all

apt_pkgs=()
want_pkg() {
	local p
	for p in "$@"; do
		if ! dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii'; then
			apt_pkgs+=("$p")
		fi
	done
}
need_ziglang=no
need_bindgen=no
need_cargo=no
need_kernel_rustc=no

want_kbuild() {
	need_kernel_rustc=yes
	want_pkg "clang-$GMR_LLVM_VERSION" "lld-$GMR_LLVM_VERSION" "llvm-$GMR_LLVM_VERSION" rustc-web rust-web-src
	command -v cargo >/dev/null 2>&1 || need_cargo=yes
	if [ -z "${SYSDIR:-}" ]; then
		local zig
		zig=$(gmr_ziglang_dir)
		if [ -z "$zig" ] || [ ! -f "$zig/lib/libc/include/generic-freebsd/geom/geom.h" ]; then
			need_ziglang=yes
			command -v python3 >/dev/null 2>&1 || want_pkg python3
			python3 -m pip --version >/dev/null 2>&1 || want_pkg python3-pip
		fi
	fi
}

want_check() {
	want_pkg "clang-$GMR_LLVM_VERSION" "lld-$GMR_LLVM_VERSION" "llvm-$GMR_LLVM_VERSION"
}

want_bindgen() {
	want_pkg "clang-$GMR_LLVM_VERSION" "libclang1-$GMR_LLVM_VERSION"
	command -v cargo >/dev/null 2>&1 || need_cargo=yes
	if [ ! -x "$GMR_BINDGEN" ] || ! "$GMR_BINDGEN" --version 2>/dev/null | grep -qx "bindgen $GMR_BINDGEN_VERSION"; then
		need_bindgen=yes
	fi
}

want_lint() {
	want_pkg shellcheck
}

want_python3() {
	command -v python3 >/dev/null 2>&1 || want_pkg python3
}

want_vmtest() {
	want_pkg atf-sh kyua mtools dosfstools
	want_python3
}

want_vm() {
	want_pkg qemu-system-x86 qemu-utils ovmf xz-utils mtools dosfstools
	want_python3
}

if [ "$(uname -s)" != Linux ]; then
	echo "toolchain: $(uname -s) host: nothing installed here (on FreeBSD, see the README: pkg install rust, or rustup with rust-src)"
	exit 0
fi
command -v dpkg-query >/dev/null 2>&1 || gmr_die "toolchain: only Debian-like hosts (apt-get) are supported; install the tools listed in scripts/toolchain.sh by hand"

for c in "$@"; do
	case "$c" in
	kbuild) want_kbuild ;;
	check) want_check ;;
	bindgen) want_bindgen ;;
	lint) want_lint ;;
	vmtest) want_vmtest ;;
	vm) want_vm ;;
	all)
		want_kbuild
		want_check
		want_bindgen
		want_lint
		want_vmtest
		if [ -n "${FREEBSD_IMAGE:-}" ]; then want_vm; fi
		;;
	*) gmr_die "toolchain: unknown component '$c'" ;;
	esac
done

if [ "$need_cargo" = yes ]; then
	want_pkg cargo-web
fi

if [ "${GMR_NO_INSTALL:-}" = 1 ]; then
	missing=()
	if [ ${#apt_pkgs[@]} -gt 0 ]; then missing+=("Debian packages: ${apt_pkgs[*]}"); fi
	if [ "$need_ziglang" = yes ]; then missing+=("pip ziglang==$GMR_ZIGLANG_VERSION"); fi
	if [ "$need_bindgen" = yes ]; then missing+=("bindgen-cli $GMR_BINDGEN_VERSION"); fi
	if [ ${#missing[@]} -gt 0 ]; then
		printf 'error: toolchain: missing, and GMR_NO_INSTALL=1 forbids installing here: %s\n' "${missing[@]}" >&2
		gmr_die "toolchain: run 'scripts/toolchain.sh $*' before (make test runs it once, first)"
	fi
fi

if [ ${#apt_pkgs[@]} -gt 0 ]; then
	# de-duplicate, keep order
	mapfile -t apt_pkgs < <(printf '%s\n' "${apt_pkgs[@]}" | awk '!seen[$0]++')
	sudo=()
	if [ "$(id -u)" != 0 ]; then
		command -v sudo >/dev/null 2>&1 || gmr_die "toolchain: need root (or sudo) to install: ${apt_pkgs[*]}"
		sudo=(sudo)
	fi
	echo "toolchain: installing ${apt_pkgs[*]}"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}"
fi

if [ "$need_ziglang" = yes ]; then
	echo "toolchain: installing FreeBSD headers (pip ziglang==$GMR_ZIGLANG_VERSION)"
	python3 -m pip install --quiet --disable-pip-version-check "ziglang==$GMR_ZIGLANG_VERSION" ||
		python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "ziglang==$GMR_ZIGLANG_VERSION"
	[ -n "$(gmr_ziglang_dir)" ] || gmr_die "toolchain: ziglang installed but python3 cannot import it"
fi

if [ "$need_bindgen" = yes ]; then
	echo "toolchain: installing bindgen-cli $GMR_BINDGEN_VERSION (cargo install, a few minutes once)"
	CARGO_TARGET_DIR="${TMPDIR:-/tmp}/gmr-bindgen-build" \
		cargo install --quiet --locked --force --root "$(dirname "$(dirname "$GMR_BINDGEN")")" \
		bindgen-cli --version "$GMR_BINDGEN_VERSION"
fi

[ "$need_kernel_rustc" = no ] || [ -x "$GMR_KERNEL_RUSTC" ] ||
	gmr_die "toolchain: $GMR_KERNEL_RUSTC missing after install"
echo "toolchain: ready ($*)"
