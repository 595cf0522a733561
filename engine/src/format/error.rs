//! [`FormatError`]: every way a file can be refused, one variant per failure, each with what was
//! found and what was expected (`docs/format.md` names the rule behind each).

use crate::graph::GraphError;
use crate::schedule::ScheduleError;

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
    /// The layer graph is inconsistent ([`GraphError`] says how).
    Graph(GraphError),
    /// A `w8a8` file whose dense graph is not ScoreNet v1's: the integer path runs only that
    /// dense network.
    Int8NotMlp,
    /// A `w8a8` file whose convolutional graph has a layer where the integer plan's fused
    /// convolution steps cannot take it (`quant::plan`, `docs/quantization.md`).
    Int8ConvPattern {
        /// The layer.
        layer: usize,
        /// What is wrong.
        what: &'static str,
    },
    /// A `w8a8` file with a layer the integer path has no kernel for (a standalone `add`, a
    /// `linear` layer in a convolutional data branch; `quant::plan`).
    Int8Unsupported {
        /// The layer.
        layer: usize,
        /// Its op's name.
        op: &'static str,
    },
    /// The data description is inconsistent (unknown kind, an image width that does not divide
    /// L, or D = C·L beyond the engine's bound).
    BadData {
        /// Which field.
        what: &'static str,
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
            Graph(e) => write!(f, "layer graph: {e}"),
            Int8NotMlp => write!(f, "w8a8 (integer) files run only the ScoreNet v1 MLP graph"),
            Int8ConvPattern { layer, what } => {
                write!(f, "w8a8 (integer) convolutional file: layer {layer}: {what}")
            }
            Int8Unsupported { layer, op } => {
                write!(f, "w8a8 (integer) file: layer {layer} ({op}) has no integer kernel (use f32, f16 or w8)")
            }
            BadData { what } => write!(f, "invalid data description: {what}"),
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

impl From<GraphError> for FormatError {
    fn from(e: GraphError) -> Self {
        Self::Graph(e)
    }
}
