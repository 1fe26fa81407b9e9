//! `mpsim bench`: what multipath costs over a plain pass-through class.
//!
//! Machines here are noisy, so every figure that matters is a ratio taken
//! within one run: the variants are interleaved round by round on fresh
//! simulators, and the median of each is compared. Nothing here asserts a
//! speed; it prints figures.

use std::sync::Arc;
use std::time::Instant;

use geom_multipath_rs::path::{PathSlot, MAX_PATHS};
use geom_multipath_rs::Softc;

use crate::disk::LunConfig;
use crate::passthrough::PassClass;
use crate::sched::Mode;
use crate::sim::{Sim, SimConfig, SimPlatform};
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
}

impl Variant {
    pub const ALL: [Variant; 3] = [Variant::Pass, Variant::MultipathAp, Variant::MultipathAa];
    pub fn name(self) -> &'static str {
        match self {
            Variant::Pass => "pass-through (1 path)",
            Variant::MultipathAp => "multipath A/P (2 paths)",
            Variant::MultipathAa => "multipath A/A (2 paths)",
        }
    }
}

/// Runs `bios` bios through `v` on a fresh threaded simulator; returns
/// bios per second, or an error text.
pub fn measure(v: Variant, bios: u64, queue_depth: usize, seed: u64) -> Result<f64, String> {
    let sim = Sim::new(SimConfig::new(Mode::Threaded, seed));
    sim.add_lun(LunConfig::new(&["da0", "da1"], 64 << 20))?;
    let dev_name = match v {
        Variant::Pass => {
            sim.load_class(Arc::new(PassClass))
                .map_err(|e| format!("load PASS: {e}"))?;
            sim.pass_create("da0")?;
            "da0.pass"
        }
        Variant::MultipathAp | Variant::MultipathAa => {
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
    let t0 = Instant::now();
    let st = run_workload(&sim.plat(), &dev, &cfg, &mut |_, _| {});
    let secs = t0.elapsed().as_secs_f64();
    drop(dev);
    let rep = sim.finish();
    if st.completed != bios || st.failed != 0 || st.mismatches != 0 || !rep.violations.is_empty() {
        return Err(format!(
            "{} did not run clean: {st:?} {:?}",
            v.name(),
            rep.violations
        ));
    }
    Ok(bios as f64 / secs.max(1e-9))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The bench report: medians per variant and the ratios to pass-through.
pub fn run(rounds: usize, bios: u64, queue_depth: usize) -> Result<String, String> {
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); Variant::ALL.len()];
    for r in 0..rounds {
        for (i, v) in Variant::ALL.iter().enumerate() {
            rates[i].push(measure(*v, bios, queue_depth, 1000 + r as u64)?);
        }
    }
    let med: Vec<f64> = rates.iter_mut().map(|r| median(r)).collect();
    let base = med[0].max(1e-9);
    let mut out = format!(
        "mpsim bench: {rounds} rounds x {bios} bios, queue depth {queue_depth}, 50% reads, threaded simulator\n"
    );
    for (i, v) in Variant::ALL.iter().enumerate() {
        out.push_str(&format!(
            "  {:<26} {:>10.0} bios/s   ratio to pass-through {:.2}\n",
            v.name(),
            med[i],
            med[i] / base
        ));
    }
    out.push_str(&format!(
        "  per-geom state: Softc {} bytes ({} path slots of {} bytes each)\n",
        std::mem::size_of::<Softc<SimPlatform>>(),
        MAX_PATHS,
        std::mem::size_of::<PathSlot>()
    ));
    Ok(out)
}
