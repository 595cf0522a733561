//! Log-likelihood of data under a score model through the probability-flow ODE (Song et al.
//! 2021, "Score-Based Generative Modeling through Stochastic Differential Equations", §4.3 and
//! Appendix D.2; Chen et al. 2018 and Grathwohl et al. 2019 for the instantaneous change of
//! variables).
//!
//! The ODE `dx/dt = v(x, t) = f(t)·x + c(t)·ε̂(x, t)` (the engine's `Diffusion::pf_ode`, the same
//! drift the ODE samplers integrate) carries the marginal p_t to p_T, and along a path
//! `d log p_t(x(t))/dt = −∇·v(x(t), t)` with `∇·v = D·f(t) + c(t)·tr(∂ε̂/∂x)`. So
//!
//! ```text
//! log p_{t_min}(x) = log p_T(x(T)) + ∫_{t_min}^{T} ∇·v(x(t), t) dt,   x(t_min) = x
//! ```
//!
//! with p_T taken as the prior N(0, prior_std²·I) (`Diffusion::prior_std`) and T = 1.
//! [`log_likelihood`] integrates (x, ∫∇·v) together with the classical 4th-order Runge–Kutta
//! method on S steps whose end points are equally spaced in the log signal-to-noise ratio
//! λ(t) = ln(α_t/σ_t) ([`time_grid`]): the ODE's time scale is σ_t²-like, so steps uniform in t
//! would be far too coarse near t_min for VP processes; for VE, λ = −ln σ_t is linear in t and the
//! grid is uniform. For the discrete VP process this is the continuous interpolation of its table
//! (`Diffusion::marginal`), the one the engine's ODE samplers use.
//!
//! The trace `tr(∂ε̂/∂x)` comes from vector-Jacobian products of the trainer's own network code
//! ([`NetDivergence`]): exact, with D products per evaluation (the D basis vectors as D rows of
//! one batched backward pass), or Hutchinson's estimator `tr A ≈ (1/K) Σ_k z_kᵀ A z_k` with K
//! Rademacher probes z_k that stay fixed along a path (Grathwohl et al. 2019), unbiased for the
//! trace (the log-likelihood estimate is unbiased too, being linear in the trace).

use tinyscore_engine::net::Dims;
use tinyscore_engine::rng::{bits4, stream};
use tinyscore_engine::schedule::Diffusion;

use crate::graph_net::{self, Activations, Net};

/// Something that gives ε̂(x, t) and the trace of its Jacobian in x: the network
/// ([`NetDivergence`]) or a closed-form model in tests.
pub trait DivergenceModel {
    /// D.
    fn dim(&self) -> usize;
    /// Writes ε̂(x, t) into `eps` (D) and returns tr(∂ε̂/∂x) at (x, t): exactly when `probes` is
    /// `None`, else Hutchinson's estimate (1/K)·Σ_k z_kᵀ(∂ε̂/∂x)z_k over the K probes, `probes`
    /// being (K, D) row-major.
    fn eps_trace(&mut self, x: &[f32], t: f32, probes: Option<&[f32]>, eps: &mut [f32]) -> f64;

    /// The most points [`DivergenceModel::eps_trace_batch`] takes at once.
    fn batch_capacity(&self) -> usize {
        1
    }

    /// [`DivergenceModel::eps_trace`] of `n` points at one time t: `x` (n, D), `probes` (n, K, D)
    /// (point i's probes at rows i·K ..), `eps` (n, D), `trace` (n). Every point's values are
    /// those [`DivergenceModel::eps_trace`] gives it alone (the default calls it point by point).
    fn eps_trace_batch(
        &mut self,
        x: &[f32],
        t: f32,
        probes: Option<&[f32]>,
        eps: &mut [f32],
        trace: &mut [f64],
    ) {
        let d = self.dim();
        let n = trace.len();
        let k = probes.map_or(0, |p| p.len() / n.max(1));
        for (i, tr) in trace.iter_mut().enumerate() {
            let pr = probes.map(|p| &p[i * k..(i + 1) * k]);
            *tr = self.eps_trace(&x[i * d..(i + 1) * d], t, pr, &mut eps[i * d..(i + 1) * d]);
        }
    }
}

/// The trainer's ScoreNet (flat parameters in `Dims::params()` order) as a [`DivergenceModel`],
/// with the buffers of one batched forward and input-backward pass: `rows` cotangent rows per
/// point (D for the exact trace, K probes for Hutchinson's), for up to `points` points at once.
#[derive(Clone, Debug)]
pub struct NetDivergence<'p> {
    net: Net,
    params: &'p [f32],
    act: Activations,
    /// Cotangent rows per point.
    rows: usize,
    /// Points per batched pass.
    points: usize,
    /// (points · rows, D) the vector-Jacobian products.
    vjp: Vec<f32>,
}

impl<'p> NetDivergence<'p> {
    /// A network of `dims` with `params`, able to evaluate `rows` ≥ 1 rows at once: D for the
    /// exact trace, K for Hutchinson's estimate with K probes. One point at a time.
    ///
    /// # Errors
    /// If `params` does not have `dims.param_count()` values or `rows` is 0.
    pub fn new(dims: Dims, params: &'p [f32], rows: usize) -> Result<Self, String> {
        Self::batched(dims, params, rows, 1)
    }

    /// [`NetDivergence::new`] for up to `points` ≥ 1 points per
    /// [`DivergenceModel::eps_trace_batch`]: one forward pass of `points` rows, then one
    /// input-backward pass of `points · rows` cotangent rows that reuses each point's forward
    /// values (`graph_net::backward_input_shared`).
    ///
    /// # Errors
    /// As [`NetDivergence::new`], or if `points` is 0.
    pub fn batched(dims: Dims, params: &'p [f32], rows: usize, points: usize) -> Result<Self, String> {
        let net = Net::mlp(&dims);
        if params.len() != net.count {
            return Err(format!("{} parameters given, the network needs {}", params.len(), net.count));
        }
        if rows == 0 || points == 0 {
            return Err("at least one row and one point are needed".into());
        }
        let cap = rows * points;
        Ok(Self {
            act: Activations::new(&net, cap),
            vjp: vec![0.0; cap * dims.dim],
            net,
            params,
            rows,
            points,
        })
    }

    /// The cotangent rows per point (D for the exact trace, K for Hutchinson's).
    pub fn capacity(&self) -> usize {
        self.rows
    }

    /// Points that fit in `budget` network rows with `rows` cotangent rows each (at least 1):
    /// a block size for [`NetDivergence::batched`].
    pub fn points_for(rows: usize, budget: usize) -> usize {
        (budget / rows.max(1)).max(1)
    }
}

impl DivergenceModel for NetDivergence<'_> {
    fn dim(&self) -> usize {
        self.net.input().len()
    }

    /// # Panics
    /// If the exact trace is asked with D above the capacity, or more probes than the capacity.
    fn batch_capacity(&self) -> usize {
        self.points
    }

    /// One point: the forward pass repeated on every cotangent row, then one batched
    /// input-backward pass (the reference for [`DivergenceModel::eps_trace_batch`]).
    fn eps_trace(&mut self, x: &[f32], t: f32, probes: Option<&[f32]>, eps: &mut [f32]) -> f64 {
        let d = self.net.input().len();
        let rows = probes.map_or(d, |p| p.len() / d);
        assert!(rows >= 1 && rows <= self.act.cap, "eps_trace: {rows} rows, capacity {}", self.act.cap);
        let act = &mut self.act;
        for r in 0..rows {
            act.x[r * d..(r + 1) * d].copy_from_slice(&x[..d]);
            act.t[r] = t;
        }
        graph_net::forward(&self.net, self.params, act, rows);
        eps[..d].copy_from_slice(&act.out[..d]);
        match probes {
            None => {
                // Row k's cotangent is the basis vector e_k: its VJP is row k of the Jacobian.
                act.d_out[..rows * d].fill(0.0);
                for k in 0..d {
                    act.d_out[k * d + k] = 1.0;
                }
            }
            Some(p) => act.d_out[..rows * d].copy_from_slice(&p[..rows * d]),
        }
        graph_net::backward_input(&self.net, self.params, act, &mut self.vjp, rows);
        trace_of(&self.vjp[..rows * d], probes.map(|p| &p[..rows * d]), d)
    }

    /// # Panics
    /// If more points than [`NetDivergence::batched`]'s `points` are given, or probes of another
    /// count than its `rows` (D for the exact trace).
    fn eps_trace_batch(
        &mut self,
        x: &[f32],
        t: f32,
        probes: Option<&[f32]>,
        eps: &mut [f32],
        trace: &mut [f64],
    ) {
        let d = self.net.input().len();
        let n = trace.len();
        let rows = probes.map_or(d, |p| p.len() / (n * d).max(1));
        assert!(n <= self.points, "eps_trace_batch: {n} points, capacity {}", self.points);
        assert!(rows == self.rows, "eps_trace_batch: {rows} rows per point, built for {}", self.rows);
        let act = &mut self.act;
        act.x[..n * d].copy_from_slice(&x[..n * d]);
        act.t[..n].fill(t);
        graph_net::forward(&self.net, self.params, act, n);
        eps[..n * d].copy_from_slice(&act.out[..n * d]);
        let m = rows * d;
        match probes {
            None => {
                act.d_out[..n * m].fill(0.0);
                for i in 0..n {
                    for k in 0..d {
                        act.d_out[i * m + k * d + k] = 1.0;
                    }
                }
            }
            Some(p) => act.d_out[..n * m].copy_from_slice(&p[..n * m]),
        }
        graph_net::backward_input_shared(&self.net, self.params, act, &mut self.vjp, n, rows);
        for (i, tr) in trace.iter_mut().enumerate() {
            *tr = trace_of(&self.vjp[i * m..(i + 1) * m], probes.map(|p| &p[i * m..(i + 1) * m]), d);
        }
    }
}

/// The trace from one point's vector-Jacobian products `vjp` (rows, D): the diagonal's sum for
/// the exact trace (row k is row k of the Jacobian), else the mean of z_kᵀ·vjp_k over the probes.
fn trace_of(vjp: &[f32], probes: Option<&[f32]>, d: usize) -> f64 {
    match probes {
        None => (0..d).map(|k| vjp[k * d + k] as f64).sum(),
        Some(p) => {
            let s: f64 = p.iter().zip(vjp).map(|(&z, &g)| z as f64 * g as f64).sum();
            s / (p.len() / d) as f64
        }
    }
}

/// K Rademacher probes (K, D) of data point `point`: element e of the flattened probes is
/// ±1 from bit 0 of word `e mod 4` of `bits4(seed, e/4, point, 0, stream::HUTCHINSON)`.
pub fn rademacher_probes(seed: u64, point: u32, k: usize, d: usize) -> Vec<f32> {
    (0..k * d)
        .map(|e| {
            let w = bits4(seed, (e / 4) as u32, point, 0, stream::HUTCHINSON)[e % 4];
            if w & 1 == 0 {
                1.0
            } else {
                -1.0
            }
        })
        .collect()
}

/// λ(t) = ln α_t − ln σ_t.
fn log_snr(diff: &Diffusion, t: f64) -> f64 {
    let (a, s) = diff.marginal(t as f32);
    (a as f64).ln() - (s as f64).ln()
}

/// The S + 1 times t_min = t_0 < … < t_S = 1 of the integration, equally spaced in λ(t) =
/// ln(α_t/σ_t) (found by bisection; λ decreases in t). `steps` ≥ 1.
pub fn time_grid(diff: &Diffusion, steps: u32) -> Vec<f64> {
    let steps = steps.max(1);
    let (t0, t1) = (diff.t_min() as f64, 1.0f64);
    let (l0, l1) = (log_snr(diff, t0), log_snr(diff, t1));
    let mut grid = Vec::with_capacity(steps as usize + 1);
    grid.push(t0);
    for k in 1..steps {
        let want = l0 + (l1 - l0) * k as f64 / steps as f64;
        let (mut lo, mut hi) = (t0, t1);
        for _ in 0..60 {
            let mid = 0.5 * (lo + hi);
            if log_snr(diff, mid) > want {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        // Keep the grid strictly increasing even where f32 rounding makes λ flat.
        let prev = *grid.last().unwrap_or(&t0);
        grid.push((0.5 * (lo + hi)).max(prev));
    }
    grid.push(t1);
    grid
}

/// One path's result, in the model's normalised units.
#[derive(Clone, Debug, PartialEq)]
pub struct PathLogLik {
    /// log p_{t_min}(x) in nats (the whole vector, not per dimension).
    pub log_p: f64,
    /// The prior's log-density at the path's end x(1).
    pub log_prior: f64,
    /// ∫ ∇·v dt along the path.
    pub divergence: f64,
    /// The path's end x(1).
    pub end: Vec<f64>,
}

/// The log-density log p_{t_min}(x) (nats, normalised units) of `x` (D values) under `model`
/// and the process `diff`: RK4 on the probability-flow ODE over `grid` ([`time_grid`]), with the
/// trace exact (`probes` = `None`) or estimated with fixed probes (K, D). Non-finite values
/// propagate (the caller reports them). [`log_likelihoods`] of one point.
pub fn log_likelihood<M: DivergenceModel + ?Sized>(
    model: &mut M,
    diff: &Diffusion,
    grid: &[f64],
    x: &[f32],
    probes: Option<&[f32]>,
) -> PathLogLik {
    let d = model.dim();
    let mut r = log_likelihoods(model, diff, grid, &x[..d], probes);
    r.pop().expect("one point")
}

/// [`log_likelihood`] of every point of `x` (n, D), `probes` (n, K, D) giving point i its own K
/// probes, integrated in lockstep in blocks of `model.batch_capacity()` points: all paths share
/// the time grid, so each RK4 stage is one [`DivergenceModel::eps_trace_batch`] of the block.
/// Point i's result is the one [`log_likelihood`] gives it alone (same operations, same order),
/// whatever the block size.
pub fn log_likelihoods<M: DivergenceModel + ?Sized>(
    model: &mut M,
    diff: &Diffusion,
    grid: &[f64],
    x: &[f32],
    probes: Option<&[f32]>,
) -> Vec<PathLogLik> {
    let d = model.dim();
    let n = x.len() / d;
    let per_point = probes.map_or(0, |p| p.len() / n.max(1));
    let block = model.batch_capacity().max(1);
    let mut out = Vec::with_capacity(n);
    for b0 in (0..n).step_by(block) {
        let b1 = (b0 + block).min(n);
        let pr = probes.map(|p| &p[b0 * per_point..b1 * per_point]);
        out.extend(lockstep(model, diff, grid, &x[b0 * d..b1 * d], pr));
    }
    out
}

/// RK4 of the points of `x` (m, D), m ≤ the model's batch capacity, in lockstep.
fn lockstep<M: DivergenceModel + ?Sized>(
    model: &mut M,
    diff: &Diffusion,
    grid: &[f64],
    x: &[f32],
    probes: Option<&[f32]>,
) -> Vec<PathLogLik> {
    let d = model.dim();
    let m = x.len() / d;
    let mut y: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let mut div = vec![0.0f64; m];
    let (mut xs, mut eps, mut tr) = (vec![0.0f32; m * d], vec![0.0f32; m * d], vec![0.0f64; m]);
    let mut ks = vec![vec![0.0f64; m * d]; 4];
    let mut gs = vec![vec![0.0f64; m]; 4];
    // dx/dt (into k) and d(∫div)/dt (into g) of every point at (y, t).
    let mut eval = |y: &[f64], t: f64, k: &mut [f64], g: &mut [f64]| {
        for (o, &v) in xs.iter_mut().zip(y) {
            *o = v as f32;
        }
        let (f, c) = diff.pf_ode(t as f32);
        model.eps_trace_batch(&xs, t as f32, probes, &mut eps, &mut tr);
        for ((ki, &yi), &e) in k.iter_mut().zip(y).zip(eps.iter()) {
            *ki = f as f64 * yi + c as f64 * e as f64;
        }
        for (gi, &t) in g.iter_mut().zip(&tr) {
            *gi = d as f64 * f as f64 + c as f64 * t;
        }
    };
    let mut tmp = vec![0.0f64; m * d];
    for w in grid.windows(2) {
        let (t, h) = (w[0], w[1] - w[0]);
        let [k1, k2, k3, k4] = &mut ks[..] else { unreachable!("four stages") };
        let [g1, g2, g3, g4] = &mut gs[..] else { unreachable!("four stages") };
        eval(&y, t, k1, g1);
        for ((o, &yi), &k) in tmp.iter_mut().zip(&y).zip(k1.iter()) {
            *o = yi + 0.5 * h * k;
        }
        eval(&tmp, t + 0.5 * h, k2, g2);
        for ((o, &yi), &k) in tmp.iter_mut().zip(&y).zip(k2.iter()) {
            *o = yi + 0.5 * h * k;
        }
        eval(&tmp, t + 0.5 * h, k3, g3);
        for ((o, &yi), &k) in tmp.iter_mut().zip(&y).zip(k3.iter()) {
            *o = yi + h * k;
        }
        eval(&tmp, t + h, k4, g4);
        for (i, yi) in y.iter_mut().enumerate() {
            *yi += h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
        }
        for (i, dv) in div.iter_mut().enumerate() {
            *dv += h / 6.0 * (g1[i] + 2.0 * g2[i] + 2.0 * g3[i] + g4[i]);
        }
    }
    let s = diff.prior_std() as f64;
    y.chunks_exact(d)
        .zip(div)
        .map(|(end, div)| {
            let sq: f64 = end.iter().map(|v| v * v).sum();
            let log_prior = -0.5 * d as f64 * (2.0 * std::f64::consts::PI * s * s).ln() - 0.5 * sq / (s * s);
            PathLogLik { log_p: log_prior + div, log_prior, divergence: div, end: end.to_vec() }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tinyscore_engine::rng::{fill_normal, uniform};
    use tinyscore_engine::schedule::{BetaSchedule, Sde, VpDiscrete};

    /// A 2-D Gaussian mixture with isotropic components (as in the engine's exact-score tests).
    const W: [f64; 2] = [0.3, 0.7];
    const MU: [[f64; 2]; 2] = [[-1.5, 0.0], [1.0, 0.5]];
    const S: f64 = 0.5;

    /// log of the mixture's density at x when every component has variance `v` and mean a·μ.
    fn mixture_log_density(x: &[f64], a: f64, v: f64) -> f64 {
        let l: Vec<f64> = (0..2)
            .map(|k| {
                let d2: f64 = (0..2).map(|i| (x[i] - a * MU[k][i]).powi(2)).sum();
                W[k].ln() - d2 / (2.0 * v) - (2.0 * std::f64::consts::PI * v).ln()
            })
            .collect();
        let m = l[0].max(l[1]);
        m + ((l[0] - m).exp() + (l[1] - m).exp()).ln()
    }

    /// The exact ε = −σ_t ∇log p_t of the noised mixture and the exact trace of its Jacobian
    /// −σ·Δlog p_t = −σ·(−D/v + Σ r_k‖g_k‖² − ‖Σ r_k g_k‖²), g_k = −(x − aμ_k)/v.
    struct Exact {
        diff: Diffusion,
    }

    impl DivergenceModel for Exact {
        fn dim(&self) -> usize {
            2
        }

        fn eps_trace(&mut self, x: &[f32], t: f32, _: Option<&[f32]>, eps: &mut [f32]) -> f64 {
            let (a, s) = self.diff.marginal(t);
            let (a, s) = (a as f64, s as f64);
            let v = a * a * S * S + s * s;
            let g: Vec<[f64; 2]> =
                (0..2).map(|k| [0, 1].map(|i| -(x[i] as f64 - a * MU[k][i]) / v)).collect();
            let l: Vec<f64> =
                (0..2).map(|k| W[k].ln() - 0.5 * v * (g[k][0] * g[k][0] + g[k][1] * g[k][1])).collect();
            let m = l[0].max(l[1]);
            let r: Vec<f64> = l.iter().map(|v| (v - m).exp()).collect();
            let z = r[0] + r[1];
            let r = [r[0] / z, r[1] / z];
            let mean = [0, 1].map(|i| r[0] * g[0][i] + r[1] * g[1][i]);
            let second: f64 = (0..2).map(|k| r[k] * (g[k][0].powi(2) + g[k][1].powi(2))).sum();
            let lap = -2.0 / v + second - (mean[0].powi(2) + mean[1].powi(2));
            for i in 0..2 {
                eps[i] = (-s * mean[i]) as f32;
            }
            -s * lap
        }
    }

    fn processes() -> Vec<(&'static str, Diffusion)> {
        vec![
            ("vp", Diffusion::Discrete(VpDiscrete::new(1000, BetaSchedule::DDPM_LINEAR).unwrap())),
            ("vpsde", Diffusion::sde(Sde::VP, 1e-3).unwrap()),
            ("subvp", Diffusion::sde(Sde::SUB_VP, 1e-3).unwrap()),
            ("ve", Diffusion::sde(Sde::Ve { sigma_min: 0.01, sigma_max: 20.0 }, 1e-5).unwrap()),
        ]
    }

    /// Points drawn from the mixture.
    fn mixture_points(n: u32) -> Vec<[f32; 2]> {
        (0..n)
            .map(|i| {
                let k = usize::from(uniform(bits4(5, 0, i, 0, 99)[0]) >= W[0] as f32);
                let mut z = [0.0f32; 2];
                fill_normal(5, i, 1, 99, &mut z);
                [0, 1].map(|j| (MU[k][j] + S * z[j] as f64) as f32)
            })
            .collect()
    }

    /// With the exact score, the ODE log-likelihood is the mixture's analytic log-density, on
    /// every process (RK4, 100 steps on the λ grid):
    /// * the integration itself: ∫∇·v plus the *exact* log p_1 at the path's end equals the
    ///   exact log p_{t_min} at the start within 1e-3 nats per point;
    /// * as reported (the prior N(0, prior_std²) standing in for p_1, and p_{t_min} for p_0):
    ///   within 0.01 nats for VP, sub-VP and discrete VP, and 0.1 for VE with σ_max = 20 where
    ///   the prior's mismatch, ≈ x(1)·μ/σ_max², dominates (score_sde's likelihoods share it).
    #[test]
    fn exact_score_ode_likelihood_matches_the_analytic_density() {
        let pts = mixture_points(40);
        for (name, diff) in processes() {
            let grid = time_grid(&diff, 100);
            assert_eq!(grid.len(), 101);
            assert!(grid.windows(2).all(|w| w[1] > w[0]), "{name}: grid not increasing");
            let mut model = Exact { diff: diff.clone() };
            let (mut worst_path, mut worst) = (0.0f64, 0.0f64);
            let (a0, s0) = diff.marginal(diff.t_min());
            let (a1, s1) = diff.marginal(1.0);
            let var = |a: f32, s: f32| (a as f64).powi(2) * S * S + (s as f64).powi(2);
            for p in &pts {
                let x = [p[0] as f64, p[1] as f64];
                let r = log_likelihood(&mut model, &diff, &grid, p, None);
                let start = mixture_log_density(&x, a0 as f64, var(a0, s0));
                let end = mixture_log_density(&r.end, a1 as f64, var(a1, s1));
                worst_path = worst_path.max((r.divergence + end - start).abs());
                worst = worst.max((r.log_p - mixture_log_density(&x, 1.0, S * S)).abs());
            }
            assert!(worst_path < 1e-3, "{name}: worst integration error {worst_path}");
            let tol = if diff.is_ve() { 0.1 } else { 0.01 };
            assert!(worst < tol, "{name}: worst |log p error| {worst}");
        }
    }

    /// Coarse grids are measurably worse: the test above can fail.
    #[test]
    fn too_few_steps_are_inaccurate() {
        let diff = Diffusion::sde(Sde::VP, 1e-3).unwrap();
        let pts = mixture_points(10);
        let grid = time_grid(&diff, 2);
        let mut model = Exact { diff: diff.clone() };
        let worst = pts
            .iter()
            .map(|p| {
                let r = log_likelihood(&mut model, &diff, &grid, p, None);
                let (a1, s1) = diff.marginal(1.0);
                let v1 = (a1 as f64).powi(2) * S * S + (s1 as f64).powi(2);
                let start = mixture_log_density(&[p[0] as f64, p[1] as f64], 1.0, S * S);
                (r.divergence + mixture_log_density(&r.end, a1 as f64, v1) - start).abs()
            })
            .fold(0.0f64, f64::max);
        assert!(worst > 1e-2, "2 steps already within 1e-2 ({worst})");
    }

    fn random_net(dims: &Dims, seed: u64) -> Vec<f32> {
        (0..dims.param_count())
            .map(|e| 0.5 * (2.0 * uniform(bits4(seed, e as u32, 0, 0, 98)[0]) - 1.0))
            .collect()
    }

    /// The exact trace from D batched VJPs equals the trace of the Jacobian by central finite
    /// differences of the forward pass; ε̂ equals the batched forward.
    #[test]
    fn network_trace_matches_finite_differences() {
        let dims = Dims { dim: 5, hidden: 16, freqs: 8, blocks: 2 };
        let p = random_net(&dims, 1);
        let mut net = NetDivergence::new(dims, &p, dims.dim).unwrap();
        for (x, t) in [([0.3f32, -0.5, 1.2, 0.0, -1.0], 0.1f32), ([1.0, 1.0, -2.0, 0.5, 0.2], 0.7)] {
            let mut eps = [0.0f32; 5];
            let tr = net.eps_trace(&x, t, None, &mut eps);
            let fwd = crate::train::forward(&dims, &p, &x, &[t]);
            assert_eq!(eps.to_vec(), fwd);
            let h = 1e-2f32;
            let mut fd = 0.0f64;
            for k in 0..5 {
                let (mut up, mut dn) = (x, x);
                up[k] += h;
                dn[k] -= h;
                let (a, b) = (
                    crate::train::forward(&dims, &p, &up, &[t]),
                    crate::train::forward(&dims, &p, &dn, &[t]),
                );
                fd += (a[k] as f64 - b[k] as f64) / (2.0 * h as f64);
            }
            assert!((tr - fd).abs() < 2e-3 * (1.0 + fd.abs()), "trace {tr} vs finite differences {fd}");
            assert!(tr.abs() > 1e-3, "vacuous: zero trace");
        }
    }

    /// Hutchinson's estimate with K = 4000 Rademacher probes agrees with the exact trace within
    /// 4 standard errors (estimated from the probes themselves), and differs from it for K = 1.
    #[test]
    fn hutchinson_agrees_with_the_exact_trace() {
        let dims = Dims { dim: 6, hidden: 16, freqs: 8, blocks: 2 };
        let p = random_net(&dims, 2);
        let x = [0.2f32, -0.4, 0.9, -1.1, 0.5, 0.0];
        let k = 4000;
        let mut net = NetDivergence::new(dims, &p, k).unwrap();
        let mut eps = [0.0f32; 6];
        let exact = net.eps_trace(&x, 0.3, None, &mut eps);
        let probes = rademacher_probes(9, 0, k, 6);
        let est = net.eps_trace(&x, 0.3, Some(&probes), &mut eps);
        // Per-probe values z_kᵀ J z_k, for the standard error.
        let vals: Vec<f64> =
            (0..k).map(|j| net.eps_trace(&x, 0.3, Some(&probes[j * 6..(j + 1) * 6]), &mut eps)).collect();
        let mean = vals.iter().sum::<f64>() / k as f64;
        let sd = (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (k - 1) as f64).sqrt();
        assert!((mean - est).abs() < 1e-6 * (1.0 + est.abs()));
        let se = sd / (k as f64).sqrt();
        assert!(sd > 1e-3, "vacuous: probes all give the same value");
        assert!((est - exact).abs() < 4.0 * se, "Hutchinson {est} vs exact {exact} (se {se})");
        assert!(vals.iter().any(|v| (v - exact).abs() > se), "a single probe is not exact");
    }

    /// With the network, the exact-trace and Hutchinson log-likelihoods of a path agree within
    /// the Hutchinson standard error over points.
    #[test]
    fn ode_likelihood_of_a_network_exact_vs_hutchinson() {
        let dims = Dims { dim: 3, hidden: 16, freqs: 8, blocks: 1 };
        let p = random_net(&dims, 3);
        let diff = Diffusion::sde(Sde::VP, 1e-3).unwrap();
        let grid = time_grid(&diff, 20);
        let x = [0.5f32, -0.3, 0.1];
        let mut exact_net = NetDivergence::new(dims, &p, 3).unwrap();
        let exact = log_likelihood(&mut exact_net, &diff, &grid, &x, None).log_p;
        let k = 64;
        let mut net = NetDivergence::new(dims, &p, k).unwrap();
        let vals: Vec<f64> = (0..16)
            .map(|i| log_likelihood(&mut net, &diff, &grid, &x, Some(&rademacher_probes(4, i, k, 3))).log_p)
            .collect();
        let mean = vals.iter().sum::<f64>() / vals.len() as f64;
        let sd = (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 15.0).sqrt();
        assert!(exact.is_finite() && sd > 0.0);
        let se = sd / (vals.len() as f64).sqrt();
        assert!((mean - exact).abs() < 4.0 * se, "mean {mean} vs exact {exact} (sd {sd})");
    }

    /// A network model seen one point at a time: only [`DivergenceModel::eps_trace`] (forward on
    /// every cotangent row, then `backward_input`), so the default `eps_trace_batch` loops.
    struct OnePoint<'a, 'p>(&'a mut NetDivergence<'p>);

    impl DivergenceModel for OnePoint<'_, '_> {
        fn dim(&self) -> usize {
            self.0.dim()
        }

        fn eps_trace(&mut self, x: &[f32], t: f32, probes: Option<&[f32]>, eps: &mut [f32]) -> f64 {
            self.0.eps_trace(x, t, probes, eps)
        }
    }

    /// The lockstep path (one forward pass per block of points, one input-backward pass of all
    /// their cotangent rows sharing it) gives every point the same bits as integrating it alone
    /// with a forward pass per cotangent row, for the exact trace and Hutchinson's, whatever the
    /// block size.
    #[test]
    fn lockstep_blocks_equal_one_point_at_a_time() {
        let diff = Diffusion::sde(Sde::VP, 1e-3).unwrap();
        let grid = time_grid(&diff, 6);
        for (dims, seed) in [
            (Dims { dim: 2, hidden: 16, freqs: 8, blocks: 2 }, 5),
            (Dims { dim: 5, hidden: 12, freqs: 6, blocks: 1 }, 6),
        ] {
            let d = dims.dim;
            let p = random_net(&dims, seed);
            let n = 7;
            let x: Vec<f32> = (0..n * d).map(|i| ((i as f32) * 0.77).sin() * 1.5).collect();
            for k in [None, Some(3)] {
                let rows = k.unwrap_or(d);
                let probes: Option<Vec<f32>> =
                    k.map(|k| (0..n as u32).flat_map(|i| rademacher_probes(8, i, k, d)).collect());
                let mut single = NetDivergence::new(dims, &p, rows).unwrap();
                let want: Vec<PathLogLik> = (0..n)
                    .map(|i| {
                        let pr = probes.as_ref().map(|v| &v[i * rows * d..(i + 1) * rows * d]);
                        log_likelihood(&mut OnePoint(&mut single), &diff, &grid, &x[i * d..(i + 1) * d], pr)
                    })
                    .collect();
                assert!(want.iter().all(|r| r.log_p.is_finite()));
                assert!(want.windows(2).all(|w| w[0].log_p != w[1].log_p), "vacuous: equal points");
                for block in [1, 3, 7, 16] {
                    let mut net = NetDivergence::batched(dims, &p, rows, block).unwrap();
                    let got = log_likelihoods(&mut net, &diff, &grid, &x, probes.as_deref());
                    assert_eq!(got.len(), n);
                    for (g, w) in got.iter().zip(&want) {
                        assert_eq!(g.log_p.to_bits(), w.log_p.to_bits(), "{dims:?} {k:?} block {block}");
                        assert_eq!(g.end, w.end, "{dims:?} {k:?} block {block}");
                    }
                }
            }
        }
    }
}
