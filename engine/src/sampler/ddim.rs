//! DDIM (Song, Meng & Ermon 2021, "Denoising Diffusion Implicit Models", eq. 12 with σ_τ(η) of
//! eq. 16), written for any x_t = α_t·x₀ + σ_t·ε so that it serves every process.
//!
//! For i = S..1 with the current time n = τ_i and the next p = τ_{i−1} (discrete process: the
//! steps τ_i = ⌊i·N/S⌋, any sub-sequence; continuous: the uniform grid, τ_i = t_{S−i}):
//!
//! ```text
//! x̂₀ = (x − σ_n ε̂)/α_n,   ε̂ = ε_θ(x, t_n)
//! c  = η · σ_p · √(1 − (α_n σ_p)² / (α_p σ_n)²)        (eq. 16: for VP, σ_p/σ_n·√(1 − ᾱ_n/ᾱ_p))
//! x ← α_p x̂₀ + √(σ_p² − c²) ε̂ + c z                   (eq. 12)
//! ```
//!
//! η = 0 is the deterministic DDIM (a first-order solver of the probability-flow ODE); η = 1 is
//! the DDPM posterior (β̃) variance. No noise at the last step. One evaluation per step.

use super::{grid_time, EpsModel, SamplerError, MAX_SAMPLER_STEPS};
use crate::rng::{stream, NoiseSource};
use crate::schedule::Diffusion;

/// DDIM settings.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Ddim {
    /// Steps S (≤ N on the discrete process, ≤ 1000 otherwise).
    pub steps: u32,
    /// η ∈ [0, 1]: the share of the posterior noise (0: deterministic).
    pub eta: f32,
}

impl Ddim {
    /// Checks the settings against the process.
    pub fn check(&self, diff: &Diffusion) -> Result<(), SamplerError> {
        let max = diff.discrete().map_or(MAX_SAMPLER_STEPS, |d| d.steps());
        super::check_steps(self.steps, max)?;
        if !(self.eta.is_finite() && (0.0..=1.0).contains(&self.eta)) {
            return Err(SamplerError::Parameter { what: "eta must be in [0, 1]" });
        }
        Ok(())
    }

    /// (t, α, σ) at sampler index i (S..0).
    fn point(&self, diff: &Diffusion, i: u32) -> (f32, f32, f32) {
        match diff.discrete() {
            Some(d) => {
                let n = (i as u64 * d.steps() as u64 / self.steps as u64) as usize;
                (d.time(n), d.alpha(n), d.sigma(n))
            }
            None => {
                let t = grid_time(diff.t_min(), self.steps, self.steps - i);
                let (a, s) = diff.marginal(t);
                (t, a, s)
            }
        }
    }

    /// Sampler step i (S..1) in place on `x`; noise at step word i of [`stream::STEP`].
    pub fn step<const D: usize, M: EpsModel + ?Sized>(
        &self,
        model: &mut M,
        diff: &Diffusion,
        noise: &mut impl NoiseSource,
        i: u32,
        x: &mut [f32],
    ) {
        let d = x.len();
        let (t, a_n, s_n) = self.point(diff, i);
        let (_, a_p, s_p) = self.point(diff, i - 1);
        let mut eps = [0.0f32; D];
        let eps = &mut eps[..d];
        model.eps(x, t, eps);
        let c = if i > 1 && self.eta > 0.0 {
            let r = (a_n * s_p) / (a_p * s_n);
            self.eta * s_p * libm::sqrtf((1.0 - r * r).max(0.0))
        } else {
            0.0
        };
        let dir = libm::sqrtf((s_p * s_p - c * c).max(0.0));
        for (xi, &e) in x.iter_mut().zip(eps.iter()) {
            let x0 = (*xi - s_n * e) / a_n;
            *xi = a_p * x0 + dir * e;
        }
        if c > 0.0 {
            let mut z = [0.0f32; D];
            let z = &mut z[..d];
            noise.fill(i, stream::STEP, z);
            for (xi, &zi) in x.iter_mut().zip(z.iter()) {
                *xi += c * zi;
            }
        }
    }
}
