//! The sizes of one ScoreNet ([`Dims`]: D, H, F, B, as the header stores them) and the tensors a
//! network of those sizes stores, in the canonical file order: [`Dims::params`] (the trainer's
//! flat parameter vector), [`file_tensors`] and, for `w8a8` files, [`act_tensors`].
//!
//! The type is the layer graph's ([`crate::graph::mlp::Dims`]: ScoreNet v1 is a graph); the
//! tensor roles and the file order it implies live here with the file format, which stores them
//! (`net::Dims` and `format::Dims` name the same type).

use super::table::Role;
use crate::quant::layout;

pub use crate::graph::mlp::Dims;

impl Dims {
    /// The parameter tensors in their canonical order (the order of the trainer's flat parameter
    /// vector and of the model file): `(role, rows, cols)`, a bias having `cols = 1`.
    pub fn params(&self) -> impl Iterator<Item = (Role, usize, usize)> + '_ {
        let (d, h, f) = (self.dim, self.hidden, self.freqs);
        let head = [
            (Role::TimeW1, h, f),
            (Role::TimeB1, h, 1),
            (Role::TimeW2, h, h),
            (Role::TimeB2, h, 1),
            (Role::InputW, h, d),
            (Role::InputB, h, 1),
        ];
        let blocks = (0..self.blocks as u8).flat_map(move |b| {
            [
                (Role::BlockW1(b), h, h),
                (Role::BlockB1(b), h, 1),
                (Role::BlockW2(b), h, h),
                (Role::BlockB2(b), h, 1),
            ]
        });
        let tail = [(Role::OutputW, d, h), (Role::OutputB, d, 1)];
        head.into_iter().chain(blocks).chain(tail)
    }

    /// Total number of scalar parameters.
    pub fn param_count(&self) -> usize {
        self.params().map(|(_, r, c)| r * c).sum()
    }

    /// Multiply–accumulates of one network evaluation.
    pub fn macs(&self) -> usize {
        self.params().filter(|(_, _, c)| *c > 1).map(|(_, r, c)| r * c).sum()
    }

    /// Bytes of working memory the f32 engine needs for these sizes: the network's activations
    /// (φ: F, temb/h/a/u: 4H) plus the sampler's state (x and ε̂: 2D), all f32.
    pub fn ram_bytes(&self) -> usize {
        4 * (self.freqs + 4 * self.hidden + 2 * self.dim)
    }

    /// Bytes of working memory the int8 (`w8a8`) path needs: the time embedding in f32
    /// (φ: F, its hidden layer and silu: 2H, temb: H), the integer activations (residual stream
    /// i16: 2H, silu(h) and silu(u) i8: 2H, the quantized input i8: D), plus the sampler's state
    /// (x and ε̂: 2D f32).
    pub fn ram_bytes_int8(&self) -> usize {
        4 * (self.freqs + 3 * self.hidden) + 4 * self.hidden + self.dim + 8 * self.dim
    }
}

/// Every tensor of a quantization-v1 file with sizes `dims`, in the canonical file order: the
/// normalisation, then the parameters in [`Dims::params`] order. `(role, rows, cols)`.
pub fn file_tensors(dims: &Dims) -> impl Iterator<Item = (Role, usize, usize)> + '_ {
    [(Role::NormMean, dims.dim, 1), (Role::NormStd, dims.dim, 1)].into_iter().chain(dims.params())
}

/// The activation tensors a `w8a8` (quantization v2) file appends after [`file_tensors`], for
/// `groups` timestep groups: `(role, rows, cols)`.
pub fn act_tensors(dims: &Dims, groups: usize) -> [(Role, usize, usize); 3] {
    let (d, h, b) = (dims.dim, dims.hidden, dims.blocks);
    [
        (Role::ActScales, groups, layout::scale_cols(b)),
        (Role::ActRequant, groups, layout::requant_cols(d, h, b)),
        (Role::ActLut, groups, 256 * layout::lut_count(b)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_count_matches_shapes() {
        let d = Dims { dim: 2, hidden: 16, freqs: 8, blocks: 2 };
        let want = 16 * 8 + 16 + 16 * 16 + 16 + 16 * 2 + 16 + 2 * (2 * (16 * 16 + 16)) + 2 * 16 + 2;
        assert_eq!(d.param_count(), want);
        assert_eq!(d.params().count(), 6 + 4 * 2 + 2);
    }
}
