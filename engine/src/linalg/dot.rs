//! The f32 dot product in the engine's one summation order, portable: [`dot`] for one row,
//! [`dot_block`] for `R` rows × `K` vectors in one pass, [`dot_finish`] (the lanes' combination
//! and the tail, shared with the Cortex-M4F kernel), and the weight decoders. Every faster kernel
//! (`linalg/vfp.rs`, `linalg/x86.rs`) is held to these bit for bit. A leaf module.

/// Number of interleaved partial sums of [`dot`].
pub const DOT_LANES: usize = 8;

/// `Σ_c w[c]·x[c]` for a row of `S`-byte weights decoded by `decode`, in a fixed order that every
/// target follows (so results are bit-identical) and that lets a compiler use SIMD registers:
/// eight partial sums, lane j over c ≡ j (mod 8) in increasing c, combined as
/// ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)), then the last `cols mod 8` products added in
/// increasing c. `docs/scorenet.md` states the same order.
#[inline(always)]
#[allow(clippy::indexing_slicing)] // w has S·DOT_LANES bytes and xs DOT_LANES values (chunks_exact)
pub fn dot<const S: usize>(row: &[u8], x: &[f32], decode: impl Fn(&[u8]) -> f32) -> f32 {
    let mut lanes = [0.0f32; DOT_LANES];
    let mut w_chunks = row.chunks_exact(S * DOT_LANES);
    let mut x_chunks = x.chunks_exact(DOT_LANES);
    for (w, xs) in (&mut w_chunks).zip(&mut x_chunks) {
        for j in 0..DOT_LANES {
            lanes[j] += decode(&w[S * j..S * j + S]) * xs[j];
        }
    }
    dot_finish::<S>(&lanes, w_chunks.remainder(), x_chunks.remainder(), decode)
}

/// The end of [`dot`]: the eight lanes combined as ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 +
/// l7)), then the tail's products (`w_tail`: `S`-byte weights, `x_tail`: their activations) added
/// in increasing column order. Shared by the portable loop and the Cortex-M4F kernel.
#[inline(always)]
pub fn dot_finish<const S: usize>(
    lanes: &[f32; DOT_LANES],
    w_tail: &[u8],
    x_tail: &[f32],
    decode: impl Fn(&[u8]) -> f32,
) -> f32 {
    let [l0, l1, l2, l3, l4, l5, l6, l7] = *lanes;
    let mut acc = ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7));
    for (w, &xi) in w_tail.chunks_exact(S).zip(x_tail) {
        acc += decode(w) * xi;
    }
    acc
}

/// Decodes one stored f32 weight (little-endian).
#[inline(always)]
pub fn decode_f32(w: &[u8]) -> f32 {
    match *w {
        [a, b, c, d, ..] => f32::from_le_bytes([a, b, c, d]),
        _ => 0.0,
    }
}

/// Decodes one stored int8 weight.
#[inline(always)]
pub fn decode_i8(w: &[u8]) -> f32 {
    match w.first() {
        Some(&b) => (b as i8) as f32,
        None => 0.0,
    }
}

/// Decodes one stored f16 weight (little-endian IEEE binary16, exact in f32) with `half`.
#[inline(always)]
pub fn decode_f16(w: &[u8]) -> f32 {
    match *w {
        [a, b, ..] => half::f16::from_bits(u16::from_le_bytes([a, b])).to_f32(),
        _ => 0.0,
    }
}

/// [`dot`] of `R` rows with each of `K` vectors in one pass over the columns: `out[r][i]` is
/// `dot(rows[r], xs[i])` bit for bit (the same eight lanes per pair, the same combination and
/// tail order), but each decoded weight and each activation is loaded once for the block. All
/// rows are `S·cols` bytes and all vectors `cols` long (`cols = xs[0].len()`).
#[inline(always)]
#[allow(clippy::indexing_slicing)] // rows and vectors have the lengths stated above
pub fn dot_block<const S: usize, const R: usize, const K: usize>(
    rows: [&[u8]; R],
    xs: [&[f32]; K],
    decode: impl Fn(&[u8]) -> f32,
) -> [[f32; K]; R] {
    let cols = if K > 0 { xs[0].len() } else { 0 };
    let full = cols / DOT_LANES * DOT_LANES;
    let mut lanes = [[[0.0f32; DOT_LANES]; K]; R];
    let mut w_chunks = rows.map(|row| row[..S * full].chunks_exact(S * DOT_LANES));
    let mut x_chunks = xs.map(|x| x[..full].chunks_exact(DOT_LANES));
    // Per 8 columns: R weight loads, K activation loads, R·K multiplies and R·K adds of whole
    // 8-lane arrays, which a compiler keeps in SIMD registers.
    for _ in 0..full / DOT_LANES {
        let mut xv = [[0.0f32; DOT_LANES]; K];
        for (v, it) in xv.iter_mut().zip(x_chunks.iter_mut()) {
            if let Some(x) = it.next() {
                v.copy_from_slice(x);
            }
        }
        for (lr, it) in lanes.iter_mut().zip(w_chunks.iter_mut()) {
            let Some(w) = it.next() else { break };
            let mut wv = [0.0f32; DOT_LANES];
            if S == 2 {
                // f16: the decode branches per element; a copy first only costs.
                for (j, v) in wv.iter_mut().enumerate() {
                    *v = decode(&w[S * j..S * j + S]);
                }
            } else {
                // f32 and i8: the 8·S bytes into a fixed-size buffer first (one vector load, and
                // constant offsets for `decode`), so all eight lanes decode with vector
                // instructions: 1.3–1.5× faster blocks on x86-64, the same bits.
                let mut buf = [0u8; 4 * DOT_LANES];
                buf[..S * DOT_LANES].copy_from_slice(w);
                for (j, v) in wv.iter_mut().enumerate() {
                    *v = decode(&buf[S * j..S * j + S]);
                }
            }
            for (l, x) in lr.iter_mut().zip(xv.iter()) {
                for j in 0..DOT_LANES {
                    l[j] += wv[j] * x[j];
                }
            }
        }
    }
    let mut out = [[0.0f32; K]; R];
    for r in 0..R {
        for i in 0..K {
            let l = &lanes[r][i];
            let mut acc = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
            for c in full..cols {
                acc += decode(&rows[r][S * c..S * c + S]) * xs[i][c];
            }
            out[r][i] = acc;
        }
    }
    out
}
