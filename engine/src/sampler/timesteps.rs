//! The time grid of the few-step solvers (`dpmpp`, `dpmpp_sde`, `unipc`): S + 1 points
//! (t_j, α_j, σ_j), j = 0..S, from the noisiest (j = 0) to the end (j = S), and their half-log-SNR
//! λ_j = ln α_j − ln σ_j (Lu et al. 2022, "DPM-Solver", §3.1), which is what the solvers step in.
//!
//! Discrete VP process (diffusers' multistep schedulers, `final_sigmas_type = "zero"`):
//!
//! ```text
//! spacing:  n_j = Spacing::step(N, S, j),  t_j = n_j/N,  α_j = √ᾱ_{n_j},  σ_j = √(1 − ᾱ_{n_j})
//! Karras:   σ̃_j = karras_sigma(σ̃(1/N), σ̃(1), S, j),  t_j = σ̃⁻¹(σ̃_j),  (α_j, σ_j) at t_j
//! end:      (t, α, σ) = (0, 1, 0), where x = x̂₀
//! ```
//!
//! with σ̃(t) = σ_t/α_t of the process (`Diffusion::ve_sigma`; between steps the discrete process
//! interpolates ln ᾱ, `schedule.rs`). Deviation: diffusers rounds the Karras times to whole steps
//! and keeps α, σ of σ̃_j, so the network sees a σ a little off its x; the ScoreNet takes any
//! t ∈ [0, 1], and here the time and the noise level of every point agree.
//!
//! Continuous processes (leading and linspace are about the discrete steps and are refused):
//! points uniform in λ from t = 1 to t_ε, λ_j = λ(1) + j/S·(λ(t_ε) − λ(1)), t_j = λ⁻¹(λ_j)
//! (DPM-Solver's "logSNR" steps, Lu et al. 2022, §3.3 and Appendix D), or Karras σ̃_j =
//! karras_sigma(σ̃(t_ε), σ̃(1), S + 1, j), j = 0..S, t_j = σ̃⁻¹(σ̃_j); the end is t_ε. Not the
//! uniform grid in t of the other samplers: on the VP and sub-VP SDEs it ends with one step far
//! longer in λ than those before (16 steps to t_ε = 10⁻³: h = 3.0 after 0.68), and the multistep
//! differences extrapolate over it (2M and 3M then do worse than 1M, `tests/few_step.rs`).

use super::SamplerError;
use crate::schedule::{karras_sigma, Diffusion, Spacing};

/// Which times a few-step solver visits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Timesteps {
    /// The discrete steps' spacing (continuous processes: trailing only, their uniform grid).
    pub spacing: Spacing,
    /// Karras et al. 2022 noise levels (ρ = 7) instead of the spacing (which must then be the
    /// default, trailing).
    pub karras: bool,
}

/// One point of the grid.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// The network's time input.
    pub t: f32,
    /// α_t.
    pub alpha: f32,
    /// σ_t (0 at the discrete process's end).
    pub sigma: f32,
}

impl Point {
    /// λ = ln α − ln σ (+∞ at σ = 0).
    #[inline]
    pub fn lambda(&self) -> f32 {
        libm::logf(self.alpha) - libm::logf(self.sigma)
    }

    /// x̂₀ = (x − σ·ε̂)/α, in place on `eps` (Tweedie; the data prediction of DPM-Solver++).
    #[inline]
    pub fn data_prediction(&self, x: &[f32], eps: &mut [f32]) {
        for (e, &xi) in eps.iter_mut().zip(x) {
            *e = (xi - self.sigma * *e) / self.alpha;
        }
    }
}

impl Timesteps {
    /// Checks `steps` and the settings against the process (`sampler`: the name in the error).
    pub fn check(&self, diff: &Diffusion, steps: u32, sampler: &'static str) -> Result<(), SamplerError> {
        if self.karras && self.spacing != Spacing::Trailing {
            return Err(SamplerError::Parameter {
                what: "Karras sigmas replace the spacing: give one of --karras and --spacing",
            });
        }
        let max = match diff.discrete() {
            Some(d) if self.karras => d.steps(),
            Some(d) => self.spacing.max_steps(d.steps()),
            None if self.spacing != Spacing::Trailing => {
                return Err(SamplerError::Spacing { sampler, spacing: self.spacing.name() })
            }
            None => super::MAX_SAMPLER_STEPS,
        };
        super::check_steps(steps, max)
    }

    /// Point j (0..=S) of the grid of S steps; the settings must have passed [`Timesteps::check`].
    pub fn point(&self, diff: &Diffusion, steps: u32, j: u32) -> Point {
        match diff.discrete() {
            Some(_) if j >= steps => Point { t: 0.0, alpha: 1.0, sigma: 0.0 },
            Some(d) if !self.karras => {
                let n = self.spacing.step(d.steps(), steps, j) as usize;
                Point { t: d.time(n), alpha: d.alpha(n), sigma: d.sigma(n) }
            }
            _ => {
                let t_min = diff.t_min();
                // The discrete process's S Karras levels end at its first step and then jump to
                // σ = 0; a continuous process's S + 1 levels end at t_ε.
                let last = if diff.discrete().is_some() { steps.saturating_sub(1) } else { steps };
                let t = if j == 0 {
                    1.0
                } else if j >= last {
                    t_min
                } else {
                    let (lo, hi) = (diff.ve_sigma(t_min) as f64, diff.ve_sigma(1.0) as f64);
                    let level = if self.karras {
                        karras_sigma(lo, hi, last + 1, j)
                    } else {
                        // Uniform in λ = −ln σ̃ (DPM-Solver's "logSNR" steps).
                        let (l0, l1) = (-libm::log(hi), -libm::log(lo));
                        libm::exp(-(l0 + (l1 - l0) * j as f64 / steps as f64))
                    };
                    diff.time_of_ve_sigma(level as f32, t_min, 1.0)
                };
                let (alpha, sigma) = diff.marginal(t);
                Point { t, alpha, sigma }
            }
        }
    }
}

/// The order of step j of S for a multistep solver of `order` with lower-order warm-up and
/// final steps, as diffusers' `DPMSolverMultistepScheduler.step` (`lower_order_final = True`):
/// step j uses at most j + 1 (the history it has); the last step is first order when it ends at
/// σ = 0 (`final_sigmas_type = "zero"`: λ = +∞ leaves no room for a difference) or S < 15, and
/// the one before it at most second order when S < 15 (Lu et al. 2022, "DPM-Solver++", §5:
/// lower orders at the end keep few-step sampling stable).
pub fn multistep_order(order: u32, steps: u32, j: u32, ends_at_zero: bool) -> u32 {
    let mut q = order.min(j + 1);
    if j + 1 == steps && (ends_at_zero || steps < 15) {
        q = 1;
    } else if j + 2 == steps && steps < 15 {
        q = q.min(2);
    }
    q.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{BetaSchedule, Sde, VpDiscrete};

    #[test]
    fn discrete_grid_ends_at_zero_and_decreases_in_sigma() {
        let diff = Diffusion::Discrete(VpDiscrete::new(1000, BetaSchedule::DDPM_LINEAR).unwrap());
        for ts in [
            Timesteps { spacing: Spacing::Trailing, karras: false },
            Timesteps { spacing: Spacing::Leading, karras: false },
            Timesteps { spacing: Spacing::Linspace, karras: false },
            Timesteps { spacing: Spacing::Trailing, karras: true },
        ] {
            ts.check(&diff, 10, "x").unwrap();
            let pts: Vec<Point> = (0..=10).map(|j| ts.point(&diff, 10, j)).collect();
            assert_eq!(pts[10], Point { t: 0.0, alpha: 1.0, sigma: 0.0 });
            assert!(pts.windows(2).all(|w| w[0].sigma > w[1].sigma && w[0].t >= w[1].t), "{ts:?}");
            for p in &pts {
                assert!((p.alpha * p.alpha + p.sigma * p.sigma - 1.0).abs() < 1e-5, "{ts:?} {p:?}");
            }
        }
        // Karras: from the table's noisiest σ̃ (t = 1) to its first step's (t = 1/N).
        let karras = Timesteps { spacing: Spacing::Trailing, karras: true };
        let (first, last) = (karras.point(&diff, 10, 0), karras.point(&diff, 10, 9));
        let d = diff.discrete().unwrap();
        assert!((first.sigma - d.sigma(1000)).abs() < 1e-6 && (first.t - 1.0).abs() < 1e-6, "{first:?}");
        assert!((last.sigma - d.sigma(1)).abs() < 1e-5 && (last.t - 1e-3).abs() < 1e-6, "{last:?}");
        assert_eq!(Timesteps::default().point(&diff, 10, 0).t, 1.0);
    }

    #[test]
    fn continuous_grids_and_refusals() {
        let vp = Diffusion::sde(Sde::VP, 1e-3).unwrap();
        let uni = Timesteps::default();
        assert_eq!(uni.point(&vp, 4, 4).t, 1e-3);
        assert_eq!(uni.point(&vp, 4, 0).t, 1.0);
        // Uniform in λ: the middle point's λ is the mean of the ends'.
        let lam = |t: f32| -libm::logf(vp.ve_sigma(t));
        assert!((uni.point(&vp, 4, 2).lambda() - 0.5 * (lam(1.0) + lam(1e-3))).abs() < 1e-3);
        let karras = Timesteps { spacing: Spacing::Trailing, karras: true };
        for (j, want) in [(0u32, 1.0f32), (8, 1e-3)] {
            assert!((karras.point(&vp, 8, j).t - want).abs() < 1e-5);
        }
        let lead = Timesteps { spacing: Spacing::Leading, karras: false };
        assert!(matches!(lead.check(&vp, 10, "unipc"), Err(SamplerError::Spacing { .. })));
        let both = Timesteps { spacing: Spacing::Linspace, karras: true };
        let disc = Diffusion::Discrete(VpDiscrete::new(100, BetaSchedule::DDPM_LINEAR).unwrap());
        assert!(matches!(both.check(&disc, 10, "unipc"), Err(SamplerError::Parameter { .. })));
        assert_eq!(lead.check(&disc, 100, "unipc"), Err(SamplerError::Steps { found: 100, max: 99 }));
        assert_eq!(uni.check(&disc, 0, "unipc"), Err(SamplerError::Steps { found: 0, max: 100 }));
    }

    #[test]
    fn orders_warm_up_and_lower_at_the_end() {
        let run = |order, steps, zero| {
            (0..steps).map(|j| multistep_order(order, steps, j, zero)).collect::<Vec<_>>()
        };
        assert_eq!(run(3, 6, true), [1, 2, 3, 3, 2, 1]);
        assert_eq!(run(2, 5, true), [1, 2, 2, 2, 1]);
        assert_eq!(run(3, 20, false), [&[1, 2][..], &[3; 18][..]].concat());
        assert_eq!(run(3, 20, true).last(), Some(&1));
        assert_eq!(run(1, 3, false), [1, 1, 1]);
        assert_eq!(run(2, 1, true), [1]);
    }
}
