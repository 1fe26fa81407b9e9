//! What the simulator tests share: their set-ups (both schedulers, a PASS
//! over a disk, a labelled multipath) and test classes: a pass-through
//! with a misbehaviour switch, a taster that only counts, and a taster
//! that grabs what it tastes.
#![allow(dead_code)]

pub mod ko;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use geom_multipath_rs::platform::WaitQueue;
use geom_sim::topology::Direct;
use geom_sim::{
    Access, Bio, ClassId, ConsumerId, Dev, Errno, GeomId, Lun, LunConfig, Mode, PassClass,
    Platform, ProviderId, Sim, SimClass, SimConfig, SimPlatform, ENXIO,
};

/// Runs `f` on a fresh simulator seeded `seed` under each scheduler,
/// deterministic first, then threaded; once `f` has returned (and dropped
/// what it opened), each run must finish clean.
pub fn both(seed: u64, f: impl Fn(&Sim)) {
    for mode in [Mode::Deterministic, Mode::Threaded] {
        let sim = Sim::new(SimConfig::new(mode, seed));
        f(&sim);
        sim.finish().assert_clean();
    }
}

/// Adds a 1 MiB LUN reached through `paths` to `sim`.
pub fn add_lun_1m(sim: &Sim, paths: &[&str]) -> Lun {
    sim.add_lun(LunConfig::new(paths, 1 << 20))
        .unwrap_or_else(|e| panic!("LUN on {paths:?}: {e}"))
}

/// Loads the PASS class into `sim` and creates `<prov>.pass` over `prov`,
/// run until idle; returns the class.
pub fn pass_over(sim: &Sim, prov: &str) -> ClassId {
    let class = sim.load_class(Arc::new(PassClass)).expect("load PASS");
    sim.pass_create(prov)
        .unwrap_or_else(|e| panic!("PASS create {prov}: {e}"));
    sim.run_until_idle();
    class
}

/// Loads a [`Counter`] into `sim`.
pub fn load_counter(sim: &Sim) -> Arc<Counter> {
    let counter = Arc::new(Counter::default());
    sim.load_class(counter.clone()).expect("load COUNTER");
    counter
}

/// Labels multipath `mp` on da0 and da1 of `sim` (its class loaded) and
/// opens it for reading and writing, each step run until idle.
pub fn label_and_open(sim: &Sim) -> Dev {
    assert_eq!(
        sim.gmultipath(&["label", "mp", "da0", "da1"]),
        Ok(String::new())
    );
    sim.run_until_idle();
    sim.open("multipath/mp", Access::new(1, 1, 0))
        .expect("open")
}

/// What the misbehaving pass-through does wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sin {
    None,
    /// Sleeps on a wait queue in done.
    SleepInDone,
    /// Takes the topology lock in start.
    LockInStart,
    /// Creates a geom from done without the topology lock.
    TopologyInDone,
    /// Passes opens down but not closes.
    LeakAccess,
    /// Delivers the parent at once as well as through the child.
    CompleteTwice,
    /// Reads synchronously from start.
    ReadInStart,
    /// Drops the bio in start.
    LoseBio,
    /// Holds a class mutex across g_io_request in start.
    MutexAcrossRequest,
    /// Holds a class mutex across g_std_done in done.
    MutexAcrossDone,
    /// Detaches its consumer in orphan while I/O is in flight and open.
    DetachBusy,
}

pub struct TestPass {
    pub sin: Sin,
    pub name: &'static str,
}

pub struct TpSoftc {
    pub cp: ConsumerId,
}

impl TestPass {
    pub fn new(sin: Sin) -> Arc<TestPass> {
        Arc::new(TestPass {
            sin,
            name: "TESTPASS",
        })
    }

    /// Creates `<prov>.tp` over `prov` (runs on the event thread).
    pub fn create(plat: &SimPlatform, prov: &str) {
        let prov = prov.to_string();
        let cid = plat.class_by_name("TESTPASS").expect("TESTPASS loaded");
        plat.g_waitfor_event(move |p| {
            let p = p.bound(cid);
            let pp = p.g_provider_by_name(&prov).expect("provider");
            let (size, ss) = p.provider_size(pp).expect("size");
            let gp = p.g_new_geom(&format!("{prov}.tp"), None).expect("geom");
            let cp = p.g_new_consumer(gp).expect("consumer");
            // Direct dispatch both ways, as g_nop.
            p.set_consumer_direct(cp, Direct::BOTH);
            p.g_attach(cp, pp).expect("attach");
            p.topo_set_softc(gp, Arc::new(TpSoftc { cp }));
            let np = p
                .g_new_provider(gp, &format!("{prov}.tp"), size, ss)
                .expect("provider");
            p.set_provider_direct(np, Direct::BOTH);
            p.g_error_provider(np, 0);
        });
        plat.run_until_idle();
    }
}

impl SimClass for TestPass {
    fn name(&self) -> &str {
        self.name
    }
    fn start(&self, plat: &SimPlatform, gp: GeomId, bp: Bio) {
        let sc = plat.geom_softc::<TpSoftc>(gp).expect("softc");
        match self.sin {
            Sin::LockInStart => {
                plat.topology_lock();
                plat.topology_unlock();
            }
            Sin::ReadInStart => {
                let _ = plat.read_data(sc.cp, 0, 512);
            }
            Sin::LoseBio => {
                drop(bp);
                return;
            }
            _ => {}
        }
        let child = plat.g_clone_bio(&bp).expect("clone");
        if self.sin == Sin::MutexAcrossRequest {
            let wq = plat.new_wait_queue("tp").expect("wq");
            plat.release_to_children(bp);
            wq.lock();
            plat.g_io_request(child, sc.cp);
            wq.unlock();
            return;
        }
        if self.sin == Sin::CompleteTwice {
            plat.g_io_request(child, sc.cp);
            plat.g_io_deliver(bp, 0);
        } else {
            plat.release_to_children(bp);
            plat.g_io_request(child, sc.cp);
        }
    }
    fn done(&self, plat: &SimPlatform, _gp: GeomId, bp: Bio) {
        match self.sin {
            Sin::SleepInDone => {
                let wq = plat.new_wait_queue("test").expect("wq");
                wq.lock();
                wq.sleep();
                wq.unlock();
            }
            Sin::TopologyInDone => {
                let _ = plat.g_new_geom("bogus", None);
            }
            Sin::MutexAcrossDone => {
                let wq = plat.new_wait_queue("tp").expect("wq");
                wq.lock();
                plat.g_std_done(bp);
                wq.unlock();
                return;
            }
            _ => {}
        }
        plat.g_std_done(bp);
    }
    fn orphan(&self, plat: &SimPlatform, cp: ConsumerId) {
        if self.sin == Sin::DetachBusy {
            plat.g_detach(cp);
            return;
        }
        let gp = plat.consumer_geom(cp).expect("geom");
        plat.g_wither_geom(gp, ENXIO);
    }
    fn access(&self, plat: &SimPlatform, pp: ProviderId, d: Access) -> Result<(), Errno> {
        let gp = plat.provider_geom(pp).ok_or(ENXIO)?;
        let sc = plat.geom_softc::<TpSoftc>(gp).ok_or(ENXIO)?;
        if self.sin == Sin::LeakAccess && (d.r < 0 || d.w < 0 || d.e < 0) {
            return Ok(());
        }
        plat.g_access(sc.cp, d)
    }
    fn destroy_geom(&self, plat: &SimPlatform, gp: GeomId) -> Result<(), Errno> {
        plat.g_wither_geom(gp, ENXIO);
        Ok(())
    }
}

/// Tastes everything and records the provider names; attaches nothing.
#[derive(Default)]
pub struct Counter {
    pub tasted: Mutex<Vec<String>>,
}

impl Counter {
    pub fn count(&self, name: &str) -> usize {
        self.tasted
            .lock()
            .unwrap()
            .iter()
            .filter(|n| *n == name)
            .count()
    }
}

impl SimClass for Counter {
    fn name(&self) -> &str {
        "COUNTER"
    }
    fn tastes(&self) -> bool {
        true
    }
    fn taste(&self, plat: &SimPlatform, pp: ProviderId) -> Option<GeomId> {
        plat.g_topology_assert("taste");
        self.tasted
            .lock()
            .unwrap()
            .push(plat.provider_name_of(pp).unwrap_or_default());
        None
    }
    fn start(&self, plat: &SimPlatform, _gp: GeomId, bp: Bio) {
        plat.g_io_deliver(bp, ENXIO);
    }
    fn orphan(&self, _plat: &SimPlatform, _cp: ConsumerId) {}
}

/// Tastes like a label class: a taste geom opens the provider r1, reads
/// its first sector with the topology lock dropped (as real classes do),
/// then keeps a consumer attached (no access) if the sector starts with
/// "GRAB".
#[derive(Default)]
pub struct Grabber {
    pub tastes: AtomicUsize,
    pub grabbed: Mutex<Vec<String>>,
}

impl SimClass for Grabber {
    fn name(&self) -> &str {
        "GRABBER"
    }
    fn tastes(&self) -> bool {
        true
    }
    fn taste(&self, plat: &SimPlatform, pp: ProviderId) -> Option<GeomId> {
        self.tastes.fetch_add(1, Ordering::SeqCst);
        let name = plat.provider_name_of(pp)?;
        let gp = plat.g_new_geom(&format!("{name}.taste"), None).ok()?;
        let cp = plat.g_new_consumer(gp).ok()?;
        plat.g_attach(cp, pp).ok()?;
        let data = if plat.g_access(cp, Access::new(1, 0, 0)).is_ok() {
            plat.topology_unlock();
            let d = plat.read_data(cp, 0, 512);
            plat.topology_lock();
            let _ = plat.g_access(cp, Access::new(-1, 0, 0));
            d.ok()
        } else {
            None
        };
        let grab = data.is_some_and(|d| d.starts_with(b"GRAB"));
        if grab {
            self.grabbed.lock().unwrap().push(name);
            return Some(gp);
        }
        plat.g_detach(cp);
        plat.g_destroy_consumer(cp);
        plat.g_destroy_geom(gp);
        None
    }
    fn start(&self, plat: &SimPlatform, _gp: GeomId, bp: Bio) {
        plat.g_io_deliver(bp, ENXIO);
    }
    fn orphan(&self, plat: &SimPlatform, cp: ConsumerId) {
        if let Some(gp) = plat.consumer_geom(cp) {
            plat.g_wither_geom(gp, ENXIO);
        }
    }
    fn destroy_geom(&self, plat: &SimPlatform, gp: GeomId) -> Result<(), Errno> {
        plat.g_wither_geom(gp, ENXIO);
        Ok(())
    }
}
