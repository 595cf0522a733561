//! DDPM ancestral sampling (Ho et al. 2020, "Denoising Diffusion Probabilistic Models",
//! Algorithm 2), on any evenly spaced sub-sequence of the N steps (Nichol & Dhariwal 2021, §4).
//!
//! With steps τ_S > … > τ_1 > τ_0 = 0, for i = S..1, n = τ_i, p = τ_{i−1}:
//!
//! ```text
//! β'  = 1 − ᾱ_n/ᾱ_p                                  (the respaced step's variance)
//! x  ← (x − β'/√(1 − ᾱ_n) · ε_θ(x, n/N)) / √(1 − β') + σ z,   z ~ N(0, I)
//! σ² = β'                      (Variance::Beta, "fixed large", Ho et al. eq. 11 with σ² = β)
//! σ² = β'·(1 − ᾱ_p)/(1 − ᾱ_n)  (Variance::Posterior, β̃, Ho et al. eq. 7)
//! ```
//!
//! No noise is added at the last step (i = 1), as in Algorithm 2. Fits the discrete VP process
//! only (it needs the ᾱ table); one network evaluation per step.

use super::{EpsModel, SamplerError};
use crate::rng::{stream, NoiseSource};
use crate::schedule::VpDiscrete;

/// The reverse-step variance of DDPM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Variance {
    /// σ² = β (the "fixed large" choice of Ho et al.).
    Beta,
    /// σ² = β̃, the posterior variance of q(x_{n−1} | x_n, x₀) ("fixed small").
    #[default]
    Posterior,
}

/// DDPM sampler settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Ddpm {
    /// Number of reverse steps S (1 ≤ S ≤ N); S = N is the original sampler.
    pub steps: u32,
    /// Which reverse variance.
    pub variance: Variance,
}

impl Ddpm {
    /// Checks the settings against the process.
    pub fn check(&self, schedule: &VpDiscrete) -> Result<(), SamplerError> {
        if self.steps == 0 || self.steps > schedule.steps() {
            return Err(SamplerError::Steps { found: self.steps, max: schedule.steps() });
        }
        Ok(())
    }

    /// τ_i, the discrete step visited at sampler step i (τ_0 = 0, τ_S = N).
    #[inline]
    pub fn timestep(&self, schedule: &VpDiscrete, i: u32) -> usize {
        (i as u64 * schedule.steps() as u64 / self.steps as u64) as usize
    }

    /// Sampler step i (S..1) in place on `x` (normalised units, length D); `eps` and `z` are
    /// scratch of the same length. Draws its noise at step word i of [`stream::STEP`].
    // The scratch buffers are arguments so the caller owns all memory (no heap, no hidden stack).
    #[allow(clippy::too_many_arguments)]
    pub fn step<M: EpsModel + ?Sized>(
        &self,
        model: &mut M,
        schedule: &VpDiscrete,
        noise: &mut impl NoiseSource,
        i: u32,
        x: &mut [f32],
        eps: &mut [f32],
        z: &mut [f32],
    ) {
        let n = self.timestep(schedule, i);
        let p = self.timestep(schedule, i - 1);
        let (ab_n, ab_p) = (schedule.alpha_bar(n), schedule.alpha_bar(p));
        let one_minus_n = schedule.one_minus_alpha_bar(n);
        let alpha_step = ab_n / ab_p; // 1 − β'
        let beta_step = 1.0 - alpha_step;
        model.eps(x, schedule.time(n), eps);
        let coef = beta_step / libm::sqrtf(one_minus_n);
        let inv_sqrt_alpha = 1.0 / libm::sqrtf(alpha_step);
        for (xi, &e) in x.iter_mut().zip(eps.iter()) {
            *xi = (*xi - coef * e) * inv_sqrt_alpha;
        }
        if i > 1 {
            let var = match self.variance {
                Variance::Beta => beta_step,
                Variance::Posterior => beta_step * schedule.one_minus_alpha_bar(p) / one_minus_n,
            };
            let sigma = libm::sqrtf(var);
            noise.fill(i, stream::STEP, z);
            for (xi, &zi) in x.iter_mut().zip(z.iter()) {
                *xi += sigma * zi;
            }
        }
    }
}
