//! Which kernels evaluate the network, and the token that proves a faster set may run.
//!
//! Every choice gives the same bits. The engine is `no_std` and cannot ask the CPU what it has;
//! the caller (the `tinyscore` CLI, with std) checks for AVX2 once and hands the network an
//! [`Avx2`] token ([`crate::net::ScoreNet::set_kernels`]). Only an `unsafe` constructor makes
//! one, so every `#[target_feature(enable = "avx2")]` kernel (`linalg/x86.rs`, `quant/x86.rs`)
//! runs on a CPU that has it. On AArch64 the `Neon` token comes from the build itself (NEON is
//! part of the AArch64 Linux ABI), for the kernels of `linalg/neon.rs` and `quant/neon.rs`. A leaf module: the f32 and int8 kernels and the network all take
//! their choice from here.

/// Which kernels evaluate the network. Every choice gives the same bits; the portable kernels
/// run everywhere, the others where the CPU has the instructions (proved by a token).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kernels {
    /// Portable Rust (on Cortex-M targets with the DSP extension: with the DSP int8 kernel,
    /// `engine/build.rs`).
    #[default]
    Portable,
    /// The x86-64 AVX2 kernels (`linalg::x86`, `quant::x86`).
    #[cfg(target_arch = "x86_64")]
    Avx2(Avx2),
    /// The AArch64 NEON kernels: f32 dot products (`linalg::neon`) and the int8 matmul
    /// (`quant::neon`; the int8 epilogues stay portable).
    #[cfg(target_arch = "aarch64")]
    Neon(Neon),
}

/// Proof that the CPU running this program has AVX2, and whether it also has AVX-VNNI. Made only
/// by [`Avx2::new_unchecked`] (and [`Avx2::with_vnni`]).
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Avx2 {
    vnni: bool,
}

#[cfg(target_arch = "x86_64")]
impl Avx2 {
    /// The token.
    ///
    /// # Safety
    /// The CPU that runs any kernel given this token must support AVX2 (with std:
    /// `is_x86_feature_detected!("avx2")`).
    #[allow(unsafe_code)]
    pub const unsafe fn new_unchecked() -> Self {
        Avx2 { vnni: false }
    }

    /// The token that also lets the int8 matmul use AVX-VNNI's `vpdpbusd` (`quant::x86`; the
    /// same bits: integer sums are exact).
    ///
    /// # Safety
    /// The CPU that runs any kernel given this token must also support AVX-VNNI (with std:
    /// `is_x86_feature_detected!("avxvnni")`).
    #[allow(unsafe_code)]
    pub const unsafe fn with_vnni(self) -> Self {
        Avx2 { vnni: true }
    }

    /// Whether the token proves AVX-VNNI too.
    pub const fn vnni(&self) -> bool {
        self.vnni
    }
}

/// Proof that the CPU running this program has NEON (Advanced SIMD). Made by [`Neon::new`] where
/// the build enables NEON (`target_feature = "neon"`: every AArch64 Linux target, whose ABI
/// requires it), so a program built for such a target only runs on CPUs that have it.
#[cfg(target_arch = "aarch64")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neon(());

#[cfg(target_arch = "aarch64")]
impl Neon {
    /// The token, where the build enables NEON.
    #[cfg(target_feature = "neon")]
    pub const fn new() -> Self {
        Neon(())
    }
}

#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
impl Default for Neon {
    fn default() -> Self {
        Self::new()
    }
}
