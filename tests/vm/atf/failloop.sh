#!/usr/libexec/atf-sh
# shellcheck shell=sh
#
# geom_multipath_rs: a failure on every path at once must end the I/O with an
# error, quickly, instead of failing over and restoring paths forever
# (the bug behind FreeBSD PR 178473). Runs as root inside a FreeBSD guest.

# shellcheck source=SCRIPTDIR/helpers.sh
. "$(atf_get_srcdir)/helpers.sh"

MP_NOTASTE_FILE=notaste.saved
MP_PROBE=geom:multipath:config:restore

atf_test_case failloop cleanup
failloop_head()
{
	atf_set descr "all paths failing: the write fails, and paths faulted by that very write are restored at most twice"
	atf_set require.user root
	atf_set require.config allow_sysctl_side_effects
}
failloop_body()
{
	mp_setup_nops

	atf_check -s exit:0 gmultipath create "$mp" "$d0.nop" "$d1.nop"

	# Keep retastes (triggered by the failing writes) from adding I/O.
	sysctl -n kern.geom.notaste > "$MP_NOTASTE_FILE" ||
	    atf_fail "cannot read kern.geom.notaste"
	atf_check -s exit:0 -o ignore sysctl kern.geom.notaste=1

	mp_break_nop "$d0.nop"
	mp_break_nop "$d1.nop"

	# The write runs under dtrace when the kernel module has SDT probes;
	# each firing of the restore probe adds one line to restores.out.
	# Without the probe, the class's console line for an automatic
	# restore is counted instead: it names the geom, which is unique.
	kldstat -q -m dtraceall || kldload dtraceall >/dev/null 2>&1 || true
	# dtrace -c splits its argument on blanks without a shell, so the write
	# and the recording of its exit status go into a script file.
	printf '#!/bin/sh\ndd if=/dev/zero of=%s bs=4096 count=1 2>/dev/null\necho $? > dd.status\n' \
	    "$MP_DEV/multipath/$mp" > write.sh
	if dtrace -l -n "$MP_PROBE" >/dev/null 2>&1; then
		atf_check -s exit:0 -o ignore -e ignore \
		    dtrace -q -o restores.out \
		    -n "$MP_PROBE { printf(\"restore %s\\n\", stringof(arg1)); }" \
		    -c "/bin/sh $PWD/write.sh"
		[ -f restores.out ] || atf_fail "dtrace wrote no output file"
		mp_restores=$(grep -c '^restore ' restores.out)
		mp_how="dtrace probe $MP_PROBE"
	else
		/bin/sh ./write.sh
		mp_restores=$(dmesg | grep -c "all paths in $mp were marked FAIL, restore")
		mp_how="console messages (no $MP_PROBE probe in this kernel)"
	fi

	[ -f dd.status ] || atf_fail "the write did not finish"
	mp_status=$(cat dd.status)
	[ "$mp_status" = 1 ] ||
	    atf_fail "dd through a multipath with every path failing exited $mp_status, want 1"
	echo "automatic restores counted through $mp_how: $mp_restores"
	[ "$mp_restores" -le 2 ] ||
	    atf_fail "$mp_restores automatic restores for one write, want at most 2"
}
failloop_cleanup()
{
	if [ -f "$MP_NOTASTE_FILE" ]; then
		sysctl kern.geom.notaste="$(cat "$MP_NOTASTE_FILE")" >/dev/null 2>&1
	fi
	mp_cleanup
}

atf_init_test_cases()
{
	atf_add_test_case failloop
}
