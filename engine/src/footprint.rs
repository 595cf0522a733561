//! The RAM the engine needs to sample or denoise with one model, on a 32-bit microcontroller.
//!
//! Everything the engine keeps is a value of fixed size on the caller's stack (or in a static):
//! the [`ScoreNet`](crate::net::ScoreNet) (its workspace and the parsed
//! [`crate::format::Model`]'s view of the file), the
//! [`Diffusion`](crate::schedule::Diffusion) process (the ᾱ tables of the discrete process are
//! always [`MAX_STEPS`](crate::schedule::MAX_STEPS) + 1 long: no heap to size them), and the
//! vectors of one sampler or denoiser run. [`WorkingSet`] adds them up; `tinyscore inspect`
//! prints it and the firmware test checks it against the stack the firmware measures, which adds
//! only call frames and the runtime (`docs/BENCHMARKS.md`, "Firmware").
//!
//! The file header's own RAM figure (`Dims::ram_bytes`, `Dims::ram_bytes_int8`) counts the
//! activations a model needs; this is what a build of the engine actually holds for it.

use crate::format::{Dims, Model};

/// `size_of::<Model>()` on a 32-bit target: the header, the view of the file, and the graph's
/// description (the tensors and layers are decoded from flash when used; checked at compile time
/// there).
pub const MODEL_BYTES_32: usize = 192;
/// `size_of::<Diffusion>()` on a 32-bit target: two tables of 1001 f32 and the schedule.
pub const PROCESS_BYTES_32: usize = 8024;

#[cfg(target_pointer_width = "32")]
const _: () = assert!(core::mem::size_of::<crate::format::Model<'static>>() == MODEL_BYTES_32);
#[cfg(target_pointer_width = "32")]
const _: () = assert!(core::mem::size_of::<crate::schedule::Diffusion>() == PROCESS_BYTES_32);

/// `size_of::<Int8Plan>()`, the integer path's plan of a graph (fixed-width fields: the same on
/// every target).
pub const PLAN_BYTES: usize = core::mem::size_of::<crate::quant::Int8Plan>();

/// The engine's RAM for one model, in bytes, by part (32-bit target).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct WorkingSet {
    /// The network's workspace at capacities D, H, F equal to the model's: the f32 frequencies
    /// of φ (F, of which F/2 are used); the integer path's i8 x (D), i16 h (2H bytes), i8 layer
    /// input (H), i32 dot products (4H) and i32 time embedding (4H), and the activations
    /// prepared for the Cortex-M4 DSP kernel (H words); and the integer path's plan of the
    /// graph ([`crate::quant::Int8Plan`], [`PLAN_BYTES`], held by every network). (H is 0 for a
    /// model without the integer path's buffers at that width.)
    pub network: usize,
    /// The network's arena ([`crate::net::ScoreNet::arena_len`]): the f32 walk's (the file's
    /// planned time, data and scratch regions), or for a convolutional `w8a8` file the integer
    /// walk's (the time region, the integer plan's data region and scratch, the places of its
    /// values; `docs/quantization.md`, "Convolutions").
    pub arena: usize,
    /// The parsed model: header and tensor table (the weights stay in flash).
    pub model: usize,
    /// The diffusion process.
    pub process: usize,
    /// The vectors of a run, 7·D f32, the most a sampler or the denoiser holds at once: the
    /// sampler's [`State`](crate::sampler::State) (x and the multistep solvers' history of two
    /// x̂₀, 3·D, whichever sampler runs), the output, and a step's temporaries: Heun's v, v′, x′
    /// (3·D; DDPM's ε̂, z and SDE-DPM-Solver++'s x̂₀, z are 2·D); the denoiser's window, ε̂, z, x
    /// and SDEdit's sum are 5·D; imputation's window, observed values, x, ε̂, z, the known
    /// part's noise and the sum are 7·D (its mask, D bytes, the firmware keeps in flash).
    pub vectors: usize,
}

impl WorkingSet {
    /// The working set of `model` at capacities equal to its sizes.
    pub fn of_model(model: &Model<'_>) -> Self {
        let dims = model.dims();
        // `ScoreNet::arena_len`: the f32 walk's arena, or a convolutional w8a8 file's integer
        // walk's.
        Self::of(dims, crate::net::ScoreNet::<'_, 0, 0, 0>::arena_len(model))
    }

    /// The working set for ScoreNet sizes `dims` (D, H, F) and an arena of `arena_words`.
    pub const fn of(dims: Dims, arena_words: usize) -> Self {
        let (d, h, f) = (dims.dim, dims.hidden, dims.freqs);
        Self {
            network: (4 * f + d + 2 * h + h).next_multiple_of(4) + 4 * h + 4 * h + 4 * h + PLAN_BYTES,
            arena: 4 * arena_words,
            model: MODEL_BYTES_32,
            process: PROCESS_BYTES_32,
            vectors: 4 * 7 * d,
        }
    }

    /// All of it.
    pub const fn total(&self) -> usize {
        self.network + self.arena + self.model + self.process + self.vectors
    }
}

/// Vectors per tile of the integer path's batched evaluation on a 32-bit target (`net/mod.rs`:
/// 8 on Arm, and on every target for calls of at most 8 vectors).
pub const INT8_BATCH_TILE: usize = 8;

/// The RAM that drawing `k` samples in lockstep ([`crate::sampler::draw_batch`]) takes beyond
/// the [`WorkingSet`] of one sample, on a 32-bit target (0 for `k` ≤ 1, which the firmware
/// draws one at a time with [`crate::sampler::draw`]): the run vectors of the other k − 1
/// chains (7·D f32 each, as [`WorkingSet::vectors`] counts one), the batch's f32 arena
/// (`batch_arena_words`, [`crate::net::ScoreNet::batch_scratch_len`]`(k)`, which
/// `draw_batch` asks for whatever the file), and the integer tiles that
/// [`crate::net::ScoreNet::eps_batch`] keeps on the stack, T·(D + 7H) + 36·H bytes for
/// T = [`INT8_BATCH_TILE`] (k ≤ 8 on every target; on a target other than Arm, tiles of 32
/// for k > 8). The tiles are counted for every file: `eps_batch`'s frame reserves them on the
/// f32 path too (measured on the Cortex-M4: an f32 file's lockstep stack exceeds the rest by
/// about as much).
pub const fn lockstep_bytes(dims: Dims, batch_arena_words: usize, k: usize) -> usize {
    if k <= 1 {
        return 0;
    }
    let (d, h) = (dims.dim, dims.hidden);
    4 * 7 * d * (k - 1) + 4 * batch_arena_words + INT8_BATCH_TILE * (d + 7 * h) + 36 * h
}

/// [`lockstep_bytes`] of `model` for `k` samples in lockstep.
pub fn lockstep_bytes_of(model: &Model<'_>, k: usize) -> usize {
    lockstep_bytes(model.dims(), crate::walk::arena_len(model.graph(), k), k)
}

/// The state of a [`Stream`](crate::stream::Stream) beside its four buffers, on a 32-bit target:
/// the history's write position, the window length and hop, the taper, σ and its running
/// estimate, the input range, the last accepted sample, the counts and the flags.
pub const STREAM_STATE_BYTES_32: usize = 64;

/// The RAM of the streaming denoiser [`Stream`](crate::stream::Stream)`<C>` on a 32-bit target:
/// four buffers of C f32 (input history, window, weighted sums, weight sums) and its state. The
/// window's network runs with the [`WorkingSet`] of the model, beside it.
pub const fn stream_bytes(capacity: usize) -> usize {
    16 * capacity + STREAM_STATE_BYTES_32
}

#[cfg(target_pointer_width = "32")]
const _: () = assert!(core::mem::size_of::<crate::stream::Stream<256>>() == stream_bytes(256));
#[cfg(target_pointer_width = "32")]
const _: () = assert!(core::mem::size_of::<crate::stream::Stream<2>>() == stream_bytes(2));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Model;
    use crate::net::ScoreNet;

    #[test]
    fn the_network_part_is_the_workspace_the_engine_holds() {
        // ScoreNet = model + workspace; sizes chosen so no padding hides a difference.
        fn check<const D: usize, const H: usize, const F: usize>() {
            let dims = Dims { dim: D, hidden: H, freqs: F, blocks: 2 };
            // The kernel choice is one byte where SIMD kernels exist (x86-64), padded to the
            // struct's alignment, and nothing on the microcontroller.
            let kernels = if core::mem::size_of::<crate::kernels::Kernels>() == 0 {
                0
            } else {
                core::mem::align_of::<ScoreNet<'static, D, H, F, [f32; 0]>>()
            };
            let workspace = core::mem::size_of::<ScoreNet<'static, D, H, F, [f32; 0]>>()
                - core::mem::size_of::<Model<'static>>()
                - kernels;
            assert_eq!(WorkingSet::of(dims, 0).network, workspace, "D={D} H={H} F={F}");
        }
        check::<8, 16, 8>();
        check::<64, 64, 32>();
        check::<16, 128, 32>();
    }

    #[test]
    fn the_stream_is_four_buffers_and_its_state() {
        // The state's size differs on a 64-bit host (usize fields); the buffers do not.
        use crate::stream::Stream;
        let per_sample = core::mem::size_of::<Stream<96>>() - core::mem::size_of::<Stream<32>>();
        assert_eq!(per_sample, stream_bytes(96) - stream_bytes(32));
        assert_eq!(per_sample, 64 * 16);
    }

    #[test]
    fn the_parts_add_up() {
        let w = WorkingSet::of(Dims { dim: 2, hidden: 128, freqs: 32, blocks: 3 }, 700);
        assert_eq!(w.network, 4 * 32 + 3 * 128 + 4 + 12 * 128 + PLAN_BYTES);
        assert_eq!(w.arena, 2800);
        assert_eq!(w.total(), w.network + 2800 + MODEL_BYTES_32 + PROCESS_BYTES_32 + 56);
    }

    #[test]
    fn lockstep_adds_the_other_chains_the_batch_arena_and_the_integer_tiles() {
        let dims = Dims { dim: 2, hidden: 128, freqs: 32, blocks: 3 };
        assert_eq!(lockstep_bytes(dims, 900, 1), 0);
        assert_eq!(lockstep_bytes(dims, 900, 8), 4 * 7 * 2 * 7 + 3600 + 8 * (2 + 7 * 128) + 36 * 128);
    }
}
