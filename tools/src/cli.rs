//! Argument parsing (clap derive) and dispatch to one `run_*` function per subcommand.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};

use crate::cmd;

/// tinyscore: score-based diffusion models for microcontrollers and edge CPUs.
#[derive(Debug, Parser)]
#[command(name = "tinyscore", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a ScoreNet with denoising score matching and write a checkpoint.
    Train(TrainArgs),
    /// Convert a checkpoint (.safetensors) into a .tsm model file.
    Convert(ConvertArgs),
    /// Show a model file's header, tensors, size and RAM needs.
    Inspect(InspectArgs),
    /// Draw samples with the engine (the same code the firmware runs).
    Sample(SampleArgs),
    /// Denoise noisy windows (one per CSV line), or fill their missing entries with --mask.
    Denoise(DenoiseArgs),
    /// Sliced Wasserstein distance between samples and held-out data, beside its floor.
    Eval(EvalArgs),
    /// Write a built-in data set to CSV.
    Data(DataArgs),
    /// Held-out negative log-likelihood (nats and bits per dimension) via the probability-flow ODE.
    Likelihood(LikelihoodArgs),
    /// Train moons on the CPU, convert, sample, plot and evaluate, in one go.
    Quickstart(QuickstartArgs),
    /// Training throughput (steps/s, TFLOP/s) over a grid of widths and batch sizes.
    BenchTrain(BenchTrainArgs),
    /// Network evaluations per second of model files, one thread, per precision.
    Bench(BenchArgs),
}

/// Where training runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Device {
    /// The CPU backend (all cores).
    Cpu,
    /// The CUDA backend.
    Cuda,
}

/// The β schedule of the discrete VP process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Schedule {
    /// β linear from 1e-4 to 0.02 (Ho et al. 2020).
    Linear,
    /// Cosine ᾱ with s = 0.008 (Nichol & Dhariwal 2021).
    Cosine,
}

/// The diffusion process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProcessArg {
    /// Discrete variance-preserving (DDPM): N steps of --schedule.
    Vp,
    /// VP SDE, β(t) linear from 0.1 to 20, t continuous on [1e-3, 1].
    Vpsde,
    /// Sub-VP SDE, β(t) linear from 0.1 to 20, t continuous on [1e-3, 1].
    Subvp,
    /// VE SDE, σ(t) geometric from 0.01 to 50 (data units normalised), t on [1e-5, 1].
    Ve,
}

/// The weighting of the noise levels in the loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WeightingArg {
    /// The plain ε-loss (λ(t) = σ_t² in score terms).
    Simple,
    /// Likelihood weighting λ(t) = g(t)² (Song et al. 2021); SDE processes only.
    Likelihood,
}

/// The training objective.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LossArg {
    /// Denoising score matching (the ε-loss).
    Dsm,
    /// Sliced score matching with Rademacher projections (Song et al. 2019).
    Ssm,
    /// Sliced score matching, variance-reduced form.
    SsmVr,
}

/// Arguments of `tinyscore train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Built-in data set (moons, swissroll, 8gaussians, checkerboard, pinwheel, digits, ecg) or a
    /// CSV / .npy file.
    #[arg(long)]
    pub data: String,
    /// Window length of the `ecg` data set (default 64; hop: half a window).
    #[arg(long)]
    pub window: Option<usize>,
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
    /// Number of discrete diffusion steps N (≤ 1000); for an SDE, the default sampler steps
    /// stored in the model file.
    #[arg(long, default_value_t = 1000)]
    pub diffusion_steps: u32,
    /// Hidden width H.
    #[arg(long, default_value_t = 128)]
    pub hidden: usize,
    /// Residual blocks B.
    #[arg(long, default_value_t = 3)]
    pub blocks: usize,
    /// Time features F (even).
    #[arg(long, default_value_t = 32)]
    pub freqs: usize,
    /// Optimisation steps.
    #[arg(long, default_value_t = 8000)]
    pub steps: u64,
    /// Batch size.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
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
    /// Examples generated for a built-in 2-D data set.
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
    /// Checkpoint to write (.safetensors).
    #[arg(long)]
    pub out: PathBuf,
    /// Continue from this checkpoint (bit-exact on the CPU backend) until --steps in total.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Write a checkpoint every this many steps (0: only at the end).
    #[arg(long, default_value_t = 1000)]
    pub save_every: u64,
}

/// Weight storage of `tinyscore convert`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum QuantArg {
    /// f32 weights.
    F32,
    /// f16 weights, f32 arithmetic.
    F16,
    /// int8 weights with per-output-channel scales, f32 activations.
    W8,
    /// int8 weights and activations, int32 accumulation, calibrated per timestep group.
    W8a8,
}

/// Arguments of `tinyscore convert`.
#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// Checkpoint to convert (.safetensors).
    pub checkpoint: PathBuf,
    /// Weight storage.
    #[arg(long, value_enum, default_value_t = QuantArg::F32)]
    pub quant: QuantArg,
    /// Use the raw weights instead of their EMA.
    #[arg(long)]
    pub raw: bool,
    /// Calibration data (built-in name or CSV/.npy file) for w8a8 and the SNR report; default:
    /// the training data recorded in the checkpoint.
    #[arg(long)]
    pub calib: Option<String>,
    /// Timestep groups of the w8a8 activation scales (1..=16); default: chosen by measured SNR
    /// among 1, 2, 4, 8.
    #[arg(long)]
    pub groups: Option<usize>,
    /// Model file to write (.tsm).
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `tinyscore bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Model files (.tsm). An f32 file is also measured re-encoded as f16 and w8 (in memory).
    #[arg(required = true)]
    pub models: Vec<PathBuf>,
    /// Vectors per network call: 1 is `ScoreNet::eps`, more is `ScoreNet::eps_batch`.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Seconds of measurement per row (after a warm-up of a tenth of that).
    #[arg(long, default_value_t = 1.0)]
    pub seconds: f64,
    /// Measure the engine as compiled for any x86-64 (SSE2), not its AVX2 build.
    #[arg(long)]
    pub portable: bool,
    /// Instead of timing: evaluate ε̂ of the first model for each line `t,x_1,…,x_D` of this CSV
    /// (x normalised) and print one CSV line of ε̂ per input (for cross-checks with other runtimes).
    #[arg(long, value_name = "CSV")]
    pub eval_csv: Option<PathBuf>,
}

/// Arguments of `tinyscore inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Model file (.tsm).
    pub model: PathBuf,
}

/// The samplers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SamplerArg {
    /// DDPM ancestral sampling (Ho et al. 2020); discrete VP models.
    Ddpm,
    /// DDIM with --eta (Song et al. 2021); every process.
    Ddim,
    /// Euler–Maruyama on the reverse SDE; every process.
    Em,
    /// Euler on the probability-flow ODE; every process.
    OdeEuler,
    /// Heun on the probability-flow ODE (2 evaluations per step); every process.
    OdeHeun,
    /// Annealed Langevin dynamics (Song & Ermon 2019), --steps levels × --corrector-steps.
    Langevin,
    /// Predictor–corrector (reverse-diffusion predictor, Langevin corrector with --snr).
    Pc,
}

/// The predictor of `--sampler pc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PredictorArg {
    /// The discretised reverse SDE.
    ReverseDiffusion,
    /// Euler–Maruyama.
    Em,
}

/// DDPM reverse variance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum VarianceArg {
    /// σ² = β ("fixed large").
    Beta,
    /// σ² = β̃, the posterior variance ("fixed small").
    Posterior,
}

/// Arguments of `tinyscore sample`.
#[derive(Debug, clap::Args)]
pub struct SampleArgs {
    /// Model file (.tsm).
    pub model: PathBuf,
    /// Sampler.
    #[arg(long, value_enum, default_value_t = SamplerArg::Ddpm)]
    pub sampler: SamplerArg,
    /// Reverse steps (default: the file's N).
    #[arg(long)]
    pub steps: Option<u32>,
    /// DDPM reverse variance.
    #[arg(long, value_enum, default_value_t = VarianceArg::Posterior)]
    pub variance: VarianceArg,
    /// DDIM's η in [0, 1] (0: deterministic).
    #[arg(long, default_value_t = 0.0)]
    pub eta: f32,
    /// Signal-to-noise ratio of the pc sampler's Langevin corrector.
    #[arg(long, default_value_t = 0.16)]
    pub snr: f32,
    /// Corrector steps per predictor step (pc), or Langevin steps per noise level (langevin).
    #[arg(long)]
    pub corrector_steps: Option<u32>,
    /// The pc sampler's predictor.
    #[arg(long, value_enum, default_value_t = PredictorArg::ReverseDiffusion)]
    pub predictor: PredictorArg,
    /// Annealed Langevin step relative to the level's variance: a_i = X·σ_i².
    #[arg(long, default_value_t = 0.1)]
    pub langevin_step: f32,
    /// Finish with one Tweedie denoising step x̂₀ = (x − σ·ε̂)/α at the end time.
    #[arg(long)]
    pub denoise_final: bool,
    /// Number of samples.
    #[arg(long, default_value_t = 1000)]
    pub n: u32,
    /// Seed (sample i uses the noise of (seed, i) whatever n is).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output CSV, one sample per line, in the data's units; `-` for standard output.
    #[arg(long)]
    pub out: PathBuf,
    /// Also draw the samples to this PNG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// Denoising methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DenoiseMethod {
    /// One network evaluation: Tweedie's posterior mean at the matched noise level.
    Tweedie,
    /// Reverse diffusion from the matched noise level (SDEdit), averaged over --draws runs.
    Sdedit,
}

/// Arguments of `tinyscore denoise`.
#[derive(Debug, clap::Args)]
pub struct DenoiseArgs {
    /// Model file (.tsm) trained on clean windows of the same length.
    pub model: PathBuf,
    /// Noisy windows: CSV (or .npy), one window per line, in the data's units.
    #[arg(long)]
    pub input: PathBuf,
    /// Noise standard deviation in the data's units, or `auto` to estimate it from the input
    /// (median absolute deviation of the first difference, pooled over all windows).
    #[arg(long, default_value = "auto", allow_hyphen_values = true)]
    pub sigma: String,
    /// Denoising method.
    #[arg(long, value_enum, default_value_t = DenoiseMethod::Tweedie)]
    pub method: DenoiseMethod,
    /// Reverse steps of `sdedit` (from the matched level down) and of imputation (from t = 1).
    #[arg(long, default_value_t = 50)]
    pub steps: u32,
    /// Independent runs averaged, for `sdedit` and imputation (1..=16).
    #[arg(long, default_value_t = 4)]
    pub draws: u32,
    /// Imputation instead of denoising: a CSV of the input's shape, 1 where a value is known and 0
    /// where it is missing (the input's value there is ignored).
    #[arg(long)]
    pub mask: Option<PathBuf>,
    /// Imputation: RePaint resamplings per step (1 = the plain replacement method).
    #[arg(long, default_value_t = 1)]
    pub resample: u32,
    /// Seed of the stochastic methods (window i uses the noise of (seed, i)).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The clean windows, if known: prints the SNR (dB) of the input and of the output.
    #[arg(long)]
    pub clean: Option<PathBuf>,
    /// Output CSV of the input's shape; `-` for standard output.
    #[arg(long)]
    pub out: PathBuf,
    /// Also draw noisy / denoised (/ clean) traces of the first windows to this PNG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// Arguments of `tinyscore eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Samples (CSV or .npy).
    #[arg(long)]
    pub samples: PathBuf,
    /// Held-out data: a built-in data set (fresh draws, or the held-out 20% of a recording) or a file.
    #[arg(long)]
    pub data: String,
    /// Window length of the `ecg` data set (default 64).
    #[arg(long)]
    pub window: Option<usize>,
    /// Random projections of the sliced distance.
    #[arg(long, default_value_t = 256)]
    pub projections: usize,
    /// Seed of the projections and of the held-out draw.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Arguments of `tinyscore bench-train`.
#[derive(Debug, clap::Args)]
pub struct BenchTrainArgs {
    /// Training backend.
    #[arg(long, value_enum, default_value_t = Device::Cuda)]
    pub device: Device,
    /// Hidden widths H (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [128usize, 256, 512])]
    pub widths: Vec<usize>,
    /// Batch sizes (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [256usize, 4096, 65536])]
    pub batches: Vec<usize>,
    /// Residual blocks B.
    #[arg(long, default_value_t = 3)]
    pub blocks: usize,
    /// Time features F.
    #[arg(long, default_value_t = 32)]
    pub freqs: usize,
    /// Timed steps per configuration (after 10 warm-up steps).
    #[arg(long, default_value_t = 200)]
    pub steps: u64,
    /// --device cuda: replay each step as a CUDA graph.
    #[arg(long)]
    pub cuda_graph: bool,
    /// Peak FP32 throughput of the device in TFLOP/s, for the "% of peak" column (default: 67 for
    /// an H100 SXM, 51 for an H100 PCIe, none otherwise).
    #[arg(long)]
    pub peak_tflops: Option<f64>,
}

/// Arguments of `tinyscore likelihood`.
#[derive(Debug, clap::Args)]
pub struct LikelihoodArgs {
    /// Model file (.tsm; weights dequantised to f32) or checkpoint (.safetensors; EMA weights).
    pub model: PathBuf,
    /// Held-out data: a built-in data set (fresh draws, or the held-out 20% of a recording) or a file.
    #[arg(long)]
    pub data: String,
    /// Window length of the `ecg` data set (default 64).
    #[arg(long)]
    pub window: Option<usize>,
    /// Exact divergence: D vector-Jacobian products per evaluation (default for D ≤ 64).
    #[arg(long, conflicts_with = "hutchinson")]
    pub exact: bool,
    /// Hutchinson's divergence estimate with K Rademacher probes (default K = 16 for D > 64).
    #[arg(long, value_name = "K")]
    pub hutchinson: Option<usize>,
    /// RK4 steps, equally spaced in log signal-to-noise ratio.
    #[arg(long, default_value_t = 100)]
    pub steps: u32,
    /// Held-out points (at most; a recording's held-out part may be smaller).
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// Seed of the held-out draw and of the Hutchinson probes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Use a checkpoint's raw weights instead of their EMA.
    #[arg(long)]
    pub raw: bool,
}

/// Arguments of `tinyscore data`.
#[derive(Debug, clap::Args)]
pub struct DataArgs {
    /// Built-in data set.
    pub name: String,
    /// Window length of the `ecg` data set (default 64; hop: half a window).
    #[arg(long)]
    pub window: Option<usize>,
    /// Number of examples (generated sets; recordings give all their windows).
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// Seed of a generated set.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output CSV; `-` for standard output.
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `tinyscore quickstart`.
#[derive(Debug, clap::Args)]
pub struct QuickstartArgs {
    /// Folder for the checkpoint, model, samples and plot.
    #[arg(long, default_value = "tinyscore-quickstart")]
    pub dir: PathBuf,
    /// Training steps.
    #[arg(long, default_value_t = 10_000)]
    pub steps: u64,
    /// Samples to draw.
    #[arg(long, default_value_t = 2000)]
    pub n: u32,
    /// Reverse steps of the DDPM sampler.
    #[arg(long, default_value_t = 200)]
    pub sample_steps: u32,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(a) => cmd::train::run_train(&a),
        Command::Convert(a) => cmd::convert::run_convert(&a),
        Command::Inspect(a) => cmd::inspect::run_inspect(&a),
        Command::Sample(a) => cmd::sample::run_sample(&a),
        Command::Denoise(a) => cmd::denoise::run_denoise(&a),
        Command::Eval(a) => cmd::eval::run_eval(&a),
        Command::Data(a) => cmd::data::run_data(&a),
        Command::Likelihood(a) => cmd::likelihood::run_likelihood(&a),
        Command::Quickstart(a) => cmd::quickstart::run_quickstart(&a),
        Command::BenchTrain(a) => cmd::bench_train::run_bench_train(&a),
        Command::Bench(a) => cmd::bench::run_bench(&a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }
}
