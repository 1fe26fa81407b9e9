//! `Platform::cpu_hint` in the kernel, without `curcpu`.
//!
//! `curcpu` is a load relative to the per-CPU segment (`%gs` on amd64),
//! which the module would need the machine-dependent `PCPU_GET` for; it
//! only has to tell apart threads that issue bios at the same moment, so
//! that they count themselves on different cache lines of the path table
//! (see [`crate::path::LANES`]). The running thread's kernel stack does
//! that: every thread has its own (`KSTACK_PAGES`, 16 KiB on amd64), and
//! the lane a bio took is recorded in the bio, so a thread that changes
//! lane between start and done, or two threads that share one, cost a
//! shared cache line, never a wrong count.

/// Bytes per kernel stack region the hint tells apart (16 KiB).
const STACK_SHIFT: u32 = 14;

/// A small number that differs between threads running at once: their
/// kernel stacks' 16 KiB region, mixed so that neighbouring stacks land
/// on different lanes. No memory access, no lock.
#[inline]
pub(crate) fn stack_hint() -> usize {
    let probe = 0u8;
    // The address of a local: somewhere in the running thread's stack.
    let addr = core::hint::black_box(&probe) as *const u8 as usize;
    hint_of(addr)
}

/// The hint for stack address `addr`: its region, through a
/// multiplicative hash (Fibonacci hashing), top byte.
fn hint_of(addr: usize) -> usize {
    const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;
    let region = (addr >> STACK_SHIFT) as u64;
    (region.wrapping_mul(GOLDEN) >> 56) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::LANES;

    #[test]
    fn one_stack_region_one_hint() {
        let base = 0xffff_fe00_1234_0000usize & !((1 << STACK_SHIFT) - 1);
        let h = hint_of(base);
        for off in [0, 8, 4096, (1 << STACK_SHIFT) - 1] {
            assert_eq!(hint_of(base + off), h);
        }
    }

    /// Consecutive kernel stacks (one every 5 pages: 4 of stack, 1 guard)
    /// spread over every lane, none taking more than half of them.
    #[test]
    fn neighbouring_stacks_spread_over_the_lanes() {
        let mut per_lane = [0usize; LANES];
        let n = 256;
        for i in 0..n {
            let addr = 0xffff_fe00_0000_0000usize + i * 5 * 4096;
            per_lane[hint_of(addr) % LANES] += 1;
        }
        assert!(per_lane.iter().all(|&c| c > 0 && c < n / 2), "{per_lane:?}");
    }

    /// Two threads running at once (each with a stack of its own) get
    /// different hints; one thread gets the same one at the same depth.
    #[test]
    fn threads_get_their_own_hint() {
        let here = stack_hint();
        assert_eq!(here, stack_hint());
        let other = std::thread::spawn(stack_hint).join().expect("thread");
        assert_ne!(here, other);
    }
}
