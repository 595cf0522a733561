//! SDE-DPM-Solver++ multistep (Lu et al. 2022, "DPM-Solver++", Appendix: the solver of the
//! reverse diffusion SDE in the data prediction; diffusers' `DPMSolverMultistepScheduler` with
//! `algorithm_type = "sde-dpmsolver++"`, `solver_type = "midpoint"`; k-diffusion's
//! `sample_dpmpp_2m_sde`): the exact integral of the linear part of the reverse SDE, with the
//! data term taken constant (order 1) or linear (order 2) in λ, and the exact noise.
//!
//! Step j from s = j to t = j + 1 with D₀ = x̂₀ at s, m₁ the x̂₀ of step j − 1, z ~ N(0, I):
//!
//! ```text
//! h = λ_t − λ_s,  r₀ = (λ_s − λ_s₁)/h,  D₁ = (D₀ − m₁)/r₀
//! order 1:  x ← (σ_t/σ_s)·e^{−h}·x + α_t (1 − e^{−2h})·D₀                 + σ_t √(1 − e^{−2h})·z
//! order 2:  x ← (σ_t/σ_s)·e^{−h}·x + α_t (1 − e^{−2h})·(D₀ + ½ D₁)        + σ_t √(1 − e^{−2h})·z
//! ```
//!
//! A step ending at σ_t = 0 returns x ← D₀ (no noise). Orders as `dpmpp` (first step and a last
//! step that ends at σ = 0 or has S < 15 are first order). Noise at step word j of
//! [`stream::STEP`]. Every process (as `dpmpp`). One evaluation per step.

use super::timesteps::{multistep_order, Timesteps};
use super::{EpsModel, SamplerError};
use crate::rng::{stream, NoiseSource};
use crate::schedule::Diffusion;

/// SDE-DPM-Solver++ settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DpmppSde {
    /// Steps S (= network evaluations).
    pub steps: u32,
    /// The solver order, 1 or 2 (2: DPM-Solver++(2M) SDE).
    pub order: u32,
    /// Which times it visits.
    pub timesteps: Timesteps,
}

impl DpmppSde {
    /// Checks the settings against the process.
    pub fn check(&self, diff: &Diffusion) -> Result<(), SamplerError> {
        if !(1..=2).contains(&self.order) {
            return Err(SamplerError::Parameter { what: "the SDE-DPM-Solver++ order must be 1 or 2" });
        }
        self.timesteps.check(diff, self.steps, "dpmpp-sde")
    }

    /// Step j (0..S) in place on `x`; `history[0]` holds the x̂₀ of step j − 1 and is replaced
    /// by that of step j.
    pub fn step<const D: usize, M: EpsModel + ?Sized>(
        &self,
        model: &mut M,
        diff: &Diffusion,
        noise: &mut impl NoiseSource,
        j: u32,
        x: &mut [f32],
        history: &mut [[f32; D]; 2],
    ) {
        let d = x.len();
        let s = self.timesteps.point(diff, self.steps, j);
        let t = self.timesteps.point(diff, self.steps, j + 1);
        let (mut x0, mut z) = ([0.0f32; D], [0.0f32; D]); // (D,) ε̂ then x̂₀; (D,) noise
        let (x0, z) = (&mut x0[..d], &mut z[..d]);
        model.eps(x, s.t, x0);
        s.data_prediction(x, x0);
        let m1 = &mut history[0][..d];
        if t.sigma == 0.0 {
            x.copy_from_slice(x0);
            m1.copy_from_slice(x0);
            return;
        }
        let order = multistep_order(self.order, self.steps, j, false);
        let lam_s = s.lambda();
        let h = t.lambda() - lam_s;
        let one_minus = -libm::expm1f(-2.0 * h); // 1 − e^{−2h}
        let cx = t.sigma / s.sigma * libm::expf(-h);
        let c0 = t.alpha * one_minus;
        let g = t.sigma * libm::sqrtf(one_minus);
        noise.fill(j, stream::STEP, z);
        if order == 1 {
            for ((xi, &d0), &zi) in x.iter_mut().zip(x0.iter()).zip(z.iter()) {
                *xi = cx * *xi + c0 * d0 + g * zi;
            }
        } else {
            let r0 = (lam_s - self.timesteps.point(diff, self.steps, j - 1).lambda()) / h;
            for (((xi, &d0), &a), &zi) in x.iter_mut().zip(x0.iter()).zip(m1.iter()).zip(z.iter()) {
                let d1 = (1.0 / r0) * (d0 - a);
                *xi = cx * *xi + c0 * d0 + 0.5 * c0 * d1 + g * zi;
            }
        }
        m1.copy_from_slice(x0);
    }
}
