//! Replays the checked-in fuzz corpus (`fuzz/corpus/TARGET/`) through the
//! same target functions libFuzzer runs (`geom_sim::fuzzing`), on a plain
//! host build: `make test` keeps every seed and every past finding passing
//! without the fuzzing toolchain.

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    files
}

fn replay(target: &str, f: fn(&[u8])) {
    for path in inputs(target) {
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("{target}: {}", path.display());
        f(&data);
    }
}

#[test]
fn label_corpus() {
    replay("label", geom_sim::fuzzing::label);
}

#[test]
fn gctl_corpus() {
    replay("gctl", geom_sim::fuzzing::gctl);
}

#[test]
fn scenario_corpus() {
    replay("scenario", geom_sim::fuzzing::scenario);
}
