//! The int8 matmul of the `w8a8` path with NEON on AArch64, the exact twin of the portable
//! [`super::dot_i8`] per row and vector:
//!
//! * [`matmul_i8`]: blocks of up to four rows × four vectors; per 16 columns each (row, vector)
//!   pair takes two widening multiplies (`smull`/`smull2`: eight int8 × int8 products as int16,
//!   exact since |w·x| ≤ 2^14) and two pairwise widening accumulates (`sadalp`: adjacent int16
//!   products summed into the four int32 lanes). A last group of eight columns takes one of
//!   each, the last < 8 columns are summed as scalars; the lanes are summed at the end (`addv`).
//!   Baseline Advanced SIMD only: no `sdot` (the optional dot-product extension), so it runs on
//!   every AArch64 Linux CPU.
//!
//! Integer sums are exact and never near overflow (|Σ| ≤ 512·128·128 = 2^23), so any order gives
//! [`super::dot_i8`]'s value: the same bits as the portable and AVX2 kernels.
//!
//! Run only with a [`Neon`] token (`crate::kernels`). Tests: the unit test below holds the kernel
//! against [`super::dot_i8`] on random shapes, every remainder of 16 and 8 columns and the extreme
//! values (under `qemu-aarch64` in `scripts/test.sh`); the aarch64 `tinyscore sample` of a w8a8
//! model gives the x86-64 bytes (`scripts/test.sh`, `bench/aarch64_insns.py`).
#![allow(unsafe_code)]
// The kernel indexes small arrays of registers by row and vector; loops over indices say that best.
#![allow(clippy::needless_range_loop)]

use core::arch::aarch64::*;

use crate::kernels::Neon;

/// `acc[s·so + r] = Σ_c w[r·cols + c]·x[s·sx + c]` (int8 weights as stored bytes, int8
/// activations, exact int32 sums) for every row `r < rows` and vector `s < n`.
///
/// # Panics
/// If `w`, `x` or `acc` is shorter than those indices need (a caller bug).
#[allow(clippy::too_many_arguments)]
pub fn matmul_i8(
    _: Neon,
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[i8],
    sx: usize,
    n: usize,
    acc: &mut [i32],
    so: usize,
) {
    if rows == 0 || n == 0 {
        return;
    }
    assert!(w.len() >= rows * cols, "weights shorter than rows × cols");
    assert!(x.len() >= (n - 1) * sx + cols, "activations shorter than n vectors");
    assert!(acc.len() >= (n - 1) * so + rows, "accumulators shorter than n × rows");
    let at = Block { w: w.as_ptr() as *const i8, cols, x: x.as_ptr(), sx, acc: acc.as_mut_ptr(), so };
    let mut s = 0;
    while s < n {
        let ss = (n - s).min(4);
        let mut r = 0;
        while r < rows {
            let rr = if rows - r >= 4 { 4 } else { 1 };
            // SAFETY: NEON by the token; the block reads rows r..r + rr (< rows) of `w`, each
            // `cols` bytes at `r·cols`, and vectors s..s + ss (< n) of `x`, each `cols` values at
            // `s·sx`, and writes `acc` at `s·so + r` for those rows and vectors: all within the
            // lengths asserted above.
            unsafe {
                match (rr, ss) {
                    (4, 4) => at.run::<4, 4>(r, s),
                    (4, 3) => at.run::<4, 3>(r, s),
                    (4, 2) => at.run::<4, 2>(r, s),
                    (4, _) => at.run::<4, 1>(r, s),
                    (_, 4) => at.run::<1, 4>(r, s),
                    (_, 3) => at.run::<1, 3>(r, s),
                    (_, 2) => at.run::<1, 2>(r, s),
                    _ => at.run::<1, 1>(r, s),
                }
            }
            r += rr;
        }
        s += ss;
    }
}

/// The operands of [`matmul_i8`]: the weights (`rows` × `cols`, row-major), the vectors
/// (stride `sx`), the accumulators (vector stride `so`).
struct Block {
    w: *const i8,
    cols: usize,
    x: *const i8,
    sx: usize,
    acc: *mut i32,
    so: usize,
}

impl Block {
    /// Rows `r0..r0 + R` × vectors `s0..s0 + S`.
    ///
    /// # Safety
    /// The CPU has NEON; those rows and vectors are readable (`cols` values each) and their
    /// accumulators writable.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn run<const R: usize, const S: usize>(&self, r0: usize, s0: usize) {
        let cols = self.cols;
        let wr: [*const i8; R] = core::array::from_fn(|r| self.w.add((r0 + r) * cols));
        let xs: [*const i8; S] = core::array::from_fn(|s| self.x.add((s0 + s) * self.sx));
        let mut sum = [[vdupq_n_s32(0); S]; R];
        let mut c = 0;
        while c + 16 <= cols {
            let xv: [int8x16_t; S] = core::array::from_fn(|s| vld1q_s8(xs[s].add(c)));
            for r in 0..R {
                let wv = vld1q_s8(wr[r].add(c));
                let wl = vget_low_s8(wv);
                for s in 0..S {
                    let lo = vmull_s8(wl, vget_low_s8(xv[s]));
                    let hi = vmull_high_s8(wv, xv[s]);
                    sum[r][s] = vpadalq_s16(vpadalq_s16(sum[r][s], lo), hi);
                }
            }
            c += 16;
        }
        if c + 8 <= cols {
            let xv: [int8x8_t; S] = core::array::from_fn(|s| vld1_s8(xs[s].add(c)));
            for r in 0..R {
                let wv = vld1_s8(wr[r].add(c));
                for s in 0..S {
                    sum[r][s] = vpadalq_s16(sum[r][s], vmull_s8(wv, xv[s]));
                }
            }
            c += 8;
        }
        for r in 0..R {
            for s in 0..S {
                let mut v = vaddvq_s32(sum[r][s]);
                for k in c..cols {
                    v += *wr[r].add(k) as i32 * *xs[s].add(k) as i32;
                }
                *self.acc.add((s0 + s) * self.so + r0 + r) = v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::dot_i8;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn int8_matmul_equals_the_portable_dot() {
        let tok = Neon::new();
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for case in 0..400 {
            // Every column count up to 80 (each remainder of 16 and of 8, several times), then
            // random ones up to 520; rows and vectors across every block shape and remainder.
            let rows = 1 + (rng.next() % if case % 3 == 0 { 70 } else { 9 }) as usize;
            let cols = if case < 80 { case } else { (rng.next() % 520) as usize };
            let n = 1 + (rng.next() % if case % 4 == 0 { 40 } else { 11 }) as usize;
            let (sx, so) = (cols + (rng.next() % 5) as usize, rows + (rng.next() % 3) as usize);
            let extreme = |v: u64| match v % 9 {
                0 => -128i8,
                1 => 127,
                _ => v as i8,
            };
            let w: std::vec::Vec<u8> = (0..rows * cols).map(|_| extreme(rng.next()) as u8).collect();
            let x: std::vec::Vec<i8> = (0..n * sx).map(|_| extreme(rng.next())).collect();
            let mut acc = std::vec![i32::MIN; n * so];
            matmul_i8(tok, &w, rows, cols, &x, sx, n, &mut acc, so);
            for s in 0..n {
                for r in 0..rows {
                    let want = dot_i8(&w[r * cols..(r + 1) * cols], &x[s * sx..s * sx + cols]);
                    assert_eq!(acc[s * so + r], want, "rows {rows} cols {cols} n {n} s {s} r {r}");
                }
                for r in rows..so {
                    assert_eq!(acc[s * so + r], i32::MIN, "wrote past the rows");
                }
            }
        }
        // The largest sums: every product −128·−128 (which int16 holds) and −128·127.
        let (w, x) = ([0x80u8; 512], [-128i8; 512]);
        let mut acc = [0i32; 1];
        matmul_i8(tok, &w, 1, 512, &x, 512, 1, &mut acc, 1);
        assert_eq!(acc[0], 512 * 128 * 128);
        let x = [127i8; 512];
        matmul_i8(tok, &w, 1, 512, &x, 512, 1, &mut acc, 1);
        assert_eq!(acc[0], -512 * 128 * 127);
    }
}
