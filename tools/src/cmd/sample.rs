//! `tinyscore sample`: draws samples with the engine, in parallel over samples. Sample i depends
//! only on (model, seed, i, settings), so the output is the same for any thread count and for any
//! `--n` ≥ i + 1, and equals what the firmware prints.

use std::path::Path;

use anyhow::{bail, Context, Result};
use tinyscore_engine::format::Model;
use tinyscore_engine::net::limits;
use tinyscore_engine::sampler::{
    draw_batch_with, Ddim, Ddpm, Em, Langevin, OdeEuler, OdeHeun, Pc, Plan, Predictor, Sampler, SamplerError,
    Variance,
};

use super::{create_output, host_net, parse_model, progress, read_file};
use crate::cli::{PredictorArg, SampleArgs, SamplerArg, VarianceArg};

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

/// Runs `tinyscore sample`.
pub fn run_sample(args: &SampleArgs) -> Result<()> {
    if args.n == 0 {
        bail!("--n must be at least 1");
    }
    let bytes = read_file(&args.model)?;
    let model = parse_model(&args.model, &bytes)?;
    let settings = Settings { plan: plan(args, model.process().steps()), seed: args.seed, n: args.n };
    // Open the output before the work, so a bad path fails at once.
    let mut out = create_output(&args.out)?;
    let samples = draw_samples(&model, &settings, true)?;
    let dim = model.dims().dim;
    tinyscore_train::data::write_csv(&mut out, dim, &samples)
        .and_then(|_| out.flush())
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    if let Some(png) = &args.plot {
        crate::plot::plot_samples(png, dim, &samples, None)?;
        eprintln!("plot: {}", png.display());
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
/// Capacity of the lockstep vector: [`BATCH`] samples of the largest D.
const LOCKSTEP_CAPACITY: usize = BATCH * limits::MAX_DIM;

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
