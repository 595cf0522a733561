//! Training: denoising score matching with ε-prediction on the CPU.
//!
//! The loss is the simplified DDPM objective (Ho et al. 2020, eq. 14), which is denoising score
//! matching (Vincent 2011) up to a weighting of the noise levels:
//!
//! ```text
//! L(θ) = E_{x₀, n ~ U{1..N}, ε ~ N(0, I)} ‖ε − ε_θ(√ᾱ_n·x₀ + √(1 − ᾱ_n)·ε, n/N)‖² / D
//! ```
//!
//! For the continuous SDEs (VP, sub-VP, VE; `TrainConfig::sde`) t is uniform on [t_ε, 1] and
//! x_t = α_t·x₀ + σ_t·ε with the engine's `Diffusion::marginal` (the one definition the samplers
//! use). The unweighted ε-loss is score matching with λ(t) = σ_t² (Song et al. 2021, eq. 7);
//! [`Weighting::Likelihood`] instead weights example t by g(t)²/σ_t², which is λ(t) = g(t)², the
//! likelihood weighting of Song, Durkan, Murray & Ermon 2021 (eq. 8 and Theorem 1), for which the
//! loss bounds the negative log-likelihood. It is uniform-t without importance sampling, so its
//! gradient is noisier (the weight grows like 1/t near t = 0 for VP).
//!
//! `TrainConfig::loss` can instead select sliced score matching ([`Loss::Ssm`], [`Loss::SsmVr`];
//! `docs/scorenet.md`) on the same noised inputs, with the Jacobian-vector product of a tangent
//! pass through the network.
//!
//! One step draws a batch (`tinyscore_kernels::cpu::dsm_inputs`: data index, n and ε are pure
//! functions of the seed and the example's index in the run), computes the loss and its
//! gradient, clips the gradient's global norm, and applies Adam (Kingma & Ba 2015) with an
//! optional linear warm-up, then the EMA of the weights.
//!
//! **Parallelism and determinism.** The batch is cut into fixed chunks of [`chunk_rows`] rows
//! ([`CHUNK_ROWS`] for vectors; fewer for signals, so that a chunk holds about
//! [`CHUNK_POSITIONS`] positions and a small batch of long windows still splits across cores).
//! Each chunk computes its gradient into its own buffer (in parallel, with rayon), and the
//! chunk gradients are added in chunk order. The chunking depends only on the batch size and the
//! network, so a run gives the same bits with any number of threads, and resuming from a
//! checkpoint continues bit-exactly (on the same machine: the GEMM kernel that `matrixmultiply`
//! picks depends on the CPU's features).
//!
//! **Initialisation.** Every layer as PyTorch's `nn.Linear` (weight and bias uniform on
//! ±1/√fan_in, Kaiming-uniform with a = √5), drawn from the seed with Philox (tensor k of
//! `Dims::params()`, element e: counter `(e/4, k, 0, stream::INIT_WEIGHTS)`), except the output layer,
//! which starts at zero so the untrained network predicts ε̂ = 0 (loss 1 on normalised data).

use rayon::prelude::*;
use tinyscore_engine::graph::op::{MAX_CHANNELS, MAX_KERNEL, MAX_LENGTH};
use tinyscore_engine::net::{limits, Dims};
use tinyscore_engine::rng::{bits4, uniform};
use tinyscore_engine::schedule::{Diffusion, ScheduleError};
use tinyscore_kernels::cpu::{self, DsmDraw};

use crate::checkpoint::Checkpoint;
pub use crate::config::{default_t_eps, Arch, Loss, Network, TimeDraw, TrainConfig, Weighting};
use crate::data::{Dataset, Normalization};
use crate::graph_net::{self, Activations, Net, Tangents};

/// Rows per chunk of a batch: the unit of parallel work and of the fixed-order gradient sum.
/// Changing it changes the bits of a run (not its meaning). 128 (64 before issue 20): the GEMMs
/// of a chunk are large enough to amortise packing, and batch 256 is one chunk per core on two.
pub const CHUNK_ROWS: usize = 128;

/// Signal positions (rows × L) per chunk for inputs with L > 1.
pub const CHUNK_POSITIONS: usize = 2048;

/// Rows per chunk for inputs of `shape`: [`CHUNK_ROWS`], or for a signal of L > 1 samples
/// [`CHUNK_POSITIONS`]/L within 1..=[`CHUNK_ROWS`]. A function of the network alone, so the
/// bits of a run do not depend on the thread count.
pub fn chunk_rows(shape: tinyscore_engine::graph::Shape) -> usize {
    if shape.length <= 1 {
        CHUNK_ROWS
    } else {
        (CHUNK_POSITIONS / shape.length).clamp(1, CHUNK_ROWS)
    }
}

/// Adam's β₁.
pub const ADAM_BETA1: f32 = 0.9;
/// Adam's β₂.
pub const ADAM_BETA2: f32 = 0.999;
/// Adam's ε.
pub const ADAM_EPS: f32 = 1e-8;

/// Parameters of elements per parallel piece of the gradient sum and the optimizer update.
const PIECE: usize = 8192;

/// Why training could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// A setting is out of range.
    #[error("invalid training setting: {0}")]
    Config(String),
    /// The diffusion schedule is invalid.
    #[error("invalid diffusion schedule: {0}")]
    Schedule(#[from] ScheduleError),
    /// The data set has no examples.
    #[error("data set '{0}' has no examples")]
    EmptyData(String),
    /// The data's dimension differs from the checkpoint's.
    #[error("data set '{source_name}' has dimension {data}, but the checkpoint was trained on dimension {checkpoint}")]
    DimMismatch {
        /// The data set.
        source_name: String,
        /// Its dimension.
        data: usize,
        /// The checkpoint's.
        checkpoint: usize,
    },
    /// The checkpoint's buffers do not match its sizes.
    #[error("checkpoint is inconsistent: {0}")]
    BadCheckpoint(String),
}

/// Checks `cfg` on data of `dim` values and returns its network, with its layer graph.
fn check_config(cfg: &TrainConfig, dim: usize) -> Result<(Network, Net), TrainError> {
    let bad = |m: String| Err(TrainError::Config(m));
    if dim == 0 || dim > limits::MAX_DIM {
        return bad(format!("data dimension {dim} is outside 1..={}", limits::MAX_DIM));
    }
    if let Err(e) = TimeDraw::new(cfg.time_draw.share, cfg.time_draw.max) {
        return bad(e.to_string());
    }
    match cfg.arch {
        Arch::Mlp => {
            if cfg.hidden == 0 || cfg.hidden > limits::MAX_HIDDEN {
                return bad(format!("hidden {} is outside 1..={}", cfg.hidden, limits::MAX_HIDDEN));
            }
            if cfg.blocks == 0 || cfg.blocks > limits::MAX_BLOCKS {
                return bad(format!("blocks {} is outside 1..={}", cfg.blocks, limits::MAX_BLOCKS));
            }
        }
        Arch::Conv { channels, levels, kernel, temb } => {
            if channels == 0 || dim % channels != 0 {
                return bad(format!("{channels} signal channels do not divide the data's {dim} values"));
            }
            let length = dim / channels;
            if length > MAX_LENGTH {
                return bad(format!("signal length {length} is over {MAX_LENGTH}"));
            }
            if levels > 6 || length % (1 << levels) != 0 {
                return bad(format!(
                    "{levels} levels need a signal length that is a multiple of 2^levels (≤ 6 levels); the length is {length}"
                ));
            }
            let widest = cfg.hidden * if levels > 0 { 2 } else { 1 };
            if cfg.hidden == 0 || widest > MAX_CHANNELS || channels > MAX_CHANNELS {
                return bad(format!("width {} is outside 1..={}", cfg.hidden, MAX_CHANNELS / 2));
            }
            if kernel % 2 == 0 || kernel > MAX_KERNEL {
                return bad(format!("kernel {kernel} must be odd and at most {MAX_KERNEL}"));
            }
            if temb == 0 || temb > MAX_CHANNELS {
                return bad(format!("time embedding width {temb} is outside 1..={MAX_CHANNELS}"));
            }
            if cfg.blocks == 0 || cfg.blocks > limits::MAX_BLOCKS {
                return bad(format!("blocks {} is outside 1..={}", cfg.blocks, limits::MAX_BLOCKS));
            }
        }
    }
    if cfg.freqs == 0 || cfg.freqs > limits::MAX_FREQS || cfg.freqs % 2 != 0 {
        return bad(format!("freqs {} must be even and in 2..={}", cfg.freqs, limits::MAX_FREQS));
    }
    if cfg.batch == 0 {
        return bad("batch must be at least 1".into());
    }
    // The example counter step·batch + i must not wrap within the run.
    if cfg.batch as u64 > u32::MAX as u64 {
        return bad(format!("batch {} is too large", cfg.batch));
    }
    if !(cfg.lr.is_finite() && cfg.lr > 0.0) {
        return bad(format!("learning rate {} must be finite and positive", cfg.lr));
    }
    if !(0.0..=1.0).contains(&cfg.ema) {
        return bad(format!("EMA decay {} must be in [0, 1]", cfg.ema));
    }
    if cfg.grad_clip.is_nan() || cfg.grad_clip < 0.0 {
        return bad(format!("gradient clip {} must be ≥ 0 (0 or inf: off)", cfg.grad_clip));
    }
    cfg.diffusion()?;
    let network = cfg.network(dim);
    let plan =
        network.plan().map_err(|e| TrainError::Config(format!("the network {}: {e}", network.describe())))?;
    let net = Net::new(plan);
    // Every chunk keeps its rows' activations for the backward pass (twice that with the
    // tangents of sliced score matching): refuse a batch whose buffers cannot be allocated.
    let per_row = Activations::floats_per_row(&net) * if cfg.loss == Loss::Dsm { 1 } else { 2 };
    let bytes = (per_row as u128) * (cfg.batch as u128) * 4;
    if bytes > MAX_ACTIVATION_BYTES as u128 {
        return bad(format!(
            "batch {} needs {:.1} GiB of activations for this network (at most {} GiB); lower the batch",
            cfg.batch,
            bytes as f64 / (1u64 << 30) as f64,
            MAX_ACTIVATION_BYTES >> 30
        ));
    }
    Ok((network, net))
}

/// The most memory the activations of one step may take (all chunks together).
pub const MAX_ACTIVATION_BYTES: u64 = 8 << 30;

/// One chunk of a batch: its rows and its private buffers.
struct Chunk {
    /// Index in the batch of the first row.
    first: usize,
    /// Rows in this chunk.
    rows: usize,
    act: Activations,
    /// (rows, D) the ε drawn for this chunk.
    eps: Vec<f32>,
    /// (rows,) the diffusion times.
    t: Vec<f32>,
    /// (rows,) the loss weights (likelihood weighting only).
    w: Vec<f32>,
    /// (P,) this chunk's gradient.
    grads: Vec<f32>,
    /// This chunk's share of the batch loss.
    loss: f64,
    /// Sliced score matching only: the tangent pass and (rows,) σ_t.
    ssm: Option<(Tangents, Vec<f32>)>,
}

/// A training run in progress: parameters, optimizer state, EMA and the preallocated buffers of
/// one step.
pub struct Trainer {
    cfg: TrainConfig,
    /// The network's sizes.
    network: Network,
    /// The network as a layer graph: what every pass (CPU and CUDA) walks.
    net: Net,
    schedule: Diffusion,
    norm: Normalization,
    data_spec: String,
    /// (n, D) the training data, normalised.
    data: Vec<f32>,
    step: u64,
    params: Vec<f32>,
    ema: Vec<f32>,
    adam_m: Vec<f32>,
    adam_v: Vec<f32>,
    /// (P,) the batch gradient.
    grads: Vec<f32>,
    chunks: Vec<Chunk>,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("network", &self.network)
            .field("config", &self.cfg)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

/// The PyTorch-`Linear`-like initial parameters of `net` (see the module doc): every weight and
/// bias uniform in ±1/√fan_in (the weight's columns), the last layer's zero.
fn init_params(net: &Net, seed: u64) -> Vec<f32> {
    let mut p = vec![0.0f32; net.count];
    let tensors = net.plan.tensors();
    // The output layer (the last layer with parameters) starts at zero: its weight and bias
    // are the last two tensors.
    let trained = tensors.len().saturating_sub(2);
    for (k, &(rows, cols)) in tensors.iter().enumerate().take(trained) {
        let off = net.offsets[k];
        // A bias (cols = 1 after its weight) shares its weight's fan-in: the tensor just before.
        let fan_in = if k % 2 == 0 { cols } else { tensors[k - 1].1 };
        let bound = 1.0 / (fan_in as f32).sqrt();
        for (e, v) in p[off..off + rows * cols].iter_mut().enumerate() {
            let w =
                bits4(seed, (e / 4) as u32, k as u32, 0, tinyscore_engine::rng::stream::INIT_WEIGHTS)[e % 4];
            *v = bound * (2.0 * uniform(w) - 1.0);
        }
    }
    p
}

impl Trainer {
    /// Starts a run on `data` (in data units): fits the normalisation, initialises the weights
    /// from `cfg.seed`, and allocates every buffer of a step. `data_spec` is recorded in
    /// checkpoints.
    pub fn new(cfg: TrainConfig, data: &Dataset, data_spec: &str) -> Result<Self, TrainError> {
        let (network, net) = check_config(&cfg, data.dim)?;
        if data.is_empty() {
            return Err(TrainError::EmptyData(data.source.clone()));
        }
        let params = init_params(&net, cfg.seed);
        let n = net.count;
        let norm = match network {
            Network::Mlp(_) => Normalization::fit(data),
            Network::Conv(u) => Normalization::fit_channels(data, u.channels),
        };
        Self::assemble(
            cfg,
            (network, net),
            norm,
            data,
            data_spec.to_string(),
            0,
            params.clone(),
            params,
            vec![0.0; n],
            vec![0.0; n],
        )
    }

    /// Continues the run saved in `ckpt` on `data` (the same data set it was trained on, in data
    /// units; the checkpoint's normalisation is kept). On the CPU backend the continued run is
    /// bit-for-bit the run that never stopped.
    pub fn resume(ckpt: Checkpoint, data: &Dataset) -> Result<Self, TrainError> {
        let Checkpoint { network: recorded, config, step, params, ema, adam_m, adam_v, norm, data_spec } =
            ckpt;
        let dim = recorded.dim();
        if data.dim != dim {
            return Err(TrainError::DimMismatch {
                source_name: data.source.clone(),
                data: data.dim,
                checkpoint: dim,
            });
        }
        let (network, net) = check_config(&config, data.dim)?;
        if network != recorded {
            return Err(TrainError::BadCheckpoint(format!(
                "config sizes {} differ from the tensors' sizes {}",
                network.describe(),
                recorded.describe()
            )));
        }
        if data.is_empty() {
            return Err(TrainError::EmptyData(data.source.clone()));
        }
        let n = net.count;
        for (name, len) in
            [("params", params.len()), ("ema", ema.len()), ("adam_m", adam_m.len()), ("adam_v", adam_v.len())]
        {
            if len != n {
                return Err(TrainError::BadCheckpoint(format!("{name} has {len} values, expected {n}")));
            }
        }
        if norm.mean.len() != dim || norm.std.len() != dim {
            return Err(TrainError::BadCheckpoint("normalisation length differs from dim".into()));
        }
        Self::assemble(config, (network, net), norm, data, data_spec, step, params, ema, adam_m, adam_v)
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        cfg: TrainConfig,
        (network, net): (Network, Net),
        norm: Normalization,
        data: &Dataset,
        data_spec: String,
        step: u64,
        params: Vec<f32>,
        ema: Vec<f32>,
        adam_m: Vec<f32>,
        adam_v: Vec<f32>,
    ) -> Result<Self, TrainError> {
        let schedule = cfg.diffusion()?;
        let mut normalised = data.values.clone();
        norm.apply(&mut normalised);
        let (d, count) = (network.dim(), net.count);
        let per_chunk = chunk_rows(net.input());
        let chunks = (0..cfg.batch)
            .step_by(per_chunk)
            .map(|first| {
                let rows = per_chunk.min(cfg.batch - first);
                Chunk {
                    first,
                    rows,
                    act: Activations::new(&net, rows),
                    eps: vec![0.0; rows * d],
                    t: vec![0.0; rows],
                    w: vec![1.0; rows],
                    grads: vec![0.0; count],
                    loss: 0.0,
                    ssm: (cfg.loss != Loss::Dsm).then(|| (Tangents::new(&net, rows), vec![0.0; rows])),
                }
            })
            .collect();
        Ok(Self {
            grads: vec![0.0; count],
            cfg,
            network,
            net,
            schedule,
            norm,
            data_spec,
            data: normalised,
            step,
            params,
            ema,
            adam_m,
            adam_v,
            chunks,
        })
    }

    /// One optimisation step; returns the batch loss mean_{b,d} (ε̂ − ε)² before the update.
    pub fn step(&mut self) -> f32 {
        let Self {
            cfg, network, net, schedule, data, step, params, ema, adam_m, adam_v, grads, chunks, ..
        } = self;
        let net_ro = &*net;
        let (d, batch, freqs) = (network.dim(), cfg.batch, network.freqs());
        let (params_ro, sched_ro, data_ro) = (&*params, &*schedule, &*data);
        let draw = DsmDraw { seed: cfg.seed, step: *step, batch, first: 0 };
        let (weighting, loss_kind, time_draw) = (cfg.weighting, cfg.loss, cfg.time_draw);

        chunks.par_iter_mut().for_each(|c| {
            let n = c.rows * d;
            c.grads.fill(0.0);
            let draw = DsmDraw { first: c.first, ..draw };
            cpu::dsm_inputs(
                data_ro,
                d,
                sched_ro,
                draw,
                time_draw,
                c.rows,
                freqs,
                &mut c.act.x,
                &mut c.eps,
                &mut c.t,
                &mut c.act.phi,
            );
            c.act.t[..c.rows].copy_from_slice(&c.t[..c.rows]);
            graph_net::forward(net_ro, params_ro, &mut c.act, c.rows);
            if weighting == Weighting::Likelihood || loss_kind != Loss::Dsm {
                // λ(t) = g² in score terms is g²/σ² on the ε-loss (1 for the simple weighting).
                for (w, &t) in c.w.iter_mut().zip(&c.t) {
                    *w = match weighting {
                        Weighting::Simple => 1.0,
                        Weighting::Likelihood => {
                            let (_, g2) = sched_ro.coefficients(t);
                            let (_, sigma) = sched_ro.marginal(t);
                            g2 / (sigma * sigma)
                        }
                    };
                }
            }
            if let Some((tan, sigma)) = &mut c.ssm {
                // Sliced score matching on the same noised inputs x_t (the drawn ε is unused).
                for (s, &t) in sigma.iter_mut().zip(&c.t) {
                    *s = sched_ro.marginal(t).1;
                }
                cpu::ssm_projections(draw, c.rows, d, &mut tan.v);
                graph_net::tangent_forward(net_ro, params_ro, &mut c.act, tan, c.rows);
                c.loss = cpu::ssm_loss_grad(
                    &c.act.out[..n],
                    &tan.out[..n],
                    &tan.v[..n],
                    sigma,
                    &c.w,
                    d,
                    batch * d,
                    loss_kind == Loss::SsmVr,
                    &mut c.act.d_out[..n],
                    &mut tan.d_out[..n],
                );
                graph_net::tangent_backward(net_ro, params_ro, &mut c.act, tan, &mut c.grads, c.rows);
                graph_net::backward_with_tangents(net_ro, params_ro, &mut c.act, tan, &mut c.grads, c.rows);
                return;
            }
            c.loss = match weighting {
                Weighting::Simple => {
                    cpu::mse_loss_grad(&c.act.out[..n], &c.eps[..n], batch * d, &mut c.act.d_out[..n])
                }
                Weighting::Likelihood => {
                    let (out, eps) = (&c.act.out[..n], &c.eps[..n]);
                    cpu::weighted_mse_loss_grad(out, eps, &c.w, d, batch * d, &mut c.act.d_out[..n])
                }
            };
            graph_net::backward(net_ro, params_ro, &mut c.act, &mut c.grads, c.rows);
        });

        // g = Σ_chunks g_c, in chunk order for every element (pieces in parallel).
        let chunks_ro = &*chunks;
        grads.par_chunks_mut(PIECE).enumerate().for_each(|(k, g)| {
            let at = k * PIECE;
            g.copy_from_slice(&chunks_ro[0].grads[at..at + g.len()]);
            for c in &chunks_ro[1..] {
                cpu::add_inplace(g, &c.grads[at..at + g.len()]);
            }
        });
        let loss = chunks.iter().map(|c| c.loss).sum::<f64>() as f32;

        cpu::clip_grad_norm(grads, cfg.grad_clip);
        *step += 1;
        let lr = if cfg.warmup > 0 && *step < cfg.warmup {
            cfg.lr * (*step as f32 / cfg.warmup as f32)
        } else {
            cfg.lr
        };
        let (t, decay) = (*step, cfg.ema);
        params
            .par_chunks_mut(PIECE)
            .zip(grads.par_chunks(PIECE))
            .zip(adam_m.par_chunks_mut(PIECE))
            .zip(adam_v.par_chunks_mut(PIECE))
            .zip(ema.par_chunks_mut(PIECE))
            .for_each(|((((p, g), m), v), e)| {
                cpu::adam_ema_update(p, g, m, v, e, t, lr, ADAM_BETA1, ADAM_BETA2, ADAM_EPS, decay);
            });
        loss
    }

    /// Optimisation steps done so far (including those before a resume).
    pub fn steps_done(&self) -> u64 {
        self.step
    }

    /// The run's settings.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// Changes how the following steps draw their times (a fine-tune of a resumed run with more
    /// of its examples at low noise, or back to uniform); the checkpoints record the new draw.
    /// Refuses an invalid draw.
    pub fn set_time_draw(&mut self, draw: TimeDraw) -> Result<(), TrainError> {
        let checked = TimeDraw::new(draw.share, draw.max).map_err(|e| TrainError::Config(e.to_string()))?;
        self.cfg.time_draw = checked;
        Ok(())
    }

    /// The network's sizes.
    pub fn network(&self) -> Network {
        self.network
    }

    /// The current (raw) parameters, flat in the layer graph's tensor order (for ScoreNet v1,
    /// `Dims::params()` order).
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// The EMA of the parameters, in the order of [`Trainer::params`].
    pub fn ema_params(&self) -> &[f32] {
        &self.ema
    }

    /// The data normalisation of this run.
    pub fn normalization(&self) -> &Normalization {
        &self.norm
    }

    /// The normalised training data (n, D), the process and Adam's moments: what another
    /// backend (`crate::cuda`) needs to continue this run.
    pub(crate) fn backend_parts(&self) -> (&Net, &Diffusion, &[f32], &[f32], &[f32]) {
        (&self.net, &self.schedule, &self.data, &self.adam_m, &self.adam_v)
    }

    /// Replaces the optimisation state with one computed elsewhere (the CUDA backend), so that
    /// [`Trainer::checkpoint`] saves it. Lengths must equal the parameter count.
    pub(crate) fn set_state(&mut self, step: u64, params: Vec<f32>, ema: Vec<f32>, m: Vec<f32>, v: Vec<f32>) {
        let n = self.net.count;
        assert!(params.len() == n && ema.len() == n && m.len() == n && v.len() == n, "set_state: lengths");
        (self.step, self.params, self.ema, self.adam_m, self.adam_v) = (step, params, ema, m, v);
    }

    /// A snapshot of the whole state, enough to resume bit-exactly.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            network: self.network,
            config: self.cfg.clone(),
            step: self.step,
            params: self.params.clone(),
            ema: self.ema.clone(),
            adam_m: self.adam_m.clone(),
            adam_v: self.adam_v.clone(),
            norm: self.norm.clone(),
            data_spec: self.data_spec.clone(),
        }
    }
}

/// Batched forward pass with flat `params` (in `Dims::params()` order): ε̂ (B, D) for
/// normalised inputs `x` (B, D) at times `t` (B,). The same function as the engine's
/// `ScoreNet::eps`, evaluated with the training kernels.
///
/// # Panics
/// If `params.len() != dims.param_count()`, `x.len() != B·D` or `t.len() != B`.
pub fn forward(dims: &Dims, params: &[f32], x: &[f32], t: &[f32]) -> Vec<f32> {
    let net = Net::mlp(dims);
    assert_eq!(params.len(), net.count, "forward: parameter count");
    let (d, rows) = (dims.dim, t.len());
    assert_eq!(x.len(), rows * d, "forward: x must be (B, D)");
    let mut out = vec![0.0f32; rows * d];
    // Rows are independent, so chunks run in parallel without changing any bit.
    let per_chunk = chunk_rows(net.input());
    out.par_chunks_mut(per_chunk * d.max(1)).enumerate().for_each_init(
        || Activations::new(&net, per_chunk.min(rows)),
        |act, (c, out)| {
            let (first, n) = (c * per_chunk, out.len() / d.max(1));
            act.x[..n * d].copy_from_slice(&x[first * d..(first + n) * d]);
            act.t[..n].copy_from_slice(&t[first..first + n]);
            graph_net::forward(&net, params, act, n);
            out.copy_from_slice(&act.out[..n * d]);
        },
    );
    out
}

/// [`forward`] for any layer graph (`plan`, with `params` in its tensor order): ε̂ (B, D) for
/// normalised inputs `x` (B, D, channel-major) at times `t` (B,), with the training kernels.
///
/// # Panics
/// If `params.len()` is not the plan's parameter count, `x.len() != B·D` or `t.len() != B`.
pub fn forward_graph(
    plan: &tinyscore_engine::graph::build::Plan,
    params: &[f32],
    x: &[f32],
    t: &[f32],
) -> Vec<f32> {
    let net = Net::new(plan.clone());
    assert_eq!(params.len(), net.count, "forward_graph: parameter count");
    let (d, rows) = (net.input().len(), t.len());
    assert_eq!(x.len(), rows * d, "forward_graph: x must be (B, D)");
    let mut out = vec![0.0f32; rows * d];
    let per_chunk = chunk_rows(net.input());
    out.par_chunks_mut(per_chunk * d.max(1)).enumerate().for_each_init(
        || Activations::new(&net, per_chunk.min(rows)),
        |act, (c, out)| {
            let (first, n) = (c * per_chunk, out.len() / d.max(1));
            act.x[..n * d].copy_from_slice(&x[first * d..(first + n) * d]);
            act.t[..n].copy_from_slice(&t[first..first + n]);
            graph_net::forward(&net, params, act, n);
            out.copy_from_slice(&act.out[..n * d]);
        },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scorenet::{self, Layout};
    use tinyscore_engine::net::{silu, time_features};

    fn small_dims() -> Dims {
        Dims { dim: 3, hidden: 6, freqs: 4, blocks: 2 }
    }

    /// Random parameters (including a non-zero output layer).
    fn random_params(dims: &Dims, seed: u64) -> Vec<f32> {
        (0..dims.param_count())
            .map(|e| 0.6 * (2.0 * uniform(bits4(seed, e as u32, 0, 0, 99)[0]) - 1.0))
            .collect()
    }

    fn random_inputs(rows: usize, d: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
        let x = (0..rows * d).map(|e| 2.0 * uniform(bits4(seed, e as u32, 1, 0, 99)[0]) - 1.0).collect();
        let t = (0..rows).map(|r| (1 + r * 37 % 1000) as f32 / 1000.0).collect();
        (x, t)
    }

    /// A straightforward scalar ScoreNet, written from the definition with the engine's
    /// `time_features` and `silu`, in f64 when `wide` (for finite differences) else in f32.
    fn naive(dims: &Dims, p: &[f64], x: &[f32], t: f32, wide: bool) -> Vec<f64> {
        let layout = Layout::new(*dims);
        let act = |v: f64| if wide { v / (1.0 + (-v).exp()) } else { silu(v as f32) as f64 };
        let lin = |l: &scorenet::Linear, input: &[f64]| -> Vec<f64> {
            (0..l.out)
                .map(|o| {
                    let b = p[l.w + l.out * l.inp + o];
                    b + (0..l.inp).map(|i| p[l.w + o * l.inp + i] * input[i]).sum::<f64>()
                })
                .collect()
        };
        let mut phi = vec![0.0f32; dims.freqs];
        time_features(t, &mut phi);
        let phi: Vec<f64> = phi.iter().map(|&v| v as f64).collect();
        let a: Vec<f64> = lin(&layout.time1, &phi).into_iter().map(act).collect();
        let temb = lin(&layout.time2, &a);
        let x: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let mut h = lin(&layout.input, &x);
        for (l1, l2) in &layout.blocks {
            let a: Vec<f64> = h.iter().map(|&v| act(v)).collect();
            let u: Vec<f64> = lin(l1, &a).iter().zip(&temb).map(|(u, t)| u + t).collect();
            let a: Vec<f64> = u.into_iter().map(act).collect();
            h = lin(l2, &a).iter().zip(&h).map(|(y, h)| h + y).collect();
        }
        let a: Vec<f64> = h.into_iter().map(act).collect();
        lin(&layout.output, &a)
    }

    #[test]
    fn forward_matches_naive_scalar_network() {
        for dims in [small_dims(), Dims { dim: 2, hidden: 32, freqs: 16, blocks: 3 }] {
            let p = random_params(&dims, 1);
            let rows = 70; // more than one chunk
            let (x, t) = random_inputs(rows, dims.dim, 2);
            let got = forward(&dims, &p, &x, &t);
            let p64: Vec<f64> = p.iter().map(|&v| v as f64).collect();
            for r in 0..rows {
                let want = naive(&dims, &p64, &x[r * dims.dim..(r + 1) * dims.dim], t[r], false);
                for (k, w) in want.iter().enumerate() {
                    let g = got[r * dims.dim + k] as f64;
                    assert!((g - w).abs() <= 1e-5 + 1e-4 * w.abs(), "{dims:?} row {r}[{k}]: {g} vs {w}");
                }
            }
        }
    }

    #[test]
    fn backward_matches_finite_differences() {
        let dims = small_dims();
        let layout = Layout::new(dims);
        let p = random_params(&dims, 3);
        let rows = 5;
        let (x, t) = random_inputs(rows, dims.dim, 4);
        // L = Σ_{r,k} c_{rk}·ε̂_{rk} with fixed random weights c.
        let c: Vec<f32> =
            (0..rows * dims.dim).map(|e| 2.0 * uniform(bits4(5, e as u32, 2, 0, 99)[0]) - 1.0).collect();
        let net = Net::mlp(&dims);
        let mut act = Activations::new(&net, rows);
        act.x.copy_from_slice(&x);
        act.t.copy_from_slice(&t);
        graph_net::forward(&net, &p, &mut act, rows);
        act.d_out.copy_from_slice(&c);
        let mut grads = vec![0.0f32; layout.count];
        graph_net::backward(&net, &p, &mut act, &mut grads, rows);

        let loss = |p: &[f64]| -> f64 {
            (0..rows)
                .map(|r| {
                    let y = naive(&dims, p, &x[r * dims.dim..(r + 1) * dims.dim], t[r], true);
                    y.iter().zip(&c[r * dims.dim..]).map(|(y, c)| y * *c as f64).sum::<f64>()
                })
                .sum()
        };
        let mut p64: Vec<f64> = p.iter().map(|&v| v as f64).collect();
        let h = 1e-5;
        let mut fd = vec![0.0f64; layout.count];
        for i in 0..layout.count {
            let keep = p64[i];
            p64[i] = keep + h;
            let up = loss(&p64);
            p64[i] = keep - h;
            let down = loss(&p64);
            p64[i] = keep;
            fd[i] = (up - down) / (2.0 * h);
        }
        // Relative error per tensor, ‖g − fd‖ / ‖fd‖, and elementwise with a small floor.
        for &(role, off, rows_t, cols) in &layout.tensors {
            let r = off..off + rows_t * cols;
            let num: f64 = r.clone().map(|i| (grads[i] as f64 - fd[i]).powi(2)).sum::<f64>().sqrt();
            let den: f64 = r.clone().map(|i| fd[i].powi(2)).sum::<f64>().sqrt();
            assert!(den > 1e-6, "{}: zero gradient, test is vacuous", role.name());
            assert!(num / den < 1e-4, "{}: relative error {}", role.name(), num / den);
            for i in r {
                assert!((grads[i] as f64 - fd[i]).abs() <= 1e-5 + 1e-3 * fd[i].abs(), "{}[{i}]", role.name());
            }
        }
    }

    /// The naive network in f64 with dual numbers: (ε̂, J·v) at (x, t) along v.
    fn naive_dual(dims: &Dims, p: &[f64], x: &[f32], v: &[f32], t: f32) -> (Vec<f64>, Vec<f64>) {
        let layout = Layout::new(*dims);
        let sig = |z: f64| 1.0 / (1.0 + (-z).exp());
        let act = |z: f64, zd: f64| (z * sig(z), zd * sig(z) * (1.0 + z * (1.0 - sig(z))));
        // (value, tangent) of a linear layer; the bias has no tangent.
        let lin = |l: &scorenet::Linear, a: &[(f64, f64)]| -> Vec<(f64, f64)> {
            (0..l.out)
                .map(|o| {
                    let w = |i: usize| p[l.w + o * l.inp + i];
                    let b = p[l.w + l.out * l.inp + o];
                    let val = b + (0..l.inp).map(|i| w(i) * a[i].0).sum::<f64>();
                    (val, (0..l.inp).map(|i| w(i) * a[i].1).sum::<f64>())
                })
                .collect()
        };
        let mut phi = vec![0.0f32; dims.freqs];
        time_features(t, &mut phi);
        let phi: Vec<(f64, f64)> = phi.iter().map(|&v| (v as f64, 0.0)).collect();
        let a: Vec<(f64, f64)> = lin(&layout.time1, &phi).into_iter().map(|(z, zd)| act(z, zd)).collect();
        let temb = lin(&layout.time2, &a);
        let x: Vec<(f64, f64)> = x.iter().zip(v).map(|(&a, &b)| (a as f64, b as f64)).collect();
        let mut h = lin(&layout.input, &x);
        for (l1, l2) in &layout.blocks {
            let a: Vec<(f64, f64)> = h.iter().map(|&(z, zd)| act(z, zd)).collect();
            let u: Vec<(f64, f64)> =
                lin(l1, &a).iter().zip(&temb).map(|(u, t)| (u.0 + t.0, u.1 + t.1)).collect();
            let a: Vec<(f64, f64)> = u.into_iter().map(|(z, zd)| act(z, zd)).collect();
            h = lin(l2, &a).iter().zip(&h).map(|(y, h)| (h.0 + y.0, h.1 + y.1)).collect();
        }
        let a: Vec<(f64, f64)> = h.into_iter().map(|(z, zd)| act(z, zd)).collect();
        lin(&layout.output, &a).into_iter().unzip()
    }

    /// The SSM and SSM-VR gradients (tangent pass, its backward through silu'', and the primal
    /// backward) match central finite differences of the loss of the f64 dual-number network.
    #[test]
    fn ssm_gradients_match_finite_differences() {
        let dims = small_dims();
        let layout = Layout::new(dims);
        let p = random_params(&dims, 7);
        let rows = 4;
        let (x, t) = random_inputs(rows, dims.dim, 8);
        let sigma: Vec<f32> = (0..rows).map(|r| 0.2 + 0.3 * r as f32).collect();
        let w: Vec<f32> = (0..rows).map(|r| 1.0 + 0.5 * r as f32).collect();
        let mut v = vec![0.0f32; rows * dims.dim];
        cpu::ssm_projections(DsmDraw { seed: 3, step: 0, batch: rows, first: 0 }, rows, dims.dim, &mut v);
        assert!(v.iter().all(|&e| e == 1.0 || e == -1.0) && v.iter().any(|&e| e == -1.0));
        let total = rows * dims.dim;
        for vr in [false, true] {
            let net = Net::mlp(&dims);
            let mut act = Activations::new(&net, rows);
            act.x.copy_from_slice(&x);
            act.t.copy_from_slice(&t);
            let mut tan = Tangents::new(&net, rows);
            tan.v.copy_from_slice(&v);
            graph_net::forward(&net, &p, &mut act, rows);
            graph_net::tangent_forward(&net, &p, &mut act, &mut tan, rows);
            let n = total;
            let loss = cpu::ssm_loss_grad(
                &act.out[..n],
                &tan.out[..n],
                &tan.v[..n],
                &sigma,
                &w,
                dims.dim,
                total,
                vr,
                &mut act.d_out[..n],
                &mut tan.d_out[..n],
            );
            let mut grads = vec![0.0f32; layout.count];
            graph_net::tangent_backward(&net, &p, &mut act, &mut tan, &mut grads, rows);
            graph_net::backward_with_tangents(&net, &p, &mut act, &tan, &mut grads, rows);

            let loss64 = |p: &[f64]| -> f64 {
                (0..rows)
                    .map(|r| {
                        let at = r * dims.dim..(r + 1) * dims.dim;
                        let (e, j) = naive_dual(&dims, p, &x[at.clone()], &v[at.clone()], t[r]);
                        let vr_ = &v[at];
                        let vjv: f64 = vr_.iter().zip(&j).map(|(&a, b)| a as f64 * b).sum();
                        let second = if vr {
                            e.iter().map(|a| a * a).sum::<f64>()
                        } else {
                            vr_.iter().zip(&e).map(|(&a, b)| a as f64 * b).sum::<f64>().powi(2)
                        };
                        w[r] as f64 * (-(sigma[r] as f64) * vjv + 0.5 * second)
                    })
                    .sum::<f64>()
                    / total as f64
            };
            let mut p64: Vec<f64> = p.iter().map(|&v| v as f64).collect();
            let want = loss64(&p64);
            assert!((loss - want).abs() < 1e-4 * (1.0 + want.abs()), "vr={vr}: loss {loss} vs {want}");
            let h = 1e-5;
            for &(role, off, rows_t, cols) in &layout.tensors {
                let r = off..off + rows_t * cols;
                let (mut num, mut den) = (0.0f64, 0.0f64);
                for i in r.clone() {
                    let keep = p64[i];
                    p64[i] = keep + h;
                    let up = loss64(&p64);
                    p64[i] = keep - h;
                    let down = loss64(&p64);
                    p64[i] = keep;
                    let fd = (up - down) / (2.0 * h);
                    num += (grads[i] as f64 - fd).powi(2);
                    den += fd * fd;
                }
                let (num, den) = (num.sqrt(), den.sqrt());
                assert!(den > 1e-7, "vr={vr} {}: zero gradient, test is vacuous", role.name());
                assert!(num / den < 1e-3, "vr={vr} {}: relative error {}", role.name(), num / den);
            }
        }
    }

    fn moons(n: usize) -> Dataset {
        crate::data::load("moons", n, 11).unwrap()
    }

    fn tiny_config() -> TrainConfig {
        TrainConfig { hidden: 32, blocks: 2, freqs: 8, batch: 100, warmup: 3, ..TrainConfig::default() }
    }

    #[test]
    fn results_do_not_depend_on_thread_count() {
        let data = moons(500);
        for loss in [Loss::Dsm, Loss::Ssm, Loss::SsmVr] {
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| {
                    let mut tr = Trainer::new(TrainConfig { loss, ..tiny_config() }, &data, "moons").unwrap();
                    let losses: Vec<u32> = (0..5).map(|_| tr.step().to_bits()).collect();
                    (losses, tr.params().iter().map(|v| v.to_bits()).collect::<Vec<_>>())
                })
            };
            assert_eq!(run(1), run(3), "{loss:?}");
        }
    }

    /// A small conv run: 2-channel signals of 64 samples (a synthetic two-tone data set).
    fn conv_setup() -> (TrainConfig, Dataset) {
        let (c, l, n) = (2usize, 64usize, 60usize);
        let values = (0..n * c * l)
            .map(|i| {
                let (row, ch, pos) = (i / (c * l), (i / l) % c, i % l);
                ((pos as f32 * 0.4 + row as f32 * 0.7 + ch as f32).sin()) * (1.0 + ch as f32)
            })
            .collect();
        let cfg = TrainConfig {
            arch: Arch::Conv { channels: c, levels: 2, kernel: 3, temb: 12 },
            hidden: 4,
            blocks: 1,
            freqs: 8,
            batch: 48,
            warmup: 2,
            ..TrainConfig::default()
        };
        (cfg, Dataset::from_rows(c * l, values, "tones"))
    }

    #[test]
    fn a_conv_run_learns_and_is_deterministic_for_any_thread_count() {
        let (cfg, data) = conv_setup();
        // Fewer rows per chunk than the batch, so the chunks really run in parallel.
        assert!(chunk_rows(tinyscore_engine::graph::Shape { channels: 2, length: 64 }) < cfg.batch);
        for loss in [Loss::Dsm, Loss::Ssm] {
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| {
                    let mut tr = Trainer::new(TrainConfig { loss, ..cfg.clone() }, &data, "tones").unwrap();
                    let losses: Vec<f32> = (0..40).map(|_| tr.step()).collect();
                    (losses, tr.params().iter().map(|v| v.to_bits()).collect::<Vec<_>>())
                })
            };
            let (one, three) = (run(1), run(3));
            assert_eq!(
                one.0.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                three.0.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
            assert_eq!(one.1, three.1, "{loss:?}");
            if loss == Loss::Dsm {
                let (first, last) = (one.0[..5].iter().sum::<f32>(), one.0[35..].iter().sum::<f32>());
                assert!(last < 0.8 * first, "{loss:?}: loss {first} → {last}");
            }
        }
        // Per-channel normalisation: one mean and std per channel, repeated along the signal.
        let tr = Trainer::new(cfg, &data, "tones").unwrap();
        let std = &tr.normalization().std;
        assert!(std[..64].iter().all(|&s| s == std[0]) && std[64..].iter().all(|&s| s == std[64]));
        assert!((std[64] / std[0] - 2.0).abs() < 0.2, "{} {}", std[0], std[64]);
    }

    #[test]
    fn bad_conv_settings_are_refused() {
        let (cfg, data) = conv_setup();
        let conv = |channels, levels, kernel, temb| Arch::Conv { channels, levels, kernel, temb };
        for (arch, hidden, why) in [
            (conv(3, 2, 3, 12), 4, "divide"),
            (conv(2, 7, 3, 12), 4, "multiple of 2^levels"),
            (conv(2, 2, 4, 12), 4, "odd"),
            (conv(2, 2, 3, 0), 4, "time embedding"),
            (conv(2, 2, 3, 12), 0, "width"),
            (conv(2, 2, 3, 12), 4096, "width"),
        ] {
            let e = Trainer::new(TrainConfig { arch, hidden, ..cfg.clone() }, &data, "tones").unwrap_err();
            assert!(e.to_string().contains(why), "{arch:?}: {e}");
        }
        // A batch whose activations could not be allocated is refused before allocating.
        let wide = TrainConfig { hidden: 512, batch: 1 << 18, ..cfg };
        let e = Trainer::new(wide, &data, "tones").unwrap_err();
        assert!(e.to_string().contains("GiB of activations"), "{e}");
    }

    #[test]
    fn bad_settings_are_refused() {
        let data = moons(10);
        for cfg in [
            TrainConfig { hidden: 0, ..tiny_config() },
            TrainConfig { freqs: 7, ..tiny_config() },
            TrainConfig { blocks: 9, ..tiny_config() },
            TrainConfig { batch: 0, ..tiny_config() },
            TrainConfig { lr: f32::NAN, ..tiny_config() },
            TrainConfig { ema: 1.5, ..tiny_config() },
            TrainConfig { diffusion_steps: 0, ..tiny_config() },
        ] {
            let e = Trainer::new(cfg, &data, "moons").unwrap_err();
            assert!(!e.to_string().is_empty());
        }
        let empty = Dataset::from_rows(2, vec![], "none");
        assert!(matches!(Trainer::new(tiny_config(), &empty, "none"), Err(TrainError::EmptyData(_))));
    }

    #[test]
    fn init_is_pytorch_like_with_zero_output() {
        let dims = Dims { dim: 2, hidden: 128, freqs: 32, blocks: 3 };
        let layout = Layout::new(dims);
        let net = Net::mlp(&dims);
        let p = init_params(&net, 0);
        let w = &p[layout.range(tinyscore_engine::format::Role::TimeW2).unwrap()];
        let bound = 1.0 / 128f32.sqrt();
        assert!(w.iter().all(|v| v.abs() <= bound));
        let var = w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32;
        assert!((var - bound * bound / 3.0).abs() < 0.05 * bound * bound, "uniform variance");
        assert!(p[layout.output.w..].iter().all(|&v| v == 0.0));
        assert_ne!(init_params(&net, 1), p);
    }
}
