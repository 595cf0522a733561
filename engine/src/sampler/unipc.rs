//! UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling of
//! Diffusion Models", Algorithms 1–3: UniP-p predictor and UniC-p corrector in the data
//! prediction, B(h) = e^{h} − 1 of the "bh2" variant), as diffusers' `UniPCMultistepScheduler`
//! (`predict_x0 = True`, `solver_type = "bh2"`, `lower_order_final = True`), orders 1 and 2.
//!
//! Step j: evaluate m_j = x̂₀(x_j, t_j) at the predicted x_j; if j > 0, correct x_j with it (UniC,
//! no extra evaluation: the corrected x_j is not evaluated again); then predict x_{j+1} (UniP).
//! With hh = −h, h = λ_t − λ_s for the step s → t, φ₁ = e^{hh} − 1, B = e^{hh} − 1 (bh2) and
//! b₁ = (φ₁/hh − 1)/B, b₂ = 2·((φ₁/hh − 1)/hh − ½)/B:
//!
//! ```text
//! UniP, s = j → t = j + 1, order p:
//!   x_{j+1} = (σ_t/σ_s)·x_j − α_t φ₁·m_j − α_t B·ρ_p·D₁,   D₁ = (m_{j−1} − m_j)/r,
//!   r = (λ_{j−1} − λ_j)/h,  ρ_p = ½ (p = 2; the term is absent for p = 1)
//! UniC, s = j − 1 → t = j, the order p of the predictor that made x_j:
//!   p = 1:  x_j ← x_j − α_t B·½·(m_j − m_{j−1})
//!   p = 2:  (ρ₀, ρ₁) solves [[1, 1], [r, 1]]·ρ = (b₁, b₂),  r = (λ_{j−2} − λ_{j−1})/h,
//!           D₁ = (m_{j−2} − m_{j−1})/r,  x_j ← x_j − α_t B·((ρ₀ − ½)·D₁ + ρ₁·(m_j − m_{j−1}))
//! ```
//!
//! The corrector is written as a change of the predicted x_j: the predictor and the corrector
//! share (σ_t/σ_s)·x_{j−1} − α_t φ₁·m_{j−1}, so x_j^c = x_j + α_t B·(ρ_p D₁ − ρ₀ D₁ − ρ₁(m_j −
//! m_{j−1})), and the state needs only m_{j−1}, m_{j−2} besides x (diffusers keeps x_{j−1} too;
//! the two differ by rounding). Orders: step j predicts with min(order, j + 1, S − j) (the last
//! step is first order; it ends at σ = 0 on the discrete process, where x_S = m_{S−1}). Every
//! process (as `dpmpp`). One evaluation per step; deterministic.

use super::timesteps::{Point, Timesteps};
use super::{EpsModel, SamplerError};
use crate::schedule::Diffusion;

/// UniPC settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct UniPc {
    /// Steps S (= network evaluations).
    pub steps: u32,
    /// The order of predictor and corrector, 1 or 2.
    pub order: u32,
    /// Which times it visits.
    pub timesteps: Timesteps,
}

impl UniPc {
    /// Checks the settings against the process.
    pub fn check(&self, diff: &Diffusion) -> Result<(), SamplerError> {
        if !(1..=2).contains(&self.order) {
            return Err(SamplerError::Parameter { what: "the UniPC order must be 1 or 2" });
        }
        self.timesteps.check(diff, self.steps, "unipc")
    }

    /// The predictor's order at step j.
    fn order_at(&self, j: u32) -> u32 {
        self.order.min(j + 1).min(self.steps.saturating_sub(j)).max(1)
    }

    /// Step j (0..S) in place on `x`; `history` holds m_{j−1}, m_{j−2} and is shifted to hold
    /// m_j, m_{j−1}.
    pub fn step<const D: usize, M: EpsModel + ?Sized>(
        &self,
        model: &mut M,
        diff: &Diffusion,
        j: u32,
        x: &mut [f32],
        history: &mut [[f32; D]; 2],
    ) {
        let d = x.len();
        let point = |k: u32| self.timesteps.point(diff, self.steps, k);
        let s = point(j);
        let mut m = [0.0f32; D]; // (D,) ε̂, then m_j = x̂₀
        let m = &mut m[..d];
        model.eps(x, s.t, m);
        s.data_prediction(x, m);
        let [m1, m2] = history;
        let (m1, m2) = (&mut m1[..d], &mut m2[..d]);
        if j > 0 {
            correct(x, m, m1, m2, &point(j - 1), &s, self.order_at(j - 1), || point(j - 2).lambda());
        }
        let t = point(j + 1);
        if t.sigma == 0.0 {
            x.copy_from_slice(m);
        } else {
            let h = t.lambda() - s.lambda();
            let b_h = libm::expm1f(-h);
            let cx = t.sigma / s.sigma;
            let c0 = t.alpha * b_h; // α_t φ₁ (φ₁ = B for bh2)
            if self.order_at(j) == 1 {
                for (xi, &mj) in x.iter_mut().zip(m.iter()) {
                    *xi = cx * *xi - c0 * mj;
                }
            } else {
                let r = (point(j - 1).lambda() - s.lambda()) / h;
                let c1 = t.alpha * b_h * 0.5;
                for ((xi, &mj), &a) in x.iter_mut().zip(m.iter()).zip(m1.iter()) {
                    let d1 = (a - mj) / r;
                    *xi = cx * *xi - c0 * mj - c1 * d1;
                }
            }
        }
        m2.copy_from_slice(m1);
        m1.copy_from_slice(m);
    }
}

/// UniC on x_j (see the module doc): s = point j − 1, t = point j, `order` the predictor's that
/// made x_j, `lam_s1` λ_{j−2} (asked for only at order 2).
#[allow(clippy::too_many_arguments)]
fn correct(
    x: &mut [f32],
    m: &[f32],
    m1: &[f32],
    m2: &[f32],
    s: &Point,
    t: &Point,
    order: u32,
    lam_s1: impl FnOnce() -> f32,
) {
    let lam_s = s.lambda();
    let h = t.lambda() - lam_s;
    let hh = -h;
    let b_h = libm::expm1f(hh);
    let c = t.alpha * b_h;
    if order == 1 {
        for ((xi, &mj), &a) in x.iter_mut().zip(m).zip(m1) {
            *xi -= c * (0.5 * (mj - a));
        }
        return;
    }
    let phi = b_h / hh - 1.0; // h_phi_k at k = 1
    let b1 = phi / b_h;
    let b2 = (phi / hh - 0.5) * 2.0 / b_h;
    let r = (lam_s1() - lam_s) / h;
    let rho0 = (b1 - b2) / (1.0 - r);
    let rho1 = b1 - rho0;
    for (((xi, &mj), &a), &b) in x.iter_mut().zip(m).zip(m1).zip(m2) {
        let d1 = (b - a) / r;
        *xi -= c * ((rho0 - 0.5) * d1 + rho1 * (mj - a));
    }
}
