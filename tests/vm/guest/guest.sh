#!/bin/sh
# shellcheck shell=sh
#
# Runs inside the FreeBSD guest, as root, from the carrier disk that
# tests/vm/run.sh built (mounted read-only). It copies the suite to local
# disk, loads geom_multipath_rs.ko, runs the ATF suite with kyua, then the
# two-path scenario on the LUN the host attached twice, and prints every
# result between markers on the console for the host to parse:
#
#   ==GMPRS-VM-BEGIN==
#   <program>:<case>  ->  <passed|failed: why|skipped: why|broken: why>
#   ==GMPRS-VM-END==
#   ==GMPRS-VM-DIAG-BEGIN== ... ==GMPRS-VM-DIAG-END==   (details, not parsed)
#   ==GMPRS-VM-DONE==
#
# The markers are built from a variable so that no command line typed on the
# console ever contains them.

set -u

SRC=$(cd "$(dirname "$0")" && pwd)
# GMPRS_WORK, GMPRS_DEV, GMPRS_KYUA_PARALLELISM, GMPRS_SIMULATED and
# GMPRS_LOADER exist for tests/vm/dryrun/run-guest.sh, which runs this script
# on a Linux host with the FreeBSD commands sent to the GEOM simulator; in
# the guest they are unset. GMPRS_SIMULATED says why the module load is not
# a kernel's (the class is the simulator's core): that result is then
# reported as skipped. GMPRS_LOADER says what loaded the .ko instead of a
# kernel (the simulator's in-process loader): the load's checks still run
# and must pass, and the result says what did the loading.
WORK=${GMPRS_WORK:-/var/tmp/gmprs}
DEV=${GMPRS_DEV:-/dev}
KO=$WORK/geom_multipath_rs.ko
MK=GMPRS-VM
SUITE=geom_multipath_rs
MPNAME=gmprsvm

KO_SHA256=
LUN_NONCE=
LUN_IDENT=GMPLUN0
LUN_HINT=
MANIFEST=$(find "$SRC" -maxdepth 1 -iname manifest.env | head -n 1)
if [ -n "$MANIFEST" ]; then
	# shellcheck disable=SC1090
	. "$MANIFEST"
fi

marker()
{
	echo "==$MK-$1=="
}

# result ID STATUS: one result line in kyua's own format.
result()
{
	printf '%s  ->  %s\n' "$1" "$2"
}

# ---------------------------------------------------------------- setup

setup_files()
{
	rm -rf "$WORK"
	mkdir -p "$WORK" || return 1
	# FAT keeps short names in upper case unless told otherwise: match
	# the names without regard to case.
	for f in geom_multipath_rs.ko helpers.sh misc.sh failloop.sh Kyuafile; do
		src=$(find "$SRC" -maxdepth 1 -iname "$f" | head -n 1)
		[ -n "$src" ] || { echo "missing $f on the carrier"; return 1; }
		cp "$src" "$WORK/$f" || return 1
	done
	chmod 0755 "$WORK/misc.sh" "$WORK/failloop.sh"
	if [ -n "$KO_SHA256" ]; then
		got=$(sha256 -q "$KO")
		if [ "$got" != "$KO_SHA256" ]; then
			echo "geom_multipath_rs.ko sha256 $got, host sent $KO_SHA256"
			return 1
		fi
	fi
	return 0
}

class_present()
{
	sysctl -n kern.geom.confxml 2>/dev/null | grep -q '<name>MULTIPATH</name>'
}

# Load our module; FreeBSD's own geom_multipath.ko must not be the one serving
# class MULTIPATH.
load_module()
{
	if kldstat -q -n geom_multipath.ko; then
		kldunload geom_multipath.ko ||
		    { echo "cannot unload the in-tree geom_multipath.ko"; return 1; }
	fi
	if class_present && ! kldstat -q -n geom_multipath_rs.ko; then
		echo "class MULTIPATH is built into this kernel; geom_multipath_rs cannot be tested"
		return 1
	fi
	if ! kldstat -q -n geom_multipath_rs.ko; then
		kldload "$KO" || { echo "kldload $KO failed"; return 1; }
	fi
	class_present || { echo "no class MULTIPATH after kldload"; return 1; }
	kldstat -v | grep -q geom_multipath_rs.ko ||
	    { echo "kldstat -v does not list geom_multipath_rs.ko"; return 1; }
	kldstat -q -m g_multipath ||
	    { echo "kldstat -m g_multipath: the module's g_multipath is not registered"; return 1; }
	return 0
}

# ---------------------------------------------------------------- ATF suite

# Without kyua (a stripped image), run each ATF test case by hand: body in a
# fresh work directory, then its cleanup in the same directory.
run_atf_by_hand()
{
	for prog in misc.sh failloop.sh; do
		cases=$("$WORK/$prog" -l | awk '/^ident: / { print $2 }')
		if [ -z "$cases" ]; then
			result "$prog:__test_cases_list__" "broken: lists no test case"
			continue
		fi
		for tc in $cases; do
			wd=$(mktemp -d "$WORK.tc.XXXXXX")
			(cd "$wd" && "$WORK/$prog" -s "$WORK" -r "$wd/result" \
			    -v ko_path="$KO" -v allow_sysctl_side_effects=1 \
			    -v dev_root="$DEV" "$tc" \
			    > "$wd/out" 2>&1)
			(cd "$wd" && "$WORK/$prog" -s "$WORK" \
			    -v ko_path="$KO" -v allow_sysctl_side_effects=1 \
			    -v dev_root="$DEV" "$tc:cleanup" \
			    >> "$wd/out" 2>&1)
			if [ -s "$wd/result" ]; then
				result "$prog:$tc" "$(head -n 1 "$wd/result")"
			else
				result "$prog:$tc" "broken: no result file"
			fi
			cat "$wd/out" >> "$WORK/atf-details.txt"
			rm -rf "$wd"
		done
	done
}

run_suite()
{
	if command -v kyua >/dev/null 2>&1; then
		(cd "$WORK" && kyua -v "parallelism=${GMPRS_KYUA_PARALLELISM:-1}" \
		    -v "test_suites.$SUITE.ko_path=$KO" \
		    -v "test_suites.$SUITE.allow_sysctl_side_effects=1" \
		    -v "test_suites.$SUITE.dev_root=$DEV" \
		    test -k "$WORK/Kyuafile" > "$WORK/kyua.out" 2>&1)
		# Keep only kyua's result lines inside the markers.
		grep -E '^[^ ]+:[^ ]+  ->  ' "$WORK/kyua.out"
		if grep -qE '^[^ ]+:[^ ]+  ->  (broken|failed|skipped)' "$WORK/kyua.out"; then
			(cd "$WORK" && kyua report --verbose \
			    --results-filter broken,failed,skipped > "$WORK/atf-details.txt" 2>&1)
		fi
	else
		echo "kyua not found: running the ATF programs directly" >&2
		run_atf_by_hand
	fi
}

# ---------------------------------------------------------------- two paths

# Print the disks whose ident is LUN_IDENT: the two paths to the one LUN.
lun_disks()
{
	for d in $(sysctl -n kern.disks); do
		[ "$(diskinfo -s "$d" 2>/dev/null)" = "$LUN_IDENT" ] && echo "$d"
	done | sort
}

# wait_for COMMAND...: poll up to 5 s for COMMAND to succeed.
wait_for()
{
	i=0
	while [ "$i" -lt 50 ]; do
		"$@" && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

has_two_paths()
{
	[ "$(mp_path_states "$MPNAME" | wc -w | tr -d ' ')" -eq 2 ]
}

# expect_state ACTIVE GEOM_STATE PATH_STATES
expect_state()
{
	a=$(gmultipath getactive "$MPNAME" 2>&1)
	g=$(mp_geom_state "$MPNAME")
	p=$(mp_path_states "$MPNAME")
	if [ "$a" != "$1" ] || [ "$g" != "$2" ] || [ "$p" != "$3" ]; then
		gmultipath list "$MPNAME"
		echo "want active '$1' state $2 paths '$3'; got active '$a' state '$g' paths '$p'"
		return 1
	fi
	return 0
}

# make_pattern TAG FILE: 64 KiB that name the run (nonce) and the path used.
make_pattern()
{
	i=0
	while [ "$i" -lt 1024 ]; do
		printf 'GMPRS-LUN %s %s %04d\n' "$LUN_NONCE" "$1" "$i"
		i=$((i + 1))
	done > "$2.txt"
	dd if="$2.txt" of="$2" bs=64k count=1 conv=sync 2>/dev/null
	rm -f "$2.txt"
}

# check_block FILE SEEK: read 64 KiB block SEEK of the multipath device back.
check_block()
{
	dd if="$DEV/multipath/$MPNAME" of="$WORK/readback" bs=64k count=1 \
	    skip="$2" 2>/dev/null || { echo "read of block $2 failed"; return 1; }
	cmp -s "$1" "$WORK/readback" || { echo "block $2 reads back different data"; return 1; }
}

# The scenario proper; prints why it stopped on the first failed step.
lun_steps()
{
	# shellcheck disable=SC2046
	set -- $(lun_disks)
	if [ "$#" -ne 2 ] && [ -n "$LUN_HINT" ]; then
		echo "no two disks with ident $LUN_IDENT; using the host's hint: $LUN_HINT"
		# shellcheck disable=SC2086
		set -- $LUN_HINT
	fi
	[ "$#" -eq 2 ] || { echo "expected 2 paths to the LUN, found $#: $*"; return 1; }
	p0=$1
	p1=$2
	echo "paths to the LUN: $p0 $p1"

	gmultipath label "$MPNAME" "$p0" || { echo "gmultipath label failed"; return 1; }
	wait_for test -e "$DEV/multipath/$MPNAME" ||
	    { echo "$DEV/multipath/$MPNAME did not appear after label"; return 1; }
	# Open the second path for writing and close it: GEOM retastes it and
	# the class finds the label that the first path wrote.
	true > "$DEV/$p1"
	wait_for has_two_paths ||
	    { gmultipath list "$MPNAME"; echo "the second path did not join after a retaste"; return 1; }
	gmultipath status "$MPNAME"
	expect_state "$p0" OPTIMAL "ACTIVE PASSIVE" || return 1

	make_pattern first-path "$WORK/pat0"
	make_pattern second-path "$WORK/pat1"
	dd if="$WORK/pat0" of="$DEV/multipath/$MPNAME" bs=64k count=1 2>/dev/null ||
	    { echo "write through $p0 failed"; return 1; }
	check_block "$WORK/pat0" 0 || return 1

	# Take the active path away: I/O must go on over the other one.
	gmultipath fail "$MPNAME" "$p0" || { echo "gmultipath fail failed"; return 1; }
	expect_state "$p1" DEGRADED "FAIL ACTIVE" || return 1
	check_block "$WORK/pat0" 0 || return 1
	dd if="$WORK/pat1" of="$DEV/multipath/$MPNAME" bs=64k count=1 seek=1 \
	    2>/dev/null || { echo "write through $p1 failed"; return 1; }
	check_block "$WORK/pat1" 1 || return 1

	gmultipath restore "$MPNAME" "$p0" || { echo "gmultipath restore failed"; return 1; }
	expect_state "$p1" OPTIMAL "PASSIVE ACTIVE" || return 1

	# destroy wipes the label; both paths are retasted and nothing returns.
	gmultipath destroy "$MPNAME" || { echo "gmultipath destroy failed"; return 1; }
	wait_for test ! -e "$DEV/multipath/$MPNAME" ||
	    { echo "$DEV/multipath/$MPNAME still there after destroy"; return 1; }
	sleep 1
	[ ! -e "$DEV/multipath/$MPNAME" ] ||
	    { echo "the LUN was tasted again after destroy: label not wiped"; return 1; }
	return 0
}

run_lun()
{
	# mp_geom_state and mp_path_states of the ATF suite's helpers, which
	# setup_files copied to $WORK.
	# shellcheck source=SCRIPTDIR/../atf/helpers.sh
	. "$WORK/helpers.sh"
	lun_steps > "$WORK/lun.out" 2>&1
	rc=$?
	if [ -e "$DEV/multipath/$MPNAME" ]; then
		gmultipath destroy "$MPNAME" >/dev/null 2>&1
	fi
	if [ "$rc" -eq 0 ]; then
		result lun:two_paths passed
	else
		result lun:two_paths "failed: $(tail -n 1 "$WORK/lun.out")"
	fi
}

# ---------------------------------------------------------------- main

marker BEGIN
echo "info: $(uname -srm), $(freebsd-version -k 2>/dev/null)"
if setup_files > "$WORK.setup" 2>&1; then
	result guest:files passed
	if load_module > "$WORK/load.out" 2>&1; then
		if [ -n "${GMPRS_SIMULATED:-}" ]; then
			result guest:module_load "skipped: $GMPRS_SIMULATED"
		elif [ -n "${GMPRS_LOADER:-}" ]; then
			result guest:module_load "passed: $GMPRS_LOADER"
		else
			result guest:module_load passed
		fi
		run_suite
		run_lun
	else
		result guest:module_load "failed: $(tail -n 1 "$WORK/load.out")"
	fi
else
	result guest:files "failed: $(tail -n 1 "$WORK.setup")"
fi
marker END

marker DIAG-BEGIN
echo "--- kldstat -v (geom_multipath_rs.ko and the modules it declares)"
kldstat -v | awk '/geom_multipath/ { show = 1; print; next }
	/^ *[0-9]+ +[0-9]+ +0x/ { show = 0 } show'
for f in "$WORK.setup" "$WORK/load.out" "$WORK/kyua.out" "$WORK/atf-details.txt" "$WORK/lun.out"; do
	if [ -s "$f" ]; then
		echo "--- $f"
		cat "$f"
	fi
done
echo "--- console lines of the class"
dmesg | grep GEOM_MULTIPATH | tail -n 100
marker DIAG-END
marker DONE
