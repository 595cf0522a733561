//! Samplers: ways of drawing x₀ from the learned reverse process. One file per sampler, each
//! citing its paper and equation; `docs/samplers.md` collects the math.
//!
//! Every sampler works in normalised units on a vector of the model's dimension D, takes its noise
//! from a [`NoiseSource`] (so tests can inject zeros or a known sequence) and never allocates.
//! [`draw`] is the whole recipe the CLI and the firmware use: initial noise from the Philox
//! stream of (seed, sample index), the sampler, then de-normalisation to data units.

pub mod ddpm;

use crate::format::Model;
use crate::net::ScoreNet;
use crate::rng::{stream, NoiseSource, Philox};
use crate::schedule::VpDiscrete;

pub use ddpm::{Ddpm, Variance};

/// Why a sampler's settings were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum SamplerError {
    /// Steps is 0 or more than the process's N.
    Steps {
        /// Steps asked for.
        found: u32,
        /// The largest allowed (N).
        max: u32,
    },
    /// The output buffer is shorter than the model's D.
    OutputTooShort {
        /// Its length.
        found: usize,
        /// D.
        needed: usize,
    },
}

impl core::fmt::Display for SamplerError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::Steps { found, max } => write!(f, "steps must be in 1..={max}, got {found}"),
            Self::OutputTooShort { found, needed } => {
                write!(f, "output has {found} values, the model needs {needed}")
            }
        }
    }
}

impl core::error::Error for SamplerError {}

/// Draws sample number `sample` under `seed` with the DDPM sampler `ddpm`, writing it in data
/// units to `out[..D]`. The result depends only on (model, seed, sample, settings).
pub fn draw<const D: usize, const H: usize, const F: usize>(
    net: &mut ScoreNet<'_, D, H, F>,
    schedule: &VpDiscrete,
    ddpm: &Ddpm,
    seed: u64,
    sample: u32,
    out: &mut [f32],
) -> Result<(), SamplerError> {
    let d = net.dims().dim;
    if out.len() < d {
        return Err(SamplerError::OutputTooShort { found: out.len(), needed: d });
    }
    ddpm.check(schedule)?;
    let mut noise = Philox::new(seed, sample);
    let x = &mut out[..d];
    noise.fill(0, stream::INIT, x);
    ddpm.run(net, schedule, &mut noise, x);
    denormalize(net.model(), x);
    Ok(())
}

fn denormalize(model: &Model<'_>, x: &mut [f32]) {
    model.denormalize(x);
}
