//! Structure-aware: a valid seed file (every quantization mode) with header and table fields
//! rewritten, then re-sealed (CRC recomputed), so every check behind the CRC is exercised; files
//! that still validate go on through the load-and-run path.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: tinyscore_fuzz::Mutation| {
    let bytes = input.apply();
    tinyscore_fuzz::load_and_run(&bytes, input.t, input.seed);
});
