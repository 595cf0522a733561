//! Why this build script exists: the Cortex-M4/M7 DSP kernels (`SMLAD`, `SXTB16`, in
//! `src/quant/dsp.rs`) may only be assembled for cores that have the DSP extension. Stable Rust
//! cannot test `target_feature = "dsp"` with `cfg`, so the target's name decides: every
//! `thumbv7em-*` target (ARMv7E-M: Cortex-M4, M4F, M7) gets `cfg(tinyscore_dsp)`; every other
//! target builds the portable kernels only.
fn main() {
    println!("cargo:rustc-check-cfg=cfg(tinyscore_dsp)");
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("thumbv7em-") {
        println!("cargo:rustc-cfg=tinyscore_dsp");
    }
}
