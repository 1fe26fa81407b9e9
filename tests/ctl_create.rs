//! `gmultipath create` (the manual device, no label): the request as
//! geom(8) builds it, its outcome, the original form with a uuid, and each
//! bad input with its exact error text and no change at all.

mod common;

use common::ctl::{
    assert_readable, field, last_sector, lines_since, ok, open_mp, other_lun, paths_of,
    refused_stock, retaste, stock, with_two_path, world, write_data, DA, UUID,
};
use common::{check_state, getactive, gm, list, with_san, SIZE};
use geom_sim::{Access, EPERM};

#[test]
fn create_makes_a_manual_device() {
    with_san(111, &DA, |sim, lun| {
        let from = sim.log_lines().len();
        assert_eq!(ok(sim, "create", &[], &["mp", "da0", "/dev/da1"]), "");
        assert_eq!(
            lines_since(sim, from),
            [
                "GEOM_MULTIPATH: mp created",
                "GEOM_MULTIPATH: da0 added to mp",
                "GEOM_MULTIPATH: da0 is now active path in mp",
                "GEOM_MULTIPATH: da1 added to mp",
            ]
        );
        check_state(sim, "mp", "da0", "OPTIMAL", &["ACTIVE", "PASSIVE"]);
        let g = list(sim, "mp").unwrap();
        assert_eq!(paths_of(&g), ["da0", "da1"]);
        assert_eq!((g.kind.as_str(), g.uuid.as_str()), ("MANUAL", ""));
        assert_eq!((g.mediasize, g.sectorsize), (SIZE, 512));
        // The whole LUN is usable, the last sector included; no label.
        let dev = open_mp(sim, Access::new(1, 1, 0));
        dev.write(SIZE - 512, &[0xa5; 512])
            .expect("write last sector");
        assert_eq!(dev.read(SIZE - 512, 512).unwrap(), vec![0xa5; 512]);
        drop(dev);
        assert_eq!(last_sector(lun), vec![0xa5; 512]);
        // The paths are held exclusively.
        assert_eq!(sim.open("da0", Access::new(0, 1, 0)).err(), Some(EPERM));
        // A 15-character name is fine.
        ok(
            sim,
            "create",
            &["active_active"],
            &["fifteen_chars_x", "da2"],
        );
        assert_eq!(getactive(sim, "fifteen_chars_x"), "da2");
    });
}

#[test]
fn create_refuses_bad_input() {
    with_san(112, &DA, |sim, lun| {
        let big = other_lun(sim, &["db0"], 2 * SIZE, 512);
        let wide = other_lun(sim, &["dc0"], SIZE, 4096);
        let luns = [lun, &big, &wide];
        let cr = |args: &[&str], text: &str| refused_stock(sim, &luns, "create", args, text);
        cr(&["mp"], "wrong number of arguments.");
        cr(&["mp", "da9"], "Provider da9 is invalid");
        cr(&["mp", "da0", "/dev/da9"], "Provider da9 is invalid");
        cr(&["mp", "da0", "da0"], "provider da0 is already there");
        cr(&["mp", "/dev/da1", "da1"], "provider da1 is already there");
        cr(
            &["mp", "da0", "db0"],
            "Providers size mismatch 1048576 != 2097152",
        );
        cr(
            &["mp", "da0", "dc0"],
            "Providers sectorsize mismatch 512 != 4096",
        );
        cr(
            &["mp", "da0", "da1", "da2", "db0"],
            "Providers size mismatch 1048576 != 2097152",
        );
        // Over 15 characters: refused, where FreeBSD silently truncates.
        cr(
            &["sixteen_chars_xx", "da0", "da1"],
            "Invalid name sixteen_chars_xx: name is 16 bytes long, at most 15 bytes fit in the label",
        );
        cr(&["", "da0"], "Invalid name : name is empty");
        // And so nothing answers to the long name or its truncation.
        refused_stock(
            sim,
            &luns,
            "getactive",
            &["sixteen_chars_x"],
            "Device sixteen_chars_x is invalid",
        );
        // The name is taken.
        ok(sim, "create", &[], &["mp", "da0", "da1"]);
        cr(&["mp", "da2"], "Device mp already exist");
    });
}

/// A path another device holds exclusively cannot be added: the half-made
/// device is taken down again and the other one is untouched.
#[test]
fn create_with_a_busy_path_leaves_nothing() {
    with_two_path(113, |sim, _lun| {
        let data = write_data(sim, "mp", 3);
        let r = sim.gctl(stock("create", &[], &["mp2", "da2", "da0"]));
        sim.run_until_idle();
        assert_eq!(
            r.error_text(),
            Some(format!("Provider addition error: {EPERM}").as_str())
        );
        assert!(list(sim, "mp2").is_none());
        assert!(sim.g_provider_by_name("multipath/mp2").is_none());
        check_state(sim, "mp", "da0", "OPTIMAL", &["ACTIVE", "PASSIVE"]);
        assert_readable(sim, "mp", &data);
        // da2 was let go again.
        retaste(sim, "da2");
    });
}

/// The 2007 form `create NAME PROV0 PROV1 UUID`: a device with that uuid
/// whose provider hides the last sector, though nothing is written.
#[test]
fn create_original_form_with_uuid() {
    with_san(114, &DA, |sim, lun| {
        refused_stock(
            sim,
            &[lun],
            "create",
            &["mp", "da0", "da1", "0f1e2d3c-4b5a-4697-8877-6655443322zz"],
            "Malformed uuid argument",
        );
        refused_stock(
            sim,
            &[lun],
            "create",
            &["mp", "da0", "da1", "0f1e2d3c-4b5a-4697-8877-66"],
            "Malformed uuid argument",
        );
        ok(sim, "create", &[], &["mp", "da0", "da1", UUID]);
        check_state(sim, "mp", "da0", "OPTIMAL", &["ACTIVE", "PASSIVE"]);
        let g = list(sim, "mp").unwrap();
        assert_eq!((g.kind.as_str(), g.uuid.as_str()), ("AUTOMATIC", UUID));
        assert_eq!(g.mediasize, SIZE - 512);
        assert_eq!(paths_of(&g), ["da0", "da1"]);
        assert!(last_sector(lun).iter().all(|&b| b == 0), "nothing written");
        let data = write_data(sim, "mp", 4);
        assert_readable(sim, "mp", &data);
    });
}

/// A uuid is a device's identity: taste adds every path whose label has
/// it to the live device with that uuid. The uuid form of create must
/// therefore refuse a uuid a live device already has; otherwise a path of
/// one LUN is later tasted into a device built on another LUN.
#[test]
fn create_refuses_a_uuid_in_use() {
    with_san(139, &DA, |sim, lun| {
        let other = other_lun(sim, &["db0"], SIZE, 512);
        gm(sim, &["label", "lp", "da0", "da1"]);
        let uuid = field(&last_sector(lun), 16, 40);
        let before = world(sim, &[lun, &other]);
        let r = sim.gctl(stock("create", &[], &["mp2", "db0", &uuid]));
        sim.run_until_idle();
        let after = world(sim, &[lun, &other]);
        // What refusing spares: da0, tasted again, joining a db0 device.
        if r.error_text().is_none() {
            ok(sim, "stop", &[], &["lp"]);
            retaste(sim, "da0");
            let g = list(sim, "mp2").unwrap();
            panic!(
                "create accepted uuid {uuid}; after a retaste: {:?}",
                g.paths
            );
        }
        assert_eq!(before, after);
    });
}
