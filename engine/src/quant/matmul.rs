//! int8 × int8 dot products with exact int32 sums: the portable [`dot_i8`], the prepared forms
//! of one layer's activations ([`Prepared`], [`PreparedTile`]) that the Cortex-M4/M7 DSP kernels
//! (`quant/dsp.rs`) read, and [`matmul_prepared`], a layer's rows × vectors. Integer sums are
//! exact, so every kernel gives [`dot_i8`]'s value on every target.

#[cfg(tinyscore_dsp)]
use super::dsp;
use super::prepared::{prepare_into, prepare_tile_into, prepared_words, tile_kernel, CHUNK};

/// `Σ_c w[c]·x[c]` of an int8 weight row (stored bytes) and int8 activations, accumulated in i32.
/// Sixteen interleaved partial sums (integer addition is exact and associative, so the order
/// cannot change the result; it lets a compiler use two 8-lane AVX2 registers, or four SSE2
/// ones). `|result| ≤ cols·128·128`, so it cannot overflow for `cols ≤ 512`.
#[cfg_attr(not(target_arch = "arm"), inline(always))]
#[cfg_attr(target_arch = "arm", inline)]
pub fn dot_i8(w: &[u8], x: &[i8]) -> i32 {
    const N: usize = 16;
    let mut lanes = [0i32; N];
    let mut wc = w.chunks_exact(N);
    let mut xc = x.chunks_exact(N);
    for (w16, x16) in (&mut wc).zip(&mut xc) {
        for j in 0..N {
            lanes[j] += (w16[j] as i8) as i32 * x16[j] as i32;
        }
    }
    let mut acc: i32 = lanes.iter().sum();
    for (&wi, &xi) in wc.remainder().iter().zip(xc.remainder()) {
        acc += (wi as i8) as i32 * xi as i32;
    }
    acc
}

/// One layer's int8 activations, prepared once for the dot products of all its rows.
///
/// On the Cortex-M4/M7 (`thumbv7em` targets) the activations of every full chunk of 16 columns
/// are widened to int16 pairs in the order the DSP kernel's `SXTB16` unpacks a weight word —
/// columns (0, 2), (1, 3), (4, 6), (5, 7), … — so each `SMLAD` multiplies two weights by two
/// activations without unpacking the activations again per row. Elsewhere nothing is prepared
/// and [`Prepared::dot`] is [`dot_i8`]. The result is the same exact integer on every target.
#[derive(Clone, Copy, Debug)]
pub struct Prepared<'a> {
    x: &'a [i8],
    /// Widened activations of the full chunks (empty where the kernel is portable).
    #[cfg_attr(not(tinyscore_dsp), allow(dead_code))]
    words: &'a [u32],
}

impl<'a> Prepared<'a> {
    /// Prepares `x` using `buf` (at least [`prepared_words`]`(x.len())` words, else the portable
    /// kernel is used; only written on `thumbv7em` targets).
    #[inline]
    pub fn new(x: &'a [i8], buf: &'a mut [u32]) -> Self {
        let n = prepared_words(x.len());
        if cfg!(tinyscore_dsp) && buf.len() >= n {
            let buf = &mut buf[..n];
            prepare_into(x, buf);
            Self { x, words: buf }
        } else {
            Self { x, words: &[] }
        }
    }

    /// `Σ_c w[c]·x[c]` of an int8 weight row (stored bytes, `x.len()` of them) with these
    /// activations, in i32: [`dot_i8`]'s exact value.
    #[cfg_attr(not(target_arch = "arm"), inline(always))]
    #[cfg_attr(target_arch = "arm", inline)]
    pub fn dot(&self, w: &[u8]) -> i32 {
        let full = prepared_words(self.x.len()) / 8 * CHUNK;
        #[cfg(tinyscore_dsp)]
        if !self.words.is_empty() && w.len() >= full {
            if let Some(acc) = dsp::dot16(&w[..full], self.words) {
                // (An empty tail is skipped: it adds 0, and the call is not free on the M4.)
                if full < self.x.len() {
                    return acc + dot_i8(&w[full..], &self.x[full..]);
                }
                return acc;
            }
        }
        let _ = full;
        dot_i8(w, self.x)
    }
}

/// The DSP kernel itself on `thumbv7em` targets (`None` when `w` is not 4-byte aligned or
/// `words` too short), for the firmware's property test against [`dot16_model`] and [`dot_i8`].
#[cfg(tinyscore_dsp)]
pub fn dot16_dsp(w: &[u8], words: &[u32]) -> Option<i32> {
    dsp::dot16(w, words)
}

/// `S` vectors' int8 activations (one layer's input for `S` inputs), prepared once for the dot
/// products of all the layer's rows, so that each weight word is unpacked once for all `S`.
///
/// On the Cortex-M4/M7 (`thumbv7em` targets, unless built for size: `engine/build.rs`) and for
/// S = 2 or 4 ([`tile_kernel`]) the full
/// 16-column chunks are widened to int16 pairs and interleaved ([`prepare_tile_into`]): the DSP
/// kernel loads one weight word, unpacks it with two `SXTB16` and multiplies it with the `S`
/// vectors' pairs (`SMLAD`). Elsewhere nothing is prepared and [`PreparedTile::dots`] is
/// [`dot_i8`] per vector. Exact integers: the same result on every target.
#[derive(Clone, Copy, Debug)]
pub struct PreparedTile<'a, const S: usize> {
    xs: [&'a [i8]; S],
    /// The common length of the vectors (the shortest).
    cols: usize,
    /// Interleaved widened activations (empty where the kernel is portable).
    #[cfg_attr(not(tinyscore_dsp_tile), allow(dead_code))]
    words: &'a [u32],
}

impl<'a, const S: usize> PreparedTile<'a, S> {
    /// Prepares the vectors `xs` (their first `cols` columns, `cols` the shortest length) using
    /// `buf` (at least `S·`[`prepared_words`]`(cols)` words, else the portable kernel is used;
    /// only written on `thumbv7em` targets).
    #[inline]
    pub fn new(xs: [&'a [i8]; S], buf: &'a mut [u32]) -> Self {
        let cols = xs.iter().map(|x| x.len()).min().unwrap_or(0);
        let n = S * prepared_words(cols);
        if cfg!(tinyscore_dsp_tile) && tile_kernel(S) && n > 0 && buf.len() >= n {
            let buf = &mut buf[..n];
            #[cfg(tinyscore_dsp_tile)]
            let done = dsp::prepare_tile::<S>(core::array::from_fn(|s| &xs[s][..cols]), buf);
            #[cfg(not(tinyscore_dsp_tile))]
            let done = false;
            if !done {
                prepare_tile_into(xs, buf);
            }
            Self { xs, cols, words: buf }
        } else {
            Self { xs, cols, words: &[] }
        }
    }

    /// `[Σ_c w[c]·x_s[c] for each vector s]` of an int8 weight row (stored bytes, at least
    /// `cols` of them), in i32: [`dot_i8`]'s exact values.
    #[inline(always)]
    pub fn dots(&self, w: &[u8]) -> [i32; S] {
        let cols = self.cols;
        #[cfg(tinyscore_dsp_tile)]
        if !self.words.is_empty() && w.len() >= cols {
            let full = cols / CHUNK * CHUNK;
            if let Some(mut acc) = dsp::dot16_tile::<S>(&w[..full], self.words) {
                if full < cols {
                    for (a, x) in acc.iter_mut().zip(&self.xs) {
                        *a += dot_i8(&w[full..cols], &x[full..cols]);
                    }
                }
                return acc;
            }
        }
        core::array::from_fn(|s| dot_i8(w, &self.xs[s][..cols]))
    }
}

/// [`prepare_tile_into`] with `SXTB16` on `thumbv7em` targets (S = 2 or 4; `false` for
/// another S or a short `words`), as [`PreparedTile::new`] runs it there, for the firmware's
/// property test against [`prepare_tile_into`].
#[cfg(tinyscore_dsp)]
pub fn prepare_tile_dsp<const S: usize>(xs: [&[i8]; S], words: &mut [u32]) -> bool {
    dsp::prepare_tile(xs, words)
}

/// The four-vector DSP rows kernel as the convolution's kernel
/// ([`super::conv_packed::conv_i8_packed`]): `dot16x4_rows_strided` with the four vectors'
/// sums side by side (`vstep = 1`). For the network's convolution steps and the firmware's
/// property test against [`super::conv_packed::rows_model`].
#[cfg(tinyscore_dsp_tile)]
pub fn conv_rows_dsp(
    xp: &[u8],
    stride: usize,
    rows: usize,
    quads: usize,
    words: &[u32],
    out: &mut [i32],
    rstep: usize,
) -> bool {
    dsp::dot16x4_rows_strided(xp, stride, rows, quads, words, out, 1, rstep)
}

/// The packed convolution's widening of `quads` quads of input channels' weights of one
/// output channel in assembly (`super::conv_packed`; `false` for sizes it refuses, then the
/// portable loop runs).
#[cfg(tinyscore_dsp_tile)]
pub fn widen_quads_dsp(src: &[u8], kn: usize, quads: usize, words: &mut [u32], tap: usize) -> bool {
    dsp::widen_quads(src, kn, quads, words, tap)
}

/// The multi-vector DSP kernel itself on `thumbv7em` targets, S = 2 or 4 (`None` for another S,
/// when `w` is not 4-byte aligned or `words` too short), for the firmware's property test
/// against [`dot16_tile_model`] and [`dot_i8`].
#[cfg(tinyscore_dsp)]
pub fn dot16_tile_dsp<const S: usize>(w: &[u8], words: &[u32]) -> Option<[i32; S]> {
    dsp::dot16_tile::<S>(w, words)
}

/// `out[i][r] = Σ_c W[r, c]·x_i[c]` (int8 × int8, exact i32) for rows `r < rows` of the int8
/// matrix `w` (row `r` at `w[r·stride..]`, `cols ≤ stride` columns used) and every vector `i` of
/// `xs` (their first `cols` columns), with `buf` for the prepared activations. On the
/// Cortex-M4/M7 (unless built for size) the vectors go through the multi-vector kernel four at a time (then two, then
/// one: [`PreparedTile`], [`Prepared`]) as far as `buf` holds their prepared form
/// (`4·`[`prepared_words`]`(cols)` words for four); elsewhere it is [`dot_i8`] per row and vector.
/// The same exact integers in every case.
///
/// # Panics
/// If `w` is shorter than `rows` rows, or `rows`/`cols` exceed `H`/`K` (caller bugs).
pub fn matmul_prepared<const K: usize, const H: usize>(
    w: &[u8],
    stride: usize,
    rows: usize,
    cols: usize,
    xs: &[[i8; K]],
    out: &mut [[i32; H]],
    buf: &mut [u32],
) {
    let row = |r: usize| &w[r * stride..r * stride + cols];
    let words = prepared_words(cols);
    let n = xs.len().min(out.len());
    let mut i = 0;
    while i < n {
        let fits = |s: usize| n - i >= s && s * words <= buf.len() && words > 0;
        let s = if cfg!(tinyscore_dsp_tile) && fits(4) {
            4
        } else if cfg!(tinyscore_dsp_tile) && fits(2) {
            2
        } else {
            1
        };
        let (x, o) = (&xs[i..i + s], &mut out[i..i + s]);
        match s {
            4 => tile_rows::<4, K, H>(w, stride, rows, cols, x, o, buf),
            2 => tile_rows::<2, K, H>(w, stride, rows, cols, x, o, buf),
            _ => {
                let p = Prepared::new(&x[0][..cols], buf);
                for (r, a) in o[0][..rows].iter_mut().enumerate() {
                    *a = p.dot(row(r));
                }
            }
        }
        i += s;
    }
}

/// [`matmul_prepared`] for a tile of `S` vectors through [`PreparedTile`]. (Not inlined: the
/// four-vector kernel takes every register, and the one-vector path of the caller runs faster
/// without it.)
#[inline(never)]
fn tile_rows<const S: usize, const K: usize, const H: usize>(
    w: &[u8],
    stride: usize,
    rows: usize,
    cols: usize,
    xs: &[[i8; K]],
    out: &mut [[i32; H]],
    buf: &mut [u32],
) {
    let row = |r: usize| &w[r * stride..r * stride + cols];
    let p = PreparedTile::<S>::new(core::array::from_fn(|s| &xs[s][..cols]), buf);
    // Four vectors: all rows in one call of the kernel (its row loop in the assembly), then
    // the columns past the last full chunk.
    #[cfg(tinyscore_dsp_tile)]
    if S == 4 && !p.words.is_empty() && dsp::dot16x4_rows(w, stride, rows, cols / CHUNK, p.words, out) {
        let full = cols / CHUNK * CHUNK;
        if full < cols {
            for r in 0..rows {
                for (o, x) in out.iter_mut().zip(xs) {
                    o[r] += dot_i8(&row(r)[full..], &x[full..cols]);
                }
            }
        }
        return;
    }
    for r in 0..rows {
        let d = p.dots(row(r));
        for (o, v) in out.iter_mut().zip(d) {
            o[r] = v;
        }
    }
}
