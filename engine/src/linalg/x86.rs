//! The f32 dot products of [`super::dot_block`] with AVX2 on x86-64 hosts (f32, f16 or int8
//! weights, f32 activations), in the engine's one summation order — eight lanes over the columns, combined
//! as ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)), then the tail in increasing column. The
//! eight lanes are one `ymm` register; the combination is two `vhaddps` (which add exactly those
//! neighbours) and one add of the two 128-bit halves. Separate multiply and add, no FMA.
//!
//! Run only with an [`Avx2`] token (`crate::kernels`), so every `#[target_feature(enable =
//! "avx2")]` function here runs on a CPU that has it. Tests: the unit test below holds the kernel
//! against the portable [`super::dot_block`] on random sizes and values (it runs where the test
//! machine has AVX2, and says so when it does not); `tools/tests/batch.rs` compares whole networks.
#![allow(unsafe_code)]
// The kernels index small arrays of registers by row and vector; loops over indices say that best.
#![allow(clippy::needless_range_loop)]

use core::arch::x86_64::*;
use core::marker::PhantomData;

use crate::kernels::Avx2;

/// How weights of one storage type become eight f32 lanes.
pub trait Weights: Copy {
    /// Bytes per weight.
    const SIZE: usize;
    /// The weight at `p` as f32 (exact, like the portable `decode`).
    ///
    /// # Safety
    /// `p` points to `SIZE` readable bytes.
    unsafe fn one(p: *const u8) -> f32;
    /// Eight weights from `p` (8·`SIZE` readable bytes).
    ///
    /// # Safety
    /// As [`Weights::one`], for eight weights; the CPU has AVX2.
    unsafe fn eight(p: *const u8) -> __m256;
}

/// f32 weights (little-endian, like every x86-64 load).
#[derive(Clone, Copy, Debug)]
pub struct F32;
/// int8 weights (the per-row scale is applied by the caller, after the sum).
#[derive(Clone, Copy, Debug)]
pub struct I8;

impl Weights for F32 {
    const SIZE: usize = 4;
    #[inline]
    unsafe fn one(p: *const u8) -> f32 {
        f32::from_le_bytes(core::ptr::read_unaligned(p as *const [u8; 4]))
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn eight(p: *const u8) -> __m256 {
        _mm256_loadu_ps(p as *const f32)
    }
}

/// f16 weights (IEEE binary16, little-endian), widened exactly to f32 with AVX2 integer and
/// float operations (no F16C needed): see [`F16::eight`].
#[derive(Clone, Copy, Debug)]
pub struct F16;

/// 2^112 as f32: scales a binary16 magnitude whose bits sit 13 places up (in the f32 field
/// positions) to its value.
const TWO_POW_112: f32 = 5.192_297e33; // 0x77800000

impl Weights for F16 {
    const SIZE: usize = 2;
    #[inline]
    unsafe fn one(p: *const u8) -> f32 {
        crate::linalg::decode_f16(&core::ptr::read_unaligned(p as *const [u8; 2]))
    }
    /// Eight binary16 values as f32, bit for bit [`crate::linalg::decode_f16`] (tested on all
    /// 65 536 patterns). Each value sign-extended to 32 bits and moved up 13 places, with bits
    /// 30..28 cleared, is an f32 with the value's sign and its 15 magnitude bits in the f32 field
    /// positions, whose exponent is 112 too small (an f16 subnormal becomes an f32 subnormal): one
    /// exact multiply by 2^112 fixes it (the product is a normal f32, or ±0). Infinities and
    /// NaNs (exponent 31; rare, so a branch) take the all-ones exponent instead, NaNs with the
    /// quiet bit set, as `half` does.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn eight(p: *const u8) -> __m256 {
        let h = _mm256_cvtepi16_epi32(_mm_loadu_si128(p as *const __m128i));
        let moved = _mm256_and_si256(_mm256_slli_epi32::<13>(h), _mm256_set1_epi32(0x8fff_e000_u32 as i32));
        let value = _mm256_mul_ps(_mm256_castsi256_ps(moved), _mm256_set1_ps(TWO_POW_112));
        let mag = _mm256_and_si256(h, _mm256_set1_epi32(0x7fff));
        let special = _mm256_cmpgt_epi32(mag, _mm256_set1_epi32(0x7bff));
        if _mm256_testz_si256(special, special) != 0 {
            return value;
        }
        // Exponent 31: infinity (mantissa 0) or NaN (quiet bit forced); the sign stays in `moved`.
        let nan = _mm256_cmpgt_epi32(mag, _mm256_set1_epi32(0x7c00));
        let wide = _mm256_or_si256(
            _mm256_or_si256(moved, _mm256_set1_epi32(0x7f80_0000)),
            _mm256_and_si256(nan, _mm256_set1_epi32(0x0040_0000)),
        );
        _mm256_castsi256_ps(_mm256_blendv_epi8(_mm256_castps_si256(value), wide, special))
    }
}

impl Weights for I8 {
    const SIZE: usize = 1;
    #[inline]
    unsafe fn one(p: *const u8) -> f32 {
        (*p as i8) as f32
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn eight(p: *const u8) -> __m256 {
        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p as *const __m128i)))
    }
}

/// [`super::dot_block`] for `R` rows and `K` vectors: `out[r][i]` = the engine's dot of
/// `rows[r]` (weights of type `W`) with `xs[i]`, bit for bit. All vectors are `cols` long and all
/// rows hold `cols` weights.
///
/// # Panics
/// If a row or vector is shorter than that (a caller bug).
#[inline]
pub fn dot_block<W: Weights, const R: usize, const K: usize>(
    _: Avx2,
    rows: [&[u8]; R],
    xs: [&[f32]; K],
    cols: usize,
) -> [[f32; K]; R] {
    for r in rows {
        assert!(r.len() >= W::SIZE * cols, "row shorter than its columns");
    }
    for x in xs {
        assert!(x.len() >= cols, "vector shorter than the columns");
    }
    // SAFETY: the token proves AVX2; the asserts above give every read its bounds (the kernel
    // reads `W::SIZE·cols` bytes of each row and `cols` values of each vector).
    unsafe { dot_block_avx2::<W, R, K>(rows.map(|r| r.as_ptr()), xs.map(|x| x.as_ptr()), cols) }
}

#[target_feature(enable = "avx2")]
unsafe fn dot_block_avx2<W: Weights, const R: usize, const K: usize>(
    rows: [*const u8; R],
    xs: [*const f32; K],
    cols: usize,
) -> [[f32; K]; R] {
    let full = cols / 8 * 8;
    let mut acc = [[_mm256_setzero_ps(); K]; R];
    let mut c = 0;
    while c < full {
        let mut xv = [_mm256_setzero_ps(); K];
        for i in 0..K {
            xv[i] = _mm256_loadu_ps(xs[i].add(c));
        }
        for r in 0..R {
            let w = W::eight(rows[r].add(W::SIZE * c));
            for i in 0..K {
                acc[r][i] = _mm256_add_ps(acc[r][i], _mm256_mul_ps(w, xv[i]));
            }
        }
        c += 8;
    }
    let mut out = [[0.0f32; K]; R];
    for r in 0..R {
        for i in 0..K {
            // [l0+l1, l2+l3, ·, · | l4+l5, l6+l7, ·, ·], then [(l0+l1)+(l2+l3), … | (l4+l5)+(l6+l7), …].
            let h = _mm256_hadd_ps(acc[r][i], acc[r][i]);
            let h = _mm256_hadd_ps(h, h);
            let s = _mm_add_ss(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
            let mut v = _mm_cvtss_f32(s);
            for c in full..cols {
                v += W::one(rows[r].add(W::SIZE * c)) * *xs[i].add(c);
            }
            out[r][i] = v;
        }
    }
    out
}

/// `outs[i·so + r] += d(r, i)` for every row `r < rows` and vector `i < n`, where d(r, i) is the
/// engine's dot of row r of `w` (`rows` × `cols` weights of type `W`, row-major; unscaled) with
/// `xs[i·sx..i·sx + cols]`, bit for bit.
///
/// The batch kernel of the f32 path: blocks of 4 rows × 3 vectors share each pass over the
/// columns (twelve `ymm` accumulators, each holding its own (row, vector) pair's eight lanes in
/// the engine's order; four weight and three activation loads per twelve multiplies and twelve
/// adds). The four rows of a vector are reduced together, each with the engine's tree
/// ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)): two `vhaddps` of row pairs, one of their
/// results and one add of the halves give the four sums in the lanes of one `xmm`; the tail
/// columns are then added in increasing column, four rows at a time.
///
/// # Panics
/// If `w`, `xs` or `outs` is shorter than those indices need (a caller bug).
#[allow(clippy::too_many_arguments)]
pub fn matmul<W: Weights>(
    _: Avx2,
    w: &[u8],
    rows: usize,
    cols: usize,
    xs: &[f32],
    sx: usize,
    outs: &mut [f32],
    so: usize,
    n: usize,
) {
    if rows == 0 || n == 0 {
        return;
    }
    assert!(w.len() >= W::SIZE * rows * cols, "weights shorter than rows × cols");
    assert!(xs.len() >= (n - 1) * sx + cols, "vectors shorter than n × cols");
    assert!(outs.len() >= (n - 1) * so + rows, "outputs shorter than n × rows");
    // SAFETY: AVX2 by the token; the asserts bound every read of `w` (SIZE·rows·cols bytes), of
    // `xs` ((n−1)·sx + cols values) and every read and write of
    // `outs` ((n−1)·so + rows values).
    unsafe { matmul_avx2::<W>(w.as_ptr(), rows, cols, xs.as_ptr(), sx, outs.as_mut_ptr(), so, n) }
}

/// Vectors [`matmul`] takes through all the rows before the next ones (24 vectors of up to 128
/// columns stay in L1 while the weights stream past them).
const CHUNK: usize = 24;

#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn matmul_avx2<W: Weights>(
    w: *const u8,
    rows: usize,
    cols: usize,
    xs: *const f32,
    sx: usize,
    outs: *mut f32,
    so: usize,
    n: usize,
) {
    let mut i0 = 0;
    while i0 < n {
        let end = (i0 + CHUNK).min(n);
        let mut r = 0;
        while r < rows {
            let rr = (rows - r).min(4);
            let at = Panel::<W> { w: w.add(W::SIZE * r * cols), cols, r, xs, sx, outs, so, ty: PhantomData };
            match rr {
                4 => at.vectors::<4>(i0, end),
                3 => at.vectors::<3>(i0, end),
                2 => at.vectors::<2>(i0, end),
                _ => at.vectors::<1>(i0, end),
            }
            r += rr;
        }
        i0 = end;
    }
}

/// Rows `r..r + R` (R ≤ 4) of [`matmul_avx2`]: where their weights start and where their vectors
/// and outputs are.
struct Panel<W> {
    w: *const u8,
    cols: usize,
    r: usize,
    xs: *const f32,
    sx: usize,
    outs: *mut f32,
    so: usize,
    ty: PhantomData<W>,
}

impl<W: Weights> Panel<W> {
    /// Vectors `i0..end` against the panel's `R` rows, three at a time.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn vectors<const R: usize>(&self, i0: usize, end: usize) {
        let mut i = i0;
        while i + 3 <= end {
            self.block::<R, 3>(i);
            i += 3;
        }
        match end - i {
            2 => self.block::<R, 2>(i),
            1 => self.block::<R, 1>(i),
            _ => {}
        }
    }

    /// The panel's `R` rows × vectors `i..i + K`, added to their outputs.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn block<const R: usize, const K: usize>(&self, i: usize) {
        let cols = self.cols;
        let rs = W::SIZE * cols; // bytes per row
        let x: [*const f32; K] = core::array::from_fn(|q| self.xs.add((i + q) * self.sx));
        let full = cols / 8 * 8;
        let mut acc = [[_mm256_setzero_ps(); R]; K];
        let mut c = 0;
        while c < full {
            let mut xv = [_mm256_setzero_ps(); K];
            for q in 0..K {
                xv[q] = _mm256_loadu_ps(x[q].add(c));
            }
            for r in 0..R {
                let wv = W::eight(self.w.add(r * rs + W::SIZE * c));
                for q in 0..K {
                    acc[q][r] = _mm256_add_ps(acc[q][r], _mm256_mul_ps(wv, xv[q]));
                }
            }
            c += 8;
        }
        for q in 0..K {
            let a = |r: usize| if r < R { acc[q][r] } else { _mm256_setzero_ps() };
            // [l0+l1, l2+l3 of rows 0 and 1 | l4+l5, l6+l7 of rows 0 and 1], the same of rows 2, 3;
            // then [(l0+l1)+(l2+l3) of rows 0–3 | (l4+l5)+(l6+l7) of rows 0–3]; the halves added.
            let h01 = _mm256_hadd_ps(a(0), a(1));
            let h23 = _mm256_hadd_ps(a(2), a(3));
            let h = _mm256_hadd_ps(h01, h23);
            let mut s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
            for c in full..cols {
                let wt = |r: usize| if r < R { W::one(self.w.add(r * rs + W::SIZE * c)) } else { 0.0 };
                let wc = _mm_setr_ps(wt(0), wt(1), wt(2), wt(3));
                s = _mm_add_ps(s, _mm_mul_ps(wc, _mm_set1_ps(*x[q].add(c))));
            }
            let o = self.outs.add((i + q) * self.so + self.r);
            if R == 4 {
                _mm_storeu_ps(o, _mm_add_ps(_mm_loadu_ps(o), s));
            } else {
                let mut v = [0.0f32; 4];
                _mm_storeu_ps(v.as_mut_ptr(), s);
                for r in 0..R {
                    *o.add(r) += v[r];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::test_rng::Rng;
    use crate::linalg::{dot, dot_block as portable_block};

    fn token() -> Option<Avx2> {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: checked just above.
            Some(unsafe { Avx2::new_unchecked() })
        } else {
            std::println!("skipped: this CPU has no AVX2, the kernels cannot run here");
            None
        }
    }

    #[test]
    fn f32_block_equals_the_portable_block_bit_for_bit() {
        let Some(tok) = token() else { return };
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for case in 0..400 {
            let cols = if case < 40 { case } else { (rng.next() % 300) as usize };
            let w: std::vec::Vec<f32> = (0..4 * cols).map(|_| rng.f32()).collect();
            let bytes: std::vec::Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
            let x: std::vec::Vec<f32> = (0..2 * cols).map(|_| rng.f32()).collect();
            let rows: [&[u8]; 4] = core::array::from_fn(|r| &bytes[4 * r * cols..4 * (r + 1) * cols]);
            let xs: [&[f32]; 2] = [&x[..cols], &x[cols..]];
            let dec = |b: &[u8]| f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let want = portable_block::<4, 4, 2>(rows, xs, dec);
            let got = dot_block::<F32, 4, 2>(tok, rows, xs, cols);
            for r in 0..4 {
                for i in 0..2 {
                    assert_eq!(got[r][i].to_bits(), want[r][i].to_bits(), "cols {cols} r {r} i {i}");
                    assert_eq!(got[r][i].to_bits(), dot::<4>(rows[r], xs[i], dec).to_bits());
                }
            }
            // int8 weights: the same bytes read as int8.
            let q: std::vec::Vec<u8> = (0..3 * cols).map(|_| rng.next() as u8).collect();
            let qrows: [&[u8]; 3] = core::array::from_fn(|r| &q[r * cols..(r + 1) * cols]);
            let dq = |b: &[u8]| (b[0] as i8) as f32;
            let want = portable_block::<1, 3, 1>(qrows, [&x[..cols]], dq);
            let got = dot_block::<I8, 3, 1>(tok, qrows, [&x[..cols]], cols);
            for r in 0..3 {
                assert_eq!(got[r][0].to_bits(), want[r][0].to_bits(), "int8 cols {cols} r {r}");
            }
        }
    }

    /// [`F16::eight`] widens every binary16 pattern (finite, subnormal, ±0, ±∞, NaNs) to the
    /// bits of the portable decoder, in every lane.
    #[test]
    fn f16_widening_equals_the_portable_decoder_on_every_pattern() {
        if token().is_none() {
            return;
        }
        for first in (0..=u16::MAX as u32).step_by(8) {
            let halves: [u16; 8] = core::array::from_fn(|i| (first as u16).wrapping_add(i as u16 * 0x2001));
            let bytes: std::vec::Vec<u8> = halves.iter().flat_map(|h| h.to_le_bytes()).collect();
            // SAFETY: the token proves AVX2; `bytes` holds the eight weights' 16 bytes.
            let got: [f32; 8] = unsafe { core::mem::transmute(F16::eight(bytes.as_ptr())) };
            for (i, (g, h)) in got.iter().zip(halves).enumerate() {
                let want = crate::linalg::decode_f16(&h.to_le_bytes());
                assert_eq!(g.to_bits(), want.to_bits(), "pattern {h:#06x} in lane {i}");
            }
        }
    }

    /// [`matmul`] against the portable [`dot`] of every (row, vector) pair added to random
    /// outputs: random rows (every remainder of 4), columns (every remainder of 8), vector
    /// counts (every remainder of 3, and more than one chunk) and strides.
    #[test]
    fn matmul_equals_the_portable_dots_bit_for_bit() {
        let Some(tok) = token() else { return };
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || a.is_nan() && b.is_nan();
        for case in 0..300 {
            let rows = 1 + (rng.next() % 13) as usize;
            let cols = if case < 20 { case } else { (rng.next() % 200) as usize };
            let n = 1 + (rng.next() % if case % 5 == 0 { 60 } else { 10 }) as usize;
            let sx = cols + (rng.next() % 3) as usize;
            let so = rows + (rng.next() % 3) as usize;
            let w: std::vec::Vec<f32> = (0..rows * cols).map(|_| rng.f32()).collect();
            let bytes: std::vec::Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
            let q: std::vec::Vec<u8> = (0..rows * cols).map(|_| rng.next() as u8).collect();
            let xs: std::vec::Vec<f32> = (0..(n - 1) * sx + cols).map(|_| rng.f32()).collect();
            let init: std::vec::Vec<f32> = (0..(n - 1) * so + rows).map(|_| rng.f32()).collect();
            let dec = |b: &[u8]| f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let dq = |b: &[u8]| (b[0] as i8) as f32;
            let mut got = init.clone();
            matmul::<F32>(tok, &bytes, rows, cols, &xs, sx, &mut got, so, n);
            let mut got8 = init.clone();
            matmul::<I8>(tok, &q, rows, cols, &xs, sx, &mut got8, so, n);
            // f16 weights: random patterns (NaNs and infinities included, now and then).
            let h: std::vec::Vec<u8> = (0..2 * rows * cols).map(|_| rng.next() as u8).collect();
            let dh = |b: &[u8]| crate::linalg::decode_f16(b);
            let mut got16 = init.clone();
            matmul::<F16>(tok, &h, rows, cols, &xs, sx, &mut got16, so, n);
            for i in 0..n {
                let x = &xs[i * sx..i * sx + cols];
                for r in 0..rows {
                    let o = i * so + r;
                    let want = init[o] + dot::<4>(&bytes[4 * r * cols..4 * (r + 1) * cols], x, dec);
                    assert!(same(got[o], want), "f32 rows {rows} cols {cols} n {n} r {r} i {i}");
                    let want = init[o] + dot::<1>(&q[r * cols..(r + 1) * cols], x, dq);
                    assert!(same(got8[o], want), "int8 rows {rows} cols {cols} n {n} r {r} i {i}");
                    let want = init[o] + dot::<2>(&h[2 * r * cols..2 * (r + 1) * cols], x, dh);
                    assert!(same(got16[o], want), "f16 rows {rows} cols {cols} n {n} r {r} i {i}");
                }
                // Outputs between vectors (the stride's gap) are left alone.
                for o in i * so + rows..((i + 1) * so).min(init.len()) {
                    assert_eq!(got[o].to_bits(), init[o].to_bits());
                }
            }
        }
    }
}
