//! "re-issued" counts the bios a class sent to a path again after a path
//! failed one of their clones. GEOM counts it (a clone sent while its
//! parent has a failed child retired), so it reads the same whether the
//! class is the core linked into the simulator or the built module: it
//! read 0 through the module while it came from the core's worker.
//!
//! Without the `.ko` the module half prints "SKIPPED" and returns; with
//! `GMR_REQUIRE_KO=1` it fails instead.

mod common;

use common::ko::built_ko;
use geom_sim::scenario::{ClassSource, Overrides, Scenario};
use geom_sim::{LunConfig, Mode, Sim, SimConfig, EIO};

/// Two one-bio failures on an active/passive pair: two re-issues.
const TWO_FAILURES: &str = include_str!("data/two_failures.toml");

fn ov() -> Overrides {
    Overrides {
        seed: None,
        mode: Some(Mode::Deterministic),
        progress: false,
        live: false,
    }
}

#[test]
fn reissued_counts_the_same_through_core_and_module() {
    let sc = Scenario::parse(TWO_FAILURES).expect("scenario");
    let core = sc.run_with(&ov(), &ClassSource::Core).expect("core run");
    assert!(!core.is_bad(), "{}", core.text());
    assert_eq!(core.bios_failed, 0, "{}", core.text());
    assert_eq!(core.reissued, 2, "{}", core.text());
    assert!(core.text().contains("re-issued 2"), "{}", core.text());
    let Some(opts) = built_ko() else { return };
    let m = sc.run_with(&ov(), &ClassSource::Ko(opts)).expect("ko run");
    assert!(!m.is_bad(), "{}", m.text());
    assert!(m.ko_summary.is_some(), "the module ran: {}", m.text());
    assert_eq!(m.bios_failed, 0, "{}", m.text());
    assert_eq!(m.reissued, 2, "through the module: {}", m.text());
    assert_eq!(m.failovers, core.failovers, "{}", m.text());
}

/// On the core the count agrees with its worker's: each failed clone it
/// handled went out again (another path was there).
#[test]
fn reissued_matches_the_core_workers_count() {
    let sim = Sim::new(SimConfig::new(Mode::Deterministic, 8));
    let lun = sim
        .add_lun(LunConfig::new(&["da0", "da1"], 1 << 20))
        .expect("lun");
    sim.load_class(std::sync::Arc::new(geom_sim::MultipathClass::new()))
        .expect("load");
    sim.run_until_idle();
    let dev = common::label_and_open(&sim);
    dev.write(0, &[1u8; 512]).expect("write");
    assert_eq!(sim.reissued(), 0, "nothing failed yet");
    lun.path(0).expect("da0").fail_next(3, EIO);
    for i in 0..3u64 {
        dev.write(512 * i, &[2u8; 512])
            .expect("write after a path error");
    }
    assert!(sim.reissued() >= 1, "{:?}", sim.log_lines());
    assert_eq!(sim.reissued(), sim.worker_handled() as u64);
    assert_eq!(sim.path_errors(), sim.reissued());
    drop(dev);
    sim.finish().assert_clean();
}
