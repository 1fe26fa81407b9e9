//! A kernel thread still in module code at kldunload: caught and reported
//! by the emulated kernel (a "destroy" violation; the module is left mapped
//! for the thread), not a crash of the test process. Small modules, built
//! as the real one is (clang-14, FreeBSD 15 headers, `ld -r`), start a
//! kproc at MOD_LOAD and stop it at MOD_UNLOAD in three ways:
//!
//! - waiting on the proc, which `kproc_exit` wakes (right: the thread is
//!   in kernel text when MOD_UNLOAD returns);
//! - waiting on a flag the thread sets, after which it still runs module
//!   code before `kproc_exit` (the race issue 9 found in the worker);
//! - not waiting at all, the thread never exiting.
//!
//! The tools come from `scripts/toolchain.sh` (which `make test` runs).

#[path = "../../kld/tests/common/mod.rs"]
mod common;

use geom_sim::ko::{self, KoOptions, FREEBSD_15_0};
use geom_sim::Sim;

const LINGERER: &str = r#"
#include <sys/param.h>
#include <sys/systm.h>
#include <sys/kernel.h>
#include <sys/module.h>
#include <sys/kthread.h>
#include <sys/proc.h>

static volatile int stop, said_done;
static struct proc *kp;

static void
body(void *arg)
{
	while (!stop)
		_sleep(__DEVOLATILE(int *, &stop), NULL, 0, "lwait", 0, 0, 0);
	said_done = 1;
	wakeup(__DEVOLATILE(int *, &said_done));
#ifdef LATE_EXIT
	/* Module code still runs after telling MOD_UNLOAD it is done. */
	_sleep(&kp, NULL, 0, "late", SBT_1MS, 0, 0);
#endif
#ifdef NEVER_EXIT
	for (;;)
		_sleep(&kp, NULL, 0, "forever", 0, 0, 0);
#endif
	kproc_exit(0);
}

static int
lingerer_event(module_t mod, int what, void *arg)
{
	switch (what) {
	case MOD_LOAD:
		return (kproc_create(body, NULL, &kp, 0, 0, "lingerer"));
	case MOD_UNLOAD:
		stop = 1;
		wakeup(__DEVOLATILE(int *, &stop));
#if defined(JOIN_PROC)
		/* kproc_exit() wakes the sleepers on its proc. */
		_sleep(kp, NULL, 0, "join", 0, 0, 0);
#elif !defined(NO_JOIN)
		while (!said_done)
			_sleep(__DEVOLATILE(int *, &said_done), NULL, 0, "join",
			    0, 0, 0);
#endif
		return (0);
	default:
		return (EOPNOTSUPP);
	}
}

static moduledata_t lingerer_mod = { "lingerer", lingerer_event, NULL };
DECLARE_MODULE(lingerer, lingerer_mod, SI_SUB_DRIVERS, SI_ORDER_ANY);
"#;

/// Builds the module with `defines`, loads it on a deterministic
/// simulator, unloads it; returns (simulator, kprocs left in module code,
/// whether it still counts as loaded).
fn load_unload(test: &str, defines: &[&str]) -> (Sim, u64) {
    let dir = common::scratch(test);
    let obj = common::compile(&dir, test, LINGERER, "c", FREEBSD_15_0, defines);
    let path = common::link(&dir, test, &[obj]);
    let sim = Sim::deterministic(1);
    let k = ko::load(&sim.plat(), &KoOptions::at(&path))
        .unwrap_or_else(|e| panic!("kldload {test}: {e}"));
    sim.run_until_idle();
    assert_eq!(ko::kern::kprocs(&k).len(), 1, "MOD_LOAD started the kproc");
    let r = ko::unload(&k).unwrap_or_else(|e| panic!("kldunload {test}: {e}"));
    assert!(!k.is_loaded());
    // The lingering thread, if any, runs on in the still-mapped text.
    sim.run_until_idle();
    (sim, r.kprocs_in_module_at_unload)
}

fn in_module_violations(sim: &Sim) -> Vec<String> {
    sim.violations()
        .into_iter()
        .filter(|v| v.rule == "destroy" && v.message.contains("still in module code"))
        .map(|v| v.message)
        .collect()
}

#[test]
fn unload_after_kproc_exit_is_clean() {
    let (sim, left) = load_unload("join_proc", &["-DJOIN_PROC"]);
    assert_eq!(left, 0);
    let v = sim.violations();
    assert!(v.is_empty(), "{v:#?}");
}

#[test]
fn a_kproc_still_in_module_code_after_its_done_flag_is_caught() {
    let (sim, left) = load_unload("late_exit", &["-DLATE_EXIT"]);
    assert_eq!(left, 1, "the kproc was in module code at unload");
    let v = in_module_violations(&sim);
    assert_eq!(v.len(), 1, "{:#?}", sim.violations());
    assert!(v[0].contains("kproc \"lingerer\""), "{v:?}");
}

#[test]
fn a_kproc_that_never_exits_is_caught() {
    let (sim, left) = load_unload("never_exit", &["-DNO_JOIN", "-DNEVER_EXIT"]);
    assert_eq!(left, 1);
    let v = in_module_violations(&sim);
    assert_eq!(v.len(), 1, "{:#?}", sim.violations());
}
