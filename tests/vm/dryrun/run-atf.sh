#!/usr/bin/env bash
# Dry run of the ATF suite (tests/vm/atf) on a host without FreeBSD: the real
# atf-sh runs every test case and its cleanup, but mdconfig, gnop, gmultipath,
# kldstat, sysctl, dd and friends are the stand-ins of fakebsd.py, a model of
# the behaviour the suite expects. It checks the test programs (they run,
# their assertions can pass, their cleanup leaves nothing behind), never the
# kernel module.
#
#   run-atf.sh [-m MUTATION] [PROGRAM:CASE...]
#   run-atf.sh --kyua
#
# -m makes the model misbehave (see fakebsd.py); the cases named must then
# fail. Without case names, every case of misc.sh and failloop.sh runs, each
# program case by case under atf-sh, checking after each cleanup that nothing
# was left behind. --kyua instead runs the whole suite the way the guest does
# (kyua, the Kyuafile, the test-suite variables), with the test programs'
# interpreter line pointed at this host's atf-sh, and checks for leftovers at
# the end.
# Prints "<program>:<case>  ->  <result>" per case, then
# "atf-dryrun: N passed, M failed". Exit status 0 when all passed.
# Needs Debian's atf-sh (installed when missing and running as root).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
atf=$here/../atf
# shellcheck source=SCRIPTDIR/../lib.sh
. "$here/../lib.sh"

mutate=""
use_kyua=0
if [ "${1:-}" = -m ]; then
	mutate=$2
	shift 2
elif [ "${1:-}" = --kyua ]; then
	use_kyua=1
	shift
fi
vm_need atf-sh atf-sh || exit 2
[ "$use_kyua" = 0 ] || vm_need kyua kyua || exit 2

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gmprs-atf-dryrun.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/bin" "$tmp/dev"
# One small wrapper per command; the interpreter is resolved once and started
# without site packages (version-manager shims and .pth files are slow).
py=$(python3 -c 'import sys; print(sys.executable)')
for c in mdconfig gnop gmultipath kldstat kldload sysctl diskinfo dmesg dtrace geom dd; do
	printf '#!/bin/sh\nexec "%s" -S "%s" %s "$@"\n' "$py" "$here/fakebsd.py" "$c" \
	    > "$tmp/bin/$c"
	chmod +x "$tmp/bin/$c"
done
: > "$tmp/geom_multipath_rs.ko"
export PATH="$tmp/bin:$PATH" FAKEBSD_STATE="$tmp/state.json" FAKEBSD_DEV="$tmp/dev"
export FAKEBSD_MUTATE="$mutate"

# leftovers: what the model still holds (md disks, gnop providers, geoms).
leftovers()
{
	"$py" -S -c 'import json, sys
try:
    s = json.load(open(sys.argv[1]))
except FileNotFoundError:
    sys.exit(0)
print(" ".join(sorted(s["mds"]) + sorted(s["nops"]) + sorted(s["geoms"])))' "$tmp/state.json"
}

if [ "$use_kyua" = 1 ]; then
	mkdir "$tmp/suite"
	cp "$atf/Kyuafile" "$atf/helpers.sh" "$tmp/suite/"
	for prog in misc.sh failloop.sh; do
		sed "1s|.*|#!$(command -v atf-sh)|" "$atf/$prog" > "$tmp/suite/$prog"
		chmod +x "$tmp/suite/$prog"
	done
	st=0
	(cd "$tmp/suite" && HOME=$tmp kyua -v parallelism=2 \
	    -v "test_suites.geom_multipath_rs.ko_path=$tmp/geom_multipath_rs.ko" \
	    -v test_suites.geom_multipath_rs.allow_sysctl_side_effects=1 \
	    -v "test_suites.geom_multipath_rs.dev_root=$tmp/dev" \
	    test -k "$tmp/suite/Kyuafile") > "$tmp/kyua.out" 2>&1 || st=$?
	grep -E "^[^ ]+:[^ ]+  ->  " "$tmp/kyua.out" || true
	passed=$(grep -cE '^[^ ]+:[^ ]+  ->  passed' "$tmp/kyua.out" || true)
	# Against the model every case must pass: a skipped (or expected
	# failure) case tested nothing, so it counts as failed here.
	failed=$(grep -E '^[^ ]+:[^ ]+  ->  ' "$tmp/kyua.out" | grep -cvE '  ->  passed' || true)
	left=$(leftovers)
	if [ -n "$left" ]; then
		echo "kyua: the suite left $left behind"
		failed=$((failed + 1))
	fi
	if [ "$passed" = 0 ] || [ "$st" != 0 ]; then
		[ -n "${DRYRUN_VERBOSE:-}" ] && cat "$tmp/kyua.out"
		[ "$passed" != 0 ] || failed=$((failed + 1))
	fi
	echo "atf-dryrun: $passed passed, $failed failed"
	[ "$failed" = 0 ]
	exit
fi

cases=("$@")
if [ "${#cases[@]}" -eq 0 ]; then
	for prog in misc.sh failloop.sh; do
		while read -r tc; do
			cases+=("$prog:$tc")
		done < <(atf-sh "$atf/$prog" -l | awk '/^ident: / { print $2 }')
	done
fi

passed=0
failed=0
n=0
for id in "${cases[@]}"; do
	prog=${id%%:*}
	tc=${id#*:}
	n=$((n + 1))
	wd=$tmp/work.$n
	mkdir "$wd"
	vars=(-v "dev_root=$tmp/dev" -v "ko_path=$tmp/geom_multipath_rs.ko"
	    -v allow_sysctl_side_effects=1)
	(cd "$wd" && atf-sh "$atf/$prog" -s "$atf" -r "$wd/result" "${vars[@]}" "$tc") \
	    > "$wd/out" 2>&1 || true
	(cd "$wd" && atf-sh "$atf/$prog" -s "$atf" "${vars[@]}" "$tc:cleanup") \
	    >> "$wd/out" 2>&1 || true
	res=$(head -n 1 "$wd/result" 2>/dev/null || echo "broken: no result file")
	# After cleanup, nothing may be left: no md, no gnop, no multipath geom.
	left=$(leftovers)
	if [ -n "$left" ] && [ "${res%%:*}" = passed ]; then
		res="failed: cleanup left $left behind"
	fi
	printf '%s  ->  %s\n' "$id" "$res"
	if [ "${res%%:*}" = passed ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		[ -n "${DRYRUN_VERBOSE:-}" ] && sed 's/^/    | /' "$wd/out"
	fi
done
echo "atf-dryrun: $passed passed, $failed failed"
[ "$failed" = 0 ]
