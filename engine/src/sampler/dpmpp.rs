//! DPM-Solver++ multistep (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of
//! Diffusion Probabilistic Models", Algorithm 2 for order 2; the third-order multistep form of
//! diffusers' `DPMSolverMultistepScheduler`, `algorithm_type = "dpmsolver++"`,
//! `solver_type = "midpoint"`): an exponential integrator of the probability-flow ODE in the
//! data prediction x̂₀ = (x − σ ε̂)/α, stepping in λ = ln(α/σ).
//!
//! Step j from point s = j to t = j + 1 of the grid (`timesteps.rs`), with D₀ = x̂₀ at s and the
//! x̂₀ of the two steps before, m₁ (at s₁ = j − 1) and m₂ (at s₂ = j − 2), kept in the state:
//!
//! ```text
//! h = λ_t − λ_s,  h₀ = λ_s − λ_s₁,  h₁ = λ_s₁ − λ_s₂,  r₀ = h₀/h,  r₁ = h₁/h,  φ = e^{−h} − 1
//! order 1:  x ← (σ_t/σ_s)·x − α_t φ·D₀                              (= DDIM, η = 0)
//! order 2:  D₁ = (D₀ − m₁)/r₀;  x ← (σ_t/σ_s)·x − α_t φ·D₀ − ½ α_t φ·D₁
//! order 3:  D₁₀ = (D₀ − m₁)/r₀,  D₁₁ = (m₁ − m₂)/r₁,
//!           D₁ = D₁₀ + r₀/(r₀ + r₁)·(D₁₀ − D₁₁),  D₂ = (D₁₀ − D₁₁)/(r₀ + r₁)
//!           x ← (σ_t/σ_s)·x − α_t φ·D₀ + α_t (φ/h + 1)·D₁ − α_t ((φ + h)/h² − ½)·D₂
//! ```
//!
//! A step ending at σ_t = 0 (the discrete process's end) returns x ← D₀, the limit of every
//! order. Orders warm up and fall at the end (`timesteps::multistep_order`). Defined for every
//! process: it needs only x_t = α_t x₀ + σ_t ε, which holds for the discrete VP, VP, sub-VP and
//! VE processes (VE: α = 1, λ = −ln σ). One evaluation per step; deterministic.

use super::timesteps::{multistep_order, Point, Timesteps};
use super::{EpsModel, SamplerError};
use crate::schedule::Diffusion;

/// DPM-Solver++ multistep settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Dpmpp {
    /// Steps S (= network evaluations).
    pub steps: u32,
    /// The solver order, 1..=3 (2: DPM-Solver++(2M), 3: (3M)).
    pub order: u32,
    /// Which times it visits.
    pub timesteps: Timesteps,
}

impl Dpmpp {
    /// The `--sampler` name.
    pub fn name(&self) -> &'static str {
        match self.order {
            1 => "dpmpp-1m",
            2 => "dpmpp-2m",
            _ => "dpmpp-3m",
        }
    }

    /// Checks the settings against the process.
    pub fn check(&self, diff: &Diffusion) -> Result<(), SamplerError> {
        if !(1..=3).contains(&self.order) {
            return Err(SamplerError::Parameter { what: "the DPM-Solver++ order must be 1, 2 or 3" });
        }
        self.timesteps.check(diff, self.steps, self.name())
    }

    /// Step j (0..S) in place on `x`; `history` holds the x̂₀ of steps j − 1 and j − 2 and is
    /// shifted to hold those of j and j − 1.
    pub fn step<const D: usize, M: EpsModel + ?Sized>(
        &self,
        model: &mut M,
        diff: &Diffusion,
        j: u32,
        x: &mut [f32],
        history: &mut [[f32; D]; 2],
    ) {
        let d = x.len();
        let s = self.timesteps.point(diff, self.steps, j);
        let t = self.timesteps.point(diff, self.steps, j + 1);
        let mut x0 = [0.0f32; D]; // (D,) ε̂, then D₀ = x̂₀
        let x0 = &mut x0[..d];
        model.eps(x, s.t, x0);
        s.data_prediction(x, x0);
        let order = multistep_order(self.order, self.steps, j, t.sigma == 0.0);
        // λ of the two points before s, where the history's x̂₀ were made (unused below order 2).
        let lambda_at = |k: u32| self.timesteps.point(diff, self.steps, k).lambda();
        let lam_s1 = if order >= 2 { lambda_at(j - 1) } else { 0.0 };
        let lam_s2 = if order >= 3 { lambda_at(j - 2) } else { 0.0 };
        update(x, x0, history, &s, &t, order, [lam_s1, lam_s2]);
        let [m1, m2] = history;
        m2[..d].copy_from_slice(&m1[..d]);
        m1[..d].copy_from_slice(x0);
    }
}

/// The DPM-Solver++ update of `x` from s to t with D₀ = `x0`, the earlier x̂₀ in `history` and
/// their λ in `lam_prev` (λ_s₁, λ_s₂; read only by the orders that use them).
fn update<const D: usize>(
    x: &mut [f32],
    x0: &[f32],
    history: &[[f32; D]; 2],
    s: &Point,
    t: &Point,
    order: u32,
    lam_prev: [f32; 2],
) {
    if t.sigma == 0.0 {
        x.copy_from_slice(x0);
        return;
    }
    let (lam_s, lam_t) = (s.lambda(), t.lambda());
    let [lam_s1, lam_s2] = lam_prev;
    let h = lam_t - lam_s;
    let phi = libm::expm1f(-h);
    let cx = t.sigma / s.sigma;
    let c0 = -t.alpha * phi;
    let [m1, m2] = history;
    match order {
        1 => {
            for (xi, &d0) in x.iter_mut().zip(x0) {
                *xi = cx * *xi + c0 * d0;
            }
        }
        2 => {
            let r0 = (lam_s - lam_s1) / h;
            for ((xi, &d0), &a) in x.iter_mut().zip(x0).zip(m1.iter()) {
                let d1 = (1.0 / r0) * (d0 - a);
                *xi = cx * *xi + c0 * d0 + 0.5 * c0 * d1;
            }
        }
        _ => {
            let (r0, r1) = ((lam_s - lam_s1) / h, (lam_s1 - lam_s2) / h);
            let c1 = t.alpha * (phi / h + 1.0);
            let c2 = t.alpha * ((phi + h) / (h * h) - 0.5);
            for (((xi, &d0), &a), &b) in x.iter_mut().zip(x0).zip(m1.iter()).zip(m2.iter()) {
                let d10 = (1.0 / r0) * (d0 - a);
                let d11 = (1.0 / r1) * (a - b);
                let d1 = d10 + (r0 / (r0 + r1)) * (d10 - d11);
                let d2 = (1.0 / (r0 + r1)) * (d10 - d11);
                *xi = cx * *xi + c0 * d0 + c1 * d1 - c2 * d2;
            }
        }
    }
}
