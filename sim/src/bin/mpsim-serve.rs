//! mpsim-serve: one simulated FreeBSD machine, running the multipath core
//! (or with `--ko` the shipped kernel module, linked in-process), that
//! shell commands talk to over a unix socket. The VM harness's dry run
//! (tests/vm/dryrun) points `gmultipath`, `mdconfig`, `gnop`, `diskinfo`,
//! `dd`, `sysctl`, `kldload`, `kldstat`, `dmesg`, `geom` and `dtrace` at
//! it, so the ATF scripts written for a FreeBSD guest run against our class.
//!
//! ```text
//! mpsim-serve --socket PATH --dev DIR [--lun IDENT] [--seed N] [--threads] [--log FILE]
//!             [--ko [PATH]]
//! gmultipath ARGS...      (a link to mpsim-serve named after the command)
//! mpsim REQUEST ARGS...   (a link named mpsim: internal requests)
//! ```
//!
//! Run under one of the command names it serves (a symbolic link), it is
//! the client: it sends its command line to the server at `$MPSIM_SOCK`,
//! prints the answer and exits with its status.
//!
//! * `gmultipath` is the simulator's front end ([`geom_sim::SimPlatform::gmultipath`]):
//!   the stock command line turned into gctl requests on the real core, and
//!   `list`/`status` printed from `kern.geom.confxml` as geom(8) prints them.
//! * `mdconfig -a` adds a one-path LUN `mdN`; `-d` makes its path die.
//! * `gnop` is a NOP class in the simulated GEOM (an offset, a physical
//!   path, read and write failure rates in percent), so fault injection and
//!   departing/arriving paths go through GEOM's orphan and taste machinery.
//! * `dd` reads and writes through `/dev` nodes opened on the simulator.
//! * Device nodes: every provider with a DEV node has an empty file under
//!   `--dev`; a file whose mtime changed (a host process opened it for
//!   writing, as `true > $DEV/vtbd2` does) is opened for writing and closed
//!   on the simulator before the next command, which makes GEOM retaste it.
//! * `--lun IDENT`: the disks of a VM made by tests/vm/run.sh: vtbd0, vtbd1
//!   and vtbd2 (two paths to one 64 MiB LUN with ident IDENT, its bytes in
//!   `DIR/.data-lun0`), vtbd3.
//! * The class: without `--ko`, `kldload .../geom_multipath_rs.ko` (any
//!   file of that name, a stand-in will do) loads the multipath core linked
//!   into this program, and `kldstat` says so. With `--ko [PATH]` (or
//!   `GMR_CLASS=ko`, the module at `GMR_KO`), `kldload FILE.ko` links the
//!   bytes of FILE, the shipped kernel module, with the in-process loader
//!   ([`geom_sim::ko::load`]): its SYSINITs register MULTIPATH and every
//!   `gmultipath` verb reaches the module's ctlreq as a `struct gctl_req`
//!   laid out as geom(8) builds it. PATH (default: the module `make`
//!   builds) is what a bare `kldload geom_multipath_rs` finds, as the
//!   kernel's module path would. `kldstat` then shows the module's real
//!   mapping and the modules it declared, and says that it was linked in
//!   this process, not by a FreeBSD kernel; `kldunload` unloads it
//!   (`MOD_QUIESCE`/`MOD_UNLOAD` may refuse), and `sysctl` reads and writes
//!   its integer sysctls. `mpsim-stop` unloads it before the shutdown
//!   checks: a refused unload, a leak at `malloc_uninit`, a `panic(9)` or
//!   a kproc left in its code fails the stop, whose last line is the
//!   module's summary (`ko: loaded ... leaks 0`).
//!
//! Protocol: one request per connection, a JSON line
//! `{"argv": [...], "cwd": "..."}`; the answer is one JSON object
//! `{"rc": N, "out": "...", "err": "..."}`. Internal requests:
//! `mpsim-state` (what is left: md disks, gnop providers, multipath geoms),
//! `mpsim-violations` (GEOM rule violations so far) and `mpsim-stop` (tears
//! the simulation down, checks it for leaks and rule violations, exits;
//! with `--ko` it also unloads the module and checks what its unload saw).
//!
//! `MPSIM_BREAK` makes one thing misbehave on purpose, for the self-test's
//! negative cases only: `rotate-twice` (gmultipath rotate sends the verb
//! twice), `getactive-reversed` (getactive prints its paths in reverse),
//! `restore-noop` (gmultipath restore does nothing), `gnop-no-faults` (gnop
//! configure -r/-w is ignored), `ko-keep-geoms` (with `--ko`, `mpsim-stop`
//! unloads the module without stopping its geoms first).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use geom_sim::gmultipath::strerror;
use geom_sim::ids::{ConsumerId, GeomId, ProviderId};
use geom_sim::ko::{KoKernel, KoOptions};
use geom_sim::passthrough::PassThrough;
use geom_sim::{
    Access, Bio, BioCmd, Dev, Errno, Lun, LunConfig, Sim, SimClass, SimConfig, SimPlatform,
    StoreKind, EBUSY, EFAULT, EIO, ENXIO, PHYSPATH,
};

// ------------------------------------------------------------------ gnop

/// The NOP class (`gnop(8)`): a geom `NAME.nop` over provider NAME that
/// passes bios through, shifted by an offset, failing reads and writes at
/// the configured rates, and answering `GEOM::physpath` when given one.
struct NopClass;

struct NopSoftc {
    cp: ConsumerId,
    offset: u64,
    physpath: Option<String>,
    /// Failure rates, percent (`gnop configure -r`, `-w`).
    rfail: AtomicU32,
    wfail: AtomicU32,
}

impl PassThrough for NopSoftc {
    fn consumer(&self) -> ConsumerId {
        self.cp
    }
}

impl SimClass for NopClass {
    fn name(&self) -> &str {
        "NOP"
    }

    fn start(&self, plat: &SimPlatform, gp: GeomId, bp: Bio) {
        plat.start_with_softc(gp, bp, |sc: Arc<NopSoftc>, bp| {
            let cmd = plat.bio_cmd_of(&bp);
            let rate = match cmd {
                BioCmd::Read => sc.rfail.load(Ordering::Relaxed),
                BioCmd::Write | BioCmd::Delete | BioCmd::Flush => sc.wfail.load(Ordering::Relaxed),
                _ => 0,
            };
            if rate > 0 && plat.chance(rate.min(100) * 10) {
                return plat.g_io_deliver(bp, EIO);
            }
            if cmd == BioCmd::GetAttr && plat.bio_attribute_eq(&bp, PHYSPATH) {
                if let Some(phys) = &sc.physpath {
                    let mut bp = bp;
                    let err = fill_attr(plat, &mut bp, phys);
                    return plat.g_io_deliver(bp, err);
                }
            }
            plat.pass_down(bp, sc.cp, |child| {
                if matches!(cmd, BioCmd::Read | BioCmd::Write | BioCmd::Delete) {
                    let off = plat.bio_offset_of(child) + sc.offset;
                    plat.set_bio_offset(child, off);
                }
            });
        });
    }

    fn orphan(&self, plat: &SimPlatform, cp: ConsumerId) {
        plat.wither_consumer_geom(cp);
    }

    fn access(&self, plat: &SimPlatform, pp: ProviderId, delta: Access) -> Result<(), Errno> {
        plat.pass_access::<NopSoftc>(pp, delta)
    }

    fn destroy_geom(&self, plat: &SimPlatform, gp: GeomId) -> Result<(), Errno> {
        plat.g_wither_geom(gp, ENXIO);
        Ok(())
    }
}

/// A string attribute the way `g_handleattr_str` answers it.
fn fill_attr(plat: &SimPlatform, bp: &mut Bio, value: &str) -> Errno {
    let Some(data) = plat.bio_data(bp) else {
        return EFAULT;
    };
    let len = plat.bio_length_of(bp);
    {
        let mut d = data.lock().unwrap_or_else(|e| e.into_inner());
        let n = (len as usize).min(d.len());
        if value.len() >= n {
            return EFAULT;
        }
        d[..n].fill(0);
        d[..value.len()].copy_from_slice(value.as_bytes());
    }
    plat.set_bio_completed(bp, len);
    0
}

// ------------------------------------------------------------------ the machine

/// What `MPSIM_BREAK` asked to break.
#[derive(Default)]
struct Breaks(BTreeSet<String>);

impl Breaks {
    fn has(&self, what: &str) -> bool {
        self.0.contains(what)
    }
}

struct Reply {
    rc: i32,
    out: String,
    err: String,
}

fn ok(out: impl Into<String>) -> Reply {
    Reply {
        rc: 0,
        out: out.into(),
        err: String::new(),
    }
}

/// Each item on a line of its own.
fn lines(items: &[impl std::fmt::Display]) -> String {
    items.iter().map(|l| format!("{l}\n")).collect()
}

fn fail(err: impl Into<String>) -> Reply {
    let mut e = err.into();
    if !e.ends_with('\n') {
        e.push('\n');
    }
    Reply {
        rc: 1,
        out: String::new(),
        err: e,
    }
}

struct Machine {
    sim: Sim,
    dev: PathBuf,
    breaks: Breaks,
    nop: geom_sim::ClassId,
    /// md disks by name.
    mds: BTreeMap<String, Lun>,
    next_md: u32,
    /// The VM disks (vtbdN), kept alive.
    vtbd: Vec<Lun>,
    /// Device nodes made under `dev`, with the mtime they had then.
    nodes: BTreeMap<String, std::time::SystemTime>,
    /// The module file `kldload` loaded MULTIPATH for.
    loaded: Option<String>,
    /// `--ko`: the class comes from the module's bytes; a bare
    /// `kldload geom_multipath_rs` finds this file.
    ko: Option<PathBuf>,
    /// `--ko`: the module instance `kldload` linked, and its file.
    kk: Option<(Arc<KoKernel>, PathBuf)>,
    notaste: bool,
}

impl Machine {
    fn new(
        dev: PathBuf,
        seed: u64,
        threads: bool,
        lun: Option<&str>,
        ko: Option<PathBuf>,
    ) -> Result<Machine, String> {
        let mode = if threads {
            geom_sim::Mode::Threaded
        } else {
            geom_sim::Mode::Deterministic
        };
        let sim = Sim::new(SimConfig::new(mode, seed));
        let nop = sim
            .load_class(Arc::new(NopClass))
            .map_err(|e| format!("cannot load the NOP class: error {e}"))?;
        let mut m = Machine {
            sim,
            dev,
            breaks: Breaks(
                std::env::var("MPSIM_BREAK")
                    .unwrap_or_default()
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
            ),
            nop,
            mds: BTreeMap::new(),
            next_md: 0,
            vtbd: Vec::new(),
            nodes: BTreeMap::new(),
            loaded: None,
            ko,
            kk: None,
            notaste: false,
        };
        if let Some(ident) = lun {
            m.vtbd
                .push(m.sim.add_lun(LunConfig::new(&["vtbd0"], 5 << 30))?);
            let mut cfg = LunConfig::new(&["vtbd1", "vtbd2"], 64 << 20);
            cfg.store = StoreKind::SparseFile(m.dev.join(".data-lun0"));
            let l = m.sim.add_lun(cfg)?;
            for i in 0..2 {
                if let Some(p) = l.path(i) {
                    p.set_attribute("GEOM::ident", Some(ident));
                }
            }
            m.vtbd.push(l);
            m.vtbd
                .push(m.sim.add_lun(LunConfig::new(&["vtbd3"], 8 << 20))?);
        }
        m.sim.run_until_idle();
        m.sync_dev();
        Ok(m)
    }

    /// `/dev/X`, `DEVROOT/X` or `X` → `X`.
    fn devname<'a>(&self, p: &'a str) -> &'a str {
        let root = self.dev.to_string_lossy();
        let root = root.trim_end_matches('/');
        if let Some(r) = p.strip_prefix(root).and_then(|r| r.strip_prefix('/')) {
            return r;
        }
        p.strip_prefix("/dev/").unwrap_or(p)
    }

    /// Whether host path `p` names a device node of the simulator.
    fn is_dev(&self, p: &str) -> bool {
        let root = self.dev.to_string_lossy();
        let root = root.trim_end_matches('/');
        if p.strip_prefix(root).is_some_and(|r| r.starts_with('/')) {
            return true;
        }
        p.strip_prefix("/dev/")
            .is_some_and(|n| self.sim.g_provider_by_name(n).is_some())
    }

    /// The providers that have a /dev node now.
    fn dev_nodes(&self) -> BTreeSet<String> {
        self.sim
            .geoms_of_class("DEV")
            .into_iter()
            .filter(|&g| !self.sim.geom_withering(g))
            .filter_map(|g| self.sim.geom_name_of(g))
            .filter(|n| !n.is_empty() && !n.contains(".."))
            .collect()
    }

    /// Makes the files under `dev` match the simulator's /dev.
    fn sync_dev(&mut self) {
        let want = self.dev_nodes();
        let gone: Vec<String> = self
            .nodes
            .keys()
            .filter(|n| !want.contains(*n))
            .cloned()
            .collect();
        for n in gone {
            let _ = std::fs::remove_file(self.dev.join(&n));
            self.nodes.remove(&n);
        }
        for n in want {
            if self.nodes.contains_key(&n) {
                continue;
            }
            let path = self.dev.join(&n);
            if let Some(parent) = path.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            if std::fs::write(&path, b"").is_ok() {
                if let Ok(t) = std::fs::metadata(&path).and_then(|m| m.modified()) {
                    self.nodes.insert(n, t);
                }
            }
        }
    }

    /// Nodes a host process opened for writing since the last command:
    /// open and close them for writing here, as that process did on FreeBSD.
    fn retaste_touched(&mut self) {
        let touched: Vec<String> = self
            .nodes
            .iter()
            .filter(|(n, t)| {
                std::fs::metadata(self.dev.join(n))
                    .and_then(|m| m.modified())
                    .is_ok_and(|now| now != **t)
            })
            .map(|(n, _)| n.clone())
            .collect();
        for n in touched {
            if let Ok(d) = self.sim.open(&n, Access::new(0, 1, 0)) {
                let _ = d.close();
            }
            self.sim.run_until_idle();
            if let Ok(t) = std::fs::metadata(self.dev.join(&n)).and_then(|m| m.modified()) {
                self.nodes.insert(n, t);
            }
        }
    }

    fn run(&mut self, argv: &[String], cwd: &Path) -> Reply {
        self.retaste_touched();
        let args: Vec<&str> = argv.iter().skip(1).map(String::as_str).collect();
        let r = match argv.first().map(String::as_str) {
            Some("gmultipath") => self.gmultipath(&args),
            Some("mdconfig") => self.mdconfig(&args),
            Some("gnop") => self.gnop(&args),
            Some("geom") => self.geom(&args),
            Some("diskinfo") => self.diskinfo(&args),
            Some("dd") => self.dd(&args, cwd),
            Some("sysctl") => self.sysctl(&args),
            Some("kldload") => self.kldload(&args, cwd),
            Some("kldunload") => self.kldunload(&args),
            Some("kldstat") => self.kldstat(&args),
            Some("dmesg") => ok(lines(&self.sim.log_lines())),
            Some("dtrace") => {
                fail("dtrace: the simulator has no DTrace: probe description not found")
            }
            Some("mpsim-state") => ok(self.state()),
            Some("mpsim-violations") => ok(lines(&self.sim.violations())),
            Some(c) => fail(format!("mpsim-serve: {c}: not a simulated command")),
            None => fail("mpsim-serve: empty request"),
        };
        self.sim.run_until_idle();
        self.sync_dev();
        r
    }

    fn gmultipath(&mut self, args: &[&str]) -> Reply {
        let verb = args.first().copied().unwrap_or("");
        if self.breaks.has("restore-noop") && verb == "restore" {
            return ok("");
        }
        let r = self.sim.gmultipath(args);
        self.sim.run_until_idle();
        let r = match r {
            Ok(out) if self.breaks.has("rotate-twice") && verb == "rotate" => {
                self.sim.gmultipath(args).map(|o| out + &o)
            }
            Ok(out) if self.breaks.has("getactive-reversed") && verb == "getactive" => {
                let mut w: Vec<&str> = out.split_whitespace().collect();
                w.reverse();
                Ok(format!("{}\n", w.join(" ")))
            }
            r => r,
        };
        match r {
            Ok(out) => ok(out),
            Err(e) => fail(format!("gmultipath: {e}")),
        }
    }

    fn mdconfig(&mut self, args: &[&str]) -> Reply {
        let opt = |flag: &str| {
            args.iter()
                .position(|a| *a == flag)
                .and_then(|i| args.get(i + 1).copied())
        };
        if args.contains(&"-a") {
            let size = match opt("-s").map(parse_md_size) {
                None => return fail("mdconfig: size is required"),
                Some(Err(e)) => return fail(format!("mdconfig: {e}")),
                Some(Ok(s)) => s,
            };
            let name = format!("md{}", self.next_md);
            self.next_md += 1;
            match self.sim.add_lun(LunConfig::new(&[&name], size)) {
                Ok(l) => {
                    self.mds.insert(name.clone(), l);
                    ok(format!("{name}\n"))
                }
                Err(e) => fail(format!("mdconfig: {e}")),
            }
        } else if args.contains(&"-d") {
            let Some(u) = opt("-u") else {
                return fail("mdconfig: -d needs -u unit");
            };
            let u = if u.starts_with("md") {
                u.to_string()
            } else {
                format!("md{u}")
            };
            let force = opt("-o") == Some("force");
            let Some(lun) = self.mds.get(&u) else {
                return fail(format!("mdconfig: ioctl(/dev/mdctl): {}", strerror(2)));
            };
            let Some(path) = lun.path(0) else {
                return fail("mdconfig: no path");
            };
            let open = path
                .provider()
                .and_then(|pp| self.sim.provider_acc(pp))
                .is_some_and(|a| a.is_open());
            if open && !force {
                return fail(format!("mdconfig: ioctl(/dev/mdctl): {}", strerror(EBUSY)));
            }
            path.die();
            self.mds.remove(&u);
            ok("")
        } else {
            fail(format!("mdconfig: not simulated: {}", args.join(" ")))
        }
    }

    fn gnop(&mut self, args: &[&str]) -> Reply {
        let Some((&verb, rest)) = args.split_first() else {
            return fail("usage: gnop verb ...");
        };
        // Options with a value, then the names.
        let mut vals: BTreeMap<char, String> = BTreeMap::new();
        let mut force = false;
        let mut names = Vec::new();
        let mut it = rest.iter();
        while let Some(a) = it.next() {
            match *a {
                "-f" => force = true,
                "-v" => {}
                s if s.len() == 2 && s.starts_with('-') => {
                    let Some(v) = it.next() else {
                        return fail(format!("gnop: option {s} needs a value"));
                    };
                    vals.insert(s.as_bytes()[1] as char, v.to_string());
                }
                s => names.push(self.devname(s).to_string()),
            }
        }
        let num = |c: char| -> Result<u64, String> {
            vals.get(&c).map_or(Ok(0), |v| {
                v.parse().map_err(|_| format!("gnop: invalid -{c} {v}"))
            })
        };
        match verb {
            "create" => {
                let (offset, r, w) = match (num('o'), num('r'), num('w')) {
                    (Ok(o), Ok(r), Ok(w)) => (o, r, w),
                    (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return fail(e),
                };
                for n in names {
                    let phys = vals.get(&'z').cloned();
                    let nop = self.nop;
                    let res = self.sim.g_waitfor_event(move |p| {
                        nop_create(&p.bound(nop), &n, offset, phys, r as u32, w as u32)
                    });
                    match res {
                        Some(Ok(())) => {}
                        Some(Err(e)) => return fail(format!("gnop: {e}")),
                        None => return fail("gnop: the event did not run"),
                    }
                    self.sim.run_until_idle();
                }
                ok("")
            }
            "configure" => {
                let (r, w) = match (num('r'), num('w')) {
                    (Ok(r), Ok(w)) => (r as u32, w as u32),
                    (Err(e), _) | (_, Err(e)) => return fail(e),
                };
                for n in names {
                    let Some(sc) = self
                        .nop_geom(&n)
                        .and_then(|g| self.sim.geom_softc::<NopSoftc>(g))
                    else {
                        return fail(format!("gnop: Provider {n} is invalid."));
                    };
                    if self.breaks.has("gnop-no-faults") {
                        continue;
                    }
                    if vals.contains_key(&'r') {
                        sc.rfail.store(r, Ordering::Relaxed);
                    }
                    if vals.contains_key(&'w') {
                        sc.wfail.store(w, Ordering::Relaxed);
                    }
                }
                ok("")
            }
            "destroy" => {
                for n in names {
                    let Some(gp) = self.nop_geom(&n) else {
                        return fail(format!("gnop: Device {n} is invalid."));
                    };
                    let open = self
                        .sim
                        .geom_providers(gp)
                        .iter()
                        .any(|&pp| self.sim.provider_acc(pp).is_some_and(|a| a.is_open()));
                    if open && !force {
                        return fail(format!("gnop: Device {n} is still open."));
                    }
                    let done = self.sim.g_waitfor_event(move |p| {
                        if p.geom_exists(gp) && !p.geom_withering(gp) {
                            p.g_wither_geom(gp, ENXIO);
                        }
                    });
                    if done.is_none() {
                        return fail("gnop: the event did not run");
                    }
                    self.sim.run_until_idle();
                }
                ok("")
            }
            v => fail(format!("gnop: Unknown command: {v}.")),
        }
    }

    fn nop_geom(&self, name: &str) -> Option<GeomId> {
        self.sim.geoms_of_class("NOP").into_iter().find(|&g| {
            !self.sim.geom_withering(g) && self.sim.geom_name_of(g).as_deref() == Some(name)
        })
    }

    fn geom(&mut self, args: &[&str]) -> Reply {
        match args {
            ["nop", "load"] => ok(""),
            [class, rest @ ..] if class.eq_ignore_ascii_case("multipath") => self.gmultipath(rest),
            _ => fail(format!("geom: not simulated: {}", args.join(" "))),
        }
    }

    fn diskinfo(&mut self, args: &[&str]) -> Reply {
        let Some(dev) = args.iter().rev().find(|a| !a.starts_with('-')) else {
            return fail("usage: diskinfo [-ps] disk");
        };
        let name = self.devname(dev).to_string();
        let d = match self.sim.open(&name, Access::new(1, 0, 0)) {
            Ok(d) => d,
            Err(e) => return fail(format!("diskinfo: {dev}: {}", strerror(e))),
        };
        let r = if args.contains(&"-p") {
            match d.getattr_str(PHYSPATH, 1024) {
                Ok(s) => ok(format!("{s}\n")),
                Err(_) => fail(format!(
                    "diskinfo: {dev}: ioctl(DIOCGPHYSPATH) failed, probably not a disk."
                )),
            }
        } else if args.contains(&"-s") {
            match d.getattr_str("GEOM::ident", 256) {
                Ok(s) => ok(format!("{s}\n")),
                Err(_) => fail(format!(
                    "diskinfo: {dev}: ioctl(DIOCGIDENT) failed, probably not a disk."
                )),
            }
        } else {
            let (ms, ss) = d.size().unwrap_or((0, 512));
            ok(format!(
                "{name}\t{ss}\t{ms}\t{}\t0\t0\n",
                ms / u64::from(ss.max(1))
            ))
        };
        let _ = d.close();
        r
    }

    fn dd(&mut self, args: &[&str], cwd: &Path) -> Reply {
        let mut ops: BTreeMap<&str, &str> = BTreeMap::new();
        for a in args {
            match a.split_once('=') {
                Some((k, v)) => {
                    ops.insert(k, v);
                }
                None => return fail(format!("dd: unknown operand {a}")),
            }
        }
        let num = |k: &str, dflt: u64| -> Result<u64, String> {
            ops.get(k).map_or(Ok(dflt), |v| {
                parse_dd_num(v).ok_or(format!("dd: {k}: illegal numeric value"))
            })
        };
        let (bs, count, seek, skip) = match (
            num("bs", 512),
            num("count", u64::MAX),
            num("seek", 0),
            num("skip", 0),
        ) {
            (Ok(a), Ok(b), Ok(c), Ok(d)) => (a, b, c, d),
            (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => return fail(e),
        };
        let conv: Vec<&str> = ops
            .get("conv")
            .map_or(Vec::new(), |c| c.split(',').collect());
        let (Some(inp), Some(outp)) = (ops.get("if").copied(), ops.get("of").copied()) else {
            return fail("dd: the simulator needs both if= and of=");
        };
        let mut src = match self.dd_open(inp, false, &conv, cwd) {
            Ok(s) => s,
            Err(e) => return fail(format!("dd: {inp}: {e}")),
        };
        let mut dst = match self.dd_open(outp, true, &conv, cwd) {
            Ok(s) => s,
            Err(e) => {
                src.close();
                return fail(format!("dd: {outp}: {e}"));
            }
        };
        let (mut full_in, mut part_in, mut full_out, mut part_out, mut bytes) = (0, 0, 0, 0, 0u64);
        let mut err = None;
        let mut i = 0;
        while i < count {
            let mut buf = match src.read((skip + i) * bs, bs as usize) {
                Ok(b) => b,
                Err(e) => {
                    err = Some(format!("dd: {inp}: {e}"));
                    break;
                }
            };
            if buf.is_empty() {
                break;
            }
            if buf.len() as u64 == bs {
                full_in += 1;
            } else {
                part_in += 1;
                if conv.contains(&"sync") {
                    buf.resize(bs as usize, 0);
                }
            }
            if let Err(e) = dst.write((seek + i) * bs, &buf) {
                err = Some(format!("dd: {outp}: {e}"));
                break;
            }
            if buf.len() as u64 == bs {
                full_out += 1;
            } else {
                part_out += 1;
            }
            bytes += buf.len() as u64;
            i += 1;
        }
        src.close();
        dst.close();
        let stats = format!(
            "{full_in}+{part_in} records in\n{full_out}+{part_out} records out\n{bytes} bytes transferred\n"
        );
        match err {
            Some(e) => Reply {
                rc: 1,
                out: String::new(),
                err: format!("{e}\n{stats}"),
            },
            None => Reply {
                rc: 0,
                out: String::new(),
                err: stats,
            },
        }
    }

    fn dd_open(&self, p: &str, write: bool, conv: &[&str], cwd: &Path) -> Result<DdEnd, String> {
        if self.is_dev(p) {
            let acc = if write {
                Access::new(0, 1, 0)
            } else {
                Access::new(1, 0, 0)
            };
            return self
                .sim
                .open(self.devname(p), acc)
                .map(DdEnd::Dev)
                .map_err(|e| strerror(e).to_string());
        }
        let path = cwd.join(p);
        let f = if write {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(!conv.contains(&"notrunc"))
                .open(&path)
        } else {
            std::fs::File::open(&path)
        };
        f.map(|f| DdEnd::File(f, path.starts_with("/dev/")))
            .map_err(|e| e.to_string())
    }

    fn sysctl(&mut self, args: &[&str]) -> Reply {
        let bare = args.contains(&"-n");
        let mut out = String::new();
        for a in args.iter().filter(|a| !a.starts_with('-')) {
            let (name, set) = match a.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (*a, None),
            };
            let line = |v: String| {
                if bare {
                    format!("{v}\n")
                } else {
                    format!("{name}: {v}\n")
                }
            };
            match (name, set) {
                ("kern.geom.confxml", None) => out.push_str(&self.sim.confxml()),
                ("kern.disks", None) => {
                    let mut d: Vec<String> = self.mds.keys().cloned().collect();
                    d.extend(
                        self.vtbd
                            .iter()
                            .flat_map(|l| (0..l.paths()).filter_map(|i| l.path(i)))
                            .map(|p| p.name().to_string()),
                    );
                    d.sort();
                    d.reverse();
                    out.push_str(&line(d.join(" ")));
                }
                ("kern.geom.notaste", None) => {
                    out.push_str(&line(u8::from(self.notaste).to_string()))
                }
                ("kern.geom.notaste", Some(v)) => {
                    let Ok(n) = v.parse::<u32>() else {
                        return fail(format!("sysctl: invalid integer '{v}'"));
                    };
                    let old = u8::from(self.notaste);
                    self.notaste = n != 0;
                    self.sim.set_notaste(self.notaste);
                    out.push_str(&format!("{name}: {old} -> {}\n", u8::from(self.notaste)));
                }
                _ => match self.ko_sysctl(name, set) {
                    Some(Ok(v)) => out.push_str(&line(v)),
                    Some(Err(e)) => return fail(e),
                    None => return fail(format!("sysctl: unknown oid '{name}'")),
                },
            }
        }
        ok(out)
    }

    /// `--ko`: an integer sysctl of the loaded module, read or written
    /// through its own handler; None when the module has no such oid.
    fn ko_sysctl(&self, name: &str, set: Option<&str>) -> Option<Result<String, String>> {
        let (kk, _) = self.ko_loaded()?;
        if !kk.sysctl_names().iter().any(|n| n == name) {
            return None;
        }
        let old = match kk.sysctl_get(name) {
            Ok(v) => v,
            Err(e) => return Some(Err(format!("sysctl: {name}: {}", strerror(e)))),
        };
        Some(match set {
            None => Ok(old.to_string()),
            Some(v) => match v.parse::<i64>() {
                Err(_) => Err(format!("sysctl: invalid integer '{v}'")),
                Ok(n) => match kk.sysctl_set(name, n) {
                    Ok(()) => Ok(format!("{old} -> {n}")),
                    Err(e) => Err(format!("sysctl: {name}={v}: {}", strerror(e))),
                },
            },
        })
    }

    fn kldload(&mut self, args: &[&str], cwd: &Path) -> Reply {
        let Some(&target) = args.iter().rev().find(|a| !a.starts_with('-')) else {
            return fail("usage: kldload file");
        };
        if target == "geom_nop" {
            return ok("");
        }
        if self.ko.is_some() {
            return self.kldload_ko(target, cwd);
        }
        if target.ends_with("geom_multipath_rs.ko") {
            if !cwd.join(target).is_file() {
                return fail(format!(
                    "kldload: can't load {target}: No such file or directory"
                ));
            }
            if self.sim.class_by_name("MULTIPATH").is_some() {
                return fail(format!(
                    "kldload: can't load {target}: module already loaded or in kernel"
                ));
            }
            // The class comes from the core linked into this program (the
            // file is not read: a stand-in will do).
            return match self
                .sim
                .load_class(Arc::new(geom_sim::MultipathClass::new()))
            {
                Ok(_) => {
                    self.loaded = Some(target.to_string());
                    ok("")
                }
                Err(e) => fail(format!("kldload: can't load {target}: {}", strerror(e))),
            };
        }
        fail(format!(
            "kldload: can't load {target}: No such file or directory"
        ))
    }

    /// `--ko`: `kldload FILE.ko` links FILE with the in-process loader.
    fn kldload_ko(&mut self, target: &str, cwd: &Path) -> Reply {
        let named = cwd.join(target);
        let path = if named.is_file() {
            named
        } else if !target.contains('/')
            && matches!(target, "geom_multipath_rs" | "geom_multipath_rs.ko")
        {
            // A bare name: found on the module path.
            self.ko.clone().unwrap_or_default()
        } else {
            return fail(format!(
                "kldload: can't load {target}: No such file or directory"
            ));
        };
        if !path.is_file() {
            return fail(format!(
                "kldload: can't load {target}: No such file or directory ({} is missing: build it with make)",
                path.display()
            ));
        }
        let same_file = |p: &Path| p.file_name() == path.file_name();
        if self
            .kk
            .as_ref()
            .is_some_and(|(k, p)| k.is_loaded() && same_file(p))
            || self.sim.class_by_name("MULTIPATH").is_some()
        {
            return fail(format!(
                "kldload: can't load {target}: module already loaded or in kernel"
            ));
        }
        let before = self.sim.ko_kernels().len();
        if let Err(e) = self.sim.load_multipath_ko_with(&KoOptions::at(&path)) {
            return fail(format!(
                "kldload: can't load {target}: {} (the in-process loader's message is in mpsim-serve's output)",
                strerror(e)
            ));
        }
        let kks = self.sim.ko_kernels();
        let Some(kk) = kks.get(before).cloned() else {
            return fail(format!(
                "kldload: can't load {target}: the loader kept no module instance"
            ));
        };
        self.kk = Some((kk, path));
        self.loaded = Some(target.to_string());
        ok("")
    }

    /// `kldunload`: with `--ko`, unloads the module (which may refuse, as
    /// its `MOD_QUIESCE`/`MOD_UNLOAD` says); the core cannot be unloaded.
    fn kldunload(&mut self, args: &[&str]) -> Reply {
        let target = args
            .iter()
            .rev()
            .find(|a| !a.starts_with('-'))
            .copied()
            .unwrap_or("");
        let name = Path::new(target).file_name().unwrap_or_default();
        let Some((kk, _)) = self.kk.as_ref().filter(|(k, p)| {
            k.is_loaded() && (p.file_name() == Some(name) || p.file_stem() == Some(name))
        }) else {
            return fail(format!("kldunload: can't find file {target}"));
        };
        match geom_sim::ko::unload(kk) {
            Ok(_) => {
                self.sim.run_until_idle();
                self.loaded = None;
                ok("")
            }
            Err(e) => fail(format!(
                "kldunload: can't unload file: {} ({e})",
                strerror(e.errno())
            )),
        }
    }

    /// `--ko`: the loaded module instance, while it is loaded.
    fn ko_loaded(&self) -> Option<&(Arc<KoKernel>, PathBuf)> {
        self.kk.as_ref().filter(|(k, _)| k.is_loaded())
    }

    fn kldstat(&self, args: &[&str]) -> Reply {
        let opt = |flag: &str| {
            args.iter()
                .position(|a| *a == flag)
                .and_then(|i| args.get(i + 1).copied())
        };
        let quiet = args.contains(&"-q");
        let not_found = |what: &str, name: &str| {
            fail(if quiet {
                String::new()
            } else {
                format!("kldstat: can't find {what} {name}: No such file or directory")
            })
        };
        if self.ko.is_some() {
            return self.kldstat_ko(args, opt("-n"), opt("-m"), not_found);
        }
        let ours = self.loaded.is_some() && self.sim.class_by_name("MULTIPATH").is_some();
        if let Some(f) = opt("-n") {
            return if f == "geom_multipath_rs.ko" && ours {
                ok("")
            } else {
                not_found("file", f)
            };
        }
        if let Some(m) = opt("-m") {
            return if m == "g_nop" || (m == "g_multipath" && ours) {
                ok("")
            } else {
                not_found("module", m)
            };
        }
        let mut o = String::from("Id Refs Address                Size Name\n");
        o.push_str(" 1    3 0xffffffff80200000  1f3e2d0 kernel (simulator: mpsim-serve)\n");
        if let Some(f) = &self.loaded {
            o.push_str(&format!(
                " 5    1 0xffffffff82e00000     9000 geom_multipath_rs.ko ({f}; simulated: the core linked into mpsim-serve)\n"
            ));
            if args.contains(&"-v") {
                o.push_str("\tContains modules:\n\t\t Id Name\n\t\t530 g_multipath\n");
            }
        }
        ok(o)
    }

    /// `kldstat` with `--ko`: what the in-process loader holds. The file
    /// is the module's, its address and size are the loader's mapping, and
    /// its modules are the ones the module's metadata declared.
    fn kldstat_ko(
        &self,
        args: &[&str],
        file: Option<&str>,
        module: Option<&str>,
        not_found: impl Fn(&str, &str) -> Reply,
    ) -> Reply {
        let loaded = self.ko_loaded();
        let modules: Vec<String> = loaded.map_or_else(Vec::new, |(k, _)| {
            k.kern.modules.all().into_iter().map(|m| m.name).collect()
        });
        if let Some(f) = file {
            let hit = loaded.is_some_and(|(_, p)| {
                let n = Some(std::ffi::OsStr::new(f));
                p.file_name() == n || p.file_stem() == n
            });
            return if hit { ok("") } else { not_found("file", f) };
        }
        if let Some(m) = module {
            return if m == "g_nop" || modules.iter().any(|n| n == m) {
                ok("")
            } else {
                not_found("module", m)
            };
        }
        let mut o = String::from("Id Refs Address                Size Name\n");
        o.push_str(
            " 1    3 0xffffffff80200000  1f3e2d0 kernel (simulator: mpsim-serve; no FreeBSD kernel runs here)\n",
        );
        if let Some((k, p)) = loaded {
            let (start, end) = k.range().unwrap_or((0, 0));
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            o.push_str(&format!(
                " 5    1 {start:#018x} {:>8x} {name} ({}; linked into mpsim-serve by its in-process loader, geom_sim::ko: not by a FreeBSD kernel)\n",
                end.saturating_sub(start),
                p.display()
            ));
            if args.contains(&"-v") {
                o.push_str("\tContains modules:\n\t\t Id Name\n");
                for (i, m) in modules.iter().enumerate() {
                    o.push_str(&format!("\t\t{:3} {m}\n", 530 + i));
                }
            }
        }
        ok(o)
    }

    /// `--ko`: the module's end at `mpsim-stop`: its geoms stopped, then
    /// `ko::unload` (unless `kldunload` did it); Err lists what is wrong
    /// (a refused unload, leaks, panics, kprocs left in its code).
    fn unload_ko(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let mut bad = Vec::new();
        for kk in self.sim.ko_kernels() {
            if kk.is_loaded() {
                // ko-keep-geoms: the module is asked to unload with its
                // geoms still there (it must refuse, failing the stop).
                let stop_geoms = !self.breaks.has("ko-keep-geoms");
                if let (true, (_, Some(c))) = (stop_geoms, kk.geom.class()) {
                    if self.sim.class_name(c).is_some() {
                        self.sim.destroy_class_geoms(c);
                        self.sim.run_until_idle();
                    }
                }
                if let Err(e) = geom_sim::ko::unload(&kk) {
                    bad.push(format!("kldunload at teardown: {e}"));
                    continue;
                }
                self.sim.run_until_idle();
            }
            let r = kk.report();
            out.push_str(&format!(
                "kldunload: allocations {}, frees {}, leaks {} ({} bytes), panics {}, kprocs in module code {}\n",
                r.allocations,
                r.frees,
                r.live_at_unload,
                r.live_bytes_at_unload,
                r.panics,
                r.kprocs_in_module_at_unload
            ));
            if r.live_at_unload > 0 {
                bad.push(format!(
                    "{} allocation(s) ({} bytes) still live at malloc_uninit",
                    r.live_at_unload, r.live_bytes_at_unload
                ));
            }
            if r.panics > 0 {
                bad.push(format!("the module called panic(9) {} time(s)", r.panics));
            }
            if r.kprocs_in_module_at_unload > 0 {
                bad.push(format!(
                    "{} kproc(s) still in module code at kldunload",
                    r.kprocs_in_module_at_unload
                ));
            }
        }
        if bad.is_empty() {
            Ok(out)
        } else {
            Err(format!("{out}module teardown failed: {}\n", bad.join("; ")))
        }
    }

    /// What is left: live md disks, gnop providers, multipath geoms.
    fn state(&self) -> String {
        let names = |class: &str| -> Vec<String> {
            let mut v: Vec<String> = self
                .sim
                .geoms_of_class(class)
                .into_iter()
                .filter(|&g| !self.sim.geom_withering(g))
                .filter_map(|g| self.sim.geom_name_of(g))
                .collect();
            v.sort();
            v
        };
        let mut all: Vec<String> = self.mds.keys().cloned().collect();
        all.extend(names("NOP"));
        all.extend(names("MULTIPATH"));
        format!("{}\n", all.join(" "))
    }
}

/// Creates `NAME.nop` over provider NAME (topology held, NOP-bound `p`).
fn nop_create(
    p: &SimPlatform,
    name: &str,
    offset: u64,
    physpath: Option<String>,
    rfail: u32,
    wfail: u32,
) -> Result<(), String> {
    let pp = p
        .g_provider_by_name(name)
        .ok_or_else(|| format!("Provider {name} is invalid."))?;
    let nop = format!("{name}.nop");
    if p.g_provider_by_name(&nop).is_some() {
        return Err(format!("Provider {nop} already exists."));
    }
    let (size, ss) = p
        .provider_size(pp)
        .ok_or_else(|| format!("Provider {name} is invalid."))?;
    if !offset.is_multiple_of(u64::from(ss)) || offset >= size {
        return Err(format!("Invalid offset for provider {name}."));
    }
    let gp = p
        .g_new_geom(&nop, None)
        .map_err(|e| format!("Cannot create geom {nop}: error {e}."))?;
    let cp = match p.g_new_consumer(gp) {
        Ok(c) => c,
        Err(e) => {
            p.g_destroy_geom(gp);
            return Err(format!("Cannot create consumer: error {e}."));
        }
    };
    if let Err(e) = p.g_attach(cp, pp) {
        p.g_destroy_consumer(cp);
        p.g_destroy_geom(gp);
        return Err(format!("Cannot attach to provider {name}: error {e}."));
    }
    p.topo_set_softc(
        gp,
        Arc::new(NopSoftc {
            cp,
            offset,
            physpath,
            rfail: AtomicU32::new(rfail),
            wfail: AtomicU32::new(wfail),
        }),
    );
    let np = p
        .g_new_provider(gp, &nop, size - offset, ss)
        .map_err(|e| format!("Cannot create provider {nop}: error {e}."))?;
    p.g_error_provider(np, 0);
    Ok(())
}

/// One side of a `dd`: a simulated device or a host file.
enum DdEnd {
    Dev(Dev),
    /// A host file; true for a host device such as /dev/zero.
    File(std::fs::File, bool),
}

impl DdEnd {
    fn read(&mut self, off: u64, len: usize) -> Result<Vec<u8>, String> {
        match self {
            DdEnd::Dev(d) => {
                let (ms, _) = d.size().unwrap_or((0, 512));
                if off >= ms {
                    return Ok(Vec::new());
                }
                let n = (len as u64).min(ms - off) as usize;
                d.read(off, n).map_err(|e| strerror(e).to_string())
            }
            DdEnd::File(f, chardev) => {
                if !*chardev {
                    f.seek(SeekFrom::Start(off)).map_err(|e| e.to_string())?;
                }
                let mut b = Vec::with_capacity(len);
                f.take(len as u64)
                    .read_to_end(&mut b)
                    .map_err(|e| e.to_string())?;
                Ok(b)
            }
        }
    }

    fn write(&mut self, off: u64, data: &[u8]) -> Result<(), String> {
        match self {
            DdEnd::Dev(d) => d.write(off, data).map_err(|e| strerror(e).to_string()),
            DdEnd::File(f, chardev) => {
                if !*chardev {
                    f.seek(SeekFrom::Start(off)).map_err(|e| e.to_string())?;
                }
                f.write_all(data).map_err(|e| e.to_string())
            }
        }
    }

    fn close(self) {
        if let DdEnd::Dev(d) = self {
            let _ = d.close();
        }
    }
}

/// `mdconfig -s`: a number of 512-byte sectors, or with a k/m/g/t suffix.
fn parse_md_size(s: &str) -> Result<u64, String> {
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_lowercase() {
                'b' => 512,
                'k' => 1 << 10,
                'm' => 1 << 20,
                'g' => 1 << 30,
                't' => 1 << 40,
                _ => return Err(format!("invalid size '{s}'")),
            };
            (&s[..i], m)
        }
        _ => (s, 512),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("invalid size '{s}'"))
}

/// dd's numbers: digits with an optional k, m or g suffix.
fn parse_dd_num(s: &str) -> Option<u64> {
    let (num, mult) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1 << 10),
        'm' | 'M' => (&s[..s.len() - 1], 1 << 20),
        'g' | 'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

// ------------------------------------------------------------------ server

/// `mpsim-stop`: with `--ko` the module is unloaded first (its report
/// checked), then the simulation is torn down and checked for leaks and
/// rule violations; with `--ko` the module's summary line comes last.
/// `summary` is the file the simulator appends the module's summary to,
/// and the caller's `GMR_KO_SUMMARY` file.
fn stop(mut m: Machine, summary: Option<&(PathBuf, Option<std::ffi::OsString>)>) -> Reply {
    let ko = m.ko.is_some().then(|| m.unload_ko());
    let kks = m.sim.ko_kernels();
    let faults = m.sim.path_errors();
    let report = m.sim.finish();
    let text: String = report.violations.iter().map(|v| format!("{v}\n")).collect();
    let mut r = Reply {
        rc: i32::from(!report.violations.is_empty()),
        out: format!("{} GEOM rule violation(s)\n{text}", report.violations.len()),
        err: String::new(),
    };
    let Some(ko) = ko else {
        return r;
    };
    match ko {
        Ok(t) => r.out.push_str(&t),
        Err(t) => {
            r.out.push_str(&t);
            r.rc = 1;
        }
    }
    if kks.is_empty() {
        r.out
            .push_str("ko: the module was never loaded (no kldload)\n");
        return r;
    }
    // The simulator's own record of the unload (with the bios it saw go
    // through the module's start), or the instance's counters without it.
    let recorded = summary.and_then(|(mine, caller)| {
        let text = std::fs::read_to_string(mine).ok()?;
        let _ = std::fs::remove_file(mine);
        if let Some(c) = caller {
            let appended = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(c)
                .and_then(|mut f| f.write_all(text.as_bytes()));
            if let Err(e) = appended {
                r.err.push_str(&format!("{}: {e}\n", c.to_string_lossy()));
            }
        }
        geom_sim::ko_summary::total(&text).ok()
    });
    let line = match recorded {
        Some(s) => s.line(),
        None => {
            let mut t = geom_sim::ko::KoSummary::default();
            for k in &kks {
                t.add(&k.summary_data(0, faults));
            }
            format!("{} (bios not counted)", t.line())
        }
    };
    r.out.push_str(&format!("{line}\n"));
    r
}

fn json_reply(r: &Reply) -> String {
    serde_json::json!({"rc": r.rc, "out": r.out, "err": r.err}).to_string()
}

/// Reads one request; None when it is not one.
fn read_request(s: &UnixStream) -> Option<(Vec<String>, PathBuf)> {
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    let v: serde_json::Value = serde_json::from_str(&line).ok()?;
    let argv = v
        .get("argv")?
        .as_array()?
        .iter()
        .map(|a| a.as_str().map(str::to_string))
        .collect::<Option<Vec<String>>>()?;
    let cwd = v
        .get("cwd")
        .and_then(|c| c.as_str())
        .map_or_else(|| PathBuf::from("/"), PathBuf::from);
    Some((argv, cwd))
}

struct Opts {
    socket: PathBuf,
    dev: PathBuf,
    lun: Option<String>,
    seed: u64,
    threads: bool,
    log: Option<PathBuf>,
    /// `--ko [PATH]`: the class from the module's bytes.
    ko: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        socket: PathBuf::new(),
        dev: PathBuf::new(),
        lun: None,
        seed: 1,
        threads: false,
        log: None,
        ko: None,
    };
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        if a == "--ko" {
            // The path is optional: taken when the next word names a .ko.
            let path = it.next_if(|p| p.ends_with(".ko"));
            o.ko = Some(path.map_or_else(geom_sim::ko::default_ko_path, Into::into));
            continue;
        }
        let mut val = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--socket" => o.socket = val()?.into(),
            "--dev" => o.dev = val()?.into(),
            "--lun" => o.lun = Some(val()?),
            "--seed" => {
                let v = val()?;
                o.seed = v
                    .parse()
                    .map_err(|_| format!("--seed: '{v}' is not a number"))?;
            }
            "--threads" => o.threads = true,
            "--log" => o.log = Some(val()?.into()),
            s => return Err(format!("unknown argument {s}")),
        }
    }
    if o.socket.as_os_str().is_empty() || o.dev.as_os_str().is_empty() {
        return Err("--socket and --dev are required".into());
    }
    if o.ko.is_none() {
        // GMR_CLASS=ko without --ko: the module too.
        if let geom_sim::ClassChoice::Ko(p) = geom_sim::ClassChoice::from_env()? {
            o.ko = Some(p);
        }
    }
    if let Some(p) = &o.ko {
        if !p.is_file() {
            return Err(format!(
                "--ko: the module {} is missing: build it with `make` (scripts/kbuild.sh)",
                p.display()
            ));
        }
    }
    Ok(o)
}

const USAGE: &str = "usage: mpsim-serve --socket PATH --dev DIR [--lun IDENT] [--seed N] [--threads] [--log FILE] [--ko [PATH]]";

/// The commands a link named after them sends to the server.
const COMMANDS: &[&str] = &[
    "gmultipath",
    "geom",
    "mdconfig",
    "gnop",
    "diskinfo",
    "dd",
    "sysctl",
    "kldload",
    "kldunload",
    "kldstat",
    "dmesg",
    "dtrace",
];

/// Client side: run as `gmultipath ARGS` (a link named after the command)
/// or `mpsim REQUEST ARGS`, send the command line to the server at
/// `$MPSIM_SOCK`, print its answer and exit with its status.
fn client(argv: Vec<String>) -> ExitCode {
    let name = argv.first().cloned().unwrap_or_default();
    let Some(sock) = std::env::var_os("MPSIM_SOCK") else {
        eprintln!("{name}: MPSIM_SOCK is not set: no mpsim-serve to talk to");
        return ExitCode::from(1);
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let req = serde_json::json!({"argv": argv, "cwd": cwd.to_string_lossy()}).to_string();
    let answer = UnixStream::connect(&sock).and_then(|mut s| {
        s.write_all(req.as_bytes())?;
        s.write_all(b"\n")?;
        let mut a = String::new();
        s.read_to_string(&mut a)?;
        Ok(a)
    });
    let v: Option<serde_json::Value> = answer.ok().and_then(|a| serde_json::from_str(&a).ok());
    let Some(v) = v else {
        eprintln!(
            "{name}: no answer from mpsim-serve at {}",
            sock.to_string_lossy()
        );
        return ExitCode::from(1);
    };
    let text = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string()
    };
    print!("{}", text("out"));
    eprint!("{}", text("err"));
    let _ = std::io::stdout().flush();
    let rc = v.get("rc").and_then(serde_json::Value::as_i64).unwrap_or(1);
    ExitCode::from(u8::try_from(rc).unwrap_or(1))
}

fn main() -> ExitCode {
    let mut all: Vec<String> = std::env::args().collect();
    let me = all
        .first()
        .map(|a| {
            Path::new(a)
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    if COMMANDS.contains(&me.as_str()) {
        all[0] = me;
        return client(all);
    }
    if me == "mpsim" {
        return client(all.split_off(1));
    }
    let args: Vec<String> = all.split_off(1);
    let o = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("mpsim-serve: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&o.dev) {
        eprintln!("mpsim-serve: {}: {e}", o.dev.display());
        return ExitCode::from(2);
    }
    // The simulator appends the module's summary to the GMR_KO_SUMMARY
    // file when it unloads it: point it at a file of this run (set before
    // any thread starts), read back at the stop; the caller's file, if
    // any, gets the line too.
    let summary = o.ko.as_ref().map(|_| {
        let mine = o.socket.with_extension("ko-summary");
        let _ = std::fs::remove_file(&mine);
        let caller = std::env::var_os(geom_sim::ko_summary::ENV);
        std::env::set_var(geom_sim::ko_summary::ENV, &mine);
        (mine, caller)
    });
    let mut m = match Machine::new(
        o.dev.clone(),
        o.seed,
        o.threads,
        o.lun.as_deref(),
        o.ko.clone(),
    ) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("mpsim-serve: {e}");
            return ExitCode::from(2);
        }
    };
    let _ = std::fs::remove_file(&o.socket);
    let listener = match UnixListener::bind(&o.socket) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("mpsim-serve: {}: {e}", o.socket.display());
            return ExitCode::from(2);
        }
    };
    let mut log = o.log.as_ref().and_then(|p| std::fs::File::create(p).ok());
    for conn in listener.incoming() {
        let Ok(mut s) = conn else { continue };
        let Some((argv, cwd)) = read_request(&s) else {
            let _ = s.write_all(json_reply(&fail("mpsim-serve: bad request")).as_bytes());
            continue;
        };
        if argv.first().map(String::as_str) == Some("mpsim-stop") {
            let r = stop(m, summary.as_ref());
            if let Some(f) = log.as_mut() {
                let _ = writeln!(f, "$ mpsim-stop\n{}{}[rc {}]", r.out, r.err, r.rc);
            }
            let _ = s.write_all(json_reply(&r).as_bytes());
            let _ = std::fs::remove_file(&o.socket);
            return ExitCode::SUCCESS;
        }
        let r = m.run(&argv, &cwd);
        if let Some(f) = log.as_mut() {
            let _ = writeln!(f, "$ {}\n{}{}[rc {}]", argv.join(" "), r.out, r.err, r.rc);
        }
        let _ = s.write_all(json_reply(&r).as_bytes());
    }
    ExitCode::SUCCESS
}
