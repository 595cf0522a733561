//! Trains a ScoreNet on a built-in data set for a fixed wall-clock budget, then draws samples
//! with DDPM ancestral sampling (Ho et al. 2020, Algorithm 2, σ² = β) through the trainer's own
//! forward pass and reports the sliced Wasserstein distance to held-out data.
//!
//! ```text
//! cargo run --release -p tinyscore-train --example train_moons -- [DATA] [SECONDS] [BATCH] [OUT.csv]
//! ```

use std::time::Instant;

use tinyscore_engine::rng::{fill_normal, stream};
use tinyscore_engine::schedule::VpDiscrete;
use tinyscore_train::data;
use tinyscore_train::metrics::sliced_wasserstein;
use tinyscore_train::train::{forward, TrainConfig, Trainer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let spec = args.get(1).map(String::as_str).unwrap_or("moons");
    let seconds: f64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(60.0);
    let mut cfg = TrainConfig::default();
    if let Some(b) = args.get(3) {
        cfg.batch = b.parse()?;
    }
    let all = data::load(spec, 20_000, 0)?;
    let (train, held) = all.split_holdout(0.2);
    let mut tr = Trainer::new(cfg.clone(), &train, spec)?;
    println!(
        "{spec}: {} train / {} held-out, {}, batch {}, {} threads",
        train.len(),
        held.len(),
        tr.network().describe(),
        cfg.batch,
        rayon::current_num_threads()
    );

    let start = Instant::now();
    let mut window = Vec::new();
    let mut last_report = 0.0;
    while start.elapsed().as_secs_f64() < seconds {
        window.push(tr.step());
        let t = start.elapsed().as_secs_f64();
        if t - last_report >= 10.0 {
            let mean = window.iter().sum::<f32>() / window.len() as f32;
            println!(
                "{:6.1} s  step {:6}  {:7.1} steps/s  loss {:.4}",
                t,
                tr.steps_done(),
                tr.steps_done() as f64 / t,
                mean
            );
            window.clear();
            last_report = t;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "trained {} steps in {secs:.1} s: {:.1} steps/s",
        tr.steps_done(),
        tr.steps_done() as f64 / secs
    );

    // DDPM ancestral sampling with the EMA weights, in normalised units.
    let dims = tr.network().mlp().expect("an mlp run");
    let sched = VpDiscrete::new(cfg.diffusion_steps, cfg.schedule)?;
    let n = held.len().min(4000);
    let d = dims.dim;
    let mut x = vec![0.0f32; n * d];
    for i in 0..n {
        fill_normal(1, i as u32, 0, stream::INIT, &mut x[i * d..(i + 1) * d]);
    }
    let mut z = vec![0.0f32; d];
    let t0 = Instant::now();
    for step in (1..=sched.steps() as usize).rev() {
        let t = vec![sched.time(step); n];
        let eps = forward(&dims, tr.ema_params(), &x, &t);
        let (ab, ab_prev) = (sched.alpha_bar(step), sched.alpha_bar(step - 1));
        let alpha = ab / ab_prev;
        let beta = 1.0 - alpha;
        for i in 0..n {
            fill_normal(1, i as u32, step as u32, stream::STEP, &mut z);
            let row = i * d..(i + 1) * d;
            for ((xj, &ej), &zk) in x[row.clone()].iter_mut().zip(&eps[row]).zip(&z) {
                let mean = (*xj - beta / sched.sigma(step) * ej) / alpha.sqrt();
                *xj = if step > 1 { mean + beta.sqrt() * zk } else { mean };
            }
        }
    }
    tr.normalization().invert(&mut x);
    let samples = data::Dataset::from_rows(d, x, "samples");
    let (h1, h2) = held.split_holdout(0.5);
    println!(
        "sampled {n} in {:.1} s; SWD(samples, held-out) = {:.4}, floor SWD(held-out halves) = {:.4}, SWD(held-out, N(mean, std)) = {:.4}",
        t0.elapsed().as_secs_f64(),
        sliced_wasserstein(&samples, &held, 200, 0),
        sliced_wasserstein(&h1, &h2, 200, 0),
        {
            let norm = data::Normalization::fit(&held);
            let mut g = vec![0.0f32; held.len() * d];
            for i in 0..held.len() {
                fill_normal(2, i as u32, 0, 0, &mut g[i * d..(i + 1) * d]);
            }
            norm.invert(&mut g);
            sliced_wasserstein(&held, &data::Dataset::from_rows(d, g, "gauss"), 200, 0)
        }
    );
    if let Some(out) = args.get(4) {
        let mut f = std::io::BufWriter::new(std::fs::File::create(out)?);
        data::write_csv(&mut f, d, &samples.values)?;
    }
    Ok(())
}
