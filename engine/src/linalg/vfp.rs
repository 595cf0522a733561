//! The f32-activation dot product ([`super::dot`]) with the Cortex-M4F FPU (FPv4-SP), in inline
//! assembly: the eight partial sums of the canonical order live in `s0`–`s7` for the whole row.
//!
//! Per chunk of 8 columns, f32 weights: one `VLDM` of 8 activations (`s8`–`s15`), one `VLDM` of
//! 8 weights (`s16`–`s23`) and eight `VMLA.F32` (lane j += `w[j]·x[j]`); int8 weights: the `VLDM`
//! of the activations, eight `LDRSB` (sign-extending byte loads; the fourth of each group of four
//! advances the pointer), four `VMOV` (two core registers into two FPU registers each), eight
//! `VCVT.F32.S32` (exact: every int8 is an f32) and the eight `VMLA.F32`. Two chunks per turn of
//! the loop (an odd first chunk alone), then `CMP` + `BNE`: 22 instructions per 16 MACs with f32
//! weights (1.375 / MAC), 60 with int8 weights (3.75 / MAC). The lanes are combined and the
//! `cols mod 8` tail added in Rust by [`super::dot_finish`], the same code as the portable [`super::dot`].
//!
//! Exact: `VMLA.F32` is the *chained* multiply–accumulate of VFP — the Arm ARM's pseudocode
//! rounds the product (`FPMul`) and then the sum (`FPAdd(S[d], product)`), the bits of a separate
//! `VMUL` and `VADD`; only `VFMA` is fused, and it is never used here. Each lane sees its products
//! in increasing column order from +0.0, as in [`super::dot`]. The flush-to-zero and default-NaN
//! bits of FPSCR apply to this code and to the portable code alike; the firmware runs with both
//! off (reset value), so subnormals are kept as on x86-64. (LLVM itself emits `vmla.f32` for the
//! portable `lane + w * x` on this target, fast-math off.) The property test of
//! `firmware-example/examples/kernels.rs` checks the bits on the M4 (in QEMU).
//!
//! Instructions, not cycles, are what QEMU counts: the Cortex-M4 TRM gives `VMLA` 3 cycles
//! against 1 each for `VMUL` and `VADD`, so on silicon a `VMUL` + `VADD` loop (the same bits, 8
//! more instructions per chunk) may be faster; not measured here (no board).
#![allow(unsafe_code)]

use core::arch::asm;
use core::mem::MaybeUninit;

use super::dot::DOT_LANES;

/// Eight +0.0 for the lanes' start, loaded with one `VLDM`.
static ZEROS: [f32; DOT_LANES] = [0.0; DOT_LANES];

/// One chunk of 8 columns with f32 weights: activations to `s8`–`s15`, weights to `s16`–`s23`,
/// lane j (`s{j}`) += `s{16+j}`·`s{8+j}`.
macro_rules! chunk_f32 {
    () => {
        concat!(
            "vldm {px}!, {{s8-s15}}\n",
            "vldm {pw}!, {{s16-s23}}\n",
            "vmla.f32 s0, s16, s8\n",
            "vmla.f32 s1, s17, s9\n",
            "vmla.f32 s2, s18, s10\n",
            "vmla.f32 s3, s19, s11\n",
            "vmla.f32 s4, s20, s12\n",
            "vmla.f32 s5, s21, s13\n",
            "vmla.f32 s6, s22, s14\n",
            "vmla.f32 s7, s23, s15\n",
        )
    };
}

/// One chunk of 8 columns with int8 weights: activations to `s8`–`s15`, the weights sign-extended
/// by `LDRSB` (bytes 1, 2, 3, then 0 with the pointer's post-increment), moved in pairs to
/// `s16`–`s23` and converted there, then the eight `VMLA`s of [`chunk_f32`].
macro_rules! chunk_i8 {
    () => {
        concat!(
            "vldm {px}!, {{s8-s15}}\n",
            "ldrsb r3, [{pw}, #1]\n",
            "ldrsb r4, [{pw}, #2]\n",
            "ldrsb r5, [{pw}, #3]\n",
            "ldrsb r2, [{pw}], #4\n",
            "vmov s16, s17, r2, r3\n",
            "vmov s18, s19, r4, r5\n",
            "ldrsb r3, [{pw}, #1]\n",
            "ldrsb r4, [{pw}, #2]\n",
            "ldrsb r5, [{pw}, #3]\n",
            "ldrsb r2, [{pw}], #4\n",
            "vmov s20, s21, r2, r3\n",
            "vmov s22, s23, r4, r5\n",
            "vcvt.f32.s32 s16, s16\n",
            "vcvt.f32.s32 s17, s17\n",
            "vcvt.f32.s32 s18, s18\n",
            "vcvt.f32.s32 s19, s19\n",
            "vcvt.f32.s32 s20, s20\n",
            "vcvt.f32.s32 s21, s21\n",
            "vcvt.f32.s32 s22, s22\n",
            "vcvt.f32.s32 s23, s23\n",
            "vmla.f32 s0, s16, s8\n",
            "vmla.f32 s1, s17, s9\n",
            "vmla.f32 s2, s18, s10\n",
            "vmla.f32 s3, s19, s11\n",
            "vmla.f32 s4, s20, s12\n",
            "vmla.f32 s5, s21, s13\n",
            "vmla.f32 s6, s22, s14\n",
            "vmla.f32 s7, s23, s15\n",
        )
    };
}

/// The loop around one chunk macro: saves `s0`–`s23` (see below), lanes from [`ZEROS`], an odd
/// first chunk alone, then two chunks per turn until `pw` reaches `end`, the lanes stored to
/// `out`, `s0`–`s23` restored. Needs `chunks ≥ 1`.
///
/// Why the `VPUSH`/`VPOP` and the lanes through memory: rustc gates the `sreg` register class
/// (and so `out("s0")` operands and clobbers) on its `vfp2` target feature, which implies double
/// precision and is off on the single-precision M4F (`thumbv7em-none-eabihf` is `+vfp4d16sp`).
/// Undeclared registers must hold their values across the block, so the block saves and
/// restores every FPU register it uses itself (two instructions per row).
macro_rules! lanes_loop {
    ($chunk:ident, $w:expr, $x:expr, $chunks:expr, $step:expr, $($clobber:tt)*) => {{
        let mut lanes = MaybeUninit::<[f32; DOT_LANES]>::uninit();
        asm!(
            "vpush {{s0-s23}}",
            "vldm {zeros}, {{s0-s7}}",
            "tst {n}, #1",
            "beq 2f",
            $chunk!(),
            "2:",
            "cmp {pw}, {end}",
            "beq 4f",
            "3:",
            $chunk!(),
            $chunk!(),
            "cmp {pw}, {end}",
            "bne 3b",
            "4:",
            "vstm {out}, {{s0-s7}}",
            "vpop {{s0-s23}}",
            zeros = in(reg) ZEROS.as_ptr(),
            n = in(reg) $chunks,
            pw = inout(reg) $w.as_ptr() => _,
            px = inout(reg) $x.as_ptr() => _,
            end = in(reg) $w.as_ptr().add($step * $chunks),
            out = in(reg) lanes.as_mut_ptr().cast::<f32>(),
            $($clobber)*
        );
        lanes.assume_init()
    }};
}

/// The eight lanes of [`super::dot`] for f32 weights (`w`: stored little-endian bytes, 4 per
/// column; the M4 is little-endian) over the `x.len() / 8` full chunks of 8 columns.
///
/// `None` when `w` does not start on a 4-byte boundary (`VLDM` faults on an unaligned address)
/// or holds fewer than `4·8·(x.len() / 8)` bytes; the caller then uses the portable loop.
#[inline]
pub fn lanes_f32(w: &[u8], x: &[f32]) -> Option<[f32; DOT_LANES]> {
    let chunks = x.len() / DOT_LANES;
    if w.as_ptr() as usize % 4 != 0 || w.len() / (4 * DOT_LANES) < chunks {
        return None;
    }
    if chunks == 0 {
        return Some([0.0; DOT_LANES]);
    }
    // SAFETY: the loop runs `chunks ≥ 1` times in all (an odd one alone, then pairs, stopping
    // when `pw` equals `end = w + 32·chunks`, which it reaches exactly: it steps 32 bytes per
    // chunk). It reads `32·chunks` bytes of `w` (within `w`, checked above) with word loads from
    // an address checked 4-byte aligned above, `8·chunks` values of `x` (within `x`: chunks =
    // ⌊len/8⌋; an f32 slice is word aligned) and the 8 values of `ZEROS`. It writes only the
    // core registers named as outputs (the two pointers), saves s0–s23 on the stack (96 bytes,
    // `VPUSH`) and restores them before it ends, and writes only the 8 values of `lanes` (a
    // local array, `VSTM`), all of them, so `assume_init` reads initialized values. `ptr.add`
    // stays within `w` (32·chunks ≤ w.len()).
    let lanes = unsafe { lanes_loop!(chunk_f32, w, x, chunks, 4 * DOT_LANES,) };
    Some(lanes)
}

/// The eight lanes of [`super::dot`] for int8 weights (`w`: stored bytes, 1 per column; any
/// alignment) over the `x.len() / 8` full chunks of 8 columns; `None` when `w` holds fewer than
/// `8·(x.len() / 8)` bytes.
#[inline]
pub fn lanes_i8(w: &[u8], x: &[f32]) -> Option<[f32; DOT_LANES]> {
    let chunks = x.len() / DOT_LANES;
    if w.len() / DOT_LANES < chunks {
        return None;
    }
    if chunks == 0 {
        return Some([0.0; DOT_LANES]);
    }
    // SAFETY: as in `lanes_f32`, with `pw` stepping 8 bytes per chunk by byte loads (no
    // alignment needed) and `end = w + 8·chunks` (within `w`, checked above); r2–r5 are
    // declared clobbered as well.
    let lanes = unsafe {
        lanes_loop!(chunk_i8, w, x, chunks, DOT_LANES, out("r2") _, out("r3") _, out("r4") _, out("r5") _,)
    };
    Some(lanes)
}
