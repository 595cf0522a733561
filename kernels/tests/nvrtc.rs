//! The CUDA sources compile with NVRTC. Needs `libnvrtc.so` (CUDA 13) but no GPU: `scripts/test.sh`
//! fetches NVRTC from PyPI (`nvidia-cuda-nvrtc`) when it is missing, so CI checks every source.

use tinyscore_kernels::cuda::{compile_all, nvrtc_available, SOURCES};

#[test]
fn every_kernel_source_compiles_for_hopper() {
    if !nvrtc_available() {
        eprintln!("skipped: libnvrtc.so (CUDA 13) is not loadable; set LD_LIBRARY_PATH to its directory");
        return;
    }
    let ptx = compile_all(Some("compute_90")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ptx.len(), SOURCES.len());
    for ((file, text), (_, _, kernels)) in ptx.iter().zip(SOURCES) {
        for k in kernels {
            assert!(text.contains(&format!(".entry {k}(")), "{file}: no entry point {k} in the PTX");
        }
    }
}
