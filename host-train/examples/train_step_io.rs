//! The CPU trainer's side of `bench/train_vs_pytorch.py`: ScoreNet v1 (H = 128, B = 3, F = 32)
//! on moons (20 000 points, seed 0), batch 256, DSM loss, Adam, EMA and gradient clipping — the
//! defaults of `tinyscore train` (`TrainConfig::default()`).
//!
//! ```text
//! cargo run --release -p tinyscore-train --example train_step_io -- dump STEPS OUT.bin
//! cargo run --release -p tinyscore-train --example train_step_io -- time STEPS
//! ```
//!
//! `dump` writes, as little-endian f32 after a header of u32 words (magic 0x74735031, D, P,
//! batch, STEPS): the initial parameters (P), then per step the trainer's inputs x_t (batch, D),
//! ε (batch, D) and t (batch) — `tinyscore_kernels::cpu::dsm_inputs` of that step, the very
//! draw the step makes — and the loss it returns; then the parameters and EMA after the last
//! step (P each), and the config's lr, warm-up, clip and EMA decay. A PyTorch step fed the same
//! inputs must give the same losses. `time` runs 20 warm-up steps and then STEPS timed steps and
//! prints `steps/s <value>`.

use std::io::Write;
use std::time::Instant;

use tinyscore_kernels::cpu::{dsm_inputs, DsmDraw};
use tinyscore_train::data::{self, Normalization};
use tinyscore_train::train::{TrainConfig, Trainer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: train_step_io dump STEPS OUT.bin | time STEPS";
    let mode = args.get(1).ok_or(usage)?.as_str();
    let steps: u64 = args.get(2).ok_or(usage)?.parse()?;
    let cfg = TrainConfig::default();
    let all = data::load("moons", 20_000, 0)?;
    let mut tr = Trainer::new(cfg.clone(), &all, "moons")?;
    match mode {
        "time" => {
            for _ in 0..20 {
                tr.step();
            }
            let start = Instant::now();
            for _ in 0..steps {
                tr.step();
            }
            println!("steps/s {:.3}", steps as f64 / start.elapsed().as_secs_f64());
        }
        "dump" => {
            let out = args.get(3).ok_or(usage)?;
            let d = all.dim;
            let norm: Normalization = tr.normalization().clone();
            let mut x = all.values.clone();
            norm.apply(&mut x);
            let diff = cfg.diffusion()?;
            let p = tr.params().len();
            let mut f = std::io::BufWriter::new(std::fs::File::create(out)?);
            for w in [0x7473_5031u32, d as u32, p as u32, cfg.batch as u32, steps as u32] {
                f.write_all(&w.to_le_bytes())?;
            }
            let put = |f: &mut dyn Write, v: &[f32]| -> std::io::Result<()> {
                v.iter().try_for_each(|x| f.write_all(&x.to_le_bytes()))
            };
            put(&mut f, tr.params())?;
            let b = cfg.batch;
            let (mut xt, mut eps, mut t, mut phi) =
                (vec![0.0; b * d], vec![0.0; b * d], vec![0.0; b], vec![0.0; b * cfg.freqs]);
            for s in 0..steps {
                let draw = DsmDraw { seed: cfg.seed, step: s, batch: b, first: 0 };
                dsm_inputs(
                    &x,
                    d,
                    &diff,
                    draw,
                    cfg.time_draw,
                    b,
                    cfg.freqs,
                    &mut xt,
                    &mut eps,
                    &mut t,
                    &mut phi,
                );
                let loss = tr.step();
                put(&mut f, &xt)?;
                put(&mut f, &eps)?;
                put(&mut f, &t)?;
                put(&mut f, &[loss])?;
            }
            put(&mut f, tr.params())?;
            put(&mut f, tr.ema_params())?;
            put(&mut f, &[cfg.lr, cfg.warmup as f32, cfg.grad_clip, cfg.ema])?;
            f.flush()?;
        }
        _ => return Err(usage.into()),
    }
    Ok(())
}
