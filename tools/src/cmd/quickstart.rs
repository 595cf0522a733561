//! `tinyscore quickstart`: the whole path in one command — train moons on the CPU, convert to a
//! `.tsm`, sample with the engine, plot samples beside data, and print the distance to held-out data.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use tinyscore_engine::sampler::{Ddpm, Sampler, Variance};

use super::parse_model;
use super::sample::{draw_samples, Settings};
use super::train::TrainArgs;
use crate::cli::Given;
use crate::cli::{Device, LossArg, ProcessArg, Schedule, WeightingArg};
use crate::output::{self, Kind};
use crate::tsm::Quant;

/// Arguments of `tinyscore quickstart`.
#[derive(Debug, clap::Args)]
pub struct QuickstartArgs {
    /// Folder for the checkpoint, model, samples and plot.
    #[arg(long, default_value = "tinyscore-quickstart")]
    pub dir: PathBuf,
    /// Training steps.
    #[arg(long, default_value_t = 10_000)]
    pub steps: u64,
    /// Samples to draw (2..=1000000).
    #[arg(long, default_value_t = 2000)]
    pub n: u32,
    /// Reverse steps of the DDPM sampler (1..=1000, the model's N).
    #[arg(long, default_value_t = 200)]
    pub sample_steps: u32,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Runs `tinyscore quickstart`.
pub fn run_quickstart(args: &QuickstartArgs) -> Result<()> {
    let t0 = Instant::now();
    // Everything that can be wrong with the arguments fails here, before any training.
    if !(2..=1_000_000).contains(&args.n) {
        bail!("--n must be in 2..=1000000 (the distance needs two points), got {}", args.n);
    }
    if !(1..=1000).contains(&args.sample_steps) {
        bail!("--sample-steps must be in 1..=1000 (the model's N), got {}", args.sample_steps);
    }
    if args.steps == 0 {
        bail!("--steps must be at least 1");
    }
    if args.dir.exists() && !args.dir.is_dir() {
        bail!("{}: is not a folder (--dir)", args.dir.display());
    }
    std::fs::create_dir_all(&args.dir).with_context(|| format!("cannot create {}", args.dir.display()))?;
    let ckpt_path = args.dir.join("moons.safetensors");
    let model_path = args.dir.join("moons-f32.tsm");
    let samples_path = args.dir.join("samples.csv");
    let plot_path = args.dir.join("samples.png");
    let outs = output::plan(
        &[
            ("checkpoint", &ckpt_path, Kind::Checkpoint),
            ("model", &model_path, Kind::Model),
            ("samples", &samples_path, Kind::Csv),
            ("plot", &plot_path, Kind::Png),
        ],
        &[],
    )?;
    let [_, mut model_out, mut samples_out, mut plot_out] =
        <[output::Output; 4]>::try_from(outs).map_err(|_| anyhow::anyhow!("four outputs"))?;

    eprintln!("[1/4] training ScoreNet on moons ({} steps, CPU)", args.steps);
    let train = TrainArgs {
        data: Some("moons".into()),
        window: None,
        arch: super::train::ArchArg::Mlp,
        signal_channels: None,
        width: None,
        levels: None,
        kernel: None,
        temb: None,
        process: ProcessArg::Vp,
        schedule: Schedule::Linear,
        weighting: WeightingArg::Simple,
        loss: LossArg::Dsm,
        low_noise_share: None,
        low_noise_max: None,
        diffusion_steps: 1000,
        hidden: Some(128),
        blocks: Some(3),
        freqs: 32,
        steps: Some(args.steps),
        batch: Some(256),
        lr: 1e-3,
        warmup: 100,
        ema: 0.999,
        grad_clip: 1.0,
        n: 20_000,
        device: Device::Cpu,
        cuda_graph: false,
        loss_every: 100,
        seed: args.seed,
        out: ckpt_path.clone(),
        resume: None,
        save_every: 0,
    };
    let summary = super::train::train(&train, &Given::default(), true)?;
    eprintln!(
        "      loss {:.4}, {:.0} steps/s -> {}",
        summary.loss,
        summary.steps_per_sec,
        ckpt_path.display()
    );

    eprintln!("[2/4] converting to {}", model_path.display());
    let ckpt = super::convert::load_checkpoint(&ckpt_path)?;
    let bytes = super::convert::convert(&ckpt, Quant::F32, true)?;
    model_out.write_bytes(&bytes)?;
    let model = parse_model(&model_path, &bytes)?;

    eprintln!("[3/4] sampling {} points with DDPM ({} steps) in the engine", args.n, args.sample_steps);
    let settings = Settings {
        plan: Sampler::Ddpm(Ddpm { steps: args.sample_steps, variance: Variance::Posterior }).into(),
        seed: args.seed,
        n: args.n,
    };
    let samples = draw_samples(&model, &settings, true)?;
    samples_out.write(|mut w| tinyscore_train::data::write_csv(&mut w, 2, &samples))?;

    eprintln!("[4/4] plotting and evaluating");
    let reference = super::data::heldout_set("moons", args.n as usize, args.seed)?;
    let shape = crate::plot::data_shape_for(Some("moons"), 2);
    let title = format!("quickstart: moons, DDPM {} steps, {} training steps", args.sample_steps, args.steps);
    plot_out.write_bytes(&crate::plot::samples_png(shape, &samples, Some(&reference.values), &title)?)?;
    let set = tinyscore_train::data::Dataset::from_rows(2, samples, "samples");
    let report = super::eval::evaluate(&set, "moons", 256, args.seed.wrapping_add(1))?;
    println!("{report}");
    println!("samples: {}", samples_path.display());
    println!("plot:    {}", plot_path.display());
    println!("model:   {} ({} bytes)", model_path.display(), bytes.len());
    println!("done in {:.0} s", t0.elapsed().as_secs_f64());
    Ok(())
}
