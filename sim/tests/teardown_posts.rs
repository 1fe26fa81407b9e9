//! The teardown of a path posted as an event, on the core linked into the
//! simulator, when `g_post_event(M_NOWAIT)` fails for want of memory
//! (`SimPlatform::fail_nowait_posts`). The same through the built module
//! is swept by `ko_faults.rs`.
//!
//! - From done (a removed path's last bio drains), the post is `M_NOWAIT`
//!   and can fail: a console line says so, the path stays attached and
//!   LOST, and destroy still tears it down (the class then unloads).
//! - Where sleeping is allowed (the remove verb's deferred detach, the
//!   worker, the end of a destroy at the last close) the post waits for
//!   memory: no `M_NOWAIT` post is used there, so failures injected into
//!   them change nothing, and a removed path is not retasted back.

mod common;

use std::sync::{Arc, Mutex};

use common::{add_lun_1m, both};
use geom_sim::{Access, BioCmd, ClassId, Lun, MultipathClass, Sim};

/// Loads MULTIPATH into `sim` and labels mp0 on da0 and da1 of a new LUN,
/// run until idle: the class and the LUN.
fn labelled_mp0(sim: &Sim) -> (ClassId, Lun) {
    let class = sim
        .load_class(Arc::new(MultipathClass::new()))
        .expect("load");
    let lun = add_lun_1m(sim, &["da0", "da1"]);
    sim.gmultipath(&["label", "mp0", "da0", "da1"])
        .expect("label");
    sim.run_until_idle();
    (class, lun)
}

/// Console lines of `sim` from index `from` on.
fn lines_since(sim: &Sim, from: usize) -> Vec<String> {
    sim.log_lines().into_iter().skip(from).collect()
}

/// The consumers MULTIPATH geom `name` has, from the confxml.
fn consumers_of(sim: &Sim, name: &str) -> usize {
    let xml = sim.confxml();
    let Some(at) = xml.find(&format!("<name>{name}</name>")) else {
        return 0;
    };
    let geom = &xml[at..];
    let end = geom.find("</geom>").unwrap_or(geom.len());
    geom[..end].matches("<consumer ").count()
}

#[test]
fn failed_nowait_teardown_post_is_reported_and_destroy_finishes_it() {
    both(21, |sim| {
        let (class, lun) = labelled_mp0(sim);
        assert_eq!(consumers_of(sim, "mp0"), 2, "{}", sim.confxml());
        let plat = sim.plat();
        let dev = sim
            .open("multipath/mp0", Access::new(1, 1, 0))
            .expect("open mp0");
        dev.write(0, &[7; 4096]).expect("write");
        // A bio held on da0 (the active path) while da0 is removed: the
        // remove finds it busy, and the bio's done posts the teardown.
        let da0 = lun.path(0).expect("da0");
        da0.set_latency(200_000, 0);
        let started = da0.counts().started;
        let res = Arc::new(Mutex::new(None));
        let r2 = res.clone();
        dev.submit(BioCmd::Read, 0, 4096, None, move |_, r| {
            *r2.lock().unwrap() = Some((r.error, r.data))
        })
        .expect("submit");
        assert!(sim.run_until(|| da0.counts().started == started + 1));
        let before = sim.log_lines().len();
        plat.fail_nowait_posts(u64::MAX);
        sim.gmultipath(&["remove", "mp0", "da0"]).expect("remove");
        sim.run_until_idle();
        let left = plat.fail_nowait_posts(0);
        assert_eq!(
            res.lock().unwrap().take(),
            Some((0, vec![7; 4096])),
            "the held bio completes"
        );
        assert_eq!(
            left,
            u64::MAX - 1,
            "one M_NOWAIT post failed (done's): {:#?}",
            lines_since(sim, before)
        );
        sim.run_until_idle();
        let log = lines_since(sim, before);
        assert!(
            log.iter().any(
                |l| l.starts_with("GEOM_MULTIPATH: cannot post teardown of path ")
                    && l.ends_with("in mp0 (error 12): it stays attached until mp0 is destroyed")
            ),
            "{log:#?}"
        );
        assert!(
            !log.iter().any(|l| l.contains("da0 removed from mp0")),
            "{log:#?}"
        );
        // Still attached (LOST: it carries no I/O), and still readable
        // through da1.
        assert_eq!(consumers_of(sim, "mp0"), 2, "{}", sim.confxml());
        assert!(dev.read(0, 4096).is_ok());
        dev.close().expect("close");
        sim.run_until_idle();
        // Destroy tears the stranded path down, and the geom goes.
        let before = sim.log_lines().len();
        sim.gmultipath(&["destroy", "mp0"]).expect("destroy");
        sim.run_until_idle();
        let log = lines_since(sim, before);
        for want in [
            "da0 removed from mp0",
            "da1 removed from mp0",
            "mp0 destroyed",
        ] {
            assert!(log.iter().any(|l| l.contains(want)), "{want}: {log:#?}");
        }
        assert!(sim.g_provider_by_name("multipath/mp0").is_none());
        assert!(!sim.confxml().contains("<name>mp0</name>"));
        sim.unload_class(class).expect("unload");
    });
}

#[test]
fn sleeping_posts_do_not_fail_and_a_removed_path_stays_out() {
    both(21, |sim| {
        let (class, _lun) = labelled_mp0(sim);
        let plat = sim.plat();
        // Every M_NOWAIT post from here on fails.
        plat.fail_nowait_posts(u64::MAX);
        let before = sim.log_lines().len();
        // An idle path held open for writing: closed now (GEOM retastes
        // it), detached by a later event posted with M_WAITOK.
        sim.gmultipath(&["remove", "mp0", "da0"]).expect("remove");
        sim.run_until_idle();
        let log = lines_since(sim, before);
        assert!(
            log.iter().any(|l| l.contains("da0 removed from mp0")),
            "{log:#?}"
        );
        assert!(!log.iter().any(|l| l.contains("cannot")), "{log:#?}");
        assert!(
            !log.iter().any(|l| l.contains("da0 added to mp0")),
            "retasted back: {log:#?}"
        );
        assert_eq!(consumers_of(sim, "mp0"), 1, "{}", sim.confxml());
        // The last path removed while the device is open: the provider
        // is withered, its opener closes, and that last close finishes
        // the destroy by an event posted from access, with M_WAITOK.
        let dev = sim
            .open("multipath/mp0", Access::new(1, 0, 0))
            .expect("open mp0");
        sim.gmultipath(&["remove", "mp0", "da1"]).expect("remove");
        sim.run_until_idle();
        drop(dev);
        sim.run_until_idle();
        assert!(
            !sim.confxml().contains("<name>mp0</name>"),
            "{}",
            sim.confxml()
        );
        let log = lines_since(sim, before);
        assert!(log.iter().any(|l| l.contains("mp0 destroyed")), "{log:#?}");
        assert_eq!(
            plat.fail_nowait_posts(0),
            u64::MAX,
            "no M_NOWAIT post was made"
        );
        sim.unload_class(class).expect("unload");
    });
}
