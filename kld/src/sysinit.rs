//! SYSINIT/SYSUNINIT entries and the order the kernel runs them in.
//!
//! FreeBSD 15's `struct sysinit` (`sys/kernel.h`) is
//! `{ enum sysinit_sub_id subsystem; enum sysinit_elem_order order;
//! STAILQ_ENTRY(sysinit) next; sysinit_cfunc_t func; const void *udata; }`:
//! subsystem at 0, order at 4, the list link at 8, func at 16, udata at 24.
//!
//! `linker_file_sysinit` (`kern_linker.c`) orders a file's `set_sysinit_set`
//! with an exchange sort by (subsystem, order) ascending, which is not
//! stable: among equal keys the result depends on the set's order, so this
//! module runs the same exchange sort rather than a stable sort.
//! `linker_file_sysuninit` runs the same sort descending on
//! `set_sysuninit_set`. Entries of subsystem SI_SUB_DUMMY (0) are skipped.

use crate::error::LoadError;
use crate::metadata::Mem;
use crate::SysInit;

/// SI_SUB_DUMMY: never run.
pub const SI_SUB_DUMMY: u32 = 0;

/// Reads the `struct sysinit` entries a set section points to, in set order.
pub fn decode(
    mem: &Mem<'_>,
    set: Option<(usize, u64)>,
    what: &str,
) -> Result<Vec<SysInit>, LoadError> {
    let Some((start, size)) = set else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for p in mem.pointers(start, size, what)? {
        out.push(SysInit {
            subsystem: mem.i32(p, "struct sysinit")? as u32,
            order: mem.i32(p.wrapping_add(4), "struct sysinit")? as u32,
            func: mem.u64(p.wrapping_add(16), "struct sysinit")? as usize,
            udata: mem.u64(p.wrapping_add(24), "struct sysinit")? as usize,
        });
    }
    Ok(out)
}

/// The kernel's exchange sort: for each position, swap in every later
/// entry that sorts before it. `before(a, b)` says a must run before b.
fn exchange_sort(v: &mut [SysInit], before: impl Fn(&SysInit, &SysInit) -> bool) {
    for i in 0..v.len() {
        for j in i + 1..v.len() {
            if before(&v[j], &v[i]) {
                v.swap(i, j);
            }
        }
    }
}

/// SYSINITs in the order `linker_file_sysinit` runs them.
pub fn run_order(mut v: Vec<SysInit>) -> Vec<SysInit> {
    // The kernel keeps (i, j) when i.sub < j.sub, or equal subsystems and
    // i.order <= j.order; it swaps otherwise.
    exchange_sort(&mut v, |j, i| {
        !(i.subsystem < j.subsystem || (i.subsystem == j.subsystem && i.order <= j.order))
    });
    v.retain(|s| s.subsystem != SI_SUB_DUMMY);
    v
}

/// SYSUNINITs in the order `linker_file_sysuninit` runs them.
pub fn unrun_order(mut v: Vec<SysInit>) -> Vec<SysInit> {
    exchange_sort(&mut v, |j, i| {
        !(i.subsystem > j.subsystem || (i.subsystem == j.subsystem && i.order >= j.order))
    });
    v.retain(|s| s.subsystem != SI_SUB_DUMMY);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(subsystem: u32, order: u32, udata: usize) -> SysInit {
        SysInit {
            subsystem,
            order,
            func: 0,
            udata,
        }
    }

    #[test]
    fn sorted_by_subsystem_then_order() {
        let v = run_order(vec![s(3, 1, 0), s(1, 5, 1), s(3, 0, 2), s(1, 2, 3)]);
        let keys: Vec<_> = v.iter().map(|x| (x.subsystem, x.order)).collect();
        assert_eq!(keys, [(1, 2), (1, 5), (3, 0), (3, 1)]);
        let u = unrun_order(vec![s(3, 1, 0), s(1, 5, 1), s(3, 0, 2), s(1, 2, 3)]);
        let keys: Vec<_> = u.iter().map(|x| (x.subsystem, x.order)).collect();
        assert_eq!(keys, [(3, 1), (3, 0), (1, 5), (1, 2)]);
    }

    #[test]
    fn equal_keys_follow_the_kernels_exchange_sort() {
        // [B1, B2, A]: the kernel swaps B1 and A, leaving [A, B2, B1].
        let v = run_order(vec![s(2, 0, 1), s(2, 0, 2), s(1, 0, 3)]);
        let ud: Vec<_> = v.iter().map(|x| x.udata).collect();
        assert_eq!(ud, [3, 2, 1]);
    }

    #[test]
    fn dummy_entries_are_skipped() {
        let v = run_order(vec![s(0, 0, 1), s(5, 0, 2)]);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].udata, 2);
    }
}
