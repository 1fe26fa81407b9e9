//! The simulator catches classes that break GEOM's rules, naming the rule.

mod common;

use std::sync::Arc;

use common::{Sin, TestPass};
use geom_sim::{rule, Access, Errno, LunConfig, Mode, Sim, SimConfig};

/// What the I/O through the sinning class returned: the open, then the
/// write and the read (Err when the open failed).
type IoResults = Result<(Result<(), Errno>, Result<Vec<u8>, Errno>), Errno>;

fn run_sin_io(mode: Mode, sin: Sin) -> (Vec<geom_sim::Violation>, IoResults) {
    let mut cfg = SimConfig::new(mode, 11);
    // A lost bio is only noticed when waiting for it times out.
    cfg.wait_timeout = std::time::Duration::from_millis(300);
    let sim = Sim::new(cfg);
    sim.add_lun(LunConfig::new(&["da0"], 1 << 20)).unwrap();
    sim.load_class(TestPass::new(sin)).unwrap();
    TestPass::create(&sim, "da0");
    // A sinning class may fail the I/O in any way; what is checked is the
    // rule it broke (and, for the well-behaved class, the I/O itself).
    let io = sim.open("da0.tp", Access::new(1, 1, 0)).map(|dev| {
        let w = dev.write(0, &[5; 512]);
        let r = dev.read(0, 512);
        drop(dev);
        (w, r)
    });
    sim.run_until_idle();
    (sim.finish().violations, io)
}

fn run_sin(mode: Mode, sin: Sin) -> Vec<geom_sim::Violation> {
    run_sin_io(mode, sin).0
}

fn expect(case: &str, sin: Sin, rule: &str) {
    for mode in [Mode::Deterministic, Mode::Threaded] {
        let v = run_sin(mode, sin);
        assert!(
            v.iter().any(|v| v.rule == rule),
            "{case}: {sin:?} in {mode:?}: expected a '{rule}' violation, got {v:#?}"
        );
    }
}

#[test]
fn well_behaved_class_is_clean() {
    for mode in [Mode::Deterministic, Mode::Threaded] {
        let (v, io) = run_sin_io(mode, Sin::None);
        assert!(v.is_empty(), "{v:#?}");
        // Clean because the I/O ran and was right, not because none ran.
        let (w, r) = io.unwrap_or_else(|e| panic!("{mode:?}: open da0.tp: errno {e}"));
        assert_eq!(w, Ok(()), "{mode:?}: write");
        assert_eq!(r, Ok(vec![5u8; 512]), "{mode:?}: read back");
    }
}

/// Each sin, named as its test was, and the rule it breaks.
#[test]
fn each_sin_is_caught() {
    for (case, sin, rule) in [
        ("sleeping in done", Sin::SleepInDone, rule::NOSLEEP),
        ("topology lock in start", Sin::LockInStart, rule::TOPOLOGY),
        ("topology in done", Sin::TopologyInDone, rule::TOPOLOGY),
        ("synchronous read in start", Sin::ReadInStart, rule::NOSLEEP),
        ("leaked access count", Sin::LeakAccess, rule::LEAK),
        ("completing twice", Sin::CompleteTwice, rule::ONCE),
        ("losing a bio", Sin::LoseBio, rule::ONCE),
        (
            "a mutex held across g_io_request",
            Sin::MutexAcrossRequest,
            rule::DIRECT,
        ),
        (
            "a mutex held across g_std_done",
            Sin::MutexAcrossDone,
            rule::DIRECT,
        ),
    ] {
        expect(case, sin, rule);
    }
}

#[test]
fn detach_while_open_is_caught() {
    for mode in [Mode::Deterministic, Mode::Threaded] {
        let sim = Sim::new(SimConfig::new(mode, 2));
        let lun = sim.add_lun(LunConfig::new(&["da0"], 1 << 20)).unwrap();
        sim.load_class(TestPass::new(Sin::DetachBusy)).unwrap();
        TestPass::create(&sim, "da0");
        let dev = sim.open("da0.tp", Access::new(1, 0, 0)).unwrap();
        lun.path(0).unwrap().die();
        sim.run_until_idle();
        assert!(sim.has_violation(rule::ATTACH), "{:#?}", sim.violations());
        assert!(sim
            .violations()
            .iter()
            .any(|v| v.message.contains("nonzero access")));
        drop(dev);
    }
}

#[test]
fn unlocked_topology_calls_from_user_context_are_caught() {
    let sim = Sim::deterministic(1);
    sim.add_lun(LunConfig::new(&["da0"], 1 << 20)).unwrap();
    let c = sim.load_class(Arc::new(geom_sim::PassClass)).unwrap();
    let p = sim.bound(c);
    assert!(p.g_new_geom("x", None).is_err());
    p.g_topology_unlock();
    let v = sim.take_violations();
    assert_eq!(
        v.iter().filter(|v| v.rule == rule::TOPOLOGY).count(),
        2,
        "{v:#?}"
    );
    sim.finish().assert_clean();
}
