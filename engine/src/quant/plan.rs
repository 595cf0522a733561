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
//! A layer the integer path has no kernel for (`conv1d`, `upsample2`, a standalone `add`) is
//! refused by name ([`PlanError::Unsupported`]); supported layers in another arrangement by
//! [`PlanError::Pattern`]. The time branch is not part of the plan: it runs in f32 (the walk).
//!
//! The engine's int8 network (`net/int8.rs`) walks the steps; the parser validates a `w8a8`
//! file's activation parameters along them, and the converter's calibration walks them
//! (its weights, biases, columns and tables) and finds each observed activation's column by
//! [`Int8Plan::scale_of`]. An int8 convolution would be one more step kind here and
//! one more arm there. Imports only the graph and the layout.

use super::layout;
use crate::graph::{Graph, Op, Value};
use crate::limits::MAX_BLOCKS;

/// Largest number of steps (dense layers) a plan holds: the input layer, two per block, the
/// output layer.
pub const MAX_STEPS: usize = 2 + 2 * MAX_BLOCKS;

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
        /// The time embedding's offset in the arena's time region (`rows` values), if the
        /// dense layer is followed by `chan_bias`.
        temb: Option<u32>,
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
}

impl Step {
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
}

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
};

impl Default for Int8Plan {
    /// The empty plan (no steps).
    fn default() -> Self {
        Self { steps: [NO_STEP; MAX_STEPS], len: 0, blocks: 0, requant_cols: 0 }
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
        self.len = 0;
        let r = self.recognise(g);
        if r.is_err() {
            self.len = 0;
            self.blocks = 0;
            self.requant_cols = 0;
        }
        r
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
                temb = u32::try_from(g.layer(v as usize - 1).offset).ok();
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
        layout::scale_cols(self.blocks())
    }

    /// Columns of `act.requant` the plan indexes (its steps' triples, residual pairs and
    /// output biases, in order).
    pub fn requant_cols(&self) -> usize {
        self.requant_cols as usize
    }

    /// Tables of `act.lut` per group ([`layout::lut_count`]).
    pub fn lut_count(&self) -> usize {
        layout::lut_count(self.blocks())
    }

    /// The widest int8 activation or accumulator row the plan's buffers hold (every step's
    /// rows, every input but x's columns).
    pub fn width(&self) -> usize {
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
                _ if layer == s.silu as usize => Some((s.silu_scale(), false)),
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
            let temb = g.layer(3).offset as u32;
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
                let kind = Kind::Table { lut: u(layout::lut_u(nb, b)), slot: u(b), temb: Some(temb) };
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

    /// A convolutional graph is refused by the name of its first layer without an integer
    /// kernel.
    #[test]
    fn a_conv_graph_is_refused_by_name() {
        let u =
            UNet { channels: 1, length: 16, width: 4, levels: 1, blocks: 1, kernel: 3, freqs: 8, temb: 8 };
        let built = u.build().unwrap();
        let g = built.graph().unwrap();
        let first = g.layers().position(|l| matches!(l.op, Op::Conv1d { .. })).unwrap();
        assert_eq!(Int8Plan::new(&g), Err(PlanError::Unsupported { layer: first, op: "conv1d" }));
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
