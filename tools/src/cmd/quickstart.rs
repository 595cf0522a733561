//! `tinyscore quickstart`: the whole path in one command — train moons on the CPU, convert to a
//! `.tsm`, sample with the engine, plot samples beside data, and print the distance to held-out data.

use std::time::Instant;

use anyhow::{Context, Result};
use tinyscore_engine::sampler::{Ddpm, Sampler, Variance};

use super::sample::{draw_samples, Settings};
use super::{parse_model, write_atomic};
use crate::cli::{Device, LossArg, ProcessArg, QuickstartArgs, Schedule, TrainArgs, WeightingArg};
use crate::tsm::Quant;

/// Runs `tinyscore quickstart`.
pub fn run_quickstart(args: &QuickstartArgs) -> Result<()> {
    let t0 = Instant::now();
    std::fs::create_dir_all(&args.dir).with_context(|| format!("cannot create {}", args.dir.display()))?;
    let ckpt_path = args.dir.join("moons.safetensors");
    let model_path = args.dir.join("moons-f32.tsm");
    let samples_path = args.dir.join("samples.csv");
    let plot_path = args.dir.join("samples.png");

    eprintln!("[1/4] training ScoreNet on moons ({} steps, CPU)", args.steps);
    let train = TrainArgs {
        data: "moons".into(),
        window: None,
        process: ProcessArg::Vp,
        schedule: Schedule::Linear,
        weighting: WeightingArg::Simple,
        loss: LossArg::Dsm,
        diffusion_steps: 1000,
        hidden: 128,
        blocks: 3,
        freqs: 32,
        steps: args.steps,
        batch: 256,
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
    let summary = super::train::train(&train, true)?;
    eprintln!(
        "      loss {:.4}, {:.0} steps/s -> {}",
        summary.loss,
        summary.steps_per_sec,
        ckpt_path.display()
    );

    eprintln!("[2/4] converting to {}", model_path.display());
    let ckpt = super::convert::load_checkpoint(&ckpt_path)?;
    let bytes = super::convert::convert(&ckpt, Quant::F32, true)?;
    write_atomic(&model_path, &bytes)?;
    let model = parse_model(&model_path, &bytes)?;

    eprintln!("[3/4] sampling {} points with DDPM ({} steps) in the engine", args.n, args.sample_steps);
    let settings = Settings {
        plan: Sampler::Ddpm(Ddpm { steps: args.sample_steps, variance: Variance::Posterior }).into(),
        seed: args.seed,
        n: args.n,
    };
    let samples = draw_samples(&model, &settings, true)?;
    let mut out = super::create_output(&samples_path)?;
    tinyscore_train::data::write_csv(&mut out, 2, &samples)?;
    out.flush()?;
    drop(out);

    eprintln!("[4/4] plotting and evaluating");
    let reference = super::data::heldout_set("moons", args.n as usize, args.seed)?;
    crate::plot::plot_samples(&plot_path, 2, &samples, Some(&reference.values))?;
    let set = tinyscore_train::data::Dataset::from_rows(2, samples, "samples");
    let report = super::eval::evaluate(&set, "moons", 256, args.seed.wrapping_add(1))?;
    println!("{report}");
    println!("samples: {}", samples_path.display());
    println!("plot:    {}", plot_path.display());
    println!("model:   {} ({} bytes)", model_path.display(), bytes.len());
    println!("done in {:.0} s", t0.elapsed().as_secs_f64());
    Ok(())
}

use std::io::Write as _;
