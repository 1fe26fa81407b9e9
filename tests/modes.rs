//! The three path-selection modes, seen from the paths' own counters:
//! Active/Passive puts all I/O on the active path, Active/Active spreads
//! every kind of bio over the good paths, Active/Read spreads reads and
//! keeps writes and flushes on the active path. The mode comes from create
//! (-A/-R), from the label (label -A/-R writes mode byte 1/2, taste honours
//! it) or from configure. Every run checks what it reads against what it
//! wrote, under both schedulers.

mod common;

use common::{check_state, for_each_mode, gm, list, modes, san, SIZE};
use geom_sim::workload::{run_workload, WorkloadConfig, WorkloadStats};
use geom_sim::{Access, Lun, Mode, Sim};

const DA: [&str; 3] = ["da0", "da1", "da2"];
/// Bios per run where the spread is measured, and where it is not.
const BIOS: u64 = 2000;
const SHORT: u64 = 500;
const SPAN: u64 = 256 * 1024;

/// Bios started on each path of `lun` so far.
fn started(lun: &Lun) -> Vec<u64> {
    (0..lun.paths())
        .map(|i| lun.path(i).unwrap().counts().started)
        .collect()
}

fn delta(after: &[u64], before: &[u64]) -> Vec<u64> {
    after.iter().zip(before).map(|(a, b)| a - b).collect()
}

/// A [`SHORT`] workload (`read_percent` reads) whose every bio goes to
/// path `only`; `what` names the case.
#[track_caller]
fn all_on(sim: &Sim, lun: &Lun, read_percent: u32, seed: u64, only: usize, what: &str) {
    let (_, d) = workload(sim, lun, read_percent, SHORT, seed);
    let mut want = vec![0; d.len()];
    want[only] = SHORT;
    assert_eq!(d, want, "{what}");
}

/// Equal latency on every path, so a fair spread is a fair expectation.
fn equal_latency(lun: &Lun) {
    for i in 0..lun.paths() {
        lun.path(i).unwrap().set_latency(100, 0);
    }
}

/// Runs `case` under both schedulers on a [`SIZE`] LUN reached through
/// `paths` at [`equal_latency`], after `gmultipath CREATE...` made the
/// device.
fn with_equal_paths(seed: u64, paths: &[&str], create: &[&str], case: impl Fn(&Sim, &Lun)) {
    for_each_mode(|m| {
        let (sim, lun) = san(m, seed, paths, SIZE);
        equal_latency(&lun);
        gm(&sim, create);
        case(&sim, &lun);
        sim
    });
}

/// [`with_equal_paths`] on da0 and da1 after `gmultipath create [FLAG] mp
/// da0 da1`, once the device is seen to be in `mode`.
fn in_mode(seed: u64, flag: Option<&str>, mode: &str, case: impl Fn(&Sim, &Lun)) {
    let mut argv = vec!["create"];
    argv.extend(flag);
    argv.extend(["mp", "da0", "da1"]);
    with_equal_paths(seed, &DA[..2], &argv, |sim, lun| {
        assert_eq!(list(sim, "mp").unwrap().mode, mode, "create {flag:?}");
        case(sim, lun);
    });
}

/// Runs `bios` random bios (`read_percent` reads) at queue depth 16 on
/// `/dev/multipath/mp`, checking every read against what was written;
/// returns the stats and the bios each path started meanwhile.
#[track_caller]
fn workload(
    sim: &Sim,
    lun: &Lun,
    read_percent: u32,
    bios: u64,
    seed: u64,
) -> (WorkloadStats, Vec<u64>) {
    // The workload expects a zeroed device: clear the medium behind it.
    lun.write_raw(0, &vec![0; SPAN as usize]).unwrap();
    let dev = sim
        .open("multipath/mp", Access::new(1, 1, 0))
        .expect("open multipath/mp");
    let before = started(lun);
    let cfg = WorkloadConfig {
        bios,
        queue_depth: 16,
        read_percent,
        max_sectors: 8,
        span: SPAN,
        seed,
    };
    let st = run_workload(sim, &dev, &cfg, &mut |_, _| {});
    // Counted before the close: the last writer closing makes GEOM retaste
    // multipath/mp, and that taste reads through the device.
    let per_path = delta(&started(lun), &before);
    drop(dev);
    sim.run_until_idle();
    assert_eq!(st.completed, bios, "{st:?}");
    assert_eq!(
        (st.failed, st.mismatches, st.lost, st.duplicates),
        (0, 0, 0, 0),
        "data integrity: {st:?}"
    );
    let total: u64 = per_path.iter().sum();
    assert_eq!(
        total, bios,
        "one path bio per bio without faults: {per_path:?}"
    );
    (st, per_path)
}

/// The share (percent) each of `n` equally fast paths must get. The
/// deterministic scheduler gives them exactly equal latency, so the spread
/// is held to the fair band. On real threads a completion thread the OS
/// leaves waiting (the test machine is busy) legitimately makes its path
/// look busier to the least-in-flight choice, so the band is wider there:
/// it still catches a path that gets nothing or nearly everything.
fn band(sim: &Sim, n: usize) -> (u64, u64) {
    match (sim.mode(), n) {
        (Mode::Deterministic, 2) => (35, 65),
        (Mode::Deterministic, _) => (20, 47),
        (Mode::Threaded, 2) => (20, 80),
        (Mode::Threaded, _) => (10, 60),
    }
}

/// Each of the paths `idx` got its share of the bios (see [`band`]).
#[track_caller]
fn assert_spread(sim: &Sim, per_path: &[u64], idx: &[usize], what: &str) {
    let (lo, hi) = band(sim, idx.len());
    let total: u64 = per_path.iter().sum();
    for &i in idx {
        let pct = per_path[i] * 100 / total.max(1);
        assert!(
            (lo..=hi).contains(&pct),
            "{what}: path {i} got {pct}% ({per_path:?}, {:?})",
            sim.mode()
        );
    }
}

/// `n` flushes through the device; returns the bios each path started.
fn flushes(sim: &Sim, lun: &Lun, n: usize) -> Vec<u64> {
    let dev = sim
        .open("multipath/mp", Access::new(0, 1, 0))
        .expect("open multipath/mp");
    let before = started(lun);
    for _ in 0..n {
        dev.flush().expect("flush");
    }
    let d = delta(&started(lun), &before);
    drop(dev);
    sim.run_until_idle();
    d
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i / 512) as u8).wrapping_mul(13) ^ (i as u8).wrapping_add(seed))
        .collect()
}

/// Writes 64 KiB in 512-byte bios (spread however the mode spreads them),
/// then checks the medium itself and a read through the device.
#[track_caller]
fn write_then_read_back(sim: &Sim, lun: &Lun, seed: u8) {
    let data = pattern(65536, seed);
    let dev = sim
        .open("multipath/mp", Access::new(1, 1, 0))
        .expect("open multipath/mp");
    for (i, chunk) in data.chunks(512).enumerate() {
        dev.write(131072 + i as u64 * 512, chunk).expect("write");
    }
    assert_eq!(lun.read_raw(131072, data.len()).unwrap(), data);
    assert_eq!(dev.read(131072, data.len()).expect("read"), data);
    drop(dev);
    sim.run_until_idle();
}

#[test]
fn active_passive_puts_all_io_on_the_active_path() {
    in_mode(201, None, "Active/Passive", |sim, lun| {
        all_on(sim, lun, 50, 1, 0, "all on da0");
        assert_eq!(flushes(sim, lun, 10), [10, 0]);
        gm(sim, &["prefer", "mp", "da1"]);
        all_on(sim, lun, 50, 2, 1, "all on da1 after prefer");
        gm(sim, &["rotate", "mp"]);
        all_on(sim, lun, 100, 3, 0, "all on da0 after rotate");
        write_then_read_back(sim, lun, 1);
    });
}

#[test]
fn active_active_spreads_reads_and_writes() {
    in_mode(202, Some("-A"), "Active/Active", |sim, lun| {
        let (st, d) = workload(sim, lun, 100, BIOS, 4);
        assert_eq!(st.reads_ok, BIOS);
        assert_spread(sim, &d, &[0, 1], "reads");
        let (st, d) = workload(sim, lun, 0, BIOS, 5);
        assert_eq!(st.writes_ok, BIOS);
        assert_spread(sim, &d, &[0, 1], "writes");
        let (_, d) = workload(sim, lun, 50, BIOS, 6);
        assert_spread(sim, &d, &[0, 1], "mixed");
        // Flushes are balanced too, one path each.
        let d = flushes(sim, lun, 20);
        assert_eq!(d.iter().sum::<u64>(), 20);
        assert!(d.iter().all(|&n| n > 0), "flushes {d:?}");
        write_then_read_back(sim, lun, 2);
    });
}

#[test]
fn active_active_gives_a_failed_path_nothing() {
    with_equal_paths(
        203,
        &DA,
        &["create", "-A", "mp", "da0", "da1", "da2"],
        |sim, lun| {
            let (_, d) = workload(sim, lun, 50, BIOS, 7);
            assert_spread(sim, &d, &[0, 1, 2], "three paths");
            gm(sim, &["fail", "mp", "da1"]);
            check_state(
                sim,
                "mp",
                "da2 da0",
                "DEGRADED",
                &["ACTIVE", "FAIL", "ACTIVE"],
            );
            let (_, d) = workload(sim, lun, 50, BIOS, 8);
            assert_eq!(d[1], 0, "the failed path got I/O: {d:?}");
            assert_spread(sim, &d, &[0, 2], "two good paths");
            gm(sim, &["restore", "mp", "da1"]);
            let (_, d) = workload(sim, lun, 50, BIOS, 9);
            assert_spread(sim, &d, &[0, 1, 2], "restored");
            write_then_read_back(sim, lun, 3);
        },
    );
}

#[test]
fn active_read_spreads_reads_and_keeps_writes_on_the_active_path() {
    in_mode(204, Some("-R"), "Active/Read", |sim, lun| {
        let (_, d) = workload(sim, lun, 100, BIOS, 10);
        assert_spread(sim, &d, &[0, 1], "reads");
        all_on(sim, lun, 0, 11, 0, "writes on the active path only");
        assert_eq!(flushes(sim, lun, 10), [10, 0]);
        // prefer picks the write path.
        gm(sim, &["prefer", "mp", "da1"]);
        all_on(sim, lun, 0, 12, 1, "writes follow prefer");
        assert_eq!(flushes(sim, lun, 10), [0, 10]);
        let (st, d) = workload(sim, lun, 50, SHORT, 13);
        // Mixed: every write on da1, the reads shared.
        assert!(d[0] > 0 && d[0] < st.reads_ok, "{d:?} {st:?}");
        write_then_read_back(sim, lun, 4);
    });
}

/// The last sector of the LUN (the label).
fn mode_byte(lun: &Lun) -> u8 {
    let ss = lun.sectorsize() as u64;
    lun.read_raw(lun.mediasize() - ss, ss as usize).unwrap()[88]
}

/// label -A / -R store mode byte 1 / 2, and taste builds the device in
/// that mode; a plain label stores 0.
#[test]
fn mode_from_the_label() {
    for m in modes() {
        for (flag, byte, mode) in [
            (None, 0u8, "Active/Passive"),
            (Some("-A"), 1, "Active/Active"),
            (Some("-R"), 2, "Active/Read"),
        ] {
            let (sim, lun) = san(m, 205 + u64::from(byte), &DA[..2], SIZE);
            equal_latency(&lun);
            let mut argv = vec!["label"];
            argv.extend(flag);
            argv.extend(["mp", "da0", "da1"]);
            gm(&sim, &argv);
            assert_eq!(mode_byte(&lun), byte, "label {flag:?}");
            let g = list(&sim, "mp").expect("tasted");
            assert_eq!(g.mode, mode, "label {flag:?}");
            assert_eq!(g.kind, "AUTOMATIC");
            let (_, reads) = workload(&sim, &lun, 100, BIOS, 14);
            let (_, writes) = workload(&sim, &lun, 0, BIOS, 15);
            match byte {
                0 => {
                    assert_eq!(reads, [BIOS, 0]);
                    assert_eq!(writes, [BIOS, 0]);
                }
                1 => {
                    assert_spread(&sim, &reads, &[0, 1], "label -A reads");
                    assert_spread(&sim, &writes, &[0, 1], "label -A writes");
                }
                _ => {
                    assert_spread(&sim, &reads, &[0, 1], "label -R reads");
                    assert_eq!(writes, [BIOS, 0]);
                }
            }
            // The label sector stays out of reach of the device's I/O.
            assert_eq!(mode_byte(&lun), byte);
            write_then_read_back(&sim, &lun, 5);
            sim.finish().assert_clean();
        }
    }
}

/// configure switches a live device's behaviour at once.
#[test]
fn mode_from_configure() {
    in_mode(209, None, "Active/Passive", |sim, lun| {
        all_on(sim, lun, 50, 16, 0, "all on da0");
        gm(sim, &["configure", "-A", "mp"]);
        let (_, d) = workload(sim, lun, 0, BIOS, 17);
        assert_spread(sim, &d, &[0, 1], "configure -A writes");
        gm(sim, &["configure", "-R", "mp"]);
        all_on(sim, lun, 0, 18, 0, "configure -R writes");
        let (_, d) = workload(sim, lun, 100, BIOS, 19);
        assert_spread(sim, &d, &[0, 1], "configure -R reads");
        gm(sim, &["configure", "-P", "mp"]);
        all_on(sim, lun, 100, 20, 0, "configure -P reads");
        write_then_read_back(sim, lun, 6);
    });
}

/// A labelled device configured to another mode keeps it across a retaste.
#[test]
fn configured_mode_survives_a_retaste() {
    with_equal_paths(210, &DA[..2], &["label", "mp", "da0", "da1"], |sim, lun| {
        gm(sim, &["configure", "-R", "mp"]);
        assert_eq!(mode_byte(lun), 2);
        gm(sim, &["stop", "mp"]);
        assert!(list(sim, "mp").is_none());
        for p in ["da0", "da1"] {
            drop(sim.open(p, Access::new(0, 1, 0)).expect("open path"));
            sim.run_until_idle();
        }
        check_state(sim, "mp", "da0", "OPTIMAL", &["ACTIVE", "READ"]);
        all_on(sim, lun, 0, 21, 0, "all on da0");
        let (_, d) = workload(sim, lun, 100, BIOS, 22);
        assert_spread(sim, &d, &[0, 1], "reads after retaste");
    });
}
