# geom_multipath_rs: the FreeBSD GEOM MULTIPATH class with a Rust core.
#
# Works with GNU make (Linux) and BSD make (FreeBSD): plain rules only; each
# recipe runs a script or tells the two hosts apart with uname.
#
#   make                 build geom_multipath_rs/geom_multipath_rs.ko
#                        (Linux: cross-build, installing the toolchain if
#                        missing; FreeBSD: bsd.kmod.mk in geom_multipath_rs/)
#   make test            every check: tests, clippy, fmt, docs, module audit,
#                        bindings, shellcheck
#   make check-ko        audit the built module (scripts/check-ko.sh)
#   make check-ko-selftest  show the audit rejects broken modules
#   make check-bindings  vendored bindings match shim.h
#   make bindings        regenerate sys-bindings/src/bindings.rs
#   make kstructs        regenerate sim/src/adapter/ko/kstructs/layouts.rs (FreeBSD layouts)
#   make demo | soak     the simulator's demo and soak run
#   make fuzz            each libFuzzer target for FUZZ_SECONDS (60), then the
#                        proptest campaigns (scripts/fuzz.sh)
#   make fuzz-long       each libFuzzer target until FUZZ_RUNS (10^7) executions;
#                        FUZZ_JOBS=N runs each on N cores (libFuzzer -fork=N);
#                        prints the time to FUZZ_RUNS after the first minute;
#                        FUZZ_INSTRUMENT=lean instruments our crates only
#   make bench           multipath against the pass-through baseline (ratios)
#   make bench-class     the class alone (start and done, no simulator): ns
#                        per bio, ratios and 2-thread scaling, memory
#   make scale           assemble 256/1,024/4,096 labelled LUNs x 4 paths in
#                        both scheduler modes: time and memory per LUN
#   make vm              boot FREEBSD_IMAGE under bhyve/QEMU and run the ATF
#                        suite there (tests/vm/; skipped without an image)
#   make load | unload   kldload/kldunload (FreeBSD only)
#   make clean
#
# SYSDIR=/path/to/freebsd/sys builds against a FreeBSD kernel source tree
# instead of the FreeBSD headers of the ziglang wheel.

.PHONY: all kmod test check-ko check-ko-selftest check-bindings bindings kstructs \
	toolchain demo soak fuzz fuzz-long bench bench-class scale vm load unload clean

all: kmod

kmod:
	@if [ "`uname -s`" = FreeBSD ]; then \
		$(MAKE) -C geom_multipath_rs; \
	else \
		SYSDIR="$(SYSDIR)" bash scripts/kbuild.sh; \
	fi

test:
	SYSDIR="$(SYSDIR)" bash scripts/test.sh

check-ko: kmod
	SYSDIR="$(SYSDIR)" bash scripts/check-ko.sh

check-ko-selftest:
	SYSDIR="$(SYSDIR)" bash scripts/check-ko-selftest.sh

check-bindings:
	bash scripts/bindings.sh --check

bindings:
	bash scripts/bindings.sh

kstructs:
	bash scripts/kstructs.sh

toolchain:
	SYSDIR="$(SYSDIR)" bash scripts/toolchain.sh

demo:
	cargo run --release -p geom-sim --bin mpsim -- demo

soak:
	cargo run --release -p geom-sim --bin mpsim -- soak

bench:
	cargo run --release -p geom-sim --bin mpsim -- bench

bench-class:
	cargo run --release -p geom-sim --bin mpsim -- bench-class

scale:
	cargo build --release -p geom-sim --bin mpsim
	nice -n 10 target/release/mpsim scale --luns 256,1024,4096 --paths 4 --both

fuzz:
	bash scripts/fuzz.sh short

fuzz-long:
	bash scripts/fuzz.sh long

vm: kmod
	@if [ -n "$(FREEBSD_IMAGE)" ]; then bash scripts/toolchain.sh vm; fi
	FREEBSD_IMAGE="$(FREEBSD_IMAGE)" bash tests/vm/run.sh

unload load:  # ("load" may not begin a line: GNU make directive)
	@if [ "`uname -s`" = FreeBSD ]; then \
		$(MAKE) -C geom_multipath_rs $@; \
	else \
		echo "make $@: kldload/kldunload need a FreeBSD kernel; this host runs `uname -s`." >&2; \
		echo "make $@: build here with 'make', then copy geom_multipath_rs/geom_multipath_rs.ko to FreeBSD (or build there) and run 'make $@' there." >&2; \
		exit 1; \
	fi

clean:
	@if [ "`uname -s`" = FreeBSD ]; then $(MAKE) -C geom_multipath_rs clean; fi
	rm -rf build geom_multipath_rs/geom_multipath_rs.ko fuzz/target fuzz/target-lean fuzz/work
	cargo clean
