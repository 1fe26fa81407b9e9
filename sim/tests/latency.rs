//! Latency after a path error (issue 12): a bio the class re-issues after
//! its path failed it completes within two service times plus the fault's
//! own latency, and waits for the worker no longer than one service time.
//! Exact in deterministic (virtual) time; the threaded figures are printed.

use geom_sim::latency::LatencyStats;
use geom_sim::workload::{run_workload, WorkloadConfig};
use geom_sim::{Access, LunConfig, Mode, Sim, SimConfig, EIO};

/// Each path's service time, µs (no jitter): also the failing path's
/// latency in returning its error (the fault's own latency).
const SERVICE_US: u64 = 200;

/// One LUN, two paths of `SERVICE_US`, an A/P device; after 60 bios the
/// active path fails its next `fails` bios. Returns the latency figures.
fn run(mode: Mode, seed: u64, fails: u32) -> LatencyStats {
    let sim = Sim::new(SimConfig::new(mode, seed));
    let lun = sim
        .add_lun(LunConfig::new(&["da0", "da1"], 4 << 20))
        .expect("LUN");
    sim.load_multipath().expect("MULTIPATH loads");
    sim.gmultipath(&["label", "mp0", "da0", "da1"])
        .expect("label");
    sim.run_until_idle();
    for i in 0..2 {
        lun.path(i).expect("path").set_latency(SERVICE_US, 0);
    }
    let dev = sim
        .open("multipath/mp0", Access::new(1, 1, 0))
        .expect("open mp0");
    let cfg = WorkloadConfig {
        bios: 400,
        queue_depth: 4,
        span: 1 << 20,
        seed,
        ..Default::default()
    };
    let p0 = lun.path(0).expect("path 0");
    let st = run_workload(&sim, &dev, &cfg, &mut |issued, _| {
        if issued == 60 {
            p0.fail_next(fails, EIO);
        }
    });
    assert_eq!(
        (st.completed, st.failed, st.mismatches, st.lost),
        (400, 0, 0, 0),
        "{st:?}"
    );
    let lat = sim.latency();
    drop(dev);
    sim.finish().assert_clean();
    lat
}

#[test]
fn failover_latency_within_two_service_times_deterministic() {
    let s = SERVICE_US * 1000;
    for seed in 1..=8 {
        let lat = run(Mode::Deterministic, seed, 3);
        eprintln!("seed {seed}: {}", lat.text());
        assert_eq!(lat.clock, "virtual");
        assert_eq!(lat.all.count, 400);
        assert!(lat.reissued.count >= 1, "a bio was re-issued: {lat:?}");
        assert_eq!(lat.failover.count, lat.reissued.count, "{lat:?}");
        // A bio's latency is at least one service time.
        assert!(lat.all.p50_ns >= s, "{lat:?}");
        // Failed over: the failing path's latency (the fault's own, one
        // service time here) plus at most two service times.
        assert!(
            lat.reissued.max_ns <= 2 * s + s,
            "a re-issued bio took {} ns > 2 x {s} + {s}: {lat:?}",
            lat.reissued.max_ns
        );
        // Error to re-issue: at most one service time on the worker.
        assert!(
            lat.worker_wait.max_ns <= s,
            "a bio waited {} ns for the worker: {lat:?}",
            lat.worker_wait.max_ns
        );
        // Error to completion of the re-issued bio: its new path's
        // service time and the hand-offs, under two service times.
        assert!(lat.failover.max_ns <= 2 * s, "{lat:?}");
        assert!(lat.failover.p50_ns >= s, "{lat:?}");
    }
}

#[test]
fn no_path_error_no_reissue() {
    let lat = run(Mode::Deterministic, 3, 0);
    assert_eq!(lat.reissued.count, 0, "{lat:?}");
    assert_eq!(lat.failover.count, 0, "{lat:?}");
    assert_eq!(lat.worker_wait.count, 0, "{lat:?}");
    assert!(lat.all.max_ns < 2 * SERVICE_US * 1000, "{lat:?}");
}

/// Threaded: wall time on a shared machine, so only printed (the figures
/// of the README come from here) and checked for being measured at all.
#[test]
fn failover_latency_threaded_figures() {
    let lat = run(Mode::Threaded, 5, 3);
    eprintln!("threaded: {}", lat.text());
    assert_eq!(lat.clock, "wall");
    assert_eq!(lat.all.count, 400);
    assert!(lat.reissued.count >= 1, "{lat:?}");
    assert!(lat.all.p50_ns >= SERVICE_US * 1000, "{lat:?}");
}
