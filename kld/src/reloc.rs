//! Applying relocations as the amd64 kernel linker does
//! (`elf_reloc_internal` in `sys/amd64/amd64/elf_machdep.c`, driven by
//! `link_elf_reloc_local` and `relocate_file1` in `sys/kern/link_elf_obj.c`).
//!
//! Two passes, like the kernel: relocations against local symbols first
//! (before dependencies are checked), then those against global and weak
//! symbols, which are looked up (here: in the module, its link sets, then
//! the [`crate::Resolver`]). A relocation whose symbol index is past the
//! symbol table is skipped, as the kernel skips it.
//!
//! Types applied: NONE, 64, PC32, PLT32 (as PC32), 32S, GLOB_DAT, JMP_SLOT,
//! RELATIVE. COPY and every other type fail the load with the kernel's
//! message. The kernel writes PC32/PLT32/32S values truncated to 32 bits
//! without a check (modules and kernel share the top 2 GiB, so they always
//! fit); here the value is checked, because an import outside the low 2 GiB
//! would otherwise be silently mis-addressed. IRELATIVE (and IFUNC symbols)
//! would run module code during the load and are refused.

use crate::elf::{Object, Reloc};
use crate::error::LoadError;
use crate::layout::Layout;
use crate::symbols::Symbols;

/// R_X86_64_NONE.
pub const R_X86_64_NONE: u32 = 0;
/// R_X86_64_64: S + A.
pub const R_X86_64_64: u32 = 1;
/// R_X86_64_PC32: S + A - P.
pub const R_X86_64_PC32: u32 = 2;
/// R_X86_64_PLT32: L + A - P, L taken as S.
pub const R_X86_64_PLT32: u32 = 4;
/// R_X86_64_COPY.
pub const R_X86_64_COPY: u32 = 5;
/// R_X86_64_GLOB_DAT: S.
pub const R_X86_64_GLOB_DAT: u32 = 6;
/// R_X86_64_JUMP_SLOT: S.
pub const R_X86_64_JUMP_SLOT: u32 = 7;
/// R_X86_64_RELATIVE: B + A.
pub const R_X86_64_RELATIVE: u32 = 8;
/// R_X86_64_32S: S + A, sign-extended.
pub const R_X86_64_32S: u32 = 11;
/// R_X86_64_IRELATIVE.
pub const R_X86_64_IRELATIVE: u32 = 37;

/// Which relocations a pass applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Against STB_LOCAL symbols (`link_elf_reloc_local`).
    Local,
    /// Against the others (`relocate_file`).
    Global,
}

/// Applies one pass of relocations to the mapped object. The mapping must
/// still be writable.
pub fn apply(
    file: &str,
    obj: &Object,
    layout: &Layout,
    syms: &mut Symbols<'_>,
    pass: Pass,
) -> Result<(), LoadError> {
    for t in &obj.reltabs {
        let Some(base) = layout.addr.get(t.target).copied().flatten() else {
            continue;
        };
        let size = obj.sections[t.target].size;
        for r in &t.relocs {
            let Some(sym) = obj.symbol_of(r) else {
                continue;
            };
            let local = sym.is_local();
            if (pass == Pass::Local) != local {
                continue;
            }
            apply_one(file, base, size, r, layout, syms, local)?;
        }
    }
    Ok(())
}

fn width(rtype: u32) -> usize {
    match rtype {
        R_X86_64_PC32 | R_X86_64_PLT32 | R_X86_64_32S => 4,
        _ => 8,
    }
}

fn apply_one(
    file: &str,
    base: usize,
    size: u64,
    r: &Reloc,
    layout: &Layout,
    syms: &mut Symbols<'_>,
    local: bool,
) -> Result<(), LoadError> {
    let global_name = |syms: &Symbols<'_>| (!local).then(|| syms.name(r.symidx));
    let unexpected = |syms: &Symbols<'_>| LoadError::UnexpectedRelocation {
        file: file.to_string(),
        rtype: r.rtype,
        symidx: r.symidx,
        global: global_name(syms),
    };
    match r.rtype {
        R_X86_64_NONE => return Ok(()),
        R_X86_64_64 | R_X86_64_PC32 | R_X86_64_PLT32 | R_X86_64_32S | R_X86_64_GLOB_DAT
        | R_X86_64_JUMP_SLOT | R_X86_64_RELATIVE => {}
        R_X86_64_IRELATIVE => {
            return Err(LoadError::Unsupported {
                file: file.to_string(),
                reason: "R_X86_64_IRELATIVE would run module code during the load".to_string(),
            })
        }
        _ => return Err(unexpected(syms)),
    }
    let w = width(r.rtype);
    let in_section = r
        .offset
        .checked_add(w as u64)
        .is_some_and(|end| end <= size);
    let place = base.wrapping_add(r.offset as usize);
    if !in_section || !layout.contains(place, w) {
        return Err(LoadError::BadFile {
            file: file.to_string(),
            freebsd: None,
            reason: format!(
                "relocation at offset {:#x} (type {}) is outside its {size}-byte section",
                r.offset, r.rtype
            ),
        });
    }
    // The addend: RELA's, or for REL the value in place (32 bits for the
    // 32-bit types, taken as signed).
    let addend: i64 = match r.addend {
        Some(a) => a,
        None if w == 4 => {
            // SAFETY: [place, place + 4) is inside the live mapping (checked
            // above); read_unaligned copes with any alignment.
            i64::from(unsafe { std::ptr::read_unaligned(place as *const i32) })
        }
        None => {
            // SAFETY: as above, 8 bytes.
            unsafe { std::ptr::read_unaligned(place as *const i64) }
        }
    };
    if r.rtype == R_X86_64_RELATIVE {
        let v = (base as u64).wrapping_add(addend as u64);
        // SAFETY: [place, place + 8) is inside the mapping, which is still
        // writable during relocation.
        unsafe { std::ptr::write_unaligned(place as *mut u64, v) };
        return Ok(());
    }
    let s = match syms.lookup(r.symidx)? {
        Some(v) => v,
        None if local => {
            return Err(LoadError::BadFile {
                file: file.to_string(),
                freebsd: None,
                reason: format!(
                    "relocation against local symbol {} ({}) that is not defined",
                    r.symidx,
                    syms.name(r.symidx)
                ),
            })
        }
        None => {
            return Err(LoadError::UndefinedSymbol {
                file: file.to_string(),
                symbol: syms.name(r.symidx),
            })
        }
    };
    match r.rtype {
        R_X86_64_64 => {
            let v = s.wrapping_add(addend as u64);
            // SAFETY: [place, place + 8) is inside the writable mapping.
            unsafe { std::ptr::write_unaligned(place as *mut u64, v) };
        }
        R_X86_64_GLOB_DAT | R_X86_64_JUMP_SLOT => {
            // SAFETY: as above.
            unsafe { std::ptr::write_unaligned(place as *mut u64, s) };
        }
        _ => {
            let v: i128 = if r.rtype == R_X86_64_32S {
                i128::from(s) + i128::from(addend)
            } else {
                i128::from(s) + i128::from(addend) - place as i128
            };
            if v < i128::from(i32::MIN) || v > i128::from(i32::MAX) {
                return Err(LoadError::OutOfReach {
                    file: file.to_string(),
                    symbol: syms.name(r.symidx),
                    rtype: r.rtype,
                    place: place as u64,
                    value: v,
                });
            }
            // SAFETY: [place, place + 4) is inside the writable mapping.
            unsafe { std::ptr::write_unaligned(place as *mut i32, v as i32) };
        }
    }
    Ok(())
}
