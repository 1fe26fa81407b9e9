# shellcheck shell=sh
#
# Shared helpers for the geom_multipath_rs ATF programs (misc.sh, failloop.sh).
# Sourced by atf-sh inside a FreeBSD guest, never run on its own.
#
# Every test works in its own kyua work directory; the files below live there,
# so the cleanup part of a test (run in the same directory) finds what the body
# created, even when the body failed half-way.
#
#   mp.mds    md(4) units this test allocated, one per line, in order
#   mp.names  multipath geom names this test used, one per line
#
# Helpers that can fail a test never run inside $(...): atf_fail in a subshell
# would not stop the body. They hand results back through variables instead.

# Where device nodes live: /dev, except when the suite is dry-run on a host
# with stand-in commands (tests/vm/dryrun), which set the kyua/atf variable
# dev_root. mp_load and mp_cleanup set it; everything else uses it.
MP_DEV=/dev
MP_MD_FILE=mp.mds
MP_NAME_FILE=mp.names
MP_DEFAULT_KO=/boot/modules/geom_multipath_rs.ko
# Basename of the kernel file we expect to provide class MULTIPATH.
MP_OUR_FILE=geom_multipath_rs.ko
# Basename of FreeBSD's own implementation, which must NOT be the one tested.
MP_INTREE_FILE=geom_multipath.ko

# True when the running kernel knows a GEOM class called MULTIPATH.
mp_class_present()
{
	sysctl -n kern.geom.confxml 2>/dev/null |
	    grep -q '<name>MULTIPATH</name>'
}

# True when our kernel file is loaded and FreeBSD's is not.
mp_ours_loaded()
{
	kldstat -q -n "$MP_INTREE_FILE" && return 1
	kldstat -v | grep -q "$MP_OUR_FILE"
}

# Make sure class MULTIPATH is present and is served by geom_multipath_rs.
# The module path comes from the kyua variable ko_path
# (kyua test -v test_suites.geom_multipath_rs.ko_path=/path/geom_multipath_rs.ko).
mp_load()
{
	MP_DEV=$(atf_config_get dev_root /dev)
	mp_ko=$(atf_config_get ko_path "$MP_DEFAULT_KO")
	if kldstat -q -n "$MP_INTREE_FILE"; then
		atf_fail "FreeBSD's $MP_INTREE_FILE is loaded; kldunload it so that $MP_OUR_FILE is what gets tested"
	fi
	if ! mp_class_present; then
		[ -f "$mp_ko" ] ||
		    atf_fail "class MULTIPATH is absent and $mp_ko does not exist (set test_suites.geom_multipath_rs.ko_path)"
		# Another test case running in parallel may load it first.
		kldload "$mp_ko" || mp_class_present || atf_fail "kldload $mp_ko failed"
	fi
	mp_class_present || atf_fail "class MULTIPATH still absent after loading $mp_ko"
	mp_ours_loaded ||
	    atf_fail "class MULTIPATH is present but not from $MP_OUR_FILE (built into the kernel, or another module)"
}

# Load gnop(4) unless it is there already.
mp_load_gnop()
{
	kldstat -q -m g_nop && return 0
	geom nop load >/dev/null 2>&1 || kldload geom_nop ||
	    atf_fail "cannot load geom_nop"
}

# mp_new_md: allocate a 1 MiB swap-backed md(4) disk (512-byte sectors), put
# its name (mdN) in MP_NEW and remember it for cleanup.
mp_new_md()
{
	MP_NEW=$(mdconfig -a -t swap -s 1M) || atf_fail "mdconfig -a failed"
	[ -n "$MP_NEW" ] || atf_fail "mdconfig -a printed no unit name"
	echo "$MP_NEW" >> "$MP_MD_FILE"
}

# mp_new_name: pick a multipath name nobody uses (11 characters, below the
# 15-character limit of the class), put it in MP_NEW, remember it for cleanup.
mp_new_name()
{
	mp_try=0
	while :; do
		MP_NEW=$(mktemp -u mprs.XXXXXX) || atf_fail "mktemp failed"
		[ -e "$MP_DEV/multipath/$MP_NEW" ] || break
		mp_try=$((mp_try + 1))
		[ "$mp_try" -lt 20 ] || atf_fail "no free multipath name"
	done
	echo "$MP_NEW" >> "$MP_NAME_FILE"
}

# mp_setup N: the usual start of a test. Sets mp to a fresh multipath name
# and d0 .. d(N-1) to N fresh md disks (N is 1 to 3), in allocation order.
# The variables are read by the test programs that source this file.
mp_setup()
{
	# shellcheck disable=SC2034
	{
		d0='' d1='' d2=''
		mp_new_name; mp=$MP_NEW
		mp_new_md; d0=$MP_NEW
		if [ "$1" -ge 2 ]; then mp_new_md; d1=$MP_NEW; fi
		if [ "$1" -ge 3 ]; then mp_new_md; d2=$MP_NEW; fi
	}
}

# mp_nop MD [gnop create options...]: put a gnop provider (MD.nop) on MD.
mp_nop()
{
	mp_dev=$1
	shift
	atf_check -s exit:0 -o ignore -e ignore gnop create "$@" "$MP_DEV/$mp_dev"
	[ -e "$MP_DEV/$mp_dev.nop" ] || atf_fail "gnop did not create $MP_DEV/$mp_dev.nop"
}

# mp_setup_nops: mp_load, mp_load_gnop and mp_setup 2, then a gnop provider
# on each md ($d0.nop, $d1.nop): the two paths that fault injection breaks.
mp_setup_nops()
{
	mp_load
	mp_load_gnop
	mp_setup 2
	mp_nop "$d0"
	mp_nop "$d1"
}

# mp_write_block NAME: write one 4 KiB block of zeroes to multipath NAME,
# which must succeed.
mp_write_block()
{
	atf_check -s exit:0 -o ignore -e ignore \
	    dd if=/dev/zero of="$MP_DEV/multipath/$1" bs=4096 count=1
}

# mp_break_nop NOP: make every read and write through NOP fail (EIO).
mp_break_nop()
{
	atf_check -s exit:0 -o ignore -e ignore \
	    gnop configure -r 100 -w 100 "$1"
}

# mp_geom_state NAME: print the geom-level State of NAME (OPTIMAL, ...).
# Prints nothing when the geom is unknown.
mp_geom_state()
{
	gmultipath list "$1" 2>/dev/null | awk '
		/^State: / { print $2; exit }
		/^Providers:/ { exit }'
}

# mp_path_states NAME: print the State of every consumer (path) of NAME on
# one line, in the order `gmultipath list` shows them (oldest path first).
mp_path_states()
{
	gmultipath list "$1" 2>/dev/null | awk '
		/^Consumers:/ { inside = 1; next }
		inside && /^[0-9]+\. Name: / { pending = 1; next }
		inside && pending && /^[ \t]+State: / {
			out = out sep $2; sep = " "; pending = 0
		}
		END { print out }'
}

# mp_path_names NAME: print the provider name of every path of NAME on one
# line, oldest first.
mp_path_names()
{
	gmultipath list "$1" 2>/dev/null | awk '
		/^Consumers:/ { inside = 1; next }
		inside && /^[0-9]+\. Name: / { out = out sep $3; sep = " " }
		END { print out }'
}

# mp_count_nop_paths NAME: how many paths of NAME are gnop providers.
mp_count_nop_paths()
{
	mp_path_names "$1" | tr ' ' '\n' | grep -c '\.nop$'
}

# mp_wait_nop_paths NAME COUNT: give the GEOM event thread a few seconds to
# settle (orphaning and tasting are asynchronous), then assert the count.
mp_wait_nop_paths()
{
	mp_i=0
	while [ "$mp_i" -lt 50 ]; do
		[ "$(mp_count_nop_paths "$1")" = "$2" ] && return 0
		sleep 0.1
		mp_i=$((mp_i + 1))
	done
	gmultipath list "$1" >&2
	atf_fail "$1: expected $2 gnop paths, found $(mp_count_nop_paths "$1")"
}

# mp_check_state NAME ACTIVE GEOM_STATE PATH_STATE...
#   ACTIVE      exact output expected from `gmultipath getactive NAME`
#   GEOM_STATE  OPTIMAL, DEGRADED or BROKEN
#   PATH_STATE  the State of each path, oldest path first
mp_check_state()
{
	mp_g=$1
	mp_want_active=$2
	mp_want_geom=$3
	shift 3
	mp_want_paths=$*

	mp_got_active=$(gmultipath getactive "$mp_g") ||
	    atf_fail "gmultipath getactive $mp_g failed"
	mp_got_geom=$(mp_geom_state "$mp_g")
	mp_got_paths=$(mp_path_states "$mp_g")

	if [ "$mp_got_active" != "$mp_want_active" ] ||
	    [ "$mp_got_geom" != "$mp_want_geom" ] ||
	    [ "$mp_got_paths" != "$mp_want_paths" ]; then
		echo "--- gmultipath list $mp_g" >&2
		gmultipath list "$mp_g" >&2
		atf_fail "$mp_g: want active '$mp_want_active', state $mp_want_geom, paths '$mp_want_paths'; got active '$mp_got_active', state '$mp_got_geom', paths '$mp_got_paths'"
	fi
	mp_ours_loaded || atf_fail "$MP_OUR_FILE is no longer the loaded MULTIPATH class"
}

# Undo whatever the body set up: multipath geoms, gnop providers, md disks.
# Runs from a cleanup routine, so it never fails and never calls atf_fail.
mp_cleanup()
{
	MP_DEV=$(atf_config_get dev_root /dev)
	if [ -f "$MP_NAME_FILE" ]; then
		while read -r mp_c; do
			if [ -e "$MP_DEV/multipath/$mp_c" ]; then
				gmultipath destroy "$mp_c" >/dev/null 2>&1 ||
				    gmultipath stop "$mp_c" >/dev/null 2>&1
			fi
		done < "$MP_NAME_FILE"
	fi
	if [ -f "$MP_MD_FILE" ]; then
		while read -r mp_c; do
			if [ -e "$MP_DEV/$mp_c.nop" ]; then
				gnop destroy -f "$mp_c.nop" >/dev/null 2>&1
			fi
			mdconfig -d -u "$mp_c" >/dev/null 2>&1 ||
			    mdconfig -d -u "$mp_c" -o force >/dev/null 2>&1
		done < "$MP_MD_FILE"
	fi
	true
}
