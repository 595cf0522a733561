//! f32 linear algebra over the tensors of a validated model: `out += W·x` for one vector or many
//! ([`MatVec`], implemented for [`Tensor`]) with f32, f16 or int8 weights and f32 activations,
//! in the engine's one summation order ([`dot`], `docs/scorenet.md`), so every target and every
//! kernel gives the same bits.
//!
//! Each fast kernel sits beside its portable twin: [`dot`] and [`dot_block`] (`linalg/dot.rs`,
//! portable, the definition), the Cortex-M4F FPU kernel (`linalg/vfp.rs`, hard-float builds:
//! [`vfp_dot_f32w`], [`vfp_dot_i8w`]), the x86-64 AVX2 kernel ([`x86`]) and the AArch64 NEON
//! kernel (`neon`), the last two chosen at run time by [`Kernels`]. The file format does not depend on this module: `format` gives read access to
//! a tensor's bytes, and the arithmetic lives here.

mod dot;
#[cfg(target_arch = "aarch64")]
pub mod neon;
#[cfg(all(test, any(target_arch = "x86_64", target_arch = "aarch64")))]
mod test_rng;
#[cfg(tinyscore_vfp)]
mod vfp;
#[cfg(target_arch = "x86_64")]
pub mod x86;

pub use dot::{decode_f16, decode_f32, decode_i8, dot, dot_block, dot_finish, DOT_LANES};

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use core::marker::PhantomData;

use crate::format::{DType, Tensor};
#[cfg(target_arch = "x86_64")]
use crate::kernels::Avx2;
use crate::kernels::Kernels;
#[cfg(target_arch = "aarch64")]
use crate::kernels::Neon;

/// `out += W·x` over a tensor of a validated model (`W`: a matrix tensor, `rows × cols`; a vector
/// tensor for [`MatVec::add_to`]). `Model::parse` proved the tensor's lengths; callers pass `x`
/// and `out` at least `cols` and `rows` long (their documented contract, as for slices).
pub trait MatVec {
    /// `out[r] += Σ_c W[r, c]·x[c]` in f32, in the summation order of [`dot`]. Four rows share
    /// each pass over `x` ([`dot_block`]) where SIMD registers hold the lanes, with each row's
    /// bits unchanged.
    fn matvec_acc(&self, x: &[f32], out: &mut [f32]);
    /// [`MatVec::matvec_acc`] for `k` vectors at once: `outs[i·so + r] += Σ_c W[r, c]·xs[i·sx + c]`
    /// for every i < k, each sum in the order of [`dot`], so every vector gets the bits
    /// `matvec_acc` gives it alone.
    fn matmul_acc(&self, xs: &[f32], sx: usize, outs: &mut [f32], so: usize, k: usize);
    /// [`MatVec::matvec_acc`] with the kernels `k` chooses (the same bits with any of them).
    fn matvec_acc_with(&self, k: Kernels, x: &[f32], out: &mut [f32]);
    /// [`MatVec::matmul_acc`] with the kernels `k` chooses (the same bits with any of them).
    fn matmul_acc_with(&self, k: Kernels, xs: &[f32], sx: usize, outs: &mut [f32], so: usize, n: usize);
    /// `out[r] += v[r]`: a vector tensor added to `out`.
    fn add_to(&self, out: &mut [f32]);
}

impl MatVec for Tensor<'_> {
    #[inline(always)]
    fn matvec_acc(&self, x: &[f32], out: &mut [f32]) {
        matvec_acc(self, x, out)
    }
    #[inline(always)]
    fn matmul_acc(&self, xs: &[f32], sx: usize, outs: &mut [f32], so: usize, k: usize) {
        matmul_acc(self, xs, sx, outs, so, k)
    }
    #[inline(always)]
    fn matvec_acc_with(&self, k: Kernels, x: &[f32], out: &mut [f32]) {
        matvec_acc_with(self, k, x, out)
    }
    #[inline(always)]
    fn matmul_acc_with(&self, k: Kernels, xs: &[f32], sx: usize, outs: &mut [f32], so: usize, n: usize) {
        matmul_acc_with(self, k, xs, sx, outs, so, n)
    }
    #[inline(always)]
    fn add_to(&self, out: &mut [f32]) {
        add_to(self, out)
    }
}

/// Whether [`MatVec::matvec_acc`] evaluates four rows per pass over `x` ([`dot_block`]), where
/// SIMD registers hold the lanes (x86-64, AArch64), or one ([`dot`]) elsewhere: on the
/// Cortex-M4F four rows' 32 lanes would fill all 32 of its FPU registers and spill (measured: 7.6
/// instead of 6.1 instructions per MAC). The bits are the same either way.
const BLOCK_ROWS: bool = cfg!(any(target_arch = "x86_64", target_arch = "x86", target_arch = "aarch64"));

/// [`dot`] of a row of f32 weights (`4·x.len()` stored bytes) with `x`: by the Cortex-M4F FPU
/// kernel ([`vfp_dot_f32w`]) where it is built and the row is word aligned, else by the
/// portable loop; the bits are the same.
#[inline(always)]
pub fn dot_f32w(row: &[u8], x: &[f32]) -> f32 {
    match vfp_dot_f32w(row, x) {
        Some(v) => v,
        None => dot::<4>(row, x, decode_f32),
    }
}

/// [`dot`] of a row of int8 weights (`x.len()` stored bytes, unscaled) with `x`: by the FPU
/// kernel ([`vfp_dot_i8w`]) where it is built, else by the portable loop; the same bits.
#[inline(always)]
pub fn dot_i8w(row: &[u8], x: &[f32]) -> f32 {
    match vfp_dot_i8w(row, x) {
        Some(v) => v,
        None => dot::<1>(row, x, decode_i8),
    }
}

/// The Cortex-M4F kernel's [`dot`] of f32 weights (`VLDM`, `VMLA.F32`; `linalg/vfp.rs`), public
/// for the firmware's property test. `None` where it is not built (every target but
/// `thumbv7em-none-eabihf`, and that one at `opt-level` `s` or `z`; see `engine/build.rs`), or
/// when the row is not 4-byte aligned or is shorter than `4·x.len()` bytes.
#[inline(always)]
pub fn vfp_dot_f32w(row: &[u8], x: &[f32]) -> Option<f32> {
    #[cfg(tinyscore_vfp)]
    {
        let full = x.len() / DOT_LANES * DOT_LANES;
        let lanes = vfp::lanes_f32(row, x)?;
        Some(dot_finish::<4>(&lanes, row.get(4 * full..)?, x.get(full..)?, decode_f32))
    }
    #[cfg(not(tinyscore_vfp))]
    {
        let _ = (row, x);
        None
    }
}

/// The Cortex-M4F kernel's [`dot`] of int8 weights (`LDRSB`, `VCVT.F32.S32`, `VMLA.F32`): `None`
/// where it is not built (as [`vfp_dot_f32w`]) or when the row is shorter than `x.len()` bytes.
#[inline(always)]
pub fn vfp_dot_i8w(row: &[u8], x: &[f32]) -> Option<f32> {
    #[cfg(tinyscore_vfp)]
    {
        let full = x.len() / DOT_LANES * DOT_LANES;
        let lanes = vfp::lanes_i8(row, x)?;
        Some(dot_finish::<1>(&lanes, row.get(full..)?, x.get(full..)?, decode_i8))
    }
    #[cfg(not(tinyscore_vfp))]
    {
        let _ = (row, x);
        None
    }
}

// Evaluation on a validated model: `Model::parse` proved data.len() = rows·cols·size and
// scales.len() = 4·rows; callers pass x and out at least cols and rows long.

/// `out[r] += Σ_c W[r, c]·x[c]` in f32, in the summation order of [`dot`]. Four rows share
/// each pass over `x` ([`dot_block`]): four independent chains of additions keep a host's
/// SIMD adders busy, with each row's bits unchanged.
#[cfg_attr(not(target_arch = "arm"), inline(always))]
#[cfg_attr(target_arch = "arm", inline)]
fn matvec_acc(t: &Tensor<'_>, x: &[f32], out: &mut [f32]) {
    if !BLOCK_ROWS {
        return matvec_rows(t, x, out);
    }
    match t.dtype {
        DType::F32 => matvec_with::<4>(t, x, out, |w| f32::from_le_bytes([w[0], w[1], w[2], w[3]])),
        DType::F16 => matvec_with::<2>(t, x, out, decode_f16),
        DType::I8 => matvec_with::<1>(t, x, out, |w| (w[0] as i8) as f32),
        // Parameter tensors; never matrices of the network (validation refuses them there).
        DType::I32 | DType::Lut8 => {
            let cols = t.cols;
            for (r, o) in out[..t.rows].iter_mut().enumerate() {
                for (c, xc) in x[..cols].iter().enumerate() {
                    *o += t.get(r * cols + c) * xc;
                }
            }
        }
    }
}

/// [`MatVec::matvec_acc`] one row at a time (targets without SIMD registers); f32 and int8
/// rows by [`dot_f32w`] and [`dot_i8w`] (the FPU kernel on the Cortex-M4F).
#[inline]
fn matvec_rows(t: &Tensor<'_>, x: &[f32], out: &mut [f32]) {
    let cols = t.cols;
    let x = &x[..cols];
    let out = &mut out[..t.rows];
    match t.dtype {
        DType::F32 => {
            for (o, row) in out.iter_mut().zip(t.data().chunks_exact(4 * cols)) {
                *o += dot_f32w(row, x);
            }
        }
        DType::F16 => {
            for (o, row) in out.iter_mut().zip(t.data().chunks_exact(2 * cols)) {
                *o += dot::<2>(row, x, decode_f16);
            }
        }
        DType::I8 => {
            for (r, (o, row)) in out.iter_mut().zip(t.data().chunks_exact(cols)).enumerate() {
                *o += dot_i8w(row, x) * t.scale(r);
            }
        }
        DType::I32 | DType::Lut8 => {
            for (r, o) in out.iter_mut().enumerate() {
                for (c, xc) in x.iter().enumerate() {
                    *o += t.get(r * cols + c) * xc;
                }
            }
        }
    }
}

#[inline(always)]
fn matvec_with<const S: usize>(
    t: &Tensor<'_>,
    x: &[f32],
    out: &mut [f32],
    decode: impl Fn(&[u8]) -> f32 + Copy,
) {
    let cols = t.cols;
    let x = &x[..cols];
    let out = &mut out[..t.rows];
    let n = S * cols;
    let scaled = t.dtype == DType::I8;
    let mut blocks = out.chunks_exact_mut(4);
    let mut rows = t.data().chunks_exact(4 * n);
    let mut r = 0;
    for (o4, w4) in (&mut blocks).zip(&mut rows) {
        let d = dot_block::<S, 4, 1>([&w4[..n], &w4[n..2 * n], &w4[2 * n..3 * n], &w4[3 * n..]], [x], decode);
        for (j, o) in o4.iter_mut().enumerate() {
            *o += if scaled { d[j][0] * t.scale(r + j) } else { d[j][0] };
        }
        r += 4;
    }
    for (o, w) in blocks.into_remainder().iter_mut().zip(rows.remainder().chunks_exact(n)) {
        let v = dot::<S>(w, x, decode);
        *o += if scaled { v * t.scale(r) } else { v };
        r += 1;
    }
}

/// [`MatVec::matvec_acc`] for `k` vectors at once: `outs[i·so + r] += Σ_c W[r, c]·xs[i·sx + c]`
/// for every i < k, each sum in the order of [`dot`], so every vector gets the bits
/// `matvec_acc` gives it alone. Two rows and four vectors share each pass over the columns
/// ([`dot_block`]), so a weight is loaded once per four vectors.
#[cfg_attr(not(target_arch = "arm"), inline(always))]
fn matmul_acc(t: &Tensor<'_>, xs: &[f32], sx: usize, outs: &mut [f32], so: usize, k: usize) {
    match t.dtype {
        DType::F32 => {
            matmul_with::<4>(t, xs, sx, outs, so, k, |w| f32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        }
        DType::F16 => matmul_with::<2>(t, xs, sx, outs, so, k, decode_f16),
        DType::I8 => matmul_with::<1>(t, xs, sx, outs, so, k, |w| (w[0] as i8) as f32),
        DType::I32 | DType::Lut8 => {
            for i in 0..k {
                matvec_acc(t, &xs[i * sx..], &mut outs[i * so..]);
            }
        }
    }
}

#[inline(always)]
fn matmul_with<const S: usize>(
    t: &Tensor<'_>,
    xs: &[f32],
    sx: usize,
    outs: &mut [f32],
    so: usize,
    k: usize,
    decode: impl Fn(&[u8]) -> f32 + Copy,
) {
    let (rows, cols) = (t.rows, t.cols);
    let row = |r: usize| &t.data()[r * S * cols..(r + 1) * S * cols];
    let x = |i: usize| &xs[i * sx..i * sx + cols];
    let scaled = t.dtype == DType::I8;
    #[inline(always)]
    fn put(t: &Tensor<'_>, scaled: bool, outs: &mut [f32], so: usize, r: usize, i: usize, v: f32) {
        let v = if scaled { v * t.scale(r) } else { v };
        outs[i * so + r] += v;
    }
    let mut r = 0;
    while r < rows {
        let two = r + 1 < rows;
        let mut i = 0;
        while i + 4 <= k {
            let xb = [x(i), x(i + 1), x(i + 2), x(i + 3)];
            if two {
                let d = dot_block::<S, 2, 4>([row(r), row(r + 1)], xb, decode);
                for (j, dj) in d[1].iter().enumerate() {
                    put(t, scaled, outs, so, r + 1, i + j, *dj);
                }
                for (j, dj) in d[0].iter().enumerate() {
                    put(t, scaled, outs, so, r, i + j, *dj);
                }
            } else {
                let d = dot_block::<S, 1, 4>([row(r)], xb, decode);
                for (j, dj) in d[0].iter().enumerate() {
                    put(t, scaled, outs, so, r, i + j, *dj);
                }
            }
            i += 4;
        }
        for i in i..k {
            for rr in r..(r + 2).min(rows) {
                put(t, scaled, outs, so, rr, i, dot::<S>(row(rr), x(i), decode));
            }
        }
        r += 2;
    }
}

/// [`MatVec::matvec_acc`] with the kernels `k` chooses (the same bits with any of them).
#[cfg_attr(not(target_arch = "arm"), inline(always))]
#[cfg_attr(target_arch = "arm", inline)]
fn matvec_acc_with(t: &Tensor<'_>, k: Kernels, x: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if let Kernels::Avx2(tok) = k {
        match t.dtype {
            DType::F32 => return matmul_simd(t, Avx2Dot::<x86::F32>(tok, PhantomData), x, 0, out, 0, 1),
            DType::F16 => return matmul_simd(t, Avx2Dot::<x86::F16>(tok, PhantomData), x, 0, out, 0, 1),
            DType::I8 => return matmul_simd(t, Avx2Dot::<x86::I8>(tok, PhantomData), x, 0, out, 0, 1),
            _ => {}
        }
    }
    #[cfg(target_arch = "aarch64")]
    if let Kernels::Neon(tok) = k {
        match t.dtype {
            DType::F32 => return matmul_simd(t, NeonDot::<neon::F32>(tok, PhantomData), x, 0, out, 0, 1),
            DType::I8 => return matmul_simd(t, NeonDot::<neon::I8>(tok, PhantomData), x, 0, out, 0, 1),
            _ => {}
        }
    }
    let _ = k;
    matvec_acc(t, x, out)
}

/// [`MatVec::matmul_acc`] with the kernels `k` chooses (the same bits with any of them).
#[cfg_attr(not(target_arch = "arm"), inline(always))]
fn matmul_acc_with(t: &Tensor<'_>, k: Kernels, xs: &[f32], sx: usize, outs: &mut [f32], so: usize, n: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Kernels::Avx2(tok) = k {
        match t.dtype {
            // Several vectors: blocks of 4 rows × 3 vectors (`x86::matmul`), f32 or f16 weights.
            DType::F32 if n > 1 => {
                return x86::matmul::<x86::F32>(tok, t.data(), t.rows, t.cols, xs, sx, outs, so, n)
            }
            DType::F16 if n > 1 => {
                return x86::matmul::<x86::F16>(tok, t.data(), t.rows, t.cols, xs, sx, outs, so, n)
            }
            DType::F32 => return matmul_simd(t, Avx2Dot::<x86::F32>(tok, PhantomData), xs, sx, outs, so, n),
            DType::F16 => return matmul_simd(t, Avx2Dot::<x86::F16>(tok, PhantomData), xs, sx, outs, so, n),
            DType::I8 => return matmul_simd(t, Avx2Dot::<x86::I8>(tok, PhantomData), xs, sx, outs, so, n),
            _ => {}
        }
    }
    #[cfg(target_arch = "aarch64")]
    if let Kernels::Neon(tok) = k {
        match t.dtype {
            DType::F32 => return matmul_simd(t, NeonDot::<neon::F32>(tok, PhantomData), xs, sx, outs, so, n),
            DType::I8 => return matmul_simd(t, NeonDot::<neon::I8>(tok, PhantomData), xs, sx, outs, so, n),
            _ => {}
        }
    }
    let _ = k;
    matmul_acc(t, xs, sx, outs, so, n)
}

/// A SIMD kernel of [`dot_block`] for one weight type: its token and the weights' storage type.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
trait SimdDot: Copy {
    /// Bytes per weight.
    const SIZE: usize;
    /// `out[r][i]` = the engine's dot of `rows[r]` with `xs[i]` (`cols` columns), bit for bit.
    fn block<const R: usize, const K: usize>(
        self,
        rows: [&[u8]; R],
        xs: [&[f32]; K],
        cols: usize,
    ) -> [[f32; K]; R];
}

/// The AVX2 kernel ([`x86::dot_block`]) for weights `W`.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Avx2Dot<W>(Avx2, PhantomData<W>);

#[cfg(target_arch = "x86_64")]
impl<W: x86::Weights> SimdDot for Avx2Dot<W> {
    const SIZE: usize = W::SIZE;
    #[inline(always)]
    fn block<const R: usize, const K: usize>(
        self,
        rows: [&[u8]; R],
        xs: [&[f32]; K],
        cols: usize,
    ) -> [[f32; K]; R] {
        x86::dot_block::<W, R, K>(self.0, rows, xs, cols)
    }
}

/// The NEON kernel ([`neon::dot_block`]) for weights `W`.
#[cfg(target_arch = "aarch64")]
#[derive(Clone, Copy)]
struct NeonDot<W>(Neon, PhantomData<W>);

#[cfg(target_arch = "aarch64")]
impl<W: neon::Weights> SimdDot for NeonDot<W> {
    const SIZE: usize = W::SIZE;
    #[inline(always)]
    fn block<const R: usize, const K: usize>(
        self,
        rows: [&[u8]; R],
        xs: [&[f32]; K],
        cols: usize,
    ) -> [[f32; K]; R] {
        neon::dot_block::<W, R, K>(self.0, rows, xs, cols)
    }
}

/// `outs[i·so + r] += Σ_c W[r, c]·xs[i·sx + c]` for i < n with a SIMD kernel `kern` (AVX2 or
/// NEON): blocks of 8 rows for one vector, of 2 rows × 4 vectors for more (f32 and f16 weights
/// with AVX2 and more than one vector go to [`x86::matmul`] instead).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn matmul_simd<D: SimdDot>(
    t: &Tensor<'_>,
    kern: D,
    xs: &[f32],
    sx: usize,
    outs: &mut [f32],
    so: usize,
    n: usize,
) {
    let (rows, cols) = (t.rows, t.cols);
    let len = D::SIZE * cols;
    let row = |r: usize| &t.data()[r * len..(r + 1) * len];
    let x = |i: usize| &xs[i * sx..i * sx + cols];
    let scaled = t.dtype == DType::I8;
    let mut put = |r: usize, i: usize, v: f32| {
        outs[i * so + r] += if scaled { v * t.scale(r) } else { v };
    };
    let mut r = 0;
    if n == 1 {
        // Eight rows: eight independent chains of additions hide the adder's latency.
        while r + 8 <= rows {
            let rs =
                [row(r), row(r + 1), row(r + 2), row(r + 3), row(r + 4), row(r + 5), row(r + 6), row(r + 7)];
            let d = kern.block::<8, 1>(rs, [x(0)], cols);
            for (j, dj) in d.iter().enumerate() {
                put(r + j, 0, dj[0]);
            }
            r += 8;
        }
        while r + 4 <= rows {
            let d = kern.block::<4, 1>([row(r), row(r + 1), row(r + 2), row(r + 3)], [x(0)], cols);
            for (j, dj) in d.iter().enumerate() {
                put(r + j, 0, dj[0]);
            }
            r += 4;
        }
    }
    while r + 2 <= rows {
        let mut i = 0;
        while i + 4 <= n {
            let d = kern.block::<2, 4>([row(r), row(r + 1)], [x(i), x(i + 1), x(i + 2), x(i + 3)], cols);
            for (j, dj) in d.iter().enumerate() {
                for (q, v) in dj.iter().enumerate() {
                    put(r + j, i + q, *v);
                }
            }
            i += 4;
        }
        for i in i..n {
            let d = kern.block::<2, 1>([row(r), row(r + 1)], [x(i)], cols);
            put(r, i, d[0][0]);
            put(r + 1, i, d[1][0]);
        }
        r += 2;
    }
    for r in r..rows {
        let mut i = 0;
        while i + 4 <= n {
            let d = kern.block::<1, 4>([row(r)], [x(i), x(i + 1), x(i + 2), x(i + 3)], cols);
            for (q, v) in d[0].iter().enumerate() {
                put(r, i + q, *v);
            }
            i += 4;
        }
        for i in i..n {
            put(r, i, kern.block::<1, 1>([row(r)], [x(i)], cols)[0][0]);
        }
    }
}

/// `out[r] += v[r]`: a vector tensor added to `out`.
#[cfg_attr(not(target_arch = "arm"), inline(always))]
#[cfg_attr(target_arch = "arm", inline)]
fn add_to(t: &Tensor<'_>, out: &mut [f32]) {
    if let Some(v) = t.f32_values() {
        // The f32 values in place (aligned little-endian data): no per-element decode.
        for (o, b) in out[..t.rows].iter_mut().zip(&v[..t.rows]) {
            *o += *b;
        }
        return;
    }
    for (i, o) in out[..t.rows].iter_mut().enumerate() {
        *o += t.get(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Role;

    /// The documented order, written as plainly as possible.
    fn dot_reference(w: &[f32], x: &[f32]) -> f32 {
        let full = w.len() / 8 * 8;
        let mut l = [0.0f32; 8];
        for c in 0..full {
            l[c % 8] += w[c] * x[c];
        }
        let mut acc = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
        for c in full..w.len() {
            acc += w[c] * x[c];
        }
        acc
    }

    #[test]
    fn dot_follows_the_documented_order_bit_for_bit() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        for cols in [1usize, 7, 8, 9, 16, 31, 64, 130] {
            let w: Vec<f32> = (0..cols).map(|_| rnd()).collect();
            let x: Vec<f32> = (0..cols).map(|_| rnd() * 3.0).collect();
            let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
            let got = dot::<4>(&bytes, &x, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            assert_eq!(got.to_bits(), dot_reference(&w, &x).to_bits(), "cols {cols}");
            let exact: f64 = w.iter().zip(&x).map(|(a, b)| *a as f64 * *b as f64).sum();
            assert!((got as f64 - exact).abs() < 1e-5 * cols as f64);
        }
    }

    #[test]
    fn typed_dots_and_dot_finish_give_dot_bits() {
        let mut state = 0x5851_f42d_4c95_7f2du64;
        let mut bits = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 32) as u32
        };
        // A NaN's payload depends on the operand order the compiler picks for each `+` (it
        // differs between inlined copies of the same code on x86-64); any NaN agrees with a NaN.
        let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || a.is_nan() && b.is_nan();
        let mut finite = 0;
        for cols in 0..=41usize {
            // Any bit pattern: subnormals, ±0, inf and NaN included.
            let w: Vec<u8> = (0..cols).flat_map(|_| bits().to_le_bytes()).collect();
            let w8: Vec<u8> = (0..cols).map(|_| bits() as u8).collect();
            let x: Vec<f32> = (0..cols).map(|_| f32::from_bits(bits())).collect();
            let want = dot::<4>(&w, &x, decode_f32);
            finite += usize::from(want.is_finite());
            assert!(same(dot_f32w(&w, &x), want), "cols {cols}");
            assert!(same(dot_i8w(&w8, &x), dot::<1>(&w8, &x, decode_i8)), "cols {cols}");
            // dot = its lanes (written out here) finished by dot_finish.
            let full = cols / DOT_LANES * DOT_LANES;
            let mut lanes = [0.0f32; DOT_LANES];
            for c in 0..full {
                lanes[c % DOT_LANES] += decode_f32(&w[4 * c..]) * x[c];
            }
            let got = dot_finish::<4>(&lanes, &w[4 * full..], &x[full..], decode_f32);
            assert!(same(got, want), "cols {cols}");
        }
        assert!(finite > 5, "only {finite} finite results: the test would compare NaNs only");
    }

    #[test]
    fn dot_block_and_matmul_give_dot_bits_for_every_vector() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        for cols in [1usize, 7, 8, 9, 16, 31, 64, 130] {
            let w: Vec<f32> = (0..3 * cols).map(|_| rnd()).collect();
            let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
            let xs: Vec<f32> = (0..5 * cols).map(|_| rnd() * 3.0).collect();
            let dec = |b: &[u8]| f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let rows = [&bytes[..4 * cols], &bytes[4 * cols..8 * cols]];
            let x4 = [&xs[..cols], &xs[cols..2 * cols], &xs[2 * cols..3 * cols], &xs[3 * cols..4 * cols]];
            let got = dot_block::<4, 2, 4>(rows, x4, dec);
            for r in 0..2 {
                for i in 0..4 {
                    assert_eq!(got[r][i].to_bits(), dot::<4>(rows[r], x4[i], dec).to_bits(), "cols {cols}");
                }
            }
            // Every dtype through Tensor::matmul_acc (3 rows, 5 vectors: both remainders).
            for (dtype, data) in [
                (DType::F32, bytes.clone()),
                (DType::F16, w.iter().flat_map(|v| half_bits(*v).to_le_bytes()).collect::<Vec<u8>>()),
                (DType::I8, w.iter().map(|v| (v * 127.0) as i8 as u8).collect()),
            ] {
                let scales: Vec<u8> = [0.5f32, 0.25, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
                let t = Tensor::from_parts(Role::TimeW1, dtype, 3, cols, &data, &scales);
                let mut batch = vec![0.25f32; 5 * 4];
                t.matmul_acc(&xs, cols, &mut batch, 4, 5);
                for i in 0..5 {
                    let mut one = [0.25f32; 4];
                    t.matvec_acc(&xs[i * cols..(i + 1) * cols], &mut one);
                    let mut rows = [0.25f32; 4];
                    matvec_rows(&t, &xs[i * cols..(i + 1) * cols], &mut rows);
                    assert_eq!(one.map(f32::to_bits), rows.map(f32::to_bits), "{dtype:?} cols {cols}");
                    for r in 0..3 {
                        assert_eq!(batch[i * 4 + r].to_bits(), one[r].to_bits(), "{dtype:?} cols {cols}");
                    }
                }
            }
        }
    }

    /// An f16 bit pattern near `v` (truncating; any pattern will do for a bit-equality test).
    fn half_bits(v: f32) -> u16 {
        let b = v.to_bits();
        let sign = ((b >> 16) & 0x8000) as u16;
        let e = ((b >> 23) & 0xff) as i32 - 127 + 15;
        if e <= 0 {
            return sign;
        }
        sign | ((e.min(30) as u16) << 10) | ((b >> 13) & 0x3ff) as u16
    }
}
