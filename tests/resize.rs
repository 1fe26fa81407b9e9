//! Resize (FreeBSD's g_multipath_resize): a path's provider changes size
//! (`PathHandle::resize`, GEOM's `g_resize_provider` and its event) and the
//! multipath device follows:
//! - a grown LUN counts once every path has grown; the provider grows and
//!   a labelled device gets its label rewritten at the new end, where taste
//!   finds it after a path dies and comes back, or the device is rebuilt;
//! - a shrunk manual device shrinks at the first path that shrinks;
//! - a shrunk labelled device whose label is not at the new end is
//!   destroyed (with it still there, written for the new size, it shrinks);
//! - I/O in flight during a resize completes.
//!
//! Each test runs under both schedulers.

mod common;

use common::{
    check_state, fill, gm, label_for, list, logged, modes, san, submit_writes, with_device, SIZE,
};
use geom_multipath_rs::metadata::{Metadata, Mode as MpMode};
use geom_sim::{Access, Lun, Sim, EIO, ENXIO};

/// The paths of most cases' LUN.
const DA: [&str; 2] = ["da0", "da1"];
const BIG: u64 = 2 << 20;
const SMALL: u64 = 512 << 10;

/// mediasize of `multipath/NAME` as `geom list` shows it.
fn mp_size(sim: &Sim, name: &str) -> u64 {
    list(sim, name)
        .unwrap_or_else(|| panic!("no geom {name}"))
        .mediasize
}

/// The label in the last sector of a `size`-byte path of `lun`.
fn label_at(lun: &Lun, size: u64) -> Option<Metadata> {
    let s = lun.read_raw(size - 512, 512).expect("read medium");
    Metadata::decode(&s).ok()
}

fn count_logged(sim: &Sim, needle: &str) -> usize {
    sim.log_lines()
        .iter()
        .filter(|l| l.contains(needle))
        .count()
}

/// A labelled LUN grows on the array: the device waits for the last path,
/// then grows; its label moves to the new end and still works after a path
/// dies and comes back, and after the whole device is rebuilt by taste.
/// The data stays, and the new space is usable.
#[test]
fn grown_labelled_lun() {
    with_device(1, &DA, &["label", "-A", "mp", "da0", "da1"], |sim, lun| {
        assert_eq!(mp_size(sim, "mp"), SIZE - 512);
        let uuid = list(sim, "mp").unwrap().uuid;
        let dev = sim.open("multipath/mp", Access::new(1, 1, 0)).unwrap();
        dev.write(0, &[1; 4096]).unwrap();
        dev.write(SIZE - 4096, &[2; 3584]).unwrap();

        // One path grown: the other still bounds the device.
        lun.path(0).unwrap().resize(BIG).unwrap();
        sim.run_until_idle();
        assert_eq!(mp_size(sim, "mp"), SIZE - 512);
        assert!(!logged(sim, "size changed"));
        // Both: it grows, once.
        lun.path(1).unwrap().resize(BIG).unwrap();
        sim.run_until_idle();
        assert_eq!(mp_size(sim, "mp"), BIG - 512);
        assert_eq!(dev.size(), Some((BIG - 512, 512)));
        let line = format!("mp size changed from {} to {}", SIZE - 512, BIG - 512);
        assert_eq!(count_logged(sim, &line), 1, "{:?}", sim.log_lines());
        // The label sits at the new end, for the new size, same identity.
        let md = label_at(lun, BIG).expect("label at the new end");
        assert_eq!(md.size, BIG);
        assert_eq!(md.sectorsize, 512);
        assert_eq!(md.uuid.as_str(), uuid);
        assert_eq!(md.name.as_str(), "mp");
        assert_eq!(md.mode, MpMode::ActiveActive);
        // Old data intact; the new space works.
        assert_eq!(dev.read(0, 4096).unwrap(), vec![1; 4096]);
        assert_eq!(dev.read(SIZE - 4096, 3584).unwrap(), vec![2; 3584]);
        dev.write(BIG - 4096, &[3; 3584]).unwrap();
        assert_eq!(dev.read(BIG - 4096, 3584).unwrap(), vec![3; 3584]);
        drop(dev);

        // A path dies and comes back: taste takes it by the new label.
        lun.path(0).unwrap().die();
        sim.run_until_idle();
        lun.path(0).unwrap().revive();
        sim.run_until_idle();
        check_state(sim, "mp", "da0 da1", "OPTIMAL", &["ACTIVE", "ACTIVE"]);
        // The whole device goes and comes back: rebuilt at the new size.
        lun.path(0).unwrap().die();
        lun.path(1).unwrap().die();
        sim.run_until_idle();
        assert!(list(sim, "mp").is_none());
        lun.path(0).unwrap().revive();
        lun.path(1).unwrap().revive();
        sim.run_until_idle();
        assert_eq!(mp_size(sim, "mp"), BIG - 512);
        assert_eq!(list(sim, "mp").unwrap().uuid, uuid);
        let dev = sim.open("multipath/mp", Access::new(1, 0, 0)).unwrap();
        assert_eq!(dev.read(BIG - 4096, 3584).unwrap(), vec![3; 3584]);
        drop(dev);
    });
}

/// A manual device shrinks as soon as one path does (the others follow
/// without a second change); an open device keeps working at its new size.
#[test]
fn shrunk_manual_device() {
    with_device(
        2,
        &["md0", "md1"],
        &["create", "mp", "md0", "md1"],
        |sim, lun| {
            assert_eq!(mp_size(sim, "mp"), SIZE);
            let dev = sim.open("multipath/mp", Access::new(1, 1, 0)).unwrap();
            dev.write(SMALL - 4096, &[9; 4096]).unwrap();
            lun.resize(SMALL).unwrap();
            sim.run_until_idle();
            assert_eq!(mp_size(sim, "mp"), SMALL);
            assert_eq!(dev.size(), Some((SMALL, 512)));
            let line = format!("mp size changed from {SIZE} to {SMALL}");
            assert_eq!(count_logged(sim, &line), 1, "{:?}", sim.log_lines());
            assert_eq!(dev.read(SMALL - 4096, 4096).unwrap(), vec![9; 4096]);
            // Past the new end is past the device (at the end: EOF).
            assert_eq!(dev.read(SMALL + 512, 512), Err(EIO));
            check_state(sim, "mp", "md0", "OPTIMAL", &["ACTIVE", "PASSIVE"]);
            drop(dev);
        },
    );
}

/// A labelled device shrinks but its label is not at the new end: the
/// device no longer exists on its paths and is destroyed, with a line
/// saying why. Open, its provider is withered under the user; closed, it
/// goes at once. Nothing is tasted back from the paths.
#[test]
fn shrunk_labelled_device_without_its_label_is_destroyed() {
    for m in modes() {
        for open in [false, true] {
            let (sim, lun) = san(m, 3, &["da0", "da1"], SIZE);
            gm(&sim, &["label", "mp", "da0", "da1"]);
            let dev = open.then(|| sim.open("multipath/mp", Access::new(1, 0, 0)).unwrap());
            lun.resize(SMALL).unwrap();
            sim.run_until_idle();
            assert!(
                logged(
                    &sim,
                    &format!("mp size changed from {} to {}", SIZE - 512, SMALL - 512)
                ),
                "{:?}",
                sim.log_lines()
            );
            assert!(
                sim.log_lines().iter().any(|l| l
                    .starts_with("GEOM_MULTIPATH: mp shrank and its label on da")
                    && l.contains("is gone")),
                "{:?}",
                sim.log_lines()
            );
            assert!(logged(&sim, "GEOM_MULTIPATH: destroying mp"));
            if let Some(dev) = dev {
                assert_eq!(dev.read(0, 512), Err(ENXIO), "withered under the user");
                drop(dev);
                sim.run_until_idle();
            }
            assert!(logged(&sim, "GEOM_MULTIPATH: mp destroyed"));
            assert!(list(&sim, "mp").is_none());
            assert!(sim.g_provider_by_name("multipath/mp").is_none());
            sim.finish().assert_clean();
        }
    }
}

/// With a label for the new size at the new end (an administrator put it
/// there), the shrunk labelled device lives on at the new size.
#[test]
fn shrunk_labelled_device_with_its_label_shrinks() {
    with_device(4, &DA, &["label", "mp", "da0", "da1"], |sim, lun| {
        let uuid = list(sim, "mp").unwrap().uuid;
        let (md, sector) = label_for("mp", &uuid, SMALL);
        lun.write_raw(SMALL - 512, &sector).unwrap();
        lun.resize(SMALL).unwrap();
        sim.run_until_idle();
        assert_eq!(mp_size(sim, "mp"), SMALL - 512);
        assert!(!logged(sim, "destroying"));
        assert_eq!(label_at(lun, SMALL), Some(md));
        check_state(sim, "mp", "da0", "OPTIMAL", &["ACTIVE", "PASSIVE"]);
    });
}

/// The label cannot be written at the new end: the device still grows and
/// the console says so ("Can't update metadata on P (E)").
#[test]
fn label_write_failure_is_reported() {
    with_device(5, &DA, &["label", "mp", "da0", "da1"], |sim, lun| {
        for i in 0..2 {
            lun.path(i).unwrap().fail_rate(EIO, 1000);
        }
        lun.resize(BIG).unwrap();
        sim.run_until_idle();
        assert_eq!(mp_size(sim, "mp"), BIG - 512);
        assert!(
            sim.log_lines().iter().any(|l| l
                .starts_with("GEOM_MULTIPATH: Can't update metadata on da")
                && l.ends_with(&format!("({EIO})"))),
            "{:?}",
            sim.log_lines()
        );
        assert!(label_at(lun, BIG).is_none());
        // The label write is not multipath I/O: no path was failed.
        check_state(sim, "mp", "da0", "OPTIMAL", &["ACTIVE", "PASSIVE"]);
        for i in 0..2 {
            lun.path(i).unwrap().heal();
        }
    });
}

/// Writes in flight on slow paths while the LUN grows (labelled, label
/// rewritten meanwhile) or shrinks (manual): each completes exactly once,
/// without error, and reads back.
#[test]
fn io_in_flight_during_a_resize_completes() {
    const N: usize = 32;
    for m in modes() {
        for (setup, to) in [
            (&["label", "mp", "da0", "da1"][..], BIG),
            (&["create", "-A", "mp", "da0", "da1"][..], SMALL),
        ] {
            let (sim, lun) = san(m, 6, &["da0", "da1"], SIZE);
            gm(&sim, setup);
            for i in 0..2 {
                lun.path(i).unwrap().set_latency(2000, 1500);
            }
            let dev = sim.open("multipath/mp", Access::new(1, 1, 0)).unwrap();
            let w = submit_writes(&dev, N, 4096);
            lun.resize(to).unwrap();
            assert!(sim.run_until(|| w.done() == N as u64));
            sim.run_until_idle();
            let got = w.results();
            assert!(got.iter().all(|e| *e == Some(0)), "{setup:?}: {got:?}");
            let want = if setup[0] == "label" { to - 512 } else { to };
            assert_eq!(mp_size(&sim, "mp"), want, "{setup:?}");
            for i in 0..N {
                assert_eq!(
                    dev.read((i as u64) * 4096, 4096).unwrap(),
                    vec![fill(i); 4096]
                );
            }
            drop(dev);
            sim.finish().assert_clean();
        }
    }
}
