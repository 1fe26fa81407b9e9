//! Running a check over many seeds, and replaying the one that failed.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f` for every seed in `seeds` — or only for `SIM_SEED` when that is
/// set — and panics with "failed at seed N, replay with SIM_SEED=N" on the
/// first seed whose closure returns an error or panics.
pub fn for_seeds(seeds: impl IntoIterator<Item = u64>, f: impl Fn(u64) -> Result<(), String>) {
    let only: Option<u64> = std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let list: Vec<u64> = match only {
        Some(s) => vec![s],
        None => seeds.into_iter().collect(),
    };
    for seed in list {
        let r = catch_unwind(AssertUnwindSafe(|| f(seed)));
        let msg = match r {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e,
            Err(p) => p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into()),
        };
        panic!("failed at seed {seed}, replay with SIM_SEED={seed}: {msg}");
    }
}
