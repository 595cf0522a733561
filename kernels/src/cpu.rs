//! CPU twins of the training kernels: the reference meaning of every kernel.
//!
//! One function per kernel, each with its formula and the shapes of its buffers. The GEMMs go
//! through `matrixmultiply::sgemm` (single-threaded, so for given shapes on a given machine the
//! result is the same bits every run); their float summation order differs from a naive loop,
//! which is why tests compare with `atol + rtol·|ref|`. Element-wise math uses the engine's own
//! definitions ([`silu`](tinyscore_engine::net::silu), [`silu_grad`], [`time_features`]) so that
//! trainer and engine agree.
//!
//! The hot loop never allocates: every kernel writes into buffers that the caller owns.

use tinyscore_engine::net::{silu_grad, time_features};
use tinyscore_engine::rng::{bits4, fill_normal, stream, uniform};
use tinyscore_engine::schedule::Diffusion;
use tinyscore_engine::vmath;

/// Runs a function body compiled twice: for the baseline target, and (on x86-64 CPUs that have
/// it, detected at run time) with AVX2 enabled, so that its 8-lane arrays and loops become
/// 256-bit instructions. Both copies are the same Rust code with IEEE f32 semantics (no
/// contraction into FMA, no reassociation), so they give the same bits; the tests compare them.
macro_rules! avx2_twin {
    ($portable:ident, $avx2:ident, ($($arg:ident: $ty:ty),*) $(-> $ret:ty)?) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        fn $avx2($($arg: $ty),*) $(-> $ret)? {
            $portable($($arg),*)
        }
    };
}

/// Whether the AVX2 copies of [`avx2_twin`] run (x86-64 with AVX2; the first call detects it).
#[inline]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // the tests' skip message only
fn use_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Calls the AVX2 copy where [`use_avx2`], else the portable one.
macro_rules! dispatch {
    ($portable:ident, $avx2:ident, ($($arg:expr),*)) => {{
        #[cfg(target_arch = "x86_64")]
        if use_avx2() {
            // SAFETY: `use_avx2` checked at run time that this CPU supports AVX2, the only
            // feature the copy enables; its body is safe code.
            return unsafe { $avx2($($arg),*) };
        }
        $portable($($arg),*)
    }};
}

/// `c (m, n) = alpha · a (m, k) · b (k, n) + beta · c`, with explicit row/column strides for `a`
/// and `b` so that transposes cost nothing.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    beta: f32,
    c: &mut [f32],
) {
    if m == 0 || n == 0 {
        return;
    }
    // The largest index each operand is read at must lie inside its slice.
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    if k > 0 {
        assert!(last(m, k, rsa, csa) < a.len(), "gemm: a is too short");
        assert!(last(k, n, rsb, csb) < b.len(), "gemm: b is too short");
    }
    assert!(m * n <= c.len(), "gemm: c is too short");
    // SAFETY: the asserts above prove that every element sgemm reads from `a` and `b` and every
    // element it writes in `c` (row-major, strides (n, 1)) lies inside the slices, and `c` is
    // borrowed mutably so it cannot alias `a` or `b`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// Forward of a linear layer: `y = x · Wᵀ + b`.
///
/// * `x`: (rows, in) inputs;
/// * `w`: (out, in) weights, row-major;
/// * `b`: (out,) bias;
/// * `y`: (rows, out) outputs, overwritten.
///
/// `y[r][o] = b[o] + Σ_i x[r][i]·w[o][i]`.
pub fn linear_fwd(x: &[f32], w: &[f32], b: &[f32], y: &mut [f32], rows: usize, inp: usize, out: usize) {
    let y = &mut y[..rows * out];
    for row in y.chunks_exact_mut(out) {
        row.copy_from_slice(&b[..out]);
    }
    // Wᵀ (in, out): element (i, o) is w[o·in + i], so row stride 1 and column stride `in`.
    gemm(rows, inp, out, x, (inp, 1), w, (1, inp), 1.0, y);
}

/// Backward of a linear layer with respect to its input: `dx = dy · W`.
///
/// * `dy`: (rows, out) gradient of the outputs;
/// * `w`: (out, in) weights;
/// * `dx`: (rows, in) gradient of the inputs, overwritten.
///
/// `dx[r][i] = Σ_o dy[r][o]·w[o][i]`.
pub fn linear_bwd_input(dy: &[f32], w: &[f32], dx: &mut [f32], rows: usize, inp: usize, out: usize) {
    gemm(rows, out, inp, dy, (out, 1), w, (inp, 1), 0.0, &mut dx[..rows * inp]);
}

/// [`linear_bwd_input`], accumulated: `dx += dy · W` (for a value whose gradient has other
/// terms). The same bits as [`linear_bwd_input`] into a buffer and then [`add_inplace`] when the
/// reduction (`out`) fits one of the GEMM's depth blocks (256 for f32), as for every ScoreNet of
/// H ≤ 256; above that only the float summation order differs.
pub fn linear_bwd_input_acc(dy: &[f32], w: &[f32], dx: &mut [f32], rows: usize, inp: usize, out: usize) {
    gemm(rows, out, inp, dy, (out, 1), w, (inp, 1), 1.0, &mut dx[..rows * inp]);
}

/// Backward of a linear layer with respect to its parameters, accumulated:
/// `dW += dyᵀ · x`, `db += Σ_rows dy`.
///
/// * `dy`: (rows, out) gradient of the outputs;
/// * `x`: (rows, in) the layer's inputs of the forward pass;
/// * `dw`: (out, in) weight gradient, accumulated into;
/// * `db`: (out,) bias gradient, accumulated into (rows summed in order 0, 1, …).
pub fn linear_bwd_params(
    dy: &[f32],
    x: &[f32],
    dw: &mut [f32],
    db: &mut [f32],
    rows: usize,
    inp: usize,
    out: usize,
) {
    // dyᵀ (out, rows): element (o, r) is dy[r·out + o].
    gemm(out, rows, inp, dy, (1, out), x, (inp, 1), 1.0, &mut dw[..out * inp]);
    let db = &mut db[..out];
    for row in dy[..rows * out].chunks_exact(out) {
        for (g, &d) in db.iter_mut().zip(row) {
            *g += d;
        }
    }
}

/// Tangent (forward-mode derivative) of a linear layer, which has no bias term: `ẏ = ẋ · Wᵀ`.
///
/// * `xdot`: (rows, in) input tangents; `w`: (out, in); `ydot`: (rows, out), overwritten.
pub fn linear_tangent(xdot: &[f32], w: &[f32], ydot: &mut [f32], rows: usize, inp: usize, out: usize) {
    gemm(rows, inp, out, xdot, (inp, 1), w, (1, inp), 0.0, &mut ydot[..rows * out]);
}

/// Weight gradient of a linear map without bias, accumulated: `dW += dyᵀ · x` (the tangent
/// pass's share of a weight's gradient). `dy`: (rows, out), `x`: (rows, in), `dw`: (out, in).
pub fn linear_bwd_weight(dy: &[f32], x: &[f32], dw: &mut [f32], rows: usize, inp: usize, out: usize) {
    gemm(out, rows, inp, dy, (1, out), x, (inp, 1), 1.0, &mut dw[..out * inp]);
}

/// SiLU tangent from a kept sigmoid: `ẏ = silu'(x) ⊙ ẋ` (the factor as in [`silu_bwd_sig`]).
/// All slices: same length.
pub fn silu_tangent_sig(x: &[f32], sig: &[f32], xdot: &[f32], ydot: &mut [f32]) {
    for (((o, &v), &s), &g) in ydot.iter_mut().zip(x).zip(sig).zip(xdot) {
        *o = g * (s * (1.0 + v * (1.0 - s)));
    }
}

/// Backward through a SiLU tangent `ẏ = silu'(x)·ẋ` given `dydot` = ∂L/∂ẏ:
/// `dxdot = silu'(x)·dẏ` (overwritten, or added to when `accumulate`) and the share of the
/// primal input's gradient `extra = silu''(x)·ẋ·dẏ` (overwritten; [`silu_grad2`](tinyscore_engine::net::silu_grad2), from the kept
/// σ: σ(1 − σ)(2 + x(1 − 2σ))). All slices: same length.
pub fn silu_tangent_bwd_sig(
    x: &[f32],
    sig: &[f32],
    xdot: &[f32],
    dydot: &[f32],
    dxdot: &mut [f32],
    extra: &mut [f32],
    accumulate: bool,
) {
    for i in 0..dydot.len() {
        let (v, s, g) = (x[i], sig[i], dydot[i]);
        let d1 = g * (s * (1.0 + v * (1.0 - s)));
        dxdot[i] = if accumulate { dxdot[i] + d1 } else { d1 };
        extra[i] = g * xdot[i] * (s * (1.0 - s) * (2.0 + v * (1.0 - 2.0 * s)));
    }
}

/// The Rademacher projections v (rows, D) of sliced score matching for rows `draw.first ..` of
/// a step: with `(e_lo, e_hi)` = `draw.example_counter(r)`, element k of row r is +1 if bit 0 of
/// word `k mod 4` of `bits4(seed, k/4, e_lo, e_hi, SSM_PROJECTIONS)` is 0, else −1.
pub fn ssm_projections(draw: DsmDraw, rows: usize, dim: usize, v: &mut [f32]) {
    for r in 0..rows {
        let (lo, hi) = draw.example_counter(r);
        for (k, o) in v[r * dim..(r + 1) * dim].iter_mut().enumerate() {
            let w = bits4(draw.seed, (k / 4) as u32, lo, hi, stream::SSM_PROJECTIONS)[k % 4];
            *o = if w & 1 == 0 { 1.0 } else { -1.0 };
        }
    }
}

/// Sliced score matching loss (Song et al. 2019) of a noise-conditional ε-network and its
/// gradients, one chunk of a batch of `total` = B·D scalars. Row r has ε̂ (`eps`), the
/// Jacobian-vector product J·v = (∂ε̂/∂x)·v (`jvp`), its projection `v`, σ_t (`sigma`) and the
/// loss weight w_r (`weights`). With the score s = −ε̂/σ and λ(t) = σ² (`docs/scorenet.md`):
///
/// ```text
/// ssm:    ℓ_r = w_r·(−σ·vᵀJv + ½(vᵀε̂)²) / total     ∂ℓ/∂ε̂ = w_r·(vᵀε̂)·v / total
/// ssm-vr: ℓ_r = w_r·(−σ·vᵀJv + ½‖ε̂‖²)  / total     ∂ℓ/∂ε̂ = w_r·ε̂ / total
///         ∂ℓ/∂(Jv) = −w_r·σ·v / total  (both)
/// ```
///
/// Writes `d_eps` and `d_jvp` (rows·D) and returns Σ_r ℓ_r (summed in f64, in order).
#[allow(clippy::too_many_arguments)]
pub fn ssm_loss_grad(
    eps: &[f32],
    jvp: &[f32],
    v: &[f32],
    sigma: &[f32],
    weights: &[f32],
    dim: usize,
    total: usize,
    variance_reduced: bool,
    d_eps: &mut [f32],
    d_jvp: &mut [f32],
) -> f64 {
    let inv = 1.0 / total as f32;
    let mut sum = 0.0f64;
    for (r, (&s, &w)) in sigma.iter().zip(weights).enumerate() {
        let at = r * dim..(r + 1) * dim;
        let (e, j, vr) = (&eps[at.clone()], &jvp[at.clone()], &v[at.clone()]);
        let vjv: f64 = vr.iter().zip(j).map(|(&a, &b)| a as f64 * b as f64).sum();
        let (second, proj) = if variance_reduced {
            (e.iter().map(|&a| a as f64 * a as f64).sum::<f64>(), 0.0f32)
        } else {
            let p: f64 = vr.iter().zip(e).map(|(&a, &b)| a as f64 * b as f64).sum();
            (p * p, p as f32)
        };
        sum += w as f64 * (-(s as f64) * vjv + 0.5 * second);
        for k in 0..dim {
            let i = r * dim + k;
            d_eps[i] = w * inv * if variance_reduced { e[k] } else { proj * vr[k] };
            d_jvp[i] = -w * s * vr[k] * inv;
        }
    }
    sum / total as f64
}

/// SiLU forward, element-wise: `y = silu(x) = x·σ(x)` ([`silu`](tinyscore_engine::net::silu),
/// the same bits, eight lanes at a time by [`vmath::silu_into`]). `x`, `y`: same length.
pub fn silu_fwd(x: &[f32], y: &mut [f32]) {
    vmath::silu_into(x, y);
}

/// SiLU backward, element-wise: `dx = dy ⊙ silu'(x)` ([`silu_grad`]), `dx` overwritten.
/// `x` is the forward input; `x`, `dy`, `dx`: same length.
pub fn silu_bwd(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    for ((o, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
        *o = g * silu_grad(v);
    }
}

/// SiLU backward, accumulated: `dx += dy ⊙ silu'(x)` (for a residual stream whose gradient
/// already holds the skip path). `x`, `dy`, `dx`: same length.
pub fn silu_bwd_acc(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    for ((o, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
        *o += g * silu_grad(v);
    }
}

/// SiLU forward that also keeps the sigmoid for the backward pass, with one `expf` per
/// element: `y = silu(x)`, `sig = σ(x) = 1/(1 + e^(−x))`. Bit-identical to
/// [`silu`](tinyscore_engine::net::silu) and to the σ inside [`silu_grad`] (`libm::expf`'s bits,
/// eight at a time by [`vmath::expf8`]; the same operations). `x`, `y`, `sig`: same length.
pub fn silu_fwd_sig(x: &[f32], y: &mut [f32], sig: &mut [f32]) {
    dispatch!(silu_fwd_sig_portable, silu_fwd_sig_avx2, (x, y, sig))
}

avx2_twin!(silu_fwd_sig_portable, silu_fwd_sig_avx2, (x: &[f32], y: &mut [f32], sig: &mut [f32]));

#[inline(always)]
fn silu_fwd_sig_portable(x: &[f32], y: &mut [f32], sig: &mut [f32]) {
    let n = x.len().min(y.len()).min(sig.len());
    let (x, y, sig) = (&x[..n], &mut y[..n], &mut sig[..n]);
    let mut xs = x.chunks_exact(vmath::LANES);
    let mut ys = y.chunks_exact_mut(vmath::LANES);
    let mut ss = sig.chunks_exact_mut(vmath::LANES);
    for ((xc, yc), sc) in (&mut xs).zip(&mut ys).zip(&mut ss) {
        let mut v = [0.0f32; vmath::LANES];
        v.copy_from_slice(xc);
        let denom = vmath::expf8(v.map(|a| -a)).map(|e| 1.0 + e);
        let (mut yv, mut sv) = ([0.0f32; vmath::LANES], [0.0f32; vmath::LANES]);
        for (((o, s), &a), &d) in yv.iter_mut().zip(&mut sv).zip(&v).zip(&denom) {
            *o = a / d;
            *s = 1.0 / d;
        }
        yc.copy_from_slice(&yv);
        sc.copy_from_slice(&sv);
    }
    let tails = ys.into_remainder().iter_mut().zip(ss.into_remainder()).zip(xs.remainder());
    for ((o, s), &v) in tails {
        let denom = 1.0 + libm::expf(-v);
        *o = v / denom;
        *s = 1.0 / denom;
    }
}

/// SiLU backward from a kept sigmoid: `dx = dy ⊙ σ(x)·(1 + x·(1 − σ(x)))`, bit-identical to
/// [`silu_bwd`] when `sig` comes from [`silu_fwd_sig`]. All slices: same length.
pub fn silu_bwd_sig(x: &[f32], sig: &[f32], dy: &[f32], dx: &mut [f32]) {
    for (((o, &v), &s), &g) in dx.iter_mut().zip(x).zip(sig).zip(dy) {
        *o = g * (s * (1.0 + v * (1.0 - s)));
    }
}

/// [`silu_bwd_sig`], accumulated: `dx += dy ⊙ silu'(x)`. All slices: same length.
pub fn silu_bwd_sig_acc(x: &[f32], sig: &[f32], dy: &[f32], dx: &mut [f32]) {
    dispatch!(silu_bwd_sig_acc_portable, silu_bwd_sig_acc_avx2, (x, sig, dy, dx))
}

avx2_twin!(silu_bwd_sig_acc_portable, silu_bwd_sig_acc_avx2, (x: &[f32], sig: &[f32], dy: &[f32], dx: &mut [f32]));

#[inline(always)]
fn silu_bwd_sig_acc_portable(x: &[f32], sig: &[f32], dy: &[f32], dx: &mut [f32]) {
    for (((o, &v), &s), &g) in dx.iter_mut().zip(x).zip(sig).zip(dy) {
        *o += g * (s * (1.0 + v * (1.0 - s)));
    }
}

/// Element-wise sum in place: `y += x`. `x`, `y`: same length.
pub fn add_inplace(y: &mut [f32], x: &[f32]) {
    dispatch!(add_inplace_portable, add_inplace_avx2, (y, x))
}

avx2_twin!(add_inplace_portable, add_inplace_avx2, (y: &mut [f32], x: &[f32]));

#[inline(always)]
fn add_inplace_portable(y: &mut [f32], x: &[f32]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o += v;
    }
}

/// Broadcast add of one row to every row: `y[r] += v` for each row of `y` (rows, v.len()).
pub fn add_row_broadcast(y: &mut [f32], v: &[f32]) {
    for row in y.chunks_exact_mut(v.len()) {
        add_inplace(row, v);
    }
}

/// Where one chunk of a training batch sits in the whole run: the noise and the draws of an
/// example depend only on `(seed, step·batch + first + r)`, never on how the batch is split
/// into chunks or threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DsmDraw {
    /// The run's seed (the Philox key).
    pub seed: u64,
    /// The 0-based index of the optimisation step.
    pub step: u64,
    /// The batch size of every step.
    pub batch: usize,
    /// The index within the batch of the chunk's first row.
    pub first: usize,
}

impl DsmDraw {
    /// The example's index in the whole run, `e = step·batch + first + r`, split into the two
    /// counter words (low, high) that take the place of the engine's (sample, step).
    #[inline]
    pub fn example_counter(&self, r: usize) -> (u32, u32) {
        let e = self.step.wrapping_mul(self.batch as u64).wrapping_add((self.first + r) as u64);
        (e as u32, (e >> 32) as u32)
    }
}

/// How the training time of an example is drawn: a mixture that, with probability `share`, draws
/// on the lowest fraction `max` of the range and otherwise on the whole range (issue 16: more of
/// the training at the low and middle noise levels that denoising and imputation use, while the
/// model stays a complete diffusion model).
///
/// Discrete VP with N steps and M = max(1, ⌊max·N⌋): n is uniform on 1..=M with probability
/// `share`, else uniform on 1..=N, so P(n) = (1 − share)/N + share/M·[n ≤ M]. Continuous SDE:
/// u = `uniform(w₀)`, multiplied by `max` with probability `share`, and t = t_ε + (1 − t_ε)·u.
/// With `share` = 0 ([`TimeDraw::UNIFORM`]) the draw is the plain uniform one, bit for bit.
///
/// Relative to the uniform draw, the step n is seen N·P(n) times as often: the expected loss is
/// the uniform-t loss with its weighting λ multiplied by (1 − share) + share·N/M on n ≤ M and by
/// (1 − share) above (`docs/training.md`, "Low-noise emphasis").
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeDraw {
    /// Probability of a draw on the low range, in [0, 1].
    pub share: f32,
    /// The low range as a fraction of the whole, in (0, 1].
    pub max: f32,
}

/// Why a [`TimeDraw`] is refused.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TimeDrawError {
    /// `share` outside [0, 1] or not a number.
    Share(f32),
    /// `max` outside (0, 1] or not a number.
    Max(f32),
}

impl core::fmt::Display for TimeDrawError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Share(v) => write!(f, "the low-noise share must be in [0, 1], got {v}"),
            Self::Max(v) => write!(f, "the low-noise range must be in (0, 1], got {v}"),
        }
    }
}

impl std::error::Error for TimeDrawError {}

impl Default for TimeDraw {
    fn default() -> Self {
        Self::UNIFORM
    }
}

impl TimeDraw {
    /// The plain uniform draw (no emphasis; the canonical form has `max` = 1).
    pub const UNIFORM: Self = Self { share: 0.0, max: 1.0 };

    /// A checked draw; `share` = 0 gives [`TimeDraw::UNIFORM`] whatever `max` (still checked).
    pub fn new(share: f32, max: f32) -> Result<Self, TimeDrawError> {
        if !(0.0..=1.0).contains(&share) {
            return Err(TimeDrawError::Share(share));
        }
        if !(max > 0.0 && max <= 1.0) {
            return Err(TimeDrawError::Max(max));
        }
        Ok(if share == 0.0 { Self::UNIFORM } else { Self { share, max } })
    }

    /// Whether this is the plain uniform draw.
    pub fn is_uniform(&self) -> bool {
        self.share == 0.0
    }

    /// Whether the example whose second TRAIN_TIME word is `w1` draws on the low range:
    /// `w1 < share·2³²` (in integers, so `share` = 1 always and 0 never).
    #[inline]
    pub fn low(&self, w1: u32) -> bool {
        (w1 as u64) < (self.share as f64 * 4_294_967_296.0) as u64
    }

    /// M, the steps of the low range on a discrete process of `n` steps: max(1, ⌊max·n⌋).
    #[inline]
    pub fn low_steps(&self, n: u32) -> u32 {
        ((self.max as f64 * n as f64) as u32).clamp(1, n.max(1))
    }

    /// P(n), the probability of step `n` (1..=`steps`) on a discrete process of `steps` steps.
    pub fn probability(&self, n: u32, steps: u32) -> f64 {
        let uniform = 1.0 / steps as f64;
        if self.is_uniform() {
            return uniform;
        }
        let m = self.low_steps(steps);
        let share = self.share as f64;
        (1.0 - share) * uniform + if n <= m { share / m as f64 } else { 0.0 }
    }
}

/// Inputs of the denoising score matching loss (Ho et al. 2020, Algorithm 1) for `rows`
/// examples of one step, rows `draw.first ..` of the batch.
///
/// For example r, with `e = step·batch + first + r` split into counter words `(e_lo, e_hi)`:
/// * data index `j = ⌊(w₀·2³² + w₁)·n_data / 2⁶⁴⌋` with `w = bits4(seed, 0, e_lo, e_hi,
///   TRAIN_INDEX)` (sampling with replacement);
/// * discrete VP: step `n = 1 + ⌊w₀·N / 2³²⌋` with `w = bits4(seed, 0, e_lo, e_hi,
///   TRAIN_TIME)`, uniform on 1..=N, time `t = n/N` and (α, σ) = (√ᾱ_n, √(1 − ᾱ_n)) from the
///   table; continuous SDE: `t = t_ε + (1 − t_ε)·u` with `u = uniform(w₀)` (24 bits) and
///   (α_t, σ_t) = `Diffusion::marginal(t)` (the engine's one definition); with a non-uniform
///   `times` ([`TimeDraw`]), where `times.low(w₁)` N is replaced by M = `times.low_steps(N)` and
///   u by `times.max·u`;
/// * `ε = fill_normal(seed, e_lo, e_hi, TRAIN_EPS)` (element block = element / 4);
/// * `x_t = α · x₀ + σ · ε` and `φ = time_features(t)`.
///
/// Buffers: `data` (n_data, D) normalised training set; outputs `x_t`, `eps` (rows, D), `t`
/// (rows,), `phi` (rows, F); only their first `rows` rows are written.
#[allow(clippy::too_many_arguments)]
pub fn dsm_inputs(
    data: &[f32],
    dim: usize,
    process: &Diffusion,
    draw: DsmDraw,
    times: TimeDraw,
    rows: usize,
    freqs: usize,
    x_t: &mut [f32],
    eps: &mut [f32],
    t: &mut [f32],
    phi: &mut [f32],
) {
    let n_data = (data.len() / dim) as u128;
    for r in 0..rows {
        let (lo, hi) = draw.example_counter(r);
        let w = bits4(draw.seed, 0, lo, hi, stream::TRAIN_INDEX);
        let wide = ((w[0] as u64) << 32 | w[1] as u64) as u128;
        let j = ((wide * n_data) >> 64) as usize;
        let w = bits4(draw.seed, 0, lo, hi, stream::TRAIN_TIME);
        let low = !times.is_uniform() && times.low(w[1]);
        let (time, alpha, sigma) = match process {
            Diffusion::Discrete(schedule) => {
                let steps = schedule.steps();
                let range = if low { times.low_steps(steps) } else { steps };
                let n = 1 + ((w[0] as u64 * range as u64) >> 32) as usize;
                (schedule.time(n), schedule.alpha(n), schedule.sigma(n))
            }
            Diffusion::Sde { t_eps, .. } => {
                let u = if low { times.max * uniform(w[0]) } else { uniform(w[0]) };
                let time = t_eps + (1.0 - t_eps) * u;
                let (a, s) = process.marginal(time);
                (time, a, s)
            }
        };

        let e = &mut eps[r * dim..(r + 1) * dim];
        fill_normal(draw.seed, lo, hi, stream::TRAIN_EPS, e);
        let x0 = &data[j * dim..(j + 1) * dim];
        for ((xt, &x), &z) in x_t[r * dim..(r + 1) * dim].iter_mut().zip(x0).zip(e.iter()) {
            *xt = alpha * x + sigma * z;
        }
        t[r] = time;
        time_features(t[r], &mut phi[r * freqs..(r + 1) * freqs]);
    }
}

/// Weighted mean squared error and its gradient: like [`mse_loss_grad`] with row r's squared
/// errors multiplied by `weights[r]` (rows of `dim` scalars): `loss = Σ_r w_r Σ_d (p − y)² /
/// total`, `grad = 2·w_r·(p − y)/total`. The sum is taken in f64, in order.
pub fn weighted_mse_loss_grad(
    pred: &[f32],
    target: &[f32],
    weights: &[f32],
    dim: usize,
    total: usize,
    grad: &mut [f32],
) -> f64 {
    let inv = 1.0 / total as f32;
    let mut sum = 0.0f64;
    for (i, ((g, &p), &y)) in grad.iter_mut().zip(pred).zip(target).enumerate() {
        let w = weights[i / dim.max(1)];
        let diff = p - y;
        sum += w as f64 * (diff as f64) * (diff as f64);
        *g = 2.0 * w * diff * inv;
    }
    sum / total as f64
}

/// Mean squared error and its gradient, for one chunk of a batch of `total` scalars.
///
/// `loss = Σ (pred − target)² / total`, `grad = 2·(pred − target) / total`, where `total` is
/// the number of scalars in the *whole* batch (B·D), so that the chunks' losses add up to the
/// batch mean `mean_{b,d} (ε̂ − ε)²` and their gradients are those of that mean.
/// `pred`, `target`, `grad` (overwritten): same length. The sum is taken in f64, in order.
pub fn mse_loss_grad(pred: &[f32], target: &[f32], total: usize, grad: &mut [f32]) -> f64 {
    let inv = 1.0 / total as f32;
    let mut sum = 0.0f64;
    for ((g, &p), &y) in grad.iter_mut().zip(pred).zip(target) {
        let diff = p - y;
        sum += (diff as f64) * (diff as f64);
        *g = 2.0 * diff * inv;
    }
    sum / total as f64
}

/// Global L2 gradient clipping: with `‖g‖ = √Σ g²` (f64, in order), if `‖g‖ > max_norm` scale
/// `g ← g · max_norm / (‖g‖ + 1e-6)` (PyTorch's `clip_grad_norm_`). Returns `‖g‖` before
/// clipping. A `max_norm` that is not finite and positive disables clipping.
pub fn clip_grad_norm(grads: &mut [f32], max_norm: f32) -> f32 {
    let norm = grads.iter().map(|&g| (g as f64) * (g as f64)).sum::<f64>().sqrt();
    if max_norm.is_finite() && max_norm > 0.0 && norm > max_norm as f64 {
        let scale = (max_norm as f64 / (norm + 1e-6)) as f32;
        for g in grads.iter_mut() {
            *g *= scale;
        }
    }
    norm as f32
}

/// Adam (Kingma & Ba 2015, Algorithm 1, bias-corrected) followed by the EMA of the weights,
/// over flat buffers of equal length. With 1-based step `t`:
///
/// ```text
/// m ← β₁·m + (1 − β₁)·g          v ← β₂·v + (1 − β₂)·g²
/// θ ← θ − lr · (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + eps)
/// ema ← d·ema + (1 − d)·θ
/// ```
///
/// The bias corrections are computed in f64 and rounded once.
#[allow(clippy::too_many_arguments)]
pub fn adam_ema_update(
    params: &mut [f32],
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    ema: &mut [f32],
    step: u64,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    ema_decay: f32,
) {
    let t = step.max(1).min(i32::MAX as u64) as i32;
    let bc1 = (1.0 - (beta1 as f64).powi(t)) as f32;
    let bc2 = (1.0 - (beta2 as f64).powi(t)) as f32;
    let n = params.len();
    assert!(grads.len() == n && m.len() == n && v.len() == n && ema.len() == n, "adam: length mismatch");
    let k = AdamConsts { lr, beta1, beta2, eps, ema_decay, bc1, bc2 };
    dispatch!(adam_ema_portable, adam_ema_avx2, (params, grads, m, v, ema, k))
}

/// The scalars of one [`adam_ema_update`].
#[derive(Clone, Copy)]
struct AdamConsts {
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    ema_decay: f32,
    bc1: f32,
    bc2: f32,
}

avx2_twin!(
    adam_ema_portable,
    adam_ema_avx2,
    (params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32], ema: &mut [f32], k: AdamConsts)
);

#[inline(always)]
fn adam_ema_portable(
    params: &mut [f32],
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    ema: &mut [f32],
    k: AdamConsts,
) {
    let AdamConsts { lr, beta1, beta2, eps, ema_decay, bc1, bc2 } = k;
    let n = params.len().min(grads.len()).min(m.len()).min(v.len()).min(ema.len());
    let (params, grads, m, v, ema) = (&mut params[..n], &grads[..n], &mut m[..n], &mut v[..n], &mut ema[..n]);
    for i in 0..n {
        let g = grads[i];
        m[i] = beta1 * m[i] + (1.0 - beta1) * g;
        v[i] = beta2 * v[i] + (1.0 - beta2) * g * g;
        let m_hat = m[i] / bc1;
        let v_hat = v[i] / bc2;
        params[i] -= lr * m_hat / (v_hat.sqrt() + eps);
        ema[i] = ema_decay * ema[i] + (1.0 - ema_decay) * params[i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tinyscore_engine::net::silu;
    use tinyscore_engine::rng::philox4x32_10;
    use tinyscore_engine::schedule::{BetaSchedule, VpDiscrete};

    /// Deterministic test values in [-1, 1).
    fn values(n: usize, salt: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let w = philox4x32_10([i as u32, salt, 0, 99], [1, 2]);
                (w[0] >> 8) as f32 / 8_388_608.0 - 1.0
            })
            .collect()
    }

    /// The accumulating input gradient of a linear layer is the plain one added to the buffer,
    /// bit for bit, for reductions within one GEMM depth block.
    #[test]
    fn linear_bwd_input_acc_is_the_plain_one_added() {
        for (rows, inp, out) in [(5, 7, 3), (64, 128, 128), (33, 64, 256), (3, 2, 128)] {
            let (dy, w) = (values(rows * out, 11), values(out * inp, 12));
            let start = values(rows * inp, 13);
            let mut tmp = vec![0.0f32; rows * inp];
            linear_bwd_input(&dy, &w, &mut tmp, rows, inp, out);
            let mut want = start.clone();
            add_inplace(&mut want, &tmp);
            let mut got = start.clone();
            linear_bwd_input_acc(&dy, &w, &mut got, rows, inp, out);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{rows}×{inp}×{out}");
            assert_ne!(bits(&got), bits(&start), "vacuous");
        }
    }

    /// The AVX2 copies (what the public kernels run on an AVX2 CPU) give the portable code's
    /// bits (NaNs as NaNs), on random values of every magnitude SiLU sees, specials and a ragged
    /// tail.
    #[test]
    fn avx2_copies_give_the_portable_bits() {
        if !use_avx2() {
            println!("skipped: this CPU has no AVX2 (only the portable code runs)");
            return;
        }
        let n = 4099;
        let scale = [0.01f32, 1.0, 10.0, 100.0];
        let mut x: Vec<f32> = values(n, 1).iter().enumerate().map(|(i, v)| v * scale[i % 4]).collect();
        let specials = [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 88.5, -88.5, 1e-40, -104.0];
        x[..specials.len()].copy_from_slice(&specials);
        // A NaN's sign and payload are not part of Rust's float semantics (either copy may
        // commute an addition): NaNs compare as one value, every other result bit for bit.
        let bits =
            |v: &[f32]| v.iter().map(|x| if x.is_nan() { u32::MAX } else { x.to_bits() }).collect::<Vec<_>>();
        let (mut y1, mut s1, mut y2, mut s2) = (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        silu_fwd_sig(&x, &mut y1, &mut s1);
        silu_fwd_sig_portable(&x, &mut y2, &mut s2);
        assert_eq!((bits(&y1), bits(&s1)), (bits(&y2), bits(&s2)), "silu_fwd_sig");
        let dy = values(n, 2);
        let (mut g1, mut g2) = (values(n, 3), values(n, 3));
        silu_bwd_sig_acc(&x, &s1, &dy, &mut g1);
        silu_bwd_sig_acc_portable(&x, &s1, &dy, &mut g2);
        assert_eq!(bits(&g1), bits(&g2), "silu_bwd_sig_acc");
        add_inplace(&mut g1, &x);
        add_inplace_portable(&mut g2, &x);
        assert_eq!(bits(&g1), bits(&g2), "add_inplace");
        let mut a: Vec<Vec<f32>> = (4..8).map(|k| values(n, k)).collect();
        let mut b = a.clone();
        let g = values(n, 9);
        // v (Adam's second moment) is never negative.
        for v in [&mut a[2], &mut b[2]] {
            v.iter_mut().for_each(|e| *e = e.abs());
        }
        for step in 1..4 {
            let [p, m, v, e] = &mut a[..] else { unreachable!() };
            adam_ema_update(p, &g, m, v, e, step, 1e-3, 0.9, 0.999, 1e-8, 0.999);
            let [p, m, v, e] = &mut b[..] else { unreachable!() };
            let k = AdamConsts {
                lr: 1e-3,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                ema_decay: 0.999,
                bc1: (1.0 - (0.9f32 as f64).powi(step as i32)) as f32,
                bc2: (1.0 - (0.999f32 as f64).powi(step as i32)) as f32,
            };
            adam_ema_portable(p, &g, m, v, e, k);
        }
        for (u, w) in a.iter().zip(&b) {
            assert_eq!(bits(u), bits(w), "adam_ema_update");
        }
    }

    /// Fails with the first few mismatches if `|got − want| > atol + rtol·|want|` anywhere.
    fn check(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let bad: Vec<String> = got
            .iter()
            .zip(want)
            .enumerate()
            .filter(|(_, (g, w))| {
                // Written so that NaN counts as a mismatch.
                let within = (**g - **w).abs() <= atol + rtol * w.abs();
                !within
            })
            .take(5)
            .map(|(i, (g, w))| format!("[{i}] got {g} want {w}"))
            .collect();
        assert!(bad.is_empty(), "{what}: {}", bad.join(", "));
    }

    const SHAPES: [(usize, usize, usize); 4] = [(1, 1, 1), (3, 5, 7), (17, 33, 9), (64, 128, 128)];

    /// The tangent kernels against their definitions: a bias-free linear map, the weight-only
    /// gradient, silu'·ẋ, and the backward through it with silu'' (the engine's `silu_grad2`).
    #[test]
    fn tangent_kernels_match_their_definitions() {
        for (rows, inp, out) in SHAPES {
            let (x, w) = (values(rows * inp, 11), values(out * inp, 12));
            let mut y = vec![f32::NAN; rows * out];
            linear_tangent(&x, &w, &mut y, rows, inp, out);
            let mut want = vec![f32::NAN; rows * out];
            linear_fwd(&x, &w, &vec![0.0; out], &mut want, rows, inp, out);
            check("linear_tangent", &y, &want, 1e-5, 1e-5);
            let dy = values(rows * out, 13);
            let (mut dw, mut db) = (vec![0.5f32; out * inp], vec![0.0f32; out]);
            let mut dw2 = dw.clone();
            linear_bwd_weight(&dy, &x, &mut dw, rows, inp, out);
            linear_bwd_params(&dy, &x, &mut dw2, &mut db, rows, inp, out);
            check("linear_bwd_weight", &dw, &dw2, 0.0, 0.0);
        }
        let x: Vec<f32> = values(200, 14).iter().map(|v| 6.0 * v).collect();
        let (xd, dyd) = (values(200, 15), values(200, 16));
        let (mut y, mut sig) = (vec![0.0; 200], vec![0.0; 200]);
        silu_fwd_sig(&x, &mut y, &mut sig);
        let mut yd = vec![0.0; 200];
        silu_tangent_sig(&x, &sig, &xd, &mut yd);
        let want: Vec<f32> = x.iter().zip(&xd).map(|(&v, &d)| d * silu_grad(v)).collect();
        check("silu_tangent_sig", &yd, &want, 0.0, 0.0);
        let (mut dxd, mut extra) = (vec![1.0f32; 200], vec![0.0; 200]);
        silu_tangent_bwd_sig(&x, &sig, &xd, &dyd, &mut dxd, &mut extra, true);
        let want: Vec<f32> = x.iter().zip(&dyd).map(|(&v, &g)| 1.0 + g * silu_grad(v)).collect();
        check("silu_tangent_bwd_sig dxdot", &dxd, &want, 1e-7, 0.0);
        let want: Vec<f32> =
            (0..200).map(|i| dyd[i] * xd[i] * tinyscore_engine::net::silu_grad2(x[i])).collect();
        check("silu_tangent_bwd_sig extra", &extra, &want, 1e-7, 1e-5);
    }

    #[test]
    fn linear_fwd_matches_scalar_loop() {
        for (rows, inp, out) in SHAPES {
            let (x, w, b) = (values(rows * inp, 1), values(out * inp, 2), values(out, 3));
            let mut y = vec![f32::NAN; rows * out];
            linear_fwd(&x, &w, &b, &mut y, rows, inp, out);
            let mut want = vec![0.0; rows * out];
            for r in 0..rows {
                for o in 0..out {
                    let mut s = b[o];
                    for i in 0..inp {
                        s += x[r * inp + i] * w[o * inp + i];
                    }
                    want[r * out + o] = s;
                }
            }
            check("linear_fwd", &y, &want, 1e-5, 1e-4);
        }
    }

    #[test]
    fn linear_backward_matches_scalar_loops() {
        for (rows, inp, out) in SHAPES {
            let (x, w, dy) = (values(rows * inp, 4), values(out * inp, 5), values(rows * out, 6));
            let mut dx = vec![f32::NAN; rows * inp];
            linear_bwd_input(&dy, &w, &mut dx, rows, inp, out);
            let (dw0, db0) = (values(out * inp, 7), values(out, 8));
            let (mut dw, mut db) = (dw0.clone(), db0.clone());
            linear_bwd_params(&dy, &x, &mut dw, &mut db, rows, inp, out);

            let mut want_dx = vec![0.0; rows * inp];
            for r in 0..rows {
                for i in 0..inp {
                    want_dx[r * inp + i] = (0..out).map(|o| dy[r * out + o] * w[o * inp + i]).sum();
                }
            }
            let (mut want_dw, mut want_db) = (dw0.clone(), db0.clone());
            for o in 0..out {
                for i in 0..inp {
                    want_dw[o * inp + i] += (0..rows).map(|r| dy[r * out + o] * x[r * inp + i]).sum::<f32>();
                }
                want_db[o] += (0..rows).map(|r| dy[r * out + o]).sum::<f32>();
            }
            check("dx", &dx, &want_dx, 1e-5, 1e-4);
            check("dW", &dw, &want_dw, 1e-5, 1e-4);
            check("db", &db, &want_db, 1e-5, 1e-4);
        }
    }

    #[test]
    fn gemm_is_repeatable() {
        let (rows, inp, out) = (64, 128, 128);
        let (x, w, b) = (values(rows * inp, 9), values(out * inp, 10), values(out, 11));
        let (mut y1, mut y2) = (vec![0.0; rows * out], vec![0.0; rows * out]);
        linear_fwd(&x, &w, &b, &mut y1, rows, inp, out);
        linear_fwd(&x, &w, &b, &mut y2, rows, inp, out);
        assert_eq!(
            y1.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            y2.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn silu_kernels_match_definition() {
        let x: Vec<f32> = values(100, 12).iter().map(|v| v * 8.0).collect();
        let dy = values(100, 13);
        let mut y = vec![0.0; 100];
        silu_fwd(&x, &mut y);
        let want: Vec<f32> = x.iter().map(|&v| (v as f64 / (1.0 + (-v as f64).exp())) as f32).collect();
        check("silu", &y, &want, 1e-6, 1e-5);

        let mut dx = vec![0.0; 100];
        silu_bwd(&x, &dy, &mut dx);
        let grad = |v: f64| {
            let s = 1.0 / (1.0 + (-v).exp());
            s * (1.0 + v * (1.0 - s))
        };
        let want: Vec<f32> = x.iter().zip(&dy).map(|(&v, &g)| (g as f64 * grad(v as f64)) as f32).collect();
        check("silu_bwd", &dx, &want, 1e-6, 1e-5);

        let mut acc = vec![1.0; 100];
        silu_bwd_acc(&x, &dy, &mut acc);
        let want: Vec<f32> = want.iter().map(|w| w + 1.0).collect();
        check("silu_bwd_acc", &acc, &want, 1e-6, 1e-5);
    }

    #[test]
    fn silu_with_kept_sigmoid_is_bit_identical_to_the_engine() {
        let x: Vec<f32> =
            values(1000, 19).iter().map(|v| v * 30.0).chain([0.0, -0.0, 88.0, -88.0, -104.0]).collect();
        let n = x.len();
        let dy = values(n, 20);
        let (mut y, mut sig) = (vec![0.0; n], vec![0.0; n]);
        silu_fwd_sig(&x, &mut y, &mut sig);
        let mut want = vec![0.0; n];
        silu_fwd(&x, &mut want);
        assert_eq!(
            y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        // Both run eight lanes at a time: against the engine's scalar definitions as well.
        let scalar: Vec<u32> = x.iter().map(|&v| silu(v).to_bits()).collect();
        assert_eq!(y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), scalar);
        let sigma: Vec<u32> = x.iter().map(|&v| (1.0 / (1.0 + libm::expf(-v))).to_bits()).collect();
        assert_eq!(sig.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), sigma);
        let (mut dx, mut want_dx) = (vec![0.0; n], vec![0.0; n]);
        silu_bwd_sig(&x, &sig, &dy, &mut dx);
        silu_bwd(&x, &dy, &mut want_dx);
        assert_eq!(
            dx.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            want_dx.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        let (mut acc, mut want_acc) = (vec![0.5; n], vec![0.5; n]);
        silu_bwd_sig_acc(&x, &sig, &dy, &mut acc);
        silu_bwd_acc(&x, &dy, &mut want_acc);
        assert_eq!(
            acc.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            want_acc.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn broadcast_and_add() {
        let mut y = vec![1.0, 2.0, 3.0, 4.0];
        add_row_broadcast(&mut y, &[10.0, 20.0]);
        assert_eq!(y, [11.0, 22.0, 13.0, 24.0]);
        add_inplace(&mut y, &[1.0, 1.0, 1.0, 1.0]);
        assert_eq!(y, [12.0, 23.0, 14.0, 25.0]);
    }

    #[test]
    fn dsm_inputs_follow_the_forward_process() {
        let dim = 3;
        let data = values(10 * dim, 14);
        let sched = VpDiscrete::new(100, BetaSchedule::DDPM_LINEAR).unwrap();
        let process = Diffusion::Discrete(sched.clone());
        let (batch, freqs) = (8usize, 4usize);
        let draw = DsmDraw { seed: 5, step: 7, batch, first: 0 };
        let (mut xt, mut eps, mut t, mut phi) =
            (vec![0.0; batch * dim], vec![0.0; batch * dim], vec![0.0; batch], vec![0.0; batch * freqs]);
        dsm_inputs(
            &data,
            dim,
            &process,
            draw,
            TimeDraw::UNIFORM,
            batch,
            freqs,
            &mut xt,
            &mut eps,
            &mut t,
            &mut phi,
        );
        for r in 0..batch {
            let n = (t[r] * 100.0).round() as usize;
            assert!((1..=100).contains(&n) && sched.time(n) == t[r]);
            // Exactly one data row must explain x_t given ε.
            let (a, s) = (sched.alpha(n), sched.sigma(n));
            let hits = (0..10)
                .filter(|&j| {
                    (0..dim).all(|d| {
                        (xt[r * dim + d] - (a * data[j * dim + d] + s * eps[r * dim + d])).abs() < 1e-6
                    })
                })
                .count();
            assert!(hits >= 1, "row {r}");
            let mut want_phi = [0.0; 4];
            time_features(t[r], &mut want_phi);
            assert_eq!(&phi[r * freqs..(r + 1) * freqs], &want_phi);
        }
        // A chunk starting at row 3 draws exactly rows 3.. of the whole batch.
        let part = DsmDraw { first: 3, ..draw };
        let (mut xt2, mut eps2, mut t2, mut phi2) =
            (vec![0.0; 5 * dim], vec![0.0; 5 * dim], vec![0.0; 5], vec![0.0; 5 * freqs]);
        dsm_inputs(
            &data,
            dim,
            &process,
            part,
            TimeDraw::UNIFORM,
            5,
            freqs,
            &mut xt2,
            &mut eps2,
            &mut t2,
            &mut phi2,
        );
        assert_eq!(&xt2[..], &xt[3 * dim..]);
        assert_eq!(&eps2[..], &eps[3 * dim..]);
        assert_eq!(&t2[..], &t[3..]);
        // A different step gives different draws.
        let other = DsmDraw { step: 8, ..draw };
        dsm_inputs(
            &data,
            dim,
            &process,
            other,
            TimeDraw::UNIFORM,
            5,
            freqs,
            &mut xt2.clone(),
            &mut eps2,
            &mut t2,
            &mut phi2,
        );
        assert_ne!(&eps2[..], &eps[..5 * dim]);
    }

    #[test]
    fn dsm_steps_cover_the_range_uniformly() {
        let process = Diffusion::Discrete(VpDiscrete::new(10, BetaSchedule::DDPM_LINEAR).unwrap());
        let batch = 10_000;
        let data = vec![0.0f32; 4];
        let (mut xt, mut eps, mut t, mut phi) =
            (vec![0.0; batch], vec![0.0; batch], vec![0.0; batch], vec![0.0; batch * 2]);
        dsm_inputs(
            &data,
            1,
            &process,
            DsmDraw { seed: 1, step: 0, batch, first: 0 },
            TimeDraw::UNIFORM,
            batch,
            2,
            &mut xt,
            &mut eps,
            &mut t,
            &mut phi,
        );
        let mut counts = [0usize; 11];
        for &v in &t {
            counts[(v * 10.0).round() as usize] += 1;
        }
        assert_eq!(counts[0], 0);
        for c in &counts[1..] {
            assert!((800..1200).contains(c), "{counts:?}");
        }
    }

    /// The times of `batch` examples of step 0 drawn with `times` on `process`.
    fn drawn_times(process: &Diffusion, times: TimeDraw, batch: usize) -> Vec<f32> {
        let data = vec![0.0f32; 4];
        let (mut xt, mut eps, mut t, mut phi) =
            (vec![0.0; batch], vec![0.0; batch], vec![0.0; batch], vec![0.0; batch * 2]);
        let draw = DsmDraw { seed: 1, step: 0, batch, first: 0 };
        dsm_inputs(&data, 1, process, draw, times, batch, 2, &mut xt, &mut eps, &mut t, &mut phi);
        t
    }

    #[test]
    fn low_noise_draw_follows_its_mixture() {
        let steps = 100u32;
        let process = Diffusion::Discrete(VpDiscrete::new(steps, BetaSchedule::DDPM_LINEAR).unwrap());
        let batch = 40_000;
        let uniform = drawn_times(&process, TimeDraw::UNIFORM, batch);
        let mixed = TimeDraw::new(0.5, 0.3).unwrap();
        let t = drawn_times(&process, mixed, batch);
        assert_eq!(mixed.low_steps(steps), 30);
        let mut counts = vec![0usize; steps as usize + 1];
        for &v in &t {
            counts[(v * steps as f32).round() as usize] += 1;
        }
        assert_eq!(counts[0], 0);
        // Each step within ±5 standard deviations of its expected count under P(n).
        for n in 1..=steps {
            let p = mixed.probability(n, steps);
            let (want, sd) = (batch as f64 * p, (batch as f64 * p * (1.0 - p)).sqrt());
            let got = counts[n as usize] as f64;
            assert!((got - want).abs() < 5.0 * sd, "step {n}: {got} drawn, {want:.0} expected");
        }
        // 65% of the draws on n ≤ 30 (30% under the uniform draw).
        let low: usize = counts[1..=30].iter().sum();
        assert!((low as f64 / batch as f64 - 0.65).abs() < 0.01, "{low}");
        // An example not drawn low keeps its uniform time, bit for bit; a low one is at n ≤ M.
        let (mut same, mut moved) = (0, 0);
        for (&a, &b) in t.iter().zip(&uniform) {
            if a == b {
                same += 1;
            } else {
                moved += 1;
                assert!(a <= 0.3, "{a} moved above the low range");
            }
        }
        assert!(same > batch / 2 && moved > batch / 4, "{same} kept, {moved} moved");
        // The probabilities sum to 1.
        let total: f64 = (1..=steps).map(|n| mixed.probability(n, steps)).sum();
        assert!((total - 1.0).abs() < 1e-12);
    }

    #[test]
    fn degenerate_low_noise_draws() {
        let steps = 50u32;
        let process = Diffusion::Discrete(VpDiscrete::new(steps, BetaSchedule::DDPM_LINEAR).unwrap());
        let uniform = drawn_times(&process, TimeDraw::UNIFORM, 5000);
        // The low range being the whole range is the uniform draw, whatever the share.
        assert_eq!(drawn_times(&process, TimeDraw::new(0.7, 1.0).unwrap(), 5000), uniform);
        // A share of 0 is the uniform draw (and canonical), whatever the range.
        assert_eq!(TimeDraw::new(0.0, 0.2).unwrap(), TimeDraw::UNIFORM);
        // Share 1: every step in 1..=M; a tiny range still has one step.
        let all_low = drawn_times(&process, TimeDraw::new(1.0, 0.2).unwrap(), 5000);
        assert!(all_low.iter().all(|&t| t > 0.0 && t <= 10.0 / 50.0 + 1e-6));
        let one = drawn_times(&process, TimeDraw::new(1.0, 1e-4).unwrap(), 100);
        assert!(one.iter().all(|&t| t == process_time(&process, 1)), "{one:?}");
        // The continuous process: low draws land in [t_ε, t_ε + (1 − t_ε)·max].
        let sde = Diffusion::sde(tinyscore_engine::schedule::Sde::VP, 1e-3).unwrap();
        let t = drawn_times(&sde, TimeDraw::new(1.0, 0.25).unwrap(), 5000);
        let top = 1e-3 + (1.0 - 1e-3) * 0.25;
        assert!(t.iter().all(|&v| (1e-3..=top + 1e-6).contains(&v)));
        assert!(t.iter().any(|&v| v > 0.9 * top), "the low range is covered");
        let half = drawn_times(&sde, TimeDraw::new(0.5, 0.25).unwrap(), 20_000);
        let low = half.iter().filter(|&&v| v <= top).count() as f64 / 20_000.0;
        assert!((low - (0.5 + 0.5 * 0.25)).abs() < 0.015, "{low}");
    }

    fn process_time(process: &Diffusion, n: usize) -> f32 {
        match process {
            Diffusion::Discrete(s) => s.time(n),
            _ => unreachable!(),
        }
    }

    #[test]
    fn bad_low_noise_draws_are_refused() {
        for share in [-0.1, 1.01, f32::NAN, f32::INFINITY] {
            let e = TimeDraw::new(share, 0.3).unwrap_err();
            assert!(matches!(e, TimeDrawError::Share(_)), "{share}");
            assert!(e.to_string().contains("[0, 1]"));
        }
        for max in [0.0, -0.5, 1.5, f32::NAN] {
            let e = TimeDraw::new(0.5, max).unwrap_err();
            assert!(matches!(e, TimeDrawError::Max(_)), "{max}");
            assert!(e.to_string().contains("(0, 1]"));
        }
        assert!(TimeDraw::new(1.0, 1.0).is_ok() && TimeDraw::new(0.0, 1e-6).is_ok());
    }

    #[test]
    fn mse_matches_definition() {
        let (p, y) = (values(12, 15), values(12, 16));
        let mut g = vec![0.0; 12];
        let loss = mse_loss_grad(&p, &y, 24, &mut g);
        let want: f64 = p.iter().zip(&y).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>() / 24.0;
        assert!((loss - want).abs() < 1e-9);
        let want_g: Vec<f32> = p.iter().zip(&y).map(|(a, b)| 2.0 * (a - b) / 24.0).collect();
        check("mse grad", &g, &want_g, 1e-7, 1e-6);
    }

    #[test]
    fn clipping_scales_to_max_norm() {
        let mut g = vec![3.0, 4.0];
        assert_eq!(clip_grad_norm(&mut g, 1.0), 5.0);
        check("clipped", &g, &[0.6, 0.8], 1e-6, 0.0);
        let mut g = vec![0.3, 0.4];
        assert!((clip_grad_norm(&mut g, 1.0) - 0.5).abs() < 1e-7);
        assert_eq!(g, [0.3, 0.4]);
        let mut g = vec![30.0, 40.0];
        clip_grad_norm(&mut g, f32::INFINITY);
        assert_eq!(g, [30.0, 40.0]);
    }

    #[test]
    fn adam_matches_scalar_reference() {
        let n = 50;
        let grads0 = values(n, 17);
        let mut p = values(n, 18);
        let (mut m, mut v, mut ema) = (vec![0.0; n], vec![0.0; n], p.clone());
        let (mut rp, mut rm, mut rv, mut re): (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) = (
            p.iter().map(|&x| x as f64).collect(),
            vec![0.0; n],
            vec![0.0; n],
            p.iter().map(|&x| x as f64).collect(),
        );
        let (lr, b1, b2, eps, d) = (1e-2f32, 0.9f32, 0.999f32, 1e-8f32, 0.9f32);
        for step in 1..=5u64 {
            let g: Vec<f32> = grads0.iter().map(|x| x * step as f32).collect();
            adam_ema_update(&mut p, &g, &mut m, &mut v, &mut ema, step, lr, b1, b2, eps, d);
            for i in 0..n {
                let gi = g[i] as f64;
                rm[i] = 0.9 * rm[i] + 0.1 * gi;
                rv[i] = 0.999 * rv[i] + 0.001 * gi * gi;
                let mh = rm[i] / (1.0 - 0.9f64.powi(step as i32));
                let vh = rv[i] / (1.0 - 0.999f64.powi(step as i32));
                rp[i] -= 1e-2 * mh / (vh.sqrt() + 1e-8);
                re[i] = 0.9 * re[i] + 0.1 * rp[i];
            }
        }
        let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
        check("params", &p, &f(&rp), 1e-5, 1e-4);
        check("ema", &ema, &f(&re), 1e-5, 1e-4);
    }
}
