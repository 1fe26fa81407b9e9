//! Multi-path LUNs and per-path faults.

mod common;

use std::sync::Arc;

use common::{add_lun_1m, both, load_counter, pass_over};
use geom_sim::workload::{run_workload, WorkloadConfig};
use geom_sim::{Access, BioCmd, LunConfig, Sim, StoreKind, EIO, ENXIO};

#[test]
fn fail_next_k_and_rate() {
    both(9, |sim| {
        let lun = add_lun_1m(sim, &["md0", "md1"]);
        let dev = sim.open("md0", Access::new(1, 1, 0)).unwrap();
        let p = lun.path(0).unwrap();
        p.fail_next(2, ENXIO);
        assert_eq!(dev.read(0, 512).err(), Some(ENXIO));
        assert_eq!(dev.write(0, &[1; 512]).err(), Some(ENXIO));
        assert!(dev.read(0, 512).is_ok());
        p.fail_rate(EIO, 1000);
        assert_eq!(dev.read(0, 512).err(), Some(EIO));
        // md1 is another path to the same LUN, unaffected.
        let d1 = sim.open("md1", Access::new(1, 0, 0)).unwrap();
        assert!(d1.read(0, 512).is_ok());
        p.heal();
        assert!(dev.read(0, 512).is_ok());
        let c = p.counts();
        assert_eq!(c.failed, 3);
        drop((dev, d1));
    });
}

#[test]
fn rate_faults_through_passthrough_keep_data_consistent() {
    both(9, |sim| {
        let lun = sim.add_lun(LunConfig::new(&["da0"], 2 << 20)).unwrap();
        pass_over(sim, "da0");
        let p = lun.path(0).unwrap();
        p.fail_rate(EIO, 100);
        p.set_latency(10, 50);
        let dev = sim.open("da0.pass", Access::new(1, 1, 0)).unwrap();
        let st = run_workload(
            sim,
            &dev,
            &WorkloadConfig {
                bios: 1000,
                queue_depth: 16,
                ..Default::default()
            },
            &mut |_, _| {},
        );
        assert_eq!(st.completed, 1000);
        assert!(st.failed > 30 && st.failed < 200, "{st:?}");
        assert_eq!((st.mismatches, st.lost, st.duplicates), (0, 0, 0), "{st:?}");
        drop(dev);
    });
}

#[test]
fn dying_path_fails_inflight_with_enxio_and_comes_back() {
    both(9, |sim| {
        let counter = load_counter(sim);
        let lun = add_lun_1m(sim, &["da0", "da1"]);
        let p = lun.path(0).unwrap();
        // Long enough that the bio is still on the path when it dies, even on
        // a loaded machine (threaded mode runs in real time).
        p.set_latency(200_000, 0);
        let dev = sim.open("da0", Access::new(1, 0, 0)).unwrap();
        let res = Arc::new(std::sync::Mutex::new(None));
        let r2 = res.clone();
        dev.submit(BioCmd::Read, 0, 512, None, move |_, r| {
            *r2.lock().unwrap() = Some(r.error)
        })
        .unwrap();
        // Die once the bio is on the path (before, DEV's orphan would drop
        // the access first and g_io_check would answer EPERM, as in GEOM).
        assert!(sim.run_until(|| p.counts().started == 1));
        p.die();
        sim.run_until_idle();
        assert_eq!(*res.lock().unwrap(), Some(ENXIO));
        assert!(sim.g_provider_by_name("da0").is_none());
        assert_eq!(dev.read(0, 512).err(), Some(ENXIO));
        drop(dev);
        p.revive();
        sim.run_until_idle();
        assert!(sim.g_provider_by_name("da0").is_some());
        assert_eq!(counter.count("da0"), 2, "the returning path is tasted");
        let dev = sim.open("da0", Access::new(1, 0, 0)).unwrap();
        assert!(dev.read(0, 512).is_ok());
        drop(dev);
    });
}

#[test]
fn sparse_file_backing_store() {
    let dir = std::env::temp_dir().join(format!("geom-sim-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lun0.img");
    let sim = Sim::deterministic(1);
    let mut cfg = LunConfig::new(&["da0", "da1"], 1 << 30);
    cfg.store = StoreKind::SparseFile(path.clone());
    let lun = sim.add_lun(cfg).unwrap();
    let dev = sim.open("da0", Access::new(1, 1, 0)).unwrap();
    dev.write((1 << 30) - 4096, &[9; 4096]).unwrap();
    let d1 = sim.open("da1", Access::new(1, 0, 0)).unwrap();
    assert_eq!(d1.read((1 << 30) - 4096, 4096).unwrap(), vec![9; 4096]);
    assert_eq!(lun.read_raw(0, 8).unwrap(), vec![0; 8]);
    drop((dev, d1, lun));
    sim.finish().assert_clean();
    assert!(!path.exists(), "the sparse file is removed");
    let _ = std::fs::remove_dir(&dir);
}
