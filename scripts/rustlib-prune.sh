#!/bin/sh
# Removes from a Rust staticlib the compiler_builtins members that define only
# the C library's memcpy, memmove, memset, memcmp, bcmp or strlen (weak
# fallbacks for targets without a libc), so the module's calls to them stay
# undefined and bind to the kernel's own at kldload. POSIX sh: also runs on
# FreeBSD from geom_multipath_rs/Makefile.
#
#   scripts/rustlib-prune.sh LIB.a      (NM and AR may name the tools)
set -eu
lib=$1
nm=${NM:-nm}
ar=${AR:-ar}
# llvm-nm would read the LLVM bitcode rustc embeds for LTO, which an older
# LLVM cannot parse: ask for the object code's symbols only where supported.
if "$nm" --no-llvm-bc --version >/dev/null 2>&1; then
	syms=$("$nm" --no-llvm-bc -A -P --defined-only --extern-only "$lib" 2>/dev/null || true)
else
	syms=$("$nm" -A -P --defined-only --extern-only "$lib" 2>/dev/null || true)
fi
members=$(printf '%s\n' "$syms" | awk '
	NF >= 2 {
		m = $1; sub(/^.*\[/, "", m); sub(/\]:$/, "", m)
		if ($2 ~ /^(memcpy|memmove|memset|memcmp|bcmp|strlen)$/) mem[m] = 1; else other[m] = 1
	}
	END { for (m in mem) if (!(m in other)) print m }')
n=0
for m in $members; do
	"$ar" d "$lib" "$m"
	n=$((n + 1))
done
echo "rustlib-prune: $lib: the kernel's mem* functions will be used ($n compiler_builtins members dropped)"
