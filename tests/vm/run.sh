#!/usr/bin/env bash
# Boot a FreeBSD VM, load geom_multipath_rs.ko in it, run the ATF suite of
# tests/vm/atf with kyua and a two-path scenario on one LUN attached twice,
# and report what the guest's kernel did.
#
#   FREEBSD_IMAGE=/path/FreeBSD-14.x-RELEASE-amd64.qcow2 bash tests/vm/run.sh
#
# Environment:
#   FREEBSD_IMAGE  FreeBSD 14+ amd64 VM image: raw or qcow2, optionally .xz.
#                  Unset: nothing is booted; prints SKIPPED and exits 77.
#   KO             the module (default geom_multipath_rs/geom_multipath_rs.ko
#                  at the top of the repository)
#   VM_HYPERVISOR  auto (default: bhyve on FreeBSD, QEMU elsewhere), qemu, bhyve
#   VM_FIRMWARE    QEMU: uefi (default when OVMF is installed) or bios;
#                  bhyve: bhyveload (default) or uefi
#   VM_ACCEL       QEMU: auto (default: KVM if a guest really runs under
#                  it, else TCG, slowly), kvm or tcg
#   VM_MEM VM_CPUS guest memory in MiB (2048) and vCPUs (2)
#   BOOT_TIMEOUT RUN_TIMEOUT  seconds to reach the login prompt (600) and to
#                  run the suite (1800); four times as long without KVM
#   ROOT_PASSWORD  the guest's root password (official images have none)
#   VM_WORKDIR     where the LUN, carrier and logs go (default: a new
#                  directory under /var/tmp); VM_KEEP=1 keeps it afterwards
#   VM_VERBOSE=1   copy the serial console to stdout while it runs
#
# Exit status: 0 every test passed; 77 skipped for want of an image (nothing
# was tested: automake's "skipped" status, which make test reports as a
# skip); 1 a test failed or the guest did not finish; 2 the run could not be
# set up (bad image path, no module, no hypervisor). The last line is always
#   vm: N passed, M failed, K skipped
# except on a setup error, whose last line says what is wrong.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
. "$here/lib.sh"

LUN_IDENT=GMPLUN0
LUN_MIB=64
EXPECT="guest:files guest:module_load
misc.sh:add misc.sh:create_A misc.sh:create_R misc.sh:depart_and_arrive
misc.sh:fail misc.sh:fail_on_error misc.sh:physpath misc.sh:prefer
misc.sh:restore misc.sh:restore_on_error misc.sh:rotate
failloop.sh:failloop lun:two_paths"

image=${FREEBSD_IMAGE:-}
if [ -z "$image" ]; then
	echo "SKIPPED: no FreeBSD image (set FREEBSD_IMAGE=...); nothing was booted"
	echo "vm: 0 passed, 0 failed, 1 skipped"
	exit 77
fi

# Self-test hook: tests/vm/selftest.sh swaps the VM for a scripted fake
# console. It is never a kernel result, and the summary says so.
fake=""
if [ "${GMPRS_VM_SELFTEST:-}" = 1 ] && [ -n "${GMPRS_VM_FAKE:-}" ]; then
	fake=$GMPRS_VM_FAKE
fi

[ -e "$image" ] || vm_die "FREEBSD_IMAGE=$image does not exist"
if [ ! -f "$image" ] || [ ! -r "$image" ]; then
	vm_die "FREEBSD_IMAGE=$image is not a readable file"
fi
image=$(cd "$(dirname "$image")" && pwd)/$(basename "$image")

ko=${KO:-$repo/geom_multipath_rs/geom_multipath_rs.ko}
[ -f "$ko" ] || vm_die "module $ko not found: build it first (make), or set KO=/path/geom_multipath_rs.ko"

host_os=$(uname -s)
hv=${VM_HYPERVISOR:-auto}
if [ "$hv" = auto ]; then
	if [ "$host_os" = FreeBSD ]; then hv=bhyve; else hv=qemu; fi
fi
[ -n "$fake" ] && hv=fake

case "$hv" in
fake)
	;;
qemu)
	if ! vm_need qemu-system-x86_64 qemu-system-x86 vm 2>/dev/null; then
		echo "vm: error: an image was given but QEMU (qemu-system-x86_64) is not installed; nothing was booted." >&2
		echo "vm: error: run scripts/toolchain.sh vm (Debian packages qemu-system-x86, ovmf; FreeBSD: use bhyve)" >&2
		exit 2
	fi
	;;
bhyve)
	if [ "$host_os" != FreeBSD ] || ! vm_have bhyve || ! vm_have bhyvectl; then
		echo "vm: error: an image was given but bhyve is not available on this host; nothing was booted." >&2
		exit 2
	fi
	[ "$(id -u)" = 0 ] || vm_die "bhyve needs root"
	;;
*)
	vm_die "VM_HYPERVISOR=$hv: use auto, qemu or bhyve"
	;;
esac
vm_have python3 || vm_die "python3 is needed for the serial console driver"

# --------------------------------------------------------------- work area
work=${VM_WORKDIR:-}
own_work=0
if [ -z "$work" ]; then
	work=$(mktemp -d /var/tmp/gmprs-vm.XXXXXX)
	own_work=1
else
	mkdir -p "$work"
fi
vmname=gmprs-$$
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup()
{
	if [ "$hv" = bhyve ]; then
		bhyvectl --destroy --vm="$vmname" >/dev/null 2>&1 || true
	fi
	if [ "${VM_KEEP:-}" = 1 ] || [ "${keep_on_failure:-0}" = 1 ]; then
		vm_log "work directory kept: $work (serial.log is the guest's console)"
	elif [ "$own_work" = 1 ]; then
		rm -rf "$work"
	else
		# A directory the user named: remove only what this script made.
		(cd "$work" && rm -f serial.log lun.img carrier.img image image.raw \
		    efivars.fd kvm-probe.log kvm-probe.rc .odirect)
	fi
}
trap cleanup EXIT
log=$work/serial.log
: > "$log"

# Decompress .xz images; find out raw or qcow2 from the first bytes.
if [ "${image%.xz}" != "$image" ]; then
	vm_need xz xz-utils vm || exit 2
	vm_log "decompressing $image"
	xz -dc "$image" > "$work/image"
	image=$work/image
fi
if [ "$(head -c 4 "$image" | od -An -tx1 | tr -d ' \n')" = 514649fb ]; then
	fmt=qcow2
else
	fmt=raw
fi

# The one LUN both paths lead to.
lun=$work/lun.img
rm -f "$lun"
dd if=/dev/zero of="$lun" bs=1048576 count=0 seek="$LUN_MIB" 2>/dev/null

nonce=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
carrier=$work/carrier.img
LUN_NONCE=$nonce LUN_IDENT=$LUN_IDENT LUN_HINT="vtbd1 vtbd2" \
    bash "$here/mkcarrier.sh" "$carrier" "$ko" >&2 || exit 2

# kvm_works FIRMWARE-ARGS...: /dev/kvm can be opened AND a guest actually
# runs under it for a few seconds (nested or sandboxed KVM can be present yet
# fail on the first instruction or MSR).
kvm_works()
{
	[ -r /dev/kvm ] && [ -w /dev/kvm ] || return 1
	# (In a subshell whose stderr is dropped, so that a QEMU that aborts
	# does not make bash print "Aborted".)
	(
		timeout 6 qemu-system-x86_64 -machine q35 -accel kvm -cpu host \
		    -m 256 -display none -serial stdio -monitor none -nic none \
		    -no-reboot "$@" < /dev/null > "$work/kvm-probe.log" 2>&1
		echo $? > "$work/kvm-probe.rc"
	) 2>/dev/null
	[ "$(cat "$work/kvm-probe.rc")" = 124 ] && ! grep -q -e 'KVM internal error' -e 'emulation failure' \
	    "$work/kvm-probe.log"
}

# --------------------------------------------------------------- VM command
declare -a vm
slow=1
case "$hv" in
fake)
	vm=(python3 "$fake" --lun "$lun" --carrier "$carrier")
	;;
qemu)
	# O_DIRECT (cache=none) where the file system has it, so that neither
	# path keeps a private cache of the LUN; both paths reach the same file.
	if dd if=/dev/zero of="$work/.odirect" bs=4096 count=1 oflag=direct 2>/dev/null; then
		cache=none
	else
		cache=writethrough
	fi
	rm -f "$work/.odirect"
	vm=(qemu-system-x86_64 -name gmprs-vm -machine q35 -m "${VM_MEM:-2048}"
	    -smp "${VM_CPUS:-2}" -display none -serial stdio -monitor none
	    -parallel none -nic none -no-reboot)
	fw=${VM_FIRMWARE:-auto}
	code="" vars=""
	for pair in OVMF_CODE_4M.fd:OVMF_VARS_4M.fd OVMF_CODE.fd:OVMF_VARS.fd; do
		if [ -f "/usr/share/OVMF/${pair%%:*}" ]; then
			code=/usr/share/OVMF/${pair%%:*}
			vars=/usr/share/OVMF/${pair##*:}
			break
		fi
	done
	if [ "$fw" = auto ] || [ "$fw" = uefi ]; then
		if [ -z "$code" ] &&
		    vm_need_file /usr/share/OVMF/OVMF_CODE_4M.fd ovmf vm 2>/dev/null; then
			code=/usr/share/OVMF/OVMF_CODE_4M.fd
			vars=/usr/share/OVMF/OVMF_VARS_4M.fd
		fi
		if [ -n "$code" ]; then
			fw=uefi
		elif [ "$fw" = uefi ]; then
			vm_die "VM_FIRMWARE=uefi but no OVMF firmware (Debian package ovmf: scripts/toolchain.sh vm)"
		else
			fw=bios
		fi
	fi
	fwargs=()
	if [ "$fw" = uefi ]; then
		cp "$vars" "$work/efivars.fd"
		fwargs=(-drive "if=pflash,format=raw,unit=0,readonly=on,file=$code"
		    -drive "if=pflash,format=raw,unit=1,file=$work/efivars.fd")
	fi
	vm+=("${fwargs[@]}")
	accel=${VM_ACCEL:-auto}
	if [ "$accel" = auto ]; then
		if kvm_works "${fwargs[@]}"; then accel=kvm; else accel=tcg; fi
	fi
	if [ "$accel" = kvm ]; then
		vm+=(-accel kvm -cpu host)
	else
		slow=4
		vm+=(-accel tcg)
		vm_log "WARNING: KVM is not usable here (no /dev/kvm, or a guest cannot run under it): QEMU emulates the CPU (TCG). This is slow: expect an hour."
	fi
	# The image is never written: its changes go to a throw-away overlay.
	vm+=(-drive "if=none,id=sys,file=$image,format=$fmt,snapshot=on"
	    -device "virtio-blk-pci,drive=sys,bootindex=1")
	for p in 0 1; do
		vm+=(-drive "if=none,id=lun$p,file=$lun,format=raw,cache=$cache,file.locking=off"
		    -device "virtio-blk-pci,drive=lun$p,serial=$LUN_IDENT,share-rw=on")
	done
	vm+=(-drive "if=none,id=carrier,file=$carrier,format=raw,readonly=on"
	    -device "virtio-blk-pci,drive=carrier")
	vm_log "QEMU ($fw firmware, $accel), LUN cache=$cache"
	;;
bhyve)
	kldstat -q -m vmm || kldload vmm || vm_die "cannot load vmm.ko"
	# bhyve reads raw images only, and writes to them: work on a copy.
	if [ "$fmt" = qcow2 ]; then
		vm_need qemu-img qemu-utils vm || vm_die "a qcow2 image needs qemu-img (FreeBSD package qemu-tools) for bhyve"
		qemu-img convert -O raw "$image" "$work/image.raw"
	else
		cp "$image" "$work/image.raw"
	fi
	sys=$work/image.raw
	fw=${VM_FIRMWARE:-bhyveload}
	bhyvectl --destroy --vm="$vmname" >/dev/null 2>&1 || true
	vm=(bhyve -c "${VM_CPUS:-2}" -m "${VM_MEM:-2048}M" -H -A -P
	    -s "0,hostbridge" -s "1,lpc"
	    -s "2,virtio-blk,$sys"
	    -s "3,virtio-blk,$lun,ser=$LUN_IDENT"
	    -s "4,virtio-blk,$lun,ser=$LUN_IDENT"
	    -s "5,virtio-blk,$carrier,ro"
	    -l "com1,stdio")
	if [ "$fw" = uefi ]; then
		uefi=${BHYVE_UEFI:-/usr/local/share/uefi-firmware/BHYVE_UEFI.fd}
		[ -f "$uefi" ] || vm_die "no $uefi (FreeBSD package bhyve-firmware)"
		vm+=(-l "bootrom,$uefi")
	else
		vm_log "bhyveload"
		bhyveload -m "${VM_MEM:-2048}M" -d "$sys" -e autoboot_delay=3 \
		    "$vmname" < /dev/null >> "$log" 2>&1 ||
		    vm_die "bhyveload failed (see $log)"
	fi
	vm+=("$vmname")
	vm_log "bhyve ($fw)"
	;;
esac

# Timeouts: emulation without KVM is much slower.
boot_timeout=${BOOT_TIMEOUT:-$((600 * slow))}
run_timeout=${RUN_TIMEOUT:-$((1800 * slow))}

# --------------------------------------------------------------- run it
if [ -n "$fake" ]; then
	vm_log "SELFTEST: a scripted fake console stands in for the VM; nothing is booted"
fi
vm_log "serial console log: $log"
echo_flag=()
[ "${VM_VERBOSE:-}" = 1 ] && echo_flag=(--echo)
set +e
python3 "$here/console.py" --log "$log" --boot-timeout "$boot_timeout" \
    --run-timeout "$run_timeout" "${echo_flag[@]}" -- "${vm[@]}"
crc=$?
set -e
why=""
case "$crc" in
0) ;;
10) why="the VM command could not be started" ;;
11) why="the VM stopped before the guest script finished" ;;
12) why="no login prompt on the serial console (is it enabled in the image?)" ;;
13) why="could not log in as root on the serial console" ;;
14) why="the guest script did not finish in $run_timeout s (hung?)" ;;
15) why="the guest kernel panicked (see the serial log)" ;;
16) why="the firmware found nothing to boot: not a bootable amd64 image?" ;;
*) why="the console driver exited with status $crc" ;;
esac
extra=()
if [ -n "$why" ]; then
	vm_log "$why"
	extra=(--extra "host:console  ->  failed: $why")
fi

# --------------------------------------------------------------- host check
# What the guest wrote through /dev/multipath/gmprsvm must be in the one
# backing file (see vm_lun_check in lib.sh).
host=$(vm_lun_check "$lun" "$nonce")

# --------------------------------------------------------------- verdict
set +e
summary=$(bash "$here/parse-results.sh" --expect "$EXPECT" --extra "$host" \
    "${extra[@]}" "$log")
prc=$?
set -e
# Keep the evidence of a failed run (unless it ran under the self-test).
if [ "$prc" != 0 ] && [ -z "$fake" ]; then
	keep_on_failure=1
fi
if [ -n "$fake" ]; then
	echo "FAKE GUEST (selftest): these lines test the harness, not a FreeBSD kernel"
	printf '%s\n' "$summary" | sed 's/^vm: /vm(fake guest): /'
else
	printf '%s\n' "$summary"
fi
exit "$prc"
