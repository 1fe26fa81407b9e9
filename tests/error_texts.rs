//! Every error text of every verb, byte for byte as FreeBSD's
//! `g_multipath.c` (the kernel verbs) and `geom_multipath.c` (the userland
//! `label`, `clear` and `prefer`) produce it: scripts grep these. Each row
//! is a request as geom(8) builds it (or the `gmultipath` command line for
//! the userland verbs) and the exact text FreeBSD answers; the texts were
//! typed from FreeBSD's format strings. A refused request changes nothing
//! and logs nothing.

mod common;

use common::ctl::stock;
use common::{for_each_mode, list_all, san};
use geom_sim::{Access, LunConfig, Sim, SimCtlReq};

const SIZE: u64 = 1 << 20;

/// A request by hand: class, verb, then `params` (name, i32) and `strs`.
fn raw(verb: &str, ints: &[(&str, i32)], version: Option<u32>, strs: &[(&str, &str)]) -> SimCtlReq {
    let mut r = SimCtlReq::new();
    r.add_str("class", "MULTIPATH").add_str("verb", verb);
    if let Some(v) = version {
        r.add_u32("version", v);
    }
    for (n, v) in ints {
        r.add_int(n, *v);
    }
    for (n, v) in strs {
        r.add_str(n, v);
    }
    r
}

/// A SAN with a manual device `mp` on da0 and da1, a spare path da2 of the
/// same LUN, db0 (twice the size) and dc0 (4096-byte sectors).
fn fixture(m: geom_sim::Mode, seed: u64) -> Sim {
    let (sim, _lun) = san(m, seed, &["da0", "da1", "da2"], SIZE);
    sim.add_lun(LunConfig::new(&["db0"], 2 * SIZE)).unwrap();
    let mut wide = LunConfig::new(&["dc0"], SIZE);
    wide.sectorsize = 4096;
    sim.add_lun(wide).unwrap();
    sim.run_until_idle();
    let r = sim.gctl(stock("create", &[], &["mp", "da0", "da1"]));
    assert_eq!(r.error_text(), None);
    sim.run_until_idle();
    sim
}

/// Sends `req`; the error must be exactly `text`, with nothing changed and
/// nothing logged.
#[track_caller]
fn refused(sim: &Sim, req: SimCtlReq, text: &str) {
    let before = list_all(sim);
    let lines = sim.log_lines().len();
    let r = sim.gctl(req);
    sim.run_until_idle();
    assert_eq!(r.error_text(), Some(text));
    assert_eq!(sim.log_lines()[lines..].to_vec(), Vec::<String>::new());
    assert_eq!(before, list_all(sim), "a refused request changed things");
}

#[test]
fn every_kernel_error_text_is_freebsds() {
    for_each_mode(|m| {
        let sim = fixture(m, 301);
        let no_version = raw("add", &[], None, &[("arg0", "mp"), ("arg1", "da2")]);
        refused(&sim, no_version, "No 'version' argument");
        let v2 = raw("add", &[], Some(2), &[("arg0", "mp"), ("arg1", "da2")]);
        refused(&sim, v2, "Userland and kernel parts are out of sync");
        refused(&sim, stock("bogus", &[], &["mp"]), "Unknown verb bogus");

        let table: &[(&str, &[&str], &str)] = &[
            // create: nargs first, then arg0, then each provider in turn.
            ("create", &[], "wrong number of arguments."),
            ("create", &["mp9"], "wrong number of arguments."),
            ("create", &["mp", "da2"], "Device mp already exist"),
            ("create", &["mp2", "da9"], "Provider da9 is invalid"),
            (
                "create",
                &["mp2", "da2", "da2"],
                "provider da2 is already there",
            ),
            (
                "create",
                &["mp2", "da2", "db0"],
                "Providers size mismatch 1048576 != 2097152",
            ),
            (
                "create",
                &["mp2", "da2", "dc0"],
                "Providers sectorsize mismatch 512 != 4096",
            ),
            // add
            ("add", &[], "No 'arg0' argument"),
            ("add", &["nope", "da2"], "Device nope not found"),
            ("add", &["mp"], "No 'arg1' argument"),
            ("add", &["mp", "da9"], "Provider da9 is invalid"),
            ("add", &["mp", "da0"], "provider da0 is already there"),
            (
                "add",
                &["mp", "db0"],
                "Providers size mismatch 1048576 != 2097152",
            ),
            (
                "add",
                &["mp", "dc0"],
                "Providers sectorsize mismatch 512 != 4096",
            ),
            // prefer (the kernel half)
            ("prefer", &[], "No 'arg0' argument"),
            ("prefer", &["nope", "da0"], "Device nope is invalid"),
            ("prefer", &["mp"], "missing device"),
            ("prefer", &["mp", "da9"], "Provider da9 not found"),
            // configure
            ("configure", &[], "No 'arg0' argument"),
            ("configure", &["nope"], "Device nope is invalid"),
            // fail, restore, remove
            ("fail", &[], "No 'arg0' argument"),
            ("fail", &["nope", "da0"], "Device nope not found"),
            ("fail", &["mp"], "No 'arg1' argument"),
            ("fail", &["mp", "da9"], "Provider da9 not found"),
            ("restore", &[], "No 'arg0' argument"),
            ("restore", &["nope", "da0"], "Device nope not found"),
            ("restore", &["mp"], "No 'arg1' argument"),
            ("restore", &["mp", "da2"], "Provider da2 not found"),
            ("remove", &[], "No 'arg0' argument"),
            ("remove", &["nope", "da0"], "Device nope not found"),
            ("remove", &["mp"], "No 'arg1' argument"),
            ("remove", &["mp", "da2"], "Provider da2 not found"),
            // stop, destroy, rotate, getactive
            ("stop", &[], "No 'arg0' argument"),
            ("stop", &["nope"], "Device nope is invalid"),
            ("destroy", &[], "No 'arg0' argument"),
            ("destroy", &["nope"], "Device nope is invalid"),
            ("rotate", &[], "No 'arg0' argument"),
            ("rotate", &["nope"], "Device nope is invalid"),
            ("getactive", &[], "No 'arg0' argument"),
            ("getactive", &["nope"], "Device nope is invalid"),
        ];
        for (verb, args, text) in table {
            refused(&sim, stock(verb, &[], args), text);
        }
        // prefer without nargs (geom(8) always sends it; FreeBSD checks).
        let p = raw("prefer", &[], Some(1), &[("arg0", "mp"), ("arg1", "da1")]);
        refused(&sim, p, "No 'nargs' argument");
        // prefer of a failed path.
        let r = sim.gctl(stock("fail", &[], &["mp", "da1"]));
        assert_eq!(r.error_text(), None);
        sim.run_until_idle();
        refused(
            &sim,
            stock("prefer", &[], &["mp", "da1"]),
            "Consumer da1 is invalid",
        );
        // add of a path someone else holds open exclusively: g_access
        // refuses (EPERM); FreeBSD logs the access failure and answers
        // with the errno.
        let holder = sim.open("da2", Access::new(0, 1, 1)).unwrap();
        let before = list_all(&sim);
        let from = sim.log_lines().len();
        let r = sim.gctl(stock("add", &[], &["mp", "da2"]));
        sim.run_until_idle();
        assert_eq!(r.error_text(), Some("Provider addition error: 1"));
        assert_eq!(
            sim.log_lines()[from..].to_vec(),
            vec!["GEOM_MULTIPATH: cannot set access in attaching da2 to mp (1)".to_string()]
        );
        assert_eq!(before, list_all(&sim));
        drop(holder);
        sim.run_until_idle();
        sim
    });
}

/// The userland verbs, as `gmultipath` prints their errors.
#[test]
fn every_userland_error_text_is_freebsds() {
    for_each_mode(|m| {
        let sim = fixture(m, 302);
        let table: &[(&[&str], &str)] = &[
            (&["label", "mp3"], "wrong number of arguments."),
            (
                &["label", "mp3", "da9"],
                "cannot get information about da9: No such file or directory.",
            ),
            (
                &["label", "mp3", "da2", "dc0"],
                "dc0 sector size 4096 different.",
            ),
            (
                &["label", "mp3", "da2", "db0"],
                "db0 media size 2097152 different.",
            ),
            (&["clear"], "Too few arguments."),
            (
                &["clear", "db0"],
                "Can't clear metadata on db0: Invalid argument.\nNot fully done.",
            ),
            (&["prefer", "mp"], "Usage: prefer GEOM PROVIDER"),
        ];
        for (argv, text) in table {
            let before = list_all(&sim);
            assert_eq!(
                sim.gmultipath(argv).err().as_deref(),
                Some(*text),
                "{argv:?}"
            );
            sim.run_until_idle();
            assert_eq!(before, list_all(&sim));
        }
        sim
    });
}
