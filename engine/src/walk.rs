//! The f32 walk of a layer graph: every layer of a validated [`Graph`] in order, for one
//! vector or for `k` vectors at the same t (the time branch once for all of them). This is the
//! engine's one f32 evaluation of every network (f32, f16 and w8 weights): ScoreNet v1 files
//! and conv graphs alike; the summation order of every dot product is [`crate::linalg::dot`]'s,
//! whatever kernel runs it, so the bits are the same on every target.
//!
//! Arena layout for `k` vectors: `[time | data × k | scratch]`, in words. A data value at
//! region offset `o` with `n` scalars has its `k` copies at `time + k·o .. time + k·(o + n)`,
//! vector `i`'s at `time + k·o + i·n`: scaling every offset by `k` keeps the planned regions
//! disjoint, and a layer's copies are one contiguous block, so a dense layer multiplies its
//! weights with several vectors at once ([`MatVec::matmul_acc_with`]).
//!
//! The input x (value 0) and the output ε̂ are the caller's, `k` vectors of D values each,
//! channel-major. Arena values are channels-last; a graph whose input has C > 1 channels and
//! L > 1 samples reads x only through convolutions (which gather) and ends with a convolution
//! (which scatters its output tile): [`Graph::new`] checks it.

use core::ops::Range;

use crate::format::Model;
#[cfg(feature = "conv")]
use crate::format::Tensor;
use crate::graph::{Branch, Graph, Layer, Op};
#[cfg(feature = "conv")]
use crate::graph::{Shape, COL_TILE};
use crate::kernels::Kernels;
use crate::linalg::MatVec;

/// What a walk needs besides the buffers: the graph, the file's tensors (indexed as the graph's
/// references), the kernels, and the time features' frequencies ω_k.
#[derive(Clone, Copy)]
pub struct Walk<'g, 'a> {
    /// The validated graph.
    pub graph: &'g Graph<'a>,
    /// The model (its tensor table).
    pub model: &'g Model<'a>,
    /// The kernels (every choice gives the same bits).
    pub kernels: Kernels,
    /// ω_k of φ(t), k < F/2.
    pub freqs: &'g [f32],
}

/// Words of arena a walk of `k` vectors needs.
pub fn arena_len(graph: &Graph<'_>, k: usize) -> usize {
    let r = graph.regions();
    r.time + k * r.data + r.scratch
}

impl Walk<'_, '_> {
    /// ε̂ for `k` vectors (`xs`: k·D, `outs`: k·D) at time `t`, with `arena` of at least
    /// [`arena_len`]`(k)` words; `observe(layer, values)` sees every layer's output (`k` copies,
    /// value-major) as it is made.
    pub fn run(
        &self,
        xs: &[f32],
        t: f32,
        outs: &mut [f32],
        k: usize,
        arena: &mut [f32],
        observe: &mut impl FnMut(usize, &[f32]),
    ) {
        self.run_range(0..self.graph.len(), xs, t, outs, k, arena, observe)
    }

    /// [`Walk::run`] of layers `layers` only (e.g. the time branch, `0..time_layers()`).
    #[allow(clippy::too_many_arguments)]
    pub fn run_range(
        &self,
        layers: Range<usize>,
        xs: &[f32],
        t: f32,
        outs: &mut [f32],
        k: usize,
        arena: &mut [f32],
        observe: &mut impl FnMut(usize, &[f32]),
    ) {
        let g = self.graph;
        let n = g.len();
        let regions = g.regions();
        let time = regions.time;
        let (values, scratch) = arena.split_at_mut(time + k * regions.data);
        let scratch = &mut scratch[..regions.scratch];
        for i in layers {
            let layer = g.layer(i);
            let last = i + 1 == n;
            let out_range = self.range(&layer, k);
            let copies = if layer.branch == Branch::Time { 1 } else { k };
            if last {
                let all = Rest { head: values, tail: &[], start: usize::MAX };
                self.layer(&layer, xs, &all, None, outs, copies, t, scratch, true);
                observe(i, outs);
            } else {
                // Take the output block out of the arena; inputs are read from the rest (or
                // from the output block itself when the layer writes over its input).
                let (head, tail) = values.split_at_mut(out_range.start);
                let (out, tail) = tail.split_at_mut(out_range.len());
                let rest = Rest { head, tail, start: out_range.end };
                self.layer(&layer, xs, &rest, Some(out_range.start), out, copies, t, scratch, false);
                observe(i, out);
            }
        }
    }

    /// The arena range of layer `l`'s output for `k` vectors (in `[time | data × k]`).
    fn range(&self, l: &Layer, k: usize) -> Range<usize> {
        let len = l.shape.len();
        match l.branch {
            Branch::Time => l.offset..l.offset + len,
            Branch::Data => {
                let s = self.graph.regions().time + k * l.offset;
                s..s + k * len
            }
        }
    }
}

/// The arena without one layer's output block: the words before it (`head`) and after it
/// (`tail`, starting at word `start`).
struct Rest<'r> {
    head: &'r [f32],
    tail: &'r [f32],
    start: usize,
}

impl Rest<'_> {
    /// Words `r` of the arena, if they do not meet the output block (a layer's input).
    fn get(&self, r: Range<usize>) -> Option<&[f32]> {
        if r.end <= self.head.len() {
            self.head.get(r)
        } else if r.start >= self.start {
            self.tail.get(r.start - self.start..r.end - self.start)
        } else {
            None
        }
    }
}

impl Walk<'_, '_> {
    /// Evaluates one layer into `out` (`copies` value-major copies). `out_at`: the output
    /// block's arena start (`None` for the network's output), to recognise an input that is the
    /// output block itself (the layer writes over it).
    #[allow(clippy::too_many_arguments)]
    fn layer(
        &self,
        layer: &Layer,
        xs: &[f32],
        arena: &Rest<'_>,
        out_at: Option<usize>,
        out: &mut [f32],
        copies: usize,
        t: f32,
        scratch: &mut [f32],
        is_output: bool,
    ) {
        let g = self.graph;
        let k = if layer.branch == Branch::Data { copies } else { 1 };
        // Input value v: its block, or `None` when it is the output block (in place).
        let input = |v: u16| -> Option<&[f32]> {
            if v == 0 {
                return Some(&xs[..copies * g.input().len()]);
            }
            let l = g.layer(v as usize - 1);
            let r = self.range(&l, k);
            if Some(r.start) == out_at {
                return None;
            }
            arena.get(r)
        };
        let shape_of = |v: u16| g.value_shape(v);
        match layer.op {
            Op::TimeFeatures { .. } => crate::net::time_features_from(self.freqs, t, out),
            Op::Linear { x, res, weight, bias } => {
                let (w, b) = (self.model.tensor_at(weight as usize), self.model.tensor_at(bias as usize));
                init(out, res.map(&input));
                let (n_in, n_out) = (shape_of(x).channels, layer.shape.channels);
                let xin = input(x).unwrap_or(&[]);
                if copies == 1 || cfg!(tinyscore_small) {
                    for (x, o) in xin.chunks_exact(n_in).zip(out.chunks_exact_mut(n_out)) {
                        w.matvec_acc_with(self.kernels, x, o);
                    }
                } else {
                    w.matmul_acc_with(self.kernels, xin, n_in, out, n_out, copies);
                }
                for o in out.chunks_exact_mut(n_out) {
                    b.add_to(o);
                }
            }
            #[cfg(feature = "conv")]
            Op::Conv1d { x, res, weight, bias, kernel, dilation, stride } => {
                let (w, b) = (self.model.tensor_at(weight as usize), self.model.tensor_at(bias as usize));
                let xs_in = input(x).unwrap_or(&[]);
                let res_in = res.map(&input);
                let conv = Conv {
                    w: &w,
                    b: &b,
                    kernels: self.kernels,
                    input: shape_of(x),
                    input_cm: x == 0,
                    output: layer.shape,
                    output_cm: is_output,
                    kernel,
                    dilation,
                    stride,
                };
                for i in 0..copies {
                    let (il, ol) = (conv.input.len(), conv.output.len());
                    let xi = &xs_in[i * il..(i + 1) * il];
                    let oi = &mut out[i * ol..(i + 1) * ol];
                    let ri = res_in.map(|r| r.map(|r| &r[i * ol..(i + 1) * ol]));
                    conv.run(xi, ri, oi, scratch);
                }
            }
            Op::Silu { x } => match input(x) {
                Some(v) => crate::vmath::silu_into_with(self.kernels, v, out),
                None => silu_in_place(self.kernels, out),
            },
            Op::Add { a, b } => {
                let (va, vb) = (input(a), input(b));
                match (va, vb) {
                    (Some(va), Some(vb)) => {
                        for ((o, &p), &q) in out.iter_mut().zip(va).zip(vb) {
                            *o = p + q;
                        }
                    }
                    (None, Some(v)) | (Some(v), None) => {
                        // out holds the other addend; p + q = q + p in IEEE arithmetic.
                        for (o, &q) in out.iter_mut().zip(v) {
                            *o += q;
                        }
                    }
                    (None, None) => {
                        for o in out.iter_mut() {
                            *o += *o;
                        }
                    }
                }
            }
            // Refused by `ScoreNet::new` in a build without them.
            #[cfg(not(feature = "conv"))]
            Op::Conv1d { .. } | Op::Upsample2 { .. } => {
                let _ = (scratch, is_output);
            }
            Op::ChannelBias { x, v } => {
                let c = layer.shape.channels;
                if let Some(xv) = input(x) {
                    out.copy_from_slice(&xv[..out.len()]);
                }
                let bias = input(v).unwrap_or(&[]);
                for row in out.chunks_exact_mut(c) {
                    for (o, &bv) in row.iter_mut().zip(bias) {
                        *o += bv;
                    }
                }
            }
            #[cfg(feature = "conv")]
            Op::Upsample2 { x } => {
                let c = layer.shape.channels;
                let xin = input(x).unwrap_or(&[]);
                for (l2, row) in out.chunks_exact_mut(c).enumerate() {
                    // Copies are value-major: position l2 of the output block, vector and
                    // position alike, reads row l2/2 of the input block.
                    row.copy_from_slice(&xin[(l2 / 2) * c..(l2 / 2) * c + c]);
                }
            }
        }
    }
}

/// `outs[i·so + r] += W·xs[i·sx..]` for `n` vectors: blocked ([`MatVec::matmul_acc_with`]), or
/// one at a time in a build for size; the same bits.
#[cfg(feature = "conv")]
fn mul(w: &Tensor<'_>, k: Kernels, xs: &[f32], sx: usize, outs: &mut [f32], so: usize, n: usize) {
    if cfg!(tinyscore_small) {
        for i in 0..n {
            w.matvec_acc_with(k, &xs[i * sx..i * sx + sx], &mut outs[i * so..i * so + so]);
        }
    } else {
        w.matmul_acc_with(k, xs, sx, outs, so, n);
    }
}

/// `out` = the residual (`Some(Some(r))`), unchanged when the residual is `out` itself
/// (`Some(None)`: written over in place), or zero (`None`).
fn init(out: &mut [f32], res: Option<Option<&[f32]>>) {
    match res {
        Some(Some(r)) => out.copy_from_slice(&r[..out.len()]),
        Some(None) => {}
        None => out.fill(0.0),
    }
}

/// silu over `v` in place, the bits of [`crate::vmath::silu_into`] (element by element the
/// same operations, eight lanes at a time: a small copy keeps the stack frame small).
fn silu_in_place(k: Kernels, v: &mut [f32]) {
    // Eight lanes on a Cortex-M (its stack is small), eight times that elsewhere (a call per
    // chunk to the AVX2 build of the SiLU).
    const CHUNK: usize =
        if cfg!(target_arch = "arm") { crate::vmath::LANES } else { 8 * crate::vmath::LANES };
    let mut tmp = [0.0f32; CHUNK];
    for chunk in v.chunks_mut(CHUNK) {
        let n = chunk.len();
        tmp[..n].copy_from_slice(chunk);
        crate::vmath::silu_into_with(k, &tmp[..n], chunk);
    }
}

#[cfg(feature = "conv")]
/// One convolution layer (`docs/scorenet.md`): y\[l, co\] = (res\[l, co\] + Σ_j W\[co, j\]·col_l\[j\])
/// plus b\[co\], where col_l\[ci·K + kk\] = x\[s·l + kk·d − p, ci\] (0 outside), the sum in the
/// order of [`crate::linalg::dot`] over j. Columns are gathered [`COL_TILE`] positions at a time into
/// the scratch region and multiplied like a batch of vectors.
struct Conv<'t, 'a> {
    w: &'t Tensor<'a>,
    b: &'t Tensor<'a>,
    kernels: Kernels,
    input: Shape,
    /// The input is channel-major (the network's x).
    input_cm: bool,
    output: Shape,
    /// The output is channel-major (the network's ε̂).
    output_cm: bool,
    kernel: usize,
    dilation: usize,
    stride: usize,
}

#[cfg(feature = "conv")]
impl Conv<'_, '_> {
    /// One vector: `x` the input, `res` the residual (see [`init`]), `out` the output.
    fn run(&self, x: &[f32], res: Option<Option<&[f32]>>, out: &mut [f32], scratch: &mut [f32]) {
        let (c_in, l_in) = (self.input.channels, self.input.length);
        let (c_out, l_out) = (self.output.channels, self.output.length);
        let ck = c_in * self.kernel;
        let pad = self.dilation * (self.kernel - 1) / 2;
        // A channel-major output with several channels and positions goes through a tile.
        let tiled = self.output_cm && c_out > 1 && l_out > 1;
        let (cols, tile) = scratch.split_at_mut(COL_TILE * ck);
        let x_at = |c: usize, l: usize| if self.input_cm { x[c * l_in + l] } else { x[l * c_in + c] };
        if !tiled {
            init(out, res);
        }
        let span = self.dilation * (self.kernel - 1);
        // Taps of the next position that are this position's taps `shift` further on (stride a
        // multiple of the dilation); usize::MAX where none are.
        let shift = match self.stride.checked_rem(self.dilation) {
            Some(0) if self.stride / self.dilation < self.kernel => self.stride / self.dilation,
            _ => usize::MAX,
        };
        // Where in `cols` the previous position's column is, when it was gathered whole from
        // inside a channels-last input (the same values, shifted, start the next column).
        let mut prev: Option<usize> = None;
        let mut l0 = 0;
        while l0 < l_out {
            let n = COL_TILE.min(l_out - l0);
            // col_j[ci·K + kk] = x[s·(l0 + j) + kk·d − p, ci]                       (n, C_in·K)
            // Three ways to the same values: from the previous column shifted by `shift` taps
            // and the new taps; every tap from a contiguous row of C_in values; one value at
            // a time with the bounds tested (the borders, a channel-major input).
            for j in 0..n {
                let centre = self.stride * (l0 + j);
                let inside = !self.input_cm && centre >= pad && centre - pad + span < l_in;
                let at = j * ck;
                if inside {
                    // Taps 0..first come from the previous column, moved; the rest from rows.
                    let first = match prev {
                        Some(from) if shift != usize::MAX => {
                            cols.copy_within(from + shift..from + ck, at);
                            self.kernel - shift
                        }
                        _ => 0,
                    };
                    let col = &mut cols[at..at + ck];
                    for kk in first..self.kernel {
                        let pos = centre - pad + kk * self.dilation;
                        let src = &x[pos * c_in..(pos + 1) * c_in];
                        for (ci, &v) in src.iter().enumerate() {
                            col[ci * self.kernel + kk] = v;
                        }
                    }
                } else {
                    let col = &mut cols[at..at + ck];
                    for ci in 0..c_in {
                        for kk in 0..self.kernel {
                            let pos = (centre + kk * self.dilation).wrapping_sub(pad);
                            col[ci * self.kernel + kk] = if pos < l_in { x_at(ci, pos) } else { 0.0 };
                        }
                    }
                }
                prev = inside.then_some(at);
            }
            if tiled {
                // tile = res (or 0) + W·col + b, then scattered to channel-major.
                let t = &mut tile[..n * c_out];
                match res {
                    Some(Some(r)) => {
                        for (j, row) in t.chunks_exact_mut(c_out).enumerate() {
                            row.copy_from_slice(&r[(l0 + j) * c_out..(l0 + j + 1) * c_out]);
                        }
                    }
                    _ => t.fill(0.0),
                }
                mul(self.w, self.kernels, &cols[..n * ck], ck, t, c_out, n);
                for (j, row) in t.chunks_exact_mut(c_out).enumerate() {
                    self.b.add_to(row);
                    for (co, &v) in row.iter().enumerate() {
                        out[co * l_out + l0 + j] = v;
                    }
                }
            } else {
                let o = &mut out[l0 * c_out..(l0 + n) * c_out];
                mul(self.w, self.kernels, &cols[..n * ck], ck, o, c_out, n);
                for row in o.chunks_exact_mut(c_out) {
                    self.b.add_to(row);
                }
            }
            l0 += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Model;

    /// A convolution's gathered columns (from the previous column shifted, from contiguous
    /// rows, or one value at a time at the borders) give each output the bits of the engine's
    /// dot of the weights with the column built by the definition, plus the residual and bias:
    /// random shapes, strides, dilations, kernel sizes, both input layouts, both output layouts.
    #[cfg(feature = "conv")]
    #[test]
    fn a_convolution_gives_the_bits_of_its_definition() {
        use crate::format::{DType, Role, Tensor};
        use crate::linalg::{decode_f32, dot};
        let mut state = 0x853c_49e6_748f_ea9bu64;
        let mut next = move || {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as u32
        };
        for case in 0..300 {
            let c_in = 1 + (next() % 6) as usize;
            let c_out = 1 + (next() % 9) as usize;
            let kernel = [1, 3, 5, 7][(next() % 4) as usize];
            let dilation = 1 + (next() % 3) as usize;
            let stride = 1 + (next() % 2) as usize;
            let l_out = 1 + (next() % 13) as usize;
            let l_in = stride * l_out;
            let (input_cm, output_cm) = (case % 3 == 0, case % 4 == 0);
            let mut value = || (next() % 2001) as f32 / 1000.0 - 1.0;
            let ck = c_in * kernel;
            let w: std::vec::Vec<u8> = (0..c_out * ck).flat_map(|_| value().to_le_bytes()).collect();
            let b: std::vec::Vec<u8> = (0..c_out).flat_map(|_| value().to_le_bytes()).collect();
            let x: std::vec::Vec<f32> = (0..c_in * l_in).map(|_| value()).collect();
            let r: std::vec::Vec<f32> = (0..c_out * l_out).map(|_| value()).collect();
            let wt = Tensor::from_parts(Role::InputW, DType::F32, c_out, ck, &w, &[]);
            let bt = Tensor::from_parts(Role::InputB, DType::F32, c_out, 1, &b, &[]);
            let conv = Conv {
                w: &wt,
                b: &bt,
                kernels: Kernels::Portable,
                input: Shape { channels: c_in, length: l_in },
                input_cm,
                output: Shape { channels: c_out, length: l_out },
                output_cm,
                kernel,
                dilation,
                stride,
            };
            let mut out = std::vec![0.0f32; c_out * l_out];
            let mut scratch = std::vec![0.0f32; COL_TILE * (ck + c_out)];
            let res = (case % 2 == 0).then_some(&r[..]);
            conv.run(&x, res.map(Some), &mut out, &mut scratch);
            let pad = dilation * (kernel - 1) / 2;
            for l in 0..l_out {
                let col: std::vec::Vec<f32> = (0..ck)
                    .map(|j| {
                        let (ci, kk) = (j / kernel, j % kernel);
                        let pos = (stride * l + kk * dilation).wrapping_sub(pad);
                        match (pos < l_in, input_cm) {
                            (false, _) => 0.0,
                            (true, true) => x[ci * l_in + pos],
                            (true, false) => x[pos * c_in + ci],
                        }
                    })
                    .collect();
                for co in 0..c_out {
                    let start = res.map_or(0.0, |r| r[l * c_out + co]);
                    let sum = start + dot::<4>(&w[4 * co * ck..4 * (co + 1) * ck], &col, decode_f32);
                    let want = sum + f32::from_le_bytes(b[4 * co..4 * co + 4].try_into().unwrap());
                    let got = if output_cm && c_out > 1 && l_out > 1 {
                        out[co * l_out + l]
                    } else {
                        out[l * c_out + co]
                    };
                    assert_eq!(got.to_bits(), want.to_bits(), "case {case} l {l} co {co}");
                }
            }
        }
    }

    /// k vectors at once give each vector the bits it gets alone.
    #[test]
    fn a_batch_walk_has_the_bits_of_single_walks() {
        let bytes = include_bytes!("../tests/data/tiny.tsm");
        let model = Model::parse(bytes).unwrap();
        let graph = *model.graph();
        let mut freqs = [0.0f32; 32];
        crate::net::frequencies(model.dims().freqs, &mut freqs);
        let walk = Walk { graph: &graph, model: &model, kernels: Kernels::Portable, freqs: &freqs };
        let k = 5;
        let mut arena = [0.0f32; 256];
        let xs: [f32; 10] = core::array::from_fn(|i| (i as f32 * 0.37).sin() * 2.0);
        for t in [0.0f32, 0.013, 0.5, 0.999, 1.0] {
            let mut batch = [0.0f32; 10];
            walk.run(&xs, t, &mut batch, k, &mut arena[..arena_len(&graph, k)], &mut |_, _| {});
            for i in 0..k {
                let mut one = [0.0f32; 2];
                walk.run(&xs[2 * i..2 * i + 2], t, &mut one, 1, &mut arena, &mut |_, _| {});
                for j in 0..2 {
                    assert_eq!(batch[2 * i + j].to_bits(), one[j].to_bits(), "t={t} vector {i}");
                }
            }
        }
    }
}
