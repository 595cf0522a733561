//! Writing a layer graph: [`Builder`] appends layers (each checked by the op's shape rule as it
//! is added), assigns parameter tensors in order, and [`Builder::finish`] plans the arena and
//! returns a [`Plan`]: the records a `.tsm` file stores, validated by [`Graph::new`] like any
//! file's. The converter and the trainer build their graphs here, so the file, the trainer's
//! flat parameter vector and the engine agree on one layer list.
//!
//! Arena planning (offline, as TensorFlow Lite Micro's greedy planner): each value lives from
//! the layer that writes it to the last layer that reads it. An element-wise layer (and a
//! Linear or Conv1d for its residual) writes over an input that dies there; the rest get
//! slots placed greedily, largest first, at the lowest offset that no slot live at the same
//! time occupies. The time and data branches are planned in their own regions.

use heapless::Vec;

use super::op::{self, Branch, Op, Shape, Value, RECORD_LEN};
use super::{Graph, GraphError, Regions, Tensors, COL_TILE, MAX_LAYERS, MAX_PARAMS};

/// A graph being written.
#[derive(Clone, Debug)]
pub struct Builder {
    input: Shape,
    first_tensor: u16,
    layers: Vec<(Op, Shape, Branch), MAX_LAYERS>,
    /// (rows, cols) of parameter tensor `first_tensor + i`.
    tensors: Vec<(usize, usize), MAX_PARAMS>,
    error: Option<GraphError>,
}

/// A finished graph: its records with planned offsets, its regions and its parameter tensors.
#[derive(Clone, Debug)]
pub struct Plan {
    input: Shape,
    first_tensor: u16,
    records: Vec<u8, { RECORD_LEN * MAX_LAYERS }>,
    tensors: Vec<(usize, usize), MAX_PARAMS>,
    regions: Regions,
}

impl Builder {
    /// A graph on an input of `input` shape whose parameter tensors start at index
    /// `first_tensor` of the file's table (2: after the normalisation's mean and std).
    pub fn new(input: Shape, first_tensor: u16) -> Self {
        Self { input, first_tensor, layers: Vec::new(), tensors: Vec::new(), error: None }
    }

    fn value(&self, v: Value) -> Option<(Shape, Branch)> {
        match v {
            0 => Some((self.input, Branch::Data)),
            v => self.layers.get(v as usize - 1).map(|&(_, s, b)| (s, b)),
        }
    }

    /// Appends `op`; `params` are the (rows, cols) of its weight (the bias is (rows, 1)).
    fn push(
        &mut self,
        op: impl FnOnce(u16, u16) -> Op,
        params: Option<(usize, usize)>,
    ) -> Result<Value, GraphError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let layer = self.layers.len();
        let next = self.first_tensor as usize + self.tensors.len();
        let (w, b) = (next as u16, next as u16 + 1);
        if let Some((rows, cols)) = params {
            if self.tensors.push((rows, cols)).is_err() || self.tensors.push((rows, 1)).is_err() {
                return Err(self.fail(GraphError::LayerCount { found: layer + 1 }));
            }
        }
        let op = op(w, b);
        let first = self.first_tensor as usize;
        let tensors = &self.tensors;
        let tensor = |t: u16| (t as usize).checked_sub(first).and_then(|i| tensors.get(i)).copied();
        let inferred = op::infer(&op, layer, |v| self.value(v), tensor);
        let (shape, branch) = match inferred {
            Ok(sb) => sb,
            Err(e) => return Err(self.fail(e)),
        };
        if self.layers.push((op, shape, branch)).is_err() {
            return Err(self.fail(GraphError::LayerCount { found: layer + 1 }));
        }
        Ok(layer as Value + 1)
    }

    fn fail(&mut self, e: GraphError) -> GraphError {
        self.error = Some(e);
        e
    }

    fn out_channels(&self, x: Value) -> usize {
        self.value(x).map(|(s, _)| s.channels).unwrap_or(0)
    }

    /// φ(t) with `freqs` features.
    pub fn time_features(&mut self, freqs: usize) -> Result<Value, GraphError> {
        self.push(|_, _| Op::TimeFeatures { freqs }, None)
    }

    /// y = res + W·x + b, W (`out`, C_in).
    pub fn linear(&mut self, x: Value, out: usize, res: Option<Value>) -> Result<Value, GraphError> {
        let cols = self.out_channels(x);
        self.push(|weight, bias| Op::Linear { x, res, weight, bias }, Some((out, cols)))
    }

    /// A 1-D convolution of x to `out` channels.
    pub fn conv1d(
        &mut self,
        x: Value,
        out: usize,
        kernel: usize,
        dilation: usize,
        stride: usize,
        res: Option<Value>,
    ) -> Result<Value, GraphError> {
        let cols = self.out_channels(x) * kernel;
        self.push(
            |weight, bias| Op::Conv1d { x, res, weight, bias, kernel, dilation, stride },
            Some((out, cols)),
        )
    }

    /// silu(x).
    pub fn silu(&mut self, x: Value) -> Result<Value, GraphError> {
        self.push(|_, _| Op::Silu { x }, None)
    }

    /// a + b.
    pub fn add(&mut self, a: Value, b: Value) -> Result<Value, GraphError> {
        self.push(|_, _| Op::Add { a, b }, None)
    }

    /// x + v per channel (v a time-branch vector).
    pub fn channel_bias(&mut self, x: Value, v: Value) -> Result<Value, GraphError> {
        self.push(|_, _| Op::ChannelBias { x, v }, None)
    }

    /// 2× nearest upsampling.
    pub fn upsample2(&mut self, x: Value) -> Result<Value, GraphError> {
        self.push(|_, _| Op::Upsample2 { x }, None)
    }

    /// Plans the arena and validates the result; the last layer is the output.
    pub fn finish(self) -> Result<Plan, GraphError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let n = self.layers.len();
        if n == 0 {
            return Err(GraphError::LayerCount { found: 0 });
        }
        let mut offsets = [0usize; MAX_LAYERS];
        let time = plan_region(&self.layers, Branch::Time, &mut offsets);
        let data = plan_region(&self.layers, Branch::Data, &mut offsets);
        let mut records = Vec::new();
        for (i, &(op, shape, _)) in self.layers.iter().enumerate() {
            let off = if i + 1 == n { 0 } else { offsets[i] };
            let r = op.encode(shape, off as u32);
            records.extend_from_slice(&r).map_err(|_| GraphError::LayerCount { found: n })?;
        }
        let regions = Regions { time, data, scratch: scratch_words(&self.layers, self.input) };
        let plan = Plan {
            input: self.input,
            first_tensor: self.first_tensor,
            records,
            tensors: self.tensors,
            regions,
        };
        plan.graph()?;
        Ok(plan)
    }
}

/// The scratch the layers need: [`COL_TILE`] gathered columns of the widest convolution, and a
/// tile of the output when the last layer is a convolution whose output must be transposed to
/// channel-major.
fn scratch_words(layers: &[(Op, Shape, Branch)], input: Shape) -> usize {
    let mut need = 0;
    for (i, (op, shape, _)) in layers.iter().enumerate() {
        if let Op::Conv1d { x, kernel, .. } = *op {
            let c_in = match x {
                0 => input.channels,
                v => layers.get(v as usize - 1).map_or(0, |l| l.1.channels),
            };
            let mut n = COL_TILE * c_in * kernel;
            if i + 1 == layers.len() && shape.channels > 1 && shape.length > 1 {
                n += COL_TILE * shape.channels;
            }
            need = need.max(n);
        }
    }
    need
}

/// Plans the values of `branch` (all but the last layer's) into `offsets`; returns the
/// region's size in words.
fn plan_region(layers: &[(Op, Shape, Branch)], branch: Branch, offsets: &mut [usize; MAX_LAYERS]) -> usize {
    let n = layers.len();
    // last[v]: the last layer reading value v.
    let mut last = [0usize; MAX_LAYERS + 1];
    for (i, (op, _, _)) in layers.iter().enumerate() {
        for v in op.inputs().into_iter().flatten() {
            last[v as usize] = i;
        }
    }
    // slot[i]: the layer whose storage layer i's output takes (itself, or an aliased input's).
    let mut slot = [usize::MAX; MAX_LAYERS];
    // end[s]: the last layer at which slot s (named by its first layer) is live.
    let mut end = [0usize; MAX_LAYERS];
    for i in 0..n.saturating_sub(1) {
        let (op, shape, b) = layers[i];
        if b != branch {
            continue;
        }
        slot[i] = i;
        let inputs = op.inputs();
        for (w, v) in inputs.iter().enumerate() {
            let Some(v) = *v else { continue };
            let v = v as usize;
            // The input must be an arena value of this branch, die here, have the same size,
            // and not be read by this layer through another slot.
            if v == 0 || !op.may_alias(w) || last[v] != i {
                continue;
            }
            let (_, vs, vb) = layers[v - 1];
            let other = inputs[1 - w];
            if vb != branch || vs.len() != shape.len() || (other == Some(v as Value) && !op.may_alias(1 - w))
            {
                continue;
            }
            slot[i] = slot[v - 1];
            break;
        }
        let s = slot[i];
        end[s] = end[s].max(last[i + 1]);
    }
    // The slots (a slot's values all have the same length) with their live ranges.
    let mut slots: Vec<Slot, MAX_LAYERS> = Vec::new();
    let mut index = [0usize; MAX_LAYERS];
    for (i, &s) in slot.iter().enumerate().take(n.saturating_sub(1)) {
        if s == i {
            index[i] = slots.len();
            let _ = slots.push(Slot { start: i, end: end[i], len: layers[i].1.len() });
        }
    }
    let mut base = [0usize; MAX_LAYERS];
    let size = place(&slots, &mut base);
    for (i, layer) in layers.iter().enumerate().take(n.saturating_sub(1)) {
        if layer.2 == branch {
            offsets[i] = base[index[slot[i]]];
        }
    }
    size
}

/// A value (or values sharing words) to place in a region: `len` words, live from layer
/// `start` to layer `end`, both included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Slot {
    /// The layer that writes it first.
    pub start: usize,
    /// The last layer that reads it.
    pub end: usize,
    /// Its words.
    pub len: usize,
}

/// The arena planner's placement (TensorFlow Lite Micro's greedy order): the slots largest
/// first (equal sizes in the order given), each at the lowest offset that no slot live at the
/// same time occupies; `base[i]` gets slot i's offset. Returns the region's size. The f32
/// walk's regions ([`Builder::finish`]) and the integer plan's byte layout of a convolutional
/// network (`quant::plan`) are both placed here.
pub(crate) fn place(slots: &[Slot], base: &mut [usize]) -> usize {
    let slots = &slots[..slots.len().min(base.len()).min(MAX_LAYERS)];
    // Largest first, then in the order given (a total order: any sort gives it). An insertion
    // sort: a few hundred slots at most, and the firmware links no general sort for it (the
    // integer plan places its values when a model is loaded).
    let mut order: Vec<u16, MAX_LAYERS> = Vec::new();
    for i in 0..slots.len() {
        let _ = order.push(i as u16);
        let mut j = order.len() - 1;
        while j > 0 && slots[order[j - 1] as usize].len < slots[i].len {
            order.swap(j - 1, j);
            j -= 1;
        }
    }
    let live = |a: &Slot, b: &Slot| !(a.end < b.start || b.end < a.start);
    let mut placed: Vec<u16, MAX_LAYERS> = Vec::new();
    let mut size = 0;
    for &s in &order {
        let this = slots[s as usize];
        let len = this.len;
        // Candidate offsets: 0 and the end of every placed slot live at the same time.
        let mut best = usize::MAX;
        let others = || placed.iter().map(|&t| t as usize).filter(|&t| live(&slots[t], &this));
        let candidates = core::iter::once(0).chain(others().map(|t| base[t] + slots[t].len));
        for off in candidates {
            let clash = others().any(|t| off < base[t] + slots[t].len && base[t] < off + len);
            if !clash && off < best {
                best = off;
            }
        }
        base[s as usize] = best;
        size = size.max(best + len);
        let _ = placed.push(s);
    }
    size
}

impl Plan {
    /// The records, [`RECORD_LEN`] bytes per layer, as a file stores them.
    pub fn records(&self) -> &[u8] {
        &self.records
    }

    /// The input's shape.
    pub fn input(&self) -> Shape {
        self.input
    }

    /// The arena's regions.
    pub fn regions(&self) -> Regions {
        self.regions
    }

    /// (rows, cols) of the parameter tensors, in table order from [`Plan::first_tensor`]: each
    /// Linear or Conv1d layer's weight, then its bias, in layer order.
    pub fn tensors(&self) -> &[(usize, usize)] {
        &self.tensors
    }

    /// The table index of the first parameter tensor.
    pub fn first_tensor(&self) -> u16 {
        self.first_tensor
    }

    /// Total number of parameters.
    pub fn param_count(&self) -> usize {
        self.tensors.iter().map(|(r, c)| r * c).sum()
    }

    /// The graph, validated.
    pub fn graph(&self) -> Result<Graph<'_>, GraphError> {
        Graph::new(&self.records, self.input, self.regions, self)
    }
}

impl Tensors for Plan {
    fn count(&self) -> usize {
        self.first_tensor as usize + self.tensors.len()
    }

    fn param_shape(&self, i: usize) -> Option<(usize, usize)> {
        i.checked_sub(self.first_tensor as usize).and_then(|j| self.tensors.get(j)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_wise_layers_reuse_their_input() {
        let mut b = Builder::new(Shape { channels: 4, length: 1 }, 2);
        let phi = b.time_features(8).unwrap();
        let t = b.linear(phi, 8, None).unwrap();
        let h = b.linear(0, 8, None).unwrap();
        let a = b.silu(h).unwrap(); // h lives on (read below): a new slot
        let u = b.linear(a, 8, None).unwrap();
        let u = b.channel_bias(u, t).unwrap(); // in place
        let a2 = b.silu(u).unwrap(); // in place
        let h2 = b.linear(a2, 8, Some(h)).unwrap(); // over h
        let o = b.silu(h2).unwrap();
        b.linear(o, 4, None).unwrap();
        let plan = b.finish().unwrap();
        let g = plan.graph().unwrap();
        let off = |v: usize| g.layer(v).offset;
        assert_eq!(off(5), off(4)); // chan_bias over u
        assert_eq!(off(6), off(5)); // silu over u
        assert_eq!(off(7), off(2)); // h2 over h
                                    // Data: h, a, u live at once; a dies into u's layer, so 3 vectors of 8.
        assert_eq!(plan.regions().data, 24);
        assert_eq!(plan.regions().time, 16);
    }
}
