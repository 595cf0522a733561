//! The CUDA training backend: the CPU trainer's step ([`crate::train::Trainer::step`]) on an
//! NVIDIA GPU, with the kernels of `tinyscore_kernels::cuda`.
//!
//! A [`CudaTrainer`] starts from a CPU [`Trainer`] (initial weights, or a resumed checkpoint),
//! uploads its state once and allocates every buffer of a step once. A step is a fixed sequence
//! of launches on one stream, with no host synchronisation: the DSM inputs (the step counter lives
//! on the device), the forward pass, the loss, the backward pass (deterministic split-K weight
//! gradients, no float atomics), the gradient norm and the fused Adam + EMA update.
//!
//! The passes walk the trainer's layer graph (`graph_net::Net`, the engine's plan that every
//! backend walks): `cuda/walk.rs` decides once, from the graph, one device buffer per value (batch ×
//! its length, channels-last as on the CPU) and per SiLU σ, the peephole fusions into the GEMM
//! epilogues (bias vector or residual `add`, a following SiLU, the SiLU backward inside the input
//! gradient), and the order in which each value's gradient is written then accumulated. ScoreNet
//! v1 and the conv U-Net are the same code; no layer sequence is written here. The `time` layer
//! is the DSM kernel's φ(t) (a graph needs exactly one). The loss is accumulated on the device and read back when asked
//! ([`CudaTrainer::read_loss`]), e.g. every 100 steps for a progress bar. With
//! [`CudaTrainer::use_graph`] the step is captured once as a CUDA graph and replayed.
//!
//! The semantics are the CPU trainer's (the same draws, network, loss, clipping, Adam, EMA);
//! the bits are not, because the GPU sums in another order and uses CUDA's `expf`/`sinf`. Two
//! GPU runs with the same seed are bitwise identical. [`CudaTrainer::sync_to`] writes the state
//! back into the CPU trainer, whose checkpoints are the ones the CPU writes.

use cudarc::driver::CudaGraph;
use tinyscore_engine::net::frequency;
use tinyscore_engine::schedule::Diffusion;
use tinyscore_kernels::cuda::{self, DPtr, DevBuf, DsmBuffers, DsmProcess, Gpu, GpuError};

use crate::config::{Loss, TrainConfig, Weighting};
use crate::graph_net::Net;
use crate::train::{Trainer, ADAM_BETA1, ADAM_BETA2, ADAM_EPS};
pub use tinyscore_kernels::cuda::device_count;

mod walk;

use walk::{Source, Step, Walk};

/// Blocks of the gradient-norm reduction.
const NORM_BLOCKS: usize = 264;

/// What a GPU run starts from: the network, the process, the normalised data and the
/// optimisation state (a CPU [`Trainer`]'s, or a test's).
pub(crate) struct Start<'a> {
    pub net: &'a Net,
    pub process: &'a Diffusion,
    /// (n, D) normalised training data, channel-major rows.
    pub data: &'a [f32],
    pub cfg: &'a TrainConfig,
    pub step: u64,
    pub params: &'a [f32],
    pub ema: &'a [f32],
    pub adam_m: &'a [f32],
    pub adam_v: &'a [f32],
}

/// A training run on the GPU (see the module doc).
pub struct CudaTrainer {
    gpu: Gpu,
    walk: Walk,
    /// The device address of every buffer of the walk (batch × its per-row length).
    ptrs: Vec<DPtr>,
    /// The parameter offset of every tensor in the flat vector (the graph's tensor order).
    offsets: Vec<usize>,
    /// Parameter count.
    count: usize,
    /// D, the data dimension (C·L).
    dim: usize,
    batch: usize,
    seed: u64,
    lr: f32,
    warmup: u64,
    grad_clip: f32,
    ema_decay: f32,
    likelihood: bool,
    /// Host mirror of the device step counter.
    step: u64,
    process: DsmProcess,
    dsm: DsmBuffers,
    state: DevBuf<u64>,
    params: DevBuf<f32>,
    grads: DevBuf<f32>,
    adam_m: DevBuf<f32>,
    adam_v: DevBuf<f32>,
    ema: DevBuf<f32>,
    ws: DevBuf<f32>,
    loss_partials: DevBuf<f64>,
    norm_partials: DevBuf<f64>,
    graph: Option<CudaGraph>,
    want_graph: bool,
    /// Buffers that only need to stay alive (data, tables, DSM outputs, the walk's buffers).
    _keep: Vec<DevBuf<f32>>,
    _keep_index: DevBuf<u32>,
}

impl std::fmt::Debug for CudaTrainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaTrainer")
            .field("gpu", &self.gpu.name())
            .field("fusion", &self.walk.fusion)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

impl CudaTrainer {
    /// Opens GPU 0 and continues `cpu`'s run there (its step, weights, EMA, Adam moments).
    pub fn new(cpu: &Trainer) -> Result<Self, GpuError> {
        Self::on(Gpu::open(0)?, cpu)
    }

    /// Continues `cpu`'s run on `gpu`.
    pub fn on(gpu: Gpu, cpu: &Trainer) -> Result<Self, GpuError> {
        let (net, process, data, adam_m, adam_v) = cpu.backend_parts();
        let start = Start {
            net,
            process,
            data,
            cfg: cpu.config(),
            step: cpu.steps_done(),
            params: cpu.params(),
            ema: cpu.ema_params(),
            adam_m,
            adam_v,
        };
        Self::start(gpu, &start)
    }

    /// A run of `s.net` on `gpu` from the state in `s`.
    pub(crate) fn start(gpu: Gpu, s: &Start<'_>) -> Result<Self, GpuError> {
        let cfg = s.cfg;
        if !cfg.time_draw.is_uniform() {
            return Err(GpuError::Unsupported(
                "--low-noise-share runs on the CPU backend only (the GPU draws t uniformly)".into(),
            ));
        }
        if cfg.loss != Loss::Dsm {
            return Err(GpuError::Unsupported(format!(
                "--loss {} runs on the CPU backend only (the GPU trains dsm)",
                cfg.loss.name()
            )));
        }
        let net = s.net;
        let batch = cfg.batch;
        let walk = Walk::new(net, batch)?;
        let (d, f, p) = (net.input().len(), walk.freqs, net.count);
        let lengths = [
            ("params", s.params.len()),
            ("ema", s.ema.len()),
            ("adam_m", s.adam_m.len()),
            ("adam_v", s.adam_v.len()),
        ];
        for (what, len) in lengths {
            if len != p {
                return Err(GpuError::Unsupported(format!("{what} has {len} values, the network {p}")));
            }
        }

        let mut keep = Vec::new();
        let mut put = |buf: DevBuf<f32>| {
            let ptr = buf.ptr();
            keep.push(buf);
            ptr
        };
        let tables = cuda::discrete_tables(s.process)
            .map(|t| -> Result<[DPtr; 4], GpuError> {
                let [a, b, c, e] = t;
                Ok([put(gpu.upload(&a)?), put(gpu.upload(&b)?), put(gpu.upload(&c)?), put(gpu.upload(&e)?)])
            })
            .transpose()?;
        let process = cuda::dsm_process(s.process, tables);
        let omegas: Vec<f32> = (0..f / 2).map(|k| frequency(k, f / 2)).collect();
        let index = gpu.zeros::<u32>(batch)?;
        let mut st = vec![0u64; cuda::state::LEN];
        st[cuda::state::STEP] = s.step;
        let state = gpu.upload(&st)?;
        let dsm = DsmBuffers {
            state: state.ptr(),
            data: put(gpu.upload(s.data)?),
            n_data: (s.data.len() / d.max(1)) as u32,
            freqs: put(gpu.upload(&omegas)?),
            index: index.ptr(),
            t: put(gpu.zeros(batch)?),
            alpha: put(gpu.zeros(batch)?),
            sigma: put(gpu.zeros(batch)?),
            weight: put(gpu.zeros(batch)?),
            phi: put(gpu.zeros(batch * f)?),
            x_t: put(gpu.zeros(batch * d)?),
            eps: put(gpu.zeros(batch * d)?),
        };
        let mut ptrs = Vec::with_capacity(walk.bufs.len());
        for b in &walk.bufs {
            ptrs.push(match b.source {
                Source::XT => dsm.x_t,
                Source::Phi => dsm.phi,
                Source::Own => put(gpu.zeros(batch * b.per_row)?),
            });
        }
        // The split-K workspace: the largest any layer's parameter gradient needs.
        let ws_len = (walk.forward.iter())
            .map(|step| match *step {
                Step::Linear { inp, out, .. } => cuda::ws_len(inp, out),
                Step::Conv { conv, .. } => cuda::conv_ws_len(&conv),
                _ => 1,
            })
            .max()
            .unwrap_or(1);
        let mut offsets = net.offsets.clone();
        offsets.push(net.count);
        Ok(Self {
            batch,
            dim: d,
            count: p,
            offsets,
            seed: cfg.seed,
            lr: cfg.lr,
            warmup: cfg.warmup,
            grad_clip: cfg.grad_clip,
            ema_decay: cfg.ema,
            likelihood: cfg.weighting == Weighting::Likelihood,
            step: s.step,
            process,
            dsm,
            state,
            params: gpu.upload(s.params)?,
            grads: gpu.zeros(p)?,
            adam_m: gpu.upload(s.adam_m)?,
            adam_v: gpu.upload(s.adam_v)?,
            ema: gpu.upload(s.ema)?,
            ws: gpu.zeros(ws_len)?,
            loss_partials: gpu.zeros((batch * d).div_ceil(cuda::THREADS as usize))?,
            norm_partials: gpu.zeros(NORM_BLOCKS)?,
            graph: None,
            want_graph: false,
            _keep: keep,
            _keep_index: index,
            ptrs,
            walk,
            gpu,
        })
    }

    /// The GPU's name.
    pub fn device_name(&self) -> &str {
        self.gpu.name()
    }

    /// The GPU.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Captures the step as a CUDA graph on the next [`CudaTrainer::step`] and replays it
    /// afterwards (one launch per step instead of one per layer and pass).
    pub fn use_graph(&mut self, on: bool) {
        self.want_graph = on;
        if !on {
            self.graph = None;
        }
    }

    /// Optimisation steps done.
    pub fn steps_done(&self) -> u64 {
        self.step
    }

    /// Enqueues one optimisation step; returns without waiting for the GPU.
    pub fn step(&mut self) -> Result<(), GpuError> {
        if self.want_graph {
            if self.graph.is_none() {
                let stream = self.gpu.stream().clone();
                stream
                    .begin_capture(
                        cudarc::driver::sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL,
                    )
                    .map_err(|e| GpuError::Driver(format!("{e:?}")))?;
                let enqueued = self.enqueue_step();
                let graph = stream
                    .end_capture(cudarc::driver::sys::CUgraphInstantiate_flags(0))
                    .map_err(|e| GpuError::Driver(format!("{e:?}")))?;
                enqueued?;
                self.graph = graph;
            }
            match &self.graph {
                Some(g) => g.launch().map_err(|e| GpuError::Driver(format!("{e:?}")))?,
                None => return Err(GpuError::Driver("CUDA graph capture produced no graph".into())),
            }
        } else {
            self.enqueue_step()?;
        }
        self.step += 1;
        Ok(())
    }

    /// The mean loss of the steps since the last call (None if none ran). Synchronises.
    pub fn read_loss(&mut self) -> Result<Option<f32>, GpuError> {
        let mut st = self.gpu.download(&self.state, cuda::state::LEN)?;
        let count = st[cuda::state::LOSS_COUNT];
        if count == 0 {
            return Ok(None);
        }
        let mean = f64::from_bits(st[cuda::state::LOSS_SUM]) / count as f64;
        st[cuda::state::LOSS_SUM] = 0f64.to_bits();
        st[cuda::state::LOSS_COUNT] = 0;
        self.gpu.write(&mut self.state, &st)?;
        Ok(Some(mean as f32))
    }

    /// The raw parameters, downloaded (synchronises).
    pub fn params(&self) -> Result<Vec<f32>, GpuError> {
        self.gpu.download(&self.params, self.count)
    }

    /// Writes the run's state (step, weights, EMA, Adam moments) into `cpu`, whose
    /// [`Trainer::checkpoint`] then saves the GPU run. Synchronises.
    pub fn sync_to(&self, cpu: &mut Trainer) -> Result<(), GpuError> {
        let n = self.count;
        let (p, e) = (self.gpu.download(&self.params, n)?, self.gpu.download(&self.ema, n)?);
        let (m, v) = (self.gpu.download(&self.adam_m, n)?, self.gpu.download(&self.adam_v, n)?);
        cpu.set_state(self.step, p, e, m, v);
        Ok(())
    }

    /// Enqueues the DSM inputs, the forward and backward passes of the walk and the loss, leaving
    /// the batch gradient in `grads` (no update).
    fn enqueue_gradient(&mut self) -> Result<(), GpuError> {
        let (g, w, batch, d) = (&self.gpu, &self.walk, self.batch, self.dim);
        g.dsm_inputs(self.seed, batch, d, w.freqs, self.process, self.likelihood, &self.dsm)?;
        for step in &w.forward {
            self.launch(step)?;
        }
        // Loss: mean over the batch of the (weighted) squared error.
        let weights = if self.likelihood { self.dsm.weight } else { DPtr::NULL };
        let n = batch * d;
        let (out, d_out) = (self.ptrs[w.out], self.ptrs[w.d_out]);
        let parts = g.mse_grad(out, self.dsm.eps, weights, n, d, n, d_out, self.loss_partials.ptr())?;
        g.loss_finish(self.loss_partials.ptr(), parts, n, self.state.ptr())?;
        for step in &w.backward {
            self.launch(step)?;
        }
        Ok(())
    }

    /// One step of the walk (see [`Step`]).
    fn launch(&self, step: &Step) -> Result<(), GpuError> {
        let (g, rows) = (&self.gpu, self.batch);
        let b = |id: usize| self.ptrs[id];
        let opt = |id: Option<usize>| id.map_or(DPtr::NULL, b);
        let (pp, gp, ws) = (self.params.ptr(), self.grads.ptr(), self.ws.ptr());
        // A layer's weight and bias (tensor t and t + 1 of the flat vector).
        let wb = |base: DPtr, t: usize| (base.f32_at(self.offsets[t]), base.f32_at(self.offsets[t + 1]));
        match *step {
            Step::Linear { x, tensor, y, inp, out, add, act } => {
                let (wt, bias) = wb(pp, tensor);
                let (a, s) = act.map_or((DPtr::NULL, DPtr::NULL), |(a, s)| (b(a), b(s)));
                g.linear_fwd(b(x), wt, bias, b(y), (rows, inp, out), opt(add), a, s)
            }
            Step::Conv { x, tensor, y, conv, res } => {
                let (wt, bias) = wb(pp, tensor);
                g.conv1d_fwd(b(x), wt, bias, b(y), &conv)?;
                match res {
                    Some(r) => g.add_into(b(y), b(r), rows * conv.l_out() * conv.c_out, false),
                    None => Ok(()),
                }
            }
            Step::Silu { x, y, sig, n } => g.silu_fwd_sig(b(x), b(y), b(sig), rows * n),
            Step::Add { a, b: c, y, n } => g.add2(b(a), b(c), b(y), rows * n),
            Step::ChanBias { x, y, v, l, c } => {
                if let Some(x) = x {
                    g.add_into(b(y), b(x), rows * l * c, true)?;
                }
                g.channel_bias_fwd(b(y), b(v), rows, l, c)
            }
            Step::Upsample { x, y, l_in, c } => g.upsample2_fwd(b(x), b(y), rows, l_in, c),
            Step::Transpose { src, dst, a, b: cols } => g.transpose_rows(b(src), b(dst), rows, a, cols),
            Step::LinearParams { dy, x, tensor, inp, out } => {
                let (dw, db) = wb(gp, tensor);
                g.linear_bwd_params(b(dy), b(x), dw, db, (rows, inp, out), ws)
            }
            Step::LinearInput { dy, tensor, dx, inp, out, pre, acc } => {
                let (wt, _) = wb(pp, tensor);
                let (p, s) = pre.map_or((DPtr::NULL, DPtr::NULL), |(p, s)| (b(p), b(s)));
                g.linear_bwd_input(b(dy), wt, b(dx), (rows, inp, out), p, s, acc)
            }
            Step::ConvParams { dy, x, tensor, conv } => {
                let (dw, db) = wb(gp, tensor);
                g.conv1d_bwd_params(b(dy), b(x), dw, db, &conv, false, ws)
            }
            Step::ConvInput { dy, tensor, dx, conv, acc } => {
                let (wt, _) = wb(pp, tensor);
                g.conv1d_bwd_input(b(dy), wt, b(dx), &conv, acc)
            }
            Step::SiluBwd { x, sig, dy, dx, n, acc } => {
                g.silu_bwd_sig(b(x), b(sig), b(dy), b(dx), rows * n, acc)
            }
            Step::AddInto { dst, src, n, overwrite } => g.add_into(b(dst), b(src), rows * n, overwrite),
            Step::Zero { dst, n } => g.fill_zero(b(dst), rows * n),
            Step::ChanBiasBwd { dy, dv, l, c } => g.channel_bias_bwd(b(dy), b(dv), rows, l, c),
            Step::UpsampleBwd { dy, dx, l_in, c, acc } => g.upsample2_bwd(b(dy), b(dx), rows, l_in, c, acc),
        }
    }

    fn enqueue_step(&mut self) -> Result<(), GpuError> {
        self.enqueue_gradient()?;
        let g = &self.gpu;
        let (p, st) = (self.count, self.state.ptr());
        g.sq_partials(self.grads.ptr(), p, NORM_BLOCKS, self.norm_partials.ptr())?;
        g.step_scalars(
            self.norm_partials.ptr(),
            NORM_BLOCKS,
            self.grad_clip,
            self.lr,
            self.warmup,
            ADAM_BETA1,
            ADAM_BETA2,
            st,
        )?;
        g.adam_ema(
            self.params.ptr(),
            self.grads.ptr(),
            self.adam_m.ptr(),
            self.adam_v.ptr(),
            self.ema.ptr(),
            p,
            st,
            ADAM_BETA1,
            ADAM_BETA2,
            ADAM_EPS,
            self.ema_decay,
        )
    }

    /// The batch gradient and loss of the *next* step, without taking it (for tests against the
    /// CPU backend). Synchronises.
    pub fn peek_gradient(&mut self) -> Result<(f32, Vec<f32>), GpuError> {
        self.read_loss()?;
        self.enqueue_gradient()?;
        let grads = self.gpu.download(&self.grads, self.count)?;
        let loss = self.read_loss()?.unwrap_or(f32::NAN);
        Ok((loss, grads))
    }
}

#[cfg(test)]
mod tests {
    //! The walk's plan on the CPU (which layers fuse, and the plan run with the kernels' CPU twins
    //! against `graph_net`), then the GPU step against the CPU backend for ScoreNet v1 and a conv
    //! U-Net. The GPU tests need an NVIDIA GPU; without one each prints "skipped: …" and passes
    //! (CI has no GPU).
    use super::*;
    use crate::config::TrainConfig;
    use crate::data;
    use crate::graph_net::{self, Activations};
    use tinyscore_engine::graph::unet::UNet;
    use tinyscore_engine::graph::Op;
    use tinyscore_engine::net::Dims;
    use tinyscore_engine::rng::{bits4, uniform};
    use tinyscore_engine::schedule::Sde;
    use tinyscore_kernels::cpu::{self, DsmDraw};
    use tinyscore_kernels::{conv, elementwise, fused};

    fn cfg() -> TrainConfig {
        // Awkward sizes: no dimension is a multiple of the 64×64×16 tile.
        TrainConfig {
            hidden: 72,
            blocks: 2,
            freqs: 18,
            batch: 1000,
            seed: 9,
            warmup: 10,
            ..TrainConfig::default()
        }
    }

    /// A small U-Net on (C, L) signals with awkward channel counts.
    fn unet(channels: usize, length: usize) -> UNet {
        UNet { channels, length, width: 6, levels: 2, blocks: 1, kernel: 3, freqs: 10, temb: 12 }
    }

    fn net_of(u: &UNet) -> Net {
        Net::new(u.build().expect("a valid U-Net"))
    }

    #[test]
    fn the_fusion_plan_of_scorenet_v1() {
        let dims = Dims { dim: 2, hidden: 16, freqs: 8, blocks: 2 };
        let net = Net::mlp(&dims);
        let walk = Walk::new(&net, 5).unwrap();
        let want = [
            "φ of the DSM kernel",                            // 0 time
            "gemm +silu 2",                                   // 1 time MLP, hidden layer
            "in gemm 1 | bwd in gemm 3",                      // 2
            "gemm | bwd through silu 2",                      // 3 temb
            "gemm +silu 5",                                   // 4 h_0 = input layer
            "in gemm 4 | bwd in gemm 6",                      // 5 silu(h_0)
            "gemm +chan_bias 7 +silu 8 | bwd through silu 5", // 6 u = W1·silu(h) + b1 + temb
            "in gemm 6",                                      // 7 chan_bias
            "in gemm 6 | bwd in gemm 9",                      // 8 silu(u)
            "gemm +res v5 +silu 10 | bwd through silu 8",     // 9 h_1 = h_0 + W2·silu(u) + b2
            "in gemm 9 | bwd in gemm 11",                     // 10 silu(h_1)
            "gemm +chan_bias 12 +silu 13 | bwd through silu 10",
            "in gemm 11",
            "in gemm 11 | bwd in gemm 14",
            "gemm +res v10 +silu 15 | bwd through silu 13",
            "in gemm 14 | bwd in gemm 16",
            "gemm | bwd through silu 15", // 16 ε̂ = W_out·silu(h_2) + b_out
        ];
        assert_eq!(walk.fusion, want);
        // One GEMM per linear layer forward; no element-wise kernel at all in the forward pass.
        assert_eq!(walk.forward.len(), 8);
        assert!(walk.forward.iter().all(|s| matches!(s, Step::Linear { .. })));
        // Backward: per linear its parameter GEMM and (but for the two first layers) its input
        // GEMM; the residual stream's gradient is one buffer (no copies), temb's gradient sums
        // the blocks' bias gradients (one copy, one add).
        let count = |f: fn(&Step) -> bool| walk.backward.iter().filter(|s| f(s)).count();
        assert_eq!(count(|s| matches!(s, Step::LinearParams { .. })), 8);
        assert_eq!(count(|s| matches!(s, Step::LinearInput { .. })), 6);
        assert_eq!(count(|s| matches!(s, Step::AddInto { .. })), 2);
        assert_eq!(walk.backward.len(), 16);
        // ε̂ is the output layer's buffer itself (no transposition for a vector).
        assert!(matches!(walk.forward.last(), Some(&Step::Linear { y, .. }) if y == walk.out));
    }

    #[test]
    fn the_fusion_plan_of_a_unet() {
        let u = unet(1, 16);
        let net = net_of(&u);
        let walk = Walk::new(&net, 3).unwrap();
        let f = &walk.fusion;
        // The time branch: φ, the time MLP with its SiLUs in the GEMMs, one projection per block.
        assert_eq!(
            f[..5],
            [
                "φ of the DSM kernel",
                "gemm +silu 2",
                "in gemm 1 | bwd in gemm 3",
                "gemm +silu 4 | bwd through silu 2",
                "in gemm 3 | bwd kernel"
            ]
        );
        let blocks = 2 * u.levels + 1;
        assert!(f[5..5 + blocks].iter().all(|s| s == "gemm"), "{f:?}");
        // The data branch: convolutions (residuals added after), SiLU kernels, every chan_bias in
        // place on its convolution's output.
        let (mut convs, mut silus, mut biases) = (0, 0, 0);
        for (l, s) in net.layers.iter().zip(f).skip(5 + blocks) {
            match l.op {
                Op::Conv1d { res, .. } => {
                    convs += 1;
                    assert_eq!(s, if res.is_some() { "conv +res add" } else { "conv" });
                }
                Op::Silu { .. } => {
                    silus += 1;
                    assert_eq!(s, "kernel");
                }
                Op::ChannelBias { .. } => {
                    biases += 1;
                    assert_eq!(s, "kernel, in place");
                }
                Op::Upsample2 { .. } => assert_eq!(s, "kernel"),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((biases, silus), (blocks, 2 * blocks + 1));
        assert_eq!(convs, 1 + 2 * blocks + 2 * u.levels + 1);
        // Exactly one zero fill per projection (chan_bias's backward accumulates), and every
        // parameter tensor's gradient written by one step.
        let zeros = walk.backward.iter().filter(|s| matches!(s, Step::Zero { .. })).count();
        assert_eq!(zeros, blocks);
        // Residual, skip and chan_bias gradients take their output's buffer over: no copies.
        assert!(!walk.backward.iter().any(|s| matches!(s, Step::AddInto { .. })), "{:?}", walk.backward);
        // The time branch's gradient: the projections' input gradients summed into silu(temb)'s,
        // then one SiLU backward kernel (its forward was in the GEMM of temb).
        let silu_bwd = walk.backward.iter().filter(|s| matches!(s, Step::SiluBwd { .. })).count();
        assert_eq!(silu_bwd, 1 + (2 * blocks + 1));
        let mut written = vec![0; net.plan.tensors().len()];
        for s in &walk.backward {
            if let Step::LinearParams { tensor, .. } | Step::ConvParams { tensor, .. } = *s {
                written[tensor] += 1;
                written[tensor + 1] += 1;
            }
        }
        assert!(written.iter().all(|&w| w == 1), "{written:?}");
    }

    /// Runs a walk with the kernels' CPU twins (what each GPU launch computes): ε̂ for `x_t`,
    /// `phi` and the parameter gradient for the upstream gradient `d_out`. Every buffer starts
    /// as NaN, so a read of something the plan never wrote shows.
    fn run_on_cpu(
        net: &Net,
        walk: &Walk,
        p: &[f32],
        inputs: (&[f32], &[f32], &[f32]),
        rows: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        let (x_t, phi, d_out) = inputs;
        let mut bufs: Vec<Vec<f32>> = walk
            .bufs
            .iter()
            .map(|b| match b.source {
                Source::XT => x_t.to_vec(),
                Source::Phi => phi.to_vec(),
                Source::Own => vec![f32::NAN; rows * b.per_row],
            })
            .collect();
        let mut grads = vec![f32::NAN; net.count];
        let mut offsets = net.offsets.clone();
        offsets.push(net.count);
        let wb = |t: usize| (offsets[t], offsets[t + 1], offsets[t + 2]);
        let mut scratch = vec![0.0f32; 1 << 16];
        let steps: Vec<Step> = walk
            .forward
            .iter()
            .chain([&Step::Zero { dst: usize::MAX, n: 0 }])
            .chain(&walk.backward)
            .copied()
            .collect();
        for step in steps {
            let b = |bufs: &Vec<Vec<f32>>, id: usize| bufs[id].clone();
            match step {
                Step::Zero { dst: usize::MAX, .. } => bufs[walk.d_out] = d_out.to_vec(),
                Step::Linear { x, tensor, y, inp, out, add, act } => {
                    let (w0, b0, e) = wb(tensor);
                    let (xv, addv) = (b(&bufs, x), add.map(|a| b(&bufs, a)));
                    let mut yv = std::mem::take(&mut bufs[y]);
                    match act {
                        Some((a, s)) => {
                            let (mut av, mut sv) =
                                (std::mem::take(&mut bufs[a]), std::mem::take(&mut bufs[s]));
                            fused::linear_fwd(
                                &xv,
                                &p[w0..b0],
                                &p[b0..e],
                                &mut yv,
                                (rows, inp, out),
                                addv.as_deref(),
                                Some((&mut av, &mut sv)),
                            );
                            (bufs[a], bufs[s]) = (av, sv);
                        }
                        None => fused::linear_fwd(
                            &xv,
                            &p[w0..b0],
                            &p[b0..e],
                            &mut yv,
                            (rows, inp, out),
                            addv.as_deref(),
                            None,
                        ),
                    }
                    bufs[y] = yv;
                }
                Step::Conv { x, tensor, y, conv: c, res } => {
                    let (w0, b0, e) = wb(tensor);
                    let (xv, mut yv) = (b(&bufs, x), vec![0.0; c.y_len()]);
                    conv::conv1d_fwd(&xv, &p[w0..b0], &p[b0..e], &mut yv, &c, &mut scratch);
                    if let Some(r) = res {
                        cpu::add_inplace(&mut yv, &bufs[r]);
                    }
                    bufs[y] = yv;
                }
                Step::Silu { x, y, sig, n } => {
                    let (xv, mut yv, mut sv) = (b(&bufs, x), vec![0.0; rows * n], vec![0.0; rows * n]);
                    cpu::silu_fwd_sig(&xv, &mut yv, &mut sv);
                    (bufs[y], bufs[sig]) = (yv, sv);
                }
                Step::Add { a, b: c, y, n } => {
                    let mut yv = vec![0.0; rows * n];
                    elementwise::add(&bufs[a], &bufs[c], &mut yv);
                    bufs[y] = yv;
                }
                Step::ChanBias { x, y, v, l, c } => {
                    let mut yv = b(&bufs, x.unwrap_or(y));
                    conv::channel_bias_fwd(&mut yv, &bufs[v], rows, l, c);
                    bufs[y] = yv;
                }
                Step::Upsample { x, y, l_in, c } => {
                    let mut yv = vec![0.0; 2 * rows * l_in * c];
                    conv::upsample2_fwd(&bufs[x], &mut yv, rows, l_in, c);
                    bufs[y] = yv;
                }
                Step::Transpose { src, dst, a, b: c } => {
                    let mut d = vec![0.0; rows * a * c];
                    elementwise::transpose_rows(&bufs[src], &mut d, rows, a, c);
                    bufs[dst] = d;
                }
                Step::LinearParams { dy, x, tensor, inp, out } => {
                    let (w0, b0, e) = wb(tensor);
                    let (dw, db) = grads[w0..e].split_at_mut(b0 - w0);
                    fused::linear_bwd_params(&bufs[dy], &bufs[x], dw, db, (rows, inp, out));
                }
                Step::LinearInput { dy, tensor, dx, inp, out, pre, acc } => {
                    let (w0, b0, _) = wb(tensor);
                    let (dyv, prev) = (b(&bufs, dy), pre.map(|(a, s)| (b(&bufs, a), b(&bufs, s))));
                    let mut dxv = std::mem::take(&mut bufs[dx]);
                    let silu = prev.as_ref().map(|(a, s)| (&a[..], &s[..]));
                    fused::linear_bwd_input(&dyv, &p[w0..b0], &mut dxv, (rows, inp, out), silu, acc);
                    bufs[dx] = dxv;
                }
                Step::ConvParams { dy, x, tensor, conv: c } => {
                    let (w0, b0, e) = wb(tensor);
                    let (dw, db) = grads[w0..e].split_at_mut(b0 - w0);
                    dw.fill(0.0);
                    db.fill(0.0);
                    conv::conv1d_bwd_params(&bufs[dy], &bufs[x], dw, db, &c, &mut scratch);
                }
                Step::ConvInput { dy, tensor, dx, conv: c, acc } => {
                    let (w0, b0, _) = wb(tensor);
                    let dyv = b(&bufs, dy);
                    let mut dxv = std::mem::take(&mut bufs[dx]);
                    if acc {
                        conv::conv1d_bwd_input_acc(&dyv, &p[w0..b0], &mut dxv, &c, &mut scratch);
                    } else {
                        conv::conv1d_bwd_input(&dyv, &p[w0..b0], &mut dxv, &c, &mut scratch);
                    }
                    bufs[dx] = dxv;
                }
                Step::SiluBwd { x, sig, dy, dx, acc, .. } => {
                    let (xv, sv, dyv) = (b(&bufs, x), b(&bufs, sig), b(&bufs, dy));
                    if acc {
                        cpu::silu_bwd_sig_acc(&xv, &sv, &dyv, &mut bufs[dx]);
                    } else {
                        cpu::silu_bwd_sig(&xv, &sv, &dyv, &mut bufs[dx]);
                    }
                }
                Step::AddInto { dst, src, overwrite, .. } => {
                    let s = b(&bufs, src);
                    if overwrite {
                        bufs[dst] = s;
                    } else {
                        cpu::add_inplace(&mut bufs[dst], &s);
                    }
                }
                Step::Zero { dst, .. } => bufs[dst].fill(0.0),
                Step::ChanBiasBwd { dy, dv, l, c } => {
                    let dyv = b(&bufs, dy);
                    conv::channel_bias_bwd(&dyv, &mut bufs[dv], rows, l, c);
                }
                Step::UpsampleBwd { dy, dx, l_in, c, acc } => {
                    let dyv = b(&bufs, dy);
                    if acc {
                        conv::upsample2_bwd_acc(&dyv, &mut bufs[dx], rows, l_in, c);
                    } else {
                        conv::upsample2_bwd(&dyv, &mut bufs[dx], rows, l_in, c);
                    }
                }
            }
        }
        (bufs[walk.out].clone(), grads)
    }

    /// A graph with the cases ScoreNet v1 and the U-Net lack: a SiLU read twice (its backward a
    /// kernel), `add` of two values and of one value to itself, a linear whose residual is its
    /// input, an unfused `silu` of φ in the time branch.
    fn odd_graph() -> Net {
        use tinyscore_engine::graph::build::Builder;
        use tinyscore_engine::graph::Shape;
        let mut b = Builder::new(Shape { channels: 2, length: 1 }, 2);
        let phi = b.time_features(4).unwrap();
        let sp = b.silu(phi).unwrap();
        let t = b.linear(sp, 3, None).unwrap();
        let h = b.linear(0, 3, None).unwrap();
        let a = b.silu(h).unwrap();
        let u = b.linear(a, 3, None).unwrap();
        let u = b.channel_bias(u, t).unwrap();
        let s = b.add(u, a).unwrap();
        let s = b.add(s, s).unwrap();
        let y = b.linear(s, 3, Some(s)).unwrap();
        b.linear(y, 2, None).unwrap();
        Net::new(b.finish().unwrap())
    }

    #[test]
    fn the_odd_graph_takes_the_unfused_paths() {
        let net = odd_graph();
        let walk = Walk::new(&net, 2).unwrap();
        let want = [
            "φ of the DSM kernel",
            "kernel",
            "gemm",
            "gemm +silu 4",
            "in gemm 3 | bwd kernel",
            "gemm +chan_bias 6",
            "in gemm 5",
            "kernel",
            "kernel",
            "gemm +res v9",
            "gemm",
        ];
        assert_eq!(walk.fusion, want);
        let has = |f: fn(&Step) -> bool| walk.backward.iter().any(f);
        assert!(has(|s| matches!(s, Step::SiluBwd { .. })));
        assert!(has(|s| matches!(s, Step::AddInto { overwrite: true, .. })));
        assert!(has(|s| matches!(s, Step::AddInto { overwrite: false, .. })));
    }

    /// The plan, run with the CPU twins of the GPU kernels, gives `graph_net`'s forward pass and
    /// parameter gradient (to rounding: the fused SiLU backward adds its share at another point
    /// of the fixed order) for ScoreNet v1, a one-channel U-Net and a three-channel one (whose
    /// edges are transposed).
    #[test]
    fn the_plan_run_with_the_cpu_twins_matches_the_graph_walk() {
        let nets = [
            Net::mlp(&Dims { dim: 3, hidden: 12, freqs: 6, blocks: 2 }),
            net_of(&unet(1, 16)),
            net_of(&unet(3, 8)),
            odd_graph(),
        ];
        for net in nets {
            let (rows, d) = (5, net.input().len());
            let walk = Walk::new(&net, rows).unwrap();
            let p: Vec<f32> = (0..net.count).map(|i| ((i as f32) * 0.731).sin() * 0.4).collect();
            let mut act = Activations::new(&net, rows);
            let f = walk.freqs;
            let mut phi = vec![0.0; rows * f];
            for r in 0..rows {
                act.t[r] = 0.05 + 0.9 * r as f32 / rows as f32;
                tinyscore_engine::net::time_features(act.t[r], &mut phi[r * f..(r + 1) * f]);
            }
            for (i, v) in act.x.iter_mut().enumerate() {
                *v = (i as f32 * 1.37).cos();
            }
            let d_out: Vec<f32> = (0..rows * d).map(|i| (i as f32 * 0.3).sin()).collect();
            graph_net::forward(&net, &p, &mut act, rows);
            act.d_out.copy_from_slice(&d_out);
            let mut want = vec![0.0f32; net.count];
            graph_net::backward(&net, &p, &mut act, &mut want, rows);
            let (out, got) = run_on_cpu(&net, &walk, &p, (&act.x, &phi, &d_out), rows);
            let close = |a: f32, b: f32, scale: f32| (a - b).abs() <= 1e-5 * scale + 1e-5 * b.abs();
            for (o, w) in out.iter().zip(&act.out) {
                assert!(close(*o, *w, 1.0), "{:?}: ε̂ {o} vs {w}", net.input());
            }
            let scale = want.iter().fold(0.0f32, |m, g| m.max(g.abs()));
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(close(*g, *w, scale), "{:?}: gradient [{i}] {g} vs {w}", net.input());
            }
        }
    }

    /// A graph with two `time` layers, or none, is refused by name.
    #[test]
    fn a_graph_without_one_time_layer_is_refused() {
        use tinyscore_engine::graph::build::Builder;
        use tinyscore_engine::graph::Shape;
        let mut b = Builder::new(Shape { channels: 2, length: 1 }, 2);
        let p1 = b.time_features(4).unwrap();
        let p2 = b.time_features(6).unwrap();
        let t1 = b.linear(p1, 3, None).unwrap();
        let t2 = b.linear(p2, 3, None).unwrap();
        let t = b.add(t1, t2).unwrap();
        let h = b.linear(0, 3, None).unwrap();
        let h = b.channel_bias(h, t).unwrap();
        b.linear(h, 2, None).unwrap();
        let net = Net::new(b.finish().unwrap());
        let err = Walk::new(&net, 4).unwrap_err();
        assert!(err.to_string().contains("exactly one `time` layer"), "{err}");
    }

    /// A CPU reference run of `net` (the CPU trainer's step with the whole batch as one chunk):
    /// the DSM draw, `graph_net`'s passes, clipping, Adam and the EMA.
    struct CpuRun {
        net: Net,
        process: Diffusion,
        data: Vec<f32>,
        cfg: TrainConfig,
        step: u64,
        params: Vec<f32>,
        ema: Vec<f32>,
        m: Vec<f32>,
        v: Vec<f32>,
    }

    impl CpuRun {
        /// A U-Net run on synthetic signals (sums of two sines per channel), PyTorch-like init.
        fn unet(u: &UNet, cfg: TrainConfig) -> Self {
            let net = net_of(u);
            let d = net.input().len();
            let data: Vec<f32> = (0..400 * d)
                .map(|i| {
                    let (r, e) = ((i / d) as f32, (i % d) as f32);
                    (0.3 * e + 0.7 * r).sin() + 0.5 * (0.11 * e * (1.0 + r % 3.0)).cos()
                })
                .collect();
            let mut params = vec![0.0f32; net.count];
            for (k, &(rows, cols)) in net.plan.tensors().iter().enumerate() {
                let fan_in = if k % 2 == 0 { cols } else { net.plan.tensors()[k - 1].1 };
                let bound = 1.0 / (fan_in as f32).sqrt();
                let off = net.offsets[k];
                for (e, v) in params[off..off + rows * cols].iter_mut().enumerate() {
                    *v = bound * (2.0 * uniform(bits4(cfg.seed, e as u32, k as u32, 1, 0)[0]) - 1.0);
                }
            }
            let n = net.count;
            let process = cfg.diffusion().unwrap();
            Self {
                net,
                process,
                data,
                cfg,
                step: 0,
                ema: params.clone(),
                params,
                m: vec![0.0; n],
                v: vec![0.0; n],
            }
        }

        fn start(&self) -> Start<'_> {
            Start {
                net: &self.net,
                process: &self.process,
                data: &self.data,
                cfg: &self.cfg,
                step: self.step,
                params: &self.params,
                ema: &self.ema,
                adam_m: &self.m,
                adam_v: &self.v,
            }
        }

        /// The batch's loss and gradient at the current step.
        fn gradient(&self) -> (f32, Vec<f32>) {
            cpu_gradient(&self.net, &self.process, &self.data, &self.cfg, self.step, &self.params)
        }

        /// One step; returns its loss.
        fn step(&mut self) -> f32 {
            let (loss, g) = self.gradient();
            self.step += 1;
            let c = &self.cfg;
            fused::clip_adam_ema(
                &mut self.params,
                &g,
                &mut self.m,
                &mut self.v,
                &mut self.ema,
                self.step,
                (c.lr, c.warmup, c.grad_clip),
                (ADAM_BETA1, ADAM_BETA2, ADAM_EPS, c.ema),
            );
            loss
        }
    }

    /// The CPU loss and gradient of the batch of `step` (one chunk of the whole batch).
    fn cpu_gradient(
        net: &Net,
        process: &Diffusion,
        data: &[f32],
        c: &TrainConfig,
        step: u64,
        p: &[f32],
    ) -> (f32, Vec<f32>) {
        let (d, rows) = (net.input().len(), c.batch);
        let mut act = Activations::new(net, rows);
        let (mut eps, mut tt) = (vec![0.0; rows * d], vec![0.0; rows]);
        let draw = DsmDraw { seed: c.seed, step, batch: rows, first: 0 };
        cpu::dsm_inputs(
            data,
            d,
            process,
            draw,
            c.time_draw,
            rows,
            net.freqs(),
            &mut act.x,
            &mut eps,
            &mut tt,
            &mut act.phi,
        );
        act.t[..rows].copy_from_slice(&tt);
        graph_net::forward(net, p, &mut act, rows);
        let n = rows * d;
        let loss = cpu::mse_loss_grad(&act.out[..n], &eps, n, &mut act.d_out[..n]);
        let mut grads = vec![0.0; net.count];
        graph_net::backward(net, p, &mut act, &mut grads, rows);
        (loss as f32, grads)
    }

    fn check_gradient(what: &str, (loss, got): (f32, Vec<f32>), (want_loss, want): (f32, Vec<f32>)) {
        assert!((loss - want_loss).abs() <= 1e-4 * want_loss.abs(), "{what}: loss {loss} vs {want_loss}");
        // |Δ| ≤ 1e-4·max|g| + 1e-3·|g|: the sums run in other orders, φ(t) uses CUDA's sinf.
        let scale = want.iter().fold(0.0f32, |m, g| m.max(g.abs()));
        let bad =
            got.iter().zip(&want).filter(|(a, b)| (**a - **b).abs() > 1e-4 * scale + 1e-3 * b.abs()).count();
        assert_eq!(bad, 0, "{what}: {bad} of {} gradient elements differ", want.len());
    }

    fn processes() -> [Option<Sde>; 3] {
        [
            None,
            Some(Sde::Vp { beta_min: 0.1, beta_max: 20.0 }),
            Some(Sde::Ve { sigma_min: 0.01, sigma_max: 5.0 }),
        ]
    }

    #[test]
    fn one_step_gradient_matches_the_cpu_for_every_process() {
        let Some(gpu) = Gpu::open_or_skip(0) else { return };
        let moons = data::load("moons", 2000, 1).unwrap();
        for sde in processes() {
            let t_eps = sde.as_ref().map_or(1e-3, crate::train::default_t_eps);
            let cpu_run = Trainer::new(TrainConfig { sde, t_eps, ..cfg() }, &moons, "moons").unwrap();
            let mut gpu_run = CudaTrainer::on(gpu.clone(), &cpu_run).unwrap();
            let (net, process, data, _, _) = cpu_run.backend_parts();
            let want =
                cpu_gradient(net, process, data, cpu_run.config(), cpu_run.steps_done(), cpu_run.params());
            check_gradient(&format!("ScoreNet v1 {sde:?}"), gpu_run.peek_gradient().unwrap(), want);
        }
        for (channels, length) in [(1, 64), (3, 24)] {
            for sde in processes() {
                let t_eps = sde.as_ref().map_or(1e-3, crate::train::default_t_eps);
                let c = TrainConfig { sde, t_eps, batch: 200, ..cfg() };
                let run = CpuRun::unet(&unet(channels, length), c);
                let mut g = CudaTrainer::start(gpu.clone(), &run.start()).unwrap();
                check_gradient(
                    &format!("U-Net ({channels}, {length}) {sde:?}"),
                    g.peek_gradient().unwrap(),
                    run.gradient(),
                );
            }
        }
    }

    #[test]
    fn fifty_steps_follow_the_cpu_loss_trajectory() {
        let Some(gpu) = Gpu::open_or_skip(0) else { return };
        let moons = data::load("moons", 2000, 1).unwrap();
        let mut cpu_run = Trainer::new(cfg(), &moons, "moons").unwrap();
        let mut gpu_run = CudaTrainer::on(gpu.clone(), &cpu_run).unwrap();
        let mut unet_cpu = CpuRun::unet(&unet(1, 64), TrainConfig { batch: 200, lr: 1e-3, ..cfg() });
        let mut unet_gpu = CudaTrainer::start(gpu, &unet_cpu.start()).unwrap();
        let (mut worst, mut worst_unet) = (0.0f32, 0.0f32);
        for step in 0..50 {
            for (what, want, g, w) in [
                ("ScoreNet v1", cpu_run.step(), &mut gpu_run, &mut worst),
                ("U-Net", unet_cpu.step(), &mut unet_gpu, &mut worst_unet),
            ] {
                g.step().unwrap();
                let got = g.read_loss().unwrap().unwrap();
                let rel = (got - want).abs() / want.abs();
                *w = w.max(rel);
                assert!(rel <= 0.02, "{what} step {step}: GPU loss {got} vs CPU {want}");
            }
        }
        eprintln!(
            "50 steps: worst relative loss difference {worst:.2e} (ScoreNet v1), {worst_unet:.2e} (U-Net)"
        );
    }

    #[test]
    fn two_gpu_runs_are_bitwise_identical_with_and_without_a_graph() {
        let Some(gpu) = Gpu::open_or_skip(0) else { return };
        let moons = data::load("moons", 2000, 1).unwrap();
        let start = Trainer::new(cfg(), &moons, "moons").unwrap();
        let mut runs = Vec::new();
        for graph in [false, false, true] {
            let mut t = CudaTrainer::on(gpu.clone(), &start).unwrap();
            t.use_graph(graph);
            for _ in 0..30 {
                t.step().unwrap();
            }
            let mut cpu = Trainer::new(cfg(), &moons, "moons").unwrap();
            t.sync_to(&mut cpu).unwrap();
            runs.push(cpu.checkpoint());
        }
        assert_eq!(runs[0], runs[1], "two GPU runs differ");
        assert_eq!(runs[0], runs[2], "the graph run differs from the plain run");
        assert_eq!(runs[0].step, 30);
        let run = CpuRun::unet(&unet(3, 24), TrainConfig { batch: 300, ..cfg() });
        let mut states = Vec::new();
        for graph in [false, false, true] {
            let mut t = CudaTrainer::start(gpu.clone(), &run.start()).unwrap();
            t.use_graph(graph);
            for _ in 0..30 {
                t.step().unwrap();
            }
            let n = t.count;
            let state: Vec<u32> = [&t.params, &t.ema, &t.adam_m, &t.adam_v]
                .into_iter()
                .flat_map(|b| t.gpu.download(b, n).unwrap())
                .map(f32::to_bits)
                .collect();
            states.push((state, t.read_loss().unwrap().map(f32::to_bits)));
        }
        assert_eq!(states[0], states[1], "two U-Net GPU runs differ");
        assert_eq!(states[0], states[2], "the U-Net graph run differs from the plain run");
    }

    /// Steps per second of the conv U-Net, plain and as a CUDA graph (`scripts/gpu-check.sh run`
    /// runs it with `--ignored`; a timing, not an assertion). The sizes are the PyTorch
    /// baseline's `--mode conv` defaults; `TINYSCORE_BENCH_UNET="C,L,width,levels,blocks,K,F,T"`
    /// and `TINYSCORE_BENCH_BATCH` override them.
    #[test]
    #[ignore = "a GPU benchmark: cargo test -p tinyscore-train --release -- --ignored bench_ --nocapture"]
    fn bench_conv_unet_steps_per_second() {
        let Some(gpu) = Gpu::open_or_skip(0) else { return };
        let v: Vec<usize> = std::env::var("TINYSCORE_BENCH_UNET")
            .unwrap_or_else(|_| "1,256,32,3,1,3,32,64".into())
            .split(',')
            .map(|s| s.trim().parse().expect("TINYSCORE_BENCH_UNET: numbers"))
            .collect();
        let u = UNet {
            channels: v[0],
            length: v[1],
            width: v[2],
            levels: v[3],
            blocks: v[4],
            kernel: v[5],
            freqs: v[6],
            temb: v[7],
        };
        let batches: Vec<usize> = std::env::var("TINYSCORE_BENCH_BATCH")
            .unwrap_or_else(|_| "256,1024".into())
            .split(',')
            .map(|s| s.trim().parse().expect("TINYSCORE_BENCH_BATCH: numbers"))
            .collect();
        for batch in batches {
            for graph in [false, true] {
                let run = CpuRun::unet(&u, TrainConfig { batch, ..TrainConfig::default() });
                let mut t = CudaTrainer::start(gpu.clone(), &run.start()).unwrap();
                t.use_graph(graph);
                for _ in 0..10 {
                    t.step().unwrap();
                }
                gpu.synchronize().unwrap();
                let steps = 100;
                let t0 = std::time::Instant::now();
                for _ in 0..steps {
                    t.step().unwrap();
                }
                gpu.synchronize().unwrap();
                let secs = t0.elapsed().as_secs_f64();
                let loss = t.read_loss().unwrap().unwrap_or(f32::NAN);
                println!(
                    "conv-unet {u:?} batch {batch} graph {graph}: {:.1} steps/s, {:.0} examples/s, loss {loss:.4} ({})",
                    steps as f64 / secs,
                    (steps * batch) as f64 / secs,
                    gpu.name()
                );
            }
        }
    }
}
