//! `tinyscore train`: denoising score matching on the CPU backend, with a progress bar (loss,
//! speed) and atomic checkpoints.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use tinyscore_engine::net::limits;
use tinyscore_engine::schedule::{BetaSchedule, Sde, MAX_STEPS};
use tinyscore_train::checkpoint::Checkpoint;
use tinyscore_train::train::{default_t_eps, Loss, TrainConfig, Trainer, Weighting};

use super::progress;
use crate::cli::{Device, LossArg, ProcessArg, Schedule, TrainArgs, WeightingArg};

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

/// Runs `tinyscore train`.
pub fn run_train(args: &TrainArgs) -> Result<()> {
    let s = train(args, true)?;
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
    let checks: [(&str, usize, usize); 3] = [
        ("--hidden", args.hidden, limits::MAX_HIDDEN),
        ("--blocks", args.blocks, limits::MAX_BLOCKS),
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
    if args.steps == 0 {
        bail!("--steps must be at least 1");
    }
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if args.n == 0 {
        bail!("--n must be at least 1");
    }
    for (flag, v) in [("--lr", args.lr), ("--grad-clip", args.grad_clip)] {
        if !(v.is_finite() && v > 0.0) {
            bail!("{flag} must be a positive number, got {v}");
        }
    }
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
        loss,
        sde,
        t_eps: sde.as_ref().map_or(1e-3, default_t_eps),
        weighting,
        hidden: args.hidden,
        blocks: args.blocks,
        freqs: args.freqs,
        steps: args.steps,
        batch: args.batch,
        lr: args.lr,
        ema: args.ema,
        seed: args.seed,
        grad_clip: args.grad_clip,
        warmup: args.warmup,
        diffusion_steps: args.diffusion_steps,
        schedule,
    })
}

/// Trains as `args` say; `show_progress` draws the bar.
pub fn train(args: &TrainArgs, show_progress: bool) -> Result<Summary> {
    let cfg = config(args)?;
    super::check_parent(&args.out)?;
    let spec = super::data::with_window(&args.data, args.window)?;
    let data = super::data::training_set(&spec, args.n, args.seed)?;
    let mut trainer = match &args.resume {
        Some(path) => {
            let ckpt = super::convert::load_checkpoint(path)?;
            if ckpt.dims.dim != data.dim {
                bail!(
                    "{}: checkpoint has D={} but the data has {} dimensions",
                    path.display(),
                    ckpt.dims.dim,
                    data.dim
                );
            }
            Trainer::resume(ckpt, &data).with_context(|| format!("cannot resume from {}", path.display()))?
        }
        None => Trainer::new(cfg, &data, &spec)?,
    };
    let start_step = trainer.steps_done();
    if start_step >= args.steps {
        bail!("the checkpoint is already at step {start_step}; ask for more --steps");
    }
    let pb = if show_progress {
        progress(args.steps, "training {bar:30} {pos}/{len} {msg} {per_sec} eta {eta}")
    } else {
        indicatif::ProgressBar::hidden()
    };
    pb.set_position(start_step);
    if args.device == Device::Cuda {
        return train_cuda(args, trainer, pb, start_step);
    }
    let started = Instant::now();
    let mut recent = Vec::with_capacity(100);
    while trainer.steps_done() < args.steps {
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
        if args.save_every > 0 && done % args.save_every == 0 && done < args.steps {
            save(&trainer.checkpoint(), &args.out)?;
        }
    }
    pb.finish_and_clear();
    save(&trainer.checkpoint(), &args.out)?;
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
) -> Result<Summary> {
    let mut gpu = tinyscore_train::cuda::CudaTrainer::new(&trainer)
        .map_err(|e| anyhow::anyhow!("--device cuda: {e}"))?;
    gpu.use_graph(args.cuda_graph);
    pb.println(format!("training on {}", gpu.device_name()));
    let started = Instant::now();
    let mut last = f32::NAN;
    while gpu.steps_done() < args.steps {
        gpu.step().context("CUDA step")?;
        let done = gpu.steps_done();
        if done % args.loss_every == 0 || done == args.steps {
            if let Some(loss) = gpu.read_loss().context("reading the loss")? {
                if !loss.is_finite() {
                    bail!("training diverged by step {done} (loss {loss}); lower --lr");
                }
                last = loss;
            }
            pb.set_position(done);
            pb.set_message(format!("loss {last:.4}"));
        }
        if args.save_every > 0 && done % args.save_every == 0 && done < args.steps {
            gpu.sync_to(&mut trainer).context("downloading the GPU state")?;
            save(&trainer.checkpoint(), &args.out)?;
        }
    }
    gpu.sync_to(&mut trainer).context("downloading the GPU state")?;
    pb.finish_and_clear();
    save(&trainer.checkpoint(), &args.out)?;
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    Ok(Summary {
        steps: trainer.steps_done(),
        loss: last,
        steps_per_sec: (trainer.steps_done() - start_step) as f64 / secs,
    })
}

fn save(ckpt: &Checkpoint, path: &Path) -> Result<()> {
    ckpt.save(path).with_context(|| format!("cannot write checkpoint {}", path.display()))
}

fn mean(v: &[f32]) -> f32 {
    v.iter().sum::<f32>() / v.len().max(1) as f32
}
