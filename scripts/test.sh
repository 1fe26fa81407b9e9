#!/usr/bin/env bash
# `make test`: every check the project has, each under a header line. All
# steps run; the script fails at the end if any failed, and says which.
#
# The first step installs everything (scripts/toolchain.sh all); after it
# GMR_NO_INSTALL=1 is exported, so nothing a later step runs may install
# anything (toolchain.sh and tests/vm's vm_need refuse and fail instead).
# A step exits 0 (passed), 77 (skipped: nothing was tested; its output
# says why in a line starting "SKIPPED") or anything else (failed).
# To add a check: one `step "title" command...` line, and a row for it in
# the table of scripts/check-installs.sh (what the step needs).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

GMR_SKIP=77
passed=()
failed=()
skipped=()
steplog=$(mktemp "${TMPDIR:-/tmp}/gmr-test-step.XXXXXX")
# What ran through the module (each GMR_CLASS=ko simulator and the --ko
# soak append a summary line; the end of this script adds them up).
ko_summary=$(mktemp "${TMPDIR:-/tmp}/gmr-ko-summary.XXXXXX")
trap 'rm -f "$steplog" "$ko_summary"' EXIT
step() { # step "title" command...
	local title=$1 rc why
	shift
	gmr_step "$title"
	"$@" 2>&1 | tee "$steplog"
	rc=${PIPESTATUS[0]}
	if [ "$rc" = 0 ]; then
		passed+=("$title")
	elif [ "$rc" = "$GMR_SKIP" ]; then
		why=$(grep -m1 '^SKIPPED' "$steplog" || true)
		echo "--> SKIPPED: $title"
		skipped+=("$title: ${why:-exit status $GMR_SKIP, no reason given}")
	else
		echo "--> FAILED (exit $rc): $title" >&2
		failed+=("$title")
	fi
}

# passed_count FILE: the tests cargo test reported passed in FILE, summed
# over its "test result: ok" lines.
passed_count() {
	sed -n 's/^test result: ok\. \([0-9]*\) passed.*/\1/p' "$1" | awk '{ s += $1 } END { print s + 0 }'
}

# cargo_test_some ARGS...: `cargo test ARGS...`, which must also run at
# least one test (a filter that matches nothing passes cargo test).
cargo_test_some() {
	local out n
	out=$(mktemp "${TMPDIR:-/tmp}/gmr-cargo-test.XXXXXX")
	cargo test "$@" 2>&1 | tee "$out"
	local rc=${PIPESTATUS[0]}
	n=$(passed_count "$out")
	rm -f "$out"
	[ "$rc" = 0 ] || return "$rc"
	if [ "$n" = 0 ]; then
		echo "cargo test $*: no test ran" >&2
		return 1
	fi
	echo "cargo test $*: $n tests passed"
}

# The suite through the built module: every root test file (tests/*.rs)
# with GMR_CLASS=ko, so load_multipath kldloads the .ko in-process instead
# of linking the core. A test that cannot run through the module ends
# with a "SKIPPED (core only): TEST because WHY" line (tests/common's
# core_only!): listed here by name and not counted as run through it.
ko_suite() {
	local skips out f n rc k
	local args=()
	skips=$(mktemp "${TMPDIR:-/tmp}/gmr-core-only.XXXXXX")
	out=$(mktemp "${TMPDIR:-/tmp}/gmr-ko-suite.XXXXXX")
	for f in tests/*.rs; do args+=(--test "$(basename "$f" .rs)"); done
	GMR_CLASS=ko GMR_KO_SUMMARY=$ko_summary GMR_CORE_ONLY_LOG=$skips cargo test -p geom_multipath_rs --no-fail-fast "${args[@]}" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	n=$(passed_count "$out")
	k=$(sort -u "$skips" | grep -c '^SKIPPED' || true)
	echo "ko suite: $((${#args[@]} / 2)) test files; $((n - k)) tests ran through the module, $k skipped (core only)"
	sort -u "$skips"
	rm -f "$skips" "$out"
	[ "$rc" = 0 ] || return "$rc"
	if [ "$((n - k))" -le 0 ]; then
		echo "ko suite: no test ran through the module" >&2
		return 1
	fi
}

# At least 10^5 bios through the module, with path faults (random
# fail/die/latency timelines) and the 5th M_NOWAIT allocation of each
# seed failed; prints the module's summary line. Once under the
# deterministic scheduler (a failing seed replays exactly) and once on
# real threads, where direct dispatch runs the module's start and done
# in many threads at once.
ko_soak() {
	GMR_KO_SUMMARY=$ko_summary cargo run -q -p geom-sim --bin mpsim -- soak --ko --seeds 30 --bios 4000 --fail-nowait 5 &&
		GMR_KO_SUMMARY=$ko_summary cargo run -q -p geom-sim --bin mpsim -- soak --ko --threads --seeds 30 --bios 4000 --fail-nowait 5
}

# Every shell script in the repo: *.sh, and files whose first line names sh
# or bash, under scripts/, tests/ and .ci/.
shell_scripts() {
	local f
	find scripts tests .ci -type f ! -path '*/__pycache__/*' 2>/dev/null | sort | while read -r f; do
		case "$f" in
		*.sh) echo "$f" ;;
		*) head -n1 "$f" 2>/dev/null | grep -qE '^#!.*[/ ](ba)?sh([[:space:]]|$)' && echo "$f" ;;
		esac
	done
}
run_shellcheck() {
	local files
	mapfile -t files < <(shell_scripts)
	echo "shellcheck: ${#files[@]} scripts: ${files[*]}"
	shellcheck -x "${files[@]}"
}

step "toolchain (installs what is missing)" scripts/toolchain.sh all
export GMR_NO_INSTALL=1 # from here on, a step that would install fails
step "check-installs: each step's tools are here; only toolchain.sh installs" \
	scripts/check-installs.sh
step "check-installs self-test: it fails on a missing tool or an install command" \
	scripts/check-installs.sh --selftest
# The module first: the tests that load it (sim/tests/ko_*.rs) must test
# this tree's module, not a stale one, and must fail, not skip, without it.
step "kernel module build (scripts/kbuild.sh)" scripts/kbuild.sh
export GMR_REQUIRE_KO=1
step "cargo test --workspace" cargo test --workspace
step "ko suite: tests/*.rs through the built .ko (GMR_CLASS=ko)" ko_suite
step "ko soak: mpsim soak --ko, 2 x 120000 bios (deterministic, threads), path faults, failed M_NOWAIT allocations" ko_soak
step "cargo test: kernel adapter helpers on the host (--features kernel)" \
	cargo_test_some -p geom_multipath_rs --features kernel --lib kernel::
step "cargo clippy --workspace --all-targets -- -D warnings" \
	cargo clippy --workspace --all-targets -- -D warnings
step "cargo clippy --features kernel --all-targets -- -D warnings" \
	cargo clippy -p geom_multipath_rs --features kernel --all-targets -- -D warnings
step "cargo fmt --all --check" cargo fmt --all --check
# The docs, private items included, build without a warning (a broken
# intra-doc link fails here), for both feature sets.
step "cargo doc (-D warnings, private items)" env RUSTDOCFLAGS="-D warnings" \
	cargo doc --no-deps --workspace --document-private-items
step "cargo doc --features kernel (-D warnings, private items)" env RUSTDOCFLAGS="-D warnings" \
	cargo doc --no-deps -p geom_multipath_rs --features kernel --document-private-items
step "cargo fmt --check of fuzz/ (its own workspace)" cargo fmt --manifest-path fuzz/Cargo.toml --check
step "check-ko: audit geom_multipath_rs.ko" scripts/check-ko.sh
step "check-ko-selftest: the audit rejects broken modules" scripts/check-ko-selftest.sh
step "check-bindings: sys-bindings/src/bindings.rs matches shim.h" scripts/bindings.sh --check
step "check-kstructs: sim/src/adapter/ko/kstructs/layouts.rs matches the FreeBSD headers" scripts/kstructs.sh --check
step "shellcheck" run_shellcheck
step "tests/vm self-test: the VM harness, parser, carrier disk, ATF dry run" \
	env GMR_KO_SUMMARY="$ko_summary" bash tests/vm/selftest.sh
step "tests/vm/run.sh: FreeBSD VM run (skipped, and says so, without FREEBSD_IMAGE)" bash tests/vm/run.sh

echo
echo "make test: the module, over the ko suite, the ko soak and the ATF dry run (mpsim ko-total):"
if [ -s "$ko_summary" ]; then
	# ko-total fails on a leak or a module panic in any run: so does make test.
	if ! cargo run -q -p geom-sim --bin mpsim -- ko-total "$ko_summary" | sed 's/^/    /'; then
		failed+=("mpsim ko-total: a run through the module leaked or panicked")
	fi
else
	echo "    nothing ran through the module"
	failed+=("mpsim ko-total: nothing ran through the module")
fi
echo "make test: passed steps:"
printf '    %s\n' "${passed[@]}"
if [ ${#skipped[@]} -gt 0 ]; then
	echo "make test: skipped steps (nothing was tested; why):"
	printf '    %s\n' "${skipped[@]}"
fi
if [ ${#failed[@]} -gt 0 ]; then
	echo "make test: failed steps:"
	printf '    %s\n' "${failed[@]}"
fi
echo "steps: ${#passed[@]} passed, ${#failed[@]} failed, ${#skipped[@]} skipped"
[ ${#failed[@]} -eq 0 ]
