//! The quantization scheme of the `w8a8` path, once: its bounds, the fixed-point form of a real
//! factor ([`quantize_multiplier`]), the one requantization rule ([`requantize`], round half up
//! on the exact product), saturation, the SiLU tables ([`lut`], [`silu_lut_entry`]), the
//! boundary conversions f32 → int and the timestep groups. The converter builds files with
//! these functions and the engine runs them, so the two cannot disagree. A leaf module (it takes
//! SiLU from [`crate::act`]).

/// Smallest valid fixed-point multiplier (2^30): multipliers are normalised to [2^30, 2^31).
pub const MULT_MIN: i32 = 1 << 30;
/// Smallest valid shift.
pub const SHIFT_MIN: u32 = 1;
/// Largest valid shift.
pub const SHIFT_MAX: u32 = 62;
/// Largest |bias| folded to int32 (2^30). With |Σ w·a| ≤ 512·127·127 < 2^23 and the time
/// embedding clamped to [`TEMB_MAX`], an accumulator can never overflow i32.
pub const BIAS_MAX: i32 = 1 << 30;
/// Largest |time embedding| once quantized to the accumulator's scale (2^29).
pub const TEMB_MAX: f32 = 536_870_912.0;
/// Largest number of timestep groups a file may hold.
pub const MAX_GROUPS: usize = 16;
/// Bits between the int16 residual stream and the int8 index of its SiLU table.
pub const RESIDUAL_EXTRA_BITS: u32 = 8;

/// The fixed-point form `(m, n)` of a positive real factor: `real ≈ m·2^−n` with
/// `m ∈ [2^30, 2^31)` and `n ∈ 1..=62`, `m = round(frac·2^31)` where `real = frac·2^e`,
/// `frac ∈ [½, 1)`. `None` when `real` is not finite and positive or outside `[2^−31, 2^30)`.
pub fn quantize_multiplier(real: f64) -> Option<(i32, u32)> {
    if !(real.is_finite() && real > 0.0) {
        return None;
    }
    let (frac, exp) = libm::frexp(real);
    let mut m = libm::round(frac * 2_147_483_648.0) as i64;
    let mut e = exp;
    if m == 1 << 31 {
        m = 1 << 30;
        e += 1;
    }
    let n = 31 - e;
    if !(SHIFT_MIN as i32..=SHIFT_MAX as i32).contains(&n) {
        return None;
    }
    Some((m as i32, n as u32))
}

/// `⌊(acc·m + 2^(n−1)) / 2^n⌋` saturated to i32: the one requantization rule (round half up).
/// `m` and `n` must be in range (the file's validation guarantees it; out-of-range values are
/// clamped so that no input can overflow).
#[inline]
pub fn requantize(acc: i32, m: i32, n: u32) -> i32 {
    let n = n.clamp(SHIFT_MIN, SHIFT_MAX);
    // |acc·m| < 2^62 and 2^(n−1) ≤ 2^61: the sum fits i64.
    let p = acc as i64 * m as i64 + (1i64 << (n - 1));
    (p >> n).clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// Saturates to int8's symmetric range [−127, 127].
#[inline]
pub fn sat_i8(v: i32) -> i8 {
    v.clamp(-127, 127) as i8
}

/// Saturates to int16's symmetric range [−32767, 32767].
#[inline]
pub fn sat_i16(v: i32) -> i16 {
    v.clamp(-32767, 32767) as i16
}

/// The int8 index of a residual value's SiLU table: `h / 2^8` rounded half up, saturated to
/// [−128, 127] (the table has 256 entries, index −128 at position 0).
#[inline]
pub fn residual_index(h: i16) -> i8 {
    let r = (h as i32 + (1 << (RESIDUAL_EXTRA_BITS - 1))) >> RESIDUAL_EXTRA_BITS;
    r.clamp(-128, 127) as i8
}

/// Looks `index` up in a 256-entry table (entry `index + 128`).
#[inline]
pub fn lut(table: &[u8], index: i8) -> i8 {
    table[(index as i32 + 128) as usize] as i8
}

/// Boundary quantization f32 → int8: `clamp(round(x / scale), −127, 127)` (round half away from
/// zero, `libm::roundf`). A NaN maps to 0.
#[inline]
pub fn quantize_i8(x: f32, scale: f32) -> i8 {
    let q = libm::roundf(x / scale);
    if q.is_nan() {
        return 0;
    }
    q.clamp(-127.0, 127.0) as i8
}

/// A bias `b` folded into an accumulator of scale `acc_scale`: `round(b / acc_scale)` clamped
/// to ±[`BIAS_MAX`].
pub fn quantize_bias(b: f32, acc_scale: f32) -> i32 {
    let q = libm::round(b as f64 / acc_scale as f64);
    if q.is_nan() {
        return 0;
    }
    q.clamp(-(BIAS_MAX as f64), BIAS_MAX as f64) as i32
}

/// The time embedding `v` in an accumulator of scale `acc_scale`, clamped to ±[`TEMB_MAX`].
#[inline]
pub fn quantize_temb(v: f32, acc_scale: f32) -> i32 {
    let q = v / acc_scale;
    if q.is_nan() {
        return 0;
    }
    round_half_away(q.clamp(-TEMB_MAX, TEMB_MAX))
}

/// `libm::roundf(c) as i32` (round half away from zero) for |c| ≤ [`TEMB_MAX`], inline (no call
/// per value): `c as i32` truncates toward zero exactly, and `c − t` is
/// the exact fractional part (for |c| ≥ 2^23, c is an integer and it is 0). Clamping before
/// rounding gives the same value as after it, since the bounds are integers.
#[inline]
fn round_half_away(c: f32) -> i32 {
    let t = c as i32;
    let f = c - t as f32;
    t + i32::from(f >= 0.5) - i32::from(f <= -0.5)
}

/// Entry `index` (−128..=127) of a SiLU table from input scale `in_scale` to output scale
/// `out_scale`: `clamp(round(silu(index·in_scale) / out_scale), −127, 127)`.
pub fn silu_lut_entry(index: i32, in_scale: f32, out_scale: f32) -> i8 {
    quantize_i8(crate::act::silu(index as f32 * in_scale), out_scale)
}

/// The timestep group of time `t ∈ [0, 1]` among `groups` equal intervals:
/// `min(groups − 1, ⌊t·groups⌋)` (t < 0 or NaN gives group 0).
#[inline]
pub fn time_group(t: f32, groups: usize) -> usize {
    let g = t * groups as f32;
    if g.is_nan() || g < 0.0 {
        return 0;
    }
    (g as usize).min(groups.saturating_sub(1))
}
