//! When Linux's MAP_32BIT window ([1 GiB, 2 GiB)) is full, modules and
//! low_alloc blocks still land below 2 GiB, in a free gap found in
//! /proc/self/maps. Its own test binary: it fills the window of this process
//! with inaccessible reservations (which cost no memory).

mod common;

use common::*;

const WINDOW: (usize, usize) = (1 << 30, 1 << 31);

fn gaps_in_window() -> Vec<(usize, usize)> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mut used: Vec<(usize, usize)> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.split_once('-'))
        .map(|(a, b)| {
            (
                usize::from_str_radix(a, 16).unwrap(),
                usize::from_str_radix(b, 16).unwrap(),
            )
        })
        .collect();
    used.sort();
    let mut gaps = Vec::new();
    let mut at = WINDOW.0;
    for (a, b) in used.into_iter().chain([(WINDOW.1, WINDOW.1)]) {
        let a = a.min(WINDOW.1);
        if a > at {
            gaps.push((at, a - at));
        }
        at = at.max(b);
        if at >= WINDOW.1 {
            break;
        }
    }
    gaps
}

fn reserve_at(addr: usize, len: usize) -> bool {
    // SAFETY: an anonymous, inaccessible reservation exactly at a free
    // range; MAP_FIXED_NOREPLACE fails instead of replacing anything.
    let p = unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE
                | libc::MAP_ANONYMOUS
                | libc::MAP_FIXED_NOREPLACE
                | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    p != libc::MAP_FAILED && p as usize == addr
}

#[test]
fn loads_below_the_map_32bit_window_when_it_is_full() {
    let ko = c_module(
        "low_memory",
        "int fixture_value = 5;\nint fixture_get(void);\nint fixture_get(void) { return (fixture_value); }\n",
        1500068,
    );
    let mut held = Vec::new();
    for _ in 0..4 {
        for (a, len) in gaps_in_window() {
            if reserve_at(a, len) {
                held.push((a, len));
            }
        }
    }
    assert!(gaps_in_window().is_empty(), "window filled");
    let m = kld::load(&ko, &Table(vec![]), &opts(1500068)).unwrap_or_else(|e| panic!("{e}"));
    let (start, end) = m.range();
    assert!(
        end <= WINDOW.0,
        "{start:#x}..{end:#x}: below the full MAP_32BIT window"
    );
    let f = m.symbol("fixture_get").unwrap();
    // SAFETY: the module's function, `int (void)`, reading its own data.
    let get: extern "C" fn() -> i32 = unsafe { std::mem::transmute(f) };
    assert_eq!(get(), 5);
    m.unmap();
    let p = kld::low_alloc(3 << 20, 8).unwrap() as usize;
    assert!(p + (3 << 20) <= WINDOW.0);
    for (p, len) in held {
        // SAFETY: our own reservations, unused.
        unsafe { libc::munmap(p as *mut libc::c_void, len) };
    }
}
