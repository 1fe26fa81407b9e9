//! Symbol values: the module's own definitions, link-set bounds, and imports
//! resolved through the [`crate::Resolver`] (with a trampoline for each
//! imported function).

use std::collections::HashMap;

use object::elf;

use crate::elf::{Object, Symbol};
use crate::error::LoadError;
use crate::layout::Layout;
use crate::{Import, Resolver};

/// Size of one trampoline: `movabs $target, %r11; jmp *%r11`, padded with
/// `int3`.
pub const TRAMPOLINE_SIZE: usize = 16;

/// Writes a trampoline to `target` into 16 bytes.
pub fn trampoline_bytes(target: usize) -> [u8; TRAMPOLINE_SIZE] {
    let mut t = [0xccu8; TRAMPOLINE_SIZE];
    // movabs $imm64, %r11
    t[0] = 0x49;
    t[1] = 0xbb;
    t[2..10].copy_from_slice(&(target as u64).to_le_bytes());
    // jmp *%r11
    t[10] = 0x41;
    t[11] = 0xff;
    t[12] = 0xe3;
    t
}

/// For `__start_X` / `__stop_X`, the index of the loaded section named `X`
/// whose bound it is (what `link_elf_fix_link_set` binds), if any.
pub fn link_set_section(obj: &Object, name: &str) -> Option<(usize, bool)> {
    let (set, start) = if let Some(rest) = name.strip_prefix("__start_") {
        (rest, true)
    } else if let Some(rest) = name.strip_prefix("__stop_") {
        (rest, false)
    } else {
        return None;
    };
    obj.sections
        .iter()
        .position(|s| s.loaded && s.name == set)
        .map(|i| (i, start))
}

/// The value of every symbol, computed on demand and cached, with the
/// imports the module asked for.
pub struct Symbols<'a> {
    obj: &'a Object,
    file: &'a str,
    layout: &'a Layout,
    resolver: &'a dyn Resolver,
    cache: HashMap<u64, u64>,
    /// Name -> index of the first defined symbol of that name, local or
    /// not.
    own: HashMap<&'a str, usize>,
    /// Import name -> (address the module uses, host target).
    pub imports: HashMap<String, (usize, Import)>,
    /// Trampolines written so far.
    pub trampolines_used: usize,
}

impl<'a> Symbols<'a> {
    /// A symbol table view over a laid-out object.
    pub fn new(
        obj: &'a Object,
        file: &'a str,
        layout: &'a Layout,
        resolver: &'a dyn Resolver,
    ) -> Self {
        let mut own = HashMap::new();
        for (i, sym) in obj.symbols.iter().enumerate() {
            if !sym.is_undefined() && !sym.name.is_empty() {
                own.entry(sym.name.as_str()).or_insert(i);
            }
        }
        Symbols {
            obj,
            file,
            layout,
            resolver,
            cache: HashMap::new(),
            own,
            imports: HashMap::new(),
            trampolines_used: 0,
        }
    }

    fn unsupported(&self, reason: String) -> LoadError {
        LoadError::Unsupported {
            file: self.file.to_string(),
            reason,
        }
    }

    /// The value of a symbol defined in the file (not through the
    /// resolver), or None if it is undefined. Mirrors the kernel: a symbol
    /// of a loaded section is that section's address plus st_value; any
    /// other definition (SHN_ABS, or a section that is not loaded) keeps
    /// its st_value as it is.
    pub fn defined_value(&self, sym: &Symbol) -> Result<Option<u64>, LoadError> {
        if sym.stype == elf::STT_GNU_IFUNC && !sym.is_undefined() {
            return Err(self.unsupported(format!(
                "symbol {} is an IFUNC: its resolver would run at load time",
                sym.name
            )));
        }
        if sym.shndx == u32::from(elf::SHN_COMMON) {
            return Err(self.unsupported(format!(
                "symbol {} is a common symbol (build with -fno-common; the kernel does not allocate them)",
                sym.name
            )));
        }
        if sym.is_undefined() {
            return Ok(None);
        }
        let shndx = sym.shndx as usize;
        match self.layout.addr.get(shndx).copied().flatten() {
            Some(base) => Ok(Some((base as u64).wrapping_add(sym.value))),
            None => Ok(Some(sym.value)),
        }
    }

    /// What `elf_obj_lookup` answers for symbol `idx`: Ok(Some(value)),
    /// Ok(None) for "undefined" (the relocation then fails), or an error
    /// this loader raises itself.
    pub fn lookup(&mut self, idx: u64) -> Result<Option<u64>, LoadError> {
        if let Some(&v) = self.cache.get(&idx) {
            return Ok(Some(v));
        }
        let Some(sym) = usize::try_from(idx)
            .ok()
            .and_then(|i| self.obj.symbols.get(i))
        else {
            return Ok(None);
        };
        if let Some(v) = self.defined_value(sym)? {
            return Ok(Some(v));
        }
        // Undefined.
        if sym.is_local() || sym.name.is_empty() {
            return Ok(None);
        }
        if let Some((sec, start)) = link_set_section(self.obj, &sym.name) {
            let base = self.layout.addr[sec].unwrap_or(0) as u64;
            let v = if start {
                base
            } else {
                base + self.obj.sections[sec].size
            };
            self.cache.insert(idx, v);
            return Ok(Some(v));
        }
        // linker_file_lookup_symbol asks the file itself first; with
        // debug.link_elf_obj_leak_locals at its default (1) a local
        // definition of the name counts too.
        if let Some(&def) = self.own.get(sym.name.as_str()) {
            if let Some(v) = self.defined_value(&self.obj.symbols[def])? {
                self.cache.insert(idx, v);
                return Ok(Some(v));
            }
        }
        let v = match self.import(&sym.name)? {
            Some(addr) => addr as u64,
            None if sym.bind == elf::STB_WEAK => 0,
            None => return Ok(None),
        };
        self.cache.insert(idx, v);
        Ok(Some(v))
    }

    /// Resolves an imported name, giving a function a trampoline in the
    /// module's mapping. Returns the address the module must use.
    fn import(&mut self, name: &str) -> Result<Option<usize>, LoadError> {
        if let Some(&(addr, _)) = self.imports.get(name) {
            return Ok(Some(addr));
        }
        let Some(imp) = self.resolver.resolve(name) else {
            return Ok(None);
        };
        let addr = match imp {
            Import::Data(a) => a,
            Import::Func(target) => {
                let slot = self.trampolines_used;
                if slot >= self.layout.trampolines {
                    return Err(LoadError::Map {
                        reason: "trampoline area exhausted".to_string(),
                        errno: crate::error::ENOMEM,
                    });
                }
                let at = self.layout.trampoline_base + slot * TRAMPOLINE_SIZE;
                let bytes = trampoline_bytes(target);
                // SAFETY: `at` is a trampoline slot inside the module's
                // mapping, still writable (protections are set after all
                // relocations), and no one else uses this slot.
                unsafe {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), at as *mut u8, TRAMPOLINE_SIZE)
                };
                self.trampolines_used += 1;
                at
            }
        };
        self.imports.insert(name.to_string(), (addr, imp));
        Ok(Some(addr))
    }

    /// The name of symbol `idx`, for messages.
    pub fn name(&self, idx: u64) -> String {
        usize::try_from(idx)
            .ok()
            .and_then(|i| self.obj.symbols.get(i))
            .map(|s| s.name.clone())
            .unwrap_or_default()
    }
}
