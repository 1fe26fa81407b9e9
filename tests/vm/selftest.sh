#!/usr/bin/env bash
# Unit tests of the VM harness that need no FreeBSD: lint, the skip and error
# paths of run.sh, the serial-log parser on sample logs, the carrier builder,
# and whole runs of run.sh against a scripted fake console (which exercise the
# console driver, the host-side LUN check and the summary, and are labelled
# as fake in run.sh's own output).
#
#   bash tests/vm/selftest.sh
#
# Installs nothing: shellcheck, mtools, dosfstools, atf-sh, kyua and python3
# come from scripts/toolchain.sh vmtest (make test runs it first); a case
# whose tool is missing fails and says so.
# The ATF and guest dry runs run twice: on the core linked into mpsim-serve,
# and through the shipped module (geom_multipath_rs/geom_multipath_rs.ko,
# which make test builds first), linked by mpsim-serve's in-process loader.
# Without that .ko the second runs are skipped (a "SKIPPED" line), unless
# GMR_REQUIRE_KO=1 (make test sets it): then its absence is a failure.
# Ends with "N passed, M failed, K skipped"; exit status 1 if any failed.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
. "$here/lib.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gmprs-selftest.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0
skipped=0

ok()
{
	passed=$((passed + 1))
	echo "ok - $1"
}

not_ok()
{
	failed=$((failed + 1))
	echo "not ok - $1"
	if [ -n "${2:-}" ] && [ -s "$2" ]; then
		sed 's/^/    | /' "$2" | tail -n 25
	fi
}

# check NAME COMMAND...: the command must succeed.
check()
{
	local name=$1
	shift
	if "$@" > "$tmp/out" 2>&1; then
		ok "$name"
	else
		not_ok "$name" "$tmp/out"
	fi
}

# run_capture OUTFILE COMMAND...: run, keep stdout+stderr, return the status.
run_capture()
{
	local out=$1
	shift
	local st=0
	"$@" > "$out" 2>&1 || st=$?
	return "$st"
}

# bg NAME COMMAND...: start COMMAND in the background; its output goes to
# $tmp/NAME.out and its exit status to $tmp/NAME.rc. The slow checks (whole
# runs against the fake console, the dry runs) start first, run side by
# side, and are judged at the end, so the self-test stays well under a minute.
bg()
{
	local name=$1
	shift
	( st=0; "$@" > "$tmp/$name.out" 2>&1 || st=$?; echo "$st" > "$tmp/$name.rc" ) &
}

# bg_status NAME: the exit status of a finished background command.
bg_status()
{
	cat "$tmp/$1.rc" 2>/dev/null || echo none
}

# ko_teardown_check: the module's own refusal and the teardown's checks, on
# mpsim-serve --ko with a multipath geom left in place. kldunload must be
# refused (the module's MOD_UNLOAD says EBUSY); mpsim-stop stops the geom
# and unloads it cleanly; with MPSIM_BREAK=ko-keep-geoms (the stop skips
# stopping the geom) the refused unload must fail the stop. Prints one
# "ko-teardown: CHECK  ->  RESULT" line per check.
ko_teardown_check()
{
	local brk d st
	for brk in "" ko-keep-geoms; do
		d=$tmp/ko-teardown${brk:+-$brk}
		(
			SIM_PID=""
			trap '[ -z "$SIM_PID" ] || kill "$SIM_PID" 2>/dev/null' EXIT
			MPSIM_BREAK=$brk
			export MPSIM_BREAK
			sim_start "$d" --ko "$built_ko" || exit 2
			cp "$built_ko" "$d/geom_multipath_rs.ko"
			kldload "$d/geom_multipath_rs.ko" || exit 2
			gmultipath create mpk "$(mdconfig -a -s 1m)" "$(mdconfig -a -s 1m)" || exit 2
			if [ -n "$brk" ]; then
				:
			elif kldunload geom_multipath_rs.ko 2> "$d/unload.err"; then
				echo "ko-teardown: kldunload_busy  ->  failed: unloaded with geom mpk in place"
			elif grep -q 'Device busy' "$d/unload.err"; then
				echo "ko-teardown: kldunload_busy  ->  passed"
			else
				echo "ko-teardown: kldunload_busy  ->  failed: $(cat "$d/unload.err")"
			fi
			st=0
			sim_stop > "$d/stop.out" 2>&1 || st=$?
			SIM_PID=""
			if [ -z "$brk" ] && [ "$st" = 0 ] && grep -q '^ko: loaded .*, leaks 0$' "$d/stop.out"; then
				echo "ko-teardown: stop  ->  passed"
			elif [ -n "$brk" ] && [ "$st" != 0 ] &&
			    grep -q 'kldunload at teardown: .*refused' "$d/stop.out"; then
				echo "ko-teardown: refused_unload_fails  ->  passed"
			else
				echo "ko-teardown: stop${brk:+ with $brk}  ->  failed: exit $st: $(tr '\n' ' ' < "$d/stop.out")"
			fi
		)
	done
}

: > "$tmp/image.raw"
printf 'not a real module\n' > "$tmp/dummy.ko"
built_ko=$(cd "$here/../.." && pwd)/geom_multipath_rs/geom_multipath_rs.ko
ko=$built_ko
[ -f "$ko" ] || ko=$tmp/dummy.ko

# fake_start MODE [ENV=VALUE...]: a whole run.sh run against the fake console.
fake_start()
{
	local mode=$1
	shift
	bg "fake-$mode" env "$@" FAKE_MODE="$mode" GMPRS_VM_SELFTEST=1 GMPRS_CONSOLE_FAST=1 \
	    GMPRS_VM_FAKE="$here/fixtures/fake-console.py" \
	    FREEBSD_IMAGE="$tmp/image.raw" KO="$tmp/dummy.ko" VM_WORKDIR="$tmp/vm-$mode" \
	    timeout 50 bash "$here/run.sh"
}
fake_start pass
fake_start fail
fake_start password FAKE_PASSWORD=pw0rd ROOT_PASSWORD=pw0rd
fake_start hang RUN_TIMEOUT=3
fake_start panic
# The dry runs send the FreeBSD commands to mpsim-serve (the GEOM simulator
# running the multipath core): build it once, here, for all of them.
# shellcheck source=SCRIPTDIR/dryrun/sim.sh
. "$here/dryrun/sim.sh"
sim_ok=1
sim_build > "$tmp/sim-build.out" 2>&1 || sim_ok=0
bg guest-dryrun bash "$here/dryrun/run-guest.sh" "$ko"
bg atf-dryrun bash "$here/dryrun/run-atf.sh"
# Once more on the server's threaded scheduler (real threads, real races).
bg atf-dryrun-threads bash "$here/dryrun/run-atf.sh" --threads
# BREAK:CASE: with MPSIM_BREAK=BREAK, mpsim-serve breaks one behaviour on
# purpose, and CASE (which passes on the unbroken simulator) must fail.
breaks="rotate-twice:misc.sh:rotate
getactive-reversed:misc.sh:create_A
restore-noop:misc.sh:restore
gnop-no-faults:misc.sh:fail_on_error"
while IFS=: read -r brk id; do
	bg "break-$brk" bash "$here/dryrun/run-atf.sh" -m "$brk" "$id"
done <<< "$breaks"
# The same dry runs through the shipped module: mpsim-serve --ko links the
# .ko's bytes with its in-process loader (no FreeBSD kernel runs here).
ko_run=0
if [ -f "$built_ko" ]; then
	ko_run=1
	bg atf-dryrun-ko bash "$here/dryrun/run-atf.sh" --ko "$built_ko"
	bg atf-dryrun-ko-threads bash "$here/dryrun/run-atf.sh" --ko "$built_ko" --threads
	bg guest-dryrun-ko bash "$here/dryrun/run-guest.sh" --ko "$built_ko"
	bg ko-teardown ko_teardown_check
	# One break through the module too: its results come from the run.
	bg break-ko-rotate-twice bash "$here/dryrun/run-atf.sh" --ko "$built_ko" -m rotate-twice misc.sh:rotate
fi

# ------------------------------------------------------------------ lint
shell_scripts=("$here"/run.sh "$here"/selftest.sh "$here"/parse-results.sh
    "$here"/mkcarrier.sh "$here"/lib.sh "$here"/guest/guest.sh "$here"/dryrun/run-atf.sh
    "$here"/dryrun/run-guest.sh "$here"/dryrun/sim.sh
    "$here"/atf/helpers.sh "$here"/atf/misc.sh "$here"/atf/failloop.sh)
if vm_need shellcheck shellcheck lint 2> "$tmp/need.out"; then
	check "shellcheck: every script, no warnings" \
	    shellcheck -x "${shell_scripts[@]}"
else
	not_ok "shellcheck: not installed" "$tmp/need.out"
fi
# shellcheck disable=SC2016  # the inner sh expands "$f"
check "sh -n: ATF programs, helpers and guest script parse as POSIX sh" \
    sh -c 'for f; do sh -n "$f" || exit 1; done' sh "$here"/atf/*.sh "$here"/guest/guest.sh
# shellcheck disable=SC2016
check "bash -n: host scripts parse" \
    sh -c 'for f; do bash -n "$f" || exit 1; done' sh "$here"/*.sh
check "python3: console driver and fake console compile" \
    python3 -c 'import sys
for f in sys.argv[1:]: compile(open(f).read(), f, "exec")' \
    "$here/console.py" "$here/fixtures/fake-console.py"

# Every scenario of FreeBSD's suite has a test case of the same name.
cases_ok=1
for tc in add create_A create_R depart_and_arrive fail fail_on_error physpath \
    prefer restore restore_on_error rotate; do
	grep -q "^atf_test_case $tc cleanup\$" "$here/atf/misc.sh" || cases_ok=0
	grep -q "^	atf_add_test_case $tc\$" "$here/atf/misc.sh" || cases_ok=0
done
grep -q '^atf_test_case failloop cleanup$' "$here/atf/failloop.sh" || cases_ok=0
if [ "$cases_ok" = 1 ] && [ "$(grep -c 'atf_set require.user root' "$here"/atf/*.sh | \
    awk -F: '{ s += $2 } END { print s }')" -ge 2 ]; then
	ok "ATF: the 12 test cases exist, use cleanup, require root"
else
	not_ok "ATF: a test case is missing or lacks cleanup/require.user"
fi

# ------------------------------------------------------------------ run.sh: no VM
st=0
env -u FREEBSD_IMAGE bash "$here/run.sh" > "$tmp/skip.out" 2>&1 || st=$?
if [ "$st" = 77 ] && grep -q '^SKIPPED: no FreeBSD image (set FREEBSD_IMAGE=...); nothing was booted$' "$tmp/skip.out" &&
    [ "$(tail -n 1 "$tmp/skip.out")" = "vm: 0 passed, 0 failed, 1 skipped" ]; then
	ok "run.sh without FREEBSD_IMAGE: SKIPPED, exit 77 (skipped), 'vm: 0 passed, 0 failed, 1 skipped' last"
else
	not_ok "run.sh without FREEBSD_IMAGE (exit $st)" "$tmp/skip.out"
fi

st=0
FREEBSD_IMAGE=$tmp/no-such-image.qcow2 bash "$here/run.sh" > "$tmp/noimg.out" 2>&1 || st=$?
if [ "$st" != 0 ] && grep -q 'no-such-image.qcow2 does not exist' "$tmp/noimg.out"; then
	ok "run.sh with a nonexistent image: exit $st, says the file does not exist"
else
	not_ok "run.sh with a nonexistent image (exit $st)" "$tmp/noimg.out"
fi

st=0
FREEBSD_IMAGE=$tmp/image.raw KO=$tmp/missing.ko bash "$here/run.sh" > "$tmp/noko.out" 2>&1 || st=$?
if [ "$st" = 2 ] && grep -q 'missing.ko not found' "$tmp/noko.out"; then
	ok "run.sh with an image but no module: exit 2, says so"
else
	not_ok "run.sh with an image but no module (exit $st)" "$tmp/noko.out"
fi

if [ "$(uname -s)" != FreeBSD ]; then
	st=0
	FREEBSD_IMAGE=$tmp/image.raw KO=$tmp/dummy.ko VM_HYPERVISOR=bhyve \
	    bash "$here/run.sh" > "$tmp/nohv.out" 2>&1 || st=$?
	if [ "$st" = 2 ] && grep -q 'bhyve is not available' "$tmp/nohv.out"; then
		ok "run.sh with an image but no hypervisor: exit 2, says so"
	else
		not_ok "run.sh with an image but no hypervisor (exit $st)" "$tmp/nohv.out"
	fi
	# The fake console is only honoured under GMPRS_VM_SELFTEST=1.
	st=0
	GMPRS_VM_FAKE=$here/fixtures/fake-console.py FREEBSD_IMAGE=$tmp/image.raw \
	    KO=$tmp/dummy.ko VM_HYPERVISOR=bhyve bash "$here/run.sh" > "$tmp/nofake.out" 2>&1 || st=$?
	if [ "$st" = 2 ] && ! grep -q 'passed, 0 failed' "$tmp/nofake.out"; then
		ok "run.sh ignores the fake console outside the self-test"
	else
		not_ok "run.sh used the fake console outside the self-test (exit $st)" "$tmp/nofake.out"
	fi
fi

# ------------------------------------------------------------------ parser
expect="guest:files guest:module_load misc.sh:add misc.sh:create_A misc.sh:create_R
misc.sh:depart_and_arrive misc.sh:fail misc.sh:fail_on_error misc.sh:physpath
misc.sh:prefer misc.sh:restore misc.sh:restore_on_error misc.sh:rotate
failloop.sh:failloop lun:two_paths"
# fixture : exit status : last line
while IFS=: read -r fixture want_st want_line; do
	st=0
	bash "$here/parse-results.sh" --expect "$expect" "$here/fixtures/$fixture" \
	    > "$tmp/parse.out" 2>&1 || st=$?
	got_line=$(tail -n 1 "$tmp/parse.out")
	if [ "$st" = "$want_st" ] && [ "$got_line" = "$want_line" ]; then
		ok "parse $fixture: '$want_line', exit $want_st"
	else
		echo "got exit $st, last line '$got_line'" >> "$tmp/parse.out"
		not_ok "parse $fixture: want '$want_line', exit $want_st" "$tmp/parse.out"
	fi
done <<'EOF'
all-pass.log:0:vm: 15 passed, 0 failed, 0 skipped
crlf-ansi.log:0:vm: 15 passed, 0 failed, 0 skipped
one-fail.log:1:vm: 13 passed, 2 failed, 0 skipped
skipped.log:0:vm: 14 passed, 0 failed, 1 skipped
truncated.log:1:vm: 8 passed, 8 failed, 0 skipped
no-begin.log:1:vm: 0 passed, 16 failed, 0 skipped
missing-case.log:1:vm: 14 passed, 1 failed, 0 skipped
module-load-fail.log:1:vm: 1 passed, 14 failed, 0 skipped
EOF
if bash "$here/parse-results.sh" "$here/fixtures/truncated.log" 2>/dev/null |
    grep -q 'FAIL guest (no ==GMPRS-VM-END== marker: log truncated'; then
	ok "parse: a truncated log (guest hung) is reported as such"
else
	not_ok "parse: a truncated log is not reported as truncated"
fi
st=0
bash "$here/parse-results.sh" --extra "host:lun_data  ->  failed: no data" \
    "$here/fixtures/all-pass.log" > "$tmp/parse.out" 2>&1 || st=$?
if [ "$st" = 1 ] && [ "$(tail -n 1 "$tmp/parse.out")" = "vm: 15 passed, 1 failed, 0 skipped" ]; then
	ok "parse: a failed host-side check fails the run"
else
	not_ok "parse: a failed host-side check" "$tmp/parse.out"
fi

# ------------------------------------------------------------------ carrier
if LUN_NONCE=0123456789abcdef bash "$here/mkcarrier.sh" "$tmp/carrier.img" "$ko" \
    > "$tmp/carrier.out" 2>&1 && vm_need mdir mtools 2>> "$tmp/carrier.out"; then
	MTOOLS_SKIP_CHECK=1 mdir -b -i "$tmp/carrier.img" :: > "$tmp/mdir.out" 2>&1 || true
	missing=""
	for f in geom_multipath_rs.ko guest.sh helpers.sh misc.sh failloop.sh Kyuafile manifest.env; do
		grep -qix "::/$f" "$tmp/mdir.out" || missing="$missing $f"
	done
	MTOOLS_SKIP_CHECK=1 mtype -i "$tmp/carrier.img" ::/manifest.env > "$tmp/manifest" 2>&1 || true
	MTOOLS_SKIP_CHECK=1 mcopy -i "$tmp/carrier.img" ::/geom_multipath_rs.ko "$tmp/ko.copy" 2>/dev/null || true
	if [ -z "$missing" ] && grep -q "^KO_SHA256=$(vm_sha256 "$ko")\$" "$tmp/manifest" &&
	    grep -q '^LUN_NONCE=0123456789abcdef$' "$tmp/manifest" &&
	    cmp -s "$ko" "$tmp/ko.copy"; then
		ok "carrier: FAT image holds the .ko ($(basename "$(dirname "$ko")")/$(basename "$ko")), the scripts and the manifest"
	else
		cat "$tmp/mdir.out" "$tmp/manifest" >> "$tmp/carrier.out"
		not_ok "carrier: missing:${missing:- none}, or a bad manifest or .ko copy" "$tmp/carrier.out"
	fi
	# dosfstools (toolchain.sh vmtest) brings fsck.vfat: without it the
	# file system was not checked, and that is a failure, not a pass.
	if ! vm_need fsck.vfat dosfstools 2> "$tmp/fsck.out"; then
		not_ok "carrier: the FAT file system was not checked" "$tmp/fsck.out"
	elif fsck.vfat -n "$tmp/carrier.img" > "$tmp/fsck.out" 2>&1; then
		ok "carrier: the FAT file system is clean (fsck.vfat -n)"
	else
		not_ok "carrier: fsck.vfat reports errors" "$tmp/fsck.out"
	fi
else
	not_ok "carrier: mkcarrier.sh failed, or mtools is missing" "$tmp/carrier.out"
	not_ok "carrier: the FAT file system was not checked (no carrier)"
fi

# ------------------------------------------------------------------ whole runs, fake console
wait
# fake_check MODE WANT_STATUS WANT_LAST_LINE
fake_check()
{
	local mode=$1 want_st=$2 want_line=$3 out=$tmp/fake-$1.out st
	st=$(bg_status "fake-$mode")
	if [ "$st" = "$want_st" ] && [ "$(tail -n 1 "$out")" = "$want_line" ] &&
	    grep -q '^FAKE GUEST (selftest)' "$out"; then
		ok "run.sh + fake console ($mode): '$want_line', exit $want_st"
	else
		echo "got exit $st" >> "$out"
		not_ok "run.sh + fake console ($mode): want '$want_line', exit $want_st" "$out"
	fi
}
fake_check pass 0 "vm(fake guest): 16 passed, 0 failed, 0 skipped"
fake_check fail 1 "vm(fake guest): 15 passed, 1 failed, 0 skipped"
fake_check password 0 "vm(fake guest): 16 passed, 0 failed, 0 skipped"
fake_check hang 1 "vm(fake guest): 7 passed, 11 failed, 0 skipped"
if grep -q 'log truncated' "$tmp/fake-hang.out" &&
    grep -q 'did not finish in 3 s' "$tmp/fake-hang.out"; then
	ok "run.sh + fake console (hang): reported as a hung guest with a truncated log"
else
	not_ok "run.sh + fake console (hang): not reported as hung" "$tmp/fake-hang.out"
fi
fake_check panic 1 "vm(fake guest): 9 passed, 9 failed, 0 skipped"
if grep -q 'guest kernel panicked' "$tmp/fake-panic.out"; then
	ok "run.sh + fake console (panic): the panic is named"
else
	not_ok "run.sh + fake console (panic): the panic is not named" "$tmp/fake-panic.out"
fi

# ------------------------------------------------------------------ ATF dry run
# The real atf-sh and kyua run the suite with every FreeBSD command sent to
# mpsim-serve, the GEOM simulator running the multipath core: the results
# are the core's. Every case must pass (or say why the simulator cannot run
# it: skipped), clean up after itself and leave the simulation free of rule
# violations; with one behaviour broken on purpose the matching case fails.
if [ "$sim_ok" = 1 ]; then
	ok "mpsim-serve built ($MPSIM_SERVE)"
else
	not_ok "mpsim-serve could not be built: the dry runs cannot run" "$tmp/sim-build.out"
fi
# The guest side as a whole: carrier out of its FAT image, guest.sh, kyua
# over the Kyuafile, the two-path LUN scenario, the parser, the host check.
st=$(bg_status guest-dryrun)
want="guest-dryrun(simulator): 15 passed, 0 failed, 1 skipped"
if [ "$st" = 0 ] && [ "$(tail -n 1 "$tmp/guest-dryrun.out")" = "$want" ] &&
    grep -q '^  SKIP guest:module_load (skipped: simulator dry run' "$tmp/guest-dryrun.out"; then
	ok "guest dry run on the simulator: '$want' (the module load is skipped: no kernel loaded the .ko)"
	sed -n 's/^  \(PASS\|FAIL\|SKIP\) /    \1 /p' "$tmp/guest-dryrun.out"
else
	not_ok "guest dry run on the simulator: want '$want' (exit $st)" "$tmp/guest-dryrun.out"
fi
# atf_result JOB LABEL WHAT: the dry run JOB (run-atf.sh) passed every
# case: exit 0 and its last line "atf-dryrun(LABEL): 12 passed, ...";
# through the .ko (LABEL ko...) also a clean unload. Lists the cases.
atf_result()
{
	local job=$1 label=$2 what=$3 st want unload=""
	st=$(bg_status "$job")
	want="atf-dryrun($label): 12 passed, 0 failed, 0 skipped"
	case $label in
	ko*) unload=" and a clean unload" ;;
	esac
	if [ "$st" = 0 ] && [ "$(tail -n 1 "$tmp/$job.out")" = "$want" ] &&
	    { [ -z "$unload" ] || grep -q '^ko: loaded .*, leaks 0$' "$tmp/$job.out"; }; then
		ok "$what: '$want'$unload"
		sed -n 's/^\([^ ]*:[^ ]*\)  ->  \([a-z]*\).*/    \2 \1/p' "$tmp/$job.out"
	else
		not_ok "$what: want '$want'$unload (exit $st)" "$tmp/$job.out"
	fi
	[ -z "$unload" ] || sed -n 's/^\(ko: loaded .*\)/    \1/p' "$tmp/$job.out"
}
# Case by case under atf-sh, nothing left behind after each cleanup.
atf_result atf-dryrun simulator "ATF cases one by one on the simulator (nothing left after each cleanup)"
atf_result atf-dryrun-threads "simulator, threaded" "ATF cases on the threaded simulator"
while IFS=: read -r brk id; do
	st=$(bg_status "break-$brk")
	if [ "$st" = 1 ] && grep -q "^$id  ->  failed: " "$tmp/break-$brk.out"; then
		ok "ATF on a broken simulator: $id fails with MPSIM_BREAK=$brk"
	else
		not_ok "ATF on a broken simulator: $id did not fail with MPSIM_BREAK=$brk (exit $st)" "$tmp/break-$brk.out"
	fi
done <<< "$breaks"

# ------------------------------------------------------------------ through the .ko
# The ATF dry run again, and the guest dry run, with class MULTIPATH from
# the shipped module's bytes (mpsim-serve --ko: the in-process loader,
# geom_sim::ko): every case must pass, nothing may be left behind, and the
# module's unload at the teardown must be clean (no refusal, no leak, no
# panic). guest:module_load checks the in-process load (class registered,
# kldstat lists the file and its module) and says no FreeBSD kernel ran it.
if [ "$ko_run" = 0 ]; then
	if [ "${GMR_REQUIRE_KO:-}" = 1 ]; then
		not_ok "dry runs through the .ko: $built_ko is missing (GMR_REQUIRE_KO=1; build it with make)"
	else
		skipped=$((skipped + 1))
		echo "SKIPPED - dry runs through the .ko: $built_ko is missing (build it with make)"
	fi
else
	atf_result atf-dryrun-ko ko "ATF cases one by one through the .ko (in-process loader)"
	atf_result atf-dryrun-ko-threads "ko, threaded" "ATF cases through the .ko on the threaded simulator"
	st=$(bg_status guest-dryrun-ko)
	want="guest-dryrun(ko): 16 passed, 0 failed, 0 skipped"
	if [ "$st" = 0 ] && [ "$(tail -n 1 "$tmp/guest-dryrun-ko.out")" = "$want" ] &&
	    grep -q "^  PASS guest:module_load (passed: dry run: mpsim-serve's in-process loader .*; no FreeBSD kernel ran it)\$" "$tmp/guest-dryrun-ko.out" &&
	    grep -q '^ko: loaded .*, leaks 0$' "$tmp/guest-dryrun-ko.out"; then
		ok "guest dry run through the .ko: '$want' (module_load: the in-process loader, not a FreeBSD kernel), clean unload"
		sed -n 's/^  \(PASS\|FAIL\|SKIP\) /    \1 /p' "$tmp/guest-dryrun-ko.out"
	else
		not_ok "guest dry run through the .ko: want '$want' and a clean unload (exit $st)" "$tmp/guest-dryrun-ko.out"
	fi
	sed -n 's/^\(ko: loaded .*\)/    \1/p' "$tmp/guest-dryrun-ko.out"
	st=$(bg_status break-ko-rotate-twice)
	if [ "$st" = 1 ] && grep -q '^misc.sh:rotate  ->  failed: ' "$tmp/break-ko-rotate-twice.out"; then
		ok "ATF through the .ko on a broken front end: misc.sh:rotate fails with MPSIM_BREAK=rotate-twice"
	else
		not_ok "ATF through the .ko: misc.sh:rotate did not fail with MPSIM_BREAK=rotate-twice (exit $st)" "$tmp/break-ko-rotate-twice.out"
	fi
	for c in kldunload_busy stop refused_unload_fails; do
		if grep -q "^ko-teardown: $c  ->  passed\$" "$tmp/ko-teardown.out"; then
			ok "ko teardown: $c"
		else
			not_ok "ko teardown: $c (exit $(bg_status ko-teardown))" "$tmp/ko-teardown.out"
		fi
	done
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
