//! geom-sim: a userland model of FreeBSD GEOM on which `geom_multipath_rs`
//! runs and is tested.
//!
//! The simulator enforces GEOM's rules (see [`violation`]) instead of being
//! kinder than the kernel: one topology lock with an owner, an event thread,
//! separate `g_down`/`g_up` threads where nothing may sleep, access counts
//! with GEOM's refusals, attach/detach, orphaning and withering,
//! `g_clone_bio`/`g_std_done`, and disks whose several paths share one
//! backing store, with per-path faults. It runs on real threads or under a
//! deterministic, seeded scheduler ([`Mode`]).
//!
//! Module map (each module is also re-exported at the crate root, so
//! `geom_sim::sim`, `geom_sim::ko`, `geom_sim::fuzzing`... keep their paths):
//!
//! - [`model`]: the userland GEOM: topology, bios, schedulers, disks and
//!   faults, the DEV and pass-through classes, gctl, the rules it enforces.
//! - [`adapter`]: what plugs the multipath core into the model: the
//!   `Platform` impl, the MULTIPATH class, and the `.ko` loader's
//!   emulated FreeBSD KPI (`ko`).
//! - [`frontend`]: `gmultipath` as a user types it; the binaries in
//!   `src/bin/` (`mpsim`, `mpsim-serve`) drive it.
//! - [`harness`]: what runs and measures the model: scenarios, workloads,
//!   seed sweeps, benchmarks, the fuzz target bodies.
//! - [`util`]: poison-tolerant locking and a seeded generator, shared by
//!   all four.
//!
//! A first run:
//!
//! ```no_run
//! use geom_sim::{Sim, LunConfig, Access};
//! let sim = Sim::deterministic(1);
//! let lun = sim.add_lun(LunConfig::new(&["da0", "da1"], 1 << 20)).unwrap();
//! sim.pass_create("da0").unwrap();
//! let dev = sim.open("/dev/da0.pass", Access::new(1, 1, 0)).unwrap();
//! dev.write(0, &[7u8; 512]).unwrap();
//! lun.path(0).unwrap().fail_next(1, geom_sim::EIO);
//! assert!(dev.read(0, 512).is_err());
//! drop(dev);
//! sim.finish().assert_clean();
//! ```

// The simulator's docs are for the people who work on it and are built
// with --document-private-items (make test's doc step): module overviews
// link to the private submodules that hold each concern.
#![allow(rustdoc::private_intra_doc_links)]

pub mod model;
use model::toplock;
pub use model::{
    bio, class, confxml, ctl, dev, disk, fault, ids, passthrough, sched, sim, store, topology,
    violation,
};
pub mod frontend;
pub use frontend::gmultipath;
pub mod harness;
pub use harness::{
    bench, classbench, fuzzing, ko_summary, latency, scale, scenario, seeds, workload,
};
pub mod adapter;
pub use adapter::{ko, multipath, platform};

pub mod util;

pub use bio::{Bio, BioResult};
pub use class::SimClass;
pub use ctl::SimCtlReq;
pub use dev::Dev;
pub use disk::{Lun, LunConfig, PathCounts, PathHandle, StoreKind, PHYSPATH};
pub use fault::Faults;
pub use geom_multipath_rs::platform::{
    Access, BioCmd, CtlReq, Errno, Platform, WaitQueue, EBUSY, EFAULT, EINVAL, EIO, ENOENT, ENOMEM,
    ENXIO, EOPNOTSUPP, EPERM,
};
pub use ids::{BioId, ClassId, ConsumerId, GeomId, ProviderId};
pub use multipath::{ClassChoice, MultipathClass};
pub use passthrough::PassClass;
pub use platform::SimWaitQueue;
pub use sched::{Ctx, Mode};
pub use seeds::for_seeds;
pub use sim::{Report, Sim, SimConfig, SimPlatform};
pub use violation::{rule, Violation};
