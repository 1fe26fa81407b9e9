//! The kernel half of the emulated FreeBSD KPI (`geom_sim::ko::kern`):
//! malloc accounting, leak reports and injected `M_NOWAIT` failures,
//! WITNESS-like lock checks, sleeping where it is forbidden, kprocs (exit,
//! deterministic baton), kernel printf conversions, and the shipped module's
//! SYSCTLs, unload and unmap. Each check is provoked by calling the emulated
//! functions directly (inside `ko::enter`), as module code would.
//!
//! Tests that need the built module print SKIPPED when it is missing (and
//! fail when GMR_REQUIRE_KO=1).

mod common;

use common::ko::built_ko;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use geom_sim::ko::kstructs::{malloc_type, mtx};
use geom_sim::ko::{self, kern, KoKernel, KoOptions, Sym};
use geom_sim::{Access, Sim, SimClass, SimPlatform};

type MallocFn = unsafe extern "C" fn(usize, *mut c_void, c_int) -> *mut c_void;
type FreeFn = unsafe extern "C" fn(*mut c_void, *mut c_void);
type TypeFn = unsafe extern "C" fn(*mut c_void);
type MtxInitFn = unsafe extern "C" fn(*mut usize, *const c_char, *const c_char, c_int);
type MtxFn = unsafe extern "C" fn(*mut usize);
type MtxLockFn = unsafe extern "C" fn(*mut usize, c_int, *const c_char, c_int);
type SleepFn = unsafe extern "C" fn(
    *const c_void,
    *mut c_void,
    c_int,
    *const c_char,
    i64,
    i64,
    c_int,
) -> c_int;
type WakeupFn = unsafe extern "C" fn(*const c_void);
type KprocBody = unsafe extern "C" fn(*mut c_void);
type KprocCreateFn = unsafe extern "C" fn(
    Option<KprocBody>,
    *mut c_void,
    *mut *mut c_void,
    c_int,
    c_int,
    *const c_char,
    ...
) -> c_int;
type KprocExitFn = unsafe extern "C" fn(c_int) -> !;

/// The function `name` of the emulated symbol table `table`, as a function
/// pointer of type F.
fn symbol<F: Copy>(table: Vec<(&'static str, Sym)>, name: &str) -> F {
    let addr = table
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| match s {
            Sym::Func(a) | Sym::Data(a) => a,
        })
        .unwrap_or_else(|| panic!("no emulated {name}"));
    assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<usize>());
    // SAFETY: F is the function pointer type of `name` in the tests of this
    // file, and has the size of an address (asserted above).
    unsafe { std::mem::transmute_copy(&addr) }
}

/// The emulated kernel function `name`, as a function pointer of type F.
fn kpi<F: Copy>(name: &str) -> F {
    symbol(kern::symbols(), name)
}

/// A module-less instance on a deterministic simulator.
fn instance(seed: u64, fail_nowait_at: Option<u64>) -> (Sim, Arc<KoKernel>) {
    let sim = Sim::deterministic(seed);
    let k = Arc::new(KoKernel::new(&sim.plat(), fail_nowait_at));
    (sim, k)
}

/// A `struct malloc_type` as MALLOC_DEFINE lays it out.
fn malloc_type(name: &'static CStr) -> Box<malloc_type> {
    // SAFETY: malloc_type is plain C data; all-zero is a valid value.
    let mut t: Box<malloc_type> = Box::new(unsafe { std::mem::zeroed() });
    t.ks_version = kern::M_VERSION;
    t.ks_shortdesc = name.as_ptr();
    t
}

/// The malloc type "gmr_test" and its address as the KPI takes it (the
/// box must outlive every use of the address).
fn gmr_test_type() -> (Box<malloc_type>, *mut c_void) {
    let mut t = malloc_type(c"gmr_test");
    let mtp: *mut c_void = (&mut *t as *mut malloc_type).cast();
    (t, mtp)
}

fn new_mtx() -> Box<mtx> {
    // SAFETY: struct mtx is plain C data; all-zero is a valid value.
    Box::new(unsafe { std::mem::zeroed() })
}

/// `&m->mtx_lock`, what the mtx_* calls take.
fn cookie(m: *mut mtx) -> *mut usize {
    // SAFETY: only the field's address is computed.
    unsafe { std::ptr::addr_of_mut!((*m).mtx_lock) }.cast()
}

fn mtx_init(m: *mut mtx, name: &'static CStr) {
    // SAFETY: an emulated KPI call on a zeroed struct mtx.
    unsafe { kpi::<MtxInitFn>("_mtx_init")(cookie(m), name.as_ptr(), std::ptr::null(), 0) };
}

fn mtx_lock(m: *mut mtx) {
    // SAFETY: an emulated KPI call on an initialised mutex.
    unsafe { kpi::<MtxLockFn>("__mtx_lock_flags")(cookie(m), 0, std::ptr::null(), 0) };
}

fn mtx_unlock(m: *mut mtx) {
    // SAFETY: as above.
    unsafe { kpi::<MtxLockFn>("__mtx_unlock_flags")(cookie(m), 0, std::ptr::null(), 0) };
}

fn rules(sim: &Sim) -> Vec<&'static str> {
    sim.violations().iter().map(|v| v.rule).collect()
}

/// Exactly one violation was reported, of `rule`, its message containing
/// `needle`.
#[track_caller]
fn assert_one_violation(sim: &Sim, rule: &str, needle: &str) {
    let v = sim.violations();
    assert_eq!(rules(sim), vec![rule], "{v:?}");
    assert!(v[0].message.contains(needle), "{needle:?} not in {v:?}");
}

/// Runs `body` as module code on a fresh module-less instance (seed 1),
/// then expects exactly one WITNESS violation mentioning `needle`.
#[track_caller]
fn expect_witness<R>(needle: &str, body: impl FnOnce(&Sim) -> R) -> R {
    let (sim, k) = instance(1, None);
    let r = ko::enter(&k, &sim.plat(), || body(&sim));
    assert_one_violation(&sim, "witness", needle);
    r
}

#[test]
fn malloc_accounting_and_leak_report_at_uninit() {
    let (sim, k) = instance(1, None);
    let (_t, mtp) = gmr_test_type();
    let (malloc, free) = (kpi::<MallocFn>("malloc"), kpi::<FreeFn>("free"));
    ko::enter(&k, &sim.plat(), || {
        // SAFETY: emulated KPI calls with a registered malloc type.
        unsafe {
            kpi::<TypeFn>("malloc_init")(mtp);
            let a = malloc(100, mtp, kern::M_WAITOK | kern::M_ZERO);
            let b = malloc(7, mtp, kern::M_NOWAIT);
            assert!(!a.is_null() && !b.is_null());
            assert!(std::slice::from_raw_parts(a.cast::<u8>(), 100)
                .iter()
                .all(|&x| x == 0));
            free(a, mtp);
            kpi::<TypeFn>("malloc_uninit")(mtp);
        }
    });
    let r = k.report();
    let ty = r.types.iter().find(|t| t.name == "gmr_test").expect("type");
    assert_eq!((ty.allocs, ty.frees, ty.leaked_at_uninit), (2, 1, 1));
    assert_eq!((r.live_at_unload, r.live_bytes_at_unload), (1, 7));
    assert_eq!(rules(&sim), vec!["leak"]);
    assert!(sim.log_lines().iter().any(
        |l| l.contains("memory type gmr_test leaked memory on destroy (1 allocations, 7 bytes")
    ));
}

#[test]
fn free_of_a_foreign_or_freed_pointer_is_reported() {
    let (sim, k) = instance(1, None);
    let (_t, mtp) = gmr_test_type();
    let mut local = 0u64;
    ko::enter(&k, &sim.plat(), || {
        // SAFETY: emulated KPI calls; the bad frees are refused, not done.
        unsafe {
            kpi::<TypeFn>("malloc_init")(mtp);
            let a = kpi::<MallocFn>("malloc")(8, mtp, kern::M_WAITOK);
            kpi::<FreeFn>("free")(a, mtp);
            kpi::<FreeFn>("free")(a, mtp);
            kpi::<FreeFn>("free")((&mut local as *mut u64).cast(), mtp);
        }
    });
    assert_eq!(rules(&sim), vec!["malloc", "malloc"]);
}

#[test]
fn injected_nowait_failure_fails_exactly_the_nth() {
    let (sim, k) = instance(1, Some(3));
    let (_t, mtp) = gmr_test_type();
    let malloc = kpi::<MallocFn>("malloc");
    let got: Vec<bool> = ko::enter(&k, &sim.plat(), || {
        // SAFETY: emulated KPI calls with a registered type.
        unsafe { kpi::<TypeFn>("malloc_init")(mtp) };
        let mut v = Vec::new();
        for i in 0..6 {
            let flags = if i == 1 {
                kern::M_WAITOK
            } else {
                kern::M_NOWAIT
            };
            // SAFETY: as above.
            v.push(unsafe { malloc(16, mtp, flags) }.is_null());
        }
        // g_clone_bio and g_post_event(M_NOWAIT) count as M_NOWAIT too.
        v.push(kern::should_fail_nowait());
        v
    });
    // Allocations 1, 3, 4, 5, 6 are M_NOWAIT: the third of them (i = 3) fails.
    assert_eq!(got, vec![false, false, false, true, false, false, false]);
    let r = k.report();
    assert_eq!((r.nowait_allocations, r.nowait_failures_injected), (6, 1));
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

/// Flags without exactly one of M_WAITOK and M_NOWAIT are reported and,
/// as INVARIANTS' malloc forces them, taken as M_WAITOK: such an
/// allocation sleeps rather than fail, even while every M_NOWAIT one does.
#[test]
fn bad_malloc_flags_are_reported_and_forced_to_waitok() {
    let sim = Sim::deterministic(1);
    let plan = kern::FailNowait::Window {
        first: 1,
        len: u64::MAX,
    };
    let k = Arc::new(KoKernel::with_faults(&sim.plat(), Some(plan)));
    let (_t, mtp) = gmr_test_type();
    let (malloc, free) = (kpi::<MallocFn>("malloc"), kpi::<FreeFn>("free"));
    let (bad, nowait) = ko::enter(&k, &sim.plat(), || {
        // SAFETY: emulated KPI calls with a registered type.
        unsafe {
            kpi::<TypeFn>("malloc_init")(mtp);
            let bad = malloc(16, mtp, kern::M_ZERO);
            let nowait = malloc(16, mtp, kern::M_NOWAIT);
            let r = (!bad.is_null(), nowait.is_null());
            free(bad, mtp);
            kpi::<TypeFn>("malloc_uninit")(mtp);
            r
        }
    });
    assert_eq!((bad, nowait), (true, true));
    assert_eq!(rules(&sim), vec!["malloc"]);
    assert_eq!(k.nowait_log().waitok, 1);
}

#[test]
fn witness_m_waitok_with_a_mutex_held() {
    let (_t, mtp) = gmr_test_type();
    let mut m = new_mtx();
    let needle = "malloc(M_WAITOK) with non-sleepable lock \"gmr_wq\" held";
    expect_witness(needle, |_| {
        // SAFETY: emulated KPI calls.
        unsafe { kpi::<TypeFn>("malloc_init")(mtp) };
        mtx_init(&mut *m, c"gmr_wq");
        mtx_lock(&mut *m);
        // SAFETY: as above.
        let p = unsafe { kpi::<MallocFn>("malloc")(8, mtp, kern::M_WAITOK) };
        assert!(!p.is_null(), "M_WAITOK never returns NULL");
        mtx_unlock(&mut *m);
    });
}

#[test]
fn witness_unlock_of_a_mutex_not_held() {
    let mut m = new_mtx();
    expect_witness("does not hold", |_| {
        mtx_init(&mut *m, c"gmr_wq");
        mtx_unlock(&mut *m);
    });
}

#[test]
fn witness_lock_order_reversal() {
    let (mut a, mut b) = (new_mtx(), new_mtx());
    let needle = "lock order reversal: 1st \"lock_b\" 2nd \"lock_a\"";
    expect_witness(needle, |sim| {
        mtx_init(&mut *a, c"lock_a");
        mtx_init(&mut *b, c"lock_b");
        mtx_lock(&mut *a);
        mtx_lock(&mut *b);
        mtx_unlock(&mut *b);
        mtx_unlock(&mut *a);
        assert!(sim.violations().is_empty());
        mtx_lock(&mut *b);
        mtx_lock(&mut *a);
        mtx_unlock(&mut *a);
        mtx_unlock(&mut *b);
    });
}

#[test]
fn witness_destroy_of_a_mutex_another_thread_holds() {
    let (sim, k) = instance(1, None);
    let mut m = new_mtx();
    let addr = &mut *m as *mut mtx as usize;
    ko::enter(&k, &sim.plat(), || mtx_init(&mut *m, c"gmr_wq"));
    let (k2, p2) = (k.clone(), sim.plat());
    std::thread::spawn(move || {
        // The mutex outlives this thread (joined below).
        ko::enter(&k2, &p2, || mtx_lock(addr as *mut mtx));
    })
    .join()
    .expect("locking thread");
    ko::enter(&k, &sim.plat(), || {
        // SAFETY: an emulated KPI call on an initialised mutex.
        unsafe { kpi::<MtxFn>("_mtx_destroy")(cookie(&mut *m)) };
    });
    assert_one_violation(&sim, "witness", "mtx_destroy of \"gmr_wq\" held by");
}

#[test]
fn witness_sleeping_with_a_lock_other_than_the_interlock() {
    let (mut il, mut other) = (new_mtx(), new_mtx());
    let chan = 0u8;
    let needle = "msleep(\"t\") with non-sleepable lock \"other\" held";
    let r = expect_witness(needle, |_| {
        mtx_init(&mut *il, c"interlock");
        mtx_init(&mut *other, c"other");
        mtx_lock(&mut *other);
        mtx_lock(&mut *il);
        // A timed sleep nobody wakes: it times out (EWOULDBLOCK).
        // SAFETY: msleep(&chan, &il, 0, "t", 1 tick) on emulated locks.
        let r = unsafe {
            kpi::<SleepFn>("_sleep")(
                (&chan as *const u8).cast(),
                (&mut *il as *mut mtx).cast(),
                0,
                c"t".as_ptr(),
                1 << 22,
                0,
                0,
            )
        };
        mtx_unlock(&mut *il);
        mtx_unlock(&mut *other);
        r
    });
    assert_eq!(r, kern::EAGAIN);
}

/// A class whose start calls one emulated function (as module code on
/// g_down would), then completes the bio.
struct StartCalls {
    k: Arc<KoKernel>,
    what: &'static str,
}

impl SimClass for StartCalls {
    fn name(&self) -> &str {
        "STARTCALLS"
    }
    fn start(&self, plat: &SimPlatform, _gp: geom_sim::GeomId, bp: geom_sim::Bio) {
        ko::enter(&self.k, plat, || {
            let chan = 0u8;
            match self.what {
                // SAFETY: emulated KPI calls; the type is M_GEOM-like
                // (unknown to malloc_init: reported, but allocated).
                "malloc" => unsafe {
                    let p = kpi::<MallocFn>("malloc")(8, std::ptr::null_mut(), kern::M_WAITOK);
                    kpi::<FreeFn>("free")(p, std::ptr::null_mut());
                },
                // SAFETY: g_post_event(noop, NULL, M_WAITOK).
                "post_waitok" => unsafe {
                    geom_kpi::<PostEventFn>("g_post_event")(
                        Some(noop_event),
                        std::ptr::null_mut(),
                        kern::M_WAITOK,
                    );
                },
                // SAFETY: tsleep(&chan, 0, "start", 0).
                _ => unsafe {
                    kpi::<SleepFn>("_sleep")(
                        (&chan as *const u8).cast(),
                        std::ptr::null_mut(),
                        0,
                        c"start".as_ptr(),
                        0,
                        0,
                        0,
                    );
                },
            }
        });
        plat.g_io_deliver(bp, 0);
    }
    fn orphan(&self, _plat: &SimPlatform, _cp: geom_sim::ConsumerId) {}
}

/// Reads through a provider of a [`StartCalls`] class; returns the rules.
fn start_calls(what: &'static str) -> Vec<&'static str> {
    let (sim, k) = instance(1, None);
    let id = sim
        .load_class(Arc::new(StartCalls { k, what }))
        .expect("class");
    let p = sim.plat().bound(id);
    p.with_topology(|| {
        let gp = p.g_new_geom("startcalls", None).expect("geom");
        let pp = p
            .g_new_provider(gp, "startcalls0", 1 << 20, 512)
            .expect("pp");
        p.g_error_provider(pp, 0);
    });
    sim.run_until_idle();
    let dev = sim
        .open("/dev/startcalls0", Access::new(1, 0, 0))
        .expect("open");
    let _ = dev.read(0, 512);
    drop(dev);
    sim.run_until_idle();
    rules(&sim)
}

#[test]
fn nosleep_msleep_in_start() {
    assert!(start_calls("sleep").contains(&"nosleep"));
}

#[test]
fn nosleep_m_waitok_in_start() {
    assert!(start_calls("malloc").contains(&"nosleep"));
}

type EventFn = unsafe extern "C" fn(*mut c_void, c_int);
type PostEventFn = unsafe extern "C" fn(Option<EventFn>, *mut c_void, c_int) -> c_int;

/// An event handler that does nothing.
unsafe extern "C" fn noop_event(_arg: *mut c_void, _flag: c_int) {}

/// The emulated GEOM function `name`, as a function pointer of type F.
fn geom_kpi<F: Copy>(name: &str) -> F {
    symbol(ko::geom::symbols(), name)
}

/// g_post_event(M_WAITOK) sleeps (g_alloc_event): not from start.
#[test]
fn nosleep_post_event_waitok_in_start() {
    assert_eq!(start_calls("post_waitok"), vec!["nosleep"]);
}

/// g_post_event's flag is exactly M_WAITOK or M_NOWAIT (its KASSERT);
/// an injected M_NOWAIT failure is ENOMEM with nothing queued.
#[test]
fn post_event_flag_checked_and_nowait_may_fail() {
    let (sim, k) = instance(1, Some(2));
    let post = geom_kpi::<PostEventFn>("g_post_event");
    let r = ko::enter(&k, &sim.plat(), || {
        // SAFETY: emulated KPI calls with a no-op handler.
        unsafe {
            [
                post(Some(noop_event), std::ptr::null_mut(), 0),
                post(Some(noop_event), std::ptr::null_mut(), kern::M_NOWAIT),
                post(Some(noop_event), std::ptr::null_mut(), kern::M_NOWAIT),
                post(Some(noop_event), std::ptr::null_mut(), kern::M_WAITOK),
            ]
        }
    });
    // The bad flag is reported (and taken as M_WAITOK, as INVARIANTS'
    // malloc forces it); the second M_NOWAIT post fails; M_WAITOK never.
    assert_eq!(r, [0, 0, 12, 0]);
    assert_one_violation(&sim, "class", "exactly one of M_WAITOK and M_NOWAIT");
    let log = k.nowait_log();
    assert_eq!((log.sites.len(), log.failed.clone()), (2, vec![2]));
}

/// What the test kproc shares with the test.
struct KState {
    mtx: std::cell::UnsafeCell<mtx>,
    ticks: AtomicU32,
    seen: Mutex<Vec<u32>>,
}

/// The test kproc: three times, sleeps until `ticks` moves, logs it; then
/// kproc_exit. No value with drop glue is live at kproc_exit.
unsafe extern "C" fn kproc_body(arg: *mut c_void) {
    // SAFETY: arg is the test's KState, which outlives the kproc.
    let st = unsafe { &*(arg as *const KState) };
    let m = st.mtx.get();
    for i in 0..3 {
        mtx_lock(m);
        while st.ticks.load(Ordering::SeqCst) <= i {
            // SAFETY: msleep(&ticks, m, 0, "tick", 0) on emulated locks.
            unsafe {
                kpi::<SleepFn>("_sleep")(
                    (&st.ticks as *const AtomicU32).cast(),
                    m.cast(),
                    0,
                    c"tick".as_ptr(),
                    0,
                    0,
                    0,
                )
            };
        }
        mtx_unlock(m);
        st.seen.lock().expect("seen").push(i);
    }
    // SAFETY: the kproc leaves here; nothing with drop glue is live.
    unsafe { kpi::<KprocExitFn>("kproc_exit")(0) }
}

/// Runs the test kproc to its exit; returns (trace hash, ticks seen).
fn run_kproc(sim: &Sim, k: &Arc<KoKernel>) -> (u64, Vec<u32>) {
    let st = Box::new(KState {
        // SAFETY: struct mtx is plain C data; all-zero is a valid value.
        mtx: std::cell::UnsafeCell::new(unsafe { std::mem::zeroed() }),
        ticks: AtomicU32::new(0),
        seen: Mutex::new(Vec::new()),
    });
    let sp = (&*st as *const KState).cast_mut();
    let plat = sim.plat();
    let mut p: *mut c_void = std::ptr::null_mut();
    ko::enter(k, &plat, || {
        mtx_init(st.mtx.get(), c"kstate");
        // SAFETY: kproc_create(body, st, &p, 0, 0, "%s%d", "ktest", 0).
        let e = unsafe {
            kpi::<KprocCreateFn>("kproc_create")(
                Some(kproc_body),
                sp.cast(),
                &mut p,
                0,
                0,
                c"%s%d".as_ptr(),
                c"ktest".as_ptr(),
                0 as c_int,
            )
        };
        assert_eq!(e, 0);
    });
    assert!(!p.is_null(), "kproc_create returns the proc");
    for _ in 0..3 {
        sim.run_until_idle();
        ko::enter(k, &plat, || {
            let m = st.mtx.get();
            mtx_lock(m);
            st.ticks.fetch_add(1, Ordering::SeqCst);
            // SAFETY: wakeup(&ticks).
            unsafe { kpi::<WakeupFn>("wakeup")((&st.ticks as *const AtomicU32).cast()) };
            mtx_unlock(m);
        });
    }
    assert!(sim.run_until(|| kern::kprocs(k).iter().all(|kp| kp.exited())));
    let seen = st.seen.lock().expect("seen").clone();
    (sim.trace_hash(), seen)
}

#[test]
fn kproc_runs_sleeps_and_exits_deterministic_baton() {
    let (sim1, k1) = instance(7, None);
    let (h1, seen1) = run_kproc(&sim1, &k1);
    let (sim2, k2) = instance(7, None);
    let (h2, seen2) = run_kproc(&sim2, &k2);
    assert_eq!(seen1, vec![0, 1, 2]);
    assert_eq!((h1, &seen1), (h2, &seen2), "same seed, same run");
    assert!(sim1.violations().is_empty(), "{:?}", sim1.violations());
    assert!(sim2.violations().is_empty(), "{:?}", sim2.violations());
}

#[test]
fn kproc_runs_on_a_real_thread_in_threaded_mode() {
    let sim = Sim::threaded(3);
    let k = Arc::new(KoKernel::new(&sim.plat(), None));
    let (_, seen) = run_kproc(&sim, &k);
    assert_eq!(seen, vec![0, 1, 2]);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[test]
fn kernel_printf_conversions() {
    let mut buf = [0 as c_char; 256];
    // SAFETY: the kernel printf formatter with matching arguments.
    let n = unsafe {
        kern::gmr_kpi_snprintf(
            buf.as_mut_ptr(),
            buf.len(),
            c"%d|%5s|%-4x|%#x|%p|%b|%3D|%%|%lld|%zu|%.*s|%c|%o|%08X".as_ptr(),
            -42 as c_int,
            c"ab".as_ptr(),
            255 as c_int,
            255 as c_int,
            0x1234usize as *const c_void,
            5 as c_int,
            c"\x10\x01ONE\x02TWO\x03FOUR".as_ptr(),
            c"\x01\xab\xff".as_ptr(),
            c":".as_ptr(),
            -7i64,
            99usize,
            3 as c_int,
            c"abcdef".as_ptr(),
            b'z' as c_int,
            8 as c_int,
            0xbeef as c_int,
        )
    };
    // SAFETY: the formatter NUL-terminates within buf.
    let s = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
    assert_eq!(
        s,
        "-42|   ab|ff  |0xff|0x1234|5<ONE,FOUR>|01:ab:ff|%|-7|99|abc|z|10|0000BEEF"
    );
    assert_eq!(n, s.len());
}

#[test]
fn unknown_printf_conversion_is_reported() {
    let (sim, k) = instance(1, None);
    let mut buf = [0 as c_char; 64];
    ko::enter(&k, &sim.plat(), || {
        // SAFETY: %f is not a kernel conversion: formatting stops there.
        unsafe { kern::gmr_kpi_snprintf(buf.as_mut_ptr(), buf.len(), c"x=%f y".as_ptr(), 1.5f64) };
    });
    // SAFETY: NUL-terminated by the formatter.
    let s = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
    assert_eq!(s, "x=%f y");
    assert_eq!(rules(&sim), vec!["class"]);
}

// ---- with the built module ------------------------------------------------------

/// A deterministic simulator (seed 1) with the module of `o` loaded.
fn load_on_new_sim(o: &KoOptions) -> (Sim, Arc<KoKernel>) {
    let sim = Sim::deterministic(1);
    let k = ko::load(&sim.plat(), o).unwrap_or_else(|e| panic!("kldload: {e}"));
    (sim, k)
}

/// [`load_on_new_sim`] with the built module, or None when it is not
/// built (see `built_ko`).
fn built_and_loaded() -> Option<(Sim, Arc<KoKernel>)> {
    Some(load_on_new_sim(&built_ko()?))
}

#[test]
fn module_sysctls_read_and_write_through_their_handlers() {
    let Some((_sim, k)) = built_and_loaded() else {
        return;
    };
    let names = k.sysctl_names();
    for n in ["kern.geom.multipath.debug", "kern.geom.multipath.exclusive"] {
        assert!(names.iter().any(|x| x == n), "{n} in {names:?}");
    }
    assert_eq!(k.sysctl_get("kern.geom.multipath.debug"), Ok(0));
    assert_eq!(k.sysctl_get("kern.geom.multipath.exclusive"), Ok(1));
    assert_eq!(k.sysctl_set("kern.geom.multipath.debug", 3), Ok(()));
    assert_eq!(k.sysctl_get("kern.geom.multipath.debug"), Ok(3));
    assert_eq!(
        k.sysctl_get("kern.geom.multipath.nosuch"),
        Err(kern::ENOENT)
    );
    let r = ko::unload(&k).unwrap_or_else(|e| panic!("kldunload: {e}"));
    assert_eq!(r.panics, 0);
    assert!(k.sysctl_names().is_empty(), "sysctls detached at unload");
}

#[test]
fn unload_unmaps_the_module() {
    let Some((_sim, k)) = built_and_loaded() else {
        return;
    };
    let (start, end) = k.range().expect("mapped");
    assert!(kld::is_mapped(start, end - start));
    ko::unload(&k).unwrap_or_else(|e| panic!("kldunload: {e}"));
    assert!(!k.is_loaded());
    assert!(
        !kld::is_mapped(start, end - start),
        "module text still mapped"
    );
    assert!(matches!(ko::unload(&k), Err(ko::KoError::NotLoaded)));
}

/// In a child process: loads the module, keeps the address of one of its
/// functions, unloads it and calls the function, as a thread left in
/// module code would run it. The parent expects the child to die of
/// SIGSEGV (not to return, and not to corrupt anything).
#[test]
fn module_code_run_after_unload_faults() {
    const CHILD: &str = "GMR_KO_TEST_CHILD";
    let Some(o) = built_ko() else {
        return;
    };
    if std::env::var_os(CHILD).is_some() {
        let (_sim, k) = load_on_new_sim(&o);
        // The class's fini method: module text, whatever its symbols' names.
        let mp = k.geom.class().0;
        assert!(!mp.is_null(), "the class is registered");
        // SAFETY: mp is the module's struct g_class, still mapped.
        let f = unsafe { (*mp).fini }.expect("g_class.fini") as usize;
        ko::unload(&k).unwrap_or_else(|e| panic!("kldunload: {e}"));
        // SAFETY: deliberately unsound: the function's text is unmapped,
        // so this call must fault. It runs in a throw-away child process.
        let g: extern "C" fn() -> u32 = unsafe { std::mem::transmute(f) };
        let v = g();
        println!("returned {v}");
        std::process::exit(0);
    }
    let exe = std::env::current_exe().expect("test binary");
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "module_code_run_after_unload_faults",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .expect("child");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(11),
        "child: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn module_loads_with_nowait_failures_injected_without_killing_the_process() {
    let Some(mut o) = built_ko() else {
        return;
    };
    // Each early M_NOWAIT allocation fails in turn: whatever the module
    // does (an error, or panic(9) on the old allocator), the process and
    // the simulator survive and say what happened.
    for n in 1..=4 {
        o.fail_nowait_at = Some(n);
        let sim = Sim::deterministic(1);
        match ko::load(&sim.plat(), &o) {
            Ok(k) => {
                let r = k.report();
                assert_eq!(
                    r.nowait_failures_injected,
                    u64::from(r.nowait_allocations >= n)
                );
                let panicked = sim.violations().iter().any(|v| v.rule == "panic");
                assert_eq!(panicked, r.panics > 0);
                eprintln!(
                    "fail_nowait_at {n}: loaded; {} M_NOWAIT allocations; {:?}",
                    r.nowait_allocations,
                    sim.violations()
                );
            }
            Err(e) => eprintln!("fail_nowait_at {n}: kldload: {e}; {:?}", rules(&sim)),
        }
    }
}

/// The module's oids are linked into `kern.geom`'s child list as
/// `sysctl_register_oid` links them: `OID_AUTO` numbers handed out
/// downwards from 0x7fffffff in registration order, each list walked in
/// number order, names resolved through the tree; unload unlinks them.
#[test]
fn module_sysctls_are_linked_into_the_tree() {
    let Some((sim, k)) = built_and_loaded() else {
        return;
    };
    let tree = k.sysctl_tree();
    let names: Vec<&str> = tree.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "kern.geom.multipath",
            "kern.geom.multipath.exclusive",
            "kern.geom.multipath.debug"
        ],
        "depth first, each list in number order: {tree:?}"
    );
    let number = |n: &str| tree.iter().find(|(x, _)| x == n).map(|(_, v)| *v);
    // The set lists the node first, then debug, then exclusive.
    assert_eq!(number("kern.geom.multipath"), Some(0x7fff_ffff));
    assert_eq!(number("kern.geom.multipath.debug"), Some(0x7fff_fffe));
    assert_eq!(number("kern.geom.multipath.exclusive"), Some(0x7fff_fffd));
    // By name through the tree, to the module's handler and variable.
    assert_eq!(k.sysctl_set("kern.geom.multipath.exclusive", 0), Ok(()));
    assert_eq!(k.sysctl_get("kern.geom.multipath.exclusive"), Ok(0));
    assert_eq!(k.sysctl_get("kern.geom.multipath"), Err(kern::EINVAL));
    assert_eq!(k.sysctl_get("kern.geom.nosuch.debug"), Err(kern::ENOENT));
    assert_eq!(
        k.sysctl_get("kern.geomx.multipath.debug"),
        Err(kern::ENOENT)
    );
    ko::unload(&k).unwrap_or_else(|e| panic!("kldunload: {e}"));
    assert!(k.sysctl_tree().is_empty(), "unlinked at unload");
    assert_eq!(
        k.sysctl_get("kern.geom.multipath.debug"),
        Err(kern::ENOENT),
        "gone after unload"
    );
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[test]
fn module_tunables_come_from_the_kernel_environment() {
    let Some(mut o) = built_ko() else {
        return;
    };
    o.tunables = vec![
        ("kern.geom.multipath.debug".into(), "2".into()),
        ("kern.geom.multipath.exclusive".into(), "zero".into()),
    ];
    let (sim, k) = load_on_new_sim(&o);
    assert_eq!(k.sysctl_get("kern.geom.multipath.debug"), Ok(2));
    assert_eq!(k.sysctl_get("kern.geom.multipath.exclusive"), Ok(1));
    assert!(sim
        .log_lines()
        .iter()
        .any(|l| l.starts_with("Failed to set tunable kern.geom.multipath.exclusive")));
    ko::unload(&k).unwrap_or_else(|e| panic!("kldunload: {e}"));
}

#[test]
fn module_scenario_runs_are_deterministic() {
    use geom_sim::scenario::{ClassSource, Overrides, Scenario};
    let Some(o) = built_ko() else {
        return;
    };
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios/demo.toml");
    let sc = Scenario::load(&path).expect("demo scenario");
    let ov = Overrides {
        seed: Some(5),
        mode: Some(geom_sim::Mode::Deterministic),
        progress: false,
        live: false,
    };
    let src = ClassSource::Ko(o);
    let a = sc.run_with(&ov, &src).expect("first run");
    let b = sc.run_with(&ov, &src).expect("second run");
    assert_eq!(
        a.trace_hash, b.trace_hash,
        "same seed, same run through the .ko"
    );
    assert_eq!(
        (
            a.bios_completed,
            a.lost_completions,
            a.duplicated_completions
        ),
        (b.bios_completed, 0, 0)
    );
    assert_eq!(a.data_mismatches, 0);
    assert!(a
        .ko
        .as_deref()
        .is_some_and(|l| l.starts_with("ko: loaded geom_multipath_rs.ko")));
}

#[test]
fn unload_refused_while_the_class_is_busy_changes_nothing() {
    let Some((sim, k)) = built_and_loaded() else {
        return;
    };
    sim.add_lun(geom_sim::LunConfig::new(&["da0", "da1"], 1 << 20))
        .expect("lun");
    sim.run_until_idle();
    sim.gmultipath(&["label", "mp0", "da0", "da1"])
        .expect("label");
    sim.run_until_idle();
    let dev = sim
        .open("/dev/multipath/mp0", Access::new(1, 1, 0))
        .expect("open mp0");
    match ko::unload(&k) {
        Err(ko::KoError::Busy { errno, .. }) => assert_eq!(errno, 16, "EBUSY"),
        other => panic!("unload of a busy class: {other:?}"),
    }
    assert!(k.is_loaded());
    assert_eq!(k.sysctl_get("kern.geom.multipath.debug"), Ok(0));
    dev.write(0, &[0x5a; 512])
        .expect("I/O after the refused unload");
    assert_eq!(dev.read(0, 512).expect("read"), vec![0x5a; 512]);
    drop(dev);
    sim.run_until_idle();
    if let (_, Some(c)) = k.geom.class() {
        sim.destroy_class_geoms(c);
        sim.run_until_idle();
    }
    ko::unload(&k).unwrap_or_else(|e| panic!("kldunload: {e}"));
    assert!(!k.is_loaded());
}
