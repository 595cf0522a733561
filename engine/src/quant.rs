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

/// Smallest valid fixed-point multiplier (2^30): multipliers are normalised to [2^30, 2^31).
pub const MULT_MIN: i32 = 1 << 30;
/// Smallest valid shift.
pub const SHIFT_MIN: u32 = 1;
/// Largest valid shift.
pub const SHIFT_MAX: u32 = 62;
/// Largest |bias| folded to int32 (2^30). With |Σ w·a| ≤ 512·127·127 < 2^23 and the time
/// embedding clamped to [`TEMB_MAX`], an accumulator can never overflow i32.
pub const BIAS_MAX: i32 = 1 << 30;
/// Largest |time embedding| once quantized to the accumulator's scale (2^29).
pub const TEMB_MAX: f32 = 536_870_912.0;
/// Largest number of timestep groups a file may hold.
pub const MAX_GROUPS: usize = 16;
/// Bits between the int16 residual stream and the int8 index of its SiLU table.
pub const RESIDUAL_EXTRA_BITS: u32 = 8;

/// The fixed-point form `(m, n)` of a positive real factor: `real ≈ m·2^−n` with
/// `m ∈ [2^30, 2^31)` and `n ∈ 1..=62`, `m = round(frac·2^31)` where `real = frac·2^e`,
/// `frac ∈ [½, 1)`. `None` when `real` is not finite and positive or outside `[2^−31, 2^30)`.
pub fn quantize_multiplier(real: f64) -> Option<(i32, u32)> {
    if !(real.is_finite() && real > 0.0) {
        return None;
    }
    let (frac, exp) = libm::frexp(real);
    let mut m = libm::round(frac * 2_147_483_648.0) as i64;
    let mut e = exp;
    if m == 1 << 31 {
        m = 1 << 30;
        e += 1;
    }
    let n = 31 - e;
    if !(SHIFT_MIN as i32..=SHIFT_MAX as i32).contains(&n) {
        return None;
    }
    Some((m as i32, n as u32))
}

/// `⌊(acc·m + 2^(n−1)) / 2^n⌋` saturated to i32: the one requantization rule (round half up).
/// `m` and `n` must be in range (the file's validation guarantees it; out-of-range values are
/// clamped so that no input can overflow).
#[inline]
pub fn requantize(acc: i32, m: i32, n: u32) -> i32 {
    let n = n.clamp(SHIFT_MIN, SHIFT_MAX);
    // |acc·m| < 2^62 and 2^(n−1) ≤ 2^61: the sum fits i64.
    let p = acc as i64 * m as i64 + (1i64 << (n - 1));
    (p >> n).clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

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

#[cfg(tinyscore_dsp)]
mod dsp;

/// Columns per chunk of the prepared kernel ([`Prepared`]).
pub const CHUNK: usize = 16;

/// Words of prepared activations [`Prepared::new`] needs for `cols` columns: 8 per full chunk of
/// 16 columns (the last `cols mod 16` columns stay int8).
pub const fn prepared_words(cols: usize) -> usize {
    cols / CHUNK * 8
}

/// Two int16 values packed in one word, `lo` in bits 0..16 and `hi` in bits 16..32: the operand
/// layout of `SMLAD`.
#[inline]
pub fn pack16(lo: i8, hi: i8) -> u32 {
    (lo as i16 as u16 as u32) | ((hi as i16 as u16 as u32) << 16)
}

/// Model of the Arm `SXTB16` instruction: bytes 0 and 2 of `v`, each sign-extended to 16 bits.
/// (`SXTB16 rd, rm, ROR #8` is `sxtb16(v.rotate_right(8))`: bytes 1 and 3.)
#[inline]
pub fn sxtb16(v: u32) -> u32 {
    let b = v.to_le_bytes();
    pack16(b[0] as i8, b[2] as i8)
}

/// Model of the Arm `SMLAD` instruction: `acc + lo(a)·lo(b) + hi(a)·hi(b)` of the signed 16-bit
/// halves (wrapping, as the instruction does; the kernels never come near it).
#[inline]
pub fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let (al, ah) = (a as u16 as i16 as i32, (a >> 16) as u16 as i16 as i32);
    let (bl, bh) = (b as u16 as i16 as i32, (b >> 16) as u16 as i16 as i32);
    acc.wrapping_add(al * bl).wrapping_add(ah * bh)
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

/// Writes the prepared form of `x`'s full 16-column chunks to `words` (8 words per chunk): word
/// `8k + 2j` = (x[16k+4j], x[16k+4j+2]), word `8k + 2j + 1` = (x[16k+4j+1], x[16k+4j+3]).
pub fn prepare_into(x: &[i8], words: &mut [u32]) {
    for (w2, x4) in words.chunks_exact_mut(2).zip(x.chunks_exact(4)) {
        w2[0] = pack16(x4[0], x4[2]);
        w2[1] = pack16(x4[1], x4[3]);
    }
}

/// The DSP kernel's loop in portable Rust, instruction for instruction (`LDM`s as slice reads,
/// [`sxtb16`], [`smlad`]): the host's check that the prepared layout and the unpacking order
/// give [`dot_i8`]'s result; the M4's check of the assembly against it is in
/// `firmware-example/examples/kernels.rs`.
pub fn dot16_model(w: &[u8], words: &[u32]) -> i32 {
    let mut acc = 0i32;
    for (w8, x4) in w.chunks_exact(8).zip(words.chunks_exact(4)).take(w.len() / CHUNK * 2) {
        let r2 = u32::from_le_bytes([w8[0], w8[1], w8[2], w8[3]]);
        let r3 = u32::from_le_bytes([w8[4], w8[5], w8[6], w8[7]]);
        acc = smlad(sxtb16(r2), x4[0], acc);
        acc = smlad(sxtb16(r2.rotate_right(8)), x4[1], acc);
        acc = smlad(sxtb16(r3), x4[2], acc);
        acc = smlad(sxtb16(r3.rotate_right(8)), x4[3], acc);
    }
    acc
}

/// The DSP kernel itself on `thumbv7em` targets (`None` when `w` is not 4-byte aligned or
/// `words` too short), for the firmware's property test against [`dot16_model`] and [`dot_i8`].
#[cfg(tinyscore_dsp)]
pub fn dot16_dsp(w: &[u8], words: &[u32]) -> Option<i32> {
    dsp::dot16(w, words)
}

/// Vectors of a tile the multi-vector DSP kernels take: 2 or 4 ([`PreparedTile`]).
pub const fn tile_kernel(s: usize) -> bool {
    s == 2 || s == 4
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

/// Writes the prepared form of the full 16-column chunks of `S` vectors (of `cols` columns, the
/// shortest length), interleaved for the multi-vector kernel: for weight word `j` (columns
/// `4j..4j+4`), word `2S·j + s` = `(x_s[4j], x_s[4j+2])` and word `2S·j + S + s` =
/// `(x_s[4j+1], x_s[4j+3])` — per weight word first the pairs `SXTB16` gives, then those of
/// `SXTB16 …, ROR #8`, vector by vector. For S = 1 this is [`prepare_into`]'s layout.
/// Writes `S·`[`prepared_words`]`(cols)` words (fewer if `words` is shorter).
pub fn prepare_tile_into<const S: usize>(xs: [&[i8]; S], words: &mut [u32]) {
    let cols = xs.iter().map(|x| x.len()).min().unwrap_or(0);
    let weight_words = cols / CHUNK * CHUNK / 4;
    for (j, out) in words.chunks_exact_mut(2 * S).take(weight_words).enumerate() {
        for (s, x) in xs.iter().enumerate() {
            let x4 = &x[4 * j..4 * j + 4];
            out[s] = pack16(x4[0], x4[2]);
            out[S + s] = pack16(x4[1], x4[3]);
        }
    }
}

/// The multi-vector DSP kernel's loop in portable Rust, instruction for instruction (one weight
/// word, its two [`sxtb16`], then [`smlad`] per vector): the host's check that the interleaved
/// layout of [`prepare_tile_into`] and the unpacking order give [`dot_i8`]'s results. The M4's
/// check of the assembly against it is in `firmware-example/examples/kernels.rs`.
pub fn dot16_tile_model<const S: usize>(w: &[u8], words: &[u32]) -> [i32; S] {
    let mut acc = [0i32; S];
    let weight_words = w.len() / CHUNK * CHUNK / 4;
    for (w4, x) in w.chunks_exact(4).zip(words.chunks_exact(2 * S)).take(weight_words) {
        let r = u32::from_le_bytes([w4[0], w4[1], w4[2], w4[3]]);
        let (lo, hi) = (sxtb16(r), sxtb16(r.rotate_right(8)));
        for (s, a) in acc.iter_mut().enumerate() {
            *a = smlad(lo, x[s], *a);
            *a = smlad(hi, x[S + s], *a);
        }
    }
    acc
}

/// [`prepare_tile_into`] with `SXTB16` on `thumbv7em` targets (S = 2 or 4; `false` for
/// another S or a short `words`), as [`PreparedTile::new`] runs it there, for the firmware's
/// property test against [`prepare_tile_into`].
#[cfg(tinyscore_dsp)]
pub fn prepare_tile_dsp<const S: usize>(xs: [&[i8]; S], words: &mut [u32]) -> bool {
    dsp::prepare_tile(xs, words)
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

/// What an int8 layer does with its requantized dot products ([`epilogue`]).
#[derive(Debug)]
pub enum Epilogue<'b> {
    /// `out[s][r] = sat_i16(requantize(acc + bias))`: the input layer; then its SiLU.
    ToI16 {
        /// (n, stride) the residual stream.
        out: &'b mut [i16],
        /// The next layer's input, silu(h).
        silu: Silu<'b>,
    },
    /// `out[s][r] = lut(table, sat_i8(requantize(acc + bias + add[r])))`: a block's first
    /// layer (`add`: the time embedding in the accumulator's scale) and its SiLU table.
    Table {
        /// (rows,) added to every vector's dot products.
        add: &'b [i32],
        /// The 256-entry table.
        table: &'b [u8],
        /// (n, stride) the int8 output.
        out: &'b mut [i8],
    },
    /// `h[s][r] = sat_i16(requantize(h, mr, nr).saturating_add(requantize(acc + bias)))`: a
    /// block's second layer and the residual connection; then its SiLU.
    Residual {
        /// The next layer's input, silu(h).
        silu: Silu<'b>,
        /// The residual's multiplier.
        mr: i32,
        /// The residual's shift.
        nr: u32,
        /// (n, stride) the residual stream, read and written.
        h: &'b mut [i16],
    },
}

/// The SiLU of the residual stream an [`Epilogue`] applies to each value `h` it writes:
/// `out[s][r] = lut(table, residual_index(h))`, the input of the next layer.
#[derive(Debug)]
pub struct Silu<'b> {
    /// The 256-entry table of silu(h_b).
    pub table: &'b [u8],
    /// (n, stride) its int8 output.
    pub out: &'b mut [i8],
}

/// Row `r`'s (bias, multiplier, shift) from a layer's little-endian int32 triples.
///
/// # Panics
/// If `rq` holds fewer than `r + 1` triples (a caller bug).
#[inline]
pub fn triple(rq: &[u8], r: usize) -> [i32; 3] {
    core::array::from_fn(|k| {
        let b = &rq[12 * r + 4 * k..12 * r + 4 * k + 4];
        i32::from_le_bytes([b[0], b[1], b[2], b[3]])
    })
}

/// The epilogue of an int8 layer, for rows `rows` of `n` vectors: `acc[s·so + r]` are the dot
/// products, `rq` holds the layer's (bias, multiplier, shift) per row as little-endian int32
/// triples (`act.requant`, `docs/format.md`), and output `s` starts at `s·stride`. This is the
/// definition; `x86::requant_layer` is its eight-lane twin.
///
/// # Panics
/// If a slice is shorter than those indices need (a caller bug, not an input error).
pub fn epilogue(
    rq: &[u8],
    acc: &[i32],
    so: usize,
    n: usize,
    rows: core::ops::Range<usize>,
    stride: usize,
    e: &mut Epilogue<'_>,
) {
    for r in rows {
        let [bias, mul, shift] = triple(rq, r);
        let shift = shift as u32;
        for s in 0..n {
            let (a, o) = (acc[s * so + r], s * stride + r);
            match e {
                Epilogue::ToI16 { out, silu } => {
                    let v = sat_i16(requantize(a + bias, mul, shift));
                    out[o] = v;
                    silu.out[o] = lut(silu.table, residual_index(v));
                }
                Epilogue::Table { add, table, out } => {
                    out[o] = lut(table, sat_i8(requantize(a + bias + add[r], mul, shift)));
                }
                Epilogue::Residual { mr, nr, h, silu } => {
                    let branch = requantize(a + bias, mul, shift);
                    let residual = requantize(h[o] as i32, *mr, *nr);
                    let v = sat_i16(residual.saturating_add(branch));
                    h[o] = v;
                    silu.out[o] = lut(silu.table, residual_index(v));
                }
            }
        }
    }
}

/// [`requantize`] for accumulators of bounded magnitude as one high-word multiply, the form
/// the Cortex-M4 epilogue uses ([`epilogue_tile`]).
///
/// With `k = max(0, 33 − n)` and `s = n + k − 32 ≥ 1`:
/// `⌊(a·m + 2^(n−1)) / 2^n⌋ = ⌊(⌊(a·2^k)·m / 2^32⌋ + 2^(s−1)) / 2^s⌋`, exactly: `2^(n+k−1)` is a
/// multiple of 2^32, so taking the high word first loses nothing. It holds when `a·2^k` fits
/// an i32 (checked against a bound on `|a|` when `k > 0`; any `a` when `n ≥ 33`), and then
/// `|a·2^k·m| ≤ 2^62`: the result needs no saturation. On the Cortex-M4 it is `LSL`, `SMMLA`
/// (the high word of the product plus the rounding term) and `ASR`, against an `SMULL`, 64-bit
/// add, shift and clamp for [`requantize`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HighRequant {
    mul: i32,
    /// k: the left shift of the accumulator.
    pre: u32,
    /// s: the right shift of the high word.
    shift: u32,
    /// 2^(s−1).
    round: i32,
}

impl HighRequant {
    /// The form of `requantize(·, mul, shift)` for every accumulator `|a| ≤ bound`, or `None`
    /// where it does not hold (`shift` is clamped to 1..=62 as [`requantize`] clamps it).
    #[inline]
    pub fn new(mul: i32, shift: u32, bound: u32) -> Option<Self> {
        let n = shift.clamp(SHIFT_MIN, SHIFT_MAX);
        let pre = 33u32.saturating_sub(n);
        // With k = 0 any i32 will do (even i32::MIN: |a·m| ≤ 2^62 still).
        if pre > 0 && (pre >= 31 || bound > (i32::MAX as u32) >> pre) {
            return None;
        }
        let s = n + pre - 32;
        Some(Self { mul, pre, shift: s, round: 1 << (s - 1) })
    }

    /// `requantize(a, mul, shift)` for `|a| ≤ bound` (another `a` gives an unspecified value,
    /// never a panic).
    #[inline(always)]
    pub fn apply(self, a: i32) -> i32 {
        let high = (((a << self.pre) as i64 * self.mul as i64) >> 32) as i32;
        high.wrapping_add(self.round) >> self.shift
    }
}

/// What an int8 layer does with its requantized dot products, for the network's tile buffers
/// (vector `s`'s values in row `s` of an `[[T; H]]`): [`Epilogue`]'s three cases, the same
/// definitions; [`TileEpilogue::flat`] gives the [`Epilogue`].
#[derive(Debug)]
pub enum TileEpilogue<'b, const H: usize> {
    /// [`Epilogue::ToI16`]: `out = sat_i16(requantize(acc + bias))`, `silu = lut(table, …)`.
    ToI16 {
        /// (n, H) the residual stream.
        out: &'b mut [[i16; H]],
        /// The 256-entry table of silu(h).
        table: &'b [u8],
        /// (n, H) silu(h).
        silu: &'b mut [[i8; H]],
    },
    /// [`Epilogue::Table`]: `out = lut(table, sat_i8(requantize(acc + bias + add[r])))`.
    Table {
        /// (rows,) added to every vector's dot products.
        add: &'b [i32],
        /// The 256-entry table.
        table: &'b [u8],
        /// (n, H) the int8 output.
        out: &'b mut [[i8; H]],
    },
    /// [`Epilogue::Residual`]: `h = sat_i16(requantize(h, mr, nr) ⊕ requantize(acc + bias))`
    /// (⊕ saturating), `silu = lut(table, residual_index(h))`.
    Residual {
        /// The residual's multiplier.
        mr: i32,
        /// The residual's shift.
        nr: u32,
        /// (n, H) the residual stream, read and written.
        h: &'b mut [[i16; H]],
        /// The 256-entry table of silu(h).
        table: &'b [u8],
        /// (n, H) silu(h).
        silu: &'b mut [[i8; H]],
    },
}

impl<'b, const H: usize> TileEpilogue<'b, H> {
    /// What a block's first layer adds to its accumulators (`None` for the other kinds).
    pub fn add(&self) -> Option<&[i32]> {
        match self {
            Self::Table { add, .. } => Some(add),
            _ => None,
        }
    }

    /// The same epilogue over flat slices (stride H), for [`epilogue`] and its AVX2 twin.
    pub fn flat(self) -> Epilogue<'b> {
        match self {
            Self::ToI16 { out, table, silu } => Epilogue::ToI16 {
                out: out.as_flattened_mut(),
                silu: Silu { table, out: silu.as_flattened_mut() },
            },
            Self::Table { add, table, out } => Epilogue::Table { add, table, out: out.as_flattened_mut() },
            Self::Residual { mr, nr, h, table, silu } => Epilogue::Residual {
                mr,
                nr,
                h: h.as_flattened_mut(),
                silu: Silu { table, out: silu.as_flattened_mut() },
            },
        }
    }
}

/// Vectors [`epilogue_tile`] requantizes per pass over a layer's rows (then 4, then 1): the
/// per-row work (reading the row's triple, forming its requantization) is shared by this many
/// vectors.
const EPILOGUE_GROUP: usize = 8;

/// [`epilogue`] for rows `0..rows` of the `n` vectors of a tile (`acc[s][r]`, outputs in the
/// same places), written for the Cortex-M4, in two passes. First the requantization, in place
/// in `acc`, row by row for groups of 8 (or 4) vectors (a row's constants are read once per
/// group): a [`HighRequant`] (`LSL`, `SMMLA`, `ASR`) wherever it holds for every accumulator
/// of the layer — with one pre-shift for the whole layer when one fits all its rows, else
/// chosen row by row, and [`requantize`] itself for a row where no form holds. `form` is
/// [`LayerForm::new`] of the same `rq`, `rows` and `add`, with `acc_max` bounding `|acc|`
/// (`cols·2^14` for `cols` int8 × int8 products); it is found once per layer, or once per call
/// of a batch. Then the rest of the kind's epilogue (saturation, tables, the residual add with
/// its requantization chosen once per layer), vector by vector with the layer's constants
/// only: on `thumbv7em` targets (unless built for size) in assembly (`quant/dsp.rs`). The same
/// values as [`epilogue`] (unit tests below, and on the M4 `firmware-example/examples/
/// kernels.rs`); `acc` is left holding the requantized values. An accumulator beyond
/// `acc_max` gives an unspecified value, never a panic.
///
/// # Panics
/// If `rq` holds fewer than `rows` triples, a table fewer than 256 entries, or `add` fewer
/// than `rows` values (caller bugs).
pub fn epilogue_tile<const H: usize>(
    rq: &[u8],
    acc: &mut [[i32; H]],
    rows: usize,
    form: LayerForm,
    e: TileEpilogue<'_, H>,
) {
    let rows = rows.min(H);
    let rq = &rq[..12 * rows];
    let add = e.add().map(|add| &add[..rows]);
    match form.pre {
        Some(pre) => requantize_rows(rq, add, OnePre(pre), acc),
        None => requantize_rows(rq, add, EachRow(form.acc_max), acc),
    }
    let acc = &*acc;
    match e {
        TileEpilogue::ToI16 { out, table, silu } => {
            let table = table256(table);
            for ((a, h), o) in acc.iter().zip(out).zip(silu) {
                let (a, h, o) = (&a[..rows], &mut h[..rows], &mut o[..rows]);
                #[cfg(tinyscore_dsp_tile)]
                if dsp::to_i16_out(a, table, h, o) {
                    continue;
                }
                for ((&a, h), o) in a.iter().zip(h).zip(o) {
                    let v = sat_i16(a);
                    *h = v;
                    *o = lut256(table, residual_index(v));
                }
            }
        }
        TileEpilogue::Table { table, out, .. } => {
            let table = table256(table);
            for (a, o) in acc.iter().zip(out) {
                let (a, o) = (&a[..rows], &mut o[..rows]);
                #[cfg(tinyscore_dsp_tile)]
                if dsp::table_out(a, table, o) {
                    continue;
                }
                for (&a, o) in a.iter().zip(o) {
                    *o = lut256(table, sat_i8(a));
                }
            }
        }
        TileEpilogue::Residual { mr, nr, h, table, silu } => {
            let table = table256(table);
            #[cfg(tinyscore_dsp_tile)]
            if (17..=46).contains(&nr) {
                for ((a, h), o) in acc.iter().zip(&mut *h).zip(&mut *silu) {
                    let done = dsp::residual_out(&a[..rows], mr, nr, table, &mut h[..rows], &mut o[..rows]);
                    debug_assert!(done, "17 ≤ nr ≤ 46 and equal lengths");
                }
                return;
            }
            // The residual stream is int16: |h| ≤ 2^15.
            match HighRequant::new(mr, nr, 1 << 15) {
                Some(q) => residual_add(acc, rows, h, table, silu, move |v| q.apply(v)),
                None => residual_add(acc, rows, h, table, silu, move |v| requantize(v, mr, nr)),
            }
        }
    }
}

/// `h = sat_i16(res(h) ⊕ branch)`, `silu = lut(table, residual_index(h))` for rows `0..rows` of
/// every vector (`acc`: the requantized branch).
#[inline(always)]
fn residual_add<const H: usize>(
    acc: &[[i32; H]],
    rows: usize,
    h: &mut [[i16; H]],
    table: &[u8; 256],
    silu: &mut [[i8; H]],
    res: impl Fn(i32) -> i32,
) {
    for ((a, h), o) in acc.iter().zip(h).zip(silu) {
        for ((&a, h), o) in a[..rows].iter().zip(&mut h[..rows]).zip(&mut o[..rows]) {
            let v = sat_i16(res(*h as i32).saturating_add(a));
            *h = v;
            *o = lut256(table, residual_index(v));
        }
    }
}

/// How [`epilogue_tile`] requantizes a layer's rows, found from its triples once
/// ([`LayerForm::new`]): the pre-shift `k` with which every row's requantization of
/// `acc + c_r` (`c_r` = bias, plus `add[r]`) is a [`HighRequant`] form for all
/// `|acc| ≤ acc_max`, if there is one for the whole layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerForm {
    pre: Option<u32>,
    acc_max: u32,
}

impl LayerForm {
    /// The form of the layer with triples `rq` (rows `0..rows`), `add` (a block's first layer:
    /// its time embedding) and accumulators `|acc| ≤ acc_max`: `k = max(0, 33 − min n)`,
    /// provided every shift is in 1..=62 (no clamping needed), `max n + k − 32 ≤ 30` and
    /// `(acc_max + max |c_r|)·2^k` fits an i32; else each row finds its own.
    ///
    /// # Panics
    /// If `rq` holds fewer than `rows` triples or `add` fewer than `rows` values.
    pub fn new(rq: &[u8], rows: usize, add: Option<&[i32]>, acc_max: u32) -> Self {
        let rq = &rq[..12 * rows];
        let (mut n_min, mut n_max, mut c_max) = (i32::MAX, i32::MIN, 0u32);
        for (r, t) in rq.chunks_exact(12).enumerate() {
            let [bias, _, n] = triple(t, 0);
            let c = match add {
                Some(add) => bias.wrapping_add(add[r]),
                None => bias,
            };
            n_min = n_min.min(n);
            n_max = n_max.max(n);
            c_max = c_max.max(c.unsigned_abs());
        }
        let pre = if rows == 0 {
            Some(0)
        } else if n_min < SHIFT_MIN as i32 || n_max > SHIFT_MAX as i32 {
            // A shift out of 1..=62 (which `requantize` clamps): row by row.
            None
        } else {
            let pre = 33u32.saturating_sub(n_min as u32);
            let fits = pre == 0 || (pre < 31 && acc_max.saturating_add(c_max) <= (i32::MAX as u32) >> pre);
            (n_max as u32 + pre <= 62 && fits).then_some(pre)
        };
        Self { pre, acc_max }
    }

    /// Whether one pre-shift serves every row.
    pub fn is_uniform(&self) -> bool {
        self.pre.is_some()
    }
}

/// How the rows of a layer get their [`HighRequant`] form.
trait RowForms: Copy {
    /// The form of `requantize(acc + c, mul, shift)`, or `None` where it does not hold.
    fn form(self, mul: i32, shift: i32, c: i32) -> Option<HighRequant>;
}

/// One pre-shift for every row ([`LayerForm::new`] checked that it holds for all of them).
#[derive(Clone, Copy)]
struct OnePre(u32);

impl RowForms for OnePre {
    #[inline(always)]
    fn form(self, mul: i32, shift: i32, _c: i32) -> Option<HighRequant> {
        let s = shift as u32 + self.0 - 32;
        Some(HighRequant { mul, pre: self.0, shift: s, round: 1 << (s - 1) })
    }
}

/// Each row's own form ([`HighRequant::new`]) for accumulators `|acc| ≤ self.0`.
#[derive(Clone, Copy)]
struct EachRow(u32);

impl RowForms for EachRow {
    #[inline(always)]
    fn form(self, mul: i32, shift: i32, c: i32) -> Option<HighRequant> {
        HighRequant::new(mul, shift as u32, self.0.saturating_add(c.unsigned_abs()))
    }
}

/// `acc[s][r] = requantize(acc[s][r] + c_r, m_r, n_r)` for every vector and row (`c_r` = the
/// row's bias, plus `add[r]`), in groups of [`EPILOGUE_GROUP`] vectors, then 4, then one by one.
#[inline(always)]
fn requantize_rows<const H: usize>(
    rq: &[u8],
    add: Option<&[i32]>,
    forms: impl RowForms,
    acc: &mut [[i32; H]],
) {
    let mut groups = acc.chunks_exact_mut(EPILOGUE_GROUP);
    for g in &mut groups {
        let g: &mut [[i32; H]; EPILOGUE_GROUP] = g.try_into().expect("a group");
        requantize_group(rq, add, forms, g);
    }
    let mut quads = groups.into_remainder().chunks_exact_mut(4);
    for g in &mut quads {
        let g: &mut [[i32; H]; 4] = g.try_into().expect("four vectors");
        requantize_group(rq, add, forms, g);
    }
    for v in quads.into_remainder() {
        requantize_group::<1, H>(rq, add, forms, core::array::from_mut(v));
    }
}

/// [`requantize_rows`] for `S` vectors.
#[inline(always)]
fn requantize_group<const S: usize, const H: usize>(
    rq: &[u8],
    add: Option<&[i32]>,
    forms: impl RowForms,
    acc: &mut [[i32; H]; S],
) {
    for (r, t) in rq.chunks_exact(12).enumerate().take(H) {
        let [bias, mul, shift] = triple(t, 0);
        // (acc + bias) + add in one addition: the same wrapping sum.
        let c = match add {
            Some(add) => bias.wrapping_add(add[r]),
            None => bias,
        };
        match forms.form(mul, shift, c) {
            Some(q) => (0..S).for_each(|s| acc[s][r] = q.apply(acc[s][r].wrapping_add(c))),
            None => (0..S).for_each(|s| acc[s][r] = requantize(acc[s][r].wrapping_add(c), mul, shift as u32)),
        }
    }
}

/// A 256-entry table as an array, so that an index of a `u8` needs no bounds check.
#[inline(always)]
fn table256(t: &[u8]) -> &[u8; 256] {
    t[..256].try_into().expect("256 entries")
}

/// [`lut`] on a 256-entry array (`index` of an i8; as an i32 the index arithmetic can fold
/// into the load's address).
#[inline(always)]
fn lut256(table: &[u8; 256], index: i8) -> i8 {
    table[(index as i32 + 128) as usize] as i8
}

/// Saturates to int8's symmetric range [−127, 127].
#[inline]
pub fn sat_i8(v: i32) -> i8 {
    v.clamp(-127, 127) as i8
}

/// Saturates to int16's symmetric range [−32767, 32767].
#[inline]
pub fn sat_i16(v: i32) -> i16 {
    v.clamp(-32767, 32767) as i16
}

/// The int8 index of a residual value's SiLU table: `h / 2^8` rounded half up, saturated to
/// [−128, 127] (the table has 256 entries, index −128 at position 0).
#[inline]
pub fn residual_index(h: i16) -> i8 {
    let r = (h as i32 + (1 << (RESIDUAL_EXTRA_BITS - 1))) >> RESIDUAL_EXTRA_BITS;
    r.clamp(-128, 127) as i8
}

/// Looks `index` up in a 256-entry table (entry `index + 128`).
#[inline]
pub fn lut(table: &[u8], index: i8) -> i8 {
    table[(index as i32 + 128) as usize] as i8
}

/// Boundary quantization f32 → int8: `clamp(round(x / scale), −127, 127)` (round half away from
/// zero, `libm::roundf`). A NaN maps to 0.
#[inline]
pub fn quantize_i8(x: f32, scale: f32) -> i8 {
    let q = libm::roundf(x / scale);
    if q.is_nan() {
        return 0;
    }
    q.clamp(-127.0, 127.0) as i8
}

/// A bias `b` folded into an accumulator of scale `acc_scale`: `round(b / acc_scale)` clamped
/// to ±[`BIAS_MAX`].
pub fn quantize_bias(b: f32, acc_scale: f32) -> i32 {
    let q = libm::round(b as f64 / acc_scale as f64);
    if q.is_nan() {
        return 0;
    }
    q.clamp(-(BIAS_MAX as f64), BIAS_MAX as f64) as i32
}

/// The time embedding `v` in an accumulator of scale `acc_scale`, clamped to ±[`TEMB_MAX`].
#[inline]
pub fn quantize_temb(v: f32, acc_scale: f32) -> i32 {
    let q = libm::roundf(v / acc_scale);
    if q.is_nan() {
        return 0;
    }
    q.clamp(-TEMB_MAX, TEMB_MAX) as i32
}

/// Entry `index` (−128..=127) of a SiLU table from input scale `in_scale` to output scale
/// `out_scale`: `clamp(round(silu(index·in_scale) / out_scale), −127, 127)`.
pub fn silu_lut_entry(index: i32, in_scale: f32, out_scale: f32) -> i8 {
    quantize_i8(crate::net::silu(index as f32 * in_scale), out_scale)
}

/// The timestep group of time `t ∈ [0, 1]` among `groups` equal intervals:
/// `min(groups − 1, ⌊t·groups⌋)` (t < 0 or NaN gives group 0).
#[inline]
pub fn time_group(t: f32, groups: usize) -> usize {
    let g = t * groups as f32;
    if g.is_nan() || g < 0.0 {
        return 0;
    }
    (g as usize).min(groups.saturating_sub(1))
}

/// Layout of a `w8a8` file's activation tensors for `B` blocks, `H` hidden and `D` dimensions,
/// one row per timestep group (see `docs/format.md` §6).
pub mod layout {
    /// Columns of `act.scales`: `s_x, s_h[0..=B], s_a[0..=B], s_u[0..B], s_v[0..B]`.
    pub fn scale_cols(blocks: usize) -> usize {
        4 * blocks + 3
    }
    /// Column of s_x, the input's int8 scale.
    pub fn s_x() -> usize {
        0
    }
    /// Column of `s_h[b]`, the int16 residual stream's scale after block b (b = 0: input layer).
    pub fn s_h(b: usize) -> usize {
        1 + b
    }
    /// Column of `s_a[b]`, the scale of silu(h_b) in int8.
    pub fn s_a(blocks: usize, b: usize) -> usize {
        2 + blocks + b
    }
    /// Column of `s_u[b]`, block b's pre-activation (index of its SiLU table).
    pub fn s_u(blocks: usize, b: usize) -> usize {
        3 + 2 * blocks + b
    }
    /// Column of `s_v[b]`, the scale of silu(u_b) in int8.
    pub fn s_v(blocks: usize, b: usize) -> usize {
        3 + 3 * blocks + b
    }

    /// Columns of `act.requant`: (bias, multiplier, shift) per row of the input layer, then per
    /// block the triples of w1 and w2 and the residual's (multiplier, shift), then the output
    /// layer's biases.
    pub fn requant_cols(dim: usize, hidden: usize, blocks: usize) -> usize {
        3 * hidden + blocks * (6 * hidden + 2) + dim
    }
    /// Column of the input layer's triples.
    pub fn input(_hidden: usize) -> usize {
        0
    }
    /// Column of block b's w1 triples.
    pub fn w1(hidden: usize, b: usize) -> usize {
        3 * hidden + b * (6 * hidden + 2)
    }
    /// Column of block b's w2 triples.
    pub fn w2(hidden: usize, b: usize) -> usize {
        w1(hidden, b) + 3 * hidden
    }
    /// Column of block b's residual (multiplier, shift).
    pub fn residual(hidden: usize, b: usize) -> usize {
        w1(hidden, b) + 6 * hidden
    }
    /// Column of the output layer's biases.
    pub fn output(hidden: usize, blocks: usize) -> usize {
        3 * hidden + blocks * (6 * hidden + 2)
    }

    /// Tables of `act.lut` per group: silu(h_b) for b = 0..=B, then silu(u_b) for b < B.
    pub fn lut_count(blocks: usize) -> usize {
        2 * blocks + 1
    }
    /// Table of silu(h_b).
    pub fn lut_h(b: usize) -> usize {
        b
    }
    /// Table of silu(u_b).
    pub fn lut_u(blocks: usize, b: usize) -> usize {
        blocks + 1 + b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator for the property tests (no dev-dependency needed in a
    /// no_std crate's unit tests).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn range(&mut self, lo: i64, hi: i64) -> i64 {
            lo + (self.next() % (hi - lo + 1) as u64) as i64
        }
    }

    fn requantize_oracle(acc: i32, m: i32, n: u32) -> i32 {
        // Exact: floor((acc·m + 2^(n−1)) / 2^n) in i128, with a true floor division.
        let num = acc as i128 * m as i128 + (1i128 << (n - 1));
        let q = num.div_euclid(1i128 << n);
        q.clamp(i32::MIN as i128, i32::MAX as i128) as i32
    }

    #[test]
    fn requantize_matches_the_oracle() {
        let mut r = Rng(0x2545_F491_4F6C_DD1D);
        let edges = [i32::MIN, i32::MIN + 1, -1, 0, 1, i32::MAX, 1 << 20, -(1 << 20)];
        for i in 0..200_000 {
            let acc = if i % 10 == 0 {
                edges[i / 10 % edges.len()]
            } else {
                r.range(-(1 << 31), (1 << 31) - 1) as i32
            };
            let m = r.range(MULT_MIN as i64, i32::MAX as i64) as i32;
            let n = r.range(SHIFT_MIN as i64, SHIFT_MAX as i64) as u32;
            assert_eq!(requantize(acc, m, n), requantize_oracle(acc, m, n), "acc {acc} m {m} n {n}");
        }
        // Ties round up: 3·2^30 / 2^31 = 1.5 → 2 and −1.5 → −1.
        assert_eq!(requantize(3, MULT_MIN, 31), 2);
        assert_eq!(requantize(-3, MULT_MIN, 31), -1);
    }

    #[test]
    fn the_high_word_form_equals_requantize_and_the_oracle() {
        let mut r = Rng(0x5EED_F0A4);
        let ms = [MULT_MIN, i32::MAX, MULT_MIN + 1, 1_500_000_000];
        let ns = [1u32, 2, 16, 17, 30, 31, 32, 33, 34, 40, 61, 62];
        let bounds = [1u32 << 31, (1 << 31) - 1, 1 << 30, 1 << 23, (1 << 23) + 12_345, 1 << 15, 1];
        let (mut high, mut general) = (0u32, 0u32);
        for case in 0..40_000usize {
            let m = if case % 3 == 0 {
                ms[case / 3 % ms.len()]
            } else {
                r.range(MULT_MIN as i64, i32::MAX as i64) as i32
            };
            let n = if case % 2 == 0 { ns[case / 2 % ns.len()] } else { r.range(1, 62) as u32 };
            let bound = if case % 5 < 3 { bounds[case % bounds.len()] } else { r.range(1, 1 << 31) as u32 };
            let Some(q) = HighRequant::new(m, n, bound) else {
                // Refused only where a·2^(33−n) could leave i32.
                assert!(n < 33 && (bound as u64) << (33 - n) > i32::MAX as u64, "m {m} n {n} bound {bound}");
                general += 1;
                continue;
            };
            high += 1;
            let b = bound as i64;
            let edges = [-b, b.min(i32::MAX as i64), 0, -1, 1, -b + 1, b - 1];
            for k in 0..24 {
                let a = if k < edges.len() { edges[k] } else { r.range(-b, b.min(i32::MAX as i64)) };
                let a = a as i32;
                let want = requantize_oracle(a, m, n);
                assert_eq!(requantize(a, m, n), want);
                assert_eq!(q.apply(a), want, "a {a} m {m} n {n} bound {bound}");
            }
        }
        assert!(high > 10_000 && general > 1_000, "both cases exercised: {high} {general}");
        // Any accumulator once n ≥ 33 (i32::MIN included), and the largest shift.
        for (m, n) in [(MULT_MIN, 33), (i32::MAX, 33), (i32::MAX, 62), (MULT_MIN, 62)] {
            let q = HighRequant::new(m, n, 1 << 31).expect("n ≥ 33 needs no bound");
            for a in [i32::MIN, i32::MIN + 1, i32::MAX, -1, 0, 1] {
                assert_eq!(q.apply(a), requantize_oracle(a, m, n), "a {a} m {m} n {n}");
            }
        }
        // Shifts out of range are clamped as requantize clamps them.
        for n in [63u32, 100] {
            let q = HighRequant::new(MULT_MIN, n, 1 << 31).unwrap_or_else(|| panic!("n {n}"));
            assert_eq!(q.apply(i32::MIN), requantize(i32::MIN, MULT_MIN, n));
        }
        assert_eq!(HighRequant::new(MULT_MIN, 0, 1), None, "n = 0 is n = 1: a·2^32 never fits");
    }

    /// Rows of a layer in [`epilogue_tile_equals_epilogue`].
    const TILE_H: usize = 24;

    #[test]
    fn epilogue_tile_equals_epilogue() {
        let mut r = Rng(0x0E91_0605);
        let (mut one_pre, mut each_row) = (0u32, 0u32);
        for case in 0..1_500usize {
            let n = case % 10;
            let rows = r.range(0, TILE_H as i64) as usize;
            let cols = r.range(1, 512) as u32;
            let acc_max = cols * (1 << 14);
            let m = acc_max as i64;
            // Shifts around the boundaries of the forms, multipliers over their range; biases
            // small (the usual) or up to ±2^30 (the largest a file may hold).
            // Per case, shifts all in a narrow range (a layer with one pre-shift: `LayerForm`) or
            // some anywhere in 1..=62 (forms row by row), biases small or some large.
            let (wide_shifts, large_biases) = (case % 3 == 0, case % 5 == 0);
            let mut rq = [0u8; 12 * TILE_H];
            for t in rq.chunks_exact_mut(12) {
                let bias = match r.range(0, 3) {
                    0 if large_biases => r.range(-(1 << 30), 1 << 30),
                    _ => r.range(-100_000, 100_000),
                } as i32;
                let mul = r.range(MULT_MIN as i64, i32::MAX as i64) as i32;
                let shift = match r.range(0, 3) {
                    0 if wide_shifts => r.range(1, 62),
                    _ => r.range(28, 44),
                } as i32;
                for (k, v) in [bias, mul, shift].into_iter().enumerate() {
                    t[4 * k..4 * k + 4].copy_from_slice(&v.to_le_bytes());
                }
            }
            let mut acc = [[0i32; TILE_H]; 9];
            for (k, v) in acc.as_flattened_mut().iter_mut().enumerate() {
                *v = match k % 7 {
                    0 => -m,
                    1 => m,
                    _ => r.range(-m, m),
                } as i32;
            }
            let table: [u8; 256] = core::array::from_fn(|_| r.next() as u8);
            let add: [i32; TILE_H] = core::array::from_fn(|_| r.range(-(1 << 29), 1 << 29) as i32);
            let h0: [[i16; TILE_H]; 9] = core::array::from_fn(|_| core::array::from_fn(|_| r.next() as i16));
            let (mr, nr) = match case % 4 {
                // The residual's form holds (n ≥ 17), or not.
                0 => (r.range(MULT_MIN as i64, i32::MAX as i64) as i32, r.range(1, 16) as u32),
                _ => (r.range(MULT_MIN as i64, i32::MAX as i64) as i32, r.range(17, 62) as u32),
            };
            let acc = &acc[..n];
            match LayerForm::new(&rq, rows, None, acc_max).is_uniform() {
                true => one_pre += 1,
                false => each_row += 1,
            }
            let mut want = ([[0i16; TILE_H]; 9], [[0i8; TILE_H]; 9]);
            let mut got = ([[1i16; TILE_H]; 9], [[1i8; TILE_H]; 9]);
            for kind in 0..3 {
                want.0 = h0;
                got.0 = h0;
                let make = |kind: usize,
                            h: &mut [[i16; TILE_H]],
                            o: &mut [[i8; TILE_H]],
                            f: &mut dyn FnMut(TileEpilogue<'_, TILE_H>)| {
                    f(match kind {
                        0 => TileEpilogue::ToI16 { out: h, table: &table, silu: o },
                        1 => TileEpilogue::Table { add: &add, table: &table, out: o },
                        _ => TileEpilogue::Residual { mr, nr, h, table: &table, silu: o },
                    })
                };
                make(kind, &mut want.0[..n], &mut want.1[..n], &mut |e| {
                    epilogue(&rq, acc.as_flattened(), TILE_H, n, 0..rows, TILE_H, &mut e.flat())
                });
                let mut acc2 = [[0i32; TILE_H]; 9];
                acc2[..n].copy_from_slice(acc);
                make(kind, &mut got.0[..n], &mut got.1[..n], &mut |e| {
                    let form = LayerForm::new(&rq, rows, e.add(), acc_max);
                    epilogue_tile(&rq, &mut acc2[..n], rows, form, e)
                });
                assert_eq!(got.0, want.0, "case {case} kind {kind}: residual stream");
                for (g, w) in got.1[..n].iter().zip(&want.1[..n]) {
                    assert_eq!(g[..rows], w[..rows], "case {case} kind {kind}: int8 output");
                }
            }
        }
        assert!(one_pre > 300 && each_row > 300, "both ways exercised: {one_pre} {each_row}");
    }

    #[test]
    fn multipliers_represent_their_factor() {
        let mut r = Rng(7);
        for _ in 0..10_000 {
            let real = libm::exp((r.range(-20_000, 20_000) as f64) / 1000.0);
            let (m, n) = quantize_multiplier(real).unwrap();
            assert!(m >= MULT_MIN);
            let back = m as f64 / libm::pow(2.0, n as f64);
            assert!((back / real - 1.0).abs() <= 1.0 / (1u64 << 30) as f64, "{real} -> {m} {n}");
        }
        assert_eq!(quantize_multiplier(0.5), Some((MULT_MIN, 31)));
        assert_eq!(quantize_multiplier(1.0), Some((MULT_MIN, 30)));
        assert!(quantize_multiplier(0.0).is_none());
        assert!(quantize_multiplier(f64::NAN).is_none());
        assert!(quantize_multiplier(1e12).is_none());
        assert!(quantize_multiplier(1e-12).is_none());
    }

    #[test]
    fn dot_i8_matches_the_one_line_reference_on_random_shapes() {
        let mut r = Rng(99);
        for _ in 0..5_000 {
            let cols = r.range(0, 512) as usize;
            let w: [u8; 512] = core::array::from_fn(|_| r.range(-127, 127) as i8 as u8);
            let x: [i8; 512] = core::array::from_fn(|_| r.range(-128, 127) as i8);
            let reference: i32 = (0..cols).map(|c| (w[c] as i8) as i32 * x[c] as i32).sum();
            assert_eq!(dot_i8(&w[..cols], &x[..cols]), reference, "cols {cols}");
        }
        // The extremes of the range.
        let w = [127u8; 512];
        let x = [-128i8; 512];
        assert_eq!(dot_i8(&w, &x), 512 * 127 * -128);
    }

    #[test]
    fn prepared_kernel_and_its_instruction_model_match_dot_i8() {
        let mut r = Rng(4242);
        let mut words = [0u32; prepared_words(512)];
        for case in 0..3_000 {
            let cols = if case < 513 { case } else { r.range(0, 512) as usize };
            // Weights over the whole byte range (a file may hold −128), activations with the
            // extremes mixed in.
            let w: [u8; 512] = core::array::from_fn(|_| match r.range(0, 9) {
                0 => 0x80,
                1 => 0x7f,
                _ => r.range(-128, 127) as i8 as u8,
            });
            let x: [i8; 512] = core::array::from_fn(|_| match r.range(0, 9) {
                0 => -128,
                1 => 127,
                _ => r.range(-128, 127) as i8,
            });
            let (w, x) = (&w[..cols], &x[..cols]);
            let want = dot_i8(w, x);
            let p = Prepared::new(x, &mut words);
            assert_eq!(p.dot(w), want, "cols {cols}");
            let n = prepared_words(cols);
            prepare_into(x, &mut words[..n]);
            let full = cols / CHUNK * CHUNK;
            assert_eq!(dot16_model(&w[..full], &words[..n]) + dot_i8(&w[full..], &x[full..]), want);
        }
        let (w, x) = ([0x80u8; 512], [-128i8; 512]);
        prepare_into(&x, &mut words);
        assert_eq!(dot16_model(&w, &words), 512 * 128 * 128);
    }

    #[test]
    fn tile_kernels_and_their_instruction_model_match_dot_i8() {
        let mut r = Rng(777);
        let mut buf = [0u32; 4 * prepared_words(512)];
        for case in 0..1_200 {
            let cols = if case < 513 { case } else { r.range(0, 512) as usize };
            let byte = |r: &mut Rng| match r.range(0, 9) {
                0 => -128i8,
                1 => 127,
                _ => r.range(-128, 127) as i8,
            };
            let w: [u8; 512] = core::array::from_fn(|_| byte(&mut r) as u8);
            let xs: [[i8; 512]; 4] = core::array::from_fn(|_| core::array::from_fn(|_| byte(&mut r)));
            let (w, x) = (&w[..cols], |i: usize| &xs[i][..cols]);
            let want: [i32; 4] = core::array::from_fn(|i| dot_i8(w, x(i)));
            // The layout and unpacking order, instruction by instruction.
            let full = cols / CHUNK * CHUNK;
            let tail = |i: usize| dot_i8(&w[full..], &x(i)[full..]);
            let n4 = 4 * prepared_words(cols);
            prepare_tile_into([x(0), x(1), x(2), x(3)], &mut buf[..n4]);
            let m4 = dot16_tile_model::<4>(&w[..full], &buf[..n4]);
            let n2 = 2 * prepared_words(cols);
            prepare_tile_into([x(0), x(1)], &mut buf[..n2]);
            let m2 = dot16_tile_model::<2>(&w[..full], &buf[..n2]);
            prepare_tile_into([x(0)], &mut buf[..n2 / 2]);
            let m1 = dot16_tile_model::<1>(&w[..full], &buf[..n2 / 2]);
            assert_eq!(m1[0], dot16_model(&w[..full], &buf[..n2 / 2]), "S = 1 is the one-vector layout");
            for i in 0..4 {
                assert_eq!(m4[i] + tail(i), want[i], "cols {cols} vector {i} of 4");
            }
            for i in 0..2 {
                assert_eq!(m2[i] + tail(i), want[i], "cols {cols} vector {i} of 2");
            }
            // The dispatching entry points (the kernels on thumbv7em, dot_i8 here).
            assert_eq!(PreparedTile::new([x(0), x(1), x(2), x(3)], &mut buf).dots(w), want);
            assert_eq!(PreparedTile::new([x(2), x(3)], &mut buf).dots(w), [want[2], want[3]]);
            assert_eq!(PreparedTile::new([x(1), x(2), x(3)], &mut buf).dots(w), [want[1], want[2], want[3]]);
        }
        let (w, x) = ([0x80u8; 512], [-128i8; 512]);
        prepare_tile_into([&x[..], &x[..], &x[..], &x[..]], &mut buf);
        assert_eq!(dot16_tile_model::<4>(&w, &buf), [512 * 128 * 128; 4]);
    }

    #[test]
    fn matmul_prepared_equals_dot_i8_for_any_number_of_vectors() {
        let mut r = Rng(31337);
        for case in 0..300 {
            let (rows, cols) = (r.range(0, 8) as usize, r.range(0, 80) as usize);
            let n = case % 10;
            let stride = cols + r.range(0, 5) as usize;
            let w: [u8; 8 * 85] = core::array::from_fn(|_| r.range(-128, 127) as i8 as u8);
            let xs: [[i8; 80]; 9] =
                core::array::from_fn(|_| core::array::from_fn(|_| r.range(-128, 127) as i8));
            let mut out = [[i32::MIN; 8]; 9];
            // Buffers from none to room for four vectors: every tile size is taken somewhere.
            let mut buf = [0u32; 4 * prepared_words(80)];
            let words = r.range(0, buf.len() as i64) as usize;
            matmul_prepared(&w, stride, rows, cols, &xs[..n], &mut out[..n], &mut buf[..words]);
            for (i, o) in out[..n].iter().enumerate() {
                for (k, &v) in o[..rows].iter().enumerate() {
                    assert_eq!(v, dot_i8(&w[k * stride..k * stride + cols], &xs[i][..cols]), "case {case}");
                }
                assert!(o[rows..].iter().all(|&v| v == i32::MIN), "only `rows` rows are written");
            }
        }
    }

    #[test]
    fn instruction_models_follow_the_arm_definitions() {
        // SXTB16: bytes 0 and 2, sign-extended; ROR #8 selects bytes 1 and 3.
        assert_eq!(sxtb16(0x80_7f_01_ff), 0x007f_ffff);
        assert_eq!(sxtb16(0x80_7f_01_ffu32.rotate_right(8)), 0xff80_0001);
        // SMLAD: acc + lo·lo + hi·hi, signed halves.
        assert_eq!(smlad(pack16(-128, 127), pack16(-128, -128), 5), 5 + 16384 - 16256);
    }

    #[test]
    fn small_kernels_follow_their_definitions() {
        for h in i16::MIN..=i16::MAX {
            let want = ((h as f64 / 256.0) + 0.5).floor().clamp(-128.0, 127.0) as i8;
            assert_eq!(residual_index(h), want, "h {h}");
        }
        assert_eq!(quantize_i8(0.5, 1.0), 1);
        assert_eq!(quantize_i8(-0.5, 1.0), -1);
        assert_eq!(quantize_i8(1e9, 1.0), 127);
        assert_eq!(quantize_i8(f32::NAN, 1.0), 0);
        assert_eq!(time_group(0.0, 4), 0);
        assert_eq!(time_group(0.2499, 4), 0);
        assert_eq!(time_group(0.25, 4), 1);
        assert_eq!(time_group(1.0, 4), 3);
        assert_eq!(time_group(f32::NAN, 4), 0);
        let mut table = [0u8; 256];
        for (i, e) in table.iter_mut().enumerate() {
            *e = silu_lut_entry(i as i32 - 128, 0.05, 0.05) as u8;
        }
        assert_eq!(lut(&table, 0), 0);
        assert_eq!(lut(&table, 127), quantize_i8(crate::net::silu(127.0 * 0.05), 0.05));
        assert_eq!(quantize_bias(1.0, 0.25), 4);
        assert_eq!(quantize_bias(1e30, 1e-30), BIAS_MAX);
    }
}
