//! The kernel half of the emulated FreeBSD KPI: `malloc(9)`, `mtx(9)`, the
//! topology sx, `sleep(9)`/`wakeup`, `kproc(9)`, console `printf` and
//! `panic`, the libkern string functions, `arc4random`, SYSCTL integers and
//! the module registry (`module_register_init`).
//!
//! Every function here is what the module's import of the same name is
//! resolved to ([`symbols`]); each finds its instance with
//! [`crate::ko::current`]. Misuse the kernel would catch (KASSERT, WITNESS)
//! is recorded as a simulator violation, and the call then goes on as a
//! release kernel would where that is safe.

mod kproc;
mod lock;
mod malloc;
mod module;
mod sleep;
mod sysctl;

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Once};

pub use kproc::{this_kproc, KWait, Kproc, KprocFn};
pub use lock::TOPOLOGY_NAME;
pub use malloc::{FailNowait, NowaitLog, TypeStats, M_NOWAIT, M_VERSION, M_WAITOK, M_ZERO};
pub use module::{event as mod_event, ModEntry, MOD_LOAD, MOD_QUIESCE, MOD_SHUTDOWN, MOD_UNLOAD};
pub use sysctl::{
    load_tunable as sysctl_load_tunable, read_int as sysctl_read_int,
    write_int as sysctl_write_int, OidInfo, Registered, SysctlReq,
};

use crate::ko::kstructs::{malloc_type, sx};
use crate::ko::{current, current_plat, report, KoKernel, Sym};
use crate::sched::Mode;
use crate::sim::SimPlatform;
use crate::violation::rule;

/// FreeBSD errno values the kernel side returns.
pub const EPERM: c_int = 1;
pub const ENOEXEC: c_int = 8;
pub const ENOMEM: c_int = 12;
pub const EBUSY: c_int = 16;
pub const EEXIST: c_int = 17;
pub const EINVAL: c_int = 22;
pub const EAGAIN: c_int = 35;
pub const EOPNOTSUPP: c_int = 45;
pub const ENOENT: c_int = 2;
/// What a call into module code that panicked returns to its caller.
pub(crate) const ENXIO_PANICKED: c_int = 6;

/// `PDROP`: `_sleep` does not retake the interlock.
const PDROP: c_int = 0x200;
/// `SX_LOCK_UNLOCKED` (`sys/sx.h`): a shared lock with no sharers.
const SX_LOCK_UNLOCKED: usize = 0x01;
/// `MTX_UNOWNED` / `MTX_DESTROYED`.
const MTX_UNOWNED: usize = 0;
const MTX_DESTROYED: usize = 4;
/// `offsetof(struct mtx, mtx_lock)`: the `mtx_*` calls pass that field.
const MTX_LOCK_OFF: usize = std::mem::offset_of!(crate::ko::kstructs::mtx, mtx_lock);

/// The kernel state of one emulated kernel.
pub struct KernState {
    pub malloc: malloc::MallocState,
    pub locks: lock::LockState,
    pub sleepq: sleep::SleepQ,
    pub kprocs: kproc::Kprocs,
    pub modules: module::Modules,
    pub sysctls: sysctl::Sysctls,
    /// The `topology_lock` data object's address (set by the loader).
    pub topology_addr: AtomicUsize,
    /// `panic(9)` calls.
    pub panics: AtomicU64,
}

impl KernState {
    pub fn new(plan: Option<FailNowait>) -> KernState {
        install_backends();
        KernState {
            malloc: malloc::MallocState::new(plan),
            locks: lock::LockState::default(),
            sleepq: sleep::SleepQ::default(),
            kprocs: kproc::Kprocs::default(),
            modules: module::Modules::default(),
            sysctls: sysctl::Sysctls::default(),
            topology_addr: AtomicUsize::new(0),
            panics: AtomicU64::new(0),
        }
    }
}

/// Records each finding as a violation.
fn report_all(found: impl IntoIterator<Item = (&'static str, String)>) {
    for (r, m) in found {
        report(r, m);
    }
}

// ---- malloc(9) ----------------------------------------------------------------

/// Whether an `M_NOWAIT` allocation made now should fail (injection).
/// Counts as one `M_NOWAIT` allocation of an unnamed site.
pub fn should_fail_nowait() -> bool {
    should_fail_nowait_at("other")
}

/// As [`should_fail_nowait`] for the allocation of `site`: the GEOM side
/// calls it for `g_clone_bio` and `g_post_event(M_NOWAIT)`, whose
/// allocations (a bio from the bio zone, an event) FreeBSD makes with
/// `M_NOWAIT`.
pub fn should_fail_nowait_at(site: &'static str) -> bool {
    current().kern.malloc.nowait_should_fail(site)
}

/// Allocates as `malloc(size, mtp, flags)` for the emulation itself (the
/// GEOM side's `g_read_data` buffer, freed by the module with M_GEOM).
pub fn kmalloc(k: &KoKernel, size: usize, mtp: usize, flags: c_int) -> *mut c_void {
    alloc_checked(k, size, 16, mtp, flags, "malloc")
}

/// Reports flags without exactly one of M_WAITOK and M_NOWAIT and, as
/// INVARIANTS' `malloc_dbg` does, goes on with M_WAITOK in their place.
fn check_flags(flags: c_int, what: &str) -> c_int {
    let how = flags & (M_NOWAIT | M_WAITOK);
    if how != M_NOWAIT && how != M_WAITOK {
        report(
            rule::MALLOC,
            format!("{what}: bad malloc flags {flags:#x}: exactly one of M_WAITOK and M_NOWAIT"),
        );
        return (flags & !M_NOWAIT) | M_WAITOK;
    }
    flags
}

fn alloc_checked(
    k: &KoKernel,
    size: usize,
    align: usize,
    mtp: usize,
    flags: c_int,
    what: &'static str,
) -> *mut c_void {
    let flags = check_flags(flags, what);
    if flags & M_WAITOK != 0 {
        report_all(k.kern.locks.check_may_sleep("malloc(M_WAITOK)", None));
    }
    match k.kern.malloc.allocate(size, align, mtp, flags, what) {
        Ok(p) => {
            trace_malloc(|| {
                format!(
                    "{what}({size}, {mtp:#x}, {flags:#x}) = {p:p} [{:?}]",
                    crate::sched::current()
                )
            });
            p
        }
        Err(malloc::MallocFault::UninitType(p)) => {
            report(
                rule::MALLOC,
                format!("{what} with malloc type {mtp:#x}, which malloc_init never saw"),
            );
            p as *mut c_void
        }
        Err(_) => std::ptr::null_mut(),
    }
}

/// With `GMR_KO_TRACE_MALLOC` set, every malloc and free on stderr.
fn trace_malloc(line: impl FnOnce() -> String) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("GMR_KO_TRACE_MALLOC").is_some()) {
        eprintln!("ko: {}", line());
    }
}

/// `malloc(size, type, flags)`.
unsafe extern "C" fn kpi_malloc(size: usize, mtp: *mut malloc_type, flags: c_int) -> *mut c_void {
    alloc_checked(&current(), size, 16, mtp as usize, flags, "malloc")
}

/// `malloc_aligned(size, align, type, flags)`.
unsafe extern "C" fn kpi_malloc_aligned(
    size: usize,
    align: usize,
    mtp: *mut malloc_type,
    flags: c_int,
) -> *mut c_void {
    if !malloc::align_ok(align) {
        report(
            rule::MALLOC,
            format!("malloc_aligned: wrong align {align:#x} size {size:#x}"),
        );
        return std::ptr::null_mut();
    }
    alloc_checked(
        &current(),
        size,
        align,
        mtp as usize,
        flags,
        "malloc_aligned",
    )
}

/// `free(addr, type)`.
unsafe extern "C" fn kpi_free(addr: *mut c_void, mtp: *mut malloc_type) {
    if addr.is_null() {
        return;
    }
    let k = current();
    trace_malloc(|| format!("free({addr:p}, {mtp:p})"));
    match k.kern.malloc.release(addr as usize, mtp as usize) {
        Ok(size) => report_all(k.kern.locks.forget_range(addr as usize, size)),
        Err(malloc::MallocFault::WrongType(freed, allocated)) => report(
            rule::MALLOC,
            format!("free({addr:p}) as type '{freed}' of memory allocated as '{allocated}'"),
        ),
        Err(_) => report(
            rule::MALLOC,
            format!("free({addr:p}): not a live malloc(9) allocation (double free?)"),
        ),
    }
}

/// `malloc_init(type)` (the SYSINIT of `MALLOC_DEFINE`).
unsafe extern "C" fn kpi_malloc_init(data: *mut c_void) {
    let k = current();
    // SAFETY: the SYSINIT's argument is the module's struct malloc_type.
    if let Err((name, v)) = unsafe { k.kern.malloc.init_type(data.cast()) } {
        panic_now(format!(
            "malloc_init: type {name} with unsupported version {v}"
        ));
    }
}

/// `malloc_uninit(type)`: reports what is still allocated as a leak.
unsafe extern "C" fn kpi_malloc_uninit(data: *mut c_void) {
    let Some(t) = current().kern.malloc.uninit_type(data as usize) else {
        report(
            rule::MALLOC,
            format!("malloc_uninit of unknown type {data:p}"),
        );
        return;
    };
    if t.leaked_at_uninit > 0 {
        let line = format!(
            "Warning: memory type {} leaked memory on destroy ({} allocations, {} bytes leaked).",
            t.name, t.leaked_at_uninit, t.leaked_bytes_at_uninit
        );
        console_line(&current_plat(), line.clone());
        report(
            rule::LEAK,
            format!("{line} Still allocated: {}", t.leaked_blocks.join(", ")),
        );
    }
}

// ---- mtx(9) -------------------------------------------------------------------

/// The `struct mtx` whose `mtx_lock` field is at `c`.
fn mtx_of(c: *mut usize) -> usize {
    (c as usize).wrapping_sub(MTX_LOCK_OFF)
}

fn wait_policy(plat: &SimPlatform) -> lock::WaitPolicy {
    lock::WaitPolicy {
        mode: plat.mode(),
        timeout: plat.sh.cfg.wait_timeout,
    }
}

/// `_mtx_init(&m->mtx_lock, name, type, opts)`.
unsafe extern "C" fn kpi_mtx_init(
    c: *mut usize,
    name: *const c_char,
    ty: *const c_char,
    opts: c_int,
) {
    let m = mtx_of(c);
    // SAFETY: name and type are NULL or C strings of the caller.
    let class = unsafe { malloc::cstr(if ty.is_null() { name } else { ty }) };
    let dupok = opts & crate::ko::kstructs::MTX_DUPOK as c_int != 0;
    let mp = m as *mut crate::ko::kstructs::mtx;
    // SAFETY: c points into the caller's struct mtx, which starts at m.
    unsafe {
        (*mp).lock_object.lo_name = name;
        (*mp).lock_object.lo_flags = crate::ko::kstructs::LO_INITIALIZED;
        (*mp).mtx_lock = MTX_UNOWNED as _;
    }
    report_all(current().kern.locks.init(m, class, dupok));
}

/// `_mtx_destroy(&m->mtx_lock)`.
unsafe extern "C" fn kpi_mtx_destroy(c: *mut usize) {
    report_all(current().kern.locks.destroy(mtx_of(c)));
    // SAFETY: c is the mtx_lock field of the caller's mutex.
    unsafe { c.write_volatile(MTX_DESTROYED) };
}

/// `__mtx_lock_flags(&m->mtx_lock, opts, file, line)`.
unsafe extern "C" fn kpi_mtx_lock(c: *mut usize, _opts: c_int, _f: *const c_char, _l: c_int) {
    let (k, plat) = (current(), current_plat());
    let topo = plat.topology_held();
    report_all(k.kern.locks.lock_mtx(mtx_of(c), &wait_policy(&plat), topo));
    if k.kern.locks.held_by_me(mtx_of(c)) {
        // SAFETY: c is the mtx_lock field of the caller's mutex.
        unsafe { c.write_volatile(crate::sched::current().0 as usize | 0x10) };
    }
}

/// `__mtx_unlock_flags(&m->mtx_lock, opts, file, line)`.
unsafe extern "C" fn kpi_mtx_unlock(c: *mut usize, _opts: c_int, _f: *const c_char, _l: c_int) {
    let k = current();
    let found = k.kern.locks.unlock_mtx(mtx_of(c));
    let released = found.is_none() && !k.kern.locks.held_by_me(mtx_of(c));
    report_all(found);
    if released {
        // SAFETY: c is the mtx_lock field of the caller's mutex.
        unsafe { c.write_volatile(MTX_UNOWNED) };
    }
}

// ---- the topology sx ----------------------------------------------------------

/// `_sx_xlock(sx, opts, file, line)`: only the topology lock exists.
unsafe extern "C" fn kpi_sx_xlock(s: *mut sx, _opts: c_int, _f: *const c_char, _l: c_int) -> c_int {
    let (k, plat) = (current(), current_plat());
    if s as usize != k.kern.topology_addr.load(Ordering::Acquire) {
        report(
            rule::CLASS,
            format!("sx_xlock of {s:p}, an sx the emulation does not know"),
        );
        return 0;
    }
    report_all(k.kern.locks.check_sx_order());
    wait_topology_as_kproc(&plat);
    plat.g_topology_lock();
    if plat.topology_held() {
        k.kern.locks.note_sx_locked(s as usize);
        // SAFETY: s is the topology_lock data object (a struct sx).
        unsafe { (*s).sx_lock = (crate::sched::current().0 << 8) as _ };
    }
    0
}

/// A deterministic kproc does not take the topology lock from under a
/// thread that is blocked holding it: it waits for it like a sleeper.
fn wait_topology_as_kproc(plat: &SimPlatform) {
    if plat.mode() != Mode::Deterministic || plat.topology_held() {
        return;
    }
    if let Some(kp) = this_kproc() {
        if plat.sh.sched.topo_held.load(Ordering::Acquire) {
            kp.block(KWait::Topology);
        }
    }
}

/// `_sx_xunlock(sx, file, line)`.
unsafe extern "C" fn kpi_sx_xunlock(s: *mut sx, _f: *const c_char, _l: c_int) {
    let (k, plat) = (current(), current_plat());
    if s as usize != k.kern.topology_addr.load(Ordering::Acquire) {
        report(
            rule::CLASS,
            format!("sx_xunlock of {s:p}, an sx the emulation does not know"),
        );
        return;
    }
    let held = plat.topology_held();
    k.kern.locks.note_sx_unlocked(s as usize);
    plat.g_topology_unlock();
    if held {
        // SAFETY: s is the topology_lock data object (a struct sx).
        unsafe { (*s).sx_lock = SX_LOCK_UNLOCKED as _ };
    }
}

// ---- sleep(9) -----------------------------------------------------------------

/// `_sleep(chan, lock, pri, wmesg, sbt, pr, flags)`.
unsafe extern "C" fn kpi_sleep(
    chan: *const c_void,
    lk: *mut c_void,
    pri: c_int,
    wmesg: *const c_char,
    sbt: i64,
    _pr: i64,
    _flags: c_int,
) -> c_int {
    // SAFETY: wmesg is NULL or the caller's C string.
    let what = format!("msleep(\"{}\")", unsafe { malloc::cstr(wmesg) });
    sleep_on(what, chan, lk, pri, sbt)
}

/// `pause_sbt(wmesg, sbt, pr, flags)` (what `pause(9)` expands to): a
/// timed sleep on a channel nothing wakes, with `_sleep`'s checks.
unsafe extern "C" fn kpi_pause_sbt(
    wmesg: *const c_char,
    sbt: i64,
    _pr: i64,
    _flags: c_int,
) -> c_int {
    // SAFETY: wmesg is NULL or the caller's C string.
    let what = format!("pause(\"{}\")", unsafe { malloc::cstr(wmesg) });
    if sbt < 0 {
        report(
            rule::CLASS,
            format!("{what}: negative time (KASSERT in pause_sbt)"),
        );
    }
    // pause_sbt sleeps at least one tick.
    let sbt = if sbt <= 0 { TICK_SBT } else { sbt };
    let k = current();
    // An address of the instance no module can pass to wakeup().
    let chan = std::ptr::addr_of!(k.kern.sleepq).cast::<c_void>();
    sleep_on(what, chan, std::ptr::null_mut(), 0, sbt)
}

/// `tick_sbt` of a kernel with `hz` = 1000 (`SBT_1S / hz`).
pub const TICK_SBT: i64 = (1i64 << 32) / 1000;

/// `_sleep` (and `pause_sbt`) as `what`.
fn sleep_on(what: String, chan: *const c_void, lk: *mut c_void, pri: c_int, sbt: i64) -> c_int {
    let (k, plat) = (current(), current_plat());
    let interlock = (!lk.is_null()).then_some(lk as usize);
    let topo_il = interlock == Some(k.kern.topology_addr.load(Ordering::Acquire));
    if let Err(e) = sleep_checks(&k, &what, chan, interlock, topo_il) {
        return e;
    }
    let chan = chan as usize;
    let gen0 = k.kern.sleepq.gen(chan);
    release_interlock(&k, &plat, interlock, topo_il);
    let woken = block_on(&k, &plat, chan, gen0, interlock.filter(|_| !topo_il), sbt);
    if pri & PDROP == 0 {
        retake_interlock(&k, &plat, interlock, topo_il);
    }
    if woken {
        0
    } else {
        EAGAIN
    }
}

/// `_sleep`'s KASSERTs and WITNESS checks; Err: return at once with it
/// (a NULL channel; sleeping in start/done, which the simulator refuses).
fn sleep_checks(
    k: &KoKernel,
    what: &str,
    chan: *const c_void,
    interlock: Option<usize>,
    topo_il: bool,
) -> Result<(), c_int> {
    if chan.is_null() {
        report(
            rule::CLASS,
            format!("{what} on a NULL channel (KASSERT in _sleep)"),
        );
        return Err(EINVAL);
    }
    let found = k.kern.locks.check_may_sleep(what, interlock);
    let io = found.iter().any(|f| f.0 == rule::NOSLEEP);
    report_all(found);
    if io {
        return Err(EAGAIN);
    }
    if let Some(m) = interlock.filter(|_| !topo_il) {
        if !k.kern.locks.held_by_me(m) {
            report(
                rule::WITNESS,
                format!("{what}: interlock not held by the sleeper"),
            );
        }
    }
    Ok(())
}

fn release_interlock(k: &KoKernel, plat: &SimPlatform, il: Option<usize>, topo: bool) {
    match il {
        Some(a) if topo => {
            k.kern.locks.note_sx_unlocked(a);
            plat.g_topology_unlock();
        }
        Some(m) => report_all(k.kern.locks.unlock_mtx(m)),
        None => {}
    }
}

fn retake_interlock(k: &KoKernel, plat: &SimPlatform, il: Option<usize>, topo: bool) {
    match il {
        Some(a) if topo => {
            wait_topology_as_kproc(plat);
            plat.g_topology_lock();
            k.kern.locks.note_sx_locked(a);
        }
        Some(m) => {
            let held = plat.topology_held();
            report_all(k.kern.locks.lock_mtx(m, &wait_policy(plat), held));
        }
        None => {}
    }
}

/// Sleeps until `chan` moves past `gen0`: a kproc in deterministic mode
/// gives its baton back; another simulated thread in deterministic mode
/// runs the others nested; in threaded mode a real wait.
fn block_on(
    k: &KoKernel,
    plat: &SimPlatform,
    chan: usize,
    gen0: u64,
    mtx: Option<usize>,
    sbt: i64,
) -> bool {
    let timeout = sleep::sbt_duration(sbt);
    if plat.mode() == Mode::Threaded {
        return sleep_threaded(k, plat, chan, gen0, timeout);
    }
    if let Some(kp) = this_kproc() {
        kp.block(KWait::Sleep {
            chan,
            gen: gen0,
            interlock: mtx,
            timed: timeout.is_some(),
        });
        return k.kern.sleepq.gen(chan) != gen0;
    }
    if timeout.is_some() {
        return k.kern.sleepq.gen(chan) != gen0;
    }
    let woke = plat.sh.sched.det_block_until(&mut || {
        k.kern.sleepq.gen(chan) != gen0 && mtx.is_none_or(|m| k.kern.locks.is_free(m))
    });
    if !woke {
        plat.violation(
            rule::DEADLOCK,
            "msleep: nothing left to run will ever wake it".into(),
        );
    }
    woke
}

/// Threaded mode: a real sleep. A kproc may sleep for ever (an idle
/// worker); another thread that is not woken within the simulator's wait
/// timeout is reported as deadlocked and goes on.
fn sleep_threaded(
    k: &KoKernel,
    plat: &SimPlatform,
    chan: usize,
    gen0: u64,
    timeout: Option<std::time::Duration>,
) -> bool {
    if timeout.is_some() || this_kproc().is_some() {
        return k.kern.sleepq.wait(chan, gen0, timeout);
    }
    let woke = k
        .kern
        .sleepq
        .wait(chan, gen0, Some(plat.sh.cfg.wait_timeout));
    if !woke {
        plat.violation(
            rule::DEADLOCK,
            format!("msleep: not woken after {:?}", plat.sh.cfg.wait_timeout),
        );
    }
    woke
}

/// `wakeup(chan)`.
unsafe extern "C" fn kpi_wakeup(chan: *const c_void) {
    current().kern.sleepq.wakeup(chan as usize);
}

// ---- kproc(9) -----------------------------------------------------------------

/// The backend of `kproc_create` (kprintf.c formats the name).
unsafe extern "C" fn emu_kproc_create(
    func: Option<KprocFn>,
    arg: *mut c_void,
    newpp: *mut *mut c_void,
    _flags: c_int,
    _pages: c_int,
    name: *const c_char,
) -> c_int {
    let (k, plat) = (current(), current_plat());
    report_all(k.kern.locks.check_may_sleep("kproc_create", None));
    let Some(func) = func else {
        report(rule::CLASS, "kproc_create with a NULL function".into());
        return EINVAL;
    };
    // SAFETY: name is the C string kprintf.c formatted.
    let name = unsafe { malloc::cstr(name) };
    match kproc::create(&k, &plat, func, arg as usize, name) {
        Ok(p) => {
            if !newpp.is_null() {
                // SAFETY: newpp is the caller's struct proc ** out-argument.
                unsafe { *newpp = p as *mut c_void };
            }
            0
        }
        Err(e) => e,
    }
}

/// `kproc_exit(code)`: never returns (jumps to the kproc's base guard).
unsafe extern "C" fn kpi_kproc_exit(_code: c_int) -> ! {
    exit_now();
    // SAFETY: no frame between here and the kproc's guard holds a value
    // with drop glue (exit_now returned; see kproc.rs).
    unsafe { crate::ko::gmr_emu_exit_to_base() }
}

fn exit_now() {
    let (k, plat) = (current(), current_plat());
    match this_kproc() {
        Some(kp) => kproc::exit_bookkeeping(&k, &plat, &kp),
        None => report(
            rule::CLASS,
            "kproc_exit from a thread that is not a kproc".into(),
        ),
    }
}

// ---- console, panic, misc ----------------------------------------------------

thread_local! {
    /// This thread's console output not ended by a newline yet.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// One console line from the emulated kernel.
pub(crate) fn console_line(plat: &SimPlatform, line: String) {
    plat.console(line);
}

/// The backend of `printf`: text to the console, line by line.
unsafe extern "C" fn emu_out(p: *const c_char, len: usize) {
    // SAFETY: kprintf.c passes its buffer and length.
    let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) };
    let text = String::from_utf8_lossy(bytes);
    let plat = current_plat();
    LINE.with(|l| {
        let mut l = l.borrow_mut();
        l.push_str(&text);
        while let Some(i) = l.find('\n') {
            let line: String = l.drain(..=i).collect();
            console_line(&plat, line.trim_end_matches('\n').to_string());
        }
    });
}

/// The backend of `panic`: records it (the C side then jumps to the guard).
unsafe extern "C" fn emu_panic_record(p: *const c_char, len: usize) {
    // SAFETY: kprintf.c passes its buffer and length.
    let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) };
    record_panic(String::from_utf8_lossy(bytes).into_owned());
}

fn record_panic(msg: String) {
    if let Some((k, plat)) = crate::ko::try_current() {
        k.kern.panics.fetch_add(1, Ordering::AcqRel);
        console_line(&plat, format!("panic: {msg}"));
    }
    report(rule::PANIC, msg);
}

/// A panic of the emulation itself on behalf of the kernel (malloc_init
/// of a bad type): recorded, then the same jump as `panic(9)`.
fn panic_now(msg: String) {
    record_panic(msg);
    // SAFETY: called from KPI functions whose frames hold nothing with
    // drop glue at this point (msg was consumed above).
    unsafe { crate::ko::gmr_emu_jump_panic() }
}

/// A `panic` or `kproc_exit` on a thread with no guard: the kernel is down.
unsafe extern "C" fn emu_no_guard(val: c_int) {
    eprintln!("geom_sim::ko: panic(9) or kproc_exit(9) (code {val}) outside any call into the module: the emulated kernel is down");
}

/// An unsupported printf conversion.
unsafe extern "C" fn emu_bad_format(p: *const c_char, len: usize) {
    // SAFETY: kprintf.c passes the rest of the format and its length.
    let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) };
    report(
        rule::CLASS,
        format!(
            "printf: conversion the kernel's printf does not have: {}",
            String::from_utf8_lossy(bytes)
        ),
    );
}

/// `arc4random()`: the simulator's seeded generator.
unsafe extern "C" fn kpi_arc4random() -> u32 {
    current_plat().rand_u64() as u32
}

unsafe extern "C" fn kpi_memcpy(d: *mut c_void, s: *const c_void, n: usize) -> *mut c_void {
    // SAFETY: the caller passes valid, non-overlapping ranges, as memcpy requires.
    unsafe { std::ptr::copy_nonoverlapping(s.cast::<u8>(), d.cast::<u8>(), n) };
    d
}

unsafe extern "C" fn kpi_memmove(d: *mut c_void, s: *const c_void, n: usize) -> *mut c_void {
    // SAFETY: the caller passes valid ranges; copy handles overlap.
    unsafe { std::ptr::copy(s.cast::<u8>(), d.cast::<u8>(), n) };
    d
}

unsafe extern "C" fn kpi_memset(d: *mut c_void, c: c_int, n: usize) -> *mut c_void {
    // SAFETY: the caller passes a valid range of n bytes.
    unsafe { std::ptr::write_bytes(d.cast::<u8>(), c as u8, n) };
    d
}

unsafe extern "C" fn kpi_memcmp(a: *const c_void, b: *const c_void, n: usize) -> c_int {
    // SAFETY: the caller passes two valid ranges of n bytes.
    let (x, y) = unsafe {
        (
            std::slice::from_raw_parts(a.cast::<u8>(), n),
            std::slice::from_raw_parts(b.cast::<u8>(), n),
        )
    };
    x.iter()
        .zip(y)
        .find(|(p, q)| p != q)
        .map_or(0, |(p, q)| c_int::from(*p) - c_int::from(*q))
}

unsafe extern "C" fn kpi_strlen(s: *const c_char) -> usize {
    let mut n = 0;
    // SAFETY: the caller passes a NUL-terminated string.
    while unsafe { *s.add(n) } != 0 {
        n += 1;
    }
    n
}

// ---- the C part ---------------------------------------------------------------

/// The Rust backends of kprintf.c (same layout as its struct).
#[repr(C)]
struct Backends {
    out: unsafe extern "C" fn(*const c_char, usize),
    panic_record: unsafe extern "C" fn(*const c_char, usize),
    no_guard: unsafe extern "C" fn(c_int),
    bad_format: unsafe extern "C" fn(*const c_char, usize),
    new_geom: unsafe extern "C" fn(*mut c_void, *const c_char) -> *mut c_void,
    new_provider: unsafe extern "C" fn(*mut c_void, *const c_char) -> *mut c_void,
    gctl_error: unsafe extern "C" fn(*mut c_void, *const c_char),
    kproc_create: unsafe extern "C" fn(
        Option<KprocFn>,
        *mut c_void,
        *mut *mut c_void,
        c_int,
        c_int,
        *const c_char,
    ) -> c_int,
}

extern "C" {
    fn gmr_emu_set_backends(b: *const Backends);
    fn gmr_kpi_printf(fmt: *const c_char, ...) -> c_int;
    fn gmr_kpi_panic(fmt: *const c_char, ...) -> !;
    fn gmr_kpi_g_new_geomf(mp: *mut c_void, fmt: *const c_char, ...) -> *mut c_void;
    fn gmr_kpi_g_new_providerf(gp: *mut c_void, fmt: *const c_char, ...) -> *mut c_void;
    fn gmr_kpi_gctl_error(req: *mut c_void, fmt: *const c_char, ...);
    fn gmr_kpi_kproc_create(
        func: Option<KprocFn>,
        arg: *mut c_void,
        newpp: *mut *mut c_void,
        flags: c_int,
        pages: c_int,
        fmt: *const c_char,
        ...
    ) -> c_int;
    /// Kernel-printf formatting into `out` (tests of the conversions).
    pub fn gmr_kpi_snprintf(out: *mut c_char, size: usize, fmt: *const c_char, ...) -> usize;
}

/// Hands kprintf.c its Rust backends (once per process).
fn install_backends() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let b = Backends {
            out: emu_out,
            panic_record: emu_panic_record,
            no_guard: emu_no_guard,
            bad_format: emu_bad_format,
            new_geom: crate::ko::geom::gmr_emu_g_new_geom_raw,
            new_provider: crate::ko::geom::gmr_emu_g_new_provider_raw,
            gctl_error: crate::ko::gctl::gmr_emu_gctl_error_raw,
            kproc_create: emu_kproc_create,
        };
        // SAFETY: b is a complete table of valid function pointers with the
        // C struct's layout; the C side copies it.
        unsafe { gmr_emu_set_backends(&b) };
    });
}

/// The kernel-side symbols, by import name.
pub fn symbols() -> Vec<(&'static str, Sym)> {
    funcs![
        "malloc" => kpi_malloc,
        "malloc_aligned" => kpi_malloc_aligned,
        "free" => kpi_free,
        "malloc_init" => kpi_malloc_init,
        "malloc_uninit" => kpi_malloc_uninit,
        "_mtx_init" => kpi_mtx_init,
        "_mtx_destroy" => kpi_mtx_destroy,
        "__mtx_lock_flags" => kpi_mtx_lock,
        "__mtx_unlock_flags" => kpi_mtx_unlock,
        "_sx_xlock" => kpi_sx_xlock,
        "_sx_xunlock" => kpi_sx_xunlock,
        "_sleep" => kpi_sleep,
        "pause_sbt" => kpi_pause_sbt,
        "wakeup" => kpi_wakeup,
        "kproc_exit" => kpi_kproc_exit,
        "arc4random" => kpi_arc4random,
        "memcpy" => kpi_memcpy,
        "memmove" => kpi_memmove,
        "memset" => kpi_memset,
        "memcmp" => kpi_memcmp,
        "strlen" => kpi_strlen,
        "sysctl_handle_int" => sysctl::kpi_sysctl_handle_int,
        "module_register_init" => module::kpi_module_register_init,
        "printf" => gmr_kpi_printf,
        "panic" => gmr_kpi_panic,
        "g_new_geomf" => gmr_kpi_g_new_geomf,
        "g_new_providerf" => gmr_kpi_g_new_providerf,
        "gctl_error" => gmr_kpi_gctl_error,
        "kproc_create" => gmr_kpi_kproc_create,
    ]
}

/// The instance's kprocs (tests: exit and unload).
pub fn kprocs(k: &Arc<KoKernel>) -> Vec<Arc<Kproc>> {
    k.kern.kprocs.all()
}
