#!/usr/bin/env bash
# Dry run of the guest side on a host without FreeBSD, against our class. It
# does everything a VM run does after the login, with the FreeBSD commands
# sent to mpsim-serve, the GEOM simulator running the multipath core (see
# sim.sh), started with the disks of a VM made by run.sh (vtbd1 and vtbd2:
# two paths to one LUN):
#
#   1. build the carrier with mkcarrier.sh and copy its files back out of the
#      FAT image (as the guest's mount_msdosfs would show them);
#   2. run guest.sh from there: the module load (reported as skipped: the
#      class is the core linked into the simulator, no kernel loads the .ko),
#      kyua over the Kyuafile with every ATF case, and the two-path scenario;
#   3. feed its console output to parse-results.sh, run the host-side LUN
#      check on the LUN's bytes, check that nothing was left behind, and tear
#      the simulation down: a GEOM rule violation or a leak fails the run.
#
#   run-guest.sh [KO]
#   run-guest.sh --ko KO
#
# With --ko the class is the shipped module itself: the .ko that went
# through the carrier is what guest.sh kldloads, and mpsim-serve --ko links
# its bytes with its in-process loader (geom_sim::ko). guest:module_load
# then checks what can be checked here (the loader linked it, its
# SYSINITs registered class MULTIPATH, kldstat lists the file and its
# module g_multipath) and says in its result that no FreeBSD kernel ran it.
# The teardown unloads the module: a refused unload, a leak at its
# malloc_uninit or a panic(9) fails the run; its summary line ("ko: loaded
# ...") is printed before the last line.
#
# Prints parse-results.sh's lines, and then, last,
# "guest-dryrun(simulator): N passed, M failed, K skipped"
# ("guest-dryrun(ko)" with --ko). Exit status 0 when nothing failed.
# Needs Debian's kyua, atf-sh and mtools, and cargo.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
vm=$here/..
# shellcheck source=SCRIPTDIR/../lib.sh
. "$vm/lib.sh"

vm_need atf-sh atf-sh || exit 2
vm_need kyua kyua || exit 2
vm_need mcopy mtools || exit 2
# shellcheck source=SCRIPTDIR/sim.sh
. "$here/sim.sh"
sim_build || exit 2

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gmprs-guest-dryrun.XXXXXX")
SIM_PID=""
trap '[ -z "$SIM_PID" ] || kill "$SIM_PID" 2>/dev/null; [ -n "${DRYRUN_KEEP:-}" ] || rm -rf "$tmp"' EXIT
mkdir "$tmp/carrier"

label=simulator
if [ "${1:-}" = --ko ]; then
	label=ko
	[ -f "${2:-}" ] || { echo "--ko ${2:-}: no such module (build it with make)" >&2; exit 2; }
	shift
fi
ko=${1:-}
if [ -z "$ko" ]; then
	ko=$tmp/geom_multipath_rs.ko
	printf 'stand-in module\n' > "$ko"
fi

nonce=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
LUN_NONCE=$nonce LUN_HINT="vtbd1 vtbd2" bash "$vm/mkcarrier.sh" "$tmp/carrier.img" "$ko" \
    > "$tmp/mkcarrier.out" 2>&1 || { cat "$tmp/mkcarrier.out"; exit 2; }
MTOOLS_SKIP_CHECK=1 mcopy -n -i "$tmp/carrier.img" '::*' "$tmp/carrier/"
# FreeBSD keeps atf-sh in /usr/libexec; Debian in /usr/bin.
if [ ! -x /usr/libexec/atf-sh ]; then
	for f in "$tmp"/carrier/*; do
		case "$(basename "$f" | tr '[:upper:]' '[:lower:]')" in
		misc.sh | failloop.sh)
			sed -i "1s|^#!/usr/libexec/atf-sh|#!$(command -v atf-sh)|" "$f"
			;;
		esac
	done
fi

host_path=$PATH
if [ "$label" = ko ]; then
	sim_start "$tmp" --lun GMPLUN0 --ko "$ko" || exit 2
	how=(GMPRS_LOADER="dry run: mpsim-serve's in-process loader (geom_sim::ko) linked the carrier's .ko, its SYSINITs registered class MULTIPATH, kldstat lists it and its module g_multipath; no FreeBSD kernel ran it")
else
	sim_start "$tmp" --lun GMPLUN0 || exit 2
	how=(GMPRS_SIMULATED="simulator dry run: class MULTIPATH is the core linked into mpsim-serve; no kernel loaded the .ko")
fi
guest=$(find "$tmp/carrier" -maxdepth 1 -iname guest.sh)
st=0
env HOME="$tmp" GMPRS_WORK="$tmp/work" GMPRS_DEV="$tmp/dev" GMPRS_KYUA_PARALLELISM=2 \
    "${how[@]}" sh "$guest" > "$tmp/console.log" 2>&1 || st=$?

expect=$(sed -n '/^EXPECT="/,/"$/p' "$vm/run.sh" | tr -d '"' | sed 's/^EXPECT=//')
# The host reads the LUN's bytes with its own dd, not the simulator's.
host=$(PATH=$host_path vm_lun_check "$tmp/dev/.data-lun0" "$nonce")
left=$(sim_state)
extra=(--extra "$host")
if [ -n "$left" ]; then
	extra+=(--extra "dryrun:leftovers  ->  failed: $left")
fi
if [ "$st" != 0 ]; then
	extra+=(--extra "dryrun:guest_exit  ->  failed: guest.sh exited $st")
fi
if ! sim_stop > "$tmp/stop.out" 2>&1; then
	extra+=(--extra "simulator:teardown  ->  failed: $(grep -m 1 -e 'teardown failed' -e 'violation' "$tmp/stop.out" || head -n 1 "$tmp/stop.out")")
fi
if [ "$label" = ko ] && ! grep -q '^ko: loaded ' "$tmp/stop.out"; then
	extra+=(--extra "ko:summary  ->  failed: no module summary at the teardown")
fi
SIM_PID=""
prc=0
bash "$vm/parse-results.sh" --expect "$expect" "${extra[@]}" "$tmp/console.log" \
    > "$tmp/summary" || prc=$?
if [ "$prc" != 0 ] && [ -n "${DRYRUN_VERBOSE:-}" ]; then
	sed 's/^/    | /' "$tmp/console.log" "$tmp/stop.out"
fi
sed '$d' "$tmp/summary"
if [ "$label" = ko ]; then
	grep -e '^kldunload: ' -e '^ko: ' "$tmp/stop.out" || true
fi
tail -n 1 "$tmp/summary" | sed "s/^vm: /guest-dryrun($label): /"
exit "$prc"
