//! A convolution step's input and outputs ([`ConvIo`]: its geometry and the places of its
//! values, which [`super::Int8Plan`] finds) and how the integer walk runs it in calls of at
//! most [`ACC_TILE`] output positions' accumulators ([`Tiling`], [`Call`]), each on a window of
//! the input read in place. Imports only the convolution's shape and the packed form's scratch
//! sizes (`quant/conv.rs`, `quant/conv_packed.rs`).

/// Where a convolution step's int8 input comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConvSource {
    /// The network's input x, quantized once by `s_x` (channels-last).
    X,
    /// An int8 value (a SiLU table's output) at this byte offset of the integer data region
    /// ([`super::Int8Plan::data_words`]).
    I8(u32),
    /// An int16 stream at this byte offset of the integer data region, read as its table
    /// index ([`super::residual_index`], scale 2^8 times the stream's).
    I16(u32),
}

/// A convolution step's geometry and the places of its values in the integer data region
/// (byte offsets of the plan's own layout, [`super::Int8Plan::data_words`]; `docs/quantization.md`,
/// "Convolutions").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConvIo {
    /// C_in.
    pub c_in: u16,
    /// L_in, the length of the gathered input (after the upsampling, if any).
    pub l_in: u16,
    /// L_out.
    pub l_out: u16,
    /// K.
    pub kernel: u8,
    /// d.
    pub dilation: u8,
    /// s (1 or 2).
    pub stride: u8,
    /// The input.
    pub source: ConvSource,
    /// The input is `upsample2` of `source` (folded into the gather).
    pub upsample: bool,
    /// `ToI16`, `Residual`: the stream's place (`None`: no later layer reads the stream but
    /// its SiLU; the walk keeps one position of it at a time).
    pub out_at: Option<u32>,
    /// The place of the SiLU folded into the epilogue (`Table`: its output), if any.
    pub silu_at: Option<u32>,
    /// `Residual`: the place of the stream it adds (the stream's own place where the residual
    /// dies here and the step writes over it).
    pub res_at: Option<u32>,
}

/// Output positions whose int32 accumulators the integer walk keeps at once: a convolution of
/// more output positions runs in calls of this many ([`ConvIo::tiling`]).
pub const ACC_TILE: usize = 24;

/// How the integer walk runs one convolution ([`ConvIo::tiling`]): in calls of the kernel
/// ([`super::conv::conv_i8_with`]) of at most `call` output positions' accumulators, each on a
/// window of the input read in place ([`ConvIo::call`]), each giving `valid` output positions
/// of the convolution (the last call fewer); the call's other outputs read the zeros beyond its
/// window's edges and are computed, not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tiling {
    /// Output positions a call's accumulators hold at most (`call`·C_out words).
    pub call: usize,
    /// Output positions of the convolution a call gives.
    pub valid: usize,
    /// ⌈p/s⌉: a window starts this many output positions before its first valid one.
    pub first: usize,
}

impl Tiling {
    /// Words of integer scratch the convolution needs: a call's accumulators, then the larger
    /// of what the kernels need for any of its calls ([`ConvIo::col_words`]).
    pub fn scratch_words(&self, io: &ConvIo, c_out: usize) -> usize {
        self.call * c_out + io.col_words(self, c_out)
    }
}

/// One call of a tiled convolution ([`ConvIo::call`]): the kernel runs on gathered input
/// positions `start..start + len` (the source's positions `start >> u..(start + len) >> u` for
/// an upsampling, u = 1, else u = 0), and its outputs `skip..skip + n` are the convolution's
/// output positions `p0..p0 + n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    /// The window's first gathered input position.
    pub start: usize,
    /// Its positions.
    pub len: usize,
    /// The call's first output that is the convolution's.
    pub skip: usize,
    /// The convolution's outputs it gives.
    pub n: usize,
}

impl ConvIo {
    /// The convolution's shape for [`super::conv::conv_i8_from`] (checked by the plan).
    pub fn shape(&self, c_out: usize) -> Option<super::conv::ConvShape> {
        super::conv::ConvShape::new(
            self.c_in as usize,
            self.l_in as usize,
            c_out,
            self.kernel as usize,
            self.dilation as usize,
            self.stride as usize,
        )
    }

    /// The shape of one call of a tiled convolution ([`ConvIo::call`]): its window of `len`
    /// gathered input positions.
    pub fn call_shape(&self, len: usize, c_out: usize) -> Option<super::conv::ConvShape> {
        ConvIo { l_in: u16::try_from(len).ok()?, ..*self }.shape(c_out)
    }

    /// Words of column scratch the kernels need after a call's accumulators, the largest over
    /// the calls of `tiling`: [`super::conv_packed::col_words`] of each call's window (the
    /// portable kernel's [`super::conv::CONV_TILE`] gathered columns, or the Cortex-M DSP
    /// form's packed weights and padded input window, whichever is larger; the same on every
    /// target).
    pub fn col_words(&self, tiling: &Tiling, c_out: usize) -> usize {
        let mut words = 0;
        let mut p0 = 0;
        while p0 < self.l_out as usize && tiling.valid > 0 {
            let c = self.call(tiling, p0);
            words = words.max(self.call_shape(c.len, c_out).map_or(0, |s| super::conv_packed::col_words(&s)));
            p0 += tiling.valid;
        }
        words
    }

    /// The calls that run this convolution ([`Tiling`]): [`ConvIo::tiling_of`] calls of
    /// [`ACC_TILE`] output positions, the tiling the plan's scratch is sized for
    /// ([`super::Int8Plan::scratch_words`]).
    pub fn tiling(&self) -> Tiling {
        self.tiling_of(ACC_TILE)
    }

    /// Calls of `call` output positions' accumulators (at least the halo and
    /// [`super::conv::CONV_TILE`] positions): one on the whole input if L_out ≤ that, else
    /// calls of that many output positions on windows of the input. With padding
    /// p = d·(K − 1)/2 and stride s, output l reads input positions s·l − p ..= s·l + p: a
    /// window from s·(l₀ − ⌈p/s⌉) gives outputs l₀.. from its ⌈p/s⌉-th on, all whose taps lie
    /// inside it, j₀ + V − 1 + ⌈(p + 1)/s⌉ outputs for V valid ones; an upsampling's window is
    /// widened to whole source positions (⌈2/s⌉ outputs more).
    pub fn tiling_of(&self, call: usize) -> Tiling {
        let l_out = self.l_out as usize;
        let (first, tail, slack) = self.halo();
        let call = call.max(first + tail + slack - 1 + super::conv::CONV_TILE);
        if l_out <= call {
            return Tiling { call: l_out, valid: l_out, first: 0 };
        }
        Tiling { call, valid: call + 1 - first - tail - slack, first }
    }

    /// The tiling of the fewest calls (at most [`ConvIo::tiling`]'s) whose accumulators and
    /// kernels' columns fit `words` words of scratch ([`Tiling::scratch_words`]): how the walk
    /// runs a convolution whose calls of [`ACC_TILE`] positions leave room in the plan's
    /// scratch, sized for its largest step (fewer calls: the packed form's weights prepared
    /// fewer times, fewer windows). [`ConvIo::tiling`] when not even that fits.
    pub fn tiling_within(&self, c_out: usize, words: usize) -> Tiling {
        let mut best = self.tiling();
        let l_out = self.l_out as usize;
        let (first, tail, slack) = self.halo();
        let mut calls = l_out.div_ceil(best.valid.max(1));
        while calls > 1 {
            calls -= 1;
            // ⌈L_out / calls⌉ valid outputs a call: `calls` calls.
            let t = self.tiling_of(l_out.div_ceil(calls) + first + tail + slack - 1);
            if t.scratch_words(self, c_out) > words {
                break;
            }
            best = t;
        }
        best
    }

    /// (⌈p/s⌉, ⌈(p + 1)/s⌉, the upsampling's ⌈2/s⌉ or 0): the outputs a call computes
    /// beyond its valid ones ([`ConvIo::tiling_of`]).
    fn halo(&self) -> (usize, usize, usize) {
        let s = self.stride.max(1) as usize;
        let pad = self.dilation as usize * (self.kernel as usize).saturating_sub(1) / 2;
        let slack = if self.upsample { 2usize.div_ceil(s) } else { 0 };
        (pad.div_ceil(s), (pad + 1).div_ceil(s), slack)
    }

    /// The call of `tiling` whose first output is the convolution's output `p0` (`p0` a
    /// multiple of `tiling.valid`, below L_out): its window, clipped to [0, L_in) (the zero
    /// padding beyond is the kernel's own), for an upsampling widened to even positions.
    pub fn call(&self, tiling: &Tiling, p0: usize) -> Call {
        let (s, l_in, l_out) = (self.stride.max(1) as usize, self.l_in as usize, self.l_out as usize);
        let n = tiling.valid.min(l_out.saturating_sub(p0));
        if tiling.valid >= l_out {
            return Call { start: 0, len: l_in, skip: 0, n };
        }
        let pad = self.dilation as usize * (self.kernel as usize).saturating_sub(1) / 2;
        let lo = s * p0.saturating_sub(tiling.first);
        let hi = (s * (p0 + n).saturating_sub(1) + pad + 1).min(l_in);
        let (lo, hi) = if self.upsample { (lo & !1, (hi + 1).min(l_in) & !1) } else { (lo, hi) };
        Call { start: lo, len: hi.saturating_sub(lo), skip: p0 - lo / s, n }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiled convolution's calls cover its output positions once each, in order; every
    /// output a call gives reads its taps inside the call's window (or beyond [0, L_in), the
    /// zero padding, which the kernel gives outside the window too); an upsampling's window is
    /// whole source positions; and a call's accumulators fit the tiling's.
    #[test]
    fn tiles_cover_the_convolution() {
        let shapes: [(u8, u8, u8); 7] =
            [(5, 1, 1), (5, 1, 2), (3, 1, 1), (3, 2, 1), (7, 3, 2), (1, 1, 1), (9, 4, 1)];
        for (kernel, dilation, stride) in shapes {
            for l_in in [2u16, 8, 16, 32, 34, 64, 100, 256] {
                for upsample in [false, true] {
                    let (s, pad) = (stride as usize, dilation as usize * (kernel as usize - 1) / 2);
                    let io = ConvIo {
                        c_in: 3,
                        l_in,
                        l_out: (l_in as usize).div_ceil(s) as u16,
                        kernel,
                        dilation,
                        stride,
                        source: ConvSource::X,
                        upsample,
                        out_at: None,
                        silu_at: None,
                        res_at: None,
                    };
                    let (l_in, l_out) = (l_in as usize, io.l_out as usize);
                    let halo = pad.div_ceil(s) + (pad + 1).div_ceil(s) + 2;
                    let base = io.tiling();
                    assert!(base.call <= ACC_TILE.max(halo + crate::quant::conv::CONV_TILE), "{io:?}");
                    // The plan's tiling, longer calls, and those within a scratch of 1.5 and 4
                    // times the plan's (fewer calls, each fitting it).
                    let need = base.scratch_words(&io, 3);
                    let within: [Tiling; 2] =
                        core::array::from_fn(|i| io.tiling_within(3, need * (3 + 5 * i) / 2));
                    for (i, t) in within.iter().enumerate() {
                        assert!(t.scratch_words(&io, 3) <= need.max(need * (3 + 5 * i) / 2), "{io:?} {t:?}");
                        assert!(t.valid >= base.valid, "{io:?} {t:?}");
                    }
                    if l_out > 2 * base.valid {
                        assert!(within[1].valid > base.valid, "{io:?}: 4 times the scratch, no longer calls");
                    }
                    for t in [base, io.tiling_of(40), io.tiling_of(97), within[0], within[1]] {
                        assert!(t.call >= t.valid && t.valid > 0, "{io:?}");
                        let mut p0 = 0;
                        while p0 < l_out {
                            let c = io.call(&t, p0);
                            assert!(c.n > 0 && c.n <= t.valid && c.start + c.len <= l_in, "{io:?} {c:?}");
                            assert!(c.len.div_ceil(s) <= t.call, "{io:?} {c:?}");
                            if upsample {
                                assert!(c.start % 2 == 0 && c.len % 2 == 0, "{io:?} {c:?}");
                            }
                            for m in 0..c.n {
                                let (p, j) = (p0 + m, c.skip + m);
                                assert!(s * j < c.len, "{io:?} {c:?}: output {j} beyond the call");
                                for k in 0..kernel as usize {
                                    // The call's output j reads window position s·j + k·d − p, the
                                    // convolution's output p input position s·p + k·d − p.
                                    let q = (s * p + k * dilation as usize) as isize - pad as isize;
                                    let w = (s * j + k * dilation as usize) as isize - pad as isize;
                                    assert_eq!(c.start as isize + w, q, "{io:?} {c:?}");
                                    let inside = w >= 0 && (w as usize) < c.len;
                                    assert!(inside || q < 0 || q as usize >= l_in, "{io:?} {c:?} {p} {k}");
                                }
                            }
                            p0 += c.n;
                        }
                        assert_eq!(p0, l_out);
                    }
                }
            }
        }
    }
}
