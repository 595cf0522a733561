//! The kernels of `kernels/cuda/elementwise.cu` against their CPU twins on lengths around the
//! block size (1, 255, 257, 10 007) and transpositions with one side 1. The SiLU uses CUDA's
//! `expf` (within a few ulp of `libm`), the rest must match bit for bit.

use super::{check, values};
use tinyscore_kernels::cpu;
use tinyscore_kernels::cuda::Gpu;
use tinyscore_kernels::elementwise;

const LENGTHS: [usize; 4] = [1, 255, 257, 10_007];

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn silu_forward_and_backward_match_the_twins() {
    let Some(g) = Gpu::open_or_skip(0) else { return };
    for (k, n) in LENGTHS.into_iter().enumerate() {
        let salt = 200 + 4 * k as u32;
        let (x, dy, prior) = (values(n, salt, 8.0), values(n, salt + 1, 1.0), values(n, salt + 2, 1.0));
        let (dx_, ddy) = (g.upload(&x).unwrap(), g.upload(&dy).unwrap());
        let (dyv, dsig) = (g.zeros::<f32>(n).unwrap(), g.zeros::<f32>(n).unwrap());
        g.silu_fwd_sig(dx_.ptr(), dyv.ptr(), dsig.ptr(), n).unwrap();
        let (mut y, mut sig) = (vec![0.0; n], vec![0.0; n]);
        cpu::silu_fwd_sig(&x, &mut y, &mut sig);
        let sig_gpu = g.download(&dsig, n).unwrap();
        check(&format!("silu_fwd_sig y n={n}"), &g.download(&dyv, n).unwrap(), &y, 1e-6, 1e-5);
        check(&format!("silu_fwd_sig σ n={n}"), &sig_gpu, &sig, 1e-6, 1e-5);
        for accumulate in [false, true] {
            let mut dgrad = g.upload(&prior).unwrap();
            g.silu_bwd_sig(dx_.ptr(), dsig.ptr(), ddy.ptr(), dgrad.ptr(), n, accumulate).unwrap();
            // The twin from the GPU's σ, so the backward's own arithmetic is compared exactly.
            let mut want = prior.clone();
            if accumulate {
                cpu::silu_bwd_sig_acc(&x, &sig_gpu, &dy, &mut want);
            } else {
                cpu::silu_bwd_sig(&x, &sig_gpu, &dy, &mut want);
            }
            let got = g.download(&dgrad, n).unwrap();
            assert_eq!(bits(&got), bits(&want), "silu_bwd_sig n={n} accumulate={accumulate}");
            g.write(&mut dgrad, &prior).unwrap();
        }
    }
}

#[test]
fn zero_fill_add_and_transpose_match_the_twins() {
    let Some(g) = Gpu::open_or_skip(0) else { return };
    for (k, n) in LENGTHS.into_iter().enumerate() {
        let salt = 300 + 4 * k as u32;
        let (a, b) = (values(n, salt, 1.0), values(n, salt + 1, 1.0));
        let (da, db, dy) = (g.upload(&a).unwrap(), g.upload(&b).unwrap(), g.zeros::<f32>(n).unwrap());
        g.add2(da.ptr(), db.ptr(), dy.ptr(), n).unwrap();
        let mut want = vec![0.0; n];
        elementwise::add(&a, &b, &mut want);
        assert_eq!(bits(&g.download(&dy, n).unwrap()), bits(&want), "add2 n={n}");
        g.fill_zero(da.ptr(), n).unwrap();
        assert!(g.download(&da, n).unwrap().iter().all(|v| v.to_bits() == 0), "fill_zero n={n}");
    }
    for (rows, a, b) in [(1, 1, 1), (3, 1, 17), (5, 17, 1), (7, 3, 256), (33, 65, 129)] {
        let src = values(rows * a * b, 400 + a as u32, 1.0);
        let (ds, dd) = (g.upload(&src).unwrap(), g.zeros::<f32>(src.len()).unwrap());
        g.transpose_rows(ds.ptr(), dd.ptr(), rows, a, b).unwrap();
        let mut want = vec![0.0; src.len()];
        elementwise::transpose_rows(&src, &mut want, rows, a, b);
        assert_eq!(bits(&g.download(&dd, src.len()).unwrap()), bits(&want), "transpose ({rows}, {a}, {b})");
    }
}
