//! The fixed 64-byte header of a `.tsm` file: its constants, the byte offset of every field, the
//! codes of the diffusion process and schedule, the decoded [`Header`] with its encoder, and the
//! [`Process`] a file declares (`docs/format.md` §2–§3). The writer (`tools/src/tsm.rs`) encodes
//! with the same items the reader decodes with, so the two cannot drift.

use super::dims::Dims;
use crate::limits;
use crate::schedule::{BetaSchedule, Diffusion, ScheduleError, Sde, VpDiscrete, MAX_STEPS};

/// The file's first four bytes.
pub const MAGIC: [u8; 4] = *b"TSM\0";
/// The structural version this reader understands.
pub const VERSION: u16 = 1;
/// The highest quantization version this reader understands (1: f32, f16 and int8 per-channel
/// weights; 2: adds the `w8a8` activation tensors). Writers use the lowest version a file needs.
pub const QUANT_VERSION: u16 = 2;
/// The quantization version of files with int8 activations (`w8a8`).
pub const QUANT_VERSION_W8A8: u16 = 2;
/// Size of the fixed header.
pub const HEADER_LEN: usize = 64;
/// Alignment of every data region.
pub const ALIGN: usize = 16;
/// Largest number of tensors a file may hold: norm (2) + time (4) + input (2) + blocks (4·8) +
/// output (2) + activation parameters (3, quantization version 2).
pub const MAX_TENSORS: usize = 2 + 4 + 2 + 4 * limits::MAX_BLOCKS + 2 + 3;

/// Byte offsets of the header fields.
pub mod field {
    /// `[u8; 4]` magic.
    pub const MAGIC: usize = 0;
    /// `u16` structural version.
    pub const VERSION: usize = 4;
    /// `u16` quantization version.
    pub const QUANT_VERSION: usize = 6;
    /// `u32` CRC-32 of bytes `12..file_len`.
    pub const CRC: usize = 8;
    /// `u32` file length.
    pub const FILE_LEN: usize = 12;
    /// `u32` flags, all reserved (zero).
    pub const FLAGS: usize = 16;
    /// `u16` D.
    pub const DIM: usize = 20;
    /// `u16` H.
    pub const HIDDEN: usize = 22;
    /// `u16` F.
    pub const FREQS: usize = 24;
    /// `u16` B.
    pub const BLOCKS: usize = 26;
    /// `u8` process kind.
    pub const PROCESS: usize = 28;
    /// `u8` schedule kind.
    pub const SCHEDULE: usize = 29;
    /// `u16` reserved (zero).
    pub const RESERVED0: usize = 30;
    /// `u32` N, the number of discrete steps.
    pub const STEPS: usize = 32;
    /// `[f32; 4]` process parameters.
    pub const PARAMS: usize = 36;
    /// `u32` working RAM the engine needs, in bytes.
    pub const RAM_BYTES: usize = 52;
    /// `u32` number of tensor entries.
    pub const TENSOR_COUNT: usize = 56;
    /// `u32` reserved (zero).
    pub const RESERVED1: usize = 60;
}

/// The CRC is computed over the bytes from here to the end of the file.
pub const CRC_START: usize = field::FILE_LEN;

/// Diffusion process kinds (header byte 28).
pub mod process {
    /// Discrete VP (DDPM).
    pub const VP_DISCRETE: u8 = 0;
    /// VP SDE: params = [β_min, β_max, t_ε, 0].
    pub const VP_SDE: u8 = 1;
    /// Sub-VP SDE: params = [β_min, β_max, t_ε, 0].
    pub const SUB_VP_SDE: u8 = 2;
    /// VE SDE: params = [σ_min, σ_max, t_ε, 0].
    pub const VE_SDE: u8 = 3;
}

/// Schedule kinds (header byte 29).
pub mod schedule_kind {
    /// Linear β: params = [β_start, β_end, 0, 0].
    pub const LINEAR: u8 = 0;
    /// Cosine ᾱ: params = [s, 0, 0, 0].
    pub const COSINE: u8 = 1;
}

/// The diffusion process a file declares.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Process {
    /// Discrete VP (DDPM) with N steps.
    VpDiscrete {
        /// N.
        steps: u32,
        /// The β schedule.
        schedule: BetaSchedule,
    },
    /// A continuous SDE (VP, sub-VP or VE), sampled from t = 1 down to t_ε.
    Sde {
        /// N: the file's default number of sampler steps (1..=1000).
        steps: u32,
        /// The SDE and its parameters.
        sde: Sde,
        /// t_ε, the end time of sampling and the lower bound of training times.
        t_eps: f32,
    },
}

impl Process {
    /// The header bytes (process kind, schedule kind, N, params) of this process.
    pub fn encode(&self) -> (u8, u8, u32, [f32; 4]) {
        match *self {
            Self::VpDiscrete { steps, schedule: BetaSchedule::Linear { beta_start, beta_end } } => {
                (process::VP_DISCRETE, schedule_kind::LINEAR, steps, [beta_start, beta_end, 0.0, 0.0])
            }
            Self::VpDiscrete { steps, schedule: BetaSchedule::Cosine { s } } => {
                (process::VP_DISCRETE, schedule_kind::COSINE, steps, [s, 0.0, 0.0, 0.0])
            }
            Self::Sde { steps, sde, t_eps } => {
                let (kind, a, b) = match sde {
                    Sde::Vp { beta_min, beta_max } => (process::VP_SDE, beta_min, beta_max),
                    Sde::SubVp { beta_min, beta_max } => (process::SUB_VP_SDE, beta_min, beta_max),
                    Sde::Ve { sigma_min, sigma_max } => (process::VE_SDE, sigma_min, sigma_max),
                };
                (kind, schedule_kind::LINEAR, steps, [a, b, t_eps, 0.0])
            }
        }
    }

    /// N: the discrete process's steps, or a continuous process's default sampler steps.
    pub fn steps(&self) -> u32 {
        match *self {
            Self::VpDiscrete { steps, .. } | Self::Sde { steps, .. } => steps,
        }
    }

    /// The discrete VP table of this process (an error for a continuous process).
    pub fn vp_discrete(&self) -> Result<VpDiscrete, ScheduleError> {
        match *self {
            Self::VpDiscrete { steps, schedule } => VpDiscrete::new(steps, schedule),
            Self::Sde { .. } => Err(ScheduleError::NotDiscrete),
        }
    }

    /// [`Process::diffusion`] built into `slot` in place: a device with a small stack keeps one
    /// 8 KiB ᾱ table instead of the copies that returning it by value makes
    /// ([`Diffusion::set_discrete`]). On an error `slot` is unbuilt (or unchanged for a
    /// continuous process): do not use it.
    pub fn diffusion_into(&self, slot: &mut Diffusion) -> Result<(), ScheduleError> {
        match *self {
            Self::VpDiscrete { steps, schedule } => slot.set_discrete(steps, schedule),
            Self::Sde { steps, sde, t_eps } => {
                if steps == 0 || steps as usize > MAX_STEPS {
                    return Err(ScheduleError::Steps { found: steps });
                }
                slot.set_sde(sde, t_eps)
            }
        }
    }

    /// The process as the samplers and the trainer use it.
    pub fn diffusion(&self) -> Result<Diffusion, ScheduleError> {
        match *self {
            Self::VpDiscrete { .. } => Ok(Diffusion::Discrete(self.vp_discrete()?)),
            Self::Sde { steps, sde, t_eps } => {
                if steps == 0 || steps as usize > MAX_STEPS {
                    return Err(ScheduleError::Steps { found: steps });
                }
                Diffusion::sde(sde, t_eps)
            }
        }
    }
}

/// `x` rounded up to a multiple of [`ALIGN`], or `None` on overflow.
pub fn align_up(x: usize) -> Option<usize> {
    x.checked_add(ALIGN - 1).map(|v| v & !(ALIGN - 1))
}

/// The fixed header, decoded.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Header {
    /// Structural version.
    pub version: u16,
    /// Quantization version.
    pub quant_version: u16,
    /// CRC-32 of bytes 12..file_len.
    pub crc: u32,
    /// Total length in bytes.
    pub file_len: u32,
    /// Network sizes.
    pub dims: Dims,
    /// The diffusion process.
    pub process: Process,
    /// Working RAM of the engine for this file.
    pub ram_bytes: u32,
    /// Number of tensors.
    pub tensor_count: u32,
}

impl Header {
    /// Encodes the header into its 64 bytes (the CRC field as given; the writer fills it last).
    #[allow(clippy::indexing_slicing)] // constant field offsets into a [u8; HEADER_LEN]
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[field::MAGIC..field::MAGIC + 4].copy_from_slice(&MAGIC);
        b[field::VERSION..field::VERSION + 2].copy_from_slice(&self.version.to_le_bytes());
        b[field::QUANT_VERSION..field::QUANT_VERSION + 2].copy_from_slice(&self.quant_version.to_le_bytes());
        b[field::CRC..field::CRC + 4].copy_from_slice(&self.crc.to_le_bytes());
        b[field::FILE_LEN..field::FILE_LEN + 4].copy_from_slice(&self.file_len.to_le_bytes());
        let d = &self.dims;
        for (off, v) in [
            (field::DIM, d.dim),
            (field::HIDDEN, d.hidden),
            (field::FREQS, d.freqs),
            (field::BLOCKS, d.blocks),
        ] {
            b[off..off + 2].copy_from_slice(&(v as u16).to_le_bytes());
        }
        let (pk, sk, steps, params) = self.process.encode();
        b[field::PROCESS] = pk;
        b[field::SCHEDULE] = sk;
        b[field::STEPS..field::STEPS + 4].copy_from_slice(&steps.to_le_bytes());
        for (i, p) in params.iter().enumerate() {
            let o = field::PARAMS + 4 * i;
            b[o..o + 4].copy_from_slice(&p.to_le_bytes());
        }
        b[field::RAM_BYTES..field::RAM_BYTES + 4].copy_from_slice(&self.ram_bytes.to_le_bytes());
        b[field::TENSOR_COUNT..field::TENSOR_COUNT + 4].copy_from_slice(&self.tensor_count.to_le_bytes());
        b
    }
}
