//! The layers of a score network and their shape rules: what each op reads, what it writes, and
//! the shape of its output. One definition for every backend; the math of each op is in
//! `docs/scorenet.md` §"Layer graph", and the file record in `docs/format.md` §"Graph".
//!
//! Values are numbered in the order they are made: value 0 is the network's input x (the data,
//! C channels × L samples); layer i makes value i + 1. A layer reads only values made before it,
//! so the list is its own topological order and a cycle cannot be written down.

use super::error::GraphError;

/// A value of the graph (an activation): 0 is the input, i + 1 the output of layer i.
pub type Value = u16;

/// "No value" / "no tensor" in a record's 16-bit reference fields.
pub const NONE: u16 = 0xFFFF;

/// Bytes of one layer record in a `.tsm` file (`docs/format.md`).
pub const RECORD_LEN: usize = 32;

/// Largest channel count of a value.
pub const MAX_CHANNELS: usize = 1024;
/// Largest length (samples) of a value.
pub const MAX_LENGTH: usize = 4096;
/// Largest convolution kernel (odd).
pub const MAX_KERNEL: usize = 31;
/// Largest convolution dilation.
pub const MAX_DILATION: usize = 64;
/// Largest number of time features F (even), as ScoreNet v1.
pub const MAX_FREQS: usize = 64;

/// Op codes of the layer record's byte 0.
pub mod code {
    /// φ(t): the sinusoidal time features.
    pub const TIME_FEATURES: u8 = 1;
    /// A dense layer on a vector.
    pub const LINEAR: u8 = 2;
    /// A 1-D convolution.
    pub const CONV1D: u8 = 3;
    /// SiLU, element-wise.
    pub const SILU: u8 = 4;
    /// Element-wise sum of two values.
    pub const ADD: u8 = 5;
    /// A per-channel bias from a time-branch vector (the time-embedding injection).
    pub const CHANNEL_BIAS: u8 = 6;
    /// 2× nearest-neighbour upsampling along the length.
    pub const UPSAMPLE2: u8 = 7;
}

/// Which part of the network a value belongs to: the time branch depends on t alone (computed
/// once per call, whatever the batch), the data branch on x.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Branch {
    /// Depends on t only.
    Time,
    /// Depends on x.
    Data,
}

/// The shape of a value: `channels` × `length`. A vector is `length` 1. In the engine's arena a
/// value is stored channels-last: element (c, l) at `l·channels + c`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Shape {
    /// Channels C.
    pub channels: usize,
    /// Length L (samples).
    pub length: usize,
}

impl Shape {
    /// C·L, the number of scalars.
    pub fn len(&self) -> usize {
        self.channels * self.length
    }

    /// Whether the value has no scalars.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One layer: what it computes (`docs/scorenet.md`). Tensor references index the file's tensor
/// table; weights are row-major with rows = outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Op {
    /// φ(t) (F, 1): φ_k = sin(ω_k·1000t), φ_{F/2+k} = cos(ω_k·1000t), ω_k = exp(−ln(10⁴)·k/(F/2)).
    TimeFeatures {
        /// F, even, 2..=[`MAX_FREQS`].
        freqs: usize,
    },
    /// y = res + W·x + b on a vector x (C_in, 1): W (C_out, C_in), b (C_out,), y (C_out, 1),
    /// summed as ((res + W·x) + b) with W·x in the order of `linalg::dot`.
    Linear {
        /// The input vector.
        x: Value,
        /// A residual added to the output (the same shape), if any.
        res: Option<Value>,
        /// Tensor index of W.
        weight: u16,
        /// Tensor index of b.
        bias: u16,
    },
    /// `y[l, co] = res[l, co] + Σ_{ci, j} W[co, ci·K + j]·x[s·l + j·d − p, ci] + b[co]`, zero
    /// "same" padding p = d·(K−1)/2, L_out = ⌈L/s⌉; W (C_out, C_in·K) is PyTorch's
    /// (C_out, C_in, K) flattened.
    Conv1d {
        /// The input (C_in, L).
        x: Value,
        /// A residual added to the output, if any.
        res: Option<Value>,
        /// Tensor index of W.
        weight: u16,
        /// Tensor index of b.
        bias: u16,
        /// K, odd, 1..=[`MAX_KERNEL`].
        kernel: usize,
        /// d, 1..=[`MAX_DILATION`].
        dilation: usize,
        /// s, 1 or 2.
        stride: usize,
    },
    /// y = silu(x) = x / (1 + e^(−x)), element-wise.
    Silu {
        /// The input.
        x: Value,
    },
    /// y = a + b, element-wise (the same shapes and branch).
    Add {
        /// First addend.
        a: Value,
        /// Second addend.
        b: Value,
    },
    /// `y[l, c] = x[l, c] + v[c]`: a time-branch vector v (C, 1) added at every position of a
    /// data value x (C, L) — the time-embedding injection.
    ChannelBias {
        /// The data value.
        x: Value,
        /// The time-branch vector.
        v: Value,
    },
    /// `y[l, c] = x[⌊l/2⌋, c]`, L_out = 2L.
    Upsample2 {
        /// The input.
        x: Value,
    },
}

impl Op {
    /// A short lower-case name.
    pub fn name(&self) -> &'static str {
        match self {
            Op::TimeFeatures { .. } => "time",
            Op::Linear { .. } => "linear",
            Op::Conv1d { .. } => "conv1d",
            Op::Silu { .. } => "silu",
            Op::Add { .. } => "add",
            Op::ChannelBias { .. } => "chan_bias",
            Op::Upsample2 { .. } => "upsample2",
        }
    }

    /// The values this layer reads, in record order (first input, second input).
    pub fn inputs(&self) -> [Option<Value>; 2] {
        match *self {
            Op::TimeFeatures { .. } => [None, None],
            Op::Linear { x, res, .. } | Op::Conv1d { x, res, .. } => [Some(x), res],
            Op::Silu { x } | Op::Upsample2 { x } => [Some(x), None],
            Op::Add { a, b } => [Some(a), Some(b)],
            Op::ChannelBias { x, v } => [Some(x), Some(v)],
        }
    }

    /// The parameter tensors (weight, bias) of a Linear or Conv1d layer.
    pub fn params(&self) -> Option<(u16, u16)> {
        match *self {
            Op::Linear { weight, bias, .. } | Op::Conv1d { weight, bias, .. } => Some((weight, bias)),
            _ => None,
        }
    }

    /// Whether the output may take the storage of input `which` (0 or 1) when that input dies
    /// here: element-wise ops for either input, Linear and Conv1d for the residual only (their
    /// main input is read while the output is written).
    pub fn may_alias(&self, which: usize) -> bool {
        match self {
            Op::Silu { .. } | Op::Add { .. } => true,
            Op::ChannelBias { .. } => which == 0,
            Op::Linear { .. } | Op::Conv1d { .. } => which == 1,
            Op::TimeFeatures { .. } | Op::Upsample2 { .. } => false,
        }
    }

    /// Encodes the layer as a 32-byte record with output `shape` at arena `offset` (words).
    pub fn encode(&self, shape: Shape, offset: u32) -> [u8; RECORD_LEN] {
        let mut r = [0u8; RECORD_LEN];
        let opt = |v: Option<Value>| v.unwrap_or(NONE);
        let (c, a, b, w, bi, k, d, s) = match *self {
            Op::TimeFeatures { .. } => (code::TIME_FEATURES, NONE, NONE, NONE, NONE, 0, 0, 0),
            Op::Linear { x, res, weight, bias } => (code::LINEAR, x, opt(res), weight, bias, 0, 0, 0),
            Op::Conv1d { x, res, weight, bias, kernel, dilation, stride } => {
                (code::CONV1D, x, opt(res), weight, bias, kernel as u8, dilation as u8, stride as u8)
            }
            Op::Silu { x } => (code::SILU, x, NONE, NONE, NONE, 0, 0, 0),
            Op::Add { a, b } => (code::ADD, a, b, NONE, NONE, 0, 0, 0),
            Op::ChannelBias { x, v } => (code::CHANNEL_BIAS, x, v, NONE, NONE, 0, 0, 0),
            Op::Upsample2 { x } => (code::UPSAMPLE2, x, NONE, NONE, NONE, 0, 0, 0),
        };
        r[0] = c;
        r[1] = k;
        r[2] = d;
        r[3] = s;
        r[4..6].copy_from_slice(&a.to_le_bytes());
        r[6..8].copy_from_slice(&b.to_le_bytes());
        r[8..10].copy_from_slice(&w.to_le_bytes());
        r[10..12].copy_from_slice(&bi.to_le_bytes());
        r[12..14].copy_from_slice(&(shape.channels as u16).to_le_bytes());
        r[14..16].copy_from_slice(&(shape.length as u16).to_le_bytes());
        r[16..20].copy_from_slice(&offset.to_le_bytes());
        r
    }

    /// Decodes a record's op (the fields that name the op; shape and offset are read by
    /// [`record_shape`] and [`record_offset`]) and checks that the fields the op does not use are
    /// zero (bytes) or NONE (references). `layer` names the record in errors.
    pub fn decode(r: &[u8; RECORD_LEN], layer: usize) -> Result<Op, GraphError> {
        let u16_at = |o: usize| u16::from_le_bytes([r[o], r[o + 1]]);
        let (a, b, w, bias) = (u16_at(4), u16_at(6), u16_at(8), u16_at(10));
        let field = |name: &'static str| GraphError::BadField { layer, field: name };
        let unused = |ok: bool, name: &'static str| if ok { Ok(()) } else { Err(field(name)) };
        if r[20..].iter().any(|&x| x != 0) {
            return Err(field("reserved"));
        }
        let op = Self::read(r).ok_or(GraphError::UnknownOp { layer, code: r[0] })?;
        let no_tensors = w == NONE && bias == NONE;
        match op {
            Op::TimeFeatures { .. } => {
                unused(a == NONE && b == NONE, "input")?;
                unused(no_tensors, "tensor")?;
            }
            Op::Linear { .. } | Op::Conv1d { .. } => unused(a != NONE, "input")?,
            Op::Silu { .. } | Op::Upsample2 { .. } => {
                unused(a != NONE, "input")?;
                unused(b == NONE, "input")?;
                unused(no_tensors, "tensor")?;
            }
            Op::Add { .. } | Op::ChannelBias { .. } => {
                unused(a != NONE && b != NONE, "input")?;
                unused(no_tensors, "tensor")?;
            }
        }
        if !matches!(op, Op::Conv1d { .. }) {
            unused(r[1] == 0 && r[2] == 0 && r[3] == 0, "kernel")?;
        }
        Ok(op)
    }

    /// A record's op as its fields state it, without [`Op::decode`]'s checks (`None` for an
    /// unknown op code): the one reading of the fields, which `decode` checks once when a graph
    /// is validated and [`crate::graph::Graph::layer`] repeats at every evaluation.
    #[inline]
    pub fn read(r: &[u8; RECORD_LEN]) -> Option<Op> {
        let u16_at = |o: usize| u16::from_le_bytes([r[o], r[o + 1]]);
        let (k, d, s) = (r[1] as usize, r[2] as usize, r[3] as usize);
        let (a, b, w, bias) = (u16_at(4), u16_at(6), u16_at(8), u16_at(10));
        let opt = |v: u16| (v != NONE).then_some(v);
        Some(match r[0] {
            code::TIME_FEATURES => Op::TimeFeatures { freqs: u16_at(12) as usize },
            code::LINEAR => Op::Linear { x: a, res: opt(b), weight: w, bias },
            code::CONV1D => {
                Op::Conv1d { x: a, res: opt(b), weight: w, bias, kernel: k, dilation: d, stride: s }
            }
            code::SILU => Op::Silu { x: a },
            code::UPSAMPLE2 => Op::Upsample2 { x: a },
            code::ADD => Op::Add { a, b },
            code::CHANNEL_BIAS => Op::ChannelBias { x: a, v: b },
            _ => return None,
        })
    }
}

/// The output shape a record states (bytes 12..16).
pub fn record_shape(r: &[u8; RECORD_LEN]) -> Shape {
    Shape {
        channels: u16::from_le_bytes([r[12], r[13]]) as usize,
        length: u16::from_le_bytes([r[14], r[15]]) as usize,
    }
}

/// The arena offset a record states (bytes 16..20), in 4-byte words from its region's start.
pub fn record_offset(r: &[u8; RECORD_LEN]) -> u32 {
    u32::from_le_bytes([r[16], r[17], r[18], r[19]])
}

/// What the shape rule needs to know of a tensor: its (rows, cols), or `None` if the index is
/// not a parameter tensor of the file.
pub type TensorShape = Option<(usize, usize)>;

/// The shape rule: the output shape and branch of layer `layer` given the shapes and branches
/// of the values it reads (`value(v)`) and of its tensors (`tensor(i)`). Every way a layer can
/// be inconsistent is a [`GraphError`].
pub fn infer(
    op: &Op,
    layer: usize,
    value: impl Fn(Value) -> Option<(Shape, Branch)>,
    tensor: impl Fn(u16) -> TensorShape,
) -> Result<(Shape, Branch), GraphError> {
    let read = |v: Value| value(v).ok_or(GraphError::Reference { layer, value: v });
    let shape_err = |what: &'static str| GraphError::Shape { layer, what };
    let params = |weight: u16, bias: u16, rows_cols: (usize, usize)| -> Result<(), GraphError> {
        let w = tensor(weight).ok_or(GraphError::Tensor { layer, tensor: weight })?;
        let b = tensor(bias).ok_or(GraphError::Tensor { layer, tensor: bias })?;
        if w != rows_cols {
            return Err(shape_err("weight"));
        }
        if b != (rows_cols.0, 1) {
            return Err(shape_err("bias"));
        }
        Ok(())
    };
    let check_res = |res: Option<Value>, out: Shape, branch: Branch| -> Result<(), GraphError> {
        if let Some(r) = res {
            let (rs, rb) = read(r)?;
            if rs != out || rb != branch {
                return Err(shape_err("residual"));
            }
        }
        Ok(())
    };
    match *op {
        Op::TimeFeatures { freqs } => {
            if !(2..=MAX_FREQS).contains(&freqs) || freqs % 2 != 0 {
                return Err(GraphError::BadField { layer, field: "freqs" });
            }
            Ok((Shape { channels: freqs, length: 1 }, Branch::Time))
        }
        Op::Linear { x, res, weight, bias } => {
            let (xs, xb) = read(x)?;
            if xs.length != 1 {
                return Err(shape_err("input is not a vector"));
            }
            let out_ch = tensor(weight).ok_or(GraphError::Tensor { layer, tensor: weight })?.0;
            params(weight, bias, (out_ch, xs.channels))?;
            let out = Shape { channels: out_ch, length: 1 };
            check_res(res, out, xb)?;
            Ok((out, xb))
        }
        Op::Conv1d { x, res, weight, bias, kernel, dilation, stride } => {
            if kernel == 0 || kernel > MAX_KERNEL || kernel % 2 == 0 {
                return Err(GraphError::BadField { layer, field: "kernel" });
            }
            if dilation == 0 || dilation > MAX_DILATION {
                return Err(GraphError::BadField { layer, field: "dilation" });
            }
            if stride != 1 && stride != 2 {
                return Err(GraphError::BadField { layer, field: "stride" });
            }
            let (xs, xb) = read(x)?;
            if xb != Branch::Data {
                return Err(shape_err("convolution of a time-branch value"));
            }
            let out_ch = tensor(weight).ok_or(GraphError::Tensor { layer, tensor: weight })?.0;
            let cols = xs.channels.checked_mul(kernel).ok_or(GraphError::Overflow { layer })?;
            params(weight, bias, (out_ch, cols))?;
            let out = Shape { channels: out_ch, length: xs.length.div_ceil(stride) };
            check_res(res, out, xb)?;
            Ok((out, xb))
        }
        Op::Silu { x } => read(x),
        Op::Add { a, b } => {
            let (sa, ba) = read(a)?;
            let (sb, bb) = read(b)?;
            if sa != sb || ba != bb {
                return Err(shape_err("addends differ"));
            }
            Ok((sa, ba))
        }
        Op::ChannelBias { x, v } => {
            let (xs, xb) = read(x)?;
            let (vs, vb) = read(v)?;
            if xb != Branch::Data || vb != Branch::Time {
                return Err(shape_err("bias must be a time-branch vector added to a data value"));
            }
            if vs != (Shape { channels: xs.channels, length: 1 }) {
                return Err(shape_err("bias channels"));
            }
            Ok((xs, xb))
        }
        Op::Upsample2 { x } => {
            let (xs, xb) = read(x)?;
            if xb != Branch::Data {
                return Err(shape_err("upsampling of a time-branch value"));
            }
            Ok((Shape { channels: xs.channels, length: xs.length * 2 }, xb))
        }
    }
}

/// Multiply–accumulates of one evaluation of a layer with input shape `input` and output `out`.
pub fn macs(op: &Op, input: Shape, out: Shape) -> usize {
    match *op {
        Op::Linear { .. } => out.channels * input.channels,
        Op::Conv1d { kernel, .. } => out.len() * input.channels * kernel,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let ops = [
            Op::TimeFeatures { freqs: 32 },
            Op::Linear { x: 1, res: None, weight: 2, bias: 3 },
            Op::Linear { x: 5, res: Some(4), weight: 9, bias: 10 },
            Op::Conv1d { x: 0, res: Some(3), weight: 4, bias: 5, kernel: 5, dilation: 2, stride: 2 },
            Op::Silu { x: 7 },
            Op::Add { a: 1, b: 2 },
            Op::ChannelBias { x: 3, v: 2 },
            Op::Upsample2 { x: 6 },
        ];
        for (i, op) in ops.iter().enumerate() {
            // TimeFeatures' F is its output's channels.
            let channels = if let Op::TimeFeatures { freqs } = op { *freqs } else { 7 + i };
            let shape = Shape { channels, length: 33 };
            let r = op.encode(shape, 1234 + i as u32);
            assert_eq!(Op::decode(&r, i), Ok(*op));
            assert_eq!(record_shape(&r), shape);
            assert_eq!(record_offset(&r), 1234 + i as u32);
        }
    }

    #[test]
    fn bad_records_are_typed_errors() {
        let mut r = Op::Silu { x: 1 }.encode(Shape { channels: 1, length: 1 }, 0);
        r[0] = 99;
        assert_eq!(Op::decode(&r, 3), Err(GraphError::UnknownOp { layer: 3, code: 99 }));
        let mut r = Op::Silu { x: 1 }.encode(Shape { channels: 1, length: 1 }, 0);
        r[1] = 3;
        assert_eq!(Op::decode(&r, 0), Err(GraphError::BadField { layer: 0, field: "kernel" }));
        let mut r = Op::Silu { x: 1 }.encode(Shape { channels: 1, length: 1 }, 0);
        r[25] = 1;
        assert_eq!(Op::decode(&r, 0), Err(GraphError::BadField { layer: 0, field: "reserved" }));
        let r = Op::Silu { x: NONE }.encode(Shape { channels: 1, length: 1 }, 0);
        assert_eq!(Op::decode(&r, 0), Err(GraphError::BadField { layer: 0, field: "input" }));
    }

    #[test]
    fn conv_shape_rule_is_pytorch_same_padding() {
        let value = |v: Value| (v == 0).then_some((Shape { channels: 3, length: 17 }, Branch::Data));
        let tensor = |i: u16| match i {
            0 => Some((8, 15)),
            1 => Some((8, 1)),
            _ => None,
        };
        let op = Op::Conv1d { x: 0, res: None, weight: 0, bias: 1, kernel: 5, dilation: 3, stride: 2 };
        // PyTorch: floor((17 + 2·6 − 3·4 − 1)/2) + 1 = 9 = ⌈17/2⌉.
        assert_eq!(infer(&op, 0, value, tensor), Ok((Shape { channels: 8, length: 9 }, Branch::Data)));
        let op = Op::Conv1d { x: 0, res: None, weight: 0, bias: 1, kernel: 3, dilation: 1, stride: 1 };
        assert_eq!(infer(&op, 0, value, tensor), Err(GraphError::Shape { layer: 0, what: "weight" }));
        let op = Op::Conv1d { x: 0, res: None, weight: 0, bias: 7, kernel: 5, dilation: 1, stride: 1 };
        assert_eq!(infer(&op, 0, value, tensor), Err(GraphError::Tensor { layer: 0, tensor: 7 }));
    }
}
