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
use tinyscore_engine::graph::mlp;
use tinyscore_engine::graph::{Branch, Layer, Op, Shape};
use tinyscore_engine::net::time_features;
use tinyscore_engine::net::Dims;
use tinyscore_kernels::conv::{self, Conv1d};
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

    /// ScoreNet v1 of `dims` as a graph.
    pub fn mlp(dims: &Dims) -> Self {
        Self::new(mlp::build(dims).expect("valid ScoreNet v1 sizes"))
    }

    pub fn input(&self) -> Shape {
        self.plan.input()
    }

    /// The most time features of a `time` layer (what [`Activations::phi`] holds per row).
    pub fn freqs(&self) -> usize {
        self.layers
            .iter()
            .map(|l| if let Op::TimeFeatures { freqs } = l.op { freqs } else { 0 })
            .max()
            .unwrap_or(0)
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

    /// The kernel shape of a Conv1d layer `op` with output `out` over `rows` rows.
    fn conv(&self, op: &Op, out: Shape, rows: usize) -> Conv1d {
        let Op::Conv1d { x, kernel, dilation, stride, .. } = *op else { unreachable!("not a conv") };
        let input = self.value_shape(x);
        Conv1d {
            rows,
            l_in: input.length,
            c_in: input.channels,
            c_out: out.channels,
            k: kernel,
            dil: dilation,
            stride,
        }
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
    /// (cap, F) scratch for φ(t) where a caller forms it (the DSM inputs); the `time` layers
    /// compute their own from `t`.
    pub phi: Vec<f32>,
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
    /// The convolutions' im2col tiles.
    scratch: Vec<f32>,
}

impl Activations {
    /// The f32 values [`Activations::new`] allocates per row (every value and its gradient, the
    /// SiLU inputs' σ, the input, output and time features), for a caller to bound a batch.
    pub fn floats_per_row(net: &Net) -> usize {
        let d = net.input().len();
        let values: usize = net.layers.iter().map(|l| l.shape.len()).sum::<usize>() + d;
        let sig: usize =
            net.layers.iter().filter(|l| matches!(l.op, Op::Silu { .. })).map(|l| l.shape.len()).sum();
        2 * values + sig + 3 * d + net.freqs() + 1
    }

    pub fn new(net: &Net, cap: usize) -> Self {
        let d = net.input().len();
        let z = |n: usize| vec![0.0f32; cap * n];
        let mut values = vec![z(d)];
        values.extend(net.layers.iter().map(|l| z(l.shape.len())));
        let sig = net
            .layers
            .iter()
            .map(|l| if matches!(l.op, Op::Silu { .. }) { z(l.shape.len()) } else { Vec::new() })
            .collect();
        let grad = values.iter().map(|v| vec![0.0f32; v.len()]).collect();
        let scratch = net
            .layers
            .iter()
            .filter(|l| matches!(l.op, Op::Conv1d { .. }))
            .map(|l| net.conv(&l.op, l.shape, cap).scratch_len())
            .max()
            .unwrap_or(0);
        Self {
            cap,
            t: vec![0.0; cap],
            phi: z(net.freqs()),
            x: z(d),
            out: z(d),
            d_out: z(d),
            values,
            sig,
            grad,
            scratch: vec![0.0; scratch],
        }
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
                conv::channel_bias_fwd(&mut y, val(v), rows, layer.shape.length, layer.shape.channels);
            }
            Op::Conv1d { x, res, weight, bias, .. } => {
                let (w, b, _, _) = net.params(p, weight, bias);
                let s = net.conv(&layer.op, layer.shape, rows);
                conv::conv1d_fwd(val(x), w, b, &mut y, &s, &mut act.scratch);
                if let Some(r) = res {
                    cpu::add_inplace(&mut y[..len], val(r));
                }
            }
            Op::Upsample2 { x } => {
                let xs = net.value_shape(x);
                conv::upsample2_fwd(val(x), &mut y, rows, xs.length, xs.channels);
            }
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

/// [`backward_input`] of `points · group` cotangent rows against a [`forward`] of `points` rows:
/// cotangent row r (set in `act.d_out`, `act.cap` ≥ `points · group`) uses the activations of
/// forward row `r / group`, so `group` vector-Jacobian products at one input cost one forward
/// pass. `dx` (`points · group`, D) gets the same bits as [`backward_input`] after a forward of
/// every point repeated `group` times (the forward values are shared, not recomputed).
pub(crate) fn backward_input_shared(
    net: &Net,
    p: &[f32],
    act: &mut Activations,
    dx: &mut [f32],
    points: usize,
    group: usize,
) {
    let rows = points * group;
    assert!(
        group >= 1 && rows <= act.cap,
        "backward_input_shared: {points}·{group} rows, capacity {}",
        act.cap
    );
    backward_full(net, p, act, &mut [], rows, Want::Input, None, group);
    let n = rows * net.input().len();
    if net.transposed() {
        transpose(&act.grad[0], dx, rows, net.input(), true);
    } else {
        dx[..n].copy_from_slice(&act.grad[0][..n]);
    }
}

fn backward_impl(net: &Net, p: &[f32], act: &mut Activations, grads: &mut [f32], rows: usize, want: Want) {
    backward_full(net, p, act, grads, rows, want, None, 1);
}

#[allow(clippy::too_many_arguments)]
fn backward_full(
    net: &Net,
    p: &[f32],
    act: &mut Activations,
    grads: &mut [f32],
    rows: usize,
    want: Want,
    tan: Option<&Tangents>,
    group: usize,
) {
    // Shared forward rows only feed the input gradient (the SiLUs read forward values).
    debug_assert!(group == 1 || (want == Want::Input && tan.is_none()));
    let nl = net.layers.len();
    // Only the first `rows` rows of each gradient are read or accumulated into.
    for (v, g) in act.grad.iter_mut().enumerate() {
        g[..rows * net.value_shape(v as u16).len()].fill(0.0);
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
                    let n = rows * net.value_shape(x).len();
                    cpu::linear_bwd_input_acc(dy_s, w, &mut act.grad[x as usize][..n], rows, inp, out);
                }
                if let Some(r) = res {
                    add(&mut act.grad, r, dy_s);
                }
            }
            Op::Silu { x } if group > 1 => {
                // Row r's forward values are those of row r / group.
                let c = layer.shape.len();
                let (xs, sig) = (&vals[x as usize], &act.sig[i]);
                let gx = act.grad[x as usize][..len].chunks_exact_mut(c);
                for (r, (g, d)) in gx.zip(dy_s.chunks_exact(c)).enumerate() {
                    let f = r / group * c;
                    cpu::silu_bwd_sig_acc(&xs[f..f + c], &sig[f..f + c], d, g);
                }
            }
            Op::Silu { x } => {
                let (xs, sig) = (val(x), &act.sig[i][..len]);
                cpu::silu_bwd_sig_acc(xs, sig, dy_s, &mut act.grad[x as usize][..len]);
                if let Some(t) = tan {
                    cpu::add_inplace(&mut act.grad[x as usize][..len], &t.ext[i][..len]);
                }
            }
            Op::Add { a, b } => {
                add(&mut act.grad, a, dy_s);
                add(&mut act.grad, b, dy_s);
            }
            Op::ChannelBias { x, v } => {
                add(&mut act.grad, x, dy_s);
                if want == Want::Params {
                    let c = layer.shape.channels;
                    conv::channel_bias_bwd(
                        dy_s,
                        &mut act.grad[v as usize][..rows * c],
                        rows,
                        layer.shape.length,
                        c,
                    );
                }
            }
            Op::Conv1d { x, res, weight, bias, .. } => {
                let (w, _, _, _) = net.params(p, weight, bias);
                let s = net.conv(&layer.op, layer.shape, rows);
                if want == Want::Params {
                    let (dw, db) = net.grads(grads, weight, bias);
                    conv::conv1d_bwd_params(dy_s, val(x), dw, db, &s, &mut act.scratch);
                }
                if x != 0 || want == Want::Input {
                    let n = rows * net.value_shape(x).len();
                    conv::conv1d_bwd_input_acc(dy_s, w, &mut act.grad[x as usize][..n], &s, &mut act.scratch);
                }
                if let Some(r) = res {
                    add(&mut act.grad, r, dy_s);
                }
            }
            Op::Upsample2 { x } => {
                let xs = net.value_shape(x);
                let n = rows * xs.len();
                conv::upsample2_bwd_acc(dy_s, &mut act.grad[x as usize][..n], rows, xs.length, xs.channels);
            }
        }
        act.grad[i + 1] = dy;
    }
}

/// Forward-mode tangents of one chunk (the Jacobian-vector product J·v = (∂ε̂/∂x)·v through the
/// network) and their backward pass, for sliced score matching. The time branch does not depend
/// on x, so it has no tangent; biases drop out of every tangent:
///
/// ```text
/// linear, conv: ẏ = W ẋ (+ ṙes)     silu: ẏ = silu'(x)·ẋ     add: ẏ = ȧ + ḃ
/// chan_bias: ẏ = ẋ                 upsample: ẏ = up(ẋ)
/// ```
#[derive(Clone, Debug)]
pub(crate) struct Tangents {
    /// (cap, D) the direction v, channel-major.
    pub v: Vec<f32>,
    /// (cap, D) ε̇ = J·v, channel-major.
    pub out: Vec<f32>,
    /// (cap, D) ∂L/∂ε̇, set by the caller before [`tangent_backward`].
    pub d_out: Vec<f32>,
    /// Per value: its tangent (empty for the time branch).
    dot: Vec<Vec<f32>>,
    /// Per value: ∂L/∂(its tangent).
    grad: Vec<Vec<f32>>,
    /// Per layer: a SiLU layer's share of ∂L/∂(its input), silu''·ẋ·∂L/∂ẏ.
    ext: Vec<Vec<f32>>,
}

impl Tangents {
    pub fn new(net: &Net, cap: usize) -> Self {
        let d = net.input().len();
        let z = |n: usize| vec![0.0f32; cap * n];
        let mut dot = vec![z(d)];
        dot.extend(net.layers.iter().map(|l| {
            if l.branch == Branch::Data {
                z(l.shape.len())
            } else {
                Vec::new()
            }
        }));
        let grad = dot.iter().map(|v| vec![0.0f32; v.len()]).collect();
        let ext = net
            .layers
            .iter()
            .map(|l| if matches!(l.op, Op::Silu { .. }) { z(l.shape.len()) } else { Vec::new() })
            .collect();
        Self { v: z(d), out: z(d), d_out: z(d), dot, grad, ext }
    }
}

/// The tangent pass after [`forward`] of the same rows, with `tan.v` set: writes `tan.out` = J·v.
pub(crate) fn tangent_forward(net: &Net, p: &[f32], act: &mut Activations, tan: &mut Tangents, rows: usize) {
    let n = rows * net.input().len();
    if net.transposed() {
        transpose(&tan.v, &mut tan.dot[0], rows, net.input(), false);
    } else {
        tan.dot[0][..n].copy_from_slice(&tan.v[..n]);
    }
    for (i, layer) in net.layers.iter().enumerate() {
        if layer.branch == Branch::Time {
            continue;
        }
        let len = rows * layer.shape.len();
        let mut y = std::mem::take(&mut tan.dot[i + 1]);
        let dots = &tan.dot;
        let dot = |v: u16| &dots[v as usize][..rows * net.value_shape(v).len()];
        let val = |v: u16| &act.values[v as usize][..rows * net.value_shape(v).len()];
        match layer.op {
            Op::TimeFeatures { .. } => {}
            Op::Linear { x, res, weight, bias } => {
                let (w, _, out, inp) = net.params(p, weight, bias);
                cpu::linear_tangent(dot(x), w, &mut y, rows, inp, out);
                if let Some(r) = res {
                    cpu::add_inplace(&mut y[..len], dot(r));
                }
            }
            Op::Conv1d { x, res, weight, bias, .. } => {
                let (w, _, _, _) = net.params(p, weight, bias);
                let s = net.conv(&layer.op, layer.shape, rows);
                conv::conv1d_tangent(dot(x), w, &mut y, &s, &mut act.scratch);
                if let Some(r) = res {
                    cpu::add_inplace(&mut y[..len], dot(r));
                }
            }
            Op::Silu { x } => cpu::silu_tangent_sig(val(x), &act.sig[i][..len], dot(x), &mut y[..len]),
            Op::Add { a, b } => {
                y[..len].copy_from_slice(dot(a));
                cpu::add_inplace(&mut y[..len], dot(b));
            }
            Op::ChannelBias { x, .. } => y[..len].copy_from_slice(dot(x)),
            Op::Upsample2 { x } => {
                let xs = net.value_shape(x);
                conv::upsample2_fwd(dot(x), &mut y, rows, xs.length, xs.channels);
            }
        }
        tan.dot[i + 1] = y;
    }
    let last = &tan.dot[net.layers.len()];
    if net.transposed() {
        transpose(last, &mut tan.out, rows, net.input(), true);
    } else {
        tan.out[..n].copy_from_slice(&last[..n]);
    }
}

/// Backward through the tangent pass, with `tan.d_out` = ∂L/∂ε̇ set: accumulates the weights'
/// share of ∂L/∂θ into `grads` and leaves the primal SiLU inputs' shares in `tan` for
/// [`backward_with_tangents`].
pub(crate) fn tangent_backward(
    net: &Net,
    p: &[f32],
    act: &mut Activations,
    tan: &mut Tangents,
    grads: &mut [f32],
    rows: usize,
) {
    let nl = net.layers.len();
    for g in tan.grad.iter_mut() {
        g.fill(0.0);
    }
    let n = rows * net.input().len();
    if net.transposed() {
        transpose(&tan.d_out, &mut tan.grad[nl], rows, net.input(), false);
    } else {
        tan.grad[nl][..n].copy_from_slice(&tan.d_out[..n]);
    }
    for (i, layer) in net.layers.iter().enumerate().rev() {
        if layer.branch == Branch::Time {
            continue;
        }
        let len = rows * layer.shape.len();
        let dy = std::mem::take(&mut tan.grad[i + 1]);
        let dy_s = &dy[..len];
        let add = |grad: &mut Vec<Vec<f32>>, v: u16, g: &[f32]| {
            let n = rows * net.value_shape(v).len();
            cpu::add_inplace(&mut grad[v as usize][..n], &g[..n]);
        };
        let dots = &tan.dot;
        let dot = |v: u16| &dots[v as usize][..rows * net.value_shape(v).len()];
        match layer.op {
            Op::TimeFeatures { .. } => {}
            Op::Linear { x, res, weight, bias } => {
                let (w, _, out, inp) = net.params(p, weight, bias);
                let (dw, _) = net.grads(grads, weight, bias);
                cpu::linear_bwd_weight(dy_s, dot(x), dw, rows, inp, out);
                if x != 0 {
                    let n = rows * net.value_shape(x).len();
                    cpu::linear_bwd_input_acc(dy_s, w, &mut tan.grad[x as usize][..n], rows, inp, out);
                }
                if let Some(r) = res {
                    add(&mut tan.grad, r, dy_s);
                }
            }
            Op::Conv1d { x, res, weight, bias, .. } => {
                let (w, _, _, _) = net.params(p, weight, bias);
                let s = net.conv(&layer.op, layer.shape, rows);
                let (dw, _) = net.grads(grads, weight, bias);
                conv::conv1d_bwd_weight(dy_s, dot(x), dw, &s, &mut act.scratch);
                if x != 0 {
                    let n = rows * net.value_shape(x).len();
                    conv::conv1d_bwd_input_acc(dy_s, w, &mut tan.grad[x as usize][..n], &s, &mut act.scratch);
                }
                if let Some(r) = res {
                    add(&mut tan.grad, r, dy_s);
                }
            }
            Op::Silu { x } => {
                let xs = &act.values[x as usize][..len];
                let xd = tan.dot[x as usize][..len].to_vec();
                let (grad, ext) = (&mut tan.grad, &mut tan.ext[i]);
                cpu::silu_tangent_bwd_sig(
                    xs,
                    &act.sig[i][..len],
                    &xd,
                    dy_s,
                    &mut grad[x as usize][..len],
                    &mut ext[..len],
                    true,
                );
            }
            Op::Add { a, b } => {
                add(&mut tan.grad, a, dy_s);
                add(&mut tan.grad, b, dy_s);
            }
            Op::ChannelBias { x, .. } => add(&mut tan.grad, x, dy_s),
            Op::Upsample2 { x } => {
                let xs = net.value_shape(x);
                let n = rows * xs.len();
                conv::upsample2_bwd_acc(dy_s, &mut tan.grad[x as usize][..n], rows, xs.length, xs.channels);
            }
        }
        tan.grad[i + 1] = dy;
    }
}

/// [`backward`] plus the primal shares a [`tangent_backward`] left in `tan`: each SiLU's input
/// gradient gains silu''·ẋ·∂L/∂ẏ. The sum of both is ∂L/∂θ of a loss of ε̂ and J·v.
pub(crate) fn backward_with_tangents(
    net: &Net,
    p: &[f32],
    act: &mut Activations,
    tan: &Tangents,
    grads: &mut [f32],
    rows: usize,
) {
    backward_full(net, p, act, grads, rows, Want::Params, Some(tan), 1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scorenet;

    /// The graph walk gives the hand-written ScoreNet v1 passes' bits (forward, parameter
    /// gradient, input gradient).
    #[test]
    fn the_graph_walk_matches_scorenet_v1_bit_for_bit() {
        for (dim, hidden, freqs, blocks, rows) in [(2, 16, 8, 2, 5), (7, 12, 6, 1, 3), (3, 32, 16, 3, 9)] {
            let dims = Dims { dim, hidden, freqs, blocks };
            let net = Net::new(mlp::build(&Dims { dim, hidden, freqs, blocks }).unwrap());
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
            // The tangent pass, its backward and the primal backward with the tangents' shares.
            let mut t_old = scorenet::Tangents::new(&dims, rows);
            let mut t_new = Tangents::new(&net, rows);
            for (i, v) in t_old.v.iter_mut().enumerate() {
                *v = if i % 3 == 0 { -1.0 } else { 1.0 };
            }
            t_new.v.copy_from_slice(&t_old.v);
            scorenet::tangent_forward(&lay, &p, &old, &mut t_old, rows);
            tangent_forward(&net, &p, &mut new, &mut t_new, rows);
            assert_eq!(bits(&t_new.out[..rows * dim]), bits(&t_old.out[..rows * dim]), "tangent {dims:?}");
            for (i, g) in t_old.d_out.iter_mut().enumerate() {
                *g = (i as f32 * 0.9).cos();
            }
            t_new.d_out.copy_from_slice(&t_old.d_out);
            let (mut g_old, mut g_new) = (vec![0.0f32; lay.count], vec![0.0f32; lay.count]);
            scorenet::tangent_backward(&lay, &p, &old, &mut t_old, &mut g_old, rows);
            tangent_backward(&net, &p, &mut new, &mut t_new, &mut g_new, rows);
            assert_eq!(bits(&g_new), bits(&g_old), "tangent backward {dims:?}");
            scorenet::backward_with_tangents(&lay, &p, &mut old, &t_old, &mut g_old, rows);
            backward_with_tangents(&net, &p, &mut new, &t_new, &mut g_new, rows);
            assert_eq!(bits(&g_new), bits(&g_old), "backward with tangents {dims:?}");
        }
    }

    /// `backward_input_shared` (a forward pass per point, `group` cotangent rows each) gives
    /// the bits of `backward_input` after a forward pass of every point repeated `group` times,
    /// on ScoreNet v1 and on a conv U-Net (channels-last values, transposed edges).
    #[test]
    fn shared_forward_input_gradient_matches_the_repeated_forward() {
        use tinyscore_engine::graph::unet::UNet;
        let nets = [
            Net::mlp(&Dims { dim: 3, hidden: 16, freqs: 8, blocks: 2 }),
            Net::new(
                UNet { channels: 2, length: 8, width: 3, levels: 1, blocks: 1, kernel: 3, freqs: 4, temb: 5 }
                    .build()
                    .unwrap(),
            ),
        ];
        for net in nets {
            let (d, points, group) = (net.input().len(), 3, 4);
            let rows = points * group;
            let p: Vec<f32> = (0..net.count).map(|i| ((i as f32) * 0.917).sin() * 0.5).collect();
            let (mut rep, mut shared) = (Activations::new(&net, rows), Activations::new(&net, rows));
            for r in 0..rows {
                let pt = r / group;
                rep.t[r] = 0.2 + 0.25 * pt as f32;
                for c in 0..d {
                    rep.x[r * d + c] = ((pt * d + c) as f32 * 0.61).cos();
                }
            }
            for pt in 0..points {
                shared.t[pt] = rep.t[pt * group];
                shared.x[pt * d..(pt + 1) * d].copy_from_slice(&rep.x[pt * group * d..(pt * group + 1) * d]);
            }
            let c: Vec<f32> = (0..rows * d).map(|i| (i as f32 * 0.37).sin()).collect();
            rep.d_out.copy_from_slice(&c);
            shared.d_out.copy_from_slice(&c);
            forward(&net, &p, &mut rep, rows);
            forward(&net, &p, &mut shared, points);
            let (mut want, mut got) = (vec![0.0f32; rows * d], vec![0.0f32; rows * d]);
            backward_input(&net, &p, &mut rep, &mut want, rows);
            backward_input_shared(&net, &p, &mut shared, &mut got, points, group);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want));
            assert!(want.iter().any(|&v| v.abs() > 1e-3), "vacuous: zero gradient");
        }
    }

    /// One row of the network in f64, written from the ops' definitions (`docs/scorenet.md`),
    /// independent of the kernels: x channel-major (C·L), values channels-last.
    fn naive(net: &Net, p: &[f64], x: &[f64], t: f32) -> Vec<f64> {
        let inp = net.input();
        let mut vals: Vec<Vec<f64>> = vec![vec![0.0; inp.len()]];
        for c in 0..inp.channels {
            for l in 0..inp.length {
                vals[0][l * inp.channels + c] = x[c * inp.length + l];
            }
        }
        let first = net.plan.first_tensor() as usize;
        let tensor = |i: u16| {
            let j = i as usize - first;
            let (r, c) = net.plan.tensors()[j];
            &p[net.offsets[j]..net.offsets[j] + r * c]
        };
        let silu = |v: f64| v / (1.0 + (-v).exp());
        for layer in &net.layers {
            let sh = layer.shape;
            let mut y = vec![0.0f64; sh.len()];
            match layer.op {
                Op::TimeFeatures { freqs } => {
                    let mut phi = vec![0.0f32; freqs];
                    time_features(t, &mut phi);
                    y = phi.iter().map(|&v| v as f64).collect();
                }
                Op::Linear { x, res, weight, bias } => {
                    let (w, b, xv) = (tensor(weight), tensor(bias), &vals[x as usize]);
                    for o in 0..sh.channels {
                        y[o] = b[o] + (0..xv.len()).map(|i| w[o * xv.len() + i] * xv[i]).sum::<f64>();
                        if let Some(r) = res {
                            y[o] += vals[r as usize][o];
                        }
                    }
                }
                Op::Conv1d { x, res, weight, bias, kernel, dilation, stride } => {
                    let (w, b, xv) = (tensor(weight), tensor(bias), &vals[x as usize]);
                    let xs = net.value_shape(x);
                    let pad = (dilation * (kernel - 1) / 2) as isize;
                    for l in 0..sh.length {
                        for co in 0..sh.channels {
                            let mut acc = b[co];
                            for ci in 0..xs.channels {
                                for j in 0..kernel {
                                    let pos = (stride * l + j * dilation) as isize - pad;
                                    if pos >= 0 && (pos as usize) < xs.length {
                                        acc += w[(co * xs.channels + ci) * kernel + j]
                                            * xv[pos as usize * xs.channels + ci];
                                    }
                                }
                            }
                            if let Some(r) = res {
                                acc += vals[r as usize][l * sh.channels + co];
                            }
                            y[l * sh.channels + co] = acc;
                        }
                    }
                }
                Op::Silu { x } => y = vals[x as usize].iter().map(|&v| silu(v)).collect(),
                Op::Add { a, b } => {
                    y = vals[a as usize].iter().zip(&vals[b as usize]).map(|(p, q)| p + q).collect()
                }
                Op::ChannelBias { x, v } => {
                    for (i, o) in y.iter_mut().enumerate() {
                        *o = vals[x as usize][i] + vals[v as usize][i % sh.channels];
                    }
                }
                Op::Upsample2 { x } => {
                    for (i, o) in y.iter_mut().enumerate() {
                        let (l, c) = (i / sh.channels, i % sh.channels);
                        *o = vals[x as usize][(l / 2) * sh.channels + c];
                    }
                }
            }
            vals.push(y);
        }
        let last = vals.last().unwrap();
        let mut out = vec![0.0; inp.len()];
        for c in 0..inp.channels {
            for l in 0..inp.length {
                out[c * inp.length + l] = last[l * inp.channels + c];
            }
        }
        out
    }

    /// The conv graph's forward pass agrees with the f64 definition, and its parameter and input
    /// gradients with central finite differences of it.
    #[test]
    #[allow(clippy::needless_range_loop)] // i indexes the parameters and their gradients alike
    fn conv_graph_gradients_match_finite_differences() {
        use tinyscore_engine::graph::unet::UNet;
        for u in [
            UNet { channels: 2, length: 8, width: 3, levels: 1, blocks: 1, kernel: 3, freqs: 4, temb: 5 },
            UNet { channels: 1, length: 12, width: 2, levels: 2, blocks: 1, kernel: 5, freqs: 6, temb: 3 },
        ] {
            let net = Net::new(u.build().unwrap());
            let (d, rows) = (net.input().len(), 3);
            let p: Vec<f32> = (0..net.count).map(|i| ((i as f32) * 0.917).sin() * 0.5).collect();
            let mut act = Activations::new(&net, rows);
            for r in 0..rows {
                act.t[r] = 0.1 + 0.3 * r as f32;
            }
            for (i, v) in act.x.iter_mut().enumerate() {
                *v = (i as f32 * 0.61).cos();
            }
            forward(&net, &p, &mut act, rows);
            let p64: Vec<f64> = p.iter().map(|&v| v as f64).collect();
            let xs64: Vec<f64> = act.x.iter().map(|&v| v as f64).collect();
            for r in 0..rows {
                let want = naive(&net, &p64, &xs64[r * d..(r + 1) * d], act.t[r]);
                for (g, w) in act.out[r * d..(r + 1) * d].iter().zip(&want) {
                    assert!((*g as f64 - w).abs() < 1e-4 + 1e-4 * w.abs(), "forward {u:?}: {g} vs {w}");
                }
            }
            let c: Vec<f32> = (0..rows * d).map(|i| (i as f32 * 0.37).sin()).collect();
            act.d_out.copy_from_slice(&c);
            let mut grads = vec![0.0f32; net.count];
            backward(&net, &p, &mut act, &mut grads, rows);
            let mut dx = vec![0.0f32; rows * d];
            backward_input(&net, &p, &mut act, &mut dx, rows);
            let loss = |p: &[f64], x: &[f64]| -> f64 {
                (0..rows)
                    .map(|r| {
                        let y = naive(&net, p, &x[r * d..(r + 1) * d], act.t[r]);
                        y.iter().zip(&c[r * d..]).map(|(y, c)| y * *c as f64).sum::<f64>()
                    })
                    .sum()
            };
            let h = 1e-6;
            let fd = |i: usize, wrt_x: bool| {
                let (mut pp, mut xx) = (p64.clone(), xs64.clone());
                let v = if wrt_x { &mut xx } else { &mut pp };
                let keep = v[i];
                v[i] = keep + h;
                let up = loss(&pp, &xx);
                let (mut pp, mut xx) = (p64.clone(), xs64.clone());
                let v = if wrt_x { &mut xx } else { &mut pp };
                v[i] = keep - h;
                (up - loss(&pp, &xx)) / (2.0 * h)
            };
            let (mut num, mut den) = (0.0f64, 0.0f64);
            for i in 0..net.count {
                let f = fd(i, false);
                num += (grads[i] as f64 - f).powi(2);
                den += f * f;
                assert!(
                    (grads[i] as f64 - f).abs() <= 1e-4 + 1e-2 * f.abs(),
                    "{u:?} param {i}: {} vs {f}",
                    grads[i]
                );
            }
            assert!(den > 1e-6 && (num / den).sqrt() < 1e-3, "{u:?}: relative error {}", (num / den).sqrt());
            for i in 0..rows * d {
                let f = fd(i, true);
                assert!((dx[i] as f64 - f).abs() <= 1e-4 + 1e-2 * f.abs(), "{u:?} dx {i}: {} vs {f}", dx[i]);
            }
            // J·v of the tangent pass against central differences along v.
            let mut tan = Tangents::new(&net, rows);
            for (i, v) in tan.v.iter_mut().enumerate() {
                *v = if i % 2 == 0 { 1.0 } else { -1.0 };
            }
            tangent_forward(&net, &p, &mut act, &mut tan, rows);
            for r in 0..rows {
                let shift = |sign: f64| -> Vec<f64> {
                    let x: Vec<f64> =
                        (0..d).map(|i| xs64[r * d + i] + sign * h * tan.v[r * d + i] as f64).collect();
                    naive(&net, &p64, &x, act.t[r])
                };
                let (up, down) = (shift(1.0), shift(-1.0));
                for i in 0..d {
                    let f = (up[i] - down[i]) / (2.0 * h);
                    let g = tan.out[r * d + i] as f64;
                    assert!((g - f).abs() <= 1e-4 + 1e-2 * f.abs(), "{u:?} J·v [{r}, {i}]: {g} vs {f}");
                }
            }
        }
    }
}
