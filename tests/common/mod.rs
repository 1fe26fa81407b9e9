//! Helpers shared by the multipath tests on the simulator: a simulated SAN
//! with the class loaded, and `gmultipath list` / `getactive` the way
//! FreeBSD's test suite reads them.
#![allow(dead_code)]

pub mod ctl;

use geom_multipath_rs::metadata::{Metadata, Mode as MpMode, Name, Uuid};
use geom_sim::{Lun, LunConfig, Mode, Sim, SimConfig};

/// Whether the class under test is the built module (`GMR_CLASS=ko`)
/// rather than the core linked into the simulator.
pub fn ko_class() -> bool {
    geom_sim::ClassChoice::from_env().is_ok_and(|c| c.is_ko())
}

/// `core_only!("why")`: ends the calling test at once when the class is
/// the built module (`GMR_CLASS=ko`), saying so by name: a line
/// "SKIPPED (core only): BINARY::TEST because WHY" on stderr (past the
/// test harness's capture) and in the file `GMR_CORE_ONLY_LOG` names, so
/// that `make test` lists it and does not count it as passed. For tests
/// that look inside the core (its counters, its class object).
#[allow(unused_macros)]
macro_rules! core_only {
    ($why:expr) => {
        fn __core_only_here() {}
        if $crate::common::skip_core_only(std::any::type_name_of_val(&__core_only_here), $why) {
            return;
        }
    };
}
#[allow(unused_imports)]
pub(crate) use core_only;

/// The body of [`core_only!`]: `here` is the type name of a function
/// nested in the test (its path names the test).
pub fn skip_core_only(here: &str, why: &str) -> bool {
    use std::io::Write;
    if !ko_class() {
        return false;
    }
    let test = here.trim_end_matches("::__core_only_here");
    let line = format!("SKIPPED (core only): {test} because {why}\n");
    // Written to the descriptor, not through eprint!, which the test
    // harness captures for passing tests.
    let _ = std::io::stderr().write_all(line.as_bytes());
    if let Some(log) = std::env::var_os("GMR_CORE_ONLY_LOG") {
        let r = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = r {
            panic!("GMR_CORE_ONLY_LOG={}: {e}", log.to_string_lossy());
        }
    }
    true
}

/// Both schedulers, so every scenario also runs on real threads.
pub fn modes() -> [Mode; 2] {
    [Mode::Deterministic, Mode::Threaded]
}

/// The size of the LUN [`with_device`] builds (and most tests' `san`).
pub const SIZE: u64 = 1 << 20;

/// Runs `case` under both schedulers (as [`for_each_mode`]) on the
/// simulator and LUN `setup` builds for the scheduler and `seed`; the
/// simulator must finish clean.
pub fn with_setup(seed: u64, setup: impl Fn(Mode, u64) -> (Sim, Lun), case: impl Fn(&Sim, &Lun)) {
    for_each_mode(|m| {
        let (sim, lun) = setup(m, seed);
        case(&sim, &lun);
        sim
    });
}

/// Runs `case` under both schedulers on a [`SIZE`] LUN reached through
/// `paths`, MULTIPATH loaded and no device made yet (see [`san`]).
pub fn with_san(seed: u64, paths: &[&str], case: impl Fn(&Sim, &Lun)) {
    with_setup(seed, |m, s| san(m, s, paths, SIZE), case);
}

/// Runs `case` under both schedulers (as [`for_each_mode`]) on a [`SIZE`]
/// LUN reached through `paths`, after `gmultipath CREATE...` (create or
/// label) made the device.
pub fn with_device(seed: u64, paths: &[&str], create: &[&str], case: impl Fn(&Sim, &Lun)) {
    let setup = |m, s| {
        let (sim, lun) = san(m, s, paths, SIZE);
        gm(&sim, create);
        (sim, lun)
    };
    with_setup(seed, setup, case);
}

/// Runs `body` once under each scheduler (see [`modes`]); the simulator it
/// returns is finished and must be clean (no leak, no stuck bio, no
/// panic). Values the body does not return are dropped before the check.
pub fn for_each_mode(mut body: impl FnMut(Mode) -> Sim) {
    for m in modes() {
        body(m).finish().assert_clean();
    }
}

/// `gmultipath ARGV...` that must succeed, then the simulator run until
/// idle; returns what the command printed.
#[track_caller]
pub fn gm(sim: &Sim, argv: &[&str]) -> String {
    let out = sim
        .gmultipath(argv)
        .unwrap_or_else(|e| panic!("gmultipath {argv:?}: {e}"));
    sim.run_until_idle();
    out
}

/// A simulator with one LUN reachable through `paths`, MULTIPATH loaded.
pub fn san(mode: Mode, seed: u64, paths: &[&str], size: u64) -> (Sim, Lun) {
    let sim = Sim::new(SimConfig::new(mode, seed));
    let lun = sim.add_lun(LunConfig::new(paths, size)).expect("lun");
    sim.load_multipath().expect("load MULTIPATH");
    sim.run_until_idle();
    (sim, lun)
}

/// An Active/Passive label for `name`/`uuid` on a `size`-byte path of
/// 512-byte sectors, and the sector that holds it on disk.
pub fn label_for(name: &str, uuid: &str, size: u64) -> (Metadata, Vec<u8>) {
    let md = Metadata::new(
        Name::new(name).expect("a valid name"),
        Uuid::parse(uuid).expect("a valid uuid"),
        512,
        size,
        MpMode::ActivePassive,
    )
    .expect("a valid label");
    let mut sector = vec![0u8; 512];
    md.encode_sector(&mut sector).expect("encode the label");
    (md, sector)
}

/// One multipath geom as `gmultipath list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpList {
    pub name: String,
    pub uuid: String,
    pub state: String,
    pub mode: String,
    pub kind: String,
    pub provider_state: String,
    pub mediasize: u64,
    pub sectorsize: u32,
    /// (path provider name, State), oldest path first like `gmultipath list`
    /// (libgeom puts each consumer at the head while parsing the newest-first
    /// kernel list).
    pub paths: Vec<(String, String)>,
}

/// The text of `n`'s first child element `tag` ("" when it has none).
pub fn child_text<'a>(n: roxmltree::Node<'a, 'a>, tag: &str) -> Option<&'a str> {
    n.children()
        .find(|c| c.has_tag_name(tag))
        .map(|c| c.text().unwrap_or(""))
}

/// The id of the provider a confxml `<consumer>` is attached to.
pub fn provider_ref<'a>(consumer: roxmltree::Node<'a, 'a>) -> &'a str {
    consumer
        .children()
        .find(|x| x.has_tag_name("provider"))
        .and_then(|x| x.attribute("ref"))
        .unwrap_or("")
}

/// Parses the MULTIPATH geoms out of the confxml, as libgeom would.
pub fn list_all(sim: &Sim) -> Vec<MpList> {
    let xml = sim.confxml();
    let doc = roxmltree::Document::parse(&xml).expect("confxml is well-formed XML");
    let mut providers = std::collections::HashMap::new();
    for p in doc
        .descendants()
        .filter(|n| n.has_tag_name("provider") && n.attribute("id").is_some())
    {
        if let Some(name) = child_text(p, "name") {
            providers.insert(
                p.attribute("id").unwrap_or("").to_string(),
                name.to_string(),
            );
        }
    }
    let mut out = Vec::new();
    for class in doc
        .descendants()
        .filter(|n| n.has_tag_name("class") && n.attribute("id").is_some())
    {
        if child_text(class, "name") != Some("MULTIPATH") {
            continue;
        }
        for g in class.children().filter(|n| n.has_tag_name("geom")) {
            // A geom being withered has no softc and no config of ours.
            let Some(cfg) = g.children().find(|c| c.has_tag_name("config")) else {
                continue;
            };
            let mut paths: Vec<(String, String)> = g
                .children()
                .filter(|c| c.has_tag_name("consumer"))
                .map(|c| {
                    let pref = provider_ref(c);
                    let st = c
                        .children()
                        .find(|x| x.has_tag_name("config"))
                        .and_then(|x| child_text(x, "State"))
                        .unwrap_or("");
                    (
                        providers.get(pref).cloned().unwrap_or_default(),
                        st.to_string(),
                    )
                })
                .collect();
            paths.reverse();
            let pp = g.children().find(|c| c.has_tag_name("provider"));
            out.push(MpList {
                name: child_text(g, "name").unwrap_or("").to_string(),
                uuid: child_text(cfg, "UUID").unwrap_or("").to_string(),
                state: child_text(cfg, "State").unwrap_or("").to_string(),
                mode: child_text(cfg, "Mode").unwrap_or("").to_string(),
                kind: child_text(cfg, "Type").unwrap_or("").to_string(),
                provider_state: pp
                    .and_then(|p| p.children().find(|x| x.has_tag_name("config")))
                    .and_then(|c| child_text(c, "State"))
                    .unwrap_or("")
                    .to_string(),
                mediasize: pp
                    .and_then(|p| child_text(p, "mediasize"))
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
                sectorsize: pp
                    .and_then(|p| child_text(p, "sectorsize"))
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
                paths,
            });
        }
    }
    out
}

/// `gmultipath list NAME`.
pub fn list(sim: &Sim, name: &str) -> Option<MpList> {
    list_all(sim).into_iter().find(|g| g.name == name)
}

/// `gmultipath getactive NAME`, without the trailing newline.
pub fn getactive(sim: &Sim, name: &str) -> String {
    sim.gmultipath(&["getactive", name])
        .expect("getactive")
        .trim_end()
        .to_string()
}

/// FreeBSD's `check_multipath_state ACTIVE STATE S0 S1 [S2]`.
#[track_caller]
pub fn check_state(sim: &Sim, name: &str, active: &str, state: &str, paths: &[&str]) {
    sim.run_until_idle();
    let g = list(sim, name).unwrap_or_else(|| panic!("no geom {name}"));
    assert_eq!(getactive(sim, name), active, "getactive {name}");
    assert_eq!(g.state, state, "geom state of {name}: {g:?}");
    let got: Vec<&str> = g.paths.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(got, paths, "path states of {name} (oldest first): {g:?}");
}

/// Whether the console has a line containing `needle`.
pub fn logged(sim: &Sim, needle: &str) -> bool {
    sim.log_lines().iter().any(|l| l.contains(needle))
}

/// Writes submitted without waiting, and what became of each.
pub struct Writes {
    results: std::sync::Arc<std::sync::Mutex<Vec<Option<i32>>>>,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Writes {
    /// Completions so far.
    pub fn done(&self) -> u64 {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }
    /// Each write's error (`Some(0)` for success, `None` while pending).
    pub fn results(&self) -> Vec<Option<i32>> {
        self.results.lock().unwrap().clone()
    }
    pub fn all_ok(&self) -> bool {
        self.results().iter().all(|r| *r == Some(0))
    }
}

/// The byte block `i` of [`submit_writes`] is filled with.
pub fn fill(i: usize) -> u8 {
    i as u8 + 1
}

/// Submits `n` writes of `block` bytes (block i at offset i * block, filled
/// with [`fill`]`(i)`) without waiting. A second completion of one write
/// fails the test.
pub fn submit_writes(dev: &geom_sim::Dev, n: usize, block: u64) -> Writes {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    let w = Writes {
        results: Arc::new(Mutex::new(vec![None; n])),
        count: Arc::new(AtomicU64::new(0)),
    };
    for i in 0..n {
        let (r, c) = (w.results.clone(), w.count.clone());
        let data = vec![fill(i); block as usize];
        dev.submit(
            geom_sim::BioCmd::Write,
            i as u64 * block,
            block,
            Some(data),
            move |_, out| {
                let mut v = r.lock().unwrap();
                assert!(v[i].is_none(), "write {i} completed twice");
                v[i] = Some(out.error);
                c.fetch_add(1, Ordering::SeqCst);
            },
        )
        .unwrap();
    }
    w
}
