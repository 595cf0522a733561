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
    /// A discrete table was asked of a continuous process.
    NotDiscrete,
}

impl VpDiscrete {
    /// Builds the table for `n` steps of `schedule`.
    pub fn new(n: u32, schedule: BetaSchedule) -> Result<Self, ScheduleError> {
        let mut alpha_bar = [0.0f32; MAX_STEPS + 1];
        let mut one_minus = [0.0f32; MAX_STEPS + 1];
        fill_tables(n, schedule, &mut alpha_bar, &mut one_minus)?;
        Ok(Self { n: n as usize, schedule, alpha_bar, one_minus_alpha_bar: one_minus })
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

/// Writes ᾱ_n and 1 − ᾱ_n for n = 0..=N of `schedule` into the tables (entries above N are left
/// as they were). The one computation behind [`VpDiscrete::new`] and [`Diffusion::set_discrete`].
fn fill_tables(
    n: u32,
    schedule: BetaSchedule,
    alpha_bar: &mut [f32; MAX_STEPS + 1],
    one_minus: &mut [f32; MAX_STEPS + 1],
) -> Result<(), ScheduleError> {
    if n == 0 || n as usize > MAX_STEPS {
        return Err(ScheduleError::Steps { found: n });
    }
    if !schedule.is_valid() {
        return Err(ScheduleError::Parameters);
    }
    let n = n as usize;
    alpha_bar[0] = 1.0;
    one_minus[0] = 0.0;
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
    Ok(())
}

/// The largest β the VP and sub-VP SDEs accept (β_max; keeps exp(−∫β) representable).
pub const MAX_SDE_BETA: f32 = 100.0;
/// The largest σ_max the VE SDE accepts.
pub const MAX_VE_SIGMA: f32 = 1.0e4;

/// A continuous-time diffusion SDE dx = f(t)·x dt + g(t) dw on t ∈ [0, 1] (Song et al. 2021,
/// "Score-Based Generative Modeling through Stochastic Differential Equations", §3.4 and
/// Appendix B), with its marginal x_t = α_t·x₀ + σ_t·ε:
///
/// * VP: β(t) = β_min + t(β_max − β_min), B(t) = ∫₀ᵗβ = β_min t + ½(β_max − β_min)t²,
///   α_t = e^{−B/2}, σ_t = √(1 − e^{−B}), f = −β/2, g² = β (eq. 32–33);
/// * sub-VP: α_t as VP, σ_t = 1 − e^{−B}, f = −β/2, g² = β(1 − e^{−2B}) (eq. 34–35);
/// * VE: α_t = 1, σ_t = σ_min(σ_max/σ_min)^t, f = 0, g² = 2σ_t²·ln(σ_max/σ_min) (eq. 30–31; the
///   geometric noise levels of NCSN, Song & Ermon 2019).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Sde {
    /// Variance-preserving SDE (the continuous limit of DDPM).
    Vp {
        /// β(0).
        beta_min: f32,
        /// β(1).
        beta_max: f32,
    },
    /// Sub-variance-preserving SDE.
    SubVp {
        /// β(0).
        beta_min: f32,
        /// β(1).
        beta_max: f32,
    },
    /// Variance-exploding SDE.
    Ve {
        /// σ(0).
        sigma_min: f32,
        /// σ(1).
        sigma_max: f32,
    },
}

impl Sde {
    /// score_sde's VP defaults: β from 0.1 to 20 (the DDPM linear schedule with N = 1000).
    pub const VP: Self = Self::Vp { beta_min: 0.1, beta_max: 20.0 };
    /// score_sde's sub-VP defaults.
    pub const SUB_VP: Self = Self::SubVp { beta_min: 0.1, beta_max: 20.0 };
    /// VE defaults for data normalised to unit variance: σ from 0.01 to 50 (σ_max about the
    /// largest distance between two training points, Song & Ermon 2020, technique 1).
    pub const VE: Self = Self::Ve { sigma_min: 0.01, sigma_max: 50.0 };

    /// Whether the parameters are valid: finite, 0 < β_min ≤ β_max ≤ [`MAX_SDE_BETA`], or
    /// 0 < σ_min < σ_max ≤ [`MAX_VE_SIGMA`].
    pub fn is_valid(&self) -> bool {
        match *self {
            Self::Vp { beta_min, beta_max } | Self::SubVp { beta_min, beta_max } => {
                beta_min.is_finite()
                    && beta_max.is_finite()
                    && beta_min > 0.0
                    && beta_min <= beta_max
                    && beta_max <= MAX_SDE_BETA
            }
            Self::Ve { sigma_min, sigma_max } => {
                sigma_min.is_finite()
                    && sigma_max.is_finite()
                    && sigma_min > 0.0
                    && sigma_min < sigma_max
                    && sigma_max <= MAX_VE_SIGMA
            }
        }
    }

    /// β(t) and B(t) = ∫₀ᵗβ of the VP-type SDEs (0 for VE).
    #[inline]
    fn beta_and_integral(&self, t: f32) -> (f32, f32) {
        match *self {
            Self::Vp { beta_min, beta_max } | Self::SubVp { beta_min, beta_max } => {
                let d = beta_max - beta_min;
                (beta_min + t * d, beta_min * t + 0.5 * d * t * t)
            }
            Self::Ve { .. } => (0.0, 0.0),
        }
    }

    /// ln σ(t) of the VE SDE.
    #[inline]
    fn ve_log_sigma(sigma_min: f32, sigma_max: f32, t: f32) -> f32 {
        let (a, b) = (libm::logf(sigma_min), libm::logf(sigma_max));
        a + t * (b - a)
    }

    /// (α_t, σ_t).
    pub fn marginal(&self, t: f32) -> (f32, f32) {
        match *self {
            Self::Vp { .. } => {
                let (_, b) = self.beta_and_integral(t);
                (libm::expf(-0.5 * b), libm::sqrtf(-libm::expm1f(-b)))
            }
            Self::SubVp { .. } => {
                let (_, b) = self.beta_and_integral(t);
                (libm::expf(-0.5 * b), -libm::expm1f(-b))
            }
            Self::Ve { sigma_min, sigma_max } => {
                (1.0, libm::expf(Self::ve_log_sigma(sigma_min, sigma_max, t)))
            }
        }
    }

    /// (f(t), g(t)²): the drift coefficient (f(x, t) = f(t)·x) and the squared diffusion.
    pub fn coefficients(&self, t: f32) -> (f32, f32) {
        match *self {
            Self::Vp { .. } => {
                let (beta, _) = self.beta_and_integral(t);
                (-0.5 * beta, beta)
            }
            Self::SubVp { .. } => {
                let (beta, b) = self.beta_and_integral(t);
                (-0.5 * beta, beta * -libm::expm1f(-2.0 * b))
            }
            Self::Ve { sigma_min, sigma_max } => {
                let s = libm::expf(Self::ve_log_sigma(sigma_min, sigma_max, t));
                (0.0, 2.0 * s * s * (libm::logf(sigma_max) - libm::logf(sigma_min)))
            }
        }
    }
}

/// The smallest end time t_ε a continuous process accepts is above 0 and below this.
pub const MAX_T_EPS: f32 = 0.5;

/// A diffusion process as the samplers and the trainer see it: α_t, σ_t, f(t), g(t)² on
/// continuous t ∈ [0, 1], plus the ᾱ table for the discrete VP process.
///
/// The discrete VP process is also a continuous one (Song et al. 2021, Appendix B: DDPM is the
/// VP SDE discretised): between steps, ln ᾱ is interpolated linearly in t, so on
/// t ∈ ((n−1)/N, n/N] the process has β(t) = N·ln(ᾱ_{n−1}/ᾱ_n) ≈ N·β_n, and at t = n/N it has
/// exactly the table's α_n, σ_n. That lets the SDE and ODE samplers run DDPM models.
#[derive(Clone, Debug)]
// The discrete table is large (8 KiB) and the SDE small; without a heap the engine cannot box it,
// and a process is built once per sampling run, so the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Diffusion {
    /// The discrete VP process of DDPM (its table).
    Discrete(VpDiscrete),
    /// A continuous SDE, integrated by samplers from t = 1 down to t = `t_eps`.
    Sde {
        /// The SDE.
        sde: Sde,
        /// The end time t_ε of sampling and the lower bound of training times.
        t_eps: f32,
    },
}

impl Diffusion {
    /// A continuous process, validated.
    pub fn sde(sde: Sde, t_eps: f32) -> Result<Self, ScheduleError> {
        Self::check_sde(sde, t_eps)?;
        Ok(Self::Sde { sde, t_eps })
    }

    /// [`Diffusion::sde`] written into `self` (no process-sized temporary).
    pub fn set_sde(&mut self, sde: Sde, t_eps: f32) -> Result<(), ScheduleError> {
        Self::check_sde(sde, t_eps)?;
        *self = Self::Sde { sde, t_eps };
        Ok(())
    }

    fn check_sde(sde: Sde, t_eps: f32) -> Result<(), ScheduleError> {
        if !(sde.is_valid() && t_eps.is_finite() && t_eps > 0.0 && t_eps < MAX_T_EPS) {
            return Err(ScheduleError::Parameters);
        }
        Ok(())
    }

    /// An unbuilt discrete process (N = 0, zero tables): a slot for [`Diffusion::set_discrete`]
    /// or `Process::diffusion_into` to build a process in, with no table on the stack but the
    /// slot's own. Build it before use: its values mean nothing (the samplers refuse N = 0).
    pub const UNBUILT: Self = Self::Discrete(VpDiscrete {
        n: 0,
        schedule: BetaSchedule::Linear { beta_start: 0.0, beta_end: 0.0 },
        alpha_bar: [0.0; MAX_STEPS + 1],
        one_minus_alpha_bar: [0.0; MAX_STEPS + 1],
    });

    /// Makes `self` the discrete VP process of `n` steps of `schedule`, writing its tables in
    /// place: the same values as `Diffusion::Discrete(VpDiscrete::new(n, schedule)?)`, without
    /// the 8 KiB temporaries that returning the process by value leaves on a small device's
    /// stack (start from [`Diffusion::UNBUILT`]; the firmware does). On an error `self` is left
    /// unbuilt (N = 0).
    pub fn set_discrete(&mut self, n: u32, schedule: BetaSchedule) -> Result<(), ScheduleError> {
        if !matches!(self, Self::Discrete(_)) {
            *self = Self::UNBUILT;
        }
        let Self::Discrete(table) = self else {
            return Err(ScheduleError::NotDiscrete);
        };
        // Unbuilt until the tables are complete, so a failure leaves no half-built process.
        table.n = 0;
        fill_tables(n, schedule, &mut table.alpha_bar, &mut table.one_minus_alpha_bar)?;
        table.n = n as usize;
        table.schedule = schedule;
        Ok(())
    }

    /// The discrete table, if this is the discrete process.
    pub fn discrete(&self) -> Option<&VpDiscrete> {
        match self {
            Self::Discrete(d) => Some(d),
            Self::Sde { .. } => None,
        }
    }

    /// Whether the process is variance-exploding (α_t = 1).
    pub fn is_ve(&self) -> bool {
        matches!(self, Self::Sde { sde: Sde::Ve { .. }, .. })
    }

    /// The time samplers end at: t_ε, or 1/N for the discrete process (its first step).
    pub fn t_min(&self) -> f32 {
        match self {
            Self::Discrete(d) => d.time(1),
            Self::Sde { t_eps, .. } => *t_eps,
        }
    }

    /// The standard deviation of the prior x_1 ~ N(0, s²I) samplers start from: σ_max for VE,
    /// 1 otherwise (score_sde's `prior_sampling`; data are normalised to unit variance).
    pub fn prior_std(&self) -> f32 {
        match *self {
            Self::Sde { sde: Sde::Ve { sigma_max, .. }, .. } => sigma_max,
            _ => 1.0,
        }
    }

    /// ln ᾱ(t) of the discrete process, interpolated linearly in t between steps, and the
    /// segment's β(t) = N·(ln ᾱ_{n−1} − ln ᾱ_n).
    fn discrete_log_alpha_bar(d: &VpDiscrete, t: f32) -> (f32, f32) {
        let big_n = d.steps();
        let u = (t * big_n as f32).clamp(0.0, big_n as f32);
        let n = (libm::ceilf(u) as u32).clamp(1, big_n) as usize;
        let w = u - (n - 1) as f32;
        let ln = |k: usize| libm::log1pf(-d.one_minus_alpha_bar(k));
        let (a, b) = (ln(n - 1), ln(n));
        ((1.0 - w) * a + w * b, big_n as f32 * (a - b))
    }

    /// (α_t, σ_t) at time t ∈ [0, 1].
    pub fn marginal(&self, t: f32) -> (f32, f32) {
        match self {
            Self::Discrete(d) => {
                let (l, _) = Self::discrete_log_alpha_bar(d, t);
                (libm::expf(0.5 * l), libm::sqrtf(-libm::expm1f(l)))
            }
            Self::Sde { sde, .. } => sde.marginal(t),
        }
    }

    /// (f(t), g(t)²) at time t ∈ [0, 1].
    pub fn coefficients(&self, t: f32) -> (f32, f32) {
        match self {
            Self::Discrete(d) => {
                let (_, beta) = Self::discrete_log_alpha_bar(d, t);
                (-0.5 * beta, beta)
            }
            Self::Sde { sde, .. } => sde.coefficients(t),
        }
    }

    /// The probability-flow ODE (Song et al. 2021, eq. 13) in ε terms, as (f(t), c(t)) with
    /// c = ½·g(t)²/σ_t:
    ///
    /// ```text
    /// dx/dt = f(t)·x − ½ g(t)²·∇log p_t(x) = f(t)·x + c(t)·ε̂(x, t)
    /// ∇·(dx/dt) = D·f(t) + c(t)·tr(∂ε̂/∂x)
    /// ```
    ///
    /// The one definition of the drift that the ODE samplers and the likelihood use.
    #[inline]
    pub fn pf_ode(&self, t: f32) -> (f32, f32) {
        let (f, g2) = self.coefficients(t);
        let (_, sigma) = self.marginal(t);
        (f, 0.5 * g2 / sigma)
    }
}

/// How a few-step solver picks its S steps among the N of the discrete process: the meanings of
/// diffusers' `timestep_spacing` in its multistep schedulers (`DPMSolverMultistepScheduler`,
/// `UniPCMultistepScheduler`, `set_timesteps`), with `steps_offset` = 0. In diffusers' 0-based
/// timesteps k (our step n = k + 1, time t = n/N), for j = 0..S−1 from the noisiest:
///
/// ```text
/// leading:   k_j = (S − j)·⌊N/(S + 1)⌋
/// trailing:  k_j = round(N − j·N/S) − 1
/// linspace:  k_j = round((S − j)·(N − 1)/S)
/// ```
///
/// with round-half-to-even (numpy's `round`). Trailing starts at the last step N and, when S
/// divides N, visits exactly the steps ⌊i·N/S⌋ of `ddpm` and `ddim` (Lin et al. 2024, "Common
/// Diffusion Noise Schedules and Sample Steps are Flawed", §3.3, recommend it for few steps);
/// leading and linspace start below N.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Spacing {
    /// k_j = (S − j)·⌊N/(S + 1)⌋.
    Leading,
    /// k_j = round(N − j·N/S) − 1 (the default).
    #[default]
    Trailing,
    /// k_j = round((S − j)·(N − 1)/S).
    Linspace,
}

impl Spacing {
    /// The name `tinyscore sample --spacing` uses.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Leading => "leading",
            Self::Trailing => "trailing",
            Self::Linspace => "linspace",
        }
    }

    /// The largest S for which the S steps of N are distinct (and the last above 0 for leading).
    pub fn max_steps(&self, n: u32) -> u32 {
        match self {
            Self::Leading | Self::Linspace => n.saturating_sub(1),
            Self::Trailing => n,
        }
    }

    /// The step n_j ∈ 1..=N (1-based: diffusers' k_j + 1) visited j steps from the noisiest, for
    /// j in 0..S, S in 1..=[`Spacing::max_steps`]; strictly decreasing in j.
    pub fn step(&self, n: u32, steps: u32, j: u32) -> u32 {
        let (big_n, s, j) = (n as f64, steps.max(1) as f64, j.min(steps) as f64);
        let k = match self {
            Self::Leading => (steps - j as u32) as f64 * (n / (steps + 1)) as f64,
            Self::Trailing => libm::rint(big_n + j * -(big_n / s)) - 1.0,
            Self::Linspace => libm::rint((s - j) * ((big_n - 1.0) / s)),
        };
        (k as u32 + 1).clamp(1, n.max(1))
    }
}

/// The ρ of Karras et al. 2022 ("Elucidating the Design Space of Diffusion-Based Generative
/// Models", eq. 5): 7.
pub const KARRAS_RHO: f64 = 7.0;

/// Karras et al. 2022, eq. 5: the noise level σ̃_j = (σ̃_max^{1/ρ} + j/(S−1)·(σ̃_min^{1/ρ} −
/// σ̃_max^{1/ρ}))^ρ, j = 0..S−1, of the variance-exploding form σ̃ = σ_t/α_t, from σ̃_max at
/// j = 0 to σ̃_min at j = S−1 (S = 1: σ̃_max), with ρ = [`KARRAS_RHO`]; computed in f64.
pub fn karras_sigma(sigma_min: f64, sigma_max: f64, steps: u32, j: u32) -> f64 {
    let ramp = if steps <= 1 { 0.0 } else { j.min(steps - 1) as f64 / (steps - 1) as f64 };
    let (lo, hi) = (libm::pow(sigma_min, 1.0 / KARRAS_RHO), libm::pow(sigma_max, 1.0 / KARRAS_RHO));
    libm::pow(hi + ramp * (lo - hi), KARRAS_RHO)
}

impl Diffusion {
    /// σ̃(t) = σ_t/α_t, the process's noise level in variance-exploding form (Karras et al. 2022,
    /// §4: every process is the VE one, x/α_t, with σ̃); increasing in t.
    pub fn ve_sigma(&self, t: f32) -> f32 {
        let (alpha, sigma) = self.marginal(t);
        sigma / alpha
    }

    /// The time t ∈ [t_lo, t_hi] at which σ̃(t) = `target` (clamped to the ends), by 48 bisections
    /// of the increasing σ̃(t): the inverse that the Karras grid needs on every process, with no
    /// closed form per process to keep in step with [`Diffusion::marginal`].
    pub fn time_of_ve_sigma(&self, target: f32, t_lo: f32, t_hi: f32) -> f32 {
        let (mut lo, mut hi) = (t_lo, t_hi);
        // NaN fails both comparisons and ends at `lo`.
        if target.is_nan() || target <= self.ve_sigma(lo) {
            return lo;
        }
        if target >= self.ve_sigma(hi) {
            return hi;
        }
        for _ in 0..48 {
            let mid = 0.5 * (lo + hi);
            if mid <= lo || mid >= hi {
                break;
            }
            if self.ve_sigma(mid) < target {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        0.5 * (lo + hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_discrete_builds_the_same_bits_as_new_in_place() {
        let same = |a: &VpDiscrete, b: &VpDiscrete| {
            a.steps() == b.steps()
                && a.schedule() == b.schedule()
                && (0..=MAX_STEPS).all(|n| {
                    a.alpha_bar(n).to_bits() == b.alpha_bar(n).to_bits()
                        && a.one_minus_alpha_bar(n).to_bits() == b.one_minus_alpha_bar(n).to_bits()
                })
        };
        // From a continuous process, then rebuilt over a longer and a shorter table.
        let mut slot = Diffusion::sde(Sde::VP, 1e-3).unwrap();
        for (n, sched) in
            [(1000, BetaSchedule::DDPM_LINEAR), (1, BetaSchedule::COSINE), (37, BetaSchedule::COSINE)]
        {
            slot.set_discrete(n, sched).unwrap();
            let want = VpDiscrete::new(n, sched).unwrap();
            assert!(same(slot.discrete().unwrap(), &want), "n={n} {sched:?}");
        }
        for (n, sched) in [(0, BetaSchedule::COSINE), (1001, BetaSchedule::COSINE)] {
            assert_eq!(slot.set_discrete(n, sched), Err(ScheduleError::Steps { found: n }));
        }
        let bad = BetaSchedule::Linear { beta_start: 0.5, beta_end: 0.1 };
        assert_eq!(slot.set_discrete(10, bad), Err(ScheduleError::Parameters));
        assert_eq!(slot.discrete().map(VpDiscrete::steps), Some(0), "a failed build leaves it unbuilt");
        // And back to a continuous process, validated like `Diffusion::sde`.
        slot.set_sde(Sde::VE, 1e-3).unwrap();
        assert!(matches!(slot, Diffusion::Sde { sde: Sde::VE, .. }));
        assert_eq!(slot.set_sde(Sde::VE, 0.0), Err(ScheduleError::Parameters));
    }

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

    #[test]
    fn sde_marginals_match_closed_forms() {
        let vp = Sde::VP;
        for t in [0.001f32, 0.1, 0.5, 1.0] {
            let b = 0.1 * t as f64 + 0.5 * 19.9 * (t as f64) * (t as f64);
            let (a, s) = vp.marginal(t);
            assert!((a as f64 - (-0.5 * b).exp()).abs() < 1e-6);
            assert!((s as f64 - (1.0 - (-b).exp()).sqrt()).abs() < 1e-5 * (1.0 + 1.0 / s as f64));
            let (a2, s2) = Sde::SUB_VP.marginal(t);
            assert_eq!(a2, a);
            assert!((s2 as f64 - (1.0 - (-b).exp())).abs() < 1e-6);
            let (_, g2) = Sde::SUB_VP.coefficients(t);
            let beta = 0.1 + 19.9 * t as f64;
            assert!((g2 as f64 - beta * (1.0 - (-2.0 * b).exp())).abs() < 1e-4 * beta);
            let (a3, s3) = Sde::VE.marginal(t);
            assert_eq!(a3, 1.0);
            let want = 0.01 * 5000f64.powf(t as f64);
            assert!((s3 as f64 - want).abs() < 1e-5 * want);
        }
        // d σ²/dt = g² for VE; d ln α/dt = f for VP (finite differences).
        let h = 1e-3f32;
        let (_, sa) = Sde::VE.marginal(0.5 - h);
        let (_, sb) = Sde::VE.marginal(0.5 + h);
        let (_, g2) = Sde::VE.coefficients(0.5);
        assert!((((sb * sb - sa * sa) / (2.0 * h)) - g2).abs() < 1e-3 * g2);
    }

    #[test]
    fn discrete_process_interpolates_its_table() {
        let d = VpDiscrete::new(100, BetaSchedule::DDPM_LINEAR).unwrap();
        let p = Diffusion::Discrete(d.clone());
        for n in [1usize, 2, 50, 100] {
            let (a, s) = p.marginal(d.time(n));
            assert!((a - d.alpha(n)).abs() < 1e-6, "n={n}");
            assert!((s - d.sigma(n)).abs() < 1e-5 * d.sigma(n), "n={n}");
        }
        let (f, g2) = p.coefficients(0.505);
        let beta51 = 1e-4 + (0.02 - 1e-4) * 50.0 / 99.0;
        assert!((g2 - 100.0 * beta51).abs() < 0.01 * g2 && f == -0.5 * g2);
        assert!(Diffusion::sde(Sde::VP, 0.0).is_err());
        assert!(Diffusion::sde(Sde::Ve { sigma_min: 1.0, sigma_max: 0.5 }, 1e-3).is_err());
    }
    #[test]
    fn spacings_follow_diffusers() {
        // diffusers DPMSolverMultistepScheduler(num_train_timesteps=1000).set_timesteps(10).
        let want_lead = [900, 810, 720, 630, 540, 450, 360, 270, 180, 90];
        let want_trail = [999, 899, 799, 699, 599, 499, 399, 299, 199, 99];
        let want_lin = [999, 899, 799, 699, 599, 500, 400, 300, 200, 100];
        for (spacing, want) in
            [(Spacing::Leading, want_lead), (Spacing::Trailing, want_trail), (Spacing::Linspace, want_lin)]
        {
            let got: Vec<u32> = (0..10).map(|j| spacing.step(1000, 10, j) - 1).collect();
            assert_eq!(got, want, "{spacing:?}");
        }
        // Trailing at a ratio with halves rounds half to even, as numpy: 1000/16 = 62.5.
        assert_eq!(Spacing::Trailing.step(1000, 16, 1) - 1, 937); // round(937.5) = 938, − 1
        assert_eq!(Spacing::Trailing.step(1000, 16, 3) - 1, 811); // round(812.5) = 812, − 1
        for spacing in [Spacing::Leading, Spacing::Trailing, Spacing::Linspace] {
            for n in [2u32, 10, 37, 1000] {
                for s in [1, 2, 3, spacing.max_steps(n) / 2, spacing.max_steps(n)] {
                    if s == 0 || s > spacing.max_steps(n) {
                        continue;
                    }
                    let steps: Vec<u32> = (0..s).map(|j| spacing.step(n, s, j)).collect();
                    assert!(steps.windows(2).all(|w| w[0] > w[1]), "{spacing:?} N={n} S={s}: {steps:?}");
                    assert!(steps.iter().all(|&k| (1..=n).contains(&k)), "{spacing:?} N={n} S={s}");
                }
            }
        }
    }

    #[test]
    fn karras_sigmas_run_from_max_to_min_and_invert() {
        assert_eq!(karras_sigma(0.002, 80.0, 1, 0), 80.0);
        let s: Vec<f64> = (0..10).map(|j| karras_sigma(0.002, 80.0, 10, j)).collect();
        assert!((s[0] - 80.0).abs() < 1e-9 && (s[9] - 0.002).abs() < 1e-12);
        assert!(s.windows(2).all(|w| w[0] > w[1]));
        // ρ = 7: the midpoint in σ^{1/7}.
        let mid = karras_sigma(0.002, 80.0, 3, 1);
        let want = (0.5 * (80f64.powf(1.0 / 7.0) + 0.002f64.powf(1.0 / 7.0))).powi(7);
        assert!((mid - want).abs() < 1e-9 * want);
        for p in [
            Diffusion::Discrete(VpDiscrete::new(1000, BetaSchedule::DDPM_LINEAR).unwrap()),
            Diffusion::sde(Sde::VP, 1e-3).unwrap(),
            Diffusion::sde(Sde::SUB_VP, 1e-3).unwrap(),
            Diffusion::sde(Sde::VE, 1e-3).unwrap(),
        ] {
            for t in [0.01f32, 0.3, 0.77, 0.999] {
                let back = p.time_of_ve_sigma(p.ve_sigma(t), 0.0, 1.0);
                assert!((back - t).abs() < 1e-4, "{p:?}: t {t} came back as {back}");
            }
            assert_eq!(p.time_of_ve_sigma(f32::NAN, 0.1, 1.0), 0.1);
            assert_eq!(p.time_of_ve_sigma(1e30, 0.1, 0.9), 0.9);
        }
    }
}
