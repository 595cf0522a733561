//! The int8 dot product with the Cortex-M DSP extension's instructions, in inline assembly: on
//! ARMv7E-M (Cortex-M4, M4F, M7) and on ARMv8-M Mainline built with `-C target-feature=+dsp`
//! (Cortex-M33, M35P), which have the same `SMLAD`, `SXTB16`, `SMMLA` and `QADD` (`engine/build.rs`
//! chooses this module by that feature, not by the target's name).
//!
//! Per 16 columns: two `LDM` of the weight row (2 words = 8 int8 weights each), two `LDM` of the
//! prepared activations (4 words = 8 int16 activations each), eight `SXTB16` (two per weight
//! word: bytes 0 and 2, then bytes 1 and 3 through the free `ROR #8`) and eight `SMLAD` (two
//! 16 × 16-bit products added to the accumulator per instruction), and the loop's `CMP` + `BNE`:
//! 22 instructions for 16 multiply–accumulates. The activations are widened once per layer by
//! [`super::Prepared::new`], in the order `SXTB16` gives the weights, so the inner loop never
//! unpacks them. (Tried first: unpacking the activations in the loop too, 28 instructions per 16
//! MACs; more rows at a time run out of the 12 registers inline assembly may use.)
//!
//! [`dot16_tile`] is the same product for 2 or 4 vectors at once (`eps_batch`): each weight word
//! is loaded and unpacked once and multiplied into every vector's prepared pairs, 13
//! instructions per 16 MACs for 4 vectors (0.84 / MAC with the loop), 8 per 8 for 2.
//!
//! Exact: every product is |w·x| ≤ 2^14, the sum of a row ≤ 512·2^14 = 2^23, so `SMLAD` never
//! wraps and the result equals the portable kernel's bit for bit; the property tests of
//! `firmware-example/examples/kernels.rs` check that on the M4 (in QEMU), and
//! `firmware-example/test-targets.sh` compares whole runs of the M33 build with the host's bits.
#![allow(unsafe_code)]

use core::arch::asm;

use super::prepared::tile_kernel;

/// `Σ w[c]·x[c]` over `w.len() / 16` full chunks of 16 columns, where `words` holds the
/// activations prepared by [`super::Prepared::new`] (8 words per chunk).
///
/// Requires `w` to start on a 4-byte boundary (`LDM` faults on an unaligned address) and `words`
/// to hold at least `8·(w.len() / 16)` words; the caller checks both, and this function checks
/// them again and returns `None` rather than read out of bounds.
#[inline]
pub fn dot16(w: &[u8], words: &[u32]) -> Option<i32> {
    let chunks = w.len() / 16;
    if w.as_ptr() as usize % 4 != 0 || words.len() < 8 * chunks {
        return None;
    }
    if chunks == 0 {
        return Some(0);
    }
    let mut acc: i32 = 0;
    // SAFETY: the loop reads `16·chunks` bytes from `w` (within `w`: chunks = ⌊len/16⌋) with
    // word loads from an address checked 4-byte aligned above, and `8·chunks` words from
    // `words` (checked above; a `u32` slice is word aligned). It writes only the registers named
    // as outputs, touches no stack (`nostack`), and reads no other memory (`readonly`). The loop
    // runs `chunks ≥ 1` times: the pointer `pw` steps 16 bytes per turn from `w` and stops when
    // it equals `end = w + 16·chunks`.
    unsafe {
        asm!(
            "2:",
            "ldm {pw}!, {{r2, r3}}",
            "ldm {px}!, {{r4, r5, r8, r10}}",
            "sxtb16 r11, r2",
            "sxtb16 r2, r2, ror #8",
            "smlad {acc}, r11, r4, {acc}",
            "smlad {acc}, r2, r5, {acc}",
            "sxtb16 r11, r3",
            "sxtb16 r3, r3, ror #8",
            "smlad {acc}, r11, r8, {acc}",
            "smlad {acc}, r3, r10, {acc}",
            "ldm {pw}!, {{r2, r3}}",
            "ldm {px}!, {{r4, r5, r8, r10}}",
            "sxtb16 r11, r2",
            "sxtb16 r2, r2, ror #8",
            "smlad {acc}, r11, r4, {acc}",
            "smlad {acc}, r2, r5, {acc}",
            "sxtb16 r11, r3",
            "sxtb16 r3, r3, ror #8",
            "smlad {acc}, r11, r8, {acc}",
            "smlad {acc}, r3, r10, {acc}",
            "cmp {pw}, {end}",
            "bne 2b",
            pw = inout(reg) w.as_ptr() => _,
            px = inout(reg) words.as_ptr() => _,
            end = in(reg) w.as_ptr().add(16 * chunks),
            acc = inout(reg) acc,
            out("r2") _,
            out("r3") _,
            out("r4") _,
            out("r5") _,
            out("r8") _,
            out("r10") _,
            out("r11") _,
            options(nostack, readonly, pure),
        );
    }
    Some(acc)
}

/// `[Σ w[c]·x_s[c] for each vector s]` over `w.len() / 16` full chunks of 16 columns for a tile of
/// S = 2 or 4 vectors, where `words` holds their activations prepared by
/// [`super::prepare_tile_into`] (8·S words per chunk). `None` for another S.
///
/// Per weight word (4 columns) the kernel loads it once (`LDR`), unpacks it with two `SXTB16`
/// and applies it to every vector: S = 4: `SXTB16`, `LDM` of the four vectors' first pairs,
/// four `SMLAD`, `SXTB16 …, ROR #8`, `LDM`, four `SMLAD` (13 instructions for 16 MACs); S = 2:
/// two `SXTB16`, one `LDM` of four words, four `SMLAD` (8 for 8 MACs); plus the loop's
/// `CMP`/`BNE` per 16 columns (S = 4: and an `LDR` of the end pointer, see below).
///
/// Same requirements and checks as [`dot16`]: `w` 4-byte aligned (`None` otherwise) and
/// `words` at least `8·S·(w.len() / 16)` words long.
#[inline(always)]
pub fn dot16_tile<const S: usize>(w: &[u8], words: &[u32]) -> Option<[i32; S]> {
    let chunks = w.len() / 16;
    if !tile_kernel(S) || w.as_ptr() as usize % 4 != 0 || words.len() < 8 * S * chunks {
        return None;
    }
    let mut out = [0i32; S];
    if chunks == 0 {
        return Some(out);
    }
    if S == 2 {
        let v = dot16x2(w, words, chunks);
        out[..2].copy_from_slice(&v);
    } else {
        let v = dot16x4(w, words, chunks);
        out[..4].copy_from_slice(&v);
    }
    Some(out)
}

/// One weight word of the two-vector kernel: 8 MACs.
macro_rules! word_x2 {
    () => {
        concat!(
            "ldr {w}, [{pw}], #4\n",
            "sxtb16 {lo}, {w}\n",
            "sxtb16 {w}, {w}, ror #8\n",
            "ldm {px}!, {{r2, r3, r4, r5}}\n",
            "smlad {a0}, {lo}, r2, {a0}\n",
            "smlad {a1}, {lo}, r3, {a1}\n",
            "smlad {a0}, {w}, r4, {a0}\n",
            "smlad {a1}, {w}, r5, {a1}\n",
        )
    };
}

/// The two-vector kernel over `chunks ≥ 1` chunks (checked by [`dot16_tile`]).
#[inline(always)]
fn dot16x2(w: &[u8], words: &[u32], chunks: usize) -> [i32; 2] {
    let (mut a0, mut a1) = (0i32, 0i32);
    // SAFETY: [`dot16_tile`] checked that `w` is 4-byte aligned, that `chunks = ⌊w.len()/16⌋ ≥ 1`
    // and that `words` holds at least `16·chunks` words. The loop reads `16·chunks` bytes of `w`
    // with word loads (4 per turn, post-incremented by 4) and `16·chunks` words of `words` (one
    // `LDM` of 4 per weight word), both within the slices; it stops when `pw` reaches
    // `end = w + 16·chunks`, after `chunks` turns. It writes only the registers named as outputs,
    // touches no stack (`nostack`) and reads no other memory (`readonly`).
    unsafe {
        asm!(
            "2:",
            word_x2!(),
            word_x2!(),
            word_x2!(),
            word_x2!(),
            "cmp {pw}, {end}",
            "bne 2b",
            pw = inout(reg) w.as_ptr() => _,
            px = inout(reg) words.as_ptr() => _,
            end = in(reg) w.as_ptr().add(16 * chunks),
            a0 = inout(reg) a0,
            a1 = inout(reg) a1,
            w = out(reg) _,
            lo = out(reg) _,
            out("r2") _,
            out("r3") _,
            out("r4") _,
            out("r5") _,
            options(nostack, readonly, pure),
        );
    }
    [a0, a1]
}

/// One weight word of the four-vector kernel: 16 MACs (`{e}` holds the unpacked pairs).
macro_rules! word_x4 {
    () => {
        concat!(
            "ldr {w}, [{pw}], #4\n",
            "sxtb16 {e}, {w}\n",
            "ldm {px}!, {{r2, r3, r4, r5}}\n",
            "smlad {a0}, {e}, r2, {a0}\n",
            "smlad {a1}, {e}, r3, {a1}\n",
            "smlad {a2}, {e}, r4, {a2}\n",
            "smlad {a3}, {e}, r5, {a3}\n",
            "sxtb16 {e}, {w}, ror #8\n",
            "ldm {px}!, {{r2, r3, r4, r5}}\n",
            "smlad {a0}, {e}, r2, {a0}\n",
            "smlad {a1}, {e}, r3, {a1}\n",
            "smlad {a2}, {e}, r4, {a2}\n",
            "smlad {a3}, {e}, r5, {a3}\n",
        )
    };
}

/// The four-vector kernel over `chunks ≥ 1` chunks (checked by [`dot16_tile`]). It needs 13
/// registers — 4 accumulators, the weight word, its unpacked pairs, 4 activation words, two
/// pointers and the end — one more than inline assembly may use on this target, so the end
/// pointer comes in the register of the unpacked pairs, is pushed at the start and read back from
/// the stack for each turn's comparison (one `LDR` per 64 MACs).
#[inline(always)]
fn dot16x4(w: &[u8], words: &[u32], chunks: usize) -> [i32; 4] {
    let (mut a0, mut a1, mut a2, mut a3) = (0i32, 0i32, 0i32, 0i32);
    // SAFETY: [`dot16_tile`] checked that `w` is 4-byte aligned, that `chunks = ⌊w.len()/16⌋ ≥ 1`
    // and that `words` holds at least `32·chunks` words. The loop reads `16·chunks` bytes of `w`
    // with word loads (4 per turn, post-incremented by 4) and `32·chunks` words of `words` (two
    // `LDM` of 4 per weight word), both within the slices; it stops when `pw` reaches the end
    // `w + 16·chunks`, after `chunks` turns. The end is pushed on the stack at the start (so no
    // `nostack`), read back at the end of each turn, and the stack pointer restored before the
    // block ends (`ADD SP, #4`); nothing else is written but the registers named as outputs.
    // Not `readonly`: the block writes that one stack word.
    unsafe {
        asm!(
            "push {{{e}}}",
            "2:",
            word_x4!(),
            word_x4!(),
            word_x4!(),
            word_x4!(),
            "ldr {e}, [sp]",
            "cmp {pw}, {e}",
            "bne 2b",
            "add sp, #4",
            pw = inout(reg) w.as_ptr() => _,
            px = inout(reg) words.as_ptr() => _,
            e = inout(reg) w.as_ptr().add(16 * chunks) => _,
            a0 = inout(reg) a0,
            a1 = inout(reg) a1,
            a2 = inout(reg) a2,
            a3 = inout(reg) a3,
            w = out(reg) _,
            out("r2") _,
            out("r3") _,
            out("r4") _,
            out("r5") _,
        );
    }
    [a0, a1, a2, a3]
}

/// [`dot16_tile`] of four vectors for `rows` consecutive weight rows in one call:
/// `out[s][r] = Σ w[r·stride + c]·x_s[c]` over the `chunks` full chunks of 16 columns, for
/// s < 4 and r < rows: [`dot16x4_rows_strided`] with the four vectors' rows `H` apart.
///
/// Returns `false`, writing nothing, unless: `rows ≥ 1` and `chunks ≥ 1`; `w` and `stride`
/// multiples of 4 bytes (every row word-aligned) and `w` holding `(rows − 1)·stride +
/// 16·chunks` bytes; `words` at least `32·chunks` words (prepared by
/// [`super::prepare_tile_into`] for four vectors); `out` at least 4 vectors of `H ≥ rows`.
#[cfg_attr(not(tinyscore_dsp_tile), allow(dead_code))] // its caller is the tile kernel's
pub fn dot16x4_rows<const H: usize>(
    w: &[u8],
    stride: usize,
    rows: usize,
    chunks: usize,
    words: &[u32],
    out: &mut [[i32; H]],
) -> bool {
    if out.len() < 4 || rows > H {
        return false;
    }
    dot16x4_rows_strided(w, stride, rows, 4 * chunks, words, out.as_flattened_mut(), H, 1)
}

/// The four-vector kernel over `rows` consecutive int8 rows in one call, each sum stored at its
/// own place: `out[r·rstep + s·vstep] = Σ_c w[r·stride + c]·x_s[c]` over the first `4·quads`
/// columns (`quads` weight words of 4 columns), for s < 4 and r < rows. The loop over the rows
/// is in the assembly too: per row it reloads the activations' start, zeroes the accumulators,
/// runs [`dot16x4`]'s loop (here eight weight words, 32 columns, per turn: 107 instructions per
/// 128 MACs; a count of words that is not a multiple of 8 enters the loop part-way, at the
/// address found once per call) and stores the four sums (about 28 instructions per row, where
/// a call per row from Rust costs about 100: the checks, the call, the stores). The dense
/// layers' tiles call it with whole chunks of 16 columns and the four vectors' rows `H` apart
/// ([`dot16x4_rows`]); the convolution (`super::conv_packed`) with the rows = output positions,
/// the four "vectors" = four output channels' prepared weights (`vstep = 1`, `rstep = C_out`)
/// and the window's K·C4 columns exactly (no padding to a multiple of 16).
///
/// Returns `false`, writing nothing, unless: `rows ≥ 1` and `quads ≥ 1`; `w` and `stride`
/// multiples of 4 bytes (every row word-aligned; rows may overlap, `stride < 4·quads`) and
/// `w` holding `(rows − 1)·stride + 4·quads` bytes; `words` at least `8·quads` words (prepared for
/// four vectors, [`super::prepare_tile_into`]'s layout); `out` longer than
/// `(rows − 1)·rstep + 3·vstep`.
#[allow(clippy::too_many_arguments)]
pub fn dot16x4_rows_strided(
    w: &[u8],
    stride: usize,
    rows: usize,
    quads: usize,
    words: &[u32],
    out: &mut [i32],
    vstep: usize,
    rstep: usize,
) -> bool {
    let last = (rows.wrapping_sub(1)).checked_mul(rstep).and_then(|a| a.checked_add(vstep.checked_mul(3)?));
    let ok = rows >= 1
        && quads >= 1
        && last.is_some_and(|l| l < out.len())
        && w.as_ptr() as usize % 4 == 0
        && stride % 4 == 0
        && (rows - 1)
            .checked_mul(stride)
            .and_then(|a| a.checked_add(4usize.checked_mul(quads)?))
            .is_some_and(|n| w.len() >= n)
        && quads.checked_mul(8).is_some_and(|n| words.len() >= n);
    if !ok {
        return false;
    }
    // The loop's state in memory (no register is left for it): the activations' start, the
    // bytes of a row's columns, the rows left, where row r's sums go (&out[r·rstep]), the
    // distance between two vectors' sums (4·vstep bytes), the bytes from the end of a row's
    // columns to the next row (modulo 2^32: negative when rows overlap, as a convolution's
    // windows do), the weight words past the last multiple of 8 (the loop takes eight per
    // turn, so one end check per 32 columns; a row of 8t + q words, q > 0, enters the loop
    // after its first 8 − q words: the assembly turns q into that entry's address once per
    // call), and the distance between two rows' sums (4·rstep bytes).
    let mut ctx: [usize; 8] = [
        words.as_ptr() as usize,
        4 * quads,
        rows,
        out.as_mut_ptr() as usize,
        4 * vstep,
        stride.wrapping_sub(4 * quads),
        quads % 8,
        4 * rstep,
    ];
    // SAFETY: checked above: every row r < rows starts at w + r·stride, word-aligned, and its
    // `4·quads` bytes lie within `w`; `words` holds the `8·quads` words each row's loop
    // reads (`LDM`s from its start, two of 4 words per weight word); the stores go to
    // out[r·rstep + s·vstep] for s < 4 and r < rows, at most out[(rows − 1)·rstep + 3·vstep],
    // inside `out` (checked), through a pointer derived from the `&mut out` held across the
    // block; the block also writes `ctx` (the entry address, the rows left, the next store
    // address), a local array it gets by pointer. The stack: 8 bytes reserved at the start
    // (ctx's address, the current row's end) and released at the end. The entry address is
    // one of the loop's eight entry labels in this block (`ADR` in a word-aligned section, with
    // the Thumb bit set for `BX`).
    // Each row's loop runs over `quads ≥ 1` weight words (`pw` steps 4 bytes per word, eight per
    // turn, the first turn of a count 8t + q with 0 < q < 8 only the last q), so `pw` reaches
    // the row's end exactly, and stops there; the row loop runs `rows ≥ 1` times, counting down
    // ctx[2].
    unsafe {
        asm!(
            "sub sp, #8",
            "str {e}, [sp]",
            // The entry for q = ctx[6] words past the last multiple of 8: after 8 − q words.
            // `ADR` reads Align(PC, 4): the assembler resolves it within this function's
            // section, so that section must be word-aligned for the address to hold wherever
            // the linker puts it (`.p2align 2` raises the section's alignment to 4; without it
            // a function placed at 2 mod 4 jumped 2 bytes past the label).
            ".p2align 2",
            "ldr {w}, [{e}, #24]",
            "adr r2, 2f",
            "cmp {w}, #0",
            "beq 5f",
            "adr r2, 27f",
            "cmp {w}, #1",
            "beq 5f",
            "adr r2, 26f",
            "cmp {w}, #2",
            "beq 5f",
            "adr r2, 25f",
            "cmp {w}, #3",
            "beq 5f",
            "adr r2, 24f",
            "cmp {w}, #4",
            "beq 5f",
            "adr r2, 23f",
            "cmp {w}, #5",
            "beq 5f",
            "adr r2, 22f",
            "cmp {w}, #6",
            "beq 5f",
            "adr r2, 21f",
            "5:",
            "orr r2, r2, #1",
            "str r2, [{e}, #24]",
            "3:",
            "ldr {e}, [sp]",
            "ldr {px}, [{e}]",
            "ldr {w}, [{e}, #4]",
            "add {w}, {pw}, {w}",
            "str {w}, [sp, #4]",
            "movs {a0}, #0",
            "movs {a1}, #0",
            "movs {a2}, #0",
            "movs {a3}, #0",
            // Eight weight words per turn, entered at the row's entry.
            "ldr {w}, [{e}, #24]",
            "bx {w}",
            "2:",
            word_x4!(),
            "21:",
            word_x4!(),
            "22:",
            word_x4!(),
            "23:",
            word_x4!(),
            "24:",
            word_x4!(),
            "25:",
            word_x4!(),
            "26:",
            word_x4!(),
            "27:",
            word_x4!(),
            "ldr {e}, [sp, #4]",
            "cmp {pw}, {e}",
            "bne 2b",
            // Row done: store the sums at base + s·4·vstep, then base += 4·rstep.
            "ldr {e}, [sp]",
            "ldr r2, [{e}, #12]",
            "ldr r3, [{e}, #16]",
            "str {a0}, [r2]",
            "str {a1}, [r2, r3]",
            "str {a2}, [r2, r3, lsl #1]",
            "add r4, r3, r3, lsl #1",
            "str {a3}, [r2, r4]",
            "ldr r4, [{e}, #28]",
            "add r2, r4",
            "str r2, [{e}, #12]",
            "ldr r2, [{e}, #20]",
            "add {pw}, r2",
            "ldr r2, [{e}, #8]",
            "subs r2, #1",
            "str r2, [{e}, #8]",
            "bne 3b",
            "add sp, #8",
            pw = inout(reg) w.as_ptr() => _,
            px = out(reg) _,
            e = inout(reg) ctx.as_mut_ptr() => _,
            a0 = out(reg) _,
            a1 = out(reg) _,
            a2 = out(reg) _,
            a3 = out(reg) _,
            w = out(reg) _,
            out("r2") _,
            out("r3") _,
            out("r4") _,
            out("r5") _,
        );
    }
    true
}

/// The second pass of [`super::epilogue_tile`] for one vector of a block's first layer:
/// `out[r] = lut(table, sat_i8(q[r]))` for the requantized values `q` (`SSAT` to [−128, 127],
/// −128 moved to −127, the table read at `table + 128 + index`): 9 instructions per value.
/// Does nothing for an empty `q`; `out` must be as long as `q` (else nothing is done and
/// `false` returned).
#[cfg(tinyscore_dsp_tile)]
pub fn table_out(q: &[i32], table: &[u8; 256], out: &mut [i8]) -> bool {
    if out.len() != q.len() {
        return false;
    }
    if q.is_empty() {
        return true;
    }
    // SAFETY: the loop reads `q.len() ≥ 1` words from `q` (post-incremented `pa`, stopping at
    // its end) and writes as many bytes to `out` (the same length, checked above). Each table
    // read is at `table + 128 + i` with `i` from `SSAT #8` in [−128, 127] (−128 then raised to
    // −127): inside the 256 entries. No stack, no other memory.
    unsafe {
        asm!(
            "2:",
            "ldr {a}, [{pa}], #4",
            "ssat {a}, #8, {a}",
            "cmn {a}, #128",
            "it eq",
            "addeq {a}, {a}, #1",
            "ldrb {a}, [{tbl}, {a}]",
            "strb {a}, [{po}], #1",
            "cmp {pa}, {end}",
            "bne 2b",
            pa = inout(reg) q.as_ptr() => _,
            po = inout(reg) out.as_mut_ptr() => _,
            end = in(reg) q.as_ptr().add(q.len()),
            tbl = in(reg) table.as_ptr().add(128),
            a = out(reg) _,
            options(nostack),
        );
    }
    true
}

/// The second pass of [`super::epilogue_tile`] for one vector of the input layer:
/// `h[r] = sat_i16(q[r])`, `silu[r] = lut(table, residual_index(h[r]))` (`SSAT #16`, −32768
/// moved to −32767; the index `SSAT #8` of `(h + 128) >> 8`): 13 instructions per value.
/// `h` and `silu` must be as long as `q` (else nothing is done and `false` returned).
#[cfg(tinyscore_dsp_tile)]
pub fn to_i16_out(q: &[i32], table: &[u8; 256], h: &mut [i16], silu: &mut [i8]) -> bool {
    if h.len() != q.len() || silu.len() != q.len() {
        return false;
    }
    if q.is_empty() {
        return true;
    }
    // SAFETY: the loop reads `q.len() ≥ 1` words from `q` and writes as many halfwords to `h`
    // and bytes to `silu` (the same lengths, checked above), all three pointers post-
    // incremented, stopping at `q`'s end. Each table read is at `table + 128 + i` with `i` from
    // `SSAT #8` in [−128, 127]: inside the 256 entries. No stack, no other memory.
    unsafe {
        asm!(
            "2:",
            "ldr {v}, [{pa}], #4",
            "ssat {v}, #16, {v}",
            "cmn {v}, #32768",
            "it eq",
            "addeq {v}, {v}, #1",
            "strh {v}, [{ph}], #2",
            "add {t}, {v}, #128",
            "ssat {t}, #8, {t}, asr #8",
            "ldrb {t}, [{tbl}, {t}]",
            "strb {t}, [{po}], #1",
            "cmp {pa}, {end}",
            "bne 2b",
            pa = inout(reg) q.as_ptr() => _,
            ph = inout(reg) h.as_mut_ptr() => _,
            po = inout(reg) silu.as_mut_ptr() => _,
            end = in(reg) q.as_ptr().add(q.len()),
            tbl = in(reg) table.as_ptr().add(128),
            v = out(reg) _,
            t = out(reg) _,
            options(nostack),
        );
    }
    true
}

/// The second pass of [`super::epilogue_tile`] for one vector of a block's second layer, the
/// residual connection: `h[r] = sat_i16(requantize(h[r], mr, nr) ⊕ q[r])` (⊕ saturating:
/// `QADD`), `silu[r] = lut(table, residual_index(h[r]))`, the residual's requantization as the
/// high-word form with the int16 value in the high half (`h·2^16`: `LSL #16`, `SMMLA`, `ASR`
/// by `nr − 16`, which holds for every int16 when 17 ≤ nr ≤ 46): 17 instructions per value.
/// Does nothing and returns `false` when `nr` is outside 17..=46 or a length differs from
/// `q`'s.
#[cfg(tinyscore_dsp_tile)]
pub fn residual_out(q: &[i32], mr: i32, nr: u32, table: &[u8; 256], h: &mut [i16], silu: &mut [i8]) -> bool {
    if !(17..=46).contains(&nr) || h.len() != q.len() || silu.len() != q.len() {
        return false;
    }
    if q.is_empty() {
        return true;
    }
    // s = nr + 16 − 32 ∈ [1, 30]: the high word plus 2^(s−1), shifted right by s
    // (super::HighRequant with k = 16: |h·2^16| ≤ 2^31).
    let s = nr - 16;
    let round = 1i32 << (s - 1);
    // SAFETY: the loop reads `q.len() ≥ 1` words from `q`, reads and writes as many halfwords
    // of `h` and writes as many bytes of `silu` (the same lengths, checked above), all pointers
    // post-incremented, stopping at `q`'s end. Each table read is at `table + 128 + i` with `i`
    // from `SSAT #8` in [−128, 127]: inside the 256 entries. No stack, no other memory.
    unsafe {
        asm!(
            "2:",
            "ldrsh {v}, [{ph}]",
            "ldr {t}, [{pa}], #4",
            "lsl {v}, {v}, #16",
            "smmla {v}, {v}, {mr}, {rnd}",
            "asr {v}, {v}, {s}",
            "qadd {v}, {v}, {t}",
            "ssat {v}, #16, {v}",
            "cmn {v}, #32768",
            "it eq",
            "addeq {v}, {v}, #1",
            "strh {v}, [{ph}], #2",
            "add {t}, {v}, #128",
            "ssat {t}, #8, {t}, asr #8",
            "ldrb {t}, [{tbl}, {t}]",
            "strb {t}, [{po}], #1",
            "cmp {pa}, {end}",
            "bne 2b",
            pa = inout(reg) q.as_ptr() => _,
            ph = inout(reg) h.as_mut_ptr() => _,
            po = inout(reg) silu.as_mut_ptr() => _,
            end = in(reg) q.as_ptr().add(q.len()),
            tbl = in(reg) table.as_ptr().add(128),
            mr = in(reg) mr,
            rnd = in(reg) round,
            s = in(reg) s,
            v = out(reg) _,
            t = out(reg) _,
            options(nostack),
        );
    }
    true
}

/// One vector's pass of [`prepare_tile`]: per weight word, `LDR` of 4 activations, two
/// `SXTB16` (bytes 0 and 2, then 1 and 3) and two `STR` into the interleaved layout (`hi`: the
/// byte offset of the second pair, `step`: the bytes per weight word).
macro_rules! prepare_pass {
    ($hi:literal, $step:literal, $p:expr, $o:expr, $end:expr) => {
        // SAFETY: see `prepare_tile`.
        unsafe {
            asm!(
                "2:",
                "ldr {x}, [{p}], #4",
                "sxtb16 {l}, {x}",
                "sxtb16 {x}, {x}, ror #8",
                concat!("str {x}, [{o}, #", $hi, "]"),
                concat!("str {l}, [{o}], #", $step),
                "cmp {p}, {end}",
                "bne 2b",
                p = inout(reg) $p => _,
                o = inout(reg) $o => _,
                end = in(reg) $end,
                x = out(reg) _,
                l = out(reg) _,
                options(nostack),
            );
        }
    };
}

/// [`super::prepare_tile_into`] for S = 2 or 4 vectors with `SXTB16` (7 instructions per
/// weight word and vector, where the portable loop takes about 16): the same words. Returns
/// `false`, writing nothing, for another S or when `words` is shorter than `S·`
/// [`super::prepared_words`]`(cols)` (`cols`: the shortest vector).
pub fn prepare_tile<const S: usize>(xs: [&[i8]; S], words: &mut [u32]) -> bool {
    let cols = xs.iter().map(|x| x.len()).min().unwrap_or(0);
    let weight_words = cols / 16 * 4;
    if !tile_kernel(S) || words.len() < 2 * S * weight_words {
        return false;
    }
    if weight_words == 0 {
        return true;
    }
    for (s, x) in xs.iter().enumerate() {
        let (p, end) = (x.as_ptr(), x[4 * weight_words..].as_ptr());
        let o = words[s..].as_mut_ptr();
        // SAFETY (both passes): each turn reads the 4 bytes at `p` (an unaligned `LDR`, which
        // the Cortex-M4/M7 allow) for `weight_words ≥ 1` turns, `p` stepping 4 bytes from
        // `x`'s start to `end = x + 4·weight_words ≤ x + cols`: within `x`. Turn j writes the
        // words `2S·j + s` and `2S·j + S + s` (`o` = words + s, stepping 2S words): the last
        // is `2S·(weight_words − 1) + S + s < 2S·weight_words ≤ words.len()` (checked above).
        // No stack, no other memory.
        if S == 4 {
            prepare_pass!("16", "32", p, o, end);
        } else {
            prepare_pass!("8", "16", p, o, end);
        }
    }
    true
}

/// The weights' widening of the packed convolution (`super::conv_packed`) for `quads` quads of
/// input channels of one output channel: quad j is `quads[4K·j..4K·(j + 1)]`, the K taps of its
/// four channels (channel-major: byte i·K + t of the quad), and for each tap t < K the two
/// words `words[8j + t·tap]` = (quad[t], quad[2K + t]) and `words[8j + t·tap + 4]` =
/// (quad[K + t], quad[3K + t]) are written as int16 pairs (low half first): per tap four
/// `LDRSB`, two `PKHBT`, two `STR` and the loop's four instructions, 12 for 4 weights, and 4
/// more per quad (one call for a whole weight row, where a call per quad costs about 25
/// instructions more). Returns `false`, writing nothing, unless `K ≥ 1`, `quads ≥ 1`, `src`
/// holds 4K·quads bytes and `words` more than 8·(quads − 1) + (K − 1)·tap + 4 words.
#[cfg(tinyscore_dsp_tile)]
pub fn widen_quads(src: &[u8], kn: usize, quads: usize, words: &mut [u32], tap: usize) -> bool {
    let last = kn
        .checked_sub(1)
        .and_then(|k| k.checked_mul(tap))
        .zip(quads.checked_sub(1).and_then(|q| q.checked_mul(8)))
        .and_then(|(a, b)| a.checked_add(b)?.checked_add(4));
    if kn == 0
        || quads == 0
        || !kn.checked_mul(4 * quads).is_some_and(|n| src.len() >= n)
        || !last.is_some_and(|l| l < words.len())
    {
        return false;
    }
    // SAFETY: the outer loop runs quads ≥ 1 times (`q` counts down), the inner one K ≥ 1 times
    // per quad (`n` counts down from K). In quad j, turn t reads the bytes 4K·j + t + {0, K, 2K,
    // 3K} of `src` (`p` = src + 4K·j + t: the inner loop advances it by K, the outer by 3K more),
    // all below 4K·quads ≤ src.len() (checked), and writes the words 8j + t·tap and
    // 8j + t·tap + 4 of `words` (`dst` restarts at `dq` = words + 8j words each quad and steps
    // 4·tap bytes per tap), the last 8·(quads − 1) + (K − 1)·tap + 4 < words.len() (checked);
    // the stores are word-aligned (a `u32` slice). No stack, no other memory.
    unsafe {
        asm!(
            "3:",
            "mov {n}, {k1}",
            "mov {dst}, {dq}",
            "2:",
            "ldrsb {a}, [{p}]",
            "ldrsb {b}, [{p}, {k2}]",
            "pkhbt {a}, {a}, {b}, lsl #16",
            "str {a}, [{dst}]",
            "ldrsb {a}, [{p}, {k1}]",
            "ldrsb {b}, [{p}, {k3}]",
            "pkhbt {a}, {a}, {b}, lsl #16",
            "str {a}, [{dst}, #16]",
            "adds {p}, #1",
            "add {dst}, {step}",
            "subs {n}, #1",
            "bne 2b",
            "add {p}, {k3}",
            "add {dq}, #32",
            "subs {q}, #1",
            "bne 3b",
            p = inout(reg) src.as_ptr() => _,
            dq = inout(reg) words.as_mut_ptr() => _,
            q = inout(reg) quads => _,
            dst = out(reg) _,
            n = out(reg) _,
            k1 = in(reg) kn,
            k2 = in(reg) 2 * kn,
            k3 = in(reg) 3 * kn,
            step = in(reg) 4 * tap,
            a = out(reg) _,
            b = out(reg) _,
            options(nostack),
        );
    }
    true
}
