//! `mpsim soak` prints the command that replays a seed: it must carry every
//! option that shaped the run, and running it must repeat the run.

use std::collections::BTreeMap;
use std::process::Command;

/// Runs mpsim with `args`; returns (exit code, stdout, stderr).
fn mpsim(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mpsim"))
        .args(args)
        .output()
        .expect("mpsim runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The replay command soak announces, for seed `seed`, as arguments after
/// "mpsim".
fn replay_args(stderr: &str, seed: u64) -> Vec<String> {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("soak: "))
        .unwrap_or_else(|| panic!("no 'soak:' header in {stderr}"));
    let (_, cmd) = line
        .split_once("replay seed N with: ")
        .unwrap_or_else(|| panic!("no replay command in {line:?}"));
    let cmd = cmd.split(" (").next().unwrap_or(cmd);
    let words: Vec<String> = cmd
        .split_whitespace()
        .map(|w| {
            if w == "N" {
                seed.to_string()
            } else {
                w.to_string()
            }
        })
        .collect();
    assert_eq!(words.first().map(String::as_str), Some("mpsim"), "{cmd}");
    words[1..].to_vec()
}

/// The options of an mpsim command line: flag -> value ("" for a bare flag).
fn options(args: &[String]) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        if let Some(flag) = a.strip_prefix("--") {
            let takes_value = matches!(flag, "seed" | "seeds" | "bios" | "class" | "fail-nowait");
            let v = if takes_value {
                it.next().cloned().unwrap_or_default()
            } else if flag == "ko" {
                // --ko [PATH]: the path is optional, and ends in .ko.
                it.next_if(|p| p.ends_with(".ko"))
                    .cloned()
                    .unwrap_or_default()
            } else {
                String::new()
            };
            m.insert(flag.to_string(), v);
        }
    }
    m
}

/// The per-seed result line of a soak run ("seed N: ok (...)").
fn seed_line(stderr: &str, seed: u64) -> String {
    let p = format!("seed {seed}: ");
    stderr
        .lines()
        .find(|l| l.starts_with(&p))
        .unwrap_or_else(|| panic!("no line for seed {seed} in {stderr}"))
        .to_string()
}

/// Soaks with `given`, then checks the replay command of seed 2 carries
/// every option given (the mode as well when it was left to its default)
/// and, run, reports what the soak reported for seed 2.
fn check(given: &[&str], deterministic: bool) {
    let (code, stdout, stderr) = mpsim(&[&["soak", "--seeds", "3"], given].concat());
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let replay = replay_args(&stderr, 2);
    assert_eq!(replay.first().map(String::as_str), Some("soak"));
    let want = options(&given.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let got = options(&replay);
    for (flag, value) in &want {
        assert_eq!(
            got.get(flag),
            Some(value),
            "--{flag} {value} missing from the replay command {replay:?}"
        );
    }
    assert_eq!(got.get("seed").map(String::as_str), Some("2"), "{replay:?}");
    assert!(!got.contains_key("seeds"), "{replay:?}");
    let threaded = want.contains_key("threads");
    assert_eq!(got.contains_key("threads"), threaded, "{replay:?}");
    assert_eq!(got.contains_key("deterministic"), !threaded, "{replay:?}");

    let replay_refs: Vec<&str> = replay.iter().map(String::as_str).collect();
    let (code, stdout2, stderr2) = mpsim(&replay_refs);
    assert_eq!(code, Some(0), "{stdout2}{stderr2}");
    assert_eq!(stdout2.trim(), "soak: 1 passed, 0 failed");
    // The replay announces the same command: same options.
    assert_eq!(replay_args(&stderr2, 2), replay);
    if deterministic {
        assert_eq!(seed_line(&stderr2, 2), seed_line(&stderr, 2));
    }
}

#[test]
fn replay_repeats_a_deterministic_soak_seed() {
    check(&["--bios", "300", "--class", "passthrough"], true);
    check(&["--bios", "250", "--deterministic"], true);
}

#[test]
fn replay_of_a_threaded_soak_says_threads() {
    check(&["--bios", "200", "--threads"], false);
    check(
        &["--threads", "--class", "passthrough", "--bios", "150"],
        false,
    );
}

#[test]
fn replay_names_the_defaults_it_ran_with() {
    let (code, _, stderr) = mpsim(&["soak", "--seeds", "1", "--bios", "100"]);
    assert_eq!(code, Some(0), "{stderr}");
    let got = options(&replay_args(&stderr, 1));
    assert_eq!(got.get("class").map(String::as_str), Some("multipath"));
    assert_eq!(got.get("bios").map(String::as_str), Some("100"));
    assert!(got.contains_key("deterministic"), "{got:?}");
}
