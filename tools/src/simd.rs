//! The host's fast path: the engine's network compiled a second time with AVX2 enabled, chosen
//! at run time when the CPU has it.
//!
//! The engine is portable safe Rust whose kernels ([`tinyscore_engine::format::dot_block`]) are
//! written so that a compiler can put the eight summation lanes of a dot product in one SIMD
//! register. Built for baseline x86-64 (SSE2) that is two 4-wide registers per lane set; the
//! functions here are the same code inlined into `#[target_feature(enable = "avx2")]` functions,
//! so one 8-wide register holds the lanes. The arithmetic is unchanged — the same multiplies and
//! adds in the same order, no fused multiply–add (Rust never contracts `a * b + c`) — so the
//! bits are the engine's: `tests/batch.rs` compares these functions with the engine's.

use tinyscore_engine::net::ScoreNet;

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

/// [`ScoreNet::eps`], with AVX2 where the CPU has it.
pub fn eps<const D: usize, const H: usize, const F: usize>(
    net: &mut ScoreNet<'_, D, H, F>,
    x: &[f32],
    t: f32,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2 (checked just above), the only requirement of calling a
        // function compiled with `target_feature(enable = "avx2")`.
        return unsafe { avx2::eps(net, x, t, out) };
    }
    net.eps(x, t, out)
}

/// [`ScoreNet::eps_batch`], with AVX2 where the CPU has it.
pub fn eps_batch<const D: usize, const H: usize, const F: usize>(
    net: &mut ScoreNet<'_, D, H, F>,
    xs: &[f32],
    t: f32,
    outs: &mut [f32],
    scratch: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: as in `eps`: AVX2 is present.
        return unsafe { avx2::eps_batch(net, xs, t, outs, scratch) };
    }
    net.eps_batch(xs, t, outs, scratch)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use tinyscore_engine::net::ScoreNet;

    #[target_feature(enable = "avx2")]
    pub fn eps<const D: usize, const H: usize, const F: usize>(
        net: &mut ScoreNet<'_, D, H, F>,
        x: &[f32],
        t: f32,
        out: &mut [f32],
    ) {
        net.eps(x, t, out)
    }

    #[target_feature(enable = "avx2")]
    pub fn eps_batch<const D: usize, const H: usize, const F: usize>(
        net: &mut ScoreNet<'_, D, H, F>,
        xs: &[f32],
        t: f32,
        outs: &mut [f32],
        scratch: &mut [f32],
    ) {
        net.eps_batch(xs, t, outs, scratch)
    }
}
