//! The kernel runtime of the Rust side: the global allocator over malloc(9)
//! and the panic handler over panic(9). Only on the kernel target
//! (`target_os = "none"`), so host builds with `--features kernel` keep std's.

use core::alloc::{GlobalAlloc, Layout};
use core::panic::PanicInfo;

use freebsd_kpi as kpi;

use super::text::LineBuf;

/// malloc(9) with the module's malloc type, always M_NOWAIT: the core
/// allocates in start and done, where sleeping is forbidden, so an allocation
/// may fail and returns NULL (collections report it through `try_reserve`).
struct KernelAlloc;

/// Largest alignment plain malloc(9) is relied on for (shim.h). malloc(9)
/// promises storage "suitably aligned for any type"; 8 is what every amd64
/// kernel allocator path gives without question, and bigger ones go through
/// malloc_aligned(9).
const PLAIN_ALIGN: usize = kpi::GMR_MALLOC_ALIGN as usize;

impl KernelAlloc {
    fn allocate(layout: Layout, flags: u32) -> *mut u8 {
        let size = layout.size().max(1);
        let align = layout.align();
        let p = if align <= PLAIN_ALIGN {
            // SAFETY: malloc(9) with M_NOWAIT may be called from any context
            // that may take a mutex, which covers every caller of the core.
            unsafe { kpi::gmr_malloc(size, flags as i32) }
        } else if align <= kpi::GMR_MALLOC_MAX_ALIGN as usize {
            // SAFETY: as above; `align` is a power of two (Layout guarantees
            // it) no larger than malloc_aligned(9) accepts.
            unsafe { kpi::gmr_malloc_aligned(size, align, flags as i32) }
        } else {
            // malloc(9) cannot give more than page alignment: refuse.
            core::ptr::null_mut()
        };
        p.cast()
    }
}

// SAFETY: allocate() returns NULL or a fresh block of at least `size` bytes
// aligned to `align` (malloc(9)/malloc_aligned(9) guarantees, or refusal);
// dealloc() frees only such blocks, with free(9), which accepts both kinds.
unsafe impl GlobalAlloc for KernelAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::allocate(layout, 0)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::allocate(layout, kpi::GMR_M_ZERO)
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
