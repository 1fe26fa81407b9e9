#!/usr/libexec/atf-sh
# shellcheck shell=sh
#
# geom_multipath_rs: behaviour of the gmultipath verbs on md(4) disks, with
# gnop(4) providers where a path must fail, move or report a physical path.
# Runs as root inside a FreeBSD guest (see tests/vm/README.md).

# shellcheck source=SCRIPTDIR/helpers.sh
. "$(atf_get_srcdir)/helpers.sh"

# Every test case below needs the same metadata.
mp_head()
{
	atf_set descr "$1"
	atf_set require.user root
}

atf_test_case add cleanup
add_head()
{
	mp_head "gmultipath add puts a third path behind the two of a manual geom, as a passive path"
}
add_body()
{
	mp_load
	mp_setup 3

	atf_check -s exit:0 gmultipath create "$mp" "$d0" "$d1"
	mp_check_state "$mp" "$d0" OPTIMAL ACTIVE PASSIVE

	atf_check -s exit:0 gmultipath add "$mp" "$d2"
	mp_check_state "$mp" "$d0" OPTIMAL ACTIVE PASSIVE PASSIVE
}
add_cleanup()
{
	mp_cleanup
}

atf_test_case create_A cleanup
create_A_head()
{
	mp_head "create -A: every path is active, getactive lists the newest path first"
}
create_A_body()
{
	mp_load
	mp_setup 2

	atf_check -s exit:0 gmultipath create -A "$mp" "$d0" "$d1"
	mp_check_state "$mp" "$d1 $d0" OPTIMAL ACTIVE ACTIVE
}
create_A_cleanup()
{
	mp_cleanup
}

atf_test_case create_R cleanup
create_R_head()
{
	mp_head "create -R: the first path takes writes, the other one reads"
}
create_R_body()
{
	mp_load
	mp_setup 2

	atf_check -s exit:0 gmultipath create -R "$mp" "$d0" "$d1"
	mp_check_state "$mp" "$d0" OPTIMAL ACTIVE READ
}
create_R_cleanup()
{
	mp_cleanup
}

atf_test_case depart_and_arrive cleanup
depart_and_arrive_head()
{
	mp_head "a labelled path that disappears is dropped, and taken back by taste when it reappears"
}
depart_and_arrive_body()
{
	mp_load
	mp_load_gnop
	mp_setup 2

	# The gnop providers start 128 KiB into each md, so a label written
	# through a gnop provider matches that provider's size only: the md
	# itself, one size larger, is never mistaken for a path.
	mp_nop "$d0" -o 131072
	mp_nop "$d1" -o 131072

	atf_check -s exit:0 gmultipath label "$mp" "$d0.nop"
	# label writes a single provider; the second one joins by hand.
	atf_check -s exit:0 gmultipath add "$mp" "$d1.nop"
	mp_wait_nop_paths "$mp" 2

	# Path d0.nop vanishes without warning.
	atf_check -s exit:0 -o ignore -e ignore gnop destroy -f "$d0.nop"
	mp_wait_nop_paths "$mp" 1

	# It comes back at the same offset: taste must find the label again.
	mp_nop "$d0" -o 131072
	mp_wait_nop_paths "$mp" 2

	# Which path is active does not matter here, only that both are good.
	mp_state=$(mp_geom_state "$mp")
	[ "$mp_state" = OPTIMAL ] ||
	    atf_fail "$mp: state '$mp_state' after the path came back, want OPTIMAL"
}
depart_and_arrive_cleanup()
{
	mp_cleanup
}

atf_test_case fail cleanup
fail_head()
{
	mp_head "gmultipath fail on the active path moves I/O to the other one"
}
fail_body()
{
	mp_load
	mp_setup 2

	atf_check -s exit:0 gmultipath create "$mp" "$d0" "$d1"
	mp_check_state "$mp" "$d0" OPTIMAL ACTIVE PASSIVE

	atf_check -s exit:0 gmultipath fail "$mp" "$d0"
	mp_check_state "$mp" "$d1" DEGRADED FAIL ACTIVE
}
fail_cleanup()
{
	mp_cleanup
}

atf_test_case fail_on_error cleanup
fail_on_error_head()
{
	mp_head "an I/O error on the active path marks it FAIL and the write still succeeds on the other path"
}
fail_on_error_body()
{
	mp_setup_nops

	atf_check -s exit:0 gmultipath create "$mp" "$d0.nop" "$d1.nop"
	mp_check_state "$mp" "$d0.nop" OPTIMAL ACTIVE PASSIVE

	mp_break_nop "$d0.nop"
	mp_write_block "$mp"
	mp_check_state "$mp" "$d1.nop" DEGRADED FAIL ACTIVE
}
fail_on_error_cleanup()
{
	mp_cleanup
}

atf_test_case physpath cleanup
physpath_head()
{
	mp_head "the multipath provider reports its paths' physical path with /mp appended"
}
physpath_body()
{
	mp_load
	mp_load_gnop
	mp_setup 2
	mp_phys="enclosure7/slot3/lun0"
	mp_nop "$d0" -z "$mp_phys"
	mp_nop "$d1" -z "$mp_phys"

	atf_check -s exit:0 gmultipath create "$mp" "$d0.nop" "$d1.nop"
	atf_check -s exit:0 -o "inline:$mp_phys/mp\n" \
	    diskinfo -p "multipath/$mp"
}
physpath_cleanup()
{
	mp_cleanup
}

atf_test_case prefer cleanup
prefer_head()
{
	mp_head "gmultipath prefer makes the named path the active one"
}
prefer_body()
{
	mp_load
	mp_setup 3

	atf_check -s exit:0 gmultipath create "$mp" "$d0" "$d1" "$d2"
	mp_check_state "$mp" "$d0" OPTIMAL ACTIVE PASSIVE PASSIVE

	atf_check -s exit:0 gmultipath prefer "$mp" "$d2"
	mp_check_state "$mp" "$d2" OPTIMAL PASSIVE PASSIVE ACTIVE
}
prefer_cleanup()
{
	mp_cleanup
}

atf_test_case restore cleanup
restore_head()
{
	mp_head "gmultipath restore makes a failed path usable again without making it active"
}
restore_body()
{
	mp_load
	mp_setup 2

	atf_check -s exit:0 gmultipath create "$mp" "$d0" "$d1"
	atf_check -s exit:0 gmultipath fail "$mp" "$d0"
	mp_check_state "$mp" "$d1" DEGRADED FAIL ACTIVE

	# No failback: the active path stays where the failure moved it.
	atf_check -s exit:0 gmultipath restore "$mp" "$d0"
	mp_check_state "$mp" "$d1" OPTIMAL PASSIVE ACTIVE
}
restore_cleanup()
{
	mp_cleanup
}

atf_test_case restore_on_error cleanup
restore_on_error_head()
{
	mp_head "when the last good path fails on I/O, the failed ones are restored and the I/O retried"
}
restore_on_error_body()
{
	mp_setup_nops

	atf_check -s exit:0 gmultipath create "$mp" "$d0.nop" "$d1.nop"
	atf_check -s exit:0 gmultipath fail "$mp" "$d0.nop"
	mp_check_state "$mp" "$d1.nop" DEGRADED FAIL ACTIVE

	# d1.nop is now the only good path, and it breaks. Its error brings
	# d0.nop back, and the retried write goes through d0.nop.
	mp_break_nop "$d1.nop"
	mp_write_block "$mp"
	mp_check_state "$mp" "$d0.nop" DEGRADED ACTIVE FAIL
}
restore_on_error_cleanup()
{
	mp_cleanup
}

atf_test_case rotate cleanup
rotate_head()
{
	mp_head "gmultipath rotate walks the active role through every path and back"
}
rotate_body()
{
	mp_load
	mp_setup 3

	atf_check -s exit:0 gmultipath create "$mp" "$d0" "$d1" "$d2"
	mp_check_state "$mp" "$d0" OPTIMAL ACTIVE PASSIVE PASSIVE

	# The kernel keeps its path list newest first, so rotation from the
	# oldest path goes to the newest one, then backwards.
	atf_check -s exit:0 gmultipath rotate "$mp"
	mp_check_state "$mp" "$d2" OPTIMAL PASSIVE PASSIVE ACTIVE
	atf_check -s exit:0 gmultipath rotate "$mp"
	mp_check_state "$mp" "$d1" OPTIMAL PASSIVE ACTIVE PASSIVE
	atf_check -s exit:0 gmultipath rotate "$mp"
	mp_check_state "$mp" "$d0" OPTIMAL ACTIVE PASSIVE PASSIVE
}
rotate_cleanup()
{
	mp_cleanup
}

atf_init_test_cases()
{
	atf_add_test_case add
	atf_add_test_case create_A
	atf_add_test_case create_R
	atf_add_test_case depart_and_arrive
	atf_add_test_case fail
	atf_add_test_case fail_on_error
	atf_add_test_case physpath
	atf_add_test_case prefer
	atf_add_test_case restore
	atf_add_test_case restore_on_error
	atf_add_test_case rotate
}
