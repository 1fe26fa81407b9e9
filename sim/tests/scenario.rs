//! Scenario files and the mpsim CLI.

use std::process::Command;

use geom_sim::scenario::{parse_size, Overrides, Scenario};
use geom_sim::Mode;

fn scenarios_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios")
}

#[test]
fn example_files_parse() {
    for f in ["demo.toml", "passthrough-faults.toml"] {
        Scenario::load(&scenarios_dir().join(f)).unwrap();
    }
}

#[test]
fn bad_scenarios_give_clear_errors() {
    let cases = [
        ("mode = \"fast\"\n[[disk]]\npaths=[\"da0\"]", "mode must be"),
        ("[[disk]]\npaths=[]", "at least one provider"),
        ("", "at least one [[disk]]"),
        ("[[disk]]\npaths=[\"da0\"]\nsize=\"12Q\"", "bad size"),
        ("bogus = 1\n[[disk]]\npaths=[\"da0\"]", "unknown field"),
        ("[[disk]]\npaths=[\"da0\"]\n[[event]]\nat=1\nfault=\"die\"", "needs a path"),
        ("[[disk]]\npaths=[\"da0\"]\n[[event]]\nat=1\npath=\"da9\"\nfault=\"die\"", "no path named da9"),
        ("[[disk]]\npaths=[\"da0\"]\n[[event]]\nat=1\npath=\"da0\"\nfault=\"fail\"\nerrno=\"EWHAT\"", "unknown errno"),
    ];
    for (text, want) in cases {
        let e = Scenario::parse(text).unwrap_err();
        assert!(e.contains(want), "{text:?}: {e}");
    }
    assert_eq!(parse_size("16M"), Ok(16 << 20));
}

#[test]
fn passthrough_scenario_under_both_schedulers() {
    let sc = Scenario::load(&scenarios_dir().join("passthrough-faults.toml")).unwrap();
    for mode in [Mode::Deterministic, Mode::Threaded] {
        let s = sc
            .run(&Overrides {
                seed: Some(3),
                mode: Some(mode),
                progress: false,
                live: false,
            })
            .unwrap();
        assert!(!s.is_bad(), "{}", s.text());
        assert_eq!(s.bios_completed, 5000);
        assert!(s.bios_failed > 0);
        assert_eq!(
            s.paths["md0"].started,
            s.paths["md0"].completed + s.paths["md0"].failed
        );
    }
}

#[test]
fn deterministic_scenario_replays() {
    let sc = Scenario::load(&scenarios_dir().join("passthrough-faults.toml")).unwrap();
    let ov = Overrides {
        seed: Some(11),
        mode: Some(Mode::Deterministic),
        progress: false,
        live: false,
    };
    let a = sc.run(&ov).unwrap();
    let b = sc.run(&ov).unwrap();
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.bios_failed, b.bios_failed);
}

#[test]
fn cli_reports_and_exits() {
    let exe = env!("CARGO_BIN_EXE_mpsim");
    let out = Command::new(exe)
        .args(["run", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent.toml"));
    let f = scenarios_dir().join("passthrough-faults.toml");
    let out = Command::new(exe)
        .args([
            "run",
            f.to_str().unwrap(),
            "--json",
            "--deterministic",
            "--seed",
            "5",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["bios_completed"], 5000);
    assert_eq!(v["lost_completions"], 0);
    let out = Command::new(exe)
        .args([
            "soak",
            "--seeds",
            "3",
            "--bios",
            "300",
            "--class",
            "passthrough",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("soak: 3 passed, 0 failed"));
    let out = Command::new(exe).args(["frobnicate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
