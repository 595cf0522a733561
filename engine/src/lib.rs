//! # tinyscore-engine
//!
//! A `no_std`, heap-free inference engine for score-based generative models (diffusion models).
//! It parses a `.tsm` model file zero-copy from a byte slice (flash, a file, a network buffer),
//! validates it once, and evaluates the ScoreNet noise-prediction network with static buffers
//! sized by const generics. Samplers draw their noise from a counter-based generator
//! (Philox4x32-10), and all float math goes through `libm`, so the same file, seed and settings give
//! the same output bits on x86-64 and on a Cortex-M4F.
//!
//! ```
//! use tinyscore_engine::{format::Model, net::ScoreNet, sampler::{draw, Ddpm, Sampler, Variance}};
//! # fn run(bytes: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
//! let model = Model::parse(bytes)?;                       // validate once
//! let process = model.process().diffusion()?;             // α_t, σ_t (and the ᾱ table)
//! let mut arena = [0.0f32; 2048];                        // the f32 activations
//! let mut net: ScoreNet<'_, 2, 128, 32> = ScoreNet::new(model, &mut arena[..])?; // capacities D, H, F
//! let mut x = [0.0f32; 2];
//! let ddpm = Sampler::Ddpm(Ddpm { steps: 100, variance: Variance::Posterior });
//! draw(&mut net, &process, &ddpm.into(), 42, 0, &mut x)?;
//! # Ok(()) }
//! ```
//!
//! Modules follow the data's path: [`format`] (the file: parsing and errors only), [`linalg`]
//! (f32 products over its tensors) and [`quant`] (the integer path), each with its fast kernels
//! beside the portable ones, [`net`] (the network), [`schedule`] (the diffusion process),
//! [`rng`] (noise), [`sampler`] (reverse processes), [`denoise`], [`stream`] (the streaming
//! denoiser), [`footprint`] (the RAM of all of them). Leaves that the others share:
//! [`limits`] (static capacities), [`kernels`] (the kernel choice), [`act`] (SiLU), [`vmath`].
//! No module imports a module that imports it back; the order, from the leaves up: `limits`,
//! `kernels`, `act`, `rng`, `schedule`, `vmath`, `quant`, `format`, `linalg`, `net`, `sampler`,
//! `denoise`, `stream`, `footprint` (which sizes the stream's buffers).
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]
// Safe Rust everywhere; the exceptions are the SIMD kernels, which opt in with
// `#[allow(unsafe_code)]`: on Cortex-M targets with the DSP extension (ARMv7E-M, or ARMv8-M
// Mainline built with `+dsp`: `build.rs`) the kernels in inline assembly (`quant/dsp.rs`: int8
// DSP; `linalg/vfp.rs`: f32 FPU, ARMv7E-M hard-float only), on x86-64 the AVX2
// kernels (`linalg/x86.rs`, `quant/x86.rs`: intrinsics behind the token of `kernels.rs`), on
// AArch64 the NEON kernels (`linalg/neon.rs`, `quant/neon.rs`, likewise).
#![cfg_attr(
    not(any(tinyscore_dsp, tinyscore_vfp, target_arch = "x86_64", target_arch = "aarch64")),
    forbid(unsafe_code)
)]
#![cfg_attr(
    any(tinyscore_dsp, tinyscore_vfp, target_arch = "x86_64", target_arch = "aarch64"),
    deny(unsafe_code)
)]

pub mod act;
pub mod denoise;
pub mod footprint;
pub mod format;
pub mod graph;
pub mod kernels;
pub mod limits;
pub mod linalg;
pub mod net;
pub mod quant;
pub mod rng;
pub mod sampler;
pub mod schedule;
pub mod stream;
pub mod vmath;
pub mod walk;

impl core::fmt::Display for schedule::ScheduleError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::Steps { found } => write!(f, "step count {found} is outside 1..={}", schedule::MAX_STEPS),
            Self::Parameters => write!(f, "schedule parameters are not finite, outside (0, 1) or decreasing"),
            Self::NotMonotonic => write!(f, "the schedule's alpha_bar is not strictly decreasing"),
            Self::NotDiscrete => write!(f, "the process is continuous, not the discrete VP process"),
        }
    }
}

impl core::error::Error for schedule::ScheduleError {}
