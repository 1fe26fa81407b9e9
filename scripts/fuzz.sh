#!/usr/bin/env bash
# `make fuzz`: runs every cargo-fuzz target for a bounded time each
# (FUZZ_SECONDS, default 60). cargo-fuzz needs a nightly compiler: the
# rustc-web toolchain with RUSTC_BOOTSTRAP=1 stands in for one.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

if [ ! -f fuzz/Cargo.toml ]; then
	echo "fuzz: no fuzz targets yet (fuzz/Cargo.toml); nothing to run"
	exit 0
fi
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
secs=${FUZZ_SECONDS:-60}
for t in $(cargo fuzz list); do
	gmr_step "fuzz: $t (${secs}s)"
	RUSTC="$GMR_KERNEL_RUSTC" RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" -- -max_total_time="$secs"
done
