//! Every CUDA kernel against its CPU twin, on random inputs of awkward sizes (not multiples of
//! the 64×64×16 GEMM tile). Tolerance `|gpu − cpu| ≤ atol + rtol·|cpu|`, stated per test. The
//! GPU sums in a different order (tiles, split-K) and uses CUDA's `expf`/`logf`/`sinf`, so the
//! results agree to rounding, not bit for bit.
//!
//! Needs an NVIDIA GPU with its driver and NVRTC; without them every test prints
//! "skipped: …" and passes (CI has no GPU).
//!
//! The conv network's kernels (`kernels/cuda/conv.cu`) are in the submodule [`conv`].

use tinyscore_engine::net::frequency;
use tinyscore_engine::rng::philox4x32_10;
use tinyscore_engine::schedule::{BetaSchedule, Diffusion, Sde, VpDiscrete};
use tinyscore_kernels::cpu::{self, DsmDraw};
use tinyscore_kernels::cuda::{self, DPtr, DsmBuffers, DsmProcess, Gpu};
use tinyscore_kernels::fused;

#[path = "cuda/conv.rs"]
mod conv;
#[path = "cuda/elementwise.rs"]
mod elementwise;

/// Deterministic values in [-scale, scale).
fn values(n: usize, salt: u32, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let w = philox4x32_10([i as u32, salt, 7, 99], [3, 4]);
            scale * ((w[0] >> 8) as f32 / 8_388_608.0 - 1.0)
        })
        .collect()
}

fn check(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = 0.0f32;
    let bad: Vec<String> = got
        .iter()
        .zip(want)
        .enumerate()
        .filter(|(_, (g, w))| {
            worst = worst.max((**g - **w).abs() / (atol + rtol * w.abs()));
            let within = (**g - **w).abs() <= atol + rtol * w.abs();
            !within
        })
        .take(5)
        .map(|(i, (g, w))| format!("[{i}] gpu {g} cpu {w}"))
        .collect();
    eprintln!("{what}: worst |Δ|/(atol + rtol·|ref|) = {worst:.3}");
    assert!(bad.is_empty(), "{what}: {}", bad.join(", "));
}

/// (rows, in, out) shapes around and across the tile edges.
const SHAPES: [(usize, usize, usize); 5] =
    [(1, 1, 1), (37, 3, 130), (100, 67, 63), (1000, 129, 65), (4099, 70, 33)];

#[test]
fn linear_forward_and_its_epilogues_match_the_twin() {
    let Some(g) = Gpu::open_or_skip(0) else { return };
    for (rows, inp, out) in SHAPES {
        let (x, w, b, add) = (
            values(rows * inp, 1, 1.0),
            values(out * inp, 2, 0.5),
            values(out, 3, 0.5),
            values(rows * out, 4, 1.0),
        );
        let (dx, dw, db, dadd) =
            (g.upload(&x).unwrap(), g.upload(&w).unwrap(), g.upload(&b).unwrap(), g.upload(&add).unwrap());
        let (dy, dact, dsig) = (
            g.zeros::<f32>(rows * out).unwrap(),
            g.zeros::<f32>(rows * out).unwrap(),
            g.zeros::<f32>(rows * out).unwrap(),
        );
        for (with_add, with_act) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = if with_add { dadd.ptr() } else { DPtr::NULL };
            let (pa, ps) = if with_act { (dact.ptr(), dsig.ptr()) } else { (DPtr::NULL, DPtr::NULL) };
            g.linear_fwd(dx.ptr(), dw.ptr(), db.ptr(), dy.ptr(), (rows, inp, out), a, pa, ps).unwrap();
            let (mut y, mut act, mut sig) =
                (vec![0.0; rows * out], vec![0.0; rows * out], vec![0.0; rows * out]);
            let act_pair = if with_act { Some((&mut act[..], &mut sig[..])) } else { None };
            fused::linear_fwd(&x, &w, &b, &mut y, (rows, inp, out), with_add.then_some(&add[..]), act_pair);
            let tag = format!("linear_fwd {rows}x{inp}->{out} add={with_add} act={with_act}");
            check(&tag, &g.download(&dy, rows * out).unwrap(), &y, 1e-5, 1e-4);
            if with_act {
                check(&format!("{tag} silu"), &g.download(&dact, rows * out).unwrap(), &act, 1e-5, 1e-4);
                check(&format!("{tag} sigma"), &g.download(&dsig, rows * out).unwrap(), &sig, 1e-5, 1e-4);
            }
        }
    }
}

#[test]
fn linear_input_gradient_and_its_epilogues_match_the_twin() {
    let Some(g) = Gpu::open_or_skip(0) else { return };
    for (rows, inp, out) in SHAPES {
        let (dy, w, pre, prior) = (
            values(rows * out, 5, 1.0),
            values(out * inp, 6, 0.5),
            values(rows * inp, 7, 3.0),
            values(rows * inp, 8, 1.0),
        );
        let mut sig = vec![0.0; rows * inp];
        let mut scratch = vec![0.0; rows * inp];
        cpu::silu_fwd_sig(&pre, &mut scratch, &mut sig);
        let (ddy, dw, dpre, dsig) =
            (g.upload(&dy).unwrap(), g.upload(&w).unwrap(), g.upload(&pre).unwrap(), g.upload(&sig).unwrap());
        for (with_silu, accumulate) in [(false, false), (true, false), (false, true), (true, true)] {
            let mut ddx = g.upload(&prior).unwrap();
            let (p, s) = if with_silu { (dpre.ptr(), dsig.ptr()) } else { (DPtr::NULL, DPtr::NULL) };
            g.linear_bwd_input(ddy.ptr(), dw.ptr(), ddx.ptr(), (rows, inp, out), p, s, accumulate).unwrap();
            let mut want = prior.clone();
            fused::linear_bwd_input(
                &dy,
                &w,
                &mut want,
                (rows, inp, out),
                with_silu.then_some((&pre[..], &sig[..])),
                accumulate,
            );
            let tag = format!("linear_bwd_input {rows}x{out}->{inp} silu={with_silu} acc={accumulate}");
            check(&tag, &g.download(&ddx, rows * inp).unwrap(), &want, 1e-5, 1e-4);
            g.write(&mut ddx, &prior).unwrap();
        }
    }
}

#[test]
fn linear_parameter_gradients_match_the_twin_with_split_k() {
    let Some(g) = Gpu::open_or_skip(0) else { return };
    for (rows, inp, out) in SHAPES.into_iter().chain([(65_537, 17, 9), (20_000, 130, 129)]) {
        let (dy, x) = (values(rows * out, 9, 1.0), values(rows * inp, 10, 1.0));
        let (ddy, dx) = (g.upload(&dy).unwrap(), g.upload(&x).unwrap());
        let (ddw, ddb) = (g.zeros::<f32>(out * inp).unwrap(), g.zeros::<f32>(out).unwrap());
        let ws = g.zeros::<f32>(cuda::ws_len(inp, out)).unwrap();
        g.linear_bwd_params(ddy.ptr(), dx.ptr(), ddw.ptr(), ddb.ptr(), (rows, inp, out), ws.ptr()).unwrap();
        let (mut dw, mut db) = (vec![1.0; out * inp], vec![1.0; out]);
        fused::linear_bwd_params(&dy, &x, &mut dw, &mut db, (rows, inp, out));
        // Sums of `rows` products of magnitude ≤ 1: the rounding error grows like √rows.
        let atol = 1e-5 * (rows as f32).sqrt();
        check(
            &format!("dW {out}x{inp} over {rows} rows"),
            &g.download(&ddw, out * inp).unwrap(),
            &dw,
            atol,
            1e-4,
        );
        check(&format!("db {out} over {rows} rows"), &g.download(&ddb, out).unwrap(), &db, atol, 1e-4);
        // Bitwise repeatable.
        let first = g.download(&ddw, out * inp).unwrap();
        g.linear_bwd_params(ddy.ptr(), dx.ptr(), ddw.ptr(), ddb.ptr(), (rows, inp, out), ws.ptr()).unwrap();
        assert_eq!(first, g.download(&ddw, out * inp).unwrap(), "dW is not bitwise repeatable");
    }
}

#[test]
fn dsm_inputs_match_the_twin_for_every_process() {
    let Some(g) = Gpu::open_or_skip(0) else { return };
    let (batch, dim, freqs, n_data, seed, step) = (1_001usize, 7usize, 18usize, 313usize, 0xfeed_u64, 5u64);
    let data = values(n_data * dim, 11, 2.0);
    let omegas: Vec<f32> = (0..freqs / 2).map(|k| frequency(k, freqs / 2)).collect();
    let processes = [
        Diffusion::Discrete(VpDiscrete::new(1000, BetaSchedule::DDPM_LINEAR).unwrap()),
        Diffusion::sde(Sde::Vp { beta_min: 0.1, beta_max: 20.0 }, 1e-3).unwrap(),
        Diffusion::sde(Sde::SubVp { beta_min: 0.1, beta_max: 20.0 }, 1e-3).unwrap(),
        Diffusion::sde(Sde::Ve { sigma_min: 0.01, sigma_max: 50.0 }, 1e-5).unwrap(),
    ];
    for process in processes {
        for likelihood in [false, true] {
            let mut st = vec![0u64; cuda::state::LEN];
            st[cuda::state::STEP] = step;
            let state = g.upload(&st).unwrap();
            let tables = DiscreteTables::new(&g, &process);
            let dev_data = g.upload(&data).unwrap();
            let dev_freqs = g.upload(&omegas).unwrap();
            let index = g.zeros::<u32>(batch).unwrap();
            let rows: Vec<_> = (0..4).map(|_| g.zeros::<f32>(batch).unwrap()).collect();
            let phi_buf = g.zeros::<f32>(batch * freqs).unwrap();
            let (xt_buf, eps_buf) =
                (g.zeros::<f32>(batch * dim).unwrap(), g.zeros::<f32>(batch * dim).unwrap());
            let b = DsmBuffers {
                state: state.ptr(),
                data: dev_data.ptr(),
                n_data: n_data as u32,
                freqs: dev_freqs.ptr(),
                index: index.ptr(),
                t: rows[0].ptr(),
                alpha: rows[1].ptr(),
                sigma: rows[2].ptr(),
                weight: rows[3].ptr(),
                phi: phi_buf.ptr(),
                x_t: xt_buf.ptr(),
                eps: eps_buf.ptr(),
            };
            g.dsm_inputs(seed, batch, dim, freqs, tables.process(&process), likelihood, &b).unwrap();
            let (mut x_t, mut eps, mut t, mut phi) =
                (vec![0.0; batch * dim], vec![0.0; batch * dim], vec![0.0; batch], vec![0.0; batch * freqs]);
            let draw = DsmDraw { seed, step, batch, first: 0 };
            cpu::dsm_inputs(
                &data,
                dim,
                &process,
                draw,
                cpu::TimeDraw::UNIFORM,
                batch,
                freqs,
                &mut x_t,
                &mut eps,
                &mut t,
                &mut phi,
            );
            let tag = format!("dsm {process:?} likelihood={likelihood}");
            // The times are the same integers through the same f32 operations: equal.
            assert_eq!(download_ptr(&g, b.t, batch), t, "{tag}: t");
            check(&format!("{tag} eps"), &download_ptr(&g, b.eps, batch * dim), &eps, 1e-5, 1e-5);
            check(&format!("{tag} x_t"), &download_ptr(&g, b.x_t, batch * dim), &x_t, 1e-5, 1e-5);
            check(&format!("{tag} phi"), &download_ptr(&g, b.phi, batch * freqs), &phi, 2e-5, 0.0);
            if likelihood {
                let w: Vec<f32> = t
                    .iter()
                    .map(|&tt| {
                        let (_, g2) = process.coefficients(tt);
                        let (_, s) = process.marginal(tt);
                        g2 / (s * s)
                    })
                    .collect();
                check(&format!("{tag} weight"), &download_ptr(&g, b.weight, batch), &w, 1e-6, 1e-5);
            }
        }
    }
}

#[test]
fn loss_and_its_gradient_match_the_twin() {
    let Some(g) = Gpu::open_or_skip(0) else { return };
    for (rows, dim) in [(1usize, 1usize), (333, 7), (4097, 64)] {
        let n = rows * dim;
        let (pred, target, weights) = (values(n, 12, 2.0), values(n, 13, 2.0), values(rows, 14, 1.0));
        let (dp, dt, dw) =
            (g.upload(&pred).unwrap(), g.upload(&target).unwrap(), g.upload(&weights).unwrap());
        let dg = g.zeros::<f32>(n).unwrap();
        let partials = g.zeros::<f64>(n.div_ceil(256)).unwrap();
        for weighted in [false, true] {
            let state = g.zeros::<u64>(cuda::state::LEN).unwrap();
            let w = if weighted { dw.ptr() } else { DPtr::NULL };
            let count = g.mse_grad(dp.ptr(), dt.ptr(), w, n, dim, n, dg.ptr(), partials.ptr()).unwrap();
            g.loss_finish(partials.ptr(), count, n, state.ptr()).unwrap();
            let mut grad = vec![0.0; n];
            let loss = if weighted {
                cpu::weighted_mse_loss_grad(&pred, &target, &weights, dim, n, &mut grad)
            } else {
                cpu::mse_loss_grad(&pred, &target, n, &mut grad)
            };
            check(
                &format!("loss grad {rows}x{dim} weighted={weighted}"),
                &g.download(&dg, n).unwrap(),
                &grad,
                0.0,
                1e-6,
            );
            let st = g.download(&state, cuda::state::LEN).unwrap();
            let got = f64::from_bits(st[cuda::state::LOSS_SUM]);
            assert!((got - loss).abs() <= 1e-9 * loss.abs().max(1.0), "loss {got} vs {loss}");
            assert_eq!(st[cuda::state::LOSS_COUNT], 1);
        }
    }
}

#[test]
fn clipping_adam_and_ema_match_the_twin() {
    let Some(g) = Gpu::open_or_skip(0) else { return };
    for (n, max_norm, warmup) in
        [(1usize, 1.0f32, 0u64), (1000, 0.5, 100), (70_001, f32::INFINITY, 10), (70_001, 1.0, 0)]
    {
        let (p0, g0, m0, v0) =
            (values(n, 15, 1.0), values(n, 16, 0.1), values(n, 17, 0.01), values(n, 18, 0.001));
        let v0: Vec<f32> = v0.iter().map(|v| v.abs()).collect();
        let (dp, dg, dm, dv, de) = (
            g.upload(&p0).unwrap(),
            g.upload(&g0).unwrap(),
            g.upload(&m0).unwrap(),
            g.upload(&v0).unwrap(),
            g.upload(&p0).unwrap(),
        );
        let mut st = vec![0u64; cuda::state::LEN];
        st[cuda::state::STEP] = 6;
        let state = g.upload(&st).unwrap();
        let blocks = 64;
        let partials = g.zeros::<f64>(blocks).unwrap();
        let (lr, b1, b2, eps, decay) = (1e-3f32, 0.9f32, 0.999f32, 1e-8f32, 0.99f32);
        g.sq_partials(dg.ptr(), n, blocks, partials.ptr()).unwrap();
        g.step_scalars(partials.ptr(), blocks, max_norm, lr, warmup, b1, b2, state.ptr()).unwrap();
        g.adam_ema(dp.ptr(), dg.ptr(), dm.ptr(), dv.ptr(), de.ptr(), n, state.ptr(), b1, b2, eps, decay)
            .unwrap();
        let (mut p, mut m, mut v, mut e) = (p0.clone(), m0.clone(), v0.clone(), p0.clone());
        let norm = fused::clip_adam_ema(
            &mut p,
            &g0,
            &mut m,
            &mut v,
            &mut e,
            7,
            (lr, warmup, max_norm),
            (b1, b2, eps, decay),
        );
        let tag = format!("adam n={n} clip={max_norm} warmup={warmup}");
        check(&format!("{tag} params"), &g.download(&dp, n).unwrap(), &p, 1e-7, 1e-5);
        check(&format!("{tag} m"), &g.download(&dm, n).unwrap(), &m, 1e-9, 1e-5);
        check(&format!("{tag} v"), &g.download(&dv, n).unwrap(), &v, 1e-12, 1e-5);
        check(&format!("{tag} ema"), &g.download(&de, n).unwrap(), &e, 1e-7, 1e-5);
        let st = g.download(&state, cuda::state::LEN).unwrap();
        assert_eq!(st[cuda::state::STEP], 7);
        let gpu_norm = f64::from_bits(st[cuda::state::NORM]) as f32;
        assert!((gpu_norm - norm).abs() <= 1e-5 * norm, "{tag}: norm {gpu_norm} vs {norm}");
    }
}

fn download_ptr(g: &Gpu, p: DPtr, len: usize) -> Vec<f32> {
    g.download_raw(p, len).unwrap()
}

/// The discrete process's tables on the device.
struct DiscreteTables {
    bufs: Option<[cuda::DevBuf<f32>; 4]>,
}

impl DiscreteTables {
    fn new(g: &Gpu, process: &Diffusion) -> Self {
        Self { bufs: cuda::discrete_tables(process).map(|t| t.map(|v| g.upload(&v).unwrap())) }
    }

    fn process(&self, process: &Diffusion) -> DsmProcess {
        cuda::dsm_process(
            process,
            self.bufs.as_ref().map(|b| [b[0].ptr(), b[1].ptr(), b[2].ptr(), b[3].ptr()]),
        )
    }
}
