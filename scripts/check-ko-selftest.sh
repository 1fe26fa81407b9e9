#!/usr/bin/env bash
# Self-test of scripts/check-ko.sh: builds, with clang and the same kernel
# headers and flags as the module, a small valid module and broken variants of
# it, and asserts that check-ko accepts the valid one and rejects each broken
# one with exactly the rule(s) it breaks.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

scripts/toolchain.sh check >/dev/null
if [ -f build/kmod/headers.env ]; then
	# shellcheck disable=SC1091 # written by scripts/kbuild.sh
	. build/kmod/headers.env
fi
GMR_ROOT=$PWD gmr_kernel_headers
work=$PWD/build/check-ko-selftest
rm -rf "$work"
mkdir -p "$work"
gmr_kernel_cflags "$work"
incargs=()
for d in "${GMR_KINC[@]}"; do incargs+=(-I "$d"); done

cc() { # cc OUT SRC [extra clang flags...]
	local out=$1 src=$2
	shift 2
	"$GMR_CLANG" "${GMR_KCFLAGS[@]}" "$@" -c "$src" -o "$out"
}

# A module of the right form: the MULTIPATH class, module g_multipath, its
# version, and one KPI call.
cat >"$work/base.c" <<'C'
#include <sys/param.h>
#include <sys/systm.h>
#include <sys/kernel.h>
#include <sys/module.h>
#include <sys/lock.h>
#include <sys/malloc.h>
#include <sys/sx.h>
#include <geom/geom.h>

static struct g_class selftest_class = {
	.name = "MULTIPATH",
	.version = G_VERSION,
};
DECLARE_GEOM_CLASS(selftest_class, g_multipath);
MODULE_VERSION(geom_multipath, 0);

void selftest_hello(void);
void
selftest_hello(void)
{
	printf("hello\n");
}
C
cc "$work/base.o" "$work/base.c"

# The valid module built for a round __FreeBSD_version: its MDT_DEPEND on
# kernel is [1500000, 1499999], empty (kernel-depend must fail). check-ko is
# told the module was built for that version, so the empty range alone fails.
cc "$work/roundver.o" "$work/base.c" -U__FreeBSD_version -D__FreeBSD_version=$((GMR_FREEBSD_MAJOR * 100000))

# The module with a start method whose call chain allocates with M_WAITOK
# (io-no-sleep must fail), and the same start without it (accepted).
cat >"$work/iosleep.c" <<'C'
#include <sys/param.h>
#include <sys/systm.h>
#include <sys/kernel.h>
#include <sys/module.h>
#include <sys/lock.h>
#include <sys/malloc.h>
#include <sys/sx.h>
#include <sys/bio.h>
#include <geom/geom.h>

void *gmr_rs_alloc_sleeping(size_t size);
__attribute__((noinline)) void *
gmr_rs_alloc_sleeping(size_t size)
{
	return (malloc(size, M_TEMP, M_WAITOK));
}

__attribute__((noinline)) static void
selftest_note(struct bio *bp)
{
#ifdef SELFTEST_SLEEPS
	bp->bio_caller2 = gmr_rs_alloc_sleeping(16);
#else
	printf("%p\n", bp);
#endif
}

static void
g_mp_start(struct bio *bp)
{
	selftest_note(bp);
	g_io_deliver(bp, 0);
}

static struct g_class selftest_class = {
	.name = "MULTIPATH",
	.version = G_VERSION,
	.start = g_mp_start,
};
DECLARE_GEOM_CLASS(selftest_class, g_multipath);
MODULE_VERSION(geom_multipath, 0);
C
cc "$work/iosleep.o" "$work/iosleep.c" -DSELFTEST_SLEEPS
cc "$work/iogood.o" "$work/iosleep.c"

# The same class under another name (class-name must fail).
sed 's/"MULTIPATH"/"MULTIPATHS"/' "$work/base.c" >"$work/othername.c"
cc "$work/othername.o" "$work/othername.c"

# No DECLARE_GEOM_CLASS / MODULE_VERSION (module-metadata must fail).
cat >"$work/nometa.c" <<'C'
#include <sys/param.h>
#include <sys/systm.h>
const char *selftest_name = "MULTIPATH";
void selftest_hello(void);
void
selftest_hello(void)
{
	printf("%s\n", selftest_name);
}
C
cc "$work/nometa.o" "$work/nometa.c"

# Broken pieces, each linked into the valid module.
cat >"$work/sse.c" <<'C'
double selftest_scale(double a, double b);
double
selftest_scale(double a, double b)
{
	return (a * b);
}
C
# Built as userland code would be: SSE allowed.
cc "$work/sse.o" "$work/sse.c" -mno-soft-float -msse2

cat >"$work/x87.c" <<'C'
long double selftest_scale(long double a, long double b);
long double
selftest_scale(long double a, long double b)
{
	return (a * b);
}
C
cc "$work/x87.o" "$work/x87.c" -mno-soft-float

cat >"$work/gotpcrel.c" <<'C'
#include <sys/param.h>
#include <sys/systm.h>
#include <sys/lock.h>
#include <sys/malloc.h>
#include <sys/sx.h>
#include <geom/geom.h>
void *selftest_lock(void);
void *
selftest_lock(void)
{
	void *p;

	/* What PIC code does to reach a kernel symbol: through the GOT. */
	__asm__("movq topology_lock@GOTPCREL(%%rip), %0" : "=r"(p));
	return (p);
}
C
cc "$work/gotpcrel.o" "$work/gotpcrel.c"

cat >"$work/rustalloc.c" <<'C'
#include <sys/types.h>
void *__rust_alloc(size_t size, size_t align);
void *selftest_alloc(void);
void *
selftest_alloc(void)
{
	return (__rust_alloc(64, 8));
}
C
cc "$work/rustalloc.o" "$work/rustalloc.c"

cat >"$work/undeclared.c" <<'C'
int linux_only_helper(int);
int selftest_call(void);
int
selftest_call(void)
{
	return (linux_only_helper(1));
}
C
cc "$work/undeclared.o" "$work/undeclared.c"

cat >"$work/ctor.c" <<'C'
#include <sys/param.h>
#include <sys/systm.h>
__attribute__((constructor)) static void
selftest_ctor(void)
{
	printf("constructed\n");
}
C
cc "$work/ctor.o" "$work/ctor.c"

cat >"$work/bigframe.c" <<'C'
#include <sys/param.h>
#include <sys/systm.h>
void selftest_big(int i);
void
selftest_big(int i)
{
	volatile char buf[2048];

	buf[i & 2047] = 1;
	printf("%d\n", buf[(i + 1) & 2047]);
}
C
cc "$work/bigframe.o" "$work/bigframe.c"

cat >"$work/alloca.c" <<'C'
#include <sys/param.h>
#include <sys/systm.h>
void selftest_alloca(int n);
void
selftest_alloca(int n)
{
	volatile char *buf = __builtin_alloca(n);

	buf[0] = 1;
	printf("%d\n", buf[0]);
}
C
cc "$work/alloca.o" "$work/alloca.c"

cat >"$work/tls.c" <<'C'
_Thread_local int selftest_tls;
int selftest_get_tls(void);
int
selftest_get_tls(void)
{
	return (selftest_tls);
}
C
cc "$work/tls.o" "$work/tls.c"

link_raw() { # link_raw OUT OBJ...: ld -r only, the module's symbols stay global
	local out=$1
	shift
	"$GMR_LD" -r -m elf_x86_64 -o "$out" "$@"
}
link() { # link OUT OBJ...: then every defined symbol made local, as kbuild.sh does
	local out=$1
	shift
	link_raw "$out.raw" "$@"
	"$GMR_NM" -g --defined-only "$out.raw" | awk '{ print $NF }' >"$out.syms"
	"$GMR_OBJCOPY" --localize-symbols="$out.syms" "$out.raw" "$out"
}
link "$work/good.ko" "$work/base.o"
link "$work/sse.ko" "$work/base.o" "$work/sse.o"
link "$work/x87.ko" "$work/base.o" "$work/x87.o"
link "$work/gotpcrel.ko" "$work/base.o" "$work/gotpcrel.o"
link "$work/rustalloc.ko" "$work/base.o" "$work/rustalloc.o"
link "$work/undeclared.ko" "$work/base.o" "$work/undeclared.o"
link "$work/ctor.ko" "$work/base.o" "$work/ctor.o"
link "$work/tls.ko" "$work/base.o" "$work/tls.o"
link "$work/bigframe.ko" "$work/base.o" "$work/bigframe.o"
link "$work/alloca.ko" "$work/base.o" "$work/alloca.o"
link "$work/nometa.ko" "$work/nometa.o"
link "$work/othername.ko" "$work/othername.o"
link "$work/roundver.ko" "$work/roundver.o"
link "$work/iosleep.ko" "$work/iosleep.o"
link "$work/iogood.ko" "$work/iogood.o"
# The valid module without the localizing step (symbols-local must fail).
link_raw "$work/global.ko" "$work/base.o"
# The valid module, said to be built for a version below its range.
cp "$work/good.ko" "$work/wrongver.ko"
# The valid module with its ELF type (e_type, offset 16) set to ET_EXEC.
cp "$work/good.ko" "$work/notrel.ko"
printf '\002' | dd of="$work/notrel.ko" bs=1 seek=16 conv=notrunc status=none

pass=0
fail=0
# expect CASE "rule rule..." [__FreeBSD_version built for]  ("" = must pass every rule)
expect() {
	local name=$1 want=$2 ver=${3:-$GMR_FREEBSD_VERSION} got rc
	set +e
	scripts/check-ko.sh -q -V "$ver" "${incargs[@]}" "$work/$name.ko" >"$work/$name.out" 2>&1
	rc=$?
	set -e
	got=$(sed -n 's/^check-ko: FAIL \([a-z0-9_-]*\):.*/\1/p' "$work/$name.out" | sort | paste -sd' ' -)
	want=$(printf '%s\n' "$want" | tr ' ' '\n' | sed '/^$/d' | sort | paste -sd' ' -)
	if [ -z "$want" ] && [ "$rc" -eq 0 ] && [ -z "$got" ]; then
		echo "check-ko-selftest: ok   $name: accepted"
		pass=$((pass + 1))
	elif [ -n "$want" ] && [ "$rc" -ne 0 ] && [ "$got" = "$want" ]; then
		echo "check-ko-selftest: ok   $name: rejected by $got"
		pass=$((pass + 1))
	else
		echo "check-ko-selftest: FAIL $name: want rejection by [${want:-none}], got [${got:-none}] (exit $rc):"
		sed 's/^/    /' "$work/$name.out"
		fail=$((fail + 1))
	fi
}

expect good ""
expect sse "no-fpu-simd"
expect x87 "no-fpu-simd"
expect gotpcrel "relocations"
expect rustalloc "rust-runtime"
expect undeclared "undefined-declared"
expect ctor "no-tls-ctors"
expect tls "no-tls-ctors relocations"
expect bigframe "stack-frames"
expect alloca "stack-frames"
expect nometa "module-metadata kernel-depend"
expect roundver "kernel-depend" $((GMR_FREEBSD_MAJOR * 100000))
expect wrongver "kernel-depend" $((GMR_FREEBSD_VERSION - 1))
expect othername "class-name"
expect global "symbols-local"
expect iosleep "io-no-sleep"
expect iogood ""
expect notrel "elf-rel-x86_64"

echo "check-ko-selftest: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
