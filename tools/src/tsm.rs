//! The `.tsm` writer: the converter's half of `docs/format.md`.
//!
//! The layout (header fields, entry encoding, canonical tensor order, alignment, CRC) comes from
//! `tinyscore_engine::format`, the same module the reader uses, so writer and reader cannot drift;
//! `tests/format.rs` round-trips every file this writes through the engine's parser.

use tinyscore_engine::format::{
    align_up, crc32, file_tensors, DType, Entry, Header, Process, Role, CRC_START, ENTRY_LEN, HEADER_LEN,
    QUANT_VERSION, VERSION,
};
use tinyscore_engine::net::Dims;

/// How the converter stores weight matrices (vectors always stay f32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quant {
    /// f32 weights.
    F32,
    /// f16 weights (round to nearest even), computed in f32.
    F16,
    /// int8 weights, symmetric, one f32 scale per output row: scale = max|w_row|/127.
    W8,
}

impl Quant {
    /// The dtype of a tensor with `role` under this mode.
    pub fn dtype(self, role: Role) -> DType {
        if !role.is_matrix() {
            return DType::F32;
        }
        match self {
            Self::F32 => DType::F32,
            Self::F16 => DType::F16,
            Self::W8 => DType::I8,
        }
    }
}

/// Everything a model file holds, in host form.
#[derive(Clone, Debug)]
pub struct ModelSpec<'a> {
    /// Network sizes.
    pub dims: Dims,
    /// The diffusion process.
    pub process: Process,
    /// (D,) data mean.
    pub norm_mean: &'a [f32],
    /// (D,) data std.
    pub norm_std: &'a [f32],
    /// Flat parameters in `Dims::params()` order.
    pub params: &'a [f32],
}

/// Why a model could not be written.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteError {
    /// A buffer's length does not match the sizes.
    Length {
        /// Which buffer.
        what: &'static str,
        /// Its length.
        found: usize,
        /// The length the sizes require.
        expected: usize,
    },
    /// The file would exceed 4 GiB.
    TooLarge,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Length { what, found, expected } => {
                write!(f, "{what} has {found} values, the network needs {expected}")
            }
            Self::TooLarge => write!(f, "model file would exceed 4 GiB"),
        }
    }
}

impl std::error::Error for WriteError {}

/// One tensor's encoded payload.
struct Payload {
    role: Role,
    dtype: DType,
    rows: usize,
    cols: usize,
    data: Vec<u8>,
    scales: Vec<u8>,
}

/// Quantizes a row-major (rows, cols) matrix to int8 with one scale per row.
/// Returns (q, scales); q never holds −128.
pub fn quantize_rows_i8(values: &[f32], rows: usize, cols: usize) -> (Vec<i8>, Vec<f32>) {
    let mut q = Vec::with_capacity(rows * cols);
    let mut scales = Vec::with_capacity(rows);
    for row in values.chunks_exact(cols).take(rows) {
        let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        scales.push(scale);
        q.extend(row.iter().map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8));
    }
    (q, scales)
}

fn encode(role: Role, dtype: DType, rows: usize, cols: usize, values: &[f32]) -> Payload {
    let (data, scales) = match dtype {
        DType::F32 => (values.iter().flat_map(|v| v.to_le_bytes()).collect(), Vec::new()),
        DType::F16 => (
            values.iter().flat_map(|v| half::f16::from_f32(*v).to_bits().to_le_bytes()).collect(),
            Vec::new(),
        ),
        DType::I8 => {
            let (q, s) = quantize_rows_i8(values, rows, cols);
            (q.iter().map(|v| *v as u8).collect(), s.iter().flat_map(|v| v.to_le_bytes()).collect())
        }
    };
    Payload { role, dtype, rows, cols, data, scales }
}

/// Encodes a complete `.tsm` file.
pub fn write(spec: &ModelSpec<'_>, quant: Quant) -> Result<Vec<u8>, WriteError> {
    let dims = spec.dims;
    for (what, found, expected) in [
        ("norm.mean", spec.norm_mean.len(), dims.dim),
        ("norm.std", spec.norm_std.len(), dims.dim),
        ("parameters", spec.params.len(), dims.param_count()),
    ] {
        if found != expected {
            return Err(WriteError::Length { what, found, expected });
        }
    }
    let mut payloads = Vec::new();
    let mut offset = 0;
    for (role, rows, cols) in file_tensors(&dims) {
        let values = match role {
            Role::NormMean => spec.norm_mean,
            Role::NormStd => spec.norm_std,
            _ => {
                let v = &spec.params[offset..offset + rows * cols];
                offset += rows * cols;
                v
            }
        };
        payloads.push(encode(role, quant.dtype(role), rows, cols, values));
    }

    let table_end = HEADER_LEN + ENTRY_LEN * payloads.len();
    let mut file = vec![0u8; table_end];
    let mut entries = Vec::with_capacity(payloads.len());
    let to_u32 = |x: usize| u32::try_from(x).map_err(|_| WriteError::TooLarge);
    for p in &payloads {
        let data_offset = align_up(file.len()).ok_or(WriteError::TooLarge)?;
        file.resize(data_offset, 0);
        file.extend_from_slice(&p.data);
        let scale_offset = if p.scales.is_empty() {
            0
        } else {
            let o = align_up(file.len()).ok_or(WriteError::TooLarge)?;
            file.resize(o, 0);
            file.extend_from_slice(&p.scales);
            o
        };
        entries.push(Entry {
            role: p.role.code(),
            dtype: p.dtype as u8,
            rows: to_u32(p.rows)?,
            cols: to_u32(p.cols)?,
            data_offset: to_u32(data_offset)?,
            data_len: to_u32(p.data.len())?,
            scale_offset: to_u32(scale_offset)?,
            scale_len: to_u32(p.scales.len())?,
        });
    }
    let header = Header {
        version: VERSION,
        quant_version: QUANT_VERSION,
        crc: 0,
        file_len: to_u32(file.len())?,
        dims,
        process: spec.process,
        ram_bytes: to_u32(dims.ram_bytes())?,
        tensor_count: to_u32(payloads.len())?,
    };
    file[..HEADER_LEN].copy_from_slice(&header.encode());
    for (i, e) in entries.iter().enumerate() {
        let o = HEADER_LEN + ENTRY_LEN * i;
        file[o..o + ENTRY_LEN].copy_from_slice(&e.encode());
    }
    let crc = crc32(&file[CRC_START..]);
    file[tinyscore_engine::format::field::CRC..tinyscore_engine::format::field::CRC + 4]
        .copy_from_slice(&crc.to_le_bytes());
    Ok(file)
}

/// Re-seals a file after an edit: recomputes its CRC (for tests that craft bad files behind a
/// valid CRC, and for the fuzzer's structure-aware generator).
pub fn reseal(file: &mut [u8]) {
    if file.len() >= HEADER_LEN {
        let crc = crc32(&file[CRC_START..]);
        let o = tinyscore_engine::format::field::CRC;
        file[o..o + 4].copy_from_slice(&crc.to_le_bytes());
    }
}
