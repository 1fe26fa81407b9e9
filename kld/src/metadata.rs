//! Module metadata (`set_modmetadata_set`) and the dependency check of
//! `linker_load_dependencies` (`sys/kern/kern_linker.c`).
//!
//! Layouts, from FreeBSD 15's `sys/module.h` (LP64):
//! `struct mod_metadata { int md_version; int md_type; const void *md_data;
//! const char *md_cval; }` (24 bytes: 0, 4, 8, 16);
//! `struct mod_depend { int md_ver_minimum, md_ver_preferred, md_ver_maximum; }`;
//! `struct mod_version { int mv_version; }`;
//! MDT_DEPEND 1, MDT_MODULE 2 (md_data is the `moduledata_t`), MDT_VERSION 3,
//! MDT_PNP_INFO 4.

use crate::error::LoadError;
use crate::layout::Layout;
use crate::ModMetadata;

/// MDT_DEPEND.
pub const MDT_DEPEND: i32 = 1;
/// MDT_MODULE.
pub const MDT_MODULE: i32 = 2;
/// MDT_VERSION.
pub const MDT_VERSION: i32 = 3;

/// Bounds-checked reads of the module's memory.
pub struct Mem<'a> {
    /// The mapping.
    pub layout: &'a Layout,
    /// The file, for messages.
    pub file: &'a str,
}

impl Mem<'_> {
    fn bad(&self, reason: String) -> LoadError {
        LoadError::BadMetadata {
            file: self.file.to_string(),
            reason,
        }
    }

    /// Reads a u64 at `addr`, which must be inside the module.
    pub fn u64(&self, addr: usize, what: &str) -> Result<u64, LoadError> {
        if !self.layout.contains(addr, 8) {
            return Err(self.bad(format!("{what} at {addr:#x} is outside the module")));
        }
        // SAFETY: [addr, addr + 8) is inside the module's live mapping, which
        // is readable whatever its final rights.
        Ok(unsafe { std::ptr::read_unaligned(addr as *const u64) })
    }

    /// Reads an i32 at `addr`, which must be inside the module.
    pub fn i32(&self, addr: usize, what: &str) -> Result<i32, LoadError> {
        if !self.layout.contains(addr, 4) {
            return Err(self.bad(format!("{what} at {addr:#x} is outside the module")));
        }
        // SAFETY: as in `u64`, 4 bytes.
        Ok(unsafe { std::ptr::read_unaligned(addr as *const i32) })
    }

    /// Reads a NUL-terminated string at `addr`, all inside the module.
    pub fn cstr(&self, addr: usize, what: &str) -> Result<String, LoadError> {
        if !self.layout.contains(addr, 1) {
            return Err(self.bad(format!("{what} at {addr:#x} is outside the module")));
        }
        let max = self.layout.base + self.layout.len - addr;
        // SAFETY: [addr, addr + max) is the rest of the live, readable
        // mapping.
        let bytes = unsafe { std::slice::from_raw_parts(addr as *const u8, max) };
        match bytes.iter().position(|&b| b == 0) {
            Some(n) => Ok(String::from_utf8_lossy(&bytes[..n]).into_owned()),
            None => Err(self.bad(format!("{what} at {addr:#x} is not terminated"))),
        }
    }

    /// The pointer entries of the set section at [start, start + size).
    pub fn pointers(&self, start: usize, size: u64, set: &str) -> Result<Vec<usize>, LoadError> {
        let n = usize::try_from(size / 8).map_err(|_| self.bad(format!("{set} too large")))?;
        (0..n)
            .map(|i| self.u64(start + 8 * i, set).map(|v| v as usize))
            .collect()
    }
}

/// Decodes the entries of `set_modmetadata_set` (empty if the file has
/// none).
pub fn decode(mem: &Mem<'_>, set: Option<(usize, u64)>) -> Result<Vec<ModMetadata>, LoadError> {
    let Some((start, size)) = set else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for p in mem.pointers(start, size, "set_modmetadata_set entry")? {
        let md_type = mem.i32(p.wrapping_add(4), "mod_metadata")?;
        let data = mem.u64(p.wrapping_add(8), "mod_metadata")? as usize;
        let cval = mem.u64(p.wrapping_add(16), "mod_metadata")? as usize;
        let name = mem.cstr(cval, "mod_metadata md_cval")?;
        out.push(match md_type {
            MDT_DEPEND => ModMetadata::Depend {
                module: name,
                min: mem.i32(data, "mod_depend")?,
                pref: mem.i32(data.wrapping_add(4), "mod_depend")?,
                max: mem.i32(data.wrapping_add(8), "mod_depend")?,
            },
            MDT_VERSION => ModMetadata::Version {
                module: name,
                version: mem.i32(data, "mod_version")?,
            },
            MDT_MODULE => ModMetadata::Module { name, data },
            kind => ModMetadata::Other { kind, name },
        });
    }
    Ok(out)
}

/// `modlist_lookup2`: the version of `name` that satisfies (min, pref,
/// max) among `present`: the preferred version if present (even outside
/// [min, max]), else the highest one in [min, max].
pub fn lookup2(
    present: &[(String, i32)],
    name: &str,
    min: i32,
    pref: i32,
    max: i32,
) -> Option<i32> {
    let mut best: Option<i32> = None;
    for (n, v) in present {
        if n != name {
            continue;
        }
        if *v == pref {
            return Some(*v);
        }
        if *v >= min && *v <= max && best.is_none_or(|b| *v > b) {
            best = Some(*v);
        }
    }
    best
}

/// The check `linker_load_dependencies` makes before the module's global
/// relocations: no MDT_VERSION of the file may name an interface already
/// present (same name, and same version unless the file's is 0), and each
/// MDT_DEPEND that is not a self-reference (a name the file itself gives an
/// MDT_VERSION) must be satisfied by a present module. `present` includes
/// `("kernel", __FreeBSD_version)`.
pub fn check_dependencies(
    file: &str,
    md: &[ModMetadata],
    present: &[(String, i32)],
) -> Result<(), LoadError> {
    for m in md {
        if let ModMetadata::Version { module, version } = m {
            if present
                .iter()
                .any(|(n, v)| n == module && (*version == 0 || v == version))
            {
                return Err(LoadError::InterfacePresent {
                    file: file.to_string(),
                    module: module.clone(),
                    version: *version,
                    container: "kernel".to_string(),
                });
            }
        }
    }
    for m in md {
        let ModMetadata::Depend {
            module,
            min,
            pref,
            max,
        } = m
        else {
            continue;
        };
        let self_ref = md
            .iter()
            .any(|o| matches!(o, ModMetadata::Version { module: n, .. } if n == module));
        if self_ref {
            continue;
        }
        if lookup2(present, module, *min, *pref, *max).is_none() {
            return Err(LoadError::Dependency {
                file: file.to_string(),
                module: module.clone(),
                min: *min,
                pref: *pref,
                max: *max,
                present: present
                    .iter()
                    .filter(|(n, _)| n == module)
                    .map(|(_, v)| *v)
                    .max(),
            });
        }
    }
    Ok(())
}
