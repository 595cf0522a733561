//! The f32 dot products of [`super::dot_block`] with AVX2 on x86-64 hosts (f32 or int8 weights,
//! f32 activations), in the engine's one summation order — eight lanes over the columns, combined
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
}
