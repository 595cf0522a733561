//! An f32 as text, exactly as Rust's `{}` (`Display`) writes it, which is how the host's
//! `tinyscore` prints every value: the shortest decimal digits that read back to the same f32
//! (the nearer of two such, the one of larger magnitude at an exact tie), written without an
//! exponent (`0.000012`, `340282350000000000000000000000000000000`), `-0` for negative zero,
//! `NaN`, `inf` and `-inf`.
//!
//! Why not `write!(out, "{v}")`: core's float formatting links its exact-precision path too
//! (`{:.3}`, chosen at run time from the formatter), about 11.6 KB of flash in all; the
//! shortest digits come from `ryu` here (about 2.5 KB with this file), which the 256 KiB-flash
//! profile needs (feature `terse-panic`, where nothing else links core's float formatting;
//! `write_f32` in main.rs chooses). The digits are ryu's, the layout is `Display`'s; the host
//! test `firmware_float` (tools/tests) holds this file to `format!("{}")` over the whole range.

use core::fmt::{self, Write};

/// Writes `v` to `out` as `format!("{v}")` would.
pub fn write_f32<W: Write>(out: &mut W, v: f32) -> fmt::Result {
    if v.is_nan() {
        return out.write_str("NaN");
    }
    if v.is_infinite() {
        return out.write_str(if v < 0.0 { "-inf" } else { "inf" });
    }
    let mut buf = ryu::Buffer::new();
    // ryu's own layout: `-`?, digits with one `.`, then `e` and a signed exponent or nothing
    // (`1.5e-7`, `123.45`, `100.0`, `0.0`). Read as: v = ±0.d_1…d_n × 10^point, with the
    // significant digits d_1 ≠ 0 … d_n ≠ 0 (at most 9 for an f32) in `digits`.
    let printed = buf.format_finite(v).as_bytes();
    let mut digits = [0u8; 16];
    let (mut n, mut point, mut seen_point) = (0usize, 0i32, false);
    let mut negative = false;
    let mut exponent = 0i32;
    let mut k = 0;
    while k < printed.len() {
        match printed[k] {
            b'-' => negative = true,
            b'.' => seen_point = true,
            b'e' => {
                exponent = exponent_of(&printed[k + 1..]);
                break;
            }
            b => {
                if !seen_point {
                    point += 1;
                }
                if n == 0 && b == b'0' {
                    point -= 1; // a leading zero
                } else if n < digits.len() {
                    digits[n] = b;
                    n += 1;
                }
            }
        }
        k += 1;
    }
    point += exponent;
    while n > 0 && digits[n - 1] == b'0' {
        n -= 1;
    }
    if negative {
        out.write_char('-')?;
    }
    if n == 0 {
        return out.write_char('0');
    }
    // At an exact tie between two shortest candidates ryu rounds the last digit to even,
    // `Display` up (2267.28125 is `2267.2813`): round up where ryu went down.
    if digits[n - 1] % 2 == 0 && is_midpoint(v, &digits[..n], point) {
        digits[n - 1] += 1; // even, so no carry
    }
    let digits = &digits[..n];
    if point <= 0 {
        out.write_str("0.")?;
        zeros(out, -point)?;
        chars(out, digits)
    } else if point as usize >= n {
        chars(out, digits)?;
        zeros(out, point - n as i32)
    } else {
        let (a, b) = digits.split_at(point as usize);
        chars(out, a)?;
        out.write_char('.')?;
        chars(out, b)
    }
}

/// Whether |v| (not zero) is exactly the decimal 0.d_1…d_n5 × 10^point: the midpoint between
/// the digits and the digits with the last one raised. In exact integer arithmetic on the odd
/// parts and the powers of two: |v| = m·2^e (m odd, below 2^24), the midpoint N·2^t·10^q (N odd,
/// N·2^t = d_1…d_n5, below 10^10) with q = point − n − 1. For q ≥ 0 they are equal iff
/// m = N·5^q and e = t + q; for q = −a < 0 iff m·5^a = N and e + a = t (5^a > 10^10 > N for
/// a > 14, and 5^q > 2^24 > m for q > 10: no tie there).
fn is_midpoint(v: f32, digits: &[u8], point: i32) -> bool {
    let bits = v.to_bits() & 0x7fff_ffff;
    let (biased, fraction) = ((bits >> 23) as i32, u64::from(bits & 0x007f_ffff));
    let (m, e) = if biased == 0 { (fraction, -149) } else { (fraction | 1 << 23, biased - 150) };
    let big_n = digits.iter().fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0')) * 10 + 5;
    if m == 0 {
        return false;
    }
    let (m, e) = (m >> m.trailing_zeros(), e + m.trailing_zeros() as i32);
    let (n_odd, t) = (big_n >> big_n.trailing_zeros(), big_n.trailing_zeros() as i32);
    let q = point - digits.len() as i32 - 1;
    if q >= 0 {
        q <= 10 && m == n_odd * 5u64.pow(q as u32) && e == t + q
    } else {
        let a = -q;
        a <= 14 && m * 5u64.pow(a as u32) == n_odd && e + a == t
    }
}

/// ASCII digits.
fn chars<W: Write>(out: &mut W, digits: &[u8]) -> fmt::Result {
    for &d in digits {
        out.write_char(char::from(d))?;
    }
    Ok(())
}

/// `k` zeros.
fn zeros<W: Write>(out: &mut W, k: i32) -> fmt::Result {
    for _ in 0..k {
        out.write_char('0')?;
    }
    Ok(())
}

/// The exponent after ryu's `e`: an optional `-`, then decimal digits.
fn exponent_of(text: &[u8]) -> i32 {
    let (sign, digits) = match text.split_first() {
        Some((b'-', rest)) => (-1, rest),
        _ => (1, text),
    };
    sign * digits.iter().fold(0i32, |acc, &b| acc * 10 + i32::from(b.wrapping_sub(b'0')))
}
