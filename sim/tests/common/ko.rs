//! The built module, for the tests that load it.

use geom_sim::ko::KoOptions;

/// The options loading the built `.ko`, or None when it is not built:
/// "SKIPPED: TEST: PATH is missing (run `make`)" on stderr, where TEST is
/// the test harness's name for the calling thread. With `GMR_REQUIRE_KO=1`
/// (as `make test` runs these tests) a missing module fails the test
/// instead.
pub fn built_ko() -> Option<KoOptions> {
    let o = KoOptions::default();
    if o.path.exists() {
        return Some(o);
    }
    let current = std::thread::current();
    let test = current.name().unwrap_or("a test");
    let msg = format!("{test}: {} is missing (run `make`)", o.path.display());
    if std::env::var("GMR_REQUIRE_KO").as_deref() == Ok("1") {
        panic!("GMR_REQUIRE_KO=1: {msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}
