//! Integer kernels of the `w8a8` path: int8 × int8 dot products with int32 accumulation,
//! fixed-point requantization, the SiLU lookup tables, and the boundary conversions f32 ↔ int.
//!
//! Every rounding rule of the integer path is defined here, once; the converter
//! (`tinyscore convert --quant w8a8`) calls [`quantize_multiplier`], [`silu_lut_entry`] and
//! [`quantize_bias`] to build the file, so the engine and the converter cannot disagree.
//! `docs/quantization.md` gives the scheme and the measurements behind it.
//!
//! The one rounding rule of requantization is *round half up* on the exact product:
//! `requantize(acc, m, n) = ⌊(acc·m + 2^(n−1)) / 2^n⌋` (an arithmetic shift of the i64 product),
//! saturated to i32. The multiplier `m ∈ [2^30, 2^31)` and the shift `n ∈ 1..=62` represent the
//! real factor `m·2^−n`.
//!
//! Tested here against an i128 oracle and a one-line reference of each kernel (property tests).
//!
//! Files, one concept each: `scheme.rs` (the bounds and rounding rules), `matmul.rs` (the int8
//! dot products), `prepared.rs` (the activation layout of the DSP kernels and the instruction
//! models behind it), `epilogue.rs` (requantization, residual, SiLU tables), with the fast
//! twins beside them: `dsp.rs` (Cortex-M4/M7 inline assembly), `x86.rs` (AVX2) and `neon.rs`
//! (the AArch64 NEON matmul);
//! `conv.rs` (the portable int8 convolution the convolution steps run), `conv_packed.rs` (its
//! packed form for the four-vector DSP kernel), `plan.rs` (a layer graph read as the fused integer steps, [`Int8Plan`]), `tiling.rs` (a convolution step's input and outputs and its calls in tiles of output positions) and `layout.rs`
//! (the columns of the activation tensors in the file, part of the format and re-exported as
//! `format::layout`).

pub mod conv;
pub mod conv_packed;
#[cfg(tinyscore_dsp)]
mod dsp;
mod epilogue;
pub mod layout;
mod matmul;
#[cfg(target_arch = "aarch64")]
pub mod neon;
pub mod plan;
mod prepared;
mod scheme;
#[cfg(test)]
mod tests;
pub mod tiling;
#[cfg(target_arch = "x86_64")]
pub mod x86;

pub use epilogue::{
    epilogue, epilogue_tile, epilogue_vectors, finish_vectors, requantize_vectors, triple, Epilogue,
    HighRequant, LayerForm, Silu, TileEpilogue,
};
#[cfg(tinyscore_dsp_tile)]
pub use matmul::{conv_rows_dsp, widen_quads_dsp};
#[cfg(tinyscore_dsp)]
pub use matmul::{dot16_dsp, dot16_tile_dsp, prepare_tile_dsp};
pub use matmul::{dot_i8, matmul_prepared, Prepared, PreparedTile};
pub use plan::{Int8Plan, PlanError};
pub use prepared::{
    dot16_model, dot16_tile_model, pack16, prepare_into, prepare_tile_into, prepared_words, smlad, sxtb16,
    tile_kernel, CHUNK,
};
pub use scheme::{
    lut, quantize_bias, quantize_i8, quantize_multiplier, quantize_temb, requantize, residual_index, sat_i16,
    sat_i8, silu_lut_entry, time_group, BIAS_MAX, MAX_GROUPS, MULT_MIN, RESIDUAL_EXTRA_BITS, SHIFT_MAX,
    SHIFT_MIN, TEMB_MAX,
};
