//! The adapter that plugs the multipath core into the simulator: each
//! class callback is forwarded to `geom_multipath_rs::Class<SimPlatform>`
//! or to the geom's `Arc<Softc<SimPlatform>>` (the softc the core passed to
//! `Platform::new_geom`).

use std::sync::Arc;

use geom_multipath_rs::platform::{Access, CtlReq, Errno, ENXIO};
use geom_multipath_rs::{Class, Platform, Softc};

use crate::bio::Bio;
use crate::class::{Dumpconf, SimClass};
use crate::ids::{ConsumerId, GeomId, ProviderId};
use crate::sim::SimPlatform;
use crate::violation::rule;

/// The MULTIPATH class as the simulator loads it.
#[derive(Default)]
pub struct MultipathClass {
    core: Class<SimPlatform>,
}

impl MultipathClass {
    pub fn new() -> MultipathClass {
        MultipathClass { core: Class::new() }
    }

    /// The core's class object.
    pub fn core(&self) -> &Class<SimPlatform> {
        &self.core
    }
}

fn softc(plat: &SimPlatform, gp: GeomId) -> Option<Arc<Softc<SimPlatform>>> {
    Platform::geom_softc(plat, gp)
}

/// The softc of the geom a bio reached in `method` (start or done); a
/// geom without one is a violation (the I/O path never sees the taste
/// geom).
fn io_softc(plat: &SimPlatform, gp: GeomId, method: &str) -> Option<Arc<Softc<SimPlatform>>> {
    let sc = softc(plat, gp);
    if sc.is_none() {
        plat.violation(
            rule::CLASS,
            format!("MULTIPATH {method} on {gp:?}, which has no softc"),
        );
    }
    sc
}

/// The softc of the geom `cp` belongs to, if it has one.
fn consumer_softc(plat: &SimPlatform, cp: ConsumerId) -> Option<Arc<Softc<SimPlatform>>> {
    plat.consumer_geom(cp).and_then(|gp| softc(plat, gp))
}

impl SimClass for MultipathClass {
    fn name(&self) -> &str {
        "MULTIPATH"
    }
    fn init(&self, plat: &SimPlatform) -> Result<(), Errno> {
        if ClassChoice::from_env().is_ok_and(|c| c.is_ko()) {
            // A test that builds the core class itself would pass under
            // GMR_CLASS=ko without running the module: say so.
            plat.violation(
                rule::CLASS,
                "GMR_CLASS=ko, but the core linked into the simulator was loaded as MULTIPATH: this run does not go through the module (use load_multipath, or mark the test core_only!)".into(),
            );
        }
        self.core.init(plat)
    }
    fn fini(&self, plat: &SimPlatform) {
        self.core.fini(plat);
    }
    fn tastes(&self) -> bool {
        true
    }
    fn taste(&self, plat: &SimPlatform, pp: ProviderId) -> Option<GeomId> {
        self.core.taste(plat, pp)
    }
    fn start(&self, plat: &SimPlatform, gp: GeomId, bp: Bio) {
        match io_softc(plat, gp, "start") {
            Some(sc) => sc.start(plat, bp),
            None => plat.g_io_deliver(bp, ENXIO),
        }
    }
    fn done(&self, plat: &SimPlatform, gp: GeomId, bp: Bio) {
        match io_softc(plat, gp, "done") {
            Some(sc) => sc.child_done(plat, bp),
            // A child of a geom that lost its softc: fold it back the
            // standard way so the parent still completes.
            None => plat.g_std_done(bp),
        }
    }
    fn orphan(&self, plat: &SimPlatform, cp: ConsumerId) {
        if let Some(sc) = consumer_softc(plat, cp) {
            sc.orphan(plat, cp);
        }
    }
    fn has_resize(&self) -> bool {
        true
    }
    fn resize(&self, plat: &SimPlatform, cp: ConsumerId) {
        // The taste geom has no softc and nothing to resize.
        if let Some(sc) = consumer_softc(plat, cp) {
            sc.resize(plat, cp);
        }
    }
    fn access(&self, plat: &SimPlatform, pp: ProviderId, delta: Access) -> Result<(), Errno> {
        let gp = plat.provider_geom(pp).ok_or(ENXIO)?;
        match softc(plat, gp) {
            Some(sc) => sc.access(plat, pp, delta),
            None => Err(ENXIO),
        }
    }
    fn ctlreq(&self, plat: &SimPlatform, req: &mut dyn CtlReq, verb: &str) {
        self.core.ctlreq(plat, req, verb);
    }
    fn dumpconf(&self, plat: &SimPlatform, d: &mut Dumpconf<'_>) {
        if let Some(sc) = softc(plat, d.gp) {
            let (cp, pp) = (d.cp(), d.pp());
            sc.dumpconf(plat, d.sb, d.indent, cp, pp);
        }
    }
    fn destroy_geom(&self, plat: &SimPlatform, gp: GeomId) -> Result<(), Errno> {
        self.core.destroy_geom(plat, gp)
    }
}

/// Where `load_multipath` takes the class from: `GMR_CLASS=ko` (the
/// module at `GMR_KO`, by default the one `make` builds) or the core
/// linked into the simulator (`GMR_CLASS` unset, empty or `core`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClassChoice {
    Core,
    Ko(std::path::PathBuf),
}

/// The variable choosing the class, and the one naming the module.
pub const CLASS_ENV: &str = "GMR_CLASS";
pub const KO_ENV: &str = "GMR_KO";

impl ClassChoice {
    /// From `GMR_CLASS` and `GMR_KO`; Err names a value it does not know.
    pub fn from_env() -> Result<ClassChoice, String> {
        let ko = std::env::var_os(KO_ENV);
        Self::from_values(std::env::var(CLASS_ENV).ok().as_deref(), ko.as_deref())
    }

    /// [`ClassChoice::from_env`] on given values.
    pub fn from_values(
        class: Option<&str>,
        ko: Option<&std::ffi::OsStr>,
    ) -> Result<ClassChoice, String> {
        match class.unwrap_or("") {
            "" | "core" => Ok(ClassChoice::Core),
            "ko" => Ok(ClassChoice::Ko(
                ko.filter(|p| !p.is_empty())
                    .map_or_else(crate::ko::default_ko_path, Into::into),
            )),
            other => Err(format!(
                "{CLASS_ENV}={other}: expected core or ko (the built module)"
            )),
        }
    }

    /// Whether the tests run the class from the module.
    pub fn is_ko(&self) -> bool {
        matches!(self, ClassChoice::Ko(_))
    }
}

impl SimPlatform {
    /// Loads the MULTIPATH class (`kldload geom_multipath`): the core
    /// linked into the simulator, or with `GMR_CLASS=ko` the built module,
    /// loaded in-process and kept with the simulator, which unloads it in
    /// `Sim::finish` (or when dropped). Errors are also said on stderr.
    pub fn load_multipath(&self) -> Result<crate::ids::ClassId, Errno> {
        match ClassChoice::from_env() {
            Ok(ClassChoice::Core) => self.load_class(Arc::new(MultipathClass::new())),
            Ok(ClassChoice::Ko(path)) => self.load_multipath_ko(&path),
            Err(e) => {
                eprintln!("load_multipath: {e}");
                Err(geom_multipath_rs::platform::EINVAL)
            }
        }
    }

    /// `kldload PATH` of the module, kept with the simulator.
    pub fn load_multipath_ko(&self, path: &std::path::Path) -> Result<crate::ids::ClassId, Errno> {
        self.load_multipath_ko_with(&crate::ko::KoOptions::at(path))
    }

    /// `kldload` of the module with `opts` (tunables, kernel version),
    /// kept with the simulator like [`SimPlatform::load_multipath_ko`].
    pub fn load_multipath_ko_with(
        &self,
        opts: &crate::ko::KoOptions,
    ) -> Result<crate::ids::ClassId, Errno> {
        let path = opts.path.as_path();
        if !path.exists() {
            eprintln!(
                "{CLASS_ENV}=ko: the module {} is missing: build it with `make` (scripts/kbuild.sh), or set {KO_ENV}=PATH",
                path.display()
            );
            return Err(geom_multipath_rs::platform::ENOENT);
        }
        let plat = SimPlatform::from_shared(self.sh.clone(), None);
        let kk = match crate::ko::load(&plat, opts) {
            Ok(kk) => kk,
            Err(e) => {
                eprintln!("{CLASS_ENV}=ko: kldload {}: {e}", path.display());
                return Err(e.errno());
            }
        };
        let Some(id) = kk.geom.class().1 else {
            eprintln!(
                "{CLASS_ENV}=ko: {} loaded but registered no GEOM class",
                path.display()
            );
            let _ = crate::ko::unload(&kk);
            return Err(ENXIO);
        };
        crate::util::lock(&self.sh.ko).push((kk, id));
        self.sh
            .ko_loaded
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(id)
    }
}
