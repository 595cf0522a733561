//! The whole load-and-run path on arbitrary bytes: parse, then (for a file that validates)
//! `ScoreNet::new`, one ε evaluation and one DDPM sampler step, through the public engine API.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tinyscore_fuzz::load_and_run(data, 0.5, 7);
});
