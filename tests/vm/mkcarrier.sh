#!/usr/bin/env bash
# Build the carrier disk: a FAT image, volume label GMPRSVM, that a stock
# FreeBSD guest mounts with mount_msdosfs (it appears as
# /dev/msdosfs/GMPRSVM). It holds:
#
#   geom_multipath_rs.ko   the module under test (copied from KO)
#   guest.sh               the guest-side driver (tests/vm/guest/guest.sh)
#   helpers.sh misc.sh failloop.sh Kyuafile   the ATF suite (tests/vm/atf)
#   manifest.env           KO_SHA256, LUN_NONCE, LUN_IDENT, LUN_HINT
#
#   mkcarrier.sh OUT.img KO
#
# Environment: LUN_NONCE (random if unset), LUN_IDENT (default GMPLUN0),
# LUN_HINT (the guest disk names of the two LUN paths, if known).
# On Linux it uses mkfs.vfat and mcopy (Debian: dosfstools, mtools; installed
# when missing and running as root); on FreeBSD, makefs -t msdos.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
. "$here/lib.sh"

[ "$#" -eq 2 ] || { echo "usage: $0 OUT.img KO" >&2; exit 2; }
out=$1
ko=$2
[ -f "$ko" ] || vm_die "module file $ko not found (build it with make, or set KO=...)"

nonce=${LUN_NONCE:-}
if [ -z "$nonce" ]; then
	nonce=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
fi

stage=$(mktemp -d "${TMPDIR:-/tmp}/gmprs-carrier.XXXXXX")
trap 'rm -rf "$stage"' EXIT

cp "$ko" "$stage/geom_multipath_rs.ko"
cp "$here/guest/guest.sh" "$stage/guest.sh"
for f in helpers.sh misc.sh failloop.sh Kyuafile; do
	cp "$here/atf/$f" "$stage/$f"
done
{
	echo "KO_SHA256=$(vm_sha256 "$ko")"
	echo "LUN_NONCE=$nonce"
	echo "LUN_IDENT=${LUN_IDENT:-GMPLUN0}"
	echo "LUN_HINT=\"${LUN_HINT:-}\""
} > "$stage/manifest.env"

# Room for the files plus 2 MiB, at least 8 MiB.
bytes=0
for f in "$stage"/*; do
	bytes=$((bytes + $(vm_file_size "$f")))
done
mib=$(( (bytes + 1048575) / 1048576 + 2 ))
[ "$mib" -ge 8 ] || mib=8

rm -f "$out"
if [ "$(uname -s)" = FreeBSD ] && ! vm_have mcopy; then
	[ "$mib" -ge 32 ] || mib=32
	makefs -t msdos -o fat_type=16,volume_label=GMPRSVM -s "${mib}m" \
	    "$out" "$stage" >/dev/null
else
	vm_need mkfs.vfat dosfstools || exit 2
	vm_need mcopy mtools || exit 2
	mkfs.vfat -n GMPRSVM -C "$out" $((mib * 1024)) >/dev/null
	for f in "$stage"/*; do
		MTOOLS_SKIP_CHECK=1 mcopy -o -i "$out" "$f" "::/$(basename "$f")"
	done
fi
echo "$out: ${mib} MiB FAT carrier, LUN nonce $nonce"
