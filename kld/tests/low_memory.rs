//! When Linux's MAP_32BIT window is full, modules and low_alloc blocks
//! still land below 2 GiB (in a free gap found in /proc/self/maps). Its own test binary: it fills
//! the window of this process (with inaccessible reservations, which cost
//! no memory).

mod common;

use common::*;

fn reserve(len: usize) -> Option<usize> {
    // SAFETY: an anonymous, inaccessible reservation where the kernel
    // chooses; nothing else is touched.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    (p != libc::MAP_FAILED).then_some(p as usize)
}

#[test]
fn loads_below_the_map_32bit_window_when_it_is_full() {
    let ko = c_module(
        "low_memory",
        "int fixture_value = 5;\nint fixture_get(void);\nint fixture_get(void) { return (fixture_value); }\n",
        1500068,
    );
    let mut held = Vec::new();
    for len in [64 << 20, 1 << 20, 4096] {
        while let Some(p) = reserve(len) {
            held.push((p, len));
        }
    }
    assert!(!held.is_empty());
    assert!(reserve(4096).is_none(), "MAP_32BIT gives nothing more");
    let m = kld::load(&ko, &Table(vec![]), &opts(1500068)).unwrap_or_else(|e| panic!("{e}"));
    let (start, end) = m.range();
    assert!(end <= 1 << 31, "{start:#x}..{end:#x}: below 2 GiB");
    let f = m.symbol("fixture_get").unwrap();
    // SAFETY: the module's function, `int (void)`, reading its own data.
    let get: extern "C" fn() -> i32 = unsafe { std::mem::transmute(f) };
    assert_eq!(get(), 5);
    m.unmap();
    let p = kld::low_alloc(3 << 20, 8).unwrap() as usize;
    assert!(p + (3 << 20) <= 1 << 31);
    for (p, len) in held {
        // SAFETY: our own reservations, unused.
        unsafe { libc::munmap(p as *mut libc::c_void, len) };
    }
}
