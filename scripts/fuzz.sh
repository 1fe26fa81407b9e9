#!/usr/bin/env bash
# `make fuzz`: the long randomized runs, kept out of `make test`.
#  - the label decoder on random and mutated sectors (proptest), and
#  - random, malformed gctl requests against the class on the simulator,
# each with many more cases than `make test` runs. FUZZ_CASES sets the
# label cases (default 200000); the gctl run gets a twentieth of that.
# A failure prints proptest's minimal failing input.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

cases=${FUZZ_CASES:-200000}
gmr_step "fuzz: label decoder, ${cases} cases per property"
PROPTEST_CASES="$cases" cargo test --release -p geom_multipath_rs --lib metadata::tests::prop_
gmr_step "fuzz: malformed gctl requests, $((cases / 20)) request sequences"
PROPTEST_CASES="$((cases / 20))" cargo test --release --test ctl_fuzz
