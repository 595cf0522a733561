//! The integer path's plan: a layer graph ([`crate::graph`]) read once as the fused steps the
//! `w8a8` kernels run, each a dense layer with what follows it folded into its epilogue
//! (`docs/quantization.md`):
//!
//! ```text
//! linear(x)                       → silu            ToI16:    h = requant(W·x8 + b)       (int16)
//!                                                             a = silu(h) by table        (int8)
//! linear(a) [→ chan_bias(temb)]   → silu            Table:    a = table(requant(W·a + b + temb))
//! linear(a; residual h)           → silu            Residual: h = requant(h) ⊕ requant(W·a + b)
//!                                                             a = silu(h) by table
//! linear(a), the last layer                         Output:   ε̂ = (W·a + b)·s_w·s_a   (f32)
//! ```
//!
//! [`Int8Plan::new`] recognises these patterns from the layer records themselves, checks that
//! each step reads what the integer buffers hold at that point (the quantized input x8, the one
//! int8 activation a, the one int16 residual stream h), and gives every step its columns of the
//! file's activation tensors by [`super::layout`]: a scale's or table's ordinal is the step's
//! place among its kind along the plan, and the `act.requant` columns follow the plan's order.
//! A graph with convolutions has convolution steps of the same kinds (`Int8Plan::recognise_conv`,
//! `docs/format.md` §11.9), each with its [`ConvIo`]. A layer the integer path has no kernel for
//! (a standalone `add`) is refused by name ([`PlanError::Unsupported`]); supported layers in
//! another arrangement by [`PlanError::Pattern`]. The time branch is not part of the plan: it
//! runs in f32 (the walk).
//!
//! The engine's int8 network (`net/int8.rs`) walks the steps; the parser validates a `w8a8`
//! file's activation parameters along them, and the converter's calibration walks them
//! (its weights, biases, columns and tables) and finds each observed activation's column by
//! [`Int8Plan::scale_of`]. Imports only the graph, the layout and a convolution step's
//! input, outputs and tiling (`quant/tiling.rs`, re-exported here).

use super::layout;
pub use super::tiling::{Call, ConvIo, ConvSource, Tiling, ACC_TILE};
use crate::graph::{Graph, Op, Value};
use crate::limits::MAX_BLOCKS;

/// Largest number of steps (dense or convolution layers) a plan holds: ScoreNet v1's input
/// layer, two per block and the output layer; with the `conv` feature the convolutions of a
/// U-Net (`docs/scorenet.md`): 2 + 2·blocks + 2·levels·(2·blocks + 1), 22 for the ECG model
/// of 3 levels × 1 block, the capacity (a plan is held by every network and moved while the
/// firmware builds it, 36 bytes a step: the capacity is kept small for the firmware's stack).
pub const MAX_STEPS: usize = if cfg!(feature = "conv") { 22 } else { 2 + 2 * MAX_BLOCKS };

/// The `lut` of a stream step whose stream no SiLU reads (a convolutional plan): no table.
pub const NO_LUT: u16 = u16::MAX;

/// Where a step's int8 input comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Input {
    /// The network's input x, quantized once by its scale `s_x`.
    X,
    /// The int8 activation the previous step's epilogue wrote (a SiLU table's output).
    Act,
}

/// What a step's epilogue does with its int32 dot products ([`super::Epilogue`]'s kinds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Kind {
    /// Starts the int16 residual stream h, then its SiLU by table `lut`.
    ToI16 {
        /// `act.lut` table of silu(h).
        lut: u16,
    },
    /// Adds the time embedding (if any) in the accumulators' scale, then SiLU by table `lut`.
    Table {
        /// `act.lut` table of silu(u).
        lut: u16,
        /// The step's ordinal among the `Table` steps (its slot in per-call constants).
        slot: u16,
        /// The time embedding's offset in the arena's time region (`rows` values) plus one, if
        /// the dense layer is followed by `chan_bias` ([`Kind::temb_at`]; a non-zero value keeps
        /// the step 4 bytes smaller: every network holds its plan).
        temb: Option<core::num::NonZeroU32>,
    },
    /// Adds the residual stream h (requantized by the (multiplier, shift) at `rq + 3·rows`),
    /// then SiLU by table `lut`.
    Residual {
        /// `act.lut` table of silu(h).
        lut: u16,
    },
    /// The network's output ε̂ in f32: the step's biases at `rq`, its input's scale `in_scale`.
    Output,
}

impl Kind {
    /// A `Table` step's time embedding: its offset in the arena's time region.
    pub fn temb_at(&self) -> Option<usize> {
        match *self {
            Kind::Table { temb: Some(t), .. } => Some(t.get() as usize - 1),
            _ => None,
        }
    }

    /// The `temb` field for a time embedding at `offset` (`None` beyond u32).
    fn temb_field(offset: usize) -> Option<core::num::NonZeroU32> {
        u32::try_from(offset).ok().and_then(|o| o.checked_add(1)).and_then(core::num::NonZeroU32::new)
    }
}

/// One fused step: a dense layer and its epilogue. (Fixed-width fields: the plan is part of
/// every [`crate::net::ScoreNet`], the same bytes on 32- and 64-bit targets; the accessors give
/// `usize`.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Step {
    /// The dense layer's index in the graph.
    pub layer: u16,
    /// The layer whose f32 value the epilogue's table stands for (the dense layer, or its
    /// `chan_bias`): what calibration measures as the table's input. The dense layer for
    /// `Output`.
    pub pre: u16,
    /// The SiLU layer folded into the epilogue (`pre` for `Output`, which has none).
    pub silu: u16,
    /// Tensor index of its int8 weight W (rows × cols, per-row scales).
    pub weight: u16,
    /// Outputs.
    pub rows: u16,
    /// Inputs.
    pub cols: u16,
    /// `act.scales` column of its input's scale.
    pub in_scale: u16,
    /// `act.scales` column of the value its epilogue requantizes to, the input of its SiLU
    /// table (`ToI16`, `Residual`: the int16 stream's scale; `Table`: the pre-activation's).
    /// `Output`: its `in_scale` (the ε̂ is f32).
    pub out_scale: u16,
    /// `act.scales` column of its SiLU table's int8 output (`Output`: its `in_scale`).
    pub silu_scale: u16,
    /// `Residual`: the `act.scales` column of the stream it adds (what its residual
    /// multiplier rescales from); other kinds: its `out_scale`.
    pub res_scale: u16,
    /// Its int8 input.
    pub input: Input,
    /// `act.requant` column of its (bias, multiplier, shift) triples, one per row (`Output`:
    /// its folded biases, one per row).
    pub rq: u32,
    /// Its epilogue.
    pub kind: Kind,
    /// A convolution step (its geometry and blocks: [`Int8Plan::conv_io`]).
    pub conv: bool,
    /// A convolution reading an int16 stream by its table index ([`Step::in_factor`]).
    pub narrow: bool,
}

impl Step {
    /// What the input's `act.scales` column is multiplied by to give the int8 values' scale:
    /// 2^8 for a convolution reading an int16 stream by its table index, else 1.
    #[inline(always)]
    pub fn in_factor(&self) -> f32 {
        if self.narrow {
            (1u32 << super::RESIDUAL_EXTRA_BITS) as f32
        } else {
            1.0
        }
    }
    /// Outputs.
    #[inline(always)]
    pub fn rows(&self) -> usize {
        self.rows as usize
    }
    /// Inputs.
    #[inline(always)]
    pub fn cols(&self) -> usize {
        self.cols as usize
    }
    /// `act.requant` column of its triples (`Output`: its biases).
    #[inline(always)]
    pub fn rq(&self) -> usize {
        self.rq as usize
    }
    /// `act.scales` column of its input's scale.
    #[inline(always)]
    pub fn in_scale(&self) -> usize {
        self.in_scale as usize
    }
    /// `act.scales` column of the value its epilogue requantizes to ([`Step::out_scale`]).
    #[inline(always)]
    pub fn out_scale(&self) -> usize {
        self.out_scale as usize
    }
    /// `act.scales` column of its SiLU table's output.
    #[inline(always)]
    pub fn silu_scale(&self) -> usize {
        self.silu_scale as usize
    }
    /// `act.scales` column of the stream a `Residual` step adds.
    #[inline(always)]
    pub fn res_scale(&self) -> usize {
        self.res_scale as usize
    }
    /// Tensor index of its weight.
    #[inline(always)]
    pub fn weight(&self) -> usize {
        self.weight as usize
    }
}

/// An activation the integer path quantizes, named by its place in ScoreNet v1
/// (`docs/scorenet.md`): what [`Int8Plan::activation`] calls a layer's output, and the
/// calibration's names for the columns of `act.scales`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Activation {
    /// (D,) the normalised input x.
    Input,
    /// (H,) the residual stream h_b (b = 0: after the input layer; b = B: the last).
    Residual(usize),
    /// (H,) silu(h_b).
    SiluResidual(usize),
    /// (H,) block b's pre-activation u_b (temb included).
    Pre(usize),
    /// (H,) silu(u_b).
    SiluPre(usize),
    /// A convolutional plan's quantized value: the output of graph layer `l` (a stream, a
    /// pre-activation or a SiLU), named by its layer.
    Layer(usize),
}

/// Why a graph has no integer plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PlanError {
    /// Layer `layer` is an op the integer path has no kernel for.
    Unsupported {
        /// The layer.
        layer: usize,
        /// Its op's name ([`Op::name`]).
        op: &'static str,
    },
    /// Layer `layer` is not where the integer path's fused steps can take it.
    Pattern {
        /// The layer.
        layer: usize,
        /// What is wrong.
        what: &'static str,
    },
}

impl core::fmt::Display for PlanError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::Unsupported { layer, op } => {
                write!(f, "layer {layer} ({op}) has no integer (w8a8) kernel")
            }
            Self::Pattern { layer, what } => write!(f, "layer {layer}: {what} (integer path)"),
        }
    }
}

impl core::error::Error for PlanError {}

/// A graph's integer plan: its steps in evaluation order and the sizes of the activation
/// tensors they index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Int8Plan {
    steps: [Step; MAX_STEPS],
    len: u16,
    blocks: u16,
    requant_cols: u32,
    /// Columns of `act.scales` and tables of `act.lut` of a convolutional plan (0: the MLP
    /// layout's, by `blocks`).
    conv_scales: u16,
    conv_luts: u16,
    /// Words of integer scratch a convolutional plan's walk needs ([`Tiling`]).
    scratch: u32,
    /// The integer scratch a convolutional file's RAM figure counts (a whole convolution's
    /// accumulators, format v3).
    file_scratch: u32,
    /// Words of a convolutional plan's integer data region.
    data: u32,
}

/// A step value without a place in the integer data region.
pub const NO_PLACE: u32 = u32::MAX;

/// The places of a convolutional plan's values ([`Int8Plan::places`]): for each step, the byte
/// offsets in the integer data region of its int16 stream and of its SiLU's int8 output
/// ([`NO_PLACE`]: none). Not part of the plan, which every network holds and moves while it is
/// built (it would be copied with it): the network keeps them in its arena, after the integer
/// scratch ([`PLACES_WORDS`] words).
pub type Places = [[u32; 2]; MAX_STEPS];

/// Words of [`Places`].
pub const PLACES_WORDS: usize = 2 * MAX_STEPS;

/// A placeholder step (a plan's unused slots).
const NO_STEP: Step = Step {
    layer: 0,
    pre: 0,
    silu: 0,
    weight: 0,
    rows: 0,
    cols: 0,
    input: Input::X,
    in_scale: 0,
    out_scale: 0,
    silu_scale: 0,
    res_scale: 0,
    rq: 0,
    kind: Kind::Output,
    conv: false,
    narrow: false,
};

impl Default for Int8Plan {
    /// The empty plan (no steps).
    fn default() -> Self {
        Self {
            steps: [NO_STEP; MAX_STEPS],
            len: 0,
            blocks: 0,
            requant_cols: 0,
            conv_scales: 0,
            conv_luts: 0,
            scratch: 0,
            file_scratch: 0,
            data: 0,
        }
    }
}

impl Int8Plan {
    /// The plan of a validated graph, or why it has none.
    pub fn new(g: &Graph<'_>) -> Result<Self, PlanError> {
        let mut plan = Self::default();
        plan.build(g)?;
        Ok(plan)
    }

    /// [`Int8Plan::new`] in place (no plan-sized temporaries); on an error `self` is the empty
    /// plan.
    pub fn build(&mut self, g: &Graph<'_>) -> Result<(), PlanError> {
        self.clear();
        // (A build without the `conv` feature refuses convolutions by name, with no code for
        // their steps.)
        let conv = cfg!(feature = "conv")
            && (g.time_layers()..g.len()).any(|i| matches!(g.layer(i).op, Op::Conv1d { .. }));
        let r = if conv { self.recognise_conv(g) } else { self.recognise(g) };
        if r.is_err() {
            self.clear();
        }
        r
    }

    /// The empty plan, in place.
    fn clear(&mut self) {
        self.len = 0;
        self.blocks = 0;
        self.requant_cols = 0;
        self.conv_scales = 0;
        self.conv_luts = 0;
        self.scratch = 0;
        self.file_scratch = 0;
        self.data = 0;
    }

    fn recognise(&mut self, g: &Graph<'_>) -> Result<(), PlanError> {
        let n = g.len();
        let first = g.time_layers();
        let pattern = |layer: usize, what: &'static str| PlanError::Pattern { layer, what };
        // Pass 1: the ops, and the number of blocks (residual layers) that orders the columns.
        let mut blocks = 0;
        for i in first..n {
            match g.layer(i).op {
                Op::Linear { res, .. } => blocks += usize::from(res.is_some()),
                Op::Silu { .. } | Op::ChannelBias { .. } => {}
                op => return Err(PlanError::Unsupported { layer: i, op: op.name() }),
            }
        }
        if blocks > MAX_BLOCKS {
            return Err(pattern(first, "more residual blocks than the engine's capacity"));
        }
        // Pass 2: the steps. `act`: the value the int8 activation holds and its scale column;
        // `h`: the value the int16 residual stream holds and its ordinal.
        let plan = self;
        plan.blocks = blocks as u16;
        let mut act: Option<(Value, usize)> = None;
        let mut h: Option<(Value, usize)> = None;
        let (mut rq, mut tables) = (0usize, 0usize);
        let mut i = first;
        while i < n {
            let layer = g.layer(i);
            let Op::Linear { x, res, weight, .. } = layer.op else {
                return Err(pattern(i, "a SiLU or time-embedding bias not after a linear layer"));
            };
            let (input, in_scale) = match (x, act) {
                (0, _) => (Input::X, layout::s_x()),
                (v, Some((a, s))) if v == a => (Input::Act, s),
                _ => return Err(pattern(i, "reads a value the integer path does not keep")),
            };
            let (rows, cols) = (layer.shape.channels, g.value_shape(x).channels);
            let value = (i + 1) as Value;
            // The layer reading `v` next, if it is layer j (its output value is j + 1).
            let next_reads = |j: usize, v: Value| {
                (j < n).then(|| g.layer(j).op).filter(|op| op.inputs()[0] == Some(v)).map(|op| (j, op))
            };
            // Every field fits: layers < 192, channels ≤ 1024, columns < 2^32 (checked below).
            let (l16, rq32) = (i as u16, u32::try_from(rq).map_err(|_| pattern(i, "too many columns"))?);
            let mut step = Step {
                layer: l16,
                pre: l16,
                silu: l16,
                weight,
                rows: rows as u16,
                cols: cols as u16,
                in_scale: in_scale as u16,
                out_scale: in_scale as u16,
                silu_scale: in_scale as u16,
                res_scale: in_scale as u16,
                input,
                rq: rq32,
                kind: Kind::Output,
                conv: false,
                narrow: false,
            };
            if i + 1 == n {
                if res.is_some() {
                    return Err(pattern(i, "the output layer has a residual"));
                }
                rq += rows;
                plan.push(step, i)?;
                i += 1;
                continue;
            }
            // What the dense layer's epilogue folds in: [chan_bias] then silu.
            let mut j = i + 1;
            let mut temb = None;
            if let Some((_, Op::ChannelBias { v, .. })) = next_reads(j, value) {
                if res.is_some() || x == 0 {
                    return Err(pattern(j, "a time-embedding bias after a residual or input layer"));
                }
                // A time-branch value (the graph's rule for chan_bias): its words in the time region.
                temb = Kind::temb_field(g.layer(v as usize - 1).offset);
                j += 1;
            }
            let Some((silu, Op::Silu { .. })) = next_reads(j, j as Value) else {
                return Err(pattern(i, "a linear layer not followed by its SiLU"));
            };
            (step.pre, step.silu) = ((j - 1) as u16, silu as u16);
            let silu_value = (silu + 1) as Value;
            match res {
                None if x == 0 => {
                    if h.is_some() {
                        return Err(pattern(i, "a second residual stream"));
                    }
                    step.kind = Kind::ToI16 { lut: layout::lut_h(0) as u16 };
                    step.out_scale = layout::s_h(0) as u16;
                    step.silu_scale = layout::s_a(blocks, 0) as u16;
                    step.res_scale = step.out_scale;
                    h = Some((value, 0));
                    act = Some((silu_value, layout::s_a(blocks, 0)));
                    rq += 3 * rows;
                }
                None => {
                    if tables >= MAX_BLOCKS {
                        return Err(pattern(i, "more blocks than the engine's capacity"));
                    }
                    let (lut, slot) = (layout::lut_u(blocks, tables) as u16, tables as u16);
                    step.kind = Kind::Table { lut, slot, temb };
                    step.out_scale = layout::s_u(blocks, tables) as u16;
                    step.silu_scale = layout::s_v(blocks, tables) as u16;
                    step.res_scale = step.out_scale;
                    act = Some((silu_value, layout::s_v(blocks, tables)));
                    tables += 1;
                    rq += 3 * rows;
                }
                Some(r) => {
                    let Some((_, b)) = h.filter(|(hv, _)| *hv == r) else {
                        return Err(pattern(i, "a residual that is not the integer path's stream"));
                    };
                    step.kind = Kind::Residual { lut: layout::lut_h(b + 1) as u16 };
                    step.out_scale = layout::s_h(b + 1) as u16;
                    step.silu_scale = layout::s_a(blocks, b + 1) as u16;
                    step.res_scale = layout::s_h(b) as u16;
                    h = Some((value, b + 1));
                    act = Some((silu_value, layout::s_a(blocks, b + 1)));
                    rq += 3 * rows + 2;
                }
            }
            plan.push(step, i)?;
            i = silu + 1;
        }
        if !matches!(plan.steps().last(), Some(s) if s.kind == Kind::Output) {
            return Err(pattern(n - 1, "the last layer is not a linear output layer"));
        }
        plan.requant_cols = u32::try_from(rq).map_err(|_| pattern(n - 1, "too many columns"))?;
        Ok(())
    }

    /// The plan of a convolutional graph (a U-Net, `docs/scorenet.md`): one step per `conv1d`,
    /// what follows it folded into its epilogue as for the dense layers — `conv(·)` → stream
    /// (*ToI16*), `conv(·; residual h)` → stream (*Residual*), each with the SiLU that reads the
    /// stream next if one does; `conv(a) → chan_bias(temb) → silu` (*Table*); the last `conv1d`
    /// (*Output*). A convolution reads x, an int8 SiLU output, or an int16 stream by its table
    /// index, the latter also through an `upsample2` (folded into the gather). Columns are
    /// numbered in plan order: `act.scales` column 0 is s_x, then each step's new values (its
    /// stream or pre-activation, then its SiLU's output); each SiLU its table in order; the
    /// `act.requant` columns as the dense layers'.
    #[inline(never)] // its value table stays out of the dense recognition's stack frame
    fn recognise_conv(&mut self, g: &Graph<'_>) -> Result<(), PlanError> {
        /// How the integer walk holds a value (`col`: its `act.scales` column).
        #[derive(Clone, Copy, PartialEq, Eq)]
        enum Held {
            No,
            X,
            I8 { col: u16 },
            I16 { col: u16 },
            Up { src: Value },
        }
        let n = g.len();
        let pattern = |layer: usize, what: &'static str| PlanError::Pattern { layer, what };
        let mut held = [Held::No; crate::graph::MAX_LAYERS + 1];
        held[0] = Held::X;
        let (mut rq, mut cols, mut luts, mut scratch) = (0usize, 1usize, 0usize, 0usize);
        let mut file_scratch = 0usize;
        let (mut tables, mut i) = (0usize, g.time_layers());
        let narrow =
            |v: usize| -> Result<u32, PlanError> { u32::try_from(v).map_err(|_| pattern(0, "too large")) };
        while i < n {
            let layer = g.layer(i);
            let (x, res, weight, kernel, dilation, stride) = match layer.op {
                Op::Conv1d { x, res, weight, kernel, dilation, stride, .. } => {
                    (x, res, weight, kernel, dilation, stride)
                }
                Op::Upsample2 { x } => {
                    match held[x as usize] {
                        Held::I8 { .. } | Held::I16 { .. } => {}
                        _ => {
                            return Err(pattern(i, "an upsampling of a value the integer path does not keep"))
                        }
                    }
                    if i + 1 >= n
                        || !matches!(g.layer(i + 1).op, Op::Conv1d { x: v, .. } if v as usize == i + 1)
                    {
                        return Err(pattern(i, "an upsampling not read by the next convolution"));
                    }
                    held[i + 1] = Held::Up { src: x };
                    i += 1;
                    continue;
                }
                Op::Silu { .. } | Op::ChannelBias { .. } => {
                    return Err(pattern(i, "a SiLU or time-embedding bias not after its convolution"))
                }
                op => return Err(PlanError::Unsupported { layer: i, op: op.name() }),
            };
            // (The places come after the steps, [`Int8Plan::layout`].)
            let (src, upsample) = match held[x as usize] {
                Held::Up { src } => (src, true),
                _ => (x, false),
            };
            let (source, in_scale) = match held[src as usize] {
                Held::X => (ConvSource::X, layout::s_x()),
                Held::I8 { col } => (ConvSource::I8(NO_PLACE), col as usize),
                Held::I16 { col } => (ConvSource::I16(NO_PLACE), col as usize),
                _ => return Err(pattern(i, "reads a value the integer path does not keep")),
            };
            if upsample {
                held[x as usize] = Held::No;
            }
            let (cin, l_in) = (g.value_shape(x).channels, g.value_shape(x).length);
            let (rows, l_out) = (layer.shape.channels, layer.shape.length);
            let small =
                |v: usize| u8::try_from(v).map_err(|_| pattern(i, "a kernel, dilation or stride too large"));
            let io = ConvIo {
                c_in: cin as u16,
                l_in: l_in as u16,
                l_out: l_out as u16,
                kernel: small(kernel)?,
                dilation: small(dilation)?,
                stride: small(stride)?,
                source,
                upsample,
                out_at: None,
                silu_at: None,
                res_at: None,
            };
            let shape = io.shape(rows).ok_or(pattern(i, "a convolution beyond the int8 kernel's sizes"))?;
            if shape.l_out() != l_out {
                return Err(pattern(i, "a convolution's output length"));
            }
            file_scratch =
                file_scratch.max(shape.acc_len() + (super::conv::CONV_TILE * shape.cols()).div_ceil(4));
            scratch = scratch.max(io.tiling().scratch_words(&io, rows));
            let l16 = i as u16;
            let mut step = Step {
                layer: l16,
                pre: l16,
                silu: l16,
                weight,
                rows: rows as u16,
                cols: shape.cols() as u16,
                in_scale: in_scale as u16,
                out_scale: in_scale as u16,
                silu_scale: in_scale as u16,
                res_scale: in_scale as u16,
                input: if source == ConvSource::X { Input::X } else { Input::Act },
                rq: narrow(rq)?,
                kind: Kind::Output,
                conv: true,
                narrow: matches!(source, ConvSource::I16(_)),
            };
            let value = (i + 1) as Value;
            let reads = |j: usize, v: Value| j < n && g.layer(j).op.inputs()[0] == Some(v);
            if i + 1 == n {
                if res.is_some() {
                    return Err(pattern(i, "the output convolution has a residual"));
                }
                rq += rows;
                self.push(step, i)?;
                break;
            }
            let mut next = i + 1;
            // conv → chan_bias → silu: a Table step.
            let bias = if reads(i + 1, value) { g.layer(i + 1).op } else { layer.op };
            if let Op::ChannelBias { v, .. } = bias {
                if res.is_some() {
                    return Err(pattern(i + 1, "a time-embedding bias after a residual"));
                }
                if !(reads(i + 2, value + 1) && matches!(g.layer(i + 2).op, Op::Silu { .. })) {
                    return Err(pattern(i + 1, "a time-embedding bias not followed by its SiLU"));
                }
                if tables >= MAX_STEPS {
                    return Err(pattern(i, "more steps than the integer path holds"));
                }
                let temb = Kind::temb_field(g.layer(v as usize - 1).offset);
                step.kind = Kind::Table { lut: luts as u16, slot: tables as u16, temb };
                (step.pre, step.silu) = ((i + 1) as u16, (i + 2) as u16);
                (step.out_scale, step.silu_scale) = (cols as u16, cols as u16 + 1);
                step.res_scale = step.out_scale;
                held[i + 3] = Held::I8 { col: cols as u16 + 1 };
                (cols, luts, tables) = (cols + 2, luts + 1, tables + 1);
                rq += 3 * rows;
                next = i + 3;
            } else {
                // A stream, and the SiLU reading it next if one does.
                step.out_scale = cols as u16;
                step.res_scale = step.out_scale;
                match res {
                    None => {
                        step.kind = Kind::ToI16 { lut: NO_LUT };
                        rq += 3 * rows;
                    }
                    Some(r) => {
                        let Held::I16 { col } = held[r as usize] else {
                            return Err(pattern(i, "a residual that is not an int16 stream"));
                        };
                        step.res_scale = col;
                        step.kind = Kind::Residual { lut: NO_LUT };
                        rq += 3 * rows + 2;
                    }
                }
                held[value as usize] = Held::I16 { col: cols as u16 };
                cols += 1;
                if reads(i + 1, value) && matches!(g.layer(i + 1).op, Op::Silu { .. }) {
                    if !(i + 2..n).any(|j| g.layer(j).op.inputs().contains(&Some(value))) {
                        // No later layer reads the stream: the walk does not keep it.
                        held[value as usize] = Held::No;
                    }
                    step.kind = match step.kind {
                        Kind::ToI16 { .. } => Kind::ToI16 { lut: luts as u16 },
                        _ => Kind::Residual { lut: luts as u16 },
                    };
                    step.silu = (i + 1) as u16;
                    step.silu_scale = cols as u16;
                    held[i + 2] = Held::I8 { col: cols as u16 };
                    (cols, luts) = (cols + 1, luts + 1);
                    next = i + 2;
                }
            }
            self.push(step, i)?;
            // The walk derives the same from the step ([`Int8Plan::conv_io`], checked with the
            // places: [`Int8Plan::layout`]).
            i = next;
        }
        if !matches!(self.steps().last(), Some(s) if s.kind == Kind::Output && s.layer as usize + 1 == n) {
            return Err(pattern(n - 1, "the last layer is not a convolution"));
        }
        self.requant_cols = narrow(rq)?;
        self.conv_scales = u16::try_from(cols).map_err(|_| pattern(n - 1, "too many columns"))?;
        self.conv_luts = luts as u16;
        self.scratch = narrow(scratch)?;
        self.file_scratch = narrow(file_scratch)?;
        let mut places = [[NO_PLACE; 2]; MAX_STEPS];
        self.data = narrow(self.layout(g, &mut places)?)?;
        Ok(())
    }

    /// The places of a convolutional plan's values in graph `g` (the graph the plan was made
    /// of; all [`NO_PLACE`] for a dense plan): what [`Int8Plan::conv_io`] reads them from.
    pub fn places(&self, g: &Graph<'_>) -> Places {
        let mut places = [[NO_PLACE; 2]; MAX_STEPS];
        if self.is_conv() && self.layout(g, &mut places).is_err() {
            places = [[NO_PLACE; 2]; MAX_STEPS];
        }
        places
    }

    /// The integer data region of a convolutional plan: its int8 values (L·C bytes) and int16
    /// streams (2·L·C bytes), each rounded up to whole words, placed by the graph's arena
    /// planner ([`crate::graph::build::place`]) by their lives in the integer walk: a value is
    /// written by its step (a SiLU folded into a step lives from that step, not from its own
    /// layer) and read by the steps that take it as their input (through an `upsample2`: by
    /// the convolution that reads the upsampling) or as their residual. A step's input is live
    /// while it runs, so its outputs never share its words: a convolution may run in tiles of
    /// output positions ([`ConvIo::tiling`]). A `Residual` step writes its stream over the
    /// residual it adds when that dies there and is not also its input (each position read,
    /// then written). A stream only its SiLU reads has no place.
    /// Fills `places` and returns the region's words.
    #[inline(never)] // its tables stay out of its callers' frames
    fn layout(&self, g: &Graph<'_>, places: &mut Places) -> Result<usize, PlanError> {
        use crate::graph::build::{place, Slot};
        let n = g.len();
        let fail = |what: &'static str| PlanError::Pattern { layer: n - 1, what };
        // What step `s` reads: its input value (the upsampling's own input) and its residual.
        let reads = |s: &Step| -> [Option<Value>; 2] {
            match g.layer(s.layer as usize).op {
                Op::Conv1d { x, res, .. } => {
                    let src = match x {
                        0 => None,
                        v => match g.layer(v as usize - 1).op {
                            Op::Upsample2 { x: u } => Some(u),
                            _ => Some(v),
                        },
                    };
                    [src, res]
                }
                _ => [None, None],
            }
        };
        // end[v]: the last step that reads value v (0: none).
        let mut end = [0u16; crate::graph::MAX_LAYERS + 1];
        for s in self.steps() {
            for v in reads(s).into_iter().flatten() {
                if let Some(e) = end.get_mut(v as usize) {
                    *e = (*e).max(s.layer);
                }
            }
        }
        let mut slots = [Slot::default(); 2 * MAX_STEPS];
        let mut count = 0;
        // The slot of each step's stream and SiLU output (usize::MAX: none).
        let mut of = [[usize::MAX; 2]; MAX_STEPS];
        for (k, s) in self.steps().iter().enumerate() {
            let start = s.layer as usize;
            let shape = g.layer(start).shape;
            let bytes = |b: usize| b.checked_mul(shape.len()).map(|v| v.div_ceil(4)).ok_or(fail("too large"));
            let stream = s.layer + 1;
            let last = |v: u16| (end[v as usize] as usize).max(start);
            if matches!(s.kind, Kind::ToI16 { .. } | Kind::Residual { .. }) && end[stream as usize] != 0 {
                let len = bytes(2)?;
                let [src, res] = reads(s);
                // The residual's slot, if this stream can take it.
                let over = res.filter(|&r| end[r as usize] == s.layer && Some(r) != src).and_then(|r| {
                    let j = self.steps().iter().position(|t| t.layer + 1 == r)?;
                    Some(of[j][0]).filter(|&slot| slots[slot].len == len)
                });
                of[k][0] = match over {
                    Some(slot) => {
                        slots[slot].end = slots[slot].end.max(last(stream));
                        slot
                    }
                    None => {
                        *slots.get_mut(count).ok_or(fail("too many values"))? =
                            Slot { start, end: last(stream), len };
                        count += 1;
                        count - 1
                    }
                };
            }
            let has_silu = s.silu != s.pre || matches!(s.kind, Kind::Table { .. });
            if has_silu && s.kind != Kind::Output {
                *slots.get_mut(count).ok_or(fail("too many values"))? =
                    Slot { start, end: last(s.silu + 1), len: bytes(1)? };
                of[k][1] = count;
                count += 1;
            }
        }
        let mut base = [0usize; 2 * MAX_STEPS];
        let words = place(&slots[..count], &mut base);
        let byte = |w: usize| w.checked_mul(4).and_then(|b| u32::try_from(b).ok()).ok_or(fail("too large"));
        byte(words)?;
        for (k, o) in of.iter().enumerate().take(self.len as usize) {
            for (p, &slot) in places[k].iter_mut().zip(o) {
                *p = if slot == usize::MAX { NO_PLACE } else { byte(base[slot])? };
            }
        }
        // Every step finds what it reads and writes where the recognition put them: its
        // stream unless only its SiLU reads it, its SiLU's output.
        for s in self.steps() {
            let io = self.conv_io(s, g, places).ok_or(fail("a convolution whose values have no place"))?;
            let stream = matches!(s.kind, Kind::ToI16 { .. } | Kind::Residual { .. })
                && (s.silu == s.layer
                    || (s.silu as usize + 1..n).any(|j| g.layer(j).op.inputs().contains(&Some(s.layer + 1))));
            let silu = s.kind != Kind::Output && (s.silu != s.pre || matches!(s.kind, Kind::Table { .. }));
            let want = [stream, silu];
            let input = match io.source {
                ConvSource::X => s.input == Input::X,
                _ => s.input == Input::Act,
            };
            let ok = input
                && io.shape(s.rows()).is_some_and(|c| c.l_out() == io.l_out as usize)
                && [io.out_at.is_some(), io.silu_at.is_some()] == want
                && (io.res_at.is_some() || !matches!(s.kind, Kind::Residual { .. }));
            if !ok {
                return Err(PlanError::Pattern { layer: s.layer as usize, what: "a value without a place" });
            }
        }
        Ok(words)
    }

    fn push(&mut self, step: Step, layer: usize) -> Result<(), PlanError> {
        let slot = self
            .steps
            .get_mut(self.len as usize)
            .ok_or(PlanError::Pattern { layer, what: "more dense layers than the integer path holds" })?;
        *slot = step;
        self.len += 1;
        Ok(())
    }

    /// The steps in evaluation order.
    pub fn steps(&self) -> &[Step] {
        &self.steps[..self.len as usize]
    }

    /// B, the number of residual steps (the `b` range of [`layout`]'s columns).
    pub fn blocks(&self) -> usize {
        self.blocks as usize
    }

    /// Columns of `act.scales` the plan indexes ([`layout::scale_cols`]).
    pub fn scale_cols(&self) -> usize {
        if self.is_conv() {
            return self.conv_scales as usize;
        }
        layout::scale_cols(self.blocks())
    }

    /// Whether this is a convolutional plan (its steps are `conv1d` layers).
    pub fn is_conv(&self) -> bool {
        self.steps().first().is_some_and(|s| s.conv)
    }

    /// A convolution step's geometry and the blocks of its values in graph `g` (the graph the
    /// plan was made of), as the plan's recognition found them: the input (x, an int8 SiLU
    /// output or an int16 stream, through an `upsample2` if the convolution reads one), the
    /// stream's block (none where the SiLU took it), the SiLU's and the residual's. `None` for
    /// a dense step or a graph the step does not fit.
    pub fn conv_io(&self, step: &Step, g: &Graph<'_>, places: &[[u32; 2]]) -> Option<ConvIo> {
        if !step.conv || step.layer as usize >= g.len() {
            return None;
        }
        let layer = g.layer(step.layer as usize);
        let Op::Conv1d { x, res, kernel, dilation, stride, .. } = layer.op else { return None };
        let (src, upsample) = match x {
            0 => (0, false),
            v => match g.layer(v as usize - 1).op {
                Op::Upsample2 { x: s } => (s, true),
                _ => (v, false),
            },
        };
        let source = match src {
            0 => ConvSource::X,
            v if step.narrow => ConvSource::I16(self.place_of(v, places)?),
            v => ConvSource::I8(self.place_of(v, places)?),
        };
        let k = self.steps().iter().position(|s| s.layer == step.layer)?;
        let place = |p: u32| (p != NO_PLACE).then_some(p);
        let [out_at, silu_at] = places.get(k)?.map(place);
        let shape = g.value_shape(x);
        Some(ConvIo {
            c_in: shape.channels as u16,
            l_in: shape.length as u16,
            l_out: layer.shape.length as u16,
            kernel: u8::try_from(kernel).ok()?,
            dilation: u8::try_from(dilation).ok()?,
            stride: u8::try_from(stride).ok()?,
            source,
            upsample,
            out_at: out_at.filter(|_| matches!(step.kind, Kind::ToI16 { .. } | Kind::Residual { .. })),
            silu_at: silu_at.filter(|_| step.kind != Kind::Output),
            res_at: match (res, step.kind) {
                (Some(r), Kind::Residual { .. }) => self.place_of(r, places),
                _ => None,
            },
        })
    }

    /// The place (byte offset in the integer data region) of value `v`: a step's stream or its
    /// SiLU's output.
    fn place_of(&self, v: Value, places: &[[u32; 2]]) -> Option<u32> {
        self.steps().iter().zip(places).find_map(|(s, p)| {
            let at = if v == s.layer + 1 {
                p[0]
            } else if v == s.silu + 1 && s.silu != s.layer {
                p[1]
            } else {
                return None;
            };
            (at != NO_PLACE).then_some(at)
        })
    }

    /// Words of the integer data region of a convolutional plan (0 for a dense plan): its
    /// int8 values and int16 streams at their places ([`ConvIo`]), laid out by liveness like
    /// the f32 walk's regions (`Int8Plan::layout`); after the arena's time region.
    pub fn data_words(&self) -> usize {
        self.data as usize
    }

    /// The integer scratch a convolutional file's RAM figure (format v3, `docs/format.md`)
    /// counts: one whole convolution's int32 accumulators (L_out·C_out) and its gathered
    /// columns, the largest over the steps (0 for a dense plan). Files state it as they always
    /// have; the walk needs only [`Int8Plan::scratch_words`].
    pub fn file_scratch_words(&self) -> usize {
        self.file_scratch as usize
    }

    /// Words of integer scratch the walk of a convolutional plan needs after its data region
    /// (0 for a dense plan): one call's int32 accumulators (at most [`ACC_TILE`] output
    /// positions × C_out, [`ConvIo::tiling`]) and the kernels' columns ([`ConvIo::col_words`]:
    /// [`super::conv::CONV_TILE`] gathered positions, or the Cortex-M DSP form's operands), the
    /// largest over the steps.
    pub fn scratch_words(&self) -> usize {
        self.scratch as usize
    }

    /// Columns of `act.requant` the plan indexes (its steps' triples, residual pairs and
    /// output biases, in order).
    pub fn requant_cols(&self) -> usize {
        self.requant_cols as usize
    }

    /// Tables of `act.lut` per group ([`layout::lut_count`]).
    pub fn lut_count(&self) -> usize {
        if self.is_conv() {
            return self.conv_luts as usize;
        }
        layout::lut_count(self.blocks())
    }

    /// The widest int8 activation or accumulator row the plan's buffers hold (every step's
    /// rows, every input but x's columns).
    pub fn width(&self) -> usize {
        if self.is_conv() {
            // One position's accumulators and time embedding: C_out.
            return self.steps().iter().map(Step::rows).max().unwrap_or(0);
        }
        self.steps()
            .iter()
            .map(|s| if s.input == Input::X { s.rows() } else { s.rows().max(s.cols()) })
            .max()
            .unwrap_or(0)
    }

    /// The `act.scales` column of the value graph layer `layer` writes, if the integer path
    /// quantizes it, and whether that value is an int16 residual stream (its scale has
    /// [`super::RESIDUAL_EXTRA_BITS`] more bits than an int8 value's). The network's input x
    /// is no layer: its column is [`Int8Plan::input_scale`].
    pub fn scale_of(&self, layer: usize) -> Option<(usize, bool)> {
        self.steps().iter().find_map(|s| {
            let stream = matches!(s.kind, Kind::ToI16 { .. } | Kind::Residual { .. });
            match s.kind {
                Kind::Output => None,
                _ if layer == s.pre as usize => Some((s.out_scale(), stream)),
                _ if layer == s.silu as usize && s.silu != s.pre => Some((s.silu_scale(), false)),
                _ => None,
            }
        })
    }

    /// The `act.scales` column of the network's input x (the scale of the steps that read x).
    pub fn input_scale(&self) -> Option<usize> {
        self.steps().iter().find(|s| s.input == Input::X).map(Step::in_scale)
    }

    /// The activation that graph layer `layer` writes, if the integer path quantizes it.
    pub fn activation(&self, layer: usize) -> Option<Activation> {
        if self.is_conv() {
            return self.scale_of(layer).map(|_| Activation::Layer(layer));
        }
        let mut h = 0;
        for s in self.steps() {
            type Name = fn(usize) -> Activation;
            let (pre, silu): (Name, Name) = match s.kind {
                Kind::ToI16 { .. } | Kind::Residual { .. } => {
                    (Activation::Residual, Activation::SiluResidual)
                }
                Kind::Table { .. } => (Activation::Pre, Activation::SiluPre),
                Kind::Output => continue,
            };
            let ordinal = match s.kind {
                Kind::Residual { .. } => {
                    h += 1;
                    h
                }
                Kind::Table { slot, .. } => slot as usize,
                _ => 0,
            };
            if layer == s.pre as usize {
                return Some(pre(ordinal));
            }
            if layer == s.silu as usize {
                return Some(silu(ordinal));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::build::Builder;
    use crate::graph::{mlp, unet::UNet, Shape};

    const SIZES: [(usize, usize, usize, usize); 7] = [
        (2, 8, 4, 1),
        (2, 128, 32, 3),
        (64, 16, 64, 2),
        (3, 4, 8, 8),
        (1, 2, 2, 1),
        (5, 32, 32, 2),
        (2, 32, 8, 2),
    ];

    /// ScoreNet v1's plan gives every step the columns `layout` states for its block: the
    /// plan's order is the format's.
    #[test]
    fn the_mlps_plan_has_the_layouts_columns() {
        for (dim, hidden, freqs, blocks) in SIZES {
            let d = mlp::Dims { dim, hidden, freqs, blocks };
            let built = mlp::build(&d).unwrap();
            let g = built.graph().unwrap();
            let plan = Int8Plan::new(&g).unwrap();
            let (h, nb) = (hidden, blocks);
            assert_eq!(plan.blocks(), nb);
            assert_eq!(plan.scale_cols(), layout::scale_cols(nb));
            assert_eq!(plan.requant_cols(), layout::requant_cols(dim, h, nb), "{d:?}");
            assert_eq!(plan.lut_count(), layout::lut_count(nb));
            assert_eq!(plan.width(), h.max(dim));
            let s = plan.steps();
            assert_eq!(s.len(), 2 + 2 * nb);
            let temb = core::num::NonZeroU32::new(g.layer(3).offset as u32 + 1);
            // What a step states, as usize (0 for the sizes, checked apart).
            let view = |s: &Step| (s.layer, s.pre, s.silu, s.input, s.in_scale(), s.rq(), s.kind);
            let u = |v: usize| v as u16;
            let lut = u(layout::lut_h(0));
            assert_eq!(
                view(&s[0]),
                (4, 4, 5, Input::X, layout::s_x(), layout::input(h), Kind::ToI16 { lut })
            );
            assert_eq!((s[0].rows(), s[0].cols(), s[0].weight()), (h, dim, 6));
            for b in 0..nb {
                let l = u(5 + 5 * b);
                let (w1, w2) = (&s[1 + 2 * b], &s[2 + 2 * b]);
                let kind = Kind::Table { lut: u(layout::lut_u(nb, b)), slot: u(b), temb };
                let a = layout::s_a(nb, b);
                assert_eq!(view(w1), (l + 1, l + 2, l + 3, Input::Act, a, layout::w1(h, b), kind));
                let kind = Kind::Residual { lut: u(layout::lut_h(b + 1)) };
                let v = layout::s_v(nb, b);
                assert_eq!(view(w2), (l + 4, l + 4, l + 5, Input::Act, v, layout::w2(h, b), kind));
                assert_eq!(w2.rq() + 3 * h, layout::residual(h, b));
                assert_eq!((w1.weight(), w2.weight()), (8 + 4 * b, 10 + 4 * b));
                assert_eq!((w1.rows(), w1.cols(), w2.rows(), w2.cols()), (h, h, h, h));
            }
            let out = s[1 + 2 * nb];
            let (l, a) = (u(6 + 5 * nb), layout::s_a(nb, nb));
            assert_eq!(view(&out), (l, l, l, Input::Act, a, layout::output(h, nb), Kind::Output));
            assert_eq!((out.rows(), out.cols()), (dim, h));
            // The generated v1 graph (a version-1 file) has the same plan.
            let v1 = crate::graph::Graph::mlp(d, &built).unwrap();
            assert_eq!(Int8Plan::new(&v1), Ok(plan));
        }
    }

    /// The activations the plan names are ScoreNet v1's, layer by layer (`docs/scorenet.md`).
    #[test]
    fn the_mlps_activations_are_named_by_the_plan() {
        for (dim, hidden, freqs, blocks) in SIZES {
            let d = mlp::Dims { dim, hidden, freqs, blocks };
            let built = mlp::build(&d).unwrap();
            let plan = Int8Plan::new(&built.graph().unwrap()).unwrap();
            let last = 5 + 5 * blocks;
            for layer in 0..mlp::layer_count(&d) {
                let want = match layer {
                    4 => Some(Activation::Residual(0)),
                    l if l == last => Some(Activation::SiluResidual(blocks)),
                    l if (5..last).contains(&l) => match ((l - 5) / 5, (l - 5) % 5) {
                        (b, 0) => Some(Activation::SiluResidual(b)),
                        (b, 2) => Some(Activation::Pre(b)),
                        (b, 3) => Some(Activation::SiluPre(b)),
                        (b, 4) => Some(Activation::Residual(b + 1)),
                        _ => None,
                    },
                    _ => None,
                };
                assert_eq!(plan.activation(layer), want, "{d:?} layer {layer}");
                // Its scale's column is the layout's for that activation.
                let nb = blocks;
                let column = want.map(|a| match a {
                    Activation::Input => (layout::s_x(), false),
                    Activation::Residual(b) => (layout::s_h(b), true),
                    Activation::SiluResidual(b) => (layout::s_a(nb, b), false),
                    Activation::Pre(b) => (layout::s_u(nb, b), false),
                    Activation::SiluPre(b) => (layout::s_v(nb, b), false),
                    Activation::Layer(_) => unreachable!("a dense plan names its activations"),
                });
                assert_eq!(plan.scale_of(layer), column, "{d:?} layer {layer}");
            }
            assert_eq!(plan.input_scale(), Some(layout::s_x()));
            // Every residual step rescales the stream before it to its own.
            for s in plan.steps() {
                if let Kind::Residual { lut } = s.kind {
                    let b = lut as usize - 1;
                    assert_eq!((s.res_scale(), s.out_scale()), (layout::s_h(b), layout::s_h(b + 1)));
                }
            }
        }
    }

    /// A U-Net has a convolutional plan: its columns numbered in plan order, each step's
    /// blocks those of the graph's values.
    #[test]
    fn a_unet_has_a_conv_plan() {
        let u =
            UNet { channels: 1, length: 16, width: 4, levels: 1, blocks: 1, kernel: 3, freqs: 8, temb: 8 };
        let built = u.build().unwrap();
        let g = built.graph().unwrap();
        let plan = Int8Plan::new(&g).unwrap();
        assert!(plan.is_conv());
        // in, (res: table, residual), down, (mid: table, residual), up, (table, residual), out.
        let kinds: Vec<_> = plan.steps().iter().map(|s| s.kind).collect();
        let names: Vec<&str> = kinds
            .iter()
            .map(|k| match k {
                Kind::ToI16 { .. } => "i16",
                Kind::Table { .. } => "table",
                Kind::Residual { .. } => "res",
                Kind::Output => "out",
            })
            .collect();
        assert_eq!(names, ["i16", "table", "res", "i16", "table", "res", "res", "table", "res", "out"]);
        // Scale columns: s_x, then per step its new values in order.
        let mut col = 1;
        let mut lut = 0;
        for s in plan.steps() {
            let io = plan.conv_io(s, &g, &plan.places(&g)).unwrap();
            match s.kind {
                Kind::Output => assert_eq!(s.rq() + s.rows(), plan.requant_cols()),
                Kind::Table { lut: l, .. } => {
                    assert_eq!((s.out_scale(), s.silu_scale(), l as usize), (col, col + 1, lut));
                    assert!(io.silu_at.is_some() && io.out_at.is_none());
                    (col, lut) = (col + 2, lut + 1);
                }
                Kind::ToI16 { lut: l } | Kind::Residual { lut: l } => {
                    assert_eq!(s.out_scale(), col);
                    col += 1;
                    if l != NO_LUT {
                        assert_eq!((s.silu_scale(), l as usize), (col, lut));
                        (col, lut) = (col + 1, lut + 1);
                    }
                }
            }
        }
        assert_eq!((plan.scale_cols(), plan.lut_count()), (col, lut));
        // The down convolution reads the stream itself, the up one through the upsampling.
        let places = plan.places(&g);
        let (down, up) = (
            plan.conv_io(&plan.steps()[3], &g, &places).unwrap(),
            plan.conv_io(&plan.steps()[6], &g, &places).unwrap(),
        );
        assert!(matches!(down.source, ConvSource::I16(_)) && !down.upsample && down.stride == 2);
        assert!(matches!(up.source, ConvSource::I16(_)) && up.upsample && up.l_in == 16);
        assert_eq!(plan.steps()[3].in_factor(), 256.0);
        assert_eq!(plan.input_scale(), Some(layout::s_x()));
        // Every quantized value is named by its layer.
        for layer in 0..g.len() {
            assert_eq!(plan.activation(layer).is_some(), plan.scale_of(layer).is_some());
        }
    }

    /// The integer data region of a U-Net: no two values the walk keeps at the same time share
    /// a byte, except a residual stream and the stream written over it; a step's outputs never
    /// meet its input (a convolution may run in tiles); each value is its type's size; and the
    /// region is smaller than the f32 walk's data region it replaced.
    #[test]
    fn the_integer_values_are_placed_by_their_lives() {
        let ecg = UNet {
            channels: 1,
            length: 256,
            width: 20,
            levels: 3,
            blocks: 1,
            kernel: 5,
            freqs: 32,
            temb: 80,
        };
        let nets = [
            ecg,
            UNet { channels: 1, length: 64, width: 8, levels: 2, blocks: 1, kernel: 5, freqs: 32, temb: 32 },
            UNet { channels: 3, length: 48, width: 5, levels: 1, blocks: 2, kernel: 3, freqs: 6, temb: 4 },
        ];
        for u in nets {
            let built = u.build().unwrap();
            let g = built.graph().unwrap();
            let plan = Int8Plan::new(&g).unwrap();
            // (value, first step, last step reading it, byte range) of every placed value.
            let mut values: Vec<(u16, usize, usize, core::ops::Range<usize>)> = Vec::new();
            let ios: Vec<ConvIo> =
                plan.steps().iter().map(|s| plan.conv_io(s, &g, &plan.places(&g)).unwrap()).collect();
            for (k, (s, io)) in plan.steps().iter().zip(&ios).enumerate() {
                let len = s.rows() * io.l_out as usize;
                if let Some(o) = io.out_at {
                    values.push((s.layer + 1, k, k, o as usize..o as usize + 2 * len));
                }
                if let Some(a) = io.silu_at {
                    values.push((s.silu + 1, k, k, a as usize..a as usize + len));
                }
            }
            for (k, io) in ios.iter().enumerate() {
                let reads = [
                    match io.source {
                        ConvSource::X => None,
                        ConvSource::I8(a) | ConvSource::I16(a) => Some(a as usize),
                    },
                    io.res_at.map(|r| r as usize),
                ];
                for at in reads.into_iter().flatten() {
                    let v = values.iter_mut().filter(|v| v.3.start == at && v.1 < k).last().unwrap();
                    v.2 = v.2.max(k);
                }
            }
            for v in &values {
                assert!(v.3.end <= 4 * plan.data_words() && v.3.start % 4 == 0, "{u:?}");
            }
            for (i, a) in values.iter().enumerate() {
                for b in &values[i + 1..] {
                    let live = !(a.2 < b.1 || b.2 < a.1);
                    let meet = a.3.start < b.3.end && b.3.start < a.3.end;
                    if live && meet {
                        // Only a stream written over the residual its step adds and drops.
                        let io = ios[b.1];
                        assert!(
                            a.2 == b.1
                                && io.res_at == Some(a.3.start as u32)
                                && io.out_at == Some(b.3.start as u32)
                                && a.3 == b.3,
                            "{u:?}: {a:?} {b:?}"
                        );
                        assert_ne!(io.source, ConvSource::I16(a.3.start as u32));
                    }
                }
            }
            assert!(plan.data_words() < g.regions().data, "{u:?}");
        }
        // The ECG U-Net at W = 256: the largest set live at once is layer 44's (the residual
        // 40×128 int16, the upsampled 40×64 stream, the skip stream 20×256 int16, the SiLU's
        // 40×128 int8): 30 720 bytes; the greedy placement comes within 4 %.
        let g = ecg.build().unwrap();
        let plan = Int8Plan::new(&g.graph().unwrap()).unwrap();
        assert!((7680..=7680 * 104 / 100).contains(&plan.data_words()), "{}", plan.data_words());
    }

    /// Convolutional graphs the integer walk cannot hold: a standalone add by name, a SiLU
    /// that follows no convolution and a dense layer among the convolutions by pattern/name.
    #[test]
    fn conv_arrangements_without_a_plan_are_refused() {
        let sig = Shape { channels: 2, length: 8 };
        // `f` gets v = silu(chan_bias(conv(x), temb)) (layers 2..=4, a Table step).
        let plan = |f: &dyn Fn(&mut Builder, Value) -> Result<(), crate::graph::GraphError>| {
            let mut b = Builder::new(sig, 2);
            let phi = b.time_features(4).unwrap();
            let t = b.linear(phi, 4, None).unwrap();
            let u = b.conv1d(0, 4, 3, 1, 1, None).unwrap();
            let u = b.channel_bias(u, t).unwrap();
            let v = b.silu(u).unwrap();
            f(&mut b, v).unwrap();
            let built = b.finish().unwrap();
            Int8Plan::new(&built.graph().unwrap()).map(|_| ())
        };
        let e = plan(&|b, v| {
            let h = b.conv1d(v, 4, 3, 1, 1, None)?;
            let a = b.silu(h)?;
            let s = b.add(a, h)?;
            b.conv1d(s, 2, 3, 1, 1, None).map(|_| ())
        });
        assert_eq!(e, Err(PlanError::Unsupported { layer: 7, op: "add" }));
        let e = plan(&|b, v| {
            let h = b.conv1d(v, 4, 3, 1, 1, None)?;
            let a = b.silu(h)?;
            let a = b.silu(a)?;
            b.conv1d(a, 2, 3, 1, 1, None).map(|_| ())
        });
        assert!(matches!(e, Err(PlanError::Pattern { layer: 7, .. })), "{e:?}");
        let e = plan(&|b, v| {
            let a = b.silu(v)?;
            b.conv1d(a, 2, 3, 1, 1, None).map(|_| ())
        });
        assert!(matches!(e, Err(PlanError::Pattern { layer: 5, .. })), "{e:?}");
        // The output with a residual.
        let e = plan(&|b, v| {
            let h = b.conv1d(v, 2, 3, 1, 1, None)?;
            let a = b.silu(h)?;
            b.conv1d(a, 2, 3, 1, 1, Some(h)).map(|_| ())
        });
        assert!(matches!(e, Err(PlanError::Pattern { layer: 7, .. })), "{e:?}");
        // The smallest that has a plan.
        assert_eq!(plan(&|b, v| b.conv1d(v, 2, 3, 1, 1, None).map(|_| ())), Ok(()));
    }

    /// Linear layers in arrangements the integer buffers cannot hold are refused by pattern.
    #[test]
    fn other_arrangements_are_refused() {
        let vec = |c| Shape { channels: c, length: 1 };
        // `f` gets the time embedding (value 2, 4 channels), which the graph must read.
        let plan = |f: &dyn Fn(&mut Builder, Value) -> Result<(), crate::graph::GraphError>| {
            let mut b = Builder::new(vec(2), 2);
            let phi = b.time_features(4).unwrap();
            let temb = b.linear(phi, 4, None).unwrap();
            f(&mut b, temb).unwrap();
            let built = b.finish().unwrap();
            Int8Plan::new(&built.graph().unwrap()).map(|_| ())
        };
        // A linear layer without its SiLU.
        let e = plan(&|b, t| {
            let h = b.linear(0, 4, None)?;
            let a = b.silu(h)?;
            let u = b.linear(a, 4, None)?;
            let u = b.channel_bias(u, t)?;
            b.linear(u, 2, None).map(|_| ())
        });
        assert!(matches!(e, Err(PlanError::Pattern { layer: 4, .. })), "{e:?}");
        // An element-wise add: no integer kernel.
        let e = plan(&|b, t| {
            let h = b.linear(0, 4, None)?;
            let h = b.channel_bias(h, t)?;
            let a = b.silu(h)?;
            let s = b.add(a, h)?;
            b.linear(s, 2, None).map(|_| ())
        });
        assert_eq!(e, Err(PlanError::Unsupported { layer: 5, op: "add" }));
        // A residual that is not the stream's latest value (h16 has moved on).
        let e = plan(&|b, t| {
            let h = b.linear(0, 4, None)?;
            let a = b.silu(h)?;
            let u = b.linear(a, 4, None)?;
            let u = b.channel_bias(u, t)?;
            let v = b.silu(u)?;
            let h2 = b.linear(v, 4, Some(h))?;
            let a = b.silu(h2)?;
            let u = b.linear(a, 4, None)?;
            let u = b.channel_bias(u, t)?;
            let v = b.silu(u)?;
            let h3 = b.linear(v, 4, Some(h))?;
            let a = b.silu(h3)?;
            b.linear(a, 2, None).map(|_| ())
        });
        assert!(matches!(e, Err(PlanError::Pattern { layer: 12, .. })), "{e:?}");
        // A block without a residual: linear → chan_bias → silu twice in a row has a plan.
        let e = plan(&|b, t| {
            let h = b.linear(0, 4, None)?;
            let a = b.silu(h)?;
            let u = b.linear(a, 4, None)?;
            let u = b.channel_bias(u, t)?;
            let u = b.silu(u)?;
            let v = b.linear(u, 4, None)?;
            let v = b.silu(v)?;
            b.linear(v, 2, None).map(|_| ())
        });
        assert_eq!(e, Ok(()));
    }
}
