//! The `.tsm` writer: the converter's half of `docs/format.md`.
//!
//! The layout (header fields, entry encoding, canonical tensor order, alignment, CRC) comes from
//! `tinyscore_engine::format`, the same module the reader uses, so writer and reader cannot drift;
//! `tests/format.rs` round-trips every file this writes through the engine's parser.

use tinyscore_engine::format::{
    act_tensors, align_up, crc32, field3, file_tensors, graph_ram_bytes, DType, DataKind, DataShape, Entry,
    Header, Process, Role, ARENA_LEN, CRC_START, ENTRY_LEN, HEADER_LEN, QUANT_VERSION_W8A8, VERSION,
    VERSION_V1,
};
use tinyscore_engine::graph::build::Plan;
use tinyscore_engine::graph::{mlp, GraphError};
use tinyscore_engine::net::Dims;
use tinyscore_engine::quant::{Int8Plan, MAX_GROUPS};

/// How the converter stores weight matrices (vectors always stay f32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quant {
    /// f32 weights.
    F32,
    /// f16 weights (round to nearest even), computed in f32.
    F16,
    /// int8 weights, symmetric, one f32 scale per output row: scale = max|w_row|/127.
    W8,
    /// int8 weights as `W8` and the integer path: int8/int16 activations with calibrated
    /// per-timestep-group scales (quantization version 2; written by [`write_w8a8`]).
    W8A8,
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
            Self::W8 | Self::W8A8 => DType::I8,
        }
    }
}

/// A network given as any layer graph (a conv U-Net, say), with what its file holds besides.
#[derive(Clone, Debug)]
pub struct GraphSpec<'a> {
    /// The layer graph (its input shape is the data's C × L or D × 1).
    pub plan: &'a Plan,
    /// What the data is.
    pub data: DataShape,
    /// The diffusion process.
    pub process: Process,
    /// (D,) data mean.
    pub norm_mean: &'a [f32],
    /// (D,) data std.
    pub norm_std: &'a [f32],
    /// Flat parameters in the graph's tensor order (each layer's weight, then its bias).
    pub params: &'a [f32],
}

/// A ScoreNet v1 model, in host form (its graph is `graph::mlp`'s).
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
    /// `w8a8` needs activation parameters: use [`write_w8a8`].
    NeedsCalibration,
    /// The number of timestep groups is 0 or above the format's maximum.
    Groups(usize),
    /// The sizes do not make a valid layer graph.
    Graph(GraphError),
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Graph(e) => write!(f, "invalid network: {e}"),
            Self::Length { what, found, expected } => {
                write!(f, "{what} has {found} values, the network needs {expected}")
            }
            Self::TooLarge => write!(f, "model file would exceed 4 GiB"),
            Self::NeedsCalibration => write!(f, "w8a8 needs calibrated activation parameters"),
            Self::Groups(g) => write!(f, "{g} timestep groups, expected 1..={MAX_GROUPS}"),
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
        // The activation tensors are encoded by `write_w8a8` from their integer values.
        DType::I32 | DType::Lut8 => unreachable!("no parameter tensor has dtype {dtype:?}"),
    };
    Payload { role, dtype, rows, cols, data, scales }
}

/// The tensors' dtypes under `quant`: normalisation and biases f32, weights as `quant` says.
fn weight_dtype(quant: Quant) -> DType {
    quant.dtype(Role::InputW)
}

/// `d` points: the data description of a file that says no more.
fn points(d: usize) -> DataShape {
    DataShape { kind: DataKind::Points, channels: d, length: 1 }
}

impl ModelSpec<'_> {
    /// The same model as a layer graph (`plan`, ScoreNet v1's), with the data described as `data`.
    fn graph<'p>(&'p self, plan: &'p Plan, data: DataShape) -> GraphSpec<'p> {
        GraphSpec {
            plan,
            data,
            process: self.process,
            norm_mean: self.norm_mean,
            norm_std: self.norm_std,
            params: self.params,
        }
    }
}

/// Encodes a ScoreNet v1 `.tsm` file (structural version 3, its layers from `graph::mlp`) in mode
/// `f32`, `f16` or `w8` (quantization version 1), for data of `D` points.
pub fn write(spec: &ModelSpec<'_>, quant: Quant) -> Result<Vec<u8>, WriteError> {
    let data = points(spec.dims.dim);
    write_with(spec, data, quant)
}

/// [`write()`] with the data described as `data` (C·L = D): a signal or an image for the tools.
pub fn write_with(spec: &ModelSpec<'_>, data: DataShape, quant: Quant) -> Result<Vec<u8>, WriteError> {
    let plan = mlp::build(&spec.dims).map_err(WriteError::Graph)?;
    let g = spec.graph(&plan, data);
    write_graph(&g, quant)
}

/// Encodes any layer graph (structural version 3) in mode `f32`, `f16` or `w8`.
pub fn write_graph(spec: &GraphSpec<'_>, quant: Quant) -> Result<Vec<u8>, WriteError> {
    if quant == Quant::W8A8 {
        return Err(WriteError::NeedsCalibration);
    }
    let payloads = graph_payloads(spec, quant)?;
    let ram = 4 * (spec.plan.regions().total() + 2 * spec.data.dim());
    assemble(spec, payloads, 1, ram)
}

/// Encodes a ScoreNet v1 file in the first structural version (no layer records): what the
/// test vectors of `docs/format.md` §9 keep, so that readers of version 1 stay tested.
pub fn write_v1(spec: &ModelSpec<'_>, quant: Quant) -> Result<Vec<u8>, WriteError> {
    if quant == Quant::W8A8 {
        return Err(WriteError::NeedsCalibration);
    }
    let payloads = v1_payloads(spec, quant)?;
    assemble_v1(spec, payloads, 1, spec.dims.ram_bytes())
}

/// Encodes a `w8a8` ScoreNet v1 file (quantization version 2): the `w8` tensors, then the
/// activation tensors of `groups` timestep groups: `scales` (G, 4B+3), `requant`
/// (G, 3H+B(6H+2)+D) and `luts` (G, (2B+1)·256), as built by `crate::calib`.
pub fn write_w8a8(
    spec: &ModelSpec<'_>,
    groups: usize,
    scales: &[f32],
    requant: &[i32],
    luts: &[i8],
) -> Result<Vec<u8>, WriteError> {
    let data = points(spec.dims.dim);
    write_w8a8_with(spec, data, groups, scales, requant, luts)
}

/// [`write_w8a8`] with the data described as `data`.
pub fn write_w8a8_with(
    spec: &ModelSpec<'_>,
    data: DataShape,
    groups: usize,
    scales: &[f32],
    requant: &[i32],
    luts: &[i8],
) -> Result<Vec<u8>, WriteError> {
    if groups == 0 || groups > MAX_GROUPS {
        return Err(WriteError::Groups(groups));
    }
    let plan = mlp::build(&spec.dims).map_err(WriteError::Graph)?;
    let g = spec.graph(&plan, data);
    let mut payloads = graph_payloads(&g, Quant::W8A8)?;
    payloads.extend(act_payloads(&spec.dims, groups, scales, requant, luts)?);
    assemble(&g, payloads, QUANT_VERSION_W8A8, spec.dims.ram_bytes_int8())
}

/// [`write_w8a8`] in the first structural version (the layout of the version-2 test files).
pub fn write_w8a8_v1(
    spec: &ModelSpec<'_>,
    groups: usize,
    scales: &[f32],
    requant: &[i32],
    luts: &[i8],
) -> Result<Vec<u8>, WriteError> {
    if groups == 0 || groups > MAX_GROUPS {
        return Err(WriteError::Groups(groups));
    }
    let mut payloads = v1_payloads(spec, Quant::W8A8)?;
    payloads.extend(act_payloads(&spec.dims, groups, scales, requant, luts)?);
    assemble_v1(spec, payloads, QUANT_VERSION_W8A8, spec.dims.ram_bytes_int8())
}

/// Encodes a `w8a8` file of a convolutional layer graph (quantization version 2): the `w8`
/// tensors, then the activation tensors of `groups` timestep groups in the columns of the
/// graph's integer plan (`Int8Plan::scale_cols`, `requant_cols`, `lut_count`), as built by
/// `crate::calib::integer_params_of`; the header's RAM counts the integer scratch
/// (`format::graph_ram_bytes`).
pub fn write_graph_w8a8(
    spec: &GraphSpec<'_>,
    groups: usize,
    scales: &[f32],
    requant: &[i32],
    luts: &[i8],
) -> Result<Vec<u8>, WriteError> {
    if groups == 0 || groups > MAX_GROUPS {
        return Err(WriteError::Groups(groups));
    }
    let graph = spec.plan.graph().map_err(WriteError::Graph)?;
    let plan = Int8Plan::new(&graph).map_err(|_| WriteError::Graph(GraphError::Overflow { layer: 0 }))?;
    let shapes = [
        (Role::ActScales, groups, plan.scale_cols()),
        (Role::ActRequant, groups, plan.requant_cols()),
        (Role::ActLut, groups, 256 * plan.lut_count()),
    ];
    let mut payloads = graph_payloads(spec, Quant::W8A8)?;
    payloads.extend(act_payloads_of(shapes, scales, requant, luts)?);
    let ram = graph_ram_bytes(&spec.plan.regions(), spec.data.dim(), plan.file_scratch_words())
        .ok_or(WriteError::TooLarge)?;
    assemble(spec, payloads, QUANT_VERSION_W8A8, ram)
}

/// The three activation tensors of a w8a8 file.
fn act_payloads(
    dims: &Dims,
    groups: usize,
    scales: &[f32],
    requant: &[i32],
    luts: &[i8],
) -> Result<[Payload; 3], WriteError> {
    act_payloads_of(act_tensors(dims, groups), scales, requant, luts)
}

/// The three activation tensors of shapes `shapes` (`(role, rows, cols)`).
fn act_payloads_of(
    shapes: [(Role, usize, usize); 3],
    scales: &[f32],
    requant: &[i32],
    luts: &[i8],
) -> Result<[Payload; 3], WriteError> {
    let [(r0, g0, c0), (r1, g1, c1), (r2, g2, c2)] = shapes;
    for (what, found, expected) in [
        ("act.scales", scales.len(), g0 * c0),
        ("act.requant", requant.len(), g1 * c1),
        ("act.lut", luts.len(), g2 * c2),
    ] {
        if found != expected {
            return Err(WriteError::Length { what, found, expected });
        }
    }
    Ok([
        Payload {
            role: r0,
            dtype: DType::F32,
            rows: g0,
            cols: c0,
            data: scales.iter().flat_map(|v| v.to_le_bytes()).collect(),
            scales: Vec::new(),
        },
        Payload {
            role: r1,
            dtype: DType::I32,
            rows: g1,
            cols: c1,
            data: requant.iter().flat_map(|v| v.to_le_bytes()).collect(),
            scales: Vec::new(),
        },
        Payload {
            role: r2,
            dtype: DType::Lut8,
            rows: g2,
            cols: c2,
            data: luts.iter().map(|v| *v as u8).collect(),
            scales: Vec::new(),
        },
    ])
}

/// The normalisation and the graph's parameters, in table order.
fn graph_payloads(spec: &GraphSpec<'_>, quant: Quant) -> Result<Vec<Payload>, WriteError> {
    let d = spec.data.dim();
    let plan = spec.plan;
    if plan.input().len() != d {
        return Err(WriteError::Length { what: "graph input", found: plan.input().len(), expected: d });
    }
    for (what, found, expected) in [
        ("norm.mean", spec.norm_mean.len(), d),
        ("norm.std", spec.norm_std.len(), d),
        ("parameters", spec.params.len(), plan.param_count()),
    ] {
        if found != expected {
            return Err(WriteError::Length { what, found, expected });
        }
    }
    let mut payloads = vec![
        encode(Role::NormMean, DType::F32, d, 1, spec.norm_mean),
        encode(Role::NormStd, DType::F32, d, 1, spec.norm_std),
    ];
    let mut offset = 0;
    // Each layer's weight (even index), then its bias (odd).
    for (k, &(rows, cols)) in plan.tensors().iter().enumerate() {
        let v = &spec.params[offset..offset + rows * cols];
        offset += rows * cols;
        let dtype = if k % 2 == 0 { weight_dtype(quant) } else { DType::F32 };
        payloads.push(encode(Role::Param, dtype, rows, cols, v));
    }
    Ok(payloads)
}

fn v1_payloads(spec: &ModelSpec<'_>, quant: Quant) -> Result<Vec<Payload>, WriteError> {
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
    Ok(payloads)
}

/// Lays out the regions after a table that starts at `table`, fills the entries; returns the
/// file (header and table bytes zero) and the entries.
fn regions(table: usize, payloads: &[Payload]) -> Result<(Vec<u8>, Vec<Entry>), WriteError> {
    let table_end = table + ENTRY_LEN * payloads.len();
    let mut file = vec![0u8; table_end];
    let mut entries = Vec::with_capacity(payloads.len());
    let to_u32 = |x: usize| u32::try_from(x).map_err(|_| WriteError::TooLarge);
    for p in payloads {
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
    for (i, e) in entries.iter().enumerate() {
        let o = table + ENTRY_LEN * i;
        file[o..o + ENTRY_LEN].copy_from_slice(&e.encode());
    }
    Ok((file, entries))
}

fn seal(file: &mut [u8]) {
    let crc = crc32(&file[CRC_START..]);
    file[tinyscore_engine::format::field::CRC..tinyscore_engine::format::field::CRC + 4]
        .copy_from_slice(&crc.to_le_bytes());
}

/// A version-3 file: header, arena section, layer records, table, regions.
fn assemble(
    spec: &GraphSpec<'_>,
    payloads: Vec<Payload>,
    quant_version: u16,
    ram_bytes: usize,
) -> Result<Vec<u8>, WriteError> {
    let plan = spec.plan;
    let records = plan.records();
    let table = field3::RECORDS + records.len();
    let (mut file, _) = regions(table, &payloads)?;
    let to_u32 = |x: usize| u32::try_from(x).map_err(|_| WriteError::TooLarge);
    let graph = plan.graph().map_err(WriteError::Graph)?;
    let d = spec.data.dim();
    let dims = graph.mlp_dims().unwrap_or(Dims { dim: d, hidden: 0, freqs: 0, blocks: 0 });
    let header = Header {
        version: VERSION,
        quant_version,
        crc: 0,
        file_len: to_u32(file.len())?,
        dims,
        data: spec.data,
        regions: plan.regions(),
        layers: graph.len(),
        input: plan.input(),
        process: spec.process,
        ram_bytes: to_u32(ram_bytes)?,
        tensor_count: to_u32(payloads.len())?,
    };
    file[..HEADER_LEN].copy_from_slice(&header.encode());
    file[HEADER_LEN..HEADER_LEN + ARENA_LEN].copy_from_slice(&header.encode_arena());
    file[field3::RECORDS..table].copy_from_slice(records);
    seal(&mut file);
    Ok(file)
}

/// A version-1 file: header, table, regions.
fn assemble_v1(
    spec: &ModelSpec<'_>,
    payloads: Vec<Payload>,
    quant_version: u16,
    ram_bytes: usize,
) -> Result<Vec<u8>, WriteError> {
    let dims = spec.dims;
    let (mut file, _) = regions(HEADER_LEN, &payloads)?;
    let to_u32 = |x: usize| u32::try_from(x).map_err(|_| WriteError::TooLarge);
    let header = Header {
        version: VERSION_V1,
        quant_version,
        crc: 0,
        file_len: to_u32(file.len())?,
        dims,
        data: points(dims.dim),
        regions: mlp::regions(&dims),
        layers: mlp::layer_count(&dims),
        input: tinyscore_engine::graph::Shape { channels: dims.dim, length: 1 },
        process: spec.process,
        ram_bytes: to_u32(ram_bytes)?,
        tensor_count: to_u32(payloads.len())?,
    };
    file[..HEADER_LEN].copy_from_slice(&header.encode());
    seal(&mut file);
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
