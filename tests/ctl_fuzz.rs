//! Random and malformed gctl requests against the class: whatever userland
//! sends, the kernel side records a precise error or does the command, and
//! never panics, breaks a GEOM rule or leaves the device unusable.

mod common;

use common::{list, san};
use geom_sim::fuzzing::{gctl_error_names_request, known_gctl_error};
use geom_sim::{Access, Mode, SimCtlReq};
use proptest::prelude::*;

const VERBS: [&str; 14] = [
    "create",
    "add",
    "remove",
    "fail",
    "restore",
    "prefer",
    "configure",
    "rotate",
    "getactive",
    "stop",
    "destroy",
    "label",
    "clear",
    "bogus",
];
const WORDS: [&str; 9] = [
    "mp",
    "da0",
    "da1",
    "da2",
    "/dev/da1",
    "nosuch",
    "",
    "mp-long-name-over-15",
    "0b7a3a9e-4c1d-4f0e-9a55-2f6c1d3e8b01",
];
const PARAMS: [&str; 9] = [
    "version",
    "nargs",
    "arg0",
    "arg1",
    "arg2",
    "active_active",
    "active_read",
    "active_passive",
    "output",
];

/// One parameter: a name and raw bytes, possibly malformed (no NUL, wrong
/// length, garbage).
fn param() -> impl Strategy<Value = (String, Vec<u8>)> {
    let name = prop_oneof![
        prop::sample::select(PARAMS.to_vec()).prop_map(String::from),
        "[a-z]{1,8}"
    ];
    let value = prop_oneof![
        prop::sample::select(WORDS.to_vec()).prop_map(|w| {
            let mut v = w.as_bytes().to_vec();
            v.push(0);
            v
        }),
        (0i32..5).prop_map(|n| n.to_ne_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 0..12),
    ];
    (name, value)
}

fn request() -> impl Strategy<Value = (String, Vec<(String, Vec<u8>)>)> {
    (
        prop::sample::select(VERBS.to_vec()).prop_map(String::from),
        prop::collection::vec(param(), 0..8),
    )
}

proptest! {
    // 96 cases in `make test`; `make fuzz` raises it with PROPTEST_CASES.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(96)
    ))]

    #[test]
    fn malformed_requests_never_break_the_class(reqs in prop::collection::vec(request(), 1..6)) {
        let (sim, _lun) = san(Mode::Deterministic, 77, &["da0", "da1", "da2"], 1 << 20);
        sim.gmultipath(&["create", "mp", "da0", "da1"]).unwrap();
        sim.run_until_idle();
        for (verb, params) in &reqs {
            let mut r = SimCtlReq::new();
            r.add_str("class", "MULTIPATH").add_str("verb", verb);
            for (name, value) in params {
                if name == "output" {
                    r.add_output("output", value.len());
                } else {
                    r.add_raw(name, value, false);
                }
            }
            let out = sim.plat().gctl(r);
            // Without a well-formed version nothing may happen but an error.
            let has_version = params.iter().any(|(n, v)| n == "version" && v.len() == 4);
            if !has_version {
                prop_assert!(out.error_text().is_some(), "{verb} {params:?} was accepted");
            }
            if let Some(e) = out.error_text() {
                // One of the class's texts, quoting only what was sent.
                let Some((template, holes)) = known_gctl_error(e) else {
                    return Err(TestCaseError::fail(format!("{verb} {params:?}: unknown error text {e:?}")));
                };
                let mut sent: Vec<(String, Vec<u8>, bool)> = params
                    .iter()
                    .map(|(n, v)| (n.clone(), v.clone(), n == "output"))
                    .collect();
                sent.push(("verb".into(), format!("{verb}\0").into_bytes(), false));
                prop_assert!(
                    gctl_error_names_request(template, &holes, &sent),
                    "{verb} {params:?}: error {e:?} quotes what was not sent"
                );
                prop_assert!(e.len() < 200, "error text {e:?}");
            }
            sim.run_until_idle();
        }
        prop_assert!(sim.violations().is_empty(), "{:?}", sim.violations());
        // Whatever happened, a device that still exists still works.
        if let Some(g) = list(&sim, "mp") {
            if g.state != "BROKEN" {
                let dev = sim.open("multipath/mp", Access::new(1, 1, 0)).unwrap();
                dev.write(0, &[1u8; 512]).unwrap();
                prop_assert_eq!(dev.read(0, 512).unwrap(), vec![1u8; 512]);
            }
        }
        let rep = sim.finish();
        prop_assert!(rep.violations.is_empty(), "{:?}", rep.violations);
    }
}

/// The same requests, well formed, in random order on real threads: the
/// class stays consistent (no rule broken, a surviving device works).
#[test]
fn random_verb_sequences_on_threads() {
    geom_sim::for_seeds(1..=32, |seed| {
        let (sim, _lun) = san(Mode::Threaded, seed, &["da0", "da1", "da2"], 1 << 20);
        let mut x = seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1;
        let mut next = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        for _ in 0..40 {
            let verb = VERBS[next(VERBS.len())];
            let argv: Vec<&str> = match verb {
                "create" | "label" => vec![verb, "mp", "da0", "da1"],
                "add" | "remove" | "fail" | "restore" | "prefer" => {
                    vec![verb, "mp", ["da0", "da1", "da2"][next(3)]]
                }
                "configure" => vec![verb, ["-A", "-R", "-P"][next(3)], "mp"],
                "clear" => vec![verb, "da2"],
                _ => vec![verb, "mp"],
            };
            let _r = sim.gmultipath(&argv);
            if std::env::var_os("CTL_TRACE").is_some() {
                eprintln!("{argv:?} -> {_r:?}");
            }
            sim.run_until_idle();
        }
        if !sim.violations().is_empty() {
            return Err(format!("{:?}", sim.violations()));
        }
        if let Some(g) = list(&sim, "mp") {
            if g.state != "BROKEN" {
                let dev = sim
                    .open("multipath/mp", Access::new(1, 1, 0))
                    .map_err(|e| format!("open: {e}"))?;
                dev.write(4096, &[2u8; 512])
                    .map_err(|e| format!("write: {e} on {g:?}"))?;
                if dev.read(4096, 512).map_err(|e| format!("read: {e}"))? != vec![2u8; 512] {
                    return Err("data mismatch".into());
                }
            }
        }
        let log = sim.log_lines();
        let rep = sim.finish();
        if std::env::var_os("CTL_TRACE").is_some() {
            eprintln!("{log:#?}");
        }
        if rep.violations.is_empty() {
            Ok(())
        } else {
            Err(format!("{:?}", rep.violations))
        }
    });
}
