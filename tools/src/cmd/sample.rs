//! `tinyscore sample`: draws samples with the engine, in parallel over samples. Sample i depends
//! only on (model, seed, i, settings), so the output is the same for any thread count and for any
//! `--n` ≥ i + 1, and equals what the firmware prints.

use std::path::Path;

use anyhow::{bail, Context, Result};
use tinyscore_engine::format::Model;
use tinyscore_engine::sampler::{draw, Ddpm, Variance};

use super::{create_output, parse_model, progress, read_file, HostNet};
use crate::cli::{SampleArgs, SamplerArg, VarianceArg};

/// Sampler settings resolved against a model.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// The DDPM sampler.
    pub ddpm: Ddpm,
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
    let SamplerArg::Ddpm = args.sampler;
    let steps = args.steps.unwrap_or_else(|| model.process().vp_discrete().map(|s| s.steps()).unwrap_or(1));
    let variance = match args.variance {
        VarianceArg::Beta => Variance::Beta,
        VarianceArg::Posterior => Variance::Posterior,
    };
    let settings = Settings { ddpm: Ddpm { steps, variance }, seed: args.seed, n: args.n };
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

/// Draws `settings.n` samples (row-major, n × D, data units) on all cores.
pub fn draw_samples(model: &Model<'_>, settings: &Settings, show_progress: bool) -> Result<Vec<f32>> {
    let schedule = model.process().vp_discrete().context("invalid schedule")?;
    let net = HostNet::new(model.clone())?;
    let dim = model.dims().dim;
    settings
        .ddpm
        .check(&schedule)
        .map_err(|e| anyhow::anyhow!("--steps: {e} (the file's N is {})", schedule.steps()))?;
    let n = settings.n as usize;
    let mut samples = vec![0.0f32; n * dim];
    let pb = if show_progress {
        progress(n as u64, "sampling {bar:30} {pos}/{len} samples {per_sec} eta {eta}")
    } else {
        indicatif::ProgressBar::hidden()
    };
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(n.max(1));
    let chunk = n.div_ceil(threads);
    std::thread::scope(|scope| -> Result<()> {
        let mut handles = Vec::new();
        for (c, rows) in samples.chunks_mut(chunk * dim).enumerate() {
            let mut net = net.clone();
            let schedule = &schedule;
            let pb = pb.clone();
            handles.push(scope.spawn(move || -> Result<()> {
                for (j, row) in rows.chunks_mut(dim).enumerate() {
                    let i = (c * chunk + j) as u32;
                    draw(&mut net, schedule, &settings.ddpm, settings.seed, i, row)
                        .map_err(|e| anyhow::anyhow!("sampling: {e}"))?;
                    pb.inc(1);
                }
                Ok(())
            }));
        }
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("a sampling thread panicked"))??;
        }
        Ok(())
    })?;
    pb.finish_and_clear();
    Ok(samples)
}

/// Reads and parses a model file, then draws samples: for callers that have a path.
pub fn sample_file(path: &Path, settings: &Settings) -> Result<Vec<f32>> {
    let bytes = read_file(path)?;
    let model = parse_model(path, &bytes)?;
    draw_samples(&model, settings, true)
}
