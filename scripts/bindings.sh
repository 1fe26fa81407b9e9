#!/usr/bin/env bash
# Generates sys-bindings/src/bindings.rs from sys-bindings/shim.h with a pinned
# bindgen, so the vendored file is reproducible byte for byte.
#
#   scripts/bindings.sh            regenerate the vendored file
#   scripts/bindings.sh --check    regenerate into a temp file; fail with a diff
#                                  when the vendored file differs
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

gmr_vendored_mode "$@"

scripts/toolchain.sh bindgen >/dev/null

header=sys-bindings/shim.h
vendored=sys-bindings/src/bindings.rs
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

# libclang 14 (the Debian package the toolchain script installs) parses the
# header; prettyplease formats the output, so neither the host's rustfmt nor
# its clang version changes a byte.
gmr_bindgen "$header" \
	--use-core \
	--no-layout-tests \
	--allowlist-function 'gmr_.*' \
	--allowlist-type 'gmr_.*' \
	--allowlist-var 'GMR_.*' \
	--blocklist-function 'gmr_rs_.*' \
	--merge-extern-blocks \
	--sort-semantically \
	-o "$tmp" \
	-- -x c -std=c11 -ffreestanding -nostdinc -isystem "$(gmr_libclang_include)"

gmr_vendored_finish "$mode" bindings "$vendored" "$tmp" \
	"bindgen $GMR_BINDGEN_VERSION output of $header"
