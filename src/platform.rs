//! The platform boundary: the small slice of the GEOM KPI the class uses.
//!
//! The whole multipath core is written against [`Platform`]. Two
//! implementations exist: the kernel one (`src/kernel/`, calls into the C shim
//! in `geom_multipath_rs/`) and the simulator (`sim/`, a userland model of
//! GEOM that enforces the same rules). Nothing in the core knows which one it
//! runs on.
//!
//! Why a trait with associated handle types rather than FFI functions called
//! directly: handles stay opaque (a pointer in the kernel, an index in the
//! simulator), the simulator can check every call against GEOM's rules, and
//! the compiler monomorphises the core per platform so the kernel pays no
//! dynamic dispatch on the I/O path.
//!
//! ## One trait, not behaviour on the handles
//!
//! Rust-for-Linux's block layer puts behaviour on its handle types
//! (`rq.sector()`, a `GenDisk` that owns its queue). We considered it
//! (`bp.cmd()`, `pp.mediasize()`) and keep one trait whose methods take
//! the handles as arguments, because:
//! - There is one kernel but many simulators: every test, `mpsim` run and
//!   bench builds its own GEOM model, several at once in one process. A
//!   handle that answered `pp.mediasize()` by itself would have to carry
//!   its model (an `Arc` in every `Copy` handle, a count moved on every
//!   bio) or find it in a global (which concurrent tests defeat).
//!   With `plat.provider_mediasize(pp)` the context is explicit, costs
//!   nothing, and handles stay one word: a pointer in the kernel, an
//!   index in the simulator.
//! - Every call is a rule check in the simulator ("topology", "nosleep",
//!   "once"): the checks need the model's state, which `plat` is.
//! - What makes Rust-for-Linux's handles safe is ownership, and that is
//!   here already: [`Platform::Bio`] is move-only, so a bio is completed
//!   once by construction (`io_deliver`, `std_done` and `io_request`
//!   consume it), and the kernel's handles are opaque non-NULL pointers
//!   whose lifetimes live in `src/kernel/`, with no `unsafe` in the core.
//!
//! The trait is long (about fifty methods) because the KPI is: each
//! method is one GEOM call or accessor, grouped below by what it acts on
//! (the topology lock and logging, geoms, providers, consumers, bios,
//! events and the worker). If it grows, the next step is splitting it by
//! object into super-traits of `Platform` (the core's `P: Platform` bounds
//! would not change); method sugar on the handles is not.
//!
//! Rules the caller (the core) must follow, as in the kernel; the simulator
//! enforces them and fails with the name of the rule broken:
//! - "topology": calls marked *topology* need the topology lock held
//!   (taste, ctlreq, orphan, resize, access, dumpconf and events run with
//!   it held;
//!   the worker must take it with [`Platform::topology_lock`]).
//! - "nosleep": [`Platform::read_data`], [`Platform::write_data`] and
//!   [`WaitQueue::sleep`] may sleep, so they are never called from `start` or
//!   `done` and never with the topology lock held;
//!   [`Platform::post_event_sleeping`] may sleep for memory, so it is never
//!   called from `start` or `done` (the topology lock may be held).
//! - "once": a bio handle is completed exactly once. [`Platform::Bio`] is a
//!   move-only handle so the type system already forbids most double
//!   completions; the simulator catches the rest.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use crate::class::Softc;

/// A FreeBSD errno value (sys/errno.h numbering, same on every FreeBSD arch).
pub type Errno = i32;

pub const EPERM: Errno = 1;
pub const ENOENT: Errno = 2;
pub const EIO: Errno = 5;
pub const ENXIO: Errno = 6;
pub const ENOMEM: Errno = 12;
pub const EFAULT: Errno = 14;
pub const EBUSY: Errno = 16;
pub const EEXIST: Errno = 17;
pub const EINVAL: Errno = 22;
pub const ENOSPC: Errno = 28;
pub const EOPNOTSUPP: Errno = 45;
pub const EINPROGRESS: Errno = 36;

/// The kinds of bio the class distinguishes (`bio_cmd`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BioCmd {
    Read,
    Write,
    Delete,
    Flush,
    GetAttr,
    /// Any other command (BIO_ZONE, BIO_SPEEDUP, ...): passed to the active path.
    Other,
}

/// Access counts (read, write, exclusive) as `g_access(9)` takes them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Access {
    pub r: i32,
    pub w: i32,
    pub e: i32,
}

impl Access {
    pub const NONE: Access = Access { r: 0, w: 0, e: 0 };
    pub const fn new(r: i32, w: i32, e: i32) -> Access {
        Access { r, w, e }
    }
    pub const fn is_open(&self) -> bool {
        self.r != 0 || self.w != 0 || self.e != 0
    }
    pub const fn neg(&self) -> Access {
        Access {
            r: -self.r,
            w: -self.w,
            e: -self.e,
        }
    }
}

/// A mutex with sleep and wakeup on one channel: `mtx(9)` + `msleep(9)` +
/// `wakeup(9)` in the kernel, a Mutex and Condvar in the simulator.
///
/// Lock and unlock are explicit (not RAII) because the kernel mutex is a C
/// object; the core wraps them in [`crate::worker`]'s guard.
pub trait WaitQueue: Send + Sync {
    /// `mtx_lock`. May block briefly, never sleeps for long: allowed in done.
    fn lock(&self);
    /// `mtx_unlock`.
    fn unlock(&self);
    /// `msleep(chan, mtx, PRIBIO, wmesg, 0)`: atomically drops the mutex and
    /// sleeps until [`WaitQueue::wakeup`], then takes the mutex again.
    /// Called with the mutex held, only from a thread that may sleep.
    fn sleep(&self);
    /// `wakeup(chan)`: wakes every sleeper. Callable from done.
    fn wakeup(&self);
}

/// The failover worker's queue of failed child bios, each with the softc
/// (`T`) it belongs to. It lives with the worker's [`WaitQueue`] and is only
/// touched with that mutex held.
///
/// [`BioQueue::push_bio`] runs in done: it must neither sleep nor allocate.
/// The kernel links the bio through its own `bio_queue` field (as FreeBSD's
/// classes queue bios) and keeps the softc reference in `bio_caller2`, so a
/// failed bio can always be queued; nothing there can run out of memory.
pub trait BioQueue<B, T> {
    /// Appends `bp` and the reference `tag` travelling with it (FIFO).
    fn push_bio(&self, bp: B, tag: Arc<T>);
    /// Takes the oldest bio and its tag.
    fn pop_bio(&self) -> Option<(B, Arc<T>)>;
    /// Whether a bio is queued.
    fn has_bios(&self) -> bool;
}

/// A gctl request as `ctlreq` sees it (`struct gctl_req`).
pub trait CtlReq {
    /// The raw bytes of a parameter, as userland sent them (ASCII strings
    /// include their terminating NUL; ints are 4 native-endian bytes), or
    /// `None` when the request does not carry it.
    fn param(&self, name: &str) -> Option<&[u8]>;
    /// `gctl_error`: records an error; only the first one recorded is kept.
    fn error(&mut self, msg: fmt::Arguments<'_>);
    /// Whether an error was already recorded.
    fn has_error(&self) -> bool;
    /// Writes `text` (NUL added) into the read-write parameter `name`
    /// (`gctl_set_param_err`). Records its own error and returns it when the
    /// parameter is missing, too short or not writable.
    fn set_output(&mut self, name: &str, text: &str) -> Result<(), Errno>;
}

/// The GEOM KPI the multipath core uses. See the module comment for the rules.
pub trait Platform: Send + Sync + Sized + 'static {
    /// `struct g_geom *`.
    type Geom: Copy + Eq + Send + Sync + fmt::Debug;
    /// `struct g_provider *`.
    type Provider: Copy + Eq + Send + Sync + fmt::Debug;
    /// `struct g_consumer *`. Stored by the core in atomics as a `usize`.
    type Consumer: Copy + Eq + Send + Sync + fmt::Debug;
    /// An owned `struct bio *`: move-only, so each one is handed back to
    /// GEOM (requested, delivered or retired) exactly once.
    type Bio: Send;
    /// A mutex with a sleep channel, which also holds the worker's queue of
    /// failed bios.
    type Wq: WaitQueue + BioQueue<Self::Bio, Softc<Self>> + 'static;

    // ---- topology lock -------------------------------------------------
    /// `g_topology_lock()`. Never from start or done.
    fn topology_lock(&self);
    /// `g_topology_unlock()`.
    fn topology_unlock(&self);
    /// `g_topology_assert()`: the caller must hold the topology lock.
    fn topology_assert(&self);

    // ---- logging, identity ---------------------------------------------
    /// `printf(9)` of one console line; `args` already carries the
    /// `GEOM_MULTIPATH: ` prefix and no trailing newline.
    fn log(&self, args: fmt::Arguments<'_>);
    /// A random number (`arc4random`), for temporary geom names.
    fn random(&self) -> u32;
    /// Which CPU the caller runs on (`curcpu`), or any small number that
    /// differs between threads issuing I/O at once: start spreads its
    /// per-path counters over a few cache lines by it, so bios issued on
    /// different CPUs do not write one line. Called from start, so it
    /// must be cheap and must not sleep; 0 (the default) is always correct,
    /// merely shared.
    fn cpu_hint(&self) -> usize {
        0
    }

    // ---- geoms and providers (topology) ----------------------------------
    /// `g_new_geomf(class, name)`; `softc` becomes `gp->softc` and is what
    /// the platform hands back to the core in start, done and access.
    fn new_geom(&self, name: &str, softc: Option<Arc<Softc<Self>>>) -> Result<Self::Geom, Errno>;
    /// `g_destroy_geom`: only for a geom without consumers or providers.
    fn destroy_geom(&self, gp: Self::Geom);
    /// `g_wither_geom(gp, error)`: orphans its providers, detaches and
    /// destroys its consumers once idle, then the geom. Drops the softc.
    fn wither_geom(&self, gp: Self::Geom, error: Errno);
    /// The geoms of the class, in list order (newest first, as GEOM keeps
    /// them), skipping withering ones.
    fn class_geoms(&self) -> Vec<Self::Geom>;
    fn geom_name(&self, gp: Self::Geom) -> String;
    /// `gp->softc`, `None` for a softc-less geom (the taste geom).
    fn geom_softc(&self, gp: Self::Geom) -> Option<Arc<Softc<Self>>>;

    /// `g_new_providerf(gp, name)` with mediasize and sectorsize set; the
    /// provider is announced later with [`Platform::provider_announce`].
    fn new_provider(
        &self,
        gp: Self::Geom,
        name: &str,
        mediasize: u64,
        sectorsize: u32,
    ) -> Result<Self::Provider, Errno>;
    /// Direct dispatch on one of our new providers, before it is
    /// announced (`G_PF_DIRECT_SEND | G_PF_DIRECT_RECEIVE`, as FreeBSD's
    /// class sets): GEOM may call our start in the requester's thread and
    /// our bios' completions may go straight to the consumer above,
    /// skipping the g_down and g_up threads. Start and done allow it: they
    /// take no lock, never sleep and hold nothing across a request.
    fn set_provider_direct(&self, pp: Self::Provider);
    /// `g_error_provider(pp, 0)`: the provider appears and is tasted.
    fn provider_announce(&self, pp: Self::Provider);
    /// `g_wither_provider(pp, error)`.
    fn wither_provider(&self, pp: Self::Provider, error: Errno);
    /// `g_provider_by_name(name)` (name without `/dev/`).
    fn provider_by_name(&self, name: &str) -> Option<Self::Provider>;
    fn provider_name(&self, pp: Self::Provider) -> String;
    fn provider_mediasize(&self, pp: Self::Provider) -> u64;
    fn provider_sectorsize(&self, pp: Self::Provider) -> u32;
    /// The provider's access counts (`pp->acr`, `acw`, `ace`).
    fn provider_access(&self, pp: Self::Provider) -> Access;
    /// `(pp->stripesize, pp->stripeoffset)`: the provider's preferred I/O
    /// alignment (4096 and 0 for a 512e disk, whose physical sectors are
    /// 4 KiB). Both 0 when it has none.
    fn provider_stripe(&self, pp: Self::Provider) -> (u64, u64);
    /// Sets `pp->stripesize` and `pp->stripeoffset` on one of our own
    /// providers (topology).
    fn set_provider_stripe(&self, pp: Self::Provider, stripesize: u64, stripeoffset: u64);
    /// Whether `G_PF_ACCEPT_UNMAPPED` is set: the provider takes bios whose
    /// data is pages with no kernel address (`BIO_UNMAPPED`).
    fn provider_accepts_unmapped(&self, pp: Self::Provider) -> bool;
    /// Sets or clears `G_PF_ACCEPT_UNMAPPED` on one of our own providers
    /// (topology). Upper layers read it when they build a bio.
    fn set_provider_unmapped(&self, pp: Self::Provider, accept: bool);
    /// `g_resize_provider(pp, mediasize)` on one of our own providers
    /// (topology): GEOM posts an event that sets the new size and calls the
    /// resize method of each geom attached to it (orphaning, on a shrink,
    /// those without one). Nothing happens for an unchanged size or a
    /// withering provider. GEOM calls [`Softc::resize`] the same way when a
    /// path's provider changes size.
    fn resize_provider(&self, pp: Self::Provider, mediasize: u64);

    // ---- consumers (topology) --------------------------------------------
    fn new_consumer(&self, gp: Self::Geom) -> Result<Self::Consumer, Errno>;
    /// Direct dispatch on one of our new consumers, before it is attached
    /// (`G_CF_DIRECT_SEND | G_CF_DIRECT_RECEIVE`, as FreeBSD's class sets
    /// on paths and on its taste consumer): our requests may run the path's
    /// start in our thread, and its completions may call our done in the
    /// completer's thread.
    fn set_consumer_direct(&self, cp: Self::Consumer);
    /// `g_attach(cp, pp)`.
    fn attach(&self, cp: Self::Consumer, pp: Self::Provider) -> Result<(), Errno>;
    /// `g_detach(cp)`: access counts must be zero and no I/O in flight.
    fn detach(&self, cp: Self::Consumer);
    /// `g_destroy_consumer(cp)`: must be detached.
    fn destroy_consumer(&self, cp: Self::Consumer);
    /// `g_access(cp, dr, dw, de)`.
    fn access(&self, cp: Self::Consumer, delta: Access) -> Result<(), Errno>;
    fn consumer_access(&self, cp: Self::Consumer) -> Access;
    /// `cp->provider`, `None` once detached.
    fn consumer_provider(&self, cp: Self::Consumer) -> Option<Self::Provider>;
    /// The consumer as a word the core can keep in an atomic.
    fn consumer_to_raw(cp: Self::Consumer) -> usize;
    /// Inverse of [`Platform::consumer_to_raw`]; only given values it made.
    fn consumer_from_raw(raw: usize) -> Self::Consumer;

    // ---- synchronous I/O for the label (may sleep; no topology lock) ------
    /// `g_read_data(cp, offset, length)`; the consumer needs read access.
    fn read_data(&self, cp: Self::Consumer, offset: u64, length: usize) -> Result<Vec<u8>, Errno>;
    /// `g_write_data(cp, offset, data)`; the consumer needs write access.
    fn write_data(&self, cp: Self::Consumer, offset: u64, data: &[u8]) -> Result<(), Errno>;

    // ---- bios (start and done context: no topology lock, no sleep) --------
    fn bio_cmd(&self, bp: &Self::Bio) -> BioCmd;
    fn bio_offset(&self, bp: &Self::Bio) -> u64;
    fn bio_length(&self, bp: &Self::Bio) -> u64;
    /// `bp->bio_error`.
    fn bio_error(&self, bp: &Self::Bio) -> Errno;
    /// The core's own word on a child bio (`bio_caller1`): the path it took.
    fn bio_set_cookie(&self, bp: &mut Self::Bio, cookie: usize);
    fn bio_cookie(&self, bp: &Self::Bio) -> usize;
    /// Whether `bp` is a BIO_GETATTR for the attribute `name`
    /// (`bio_attribute`). Compared in place: no allocation.
    fn bio_attribute_is(&self, bp: &Self::Bio, name: &str) -> bool;
    /// Appends `suffix` to the NUL-terminated string a BIO_GETATTR returned
    /// in its data buffer, when string, suffix and NUL fit in `bio_length`,
    /// and keeps `bio_completed` covering the string and its NUL. Otherwise
    /// the buffer is left as it is and the error says why: EFAULT (it does
    /// not fit) or EINVAL (no NUL-terminated string within `bio_length`, no
    /// buffer, or a NUL in `suffix`); see [`append_c_str`]. No allocation.
    fn bio_append_attr_str(&self, bp: &mut Self::Bio, suffix: &str) -> Result<(), Errno>;
    /// `g_clone_bio(parent)` with done set to the core's child done. On
    /// allocation failure the parent is handed back.
    fn clone_bio(&self, parent: Self::Bio) -> Result<Self::Bio, Self::Bio>;
    /// `g_io_request(child, cp)`.
    fn io_request(&self, child: Self::Bio, cp: Self::Consumer);
    /// `g_io_deliver(bp, error)`: completes a bio sent to our provider.
    fn io_deliver(&self, bp: Self::Bio, error: Errno);
    /// `g_std_done(child)`: folds the child into its parent (first error
    /// wins) and completes the parent after its last child.
    fn std_done(&self, child: Self::Bio);
    /// `g_destroy_bio(child)` and `parent->bio_children--`: forgets a failed
    /// child so the parent can be sent again. Returns the parent.
    fn retire_child(&self, child: Self::Bio) -> Self::Bio;

    // ---- events, worker, sleep ------------------------------------------
    /// `g_post_event(func, arg, M_NOWAIT)`: runs `f` later on the event
    /// thread with the topology lock held. Callable from done.
    ///
    /// Generic rather than boxed so that the platform, not the core, stores
    /// the closure, and does it with an allocation that can fail: a box
    /// made by the core would use the panicking global allocator (a kernel
    /// panic when memory runs out in done). Out of memory is
    /// `Err(ENOMEM)`, and `f` is dropped without running, as it is on any
    /// other error.
    fn post_event<F: FnOnce(&Self) + Send + 'static>(&self, f: F) -> Result<(), Errno>;
    /// `g_post_event(func, arg, M_WAITOK)`: as [`Platform::post_event`],
    /// but waits for memory instead of failing, so in the kernel it always
    /// queues `f`. It may sleep: call it only where sleeping is allowed
    /// (ctlreq, orphan, access, events, the worker: the topology lock, an
    /// sx, may be held), never from start or done and never with a mutex
    /// held. An error (none in the kernel) drops `f` unrun, as
    /// [`Platform::post_event`] does.
    ///
    /// The default is [`Platform::post_event`], right for a platform whose
    /// posts never fail for want of memory.
    fn post_event_sleeping<F: FnOnce(&Self) + Send + 'static>(&self, f: F) -> Result<(), Errno> {
        self.post_event(f)
    }
    /// A mutex with a sleep channel (`mtx_init`).
    fn new_wait_queue(&self, name: &'static str) -> Result<Self::Wq, Errno>;
    /// Starts the failover worker (`kproc_create`): it must call
    /// [`crate::worker::Worker::run`] (or, under a deterministic scheduler,
    /// step [`crate::worker::Worker::process_one`]).
    fn start_worker(&self, w: Arc<crate::worker::Worker<Self>>) -> Result<(), Errno>;
    /// Stops the worker after [`crate::worker::Worker::request_stop`] and
    /// waits until it has drained its queue and exited.
    fn join_worker(&self, w: &Arc<crate::worker::Worker<Self>>);
}

/// Appends `suffix` to the NUL-terminated string at the start of `buf`, in
/// place, for [`Platform::bio_append_attr_str`]. Returns the length of the
/// new string with its NUL. Unlike `strlcat`, which would keep what fits,
/// a suffix that does not fit whole changes nothing (EFAULT, GEOM's error
/// for an attribute buffer that is too small); EINVAL when `buf` holds no
/// NUL or `suffix` does (C would see a shorter string).
pub fn append_c_str(buf: &mut [u8], suffix: &str) -> Result<usize, Errno> {
    let add = suffix.as_bytes();
    if add.contains(&0) {
        return Err(EINVAL);
    }
    let end = buf.iter().position(|&b| b == 0).ok_or(EINVAL)?;
    let used = end + add.len() + 1;
    if used > buf.len() {
        return Err(EFAULT);
    }
    buf[end..end + add.len()].copy_from_slice(add);
    buf[used - 1] = 0;
    Ok(used)
}

/// Writes one console line with the administrators' prefix.
#[macro_export]
macro_rules! mp_log {
    ($plat:expr, $($arg:tt)*) => {
        $crate::platform::Platform::log($plat, format_args!("GEOM_MULTIPATH: {}", format_args!($($arg)*)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_c_str_appends_in_place() {
        let mut b = *b"ab\0\0\0\0\0";
        assert_eq!(append_c_str(&mut b, "/mp"), Ok(6));
        assert_eq!(&b, b"ab/mp\0\0");
        // Exactly fits: string, suffix and NUL fill the buffer.
        let mut b = *b"ab\0xxx";
        assert_eq!(append_c_str(&mut b, "/m"), Ok(5));
        assert_eq!(&b, b"ab/m\0x");
        // The empty suffix changes nothing and reports the string's size.
        let mut b = *b"ab\0";
        assert_eq!(append_c_str(&mut b, ""), Ok(3));
    }

    #[test]
    fn append_c_str_refuses_without_touching_the_buffer() {
        // One byte short: nothing is written (strlcat would write "/m").
        let mut b = *b"ab\0\0\0";
        assert_eq!(append_c_str(&mut b, "/mp"), Err(EFAULT));
        assert_eq!(&b, b"ab\0\0\0");
        // No terminated string in the buffer.
        let mut b = *b"abcd";
        assert_eq!(append_c_str(&mut b, "/mp"), Err(EINVAL));
        assert_eq!(&b, b"abcd");
        let mut b: [u8; 0] = [];
        assert_eq!(append_c_str(&mut b, ""), Err(EINVAL));
        // A NUL in the suffix.
        let mut b = *b"ab\0\0\0\0\0";
        assert_eq!(append_c_str(&mut b, "/\0p"), Err(EINVAL));
        assert_eq!(&b, b"ab\0\0\0\0\0");
    }
}
