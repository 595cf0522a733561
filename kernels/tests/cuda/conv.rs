//! The conv kernels of `kernels/cuda/conv.cu` against their CPU twins in `tinyscore_kernels::conv`,
//! on awkward shapes: L_in odd and even and below K, one channel in or out, channel counts across
//! the 64-wide tile edge, K ∈ {1, 3, 5, 7}, dil ∈ {1, 2, 3}, stride ∈ {1, 2}, tiles that span
//! examples, and a weight gradient deep enough for split-K. The conv GEMMs sum in another order
//! than the CPU's im2col + sgemm, so they agree to rounding (`atol + rtol·|ref|`, stated per
//! check); upsampling and the channel bias do the twin's very operations and must match bit for
//! bit. Every GPU result is also checked bitwise repeatable. A module of the `cuda` test target,
//! so `scripts/gpu-check.sh` bundles it with the others.

use super::{check, values};
use tinyscore_kernels::conv::{self, Conv1d};
use tinyscore_kernels::cuda::{self, DPtr, Gpu};

/// (rows, L_in, C_in, C_out, K, dil, stride).
const SHAPES: [(usize, usize, usize, usize, usize, usize, usize); 10] = [
    (1, 1, 1, 1, 3, 1, 1),
    (1, 2, 1, 3, 7, 1, 2),
    (3, 5, 3, 1, 5, 3, 2),
    (3, 16, 5, 6, 7, 2, 1),
    (2, 9, 70, 65, 3, 1, 1),
    (3, 301, 4, 5, 5, 2, 2),
    (33, 129, 3, 130, 3, 1, 2),
    (5, 200, 66, 17, 1, 1, 1),
    (4, 64, 17, 33, 1, 1, 2),
    (7, 257, 2, 3, 7, 3, 1),
];

fn shapes() -> impl Iterator<Item = Conv1d> {
    SHAPES.into_iter().map(|(rows, l_in, c_in, c_out, k, dil, stride)| Conv1d {
        rows,
        l_in,
        c_in,
        c_out,
        k,
        dil,
        stride,
    })
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn conv1d_forward_and_tangent_match_the_twin() {
    let Some(g) = Gpu::open_or_skip(0) else { return };
    for (n, s) in shapes().enumerate() {
        let salt = 40 + 4 * n as u32;
        let (x, w, b) =
            (values(s.x_len(), salt, 1.0), values(s.w_len(), salt + 1, 0.5), values(s.c_out, salt + 2, 0.5));
        let (dx, dw, db, dy) = (
            g.upload(&x).unwrap(),
            g.upload(&w).unwrap(),
            g.upload(&b).unwrap(),
            g.zeros::<f32>(s.y_len()).unwrap(),
        );
        let mut scratch = vec![0.0; s.scratch_len()];
        for with_bias in [true, false] {
            let bias = if with_bias { db.ptr() } else { DPtr::NULL };
            g.conv1d_fwd(dx.ptr(), dw.ptr(), bias, dy.ptr(), &s).unwrap();
            let got = g.download(&dy, s.y_len()).unwrap();
            let mut want = vec![0.0; s.y_len()];
            if with_bias {
                conv::conv1d_fwd(&x, &w, &b, &mut want, &s, &mut scratch);
            } else {
                conv::conv1d_tangent(&x, &w, &mut want, &s, &mut scratch);
            }
            check(&format!("conv1d_fwd {s:?} bias={with_bias}"), &got, &want, 1e-5, 1e-4);
            g.conv1d_fwd(dx.ptr(), dw.ptr(), bias, dy.ptr(), &s).unwrap();
            assert_eq!(bits(&got), bits(&g.download(&dy, s.y_len()).unwrap()), "{s:?}: not repeatable");
        }
    }
}

#[test]
fn conv1d_input_gradient_matches_the_twin() {
    let Some(g) = Gpu::open_or_skip(0) else { return };
    for (n, s) in shapes().enumerate() {
        let salt = 80 + 4 * n as u32;
        let (dy, w, prior) = (
            values(s.y_len(), salt, 1.0),
            values(s.w_len(), salt + 1, 0.5),
            values(s.x_len(), salt + 2, 1.0),
        );
        let (ddy, dw) = (g.upload(&dy).unwrap(), g.upload(&w).unwrap());
        let mut scratch = vec![0.0; s.scratch_len()];
        for accumulate in [false, true] {
            let mut ddx = g.upload(&prior).unwrap();
            g.conv1d_bwd_input(ddy.ptr(), dw.ptr(), ddx.ptr(), &s, accumulate).unwrap();
            let got = g.download(&ddx, s.x_len()).unwrap();
            let mut want = prior.clone();
            if accumulate {
                conv::conv1d_bwd_input_acc(&dy, &w, &mut want, &s, &mut scratch);
            } else {
                conv::conv1d_bwd_input(&dy, &w, &mut want, &s, &mut scratch);
            }
            check(&format!("conv1d_bwd_input {s:?} acc={accumulate}"), &got, &want, 1e-5, 1e-4);
            g.write(&mut ddx, &prior).unwrap();
            g.conv1d_bwd_input(ddy.ptr(), dw.ptr(), ddx.ptr(), &s, accumulate).unwrap();
            assert_eq!(bits(&got), bits(&g.download(&ddx, s.x_len()).unwrap()), "{s:?}: not repeatable");
        }
    }
}

#[test]
fn conv1d_parameter_gradients_match_the_twin_with_split_k() {
    let Some(g) = Gpu::open_or_skip(0) else { return };
    let deep = [
        Conv1d { rows: 64, l_in: 512, c_in: 8, c_out: 16, k: 5, dil: 2, stride: 1 },
        Conv1d { rows: 256, l_in: 255, c_in: 1, c_out: 3, k: 7, dil: 1, stride: 2 },
    ];
    for (n, s) in shapes().chain(deep).enumerate() {
        let salt = 120 + 4 * n as u32;
        let (dy, x) = (values(s.y_len(), salt, 1.0), values(s.x_len(), salt + 1, 1.0));
        let (dw0, db0) = (values(s.w_len(), salt + 2, 1.0), values(s.c_out, salt + 3, 1.0));
        let (ddy, dx) = (g.upload(&dy).unwrap(), g.upload(&x).unwrap());
        let ws = g.zeros::<f32>(cuda::conv_ws_len(&s)).unwrap();
        let mut scratch = vec![0.0; s.scratch_len()];
        // Sums of rows·L_out products of magnitude ≤ 1: the rounding grows like their root.
        let atol = 1e-5 * ((s.rows * s.l_out()) as f32).sqrt().max(1.0);
        for accumulate in [false, true] {
            let (mut gdw, mut gdb) = (g.upload(&dw0).unwrap(), g.upload(&db0).unwrap());
            g.conv1d_bwd_params(ddy.ptr(), dx.ptr(), gdw.ptr(), gdb.ptr(), &s, accumulate, ws.ptr()).unwrap();
            let (got_w, got_b) = (g.download(&gdw, s.w_len()).unwrap(), g.download(&gdb, s.c_out).unwrap());
            let (mut want_w, mut want_b) = if accumulate {
                (dw0.clone(), db0.clone())
            } else {
                (vec![0.0; s.w_len()], vec![0.0; s.c_out])
            };
            conv::conv1d_bwd_params(&dy, &x, &mut want_w, &mut want_b, &s, &mut scratch);
            let tag = format!("{s:?} acc={accumulate}");
            check(&format!("conv1d dw {tag}"), &got_w, &want_w, atol, 1e-4);
            check(&format!("conv1d db {tag}"), &got_b, &want_b, atol, 1e-4);
            // Bitwise repeatable.
            g.write(&mut gdw, &dw0).unwrap();
            g.write(&mut gdb, &db0).unwrap();
            g.conv1d_bwd_params(ddy.ptr(), dx.ptr(), gdw.ptr(), gdb.ptr(), &s, accumulate, ws.ptr()).unwrap();
            assert_eq!(bits(&got_w), bits(&g.download(&gdw, s.w_len()).unwrap()), "{tag}: dw not repeatable");
            assert_eq!(bits(&got_b), bits(&g.download(&gdb, s.c_out).unwrap()), "{tag}: db not repeatable");
            // Without db: the same dw bits, db untouched (the tangent pass's weight share).
            g.write(&mut gdw, &dw0).unwrap();
            g.write(&mut gdb, &db0).unwrap();
            g.conv1d_bwd_params(ddy.ptr(), dx.ptr(), gdw.ptr(), DPtr::NULL, &s, accumulate, ws.ptr())
                .unwrap();
            assert_eq!(bits(&got_w), bits(&g.download(&gdw, s.w_len()).unwrap()), "{tag}: weight-only dw");
            assert_eq!(
                bits(&db0),
                bits(&g.download(&gdb, s.c_out).unwrap()),
                "{tag}: weight-only touched db"
            );
        }
    }
}

#[test]
fn upsampling_and_channel_bias_match_the_twin_bit_for_bit() {
    let Some(g) = Gpu::open_or_skip(0) else { return };
    for (rows, l, c) in [(1usize, 1usize, 1usize), (3, 5, 2), (7, 128, 65), (130, 33, 3)] {
        let n = rows * l * c;
        let (x, dy2, prior, v) =
            (values(n, 160, 1.0), values(2 * n, 161, 1.0), values(n, 162, 1.0), values(rows * c, 163, 1.0));
        let (dx_, dy2_, v_) = (g.upload(&x).unwrap(), g.upload(&dy2).unwrap(), g.upload(&v).unwrap());
        let tag = format!("rows={rows} L={l} C={c}");
        // Upsampling, forward.
        let up = g.zeros::<f32>(2 * n).unwrap();
        g.upsample2_fwd(dx_.ptr(), up.ptr(), rows, l, c).unwrap();
        let mut want = vec![0.0; 2 * n];
        conv::upsample2_fwd(&x, &mut want, rows, l, c);
        assert_eq!(bits(&g.download(&up, 2 * n).unwrap()), bits(&want), "upsample2_fwd {tag}");
        // Upsampling, backward, overwritten and accumulated.
        for accumulate in [false, true] {
            let gd = g.upload(&prior).unwrap();
            g.upsample2_bwd(dy2_.ptr(), gd.ptr(), rows, l, c, accumulate).unwrap();
            let mut want = prior.clone();
            if accumulate {
                conv::upsample2_bwd_acc(&dy2, &mut want, rows, l, c);
            } else {
                conv::upsample2_bwd(&dy2, &mut want, rows, l, c);
            }
            assert_eq!(
                bits(&g.download(&gd, n).unwrap()),
                bits(&want),
                "upsample2_bwd {tag} acc={accumulate}"
            );
        }
        // Channel bias, forward (in place) and backward (accumulated).
        let y = g.upload(&x).unwrap();
        g.channel_bias_fwd(y.ptr(), v_.ptr(), rows, l, c).unwrap();
        let mut want = x.clone();
        conv::channel_bias_fwd(&mut want, &v, rows, l, c);
        assert_eq!(bits(&g.download(&y, n).unwrap()), bits(&want), "channel_bias_fwd {tag}");
        let dv = g.upload(&v).unwrap();
        g.channel_bias_bwd(dx_.ptr(), dv.ptr(), rows, l, c).unwrap();
        let mut want = v.clone();
        conv::channel_bias_bwd(&x, &mut want, rows, l, c);
        assert_eq!(bits(&g.download(&dv, rows * c).unwrap()), bits(&want), "channel_bias_bwd {tag}");
    }
}
