#!/usr/bin/env bash
# Checks that `make test` installs everything in one place, once, up front:
#
#  1. every step of scripts/test.sh has a row in the table below (what it
#     needs), and everything listed is here now, after scripts/toolchain.sh;
#  2. toolchain.sh itself, with GMR_NO_INSTALL=1, finds nothing to install;
#  3. no file of the repository other than scripts/toolchain.sh contains an
#     install command (apt-get/apt install, dpkg -i, pip install, cargo
#     install, pkg install, rustup component add, ...), outside comments.
#
#   scripts/check-installs.sh              the checks above; exit 1 on any miss
#   scripts/check-installs.sh --scan DIR   only check 3, over every file of DIR
#   scripts/check-installs.sh --selftest   show that the checks can fail: a
#       hidden tool, a planted install command, an install attempted under
#       GMR_NO_INSTALL=1; exit 1 if one is not caught
#
# A new step in scripts/test.sh needs a row here: the check fails and names
# the step until it has one.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

# ------------------------------------------------------------------ the table
# "TITLE PREFIX|NEEDS": the first row whose prefix starts the step's title
# applies (so the longer prefixes come first). NEEDS, space-separated:
#   NAME        a command (on PATH, or in an sbin directory)
#   /PATH       a file or directory that must exist (globs allowed)
#   py:MODULE   a module python3 imports
needs_table() {
	local kbuild_rows="$GMR_CLANG $GMR_LD $GMR_AR $GMR_OBJCOPY $GMR_NM cargo $GMR_KERNEL_RUSTC $GMR_RUST_SRC"
	local headers=py:ziglang
	[ -z "${SYSDIR:-}" ] || headers=$SYSDIR/sys/param.h
	local vm_boot=""
	if [ -n "${FREEBSD_IMAGE:-}" ]; then
		vm_boot="qemu-system-x86_64 qemu-img xz /usr/share/OVMF/OVMF_CODE*.fd mkfs.vfat mcopy"
	fi
	# toolchain.sh installs with apt-get on Linux only (nothing elsewhere).
	local apt=""
	[ "$(uname -s)" != Linux ] || apt="dpkg-query apt-get"
	cat <<EOF
toolchain|bash $apt python3 cargo
check-installs self-test|bash git grep find ln mktemp $apt
check-installs|bash git grep
cargo test|cargo rustc
ko suite|bash cargo rustc mktemp sort awk sed tee
ko soak|cargo rustc
cargo clippy|cargo cargo-clippy clippy-driver
cargo fmt|cargo rustfmt
cargo doc|cargo rustdoc
kernel module build|$kbuild_rows $headers python3
check-ko-selftest|$GMR_CLANG $GMR_LD $GMR_READELF $GMR_OBJDUMP $GMR_NM $headers python3
check-ko:|$GMR_READELF $GMR_OBJDUMP $GMR_NM $headers python3
check-bindings|$GMR_BINDGEN $GMR_CLANG $GMR_LIBCLANG_DIR/libclang*.so* diff
check-kstructs|$GMR_BINDGEN $GMR_CLANG $GMR_LIBCLANG_DIR/libclang*.so* $headers python3 diff
shellcheck|shellcheck
tests/vm self-test|bash sh python3 shellcheck atf-sh kyua mkfs.vfat fsck.vfat mcopy mdir mtype timeout od dd cargo sha256sum
tests/vm/run.sh|bash $vm_boot
EOF
}

# The step titles of scripts/test.sh, one a line.
step_titles() {
	sed -n 's/^step "\([^"]*\)".*/\1/p' scripts/test.sh
}

have_cmd() {
	command -v "$1" >/dev/null 2>&1 && return 0
	local d
	for d in /usr/sbin /sbin /usr/local/sbin; do
		[ -x "$d/$1" ] && return 0
	done
	return 1
}

# have ITEM: is one need of the table met?
have() {
	local item=$1 f
	case "$item" in
	py:*)
		python3 -c "import ${item#py:}" >/dev/null 2>&1
		;;
	/*)
		# shellcheck disable=SC2086 # the item may be a glob
		for f in $item; do
			[ -e "$f" ] && return 0
		done
		return 1
		;;
	*)
		have_cmd "$item"
		;;
	esac
}

check_needs() {
	local bad=0 title row prefix needs item missing
	local -a rows
	mapfile -t rows < <(needs_table)
	while IFS= read -r title; do
		needs="" prefix=""
		for row in "${rows[@]}"; do
			prefix=${row%%|*}
			if [ "${title#"$prefix"}" != "$title" ]; then
				needs=${row#*|}
				break
			fi
			prefix=""
		done
		if [ -z "$prefix" ]; then
			echo "MISSING ROW: step '$title' of scripts/test.sh has no row in the table of $0"
			bad=1
			continue
		fi
		missing=""
		for item in $needs; do
			have "$item" || missing="$missing $item"
		done
		if [ -n "$missing" ]; then
			echo "MISSING: step '$title' needs:$missing (scripts/toolchain.sh installs it)"
			bad=1
		else
			echo "ok: $title: ${needs:-(nothing)}"
		fi
	done < <(step_titles)
	[ "$(step_titles | wc -l)" -gt 0 ] || {
		echo "MISSING: no step found in scripts/test.sh"
		bad=1
	}
	return "$bad"
}

# Install commands, as extended regular expressions. Written so that they do
# not match their own text.
install_patterns() {
	cat <<'EOF'
(^|[^[:alnum:]_-])apt(-get)?([[:space:]]+-[^[:space:]]+)*[[:space:]]+(install|build-dep)([[:space:]]|$)
(^|[^[:alnum:]_-])dpkg([[:space:]]+-[^[:space:]]+)*[[:space:]]+(-i|--install)([[:space:]]|$)
(^|[^[:alnum:]_-])pip3?([[:space:]]+-[^[:space:]]+)*[[:space:]]+install([[:space:]]|$)
(^|[^[:alnum:]_-])cargo([[:space:]]+[-+][^[:space:]]+)*[[:space:]]+(install|binstall)([[:space:]]|$)
(^|[^[:alnum:]_-])pkg([[:space:]]+-[^[:space:]]+)*[[:space:]]+install([[:space:]]|$)
(^|[^[:alnum:]_-])rustup[[:space:]]+(component|target|toolchain)[[:space:]]+(add|install)([[:space:]]|$)
(^|[^[:alnum:]_-])(npm|gem|go|snap|uv)[[:space:]]+(pip[[:space:]]+)?install([[:space:]]|$)
Command::new\("(apt|apt-get|dpkg|pip|pip3)"\)
EOF
}

# scan_installs FILE...: print FILE:LINE:TEXT of every install command
# outside a comment line.
scan_installs() {
	local pats
	pats=$(mktemp "${TMPDIR:-/tmp}/gmr-install-pats.XXXXXX")
	install_patterns >"$pats"
	grep -I -n -E -H -f "$pats" "$@" 2>/dev/null |
		grep -v -E '^[^:]+:[0-9]+:[[:space:]]*(#|//|\*|/\*)'
	rm -f "$pats"
}

# The repository's files (committed or not, not ignored), less the one
# script allowed to install and the documentation, which may name commands.
repo_files() {
	{
		git ls-files
		git ls-files --others --exclude-standard
	} | sort -u | while IFS= read -r f; do
		case "$f" in
		scripts/toolchain.sh | *.md | Cargo.lock) ;;
		*) [ -f "$f" ] && echo "$f" ;;
		esac
	done
}

check_no_installs() {
	local -a files
	local hits
	if [ -n "${1:-}" ]; then
		mapfile -t files < <(find "$1" -type f | sort)
	else
		mapfile -t files < <(repo_files)
	fi
	[ ${#files[@]} -gt 0 ] || {
		echo "MISSING: no files to scan"
		return 1
	}
	hits=$(scan_installs "${files[@]}")
	if [ -n "$hits" ]; then
		echo "INSTALLS OUTSIDE scripts/toolchain.sh (move them there):"
		printf '%s\n' "$hits" | sed 's/^/    /'
		return 1
	fi
	echo "ok: no install command in ${#files[@]} files other than scripts/toolchain.sh"
}

check_toolchain() {
	if [ "$(uname -s)" != Linux ]; then
		echo "ok: not Linux, toolchain.sh installs nothing here"
		return 0
	fi
	local out
	if out=$(GMR_NO_INSTALL=1 bash scripts/toolchain.sh all 2>&1); then
		echo "ok: $out"
	else
		echo "MISSING: scripts/toolchain.sh all would install:"
		printf '%s\n' "$out" | sed 's/^/    /'
		return 1
	fi
}

# ------------------------------------------------------------------ self-test
selftest() {
	local tmp failed=0 st d f hide=kyua
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/gmr-check-installs.XXXXXX")
	# shellcheck disable=SC2064 # expand now
	trap "rm -rf '$tmp'" EXIT
	verdict() { # verdict OK|FAIL TEXT
		if [ "$1" = OK ]; then echo "ok - $2"; else
			echo "not ok - $2"
			failed=1
		fi
	}

	# A PATH made of links to every command of this one.
	mkdir "$tmp/bin"
	local -a dirs
	IFS=: read -r -a dirs <<<"$PATH"
	for d in "${dirs[@]}"; do
		[ -d "$d" ] || continue
		for f in "$d"/*; do
			if [ ! -x "$f" ] || [ -d "$f" ]; then continue; fi
			[ -e "$tmp/bin/${f##*/}" ] || ln -s "$f" "$tmp/bin/${f##*/}"
		done
	done
	st=0
	PATH=$tmp/bin bash "$0" >"$tmp/same.out" 2>&1 || st=$?
	if [ "$st" = 0 ]; then
		verdict OK "the check passes with PATH rebuilt from links"
	else
		sed 's/^/    | /' "$tmp/same.out"
		verdict FAIL "the check fails with PATH rebuilt from links: cannot test the hiding"
	fi
	# Now hide one tool from PATH only: dpkg still says it is installed, so
	# only the table can notice.
	rm -f "$tmp/bin/$hide"
	st=0
	PATH=$tmp/bin bash "$0" >"$tmp/hidden.out" 2>&1 || st=$?
	if [ "$st" = 1 ] && grep -q "^MISSING: step 'tests/vm self-test.*needs:.* $hide" "$tmp/hidden.out"; then
		verdict OK "with $hide hidden the check fails and names it for the tests/vm self-test step"
	else
		sed 's/^/    | /' "$tmp/hidden.out"
		verdict FAIL "with $hide hidden the check did not fail naming it (exit $st)"
	fi

	# A step without a row.
	mkdir -p "$tmp/norow/scripts"
	cp scripts/check-installs.sh scripts/lib.sh scripts/toolchain.sh "$tmp/norow/scripts/"
	{
		cat scripts/test.sh
		echo 'step "a brand-new check with no row" true'
	} >"$tmp/norow/scripts/test.sh"
	st=0
	(cd "$tmp/norow" && git init -q . && bash scripts/check-installs.sh) >"$tmp/norow.out" 2>&1 || st=$?
	if [ "$st" = 1 ] && grep -q "^MISSING ROW: step 'a brand-new check with no row'" "$tmp/norow.out"; then
		verdict OK "a step of test.sh with no row in the table fails the check"
	else
		sed 's/^/    | /' "$tmp/norow.out"
		verdict FAIL "a step with no row passed the check (exit $st)"
	fi

	# Planted install commands; comments and prose do not count. (Spelt
	# through $i and $q, so that this file does not hold them.)
	local i=install q='"'
	mkdir "$tmp/plant"
	cat >"$tmp/plant/a.sh" <<EOF
# apt-get $i this-is-a-comment
echo "the tools are installed by scripts/toolchain.sh"
DEBIAN_FRONTEND=noninteractive apt-get -y -q $i atf-sh
	python3 -m pip $i --quiet ziglang
cargo $i --locked bindgen-cli
EOF
	printf 'fn f() { std::process::Command::new(%sapt-get%s); }\n// cargo %s x\n' "$q" "$q" "$i" >"$tmp/plant/b.rs"
	printf 'echo nothing to see\n' >"$tmp/plant/c.sh"
	st=0
	bash "$0" --scan "$tmp/plant" >"$tmp/plant.out" 2>&1 || st=$?
	if [ "$st" = 1 ] && [ "$(grep -c '^    ' "$tmp/plant.out")" = 4 ] &&
		grep -q 'a.sh:3:' "$tmp/plant.out" && grep -q 'a.sh:4:' "$tmp/plant.out" &&
		grep -q 'a.sh:5:' "$tmp/plant.out" && grep -q 'b.rs:1:' "$tmp/plant.out"; then
		verdict OK "planted apt-get, pip and cargo installs and an apt-get Command are found; comments are not"
	else
		sed 's/^/    | /' "$tmp/plant.out"
		verdict FAIL "planted install commands: want 4 hits (a.sh:3,4,5, b.rs:1), exit 1 (exit $st)"
	fi
	rm "$tmp/plant/a.sh" "$tmp/plant/b.rs"
	st=0
	bash "$0" --scan "$tmp/plant" >"$tmp/clean.out" 2>&1 || st=$?
	if [ "$st" = 0 ]; then
		verdict OK "a tree without install commands passes the scan"
	else
		sed 's/^/    | /' "$tmp/clean.out"
		verdict FAIL "a clean tree failed the scan (exit $st)"
	fi

	# toolchain.sh under GMR_NO_INSTALL=1, with a package that dpkg says is
	# missing: it must fail and never run apt-get (a recording stand-in).
	if [ "$(uname -s)" = Linux ] && command -v dpkg-query >/dev/null 2>&1; then
		mkdir "$tmp/fake"
		cat >"$tmp/fake/dpkg-query" <<EOF
#!/bin/sh
for a; do last=\$a; done
[ "\$last" = $hide ] && { printf 'un '; exit 0; }
exec $(command -v dpkg-query) "\$@"
EOF
		printf '#!/bin/sh\necho "apt-get $*" >> "%s"\n' "$tmp/apt.calls" >"$tmp/fake/apt-get"
		printf '#!/bin/sh\nexec "$@"\n' >"$tmp/fake/sudo"
		chmod +x "$tmp/fake/dpkg-query" "$tmp/fake/apt-get" "$tmp/fake/sudo"
		st=0
		PATH=$tmp/fake:$PATH GMR_NO_INSTALL=1 bash scripts/toolchain.sh vmtest >"$tmp/tc.out" 2>&1 || st=$?
		if [ "$st" != 0 ] && [ ! -e "$tmp/apt.calls" ] &&
			grep -q "GMR_NO_INSTALL=1 forbids installing here: Debian packages: $hide" "$tmp/tc.out"; then
			verdict OK "toolchain.sh with GMR_NO_INSTALL=1 and $hide missing: fails, runs no apt-get"
		else
			sed 's/^/    | /' "$tmp/tc.out"
			verdict FAIL "toolchain.sh with GMR_NO_INSTALL=1 and $hide missing (exit $st; apt-get calls: $(cat "$tmp/apt.calls" 2>/dev/null))"
		fi
		st=0
		PATH=$tmp/fake:$PATH GMR_NO_INSTALL='' bash scripts/toolchain.sh vmtest >"$tmp/tc2.out" 2>&1 || st=$?
		if [ "$st" = 0 ] && grep -q "install.* $hide" "$tmp/apt.calls" 2>/dev/null; then
			verdict OK "without GMR_NO_INSTALL the same run would install $hide (stand-in apt-get called)"
		else
			sed 's/^/    | /' "$tmp/tc2.out"
			verdict FAIL "without GMR_NO_INSTALL toolchain.sh did not try to install $hide (exit $st)"
		fi
	fi

	# The VM harness under GMR_NO_INSTALL=1 with a tool missing: it names
	# the tool and the toolchain component, and fails.
	st=0
	PATH=$tmp/bin GMR_NO_INSTALL=1 bash tests/vm/dryrun/run-atf.sh --kyua >"$tmp/vm.out" 2>&1 || st=$?
	if [ "$st" = 2 ] && grep -q "vm: error: $hide is missing (Debian package $hide): run scripts/toolchain.sh vmtest" "$tmp/vm.out"; then
		verdict OK "tests/vm with $hide missing: fails (exit 2) and names scripts/toolchain.sh vmtest"
	else
		sed 's/^/    | /' "$tmp/vm.out"
		verdict FAIL "tests/vm with $hide missing (exit $st)"
	fi
	[ "$failed" = 0 ] && echo "check-installs self-test: every case caught"
	return "$failed"
}

case "${1:-}" in
--selftest)
	selftest
	exit $?
	;;
--scan)
	[ -d "${2:-}" ] || gmr_die "usage: $0 --scan DIR"
	check_no_installs "$2"
	exit $?
	;;
"") ;;
*) gmr_die "usage: $0 [--selftest | --scan DIR]" ;;
esac

rc=0
gmr_step "check-installs: what each step of scripts/test.sh needs"
check_needs || rc=1
gmr_step "check-installs: scripts/toolchain.sh has nothing left to install"
check_toolchain || rc=1
gmr_step "check-installs: nothing but scripts/toolchain.sh installs"
check_no_installs || rc=1
exit "$rc"
