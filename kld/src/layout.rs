//! Placing the loaded sections in one mapping.
//!
//! The kernel lays the sections out in file order in one run of pages and
//! then gives each page the union of the rights its sections need. Here the
//! sections are grouped by rights instead (executable, read-only, writable,
//! and the rare writable+executable), each group starting on a page, in file
//! order within a group: addresses differ from the kernel's, but every
//! section keeps its size and alignment, and each page gets exactly the
//! rights of its sections (text RX, rodata R, data RW). The import
//! trampolines follow the text, in the RX group.

use crate::elf::Object;
use crate::error::LoadError;
use crate::map::{self, align_up, Prot, PAGE};
use crate::symbols::TRAMPOLINE_SIZE;

/// Where everything goes.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Base of the mapping.
    pub base: usize,
    /// Its length (whole pages).
    pub len: usize,
    /// Address of each section, by section index (None if not loaded).
    pub addr: Vec<Option<usize>>,
    /// The rights of each page-aligned group: (start, len, prot).
    pub groups: Vec<(usize, usize, Prot)>,
    /// First trampoline slot.
    pub trampoline_base: usize,
    /// Number of trampoline slots.
    pub trampolines: usize,
}

fn prot_of(w: bool, x: bool) -> Prot {
    match (w, x) {
        (false, true) => Prot::Rx,
        (false, false) => Prot::R,
        (true, false) => Prot::Rw,
        (true, true) => Prot::Rwx,
    }
}

fn too_big(file: &str) -> LoadError {
    LoadError::BadFile {
        file: file.to_string(),
        freebsd: None,
        reason: "sections too large to map below 2 GiB".to_string(),
    }
}

/// Lays out the loaded sections plus `trampolines` trampoline slots, maps
/// the result below 2 GiB (readable and writable for now) and copies the
/// section contents in.
pub fn map_object(
    file: &str,
    bytes: &[u8],
    obj: &Object,
    trampolines: usize,
) -> Result<Layout, LoadError> {
    let mut offsets: Vec<Option<usize>> = vec![None; obj.sections.len()];
    let mut groups = Vec::new();
    let mut cursor = 0usize;
    let mut trampoline_off = 0usize;
    for prot in [Prot::Rx, Prot::R, Prot::Rw, Prot::Rwx] {
        let start = cursor;
        for (i, s) in obj.sections.iter().enumerate() {
            if !s.loaded || prot_of(s.writable(), s.executable()) != prot {
                continue;
            }
            let align = usize::try_from(s.align).map_err(|_| too_big(file))?;
            let size = usize::try_from(s.size).map_err(|_| too_big(file))?;
            let at = align_up(cursor, align).ok_or_else(|| too_big(file))?;
            offsets[i] = Some(at);
            cursor = at.checked_add(size).ok_or_else(|| too_big(file))?;
        }
        if prot == Prot::Rx {
            trampoline_off = align_up(cursor, TRAMPOLINE_SIZE).ok_or_else(|| too_big(file))?;
            cursor = trampolines
                .checked_mul(TRAMPOLINE_SIZE)
                .and_then(|n| trampoline_off.checked_add(n))
                .ok_or_else(|| too_big(file))?;
        }
        if cursor > start {
            cursor = align_up(cursor, PAGE).ok_or_else(|| too_big(file))?;
            groups.push((start, cursor - start, prot));
        }
    }
    let len = cursor.max(PAGE);
    if len >= map::LOW_LIMIT {
        return Err(too_big(file));
    }
    let base = map::map_low(len, false)?;
    for (i, s) in obj.sections.iter().enumerate() {
        let (Some(off), Some((from, to))) = (offsets[i], s.file_range) else {
            continue;
        };
        // The kernel reads PROGBITS and X86_64_UNWIND and zeroes the rest
        // (NOBITS, and INIT_ARRAY/FINI_ARRAY, which relocations fill).
        if s.sh_type != object::elf::SHT_PROGBITS && s.sh_type != crate::elf::SHT_X86_64_UNWIND {
            continue;
        }
        let src = &bytes[from..to];
        // SAFETY: the section was given [off, off + size) inside the fresh,
        // writable mapping of `len` bytes (the layout above never places a
        // section past `cursor` <= len), and src.len() == size.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), (base + off) as *mut u8, src.len());
        }
    }
    Ok(Layout {
        base,
        len,
        addr: offsets.iter().map(|o| o.map(|o| base + o)).collect(),
        groups: groups.iter().map(|&(s, l, p)| (base + s, l, p)).collect(),
        trampoline_base: base + trampoline_off,
        trampolines,
    })
}

impl Layout {
    /// Gives each group its final rights.
    pub fn protect(&self) -> Result<(), LoadError> {
        for &(start, len, prot) in &self.groups {
            map::protect(start, len, prot)?;
        }
        Ok(())
    }

    /// Whether `[addr, addr + n)` is inside the mapping.
    pub fn contains(&self, addr: usize, n: usize) -> bool {
        addr >= self.base
            && addr
                .checked_add(n)
                .is_some_and(|end| end <= self.base + self.len)
    }
}
