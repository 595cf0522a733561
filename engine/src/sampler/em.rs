//! Euler–Maruyama on the reverse-time SDE (Song et al. 2021, "Score-Based Generative Modeling
//! through Stochastic Differential Equations", eq. 6, solved as in their `EulerMaruyamaPredictor`):
//!
//! ```text
//! dx = [f(t)·x − g(t)² s(x, t)] dt + g(t) dw̄,   s = −ε̂/σ_t
//! step k (t = t_k → t_{k+1}, Δ = t_k − t_{k+1} > 0):
//! x ← x − [f(t)·x + g(t)²·ε̂(x, t)/σ_t]·Δ + g(t)·√Δ·z
//! ```
//!
//! for VP, sub-VP, VE and the discrete VP process (as the VP SDE it discretises). No noise at the
//! last step (score_sde's `noise_removal`). One evaluation per step.

use super::{grid_time, EpsModel};
use crate::rng::{stream, NoiseSource};
use crate::schedule::Diffusion;

/// Euler–Maruyama settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Em {
    /// Steps S (1..=1000).
    pub steps: u32,
}

/// One Euler–Maruyama step of the reverse SDE from t_k to t_{k+1} of a grid of `steps`, noise at
/// step word k of `stream_id` (none if `last`). Shared with the predictor–corrector sampler.
#[allow(clippy::too_many_arguments)]
pub(crate) fn em_step<const D: usize, M: EpsModel + ?Sized>(
    model: &mut M,
    diff: &Diffusion,
    noise: &mut impl NoiseSource,
    steps: u32,
    k: u32,
    stream_id: u32,
    x: &mut [f32],
) {
    let d = x.len();
    let t = grid_time(diff.t_min(), steps, k);
    let dt = t - grid_time(diff.t_min(), steps, k + 1);
    let (f, g2) = diff.coefficients(t);
    let (_, sigma) = diff.marginal(t);
    let mut eps = [0.0f32; D];
    let eps = &mut eps[..d];
    model.eps(x, t, eps);
    let c = g2 / sigma;
    for (xi, &e) in x.iter_mut().zip(eps.iter()) {
        *xi -= (f * *xi + c * e) * dt;
    }
    if k + 1 < steps {
        let mut z = [0.0f32; D];
        let z = &mut z[..d];
        noise.fill(k, stream_id, z);
        let g = libm::sqrtf(g2 * dt);
        for (xi, &zi) in x.iter_mut().zip(z.iter()) {
            *xi += g * zi;
        }
    }
}

impl Em {
    /// Step k (0..S) in place on `x`; noise at step word k of [`stream::STEP`].
    pub fn step<const D: usize, M: EpsModel + ?Sized>(
        &self,
        model: &mut M,
        diff: &Diffusion,
        noise: &mut impl NoiseSource,
        k: u32,
        x: &mut [f32],
    ) {
        em_step::<D, M>(model, diff, noise, self.steps, k, stream::STEP, x);
    }
}
