//! Why this build script exists: the Cortex-M4/M7 DSP kernels (`SMLAD`, `SXTB16`, in
//! `src/quant/dsp.rs`) may only be assembled for cores that have the DSP extension, and the FPU
//! kernel (`VLDM`, `VMLA.F32`, in `src/linalg/vfp.rs`) only where the FPU is used. Stable Rust
//! cannot test `target_feature = "dsp"` with `cfg`, so the target's name decides: every
//! `thumbv7em-*` target (ARMv7E-M: Cortex-M4, M4F, M7) gets `cfg(tinyscore_dsp)`; the hard-float
//! ones (`thumbv7em-none-eabihf`: the FPU is on) also get `cfg(tinyscore_vfp)`, except when
//! optimizing for size (`opt-level = "s"` or `"z"`, cargo's `OPT_LEVEL`): the FPU kernel is speed
//! for about 1 KB of flash, which the 64 KiB build cannot spare (docs/BENCHMARKS.md). Every other
//! target builds the portable kernels only; the results are the same bits either way. The
//! multi-vector int8 kernel (`quant::PreparedTile`, `eps_batch` of 2–4 vectors at a time) is
//! enabled with `cfg(tinyscore_dsp_tile)` on the same DSP targets, and likewise left out when
//! optimizing for size (about 4 KB of flash with `quant::matmul_prepared`'s tile paths, which
//! the 64 KiB build cannot spare): vectors then go one at a time through the one-vector DSP
//! kernel, the same bits. Built for size, `cfg(tinyscore_small)` also makes the f32 walk of the
//! layer graph multiply one vector at a time (the same bits, less code).
fn main() {
    println!("cargo:rustc-check-cfg=cfg(tinyscore_dsp)");
    println!("cargo:rustc-check-cfg=cfg(tinyscore_vfp)");
    println!("cargo:rustc-check-cfg=cfg(tinyscore_dsp_tile)");
    println!("cargo:rustc-check-cfg=cfg(tinyscore_small)");
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    let opt_level = std::env::var("OPT_LEVEL").unwrap_or_default();
    let for_size = opt_level == "s" || opt_level == "z";
    // Built for size, the f32 walk multiplies one vector at a time (`linalg::matvec_acc`, the
    // same bits as the blocked `matmul_acc`, about 8 KB less code).
    if for_size {
        println!("cargo:rustc-cfg=tinyscore_small");
    }
    if target.starts_with("thumbv7em-") {
        println!("cargo:rustc-cfg=tinyscore_dsp");
        if !for_size {
            println!("cargo:rustc-cfg=tinyscore_dsp_tile");
        }
        if target.ends_with("eabihf") && !for_size {
            println!("cargo:rustc-cfg=tinyscore_vfp");
        }
    }
}
