//! FreeBSD's own test suite for gmultipath (tests/sys/geom/class/multipath:
//! the eleven cases of misc.sh and failloop.sh), rewritten for the
//! simulator. md(4) disks become paths of one simulated LUN; gnop(8) fault
//! injection becomes path faults. Each runs under both schedulers.

mod common;

use common::{check_state, gm, list, logged, with_device};
use geom_sim::{Access, Errno, Sim, EIO};

const MD: [&str; 3] = ["md0", "md1", "md2"];

/// dd(1) of one 4 KiB block of zeroes to the multipath device `mp`, which
/// must open: the write's result.
fn write_block(sim: &Sim) -> Result<(), Errno> {
    let dev = sim
        .open("multipath/mp", Access::new(0, 1, 0))
        .expect("open multipath/mp");
    dev.write(0, &[0u8; 4096])
}

#[test]
fn add() {
    with_device(1, &MD, &["create", "mp", "md0", "md1"], |sim, _lun| {
        check_state(sim, "mp", "md0", "OPTIMAL", &["ACTIVE", "PASSIVE"]);
        gm(sim, &["add", "mp", "md2"]);
        check_state(
            sim,
            "mp",
            "md0",
            "OPTIMAL",
            &["ACTIVE", "PASSIVE", "PASSIVE"],
        );
    });
}

#[test]
fn create_a() {
    with_device(
        2,
        &MD[..2],
        &["create", "-A", "mp", "md0", "md1"],
        |sim, _lun| {
            // Active/active lists every good path, newest first.
            check_state(sim, "mp", "md1 md0", "OPTIMAL", &["ACTIVE", "ACTIVE"]);
        },
    );
}

#[test]
fn create_r() {
    with_device(
        3,
        &MD[..2],
        &["create", "-R", "mp", "md0", "md1"],
        |sim, _lun| {
            check_state(sim, "mp", "md0", "OPTIMAL", &["ACTIVE", "READ"]);
        },
    );
}

/// A labelled path that departs is removed from the device by itself; when
/// it arrives again, taste puts it back.
#[test]
fn depart_and_arrive() {
    with_device(4, &MD[..2], &["label", "mp", "md0", "md1"], |sim, lun| {
        let count = |sim: &Sim| list(sim, "mp").map(|g| g.paths.len()).unwrap_or(0);
        assert_eq!(count(sim), 2, "{:?}", list(sim, "mp"));
        lun.path(0).unwrap().die();
        sim.run_until_idle();
        assert_eq!(count(sim), 1);
        lun.path(0).unwrap().revive();
        sim.run_until_idle();
        assert_eq!(count(sim), 2);
        assert_eq!(list(sim, "mp").unwrap().state, "OPTIMAL");
    });
}

#[test]
fn fail() {
    with_device(5, &MD[..2], &["create", "mp", "md0", "md1"], |sim, _lun| {
        gm(sim, &["fail", "mp", "md0"]);
        check_state(sim, "mp", "md1", "DEGRADED", &["FAIL", "ACTIVE"]);
    });
}

#[test]
fn fail_on_error() {
    with_device(6, &MD[..2], &["create", "mp", "md0", "md1"], |sim, lun| {
        lun.path(0).unwrap().fail_rate(EIO, 1000);
        assert_eq!(write_block(sim), Ok(()), "failover and retry succeed");
        check_state(sim, "mp", "md1", "DEGRADED", &["FAIL", "ACTIVE"]);
    });
}

#[test]
fn prefer() {
    with_device(
        7,
        &MD,
        &["create", "mp", "md0", "md1", "md2"],
        |sim, _lun| {
            gm(sim, &["prefer", "mp", "md2"]);
            check_state(
                sim,
                "mp",
                "md2",
                "OPTIMAL",
                &["PASSIVE", "PASSIVE", "ACTIVE"],
            );
        },
    );
}

#[test]
fn restore() {
    with_device(8, &MD[..2], &["create", "mp", "md0", "md1"], |sim, _lun| {
        gm(sim, &["fail", "mp", "md0"]);
        check_state(sim, "mp", "md1", "DEGRADED", &["FAIL", "ACTIVE"]);
        gm(sim, &["restore", "mp", "md0"]);
        // No failback: the restored path waits as a spare.
        check_state(sim, "mp", "md1", "OPTIMAL", &["PASSIVE", "ACTIVE"]);
    });
}

#[test]
fn restore_on_error() {
    with_device(9, &MD[..2], &["create", "mp", "md0", "md1"], |sim, lun| {
        gm(sim, &["fail", "mp", "md0"]);
        lun.path(1).unwrap().fail_rate(EIO, 1000);
        // md1's error restores md0 automatically and the retry succeeds.
        assert_eq!(write_block(sim), Ok(()));
        check_state(sim, "mp", "md0", "DEGRADED", &["ACTIVE", "FAIL"]);
    });
}

#[test]
fn rotate() {
    with_device(
        10,
        &MD,
        &["create", "mp", "md0", "md1", "md2"],
        |sim, _lun| {
            // Each rotate moves the active role one path back, and the
            // third returns it to md0.
            for (active, states) in [
                ("md2", ["PASSIVE", "PASSIVE", "ACTIVE"]),
                ("md1", ["PASSIVE", "ACTIVE", "PASSIVE"]),
                ("md0", ["ACTIVE", "PASSIVE", "PASSIVE"]),
            ] {
                gm(sim, &["rotate", "mp"]);
                check_state(sim, "mp", active, "OPTIMAL", &states);
            }
        },
    );
}

/// FreeBSD PR 178473: a persistent failure of every path must end the I/O
/// with an error, not loop, and restore paths at most twice.
#[test]
fn failloop() {
    with_device(11, &MD[..2], &["create", "mp", "md0", "md1"], |sim, lun| {
        sim.set_notaste(true);
        lun.path(0).unwrap().fail_rate(EIO, 1000);
        lun.path(1).unwrap().fail_rate(EIO, 1000);
        assert_eq!(write_block(sim), Err(EIO), "the write fails, and returns");
        sim.run_until_idle();
        let restores = sim
            .log_lines()
            .iter()
            .filter(|l| l.contains("were marked FAIL, restore"))
            .count();
        // One automatic restore when the last good path fails (FreeBSD's
        // test allows two), and none after the write gave up.
        assert!((1..=2).contains(&restores), "{restores} restores");
        assert!(logged(sim, "Error 5, md0 in mp marked FAIL"));
        assert!(logged(sim, "Error 5, md1 in mp marked FAIL"));
        // md0 failed first and was restored when md1, the last good path,
        // failed: it is active again, md1 stays FAIL. (getactive prints
        // "none" when nothing is active, so it is never empty.)
        check_state(sim, "mp", "md0", "DEGRADED", &["ACTIVE", "FAIL"]);
    });
}
