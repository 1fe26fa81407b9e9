//! Every scenario file under tests/scenarios plays clean against the class:
//! no lost, duplicated or corrupted I/O, no GEOM rule broken, and no failed
//! bio through multipath (each multipath example keeps one path healthy;
//! the pass-through example shows faults reaching the user unmasked).

use geom_sim::scenario::{Overrides, Scenario};

#[test]
fn every_example_scenario_runs_clean() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    for f in files {
        let sc = Scenario::load(&f).unwrap();
        let s = sc
            .run(&Overrides::default())
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(!s.is_bad(), "{}: {}", f.display(), s.text());
        assert_eq!(s.bios_completed, s.bios_issued, "{}", f.display());
        if s.class == "multipath" {
            assert_eq!(s.bios_failed, 0, "{}: {}", f.display(), s.text());
        } else {
            assert!(
                s.bios_failed > 0,
                "{}: faults without a multipath reach the user",
                f.display()
            );
        }
    }
}
