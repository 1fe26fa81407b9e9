//! `geom_sim::ko`: the shipped `geom_multipath_rs.ko` run in this process.
//!
//! The very file `make` builds is mapped and relocated by the `kld` crate,
//! its imports resolved against an emulated FreeBSD KPI backed by the
//! simulator, its SYSINITs run in kernel order, and its class registers
//! into the simulator through `g_modevent`. The KPI is split in two:
//! [`kern`] (malloc, locks, sleep, kproc, printf, sysctl, modules) and the
//! GEOM side ([`geom`], [`gctl`], [`class`]) on the real struct layouts of
//! [`kstructs`].
//!
//! Several module instances can live in one process (each test loads its
//! own copy): every emulated function finds its instance through
//! [`current`], set by [`enter`] around each call into module code, which
//! runs under [`guarded`] so that a `panic(9)` ends that call (recorded as
//! a "panic" violation) and not the process.
//!
//! What this proves, and what it does not: the module's own bytes run —
//! its relocations, metadata, SYSINITs, C shim and kernel-side Rust — on
//! the real struct layouts of the headers it was built with, and what the
//! kernel would catch (KASSERTs, WITNESS, `malloc_uninit` leaks, code run
//! after unload) is caught here. It is not FreeBSD's kernel: GEOM is the
//! simulator's model of it, WITNESS orders locks by name as FreeBSD does
//! but knows only the module's mutexes and the topology lock, kproc stacks
//! are host-sized (stack depth is checked by `make check-ko`, not here),
//! and timed sleeps in deterministic mode end at the kproc's next turn.
//! The VM harness stays the proof on a real kernel.

/// A symbol table of emulated functions: `funcs!["name" => function, ...]`
/// is the `Vec<(&'static str, Sym)>` of each import name with the address
/// of the function that implements it.
macro_rules! funcs {
    ($($name:literal => $f:path),* $(,)?) => {
        vec![$(($name, $crate::ko::Sym::Func($f as *const () as usize))),*]
    };
}

pub mod class;
pub mod gctl;
pub mod geom;
pub mod kern;
pub mod kstructs;
mod load;

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use load::LoadInfo;
pub use load::{
    default_ko_path, load, unload, KoError, KoOptions, KoReport, KoSummary, FREEBSD_15_0,
};

use crate::sim::SimPlatform;

/// One emulated KPI symbol: a function or a data object, by address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sym {
    Func(usize),
    Data(usize),
}

/// One loaded module instance and the emulated kernel it runs on.
pub struct KoKernel {
    /// The simulator (unbound handle).
    pub plat: SimPlatform,
    /// The GEOM side of the KPI.
    pub geom: geom::GeomState,
    /// The kernel side of the KPI.
    pub kern: kern::KernState,
    /// The loaded file, until unload unmaps it.
    module: Mutex<Option<kld::Module>>,
    /// What was loaded (for reports).
    info: Mutex<LoadInfo>,
}

impl KoKernel {
    /// An instance with no module loaded yet (the loader fills it in),
    /// failing the `fail_nowait_at`th `M_NOWAIT` allocation if set.
    pub fn new(plat: &SimPlatform, fail_nowait_at: Option<u64>) -> KoKernel {
        KoKernel::with_faults(plat, fail_nowait_at.map(kern::FailNowait::Nth))
    }

    /// An instance whose `M_NOWAIT` allocations fail as `plan` says.
    pub fn with_faults(plat: &SimPlatform, plan: Option<kern::FailNowait>) -> KoKernel {
        KoKernel {
            plat: plat.clone(),
            geom: geom::GeomState::new(),
            kern: kern::KernState::new(plan),
            module: Mutex::new(None),
            info: Mutex::new(LoadInfo::default()),
        }
    }
}

thread_local! {
    /// The instances this thread runs module code for, innermost last.
    static CURRENT: RefCell<Vec<(Arc<KoKernel>, SimPlatform)>> = const { RefCell::new(Vec::new()) };
}

/// Pops the innermost instance on drop (so [`enter`] nests and unwinds).
struct EnterGuard;

impl Drop for EnterGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.borrow_mut().pop());
    }
}

/// Runs `f` with `k` as the current instance and `plat` as the platform
/// handle the emulated KPI reports to. Nests.
pub fn enter<R>(k: &Arc<KoKernel>, plat: &SimPlatform, f: impl FnOnce() -> R) -> R {
    CURRENT.with(|c| c.borrow_mut().push((k.clone(), plat.clone())));
    let _g = EnterGuard;
    f()
}

/// Makes `k` the current instance of this thread for the rest of its life
/// (a kproc's thread, whose module code may never return to us).
pub(crate) fn enter_for_thread(k: Arc<KoKernel>, plat: SimPlatform) {
    CURRENT.with(|c| c.borrow_mut().push((k, plat)));
}

/// The current instance, if module code runs on this thread.
pub fn try_current() -> Option<(Arc<KoKernel>, SimPlatform)> {
    CURRENT.with(|c| c.borrow().last().cloned())
}

/// Called where an emulated function runs with no instance entered: an
/// emulator bug, not the module's; nothing sane can be returned to C.
fn no_instance() -> ! {
    eprintln!("geom_sim::ko: an emulated KPI function ran outside ko::enter()");
    std::process::abort()
}

/// The current instance (aborts if none: only module code calls the KPI,
/// and every way into module code goes through [`enter`]).
pub fn current() -> Arc<KoKernel> {
    match try_current() {
        Some((k, _)) => k,
        None => no_instance(),
    }
}

/// The platform handle of the current call into module code.
pub fn current_plat() -> SimPlatform {
    match try_current() {
        Some((_, p)) => p,
        None => no_instance(),
    }
}

/// Records a violation against the current instance's simulator (or on
/// stderr when called outside any instance).
pub(crate) fn report(rule: &'static str, msg: String) {
    match try_current() {
        Some((_, p)) => p.violation(rule, msg),
        None => eprintln!("geom_sim::ko: {rule}: {msg} (outside any instance)"),
    }
}

// ---- guards: calls into module code ---------------------------------------------

/// How a guarded call into module code ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It returned.
    Returned,
    /// It called `panic(9)` (recorded as a "panic" violation).
    Panicked,
    /// A kproc called `kproc_exit(9)`.
    Exited,
}

extern "C" {
    fn gmr_emu_try(
        cb: unsafe extern "C" fn(*mut std::ffi::c_void),
        ctx: *mut std::ffi::c_void,
        base: std::ffi::c_int,
    ) -> std::ffi::c_int;
    /// Jumps to the calling kproc's base guard (kproc_exit).
    pub(crate) fn gmr_emu_exit_to_base() -> !;
    /// Jumps to the innermost guard as a panic does.
    pub(crate) fn gmr_emu_jump_panic() -> !;
}

/// Calls the closure `ctx` points to.
unsafe extern "C" fn call_closure(ctx: *mut std::ffi::c_void) {
    // SAFETY: ctx is the `&mut &mut dyn FnMut()` made by `guarded_as`.
    let f = unsafe { &mut *ctx.cast::<&mut dyn FnMut()>() };
    f();
}

fn guarded_as(f: &mut dyn FnMut(), base: bool) -> Outcome {
    let mut f = f;
    let ctx: *mut &mut dyn FnMut() = &mut f;
    // SAFETY: call_closure gets a pointer to a live `&mut dyn FnMut()`;
    // the guard's longjmp only skips frames above gmr_emu_try, which per
    // the contract of `guarded` hold nothing with drop glue.
    match unsafe { gmr_emu_try(call_closure, ctx.cast(), std::ffi::c_int::from(base)) } {
        0 => Outcome::Returned,
        2 => Outcome::Exited,
        _ => Outcome::Panicked,
    }
}

/// Runs `f`, which calls into module code, under a guard: a `panic(9)` in
/// the module ends the call (recorded as a "panic" violation) instead of
/// the process. `f` must hold no value with drop glue while module code
/// runs (call the function pointer and copy plain results out): a panic
/// skips its frame without dropping anything, as the kernel abandons a
/// panicked thread's stack.
pub fn guarded(f: &mut dyn FnMut()) -> Outcome {
    guarded_as(f, false)
}

/// Runs a kproc's function under its base guard (`kproc_exit` ends there).
pub(crate) fn call_kproc(func: kern::KprocFn, arg: usize) -> Outcome {
    guarded_as(
        &mut || {
            // SAFETY: the module's kproc function with its argument, as
            // kproc_create received them.
            unsafe { func(arg as *mut std::ffi::c_void) }
        },
        true,
    )
}
