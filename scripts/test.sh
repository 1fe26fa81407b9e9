#!/usr/bin/env bash
# `make test`: every check the project has, each under a header line. All
# steps run; the script fails at the end if any failed, and says which.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

passed=()
failed=()
step() { # step "title" command...
	local title=$1
	shift
	gmr_step "$title"
	if "$@"; then
		passed+=("$title")
	else
		echo "--> FAILED: $title" >&2
		failed+=("$title")
	fi
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
step "cargo test --workspace" cargo test --workspace
step "cargo test: kernel adapter helpers on the host (--features kernel)" \
	cargo test -p geom_multipath_rs --features kernel --lib kernel::
step "cargo clippy --workspace --all-targets -- -D warnings" \
	cargo clippy --workspace --all-targets -- -D warnings
step "cargo clippy --features kernel --all-targets -- -D warnings" \
	cargo clippy -p geom_multipath_rs --features kernel --all-targets -- -D warnings
step "cargo fmt --all --check" cargo fmt --all --check
step "kernel module build (scripts/kbuild.sh)" scripts/kbuild.sh
step "check-ko: audit geom_multipath_rs.ko" scripts/check-ko.sh
step "check-ko-selftest: the audit rejects broken modules" scripts/check-ko-selftest.sh
step "check-bindings: sys-bindings/src/bindings.rs matches shim.h" scripts/bindings.sh --check
step "check-kstructs: sim/src/ko/kstructs.rs matches the FreeBSD headers" scripts/kstructs.sh --check
step "shellcheck" run_shellcheck
step "tests/vm self-test: the VM harness, parser, carrier disk, ATF dry run" bash tests/vm/selftest.sh
step "tests/vm/run.sh: FreeBSD VM run (skipped, and says so, without FREEBSD_IMAGE)" bash tests/vm/run.sh

echo
if [ ${#failed[@]} -eq 0 ]; then
	echo "make test: every step passed:"
	printf '    %s\n' "${passed[@]}"
else
	echo "make test: failed steps:"
	printf '    %s\n' "${failed[@]}"
fi
echo "steps: ${#passed[@]} passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
