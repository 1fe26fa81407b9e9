//! libFuzzer target: see geom_sim::fuzzing::scenario.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    geom_sim::fuzzing::scenario(data);
});
