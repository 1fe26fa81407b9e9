//! Replays the checked-in fuzz corpus (`fuzz/corpus/TARGET/`) through the
//! same target functions libFuzzer runs (`geom_sim::fuzzing`), on a plain
//! host build: `make test` keeps every seed and every past finding passing
//! without the fuzzing toolchain.
//!
//! The bodies assert their checks themselves (they panic on a violation:
//! `fuzzing::check_request` and its unit test `request_checks_fire` show
//! the gctl checks firing on planted bad answers). Here each input runs
//! under `catch_unwind`, every failing file is named, every file in the
//! directory must have been played, and the corpus must reach both sides of
//! each target (labels taken and refused, requests done and refused).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// What [`replay`] saw: what each input returned, by file, and the files
/// whose run panicked, with the panic message.
type Replayed<R> = (Vec<(PathBuf, R)>, Vec<(PathBuf, String)>);

/// Plays every file of `dir` through `f`.
fn replay<R>(dir: &Path, f: impl Fn(&[u8]) -> R) -> Replayed<R> {
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for path in inputs(dir) {
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        match catch_unwind(AssertUnwindSafe(|| f(&data))) {
            Ok(r) => done.push((path, r)),
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "non-string panic".into());
                failed.push((path, msg));
            }
        }
    }
    (done, failed)
}

/// Replays `target`'s corpus: no input fails, every file was played.
fn replay_corpus<R>(target: &str, f: impl Fn(&[u8]) -> R) -> Vec<(PathBuf, R)> {
    let dir = corpus(target);
    let files = inputs(&dir).len();
    let (done, failed) = replay(&dir, f);
    assert!(failed.is_empty(), "{target}: inputs failing: {failed:#?}");
    assert_eq!(done.len(), files, "{target}: not every file was played");
    assert!(
        files >= 5,
        "{target}: only {files} seeds in {}",
        dir.display()
    );
    eprintln!("{target}: {files} inputs replayed");
    done
}

/// Replays `target`'s corpus through `f`, which says whether an input is
/// taken (`what`: "labels decode", "scenarios parse"): some must be and
/// some not.
fn replay_taken_and_not(target: &str, what: &str, f: impl Fn(&[u8]) -> bool) {
    let done = replay_corpus(target, f);
    let taken = done.iter().filter(|(_, ok)| *ok).count();
    assert!(
        taken > 0 && taken < done.len(),
        "{taken} of {} {what}: the corpus needs both",
        done.len()
    );
}

#[test]
fn label_corpus() {
    replay_taken_and_not("label", "labels decode", geom_sim::fuzzing::label);
}

#[test]
fn gctl_corpus() {
    let done = replay_corpus("gctl", geom_sim::fuzzing::gctl);
    for (path, st) in &done {
        assert!(st.steps > 0, "{}: plays nothing", path.display());
    }
    let requests: usize = done.iter().map(|(_, s)| s.requests).sum();
    let refused: usize = done.iter().map(|(_, s)| s.refused).sum();
    assert!(
        refused > 0 && refused < requests,
        "{refused} of {requests} raw requests refused: the corpus needs both"
    );
}

#[test]
fn scenario_corpus() {
    replay_taken_and_not("scenario", "scenarios parse", geom_sim::fuzzing::scenario);
}

/// The replay itself: a planted failing input is caught and named, the
/// others still play, and nothing is skipped.
#[test]
fn replay_names_a_failing_input() {
    let dir = std::env::temp_dir().join(format!("fuzz_corpus_replay_{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for (name, data) in [("a", "fine"), ("b", "BAD"), ("c", "fine too")] {
        std::fs::write(dir.join(name), data).expect("write");
    }
    let (done, failed) = replay(&dir, |d: &[u8]| {
        assert!(!d.starts_with(b"BAD"), "planted");
        d.len()
    });
    std::fs::remove_dir_all(&dir).expect("cleanup");
    assert_eq!(done.iter().map(|(_, n)| *n).collect::<Vec<_>>(), [4, 8]);
    assert_eq!(failed.len(), 1);
    assert!(failed[0].0.ends_with("b") && failed[0].1.contains("planted"));
}

/// A gctl script whose request the real class answers with a known error
/// naming the verb, through the same body the fuzzer runs: the body counts
/// it as refused (and would panic if the text were unknown).
#[test]
fn gctl_body_counts_a_refused_request() {
    let st = geom_sim::fuzzing::gctl(b"verb=frobnicate\nversion=i:1\n.\n$ list\n");
    assert_eq!(
        st,
        geom_sim::fuzzing::GctlStats {
            steps: 2,
            requests: 1,
            refused: 1
        }
    );
}
