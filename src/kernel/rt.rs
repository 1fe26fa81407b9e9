//! The kernel runtime of the Rust side: the global allocator over malloc(9)
//! and the panic handler over panic(9). Only on the kernel target
//! (`target_os = "none"`), so host builds with `--features kernel` keep std's.
//!
//! ## Why the global allocator sleeps (`M_WAITOK`)
//!
//! Rust's collections (`Vec`, `String`, `Arc`, ...) treat a NULL from the
//! allocator as fatal (`handle_alloc_error`, a panic, here panic(9)). With
//! `M_NOWAIT` everywhere, a path failing while memory is short could take the
//! machine down. So the global allocator asks malloc(9) for `M_WAITOK`, which
//! never returns NULL, as the stock class allocates in taste and ctlreq.
//!
//! That is only allowed where the calling thread may sleep. A per-call-site
//! "may sleep" flag read here would need to know the current thread, which
//! this module cannot ask (`curthread` is an inlined `%gs` access, which the
//! module must not contain, and no KPI function returns it), and a global
//! flag would be wrong for every other CPU. The rule is therefore by
//! construction, and checked:
//!
//! - Every entry point that reaches the global allocator runs where sleeping
//!   is allowed: taste, ctlreq, orphan, resize, access, dumpconf and events
//!   (GEOM's event thread or a g_access caller, topology lock held: an sx),
//!   init and fini (module load and unload), and the failover worker kproc.
//! - start and done allocate nothing: the failed-bio queue links the bio
//!   itself (`wq.rs`), log lines are formatted into a stack buffer, path
//!   names are not read there, and the one node they may need (an event, to
//!   tear down a drained path) comes from [`super::mem::malloc_nowait`], a
//!   fallible `M_NOWAIT` allocation whose failure is an errno (ENOMEM) and a
//!   console line, never a panic.
//! - `check-ko`'s rule `io-no-sleep` walks the module's call graph
//!   from the start and done trampolines and fails if it reaches
//!   [`gmr_rs_alloc_sleeping`], the one function that calls malloc(9) with
//!   `M_WAITOK` (kept out of line for that purpose).
//!
//! The only NULL left is an alignment malloc(9) cannot give (over a page),
//! which the core never asks for: that is a bug, and panics as one.

use core::alloc::{GlobalAlloc, Layout};
use core::panic::PanicInfo;

use freebsd_kpi as kpi;

use super::text::LineBuf;

/// malloc(9) with the module's malloc type and `M_WAITOK`; see the module
/// comment for where it may be called.
struct KernelAlloc;

/// The global allocator's one call into malloc(9), `M_WAITOK` (plus
/// `M_ZERO` when asked). Never inlined, and named, so the audit can prove
/// that start and done never reach it.
#[inline(never)]
#[export_name = "gmr_rs_alloc_sleeping"]
extern "C" fn gmr_rs_alloc_sleeping(size: usize, align: usize, zero: bool) -> *mut u8 {
    let mut flags = kpi::GMR_M_WAITOK;
    if zero {
        flags |= kpi::GMR_M_ZERO;
    }
    // SAFETY: M_WAITOK malloc(9) is allowed in every context that reaches
    // the global allocator (module comment; checked by check-ko).
    unsafe { super::mem::kmalloc(size, align, flags) }
}

// SAFETY: kmalloc returns NULL or a fresh block of at least `size` bytes
// aligned to `align` (malloc(9)/malloc_aligned(9) guarantees, or refusal);
// dealloc() frees only such blocks, with free(9), which accepts both kinds.
unsafe impl GlobalAlloc for KernelAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        gmr_rs_alloc_sleeping(layout.size(), layout.align(), false)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        gmr_rs_alloc_sleeping(layout.size(), layout.align(), true)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from alloc/alloc_zeroed above (GlobalAlloc's
        // contract), i.e. from malloc(9) or malloc_aligned(9).
        unsafe { kpi::gmr_free(ptr.cast()) }
    }
}

#[global_allocator]
static ALLOCATOR: KernelAlloc = KernelAlloc;

/// A Rust panic is a kernel bug: report it through panic(9) with the message
/// and location (formatted into a stack buffer: no allocation here).
#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    let mut msg = LineBuf::<384>::new();
    msg.write_args(format_args!("GEOM_MULTIPATH: Rust panic: {}", info));
    let b = msg.as_bytes();
    // SAFETY: `b` is readable for the call; panic(9) copies it and does not
    // return.
    unsafe { kpi::gmr_panic(b.as_ptr().cast(), b.len()) }
}
