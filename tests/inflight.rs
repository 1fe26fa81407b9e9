//! What each verb does to I/O in flight: 32 writes are outstanding on slow
//! paths when the verb runs; every one completes exactly once and without
//! error, the data reads back, and the verb has its effect. Both schedulers.

mod common;

use common::{fill, for_each_mode, getactive, list, san, submit_writes, with_device};
use geom_sim::{Access, Dev, Lun, Sim};

const N: usize = 32;
const DA2: [&str; 2] = ["da0", "da1"];
const DA3: [&str; 3] = ["da0", "da1", "da2"];

/// Runs `verb` while writes are in flight on every (slow) path of `lun`,
/// then checks they all succeeded and read back; returns the device, still
/// open, for the caller to check the verb's effect before closing it.
#[track_caller]
fn run_under_writes(sim: &Sim, lun: &Lun, verb: &[&str]) -> Dev {
    for i in 0..lun.paths() {
        lun.path(i).unwrap().set_latency(2000, 1500);
    }
    let dev = sim.open("multipath/mp", Access::new(1, 1, 0)).unwrap();
    let w = submit_writes(&dev, N, 512);
    let out = sim.gmultipath(verb);
    assert!(out.is_ok(), "{verb:?}: {out:?}");
    sim.run_until(|| w.done() == N as u64);
    sim.run_until_idle();
    assert_eq!(w.done(), N as u64, "{verb:?}: every write completed");
    assert!(w.all_ok(), "{verb:?}: {:?}", w.results());
    for i in 0..N {
        assert_eq!(
            dev.read((i as u64) * 512, 512).unwrap(),
            vec![fill(i); 512],
            "{verb:?} sector {i}"
        );
    }
    dev
}

#[test]
fn fail_lets_in_flight_io_finish_and_moves_new_io() {
    with_device(81, &DA2, &["create", "mp", "da0", "da1"], |sim, lun| {
        let _dev = run_under_writes(sim, lun, &["fail", "mp", "da0"]);
        assert_eq!(getactive(sim, "mp"), "da1");
        assert_eq!(list(sim, "mp").unwrap().state, "DEGRADED");
    });
}

#[test]
fn restore_during_io() {
    for_each_mode(|m| {
        let (sim, lun) = san(m, 82, &DA2, 1 << 20);
        sim.gmultipath(&["create", "mp", "da0", "da1"]).unwrap();
        sim.gmultipath(&["fail", "mp", "da0"]).unwrap();
        sim.run_until_idle();
        lun.path(1).unwrap().set_latency(2000, 1500);
        let dev = sim.open("multipath/mp", Access::new(1, 1, 0)).unwrap();
        let w = submit_writes(&dev, N, 512);
        sim.gmultipath(&["restore", "mp", "da0"]).unwrap();
        sim.run_until(|| w.done() == N as u64);
        assert!(w.all_ok());
        assert_eq!(list(&sim, "mp").unwrap().state, "OPTIMAL");
        assert_eq!(getactive(&sim, "mp"), "da1", "no failback");
        drop(dev);
        sim
    });
}

#[test]
fn rotate_and_prefer_during_io() {
    with_device(
        83,
        &DA3,
        &["create", "mp", "da0", "da1", "da2"],
        |sim, lun| {
            let _dev = run_under_writes(sim, lun, &["rotate", "mp"]);
            assert_eq!(getactive(sim, "mp"), "da2");
        },
    );
    with_device(
        84,
        &DA3,
        &["create", "mp", "da0", "da1", "da2"],
        |sim, lun| {
            let _dev = run_under_writes(sim, lun, &["prefer", "mp", "da1"]);
            assert_eq!(getactive(sim, "mp"), "da1");
        },
    );
}

/// Removing the active path: its in-flight writes finish on it, then it
/// is detached; nothing is lost and new I/O goes to the other path.
#[test]
fn remove_drains_the_path_before_detaching_it() {
    with_device(85, &DA2, &["create", "mp", "da0", "da1"], |sim, lun| {
        let _dev = run_under_writes(sim, lun, &["remove", "mp", "da0"]);
        let g = list(sim, "mp").unwrap();
        assert_eq!(g.paths.len(), 1, "{g:?}");
        assert_eq!(g.paths[0].0, "da1");
        assert_eq!(getactive(sim, "mp"), "da1");
    });
}

#[test]
fn add_and_configure_during_io() {
    with_device(86, &DA3, &["create", "mp", "da0", "da1"], |sim, lun| {
        let _dev = run_under_writes(sim, lun, &["add", "mp", "da2"]);
        assert_eq!(list(sim, "mp").unwrap().paths.len(), 3);
    });
    with_device(87, &DA2, &["create", "mp", "da0", "da1"], |sim, lun| {
        let _dev = run_under_writes(sim, lun, &["configure", "-A", "mp"]);
        assert_eq!(list(sim, "mp").unwrap().mode, "Active/Active");
        assert_eq!(getactive(sim, "mp"), "da1 da0");
    });
}

/// stop and destroy refuse an open device; in-flight I/O is untouched.
#[test]
fn stop_and_destroy_refuse_while_io_is_in_flight() {
    with_device(88, &DA2, &["create", "mp", "da0", "da1"], |sim, lun| {
        lun.path(0).unwrap().set_latency(2000, 0);
        let dev = sim.open("multipath/mp", Access::new(1, 1, 0)).unwrap();
        let w = submit_writes(&dev, N, 512);
        for verb in ["stop", "destroy"] {
            let e = sim.gmultipath(&[verb, "mp"]).unwrap_err();
            assert!(e.contains("err=16"), "{verb}: {e}");
        }
        sim.run_until(|| w.done() == N as u64);
        assert!(w.all_ok());
        assert_eq!(list(sim, "mp").unwrap().state, "OPTIMAL");
        drop(dev);
    });
}
