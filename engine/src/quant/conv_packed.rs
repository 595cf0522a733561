//! The packed form of an int8 convolution for the four-vector `SMLAD` kernel (Cortex-M4/M7,
//! M33 with `+dsp`; `quant/dsp.rs`): no gathered columns. With dilation 1 the window of output
//! position l, `x[s·l − p .. s·l + p]` (K positions × C_in channels), is one contiguous run of
//! the channels-last input, in tap-major order (k·C_in + ci). So:
//!
//! 1. the input is copied once per convolution into `xp`, channels-last int8 rows of C4 =
//!    ⌈C_in/4⌉·4 bytes (channels past C_in zero) with p zero rows before and after ("same"
//!    padding) and 12 zero bytes at the end: an int16 stream becomes its table indices
//!    ([`super::residual_index`]) and an upsampled source its rows twice, here and only here;
//! 2. the weight rows of four output channels at a time are reordered to tap-major order
//!    (`W[co, ci·K + k]` to column k·C4 + ci, zero for ci ≥ C_in) and widened to int16 pairs in [`super::prepare_tile_into`]'s layout,
//!    the four channels as its four "vectors";
//! 3. the kernel multiplies every output position's window — row l of `xp` read from byte
//!    s·l·C4, its K·C4 bytes (K·C4/4 weight words, no padding to a multiple of 16) — by those four channels (the positions are the
//!    kernel's rows: `dot16x4_rows_strided`), storing the sums at `acc[l·C_out + co]`.
//!
//! Integer sums are exact, so the result is the
//! portable [`super::conv::conv_i8_from`]'s bit for bit (tested here with the kernel's portable
//! model [`rows_model`], and on the M4 in QEMU with the assembly:
//! `firmware-example/examples/kernels.rs`). Each input value is converted once (not once per
//! column that reads it), and each weight once per convolution. A leaf module apart from the
//! convolution's shape and operands ([`super::conv`]) and the layout's models
//! (`quant/prepared.rs`).

use super::conv::{operands, ConvShape, ConvSizeError, Source, CONV_TILE};
use super::prepared::{dot16_tile_model, CHUNK};

/// Output channels per pass of the kernel: its four vectors.
const GROUP: usize = 4;

/// Positions per call of the kernel for a last group of fewer than four channels, whose sums
/// go to a small buffer first.
const TAIL_ROWS: usize = 16;

/// The sizes of the packed form: (C4, chunks of 16 columns per window, p, bytes of `xp`).
fn layout(s: &ConvShape) -> (usize, usize, usize, usize) {
    let c4 = s.c_in().div_ceil(4) * 4;
    let chunks = (s.kernel() * c4).div_ceil(CHUNK);
    let p = (s.kernel() - 1) / 2;
    // (L_in + 2p)·C4 + 12, in whole words.
    let xp = s.l_in().saturating_add(2 * p).saturating_mul(c4).saturating_add(12).div_ceil(4) * 4;
    (c4, chunks, p, xp)
}

/// Words of column scratch a convolution of shape `s` needs after its accumulators
/// ([`super::Int8Plan::scratch_words`]): the larger of the portable walk's
/// [`CONV_TILE`] gathered columns (C_in·K bytes each) and the packed form's four channels'
/// prepared weights (32 words per chunk of 16 columns) and padded input `xp` (module
/// documentation). Every target's plan holds the same scratch.
pub fn col_words(s: &ConvShape) -> usize {
    let (_, chunks, _, xp) = layout(s);
    (CONV_TILE * s.cols()).div_ceil(4).max((32 * chunks).saturating_add(xp / 4))
}

/// The portable model of the four-vector rows kernel (`kernel` of [`conv_i8_packed`]):
/// [`dot16_tile_model`] row by row, with the assembly's bounds checks (not its alignment
/// ones, which a slice read does not need). The host's stand-in for it in the tests.
pub fn rows_model(
    xp: &[u8],
    stride: usize,
    rows: usize,
    quads: usize,
    words: &[u32],
    out: &mut [i32],
    rstep: usize,
) -> bool {
    let n = 4 * quads;
    let ok = rows >= 1
        && quads >= 1
        && (rows - 1).checked_mul(rstep).is_some_and(|l| l.saturating_add(3) < out.len())
        && (rows - 1).checked_mul(stride).and_then(|a| a.checked_add(n)).is_some_and(|e| e <= xp.len())
        && words.len() >= 8 * quads;
    if !ok {
        return false;
    }
    for r in 0..rows {
        let v = dot16_tile_model::<GROUP>(&xp[r * stride..r * stride + n], words);
        out[r * rstep..r * rstep + GROUP].copy_from_slice(&v);
    }
    true
}

/// [`super::conv::conv_i8_from`] in the packed form (module documentation) with `kernel` doing
/// the dot products: `kernel(xp, stride, rows, quads, words, out, rstep)` writes
/// `out[r·rstep + v] = Σ_c xp[r·stride + c]·x_v[c]` over `4·quads` columns for r < rows and
/// the four prepared vectors v < 4 (`words`, [`super::prepare_tile_into`]'s layout), or
/// returns `false` having written nothing (the assembly: `dot16x4_rows_strided` with
/// `vstep = 1`; its portable model: [`rows_model`]). `Ok(true)` when done, `Ok(false)` — the caller then runs the portable
/// convolution, which overwrites every accumulator — when the packed form does not apply
/// (dilation ≠ 1, `col` shorter than [`col_words`] or not word-aligned, or the kernel refused),
/// [`ConvSizeError`] for operands shorter than the shape (nothing written).
pub fn conv_i8_packed(
    s: &ConvShape,
    w: &[u8],
    x: Source<'_>,
    upsample: bool,
    col: &mut [i8],
    acc: &mut [i32],
    kernel: impl FnMut(&[u8], usize, usize, usize, &[u32], &mut [i32], usize) -> bool,
) -> Result<bool, ConvSizeError> {
    conv_i8_packed_rows(s, w, x, upsample, 0..s.l_out(), col, acc, kernel)
}

/// [`conv_i8_packed`] of the output positions `out` only (clipped to 0..L_out): their
/// accumulators `acc[l·C_out..(l + 1)·C_out]` are written, the others are left as they were —
/// how a tiled walk skips the positions of a call it drops (`quant::plan::ConvIo::call`).
#[allow(clippy::too_many_arguments)]
pub fn conv_i8_packed_rows(
    s: &ConvShape,
    w: &[u8],
    x: Source<'_>,
    upsample: bool,
    out: core::ops::Range<usize>,
    col: &mut [i8],
    acc: &mut [i32],
    mut kernel: impl FnMut(&[u8], usize, usize, usize, &[u32], &mut [i32], usize) -> bool,
) -> Result<bool, ConvSizeError> {
    let (w, x, acc) = operands(s, w, x, upsample, acc)?;
    if s.dilation() != 1 {
        return Ok(false);
    }
    let (c4, chunks, p, xp_len) = layout(s);
    let (c_in, l_in, c_out) = (s.c_in(), s.l_in(), s.c_out());
    // The kernel's columns: the window's K·C4 exactly (the scratch has room for `chunks`).
    let quads = s.kernel() * c4 / 4;
    let col: &mut [u8] = bytemuck::cast_slice_mut(col);
    let Some((words, rest)) = col.split_at_mut_checked(4 * 32 * chunks) else { return Ok(false) };
    let (Ok(words), Some(xp)) = (bytemuck::try_cast_slice_mut::<u8, u32>(words), rest.get_mut(..xp_len))
    else {
        return Ok(false);
    };
    // xp: p zero rows, the input's L_in rows (C4 bytes each), p zero rows and the zero tail.
    let body = p * c4..(p + l_in) * c4;
    if c4 != c_in {
        xp.fill(0);
    } else {
        xp[..body.start].fill(0);
        xp[body.end..].fill(0);
    }
    // One source row fills `rep` rows of xp (2 when upsampling: position p reads row ⌊p/2⌋).
    let rep = 1 + usize::from(upsample);
    match x {
        Source::I8(v) if !upsample && c4 == c_in => {
            xp[body].copy_from_slice(bytemuck::cast_slice(v));
        }
        Source::I8(v) => {
            for (rows, src) in xp[body].chunks_exact_mut(rep * c4).zip(v.chunks_exact(c_in)) {
                for row in rows.chunks_exact_mut(c4) {
                    row[..c_in].copy_from_slice(bytemuck::cast_slice(src));
                }
            }
        }
        Source::I16(v) => {
            for (rows, src) in xp[body].chunks_exact_mut(rep * c4).zip(v.chunks_exact(c_in)) {
                let (first, second) = rows.split_at_mut(c4);
                for (d, &h) in first.iter_mut().zip(src) {
                    *d = super::residual_index(h) as u8;
                }
                if upsample {
                    second.copy_from_slice(first);
                }
            }
        }
    }
    let xp = &*xp;
    let stride = s.stride() * c4;
    let (first, end) = (out.start.min(s.l_out()), out.end.min(s.l_out()));
    if first >= end {
        return Ok(true);
    }
    for g in (0..c_out).step_by(GROUP) {
        prepare_weights(s, c4, w, g, words);
        let words = &*words;
        if g + GROUP <= c_out {
            let xs = &xp[first * stride..];
            if !kernel(xs, stride, end - first, quads, words, &mut acc[first * c_out + g..], c_out) {
                return Ok(false);
            }
        } else {
            // Fewer than four channels left: sums of TAIL_ROWS positions to a buffer first.
            let mut tmp = [0i32; GROUP * TAIL_ROWS];
            for l0 in (first..end).step_by(TAIL_ROWS) {
                let n = TAIL_ROWS.min(end - l0);
                if !kernel(&xp[l0 * stride..], stride, n, quads, words, &mut tmp, GROUP) {
                    return Ok(false);
                }
                for (r, t) in tmp.chunks_exact(GROUP).take(n).enumerate() {
                    let at = (l0 + r) * c_out + g;
                    acc[at..at + (c_out - g)].copy_from_slice(&t[..c_out - g]);
                }
            }
        }
    }
    Ok(true)
}

/// The prepared weights of output channels g..g+4 (those below C_out; zero for the others):
/// column c = k·C4 + ci of channel g + v, the weight `W[g + v, ci·K + k]` (zero for
/// ci ≥ C_in and for c ≥ K·C4), widened into word 8·⌊c/4⌋ + 4·(c mod 2) + v, the low half for
/// c mod 4 < 2 ([`super::prepare_tile_into`]'s layout with the four channels as its vectors).
/// Whole quads of input channels are written a word pair at a time (the four weights of one
/// tap, K bytes apart in the row); the last C_in mod 4 channels one halfword at a time. Only
/// the K·C4 columns' words, which the kernel reads, are written: zeroed first where C_in mod
/// 4 ≠ 0 or the group has fewer than four channels (else every one is written below).
fn prepare_weights(s: &ConvShape, c4: usize, w: &[u8], g: usize, words: &mut [u32]) {
    let (c_in, c_out, kn, ck) = (s.c_in(), s.c_out(), s.kernel(), s.cols());
    let quads = c_in / 4;
    // Every word of the K·C4 columns (8 words per 4 columns) is written below when the quads
    // cover C_in and the group is whole.
    if quads * 4 != c_in || g + GROUP > c_out {
        let end = (2 * kn * c4).min(words.len());
        words[..end].fill(0);
    }
    // Consecutive taps k are 2·C4 words apart (C4/4 weight words of 8 words).
    let tap = 2 * c4;
    for v in 0..GROUP.min(c_out - g) {
        let row = &w[(g + v) * ck..(g + v + 1) * ck];
        // On the DSP targets in assembly, all the row's quads in one call (`LDRSB`/`PKHBT`, 3
        // instructions per weight where the loop below takes about 12): the same words.
        #[cfg(tinyscore_dsp_tile)]
        let done = quads > 0 && super::widen_quads_dsp(row, kn, quads, &mut words[v..], tap);
        #[cfg(not(tinyscore_dsp_tile))]
        let done = false;
        // Whole quads: the K taps of channels 4q..4q+4 are the quad's four runs of K bytes.
        for (q, quad) in row.chunks_exact(4 * kn).take(if done { 0 } else { quads }).enumerate() {
            let (a, rest) = quad.split_at(kn);
            let (b, rest) = rest.split_at(kn);
            let (c, d) = rest.split_at(kn);
            let taps = a.iter().zip(b).zip(c).zip(d);
            for (out, (((&b0, &b1), &b2), &b3)) in words[8 * q..].chunks_mut(tap).zip(taps) {
                if let Some(o) = out.get_mut(..8) {
                    o[v] = super::pack16(b0 as i8, b2 as i8);
                    o[4 + v] = super::pack16(b1 as i8, b3 as i8);
                }
            }
        }
        // The last C_in mod 4 channels, a halfword at a time.
        for k in 0..kn {
            let j = k * c4 / 4 + quads;
            if quads * 4 < c_in {
                let half: &mut [i16] = bytemuck::cast_slice_mut(&mut words[8 * j..8 * (j + 1)]);
                for r in 0..c_in - 4 * quads {
                    half[8 * (r % 2) + 2 * v + r / 2] = row[(4 * quads + r) * kn + k] as i8 as i16;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::conv::conv_i8_from;
    use crate::quant::conv::tests::values;

    /// (C_in, L_in, C_out, K, stride): odd C_in·K, C_in not a multiple of 4, C_out not a
    /// multiple of 4, stride 2, one position, windows wider than the input, the largest C_in·K.
    const SHAPES: [(usize, usize, usize, usize, usize); 12] = [
        (1, 64, 8, 5, 1),
        (8, 64, 8, 5, 1),
        (16, 32, 16, 5, 1),
        (16, 64, 16, 5, 2),
        (8, 64, 1, 5, 1),
        (3, 17, 6, 3, 2),
        (5, 9, 7, 7, 1),
        (16, 1, 5, 3, 1),
        (4, 3, 4, 9, 1),
        (170, 5, 3, 3, 2),
        (64, 20, 12, 1, 1),
        (12, 40, 9, 5, 1),
    ];

    /// The packed form with the kernel's model gives the portable convolution's accumulators
    /// for every source (int8, int16 stream, upsampled) and shape, whatever the scratch held.
    #[test]
    fn the_packed_form_is_the_portable_convolution() {
        for (i, &(c_in, l_in, c_out, k, st)) in SHAPES.iter().enumerate() {
            for upsample in [false, true] {
                let l = if upsample { 2 * l_in } else { l_in };
                let s = ConvShape::new(c_in, l, c_out, k, 1, st).unwrap();
                let src = l_in * c_in;
                let w: Vec<u8> = values(i as u32 + 1, c_out * s.cols()).map(|v| v as u8).collect();
                let mut x: Vec<i8> = values(50 + i as u32, src).collect();
                if i == 9 {
                    x.fill(-127);
                }
                let h: Vec<i16> = values(90 + i as u32, src)
                    .zip(values(7, src))
                    .map(|(a, b)| (a as i16).wrapping_mul(258).wrapping_add(b as i16))
                    .collect();
                for source in [Source::I8(&x), Source::I16(&h)] {
                    let mut want = vec![0i32; s.acc_len()];
                    let mut col = vec![0i8; 4 * col_words(&s)];
                    conv_i8_from(&s, &w, source, upsample, &mut col, &mut want).unwrap();
                    let mut got = vec![5i32; s.acc_len()];
                    // Garbage in the scratch: the packed form must zero what it reads.
                    let mut buf = vec![0xa5a5_5a5au32; col_words(&s)];
                    let col = bytemuck::cast_slice_mut(&mut buf);
                    let done = conv_i8_packed(&s, &w, source, upsample, col, &mut got, rows_model);
                    assert_eq!(done, Ok(true), "{:?} upsample {upsample}", SHAPES[i]);
                    assert_eq!(got, want, "{:?} upsample {upsample} {source:?}", SHAPES[i]);
                    // A range of output positions: those rows, the others untouched.
                    let (l_out, co) = (s.l_out(), s.c_out());
                    let (a, b) = (l_out / 3, l_out - l_out / 4);
                    let mut part = vec![5i32; s.acc_len()];
                    let col = bytemuck::cast_slice_mut(&mut buf);
                    let done =
                        conv_i8_packed_rows(&s, &w, source, upsample, a..b, col, &mut part, rows_model);
                    assert_eq!(done, Ok(true), "{:?} rows {a}..{b}", SHAPES[i]);
                    assert_eq!(part[a * co..b * co], want[a * co..b * co], "{:?} rows {a}..{b}", SHAPES[i]);
                    assert!(
                        part[..a * co].iter().chain(&part[b * co..]).all(|&v| v == 5),
                        "{:?} wrote outside {a}..{b}",
                        SHAPES[i]
                    );
                }
            }
        }
    }

    /// Dilation ≠ 1 and short scratch fall back (nothing claimed done); short operands are the
    /// portable convolution's error.
    #[test]
    fn what_does_not_fit_is_left_to_the_portable_convolution() {
        let s = ConvShape::new(4, 8, 4, 3, 2, 1).unwrap();
        let (w, x) = (vec![1u8; 48], vec![1i8; 32]);
        let mut buf = vec![0u32; col_words(&s)];
        let mut acc = vec![0i32; s.acc_len()];
        let r = conv_i8_packed(
            &s,
            &w,
            Source::I8(&x),
            false,
            bytemuck::cast_slice_mut(&mut buf),
            &mut acc,
            rows_model,
        );
        assert_eq!(r, Ok(false));
        let s = ConvShape::new(4, 8, 4, 3, 1, 1).unwrap();
        let mut short = vec![0u32; col_words(&s) - 1];
        let r = conv_i8_packed(
            &s,
            &w,
            Source::I8(&x),
            false,
            bytemuck::cast_slice_mut(&mut short),
            &mut acc,
            rows_model,
        );
        assert_eq!(r, Ok(false));
        let r = conv_i8_packed(
            &s,
            &w[..47],
            Source::I8(&x),
            false,
            bytemuck::cast_slice_mut(&mut buf),
            &mut acc,
            rows_model,
        );
        assert_eq!(r, Err(ConvSizeError));
        let r = conv_i8_packed(
            &s,
            &w,
            Source::I8(&x[..31]),
            false,
            bytemuck::cast_slice_mut(&mut buf),
            &mut acc,
            rows_model,
        );
        assert_eq!(r, Err(ConvSizeError));
        // A kernel that refuses: not done.
        let r = conv_i8_packed(
            &s,
            &w,
            Source::I8(&x),
            false,
            bytemuck::cast_slice_mut(&mut buf),
            &mut acc,
            |_: &[u8], _, _, _, _: &[u32], _: &mut [i32], _| false,
        );
        assert_eq!(r, Ok(false));
    }

    /// The column scratch covers the portable walk's tile of columns too.
    #[test]
    fn the_column_scratch_holds_both_forms() {
        for &(c_in, l_in, c_out, k, st) in &SHAPES {
            let s = ConvShape::new(c_in, l_in, c_out, k, 1, st).unwrap();
            assert!(4 * col_words(&s) >= CONV_TILE * s.cols());
            let (c4, chunks, p, xp) = layout(&s);
            assert!(xp >= (l_in + 2 * p) * c4 + 16 * chunks - k * c4);
        }
    }
}
