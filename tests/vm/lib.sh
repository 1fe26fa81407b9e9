# shellcheck shell=bash
# Small helpers shared by the host-side scripts of tests/vm (bash).

vm_log()
{
	echo "vm: $*" >&2
}

vm_die()
{
	echo "vm: error: $*" >&2
	exit 2
}

# vm_have CMD: true when CMD is on PATH (or in the sbin directories, where
# Debian keeps mkfs.vfat and a non-root PATH may not look).
vm_have()
{
	command -v "$1" >/dev/null 2>&1 && return 0
	local d
	for d in /usr/sbin /sbin /usr/local/sbin; do
		if [ -x "$d/$1" ]; then
			PATH=$PATH:$d
			return 0
		fi
	done
	return 1
}

# vm_need CMD DEBIAN_PACKAGE [COMPONENT]: true when CMD is there; otherwise
# say what is missing and fail. Nothing is installed here: test cases run in
# parallel, and concurrent apt-get runs fight over the dpkg lock. Every tool
# comes from scripts/toolchain.sh COMPONENT (default vmtest), which
# `make test` runs once before any step.
vm_need()
{
	local cmd=$1 pkg=$2 comp=${3:-vmtest}
	vm_have "$cmd" && return 0
	echo "vm: error: $cmd is missing (Debian package $pkg): run scripts/toolchain.sh $comp" >&2
	return 1
}

# vm_need_file FILE DEBIAN_PACKAGE [COMPONENT]: like vm_need, for a data file.
vm_need_file()
{
	local file=$1 pkg=$2 comp=${3:-vmtest}
	[ -e "$file" ] && return 0
	echo "vm: error: $file is missing (Debian package $pkg): run scripts/toolchain.sh $comp" >&2
	return 1
}

# vm_sha256 FILE: print the SHA-256 of FILE in hex.
vm_sha256()
{
	if command -v sha256sum >/dev/null 2>&1; then
		sha256sum "$1" | cut -d' ' -f1
	else
		sha256 -q "$1"
	fi
}

# vm_file_size FILE: size in bytes.
vm_file_size()
{
	wc -c < "$1" | tr -d ' '
}

# vm_lun_check FILE NONCE: print the result line of the host-side check of
# the LUN's backing file after the guest's two-path scenario: block 0 (64 KiB)
# holds the 1024 lines written through the first path, block 1 those written
# through the second, and the multipath label in the last sector is gone
# (gmultipath destroy wipes it).
vm_lun_check()
{
	local lun=$1 nonce=$2 first second label
	first=$(dd if="$lun" bs=65536 skip=0 count=1 2>/dev/null |
	    tr '\000' '\n' | grep -c "^GMPRS-LUN $nonce first-path " || true)
	second=$(dd if="$lun" bs=65536 skip=1 count=1 2>/dev/null |
	    tr '\000' '\n' | grep -c "^GMPRS-LUN $nonce second-path " || true)
	label=$(tail -c 512 "$lun" | tr '\000' '\n' | grep -c 'GEOM::MULTIPATH' || true)
	if [ "$first" = 1024 ] && [ "$second" = 1024 ] && [ "$label" = 0 ]; then
		echo "host:lun_data  ->  passed"
	else
		echo "host:lun_data  ->  failed: backing file holds $first/1024 lines of block 0, $second/1024 of block 1, label sectors $label"
	fi
}
