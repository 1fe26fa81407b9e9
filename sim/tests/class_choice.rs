//! The `GMR_CLASS` switch: which class `load_multipath` loads, the module
//! kept with the simulator and unloaded by `finish` or on drop, and a
//! clear failure when the module is missing.
//!
//! The module half prints "SKIPPED" without the `.ko`, and fails with
//! `GMR_REQUIRE_KO=1`.

mod common;

use common::ko::built_ko;
use std::ffi::OsStr;

use geom_sim::{ClassChoice, LunConfig, Mode, Sim, SimConfig, ENOENT};

fn sim() -> Sim {
    let sim = Sim::new(SimConfig::new(Mode::Deterministic, 4));
    sim.add_lun(LunConfig::new(&["da0", "da1"], 1 << 20))
        .expect("lun");
    sim
}

/// [`sim`] with the built module loaded (by `load_multipath_ko`) and run
/// until idle, or None when the module is not built (see `built_ko`).
fn sim_with_module() -> Option<Sim> {
    let path = built_ko()?.path;
    let sim = sim();
    sim.load_multipath_ko(&path).expect("kldload");
    sim.run_until_idle();
    Some(sim)
}

#[test]
fn the_variables_choose_the_class() {
    assert_eq!(ClassChoice::from_values(None, None), Ok(ClassChoice::Core));
    assert_eq!(
        ClassChoice::from_values(Some("core"), Some(OsStr::new("/x.ko"))),
        Ok(ClassChoice::Core)
    );
    assert_eq!(
        ClassChoice::from_values(Some("ko"), None),
        Ok(ClassChoice::Ko(geom_sim::ko::default_ko_path()))
    );
    assert_eq!(
        ClassChoice::from_values(Some("ko"), Some(OsStr::new("/m/x.ko"))),
        Ok(ClassChoice::Ko("/m/x.ko".into()))
    );
    let e = ClassChoice::from_values(Some("kernel"), None).unwrap_err();
    assert!(e.contains("GMR_CLASS=kernel"), "{e}");
}

#[test]
fn a_missing_module_fails_the_load() {
    let sim = sim();
    let r = sim.load_multipath_ko(std::path::Path::new("/nonexistent/geom_multipath_rs.ko"));
    assert_eq!(r, Err(ENOENT));
    assert!(sim.ko_kernels().is_empty());
    assert_eq!(sim.class_by_name("MULTIPATH"), None);
    sim.finish().assert_clean();
}

#[test]
fn finish_unloads_the_module_it_loaded() {
    let Some(sim) = sim_with_module() else {
        return;
    };
    let kks = sim.ko_kernels();
    assert_eq!(kks.len(), 1);
    let dev = common::label_and_open(&sim);
    dev.write(0, &[5u8; 512]).expect("write through the module");
    drop(dev);
    sim.finish().assert_clean();
    assert!(!kks[0].is_loaded(), "finish kldunloaded it");
    let r = kks[0].report();
    assert_eq!((r.live_at_unload, r.panics), (0, 0), "{r:?}");
    assert!(r.allocations > 0, "{r:?}");
}

#[test]
fn dropping_the_simulator_unloads_the_module() {
    let Some(sim) = sim_with_module() else {
        return;
    };
    let kk = sim.ko_kernels().pop().expect("kept");
    drop(sim);
    assert!(!kk.is_loaded());
}
