//! `tinyscore eval`: sliced Wasserstein distance (DESIGN.md §8) between samples and held-out data,
//! printed beside its floor (the distance between two halves of the held-out data, the best a
//! perfect model could do at this sample size) and a Gaussian fitted to the data (a weak model).

use anyhow::{bail, Result};
use std::path::PathBuf;
use tinyscore_train::data::Dataset;
use tinyscore_train::metrics::sliced_wasserstein;

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
    /// Random projections of the sliced distance (1..=65536).
    #[arg(long, default_value_t = 256)]
    pub projections: usize,
    /// Seed of the projections and of the held-out draw.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// The most projections of the sliced distance (one f64 per projection, and the time grows with
/// them; the distance settles long before).
pub const MAX_PROJECTIONS: usize = 65_536;

/// The three distances `eval` reports.
#[derive(Clone, Copy, Debug)]
pub struct Report {
    /// Samples vs held-out half A.
    pub distance: f64,
    /// Held-out half B vs held-out half A.
    pub floor: f64,
    /// A Gaussian fitted to half B vs half A.
    pub gaussian: f64,
    /// Points compared on each side.
    pub m: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sliced Wasserstein distance {:.4}  (floor {:.4}, ratio {:.2}x; Gaussian fit {:.4}; {} points each)",
            self.distance,
            self.floor,
            self.distance / self.floor,
            self.gaussian,
            self.m
        )
    }
}

/// Runs `tinyscore eval`.
pub fn run_eval(args: &EvalArgs) -> Result<()> {
    let samples = super::data::load_file(&args.samples)?;
    let spec = super::data::with_window(&args.data, args.window)?;
    let report = evaluate(&samples, &spec, args.projections, args.seed)?;
    println!("{report}");
    Ok(())
}

/// Compares `samples` with held-out data of `spec`.
pub fn evaluate(samples: &Dataset, spec: &str, projections: usize, seed: u64) -> Result<Report> {
    if projections == 0 || projections > MAX_PROJECTIONS {
        bail!("--projections must be in 1..={MAX_PROJECTIONS}, got {projections}");
    }
    let m = samples.len();
    let held = super::data::heldout_set(spec, 2 * m, seed)?;
    if held.dim != samples.dim {
        bail!("samples have {} dimensions but data '{}' has {}", samples.dim, spec, held.dim);
    }
    let m = m.min(held.len() / 2);
    if m < 2 {
        bail!("too few points to compare ({} samples, {} held-out)", samples.len(), held.len());
    }
    let take = |d: &Dataset, from: usize| {
        Dataset::from_rows(d.dim, d.values[from * d.dim..(from + m) * d.dim].to_vec(), &d.source)
    };
    let a = take(&held, 0);
    let b = take(&held, m);
    let s = take(samples, 0);
    let g = gaussian_fit(&b, m, seed);
    Ok(Report {
        distance: sliced_wasserstein(&s, &a, projections, seed),
        floor: sliced_wasserstein(&b, &a, projections, seed),
        gaussian: sliced_wasserstein(&g, &a, projections, seed),
        m,
    })
}

/// `m` draws from the Gaussian with the mean and full covariance of `d` (Cholesky factor).
pub fn gaussian_fit(d: &Dataset, m: usize, seed: u64) -> Dataset {
    let k = d.dim;
    let n = d.len() as f64;
    let mut mean = vec![0.0f64; k];
    for i in 0..d.len() {
        for (mu, v) in mean.iter_mut().zip(d.row(i)) {
            *mu += *v as f64 / n;
        }
    }
    let mut cov = vec![0.0f64; k * k];
    for i in 0..d.len() {
        let r = d.row(i);
        for a in 0..k {
            for b in 0..=a {
                cov[a * k + b] += (r[a] as f64 - mean[a]) * (r[b] as f64 - mean[b]) / n;
            }
        }
    }
    // Cholesky with a small ridge so degenerate dimensions (constant pixels) stay finite.
    let mut l = vec![0.0f64; k * k];
    for a in 0..k {
        for b in 0..=a {
            let mut s = cov[a * k + b] - (0..b).map(|j| l[a * k + j] * l[b * k + j]).sum::<f64>();
            if a == b {
                s = (s + 1e-9).max(1e-12).sqrt();
                l[a * k + a] = s;
            } else {
                l[a * k + b] = s / l[b * k + b];
            }
        }
    }
    let mut values = Vec::with_capacity(m * k);
    let mut z = vec![0.0f32; k];
    for i in 0..m {
        tinyscore_engine::rng::fill_normal(
            seed,
            i as u32,
            0,
            tinyscore_engine::rng::stream::GAUSSIAN_FIT,
            &mut z,
        );
        for a in 0..k {
            let v = mean[a] + (0..=a).map(|b| l[a * k + b] * z[b] as f64).sum::<f64>();
            values.push(v as f32);
        }
    }
    Dataset::from_rows(k, values, "gaussian fit")
}
