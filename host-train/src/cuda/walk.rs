//! The CUDA trainer's walk of a layer graph ([`Net`]): which device buffer holds each value, each
//! SiLU's σ and each value's gradient, which layers fuse into the epilogue of the GEMM before
//! them, and the launches of the forward and backward passes, all decided once from the graph.
//! Nothing here touches a GPU, so the plan is tested on any machine; [`super::CudaTrainer`]
//! allocates the buffers and runs the steps.
//!
//! Peephole fusions (the GEMM epilogue of `kernels/cuda/gemm.cu`, `v = acc + b (+ add)`, then
//! `silu(v)` and σ(v) beside v):
//!
//! * a `linear` with a residual adds it in the epilogue (`add`);
//! * a `linear` without one, followed directly by the `chan_bias` that is its output's only reader
//!   (a vector, L = 1: the per-row time vector is an (rows, C) matrix like the output), adds the
//!   bias vector in the epilogue and writes the `chan_bias` output directly;
//! * a `silu` of a `linear`'s (possibly bias-fused) output is computed in that epilogue. The
//!   pre-activation is written too, so other readers of it (ScoreNet v1's residual stream) are
//!   served, and the SiLU's σ is kept for its backward;
//! * backward, a `linear` whose input is a SiLU output that nothing else reads takes that SiLU's
//!   backward into its input-gradient GEMM (`· silu'(pre)` from the kept σ).
//!
//! Convolutions have no epilogue: their residual is an add after them, and a `chan_bias` whose
//! input only it reads runs in place on that buffer.
//!
//! Gradients: the reverse walk adds each layer's contributions to its inputs' gradients in a
//! fixed order; the first contribution to a value writes, the later ones accumulate (no zero
//! fill, except before `chan_bias`'s backward, which only accumulates). A contribution that is the
//! layer's output gradient itself (a residual, an add, a `chan_bias` input) takes that buffer
//! over when it is the first, instead of copying it — as the old hand-written step kept one
//! residual-stream gradient. At most one such alias per layer, never onto a value that the same
//! layer also writes a computed gradient to. Parameter gradients are overwritten, each tensor
//! being used by one layer. No float atomics anywhere.

use tinyscore_engine::graph::{Branch, Op};
use tinyscore_kernels::conv::Conv1d;
use tinyscore_kernels::cuda::GpuError;

use crate::graph_net::Net;

/// A buffer of the walk (an index into [`Walk::bufs`]).
pub(crate) type BufId = usize;

/// Where a buffer's memory comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// Allocated by the trainer.
    Own,
    /// The DSM kernel's x_t (batch, D), channel-major.
    XT,
    /// The DSM kernel's φ(t) (batch, F).
    Phi,
}

/// One device buffer: `per_row` f32 per example.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Buf {
    pub per_row: usize,
    pub source: Source,
}

/// One launch (or two) of the walk; lengths are per row, the trainer multiplies by the batch.
/// `tensor` is the index of a layer's weight in the plan's tensor list (its bias is the next).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// `y = x·Wᵀ + b (+ add)`, and `silu(y)`, σ(y) into `act` with the fused SiLU.
    Linear {
        x: BufId,
        tensor: usize,
        y: BufId,
        inp: usize,
        out: usize,
        add: Option<BufId>,
        act: Option<(BufId, BufId)>,
    },
    /// `y = conv(x) + b (+ res)`.
    Conv { x: BufId, tensor: usize, y: BufId, conv: Conv1d, res: Option<BufId> },
    /// `y = silu(x)`, σ(x) into `sig`.
    Silu { x: BufId, y: BufId, sig: BufId, n: usize },
    /// `y = a + b`.
    Add { a: BufId, b: BufId, y: BufId, n: usize },
    /// `y[l, c] = x[l, c] + v[c]`; in place when `x` is `None`.
    ChanBias { x: Option<BufId>, y: BufId, v: BufId, l: usize, c: usize },
    /// 2× nearest upsampling of x (L_in, C).
    Upsample { x: BufId, y: BufId, l_in: usize, c: usize },
    /// Per row `dst[j, i] = src[i, j]`, src (a, b).
    Transpose { src: BufId, dst: BufId, a: usize, b: usize },
    /// dW = dyᵀ·x, db = Σ dy (overwritten).
    LinearParams { dy: BufId, x: BufId, tensor: usize, inp: usize, out: usize },
    /// dx (+)= (dy·W) (· silu'(pre) from `pre` = (pre-activation, σ)).
    LinearInput {
        dy: BufId,
        tensor: usize,
        dx: BufId,
        inp: usize,
        out: usize,
        pre: Option<(BufId, BufId)>,
        acc: bool,
    },
    /// dW, db of a convolution (overwritten).
    ConvParams { dy: BufId, x: BufId, tensor: usize, conv: Conv1d },
    /// dx (+)= convᵀ(dy).
    ConvInput { dy: BufId, tensor: usize, dx: BufId, conv: Conv1d, acc: bool },
    /// dx (+)= dy·silu'(x) from the kept σ.
    SiluBwd { x: BufId, sig: BufId, dy: BufId, dx: BufId, n: usize, acc: bool },
    /// dst = src, or dst += src.
    AddInto { dst: BufId, src: BufId, n: usize, overwrite: bool },
    /// dst = 0.
    Zero { dst: BufId, n: usize },
    /// dv[c] += Σ_l dy[l, c].
    ChanBiasBwd { dy: BufId, dv: BufId, l: usize, c: usize },
    /// dx (+)= dy[2l] + dy[2l + 1].
    UpsampleBwd { dy: BufId, dx: BufId, l_in: usize, c: usize, acc: bool },
}

/// A linear layer's forward fusions: the value its epilogue writes (the fused `chan_bias`'s when
/// there is one), the value it adds (residual or bias vector), the SiLU layer it computes.
#[derive(Clone, Copy, Debug)]
struct LinearFusion {
    out: usize,
    add: Option<usize>,
    act: Option<usize>,
}

/// The plan of one training step's passes over a graph.
#[derive(Clone, Debug)]
pub(crate) struct Walk {
    pub bufs: Vec<Buf>,
    /// The forward pass, then the loss reads `out` against ε and writes `d_out`.
    pub forward: Vec<Step>,
    /// The backward pass from `d_out`.
    pub backward: Vec<Step>,
    /// ε̂ (batch, D), channel-major.
    pub out: BufId,
    /// ∂L/∂ε̂ (batch, D), channel-major.
    pub d_out: BufId,
    /// F of the one `time` layer (what the DSM kernel computes φ with).
    pub freqs: usize,
    /// Per layer, what the walk does with it (for tests and `Debug`): a linear layer is
    /// `gemm [+res vV | +chan_bias L] [+silu L] [| bwd through silu L]` (the value or layer its
    /// epilogue absorbs); a layer done inside one is `in gemm L`, a SiLU adds where its backward
    /// runs (`| bwd in gemm L` or `| bwd kernel`); the rest are `kernel`, `kernel, in place`,
    /// `conv`, `conv +res add`, and `φ of the DSM kernel`.
    pub fusion: Vec<String>,
}

/// Why a graph cannot be walked on the GPU.
fn unsupported(why: String) -> GpuError {
    GpuError::Unsupported(why)
}

impl Walk {
    /// The plan for `net`; `rows` is the batch (the convolutions' row count).
    pub fn new(net: &Net, rows: usize) -> Result<Self, GpuError> {
        let layers = &net.layers;
        let n = layers.len();
        let input = net.input();
        let transposed = input.channels > 1 && input.length > 1;
        let shape = |v: usize| if v == 0 { input } else { layers[v - 1].shape };
        let time: Vec<usize> = (0..n).filter(|&i| matches!(layers[i].op, Op::TimeFeatures { .. })).collect();
        let [t_layer] = time[..] else {
            return Err(unsupported(format!(
                "the GPU trainer needs exactly one `time` layer (the DSM kernel's φ); this graph has {}",
                time.len()
            )));
        };
        let Op::TimeFeatures { freqs } = layers[t_layer].op else { unreachable!() };
        let first = net.plan.first_tensor() as usize;
        let tensor = |w: u16| w as usize - first;

        // Readers of every value, in layer order: (layer, input slot).
        let mut readers: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n + 1];
        for (i, l) in layers.iter().enumerate() {
            for (s, v) in l.op.inputs().into_iter().enumerate() {
                if let Some(v) = v {
                    readers[v as usize].push((i, s));
                }
            }
        }
        // needs_grad[v]: some parameter lies upstream of v.
        let mut needs_grad = vec![false; n + 1];
        for (i, l) in layers.iter().enumerate() {
            needs_grad[i + 1] = l.op.params().is_some()
                || l.op.inputs().into_iter().flatten().any(|v| needs_grad[v as usize]);
        }

        // Forward fusions: fused_into[k] = the linear layer whose epilogue does layer k's work.
        let mut fused_into: Vec<Option<usize>> = vec![None; n];
        // Per linear layer: (its output value after a fused chan_bias, add source value, act silu layer).
        let mut lin: Vec<Option<LinearFusion>> = vec![None; n];
        for i in 0..n {
            let Op::Linear { res, .. } = layers[i].op else { continue };
            let (mut o, mut add) = (i + 1, res.map(|r| r as usize));
            if res.is_none() && i + 1 < n && readers[i + 1] == [(i + 1, 0)] {
                if let Op::ChannelBias { v, .. } = layers[i + 1].op {
                    if layers[i + 1].shape.length == 1 {
                        fused_into[i + 1] = Some(i);
                        add = Some(v as usize);
                        o = i + 2;
                    }
                }
            }
            let act = readers[o]
                .iter()
                .map(|&(k, _)| k)
                .find(|&k| matches!(layers[k].op, Op::Silu { .. }) && fused_into[k].is_none());
            if let Some(k) = act {
                fused_into[k] = Some(i);
            }
            lin[i] = Some(LinearFusion { out: o, add, act });
        }
        // Backward fusions: silu layer k's backward runs inside linear i's input gradient.
        let mut bwd_silu: Vec<Option<usize>> = vec![None; n]; // per linear: the silu layer
        let mut bwd_into: Vec<Option<usize>> = vec![None; n]; // per silu: the linear
        for i in 0..n {
            let Op::Linear { x, .. } = layers[i].op else { continue };
            let x = x as usize;
            if x == 0 || readers[x] != [(i, 0)] {
                continue;
            }
            // (A SiLU of something without a gradient, φ, has no backward to fuse.)
            if let Op::Silu { x: p } = layers[x - 1].op {
                if !needs_grad[p as usize] {
                    continue;
                }
                bwd_silu[i] = Some(x - 1);
                bwd_into[x - 1] = Some(i);
            }
        }

        let mut bufs: Vec<Buf> = Vec::new();
        let own = |bufs: &mut Vec<Buf>, per_row: usize| {
            bufs.push(Buf { per_row, source: Source::Own });
            bufs.len() - 1
        };
        // Value buffers.
        let mut val: Vec<Option<BufId>> = vec![None; n + 1];
        bufs.push(Buf { per_row: input.len(), source: Source::XT });
        let x_t = 0;
        let mut forward = Vec::new();
        val[0] = Some(if transposed {
            let b = own(&mut bufs, input.len());
            forward.push(Step::Transpose { src: x_t, dst: b, a: input.channels, b: input.length });
            b
        } else {
            x_t
        });
        bufs.push(Buf { per_row: freqs, source: Source::Phi });
        val[t_layer + 1] = Some(bufs.len() - 1);
        let mut sig: Vec<Option<BufId>> = vec![None; n];
        for (i, l) in layers.iter().enumerate() {
            if val[i + 1].is_some() {
                continue;
            }
            if let Some(LinearFusion { out: o, .. }) = lin[i] {
                if o != i + 1 {
                    continue; // the chan_bias's value holds the result
                }
            }
            if let Op::ChannelBias { x, .. } = l.op {
                let x = x as usize;
                if fused_into[i].is_none()
                    && readers[x] == [(i, 0)]
                    && val[x].is_some_and(|b| bufs[b].source == Source::Own)
                {
                    val[i + 1] = val[x];
                    continue;
                }
            }
            val[i + 1] = Some(own(&mut bufs, l.shape.len()));
            if matches!(l.op, Op::Silu { .. }) {
                sig[i] = Some(own(&mut bufs, l.shape.len()));
            }
        }
        let v = |x: u16| val[x as usize].expect("every read value has a buffer");
        let conv_of = |i: usize| {
            let Op::Conv1d { x, kernel, dilation, stride, .. } = layers[i].op else { unreachable!() };
            let s = shape(x as usize);
            Conv1d {
                rows,
                l_in: s.length,
                c_in: s.channels,
                c_out: layers[i].shape.channels,
                k: kernel,
                dil: dilation,
                stride,
            }
        };

        // The forward steps and the fusion record.
        let mut fusion = vec![String::new(); n];
        for (i, l) in layers.iter().enumerate() {
            let out = val[i + 1];
            match l.op {
                Op::TimeFeatures { .. } => fusion[i] = "φ of the DSM kernel".into(),
                Op::Linear { x, weight, .. } => {
                    let LinearFusion { out: o, add, act } = lin[i].expect("planned above");
                    let mut what = String::from("gemm");
                    if let Some(a) = add {
                        if o != i + 1 {
                            what += &format!(" +chan_bias {}", i + 1);
                        } else {
                            what += &format!(" +res v{a}");
                        }
                    }
                    if let Some(k) = act {
                        what += &format!(" +silu {k}");
                    }
                    if let Some(k) = bwd_silu[i] {
                        what += &format!(" | bwd through silu {k}");
                    }
                    fusion[i] = what;
                    let sh = shape(x as usize);
                    forward.push(Step::Linear {
                        x: v(x),
                        tensor: tensor(weight),
                        y: val[o].expect("a linear's output has a buffer"),
                        inp: sh.channels,
                        out: l.shape.channels,
                        add: add.map(|a| val[a].expect("added value")),
                        act: act.map(|k| (val[k + 1].expect("silu"), sig[k].expect("σ"))),
                    });
                }
                Op::Silu { x } => match (fused_into[i], bwd_into[i]) {
                    (Some(f), Some(b)) => fusion[i] = format!("in gemm {f} | bwd in gemm {b}"),
                    (Some(f), None) => fusion[i] = format!("in gemm {f} | bwd kernel"),
                    (None, b) => {
                        fusion[i] = match b {
                            Some(b) => format!("kernel | bwd in gemm {b}"),
                            None => "kernel".into(),
                        };
                        let (y, s) = (out.expect("silu value"), sig[i].expect("σ"));
                        forward.push(Step::Silu { x: v(x), y, sig: s, n: l.shape.len() });
                    }
                },
                Op::ChannelBias { x, v: bias } => {
                    if let Some(f) = fused_into[i] {
                        fusion[i] = format!("in gemm {f}");
                        continue;
                    }
                    let y = out.expect("chan_bias value");
                    let in_place = val[x as usize] == Some(y);
                    fusion[i] = if in_place { "kernel, in place".into() } else { "kernel".into() };
                    forward.push(Step::ChanBias {
                        x: (!in_place).then(|| v(x)),
                        y,
                        v: v(bias),
                        l: l.shape.length,
                        c: l.shape.channels,
                    });
                }
                Op::Conv1d { x, res, weight, .. } => {
                    fusion[i] = if res.is_some() { "conv +res add".into() } else { "conv".into() };
                    let y = out.expect("conv value");
                    forward.push(Step::Conv {
                        x: v(x),
                        tensor: tensor(weight),
                        y,
                        conv: conv_of(i),
                        res: res.map(v),
                    });
                }
                Op::Add { a, b } => {
                    fusion[i] = "kernel".into();
                    forward.push(Step::Add {
                        a: v(a),
                        b: v(b),
                        y: out.expect("add value"),
                        n: l.shape.len(),
                    });
                }
                Op::Upsample2 { x } => {
                    fusion[i] = "kernel".into();
                    let s = shape(x as usize);
                    let y = out.expect("upsample value");
                    forward.push(Step::Upsample { x: v(x), y, l_in: s.length, c: s.channels });
                }
            }
        }
        let last = val[n].expect("the output has a buffer");
        let out = if transposed {
            let b = own(&mut bufs, input.len());
            forward.push(Step::Transpose { src: last, dst: b, a: input.length, b: input.channels });
            b
        } else {
            last
        };

        // Backward: gradient buffers by simulated contributions, in the order the steps run.
        let mut grad: Vec<Option<BufId>> = vec![None; n + 1];
        let mut backward = Vec::new();
        let d_out = own(&mut bufs, input.len());
        grad[n] = Some(if transposed {
            let b = own(&mut bufs, input.len());
            backward.push(Step::Transpose { src: d_out, dst: b, a: input.channels, b: input.length });
            b
        } else {
            d_out
        });
        // A computed contribution to value `x`: its buffer, and whether it accumulates.
        let computed = |bufs: &mut Vec<Buf>, grad: &mut Vec<Option<BufId>>, x: usize| -> (BufId, bool) {
            match grad[x] {
                Some(b) => (b, true),
                None => {
                    bufs.push(Buf { per_row: shape(x).len(), source: Source::Own });
                    grad[x] = Some(bufs.len() - 1);
                    (bufs.len() - 1, false)
                }
            }
        };
        for i in (0..n).rev() {
            let l = &layers[i];
            if !needs_grad[i + 1] || matches!(l.op, Op::TimeFeatures { .. }) {
                continue;
            }
            // The layer's output gradient: of the chan_bias's value when that is fused in.
            let o = lin[i].map_or(i + 1, |f| f.out);
            if fused_into[i].is_some() && matches!(l.op, Op::ChannelBias { .. }) {
                // Fused into the linear before it: its output gradient is the linear's; the bias
                // vector's gradient is the identity contribution (L = 1).
                let Op::ChannelBias { x, v: bias } = l.op else { unreachable!() };
                grad[x as usize] = grad[i + 1];
                let (dy, bias) = (grad[i + 1].expect("output gradient"), bias as usize);
                if needs_grad[bias] {
                    match grad[bias] {
                        Some(dst) => {
                            backward.push(Step::AddInto { dst, src: dy, n: l.shape.len(), overwrite: false })
                        }
                        None => {
                            let (dst, _) = computed(&mut bufs, &mut grad, bias);
                            backward.push(Step::AddInto { dst, src: dy, n: l.shape.len(), overwrite: true });
                        }
                    }
                }
                continue;
            }
            let Some(dy) = grad[o] else { continue };
            // Identity contributions (the output gradient itself), after the computed ones.
            let mut identity: Vec<usize> = Vec::new();
            let mut written: Vec<usize> = Vec::new();
            match l.op {
                Op::TimeFeatures { .. } => {}
                Op::Linear { x, res, weight, .. } => {
                    let (inp, out) = (shape(x as usize).channels, l.shape.channels);
                    let t = tensor(weight);
                    backward.push(Step::LinearParams { dy, x: v(x), tensor: t, inp, out });
                    let (target, pre) = match bwd_silu[i] {
                        Some(k) => {
                            let Op::Silu { x: p } = layers[k].op else { unreachable!() };
                            (p as usize, Some((v(p), sig[k].expect("σ"))))
                        }
                        None => (x as usize, None),
                    };
                    if needs_grad[target] {
                        let (dx, acc) = computed(&mut bufs, &mut grad, target);
                        written.push(target);
                        backward.push(Step::LinearInput { dy, tensor: t, dx, inp, out, pre, acc });
                    }
                    identity.extend(res.map(|r| r as usize));
                }
                Op::Conv1d { x, res, weight, .. } => {
                    let (t, conv) = (tensor(weight), conv_of(i));
                    backward.push(Step::ConvParams { dy, x: v(x), tensor: t, conv });
                    if needs_grad[x as usize] {
                        let (dx, acc) = computed(&mut bufs, &mut grad, x as usize);
                        written.push(x as usize);
                        backward.push(Step::ConvInput { dy, tensor: t, dx, conv, acc });
                    }
                    identity.extend(res.map(|r| r as usize));
                }
                Op::Silu { x } => {
                    if bwd_into[i].is_none() && needs_grad[x as usize] {
                        let (dx, acc) = computed(&mut bufs, &mut grad, x as usize);
                        let s = sig[i].expect("σ");
                        backward.push(Step::SiluBwd { x: v(x), sig: s, dy, dx, n: l.shape.len(), acc });
                    }
                }
                Op::Add { a, b } => identity.extend([a as usize, b as usize]),
                Op::ChannelBias { x, v: bias } => {
                    let bias = bias as usize;
                    if needs_grad[bias] {
                        let c = l.shape.channels;
                        let dv = match grad[bias] {
                            Some(b) => b,
                            None => {
                                let (b, _) = computed(&mut bufs, &mut grad, bias);
                                backward.push(Step::Zero { dst: b, n: c });
                                b
                            }
                        };
                        written.push(bias);
                        backward.push(Step::ChanBiasBwd { dy, dv, l: l.shape.length, c });
                    }
                    identity.push(x as usize);
                }
                Op::Upsample2 { x } => {
                    if needs_grad[x as usize] {
                        let (dx, acc) = computed(&mut bufs, &mut grad, x as usize);
                        let s = shape(x as usize);
                        backward.push(Step::UpsampleBwd { dy, dx, l_in: s.length, c: s.channels, acc });
                    }
                }
            }
            let mut aliased = false;
            let twice = identity.len() == 2 && identity[0] == identity[1];
            for r in identity {
                if !needs_grad[r] {
                    continue;
                }
                let first = grad[r].is_none();
                if first && !aliased && !twice && !written.contains(&r) {
                    grad[r] = Some(dy);
                    aliased = true;
                    continue;
                }
                let (dst, acc) = computed(&mut bufs, &mut grad, r);
                backward.push(Step::AddInto { dst, src: dy, n: shape(r).len(), overwrite: !acc });
            }
        }
        // Branch sanity: the time branch is walked per row like the data branch.
        debug_assert!(layers.iter().take(t_layer).all(|l| l.branch == Branch::Time));
        Ok(Self { bufs, forward, backward, out, d_out, freqs, fusion })
    }
}
