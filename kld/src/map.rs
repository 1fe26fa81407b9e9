//! Memory below 2 GiB: the module's one mapping, and the arena behind
//! [`crate::low_alloc`].
//!
//! The module is built with `-mcmodel=kernel`: it takes addresses with
//! sign-extended 32-bit immediates (R_X86_64_32S) and calls with 32-bit
//! displacements (PC32/PLT32). FreeBSD places modules next to the kernel in
//! the top 2 GiB of the address space; a Linux process cannot map there, but
//! the bottom 2 GiB works the same for both (a positive 32-bit value is its
//! own sign extension), so everything the module reaches with 32 bits lives
//! in `MAP_32BIT` memory.

use crate::error::{LoadError, ENOMEM};

/// Page size of x86-64.
pub const PAGE: usize = 4096;
/// Everything must end below this address.
pub const LOW_LIMIT: usize = 1 << 31;

/// Rounds `v` up to a multiple of `align` (a power of two), None on overflow.
pub fn align_up(v: usize, align: usize) -> Option<usize> {
    let mask = align.max(1) - 1;
    v.checked_add(mask).map(|x| x & !mask)
}

/// Access rights of a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prot {
    /// Read only.
    R,
    /// Read and execute.
    Rx,
    /// Read and write.
    Rw,
    /// Read, write and execute (a section flagged both SHF_WRITE and
    /// SHF_EXECINSTR, which the kernel also maps so).
    Rwx,
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod imp {
    use super::*;

    fn os_err(what: &str) -> LoadError {
        let e = std::io::Error::last_os_error();
        LoadError::Map {
            reason: format!("{what}: {e}"),
            errno: e.raw_os_error().unwrap_or(ENOMEM),
        }
    }

    /// Lowest address tried when MAP_32BIT's window is full.
    const FALLBACK_FLOOR: usize = 0x1000_0000;

    fn mmap_at(hint: usize, len: usize, prot: i32, flags: i32) -> Option<usize> {
        // SAFETY: an anonymous private mapping either where the kernel
        // chooses (MAP_32BIT) or at `hint` with MAP_FIXED_NOREPLACE, which
        // fails rather than replace an existing mapping: no existing memory
        // is touched. The result is checked.
        let p = unsafe {
            libc::mmap(
                hint as *mut libc::c_void,
                len,
                prot,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | flags,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        let base = p as usize;
        if base.checked_add(len).is_none_or(|end| end > LOW_LIMIT)
            || (flags & libc::MAP_FIXED_NOREPLACE != 0 && base != hint)
        {
            // SAFETY: the mapping was just made here and nothing uses it.
            unsafe { libc::munmap(p, len) };
            return None;
        }
        Some(base)
    }

    /// Gaps of at least `len` bytes in [FALLBACK_FLOOR, LOW_LIMIT), from
    /// /proc/self/maps.
    fn low_gaps(len: usize) -> Vec<usize> {
        let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
            return Vec::new();
        };
        let mut used: Vec<(usize, usize)> = maps
            .lines()
            .filter_map(|l| l.split_whitespace().next()?.split_once('-'))
            .filter_map(|(a, b)| {
                Some((
                    usize::from_str_radix(a, 16).ok()?,
                    usize::from_str_radix(b, 16).ok()?,
                ))
            })
            .collect();
        used.sort();
        let mut gaps = Vec::new();
        let mut at = FALLBACK_FLOOR;
        for (a, b) in used.into_iter().chain([(LOW_LIMIT, LOW_LIMIT)]) {
            if a > at && a - at >= len && at + len <= LOW_LIMIT {
                gaps.push(at);
            }
            at = at.max(b);
            if at >= LOW_LIMIT {
                break;
            }
        }
        gaps
    }

    /// Maps `len` bytes (a multiple of the page size) of zeroed memory in
    /// the low 2 GiB, readable and writable (and executable if `exec`):
    /// with MAP_32BIT (Linux's window of [1 GiB, 2 GiB)), or, once that is
    /// full, in a free gap of [256 MiB, 2 GiB) with MAP_FIXED_NOREPLACE.
    pub fn map_low(len: usize, exec: bool) -> Result<usize, LoadError> {
        let mut prot = libc::PROT_READ | libc::PROT_WRITE;
        if exec {
            prot |= libc::PROT_EXEC;
        }
        if let Some(base) = mmap_at(0, len, prot, libc::MAP_32BIT) {
            return Ok(base);
        }
        let first = std::io::Error::last_os_error();
        for _ in 0..4 {
            for hint in low_gaps(len) {
                if let Some(base) = mmap_at(hint, len, prot, libc::MAP_FIXED_NOREPLACE) {
                    return Ok(base);
                }
            }
        }
        Err(LoadError::Map {
            reason: format!("no room for {len:#x} bytes below 2 GiB (MAP_32BIT: {first})"),
            errno: ENOMEM,
        })
    }

    /// Unmaps a range made by [`map_low`].
    ///
    /// # Safety
    /// Nothing may use the range afterwards.
    pub unsafe fn unmap(base: usize, len: usize) {
        // SAFETY: the caller owns the range and promises no further use.
        unsafe { libc::munmap(base as *mut libc::c_void, len) };
    }

    /// Sets the access rights of a page-aligned range of a mapping.
    pub fn protect(base: usize, len: usize, prot: Prot) -> Result<(), LoadError> {
        if len == 0 {
            return Ok(());
        }
        let p = match prot {
            Prot::R => libc::PROT_READ,
            Prot::Rx => libc::PROT_READ | libc::PROT_EXEC,
            Prot::Rw => libc::PROT_READ | libc::PROT_WRITE,
            Prot::Rwx => libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
        };
        // SAFETY: the range is part of a mapping this crate made and owns;
        // changing its rights does not invalidate any Rust reference (the
        // loader holds none into module memory across this call).
        let r = unsafe { libc::mprotect(base as *mut libc::c_void, len, p) };
        if r != 0 {
            return Err(os_err(&format!("mprotect({base:#x}, {len:#x})")));
        }
        Ok(())
    }

    /// Whether any page of the range is mapped in this process.
    pub fn any_mapped(base: usize, len: usize) -> bool {
        let start = base & !(PAGE - 1);
        let end = base.saturating_add(len);
        let mut page = start;
        let mut vec = [0u8; 1];
        while page < end {
            // SAFETY: mincore only reports on the page; ENOMEM means the
            // page is not mapped, which is what is being asked.
            let r = unsafe { libc::mincore(page as *mut libc::c_void, PAGE, vec.as_mut_ptr()) };
            if r == 0 {
                return true;
            }
            page += PAGE;
        }
        false
    }
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
mod imp {
    use super::*;

    pub fn map_low(_len: usize, _exec: bool) -> Result<usize, LoadError> {
        Err(LoadError::UnsupportedHost)
    }
    /// # Safety
    /// Nothing to unmap here: never mapped anything.
    pub unsafe fn unmap(_base: usize, _len: usize) {}
    pub fn protect(_base: usize, _len: usize, _prot: Prot) -> Result<(), LoadError> {
        Err(LoadError::UnsupportedHost)
    }
    pub fn any_mapped(_base: usize, _len: usize) -> bool {
        false
    }
}

pub use imp::{any_mapped, map_low, protect, unmap};

/// The arena behind `low_alloc`: chunks of `MAP_32BIT` memory handed out by
/// a bump pointer, with freed blocks kept for reuse.
mod arena {
    use super::*;
    use std::sync::Mutex;

    const CHUNK: usize = 1 << 20;

    struct Arena {
        cur: usize,
        end: usize,
        free: Vec<(usize, usize)>,
    }

    static ARENA: Mutex<Arena> = Mutex::new(Arena {
        cur: 0,
        end: 0,
        free: Vec::new(),
    });

    pub fn alloc(size: usize, align: usize) -> Result<*mut u8, LoadError> {
        if !align.is_power_of_two() {
            return Err(LoadError::Map {
                reason: format!("low_alloc: alignment {align} is not a power of two"),
                errno: libc_einval(),
            });
        }
        let size = size.max(1);
        let mut a = ARENA.lock().unwrap_or_else(|p| p.into_inner());
        // A freed block that fits, taken whole.
        if let Some(i) = a
            .free
            .iter()
            .position(|&(p, len)| len >= size && p % align == 0)
        {
            let (p, len) = a.free.swap_remove(i);
            // SAFETY: the block is inside arena memory, unused since it was
            // freed, and `len` bytes long.
            unsafe { std::ptr::write_bytes(p as *mut u8, 0, len) };
            return Ok(p as *mut u8);
        }
        if size > CHUNK / 4 || align > PAGE {
            // Big blocks get their own mapping.
            let len = align_up(size, PAGE).ok_or_else(too_big)?;
            return Ok(map_low(len, true)? as *mut u8);
        }
        let start = match align_up(a.cur, align) {
            Some(s) if a.cur != 0 && s.checked_add(size).is_some_and(|e| e <= a.end) => s,
            _ => {
                let base = map_low(CHUNK, true)?;
                a.cur = base;
                a.end = base + CHUNK;
                base
            }
        };
        a.cur = start + size;
        Ok(start as *mut u8)
    }

    pub fn free(ptr: *mut u8, size: usize) {
        if ptr.is_null() {
            return;
        }
        let mut a = ARENA.lock().unwrap_or_else(|p| p.into_inner());
        a.free.push((ptr as usize, size.max(1)));
    }

    fn too_big() -> LoadError {
        LoadError::Map {
            reason: "low_alloc: size overflows".to_string(),
            errno: ENOMEM,
        }
    }

    fn libc_einval() -> i32 {
        22
    }
}

pub use arena::{alloc as low_alloc, free as low_free};
