//! The deterministic scheduler: same seed, same run; the seed helper.

mod common;

use std::sync::{Arc, Mutex};

use common::{pass_over, Grabber};
use geom_sim::seeds::for_seeds_or_only;
use geom_sim::workload::{run_workload, WorkloadConfig};
use geom_sim::{for_seeds, Access, LunConfig, Sim, EIO};

/// A pass-through run with faults and latency; returns (trace hash, stats).
fn run(seed: u64) -> (u64, geom_sim::workload::WorkloadStats) {
    let sim = Sim::deterministic(seed);
    let lun = sim
        .add_lun(LunConfig::new(&["da0", "da1"], 2 << 20))
        .unwrap();
    pass_over(&sim, "da0");
    let p0 = lun.path(0).unwrap();
    p0.set_latency(5, 40);
    p0.fail_rate(EIO, 20);
    let dev = sim.open("da0.pass", Access::new(1, 1, 0)).unwrap();
    let cfg = WorkloadConfig {
        bios: 400,
        queue_depth: 8,
        seed,
        ..Default::default()
    };
    let st = run_workload(&sim, &dev, &cfg, &mut |_, _| {});
    drop(dev);
    let r = sim.finish();
    r.assert_clean();
    (r.trace_hash, st)
}

#[test]
fn same_seed_same_run() {
    let a = run(42);
    let b = run(42);
    assert_eq!(a, b);
    assert!(a.1.failed > 0, "faults fired: {:?}", a.1);
    assert_eq!(a.1.mismatches, 0);
    let c = run(43);
    assert_ne!(a.0, c.0, "another seed, another interleaving");
}

#[test]
fn many_seeds_integrity() {
    for_seeds(0..20, |seed| {
        let (_, st) = run(seed);
        if st.mismatches != 0 || st.lost != 0 || st.duplicates != 0 || st.completed != 400 {
            return Err(format!("{st:?}"));
        }
        Ok(())
    });
}

/// The panic text of `f`, or None when it returned.
fn panic_text(f: impl FnOnce()) -> Option<String> {
    let p = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).err()?;
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .or(Some("(not a text panic)".into()))
}

// These call for_seeds_or_only, not for_seeds, so that they test the same
// thing whether or not SIM_SEED is set in the environment of the run.

#[test]
fn failing_seed_is_reported() {
    let ran = Mutex::new(Vec::new());
    let text = panic_text(|| {
        for_seeds_or_only(None, 0..10, |seed| {
            ran.lock().unwrap().push(seed);
            if seed == 3 {
                Err("boom".into())
            } else {
                Ok(())
            }
        })
    });
    assert_eq!(
        text.as_deref(),
        Some(
            "failed at seed 3, replay with SIM_SEED=3 cargo test -p geom-sim --test determinism \
             -- --exact failing_seed_is_reported: boom"
        )
    );
    assert_eq!(
        *ran.lock().unwrap(),
        [0, 1, 2, 3],
        "stops at the first failure"
    );
}

#[test]
fn panicking_seed_is_reported_with_its_message() {
    let text = panic_text(|| {
        for_seeds_or_only(None, 5..9, |seed| {
            assert!(seed != 7, "seed {seed} is bad");
            Ok(())
        })
    });
    assert_eq!(
        text.as_deref(),
        Some(
            "failed at seed 7, replay with SIM_SEED=7 cargo test -p geom-sim --test determinism \
             -- --exact panicking_seed_is_reported_with_its_message: seed 7 is bad"
        )
    );
}

#[test]
fn replay_runs_only_the_named_seed() {
    let ran = Mutex::new(Vec::new());
    for_seeds_or_only(Some(42), 0..10, |seed| {
        ran.lock().unwrap().push(seed);
        Ok(())
    });
    assert_eq!(*ran.lock().unwrap(), [42]);
    let text = panic_text(|| for_seeds_or_only(Some(42), 0..10, |_| Err("still bad".into())));
    assert_eq!(
        text.as_deref(),
        Some(
            "failed at seed 42, replay with SIM_SEED=42 cargo test -p geom-sim --test determinism \
             -- --exact replay_runs_only_the_named_seed: still bad"
        )
    );
}

#[test]
fn passing_seeds_all_run() {
    let ran = Mutex::new(Vec::new());
    for_seeds_or_only(None, 0..10, |seed| {
        ran.lock().unwrap().push(seed);
        Ok(())
    });
    assert_eq!(*ran.lock().unwrap(), (0..10).collect::<Vec<_>>());
}

#[test]
fn synchronous_read_from_taste_runs_the_other_queues() {
    // Grabber's taste drops the topology lock and reads: in deterministic
    // mode the event queue is suspended while down, disk and up run nested.
    let sim = Sim::deterministic(5);
    let grab = Arc::new(Grabber::default());
    sim.load_class(grab.clone()).unwrap();
    let lun = sim.add_lun(LunConfig::new(&["da0"], 1 << 20)).unwrap();
    lun.write_raw(0, b"GRAB").unwrap();
    let w = sim.open("da0", Access::new(0, 1, 0)).unwrap();
    drop(w);
    sim.run_until_idle();
    assert_eq!(grab.grabbed.lock().unwrap().as_slice(), ["da0"]);
    sim.finish().assert_clean();
}
