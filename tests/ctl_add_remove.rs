//! `gmultipath add` and `remove`: a path joins or leaves a device, labelled
//! or manual, open or not, the last path taking the device with it; each
//! bad input with its exact error text and no change at all.

mod common;

use common::ctl::{
    assert_readable, check_added_da2, last_sector, lines_since, logs_of, ok, open_mp, other_lun,
    paths_of, refused_stock, retaste, stock, with_three_path, with_two_path, write_data, DA,
};
use common::{check_state, gm, list, logged, with_device, with_san, SIZE};
use geom_sim::{Access, Dev, Sim};

/// Writes a pattern through `mp` (see [`write_data`]), then opens the
/// device with `access` and keeps it open: the pattern and the device.
fn written_and_open(sim: &Sim, seed: u8, access: Access) -> (Vec<u8>, Dev) {
    let data = write_data(sim, "mp", seed);
    (data, open_mp(sim, access))
}

#[test]
fn add_a_path() {
    with_two_path(115, |sim, lun| {
        let data = write_data(sim, "mp", 5);
        let from = sim.log_lines().len();
        assert_eq!(ok(sim, "add", &[], &["mp", "/dev/da2"]), "");
        assert_eq!(lines_since(sim, from), ["GEOM_MULTIPATH: da2 added to mp"]);
        check_added_da2(sim);
        assert_eq!(paths_of(&list(sim, "mp").unwrap()), DA);
        // The new path is usable: it carries the I/O once it is the only one.
        ok(sim, "fail", &[], &["mp", "da0"]);
        ok(sim, "fail", &[], &["mp", "da1"]);
        // Failing da1 with da2 good restores nobody.
        check_state(sim, "mp", "da2", "DEGRADED", &["FAIL", "FAIL", "ACTIVE"]);
        let before = lun.path(2).unwrap().counts().completed;
        assert_readable(sim, "mp", &data);
        assert!(
            lun.path(2).unwrap().counts().completed > before,
            "read via da2"
        );
    });
}

#[test]
fn add_refuses_bad_input() {
    with_two_path(116, |sim, lun| {
        let big = other_lun(sim, &["db0"], 2 * SIZE, 512);
        let wide = other_lun(sim, &["dc0"], SIZE, 4096);
        let luns = [lun, &big, &wide];
        let add = |args: &[&str], text: &str| refused_stock(sim, &luns, "add", args, text);
        add(&["mp", "da9"], "Provider da9 is invalid");
        add(&["mp", "/dev/da9"], "Provider da9 is invalid");
        add(&["mp", "da0"], "provider da0 is already there");
        add(&["mp", "/dev/da1"], "provider da1 is already there");
        add(&["mp", "db0"], "Providers size mismatch 1048576 != 2097152");
        add(&["mp", "dc0"], "Providers sectorsize mismatch 512 != 4096");
        add(&["nope", "da2"], "Device nope not found");
        // The device itself as its own path would be a loop.
        let r = sim.gctl(stock("add", &[], &["mp", "multipath/mp"]));
        sim.run_until_idle();
        assert!(
            r.error_text()
                .is_some_and(|e| e.starts_with("Provider addition error")),
            "{:?}",
            r.error_text()
        );
        check_state(sim, "mp", "da0", "OPTIMAL", &["ACTIVE", "PASSIVE"]);
    });
}

/// add works on a labelled device too; its size rule counts the label.
#[test]
fn add_to_a_labelled_device() {
    with_san(117, &DA, |sim, lun| {
        let short = other_lun(sim, &["db0"], SIZE - 512, 512);
        gm(sim, &["label", "mp", "da0"]);
        let g = list(sim, "mp").expect("tasted");
        assert_eq!(paths_of(&g), ["da0"]);
        assert_eq!(g.mediasize, SIZE - 512);
        refused_stock(
            sim,
            &[lun, &short],
            "add",
            &["mp", "db0"],
            "Providers size mismatch 1048576 != 1048064",
        );
        ok(sim, "add", &[], &["mp", "da1"]);
        check_state(sim, "mp", "da0", "OPTIMAL", &["ACTIVE", "PASSIVE"]);
        assert_eq!(list(sim, "mp").unwrap().kind, "AUTOMATIC");
    });
}

#[test]
fn remove_a_path() {
    with_three_path(118, |sim, lun| {
        let data = write_data(sim, "mp", 6);
        // The active one, named with /dev/ (FreeBSD would not find it).
        let (_, lines) = logs_of(sim, || ok(sim, "remove", &[], &["mp", "/dev/da0"]));
        assert_eq!(lines[0], "GEOM_MULTIPATH: removing da0 from mp");
        assert!(lines.contains(&"GEOM_MULTIPATH: da0 removed from mp".to_string()));
        assert!(lines.contains(&"GEOM_MULTIPATH: da2 is now active path in mp".to_string()));
        check_state(sim, "mp", "da2", "OPTIMAL", &["PASSIVE", "ACTIVE"]);
        assert_eq!(paths_of(&list(sim, "mp").unwrap()), ["da1", "da2"]);
        assert_readable(sim, "mp", &data);
        // The removed path is free again.
        retaste(sim, "da0");
        assert!(list(sim, "mp").is_some());
        refused_stock(
            sim,
            &[lun],
            "remove",
            &["mp", "da0"],
            "Provider da0 not found",
        );
        refused_stock(
            sim,
            &[lun],
            "remove",
            &["mp", "da9"],
            "Provider da9 not found",
        );
        refused_stock(
            sim,
            &[lun],
            "remove",
            &["nope", "da1"],
            "Device nope not found",
        );
    });
}

/// Removing the last path destroys the device.
#[test]
fn remove_last_path_destroys_the_geom() {
    with_two_path(119, |sim, _lun| {
        ok(sim, "remove", &[], &["mp", "da1"]);
        check_state(sim, "mp", "da0", "DEGRADED", &["ACTIVE"]);
        ok(sim, "remove", &[], &["mp", "da0"]);
        assert!(list(sim, "mp").is_none());
        assert!(sim.g_provider_by_name("multipath/mp").is_none());
        assert!(logged(sim, "GEOM_MULTIPATH: out of providers for mp"));
        assert!(logged(sim, "GEOM_MULTIPATH: mp destroyed"));
        // Both paths were let go, and the name is free again.
        retaste(sim, "da0");
        retaste(sim, "da1");
        ok(sim, "create", &[], &["mp", "da1", "da0"]);
        check_state(sim, "mp", "da1", "OPTIMAL", &["ACTIVE", "PASSIVE"]);
    });
}

/// A path removed from a labelled device is not tasted straight back in
/// (its last writer closing makes GEOM retaste it while still attached).
#[test]
fn remove_from_a_labelled_device_sticks() {
    with_device(134, &DA, &["label", "mp", "da0", "da1"], |sim, lun| {
        let label = last_sector(lun);
        ok(sim, "remove", &[], &["mp", "da1"]);
        check_state(sim, "mp", "da0", "DEGRADED", &["ACTIVE"]);
        assert_eq!(last_sector(lun), label, "remove keeps the label");
        // Tasted again on purpose, it comes back.
        retaste(sim, "da1");
        check_state(sim, "mp", "da0", "OPTIMAL", &["ACTIVE", "PASSIVE"]);
    });
}

/// Paths added to and removed from an open device take over its opens,
/// and give them back: the access counts stay consistent (finish checks).
#[test]
fn add_and_remove_while_open() {
    with_two_path(135, |sim, lun| {
        let (data, dev) = written_and_open(sim, 12, Access::new(1, 1, 0));
        ok(sim, "add", &[], &["mp", "da2"]);
        ok(sim, "remove", &[], &["mp", "da0"]);
        ok(sim, "prefer", &[], &["mp", "da2"]);
        ok(sim, "remove", &[], &["mp", "da1"]);
        check_state(sim, "mp", "da2", "DEGRADED", &["ACTIVE"]);
        let before = lun.path(2).unwrap().counts().started;
        assert_eq!(dev.read(65536, data.len()).unwrap(), data);
        assert!(
            lun.path(2).unwrap().counts().started > before,
            "read on da2"
        );
        drop(dev);
        sim.run_until_idle();
        // Closed again: the removed paths are free, the device can go.
        retaste(sim, "da0");
        ok(sim, "destroy", &[], &["mp"]);
        retaste(sim, "da2");
    });
}

/// Removing the last path of an open device: the device is withered at
/// once (its opener sees ENXIO) and goes at the last close.
#[test]
fn remove_last_path_of_an_open_device() {
    with_two_path(136, |sim, _lun| {
        let (data, dev) = written_and_open(sim, 15, Access::new(1, 0, 0));
        ok(sim, "remove", &[], &["mp", "da0"]);
        assert_eq!(dev.read(65536, data.len()).unwrap(), data);
        ok(sim, "remove", &[], &["mp", "da1"]);
        assert!(list(sim, "mp").is_none());
        assert_eq!(dev.read(65536, 512), Err(geom_sim::ENXIO));
        drop(dev);
        sim.run_until_idle();
        assert!(logged(sim, "GEOM_MULTIPATH: mp destroyed"));
        assert!(sim.g_provider_by_name("multipath/mp").is_none());
        ok(sim, "create", &[], &["mp", "da0", "da1"]);
        assert_readable(sim, "mp", &data);
    });
}
