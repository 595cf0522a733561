//! Denoising and imputation of signals with a score model, on the device.
//!
//! A noisy window y = x + σ·n (σ known, in data units) is first normalised like the training
//! data, so its noise level becomes σ̃ = σ/s with s the root-mean-square of the per-dimension
//! standard deviations stored in the file. The process time t* whose noise-to-signal ratio
//! σ_t/α_t equals σ̃ makes α_{t*}·y a sample of the forward process at t* (Kadkhodaie &
//! Simoncelli 2021; Meng et al. 2022), and then:
//!
//! * **Tweedie** (one evaluation; Efron 2011, Robbins 1956): x̂ = E[x | y] = (x_t − σ_t ε̂(x_t, t*))/α_t
//!   with x_t = α_{t*}·y: the minimum-mean-square-error estimate under the learned prior.
//! * **SDEdit** (Meng et al. 2022, "SDEdit", Algorithm 1): run the reverse process from t* to the
//!   end with the ancestral step below, S steps, and average K independent draws (a Monte-Carlo
//!   estimate of the posterior mean that keeps the prior's fine structure in each draw).
//! * **Imputation** (Song et al. 2021, Appendix I.2, the replacement method): run the reverse
//!   process from t = 1; after each step, overwrite the known entries with the forward-noised
//!   observation α_s·y + σ_s·z, so the missing entries are drawn from p(x_missing | x_known);
//!   K draws are averaged. Optionally each step is repeated U times, diffusing back from s to t
//!   in between (RePaint, Lugmayr et al. 2022, Algorithm 1), which lets the generated part
//!   harmonise with the known part.
//! * **Imputation from a fill** ([`ImputeStart::Fill`]): the same replacement steps, started not
//!   from the prior at t = 1 but from an initial fill of the missing entries (straight lines,
//!   [`linear_fill`], or the caller's own) diffused to an intermediate t_start,
//!   x = α_{t_start}·fill + σ_{t_start}·z (SDEdit's start, Meng et al. 2022, applied to
//!   inpainting); optionally several rounds, each starting from the previous round's average. It
//!   avoids the process's high-noise part and costs t_start of the evaluations for the same grid.
//!
//! The reverse step between any two times s < t is the posterior q(x_s | x_t, x̂₀) of the Gaussian
//! process with marginals (α, σ) (Kingma et al. 2021, "Variational Diffusion Models", eq. 29–32):
//!
//! ```text
//! α_{t|s} = α_t/α_s,  σ²_{t|s} = σ_t² − α_{t|s}²·σ_s²,  x̂₀ = (x_t − σ_t ε̂)/α_t
//! x_s = (α_{t|s}·σ_s²/σ_t²)·x_t + (α_s·σ²_{t|s}/σ_t²)·x̂₀ + (σ_{t|s}·σ_s/σ_t)·z
//! ```
//!
//! which is DDPM's posterior step (β̃ variance) on the discrete process and holds for every linear
//! SDE (VP, sub-VP, VE). At s = 0 (α = 1, σ = 0) it returns x̂₀.
//!
//! Unknown σ: [`estimate_sigma`] takes the median absolute deviation of the first difference,
//! σ̂ = 1.4826·MAD(Δy)/√2 (Donoho & Johnstone 1994 use the finest wavelet coefficients; the first
//! difference is the Haar detail up to a factor √2), which the signal's slow parts barely move.

use crate::net::ScoreNet;
use crate::rng::{stream, NoiseSource, Philox};
use crate::sampler::EpsModel;
use crate::schedule::Diffusion;

/// The most SDEdit draws averaged (each has its own noise stream).
pub const MAX_DRAWS: u32 = 16;

/// The most RePaint resamplings per imputation step.
pub const MAX_RESAMPLE: u32 = 20;

/// How a noisy window is denoised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Method {
    /// One network evaluation: Tweedie's posterior mean at the matched time.
    Tweedie,
    /// Reverse diffusion from the matched time, averaged over `draws` runs.
    Sdedit {
        /// Reverse steps S from t* to the end (≥ 1).
        steps: u32,
        /// Independent draws K averaged (1..=16).
        draws: u32,
    },
}

/// Why a denoising request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DenoiseError {
    /// σ is negative or not finite.
    BadSigma,
    /// Steps is 0 or above 1000, draws outside 1..=16, or resample outside 1..=20.
    BadSettings,
    /// An imputation start time outside (0, 1] or rounds outside 1..=8.
    BadStart,
    /// The window or mask is shorter than the model's D, or D exceeds the compiled capacity.
    Length {
        /// The length given.
        found: usize,
        /// D.
        needed: usize,
    },
}

impl core::fmt::Display for DenoiseError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::BadSigma => write!(f, "sigma must be a finite number >= 0"),
            Self::BadSettings => write!(
                f,
                "steps must be in 1..=1000, draws in 1..={MAX_DRAWS} and resample in 1..={MAX_RESAMPLE}"
            ),
            Self::BadStart => {
                write!(f, "the imputation start time must be in (0, 1] and rounds in 1..={MAX_ROUNDS}")
            }
            Self::Length { found, needed } => {
                write!(f, "window has {found} values, the model needs {needed}")
            }
        }
    }
}

impl core::error::Error for DenoiseError {}

/// The time t at which the process's noise-to-signal ratio σ_t/α_t is `ratio` (normalised units),
/// clamped to the process's range. The discrete process answers its nearest step n/N (in ln ratio),
/// the continuous ones solve by bisection (σ_t/α_t increases with t).
pub fn match_time(diff: &Diffusion, ratio: f32) -> f32 {
    let nsr = |t: f32| {
        let (a, s) = diff.marginal(t);
        s / a
    };
    let (lo_t, hi_t) = (diff.t_min(), 1.0f32);
    if ratio.is_nan() || ratio <= nsr(lo_t) {
        return lo_t;
    }
    if ratio >= nsr(hi_t) {
        return hi_t;
    }
    if let Some(d) = diff.discrete() {
        // Largest n with ratio_n ≤ ratio, then the nearer of n and n + 1 in ln ratio.
        let (mut lo, mut hi) = (1usize, d.steps() as usize);
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if nsr(d.time(mid)) <= ratio {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let (r_lo, r_hi) = (nsr(d.time(lo)), nsr(d.time(hi)));
        let n = if libm::logf(ratio / r_lo) <= libm::logf(r_hi / ratio) { lo } else { hi };
        return d.time(n);
    }
    let (mut lo, mut hi) = (lo_t, hi_t);
    for _ in 0..40 {
        let mid = 0.5 * (lo + hi);
        if nsr(mid) <= ratio {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// x̂₀ = (x − σ_t·ε̂(x, t))/α_t into `x` (normalised units); `eps` is scratch of the same length.
pub fn tweedie_at<M: EpsModel + ?Sized>(
    model: &mut M,
    diff: &Diffusion,
    t: f32,
    x: &mut [f32],
    eps: &mut [f32],
) {
    let (alpha, sigma) = diff.marginal(t);
    model.eps(x, t, eps);
    for (xi, &e) in x.iter_mut().zip(eps.iter()) {
        *xi = (*xi - sigma * e) / alpha;
    }
}

/// One reverse step from t to s < t in place on `x` (the posterior step of the module doc), noise
/// from `noise` at step word `step` of `stream_id`; `eps` and `z` are scratch.
#[allow(clippy::too_many_arguments)]
pub fn posterior_step<M: EpsModel + ?Sized>(
    model: &mut M,
    diff: &Diffusion,
    t: f32,
    s: f32,
    noise: &mut impl NoiseSource,
    step: u32,
    stream_id: u32,
    x: &mut [f32],
    eps: &mut [f32],
    z: &mut [f32],
) {
    let (a_t, s_t) = diff.marginal(t);
    let (a_s, s_s) = diff.marginal(s);
    model.eps(x, t, eps);
    let a_ts = a_t / a_s;
    let var_ts = (s_t * s_t - a_ts * a_ts * s_s * s_s).max(0.0);
    let inv_var_t = 1.0 / (s_t * s_t);
    let c_x = a_ts * s_s * s_s * inv_var_t;
    let c_x0 = a_s * var_ts * inv_var_t;
    let std = libm::sqrtf(var_ts) * s_s / s_t;
    if std > 0.0 {
        noise.fill(step, stream_id, z);
    } else {
        z.fill(0.0);
    }
    for ((xi, &e), &zi) in x.iter_mut().zip(eps.iter()).zip(z.iter()) {
        let x0 = (*xi - s_t * e) / a_t;
        *xi = c_x * *xi + c_x0 * x0 + std * zi;
    }
}

/// The k-th time of a reverse grid of `steps` steps from `start` down to the process's end
/// (k = 0 is `start`, k = steps the end): the discrete process visits whole steps down to t = 0,
/// the continuous ones a uniform grid down to t_ε.
fn grid(diff: &Diffusion, start: f32, steps: u32, k: u32) -> f32 {
    match diff.discrete() {
        Some(d) => {
            let n_start = libm::roundf(start * d.steps() as f32) as u64;
            let n = n_start * (steps - k.min(steps)) as u64 / steps as u64;
            d.time(n as usize)
        }
        None => {
            let end = diff.t_min();
            start - (start - end) * (k.min(steps) as f32 / steps as f32)
        }
    }
}

/// Denoises a normalised window `y` (length D ≤ `C`) with noise level `ratio` (normalised
/// units) in place. `seed`/`index` pick the noise of SDEdit's draws.
pub fn denoise_normalized<const C: usize, M: EpsModel + ?Sized>(
    model: &mut M,
    diff: &Diffusion,
    method: Method,
    ratio: f32,
    seed: u64,
    index: u32,
    y: &mut [f32],
) {
    let d = y.len().min(C);
    let y = &mut y[..d];
    let t_star = match_time(diff, ratio);
    let (alpha, _) = diff.marginal(t_star);
    let mut eps = [0.0f32; C];
    let mut z = [0.0f32; C];
    let mut x = [0.0f32; C];
    let mut acc = [0.0f32; C];
    let (eps, z, x, acc) = (&mut eps[..d], &mut z[..d], &mut x[..d], &mut acc[..d]);
    match method {
        Method::Tweedie => {
            for v in y.iter_mut() {
                *v *= alpha;
            }
            tweedie_at(model, diff, t_star, y, eps);
        }
        Method::Sdedit { steps, draws } => {
            let draws = draws.clamp(1, MAX_DRAWS);
            let steps = steps.max(1);
            for k in 0..draws {
                for (xi, &yi) in x.iter_mut().zip(y.iter()) {
                    *xi = alpha * yi;
                }
                let mut noise = Philox::new(seed, index);
                for i in 0..steps {
                    let (t, s) = (grid(diff, t_star, steps, i), grid(diff, t_star, steps, i + 1));
                    if s < t {
                        posterior_step(model, diff, t, s, &mut noise, i, stream::DENOISE + k, x, eps, z);
                    }
                }
                if diff.discrete().is_none() {
                    tweedie_at(model, diff, diff.t_min(), x, eps);
                }
                for (a, &xi) in acc.iter_mut().zip(x.iter()) {
                    *a += xi;
                }
            }
            let inv = 1.0 / draws as f32;
            for (v, &a) in y.iter_mut().zip(acc.iter()) {
                *v = a * inv;
            }
        }
    }
}

/// Where imputation's reverse process starts.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ImputeStart {
    /// From the prior at t = 1 (the replacement method as published; the default).
    Noise,
    /// From an initial fill of the missing entries, diffused by the forward process to `t_start`
    /// (SDEdit-style imputation): x = α_{t_start}·fill + σ_{t_start}·z, then the replacement
    /// steps from there. `rounds` passes: each later pass starts from the previous pass's
    /// average over the draws.
    Fill {
        /// Which initial fill.
        fill: Fill,
        /// Process time of the start, in (0, 1] (on the discrete process: the nearest step).
        t_start: f32,
        /// Passes fill → noise to t_start → reverse with replacement (1..=[`MAX_ROUNDS`]).
        rounds: u32,
    },
}

/// The initial fill of [`ImputeStart::Fill`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Fill {
    /// Straight lines between the known neighbours of each gap ([`linear_fill`], data units);
    /// a gap at an end holds the nearest known value.
    Linear,
    /// The window's values at the missing entries as given (the caller's own fill).
    Given,
}

/// The most passes of [`ImputeStart::Fill`].
pub const MAX_ROUNDS: u32 = 8;

/// The settings of imputation.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Imputation {
    /// Reverse steps from the start down to the end (1..=1000).
    pub steps: u32,
    /// Independent runs averaged (1..=[`MAX_DRAWS`]).
    pub draws: u32,
    /// RePaint resamplings per step (1..=[`MAX_RESAMPLE`]; 1 = the plain replacement method).
    pub resample: u32,
    /// Where the reverse process starts.
    pub start: ImputeStart,
}

impl Imputation {
    /// Checks the settings' ranges.
    pub fn check(&self) -> Result<(), DenoiseError> {
        if self.steps == 0
            || self.steps > 1000
            || self.draws == 0
            || self.draws > MAX_DRAWS
            || self.resample == 0
            || self.resample > MAX_RESAMPLE
        {
            return Err(DenoiseError::BadSettings);
        }
        if let ImputeStart::Fill { t_start, rounds, .. } = self.start {
            if !(t_start > 0.0 && t_start <= 1.0) || rounds == 0 || rounds > MAX_ROUNDS {
                return Err(DenoiseError::BadStart);
            }
        }
        Ok(())
    }
}

/// Fills the entries of `y` whose `known[i]` is false by straight lines between the nearest known
/// entries on each side (an end gap holds its one known neighbour); `y` unchanged if nothing is
/// known.
pub fn linear_fill(known: &[bool], y: &mut [f32]) {
    let d = y.len().min(known.len());
    let mut prev: Option<usize> = None;
    let mut j = 0;
    while j < d {
        if known[j] {
            prev = Some(j);
            j += 1;
            continue;
        }
        let mut next = j;
        while next < d && !known[next] {
            next += 1;
        }
        match (prev, next < d) {
            (Some(a), true) => {
                let (ya, yb) = (y[a], y[next]);
                let span = (next - a) as f32;
                for (m, v) in y[j..next].iter_mut().enumerate() {
                    let w = (j + m - a) as f32 / span;
                    *v = ya + (yb - ya) * w;
                }
            }
            (Some(a), false) => {
                let ya = y[a];
                y[j..next].fill(ya);
            }
            (None, true) => {
                let yb = y[next];
                y[j..next].fill(yb);
            }
            (None, false) => {}
        }
        j = next;
    }
}

/// Imputes the entries of a normalised window `y` whose `known[i]` is false (replacement method),
/// with `steps` reverse steps from t = 1, averaging `draws` independent runs (the posterior mean's
/// Monte-Carlo estimate); known entries come back unchanged.
#[allow(clippy::too_many_arguments)]
pub fn impute_normalized<const C: usize, M: EpsModel + ?Sized>(
    model: &mut M,
    diff: &Diffusion,
    steps: u32,
    draws: u32,
    resample: u32,
    seed: u64,
    index: u32,
    known: &[bool],
    y: &mut [f32],
) {
    let settings = Imputation { steps, draws, resample, start: ImputeStart::Noise };
    impute_normalized_with::<C, M>(model, diff, &settings, seed, index, known, y);
}

/// [`impute_normalized`] with any [`Imputation`]; with [`ImputeStart::Fill`] the missing entries
/// of `y` hold the initial fill (normalised units; [`Fill`] is applied by [`impute_with`]).
/// Settings out of range are clamped.
pub fn impute_normalized_with<const C: usize, M: EpsModel + ?Sized>(
    model: &mut M,
    diff: &Diffusion,
    settings: &Imputation,
    seed: u64,
    index: u32,
    known: &[bool],
    y: &mut [f32],
) {
    let resample = settings.resample.clamp(1, MAX_RESAMPLE);
    let d = y.len().min(C).min(known.len());
    let (y, known) = (&mut y[..d], &known[..d]);
    let (steps, draws) = (settings.steps.clamp(1, 1000), settings.draws.clamp(1, MAX_DRAWS));
    let (t_start, rounds) = match settings.start {
        ImputeStart::Noise => (1.0f32, 1u32),
        ImputeStart::Fill { t_start, rounds, .. } => {
            let t = if t_start > 0.0 { t_start.min(1.0) } else { 1.0 };
            (t, rounds.clamp(1, MAX_ROUNDS))
        }
    };
    let from_fill = matches!(settings.start, ImputeStart::Fill { .. });
    let mut noise = Philox::new(seed, index);
    let mut x = [0.0f32; C];
    let mut eps = [0.0f32; C];
    let mut z = [0.0f32; C];
    let mut zk = [0.0f32; C];
    let mut acc = [0.0f32; C];
    let (x, eps, z, zk, acc) = (&mut x[..d], &mut eps[..d], &mut z[..d], &mut zk[..d], &mut acc[..d]);
    let prior = diff.prior_std();
    // The start on the grid (the discrete process's nearest step) and its marginal.
    let t0 = grid(diff, t_start, steps, 0);
    let (a0, s0) = diff.marginal(t0);
    let words_per_round = steps * resample;
    for r in 0..rounds {
        acc.fill(0.0);
        for k in 0..draws {
            // Draw k of round r: its start at step word r·MAX_DRAWS + k of INIT, its steps on
            // streams DENOISE + 2k and + 2k + 1 at words from r·steps·resample on.
            let init_word = r * MAX_DRAWS + k;
            noise.fill(init_word, stream::INIT, x);
            if from_fill {
                for (xi, &yi) in x.iter_mut().zip(y.iter()) {
                    *xi = a0 * yi + s0 * *xi;
                }
            } else {
                for v in x.iter_mut() {
                    *v *= prior;
                }
            }
            for i in 0..steps {
                let (t, s) = (grid(diff, t_start, steps, i), grid(diff, t_start, steps, i + 1));
                if s >= t {
                    continue;
                }
                let (a_t, s_t) = diff.marginal(t);
                let (a_s, s_s) = diff.marginal(s);
                for u in 0..resample {
                    let word = r * words_per_round + i * resample + u;
                    posterior_step(model, diff, t, s, &mut noise, word, stream::DENOISE + 2 * k, x, eps, z);
                    // Replace the known entries by the observation diffused to time s.
                    noise.fill(word, stream::DENOISE + 2 * k + 1, zk);
                    for j in 0..d {
                        if known[j] {
                            x[j] = a_s * y[j] + s_s * zk[j];
                        }
                    }
                    if u + 1 < resample {
                        // RePaint: diffuse back from s to t, x ← α_{t|s}·x + σ_{t|s}·z, and redo
                        // the step, so the generated part harmonises with the known part.
                        let a_ts = a_t / a_s;
                        let s_ts = libm::sqrtf((s_t * s_t - a_ts * a_ts * s_s * s_s).max(0.0));
                        noise.fill(word, stream::DENOISE + 2 * MAX_DRAWS + k, z);
                        for (xi, &zi) in x.iter_mut().zip(z.iter()) {
                            *xi = a_ts * *xi + s_ts * zi;
                        }
                    }
                }
            }
            if diff.discrete().is_none() {
                tweedie_at(model, diff, diff.t_min(), x, eps);
            }
            for (a, &xi) in acc.iter_mut().zip(x.iter()) {
                *a += xi;
            }
        }
        let inv = 1.0 / draws as f32;
        for j in 0..d {
            if !known[j] {
                y[j] = acc[j] * inv;
            }
        }
    }
}

/// σ̂ = 1.4826·median(|Δy − median(Δy)|)/√2 from the first difference Δy of `y` (data units);
/// `scratch` holds at least `y.len()` values. Returns 0 for fewer than 3 values.
pub fn estimate_sigma(y: &[f32], scratch: &mut [f32]) -> f32 {
    let n = y.len().min(scratch.len() + 1);
    if n < 3 {
        return 0.0;
    }
    let diffs = &mut scratch[..n - 1];
    for (k, dv) in diffs.iter_mut().enumerate() {
        *dv = y[k + 1] - y[k];
    }
    sigma_from_differences(diffs)
}

/// σ̂ = 1.4826·median(|Δ − median(Δ)|)/√2 from first differences Δ (reordered and overwritten),
/// for callers that pool the differences of many windows. Returns 0 for an empty slice.
pub fn sigma_from_differences(diffs: &mut [f32]) -> f32 {
    if diffs.is_empty() {
        return 0.0;
    }
    let med = median(diffs);
    for dv in diffs.iter_mut() {
        *dv = (*dv - med).abs();
    }
    1.4826 * median(diffs) / core::f32::consts::SQRT_2
}

/// The median of `v` (reorders it; NaNs sort last).
fn median(v: &mut [f32]) -> f32 {
    v.sort_unstable_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// The root-mean-square of the file's per-dimension standard deviations: the factor from data
/// units to the normalised units of a noise level.
pub fn noise_scale<const D: usize, const H: usize, const F: usize, S: AsMut<[f32]>>(
    net: &ScoreNet<'_, D, H, F, S>,
) -> f32 {
    let std = net.model().tensor(crate::format::Role::NormStd);
    let d = net.dims().dim;
    let mut s2 = 0.0f32;
    for i in 0..d {
        let v = std.get(i);
        s2 += v * v;
    }
    libm::sqrtf(s2 / d as f32)
}

/// Denoises `window` (data units, length ≥ D) in place, given its noise level `sigma` (data
/// units). Window `index` and `seed` pick SDEdit's noise.
pub fn denoise<const D: usize, const H: usize, const F: usize, S: AsMut<[f32]>>(
    net: &mut ScoreNet<'_, D, H, F, S>,
    diff: &Diffusion,
    method: Method,
    sigma: f32,
    seed: u64,
    index: u32,
    window: &mut [f32],
) -> Result<(), DenoiseError> {
    if !(sigma.is_finite() && sigma >= 0.0) {
        return Err(DenoiseError::BadSigma);
    }
    if let Method::Sdedit { steps, draws } = method {
        if steps == 0 || steps > 1000 || draws == 0 || draws > MAX_DRAWS {
            return Err(DenoiseError::BadSettings);
        }
    }
    let d = net.dims().dim;
    if window.len() < d || d > D {
        return Err(DenoiseError::Length { found: window.len(), needed: d });
    }
    let ratio = sigma / noise_scale(net);
    let w = &mut window[..d];
    net.model().normalize(w);
    denoise_normalized::<D, _>(net, diff, method, ratio, seed, index, w);
    net.model().denormalize(w);
    Ok(())
}

/// Fills the entries of `window` (data units) where `known` is false, with `steps` reverse steps
/// of `resample` RePaint rounds each from t = 1, averaging `draws` runs.
#[allow(clippy::too_many_arguments)]
pub fn impute<const D: usize, const H: usize, const F: usize, S: AsMut<[f32]>>(
    net: &mut ScoreNet<'_, D, H, F, S>,
    diff: &Diffusion,
    steps: u32,
    draws: u32,
    resample: u32,
    seed: u64,
    index: u32,
    known: &[bool],
    window: &mut [f32],
) -> Result<(), DenoiseError> {
    let settings = Imputation { steps, draws, resample, start: ImputeStart::Noise };
    impute_with(net, diff, &settings, seed, index, known, window)
}

/// Fills the entries of `window` (data units) where `known` is false with any [`Imputation`]
/// (with [`Fill::Linear`] the initial fill is [`linear_fill`] in data units, channel by channel).
pub fn impute_with<const D: usize, const H: usize, const F: usize, S: AsMut<[f32]>>(
    net: &mut ScoreNet<'_, D, H, F, S>,
    diff: &Diffusion,
    settings: &Imputation,
    seed: u64,
    index: u32,
    known: &[bool],
    window: &mut [f32],
) -> Result<(), DenoiseError> {
    settings.check()?;
    let d = net.dims().dim;
    if window.len() < d || known.len() < d || d > D {
        return Err(DenoiseError::Length { found: window.len().min(known.len()), needed: d });
    }
    let w = &mut window[..d];
    let known = &known[..d];
    let mut observed = [0.0f32; D];
    observed[..d].copy_from_slice(w);
    if let ImputeStart::Fill { fill: Fill::Linear, .. } = settings.start {
        // Along each channel of a multi-channel signal (channel-major), never across two; other
        // data (points, images) as one sequence.
        let shape = net.model().data();
        let l = match shape.kind {
            crate::format::DataKind::Signal if shape.length > 0 && shape.channels * shape.length == d => {
                shape.length
            }
            _ => d,
        };
        for (kc, wc) in known.chunks(l).zip(w.chunks_mut(l)) {
            linear_fill(kc, wc);
        }
    }
    net.model().normalize(w);
    impute_normalized_with::<D, _>(net, diff, settings, seed, index, known, w);
    net.model().denormalize(w);
    // Known entries come back bit for bit (normalising and back may round).
    for ((v, &o), &k) in w.iter_mut().zip(observed.iter()).zip(known) {
        if k {
            *v = o;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{BetaSchedule, Sde, VpDiscrete};

    /// Data x ~ N(μ, s²·I): the exact ε of the forward marginal N(α μ, α² s² + σ²).
    struct Gaussian {
        mu: f32,
        s: f32,
        diff: Diffusion,
    }

    impl EpsModel for Gaussian {
        fn dim(&self) -> usize {
            4
        }
        fn eps(&mut self, x: &[f32], t: f32, out: &mut [f32]) {
            let (a, sg) = self.diff.marginal(t);
            let var = a * a * self.s * self.s + sg * sg;
            for (o, &xi) in out.iter_mut().zip(x) {
                *o = sg * (xi - a * self.mu) / var;
            }
        }
    }

    fn processes() -> [Diffusion; 3] {
        [
            Diffusion::Discrete(VpDiscrete::new(1000, BetaSchedule::DDPM_LINEAR).unwrap()),
            Diffusion::sde(Sde::Vp { beta_min: 0.1, beta_max: 20.0 }, 1e-3).unwrap(),
            Diffusion::sde(Sde::Ve { sigma_min: 0.01, sigma_max: 50.0 }, 1e-3).unwrap(),
        ]
    }

    #[test]
    fn matched_time_has_the_asked_ratio() {
        for diff in processes() {
            for ratio in [0.05f32, 0.2, 1.0, 3.0] {
                let (a, s) = diff.marginal(match_time(&diff, ratio));
                let rel = (s / a / ratio - 1.0).abs();
                assert!(rel < 0.02, "{diff:?} ratio {ratio}: got {}", s / a);
            }
        }
    }

    #[test]
    fn tweedie_with_the_exact_score_is_the_posterior_mean() {
        for diff in processes() {
            let (mu, s) = (0.7f32, 0.5f32);
            let mut m = Gaussian { mu, s, diff: diff.clone() };
            for ratio in [0.1f32, 0.4, 1.5] {
                let mut y = [1.2f32, -0.3, 0.7, 2.0];
                let orig = y;
                denoise_normalized::<4, _>(&mut m, &diff, Method::Tweedie, ratio, 0, 0, &mut y);
                // The matched time is approximate on the discrete grid: compare with the
                // posterior mean at the ratio actually used.
                let (a, sg) = diff.marginal(match_time(&diff, ratio));
                let r = sg / a;
                for (g, o) in y.iter().zip(orig) {
                    let want = mu + s * s / (s * s + r * r) * (o - mu);
                    assert!((g - want).abs() < 1e-4, "{diff:?}: {g} vs {want}");
                }
            }
        }
    }

    #[test]
    fn sdedit_averages_toward_the_posterior_mean() {
        for diff in processes() {
            let (mu, s) = (-0.4f32, 0.6f32);
            let mut m = Gaussian { mu, s, diff: diff.clone() };
            let ratio = 0.5f32;
            let (a, sg) = diff.marginal(match_time(&diff, ratio));
            let r = sg / a;
            let post_sd = s * r / libm::sqrtf(s * s + r * r);
            let mut mean_err = 0.0f32;
            let trials = 200;
            for w in 0..trials {
                let mut y = [0.3f32, 1.0, -1.0, 0.0];
                let orig = y;
                let method = Method::Sdedit { steps: 50, draws: 4 };
                denoise_normalized::<4, _>(&mut m, &diff, method, ratio, 9, w, &mut y);
                for (g, o) in y.iter().zip(orig) {
                    mean_err += g - (mu + s * s / (s * s + r * r) * (o - mu));
                }
            }
            // Each output averages 4 posterior draws: its error has sd post_sd/2.
            let mean_err = mean_err / (4 * trials) as f32;
            assert!(
                mean_err.abs() < 4.0 * post_sd / 2.0 / libm::sqrtf((4 * trials) as f32) + 0.02,
                "{diff:?}: {mean_err}"
            );
        }
    }

    #[test]
    fn imputation_keeps_known_entries_and_fills_from_the_prior() {
        for diff in processes() {
            let (mu, s) = (1.0f32, 0.3f32);
            let mut m = Gaussian { mu, s, diff: diff.clone() };
            let known = [true, false, true, false];
            let mut sum = 0.0f32;
            let mut sum2 = 0.0f32;
            let trials = 300u32;
            for w in 0..trials {
                let mut y = [5.0f32, 0.0, -5.0, 0.0];
                impute_normalized::<4, _>(&mut m, &diff, 100, 1, 1 + w % 3, 3, w, &known, &mut y);
                assert_eq!((y[0], y[2]), (5.0, -5.0));
                for v in [y[1], y[3]] {
                    sum += v;
                    sum2 += v * v;
                }
            }
            // Independent dimensions: the missing ones follow the prior N(μ, s²).
            let n = (2 * trials) as f32;
            let mean = sum / n;
            let sd = libm::sqrtf(sum2 / n - mean * mean);
            assert!((mean - mu).abs() < 0.06, "{diff:?}: mean {mean}");
            assert!((sd - s).abs() < 0.06, "{diff:?}: sd {sd}");
        }
    }

    #[test]
    fn linear_fill_draws_straight_lines_and_holds_the_ends() {
        let known = [false, true, false, false, true, true, false, false];
        let mut y = [9.0f32, 1.0, 9.0, 9.0, 4.0, 2.0, 9.0, 9.0];
        linear_fill(&known, &mut y);
        assert_eq!(y, [1.0, 1.0, 2.0, 3.0, 4.0, 2.0, 2.0, 2.0]);
        let mut none = [5.0f32, 6.0];
        linear_fill(&[false, false], &mut none);
        assert_eq!(none, [5.0, 6.0]);
    }

    #[test]
    fn imputation_settings_out_of_range_are_refused() {
        let ok = Imputation {
            steps: 10,
            draws: 2,
            resample: 3,
            start: ImputeStart::Fill { fill: Fill::Linear, t_start: 0.3, rounds: 2 },
        };
        assert_eq!(ok.check(), Ok(()));
        for (t_start, rounds) in [(0.0f32, 1u32), (-0.1, 1), (1.5, 1), (f32::NAN, 1), (0.3, 0), (0.3, 9)] {
            let bad = Imputation { start: ImputeStart::Fill { fill: Fill::Given, t_start, rounds }, ..ok };
            assert_eq!(bad.check(), Err(DenoiseError::BadStart), "{t_start} {rounds}");
        }
        assert_eq!(Imputation { resample: 0, ..ok }.check(), Err(DenoiseError::BadSettings));
        assert_eq!(Imputation { draws: MAX_DRAWS + 1, ..ok }.check(), Err(DenoiseError::BadSettings));
    }

    #[test]
    fn imputation_from_a_fill_shrinks_it_toward_the_prior_like_the_posterior_mean() {
        // Independent Gaussian dimensions: diffusing the fill f to t_start (noise-to-signal r) and
        // running the reverse process with the exact ε keeps the mean of E[x | x_{t_start}], which
        // over the start noise is μ + c·(f − μ), c = s²/(s² + r²); a second round starts from
        // that. (RePaint's resampling would pull further toward the prior: resample = 1.)
        for diff in processes() {
            let (mu, s) = (0.5f32, 0.4f32);
            let mut m = Gaussian { mu, s, diff: diff.clone() };
            let known = [true, false, true, false];
            // Where the noise-to-signal ratio is s: c = 1/2.
            let t_start = match_time(&diff, s);
            let steps = 40;
            let (a, sg) = diff.marginal(grid(&diff, t_start, steps, 0));
            let c = s * s / (s * s + (sg / a) * (sg / a));
            for rounds in [1u32, 2] {
                let settings = Imputation {
                    steps,
                    draws: 2,
                    resample: 1,
                    start: ImputeStart::Fill { fill: Fill::Given, t_start, rounds },
                };
                let (fill, trials) = (2.5f32, 300u32);
                let mut sum = 0.0f32;
                for w in 0..trials {
                    let mut y = [-3.0f32, fill, 3.0, fill];
                    impute_normalized_with::<4, _>(&mut m, &diff, &settings, 11, w, &known, &mut y);
                    assert_eq!((y[0], y[2]), (-3.0, 3.0));
                    sum += y[1] + y[3];
                }
                let mean = sum / (2 * trials) as f32;
                let want = mu + libm::powf(c, rounds as f32) * (fill - mu);
                assert!(
                    (mean - want).abs() < 0.05,
                    "{diff:?} rounds {rounds}: mean {mean}, want {want} (c {c})"
                );
                assert!((mean - fill).abs() > 0.2, "{diff:?}: the fill must move (c {c})");
            }
        }
    }

    #[test]
    fn sigma_estimate_finds_white_noise() {
        let mut y = [0.0f32; 256];
        let mut z = [0.0f32; 256];
        crate::rng::fill_normal(5, 0, 0, 0, &mut z);
        for (i, v) in y.iter_mut().enumerate() {
            // A slow sine plus noise of σ = 0.2.
            *v = libm::sinf(i as f32 * 0.05) + 0.2 * z[i];
        }
        let mut scratch = [0.0f32; 256];
        let est = estimate_sigma(&y, &mut scratch);
        assert!((est - 0.2).abs() < 0.03, "{est}");
        assert_eq!(estimate_sigma(&y[..2], &mut scratch), 0.0);
    }
}
