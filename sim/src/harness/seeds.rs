//! Running a check over many seeds, and replaying the one that failed.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// The seed `SIM_SEED` names, if it is set. A value that is not a seed is
/// an error: silently running every seed instead would look like a replay
/// that passed.
pub fn seed_from_env() -> Result<Option<u64>, String> {
    match std::env::var("SIM_SEED") {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(e) => Err(format!("SIM_SEED: {e}")),
        Ok(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("SIM_SEED={s:?} is not a seed (a number)")),
    }
}

/// Runs `f` for every seed in `seeds` — or only for `SIM_SEED` when that is
/// set — and panics with "failed at seed N, replay with SIM_SEED=N cargo
/// test ..." (see [`replay_command`]) on the first seed whose closure
/// returns an error or panics.
pub fn for_seeds(seeds: impl IntoIterator<Item = u64>, f: impl Fn(u64) -> Result<(), String>) {
    let only = seed_from_env().unwrap_or_else(|e| panic!("{e}"));
    for_seeds_or_only(only, seeds, f)
}

/// [`for_seeds`] with the replayed seed given rather than read from the
/// environment: `Some(s)` runs `f(s)` alone.
pub fn for_seeds_or_only(
    only: Option<u64>,
    seeds: impl IntoIterator<Item = u64>,
    f: impl Fn(u64) -> Result<(), String>,
) {
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
        panic!(
            "failed at seed {seed}, replay with {}: {msg}",
            replay_command(seed)
        );
    }
}

/// The command that runs this test again on `seed` alone: `SIM_SEED=N
/// cargo test`, narrowed by what the running test binary can tell about
/// itself (its package from cargo's CARGO_PKG_NAME, its target from the
/// binary's name, its name from the test thread's name).
pub fn replay_command(seed: u64) -> String {
    let mut cmd = format!("SIM_SEED={seed} cargo test");
    let pkg = std::env::var("CARGO_PKG_NAME").ok();
    if let Some(p) = &pkg {
        cmd.push_str(&format!(" -p {p}"));
    }
    // target/<profile>/deps/<target>-<16 hex digits>
    let target = std::env::current_exe().ok().and_then(|p| {
        let stem = p.file_stem()?.to_str()?.to_string();
        let (name, hash) = stem.rsplit_once('-')?;
        (hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then(|| name.to_string())
    });
    if let (Some(t), Some(p)) = (&target, &pkg) {
        if *t == p.replace('-', "_") {
            cmd.push_str(" --lib");
        } else {
            cmd.push_str(&format!(" --test {t}"));
        }
    }
    // libtest names each test's thread after the test (not with
    // --test-threads=1, where tests run on "main").
    if let Some(name) = std::thread::current().name() {
        if name != "main" {
            cmd.push_str(&format!(" -- --exact {name}"));
        }
    }
    cmd
}
