//! What the scenario runner reports and when things happen during a
//! workload: the `failovers` count is path failures only, and queued events
//! (a revived path's taste) run while every bio fails at once because the
//! device's /dev node is gone, not only after the workload ends.

use geom_sim::scenario::{Overrides, Scenario};
use geom_sim::workload::{run_workload, WorkloadConfig};
use geom_sim::{Access, LunConfig, Mode, Sim, SimConfig};

/// Two one-bio failures, the second while the first path is still FAIL:
/// the class logs two "Error 5" lines and one "all paths ... were marked
/// FAIL, restore da0". Two failovers, not three.
#[test]
fn failovers_count_path_failures_not_automatic_restores() {
    let sc = Scenario::parse(include_str!("data/two_failures.toml")).unwrap();
    let s = sc
        .run(&Overrides {
            seed: None,
            mode: Some(Mode::Deterministic),
            progress: false,
            live: false,
        })
        .unwrap();
    assert!(!s.is_bad(), "{}", s.text());
    assert_eq!(s.bios_failed, 0, "{}", s.text());
    assert_eq!(s.reissued, 2, "{}", s.text());
    assert_eq!(s.failovers, 2, "{}", s.text());
}

/// Both paths die, so `multipath/mp` and its /dev node go and every bio
/// fails at submission; both come back 100 bios later. The taste of the
/// revived paths runs then, not when the 2000 bios are done.
#[test]
fn a_revived_path_is_tasted_while_every_bio_fails_at_once() {
    let sim = Sim::new(SimConfig::new(Mode::Deterministic, 9));
    let lun = sim
        .add_lun(LunConfig::new(&["da0", "da1"], 4 << 20))
        .unwrap();
    sim.load_multipath().unwrap();
    sim.run_until_idle();
    sim.gmultipath(&["label", "mp", "da0", "da1"]).unwrap();
    sim.run_until_idle();
    let dev = sim.open("multipath/mp", Access::new(1, 1, 0)).unwrap();
    let plat = sim.plat();
    let cfg = WorkloadConfig {
        bios: 2000,
        queue_depth: 4,
        seed: 9,
        ..WorkloadConfig::default()
    };
    let back_at = std::cell::Cell::new(None);
    let st = run_workload(&plat, &dev, &cfg, &mut |issued, _| {
        if issued == 200 {
            lun.path(0).unwrap().die();
            lun.path(1).unwrap().die();
        }
        if issued == 300 {
            lun.path(0).unwrap().revive();
            lun.path(1).unwrap().revive();
        }
        let added = plat
            .log_lines()
            .iter()
            .filter(|l| *l == "GEOM_MULTIPATH: da0 added to mp")
            .count();
        if added == 2 && back_at.get().is_none() {
            back_at.set(Some(issued));
        }
    });
    assert!(st.failed > 0, "the device was gone for a while: {st:?}");
    let back = back_at.get().expect("da0 tasted back during the workload");
    assert!(back < 400, "tasted back at bio {back}, revived at 300");
    drop(dev);
    sim.run_until_idle();
    assert!(sim.g_provider_by_name("multipath/mp").is_some());
    sim.finish().assert_clean();
}
