//! Injected `M_NOWAIT` failures at every allocation site a scenario
//! reaches, through the shipped `geom_multipath_rs.ko`.
//!
//! One scenario (load, label, I/O with a path failure, failover, restore,
//! administrative fail, close, destroy, unload) is run once to list its
//! `M_NOWAIT` allocations in order with their site (`malloc`,
//! `g_clone_bio`, `g_post_event`, ...). It is then run again for each N
//! with the Nth failing (every N when there are few; otherwise every N
//! whose site kind appears fewer than [`FULL_KIND`] times, plus a seeded
//! sample of the rest), with a window of consecutive failures, and with
//! every k-th failing. Each run must end with: no panic(9), every bio
//! completed exactly once with the data written read back, nothing leaked
//! at unload, no rule of the emulation broken, and each failure visible,
//! either as an errno (a bio completed with ENOMEM, which GEOM sends again,
//! a gctl error, a refused kldload) or as a `GEOM_MULTIPATH:` console line.
//!
//! Without the `.ko` (not built yet: `make`) each test prints "SKIPPED"
//! and returns; with `GMR_REQUIRE_KO=1` it fails instead.

mod common;

use std::collections::BTreeMap;

use geom_sim::ko::kern::{FailNowait, NowaitLog};
use geom_sim::ko::{self, KoOptions, KoReport};
use geom_sim::workload::{run_workload, WorkloadConfig};
use geom_sim::{Access, LunConfig, Sim, Violation, EIO};

use common::ko::built_ko;

/// Up to this many allocations, every N is swept.
const FULL_ALL: usize = 600;
/// Above it, site kinds seen fewer times than this are swept at every N.
const FULL_KIND: usize = 64;
/// N sampled among the other allocations (seeded, so runs repeat).
const SAMPLES: usize = 48;

/// What one run of the scenario showed.
#[derive(Debug, Default)]
struct Run {
    log: NowaitLog,
    /// kldload's errno when the load failed.
    load_errno: Option<i32>,
    /// gctl requests that failed, with geom(8)'s message.
    gctl_errors: Vec<String>,
    /// Whether the label made multipath/mp0.
    created: bool,
    completed: u64,
    issued: u64,
    failed: u64,
    lost: u64,
    duplicates: u64,
    mismatches: u64,
    enomem_delivered: u64,
    console: Vec<String>,
    violations: Vec<Violation>,
    report: Option<KoReport>,
    unload_error: Option<String>,
}

const BIOS: u64 = 240;

/// The scenario, with `plan` failing `M_NOWAIT` allocations.
fn run(base: &KoOptions, plan: Option<FailNowait>) -> Run {
    let mut r = Run::default();
    let sim = Sim::deterministic(11);
    let lun = sim
        .add_lun(LunConfig::new(&["da0", "da1"], 1 << 20))
        .expect("lun");
    let o = KoOptions {
        fail_nowait: plan,
        ..base.clone()
    };
    let k = match ko::load(&sim.plat(), &o) {
        Ok(k) => k,
        Err(e) => {
            r.load_errno = Some(e.errno());
            r.console = sim.log_lines();
            r.violations = sim.violations();
            return r;
        }
    };
    sim.run_until_idle();
    let gctl = |sim: &Sim, argv: &[&str], r: &mut Run| {
        if let Err(e) = sim.gmultipath(argv) {
            r.gctl_errors.push(format!("{}: {e}", argv.join(" ")));
        }
        sim.run_until_idle();
    };
    gctl(&sim, &["label", "mp0", "da0", "da1"], &mut r);
    r.created = sim.g_provider_by_name("multipath/mp0").is_some();
    if r.created {
        let dev = sim
            .open("multipath/mp0", Access::new(1, 1, 0))
            .expect("open mp0");
        let cfg = WorkloadConfig {
            bios: BIOS,
            queue_depth: 8,
            read_percent: 50,
            max_sectors: 16,
            span: 256 << 10,
            seed: 3,
        };
        let plat = sim.plat();
        let da0 = lun.path(0).expect("da0");
        let da1 = lun.path(1).expect("da1");
        let mut errs = Vec::new();
        let mut verb = |argv: &[&str]| {
            if let Err(e) = sim.gmultipath(argv) {
                errs.push(format!("{}: {e}", argv.join(" ")));
            }
        };
        // A path failure and failover, then the administrative verbs, all
        // with I/O in flight.
        let st = run_workload(&plat, &dev, &cfg, &mut |issued, _| match issued {
            60 => da0.fail_rate(EIO, 1000),
            120 => {
                da0.heal();
                verb(&["restore", "mp0", "da0"]);
            }
            150 => verb(&["fail", "mp0", "da1"]),
            170 => verb(&["restore", "mp0", "da1"]),
            // da1 disappears (its provider is orphaned: the path is lost
            // and torn down by an event) and comes back (retasted).
            190 => da1.die(),
            215 => da1.revive(),
            // A path removed by the administrator (closed, then detached
            // by an event); a mode change.
            225 => verb(&["remove", "mp0", "da0"]),
            235 => verb(&["configure", "-A", "mp0"]),
            _ => {}
        });
        r.gctl_errors.extend(errs);
        r.issued = st.issued;
        r.completed = st.completed;
        r.failed = st.failed;
        r.lost = st.lost;
        r.duplicates = st.duplicates;
        r.mismatches = st.mismatches;
        // Destroyed while open: the module finishes the destroy at the
        // last close, from an event.
        gctl(&sim, &["destroy", "mp0"], &mut r);
        dev.close().expect("close");
        sim.run_until_idle();
    }
    // Whatever is left of the class goes as kldunload would find it.
    if let (_, Some(c)) = k.geom.class() {
        sim.destroy_class_geoms(c);
        sim.run_until_idle();
    }
    r.enomem_delivered = k.geom.enomem_delivered();
    r.log = k.nowait_log();
    match ko::unload(&k) {
        Ok(rep) => r.report = Some(rep),
        Err(e) => r.unload_error = Some(e.to_string()),
    }
    sim.run_until_idle();
    r.console = sim.log_lines();
    r.violations = sim.violations();
    drop(sim.finish());
    r
}

/// The failures injected into `r`, by site kind.
fn failed_sites(r: &Run) -> BTreeMap<&'static str, u64> {
    let mut m = BTreeMap::new();
    for &n in &r.log.failed {
        if let Some(s) = r.log.sites.get(n as usize - 1) {
            *m.entry(*s).or_default() += 1;
        }
    }
    m
}

/// What a run under injected failures broke: (hard, soft). Hard: a
/// panic, a rule of the emulation, a bio lost, doubled, failed or read
/// back wrong, a leak, a g_clone_bio failure not completed as ENOMEM.
/// Soft: a failure nobody was told about (no new errno, no new console
/// line), or a geom the class can no longer get rid of (kldunload
/// refused after the final destroy).
fn check(r: &Run, base: &Run, what: &str) -> (Vec<String>, Vec<String>) {
    let mut bad = Vec::new();
    let mut soft = Vec::new();
    let mut say = |m: String| bad.push(format!("{what}: {m}"));
    for v in &r.violations {
        say(format!("violation {}: {}", v.rule, v.message));
    }
    if let Some(rep) = &r.report {
        if rep.panics != 0 {
            say(format!("{} panic(9)", rep.panics));
        }
        if rep.live_at_unload != 0 {
            say(format!(
                "{} allocations leaked at unload",
                rep.live_at_unload
            ));
        }
    }
    if let Some(e) = &r.unload_error {
        soft.push(format!("{what}: after the final destroy, {e}"));
    }
    if r.load_errno.is_some() {
        // A refused load is an errno; nothing else ran.
        return (bad, soft);
    }
    if !r.created && !reported(r, base) {
        say("label made no multipath/mp0 and nobody was told".into());
    }
    if r.created {
        if r.completed != r.issued || r.lost != 0 || r.duplicates != 0 {
            say(format!(
                "bios issued {} completed {} lost {} doubled {}",
                r.issued, r.completed, r.lost, r.duplicates
            ));
        }
        if r.mismatches != 0 || r.failed != 0 {
            say(format!(
                "{} sectors read back wrong, {} bios failed",
                r.mismatches, r.failed
            ));
        }
    }
    let sites = failed_sites(r);
    let clones = sites.get("g_clone_bio").copied().unwrap_or(0);
    if r.enomem_delivered != clones {
        say(format!(
            "{clones} g_clone_bio failures but {} bios completed with ENOMEM",
            r.enomem_delivered
        ));
    }
    let others: u64 = sites
        .iter()
        .filter(|(s, _)| **s != "g_clone_bio")
        .map(|(_, n)| n)
        .sum();
    if others > 0 && !reported(r, base) {
        soft.push(format!(
            "{what}: {others} failed allocations ({sites:?}) and neither an errno nor a console line"
        ));
    }
    (bad, soft)
}

/// Whether `r` reports an error the run without injection (`base`) did
/// not: a gctl error, or a `GEOM_MULTIPATH:` console line about an error.
fn reported(r: &Run, base: &Run) -> bool {
    let new_gctl = r.gctl_errors.iter().any(|e| !base.gctl_errors.contains(e));
    let new_line = r.console.iter().any(|l| {
        l.starts_with("GEOM_MULTIPATH:")
            && (l.contains("error") || l.contains("Error") || l.contains("cannot"))
            && !base.console.contains(l)
    });
    new_gctl || new_line
}

/// The seeded sample of the Ns the full sweep leaves out.
fn sample(ns: &[u64], count: usize, seed: u64) -> Vec<u64> {
    let mut x = seed | 1;
    let mut out = Vec::new();
    let mut pool = ns.to_vec();
    while out.len() < count && !pool.is_empty() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(pool.swap_remove((x % pool.len() as u64) as usize));
    }
    out.sort_unstable();
    out
}

/// Runs the sweep; (hard, soft) problems as [`check`] sorts them.
fn sweep(o: &KoOptions) -> (Vec<String>, Vec<String>) {
    let t0 = std::time::Instant::now();
    let base = run(o, None);
    let (hard, soft) = check(&base, &base, "without injection");
    assert!(hard.is_empty() && soft.is_empty(), "{hard:#?} {soft:#?}");
    assert!(base.created && base.completed == BIOS, "{base:?}");
    let sites = &base.log.sites;
    let mut kinds: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for (i, s) in sites.iter().enumerate() {
        kinds.entry(s).or_default().push(i as u64 + 1);
    }
    // Every kind FreeBSD makes with M_NOWAIT that this scenario reaches.
    for kind in ["g_clone_bio", "g_post_event", "malloc"] {
        assert!(kinds.contains_key(kind), "no {kind} allocation: {kinds:?}");
    }
    let mut full = Vec::new();
    let mut rest = Vec::new();
    for ns in kinds.values() {
        if sites.len() <= FULL_ALL || ns.len() < FULL_KIND {
            full.extend_from_slice(ns);
        } else {
            // The first and last of a frequent kind always; the rest sampled.
            full.push(ns[0]);
            full.push(ns[ns.len() - 1]);
            rest.extend_from_slice(&ns[1..ns.len() - 1]);
        }
    }
    let sampled = sample(&rest, SAMPLES, 0x9e37_79b9);
    let mut ns: Vec<u64> = full.iter().chain(&sampled).copied().collect();
    ns.sort_unstable();
    let (mut hard, mut soft) = (Vec::new(), Vec::new());
    let mut failed_by_kind: BTreeMap<&str, u64> = BTreeMap::new();
    for &n in &ns {
        let r = run(o, Some(FailNowait::Nth(n)));
        let site = sites[n as usize - 1];
        assert_eq!(r.log.failed, vec![n], "N={n} ({site}) was reached");
        *failed_by_kind.entry(site).or_default() += 1;
        let (h, s) = check(&r, &base, &format!("N={n} ({site})"));
        hard.extend(h);
        soft.extend(s);
    }
    // Memory short for a while, from each site kind's first allocation
    // on, and now and then all along.
    let mut plans = Vec::new();
    for ns in kinds.values() {
        plans.push(FailNowait::Window {
            first: ns[0],
            len: 8,
        });
    }
    for k in [2, 3, 7] {
        plans.push(FailNowait::Every { first: 1, k });
    }
    for p in &plans {
        let r = run(o, Some(*p));
        assert!(!r.log.failed.is_empty(), "{p:?} failed nothing");
        let (h, s) = check(&r, &base, &format!("{p:?}"));
        hard.extend(h);
        soft.extend(s);
    }
    let counts: BTreeMap<&str, usize> = kinds.iter().map(|(k, v)| (*k, v.len())).collect();
    let covered = if ns.len() == sites.len() {
        format!("every N = 1..={}", sites.len())
    } else {
        format!("{} sampled among the rest: {ns:?}", sampled.len())
    };
    println!(
        "ko fault sweep: {} M_NOWAIT allocations {counts:?}, {} M_WAITOK (never failed); \
         failed one at a time: {} runs {failed_by_kind:?} ({covered}); {} plans {plans:?}; \
         {} hard problems, {} soft; {:.1} s",
        sites.len(),
        base.log.waitok,
        ns.len(),
        plans.len(),
        hard.len(),
        soft.len(),
        t0.elapsed().as_secs_f64()
    );
    (hard, soft)
}

/// Every injected failure fails cleanly (no panic, no lost or doubled
/// bio, no leak, no rule broken), is reported (an errno or a
/// `GEOM_MULTIPATH:` console line) and is undone: the final destroy still
/// tears every path down and kldunload succeeds. The teardown posts that
/// once failed here (a path's deferred detach, the worker's post, the end
/// of a destroy at the last close) now use `M_WAITOK`, as the stock class
/// does where sleeping is allowed, so they are no longer among the
/// `M_NOWAIT` allocations; the one left (from done) strands the path with
/// a console line, and destroy tears it down.
#[test]
fn every_nowait_failure_is_reported_and_undone() {
    let Some(o) = built_ko() else {
        return;
    };
    let (hard, soft) = sweep(&o);
    assert!(hard.is_empty(), "{} problems: {hard:#?}", hard.len());
    assert!(soft.is_empty(), "{} problems: {soft:#?}", soft.len());
}

/// `M_WAITOK` allocations sleep instead of failing: with every `M_NOWAIT`
/// allocation failing from the first on, the module still loads (its load
/// allocates with `M_WAITOK`), and each kind of failure is still seen.
#[test]
fn waitok_never_fails_while_nowait_always_does() {
    let Some(o) = built_ko() else {
        return;
    };
    let sim = Sim::deterministic(12);
    let k = ko::load(
        &sim.plat(),
        &KoOptions {
            fail_nowait: Some(FailNowait::Window {
                first: 1,
                len: u64::MAX,
            }),
            ..o
        },
    )
    .unwrap_or_else(|e| panic!("kldload: {e}"));
    sim.add_lun(LunConfig::new(&["da0", "da1"], 1 << 20))
        .expect("lun");
    sim.run_until_idle();
    let label = sim.gmultipath(&["label", "mp0", "da0", "da1"]);
    sim.run_until_idle();
    // Memory comes back: the class's geoms can be destroyed.
    k.set_fail_nowait(None);
    let log = k.nowait_log();
    assert!(log.waitok > 0, "the module allocated with M_WAITOK");
    assert_eq!(
        log.failed.len(),
        log.sites.len(),
        "every M_NOWAIT allocation failed"
    );
    let r = k.report();
    let failed: u64 = r.types.iter().map(|t| t.failed).sum();
    assert_eq!(
        failed as usize,
        log.sites.iter().filter(|s| s.starts_with("malloc")).count()
    );
    assert!(r.allocations > 0 && r.panics == 0, "{r:?}; label {label:?}");
    if let (_, Some(c)) = k.geom.class() {
        sim.destroy_class_geoms(c);
        sim.run_until_idle();
    }
    let rep = ko::unload(&k).unwrap_or_else(|e| panic!("kldunload: {e}"));
    assert_eq!((rep.panics, rep.live_at_unload), (0, 0), "{rep:?}");
    let v = sim.violations();
    assert!(v.is_empty(), "{v:#?}");
}
