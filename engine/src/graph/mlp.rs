//! ScoreNet v1, the MLP, as a layer graph (`docs/scorenet.md`):
//!
//! ```text
//! layer 0        φ = time(F)                                   (F, 1)   time branch
//! layer 1        t1 = linear(φ; time.w1, time.b1)              (H, 1)
//! layer 2        t1 = silu(t1)
//! layer 3        temb = linear(t1; time.w2, time.b2)           (H, 1)
//! layer 4        h = linear(x; input.w, input.b)               (H, 1)   data branch
//! block b (layers 5 + 5b ..):
//!                a = silu(h)
//!                u = linear(a; blocks.b.w1, blocks.b.b1)
//!                u = chan_bias(u, temb)
//!                u = silu(u)
//!                h = linear(u; blocks.b.w2, blocks.b.b2) + h     (residual)
//! layer 5 + 5B   a = silu(h)
//! layer 6 + 5B   ε̂ = linear(a; output.w, output.b)             (D, 1)
//! ```
//!
//! A version-1 file states only D, H, F and B: [`record`] generates its layers from them,
//! with the arena offsets that [`super::build::Builder`]'s planner gives (a test holds the two
//! to each other), so v1 files are walked like any graph and keep their bits. The converter
//! writes the same layers into version-3 files ([`build`]).

use super::build::{Builder, Plan};
use super::op::{Op, Shape, Value, RECORD_LEN};
use super::{GraphError, Regions};

/// The sizes of one ScoreNet v1: data dimension D, hidden width H, time features F, blocks B.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Dims {
    /// D, the data dimension.
    pub dim: usize,
    /// H, the hidden width.
    pub hidden: usize,
    /// F, the number of time features (even).
    pub freqs: usize,
    /// B, the number of residual blocks.
    pub blocks: usize,
}

/// Layers of the MLP with `d.blocks` blocks: 7 + 5B.
pub fn layer_count(d: &Dims) -> usize {
    7 + 5 * d.blocks
}

/// The arena regions of the MLP (words): time H + max(H, F) (φ and the time MLP's hidden
/// layer, then temb over φ's words), data 3H (h, silu(h), u), no scratch.
pub fn regions(d: &Dims) -> Regions {
    Regions { time: d.hidden + d.hidden.max(d.freqs), data: 3 * d.hidden, scratch: 0 }
}

/// Layer `i`'s record (an empty record past the end).
pub fn record(d: &Dims, i: usize) -> [u8; RECORD_LEN] {
    let (h, f, nb) = (d.hidden, d.freqs, d.blocks);
    let vec = |c: usize| Shape { channels: c, length: 1 };
    // Tensor indices in the v1 canonical order (norm.mean and norm.std are 0 and 1).
    let t = |k: usize| k as u16;
    // Time region (the planner's greedy order): with H > F the time MLP's hidden layer at 0, φ and then temb at H; with
    // F > H φ at 0, the hidden layer at F, temb at 0 (φ is dead by then).
    let (phi_at, t1_at, temb_at) = if h > f { (h, 0, h) } else { (0, f, 0) };
    let last_block = 5 + 5 * nb;
    let (op, shape, off) = match i {
        0 => (Op::TimeFeatures { freqs: f }, vec(f), phi_at),
        1 => (Op::Linear { x: 1, res: None, weight: t(2), bias: t(3) }, vec(h), t1_at),
        2 => (Op::Silu { x: 2 }, vec(h), t1_at),
        3 => (Op::Linear { x: 3, res: None, weight: t(4), bias: t(5) }, vec(h), temb_at),
        4 => (Op::Linear { x: 0, res: None, weight: t(6), bias: t(7) }, vec(h), 0),
        i if i < last_block => {
            let (b, k) = ((i - 5) / 5, (i - 5) % 5);
            let base = 5 + 5 * b; // value `base` is h entering block b
            let hv = base as Value;
            let tw = 8 + 4 * b;
            match k {
                0 => (Op::Silu { x: hv }, vec(h), h),
                1 => (Op::Linear { x: hv + 1, res: None, weight: t(tw), bias: t(tw + 1) }, vec(h), 2 * h),
                2 => (Op::ChannelBias { x: hv + 2, v: 4 }, vec(h), 2 * h),
                3 => (Op::Silu { x: hv + 3 }, vec(h), 2 * h),
                _ => (Op::Linear { x: hv + 4, res: Some(hv), weight: t(tw + 2), bias: t(tw + 3) }, vec(h), 0),
            }
        }
        i if i == last_block => (Op::Silu { x: last_block as Value }, vec(h), 0),
        i if i == last_block + 1 => {
            let w = 8 + 4 * nb;
            (
                Op::Linear { x: last_block as Value + 1, res: None, weight: t(w), bias: t(w + 1) },
                vec(d.dim),
                0,
            )
        }
        _ => return [0; RECORD_LEN],
    };
    op.encode(shape, off as u32)
}

/// The same graph through the [`Builder`], for the converter and the trainer.
pub fn build(d: &Dims) -> Result<Plan, GraphError> {
    let mut g = Builder::new(Shape { channels: d.dim, length: 1 }, 2);
    let phi = g.time_features(d.freqs)?;
    let t1 = g.linear(phi, d.hidden, None)?;
    let t1 = g.silu(t1)?;
    let temb = g.linear(t1, d.hidden, None)?;
    let mut h = g.linear(0, d.hidden, None)?;
    for _ in 0..d.blocks {
        let a = g.silu(h)?;
        let u = g.linear(a, d.hidden, None)?;
        let u = g.channel_bias(u, temb)?;
        let u = g.silu(u)?;
        h = g.linear(u, d.hidden, Some(h))?;
    }
    let a = g.silu(h)?;
    g.linear(a, d.dim, None)?;
    g.finish()
}

#[cfg(test)]
mod tests {
    use super::super::Graph;
    use super::*;

    #[test]
    fn generated_records_are_the_builders() {
        for (dim, hidden, freqs, blocks) in
            [(2, 8, 4, 1), (2, 128, 32, 3), (64, 16, 64, 2), (3, 4, 8, 8), (1, 2, 2, 1), (5, 32, 32, 2)]
        {
            let d = Dims { dim, hidden, freqs, blocks };
            let plan = build(&d).unwrap();
            assert_eq!(plan.regions(), regions(&d), "{d:?}");
            assert_eq!(plan.records().len(), layer_count(&d) * RECORD_LEN);
            for (i, want) in plan.records().chunks_exact(RECORD_LEN).enumerate() {
                assert_eq!(&record(&d, i)[..], want, "{d:?} layer {i}");
            }
            let g = Graph::mlp(d, &plan).unwrap();
            let macs =
                freqs * hidden + hidden * hidden + dim * hidden + 2 * blocks * hidden * hidden + hidden * dim;
            assert_eq!(g.macs(), macs as u64);
            assert_eq!(g.time_layers(), 4);
        }
    }
}
