//! Annealed Langevin dynamics (Song & Ermon 2019, "Generative Modeling by Estimating Gradients
//! of the Data Distribution", Algorithm 1):
//!
//! ```text
//! for levels i = 1..L (σ_1 > … > σ_L):  a_i = ε·σ_i²/σ_L²
//!     repeat K times:  y ← y + (a_i/2)·∇_y log p_{σ_i}(y) + √a_i·z
//! ```
//!
//! The noise levels are those of the file's process on the uniform grid t_i from 1 to t_min:
//! σ_i = σ_{t_i}/α_{t_i}. For VE (α = 1) this is NCSN exactly. For the VP processes the sampler
//! runs on y = x/α_t, whose law at level i is x₀ + (σ_t/α_t)·z, so
//! ∇_y log p(y) = α_t·s(α_t·y, t) = −ε̂(α_t·y, t)/(σ_t/α_t): any model serves, through its noise
//! levels σ_t/α_t. The state holds y; y starts as N(0, (σ_1/α_1)² I) and the result is the last y
//! (or its Tweedie denoising).
//!
//! The step is set as `step` = ε/σ_L², so a_i = step·σ_i² (the paper's ε is step·σ_L²). Cost:
//! K evaluations per level, L·K in all.

use super::{grid_time, EpsModel, SamplerError, MAX_SAMPLER_STEPS};
use crate::rng::{stream, NoiseSource};
use crate::schedule::Diffusion;

/// Annealed Langevin settings.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Langevin {
    /// Noise levels L (1..=1000).
    pub steps: u32,
    /// Langevin steps K per level (1..=1000).
    pub per_level: u32,
    /// Step relative to the level's variance: a_i = step·σ_i² (finite, in (0, 2)).
    pub step: f32,
}

impl Langevin {
    /// Checks the settings.
    pub fn check(&self) -> Result<(), SamplerError> {
        super::check_steps(self.steps, MAX_SAMPLER_STEPS)?;
        if self.per_level == 0 || self.per_level > MAX_SAMPLER_STEPS {
            return Err(SamplerError::Parameter { what: "Langevin steps per level must be in 1..=1000" });
        }
        if !(self.step.is_finite() && self.step > 0.0 && self.step < 2.0) {
            return Err(SamplerError::Parameter { what: "Langevin step must be in (0, 2)" });
        }
        Ok(())
    }

    /// t of level i (0-based, 0..L): the uniform grid from 1 to t_min with L points.
    fn level_time(&self, diff: &Diffusion, i: u32) -> f32 {
        if self.steps == 1 {
            diff.t_min()
        } else {
            grid_time(diff.t_min(), self.steps - 1, i)
        }
    }

    /// σ_1/α_1, the prior's standard deviation in y.
    pub fn prior_std(&self, diff: &Diffusion) -> f32 {
        let (a, s) = diff.marginal(self.level_time(diff, 0));
        s / a
    }

    /// Unit u (level u/K, Langevin step u mod K) in place on `y`; noise at step word u of
    /// [`stream::STEP`].
    pub fn step<const D: usize, M: EpsModel + ?Sized>(
        &self,
        model: &mut M,
        diff: &Diffusion,
        noise: &mut impl NoiseSource,
        u: u32,
        y: &mut [f32],
    ) {
        let d = y.len();
        let t = self.level_time(diff, u / self.per_level);
        let (alpha, sigma) = diff.marginal(t);
        let r = sigma / alpha; // this level's σ_i
        let a = self.step * r * r;
        let (mut xs, mut eps, mut z) = ([0.0f32; D], [0.0f32; D], [0.0f32; D]);
        let (xs, eps, z) = (&mut xs[..d], &mut eps[..d], &mut z[..d]);
        for (xi, &yi) in xs.iter_mut().zip(y.iter()) {
            *xi = alpha * yi;
        }
        model.eps(xs, t, eps);
        noise.fill(u, stream::STEP, z);
        // (a/2)·∇log p = (a/2)·(−ε̂/r) = −(step·r/2)·ε̂
        let drift = 0.5 * self.step * r;
        let g = libm::sqrtf(a);
        for ((yi, &e), &zi) in y.iter_mut().zip(eps.iter()).zip(z.iter()) {
            *yi += -drift * e + g * zi;
        }
    }
}
