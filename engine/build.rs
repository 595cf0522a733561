//! Why this build script exists: the Cortex-M4/M7 DSP kernels (`SMLAD`, `SXTB16`, in
//! `src/quant/dsp.rs`) may only be assembled for cores that have the DSP extension, and the FPU
//! kernel (`VLDM`, `VMLA.F32`, in `src/linalg/vfp.rs`) only where the FPU is used. Stable Rust
//! cannot test `target_feature = "dsp"` with `cfg` (Arm's `dsp` is an unstable target feature:
//! rustc 1.95 leaves it out of `--print cfg` even where it is on, and `-C target-feature=+dsp`
//! is passed to LLVM with a warning), so this script decides from what cargo tells it: the DSP
//! extension is on when the target is ARMv7E-M (`thumbv7em-*`: Cortex-M4, M4F, M7, where it is
//! part of the architecture) or when the target's flags (`CARGO_ENCODED_RUSTFLAGS`: `RUSTFLAGS`,
//! `build.rustflags`, `target.<triple>.rustflags`) enable it with `-C target-feature=+dsp`, as
//! `firmware-example/.cargo/config.toml` does for `thumbv8m.main-*` (ARMv8-M Mainline with the
//! DSP extension: Cortex-M33, M35P); the last `+dsp`/`-dsp` wins, as in rustc. Those targets get
//! `cfg(tinyscore_dsp)` (and `cfg(tinyscore_dsp_tile)`, below); the ARMv7E-M hard-float
//! ones (`thumbv7em-none-eabihf`: the FPU is on) also get `cfg(tinyscore_vfp)`, except when
//! optimizing for size (`opt-level = "s"` or `"z"`, cargo's `OPT_LEVEL`): the FPU kernel is speed
//! for about 1 KB of flash, which the 64 KiB build cannot spare (docs/BENCHMARKS.md). Every other
//! target builds the portable kernels only; the results are the same bits either way. The
//! multi-vector int8 kernel (`quant::PreparedTile`, `eps_batch` of 2–4 vectors at a time) is
//! enabled with `cfg(tinyscore_dsp_tile)` on the same DSP targets, and likewise left out when
//! optimizing for size (about 4 KB of flash with `quant::matmul_prepared`'s tile paths, which
//! the 64 KiB build cannot spare): vectors then go one at a time through the one-vector DSP
//! kernel, the same bits. Built for size, `cfg(tinyscore_small)` also makes the f32 walk of the
//! layer graph multiply one vector at a time (the same bits, less code). On x86-64, a compiler
//! new enough for AVX-VNNI (rustc ≥ 1.89) gets `cfg(tinyscore_vnni)`, the `vpdpbusd` int8 kernels.
fn main() {
    println!("cargo:rustc-check-cfg=cfg(tinyscore_dsp)");
    println!("cargo:rustc-check-cfg=cfg(tinyscore_vfp)");
    println!("cargo:rustc-check-cfg=cfg(tinyscore_dsp_tile)");
    println!("cargo:rustc-check-cfg=cfg(tinyscore_small)");
    println!("cargo:rustc-check-cfg=cfg(tinyscore_vnni)");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    let target = std::env::var("TARGET").unwrap_or_default();
    let rustflags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let opt_level = std::env::var("OPT_LEVEL").unwrap_or_default();
    let for_size = opt_level == "s" || opt_level == "z";
    // Built for size, the f32 walk multiplies one vector at a time (`linalg::matvec_acc`, the
    // same bits as the blocked `matmul_acc`, about 8 KB less code).
    if for_size {
        println!("cargo:rustc-cfg=tinyscore_small");
    }
    // M-profile targets only (`thumb*`): the kernels are Thumb-2 assembly.
    if target.starts_with("thumb") && dsp_feature(target.starts_with("thumbv7em-"), &rustflags) {
        println!("cargo:rustc-cfg=tinyscore_dsp");
        if !for_size {
            println!("cargo:rustc-cfg=tinyscore_dsp_tile");
        }
    }
    if target.starts_with("thumbv7em-") && target.ends_with("eabihf") && !for_size {
        println!("cargo:rustc-cfg=tinyscore_vfp");
    }
    // The x86-64 AVX-VNNI int8 kernels (`src/quant/x86.rs`) need rustc 1.89 (the `avxvnni`
    // target feature and `_mm256_dpbusd_avx_epi32`); the crate's minimum is older, so older
    // compilers build without them (the AVX2 kernels, the same bits).
    if target.starts_with("x86_64") && rustc_minor().is_some_and(|m| m >= 89) {
        println!("cargo:rustc-cfg=tinyscore_vnni");
    }
}

/// The minor version of the compiler cargo builds with (`$RUSTC --version`: `rustc 1.N.…`).
fn rustc_minor() -> Option<u32> {
    let rustc = std::env::var_os("RUSTC")?;
    let out = std::process::Command::new(rustc).arg("--version").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let version = text.split_whitespace().nth(1)?;
    let mut parts = version.split('.');
    (parts.next()? == "1").then_some(())?;
    parts.next()?.parse().ok()
}

/// Whether the DSP extension is on: `default` (the target's own), then each `target-feature`
/// list of the flags in order (`-C target-feature=…`, `-Ctarget-feature=…`, `--codegen …`),
/// the last `+dsp` or `-dsp` deciding. `flags` is `CARGO_ENCODED_RUSTFLAGS` (0x1f between flags).
fn dsp_feature(default: bool, flags: &str) -> bool {
    let mut on = default;
    let mut codegen_next = false;
    for flag in flags.split('\x1f') {
        let option = if codegen_next {
            Some(flag)
        } else {
            flag.strip_prefix("-C")
                .or_else(|| flag.strip_prefix("--codegen"))
                .map(|o| o.trim_start_matches('='))
        };
        codegen_next = flag == "-C" || flag == "--codegen";
        let Some(list) = option.and_then(|o| o.strip_prefix("target-feature=")) else { continue };
        for feature in list.split(',') {
            match feature.trim() {
                "+dsp" => on = true,
                "-dsp" => on = false,
                _ => {}
            }
        }
    }
    on
}
