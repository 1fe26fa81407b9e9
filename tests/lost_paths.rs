//! Paths that leave with I/O in flight on them: `gmultipath remove` under
//! load, and errors coming back from a path that is already LOST. FreeBSD's
//! g_multipath_done_error logs and faults a path on its first error
//! whatever else it is, and its remove keeps the path out while the bios
//! drain (access dropped and the consumer marked withering first, the
//! detach in a later event).

mod common;

use common::{getactive, list, logged, submit_writes, with_device};
use geom_sim::Access;

const N: usize = 32;
const DA: [&str; 2] = ["da0", "da1"];

/// An error from a path that is already LOST (its device went away while
/// bios were in flight on it) is still "Error 6, da0 in mp marked FAIL",
/// once, and the bios go on to da1.
#[test]
fn an_error_on_a_lost_path_is_logged_and_faults_it() {
    with_device(501, &DA, &["create", "mp", "da0", "da1"], |sim, lun| {
        let da0 = lun.path(0).unwrap();
        da0.set_latency(200_000, 0);
        let dev = sim.open("multipath/mp", Access::new(1, 1, 0)).unwrap();
        let w = submit_writes(&dev, N, 512);
        // Every write is on da0 when its device goes: the orphan comes
        // first, the ENXIO completions after it.
        sim.run_until(|| da0.counts().started >= N as u64);
        da0.die();
        sim.run_until(|| w.done() == N as u64);
        sim.run_until_idle();
        assert!(w.all_ok(), "{:?}", w.results());
        let lines = sim.log_lines();
        let at = |want: &str| lines.iter().position(|l| l == want);
        let lost = at("GEOM_MULTIPATH: da0 in mp was disconnected");
        let error = at("GEOM_MULTIPATH: Error 6, da0 in mp marked FAIL");
        let gone = at("GEOM_MULTIPATH: da0 removed from mp");
        assert!(
            lost.is_some() && error.is_some() && gone.is_some(),
            "{lines:?}"
        );
        assert!(lost < error && error < gone, "{lines:?}");
        assert_eq!(
            lines.iter().filter(|l| l.contains("marked FAIL")).count(),
            1,
            "{lines:?}"
        );
        assert!(!logged(sim, "all paths in mp"), "{lines:?}");
        assert_eq!(getactive(sim, "mp"), "da1");
        assert_eq!(list(sim, "mp").unwrap().paths.len(), 1);
        drop(dev);
    });
}

/// `gmultipath remove` of every path of a labelled device while writes are
/// in flight on them: the paths stay out (the close that would retaste
/// them comes before the detach, as FreeBSD's g_mpd does it), so the
/// device goes with its last path. The writes already sent complete.
#[test]
fn removing_every_path_under_load_removes_the_device() {
    with_device(
        502,
        &DA,
        &["label", "-A", "mp", "da0", "da1"],
        |sim, lun| {
            assert_eq!(list(sim, "mp").unwrap().paths.len(), 2);
            for i in 0..2 {
                lun.path(i).unwrap().set_latency(200_000, 0);
            }
            let dev = sim.open("multipath/mp", Access::new(1, 1, 0)).unwrap();
            let w = submit_writes(&dev, N, 512);
            let started =
                || lun.path(0).unwrap().counts().started + lun.path(1).unwrap().counts().started;
            sim.run_until(|| started() >= N as u64);
            let from = sim.log_lines().len();
            sim.gmultipath(&["remove", "mp", "da0"]).unwrap();
            sim.gmultipath(&["remove", "mp", "da1"]).unwrap();
            sim.run_until(|| w.done() == N as u64);
            sim.run_until_idle();
            assert!(w.all_ok(), "{:?}", w.results());
            drop(dev);
            sim.run_until_idle();
            let lines = sim.log_lines()[from..].to_vec();
            assert!(list(sim, "mp").is_none(), "{lines:?}");
            assert!(
                !lines.iter().any(|l| l.contains("added to mp")),
                "a removed path was tasted back: {lines:?}"
            );
            assert!(
                lines.iter().any(|l| l == "GEOM_MULTIPATH: mp destroyed"),
                "{lines:?}"
            );
        },
    );
}
