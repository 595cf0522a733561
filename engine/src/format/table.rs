//! The tensor table: what each 32-byte [`Entry`] holds, how a tensor is stored ([`DType`]) and
//! what it is in the network ([`Role`], its code and its name), `docs/format.md` §4.

use super::le::{u16_at, u32_at};
use crate::limits;

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
    pub(super) fn slot(self, blocks: usize) -> usize {
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

/// Size of one tensor-table entry.
pub const ENTRY_LEN: usize = 32;

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

    pub(super) fn decode(b: &[u8]) -> Self {
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
