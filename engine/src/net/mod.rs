//! ScoreNet v1: the noise-prediction network ε_θ(x, t). The math is specified in
//! `docs/scorenet.md`; in one breath:
//!
//! ```text
//! φ(t)  = [sin(ω_k·1000t), cos(ω_k·1000t)],  ω_k = exp(−ln(10000)·k/(F/2)),  k < F/2
//! temb  = W_t2 · silu(W_t1 · φ(t) + b_t1) + b_t2
//! h_0   = W_in · x + b_in
//! u     = W_b1 · silu(h_{b−1}) + b_b1 + temb;   h_b = h_{b−1} + W_b2 · silu(u) + b_b2
//! ε̂     = W_out · silu(h_B) + b_out
//! ```
//!
//! The trainer (`tinyscore-train`) and the CUDA kernels (`tinyscore-kernels`) compute the same
//! function; [`time_features`] (`net/time.rs`), [`silu`] (`act.rs`) and [`Dims::params`]
//! (`format/dims.rs`: the sizes are header fields) are the one definition they share, and tests
//! hold the three implementations to each other. They are re-exported here, with [`Kernels`]
//! and [`limits`], because they are the network's vocabulary.

mod time;

pub use crate::act::{silu, silu_grad, silu_grad2};
pub use crate::format::Dims;
pub use crate::kernels::Kernels;
/// The engine's static capacities ([`crate::limits`]), where the network's users have always
/// found them.
pub use crate::limits;
pub use time::{frequencies, frequency, time_features, time_features_from, LN_10000, TIME_SCALE};

use crate::format::{layout, Model, Role, Tensor};
#[cfg(target_arch = "x86_64")]
use crate::quant::x86;
use crate::quant::{self, TileEpilogue};

/// Vectors the batched integer path ([`ScoreNet::eps_batch`] on a `w8a8` file) evaluates
/// together: their activations live on the stack, `T·(D + 7H) + 4H` bytes (on the Cortex-M4/M7
/// the prepared form of four of them, `8·H` more: [`INT8_TILE_XP`]), besides the call's
/// constants ([`Int8Consts`], `4·H·B_max` bytes and the layers' forms). On x86-64 more vectors
/// share the AVX2 kernel's packed weights.
const INT8_TILE: usize = if cfg!(target_arch = "arm") { INT8_TILE_ARM } else { 32 };

/// Tiles of calls of at most this many vectors (their buffers, cleared per call, are smaller).
const INT8_TILE_SMALL: usize = if cfg!(target_arch = "arm") { INT8_TILE_ARM } else { 8 };

/// [`INT8_TILE`] on Arm: on the Cortex-M4 two passes of the four-vector DSP kernel per layer,
/// and the epilogue's per-row work shared by eight vectors (`docs/BENCHMARKS.md`).
const INT8_TILE_ARM: usize = 8;

/// Rows of H words the batched integer path keeps on the stack for the prepared activations of
/// four vectors ([`quant::matmul_prepared`] takes them four at a time: 4·H/2 words on the
/// Cortex-M4/M7, where the multi-vector DSP kernel uses them; one row, unused, elsewhere).
const INT8_TILE_XP: usize = if cfg!(tinyscore_dsp_tile) { 2 } else { 1 };

/// Working buffers besides the arena, sized by the capacities D, H and F.
#[derive(Clone, Debug)]
struct Workspace<const D: usize, const H: usize, const F: usize> {
    /// (F/2,) the frequencies ω_k of φ(t), computed once by [`ScoreNet::new`] ([`frequencies`];
    /// capacity F).
    freqs: [f32; F],
    /// The int8 path's activations of one vector.
    int8: Int8Bufs<1, D, H>,
    /// int8 path: one layer's activations prepared for the dot-product kernel
    /// ([`quant::Prepared`]; used on Cortex-M4/M7 only, ≤ H/2 words of it).
    xp: [u32; H],
}

/// The integer path's activations of `T` vectors evaluated together.
#[derive(Clone, Debug)]
struct Int8Bufs<const T: usize, const D: usize, const H: usize> {
    /// (T, D) the quantized inputs.
    x8: [[i8; D]; T],
    /// (T, H) the residual stream h_b in int16.
    h16: [[i16; H]; T],
    /// (T, H) a layer's int8 input: silu(h_b), then silu(u_b).
    act: [[i8; H]; T],
    /// (T, H) a layer's int32 dot products.
    acc: [[i32; H]; T],
    /// (H,) a block's time embedding in its accumulators' scale.
    tq: [i32; H],
}

impl<const T: usize, const D: usize, const H: usize> Int8Bufs<T, D, H> {
    const ZERO: Self =
        Self { x8: [[0; D]; T], h16: [[0; H]; T], act: [[0; H]; T], acc: [[0; H]; T], tq: [0; H] };
}

/// Why a model does not fit this build of the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CapacityError {
    /// Which size: "dim", "hidden", "freqs" or "blocks".
    pub what: &'static str,
    /// The size the file declares.
    pub found: usize,
    /// The capacity compiled in.
    pub capacity: usize,
}

impl core::fmt::Display for CapacityError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "model {} {} exceeds the engine's compiled capacity {}",
            self.what, self.found, self.capacity
        )
    }
}

impl core::error::Error for CapacityError {}

/// A network ready to evaluate: a validated [`Model`], its arena, and static buffers for the
/// capacities D, H and F.
///
/// The f32 path walks the model's layer graph ([`crate::walk`]) in the arena `S` (any
/// `AsMut<[f32]>`: a static array or a borrowed slice on a device, a `Vec` on a host), which must
/// hold [`ScoreNet::arena_len`] words — the file's planned arena, `inspect`'s RAM less the
/// sampler state. D bounds the data dimension (checked at construction; the samplers' buffers
/// use it) and F the time features; H bounds the hidden width of the integer (`w8a8`) path,
/// whose buffers are static.
#[derive(Clone, Debug)]
pub struct ScoreNet<'a, const D: usize, const H: usize, const F: usize, S = &'a mut [f32]> {
    model: Model<'a>,
    ws: Workspace<D, H, F>,
    arena: S,
    kernels: Kernels,
}

impl<'a, const D: usize, const H: usize, const F: usize, S: AsMut<[f32]>> ScoreNet<'a, D, H, F, S> {
    /// Words of arena `model` needs for one vector (the file's planned arena).
    pub fn arena_len(model: &Model<'_>) -> usize {
        crate::walk::arena_len(model.graph(), 1)
    }

    /// Wraps `model` with `arena`, refusing it if its sizes exceed the capacities D, H, F or
    /// the arena is shorter than [`ScoreNet::arena_len`].
    pub fn new(model: Model<'a>, mut arena: S) -> Result<Self, CapacityError> {
        let dims = model.dims();
        let freqs_max = model
            .graph()
            .layers()
            .map(|l| if let crate::graph::Op::TimeFeatures { freqs } = l.op { freqs } else { 0 })
            .max()
            .unwrap_or(0);
        let hidden = if model.is_int8() { dims.hidden } else { 0 };
        // A build without the `conv` feature has no convolution layers to run.
        let conv = if cfg!(feature = "conv") {
            0
        } else {
            model
                .graph()
                .layers()
                .filter(|l| {
                    matches!(l.op, crate::graph::Op::Conv1d { .. } | crate::graph::Op::Upsample2 { .. })
                })
                .count()
        };
        let words = Self::arena_len(&model);
        for (what, found, capacity) in [
            ("dim", model.dim(), D),
            ("hidden", hidden, H),
            ("freqs", freqs_max, F),
            ("arena", words, arena.as_mut().len()),
            ("conv layers (engine built without its `conv` feature)", conv, 0),
        ] {
            if found > capacity {
                return Err(CapacityError { what, found, capacity });
            }
        }
        let mut freqs = [0.0; F];
        frequencies(freqs_max, &mut freqs);
        Ok(Self {
            model,
            ws: Workspace { freqs, int8: Int8Bufs::ZERO, xp: [0; H] },
            arena,
            kernels: Kernels::Portable,
        })
    }

    /// Chooses the kernels (the same bits with any: [`Kernels`]).
    pub fn set_kernels(&mut self, kernels: Kernels) {
        self.kernels = kernels;
    }

    /// The kernels in use.
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// The model this network evaluates.
    pub fn model(&self) -> &Model<'a> {
        &self.model
    }

    /// The network's sizes ([`Model::dims`]).
    pub fn dims(&self) -> Dims {
        self.model.dims()
    }

    /// D, the length of a vector.
    pub fn dim(&self) -> usize {
        self.model.dim()
    }

    /// ε̂ = ε_θ(x, t) for one normalised input `x` (length D) at time `t`, written to `eps`.
    /// A `w8a8` file runs on the integer path (`eps_int8`, `docs/quantization.md`), every other file in f32.
    ///
    /// # Panics
    /// If `x` or `eps` is shorter than the model's D (a caller bug, not an input error).
    #[cfg_attr(not(target_arch = "arm"), inline(always))]
    pub fn eps(&mut self, x: &[f32], t: f32, eps: &mut [f32]) {
        if self.model.is_int8() {
            self.eps_int8(x, t, eps)
        } else {
            self.eps_f32(x, t, eps, &mut |_, _| {})
        }
    }

    /// The time branch of the graph (for ScoreNet v1: temb) in f32, into the arena's time
    /// region; returns where ScoreNet v1's temb (layer 3's output) lies there, for the integer
    /// path.
    #[cfg_attr(not(target_arch = "arm"), inline(always))]
    fn time_embedding(&mut self, t: f32) -> core::ops::Range<usize> {
        let g = *self.model.graph();
        let walk =
            crate::walk::Walk { graph: &g, model: &self.model, kernels: self.kernels, freqs: &self.ws.freqs };
        walk.run_range(0..g.time_layers(), &[], t, &mut [], 1, self.arena.as_mut(), &mut |_, _| {});
        let temb = g.layer(3.min(g.len() - 1));
        temb.offset..temb.offset + temb.shape.len()
    }

    /// The integer path of a `w8a8` file (`docs/quantization.md`): the time embedding in f32,
    /// then int8 weights × int8 activations with int32 accumulators, biases folded to int32,
    /// fixed-point requantization ([`quant::requantize`]), an int16 residual stream, SiLU by
    /// table; f32 only at the boundaries (quantizing x, adding temb once per row and block,
    /// scaling ε̂ out). The scales of timestep group `time_group(t, G)` apply.
    #[cfg_attr(not(target_arch = "arm"), inline(always))]
    fn eps_int8(&mut self, x: &[f32], t: f32, eps: &mut [f32]) {
        let temb = self.time_embedding(t);
        let temb = &self.arena.as_mut()[temb];
        let ws = &mut self.ws;
        int8_layers(&self.model, self.kernels, temb, x, t, eps, 1, &mut ws.int8, &mut ws.xp, None);
    }

    /// The f32 path (f32, f16 and w8 files): the walk of the whole graph, showing `observe`
    /// every layer's output (a no-op closure for [`ScoreNet::eps`], which the compiler removes).
    #[cfg_attr(not(target_arch = "arm"), inline(always))]
    fn eps_f32(&mut self, x: &[f32], t: f32, eps: &mut [f32], observe: &mut impl FnMut(usize, &[f32])) {
        let d = self.model.dim();
        let g = *self.model.graph();
        let walk =
            crate::walk::Walk { graph: &g, model: &self.model, kernels: self.kernels, freqs: &self.ws.freqs };
        walk.run(&x[..d], t, &mut eps[..d], 1, self.arena.as_mut(), observe);
    }

    /// Length of the `scratch` slice [`ScoreNet::eps_batch`] needs for `k` vectors: the arena
    /// of a `k`-vector walk (time region once, data region `k` times, scratch), f32 words.
    pub fn batch_scratch_len(&self, k: usize) -> usize {
        crate::walk::arena_len(self.model.graph(), k)
    }

    /// ε̂ for `k = xs.len() / D` inputs at the same time `t` (row-major: vector i at
    /// `xs[i·D..(i+1)·D]`, its ε̂ at `outs[i·D..]`): the same bits as `k` calls of
    /// [`ScoreNet::eps`], faster. The time branch is computed once for all `k`; on the f32 path
    /// every dense layer multiplies its weights with blocks of four vectors (each weight loaded
    /// once per block), in the same summation order as one vector alone
    /// ([`crate::linalg::dot_block`]); a `w8a8` file runs its integer layers for tiles of up to 32
    /// vectors at once (8 on Arm, and for calls of at most 8 vectors), the same exact integers.
    /// `scratch` holds the f32 walk's arena, [`ScoreNet::batch_scratch_len`]`(k)` values (not
    /// needed, and may be empty, for a `w8a8` file, whose tiles live on the stack: T·(D + 7H) +
    /// 36·H bytes for T vectors and the call's constants, plus 48 KiB for the AVX2 kernel's
    /// packed weights; about 190 KiB at the largest capacities of [`limits`] on x86-64).
    ///
    /// # Panics
    /// If `outs` is shorter than `xs` (rounded down to whole vectors) or `scratch` is too short
    /// (caller bugs, not input errors).
    #[cfg_attr(not(target_arch = "arm"), inline(always))]
    pub fn eps_batch(&mut self, xs: &[f32], t: f32, outs: &mut [f32], scratch: &mut [f32]) {
        let d = self.model.dim();
        let k = xs.len() / d.max(1);
        let (xs, outs) = (&xs[..k * d], &mut outs[..k * d]);
        if self.model.is_int8() {
            let temb = self.time_embedding(t);
            if k <= INT8_TILE_SMALL {
                self.int8_tiles::<INT8_TILE_SMALL>(temb, xs, t, outs);
            } else {
                self.int8_tiles::<INT8_TILE>(temb, xs, t, outs);
            }
            return;
        }
        let g = *self.model.graph();
        let walk =
            crate::walk::Walk { graph: &g, model: &self.model, kernels: self.kernels, freqs: &self.ws.freqs };
        walk.run(xs, t, outs, k, scratch, &mut |_, _| {});
    }

    /// The integer layers of [`ScoreNet::eps_batch`] (the time embedding computed) for the
    /// vectors of `xs` (whole vectors), in tiles of `T` vectors on the stack.
    #[cfg_attr(not(target_arch = "arm"), inline(always))]
    fn int8_tiles<const T: usize>(
        &mut self,
        temb: core::ops::Range<usize>,
        xs: &[f32],
        t: f32,
        outs: &mut [f32],
    ) {
        let temb = &self.arena.as_mut()[temb];
        let d = self.model.dim().max(1);
        let mut bufs = Int8Bufs::<T, D, H>::ZERO;
        let mut xp = [[0u32; H]; INT8_TILE_XP];
        let xp = xp.as_flattened_mut();
        // What depends on t only, once for all the tiles.
        let mut consts = Int8Consts::<H>::ZERO;
        let consts = int8_consts(&self.model, temb, t, &mut consts);
        for (x, eps) in xs.chunks(T * d).zip(outs.chunks_mut(T * d)) {
            let n = x.len() / d;
            int8_layers(&self.model, self.kernels, temb, x, t, eps, n, &mut bufs, xp, consts);
        }
    }

    /// [`ScoreNet::eps`] on the f32 path (any weight storage, activations in f32), calling
    /// `observe` with each activation the integer path quantizes, in evaluation order: the
    /// converter's calibration measures their ranges with the engine's own network.
    pub fn eps_observed(
        &mut self,
        x: &[f32],
        t: f32,
        eps: &mut [f32],
        mut observe: impl FnMut(Activation, &[f32]),
    ) {
        let d = self.model.dim();
        observe(Activation::Input, &x[..d]);
        let mlp = self.model.graph().mlp_dims();
        self.eps_f32(x, t, eps, &mut |layer, v| {
            if let Some(a) = mlp.and_then(|dims| Activation::of_layer(&dims, layer)) {
                observe(a, v)
            }
        })
    }
}

/// An activation of ScoreNet v1 (`docs/scorenet.md`) that the integer path quantizes, as
/// [`ScoreNet::eps_observed`] shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

impl Activation {
    /// The activation that layer `layer` of ScoreNet v1's graph (`graph::mlp`) writes, if the
    /// integer path quantizes it.
    pub fn of_layer(dims: &Dims, layer: usize) -> Option<Self> {
        let last = 5 + 5 * dims.blocks;
        match layer {
            4 => Some(Self::Residual(0)),
            l if l == last => Some(Self::SiluResidual(dims.blocks)),
            l if (5..last).contains(&l) => {
                let (b, k) = ((l - 5) / 5, (l - 5) % 5);
                match k {
                    0 => Some(Self::SiluResidual(b)),
                    2 => Some(Self::Pre(b)),
                    3 => Some(Self::SiluPre(b)),
                    4 => Some(Self::Residual(b + 1)),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// The integer path of a `w8a8` file (`docs/quantization.md`) for `n ≤ T` vectors (`xs`, `n·D`
/// values) at time `t` with the time embedding `temb`: int8 weights × int8 activations with int32
/// accumulators, biases folded to int32, fixed-point requantization ([`quant::requantize`]), an
/// int16 residual stream, SiLU by table; f32 only at the boundaries (quantizing x, adding temb once
/// per row and block, scaling ε̂ out, into `outs`). The scales of timestep group
/// `time_group(t, G)` apply. Each layer first forms all its dot products ([`int8_matmul`]), then
/// requantizes them, row by row: the same exact integers for one vector or many.
#[cfg_attr(not(target_arch = "arm"), inline(always))]
#[allow(clippy::too_many_arguments)]
fn int8_layers<const T: usize, const D: usize, const H: usize>(
    m: &Model<'_>,
    k: Kernels,
    temb: &[f32],
    xs: &[f32],
    t: f32,
    outs: &mut [f32],
    n: usize,
    b: &mut Int8Bufs<T, D, H>,
    xp: &mut [u32],
    consts: Option<&Int8Consts<H>>,
) {
    let dims = m.dims();
    let (d, h, nb) = (dims.dim, dims.hidden, dims.blocks);
    let n = n.min(T);
    let form = |layer: usize| consts.and_then(|c| c.forms[layer]);
    let g = quant::time_group(t, m.groups());
    let scales = m.tensor(Role::ActScales);
    let s = |c: usize| scales.get(g * scales.cols + c);
    let rq = m.tensor(Role::ActRequant);
    let rq_at = |c: usize| rq.i32_at(g * rq.cols + c);
    let luts = m.tensor(Role::ActLut).row_bytes(g);
    let table = |k: usize| &luts[256 * k..256 * k + 256];
    let rq_bytes = rq.row_bytes(g);
    let triples = |c: usize| &rq_bytes[4 * c..4 * (c + 3 * h)];
    let (x8, h16, act, acc) = (&mut b.x8[..n], &mut b.h16[..n], &mut b.act[..n], &mut b.acc[..n]);
    let tq = &mut b.tq;

    // x8 = round(x / s_x)                                              (n, D) int8
    let s_x = s(layout::s_x());
    for (q, x) in x8.iter_mut().zip(xs.chunks_exact(d.max(1))) {
        for (q, &v) in q.iter_mut().zip(x) {
            *q = quant::quantize_i8(v, s_x);
        }
    }
    // h16 = requant(W_in · x8 + b_in)                                  (n, H) int16
    int8_matmul(k, &m.tensor(Role::InputW), x8, acc, xp);
    // act = silu(h) by table                                         (n, H) int8
    let e = TileEpilogue::ToI16 { out: h16, table: table(layout::lut_h(0)), silu: act };
    epilogue(k, triples(layout::input(h)), acc, h, d, form(0), e);
    for blk in 0..nb {
        // act = silu(u), u = requant(W_b1 · silu(h) + b_b1 + temb)     (n, H) int8
        let w1 = m.tensor(Role::BlockW1(blk as u8));
        let tq: &[i32] = match consts {
            Some(c) => &c.tq[blk][..h],
            None => {
                quantize_temb_block(m, temb, g, blk, &mut tq[..h]);
                &tq[..h]
            }
        };
        int8_matmul(k, &w1, act, acc, xp);
        let e = TileEpilogue::Table { add: tq, table: table(layout::lut_u(nb, blk)), out: act };
        epilogue(k, triples(layout::w1(h, blk)), acc, h, h, form(1 + 2 * blk), e);
        // h = requant(h, s_h[b]/s_h[b+1]) + requant(W_b2 · silu(u) + b_b2)  (n, H) int16
        // act = silu(h) by table (the input of the next block or the output layer)
        int8_matmul(k, &m.tensor(Role::BlockW2(blk as u8)), act, acc, xp);
        let cr = layout::residual(h, blk);
        let (mr, nr) = (rq_at(cr), rq_at(cr + 1) as u32);
        let e = TileEpilogue::Residual { mr, nr, h: h16, table: table(layout::lut_h(blk + 1)), silu: act };
        epilogue(k, triples(layout::w2(h, blk)), acc, h, h, form(2 + 2 * blk), e);
    }
    // ε̂ = (W_out · silu(h_B) + b_out) · s_w[r]·s_a[B]                  (n, D) f32
    let w_out = m.tensor(Role::OutputW);
    let s_a = s(layout::s_a(nb, nb));
    let base = layout::output(h, nb);
    int8_matmul(k, &w_out, act, acc, xp);
    for (eps, a) in outs.chunks_exact_mut(d.max(1)).zip(acc.iter()) {
        for (r, o) in eps.iter_mut().enumerate() {
            *o = (a[r] + rq_at(base + r)) as f32 * (w_out.scale(r) * s_a);
        }
    }
}

/// Bound on an int8 layer's accumulators: |Σ w·x| ≤ cols·128·128 for int8 weights and
/// activations.
fn acc_max(cols: usize) -> u32 {
    (cols as u32).saturating_mul(1 << 14)
}

/// Block `blk`'s time embedding `temb` in the scale of its first layer's accumulators
/// (timestep group `g`), into `out` (H values).
fn quantize_temb_block(m: &Model<'_>, temb: &[f32], g: usize, blk: usize, out: &mut [i32]) {
    let nb = m.dims().blocks;
    let scales = m.tensor(Role::ActScales);
    let s_a = scales.get(g * scales.cols + layout::s_a(nb, blk));
    let w1 = m.tensor(Role::BlockW1(blk as u8));
    for (r, (q, &te)) in out.iter_mut().zip(temb).enumerate() {
        *q = quant::quantize_temb(te, w1.scale(r) * s_a);
    }
}

/// What the integer path computes from `t` alone, once per call of a batch for all its tiles:
/// every block's time embedding in its accumulators' scale and, where [`quant::epilogue_tile`]
/// runs (Cortex-M4/M7), each layer's [`quant::LayerForm`]. `(B_max, H)` i32 on the stack.
#[derive(Clone, Debug)]
struct Int8Consts<const H: usize> {
    /// (B, H) block b's time embedding (`quantize_temb_block`).
    tq: [[i32; H]; limits::MAX_BLOCKS],
    /// The forms of the input layer, then of each block's two layers (`None`: found per call
    /// of the epilogue).
    forms: [Option<quant::LayerForm>; 1 + 2 * limits::MAX_BLOCKS],
}

impl<const H: usize> Int8Consts<H> {
    const ZERO: Self = Self { tq: [[0; H]; limits::MAX_BLOCKS], forms: [None; 1 + 2 * limits::MAX_BLOCKS] };
}

/// Fills `c` for time `t` with the time embedding `temb`; `None` (nothing precomputed) for a
/// model with more blocks than [`limits::MAX_BLOCKS`].
fn int8_consts<'c, const H: usize>(
    m: &Model<'_>,
    temb: &[f32],
    t: f32,
    c: &'c mut Int8Consts<H>,
) -> Option<&'c Int8Consts<H>> {
    let dims = m.dims();
    let (d, h, nb) = (dims.dim, dims.hidden.min(H), dims.blocks);
    if nb > limits::MAX_BLOCKS {
        return None;
    }
    let g = quant::time_group(t, m.groups());
    for (blk, tq) in c.tq[..nb].iter_mut().enumerate() {
        quantize_temb_block(m, temb, g, blk, &mut tq[..h]);
    }
    if cfg!(tinyscore_dsp_tile) {
        let rq = m.tensor(Role::ActRequant).row_bytes(g);
        let triples = |col: usize| &rq[4 * col..4 * (col + 3 * h)];
        c.forms[0] = Some(quant::LayerForm::new(triples(layout::input(h)), h, None, acc_max(d)));
        for blk in 0..nb {
            let (w1, w2) = (triples(layout::w1(h, blk)), triples(layout::w2(h, blk)));
            c.forms[1 + 2 * blk] = Some(quant::LayerForm::new(w1, h, Some(&c.tq[blk][..h]), acc_max(h)));
            c.forms[2 + 2 * blk] = Some(quant::LayerForm::new(w2, h, None, acc_max(h)));
        }
    }
    Some(c)
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
/// every row `r` of `w`: the AVX2 kernel for blocks of rows and vectors; on the Cortex-M4/M7 for
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
