//! `mpsim bench`: what multipath costs over a plain pass-through class.
//!
//! Machines here are noisy, so every figure that matters is a ratio taken
//! within one run, round by round: each round runs every variant once on
//! each scheduler, on fresh simulators, in an order shuffled per round
//! (seeded; the seed is printed), after warm-up rounds that are thrown
//! away. Two schedulers, two questions:
//!
//! - the deterministic scheduler runs everything on one thread, so its CPU
//!   time per bio is the cost of the code path (class and simulator), and
//!   it barely moves with the load of the machine;
//! - the threaded simulator (event, down, up, disk and worker threads)
//!   shows throughput with real concurrency, and every bit of the
//!   machine's noise with it.
//!
//! Each run is timed by the wall clock and by the process's CPU clock (all
//! threads). The report gives, per scheduler and variant, the median rates,
//! and per multipath variant the median of its per-round ratio to
//! pass-through with the spread of that ratio (confidence interval of the
//! median, quartiles, range), so a reader sees how far to trust it.
//! Nothing here asserts a speed; it prints figures.

use std::sync::Arc;
use std::time::Instant;

use geom_multipath_rs::path::PathTable;
use geom_multipath_rs::Softc;

use crate::disk::LunConfig;
use crate::passthrough::PassClass;
use crate::sched::Mode;
use crate::sim::{Sim, SimConfig, SimPlatform};
use crate::util::Rng;
use crate::workload::{run_workload, WorkloadConfig};
use geom_multipath_rs::platform::Access;

/// One configuration to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// PASS over one path: clone and forward, the baseline.
    Pass,
    /// MULTIPATH over two paths, active/passive.
    MultipathAp,
    /// MULTIPATH over two paths, active/active.
    MultipathAa,
    /// MULTIPATH A/P with direct dispatch off: every bio through g_down
    /// and g_up, as before the class set the flags (`SIM_DIRECT=0`).
    MultipathApQueued,
}

impl Variant {
    pub const ALL: [Variant; 4] = [
        Variant::Pass,
        Variant::MultipathAp,
        Variant::MultipathAa,
        Variant::MultipathApQueued,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Variant::Pass => "pass-through (1 path)",
            Variant::MultipathAp => "multipath A/P (2 paths)",
            Variant::MultipathAa => "multipath A/A (2 paths)",
            Variant::MultipathApQueued => "A/P, all queued",
        }
    }
    fn short(self) -> &'static str {
        match self {
            Variant::Pass => "pass-through",
            Variant::MultipathAp => "multipath A/P",
            Variant::MultipathAa => "multipath A/A",
            Variant::MultipathApQueued => "A/P queued",
        }
    }
}

/// The CPU time this process has used, all threads (live and exited), in
/// seconds: `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)`. None where that
/// clock is not known here.
pub fn process_cpu_seconds() -> Option<f64> {
    cpu_clock(false)
}

/// The CPU time the calling thread has used, in seconds:
/// `clock_gettime(CLOCK_THREAD_CPUTIME_ID)`. None where unknown.
pub fn thread_cpu_seconds() -> Option<f64> {
    cpu_clock(true)
}

fn cpu_clock(thread: bool) -> Option<f64> {
    #[cfg(any(target_os = "linux", target_os = "freebsd"))]
    {
        #[repr(C)]
        struct Timespec {
            tv_sec: i64,
            tv_nsec: std::ffi::c_long,
        }
        extern "C" {
            fn clock_gettime(clock: std::ffi::c_int, tp: *mut Timespec) -> std::ffi::c_int;
        }
        // CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID
        #[cfg(target_os = "linux")]
        const IDS: (std::ffi::c_int, std::ffi::c_int) = (2, 3);
        #[cfg(target_os = "freebsd")]
        const IDS: (std::ffi::c_int, std::ffi::c_int) = (15, 14);
        let id = if thread { IDS.1 } else { IDS.0 };
        let mut ts = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one struct timespec (two 64-bit
        // fields on the 64-bit Linux and FreeBSD targets this builds for)
        // to the pointer, which points at one, and keeps no reference.
        let r = unsafe { clock_gettime(id, &mut ts) };
        (r == 0).then_some(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
    }
    #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
    {
        let _ = thread;
        None
    }
}

/// One measured run: bios moved, wall seconds, CPU seconds (process).
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub bios: u64,
    pub wall: f64,
    pub cpu: Option<f64>,
}

impl Sample {
    /// Bios per wall-clock second.
    pub fn rate(&self) -> f64 {
        self.bios as f64 / self.wall.max(1e-9)
    }
    /// Bios per CPU-second (of every thread of the process).
    pub fn cpu_rate(&self) -> Option<f64> {
        self.cpu.map(|c| self.bios as f64 / c.max(1e-9))
    }
}

/// Runs `bios` bios through `v` on a fresh simulator of `mode`; returns
/// the time it took (set-up and tear-down not counted), or an error text.
pub fn measure(
    v: Variant,
    mode: Mode,
    bios: u64,
    queue_depth: usize,
    seed: u64,
) -> Result<Sample, String> {
    let mut sc = SimConfig::new(mode, seed);
    sc.direct_dispatch = v != Variant::MultipathApQueued && sc.direct_dispatch;
    let sim = Sim::new(sc);
    sim.add_lun(LunConfig::new(&["da0", "da1"], 64 << 20))?;
    let dev_name = match v {
        Variant::Pass => {
            sim.load_class(Arc::new(PassClass))
                .map_err(|e| format!("load PASS: {e}"))?;
            sim.pass_create("da0")?;
            "da0.pass"
        }
        Variant::MultipathAp | Variant::MultipathAa | Variant::MultipathApQueued => {
            sim.load_multipath()
                .map_err(|e| format!("load MULTIPATH: {e}"))?;
            let mut argv = vec!["create"];
            if v == Variant::MultipathAa {
                argv.push("-A");
            }
            argv.extend(["mp0", "da0", "da1"]);
            sim.gmultipath(&argv)?;
            "multipath/mp0"
        }
    };
    sim.run_until_idle();
    let dev = sim
        .open(dev_name, Access::new(1, 1, 0))
        .map_err(|e| format!("open {dev_name}: {e}"))?;
    let cfg = WorkloadConfig {
        bios,
        queue_depth,
        read_percent: 50,
        max_sectors: 8,
        span: 16 << 20,
        seed,
    };
    // The deterministic scheduler runs every queue on this thread: its
    // own clock leaves out whatever else the process is doing (threads of
    // an earlier threaded run still winding down). The threaded simulator
    // is timed by the whole process's clock.
    let clock = match mode {
        Mode::Deterministic => thread_cpu_seconds,
        Mode::Threaded => process_cpu_seconds,
    };
    let c0 = clock();
    let t0 = Instant::now();
    let st = run_workload(&sim.plat(), &dev, &cfg, &mut |_, _| {});
    let wall = t0.elapsed().as_secs_f64();
    let cpu = match (c0, clock()) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    drop(dev);
    let rep = sim.finish();
    if st.completed != bios || st.failed != 0 || st.mismatches != 0 || !rep.violations.is_empty() {
        return Err(format!(
            "{} did not run clean: {st:?} {:?}",
            v.name(),
            rep.violations
        ));
    }
    Ok(Sample { bios, wall, cpu })
}

/// The `q` quantile (0..=1) of `v`, linearly interpolated; 0 when empty.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => 0.0,
        1 => v[0],
        n => {
            let x = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let i = x.floor() as usize;
            let j = (i + 1).min(n - 1);
            v[i] + (v[j] - v[i]) * (x - i as f64)
        }
    }
}

/// Median, its 95% confidence interval, quartiles and range of a set of
/// figures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub median: f64,
    /// Distribution-free 95% confidence interval of the median: the order
    /// statistics of ranks ⌊n/2 − 0.98·√n⌋ and ⌈1 + n/2 + 0.98·√n⌉
    /// (normal approximation of the binomial; ranks 40 and 61 of 100).
    /// It narrows as rounds are added; the quartiles do not.
    /// (With fewer than 6 figures no pair of order statistics covers the
    /// median with 95% confidence: the interval is then unknown.)
    pub ci_low: f64,
    pub ci_high: f64,
    pub n: usize,
    pub q1: f64,
    pub q3: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(v: &[f64]) -> Spread {
        let mut sorted = v.to_vec();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let n = sorted.len();
        let (ci_low, ci_high) = if n == 0 {
            (0.0, 0.0)
        } else {
            let h = 0.98 * (n as f64).sqrt();
            let lo = ((n as f64 / 2.0 - h).floor().max(1.0) as usize).min(n) - 1;
            let hi = ((1.0 + n as f64 / 2.0 + h).ceil() as usize).clamp(1, n) - 1;
            (sorted[lo], sorted[hi])
        };
        Spread {
            median: quantile(v, 0.5),
            ci_low,
            ci_high,
            n,
            q1: quantile(v, 0.25),
            q3: quantile(v, 0.75),
            min: quantile(v, 0.0),
            max: quantile(v, 1.0),
        }
    }
    /// Half the width of the median's confidence interval, relative to it.
    /// Infinite when the interval is unknown (fewer than 6 figures).
    pub fn relative_ci(&self) -> f64 {
        if self.n < 6 {
            return f64::INFINITY;
        }
        (self.ci_high - self.ci_low) / 2.0 / self.median.abs().max(1e-12)
    }
    fn show(&self) -> String {
        let ci = if self.n < 6 {
            format!("95% CI unknown ({} rounds, 6 needed)", self.n)
        } else {
            format!(
                "95% CI {:.2}-{:.2} (±{:.1}%)",
                self.ci_low,
                self.ci_high,
                self.relative_ci() * 100.0
            )
        };
        format!(
            "{:.2}  {ci}  IQR {:.2}-{:.2}  range {:.2}-{:.2}",
            self.median, self.q1, self.q3, self.min, self.max
        )
    }
}

/// What `mpsim bench` runs.
#[derive(Clone, Copy, Debug)]
pub struct BenchConfig {
    /// Measured rounds (each runs every variant once on each scheduler):
    /// at least `min_rounds`, then more until the confidence interval of
    /// the median of every one-thread ratio (by CPU time where the CPU
    /// clock is known) is within ±`target_ci`, `max_rounds` are done, or
    /// `budget` has passed. The threaded ratios are reported with the
    /// spread they have.
    pub min_rounds: usize,
    pub max_rounds: usize,
    pub target_ci: f64,
    pub budget: std::time::Duration,
    /// Rounds run first and thrown away (caches, allocator, CPU clocks).
    pub warmup: usize,
    pub bios: u64,
    pub queue_depth: usize,
    /// Seeds the order of the variants in each round.
    pub order_seed: u64,
}

/// Which time a rate is taken against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Clock {
    Wall,
    Cpu,
}

/// CPU time when every sample has it (less disturbed by other processes
/// taking the cores), else wall time.
fn primary(samples: &[Vec<Sample>]) -> Clock {
    if samples.iter().flatten().all(|s| s.cpu.is_some()) {
        Clock::Cpu
    } else {
        Clock::Wall
    }
}

/// Per round, the rate of variant `i` over the rate of pass-through.
fn ratios(samples: &[Vec<Sample>], i: usize, clock: Clock) -> Vec<f64> {
    let rate = |s: &Sample| match clock {
        Clock::Wall => Some(s.rate()),
        Clock::Cpu => s.cpu_rate(),
    };
    samples[i]
        .iter()
        .zip(&samples[0])
        .filter_map(|(m, p)| Some(rate(m)? / rate(p)?.max(1e-9)))
        .collect()
}

/// The schedulers measured, in report order.
const MODES: [Mode; 2] = [Mode::Deterministic, Mode::Threaded];

/// `v` in a random order (Fisher-Yates).
fn shuffle<T>(rng: &mut Rng, v: &mut [T]) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

/// One round's runs, every variant on every scheduler, in a random order.
fn round_order(rng: &mut Rng) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = (0..MODES.len())
        .flat_map(|m| (0..Variant::ALL.len()).map(move |v| (m, v)))
        .collect();
    shuffle(rng, &mut runs);
    runs
}

/// The bench report: per scheduler and variant the median rates by wall
/// and CPU time, per multipath variant its per-round ratio to pass-through
/// and the spread of that ratio.
pub fn run(cfg: &BenchConfig) -> Result<String, String> {
    let BenchConfig {
        min_rounds,
        max_rounds,
        target_ci,
        budget,
        warmup,
        bios,
        queue_depth,
        order_seed,
    } = *cfg;
    let started = Instant::now();
    let mut rng = Rng::new(order_seed);
    // samples[scheduler][variant][round]
    let mut samples: Vec<Vec<Vec<Sample>>> =
        vec![vec![Vec::new(); Variant::ALL.len()]; MODES.len()];
    let mut r = 0usize;
    let why = loop {
        for (m, v) in round_order(&mut rng) {
            let s = measure(
                Variant::ALL[v],
                MODES[m],
                bios,
                queue_depth,
                1000 + r as u64,
            )?;
            if r >= warmup {
                samples[m][v].push(s);
            }
        }
        r += 1;
        let rounds = r.saturating_sub(warmup);
        if rounds < min_rounds.max(1) {
            continue;
        }
        if rounds >= max_rounds {
            break format!("{max_rounds} rounds asked for");
        }
        let one = &samples[0];
        let worst = (1..Variant::ALL.len())
            .map(|i| Spread::of(&ratios(one, i, primary(one))).relative_ci())
            .fold(0.0, f64::max);
        if worst <= target_ci {
            break format!(
                "one-thread median ratios known within ±{:.0}%",
                target_ci * 100.0
            );
        }
        if started.elapsed() >= budget {
            break format!(
                "time budget of {} s spent; widest one-thread CI ±{:.1}%",
                budget.as_secs(),
                worst * 100.0
            );
        }
    };
    let rounds = samples[0][0].len();
    let elapsed = started.elapsed().as_secs_f64();
    let mut out = format!(
        "mpsim bench: {rounds} rounds ({why})\n  \
         after {warmup} warm-up rounds (discarded); {bios} bios a run, queue depth {queue_depth}, \
         50% reads; {elapsed:.0} s\n  \
         each round runs every variant on both schedulers, in an order shuffled every round,\n  \
         seed {order_seed} (--seed {order_seed} repeats the order)\n"
    );
    for (m, mode) in MODES.iter().enumerate() {
        let samples = &samples[m];
        let cpu_known = primary(samples) == Clock::Cpu;
        out.push_str(match mode {
            Mode::Deterministic => {
                "\n  one thread (deterministic scheduler, timed by its thread's CPU clock): \
                 the cost of the code path\n"
            }
            Mode::Threaded => {
                "\n  threaded simulator (event, down, up, disk, worker threads; the process's \
                 CPU clock): real concurrency\n"
            }
        });
        out.push_str(&format!(
            "  {:<26} {:>12} {:>16} {:>11}\n",
            "median of the rounds", "bios/s", "bios/CPU-second", "CPUs busy"
        ));
        for (i, v) in Variant::ALL.iter().enumerate() {
            let wall: Vec<f64> = samples[i].iter().map(Sample::rate).collect();
            let cpu: Vec<f64> = samples[i].iter().filter_map(Sample::cpu_rate).collect();
            let busy: Vec<f64> = samples[i]
                .iter()
                .filter_map(|s| s.cpu.map(|c| c / s.wall.max(1e-9)))
                .collect();
            if cpu_known {
                out.push_str(&format!(
                    "  {:<26} {:>12.0} {:>16.0} {:>11.2}\n",
                    v.name(),
                    quantile(&wall, 0.5),
                    quantile(&cpu, 0.5),
                    quantile(&busy, 0.5)
                ));
            } else {
                out.push_str(&format!(
                    "  {:<26} {:>12.0} {:>16} {:>11}\n",
                    v.name(),
                    quantile(&wall, 0.5),
                    "n/a",
                    "n/a"
                ));
            }
        }
        out.push_str(
            "  ratio to pass-through, per round: median, 95% CI of the median, IQR, range\n",
        );
        for (i, v) in Variant::ALL.iter().enumerate().skip(1) {
            let mut first = true;
            let mut line = |clock: &str, sp: Spread| {
                let name = if first { v.short() } else { "" };
                first = false;
                out.push_str(&format!("    {name:<14} {clock:<4} {}\n", sp.show()));
            };
            if cpu_known {
                line("CPU", Spread::of(&ratios(samples, i, Clock::Cpu)));
            }
            line("wall", Spread::of(&ratios(samples, i, Clock::Wall)));
        }
    }
    // The softc holds its path table in a box, and each path's slot in
    // one more (src/path.rs).
    let softc = std::mem::size_of::<Softc<SimPlatform>>();
    out.push_str(&format!(
        "\n  per-geom state: Softc {softc} bytes + its path table on the heap ({} bytes) \
         + {} bytes a path slot (`mpsim bench-class` gives the whole figure)\n",
        PathTable::TABLE_BYTES,
        PathTable::SLOT_BYTES,
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate() {
        let v = [4.0, 1.0, 3.0, 2.0, 5.0];
        assert_eq!(quantile(&v, 0.5), 3.0);
        assert_eq!(quantile(&v, 0.25), 2.0);
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 1.0), 5.0);
        assert_eq!(quantile(&[1.0, 2.0], 0.5), 1.5);
        assert_eq!(quantile(&[], 0.5), 0.0);
        let s = Spread::of(&[0.9, 1.0, 1.1, 1.0, 1.0]);
        assert_eq!((s.median, s.q1, s.q3), (1.0, 1.0, 1.0));
        assert_eq!((s.min, s.max), (0.9, 1.1));
        // 100 figures 1..=100: the CI of the median spans ranks 40..=61.
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = Spread::of(&v);
        assert_eq!((s.ci_low, s.ci_high), (40.0, 61.0));
        assert_eq!(s.median, 50.5);
        // More rounds, same spread: the CI narrows, the IQR does not.
        let few = Spread::of(&(0..20).map(|i| f64::from(i % 10)).collect::<Vec<_>>());
        let many = Spread::of(&(0..400).map(|i| f64::from(i % 10)).collect::<Vec<_>>());
        assert!(many.ci_high - many.ci_low < few.ci_high - few.ci_low);
        assert_eq!(many.q3 - many.q1, few.q3 - few.q1);
        // Too few figures for a 95% interval: unknown, never "±0%".
        assert_eq!(Spread::of(&[1.0, 1.0, 1.0]).relative_ci(), f64::INFINITY);
        assert!(Spread::of(&[1.0; 6]).relative_ci().is_finite());
    }

    #[test]
    fn every_order_comes_up() {
        let mut rng = Rng::new(7);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let mut o = [0u8, 1, 2];
            shuffle(&mut rng, &mut o);
            let mut sorted = o;
            sorted.sort_unstable();
            assert_eq!(sorted, [0, 1, 2], "a permutation: {o:?}");
            seen.insert(o);
        }
        assert_eq!(seen.len(), 6, "all 3! orders: {seen:?}");
        // A round runs every variant on every scheduler exactly once.
        let mut runs = round_order(&mut rng);
        runs.sort_unstable();
        assert_eq!(
            runs,
            [
                (0, 0),
                (0, 1),
                (0, 2),
                (0, 3),
                (1, 0),
                (1, 1),
                (1, 2),
                (1, 3)
            ]
        );
    }

    #[test]
    fn process_clock_counts_other_threads_thread_clock_does_not() {
        let Some(c0) = process_cpu_seconds() else {
            return; // no such clock on this OS: the bench prints n/a
        };
        // The main thread sleeps in join while another one spins: the
        // process clock must move all the same (it counts every thread).
        let t0 = thread_cpu_seconds();
        let h = std::thread::spawn(move || {
            let t = Instant::now();
            let mut x = 0u64;
            while t.elapsed().as_secs() < 10 {
                for _ in 0..100_000 {
                    x = x.wrapping_add(std::hint::black_box(1));
                }
                if process_cpu_seconds().is_some_and(|c| c - c0 >= 0.05) {
                    return Some(x);
                }
            }
            None
        });
        let reached = h.join().expect("the spinning thread does not panic");
        assert!(
            reached.is_some(),
            "50 ms of another thread's CPU never showed"
        );
        // ... and this thread's own clock did not count them.
        if let (Some(a), Some(b)) = (t0, thread_cpu_seconds()) {
            assert!(b - a < 0.04, "this thread slept, yet used {} s", b - a);
        }
    }
}
