//! The simulator's basic I/O path and topology, under both schedulers.

use geom_sim::workload::{run_workload, WorkloadConfig};
use geom_sim::{Access, LunConfig, Mode, Sim, SimConfig, EINVAL, EIO, ENOENT, EPERM};

fn sims() -> Vec<Sim> {
    vec![
        Sim::new(SimConfig::new(Mode::Deterministic, 7)),
        Sim::new(SimConfig::new(Mode::Threaded, 7)),
    ]
}

#[test]
fn raw_disk_read_write() {
    for sim in sims() {
        let lun = sim
            .add_lun(LunConfig::new(&["da0", "da1"], 1 << 20))
            .unwrap();
        let dev = sim.open("da0", Access::new(1, 1, 0)).unwrap();
        dev.write(4096, &[0xab; 1024]).unwrap();
        // The other path sees the same LUN.
        let other = sim.open("/dev/da1", Access::new(1, 0, 0)).unwrap();
        assert_eq!(other.read(4096, 1024).unwrap(), vec![0xab; 1024]);
        assert_eq!(lun.read_raw(4096, 4).unwrap(), vec![0xab; 4]);
        drop(other);
        dev.close().unwrap();
        sim.finish().assert_clean();
    }
}

#[test]
fn io_checks_like_a_disk() {
    for sim in sims() {
        sim.add_lun(LunConfig::new(&["da0"], 1 << 20)).unwrap();
        let dev = sim.open("da0", Access::new(1, 0, 0)).unwrap();
        assert_eq!(dev.read(100, 512), Err(EINVAL), "unaligned offset");
        assert_eq!(dev.read(0, 100), Err(EINVAL), "partial sector");
        assert_eq!(dev.read((1 << 20) + 512, 512), Err(EIO), "beyond mediasize");
        // A request running past the end is truncated, like GEOM does:
        // a short read (sim/tests/dev_bounds.rs has the rest).
        assert_eq!(dev.read((1 << 20) - 512, 1024).unwrap().len(), 512);
        assert_eq!(dev.write(0, &[1; 512]), Err(EPERM), "no write access");
        assert_eq!(sim.open("nosuch", Access::new(1, 0, 0)).err(), Some(ENOENT));
        drop(dev);
        sim.finish().assert_clean();
    }
}

#[test]
fn passthrough_integrity_both_schedulers() {
    for sim in sims() {
        sim.add_lun(LunConfig::new(&["da0"], 4 << 20)).unwrap();
        sim.load_class(std::sync::Arc::new(geom_sim::PassClass))
            .unwrap();
        sim.pass_create("da0").unwrap();
        sim.run_until_idle();
        let dev = sim.open("da0.pass", Access::new(1, 1, 0)).unwrap();
        let cfg = WorkloadConfig {
            bios: 2000,
            queue_depth: 16,
            ..Default::default()
        };
        let st = run_workload(&sim, &dev, &cfg, &mut |_, _| {});
        assert_eq!(st.completed, 2000, "{st:?}");
        assert_eq!(
            (st.failed, st.mismatches, st.lost, st.duplicates),
            (0, 0, 0, 0),
            "{st:?}"
        );
        assert!(st.reads_ok > 0 && st.writes_ok > 0);
        drop(dev);
        sim.finish().assert_clean();
    }
}
