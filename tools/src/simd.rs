//! The host's fast path: the engine's AVX2 kernels ([`tinyscore_engine::kernels`]) and the rest of
//! the network compiled a second time with AVX2 enabled, chosen at run time when the CPU has it.
//!
//! The engine is `no_std` and cannot detect CPU features; this module detects AVX2 once (std
//! caches it) and hands the network a [`Kernels::Avx2`] token for the call: the int8 layers then
//! run on `vpmaddwd` (one vector at a time on AVX-VNNI's `vpdpbusd` where the CPU has it), the f32 dot products on 8-lane `ymm` registers with the engine's summation
//! order. The rest of the engine is portable safe Rust whose loops are written so a compiler can
//! vectorise them; the functions here inline it into `#[target_feature(enable = "avx2")]`
//! functions. No fused multiply–add anywhere, so the bits are the engine's: `tests/batch.rs`
//! compares these functions with the portable engine. On AArch64 the network gets the NEON f32
//! and int8 kernels (`Kernels::Neon`; NEON is part of every AArch64 Linux CPU), the same bits again.

use tinyscore_engine::net::{Kernels, ScoreNet};

/// Whether this CPU runs the AVX2 build of the network (detected once by std, then cached).
pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU has AVX-VNNI (`vpdpbusd` on `ymm`): CPUID leaf 7, sub-leaf 1, EAX bit 4.
/// Asked of CPUID directly, since `is_x86_feature_detected!("avxvnni")` needs rustc 1.89 (the
/// workspace's minimum is older); the OS's saving of `ymm` state is what the AVX2 check already
/// proved. Only the engine built by rustc ≥ 1.89 uses it (`engine/build.rs`).
/// Asked once and cached (CPUID is slow: under a hypervisor it traps, microseconds a call).
#[cfg(target_arch = "x86_64")]
fn has_avx_vnni() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(cpuid_avx_vnni)
}

#[cfg(target_arch = "x86_64")]
fn cpuid_avx_vnni() -> bool {
    use std::arch::x86_64::__cpuid_count;
    // SAFETY: CPUID exists on every x86-64 CPU; leaf 7 is asked only when the CPU reports it
    // (`__cpuid_count` is a safe function in newer compilers, hence the allowance).
    #[allow(unused_unsafe)]
    let (max_leaf, max_sub) = unsafe { (__cpuid_count(0, 0).eax, __cpuid_count(7, 0).eax) };
    if max_leaf < 7 || max_sub < 1 {
        return false;
    }
    #[allow(unused_unsafe)]
    let eax = unsafe { __cpuid_count(7, 1).eax };
    eax & (1 << 4) != 0
}

/// The fastest kernels this CPU runs.
pub fn best_kernels() -> Kernels {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2 (checked just above), the token's one requirement.
        let tok = unsafe { tinyscore_engine::kernels::Avx2::new_unchecked() };
        if has_avx_vnni() {
            // SAFETY: the CPU has AVX-VNNI (checked just above), `with_vnni`'s requirement.
            return Kernels::Avx2(unsafe { tok.with_vnni() });
        }
        return Kernels::Avx2(tok);
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    return Kernels::Neon(tinyscore_engine::kernels::Neon::new());
    #[allow(unreachable_code)]
    Kernels::Portable
}

/// Runs `f` with [`best_kernels`] set on `net`, then restores its choice.
fn with_best<'a, const D: usize, const H: usize, const F: usize, S: AsMut<[f32]>, R>(
    net: &mut ScoreNet<'a, D, H, F, S>,
    f: impl FnOnce(&mut ScoreNet<'a, D, H, F, S>) -> R,
) -> R {
    let before = net.kernels();
    net.set_kernels(best_kernels());
    let r = f(net);
    net.set_kernels(before);
    r
}

/// [`ScoreNet::eps`], with AVX2 where the CPU has it (NEON on AArch64).
pub fn eps<const D: usize, const H: usize, const F: usize, S: AsMut<[f32]>>(
    net: &mut ScoreNet<'_, D, H, F, S>,
    x: &[f32],
    t: f32,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2 (checked just above), the only requirement of calling a
        // function compiled with `target_feature(enable = "avx2")`.
        return with_best(net, |net| unsafe { avx2::eps(net, x, t, out) });
    }
    with_best(net, |net| net.eps(x, t, out))
}

/// [`ScoreNet::eps_batch`], with AVX2 where the CPU has it (NEON on AArch64).
pub fn eps_batch<const D: usize, const H: usize, const F: usize, S: AsMut<[f32]>>(
    net: &mut ScoreNet<'_, D, H, F, S>,
    xs: &[f32],
    t: f32,
    outs: &mut [f32],
    scratch: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: as in `eps`: AVX2 is present.
        return with_best(net, |net| unsafe { avx2::eps_batch(net, xs, t, outs, scratch) });
    }
    with_best(net, |net| net.eps_batch(xs, t, outs, scratch))
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use tinyscore_engine::net::ScoreNet;

    #[target_feature(enable = "avx2")]
    pub fn eps<const D: usize, const H: usize, const F: usize, S: AsMut<[f32]>>(
        net: &mut ScoreNet<'_, D, H, F, S>,
        x: &[f32],
        t: f32,
        out: &mut [f32],
    ) {
        net.eps(x, t, out)
    }

    #[target_feature(enable = "avx2")]
    pub fn eps_batch<const D: usize, const H: usize, const F: usize, S: AsMut<[f32]>>(
        net: &mut ScoreNet<'_, D, H, F, S>,
        xs: &[f32],
        t: f32,
        outs: &mut [f32],
        scratch: &mut [f32],
    ) {
        net.eps_batch(xs, t, outs, scratch)
    }
}
