//! CPU twins of the fused CUDA kernels: each one is the composition of [`crate::cpu`] kernels
//! that the fused GPU kernel computes in one launch. They define the GPU kernels' meaning and
//! are what `kernels/tests/cuda.rs` compares the GPU against; the CPU trainer calls the
//! [`crate::cpu`] pieces directly.

use crate::cpu;

/// `y = x·Wᵀ + b (+ add)`; with `act`, also `act = silu(y)` and `sig = σ(y)`
/// ([`cpu::linear_fwd`], [`cpu::add_inplace`], [`cpu::silu_fwd_sig`]).
/// x (rows, inp), w (out, inp), b (out,), y / add / act / sig (rows, out).
#[allow(clippy::too_many_arguments)]
pub fn linear_fwd(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    y: &mut [f32],
    (rows, inp, out): (usize, usize, usize),
    add: Option<&[f32]>,
    act: Option<(&mut [f32], &mut [f32])>,
) {
    let n = rows * out;
    cpu::linear_fwd(x, w, b, y, rows, inp, out);
    if let Some(add) = add {
        cpu::add_inplace(&mut y[..n], &add[..n]);
    }
    if let Some((a, s)) = act {
        cpu::silu_fwd_sig(&y[..n], &mut a[..n], &mut s[..n]);
    }
}

/// `dx = dy·W`, then with `silu = (pre, σ(pre))` multiplied by silu'(pre)
/// ([`cpu::silu_bwd_sig`]), written (`accumulate` false) or added to `dx`.
/// dy (rows, out), w (out, inp), dx / pre / σ (rows, inp).
pub fn linear_bwd_input(
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
    (rows, inp, out): (usize, usize, usize),
    silu: Option<(&[f32], &[f32])>,
    accumulate: bool,
) {
    let n = rows * inp;
    let mut tmp = vec![0.0f32; n];
    cpu::linear_bwd_input(dy, w, &mut tmp, rows, inp, out);
    match (silu, accumulate) {
        (Some((pre, sig)), false) => cpu::silu_bwd_sig(&pre[..n], &sig[..n], &tmp, &mut dx[..n]),
        (Some((pre, sig)), true) => cpu::silu_bwd_sig_acc(&pre[..n], &sig[..n], &tmp, &mut dx[..n]),
        (None, false) => dx[..n].copy_from_slice(&tmp),
        (None, true) => cpu::add_inplace(&mut dx[..n], &tmp),
    }
}

/// `dW = dyᵀ·x`, `db = Σ_rows dy`, overwritten ([`cpu::linear_bwd_params`] into zeros).
/// dy (rows, out), x (rows, inp), dw (out, inp), db (out,).
pub fn linear_bwd_params(
    dy: &[f32],
    x: &[f32],
    dw: &mut [f32],
    db: &mut [f32],
    (rows, inp, out): (usize, usize, usize),
) {
    dw[..out * inp].fill(0.0);
    db[..out].fill(0.0);
    cpu::linear_bwd_params(dy, x, dw, db, rows, inp, out);
}

/// One optimizer step over flat buffers as the GPU's `sq_partials` + `step_scalars` +
/// `adam_ema` compute it: global-norm clipping ([`cpu::clip_grad_norm`], applied to a copy of
/// the gradient), the warm-up learning rate of 1-based step `t`, then [`cpu::adam_ema_update`].
/// Returns ‖g‖ before clipping.
#[allow(clippy::too_many_arguments)]
pub fn clip_adam_ema(
    params: &mut [f32],
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    ema: &mut [f32],
    t: u64,
    (lr, warmup, max_norm): (f32, u64, f32),
    (beta1, beta2, eps, decay): (f32, f32, f32, f32),
) -> f32 {
    let mut g = grads.to_vec();
    let norm = cpu::clip_grad_norm(&mut g, max_norm);
    let lr_t = if warmup > 0 && t < warmup { lr * (t as f32 / warmup as f32) } else { lr };
    cpu::adam_ema_update(params, &g, m, v, ema, t, lr_t, beta1, beta2, eps, decay);
    norm
}
