//! Criterion benches of the engine on the host: one network evaluation (`ScoreNet::eps`) and a
//! batch of 256 (`ScoreNet::eps_batch`), for the checked-in moons models (f32 and w8a8, H=128
//! B=3 F=32, 119 296 MACs), the two dot-product kernels on a 128-column row, and `expf` / SiLU on
//! 1024 values, `libm` one at a time against the eight-lane `vmath` versions.
//!
//! `cargo bench -p tinyscore-engine --bench engine`. `network` and `kernels` are the engine as
//! built for baseline x86-64 (SSE2) with its portable kernels; `avx2` is the same with the AVX2
//! kernels (`Kernels::Avx2`, where the CPU has AVX2; `tinyscore bench` measures that and the whole
//! network compiled for AVX2).
//! Figures: docs/BENCHMARKS.md.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use tinyscore_engine::format::Model;
use tinyscore_engine::linalg::dot;
use tinyscore_engine::net::silu;
use tinyscore_engine::net::{Kernels, ScoreNet};
use tinyscore_engine::quant;
use tinyscore_engine::vmath;

/// 16-byte aligned bytes, as the format places tensors.
#[repr(C, align(16))]
struct Aligned<const N: usize>([u8; N]);

static F32: &Aligned<{ include_bytes!("../../firmware-example/models/moons-f32.tsm").len() }> =
    &Aligned(*include_bytes!("../../firmware-example/models/moons-f32.tsm"));
static W8A8: &Aligned<{ include_bytes!("../../firmware-example/models/moons-w8a8.tsm").len() }> =
    &Aligned(*include_bytes!("../../firmware-example/models/moons-w8a8.tsm"));

fn network(c: &mut Criterion) {
    let mut g = c.benchmark_group("network");
    networks(&mut g, Kernels::Portable);
    g.finish();
}

/// `eps` and `eps_batch` of 256 for both moons models with the kernels `k`.
fn networks(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>, k: Kernels) {
    for (name, bytes) in [("f32", &F32.0[..]), ("w8a8", &W8A8.0[..])] {
        let model = Model::parse(bytes).unwrap();
        let d = model.dims().dim;
        let mut net: ScoreNet<'_, 2, 128, 32, Vec<f32>> = ScoreNet::new(model, vec![0.0; 4096]).unwrap();
        net.set_kernels(k);
        g.throughput(Throughput::Elements(1));
        let x = [0.3f32, -0.7];
        let mut eps = [0.0f32; 2];
        let mut t = 0.0f32;
        g.bench_function(BenchmarkId::new("eps", name), |b| {
            b.iter(|| {
                t = if t >= 1.0 { 0.001 } else { t + 0.001 };
                net.eps(black_box(&x), t, &mut eps);
                black_box(&eps);
            })
        });
        let k = 256;
        let xs: Vec<f32> = (0..k * d).map(|i| ((i as f32) * 0.618_034).fract() * 4.0 - 2.0).collect();
        let mut outs = vec![0.0f32; k * d];
        let mut scratch = vec![0.0f32; net.batch_scratch_len(k)];
        g.throughput(Throughput::Elements(k as u64));
        g.bench_function(BenchmarkId::new("eps_batch_256", name), |b| {
            b.iter(|| {
                t = if t >= 1.0 { 0.001 } else { t + 0.001 };
                net.eps_batch(black_box(&xs), t, &mut outs, &mut scratch);
                black_box(&outs);
            })
        });
    }
}

fn kernels(c: &mut Criterion) {
    let mut g = c.benchmark_group("kernels");
    let cols = 128;
    g.throughput(Throughput::Elements(cols as u64));
    let w8: Vec<u8> = (0..cols).map(|i| (i * 37 % 255) as u8).collect();
    let x8: Vec<i8> = (0..cols).map(|i| (i * 53 % 255) as u8 as i8).collect();
    g.bench_function("dot_i8_128", |b| b.iter(|| quant::dot_i8(black_box(&w8), black_box(&x8))));
    let w32: Vec<u8> = (0..cols).flat_map(|i| (i as f32 * 0.01).to_le_bytes()).collect();
    let x32: Vec<f32> = (0..cols).map(|i| i as f32 * 0.02).collect();
    g.bench_function("dot_f32_128", |b| {
        b.iter(|| {
            dot::<4>(black_box(&w32), black_box(&x32), |w| f32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        })
    });
    g.finish();
}

#[cfg(target_arch = "x86_64")]
fn avx2(c: &mut Criterion) {
    use tinyscore_engine::kernels::Avx2;
    use tinyscore_engine::quant::x86;
    if !std::is_x86_feature_detected!("avx2") {
        println!("avx2 benches skipped: this CPU has no AVX2");
        return;
    }
    // SAFETY: AVX2 checked just above.
    let tok = unsafe { Avx2::new_unchecked() };
    let mut g = c.benchmark_group("avx2");
    networks(&mut g, Kernels::Avx2(tok));
    // One 128 × 128 int8 layer for 8 and for 32 vectors (the host's tiles: `net/mod.rs`), 131 072
    // and 524 288 MACs.
    let (rows, cols) = (128, 128);
    let w: Vec<u8> = (0..rows * cols).map(|i| (i * 37 % 255) as u8).collect();
    for n in [8, 32] {
        let x: Vec<i8> = (0..n * cols).map(|i| (i * 53 % 255) as u8 as i8).collect();
        let mut acc = vec![0i32; n * rows];
        g.throughput(Throughput::Elements((rows * cols * n) as u64));
        g.bench_function(format!("matmul_i8_128x128x{n}"), |b| {
            b.iter(|| x86::matmul_i8(tok, black_box(&w), rows, cols, black_box(&x), cols, n, &mut acc, rows))
        });
    }
    // One 128 × 128 f32 layer for 256 vectors (the f32 batch kernel, 4 rows × 3 vectors per
    // block), 4 194 304 MACs; and the f32 walk's SiLU of 1024 values built with AVX2.
    let n = 256;
    let wf: Vec<u8> =
        (0..rows * cols).flat_map(|i| (((i * 37 % 255) as f32 - 127.0) / 256.0).to_le_bytes()).collect();
    let xf: Vec<f32> = (0..n * cols).map(|i| ((i as f32) * 0.618_034).fract() * 4.0 - 2.0).collect();
    let mut out = vec![0.0f32; n * rows];
    g.throughput(Throughput::Elements((rows * cols * n) as u64));
    g.bench_function("matmul_f32_128x128x256", |b| {
        b.iter(|| {
            tinyscore_engine::linalg::x86::matmul::<tinyscore_engine::linalg::x86::F32>(
                tok,
                black_box(&wf),
                rows,
                cols,
                black_box(&xf),
                cols,
                &mut out,
                rows,
                n,
            )
        })
    });
    let xs: Vec<f32> = (0..1024).map(|i| ((i as f32) * 0.618_034).fract() * 16.0 - 8.0).collect();
    let mut ys = vec![0.0f32; 1024];
    g.throughput(Throughput::Elements(1024));
    g.bench_function("silu_1024", |b| {
        b.iter(|| {
            vmath::silu_into_with(Kernels::Avx2(tok), black_box(&xs), &mut ys);
            black_box(&ys);
        })
    });
    g.finish();
}

fn vmath(c: &mut Criterion) {
    let mut g = c.benchmark_group("vmath");
    let n = 1024;
    g.throughput(Throughput::Elements(n as u64));
    // Pre-activations as a network sees them: spread over about ±8.
    let xs: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.618_034).fract() * 16.0 - 8.0).collect();
    let mut out = vec![0.0f32; n];
    g.bench_function("expf_libm_1024", |b| {
        b.iter(|| {
            for (o, &v) in out.iter_mut().zip(black_box(&xs)) {
                *o = libm::expf(v);
            }
            black_box(&out);
        })
    });
    g.bench_function("expf8_1024", |b| {
        b.iter(|| {
            for (o, x) in out.chunks_exact_mut(vmath::LANES).zip(black_box(&xs).chunks_exact(vmath::LANES)) {
                let mut lanes = [0.0f32; vmath::LANES];
                lanes.copy_from_slice(x);
                o.copy_from_slice(&vmath::expf8(lanes));
            }
            black_box(&out);
        })
    });
    g.bench_function("silu_scalar_1024", |b| {
        b.iter(|| {
            for (o, &v) in out.iter_mut().zip(black_box(&xs)) {
                *o = silu(v);
            }
            black_box(&out);
        })
    });
    g.bench_function("silu8_into_1024", |b| {
        b.iter(|| {
            vmath::silu8_into(black_box(&xs), &mut out);
            black_box(&out);
        })
    });
    g.finish();
}

#[cfg(not(target_arch = "x86_64"))]
fn avx2(_: &mut Criterion) {}

criterion_group!(benches, network, kernels, avx2, vmath);
criterion_main!(benches);
