//! Loading and unloading the module as `kern_linker.c` does: link (the
//! `kld` crate), register the file's modules, attach its SYSCTLs, run its
//! SYSINITs in order; on unload `MOD_QUIESCE` and `MOD_UNLOAD` (either may
//! refuse, and then nothing changes), detach the SYSCTLs, run the
//! SYSUNINITs (`malloc_uninit` reports leaks), and unmap the file so any
//! thread still running its code faults.

use std::collections::HashMap;
use std::ffi::c_int;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::kern::{self, TypeStats};
use super::kstructs as k;
use super::{enter, guarded, KoKernel, Sym};
use crate::sim::SimPlatform;
use crate::util::lock;

/// `__FreeBSD_version` of FreeBSD 15.0-RELEASE (`sys/sys/param.h` of
/// releng/15.0).
pub const FREEBSD_15_0: i32 = 1500068;

/// How to load the module.
#[derive(Clone, Debug)]
pub struct KoOptions {
    /// The `.ko` file.
    pub path: PathBuf,
    /// The emulated kernel's `__FreeBSD_version`.
    pub kernel_version: i32,
    /// Fail the Nth `M_NOWAIT` allocation (1-based), counting `malloc`,
    /// `g_clone_bio` and `g_post_event(M_NOWAIT)`.
    pub fail_nowait_at: Option<u64>,
    /// A fuller plan of `M_NOWAIT` failures; overrides `fail_nowait_at`.
    pub fail_nowait: Option<kern::FailNowait>,
    /// The kernel environment (loader.conf, `kenv`): tunables the
    /// module's `CTLFLAG_TUN` sysctls take their value from at load.
    pub tunables: Vec<(String, String)>,
}

impl Default for KoOptions {
    fn default() -> KoOptions {
        KoOptions {
            path: default_ko_path(),
            kernel_version: FREEBSD_15_0,
            fail_nowait_at: None,
            fail_nowait: None,
            tunables: Vec::new(),
        }
    }
}

impl KoOptions {
    /// The default options for the module at `path`.
    pub fn at(path: &Path) -> KoOptions {
        KoOptions {
            path: path.to_path_buf(),
            ..KoOptions::default()
        }
    }
}

/// The module `make` builds: `geom_multipath_rs/geom_multipath_rs.ko` of
/// the workspace.
pub fn default_ko_path() -> PathBuf {
    let sim = Path::new(env!("CARGO_MANIFEST_DIR"));
    sim.parent()
        .unwrap_or(sim)
        .join("geom_multipath_rs/geom_multipath_rs.ko")
}

/// Why a load or unload failed.
#[derive(Debug)]
pub enum KoError {
    /// The loader refused the file (kldload's message).
    Load(kld::LoadError),
    /// The emulated kernel could not set itself up (low memory).
    Setup(String),
    /// `module_register` refused a module (EEXIST).
    Register { module: String, errno: c_int },
    /// Every module of the file failed MOD_LOAD (ENOEXEC).
    NoModuleLoaded,
    /// A SYSCTL could not be attached.
    Sysctl(String),
    /// MOD_QUIESCE or MOD_UNLOAD refused the unload.
    Busy { module: String, errno: c_int },
    /// Unload of an instance already unloaded.
    NotLoaded,
}

impl KoError {
    /// The errno kldload/kldunload would return.
    pub fn errno(&self) -> c_int {
        match self {
            KoError::Load(e) => e.errno(),
            KoError::Setup(_) => kern::ENOMEM,
            KoError::Register { errno, .. } | KoError::Busy { errno, .. } => *errno,
            KoError::NoModuleLoaded => kern::ENOEXEC,
            KoError::Sysctl(_) => kern::EINVAL,
            KoError::NotLoaded => kern::ENOENT,
        }
    }
}

impl fmt::Display for KoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KoError::Load(e) => write!(f, "{}", e.kldload_message()),
            KoError::Setup(m) => write!(f, "emulated kernel set-up: {m}"),
            KoError::Register { module, errno } => {
                write!(f, "module_register: module {module}: error {errno}")
            }
            KoError::NoModuleLoaded => write!(f, "every module of the file failed MOD_LOAD"),
            KoError::Sysctl(m) => write!(f, "sysctl: {m}"),
            KoError::Busy { module, errno } => {
                write!(
                    f,
                    "kldunload: module {module} refused to unload: error {errno}"
                )
            }
            KoError::NotLoaded => write!(f, "the module is not loaded"),
        }
    }
}

impl std::error::Error for KoError {}

/// What the instance saw, at unload (or now, with [`KoKernel::report`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KoReport {
    /// Allocations and frees of the module's own malloc types.
    pub allocations: u64,
    pub frees: u64,
    /// Allocations still live at `malloc_uninit` (leaks), and their bytes.
    pub live_at_unload: u64,
    pub live_bytes_at_unload: u64,
    /// `M_NOWAIT` allocations seen and failed by injection.
    pub nowait_allocations: u64,
    pub nowait_failures_injected: u64,
    /// `panic(9)` calls.
    pub panics: u64,
    /// Kprocs still in module code at kldunload (each a violation; the
    /// module is then left mapped for them).
    pub kprocs_in_module_at_unload: u64,
    /// Every malloc type (the module's and `M_GEOM`).
    pub types: Vec<TypeStats>,
}

/// What was loaded.
#[derive(Clone, Debug, Default)]
pub(crate) struct LoadInfo {
    pub path: PathBuf,
    pub bytes: u64,
    pub kernel_version: i32,
    pub relocations: usize,
    /// The emulated kernel's data objects (low memory), freed after unmap.
    pub data: Vec<(usize, usize)>,
    pub unloaded: bool,
    /// Kprocs in module code at unload, which then left the module mapped.
    pub in_module_at_unload: u64,
}

/// The symbol table the module is linked against.
struct Resolver(HashMap<&'static str, kld::Import>);

impl kld::Resolver for Resolver {
    fn resolve(&self, name: &str) -> Option<kld::Import> {
        self.0.get(name).copied()
    }
}

fn import(s: Sym) -> kld::Import {
    match s {
        Sym::Func(a) => kld::Import::Func(a),
        Sym::Data(a) => kld::Import::Data(a),
    }
}

/// A zeroed data object of type T below 2 GiB.
fn low_object<T>(info: &mut LoadInfo) -> Result<*mut T, KoError> {
    let size = std::mem::size_of::<T>();
    let p = kld::low_alloc(size, 16).map_err(|e| KoError::Setup(e.to_string()))?;
    info.data.push((p as usize, size));
    Ok(p.cast())
}

/// `topology_lock` (an sx named "GEOM topology"), `sysctl___kern_geom`
/// (the `kern.geom` node) and `tick_sbt`.
fn data_objects(kk: &KoKernel, info: &mut LoadInfo) -> Result<Vec<(&'static str, Sym)>, KoError> {
    let sx: *mut k::sx = low_object(info)?;
    let node: *mut k::sysctl_oid = low_object(info)?;
    let tick: *mut i64 = low_object(info)?;
    // SAFETY: all three are fresh, zeroed, aligned objects of their type.
    unsafe {
        (*sx).lock_object.lo_name = c"GEOM topology".as_ptr();
        (*sx).lock_object.lo_flags = k::LO_INITIALIZED | k::LO_SLEEPABLE;
        (*sx).sx_lock = 1; // SX_LOCK_UNLOCKED
        (*node).oid_kind = 1 | 0xc000_0000; // CTLTYPE_NODE | CTLFLAG_RW
        (*node).oid_name = c"geom".as_ptr();
        *tick = kern::TICK_SBT;
    }
    kk.kern
        .topology_addr
        .store(sx as usize, std::sync::atomic::Ordering::Release);
    kk.kern.sysctls.add_root(node as usize, "kern.geom");
    Ok(vec![
        ("topology_lock", Sym::Data(sx as usize)),
        ("sysctl___kern_geom", Sym::Data(node as usize)),
        ("tick_sbt", Sym::Data(tick as usize)),
    ])
}

fn resolver(kk: &KoKernel, data: Vec<(&'static str, Sym)>) -> Resolver {
    let mut all = kern::symbols();
    all.extend(super::geom::symbols());
    all.extend(super::geom::data_symbols(kk));
    all.extend(super::gctl::symbols());
    all.extend(super::class::symbols());
    all.extend(data);
    Resolver(all.into_iter().map(|(n, s)| (n, import(s))).collect())
}

/// `kldload path`: links the module and runs its SYSINITs; its class is
/// then loaded into the simulator (through `g_modevent`).
pub fn load(plat: &SimPlatform, opts: &KoOptions) -> Result<Arc<KoKernel>, KoError> {
    let plan = opts
        .fail_nowait
        .or(opts.fail_nowait_at.map(kern::FailNowait::Nth));
    let kk = Arc::new(KoKernel::with_faults(plat, plan));
    kk.kern.sysctls.set_tunables(&opts.tunables);
    let mut info = LoadInfo {
        path: opts.path.clone(),
        bytes: std::fs::metadata(&opts.path).map_or(0, |m| m.len()),
        kernel_version: opts.kernel_version,
        ..LoadInfo::default()
    };
    let data = data_objects(&kk, &mut info)?;
    let lopts = kld::LoadOptions {
        kernel_version: opts.kernel_version,
        known_modules: Vec::new(),
    };
    let module = match kld::load(&opts.path, &resolver(&kk, data), &lopts) {
        Ok(m) => m,
        Err(e) => {
            for line in e.console() {
                plat.console(line);
            }
            return Err(KoError::Load(e));
        }
    };
    info.relocations = module.relocations();
    *lock(&kk.info) = info;
    enter(&kk, plat, || link_up(&kk, &module))?;
    *lock(&kk.module) = Some(module);
    Ok(kk)
}

/// What `linker_load_file` does after the link: modules, SYSCTLs,
/// SYSINITs, and the check that some module loaded.
fn link_up(kk: &Arc<KoKernel>, module: &kld::Module) -> Result<(), KoError> {
    let declared = register_modules(kk, module)?;
    register_sysctls(kk, module)?;
    for c in module.ctors() {
        call_void(c);
    }
    for s in module.sysinits() {
        // SAFETY: one of the module's own SYSINITs, while it is mapped.
        guarded(&mut || unsafe { module.call_sysinit(&s) });
    }
    if declared > 0 && kk.kern.modules.all().is_empty() {
        kk.kern.sysctls.unregister_all();
        return Err(KoError::NoModuleLoaded);
    }
    Ok(())
}

/// Calls a module `void (*)(void)` under a guard.
fn call_void(f: usize) {
    // SAFETY: f is a constructor or destructor of the mapped module.
    let f: extern "C" fn() = unsafe { std::mem::transmute(f) };
    guarded(&mut || f());
}

/// `linker_file_register_modules`: one `module_register` per MDT_MODULE.
fn register_modules(kk: &KoKernel, module: &kld::Module) -> Result<usize, KoError> {
    let mut n = 0;
    for md in module.metadata() {
        let kld::ModMetadata::Module { name, data } = md else {
            continue;
        };
        // SAFETY: data is the module's moduledata_t (MDT_MODULE entry).
        let r = unsafe { kk.kern.modules.register(data as *const k::moduledata) };
        if let Err(errno) = r {
            kk.plat.console(format!(
                "module_register: cannot register {name}: error {errno}"
            ));
            return Err(KoError::Register {
                module: name,
                errno,
            });
        }
        n += 1;
    }
    Ok(n)
}

/// `linker_file_register_sysctls`: each oid of the set linked into its
/// parent's list (`sysctl_register_oid`), a tunable's value fetched.
fn register_sysctls(kk: &KoKernel, module: &kld::Module) -> Result<(), KoError> {
    for oid in module.set("sysctl_set") {
        // SAFETY: an entry of the module's set_sysctl_set: its sysctl_oid,
        // mapped until unload unregisters it.
        let r = unsafe { kk.kern.sysctls.register(oid as *mut k::sysctl_oid) }
            .map_err(KoError::Sysctl)?;
        let o = match r {
            kern::Registered::Linked(o, warning) => {
                if let Some(w) = warning {
                    kk.plat.console(w);
                }
                o
            }
            kern::Registered::SharedNode => continue,
            kern::Registered::LeafReused(line) => {
                kk.plat.console(line);
                continue;
            }
        };
        if let Some(v) = kk.kern.sysctls.tunable_for(&o) {
            if let Err(e) = kern::sysctl_load_tunable(&o, &v) {
                let n = &o.name;
                kk.plat
                    .console(format!("Failed to set tunable {n} to \"{v}\": {e}"));
            }
        }
    }
    Ok(())
}

/// `kldunload`: asks every module (MOD_QUIESCE, then MOD_UNLOAD; a refusal
/// leaves everything as it was), detaches the SYSCTLs, runs the
/// SYSUNINITs and unmaps the file.
pub fn unload(kk: &Arc<KoKernel>) -> Result<KoReport, KoError> {
    let plat = kk.plat.clone();
    if lock(&kk.module).is_none() {
        return Err(KoError::NotLoaded);
    }
    enter(kk, &plat, || unload_modules(kk))?;
    let Some(module) = lock(&kk.module).take() else {
        return Err(KoError::NotLoaded);
    };
    enter(kk, &plat, || {
        kk.kern.sysctls.unregister_all();
        for s in module.sysuninits() {
            // SAFETY: one of the module's own SYSUNINITs, while mapped.
            guarded(&mut || unsafe { module.call_sysinit(&s) });
        }
        for d in module.dtors() {
            call_void(d);
        }
    });
    let lingering = threads_in_module(kk);
    if lingering > 0 {
        // A kernel would free the text under the thread (and crash when
        // it runs on); here the violation is recorded and the mapping is
        // kept for the thread, so the test process lives to report it.
        lock(&kk.info).in_module_at_unload = lingering;
        std::mem::forget(module);
        return Ok(kk.report());
    }
    module.unmap();
    free_data(kk);
    Ok(kk.report())
}

/// `linker_file_unload` frees the module's text once `MOD_UNLOAD` and the
/// SYSUNINITs are done; every kproc the module started must be gone from
/// its code by then (in `kproc_exit`, which runs kernel text), or it will
/// run freed memory. Records each one still there as a violation and
/// returns how many there are.
fn threads_in_module(kk: &KoKernel) -> u64 {
    let mut n = 0;
    for kp in kk.kern.kprocs.all() {
        if kp.in_module() {
            n += 1;
            kk.plat.violation(
                crate::violation::rule::DESTROY,
                format!(
                    "kproc \"{}\" is still in module code at kldunload ({:?}): the \
                     module's text would be freed under it (wait for its kproc_exit \
                     before MOD_UNLOAD returns)",
                    kp.name,
                    kp.state()
                ),
            );
        }
    }
    n
}

fn unload_modules(kk: &KoKernel) -> Result<(), KoError> {
    let mods = kk.kern.modules.all();
    for m in &mods {
        let e = kern::mod_event(m, kern::MOD_QUIESCE);
        if e != 0 && e != kern::EOPNOTSUPP && e != kern::EINVAL {
            return Err(KoError::Busy {
                module: m.name.clone(),
                errno: e,
            });
        }
    }
    for m in &mods {
        let e = kern::mod_event(m, kern::MOD_UNLOAD);
        if e != 0 {
            return Err(KoError::Busy {
                module: m.name.clone(),
                errno: e,
            });
        }
        kk.kern.modules.release(&m.name);
    }
    Ok(())
}

/// Gives the emulated kernel's data objects back (after the unmap: no
/// module code can reach them any more).
fn free_data(kk: &KoKernel) {
    let mut info = lock(&kk.info);
    info.unloaded = true;
    for (p, size) in info.data.drain(..) {
        // SAFETY: p came from low_alloc with this size; the module that
        // referenced it is unmapped and the kernel state no longer uses it.
        unsafe { kld::low_free(p as *mut u8, size) };
    }
    kk.kern
        .topology_addr
        .store(0, std::sync::atomic::Ordering::Release);
}

impl KoKernel {
    /// The counters so far (the same as [`unload`] returns at the end).
    pub fn report(&self) -> KoReport {
        let types: Vec<TypeStats> = self.kern.malloc.types().into_values().collect();
        let own = |t: &&TypeStats| t.name != "GEOM";
        let (seen, injected) = self.kern.malloc.nowait_counts();
        KoReport {
            allocations: types.iter().filter(own).map(|t| t.allocs).sum(),
            frees: types.iter().filter(own).map(|t| t.frees).sum(),
            live_at_unload: types.iter().map(|t| t.leaked_at_uninit).sum(),
            live_bytes_at_unload: types.iter().map(|t| t.leaked_bytes_at_uninit).sum(),
            nowait_allocations: seen,
            nowait_failures_injected: injected,
            panics: self.kern.panics.load(std::sync::atomic::Ordering::Acquire),
            kprocs_in_module_at_unload: lock(&self.info).in_module_at_unload,
            types,
        }
    }

    /// Where the `M_NOWAIT` allocations so far were made, and which of
    /// them failed by injection.
    pub fn nowait_log(&self) -> kern::NowaitLog {
        self.kern.malloc.nowait_log()
    }

    /// Changes which `M_NOWAIT` allocations fail from now on.
    pub fn set_fail_nowait(&self, plan: Option<kern::FailNowait>) {
        self.kern.malloc.set_plan(plan);
    }

    /// Whether the module is still loaded.
    pub fn is_loaded(&self) -> bool {
        lock(&self.module).is_some()
    }

    /// The module's mapping (start, end), while loaded.
    pub fn range(&self) -> Option<(usize, usize)> {
        lock(&self.module).as_ref().map(|m| m.range())
    }

    /// The address of a symbol the module defines, while loaded.
    pub fn symbol(&self, name: &str) -> Option<usize> {
        lock(&self.module).as_ref().and_then(|m| m.symbol(name))
    }

    /// Reads an integer sysctl of the module (`sysctl -n NAME`).
    pub fn sysctl_get(self: &Arc<Self>, name: &str) -> Result<i64, c_int> {
        let plat = self.plat.clone();
        enter(self, &plat, || {
            kern::sysctl_read_int(&self.kern.sysctls, name)
        })
    }

    /// Writes an integer sysctl of the module (`sysctl NAME=VALUE`).
    pub fn sysctl_set(self: &Arc<Self>, name: &str, value: i64) -> Result<(), c_int> {
        let plat = self.plat.clone();
        enter(self, &plat, || {
            kern::sysctl_write_int(&self.kern.sysctls, name, value)
        })
    }

    /// Every oid under `kern.geom`, walked through the tree depth first
    /// in number order: (full name, number).
    pub fn sysctl_tree(&self) -> Vec<(String, c_int)> {
        self.kern.sysctls.walk()
    }

    /// The names of the module's sysctls.
    pub fn sysctl_names(&self) -> Vec<String> {
        self.kern
            .sysctls
            .all()
            .into_iter()
            .map(|o| o.name)
            .collect()
    }

    /// The one-line summary `mpsim --ko` prints.
    pub fn summary(&self, bios: u64, faults: u64) -> String {
        self.summary_data(bios, faults).line()
    }

    /// What the summary line says, to add up over several runs.
    pub fn summary_data(&self, bios: u64, faults: u64) -> KoSummary {
        let info = lock(&self.info).clone();
        let r = self.report();
        KoSummary {
            file: info
                .path
                .file_name()
                .map_or("?".into(), |f| f.to_string_lossy().into_owned()),
            bytes: info.bytes,
            kernel_version: info.kernel_version,
            runs: 1,
            bios,
            faults,
            allocations: r.allocations,
            failed_injected: r.nowait_failures_injected,
            leaks: r.live_at_unload,
            panics: r.panics,
        }
    }
}

/// What runs through the module amounted to (one run, or a sum).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct KoSummary {
    /// The module file's name and size.
    pub file: String,
    pub bytes: u64,
    /// The emulated `__FreeBSD_version`.
    pub kernel_version: i32,
    /// Loads (runs) summed up here.
    pub runs: u64,
    pub bios: u64,
    pub faults: u64,
    pub allocations: u64,
    /// `M_NOWAIT` allocations failed by injection.
    pub failed_injected: u64,
    /// Allocations still live at `malloc_uninit`.
    pub leaks: u64,
    pub panics: u64,
}

impl KoSummary {
    /// Adds another run's counters.
    pub fn add(&mut self, o: &KoSummary) {
        if self.runs == 0 {
            self.file.clone_from(&o.file);
            self.bytes = o.bytes;
            self.kernel_version = o.kernel_version;
        }
        self.runs += o.runs;
        self.bios += o.bios;
        self.faults += o.faults;
        self.allocations += o.allocations;
        self.failed_injected += o.failed_injected;
        self.leaks += o.leaks;
        self.panics += o.panics;
    }

    /// "ko: loaded FILE (N bytes) into emulated FreeBSD __FreeBSD_version
    /// V; bios B, faults F, allocations A (failed injected X), leaks L".
    pub fn line(&self) -> String {
        let runs = if self.runs > 1 {
            format!("runs {}, ", self.runs)
        } else {
            String::new()
        };
        let panics = if self.panics > 0 {
            format!(", panics {}", self.panics)
        } else {
            String::new()
        };
        format!(
            "ko: loaded {} ({} bytes) into emulated FreeBSD __FreeBSD_version {}; {runs}bios {}, faults {}, allocations {} (failed injected {}), leaks {}{panics}",
            self.file, self.bytes, self.kernel_version, self.bios, self.faults, self.allocations, self.failed_injected, self.leaks
        )
    }
}
