#!/usr/bin/env bash
# Audits a FreeBSD amd64 kernel module (.ko) built on Linux, with the LLVM
# binary tools, against the rules the kernel's linker and its runtime impose.
# Each rule prints PASS or FAIL with its name; the script exits non-zero when
# any rule is broken.
#
#   scripts/check-ko.sh [-q] [-V version] [-I include-dir]... [file.ko]
#
#   -I DIR   FreeBSD kernel include folder the module was built against
#            (repeatable). Default: the folders scripts/kbuild.sh recorded in
#            build/kmod/headers.env, else SYSDIR or the ziglang headers.
#   -q       print only failures and the verdict
#   -V N     the __FreeBSD_version the module was built for. Default: the
#            one scripts/kbuild.sh recorded in build/kmod/headers.env, else
#            that of SYSDIR or the ziglang headers (scripts/lib.sh).
#   file.ko  default: geom_multipath_rs/geom_multipath_rs.ko
#
# Rules (names as printed):
#   elf-rel-x86_64     ELF64, little-endian, ET_REL, EM_X86_64: the form of an
#                      amd64 .ko (sys/kern/link_elf_obj.c loads ET_REL only)
#   rust-runtime       no undefined Rust runtime symbol (__rust_*, __rdl_*,
#                      __rg_*, rust_begin_unwind, rust_eh_personality,
#                      _Unwind_*, mangled Rust names): the allocator shim and
#                      panic handler must be inside the module
#   undefined-declared every other undefined symbol is declared by the FreeBSD
#                      kernel headers (the KPI), each listed with its header
#   no-fpu-simd        no instruction touches x87, MMX, SSE/AVX (xmm, ymm, zmm)
#                      or AVX-512 mask registers: kernel code must not use the
#                      FPU outside fpu_kern_enter(9)
#   relocations        only relocation types the amd64 kernel linker applies
#   no-tls-ctors       no TLS (.tdata, .tbss, TLS symbols) and no constructor or
#                      destructor arrays (.init_array, .fini_array, .ctors,
#                      .dtors): the kernel runs neither
#   module-metadata    set_modmetadata_set and set_sysinit_set sections and the
#                      metadata of module g_multipath (DECLARE_GEOM_CLASS) and
#                      of its MODULE_VERSION
#   kernel-depend      the module's MDT_DEPEND on `kernel`, read from the
#                      module metadata as the kernel linker reads it
#                      (set_modmetadata_set -> struct mod_metadata ->
#                      struct mod_depend), is a non-empty range that holds
#                      the __FreeBSD_version the module was built for
#                      (kern_linker.c refuses the module otherwise)
#   class-name         the NUL-terminated class name "MULTIPATH" is present
#   stack-frames       no function's stack frame (the sum of its
#                      `sub $N, %rsp`, stack-probed ones included) exceeds
#                      GMR_MAX_FRAME bytes (default 1024), and none grows
#                      the stack by a run-time amount (alloca): the amd64
#                      kernel stack is 16 KB for a whole call chain; the
#                      largest frames are listed
#   io-no-sleep        the call graph (direct calls and tail calls, from the
#                      disassembly and its relocations) from the start and
#                      done trampolines (g_mp_start, g_mp_child_done) reaches
#                      neither gmr_rs_alloc_sleeping (the global allocator's
#                      M_WAITOK malloc), gmr_post_event_sleeping (the shim's
#                      g_post_event with M_WAITOK) nor a KPI function that sleeps
#                      (_sleep, _sx_xlock, _sx_slock, g_read_data,
#                      g_write_data, g_waitfor_event, kproc_create,
#                      kproc_exit, pause_sbt): GEOM runs start and done where
#                      sleeping is forbidden. Calls through function pointers
#                      (vtables, events) are not followed.
#   symbols-local      no symbol the module defines is global or weak (as
#                      bsd.kmod.mk makes them with EXPORT_SYMS=NO): the
#                      module's names stay out of the kernel's namespace
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

quiet=no
incs=()
kver=
while [ $# -gt 0 ]; do
	case "$1" in
	-q)
		quiet=yes
		shift
		;;
	-V)
		[ $# -ge 2 ] || gmr_die "check-ko: -V needs a __FreeBSD_version"
		kver=$2
		shift 2
		;;
	-I)
		[ $# -ge 2 ] || gmr_die "check-ko: -I needs a folder"
		incs+=("$2")
		shift 2
		;;
	-I*)
		incs+=("${1#-I}")
		shift
		;;
	-*) gmr_die "check-ko: unknown option $1" ;;
	*) break ;;
	esac
done
ko=${1:-geom_multipath_rs/geom_multipath_rs.ko}
[ -f "$ko" ] || gmr_die "check-ko: no $ko (run 'make' first)"

for t in "$GMR_READELF" "$GMR_OBJDUMP" "$GMR_NM"; do
	command -v "$t" >/dev/null 2>&1 || gmr_die "check-ko: $t missing (scripts/toolchain.sh check)"
done

if [ ${#incs[@]} -eq 0 ] || [ -z "$kver" ]; then
	GMR_FREEBSD_VERSION=
	if [ -f build/kmod/headers.env ]; then
		# shellcheck disable=SC1091 # generated by scripts/kbuild.sh
		. build/kmod/headers.env
	fi
	if [ -z "${GMR_KINC[*]:-}" ] || [ -z "$GMR_FREEBSD_VERSION" ]; then
		GMR_ROOT=$PWD gmr_kernel_headers
	fi
	[ ${#incs[@]} -gt 0 ] || incs=("${GMR_KINC[@]}")
	[ -n "$kver" ] || kver=$GMR_FREEBSD_VERSION
fi
[[ "$kver" =~ ^[0-9]+$ ]] || gmr_die "check-ko: __FreeBSD_version '$kver' is not a number"
for d in "${incs[@]}"; do
	[ -d "$d" ] || gmr_die "check-ko: include folder $d does not exist"
done

failed=()
nrules=0
pass() {
	nrules=$((nrules + 1))
	[ "$quiet" = yes ] || echo "check-ko: PASS $1: $2"
}
fail() {
	nrules=$((nrules + 1))
	failed+=("$1")
	echo "check-ko: FAIL $1: $2"
}
# Prints at most 10 lines of stdin, indented, and says how many were cut.
show() {
	awk '{ n++; if (n <= 10) print "    " $0 } END { if (n > 10) print "    ... and " n - 10 " more" }'
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---- elf-rel-x86_64 ------------------------------------------------------
if ! "$GMR_READELF" -h "$ko" >"$tmp/header" 2>"$tmp/err"; then
	fail elf-rel-x86_64 "not an ELF file: $(head -1 "$tmp/err")"
	echo "check-ko: $ko: 1 rule checked, cannot read the rest"
	exit 1
fi
field() { awk -F: -v k="$1" '$1 ~ "^ *" k "$" { sub(/^[ \t]+/, "", $2); print $2 }' "$tmp/header"; }
class=$(field Class)
data=$(field Data)
type=$(field Type)
machine=$(field Machine)
if [ "$class" = ELF64 ] && [[ "$data" == *"little endian"* ]] && [[ "$type" == REL* ]] && [[ "$machine" == *X86-64* ]]; then
	pass elf-rel-x86_64 "$class, $type, $machine"
else
	fail elf-rel-x86_64 "want ELF64 little-endian REL X86-64, got: $class, $data, $type, $machine"
fi

# ---- undefined symbols -----------------------------------------------------
"$GMR_NM" --no-llvm-bc -u "$ko" 2>/dev/null | awk '{ print $NF }' | sort -u >"$tmp/undef"
grep -E '^(__rust_|__rdl_|__rg_|__rustc|_ZN|_R[A-Za-z0-9_]|rust_begin_unwind$|rust_eh_personality$|_Unwind_)' \
	"$tmp/undef" >"$tmp/rust" || true
if [ -s "$tmp/rust" ]; then
	fail rust-runtime "$(wc -l <"$tmp/rust") Rust runtime symbol(s) left undefined:"
	show <"$tmp/rust"
else
	pass rust-runtime "no Rust runtime symbol undefined"
fi

# Where each undefined symbol is declared: one grep over the kernel headers
# for all of them, keeping the best declaration-like hit (the name followed by
# "(", "[", ";", "," or ")") per symbol: headers of sys/, geom/, vm/,
# machine/ and x86/ first, then other kernel folders. Files at the top of an
# include folder (string.h, stdlib.h: the ziglang tree also carries userland
# libc) do not count. Linker-set bounds (__start_set_X, __stop_set_X) are made
# by the SET_DECLARE macro of sys/linker_set.h and are not spelled out.
grep -vxFf "$tmp/rust" "$tmp/undef" >"$tmp/kpi" || true
: >"$tmp/decl"
linkerset=
if [ -s "$tmp/kpi" ]; then
	alt=$(paste -sd'|' "$tmp/kpi")
	printf '%s\n' "${incs[@]}" >"$tmp/incs"
	grep -rEn --include='*.h' "(^|[^A-Za-z0-9_])($alt)[[:space:]]*[][(;,)]" "${incs[@]}" 2>/dev/null |
		awk -v list="$tmp/kpi" -v incl="$tmp/incs" -v alt="$alt" '
			BEGIN {
				while ((getline s < list) > 0) want[s] = 1
				while ((getline d < incl) > 0) dirs[d] = 1
				re = "(^|[^A-Za-z0-9_])(" alt ")[[:space:]]*[][(;,)]"
			}
			{
				# file:line:text
				i = index($0, ":"); file = substr($0, 1, i - 1); rest = substr($0, i + 1)
				j = index(rest, ":"); line = substr(rest, 1, j - 1); text = substr(rest, j + 1)
				if (!match(text, re)) next
				m = substr(text, RSTART, RLENGTH)
				gsub(/^[^A-Za-z0-9_]/, "", m); sub(/[[:space:]]*[][(;,)]$/, "", m)
				if (!(m in want)) next
				rel = file
				for (d in dirs) if (index(file, d "/") == 1) { rel = substr(file, length(d) + 2); break }
				if (index(rel, "/") == 0) next
				# Prototypes and extern declarations start in column 0;
				# uses inside inline functions and macros are indented.
				rank = (rel ~ /^(sys|geom|vm|machine|x86)\//) ? 0 : 1
				if (text !~ /^[A-Za-z_]/) rank += 2
				if (!(m in best) || rank < best[m]) { best[m] = rank; where[m] = rel ":" line }
			}
			END { for (m in where) print m "\t" where[m] }' >"$tmp/decl"
	linkerset=$(grep -l '__start_set_' "${incs[@]/%//sys/linker_set.h}" 2>/dev/null | head -1)
fi
missing=()
echo "check-ko: undefined symbols ($(wc -l <"$tmp/kpi"), each bound by the kernel at kldload) and their declarations:" >"$tmp/list"
while read -r s; do
	[ -n "$s" ] || continue
	where=$(awk -F'\t' -v s="$s" '$1 == s { print $2; exit }' "$tmp/decl")
	if [ -z "$where" ] && [[ "$s" =~ ^__(start|stop)_set_ ]] && [ -n "$linkerset" ]; then
		where="sys/linker_set.h (SET_DECLARE)"
	fi
	# Sysctl parent nodes are named by SYSCTL_DECL (sys/sysctl.h), which no
	# header spells out per node. Only the kern.geom node is accepted: the
	# kernel defines it (sys/geom/geom_kern.c) and every GEOM class with
	# tunables hangs its own node under it, as the stock multipath class does.
	if [ -z "$where" ] && [ "$s" = sysctl___kern_geom ] &&
		grep -qs 'define[[:space:]]*SYSCTL_DECL' "${incs[@]/%//sys/sysctl.h}"; then
		where="sys/sysctl.h (SYSCTL_DECL(_kern_geom); node of sys/geom/geom_kern.c)"
	fi
	if [ -n "$where" ]; then
		printf '    %-28s %s\n' "$s" "$where" >>"$tmp/list"
	else
		printf '    %-28s NOT DECLARED in the kernel headers\n' "$s" >>"$tmp/list"
		missing+=("$s")
	fi
done <"$tmp/kpi"
if [ ${#missing[@]} -eq 0 ]; then
	[ "$quiet" = yes ] || cat "$tmp/list"
	pass undefined-declared "all $(wc -l <"$tmp/kpi") undefined symbols are declared by the FreeBSD kernel headers"
else
	cat "$tmp/list"
	fail undefined-declared "${#missing[@]} undefined symbol(s) no FreeBSD kernel header declares: ${missing[*]}"
fi

# ---- no-fpu-simd -----------------------------------------------------------
# Registers: x87 (%st), MMX (%mm), SSE/AVX (%xmm, %ymm, %zmm), AVX-512 masks
# (%k). Mnemonics: every x86 mnemonic starting with "f" is an x87/FPU-state
# one (fld, fstp, fnstcw, fxsave, ...); plus MXCSR, MMX state and XSAVE ones.
if ! "$GMR_OBJDUMP" -d --no-show-raw-insn -M att "$ko" >"$tmp/dis" 2>"$tmp/err"; then
	fail no-fpu-simd "cannot disassemble: $(head -1 "$tmp/err")"
else
	awk '
		/^[0-9a-f]+ <.*>:$/ { fn = $2; next }
		/^ *[0-9a-f]+:[ \t]/ {
			insn = $0; sub(/^ *[0-9a-f]+:[ \t]+/, "", insn)
			mn = insn; sub(/[ \t].*$/, "", mn)
			if (insn ~ /%(st|mm[0-7]|[xyz]mm[0-9]|k[0-7])([^a-z0-9]|$)/ ||
			    mn ~ /^(f[a-z0-9]+|ldmxcsr|stmxcsr|vldmxcsr|vstmxcsr|emms|vzeroupper|vzeroall|xsave.*|xrstor.*)$/)
				print fn " " insn
		}' "$tmp/dis" >"$tmp/fpu"
	if [ -s "$tmp/fpu" ]; then
		fail no-fpu-simd "$(wc -l <"$tmp/fpu") instruction(s) use x87/MMX/SSE/AVX state:"
		show <"$tmp/fpu"
	else
		pass no-fpu-simd "$(grep -cE '^ *[0-9a-f]+:[[:space:]]' "$tmp/dis") instructions, none uses x87/MMX/SSE/AVX registers"
	fi
fi

# ---- stack-frames -----------------------------------------------------------
# From the same disassembly: per function, the bytes its `sub $N, %rsp`
# instructions take (a frame over a page is probed: several subs). Pushes
# and the return address are not counted: a few words per frame.
max_frame=${GMR_MAX_FRAME:-1024}
if [ -s "$tmp/dis" ]; then
	awk -v lim="$max_frame" '
		/^[0-9a-f]+ <.*>:$/ { fn = $2; gsub(/^<|>:$/, "", fn); next }
		/^ *[0-9a-f]+:[ 	]/ && /sub[lq]?[ \t]+[^,]+, *%rsp([ \t]|$)/ {
			if (match($0, /\$(0x)?[0-9a-f]+,/)) {
				v = substr($0, RSTART + 1, RLENGTH - 2)
				n = (v ~ /^0x/) ? hex(substr(v, 3)) : v + 0
				frame[fn] += n
			} else dyn[fn] = 1
		}
		# A stack pointer computed at run time (alloca, VLAs); restoring it
		# from the frame pointer is an epilogue.
		/^ *[0-9a-f]+:[ \t]/ && /mov[q]?[ \t]+%r[a-z0-9]+, *%rsp([ \t]|$)/ && !/%rbp, *%rsp/ { dyn[fn] = 1 }
		function hex(h,   i, r) { r = 0; for (i = 1; i <= length(h); i++) r = r * 16 + index("0123456789abcdef", substr(h, i, 1)) - 1; return r }
		END {
			for (f in frame) printf "%d\t%s\n", frame[f], f > "/dev/stderr"
			for (f in dyn) printf "dynamic\t%s\n", f
			for (f in frame) if (frame[f] > lim) printf "%d\t%s\n", frame[f], f
		}' "$tmp/dis" 2>"$tmp/frames" | sort -rn >"$tmp/bigframes"
	sort -rn "$tmp/frames" -o "$tmp/frames"
	largest=$(head -3 "$tmp/frames" | awk -F'\t' '{ printf "%s%s %s", sep, $1, $2; sep = ", " }')
	if [ -s "$tmp/bigframes" ]; then
		fail stack-frames "$(wc -l <"$tmp/bigframes") function(s) with a stack frame over $max_frame bytes or of a run-time size:"
		awk -F'\t' '{ print $1 " bytes  " $2 }' "$tmp/bigframes" | show
	else
		pass stack-frames "$(wc -l <"$tmp/frames") frames, none over $max_frame bytes; largest: $largest"
	fi
fi

# ---- io-no-sleep -------------------------------------------------------------
if ! "$GMR_OBJDUMP" -d -r --no-show-raw-insn -M att "$ko" >"$tmp/disr" 2>"$tmp/err"; then
	fail io-no-sleep "cannot disassemble: $(head -1 "$tmp/err")"
else
	# Edges "caller callee": a call or jmp whose target is another function,
	# named by the relocation that follows it (PLT32/PC32 against a symbol
	# or a function's own .text.NAME section) or, when the linker already
	# resolved it inside one section, by objdump's <target> annotation.
	awk '
		/^[0-9a-f]+ <.*>:$/ { fn = $2; gsub(/^<|>:$/, "", fn); pending = 0; next }
		/^ *[0-9a-f]+:[ \t]/ {
			if (pending && direct != "" && direct != fn) print fn, direct
			pending = 0; direct = ""
			insn = $0; sub(/^ *[0-9a-f]+:[ \t]+/, "", insn)
			mn = insn; sub(/[ \t].*$/, "", mn)
			if (mn ~ /^(call|jmp)q?$/) {
				pending = 1
				if (match(insn, /<[^>+]+(\+0x[0-9a-f]+)?>/)) {
					direct = substr(insn, RSTART + 1, RLENGTH - 2)
					sub(/\+0x[0-9a-f]+$/, "", direct)
				}
			}
			next
		}
		pending && /R_X86_64_(PLT32|PC32)/ {
			t = $NF; sub(/[-+]0x[0-9a-f]+$/, "", t); sub(/^\.text(\.unlikely)?\./, "", t)
			if (t != fn) print fn, t
			pending = 0; direct = ""
		}' "$tmp/disr" | sort -u >"$tmp/edges"
	roots="g_mp_start g_mp_child_done"
	forbidden="gmr_rs_alloc_sleeping gmr_post_event_sleeping _sleep _sx_xlock _sx_slock g_read_data g_write_data g_waitfor_event kproc_create kproc_exit pause_sbt"
	if ! grep -qE '^(g_mp_start|g_mp_child_done) ' "$tmp/edges"; then
		pass io-no-sleep "no start/done trampoline (g_mp_start, g_mp_child_done) calls anything: nothing to check"
	else
		# Breadth-first from the roots; for each forbidden function reached,
		# the call chain that reaches it.
		awk -v roots="$roots" -v bad="$forbidden" '
			{ e[$1] = e[$1] " " $2 }
			END {
				n = split(roots, q, " ")
				for (i = 1; i <= n; i++) seen[q[i]] = 1
				h = 1
				while (h <= n) {
					f = q[h++]
					m = split(e[f], c, " ")
					for (j = 1; j <= m; j++)
						if (!(c[j] in seen)) { seen[c[j]] = 1; q[++n] = c[j]; par[c[j]] = f }
				}
				k = split(bad, b, " ")
				for (i = 1; i <= k; i++) if (b[i] in seen) {
					chain = b[i]; x = b[i]
					while (x in par) { x = par[x]; chain = x " -> " chain }
					print chain
				}
				print n > "/dev/stderr"
			}' "$tmp/edges" >"$tmp/sleepers" 2>"$tmp/nreach"
		if [ -s "$tmp/sleepers" ]; then
			fail io-no-sleep "start/done can reach $(wc -l <"$tmp/sleepers") function(s) that may sleep:"
			show <"$tmp/sleepers"
		else
			pass io-no-sleep "$(cat "$tmp/nreach") functions reachable from start/done by direct calls, none allocates with M_WAITOK or sleeps"
		fi
	fi
fi

# ---- relocations -------------------------------------------------------------
# The amd64 kernel linker applies relocations in elf_reloc_internal()
# (sys/amd64/amd64/elf_machdep.c): R_X86_64_NONE, 64, PC32, PLT32, 32S,
# GLOB_DAT, JMP_SLOT, RELATIVE and IRELATIVE. Anything else (GOTPCREL and its
# X forms, plain 32, COPY, TLS ones) makes kldload fail with "unexpected
# relocation type".
"$GMR_READELF" -r "$ko" 2>/dev/null | awk '
	/^Relocation section/ { sec = $3; gsub(/\047/, "", sec); next }
	$3 ~ /^R_/ { print $3 "\t" sec "\t" $5 }' >"$tmp/rel"
grep -vE $'^R_X86_64_(NONE|64|PC32|PLT32|32S|GLOB_DAT|JUMP_SLOT|RELATIVE|IRELATIVE)\t' "$tmp/rel" >"$tmp/badrel" || true
if [ -s "$tmp/badrel" ]; then
	fail relocations "$(wc -l <"$tmp/badrel") relocation(s) of types the amd64 kernel linker rejects ($(cut -f1 "$tmp/badrel" | sort | uniq -c | awk '{ printf "%s%s x%s", sep, $2, $1; sep = ", " }')):"
	awk -F'\t' '{ print $1 " in " $2 " against " $3 }' "$tmp/badrel" | show
else
	pass relocations "$(wc -l <"$tmp/rel") relocations, types: $(cut -f1 "$tmp/rel" | sort | uniq -c | awk '{ sub(/^R_X86_64_/, "", $2); printf "%s%s x%s", sep, $2, $1; sep = ", " }')"
fi

# ---- no-tls-ctors ------------------------------------------------------------
"$GMR_READELF" -S -W "$ko" 2>/dev/null | awk '
	/^ *\[ *[0-9]+\]/ {
		sub(/^ *\[ *[0-9]+\] */, "")
		name = $1
		if (name ~ /^\.(tdata|tbss|init_array|fini_array|preinit_array|ctors|dtors)([.]|$)/) print name
	}' >"$tmp/badsec"
"$GMR_READELF" -s -W "$ko" 2>/dev/null | awk '$4 == "TLS" { print "TLS symbol " $8 }' >>"$tmp/badsec"
if [ -s "$tmp/badsec" ]; then
	fail no-tls-ctors "thread-local data or constructor sections the kernel never sets up or runs:"
	show <"$tmp/badsec"
else
	pass no-tls-ctors "no .tdata/.tbss/TLS symbols, no .init_array/.fini_array/.ctors/.dtors"
fi

# ---- module-metadata -----------------------------------------------------------
"$GMR_READELF" -S -W "$ko" 2>/dev/null | awk '/^ *\[ *[0-9]+\]/ { sub(/^ *\[ *[0-9]+\] */, ""); print $1 }' >"$tmp/sections"
"$GMR_READELF" -s -W "$ko" 2>/dev/null | awk 'NF >= 8 { print $8 }' >"$tmp/symbols"
problems=()
grep -qx set_modmetadata_set "$tmp/sections" || problems+=("no set_modmetadata_set section")
grep -qx set_sysinit_set "$tmp/sections" || problems+=("no set_sysinit_set section (DECLARE_MODULE's SYSINIT)")
grep -qx _mod_metadata_md_g_multipath "$tmp/symbols" || problems+=("no module metadata for g_multipath (DECLARE_GEOM_CLASS)")
grep -qE '^_mod_metadata_[A-Za-z0-9_]+_version$' "$tmp/symbols" || problems+=("no MODULE_VERSION metadata")
if [ ${#problems[@]} -eq 0 ]; then
	pass module-metadata "set_modmetadata_set, set_sysinit_set, module g_multipath, $(grep -E '^_mod_metadata_[A-Za-z0-9_]+_version$' "$tmp/symbols" | head -1 | sed 's/^_mod_metadata_//')"
else
	fail module-metadata "$(
		IFS=';'
		echo "${problems[*]}"
	)"
fi

# ---- kernel-depend -------------------------------------------------------------
# What kern_linker.c does before it links a module: for every MDT_DEPEND
# entry of set_modmetadata_set, find a loaded module of that name whose
# version lies in [md_ver_minimum, md_ver_maximum]; `kernel` is the running
# kernel at its __FreeBSD_version. The entries are reached through the
# relocations of the relocatable object, as the kernel linker reaches them:
# slot of set_modmetadata_set -> struct mod_metadata {int md_version; int
# md_type; const void *md_data; const char *md_cval;} -> struct mod_depend
# {int md_ver_minimum, md_ver_preferred, md_ver_maximum;} and the name.
python3 - "$ko" >"$tmp/depends" 2>"$tmp/err" <<'PY'
import struct, sys

data = open(sys.argv[1], "rb").read()
if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
    sys.exit("not an ELF64 little-endian file")
shoff, = struct.unpack_from("<Q", data, 0x28)
shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
secs = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
strtab = secs[shstrndx]

def cstr(off):
    return data[off:data.index(b"\0", off)].decode("latin-1")

names = [cstr(strtab[4] + s[0]) for s in secs]
symtab = next((s for s in secs if s[1] == 2), None)
if symtab is None:
    sys.exit("no symbol table")
syms = [struct.unpack_from("<IBBHQQ", data, symtab[4] + i * 24) for i in range(symtab[5] // 24)]
# (target section, offset) -> (symbol index, type, addend)
rela = {}
for s in secs:
    if s[1] != 4:  # SHT_RELA
        continue
    for i in range(s[5] // 24):
        off, info, add = struct.unpack_from("<QQq", data, s[4] + i * 24)
        rela[(s[7], off)] = (info >> 32, info & 0xFFFFFFFF, add)

def pointer(sec, off):
    # The (section, offset) a pointer-sized field points to, or None.
    r = rela.get((sec, off))
    if r is None or r[1] != 1:  # R_X86_64_64
        return None
    name, info, other, shndx, value, size = syms[r[0]]
    if shndx == 0 or shndx >= 0xFF00:
        return None
    return (shndx, value + r[2])

def read(sec, off, n):
    if secs[sec][1] == 8:  # SHT_NOBITS
        return b"\0" * n
    return data[secs[sec][4] + off:secs[sec][4] + off + n]

if "set_modmetadata_set" not in names:
    sys.exit("no set_modmetadata_set section")
mset = names.index("set_modmetadata_set")
for slot in range(0, secs[mset][5], 8):
    md = pointer(mset, slot)
    if md is None:
        print("BAD slot %d of set_modmetadata_set points nowhere" % (slot // 8))
        continue
    mdver, mdtype = struct.unpack("<ii", read(md[0], md[1], 8))
    if mdtype != 1:  # MDT_DEPEND
        continue
    dep = pointer(md[0], md[1] + 8)
    name = pointer(md[0], md[1] + 16)
    if dep is None or name is None:
        print("BAD an MDT_DEPEND entry without its mod_depend or name")
        continue
    vmin, vpref, vmax = struct.unpack("<iii", read(dep[0], dep[1], 12))
    nm = read(name[0], name[1], 64).split(b"\0")[0].decode("latin-1")
    print("DEPEND %s %d %d %d" % (nm, vmin, vpref, vmax))
PY
problems=()
if [ -s "$tmp/err" ]; then
	problems+=("cannot read the module metadata: $(tail -1 "$tmp/err")")
fi
while read -r what name vmin vpref vmax; do
	if [ "$what" = BAD ]; then
		problems+=("$name $vmin $vpref $vmax")
		continue
	fi
	[ "$name" = kernel ] || continue
	if [ "$vmin" -gt "$vmax" ]; then
		problems+=("MDT_DEPEND on kernel is an empty range (min $vmin, preferred $vpref, max $vmax): every kernel refuses it (a round __FreeBSD_version gives MODULE_KERNEL_MAXVER = it - 1)")
	elif [ "$kver" -lt "$vmin" ] || [ "$kver" -gt "$vmax" ]; then
		problems+=("MDT_DEPEND on kernel [$vmin, $vmax] does not hold $kver, the __FreeBSD_version it was built for")
	else
		ok="kernel [$vmin, $vmax] (preferred $vpref) holds $kver, the __FreeBSD_version it was built for"
	fi
done <"$tmp/depends"
if ! grep -q '^DEPEND kernel ' "$tmp/depends" && [ ! -s "$tmp/err" ]; then
	problems+=("no MDT_DEPEND on kernel (DECLARE_MODULE makes one)")
fi
if [ ${#problems[@]} -eq 0 ]; then
	pass kernel-depend "$ok"
else
	fail kernel-depend "$(
		IFS=';'
		echo "${problems[*]}"
	)"
fi

# ---- class-name ----------------------------------------------------------------
found=no
while read -r sec; do
	"$GMR_READELF" -p "$sec" "$ko" >"$tmp/strings" 2>/dev/null
	if grep -qE '^ *\[ *[0-9a-f]+\] +MULTIPATH$' "$tmp/strings"; then
		found=$sec
		break
	fi
done < <(grep -E '^\.(rodata|data)' "$tmp/sections")
if [ "$found" != no ]; then
	pass class-name "\"MULTIPATH\" in $found"
else
	fail class-name "the class name string \"MULTIPATH\" is not in any .rodata/.data section"
fi

# ---- symbols-local ---------------------------------------------------------------
# readelf -s: Num: Value Size Type Bind Vis Ndx Name
"$GMR_READELF" -s -W "$ko" 2>/dev/null |
	awk '$1 ~ /^[0-9]+:$/ && $5 != "LOCAL" && $7 != "UND" && $8 != "" { print $5 " " $4 " " $8 }' >"$tmp/globals"
if [ -s "$tmp/globals" ]; then
	fail symbols-local "$(wc -l <"$tmp/globals") defined symbol(s) not local (localize them as bsd.kmod.mk does):"
	show <"$tmp/globals"
else
	pass symbols-local "every defined symbol is local; $(grep -c . "$tmp/undef") undefined ones bind at kldload"
fi

# ---- verdict ----------------------------------------------------------------------
if [ ${#failed[@]} -eq 0 ]; then
	echo "check-ko: $ko: all $nrules rules hold"
else
	echo "check-ko: $ko: ${#failed[@]} of $nrules rules broken: ${failed[*]}"
	exit 1
fi
