//! `gmultipath stop` and `destroy`: an open device refused with EBUSY,
//! destroy wiping the label (and only a label), stop keeping it, a manual
//! device, and a wipe that fails keeping the device.

mod common;

use common::ctl::{
    assert_readable, field, fill_last_sector, last_sector, lines_since, ok, open_mp, paths_of,
    refused_stock, retaste, with_failing_label, with_two_path, write_data, DA, UUID,
};
use common::{check_state, gm, list, list_all, logged, with_device, with_san, SIZE};
use geom_sim::{Access, EIO};

/// An open device is neither stopped nor destroyed (EBUSY, our deliberate
/// choice: FreeBSD withers it and finishes at the last close).
#[test]
fn stop_and_destroy_of_an_open_device_fail_with_ebusy() {
    with_device(129, &DA, &["label", "mp", "da0", "da1"], |sim, lun| {
        let data = write_data(sim, "mp", 10);
        let label = last_sector(lun);
        let dev = open_mp(sim, Access::new(1, 0, 0));
        for verb in ["stop", "destroy"] {
            refused_stock(
                sim,
                &[lun],
                verb,
                &["mp"],
                &format!("failed to {verb} mp (err=16): device is open (1 opens), close it first"),
            );
            assert_eq!(
                sim.gmultipath(&[verb, "mp"]),
                Err(format!(
                    "failed to {verb} mp (err=16): device is open (1 opens), close it first"
                ))
            );
        }
        assert_eq!(dev.read(65536, data.len()).unwrap(), data);
        assert_eq!(last_sector(lun), label, "the label is intact");
        check_state(sim, "mp", "da0", "OPTIMAL", &["ACTIVE", "PASSIVE"]);
        drop(dev);
        sim.run_until_idle();
        ok(sim, "destroy", &[], &["mp"]);
        assert!(list(sim, "mp").is_none());
    });
}

/// destroy wipes the label: nothing comes back on retaste.
#[test]
fn destroy_wipes_the_label() {
    with_device(130, &DA, &["label", "mp", "da0", "da1"], |sim, lun| {
        assert_eq!(&last_sector(lun)[..16], b"GEOM::MULTIPATH\0");
        let from = sim.log_lines().len();
        assert_eq!(gm(sim, &["destroy", "-v", "mp"]), "Done.\n");
        let lines = lines_since(sim, from);
        assert!(
            lines.contains(&"GEOM_MULTIPATH: destroying mp".to_string()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"GEOM_MULTIPATH: mp destroyed".to_string()),
            "{lines:?}"
        );
        assert!(list(sim, "mp").is_none());
        assert!(last_sector(lun).iter().all(|&b| b == 0), "label wiped");
        retaste(sim, "da0");
        retaste(sim, "da1");
        assert!(list_all(sim).is_empty());
        refused_stock(sim, &[lun], "destroy", &["mp"], "Device mp is invalid");
    });
}

/// stop keeps the label: the device is not tasted straight back, but it
/// returns when its paths are tasted again (here: one dies and returns,
/// the other is written to and closed).
#[test]
fn stop_keeps_the_label() {
    with_device(
        131,
        &DA,
        &["label", "-A", "mp", "da0", "da1"],
        |sim, lun| {
            let data = write_data(sim, "mp", 11);
            let label = last_sector(lun);
            let uuid = field(&label, 16, 40);
            let from = sim.log_lines().len();
            assert_eq!(ok(sim, "stop", &[], &["mp"]), "");
            assert!(logged(sim, "GEOM_MULTIPATH: mp destroyed"));
            assert!(list(sim, "mp").is_none(), "not tasted straight back");
            assert_eq!(last_sector(lun), label, "label kept");
            assert!(lines_since(sim, from)
                .iter()
                .all(|l| !l.contains("created")));
            let p0 = lun.path(0).unwrap();
            p0.die();
            sim.run_until_idle();
            p0.revive();
            sim.run_until_idle();
            let g = list(sim, "mp").expect("back on retaste");
            assert_eq!(
                (g.uuid.as_str(), g.mode.as_str()),
                (uuid.as_str(), "Active/Active")
            );
            assert_eq!(paths_of(&g), ["da0"]);
            retaste(sim, "da1");
            check_state(sim, "mp", "da1 da0", "OPTIMAL", &["ACTIVE", "ACTIVE"]);
            assert_readable(sim, "mp", &data);
        },
    );
}

/// A manual device: stop and destroy both just take it apart.
#[test]
fn stop_and_destroy_a_manual_device() {
    with_two_path(132, |sim, lun| {
        fill_last_sector(sim, 0x77);
        ok(sim, "stop", &[], &["mp"]);
        assert!(list(sim, "mp").is_none());
        assert_eq!(last_sector(lun), vec![0x77; 512]);
        retaste(sim, "da0");
        ok(sim, "create", &[], &["mp", "da0", "da1"]);
        ok(sim, "destroy", &[], &["mp"]);
        assert!(list(sim, "mp").is_none());
        assert_eq!(last_sector(lun), vec![0x77; 512], "no label to wipe");
        retaste(sim, "da1");
        assert!(list_all(sim).is_empty());
        refused_stock(sim, &[lun], "stop", &["mp"], "Device mp is invalid");
    });
}

/// A label that cannot be wiped: an error, and the device stays.
#[test]
fn destroy_wipe_failure_keeps_the_device() {
    with_failing_label(133, |sim, lun| {
        refused_stock(
            sim,
            &[lun],
            "destroy",
            &["mp"],
            &format!("Can't erase metadata on da0 ({EIO})"),
        );
        lun.path(0).unwrap().heal();
        ok(sim, "destroy", &[], &["mp"]);
        assert!(last_sector(lun).iter().all(|&b| b == 0));
    });
}

/// The uuid form of create writes no label (src/ctl.rs: "a device without
/// an on-disk label"), so destroy has no label to wipe: the path's last
/// sector is not ours and must survive.
#[test]
fn destroy_of_a_uuid_form_device_keeps_the_last_sector() {
    with_san(137, &DA, |sim, lun| {
        lun.write_raw(SIZE - 512, &[0x42; 512]).unwrap();
        ok(sim, "create", &[], &["mp", "da0", "da1", UUID]);
        assert_eq!(last_sector(lun), vec![0x42; 512], "create wrote nothing");
        ok(sim, "destroy", &[], &["mp"]);
        assert!(list(sim, "mp").is_none());
        assert_eq!(
            last_sector(lun),
            vec![0x42; 512],
            "destroy wiped a non-label"
        );
    });
}
