//! Events: a closure of the core's, posted to GEOM's event thread
//! (`g_post_event`). The closure travels in a node of its own exact
//! layout; the handler GEOM calls once moves it out, frees the node, and
//! runs it (or only drops it when cancelled).
//!
//! Two ways to post, as FreeBSD's classes post with either flag:
//! - [`post`], `M_NOWAIT` throughout (node and `g_post_event`): for start
//!   and done, where sleeping is forbidden; out of memory is ENOMEM.
//! - [`post_sleeping`], `M_WAITOK` throughout: the node comes from the
//!   global allocator (`gmr_rs_alloc_sleeping`) and the event from
//!   `gmr_post_event_sleeping`; it waits for memory and does not fail, and
//!   is only for contexts that may sleep. `check-ko`'s `io-no-sleep` rule
//!   proves start and done reach neither.

use core::alloc::Layout;
use core::ffi::c_void;
use core::ptr::NonNull;

use freebsd_kpi as kpi;

use alloc::boxed::Box;

use super::mem::malloc_nowait;
use super::{KernelPlatform, PLATFORM};
use crate::platform::{Errno, ENOMEM};

/// Queues `f` to run on GEOM's event thread with the topology lock held
/// ([`crate::platform::Platform::post_event`]). Never sleeps: usable in
/// start and done.
pub(super) fn post<F: FnOnce(&KernelPlatform) + Send + 'static>(f: F) -> Result<(), Errno> {
    // The closure goes into a node of exactly its own layout, taken from
    // malloc(9) with M_NOWAIT (malloc_nowait): out of memory is ENOMEM
    // here, never the global allocator's panic or sleep.
    let p = event_node_new::<F>().ok_or(ENOMEM)?;
    // SAFETY: `p` is valid for writes and aligned for an F
    // (event_node_new), and holds no value yet that this would leak.
    unsafe { p.as_ptr().write(f) };
    // SAFETY: run_event::<F> is the handler for exactly this node type;
    // g_post_event(M_NOWAIT) never sleeps, so this is allowed in done;
    // once queued, GEOM calls the handler with `p` exactly once (run or
    // cancelled), and the handler takes the node over.
    let e = unsafe { kpi::gmr_post_event(Some(run_event::<F>), p.as_ptr().cast()) };
    if e != 0 {
        // SAFETY: the event was not queued, so the handler will never
        // see `p`: the node and the F written into it are still ours,
        // taken back once here (and the closure dropped unrun).
        drop(unsafe { event_node_take(p) });
        return Err(e);
    }
    Ok(())
}

/// Queues `f` as [`post`] does, but with `M_WAITOK`
/// ([`crate::platform::Platform::post_event_sleeping`]): it may sleep for
/// memory, and then does not fail. Never from start or done, never with a
/// mutex held.
pub(super) fn post_sleeping<F: FnOnce(&KernelPlatform) + Send + 'static>(
    f: F,
) -> Result<(), Errno> {
    // The global allocator: malloc(9) with M_WAITOK (rt.rs), never NULL.
    let p = Box::into_raw(Box::new(f));
    // SAFETY: run_boxed_event::<F> is the handler for exactly this node
    // type; g_post_event(M_WAITOK) may sleep, which every caller allows
    // (function contract); once queued, GEOM calls the handler with `p`
    // exactly once (run or cancelled), and the handler takes the box over.
    let e = unsafe { kpi::gmr_post_event_sleeping(Some(run_boxed_event::<F>), p.cast()) };
    if e != 0 {
        // SAFETY: the event was not queued, so the handler will never see
        // `p`: the box is still ours, taken back once here (and the closure
        // dropped unrun).
        drop(unsafe { Box::from_raw(p) });
        return Err(e);
    }
    Ok(())
}

/// Allocates an uninitialised node for one event closure of type `F`, with
/// `M_NOWAIT` (events are posted from done too); `None` when memory is
/// short. A zero-sized `F` needs no memory: its node is a dangling,
/// well-aligned pointer, which is all a zero-sized read or write needs.
fn event_node_new<F>() -> Option<NonNull<F>> {
    let layout = Layout::new::<F>();
    if layout.size() == 0 {
        return Some(NonNull::dangling());
    }
    malloc_nowait(layout).map(NonNull::cast)
}

/// Moves the closure out of its node and frees the node.
///
/// # Safety
/// `p` came from [`event_node_new::<F>`], an F was written into it, and this
/// is the one call made with it: the F is moved out and the node freed once.
unsafe fn event_node_take<F>(p: NonNull<F>) -> F {
    // SAFETY: per the contract, `p` holds an initialised F, read once.
    let f = unsafe { p.as_ptr().read() };
    if Layout::new::<F>().size() != 0 {
        // SAFETY: `p` came from malloc_nowait (event_node_new with the same
        // F, non-zero size); its value has been moved out and it is not
        // used again.
        unsafe { kpi::gmr_free(p.as_ptr().cast()) };
    }
    f
}

/// The event handler [`post`] queues for a closure of type
/// `F` (one instance per closure type): it moves the closure out of its
/// node, frees the node, then runs the closure, or only drops it when GEOM
/// cancels the event. Called by GEOM's event thread, topology lock held.
///
/// # Safety
/// `arg` is a node `post_event::<F>` queued, passed here once (GEOM calls an
/// event's handler exactly once).
unsafe extern "C" fn run_event<F: FnOnce(&KernelPlatform) + Send + 'static>(
    arg: *mut c_void,
    cancelled: i32,
) {
    let Some(p) = NonNull::new(arg.cast::<F>()) else {
        return;
    };
    // SAFETY: `p` is the node post_event::<F> allocated, filled and gave to
    // this event (function contract), which GEOM hands over once; the node
    // is freed here, before the closure runs.
    let f = unsafe { event_node_take(p) };
    if cancelled == 0 {
        f(&PLATFORM);
    }
}
const _: kpi::gmr_event_fn_t = Some(run_event::<fn(&KernelPlatform)>);

/// The event handler [`post_sleeping`] queues for a closure of type `F`:
/// as [`run_event`], for a node that is a `Box<F>`.
///
/// # Safety
/// `arg` is a `Box<F>` that `post_sleeping::<F>` leaked and queued, passed
/// here once (GEOM calls an event's handler exactly once).
unsafe extern "C" fn run_boxed_event<F: FnOnce(&KernelPlatform) + Send + 'static>(
    arg: *mut c_void,
    cancelled: i32,
) {
    if arg.is_null() {
        return;
    }
    // SAFETY: `arg` is the box post_sleeping::<F> leaked and gave to this
    // event (function contract), handed over once; it is freed here, before
    // the closure runs.
    let f = *unsafe { Box::from_raw(arg.cast::<F>()) };
    if cancelled == 0 {
        f(&PLATFORM);
    }
}
const _: kpi::gmr_event_fn_t = Some(run_boxed_event::<fn(&KernelPlatform)>);
