//! Reading the ELF relocatable object: header checks in the order
//! `link_elf_obj.c` makes them, then sections, the one symbol table and the
//! relocation tables of loaded sections.

use object::elf::{self, FileHeader64, Rel64, Rela64, SectionHeader64, Sym64};
use object::read::elf::{FileHeader, SectionHeader, Sym as _};
use object::LittleEndian as LE;

use crate::error::LoadError;

/// `SHT_X86_64_UNWIND`, loaded like PROGBITS on amd64.
pub const SHT_X86_64_UNWIND: u32 = 0x7000_0001;

/// One section header, with what the loader needs of it.
#[derive(Debug, Clone)]
pub struct Section {
    /// Its name (from the section-name string table), "" if none.
    pub name: String,
    /// sh_type.
    pub sh_type: u32,
    /// sh_flags.
    pub flags: u64,
    /// sh_size.
    pub size: u64,
    /// sh_addralign (0 and 1 mean none).
    pub align: u64,
    /// Its bytes in the file (empty for NOBITS).
    pub file_range: Option<(usize, usize)>,
    /// Whether the kernel loads it: a non-empty SHF_ALLOC PROGBITS, NOBITS,
    /// X86_64_UNWIND, INIT_ARRAY or FINI_ARRAY section.
    pub loaded: bool,
}

impl Section {
    /// SHF_WRITE.
    pub fn writable(&self) -> bool {
        self.flags & u64::from(elf::SHF_WRITE) != 0
    }
    /// SHF_EXECINSTR.
    pub fn executable(&self) -> bool {
        self.flags & u64::from(elf::SHF_EXECINSTR) != 0
    }
}

/// One symbol table entry.
#[derive(Debug, Clone)]
pub struct Symbol {
    /// Its name ("" if none).
    pub name: String,
    /// st_value (section-relative for a defined symbol).
    pub value: u64,
    /// st_shndx, extended through SHT_SYMTAB_SHNDX when needed.
    pub shndx: u32,
    /// STB_*.
    pub bind: u8,
    /// STT_*.
    pub stype: u8,
}

impl Symbol {
    /// STB_LOCAL.
    pub fn is_local(&self) -> bool {
        self.bind == elf::STB_LOCAL
    }
    /// SHN_UNDEF.
    pub fn is_undefined(&self) -> bool {
        self.shndx == u32::from(elf::SHN_UNDEF)
    }
}

/// One relocation.
#[derive(Debug, Clone, Copy)]
pub struct Reloc {
    /// Offset in the section it applies to.
    pub offset: u64,
    /// R_X86_64_*.
    pub rtype: u32,
    /// Symbol index.
    pub symidx: u64,
    /// The addend of a RELA entry; `None` for REL (the addend is in place).
    pub addend: Option<i64>,
}

impl Reloc {
    /// The entry at `offset` with the raw `r_info` (the type in its low 32
    /// bits, the symbol index in its high 32) and, for RELA, the addend.
    fn new(offset: u64, info: u64, addend: Option<i64>) -> Self {
        Reloc {
            offset,
            rtype: (info & 0xffff_ffff) as u32,
            symidx: info >> 32,
            addend,
        }
    }
}

/// The relocations of one loaded section.
#[derive(Debug, Clone)]
pub struct RelTable {
    /// The section they apply to.
    pub target: usize,
    /// The entries, in file order.
    pub relocs: Vec<Reloc>,
}

/// The parsed object.
#[derive(Debug, Clone)]
pub struct Object {
    /// Every section header, by index.
    pub sections: Vec<Section>,
    /// The symbol table, by index.
    pub symbols: Vec<Symbol>,
    /// Relocation tables of loaded sections: REL tables first, then RELA,
    /// each in section order (the order `relocate_file1` walks them).
    pub reltabs: Vec<RelTable>,
}

impl Object {
    /// The symbol relocation `r` refers to; `None` for an index past the
    /// symbol table.
    pub fn symbol_of(&self, r: &Reloc) -> Option<&Symbol> {
        usize::try_from(r.symidx)
            .ok()
            .and_then(|i| self.symbols.get(i))
    }
}

fn bad(file: &str, freebsd: Option<&'static str>, reason: impl Into<String>) -> LoadError {
    LoadError::BadFile {
        file: file.to_string(),
        freebsd,
        reason: reason.into(),
    }
}

fn cstr(table: &[u8], offset: u32) -> Option<String> {
    let start = usize::try_from(offset).ok()?;
    let rest = table.get(start..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// Checks the ELF header the way the kernel's object-file linker does, in
/// its order, and parses the rest.
pub fn parse(file: &str, bytes: &[u8]) -> Result<Object, LoadError> {
    // IS_ELF, then class/data, then version, then type, then machine.
    if bytes.len() < 16 || &bytes[0..4] != b"\x7fELF" {
        return Err(LoadError::NotElf {
            file: file.to_string(),
        });
    }
    if bytes[4] != elf::ELFCLASS64 || bytes[5] != elf::ELFDATA2LSB {
        return Err(LoadError::UnsupportedLayout {
            file: file.to_string(),
        });
    }
    let header = FileHeader64::<LE>::parse(bytes).map_err(|_| {
        // Right class and magic but unreadable: short file or bad version.
        if bytes[6] != elf::EV_CURRENT {
            LoadError::UnsupportedVersion {
                file: file.to_string(),
            }
        } else {
            bad(file, None, "truncated ELF header")
        }
    })?;
    let e = LE;
    if header.e_ident().version != elf::EV_CURRENT
        || header.e_version(e) != u32::from(elf::EV_CURRENT)
    {
        return Err(LoadError::UnsupportedVersion {
            file: file.to_string(),
        });
    }
    if header.e_type(e) != elf::ET_REL {
        return Err(LoadError::NotRelocatable {
            file: file.to_string(),
            e_type: header.e_type(e),
        });
    }
    if header.e_machine(e) != elf::EM_X86_64 {
        return Err(LoadError::UnsupportedMachine {
            file: file.to_string(),
            machine: header.e_machine(e),
        });
    }
    if header.e_shnum(e) == 0
        || header.e_shoff(e) == 0
        || usize::from(header.e_shentsize(e)) != std::mem::size_of::<SectionHeader64<LE>>()
    {
        return Err(bad(file, None, "no usable section header table"));
    }
    let shdrs: &[SectionHeader64<LE>] = header
        .section_headers(e, bytes)
        .map_err(|err| bad(file, None, format!("section headers: {err}")))?;

    // Section names, if there is a usable name table (the kernel does
    // without one; set sections then have no names and are not found).
    let shstrndx = usize::from(header.e_shstrndx(e));
    let shstr: &[u8] = match shdrs.get(shstrndx) {
        Some(s) if shstrndx != 0 && s.sh_type(e) == elf::SHT_STRTAB => s
            .data(e, bytes)
            .map_err(|err| bad(file, None, format!("section name table: {err}")))?,
        _ => &[],
    };

    let mut sections = Vec::with_capacity(shdrs.len());
    let mut nprog = 0usize;
    let mut symtabs = Vec::new();
    for (i, s) in shdrs.iter().enumerate() {
        let sh_type = s.sh_type(e);
        let size = s.sh_size(e);
        let flags = s.sh_flags(e);
        let alloc = flags & u64::from(elf::SHF_ALLOC) != 0;
        let progtype = matches!(
            sh_type,
            elf::SHT_PROGBITS
                | elf::SHT_NOBITS
                | SHT_X86_64_UNWIND
                | elf::SHT_INIT_ARRAY
                | elf::SHT_FINI_ARRAY
        );
        let loaded = size != 0 && progtype && alloc;
        if loaded {
            nprog += 1;
        }
        if size != 0 && sh_type == elf::SHT_SYMTAB {
            symtabs.push(i);
        }
        let file_range = if sh_type == elf::SHT_NOBITS || size == 0 {
            None
        } else {
            let off = s.sh_offset(e);
            let end = off
                .checked_add(size)
                .filter(|&end| end <= bytes.len() as u64);
            match end {
                Some(end) => Some((off as usize, end as usize)),
                None => {
                    return Err(bad(
                        file,
                        None,
                        format!("section {i} extends past the end of the file"),
                    ))
                }
            }
        };
        let align = s.sh_addralign(e);
        if loaded && align > 1 && !align.is_power_of_two() {
            return Err(bad(
                file,
                None,
                format!("section {i} has alignment {align}, not a power of two"),
            ));
        }
        sections.push(Section {
            name: cstr(shstr, s.sh_name(e)).unwrap_or_default(),
            sh_type,
            flags,
            size,
            align,
            file_range,
            loaded,
        });
    }
    if nprog == 0 {
        return Err(bad(
            file,
            Some("file has no contents"),
            "no loadable section",
        ));
    }
    if symtabs.len() != 1 {
        return Err(bad(
            file,
            Some("file must have exactly one symbol table"),
            format!("{} symbol tables", symtabs.len()),
        ));
    }
    let symtab_index = symtabs[0];
    let symtab = &shdrs[symtab_index];
    let strndx = symtab.sh_link(e) as usize;
    let strtab: &[u8] = match shdrs.get(strndx) {
        Some(s) if s.sh_type(e) == elf::SHT_STRTAB => s
            .data(e, bytes)
            .map_err(|err| bad(file, None, format!("symbol strings: {err}")))?,
        _ => {
            return Err(bad(
                file,
                Some("file has invalid symbol strings"),
                "the symbol table's string table is missing",
            ))
        }
    };
    let syms: &[Sym64<LE>] = symtab
        .data_as_array(e, bytes)
        .map_err(|err| bad(file, None, format!("symbol table: {err}")))?;
    // Extended section indices, for files with 0xff00 sections or more.
    let mut xindex: Option<&[object::U32<LE>]> = None;
    for s in shdrs {
        if s.sh_type(e) == elf::SHT_SYMTAB_SHNDX && s.sh_link(e) as usize == symtab_index {
            xindex = Some(
                s.data_as_array(e, bytes)
                    .map_err(|err| bad(file, None, format!("SHT_SYMTAB_SHNDX: {err}")))?,
            );
        }
    }
    let mut symbols = Vec::with_capacity(syms.len());
    for (i, s) in syms.iter().enumerate() {
        let mut shndx = u32::from(s.st_shndx(e));
        if shndx == u32::from(elf::SHN_XINDEX) {
            shndx = xindex
                .and_then(|x| x.get(i))
                .map(|v| v.get(e))
                .ok_or_else(|| bad(file, None, format!("symbol {i}: missing extended index")))?;
        }
        let name = cstr(strtab, s.st_name(e))
            .ok_or_else(|| bad(file, None, format!("symbol {i}: name out of range")))?;
        symbols.push(Symbol {
            name,
            value: s.st_value(e),
            shndx,
            bind: s.st_bind(),
            stype: s.st_type(),
        });
    }

    // Relocation tables of loaded sections; REL ones first, then RELA, as
    // relocate_file1 and link_elf_reloc_local walk them.
    let mut rels = Vec::new();
    let mut relas = Vec::new();
    for (i, s) in shdrs.iter().enumerate() {
        let sh_type = s.sh_type(e);
        if sh_type != elf::SHT_REL && sh_type != elf::SHT_RELA {
            continue;
        }
        if s.sh_size(e) == 0 {
            continue;
        }
        let target = s.sh_info(e) as usize;
        let Some(t) = sections.get(target) else {
            return Err(bad(
                file,
                None,
                format!("relocation section {i} applies to section {target}, which does not exist"),
            ));
        };
        if t.flags & u64::from(elf::SHF_ALLOC) == 0 {
            continue; // debug info and the like
        }
        if !t.loaded {
            // The kernel reports this as "lost base for reltab/relatab".
            return Err(bad(
                file,
                Some(if sh_type == elf::SHT_REL {
                    "lost base for reltab"
                } else {
                    "lost base for relatab"
                }),
                format!("relocation section {i} applies to section {target}, which is not loaded"),
            ));
        }
        let unreadable = |err| bad(file, None, format!("relocation section {i}: {err}"));
        if sh_type == elf::SHT_RELA {
            let entries: &[Rela64<LE>] = s.data_as_array(e, bytes).map_err(unreadable)?;
            let relocs = entries
                .iter()
                .map(|r| Reloc::new(r.r_offset.get(e), r.r_info.get(e), Some(r.r_addend.get(e))))
                .collect();
            relas.push(RelTable { target, relocs });
        } else {
            let entries: &[Rel64<LE>] = s.data_as_array(e, bytes).map_err(unreadable)?;
            let relocs = entries
                .iter()
                .map(|r| Reloc::new(r.r_offset.get(e), r.r_info.get(e), None))
                .collect();
            rels.push(RelTable { target, relocs });
        }
    }
    rels.extend(relas);

    Ok(Object {
        sections,
        symbols,
        reltabs: rels,
    })
}

/// The undefined non-local symbols that some relocation of a loaded section
/// refers to, excluding `__start_set_X`/`__stop_set_X` bound to the file's
/// own `set_X` sections and names the file defines itself (even as a local
/// symbol): the names a [`crate::Resolver`] is asked for.
/// Sorted, without duplicates.
pub fn imports_of(obj: &Object) -> Vec<String> {
    let defined: std::collections::HashSet<&str> = obj
        .symbols
        .iter()
        .filter(|d| !d.is_undefined() && !d.name.is_empty())
        .map(|d| d.name.as_str())
        .collect();
    let mut names: Vec<String> = Vec::new();
    for t in &obj.reltabs {
        for r in &t.relocs {
            let Some(sym) = obj.symbol_of(r) else {
                continue;
            };
            if sym.is_local() || !sym.is_undefined() || sym.name.is_empty() {
                continue;
            }
            if crate::symbols::link_set_section(obj, &sym.name).is_some() {
                continue;
            }
            if defined.contains(sym.name.as_str()) {
                continue; // bound to the file's own definition
            }
            names.push(sym.name.clone());
        }
    }
    names.sort();
    names.dedup();
    names
}
