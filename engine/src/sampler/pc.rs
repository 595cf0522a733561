//! Predictor–corrector sampling (Song et al. 2021, "Score-Based Generative Modeling through
//! Stochastic Differential Equations", Algorithm 1, with the corrector of Algorithms 4–5).
//!
//! For k = 0..S−1 at t = t_k: K corrector steps, then one predictor step to t_{k+1}.
//!
//! Corrector (Langevin with the signal-to-noise step rule, Algorithms 4–5):
//! ```text
//! s = −ε̂(x, t)/σ_t,  z ~ N(0, I),  ε = 2·(r·σ_t)²,  x ← x + ε·s + √(2ε)·z
//! ```
//! r = `snr`. Deviation: Algorithm 4 sets ε = 2(r‖z‖/‖s‖)² with norms averaged over the batch
//! (score_sde). A sample must not depend on its batch, and per-sample norms in small D are so
//! noisy that they bias the result (the step explodes where ‖s‖ → 0, at the modes: measured with
//! the exact score on a 2-D mixture, the weights drift by 0.06–0.1), so tinyscore uses the
//! norms' expectations, ‖z‖² = D and ‖s‖² = D/σ_t² (exact for the ε-target), which gives the
//! same step for D large. The α_i factor of Algorithm 5 (1 − β_i ≈ 1) is taken as 1.
//!
//! Predictor, `ReverseDiffusion` (the discretised reverse SDE, Song et al. 2021 eq. 45–47):
//! ```text
//! VE:        G² = σ_t² − σ_{t'}²,         x ← x + G²·s + G·z
//! VP:        β' = 1 − α_t²/α_{t'}²,       x ← (2 − √(1 − β'))·x + β'·s + √β'·z
//! sub-VP:    the Euler–Maruyama step (score_sde's default discretisation)
//! ```
//! or `EulerMaruyama` (see `em.rs`). No predictor noise at the last step. Cost: 1 + K evaluations
//! per step. Fits every process.

use super::em::em_step;
use super::{grid_time, EpsModel, SamplerError, MAX_SAMPLER_STEPS};
use crate::rng::{stream, NoiseSource};
use crate::schedule::{Diffusion, Sde};

/// The predictor of the predictor–corrector sampler.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Predictor {
    /// The discretised reverse SDE (ancestral-like).
    #[default]
    ReverseDiffusion,
    /// Euler–Maruyama on the reverse SDE.
    EulerMaruyama,
}

/// Predictor–corrector settings.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Pc {
    /// Predictor steps S (1..=1000).
    pub steps: u32,
    /// The predictor.
    pub predictor: Predictor,
    /// Corrector steps K per predictor step (0..=100; 0 is the predictor alone).
    pub corrector_steps: u32,
    /// The corrector's signal-to-noise ratio r (finite, > 0).
    pub snr: f32,
}

impl Pc {
    /// Checks the settings.
    pub fn check(&self) -> Result<(), SamplerError> {
        super::check_steps(self.steps, MAX_SAMPLER_STEPS)?;
        if self.corrector_steps > 100 {
            return Err(SamplerError::Parameter { what: "corrector steps must be in 0..=100" });
        }
        if !(self.snr.is_finite() && self.snr > 0.0) {
            return Err(SamplerError::Parameter { what: "snr must be a positive number" });
        }
        Ok(())
    }

    /// Unit u (step u/(K+1): corrector step u mod (K+1) < K, else the predictor) in place on `x`.
    /// Predictor noise at step word k of [`stream::STEP`], corrector noise at step word k·K + j of
    /// [`stream::CORRECTOR`].
    pub fn step<const D: usize, M: EpsModel + ?Sized>(
        &self,
        model: &mut M,
        diff: &Diffusion,
        noise: &mut impl NoiseSource,
        u: u32,
        x: &mut [f32],
    ) {
        let kk = self.corrector_steps;
        let (k, j) = (u / (kk + 1), u % (kk + 1));
        if j < kk {
            self.correct::<D, M>(model, diff, noise, k, k * kk + j, x);
        } else {
            self.predict::<D, M>(model, diff, noise, k, x);
        }
    }

    fn correct<const D: usize, M: EpsModel + ?Sized>(
        &self,
        model: &mut M,
        diff: &Diffusion,
        noise: &mut impl NoiseSource,
        k: u32,
        word: u32,
        x: &mut [f32],
    ) {
        let d = x.len();
        let t = grid_time(diff.t_min(), self.steps, k);
        let (_, sigma) = diff.marginal(t);
        let (mut s, mut z) = ([0.0f32; D], [0.0f32; D]);
        let (s, z) = (&mut s[..d], &mut z[..d]);
        model.eps(x, t, s);
        for v in s.iter_mut() {
            *v = -*v / sigma;
        }
        noise.fill(word, stream::CORRECTOR, z);
        // The signal-to-noise rule ε = 2(r‖z‖/‖s‖)² with ‖z‖² and ‖s‖² at their expectations
        // D and D/σ_t² (see the module doc): ε = 2(r·σ_t)².
        let ratio = self.snr * sigma;
        let eps = 2.0 * ratio * ratio;
        let g = libm::sqrtf(2.0 * eps);
        for ((xi, &si), &zi) in x.iter_mut().zip(s.iter()).zip(z.iter()) {
            *xi += eps * si + g * zi;
        }
    }

    fn predict<const D: usize, M: EpsModel + ?Sized>(
        &self,
        model: &mut M,
        diff: &Diffusion,
        noise: &mut impl NoiseSource,
        k: u32,
        x: &mut [f32],
    ) {
        let em = matches!(
            (self.predictor, diff),
            (Predictor::EulerMaruyama, _) | (_, Diffusion::Sde { sde: Sde::SubVp { .. }, .. })
        );
        if em {
            em_step::<D, M>(model, diff, noise, self.steps, k, stream::STEP, x);
            return;
        }
        let d = x.len();
        let t = grid_time(diff.t_min(), self.steps, k);
        let t_next = grid_time(diff.t_min(), self.steps, k + 1);
        let (a, s) = diff.marginal(t);
        let (a_next, s_next) = diff.marginal(t_next);
        let (mut e, mut z) = ([0.0f32; D], [0.0f32; D]);
        let (e, z) = (&mut e[..d], &mut z[..d]);
        model.eps(x, t, e);
        // x ← c_x·x + c_s·score + g·z with score = −ε̂/σ_t.
        let (cx, g2) = if diff.is_ve() {
            (1.0, s * s - s_next * s_next)
        } else {
            let r = a / a_next; // forward step t' → t keeps α_t/α_{t'}
            let beta = 1.0 - r * r;
            (2.0 - libm::sqrtf(1.0 - beta), beta)
        };
        let cs = g2 / s;
        for (xi, &ei) in x.iter_mut().zip(e.iter()) {
            *xi = cx * *xi - cs * ei;
        }
        if k + 1 < self.steps {
            noise.fill(k, stream::STEP, z);
            let g = libm::sqrtf(g2);
            for (xi, &zi) in x.iter_mut().zip(z.iter()) {
                *xi += g * zi;
            }
        }
    }
}
