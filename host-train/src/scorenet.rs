//! Tests only: ScoreNet v1's layers in the flat parameter vector and its hand-written forward,
//! backward and tangent passes, the oracle that `graph_net`'s walk of the same graph is held to
//! bit for bit (every backend, the CUDA one included, walks the layer graph).
//!
//! The network is the engine's (`tinyscore_engine::net`, `docs/scorenet.md`):
//!
//! ```text
//! temb = W_t2 · silu(W_t1 · φ(t) + b_t1) + b_t2          h_0 = W_in · x + b_in
//! u_b  = W_b1 · silu(h_{b−1}) + b_b1 + temb               h_b = h_{b−1} + W_b2 · silu(u_b) + b_b2
//! ε̂    = W_out · silu(h_B) + b_out
//! ```
//!
//! Parameters live in one flat vector in `Dims::params()` order, each matrix row-major
//! `(out, in)`; [`Layout`] records where each layer sits. [`Activations`] holds every buffer a
//! chunk of up to `cap` rows needs for the forward and backward pass, allocated once. The
//! forward pass keeps σ of every SiLU input, so the backward pass computes silu' without a
//! second `expf` (bit-identical to `engine::net::silu_grad`; `expf` was half the step time).

use tinyscore_engine::format::Role;
use tinyscore_engine::net::Dims;
use tinyscore_kernels::cpu;

/// Where one linear layer's weight `(out, in)` and bias `(out,)` sit in the flat vector. The
/// bias directly follows the weight (as `Dims::params()` lists them).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Linear {
    /// Offset of the weight.
    pub w: usize,
    /// Outputs.
    pub out: usize,
    /// Inputs.
    pub inp: usize,
}

// The passes that use these are the tests' oracle (see the module doc).
#[cfg_attr(not(test), allow(dead_code))]
impl Linear {
    fn weight<'a>(&self, p: &'a [f32]) -> &'a [f32] {
        &p[self.w..self.w + self.out * self.inp]
    }

    fn bias<'a>(&self, p: &'a [f32]) -> &'a [f32] {
        let b = self.w + self.out * self.inp;
        &p[b..b + self.out]
    }

    /// The weight's and the bias's gradient, mutably.
    fn grads<'a>(&self, g: &'a mut [f32]) -> (&'a mut [f32], &'a mut [f32]) {
        g[self.w..self.w + self.out * self.inp + self.out].split_at_mut(self.out * self.inp)
    }

    /// y (rows, out) = x (rows, in) · Wᵀ + b.
    fn fwd(&self, p: &[f32], x: &[f32], y: &mut [f32], rows: usize) {
        cpu::linear_fwd(x, self.weight(p), self.bias(p), y, rows, self.inp, self.out);
    }

    /// dW += dyᵀ·x, db += Σ dy.
    fn bwd_params(&self, g: &mut [f32], dy: &[f32], x: &[f32], rows: usize) {
        let (dw, db) = self.grads(g);
        cpu::linear_bwd_params(dy, x, dw, db, rows, self.inp, self.out);
    }

    /// dx (rows, in) = dy (rows, out) · W.
    fn bwd_input(&self, p: &[f32], dy: &[f32], dx: &mut [f32], rows: usize) {
        cpu::linear_bwd_input(dy, self.weight(p), dx, rows, self.inp, self.out);
    }
}

/// The layers of a ScoreNet in the flat parameter vector. The per-layer fields serve the tests'
/// oracle passes only.
#[derive(Clone, Debug)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct Layout {
    pub dims: Dims,
    pub time1: Linear,
    pub time2: Linear,
    pub input: Linear,
    /// (W_b1, W_b2) of each block.
    pub blocks: Vec<(Linear, Linear)>,
    pub output: Linear,
    /// Offset of every tensor of `Dims::params()`, in that order: (role, offset, rows, cols).
    pub tensors: Vec<(Role, usize, usize, usize)>,
    pub count: usize,
}

impl Layout {
    pub fn new(dims: Dims) -> Self {
        let mut tensors = Vec::new();
        let mut off = 0;
        for (role, rows, cols) in dims.params() {
            tensors.push((role, off, rows, cols));
            off += rows * cols;
        }
        let find = |want: Role| {
            let &(_, w, out, inp) =
                tensors.iter().find(|(r, ..)| *r == want).expect("Dims::params lists every layer");
            Linear { w, out, inp }
        };
        let blocks =
            (0..dims.blocks as u8).map(|b| (find(Role::BlockW1(b)), find(Role::BlockW2(b)))).collect();
        Self {
            dims,
            time1: find(Role::TimeW1),
            time2: find(Role::TimeW2),
            input: find(Role::InputW),
            blocks,
            output: find(Role::OutputW),
            count: off,
            tensors,
        }
    }

    /// The range of `role`'s tensor in the flat vector, if this network has it.
    #[cfg(test)]
    pub fn range(&self, role: Role) -> Option<std::ops::Range<usize>> {
        self.tensors.iter().find(|(r, ..)| *r == role).map(|&(_, off, rows, cols)| off..off + rows * cols)
    }
}

#[cfg(test)]
/// Every buffer of one chunk's forward and backward pass, for up to `cap` rows.
#[derive(Clone, Debug)]
pub(crate) struct Activations {
    pub cap: usize,
    /// (cap, F) time features φ(t).
    pub phi: Vec<f32>,
    /// (cap, D) network input x_t (normalised).
    pub x: Vec<f32>,
    /// (cap, H) W_t1·φ + b_t1.
    t_pre: Vec<f32>,
    /// (cap, H) silu(t_pre).
    t_act: Vec<f32>,
    /// (cap, H) σ(t_pre), kept for the backward pass.
    t_sig: Vec<f32>,
    /// (cap, H) time embedding.
    temb: Vec<f32>,
    /// B+1 × (cap, H) residual stream h_0..h_B.
    h: Vec<Vec<f32>>,
    /// B+1 × (cap, H) σ(h_b), kept for the backward pass.
    h_sig: Vec<Vec<f32>>,
    /// B × (cap, H) silu(h_{b−1}).
    a1: Vec<Vec<f32>>,
    /// B × (cap, H) u_b.
    u: Vec<Vec<f32>>,
    /// B × (cap, H) σ(u_b).
    u_sig: Vec<Vec<f32>>,
    /// B × (cap, H) silu(u_b).
    a2: Vec<Vec<f32>>,
    /// (cap, H) silu(h_B).
    a_out: Vec<f32>,
    /// (cap, D) ε̂.
    pub out: Vec<f32>,
    /// (cap, D) ∂L/∂ε̂, set by the caller before [`backward`].
    pub d_out: Vec<f32>,
    /// (cap, H) ∂L/∂h (the residual stream's gradient).
    dh: Vec<f32>,
    /// (cap, H) gradient of an activation (silu output).
    da: Vec<f32>,
    /// (cap, H) gradient of a pre-activation.
    du: Vec<f32>,
    /// (cap, H) ∂L/∂temb, summed over blocks.
    d_temb: Vec<f32>,
}

#[cfg(test)]
impl Activations {
    pub fn new(dims: &Dims, cap: usize) -> Self {
        let (d, h, f, b) = (dims.dim, dims.hidden, dims.freqs, dims.blocks);
        let z = |n: usize| vec![0.0f32; cap * n];
        Self {
            cap,
            phi: z(f),
            x: z(d),
            t_pre: z(h),
            t_act: z(h),
            t_sig: z(h),
            temb: z(h),
            h: (0..=b).map(|_| z(h)).collect(),
            h_sig: (0..=b).map(|_| z(h)).collect(),
            a1: (0..b).map(|_| z(h)).collect(),
            u_sig: (0..b).map(|_| z(h)).collect(),
            u: (0..b).map(|_| z(h)).collect(),
            a2: (0..b).map(|_| z(h)).collect(),
            a_out: z(h),
            out: z(d),
            d_out: z(d),
            dh: z(h),
            da: z(h),
            du: z(h),
            d_temb: z(h),
        }
    }
}

#[cfg(test)]
/// Forward pass of `rows` ≤ `cap` rows whose `x` and `phi` are filled; writes `act.out`.
pub(crate) fn forward(lay: &Layout, p: &[f32], act: &mut Activations, rows: usize) {
    debug_assert!(rows <= act.cap);
    let hid = lay.dims.hidden;
    let n = rows * hid;
    // temb = W_t2 · silu(W_t1 · φ + b_t1) + b_t2
    lay.time1.fwd(p, &act.phi, &mut act.t_pre, rows);
    cpu::silu_fwd_sig(&act.t_pre[..n], &mut act.t_act[..n], &mut act.t_sig[..n]);
    lay.time2.fwd(p, &act.t_act, &mut act.temb, rows);
    // h_0 = W_in · x + b_in
    lay.input.fwd(p, &act.x, &mut act.h[0], rows);
    for (b, (l1, l2)) in lay.blocks.iter().enumerate() {
        let (done, rest) = act.h.split_at_mut(b + 1);
        let (h_prev, h_next) = (&done[b], &mut rest[0]);
        // u = W_b1 · silu(h_{b−1}) + b_b1 + temb
        cpu::silu_fwd_sig(&h_prev[..n], &mut act.a1[b][..n], &mut act.h_sig[b][..n]);
        l1.fwd(p, &act.a1[b], &mut act.u[b], rows);
        cpu::add_inplace(&mut act.u[b][..n], &act.temb[..n]);
        // h_b = h_{b−1} + W_b2 · silu(u) + b_b2
        cpu::silu_fwd_sig(&act.u[b][..n], &mut act.a2[b][..n], &mut act.u_sig[b][..n]);
        l2.fwd(p, &act.a2[b], h_next, rows);
        cpu::add_inplace(&mut h_next[..n], &h_prev[..n]);
    }
    // ε̂ = W_out · silu(h_B) + b_out
    let nb = lay.blocks.len();
    cpu::silu_fwd_sig(&act.h[nb][..n], &mut act.a_out[..n], &mut act.h_sig[nb][..n]);
    lay.output.fwd(p, &act.a_out, &mut act.out, rows);
}

#[cfg(test)]
/// Backward pass after [`forward`] of the same rows, with `act.d_out` = ∂L/∂ε̂ set:
/// accumulates ∂L/∂θ into `grads` (flat, same layout as the parameters).
pub(crate) fn backward(lay: &Layout, p: &[f32], act: &mut Activations, grads: &mut [f32], rows: usize) {
    backward_impl(lay, p, act, None, grads, rows);
}

#[cfg(test)]
fn backward_impl(
    lay: &Layout,
    p: &[f32],
    act: &mut Activations,
    tan: Option<&Tangents>,
    grads: &mut [f32],
    rows: usize,
) {
    let hid = lay.dims.hidden;
    let n = rows * hid;
    let nb = lay.blocks.len();
    // ε̂ = W_out · a_out + b_out
    lay.output.bwd_params(grads, &act.d_out, &act.a_out, rows);
    lay.output.bwd_input(p, &act.d_out, &mut act.da, rows);
    cpu::silu_bwd_sig(&act.h[nb][..n], &act.h_sig[nb][..n], &act.da[..n], &mut act.dh[..n]);
    if let Some(t) = tan {
        cpu::add_inplace(&mut act.dh[..n], &t.ext_h[nb][..n]);
    }
    act.d_temb[..n].fill(0.0);
    for (b, (l1, l2)) in lay.blocks.iter().enumerate().rev() {
        // h_b = h_{b−1} + W_b2 · a2 + b_b2: the skip path passes dh through unchanged.
        l2.bwd_params(grads, &act.dh, &act.a2[b], rows);
        l2.bwd_input(p, &act.dh, &mut act.da, rows);
        cpu::silu_bwd_sig(&act.u[b][..n], &act.u_sig[b][..n], &act.da[..n], &mut act.du[..n]);
        if let Some(t) = tan {
            cpu::add_inplace(&mut act.du[..n], &t.ext_u[b][..n]);
        }
        // u = W_b1 · a1 + b_b1 + temb
        cpu::add_inplace(&mut act.d_temb[..n], &act.du[..n]);
        l1.bwd_params(grads, &act.du, &act.a1[b], rows);
        l1.bwd_input(p, &act.du, &mut act.da, rows);
        cpu::silu_bwd_sig_acc(&act.h[b][..n], &act.h_sig[b][..n], &act.da[..n], &mut act.dh[..n]);
        if let Some(t) = tan {
            cpu::add_inplace(&mut act.dh[..n], &t.ext_h[b][..n]);
        }
    }
    // h_0 = W_in · x + b_in (no gradient for x is needed)
    lay.input.bwd_params(grads, &act.dh, &act.x, rows);
    // temb = W_t2 · silu(t_pre) + b_t2, t_pre = W_t1 · φ + b_t1
    lay.time2.bwd_params(grads, &act.d_temb, &act.t_act, rows);
    lay.time2.bwd_input(p, &act.d_temb, &mut act.da, rows);
    cpu::silu_bwd_sig(&act.t_pre[..n], &act.t_sig[..n], &act.da[..n], &mut act.du[..n]);
    lay.time1.bwd_params(grads, &act.du, &act.phi, rows);
}

#[cfg(test)]
/// The input gradient after [`forward`] of the same rows, with `act.d_out` = ∂L/∂ε̂ set:
/// writes ∂L/∂x (rows, D) into `dx` — one vector-Jacobian product vᵀ·∂ε̂/∂x per row (v = that
/// row of `d_out`). The time path does not depend on x and is skipped; no parameter gradient
/// is formed.
pub(crate) fn backward_input(lay: &Layout, p: &[f32], act: &mut Activations, dx: &mut [f32], rows: usize) {
    let hid = lay.dims.hidden;
    let n = rows * hid;
    let nb = lay.blocks.len();
    lay.output.bwd_input(p, &act.d_out, &mut act.da, rows);
    cpu::silu_bwd_sig(&act.h[nb][..n], &act.h_sig[nb][..n], &act.da[..n], &mut act.dh[..n]);
    for (b, (l1, l2)) in lay.blocks.iter().enumerate().rev() {
        l2.bwd_input(p, &act.dh, &mut act.da, rows);
        cpu::silu_bwd_sig(&act.u[b][..n], &act.u_sig[b][..n], &act.da[..n], &mut act.du[..n]);
        l1.bwd_input(p, &act.du, &mut act.da, rows);
        cpu::silu_bwd_sig_acc(&act.h[b][..n], &act.h_sig[b][..n], &act.da[..n], &mut act.dh[..n]);
    }
    lay.input.bwd_input(p, &act.dh, dx, rows);
}

#[cfg(test)]
/// Forward-mode tangents of one chunk (the Jacobian-vector product J·v = (∂ε̂/∂x)·v through the
/// network) and their backward pass, for sliced score matching. The time path does not depend
/// on x, so it has no tangent; biases drop out of every tangent.
///
/// ```text
/// ḣ_0 = W_in·v      ȧ1_b = silu'(h_{b−1})⊙ḣ_{b−1}   u̇_b = W_b1·ȧ1_b
/// ȧ2_b = silu'(u_b)⊙u̇_b   ḣ_b = ḣ_{b−1} + W_b2·ȧ2_b   ε̇ = W_out·(silu'(h_B)⊙ḣ_B) = J·v
/// ```
#[derive(Clone, Debug)]
pub(crate) struct Tangents {
    /// (cap, D) the direction v.
    pub v: Vec<f32>,
    /// B+1 × (cap, H) ḣ_b.
    hd: Vec<Vec<f32>>,
    /// B × (cap, H) ȧ1_b.
    a1d: Vec<Vec<f32>>,
    /// B × (cap, H) u̇_b.
    ud: Vec<Vec<f32>>,
    /// B × (cap, H) ȧ2_b.
    a2d: Vec<Vec<f32>>,
    /// (cap, H) ȧ_out.
    a_outd: Vec<f32>,
    /// (cap, D) ε̇ = J·v.
    pub out: Vec<f32>,
    /// (cap, D) ∂L/∂ε̇, set by the caller before [`tangent_backward`].
    pub d_out: Vec<f32>,
    /// (cap, H) ∂L/∂ḣ.
    dhd: Vec<f32>,
    /// (cap, H) ∂L/∂ȧ.
    dad: Vec<f32>,
    /// (cap, H) ∂L/∂u̇.
    dud: Vec<f32>,
    /// B+1 × (cap, H) the tangent pass's share of ∂L/∂h_b (silu''·ḣ·∂L/∂ȧ).
    ext_h: Vec<Vec<f32>>,
    /// B × (cap, H) its share of ∂L/∂u_b.
    ext_u: Vec<Vec<f32>>,
}

#[cfg(test)]
impl Tangents {
    pub fn new(dims: &Dims, cap: usize) -> Self {
        let (d, h, b) = (dims.dim, dims.hidden, dims.blocks);
        let z = |n: usize| vec![0.0f32; cap * n];
        Self {
            v: z(d),
            hd: (0..=b).map(|_| z(h)).collect(),
            a1d: (0..b).map(|_| z(h)).collect(),
            ud: (0..b).map(|_| z(h)).collect(),
            a2d: (0..b).map(|_| z(h)).collect(),
            a_outd: z(h),
            out: z(d),
            d_out: z(d),
            dhd: z(h),
            dad: z(h),
            dud: z(h),
            ext_h: (0..=b).map(|_| z(h)).collect(),
            ext_u: (0..b).map(|_| z(h)).collect(),
        }
    }
}

#[cfg(test)]
/// The tangent pass after [`forward`] of the same rows, with `tan.v` set: writes `tan.out` = J·v.
pub(crate) fn tangent_forward(lay: &Layout, p: &[f32], act: &Activations, tan: &mut Tangents, rows: usize) {
    let n = rows * lay.dims.hidden;
    let (li, lo) = (&lay.input, &lay.output);
    cpu::linear_tangent(&tan.v, li.weight(p), &mut tan.hd[0], rows, li.inp, li.out);
    for (b, (l1, l2)) in lay.blocks.iter().enumerate() {
        cpu::silu_tangent_sig(&act.h[b][..n], &act.h_sig[b][..n], &tan.hd[b][..n], &mut tan.a1d[b][..n]);
        cpu::linear_tangent(&tan.a1d[b], l1.weight(p), &mut tan.ud[b], rows, l1.inp, l1.out);
        cpu::silu_tangent_sig(&act.u[b][..n], &act.u_sig[b][..n], &tan.ud[b][..n], &mut tan.a2d[b][..n]);
        let (done, rest) = tan.hd.split_at_mut(b + 1);
        cpu::linear_tangent(&tan.a2d[b], l2.weight(p), &mut rest[0], rows, l2.inp, l2.out);
        cpu::add_inplace(&mut rest[0][..n], &done[b][..n]);
    }
    let nb = lay.blocks.len();
    cpu::silu_tangent_sig(&act.h[nb][..n], &act.h_sig[nb][..n], &tan.hd[nb][..n], &mut tan.a_outd[..n]);
    cpu::linear_tangent(&tan.a_outd, lo.weight(p), &mut tan.out, rows, lo.inp, lo.out);
}

#[cfg(test)]
/// Backward through the tangent pass, with `tan.d_out` = ∂L/∂ε̇ set: accumulates the weights'
/// share of ∂L/∂θ into `grads` and leaves the primal pre-activations' shares in `tan` for
/// [`backward_with_tangents`].
pub(crate) fn tangent_backward(
    lay: &Layout,
    p: &[f32],
    act: &Activations,
    tan: &mut Tangents,
    grads: &mut [f32],
    rows: usize,
) {
    let n = rows * lay.dims.hidden;
    let nb = lay.blocks.len();
    let lo = &lay.output;
    cpu::linear_bwd_weight(&tan.d_out, &tan.a_outd, &mut grads[lo.w..], rows, lo.inp, lo.out);
    lo.bwd_input(p, &tan.d_out, &mut tan.dad, rows);
    let t = &mut *tan;
    cpu::silu_tangent_bwd_sig(
        &act.h[nb][..n],
        &act.h_sig[nb][..n],
        &t.hd[nb][..n],
        &t.dad[..n],
        &mut t.dhd[..n],
        &mut t.ext_h[nb][..n],
        false,
    );
    for (b, (l1, l2)) in lay.blocks.iter().enumerate().rev() {
        // ḣ_b = ḣ_{b−1} + W_b2·ȧ2_b: the skip passes ∂L/∂ḣ through.
        cpu::linear_bwd_weight(&t.dhd, &t.a2d[b], &mut grads[l2.w..], rows, l2.inp, l2.out);
        l2.bwd_input(p, &t.dhd, &mut t.dad, rows);
        cpu::silu_tangent_bwd_sig(
            &act.u[b][..n],
            &act.u_sig[b][..n],
            &t.ud[b][..n],
            &t.dad[..n],
            &mut t.dud[..n],
            &mut t.ext_u[b][..n],
            false,
        );
        cpu::linear_bwd_weight(&t.dud, &t.a1d[b], &mut grads[l1.w..], rows, l1.inp, l1.out);
        l1.bwd_input(p, &t.dud, &mut t.dad, rows);
        cpu::silu_tangent_bwd_sig(
            &act.h[b][..n],
            &act.h_sig[b][..n],
            &t.hd[b][..n],
            &t.dad[..n],
            &mut t.dhd[..n],
            &mut t.ext_h[b][..n],
            true,
        );
    }
    let li = &lay.input;
    cpu::linear_bwd_weight(&t.dhd, &t.v, &mut grads[li.w..], rows, li.inp, li.out);
}

#[cfg(test)]
/// [`backward`] plus the primal shares a [`tangent_backward`] left in `tan`: each SiLU's input
/// gradient gets silu''·ẋ·∂L/∂ẏ added. The sum of both is ∂L/∂θ of a loss of ε̂ and J·v.
pub(crate) fn backward_with_tangents(
    lay: &Layout,
    p: &[f32],
    act: &mut Activations,
    tan: &Tangents,
    grads: &mut [f32],
    rows: usize,
) {
    backward_impl(lay, p, act, Some(tan), grads, rows);
}
