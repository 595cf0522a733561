//! The 1-D convolution kernels of `tinyscore_kernels::conv` against their definitions:
//!
//! * every kernel against a naive f64 loop written from the formula in the module doc, on
//!   awkward shapes (L_in odd and even, L_in < K, C_in = 1, C_out = 1, K ∈ {1, 3, 5, 7},
//!   dil ∈ {1, 2, 3}, stride ∈ {1, 2}, rows ∈ {1, 3}, and shapes spanning several im2col tiles),
//!   tolerance `atol + rtol·|ref|`, the first few mismatches printed;
//! * the backward kernels against central finite differences of a scalar loss, and the adjoint
//!   identities ⟨conv(x), dy⟩ = ⟨x, convᵀ(dy)⟩ and ⟨conv_w(x), dy⟩ = ⟨w, dW(dy, x)⟩;
//! * a hand-computed fixture (what PyTorch's `Conv1d` gives on it);
//! * determinism: the same bits twice, the same bits for any chunking of the rows (forward,
//!   tangent, input gradient), and the parameter gradients of a chunked run summed in chunk
//!   order equal to the one-chunk run within rounding.

use tinyscore_engine::rng::philox4x32_10;
use tinyscore_kernels::conv::*;

/// Deterministic values in [-1, 1).
fn values(n: usize, salt: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let w = philox4x32_10([i as u32, salt, 5, 77], [9, 10]);
            (w[0] >> 8) as f32 / 8_388_608.0 - 1.0
        })
        .collect()
}

/// Fails, listing the first few mismatches, if `|got − want| > atol + rtol·|want|` anywhere.
fn check(what: &str, got: &[f32], want: &[f64], atol: f64, rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let bad: Vec<String> = got
        .iter()
        .zip(want)
        .enumerate()
        // Written so that NaN counts as a mismatch.
        .filter(|(_, (&g, &w))| {
            let within = (g as f64 - w).abs() <= atol + rtol * w.abs();
            !within
        })
        .map(|(i, (g, w))| format!("[{i}] got {g} want {w}"))
        .collect();
    assert!(bad.is_empty(), "{what}: {} mismatches: {}", bad.len(), bad[..bad.len().min(5)].join(", "));
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// x[r, pos, ci] for a position that may lie in the padding (then 0).
fn at(x: &[f32], s: &Conv1d, r: usize, pos: isize, ci: usize) -> f64 {
    if pos < 0 || pos >= s.l_in as isize {
        0.0
    } else {
        x[(r * s.l_in + pos as usize) * s.c_in + ci] as f64
    }
}

/// The input position read by output position l through tap j.
fn tap(s: &Conv1d, l: usize, j: usize) -> isize {
    (s.stride * l + j * s.dil) as isize - (s.dil * (s.k - 1) / 2) as isize
}

/// `y[r, l, co] = b[co] + Σ_{ci, j} w[co, ci, j]·x[r, stride·l + j·dil − p, ci]`, in f64.
fn ref_fwd(x: &[f32], w: &[f32], b: Option<&[f32]>, s: &Conv1d) -> Vec<f64> {
    let l_out = s.l_in.div_ceil(s.stride);
    let mut y = vec![0.0; s.rows * l_out * s.c_out];
    for r in 0..s.rows {
        for l in 0..l_out {
            for co in 0..s.c_out {
                let mut acc = b.map_or(0.0, |b| b[co] as f64);
                for ci in 0..s.c_in {
                    for j in 0..s.k {
                        acc += w[(co * s.c_in + ci) * s.k + j] as f64 * at(x, s, r, tap(s, l, j), ci);
                    }
                }
                y[(r * l_out + l) * s.c_out + co] = acc;
            }
        }
    }
    y
}

/// `dx[r, i, ci] = Σ_{l, co, j : stride·l + j·dil − p = i} w[co, ci, j]·dy[r, l, co]`, in f64.
fn ref_bwd_input(dy: &[f32], w: &[f32], s: &Conv1d) -> Vec<f64> {
    let l_out = s.l_in.div_ceil(s.stride);
    let mut dx = vec![0.0; s.rows * s.l_in * s.c_in];
    for r in 0..s.rows {
        for l in 0..l_out {
            for j in 0..s.k {
                let pos = tap(s, l, j);
                if pos < 0 || pos >= s.l_in as isize {
                    continue;
                }
                for ci in 0..s.c_in {
                    for co in 0..s.c_out {
                        dx[(r * s.l_in + pos as usize) * s.c_in + ci] += w[(co * s.c_in + ci) * s.k + j]
                            as f64
                            * dy[(r * l_out + l) * s.c_out + co] as f64;
                    }
                }
            }
        }
    }
    dx
}

/// `dw[co, ci, j] = Σ_{r, l} dy[r, l, co]·x[r, stride·l + j·dil − p, ci]`, `db[co] = Σ dy`, f64.
fn ref_bwd_params(dy: &[f32], x: &[f32], s: &Conv1d) -> (Vec<f64>, Vec<f64>) {
    let l_out = s.l_in.div_ceil(s.stride);
    let (mut dw, mut db) = (vec![0.0; s.c_out * s.c_in * s.k], vec![0.0; s.c_out]);
    for r in 0..s.rows {
        for l in 0..l_out {
            for co in 0..s.c_out {
                let g = dy[(r * l_out + l) * s.c_out + co] as f64;
                db[co] += g;
                for ci in 0..s.c_in {
                    for j in 0..s.k {
                        dw[(co * s.c_in + ci) * s.k + j] += g * at(x, s, r, tap(s, l, j), ci);
                    }
                }
            }
        }
    }
    (dw, db)
}

/// Awkward shapes: every combination of the small cases, and a few that span several tiles.
fn shapes() -> Vec<Conv1d> {
    let mut out = Vec::new();
    for rows in [1, 3] {
        for l_in in [1, 2, 4, 5, 9, 16] {
            for (c_in, c_out) in [(1, 1), (1, 4), (3, 1), (5, 6)] {
                for k in [1, 3, 5, 7] {
                    for dil in [1, 2, 3] {
                        for stride in [1, 2] {
                            out.push(Conv1d { rows, l_in, c_in, c_out, k, dil, stride });
                        }
                    }
                }
            }
        }
    }
    // Several tiles of CONV_TILE positions, tiles spanning examples, pointwise over tiles.
    for (rows, l_in, c_in, c_out, k, dil, stride) in [
        (3, 301, 4, 5, 5, 2, 1),
        (3, 301, 4, 5, 5, 2, 2),
        (5, 200, 3, 2, 3, 1, 2),
        (4, 130, 7, 9, 1, 1, 1),
        (2, 257, 2, 3, 7, 3, 1),
    ] {
        out.push(Conv1d { rows, l_in, c_in, c_out, k, dil, stride });
    }
    out
}

fn scratch_for(s: &Conv1d) -> Vec<f32> {
    vec![f32::NAN; s.scratch_len()]
}

#[test]
fn shape_rules() {
    let s = Conv1d { rows: 2, l_in: 7, c_in: 3, c_out: 4, k: 5, dil: 3, stride: 2 };
    assert_eq!((s.l_out(), s.pad()), (4, 6));
    assert_eq!((s.x_len(), s.y_len(), s.w_len()), (42, 32, 60));
    assert_eq!(s.scratch_len(), 8 * 15);
    let big = Conv1d { rows: 9, l_in: 100, ..s };
    assert_eq!(big.scratch_len(), CONV_TILE * 15);
    assert_eq!(Conv1d { stride: 1, ..s }.l_out(), 7);
}

#[test]
#[should_panic(expected = "not odd")]
fn even_kernel_is_refused() {
    Conv1d { rows: 1, l_in: 4, c_in: 1, c_out: 1, k: 2, dil: 1, stride: 1 }.validate();
}

/// A fixture computed by hand (and what `torch.nn.functional.conv1d` gives): x = 1..5, one
/// channel, w = [1, 0, −1], b = 0.5.
#[test]
fn hand_computed_fixture() {
    let x = [1.0, 2.0, 3.0, 4.0, 5.0];
    let (w, b) = ([1.0, 0.0, -1.0], [0.5]);
    // stride 2, padding 1: y[l] = x[2l−1] − x[2l+1] + 0.5.
    let s = Conv1d { rows: 1, l_in: 5, c_in: 1, c_out: 1, k: 3, dil: 1, stride: 2 };
    let mut y = [0.0; 3];
    conv1d_fwd(&x, &w, &b, &mut y, &s, &mut scratch_for(&s));
    assert_eq!(y, [-1.5, -1.5, 4.5]);
    // stride 1, dilation 2, padding 2: y[l] = x[l−2] − x[l+2] + 0.5.
    let s = Conv1d { dil: 2, stride: 1, ..s };
    let mut y = [0.0; 5];
    conv1d_fwd(&x, &w, &b, &mut y, &s, &mut scratch_for(&s));
    assert_eq!(y, [-2.5, -3.5, -3.5, 2.5, 3.5]);
    // dx[i] = Σ w[j]·dy[l] over l − 2 + 2j = i: for dy = 1, tap 0 (w = 1) reaches i ≤ 2 and
    // tap 2 (w = −1) reaches i ≥ 2, so dx = [i ≤ 2] − [i ≥ 2].
    let mut dx = [f32::NAN; 5];
    conv1d_bwd_input(&[1.0; 5], &w, &mut dx, &s, &mut scratch_for(&s));
    assert_eq!(dx, [1.0, 1.0, 0.0, -1.0, -1.0]);
}

#[test]
fn forward_and_tangent_match_the_f64_loop() {
    for (n, s) in shapes().iter().enumerate() {
        let salt = 100 + n as u32;
        let (x, w, b) = (values(s.x_len(), salt), values(s.w_len(), salt + 1), values(s.c_out, salt + 2));
        let mut y = vec![f32::NAN; s.y_len()];
        conv1d_fwd(&x, &w, &b, &mut y, s, &mut scratch_for(s));
        check(&format!("conv1d_fwd {s:?}"), &y, &ref_fwd(&x, &w, Some(&b), s), 1e-5, 1e-4);
        conv1d_tangent(&x, &w, &mut y, s, &mut scratch_for(s));
        check(&format!("conv1d_tangent {s:?}"), &y, &ref_fwd(&x, &w, None, s), 1e-5, 1e-4);
    }
}

#[test]
fn input_gradient_matches_the_f64_loop() {
    for (n, s) in shapes().iter().enumerate() {
        let salt = 200 + n as u32;
        let (dy, w, prior) =
            (values(s.y_len(), salt), values(s.w_len(), salt + 1), values(s.x_len(), salt + 2));
        let want = ref_bwd_input(&dy, &w, s);
        let mut dx = vec![f32::NAN; s.x_len()];
        conv1d_bwd_input(&dy, &w, &mut dx, s, &mut scratch_for(s));
        check(&format!("conv1d_bwd_input {s:?}"), &dx, &want, 1e-5, 1e-4);
        let mut acc = prior.clone();
        conv1d_bwd_input_acc(&dy, &w, &mut acc, s, &mut scratch_for(s));
        let want_acc: Vec<f64> = want.iter().zip(&prior).map(|(&a, &p)| a + p as f64).collect();
        check(&format!("conv1d_bwd_input_acc {s:?}"), &acc, &want_acc, 1e-5, 1e-4);
    }
}

#[test]
fn parameter_gradients_match_the_f64_loop() {
    for (n, s) in shapes().iter().enumerate() {
        let salt = 300 + n as u32;
        let (dy, x) = (values(s.y_len(), salt), values(s.x_len(), salt + 1));
        let (dw0, db0) = (values(s.w_len(), salt + 2), values(s.c_out, salt + 3));
        let (mut dw, mut db) = (dw0.clone(), db0.clone());
        conv1d_bwd_params(&dy, &x, &mut dw, &mut db, s, &mut scratch_for(s));
        let (rw, rb) = ref_bwd_params(&dy, &x, s);
        let add = |r: Vec<f64>, p: &[f32]| r.iter().zip(p).map(|(&a, &b)| a + b as f64).collect::<Vec<_>>();
        // Sums over rows·L_out positions of products ≤ 1: the rounding grows with their number.
        let atol = 1e-5 * (s.y_len() as f64 / s.c_out as f64).sqrt().max(1.0);
        check(&format!("conv1d dw {s:?}"), &dw, &add(rw, &dw0), atol, 1e-4);
        check(&format!("conv1d db {s:?}"), &db, &add(rb, &db0), atol, 1e-4);
        // The bias-free variant gives the very same dw.
        let mut dw2 = dw0.clone();
        conv1d_bwd_weight(&dy, &x, &mut dw2, s, &mut scratch_for(s));
        assert_eq!(bits(&dw2), bits(&dw), "conv1d_bwd_weight {s:?}");
    }
}

/// L = Σ g·y + ½·Σ y² (in f64 from the f32 forward), so ∂L/∂y = g + y. A quadratic in x, w and
/// b: the central difference is exact up to the rounding of y, whatever the step.
#[test]
fn backward_matches_central_differences() {
    let cases = [
        Conv1d { rows: 2, l_in: 7, c_in: 2, c_out: 3, k: 3, dil: 2, stride: 2 },
        Conv1d { rows: 1, l_in: 4, c_in: 1, c_out: 2, k: 7, dil: 1, stride: 1 },
        Conv1d { rows: 3, l_in: 6, c_in: 3, c_out: 1, k: 5, dil: 3, stride: 1 },
        Conv1d { rows: 2, l_in: 5, c_in: 2, c_out: 2, k: 1, dil: 1, stride: 2 },
    ];
    for (n, s) in cases.iter().enumerate() {
        let salt = 400 + 10 * n as u32;
        let (x, w, b, g) = (
            values(s.x_len(), salt),
            values(s.w_len(), salt + 1),
            values(s.c_out, salt + 2),
            values(s.y_len(), salt + 3),
        );
        let mut scratch = scratch_for(s);
        let mut loss = |x: &[f32], w: &[f32], b: &[f32]| {
            let mut y = vec![0.0; s.y_len()];
            conv1d_fwd(x, w, b, &mut y, s, &mut scratch);
            y.iter().zip(&g).map(|(&y, &g)| g as f64 * y as f64 + 0.5 * y as f64 * y as f64).sum::<f64>()
        };
        // Analytic gradients.
        let mut y = vec![0.0; s.y_len()];
        conv1d_fwd(&x, &w, &b, &mut y, s, &mut scratch_for(s));
        let dy: Vec<f32> = y.iter().zip(&g).map(|(a, b)| a + b).collect();
        let mut dx = vec![0.0; s.x_len()];
        conv1d_bwd_input(&dy, &w, &mut dx, s, &mut scratch_for(s));
        let (mut dw, mut db) = (vec![0.0; s.w_len()], vec![0.0; s.c_out]);
        conv1d_bwd_params(&dy, &x, &mut dw, &mut db, s, &mut scratch_for(s));
        // Central differences, coordinate by coordinate, divided by the step as it was rounded.
        let h = 1e-2f32;
        let mut fd = |v: &[f32], which: usize| -> Vec<f64> {
            (0..v.len())
                .map(|i| {
                    let (mut p, mut m) = (v.to_vec(), v.to_vec());
                    p[i] += h;
                    m[i] -= h;
                    let step = p[i] as f64 - m[i] as f64;
                    let (lp, lm) = match which {
                        0 => (loss(&p, &w, &b), loss(&m, &w, &b)),
                        1 => (loss(&x, &p, &b), loss(&x, &m, &b)),
                        _ => (loss(&x, &w, &p), loss(&x, &w, &m)),
                    };
                    (lp - lm) / step
                })
                .collect()
        };
        let (fx, fw, fb) = (fd(&x, 0), fd(&w, 1), fd(&b, 2));
        check(&format!("dx vs finite differences {s:?}"), &dx, &fx, 2e-3, 1e-3);
        check(&format!("dw vs finite differences {s:?}"), &dw, &fw, 2e-3, 1e-3);
        check(&format!("db vs finite differences {s:?}"), &db, &fb, 2e-3, 1e-3);
    }
}

/// ⟨conv_w(x), dy⟩ = ⟨x, convᵀ(dy)⟩ = ⟨w, dW(dy, x)⟩ (the bias-free map is bilinear in x and w).
#[test]
fn adjoint_identities_hold() {
    for (n, s) in shapes().iter().enumerate().step_by(7) {
        let salt = 500 + n as u32;
        let (x, w, dy) = (values(s.x_len(), salt), values(s.w_len(), salt + 1), values(s.y_len(), salt + 2));
        let mut y = vec![0.0; s.y_len()];
        conv1d_tangent(&x, &w, &mut y, s, &mut scratch_for(s));
        let mut dx = vec![0.0; s.x_len()];
        conv1d_bwd_input(&dy, &w, &mut dx, s, &mut scratch_for(s));
        let mut dw = vec![0.0; s.w_len()];
        conv1d_bwd_weight(&dy, &x, &mut dw, s, &mut scratch_for(s));
        let (lhs, via_x, via_w) = (dot(&y, &dy), dot(&x, &dx), dot(&w, &dw));
        // Scale: the sum of |terms| of the f64 expansion, at most Σ|y|·|dy| with |y| ≤ C_in·K.
        let scale = (s.c_in * s.k) as f64 * s.y_len() as f64;
        let tol = 1e-6 * scale + 1e-9;
        assert!((lhs - via_x).abs() <= tol, "{s:?}: ⟨conv x, dy⟩ = {lhs} but ⟨x, convᵀ dy⟩ = {via_x}");
        assert!((lhs - via_w).abs() <= tol, "{s:?}: ⟨conv x, dy⟩ = {lhs} but ⟨w, dW⟩ = {via_w}");
    }
}

#[test]
fn upsampling_and_its_backward_follow_the_formula() {
    for (rows, l_in, c) in [(1, 1, 1), (3, 5, 2), (2, 8, 7), (1, 3, 1)] {
        let x = values(rows * l_in * c, 600);
        let mut y = vec![f32::NAN; 2 * x.len()];
        upsample2_fwd(&x, &mut y, rows, l_in, c);
        for r in 0..rows {
            for l in 0..2 * l_in {
                for ch in 0..c {
                    assert_eq!(y[(r * 2 * l_in + l) * c + ch], x[(r * l_in + l / 2) * c + ch]);
                }
            }
        }
        let dy = values(y.len(), 601);
        let prior = values(x.len(), 602);
        let (mut dx, mut acc) = (vec![f32::NAN; x.len()], prior.clone());
        upsample2_bwd(&dy, &mut dx, rows, l_in, c);
        upsample2_bwd_acc(&dy, &mut acc, rows, l_in, c);
        for r in 0..rows {
            for l in 0..l_in {
                for ch in 0..c {
                    let i = (r * l_in + l) * c + ch;
                    let pair = dy[(r * 2 * l_in + 2 * l) * c + ch] + dy[(r * 2 * l_in + 2 * l + 1) * c + ch];
                    assert_eq!(dx[i], pair);
                    assert_eq!(acc[i], prior[i] + pair);
                }
            }
        }
        // The adjoint identity holds to rounding.
        assert!((dot(&y, &dy) - dot(&x, &dx)).abs() < 1e-5 * y.len() as f64);
    }
}

#[test]
fn channel_bias_and_its_backward_follow_the_formula() {
    for (rows, l, c) in [(1, 1, 1), (3, 5, 2), (2, 9, 7)] {
        let (y0, v) = (values(rows * l * c, 700), values(rows * c, 701));
        let mut y = y0.clone();
        channel_bias_fwd(&mut y, &v, rows, l, c);
        for r in 0..rows {
            for p in 0..l {
                for ch in 0..c {
                    let i = (r * l + p) * c + ch;
                    assert_eq!(y[i], y0[i] + v[r * c + ch]);
                }
            }
        }
        let (dy, dv0) = (values(rows * l * c, 702), values(rows * c, 703));
        let mut dv = dv0.clone();
        channel_bias_bwd(&dy, &mut dv, rows, l, c);
        for r in 0..rows {
            for ch in 0..c {
                // In increasing l, starting from the prior value: the same f32 operations.
                let mut want = dv0[r * c + ch];
                for p in 0..l {
                    want += dy[(r * l + p) * c + ch];
                }
                assert_eq!(dv[r * c + ch], want);
            }
        }
    }
}

/// The same bits twice; the same bits for any chunking of the rows (forward, tangent, input
/// gradient, plain and accumulated); and the chunked parameter gradients, each chunk into its own
/// zeroed buffer and the chunks added in order (the trainer's scheme), equal to the one-chunk
/// gradients within rounding — and bitwise repeatable.
#[test]
fn deterministic_and_independent_of_row_chunks() {
    for s in [
        Conv1d { rows: 5, l_in: 200, c_in: 3, c_out: 4, k: 5, dil: 2, stride: 2 },
        Conv1d { rows: 6, l_in: 97, c_in: 4, c_out: 3, k: 3, dil: 1, stride: 1 },
        Conv1d { rows: 4, l_in: 130, c_in: 5, c_out: 6, k: 1, dil: 1, stride: 1 },
    ] {
        let (x, w, b, dy) =
            (values(s.x_len(), 800), values(s.w_len(), 801), values(s.c_out, 802), values(s.y_len(), 803));
        let prior = values(s.x_len(), 804);
        // Everything one kernel call computes for `s` on rows `from..from + s.rows`.
        let run = |s: &Conv1d, from: usize| {
            let (xo, yo) = (from * s.l_in * s.c_in, from * s.l_out() * s.c_out);
            let (xs, dys) = (&x[xo..xo + s.x_len()], &dy[yo..yo + s.y_len()]);
            let mut scratch = scratch_for(s);
            let mut y = vec![f32::NAN; s.y_len()];
            conv1d_fwd(xs, &w, &b, &mut y, s, &mut scratch);
            let mut t = vec![f32::NAN; s.y_len()];
            conv1d_tangent(xs, &w, &mut t, s, &mut scratch);
            let mut dx = vec![f32::NAN; s.x_len()];
            conv1d_bwd_input(dys, &w, &mut dx, s, &mut scratch);
            let mut acc = prior[xo..xo + s.x_len()].to_vec();
            conv1d_bwd_input_acc(dys, &w, &mut acc, s, &mut scratch);
            let (mut dw, mut db) = (vec![0.0; s.w_len()], vec![0.0; s.c_out]);
            conv1d_bwd_params(dys, xs, &mut dw, &mut db, s, &mut scratch);
            (y, t, dx, acc, dw, db)
        };
        let whole = run(&s, 0);
        let again = run(&s, 0);
        for (a, b) in [(&whole.0, &again.0), (&whole.2, &again.2), (&whole.4, &again.4), (&whole.5, &again.5)]
        {
            assert_eq!(bits(a), bits(b), "{s:?}: not repeatable");
        }
        for split in [vec![1; s.rows], vec![2, s.rows - 2]] {
            let (mut y, mut t, mut dx, mut acc) = (vec![], vec![], vec![], vec![]);
            let (mut dw, mut db) = (vec![0.0f32; s.w_len()], vec![0.0f32; s.c_out]);
            let mut from = 0;
            for &rows in &split {
                let part = run(&Conv1d { rows, ..s }, from);
                y.extend(part.0);
                t.extend(part.1);
                dx.extend(part.2);
                acc.extend(part.3);
                dw.iter_mut().zip(&part.4).for_each(|(a, b)| *a += b);
                db.iter_mut().zip(&part.5).for_each(|(a, b)| *a += b);
                from += rows;
            }
            let tag = format!("{s:?} split {split:?}");
            assert_eq!(bits(&y), bits(&whole.0), "{tag}: forward");
            assert_eq!(bits(&t), bits(&whole.1), "{tag}: tangent");
            assert_eq!(bits(&dx), bits(&whole.2), "{tag}: input gradient");
            assert_eq!(bits(&acc), bits(&whole.3), "{tag}: accumulated input gradient");
            let f64s = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<_>>();
            let atol = 1e-5 * ((s.rows * s.l_out()) as f64).sqrt();
            check(&format!("{tag}: dw"), &dw, &f64s(&whole.4), atol, 1e-4);
            check(&format!("{tag}: db"), &db, &f64s(&whole.5), atol, 1e-4);
        }
    }
}

/// A larger scratch than needed, and garbage in it, change nothing.
#[test]
fn scratch_size_and_contents_do_not_matter() {
    let s = Conv1d { rows: 3, l_in: 301, c_in: 4, c_out: 5, k: 5, dil: 2, stride: 1 };
    let (x, w, b) = (values(s.x_len(), 900), values(s.w_len(), 901), values(s.c_out, 902));
    let mut y1 = vec![0.0; s.y_len()];
    conv1d_fwd(&x, &w, &b, &mut y1, &s, &mut vec![0.0; s.scratch_len()]);
    let mut y2 = vec![0.0; s.y_len()];
    conv1d_fwd(&x, &w, &b, &mut y2, &s, &mut vec![f32::NAN; 3 * s.scratch_len() + 17]);
    assert_eq!(bits(&y1), bits(&y2));
}
