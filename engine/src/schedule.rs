//! Diffusion processes: the noise schedule that sets x_t = α_t·x₀ + σ_t·ε.
//!
//! Version 1 of the format has the discrete variance-preserving process of DDPM (Ho et al. 2020):
//! N steps with variances β_1..β_N, ᾱ_n = Π_{i≤n}(1 − β_i), α_n = √ᾱ_n, σ_n = √(1 − ᾱ_n), and
//! step n ↔ diffusion time t = n/N. Two β schedules:
//!
//! * linear: β_n = β_start + (β_end − β_start)·(n − 1)/(N − 1) (Ho et al. 2020, §4: 1e-4 → 0.02);
//! * cosine: ᾱ(t) = f(t)/f(0), f(t) = cos²((t + s)/(1 + s)·π/2), β_n = min(1 − ᾱ_n/ᾱ_{n−1}, 0.999)
//!   (Nichol & Dhariwal 2021, eq. 17), with s = 0.008 by default.
//!
//! The table is computed once in f64 (products of up to 1000 factors) and stored in f32; `libm`
//! keeps it bit-identical on every target. Trainer and engine both use this one definition.

/// The largest number of discrete steps a file may declare (and the table's capacity).
pub const MAX_STEPS: usize = 1000;

/// Upper bound that the cosine schedule clips β to (Nichol & Dhariwal 2021).
pub const COSINE_MAX_BETA: f64 = 0.999;

/// How the variances β_1..β_N are laid out.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BetaSchedule {
    /// β linear from `beta_start` (step 1) to `beta_end` (step N).
    Linear {
        /// β_1.
        beta_start: f32,
        /// β_N.
        beta_end: f32,
    },
    /// The cosine ᾱ schedule with offset `s`.
    Cosine {
        /// The small offset s that keeps β_1 from vanishing.
        s: f32,
    },
}

impl BetaSchedule {
    /// The DDPM defaults: linear 1e-4 → 0.02.
    pub const DDPM_LINEAR: Self = Self::Linear { beta_start: 1e-4, beta_end: 0.02 };
    /// The improved-DDPM default: cosine with s = 0.008.
    pub const COSINE: Self = Self::Cosine { s: 0.008 };

    /// Whether the parameters describe a valid schedule (finite, 0 < β < 1, increasing; s ≥ 0).
    pub fn is_valid(&self) -> bool {
        match *self {
            Self::Linear { beta_start, beta_end } => {
                beta_start.is_finite()
                    && beta_end.is_finite()
                    && beta_start > 0.0
                    && beta_end < 1.0
                    && beta_start <= beta_end
            }
            Self::Cosine { s } => s.is_finite() && (0.0..=1.0).contains(&s),
        }
    }
}

/// The discrete VP process of DDPM with its ᾱ table.
#[derive(Clone, Debug)]
pub struct VpDiscrete {
    n: usize,
    schedule: BetaSchedule,
    /// ᾱ_n for n = 0..=N (ᾱ_0 = 1).
    alpha_bar: [f32; MAX_STEPS + 1],
    /// 1 − ᾱ_n, computed in f64 before rounding so small values keep their precision.
    one_minus_alpha_bar: [f32; MAX_STEPS + 1],
}

/// Why a schedule could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ScheduleError {
    /// N is 0 or above [`MAX_STEPS`].
    Steps {
        /// The N asked for.
        found: u32,
    },
    /// The β parameters are non-finite, outside (0, 1), or decreasing.
    Parameters,
    /// The resulting ᾱ is not strictly decreasing and positive.
    NotMonotonic,
}

impl VpDiscrete {
    /// Builds the table for `n` steps of `schedule`.
    pub fn new(n: u32, schedule: BetaSchedule) -> Result<Self, ScheduleError> {
        if n == 0 || n as usize > MAX_STEPS {
            return Err(ScheduleError::Steps { found: n });
        }
        if !schedule.is_valid() {
            return Err(ScheduleError::Parameters);
        }
        let n = n as usize;
        let mut alpha_bar = [0.0f32; MAX_STEPS + 1];
        let mut one_minus = [0.0f32; MAX_STEPS + 1];
        alpha_bar[0] = 1.0;
        let mut ab = 1.0f64;
        let cosine_f = |t: f64, s: f64| {
            let c = libm::cos((t + s) / (1.0 + s) * core::f64::consts::FRAC_PI_2);
            c * c
        };
        for i in 1..=n {
            let beta = match schedule {
                BetaSchedule::Linear { beta_start, beta_end } => {
                    let (b0, b1) = (beta_start as f64, beta_end as f64);
                    if n == 1 {
                        b0
                    } else {
                        b0 + (b1 - b0) * (i - 1) as f64 / (n - 1) as f64
                    }
                }
                BetaSchedule::Cosine { s } => {
                    let s = s as f64;
                    let f0 = cosine_f(0.0, s);
                    let prev = cosine_f((i - 1) as f64 / n as f64, s) / f0;
                    let cur = cosine_f(i as f64 / n as f64, s) / f0;
                    let b = 1.0 - cur / prev;
                    if b < COSINE_MAX_BETA {
                        b
                    } else {
                        COSINE_MAX_BETA
                    }
                }
            };
            let next = ab * (1.0 - beta);
            if !(next > 0.0 && next < ab) {
                return Err(ScheduleError::NotMonotonic);
            }
            ab = next;
            alpha_bar[i] = ab as f32;
            one_minus[i] = (1.0 - ab) as f32;
        }
        Ok(Self { n, schedule, alpha_bar, one_minus_alpha_bar: one_minus })
    }

    /// N, the number of steps.
    #[inline]
    pub fn steps(&self) -> u32 {
        self.n as u32
    }

    /// The β schedule this table was built from.
    #[inline]
    pub fn schedule(&self) -> BetaSchedule {
        self.schedule
    }

    /// ᾱ_n for n in 0..=N (n is clamped to N).
    #[inline]
    pub fn alpha_bar(&self, n: usize) -> f32 {
        self.alpha_bar[n.min(self.n)]
    }

    /// 1 − ᾱ_n for n in 0..=N (n is clamped to N).
    #[inline]
    pub fn one_minus_alpha_bar(&self, n: usize) -> f32 {
        self.one_minus_alpha_bar[n.min(self.n)]
    }

    /// α_n = √ᾱ_n, the signal scale at step n.
    #[inline]
    pub fn alpha(&self, n: usize) -> f32 {
        libm::sqrtf(self.alpha_bar(n))
    }

    /// σ_n = √(1 − ᾱ_n), the noise scale at step n.
    #[inline]
    pub fn sigma(&self, n: usize) -> f32 {
        libm::sqrtf(self.one_minus_alpha_bar(n))
    }

    /// The network's time input for step n: t = n/N.
    #[inline]
    pub fn time(&self, n: usize) -> f32 {
        n as f32 / self.n as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_matches_closed_form_and_ends_near_zero() {
        let s = VpDiscrete::new(1000, BetaSchedule::DDPM_LINEAR).unwrap();
        assert_eq!(s.alpha_bar(0), 1.0);
        assert!((s.alpha_bar(1) - 0.9999).abs() < 1e-7);
        assert!((s.one_minus_alpha_bar(1) - 1e-4).abs() < 1e-9);
        // DDPM's ᾱ_T is about 4e-5.
        assert!(s.alpha_bar(1000) > 1e-5 && s.alpha_bar(1000) < 1e-4);
        for n in 1..=1000 {
            assert!(s.alpha_bar(n) < s.alpha_bar(n - 1));
        }
    }

    #[test]
    fn cosine_follows_its_definition() {
        let s = VpDiscrete::new(1000, BetaSchedule::COSINE).unwrap();
        let f = |t: f64| {
            let c = ((t + 0.008) / 1.008 * core::f64::consts::FRAC_PI_2).cos();
            c * c
        };
        for n in [1usize, 10, 500, 900] {
            let want = f(n as f64 / 1000.0) / f(0.0);
            assert!((s.alpha_bar(n) as f64 - want).abs() < 1e-6, "n={n}");
        }
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert_eq!(
            VpDiscrete::new(0, BetaSchedule::DDPM_LINEAR).unwrap_err(),
            ScheduleError::Steps { found: 0 }
        );
        assert_eq!(
            VpDiscrete::new(1001, BetaSchedule::DDPM_LINEAR).unwrap_err(),
            ScheduleError::Steps { found: 1001 }
        );
        for bad in [
            BetaSchedule::Linear { beta_start: 0.0, beta_end: 0.02 },
            BetaSchedule::Linear { beta_start: 0.1, beta_end: 1.0 },
            BetaSchedule::Linear { beta_start: 0.1, beta_end: 0.01 },
            BetaSchedule::Linear { beta_start: f32::NAN, beta_end: 0.02 },
            BetaSchedule::Cosine { s: -1.0 },
        ] {
            assert_eq!(VpDiscrete::new(100, bad).unwrap_err(), ScheduleError::Parameters);
        }
    }
}
