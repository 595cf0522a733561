//! `tinyscore sample`: draws samples with the engine, in parallel over samples. Sample i depends
//! only on (model, seed, i, settings), so the output is the same for any thread count and for any
//! `--n` ≥ i + 1, and equals what the firmware prints.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tinyscore_engine::format::Model;
use tinyscore_engine::rng::Philox;
use tinyscore_engine::sampler::{
    draw_batch_with, Ddim, Ddpm, Dpmpp, DpmppSde, Em, Langevin, OdeEuler, OdeHeun, Pc, Plan, Predictor,
    Sampler, SamplerError, State, Timesteps, UniPc, Variance,
};
use tinyscore_engine::schedule::Spacing;

use super::{host_net, parse_model, progress, read_file};
use crate::cli::{Given, PredictorArg, SamplerArg, SpacingArg, VarianceArg};
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
    /// Which of the N discrete steps dpmpp-2m, dpmpp-3m, dpmpp-sde and unipc visit (diffusers'
    /// timestep_spacing; default trailing; continuous processes: uniform in log-SNR only).
    #[arg(long, value_enum)]
    pub spacing: Option<SpacingArg>,
    /// Karras et al. (2022) noise levels, rho = 7, for dpmpp-2m, dpmpp-3m, dpmpp-sde and unipc.
    #[arg(long)]
    pub karras: bool,
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
    /// Also write every sample's path to this CSV: `unit,sample,x_1..x_D` for the initial
    /// noise (unit 0) and after every unit, in normalised units (to compare step by step with
    /// another implementation: bench/diffusers_peer.py).
    #[arg(long)]
    pub trace: Option<PathBuf>,
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
    if let Some(trace) = &args.trace {
        wanted.push(("--trace", trace, Kind::Csv));
    }
    let mut outs = output::plan(&wanted, &[&args.model])?.into_iter();
    let mut out = outs.next().expect("--out");
    let plot_out = if args.plot.is_some() { outs.next() } else { None };
    let trace_out = outs.next();
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
    if let Some(mut trace) = trace_out {
        let rows = trace_paths(&model, &settings)?;
        trace.write(|w| {
            for (unit, i, x) in &rows {
                write!(w, "{unit},{i}")?;
                for v in x {
                    write!(w, ",{v}")?;
                }
                writeln!(w)?;
            }
            Ok(())
        })?;
    }
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
        "spacing" | "karras" => sampler.is_few_step(),
        _ => true,
    };
    if given.has("spacing") && given.has("karras") {
        bail!("--karras replaces the spacing: give --spacing or --karras, not both");
    }
    for id in ["variance", "eta", "snr", "predictor", "corrector_steps", "langevin_step", "spacing", "karras"]
    {
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
        SamplerArg::Dpmpp2m => Sampler::Dpmpp(Dpmpp { steps, order: 2, timesteps: timesteps(args) }),
        SamplerArg::Dpmpp3m => Sampler::Dpmpp(Dpmpp { steps, order: 3, timesteps: timesteps(args) }),
        SamplerArg::DpmppSde => Sampler::DpmppSde(DpmppSde { steps, order: 2, timesteps: timesteps(args) }),
        SamplerArg::Unipc => Sampler::UniPc(UniPc { steps, order: 2, timesteps: timesteps(args) }),
    };
    Plan { sampler, denoise_final: args.denoise_final }
}

/// The few-step solvers' grid the arguments ask for.
fn timesteps(args: &SampleArgs) -> Timesteps {
    let spacing = match args.spacing.unwrap_or(SpacingArg::Trailing) {
        SpacingArg::Leading => Spacing::Leading,
        SpacingArg::Trailing => Spacing::Trailing,
        SpacingArg::Linspace => Spacing::Linspace,
    };
    Timesteps { spacing, karras: args.karras }
}

/// Every sample's path, one at a time through the engine's resumable API (`Sampler::start`,
/// `Sampler::step`: the same bits as [`draw_samples`]): (unit, sample, x) for unit 0 (the initial
/// noise) to the last unit, x in normalised units.
pub fn trace_paths(model: &Model<'_>, settings: &Settings) -> Result<Vec<(u32, u32, Vec<f32>)>> {
    let diff = model.process().diffusion().context("invalid diffusion process")?;
    let mut net = host_net(model.clone())?;
    let dim = model.dims().dim;
    let sampler = settings.plan.sampler;
    let mut rows = Vec::new();
    for i in 0..settings.n {
        let mut noise = Philox::new(settings.seed, i);
        let mut state: Box<State<{ tinyscore_engine::limits::MAX_DIM }>> =
            Box::new(sampler.start(&diff, &mut noise, dim));
        rows.push((0, i, state.x[..dim].to_vec()));
        while state.unit < sampler.units() {
            sampler.step(&mut net, &diff, &mut noise, &mut state);
            rows.push((state.unit, i, state.x[..dim].to_vec()));
        }
    }
    Ok(rows)
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
