//! The prepared-activation layout of the Cortex-M4/M7 int8 kernels (`quant/dsp.rs`) and host
//! models of the instructions that define it (`SXTB16`, `SMLAD`): how one or `S` vectors' int8
//! activations are widened to int16 pairs in the order `SXTB16` unpacks a weight word, so that
//! each `SMLAD` multiplies two weights by two activations. The models are how the host checks
//! the layout and the unpacking order against [`super::dot_i8`]. A leaf module.

/// Columns per chunk of the prepared kernel ([`super::Prepared`]).
pub const CHUNK: usize = 16;

/// Words of prepared activations [`super::Prepared::new`] needs for `cols` columns: 8 per full chunk of
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
/// give [`super::dot_i8`]'s result; the M4's check of the assembly against it is in
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

/// Vectors of a tile the multi-vector DSP kernels take: 2 or 4 ([`super::PreparedTile`]).
pub const fn tile_kernel(s: usize) -> bool {
    s == 2 || s == 4
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
/// layout of [`prepare_tile_into`] and the unpacking order give [`super::dot_i8`]'s results. The M4's
/// check of the assembly against it is in `firmware-example/examples/kernels.rs`. It sums over
/// the whole weight words of `w` (`w.len() / 4`, 4 columns each): the dense kernels' callers pass
/// whole chunks of 16 columns, the convolution's rows model K·C4 columns
/// (`super::conv_packed::rows_model`).
pub fn dot16_tile_model<const S: usize>(w: &[u8], words: &[u32]) -> [i32; S] {
    let mut acc = [0i32; S];
    let weight_words = w.len() / 4;
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
