//! The verbs that choose among a device's paths: `fail`, `restore`,
//! `prefer`, `rotate` and `getactive` (its output buffer included), in
//! each mode.

mod common;

use common::ctl::{
    assert_readable, lines_since, logs_of, ok, refused, refused_stock, with_three_path,
    with_two_path, write_data, DA,
};
use common::{check_state, gm, logged, with_san};
use geom_sim::SimCtlReq;

#[test]
fn fail_and_restore_accept_dev_prefix() {
    with_two_path(120, |sim, lun| {
        let data = write_data(sim, "mp", 7);
        let (_, lines) = logs_of(sim, || ok(sim, "fail", &[], &["mp", "/dev/da0"]));
        assert_eq!(
            lines,
            [
                "GEOM_MULTIPATH: da0 in mp is marked FAIL.",
                "GEOM_MULTIPATH: da1 is now active path in mp",
            ]
        );
        check_state(sim, "mp", "da1", "DEGRADED", &["FAIL", "ACTIVE"]);
        assert_readable(sim, "mp", &data);
        // Again: nothing to do, nothing said.
        let from = sim.log_lines().len();
        ok(sim, "fail", &[], &["mp", "da0"]);
        ok(sim, "restore", &[], &["mp", "da1"]);
        assert!(lines_since(sim, from).is_empty());
        check_state(sim, "mp", "da1", "DEGRADED", &["FAIL", "ACTIVE"]);
        ok(sim, "restore", &[], &["mp", "/dev/da0"]);
        assert_eq!(
            lines_since(sim, from),
            ["GEOM_MULTIPATH: da0 in mp is marked OK."]
        );
        // No failback.
        check_state(sim, "mp", "da1", "OPTIMAL", &["PASSIVE", "ACTIVE"]);
        for verb in ["fail", "restore"] {
            refused_stock(sim, &[lun], verb, &["mp", "da9"], "Provider da9 not found");
            refused_stock(
                sim,
                &[lun],
                verb,
                &["mp", "/dev/da9"],
                "Provider da9 not found",
            );
        }
        assert_readable(sim, "mp", &data);
    });
}

/// Failing the last good path brings the others back (FreeBSD's automatic
/// restore); a single path cannot be failed at all.
#[test]
fn fail_of_the_last_good_path_restores_the_others() {
    with_two_path(121, |sim, _lun| {
        let data = write_data(sim, "mp", 8);
        ok(sim, "fail", &[], &["mp", "da0"]);
        let from = sim.log_lines().len();
        ok(sim, "fail", &[], &["mp", "da1"]);
        let lines = lines_since(sim, from);
        assert!(
            lines.contains(&"GEOM_MULTIPATH: all paths in mp were marked FAIL, restore da0".into()),
            "{lines:?}"
        );
        check_state(sim, "mp", "da0", "DEGRADED", &["ACTIVE", "FAIL"]);
        assert_readable(sim, "mp", &data);

        ok(sim, "remove", &[], &["mp", "da1"]);
        ok(sim, "fail", &[], &["mp", "da0"]);
        assert!(logged(
            sim,
            "GEOM_MULTIPATH: all paths in mp were marked FAIL, restore da0"
        ));
        check_state(sim, "mp", "da0", "DEGRADED", &["ACTIVE"]);
        assert_readable(sim, "mp", &data);
    });
}

#[test]
fn prefer_a_path() {
    with_three_path(122, |sim, lun| {
        let data = write_data(sim, "mp", 9);
        let from = sim.log_lines().len();
        // The stock tool: userland checks, then the kernel request.
        assert_eq!(gm(sim, &["prefer", "mp", "/dev/da2"]), "");
        assert_eq!(
            lines_since(sim, from),
            ["GEOM_MULTIPATH: da2 now active path in mp"]
        );
        check_state(
            sim,
            "mp",
            "da2",
            "OPTIMAL",
            &["PASSIVE", "PASSIVE", "ACTIVE"],
        );
        assert_eq!(gm(sim, &["prefer", "-v", "mp", "da1"]), "Done.\n");
        check_state(
            sim,
            "mp",
            "da1",
            "OPTIMAL",
            &["PASSIVE", "ACTIVE", "PASSIVE"],
        );
        assert_readable(sim, "mp", &data);

        // Not two arguments: the userland says so, the kernel too.
        assert_eq!(
            sim.gmultipath(&["prefer", "mp", "da0", "da2"]),
            Err("Usage: prefer GEOM PROVIDER".to_string())
        );
        refused_stock(
            sim,
            &[lun],
            "prefer",
            &["mp", "da0", "da2"],
            "missing device",
        );
        refused_stock(sim, &[lun], "prefer", &["mp"], "missing device");
        refused_stock(
            sim,
            &[lun],
            "prefer",
            &["mp", "da9"],
            "Provider da9 not found",
        );
        // A failed path cannot be preferred.
        ok(sim, "fail", &[], &["mp", "da0"]);
        refused_stock(
            sim,
            &[lun],
            "prefer",
            &["mp", "da0"],
            "Consumer da0 is invalid",
        );
        assert_eq!(
            sim.gmultipath(&["prefer", "mp", "da0"]),
            Err("Can't set mp preferred provider to da0: Consumer da0 is invalid.".to_string())
        );
        check_state(sim, "mp", "da1", "DEGRADED", &["FAIL", "ACTIVE", "PASSIVE"]);
    });
}

/// prefer says nothing outside Active/Passive; in Active/Read it picks the
/// write path, in Active/Active getactive still lists every path.
#[test]
fn prefer_in_other_modes() {
    with_san(123, &DA, |sim, _lun| {
        ok(sim, "create", &["active_read"], &["mp", "da0", "da1"]);
        let from = sim.log_lines().len();
        gm(sim, &["prefer", "mp", "da1"]);
        assert!(lines_since(sim, from).is_empty());
        check_state(sim, "mp", "da1", "OPTIMAL", &["READ", "ACTIVE"]);
        ok(sim, "configure", &["active_active"], &["mp"]);
        gm(sim, &["prefer", "mp", "da0"]);
        assert!(lines_since(sim, from).is_empty());
        check_state(sim, "mp", "da1 da0", "OPTIMAL", &["ACTIVE", "ACTIVE"]);
        // Back to Active/Read: the preferred path is the write path.
        ok(sim, "configure", &["active_read"], &["mp"]);
        check_state(sim, "mp", "da0", "OPTIMAL", &["ACTIVE", "READ"]);
    });
}

#[test]
fn rotate_and_getactive_outputs() {
    with_three_path(127, |sim, lun| {
        let data = write_data(sim, "mp", 14);
        assert_eq!(ok(sim, "getactive", &[], &["mp"]), "da0\n");
        assert_eq!(gm(sim, &["getactive", "-v", "mp"]), "da0\nDone.\n");
        let from = sim.log_lines().len();
        assert_eq!(ok(sim, "rotate", &[], &["mp"]), "");
        assert_eq!(
            lines_since(sim, from),
            ["GEOM_MULTIPATH: da2 is now active path in mp"]
        );
        assert_eq!(ok(sim, "getactive", &[], &["mp"]), "da2\n");
        assert_eq!(gm(sim, &["rotate", "-v", "mp"]), "Done.\n");
        assert_eq!(ok(sim, "getactive", &[], &["mp"]), "da1\n");
        // rotate skips a failed path.
        ok(sim, "fail", &[], &["mp", "da0"]);
        ok(sim, "rotate", &[], &["mp"]);
        assert_eq!(ok(sim, "getactive", &[], &["mp"]), "da2\n");
        ok(sim, "rotate", &[], &["mp"]);
        assert_eq!(ok(sim, "getactive", &[], &["mp"]), "da1\n");
        ok(sim, "restore", &[], &["mp", "da0"]);
        // Active/Active: every good path, newest first; rotate says nothing.
        ok(sim, "configure", &["active_active"], &["mp"]);
        assert_eq!(ok(sim, "getactive", &[], &["mp"]), "da2 da1 da0\n");
        let from = sim.log_lines().len();
        ok(sim, "rotate", &[], &["mp"]);
        assert!(lines_since(sim, from).is_empty());
        ok(sim, "fail", &[], &["mp", "da1"]);
        assert_eq!(ok(sim, "getactive", &[], &["mp"]), "da2 da0\n");
        // Active/Read: only the write path.
        ok(sim, "configure", &["active_read"], &["mp"]);
        assert_eq!(ok(sim, "getactive", &[], &["mp"]), "da0\n");
        assert_readable(sim, "mp", &data);
        refused_stock(sim, &[lun], "rotate", &["nope"], "Device nope is invalid");
    });
}

/// getactive needs a writable output buffer big enough for the answer.
#[test]
fn getactive_output_buffer_problems() {
    with_two_path(128, |sim, lun| {
        let req = |output: Option<(usize, bool)>| {
            let mut r = SimCtlReq::geom_cmd("MULTIPATH", "getactive", &[], &["mp"], false);
            match output {
                Some((n, true)) => {
                    r.add_output("output", n);
                }
                Some((n, false)) => {
                    r.add_raw("output", &vec![0; n], false);
                }
                None => {}
            }
            r
        };
        refused(sim, &[lun], req(None), "Missing output argument");
        refused(
            sim,
            &[lun],
            req(Some((4, true))),
            "Wrong length output argument",
        );
        refused(
            sim,
            &[lun],
            req(Some((4096, false))),
            "No write access output argument",
        );
        let r = sim.gctl(req(Some((5, true))));
        assert_eq!(
            (r.error_text(), r.text("output")),
            (None, Some("da0\n".into()))
        );
    });
}
