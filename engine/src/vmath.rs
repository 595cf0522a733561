//! Eight-lane `expf` and SiLU with exactly the bits of `libm::expf` (issue 9, engine speed).
//!
//! [`expf8`] is libm 0.2's `expf` (FreeBSD `e_expf.c`) rewritten without branches over eight lanes,
//! so that a compiler can keep the lanes in SIMD registers (one `ymm` register with AVX2, two `xmm`
//! with SSE2 or NEON). Per lane, as in libm:
//!
//! k = trunc(x·(1/ln2) ± ½) for |x| > 1.5·ln2, ±1 for 0.5·ln2 < |x| ≤ 1.5·ln2, else 0;
//! hi = x − k·ln2_hi, lo = k·ln2_lo, r = hi − lo;
//! c = r − r²·(P1 + r²·P2), y = 1 + (r·c/(2 − c) − lo + hi), e^x = y·2^k;
//! and e^x = 1 + x for |x| ≤ 2^−13.
//!
//! Every lane computes every candidate and a select keeps libm's; the operations are libm's, one
//! by one, in its order: only IEEE `+ − × ÷`, comparisons, conversions and bit casts, which round
//! the same on every target (no fused multiply–add: Rust never contracts `a * b + c`). The
//! exponent scaling `scalbnf(y, k)` is exact when the result is normal, so it is an integer add
//! to the exponent field. Lanes outside |x| < 86 (results near or past the subnormal and
//! overflow limits, infinities, NaN) go to `libm::expf` one by one, after a cheap check for any
//! such lane. The result equals `libm::expf` bit for bit on all 2^32 inputs (the ignored test
//! `expf8_equals_libm_on_every_f32`, run in release; docs/BENCHMARKS.md).
//!
//! [`silu8_into`] applies [`silu`](crate::act::silu) to a slice with it, eight elements at a time;
//! [`silu_into`], the network's SiLU, is that on every target but 32-bit Arm (see there).

/// Lanes of [`expf8`].
pub const LANES: usize = 8;

const LN2_HI: f32 = 6.931_457_5e-1; // 0x3f317200
const LN2_LO: f32 = 1.428_606_8e-6; // 0x35bfbe8e
const INV_LN2: f32 = core::f32::consts::LOG2_E; // 0x3fb8aa3b, libm's 1.4426950216e+00
const P1: f32 = 1.666_662_5e-1; // 0x3e2aaa8f
const P2: f32 = -2.766_733_3e-3; // 0xbb355215
/// 1.5·2^23: `t + SHIFTER` has the integer nearest to t in its low mantissa bits.
const SHIFTER: f32 = 12_582_912.0;

// The thresholds on |x|: libm compares the bits of |x| with 0x3f851592, 0x3eb17218 and
// 0x39000000; for |x| not NaN the order of the bits is the order of the values, so these compare
// |x| as a float with the values of those bit patterns (one vector compare per threshold).
/// |x| above 1.5·ln2 (libm's 0x3f851592): k from the rounded product.
const ABS_1_5_LN2: f32 = 1.039_720_8;
/// |x| above 0.5·ln2 (0x3eb17218): k = ±1.
const ABS_0_5_LN2: f32 = 0.346_573_6;
/// |x| above 2^−13 (0x39000000): the polynomial; at or below, e^x = 1 + x.
const ABS_TINY: f32 = 1.220_703_1e-4;
/// |x| below 86: |k| ≤ 124, so y·2^k is a normal number and the exponent add is exact. The
/// rest (the subnormal and overflow edges from |x| ≈ 87.3, ±∞, NaN) is left to libm.
const ABS_FAST: f32 = 86.0;

/// One lane of [`expf8`] for |x| < 86 (`ax` = |x|); the value is meaningless (but no panic)
/// elsewhere.
#[inline(always)]
fn expf_lane(x: f32, ax: f32) -> f32 {
    // libm's sign bit; x < 0 differs from it only at −0, where k = 0 in any case.
    let negative = x < 0.0;
    let half = if negative { -0.5 } else { 0.5 };
    // libm: k = (x·(1/ln2) ± ½) as i32, truncation toward zero. `as` saturates, which compiles to
    // one scalar conversion per lane, so truncate with float adds instead: adding 1.5·2^23 rounds
    // t to the nearest integer n (exact for |t| < 2^22; here |t| < 125), then step n back
    // toward zero where rounding went away from it.
    let t = INV_LN2 * x + half;
    let shifted = t + SHIFTER;
    let nearest = shifted - SHIFTER;
    let n = (shifted.to_bits() as i32).wrapping_sub(SHIFTER.to_bits() as i32);
    let step = if t >= 0.0 {
        if nearest > t {
            -1
        } else {
            0
        }
    } else if nearest < t {
        1
    } else {
        0
    };
    let k_rounded = n.wrapping_add(step);
    let k_one = if negative { -1 } else { 1 };
    let k = if ax > ABS_1_5_LN2 {
        k_rounded
    } else if ax > ABS_0_5_LN2 {
        k_one
    } else {
        0
    };
    // With k = 0 these are libm's hi = x, lo = 0 exactly (x − 0·ln2_hi = x, r = x − 0 = x).
    let kf = k as f32;
    let hi = x - kf * LN2_HI;
    let lo = kf * LN2_LO;
    let r = hi - lo;
    let rr = r * r;
    let c = r - rr * (P1 + rr * P2);
    let y = 1.0 + (r * c / (2.0 - c) - lo + hi);
    // scalbnf(y, k): y ∈ [0.7, 1.5] and |k| ≤ 124 keep the exponent field in 2..=251.
    let scaled = f32::from_bits(y.to_bits().wrapping_add((k as u32) << 23));
    if ax > ABS_TINY {
        scaled
    } else {
        1.0 + x
    }
}

/// `libm::expf` of eight values at once, bit for bit (see the module doc).
#[cfg_attr(not(target_arch = "arm"), inline(always))]
#[cfg_attr(target_arch = "arm", inline)]
pub fn expf8(x: [f32; LANES]) -> [f32; LANES] {
    let ax = x.map(|v| f32::from_bits(v.to_bits() & 0x7fff_ffff));
    let mut out = [0.0f32; LANES];
    for ((o, &v), &a) in out.iter_mut().zip(&x).zip(&ax) {
        *o = expf_lane(v, a);
    }
    // Any lane not below 86 (NaN included: it compares false) goes to libm.
    let fast = ax.map(|a| a < ABS_FAST);
    if !fast.iter().fold(true, |all, &f| all & f) {
        for ((o, &v), &f) in out.iter_mut().zip(&x).zip(&fast) {
            if !f {
                *o = libm::expf(v);
            }
        }
    }
    out
}

/// `out[i] = silu(x[i])` ([`silu`](crate::act::silu), the same bits): [`silu8_into`], except on
/// 32-bit Arm. A Cortex-M4F has no SIMD for f32, and there the branch-free lanes run more
/// instructions than libm's branches (QEMU icount, f32 moons model: 760 178 instructions per
/// network evaluation against 723 831; docs/BENCHMARKS.md), so it keeps the scalar loop.
/// `x`, `out`: same length (the shorter one bounds the work).
#[cfg_attr(not(target_arch = "arm"), inline(always))]
#[cfg_attr(target_arch = "arm", inline)]
pub fn silu_into(x: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "arm")]
    for (o, &v) in out.iter_mut().zip(x) {
        *o = crate::act::silu(v);
    }
    #[cfg(not(target_arch = "arm"))]
    silu8_into(x, out);
}

/// [`silu_into`] with the kernels `k` chooses, the same bits with any: with an AVX2 token the same
/// source compiled with AVX2 enabled (each eight-lane step one `ymm` operation instead of two
/// SSE2 ones; still no fused multiply–add, which AVX2 does not enable), else [`silu_into`] as
/// the build compiles it. The f32 walk's SiLU on a host.
#[cfg_attr(not(target_arch = "arm"), inline(always))]
#[cfg_attr(target_arch = "arm", inline)]
#[cfg_attr(target_arch = "x86_64", allow(unsafe_code))]
pub fn silu_into_with(k: crate::kernels::Kernels, x: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if let crate::kernels::Kernels::Avx2(_) = k {
        // SAFETY: the token proves the CPU has AVX2, the one requirement of calling a function
        // compiled with `target_feature(enable = "avx2")`.
        return unsafe { silu_into_avx2(x, out) };
    }
    let _ = k;
    silu_into(x, out)
}

/// [`silu_into`] compiled with AVX2 enabled (it is inlined here).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn silu_into_avx2(x: &[f32], out: &mut [f32]) {
    silu_into(x, out)
}

/// `out[i] = silu(x[i])` ([`silu`](crate::act::silu), the same bits), eight at a time with
/// [`expf8`] and the tail one by one. `x`, `out`: same length (the shorter one bounds the work).
#[cfg_attr(not(target_arch = "arm"), inline(always))]
#[cfg_attr(target_arch = "arm", inline)]
pub fn silu8_into(x: &[f32], out: &mut [f32]) {
    let n = x.len().min(out.len());
    let (x, out) = (&x[..n], &mut out[..n]);
    let mut xs = x.chunks_exact(LANES);
    let mut os = out.chunks_exact_mut(LANES);
    for (xc, oc) in (&mut xs).zip(&mut os) {
        // silu(x) = x / (1 + e^(−x)), as `net::silu`; whole 8-lane arrays, so that every step is
        // one vector operation.
        let mut v = [0.0f32; LANES];
        v.copy_from_slice(xc);
        let e = expf8(v.map(|a| -a));
        let mut y = [0.0f32; LANES];
        for ((o, &a), &ea) in y.iter_mut().zip(&v).zip(&e) {
            *o = a / (1.0 + ea);
        }
        oc.copy_from_slice(&y);
    }
    for (o, &v) in os.into_remainder().iter_mut().zip(xs.remainder()) {
        *o = crate::act::silu(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::act::silu;

    /// The thresholds of libm's `expf` and of [`expf8`] (bits of |x|), each tried ± a few ulps with
    /// both signs.
    const EDGES: [u32; 12] = [
        0x0000_0000, // ±0
        0x0080_0000, // smallest normal
        0x3900_0000, // libm: at or below, 1 + x
        0x3eb1_7218, // libm: above, k = ±1
        0x3f85_1592, // libm: above, k rounded
        0x42ac_0000, // 86: above, expf8 asks libm
        0x42ae_ac50, // libm: below −87.33655 the result is subnormal
        0x42b1_7218, // libm: above 88.72284 it overflows
        0x42cf_f1b5, // libm: below −103.97208 it is 0
        0x7f7f_ffff, // largest finite
        0x7f80_0000, // ∞
        0x7fc0_0000, // quiet NaN
    ];

    fn same(a: f32, b: f32) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    /// Bit patterns: every 2^`stride_log2`-th one (with a per-stride offset so the low bits vary
    /// too), every edge ± 16 ulps with both signs, and multiples of ln2/2 (where k changes) ± 4 ulps.
    fn sample(stride_log2: u32) -> Vec<f32> {
        let mut v = Vec::new();
        let stride = 1u64 << stride_log2;
        let mut b = 0u64;
        let mut i = 0u64;
        while b < 1 << 32 {
            v.push(f32::from_bits((b + (i * 2_654_435_761) % stride) as u32));
            b += stride;
            i += 1;
        }
        for e in EDGES {
            for d in -16i64..=16 {
                let h = e as i64 + d;
                if (0..=0x7fff_ffff).contains(&h) {
                    v.push(f32::from_bits(h as u32));
                    v.push(f32::from_bits(h as u32 | 0x8000_0000));
                }
            }
        }
        for j in -260i32..=260 {
            let m = j as f32 * core::f32::consts::LN_2 * 0.5;
            for d in -4i32..=4 {
                v.push(f32::from_bits(m.to_bits().wrapping_add(d as u32)));
            }
        }
        v
    }

    /// Checks [`expf8`] against `libm::expf` on `xs`, in groups of eight, each value also placed
    /// in a lane next to a special lane (NaN) so both the fast and the mixed path see it.
    fn check_expf(xs: &[f32]) -> usize {
        let mut bad = 0;
        for chunk in xs.chunks(LANES) {
            let mut a = [0.5f32; LANES];
            a[..chunk.len()].copy_from_slice(chunk);
            let mut b = a;
            b[LANES - 1] = f32::NAN;
            for lanes in [a, b] {
                let got = expf8(lanes);
                for (&x, &g) in lanes.iter().zip(&got) {
                    let want = libm::expf(x);
                    if !same(g, want) {
                        if bad < 10 {
                            eprintln!("expf8({x:e} = {:#010x}) = {g:e}, libm {want:e}", x.to_bits());
                        }
                        bad += 1;
                    }
                }
            }
        }
        bad
    }

    #[test]
    fn constants_are_libms() {
        let bits = [LN2_HI, LN2_LO, INV_LN2, P1, P2].map(f32::to_bits);
        assert_eq!(bits, [0x3f31_7200, 0x35bf_be8e, 0x3fb8_aa3b, 0x3e2a_aa8f, 0xbb35_5215]);
        let bounds = [ABS_TINY, ABS_0_5_LN2, ABS_1_5_LN2, ABS_FAST].map(f32::to_bits);
        assert_eq!(bounds, [0x3900_0000, 0x3eb1_7218, 0x3f85_1592, 0x42ac_0000]);
    }

    #[test]
    fn expf8_equals_libm_on_a_dense_sample_and_every_edge() {
        let xs = sample(12);
        assert!(xs.len() > 1 << 20);
        assert_eq!(check_expf(&xs), 0);
    }

    #[test]
    fn expf8_lanes_are_independent() {
        // A special value in any lane leaves the others on the fast path's bits.
        let base = [-3.0f32, -0.1, 0.0, 1e-6, 0.3, 1.0, 5.0, 40.0];
        for (i, special) in
            [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -87.5, 88.8, -200.0].into_iter().enumerate()
        {
            let mut x = base;
            x[i % LANES] = special;
            let got = expf8(x);
            for (&v, &g) in x.iter().zip(&got) {
                assert!(same(g, libm::expf(v)), "expf8 lane {v} gave {g}");
            }
        }
    }

    #[test]
    fn silu8_into_equals_silu_bitwise() {
        let xs = sample(15);
        // Lengths with every tail 0..8, over a slice that also starts off the 8-grid.
        for (start, len) in [(0, xs.len()), (3, xs.len() - 3), (5, 13), (0, 7), (1, 0)] {
            let x = &xs[start..start + len];
            let mut out = vec![0.0f32; len];
            silu8_into(x, &mut out);
            for (&v, &o) in x.iter().zip(&out) {
                assert!(same(o, silu(v)), "silu8_into({v:e}) = {o:e}, silu {:e}", silu(v));
            }
            let mut dispatched = vec![0.0f32; len];
            silu_into(x, &mut dispatched);
            assert!(out.iter().zip(&dispatched).all(|(&a, &b)| same(a, b)));
            // The AVX2 build of the same source, where the CPU has AVX2.
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: checked just above.
                #[allow(unsafe_code)]
                let k = crate::kernels::Kernels::Avx2(unsafe { crate::kernels::Avx2::new_unchecked() });
                let mut avx2 = vec![0.0f32; len];
                silu_into_with(k, x, &mut avx2);
                for (&v, (&a, &b)) in x.iter().zip(out.iter().zip(&avx2)) {
                    assert!(same(a, b), "AVX2 silu({v:e}) = {b:e}, portable {a:e}");
                }
            } else {
                std::println!("skipped: this CPU has no AVX2, the AVX2 SiLU cannot run here");
            }
        }
    }

    /// All 2^32 bit patterns against `libm::expf`. Minutes in release, far longer in debug:
    /// `cargo test -p tinyscore-engine --release -- --ignored expf`.
    #[test]
    #[ignore]
    fn expf8_equals_libm_on_every_f32() {
        let start = std::time::Instant::now();
        let mut bad = 0u64;
        let mut first = None;
        let mut b = 0u64;
        while b < 1 << 32 {
            let mut x = [0.0f32; LANES];
            for (j, v) in x.iter_mut().enumerate() {
                *v = f32::from_bits((b + j as u64) as u32);
            }
            let got = expf8(x);
            for (&v, &g) in x.iter().zip(&got) {
                if !same(g, libm::expf(v)) {
                    bad += 1;
                    first.get_or_insert(v.to_bits());
                }
            }
            b += LANES as u64;
        }
        eprintln!("all 2^32 inputs: {bad} mismatches ({:.1} s)", start.elapsed().as_secs_f64());
        assert_eq!(bad, 0, "first mismatch at bits {first:#010x?}");
    }
}
