//! A C GEOM class that breaks one of GEOM's or the kernel's rules is
//! caught by the emulated KPI, naming the rule, and the test process goes
//! on. Each sin is one `-D` of one small pass-through class (`MISUSE`,
//! tasting `da0` into `da0.mis`), built as the real module is (clang-14,
//! FreeBSD 15 headers, `ld -r`, see `kld/tests/common`) and loaded with
//! `geom_sim::ko::load` into a deterministic simulator. The same source
//! without any `-D` is the well-behaved twin, which runs clean: the
//! checks do not simply always fire.
//!
//! The kproc still in module code after unload is `ko_unload.rs`.

#[path = "../../kld/tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::Duration;

use geom_sim::ko::{self, KoOptions, KoReport, FREEBSD_15_0};
use geom_sim::{rule, Access, Lun, LunConfig, Mode, Sim, SimConfig, Violation};

const MISUSE: &str = r#"
#include <sys/param.h>
#include <sys/systm.h>
#include <sys/kernel.h>
#include <sys/module.h>
#include <sys/lock.h>
#include <sys/malloc.h>
#include <sys/mutex.h>
#include <sys/sx.h>
#include <sys/bio.h>
#include <geom/geom.h>

static MALLOC_DEFINE(M_MISUSE, "misuse_state", "misuse test class state");

static void *mis_state;

#if defined(MUTEX_REQUEST) || defined(MUTEX_DONE)
/* Held across a GEOM I/O call that may dispatch directly. */
static struct mtx mis_mtx;
#endif

/* The class tastes only the plain disk da0. */
static int
mis_is_da0(const char *name)
{
	return (name[0] == 'd' && name[1] == 'a' && name[2] == '0' &&
	    name[3] == '\0');
}

#if defined(SLEEP_START) || defined(SLEEP_DONE)
static int mis_chan;

static void
mis_sleep(const char *what)
{
	tsleep_sbt(&mis_chan, 0, what, SBT_1MS, 0, 0);
}
#endif

#if defined(PAUSE_START) || defined(PAUSE_DONE)
static void
mis_pause(const char *what)
{
	pause(what, 1);
}
#endif

#if defined(WAITOK_START) || defined(WAITOK_DONE)
static void
mis_waitok(void)
{
	free(malloc(32, M_MISUSE, M_WAITOK), M_MISUSE);
}
#endif

static void
mis_done(struct bio *cbp)
{
#ifdef SLEEP_DONE
	mis_sleep("misdone");
#endif
#ifdef PAUSE_DONE
	mis_pause("mispdone");
#endif
#ifdef WAITOK_DONE
	mis_waitok();
#endif
#ifdef MUTEX_DONE
	mtx_lock(&mis_mtx);
	g_std_done(cbp);
	mtx_unlock(&mis_mtx);
	return;
#endif
	g_std_done(cbp);
}

#ifdef DETACH_INFLIGHT
/* From the event thread while the clone is still at da0. */
static void
mis_detach_event(void *arg, int flag)
{
	struct g_geom *gp = arg;
	struct g_consumer *cp = gp->softc;
	int r, w, e;

	if (flag != 0 || cp == NULL || cp->provider == NULL)
		return;
	r = cp->acr;
	w = cp->acw;
	e = cp->ace;
	/* Closed, but a request is still in flight. */
	if (r != 0 || w != 0 || e != 0)
		g_access(cp, -r, -w, -e);
	g_detach(cp);
	/* Refused: take the access back so that the close balances. */
	if (cp->provider != NULL && (r != 0 || w != 0 || e != 0))
		g_access(cp, r, w, e);
}
#endif

static void
mis_start(struct bio *bp)
{
	struct g_geom *gp = bp->bio_to->geom;
	struct g_consumer *cp = gp->softc;
	struct bio *cbp;

#ifdef SLEEP_START
	mis_sleep("misstart");
#endif
#ifdef PAUSE_START
	mis_pause("mispstart");
#endif
#ifdef WAITOK_START
	mis_waitok();
#endif
#ifdef DELIVER_TWICE
	bp->bio_completed = bp->bio_length;
	g_io_deliver(bp, 0);
	g_io_deliver(bp, 0);
	return;
#endif
#ifdef NEVER_DELIVER
	if (bp->bio_cmd == BIO_READ)
		return;
#endif
	cbp = g_clone_bio(bp);
	if (cbp == NULL) {
		g_io_deliver(bp, ENOMEM);
		return;
	}
	cbp->bio_done = mis_done;
#ifdef MUTEX_REQUEST
	mtx_lock(&mis_mtx);
	g_io_request(cbp, cp);
	mtx_unlock(&mis_mtx);
	return;
#endif
	g_io_request(cbp, cp);
#ifdef DETACH_INFLIGHT
	g_post_event(mis_detach_event, gp, M_NOWAIT, NULL);
#endif
}

static int
mis_access(struct g_provider *pp, int dr, int dw, int de)
{
	struct g_consumer *cp = pp->geom->softc;

	return (g_access(cp, dr, dw, de));
}

static void
mis_orphan(struct g_consumer *cp)
{
	g_wither_geom(cp->geom, ENXIO);
}

static struct g_geom *
mis_taste(struct g_class *mp, struct g_provider *pp, int flags)
{
	struct g_geom *gp;
	struct g_consumer *cp;
	struct g_provider *npp;

	if (!mis_is_da0(pp->name))
		return (NULL);
	gp = g_new_geomf(mp, "%s.mis", pp->name);
	gp->start = mis_start;
	gp->access = mis_access;
	gp->orphan = mis_orphan;
	cp = g_new_consumer(gp);
	/* Direct dispatch both ways, as a modern class sets it. */
	cp->flags |= G_CF_DIRECT_SEND | G_CF_DIRECT_RECEIVE;
	gp->softc = cp;
	if (g_attach(cp, pp) != 0) {
		g_destroy_consumer(cp);
		g_destroy_geom(gp);
		return (NULL);
	}
#ifdef ACCESS_NEGATIVE
	/* A close of an access never opened. */
	g_access(cp, -1, 0, 0);
#endif
#ifdef DETACH_OPEN
	if (g_access(cp, 1, 0, 0) == 0) {
		g_detach(cp);
		if (cp->provider != NULL)
			g_access(cp, -1, 0, 0);
	}
#endif
	npp = g_new_providerf(gp, "%s", gp->name);
	npp->mediasize = pp->mediasize;
	npp->sectorsize = pp->sectorsize;
	npp->flags |= G_PF_DIRECT_SEND | G_PF_DIRECT_RECEIVE;
	g_error_provider(npp, 0);
	return (gp);
}

static int
mis_destroy_geom(struct gctl_req *req, struct g_class *mp, struct g_geom *gp)
{
	gp->softc = NULL;
	g_wither_geom(gp, ENXIO);
	return (0);
}

static void
mis_init(struct g_class *mp)
{
	/* Both may sleep here (the event thread, topology lock held). */
	pause("misinit", 1);
	mis_state = malloc(48, M_MISUSE, M_WAITOK | M_ZERO);
#if defined(MUTEX_REQUEST) || defined(MUTEX_DONE)
	mtx_init(&mis_mtx, "misuse", NULL, MTX_DEF);
#endif
}

static void
mis_fini(struct g_class *mp)
{
#ifndef LEAK
	free(mis_state, M_MISUSE);
#endif
	mis_state = NULL;
#if defined(MUTEX_REQUEST) || defined(MUTEX_DONE)
	mtx_destroy(&mis_mtx);
#endif
}

static struct g_class mis_class = {
	.name = "MISUSE",
	.version = G_VERSION,
	.taste = mis_taste,
	.destroy_geom = mis_destroy_geom,
	.init = mis_init,
	.fini = mis_fini,
};
DECLARE_GEOM_CLASS(mis_class, g_misuse);
"#;

/// Builds the class with one sin (`-D<SIN>`, or none for the twin).
fn build(sin: Option<&str>) -> PathBuf {
    let name = sin.map_or("clean".to_string(), str::to_lowercase);
    let dir = common::scratch(&format!("misuse_{name}"));
    let define = sin.map(|s| format!("-D{s}"));
    let defines: Vec<&str> = define.iter().map(String::as_str).collect();
    let obj = common::compile(&dir, &name, MISUSE, "c", FREEBSD_15_0, &defines);
    common::link(&dir, &name, &[obj])
}

/// What one run of a variant left.
struct Run {
    violations: Vec<Violation>,
    /// What kldunload said.
    report: Result<KoReport, String>,
    /// The write and the read through `da0.mis`, if I/O was run.
    io: Option<(bool, Option<Vec<u8>>)>,
}

/// Loads the variant over a simulator with the plain disk `da0` (its
/// taste makes `da0.mis`), writes and reads 512 bytes through it when
/// `io`, and unloads it.
fn run(sin: Option<&str>, io: bool, tune: impl FnOnce(&Lun)) -> Run {
    let path = build(sin);
    let mut cfg = SimConfig::new(Mode::Deterministic, 7);
    cfg.wait_timeout = Duration::from_secs(5);
    let sim = Sim::new(cfg);
    let lun = sim.add_lun(LunConfig::new(&["da0"], 1 << 20)).expect("lun");
    tune(&lun);
    let k = ko::load(&sim.plat(), &KoOptions::at(&path))
        .unwrap_or_else(|e| panic!("kldload {}: {e}", path.display()));
    sim.run_until_idle();
    assert!(
        sim.g_provider_by_name("da0.mis").is_some(),
        "{sin:?}: the class's taste made da0.mis; violations: {:#?}",
        sim.violations()
    );
    let io = io.then(|| {
        let dev = sim
            .open("da0.mis", Access::new(1, 1, 0))
            .unwrap_or_else(|e| panic!("{sin:?}: open da0.mis: errno {e}"));
        let w = dev.write(0, &[0x5a; 512]).is_ok();
        let r = dev.read(0, 512).ok();
        drop(dev);
        sim.run_until_idle();
        (w, r)
    });
    let report = ko::unload(&k).map_err(|e| e.to_string());
    sim.run_until_idle();
    if report.is_ok() {
        assert!(!k.is_loaded());
        assert!(
            sim.g_provider_by_name("da0.mis").is_none(),
            "{sin:?}: unload withered da0.mis"
        );
    }
    Run {
        violations: sim.violations(),
        report,
        io,
    }
}

/// The violations of `rule` whose message contains `needle`.
fn matching<'a>(r: &'a Run, rule: &str, needle: &str) -> Vec<&'a Violation> {
    r.violations
        .iter()
        .filter(|v| v.rule == rule && v.message.contains(needle))
        .collect()
}

/// The unload report (the unload must have succeeded).
fn report<'a>(r: &'a Run, sin: &str) -> &'a KoReport {
    match &r.report {
        Ok(rep) => rep,
        Err(e) => panic!("{sin}: {e}; violations: {:#?}", r.violations),
    }
}

/// Exactly `n` violations of `rule` mentioning `needle`, and no other.
fn expect_only(r: &Run, sin: &str, rule: &str, needle: &str, n: usize) {
    for v in &r.violations {
        println!("{sin}: {}: {}", v.rule, v.message);
    }
    let hits = matching(r, rule, needle);
    assert_eq!(
        hits.len(),
        n,
        "{sin}: expected {n} '{rule}' violation(s) with \"{needle}\", got {:#?}",
        r.violations
    );
    assert_eq!(
        r.violations.len(),
        n,
        "{sin}: other violations besides the sin: {:#?}",
        r.violations
    );
    let rep = report(r, sin);
    assert_eq!(rep.panics, 0, "{sin}: {rep:?}");
}

/// Runs variant `sin` (with I/O when `io`) and expects exactly `n`
/// violations of `rule` mentioning `needle` (see [`expect_only`]).
fn caught(sin: &str, io: bool, rule: &str, needle: &str, n: usize) -> Run {
    let r = run(Some(sin), io, |_| {});
    expect_only(&r, sin, rule, needle, n);
    r
}

#[test]
fn the_well_behaved_twin_runs_clean() {
    let r = run(None, true, |_| {});
    assert!(r.violations.is_empty(), "{:#?}", r.violations);
    // Clean because the I/O ran and was right, not because none ran.
    let (w, data) = r.io.clone().expect("io ran");
    assert!(w, "write through da0.mis");
    assert_eq!(data, Some(vec![0x5a; 512]), "read back through da0.mis");
    let rep = report(&r, "twin");
    assert_eq!(rep.live_at_unload, 0, "{rep:?}");
    assert_eq!(rep.panics, 0);
    let t = rep
        .types
        .iter()
        .find(|t| t.name == "misuse_state")
        .expect("the class's malloc type");
    assert_eq!((t.allocs, t.frees, t.leaked_at_uninit), (1, 1, 0), "{t:?}");
}

/// GEOM-RULES P13: with direct dispatch on (the class sets the flags),
/// a mutex held across g_io_request or g_std_done is caught, once per
/// bio (a write and a read), and the I/O still completes.
#[test]
fn a_mutex_held_across_a_direct_call_is_caught() {
    for (sin, call) in [
        ("MUTEX_REQUEST", "g_io_request"),
        ("MUTEX_DONE", "g_std_done"),
    ] {
        let r = caught(
            sin,
            true,
            rule::DIRECT,
            &format!("{call} with mutex \"misuse\" held"),
            2,
        );
        let (w, data) = r.io.clone().expect("io ran");
        assert!(w, "{sin}");
        assert_eq!(data, Some(vec![0x5a; 512]), "{sin}");
    }
}

#[test]
fn detach_with_access_held_is_caught() {
    caught(
        "DETACH_OPEN",
        false,
        rule::ATTACH,
        "detach but nonzero access",
        1,
    );
}

#[test]
fn detach_with_io_in_flight_is_caught() {
    // The clone sits at da0 for 50 ms: the event posted from start runs
    // first.
    let r = run(Some("DETACH_INFLIGHT"), true, |lun| {
        lun.path(0).expect("da0").set_latency(50_000, 0);
    });
    // Once for the write, once for the read.
    expect_only(
        &r,
        "DETACH_INFLIGHT",
        rule::ATTACH,
        "detach with active requests (1 in flight)",
        2,
    );
    // Refused, so the I/O still completed through the class.
    let (w, data) = r.io.clone().expect("io ran");
    assert!(w);
    assert_eq!(data, Some(vec![0x5a; 512]));
}

#[test]
fn a_negative_access_count_is_caught() {
    caught(
        "ACCESS_NEGATIVE",
        false,
        rule::ACCESS,
        "access resulting in negative counts",
        1,
    );
}

#[test]
fn a_bio_delivered_twice_is_caught() {
    // Once for the write, once for the read; each still completed once.
    let r = caught(
        "DELIVER_TWICE",
        true,
        rule::ONCE,
        "a bio already completed and freed (delivered, done or destroyed): completed twice",
        2,
    );
    let (w, data) = r.io.clone().expect("io ran");
    assert!(w);
    assert!(data.is_some());
}

#[test]
fn a_bio_never_delivered_is_caught() {
    let r = run(Some("NEVER_DELIVER"), true, |_| {});
    let (w, data) = r.io.clone().expect("io ran");
    assert!(w, "the write went through");
    assert_eq!(data, None, "the read never completed");
    assert!(
        !matching(&r, rule::DEADLOCK, "never completed").is_empty(),
        "{:#?}",
        r.violations
    );
    // The bio the class holds keeps it busy: kldunload refuses.
    let e = r.report.as_ref().expect_err("unload with a bio held");
    assert!(e.contains("refused to unload: error 16"), "{e}");
}

fn expect_nosleep(sin: &str, what: &str, ctx: &str) {
    // One write and one read: the sin ran twice.
    let needle = format!("{what} from {ctx} context, which must not sleep");
    let r = caught(sin, true, rule::NOSLEEP, &needle, 2);
    let Some((w, data)) = r.io.clone() else {
        panic!("{sin}: io ran")
    };
    assert!(w, "{sin}: the I/O itself still ran");
    assert_eq!(data, Some(vec![0x5a; 512]), "{sin}");
}

/// Sleeping, pausing and M_WAITOK, each in start and in done: every
/// failure message names the `-D` of its case.
#[test]
fn sleeping_in_start_or_done_is_caught() {
    for (sin, what, ctx) in [
        ("SLEEP_START", "msleep(\"misstart\")", "Start"),
        ("SLEEP_DONE", "msleep(\"misdone\")", "Done"),
        ("PAUSE_START", "pause(\"mispstart\")", "Start"),
        ("PAUSE_DONE", "pause(\"mispdone\")", "Done"),
        ("WAITOK_START", "malloc(M_WAITOK)", "Start"),
        ("WAITOK_DONE", "malloc(M_WAITOK)", "Done"),
    ] {
        expect_nosleep(sin, what, ctx);
    }
}

#[test]
fn a_leak_at_unload_is_caught_per_malloc_type() {
    let r = caught(
        "LEAK",
        false,
        rule::LEAK,
        "memory type misuse_state leaked memory on destroy (1 allocations, 48 bytes leaked)",
        1,
    );
    let rep = report(&r, "LEAK");
    assert_eq!(rep.live_at_unload, 1, "{rep:?}");
    let t = rep
        .types
        .iter()
        .find(|t| t.name == "misuse_state")
        .expect("the class's malloc type");
    assert_eq!((t.leaked_at_uninit, t.leaked_bytes_at_uninit), (1, 48));
}
