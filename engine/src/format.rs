//! The `.tsm` model file: a zero-copy, validate-once reader, and the layout the writer shares.
//!
//! The normative spec is `docs/format.md`. In short: a 64-byte little-endian header, a table of
//! 32-byte tensor entries, then the tensor data, each region starting at the previous region's end
//! rounded up to 16 bytes (zero padding), the last ending at the file's end. A CRC-32 covers every
//! byte after the CRC field. [`Model::parse`] checks every field once with checked arithmetic and
//! returns a typed [`FormatError`] for each inconsistency; after that, evaluation cannot fail.

// No panics by construction (issue 8): the parser reaches bytes only through `get` and checked
// arithmetic. The exceptions, each `#[allow]`ed where it sits, are the encoders (constant offsets
// into fixed arrays), the CRC table (index masked to 0..=255) and evaluation on a validated model.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)
)]

use crate::net::{limits, Dims, Kernels};
use crate::quant::{self, layout};
use crate::schedule::{BetaSchedule, Diffusion, ScheduleError, Sde, VpDiscrete, MAX_STEPS};
#[cfg(target_arch = "x86_64")]
use crate::x86;

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
/// Size of one tensor-table entry.
pub const ENTRY_LEN: usize = 32;
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

/// Storage type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum DType {
    /// IEEE-754 binary32, little-endian.
    F32 = 0,
    /// IEEE-754 binary16, little-endian, widened to f32 for arithmetic.
    F16 = 1,
    /// Signed 8-bit weights in [−127, 127] with one f32 scale per output row: `w = q·scale[row]`.
    I8 = 2,
    /// Signed 32-bit integers, little-endian, no scales (quantization v2: `act.requant`).
    I32 = 3,
    /// Signed 8-bit table entries in [−127, 127], no scales (quantization v2: `act.lut`).
    Lut8 = 4,
}

impl DType {
    /// The dtype of a table code.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::F32),
            1 => Some(Self::F16),
            2 => Some(Self::I8),
            3 => Some(Self::I32),
            4 => Some(Self::Lut8),
            _ => None,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::F32 | Self::I32 => 4,
            Self::F16 => 2,
            Self::I8 | Self::Lut8 => 1,
        }
    }

    /// Whether the tensor carries a per-row scale region.
    pub fn has_scales(self) -> bool {
        matches!(self, Self::I8)
    }

    /// A short lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::I8 => "i8",
            Self::I32 => "i32",
            Self::Lut8 => "lut8",
        }
    }
}

/// What a tensor is in the network. Its 16-bit code is `kind | block << 8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Role {
    /// (D,) per-dimension mean of the data.
    NormMean,
    /// (D,) per-dimension standard deviation of the data.
    NormStd,
    /// (H, F) first time-embedding layer.
    TimeW1,
    /// (H,) its bias.
    TimeB1,
    /// (H, H) second time-embedding layer.
    TimeW2,
    /// (H,) its bias.
    TimeB2,
    /// (H, D) input projection.
    InputW,
    /// (H,) its bias.
    InputB,
    /// (H, H) first layer of block b.
    BlockW1(u8),
    /// (H,) its bias.
    BlockB1(u8),
    /// (H, H) second layer of block b.
    BlockW2(u8),
    /// (H,) its bias.
    BlockB2(u8),
    /// (D, H) output layer.
    OutputW,
    /// (D,) its bias.
    OutputB,
    /// (G, 4B+3) f32 activation scales per timestep group (quantization v2).
    ActScales,
    /// (G, 3H + B(6H+2) + D) i32 folded biases, multipliers and shifts per group (v2).
    ActRequant,
    /// (G, (2B+1)·256) int8 SiLU tables per group (v2).
    ActLut,
}

const BLOCK_NAMES: [[&str; 4]; limits::MAX_BLOCKS] = [
    ["blocks.0.w1", "blocks.0.b1", "blocks.0.w2", "blocks.0.b2"],
    ["blocks.1.w1", "blocks.1.b1", "blocks.1.w2", "blocks.1.b2"],
    ["blocks.2.w1", "blocks.2.b1", "blocks.2.w2", "blocks.2.b2"],
    ["blocks.3.w1", "blocks.3.b1", "blocks.3.w2", "blocks.3.b2"],
    ["blocks.4.w1", "blocks.4.b1", "blocks.4.w2", "blocks.4.b2"],
    ["blocks.5.w1", "blocks.5.b1", "blocks.5.w2", "blocks.5.b2"],
    ["blocks.6.w1", "blocks.6.b1", "blocks.6.w2", "blocks.6.b2"],
    ["blocks.7.w1", "blocks.7.b1", "blocks.7.w2", "blocks.7.b2"],
];

impl Role {
    /// The 16-bit code stored in the tensor table.
    pub fn code(self) -> u16 {
        let (kind, block) = match self {
            Self::NormMean => (0, 0),
            Self::NormStd => (1, 0),
            Self::TimeW1 => (2, 0),
            Self::TimeB1 => (3, 0),
            Self::TimeW2 => (4, 0),
            Self::TimeB2 => (5, 0),
            Self::InputW => (6, 0),
            Self::InputB => (7, 0),
            Self::BlockW1(b) => (8, b),
            Self::BlockB1(b) => (9, b),
            Self::BlockW2(b) => (10, b),
            Self::BlockB2(b) => (11, b),
            Self::OutputW => (12, 0),
            Self::OutputB => (13, 0),
            Self::ActScales => (14, 0),
            Self::ActRequant => (15, 0),
            Self::ActLut => (16, 0),
        };
        kind as u16 | (block as u16) << 8
    }

    /// The tensor's name, shared by checkpoints (`.safetensors`), the PyTorch baseline and tools.
    #[allow(clippy::indexing_slicing)] // b % MAX_BLOCKS < BLOCK_NAMES.len(), and [0..4] of a [_; 4]
    pub fn name(self) -> &'static str {
        match self {
            Self::NormMean => "norm.mean",
            Self::NormStd => "norm.std",
            Self::TimeW1 => "time.w1",
            Self::TimeB1 => "time.b1",
            Self::TimeW2 => "time.w2",
            Self::TimeB2 => "time.b2",
            Self::InputW => "input.w",
            Self::InputB => "input.b",
            Self::BlockW1(b) => BLOCK_NAMES[b as usize % limits::MAX_BLOCKS][0],
            Self::BlockB1(b) => BLOCK_NAMES[b as usize % limits::MAX_BLOCKS][1],
            Self::BlockW2(b) => BLOCK_NAMES[b as usize % limits::MAX_BLOCKS][2],
            Self::BlockB2(b) => BLOCK_NAMES[b as usize % limits::MAX_BLOCKS][3],
            Self::OutputW => "output.w",
            Self::OutputB => "output.b",
            Self::ActScales => "act.scales",
            Self::ActRequant => "act.requant",
            Self::ActLut => "act.lut",
        }
    }

    /// Whether this is a weight matrix (as opposed to a vector: bias or normalisation).
    pub fn is_matrix(self) -> bool {
        matches!(
            self,
            Self::TimeW1 | Self::TimeW2 | Self::InputW | Self::BlockW1(_) | Self::BlockW2(_) | Self::OutputW
        )
    }

    /// The index of this role in the canonical file order for a network with `blocks` blocks.
    fn slot(self, blocks: usize) -> usize {
        match self {
            Self::NormMean => 0,
            Self::NormStd => 1,
            Self::TimeW1 => 2,
            Self::TimeB1 => 3,
            Self::TimeW2 => 4,
            Self::TimeB2 => 5,
            Self::InputW => 6,
            Self::InputB => 7,
            Self::BlockW1(b) => 8 + 4 * b as usize,
            Self::BlockB1(b) => 9 + 4 * b as usize,
            Self::BlockW2(b) => 10 + 4 * b as usize,
            Self::BlockB2(b) => 11 + 4 * b as usize,
            Self::OutputW => 8 + 4 * blocks,
            Self::OutputB => 9 + 4 * blocks,
            Self::ActScales => 10 + 4 * blocks,
            Self::ActRequant => 11 + 4 * blocks,
            Self::ActLut => 12 + 4 * blocks,
        }
    }
}

/// Every tensor of a quantization-v1 file with sizes `dims`, in the canonical file order: the
/// normalisation, then the parameters in [`Dims::params`] order. `(role, rows, cols)`.
pub fn file_tensors(dims: &Dims) -> impl Iterator<Item = (Role, usize, usize)> + '_ {
    [(Role::NormMean, dims.dim, 1), (Role::NormStd, dims.dim, 1)].into_iter().chain(dims.params())
}

/// The activation tensors a `w8a8` (quantization v2) file appends after [`file_tensors`], for
/// `groups` timestep groups: `(role, rows, cols)`.
pub fn act_tensors(dims: &Dims, groups: usize) -> [(Role, usize, usize); 3] {
    let (d, h, b) = (dims.dim, dims.hidden, dims.blocks);
    [
        (Role::ActScales, groups, layout::scale_cols(b)),
        (Role::ActRequant, groups, layout::requant_cols(d, h, b)),
        (Role::ActLut, groups, 256 * layout::lut_count(b)),
    ]
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

/// Every way a file can be refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum FormatError {
    /// The file is shorter than what its header or table requires.
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        found: usize,
    },
    /// The first four bytes are not `TSM\0`.
    BadMagic,
    /// Structural version not understood.
    UnsupportedVersion {
        /// The file's version.
        found: u16,
        /// The version this reader understands.
        supported: u16,
    },
    /// Quantization version not understood.
    UnsupportedQuantVersion {
        /// The file's version.
        found: u16,
        /// The highest version this reader understands.
        supported: u16,
    },
    /// The header's file length differs from the bytes given.
    LengthMismatch {
        /// Length in the header.
        header: u32,
        /// Bytes given.
        actual: usize,
    },
    /// The CRC-32 of the contents differs from the stored one.
    CrcMismatch {
        /// Stored CRC.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// Flag bits that this version does not define are set.
    UnknownFlags(u32),
    /// A reserved field or byte is not zero (its byte offset).
    ReservedNonZero(usize),
    /// A size is zero, odd where it must be even (F), or beyond the format's bounds.
    BadDims {
        /// "dim", "hidden", "freqs" or "blocks".
        what: &'static str,
        /// Its value.
        found: u32,
    },
    /// The process kind is unknown.
    UnknownProcess(u8),
    /// The schedule kind is unknown.
    UnknownSchedule(u8),
    /// The schedule's steps or parameters are invalid.
    BadSchedule(ScheduleError),
    /// The tensor count is not the one the sizes require.
    TensorCount {
        /// Count in the header.
        found: u32,
        /// Count the sizes require.
        expected: u32,
    },
    /// Entry `index` has another role than the canonical order requires.
    UnexpectedTensor {
        /// Table index.
        index: usize,
        /// Role code found.
        found: u16,
        /// Role code expected.
        expected: u16,
    },
    /// Entry `index` has an unknown dtype code, or one its role does not allow.
    BadDtype {
        /// Table index.
        index: usize,
        /// Code found.
        code: u8,
    },
    /// Entry `index` has the wrong shape for its role.
    ShapeMismatch {
        /// Table index.
        index: usize,
        /// Rows found.
        rows: u32,
        /// Columns found.
        cols: u32,
    },
    /// Entry `index`'s data or scale length does not match its shape and dtype.
    BadLength {
        /// Table index.
        index: usize,
    },
    /// A region does not start at the previous end rounded up to 16 (hole, overlap or misalignment).
    Misplaced {
        /// Table index.
        index: usize,
        /// Offset found.
        offset: u32,
        /// Offset required.
        expected: usize,
    },
    /// A region runs past the end of the file or an offset computation overflows.
    OutOfBounds {
        /// Table index.
        index: usize,
    },
    /// Bytes remain after the last region.
    TrailingBytes {
        /// Where the last region ends.
        end: usize,
        /// The file length.
        file_len: usize,
    },
    /// A padding byte is not zero.
    NonZeroPadding(usize),
    /// Entry `index` holds a NaN or infinite value (or a normalisation std ≤ 0).
    BadValue {
        /// Table index.
        index: usize,
    },
    /// Entry `index` has a per-row scale that is zero, negative or not finite.
    BadScale {
        /// Table index.
        index: usize,
    },
    /// Entry `index` holds the int8 value −128, which the symmetric scheme excludes.
    Int8OutOfRange {
        /// Table index.
        index: usize,
    },
    /// The header's RAM figure differs from the one its sizes imply.
    RamMismatch {
        /// RAM in the header.
        stored: u32,
        /// RAM the sizes imply.
        computed: u32,
    },
    /// The number of timestep groups (rows of `act.scales`) is 0 or above the maximum.
    BadGroups {
        /// Groups found.
        found: u32,
        /// The largest allowed.
        max: u32,
    },
    /// An activation scale is zero, negative or not finite.
    BadActScale {
        /// Timestep group.
        group: usize,
        /// Column of `act.scales`.
        column: usize,
    },
    /// A fixed-point multiplier is outside [2^30, 2^31).
    BadMultiplier {
        /// Timestep group.
        group: usize,
        /// Column of `act.requant`.
        column: usize,
    },
    /// A shift is outside 1..=62.
    BadShift {
        /// Timestep group.
        group: usize,
        /// Column of `act.requant`.
        column: usize,
    },
    /// A folded bias is outside ±2^30.
    BadBias {
        /// Timestep group.
        group: usize,
        /// Column of `act.requant`.
        column: usize,
    },
}

impl core::fmt::Display for FormatError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use FormatError::*;
        match *self {
            Truncated { needed, found } => write!(f, "truncated: needs {needed} bytes, has {found}"),
            BadMagic => write!(f, "not a tinyscore model (bad magic; expected \"TSM\\0\")"),
            UnsupportedVersion { found, supported } => {
                write!(f, "format version {found} is not supported (this build reads {supported})")
            }
            UnsupportedQuantVersion { found, supported } => write!(
                f,
                "quantization version {found} is not supported (this build reads up to {supported})"
            ),
            LengthMismatch { header, actual } => {
                write!(f, "header says {header} bytes but the file has {actual}")
            }
            CrcMismatch { stored, computed } => {
                write!(f, "CRC mismatch: stored {stored:#010x}, computed {computed:#010x} (corrupted file)")
            }
            UnknownFlags(x) => write!(f, "unknown flag bits {x:#x}"),
            ReservedNonZero(o) => write!(f, "reserved field at byte {o} is not zero"),
            BadDims { what, found } => write!(f, "invalid network size {what} = {found}"),
            UnknownProcess(k) => write!(f, "unknown diffusion process kind {k}"),
            UnknownSchedule(k) => write!(f, "unknown schedule kind {k}"),
            BadSchedule(e) => write!(f, "invalid schedule: {e}"),
            TensorCount { found, expected } => {
                write!(f, "tensor count {found}, expected {expected}")
            }
            UnexpectedTensor { index, found, expected } => write!(
                f,
                "tensor {index} has role {found:#06x}, expected {expected:#06x}"
            ),
            BadDtype { index, code } => write!(f, "tensor {index} has invalid dtype code {code}"),
            ShapeMismatch { index, rows, cols } => {
                write!(f, "tensor {index} has wrong shape {rows}x{cols}")
            }
            BadLength { index } => write!(f, "tensor {index} has a length inconsistent with its shape"),
            Misplaced { index, offset, expected } => write!(
                f,
                "tensor {index} region at offset {offset}, expected {expected} (hole, overlap or misalignment)"
            ),
            OutOfBounds { index } => write!(f, "tensor {index} points outside the file"),
            TrailingBytes { end, file_len } => {
                write!(f, "{} trailing bytes after the last tensor", file_len.saturating_sub(end))
            }
            NonZeroPadding(o) => write!(f, "padding byte at {o} is not zero"),
            BadValue { index } => write!(f, "tensor {index} holds a non-finite or invalid value"),
            BadScale { index } => write!(f, "tensor {index} has a zero, negative or non-finite scale"),
            Int8OutOfRange { index } => write!(f, "tensor {index} holds the excluded int8 value -128"),
            RamMismatch { stored, computed } => {
                write!(f, "header RAM figure {stored} differs from the computed {computed}")
            }
            BadGroups { found, max } => write!(f, "{found} timestep groups, expected 1..={max}"),
            BadActScale { group, column } => write!(
                f,
                "activation scale {column} of timestep group {group} is zero, negative or not finite"
            ),
            BadMultiplier { group, column } => write!(
                f,
                "multiplier at column {column} of timestep group {group} is outside [2^30, 2^31)"
            ),
            BadShift { group, column } => {
                write!(f, "shift at column {column} of timestep group {group} is outside 1..=62")
            }
            BadBias { group, column } => {
                write!(f, "folded bias at column {column} of timestep group {group} is outside +-2^30")
            }
        }
    }
}

impl core::error::Error for FormatError {}

impl From<ScheduleError> for FormatError {
    fn from(e: ScheduleError) -> Self {
        Self::BadSchedule(e)
    }
}

/// CRC-32 (IEEE 802.3: reflected, polynomial 0xEDB88320, init and final xor 0xFFFFFFFF).
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32_update(0xFFFF_FFFF, bytes) ^ 0xFFFF_FFFF
}

/// Continues a CRC-32 over `bytes` from the raw (non-inverted) state `crc`.
#[allow(clippy::indexing_slicing)] // the index is masked to 0..=255 and the table has 256 entries
pub fn crc32_update(mut crc: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        crc = CRC_TABLE[((crc ^ b as u32) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc
}

#[allow(clippy::indexing_slicing)] // i < 256, evaluated at compile time
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// `x` rounded up to a multiple of [`ALIGN`], or `None` on overflow.
pub fn align_up(x: usize) -> Option<usize> {
    x.checked_add(ALIGN - 1).map(|v| v & !(ALIGN - 1))
}

/// One tensor of a parsed file: a view of the file's bytes, never a copy.
#[derive(Clone, Copy, Debug)]
pub struct Tensor<'a> {
    /// What it is.
    pub role: Role,
    /// How it is stored.
    pub dtype: DType,
    /// Rows (outputs of a matrix; length of a vector).
    pub rows: usize,
    /// Columns (inputs of a matrix; 1 for a vector).
    pub cols: usize,
    data: &'a [u8],
    scales: &'a [u8],
}

// Evaluation on a validated model: `Model::parse` proved data.len() = rows·cols·size and
// scales.len() = 4·rows; callers pass x and out at least cols and rows long (their documented
// contract, as for slices).
#[allow(clippy::indexing_slicing)]
impl<'a> Tensor<'a> {
    const EMPTY: Tensor<'static> =
        Tensor { role: Role::NormMean, dtype: DType::F32, rows: 0, cols: 0, data: &[], scales: &[] };

    /// The stored bytes of the values (without scales).
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Bytes of the tensor in the file (values and scales).
    pub fn byte_len(&self) -> usize {
        self.data.len() + self.scales.len()
    }

    /// The per-row scale of an int8 tensor (1 for other dtypes).
    #[cfg_attr(not(target_arch = "arm"), inline(always))]
    #[cfg_attr(target_arch = "arm", inline)]
    pub fn scale(&self, row: usize) -> f32 {
        match self.dtype {
            DType::I8 => read_f32(self.scales, row),
            _ => 1.0,
        }
    }

    /// The smallest and largest per-row scale, for an int8 tensor.
    pub fn scale_range(&self) -> Option<(f32, f32)> {
        if self.dtype != DType::I8 {
            return None;
        }
        let mut lo = f32::INFINITY;
        let mut hi = 0.0f32;
        for r in 0..self.rows {
            let s = self.scale(r);
            lo = lo.min(s);
            hi = hi.max(s);
        }
        Some((lo, hi))
    }

    /// Element `i` (row-major) as f32, dequantized.
    #[cfg_attr(not(target_arch = "arm"), inline(always))]
    #[cfg_attr(target_arch = "arm", inline)]
    pub fn get(&self, i: usize) -> f32 {
        match self.dtype {
            DType::F32 => read_f32(self.data, i),
            DType::F16 => f16_to_f32(u16::from_le_bytes([self.data[2 * i], self.data[2 * i + 1]])),
            DType::I8 => self.data[i] as i8 as f32 * self.scale(i / self.cols),
            DType::I32 => self.i32_at(i) as f32,
            DType::Lut8 => self.data[i] as i8 as f32,
        }
    }

    /// Element `i` of an i32 tensor (row-major).
    #[inline]
    pub fn i32_at(&self, i: usize) -> i32 {
        let b = &self.data[4 * i..4 * i + 4];
        i32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Row `r`'s stored bytes (values only).
    #[inline]
    pub fn row_bytes(&self, r: usize) -> &'a [u8] {
        let n = self.cols * self.dtype.size();
        &self.data[r * n..(r + 1) * n]
    }

    /// `out[r] += Σ_c W[r, c]·x[c]` in f32, in the summation order of [`dot`]. Four rows share
    /// each pass over `x` ([`dot_block`]): four independent chains of additions keep a host's
    /// SIMD adders busy, with each row's bits unchanged.
    #[cfg_attr(not(target_arch = "arm"), inline(always))]
    #[cfg_attr(target_arch = "arm", inline)]
    pub fn matvec_acc(&self, x: &[f32], out: &mut [f32]) {
        if !BLOCK_ROWS {
            return self.matvec_rows(x, out);
        }
        match self.dtype {
            DType::F32 => self.matvec_with::<4>(x, out, |w| f32::from_le_bytes([w[0], w[1], w[2], w[3]])),
            DType::F16 => self.matvec_with::<2>(x, out, |w| f16_to_f32(u16::from_le_bytes([w[0], w[1]]))),
            DType::I8 => self.matvec_with::<1>(x, out, |w| (w[0] as i8) as f32),
            // Parameter tensors; never matrices of the network (validation refuses them there).
            DType::I32 | DType::Lut8 => {
                let cols = self.cols;
                for (r, o) in out[..self.rows].iter_mut().enumerate() {
                    for (c, xc) in x[..cols].iter().enumerate() {
                        *o += self.get(r * cols + c) * xc;
                    }
                }
            }
        }
    }

    /// [`Tensor::matvec_acc`] one row at a time (targets without SIMD registers); f32 and int8
    /// rows by [`dot_f32w`] and [`dot_i8w`] (the FPU kernel on the Cortex-M4F).
    #[inline]
    fn matvec_rows(&self, x: &[f32], out: &mut [f32]) {
        let cols = self.cols;
        let x = &x[..cols];
        let out = &mut out[..self.rows];
        match self.dtype {
            DType::F32 => {
                for (o, row) in out.iter_mut().zip(self.data.chunks_exact(4 * cols)) {
                    *o += dot_f32w(row, x);
                }
            }
            DType::F16 => {
                for (o, row) in out.iter_mut().zip(self.data.chunks_exact(2 * cols)) {
                    *o += dot::<2>(row, x, |w| f16_to_f32(u16::from_le_bytes([w[0], w[1]])));
                }
            }
            DType::I8 => {
                for (r, (o, row)) in out.iter_mut().zip(self.data.chunks_exact(cols)).enumerate() {
                    *o += dot_i8w(row, x) * self.scale(r);
                }
            }
            DType::I32 | DType::Lut8 => {
                for (r, o) in out.iter_mut().enumerate() {
                    for (c, xc) in x.iter().enumerate() {
                        *o += self.get(r * cols + c) * xc;
                    }
                }
            }
        }
    }

    #[inline(always)]
    fn matvec_with<const S: usize>(&self, x: &[f32], out: &mut [f32], decode: impl Fn(&[u8]) -> f32 + Copy) {
        let cols = self.cols;
        let x = &x[..cols];
        let out = &mut out[..self.rows];
        let n = S * cols;
        let scaled = self.dtype == DType::I8;
        let mut blocks = out.chunks_exact_mut(4);
        let mut rows = self.data.chunks_exact(4 * n);
        let mut r = 0;
        for (o4, w4) in (&mut blocks).zip(&mut rows) {
            let d =
                dot_block::<S, 4, 1>([&w4[..n], &w4[n..2 * n], &w4[2 * n..3 * n], &w4[3 * n..]], [x], decode);
            for (j, o) in o4.iter_mut().enumerate() {
                *o += if scaled { d[j][0] * self.scale(r + j) } else { d[j][0] };
            }
            r += 4;
        }
        for (o, w) in blocks.into_remainder().iter_mut().zip(rows.remainder().chunks_exact(n)) {
            let v = dot::<S>(w, x, decode);
            *o += if scaled { v * self.scale(r) } else { v };
            r += 1;
        }
    }

    /// [`Tensor::matvec_acc`] for `k` vectors at once: `outs[i·so + r] += Σ_c W[r, c]·xs[i·sx + c]`
    /// for every i < k, each sum in the order of [`dot`], so every vector gets the bits
    /// `matvec_acc` gives it alone. Two rows and four vectors share each pass over the columns
    /// ([`dot_block`]), so a weight is loaded once per four vectors.
    #[cfg_attr(not(target_arch = "arm"), inline(always))]
    pub fn matmul_acc(&self, xs: &[f32], sx: usize, outs: &mut [f32], so: usize, k: usize) {
        match self.dtype {
            DType::F32 => {
                self.matmul_with::<4>(xs, sx, outs, so, k, |w| f32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            }
            DType::F16 => {
                self.matmul_with::<2>(xs, sx, outs, so, k, |w| f16_to_f32(u16::from_le_bytes([w[0], w[1]])))
            }
            DType::I8 => self.matmul_with::<1>(xs, sx, outs, so, k, |w| (w[0] as i8) as f32),
            DType::I32 | DType::Lut8 => {
                for i in 0..k {
                    self.matvec_acc(&xs[i * sx..], &mut outs[i * so..]);
                }
            }
        }
    }

    #[inline(always)]
    fn matmul_with<const S: usize>(
        &self,
        xs: &[f32],
        sx: usize,
        outs: &mut [f32],
        so: usize,
        k: usize,
        decode: impl Fn(&[u8]) -> f32 + Copy,
    ) {
        let (rows, cols) = (self.rows, self.cols);
        let row = |r: usize| &self.data[r * S * cols..(r + 1) * S * cols];
        let x = |i: usize| &xs[i * sx..i * sx + cols];
        let scaled = self.dtype == DType::I8;
        #[inline(always)]
        fn put(t: &Tensor<'_>, scaled: bool, outs: &mut [f32], so: usize, r: usize, i: usize, v: f32) {
            let v = if scaled { v * t.scale(r) } else { v };
            outs[i * so + r] += v;
        }
        let mut r = 0;
        while r < rows {
            let two = r + 1 < rows;
            let mut i = 0;
            while i + 4 <= k {
                let xb = [x(i), x(i + 1), x(i + 2), x(i + 3)];
                if two {
                    let d = dot_block::<S, 2, 4>([row(r), row(r + 1)], xb, decode);
                    for (j, dj) in d[1].iter().enumerate() {
                        put(self, scaled, outs, so, r + 1, i + j, *dj);
                    }
                    for (j, dj) in d[0].iter().enumerate() {
                        put(self, scaled, outs, so, r, i + j, *dj);
                    }
                } else {
                    let d = dot_block::<S, 1, 4>([row(r)], xb, decode);
                    for (j, dj) in d[0].iter().enumerate() {
                        put(self, scaled, outs, so, r, i + j, *dj);
                    }
                }
                i += 4;
            }
            for i in i..k {
                for rr in r..(r + 2).min(rows) {
                    put(self, scaled, outs, so, rr, i, dot::<S>(row(rr), x(i), decode));
                }
            }
            r += 2;
        }
    }

    /// [`Tensor::matvec_acc`] with the kernels `k` chooses (the same bits with any of them).
    #[cfg_attr(not(target_arch = "arm"), inline(always))]
    #[cfg_attr(target_arch = "arm", inline)]
    pub fn matvec_acc_with(&self, k: Kernels, x: &[f32], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if let Kernels::Avx2(tok) = k {
            match self.dtype {
                DType::F32 => return self.matmul_avx2::<x86::F32>(tok, x, 0, out, 0, 1),
                DType::I8 => return self.matmul_avx2::<x86::I8>(tok, x, 0, out, 0, 1),
                _ => {}
            }
        }
        let _ = k;
        self.matvec_acc(x, out)
    }

    /// [`Tensor::matmul_acc`] with the kernels `k` chooses (the same bits with any of them).
    #[cfg_attr(not(target_arch = "arm"), inline(always))]
    pub fn matmul_acc_with(&self, k: Kernels, xs: &[f32], sx: usize, outs: &mut [f32], so: usize, n: usize) {
        #[cfg(target_arch = "x86_64")]
        if let Kernels::Avx2(tok) = k {
            match self.dtype {
                DType::F32 => return self.matmul_avx2::<x86::F32>(tok, xs, sx, outs, so, n),
                DType::I8 => return self.matmul_avx2::<x86::I8>(tok, xs, sx, outs, so, n),
                _ => {}
            }
        }
        let _ = k;
        self.matmul_acc(xs, sx, outs, so, n)
    }

    /// `outs[i·so + r] += Σ_c W[r, c]·xs[i·sx + c]` for i < n with the AVX2 kernel
    /// ([`x86::dot_block`]): blocks of 8 rows for one vector, of 2 rows × 4 vectors for more.
    #[cfg(target_arch = "x86_64")]
    fn matmul_avx2<W: x86::Weights>(
        &self,
        tok: x86::Avx2,
        xs: &[f32],
        sx: usize,
        outs: &mut [f32],
        so: usize,
        n: usize,
    ) {
        let (rows, cols) = (self.rows, self.cols);
        let len = W::SIZE * cols;
        let row = |r: usize| &self.data[r * len..(r + 1) * len];
        let x = |i: usize| &xs[i * sx..i * sx + cols];
        let scaled = self.dtype == DType::I8;
        let mut put = |r: usize, i: usize, v: f32| {
            outs[i * so + r] += if scaled { v * self.scale(r) } else { v };
        };
        let mut r = 0;
        if n == 1 {
            // Eight rows: eight independent chains of additions hide the adder's latency.
            while r + 8 <= rows {
                let rs = [
                    row(r),
                    row(r + 1),
                    row(r + 2),
                    row(r + 3),
                    row(r + 4),
                    row(r + 5),
                    row(r + 6),
                    row(r + 7),
                ];
                let d = x86::dot_block::<W, 8, 1>(tok, rs, [x(0)], cols);
                for (j, dj) in d.iter().enumerate() {
                    put(r + j, 0, dj[0]);
                }
                r += 8;
            }
            while r + 4 <= rows {
                let d = x86::dot_block::<W, 4, 1>(
                    tok,
                    [row(r), row(r + 1), row(r + 2), row(r + 3)],
                    [x(0)],
                    cols,
                );
                for (j, dj) in d.iter().enumerate() {
                    put(r + j, 0, dj[0]);
                }
                r += 4;
            }
        }
        while r + 2 <= rows {
            let mut i = 0;
            while i + 4 <= n {
                let d = x86::dot_block::<W, 2, 4>(
                    tok,
                    [row(r), row(r + 1)],
                    [x(i), x(i + 1), x(i + 2), x(i + 3)],
                    cols,
                );
                for (j, dj) in d.iter().enumerate() {
                    for (q, v) in dj.iter().enumerate() {
                        put(r + j, i + q, *v);
                    }
                }
                i += 4;
            }
            for i in i..n {
                let d = x86::dot_block::<W, 2, 1>(tok, [row(r), row(r + 1)], [x(i)], cols);
                put(r, i, d[0][0]);
                put(r + 1, i, d[1][0]);
            }
            r += 2;
        }
        for r in r..rows {
            let mut i = 0;
            while i + 4 <= n {
                let d = x86::dot_block::<W, 1, 4>(tok, [row(r)], [x(i), x(i + 1), x(i + 2), x(i + 3)], cols);
                for (q, v) in d[0].iter().enumerate() {
                    put(r, i + q, *v);
                }
                i += 4;
            }
            for i in i..n {
                put(r, i, x86::dot_block::<W, 1, 1>(tok, [row(r)], [x(i)], cols)[0][0]);
            }
        }
    }

    /// `out[r] += v[r]`: a vector tensor added to `out`.
    #[cfg_attr(not(target_arch = "arm"), inline(always))]
    #[cfg_attr(target_arch = "arm", inline)]
    pub fn add_to(&self, out: &mut [f32]) {
        for (i, o) in out[..self.rows].iter_mut().enumerate() {
            *o += self.get(i);
        }
    }
}

/// Whether [`Tensor::matvec_acc`] evaluates four rows per pass over `x` ([`dot_block`]), where
/// SIMD registers hold the lanes (x86-64, AArch64), or one ([`dot`]) elsewhere: on the
/// Cortex-M4F four rows' 32 lanes would fill all 32 of its FPU registers and spill (measured: 7.6
/// instead of 6.1 instructions per MAC). The bits are the same either way.
const BLOCK_ROWS: bool = cfg!(any(target_arch = "x86_64", target_arch = "x86", target_arch = "aarch64"));

/// Number of interleaved partial sums of [`dot`].
pub const DOT_LANES: usize = 8;

/// `Σ_c w[c]·x[c]` for a row of `S`-byte weights decoded by `decode`, in a fixed order that every
/// target follows (so results are bit-identical) and that lets a compiler use SIMD registers:
/// eight partial sums, lane j over c ≡ j (mod 8) in increasing c, combined as
/// ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)), then the last `cols mod 8` products added in
/// increasing c. `docs/scorenet.md` states the same order.
#[inline(always)]
#[allow(clippy::indexing_slicing)] // w has S·DOT_LANES bytes and xs DOT_LANES values (chunks_exact)
pub fn dot<const S: usize>(row: &[u8], x: &[f32], decode: impl Fn(&[u8]) -> f32) -> f32 {
    let mut lanes = [0.0f32; DOT_LANES];
    let mut w_chunks = row.chunks_exact(S * DOT_LANES);
    let mut x_chunks = x.chunks_exact(DOT_LANES);
    for (w, xs) in (&mut w_chunks).zip(&mut x_chunks) {
        for j in 0..DOT_LANES {
            lanes[j] += decode(&w[S * j..S * j + S]) * xs[j];
        }
    }
    dot_finish::<S>(&lanes, w_chunks.remainder(), x_chunks.remainder(), decode)
}

/// The end of [`dot`]: the eight lanes combined as ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 +
/// l7)), then the tail's products (`w_tail`: `S`-byte weights, `x_tail`: their activations) added
/// in increasing column order. Shared by the portable loop and the Cortex-M4F kernel.
#[inline(always)]
pub fn dot_finish<const S: usize>(
    lanes: &[f32; DOT_LANES],
    w_tail: &[u8],
    x_tail: &[f32],
    decode: impl Fn(&[u8]) -> f32,
) -> f32 {
    let [l0, l1, l2, l3, l4, l5, l6, l7] = *lanes;
    let mut acc = ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7));
    for (w, &xi) in w_tail.chunks_exact(S).zip(x_tail) {
        acc += decode(w) * xi;
    }
    acc
}

#[cfg(tinyscore_vfp)]
mod vfp;

/// Decodes one stored f32 weight (little-endian).
#[inline(always)]
fn decode_f32(w: &[u8]) -> f32 {
    match *w {
        [a, b, c, d, ..] => f32::from_le_bytes([a, b, c, d]),
        _ => 0.0,
    }
}

/// Decodes one stored int8 weight.
#[inline(always)]
fn decode_i8(w: &[u8]) -> f32 {
    match w.first() {
        Some(&b) => (b as i8) as f32,
        None => 0.0,
    }
}

/// [`dot`] of a row of f32 weights (`4·x.len()` stored bytes) with `x`: by the Cortex-M4F FPU
/// kernel ([`vfp_dot_f32w`]) where it is built and the row is word aligned, else by the
/// portable loop; the bits are the same.
#[inline(always)]
pub fn dot_f32w(row: &[u8], x: &[f32]) -> f32 {
    match vfp_dot_f32w(row, x) {
        Some(v) => v,
        None => dot::<4>(row, x, decode_f32),
    }
}

/// [`dot`] of a row of int8 weights (`x.len()` stored bytes, unscaled) with `x`: by the FPU
/// kernel ([`vfp_dot_i8w`]) where it is built, else by the portable loop; the same bits.
#[inline(always)]
pub fn dot_i8w(row: &[u8], x: &[f32]) -> f32 {
    match vfp_dot_i8w(row, x) {
        Some(v) => v,
        None => dot::<1>(row, x, decode_i8),
    }
}

/// The Cortex-M4F kernel's [`dot`] of f32 weights (`VLDM`, `VMLA.F32`; `format/vfp.rs`), public
/// for the firmware's property test. `None` where it is not built (every target but
/// `thumbv7em-none-eabihf`, and that one at `opt-level` `s` or `z`; see `engine/build.rs`), or
/// when the row is not 4-byte aligned or is shorter than `4·x.len()` bytes.
#[inline(always)]
pub fn vfp_dot_f32w(row: &[u8], x: &[f32]) -> Option<f32> {
    #[cfg(tinyscore_vfp)]
    {
        let full = x.len() / DOT_LANES * DOT_LANES;
        let lanes = vfp::lanes_f32(row, x)?;
        Some(dot_finish::<4>(&lanes, row.get(4 * full..)?, x.get(full..)?, decode_f32))
    }
    #[cfg(not(tinyscore_vfp))]
    {
        let _ = (row, x);
        None
    }
}

/// The Cortex-M4F kernel's [`dot`] of int8 weights (`LDRSB`, `VCVT.F32.S32`, `VMLA.F32`): `None`
/// where it is not built (as [`vfp_dot_f32w`]) or when the row is shorter than `x.len()` bytes.
#[inline(always)]
pub fn vfp_dot_i8w(row: &[u8], x: &[f32]) -> Option<f32> {
    #[cfg(tinyscore_vfp)]
    {
        let full = x.len() / DOT_LANES * DOT_LANES;
        let lanes = vfp::lanes_i8(row, x)?;
        Some(dot_finish::<1>(&lanes, row.get(full..)?, x.get(full..)?, decode_i8))
    }
    #[cfg(not(tinyscore_vfp))]
    {
        let _ = (row, x);
        None
    }
}

/// [`dot`] of `R` rows with each of `K` vectors in one pass over the columns: `out[r][i]` is
/// `dot(rows[r], xs[i])` bit for bit (the same eight lanes per pair, the same combination and
/// tail order), but each decoded weight and each activation is loaded once for the block. All
/// rows are `S·cols` bytes and all vectors `cols` long (`cols = xs[0].len()`).
#[inline(always)]
#[allow(clippy::indexing_slicing)] // rows and vectors have the lengths stated above
pub fn dot_block<const S: usize, const R: usize, const K: usize>(
    rows: [&[u8]; R],
    xs: [&[f32]; K],
    decode: impl Fn(&[u8]) -> f32,
) -> [[f32; K]; R] {
    let cols = if K > 0 { xs[0].len() } else { 0 };
    let full = cols / DOT_LANES * DOT_LANES;
    let mut lanes = [[[0.0f32; DOT_LANES]; K]; R];
    let mut w_chunks = rows.map(|row| row[..S * full].chunks_exact(S * DOT_LANES));
    let mut x_chunks = xs.map(|x| x[..full].chunks_exact(DOT_LANES));
    // Per 8 columns: R weight loads, K activation loads, R·K multiplies and R·K adds of whole
    // 8-lane arrays, which a compiler keeps in SIMD registers.
    for _ in 0..full / DOT_LANES {
        let mut xv = [[0.0f32; DOT_LANES]; K];
        for (v, it) in xv.iter_mut().zip(x_chunks.iter_mut()) {
            if let Some(x) = it.next() {
                v.copy_from_slice(x);
            }
        }
        for (lr, it) in lanes.iter_mut().zip(w_chunks.iter_mut()) {
            let Some(w) = it.next() else { break };
            let mut wv = [0.0f32; DOT_LANES];
            if S == 2 {
                // f16: the decode branches per element; a copy first only costs.
                for (j, v) in wv.iter_mut().enumerate() {
                    *v = decode(&w[S * j..S * j + S]);
                }
            } else {
                // f32 and i8: the 8·S bytes into a fixed-size buffer first (one vector load, and
                // constant offsets for `decode`), so all eight lanes decode with vector
                // instructions: 1.3–1.5× faster blocks on x86-64, the same bits.
                let mut buf = [0u8; 4 * DOT_LANES];
                buf[..S * DOT_LANES].copy_from_slice(w);
                for (j, v) in wv.iter_mut().enumerate() {
                    *v = decode(&buf[S * j..S * j + S]);
                }
            }
            for (l, x) in lr.iter_mut().zip(xv.iter()) {
                for j in 0..DOT_LANES {
                    l[j] += wv[j] * x[j];
                }
            }
        }
    }
    let mut out = [[0.0f32; K]; R];
    for r in 0..R {
        for i in 0..K {
            let l = &lanes[r][i];
            let mut acc = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
            for c in full..cols {
                acc += decode(&rows[r][S * c..S * c + S]) * xs[i][c];
            }
            out[r][i] = acc;
        }
    }
    out
}

#[cfg_attr(not(target_arch = "arm"), inline(always))]
#[cfg_attr(target_arch = "arm", inline)]
#[allow(clippy::indexing_slicing)] // only called by Tensor on validated lengths
fn read_f32(bytes: &[u8], i: usize) -> f32 {
    let b = &bytes[4 * i..4 * i + 4];
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// IEEE binary16 → binary32, exact (every f16 is representable in f32).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1F) as u32;
    let man = (h & 0x3FF) as u32;
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: normalise the mantissa.
            let mut e = 127 - 15 + 1;
            let mut m = man;
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((m & 0x3FF) << 13)
        }
        (0x1F, 0) => sign | 0x7F80_0000,
        (0x1F, _) => sign | 0x7FC0_0000 | (man << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (man << 13),
    };
    f32::from_bits(bits)
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

/// One tensor-table entry, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Role code.
    pub role: u16,
    /// Dtype code.
    pub dtype: u8,
    /// Rows.
    pub rows: u32,
    /// Columns.
    pub cols: u32,
    /// Offset of the values from the file's start.
    pub data_offset: u32,
    /// Length of the values in bytes.
    pub data_len: u32,
    /// Offset of the per-row scales (0 when the dtype has none).
    pub scale_offset: u32,
    /// Length of the scales in bytes (0 when the dtype has none).
    pub scale_len: u32,
}

impl Entry {
    /// Encodes the entry into its 32 bytes.
    #[allow(clippy::indexing_slicing)] // constant offsets into a [u8; ENTRY_LEN]
    pub fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut b = [0u8; ENTRY_LEN];
        b[0..2].copy_from_slice(&self.role.to_le_bytes());
        b[2] = self.dtype;
        for (off, v) in [
            (4, self.rows),
            (8, self.cols),
            (12, self.data_offset),
            (16, self.data_len),
            (20, self.scale_offset),
            (24, self.scale_len),
        ] {
            b[off..off + 4].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    fn decode(b: &[u8]) -> Self {
        Self {
            role: u16_at(b, 0),
            dtype: b.get(2).copied().unwrap_or(u8::MAX),
            rows: u32_at(b, 4),
            cols: u32_at(b, 8),
            data_offset: u32_at(b, 12),
            data_len: u32_at(b, 16),
            scale_offset: u32_at(b, 20),
            scale_len: u32_at(b, 24),
        }
    }
}

#[inline]
fn u16_at(b: &[u8], o: usize) -> u16 {
    // Callers check the length first; a short slice would read as 0, never panic.
    b.get(o..o + 2).and_then(|s| s.try_into().ok()).map_or(0, u16::from_le_bytes)
}

#[inline]
fn u32_at(b: &[u8], o: usize) -> u32 {
    b.get(o..o + 4).and_then(|s| s.try_into().ok()).map_or(0, u32::from_le_bytes)
}

/// A parsed, validated model file: the header and views of its tensors.
#[derive(Clone, Debug)]
pub struct Model<'a> {
    header: Header,
    tensors: [Tensor<'a>; MAX_TENSORS],
    count: usize,
}

impl<'a> Model<'a> {
    /// Parses and validates `bytes` (zero-copy: the tensors borrow from it).
    ///
    /// Checks, in order: length, magic, versions, file length, CRC, flags and reserved fields,
    /// sizes, process, RAM figure, tensor count, then every entry (role, dtype, shape, lengths,
    /// placement, padding, values). See `docs/format.md` for the rule behind each error.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, FormatError> {
        if bytes.len() < HEADER_LEN {
            return Err(FormatError::Truncated { needed: HEADER_LEN, found: bytes.len() });
        }
        if bytes.get(..4) != Some(&MAGIC[..]) {
            return Err(FormatError::BadMagic);
        }
        let version = u16_at(bytes, field::VERSION);
        if version != VERSION {
            return Err(FormatError::UnsupportedVersion { found: version, supported: VERSION });
        }
        let quant_version = u16_at(bytes, field::QUANT_VERSION);
        if quant_version == 0 || quant_version > QUANT_VERSION {
            return Err(FormatError::UnsupportedQuantVersion {
                found: quant_version,
                supported: QUANT_VERSION,
            });
        }
        let file_len = u32_at(bytes, field::FILE_LEN);
        if file_len as usize != bytes.len() {
            if (file_len as usize) > bytes.len() {
                return Err(FormatError::Truncated { needed: file_len as usize, found: bytes.len() });
            }
            return Err(FormatError::LengthMismatch { header: file_len, actual: bytes.len() });
        }
        let crc = u32_at(bytes, field::CRC);
        let computed = crc32(bytes.get(CRC_START..).unwrap_or(&[]));
        if crc != computed {
            return Err(FormatError::CrcMismatch { stored: crc, computed });
        }
        let flags = u32_at(bytes, field::FLAGS);
        if flags != 0 {
            return Err(FormatError::UnknownFlags(flags));
        }
        for (off, len) in [(field::RESERVED0, 2), (field::RESERVED1, 4)] {
            if bytes.get(off..off + len).map_or(true, |r| r.iter().any(|&b| b != 0)) {
                return Err(FormatError::ReservedNonZero(off));
            }
        }

        let dims = Self::parse_dims(bytes)?;
        let process = Self::parse_process(bytes)?;
        let int8 = quant_version >= QUANT_VERSION_W8A8;

        let ram_bytes = u32_at(bytes, field::RAM_BYTES);
        let ram_computed = if int8 { dims.ram_bytes_int8() } else { dims.ram_bytes() } as u32;
        if ram_bytes != ram_computed {
            return Err(FormatError::RamMismatch { stored: ram_bytes, computed: ram_computed });
        }
        let tensor_count = u32_at(bytes, field::TENSOR_COUNT);
        let expected = (2 + dims.params().count() + if int8 { 3 } else { 0 }) as u32;
        if tensor_count != expected {
            return Err(FormatError::TensorCount { found: tensor_count, expected });
        }
        let count = tensor_count as usize;
        // count ≤ MAX_TENSORS, so this cannot overflow.
        let table_end = HEADER_LEN + ENTRY_LEN * count;
        if bytes.len() < table_end {
            return Err(FormatError::Truncated { needed: table_end, found: bytes.len() });
        }

        // The number of timestep groups G of a v2 file: the rows of `act.scales`' entry.
        let groups = if int8 {
            let slot = Role::ActScales.slot(dims.blocks);
            let g = u32_at(bytes, HEADER_LEN + ENTRY_LEN * slot + 4);
            if g == 0 || g as usize > quant::MAX_GROUPS {
                return Err(FormatError::BadGroups { found: g, max: quant::MAX_GROUPS as u32 });
            }
            g as usize
        } else {
            0
        };
        let acts = act_tensors(&dims, groups);
        let acts = acts.get(..if int8 { 3 } else { 0 }).unwrap_or(&[]);

        let mut tensors = [Tensor::EMPTY; MAX_TENSORS];
        let mut prev_end = table_end;
        for (index, (role, rows, cols)) in file_tensors(&dims).chain(acts.iter().copied()).enumerate() {
            let off = HEADER_LEN + ENTRY_LEN * index;
            let raw = bytes
                .get(off..off + ENTRY_LEN)
                .ok_or(FormatError::Truncated { needed: table_end, found: bytes.len() })?;
            let byte3_set = raw.get(3) != Some(&0);
            if byte3_set || raw.get(28..).map_or(true, |r| r.iter().any(|&b| b != 0)) {
                return Err(FormatError::ReservedNonZero(if byte3_set { off + 3 } else { off + 28 }));
            }
            let e = Entry::decode(raw);
            if e.role != role.code() {
                return Err(FormatError::UnexpectedTensor { index, found: e.role, expected: role.code() });
            }
            let dtype = DType::from_code(e.dtype).ok_or(FormatError::BadDtype { index, code: e.dtype })?;
            // Normalisation and biases stay f32; only weight matrices may be quantized, and in a
            // w8a8 file they must be int8; the activation tensors have one dtype each.
            let allowed = match role {
                Role::ActScales => dtype == DType::F32,
                Role::ActRequant => dtype == DType::I32,
                Role::ActLut => dtype == DType::Lut8,
                r if r.is_matrix() && int8 => dtype == DType::I8,
                r if r.is_matrix() => matches!(dtype, DType::F32 | DType::F16 | DType::I8),
                _ => dtype == DType::F32,
            };
            if !allowed {
                return Err(FormatError::BadDtype { index, code: e.dtype });
            }
            if e.rows as usize != rows || e.cols as usize != cols {
                return Err(FormatError::ShapeMismatch { index, rows: e.rows, cols: e.cols });
            }
            // rows ≤ 512 and cols ≤ 26 384 (act.requant), so these products cannot overflow.
            let want_data = rows * cols * dtype.size();
            let want_scales = if dtype.has_scales() { 4 * rows } else { 0 };
            if e.data_len as usize != want_data || e.scale_len as usize != want_scales {
                return Err(FormatError::BadLength { index });
            }
            let data = Self::region(bytes, index, &mut prev_end, e.data_offset, want_data)?;
            let scales = if dtype.has_scales() {
                Self::region(bytes, index, &mut prev_end, e.scale_offset, want_scales)?
            } else {
                if e.scale_offset != 0 {
                    return Err(FormatError::ReservedNonZero(off + 20));
                }
                &[]
            };
            let t = Tensor { role, dtype, rows, cols, data, scales };
            Self::check_values(&t, index)?;
            // index < count ≤ MAX_TENSORS (the tensor count check above).
            if let Some(slot) = tensors.get_mut(index) {
                *slot = t;
            }
        }
        if prev_end != bytes.len() {
            return Err(FormatError::TrailingBytes { end: prev_end, file_len: bytes.len() });
        }
        let header = Header { version, quant_version, crc, file_len, dims, process, ram_bytes, tensor_count };
        let model = Self { header, tensors, count };
        if int8 {
            model.check_activation_params()?;
        }
        Ok(model)
    }

    /// Validates every field of a w8a8 file's activation tensors: scales finite and > 0,
    /// multipliers in [2^30, 2^31), shifts in 1..=62, folded biases within ±2^30. (Table entries
    /// of −128 are refused by the per-tensor check.)
    fn check_activation_params(&self) -> Result<(), FormatError> {
        let d = self.header.dims;
        let (scales, rq) = (self.tensor(Role::ActScales), self.tensor(Role::ActRequant));
        for g in 0..scales.rows {
            for column in 0..scales.cols {
                let s = scales.get(g * scales.cols + column);
                if !(s.is_finite() && s > 0.0) {
                    return Err(FormatError::BadActScale { group: g, column });
                }
            }
            let at = |c: usize| rq.i32_at(g * rq.cols + c);
            let triple = |base: usize, rows: usize| -> Result<(), FormatError> {
                for r in 0..rows {
                    let c = base + 3 * r;
                    if !(-quant::BIAS_MAX..=quant::BIAS_MAX).contains(&at(c)) {
                        return Err(FormatError::BadBias { group: g, column: c });
                    }
                    Self::check_mult_shift(g, c + 1, at(c + 1), at(c + 2))?;
                }
                Ok(())
            };
            triple(layout::input(d.hidden), d.hidden)?;
            for b in 0..d.blocks {
                triple(layout::w1(d.hidden, b), d.hidden)?;
                triple(layout::w2(d.hidden, b), d.hidden)?;
                let c = layout::residual(d.hidden, b);
                Self::check_mult_shift(g, c, at(c), at(c + 1))?;
            }
            let base = layout::output(d.hidden, d.blocks);
            for c in base..base + d.dim {
                if !(-quant::BIAS_MAX..=quant::BIAS_MAX).contains(&at(c)) {
                    return Err(FormatError::BadBias { group: g, column: c });
                }
            }
        }
        Ok(())
    }

    fn check_mult_shift(group: usize, column: usize, m: i32, n: i32) -> Result<(), FormatError> {
        if m < quant::MULT_MIN {
            return Err(FormatError::BadMultiplier { group, column });
        }
        if !(quant::SHIFT_MIN as i32..=quant::SHIFT_MAX as i32).contains(&n) {
            return Err(FormatError::BadShift { group, column: column + 1 });
        }
        Ok(())
    }

    fn parse_dims(bytes: &[u8]) -> Result<Dims, FormatError> {
        let get = |o| u16_at(bytes, o) as usize;
        let dims = Dims {
            dim: get(field::DIM),
            hidden: get(field::HIDDEN),
            freqs: get(field::FREQS),
            blocks: get(field::BLOCKS),
        };
        for (what, v, max) in [
            ("dim", dims.dim, limits::MAX_DIM),
            ("hidden", dims.hidden, limits::MAX_HIDDEN),
            ("freqs", dims.freqs, limits::MAX_FREQS),
            ("blocks", dims.blocks, limits::MAX_BLOCKS),
        ] {
            let odd_freqs = what == "freqs" && v % 2 != 0;
            if v == 0 || v > max || odd_freqs {
                return Err(FormatError::BadDims { what, found: v as u32 });
            }
        }
        Ok(dims)
    }

    fn parse_process(bytes: &[u8]) -> Result<Process, FormatError> {
        // u8::MAX is no kind: a short slice (impossible after the length check) is refused.
        let kind = bytes.get(field::PROCESS).copied().unwrap_or(u8::MAX);
        let sched = bytes.get(field::SCHEDULE).copied().unwrap_or(u8::MAX);
        let steps = u32_at(bytes, field::STEPS);
        let p = |i: usize| f32::from_bits(u32_at(bytes, field::PARAMS + 4 * i));
        let (process, used) = match kind {
            process::VP_DISCRETE => {
                let (schedule, used) = match sched {
                    schedule_kind::LINEAR => (BetaSchedule::Linear { beta_start: p(0), beta_end: p(1) }, 2),
                    schedule_kind::COSINE => (BetaSchedule::Cosine { s: p(0) }, 1),
                    other => return Err(FormatError::UnknownSchedule(other)),
                };
                (Process::VpDiscrete { steps, schedule }, used)
            }
            process::VP_SDE | process::SUB_VP_SDE | process::VE_SDE => {
                // The SDEs have one schedule each: linear β(t), geometric σ(t).
                if sched != schedule_kind::LINEAR {
                    return Err(FormatError::UnknownSchedule(sched));
                }
                let sde = match kind {
                    process::VP_SDE => Sde::Vp { beta_min: p(0), beta_max: p(1) },
                    process::SUB_VP_SDE => Sde::SubVp { beta_min: p(0), beta_max: p(1) },
                    _ => Sde::Ve { sigma_min: p(0), sigma_max: p(1) },
                };
                (Process::Sde { steps, sde, t_eps: p(2) }, 3)
            }
            other => return Err(FormatError::UnknownProcess(other)),
        };
        for i in used..4 {
            if p(i).to_bits() != 0 {
                return Err(FormatError::ReservedNonZero(field::PARAMS + 4 * i));
            }
        }
        // Build the process once to prove it is valid; samplers rebuild it.
        process.diffusion()?;
        Ok(process)
    }

    /// The region at `offset` of `len` bytes, which must start at `*prev_end` rounded up to 16
    /// with zero padding in between; advances `*prev_end`.
    fn region(
        bytes: &'a [u8],
        index: usize,
        prev_end: &mut usize,
        offset: u32,
        len: usize,
    ) -> Result<&'a [u8], FormatError> {
        let expected = align_up(*prev_end).ok_or(FormatError::OutOfBounds { index })?;
        if offset as usize != expected {
            return Err(FormatError::Misplaced { index, offset, expected });
        }
        let end = expected.checked_add(len).ok_or(FormatError::OutOfBounds { index })?;
        if end > bytes.len() {
            return Err(FormatError::OutOfBounds { index });
        }
        let padding = bytes.get(*prev_end..expected).ok_or(FormatError::OutOfBounds { index })?;
        if let Some(p) = padding.iter().position(|&b| b != 0) {
            return Err(FormatError::NonZeroPadding(*prev_end + p));
        }
        let region = bytes.get(expected..end).ok_or(FormatError::OutOfBounds { index })?;
        *prev_end = end;
        Ok(region)
    }

    fn check_values(t: &Tensor<'_>, index: usize) -> Result<(), FormatError> {
        match t.dtype {
            DType::Lut8 => {
                if t.data.iter().any(|&b| b as i8 == i8::MIN) {
                    return Err(FormatError::Int8OutOfRange { index });
                }
            }
            // Fields checked by `check_activation_params`, which knows their layout.
            DType::I32 => {}
            DType::F32 if t.role == Role::ActScales => {}
            DType::I8 => {
                if t.data.iter().any(|&b| b as i8 == i8::MIN) {
                    return Err(FormatError::Int8OutOfRange { index });
                }
                for r in 0..t.rows {
                    let s = t.scale(r);
                    if !(s.is_finite() && s > 0.0) {
                        return Err(FormatError::BadScale { index });
                    }
                }
            }
            _ => {
                for i in 0..t.rows * t.cols {
                    let v = t.get(i);
                    if !v.is_finite() || (t.role == Role::NormStd && v <= 0.0) {
                        return Err(FormatError::BadValue { index });
                    }
                }
            }
        }
        Ok(())
    }

    /// The decoded header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The network's sizes.
    pub fn dims(&self) -> Dims {
        self.header.dims
    }

    /// The diffusion process.
    pub fn process(&self) -> Process {
        self.header.process
    }

    /// All tensors in file order.
    #[allow(clippy::indexing_slicing)] // count ≤ MAX_TENSORS, checked by parse
    pub fn tensors(&self) -> &[Tensor<'a>] {
        &self.tensors[..self.count]
    }

    /// Whether the file holds the w8a8 activation tensors (quantization version ≥ 2): the engine
    /// then evaluates the network on its integer path.
    #[inline]
    pub fn is_int8(&self) -> bool {
        self.header.quant_version >= QUANT_VERSION_W8A8
    }

    /// Timestep groups of a w8a8 file (0 for other files).
    pub fn groups(&self) -> usize {
        if self.is_int8() {
            self.tensor(Role::ActScales).rows
        } else {
            0
        }
    }

    /// The tensor with `role` (which validation guarantees exists for this file's sizes; the
    /// activation roles exist only when [`Model::is_int8`]).
    #[inline]
    #[allow(clippy::indexing_slicing)] // validation proved every role of these sizes has its slot
    pub fn tensor(&self, role: Role) -> &Tensor<'a> {
        &self.tensors[role.slot(self.header.dims.blocks)]
    }

    /// Maps a normalised vector to data units in place: x ← x·std + mean.
    #[allow(clippy::indexing_slicing)] // x at least D long is the caller's contract
    pub fn denormalize(&self, x: &mut [f32]) {
        let (mean, std) = (self.tensor(Role::NormMean), self.tensor(Role::NormStd));
        for (i, v) in x[..self.header.dims.dim].iter_mut().enumerate() {
            *v = *v * std.get(i) + mean.get(i);
        }
    }

    /// Maps a vector in data units to normalised units in place: x ← (x − mean)/std.
    #[allow(clippy::indexing_slicing)] // x at least D long is the caller's contract
    pub fn normalize(&self, x: &mut [f32]) {
        let (mean, std) = (self.tensor(Role::NormMean), self.tensor(Role::NormStd));
        for (i, v) in x[..self.header.dims.dim].iter_mut().enumerate() {
            *v = (*v - mean.get(i)) / std.get(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented order, written as plainly as possible.
    fn dot_reference(w: &[f32], x: &[f32]) -> f32 {
        let full = w.len() / 8 * 8;
        let mut l = [0.0f32; 8];
        for c in 0..full {
            l[c % 8] += w[c] * x[c];
        }
        let mut acc = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
        for c in full..w.len() {
            acc += w[c] * x[c];
        }
        acc
    }

    #[test]
    fn dot_follows_the_documented_order_bit_for_bit() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        for cols in [1usize, 7, 8, 9, 16, 31, 64, 130] {
            let w: Vec<f32> = (0..cols).map(|_| rnd()).collect();
            let x: Vec<f32> = (0..cols).map(|_| rnd() * 3.0).collect();
            let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
            let got = dot::<4>(&bytes, &x, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            assert_eq!(got.to_bits(), dot_reference(&w, &x).to_bits(), "cols {cols}");
            let exact: f64 = w.iter().zip(&x).map(|(a, b)| *a as f64 * *b as f64).sum();
            assert!((got as f64 - exact).abs() < 1e-5 * cols as f64);
        }
    }

    #[test]
    fn typed_dots_and_dot_finish_give_dot_bits() {
        let mut state = 0x5851_f42d_4c95_7f2du64;
        let mut bits = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 32) as u32
        };
        // A NaN's payload depends on the operand order the compiler picks for each `+` (it
        // differs between inlined copies of the same code on x86-64); any NaN agrees with a NaN.
        let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || a.is_nan() && b.is_nan();
        let mut finite = 0;
        for cols in 0..=41usize {
            // Any bit pattern: subnormals, ±0, inf and NaN included.
            let w: Vec<u8> = (0..cols).flat_map(|_| bits().to_le_bytes()).collect();
            let w8: Vec<u8> = (0..cols).map(|_| bits() as u8).collect();
            let x: Vec<f32> = (0..cols).map(|_| f32::from_bits(bits())).collect();
            let want = dot::<4>(&w, &x, decode_f32);
            finite += usize::from(want.is_finite());
            assert!(same(dot_f32w(&w, &x), want), "cols {cols}");
            assert!(same(dot_i8w(&w8, &x), dot::<1>(&w8, &x, decode_i8)), "cols {cols}");
            // dot = its lanes (written out here) finished by dot_finish.
            let full = cols / DOT_LANES * DOT_LANES;
            let mut lanes = [0.0f32; DOT_LANES];
            for c in 0..full {
                lanes[c % DOT_LANES] += decode_f32(&w[4 * c..]) * x[c];
            }
            let got = dot_finish::<4>(&lanes, &w[4 * full..], &x[full..], decode_f32);
            assert!(same(got, want), "cols {cols}");
        }
        assert!(finite > 5, "only {finite} finite results: the test would compare NaNs only");
    }

    #[test]
    fn dot_block_and_matmul_give_dot_bits_for_every_vector() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        for cols in [1usize, 7, 8, 9, 16, 31, 64, 130] {
            let w: Vec<f32> = (0..3 * cols).map(|_| rnd()).collect();
            let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
            let xs: Vec<f32> = (0..5 * cols).map(|_| rnd() * 3.0).collect();
            let dec = |b: &[u8]| f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let rows = [&bytes[..4 * cols], &bytes[4 * cols..8 * cols]];
            let x4 = [&xs[..cols], &xs[cols..2 * cols], &xs[2 * cols..3 * cols], &xs[3 * cols..4 * cols]];
            let got = dot_block::<4, 2, 4>(rows, x4, dec);
            for r in 0..2 {
                for i in 0..4 {
                    assert_eq!(got[r][i].to_bits(), dot::<4>(rows[r], x4[i], dec).to_bits(), "cols {cols}");
                }
            }
            // Every dtype through Tensor::matmul_acc (3 rows, 5 vectors: both remainders).
            for (dtype, data) in [
                (DType::F32, bytes.clone()),
                (DType::F16, w.iter().flat_map(|v| half_bits(*v).to_le_bytes()).collect::<Vec<u8>>()),
                (DType::I8, w.iter().map(|v| (v * 127.0) as i8 as u8).collect()),
            ] {
                let scales: Vec<u8> = [0.5f32, 0.25, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
                let t = Tensor { role: Role::TimeW1, dtype, rows: 3, cols, data: &data, scales: &scales };
                let mut batch = vec![0.25f32; 5 * 4];
                t.matmul_acc(&xs, cols, &mut batch, 4, 5);
                for i in 0..5 {
                    let mut one = [0.25f32; 4];
                    t.matvec_acc(&xs[i * cols..(i + 1) * cols], &mut one);
                    let mut rows = [0.25f32; 4];
                    t.matvec_rows(&xs[i * cols..(i + 1) * cols], &mut rows);
                    assert_eq!(one.map(f32::to_bits), rows.map(f32::to_bits), "{dtype:?} cols {cols}");
                    for r in 0..3 {
                        assert_eq!(batch[i * 4 + r].to_bits(), one[r].to_bits(), "{dtype:?} cols {cols}");
                    }
                }
            }
        }
    }

    /// An f16 bit pattern near `v` (truncating; any pattern will do for a bit-equality test).
    fn half_bits(v: f32) -> u16 {
        let b = v.to_bits();
        let sign = ((b >> 16) & 0x8000) as u16;
        let e = ((b >> 23) & 0xff) as i32 - 127 + 15;
        if e <= 0 {
            return sign;
        }
        sign | ((e.min(30) as u16) << 10) | ((b >> 13) & 0x3ff) as u16
    }

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn f16_conversion_is_exact() {
        assert_eq!(f16_to_f32(0x3C00), 1.0);
        assert_eq!(f16_to_f32(0xC000), -2.0);
        assert_eq!(f16_to_f32(0x7BFF), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert!(f16_to_f32(0x7C00).is_infinite());
        assert!(f16_to_f32(0x7E00).is_nan());
    }

    #[test]
    fn short_inputs_are_refused_without_panic() {
        for n in 0..HEADER_LEN + 8 {
            let mut b = [0u8; HEADER_LEN + 8];
            b[..4].copy_from_slice(&MAGIC);
            assert!(Model::parse(&b[..n]).is_err());
        }
    }
}
