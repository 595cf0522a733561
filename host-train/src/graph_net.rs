//! The trainer's walk of a layer graph (`tinyscore_engine::graph`): the forward pass over a
//! chunk of rows, the backward pass (parameter and input gradients), and the forward-mode
//! tangent pass with its backward (sliced score matching), all by walking the engine's layer
//! list with the CPU kernels of `tinyscore-kernels`. No layer sequence is written here: ScoreNet
//! v1 and the conv U-Net are the same code.
//!
//! Buffers: one per value, `(cap, L, C)` channels-last (value 0, the input x, is kept in that
//! layout too; the caller's `x` and `out` are channel-major `(cap, D)`, transposed here when C > 1
//! and L > 1). Every value is kept for the backward pass, with σ of every SiLU's input (so the
//! backward pass computes silu' without a second `expf`). Parameters are one flat vector in the
//! graph's tensor order (each Linear or Conv1d layer's weight, then its bias, in layer order:
//! for ScoreNet v1 the order of `Dims::params()`).

use tinyscore_engine::graph::build::Plan;
use tinyscore_engine::graph::{Branch, Layer, Op, Shape};
use tinyscore_engine::net::time_features;
use tinyscore_kernels::cpu;

/// A layer graph with its parameters' places in the flat vector.
#[derive(Clone, Debug)]
pub(crate) struct Net {
    pub plan: Plan,
    pub layers: Vec<Layer>,
    /// Offset of each parameter tensor (in plan order) in the flat vector.
    pub offsets: Vec<usize>,
    /// Parameter count.
    pub count: usize,
}

impl Net {
    pub fn new(plan: Plan) -> Self {
        let layers = plan.graph().expect("a built plan validates").layers().collect();
        let mut offsets = Vec::new();
        let mut off = 0;
        for &(r, c) in plan.tensors() {
            offsets.push(off);
            off += r * c;
        }
        Self { plan, layers, offsets, count: off }
    }

    pub fn input(&self) -> Shape {
        self.plan.input()
    }

    /// Weight and bias of a layer with parameters: (w, b, rows, cols).
    fn params<'p>(&self, p: &'p [f32], weight: u16, bias: u16) -> (&'p [f32], &'p [f32], usize, usize) {
        let first = self.plan.first_tensor() as usize;
        let (wi, bi) = (weight as usize - first, bias as usize - first);
        let (rows, cols) = self.plan.tensors()[wi];
        let (w0, b0) = (self.offsets[wi], self.offsets[bi]);
        (&p[w0..w0 + rows * cols], &p[b0..b0 + rows], rows, cols)
    }

    /// The gradient slices of a layer's weight and bias.
    fn grads<'g>(&self, g: &'g mut [f32], weight: u16, bias: u16) -> (&'g mut [f32], &'g mut [f32]) {
        let first = self.plan.first_tensor() as usize;
        let (wi, bi) = (weight as usize - first, bias as usize - first);
        let (rows, cols) = self.plan.tensors()[wi];
        let (w0, b0) = (self.offsets[wi], self.offsets[bi]);
        // The bias directly follows its weight in the flat vector.
        debug_assert_eq!(b0, w0 + rows * cols);
        g[w0..b0 + rows].split_at_mut(rows * cols)
    }

    fn value_shape(&self, v: u16) -> Shape {
        match v {
            0 => self.input(),
            v => self.layers[v as usize - 1].shape,
        }
    }

    /// Whether the graph's edges need a transposition (channel-major ↔ channels-last).
    fn transposed(&self) -> bool {
        let s = self.input();
        s.channels > 1 && s.length > 1
    }
}

/// Every buffer of one chunk's passes, for up to `cap` rows.
#[derive(Clone, Debug)]
pub(crate) struct Activations {
    pub cap: usize,
    /// (cap,) the diffusion times.
    pub t: Vec<f32>,
    /// (cap, D) the network input, channel-major.
    pub x: Vec<f32>,
    /// (cap, D) ε̂, channel-major.
    pub out: Vec<f32>,
    /// (cap, D) ∂L/∂ε̂, set by the caller before [`backward`].
    pub d_out: Vec<f32>,
    /// Per value (0 = x, i + 1 = layer i), (cap, L, C).
    values: Vec<Vec<f32>>,
    /// Per layer: σ of a SiLU layer's input (empty for other layers).
    sig: Vec<Vec<f32>>,
    /// Per value: ∂L/∂value.
    grad: Vec<Vec<f32>>,
    /// A layer's input gradient before it is added to its value's.
    tmp: Vec<f32>,
}

impl Activations {
    pub fn new(net: &Net, cap: usize) -> Self {
        let d = net.input().len();
        let z = |n: usize| vec![0.0f32; cap * n];
        let mut values = vec![z(d)];
        values.extend(net.layers.iter().map(|l| z(l.shape.len())));
        let sig = net.layers.iter().map(|l| if matches!(l.op, Op::Silu { .. }) { z(l.shape.len()) } else { Vec::new() }).collect();
        let grad = values.iter().map(|v| vec![0.0f32; v.len()]).collect();
        let widest = values.iter().map(Vec::len).max().unwrap_or(0);
        Self { cap, t: vec![0.0; cap], x: z(d), out: z(d), d_out: z(d), values, sig, grad, tmp: vec![0.0; widest] }
    }
}

/// (cap, C, L) channel-major → (cap, L, C) channels-last, or the reverse with `back`.
fn transpose(src: &[f32], dst: &mut [f32], rows: usize, s: Shape, back: bool) {
    let (c, l) = (s.channels, s.length);
    for r in 0..rows {
        let (a, b) = (&src[r * c * l..(r + 1) * c * l], &mut dst[r * c * l..(r + 1) * c * l]);
        for ch in 0..c {
            for p in 0..l {
                if back {
                    b[ch * l + p] = a[p * c + ch];
                } else {
                    b[p * c + ch] = a[ch * l + p];
                }
            }
        }
    }
}

/// y[r, l, c] += v[r, c].
fn channel_bias_fwd(y: &mut [f32], v: &[f32], rows: usize, l: usize, c: usize) {
    for r in 0..rows {
        let vr = &v[r * c..(r + 1) * c];
        for row in y[r * l * c..(r + 1) * l * c].chunks_exact_mut(c) {
            cpu::add_inplace(row, vr);
        }
    }
}

/// dv[r, c] += Σ_l dy[r, l, c], l increasing.
fn channel_bias_bwd(dy: &[f32], dv: &mut [f32], rows: usize, l: usize, c: usize) {
    for r in 0..rows {
        let dvr = &mut dv[r * c..(r + 1) * c];
        for row in dy[r * l * c..(r + 1) * l * c].chunks_exact(c) {
            cpu::add_inplace(dvr, row);
        }
    }
}

/// Forward pass of `rows` ≤ `cap` rows whose `t` and `x` are set; writes `act.out`.
pub(crate) fn forward(net: &Net, p: &[f32], act: &mut Activations, rows: usize) {
    let n = rows * net.input().len();
    if net.transposed() {
        transpose(&act.x, &mut act.values[0], rows, net.input(), false);
    } else {
        act.values[0][..n].copy_from_slice(&act.x[..n]);
    }
    for (i, layer) in net.layers.iter().enumerate() {
        let len = rows * layer.shape.len();
        let mut y = std::mem::take(&mut act.values[i + 1]);
        let vals = &act.values;
        let val = |v: u16| &vals[v as usize][..rows * net.value_shape(v).len()];
        match layer.op {
            Op::TimeFeatures { freqs } => {
                for (r, &t) in act.t[..rows].iter().enumerate() {
                    time_features(t, &mut y[r * freqs..(r + 1) * freqs]);
                }
            }
            Op::Linear { x, res, weight, bias } => {
                let (w, b, out, inp) = net.params(p, weight, bias);
                cpu::linear_fwd(val(x), w, b, &mut y, rows, inp, out);
                if let Some(r) = res {
                    cpu::add_inplace(&mut y[..len], val(r));
                }
            }
            Op::Silu { x } => cpu::silu_fwd_sig(val(x), &mut y[..len], &mut act.sig[i][..len]),
            Op::Add { a, b } => {
                y[..len].copy_from_slice(val(a));
                cpu::add_inplace(&mut y[..len], val(b));
            }
            Op::ChannelBias { x, v } => {
                y[..len].copy_from_slice(val(x));
                channel_bias_fwd(&mut y, val(v), rows, layer.shape.length, layer.shape.channels);
            }
            Op::Conv1d { .. } | Op::Upsample2 { .. } => todo!("conv kernels"),
        }
        act.values[i + 1] = y;
    }
    let last = &act.values[net.layers.len()];
    if net.transposed() {
        transpose(last, &mut act.out, rows, net.input(), true);
    } else {
        act.out[..n].copy_from_slice(&last[..n]);
    }
}

/// What a backward pass forms.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    /// ∂L/∂θ (the time branch included).
    Params,
    /// ∂L/∂x only (the time branch skipped).
    Input,
}

/// Backward pass after [`forward`] of the same rows, with `act.d_out` = ∂L/∂ε̂ set:
/// accumulates ∂L/∂θ into `grads` (flat, same layout as the parameters).
pub(crate) fn backward(net: &Net, p: &[f32], act: &mut Activations, grads: &mut [f32], rows: usize) {
    backward_impl(net, p, act, grads, rows, Want::Params);
}

/// ∂L/∂x after [`forward`], with `act.d_out` set: one vector-Jacobian product per row into `dx`
/// (rows, D), channel-major; no parameter gradient is formed.
pub(crate) fn backward_input(net: &Net, p: &[f32], act: &mut Activations, dx: &mut [f32], rows: usize) {
    backward_impl(net, p, act, &mut [], rows, Want::Input);
    let n = rows * net.input().len();
    if net.transposed() {
        transpose(&act.grad[0], dx, rows, net.input(), true);
    } else {
        dx[..n].copy_from_slice(&act.grad[0][..n]);
    }
}

fn backward_impl(net: &Net, p: &[f32], act: &mut Activations, grads: &mut [f32], rows: usize, want: Want) {
    let nl = net.layers.len();
    for g in act.grad.iter_mut() {
        g.fill(0.0);
    }
    let n = rows * net.input().len();
    if net.transposed() {
        transpose(&act.d_out, &mut act.grad[nl], rows, net.input(), false);
    } else {
        act.grad[nl][..n].copy_from_slice(&act.d_out[..n]);
    }
    for (i, layer) in net.layers.iter().enumerate().rev() {
        if want == Want::Input && layer.branch == Branch::Time {
            continue;
        }
        let len = rows * layer.shape.len();
        let dy = std::mem::take(&mut act.grad[i + 1]);
        let dy_s = &dy[..len];
        let vals = &act.values;
        let val = |v: u16| &vals[v as usize][..rows * net.value_shape(v).len()];
        // Adds `g` to ∂L/∂v (value 0: only when the input gradient is wanted).
        let add = |grad: &mut Vec<Vec<f32>>, v: u16, g: &[f32]| {
            let n = rows * net.value_shape(v).len();
            cpu::add_inplace(&mut grad[v as usize][..n], &g[..n]);
        };
        match layer.op {
            Op::TimeFeatures { .. } => {}
            Op::Linear { x, res, weight, bias } => {
                let (w, _, out, inp) = net.params(p, weight, bias);
                if want == Want::Params {
                    let (dw, db) = net.grads(grads, weight, bias);
                    cpu::linear_bwd_params(dy_s, val(x), dw, db, rows, inp, out);
                }
                if x != 0 || want == Want::Input {
                    cpu::linear_bwd_input(dy_s, w, &mut act.tmp, rows, inp, out);
                    add(&mut act.grad, x, &act.tmp);
                }
                if let Some(r) = res {
                    add(&mut act.grad, r, dy_s);
                }
            }
            Op::Silu { x } => {
                let (xs, sig) = (val(x), &act.sig[i][..len]);
                cpu::silu_bwd_sig_acc(xs, sig, dy_s, &mut act.grad[x as usize][..len]);
            }
            Op::Add { a, b } => {
                add(&mut act.grad, a, dy_s);
                add(&mut act.grad, b, dy_s);
            }
            Op::ChannelBias { x, v } => {
                add(&mut act.grad, x, dy_s);
                if want == Want::Params {
                    let c = layer.shape.channels;
                    channel_bias_bwd(dy_s, &mut act.grad[v as usize][..rows * c], rows, layer.shape.length, c);
                }
            }
            Op::Conv1d { .. } | Op::Upsample2 { .. } => todo!("conv kernels"),
        }
        act.grad[i + 1] = dy;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scorenet;
    use tinyscore_engine::graph::mlp::{self, MlpDims};
    use tinyscore_engine::net::Dims;

    /// The graph walk gives the hand-written ScoreNet v1 passes' bits (forward, parameter
    /// gradient, input gradient).
    #[test]
    fn the_graph_walk_matches_scorenet_v1_bit_for_bit() {
        for (dim, hidden, freqs, blocks, rows) in [(2, 16, 8, 2, 5), (7, 12, 6, 1, 3), (3, 32, 16, 3, 9)] {
            let dims = Dims { dim, hidden, freqs, blocks };
            let net = Net::new(mlp::build(&MlpDims { dim, hidden, freqs, blocks }).unwrap());
            let lay = scorenet::Layout::new(dims);
            assert_eq!(net.count, lay.count);
            let p: Vec<f32> = (0..net.count).map(|i| ((i as f32) * 0.731).sin() * 0.4).collect();
            let mut old = scorenet::Activations::new(&dims, rows);
            let mut new = Activations::new(&net, rows);
            for r in 0..rows {
                let t = 0.05 + 0.9 * r as f32 / rows as f32;
                new.t[r] = t;
                time_features(t, &mut old.phi[r * freqs..(r + 1) * freqs]);
                for c in 0..dim {
                    let v = ((r * dim + c) as f32 * 1.37).cos();
                    old.x[r * dim + c] = v;
                    new.x[r * dim + c] = v;
                }
            }
            scorenet::forward(&lay, &p, &mut old, rows);
            forward(&net, &p, &mut new, rows);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&new.out[..rows * dim]), bits(&old.out[..rows * dim]), "forward {dims:?}");
            for (i, g) in old.d_out.iter_mut().enumerate() {
                *g = (i as f32 * 0.3).sin();
            }
            new.d_out.copy_from_slice(&old.d_out);
            let (mut g_old, mut g_new) = (vec![0.0f32; lay.count], vec![0.0f32; lay.count]);
            scorenet::backward(&lay, &p, &mut old, &mut g_old, rows);
            backward(&net, &p, &mut new, &mut g_new, rows);
            assert_eq!(bits(&g_new), bits(&g_old), "parameter gradient {dims:?}");
            let (mut dx_old, mut dx_new) = (vec![0.0f32; rows * dim], vec![0.0f32; rows * dim]);
            scorenet::forward(&lay, &p, &mut old, rows);
            scorenet::backward_input(&lay, &p, &mut old, &mut dx_old, rows);
            backward_input(&net, &p, &mut new, &mut dx_new, rows);
            assert_eq!(bits(&dx_new), bits(&dx_old), "input gradient {dims:?}");
        }
    }
}
