#!/usr/bin/env bash
# Dry run of the ATF suite (tests/vm/atf) on a host without FreeBSD, against
# our class: the real atf-sh runs every test case and its cleanup, and the
# FreeBSD commands they call (gmultipath, mdconfig, gnop, diskinfo, dd,
# sysctl, kldload, kldstat, dmesg, ...) are sent to mpsim-serve, the GEOM
# simulator running the multipath core (see sim.sh). gmultipath is the
# simulator's front end: the stock command line as gctl requests on the
# core, `list` from the core's confxml. Nothing is modelled in a script.
#
#   run-atf.sh [--ko KO] [--threads] [-m BREAK] [PROGRAM:CASE...]
#   run-atf.sh [--ko KO] [--threads] --kyua
#
# --ko KO runs the suite through the shipped kernel module instead of the
# core linked into the simulator: KO (geom_multipath_rs.ko as make builds
# it) is the file the cases kldload, and mpsim-serve --ko links its bytes
# with the in-process loader (geom_sim::ko), so every gmultipath verb
# reaches the module's ctlreq as a gctl request laid out as geom(8) builds
# it. At the end the module is unloaded: a refused unload, a leak at its
# malloc_uninit or a panic(9) fails the run, and the module's summary line
# ("ko: loaded ...") is printed. No FreeBSD kernel runs anything here.
# -m sets MPSIM_BREAK: the server breaks one behaviour on purpose (see
# sim/src/bin/mpsim-serve.rs); the cases named must then fail. Without case
# names, every case of misc.sh and failloop.sh runs, each program case by
# case under atf-sh, checking after each cleanup that nothing was left
# behind. --kyua instead runs the whole suite the way the guest does (kyua,
# the Kyuafile, the test-suite variables), with the test programs'
# interpreter line pointed at this host's atf-sh. At the end the simulation
# is torn down and must show no GEOM rule violation and no leak.
# Prints "<program>:<case>  ->  <result>" per case, then
# "atf-dryrun(simulator): N passed, M failed, K skipped" ("atf-dryrun(ko)"
# with --ko). Exit status 0 when nothing failed. A case the simulator
# cannot run says so (skipped).
# Needs Debian's atf-sh (and kyua for --kyua) and cargo.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
atf=$here/../atf
# shellcheck source=SCRIPTDIR/../lib.sh
. "$here/../lib.sh"
# shellcheck source=SCRIPTDIR/sim.sh
. "$here/sim.sh"

use_kyua=0
ko=""
serve_args=()
label=simulator
while [ "$#" -gt 0 ]; do
	case "$1" in
	--ko)
		[ "$#" -ge 2 ] || { echo "--ko needs the module's path" >&2; exit 2; }
		ko=$2
		label=ko
		shift 2
		;;
	-m)
		[ "$#" -ge 2 ] || { echo "-m needs a BREAK" >&2; exit 2; }
		MPSIM_BREAK=$2
		export MPSIM_BREAK
		shift 2
		;;
	--kyua)
		use_kyua=1
		shift
		;;
	--threads)
		# The server's threaded scheduler: g_down, g_up, the disks and
		# the worker on OS threads of their own, so real races happen.
		serve_args+=(--threads)
		shift
		;;
	*) break ;;
	esac
done
[ "${#serve_args[@]}" = 0 ] || label="$label, threaded"
if [ -n "$ko" ] && [ ! -f "$ko" ]; then
	echo "--ko $ko: no such module (build it with make)" >&2
	exit 2
fi
vm_need atf-sh atf-sh || exit 2
[ "$use_kyua" = 0 ] || vm_need kyua kyua || exit 2
sim_build || exit 2

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gmprs-atf-dryrun.XXXXXX")
SIM_PID=""
trap '[ -z "$SIM_PID" ] || kill "$SIM_PID" 2>/dev/null; [ -n "${DRYRUN_KEEP:-}" ] || rm -rf "$tmp"' EXIT
if [ -n "$ko" ]; then
	# The cases kldload this copy: the module's own bytes.
	cp "$ko" "$tmp/geom_multipath_rs.ko"
	sim_start "$tmp" --ko "$tmp/geom_multipath_rs.ko" "${serve_args[@]}" || exit 2
else
	# A stand-in: the server loads the core linked into it.
	: > "$tmp/geom_multipath_rs.ko"
	sim_start "$tmp" "${serve_args[@]}" || exit 2
fi

passed=0
failed=0
skipped=0
# count RESULT: add one result to the totals.
count()
{
	case "$1" in
	passed*) passed=$((passed + 1)) ;;
	skipped*) skipped=$((skipped + 1)) ;;
	*) failed=$((failed + 1)) ;;
	esac
}

# finish: tear the simulation down (it must be clean; with --ko the module's
# unload too), print the summary (with --ko the module's line before it).
finish()
{
	if ! sim_stop > "$tmp/stop.out" 2>&1; then
		echo "simulator:teardown  ->  failed: $(grep -m 1 -e 'teardown failed' -e 'violation' "$tmp/stop.out" || head -n 1 "$tmp/stop.out")"
		sed 's/^/    | /' "$tmp/stop.out"
		failed=$((failed + 1))
	fi
	SIM_PID=""
	if [ -n "${DRYRUN_VERBOSE:-}" ]; then
		sed 's/^/    sim| /' "$tmp/sim.log"
	fi
	if [ -n "$ko" ]; then
		grep -e '^kldunload: ' -e '^ko: ' "$tmp/stop.out" ||
		    { echo "ko:summary  ->  failed: no module summary at the teardown"; failed=$((failed + 1)); }
	fi
	echo "atf-dryrun($label): $passed passed, $failed failed, $skipped skipped"
	[ "$failed" = 0 ]
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
	while IFS= read -r line; do
		echo "$line"
		count "${line#*  ->  }"
	done < <(grep -E '^[^ ]+:[^ ]+  ->  ' "$tmp/kyua.out" || true)
	if [ "$passed" = 0 ] || { [ "$st" != 0 ] && [ "$failed" = 0 ]; }; then
		echo "kyua:run  ->  failed: kyua exited $st with $passed passed"
		failed=$((failed + 1))
		[ -z "${DRYRUN_VERBOSE:-}" ] || cat "$tmp/kyua.out"
	fi
	left=$(sim_state)
	if [ -n "$left" ]; then
		echo "kyua:leftovers  ->  failed: the suite left $left behind"
		failed=$((failed + 1))
	fi
	finish
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
	left=$(sim_state)
	if [ -n "$left" ] && [ "${res%%:*}" = passed ]; then
		res="failed: cleanup left $left behind"
	fi
	printf '%s  ->  %s\n' "$id" "$res"
	count "$res"
	if [ "${res%%:*}" != passed ] && [ -n "${DRYRUN_VERBOSE:-}" ]; then
		sed 's/^/    | /' "$wd/out"
	fi
done
finish
