//! `tinyscore sample`: draws samples with the engine, in parallel over samples. Sample i depends
//! only on (model, seed, i, settings), so the output is the same for any thread count and for any
//! `--n` ≥ i + 1, and equals what the firmware prints.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tinyscore_engine::format::Model;
use tinyscore_engine::sampler::{
    draw_batch_with, Ddim, Ddpm, Em, Langevin, OdeEuler, OdeHeun, Pc, Plan, Predictor, Sampler, SamplerError,
    Variance,
};

use super::{host_net, parse_model, progress, read_file};
use crate::cli::{Given, PredictorArg, SamplerArg, VarianceArg};
use crate::output::{self, Kind};
use crate::plot;

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
    /// Number of samples (n × D at most 134217728 values, 512 MiB).
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

/// Sampler settings resolved against a model.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// The sampler and its final step.
    pub plan: Plan,
    /// Seed.
    pub seed: u64,
    /// Number of samples.
    pub n: u32,
}

/// The most values `sample` draws (--n × D): 512 MiB of f32.
pub const MAX_VALUES: usize = 1 << 27;

/// Runs `tinyscore sample` (`given`: the flags given on the command line).
pub fn run_sample(args: &SampleArgs, given: &Given) -> Result<()> {
    if args.n == 0 {
        bail!("--n must be at least 1");
    }
    check_sampler_flags(args.sampler, given)?;
    let mut wanted = vec![("--out", args.out.as_path(), Kind::Csv)];
    if let Some(png) = &args.plot {
        wanted.push(("--plot", png, Kind::Png));
    }
    let mut outs = output::plan(&wanted, &[&args.model])?.into_iter();
    let (mut out, plot_out) = (outs.next().expect("--out"), outs.next());
    let bytes = read_file(&args.model)?;
    let model = parse_model(&args.model, &bytes)?;
    let dim = model.dims().dim;
    if args.n as usize > MAX_VALUES / dim {
        bail!(
            "--n {} x D={dim} is more than {MAX_VALUES} values; draw at most {} samples per run",
            args.n,
            MAX_VALUES / dim
        );
    }
    let settings = Settings { plan: plan(args, model.process().steps()), seed: args.seed, n: args.n };
    let samples = draw_samples(&model, &settings, true)?;
    out.write(|mut w| tinyscore_train::data::write_csv(&mut w, dim, &samples))?;
    if let Some(mut png) = plot_out {
        let shape = plot::DataShape::of_model(&model);
        let title = format!("{} samples ({})", args.n, shape.describe());
        png.write_bytes(&plot::samples_png(shape, &samples, None, &title)?)?;
        eprintln!("plot: {} ({})", png.path.display(), shape.describe());
    }
    Ok(())
}

/// Refuses a sampler setting given for a sampler that does not use it.
fn check_sampler_flags(sampler: SamplerArg, given: &Given) -> Result<()> {
    let uses = |id: &str| match id {
        "variance" => sampler == SamplerArg::Ddpm,
        "eta" => sampler == SamplerArg::Ddim,
        "snr" | "predictor" => sampler == SamplerArg::Pc,
        "corrector_steps" => matches!(sampler, SamplerArg::Pc | SamplerArg::Langevin),
        "langevin_step" => sampler == SamplerArg::Langevin,
        _ => true,
    };
    for id in ["variance", "eta", "snr", "predictor", "corrector_steps", "langevin_step"] {
        if given.has(id) && !uses(id) {
            let name = clap::ValueEnum::to_possible_value(&sampler)
                .map(|v| v.get_name().to_string())
                .unwrap_or_default();
            bail!("{} has no effect with --sampler {name}", crate::cli::flag(id));
        }
    }
    Ok(())
}

/// The sampler the arguments ask for; `default_steps` is the file's N.
pub fn plan(args: &SampleArgs, default_steps: u32) -> Plan {
    let steps = args.steps.unwrap_or(default_steps);
    let sampler = match args.sampler {
        SamplerArg::Ddpm => {
            let variance = match args.variance {
                VarianceArg::Beta => Variance::Beta,
                VarianceArg::Posterior => Variance::Posterior,
            };
            Sampler::Ddpm(Ddpm { steps, variance })
        }
        SamplerArg::Ddim => Sampler::Ddim(Ddim { steps, eta: args.eta }),
        SamplerArg::Em => Sampler::Em(Em { steps }),
        SamplerArg::OdeEuler => Sampler::OdeEuler(OdeEuler { steps }),
        SamplerArg::OdeHeun => Sampler::OdeHeun(OdeHeun { steps }),
        SamplerArg::Langevin => Sampler::Langevin(Langevin {
            steps,
            per_level: args.corrector_steps.unwrap_or(10),
            step: args.langevin_step,
        }),
        SamplerArg::Pc => Sampler::Pc(Pc {
            steps,
            predictor: match args.predictor {
                PredictorArg::ReverseDiffusion => Predictor::ReverseDiffusion,
                PredictorArg::Em => Predictor::EulerMaruyama,
            },
            corrector_steps: args.corrector_steps.unwrap_or(1),
            snr: args.snr,
        }),
    };
    Plan { sampler, denoise_final: args.denoise_final }
}

/// Draws `settings.n` samples (row-major, n × D, data units) on all cores.
pub fn draw_samples(model: &Model<'_>, settings: &Settings, show_progress: bool) -> Result<Vec<f32>> {
    let schedule = model.process().diffusion().context("invalid diffusion process")?;
    let net = host_net(model.clone())?;
    let dim = model.dims().dim;
    settings.plan.sampler.check(&schedule).map_err(|e| match e {
        SamplerError::Steps { .. } => {
            anyhow::anyhow!("--steps: {e} (the file's N is {})", model.process().steps())
        }
        _ => anyhow::anyhow!("--sampler {}: {e}", settings.plan.sampler.name()),
    })?;
    let n = settings.n as usize;
    let mut samples = vec![0.0f32; n * dim];
    let pb = if show_progress {
        progress(n as u64, "sampling {bar:30} {pos}/{len} samples {per_sec} eta {eta}")
    } else {
        indicatif::ProgressBar::hidden()
    };
    // Blocks of up to BATCH samples run in lockstep through the batched network (the same bits
    // as one at a time: `draw_batch`), the blocks in parallel over the cores.
    let k = lockstep_batch(dim);
    let scratch = vec![0.0f32; net.batch_scratch_len(k)];
    let ticks = indicatif::ProgressBar::hidden();
    super::par_rows(&mut samples, k * dim, &(net, scratch), &ticks, |(net, scratch), b, block| {
        draw_batch_with::<LOCKSTEP_CAPACITY, _, _, _, _>(
            net,
            &schedule,
            &settings.plan,
            settings.seed,
            (b * k) as u32,
            scratch,
            block,
            crate::simd::eps_batch,
        )
        .map_err(|e| anyhow::anyhow!("sampling: {e}"))?;
        pb.inc((block.len() / dim) as u64);
        Ok(())
    })?;
    pb.finish_and_clear();
    Ok(samples)
}

/// Samples drawn together in lockstep (see [`draw_batch_with`]).
pub const BATCH: usize = 16;
/// Capacity of the lockstep vector: [`BATCH`] samples of D ≤ 256, fewer of a larger D
/// (256 is ScoreNet v1's bound on D: data of up to 16 × 256 values runs in lockstep, longer signals
/// fewer at a time, down to one; the buffers stay on a worker thread's stack.)
const LOCKSTEP_CAPACITY: usize = BATCH * 256;

/// Samples per lockstep block for data dimension `dim`.
pub fn lockstep_batch(dim: usize) -> usize {
    (LOCKSTEP_CAPACITY / dim.max(1)).clamp(1, BATCH)
}

/// Reads and parses a model file, then draws samples: for callers that have a path.
pub fn sample_file(path: &Path, settings: &Settings) -> Result<Vec<f32>> {
    let bytes = read_file(path)?;
    let model = parse_model(path, &bytes)?;
    draw_samples(&model, settings, true)
}
