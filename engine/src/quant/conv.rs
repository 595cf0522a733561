//! The portable reference of the int8 convolution: the dot products of a `conv1d` layer
//! (`docs/scorenet.md`) with int8 weights and int8 activations, accumulated in i32:
//!
//! ```text
//! acc[l, co] = Σ_j W[co, j]·col_l[j],   col_l[ci·K + k] = x[s·l + k·d − p, ci]  (0 outside [0, L))
//! ```
//!
//! with W (C_out, C_in·K) the layer's int8 weight (one scale per output channel, the rows of the
//! `w8` file) and x channels-last (position-major, the arena's layout). The zero of a symmetric
//! int8 scale is the integer 0, so "same" padding stays exact. Integer addition is exact, so the
//! order of the sum cannot change the result; the columns are gathered and multiplied by
//! [`super::dot_i8`] (the linear layer's dot product), and each position's C_out accumulators are
//! one vector for the epilogues of [`super::epilogue`] (`so = C_out`): a convolution is
//! requantized, added to its residual and passed through its SiLU table by the very rule and
//! code of the linear layers. A leaf module apart from those two calls.
//!
//! The integer walk of a convolutional plan (`net/int8_conv.rs`) calls [`conv_i8_from`] for
//! every `conv1d` step: its input an int8 value, or an int16 stream read as its table index,
//! optionally upsampled by 2 in the gather (`docs/quantization.md`); on the Cortex-M DSP targets
//! it runs the packed form of the same sums first (`conv_packed.rs`, tested against this one).

use super::dot_i8;

/// Largest C_in·K of an int8 convolution: the bound of [`super::dot_i8`]'s linear layers
/// (|Σ| ≤ 512·127·128 < 2^23), so that a folded bias and time embedding cannot overflow i32.
pub const MAX_CONV_COLS: usize = 512;

/// The sizes of one int8 convolution, checked once ([`ConvShape::new`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    c_in: usize,
    l_in: usize,
    c_out: usize,
    kernel: usize,
    dilation: usize,
    stride: usize,
}

impl ConvShape {
    /// The shape of a convolution of C_in × L_in into C_out channels with kernel K (odd),
    /// dilation d ≥ 1 and stride s ∈ {1, 2}; `None` if a size is out of range or
    /// C_in·K > [`MAX_CONV_COLS`].
    pub fn new(
        c_in: usize,
        l_in: usize,
        c_out: usize,
        kernel: usize,
        dilation: usize,
        stride: usize,
    ) -> Option<Self> {
        let ok = c_in > 0
            && l_in > 0
            && c_out > 0
            && kernel % 2 == 1
            && dilation > 0
            && (stride == 1 || stride == 2)
            && c_in.checked_mul(kernel).is_some_and(|ck| ck <= MAX_CONV_COLS)
            && dilation.checked_mul(kernel).is_some()
            && l_in.checked_mul(c_in).is_some();
        ok.then_some(Self { c_in, l_in, c_out, kernel, dilation, stride })
    }

    /// C_in, the input channels.
    pub fn c_in(&self) -> usize {
        self.c_in
    }

    /// L_in, the input positions (after an upsampling gather: the upsampled length).
    pub fn l_in(&self) -> usize {
        self.l_in
    }

    /// C_out, the output channels.
    pub fn c_out(&self) -> usize {
        self.c_out
    }

    /// K, the kernel's taps (odd).
    pub fn kernel(&self) -> usize {
        self.kernel
    }

    /// d, the dilation.
    pub fn dilation(&self) -> usize {
        self.dilation
    }

    /// s, the stride (1 or 2).
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// C_in·K, the columns of the weight and of each gathered column.
    pub fn cols(&self) -> usize {
        self.c_in * self.kernel
    }

    /// L_out = ⌈L_in / s⌉.
    pub fn l_out(&self) -> usize {
        self.l_in.div_ceil(self.stride)
    }

    /// The accumulators' length, L_out·C_out.
    pub fn acc_len(&self) -> usize {
        self.l_out() * self.c_out
    }
}

/// Why [`conv_i8`] did not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvSizeError;

/// Where an int8 convolution's input comes from (channels-last, position-major).
#[derive(Clone, Copy, Debug)]
pub enum Source<'x> {
    /// An int8 value (L_in × C_in).
    I8(&'x [i8]),
    /// An int16 residual stream h, read as its int8 table index
    /// [`super::residual_index`]`(h)` (scale 2^8 times the stream's): how a strided or
    /// upsampling convolution reads the stream itself.
    I16(&'x [i16]),
}

/// `acc[l·C_out + co] = Σ_j W[co, j]·col_l[j]` for every output position l and channel co
/// (module documentation): `w` the weight's stored bytes (C_out × C_in·K, row-major), `x` the
/// input (L_in × C_in, channels-last), `col` scratch of C_in·K bytes. Refuses slices shorter
/// than the shape needs (nothing written) instead of panicking.
pub fn conv_i8(
    s: &ConvShape,
    w: &[u8],
    x: &[i8],
    col: &mut [i8],
    acc: &mut [i32],
) -> Result<(), ConvSizeError> {
    conv_i8_from(s, w, Source::I8(x), false, col, acc)
}

/// Output positions whose columns the integer walk gathers at once ([`conv_i8_with`]): the
/// vectors of one call of a multi-vector int8 matmul (`quant::x86::matmul_i8`).
pub const CONV_TILE: usize = 8;

/// [`conv_i8`] of any [`Source`]; with `upsample` the input is `upsample2` of `x`: position
/// p < L_in reads `x[⌊p/2⌋]` (`x` holds L_in/2 positions, L_in even), the nearest-neighbour
/// upsampling folded into the gather. The same dot products ([`super::dot_i8`]) of the same
/// gathered columns: an int16 source contributes `residual_index(h)`, exactly the int8 value
/// an `I8` source holding those indices gives. `col` holds one column (C_in·K bytes) or more.
pub fn conv_i8_from(
    s: &ConvShape,
    w: &[u8],
    x: Source<'_>,
    upsample: bool,
    col: &mut [i8],
    acc: &mut [i32],
) -> Result<(), ConvSizeError> {
    let ck = s.cols();
    conv_i8_with(s, w, x, upsample, col, acc, |w, cols, n, acc| {
        for (c, out) in cols.chunks_exact(ck).zip(acc.chunks_exact_mut(s.c_out)).take(n) {
            for (o, row) in out.iter_mut().zip(w.chunks_exact(ck)) {
                *o = dot_i8(row, c);
            }
        }
    })
}

/// The operands of a convolution cut to the lengths its shape reads: the weight's C_out·C_in·K
/// bytes, the source's L_in·C_in values (L_in/2 upsampled, when L_in must be even) and the
/// L_out·C_out accumulators; [`ConvSizeError`] if a slice is shorter. Every int8 convolution
/// kernel checks its operands by this one rule before it writes anything.
pub fn operands<'a, 'x>(
    s: &ConvShape,
    w: &'a [u8],
    x: Source<'x>,
    upsample: bool,
    acc: &'a mut [i32],
) -> Result<(&'a [u8], Source<'x>, &'a mut [i32]), ConvSizeError> {
    let src_len = if upsample {
        if s.l_in % 2 != 0 {
            return Err(ConvSizeError);
        }
        s.l_in / 2
    } else {
        s.l_in
    };
    let n_in = src_len * s.c_in;
    let x = match x {
        Source::I8(v) => Source::I8(v.get(..n_in).ok_or(ConvSizeError)?),
        Source::I16(v) => Source::I16(v.get(..n_in).ok_or(ConvSizeError)?),
    };
    let (Some(w), Some(acc)) = (w.get(..s.c_out * s.cols()), acc.get_mut(..s.acc_len())) else {
        return Err(ConvSizeError);
    };
    Ok((w, x, acc))
}

/// [`conv_i8_from`] with the dot products of a tile of positions by `mul`: the columns of up to
/// `col.len() / (C_in·K)` positions are gathered into `col` (position-major), then
/// `mul(w, cols, n, acc)` writes `acc[j·C_out + co] = Σ_k w[co·C_in·K + k]·cols[j·C_in·K + k]` for
/// the n positions — [`super::dot_i8`] row by row here, the AVX2 or NEON int8 matmul in the
/// network (integer sums are exact: every `mul` that computes them gives the same bits).
pub fn conv_i8_with(
    s: &ConvShape,
    w: &[u8],
    x: Source<'_>,
    upsample: bool,
    col: &mut [i8],
    acc: &mut [i32],
    mut mul: impl FnMut(&[u8], &[i8], usize, &mut [i32]),
) -> Result<(), ConvSizeError> {
    let ck = s.cols();
    let (w, x, acc) = operands(s, w, x, upsample, acc)?;
    let tile = col.len() / ck;
    if tile == 0 {
        return Err(ConvSizeError);
    }
    let pad = s.dilation * (s.kernel - 1) / 2;
    let shift = usize::from(upsample);
    let span = s.dilation * (s.kernel - 1);
    // Taps of the next position that are this position's taps `step` further on (an int8
    // input read as it is, stride a multiple of the dilation); none otherwise.
    let step = match (x, upsample, s.stride.checked_rem(s.dilation)) {
        (Source::I8(_), false, Some(0)) if s.stride / s.dilation < s.kernel => Some(s.stride / s.dilation),
        _ => None,
    };
    // Where in `col` the previous position's column is, when it lay wholly inside the input.
    let mut prev: Option<usize> = None;
    for (t, out) in acc.chunks_mut(tile * s.c_out).enumerate() {
        let n = out.len() / s.c_out;
        for j in 0..n {
            // col_l[ci·K + k] = x[s·l + k·d − p, ci]                                (C_in·K)
            let centre = s.stride * (t * tile + j);
            let at = j * ck;
            let inside = centre >= pad && centre - pad + span < s.l_in;
            if let (Some(step), Some(from), true, Source::I8(v)) = (step, prev, inside, x) {
                // The previous column moved by `step` taps, then the new taps of each channel.
                col.copy_within(from + step..from + ck, at);
                for k in s.kernel - step..s.kernel {
                    let pos = centre - pad + k * s.dilation;
                    for (ci, &value) in v[pos * s.c_in..(pos + 1) * s.c_in].iter().enumerate() {
                        col[at + ci * s.kernel + k] = value;
                    }
                }
                prev = Some(at);
                continue;
            }
            prev = (step.is_some() && inside).then_some(at);
            let col = &mut col[at..at + ck];
            for ci in 0..s.c_in {
                for k in 0..s.kernel {
                    let pos = (centre + k * s.dilation).wrapping_sub(pad);
                    col[ci * s.kernel + k] = if pos < s.l_in {
                        let at = (pos >> shift) * s.c_in + ci;
                        match x {
                            Source::I8(v) => v[at],
                            Source::I16(v) => super::residual_index(v[at]),
                        }
                    } else {
                        0
                    };
                }
            }
        }
        mul(w, &col[..n * ck], n, out);
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::quant::{epilogue, requantize, sat_i8, Epilogue};

    /// A small deterministic generator (xorshift) of int8 values in [−127, 127] (also the
    /// packed convolution's tests').
    pub(crate) fn values(seed: u32, n: usize) -> impl Iterator<Item = i8> {
        let mut s = seed.wrapping_mul(2_654_435_761).max(1);
        (0..n).map(move |_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            ((s % 255) as i32 - 127) as i8
        })
    }

    /// The definition, written out: the sum over (ci, k) in i64 with explicit bounds checks.
    fn oracle(s: &ConvShape, w: &[i8], x: &[i8]) -> Vec<i32> {
        let (ci_n, k_n, d, st) = (s.c_in, s.kernel, s.dilation as i64, s.stride as i64);
        let p = d * (k_n as i64 - 1) / 2;
        let mut out = vec![0; s.acc_len()];
        for l in 0..s.l_out() {
            for co in 0..s.c_out {
                let mut sum = 0i64;
                for ci in 0..ci_n {
                    for k in 0..k_n {
                        let pos = st * l as i64 + k as i64 * d - p;
                        if (0..s.l_in as i64).contains(&pos) {
                            let wv = w[co * ci_n * k_n + ci * k_n + k] as i64;
                            sum += wv * x[pos as usize * ci_n + ci] as i64;
                        }
                    }
                }
                out[l * s.c_out + co] = i32::try_from(sum).unwrap();
            }
        }
        out
    }

    const SHAPES: [(usize, usize, usize, usize, usize, usize); 9] = [
        (1, 16, 4, 3, 1, 1),
        (4, 16, 4, 3, 1, 1),
        (4, 16, 8, 3, 1, 2),
        (8, 15, 8, 5, 1, 2),
        (3, 7, 2, 5, 2, 1),
        (20, 64, 20, 3, 1, 1),
        (40, 32, 20, 3, 1, 1),
        (2, 1, 3, 1, 1, 1),
        (170, 9, 3, 3, 1, 1),
    ];

    #[test]
    fn the_kernel_is_the_definition() {
        for (i, &(c_in, l_in, c_out, k, d, st)) in SHAPES.iter().enumerate() {
            let s = ConvShape::new(c_in, l_in, c_out, k, d, st).unwrap();
            let w: Vec<i8> = values(i as u32 + 1, c_out * s.cols()).collect();
            let mut x: Vec<i8> = values(100 + i as u32, l_in * c_in).collect();
            // The extremes too: every product at ±127·127.
            if i == 8 {
                x.fill(-127);
            }
            let wb: Vec<u8> = w.iter().map(|&v| v as u8).collect();
            let (mut col, mut acc) = (vec![0i8; s.cols()], vec![7i32; s.acc_len()]);
            conv_i8(&s, &wb, &x, &mut col, &mut acc).unwrap();
            assert_eq!(acc, oracle(&s, &w, &x), "{:?}", SHAPES[i]);
        }
    }

    /// With K = 1 and one position the convolution is the linear layer's dot product.
    #[test]
    fn a_pointwise_convolution_is_a_linear_layer() {
        let s = ConvShape::new(37, 1, 5, 1, 1, 1).unwrap();
        let w: Vec<u8> = values(3, 5 * 37).map(|v| v as u8).collect();
        let x: Vec<i8> = values(4, 37).collect();
        let (mut col, mut acc) = (vec![0i8; 37], vec![0i32; 5]);
        conv_i8(&s, &w, &x, &mut col, &mut acc).unwrap();
        for (r, &a) in acc.iter().enumerate() {
            assert_eq!(a, dot_i8(&w[r * 37..(r + 1) * 37], &x));
        }
    }

    /// Each position's accumulators are one vector of the linear layers' epilogue: a `Table`
    /// epilogue over the L_out positions gives every value the one requantization rule.
    #[test]
    fn positions_go_through_the_linear_epilogue() {
        let s = ConvShape::new(4, 16, 6, 3, 1, 1).unwrap();
        let w: Vec<u8> = values(9, 6 * 12).map(|v| v as u8).collect();
        let x: Vec<i8> = values(10, 64).collect();
        let (mut col, mut acc) = (vec![0i8; 12], vec![0i32; s.acc_len()]);
        conv_i8(&s, &w, &x, &mut col, &mut acc).unwrap();
        // (bias, multiplier, shift) per channel; an identity table (index → itself).
        let triples: Vec<[i32; 3]> = (0..6).map(|r| [r * 100 - 250, (1 << 30) + r * 12_345, 9 + r]).collect();
        let rq: Vec<u8> = triples.iter().flatten().flat_map(|v| v.to_le_bytes()).collect();
        let table: Vec<u8> = (0..256i32).map(|i| (i - 128).clamp(-127, 127) as i8 as u8).collect();
        let add = [5, -5, 0, 17, -300, 2];
        let mut out = vec![0i8; s.acc_len()];
        let mut e = Epilogue::Table { add: &add, table: &table, out: &mut out };
        epilogue(&rq, &acc, 6, s.l_out(), 0..6, 6, &mut e);
        for l in 0..s.l_out() {
            for (co, t) in triples.iter().enumerate() {
                let a = acc[l * 6 + co] + t[0] + add[co];
                let want = sat_i8(requantize(a, t[1], t[2] as u32));
                assert_eq!(out[l * 6 + co], want, "position {l} channel {co}");
            }
        }
    }

    /// Shapes out of range and short slices are refused, never a panic.
    #[test]
    fn bad_sizes_are_refused() {
        for (c_in, l_in, c_out, k, d, st) in [
            (0, 4, 1, 3, 1, 1),
            (1, 0, 1, 3, 1, 1),
            (1, 4, 0, 3, 1, 1),
            (1, 4, 1, 2, 1, 1),
            (1, 4, 1, 3, 0, 1),
            (1, 4, 1, 3, 1, 3),
            (171, 4, 1, 3, 1, 1),
            (usize::MAX, 4, 1, 3, 1, 1),
            (1, 4, 1, 3, usize::MAX, 1),
        ] {
            assert_eq!(
                ConvShape::new(c_in, l_in, c_out, k, d, st),
                None,
                "{c_in} {l_in} {c_out} {k} {d} {st}"
            );
        }
        let s = ConvShape::new(2, 8, 3, 3, 1, 1).unwrap();
        let (w, x) = (vec![0u8; 18], vec![0i8; 16]);
        let (mut col, mut acc) = (vec![0i8; 6], vec![1i32; 24]);
        assert_eq!(conv_i8(&s, &w[..17], &x, &mut col, &mut acc), Err(ConvSizeError));
        assert_eq!(conv_i8(&s, &w, &x[..15], &mut col, &mut acc), Err(ConvSizeError));
        assert_eq!(conv_i8(&s, &w, &x, &mut col[..5], &mut acc), Err(ConvSizeError));
        assert_eq!(conv_i8(&s, &w, &x, &mut col, &mut acc[..23]), Err(ConvSizeError));
        assert!(acc.iter().all(|&a| a == 1));
        assert_eq!(conv_i8(&s, &w, &x, &mut col, &mut acc), Ok(()));
    }

    /// An int16 source is its table indices; an upsampled source is the upsampled copy.
    #[test]
    fn stream_and_upsampled_sources_are_their_int8_copies() {
        let s = ConvShape::new(3, 16, 4, 5, 1, 1).unwrap();
        let w: Vec<u8> = values(21, 4 * 15).map(|v| v as u8).collect();
        let h: Vec<i16> =
            values(22, 8 * 3).zip(values(23, 24)).map(|(a, b)| a as i16 * 258 + b as i16).collect();
        // The int8 copy: indices, upsampled by hand.
        let idx: Vec<i8> = h.iter().map(|&v| crate::quant::residual_index(v)).collect();
        let up: Vec<i8> = (0..16).flat_map(|p| idx[(p / 2) * 3..(p / 2) * 3 + 3].to_vec()).collect();
        let (mut col, mut a, mut b) = (vec![0i8; 15], vec![0i32; s.acc_len()], vec![1i32; s.acc_len()]);
        conv_i8(&s, &w, &up, &mut col, &mut a).unwrap();
        conv_i8_from(&s, &w, Source::I16(&h), true, &mut col, &mut b).unwrap();
        assert_eq!(a, b);
        // Not upsampled: the first 16 positions would need 48 values; 24 are refused.
        assert_eq!(conv_i8_from(&s, &w, Source::I16(&h), false, &mut col, &mut b), Err(ConvSizeError));
        let s8 = ConvShape::new(3, 8, 4, 5, 1, 2).unwrap();
        let (mut c, mut d) = (vec![0i32; s8.acc_len()], vec![0i32; s8.acc_len()]);
        conv_i8(&s8, &w, &idx, &mut col, &mut c).unwrap();
        conv_i8_from(&s8, &w, Source::I16(&h), false, &mut col, &mut d).unwrap();
        assert_eq!(c, d);
    }

    /// Tiles of columns give each position the value one column at a time gives, whatever the
    /// tile; and on x86-64 with AVX2 the AVX2 int8 matmul as `mul` gives the portable bits.
    #[test]
    fn tiles_and_the_simd_matmul_give_the_same_accumulators() {
        for (i, &(c_in, l_in, c_out, k, d, st)) in SHAPES.iter().enumerate() {
            let s = ConvShape::new(c_in, l_in, c_out, k, d, st).unwrap();
            let w: Vec<u8> = values(i as u32 + 40, c_out * s.cols()).map(|v| v as u8).collect();
            let x: Vec<i8> = values(i as u32 + 80, l_in * c_in).collect();
            let mut want = vec![0i32; s.acc_len()];
            conv_i8(&s, &w, &x, &mut vec![0i8; s.cols()], &mut want).unwrap();
            for tile in [2, 3, CONV_TILE] {
                let mut got = vec![9i32; s.acc_len()];
                let mut col = vec![0i8; tile * s.cols()];
                conv_i8_from(&s, &w, Source::I8(&x), false, &mut col, &mut got).unwrap();
                assert_eq!(got, want, "{:?} tile {tile}", SHAPES[i]);
            }
            #[cfg(target_arch = "x86_64")]
            {
                if !std::is_x86_feature_detected!("avx2") {
                    println!("skipped: AVX2 conv matmul: this CPU has no AVX2");
                    continue;
                }
                // SAFETY: the CPU has AVX2 (checked above).
                #[allow(unsafe_code)]
                let tok = unsafe { crate::kernels::Avx2::new_unchecked() };
                let (ck, co) = (s.cols(), s.c_out);
                let mut got = vec![9i32; s.acc_len()];
                let mut col = vec![0i8; CONV_TILE * ck];
                conv_i8_with(&s, &w, Source::I8(&x), false, &mut col, &mut got, |w, cols, n, acc| {
                    crate::quant::x86::matmul_i8(tok, w, co, ck, cols, ck, n, acc, co)
                })
                .unwrap();
                assert_eq!(got, want, "{:?} AVX2", SHAPES[i]);
            }
        }
    }
}
