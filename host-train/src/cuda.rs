//! The CUDA training backend: the CPU trainer's step ([`crate::train::Trainer::step`]) on an
//! NVIDIA GPU, with the kernels of `tinyscore_kernels::cuda`.
//!
//! A [`CudaTrainer`] starts from a CPU [`Trainer`] (initial weights, or a resumed checkpoint),
//! uploads its state once and allocates every buffer of a step once. A step is a fixed sequence
//! of launches on one stream, with no host synchronisation: the DSM inputs (the step counter lives
//! on the device), the forward pass with fused epilogues, the loss, the backward pass
//! (deterministic split-K weight gradients, no float atomics), the gradient norm and the fused
//! Adam + EMA update. The loss is accumulated on the device and read back when asked
//! ([`CudaTrainer::read_loss`]), e.g. every 100 steps for a progress bar. With
//! [`CudaTrainer::use_graph`] the step is captured once as a CUDA graph and replayed.
//!
//! The semantics are the CPU trainer's (the same draws, network, loss, clipping, Adam, EMA);
//! the bits are not, because the GPU sums in another order and uses CUDA's `expf`/`sinf`. Two
//! GPU runs with the same seed are bitwise identical. [`CudaTrainer::sync_to`] writes the state
//! back into the CPU trainer, whose checkpoints are the ones the CPU writes.

use cudarc::driver::CudaGraph;
use tinyscore_engine::net::frequency;
use tinyscore_kernels::cuda::{self, DPtr, DevBuf, DsmBuffers, DsmProcess, Gpu, GpuError};

use crate::scorenet::{Layout, Linear};

use crate::config::{Loss, Weighting};
use crate::train::{Trainer, ADAM_BETA1, ADAM_BETA2, ADAM_EPS};
pub use tinyscore_kernels::cuda::device_count;

/// Blocks of the gradient-norm reduction.
const NORM_BLOCKS: usize = 264;

/// Every activation buffer of one batch (each (batch, width)).
struct Acts {
    t_pre: DevBuf<f32>,
    t_act: DevBuf<f32>,
    t_sig: DevBuf<f32>,
    temb: DevBuf<f32>,
    /// h_0..h_B and their σ.
    h: Vec<DevBuf<f32>>,
    h_sig: Vec<DevBuf<f32>>,
    /// a1_b = silu(h_b) for b < B, and a1_B = silu(h_B) (the output layer's input).
    a1: Vec<DevBuf<f32>>,
    u: Vec<DevBuf<f32>>,
    u_sig: Vec<DevBuf<f32>>,
    a2: Vec<DevBuf<f32>>,
    out: DevBuf<f32>,
    d_out: DevBuf<f32>,
    dh: DevBuf<f32>,
    du: DevBuf<f32>,
    d_temb: DevBuf<f32>,
    dt: DevBuf<f32>,
}

/// A training run on the GPU (see the module doc).
pub struct CudaTrainer {
    gpu: Gpu,
    layout: Layout,
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
    acts: Acts,
    ws: DevBuf<f32>,
    loss_partials: DevBuf<f64>,
    norm_partials: DevBuf<f64>,
    graph: Option<CudaGraph>,
    want_graph: bool,
    /// Buffers that only need to stay alive (data, tables, DSM outputs).
    _keep: Vec<DevBuf<f32>>,
    _keep_index: DevBuf<u32>,
}

impl std::fmt::Debug for CudaTrainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaTrainer")
            .field("gpu", &self.gpu.name())
            .field("dims", &self.layout.dims)
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
        let cfg = cpu.config();
        if cfg.loss != Loss::Dsm {
            return Err(GpuError::Unsupported(format!(
                "--loss {} runs on the CPU backend only (the GPU trains dsm)",
                cfg.loss.name()
            )));
        }
        let (layout, process, data, m, v) = cpu.backend_parts();
        let layout = layout.clone();
        let dims = layout.dims;
        let (d, h, f, nb, batch) = (dims.dim, dims.hidden, dims.freqs, dims.blocks, cfg.batch);
        let p = layout.count;

        let mut keep = Vec::new();
        let mut put = |buf: DevBuf<f32>| {
            let ptr = buf.ptr();
            keep.push(buf);
            ptr
        };
        let tables = cuda::discrete_tables(process)
            .map(|t| -> Result<[DPtr; 4], GpuError> {
                let [a, b, c, e] = t;
                Ok([put(gpu.upload(&a)?), put(gpu.upload(&b)?), put(gpu.upload(&c)?), put(gpu.upload(&e)?)])
            })
            .transpose()?;
        let process = cuda::dsm_process(process, tables);
        let omegas: Vec<f32> = (0..f / 2).map(|k| frequency(k, f / 2)).collect();
        let index = gpu.zeros::<u32>(batch)?;
        let mut st = vec![0u64; cuda::state::LEN];
        st[cuda::state::STEP] = cpu.steps_done();
        let state = gpu.upload(&st)?;
        let dsm = DsmBuffers {
            state: state.ptr(),
            data: put(gpu.upload(data)?),
            n_data: (data.len() / d) as u32,
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
        let z = |n: usize| gpu.zeros::<f32>(batch * n);
        let many = |k: usize, n: usize| (0..k).map(|_| z(n)).collect::<Result<Vec<_>, _>>();
        let acts = Acts {
            t_pre: z(h)?,
            t_act: z(h)?,
            t_sig: z(h)?,
            temb: z(h)?,
            h: many(nb + 1, h)?,
            h_sig: many(nb + 1, h)?,
            a1: many(nb + 1, h)?,
            u: many(nb, h)?,
            u_sig: many(nb, h)?,
            a2: many(nb, h)?,
            out: z(d)?,
            d_out: z(d)?,
            dh: z(h)?,
            du: z(h)?,
            d_temb: z(h)?,
            dt: z(h)?,
        };
        let ws_len = dims.params().map(|(_, rows, cols)| cuda::ws_len(cols, rows)).max().unwrap_or(1);
        let likelihood = cfg.weighting == Weighting::Likelihood;
        Ok(Self {
            batch,
            seed: cfg.seed,
            lr: cfg.lr,
            warmup: cfg.warmup,
            grad_clip: cfg.grad_clip,
            ema_decay: cfg.ema,
            likelihood,
            step: cpu.steps_done(),
            process,
            dsm,
            state,
            params: gpu.upload(cpu.params())?,
            grads: gpu.zeros(p)?,
            adam_m: gpu.upload(m)?,
            adam_v: gpu.upload(v)?,
            ema: gpu.upload(cpu.ema_params())?,
            acts,
            ws: gpu.zeros(ws_len)?,
            loss_partials: gpu.zeros((batch * d).div_ceil(cuda::THREADS as usize))?,
            norm_partials: gpu.zeros(NORM_BLOCKS)?,
            graph: None,
            want_graph: false,
            _keep: keep,
            _keep_index: index,
            gpu,
            layout,
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
    /// afterwards (one launch per step instead of ~10 + 6·B).
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
        self.gpu.download(&self.params, self.layout.count)
    }

    /// Writes the run's state (step, weights, EMA, Adam moments) into `cpu`, whose
    /// [`Trainer::checkpoint`] then saves the GPU run. Synchronises.
    pub fn sync_to(&self, cpu: &mut Trainer) -> Result<(), GpuError> {
        let n = self.layout.count;
        let (p, e) = (self.gpu.download(&self.params, n)?, self.gpu.download(&self.ema, n)?);
        let (m, v) = (self.gpu.download(&self.adam_m, n)?, self.gpu.download(&self.adam_v, n)?);
        cpu.set_state(self.step, p, e, m, v);
        Ok(())
    }

    /// Enqueues the DSM inputs, the forward and backward passes and the loss, leaving the batch
    /// gradient in `grads` (no update).
    fn enqueue_gradient(&mut self) -> Result<(), GpuError> {
        let g = &self.gpu;
        let lay = &self.layout;
        let dims = lay.dims;
        let (d, f, batch) = (dims.dim, dims.freqs, self.batch);
        let a = &self.acts;
        let (pp, gp, ws) = (self.params.ptr(), self.grads.ptr(), self.ws.ptr());
        let w = |l: &Linear| pp.f32_at(l.w);
        let bias = |l: &Linear| pp.f32_at(l.w + l.out * l.inp);
        let gw = |l: &Linear| gp.f32_at(l.w);
        let gb = |l: &Linear| gp.f32_at(l.w + l.out * l.inp);
        let shape = |l: &Linear| (batch, l.inp, l.out);
        let null = DPtr::NULL;

        g.dsm_inputs(self.seed, batch, d, f, self.process, self.likelihood, &self.dsm)?;
        let (x, phi) = (self.dsm.x_t, self.dsm.phi);

        // Forward, every SiLU fused into the GEMM that produces its input.
        let (t1, t2) = (&lay.time1, &lay.time2);
        g.linear_fwd(phi, w(t1), bias(t1), a.t_pre.ptr(), shape(t1), null, a.t_act.ptr(), a.t_sig.ptr())?;
        g.linear_fwd(a.t_act.ptr(), w(t2), bias(t2), a.temb.ptr(), shape(t2), null, null, null)?;
        let inp = &lay.input;
        g.linear_fwd(x, w(inp), bias(inp), a.h[0].ptr(), shape(inp), null, a.a1[0].ptr(), a.h_sig[0].ptr())?;
        for (b, (l1, l2)) in lay.blocks.iter().enumerate() {
            // u = W1·silu(h_b) + b1 + temb;  h_{b+1} = h_b + W2·silu(u) + b2
            g.linear_fwd(
                a.a1[b].ptr(),
                w(l1),
                bias(l1),
                a.u[b].ptr(),
                shape(l1),
                a.temb.ptr(),
                a.a2[b].ptr(),
                a.u_sig[b].ptr(),
            )?;
            g.linear_fwd(
                a.a2[b].ptr(),
                w(l2),
                bias(l2),
                a.h[b + 1].ptr(),
                shape(l2),
                a.h[b].ptr(),
                a.a1[b + 1].ptr(),
                a.h_sig[b + 1].ptr(),
            )?;
        }
        let nb = lay.blocks.len();
        let out = &lay.output;
        g.linear_fwd(a.a1[nb].ptr(), w(out), bias(out), a.out.ptr(), shape(out), null, null, null)?;

        // Loss: mean over the batch of the (weighted) squared error.
        let weights = if self.likelihood { self.dsm.weight } else { null };
        let n = batch * d;
        let parts =
            g.mse_grad(a.out.ptr(), self.dsm.eps, weights, n, d, n, a.d_out.ptr(), self.loss_partials.ptr())?;
        g.loss_finish(self.loss_partials.ptr(), parts, n, self.state.ptr())?;

        // Backward.
        g.linear_bwd_params(a.d_out.ptr(), a.a1[nb].ptr(), gw(out), gb(out), shape(out), ws)?;
        g.linear_bwd_input(
            a.d_out.ptr(),
            w(out),
            a.dh.ptr(),
            shape(out),
            a.h[nb].ptr(),
            a.h_sig[nb].ptr(),
            false,
        )?;
        for (b, (l1, l2)) in lay.blocks.iter().enumerate().rev() {
            g.linear_bwd_params(a.dh.ptr(), a.a2[b].ptr(), gw(l2), gb(l2), shape(l2), ws)?;
            g.linear_bwd_input(
                a.dh.ptr(),
                w(l2),
                a.du.ptr(),
                shape(l2),
                a.u[b].ptr(),
                a.u_sig[b].ptr(),
                false,
            )?;
            g.add_into(a.d_temb.ptr(), a.du.ptr(), batch * dims.hidden, b + 1 == nb)?;
            g.linear_bwd_params(a.du.ptr(), a.a1[b].ptr(), gw(l1), gb(l1), shape(l1), ws)?;
            // The skip path already holds dh: accumulate the branch through silu(h_b).
            g.linear_bwd_input(
                a.du.ptr(),
                w(l1),
                a.dh.ptr(),
                shape(l1),
                a.h[b].ptr(),
                a.h_sig[b].ptr(),
                true,
            )?;
        }
        g.linear_bwd_params(a.dh.ptr(), x, gw(inp), gb(inp), shape(inp), ws)?;
        g.linear_bwd_params(a.d_temb.ptr(), a.t_act.ptr(), gw(t2), gb(t2), shape(t2), ws)?;
        g.linear_bwd_input(
            a.d_temb.ptr(),
            w(t2),
            a.dt.ptr(),
            shape(t2),
            a.t_pre.ptr(),
            a.t_sig.ptr(),
            false,
        )?;
        g.linear_bwd_params(a.dt.ptr(), phi, gw(t1), gb(t1), shape(t1), ws)?;
        Ok(())
    }

    fn enqueue_step(&mut self) -> Result<(), GpuError> {
        self.enqueue_gradient()?;
        let g = &self.gpu;
        let (p, st) = (self.layout.count, self.state.ptr());
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
        let grads = self.gpu.download(&self.grads, self.layout.count)?;
        let loss = self.read_loss()?.unwrap_or(f32::NAN);
        Ok((loss, grads))
    }
}

#[cfg(test)]
mod tests {
    //! The GPU step against the CPU backend. Needs an NVIDIA GPU; without one every test prints
    //! "skipped: …" and passes (CI has no GPU).
    use super::*;
    use crate::config::TrainConfig;
    use crate::data;
    use crate::scorenet::{self, Activations};
    use tinyscore_engine::schedule::Sde;
    use tinyscore_kernels::cpu::{self, DsmDraw};

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

    /// The CPU gradient of the batch of `step` (one chunk of the whole batch).
    fn cpu_gradient(t: &Trainer) -> (f32, Vec<f32>) {
        let (layout, process, data, _, _) = t.backend_parts();
        let dims = layout.dims;
        let c = t.config();
        let (d, rows) = (dims.dim, c.batch);
        let mut act = Activations::new(&dims, rows);
        let (mut eps, mut tt) = (vec![0.0; rows * d], vec![0.0; rows]);
        let draw = DsmDraw { seed: c.seed, step: t.steps_done(), batch: rows, first: 0 };
        cpu::dsm_inputs(
            data,
            d,
            process,
            draw,
            rows,
            dims.freqs,
            &mut act.x,
            &mut eps,
            &mut tt,
            &mut act.phi,
        );
        scorenet::forward(layout, t.params(), &mut act, rows);
        let n = rows * d;
        let loss = cpu::mse_loss_grad(&act.out[..n], &eps, n, &mut act.d_out[..n]);
        let mut grads = vec![0.0; layout.count];
        scorenet::backward(layout, t.params(), &mut act, &mut grads, rows);
        (loss as f32, grads)
    }

    #[test]
    fn one_step_gradient_matches_the_cpu_for_every_process() {
        let Some(_) = Gpu::open_or_skip(0) else { return };
        let moons = data::load("moons", 2000, 1).unwrap();
        for sde in [
            None,
            Some(Sde::Vp { beta_min: 0.1, beta_max: 20.0 }),
            Some(Sde::Ve { sigma_min: 0.01, sigma_max: 5.0 }),
        ] {
            let t_eps = sde.as_ref().map_or(1e-3, crate::train::default_t_eps);
            let cpu_run = Trainer::new(TrainConfig { sde, t_eps, ..cfg() }, &moons, "moons").unwrap();
            let mut gpu_run = CudaTrainer::new(&cpu_run).unwrap();
            let (want_loss, want) = cpu_gradient(&cpu_run);
            let (loss, got) = gpu_run.peek_gradient().unwrap();
            assert!(
                (loss - want_loss).abs() <= 1e-4 * want_loss.abs(),
                "{sde:?}: loss {loss} vs {want_loss}"
            );
            // |Δ| ≤ 1e-4·max|g| + 1e-3·|g|: the sums run in other orders, φ(t) uses CUDA's sinf.
            let scale = want.iter().fold(0.0f32, |m, g| m.max(g.abs()));
            let bad = got
                .iter()
                .zip(&want)
                .filter(|(a, b)| (**a - **b).abs() > 1e-4 * scale + 1e-3 * b.abs())
                .count();
            assert_eq!(bad, 0, "{sde:?}: {bad} of {} gradient elements differ", want.len());
        }
    }

    #[test]
    fn fifty_steps_follow_the_cpu_loss_trajectory() {
        let Some(_) = Gpu::open_or_skip(0) else { return };
        let moons = data::load("moons", 2000, 1).unwrap();
        let mut cpu_run = Trainer::new(cfg(), &moons, "moons").unwrap();
        let mut gpu_run = CudaTrainer::new(&cpu_run).unwrap();
        let mut worst = 0.0f32;
        for step in 0..50 {
            let want = cpu_run.step();
            gpu_run.step().unwrap();
            let got = gpu_run.read_loss().unwrap().unwrap();
            let rel = (got - want).abs() / want.abs();
            worst = worst.max(rel);
            assert!(rel <= 0.02, "step {step}: GPU loss {got} vs CPU {want}");
        }
        eprintln!("50 steps: worst relative loss difference {worst:.2e}");
    }

    #[test]
    fn two_gpu_runs_are_bitwise_identical_with_and_without_a_graph() {
        let Some(_) = Gpu::open_or_skip(0) else { return };
        let moons = data::load("moons", 2000, 1).unwrap();
        let start = Trainer::new(cfg(), &moons, "moons").unwrap();
        let mut runs = Vec::new();
        for graph in [false, false, true] {
            let mut t = CudaTrainer::new(&start).unwrap();
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
    }
}
