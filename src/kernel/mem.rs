//! Kernel memory: malloc(9) with the alignment a Rust layout asks for. The
//! global allocator (`rt`, sleeping) and the event nodes ([`super::events`],
//! never sleeping) both allocate here.

use core::alloc::Layout;
use core::ptr::NonNull;

use freebsd_kpi as kpi;

/// Largest alignment plain malloc(9) is relied on for (shim.h). malloc(9)
/// promises storage "suitably aligned for any type"; 8 is what every amd64
/// kernel allocator path gives without question, and bigger ones go through
/// malloc_aligned(9).
const PLAIN_ALIGN: usize = kpi::GMR_MALLOC_ALIGN as usize;

/// malloc(9) or malloc_aligned(9) of `size` bytes (at least 1) aligned to
/// `align`, with the shim's `GMR_M_*` flags; NULL when refused (an
/// alignment over a page) or, without `GMR_M_WAITOK`, when memory is short.
/// Freed with `gmr_free`.
///
/// # Safety
/// With `GMR_M_WAITOK`, the calling thread may sleep (not start or done).
/// `align` is a power of two.
pub(super) unsafe fn kmalloc(size: usize, align: usize, flags: u32) -> *mut u8 {
    let size = size.max(1);
    let p = if align <= PLAIN_ALIGN {
        // SAFETY: the flags suit the context (function contract).
        unsafe { kpi::gmr_malloc(size, flags as i32) }
    } else if align <= kpi::GMR_MALLOC_MAX_ALIGN as usize {
        // SAFETY: as above; `align` is a power of two no larger than
        // malloc_aligned(9) accepts.
        unsafe { kpi::gmr_malloc_aligned(size, align, flags as i32) }
    } else {
        // malloc(9) cannot give more than page alignment: refuse.
        core::ptr::null_mut()
    };
    p.cast()
}

/// A fallible `M_NOWAIT` allocation for `layout`, usable in start and done:
/// NULL when memory is short, never a panic. Free it with `gmr_free`.
pub(super) fn malloc_nowait(layout: Layout) -> Option<NonNull<u8>> {
    // SAFETY: without GMR_M_WAITOK malloc(9) never sleeps, so any context
    // that may take a mutex may call it; Layout alignments are powers of two.
    NonNull::new(unsafe { kmalloc(layout.size(), layout.align(), 0) })
}
