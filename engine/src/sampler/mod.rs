//! Samplers: ways of drawing x₀ from the learned reverse process. One file per sampler, each
//! citing its paper and equation; `docs/samplers.md` collects the math.
//!
//! Every sampler works in normalised units on a vector of the model's dimension D, evaluates
//! the network through [`EpsModel`] (the ScoreNet, or a closed-form score in tests), takes its
//! noise from a [`NoiseSource`] (so tests can inject zeros or a known sequence) and never
//! allocates. A run is a sequence of *units* (one sampler step, one corrector step, one
//! Langevin step); its whole state between units is a [`State`] — the iterate, the multistep
//! solvers' history of two data predictions, and a counter — so firmware can copy it out, sleep,
//! and continue with the same output bits.
//!
//! [`draw`] is the whole recipe the CLI and the firmware use: initial noise from the Philox
//! stream of (seed, sample index), the sampler, the optional final Tweedie step, then
//! de-normalisation to data units.
//!
//! Notation (DESIGN.md §2–3): x_t = α_t·x₀ + σ_t·ε, the network predicts ε̂ = ε_θ(x, t), the
//! score is s = −ε̂/σ_t; an SDE dx = f(t)·x dt + g(t) dw. Continuous samplers with S steps visit
//! the uniform grid t_k = 1 − k·(1 − t_min)/S, k = 0..S, where t_min is the file's t_ε (1/N for
//! the discrete process); noise step word k of [`stream::STEP`] belongs to step k. The few-step
//! solvers (`dpmpp`, `dpmpp_sde`, `unipc`) visit the grid of [`Timesteps`] (spacings and Karras
//! noise levels; `timesteps.rs`).

pub mod ddim;
pub mod ddpm;
pub mod dpmpp;
pub mod dpmpp_sde;
pub mod em;
pub mod langevin;
pub mod ode_euler;
pub mod ode_heun;
pub mod pc;
pub mod timesteps;
pub mod unipc;

use crate::net::ScoreNet;
use crate::rng::{stream, NoiseSource, Philox};
use crate::schedule::{Diffusion, MAX_STEPS};

pub use ddim::Ddim;
pub use ddpm::{Ddpm, Variance};
pub use dpmpp::Dpmpp;
pub use dpmpp_sde::DpmppSde;
pub use em::Em;
pub use langevin::Langevin;
pub use ode_euler::OdeEuler;
pub use ode_heun::OdeHeun;
pub use pc::{Pc, Predictor};
pub use timesteps::Timesteps;
pub use unipc::UniPc;

/// A noise-prediction model ε̂ = ε_θ(x, t): what every sampler evaluates. The ScoreNet
/// implements it; tests implement it with the exact ε of a known distribution.
pub trait EpsModel {
    /// D, the length of x.
    fn dim(&self) -> usize;
    /// Writes ε̂(x, t) to `out[..D]` for a normalised `x[..D]` at time t ∈ [0, 1].
    fn eps(&mut self, x: &[f32], t: f32, out: &mut [f32]);
}

impl<const D: usize, const H: usize, const F: usize, S: AsMut<[f32]>> EpsModel for ScoreNet<'_, D, H, F, S> {
    #[inline]
    fn dim(&self) -> usize {
        self.dims().dim
    }

    #[inline]
    fn eps(&mut self, x: &[f32], t: f32, out: &mut [f32]) {
        ScoreNet::eps(self, x, t, out);
    }
}

/// Why a sampler's settings were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum SamplerError {
    /// Steps is 0 or more than allowed (N for the discrete process's samplers).
    Steps {
        /// Steps asked for.
        found: u32,
        /// The largest allowed.
        max: u32,
    },
    /// The output buffer is shorter than the model's D.
    OutputTooShort {
        /// Its length.
        found: usize,
        /// D.
        needed: usize,
    },
    /// The model's D exceeds the capacity the sampler was compiled with.
    Capacity {
        /// The model's D.
        dim: usize,
        /// The compiled capacity.
        capacity: usize,
    },
    /// The sampler does not fit the file's process.
    Unsupported {
        /// The sampler.
        sampler: &'static str,
        /// The processes it fits.
        fits: &'static str,
    },
    /// A setting is out of range.
    Parameter {
        /// Which setting, and its range.
        what: &'static str,
    },
    /// A timestep spacing that only the discrete process defines was asked of a continuous one.
    Spacing {
        /// The sampler.
        sampler: &'static str,
        /// The spacing.
        spacing: &'static str,
    },
}

impl core::fmt::Display for SamplerError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::Steps { found, max } => write!(f, "steps must be in 1..={max}, got {found}"),
            Self::OutputTooShort { found, needed } => {
                write!(f, "output has {found} values, the model needs {needed}")
            }
            Self::Capacity { dim, capacity } => {
                write!(f, "model dimension {dim} exceeds the sampler's capacity {capacity}")
            }
            Self::Unsupported { sampler, fits } => {
                write!(f, "sampler {sampler} does not fit this model's process; it fits {fits}")
            }
            Self::Parameter { what } => write!(f, "invalid setting: {what}"),
            Self::Spacing { spacing, .. } => write!(
                f,
                "spacing {spacing} picks steps of the discrete process, and this model's process is \
                 continuous (its grid: uniform in log-SNR by default, or Karras sigmas)"
            ),
        }
    }
}

impl core::error::Error for SamplerError {}

/// Every sampler, with its settings.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Sampler {
    /// DDPM ancestral sampling.
    Ddpm(Ddpm),
    /// DDIM with η.
    Ddim(Ddim),
    /// Euler–Maruyama on the reverse-time SDE.
    Em(Em),
    /// Euler on the probability-flow ODE.
    OdeEuler(OdeEuler),
    /// Heun on the probability-flow ODE.
    OdeHeun(OdeHeun),
    /// Annealed Langevin dynamics.
    Langevin(Langevin),
    /// Predictor–corrector.
    Pc(Pc),
    /// DPM-Solver++ multistep (orders 1–3).
    Dpmpp(Dpmpp),
    /// SDE-DPM-Solver++ multistep (orders 1–2).
    DpmppSde(DpmppSde),
    /// UniPC predictor–corrector (orders 1–2).
    UniPc(UniPc),
}

/// A sampler and whether to finish with one Tweedie denoising step.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Plan {
    /// The sampler.
    pub sampler: Sampler,
    /// Finish with x̂₀ = (x − σ_t·ε̂(x, t))/α_t at the sampler's end time t (Tweedie's formula;
    /// Jolicoeur-Martineau et al. 2021, Song et al. 2021 "denoise=True"). A no-op for samplers
    /// that end at t = 0 (DDPM and DDIM on the discrete process already return x̂₀).
    pub denoise_final: bool,
}

impl From<Sampler> for Plan {
    fn from(sampler: Sampler) -> Self {
        Self { sampler, denoise_final: false }
    }
}

/// Where a sampling run is: the iterate (normalised units; for Langevin, the rescaled
/// y = x/α_t), the history of the multistep solvers, and the number of units done. Copy it out,
/// keep it anywhere, copy it back: the run continues with identical output. 12·D + 4 bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct State<const D: usize> {
    /// The current iterate; entries past the model's D are unused.
    pub x: [f32; D],
    /// The data predictions x̂₀ of the last two units, newest first (`dpmpp`, `dpmpp_sde`,
    /// `unipc`; zeros for the other samplers and before the first unit).
    pub history: [[f32; D]; 2],
    /// Units done so far (see [`Sampler::units`]).
    pub unit: u32,
}

/// Time t_k of the uniform grid of S steps from 1 down to `t_min` (k = 0..=S).
#[inline]
pub fn grid_time(t_min: f32, steps: u32, k: u32) -> f32 {
    if k >= steps {
        t_min
    } else {
        1.0 - (1.0 - t_min) * (k as f32 / steps as f32)
    }
}

/// Checks steps in 1..=max.
fn check_steps(steps: u32, max: u32) -> Result<(), SamplerError> {
    if steps == 0 || steps > max {
        return Err(SamplerError::Steps { found: steps, max });
    }
    Ok(())
}

/// The largest step count of the continuous samplers.
pub const MAX_SAMPLER_STEPS: u32 = MAX_STEPS as u32;

impl Sampler {
    /// The name `tinyscore sample --sampler` uses.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ddpm(_) => "ddpm",
            Self::Ddim(_) => "ddim",
            Self::Em(_) => "em",
            Self::OdeEuler(_) => "ode-euler",
            Self::OdeHeun(_) => "ode-heun",
            Self::Langevin(_) => "langevin",
            Self::Pc(_) => "pc",
            Self::Dpmpp(s) => s.name(),
            Self::DpmppSde(_) => "dpmpp-sde",
            Self::UniPc(_) => "unipc",
        }
    }

    /// Checks the settings against the process.
    pub fn check(&self, diff: &Diffusion) -> Result<(), SamplerError> {
        match self {
            Self::Ddpm(s) => match diff.discrete() {
                Some(d) => s.check(d),
                None => Err(SamplerError::Unsupported { sampler: "ddpm", fits: ddpm_fits() }),
            },
            Self::Ddim(s) => s.check(diff),
            Self::Em(s) => check_steps(s.steps, MAX_SAMPLER_STEPS),
            Self::OdeEuler(s) => check_steps(s.steps, MAX_SAMPLER_STEPS),
            Self::OdeHeun(s) => check_steps(s.steps, MAX_SAMPLER_STEPS),
            Self::Langevin(s) => s.check(),
            Self::Pc(s) => s.check(),
            Self::Dpmpp(s) => s.check(diff),
            Self::DpmppSde(s) => s.check(diff),
            Self::UniPc(s) => s.check(diff),
        }
    }

    /// The number of units of a run.
    pub fn units(&self) -> u32 {
        match self {
            Self::Ddpm(s) => s.steps,
            Self::Ddim(s) => s.steps,
            Self::Em(s) => s.steps,
            Self::OdeEuler(s) => s.steps,
            Self::OdeHeun(s) => s.steps,
            Self::Langevin(s) => s.steps * s.per_level,
            Self::Pc(s) => s.steps * (s.corrector_steps + 1),
            Self::Dpmpp(s) => s.steps,
            Self::DpmppSde(s) => s.steps,
            Self::UniPc(s) => s.steps,
        }
    }

    /// Network evaluations of a whole run (without the final denoising step).
    pub fn evaluations(&self) -> u32 {
        match self {
            Self::OdeHeun(s) => 2 * s.steps,
            _ => self.units(),
        }
    }

    /// The initial state: x = s·z with z the Philox noise of step word 0 of [`stream::INIT`] and
    /// s the prior's standard deviation.
    pub fn start<const D: usize>(
        &self,
        diff: &Diffusion,
        noise: &mut impl NoiseSource,
        dim: usize,
    ) -> State<D> {
        let mut st = State { x: [0.0; D], history: [[0.0; D]; 2], unit: 0 };
        let x = &mut st.x[..dim.min(D)];
        noise.fill(0, stream::INIT, x);
        let s = match self {
            Self::Langevin(l) => l.prior_std(diff),
            _ => diff.prior_std(),
        };
        for v in x.iter_mut() {
            *v *= s;
        }
        st
    }

    /// Does the next unit of the run in `state` (nothing once all units are done). The settings
    /// must have passed [`Sampler::check`] against `diff`.
    pub fn step<const D: usize, M: EpsModel + ?Sized>(
        &self,
        model: &mut M,
        diff: &Diffusion,
        noise: &mut impl NoiseSource,
        state: &mut State<D>,
    ) {
        if state.unit >= self.units() {
            return;
        }
        let d = model.dim().min(D);
        let u = state.unit;
        let (x, history) = (&mut state.x[..d], &mut state.history);
        match self {
            Self::Ddpm(s) => {
                let mut eps = [0.0f32; D];
                let mut z = [0.0f32; D];
                if let Some(sched) = diff.discrete() {
                    s.step(model, sched, noise, s.steps - u, x, &mut eps[..d], &mut z[..d]);
                }
            }
            Self::Ddim(s) => s.step::<D, M>(model, diff, noise, s.steps - u, x),
            Self::Em(s) => s.step::<D, M>(model, diff, noise, u, x),
            Self::OdeEuler(s) => s.step::<D, M>(model, diff, u, x),
            Self::OdeHeun(s) => s.step::<D, M>(model, diff, u, x),
            Self::Langevin(s) => s.step::<D, M>(model, diff, noise, u, x),
            Self::Pc(s) => s.step::<D, M>(model, diff, noise, u, x),
            Self::Dpmpp(s) => s.step::<D, M>(model, diff, u, x, history),
            Self::DpmppSde(s) => s.step::<D, M>(model, diff, noise, u, x, history),
            Self::UniPc(s) => s.step::<D, M>(model, diff, u, x, history),
        }
        state.unit += 1;
    }

    /// The time the run ends at (0 for DDPM, DDIM and the few-step solvers on the discrete
    /// process).
    pub fn end_time(&self, diff: &Diffusion) -> f32 {
        match (self, diff.discrete()) {
            (
                Self::Ddpm(_) | Self::Ddim(_) | Self::Dpmpp(_) | Self::DpmppSde(_) | Self::UniPc(_),
                Some(_),
            ) => 0.0,
            _ => diff.t_min(),
        }
    }

    /// Writes the run's result x̂₀ (normalised units) to `out[..D]`, with the final Tweedie step
    /// if `denoise` (one more network evaluation).
    pub fn finish<const D: usize, M: EpsModel + ?Sized>(
        &self,
        model: &mut M,
        diff: &Diffusion,
        denoise: bool,
        state: &State<D>,
        out: &mut [f32],
    ) {
        let d = model.dim().min(D).min(out.len());
        let out = &mut out[..d];
        out.copy_from_slice(&state.x[..d]);
        let t = self.end_time(diff);
        let (alpha, sigma) = diff.marginal(t);
        if !denoise || t <= 0.0 {
            return;
        }
        if let Self::Langevin(_) = self {
            // The Langevin iterate is y = x/α_t: the network sees x = α_t·y.
            for v in out.iter_mut() {
                *v *= alpha;
            }
        }
        let mut eps = [0.0f32; D];
        let eps = &mut eps[..d];
        model.eps(out, t, eps);
        tweedie(out, eps, alpha, sigma);
    }
}

/// Where DDPM fits.
fn ddpm_fits() -> &'static str {
    "the discrete VP process (--process vp); for SDE models use ddim, em, ode-euler, ode-heun, langevin, pc, \
     dpmpp-2m, dpmpp-3m, dpmpp-sde or unipc"
}

/// Tweedie's formula for x_t = α·x₀ + σ·ε: x ← x̂₀ = (x − σ·ε̂)/α.
#[inline]
pub fn tweedie(x: &mut [f32], eps: &[f32], alpha: f32, sigma: f32) {
    for (xi, &e) in x.iter_mut().zip(eps) {
        *xi = (*xi - sigma * e) / alpha;
    }
}

/// A whole run on one vector: start from the prior with `noise`, all units, finish. Writes x̂₀
/// (normalised units) to `out[..D]`. D is the compiled capacity of the sampler's buffers.
pub fn sample<const D: usize, M: EpsModel + ?Sized>(
    model: &mut M,
    diff: &Diffusion,
    plan: &Plan,
    noise: &mut impl NoiseSource,
    out: &mut [f32],
) -> Result<(), SamplerError> {
    let d = model.dim();
    if d > D {
        return Err(SamplerError::Capacity { dim: d, capacity: D });
    }
    if out.len() < d {
        return Err(SamplerError::OutputTooShort { found: out.len(), needed: d });
    }
    plan.sampler.check(diff)?;
    let mut state = plan.sampler.start::<D>(diff, noise, d);
    for _ in 0..plan.sampler.units() {
        plan.sampler.step(model, diff, noise, &mut state);
    }
    plan.sampler.finish(model, diff, plan.denoise_final, &state, out);
    Ok(())
}

/// Draws sample number `sample` under `seed` with `plan`, writing it in data units to
/// `out[..D]`. The result depends only on (model, process, seed, sample, plan).
pub fn draw<const D: usize, const H: usize, const F: usize, S: AsMut<[f32]>>(
    net: &mut ScoreNet<'_, D, H, F, S>,
    diff: &Diffusion,
    plan: &Plan,
    seed: u64,
    sample_index: u32,
    out: &mut [f32],
) -> Result<(), SamplerError> {
    let mut noise = Philox::new(seed, sample_index);
    sample::<D, _>(net, diff, plan, &mut noise, out)?;
    let d = net.dims().dim;
    net.model().denormalize(&mut out[..d]);
    Ok(())
}

/// `k` samples' chains run in lockstep as one vector of k·D values: the network sees them as
/// one batch (`eval`, normally [`ScoreNet::eps_batch`]) and the noise of chain i comes from its
/// own Philox stream. Every sampler here updates x element by element with coefficients that
/// depend only on the step (the PC and Langevin step sizes use the expected norms, not the
/// batch's), so chain i gets exactly the bits [`draw`] gives sample `first + i` alone.
struct Lockstep<'n, 'a, 's, E, const D: usize, const H: usize, const F: usize, S: AsMut<[f32]>> {
    net: &'n mut ScoreNet<'a, D, H, F, S>,
    k: usize,
    scratch: &'s mut [f32],
    eval: E,
}

impl<const D: usize, const H: usize, const F: usize, S: AsMut<[f32]>, E> EpsModel
    for Lockstep<'_, '_, '_, E, D, H, F, S>
where
    E: FnMut(&mut ScoreNet<'_, D, H, F, S>, &[f32], f32, &mut [f32], &mut [f32]),
{
    fn dim(&self) -> usize {
        self.k * self.net.dims().dim
    }

    fn eps(&mut self, x: &[f32], t: f32, out: &mut [f32]) {
        let n = self.dim();
        (self.eval)(self.net, &x[..n], t, out, self.scratch);
    }
}

/// The Philox streams of samples `first..first + k`, one D-long piece of the vector each.
struct LockstepNoise {
    seed: u64,
    first: u32,
    dim: usize,
}

impl NoiseSource for LockstepNoise {
    fn fill(&mut self, step: u32, stream: u32, out: &mut [f32]) {
        for (i, piece) in out.chunks_mut(self.dim.max(1)).enumerate() {
            Philox::new(self.seed, self.first.wrapping_add(i as u32)).fill(step, stream, piece);
        }
    }
}

/// [`draw`] for samples `first..first + k` at once, `k = out.len() / D` (data units, row-major:
/// sample `first + i` at `out[i·D..(i+1)·D]`), bit for bit what `k` calls of [`draw`] give.
/// `KD` is the capacity of the lockstep vector (at least k·D); `scratch` holds
/// [`ScoreNet::batch_scratch_len`]`(k)` values (a shorter one is refused with
/// [`SamplerError::OutputTooShort`]).
pub fn draw_batch<const KD: usize, const D: usize, const H: usize, const F: usize, S: AsMut<[f32]>>(
    net: &mut ScoreNet<'_, D, H, F, S>,
    diff: &Diffusion,
    plan: &Plan,
    seed: u64,
    first: u32,
    scratch: &mut [f32],
    out: &mut [f32],
) -> Result<(), SamplerError> {
    draw_batch_with::<KD, D, H, F, S>(net, diff, plan, seed, first, scratch, out, |n, x, t, o, s| {
        n.eps_batch(x, t, o, s)
    })
}

/// [`draw_batch`] with the batch evaluated by `eval`, which must compute
/// [`ScoreNet::eps_batch`] (the host passes the same function compiled for AVX2).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn draw_batch_with<const KD: usize, const D: usize, const H: usize, const F: usize, S: AsMut<[f32]>>(
    net: &mut ScoreNet<'_, D, H, F, S>,
    diff: &Diffusion,
    plan: &Plan,
    seed: u64,
    first: u32,
    scratch: &mut [f32],
    out: &mut [f32],
    eval: impl FnMut(&mut ScoreNet<'_, D, H, F, S>, &[f32], f32, &mut [f32], &mut [f32]),
) -> Result<(), SamplerError> {
    let d = net.dims().dim;
    let k = out.len() / d.max(1);
    if scratch.len() < net.batch_scratch_len(k) {
        return Err(SamplerError::OutputTooShort { found: scratch.len(), needed: net.batch_scratch_len(k) });
    }
    let out = &mut out[..k * d];
    let mut noise = LockstepNoise { seed, first, dim: d };
    let mut lockstep = Lockstep { net, k, scratch, eval };
    sample::<KD, _>(&mut lockstep, diff, plan, &mut noise, out)?;
    for x in out.chunks_exact_mut(d) {
        lockstep.net.model().denormalize(x);
    }
    Ok(())
}
