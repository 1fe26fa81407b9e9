//! Direct dispatch, as FreeBSD's class sets it up: `multipath/NAME` takes
//! `G_PF_DIRECT_SEND | G_PF_DIRECT_RECEIVE` and every path consumer (and
//! the taste consumer) `G_CF_DIRECT_SEND | G_CF_DIRECT_RECEIVE`, so a
//! process's bio runs our start in its own thread and a path's completion
//! runs our done in the completion thread, with no g_down/g_up hand-off.
//! Checked for the linked core and for the loaded `.ko` (whose flags are
//! the C shim's writes into its own structs), and failover is checked to
//! lose nothing either way.

mod common;

use common::ko::built_ko;
use std::sync::Arc;

use geom_sim::ko::{self, KoKernel};
use geom_sim::topology::Direct;
use geom_sim::workload::{run_workload, WorkloadConfig};
use geom_sim::{Access, Lun, LunConfig, Mode, Sim, SimConfig, Violation};

/// Two tests, `NAME::core` and `NAME::ko`, running `f` for each class.
macro_rules! both_classes {
    ($name:ident, $f:ident) => {
        mod $name {
            #[test]
            fn core() {
                super::$f(super::Class::Core);
            }
            #[test]
            fn ko() {
                super::$f(super::Class::Ko);
            }
        }
    };
}

/// Which multipath class a test runs.
#[derive(Clone, Copy, Debug)]
enum Class {
    Core,
    Ko,
}

/// A simulator with a LUN on da0 and da1, `class` loaded and mp labelled
/// on both paths. None when the `.ko` is not built (said by `built_ko`).
fn san(class: Class, mode: Mode, direct: bool) -> Option<(Sim, Lun, Option<Arc<KoKernel>>)> {
    let mut cfg = SimConfig::new(mode, 11);
    cfg.direct_dispatch = direct;
    let sim = Sim::new(cfg);
    let lun = sim
        .add_lun(LunConfig::new(&["da0", "da1"], 1 << 20))
        .expect("lun");
    let k = match class {
        Class::Core => {
            sim.load_class(Arc::new(geom_sim::multipath::MultipathClass::new()))
                .expect("load core");
            None
        }
        Class::Ko => {
            let opts = built_ko()?;
            Some(ko::load(&sim.plat(), &opts).expect("kldload"))
        }
    };
    sim.run_until_idle();
    assert_eq!(
        sim.gmultipath(&["label", "mp", "da0", "da1"]),
        Ok(String::new())
    );
    sim.run_until_idle();
    Some((sim, lun, k))
}

/// Destroys mp, unloads a module, and checks no rule was broken (but for
/// the module's one known leak: its softc graveyard, see ko_e2e.rs).
fn finish(sim: Sim, k: Option<Arc<KoKernel>>) {
    assert_eq!(sim.gmultipath(&["destroy", "mp"]), Ok(String::new()));
    sim.run_until_idle();
    if let Some(k) = k {
        let report = ko::unload(&k).expect("kldunload");
        assert_eq!(report.panics, 0, "{report:?}");
        sim.run_until_idle();
    }
    let known = |v: &Violation| {
        v.rule == "leak"
            && v.message
                .contains("leaked memory on destroy (1 allocations, 64 bytes")
    };
    let bad: Vec<Violation> = sim.violations().into_iter().filter(|v| !known(v)).collect();
    assert!(bad.is_empty(), "{bad:#?}");
    drop(sim.finish());
}

/// The flags FreeBSD's `g_multipath_create` and `g_multipath_add_disk`
/// set: on the provider, and on each path's consumer.
fn flags_as_freebsd(class: Class) {
    let Some((sim, _lun, k)) = san(class, Mode::Deterministic, true) else {
        return;
    };
    let pp = sim.g_provider_by_name("multipath/mp").expect("mp");
    assert_eq!(sim.provider_direct_of(pp), Some(Direct::BOTH), "{class:?}");
    let gp = sim.provider_geom(pp).expect("mp's geom");
    let paths = sim.geom_consumers(gp);
    assert_eq!(paths.len(), 2, "{class:?}");
    for cp in paths {
        assert_eq!(sim.consumer_direct_of(cp), Some(Direct::BOTH), "{class:?}");
    }
    finish(sim, k);
}

both_classes!(provider_and_paths_carry_the_direct_flags, flags_as_freebsd);

/// One write and one read: each runs two starts in the process's thread
/// (ours, then the path's) and, on the disk's completion thread, two
/// dones (ours, then DEV's): four direct calls a bio, none through g_down
/// or g_up. With direct dispatch off every one of them is queued.
fn calls_per_bio(class: Class) {
    for direct in [true, false] {
        let Some((sim, _lun, k)) = san(class, Mode::Deterministic, direct) else {
            return;
        };
        let dev = sim
            .open("multipath/mp", Access::new(1, 1, 0))
            .expect("open");
        let (s0, d0) = sim.direct_calls();
        dev.write(0, &[5u8; 4096]).expect("write");
        assert_eq!(dev.read(0, 4096).expect("read"), vec![5u8; 4096]);
        let (s1, d1) = sim.direct_calls();
        let want = if direct { (4, 4) } else { (0, 0) };
        assert_eq!((s1 - s0, d1 - d0), want, "{class:?}, direct {direct}");
        drop(dev);
        finish(sim, k);
    }
}

both_classes!(
    a_bio_runs_start_and_done_in_the_callers_threads,
    calls_per_bio
);

/// A path fails, then dies, in the middle of a workload: with start and done running
/// in the issuing and completing threads (and the failover re-issue from
/// the worker going straight into the path's start), every bio completes
/// once, none fails, every sector reads back as written; in both
/// scheduler modes, with direct dispatch on and off.
fn failover_loses_nothing(class: Class) {
    for mode in [Mode::Deterministic, Mode::Threaded] {
        for direct in [true, false] {
            let Some((sim, lun, k)) = san(class, mode, direct) else {
                return;
            };
            let dev = sim
                .open("multipath/mp", Access::new(1, 1, 0))
                .expect("open");
            let cfg = WorkloadConfig {
                bios: 600,
                queue_depth: 8,
                seed: 5,
                ..WorkloadConfig::default()
            };
            let plat = sim.plat();
            // da0 (the active path) fails every bio from bio 200 on, so
            // the next one is re-issued whatever the timing; then it dies.
            let st = run_workload(&plat, &dev, &cfg, &mut |issued, _| {
                if issued == 200 {
                    lun.path(0).expect("da0").fail_rate(geom_sim::EIO, 1000);
                }
                if issued == 400 {
                    lun.path(0).expect("da0").die();
                }
            });
            let what = format!("{class:?} {mode:?} direct {direct}: {st:?}");
            assert_eq!(st.completed, 600, "{what}");
            assert_eq!((st.failed, st.lost, st.duplicates), (0, 0, 0), "{what}");
            assert_eq!(st.mismatches, 0, "{what}");
            assert!(sim.reissued() > 0, "the path died under I/O: {what}");
            let (starts, dones) = sim.direct_calls();
            if direct {
                assert!(starts >= 1200 && dones >= 1200, "{what}: {starts}/{dones}");
            } else {
                assert_eq!((starts, dones), (0, 0), "{what}");
            }
            drop(dev);
            finish(sim, k);
        }
    }
}

both_classes!(
    failover_under_direct_dispatch_loses_nothing,
    failover_loses_nothing
);

/// Four processes issue at once on real threads, so our start runs in
/// four threads at once and our done in the disk threads, while da0
/// fails 30% of its bios for a while and da1 is failed and restored by
/// gctl: every write and read succeeds, every sector reads back as its
/// thread last wrote it, and no rule is broken.
fn concurrent_issuers(class: Class) {
    const THREADS: u64 = 4;
    const ROUNDS: u64 = 150;
    const REGION: u64 = 64 << 10;
    let Some((sim, lun, k)) = san(class, Mode::Threaded, true) else {
        return;
    };
    use std::sync::atomic::{AtomicU64, Ordering};
    // Rounds done by all the issuers: the faults follow it, so they land
    // while the I/O runs however fast the machine is.
    let done = AtomicU64::new(0);
    let da0 = lun.path(0).expect("da0");
    da0.fail_rate(geom_sim::EIO, 300);
    let results: Vec<Result<u64, String>> = std::thread::scope(|s| {
        let issuers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (sim, done) = (&sim, &done);
                s.spawn(move || {
                    let dev = sim
                        .open("multipath/mp", Access::new(1, 1, 0))
                        .map_err(|e| format!("open: {e}"))?;
                    for i in 0..ROUNDS {
                        let off = t * REGION + (i % 16) * 4096;
                        let byte = (t * 37 + i) as u8;
                        dev.write(off, &[byte; 4096])
                            .map_err(|e| format!("thread {t} write {i}: errno {e}"))?;
                        let got = dev
                            .read(off, 4096)
                            .map_err(|e| format!("thread {t} read {i}: errno {e}"))?;
                        if got != vec![byte; 4096] {
                            return Err(format!("thread {t} read {i}: wrong data"));
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(ROUNDS)
                })
            })
            .collect();
        // The faults, while they run: each at a share of the rounds.
        let all = THREADS * ROUNDS;
        // (Bounded: an issuer that stopped on an error is reported below.)
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let at = |share: u64| {
            while done.load(Ordering::Relaxed) < all * share / 8
                && std::time::Instant::now() < deadline
            {
                std::thread::yield_now();
            }
        };
        at(1);
        da0.heal();
        let _ = sim.gmultipath(&["restore", "mp", "da0"]);
        at(3);
        let _ = sim.gmultipath(&["fail", "mp", "da1"]);
        at(5);
        let _ = sim.gmultipath(&["restore", "mp", "da1"]);
        issuers
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("an issuer panicked".into()))
            })
            .collect()
    });
    for r in &results {
        assert_eq!(r, &Ok(ROUNDS), "{class:?}: {results:?}");
    }
    assert!(
        sim.reissued() > 0,
        "{class:?}: da0's errors were failed over"
    );
    let (starts, dones) = sim.direct_calls();
    assert!(
        starts >= 2 * THREADS * ROUNDS && dones >= 2 * THREADS * ROUNDS,
        "{class:?}: {starts}/{dones}"
    );
    finish(sim, k);
}

both_classes!(
    concurrent_issuers_with_path_faults_lose_nothing,
    concurrent_issuers
);
