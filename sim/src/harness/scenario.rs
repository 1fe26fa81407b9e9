//! Scenario files: disks, paths, a class, a workload and a timeline of path
//! faults and gctl verbs at given bio counts; and the runner that plays one
//! and summarises it. The format is documented in `sim/SCENARIOS.md`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use geom_multipath_rs::platform::Access;

use crate::disk::{LunConfig, StoreKind};
use crate::passthrough::PassClass;
use crate::sched::Mode;
use crate::sim::{Sim, SimConfig};
use crate::util::parse_errno;
use crate::workload::{run_workload, WorkloadConfig, WorkloadStats};

/// A scenario file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub name: String,
    /// "deterministic" (default) or "threaded".
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub seed: Option<u64>,
    /// "multipath" (default) or "passthrough".
    #[serde(default)]
    pub class: Option<String>,
    /// Multipath: "active-passive" (default), "active-active", "active-read".
    #[serde(default)]
    pub mp_mode: Option<String>,
    /// Multipath: "label" (automatic, default) or "create" (manual).
    #[serde(default)]
    pub setup: Option<String>,
    #[serde(rename = "disk", default)]
    pub disks: Vec<DiskSpec>,
    #[serde(default)]
    pub workload: WorkloadSpec,
    #[serde(rename = "event", default)]
    pub events: Vec<EventSpec>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskSpec {
    pub paths: Vec<String>,
    /// Bytes, or with a K/M/G/T suffix ("64M").
    #[serde(default)]
    pub size: Option<SizeSpec>,
    #[serde(default)]
    pub sectorsize: Option<u32>,
    /// "memory" (default) or "file" (a sparse file in the temp dir).
    #[serde(default)]
    pub store: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum SizeSpec {
    Bytes(u64),
    Text(String),
}

impl SizeSpec {
    fn bytes(&self) -> Result<u64, String> {
        match self {
            SizeSpec::Bytes(b) => Ok(*b),
            SizeSpec::Text(t) => parse_size(t),
        }
    }
}

/// "4096", "64K", "16M", "2G", "1T".
pub fn parse_size(t: &str) -> Result<u64, String> {
    let t = t.trim();
    let (num, mult) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        Some('T') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("bad size '{t}' (use bytes or a K/M/G/T suffix)"))
}

/// Every field may be left out (`#[serde(default)]` on the whole struct).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkloadSpec {
    pub bios: Option<u64>,
    pub queue_depth: Option<usize>,
    /// Share of reads, percent.
    pub read_percent: Option<u32>,
    /// Largest request in sectors.
    pub max_sectors: Option<u32>,
    /// Bytes of each device to use (default all).
    pub span: Option<SizeSpec>,
}

/// One timeline entry: at `at` bios issued, a path fault or a gctl verb.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    pub at: u64,
    #[serde(default)]
    pub path: Option<String>,
    /// fail | fail-next | latency | die | revive | heal.
    #[serde(default)]
    pub fault: Option<String>,
    #[serde(default)]
    pub errno: Option<String>,
    /// fail: per mille of bios failing (default 1000).
    #[serde(default)]
    pub rate: Option<u32>,
    /// fail-next: how many.
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub latency_us: Option<u64>,
    #[serde(default)]
    pub jitter_us: Option<u64>,
    /// A gmultipath command line ("fail mp0 da0").
    #[serde(default)]
    pub gctl: Option<String>,
}

/// What a run produced.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub name: String,
    pub mode: String,
    pub seed: u64,
    pub class: String,
    pub devices: Vec<String>,
    pub bios_issued: u64,
    pub bios_completed: u64,
    pub bios_failed: u64,
    pub reissued: u64,
    pub data_mismatches: u64,
    pub lost_completions: u64,
    pub duplicated_completions: u64,
    pub failovers: u64,
    /// Per-bio latency, failover time, worker wait ([`crate::latency`]).
    pub latency: crate::latency::LatencyStats,
    pub errors: BTreeMap<String, u64>,
    pub paths: BTreeMap<String, PathSummary>,
    pub gctl: Vec<String>,
    pub violations: Vec<String>,
    pub trace_hash: String,
    /// With the class from the .ko: the loaded module's summary line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ko: Option<String>,
    /// The same, as counters (to add up over runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ko_summary: Option<crate::ko::KoSummary>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PathSummary {
    pub started: u64,
    pub completed: u64,
    pub failed: u64,
    pub bytes: u64,
}

impl Summary {
    /// Whether the run must fail the command: lost or duplicated
    /// completions, data mismatches, rule violations.
    pub fn is_bad(&self) -> bool {
        self.lost_completions > 0
            || self.duplicated_completions > 0
            || self.data_mismatches > 0
            || !self.violations.is_empty()
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "scenario {} ({} mode, seed {}, class {})\n",
            if self.name.is_empty() {
                "-"
            } else {
                &self.name
            },
            self.mode,
            self.seed,
            self.class
        ));
        s.push_str(&format!("devices: {}\n", self.devices.join(", ")));
        s.push_str(&format!(
            "bios: issued {}, completed {}, failed {}, re-issued {}\n",
            self.bios_issued, self.bios_completed, self.bios_failed, self.reissued
        ));
        s.push_str(&format!(
            "data mismatches {}, lost completions {}, duplicated completions {}, failovers {}\n",
            self.data_mismatches,
            self.lost_completions,
            self.duplicated_completions,
            self.failovers
        ));
        s.push_str(&format!("{}\n", self.latency.text()));
        if !self.errors.is_empty() {
            let e: Vec<String> = self
                .errors
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            s.push_str(&format!("errors: {}\n", e.join(", ")));
        }
        for (name, p) in &self.paths {
            s.push_str(&format!(
                "path {name}: started {}, completed {}, failed {}, bytes {}\n",
                p.started, p.completed, p.failed, p.bytes
            ));
        }
        for g in &self.gctl {
            s.push_str(&format!("gctl {g}\n"));
        }
        for v in &self.violations {
            s.push_str(&format!("VIOLATION {v}\n"));
        }
        s.push_str(&format!("trace {}\n", self.trace_hash));
        if let Some(k) = &self.ko {
            s.push_str(&format!("{k}\n"));
        }
        s.push_str(if self.is_bad() {
            "RESULT: FAIL\n"
        } else {
            "RESULT: OK\n"
        });
        s
    }
}

/// Overrides from the command line.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub seed: Option<u64>,
    pub mode: Option<Mode>,
    pub progress: bool,
    /// Print the timeline as it happens: each fault and gctl command, and
    /// each console line of the class, stamped with the bio count.
    pub live: bool,
}

/// Where the MULTIPATH class comes from.
#[derive(Clone, Debug, Default)]
pub enum ClassSource {
    /// The core linked into the simulator.
    #[default]
    Core,
    /// The built `.ko`, loaded in-process on the emulated KPI.
    Ko(crate::ko::KoOptions),
}

impl ClassSource {
    /// The class `GMR_CLASS` and `GMR_KO` choose.
    pub fn from_env() -> Result<ClassSource, String> {
        Ok(match crate::ClassChoice::from_env()? {
            crate::ClassChoice::Core => ClassSource::Core,
            crate::ClassChoice::Ko(p) => ClassSource::Ko(crate::ko::KoOptions::at(&p)),
        })
    }
}

/// Loads the scenario's class; the module instance when it is the .ko.
fn load_class(
    sim: &Sim,
    class: &str,
    src: &ClassSource,
) -> Result<Option<Arc<crate::ko::KoKernel>>, String> {
    match (class, src) {
        ("multipath", ClassSource::Core) => sim
            .load_multipath()
            .map(|_| None)
            .map_err(|e| format!("cannot load MULTIPATH: error {e}")),
        ("multipath", ClassSource::Ko(o)) => crate::ko::load(&sim.plat(), o)
            .map(Some)
            .map_err(|e| format!("kldload {}: {e}", o.path.display())),
        (_, ClassSource::Ko(_)) => Err("--ko runs the multipath class only".into()),
        _ => sim
            .load_class(Arc::new(PassClass))
            .map(|_| None)
            .map_err(|e| format!("cannot load PASS: error {e}")),
    }
}

/// Stops the module's geoms and unloads it (`kldunload`), so that its
/// SYSUNINITs run (leaks are reported there) before the simulator's own
/// shutdown checks; returns its summary (faults: the bios a faulty or
/// dead path failed), also appended to the `GMR_KO_SUMMARY` file.
fn unload_ko(sim: &Sim, kk: &Arc<crate::ko::KoKernel>, bios: u64) -> crate::ko::KoSummary {
    let plat = sim.plat();
    if let (_, Some(c)) = kk.geom.class() {
        plat.destroy_class_geoms(c);
        plat.run_until_idle();
    }
    if let Err(e) = crate::ko::unload(kk) {
        plat.violation(
            crate::violation::rule::LEAK,
            format!("kldunload at shutdown: {e}"),
        );
    }
    let s = kk.summary_data(bios, sim.path_errors());
    crate::ko_summary::record(&s);
    s
}

/// What a timeline event does, in words, for the live view.
pub fn describe(e: &EventSpec) -> String {
    if let Some(g) = &e.gctl {
        return format!("gmultipath {g}");
    }
    let path = e.path.as_deref().unwrap_or("?");
    let errno = e.errno.as_deref().unwrap_or("EIO");
    match e.fault.as_deref().unwrap_or("") {
        "fail" => format!(
            "fault: {path} fails {}/1000 of its bios with {errno}",
            e.rate.unwrap_or(1000)
        ),
        "fail-next" => format!(
            "fault: {path} fails its next {} bios with {errno}",
            e.count.unwrap_or(1)
        ),
        "latency" => format!(
            "fault: {path} answers {} us late (+{} us jitter)",
            e.latency_us.unwrap_or(100),
            e.jitter_us.unwrap_or(0)
        ),
        "die" => format!("fault: {path} dies (its provider is withered; in-flight bios get ENXIO)"),
        "revive" => format!("fault: {path} comes back (a new provider is tasted)"),
        "heal" => format!("fault: {path} is healthy again"),
        other => format!("fault: {path} {other}"),
    }
}

/// Prints the console lines written since the last call (live view).
fn show_console(plat: &crate::sim::SimPlatform, shown: &mut usize, at: u64, total: u64) {
    let lines = plat.log_lines();
    for l in lines.iter().skip(*shown) {
        println!("[{at:>7}/{total}] {l}");
    }
    *shown = lines.len();
}

impl Scenario {
    pub fn parse(text: &str) -> Result<Scenario, String> {
        let s: Scenario = toml::from_str(text).map_err(|e| format!("scenario: {e}"))?;
        s.validate()?;
        Ok(s)
    }

    pub fn load(path: &std::path::Path) -> Result<Scenario, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Scenario::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn mode(&self) -> Result<Mode, String> {
        match self.mode.as_deref().unwrap_or("deterministic") {
            "deterministic" => Ok(Mode::Deterministic),
            "threaded" => Ok(Mode::Threaded),
            m => Err(format!(
                "mode must be \"deterministic\" or \"threaded\", not \"{m}\""
            )),
        }
    }

    fn class(&self) -> Result<&str, String> {
        match self.class.as_deref().unwrap_or("multipath") {
            c @ ("multipath" | "passthrough") => Ok(c),
            c => Err(format!(
                "class must be \"multipath\" or \"passthrough\", not \"{c}\""
            )),
        }
    }

    fn validate(&self) -> Result<(), String> {
        self.mode()?;
        self.class()?;
        if self.disks.is_empty() {
            return Err("at least one [[disk]] is needed".into());
        }
        for (i, d) in self.disks.iter().enumerate() {
            if d.paths.is_empty() {
                return Err(format!("disk {i}: paths must name at least one provider"));
            }
            if let Some(s) = &d.size {
                s.bytes().map_err(|e| format!("disk {i}: {e}"))?;
            }
            if let Some(st) = &d.store {
                if st != "memory" && st != "file" {
                    return Err(format!("disk {i}: store must be \"memory\" or \"file\""));
                }
            }
        }
        match self.mp_mode.as_deref().unwrap_or("active-passive") {
            "active-passive" | "active-active" | "active-read" => {}
            m => {
                return Err(format!(
                    "mp_mode must be active-passive, active-active or active-read, not \"{m}\""
                ))
            }
        }
        match self.setup.as_deref().unwrap_or("label") {
            "label" | "create" => {}
            s => {
                return Err(format!(
                    "setup must be \"label\" or \"create\", not \"{s}\""
                ))
            }
        }
        let paths: Vec<&String> = self.disks.iter().flat_map(|d| d.paths.iter()).collect();
        for (i, e) in self.events.iter().enumerate() {
            match (&e.fault, &e.gctl) {
                (Some(f), None) => {
                    let p = e
                        .path
                        .as_ref()
                        .ok_or_else(|| format!("event {i}: a fault needs a path"))?;
                    if !paths.contains(&p) {
                        return Err(format!("event {i}: no path named {p}"));
                    }
                    if !matches!(
                        f.as_str(),
                        "fail" | "fail-next" | "latency" | "die" | "revive" | "heal"
                    ) {
                        return Err(format!("event {i}: fault must be fail, fail-next, latency, die, revive or heal, not \"{f}\""));
                    }
                    if let Some(en) = &e.errno {
                        parse_errno(en).ok_or_else(|| format!("event {i}: unknown errno {en}"))?;
                    }
                }
                (None, Some(g)) if !g.trim().is_empty() => {}
                _ => return Err(format!("event {i}: give exactly one of fault or gctl")),
            }
        }
        Ok(())
    }

    /// Plays the scenario. Err for setup failures (a device that never
    /// appears, a bad gctl at setup), with a message for the user.
    /// The class is the linked core, or the built module under
    /// `GMR_CLASS=ko` (see [`crate::ClassChoice`]).
    pub fn run(&self, ov: &Overrides) -> Result<Summary, String> {
        let src = match self.class()? {
            "multipath" => ClassSource::from_env()?,
            _ => ClassSource::Core,
        };
        self.run_with(ov, &src)
    }

    /// Plays the scenario with the class from `src`.
    pub fn run_with(&self, ov: &Overrides, src: &ClassSource) -> Result<Summary, String> {
        let mode = ov.mode.unwrap_or(self.mode()?);
        let seed = ov.seed.or(self.seed).unwrap_or(1);
        let class = self.class()?;
        let sim = Sim::new(SimConfig::new(mode, seed));
        let kk = load_class(&sim, class, src)?;
        let mut files = Vec::new();
        for (i, d) in self.disks.iter().enumerate() {
            let size = d
                .size
                .as_ref()
                .map(|s| s.bytes())
                .transpose()?
                .unwrap_or(16 << 20);
            let mut cfg = LunConfig {
                sectorsize: d.sectorsize.unwrap_or(512),
                ..LunConfig::new(&[], size)
            };
            cfg.paths = d.paths.clone();
            if d.store.as_deref() == Some("file") {
                let f: PathBuf = std::env::temp_dir()
                    .join(format!("mpsim-{}-{seed}-{i}.img", std::process::id()));
                files.push(f.clone());
                cfg.store = StoreKind::SparseFile(f);
            }
            sim.add_lun(cfg).map_err(|e| format!("disk {i}: {e}"))?;
        }
        let mut gctl_log = Vec::new();
        let mut devices = Vec::new();
        for (i, d) in self.disks.iter().enumerate() {
            let dev = match class {
                "multipath" => {
                    let name = format!("mp{i}");
                    let verb = self.setup.as_deref().unwrap_or("label");
                    let mut argv: Vec<&str> = vec![verb];
                    match self.mp_mode.as_deref().unwrap_or("active-passive") {
                        "active-active" => argv.push("-A"),
                        "active-read" => argv.push("-R"),
                        _ => {}
                    }
                    argv.push(&name);
                    argv.extend(d.paths.iter().map(|s| s.as_str()));
                    let r = sim.gmultipath(&argv);
                    gctl_log.push(format!("{} -> {}", argv.join(" "), show(&r)));
                    r.map_err(|e| format!("gmultipath {}: {e}", argv.join(" ")))?;
                    sim.run_until_idle();
                    format!("multipath/{name}")
                }
                _ => {
                    sim.pass_create(&d.paths[0])
                        .map_err(|e| format!("pass create {}: {e}", d.paths[0]))?;
                    sim.run_until_idle();
                    format!("{}.pass", d.paths[0])
                }
            };
            if sim.g_provider_by_name(&dev).is_none() {
                return Err(format!(
                    "device {dev} did not appear (is the {} class able to create it yet?)",
                    class.to_uppercase()
                ));
            }
            devices.push(dev);
        }
        let w = &self.workload;
        let span = w.span.as_ref().map(|s| s.bytes()).transpose()?.unwrap_or(0);
        let total = w.bios.unwrap_or(1000);
        let per_dev = total / devices.len() as u64;
        let mut events: Vec<(u64, EventSpec)> =
            self.events.iter().map(|e| (e.at, e.clone())).collect();
        events.sort_by_key(|e| e.0);
        let mut next_event = 0usize;
        let mut agg = WorkloadStats::default();
        let mut shown = 0usize;
        if ov.live {
            show_console(&sim.plat(), &mut shown, 0, total);
        }
        let tty = ov.progress && std::io::stderr().is_terminal();
        let plat = sim.plat();
        let mut base = 0u64;
        for (i, dev_name) in devices.iter().enumerate() {
            let dev = sim
                .open(dev_name, Access::new(1, 1, 0))
                .map_err(|e| format!("cannot open /dev/{dev_name}: error {e}"))?;
            let bios = if i + 1 == devices.len() {
                total - per_dev * i as u64
            } else {
                per_dev
            };
            let cfg = WorkloadConfig {
                bios,
                queue_depth: w.queue_depth.unwrap_or(8),
                read_percent: w.read_percent.unwrap_or(50).min(100),
                max_sectors: w.max_sectors.unwrap_or(16).max(1),
                span,
                seed: seed.wrapping_add(i as u64),
            };
            let st = run_workload(&plat, &dev, &cfg, &mut |issued, completed| {
                let now = base + issued;
                if ov.live {
                    show_console(&plat, &mut shown, base + completed, total);
                }
                while next_event < events.len() && events[next_event].0 <= now {
                    let e = &events[next_event].1;
                    if ov.live {
                        if tty {
                            eprint!("\r{:60}\r", "");
                        }
                        println!("[{:>7}/{total}] {}", base + completed, describe(e));
                    }
                    if let Some(line) = apply_event(&plat, e) {
                        gctl_log.push(line);
                    }
                    next_event += 1;
                }
                if tty && issued % 64 == 0 {
                    eprint!(
                        "\r{} bios {}/{} failovers {}   ",
                        dev_name,
                        base + completed,
                        total,
                        failovers(&plat)
                    );
                }
            });
            base += bios;
            drop(dev);
            agg.issued += st.issued;
            agg.completed += st.completed;
            agg.failed += st.failed;
            agg.mismatches += st.mismatches;
            agg.lost += st.lost;
            agg.duplicates += st.duplicates;
            for (k, v) in st.errors {
                *agg.errors.entry(k).or_default() += v;
            }
        }
        // Timeline entries past the end still happen (e.g. a final gctl).
        while next_event < events.len() {
            if ov.live {
                println!(
                    "[{:>7}/{total}] {}",
                    agg.completed,
                    describe(&events[next_event].1)
                );
            }
            if let Some(line) = apply_event(&plat, &events[next_event].1) {
                gctl_log.push(line);
            }
            next_event += 1;
        }
        if tty {
            eprintln!();
        }
        sim.run_until_idle();
        if ov.live {
            show_console(&plat, &mut shown, agg.completed, total);
        }
        let reissued = sim.reissued();
        let latency = sim.latency();
        let fo = failovers(&plat);
        let paths = sim
            .path_counts()
            .into_iter()
            .map(|(n, c)| {
                (
                    n,
                    PathSummary {
                        started: c.started,
                        completed: c.completed,
                        failed: c.failed,
                        bytes: c.bytes,
                    },
                )
            })
            .collect();
        let ko_summary = kk.map(|kk| unload_ko(&sim, &kk, agg.completed));
        let report = sim.finish();
        for f in files {
            let _ = std::fs::remove_file(f);
        }
        Ok(Summary {
            name: self.name.clone(),
            mode: format!("{mode:?}").to_lowercase(),
            seed,
            class: class.to_string(),
            devices,
            bios_issued: agg.issued,
            bios_completed: agg.completed,
            bios_failed: agg.failed,
            reissued,
            data_mismatches: agg.mismatches,
            lost_completions: agg.lost,
            duplicated_completions: agg.duplicates,
            failovers: fo,
            latency,
            errors: agg
                .errors
                .into_iter()
                .map(|(k, v)| (crate::util::errno_name(k).to_string(), v))
                .collect(),
            paths,
            gctl: gctl_log,
            violations: report.violations.iter().map(|v| v.to_string()).collect(),
            trace_hash: if mode == Mode::Deterministic {
                format!("{:016x}", report.trace_hash)
            } else {
                "n/a (threaded)".into()
            },
            ko: ko_summary.as_ref().map(|k| k.line()),
            ko_summary,
        })
    }
}

fn show(r: &Result<String, String>) -> String {
    match r {
        Ok(o) if o.trim().is_empty() => "ok".into(),
        Ok(o) => format!("ok: {}", o.trim()),
        Err(e) => format!("error: {e}"),
    }
}

/// Path failures the class reported on the console: an I/O error
/// ("Error N, P in NAME marked FAIL"), `gmultipath fail` ("P in NAME is
/// marked FAIL.") or a lost device ("was disconnected"). The automatic
/// "all paths in NAME were marked FAIL, restore P" is not one.
fn failovers(plat: &crate::sim::SimPlatform) -> u64 {
    plat.log_lines()
        .iter()
        .filter(|l| {
            (l.contains("marked FAIL") && !l.contains("were marked FAIL"))
                || l.contains("was disconnected")
        })
        .count() as u64
}

/// Applies one timeline entry; returns a line for the gctl log.
fn apply_event(plat: &crate::sim::SimPlatform, e: &EventSpec) -> Option<String> {
    if let Some(g) = &e.gctl {
        let argv: Vec<&str> = g.split_whitespace().collect();
        let r = plat.gmultipath(&argv);
        return Some(format!("@{} {g} -> {}", e.at, show(&r)));
    }
    let path = plat.path_by_name(e.path.as_deref()?)?;
    let errno = e
        .errno
        .as_deref()
        .and_then(parse_errno)
        .unwrap_or(geom_multipath_rs::platform::EIO);
    match e.fault.as_deref()? {
        "fail" => path.fail_rate(errno, e.rate.unwrap_or(1000)),
        "fail-next" => path.fail_next(e.count.unwrap_or(1), errno),
        "latency" => path.set_latency(e.latency_us.unwrap_or(100), e.jitter_us.unwrap_or(0)),
        "die" => path.die(),
        "revive" => path.revive(),
        "heal" => path.heal(),
        _ => {}
    }
    None
}
