//! `kproc(9)`: kernel processes the module starts (its failover worker).
//!
//! Each kproc runs the module's function on a real OS thread. In threaded
//! mode it runs freely. In deterministic mode it runs as a coroutine driven
//! by a baton: a scheduler poller whose `has_work` is "the kproc can run"
//! (just created, or woken and its interlock free, or waiting for the
//! topology lock and that lock free) and whose step hands the baton to the
//! thread and waits until the kproc blocks again (in `_sleep`) or exits.
//! Only one of the two OS threads runs at a time, so the run stays a
//! function of the seed.
//!
//! `kproc_exit` never returns: it jumps back to the guard the thread called
//! the function under (`gmr_emu_try` in kprintf.c), skipping the module's
//! frames exactly as a kernel thread's exit abandons its stack, and the
//! thread then ends normally. No frame skipped holds a value with drop glue
//! (module frames are C or `no_std` Rust built `panic=abort`; ours call the
//! jump only after their bookkeeping returned).

use std::cell::RefCell;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};

use crate::ko::KoKernel;
use crate::sched::{Ctx, Mode, Poller};
use crate::sim::SimPlatform;
use crate::util::{lock, wait};

/// The module's kproc function.
pub type KprocFn = unsafe extern "C" fn(*mut c_void);

/// Simulated thread ids of kprocs (above the simulator's own ranges).
const TID_KPROC_BASE: u64 = 1 << 43;
static NEXT_KPROC: AtomicU64 = AtomicU64::new(0);

/// What a blocked kproc waits for (deterministic mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KWait {
    /// Created, not run yet.
    Start,
    /// In `_sleep` on `chan` since generation `gen`; `interlock` is retaken
    /// on wakeup; `timed` sleeps may also end by timeout.
    Sleep {
        chan: usize,
        gen: u64,
        interlock: Option<usize>,
        timed: bool,
    },
    /// Waiting for the topology lock.
    Topology,
    /// Holds the baton.
    Running,
}

struct KpSt {
    kproc_turn: bool,
    wait: KWait,
    exited: bool,
    /// The thread will run no more module code: it entered
    /// `kproc_exit`, or its function returned or panicked.
    left_module: bool,
}

/// One kproc.
pub struct Kproc {
    pub tid: u64,
    pub name: String,
    /// The stand-in `struct proc` (`*newpp`; `kproc_exit` wakes it).
    pub proc_addr: usize,
    st: Mutex<KpSt>,
    cv: Condvar,
}

thread_local! {
    static CUR_KPROC: RefCell<Option<Arc<Kproc>>> = const { RefCell::new(None) };
}

/// The kproc the calling thread is, if any.
pub fn this_kproc() -> Option<Arc<Kproc>> {
    CUR_KPROC.with(|c| c.borrow().clone())
}

impl Kproc {
    fn new(name: String, proc_addr: usize) -> Arc<Kproc> {
        Arc::new(Kproc {
            tid: TID_KPROC_BASE + NEXT_KPROC.fetch_add(1, Ordering::Relaxed),
            name,
            proc_addr,
            st: Mutex::new(KpSt {
                kproc_turn: false,
                wait: KWait::Start,
                exited: false,
                left_module: false,
            }),
            cv: Condvar::new(),
        })
    }

    /// Whether the kproc has exited.
    pub fn exited(&self) -> bool {
        lock(&self.st).exited
    }

    /// Whether the kproc's thread may still run module code: it has not
    /// entered `kproc_exit` (it runs, sleeps or waits in module frames it
    /// will return to), so unmapping the module now would free the text
    /// under it.
    pub fn in_module(&self) -> bool {
        !lock(&self.st).left_module
    }

    /// What the thread was last doing, for reports.
    pub fn state(&self) -> KWait {
        lock(&self.st).wait
    }

    /// Deterministic mode: whether the kproc can run now.
    fn runnable(&self, k: &KoKernel) -> bool {
        let st = lock(&self.st);
        if st.kproc_turn || st.exited {
            return false;
        }
        match st.wait {
            KWait::Start => true,
            KWait::Sleep {
                chan,
                gen,
                interlock,
                timed,
            } => {
                (timed || k.kern.sleepq.gen(chan) != gen)
                    && interlock.is_none_or(|m| k.kern.locks.is_free(m))
            }
            KWait::Topology => !k.plat.sh.sched.topo_held.load(Ordering::Acquire),
            KWait::Running => false,
        }
    }

    /// Scheduler side: lets the kproc run until it blocks or exits.
    fn hand_baton(&self) {
        let mut st = lock(&self.st);
        if st.exited {
            return;
        }
        st.kproc_turn = true;
        self.cv.notify_all();
        while st.kproc_turn {
            st = wait(&self.cv, st);
        }
    }

    /// Kproc side: gives the baton back until `w` can proceed and the
    /// scheduler hands it over again.
    pub fn block(&self, w: KWait) {
        let mut st = lock(&self.st);
        st.wait = w;
        st.kproc_turn = false;
        self.cv.notify_all();
        while !st.kproc_turn {
            st = wait(&self.cv, st);
        }
        st.wait = KWait::Running;
    }

    /// Kproc side: waits for the first turn.
    fn first_turn(&self) {
        let mut st = lock(&self.st);
        while !st.kproc_turn {
            st = wait(&self.cv, st);
        }
        st.wait = KWait::Running;
    }

    /// Kproc side: marks it exited and gives the baton back for good.
    fn finish(&self) {
        let mut st = lock(&self.st);
        st.exited = true;
        st.left_module = true;
        st.kproc_turn = false;
        self.cv.notify_all();
    }
}

/// The kprocs of one emulated kernel, and their stand-in procs.
#[derive(Default)]
pub struct Kprocs {
    list: Mutex<Vec<Arc<Kproc>>>,
}

impl Kprocs {
    /// Every kproc created so far.
    pub fn all(&self) -> Vec<Arc<Kproc>> {
        lock(&self.list).clone()
    }
}

impl Drop for Kprocs {
    fn drop(&mut self) {
        let list = self.list.get_mut().unwrap_or_else(|e| e.into_inner());
        for kp in list.drain(..) {
            // Only exited kprocs can be here: a live one holds the
            // instance (its thread's current instance) alive.
            free_proc(kp.proc_addr);
        }
    }
}

/// A zeroed stand-in for `struct proc`: the module only passes it around
/// (and sleeps on it to wait for an exit); it never looks inside.
const PROC_SIZE: usize = 4096;

fn alloc_proc() -> usize {
    Box::into_raw(Box::new([0u8; PROC_SIZE])) as usize
}

fn free_proc(addr: usize) {
    // SAFETY: addr came from alloc_proc (Box::into_raw of this type) and
    // is freed once, when its Kprocs list is dropped.
    drop(unsafe { Box::from_raw(addr as *mut [u8; PROC_SIZE]) });
}

/// What the kproc's thread needs to start.
struct Start {
    k: Arc<KoKernel>,
    plat: SimPlatform,
    kp: Arc<Kproc>,
    func: KprocFn,
    arg: usize,
}

/// `kproc_create`: starts `func(arg)` as kproc `name`; returns the proc.
pub fn create(
    k: &Arc<KoKernel>,
    plat: &SimPlatform,
    func: KprocFn,
    arg: usize,
    name: String,
) -> Result<usize, c_int> {
    let kp = Kproc::new(name, alloc_proc());
    lock(&k.kern.kprocs.list).push(kp.clone());
    let det = plat.mode() == Mode::Deterministic;
    if det {
        let (w1, k1, w2) = (Arc::downgrade(&kp), Arc::downgrade(k), Arc::downgrade(&kp));
        plat.sh.sched.add_free_poller(Poller {
            key: kp.proc_addr,
            tid: kp.tid,
            has_work: Box::new(move || runnable(&w1, &k1)),
            step: Box::new(move || {
                if let Some(kp) = w2.upgrade() {
                    kp.hand_baton();
                }
            }),
        });
    }
    let start = Start {
        k: k.clone(),
        plat: plat.clone(),
        kp: kp.clone(),
        func,
        arg,
    };
    let spawned = std::thread::Builder::new()
        .name(format!("ko-{}", kp.name))
        .stack_size(4 << 20)
        .spawn(move || body(start, det));
    match spawned {
        Ok(_) => Ok(kp.proc_addr),
        Err(_) => {
            kp.finish();
            if det {
                plat.sh.sched.remove_poller(kp.proc_addr);
            }
            Err(crate::ko::kern::EAGAIN)
        }
    }
}

fn runnable(kp: &Weak<Kproc>, k: &Weak<KoKernel>) -> bool {
    match (kp.upgrade(), k.upgrade()) {
        (Some(kp), Some(k)) => kp.runnable(&k),
        _ => false,
    }
}

/// The kproc thread.
fn body(s: Start, det: bool) {
    std::mem::forget(crate::sched::enter(s.kp.tid, Ctx::Worker));
    crate::ko::enter_for_thread(s.k.clone(), s.plat.clone());
    CUR_KPROC.with(|c| *c.borrow_mut() = Some(s.kp.clone()));
    if det {
        s.kp.first_turn();
    }
    let outcome = crate::ko::call_kproc(s.func, s.arg);
    match outcome {
        crate::ko::Outcome::Returned => {
            crate::ko::kern::console_line(
                &s.plat,
                format!(
                    "Kernel thread \"{}\" (pid {}) exited prematurely.",
                    s.kp.name, s.kp.tid
                ),
            );
            exit_bookkeeping(&s.k, &s.plat, &s.kp);
        }
        crate::ko::Outcome::Exited => {}
        crate::ko::Outcome::Panicked => exit_bookkeeping(&s.k, &s.plat, &s.kp),
    }
    s.kp.finish();
}

/// What `kproc_exit` does before the thread leaves: WITNESS's check for
/// locks still held, wakeup of sleepers on the proc, and (deterministic)
/// removal of the poller.
pub fn exit_bookkeeping(k: &KoKernel, plat: &SimPlatform, kp: &Kproc) {
    // From here on the thread only runs kernel (emulator) code: the
    // module frames below are abandoned, never returned to.
    lock(&kp.st).left_module = true;
    for name in k.kern.locks.held_names() {
        plat.violation(
            crate::violation::rule::WITNESS,
            format!("kproc \"{}\" exiting with lock \"{name}\" held", kp.name),
        );
    }
    k.kern.sleepq.wakeup(kp.proc_addr);
    if plat.mode() == Mode::Deterministic {
        plat.sh.sched.remove_poller(kp.proc_addr);
    }
}
