//! `tinyscore train`: denoising score matching on the CPU backend, with a progress bar (loss,
//! speed) and atomic checkpoints.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use tinyscore_engine::net::limits;
use tinyscore_engine::schedule::{BetaSchedule, Sde, MAX_STEPS};
use tinyscore_train::checkpoint::Checkpoint;
use tinyscore_train::train::{default_t_eps, Arch, Loss, TimeDraw, TrainConfig, Trainer, Weighting};

use super::progress;
use crate::cli::{flag, Device, Given, LossArg, ProcessArg, Schedule, WeightingArg};
use crate::output::{self, Kind, Output};

/// Arguments of `tinyscore train`.
#[derive(Clone, Debug, clap::Args)]
pub struct TrainArgs {
    /// Built-in data set (moons, swissroll, 8gaussians, checkerboard, pinwheel, digits, ecg) or a
    /// CSV / .npy file; with --resume, the checkpoint's (given, it must be the same).
    #[arg(long, required_unless_present = "resume")]
    pub data: Option<String>,
    /// Window length of the `ecg` data set (default 64; hop: half a window).
    #[arg(long)]
    pub window: Option<usize>,
    /// Network: `mlp` (ScoreNet v1, for points and short vectors) or `conv` (ScoreNet-conv, a
    /// 1-D U-Net for signals; docs/scorenet.md).
    #[arg(long, value_enum, default_value_t = ArchArg::Mlp)]
    pub arch: ArchArg,
    /// --arch conv: the signal's channels C; each example's D values are C rows of D/C samples,
    /// channel-major (default: 1).
    #[arg(long)]
    pub signal_channels: Option<usize>,
    /// --arch conv: channels of the first level c_0 (deeper levels have 2·c_0; default 10).
    #[arg(long)]
    pub width: Option<usize>,
    /// --arch conv: downsamplings by 2, default 3 (the signal length must be a multiple of
    /// 2^levels).
    #[arg(long)]
    pub levels: Option<usize>,
    /// --arch conv: kernel size K of every convolution (odd; default 5).
    #[arg(long)]
    pub kernel: Option<usize>,
    /// --arch conv: width T of the time embedding (default: 4 × --width).
    #[arg(long)]
    pub temb: Option<usize>,
    /// Diffusion process.
    #[arg(long, value_enum, default_value_t = ProcessArg::Vp)]
    pub process: ProcessArg,
    /// β schedule of the discrete process.
    #[arg(long, value_enum, default_value_t = Schedule::Linear)]
    pub schedule: Schedule,
    /// Loss weighting of the noise levels.
    #[arg(long, value_enum, default_value_t = WeightingArg::Simple)]
    pub weighting: WeightingArg,
    /// Training objective (docs/scorenet.md).
    #[arg(long, value_enum, default_value_t = LossArg::Dsm)]
    pub loss: LossArg,
    /// Share P in [0, 1] of the examples whose time is drawn on the low range (--low-noise-max)
    /// instead of the whole range (default 0: uniform t; changes the loss weighting,
    /// docs/training.md "Low-noise emphasis"). CPU only. With --resume it may change (a
    /// fine-tune); without it a resumed run keeps the checkpoint's.
    #[arg(long, value_name = "P", allow_negative_numbers = true)]
    pub low_noise_share: Option<f32>,
    /// The low range as a fraction F in (0, 1] of the steps (discrete: n on 1..=⌊F·N⌋) or of
    /// [t_ε, 1] (SDE) (default 0.3; needs a share above 0).
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    pub low_noise_max: Option<f32>,
    /// Number of discrete diffusion steps N (≤ 1000); for an SDE, the default sampler steps
    /// stored in the model file.
    #[arg(long, default_value_t = 1000)]
    pub diffusion_steps: u32,
    /// --arch mlp: hidden width H (default 128).
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Residual blocks B (mlp: 3; conv: per level and in the middle, 1).
    #[arg(long)]
    pub blocks: Option<usize>,
    /// Time features F (even).
    #[arg(long, default_value_t = 32)]
    pub freqs: usize,
    /// Optimisation steps, in total, counting those before a resume (mlp: 8000; conv: 12000).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Batch size, at most 262144 (mlp: 256; conv: 32).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    /// Steps of linear learning-rate warm-up.
    #[arg(long, default_value_t = 100)]
    pub warmup: u64,
    /// EMA decay of the weights.
    #[arg(long, default_value_t = 0.999)]
    pub ema: f32,
    /// Global gradient-norm clip.
    #[arg(long, default_value_t = 1.0)]
    pub grad_clip: f32,
    /// Examples generated for a built-in 2-D data set (at most 16777216; not recorded in the
    /// checkpoint, so a resumed run needs the same --n).
    #[arg(long, default_value_t = 20_000)]
    pub n: usize,
    /// Training backend: cpu (all cores) or cuda (GPU 0; our CUDA kernels, compiled by NVRTC).
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
    /// --device cuda: capture the step as a CUDA graph once and replay it.
    #[arg(long)]
    pub cuda_graph: bool,
    /// --device cuda: read the loss back (one synchronisation) every this many steps.
    #[arg(long, default_value_t = 100)]
    pub loss_every: u64,
    /// Seed of the data, initialisation and noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Checkpoint to write (.safetensors; may be the --resume checkpoint itself).
    #[arg(long)]
    pub out: PathBuf,
    /// Continue from this checkpoint (bit-exact on the CPU backend) until --steps in total, with
    /// exactly its settings: a setting flag that differs from the checkpoint's is refused.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Write a checkpoint every this many steps (0: only at the end).
    #[arg(long, default_value_t = 1000)]
    pub save_every: u64,
}

/// What a finished training run reports.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    /// Steps done in total (including those before a resume).
    pub steps: u64,
    /// Mean loss over the last 100 steps.
    pub loss: f32,
    /// Steps per second of this run.
    pub steps_per_sec: f64,
}

/// The network family of `--arch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ArchArg {
    /// ScoreNet v1, the residual MLP.
    Mlp,
    /// ScoreNet-conv, the 1-D U-Net.
    Conv,
}

/// The defaults of `--arch conv` (docs/scorenet.md, "ScoreNet-conv"; measured in
/// docs/denoising.md): c_0, levels, blocks, K, steps and batch (T is 4·c_0).
pub const CONV_DEFAULTS: ConvDefaults =
    ConvDefaults { width: 10, levels: 3, blocks: 1, kernel: 5, steps: 12000, batch: 32 };

/// The sizes and schedule `--arch conv` takes when not given.
#[derive(Clone, Copy, Debug)]
pub struct ConvDefaults {
    /// c_0.
    pub width: usize,
    /// Downsamplings.
    pub levels: usize,
    /// Blocks per level.
    pub blocks: usize,
    /// K.
    pub kernel: usize,
    /// Optimisation steps.
    pub steps: u64,
    /// Batch size.
    pub batch: usize,
}

/// F of `--low-noise-max` when not given: the range of t ≤ 0.3 where the ECG denoising (t* of
/// σ ≤ 0.4 mV) and the imputation from a linear fill (t_start = 0.3) run (docs/training.md).
pub const DEFAULT_LOW_NOISE_MAX: f32 = 0.3;

/// The largest --batch accepted: the trainer's buffers grow with it, and a larger request must be
/// an error, not an allocation failure (the trainer also refuses a batch whose activations would
/// exceed `MAX_ACTIVATION_BYTES` for the network at hand).
pub const MAX_BATCH: usize = 1 << 18;
/// The most examples generated for a built-in 2-D set (--n): 128 MiB of f32.
pub const MAX_EXAMPLES: usize = 1 << 24;

/// Runs `tinyscore train`.
pub fn run_train(args: &TrainArgs, given: &Given) -> Result<()> {
    let s = train(args, given, true)?;
    eprintln!(
        "trained {} steps, loss {:.4}, {:.0} steps/s; checkpoint {}",
        s.steps,
        s.loss,
        s.steps_per_sec,
        args.out.display()
    );
    Ok(())
}

/// Validates the arguments into a training configuration.
pub fn config(args: &TrainArgs) -> Result<TrainConfig> {
    if args.loss_every == 0 {
        bail!("--loss-every must be at least 1");
    }
    let conv = args.arch == ArchArg::Conv;
    let d = CONV_DEFAULTS;
    let hidden = if conv { args.width.unwrap_or(d.width) } else { args.hidden.unwrap_or(128) };
    let blocks = args.blocks.unwrap_or(if conv { d.blocks } else { 3 });
    let steps = args.steps.unwrap_or(if conv { d.steps } else { 8000 });
    let batch = args.batch.unwrap_or(if conv { d.batch } else { 256 });
    let arch = if conv {
        let (levels, kernel, temb) = (
            args.levels.unwrap_or(d.levels),
            args.kernel.unwrap_or(d.kernel),
            args.temb.unwrap_or(4 * hidden),
        );
        let channels = args.signal_channels.unwrap_or(1);
        let most = tinyscore_engine::graph::op::MAX_CHANNELS;
        let checks: [(&str, usize, usize); 4] = [
            ("--signal-channels", channels, most),
            ("--width", hidden, most / 2),
            ("--levels", levels, 6),
            ("--temb", temb, most),
        ];
        for (flag, v, max) in checks {
            if (v == 0 && flag != "--levels") || v > max {
                bail!("{flag} must be in {}..={max}, got {v}", u8::from(flag != "--levels"));
            }
        }
        let max_kernel = tinyscore_engine::graph::op::MAX_KERNEL;
        if kernel % 2 == 0 || kernel > max_kernel {
            bail!("--kernel must be odd and in 1..={max_kernel}, got {kernel}");
        }
        Arch::Conv { channels, levels, kernel, temb }
    } else {
        Arch::Mlp
    };
    let checks: [(&str, usize, usize); 3] = [
        (if conv { "--width" } else { "--hidden" }, hidden, limits::MAX_HIDDEN),
        ("--blocks", blocks, limits::MAX_BLOCKS),
        ("--freqs", args.freqs, limits::MAX_FREQS),
    ];
    for (flag, v, max) in checks {
        if v == 0 || v > max {
            bail!("{flag} must be in 1..={max}, got {v}");
        }
    }
    if args.freqs % 2 != 0 {
        bail!("--freqs must be even, got {}", args.freqs);
    }
    if args.diffusion_steps == 0 || args.diffusion_steps as usize > MAX_STEPS {
        bail!("--diffusion-steps must be in 1..={MAX_STEPS}, got {}", args.diffusion_steps);
    }
    if steps == 0 {
        bail!("--steps must be at least 1");
    }
    if batch == 0 || batch > MAX_BATCH {
        bail!("--batch must be in 1..={MAX_BATCH}, got {batch}");
    }
    if args.n == 0 || args.n > MAX_EXAMPLES {
        bail!("--n must be in 1..={MAX_EXAMPLES}, got {}", args.n);
    }
    for (flag, v) in [("--lr", args.lr), ("--grad-clip", args.grad_clip)] {
        if !(v.is_finite() && v > 0.0) {
            bail!("{flag} must be a positive number, got {v}");
        }
    }
    if let Some(p) = args.low_noise_share {
        if !(0.0..=1.0).contains(&p) {
            bail!("--low-noise-share must be in [0, 1], got {p}");
        }
    }
    if let Some(f) = args.low_noise_max {
        if !(f > 0.0 && f <= 1.0) {
            bail!("--low-noise-max must be in (0, 1], got {f}");
        }
    }
    let time_draw = TimeDraw::new(
        args.low_noise_share.unwrap_or(0.0),
        args.low_noise_max.unwrap_or(DEFAULT_LOW_NOISE_MAX),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    if !(args.ema.is_finite() && (0.0..1.0).contains(&args.ema)) {
        bail!("--ema must be in [0, 1), got {}", args.ema);
    }
    let schedule = match args.schedule {
        Schedule::Linear => BetaSchedule::DDPM_LINEAR,
        Schedule::Cosine => BetaSchedule::COSINE,
    };
    let sde = match args.process {
        ProcessArg::Vp => None,
        ProcessArg::Vpsde => Some(Sde::VP),
        ProcessArg::Subvp => Some(Sde::SUB_VP),
        ProcessArg::Ve => Some(Sde::VE),
    };
    let weighting = match args.weighting {
        WeightingArg::Simple => Weighting::Simple,
        WeightingArg::Likelihood if sde.is_none() => {
            bail!("--weighting likelihood needs an SDE process (--process vpsde, subvp or ve)")
        }
        WeightingArg::Likelihood => Weighting::Likelihood,
    };
    let loss = match args.loss {
        LossArg::Dsm => Loss::Dsm,
        LossArg::Ssm => Loss::Ssm,
        LossArg::SsmVr => Loss::SsmVr,
    };
    Ok(TrainConfig {
        arch,
        loss,
        sde,
        t_eps: sde.as_ref().map_or(1e-3, default_t_eps),
        weighting,
        time_draw,
        hidden,
        blocks,
        freqs: args.freqs,
        steps,
        batch,
        lr: args.lr,
        ema: args.ema,
        seed: args.seed,
        grad_clip: args.grad_clip,
        warmup: args.warmup,
        diffusion_steps: args.diffusion_steps,
        schedule,
    })
}

/// The flags that set what a checkpoint records (argument ids); with --resume each must agree.
const RECORDED: &[&str] = &[
    "arch",
    "signal_channels",
    "width",
    "levels",
    "kernel",
    "temb",
    "process",
    "schedule",
    "weighting",
    "loss",
    "diffusion_steps",
    "hidden",
    "blocks",
    "freqs",
    "batch",
    "lr",
    "warmup",
    "ema",
    "grad_clip",
    "seed",
];

/// Checks the flags that have no effect in this combination, before anything is loaded.
fn check_combination(args: &TrainArgs, given: &Given) -> Result<()> {
    if args.device != Device::Cuda {
        given.refuse(&["cuda_graph", "loss_every"], "without --device cuda")?;
    }
    if args.process != ProcessArg::Vp {
        given.refuse(&["schedule"], "with an SDE process (--process vpsde, subvp, ve)")?;
    }
    match args.arch {
        ArchArg::Mlp => given.refuse(
            &["signal_channels", "width", "levels", "kernel", "temb"],
            "with --arch mlp (they size the conv network; pass --arch conv)",
        )?,
        ArchArg::Conv => given.refuse(&["hidden"], "with --arch conv (its width is --width)")?,
    }
    Ok(())
}

/// The time draw of the run: the flags' for a new run; for a resumed one the checkpoint's, with
/// a given --low-noise-share or --low-noise-max replacing its part (the other part is the
/// checkpoint's, or the default range for a checkpoint with a uniform draw). Checked before
/// any work, including that --device cuda gets the uniform draw.
fn time_draw(
    args: &TrainArgs,
    given: &Given,
    cfg: &TrainConfig,
    resumed: Option<&Checkpoint>,
) -> Result<TimeDraw> {
    let draw = match resumed {
        None => cfg.time_draw,
        Some(ckpt) => {
            let had = ckpt.config.time_draw;
            let share = args.low_noise_share.unwrap_or(had.share);
            let max =
                args.low_noise_max.unwrap_or(if had.is_uniform() { DEFAULT_LOW_NOISE_MAX } else { had.max });
            TimeDraw::new(share, max).map_err(|e| anyhow::anyhow!("{e}"))?
        }
    };
    if draw.is_uniform() && given.has("low_noise_max") {
        bail!("--low-noise-max has no effect without a --low-noise-share above 0");
    }
    if args.device == Device::Cuda && !draw.is_uniform() {
        let whose = if given.has("low_noise_share") {
            "--low-noise-share"
        } else {
            "the checkpoint's low-noise share"
        };
        bail!("{whose} runs on the CPU backend only (--device cuda draws t uniformly); pass --low-noise-share 0 or train on the CPU");
    }
    Ok(draw)
}

/// How a time draw reads on the command line.
fn draw_text(d: &TimeDraw) -> String {
    if d.is_uniform() {
        "uniform t (--low-noise-share 0)".into()
    } else {
        format!("--low-noise-share {} --low-noise-max {}", d.share, d.max)
    }
}

/// The value of the recorded setting `id` (an argument id of [`RECORDED`]) in `c`, as its flag
/// would spell it.
fn setting(c: &TrainConfig, id: &str) -> String {
    match id {
        "process" => match c.sde {
            None => "vp".into(),
            Some(Sde::Vp { .. }) => "vpsde".into(),
            Some(Sde::SubVp { .. }) => "subvp".into(),
            Some(Sde::Ve { .. }) => "ve".into(),
        },
        "schedule" => match c.schedule {
            BetaSchedule::Linear { .. } => "linear".into(),
            BetaSchedule::Cosine { .. } => "cosine".into(),
        },
        "weighting" => c.weighting.name().into(),
        "loss" => c.loss.name().into(),
        "diffusion_steps" => c.diffusion_steps.to_string(),
        "arch" => c.arch.name().into(),
        "hidden" | "width" => c.hidden.to_string(),
        "signal_channels" | "levels" | "kernel" | "temb" => match c.arch {
            Arch::Conv { channels, levels, kernel, temb } => match id {
                "signal_channels" => channels,
                "levels" => levels,
                "kernel" => kernel,
                _ => temb,
            }
            .to_string(),
            Arch::Mlp => "(none: an mlp run)".into(),
        },
        "blocks" => c.blocks.to_string(),
        "freqs" => c.freqs.to_string(),
        "batch" => c.batch.to_string(),
        "lr" => c.lr.to_string(),
        "warmup" => c.warmup.to_string(),
        "ema" => c.ema.to_string(),
        "grad_clip" => c.grad_clip.to_string(),
        "seed" => c.seed.to_string(),
        _ => String::new(),
    }
}

/// With --resume: every recorded setting given on the command line must equal the checkpoint's.
fn check_resume(
    args: &TrainArgs,
    given: &Given,
    cfg: &TrainConfig,
    ckpt: &Checkpoint,
    path: &Path,
) -> Result<()> {
    for id in RECORDED.iter().filter(|id| given.has(id)) {
        let (asked, recorded) = (setting(cfg, id), setting(&ckpt.config, id));
        if asked != recorded {
            bail!(
                "{} {asked} conflicts with the checkpoint {}, which records {} {recorded}; --resume continues with the checkpoint's settings (drop the flag, or train a new run without --resume)",
                flag(id),
                path.display(),
                flag(id),
            );
        }
    }
    if let Some(data) = &args.data {
        let spec = super::data::with_window(data, args.window)?;
        if spec != ckpt.data_spec {
            bail!(
                "--data {spec} conflicts with the checkpoint {}, which records --data {}; --resume continues on the checkpoint's data (drop --data)",
                path.display(),
                ckpt.data_spec
            );
        }
    } else if given.has("window") {
        bail!(
            "--window has no effect with --resume without --data: the checkpoint records its data ({})",
            ckpt.data_spec
        );
    }
    Ok(())
}

/// Trains as `args` say (`given`: the flags given on the command line); `show_progress` draws
/// the bar.
pub fn train(args: &TrainArgs, given: &Given, show_progress: bool) -> Result<Summary> {
    // A resumed run has its checkpoint's architecture (a given --arch must agree, as any
    // recorded setting), so the size flags are checked against that one.
    let resumed = args.resume.as_deref().map(super::convert::load_checkpoint).transpose()?;
    let mut args = args.clone();
    if let (Some(ckpt), false) = (&resumed, given.has("arch")) {
        args.arch = match ckpt.config.arch {
            Arch::Mlp => ArchArg::Mlp,
            Arch::Conv { .. } => ArchArg::Conv,
        };
    }
    let args = &args;
    let mut cfg = config(args)?;
    check_combination(args, given)?;
    cfg.time_draw = time_draw(args, given, &cfg, resumed.as_ref())?;
    // The data file is an input the checkpoint may not replace; the --resume checkpoint may be
    // (it is read whole before the first save, which replaces it atomically).
    let data_file = args.data.as_deref().map(Path::new).filter(|p| p.exists());
    let mut out = output::plan(&[("--out", &args.out, Kind::Checkpoint)], data_file.as_slice())?.remove(0);
    let mut trainer = match (&args.resume, resumed) {
        (Some(path), Some(ckpt)) => {
            check_resume(args, given, &cfg, &ckpt, path)?;
            let spec = ckpt.data_spec.clone();
            if spec.is_empty() {
                bail!("{}: the checkpoint records no training data, so it cannot be resumed", path.display());
            }
            let data = super::data::training_set(&spec, args.n, ckpt.config.seed)?;
            if ckpt.network.dim() != data.dim {
                bail!(
                    "{}: checkpoint has D={} but the data has {} dimensions",
                    path.display(),
                    ckpt.network.dim(),
                    data.dim
                );
            }
            eprintln!(
                "resuming {} at step {} with the checkpoint's settings (data {spec}, {}, batch {}, lr {}, seed {})",
                path.display(),
                ckpt.step,
                ckpt.network.describe(),
                ckpt.config.batch,
                ckpt.config.lr,
                ckpt.config.seed
            );
            let had = ckpt.config.time_draw;
            if had != cfg.time_draw {
                eprintln!("changing the time draw from {} to {}", draw_text(&had), draw_text(&cfg.time_draw));
            }
            let mut trainer = Trainer::resume(ckpt, &data)
                .with_context(|| format!("cannot resume from {}", path.display()))?;
            trainer.set_time_draw(cfg.time_draw)?;
            trainer
        }
        _ => {
            let data_arg = args.data.as_deref().context("--data is required without --resume")?;
            let spec = super::data::with_window(data_arg, args.window)?;
            if given.has("n") && !super::data::is_generated(&spec) {
                bail!("--n has no effect with --data {spec}: only generated 2-D sets take a size");
            }
            let data = super::data::training_set(&spec, args.n, args.seed)?;
            Trainer::new(cfg, &data, &spec)?
        }
    };
    // Without --steps a resumed run goes on to the steps its checkpoint planned.
    let steps = args.steps.unwrap_or(trainer.config().steps);
    let start_step = trainer.steps_done();
    if start_step >= steps {
        bail!("the checkpoint is already at step {start_step}; ask for more --steps");
    }
    let pb = if show_progress {
        progress(steps, "training {bar:30} {pos}/{len} {msg} {per_sec} eta {eta}")
    } else {
        indicatif::ProgressBar::hidden()
    };
    pb.set_position(start_step);
    if args.device == Device::Cuda {
        return train_cuda(args, trainer, pb, start_step, steps, &mut out);
    }
    let started = Instant::now();
    let mut recent = Vec::with_capacity(100);
    while trainer.steps_done() < steps {
        let loss = trainer.step();
        if !loss.is_finite() {
            bail!("training diverged at step {} (loss {loss}); lower --lr", trainer.steps_done());
        }
        if recent.len() == 100 {
            recent.remove(0);
        }
        recent.push(loss);
        let done = trainer.steps_done();
        if done % 10 == 0 {
            pb.set_position(done);
            pb.set_message(format!("loss {:.4}", mean(&recent)));
        }
        if args.save_every > 0 && done % args.save_every == 0 && done < steps {
            save(&trainer.checkpoint(), &mut out, true)?;
        }
    }
    pb.finish_and_clear();
    save(&trainer.checkpoint(), &mut out, false)?;
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    Ok(Summary {
        steps: trainer.steps_done(),
        loss: mean(&recent),
        steps_per_sec: (trainer.steps_done() - start_step) as f64 / secs,
    })
}

/// The loop of `--device cuda`: steps are enqueued without waiting; the loss is read back every
/// `--loss-every` steps (the only synchronisation besides checkpoints).
fn train_cuda(
    args: &TrainArgs,
    mut trainer: Trainer,
    pb: indicatif::ProgressBar,
    start_step: u64,
    steps: u64,
    out: &mut Output,
) -> Result<Summary> {
    let mut gpu = tinyscore_train::cuda::CudaTrainer::new(&trainer)
        .map_err(|e| anyhow::anyhow!("--device cuda: {e}"))?;
    gpu.use_graph(args.cuda_graph);
    pb.println(format!("training on {}", gpu.device_name()));
    let started = Instant::now();
    let mut last = f32::NAN;
    while gpu.steps_done() < steps {
        gpu.step().context("CUDA step")?;
        let done = gpu.steps_done();
        if done % args.loss_every == 0 || done == steps {
            if let Some(loss) = gpu.read_loss().context("reading the loss")? {
                if !loss.is_finite() {
                    bail!("training diverged by step {done} (loss {loss}); lower --lr");
                }
                last = loss;
            }
            pb.set_position(done);
            pb.set_message(format!("loss {last:.4}"));
        }
        // Periodic checkpoints go to a regular file only (a device would get them concatenated).
        if args.save_every > 0 && done % args.save_every == 0 && done < steps && out.is_file() {
            gpu.sync_to(&mut trainer).context("downloading the GPU state")?;
            save(&trainer.checkpoint(), out, true)?;
        }
    }
    gpu.sync_to(&mut trainer).context("downloading the GPU state")?;
    pb.finish_and_clear();
    save(&trainer.checkpoint(), out, false)?;
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    Ok(Summary {
        steps: trainer.steps_done(),
        loss: last,
        steps_per_sec: (trainer.steps_done() - start_step) as f64 / secs,
    })
}

/// Writes a checkpoint to `out`: a regular file atomically (`Checkpoint::save`); a device or pipe
/// straight, and only at the end (`periodic` saves would concatenate there).
fn save(ckpt: &Checkpoint, out: &mut Output, periodic: bool) -> Result<()> {
    if out.is_file() {
        // CheckpointError names the path and the OS reason.
        return ckpt.save(&out.path).map_err(|e| anyhow::anyhow!("{e}"));
    }
    if periodic {
        return Ok(());
    }
    // Serialised through a private temporary file, then copied to the device.
    let tmp = std::env::temp_dir().join(format!("tinyscore-ckpt-{}.safetensors", std::process::id()));
    let bytes = ckpt.save(&tmp).map_err(|e| anyhow::anyhow!("{e}")).and_then(|_| Ok(std::fs::read(&tmp)?));
    let _ = std::fs::remove_file(&tmp);
    out.write_bytes(&bytes?)
}

fn mean(v: &[f32]) -> f32 {
    v.iter().sum::<f32>() / v.len().max(1) as f32
}
