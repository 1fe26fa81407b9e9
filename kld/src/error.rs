//! Load failures, told the way a FreeBSD amd64 system tells them.
//!
//! A failed `kldload(8)` shows two things: the kernel's console lines (what
//! `dmesg` prints: `link_elf_obj.c`, `elf_machdep.c` and `kern_linker.c`
//! messages) and one line from `kldload(8)` chosen by the errno that
//! `kldload(2)` returned. [`LoadError::console`] gives the first,
//! [`LoadError::kldload_message`] the second, [`LoadError::errno`] the errno.
//!
//! How the errno comes about: `linker_load_file` offers the file to each
//! linker class in turn, the object-file class (`link_elf_obj`) first and then
//! the shared-object class (`link_elf`). When the object class fails with
//! anything but `EEXIST`, the shared-object class is tried too; it answers
//! `ENOSYS` for an `ET_REL` file, so the kernel prints
//! `linker_load_file: FILE - unsupported file type` and `kldload(2)` returns
//! `ENOEXEC`. So an undefined symbol, an unexpected relocation and a
//! dependency that is missing or of the wrong version all end in `ENOEXEC`
//! with that extra console line (as seen on real systems, e.g.
//! `KLD iichid.ko: depends on kernel - not available or version mismatch`
//! followed by `linker_load_file: /boot/modules/iichid.ko - unsupported file
//! type`).
//!
//! Failures that FreeBSD's linker cannot have (this loader's own limits, such
//! as a 32-bit relocation that cannot reach its target from the low 2 GiB)
//! carry a `kld:` note instead of a FreeBSD message.

use std::fmt;

/// `errno` values; FreeBSD and Linux agree on these.
pub const ENOENT: i32 = 2;
/// Exec format error.
pub const ENOEXEC: i32 = 8;
/// Cannot allocate memory.
pub const ENOMEM: i32 = 12;
/// File exists.
pub const EEXIST: i32 = 17;

/// Why a module did not load.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read (vn_open's errno; `kldload: can't load
    /// FILE: <strerror>`).
    Io {
        /// Path as given.
        file: String,
        /// The error.
        error: std::io::Error,
    },
    /// No ELF magic. Both linker classes refuse silently with `ENOEXEC`.
    NotElf {
        /// Path as given.
        file: String,
    },
    /// Not ELF64 little-endian: `kldload: FILE: Unsupported file layout`,
    /// printed by both classes.
    UnsupportedLayout {
        /// Path as given.
        file: String,
    },
    /// EI_VERSION or e_version not EV_CURRENT: `kldload: FILE: Unsupported
    /// file version`, printed by both classes.
    UnsupportedVersion {
        /// Path as given.
        file: String,
    },
    /// Not an ET_REL object. The object class answers `ENOSYS`; an amd64
    /// `.ko` is always an object file, so this loader handles nothing else.
    NotRelocatable {
        /// Path as given.
        file: String,
        /// The ELF e_type.
        e_type: u16,
    },
    /// e_machine is not EM_X86_64: `kldload: FILE: Unsupported machine`.
    UnsupportedMachine {
        /// Path as given.
        file: String,
        /// The ELF e_machine.
        machine: u16,
    },
    /// The object's structure is unusable. `freebsd` is the message
    /// `link_elf_obj` prints for it (`file has no contents`, `file must have
    /// exactly one symbol table`, ...) when it has one; otherwise `reason`
    /// says what is wrong (a truncated table, an index out of range: things
    /// the kernel would read past or crash on).
    BadFile {
        /// Path as given.
        file: String,
        /// FreeBSD's text for this failure, if it has one.
        freebsd: Option<&'static str>,
        /// What is wrong.
        reason: String,
    },
    /// A relocation type the amd64 kernel linker does not apply:
    /// `kldload: unexpected relocation type N, symbol index I` (or
    /// `kldload: unexpected R_COPY relocation, symbol index I`), then, for a
    /// relocation against a global symbol, `link_elf_obj: symbol S undefined`.
    UnexpectedRelocation {
        /// Path as given.
        file: String,
        /// The relocation type.
        rtype: u32,
        /// Its symbol index.
        symidx: u64,
        /// The symbol's name, for a relocation against a non-local symbol
        /// (those are applied in the pass that reports `symbol undefined`).
        global: Option<String>,
    },
    /// An undefined symbol the resolver does not know (and not weak):
    /// `link_elf_obj: symbol S undefined`.
    UndefinedSymbol {
        /// Path as given.
        file: String,
        /// The symbol.
        symbol: String,
    },
    /// Something FreeBSD's linker would accept but this loader does not
    /// implement (IFUNC symbols, R_X86_64_IRELATIVE, common symbols): these
    /// run or need code at load time. `kld:` note only.
    Unsupported {
        /// Path as given.
        file: String,
        /// What.
        reason: String,
    },
    /// A 32-bit relocation whose value does not fit. The kernel never sees
    /// this (modules and kernel share the top 2 GiB); here it means an import
    /// that is not in the low 2 GiB (give data imports memory from
    /// [`crate::low_alloc`]). `kld:` note only.
    OutOfReach {
        /// Path as given.
        file: String,
        /// The symbol relocated against.
        symbol: String,
        /// The relocation type.
        rtype: u32,
        /// Where the value is written.
        place: u64,
        /// The value that does not fit.
        value: i128,
    },
    /// An MDT_VERSION of this file names an interface already present:
    /// `interface M.V already present in the KLD 'K'!`, errno `EEXIST`.
    InterfacePresent {
        /// Path as given.
        file: String,
        /// Interface name.
        module: String,
        /// Its version.
        version: i32,
        /// The file that provides it (`kernel` for the emulated ones).
        container: String,
    },
    /// An MDT_DEPEND that no present module satisfies: `KLD F: depends on M
    /// - not available or version mismatch`.
    Dependency {
        /// Path as given.
        file: String,
        /// The module depended on.
        module: String,
        /// Its accepted range.
        min: i32,
        /// Preferred version.
        pref: i32,
        /// Maximum.
        max: i32,
        /// The version present, if the module is present at all.
        present: Option<i32>,
    },
    /// The module metadata or a SYSINIT entry points outside the module, or
    /// is cut short. The kernel would fault reading it. `kld:` note only.
    BadMetadata {
        /// Path as given.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// mmap/mprotect failed, or no room below 2 GiB.
    Map {
        /// What failed.
        reason: String,
        /// The errno.
        errno: i32,
    },
    /// The loader runs on Linux x86-64 only.
    UnsupportedHost,
}

/// strerror(3) text (what warn(3) appends), without Rust's " (os error N)".
fn strerror(e: i32) -> String {
    let s = std::io::Error::from_raw_os_error(e).to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn basename(file: &str) -> &str {
    match file.rfind('/') {
        Some(i) if i + 1 < file.len() => &file[i + 1..],
        _ => file,
    }
}

impl LoadError {
    /// The path (or name) of the file, as given to `load`/`load_bytes`.
    pub fn file(&self) -> Option<&str> {
        use LoadError::*;
        match self {
            Io { file, .. }
            | NotElf { file }
            | UnsupportedLayout { file }
            | UnsupportedVersion { file }
            | NotRelocatable { file, .. }
            | UnsupportedMachine { file, .. }
            | BadFile { file, .. }
            | UnexpectedRelocation { file, .. }
            | UndefinedSymbol { file, .. }
            | Unsupported { file, .. }
            | OutOfReach { file, .. }
            | InterfacePresent { file, .. }
            | Dependency { file, .. }
            | BadMetadata { file, .. } => Some(file),
            Map { .. } | UnsupportedHost => None,
        }
    }

    /// The errno `kldload(2)` returns for this failure.
    pub fn errno(&self) -> i32 {
        use LoadError::*;
        match self {
            Io { error, .. } => error.raw_os_error().unwrap_or(ENOENT),
            InterfacePresent { .. } => EEXIST,
            Map { errno, .. } => *errno,
            UnsupportedHost => ENOEXEC,
            _ => ENOEXEC,
        }
    }

    /// The kernel console lines FreeBSD prints for this failure, in order
    /// (empty when it prints nothing).
    pub fn console(&self) -> Vec<String> {
        use LoadError::*;
        let unsupported = |file: &str| format!("linker_load_file: {file} - unsupported file type");
        match self {
            Io { .. } | NotElf { .. } | Map { .. } | UnsupportedHost => vec![],
            UnsupportedLayout { file } => {
                let l = format!("kldload: {file}: Unsupported file layout");
                vec![l.clone(), l]
            }
            UnsupportedVersion { file } => {
                let l = format!("kldload: {file}: Unsupported file version");
                vec![l.clone(), l]
            }
            NotRelocatable { file, e_type } => {
                // ET_EXEC/ET_DYN go to the shared-object class, which this
                // loader does not model; anything else is refused by both.
                if *e_type == 2 || *e_type == 3 {
                    vec![]
                } else {
                    vec![unsupported(file)]
                }
            }
            UnsupportedMachine { file, .. } => vec![
                format!("kldload: {file}: Unsupported machine"),
                unsupported(file),
            ],
            BadFile { file, freebsd, .. } => {
                let mut v = Vec::new();
                if let Some(m) = freebsd {
                    // The load-time checks name the file by its path; the
                    // relocation pass ("lost base for ...") by the linker
                    // file's name, its basename.
                    let who = if m.starts_with("lost ") {
                        basename(file)
                    } else {
                        file
                    };
                    v.push(format!("kldload: {who}: {m}"));
                }
                v.push(unsupported(file));
                v
            }
            UnexpectedRelocation {
                file,
                rtype,
                symidx,
                global,
            } => {
                let mut v = vec![if *rtype == crate::reloc::R_X86_64_COPY {
                    format!("kldload: unexpected R_COPY relocation, symbol index {symidx}")
                } else {
                    format!("kldload: unexpected relocation type {rtype}, symbol index {symidx}")
                }];
                if let Some(name) = global {
                    v.push(format!("link_elf_obj: symbol {name} undefined"));
                }
                v.push(unsupported(file));
                v
            }
            UndefinedSymbol { file, symbol } => vec![
                format!("link_elf_obj: symbol {symbol} undefined"),
                unsupported(file),
            ],
            Unsupported { file, .. } | OutOfReach { file, .. } | BadMetadata { file, .. } => {
                vec![unsupported(file)]
            }
            InterfacePresent {
                module,
                version,
                container,
                ..
            } => vec![format!(
                "interface {module}.{version} already present in the KLD '{container}'!"
            )],
            Dependency { file, module, .. } => vec![
                format!(
                    "KLD {}: depends on {module} - not available or version mismatch",
                    basename(file)
                ),
                unsupported(file),
            ],
        }
    }

    /// What `kldload(8)` prints for this failure (its `warnx`/`warn` line).
    pub fn kldload_message(&self) -> String {
        let file = self.file().unwrap_or("module");
        match self.errno() {
            EEXIST => format!("kldload: can't load {file}: module already loaded or in kernel"),
            ENOEXEC => format!(
                "kldload: an error occurred while loading module {file}. Please check dmesg(8) for more details."
            ),
            e => format!("kldload: can't load {file}: {}", strerror(e)),
        }
    }

    /// This loader's own explanation, for the failures FreeBSD reports
    /// tersely or cannot have.
    pub fn note(&self) -> Option<String> {
        use LoadError::*;
        Some(match self {
            NotElf { file } => format!("kld: {file}: not an ELF file"),
            NotRelocatable { file, e_type } => format!(
                "kld: {file}: ELF type {e_type} is not ET_REL (an amd64 .ko is a relocatable object)"
            ),
            UnsupportedMachine { file, machine } => {
                format!("kld: {file}: e_machine {machine} is not EM_X86_64 (62)")
            }
            BadFile { file, reason, .. } => format!("kld: {file}: {reason}"),
            Unsupported { file, reason } => format!("kld: {file}: {reason}"),
            OutOfReach {
                file,
                symbol,
                rtype,
                place,
                value,
            } => format!(
                "kld: {file}: relocation type {rtype} against {symbol} at {place:#x} does not fit in 32 bits (value {value:#x}); imports must be in the low 2 GiB (data from kld::low_alloc, functions get a trampoline)"
            ),
            Dependency {
                module,
                min,
                pref,
                max,
                present,
                ..
            } => {
                let have = match present {
                    Some(v) => format!("{module} {v} is present"),
                    None => format!("no module {module} is present"),
                };
                let empty = if min > max { " (an empty range)" } else { "" };
                format!(
                    "kld: depends on {module} versions {min}..={max}{empty} (preferred {pref}); {have}"
                )
            }
            BadMetadata { file, reason } => format!("kld: {file}: {reason}"),
            Map { reason, .. } => format!("kld: {reason}"),
            UnsupportedHost => {
                "kld: the in-process kld loader runs on Linux x86-64 only".to_string()
            }
            Io { error, file } => format!("kld: {file}: {error}"),
            _ => return None,
        })
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut lines = Vec::new();
        if let Some(n) = self.note() {
            lines.push(n);
        }
        lines.extend(self.console());
        lines.push(self.kldload_message());
        write!(f, "{}", lines.join("\n"))
    }
}

impl std::error::Error for LoadError {}
