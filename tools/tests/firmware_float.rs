//! The firmware prints each f32 with its own printer (`firmware-example/src/float.rs`: ryu's
//! shortest digits in the layout of Rust's `{}`), the host with `format!("{}")`: the two must
//! write the same text for every f32, or a device's output would differ from the host's though
//! its bits agree. Runs on the host (the file has no target-specific code); the firmware tests
//! (`tests/firmware.rs`) compare the two on real output as well.
//!
//! `TINYSCORE_FLOAT_STRIDE=1 cargo test -p tinyscore-tools --release --test firmware_float`
//! checks all 2^32 bit patterns (about 50 minutes of one core); by default every 1021st.

#[path = "../../firmware-example/src/float.rs"]
mod float;

/// What the firmware writes for `v`.
fn printed(v: f32) -> String {
    let mut s = String::new();
    float::write_f32(&mut s, v).expect("a String takes any text");
    s
}

/// The bit patterns the test visits, each with its sign flipped too: every `stride`-th one from
/// 0 below the sign bit (every exponent, subnormals, infinities and NaNs), then ±10^k and their neighbours (ryu switches its own
/// layout between plain and exponent notation at powers of ten), the extremes, a few values
/// with long digit strings, exact ties, where `Display` and ryu round differently, and every
/// value whose mantissa has at most 12 significant bits (the values with short decimals).
fn cases(stride: u64) -> impl Iterator<Item = u32> {
    let sweep = (0..0x8000_0000u32).step_by(stride as usize);
    let powers = (-46..=39).flat_map(|k| {
        let p = format!("1e{k}").parse::<f32>().expect("a power of ten").to_bits();
        [p.wrapping_sub(1), p, p.wrapping_add(1)]
    });
    let specials = [
        0.0f32,
        f32::MIN_POSITIVE,
        f32::from_bits(1),
        f32::MAX,
        f32::EPSILON,
        0.1,
        1.0 / 3.0,
        123_456_790.0,
        16_777_216.0,
        1.5e-5,
        9.999_999e-6,
        0.3,
        // Exact ties between two shortest candidates (`Display` rounds them up, ryu to even).
        2267.0 + 9.0 / 32.0, // 2267.28125
        1410.0 + 5.0 / 32.0, // 1410.15625
        0.5078125,
        8.5e-3,
    ]
    .map(f32::to_bits);
    // Every exponent with every 12-bit mantissa head: the values with short exact decimal
    // expansions, where the ties lie.
    let round = (0..=0xffu32).flat_map(|e| (0..1u32 << 12).map(move |k| e << 23 | k << 11));
    sweep.chain(powers).chain(specials).chain(round).flat_map(|b| [b, b ^ 0x8000_0000])
}

#[test]
fn the_firmware_prints_every_f32_as_display_does() {
    let stride = std::env::var("TINYSCORE_FLOAT_STRIDE").ok().and_then(|s| s.parse().ok()).unwrap_or(1021u64);
    let (mut checked, mut differ, mut first) = (0u64, 0u64, None);
    for bits in cases(stride.max(1)) {
        let v = f32::from_bits(bits);
        let (want, got) = (format!("{v}"), printed(v));
        checked += 1;
        if want != got {
            differ += 1;
            first.get_or_insert((bits, want, got));
        }
    }
    println!("{checked} values, {differ} differ");
    assert_eq!(differ, 0, "first difference (bits, Display, firmware): {first:?}");
    assert!(checked > 6_000_000, "only {checked} values checked");
}
