//! The 1-D convolutional score network (a small U-Net) as a layer graph, for signals of C
//! channels × L samples (`docs/scorenet.md`, "ScoreNet-conv"):
//!
//! ```text
//! time    φ = time(F); temb = linear(silu(linear(φ))) (T); ts = silu(temb)
//!         one projection p_k = linear(ts) (c_k) per residual block k          (time branch)
//! in      h = conv(x → c_0)
//! down    level i < levels: blocks × resblock(c_i); skip_i = h;
//!         h = conv(h → c_{i+1}, stride 2)                                      (L → L/2)
//! middle  blocks × resblock(c_levels)
//! up      level i = levels−1 … 0: h = conv(upsample2(h) → c_i) + skip_i;
//!         blocks × resblock(c_i)
//! out     ε̂ = conv(silu(h) → C)
//! resblock(c):  u = chan_bias(conv(silu(h) → c), p_k);  h = conv(silu(u) → c) + h
//! ```
//!
//! The residual block is ScoreNet v1's with convolutions for the dense layers and a projected
//! time embedding; c_i = width·min(i + 1, 2) channels at level i; every convolution has kernel
//! K and "same" padding. L must be a multiple of 2^levels.

use super::build::{Builder, Plan};
use super::op::{Shape, Value};
use super::GraphError;

/// The sizes of a U-Net.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UNet {
    /// C, the data's channels.
    pub channels: usize,
    /// L, the data's length (a multiple of 2^levels).
    pub length: usize,
    /// c_0, the channels of the first level.
    pub width: usize,
    /// Downsamplings.
    pub levels: usize,
    /// Residual blocks per level (and in the middle).
    pub blocks: usize,
    /// K, the kernel of every convolution (odd).
    pub kernel: usize,
    /// F, the time features.
    pub freqs: usize,
    /// T, the time embedding's width.
    pub temb: usize,
}

impl UNet {
    /// c_i, the channels at level i.
    pub fn level_channels(&self, i: usize) -> usize {
        self.width * (i + 1).min(2)
    }

    /// The residual blocks' channels in evaluation order.
    fn block_channels(&self) -> impl Iterator<Item = usize> + '_ {
        let down =
            (0..self.levels).flat_map(move |i| core::iter::repeat(self.level_channels(i)).take(self.blocks));
        let mid = core::iter::repeat(self.level_channels(self.levels)).take(self.blocks);
        let up = (0..self.levels)
            .rev()
            .flat_map(move |i| core::iter::repeat(self.level_channels(i)).take(self.blocks));
        down.chain(mid).chain(up)
    }

    /// The graph, with its arena planned.
    pub fn build(&self) -> Result<Plan, GraphError> {
        let bad = |field: &'static str| GraphError::BadField { layer: 0, field };
        if self.levels > 6 || self.length % (1 << self.levels) != 0 {
            return Err(bad("levels"));
        }
        if self.blocks == 0 || self.width == 0 || self.temb == 0 {
            return Err(bad("width"));
        }
        let mut g = Builder::new(Shape { channels: self.channels, length: self.length }, 2);
        // Time branch: φ, the time MLP, and every block's projection.
        let phi = g.time_features(self.freqs)?;
        let t = g.linear(phi, self.temb, None)?;
        let t = g.silu(t)?;
        let temb = g.linear(t, self.temb, None)?;
        let ts = g.silu(temb)?;
        let mut proj: heapless::Vec<Value, { super::MAX_LAYERS }> = heapless::Vec::new();
        for c in self.block_channels() {
            let p = g.linear(ts, c, None)?;
            proj.push(p).map_err(|_| GraphError::LayerCount { found: super::MAX_LAYERS + 1 })?;
        }
        let mut proj = proj.into_iter();
        let k = self.kernel;
        let mut resblock = |g: &mut Builder, h: Value, c: usize| -> Result<Value, GraphError> {
            let p = proj.next().ok_or(bad("blocks"))?;
            let a = g.silu(h)?;
            let u = g.conv1d(a, c, k, 1, 1, None)?;
            let u = g.channel_bias(u, p)?;
            let u = g.silu(u)?;
            g.conv1d(u, c, k, 1, 1, Some(h))
        };
        // Data branch.
        let mut h = g.conv1d(0, self.level_channels(0), k, 1, 1, None)?;
        let mut skips: heapless::Vec<Value, 8> = heapless::Vec::new();
        for i in 0..self.levels {
            for _ in 0..self.blocks {
                h = resblock(&mut g, h, self.level_channels(i))?;
            }
            skips.push(h).map_err(|_| bad("levels"))?;
            h = g.conv1d(h, self.level_channels(i + 1), k, 1, 2, None)?;
        }
        for _ in 0..self.blocks {
            h = resblock(&mut g, h, self.level_channels(self.levels))?;
        }
        for i in (0..self.levels).rev() {
            let up = g.upsample2(h)?;
            let skip = skips.pop().ok_or(bad("levels"))?;
            h = g.conv1d(up, self.level_channels(i), k, 1, 1, Some(skip))?;
            for _ in 0..self.blocks {
                h = resblock(&mut g, h, self.level_channels(i))?;
            }
        }
        let a = g.silu(h)?;
        g.conv1d(a, self.channels, k, 1, 1, None)?;
        g.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unet_plans_and_validates() {
        let u = UNet {
            channels: 1,
            length: 256,
            width: 32,
            levels: 3,
            blocks: 1,
            kernel: 3,
            freqs: 32,
            temb: 64,
        };
        let plan = u.build().unwrap();
        let g = plan.graph().unwrap();
        assert_eq!(g.input(), Shape { channels: 1, length: 256 });
        assert_eq!(g.time_layers(), 5 + 7);
        // The arena: far below one value per layer.
        let naive: usize = g.layers().map(|l| l.shape.len()).sum();
        assert!(plan.regions().data * 3 < naive, "{:?} vs {naive}", plan.regions());
        // Three-channel signals (an accelerometer) and L not a multiple of 2^levels.
        let u3 =
            UNet { channels: 3, length: 64, width: 8, levels: 2, blocks: 2, kernel: 5, freqs: 16, temb: 16 };
        let p3 = u3.build().unwrap();
        assert!(p3.regions().scratch >= 4 * 3 * 5);
        let bad = UNet { length: 102, ..u3 };
        assert!(bad.build().is_err());
    }
}
