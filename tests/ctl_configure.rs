//! `gmultipath configure`: which mode flag wins, the label rewritten (or,
//! for a device without one, not written), and a failed write changing
//! nothing.

mod common;

use common::ctl::{
    assert_readable, fill_last_sector, last_sector, lines_since, ok, refused, refused_stock,
    retaste, stock, with_failing_label, with_two_path, write_data, DA, UUID,
};
use common::{check_state, gm, list, with_device, with_san, SIZE};
use geom_sim::EIO;

/// P beats R beats A; no flag leaves the mode alone.
#[test]
fn configure_precedence() {
    with_two_path(124, |sim, lun| {
        // A manual device exposes its last sector: configure leaves it alone.
        fill_last_sector(sim, 0x5a);
        let data = write_data(sim, "mp", 13);
        let cases: [(&[&str], &str); 9] = [
            (&["active_active"], "Active/Active"),
            (&[], "Active/Active"),
            (&["active_read"], "Active/Read"),
            (&["active_active", "active_read"], "Active/Read"),
            (&[], "Active/Read"),
            (&["active_passive", "active_read"], "Active/Passive"),
            (&["active_active"], "Active/Active"),
            (&["active_active", "active_passive"], "Active/Passive"),
            (
                &["active_active", "active_passive", "active_read"],
                "Active/Passive",
            ),
        ];
        for (flags, mode) in cases {
            let from = sim.log_lines().len();
            assert_eq!(ok(sim, "configure", flags, &["mp"]), "");
            assert_eq!(list(sim, "mp").unwrap().mode, mode, "configure {flags:?}");
            assert!(lines_since(sim, from).is_empty());
            assert_eq!(last_sector(lun), vec![0x5a; 512], "label area touched");
        }
        // Through the stock tool's option letters too.
        gm(sim, &["configure", "-AR", "mp"]);
        assert_eq!(list(sim, "mp").unwrap().mode, "Active/Read");
        gm(sim, &["configure", "-RP", "mp"]);
        assert_eq!(list(sim, "mp").unwrap().mode, "Active/Passive");
        gm(sim, &["configure", "-A", "mp"]);
        check_state(sim, "mp", "da1 da0", "OPTIMAL", &["ACTIVE", "ACTIVE"]);
        assert_readable(sim, "mp", &data);
        assert_eq!(
            sim.gmultipath(&["configure", "-X", "mp"]),
            Err("Invalid option -X.".to_string())
        );
    });
}

/// On a labelled device configure rewrites the label's mode byte (and
/// nothing else of it); taste then honours the new mode.
#[test]
fn configure_rewrites_the_label() {
    with_device(125, &DA, &["label", "mp", "da0", "da1"], |sim, lun| {
        check_state(sim, "mp", "da0", "OPTIMAL", &["ACTIVE", "PASSIVE"]);
        let label = last_sector(lun);
        assert_eq!(label[88], 0);
        for (flags, byte, mode) in [
            (&["active_active"][..], 1u8, "Active/Active"),
            (&["active_read"][..], 2, "Active/Read"),
            (
                &["active_active", "active_read", "active_passive"][..],
                0,
                "Active/Passive",
            ),
            (&["active_read", "active_active"][..], 2, "Active/Read"),
        ] {
            ok(sim, "configure", flags, &["mp"]);
            assert_eq!(list(sim, "mp").unwrap().mode, mode);
            let now = last_sector(lun);
            let mut expect = label.clone();
            expect[88] = byte;
            assert_eq!(
                now, expect,
                "configure {flags:?}: only the mode byte changes"
            );
        }
        // Stopped and tasted again, it comes back in Active/Read.
        ok(sim, "stop", &[], &["mp"]);
        assert!(list(sim, "mp").is_none());
        retaste(sim, "da0");
        retaste(sim, "da1");
        check_state(sim, "mp", "da0", "OPTIMAL", &["ACTIVE", "READ"]);
        refused_stock(
            sim,
            &[lun],
            "configure",
            &["nope"],
            "Device nope is invalid",
        );
    });
}

/// A label that cannot be rewritten: an error, and the mode is unchanged.
#[test]
fn configure_write_failure_changes_nothing() {
    with_failing_label(126, |sim, lun| {
        refused(
            sim,
            &[lun],
            stock("configure", &["active_active"], &["mp"]),
            &format!("Can't update metadata on da0 ({EIO})"),
        );
        assert_eq!(list(sim, "mp").unwrap().mode, "Active/Passive");
        lun.path(0).unwrap().heal();
        ok(sim, "configure", &["active_active"], &["mp"]);
        assert_eq!(last_sector(lun)[88], 1);
    });
}

/// Likewise configure must not write a label over the last sector of a
/// device that has none (it would also make the device come back by taste).
#[test]
fn configure_of_a_uuid_form_device_writes_no_label() {
    with_san(138, &DA, |sim, lun| {
        lun.write_raw(SIZE - 512, &[0x42; 512]).unwrap();
        ok(sim, "create", &[], &["mp", "da0", "da1", UUID]);
        ok(sim, "configure", &["active_active"], &["mp"]);
        assert_eq!(list(sim, "mp").unwrap().mode, "Active/Active");
        assert_eq!(last_sector(lun), vec![0x42; 512], "configure wrote a label");
    });
}
