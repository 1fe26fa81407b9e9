//! What every gctl verb of MULTIPATH checks in the request before it
//! acts (arg0, arg1, version, verb, nargs, the bool options' lengths, the
//! strings' terminators), as the stock geom(8) builds the request or a
//! malformed one would: the exact error text and no change at all.

mod common;

use common::ctl::{
    bare, check_added_da2, last_sector, refused, refused_stock, request, with_two_path, DA,
    KERNEL_VERBS,
};
use common::{check_state, gm, list, san, with_san, SIZE};
use geom_sim::SimCtlReq;

#[test]
fn every_verb_without_arg0_is_refused() {
    with_two_path(101, |sim, lun| {
        for verb in KERNEL_VERBS {
            // create looks at nargs first, as FreeBSD does.
            let text = if verb == "create" {
                "wrong number of arguments."
            } else {
                "No 'arg0' argument"
            };
            refused_stock(sim, &[lun], verb, &[], text);
        }
    });
}

/// add/remove/fail/restore say "not found", the others "is invalid".
#[test]
fn every_verb_on_an_unknown_geom_is_refused() {
    with_two_path(102, |sim, lun| {
        for verb in ["add", "remove", "fail", "restore"] {
            refused_stock(sim, &[lun], verb, &["nope", "da2"], "Device nope not found");
        }
        refused_stock(
            sim,
            &[lun],
            "prefer",
            &["nope", "da0"],
            "Device nope is invalid",
        );
        for verb in ["configure", "rotate", "getactive", "stop", "destroy"] {
            refused_stock(sim, &[lun], verb, &["nope"], "Device nope is invalid");
        }
        // A path's name is not a device's.
        refused_stock(sim, &[lun], "getactive", &["da0"], "Device da0 is invalid");
    });
}

#[test]
fn verbs_needing_a_provider_refuse_a_missing_arg1() {
    with_two_path(103, |sim, lun| {
        for verb in ["add", "remove", "fail", "restore"] {
            refused_stock(sim, &[lun], verb, &["mp"], "No 'arg1' argument");
        }
        // prefer with nargs 2 but no arg1 (not something geom(8) sends).
        let mut r = bare("prefer");
        r.add_int("nargs", 2).add_str("arg0", "mp");
        refused(sim, &[lun], r, "No 'arg1' argument");
    });
}

/// A request without `version`, with a wrong one or a malformed one.
#[test]
fn version_is_checked_before_anything() {
    with_san(104, &DA, |sim, lun| {
        let build = |version: Option<&[u8]>, verb: &str| {
            let mut r = SimCtlReq::new();
            r.add_str("class", "MULTIPATH").add_str("verb", verb);
            if let Some(v) = version {
                r.add_raw("version", v, false);
            }
            r.add_int("active_active", 0)
                .add_int("active_read", 0)
                .add_int("nargs", 3)
                .add_str("arg0", "mp")
                .add_str("arg1", "da0")
                .add_str("arg2", "da1")
                .add_output("output", 4096);
            r
        };
        refused(sim, &[lun], build(None, "create"), "No 'version' argument");
        for bad in [0u32, 2, u32::MAX] {
            refused(
                sim,
                &[lun],
                build(Some(&bad.to_ne_bytes()), "create"),
                "Userland and kernel parts are out of sync",
            );
        }
        refused(
            sim,
            &[lun],
            build(Some(&[1, 0]), "create"),
            "Wrong length version argument",
        );
        refused(
            sim,
            &[lun],
            build(Some(&1u64.to_ne_bytes()), "create"),
            "Wrong length version argument",
        );
        // The version check comes before the verb is looked at.
        refused(
            sim,
            &[lun],
            build(None, "frobnicate"),
            "No 'version' argument",
        );
        assert!(list(sim, "mp").is_none());
        // The same request with version 1 works.
        let r = sim.gctl(build(Some(&1u32.to_ne_bytes()), "create"));
        assert_eq!(r.error_text(), None);
        check_state(sim, "mp", "da0", "OPTIMAL", &["ACTIVE", "PASSIVE"]);
    });
}

/// Unknown verbs, and label/clear, which only the userland knows.
#[test]
fn unknown_verbs_are_refused() {
    with_two_path(105, |sim, lun| {
        refused_stock(
            sim,
            &[lun],
            "frobnicate",
            &["mp"],
            "Unknown verb frobnicate",
        );
        refused_stock(sim, &[lun], "list", &[], "Unknown verb list");
        let label = request("label", &[], &["mp2", "da2"], false);
        refused(sim, &[lun], label, "Unknown verb label");
        let clear = request("clear", &[], &["da0"], false);
        refused(sim, &[lun], clear, "Unknown verb clear");
        // No label was written by the kernel.
        assert!(last_sector(lun).iter().all(|&b| b == 0));
        // Through the stock tool, label works: it never reaches the kernel.
        let (sim2, lun2) = san(sim.mode(), 106, &DA[..1], SIZE);
        gm(&sim2, &["label", "mp", "da0"]);
        assert_eq!(&last_sector(&lun2)[..15], b"GEOM::MULTIPATH");
        assert_eq!(
            sim2.gmultipath(&["frobnicate", "mp"]),
            Err("Unknown command: frobnicate.".to_string())
        );
        sim2.finish().assert_clean();
    });
}

/// String parameters must be NUL-terminated text.
#[test]
fn unterminated_string_parameters_are_refused() {
    with_two_path(107, |sim, lun| {
        let bad = |verb: &str, arg0: &[u8], arg1: Option<&[u8]>| {
            let mut r = bare(verb);
            r.add_int("nargs", 1 + i32::from(arg1.is_some()))
                .add_raw("arg0", arg0, false);
            if let Some(a) = arg1 {
                r.add_raw("arg1", a, false);
            }
            r.add_output("output", 4096);
            r
        };
        let msg0 = "Parameter arg0 is not a NUL-terminated UTF-8 string";
        let msg1 = "Parameter arg1 is not a NUL-terminated UTF-8 string";
        refused(sim, &[lun], bad("getactive", b"mp", None), msg0);
        refused(sim, &[lun], bad("destroy", b"mp", None), msg0);
        refused(sim, &[lun], bad("stop", b"m\0p\0", None), msg0);
        refused(sim, &[lun], bad("rotate", b"", None), msg0);
        refused(sim, &[lun], bad("configure", &[0xff, 0xfe, 0], None), msg0);
        refused(sim, &[lun], bad("fail", b"mp\0", Some(b"da0")), msg1);
        refused(sim, &[lun], bad("remove", b"mp\0", Some(b"da0")), msg1);
        refused(sim, &[lun], bad("add", b"mp\0", Some(b"da2")), msg1);
        let mut c = bare("create");
        c.add_int("active_active", 0)
            .add_int("active_read", 0)
            .add_int("nargs", 3)
            .add_str("arg0", "mp2")
            .add_str("arg1", "da2")
            .add_raw("arg2", b"da1", false);
        refused(
            sim,
            &[lun],
            c,
            "Parameter arg2 is not a NUL-terminated UTF-8 string",
        );
    });
}

/// Boolean options travel as 4-byte ints; another length is refused before
/// anything is done (FreeBSD would record the error and act anyway).
#[test]
fn bool_options_with_a_wrong_length_are_refused() {
    with_two_path(108, |sim, lun| {
        let mut c = bare("create");
        c.add_raw("active_active", &[1], false)
            .add_int("active_read", 0)
            .add_int("nargs", 2)
            .add_str("arg0", "mp2")
            .add_str("arg1", "da2")
            .add_output("output", 4096);
        refused(sim, &[lun], c, "Wrong length active_active argument");
        for (opt, raw) in [
            ("active_passive", &[1u8, 0, 0, 0, 0, 0, 0, 0][..]),
            ("active_read", &[][..]),
            ("active_active", &[1, 0][..]),
        ] {
            let mut r = bare("configure");
            for o in ["active_active", "active_passive", "active_read"] {
                if o == opt {
                    r.add_raw(o, raw, false);
                } else {
                    r.add_int(o, 1);
                }
            }
            r.add_int("nargs", 1)
                .add_str("arg0", "mp")
                .add_output("output", 4096);
            refused(sim, &[lun], r, &format!("Wrong length {opt} argument"));
        }
        assert_eq!(list(sim, "mp").unwrap().mode, "Active/Passive");
    });
}

/// Without the option parameters, create and configure simply act as if
/// none was set, and record no error (FreeBSD records one and acts).
#[test]
fn missing_bool_options_mean_unset() {
    with_san(109, &DA, |sim, _lun| {
        let mut c = bare("create");
        c.add_int("nargs", 3)
            .add_str("arg0", "mp")
            .add_str("arg1", "da0")
            .add_str("arg2", "da1");
        assert_eq!(sim.gctl(c).error_text(), None);
        check_state(sim, "mp", "da0", "OPTIMAL", &["ACTIVE", "PASSIVE"]);
        assert_eq!(list(sim, "mp").unwrap().mode, "Active/Passive");
        let mut r = bare("configure");
        r.add_int("active_read", 1).add_str("arg0", "mp");
        assert_eq!(sim.gctl(r).error_text(), None);
        assert_eq!(list(sim, "mp").unwrap().mode, "Active/Read");
    });
}

/// `nargs` missing or malformed never crashes (FreeBSD's create
/// dereferences it unchecked), and create/prefer check its value.
#[test]
fn nargs_missing_or_malformed() {
    with_two_path(110, |sim, lun| {
        let create = |nargs: Option<&[u8]>, args: &[&str]| {
            let mut r = bare("create");
            r.add_int("active_active", 0).add_int("active_read", 0);
            if let Some(n) = nargs {
                r.add_raw("nargs", n, false);
            }
            for (i, a) in args.iter().enumerate() {
                r.add_str(&format!("arg{i}"), a);
            }
            r.add_output("output", 4096);
            r
        };
        let two = ["mp2", "da2"];
        refused(sim, &[lun], create(None, &two), "No 'nargs' argument");
        refused(
            sim,
            &[lun],
            create(Some(&[2]), &two),
            "Wrong length nargs argument",
        );
        for n in [1, 0, -1, i32::MIN] {
            refused(
                sim,
                &[lun],
                create(Some(&n.to_ne_bytes()), &two),
                "wrong number of arguments.",
            );
        }
        // More arguments announced than sent.
        refused(
            sim,
            &[lun],
            create(Some(&5i32.to_ne_bytes()), &two),
            "No 'arg2' argument",
        );
        refused(
            sim,
            &[lun],
            create(Some(&i32::MAX.to_ne_bytes()), &two),
            "No 'arg2' argument",
        );
        // prefer: no nargs, or not 2.
        let mut p = bare("prefer");
        p.add_str("arg0", "mp").add_str("arg1", "da1");
        refused(sim, &[lun], p, "No 'nargs' argument");
        let mut p = bare("prefer");
        p.add_raw("nargs", &[2, 0], false)
            .add_str("arg0", "mp")
            .add_str("arg1", "da1");
        refused(sim, &[lun], p, "Wrong length nargs argument");
        // Verbs that do not use nargs work without it.
        let mut a = bare("add");
        a.add_str("arg0", "mp").add_str("arg1", "da2");
        assert_eq!(sim.gctl(a).error_text(), None);
        check_added_da2(sim);
    });
}
