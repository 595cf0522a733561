//! Heun's method (explicit trapezoid) on the probability-flow ODE (Song et al. 2021, eq. 13;
//! the second-order step of Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based
//! Generative Models", Algorithm 1, lines 5–8):
//!
//! ```text
//! v(x, t) = f(t)·x + ½ g(t)²·ε̂(x, t)/σ_t,   Δ = t_k − t_{k+1} > 0
//! x' = x − v(x, t_k)·Δ
//! x ← x − ½·(v(x, t_k) + v(x', t_{k+1}))·Δ
//! ```
//!
//! Fits every process (the grid ends at t_min > 0, so the correction is taken at every step).
//! Two evaluations per step.

use super::ode_euler::velocity;
use super::{grid_time, EpsModel};
use crate::schedule::Diffusion;

/// Probability-flow ODE, Heun settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct OdeHeun {
    /// Steps S (1..=1000).
    pub steps: u32,
}

impl OdeHeun {
    /// Step k (0..S) in place on `x`.
    pub fn step<const D: usize, M: EpsModel + ?Sized>(
        &self,
        model: &mut M,
        diff: &Diffusion,
        k: u32,
        x: &mut [f32],
    ) {
        let d = x.len();
        let t = grid_time(diff.t_min(), self.steps, k);
        let t_next = grid_time(diff.t_min(), self.steps, k + 1);
        let dt = t - t_next;
        let (mut v, mut v2, mut xp) = ([0.0f32; D], [0.0f32; D], [0.0f32; D]);
        let (v, v2, xp) = (&mut v[..d], &mut v2[..d], &mut xp[..d]);
        velocity(model, diff, x, t, v);
        for ((p, &xi), &vi) in xp.iter_mut().zip(x.iter()).zip(v.iter()) {
            *p = xi - vi * dt;
        }
        velocity(model, diff, xp, t_next, v2);
        for ((xi, &a), &b) in x.iter_mut().zip(v.iter()).zip(v2.iter()) {
            *xi -= 0.5 * (a + b) * dt;
        }
    }
}
