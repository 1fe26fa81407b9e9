#!/usr/bin/env bash
# Dry run of the ATF suite (tests/vm/atf) on a host without FreeBSD: the real
# atf-sh runs every test case and its cleanup, but mdconfig, gnop, gmultipath,
# kldstat, sysctl, dd and friends are the stand-ins of fakebsd.py, a model of
# the behaviour the suite expects. It checks the test programs (they run,
# their assertions can pass, their cleanup leaves nothing behind), never the
# kernel module.
#
#   run-atf.sh [-m MUTATION] [PROGRAM:CASE...]
#
# -m makes the model misbehave (see fakebsd.py); the cases named must then
# fail. Without case names, every case of misc.sh and failloop.sh runs.
# Prints "<program>:<case>  ->  <result>" per case, then
# "atf-dryrun: N passed, M failed". Exit status 0 when all passed.
# Needs Debian's atf-sh (installed when missing and running as root).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
atf=$here/../atf
# shellcheck source=SCRIPTDIR/../lib.sh
. "$here/../lib.sh"

mutate=""
if [ "${1:-}" = -m ]; then
	mutate=$2
	shift 2
fi
vm_need atf-sh atf-sh || exit 2

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
	left=$("$py" -S -c 'import json, sys
s = json.load(open(sys.argv[1]))
print(" ".join(sorted(s["mds"]) + sorted(s["nops"]) + sorted(s["geoms"])))' "$tmp/state.json")
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
