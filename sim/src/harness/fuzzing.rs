//! The bodies of the fuzz targets, shared by the coverage-guided fuzzers in
//! `fuzz/` (libFuzzer) and by the corpus replay test `sim/tests/fuzz_corpus.rs`
//! that `make test` runs. Each takes arbitrary bytes and panics (with the
//! reason) only when it finds a bug: a panic in the code under test, a GEOM
//! rule broken, a result that makes no sense.
//!
//! - [`label`]: the on-disk label decoders (the strict one and taste's
//!   FreeBSD-compatible one), and the round trip of whatever they accept;
//! - [`gctl`]: a script of gctl requests (raw parameter lists, malformed ones
//!   included), `gmultipath` command lines and path faults, played against
//!   the class on a small deterministic simulator; see [`parse_script`] for
//!   the format;
//! - [`scenario`]: the scenario file parser.

use geom_multipath_rs::metadata::{
    label_offset, taste_label, validate_name, validate_uuid, LabelFields, Metadata, Name, Uuid,
    LABEL_LEN, NAME_MAX,
};
use geom_multipath_rs::platform::Access;

use crate::ctl::SimCtlReq;
use crate::disk::LunConfig;
use crate::scenario::{describe, parse_size, Scenario};
use crate::sched::Mode;
use crate::sim::{Sim, SimConfig};

/// Label decoder: never panics; anything it accepts re-encodes to the same
/// [`LABEL_LEN`] bytes, decodes again to the same label, and fits the
/// provider it was written for. Returns whether the strict decoder took
/// the bytes as a label (the corpus replay counts both kinds).
pub fn label(data: &[u8]) -> bool {
    let decoded = Metadata::decode(data);
    let accepted = decoded.is_ok();
    if let Ok(md) = decoded {
        let mut again = vec![0x5a; data.len()];
        if let Err(e) = md.encode_sector(&mut again) {
            panic!("accepted label {md:?} does not re-encode: {e}");
        }
        assert_eq!(
            again.get(..LABEL_LEN),
            data.get(..LABEL_LEN),
            "re-encoding changed the label"
        );
        let ss = usize::try_from(md.sectorsize).unwrap_or(usize::MAX);
        assert!(
            again.iter().skip(LABEL_LEN).take(ss).all(|&b| b == 0),
            "the rest of the sector is not zero-filled"
        );
        assert_eq!(Metadata::decode(&again), Ok(md), "decode(encode(x)) != x");
        assert_eq!(md.check_provider(md.size, md.sectorsize), Ok(()));
        let off = label_offset(md.size, md.sectorsize);
        assert_eq!(off, md.size.checked_sub(u64::from(md.sectorsize)));
        // A label without uuid (taste ignores those) excludes no sector.
        let expect = if md.is_manual() { Some(md.size) } else { off };
        assert_eq!(md.provider_mediasize(), expect, "provider size");
        assert!(!md.name.as_str().is_empty() && md.name.as_str().len() <= NAME_MAX);
    }
    taste(data);
    // The same bytes as a name or a uuid typed on the command line.
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(n) = Name::new_truncated(s) {
            assert!(s.starts_with(n.as_str()) && n.as_str().len() <= NAME_MAX);
            assert_eq!(validate_name(n.as_str()), Ok(()));
        }
        match Uuid::parse(s) {
            Ok(u) => assert_eq!(u.as_str(), s),
            Err(_) => assert!(!s.is_empty() && validate_uuid(s).is_err()),
        }
    }
    accepted
}

/// Taste's lenient reading ([`taste_label`]) of `data` as the last sector
/// of a provider of the size the label records and of 1 MiB: never a
/// panic; what it takes fits the provider, has a name and a uuid, and when
/// the class rewrites it (configure, resize) taste reads back the same.
fn taste(data: &[u8]) {
    if let Ok(l) = Metadata::read(data) {
        for o in l.oddities.iter() {
            assert!(!o.to_string().is_empty() && !o.code().is_empty());
        }
    }
    let mut probes = vec![(1u64 << 20, 512u32)];
    if let Ok(f) = LabelFields::parse(data) {
        probes.push((f.size, f.sectorsize));
    }
    for (mediasize, ss) in probes {
        let Ok(label) = taste_label(data, mediasize, ss) else {
            continue;
        };
        let md = label.metadata;
        assert_eq!((md.size, md.sectorsize), (mediasize, ss), "{md:?}");
        assert!(!md.uuid.is_empty() && validate_name(md.name.as_str()).is_ok());
        if md.validate().is_err() || ss > 1 << 16 {
            continue;
        }
        let mut sector = vec![0u8; ss as usize];
        if let Err(e) = md.encode_sector(&mut sector) {
            panic!("taste took {md:?}, which does not encode: {e}");
        }
        match taste_label(&sector, mediasize, ss) {
            Ok(again) => assert_eq!(again.metadata, md, "rewritten label reads otherwise"),
            Err(e) => panic!("rewritten label {md:?} is refused: {e:?}"),
        }
    }
}

/// Scenario parser: any bytes give a scenario or an error, never a panic.
/// Returns whether they parsed as a scenario.
pub fn scenario(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    if let Ok(s) = Scenario::parse(text) {
        assert!(!s.disks.is_empty(), "a scenario without disks was accepted");
        for e in &s.events {
            let _ = describe(e);
        }
        true
    } else {
        if text.len() <= 32 {
            let _ = parse_size(text);
        }
        false
    }
}

/// One step of a [`gctl`] script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// A raw gctl request: (name, value bytes, writable) in order.
    /// `class=MULTIPATH` is appended, so a script may name another class
    /// (parameters are looked up first match first).
    Request(Vec<(String, Vec<u8>, bool)>),
    /// A `gmultipath` command line, split at white space.
    Gmultipath(Vec<String>),
    /// A path fault or a user I/O: (operation, argument words).
    Fault(String, Vec<String>),
}

/// Longest script [`gctl`] plays (steps), so one input stays cheap.
pub const MAX_ACTIONS: usize = 24;
/// Largest buffer a script may ask for (`o:N`).
pub const MAX_BUF: usize = 1 << 16;

/// Decodes a parameter value: `s:TEXT` TEXT and a NUL (what geom(8) sends
/// for strings); `r:TEXT` TEXT without a NUL; `x:HEX` raw bytes; `i:N` a
/// 4-byte native-endian int; `l:N` an 8-byte one (a wrong length);
/// `o:N` a zeroed writable buffer of N bytes; `w:TEXT` a writable buffer
/// holding TEXT. Anything else is taken as `s:`.
fn value(v: &str) -> (Vec<u8>, bool) {
    let num = |t: &str| t.trim().parse::<i64>().unwrap_or(0);
    match v.split_at_checked(2) {
        Some(("s:", t)) => (nul_terminated(t), false),
        Some(("r:", t)) => (t.as_bytes().to_vec(), false),
        Some(("x:", t)) => (hex(t), false),
        // Truncation is the point: "i:4294967295" is -1.
        Some(("i:", t)) => ((num(t) as i32).to_ne_bytes().to_vec(), false),
        Some(("l:", t)) => (num(t).to_ne_bytes().to_vec(), false),
        Some(("o:", t)) => {
            let n = usize::try_from(num(t)).unwrap_or(0).min(MAX_BUF);
            (vec![0; n], true)
        }
        Some(("w:", t)) => (t.as_bytes().to_vec(), true),
        _ => (nul_terminated(v), false),
    }
}

fn nul_terminated(t: &str) -> Vec<u8> {
    let mut b = t.as_bytes().to_vec();
    b.push(0);
    b
}

fn hex(t: &str) -> Vec<u8> {
    let digits: Vec<u8> = t
        .bytes()
        .filter_map(|c| char::from(c).to_digit(16))
        .filter_map(|d| u8::try_from(d).ok())
        .collect();
    digits
        .chunks(2)
        .map(|p| p.iter().fold(0u8, |acc, d| (acc << 4) | d))
        .collect()
}

/// Parses a [`gctl`] script, one step or parameter per line:
///
/// ```text
/// verb=create          # a parameter of the request being built (see value())
/// version=i:1
/// nargs=i:2
/// arg0=s:mp1
/// arg1=da2
/// output=o:4096
/// .                    # send it (also: a blank line, `$`, `!`, the end)
/// $ fail mp da0        # a gmultipath command line
/// ! die da1            # a fault: die, revive, heal, fail, fail-next, resize P N, io
/// ```
///
/// Lines starting with `#`, and lines without `=` inside a request, are
/// ignored. Invalid UTF-8 is read lossily. At most [`MAX_ACTIONS`] steps.
pub fn parse_script(data: &[u8]) -> Vec<Action> {
    let text = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    let mut req: Vec<(String, Vec<u8>, bool)> = Vec::new();
    let flush = |req: &mut Vec<(String, Vec<u8>, bool)>, out: &mut Vec<Action>| {
        if !req.is_empty() {
            out.push(Action::Request(std::mem::take(req)));
        }
    };
    for line in text.split('\n') {
        if out.len() >= MAX_ACTIONS {
            break;
        }
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let Some(cmd) = line.strip_prefix('$') {
            flush(&mut req, &mut out);
            out.push(Action::Gmultipath(
                cmd.split_whitespace().map(String::from).collect(),
            ));
        } else if let Some(f) = line.strip_prefix('!') {
            flush(&mut req, &mut out);
            let mut words = f.split_whitespace().map(String::from);
            let op = words.next().unwrap_or_default();
            out.push(Action::Fault(op, words.collect()));
        } else if line.trim().is_empty() || line.trim() == "." {
            flush(&mut req, &mut out);
        } else if line.starts_with('#') {
        } else if let Some((name, v)) = line.split_once('=') {
            let (bytes, writable) = value(v);
            req.push((name.to_string(), bytes, writable));
        }
    }
    if out.len() < MAX_ACTIONS {
        flush(&mut req, &mut out);
    }
    out
}

/// The simulator every [`gctl`] script starts from: LUN 1 through `da0`
/// and `da1` (1 MiB, 512-byte sectors), LUN 2 through `da2` and `da3`
/// (2 MiB, 4096-byte sectors), MULTIPATH loaded, and a manual device `mp`
/// made of `da0` and `da1`. Deterministic, seed 1: a script replays exactly.
pub fn gctl_sim() -> Sim {
    let sim = Sim::new(SimConfig::new(Mode::Deterministic, 1));
    let luns = [
        LunConfig::new(&["da0", "da1"], 1 << 20),
        LunConfig {
            sectorsize: 4096,
            ..LunConfig::new(&["da2", "da3"], 2 << 20)
        },
    ];
    for l in luns {
        if let Err(e) = sim.add_lun(l) {
            panic!("fuzz set-up: add_lun: {e}");
        }
    }
    if let Err(e) = sim.load_multipath() {
        panic!("fuzz set-up: load MULTIPATH: error {e}");
    }
    sim.run_until_idle();
    if let Err(e) = sim.gmultipath(&["create", "mp", "da0", "da1"]) {
        panic!("fuzz set-up: create: {e}");
    }
    sim.run_until_idle();
    sim
}

/// What one [`gctl`] script did (the corpus replay counts it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GctlStats {
    /// Steps played (requests, command lines, faults).
    pub steps: usize,
    /// Raw requests sent, and how many of them got an error.
    pub requests: usize,
    pub refused: usize,
}

/// gctl requests and verb dispatch: plays the script [`parse_script`]
/// reads from `data` on [`gctl_sim`]. Every request gets a known, precise
/// error or is done ([`check_request`]); one without a well-formed
/// `version` is refused; no GEOM rule is broken; what the device reads
/// back is what was written; and the simulator shuts down without leaks.
pub fn gctl(data: &[u8]) -> GctlStats {
    let script = parse_script(data);
    let mut stats = GctlStats::default();
    let sim = gctl_sim();
    let mut pattern = 0u8;
    for step in &script {
        stats.steps += 1;
        match step {
            Action::Request(params) => {
                stats.requests += 1;
                if request(&sim, params) {
                    stats.refused += 1;
                }
            }
            Action::Gmultipath(argv) => {
                let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
                match sim.gmultipath(&argv) {
                    Ok(out) => assert!(out.len() < 8192, "gmultipath {argv:?}: output {out:?}"),
                    // It may quote the command line ("Unknown command: X"),
                    // with a line per argument (clear).
                    Err(e) => assert!(
                        !e.is_empty() && e.len() < 256 + 128 * argv.len() + 3 * argv.concat().len(),
                        "gmultipath {argv:?}: error text {e:?}"
                    ),
                }
            }
            Action::Fault(op, args) => {
                pattern = pattern.wrapping_add(1);
                fault(&sim, op, args, pattern);
            }
        }
        sim.run_until_idle();
        let v = sim.violations();
        assert!(v.is_empty(), "after {step:?}: {v:?}");
    }
    // Whatever happened, a device that still opens reads back what it wrote.
    user_io(&sim, "multipath/mp", 0xa5);
    let rep = sim.finish();
    assert!(rep.violations.is_empty(), "{:?}", rep.violations);
    stats
}

fn request(sim: &Sim, params: &[(String, Vec<u8>, bool)]) -> bool {
    let mut r = SimCtlReq::new();
    for (name, value, writable) in params {
        r.add_raw(name, value, *writable);
    }
    r.add_str("class", "MULTIPATH");
    let out = sim.plat().gctl(r);
    check_request(params, &out);
    out.error_text().is_some()
}

/// What [`gctl`] asserts of one raw request (`params`, before the
/// `class=MULTIPATH` it appends) and what came back (`out`): panics on a
/// request without a well-formed `version` (or for another class) that was
/// accepted, an error that is not one of [`GCTL_ERRORS`] or does not name
/// what it quotes from the request ([`gctl_error_names_request`]), a
/// parameter added, lost, resized or renamed, a read-only one written, and
/// a written one without a NUL.
pub fn check_request(params: &[(String, Vec<u8>, bool)], out: &SimCtlReq) {
    let first = |n: &str| params.iter().find(|(p, _, _)| p == n);
    let well_formed_version = first("version").is_some_and(|(_, v, _)| v.len() == 4);
    let class_ok = first("class").is_none_or(|(_, v, _)| v.as_slice() == b"MULTIPATH\0");
    if !well_formed_version || !class_ok {
        assert!(out.error_text().is_some(), "{params:?} was accepted");
    }
    if let Some(e) = out.error_text() {
        let Some((template, holes)) = known_gctl_error(e) else {
            panic!("error text {e:?} is none of the known ones (for {params:?})");
        };
        assert!(
            gctl_error_names_request(template, &holes, params),
            "error {e:?} quotes what was not sent ({params:?})"
        );
    }
    // Parameters keep their order and size; only writable ones change, and
    // one the class wrote to holds a NUL-terminated string.
    assert_eq!(
        out.params.len(),
        params.len() + 1,
        "parameters added or lost"
    );
    for (p, (name, old, writable)) in out.params.iter().zip(params) {
        assert!(
            p.name == *name && p.value.len() == old.len(),
            "{name} changed"
        );
        if p.value != *old {
            assert!(*writable, "read-only {name} was written");
            assert!(p.value.contains(&0), "{name} not NUL-terminated");
        }
    }
}

/// Every error text a gctl request to MULTIPATH can get, `{}` standing for
/// a quoted value: the class's (`src/ctl.rs`) and those of the request
/// plumbing (`sim/src/model/ctl.rs`: geom_ctl's class and verb look-up, the
/// `output` parameter). The unit test `gctl_errors_match_the_sources`
/// keeps the list equal to the texts in those files.
pub const GCTL_ERRORS: &[&str] = &[
    // src/ctl.rs
    "Parameter {} is not a NUL-terminated UTF-8 string",
    "No '{}' argument",
    "Wrong length {} argument",
    "No 'version' argument",
    "Userland and kernel parts are out of sync",
    "Unknown verb {}",
    "Device {} is invalid",
    "Device {} not found",
    "No 'nargs' argument",
    "wrong number of arguments.",
    "Invalid name {}: {}",
    "Device {} already exist",
    "Provider {} is invalid",
    "provider {} is already there",
    "Providers size mismatch {} != {}",
    "Providers sectorsize mismatch {} != {}",
    "Provider addition error: {}",
    "Malformed uuid argument",
    "Device {} already has uuid {}",
    "Provider {} not found",
    "missing device",
    "Consumer {} is invalid",
    "Can't update metadata on {} ({})",
    "Can't erase metadata on {} ({})",
    "failed to {} {} (err={}): device is open ({} opens), close it first",
    "failed to {} {} (err={})",
    // sim/src/model/ctl.rs
    "Missing {} argument",
    "No write access {} argument",
    "Class not found",
    "Verb missing",
    "the event thread did not run the request",
];

/// The templates whose first `{}` quotes a parameter's name or value from
/// the request (a verb, a device or provider name); the others quote
/// sizes, errnos or names the class chose.
const QUOTES_REQUEST: &[&str] = &[
    "Parameter {} is not a NUL-terminated UTF-8 string",
    "Wrong length {} argument",
    "Unknown verb {}",
    "Device {} is invalid",
    "Device {} not found",
    "Invalid name {}: {}",
    "Device {} already exist",
    "Provider {} is invalid",
    "provider {} is already there",
    "Provider {} not found",
    "No write access {} argument",
];

/// Matches `text` against a [`GCTL_ERRORS`] template: the texts standing
/// for its `{}`s, or `None`. A hole takes the shortest text after which
/// the rest still matches.
pub fn match_template<'t>(template: &str, text: &'t str) -> Option<Vec<&'t str>> {
    fn go<'t>(parts: &[&str], text: &'t str, holes: &mut Vec<&'t str>) -> bool {
        let Some((lit, rest)) = parts.split_first() else {
            return text.is_empty();
        };
        if rest.is_empty() {
            return text == *lit;
        }
        let Some(after) = text.strip_prefix(lit) else {
            return false;
        };
        for (i, _) in after.char_indices().chain([(after.len(), ' ')]) {
            holes.push(&after[..i]);
            if go(rest, &after[i..], holes) {
                return true;
            }
            holes.pop();
        }
        false
    }
    let parts: Vec<&str> = template.split("{}").collect();
    let mut holes = Vec::new();
    go(&parts, text, &mut holes).then_some(holes)
}

/// The [`GCTL_ERRORS`] template `text` is, with its holes.
pub fn known_gctl_error(text: &str) -> Option<(&'static str, Vec<&str>)> {
    GCTL_ERRORS
        .iter()
        .find_map(|t| match_template(t, text).map(|h| (*t, h)))
}

/// Whether an error of `template` names something the request sent: for
/// the [`QUOTES_REQUEST`] templates the first hole is (part of) a
/// parameter's name or value; the others quote nothing from it.
pub fn gctl_error_names_request(
    template: &str,
    holes: &[&str],
    params: &[(String, Vec<u8>, bool)],
) -> bool {
    if !QUOTES_REQUEST.contains(&template) {
        return true;
    }
    let Some(quoted) = holes.first() else {
        return false;
    };
    params
        .iter()
        .any(|(n, v, _)| n.contains(quoted) || String::from_utf8_lossy(v).contains(quoted))
        || "MULTIPATH".contains(quoted)
}

fn fault(sim: &Sim, op: &str, args: &[String], pattern: u8) {
    let path = args.first().and_then(|name| sim.path_by_name(name));
    match (op, path) {
        ("io", _) => {
            let dev = args.first().map_or("multipath/mp", String::as_str);
            user_io(sim, dev, pattern);
        }
        ("die", Some(p)) => p.die(),
        ("revive", Some(p)) => p.revive(),
        ("heal", Some(p)) => p.heal(),
        ("fail", Some(p)) => p.fail_rate(geom_multipath_rs::platform::EIO, 1000),
        ("fail-next", Some(p)) => p.fail_next(1, geom_multipath_rs::platform::ENXIO),
        ("resize", Some(p)) => {
            let n = args.get(1).and_then(|s| parse_size(s).ok()).unwrap_or(0);
            if n <= 8 << 20 {
                let _ = p.resize(n);
            }
        }
        _ => {}
    }
}

/// Opens `dev` r1w1 if it can and writes a sector then reads it back: the
/// read fails or returns the data, nothing else.
fn user_io(sim: &Sim, dev: &str, pattern: u8) {
    if dev.contains("..") {
        return;
    }
    let Ok(d) = sim.open(dev, Access::new(1, 1, 0)) else {
        return;
    };
    // Inside the device: a resized path may have shrunk it, and at or past
    // its end a transfer is cut short or refused (g_io_check; Dev::read
    // returns what was transferred), which says nothing of the data.
    let Some((mediasize, ss)) = d.size() else {
        let _ = d.close();
        return;
    };
    let len = u64::from(ss).max(512);
    let off = if mediasize >= 4096 + len { 4096 } else { 0 };
    if off + len > mediasize {
        let _ = d.close();
        return;
    }
    let data = vec![pattern; len as usize];
    if d.write(off, &data).is_ok() {
        if let Ok(back) = d.read(off, data.len()) {
            assert!(back == data, "{dev}: read back other data than written");
        }
    }
    let _ = d.close();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_format() {
        let s = parse_script(
            b"# c\nverb=create\nversion=i:1\nnargs=l:2\narg0=r:ab\narg1=x:6100\noutput=o:8\n.\n$ fail mp da0\n! die da1\nverb=w:x",
        );
        assert_eq!(s.len(), 4);
        let Action::Request(p) = &s[0] else {
            panic!("{s:?}")
        };
        assert_eq!(p[0], ("verb".into(), b"create\0".to_vec(), false));
        assert_eq!(p[1].1, 1i32.to_ne_bytes().to_vec());
        assert_eq!(p[2].1, 2i64.to_ne_bytes().to_vec());
        assert_eq!(p[3].1, b"ab".to_vec());
        assert_eq!(p[4].1, b"a\0".to_vec());
        assert_eq!(p[5], ("output".into(), vec![0; 8], true));
        assert_eq!(
            s[1],
            Action::Gmultipath(vec!["fail".into(), "mp".into(), "da0".into()])
        );
        assert_eq!(s[2], Action::Fault("die".into(), vec!["da1".into()]));
        assert_eq!(
            s[3],
            Action::Request(vec![("verb".into(), b"x".to_vec(), true)])
        );
        assert_eq!(parse_script(&[b'\n'; 100]), vec![]);
        assert_eq!(
            parse_script("$ x\n".repeat(100).as_bytes()).len(),
            MAX_ACTIONS
        );
    }
    fn req(params: &[(&str, &[u8], bool)]) -> Vec<(String, Vec<u8>, bool)> {
        params
            .iter()
            .map(|(n, v, w)| (n.to_string(), v.to_vec(), *w))
            .collect()
    }

    /// What the class sent back: `params` as they are after the request,
    /// `class=MULTIPATH` appended, and the error text if any.
    fn outcome(params: &[(String, Vec<u8>, bool)], error: Option<&str>) -> SimCtlReq {
        use geom_multipath_rs::CtlReq;
        let mut r = SimCtlReq::new();
        for (n, v, w) in params {
            r.add_raw(n, v, *w);
        }
        r.add_str("class", "MULTIPATH");
        if let Some(e) = error {
            r.error(format_args!("{e}"));
        }
        r
    }

    fn fires(params: &[(String, Vec<u8>, bool)], out: &SimCtlReq) -> bool {
        std::panic::catch_unwind(|| check_request(params, out)).is_err()
    }

    /// The checks [`gctl`] makes of a request fire on planted bad answers
    /// and pass the good ones.
    #[test]
    fn request_checks_fire() {
        let ok = req(&[
            ("verb", b"getactive\0", false),
            ("version", &1i32.to_ne_bytes(), false),
            ("output", &[0; 8], true),
        ]);
        let unversioned = req(&[("verb", b"create\0", false)]);
        let bogus = req(&[
            ("verb", b"zap\0", false),
            ("version", &1i32.to_ne_bytes(), false),
        ]);
        // Good: done, or refused with a known text naming the verb sent.
        assert!(!fires(&ok, &outcome(&ok, None)));
        let good = outcome(&unversioned, Some("No 'version' argument"));
        assert!(!fires(&unversioned, &good));
        assert!(!fires(&bogus, &outcome(&bogus, Some("Unknown verb zap"))));
        let mut written = outcome(&ok, None);
        written.params[2].value = b"mp0\0\0\0\0\0".to_vec();
        assert!(!fires(&ok, &written));
        // Bad: accepted without a version, an unknown or empty text, a
        // text quoting what was not sent, a read-only parameter written, a
        // written one without a NUL, a parameter lost or resized.
        assert!(fires(&unversioned, &outcome(&unversioned, None)));
        assert!(fires(&ok, &outcome(&ok, Some("something broke"))));
        assert!(fires(&ok, &outcome(&ok, Some(""))));
        assert!(fires(
            &bogus,
            &outcome(&bogus, Some("Unknown verb destroy"))
        ));
        let mut ro = outcome(&ok, None);
        ro.params[0].value = b"getactivX\0".to_vec();
        assert!(fires(&ok, &ro));
        let mut no_nul = outcome(&ok, None);
        no_nul.params[2].value = b"12345678".to_vec();
        assert!(fires(&ok, &no_nul));
        let mut lost = outcome(&ok, None);
        lost.params.remove(1);
        assert!(fires(&ok, &lost));
        let mut longer = outcome(&ok, None);
        longer.params[2].value.push(0);
        assert!(fires(&ok, &longer));
    }

    #[test]
    fn templates() {
        assert_eq!(
            match_template(
                "Providers size mismatch {} != {}",
                "Providers size mismatch 1 != 22"
            ),
            Some(vec!["1", "22"])
        );
        assert_eq!(
            match_template("Unknown verb {}", "Unknown verb "),
            Some(vec![""])
        );
        assert_eq!(match_template("Class not found", "Class not found."), None);
        assert_eq!(match_template("No '{}' argument", "No 'x' argument!"), None);
        assert_eq!(
            known_gctl_error(
                "failed to destroy mp (err=16): device is open (1 opens), close it first"
            )
            .map(|(t, h)| (t, h.len())),
            Some((GCTL_ERRORS[24], 4))
        );
        assert_eq!(known_gctl_error("Unknown command: x"), None);
    }

    /// [`GCTL_ERRORS`] is exactly the set of error texts in the sources:
    /// every `format_args!` literal of `src/ctl.rs` and every
    /// `req.error`/`self.error` text of `sim/src/model/ctl.rs` (with `{x}` written `{}`).
    #[test]
    fn gctl_errors_match_the_sources() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut found = std::collections::BTreeSet::new();
        for (file, marker) in [
            ("../src/ctl.rs", "format_args!("),
            ("src/model/ctl.rs", "format!("),
            ("src/model/ctl.rs", "error(format_args!("),
        ] {
            let text = std::fs::read_to_string(root.join(file)).expect("source");
            for piece in text.split(marker).skip(1) {
                let lit = piece.trim_start();
                let Some(lit) = lit.strip_prefix('"') else {
                    continue;
                };
                let Some(end) = lit.find('"') else { continue };
                let mut t = String::new();
                let mut in_hole = false;
                for c in lit[..end].chars() {
                    match c {
                        '{' => in_hole = true,
                        '}' => {
                            in_hole = false;
                            t.push_str("{}");
                        }
                        _ if in_hole => {}
                        _ => t.push(c),
                    }
                }
                // Log lines ("GEOM_MULTIPATH: ...\n") and the pass-through
                // of a recorded text ("{e}") and parameter names ("arg{i}") are
                // not request errors.
                if t.contains(' ') && !t.ends_with("\\n") {
                    found.insert(t);
                }
            }
        }
        let listed: std::collections::BTreeSet<String> =
            GCTL_ERRORS.iter().map(|s| s.to_string()).collect();
        let missing: Vec<_> = found.difference(&listed).collect();
        let stale: Vec<_> = listed.difference(&found).collect();
        assert!(
            missing.is_empty() && stale.is_empty(),
            "GCTL_ERRORS: add {missing:?}, remove {stale:?}"
        );
        for t in QUOTES_REQUEST {
            assert!(GCTL_ERRORS.contains(t), "{t}");
        }
    }
}
