//! `Model::parse` on arbitrary bytes: it must return (Ok or a typed error), never panic, loop or
//! read out of bounds.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = tinyscore_fuzz::parse_checked(data);
});
