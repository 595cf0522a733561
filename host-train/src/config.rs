//! What defines a training run: [`TrainConfig`] (sizes, optimizer, process, objective) with its
//! [`Loss`] and [`Weighting`]. Both the trainer (`train.rs`) and the checkpoints that store a
//! run (`checkpoint.rs`) use it, so it lives beside them rather than in either: the checkpoint
//! module imports the configuration, the trainer imports both, and neither imports the other
//! back. `train::TrainConfig` and the others remain the public names (re-exported there).

use tinyscore_engine::graph::build::Plan;
use tinyscore_engine::graph::mlp::Dims;
use tinyscore_engine::graph::unet::UNet;
use tinyscore_engine::graph::GraphError;
use tinyscore_engine::schedule::{BetaSchedule, Diffusion, ScheduleError, Sde, VpDiscrete};
pub use tinyscore_kernels::cpu::{TimeDraw, TimeDrawError};

/// Everything that defines a training run (and is stored in its checkpoints).
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// The network family (and the sizes only it has).
    pub arch: Arch,
    /// H, the hidden width (ScoreNet v1), or c_0, the channels of the first level (conv).
    pub hidden: usize,
    /// B, the number of residual blocks (ScoreNet v1), or of blocks per level (conv).
    pub blocks: usize,
    /// F, the number of time features (even).
    pub freqs: usize,
    /// Number of optimisation steps the caller means to run (the trainer itself does not stop).
    pub steps: u64,
    /// Examples per step.
    pub batch: usize,
    /// Adam's learning rate (after warm-up).
    pub lr: f32,
    /// EMA decay d of the weights: ema ← d·ema + (1 − d)·θ.
    pub ema: f32,
    /// Seed of the initialisation and of every draw.
    pub seed: u64,
    /// Maximum global L2 norm of the gradient (∞ or 0 disables clipping).
    pub grad_clip: f32,
    /// Steps of linear learning-rate warm-up from 0 (0: none).
    pub warmup: u64,
    /// N, the number of discrete diffusion steps.
    pub diffusion_steps: u32,
    /// The β schedule of the discrete VP process.
    pub schedule: BetaSchedule,
    /// A continuous SDE instead of the discrete VP process (None: discrete; then
    /// `diffusion_steps` is N, else it is the default number of sampler steps in the model file).
    pub sde: Option<Sde>,
    /// t_ε of the SDE: training times are uniform on [t_ε, 1].
    pub t_eps: f32,
    /// The weighting of the noise levels in the loss.
    pub weighting: Weighting,
    /// How each example's time is drawn: uniform ([`TimeDraw::UNIFORM`], the default) or with
    /// more of the examples at low noise (`docs/training.md`, "Low-noise emphasis"). Unlike the
    /// other settings it may change when a run is resumed (a fine-tune).
    pub time_draw: TimeDraw,
    /// The training objective.
    pub loss: Loss,
}

/// The network family of a run (`docs/scorenet.md`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Arch {
    /// ScoreNet v1, the residual MLP on D values.
    #[default]
    Mlp,
    /// ScoreNet-conv, the 1-D U-Net on signals of `channels` × D/`channels` samples.
    Conv {
        /// C, the signal's channels (D = C·L, channel-major).
        channels: usize,
        /// Downsamplings.
        levels: usize,
        /// K, every convolution's kernel (odd).
        kernel: usize,
        /// T, the time embedding's width.
        temb: usize,
    },
}

impl Arch {
    /// The name used in checkpoints and on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Mlp => "mlp",
            Self::Conv { .. } => "conv",
        }
    }
}

/// A network's sizes: what the trainer builds its layer graph from and a checkpoint records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// ScoreNet v1.
    Mlp(Dims),
    /// ScoreNet-conv.
    Conv(UNet),
}

impl Network {
    /// The layer graph, with its arena planned.
    pub fn plan(&self) -> Result<Plan, GraphError> {
        match self {
            Self::Mlp(d) => tinyscore_engine::graph::mlp::build(d),
            Self::Conv(u) => u.build(),
        }
    }

    /// D, the values of one example.
    pub fn dim(&self) -> usize {
        match self {
            Self::Mlp(d) => d.dim,
            Self::Conv(u) => u.channels * u.length,
        }
    }

    /// F, the time features.
    pub fn freqs(&self) -> usize {
        match self {
            Self::Mlp(d) => d.freqs,
            Self::Conv(u) => u.freqs,
        }
    }

    /// ScoreNet v1's sizes, for an MLP.
    pub fn mlp(&self) -> Option<Dims> {
        match self {
            Self::Mlp(d) => Some(*d),
            Self::Conv(_) => None,
        }
    }

    /// The sizes as the CLI spells them (`H=128 B=3 F=32`, `conv C=1 L=256 width=32 …`).
    pub fn describe(&self) -> String {
        match self {
            Self::Mlp(d) => format!("H={} B={} F={}", d.hidden, d.blocks, d.freqs),
            Self::Conv(u) => format!(
                "conv C={} L={} width={} levels={} blocks={} K={} F={} T={}",
                u.channels, u.length, u.width, u.levels, u.blocks, u.kernel, u.freqs, u.temb
            ),
        }
    }
}

/// The score-matching objective (`docs/scorenet.md`, "Objectives").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Loss {
    /// Denoising score matching (Vincent 2011), the ε-loss.
    #[default]
    Dsm,
    /// Sliced score matching (Song et al. 2019): E_v[vᵀ∇ₓs·v + ½(vᵀs)²] on the noised data.
    Ssm,
    /// Its variance-reduced form: E_v[vᵀ∇ₓs·v] + ½‖s‖².
    SsmVr,
}

impl Loss {
    /// The name used in checkpoints and on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Dsm => "dsm",
            Self::Ssm => "ssm",
            Self::SsmVr => "ssm-vr",
        }
    }

    /// The loss of a [`Loss::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Dsm, Self::Ssm, Self::SsmVr].into_iter().find(|l| l.name() == name)
    }
}

/// The weighting λ of the noise levels in the DSM loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Weighting {
    /// The plain ε-loss (Ho et al. 2020, eq. 14): λ(t) = σ_t² in score terms.
    #[default]
    Simple,
    /// Likelihood weighting λ(t) = g(t)²: the ε-loss of an example at t is weighted by g²/σ².
    Likelihood,
}

impl Weighting {
    /// The name used in checkpoints and on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Simple => "simple",
            Self::Likelihood => "likelihood",
        }
    }
}

/// The default t_ε of a process: 1e-3 for VP and sub-VP, 1e-5 for VE (Song et al. 2021).
pub fn default_t_eps(sde: &Sde) -> f32 {
    match sde {
        Sde::Ve { .. } => 1e-5,
        _ => 1e-3,
    }
}

impl TrainConfig {
    /// The network of this run on data of `dim` values per example (its sizes, unchecked: see
    /// `Network::plan` and the trainer's checks).
    pub fn network(&self, dim: usize) -> Network {
        match self.arch {
            Arch::Mlp => {
                Network::Mlp(Dims { dim, hidden: self.hidden, freqs: self.freqs, blocks: self.blocks })
            }
            Arch::Conv { channels, levels, kernel, temb } => Network::Conv(UNet {
                channels,
                length: dim / channels.max(1),
                width: self.hidden,
                levels,
                blocks: self.blocks,
                kernel,
                freqs: self.freqs,
                temb,
            }),
        }
    }

    /// The diffusion process of this run.
    pub fn diffusion(&self) -> Result<Diffusion, ScheduleError> {
        match self.sde {
            None => Ok(Diffusion::Discrete(VpDiscrete::new(self.diffusion_steps, self.schedule)?)),
            Some(sde) => {
                if self.diffusion_steps == 0
                    || self.diffusion_steps as usize > tinyscore_engine::schedule::MAX_STEPS
                {
                    return Err(ScheduleError::Steps { found: self.diffusion_steps });
                }
                Diffusion::sde(sde, self.t_eps)
            }
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            arch: Arch::Mlp,
            hidden: 128,
            blocks: 3,
            freqs: 32,
            steps: 8000,
            batch: 256,
            lr: 1e-3,
            ema: 0.999,
            seed: 0,
            grad_clip: 1.0,
            warmup: 100,
            diffusion_steps: 1000,
            schedule: BetaSchedule::DDPM_LINEAR,
            sde: None,
            t_eps: 1e-3,
            weighting: Weighting::Simple,
            time_draw: TimeDraw::UNIFORM,
            loss: Loss::Dsm,
        }
    }
}
