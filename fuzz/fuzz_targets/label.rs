//! libFuzzer target: see geom_sim::fuzzing::label.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    geom_sim::fuzzing::label(data);
});
