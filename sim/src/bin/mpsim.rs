//! mpsim: runs multipath scenarios on the GEOM simulator.
//!
//! ```text
//! mpsim run FILE [--json] [--seed N] [--threads|--deterministic] [--ko [PATH] [--fail-nowait N]]
//! mpsim demo [--json] [--seed N] [--threads|--deterministic] [--ko [PATH] [--fail-nowait N]]
//! mpsim soak [--seeds N] [--bios N] [--class multipath|passthrough] [--threads] [--ko [PATH] [--fail-nowait N]]
//! mpsim bench [--seeds ROUNDS] [--bios N] [--seed ORDER_SEED]
//! mpsim bench-class [--seeds ROUNDS] [--bios N] [--seed ORDER_SEED]
//! mpsim scale [--luns N[,N...]] [--paths P] [--threads|--deterministic|--both] [--bios-per-lun N] [--json]
//! mpsim ko-total FILE
//! ```
//! `ko-total` adds up the module summaries appended to FILE (the
//! `GMR_KO_SUMMARY` file of `make test`'s steps that run through the .ko)
//! and prints their line; exit 1 when nothing ran or the module leaked or
//! panicked.
//! `--ko [PATH]` runs the class from the built module (default: the .ko
//! `make` builds), loaded in-process on the emulated FreeBSD KPI, instead
//! of the core linked into mpsim; `--fail-nowait N` makes its Nth
//! `M_NOWAIT` allocation fail (malloc, g_clone_bio, g_post_event).
//! Exit status: 0 when every run is clean; 1 on a lost or duplicated
//! completion, a data mismatch or a GEOM rule violation; 2 on usage or
//! scenario errors.

use std::process::ExitCode;

use geom_sim::scenario::{
    ClassSource, DiskSpec, EventSpec, Overrides, Scenario, SizeSpec, Summary, WorkloadSpec,
};
use geom_sim::util::Rng;
use geom_sim::Mode;

const DEMO: &str = include_str!("../../../tests/scenarios/demo.toml");

const USAGE: &str = "usage:
  mpsim run FILE [--json] [--seed N] [--threads|--deterministic] [--ko [PATH] [--fail-nowait N]]
  mpsim demo [--json] [--seed N] [--threads|--deterministic] [--ko [PATH] [--fail-nowait N]]
  mpsim soak [--seeds N] [--bios N] [--class multipath|passthrough] [--threads] [--ko [PATH] [--fail-nowait N]]
  mpsim bench [--seeds ROUNDS] [--bios N] [--seed ORDER_SEED]
  mpsim bench-class [--seeds ROUNDS] [--bios N] [--seed ORDER_SEED]
  mpsim scale [--luns N[,N...]] [--paths P] [--threads|--deterministic|--both] [--bios-per-lun N] [--json]
  mpsim ko-total FILE";

struct Opts {
    json: bool,
    seed: Option<u64>,
    mode: Option<Mode>,
    seeds: u64,
    bios: u64,
    seeds_given: bool,
    bios_given: bool,
    class: Option<String>,
    /// `--ko [PATH]`: the class from this module.
    ko: Option<std::path::PathBuf>,
    /// `--fail-nowait N`: with --ko, the Nth M_NOWAIT allocation fails.
    fail_nowait: Option<u64>,
    positional: Vec<String>,
}

impl Opts {
    /// Where the class comes from.
    fn source(&self) -> ClassSource {
        match &self.ko {
            Some(p) => ClassSource::Ko(geom_sim::ko::KoOptions {
                fail_nowait_at: self.fail_nowait,
                ..geom_sim::ko::KoOptions::at(p)
            }),
            // GMR_CLASS=ko without --ko: the module too.
            None => ClassSource::from_env().unwrap_or_default(),
        }
    }

    /// The `--ko PATH` words for a replay line ("" without --ko).
    fn ko_words(&self) -> String {
        let fail = self
            .fail_nowait
            .map_or(String::new(), |n| format!(" --fail-nowait {n}"));
        match &self.ko {
            Some(p) => format!(" --ko {}{fail}", shell_word(&p.display().to_string())),
            None => String::new(),
        }
    }
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        json: false,
        seed: None,
        mode: None,
        seeds: 20,
        bios: 2000,
        seeds_given: false,
        bios_given: false,
        class: None,
        ko: None,
        fail_nowait: None,
        positional: Vec::new(),
    };
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        let mut num = |name: &str| -> Result<u64, String> {
            let v = it.next().ok_or_else(|| format!("{name} needs a value"))?;
            v.parse::<u64>()
                .map_err(|_| format!("{name}: '{v}' is not a number"))
        };
        match a.as_str() {
            "--json" => o.json = true,
            "--threads" | "--threaded" => o.mode = Some(Mode::Threaded),
            "--deterministic" => o.mode = Some(Mode::Deterministic),
            "--seed" => o.seed = Some(num("--seed")?),
            "--seeds" => {
                o.seeds = num("--seeds")?;
                o.seeds_given = true;
            }
            "--bios" => {
                o.bios = num("--bios")?;
                o.bios_given = true;
            }
            "--class" => o.class = Some(it.next().ok_or("--class needs a value")?.clone()),
            // The path is optional: taken when the next word names a .ko.
            "--ko" => {
                let path = it.next_if(|p| p.ends_with(".ko"));
                o.ko = Some(path.map_or_else(geom_sim::ko::default_ko_path, Into::into));
            }
            "--fail-nowait" => o.fail_nowait = Some(num("--fail-nowait")?),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => o.positional.push(s.to_string()),
        }
    }
    if o.fail_nowait.is_some() && o.ko.is_none() {
        return Err("--fail-nowait applies to the module: give --ko too".into());
    }
    Ok(o)
}

fn report(s: &Summary, json: bool) {
    if json {
        match serde_json::to_string_pretty(s) {
            Ok(j) => println!("{j}"),
            Err(e) => eprintln!("mpsim: cannot encode the summary: {e}"),
        }
    } else {
        print!("{}", s.text());
    }
}

fn run_one(file: &str, sc: &Scenario, o: &Opts) -> ExitCode {
    let ov = Overrides {
        seed: o.seed,
        mode: o.mode,
        progress: true,
        live: !o.json,
    };
    conclude(
        sc.run_with(&ov, &o.source()),
        o.json,
        &format!("mpsim run {}{}", shell_word(file), o.ko_words()),
    )
}

/// `--threads` or `--deterministic`, as a run's summary names its mode.
fn mode_flag(mode: &str) -> &'static str {
    if mode == "threaded" {
        "--threads"
    } else {
        "--deterministic"
    }
}

/// `w` quoted for a POSIX shell when it needs to be.
fn shell_word(w: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !w.is_empty() && w.chars().all(plain) {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

/// How to run a soak seed again, less `--seed N`: every option that shapes
/// the run, the mode included, whether or not it was given.
fn soak_replay(class: &str, bios: u64, mode: Option<Mode>) -> String {
    let flag = match mode {
        Some(Mode::Threaded) => "--threads",
        _ => "--deterministic",
    };
    format!("mpsim soak --class {class} --bios {bios} {flag}")
}

/// Threaded runs follow the OS scheduler: their replay repeats the
/// scenario, not the interleaving.
fn replay_note(mode: Option<Mode>) -> &'static str {
    match mode {
        Some(Mode::Threaded) => {
            " (threaded: same scenario and seed, the thread interleaving may differ)"
        }
        _ => "",
    }
}

/// Prints a run's summary; exit 1 for a bad run, 2 when it could not run.
/// A bad run also prints `replay` with the seed and mode it ran with.
fn conclude(r: Result<Summary, String>, json: bool, replay: &str) -> ExitCode {
    match r {
        Ok(s) => {
            report(&s, json);
            if s.is_bad() {
                eprintln!(
                    "replay with: {replay} --seed {} {}",
                    s.seed,
                    mode_flag(&s.mode)
                );
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("mpsim: {e}");
            ExitCode::from(2)
        }
    }
}

/// The demo: the built-in two-path scenario against MULTIPATH.
fn demo(o: &Opts) -> ExitCode {
    let sc = match Scenario::parse(DEMO) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mpsim: built-in demo: {e}");
            return ExitCode::from(2);
        }
    };
    let ov = Overrides {
        seed: o.seed,
        mode: o.mode,
        progress: true,
        live: !o.json,
    };
    if !o.json {
        println!(
            "mpsim demo: {} — one LUN behind paths da0 and da1, labelled as multipath/mp0;",
            sc.name
        );
        println!(
            "a read/write load runs while paths fail, come back and die; every read is checked.\n"
        );
    }
    // No fallback to another class: a demo that cannot build its
    // multipath device must fail, not show something else.
    conclude(
        sc.run_with(&ov, &o.source()),
        o.json,
        &format!("mpsim demo{}", o.ko_words()),
    )
}

/// A random scenario for `seed`: 2-3 paths, a timeline of faults.
fn random_scenario(seed: u64, bios: u64, class: &str) -> Scenario {
    let mut r = Rng::new(seed);
    let npaths = 2 + r.below(2) as usize;
    let paths: Vec<String> = (0..npaths).map(|i| format!("da{i}")).collect();
    let mut events = Vec::new();
    let mut dead = vec![false; npaths];
    for _ in 0..(3 + r.below(6)) {
        let at = r.below(bios.max(1));
        let p = r.below(npaths as u64) as usize;
        let mut ev = EventSpec {
            at,
            path: Some(paths[p].clone()),
            fault: None,
            errno: None,
            rate: None,
            count: None,
            latency_us: None,
            jitter_us: None,
            gctl: None,
        };
        let f = match r.below(6) {
            0 => {
                ev.rate = Some(r.below(1001) as u32);
                ev.errno = Some(if r.chance(500) { "EIO" } else { "ENXIO" }.into());
                "fail"
            }
            1 => {
                ev.count = Some(1 + r.below(20) as u32);
                ev.errno = Some("EIO".into());
                "fail-next"
            }
            2 => {
                ev.latency_us = Some(r.below(200));
                ev.jitter_us = Some(r.below(500));
                "latency"
            }
            3 if !dead[p] => {
                dead[p] = true;
                "die"
            }
            3 | 4 if dead[p] => {
                dead[p] = false;
                "revive"
            }
            _ => "heal",
        };
        ev.fault = Some(f.into());
        events.push(ev);
    }
    Scenario {
        name: format!("soak seed {seed}"),
        mode: Some("deterministic".into()),
        seed: Some(seed),
        class: Some(class.into()),
        mp_mode: Some(
            ["active-passive", "active-active", "active-read"][r.below(3) as usize].into(),
        ),
        setup: Some("label".into()),
        disks: vec![DiskSpec {
            paths,
            size: Some(SizeSpec::Text("8M".into())),
            sectorsize: Some(512),
            store: None,
        }],
        workload: WorkloadSpec {
            bios: Some(bios),
            queue_depth: Some(1 + r.below(32) as usize),
            read_percent: Some(r.below(101) as u32),
            max_sectors: Some(1 + r.below(32) as u32),
            span: None,
        },
        events,
    }
}

/// A path no fail, fail-next or die event touches, if any.
fn healthy_path(sc: &Scenario) -> Option<String> {
    let hurt = |p: &str| {
        sc.events.iter().any(|e| {
            e.path.as_deref() == Some(p)
                && matches!(e.fault.as_deref(), Some("fail" | "fail-next" | "die"))
        })
    };
    sc.disks.first()?.paths.iter().find(|p| !hurt(p)).cloned()
}

fn soak(o: &Opts) -> ExitCode {
    let class = o.class.clone().unwrap_or_else(|| "multipath".into());
    if class != "multipath" && class != "passthrough" {
        eprintln!("mpsim: --class must be multipath or passthrough");
        return ExitCode::from(2);
    }
    let seeds: Vec<u64> = match o.seed {
        Some(s) => vec![s],
        None => (1..=o.seeds).collect(),
    };
    let ov = Overrides {
        seed: None,
        mode: o.mode,
        progress: false,
        live: false,
    };
    let (mut ok, mut bad) = (0u64, 0u64);
    let mut ko_total = geom_sim::ko::KoSummary::default();
    let replay_prefix = soak_replay(&class, o.bios, o.mode) + &o.ko_words();
    let src = o.source();
    eprintln!(
        "soak: {} seeds; replay seed N with: {replay_prefix} --seed N{}",
        seeds.len(),
        replay_note(o.mode)
    );
    for seed in seeds {
        let replay = format!("{replay_prefix} --seed {seed}");
        let sc = random_scenario(seed, o.bios, &class);
        // With a path that no fault ever touches, multipath must hide every
        // failure: a failed bio is then a bug, not bad luck.
        let healthy = healthy_path(&sc);
        let r = sc.run_with(&ov, &src);
        if let Some(k) = r.as_ref().ok().and_then(|s| s.ko_summary.as_ref()) {
            ko_total.add(k);
        }
        match r {
            Ok(s) if class == "multipath" && healthy.is_some() && s.bios_failed > 0 => {
                bad += 1;
                report(&s, o.json);
                eprintln!(
                    "failed at seed {seed}: {} bios failed although path {} never failed; replay with: {replay}{}",
                    s.bios_failed,
                    healthy.unwrap_or_default(),
                    replay_note(o.mode)
                );
            }
            Ok(s) if !s.is_bad() => {
                ok += 1;
                eprintln!(
                    "seed {seed}: ok ({} bios, {} failed, {} failovers)",
                    s.bios_completed, s.bios_failed, s.failovers
                );
                if let Some(k) = &s.ko {
                    eprintln!("  {k}");
                }
            }
            Ok(s) => {
                bad += 1;
                report(&s, o.json);
                eprintln!(
                    "failed at seed {seed}, replay with: {replay}{}",
                    replay_note(o.mode)
                );
            }
            Err(e) => {
                bad += 1;
                eprintln!("seed {seed}: error: {e}; replay with: {replay}");
            }
        }
    }
    if ko_total.runs > 0 {
        println!("{}", ko_total.line());
    }
    println!("soak: {ok} passed, {bad} failed");
    if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `mpsim ko-total FILE`.
fn ko_total(file: &str) -> ExitCode {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("mpsim: {file}: {e}");
            return ExitCode::from(2);
        }
    };
    let t = match geom_sim::ko_summary::total(&text) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("mpsim: {file}: {e}");
            return ExitCode::from(2);
        }
    };
    if t.runs == 0 {
        eprintln!("mpsim: {file}: nothing ran through the module");
        return ExitCode::from(1);
    }
    println!("{}", t.line());
    if t.leaks > 0 || t.panics > 0 {
        eprintln!("mpsim: the module leaked or called panic(9)");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if cmd == "scale" {
        // Its own options (--luns, --paths, --sizes): see geom_sim::scale.
        return ExitCode::from(geom_sim::scale::main(rest));
    }
    let o = match parse(rest) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("mpsim: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match cmd.as_str() {
        "run" => {
            let [file] = o.positional.as_slice() else {
                eprintln!("mpsim: run needs one scenario FILE\n{USAGE}");
                return ExitCode::from(2);
            };
            match Scenario::load(std::path::Path::new(file)) {
                Ok(sc) => run_one(file, &sc, &o),
                Err(e) => {
                    eprintln!("mpsim: {e}");
                    ExitCode::from(2)
                }
            }
        }
        "demo" => demo(&o),
        "ko-total" => {
            let [file] = o.positional.as_slice() else {
                eprintln!("mpsim: ko-total needs one FILE\n{USAGE}");
                return ExitCode::from(2);
            };
            ko_total(file)
        }
        "soak" => soak(&o),
        "bench" => {
            // --seeds N: exactly N rounds; by default 15 to 120, until
            // every median ratio is known within ±2%, or 50 s have passed.
            let (min_rounds, max_rounds) = if o.seeds_given {
                (o.seeds.max(1) as usize, o.seeds.max(1) as usize)
            } else {
                (15, 120)
            };
            let bios = if o.bios_given { o.bios } else { 20_000 };
            // The order of the variants is random each round; the seed is
            // printed, and --seed repeats it.
            let order_seed = o.seed.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64 % 1_000_000)
                    .unwrap_or(1)
            });
            let cfg = geom_sim::bench::BenchConfig {
                min_rounds,
                max_rounds,
                target_ci: 0.02,
                budget: std::time::Duration::from_secs(50),
                warmup: 2,
                bios: bios.max(1),
                queue_depth: 32,
                order_seed,
            };
            match geom_sim::bench::run(&cfg) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("mpsim bench: {e}");
                    ExitCode::from(1)
                }
            }
        }
        "bench-class" => {
            // The class alone on a platform that costs nearly nothing
            // (geom_sim::classbench): 21 rounds of 1M bios a thread.
            let cfg = geom_sim::classbench::ClassBenchConfig {
                rounds: if o.seeds_given {
                    o.seeds.max(1) as usize
                } else {
                    21
                },
                warmup: 2,
                bios: if o.bios_given {
                    o.bios.max(1)
                } else {
                    1_000_000
                },
                order_seed: o.seed.unwrap_or(1),
            };
            match geom_sim::classbench::run(&cfg) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("mpsim bench-class: {e}");
                    ExitCode::from(1)
                }
            }
        }
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        c => {
            eprintln!("mpsim: unknown command {c}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
