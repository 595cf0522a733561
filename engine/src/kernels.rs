//! Which kernels evaluate the network, and the token that proves a faster set may run.
//!
//! Every choice gives the same bits. The engine is `no_std` and cannot ask the CPU what it has;
//! the caller (the `tinyscore` CLI, with std) checks for AVX2 once and hands the network an
//! [`Avx2`] token ([`crate::net::ScoreNet::set_kernels`]). Only an `unsafe` constructor makes
//! one, so every `#[target_feature(enable = "avx2")]` kernel (`linalg/x86.rs`, `quant/x86.rs`)
//! runs on a CPU that has it. A leaf module: the f32 and int8 kernels and the network all take
//! their choice from here.

/// Which kernels evaluate the network. Every choice gives the same bits; the portable kernels
/// run everywhere, the others where the CPU has the instructions (proved by a token).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kernels {
    /// Portable Rust (on `thumbv7em` targets: with the DSP int8 kernel).
    #[default]
    Portable,
    /// The x86-64 AVX2 kernels (`linalg::x86`, `quant::x86`).
    #[cfg(target_arch = "x86_64")]
    Avx2(Avx2),
}

/// Proof that the CPU running this program has AVX2. Made only by [`Avx2::new_unchecked`].
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Avx2(());

#[cfg(target_arch = "x86_64")]
impl Avx2 {
    /// The token.
    ///
    /// # Safety
    /// The CPU that runs any kernel given this token must support AVX2 (with std:
    /// `is_x86_feature_detected!("avx2")`).
    #[allow(unsafe_code)]
    pub const unsafe fn new_unchecked() -> Self {
        Avx2(())
    }
}
