//! The shipped `geom_multipath_rs.ko` end to end on the simulator: loaded
//! in-process (its SYSINITs register MULTIPATH through `g_modevent`),
//! labelled paths tasted by the module's own taste, I/O through its start
//! and child-done routines, failover on a path error, gctl verbs built as
//! geom(8) builds them, dumpconf through a real sbuf, and unload.
//!
//! Without the `.ko` (not built yet: `make`) each test prints "SKIPPED"
//! and returns; with `GMR_REQUIRE_KO=1` it fails instead.

mod common;

use common::ko::built_ko;
use std::sync::Arc;

use geom_sim::ko::{self, KoKernel, KoOptions, KoReport};
use geom_sim::{Access, Lun, LunConfig, Mode, Sim, SimConfig, Violation, EBUSY, EIO};

/// Loads the module into `sim`, or None (after saying so) when the file
/// is missing.
fn load_ko(sim: &Sim) -> Option<Arc<KoKernel>> {
    let opts = built_ko()?;
    match ko::load(&sim.plat(), &opts) {
        Ok(k) => Some(k),
        Err(e) => panic!("loading {}: {e}", opts.path.display()),
    }
}

/// The module's view (the C mirrors) agrees with the simulator.
fn assert_mirrors(sim: &Sim, k: &KoKernel) {
    sim.run_until_idle();
    let bad = k.geom.mirror_mismatches(&sim.plat());
    assert!(bad.is_empty(), "{bad:#?}");
}

fn logged(sim: &Sim, needle: &str) -> bool {
    sim.log_lines().iter().any(|l| l.contains(needle))
}

/// A simulator with one LUN on da0 and da1 and the module loaded.
fn san(seed: u64) -> Option<(Sim, Lun, Arc<KoKernel>)> {
    san_in(Mode::Deterministic, seed)
}

fn san_in(mode: Mode, seed: u64) -> Option<(Sim, Lun, Arc<KoKernel>)> {
    let sim = Sim::new(SimConfig::new(mode, seed));
    let lun = sim
        .add_lun(LunConfig::new(&["da0", "da1"], 1 << 20))
        .expect("lun");
    let k = load_ko(&sim)?;
    sim.run_until_idle();
    Some((sim, lun, k))
}

/// [`san_in`] with mp0 labelled on both paths (see [`label`]).
fn san_with_mp0(mode: Mode, seed: u64) -> Option<(Sim, Lun, Arc<KoKernel>)> {
    let (sim, lun, k) = san_in(mode, seed)?;
    label(&sim);
    Some((sim, lun, k))
}

/// Labels mp0 on both paths; the module's taste builds the geom.
fn label(sim: &Sim) {
    assert_eq!(
        sim.gmultipath(&["label", "mp0", "da0", "da1"]),
        Ok(String::new())
    );
    sim.run_until_idle();
    assert!(
        sim.g_provider_by_name("multipath/mp0").is_some(),
        "the module's taste created mp0; log: {:?}; violations: {:?}",
        sim.log_lines(),
        sim.violations()
    );
}

/// Destroys mp0 and unloads the module.
fn stop_and_unload(sim: &Sim, k: &Arc<KoKernel>) -> KoReport {
    assert_eq!(sim.gmultipath(&["destroy", "mp0"]), Ok(String::new()));
    sim.run_until_idle();
    let report = ko::unload(k).expect("unload");
    sim.run_until_idle();
    assert_eq!(report.panics, 0, "{report:?}");
    assert!(sim.g_provider_by_name("multipath/mp0").is_none());
    report
}

/// The module's 64-byte softc graveyard vector outlives it (see
/// `unload_leaks_nothing`); every other rule must hold.
fn is_known_leak(v: &Violation) -> bool {
    v.rule == "leak"
        && v.message
            .contains("geom_multipath_rs leaked memory on destroy (1 allocations, 64 bytes")
}

/// Destroys mp0, unloads the module, and checks that the run broke no
/// rule but for the known leak.
fn unload_clean(sim: Sim, k: &Arc<KoKernel>) {
    stop_and_unload(&sim, k);
    assert_clean_but_known_leak(sim);
}

fn assert_clean_but_known_leak(sim: Sim) {
    let bad: Vec<Violation> = sim
        .violations()
        .into_iter()
        .filter(|v| !is_known_leak(v))
        .collect();
    assert!(bad.is_empty(), "{bad:#?}");
    drop(sim.finish());
}

#[test]
fn label_io_failover_unload() {
    for mode in [Mode::Deterministic, Mode::Threaded] {
        label_io_failover_unload_in(mode);
    }
}

/// On real threads too: g_down, g_up, the event thread and the module's
/// own kproc run concurrently over the mirrors.
fn label_io_failover_unload_in(mode: Mode) {
    let Some((sim, lun, k)) = san_with_mp0(mode, 3) else {
        return;
    };
    let dev = sim
        .open("multipath/mp0", Access::new(1, 1, 0))
        .expect("open mp0");
    dev.write(0, &[7u8; 4096])
        .expect("write through the module");
    assert_eq!(dev.read(0, 4096).expect("read"), vec![7u8; 4096]);
    assert_eq!(lun.read_raw(0, 4096).expect("raw"), vec![7u8; 4096]);
    assert_mirrors(&sim, &k);

    // The active path fails: the module marks it FAIL and retries on da1.
    lun.path(0).expect("da0").fail_rate(EIO, 1000);
    assert_eq!(dev.write(4096, &[9u8; 4096]), Ok(()), "failover and retry");
    assert_eq!(dev.read(4096, 4096).expect("read"), vec![9u8; 4096]);
    assert!(
        logged(&sim, "Error 5, da0 in mp0 marked FAIL"),
        "{:?}",
        sim.log_lines()
    );
    assert_eq!(sim.gmultipath(&["getactive", "mp0"]), Ok("da1\n".into()));
    assert_mirrors(&sim, &k);

    // The module holds its paths open: kldunload is refused (EBUSY, as
    // g_unload_class refuses while anything of the class is open) and
    // nothing changes.
    match ko::unload(&k) {
        Err(e) => assert_eq!(e.errno(), EBUSY, "{e}"),
        Ok(r) => panic!("unload with mp0 in use succeeded: {r:?}"),
    }
    assert_eq!(
        dev.read(0, 4096).expect("read after refused unload"),
        vec![7u8; 4096]
    );
    dev.close().expect("close");
    sim.run_until_idle();
    unload_clean(sim, &k);
}

#[test]
fn gctl_errors_outputs_and_dumpconf() {
    let Some((sim, _lun, k)) = san_with_mp0(Mode::Deterministic, 4) else {
        return;
    };
    // Errors come back through gctl_error, outputs through gctl_set_param.
    assert_eq!(
        sim.gmultipath(&["getactive", "nosuch"]),
        Err("Device nosuch is invalid".into())
    );
    assert_eq!(
        sim.gmultipath(&["bogus"]),
        Err("Unknown command: bogus.".into())
    );
    assert_eq!(sim.gmultipath(&["fail", "mp0", "da0"]), Ok(String::new()));
    assert_eq!(sim.gmultipath(&["getactive", "mp0"]), Ok("da1\n".into()));
    assert_eq!(
        sim.gmultipath(&["restore", "mp0", "da0"]),
        Ok(String::new())
    );
    // dumpconf: the module's XML through sbuf_bcat.
    let xml = sim.confxml();
    for needle in [
        "<name>MULTIPATH</name>",
        "<name>mp0</name>",
        "<name>multipath/mp0</name>",
        "<Mode>Active/Passive</Mode>",
    ] {
        assert!(xml.contains(needle), "{needle} not in {xml}");
    }
    unload_clean(sim, &k);
}

/// The same scenario on the in-process core and on the module prints the
/// same console lines: the `.ko` is the code the simulator tests.
#[test]
fn console_matches_the_native_class() {
    let run = |sim: &Sim, lun: &Lun| {
        label(sim);
        let dev = sim
            .open("multipath/mp0", Access::new(1, 1, 0))
            .expect("open mp0");
        lun.path(0).expect("da0").fail_rate(EIO, 1000);
        assert_eq!(dev.write(0, &[1u8; 4096]), Ok(()));
        dev.close().expect("close");
        sim.run_until_idle();
        sim.log_lines()
    };
    let Some((sim, lun, k)) = san(5) else { return };
    let ko_lines = run(&sim, &lun);
    assert!(
        ko_lines.iter().any(|l| l.contains("marked FAIL")),
        "{ko_lines:?}"
    );
    unload_clean(sim, &k);

    let native = Sim::deterministic(5);
    let lun = native
        .add_lun(LunConfig::new(&["da0", "da1"], 1 << 20))
        .expect("lun");
    native.load_multipath().expect("load");
    native.run_until_idle();
    let native_lines = run(&native, &lun);
    assert_eq!(ko_lines, native_lines);
    native.finish().assert_clean();
}

/// kldunload frees everything the module allocated (malloc_uninit finds
/// nothing live). Fails today: the kernel platform's softc graveyard
/// (a static Vec in src/kernel/mod.rs) keeps its 64-byte buffer after
/// `release_all_softcs` empties it.
#[test]
fn unload_leaks_nothing() {
    let Some((sim, _lun, k)) = san_with_mp0(Mode::Deterministic, 6) else {
        return;
    };
    let report = stop_and_unload(&sim, &k);
    assert_eq!(
        report.live_at_unload, 0,
        "malloc_uninit found the module's memory still allocated at kldunload \
         (64 bytes: the softc GRAVEYARD Vec of src/kernel/mod.rs keeps its \
         buffer after release_all_softcs): {report:?}"
    );
    sim.finish().assert_clean();
}

/// A second MULTIPATH class is refused as g_load_class refuses it
/// (EEXIST, "A GEOM class MULTIPATH is already loaded."), and the first
/// keeps working.
#[test]
fn a_second_multipath_class_is_refused() {
    let sim = Sim::deterministic(8);
    sim.load_multipath().expect("the in-process class");
    let opts = KoOptions::default();
    if !opts.path.exists() {
        return drop(load_ko(&sim));
    }
    assert!(ko::load(&sim.plat(), &opts).is_err());
    assert!(logged(&sim, "A GEOM class MULTIPATH is already loaded."));
    sim.add_lun(LunConfig::new(&["da0", "da1"], 1 << 20))
        .expect("lun");
    label(&sim);
    let v: Vec<Violation> = sim.violations();
    assert!(v.is_empty(), "{v:#?}");
}

/// `g_clone_bio` returning NULL (the simulator's injected ENOMEM): the
/// module completes the bio with ENOMEM, GEOM sends it again, and every
/// write and read still lands.
#[test]
fn clone_failures_are_retried() {
    let Some((sim, _lun, k)) = san_with_mp0(Mode::Deterministic, 9) else {
        return;
    };
    let dev = sim
        .open("multipath/mp0", Access::new(1, 1, 0))
        .expect("open mp0");
    let steps = sim.steps();
    sim.set_clone_failure(300);
    for i in 0..16u64 {
        dev.write(i * 4096, &[i as u8; 4096]).expect("write");
    }
    for i in 0..16u64 {
        assert_eq!(dev.read(i * 4096, 4096).expect("read"), vec![i as u8; 4096]);
    }
    sim.set_clone_failure(0);
    let with_failures = sim.steps() - steps;
    // The same I/O again without failures takes fewer steps: the failed
    // clones were retried.
    let steps = sim.steps();
    for i in 0..16u64 {
        dev.write(i * 4096, &[i as u8; 4096]).expect("write");
    }
    for i in 0..16u64 {
        assert_eq!(dev.read(i * 4096, 4096).expect("read"), vec![i as u8; 4096]);
    }
    assert!(sim.steps() - steps < with_failures, "no clone failed");
    dev.close().expect("close");
    sim.run_until_idle();
    unload_clean(sim, &k);
}

/// The request geom(8) builds for the stock gmultipath's `configure -A
/// mp0` (sbin/geom/core/geom.c, lib/geom/multipath): `class` and `verb`
/// ASCII with their NUL, `version` a u32, each of the verb's boolean
/// options an int (1 when given, 0 otherwise), `nargs` an int, `arg0`
/// ASCII, and the 4096-byte read-write `output`; the kernel's copy marks
/// names and values as kernel memory.
#[test]
fn gctl_req_is_laid_out_as_geom8_sends_it() {
    use geom_sim::ko::gctl::GctlReq;
    use geom_sim::ko::kstructs as ks;
    use geom_sim::SimCtlReq;
    let Some((sim, _lun, k)) = san(12) else {
        return;
    };
    let req = SimCtlReq::geom_cmd(
        "MULTIPATH",
        "configure",
        &[
            ("active_active", true),
            ("active_passive", false),
            ("active_read", false),
        ],
        &["mp0"],
        true,
    );
    let g = GctlReq::from_ctl(&k.geom, &req);
    let kern = (ks::GCTL_PARAM_NAMEKERNEL | ks::GCTL_PARAM_VALUEKERNEL) as i32;
    let rd = ks::GCTL_PARAM_RD as i32 | kern;
    let ascii = rd | ks::GCTL_PARAM_ASCII as i32;
    let rw = ks::GCTL_PARAM_RW as i32 | kern;
    let got: Vec<(String, i32, i32)> = g
        .params()
        .into_iter()
        .map(|(n, f, l, _)| (n, f, l))
        .collect();
    let want: Vec<(String, i32, i32)> = [
        ("class", ascii, 10),
        ("verb", ascii, 10),
        ("version", rd, 4),
        ("active_active", rd, 4),
        ("active_passive", rd, 4),
        ("active_read", rd, 4),
        ("nargs", rd, 4),
        ("arg0", ascii, 4),
        ("output", rw, 4096),
    ]
    .into_iter()
    .map(|(n, f, l)| (n.to_string(), f, l))
    .collect();
    assert_eq!(got, want);
    let value = |name: &str| {
        g.params()
            .into_iter()
            .find(|p| p.0 == name)
            .map(|p| p.3)
            .unwrap_or_default()
    };
    assert_eq!(value("active_active"), 1i32.to_ne_bytes());
    assert_eq!(value("active_read"), 0i32.to_ne_bytes());
    assert_eq!(value("version"), 1u32.to_ne_bytes(), "G_MULTIPATH_VERSION");
    assert_eq!(value("arg0"), b"mp0\0");
    drop(g);
    ko::unload(&k).expect("unload");
    drop(sim);
}

/// Verbs whose named options change what the module does, through the
/// .ko: `configure -A|-R|-P` switch the mode, `create -R` makes an
/// Active/Read geom; dumpconf shows each.
#[test]
fn named_options_reach_the_module() {
    let Some((sim, _lun, k)) = san_with_mp0(Mode::Deterministic, 13) else {
        return;
    };
    let mode = |sim: &Sim| {
        let xml = sim.confxml();
        let at = xml.find("<Mode>").map(|i| i + 6).unwrap_or(0);
        xml[at..].split('<').next().unwrap_or("").to_string()
    };
    assert_eq!(mode(&sim), "Active/Passive");
    for (flag, want) in [
        ("-A", "Active/Active"),
        ("-R", "Active/Read"),
        ("-P", "Active/Passive"),
    ] {
        assert_eq!(
            sim.gmultipath(&["configure", flag, "mp0"]),
            Ok(String::new())
        );
        sim.run_until_idle();
        assert_eq!(mode(&sim), want, "configure {flag}");
    }
    unload_clean(sim, &k);

    let sim = Sim::deterministic(14);
    sim.add_lun(LunConfig::new(&["da0", "da1"], 1 << 20))
        .expect("lun");
    let Some(k) = load_ko(&sim) else { return };
    sim.run_until_idle();
    assert_eq!(
        sim.gmultipath(&["create", "-R", "mp0", "da0", "da1"]),
        Ok(String::new())
    );
    sim.run_until_idle();
    assert_eq!(mode(&sim), "Active/Read");
    unload_clean(sim, &k);
}
