//! The seed class's behaviour on the simulator: taste, I/O and failover,
//! orphan, access, the worker, and stress under both schedulers.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::{
    fill, for_each_mode, getactive, gm, label_for, list, list_all, logged, modes, san,
    submit_writes, with_device, with_san, SIZE,
};
use geom_sim::workload::{run_workload, WorkloadConfig};
use geom_sim::{
    for_seeds, Access, LunConfig, Mode, MultipathClass, Sim, SimConfig, ENXIO, EOPNOTSUPP, EPERM,
};

const UUID_A: &str = "0b7a3a9e-4c1d-4f0e-9a55-2f6c1d3e8b01";
const UUID_B: &str = "5d2c8f10-77aa-4e3b-8c21-9e0f4a6b7c02";

/// The two paths of most cases' LUN.
const DA: [&str; 2] = ["da0", "da1"];

/// The last sector of a LUN, holding a label for `name`/`uuid`.
fn label_sector(name: &str, uuid: &str, size: u64) -> Vec<u8> {
    label_for(name, uuid, size).1
}

/// A simulator with one [`SIZE`] LUN per `(paths, sector)` of `luns`, that
/// sector written at its end, tasted by MULTIPATH loaded after them.
fn tasted(m: Mode, seed: u64, luns: &[(&[&str], &[u8])]) -> Sim {
    let sim = Sim::new(SimConfig::new(m, seed));
    for (paths, last) in luns {
        let lun = sim.add_lun(LunConfig::new(paths, SIZE)).expect("lun");
        lun.write_raw(SIZE - 512, last)
            .expect("write the last sector");
    }
    sim.load_multipath().expect("load MULTIPATH");
    sim.run_until_idle();
    sim
}

/// Each path consumer's access mode ("r1w1e1") in a MULTIPATH geom.
fn path_modes(sim: &Sim, geom: &str) -> Vec<String> {
    let xml = sim.confxml();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let g = doc
        .descendants()
        .find(|n| {
            n.has_tag_name("geom")
                && n.children()
                    .any(|c| c.has_tag_name("name") && c.text() == Some(geom))
                && n.ancestors().any(|a| {
                    a.has_tag_name("class")
                        && a.children()
                            .any(|c| c.has_tag_name("name") && c.text() == Some("MULTIPATH"))
                })
        })
        .expect("geom");
    let mut v: Vec<String> = g
        .children()
        .filter(|c| c.has_tag_name("consumer"))
        .map(|c| {
            c.children()
                .find(|x| x.has_tag_name("mode"))
                .and_then(|x| x.text())
                .unwrap_or("")
                .to_string()
        })
        .collect();
    v.reverse();
    v
}

/// A provider's access mode, from the mesh.
fn provider_mode(sim: &Sim, name: &str) -> String {
    let xml = sim.confxml();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    doc.descendants()
        .find(|n| {
            n.has_tag_name("provider")
                && n.attribute("id").is_some()
                && n.children()
                    .any(|c| c.has_tag_name("name") && c.text() == Some(name))
        })
        .and_then(|p| p.children().find(|c| c.has_tag_name("mode")))
        .and_then(|m| m.text())
        .unwrap_or("")
        .to_string()
}

// ---- taste -----------------------------------------------------------------

#[test]
fn taste_assembles_labelled_paths_into_one_device() {
    with_device(21, &DA, &["label", "mp", "da0", "da1"], |sim, _lun| {
        let g = list(sim, "mp").expect("tasted into a geom");
        assert_eq!(g.kind, "AUTOMATIC");
        assert_eq!(g.paths.len(), 2, "{g:?}");
        assert_eq!(g.mediasize, SIZE - 512, "the label sector is hidden");
        assert_eq!(g.sectorsize, 512);
        assert_eq!(list_all(sim).len(), 1, "one device, not one per path");
        assert!(logged(sim, "da0 added to mp") && logged(sim, "da1 added to mp"));
    });
}

#[test]
fn taste_ignores_a_disk_without_label_and_leaves_no_access() {
    with_san(22, &DA, |sim, _lun| {
        assert!(list_all(sim).is_empty());
        assert_eq!(provider_mode(sim, "da0"), "r0w0e0");
        assert_eq!(provider_mode(sim, "da1"), "r0w0e0");
        assert!(!sim.log_lines().iter().any(|l| l.contains("GEOM_MULTIPATH")));
    });
}

#[test]
fn taste_rejects_another_version_with_a_log_line() {
    for_each_mode(|m| {
        let mut s = label_sector("mp", UUID_A, SIZE);
        s[72..76].copy_from_slice(&2u32.to_le_bytes());
        let sim = tasted(m, 23, &[(&DA, &s)]);
        assert!(list_all(&sim).is_empty());
        assert!(logged(&sim, "da0 has version 2"), "{:?}", sim.log_lines());
        sim
    });
}

#[test]
fn taste_silently_rejects_a_label_written_for_another_size() {
    for_each_mode(|m| {
        let sim = tasted(m, 24, &[(&DA, &label_sector("mp", UUID_A, SIZE * 2))]);
        assert!(list_all(&sim).is_empty());
        assert!(!sim.log_lines().iter().any(|l| l.contains("GEOM_MULTIPATH")));
        sim
    });
}

#[test]
fn taste_gives_a_clashing_name_a_temporary_one() {
    for_each_mode(|m| {
        let a = label_sector("mp", UUID_A, SIZE);
        let b = label_sector("mp", UUID_B, SIZE);
        let sim = tasted(m, 25, &[(&DA, &a), (&["da2", "da3"], &b)]);
        let all = list_all(&sim);
        assert_eq!(all.len(), 2, "{all:?}");
        let other = all.iter().find(|g| g.name != "mp").expect("renamed geom");
        assert!(
            other.name.starts_with("mp-") && other.name.len() <= 15,
            "{}",
            other.name
        );
        assert_eq!(
            other.paths.len(),
            2,
            "both paths of the second LUN found it"
        );
        assert!(logged(&sim, "exists already"));
        assert!(logged(&sim, "will be (temporarily) mp-"));
        sim
    });
}

// ---- I/O ---------------------------------------------------------------------

/// `mp` on da0 and da1 had no failover: da0 is still active, both paths
/// are good and the worker re-issued nothing.
#[track_caller]
fn assert_no_failover(sim: &Sim, why: &str) {
    assert_eq!(getactive(sim, "mp"), "da0", "{why}");
    assert_eq!(list(sim, "mp").unwrap().state, "OPTIMAL", "{why}");
    assert_eq!(sim.plat().reissued(), 0, "{why}");
}

/// A failed `g_clone_bio` delivers the parent with ENOMEM, which GEOM
/// sends down again (as g_io_deliver does): the reader sees success, the
/// path is not blamed and the worker is not involved. (With every clone
/// failing, GEOM itself would retry forever, so the rate stays below 100%.)
#[test]
fn a_failed_clone_delivers_enomem_and_geom_retries() {
    with_device(31, &DA, &["create", "mp", "da0", "da1"], |sim, _lun| {
        let dev = sim.open("multipath/mp", Access::new(1, 1, 0)).unwrap();
        dev.write(0, &[3u8; 4096]).unwrap();
        sim.plat().set_clone_failure(700);
        for _ in 0..40 {
            assert_eq!(dev.read(0, 4096), Ok(vec![3u8; 4096]));
        }
        sim.plat().set_clone_failure(0);
        assert_no_failover(sim, "ENOMEM is not a path failure");
        drop(dev);
    });
}

#[test]
fn enxio_fails_over_and_logs_which_path_is_active() {
    with_device(32, &DA, &["create", "mp", "da0", "da1"], |sim, lun| {
        let dev = sim.open("multipath/mp", Access::new(1, 1, 0)).unwrap();
        dev.write(0, &[9u8; 1024]).unwrap();
        lun.path(0).unwrap().fail_next(1, ENXIO);
        assert_eq!(dev.read(0, 1024), Ok(vec![9u8; 1024]));
        assert!(
            logged(sim, "Error 6, da0 in mp marked FAIL"),
            "{:?}",
            sim.log_lines()
        );
        assert!(logged(sim, "da1 is now active path in mp"));
        assert_eq!(getactive(sim, "mp"), "da1");
        assert!(sim.plat().reissued() >= 1, "the worker re-issued it");
        drop(dev);
    });
}

#[test]
fn other_errors_are_delivered_as_they_are() {
    with_device(33, &DA, &["create", "mp", "da0", "da1"], |sim, lun| {
        let dev = sim.open("multipath/mp", Access::new(1, 1, 0)).unwrap();
        lun.path(0).unwrap().fail_next(1, EOPNOTSUPP);
        assert_eq!(dev.read(0, 512), Err(EOPNOTSUPP));
        assert_no_failover(sim, "no failover");
        drop(dev);
    });
}

#[test]
fn no_path_left_completes_every_bio_with_an_error() {
    with_device(34, &DA, &["create", "mp", "da0", "da1"], |sim, lun| {
        for i in 0..2 {
            lun.path(i).unwrap().set_latency(2000, 0);
        }
        let dev = sim.open("multipath/mp", Access::new(1, 1, 0)).unwrap();
        let w = submit_writes(&dev, 16, 512);
        lun.path(0).unwrap().die();
        lun.path(1).unwrap().die();
        sim.run_until(|| w.done() == 16);
        sim.run_until_idle();
        assert_eq!(w.done(), 16, "every bio completed");
        for r in w.results().iter() {
            let e = r.expect("completed");
            // EPERM: a write still queued below devfs when the device went
            // away; g_dev_orphan drops the consumer's access at once, so
            // g_io_check refuses it (FreeBSD does the same).
            assert!(
                [0, ENXIO, geom_sim::EIO, EPERM].contains(&e),
                "clean error, got {e}"
            );
        }
        // Both paths gone: no provider is left, and the device goes.
        let lines = sim.log_lines();
        let at = |needle: &str| lines.iter().position(|l| l.ends_with(needle));
        let (out, destroyed) = (at(": out of providers for mp"), at(": mp destroyed"));
        assert!(
            out.is_some() && destroyed.is_some() && out < destroyed,
            "{lines:?}"
        );
        drop(dev);
        sim.run_until_idle();
        assert!(
            list(sim, "mp").is_none(),
            "the device went with its last path"
        );
    });
}

// ---- orphan --------------------------------------------------------------------

#[test]
fn a_dying_path_is_detached_after_its_io_drained_and_io_goes_on() {
    with_device(41, &DA, &["create", "mp", "da0", "da1"], |sim, lun| {
        lun.path(0).unwrap().set_latency(3000, 500);
        let dev = sim.open("multipath/mp", Access::new(1, 1, 0)).unwrap();
        let w = submit_writes(&dev, 32, 512);
        lun.path(0).unwrap().die();
        sim.run_until(|| w.done() == 32);
        assert!(w.all_ok(), "{:?}", w.results());
        sim.run_until_idle();
        for i in 0..32u64 {
            assert_eq!(dev.read(i * 512, 512).unwrap(), vec![fill(i as usize); 512]);
        }
        let g = list(sim, "mp").unwrap();
        assert_eq!(g.paths.len(), 1, "{g:?}");
        assert_eq!(g.paths[0].0, "da1");
        assert!(logged(sim, "da0 in mp was disconnected"));
        assert!(logged(sim, "da0 removed from mp"));
        drop(dev);
    });
}

// ---- access --------------------------------------------------------------------

fn load(sim: &Sim, exclusive: bool) {
    if let Ok(geom_sim::ClassChoice::Ko(path)) = geom_sim::ClassChoice::from_env() {
        // The module's own knob, as loader.conf would set it.
        let opts = geom_sim::ko::KoOptions {
            tunables: vec![(
                "kern.geom.multipath.exclusive".into(),
                u8::from(exclusive).to_string(),
            )],
            ..geom_sim::ko::KoOptions::at(&path)
        };
        sim.load_multipath_ko_with(&opts).unwrap();
        sim.run_until_idle();
        return;
    }
    let mc = Arc::new(MultipathClass::new());
    mc.core().exclusive.store(exclusive, Ordering::Relaxed);
    sim.load_class(mc).unwrap();
    sim.run_until_idle();
}

#[test]
fn opening_the_device_opens_every_path_alike() {
    for m in modes() {
        for exclusive in [true, false] {
            let sim = Sim::new(SimConfig::new(m, 51));
            sim.add_lun(LunConfig::new(&["da0", "da1"], SIZE)).unwrap();
            load(&sim, exclusive);
            gm(&sim, &["create", "mp", "da0", "da1"]);
            let base = if exclusive { 1 } else { 0 };
            let fmt = |r: i32, w: i32, e: i32| format!("r{}w{}e{}", r + base, w + base, e + base);
            assert_eq!(path_modes(&sim, "mp"), vec![fmt(0, 0, 0); 2]);
            let dev = sim.open("multipath/mp", Access::new(1, 1, 0)).unwrap();
            assert_eq!(path_modes(&sim, "mp"), vec![fmt(1, 1, 0); 2]);
            // A path added to an open device gets the same counts.
            drop(dev);
            sim.run_until_idle();
            assert_eq!(
                path_modes(&sim, "mp"),
                vec![fmt(0, 0, 0); 2],
                "close gives it all back"
            );
            sim.finish().assert_clean();
        }
    }
}

#[test]
fn a_path_added_to_an_open_device_gets_the_same_counts() {
    for_each_mode(|m| {
        let sim = Sim::new(SimConfig::new(m, 52));
        sim.add_lun(LunConfig::new(&["da0", "da1", "da2"], SIZE))
            .unwrap();
        load(&sim, false);
        gm(&sim, &["create", "mp", "da0", "da1"]);
        let dev = sim.open("multipath/mp", Access::new(1, 1, 0)).unwrap();
        gm(&sim, &["add", "mp", "da2"]);
        assert_eq!(path_modes(&sim, "mp"), vec!["r1w1e0"; 3]);
        drop(dev);
        sim.run_until_idle();
        assert_eq!(path_modes(&sim, "mp"), vec!["r0w0e0"; 3]);
        sim
    });
}

#[test]
fn a_refused_open_part_way_undoes_what_was_granted() {
    for_each_mode(|m| {
        let sim = Sim::new(SimConfig::new(m, 53));
        sim.add_lun(LunConfig::new(&["da0", "da1"], SIZE)).unwrap();
        load(&sim, false);
        gm(&sim, &["create", "mp", "da0", "da1"]);
        // Someone holds da0 exclusively: our writers are refused there.
        let holder = sim.open("da0", Access::new(1, 0, 1)).unwrap();
        let r = sim.open("multipath/mp", Access::new(1, 1, 0));
        assert_eq!(r.err(), Some(EPERM));
        assert_eq!(
            path_modes(&sim, "mp"),
            vec!["r0w0e0"; 2],
            "nothing left open"
        );
        drop(holder);
        sim.run_until_idle();
        let dev = sim.open("multipath/mp", Access::new(1, 1, 0)).unwrap();
        assert_eq!(path_modes(&sim, "mp"), vec!["r1w1e0"; 2]);
        drop(dev);
        sim
    });
}

// ---- worker --------------------------------------------------------------------

#[test]
fn the_worker_runs_from_load_to_unload_and_drains_its_queue() {
    with_device(61, &DA, &["create", "mp", "da0", "da1"], |sim, lun| {
        let dev = sim.open("multipath/mp", Access::new(1, 1, 0)).unwrap();
        lun.path(0).unwrap().fail_next(4, geom_sim::EIO);
        let w = submit_writes(&dev, 8, 512);
        sim.run_until(|| w.done() == 8);
        assert!(w.all_ok());
        assert!(sim.plat().reissued() >= 1);
        drop(dev);
        gm(sim, &["destroy", "mp"]);
        if common::ko_class() {
            // kldunload: MOD_UNLOAD unloads the class, then the module.
            for kk in sim.ko_kernels() {
                let r = geom_sim::ko::unload(&kk).expect("kldunload");
                assert_eq!((r.panics, r.live_at_unload), (0, 0), "{r:?}");
            }
            assert_eq!(sim.plat().class_by_name("MULTIPATH"), None);
        } else {
            let cid = sim.plat().class_by_name("MULTIPATH").unwrap();
            assert_eq!(sim.plat().unload_class(cid), Ok(()));
        }
    });
}

// ---- stress --------------------------------------------------------------------

fn stress(mode: Mode, seed: u64, paths: usize, kill_all: bool) -> Result<(), String> {
    let names: Vec<String> = (0..paths).map(|i| format!("da{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (sim, lun) = san(mode, seed, &refs, 8 << 20);
    let mut argv = vec!["create", "mp"];
    argv.extend(refs.iter());
    sim.gmultipath(&argv)?;
    sim.run_until_idle();
    for i in 0..paths {
        lun.path(i).unwrap().set_latency(50 + 20 * i as u64, 40);
    }
    let dev = sim
        .open("multipath/mp", Access::new(1, 1, 0))
        .map_err(|e| format!("open: {e}"))?;
    let bios = 3000;
    let cfg = WorkloadConfig {
        bios,
        queue_depth: 32,
        read_percent: 50,
        max_sectors: 16,
        span: 0,
        seed,
    };
    let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // Fault moments: each path but one (or every path) fails at a random
    // point, by error or by dying.
    let victims = if kill_all { paths } else { paths - 1 };
    let mut plan: Vec<(u64, usize, bool)> = (0..victims)
        .map(|i| (next() % bios, i, next() % 2 == 0))
        .collect();
    plan.sort();
    let l2 = lun.clone();
    let mut hook = move |issued: u64, _done: u64| {
        while let Some(&(at, p, die)) = plan.first() {
            if at > issued {
                break;
            }
            let ph = l2.path(p).unwrap();
            if die {
                ph.die();
            } else {
                ph.fail_rate(geom_sim::EIO, 1000);
            }
            plan.remove(0);
        }
    };
    let st = run_workload(&sim.plat(), &dev, &cfg, &mut hook);
    drop(dev);
    sim.run_until_idle();
    let rep = sim.finish();
    if !rep.violations.is_empty() {
        return Err(format!("violations: {:?}", rep.violations));
    }
    if st.lost != 0 || st.duplicates != 0 || st.mismatches != 0 {
        return Err(format!("lost/duplicated/corrupted I/O: {st:?}"));
    }
    if !kill_all && st.failed != 0 {
        return Err(format!("I/O failed while a path survived: {st:?}"));
    }
    // Once the device is gone its devfs consumer is orphaned and has given
    // back its access, so later bios get EPERM there, as g_io_check does.
    let clean = [ENXIO, geom_sim::EIO, EPERM];
    if kill_all && st.errors.keys().any(|e| !clean.contains(e)) {
        return Err(format!("unclean errors: {st:?}"));
    }
    if st.completed != bios {
        return Err(format!("{} of {bios} completed: {st:?}", st.completed));
    }
    Ok(())
}

#[test]
fn stress_deterministic_paths_fail_at_random_moments() {
    for paths in 2..=4 {
        for_seeds(1..=6, |seed| {
            stress(Mode::Deterministic, seed * 10 + paths as u64, paths, false)
        });
    }
}

#[test]
fn stress_threaded_paths_fail_at_random_moments() {
    for paths in 2..=4 {
        for_seeds(1..=2, |seed| {
            stress(Mode::Threaded, seed * 10 + paths as u64, paths, false)
        });
    }
}

#[test]
fn stress_every_path_dies_with_clean_errors() {
    for mode in modes() {
        for_seeds(1..=3, |seed| stress(mode, seed + 500, 2, true));
    }
}

/// Found by tests/ctl_fuzz.rs: a manual device created over a disk that
/// still carries a label exposes that label in its own last sector. Taste
/// must not take the multipath provider as a path of a second device
/// (FreeBSD would stack multipath on itself and hold it exclusively).
#[test]
fn a_manual_device_over_a_labelled_disk_is_not_tasted_into_another() {
    with_device(71, &DA, &["label", "mp", "da0", "da1"], |sim, _lun| {
        gm(sim, &["stop", "mp"]);
        gm(sim, &["create", "mp", "da0", "da1"]);
        let all = list_all(sim);
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(all[0].kind, "MANUAL");
        let dev = sim.open("multipath/mp", Access::new(1, 1, 0)).unwrap();
        dev.write(0, &[4u8; 512]).unwrap();
        drop(dev);
    });
}
