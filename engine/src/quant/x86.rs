//! The int8 kernels of the `w8a8` path with AVX2 on x86-64 hosts, each the exact twin of a
//! portable one in this module:
//!
//! * [`matmul_i8`]: int8 × int8 dot products for blocks of rows and vectors with `vpmaddwd`
//!   (sixteen products per instruction, summed in pairs into int32); for four vectors or more
//!   with the weights packed so that the eight lanes of a register are eight rows. Integer sums
//!   are exact and never near overflow (|Σ| ≤ 512·128·128 = 2^23), so any order gives
//!   [`super::dot_i8`]'s value. With an [`Avx2`] token that also proves AVX-VNNI (and rustc ≥ 1.89,
//!   `cfg(tinyscore_vnni)`), on `vpdpbusd` instead: 32 products per instruction, the weights
//!   made unsigned by flipping their sign bit and 128·Σx taken off each sum.
//! * [`requant_layer`]: the int8 layers' epilogues of [`super::epilogue`] (requantization,
//!   saturation, the residual add, the SiLU tables by `vpshufb`), eight rows at a time.
//!
//! Run only with an [`Avx2`] token (`crate::kernels`). Tests: the unit tests below hold them
//! against the portable kernels on random sizes and values (they run where the test machine has
//! AVX2, and say so when it does not); `tools/tests/batch.rs` compares whole networks.
#![allow(unsafe_code)]
// The kernels index small arrays of registers by row and vector; loops over indices say that best.
#![allow(clippy::needless_range_loop)]

use core::arch::x86_64::*;

use super::epilogue::Epilogue;
use crate::kernels::Avx2;

/// `acc[s·so + r] = Σ_c w[r·cols + c]·x[s·sx + c]` (int8 weights as stored bytes, int8
/// activations, exact int32 sums) for every row `r < rows` and vector `s < n`.
///
/// # Panics
/// If `w`, `x` or `acc` is shorter than those indices need (a caller bug).
#[allow(clippy::too_many_arguments)]
pub fn matmul_i8(
    tok: Avx2,
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[i8],
    sx: usize,
    n: usize,
    acc: &mut [i32],
    so: usize,
) {
    if rows == 0 || n == 0 {
        return;
    }
    assert!(w.len() >= rows * cols, "weights shorter than rows × cols");
    assert!(x.len() >= (n - 1) * sx + cols, "activations shorter than n vectors");
    assert!(acc.len() >= (n - 1) * so + rows, "accumulators shorter than n × rows");
    // SAFETY: AVX2 by the token; the asserts bound every read of `w` (rows·cols bytes) and `x`
    // ((n−1)·sx + cols values) and every write of `acc` ((n−1)·so + rows values).
    unsafe {
        if !matmul_i8_vnni_if(tok, w.as_ptr(), rows, cols, x.as_ptr(), sx, n, acc.as_mut_ptr(), so) {
            matmul_i8_avx2(w.as_ptr(), rows, cols, x.as_ptr(), sx, n, acc.as_mut_ptr(), so)
        }
    }
}

/// [`matmul_i8`] on AVX-VNNI if the token has it (then `true`); the same contract.
#[cfg(tinyscore_vnni)]
#[allow(clippy::too_many_arguments)]
unsafe fn matmul_i8_vnni_if(
    tok: Avx2,
    w: *const u8,
    rows: usize,
    cols: usize,
    x: *const i8,
    sx: usize,
    n: usize,
    acc: *mut i32,
    so: usize,
) -> bool {
    if !tok.vnni() {
        return false;
    }
    // SAFETY: AVX2 and AVX-VNNI by the token; the caller's bounds.
    if cols <= WIDE_COLS && n >= 4 {
        matmul_packed_vnni(w, rows, cols, x, sx, n, acc, so)
    } else {
        matmul_i8_vnni(w, rows, cols, x, sx, n, acc, so)
    }
    true
}

/// Without the AVX-VNNI kernels (a compiler older than 1.89, `engine/build.rs`): never.
#[cfg(not(tinyscore_vnni))]
#[allow(clippy::too_many_arguments)]
unsafe fn matmul_i8_vnni_if(
    _: Avx2,
    _: *const u8,
    _: usize,
    _: usize,
    _: *const i8,
    _: usize,
    _: usize,
    _: *mut i32,
    _: usize,
) -> bool {
    false
}

/// [`matmul_i8_avx2`]'s one-vector-at-a-time path with AVX-VNNI: `vpdpbusd` multiplies 32
/// unsigned by 32 signed bytes and adds each four products to an int32 lane (no saturation).
/// The weights become unsigned by flipping their sign bit (w + 128, one `vpxor`), so a row's
/// sum is Σ(w + 128)·x = Σ w·x + 128·Σx: the vector's Σx over the same columns (once per
/// vector, by `vpdpbusd` of ones) is subtracted. Exact integers (|Σ(w + 128)·x| ≤ 255·128·cols
/// < 2^31 for cols ≤ 2^16): the same values as [`super::dot_i8`].
#[cfg(tinyscore_vnni)]
#[allow(clippy::incompatible_msrv)] // built only by rustc ≥ 1.89 (engine/build.rs)
#[target_feature(enable = "avx2,avxvnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn matmul_i8_vnni(
    w: *const u8,
    rows: usize,
    cols: usize,
    x: *const i8,
    sx: usize,
    n: usize,
    acc: *mut i32,
    so: usize,
) {
    let full = cols / 32 * 32;
    for s in 0..n {
        let x = x.add(s * sx);
        let mut xs = _mm256_setzero_si256();
        let mut c = 0;
        while c < full {
            let xv = _mm256_loadu_si256(x.add(c) as *const __m256i);
            xs = _mm256_dpbusd_avx_epi32(xs, _mm256_set1_epi8(1), xv);
            c += 32;
        }
        let corr = 128 * hsum(xs);
        let mut r = 0;
        while r + 4 <= rows {
            let v = tile_vnni::<4>(w.add(r * cols), cols, full, x, corr);
            for (i, &v) in v.iter().enumerate() {
                *acc.add(s * so + r + i) = v;
            }
            r += 4;
        }
        while r < rows {
            *acc.add(s * so + r) = tile_vnni::<1>(w.add(r * cols), cols, full, x, corr)[0];
            r += 1;
        }
    }
}

/// `R` rows (stride `cols`) of [`matmul_i8_vnni`] against one vector `x`: its first `full`
/// columns (a multiple of 32) by `vpdpbusd`, less `corr` (128·Σx over them), the rest in scalar.
#[inline]
#[cfg(tinyscore_vnni)]
#[allow(clippy::incompatible_msrv)] // built only by rustc ≥ 1.89 (engine/build.rs)
#[target_feature(enable = "avx2,avxvnni")]
unsafe fn tile_vnni<const R: usize>(
    w: *const u8,
    cols: usize,
    full: usize,
    x: *const i8,
    corr: i32,
) -> [i32; R] {
    let flip = _mm256_set1_epi8(i8::MIN);
    let mut acc = [_mm256_setzero_si256(); R];
    let mut c = 0;
    while c < full {
        let xv = _mm256_loadu_si256(x.add(c) as *const __m256i);
        for r in 0..R {
            let wv = _mm256_xor_si256(_mm256_loadu_si256(w.add(r * cols + c) as *const __m256i), flip);
            acc[r] = _mm256_dpbusd_avx_epi32(acc[r], wv, xv);
        }
        c += 32;
    }
    core::array::from_fn(|r| {
        let mut t = hsum(acc[r]).wrapping_sub(corr);
        for c in full..cols {
            t += (*w.add(r * cols + c) as i8) as i32 * *x.add(c) as i32;
        }
        t
    })
}

/// [`matmul_packed`] with AVX-VNNI: the weights packed so that one `ymm` register holds a column
/// quad of eight rows as unsigned bytes (w + 128, [`pack_panel_vnni`]); the vectors copied once
/// into zero-padded quads with their Σx ([`quads`]). Each `vpdpbusd` of a weight register with a
/// vector's quad broadcast to all lanes adds four products to each of eight rows' sums; at the end
/// 128·Σx comes off each (as in [`matmul_i8_vnni`]; exact integers, [`super::dot_i8`]'s values).
#[inline(never)]
#[cfg(tinyscore_vnni)]
#[allow(clippy::incompatible_msrv)] // built only by rustc ≥ 1.89 (engine/build.rs)
#[target_feature(enable = "avx2,avxvnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn matmul_packed_vnni(
    w: *const u8,
    rows: usize,
    cols: usize,
    x: *const i8,
    sx: usize,
    n: usize,
    acc: *mut i32,
    so: usize,
) {
    let kq = cols.div_ceil(4); // column quads
    let sq = 4 * kq; // stride of the copied vectors
    let group = 32 * kq; // bytes of one packed group of 8 rows
    let groups = rows.div_ceil(8);
    let per_panel = (2 * PANEL) / group.max(1);
    // Uninitialised: `quads` and `pack_panel_vnni` write every byte the blocks read, before
    // they read them (4·kq per vector, `group` per packed group).
    let mut xq = core::mem::MaybeUninit::<Aligned<{ WIDE_VECS * WIDE_COLS / 2 }>>::uninit();
    let xq = xq.as_mut_ptr() as *mut i8;
    let mut corr = [0i32; WIDE_VECS];
    let corr = corr.as_mut_ptr();
    let mut panel = core::mem::MaybeUninit::<Aligned<PANEL>>::uninit();
    let panel = panel.as_mut_ptr() as *mut u8;
    packed_blocks(
        n,
        groups,
        per_panel,
        |i, s| *corr.add(i) = 128 * quads(x.add(s * sx), cols, xq.add(i * sq)),
        |g0, ng| pack_panel_vnni(w, rows, cols, g0, ng, panel),
        |b| {
            let at = BlockVnni {
                w: panel.add(b.g * group),
                group,
                kq,
                x: xq.add(b.v * sq) as *const i8,
                sx: sq,
                corr: corr.add(b.v),
                acc: acc.add(b.s * so + 8 * b.row_group),
                so,
                rows: rows - 8 * b.row_group,
            };
            run_block!(at, b.gg, b.vv)
        },
    );
}

/// One block of [`matmul_packed_vnni`]: `G` packed groups of 8 rows (`group` bytes apart, from
/// `w`) × `S` copied vectors (stride `sx`, from `x`; `corr` their 128·Σx), into `acc` (vector
/// stride `so`; only the first `rows` rows of the block are written).
#[cfg(tinyscore_vnni)]
struct BlockVnni {
    w: *const u8,
    group: usize,
    kq: usize,
    x: *const i8,
    sx: usize,
    corr: *const i32,
    acc: *mut i32,
    so: usize,
    rows: usize,
}

#[cfg(tinyscore_vnni)]
impl BlockVnni {
    #[inline]
    #[allow(clippy::incompatible_msrv)] // built only by rustc ≥ 1.89 (engine/build.rs)
    #[target_feature(enable = "avx2,avxvnni")]
    unsafe fn run<const G: usize, const S: usize>(&self) {
        let mut sum = [[_mm256_setzero_si256(); S]; G];
        for j in 0..self.kq {
            let mut wv = [_mm256_setzero_si256(); G];
            for g in 0..G {
                wv[g] = _mm256_load_si256(self.w.add(g * self.group + 32 * j) as *const __m256i);
            }
            for s in 0..S {
                let quad = core::ptr::read_unaligned(self.x.add(s * self.sx + 4 * j) as *const i32);
                let xb = _mm256_set1_epi32(quad);
                for g in 0..G {
                    sum[g][s] = _mm256_dpbusd_avx_epi32(sum[g][s], wv[g], xb);
                }
            }
        }
        for g in 0..G {
            let count = self.rows.saturating_sub(8 * g).min(8);
            for s in 0..S {
                let v = _mm256_sub_epi32(sum[g][s], _mm256_set1_epi32(*self.corr.add(s)));
                let dst = self.acc.add(s * self.so + 8 * g);
                if count == 8 {
                    _mm256_storeu_si256(dst as *mut __m256i, v);
                } else {
                    let mut t = [0i32; 8];
                    _mm256_storeu_si256(t.as_mut_ptr() as *mut __m256i, v);
                    core::ptr::copy_nonoverlapping(t.as_ptr(), dst, count);
                }
            }
        }
    }
}

/// Packs groups `g0..g0 + ng` of 8 rows of the int8 weights `w` (`rows` × `cols`, row-major)
/// into `out` for [`BlockVnni`]: group g at `out + 32·kq·(g − g0)`, column quad j of it at
/// `32·j` within: the bytes w[8g + i][4j..4j + 4] + 128 (sign bit flipped) for i = 0..8 (128,
/// i.e. w = 0, past the last column; anything past the last row, whose sums are not stored).
/// Full 8 × 32 blocks by an 8 × 8 transpose of 32-bit quads, the rest one by one.
#[cfg(tinyscore_vnni)]
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn pack_panel_vnni(w: *const u8, rows: usize, cols: usize, g0: usize, ng: usize, out: *mut u8) {
    let kq = cols.div_ceil(4);
    let flip = _mm256_set1_epi8(i8::MIN);
    for gi in 0..ng {
        let r0 = 8 * (g0 + gi);
        let o = out.add(32 * kq * gi);
        let mut j0 = 0;
        if r0 + 8 <= rows {
            let mut c = 0;
            while c + 32 <= cols {
                let r: [__m256i; 8] = core::array::from_fn(|i| {
                    _mm256_xor_si256(_mm256_loadu_si256(w.add((r0 + i) * cols + c) as *const __m256i), flip)
                });
                // An 8 × 8 transpose of 32-bit units. a[2m], a[2m + 1]: rows 2m and 2m + 1
                // interleaved (quads 0, 1 | 4, 5 and 2, 3 | 6, 7 of each 128-bit half).
                let a: [__m256i; 8] = core::array::from_fn(|k| {
                    let (x, y) = (r[k & !1], r[k | 1]);
                    if k % 2 == 0 {
                        _mm256_unpacklo_epi32(x, y)
                    } else {
                        _mm256_unpackhi_epi32(x, y)
                    }
                });
                let b: [__m256i; 8] = core::array::from_fn(|k| {
                    let p = (k & 4) + ((k >> 1) & 1);
                    if k % 2 == 0 {
                        _mm256_unpacklo_epi64(a[p], a[p + 2])
                    } else {
                        _mm256_unpackhi_epi64(a[p], a[p + 2])
                    }
                });
                // b[k] (k < 4) holds quads k and k + 4 of rows 0–3 (low and high 128 bits),
                // b[k + 4] the same of rows 4–7.
                for k in 0..4 {
                    let lo = _mm256_permute2x128_si256::<0x20>(b[k], b[k + 4]);
                    let hi = _mm256_permute2x128_si256::<0x31>(b[k], b[k + 4]);
                    let j = c / 4 + k;
                    _mm256_store_si256(o.add(32 * j) as *mut __m256i, lo);
                    _mm256_store_si256(o.add(32 * (j + 4)) as *mut __m256i, hi);
                }
                c += 32;
            }
            j0 = c / 4;
        }
        for j in j0..kq {
            for i in 0..8 {
                for k in 0..4 {
                    let c = 4 * j + k;
                    let v = if r0 + i < rows && c < cols { *w.add((r0 + i) * cols + c) } else { 0 };
                    *o.add(32 * j + 4 * i + k) = v ^ 0x80;
                }
            }
        }
    }
}

/// `cols` int8 values at `x` copied to `out`, then zeros up to a multiple of 4 (the last quad's
/// partners); returns their sum.
#[inline]
#[cfg(tinyscore_vnni)]
#[allow(clippy::incompatible_msrv)] // built only by rustc ≥ 1.89 (engine/build.rs)
#[target_feature(enable = "avx2,avxvnni")]
unsafe fn quads(x: *const i8, cols: usize, out: *mut i8) -> i32 {
    let mut xs = _mm256_setzero_si256();
    let mut c = 0;
    while c + 32 <= cols {
        let v = _mm256_loadu_si256(x.add(c) as *const __m256i);
        xs = _mm256_dpbusd_avx_epi32(xs, _mm256_set1_epi8(1), v);
        _mm256_storeu_si256(out.add(c) as *mut __m256i, v);
        c += 32;
    }
    let mut sum = hsum(xs);
    while c < cols {
        *out.add(c) = *x.add(c);
        sum += *x.add(c) as i32;
        c += 1;
    }
    while c % 4 != 0 {
        *out.add(c) = 0;
        c += 1;
    }
    sum
}

/// The sum of the eight int32 lanes of `v` (wrapping, as the lanes' own adds).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn hsum(v: __m256i) -> i32 {
    let q = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let q = _mm_hadd_epi32(q, q);
    _mm_cvtsi128_si32(_mm_hadd_epi32(q, q))
}

/// Columns [`matmul_i8`] packs and widens on its stack (wider layers take the slower path).
const WIDE_COLS: usize = 512;
/// Vectors [`matmul_i8`] widens at once.
const WIDE_VECS: usize = 32;
/// int16 values of the packed-weight panel on [`matmul_i8`]'s stack (16 KiB): at least two
/// groups of 8 rows at [`WIDE_COLS`] columns.
const PANEL: usize = 8192;

/// A stack buffer of `N` int16 values aligned for `ymm` loads and stores.
#[repr(C, align(32))]
struct Aligned<const N: usize>([i16; N]);

/// Where one block of a packed matmul is: `gg` ≤ 2 packed groups from group `g` of the panel
/// (`row_group` of the layer: rows 8·row_group…), `vv` ≤ 4 vectors from prepared vector `v`
/// (vector `s` of the call).
#[derive(Clone, Copy)]
struct At {
    g: usize,
    row_group: usize,
    gg: usize,
    v: usize,
    s: usize,
    vv: usize,
}

/// `$at.run::<G, S>()` for the block's `G = $gg` groups and `S = $vv` vectors.
macro_rules! run_block {
    ($at:expr, $gg:expr, $vv:expr) => {
        match ($gg, $vv) {
            (2, 4) => $at.run::<2, 4>(),
            (2, 3) => $at.run::<2, 3>(),
            (2, 2) => $at.run::<2, 2>(),
            (2, _) => $at.run::<2, 1>(),
            (_, 4) => $at.run::<1, 4>(),
            (_, 3) => $at.run::<1, 3>(),
            (_, 2) => $at.run::<1, 2>(),
            _ => $at.run::<1, 1>(),
        }
    };
}
use run_block;

/// The loops of a packed int8 matmul ([`matmul_packed`], [`matmul_packed_vnni`]): the `n`
/// vectors in chunks of [`WIDE_VECS`] (`prep(i, s)` readies vector s of the call as the chunk's
/// i-th), the layer's `groups` groups of 8 rows in panels of `per_panel` (`pack(g0, ng)` packs
/// groups g0..g0 + ng), then each block of up to 2 groups × 4 vectors (`block`).
#[inline(always)]
unsafe fn packed_blocks(
    n: usize,
    groups: usize,
    per_panel: usize,
    mut prep: impl FnMut(usize, usize),
    mut pack: impl FnMut(usize, usize),
    mut block: impl FnMut(At),
) {
    let mut s = 0;
    while s < n {
        let nv = (n - s).min(WIDE_VECS);
        for i in 0..nv {
            prep(i, s + i);
        }
        let mut g0 = 0;
        while g0 < groups {
            let ng = (groups - g0).min(per_panel);
            pack(g0, ng);
            let mut g = 0;
            while g < ng {
                let gg = (ng - g).min(2);
                let mut v = 0;
                while v < nv {
                    let vv = (nv - v).min(4);
                    block(At { g, row_group: g0 + g, gg, v, s: s + v, vv });
                    v += vv;
                }
                g += gg;
            }
            g0 += ng;
        }
        s += nv;
    }
}

#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn matmul_i8_avx2(
    w: *const u8,
    rows: usize,
    cols: usize,
    x: *const i8,
    sx: usize,
    n: usize,
    acc: *mut i32,
    so: usize,
) {
    if cols <= WIDE_COLS && n >= 4 {
        return matmul_packed(w, rows, cols, x, sx, n, acc, so);
    }
    // One vector at a time: four rows per pass, summed across the lanes at the end.
    for s in 0..n {
        let mut r = 0;
        while r + 4 <= rows {
            let v = tile_i8::<4, 1>(w.add(r * cols), cols, x.add(s * sx), sx);
            put::<4, 1>(&v, acc.add(s * so + r), so);
            r += 4;
        }
        while r < rows {
            let v = tile_i8::<1, 1>(w.add(r * cols), cols, x.add(s * sx), sx);
            put::<1, 1>(&v, acc.add(s * so + r), so);
            r += 1;
        }
    }
}

/// [`matmul_i8`] for four vectors or more, `cols ≤ WIDE_COLS`: the weights packed, a panel of
/// rows at a time, so that one `ymm` register holds a column pair of eight rows as int16
/// ([`pack_panel`]); the vectors widened to int16 once ([`widen`]). Then each `vpmaddwd` of a
/// weight register with a vector's column pair broadcast to all lanes adds two products to each
/// of eight rows' sums: the eight lanes are eight outputs, with no sum across lanes.
// Not inlined: its 48 KiB of stack buffers would make every call of `matmul_i8_avx2` probe
// that much stack, one vector at a time too.
#[inline(never)]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn matmul_packed(
    w: *const u8,
    rows: usize,
    cols: usize,
    x: *const i8,
    sx: usize,
    n: usize,
    acc: *mut i32,
    so: usize,
) {
    let kp = cols.div_ceil(2); // column pairs
    let sw = 2 * kp; // stride of the widened vectors (the odd column's partner is 0)
    let group = 16 * kp; // int16 values of one packed group of 8 rows
    let groups = rows.div_ceil(8);
    let per_panel = PANEL / group.max(1);
    // Uninitialised: `widen` and `pack_panel` write every value the blocks read, before they
    // read them (2·kp per vector, `group` per packed group).
    let mut wide = core::mem::MaybeUninit::<Aligned<{ WIDE_VECS * WIDE_COLS }>>::uninit();
    let wide = wide.as_mut_ptr() as *mut i16;
    let mut panel = core::mem::MaybeUninit::<Aligned<PANEL>>::uninit();
    let panel = panel.as_mut_ptr() as *mut i16;
    packed_blocks(
        n,
        groups,
        per_panel,
        |i, s| widen(x.add(s * sx), cols, wide.add(i * sw)),
        |g0, ng| pack_panel(w, rows, cols, g0, ng, panel),
        |b| {
            let at = Block {
                w: panel.add(b.g * group),
                group,
                kp,
                x: wide.add(b.v * sw) as *const i16,
                sx: sw,
                acc: acc.add(b.s * so + 8 * b.row_group),
                so,
                rows: rows - 8 * b.row_group,
            };
            run_block!(at, b.gg, b.vv)
        },
    );
}

/// One block of [`matmul_packed`]: `G` packed groups of 8 rows (`group` values apart, from `w`)
/// × `S` widened vectors (stride `sx`, from `x`), into `acc` (vector stride `so`; only the first
/// `rows` rows of the block are written).
struct Block {
    w: *const i16,
    group: usize,
    kp: usize,
    x: *const i16,
    sx: usize,
    acc: *mut i32,
    so: usize,
    rows: usize,
}

impl Block {
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn run<const G: usize, const S: usize>(&self) {
        let mut sum = [[_mm256_setzero_si256(); S]; G];
        let step = |j: usize, sum: &mut [[__m256i; S]; G]| {
            let mut wv = [_mm256_setzero_si256(); G];
            for g in 0..G {
                wv[g] = _mm256_load_si256(self.w.add(g * self.group + 16 * j) as *const __m256i);
            }
            for s in 0..S {
                let pair = core::ptr::read_unaligned(self.x.add(s * self.sx + 2 * j) as *const i32);
                let xb = _mm256_set1_epi32(pair);
                for g in 0..G {
                    sum[g][s] = _mm256_add_epi32(sum[g][s], _mm256_madd_epi16(wv[g], xb));
                }
            }
        };
        let mut j = 0;
        while j + 2 <= self.kp {
            step(j, &mut sum);
            step(j + 1, &mut sum);
            j += 2;
        }
        if j < self.kp {
            step(j, &mut sum);
        }
        for g in 0..G {
            let count = self.rows.saturating_sub(8 * g).min(8);
            for s in 0..S {
                let dst = self.acc.add(s * self.so + 8 * g);
                if count == 8 {
                    _mm256_storeu_si256(dst as *mut __m256i, sum[g][s]);
                } else {
                    let mut t = [0i32; 8];
                    _mm256_storeu_si256(t.as_mut_ptr() as *mut __m256i, sum[g][s]);
                    core::ptr::copy_nonoverlapping(t.as_ptr(), dst, count);
                }
            }
        }
    }
}

/// Packs groups `g0..g0 + ng` of 8 rows of the int8 weights `w` (`rows` × `cols`, row-major)
/// into `out`: group g at `out + 16·kp·(g − g0)`, column pair j of it at `16·j` within: the
/// int16 values w[8g + i][2j], w[8g + i][2j + 1] for i = 0..8 (zero past the last row or
/// column). Full 8 × 16 blocks by an 8 × 8 transpose of byte pairs, the rest one by one.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn pack_panel(w: *const u8, rows: usize, cols: usize, g0: usize, ng: usize, out: *mut i16) {
    let kp = cols.div_ceil(2);
    for gi in 0..ng {
        let r0 = 8 * (g0 + gi);
        let o = out.add(16 * kp * gi);
        let mut j0 = 0;
        if r0 + 8 <= rows {
            let mut c = 0;
            while c + 16 <= cols {
                let r: [__m128i; 8] =
                    core::array::from_fn(|i| _mm_loadu_si128(w.add((r0 + i) * cols + c) as *const __m128i));
                // Pairs of bytes as 16-bit units: an 8 × 8 transpose of units.
                let t0 = _mm_unpacklo_epi16(r[0], r[1]);
                let t1 = _mm_unpackhi_epi16(r[0], r[1]);
                let t2 = _mm_unpacklo_epi16(r[2], r[3]);
                let t3 = _mm_unpackhi_epi16(r[2], r[3]);
                let t4 = _mm_unpacklo_epi16(r[4], r[5]);
                let t5 = _mm_unpackhi_epi16(r[4], r[5]);
                let t6 = _mm_unpacklo_epi16(r[6], r[7]);
                let t7 = _mm_unpackhi_epi16(r[6], r[7]);
                let u = [
                    _mm_unpacklo_epi32(t0, t2),
                    _mm_unpackhi_epi32(t0, t2),
                    _mm_unpacklo_epi32(t1, t3),
                    _mm_unpackhi_epi32(t1, t3),
                ];
                let v = [
                    _mm_unpacklo_epi32(t4, t6),
                    _mm_unpackhi_epi32(t4, t6),
                    _mm_unpacklo_epi32(t5, t7),
                    _mm_unpackhi_epi32(t5, t7),
                ];
                for q in 0..4 {
                    // u[q] holds pairs 2q and 2q + 1 of rows 0–3, v[q] of rows 4–7.
                    let lo = _mm_unpacklo_epi64(u[q], v[q]);
                    let hi = _mm_unpackhi_epi64(u[q], v[q]);
                    let j = c / 2 + 2 * q;
                    _mm256_store_si256(o.add(16 * j) as *mut __m256i, _mm256_cvtepi8_epi16(lo));
                    _mm256_store_si256(o.add(16 * (j + 1)) as *mut __m256i, _mm256_cvtepi8_epi16(hi));
                }
                c += 16;
            }
            j0 = c / 2;
        }
        for j in j0..kp {
            for i in 0..8 {
                let at = |c: usize| {
                    if r0 + i < rows && c < cols {
                        (*w.add((r0 + i) * cols + c) as i8) as i16
                    } else {
                        0
                    }
                };
                *o.add(16 * j + 2 * i) = at(2 * j);
                *o.add(16 * j + 2 * i + 1) = at(2 * j + 1);
            }
        }
    }
}

/// `cols` int8 values at `x` sign-extended to int16 at `out`, then a 0 if `cols` is odd (the
/// partner of the last column in [`matmul_packed`]'s column pairs).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn widen(x: *const i8, cols: usize, out: *mut i16) {
    let mut c = 0;
    while c + 16 <= cols {
        let v = _mm256_cvtepi8_epi16(_mm_loadu_si128(x.add(c) as *const __m128i));
        _mm256_storeu_si256(out.add(c) as *mut __m256i, v);
        c += 16;
    }
    while c < cols {
        *out.add(c) = *x.add(c) as i16;
        c += 1;
    }
    if cols % 2 == 1 {
        *out.add(cols) = 0;
    }
}

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn put<const R: usize, const S: usize>(v: &[[i32; S]; R], acc: *mut i32, so: usize) {
    for (r, row) in v.iter().enumerate() {
        for (s, &x) in row.iter().enumerate() {
            *acc.add(s * so + r) = x;
        }
    }
}

/// `R` rows (stride `cols`) × `S` vectors (stride `sx`), both int8: sixteen columns per step,
/// each widened to int16, `vpmaddwd` into eight int32 lanes per (row, vector).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn tile_i8<const R: usize, const S: usize>(
    w: *const u8,
    cols: usize,
    x: *const i8,
    sx: usize,
) -> [[i32; S]; R] {
    let full = cols / 16 * 16;
    let mut acc = [[_mm256_setzero_si256(); S]; R];
    let mut c = 0;
    while c < full {
        let mut xv = [_mm256_setzero_si256(); S];
        for s in 0..S {
            xv[s] = _mm256_cvtepi8_epi16(_mm_loadu_si128(x.add(s * sx + c) as *const __m128i));
        }
        for r in 0..R {
            let wv = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.add(r * cols + c) as *const __m128i));
            for s in 0..S {
                acc[r][s] = _mm256_add_epi32(acc[r][s], _mm256_madd_epi16(wv, xv[s]));
            }
        }
        c += 16;
    }
    let mut out = [[0i32; S]; R];
    for r in 0..R {
        for s in 0..S {
            let v = acc[r][s];
            let q = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
            let q = _mm_hadd_epi32(q, q);
            let q = _mm_hadd_epi32(q, q);
            let mut t = _mm_cvtsi128_si32(q);
            for c in full..cols {
                t += (*w.add(r * cols + c) as i8) as i32 * *x.add(s * sx + c) as i32;
            }
            out[r][s] = t;
        }
    }
    out
}

/// [`crate::quant::epilogue`] (its definition) for `n` vectors and `rows` rows: `acc[s·so + r]`
/// are the dot products, `rq` the layer's little-endian int32 triples (bias, multiplier, shift)
/// per row, and the outputs have stride `stride`. Eight rows per step; the rows beyond a multiple
/// of eight by the scalar definition.
///
/// # Panics
/// If a slice is shorter than those indices need (a caller bug).
#[allow(clippy::too_many_arguments)]
pub fn requant_layer(
    _: Avx2,
    rq: &[u8],
    acc: &[i32],
    so: usize,
    n: usize,
    rows: usize,
    stride: usize,
    e: Epilogue<'_>,
) {
    if n == 0 || rows == 0 {
        return;
    }
    assert!(rq.len() >= 12 * rows, "requantization triples shorter than the rows");
    assert!(acc.len() >= (n - 1) * so + rows, "accumulators shorter than n × rows");
    let out_len = (n - 1) * stride + rows;
    match &e {
        Epilogue::ToI16 { out, silu } => {
            assert!(out.len() >= out_len && silu.out.len() >= out_len && silu.table.len() >= 256)
        }
        Epilogue::Table { add, table, out } => {
            assert!(out.len() >= out_len && add.len() >= rows && table.len() >= 256)
        }
        Epilogue::Residual { h, silu, .. } => {
            assert!(h.len() >= out_len && silu.out.len() >= out_len && silu.table.len() >= 256)
        }
    }
    // SAFETY: AVX2 by the token; the asserts bound every access (rq: 3·rows values, acc:
    // (n−1)·so + rows, the output (n−1)·stride + rows, add: rows, table: 256).
    unsafe { requant_layer_avx2(rq.as_ptr(), acc.as_ptr(), so, n, rows, stride, e) }
}

#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn requant_layer_avx2(
    rq: *const u8,
    acc: *const i32,
    so: usize,
    n: usize,
    rows: usize,
    stride: usize,
    mut e: Epilogue<'_>,
) {
    use super::epilogue;
    let triples = rq;
    let rq = core::slice::from_raw_parts(rq, 12 * rows);
    // The outputs as raw pointers in a local copy (no reloads through `e` in the loop); every
    // index below is < (n−1)·stride + rows, checked by `requant_layer`, and every table index is
    // within 0..=255 (tables hold 256 entries, also checked).
    // (The table every kind ends with, and where its entries go.)
    let (dst, table, lut_out) = match &mut e {
        Epilogue::ToI16 { out, silu } => {
            (Out::I16 { out: out.as_mut_ptr() }, silu.table, silu.out.as_mut_ptr())
        }
        Epilogue::Table { add, table, out } => (Out::Table { add: add.as_ptr() }, *table, out.as_mut_ptr()),
        Epilogue::Residual { mr, nr, h, silu } => {
            let res = Requant8::new(_mm256_set1_epi32(*mr), _mm256_set1_epi32(*nr as i32));
            (Out::Residual { res, h: h.as_mut_ptr() }, silu.table, silu.out.as_mut_ptr())
        }
    };
    let table = table.as_ptr();
    let full = rows / 8 * 8;
    let mut r = 0;
    while r < full {
        let [mut bias, m, sh] = triples8(triples.add(12 * r));
        let k = Requant8::new(m, sh);
        if let Out::Table { add } = dst {
            bias = _mm256_add_epi32(bias, _mm256_loadu_si256(add.add(r) as *const __m256i));
        }
        // Four vectors at a time: their 32 table indices go through one `vpshufb` lookup.
        let g = Group { k, bias, r, acc, so, stride, dst, table, lut_out };
        match dst {
            Out::I16 { .. } => g.all::<0>(n),
            Out::Table { .. } => g.all::<1>(n),
            Out::Residual { .. } => g.all::<2>(n),
        }
        r += 8;
    }
    // The last rows % 8 rows, by the scalar definition (the slices' bounds were checked by
    // `requant_layer`).
    let acc = core::slice::from_raw_parts(acc, (n - 1) * so + rows);
    epilogue::epilogue(rq, acc, so, n, full..rows, stride, &mut e);
}

/// The (bias, multiplier, shift) triples of eight rows ([`super::epilogue::triple`]: 24
/// little-endian int32, row-major, at `p`) as three vectors of their eight rows: three loads,
/// and per vector two blends and one `vpermd` (word 3j + k is triple j's element k; a blend
/// takes each row's word from the load that holds it, the permutation puts the rows in order).
/// Reads 96 bytes from `p`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn triples8(p: *const u8) -> [__m256i; 3] {
    let v = [0, 32, 64].map(|o| _mm256_loadu_si256(p.add(o) as *const __m256i));
    // Element k of rows 0..8 is at words k, k+3, …, k+21: in load ⌊w/8⌋, lane w mod 8.
    let b = _mm256_blend_epi32::<0b0010_0100>(_mm256_blend_epi32::<0b1001_0010>(v[0], v[1]), v[2]);
    let m = _mm256_blend_epi32::<0b0100_1001>(_mm256_blend_epi32::<0b0010_0100>(v[0], v[1]), v[2]);
    let s = _mm256_blend_epi32::<0b1001_0010>(_mm256_blend_epi32::<0b0100_1001>(v[0], v[1]), v[2]);
    [
        _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 3, 6, 1, 4, 7, 2, 5)),
        _mm256_permutevar8x32_epi32(m, _mm256_setr_epi32(1, 4, 7, 2, 5, 0, 3, 6)),
        _mm256_permutevar8x32_epi32(s, _mm256_setr_epi32(2, 5, 0, 3, 6, 1, 4, 7)),
    ]
}

/// What [`requant_layer_avx2`] does per kind of [`Epilogue`] besides its last table: raw
/// pointers to the int16 output or the added row terms, and the residual's requantization.
#[derive(Clone, Copy)]
#[allow(clippy::large_enum_variant)] // a local value, matched in registers
enum Out {
    I16 { out: *mut i16 },
    Table { add: *const i32 },
    Residual { res: Requant8, h: *mut i16 },
}

/// Eight rows `r..r + 8` of [`requant_layer_avx2`]: their requantization constants and bias,
/// and where their dot products are and their outputs go.
struct Group {
    k: Requant8,
    bias: __m256i,
    r: usize,
    acc: *const i32,
    so: usize,
    stride: usize,
    dst: Out,
    table: *const u8,
    lut_out: *mut i8,
}

impl Group {
    /// The epilogue of `n` vectors, `KIND` the variant of `self.dst` (0, 1, 2: `I16`, `Table`,
    /// `Residual`; a constant, so that each variant gets its own loop).
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn all<const KIND: u8>(&self, n: usize) {
        let mut s = 0;
        while s + 4 <= n {
            self.vectors::<KIND, 4>(s);
            s += 4;
        }
        match n - s {
            3 => self.vectors::<KIND, 3>(s),
            2 => self.vectors::<KIND, 2>(s),
            1 => self.vectors::<KIND, 1>(s),
            _ => {}
        }
    }

    /// The epilogue of vectors `s..s + C` (C ≤ 4), their table lookups in one [`lut32`].
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn vectors<const KIND: u8, const C: usize>(&self, s: usize) {
        let mut idx = [_mm256_setzero_si256(); 4];
        for i in 0..C {
            let a = _mm256_loadu_si256(self.acc.add((s + i) * self.so + self.r) as *const __m256i);
            let v = self.k.apply(_mm256_add_epi32(a, self.bias));
            let o = (s + i) * self.stride + self.r;
            idx[i] = match self.dst {
                Out::I16 { out } if KIND == 0 => {
                    let v = clamp32(v, 32767);
                    store_i16(out.add(o), v);
                    residual_index8(v)
                }
                Out::Table { .. } if KIND == 1 => clamp32(v, 127),
                Out::Residual { res, h } if KIND == 2 => {
                    let hp = h.add(o);
                    let hv = _mm256_cvtepi16_epi32(_mm_loadu_si128(hp as *const __m128i));
                    let v = clamp32(saturating_add32(res.apply(hv), v), 32767);
                    store_i16(hp, v);
                    residual_index8(v)
                }
                _ => return, // KIND names another variant: not reached
            };
        }
        if C <= 2 {
            // One or two vectors: eight table reads each are cheaper than a whole `lut32`.
            for i in 0..C {
                lookup8(self.table, idx[i], self.lut_out.add((s + i) * self.stride + self.r));
            }
            return;
        }
        let looked = lut32(self.table, idx);
        let q = [
            _mm256_extract_epi64::<0>(looked),
            _mm256_extract_epi64::<1>(looked),
            _mm256_extract_epi64::<2>(looked),
            _mm256_extract_epi64::<3>(looked),
        ];
        for i in 0..C {
            core::ptr::write_unaligned(self.lut_out.add((s + i) * self.stride + self.r) as *mut i64, q[i]);
        }
    }
}

/// [`crate::quant::requantize`] by eight (multiplier, shift) pairs, its per-lane constants
/// computed once for the many vectors of a layer: ⌊(a·m + 2^(n−1)) / 2^n⌋ saturated to i32.
/// The products are exact in i64 (`vpmuldq` on the even lanes, then on the odd lanes shifted
/// down). AVX2 shifts i64 only logically, so the sum is offset by 2^63 to make it non-negative:
/// u = a·m + 2^(n−1) + 2^63 (wrapping; exact as unsigned, since |a·m| ≤ 2^62 and
/// 2^(n−1) ≤ 2^61), and ⌊(a·m + 2^(n−1)) / 2^n⌋ = (u >> n) − 2^(63−n).
#[derive(Clone, Copy)]
struct Requant8 {
    /// The multipliers of the even lanes (low halves of the 64-bit lanes) and of the odd lanes
    /// (moved down).
    m: [__m256i; 2],
    /// The shifts, clamped as `requantize` clamps them, as 64-bit counts (even, odd).
    n: [__m256i; 2],
    /// 2^(n−1) + 2^63 per 64-bit lane (even, odd).
    add: [__m256i; 2],
    /// 2^(63−n) per 64-bit lane (even, odd).
    sub: [__m256i; 2],
}

impl Requant8 {
    /// The constants of multipliers `m` and shifts `n` (int32 lanes; shifts read as u32 and
    /// clamped to [SHIFT_MIN, SHIFT_MAX] as [`crate::quant::requantize`] does).
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn new(m: __m256i, n: __m256i) -> Self {
        use super::scheme::{SHIFT_MAX, SHIFT_MIN};
        let n = _mm256_max_epu32(
            _mm256_min_epu32(n, _mm256_set1_epi32(SHIFT_MAX as i32)),
            _mm256_set1_epi32(SHIFT_MIN as i32),
        );
        let n = [_mm256_and_si256(n, _mm256_set1_epi64x(0xffff_ffff)), _mm256_srli_epi64::<32>(n)];
        let one = _mm256_set1_epi64x(1);
        let top = _mm256_set1_epi64x(i64::MIN);
        let add = |n| _mm256_or_si256(_mm256_sllv_epi64(one, _mm256_sub_epi64(n, one)), top);
        let sub = |n| _mm256_srlv_epi64(top, n);
        Self {
            m: [m, _mm256_srli_epi64::<32>(m)],
            n,
            add: [add(n[0]), add(n[1])],
            sub: [sub(n[0]), sub(n[1])],
        }
    }

    /// The eight requantized lanes of `a`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn apply(&self, a: __m256i) -> __m256i {
        let p = [_mm256_mul_epi32(a, self.m[0]), _mm256_mul_epi32(_mm256_srli_epi64::<32>(a), self.m[1])];
        let q: [__m256i; 2] = core::array::from_fn(|k| {
            let u = _mm256_add_epi64(p[k], self.add[k]);
            _mm256_sub_epi64(_mm256_srlv_epi64(u, self.n[k]), self.sub[k])
        });
        // |q| ≤ 2^61: it fits i32 when its high half is the sign of its low half; otherwise
        // it saturates to the bound on its side.
        let lo = _mm256_blend_epi32::<0b1010_1010>(q[0], _mm256_slli_epi64::<32>(q[1]));
        let hi = _mm256_blend_epi32::<0b1010_1010>(_mm256_srli_epi64::<32>(q[0]), q[1]);
        let fits = _mm256_cmpeq_epi32(hi, _mm256_srai_epi32::<31>(lo));
        let bound = _mm256_xor_si256(_mm256_srai_epi32::<31>(hi), _mm256_set1_epi32(i32::MAX));
        _mm256_blendv_epi8(bound, lo, fits)
    }
}

/// Lanes clamped to [−limit, limit].
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn clamp32(v: __m256i, limit: i32) -> __m256i {
    _mm256_max_epi32(_mm256_min_epi32(v, _mm256_set1_epi32(limit)), _mm256_set1_epi32(-limit))
}

/// `a.saturating_add(b)` per i32 lane: on overflow (both operands' sign differs from the sum's)
/// the bound on a's side.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn saturating_add32(a: __m256i, b: __m256i) -> __m256i {
    let s = _mm256_add_epi32(a, b);
    let overflow = _mm256_and_si256(_mm256_xor_si256(a, s), _mm256_xor_si256(b, s));
    let bound = _mm256_xor_si256(_mm256_srai_epi32::<31>(a), _mm256_set1_epi32(i32::MAX));
    _mm256_blendv_epi8(s, bound, _mm256_srai_epi32::<31>(overflow))
}

/// [`crate::quant::residual_index`] of eight residual values within int16:
/// `clamp((v + 128) >> 8, −128, 127)`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn residual_index8(v: __m256i) -> __m256i {
    use super::scheme::RESIDUAL_EXTRA_BITS as B;
    let r = _mm256_srai_epi32::<{ B as i32 }>(_mm256_add_epi32(v, _mm256_set1_epi32(1 << (B - 1))));
    _mm256_max_epi32(_mm256_min_epi32(r, _mm256_set1_epi32(127)), _mm256_set1_epi32(-128))
}

/// [`crate::quant::lut`] of 4 × 8 indices (int32 lanes in −128..=127) in a 256-entry table:
/// 64-bit lane i of the result holds the eight entries of `idx[i]`. The indices become 32
/// table positions p (bytes); each 16-entry row k of the table is a `vpshufb` by
/// q = (p − 16k) + 0x70 (wrapping subtract, unsigned saturating add): q is 0x70 + (p mod 16)
/// when p is in row k; otherwise p − 16k (mod 256) is at least 16 and q at least 0x80, and a
/// set top bit makes `vpshufb` give 0. The sixteen rows are OR-ed.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn lut32(table: *const u8, idx: [__m256i; 4]) -> __m256i {
    // Per 128-bit half: [idx0, idx1, idx2, idx3] four each (lanes 0–3, then 4–7); vpermd puts
    // each vector's eight bytes in its own 64-bit lane. The signed bytes + 128 (xor 0x80) are
    // the table positions.
    let b = _mm256_packs_epi16(_mm256_packs_epi32(idx[0], idx[1]), _mm256_packs_epi32(idx[2], idx[3]));
    let b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    let mut p = _mm256_xor_si256(b, _mm256_set1_epi8(-128));
    let (sixteen, bias) = (_mm256_set1_epi8(16), _mm256_set1_epi8(0x70));
    let mut out = _mm256_setzero_si256();
    for row in 0..16 {
        let t = _mm256_broadcastsi128_si256(_mm_loadu_si128(table.add(16 * row) as *const __m128i));
        out = _mm256_or_si256(out, _mm256_shuffle_epi8(t, _mm256_adds_epu8(p, bias)));
        p = _mm256_sub_epi8(p, sixteen);
    }
    out
}

/// `out[j] = lut(table, idx[j])` for eight indices in −128..=127 (entry `idx + 128` of a
/// 256-entry table), one 8-byte store.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn lookup8(table: *const u8, idx: __m256i, out: *mut i8) {
    let mut ix = [0i32; 8];
    _mm256_storeu_si256(ix.as_mut_ptr() as *mut __m256i, _mm256_add_epi32(idx, _mm256_set1_epi32(128)));
    let bytes: [u8; 8] = core::array::from_fn(|j| *table.add(ix[j] as usize));
    core::ptr::write_unaligned(out as *mut [u8; 8], bytes);
}

/// Eight int32 lanes, already within int16, stored as int16 at `p`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn store_i16(p: *mut i16, v: __m256i) {
    let packed = _mm256_packs_epi32(v, v); // [v0..v3, v0..v3 | v4..v7, v4..v7]
    let packed = _mm256_permute4x64_epi64::<0b1000>(packed); // qwords 0, 2 → [v0..v7, …]
    _mm_storeu_si128(p as *mut __m128i, _mm256_castsi256_si128(packed));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::dot_i8;

    fn token() -> Option<Avx2> {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: checked just above.
            Some(unsafe { Avx2::new_unchecked() })
        } else {
            std::println!("skipped: this CPU has no AVX2, the kernels cannot run here");
            None
        }
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// The plain AVX2 token, and the one with AVX-VNNI where this CPU has it.
    fn int8_tokens() -> std::vec::Vec<Avx2> {
        let Some(tok) = token() else { return std::vec![] };
        #[cfg(tinyscore_vnni)]
        #[allow(clippy::incompatible_msrv)] // built only by rustc ≥ 1.89 (engine/build.rs)
        if std::is_x86_feature_detected!("avxvnni") {
            // SAFETY: checked just above.
            return std::vec![tok, unsafe { tok.with_vnni() }];
        }
        std::println!("skipped: the AVX-VNNI int8 matmul (no AVX-VNNI on this CPU, or rustc < 1.89)");
        std::vec![tok]
    }

    #[test]
    fn int8_matmul_equals_the_portable_dot() {
        for tok in int8_tokens() {
            int8_matmul_with(tok);
        }
    }

    fn int8_matmul_with(tok: Avx2) {
        let mut rng = Rng(77);
        for case in 0..300 {
            // Up to several panels of packed rows (at 512 columns, 16 rows per panel), and
            // more vectors than one widened chunk.
            let rows = 1 + (rng.next() % if case % 3 == 0 { 70 } else { 9 }) as usize;
            let cols = if case < 60 { case } else { (rng.next() % 520) as usize };
            let n = 1 + (rng.next() % if case % 4 == 0 { 40 } else { 11 }) as usize;
            let (sx, so) = (cols + (rng.next() % 5) as usize, rows + (rng.next() % 3) as usize);
            let extreme = |v: u64| match v % 9 {
                0 => -128i8,
                1 => 127,
                _ => v as i8,
            };
            let w: std::vec::Vec<u8> = (0..rows * cols).map(|_| extreme(rng.next()) as u8).collect();
            let x: std::vec::Vec<i8> = (0..n * sx).map(|_| extreme(rng.next())).collect();
            let mut acc = std::vec![i32::MIN; n * so];
            matmul_i8(tok, &w, rows, cols, &x, sx, n, &mut acc, so);
            for s in 0..n {
                for r in 0..rows {
                    let want = dot_i8(&w[r * cols..(r + 1) * cols], &x[s * sx..s * sx + cols]);
                    assert_eq!(acc[s * so + r], want, "{tok:?} rows {rows} cols {cols} n {n} s {s} r {r}");
                }
                for r in rows..so {
                    assert_eq!(acc[s * so + r], i32::MIN, "wrote past the rows");
                }
            }
        }
        for (wb, xv, want) in
            [(0x80u8, -128i8, 512 * 128 * 128), (0x7f, -128, -512 * 127 * 128), (0x80, 127, -512 * 128 * 127)]
        {
            let (w, x) = ([wb; 512], [xv; 512]);
            let mut acc = [0i32; 1];
            matmul_i8(tok, &w, 1, 512, &x, 512, 1, &mut acc, 1);
            assert_eq!(acc[0], want, "{tok:?} w {wb:#x} x {xv}");
        }
    }

    #[test]
    fn vector_requantization_equals_the_scalar_rule() {
        let Some(_) = token() else { return };
        let mut rng = Rng(0x5151);
        let edges = [i32::MIN, i32::MIN + 1, -1, 0, 1, i32::MAX, 1 << 23, -(1 << 23)];
        for i in 0..20_000 {
            let pick =
                |rng: &mut Rng, k: usize| if i % 7 == 0 { edges[(i + k) % 8] } else { rng.next() as i32 };
            let a: [i32; 8] = core::array::from_fn(|k| pick(&mut rng, k));
            let m: [i32; 8] = core::array::from_fn(|k| {
                if i % 3 == 0 {
                    pick(&mut rng, k)
                } else {
                    crate::quant::MULT_MIN + (rng.next() % (1 << 30)) as i32
                }
            });
            // Shifts in and out of range, negative ones read as huge u32 (clamped to 62).
            let n: [i32; 8] = core::array::from_fn(|_| (rng.next() % 80) as i32 - 8);
            let mut got = [0i32; 8];
            // SAFETY: AVX2 checked by `token`; the loads and stores are of 8-element arrays.
            unsafe {
                let k = Requant8::new(
                    _mm256_loadu_si256(m.as_ptr() as *const __m256i),
                    _mm256_loadu_si256(n.as_ptr() as *const __m256i),
                );
                let v = k.apply(_mm256_loadu_si256(a.as_ptr() as *const __m256i));
                _mm256_storeu_si256(got.as_mut_ptr() as *mut __m256i, v);
            }
            for k in 0..8 {
                let want = crate::quant::requantize(a[k], m[k], n[k] as u32);
                assert_eq!(got[k], want, "a {} m {} n {}", a[k], m[k], n[k]);
            }
            let sat: [i32; 8] = core::array::from_fn(|k| a[k].saturating_add(m[k]));
            // SAFETY: as above.
            unsafe {
                let v = saturating_add32(
                    _mm256_loadu_si256(a.as_ptr() as *const __m256i),
                    _mm256_loadu_si256(m.as_ptr() as *const __m256i),
                );
                _mm256_storeu_si256(got.as_mut_ptr() as *mut __m256i, v);
            }
            assert_eq!(got, sat, "saturating add of {a:?} and {m:?}");
        }
    }

    /// [`lut32`] against [`crate::quant::lut`] at every index, each in every one of the 32 byte
    /// positions (indices rotated across the four vectors' lanes), with random tables.
    #[test]
    fn lut32_reads_every_entry() {
        let Some(_) = token() else { return };
        let mut rng = Rng(0x1f2e);
        for _ in 0..4 {
            let table: std::vec::Vec<u8> = (0..256).map(|_| rng.next() as u8).collect();
            for shift in 0..256 {
                let ix: [[i32; 8]; 4] = core::array::from_fn(|v| {
                    core::array::from_fn(|j| ((shift + 8 * v + j) % 256) as i32 - 128)
                });
                // SAFETY: AVX2 (the token above); the table has 256 entries, the indices are in
                // −128..=127.
                let got = unsafe {
                    let idx = ix.map(|l| _mm256_loadu_si256(l.as_ptr() as *const __m256i));
                    let mut b = [0u8; 32];
                    _mm256_storeu_si256(b.as_mut_ptr() as *mut __m256i, lut32(table.as_ptr(), idx));
                    b
                };
                for v in 0..4 {
                    for j in 0..8 {
                        let want = crate::quant::lut(&table, ix[v][j] as i8);
                        assert_eq!(got[8 * v + j] as i8, want, "index {}", ix[v][j]);
                    }
                }
            }
        }
    }

    #[test]
    fn layer_epilogues_equal_the_scalar_loop() {
        use crate::quant::{lut, requantize, residual_index, sat_i16, sat_i8};
        let Some(tok) = token() else { return };
        let mut rng = Rng(0xe91);
        for case in 0..300 {
            let rows = 1 + (rng.next() % 40) as usize;
            let n = 1 + (rng.next() % 10) as usize;
            let (so, stride) = (rows + (rng.next() % 3) as usize, rows + (rng.next() % 4) as usize);
            let mut rq = std::vec::Vec::new();
            for _ in 0..rows {
                let bias = (rng.next() % (1 << 31)) as i32 - (1 << 30);
                let m = crate::quant::MULT_MIN + (rng.next() % (1 << 30)) as i32;
                let sh = 1 + (rng.next() % 62) as i32;
                for v in [bias, m, if case % 5 == 0 { sh + 30 } else { (sh % 24) + 8 }] {
                    rq.extend_from_slice(&v.to_le_bytes());
                }
            }
            let t = |r: usize, k: usize| {
                i32::from_le_bytes(rq[12 * r + 4 * k..12 * r + 4 * k + 4].try_into().unwrap())
            };
            let acc: std::vec::Vec<i32> =
                (0..n * so).map(|_| (rng.next() % (1 << 24)) as i32 - (1 << 23)).collect();
            let add: std::vec::Vec<i32> =
                (0..rows).map(|_| (rng.next() % (1 << 30)) as i32 - (1 << 29)).collect();
            let table: std::vec::Vec<u8> = (0..256).map(|_| rng.next() as u8).collect();
            let h0: std::vec::Vec<i16> = (0..n * stride).map(|_| rng.next() as i16).collect();
            let (mr, nr) =
                (crate::quant::MULT_MIN + (rng.next() % (1 << 30)) as i32, 20 + (rng.next() % 20) as u32);

            let table_h: std::vec::Vec<u8> = (0..256).map(|_| rng.next() as u8).collect();
            let mut out = std::vec![0i16; n * stride];
            let mut s0 = std::vec![0i8; n * stride];
            let silu = crate::quant::Silu { table: &table_h, out: &mut s0 };
            requant_layer(tok, &rq, &acc, so, n, rows, stride, Epilogue::ToI16 { out: &mut out, silu });
            let mut o8 = std::vec![0i8; n * stride];
            requant_layer(
                tok,
                &rq,
                &acc,
                so,
                n,
                rows,
                stride,
                Epilogue::Table { add: &add, table: &table, out: &mut o8 },
            );
            let mut h = h0.clone();
            let mut s1 = std::vec![0i8; n * stride];
            let silu = crate::quant::Silu { table: &table_h, out: &mut s1 };
            requant_layer(
                tok,
                &rq,
                &acc,
                so,
                n,
                rows,
                stride,
                Epilogue::Residual { mr, nr, h: &mut h, silu },
            );
            for s in 0..n {
                for r in 0..rows {
                    let (a, o) = (acc[s * so + r], s * stride + r);
                    let (b, m, sh) = (t(r, 0), t(r, 1), t(r, 2) as u32);
                    assert_eq!(out[o], sat_i16(requantize(a + b, m, sh)), "to i16: rows {rows} s {s} r {r}");
                    assert_eq!(s0[o], lut(&table_h, residual_index(out[o])), "silu of h0: s {s} r {r}");
                    let u = requantize(a + b + add[r], m, sh);
                    assert_eq!(o8[o], lut(&table, sat_i8(u)), "table: rows {rows} s {s} r {r}");
                    let want =
                        sat_i16(requantize(h0[o] as i32, mr, nr).saturating_add(requantize(a + b, m, sh)));
                    assert_eq!(h[o], want, "residual: rows {rows} s {s} r {r}");
                    assert_eq!(s1[o], lut(&table_h, residual_index(want)), "silu of h: s {s} r {r}");
                }
            }
        }
    }
}
