//! An in-process FreeBSD amd64 kld loader.
//!
//! [`load`] takes a `.ko` (an x86-64 ELF relocatable object, the form of an
//! amd64 kernel module), maps its loaded sections into one mapping in the
//! low 2 GiB of this process, relocates it the way the kernel's object-file
//! linker does (`sys/kern/link_elf_obj.c`, `sys/amd64/amd64/elf_machdep.c`),
//! resolves its undefined symbols through a [`Resolver`] (an emulated
//! kernel programming interface), checks its module dependencies as
//! `kern_linker.c` does, and decodes its module metadata and SYSINITs. It
//! runs none of the module's code: the caller runs the SYSINITs in
//! [`Module::sysinits`] order with [`Module::call_sysinit`], as the kernel
//! does after a successful link.
//!
//! Order of a load, as in `link_elf_load_file`: header checks; sections
//! mapped; relocations against local symbols; dependencies checked
//! (MDT_VERSION / MDT_DEPEND against `LoadOptions`); relocations against
//! global symbols; final page rights (text RX, rodata R, data RW). An
//! undefined symbol is looked up only when a relocation uses it, as the
//! kernel does: `__start_X`/`__stop_X` bind to the file's section `X`, then
//! a definition of the name in the file itself (a local one too: FreeBSD's
//! `debug.link_elf_obj_leak_locals` defaults to 1), then the [`Resolver`];
//! an unresolved weak symbol is 0.
//!
//! Imported functions are reached through a 16-byte trampoline in the
//! module's mapping (`movabs $target, %r11; jmp *%r11`): %r11 is
//! call-clobbered and not an argument register, and %rax is left alone
//! because variadic callees (printf, panic, g_new_geomf...) read %al. Every
//! relocation against an imported function (calls, and addresses taken with
//! 32S or 64-bit relocations) uses the trampoline, so the module sees one
//! address per import; [`Module::import`] and [`Module::trampoline_target`]
//! map between the two.
//!
//! Linux x86-64 only; elsewhere [`load`] fails with
//! [`LoadError::UnsupportedHost`].

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod elf;
mod error;
mod layout;
mod map;
mod metadata;
mod reloc;
mod symbols;
mod sysinit;

use std::collections::HashMap;
use std::path::Path;

pub use error::{LoadError, EEXIST, ENOENT, ENOEXEC, ENOMEM};
pub use metadata::{MDT_DEPEND, MDT_MODULE, MDT_VERSION};
pub use reloc::{
    R_X86_64_32S, R_X86_64_64, R_X86_64_COPY, R_X86_64_NONE, R_X86_64_PC32, R_X86_64_PLT32,
};
pub use symbols::{trampoline_bytes, TRAMPOLINE_SIZE};

/// What an imported symbol is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Import {
    /// The host address of an `extern "C"` function. The module reaches it
    /// through a trampoline in its own mapping.
    Func(usize),
    /// The address of a data object, used as it is. The module addresses
    /// data with 32-bit relocations, so it must be below 2 GiB: allocate it
    /// with [`low_alloc`]. A relocation that cannot reach it fails the load
    /// ([`LoadError::OutOfReach`]).
    Data(usize),
}

/// The emulated kernel: answers the module's undefined symbols.
pub trait Resolver {
    /// The symbol `name`, or None if the kernel has no such symbol.
    fn resolve(&self, name: &str) -> Option<Import>;
}

/// What the emulated system looks like to the dependency check.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The emulated `__FreeBSD_version` (module `kernel`'s version), e.g.
    /// 1500068.
    pub kernel_version: i32,
    /// Other modules present, with their versions (MODULE_VERSION); the
    /// module `kernel` is implicit.
    pub known_modules: Vec<(String, i32)>,
}

/// One SYSINIT or SYSUNINIT entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysInit {
    /// `enum sysinit_sub_id`.
    pub subsystem: u32,
    /// `enum sysinit_elem_order`.
    pub order: u32,
    /// The function (a module address, or an import's trampoline).
    pub func: usize,
    /// Its argument.
    pub udata: usize,
}

/// One decoded `set_modmetadata_set` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModMetadata {
    /// MDT_DEPEND (MODULE_DEPEND): `module` in versions min..=max,
    /// preferably `pref`.
    Depend {
        /// Module depended on.
        module: String,
        /// md_ver_minimum.
        min: i32,
        /// md_ver_preferred.
        pref: i32,
        /// md_ver_maximum.
        max: i32,
    },
    /// MDT_VERSION (MODULE_VERSION).
    Version {
        /// Interface name.
        module: String,
        /// mv_version.
        version: i32,
    },
    /// MDT_MODULE (DECLARE_MODULE).
    Module {
        /// The module name (md_cval).
        name: String,
        /// Address of its `moduledata_t`.
        data: usize,
    },
    /// Any other type (MDT_PNP_INFO = 4, ...).
    Other {
        /// md_type.
        kind: i32,
        /// md_cval.
        name: String,
    },
}

/// A loaded module. It stays mapped until [`Module::unmap`]; dropping it
/// without unmapping leaves the mapping in place (as a kernel module stays
/// loaded until it is unloaded), since pointers into it may live on in the
/// emulated kernel.
#[derive(Debug)]
pub struct Module {
    name: String,
    base: usize,
    len: usize,
    sets: HashMap<String, (usize, u64)>,
    symbols: HashMap<String, usize>,
    imports: HashMap<String, (usize, Import)>,
    metadata: Vec<ModMetadata>,
    sysinits: Vec<SysInit>,
    sysuninits: Vec<SysInit>,
    ctors: Option<(usize, u64)>,
    dtors: Option<(usize, u64)>,
    relocations: usize,
}

/// Zeroed memory below 2 GiB for the emulated kernel's data objects
/// (`topology_lock`, `M_GEOM`, `sysctl___kern_geom`...) and code stubs. The
/// memory is readable, writable and executable, so a trampoline written
/// there (see [`trampoline_bytes`]) can be called. It is never unmapped;
/// [`low_free`] makes a block available to later calls.
pub fn low_alloc(size: usize, align: usize) -> Result<*mut u8, LoadError> {
    if cfg!(not(all(target_os = "linux", target_arch = "x86_64"))) {
        return Err(LoadError::UnsupportedHost);
    }
    map::low_alloc(size, align)
}

/// Gives back a block from [`low_alloc`] of `size` bytes; later calls may
/// hand it out again (zeroed).
///
/// # Safety
/// `ptr` must come from `low_alloc` with this `size`, and nothing may use
/// it afterwards.
pub unsafe fn low_free(ptr: *mut u8, size: usize) {
    map::low_free(ptr, size)
}

/// Writes a trampoline to `target` in low memory and returns its address:
/// for callbacks the module must reach with a 32-bit displacement or
/// immediate.
pub fn low_trampoline(target: usize) -> Result<usize, LoadError> {
    let p = low_alloc(TRAMPOLINE_SIZE, TRAMPOLINE_SIZE)?;
    let bytes = trampoline_bytes(target);
    // SAFETY: `p` is a fresh, writable, TRAMPOLINE_SIZE-byte block.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, TRAMPOLINE_SIZE) };
    Ok(p as usize)
}

/// Whether any page of `[addr, addr + len)` is mapped in this process.
pub fn is_mapped(addr: usize, len: usize) -> bool {
    map::any_mapped(addr, len)
}

/// The names a [`Resolver`] will be asked for when `bytes` is loaded: the
/// undefined, non-local symbols some relocation refers to, except the
/// `__start_`/`__stop_` bounds of the file's own sections.
pub fn imports(bytes: &[u8]) -> Result<Vec<String>, LoadError> {
    let obj = elf::parse("<bytes>", bytes)?;
    Ok(elf::imports_of(&obj))
}

/// Loads the module in file `path`, as `kldload path` would.
pub fn load(path: &Path, resolver: &dyn Resolver, opts: &LoadOptions) -> Result<Module, LoadError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|error| LoadError::Io {
        file: file.clone(),
        error,
    })?;
    load_bytes(&file, &bytes, resolver, opts)
}

/// Loads a module from memory; `name` stands for its path in messages.
pub fn load_bytes(
    name: &str,
    bytes: &[u8],
    resolver: &dyn Resolver,
    opts: &LoadOptions,
) -> Result<Module, LoadError> {
    if cfg!(not(all(target_os = "linux", target_arch = "x86_64"))) {
        return Err(LoadError::UnsupportedHost);
    }
    let obj = elf::parse(name, bytes)?;
    let ntramp = elf::imports_of(&obj).len();
    let layout = layout::map_object(name, bytes, &obj, ntramp)?;
    match link(name, &obj, &layout, resolver, opts) {
        Ok(m) => Ok(m),
        Err(e) => {
            // SAFETY: no module code ran and nothing outside this function
            // holds an address in the mapping.
            unsafe { map::unmap(layout.base, layout.len) };
            Err(e)
        }
    }
}

fn set_bounds(obj: &elf::Object, layout: &layout::Layout, set: &str) -> Option<(usize, u64)> {
    let want = format!("set_{set}");
    obj.sections
        .iter()
        .enumerate()
        .find(|(_, s)| s.loaded && s.name == want)
        .and_then(|(i, s)| layout.addr[i].map(|a| (a, s.size)))
}

fn link(
    name: &str,
    obj: &elf::Object,
    layout: &layout::Layout,
    resolver: &dyn Resolver,
    opts: &LoadOptions,
) -> Result<Module, LoadError> {
    let mut syms = symbols::Symbols::new(obj, name, layout, resolver);
    reloc::apply(name, obj, layout, &mut syms, reloc::Pass::Local)?;

    let mem = metadata::Mem { layout, file: name };
    let md = metadata::decode(&mem, set_bounds(obj, layout, "modmetadata_set"))?;
    let mut present = vec![("kernel".to_string(), opts.kernel_version)];
    present.extend(opts.known_modules.iter().cloned());
    metadata::check_dependencies(name, &md, &present)?;

    reloc::apply(name, obj, layout, &mut syms, reloc::Pass::Global)?;
    layout.protect()?;

    // Decoded again after the global pass: an entry may point through a
    // global symbol.
    let metadata = metadata::decode(&mem, set_bounds(obj, layout, "modmetadata_set"))?;
    let sysinits = sysinit::run_order(sysinit::decode(
        &mem,
        set_bounds(obj, layout, "sysinit_set"),
        "set_sysinit_set entry",
    )?);
    let sysuninits = sysinit::unrun_order(sysinit::decode(
        &mem,
        set_bounds(obj, layout, "sysuninit_set"),
        "set_sysuninit_set entry",
    )?);

    // The kernel keeps the first .ctors/INIT_ARRAY and the first
    // .dtors/FINI_ARRAY section (it reports and ignores further ones).
    let array = |name: &str, sh_type: u32| {
        obj.sections
            .iter()
            .enumerate()
            .find(|(_, s)| s.loaded && (s.name == name || s.sh_type == sh_type))
            .and_then(|(i, s)| layout.addr[i].map(|a| (a, s.size)))
    };
    let ctors = array(".ctors", object::elf::SHT_INIT_ARRAY);
    let dtors = array(".dtors", object::elf::SHT_FINI_ARRAY);

    let mut sets = HashMap::new();
    for (i, s) in obj.sections.iter().enumerate() {
        if let (true, Some(a)) = (s.loaded, layout.addr[i]) {
            sets.entry(s.name.clone()).or_insert((a, s.size));
        }
    }
    let mut symbols: HashMap<String, usize> = HashMap::new();
    for sym in &obj.symbols {
        if sym.name.is_empty() || sym.is_undefined() {
            continue;
        }
        let loaded = layout.addr.get(sym.shndx as usize).copied().flatten();
        let Some(base) = loaded else { continue };
        let addr = base.wrapping_add(sym.value as usize);
        if sym.is_local() {
            symbols.entry(sym.name.clone()).or_insert(addr);
        } else {
            symbols.insert(sym.name.clone(), addr);
        }
    }
    Ok(Module {
        name: name.to_string(),
        base: layout.base,
        len: layout.len,
        sets,
        symbols,
        imports: syms.imports,
        metadata,
        sysinits,
        sysuninits,
        ctors,
        dtors,
        relocations: obj
            .reltabs
            .iter()
            .filter(|t| layout.addr[t.target].is_some())
            .map(|t| t.relocs.len())
            .sum(),
    })
}

impl Module {
    /// The name (path) it was loaded as.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address of a symbol the module defines in a loaded section,
    /// local ones included (a global wins over a local of the same name).
    pub fn symbol(&self, name: &str) -> Option<usize> {
        self.symbols.get(name).copied()
    }

    /// The pointer entries of linker set `set_<set>` (e.g. "sysinit_set",
    /// "sysctl_set"), read now; empty if the module has no such set.
    pub fn set(&self, set: &str) -> Vec<usize> {
        let Some(&(start, size)) = self.sets.get(&format!("set_{set}")) else {
            return Vec::new();
        };
        (0..(size / 8) as usize)
            .map(|i| {
                // SAFETY: the set section lies inside the module's mapping,
                // which stays mapped (and readable) while `self` exists.
                unsafe { std::ptr::read_unaligned((start + 8 * i) as *const usize) }
            })
            .collect()
    }

    /// The decoded `set_modmetadata_set`, in set order.
    pub fn metadata(&self) -> Vec<ModMetadata> {
        self.metadata.clone()
    }

    /// The SYSINITs in the order the kernel runs them at load (sorted by
    /// subsystem, then order, by the kernel's own exchange sort; SI_SUB_DUMMY
    /// entries left out).
    pub fn sysinits(&self) -> Vec<SysInit> {
        self.sysinits.clone()
    }

    /// The SYSUNINITs in the order the kernel runs them at unload.
    pub fn sysuninits(&self) -> Vec<SysInit> {
        self.sysuninits.clone()
    }

    /// Whether `addr` is inside the module's mapping.
    pub fn contains(&self, addr: usize) -> bool {
        addr >= self.base && addr < self.base + self.len
    }

    /// The mapping: (start, end), end exclusive.
    pub fn range(&self) -> (usize, usize) {
        (self.base, self.base + self.len)
    }

    /// The imports the module was linked against, sorted by name, with the
    /// address the module uses for each (a trampoline for a function).
    pub fn imports(&self) -> Vec<(String, usize, Import)> {
        let mut v: Vec<_> = self
            .imports
            .iter()
            .map(|(n, &(a, i))| (n.clone(), a, i))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The address the module uses for import `name`.
    pub fn import(&self, name: &str) -> Option<usize> {
        self.imports.get(name).map(|&(a, _)| a)
    }

    /// If `addr` is one of the module's import trampolines, the host
    /// function it jumps to (e.g. to recognise `bio_done == g_std_done`).
    pub fn trampoline_target(&self, addr: usize) -> Option<usize> {
        self.imports.values().find_map(|&(a, i)| match i {
            Import::Func(t) if a == addr => Some(t),
            _ => None,
        })
    }

    /// The constructors (`.ctors` / INIT_ARRAY entries, non-null, in order).
    /// The kernel calls them right after relocation, before the SYSINITs
    /// (`link_elf_invoke_cbs`); this loader runs no module code, so a caller
    /// that wants the kernel's behaviour calls each as `extern "C" fn()`.
    pub fn ctors(&self) -> Vec<usize> {
        self.array(self.ctors)
    }

    /// The destructors (`.dtors` / FINI_ARRAY), which the kernel calls when
    /// it unloads the file, after the SYSUNINITs.
    pub fn dtors(&self) -> Vec<usize> {
        self.array(self.dtors)
    }

    fn array(&self, a: Option<(usize, u64)>) -> Vec<usize> {
        let Some((start, size)) = a else {
            return Vec::new();
        };
        (0..(size / 8) as usize)
            .map(|i| {
                // SAFETY: the section lies inside the module's mapping,
                // which stays mapped while `self` exists.
                unsafe { std::ptr::read_unaligned((start + 8 * i) as *const usize) }
            })
            .filter(|&f| f != 0)
            .collect()
    }

    /// How many relocations were applied.
    pub fn relocations(&self) -> usize {
        self.relocations
    }

    /// Calls `s.func(s.udata)` with the C ABI, as `linker_file_sysinit`
    /// does.
    ///
    /// # Safety
    /// `s` must be one of this module's SYSINIT/SYSUNINIT entries, the
    /// module must still be mapped, and whatever the function does (it is
    /// the module's code, running on the emulated KPI) is the caller's
    /// business.
    pub unsafe fn call_sysinit(&self, s: &SysInit) {
        assert!(
            s.func != 0,
            "SYSINIT with a null function (udata {:#x}): the kernel would fault calling it",
            s.udata
        );
        // SAFETY: per the caller's contract, `func` is the module's (or a
        // trampoline's) `void (*)(const void *)` and the code is mapped.
        let f: extern "C" fn(usize) = unsafe { std::mem::transmute(s.func) };
        f(s.udata)
    }

    /// Unmaps the module: its code, data and trampolines. Running module
    /// code afterwards faults (SIGSEGV), as running an unloaded module's
    /// code panics a kernel.
    pub fn unmap(self) {
        // SAFETY: the mapping belongs to this module, which is consumed;
        // any later use of its addresses is the fault this is meant to
        // expose.
        unsafe { map::unmap(self.base, self.len) };
    }
}
