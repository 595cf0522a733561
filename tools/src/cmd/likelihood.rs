//! `tinyscore likelihood`: held-out negative log-likelihood through the probability-flow ODE
//! (`tinyscore_train::likelihood`, `docs/likelihood.md`), in the data's original units.
//!
//! A `.tsm` file's weights are dequantised to f32 and run in the trainer's network code (the code
//! whose vector-Jacobian products give the divergence); a checkpoint's EMA weights (or `--raw`)
//! are used directly. w8a8 files are refused: their integer activations are a different function
//! from the f32 network, and it has no Jacobian to differentiate.

use std::path::Path;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use tinyscore_engine::format::DType;
use tinyscore_engine::net::Dims;
use tinyscore_engine::schedule::Diffusion;
use tinyscore_train::likelihood::{self as lik, rademacher_probes, time_grid, NetDivergence};

use super::{parse_model, progress, read_file};

/// Arguments of `tinyscore likelihood`.
#[derive(Debug, clap::Args)]
pub struct LikelihoodArgs {
    /// Model file (.tsm; weights dequantised to f32) or checkpoint (.safetensors; EMA weights).
    pub model: PathBuf,
    /// Held-out data: a built-in data set (fresh draws, or the held-out 20% of a recording) or a file.
    #[arg(long)]
    pub data: String,
    /// Window length of the `ecg` data set (default 64).
    #[arg(long)]
    pub window: Option<usize>,
    /// Exact divergence: D vector-Jacobian products per evaluation (default for D ≤ 64).
    #[arg(long, conflicts_with = "hutchinson")]
    pub exact: bool,
    /// Hutchinson's divergence estimate with K Rademacher probes (default K = 16 for D > 64).
    #[arg(long, value_name = "K")]
    pub hutchinson: Option<usize>,
    /// RK4 steps, equally spaced in log signal-to-noise ratio.
    #[arg(long, default_value_t = 100)]
    pub steps: u32,
    /// Held-out points (at most, 1..=1000000; a recording's held-out part may be smaller).
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// Seed of the held-out draw and of the Hutchinson probes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Use a checkpoint's raw weights instead of their EMA.
    #[arg(long)]
    pub raw: bool,
}

/// `--exact` is the default up to this D; above it, Hutchinson with [`DEFAULT_PROBES`] probes.
pub const AUTO_EXACT_MAX_DIM: usize = 64;
/// Hutchinson probes when D > [`AUTO_EXACT_MAX_DIM`] and no mode is asked for.
pub const DEFAULT_PROBES: usize = 16;
/// The most RK4 steps accepted.
pub const MAX_STEPS: u32 = 100_000;
/// The most held-out points accepted (--n).
pub const MAX_POINTS: usize = 1_000_000;
/// The most Hutchinson probes accepted (the rows of one batched pass).
pub const MAX_PROBES: usize = 4096;

/// A network ready for the likelihood: sizes, f32 weights, process, normalisation.
#[derive(Clone, Debug)]
pub struct FloatModel {
    /// The network's sizes.
    pub dims: Dims,
    /// Flat f32 weights in `Dims::params()` order.
    pub params: Vec<f32>,
    /// The diffusion process.
    pub diffusion: Diffusion,
    /// Per-dimension standard deviation of the normalisation (x̃ = (x − mean)/std).
    pub std: Vec<f32>,
    /// Per-dimension mean of the normalisation.
    pub mean: Vec<f32>,
    /// Where the weights came from, for the report.
    pub source: String,
}

/// Loads a `.safetensors` checkpoint (EMA weights unless `raw`) or a `.tsm` file (dequantised).
pub fn load_float_model(path: &Path, raw: bool) -> Result<FloatModel> {
    let is_ckpt = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    if is_ckpt {
        let ckpt = super::convert::load_checkpoint(path)?;
        let diffusion = ckpt
            .config
            .diffusion()
            .map_err(|e| anyhow::anyhow!("{}: invalid diffusion process: {e}", path.display()))?;
        let dims = ckpt.network.mlp().with_context(|| {
            format!(
                "{}: a conv network ({}); likelihood supports ScoreNet v1 (mlp) networks",
                path.display(),
                ckpt.network.describe()
            )
        })?;
        return Ok(FloatModel {
            dims,
            params: if raw { ckpt.params.clone() } else { ckpt.ema.clone() },
            diffusion,
            std: ckpt.norm.std.clone(),
            mean: ckpt.norm.mean.clone(),
            source: format!("{} weights of checkpoint step {}", if raw { "raw" } else { "EMA" }, ckpt.step),
        });
    }
    if raw {
        bail!("--raw applies to checkpoints (.safetensors), not to {}", path.display());
    }
    let bytes = read_file(path)?;
    let model = parse_model(path, &bytes)?;
    if model.is_int8() {
        bail!(
            "{}: a w8a8 model runs integer activations, which have no Jacobian; measure the f32, f16 or w8 file or the checkpoint",
            path.display()
        );
    }
    if model.graph().mlp_dims().is_none() {
        bail!("{}: a conv network; likelihood supports ScoreNet v1 (mlp) networks", path.display());
    }
    let dims = model.dims();
    let mut params = Vec::with_capacity(dims.param_count());
    for (role, rows, cols) in dims.params() {
        let t = model.tensor(role);
        if !matches!(t.dtype, DType::F32 | DType::F16 | DType::I8) {
            bail!(
                "{}: tensor {} has dtype {}, not a weight dtype",
                path.display(),
                role.name(),
                t.dtype.name()
            );
        }
        params.extend((0..rows * cols).map(|i| t.get(i)));
    }
    let diffusion = model
        .process()
        .diffusion()
        .map_err(|e| anyhow::anyhow!("{}: invalid diffusion process: {e}", path.display()))?;
    let norm = |role| {
        let t = model.tensor(role);
        (0..dims.dim).map(|i| t.get(i)).collect::<Vec<f32>>()
    };
    Ok(FloatModel {
        dims,
        params,
        diffusion,
        mean: norm(tinyscore_engine::format::Role::NormMean),
        std: norm(tinyscore_engine::format::Role::NormStd),
        source: "dequantised .tsm weights".into(),
    })
}

/// How the divergence is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceMode {
    /// D vector-Jacobian products per evaluation.
    Exact,
    /// Hutchinson's estimator with K Rademacher probes.
    Hutchinson(usize),
}

/// The held-out NLL report.
#[derive(Clone, Debug)]
pub struct Report {
    /// Points measured.
    pub n: usize,
    /// D.
    pub dim: usize,
    /// Mean NLL per dimension in nats, data units.
    pub nats_per_dim: f64,
    /// Its standard error over points.
    pub stderr: f64,
    /// −Σ ln std_d, the normalisation's contribution to every log-density.
    pub log_det: f64,
    /// The trace mode used.
    pub mode: TraceMode,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l2 = std::f64::consts::LN_2;
        write!(
            f,
            "NLL {:.4} ± {:.4} nats/dim ({:.4} ± {:.4} bits/dim) over {} held-out points, D = {}",
            self.nats_per_dim,
            self.stderr,
            self.nats_per_dim / l2,
            self.stderr / l2,
            self.n,
            self.dim
        )
    }
}

/// Runs `tinyscore likelihood`.
pub fn run_likelihood(args: &LikelihoodArgs) -> Result<()> {
    if args.steps == 0 || args.steps > MAX_STEPS {
        bail!("--steps must be in 1..={MAX_STEPS}, got {}", args.steps);
    }
    if args.n == 0 || args.n > MAX_POINTS {
        bail!("--n must be in 1..={MAX_POINTS}, got {}", args.n);
    }
    if let Some(k) = args.hutchinson {
        if k == 0 || k > MAX_PROBES {
            bail!("--hutchinson must be in 1..={MAX_PROBES}, got {k}");
        }
    }
    let model = load_float_model(&args.model, args.raw)?;
    let spec = super::data::with_window(&args.data, args.window)?;
    let held = super::data::heldout_set(&spec, args.n, args.seed)
        .with_context(|| format!("{spec}: cannot load held-out data"))?;
    let d = model.dims.dim;
    if held.dim != d {
        bail!("{spec}: data has {} values per point, the model needs {d}", held.dim);
    }
    let n = held.len().min(args.n);
    if n == 0 {
        bail!("{spec}: no held-out points");
    }
    let mode = match (args.exact, args.hutchinson) {
        (true, _) => {
            if d > AUTO_EXACT_MAX_DIM {
                eprintln!(
                    "warning: --exact with D = {d} takes {d} vector-Jacobian products per evaluation; --hutchinson K is about D/K times faster"
                );
            }
            TraceMode::Exact
        }
        (false, Some(k)) => TraceMode::Hutchinson(k),
        (false, None) if d <= AUTO_EXACT_MAX_DIM => TraceMode::Exact,
        (false, None) => TraceMode::Hutchinson(DEFAULT_PROBES),
    };
    let mut x = held.values[..n * d].to_vec();
    for row in x.chunks_exact_mut(d) {
        for ((v, &m), &s) in row.iter_mut().zip(&model.mean).zip(&model.std) {
            *v = (*v - m) / s;
        }
    }
    let pb = progress(n as u64, "likelihood {bar:30} {pos}/{len} points {per_sec} eta {eta}");
    let logp = log_likelihoods(&model, &x, args.steps, mode, args.seed, &pb)?;
    pb.finish_and_clear();
    let log_det: f64 = -model.std.iter().map(|&s| (s as f64).ln()).sum::<f64>();
    let per_dim: Vec<f64> = logp.iter().map(|l| -(l + log_det) / d as f64).collect();
    let mean = per_dim.iter().sum::<f64>() / n as f64;
    let var =
        if n > 1 { per_dim.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64 } else { 0.0 };
    let report = Report { n, dim: d, nats_per_dim: mean, stderr: (var / n as f64).sqrt(), log_det, mode };
    println!("{report}");
    let how = match mode {
        TraceMode::Exact => "exact trace".to_string(),
        TraceMode::Hutchinson(k) => format!("Hutchinson trace, {k} Rademacher probes"),
    };
    eprintln!(
        "  {spec}, data units (normalisation log-det {:.4} nats included); {how}; {} RK4 steps from t = {} to 1; prior N(0, {}²); {}",
        log_det,
        args.steps,
        model.diffusion.t_min(),
        model.diffusion.prior_std(),
        model.source
    );
    Ok(())
}

/// Network rows (points × cotangent rows per point) of one lockstep block: large enough that the
/// batched passes' GEMMs are efficient, small enough that a block's buffers stay in cache.
pub const BLOCK_ROWS: usize = 512;

/// log p̃(x̃_i) (nats, normalised units) of every normalised point (n, D), on all cores, in
/// lockstep blocks of points (`tinyscore_train::likelihood::log_likelihoods`). Point i's result
/// depends only on i (its probes come from (seed, i)), whatever the thread count and block size.
pub fn log_likelihoods(
    model: &FloatModel,
    x: &[f32],
    steps: u32,
    mode: TraceMode,
    seed: u64,
    pb: &indicatif::ProgressBar,
) -> Result<Vec<f64>> {
    let d = model.dims.dim;
    let n = x.len() / d;
    let grid = time_grid(&model.diffusion, steps);
    let rows = match mode {
        TraceMode::Exact => d,
        TraceMode::Hutchinson(k) => k,
    };
    let points = NetDivergence::points_for(rows, BLOCK_ROWS);
    let mut out = vec![0.0f64; n];
    let threads = std::thread::available_parallelism().map(|t| t.get()).unwrap_or(1).min(n.max(1));
    // Blocks are dealt to the threads in turn as they finish (the load is shared even when a
    // thread is slowed down); each block's results go to its own points.
    let blocks: Vec<(usize, &mut [f64])> = out.chunks_mut(points).enumerate().collect();
    let queue = std::sync::Mutex::new(blocks.into_iter());
    std::thread::scope(|scope| -> Result<()> {
        let mut handles = Vec::new();
        for _ in 0..threads {
            let (grid, pb, queue) = (&grid, pb.clone(), &queue);
            handles.push(scope.spawn(move || -> Result<()> {
                let mut net = NetDivergence::batched(model.dims, &model.params, rows, points)
                    .map_err(anyhow::Error::msg)?;
                loop {
                    let next = queue.lock().map_err(|_| anyhow::anyhow!("a worker thread panicked"))?.next();
                    let Some((b, part)) = next else { break };
                    let first = b * points;
                    let m = part.len();
                    let probes = match mode {
                        TraceMode::Exact => None,
                        TraceMode::Hutchinson(k) => Some(
                            (first..first + m)
                                .flat_map(|i| rademacher_probes(seed, i as u32, k, d))
                                .collect::<Vec<f32>>(),
                        ),
                    };
                    let rs = lik::log_likelihoods(
                        &mut net,
                        &model.diffusion,
                        grid,
                        &x[first * d..(first + m) * d],
                        probes.as_deref(),
                    );
                    for (j, (o, r)) in part.iter_mut().zip(rs).enumerate() {
                        if !r.log_p.is_finite() {
                            bail!(
                                "point {}: the ODE gave a non-finite log-likelihood (try more --steps)",
                                first + j
                            );
                        }
                        *o = r.log_p;
                    }
                    pb.inc(m as u64);
                }
                Ok(())
            }));
        }
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("a worker thread panicked"))??;
        }
        Ok(())
    })?;
    Ok(out)
}
