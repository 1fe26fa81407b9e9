# shellcheck shell=bash
#
# Helpers of the dry runs (run-atf.sh, run-guest.sh): start mpsim-serve, the
# simulated FreeBSD machine that runs the multipath core (or, started with
# --ko, the shipped kernel module through its in-process loader), and put links named
# after the FreeBSD commands on PATH: run under those names, mpsim-serve is
# the client that sends its command line to the server. Sourced, never run.
#
#   MPSIM_SERVE   the server binary (default: built here with cargo, in the
#                 workspace's target/debug)
#   MPSIM_BREAK   passed to the server: breaks one behaviour on purpose (the
#                 self-test's negative cases)

dryrun_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SIM_COMMANDS="gmultipath geom mdconfig gnop diskinfo dd sysctl kldload kldunload kldstat dmesg dtrace mpsim"

# sim_build: make sure MPSIM_SERVE names an up-to-date server binary.
sim_build()
{
	if [ -n "${MPSIM_SERVE:-}" ]; then
		[ -x "$MPSIM_SERVE" ] || { echo "MPSIM_SERVE=$MPSIM_SERVE is not executable" >&2; return 2; }
		return 0
	fi
	local root
	root=$(cd "$dryrun_dir/../../.." && pwd)
	vm_need cargo cargo || return 2
	(cd "$root" && cargo build -q -p geom-sim --bin mpsim-serve) >&2 || {
		echo "cannot build mpsim-serve (cargo build -p geom-sim --bin mpsim-serve)" >&2
		return 2
	}
	MPSIM_SERVE=$root/target/debug/mpsim-serve
	export MPSIM_SERVE
}

# sim_start DIR [mpsim-serve options...]: start the server for a dry run
# whose work directory is DIR (DIR/dev holds the device nodes, DIR/bin the
# wrappers, DIR/sim.log the server's command log); exports MPSIM_SOCK and
# puts DIR/bin first on PATH.
sim_start()
{
	local dir=$1 c i
	shift
	mkdir -p "$dir/bin" "$dir/dev"
	MPSIM_SOCK=$dir/sim.sock
	export MPSIM_SOCK
	# The class is chosen here (--ko or not), never by GMR_CLASS.
	env -u GMR_CLASS -u GMR_KO \
	    "$MPSIM_SERVE" --socket "$MPSIM_SOCK" --dev "$dir/dev" --log "$dir/sim.log" "$@" \
	    > "$dir/serve.out" 2>&1 &
	SIM_PID=$!
	for c in $SIM_COMMANDS; do
		ln -sf "$MPSIM_SERVE" "$dir/bin/$c"
	done
	# Two commands are about the host's files, not GEOM.
	cat > "$dir/bin/sha256" <<'EOF'
#!/bin/sh
# sha256 [-q] FILE: the digest of a file of the host.
for f; do :; done
d=$(sha256sum < "$f") || exit 1
if [ "$1" = -q ]; then echo "${d%% *}"; else echo "SHA256 ($f) = ${d%% *}"; fi
EOF
	printf '#!/bin/sh\necho "simulated (mpsim-serve)"\n' > "$dir/bin/freebsd-version"
	chmod +x "$dir/bin/sha256" "$dir/bin/freebsd-version"
	PATH=$dir/bin:$PATH
	export PATH
	i=0
	while [ ! -S "$MPSIM_SOCK" ]; do
		if ! kill -0 "$SIM_PID" 2>/dev/null || [ "$i" -ge 200 ]; then
			echo "mpsim-serve did not start:" >&2
			cat "$dir/serve.out" >&2
			return 2
		fi
		sleep 0.05
		i=$((i + 1))
	done
}

# sim_state: what the machine still holds (md disks, gnop providers,
# multipath geoms), one line.
sim_state()
{
	mpsim mpsim-state
}

# sim_stop: tear the simulation down; prints the number of GEOM rule
# violations (leaks included) and lists them; status 1 if there were any.
sim_stop()
{
	local st=0
	mpsim mpsim-stop || st=$?
	wait "$SIM_PID" 2>/dev/null || true
	return "$st"
}
