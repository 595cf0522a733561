//! The integer path of a `w8a8` file (`docs/quantization.md`): the walk of the graph's integer
//! plan ([`Int8Plan`], resolved once when the network is made) for a tile of vectors. Each step
//! first forms all its dot products ([`int8_matmul`]), then its epilogue requantizes them, row by
//! row: the same exact integers for one vector or many, on every kernel.

use crate::format::{DType, Model, Role, Tensor};
use crate::kernels::Kernels;
use crate::limits;
#[cfg(target_arch = "aarch64")]
use crate::quant::neon;
#[cfg(target_arch = "x86_64")]
use crate::quant::x86;
use crate::quant::{
    self,
    plan::{Input, Kind, Step, MAX_STEPS},
    Int8Plan, TileEpilogue,
};

/// The integer path's activations of `T` vectors evaluated together.
#[derive(Clone, Debug)]
pub(super) struct Int8Bufs<const T: usize, const D: usize, const H: usize> {
    /// (T, D) the quantized inputs.
    x8: [[i8; D]; T],
    /// (T, H) the residual stream h_b in int16.
    h16: [[i16; H]; T],
    /// (T, H) a step's int8 input: silu(h_b), then silu(u_b).
    act: [[i8; H]; T],
    /// (T, H) a step's int32 dot products.
    acc: [[i32; H]; T],
    /// (H,) a step's time embedding in its accumulators' scale.
    tq: [i32; H],
}

impl<const T: usize, const D: usize, const H: usize> Int8Bufs<T, D, H> {
    /// The buffers a convolutional plan's walk borrows (`net/int8_conv.rs`): x8, the time
    /// embedding, and one position of a stream and a SiLU no later layer reads.
    pub(super) fn conv(&mut self) -> super::int8_conv::ConvBufs<'_> {
        super::int8_conv::ConvBufs {
            x8: self.x8.as_flattened_mut(),
            tq: &mut self.tq,
            sink16: self.h16.as_flattened_mut(),
            sink8: self.act.as_flattened_mut(),
        }
    }

    pub(super) const ZERO: Self =
        Self { x8: [[0; D]; T], h16: [[0; H]; T], act: [[0; H]; T], acc: [[0; H]; T], tq: [0; H] };
}

/// What the integer path computes from `t` alone, once per call of a batch for all its tiles:
/// every `Table` step's time embedding in its accumulators' scale and, where
/// [`quant::epilogue_tile`] runs (Cortex-M4/M7), each step's [`quant::LayerForm`].
/// `(B_max, H)` i32 on the stack.
#[derive(Clone, Debug)]
pub(super) struct Int8Consts<const H: usize> {
    /// (B, H) the time embedding of `Table` step `slot` ([`quantize_temb`]).
    tq: [[i32; H]; limits::MAX_BLOCKS],
    /// The forms of the steps, in plan order (`None`: found per call of the epilogue).
    forms: [Option<quant::LayerForm>; MAX_STEPS],
}

impl<const H: usize> Int8Consts<H> {
    pub(super) const ZERO: Self = Self { tq: [[0; H]; limits::MAX_BLOCKS], forms: [None; MAX_STEPS] };
}

/// The constants of time `t` in timestep group `group`: the integer path's view of the model.
pub(super) struct Params<'m, 'a> {
    m: &'m Model<'a>,
    group: usize,
    scales: Tensor<'a>,
    rq: Tensor<'a>,
    rq_bytes: &'a [u8],
    luts: &'a [u8],
}

impl<'m, 'a> Params<'m, 'a> {
    pub(super) fn new(m: &'m Model<'a>, t: f32) -> Self {
        let group = quant::time_group(t, m.groups());
        let rq = m.tensor(Role::ActRequant);
        Self {
            m,
            group,
            scales: m.tensor(Role::ActScales),
            rq_bytes: rq.row_bytes(group),
            rq,
            luts: m.tensor(Role::ActLut).row_bytes(group),
        }
    }

    /// Column `c` of `act.scales`.
    pub(super) fn scale(&self, c: usize) -> f32 {
        self.scales.get(self.group * self.scales.cols + c)
    }

    /// Column `c` of `act.requant`.
    pub(super) fn rq_at(&self, c: usize) -> i32 {
        self.rq.i32_at(self.group * self.rq.cols + c)
    }

    /// The (bias, multiplier, shift) triples of `step`'s rows.
    pub(super) fn triples(&self, step: &Step) -> &'a [u8] {
        &self.rq_bytes[4 * step.rq()..4 * (step.rq() + 3 * step.rows())]
    }

    /// SiLU table `k`.
    pub(super) fn table(&self, k: usize) -> &'a [u8] {
        &self.luts[256 * k..256 * k + 256]
    }

    /// `step`'s int8 weight.
    pub(super) fn weight(&self, step: &Step) -> Tensor<'a> {
        self.m.tensor_at(step.weight())
    }
}

/// The integer path for `n ≤ T` vectors (`xs`, `n·D` values) at time `t`, the graph's time
/// region `time` computed (the time embeddings): int8 weights × int8 activations with int32
/// accumulators, biases folded to int32, fixed-point requantization ([`quant::requantize`]), an
/// int16 residual stream, SiLU by table; f32 only at the boundaries (quantizing x, adding temb once
/// per row and step, scaling ε̂ out, into `outs`). The scales of timestep group
/// `time_group(t, G)` apply. `consts`: what [`int8_consts`] computed for `t`, if it did.
#[cfg_attr(not(target_arch = "arm"), inline(always))]
#[allow(clippy::too_many_arguments)]
pub(super) fn int8_layers<const T: usize, const D: usize, const H: usize>(
    m: &Model<'_>,
    plan: &Int8Plan,
    k: Kernels,
    time: &[f32],
    xs: &[f32],
    t: f32,
    outs: &mut [f32],
    n: usize,
    b: &mut Int8Bufs<T, D, H>,
    xp: &mut [u32],
    consts: Option<&Int8Consts<H>>,
) {
    let d = m.dim();
    let n = n.min(T);
    let p = Params::new(m, t);
    let (x8, h16, act, acc) = (&mut b.x8[..n], &mut b.h16[..n], &mut b.act[..n], &mut b.acc[..n]);
    let tq = &mut b.tq;

    // x8 = round(x / s_x)                                              (n, D) int8
    let s_x = p.scale(quant::layout::s_x());
    for (q, x) in x8.iter_mut().zip(xs.chunks_exact(d.max(1))) {
        for (q, &v) in q.iter_mut().zip(x) {
            *q = quant::quantize_i8(v, s_x);
        }
    }
    for (i, step) in plan.steps().iter().enumerate() {
        let w = p.weight(step);
        // acc = W · input                                              (n, rows) int32
        match step.input {
            Input::X => int8_matmul(k, &w, x8, acc, xp),
            Input::Act => int8_matmul(k, &w, act, acc, xp),
        }
        let (rows, cols) = (step.rows(), step.cols());
        let form = consts.and_then(|c| c.forms[i]);
        match step.kind {
            // h = requant(acc + b); act = silu(h) by table                (n, H) int16, int8
            Kind::ToI16 { lut } => {
                let e = TileEpilogue::ToI16 { out: h16, table: p.table(lut as usize), silu: act };
                epilogue(k, p.triples(step), acc, rows, cols, form, e);
            }
            // act = silu(u) by table, u = requant(acc + b + temb)          (n, H) int8
            Kind::Table { lut, slot, .. } => {
                let tq: &[i32] = match consts {
                    Some(c) => &c.tq[slot as usize][..rows],
                    None => {
                        quantize_temb(&p, step, time, &mut tq[..rows]);
                        &tq[..rows]
                    }
                };
                let e = TileEpilogue::Table { add: tq, table: p.table(lut as usize), out: act };
                epilogue(k, p.triples(step), acc, rows, cols, form, e);
            }
            // h = requant(h, s_h[b]/s_h[b+1]) + requant(acc + b)           (n, H) int16
            // act = silu(h) by table (the input of the next step)
            Kind::Residual { lut } => {
                let c = step.rq() + 3 * rows;
                let (mr, nr) = (p.rq_at(c), p.rq_at(c + 1) as u32);
                let e = TileEpilogue::Residual { mr, nr, h: h16, table: p.table(lut as usize), silu: act };
                epilogue(k, p.triples(step), acc, rows, cols, form, e);
            }
            // ε̂ = (acc + b) · s_w[r]·s_in                                  (n, D) f32
            Kind::Output => {
                let s_in = p.scale(step.in_scale());
                let rq = step.rq();
                for (eps, a) in outs.chunks_exact_mut(d.max(1)).zip(acc.iter()) {
                    for (r, o) in eps.iter_mut().enumerate() {
                        *o = (a[r] + p.rq_at(rq + r)) as f32 * (w.scale(r) * s_in);
                    }
                }
            }
        }
    }
}

/// Bound on an int8 layer's accumulators: |Σ w·x| ≤ cols·128·128 for int8 weights and
/// activations.
pub(super) fn acc_max(cols: usize) -> u32 {
    (cols as u32).saturating_mul(1 << 14)
}

/// A `Table` step's time embedding (its `chan_bias` input, in the arena's time region `time`)
/// in the scale of its accumulators, into `out` (`rows` values; zeros for a step without one).
pub(super) fn quantize_temb(p: &Params<'_, '_>, step: &Step, time: &[f32], out: &mut [i32]) {
    let Some(at) = step.kind.temb_at() else {
        out.fill(0);
        return;
    };
    let (at, s_in, w) = (at, p.scale(step.in_scale()) * step.in_factor(), p.weight(step));
    let te = &time[at..at + step.rows()];
    if w.dtype == DType::I8 {
        // The scales read in place, row by row: a loop the compiler vectorizes.
        for ((q, &te), s) in out.iter_mut().zip(te).zip(w.scale_bytes().chunks_exact(4)) {
            *q = quant::quantize_temb(te, f32::from_le_bytes([s[0], s[1], s[2], s[3]]) * s_in);
        }
    } else {
        for (r, (q, &te)) in out.iter_mut().zip(te).enumerate() {
            *q = quant::quantize_temb(te, w.scale(r) * s_in);
        }
    }
}

/// Fills `c` for time `t` (the time region `time` computed).
pub(super) fn int8_consts<'c, const H: usize>(
    m: &Model<'_>,
    plan: &Int8Plan,
    time: &[f32],
    t: f32,
    c: &'c mut Int8Consts<H>,
) -> &'c Int8Consts<H> {
    let p = Params::new(m, t);
    for step in plan.steps() {
        if let Kind::Table { slot, .. } = step.kind {
            quantize_temb(&p, step, time, &mut c.tq[slot as usize][..step.rows().min(H)]);
        }
    }
    if cfg!(tinyscore_dsp_tile) {
        for (i, step) in plan.steps().iter().enumerate() {
            let add = match step.kind {
                Kind::Table { slot, .. } => Some(&c.tq[slot as usize][..step.rows().min(H)]),
                Kind::Output => continue,
                _ => None,
            };
            c.forms[i] = Some(quant::LayerForm::new(p.triples(step), step.rows(), add, acc_max(step.cols())));
        }
    }
    c
}

/// [`quant::epilogue`] of the first `rows` rows of every vector (strides H) of a layer with
/// `cols` int8 inputs, with the AVX2 twin where `k` has it; on the Cortex-M4/M7 (unless built
/// for size, as the tile kernels: `engine/build.rs`) [`quant::epilogue_tile`], the same values
/// in fewer instructions (leaving `acc` requantized).
#[cfg_attr(not(target_arch = "arm"), inline(always))]
fn epilogue<const H: usize>(
    k: Kernels,
    rq: &[u8],
    acc: &mut [[i32; H]],
    rows: usize,
    cols: usize,
    form: Option<quant::LayerForm>,
    e: TileEpilogue<'_, H>,
) {
    let n = acc.len();
    #[cfg(target_arch = "x86_64")]
    if let Kernels::Avx2(tok) = k {
        return x86::requant_layer(tok, rq, acc.as_flattened(), H, n, rows, H, e.flat());
    }
    let _ = k;
    if cfg!(tinyscore_dsp_tile) {
        let form = form.unwrap_or_else(|| quant::LayerForm::new(rq, rows.min(H), e.add(), acc_max(cols)));
        return quant::epilogue_tile(rq, acc, rows, form, e);
    }
    let _ = (cols, form);
    quant::epilogue(rq, acc.as_flattened(), H, n, 0..rows, H, &mut e.flat());
}

/// `acc[i][r] = Σ_c W[r, c]·x[i][c]` (int8 × int8, exact int32) for every vector `i` of `x` and
/// every row `r` of `w`: the AVX2 or NEON kernel for blocks of rows and vectors; on the Cortex-M4/M7 for
/// two vectors or more [`quant::matmul_prepared`] (the multi-vector DSP kernel, up to four
/// vectors per weight word as far as `xp` holds their prepared form); else the portable (on
/// Cortex-M4/M7 the one-vector DSP) kernel row by row, preparing each vector once in `xp`. (The
/// one-vector loop is kept apart so that size-optimized builds, which leave the multi-vector
/// kernel out, carry no code for it: `engine/build.rs`.)
#[cfg_attr(not(target_arch = "arm"), inline(always))]
fn int8_matmul<const K: usize, const H: usize>(
    k: Kernels,
    w: &Tensor<'_>,
    x: &[[i8; K]],
    acc: &mut [[i32; H]],
    xp: &mut [u32],
) {
    let (rows, cols) = (w.rows.min(H), w.cols.min(K));
    #[cfg(target_arch = "x86_64")]
    if let Kernels::Avx2(tok) = k {
        let n = x.len().min(acc.len());
        return x86::matmul_i8(tok, w.data(), rows, cols, x.as_flattened(), K, n, acc.as_flattened_mut(), H);
    }
    #[cfg(target_arch = "aarch64")]
    if let Kernels::Neon(tok) = k {
        let n = x.len().min(acc.len());
        return neon::matmul_i8(tok, w.data(), rows, cols, x.as_flattened(), K, n, acc.as_flattened_mut(), H);
    }
    let _ = k;
    if cfg!(tinyscore_dsp_tile) && x.len() >= 2 {
        let stride = w.cols * w.dtype.size();
        return quant::matmul_prepared(w.data(), stride, rows, cols, x, acc, xp);
    }
    for (xs, a) in x.iter().zip(acc.iter_mut()) {
        let p = quant::Prepared::new(&xs[..cols], xp);
        for (r, o) in a[..rows].iter_mut().enumerate() {
            *o = p.dot(w.row_bytes(r));
        }
    }
}
