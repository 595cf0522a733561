//! The f32 dot products of [`super::dot_block`] with NEON on AArch64 (f32 or int8 weights, f32
//! activations), in the engine's one summation order — eight lanes over the columns, combined as
//! ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)), then the tail in increasing column. The
//! eight lanes are two `q` registers (lanes 0–3 and 4–7); the combination is two pairwise adds
//! (`faddp`, which adds exactly those neighbours: [l0+l1, l2+l3, l4+l5, l6+l7], then
//! [(l0+l1)+(l2+l3), (l4+l5)+(l6+l7), ·, ·]) and one scalar add. Separate multiply and add
//! (`fmul`, `fadd`), no fused multiply–add, so the bits are the portable kernel's.
//!
//! Run only with a [`Neon`] token (`crate::kernels`). NEON is part of every AArch64 CPU that
//! runs Linux (the `aarch64-unknown-linux-gnu` target enables it), so the token is a formality
//! there; it keeps the choice explicit like the AVX2 one. Tests: the unit test below holds the
//! kernel against the portable [`super::dot_block`] on random sizes and values (under
//! `qemu-aarch64` in `.ci/run`); `tools/tests/batch.rs` compares whole networks where the CLI runs.
#![allow(unsafe_code)]
// The kernels index small arrays of registers by row and vector; loops over indices say that best.
#![allow(clippy::needless_range_loop)]

use core::arch::aarch64::*;

use crate::kernels::Neon;

/// How weights of one storage type become eight f32 lanes (two registers).
pub trait Weights: Copy {
    /// Bytes per weight.
    const SIZE: usize;
    /// The weight at `p` as f32 (exact, like the portable `decode`).
    ///
    /// # Safety
    /// `p` points to `SIZE` readable bytes.
    unsafe fn one(p: *const u8) -> f32;
    /// Eight weights from `p` (8·`SIZE` readable bytes), lanes 0–3 and 4–7.
    ///
    /// # Safety
    /// As [`Weights::one`], for eight weights; the CPU has NEON.
    unsafe fn eight(p: *const u8) -> (float32x4_t, float32x4_t);
}

/// f32 weights (little-endian, like every AArch64 Linux load).
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
    #[target_feature(enable = "neon")]
    unsafe fn eight(p: *const u8) -> (float32x4_t, float32x4_t) {
        // `ld1` has no alignment requirement for f32 elements beyond the byte, and the weights
        // are little-endian like the target.
        let p = p as *const f32;
        (vld1q_f32(p), vld1q_f32(p.add(4)))
    }
}

impl Weights for I8 {
    const SIZE: usize = 1;
    #[inline]
    unsafe fn one(p: *const u8) -> f32 {
        (*p as i8) as f32
    }
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn eight(p: *const u8) -> (float32x4_t, float32x4_t) {
        // Eight int8 → int16 → two int32×4 → f32 (exact: |w| ≤ 128).
        let w16 = vmovl_s8(vld1_s8(p as *const i8));
        (vcvtq_f32_s32(vmovl_s16(vget_low_s16(w16))), vcvtq_f32_s32(vmovl_high_s16(w16)))
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
    _: Neon,
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
    // SAFETY: the token proves NEON; the asserts above give every read its bounds (the kernel
    // reads `W::SIZE·cols` bytes of each row and `cols` values of each vector).
    unsafe { dot_block_neon::<W, R, K>(rows.map(|r| r.as_ptr()), xs.map(|x| x.as_ptr()), cols) }
}

#[target_feature(enable = "neon")]
unsafe fn dot_block_neon<W: Weights, const R: usize, const K: usize>(
    rows: [*const u8; R],
    xs: [*const f32; K],
    cols: usize,
) -> [[f32; K]; R] {
    let full = cols / 8 * 8;
    let zero = vdupq_n_f32(0.0);
    let mut lo = [[zero; K]; R];
    let mut hi = [[zero; K]; R];
    let mut c = 0;
    while c < full {
        let mut xlo = [zero; K];
        let mut xhi = [zero; K];
        for i in 0..K {
            xlo[i] = vld1q_f32(xs[i].add(c));
            xhi[i] = vld1q_f32(xs[i].add(c + 4));
        }
        for r in 0..R {
            let (wlo, whi) = W::eight(rows[r].add(W::SIZE * c));
            for i in 0..K {
                lo[r][i] = vaddq_f32(lo[r][i], vmulq_f32(wlo, xlo[i]));
                hi[r][i] = vaddq_f32(hi[r][i], vmulq_f32(whi, xhi[i]));
            }
        }
        c += 8;
    }
    let mut out = [[0.0f32; K]; R];
    for r in 0..R {
        for i in 0..K {
            // [l0+l1, l2+l3, l4+l5, l6+l7], then [(l0+l1)+(l2+l3), (l4+l5)+(l6+l7), …].
            let p = vpaddq_f32(lo[r][i], hi[r][i]);
            let p = vpaddq_f32(p, p);
            let mut v = vgetq_lane_f32::<0>(p) + vgetq_lane_f32::<1>(p);
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

    #[test]
    fn neon_block_equals_the_portable_block_bit_for_bit() {
        let tok = Neon::new();
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
            // Misaligned f32 rows: one byte into the buffer.
            let mut shifted = std::vec![0u8; 1];
            shifted.extend_from_slice(&bytes[..4 * cols]);
            let got = dot_block::<F32, 1, 1>(tok, [&shifted[1..]], [&x[..cols]], cols);
            assert_eq!(got[0][0].to_bits(), dot::<4>(&bytes[..4 * cols], &x[..cols], dec).to_bits());
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
