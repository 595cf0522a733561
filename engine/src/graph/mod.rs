//! The layer graph: a score network as an ordered list of layers with fixed shapes, validated
//! once and then walked by every implementation (engine f32 and int8, the CPU trainer's
//! forward and backward passes, the CUDA trainer). Nobody writes the layer sequence by hand.
//!
//! Like TensorFlow Lite Micro's offline-planned arena: every shape is fixed when the file is
//! written, and every activation has an offset in one arena whose size the file states. The
//! arena has three regions, in 4-byte words: the **time** region holds the values that depend
//! on t alone (computed once per call, however many vectors a batch holds), the **data** region
//! the values that depend on x (one copy per vector of a batch), the **scratch** region the
//! columns a convolution gathers ([`COL_TILE`] positions at a time). Values that are never live
//! at the same time share words; an element-wise layer may write over the input it consumes.
//!
//! The network's input x (value 0) and output ε̂ (the last layer's value) are the caller's
//! vectors, not arena values; both are channel-major (channel c's samples contiguous, the order
//! of a CSV row). Arena values are channels-last: element (c, l) at `l·C + c`.
//!
//! [`Graph::new`] checks a list of records ([`op::RECORD_LEN`] bytes each; `docs/format.md`) and
//! refuses every inconsistency with a [`GraphError`]: unknown ops, bad fields, shapes that do
//! not follow the op's rule, references to values not yet written, tensor references that
//! dangle or repeat, values never read, time-branch layers after data-branch ones, outputs
//! outside their region, live values sharing words, and overflowing sizes. After that,
//! evaluation cannot fail. The ScoreNet v1 MLP is one such graph ([`mlp`]); so is the 1-D
//! U-Net of [`unet`]. [`build::Builder`] writes graphs and plans their arena.

pub mod build;
pub mod error;
pub mod mlp;
pub mod op;
pub mod unet;

pub use error::GraphError;
pub use op::{Branch, Op, Shape, Value};

use op::RECORD_LEN;

/// Largest number of layers in a graph.
pub const MAX_LAYERS: usize = 192;

/// Largest number of parameter tensors a graph references: a weight and a bias per layer.
pub const MAX_PARAMS: usize = 2 * MAX_LAYERS;

/// Positions a convolution gathers into the scratch region per pass (its columns are
/// evaluated like [`COL_TILE`] vectors of a batch).
pub const COL_TILE: usize = 4;

/// The arena's regions, in 4-byte words.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Regions {
    /// Values of the time branch.
    pub time: usize,
    /// Values of the data branch, for one vector.
    pub data: usize,
    /// A convolution's gathered columns.
    pub scratch: usize,
}

impl Regions {
    /// Words of the whole arena for one vector.
    pub fn total(&self) -> usize {
        self.time + self.data + self.scratch
    }
}

/// Where a graph's records come from: bytes of a file, or the ScoreNet v1 rule (a version-1
/// file states only D, H, F and B; [`mlp::record`] generates its layers).
#[derive(Clone, Copy, Debug)]
enum Source<'a> {
    Bytes(&'a [u8]),
    Mlp(mlp::Dims),
}

/// One layer as the walkers see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Layer {
    /// What it computes.
    pub op: Op,
    /// Its output's shape.
    pub shape: Shape,
    /// Its output's branch (and so its region).
    pub branch: Branch,
    /// Its output's offset in its region (words); unused for the last layer (the output).
    pub offset: usize,
}

/// A validated layer graph.
#[derive(Clone, Copy, Debug)]
pub struct Graph<'a> {
    source: Source<'a>,
    layers: usize,
    input: Shape,
    regions: Regions,
    /// Layers 0..time_layers are the time branch.
    time_layers: usize,
    macs: u64,
    /// ScoreNet v1's sizes when the layers are exactly that network's ([`mlp::record`]).
    mlp: Option<mlp::Dims>,
}

/// The shape of a parameter tensor, for the checks: `(rows, cols)` of tensor `i`, `None` if `i`
/// is not a parameter tensor.
pub trait Tensors {
    /// Number of entries in the table.
    fn count(&self) -> usize;
    /// `(rows, cols)` of parameter tensor `i`; `None` if it is not a parameter tensor.
    fn param_shape(&self, i: usize) -> Option<(usize, usize)>;
}

impl<'a> Graph<'a> {
    /// Validates `records` (a whole number of [`op::RECORD_LEN`]-byte records) for a network
    /// whose input has shape `input`, with arena `regions` and the tensor table `tensors`.
    pub fn new(
        records: &'a [u8],
        input: Shape,
        regions: Regions,
        tensors: &impl Tensors,
    ) -> Result<Self, GraphError> {
        if records.len() % RECORD_LEN != 0 {
            return Err(GraphError::LayerCount { found: records.len() / RECORD_LEN });
        }
        Self::check(Source::Bytes(records), records.len() / RECORD_LEN, input, regions, tensors)
    }

    /// The ScoreNet v1 MLP of a version-1 file ([`mlp`]), validated like any graph.
    pub fn mlp(dims: mlp::Dims, tensors: &impl Tensors) -> Result<Self, GraphError> {
        let input = Shape { channels: dims.dim, length: 1 };
        Self::check(Source::Mlp(dims), mlp::layer_count(&dims), input, mlp::regions(&dims), tensors)
    }

    fn record(source: &Source<'_>, i: usize) -> [u8; RECORD_LEN] {
        match source {
            Source::Bytes(b) => {
                let mut r = [0u8; RECORD_LEN];
                if let Some(s) = b.get(i * RECORD_LEN..(i + 1) * RECORD_LEN) {
                    r.copy_from_slice(s);
                }
                r
            }
            Source::Mlp(d) => mlp::record(d, i),
        }
    }

    fn check(
        source: Source<'a>,
        layers: usize,
        input: Shape,
        regions: Regions,
        tensors: &impl Tensors,
    ) -> Result<Self, GraphError> {
        if layers == 0 || layers > MAX_LAYERS {
            return Err(GraphError::LayerCount { found: layers });
        }
        let rec = |i: usize| Self::record(&source, i);
        // Pass 1: ops, shapes, branches, tensor references, MACs.
        let mut used = [0u32; MAX_PARAMS.div_ceil(32) + 1];
        let mut time_layers: Option<usize> = None; // set at the first data layer
        let mut macs: u64 = 0;
        let mut scratch = 0usize;
        // `last[v]`: the last layer that reads value v.
        let mut last = [0u16; MAX_LAYERS + 1];
        let mut read = [false; MAX_LAYERS + 1];
        for i in 0..layers {
            let r = rec(i);
            let op = Op::decode(&r, i)?;
            let stated = op::record_shape(&r);
            let first_data = time_layers;
            let value = |v: Value| -> Option<(Shape, Branch)> {
                let v = v as usize;
                if v == 0 {
                    return Some((input, Branch::Data));
                }
                if v > i {
                    return None;
                }
                let branch = match first_data {
                    Some(t) if v > t => Branch::Data,
                    _ => Branch::Time,
                };
                Some((op::record_shape(&rec(v - 1)), branch))
            };
            let tensor = |t: u16| -> op::TensorShape {
                let t = t as usize;
                let (w, b) = (t / 32, t % 32);
                if used.get(w).is_some_and(|u| u & (1 << b) != 0) {
                    return None;
                }
                tensors.param_shape(t)
            };
            let (shape, branch) = op::infer(&op, i, value, tensor)?;
            if shape != stated {
                return Err(GraphError::Shape { layer: i, what: "stated shape" });
            }
            if shape.channels == 0 || shape.channels > op::MAX_CHANNELS || shape.length > op::MAX_LENGTH {
                return Err(GraphError::Shape { layer: i, what: "size" });
            }
            if let Some((w, b)) = op.params() {
                if w == b {
                    return Err(GraphError::Tensor { layer: i, tensor: b });
                }
                for t in [w as usize, b as usize] {
                    if let Some(u) = used.get_mut(t / 32) {
                        *u |= 1 << (t % 32);
                    }
                }
            }
            match (branch, time_layers) {
                (Branch::Data, None) => time_layers = Some(i),
                (Branch::Time, Some(_)) => return Err(GraphError::TimeAfterData { layer: i }),
                _ => {}
            }
            // A multi-channel signal (C > 1, L > 1) is channel-major at the network's edges and
            // channels-last in the arena: only a convolution, which gathers its columns, reads
            // x, and the output is a convolution's, which scatters its tile.
            if input.channels > 1 && input.length > 1 {
                let reads_x = op
                    .inputs()
                    .iter()
                    .enumerate()
                    .any(|(w, v)| *v == Some(0) && !(w == 0 && matches!(op, Op::Conv1d { .. })));
                if reads_x || (i + 1 == layers && !matches!(op, Op::Conv1d { .. })) {
                    return Err(GraphError::Shape {
                        layer: i,
                        what: "layout: a multi-channel signal enters and leaves through convolutions",
                    });
                }
            }
            for v in op.inputs().into_iter().flatten() {
                // v ≤ i: infer resolved it.
                if let (Some(l), Some(rd)) = (last.get_mut(v as usize), read.get_mut(v as usize)) {
                    *l = i as u16;
                    *rd = true;
                }
            }
            let in_shape = match op.inputs()[0] {
                Some(v) => value(v).map(|(s, _)| s).unwrap_or(shape),
                None => shape,
            };
            // In u64 on every target: a layer may have more than 2³² MACs (1024 channels in and
            // out over 4096 samples), which a 32-bit usize would not hold, and a file must be
            // accepted or refused alike everywhere.
            let (out, cin) = (shape.len() as u64, in_shape.channels as u64);
            let m = match op {
                Op::Linear { .. } => (shape.channels as u64).checked_mul(cin),
                Op::Conv1d { kernel, .. } => out.checked_mul(cin).and_then(|v| v.checked_mul(kernel as u64)),
                _ => Some(0),
            };
            macs = m.and_then(|m| macs.checked_add(m)).ok_or(GraphError::Overflow { layer: i })?;
            if let Op::Conv1d { kernel, .. } = op {
                let mut need = COL_TILE * in_shape.channels * kernel;
                if i + 1 == layers && shape.channels > 1 && shape.length > 1 {
                    need += COL_TILE * shape.channels;
                }
                scratch = scratch.max(need);
            }
        }
        for t in 2..tensors.count() {
            if tensors.param_shape(t).is_some() && used.get(t / 32).is_some_and(|u| u & (1 << (t % 32)) == 0)
            {
                return Err(GraphError::UnusedTensor { tensor: t });
            }
        }
        let time_layers = time_layers.ok_or(GraphError::Output)?;
        let out = rec(layers - 1);
        if op::record_shape(&out) != input {
            return Err(GraphError::Output);
        }
        for (v, &r) in read.iter().enumerate().take(layers) {
            if !r {
                return Err(GraphError::UnusedValue { value: v });
            }
        }
        if regions.scratch != scratch {
            return Err(GraphError::Scratch { found: regions.scratch, needed: scratch });
        }
        // Pass 2: the arena. Value v = i + 1 of layer i < layers − 1.
        let region = |i: usize| if i < time_layers { regions.time } else { regions.data };
        // Saturating: on a 32-bit target an offset near 2³² plus a length would wrap (and
        // then pass the region check); saturated, it lies outside every region.
        let range = |i: usize| {
            let r = rec(i);
            let off = op::record_offset(&r) as usize;
            (off, off.saturating_add(op::record_shape(&r).len()))
        };
        for i in 0..layers - 1 {
            let (lo, hi) = range(i);
            if hi > region(i) || lo > hi {
                return Err(GraphError::ArenaOverflow { layer: i });
            }
        }
        if op::record_offset(&out) != 0 {
            return Err(GraphError::BadField { layer: layers - 1, field: "offset" });
        }
        for j in 1..layers - 1 {
            let (jlo, jhi) = range(j);
            let op_j = Op::decode(&rec(j), j)?;
            for i in 0..j {
                // Different regions never share words.
                if (i < time_layers) != (j < time_layers) {
                    continue;
                }
                let (ilo, ihi) = range(i);
                // Value i+1 is live over [i, last[i+1]]; value j+1 from j on.
                let last_i = last[i + 1] as usize;
                if last_i < j || ihi <= jlo || jhi <= ilo {
                    continue;
                }
                // The one allowed sharing: layer j consumes value i+1 (its last reader) in a
                // slot that may alias, and writes exactly over it.
                let inputs = op_j.inputs();
                let aliases = last_i == j
                    && (ilo, ihi) == (jlo, jhi)
                    && (0..2).any(|w| inputs[w] == Some((i + 1) as Value) && op_j.may_alias(w));
                if !aliases {
                    return Err(GraphError::ArenaOverlap { first: i, second: j });
                }
            }
        }
        // Each region is exactly as large as its values reach, and no larger than all of them
        // laid end to end (what the planner never exceeds): a file cannot ask for an arena its
        // layers do not use.
        let (mut ends, mut sums) = ([0usize; 2], [0usize; 2]);
        for i in 0..layers - 1 {
            let (lo, hi) = range(i);
            let r = usize::from(i >= time_layers);
            ends[r] = ends[r].max(hi);
            sums[r] = sums[r].saturating_add(hi - lo);
        }
        for (r, (name, stated)) in [("time", regions.time), ("data", regions.data)].into_iter().enumerate() {
            if stated != ends[r] || ends[r] > sums[r] {
                return Err(GraphError::ArenaSize { region: name, found: stated, needed: ends[r] });
            }
        }
        let mlp = match source {
            Source::Mlp(d) => Some(d),
            Source::Bytes(_) => mlp::recognize(layers, input, rec),
        };
        Ok(Self { source, layers, input, regions, time_layers, macs, mlp })
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers
    }

    /// Whether the graph has no layers (never, once validated).
    pub fn is_empty(&self) -> bool {
        self.layers == 0
    }

    /// Layer `i` (`i < len()`).
    pub fn layer(&self, i: usize) -> Layer {
        let r = Self::record(&self.source, i);
        // Validated by `Op::decode` when the graph was made: read without the checks; a
        // default keeps this total.
        let op = Op::read(&r).unwrap_or(Op::Silu { x: 0 });
        let branch = if i < self.time_layers { Branch::Time } else { Branch::Data };
        Layer { op, shape: op::record_shape(&r), branch, offset: op::record_offset(&r) as usize }
    }

    /// The layers in evaluation order.
    pub fn layers(&self) -> impl Iterator<Item = Layer> + '_ {
        (0..self.layers).map(|i| self.layer(i))
    }

    /// The shape of value `v` (0: the input; i + 1: layer i's output).
    pub fn value_shape(&self, v: Value) -> Shape {
        match v {
            0 => self.input,
            v => self.layer(v as usize - 1).shape,
        }
    }

    /// The input's (and output's) shape.
    pub fn input(&self) -> Shape {
        self.input
    }

    /// The arena's regions.
    pub fn regions(&self) -> Regions {
        self.regions
    }

    /// Layers `0..time_layers()` form the time branch.
    pub fn time_layers(&self) -> usize {
        self.time_layers
    }

    /// Multiply–accumulates of one evaluation (the time branch included).
    pub fn macs(&self) -> u64 {
        self.macs
    }

    /// The ScoreNet v1 sizes, if this graph is that network (a version-1 file, or a version-3
    /// file whose layers are exactly [`mlp::record`]'s): the integer path runs it.
    pub fn mlp_dims(&self) -> Option<mlp::Dims> {
        self.mlp
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tensor table for tests: tensors 0 and 1 are the normalisation, the rest parameters.
    pub struct Table<'t>(pub &'t [(usize, usize)]);

    impl Tensors for Table<'_> {
        fn count(&self) -> usize {
            self.0.len() + 2
        }
        fn param_shape(&self, i: usize) -> Option<(usize, usize)> {
            i.checked_sub(2).and_then(|j| self.0.get(j).copied())
        }
    }

    fn small() -> build::Plan {
        let mut b = build::Builder::new(Shape { channels: 1, length: 16 }, 2);
        let phi = b.time_features(8).unwrap();
        let temb = b.linear(phi, 6, None).unwrap();
        let x = b.conv1d(0, 6, 3, 1, 1, None).unwrap();
        let a = b.silu(x).unwrap();
        let u = b.channel_bias(a, temb).unwrap();
        let d = b.conv1d(u, 6, 3, 1, 2, None).unwrap();
        let up = b.upsample2(d).unwrap();
        let s = b.add(up, x).unwrap();
        b.conv1d(s, 1, 3, 1, 1, None).unwrap();
        b.finish().unwrap()
    }

    #[test]
    fn a_built_graph_validates() {
        let plan = small();
        let g = plan.graph().unwrap();
        assert_eq!(g.len(), 9);
        assert_eq!(g.time_layers(), 2);
        assert_eq!(g.layer(5).shape, Shape { channels: 6, length: 8 });
        assert_eq!(g.macs(), (6 * 8 + 16 * 6 * 3 + 8 * 6 * 6 * 3 + 16 * 6 * 3) as u64);
    }

    fn expect(records: &[u8], plan: &build::Plan, err: GraphError) {
        let t = Table(plan.tensors());
        assert_eq!(Graph::new(records, plan.input(), plan.regions(), &t).map(|_| ()), Err(err));
    }

    #[test]
    fn every_inconsistency_is_refused() {
        let plan = small();
        let good = plan.records().to_vec();
        let t = Table(plan.tensors());
        assert!(Graph::new(&good, plan.input(), plan.regions(), &t).is_ok());
        let patch = |i: usize, at: usize, bytes: &[u8]| {
            let mut r = good.clone();
            r[i * RECORD_LEN + at..i * RECORD_LEN + at + bytes.len()].copy_from_slice(bytes);
            r
        };
        // A forward reference (layer 2 reads layer 4's output).
        expect(&patch(2, 4, &5u16.to_le_bytes()), &plan, GraphError::Reference { layer: 2, value: 5 });
        // A stated shape that the rule does not give.
        expect(
            &patch(3, 12, &7u16.to_le_bytes()),
            &plan,
            GraphError::Shape { layer: 3, what: "stated shape" },
        );
        // A dangling tensor reference, and a tensor used twice.
        expect(&patch(1, 8, &99u16.to_le_bytes()), &plan, GraphError::Tensor { layer: 1, tensor: 99 });
        expect(&patch(2, 8, &2u16.to_le_bytes()), &plan, GraphError::Tensor { layer: 2, tensor: 2 });
        // An unknown op.
        expect(&patch(3, 0, &[42]), &plan, GraphError::UnknownOp { layer: 3, code: 42 });
        // Arena: outside the region, and two live values on the same words.
        expect(&patch(2, 16, &1000u32.to_le_bytes()), &plan, GraphError::ArenaOverflow { layer: 2 });
        let l2 = plan.graph().unwrap().layer(2).offset as u32;
        let l4 = plan.graph().unwrap().layer(4).offset;
        assert_ne!(l2 as usize, l4);
        expect(&patch(5, 16, &l2.to_le_bytes()), &plan, GraphError::ArenaOverlap { first: 2, second: 5 });
        // A time-branch layer after the data branch began.
        let mut b = build::Builder::new(Shape { channels: 2, length: 1 }, 2);
        let h = b.linear(0, 4, None).unwrap();
        let _ = b.time_features(4);
        let _ = h;
        assert!(matches!(
            b.finish(),
            Err(GraphError::TimeAfterData { .. }) | Err(GraphError::UnusedValue { .. })
        ));
        // Wrong scratch.
        let t = Table(plan.tensors());
        let mut regions = plan.regions();
        regions.scratch += 1;
        assert!(matches!(Graph::new(&good, plan.input(), regions, &t), Err(GraphError::Scratch { .. })));
        // Truncated records.
        assert!(matches!(
            Graph::new(&good[..good.len() - 1], plan.input(), plan.regions(), &t),
            Err(GraphError::LayerCount { .. })
        ));
    }

    #[test]
    fn an_unread_value_is_refused() {
        let mut b = build::Builder::new(Shape { channels: 2, length: 1 }, 2);
        let phi = b.time_features(4).unwrap();
        let _unused = b.linear(phi, 3, None).unwrap();
        b.linear(0, 2, None).unwrap();
        assert_eq!(b.finish().map(|_| ()), Err(GraphError::UnusedValue { value: 2 }));
    }
}
