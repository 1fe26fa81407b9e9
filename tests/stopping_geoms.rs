//! A device that is going away (its last path gone while it is still open)
//! no longer owns its name: FreeBSD's find_geom, create and taste skip
//! stopping geoms, so a new device of that name can be made at once, and
//! the verbs no longer see the old one.

mod common;

use std::sync::Arc;

use common::{for_each_mode, list, logged, san};
use geom_sim::{
    Access, Bio, ConsumerId, GeomId, Lun, LunConfig, Sim, SimClass, SimPlatform, ENXIO,
};

const SIZE: u64 = 1 << 20;

/// A mounted filesystem's consumer, as g_vfs keeps it: orphaned, it keeps
/// its access until the unmount (devfs, by contrast, closes at once).
struct Vfs;

impl SimClass for Vfs {
    fn name(&self) -> &str {
        "VFS"
    }
    fn tastes(&self) -> bool {
        false
    }
    fn start(&self, plat: &SimPlatform, _gp: GeomId, bp: Bio) {
        plat.g_io_deliver(bp, ENXIO);
    }
    fn orphan(&self, _plat: &SimPlatform, _cp: ConsumerId) {}
}

/// Mounts `prov`: a VFS consumer attached and opened r1w1.
fn mount(sim: &Sim, prov: &'static str) -> (SimPlatform, GeomId, ConsumerId) {
    let class = sim.load_class(Arc::new(Vfs)).expect("load VFS");
    let p = sim.plat().bound(class);
    let (gp, cp) = p
        .g_waitfor_event(move |p| {
            let gp = p.g_new_geom("vfs", None).expect("geom");
            let cp = p.g_new_consumer(gp).expect("consumer");
            let pp = p.g_provider_by_name(prov).expect("provider");
            p.g_attach(cp, pp).expect("attach");
            p.g_access(cp, Access::new(1, 1, 0)).expect("open");
            (gp, cp)
        })
        .expect("mount");
    (p, gp, cp)
}

/// Unmounts: the last close, then the consumer and geom go.
fn unmount(sim: &Sim, (p, gp, cp): (SimPlatform, GeomId, ConsumerId)) {
    p.g_waitfor_event(move |p| {
        let _ = p.g_access(cp, Access::new(-1, -1, 0));
        p.g_detach(cp);
        p.g_destroy_consumer(cp);
        p.g_destroy_geom(gp);
    })
    .expect("unmount");
    sim.run_until_idle();
}

type Mount = (SimPlatform, GeomId, ConsumerId);

/// `mp` labelled on da0/da1 and mounted, then both paths pulled: the
/// device is stopping but still open under the filesystem.
fn withered_but_open(sim: &Sim, lun: &Lun) -> Mount {
    sim.gmultipath(&["label", "mp", "da0", "da1"])
        .expect("label");
    sim.run_until_idle();
    let m = mount(sim, "multipath/mp");
    lun.path(0).unwrap().die();
    lun.path(1).unwrap().die();
    sim.run_until_idle();
    assert!(logged(sim, "GEOM_MULTIPATH: destroying mp"));
    assert!(!logged(sim, "GEOM_MULTIPATH: mp destroyed"), "still open");
    m
}

#[test]
fn create_and_label_can_reuse_the_name_of_a_stopping_device() {
    for_each_mode(|m| {
        let (sim, a) = san(m, 401, &["da0", "da1"], SIZE);
        sim.add_lun(LunConfig::new(&["db0", "db1"], SIZE)).unwrap();
        sim.add_lun(LunConfig::new(&["dc0", "dc1"], SIZE)).unwrap();
        sim.run_until_idle();
        let dev = withered_but_open(&sim, &a);
        // The verbs do not see it any more.
        assert_eq!(
            sim.gmultipath(&["getactive", "mp"]).err().as_deref(),
            Some("Device mp is invalid")
        );
        // A new manual device of that name.
        sim.gmultipath(&["create", "mp", "db0", "db1"])
            .expect("create mp while the old mp is stopping");
        sim.run_until_idle();
        assert_eq!(sim.gmultipath(&["getactive", "mp"]).unwrap().trim(), "db0");
        let listed = list(&sim, "mp").expect("new mp");
        assert_eq!(listed.paths.len(), 2);
        // The old one goes at its last close; the new one stays.
        unmount(&sim, dev);
        assert!(logged(&sim, "GEOM_MULTIPATH: mp destroyed"));
        assert_eq!(sim.gmultipath(&["getactive", "mp"]).unwrap().trim(), "db0");
        let w = sim
            .open("multipath/mp", Access::new(1, 1, 0))
            .expect("new mp opens");
        w.write(0, &[7u8; 512]).expect("write through the new mp");
        drop(w);
        sim.run_until_idle();
        sim
    });
}

#[test]
fn a_label_of_the_same_name_assembles_while_the_old_device_is_stopping() {
    for_each_mode(|m| {
        let (sim, a) = san(m, 402, &["da0", "da1"], SIZE);
        sim.add_lun(LunConfig::new(&["dc0", "dc1"], SIZE)).unwrap();
        sim.run_until_idle();
        let dev = withered_but_open(&sim, &a);
        sim.gmultipath(&["label", "mp", "dc0", "dc1"])
            .expect("label");
        sim.run_until_idle();
        assert!(
            !logged(&sim, "name mp already exists"),
            "{:?}",
            sim.log_lines()
        );
        let listed = list(&sim, "mp").expect("labelled mp assembled");
        assert_eq!(listed.paths.len(), 2);
        assert_eq!(listed.kind, "AUTOMATIC");
        unmount(&sim, dev);
        assert!(logged(&sim, "GEOM_MULTIPATH: mp destroyed"));
        assert!(list(&sim, "mp").is_some());
        sim
    });
}
