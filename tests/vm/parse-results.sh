#!/usr/bin/env bash
# Turn a guest's serial console log into test counts.
#
#   parse-results.sh [--expect "ID ..."] [--extra "ID  ->  STATUS"]... LOG
#
# Reads the result lines that tests/vm/guest/guest.sh prints between
# ==GMPRS-VM-BEGIN== and ==GMPRS-VM-END==, in kyua's format:
#   <program>:<case>  ->  passed | failed: why | broken: why | skipped: why
#                         | expected_failure: why
# Console noise is tolerated: carriage returns, ANSI escapes, kernel lines.
# If a marker occurs more than once, the last BEGIN wins.
#
# Failures: failed, broken, every --expect ID without a result, a log with
# BEGIN but no END (the guest hung or was killed: truncated), and a log with
# no BEGIN at all (the guest never ran the suite).
# --extra adds a result obtained outside the log (the host's own checks).
#
# Prints one line per test, then, last, "vm: N passed, M failed, K skipped".
# Exit status: 0 when nothing failed and something passed, 1 otherwise,
# 2 on a usage error.
set -eu

usage()
{
	echo "usage: $0 [--expect \"ID ...\"] [--extra \"ID  ->  STATUS\"]... LOG" >&2
	exit 2
}

expect=""
extra=""
while [ "$#" -gt 0 ]; do
	case "$1" in
	--expect)
		[ "$#" -ge 2 ] || usage
		expect="$expect $2"
		shift 2
		;;
	--extra)
		[ "$#" -ge 2 ] || usage
		extra="$extra$2"$'\n'
		shift 2
		;;
	--)
		shift
		break
		;;
	-*)
		usage
		;;
	*)
		break
		;;
	esac
done
[ "$#" -eq 1 ] || usage
log=$1
if [ ! -r "$log" ]; then
	echo "parse-results: cannot read $log" >&2
	echo "vm: 0 passed, 1 failed, 0 skipped"
	exit 1
fi

# Clean the log: drop NULs and CRs, and ANSI/VT100 escape sequences.
# (The escape character is spelled $'\033' because BSD sed knows no \x1b.)
clean()
{
	esc=$'\033'
	tr -d '\000\r' < "$log" |
	    sed -e "s/${esc}\\[[0-9;?]*[A-Za-z]//g" -e "s/${esc}[()][A-Za-z0-9]//g" \
	    -e "s/${esc}[=>78DEHMc]//g"
}

{
	clean
	if [ -n "$extra" ]; then
		# Host-side results come after the guest's section.
		printf '==GMPRS-VM-EXTRA==\n%s' "$extra"
	fi
} | awk -v expect="$expect" '
function record(id, st, why) {
	if (!(id in status))
		order[++n] = id
	status[id] = st
	reason[id] = why
}
/==GMPRS-VM-BEGIN==/ {
	# A new run of the guest script: forget what an earlier one said.
	for (k in status) delete status[k]
	n = 0
	begun = 1; ended = 0; inside = 1
	next
}
/==GMPRS-VM-END==/ { if (inside) ended = 1; inside = 0; next }
/==GMPRS-VM-EXTRA==/ { inside = 1; extra = 1; next }
inside && /^[ \t]*[^ \t]+:[^ \t]+[ \t]+->[ \t]+[a-z_]+/ {
	line = $0
	sub(/^[ \t]+/, "", line)
	id = line
	sub(/[ \t].*/, "", id)
	rest = line
	sub(/^[^ \t]+[ \t]+->[ \t]+/, "", rest)
	st = rest
	sub(/[^a-z_].*/, "", st)
	why = substr(rest, length(st) + 1)
	sub(/^:[ \t]*/, "", why)
	sub(/[ \t]+\[[0-9.]+s\][ \t]*$/, "", why)
	record(id, st, why)
}
END {
	passed = 0; failed = 0; skipped = 0
	for (i = 1; i <= n; i++) {
		id = order[i]; st = status[id]; why = reason[id]
		if (st == "passed" || st == "expected_failure") {
			passed++; tag = "PASS"
		} else if (st == "skipped") {
			skipped++; tag = "SKIP"
		} else {
			failed++; tag = "FAIL"
		}
		printf "  %s %s%s\n", tag, id, (why != "" ? " (" st ": " why ")" : (tag == "FAIL" ? " (" st ")" : ""))
	}
	m = split(expect, want, /[ \t\n]+/)
	for (i = 1; i <= m; i++) {
		if (want[i] == "" || (want[i] in status))
			continue
		failed++
		printf "  FAIL %s (no result in the log)\n", want[i]
	}
	if (!begun) {
		failed++
		print "  FAIL guest (no ==GMPRS-VM-BEGIN== marker: the suite never started)"
	} else if (!ended) {
		failed++
		print "  FAIL guest (no ==GMPRS-VM-END== marker: log truncated, the guest hung or was stopped)"
	}
	printf "vm: %d passed, %d failed, %d skipped\n", passed, failed, skipped
	exit (failed == 0 && passed > 0) ? 0 : 1
}'
