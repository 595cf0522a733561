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

mod crc;
mod dims;
mod error;
mod header;
mod le;
mod table;

/// The column layout of a `w8a8` file's activation tensors, which the integer path's plan
/// ([`crate::quant::plan`]) shares: it lives with the integer kernels and is part of the format.
pub use crate::quant::layout;

/// The working RAM (bytes) a version-3 file's header records, besides ScoreNet v1's rules
/// ([`Dims::ram_bytes`], [`Dims::ram_bytes_int8`]): the planned arena — its time and data
/// regions and a scratch of `max(regions.scratch, int8_scratch)` words, `int8_scratch` the
/// integer scratch a convolutional `w8a8` file states ([`quant::Int8Plan::file_scratch_words`], else 0)
/// — and the sampler's state x and ε̂ (2·D f32). `None` beyond u32.
pub fn graph_ram_bytes(regions: &Regions, dim: usize, int8_scratch: usize) -> Option<usize> {
    regions
        .time
        .checked_add(regions.data)?
        .checked_add(regions.scratch.max(int8_scratch))?
        .checked_add(dim.checked_mul(2)?)?
        .checked_mul(4)
        .filter(|&b| b <= u32::MAX as usize)
}
pub use crc::{crc32, crc32_update};
pub use dims::{act_tensors, file_tensors, Dims};
pub use error::FormatError;
pub use header::{
    align_up, field, field3, process, schedule_kind, DataKind, DataShape, Header, Process, ALIGN, ARENA_LEN,
    CRC_START, HEADER_LEN, MAGIC, MAX_TENSORS, QUANT_VERSION, QUANT_VERSION_W8A8, V1_MAX_DIM, VERSION,
    VERSION_V1,
};
pub use table::{DType, Entry, Role, ENTRY_LEN};

use crate::graph::{self, op::RECORD_LEN, Graph, GraphError, Regions, Tensors};
use crate::limits;
use crate::quant;
use crate::schedule::{BetaSchedule, Sde};
use le::{u16_at, u32_at};

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

    /// The per-row scales of an int8 tensor as stored: `rows` little-endian f32, 4 bytes each
    /// (empty for other dtypes).
    pub fn scale_bytes(&self) -> &'a [u8] {
        self.scales
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
            DType::F32 => match self.f32_values() {
                Some(v) => v[i],
                None => read_f32(self.data, i),
            },
            DType::F16 => {
                half::f16::from_bits(u16::from_le_bytes([self.data[2 * i], self.data[2 * i + 1]])).to_f32()
            }
            DType::I8 => self.data[i] as i8 as f32 * self.scale(i / self.cols),
            DType::I32 => self.i32_at(i) as f32,
            DType::Lut8 => self.data[i] as i8 as f32,
        }
    }

    /// Element `i` of an i32 tensor (row-major).
    #[inline]
    pub fn i32_at(&self, i: usize) -> i32 {
        if let Some(v) = le_words::<i32>(self.data) {
            return v[i];
        }
        let b = &self.data[4 * i..4 * i + 4];
        i32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The values of an f32 tensor as a slice of the file's bytes, zero-copy (`bytemuck`):
    /// `Some` where the data is 4-byte aligned in memory and the target little-endian, as the
    /// file is; `None` for another dtype or where the bytes must be read one value at a time
    /// (a file in a buffer of alignment 1 on which the data lands unaligned), as [`Tensor::get`]
    /// then does. The same values either way.
    #[inline]
    pub fn f32_values(&self) -> Option<&'a [f32]> {
        match self.dtype {
            DType::F32 => le_words::<f32>(self.data),
            _ => None,
        }
    }

    /// The values of an i32 tensor as a slice of the file's bytes, zero-copy, under the
    /// conditions of [`Tensor::f32_values`]; `None` otherwise (then [`Tensor::i32_at`] reads the
    /// bytes).
    #[inline]
    pub fn i32_values(&self) -> Option<&'a [i32]> {
        match self.dtype {
            DType::I32 => le_words::<i32>(self.data),
            _ => None,
        }
    }

    /// Row `r`'s stored bytes (values only).
    #[inline]
    pub fn row_bytes(&self, r: usize) -> &'a [u8] {
        let n = self.cols * self.dtype.size();
        &self.data[r * n..(r + 1) * n]
    }

    /// A tensor over the given bytes, unvalidated: for the unit tests of the kernels.
    #[cfg(test)]
    pub(crate) fn from_parts(
        role: Role,
        dtype: DType,
        rows: usize,
        cols: usize,
        data: &'a [u8],
        scales: &'a [u8],
    ) -> Self {
        Tensor { role, dtype, rows, cols, data, scales }
    }
}

/// `bytes` as 4-byte little-endian words, zero-copy, where the target is little-endian and
/// `bytes` is aligned for `T` and a whole number of words (`bytemuck::try_cast_slice`); `None`
/// where they must be decoded from the bytes instead.
#[inline(always)]
fn le_words<T: bytemuck::Pod>(bytes: &[u8]) -> Option<&[T]> {
    if cfg!(target_endian = "little") {
        bytemuck::try_cast_slice(bytes).ok()
    } else {
        None
    }
}

#[cfg_attr(not(target_arch = "arm"), inline(always))]
#[cfg_attr(target_arch = "arm", inline)]
#[allow(clippy::indexing_slicing)] // only called by Tensor on validated lengths
fn read_f32(bytes: &[u8], i: usize) -> f32 {
    let b = &bytes[4 * i..4 * i + 4];
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// A parsed, validated model file: the header, its layer graph, and views of its tensors
/// (decoded from the table when asked, so a model costs the same few words of RAM whatever its
/// size).
#[derive(Clone, Debug)]
pub struct Model<'a> {
    bytes: &'a [u8],
    header: Header,
    /// Byte offset of the tensor table.
    table: usize,
    count: usize,
    graph: Graph<'a>,
}

/// The tensor table of a file being parsed, as the graph's checks see it.
struct TableView<'b> {
    bytes: &'b [u8],
    table: usize,
    count: usize,
}

impl Tensors for TableView<'_> {
    fn count(&self) -> usize {
        self.count
    }

    fn param_shape(&self, i: usize) -> Option<(usize, usize)> {
        if i >= self.count {
            return None;
        }
        let off = self.table.checked_add(ENTRY_LEN.checked_mul(i)?)?;
        let e = Entry::decode(self.bytes.get(off..off + ENTRY_LEN)?);
        match Role::from_code(e.role)? {
            Role::NormMean | Role::NormStd | Role::ActScales | Role::ActRequant | Role::ActLut => None,
            _ => Some((e.rows as usize, e.cols as usize)),
        }
    }
}

impl<'a> Model<'a> {
    /// Parses and validates `bytes` (zero-copy: the tensors borrow from it).
    ///
    /// Checks, in order: length, magic, versions, file length, CRC, flags and reserved fields,
    /// sizes, process, tensor count, every entry (role, dtype, shape, lengths, placement,
    /// padding, values), the layer graph, the RAM figure. See `docs/format.md` for the rule
    /// behind each error.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, FormatError> {
        if bytes.len() < HEADER_LEN {
            return Err(FormatError::Truncated { needed: HEADER_LEN, found: bytes.len() });
        }
        if bytes.get(..4) != Some(&MAGIC[..]) {
            return Err(FormatError::BadMagic);
        }
        let version = u16_at(bytes, field::VERSION);
        if version != VERSION && version != VERSION_V1 {
            return Err(FormatError::UnsupportedVersion { found: version, supported: VERSION });
        }
        let v1 = version == VERSION_V1;
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
        let reserved: &[(usize, usize)] = if v1 {
            &[(field::RESERVED0, 2), (field::RESERVED1, 4)]
        } else {
            &[(field3::RESERVED_KIND, 1), (field::RESERVED0, 2), (field3::RESERVED2, 2)]
        };
        for &(off, len) in reserved {
            if bytes.get(off..off + len).map_or(true, |r| r.iter().any(|&b| b != 0)) {
                return Err(FormatError::ReservedNonZero(off));
            }
        }
        let int8 = quant_version >= QUANT_VERSION_W8A8;
        // Sizes: v1's D, H, F, B; v3's data shape, layers and arena.
        let (v1_dims, data, layers, regions, input, table) = if v1 {
            let dims = Self::parse_dims(bytes)?;
            let data = DataShape { kind: DataKind::Points, channels: dims.dim, length: 1 };
            let input = graph::Shape { channels: dims.dim, length: 1 };
            (Some(dims), data, graph::mlp::layer_count(&dims), graph::mlp::regions(&dims), input, HEADER_LEN)
        } else {
            let data = Self::parse_data(bytes)?;
            let layers = u16_at(bytes, field3::LAYERS) as usize;
            if layers == 0 || layers > graph::MAX_LAYERS {
                return Err(GraphError::LayerCount { found: layers }.into());
            }
            let w = |o: usize| u32_at(bytes, o) as usize;
            let regions = Regions {
                time: w(field3::TIME_WORDS),
                data: w(field3::DATA_WORDS),
                scratch: w(field3::SCRATCH_WORDS),
            };
            let h = |o: usize| u16_at(bytes, o) as usize;
            let input = graph::Shape { channels: h(field3::INPUT_CHANNELS), length: h(field3::INPUT_LENGTH) };
            if input.len() != data.dim() {
                return Err(FormatError::BadData { what: "graph input" });
            }
            (None, data, layers, regions, input, field3::RECORDS + RECORD_LEN * layers)
        };
        let process = Self::parse_process(bytes)?;
        let tensor_count = u32_at(bytes, field::TENSOR_COUNT);
        let count = tensor_count as usize;
        if let Some(dims) = v1_dims {
            let expected = (2 + dims.params().count() + if int8 { 3 } else { 0 }) as u32;
            if tensor_count != expected {
                return Err(FormatError::TensorCount { found: tensor_count, expected });
            }
        } else if count < 2 + 2 + if int8 { 3 } else { 0 } || count > MAX_TENSORS {
            return Err(FormatError::TensorCount { found: tensor_count, expected: MAX_TENSORS as u32 });
        }
        // count ≤ MAX_TENSORS and layers ≤ MAX_LAYERS, so this cannot overflow.
        let table_end = table + ENTRY_LEN * count;
        if bytes.len() < table_end {
            return Err(FormatError::Truncated { needed: table_end, found: bytes.len() });
        }
        let entry = |index: usize| -> Result<(usize, Entry), FormatError> {
            let off = table + ENTRY_LEN * index;
            let raw = bytes
                .get(off..off + ENTRY_LEN)
                .ok_or(FormatError::Truncated { needed: table_end, found: bytes.len() })?;
            Ok((off, Entry::decode(raw)))
        };

        // The number of timestep groups G of a w8a8 file: the rows of `act.scales`' entry (the
        // third last).
        let groups = if int8 {
            let g = entry(count - 3)?.1.rows;
            if g == 0 || g as usize > quant::MAX_GROUPS {
                return Err(FormatError::BadGroups { found: g, max: quant::MAX_GROUPS as u32 });
            }
            g as usize
        } else {
            0
        };
        // The roles and shapes every entry must have: v1's canonical list; in v3 the
        // normalisation, then parameters (shapes checked by the graph), then the activation
        // tensors, whose shapes follow from ScoreNet v1's sizes (checked once the graph is).
        let d = data.dim();
        // (Computed per index, not listed: a list of every slot would cost kilobytes of stack.)
        let v1_slot = |index: usize| -> Option<(Role, usize, usize)> {
            let dims = v1_dims?;
            let acts = act_tensors(&dims, groups);
            let acts = acts.get(..if int8 { 3 } else { 0 }).unwrap_or(&[]);
            let slot = file_tensors(&dims).chain(acts.iter().copied()).nth(index);
            slot
        };
        let mut prev_end = table_end;
        for index in 0..count {
            let (off, e) = entry(index)?;
            let raw = bytes.get(off..off + ENTRY_LEN).unwrap_or(&[]);
            let byte3_set = raw.get(3) != Some(&0);
            if byte3_set || raw.get(28..).map_or(true, |r| r.iter().any(|&b| b != 0)) {
                return Err(FormatError::ReservedNonZero(if byte3_set { off + 3 } else { off + 28 }));
            }
            let (role, rows, cols) = match v1_dims {
                Some(_) => v1_slot(index).unwrap_or((Role::NormMean, 0, 0)),
                None => {
                    let acts = [Role::ActScales, Role::ActRequant, Role::ActLut];
                    let role = match index {
                        0 => Role::NormMean,
                        1 => Role::NormStd,
                        i if int8 && i + 3 >= count => {
                            acts.get(i + 3 - count).copied().unwrap_or(Role::ActLut)
                        }
                        _ => Role::Param,
                    };
                    let (rows, cols) = match role {
                        Role::NormMean | Role::NormStd => (d, 1),
                        _ => (e.rows as usize, e.cols as usize),
                    };
                    (role, rows, cols)
                }
            };
            if e.role != role.code() {
                return Err(FormatError::UnexpectedTensor { index, found: e.role, expected: role.code() });
            }
            let dtype = DType::from_code(e.dtype).ok_or(FormatError::BadDtype { index, code: e.dtype })?;
            // Normalisation and biases stay f32; only weight matrices may be quantized, and in a
            // w8a8 file they must be int8; the activation tensors have one dtype each. (A v3
            // parameter's kind — weight or bias — is known from the graph: checked below.)
            let allowed = match role {
                Role::ActScales => dtype == DType::F32,
                Role::ActRequant => dtype == DType::I32,
                Role::ActLut => dtype == DType::Lut8,
                Role::Param => matches!(dtype, DType::F32 | DType::F16 | DType::I8),
                r if r.is_matrix() && int8 => dtype == DType::I8,
                r if r.is_matrix() => matches!(dtype, DType::F32 | DType::F16 | DType::I8),
                _ => dtype == DType::F32,
            };
            if !allowed {
                return Err(FormatError::BadDtype { index, code: e.dtype });
            }
            if e.rows as usize != rows || e.cols as usize != cols || rows == 0 || cols == 0 {
                return Err(FormatError::ShapeMismatch { index, rows: e.rows, cols: e.cols });
            }
            let want_data = rows
                .checked_mul(cols)
                .and_then(|n| n.checked_mul(dtype.size()))
                .filter(|&n| n <= bytes.len())
                .ok_or(FormatError::BadLength { index })?;
            let want_scales = if dtype.has_scales() { 4 * rows } else { 0 };
            if e.data_len as usize != want_data || e.scale_len as usize != want_scales {
                return Err(FormatError::BadLength { index });
            }
            let data_region = Self::region(bytes, index, &mut prev_end, e.data_offset, want_data)?;
            let scales = if dtype.has_scales() {
                Self::region(bytes, index, &mut prev_end, e.scale_offset, want_scales)?
            } else {
                if e.scale_offset != 0 {
                    return Err(FormatError::ReservedNonZero(off + 20));
                }
                &[]
            };
            let t = Tensor { role, dtype, rows, cols, data: data_region, scales };
            Self::check_values(&t, index)?;
        }
        if prev_end != bytes.len() {
            return Err(FormatError::TrailingBytes { end: prev_end, file_len: bytes.len() });
        }
        let view = TableView { bytes, table, count };
        let graph = match v1_dims {
            Some(dims) => Graph::mlp(dims, &view)?,
            None => {
                let records = bytes.get(field3::RECORDS..table).unwrap_or(&[]);
                Graph::new(records, input, regions, &view)?
            }
        };
        let mlp = graph.mlp_dims();
        // A v3 parameter referenced as a bias must be f32 (only weights may be quantized), and
        // in a w8a8 file every weight int8.
        for layer in graph.layers() {
            if let Some((w, b)) = layer.op.params() {
                for (t, is_weight) in [(w as usize, true), (b as usize, false)] {
                    let (_, e) = entry(t)?;
                    let ok = match (is_weight, DType::from_code(e.dtype)) {
                        (false, Some(dt)) => dt == DType::F32,
                        (true, Some(dt)) if int8 => dt == DType::I8,
                        (true, Some(_)) => true,
                        _ => false,
                    };
                    if !ok {
                        return Err(FormatError::BadDtype { index: t, code: e.dtype });
                    }
                }
            }
        }
        let dims = match mlp {
            Some(dims) => dims,
            None => {
                let freqs = graph
                    .layers()
                    .find_map(
                        |l| if let graph::Op::TimeFeatures { freqs } = l.op { Some(freqs) } else { None },
                    )
                    .unwrap_or(0);
                Dims { dim: d, hidden: 0, freqs, blocks: 0 }
            }
        };
        let int8_plan = if int8 {
            // The integer path walks the graph's plan: a layer it has no kernel for is refused
            // by name; other layers must be in the arrangement the format's activation layout
            // describes, ScoreNet v1's.
            let conv = graph.layers().any(|l| matches!(l.op, graph::Op::Conv1d { .. }));
            let plan = match quant::Int8Plan::new(&graph) {
                Err(quant::PlanError::Unsupported { layer, op }) => {
                    return Err(FormatError::Int8Unsupported { layer, op })
                }
                Err(quant::PlanError::Pattern { layer, what }) if conv => {
                    return Err(FormatError::Int8ConvPattern { layer, what })
                }
                Err(quant::PlanError::Pattern { .. }) => return Err(FormatError::Int8NotMlp),
                Ok(plan) => plan,
            };
            if mlp.is_none() && !plan.is_conv() {
                return Err(FormatError::Int8NotMlp);
            }
            // The activation tensors' shapes: the columns the plan's steps index (for ScoreNet
            // v1, `act_tensors`' sizes).
            let shapes = [plan.scale_cols(), plan.requant_cols(), 256 * plan.lut_count()];
            for (k, cols) in shapes.into_iter().enumerate() {
                let index = count - 3 + k;
                let (_, e) = entry(index)?;
                if e.rows as usize != groups || e.cols as usize != cols {
                    return Err(FormatError::ShapeMismatch { index, rows: e.rows, cols: e.cols });
                }
            }
            Some(plan)
        } else {
            None
        };
        let ram_bytes = u32_at(bytes, field::RAM_BYTES);
        let int8_scratch = int8_plan.as_ref().map_or(0, quant::Int8Plan::file_scratch_words);
        let ram_computed = match (v1, int8) {
            (_, true) if int8_scratch == 0 => dims.ram_bytes_int8(),
            (true, false) => dims.ram_bytes(),
            // The arena plus the sampler's state (x and ε̂, f32); a convolutional w8a8 file's
            // arena holds its integer scratch.
            (_, _) => graph_ram_bytes(&regions, d, int8_scratch).ok_or(GraphError::Overflow { layer: 0 })?,
        } as u32;
        if ram_bytes != ram_computed {
            return Err(FormatError::RamMismatch { stored: ram_bytes, computed: ram_computed });
        }
        let header = Header {
            version,
            quant_version,
            crc,
            file_len,
            dims,
            data,
            regions,
            layers,
            input,
            process,
            ram_bytes,
            tensor_count,
        };
        let model = Self { bytes, header, table, count, graph };
        if let Some(plan) = int8_plan {
            model.check_activation_params(&plan)?;
        }
        Ok(model)
    }

    /// The data description of a version-3 header.
    fn parse_data(bytes: &[u8]) -> Result<DataShape, FormatError> {
        let get = |o| u16_at(bytes, o) as usize;
        let (channels, length, width) = (get(field3::CHANNELS), get(field3::LENGTH), get(field3::WIDTH));
        if channels == 0 || length == 0 || channels * length > limits::MAX_DIM {
            return Err(FormatError::BadData { what: "channels × length" });
        }
        let kind = match bytes.get(field3::DATA_KIND).copied() {
            Some(0) if length == 1 => DataKind::Points,
            Some(1) => DataKind::Signal,
            Some(2) if width > 0 && length % width == 0 => DataKind::Image { width },
            _ => return Err(FormatError::BadData { what: "kind" }),
        };
        if !matches!(kind, DataKind::Image { .. }) && width != 0 {
            return Err(FormatError::BadData { what: "width" });
        }
        Ok(DataShape { kind, channels, length })
    }

    /// Validates every field of a w8a8 file's activation tensors: scales finite and > 0,
    /// multipliers in [2^30, 2^31), shifts in 1..=62, folded biases within ±2^30, at the columns
    /// the steps of the graph's integer plan read. (Table entries of −128 are refused by the
    /// per-tensor check.)
    fn check_activation_params(&self, plan: &quant::Int8Plan) -> Result<(), FormatError> {
        let (scales, rq) = (self.tensor(Role::ActScales), self.tensor(Role::ActRequant));
        for g in 0..scales.rows {
            for column in 0..scales.cols {
                let s = scales.get(g * scales.cols + column);
                if !(s.is_finite() && s > 0.0) {
                    return Err(FormatError::BadActScale { group: g, column });
                }
            }
            let at = |c: usize| rq.i32_at(g * rq.cols + c);
            let bias = |c: usize| -> Result<(), FormatError> {
                if !(-quant::BIAS_MAX..=quant::BIAS_MAX).contains(&at(c)) {
                    return Err(FormatError::BadBias { group: g, column: c });
                }
                Ok(())
            };
            for step in plan.steps() {
                if step.kind == quant::plan::Kind::Output {
                    for c in step.rq()..step.rq() + step.rows() {
                        bias(c)?;
                    }
                    continue;
                }
                for r in 0..step.rows() {
                    let c = step.rq() + 3 * r;
                    bias(c)?;
                    Self::check_mult_shift(g, c + 1, at(c + 1), at(c + 2))?;
                }
                if let quant::plan::Kind::Residual { .. } = step.kind {
                    let c = step.rq() + 3 * step.rows();
                    Self::check_mult_shift(g, c, at(c), at(c + 1))?;
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
            ("dim", dims.dim, V1_MAX_DIM),
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

    /// Number of tensors.
    pub fn tensor_count(&self) -> usize {
        self.count
    }

    /// Tensor `i` in file order (an empty tensor past the end).
    pub fn tensor_at(&self, i: usize) -> Tensor<'a> {
        self.decode(i).unwrap_or(Tensor::EMPTY)
    }

    /// All tensors in file order.
    pub fn tensors(&self) -> impl Iterator<Item = Tensor<'a>> + '_ {
        (0..self.count).map(|i| self.tensor_at(i))
    }

    /// The layer graph.
    pub fn graph(&self) -> &Graph<'a> {
        &self.graph
    }

    /// The data's shape (C channels × L samples, and what it is).
    pub fn data(&self) -> DataShape {
        self.header.data
    }

    /// D = C·L, the length of the vectors the samplers work on.
    pub fn dim(&self) -> usize {
        self.header.data.dim()
    }

    /// Entry `i`, decoded (validated by `parse`).
    fn decode(&self, i: usize) -> Option<Tensor<'a>> {
        if i >= self.count {
            return None;
        }
        let off = self.table + ENTRY_LEN * i;
        let e = Entry::decode(self.bytes.get(off..off + ENTRY_LEN)?);
        let dtype = DType::from_code(e.dtype)?;
        let (rows, cols) = (e.rows as usize, e.cols as usize);
        let data = self
            .bytes
            .get(e.data_offset as usize..(e.data_offset as usize).checked_add(e.data_len as usize)?)?;
        let scales = if dtype.has_scales() {
            self.bytes
                .get(e.scale_offset as usize..(e.scale_offset as usize).checked_add(e.scale_len as usize)?)?
        } else {
            &[]
        };
        Some(Tensor { role: Role::from_code(e.role)?, dtype, rows, cols, data, scales })
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

    /// The tensor with `role`: the normalisation of every file, ScoreNet v1's roles (by their
    /// place in its canonical order) in a file whose graph is that network, and the activation
    /// tensors of a w8a8 file. An empty tensor for a role the file does not have.
    #[inline]
    pub fn tensor(&self, role: Role) -> Tensor<'a> {
        let slot = match role {
            Role::NormMean => 0,
            Role::NormStd => 1,
            Role::ActScales | Role::ActRequant | Role::ActLut if self.is_int8() => {
                let k = match role {
                    Role::ActScales => 3,
                    Role::ActRequant => 2,
                    _ => 1,
                };
                self.count - k
            }
            _ if self.graph.mlp_dims().is_some() => role.slot(self.header.dims.blocks),
            _ => usize::MAX,
        };
        self.tensor_at(slot)
    }

    /// Maps a normalised vector to data units in place: x ← x·std + mean.
    #[allow(clippy::indexing_slicing)] // x at least D long is the caller's contract
    pub fn denormalize(&self, x: &mut [f32]) {
        let (mean, std) = (self.tensor(Role::NormMean), self.tensor(Role::NormStd));
        for (i, v) in x[..self.dim()].iter_mut().enumerate() {
            *v = *v * std.get(i) + mean.get(i);
        }
    }

    /// Maps a vector in data units to normalised units in place: x ← (x − mean)/std.
    #[allow(clippy::indexing_slicing)] // x at least D long is the caller's contract
    pub fn normalize(&self, x: &mut [f32]) {
        let (mean, std) = (self.tensor(Role::NormMean), self.tensor(Role::NormStd));
        for (i, v) in x[..self.dim()].iter_mut().enumerate() {
            *v = (*v - mean.get(i)) / std.get(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine's hand-written decoder before `half` replaced it (IEEE binary16 → binary32,
    /// exact), kept as the oracle.
    fn f16_to_f32(h: u16) -> f32 {
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

    #[test]
    fn f16_conversion_is_exact() {
        let f16 = |h: u16| half::f16::from_bits(h).to_f32();
        assert_eq!(f16(0x3C00), 1.0);
        assert_eq!(f16(0xC000), -2.0);
        assert_eq!(f16(0x7BFF), 65504.0);
        assert_eq!(f16(0x0001), 5.960_464_5e-8);
        assert_eq!(f16(0x3555), 0.333_251_95);
        assert!(f16(0x7C00).is_infinite());
        assert!(f16(0x7E00).is_nan());
    }

    /// `half` (what `Tensor::get` and the f16 matrix products decode with) gives the bits of the
    /// engine's former decoder for all 65 536 patterns: ±0, subnormals, normals, ±inf and every
    /// NaN with its payload (quiet bit set, payload shifted up by 13, sign kept).
    #[test]
    fn half_decodes_every_f16_as_the_former_decoder() {
        for h in 0..=u16::MAX {
            let want = f16_to_f32(h);
            let got = half::f16::from_bits(h).to_f32();
            assert_eq!(got.to_bits(), want.to_bits(), "f16 bits {h:#06x}");
            let bytes = h.to_le_bytes();
            assert_eq!(crate::linalg::decode_f16(&bytes).to_bits(), want.to_bits(), "{h:#06x}");
        }
    }

    /// The zero-copy views (`bytemuck`) and the byte path give the same values, aligned or not.
    #[test]
    fn zero_copy_views_equal_the_byte_path() {
        let f: Vec<f32> =
            (0..37).map(|i| (i as f32 - 18.5) * 0.37).chain([f32::MIN_POSITIVE / 4.0, -0.0]).collect();
        let n: Vec<i32> = (0..39).map(|i| (i - 19) * 0x0101_0101).chain([i32::MIN, i32::MAX]).collect();
        let fb: Vec<u8> = f.iter().flat_map(|v| v.to_le_bytes()).collect();
        let nb: Vec<u8> = n.iter().flat_map(|v| v.to_le_bytes()).collect();
        // Backing storage of u32 words: offset 0 is 4-byte aligned, offset 1 is not.
        for off in [0usize, 1] {
            let mut wf = vec![0u32; f.len() + 1];
            let mut wn = vec![0u32; n.len() + 1];
            let bf: &mut [u8] = bytemuck::cast_slice_mut(&mut wf);
            bf[off..off + fb.len()].copy_from_slice(&fb);
            let bn: &mut [u8] = bytemuck::cast_slice_mut(&mut wn);
            bn[off..off + nb.len()].copy_from_slice(&nb);
            let (bf, bn): (&[u8], &[u8]) = (bytemuck::cast_slice(&wf), bytemuck::cast_slice(&wn));
            let tf =
                Tensor::from_parts(Role::NormMean, DType::F32, f.len(), 1, &bf[off..off + fb.len()], &[]);
            let ti =
                Tensor::from_parts(Role::ActRequant, DType::I32, 1, n.len(), &bn[off..off + nb.len()], &[]);
            assert_eq!(tf.f32_values().is_some(), off == 0);
            assert_eq!(ti.i32_values().is_some(), off == 0);
            for (i, v) in f.iter().enumerate() {
                assert_eq!(tf.get(i).to_bits(), v.to_bits(), "f32 {i} at offset {off}");
                assert_eq!(read_f32(tf.data(), i).to_bits(), v.to_bits());
            }
            if let Some(view) = tf.f32_values() {
                assert_eq!(
                    view.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    f.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                );
            }
            for (i, v) in n.iter().enumerate() {
                assert_eq!(ti.i32_at(i), *v, "i32 {i} at offset {off}");
                assert_eq!(ti.get(i), *v as f32);
            }
        }
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
