//! Every gctl verb the kernel gets from the stock userland (add, prefer,
//! create, configure, stop, destroy, fail, restore, remove, rotate,
//! getactive): the request as geom(8) builds it, its outcome, and each bad
//! input with its exact error text and no change at all. Where FreeBSD is
//! weak (SPEC §6) the right behaviour is tested instead.

mod common;

use common::{check_state, for_each_mode, getactive, gm, list, list_all, logged, san, MpList};
use geom_sim::{Access, Lun, LunConfig, Mode, Sim, SimCtlReq, EIO, EPERM};

const SIZE: u64 = 1 << 20;
const DA: [&str; 3] = ["da0", "da1", "da2"];
const UUID: &str = "0f1e2d3c-4b5a-4697-8877-665544332211";
const KERNEL_VERBS: [&str; 11] = [
    "add",
    "prefer",
    "create",
    "configure",
    "stop",
    "destroy",
    "fail",
    "restore",
    "remove",
    "rotate",
    "getactive",
];

// ---- helpers -------------------------------------------------------------

/// The boolean options geom(8) always sends for `verb` (gmultipath's table).
fn stock_bools(verb: &str) -> &'static [&'static str] {
    match verb {
        "create" | "label" => &["active_active", "active_read"],
        "configure" => &["active_active", "active_passive", "active_read"],
        _ => &[],
    }
}

/// The request geom(8) sends for `gmultipath VERB [-flags] ARGS`: every bool
/// option (set or not), nargs, argN, and an `output` buffer unless the
/// command has a userland handler (prefer).
fn stock(verb: &str, set: &[&str], args: &[&str]) -> SimCtlReq {
    let bools: Vec<(&str, bool)> = stock_bools(verb)
        .iter()
        .map(|&n| (n, set.contains(&n)))
        .collect();
    SimCtlReq::geom_cmd("MULTIPATH", verb, &bools, args, verb != "prefer")
}

/// Runs a stock request and expects success; returns `output`.
#[track_caller]
fn ok(sim: &Sim, verb: &str, set: &[&str], args: &[&str]) -> String {
    let r = sim.gctl(stock(verb, set, args));
    sim.run_until_idle();
    assert_eq!(r.error_text(), None, "{verb} {set:?} {args:?}");
    r.text("output").unwrap_or_default()
}

/// Everything a refused request must leave alone.
#[derive(Debug, PartialEq)]
struct World {
    geoms: Vec<MpList>,
    active: Vec<String>,
    last_sectors: Vec<Vec<u8>>,
    providers: Vec<bool>,
}

fn world(sim: &Sim, luns: &[&Lun]) -> World {
    sim.run_until_idle();
    let geoms = list_all(sim);
    let active = geoms.iter().map(|g| getactive(sim, &g.name)).collect();
    let mut providers = Vec::new();
    for name in ["multipath/mp", "multipath/mp2", "multipath/nope"] {
        providers.push(sim.g_provider_by_name(name).is_some());
    }
    World {
        geoms,
        active,
        last_sectors: luns.iter().map(|l| last_sector(l)).collect(),
        providers,
    }
}

/// Sends `req`, expects exactly `text` as the error, and no change: same
/// geoms, paths, states, active paths, labels, and not one console line.
#[track_caller]
fn refused(sim: &Sim, luns: &[&Lun], req: SimCtlReq, text: &str) {
    let before = world(sim, luns);
    let lines = sim.log_lines().len();
    let had_output = req.text("output").is_some();
    let r = sim.gctl(req);
    sim.run_until_idle();
    assert_eq!(r.error_text(), Some(text));
    if had_output {
        assert_eq!(r.text("output").as_deref(), Some(""), "output on error");
    }
    let new: Vec<String> = sim.log_lines()[lines..].to_vec();
    assert!(new.is_empty(), "a refused request logged {new:?}");
    assert_eq!(before, world(sim, luns), "a refused request changed things");
}

/// A stock request that must be refused with `text`, changing nothing.
#[track_caller]
fn refused_stock(sim: &Sim, luns: &[&Lun], verb: &str, args: &[&str], text: &str) {
    refused(sim, luns, stock(verb, &[], args), text);
}

/// The console lines logged since `from`.
fn lines_since(sim: &Sim, from: usize) -> Vec<String> {
    sim.log_lines()[from..].to_vec()
}

fn last_sector(lun: &Lun) -> Vec<u8> {
    let ss = lun.sectorsize() as u64;
    lun.read_raw(lun.mediasize() - ss, ss as usize)
        .expect("read last sector")
}

/// A NUL-terminated text field of the label sector.
fn field(sector: &[u8], at: usize, len: usize) -> String {
    let f = &sector[at..at + len];
    let end = f.iter().position(|&b| b == 0).unwrap_or(len);
    String::from_utf8_lossy(&f[..end]).into_owned()
}

/// A second LUN with other geometry.
fn other_lun(sim: &Sim, names: &[&str], size: u64, sectorsize: u32) -> Lun {
    let mut cfg = LunConfig::new(names, size);
    cfg.sectorsize = sectorsize;
    let lun = sim.add_lun(cfg).expect("second lun");
    sim.run_until_idle();
    lun
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Writes a recognisable pattern through `/dev/multipath/NAME`.
#[track_caller]
fn write_data(sim: &Sim, name: &str, seed: u8) -> Vec<u8> {
    let data = pattern(seed, 8192);
    let dev = sim
        .open(&format!("multipath/{name}"), Access::new(0, 1, 0))
        .expect("open for write");
    dev.write(65536, &data).expect("write");
    drop(dev);
    sim.run_until_idle();
    data
}

/// Reads the pattern back through `/dev/multipath/NAME`.
#[track_caller]
fn assert_readable(sim: &Sim, name: &str, data: &[u8]) {
    let dev = sim
        .open(&format!("multipath/{name}"), Access::new(1, 0, 0))
        .expect("open for read");
    assert_eq!(dev.read(65536, data.len()).expect("read"), data);
    drop(dev);
    sim.run_until_idle();
}

/// Makes GEOM retaste `prov` (the last writer closing).
fn retaste(sim: &Sim, prov: &str) {
    let dev = sim
        .open(prov, Access::new(0, 1, 0))
        .unwrap_or_else(|e| panic!("open {prov} for write: {e}"));
    drop(dev);
    sim.run_until_idle();
}

fn paths_of(g: &MpList) -> Vec<&str> {
    g.paths.iter().map(|(p, _)| p.as_str()).collect()
}

fn two_path(m: Mode, seed: u64) -> (Sim, Lun) {
    let (sim, lun) = san(m, seed, &DA, SIZE);
    ok(&sim, "create", &[], &["mp", "da0", "da1"]);
    (sim, lun)
}

// ---- every verb: the common checks ----------------------------------------

#[test]
fn every_verb_without_arg0_is_refused() {
    for_each_mode(|m| {
        let (sim, lun) = two_path(m, 101);
        for verb in KERNEL_VERBS {
            // create looks at nargs first, as FreeBSD does.
            let text = if verb == "create" {
                "wrong number of arguments."
            } else {
                "No 'arg0' argument"
            };
            refused_stock(&sim, &[&lun], verb, &[], text);
        }
        sim
    });
}

/// add/remove/fail/restore say "not found", the others "is invalid".
#[test]
fn every_verb_on_an_unknown_geom_is_refused() {
    for_each_mode(|m| {
        let (sim, lun) = two_path(m, 102);
        for verb in ["add", "remove", "fail", "restore"] {
            refused_stock(
                &sim,
                &[&lun],
                verb,
                &["nope", "da2"],
                "Device nope not found",
            );
        }
        refused_stock(
            &sim,
            &[&lun],
            "prefer",
            &["nope", "da0"],
            "Device nope is invalid",
        );
        for verb in ["configure", "rotate", "getactive", "stop", "destroy"] {
            refused_stock(&sim, &[&lun], verb, &["nope"], "Device nope is invalid");
        }
        // A path's name is not a device's.
        refused_stock(
            &sim,
            &[&lun],
            "getactive",
            &["da0"],
            "Device da0 is invalid",
        );
        sim
    });
}

#[test]
fn verbs_needing_a_provider_refuse_a_missing_arg1() {
    for_each_mode(|m| {
        let (sim, lun) = two_path(m, 103);
        for verb in ["add", "remove", "fail", "restore"] {
            refused_stock(&sim, &[&lun], verb, &["mp"], "No 'arg1' argument");
        }
        // prefer with nargs 2 but no arg1 (not something geom(8) sends).
        let mut r = SimCtlReq::new();
        r.add_str("class", "MULTIPATH")
            .add_str("verb", "prefer")
            .add_u32("version", 1)
            .add_int("nargs", 2)
            .add_str("arg0", "mp");
        refused(&sim, &[&lun], r, "No 'arg1' argument");
        sim
    });
}

/// A request without `version`, with a wrong one or a malformed one.
#[test]
fn version_is_checked_before_anything() {
    for_each_mode(|m| {
        let (sim, lun) = san(m, 104, &DA, SIZE);
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
        refused(
            &sim,
            &[&lun],
            build(None, "create"),
            "No 'version' argument",
        );
        for bad in [0u32, 2, u32::MAX] {
            refused(
                &sim,
                &[&lun],
                build(Some(&bad.to_ne_bytes()), "create"),
                "Userland and kernel parts are out of sync",
            );
        }
        refused(
            &sim,
            &[&lun],
            build(Some(&[1, 0]), "create"),
            "Wrong length version argument",
        );
        refused(
            &sim,
            &[&lun],
            build(Some(&1u64.to_ne_bytes()), "create"),
            "Wrong length version argument",
        );
        // The version check comes before the verb is looked at.
        refused(
            &sim,
            &[&lun],
            build(None, "frobnicate"),
            "No 'version' argument",
        );
        assert!(list(&sim, "mp").is_none());
        // The same request with version 1 works.
        let r = sim.gctl(build(Some(&1u32.to_ne_bytes()), "create"));
        assert_eq!(r.error_text(), None);
        check_state(&sim, "mp", "da0", "OPTIMAL", &["ACTIVE", "PASSIVE"]);
        sim
    });
}

/// Unknown verbs, and label/clear, which only the userland knows.
#[test]
fn unknown_verbs_are_refused() {
    for_each_mode(|m| {
        let (sim, lun) = two_path(m, 105);
        refused_stock(
            &sim,
            &[&lun],
            "frobnicate",
            &["mp"],
            "Unknown verb frobnicate",
        );
        refused_stock(&sim, &[&lun], "list", &[], "Unknown verb list");
        let label = SimCtlReq::geom_cmd(
            "MULTIPATH",
            "label",
            &[("active_active", false), ("active_read", false)],
            &["mp2", "da2"],
            false,
        );
        refused(&sim, &[&lun], label, "Unknown verb label");
        let clear = SimCtlReq::geom_cmd("MULTIPATH", "clear", &[], &["da0"], false);
        refused(&sim, &[&lun], clear, "Unknown verb clear");
        // No label was written by the kernel.
        assert!(last_sector(&lun).iter().all(|&b| b == 0));
        // Through the stock tool, label works: it never reaches the kernel.
        let (sim2, lun2) = san(m, 106, &DA[..1], SIZE);
        gm(&sim2, &["label", "mp", "da0"]);
        assert_eq!(&last_sector(&lun2)[..15], b"GEOM::MULTIPATH");
        assert_eq!(
            sim2.gmultipath(&["frobnicate", "mp"]),
            Err("Unknown command: frobnicate.".to_string())
        );
        sim2.finish().assert_clean();
        sim
    });
}

/// String parameters must be NUL-terminated text.
#[test]
fn unterminated_string_parameters_are_refused() {
    for_each_mode(|m| {
        let (sim, lun) = two_path(m, 107);
        let bad = |verb: &str, arg0: &[u8], arg1: Option<&[u8]>| {
            let mut r = SimCtlReq::new();
            r.add_str("class", "MULTIPATH")
                .add_str("verb", verb)
                .add_u32("version", 1)
                .add_int("nargs", 1 + i32::from(arg1.is_some()))
                .add_raw("arg0", arg0, false);
            if let Some(a) = arg1 {
                r.add_raw("arg1", a, false);
            }
            r.add_output("output", 4096);
            r
        };
        let msg0 = "Parameter arg0 is not a NUL-terminated UTF-8 string";
        let msg1 = "Parameter arg1 is not a NUL-terminated UTF-8 string";
        refused(&sim, &[&lun], bad("getactive", b"mp", None), msg0);
        refused(&sim, &[&lun], bad("destroy", b"mp", None), msg0);
        refused(&sim, &[&lun], bad("stop", b"m\0p\0", None), msg0);
        refused(&sim, &[&lun], bad("rotate", b"", None), msg0);
        refused(
            &sim,
            &[&lun],
            bad("configure", &[0xff, 0xfe, 0], None),
            msg0,
        );
        refused(&sim, &[&lun], bad("fail", b"mp\0", Some(b"da0")), msg1);
        refused(&sim, &[&lun], bad("remove", b"mp\0", Some(b"da0")), msg1);
        refused(&sim, &[&lun], bad("add", b"mp\0", Some(b"da2")), msg1);
        let mut c = SimCtlReq::new();
        c.add_str("class", "MULTIPATH")
            .add_str("verb", "create")
            .add_u32("version", 1)
            .add_int("active_active", 0)
            .add_int("active_read", 0)
            .add_int("nargs", 3)
            .add_str("arg0", "mp2")
            .add_str("arg1", "da2")
            .add_raw("arg2", b"da1", false);
        refused(
            &sim,
            &[&lun],
            c,
            "Parameter arg2 is not a NUL-terminated UTF-8 string",
        );
        sim
    });
}

/// Boolean options travel as 4-byte ints; another length is refused before
/// anything is done (FreeBSD would record the error and act anyway).
#[test]
fn bool_options_with_a_wrong_length_are_refused() {
    for_each_mode(|m| {
        let (sim, lun) = two_path(m, 108);
        let mut c = SimCtlReq::new();
        c.add_str("class", "MULTIPATH")
            .add_str("verb", "create")
            .add_u32("version", 1)
            .add_raw("active_active", &[1], false)
            .add_int("active_read", 0)
            .add_int("nargs", 2)
            .add_str("arg0", "mp2")
            .add_str("arg1", "da2")
            .add_output("output", 4096);
        refused(&sim, &[&lun], c, "Wrong length active_active argument");
        for (opt, raw) in [
            ("active_passive", &[1u8, 0, 0, 0, 0, 0, 0, 0][..]),
            ("active_read", &[][..]),
            ("active_active", &[1, 0][..]),
        ] {
            let mut r = SimCtlReq::new();
            r.add_str("class", "MULTIPATH")
                .add_str("verb", "configure")
                .add_u32("version", 1);
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
            refused(&sim, &[&lun], r, &format!("Wrong length {opt} argument"));
        }
        assert_eq!(list(&sim, "mp").unwrap().mode, "Active/Passive");
        sim
    });
}

/// Without the option parameters, create and configure simply act as if
/// none was set, and record no error (FreeBSD records one and acts).
#[test]
fn missing_bool_options_mean_unset() {
    for_each_mode(|m| {
        let (sim, _lun) = san(m, 109, &DA, SIZE);
        let mut c = SimCtlReq::new();
        c.add_str("class", "MULTIPATH")
            .add_str("verb", "create")
            .add_u32("version", 1)
            .add_int("nargs", 3)
            .add_str("arg0", "mp")
            .add_str("arg1", "da0")
            .add_str("arg2", "da1");
        assert_eq!(sim.gctl(c).error_text(), None);
        check_state(&sim, "mp", "da0", "OPTIMAL", &["ACTIVE", "PASSIVE"]);
        assert_eq!(list(&sim, "mp").unwrap().mode, "Active/Passive");
        let mut r = SimCtlReq::new();
        r.add_str("class", "MULTIPATH")
            .add_str("verb", "configure")
            .add_u32("version", 1)
            .add_int("active_read", 1)
            .add_str("arg0", "mp");
        assert_eq!(sim.gctl(r).error_text(), None);
        assert_eq!(list(&sim, "mp").unwrap().mode, "Active/Read");
        sim
    });
}

/// `nargs` missing or malformed never crashes (FreeBSD's create
/// dereferences it unchecked), and create/prefer check its value.
#[test]
fn nargs_missing_or_malformed() {
    for_each_mode(|m| {
        let (sim, lun) = two_path(m, 110);
        let create = |nargs: Option<&[u8]>, args: &[&str]| {
            let mut r = SimCtlReq::new();
            r.add_str("class", "MULTIPATH")
                .add_str("verb", "create")
                .add_u32("version", 1)
                .add_int("active_active", 0)
                .add_int("active_read", 0);
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
        refused(&sim, &[&lun], create(None, &two), "No 'nargs' argument");
        refused(
            &sim,
            &[&lun],
            create(Some(&[2]), &two),
            "Wrong length nargs argument",
        );
        for n in [1, 0, -1, i32::MIN] {
            refused(
                &sim,
                &[&lun],
                create(Some(&n.to_ne_bytes()), &two),
                "wrong number of arguments.",
            );
        }
        // More arguments announced than sent.
        refused(
            &sim,
            &[&lun],
            create(Some(&5i32.to_ne_bytes()), &two),
            "No 'arg2' argument",
        );
        refused(
            &sim,
            &[&lun],
            create(Some(&i32::MAX.to_ne_bytes()), &two),
            "No 'arg2' argument",
        );
        // prefer: no nargs, or not 2.
        let mut p = SimCtlReq::new();
        p.add_str("class", "MULTIPATH")
            .add_str("verb", "prefer")
            .add_u32("version", 1)
            .add_str("arg0", "mp")
            .add_str("arg1", "da1");
        refused(&sim, &[&lun], p, "No 'nargs' argument");
        let mut p = SimCtlReq::new();
        p.add_str("class", "MULTIPATH")
            .add_str("verb", "prefer")
            .add_u32("version", 1)
            .add_raw("nargs", &[2, 0], false)
            .add_str("arg0", "mp")
            .add_str("arg1", "da1");
        refused(&sim, &[&lun], p, "Wrong length nargs argument");
        // Verbs that do not use nargs work without it.
        let mut a = SimCtlReq::new();
        a.add_str("class", "MULTIPATH")
            .add_str("verb", "add")
            .add_u32("version", 1)
            .add_str("arg0", "mp")
            .add_str("arg1", "da2");
        assert_eq!(sim.gctl(a).error_text(), None);
        check_state(
            &sim,
            "mp",
            "da0",
            "OPTIMAL",
            &["ACTIVE", "PASSIVE", "PASSIVE"],
        );
        sim
    });
}

// ---- create ----------------------------------------------------------------

#[test]
fn create_makes_a_manual_device() {
    for_each_mode(|m| {
        let (sim, lun) = san(m, 111, &DA, SIZE);
        let from = sim.log_lines().len();
        assert_eq!(ok(&sim, "create", &[], &["mp", "da0", "/dev/da1"]), "");
        assert_eq!(
            lines_since(&sim, from),
            [
                "GEOM_MULTIPATH: mp created",
                "GEOM_MULTIPATH: da0 added to mp",
                "GEOM_MULTIPATH: da0 is now active path in mp",
                "GEOM_MULTIPATH: da1 added to mp",
            ]
        );
        check_state(&sim, "mp", "da0", "OPTIMAL", &["ACTIVE", "PASSIVE"]);
        let g = list(&sim, "mp").unwrap();
        assert_eq!(paths_of(&g), ["da0", "da1"]);
        assert_eq!((g.kind.as_str(), g.uuid.as_str()), ("MANUAL", ""));
        assert_eq!((g.mediasize, g.sectorsize), (SIZE, 512));
        // The whole LUN is usable, the last sector included; no label.
        let dev = sim
            .open("multipath/mp", Access::new(1, 1, 0))
            .expect("open");
        dev.write(SIZE - 512, &[0xa5; 512])
            .expect("write last sector");
        assert_eq!(dev.read(SIZE - 512, 512).unwrap(), vec![0xa5; 512]);
        drop(dev);
        assert_eq!(last_sector(&lun), vec![0xa5; 512]);
        // The paths are held exclusively.
        assert_eq!(sim.open("da0", Access::new(0, 1, 0)).err(), Some(EPERM));
        // A 15-character name is fine.
        ok(
            &sim,
            "create",
            &["active_active"],
            &["fifteen_chars_x", "da2"],
        );
        assert_eq!(getactive(&sim, "fifteen_chars_x"), "da2");
        sim
    });
}

#[test]
fn create_refuses_bad_input() {
    for_each_mode(|m| {
        let (sim, lun) = san(m, 112, &DA, SIZE);
        let big = other_lun(&sim, &["db0"], 2 * SIZE, 512);
        let wide = other_lun(&sim, &["dc0"], SIZE, 4096);
        let luns = [&lun, &big, &wide];
        let cr = |args: &[&str], text: &str| refused_stock(&sim, &luns, "create", args, text);
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
            &sim,
            &luns,
            "getactive",
            &["sixteen_chars_x"],
            "Device sixteen_chars_x is invalid",
        );
        // The name is taken.
        ok(&sim, "create", &[], &["mp", "da0", "da1"]);
        cr(&["mp", "da2"], "Device mp already exist");
        sim
    });
}

/// A path another device holds exclusively cannot be added: the half-made
/// device is taken down again and the other one is untouched.
#[test]
fn create_with_a_busy_path_leaves_nothing() {
    for_each_mode(|m| {
        let (sim, _lun) = two_path(m, 113);
        let data = write_data(&sim, "mp", 3);
        let r = sim.gctl(stock("create", &[], &["mp2", "da2", "da0"]));
        sim.run_until_idle();
        assert_eq!(
            r.error_text(),
            Some(format!("Provider addition error: {EPERM}").as_str())
        );
        assert!(list(&sim, "mp2").is_none());
        assert!(sim.g_provider_by_name("multipath/mp2").is_none());
        check_state(&sim, "mp", "da0", "OPTIMAL", &["ACTIVE", "PASSIVE"]);
        assert_readable(&sim, "mp", &data);
        // da2 was let go again.
        retaste(&sim, "da2");
        sim
    });
}

/// The 2007 form `create NAME PROV0 PROV1 UUID`: a device with that uuid
/// whose provider hides the last sector, though nothing is written.
#[test]
fn create_original_form_with_uuid() {
    for_each_mode(|m| {
        let (sim, lun) = san(m, 114, &DA, SIZE);
        refused_stock(
            &sim,
            &[&lun],
            "create",
            &["mp", "da0", "da1", "0f1e2d3c-4b5a-4697-8877-6655443322zz"],
            "Malformed uuid argument",
        );
        refused_stock(
            &sim,
            &[&lun],
            "create",
            &["mp", "da0", "da1", "0f1e2d3c-4b5a-4697-8877-66"],
            "Malformed uuid argument",
        );
        ok(&sim, "create", &[], &["mp", "da0", "da1", UUID]);
        check_state(&sim, "mp", "da0", "OPTIMAL", &["ACTIVE", "PASSIVE"]);
        let g = list(&sim, "mp").unwrap();
        assert_eq!((g.kind.as_str(), g.uuid.as_str()), ("AUTOMATIC", UUID));
        assert_eq!(g.mediasize, SIZE - 512);
        assert_eq!(paths_of(&g), ["da0", "da1"]);
        assert!(last_sector(&lun).iter().all(|&b| b == 0), "nothing written");
        let data = write_data(&sim, "mp", 4);
        assert_readable(&sim, "mp", &data);
        sim
    });
}

// ---- add -------------------------------------------------------------------

#[test]
fn add_a_path() {
    for_each_mode(|m| {
        let (sim, lun) = two_path(m, 115);
        let data = write_data(&sim, "mp", 5);
        let from = sim.log_lines().len();
        assert_eq!(ok(&sim, "add", &[], &["mp", "/dev/da2"]), "");
        assert_eq!(lines_since(&sim, from), ["GEOM_MULTIPATH: da2 added to mp"]);
        check_state(
            &sim,
            "mp",
            "da0",
            "OPTIMAL",
            &["ACTIVE", "PASSIVE", "PASSIVE"],
        );
        assert_eq!(paths_of(&list(&sim, "mp").unwrap()), DA);
        // The new path is usable: it carries the I/O once it is the only one.
        ok(&sim, "fail", &[], &["mp", "da0"]);
        ok(&sim, "fail", &[], &["mp", "da1"]);
        // Failing da1 with da2 good restores nobody.
        check_state(&sim, "mp", "da2", "DEGRADED", &["FAIL", "FAIL", "ACTIVE"]);
        let before = lun.path(2).unwrap().counts().completed;
        assert_readable(&sim, "mp", &data);
        assert!(
            lun.path(2).unwrap().counts().completed > before,
            "read via da2"
        );
        sim
    });
}

#[test]
fn add_refuses_bad_input() {
    for_each_mode(|m| {
        let (sim, lun) = two_path(m, 116);
        let big = other_lun(&sim, &["db0"], 2 * SIZE, 512);
        let wide = other_lun(&sim, &["dc0"], SIZE, 4096);
        let luns = [&lun, &big, &wide];
        let add = |args: &[&str], text: &str| refused_stock(&sim, &luns, "add", args, text);
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
        check_state(&sim, "mp", "da0", "OPTIMAL", &["ACTIVE", "PASSIVE"]);
        sim
    });
}

/// add works on a labelled device too; its size rule counts the label.
#[test]
fn add_to_a_labelled_device() {
    for_each_mode(|m| {
        let (sim, lun) = san(m, 117, &DA, SIZE);
        let short = other_lun(&sim, &["db0"], SIZE - 512, 512);
        gm(&sim, &["label", "mp", "da0"]);
        let g = list(&sim, "mp").expect("tasted");
        assert_eq!(paths_of(&g), ["da0"]);
        assert_eq!(g.mediasize, SIZE - 512);
        refused_stock(
            &sim,
            &[&lun, &short],
            "add",
            &["mp", "db0"],
            "Providers size mismatch 1048576 != 1048064",
        );
        ok(&sim, "add", &[], &["mp", "da1"]);
        check_state(&sim, "mp", "da0", "OPTIMAL", &["ACTIVE", "PASSIVE"]);
        assert_eq!(list(&sim, "mp").unwrap().kind, "AUTOMATIC");
        sim
    });
}

// ---- remove ----------------------------------------------------------------

#[test]
fn remove_a_path() {
    for_each_mode(|m| {
        let (sim, lun) = san(m, 118, &DA, SIZE);
        ok(&sim, "create", &[], &["mp", "da0", "da1", "da2"]);
        let data = write_data(&sim, "mp", 6);
        let from = sim.log_lines().len();
        // The active one, named with /dev/ (FreeBSD would not find it).
        ok(&sim, "remove", &[], &["mp", "/dev/da0"]);
        let lines = lines_since(&sim, from);
        assert_eq!(lines[0], "GEOM_MULTIPATH: removing da0 from mp");
        assert!(lines.contains(&"GEOM_MULTIPATH: da0 removed from mp".to_string()));
        assert!(lines.contains(&"GEOM_MULTIPATH: da2 is now active path in mp".to_string()));
        check_state(&sim, "mp", "da2", "OPTIMAL", &["PASSIVE", "ACTIVE"]);
        assert_eq!(paths_of(&list(&sim, "mp").unwrap()), ["da1", "da2"]);
        assert_readable(&sim, "mp", &data);
        // The removed path is free again.
        retaste(&sim, "da0");
        assert!(list(&sim, "mp").is_some());
        refused_stock(
            &sim,
            &[&lun],
            "remove",
            &["mp", "da0"],
            "Provider da0 not found",
        );
        refused_stock(
            &sim,
            &[&lun],
            "remove",
            &["mp", "da9"],
            "Provider da9 not found",
        );
        refused_stock(
            &sim,
            &[&lun],
            "remove",
            &["nope", "da1"],
            "Device nope not found",
        );
        sim
    });
}

/// Removing the last path destroys the device.
#[test]
fn remove_last_path_destroys_the_geom() {
    for_each_mode(|m| {
        let (sim, _lun) = two_path(m, 119);
        ok(&sim, "remove", &[], &["mp", "da1"]);
        check_state(&sim, "mp", "da0", "DEGRADED", &["ACTIVE"]);
        ok(&sim, "remove", &[], &["mp", "da0"]);
        assert!(list(&sim, "mp").is_none());
        assert!(sim.g_provider_by_name("multipath/mp").is_none());
        assert!(logged(&sim, "GEOM_MULTIPATH: out of providers for mp"));
        assert!(logged(&sim, "GEOM_MULTIPATH: mp destroyed"));
        // Both paths were let go, and the name is free again.
        retaste(&sim, "da0");
        retaste(&sim, "da1");
        ok(&sim, "create", &[], &["mp", "da1", "da0"]);
        check_state(&sim, "mp", "da1", "OPTIMAL", &["ACTIVE", "PASSIVE"]);
        sim
    });
}

// ---- fail / restore ----------------------------------------------------------

#[test]
fn fail_and_restore_accept_dev_prefix() {
    for_each_mode(|m| {
        let (sim, lun) = two_path(m, 120);
        let data = write_data(&sim, "mp", 7);
        let from = sim.log_lines().len();
        ok(&sim, "fail", &[], &["mp", "/dev/da0"]);
        assert_eq!(
            lines_since(&sim, from),
            [
                "GEOM_MULTIPATH: da0 in mp is marked FAIL.",
                "GEOM_MULTIPATH: da1 is now active path in mp",
            ]
        );
        check_state(&sim, "mp", "da1", "DEGRADED", &["FAIL", "ACTIVE"]);
        assert_readable(&sim, "mp", &data);
        // Again: nothing to do, nothing said.
        let from = sim.log_lines().len();
        ok(&sim, "fail", &[], &["mp", "da0"]);
        ok(&sim, "restore", &[], &["mp", "da1"]);
        assert!(lines_since(&sim, from).is_empty());
        check_state(&sim, "mp", "da1", "DEGRADED", &["FAIL", "ACTIVE"]);
        ok(&sim, "restore", &[], &["mp", "/dev/da0"]);
        assert_eq!(
            lines_since(&sim, from),
            ["GEOM_MULTIPATH: da0 in mp is marked OK."]
        );
        // No failback.
        check_state(&sim, "mp", "da1", "OPTIMAL", &["PASSIVE", "ACTIVE"]);
        for verb in ["fail", "restore"] {
            refused_stock(
                &sim,
                &[&lun],
                verb,
                &["mp", "da9"],
                "Provider da9 not found",
            );
            refused_stock(
                &sim,
                &[&lun],
                verb,
                &["mp", "/dev/da9"],
                "Provider da9 not found",
            );
        }
        assert_readable(&sim, "mp", &data);
        sim
    });
}

/// Failing the last good path brings the others back (FreeBSD's automatic
/// restore); a single path cannot be failed at all.
#[test]
fn fail_of_the_last_good_path_restores_the_others() {
    for_each_mode(|m| {
        let (sim, _lun) = two_path(m, 121);
        let data = write_data(&sim, "mp", 8);
        ok(&sim, "fail", &[], &["mp", "da0"]);
        let from = sim.log_lines().len();
        ok(&sim, "fail", &[], &["mp", "da1"]);
        let lines = lines_since(&sim, from);
        assert!(
            lines.contains(&"GEOM_MULTIPATH: all paths in mp were marked FAIL, restore da0".into()),
            "{lines:?}"
        );
        check_state(&sim, "mp", "da0", "DEGRADED", &["ACTIVE", "FAIL"]);
        assert_readable(&sim, "mp", &data);

        ok(&sim, "remove", &[], &["mp", "da1"]);
        ok(&sim, "fail", &[], &["mp", "da0"]);
        assert!(logged(
            &sim,
            "GEOM_MULTIPATH: all paths in mp were marked FAIL, restore da0"
        ));
        check_state(&sim, "mp", "da0", "DEGRADED", &["ACTIVE"]);
        assert_readable(&sim, "mp", &data);
        sim
    });
}

// ---- prefer ------------------------------------------------------------------

#[test]
fn prefer_a_path() {
    for_each_mode(|m| {
        let (sim, lun) = san(m, 122, &DA, SIZE);
        ok(&sim, "create", &[], &["mp", "da0", "da1", "da2"]);
        let data = write_data(&sim, "mp", 9);
        let from = sim.log_lines().len();
        // The stock tool: userland checks, then the kernel request.
        assert_eq!(gm(&sim, &["prefer", "mp", "/dev/da2"]), "");
        assert_eq!(
            lines_since(&sim, from),
            ["GEOM_MULTIPATH: da2 now active path in mp"]
        );
        check_state(
            &sim,
            "mp",
            "da2",
            "OPTIMAL",
            &["PASSIVE", "PASSIVE", "ACTIVE"],
        );
        assert_eq!(gm(&sim, &["prefer", "-v", "mp", "da1"]), "Done.\n");
        check_state(
            &sim,
            "mp",
            "da1",
            "OPTIMAL",
            &["PASSIVE", "ACTIVE", "PASSIVE"],
        );
        assert_readable(&sim, "mp", &data);

        // Not two arguments: the userland says so, the kernel too.
        assert_eq!(
            sim.gmultipath(&["prefer", "mp", "da0", "da2"]),
            Err("Usage: prefer GEOM PROVIDER".to_string())
        );
        refused_stock(
            &sim,
            &[&lun],
            "prefer",
            &["mp", "da0", "da2"],
            "missing device",
        );
        refused_stock(&sim, &[&lun], "prefer", &["mp"], "missing device");
        refused_stock(
            &sim,
            &[&lun],
            "prefer",
            &["mp", "da9"],
            "Provider da9 not found",
        );
        // A failed path cannot be preferred.
        ok(&sim, "fail", &[], &["mp", "da0"]);
        refused_stock(
            &sim,
            &[&lun],
            "prefer",
            &["mp", "da0"],
            "Consumer da0 is invalid",
        );
        assert_eq!(
            sim.gmultipath(&["prefer", "mp", "da0"]),
            Err("Can't set mp preferred provider to da0: Consumer da0 is invalid.".to_string())
        );
        check_state(
            &sim,
            "mp",
            "da1",
            "DEGRADED",
            &["FAIL", "ACTIVE", "PASSIVE"],
        );
        sim
    });
}

/// prefer says nothing outside Active/Passive; in Active/Read it picks the
/// write path, in Active/Active getactive still lists every path.
#[test]
fn prefer_in_other_modes() {
    for_each_mode(|m| {
        let (sim, _lun) = san(m, 123, &DA, SIZE);
        ok(&sim, "create", &["active_read"], &["mp", "da0", "da1"]);
        let from = sim.log_lines().len();
        gm(&sim, &["prefer", "mp", "da1"]);
        assert!(lines_since(&sim, from).is_empty());
        check_state(&sim, "mp", "da1", "OPTIMAL", &["READ", "ACTIVE"]);
        ok(&sim, "configure", &["active_active"], &["mp"]);
        gm(&sim, &["prefer", "mp", "da0"]);
        assert!(lines_since(&sim, from).is_empty());
        check_state(&sim, "mp", "da1 da0", "OPTIMAL", &["ACTIVE", "ACTIVE"]);
        // Back to Active/Read: the preferred path is the write path.
        ok(&sim, "configure", &["active_read"], &["mp"]);
        check_state(&sim, "mp", "da0", "OPTIMAL", &["ACTIVE", "READ"]);
        sim
    });
}

// ---- configure -----------------------------------------------------------------

/// P beats R beats A; no flag leaves the mode alone.
#[test]
fn configure_precedence() {
    for_each_mode(|m| {
        let (sim, lun) = two_path(m, 124);
        // A manual device exposes its last sector: configure leaves it alone.
        let dev = sim
            .open("multipath/mp", Access::new(1, 1, 0))
            .expect("open");
        dev.write(SIZE - 512, &[0x5a; 512]).unwrap();
        drop(dev);
        let data = write_data(&sim, "mp", 13);
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
            assert_eq!(ok(&sim, "configure", flags, &["mp"]), "");
            assert_eq!(list(&sim, "mp").unwrap().mode, mode, "configure {flags:?}");
            assert!(lines_since(&sim, from).is_empty());
            assert_eq!(last_sector(&lun), vec![0x5a; 512], "label area touched");
        }
        // Through the stock tool's option letters too.
        gm(&sim, &["configure", "-AR", "mp"]);
        assert_eq!(list(&sim, "mp").unwrap().mode, "Active/Read");
        gm(&sim, &["configure", "-RP", "mp"]);
        assert_eq!(list(&sim, "mp").unwrap().mode, "Active/Passive");
        gm(&sim, &["configure", "-A", "mp"]);
        check_state(&sim, "mp", "da1 da0", "OPTIMAL", &["ACTIVE", "ACTIVE"]);
        assert_readable(&sim, "mp", &data);
        assert_eq!(
            sim.gmultipath(&["configure", "-X", "mp"]),
            Err("Invalid option -X.".to_string())
        );
        sim
    });
}

/// On a labelled device configure rewrites the label's mode byte (and
/// nothing else of it); taste then honours the new mode.
#[test]
fn configure_rewrites_the_label() {
    for_each_mode(|m| {
        let (sim, lun) = san(m, 125, &DA, SIZE);
        gm(&sim, &["label", "mp", "da0", "da1"]);
        check_state(&sim, "mp", "da0", "OPTIMAL", &["ACTIVE", "PASSIVE"]);
        let label = last_sector(&lun);
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
            ok(&sim, "configure", flags, &["mp"]);
            assert_eq!(list(&sim, "mp").unwrap().mode, mode);
            let now = last_sector(&lun);
            let mut expect = label.clone();
            expect[88] = byte;
            assert_eq!(
                now, expect,
                "configure {flags:?}: only the mode byte changes"
            );
        }
        // Stopped and tasted again, it comes back in Active/Read.
        ok(&sim, "stop", &[], &["mp"]);
        assert!(list(&sim, "mp").is_none());
        retaste(&sim, "da0");
        retaste(&sim, "da1");
        check_state(&sim, "mp", "da0", "OPTIMAL", &["ACTIVE", "READ"]);
        refused_stock(
            &sim,
            &[&lun],
            "configure",
            &["nope"],
            "Device nope is invalid",
        );
        sim
    });
}

/// A label that cannot be rewritten: an error, and the mode is unchanged.
#[test]
fn configure_write_failure_changes_nothing() {
    for_each_mode(|m| {
        let (sim, lun) = san(m, 126, &DA, SIZE);
        gm(&sim, &["label", "mp", "da0", "da1"]);
        lun.path(0).unwrap().fail_rate(EIO, 1000);
        refused(
            &sim,
            &[&lun],
            stock("configure", &["active_active"], &["mp"]),
            &format!("Can't update metadata on da0 ({EIO})"),
        );
        assert_eq!(list(&sim, "mp").unwrap().mode, "Active/Passive");
        lun.path(0).unwrap().heal();
        ok(&sim, "configure", &["active_active"], &["mp"]);
        assert_eq!(last_sector(&lun)[88], 1);
        sim
    });
}

// ---- rotate / getactive ----------------------------------------------------------

#[test]
fn rotate_and_getactive_outputs() {
    for_each_mode(|m| {
        let (sim, lun) = san(m, 127, &DA, SIZE);
        ok(&sim, "create", &[], &["mp", "da0", "da1", "da2"]);
        let data = write_data(&sim, "mp", 14);
        assert_eq!(ok(&sim, "getactive", &[], &["mp"]), "da0\n");
        assert_eq!(gm(&sim, &["getactive", "-v", "mp"]), "da0\nDone.\n");
        let from = sim.log_lines().len();
        assert_eq!(ok(&sim, "rotate", &[], &["mp"]), "");
        assert_eq!(
            lines_since(&sim, from),
            ["GEOM_MULTIPATH: da2 is now active path in mp"]
        );
        assert_eq!(ok(&sim, "getactive", &[], &["mp"]), "da2\n");
        assert_eq!(gm(&sim, &["rotate", "-v", "mp"]), "Done.\n");
        assert_eq!(ok(&sim, "getactive", &[], &["mp"]), "da1\n");
        // rotate skips a failed path.
        ok(&sim, "fail", &[], &["mp", "da0"]);
        ok(&sim, "rotate", &[], &["mp"]);
        assert_eq!(ok(&sim, "getactive", &[], &["mp"]), "da2\n");
        ok(&sim, "rotate", &[], &["mp"]);
        assert_eq!(ok(&sim, "getactive", &[], &["mp"]), "da1\n");
        ok(&sim, "restore", &[], &["mp", "da0"]);
        // Active/Active: every good path, newest first; rotate says nothing.
        ok(&sim, "configure", &["active_active"], &["mp"]);
        assert_eq!(ok(&sim, "getactive", &[], &["mp"]), "da2 da1 da0\n");
        let from = sim.log_lines().len();
        ok(&sim, "rotate", &[], &["mp"]);
        assert!(lines_since(&sim, from).is_empty());
        ok(&sim, "fail", &[], &["mp", "da1"]);
        assert_eq!(ok(&sim, "getactive", &[], &["mp"]), "da2 da0\n");
        // Active/Read: only the write path.
        ok(&sim, "configure", &["active_read"], &["mp"]);
        assert_eq!(ok(&sim, "getactive", &[], &["mp"]), "da0\n");
        assert_readable(&sim, "mp", &data);
        refused_stock(&sim, &[&lun], "rotate", &["nope"], "Device nope is invalid");
        sim
    });
}

/// getactive needs a writable output buffer big enough for the answer.
#[test]
fn getactive_output_buffer_problems() {
    for_each_mode(|m| {
        let (sim, lun) = two_path(m, 128);
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
        refused(&sim, &[&lun], req(None), "Missing output argument");
        refused(
            &sim,
            &[&lun],
            req(Some((4, true))),
            "Wrong length output argument",
        );
        refused(
            &sim,
            &[&lun],
            req(Some((4096, false))),
            "No write access output argument",
        );
        let r = sim.gctl(req(Some((5, true))));
        assert_eq!(
            (r.error_text(), r.text("output")),
            (None, Some("da0\n".into()))
        );
        sim
    });
}

// ---- stop / destroy ----------------------------------------------------------------

/// An open device is neither stopped nor destroyed (EBUSY, our deliberate
/// choice: FreeBSD withers it and finishes at the last close).
#[test]
fn stop_and_destroy_of_an_open_device_fail_with_ebusy() {
    for_each_mode(|m| {
        let (sim, lun) = san(m, 129, &DA, SIZE);
        gm(&sim, &["label", "mp", "da0", "da1"]);
        let data = write_data(&sim, "mp", 10);
        let label = last_sector(&lun);
        let dev = sim
            .open("multipath/mp", Access::new(1, 0, 0))
            .expect("open");
        for verb in ["stop", "destroy"] {
            refused_stock(
                &sim,
                &[&lun],
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
        assert_eq!(last_sector(&lun), label, "the label is intact");
        check_state(&sim, "mp", "da0", "OPTIMAL", &["ACTIVE", "PASSIVE"]);
        drop(dev);
        sim.run_until_idle();
        ok(&sim, "destroy", &[], &["mp"]);
        assert!(list(&sim, "mp").is_none());
        sim
    });
}

/// destroy wipes the label: nothing comes back on retaste.
#[test]
fn destroy_wipes_the_label() {
    for_each_mode(|m| {
        let (sim, lun) = san(m, 130, &DA, SIZE);
        gm(&sim, &["label", "mp", "da0", "da1"]);
        assert_eq!(&last_sector(&lun)[..16], b"GEOM::MULTIPATH\0");
        let from = sim.log_lines().len();
        assert_eq!(gm(&sim, &["destroy", "-v", "mp"]), "Done.\n");
        let lines = lines_since(&sim, from);
        assert!(
            lines.contains(&"GEOM_MULTIPATH: destroying mp".to_string()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"GEOM_MULTIPATH: mp destroyed".to_string()),
            "{lines:?}"
        );
        assert!(list(&sim, "mp").is_none());
        assert!(last_sector(&lun).iter().all(|&b| b == 0), "label wiped");
        retaste(&sim, "da0");
        retaste(&sim, "da1");
        assert!(list_all(&sim).is_empty());
        refused_stock(&sim, &[&lun], "destroy", &["mp"], "Device mp is invalid");
        sim
    });
}

/// stop keeps the label: the device is not tasted straight back, but it
/// returns when its paths are tasted again (here: one dies and returns,
/// the other is written to and closed).
#[test]
fn stop_keeps_the_label() {
    for_each_mode(|m| {
        let (sim, lun) = san(m, 131, &DA, SIZE);
        gm(&sim, &["label", "-A", "mp", "da0", "da1"]);
        let data = write_data(&sim, "mp", 11);
        let label = last_sector(&lun);
        let uuid = field(&label, 16, 40);
        let from = sim.log_lines().len();
        assert_eq!(ok(&sim, "stop", &[], &["mp"]), "");
        assert!(logged(&sim, "GEOM_MULTIPATH: mp destroyed"));
        assert!(list(&sim, "mp").is_none(), "not tasted straight back");
        assert_eq!(last_sector(&lun), label, "label kept");
        assert!(lines_since(&sim, from)
            .iter()
            .all(|l| !l.contains("created")));
        let p0 = lun.path(0).unwrap();
        p0.die();
        sim.run_until_idle();
        p0.revive();
        sim.run_until_idle();
        let g = list(&sim, "mp").expect("back on retaste");
        assert_eq!(
            (g.uuid.as_str(), g.mode.as_str()),
            (uuid.as_str(), "Active/Active")
        );
        assert_eq!(paths_of(&g), ["da0"]);
        retaste(&sim, "da1");
        check_state(&sim, "mp", "da1 da0", "OPTIMAL", &["ACTIVE", "ACTIVE"]);
        assert_readable(&sim, "mp", &data);
        sim
    });
}

/// A manual device: stop and destroy both just take it apart.
#[test]
fn stop_and_destroy_a_manual_device() {
    for_each_mode(|m| {
        let (sim, lun) = two_path(m, 132);
        let dev = sim
            .open("multipath/mp", Access::new(1, 1, 0))
            .expect("open");
        dev.write(SIZE - 512, &[0x77; 512]).unwrap();
        drop(dev);
        ok(&sim, "stop", &[], &["mp"]);
        assert!(list(&sim, "mp").is_none());
        assert_eq!(last_sector(&lun), vec![0x77; 512]);
        retaste(&sim, "da0");
        ok(&sim, "create", &[], &["mp", "da0", "da1"]);
        ok(&sim, "destroy", &[], &["mp"]);
        assert!(list(&sim, "mp").is_none());
        assert_eq!(last_sector(&lun), vec![0x77; 512], "no label to wipe");
        retaste(&sim, "da1");
        assert!(list_all(&sim).is_empty());
        refused_stock(&sim, &[&lun], "stop", &["mp"], "Device mp is invalid");
        sim
    });
}

/// A label that cannot be wiped: an error, and the device stays.
#[test]
fn destroy_wipe_failure_keeps_the_device() {
    for_each_mode(|m| {
        let (sim, lun) = san(m, 133, &DA, SIZE);
        gm(&sim, &["label", "mp", "da0", "da1"]);
        lun.path(0).unwrap().fail_rate(EIO, 1000);
        refused_stock(
            &sim,
            &[&lun],
            "destroy",
            &["mp"],
            &format!("Can't erase metadata on da0 ({EIO})"),
        );
        lun.path(0).unwrap().heal();
        ok(&sim, "destroy", &[], &["mp"]);
        assert!(last_sector(&lun).iter().all(|&b| b == 0));
        sim
    });
}

/// A path removed from a labelled device is not tasted straight back in
/// (its last writer closing makes GEOM retaste it while still attached).
#[test]
fn remove_from_a_labelled_device_sticks() {
    for_each_mode(|m| {
        let (sim, lun) = san(m, 134, &DA, SIZE);
        gm(&sim, &["label", "mp", "da0", "da1"]);
        let label = last_sector(&lun);
        ok(&sim, "remove", &[], &["mp", "da1"]);
        check_state(&sim, "mp", "da0", "DEGRADED", &["ACTIVE"]);
        assert_eq!(last_sector(&lun), label, "remove keeps the label");
        // Tasted again on purpose, it comes back.
        retaste(&sim, "da1");
        check_state(&sim, "mp", "da0", "OPTIMAL", &["ACTIVE", "PASSIVE"]);
        sim
    });
}

/// Paths added to and removed from an open device take over its opens,
/// and give them back: the access counts stay consistent (finish checks).
#[test]
fn add_and_remove_while_open() {
    for_each_mode(|m| {
        let (sim, lun) = two_path(m, 135);
        let data = write_data(&sim, "mp", 12);
        let dev = sim
            .open("multipath/mp", Access::new(1, 1, 0))
            .expect("open");
        ok(&sim, "add", &[], &["mp", "da2"]);
        ok(&sim, "remove", &[], &["mp", "da0"]);
        ok(&sim, "prefer", &[], &["mp", "da2"]);
        ok(&sim, "remove", &[], &["mp", "da1"]);
        check_state(&sim, "mp", "da2", "DEGRADED", &["ACTIVE"]);
        let before = lun.path(2).unwrap().counts().started;
        assert_eq!(dev.read(65536, data.len()).unwrap(), data);
        assert!(
            lun.path(2).unwrap().counts().started > before,
            "read on da2"
        );
        drop(dev);
        sim.run_until_idle();
        // Closed again: the removed paths are free, the device can go.
        retaste(&sim, "da0");
        ok(&sim, "destroy", &[], &["mp"]);
        retaste(&sim, "da2");
        sim
    });
}

/// Removing the last path of an open device: the device is withered at
/// once (its opener sees ENXIO) and goes at the last close.
#[test]
fn remove_last_path_of_an_open_device() {
    for_each_mode(|m| {
        let (sim, _lun) = two_path(m, 136);
        let data = write_data(&sim, "mp", 15);
        let dev = sim
            .open("multipath/mp", Access::new(1, 0, 0))
            .expect("open");
        ok(&sim, "remove", &[], &["mp", "da0"]);
        assert_eq!(dev.read(65536, data.len()).unwrap(), data);
        ok(&sim, "remove", &[], &["mp", "da1"]);
        assert!(list(&sim, "mp").is_none());
        assert_eq!(dev.read(65536, 512), Err(geom_sim::ENXIO));
        drop(dev);
        sim.run_until_idle();
        assert!(logged(&sim, "GEOM_MULTIPATH: mp destroyed"));
        assert!(sim.g_provider_by_name("multipath/mp").is_none());
        ok(&sim, "create", &[], &["mp", "da0", "da1"]);
        assert_readable(&sim, "mp", &data);
        sim
    });
}

/// The uuid form of create writes no label (src/ctl.rs: "a device without
/// an on-disk label"), so destroy has no label to wipe: the path's last
/// sector is not ours and must survive.
#[test]

fn destroy_of_a_uuid_form_device_keeps_the_last_sector() {
    for_each_mode(|m| {
        let (sim, lun) = san(m, 137, &DA, SIZE);
        lun.write_raw(SIZE - 512, &[0x42; 512]).unwrap();
        ok(&sim, "create", &[], &["mp", "da0", "da1", UUID]);
        assert_eq!(last_sector(&lun), vec![0x42; 512], "create wrote nothing");
        ok(&sim, "destroy", &[], &["mp"]);
        assert!(list(&sim, "mp").is_none());
        assert_eq!(
            last_sector(&lun),
            vec![0x42; 512],
            "destroy wiped a non-label"
        );
        sim
    });
}

/// Likewise configure must not write a label over the last sector of a
/// device that has none (it would also make the device come back by taste).
#[test]

fn configure_of_a_uuid_form_device_writes_no_label() {
    for_each_mode(|m| {
        let (sim, lun) = san(m, 138, &DA, SIZE);
        lun.write_raw(SIZE - 512, &[0x42; 512]).unwrap();
        ok(&sim, "create", &[], &["mp", "da0", "da1", UUID]);
        ok(&sim, "configure", &["active_active"], &["mp"]);
        assert_eq!(list(&sim, "mp").unwrap().mode, "Active/Active");
        assert_eq!(
            last_sector(&lun),
            vec![0x42; 512],
            "configure wrote a label"
        );
        sim
    });
}

/// A uuid is a device's identity: taste adds every path whose label has
/// it to the live device with that uuid. The uuid form of create must
/// therefore refuse a uuid a live device already has; otherwise a path of
/// one LUN is later tasted into a device built on another LUN.
#[test]

fn create_refuses_a_uuid_in_use() {
    for_each_mode(|m| {
        let (sim, lun) = san(m, 139, &DA, SIZE);
        let other = other_lun(&sim, &["db0"], SIZE, 512);
        gm(&sim, &["label", "lp", "da0", "da1"]);
        let uuid = field(&last_sector(&lun), 16, 40);
        let before = world(&sim, &[&lun, &other]);
        let r = sim.gctl(stock("create", &[], &["mp2", "db0", &uuid]));
        sim.run_until_idle();
        let after = world(&sim, &[&lun, &other]);
        // What refusing spares: da0, tasted again, joining a db0 device.
        if r.error_text().is_none() {
            ok(&sim, "stop", &[], &["lp"]);
            retaste(&sim, "da0");
            let g = list(&sim, "mp2").unwrap();
            panic!(
                "create accepted uuid {uuid}; after a retaste: {:?}",
                g.paths
            );
        }
        assert_eq!(before, after);
        sim
    });
}
