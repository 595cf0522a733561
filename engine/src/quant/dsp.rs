//! The int8 dot product with the Cortex-M4/M7 DSP instructions (ARMv7E-M), in inline assembly.
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
//! Exact: every product is |w·x| ≤ 2^14, the sum of a row ≤ 512·2^14 = 2^23, so `SMLAD` never
//! wraps and the result equals the portable kernel's bit for bit; the property tests of
//! `firmware-example/examples/kernels.rs` check that on the M4 (in QEMU).
#![allow(unsafe_code)]

use core::arch::asm;

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
