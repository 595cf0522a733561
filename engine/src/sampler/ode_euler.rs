//! Euler's method on the probability-flow ODE (Song et al. 2021, "Score-Based Generative
//! Modeling through Stochastic Differential Equations", eq. 13):
//!
//! ```text
//! dx/dt = f(t)·x − ½ g(t)² s(x, t) = f(t)·x + ½ g(t)²·ε̂(x, t)/σ_t   =: v(x, t)
//! step k (Δ = t_k − t_{k+1} > 0):   x ← x − v(x, t_k)·Δ
//! ```
//!
//! Deterministic: the sample is a function of the initial noise alone. Fits every process. One
//! evaluation per step.

use super::{grid_time, EpsModel};
use crate::schedule::Diffusion;

/// Probability-flow ODE, Euler settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct OdeEuler {
    /// Steps S (1..=1000).
    pub steps: u32,
}

/// v(x, t) = f(t)·x + ½ g(t)²·ε̂(x, t)/σ_t, the probability-flow velocity, into `v`.
pub(crate) fn velocity<M: EpsModel + ?Sized>(
    model: &mut M,
    diff: &Diffusion,
    x: &[f32],
    t: f32,
    v: &mut [f32],
) {
    let (f, c) = diff.pf_ode(t);
    model.eps(x, t, v);
    for (vi, &xi) in v.iter_mut().zip(x) {
        *vi = f * xi + c * *vi;
    }
}

impl OdeEuler {
    /// Step k (0..S) in place on `x`.
    pub fn step<const D: usize, M: EpsModel + ?Sized>(
        &self,
        model: &mut M,
        diff: &Diffusion,
        k: u32,
        x: &mut [f32],
    ) {
        let t = grid_time(diff.t_min(), self.steps, k);
        let dt = t - grid_time(diff.t_min(), self.steps, k + 1);
        let mut v = [0.0f32; D];
        let v = &mut v[..x.len()];
        velocity(model, diff, x, t, v);
        for (xi, &vi) in x.iter_mut().zip(v.iter()) {
            *xi -= vi * dt;
        }
    }
}
