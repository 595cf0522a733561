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

mod int8;
mod int8_conv;
mod time;

pub use crate::act::{silu, silu_grad, silu_grad2};
pub use crate::format::Dims;
pub use crate::kernels::Kernels;
/// The engine's static capacities ([`crate::limits`]), where the network's users have always
/// found them.
pub use crate::limits;
pub use crate::quant::plan::Activation;
pub use time::{frequencies, frequency, time_features, time_features_from, LN_10000, TIME_SCALE};

use crate::format::Model;
use crate::quant::Int8Plan;
use int8::{int8_consts, int8_layers, Int8Bufs, Int8Consts};

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
    /// The integer path's plan of the model's graph (a `w8a8` file; empty otherwise), resolved
    /// once here.
    int8: Int8Plan,
    ws: Workspace<D, H, F>,
    arena: S,
    kernels: Kernels,
}

impl<'a, const D: usize, const H: usize, const F: usize, S: AsMut<[f32]>> ScoreNet<'a, D, H, F, S> {
    /// Words of arena `model` needs for one vector (the file's planned arena).
    pub fn arena_len(model: &Model<'_>) -> usize {
        let mut plan = Int8Plan::default();
        if model.is_int8() {
            let _ = plan.build(model.graph());
        }
        Self::arena_words(model, &plan)
    }

    /// [`ScoreNet::arena_len`] with the model's integer plan built: the f32 walk's arena, or
    /// for a convolutional w8a8 file the integer walk's (`net/int8_conv.rs`): the time region,
    /// then the plan's integer data region and scratch ([`Int8Plan::data_words`],
    /// [`Int8Plan::scratch_words`]), at least the graph's scratch region (the time branch's
    /// walk takes it after the time region), then the places of the plan's values
    /// ([`crate::quant::plan::Places`], written by [`ScoreNet::new`]).
    fn arena_words(model: &Model<'_>, plan: &Int8Plan) -> usize {
        match Self::places_at(model, plan) {
            Some(at) => at + crate::quant::plan::PLACES_WORDS,
            None => crate::walk::arena_len(model.graph(), 1),
        }
    }

    /// Where a convolutional w8a8 file's arena holds the places of its plan's values (`None`
    /// for every other file).
    fn places_at(model: &Model<'_>, plan: &Int8Plan) -> Option<usize> {
        let r = model.graph().regions();
        (cfg!(feature = "conv") && model.is_int8() && plan.is_conv())
            .then(|| r.time + (plan.data_words() + plan.scratch_words()).max(r.scratch))
    }

    /// Wraps `model` with `arena`, refusing it if its sizes exceed the capacities D, H, F or
    /// the arena is shorter than [`ScoreNet::arena_len`]. A `w8a8` file's integer plan
    /// ([`Int8Plan`]) is resolved here, once (the parser has checked that it exists); H bounds
    /// its widest activation.
    pub fn new(model: Model<'a>, mut arena: S) -> Result<Self, CapacityError> {
        // Built in place (no plan-sized `Result` on a device's stack); the parser built it once
        // already, so it cannot fail here (the empty plan if it did).
        let mut int8 = Int8Plan::default();
        if model.is_int8() {
            let _ = int8.build(model.graph());
        }
        let freqs_max = model
            .graph()
            .layers()
            .map(|l| if let crate::graph::Op::TimeFeatures { freqs } = l.op { freqs } else { 0 })
            .max()
            .unwrap_or(0);
        let hidden = int8.width();
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
        let words = Self::arena_words(&model, &int8);
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
        if let Some(at) = Self::places_at(&model, &int8) {
            let places = int8.places(model.graph());
            let words = &mut arena.as_mut()[at..at + crate::quant::plan::PLACES_WORDS];
            bytemuck::cast_slice_mut::<f32, [u32; 2]>(words).copy_from_slice(&places);
        }
        let mut freqs = [0.0; F];
        frequencies(freqs_max, &mut freqs);
        Ok(Self {
            model,
            int8,
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
    /// region, where the integer path's steps find their time embeddings.
    #[cfg_attr(not(target_arch = "arm"), inline(always))]
    fn time_embedding(&mut self, t: f32) {
        let g = *self.model.graph();
        let walk =
            crate::walk::Walk { graph: &g, model: &self.model, kernels: self.kernels, freqs: &self.ws.freqs };
        // No data-region copy (k = 0) where the arena is the integer walk's, which has none.
        let k = usize::from(!self.int8.is_conv());
        walk.run_range(0..g.time_layers(), &[], t, &mut [], k, self.arena.as_mut(), &mut |_, _| {});
    }

    /// The integer path of a `w8a8` file (`docs/quantization.md`, `net/int8.rs`): the time
    /// embedding in f32, then the steps of the graph's integer plan — int8 weights × int8
    /// activations with int32 accumulators, biases folded to int32, fixed-point requantization
    /// ([`crate::quant::requantize`]), an int16 residual stream, SiLU by table; f32 only at the
    /// boundaries (quantizing x, adding temb once per row and step, scaling ε̂ out). The scales
    /// of timestep group `time_group(t, G)` apply.
    #[cfg_attr(not(target_arch = "arm"), inline(always))]
    fn eps_int8(&mut self, x: &[f32], t: f32, eps: &mut [f32]) {
        self.time_embedding(t);
        if cfg!(feature = "conv") && self.int8.is_conv() {
            return self.conv_int8(x, t, eps);
        }
        let time = &self.arena.as_mut()[..self.model.graph().regions().time];
        let ws = &mut self.ws;
        let k = self.kernels;
        int8_layers(&self.model, &self.int8, k, time, x, t, eps, 1, &mut ws.int8, &mut ws.xp, None);
    }

    /// The integer walk of a convolutional plan (`net/int8_conv.rs`), the time branch computed.
    #[cfg_attr(not(target_arch = "arm"), inline(always))]
    fn conv_int8(&mut self, x: &[f32], t: f32, eps: &mut [f32]) {
        let bufs = self.ws.int8.conv();
        let Some(at) = Self::places_at(&self.model, &self.int8) else { return };
        let Some((arena, places)) = self.arena.as_mut().split_at_mut_checked(at) else { return };
        let Some(places) = places.get(..crate::quant::plan::PLACES_WORDS) else { return };
        let places: &[[u32; 2]] = bytemuck::cast_slice(places);
        int8_conv::int8_conv(&self.model, &self.int8, places, arena, x, t, eps, bufs, self.kernels);
    }

    /// The f32 path (f32, f16 and w8 files): the walk of the whole graph, showing `observe`
    /// every layer's output (a no-op closure for [`ScoreNet::eps`], which the compiler removes).
    #[cfg_attr(not(target_arch = "arm"), inline(always))]
    fn eps_f32(&mut self, x: &[f32], t: f32, eps: &mut [f32], observe: &mut impl FnMut(usize, &[f32])) {
        let d = self.model.dim();
        let g = *self.model.graph();
        if self.int8.is_conv() || self.arena.as_mut().len() < crate::walk::arena_len(&g, 1) {
            // A convolutional w8a8 file's arena is the integer walk's (with its places): the
            // f32 walk (`eps_observed`) does not run in it.
            return;
        }
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
    /// once per block; with the AVX2 kernels blocks of 4 rows × 3 vectors), in the same summation
    /// order as one vector alone ([`crate::linalg::dot_block`]); a `w8a8` file runs its integer layers for tiles of up to 32
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
            self.time_embedding(t);
            if cfg!(feature = "conv") && self.int8.is_conv() {
                // One vector at a time (the time branch once): the same bits as `eps`.
                for (x, e) in xs.chunks_exact(d.max(1)).zip(outs.chunks_exact_mut(d.max(1))) {
                    self.conv_int8(x, t, e);
                }
                return;
            }
            if k <= INT8_TILE_SMALL {
                self.int8_tiles::<INT8_TILE_SMALL>(xs, t, outs);
            } else {
                self.int8_tiles::<INT8_TILE>(xs, t, outs);
            }
            return;
        }
        let g = *self.model.graph();
        let walk =
            crate::walk::Walk { graph: &g, model: &self.model, kernels: self.kernels, freqs: &self.ws.freqs };
        walk.run(xs, t, outs, k, scratch, &mut |_, _| {});
    }

    /// The integer steps of [`ScoreNet::eps_batch`] (the time branch computed) for the
    /// vectors of `xs` (whole vectors), in tiles of `T` vectors on the stack.
    #[cfg_attr(not(target_arch = "arm"), inline(always))]
    fn int8_tiles<const T: usize>(&mut self, xs: &[f32], t: f32, outs: &mut [f32]) {
        let time = &self.arena.as_mut()[..self.model.graph().regions().time];
        let d = self.model.dim().max(1);
        let mut bufs = Int8Bufs::<T, D, H>::ZERO;
        let mut xp = [[0u32; H]; INT8_TILE_XP];
        let xp = xp.as_flattened_mut();
        // What depends on t only, once for all the tiles.
        let mut consts = Int8Consts::<H>::ZERO;
        let (m, plan, k) = (&self.model, &self.int8, self.kernels);
        let consts = Some(int8_consts(m, plan, time, t, &mut consts));
        for (x, eps) in xs.chunks(T * d).zip(outs.chunks_mut(T * d)) {
            let n = x.len() / d;
            int8_layers(m, plan, k, time, x, t, eps, n, &mut bufs, xp, consts);
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
        // The plan of the graph's integer path names the activations (none for a graph without
        // one: calibration refuses it).
        let plan = Int8Plan::new(self.model.graph()).unwrap_or_default();
        self.eps_f32(x, t, eps, &mut |layer, v| {
            if let Some(a) = plan.activation(layer) {
                observe(a, v)
            }
        })
    }
}
