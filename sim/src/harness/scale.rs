//! Many LUNs: `mpsim scale`. Assembles N LUNs of P paths each the way a
//! boot does (every path's provider arrives with a multipath label on its
//! medium, then the class is loaded and tastes them all), runs a workload
//! on every device, and reports time and memory per LUN.

use std::time::Instant;

use geom_multipath_rs::metadata::{Metadata, Mode as MpMode, Name, Uuid};

use crate::disk::{Lun, LunConfig};
use crate::sched::Mode;
use crate::sim::{Sim, SimConfig};
use crate::workload::{run_workload, WorkloadConfig};
use crate::Access;

/// What to build and run.
#[derive(Clone, Debug)]
pub struct ScaleConfig {
    pub luns: usize,
    pub paths: usize,
    pub mode: Mode,
    /// Bios the workload sends to each device.
    pub bios_per_lun: u64,
    /// Each LUN's size.
    pub mediasize: u64,
    pub seed: u64,
}

impl ScaleConfig {
    pub fn new(luns: usize, paths: usize, mode: Mode) -> ScaleConfig {
        ScaleConfig {
            luns,
            paths,
            mode,
            bios_per_lun: 8,
            mediasize: 1 << 20,
            seed: 1,
        }
    }
}

/// What a scale run measured. Times in seconds, memory in bytes.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ScaleResult {
    pub luns: usize,
    pub paths: usize,
    pub mode: String,
    /// The paths' providers arriving (disk and DEV geoms, the first taste).
    pub arrive_s: f64,
    /// Loading the class: it tastes every path and builds every device.
    pub assemble_s: f64,
    /// The workload on every device.
    pub workload_s: f64,
    pub workload_bios: u64,
    /// Resident memory when idle after assembly, less before any LUN.
    pub rss_delta: u64,
    /// OS threads of the process after assembly.
    pub os_threads: u64,
    /// Multipath devices found, each with every path.
    pub devices: usize,
    /// Time in the MULTIPATH class's taste during assembly (its code and
    /// the platform calls it makes, such as listing the class's geoms).
    pub taste_s: f64,
    pub tastes: u64,
    /// Time in the class's taste during the workload (closing a device
    /// opened for writing retastes it).
    pub workload_taste_s: f64,
}

impl ScaleResult {
    /// Arrival and assembly per LUN, microseconds.
    pub fn per_lun_us(&self) -> f64 {
        (self.arrive_s + self.assemble_s) * 1e6 / self.luns.max(1) as f64
    }
    /// The simulator's own share per LUN, microseconds: arrival and
    /// assembly less the time in the class's taste.
    pub fn sim_per_lun_us(&self) -> f64 {
        (self.arrive_s + self.assemble_s - self.taste_s).max(0.0) * 1e6 / self.luns.max(1) as f64
    }
    pub fn mem_per_lun(&self) -> u64 {
        self.rss_delta / self.luns.max(1) as u64
    }
    pub fn text(&self) -> String {
        format!(
            "{:>5} LUNs x {} paths {:>13}: arrive {:>7.2}s  assemble {:>7.2}s  per LUN {:>7.0}us (simulator {:>4.0}us)  workload {:>6.2}s ({} bios, {:.0}us/LUN, class taste {:.0}%)  memory/LUN {:>6.1} KiB  OS threads {}  class taste {:.0}% of assembly",
            self.luns,
            self.paths,
            self.mode,
            self.arrive_s,
            self.assemble_s,
            self.per_lun_us(),
            self.sim_per_lun_us(),
            self.workload_s,
            self.workload_bios,
            self.workload_s * 1e6 / self.luns.max(1) as f64,
            self.workload_taste_s * 100.0 / self.workload_s.max(1e-9),
            self.mem_per_lun() as f64 / 1024.0,
            self.os_threads,
            self.taste_s * 100.0 / self.assemble_s.max(1e-9),
        )
    }
    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Resident set size of this process, bytes (Linux `/proc/self/statm`).
pub fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// OS threads of this process (Linux `/proc/self/status`).
pub fn os_threads() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Runs one scale configuration.
pub fn run(cfg: &ScaleConfig) -> Result<ScaleResult, String> {
    if cfg.luns == 0 || cfg.paths == 0 {
        return Err("scale: --luns and --paths must be at least 1".into());
    }
    let ss = 512u32;
    let ms = cfg.mediasize.max(64 << 10) / ss as u64 * ss as u64;
    let rss0 = rss_bytes().unwrap_or(0);
    let sim = Sim::new(SimConfig::new(cfg.mode, cfg.seed));
    let t0 = Instant::now();
    let mut luns: Vec<Lun> = Vec::with_capacity(cfg.luns);
    let mut sector = vec![0u8; ss as usize];
    for i in 0..cfg.luns {
        let names: Vec<String> = (0..cfg.paths)
            .map(|k| format!("da{}", i * cfg.paths + k))
            .collect();
        let refs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
        let lun = sim
            .add_lun(LunConfig::new(&refs, ms))
            .map_err(|e| format!("LUN {i}: {e}"))?;
        let name = Name::new_truncated(&format!("mp{i}")).map_err(|e| format!("name: {e}"))?;
        let mut rb = [0u8; 16];
        rb[..8].copy_from_slice(&sim.rand_u64().to_le_bytes());
        rb[8..].copy_from_slice(&(i as u64).to_le_bytes());
        let md = Metadata::new(
            name,
            Uuid::from_random_bytes(rb),
            ss,
            ms,
            MpMode::ActivePassive,
        )
        .map_err(|e| format!("label of LUN {i}: {e}"))?;
        md.encode_sector(&mut sector)
            .map_err(|e| format!("label of LUN {i}: {e}"))?;
        lun.write_raw(ms - ss as u64, &sector)
            .map_err(|e| format!("label of LUN {i}: {e}"))?;
        luns.push(lun);
    }
    if !sim.run_until_idle() {
        return Err(format!("the paths did not settle: {:?}", sim.violations()));
    }
    let arrive_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    sim.load_multipath()
        .map_err(|e| format!("load MULTIPATH: error {e}"))?;
    if !sim.run_until_idle() {
        return Err(format!("assembly did not settle: {:?}", sim.violations()));
    }
    let assemble_s = t1.elapsed().as_secs_f64();
    let (tastes, taste_s) = sim.taste_time("MULTIPATH");
    let rss1 = rss_bytes().unwrap_or(0);
    let os = os_threads().unwrap_or(0);
    let devices = {
        let want: std::collections::HashSet<String> =
            (0..cfg.luns).map(|i| format!("mp{i}")).collect();
        sim.geoms_of_class("MULTIPATH")
            .into_iter()
            .filter(|&g| sim.geom_name_of(g).is_some_and(|n| want.contains(&n)))
            .filter(|&g| sim.geom_consumers(g).len() == cfg.paths)
            .count()
    };
    if devices != cfg.luns {
        return Err(format!(
            "assembled {devices} of {} devices with all {} paths",
            cfg.luns, cfg.paths
        ));
    }
    let t2 = Instant::now();
    let mut bios = 0;
    for i in 0..cfg.luns {
        let name = format!("multipath/mp{i}");
        let dev = sim
            .open(&name, Access::new(1, 1, 0))
            .map_err(|e| format!("open {name}: error {e}"))?;
        let wc = WorkloadConfig {
            bios: cfg.bios_per_lun,
            queue_depth: 4,
            read_percent: 50,
            max_sectors: 8,
            span: 64 << 10,
            seed: cfg.seed ^ i as u64,
        };
        let st = run_workload(&sim.plat(), &dev, &wc, &mut |_, _| {});
        if st.completed != cfg.bios_per_lun || st.failed != 0 || st.mismatches != 0 {
            return Err(format!("workload on {name}: {st:?}"));
        }
        bios += st.completed;
        dev.close()
            .map_err(|e| format!("close {name}: error {e}"))?;
    }
    let workload_s = t2.elapsed().as_secs_f64();
    let workload_taste_s = sim.taste_time("MULTIPATH").1 - taste_s;
    drop(luns);
    let rep = sim.finish();
    if !rep.violations.is_empty() {
        return Err(format!("violations: {:?}", rep.violations));
    }
    Ok(ScaleResult {
        luns: cfg.luns,
        paths: cfg.paths,
        mode: match cfg.mode {
            Mode::Threaded => "threaded".into(),
            Mode::Deterministic => "deterministic".into(),
        },
        arrive_s,
        assemble_s,
        workload_s,
        workload_bios: bios,
        rss_delta: rss1.saturating_sub(rss0),
        os_threads: os,
        devices,
        taste_s,
        tastes,
        workload_taste_s,
    })
}

/// Runs one configuration in a process of its own (`--one`).
fn run_one(
    exe: &std::path::Path,
    mode: Mode,
    n: usize,
    paths: usize,
    bios: u64,
) -> Result<ScaleResult, String> {
    let flag = match mode {
        Mode::Threaded => "--threads",
        Mode::Deterministic => "--deterministic",
    };
    let out = std::process::Command::new(exe)
        .args(["scale", "--one", flag, "--luns", &n.to_string()])
        .args(["--paths", &paths.to_string()])
        .args(["--bios-per-lun", &bios.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output();
    match out {
        Err(e) => Err(format!("cannot run {}: {e}", exe.display())),
        Ok(o) if !o.status.success() => Err(format!("exited with {}", o.status)),
        Ok(o) => serde_json::from_slice(&o.stdout).map_err(|e| format!("its output: {e}")),
    }
}

/// `mpsim scale` options: `--luns N[,N...]` (default 256,1024,4096),
/// `--paths P` (4), `--threads`, `--deterministic` or `--both` (default),
/// `--bios-per-lun N` (8), `--json`. Each run is a process of its own
/// (`--one`: this process runs the first configuration and prints its
/// JSON); each configuration runs several times (more the smaller it is)
/// and its median run is reported. Prints one line per configuration; the exit status is 0, 1 when a run
/// failed, 2 on a usage error.
pub fn main(args: &[String]) -> u8 {
    let mut luns: Vec<usize> = vec![256, 1024, 4096];
    let mut paths = 4usize;
    let mut modes = vec![Mode::Deterministic, Mode::Threaded];
    let mut bios = 8u64;
    let mut json = false;
    let mut one = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        let r: Result<(), String> = (|| {
            match a.as_str() {
                "--luns" => {
                    luns = val("--luns")?
                        .split(',')
                        .map(|v| v.parse::<usize>().map_err(|_| format!("--luns: '{v}'")))
                        .collect::<Result<_, _>>()?
                }
                "--paths" => {
                    let v = val("--paths")?;
                    paths = v.parse().map_err(|_| format!("--paths: '{v}'"))?
                }
                "--bios-per-lun" => {
                    let v = val("--bios-per-lun")?;
                    bios = v.parse().map_err(|_| format!("--bios-per-lun: '{v}'"))?
                }
                "--threads" | "--threaded" => modes = vec![Mode::Threaded],
                "--deterministic" => modes = vec![Mode::Deterministic],
                "--both" => modes = vec![Mode::Deterministic, Mode::Threaded],
                "--json" => json = true,
                "--one" => one = true,
                s => return Err(format!("unknown option {s}")),
            }
            Ok(())
        })();
        if let Err(e) = r {
            eprintln!("mpsim scale: {e}");
            return 2;
        }
    }
    if one {
        // One configuration, in this process (what the loop below runs).
        let (Some(&n), Some(&mode)) = (luns.first(), modes.first()) else {
            return 2;
        };
        let mut cfg = ScaleConfig::new(n, paths, mode);
        cfg.bios_per_lun = bios;
        return match run(&cfg) {
            Ok(r) => {
                println!("{}", r.json());
                0
            }
            Err(e) => {
                eprintln!("mpsim scale: {n} LUNs x {paths} paths, {mode:?}: {e}");
                1
            }
        };
    }
    // Each configuration in a process of its own, so that its memory
    // figure is not skewed by what an earlier run freed.
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("mpsim scale: cannot find this program to run it again: {e}");
            return 1;
        }
    };
    // A small configuration takes a few milliseconds, too short to time
    // once on a shared machine: it runs as many times as it is smaller
    // than the largest (at least 3, at most 16), and the run with the
    // median time per LUN is the one reported.
    let largest = luns.iter().copied().max().unwrap_or(1);
    let mut status = 0;
    for &mode in &modes {
        // (median per LUN, its simulator share, fastest per LUN) of the
        // first configuration: the ratios' base.
        let mut first: Option<(f64, f64, f64)> = None;
        for &n in &luns {
            let reps = (largest / n.max(1)).clamp(3, 16);
            let mut results: Vec<ScaleResult> = Vec::with_capacity(reps);
            for _ in 0..reps {
                match run_one(&exe, mode, n, paths, bios) {
                    Ok(r) => results.push(r),
                    Err(e) => {
                        eprintln!("mpsim scale: {n} LUNs x {paths} paths, {mode:?}: {e}");
                        status = 1;
                    }
                }
            }
            results.sort_by(|a, b| a.per_lun_us().total_cmp(&b.per_lun_us()));
            let (Some(lo), Some(hi)) = (results.first(), results.last()) else {
                continue;
            };
            let spread = format!(
                "median of {} runs, per LUN {:.0}-{:.0}us",
                results.len(),
                lo.per_lun_us(),
                hi.per_lun_us()
            );
            let r = &results[results.len() / 2];
            if json {
                println!("{}", r.json());
                continue;
            }
            // The fastest run too: other jobs on the machine only ever add
            // time, so the minimum is the least disturbed figure.
            let base = *first.get_or_insert((r.per_lun_us(), r.sim_per_lun_us(), lo.per_lun_us()));
            println!(
                "{}  (per LUN x{:.2} of the first, fastest runs x{:.2}; simulator x{:.2}; {spread})",
                r.text(),
                r.per_lun_us() / base.0,
                lo.per_lun_us() / base.2.max(1e-9),
                r.sim_per_lun_us() / base.1.max(1e-9)
            );
        }
    }
    status
}
