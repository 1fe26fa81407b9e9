#!/usr/bin/env bash
# RUSTC_WRAPPER for `FUZZ_INSTRUMENT=lean` fuzz builds (scripts/fuzz.sh).
#
# cargo calls it as `fuzz-rustc.sh RUSTC ARGS...`. It adds the
# sanitizer-coverage flags to the crates compiled for the target (build
# scripts and proc macros are compiled without --target and get none):
# edge coverage for our own crates (GMR_FUZZ_COVER), compare tracing only
# for the crates named in GMR_FUZZ_COMPARE. Third-party crates are left
# uninstrumented. Why: in the gctl target most of the cycles are the
# simulator's own compares and libFuzzer's walk over the edges it hit,
# while the code under test is the class.
set -euo pipefail
rustc=$1
shift
name=
for_target=
prev=
for a in "$@"; do
	[ "$prev" = --crate-name ] && name=$a
	[ "$prev" = --target ] && for_target=1
	prev=$a
done
flags=()
if [ -n "$for_target" ] && [[ " ${GMR_FUZZ_COVER:-} " == *" $name "* ]]; then
	flags=(-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4
		-Cllvm-args=-sanitizer-coverage-inline-8bit-counters
		-Cllvm-args=-sanitizer-coverage-pc-table)
	[[ " ${GMR_FUZZ_COMPARE:-} " == *" $name "* ]] &&
		flags+=(-Cllvm-args=-sanitizer-coverage-trace-compares)
fi
exec "$rustc" "$@" "${flags[@]}"
