#!/usr/bin/env bash
# Dry run of the guest side on a host without FreeBSD. It does everything a
# VM run does after the login, with stand-ins for the FreeBSD commands
# (fakebsd.py, a model of the expected behaviour, never the kernel module):
#
#   1. build the carrier with mkcarrier.sh and copy its files back out of the
#      FAT image (as the guest's mount_msdosfs would show them);
#   2. run guest.sh from there: the module load check, kyua over the
#      Kyuafile with every ATF case, and the two-path scenario on a LUN that
#      two disks (vtbd1, vtbd2) share;
#   3. feed its console output to parse-results.sh, run the host-side LUN
#      check on the model's LUN data, and check that nothing was left behind.
#
#   run-guest.sh [KO]
#
# Prints parse-results.sh's lines, and then, last,
# "guest-dryrun: N passed, M failed". Exit status 0 when all passed.
# Needs Debian's kyua, atf-sh and mtools (installed when missing, as root).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
vm=$here/..
# shellcheck source=SCRIPTDIR/../lib.sh
. "$vm/lib.sh"

vm_need atf-sh atf-sh || exit 2
vm_need kyua kyua || exit 2
vm_need mcopy mtools || exit 2

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gmprs-guest-dryrun.XXXXXX")
trap '[ -n "${DRYRUN_KEEP:-}" ] || rm -rf "$tmp"' EXIT
mkdir "$tmp/bin" "$tmp/dev" "$tmp/carrier"

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

py=$(python3 -c 'import sys; print(sys.executable)')
for c in mdconfig gnop gmultipath kldstat kldload kldunload sysctl diskinfo dmesg \
    dtrace geom dd sha256 freebsd-version; do
	printf '#!/bin/sh\nexec "%s" -S "%s" %s "$@"\n' "$py" "$here/fakebsd.py" "$c" \
	    > "$tmp/bin/$c"
	chmod +x "$tmp/bin/$c"
done

guest=$(find "$tmp/carrier" -maxdepth 1 -iname guest.sh)
st=0
env PATH="$tmp/bin:$PATH" HOME="$tmp" FAKEBSD_STATE="$tmp/state.json" \
    FAKEBSD_DEV="$tmp/dev" FAKEBSD_LUN=GMPLUN0 \
    GMPRS_WORK="$tmp/work" GMPRS_DEV="$tmp/dev" GMPRS_KYUA_PARALLELISM=2 \
    sh "$guest" > "$tmp/console.log" 2>&1 || st=$?

expect=$(sed -n '/^EXPECT="/,/"$/p' "$vm/run.sh" | tr -d '"' | sed 's/^EXPECT=//')
host=$(vm_lun_check "$tmp/dev/.data-lun0" "$nonce")
left=$("$py" -S -c 'import json, sys
s = json.load(open(sys.argv[1]))
print(" ".join([m for m in sorted(s["mds"]) if not m.startswith("vtbd")] +
               sorted(s["nops"]) + sorted(s["geoms"])))' "$tmp/state.json")
extra=(--extra "$host")
if [ -n "$left" ]; then
	extra+=(--extra "dryrun:leftovers  ->  failed: $left")
fi
if [ "$st" != 0 ]; then
	extra+=(--extra "dryrun:guest_exit  ->  failed: guest.sh exited $st")
fi
prc=0
bash "$vm/parse-results.sh" --expect "$expect" "${extra[@]}" "$tmp/console.log" \
    > "$tmp/summary" || prc=$?
if [ "$prc" != 0 ] && [ -n "${DRYRUN_VERBOSE:-}" ]; then
	sed 's/^/    | /' "$tmp/console.log"
fi
sed '$d' "$tmp/summary"
tail -n 1 "$tmp/summary" | sed 's/^vm: /guest-dryrun: /'
exit "$prc"
