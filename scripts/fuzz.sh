#!/usr/bin/env bash
# `make fuzz` and `make fuzz-long`: coverage-guided fuzzing with libFuzzer.
#
# The targets (fuzz/fuzz_targets/, bodies in sim/src/harness/fuzzing.rs):
#   label     bytes -> the on-disk label decoder, and the round trip of
#             whatever it accepts
#   gctl      a script of raw gctl requests (malformed ones included),
#             gmultipath command lines and path faults -> the class's
#             ctlreq on a deterministic two-LUN simulator
#   scenario  bytes -> the scenario file parser
#
# They are built the way cargo-fuzz builds them (sanitizer-coverage passes,
# --cfg fuzzing, libFuzzer from the libfuzzer-sys crate) but with stable
# cargo and no sanitizer runtime, so nothing beyond the crates and a C++
# compiler (libFuzzer's sources) is needed. Overflow checks and debug
# assertions are on.
#
#   scripts/fuzz.sh [short]   each target for FUZZ_SECONDS (default 60),
#                             then the proptest campaigns (FUZZ_CASES label
#                             cases, default 200000; the gctl run gets a
#                             twentieth; FUZZ_CASES=0 skips them)
#   scripts/fuzz.sh long      each target until FUZZ_RUNS executions
#                             (default 10000000), or FUZZ_LONG_SECONDS if set
#   FUZZ_TARGETS="label gctl" picks targets.
#   FUZZ_INSTRUMENT=full|lean how the targets are built. full (default):
#                             every crate gets edge coverage and compare
#                             tracing, as cargo-fuzz does (fuzz/target).
#                             lean: edge coverage on our crates only
#                             (geom_multipath_rs, geom_sim, kld, the
#                             target), compare tracing on the class's crate
#                             only (fuzz/target-lean; scripts/fuzz-rustc.sh).
#                             For gctl it runs about 1.3 times as many
#                             executions a second: the simulator's compares
#                             and its edges are most of a full build's cost.
#   FUZZ_JOBS=N               runs each target on N cores in one libFuzzer
#                             run (-fork=N: the jobs share the corpus and
#                             libFuzzer merges their coverage; default 1, a
#                             plain run). -runs bounds the executions of all
#                             jobs together (counted when a job ends, so a
#                             run may go a little past FUZZ_RUNS); timeouts
#                             and out-of-memory in a job fail the run as
#                             they do without it.
#
# A long run prints, after its first minute, the rate so far and the time
# that rate takes to reach FUZZ_RUNS when that is over ten minutes.
#
# New inputs go to fuzz/work/TARGET (not checked in; the log to
# fuzz/work/TARGET.log, or TARGET.long.log for a long run); the checked-in seeds
# in fuzz/corpus/TARGET are read only. A crash stops that target, its input
# is saved in fuzz/artifacts/TARGET/ and the script exits 1 after the
# summary; replay one with `fuzz/target/TRIPLE/release/TARGET FILE`
# (fuzz/target-lean/... for a lean build).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

how=${1:-short}
case $how in
short | long) ;;
*) gmr_die "usage: scripts/fuzz.sh [short|long]" ;;
esac
seconds=${FUZZ_SECONDS:-60}
runs=${FUZZ_RUNS:-10000000}
long_seconds=${FUZZ_LONG_SECONDS:-0}
cases=${FUZZ_CASES:-200000}
jobs=${FUZZ_JOBS:-1}
[[ $jobs =~ ^[1-9][0-9]*$ ]] || gmr_die "FUZZ_JOBS must be a positive number, not '$jobs'"
read -r -a targets <<<"${FUZZ_TARGETS:-label gctl scenario}"

triple=$(rustc -vV | sed -n 's/^host: //p')
[ -n "$triple" ] || gmr_die "cannot tell the host triple from rustc -vV"
instrument=${FUZZ_INSTRUMENT:-full}
case $instrument in
full)
	target_dir=fuzz/target
	# --target keeps these flags off build scripts and proc macros (serde).
	export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
	;;
lean)
	target_dir=fuzz/target-lean
	export RUSTFLAGS="--cfg fuzzing" RUSTC_WRAPPER=$PWD/scripts/fuzz-rustc.sh
	export GMR_FUZZ_COVER="geom_multipath_rs geom_sim kld label gctl scenario"
	export GMR_FUZZ_COMPARE="geom_multipath_rs"
	;;
*) gmr_die "FUZZ_INSTRUMENT must be full or lean, not '$instrument'" ;;
esac
export CARGO_TARGET_DIR=$PWD/$target_dir
gmr_step "fuzz: build the targets (libFuzzer, sanitizer coverage: $instrument, $triple)"
cargo build --release --manifest-path fuzz/Cargo.toml --target "$triple" --bins
unset RUSTFLAGS CARGO_TARGET_DIR RUSTC_WRAPPER GMR_FUZZ_COVER GMR_FUZZ_COMPARE

max_len() {
	case $1 in
	label) echo 8192 ;;
	*) echo 2048 ;;
	esac
}

# The executions so far in a log: the number of the last status line (a
# plain run's "#N NEW ...", "#N pulse ..."; -fork's "#N: cov: ...").
execs_so_far() {
	sed -n 's/^#\([0-9][0-9]*\)[:[:space:]].*/\1/p' "$1" 2>/dev/null | tail -n 1
}

# Runs in the background during a long run: after the first minute, the
# rate so far (executions / seconds at which the last count appeared) and
# the time it takes to reach $runs, when that is over ten minutes. It
# polls every 2 s, so the count's time is known to 2 s.
estimate() {
	local log=$1 t=$2 start=$SECONDS n=0 seen=0 cur
	while :; do
		sleep 2
		kill -0 "$$" 2>/dev/null || return 0
		cur=$(execs_so_far "$log")
		if [ -n "$cur" ] && [ "$cur" != "$n" ]; then
			n=$cur
			seen=$((SECONDS - start))
		fi
		[ $((SECONDS - start)) -ge 60 ] && [ "$n" -gt 0 ] && break
	done
	local rate=$((n / (seen > 0 ? seen : 1)))
	[ "$rate" -gt 0 ] || return 0
	local need=$(((runs - n) / rate + seen))
	if [ "$need" -gt 600 ]; then
		local cap=
		[ "$long_seconds" -gt 0 ] && [ "$long_seconds" -lt "$need" ] &&
			cap=" (FUZZ_LONG_SECONDS stops it at $long_seconds s)"
		printf 'fuzz: %s: %d executions in the first %d s (%d/s, %d job(s)): %d executions in about %dh%02dm%s\n' \
			"$t" "$n" "$seen" "$rate" "$jobs" "$runs" $((need / 3600)) $((need % 3600 / 60)) "$cap"
	fi
}

on=
[ "$jobs" -gt 1 ] && on=" on $jobs cores (-fork=$jobs)"
[ "$instrument" = lean ] && on="$on (lean build)"
declare -A summary
failed=0
for t in "${targets[@]}"; do
	bin=$target_dir/$triple/release/$t
	[ -x "$bin" ] || gmr_die "no fuzz target named $t"
	mkdir -p "fuzz/work/$t" "fuzz/artifacts/$t"
	# A long run keeps its own log: a later short run does not overwrite it.
	log=fuzz/work/$t.log
	[ "$how" = long ] && log=fuzz/work/$t.long.log
	if [ "$how" = long ]; then
		limit=(-runs="$runs" -max_total_time="$long_seconds")
		gmr_step "fuzz: $t until $runs executions${FUZZ_LONG_SECONDS:+ or $long_seconds s}$on"
	else
		limit=(-max_total_time="$seconds")
		gmr_step "fuzz: $t for $seconds s$on"
	fi
	fork=()
	# Each job gets the flags too; the fork parent ignores timeouts and
	# out-of-memory unless told not to.
	[ "$jobs" -gt 1 ] && fork=(-fork="$jobs" -ignore_timeouts=0 -ignore_ooms=0)
	start=$SECONDS
	rc=0
	dict=()
	[ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
	: >"$log"
	watcher=
	if [ "$how" = long ]; then
		estimate "$log" "$t" &
		watcher=$!
	fi
	"$bin" "${fork[@]}" "${limit[@]}" "${dict[@]}" -max_len="$(max_len "$t")" -timeout=30 \
		-rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" \
		"fuzz/work/$t" "fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
	elapsed=$((SECONDS - start))
	if [ -n "$watcher" ]; then
		kill "$watcher" 2>/dev/null || true
		wait "$watcher" 2>/dev/null || true
	fi
	if [ "$jobs" -gt 1 ]; then
		# -fork prints no final stats of its own: its status line after each
		# job carries the executions of all jobs so far, the merged coverage,
		# features and corpus (its exec/s is the last job's alone).
		grep -E '^#[0-9]+: cov:' "$log" | tail -n 3 || true
		status=$(grep -E '^#[0-9]+: cov:' "$log" | tail -n 1 || true)
		execs=$(sed -n 's/^#\([0-9]*\):.*/\1/p' <<<"$status")
		rate=
		[ -n "$execs" ] && rate=$((execs / (elapsed > 0 ? elapsed : 1)))
	else
		grep -E '^#[0-9]+.*(INITED|NEW|REDUCE|pulse|DONE)' "$log" | tail -n 3 || true
		status=$(grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -n 1 || true)
		execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
		rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	fi
	cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$status")
	ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$status")
	corp=$(sed -n 's/.* corp: \([0-9]*\)[/ ].*/\1/p' <<<"$status")
	if [ "$rc" -eq 0 ]; then
		result=ok
	else
		failed=1
		result="CRASH (exit $rc)"
		# With -fork the failing job's log is copied into this one.
		grep -E 'panicked at|^thread .*panicked|ERROR: libFuzzer|SUMMARY' "$log" | head -n 5 || true
		for a in "fuzz/artifacts/$t"/*; do
			[ -e "$a" ] && echo "reproducer: $bin $a"
		done
	fi
	[ "$jobs" -gt 1 ] && result="$result, $jobs jobs"
	[ "$instrument" = lean ] && result="$result, lean build"
	summary[$t]=$(printf '%-9s %11s %8s %6s %7s %7s %6ss  %s' "$t" "${execs:-?}" "${rate:-?}" \
		"${cov:-?}" "${ft:-?}" "${corp:-?}" "$elapsed" "$result")
	echo "${summary[$t]}   (log: $log)"
done

if [ "$how" = short ] && [ "$cases" -gt 0 ]; then
	gmr_step "fuzz: proptest, label decoder, $cases cases per property"
	PROPTEST_CASES="$cases" cargo test --release -p geom_multipath_rs --lib metadata::tests::prop_ ||
		failed=1
	gmr_step "fuzz: proptest, malformed gctl requests, $((cases / 20)) request sequences"
	PROPTEST_CASES="$((cases / 20))" cargo test --release --test ctl_fuzz || failed=1
fi

gmr_step "fuzz: summary ($how run)"
printf '%-9s %11s %8s %6s %7s %7s %7s  %s\n' target executions exec/s cov ft corpus time result
for t in "${targets[@]}"; do
	echo "${summary[$t]}"
done
if [ "$failed" -ne 0 ]; then
	echo "fuzz: FAILED (crash inputs are in fuzz/artifacts/, or a proptest failed above)" >&2
	exit 1
fi
echo "fuzz: no crash"
