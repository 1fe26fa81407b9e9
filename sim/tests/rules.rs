//! GEOM's rules as the simulator models them: access counting, tasting,
//! retaste on last-writer close, orphaning, withering, clone/std_done.

mod common;

use std::sync::Arc;

use common::{add_lun_1m, both, load_counter, pass_over, Grabber, Sin, TestPass};
use geom_sim::{Access, Platform, ENXIO, EPERM};

#[test]
fn exclusive_open_refuses_writers_and_exclusives() {
    both(3, |sim| {
        add_lun_1m(sim, &["da0"]);
        sim.load_class(TestPass::new(Sin::None)).unwrap();
        TestPass::create(sim, "da0");
        let da0 = sim.g_provider_by_name("da0").unwrap();
        // The TESTPASS consumer holds da0 exclusively: DEV's consumer may
        // read but not write.
        let ex = sim.open("da0.tp", Access::new(1, 1, 1)).unwrap();
        assert_eq!(sim.open("da0", Access::new(0, 1, 0)).err(), Some(EPERM));
        let reader = sim.open("da0", Access::new(1, 0, 0)).unwrap();
        assert_eq!(sim.provider_acc(da0), Some(Access::new(2, 1, 1)));
        drop(ex);
        // A writer through DEV: an exclusive open from TESTPASS is refused.
        let w = sim.open("da0", Access::new(0, 1, 0)).unwrap();
        assert_eq!(sim.open("da0.tp", Access::new(1, 0, 1)).err(), Some(EPERM));
        assert_eq!(sim.plat().provider_access(da0), Access::new(1, 1, 0));
        drop(w);
        drop(reader);
    });
}

#[test]
fn access_propagates_through_a_class() {
    both(3, |sim| {
        add_lun_1m(sim, &["da0"]);
        pass_over(sim, "da0");
        let d = sim.open("da0.pass", Access::new(1, 1, 1)).unwrap();
        let da0 = sim.g_provider_by_name("da0").unwrap();
        assert_eq!(sim.provider_acc(da0), Some(Access::new(1, 1, 1)));
        // The exclusive open below reaches da0: its other users are refused.
        assert_eq!(sim.open("da0", Access::new(0, 1, 0)).err(), Some(EPERM));
        drop(d);
        assert_eq!(sim.provider_acc(da0), Some(Access::NONE));
    });
}

#[test]
fn new_providers_are_tasted_and_last_writer_close_retastes() {
    both(3, |sim| {
        let counter = load_counter(sim);
        let grab = Arc::new(Grabber::default());
        sim.load_class(grab.clone()).unwrap();
        let lun = add_lun_1m(sim, &["da0", "da1"]);
        assert_eq!(counter.count("da0"), 1);
        assert_eq!(counter.count("da1"), 1);
        // A reader closing does not retaste; the last writer closing does.
        drop(sim.open("da0", Access::new(1, 0, 0)).unwrap());
        sim.run_until_idle();
        assert_eq!(counter.count("da0"), 1);
        let w = sim.open("da0", Access::new(0, 1, 0)).unwrap();
        w.write(
            0,
            b"GRAB and more bytes to fill a sector"
                .repeat(16)
                .get(..512)
                .unwrap(),
        )
        .unwrap();
        drop(w);
        sim.run_until_idle();
        assert_eq!(counter.count("da0"), 2);
        // GRABBER read the label with the lock dropped and attached...
        assert_eq!(grab.grabbed.lock().unwrap().as_slice(), ["da0"]);
        let before = grab.tastes.load(std::sync::atomic::Ordering::SeqCst);
        // ... so the next retaste skips it (a class already attached), but
        // not COUNTER. da1 is the same LUN but a different provider.
        drop(sim.open("da0", Access::new(0, 1, 0)).unwrap());
        sim.run_until_idle();
        assert_eq!(counter.count("da0"), 3);
        assert_eq!(
            grab.tastes.load(std::sync::atomic::Ordering::SeqCst),
            before
        );
        drop(lun);
    });
}

#[test]
fn orphan_and_wither_free_the_geom_and_its_softc() {
    both(3, |sim| {
        let lun = add_lun_1m(sim, &["da0", "da1"]);
        pass_over(sim, "da0");
        let gp = sim.geoms_of_class("PASS")[0];
        let weak = Arc::downgrade(
            &sim.geom_softc::<geom_sim::passthrough::PassSoftc>(gp)
                .unwrap(),
        );
        let dev = sim.open("da0.pass", Access::new(1, 1, 0)).unwrap();
        dev.write(0, &[1; 512]).unwrap();
        lun.path(0).unwrap().die();
        sim.run_until_idle();
        // The pass geom was orphaned and withers; the open device fails.
        assert_eq!(dev.read(0, 512).err(), Some(ENXIO));
        drop(dev);
        sim.run_until_idle();
        assert!(!sim.geom_exists(gp), "withered geom freed after last close");
        assert!(weak.upgrade().is_none(), "softc dropped");
        assert!(sim.g_provider_by_name("da0").is_none());
        // The other path still works.
        let d1 = sim.open("da1", Access::new(1, 0, 0)).unwrap();
        assert_eq!(d1.read(0, 512).unwrap(), vec![1; 512]);
        drop(d1);
    });
}

#[test]
fn clone_children_inbed_and_first_error() {
    both(3, |sim| {
        let lun = add_lun_1m(sim, &["da0"]);
        sim.load_class(TestPass::new(Sin::None)).unwrap();
        TestPass::create(sim, "da0");
        let dev = sim.open("da0.tp", Access::new(1, 1, 0)).unwrap();
        lun.path(0).unwrap().fail_next(1, geom_sim::EIO);
        assert_eq!(dev.read(0, 512).err(), Some(geom_sim::EIO));
        assert!(dev.read(0, 512).is_ok());
        drop(dev);
    });
}

#[test]
fn class_unload_refused_while_open() {
    both(3, |sim| {
        add_lun_1m(sim, &["da0"]);
        let c = pass_over(sim, "da0");
        let d = sim.open("da0.pass", Access::new(1, 0, 0)).unwrap();
        assert_eq!(sim.unload_class(c), Err(geom_sim::EBUSY));
        drop(d);
        assert_eq!(sim.unload_class(c), Ok(()));
        assert!(sim.g_provider_by_name("da0.pass").is_none());
    });
}
