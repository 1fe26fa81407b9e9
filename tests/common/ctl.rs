//! Helpers of the gctl verb tests (tests/ctl_*.rs): the request geom(8)
//! builds for a verb, a request that must succeed or be refused changing
//! nothing, and the label sector and data read back.

use super::{check_state, getactive, list_all, san, with_device, with_setup, MpList, SIZE};
use geom_sim::{Access, Dev, Lun, LunConfig, Mode, Sim, SimCtlReq, EIO};

pub const DA: [&str; 3] = ["da0", "da1", "da2"];
pub const UUID: &str = "0f1e2d3c-4b5a-4697-8877-665544332211";
pub const KERNEL_VERBS: [&str; 11] = [
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

/// The boolean options geom(8) always sends for `verb` (gmultipath's table).
pub fn stock_bools(verb: &str) -> &'static [&'static str] {
    match verb {
        "create" | "label" => &["active_active", "active_read"],
        "configure" => &["active_active", "active_passive", "active_read"],
        _ => &[],
    }
}

/// The request geom(8) sends for `gmultipath VERB [-flags] ARGS`: every bool
/// option (set or not), nargs, argN, and an `output` buffer unless the
/// command has a userland handler (prefer).
pub fn stock(verb: &str, set: &[&str], args: &[&str]) -> SimCtlReq {
    request(verb, set, args, verb != "prefer")
}

/// A request built as geom(8) builds one (see [`stock`]), with an `output`
/// buffer or without: also for the verbs it never sends to the kernel.
pub fn request(verb: &str, set: &[&str], args: &[&str], output: bool) -> SimCtlReq {
    let bools: Vec<(&str, bool)> = stock_bools(verb)
        .iter()
        .map(|&n| (n, set.contains(&n)))
        .collect();
    SimCtlReq::geom_cmd("MULTIPATH", verb, &bools, args, output)
}

/// A request by hand: class MULTIPATH, `verb` and version 1, nothing more
/// (the caller adds the rest, well-formed or not).
pub fn bare(verb: &str) -> SimCtlReq {
    let mut r = SimCtlReq::new();
    r.add_str("class", "MULTIPATH")
        .add_str("verb", verb)
        .add_u32("version", 1);
    r
}

/// Runs a stock request and expects success; returns `output`.
#[track_caller]
pub fn ok(sim: &Sim, verb: &str, set: &[&str], args: &[&str]) -> String {
    let r = sim.gctl(stock(verb, set, args));
    sim.run_until_idle();
    assert_eq!(r.error_text(), None, "{verb} {set:?} {args:?}");
    r.text("output").unwrap_or_default()
}

/// Everything a refused request must leave alone.
#[derive(Debug, PartialEq)]
pub struct World {
    geoms: Vec<MpList>,
    active: Vec<String>,
    last_sectors: Vec<Vec<u8>>,
    providers: Vec<bool>,
}

pub fn world(sim: &Sim, luns: &[&Lun]) -> World {
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
pub fn refused(sim: &Sim, luns: &[&Lun], req: SimCtlReq, text: &str) {
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
pub fn refused_stock(sim: &Sim, luns: &[&Lun], verb: &str, args: &[&str], text: &str) {
    refused(sim, luns, stock(verb, &[], args), text);
}

/// The console lines logged since `from`.
pub fn lines_since(sim: &Sim, from: usize) -> Vec<String> {
    sim.log_lines()[from..].to_vec()
}

/// Runs `act`; what it returned and the console lines it logged.
pub fn logs_of<T>(sim: &Sim, act: impl FnOnce() -> T) -> (T, Vec<String>) {
    let from = sim.log_lines().len();
    let out = act();
    (out, lines_since(sim, from))
}

pub fn last_sector(lun: &Lun) -> Vec<u8> {
    let ss = lun.sectorsize() as u64;
    lun.read_raw(lun.mediasize() - ss, ss as usize)
        .expect("read last sector")
}

/// A NUL-terminated text field of the label sector.
pub fn field(sector: &[u8], at: usize, len: usize) -> String {
    let f = &sector[at..at + len];
    let end = f.iter().position(|&b| b == 0).unwrap_or(len);
    String::from_utf8_lossy(&f[..end]).into_owned()
}

/// A second LUN with other geometry.
pub fn other_lun(sim: &Sim, names: &[&str], size: u64, sectorsize: u32) -> Lun {
    let mut cfg = LunConfig::new(names, size);
    cfg.sectorsize = sectorsize;
    let lun = sim.add_lun(cfg).expect("second lun");
    sim.run_until_idle();
    lun
}

pub fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Writes a recognisable pattern through `/dev/multipath/NAME`.
#[track_caller]
pub fn write_data(sim: &Sim, name: &str, seed: u8) -> Vec<u8> {
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
pub fn assert_readable(sim: &Sim, name: &str, data: &[u8]) {
    let dev = sim
        .open(&format!("multipath/{name}"), Access::new(1, 0, 0))
        .expect("open for read");
    assert_eq!(dev.read(65536, data.len()).expect("read"), data);
    drop(dev);
    sim.run_until_idle();
}

/// Makes GEOM retaste `prov` (the last writer closing).
pub fn retaste(sim: &Sim, prov: &str) {
    let dev = sim
        .open(prov, Access::new(0, 1, 0))
        .unwrap_or_else(|e| panic!("open {prov} for write: {e}"));
    drop(dev);
    sim.run_until_idle();
}

pub fn paths_of(g: &MpList) -> Vec<&str> {
    g.paths.iter().map(|(p, _)| p.as_str()).collect()
}

/// A manual device `mp` on da0 and da1 (a stock create request), da2 a
/// spare path of the same LUN.
pub fn two_path(m: Mode, seed: u64) -> (Sim, Lun) {
    let (sim, lun) = san(m, seed, &DA, SIZE);
    ok(&sim, "create", &[], &["mp", "da0", "da1"]);
    (sim, lun)
}

/// A manual device `mp` on da0, da1 and da2 (a stock create request).
pub fn three_path(m: Mode, seed: u64) -> (Sim, Lun) {
    let (sim, lun) = san(m, seed, &DA, SIZE);
    ok(&sim, "create", &[], &["mp", "da0", "da1", "da2"]);
    (sim, lun)
}

/// Runs `case` under both schedulers on a [`two_path`] device.
pub fn with_two_path(seed: u64, case: impl Fn(&Sim, &Lun)) {
    with_setup(seed, two_path, case);
}

/// Runs `case` under both schedulers on a [`three_path`] device.
pub fn with_three_path(seed: u64, case: impl Fn(&Sim, &Lun)) {
    with_setup(seed, three_path, case);
}

/// After `add mp da2` on a [`two_path`] device: da2 joined as a third,
/// passive path and da0 is still the active one.
#[track_caller]
pub fn check_added_da2(sim: &Sim) {
    check_state(
        sim,
        "mp",
        "da0",
        "OPTIMAL",
        &["ACTIVE", "PASSIVE", "PASSIVE"],
    );
}

/// Runs `case` under both schedulers on `mp`, labelled on da0 and da1,
/// with da0 failing every bio with EIO (so its label can be neither
/// rewritten nor wiped) until `case` heals it.
pub fn with_failing_label(seed: u64, case: impl Fn(&Sim, &Lun)) {
    with_device(seed, &DA, &["label", "mp", "da0", "da1"], |sim, lun| {
        lun.path(0).unwrap().fail_rate(EIO, 1000);
        case(sim, lun);
    });
}

/// Opens `/dev/multipath/mp` with `access`, which must succeed.
#[track_caller]
pub fn open_mp(sim: &Sim, access: Access) -> Dev {
    sim.open("multipath/mp", access)
        .unwrap_or_else(|e| panic!("open multipath/mp {access:?}: {e}"))
}

/// Writes `byte` all over the last sector of `/dev/multipath/mp` (a manual
/// device exposes it: it holds no label).
#[track_caller]
pub fn fill_last_sector(sim: &Sim, byte: u8) {
    let dev = open_mp(sim, Access::new(1, 1, 0));
    dev.write(SIZE - 512, &[byte; 512])
        .expect("write the last sector");
    drop(dev);
}
