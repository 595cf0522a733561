//! Calibration of the `w8a8` mode: activation ranges measured by running the float network on
//! calibration inputs across the timesteps that sampling visits, per timestep group; the integer
//! parameters (folded biases, multipliers, shifts, SiLU tables) built from them with the engine's
//! own functions (`tinyscore_engine::quant`); and the score SNR of a quantized file against float.
//!
//! `docs/quantization.md` explains the choices and holds the measurements.

use tinyscore_engine::format::{layout, Model, Process};
use tinyscore_engine::net::{Activation, Dims};
use tinyscore_engine::quant;
use tinyscore_engine::rng::{fill_normal, stream};
use tinyscore_engine::schedule::BetaSchedule;

use crate::cmd::HostNet;
use crate::tsm::{quantize_rows_i8, ModelSpec, Quant};

/// One calibration input: a noised, normalised example x_t and its time t.
#[derive(Clone, Debug)]
pub struct CalibPoint {
    /// x_t = √ᾱ_n·x₀ + √(1−ᾱ_n)·ε, length D.
    pub x: Vec<f32>,
    /// t = n/N.
    pub t: f32,
}

/// The calibration set: `examples` (normalised, row-major (n, D)) noised at `timesteps` steps
/// spread evenly over 1..=N (the steps a sampler visits), with noise from the Philox stream of
/// `seed`. Every example meets every timestep.
pub fn calibration_points(
    examples: &[f32],
    dim: usize,
    process: &Process,
    timesteps: usize,
    seed: u64,
) -> Vec<CalibPoint> {
    let diffusion = process.diffusion().expect("the checkpoint's process is valid");
    let t_min = diffusion.t_min();
    let mut out = Vec::new();
    let mut eps = vec![0.0f32; dim];
    for k in 0..timesteps {
        // Time t_k at the middle of the k-th of K equal slices of [t_min, 1]; a discrete process
        // uses the nearest step n/N, the times its sampler visits.
        let mut t = t_min + (1.0 - t_min) * (k as f32 + 0.5) / timesteps as f32;
        if let Some(sched) = diffusion.discrete() {
            let n = ((t * sched.steps() as f32).round() as usize).clamp(1, sched.steps() as usize);
            t = sched.time(n);
        }
        let (alpha, sigma) = diffusion.marginal(t);
        for (i, x0) in examples.chunks_exact(dim).enumerate() {
            fill_normal(seed, i as u32, k as u32, stream::CALIBRATION, &mut eps);
            let x = x0.iter().zip(&eps).map(|(a, e)| alpha * a + sigma * e).collect();
            out.push(CalibPoint { x, t });
        }
    }
    out
}

/// Raises `maxima` (one per `act.scales` column) to the largest |activation| the engine's own f32
/// network shows over `points`, per timestep group.
fn record_maxima(dims: &Dims, params: &[f32], points: &[CalibPoint], groups: usize, maxima: &mut [f32]) {
    // An f32 file of these weights: the normalisation and the process do not enter ε̂(x, t) on a
    // normalised x, so identity and a one-step schedule serve.
    let (mean, std) = (vec![0.0f32; dims.dim], vec![1.0f32; dims.dim]);
    let spec = ModelSpec {
        dims: *dims,
        process: Process::VpDiscrete { steps: 1, schedule: BetaSchedule::DDPM_LINEAR },
        norm_mean: &mean,
        norm_std: &std,
        params,
    };
    let bytes = crate::tsm::write(&spec, Quant::F32).expect("the calibrated weights fit their sizes");
    let model = Model::parse(&bytes).expect("the writer's f32 file parses");
    let mut net = HostNet::new(model).expect("a valid file fits the host capacities");
    let (cols, nb) = (layout::scale_cols(dims.blocks), dims.blocks);
    let mut eps = vec![0.0f32; dims.dim];
    for p in points {
        let g = quant::time_group(p.t, groups);
        let m = &mut maxima[g * cols..(g + 1) * cols];
        net.eps_observed(&p.x, p.t, &mut eps, |act, v| {
            let c = match act {
                Activation::Input => layout::s_x(),
                Activation::Residual(b) => layout::s_h(b),
                Activation::SiluResidual(b) => layout::s_a(nb, b),
                Activation::Pre(b) => layout::s_u(nb, b),
                Activation::SiluPre(b) => layout::s_v(nb, b),
            };
            m[c] = v.iter().fold(m[c], |acc, x| acc.max(x.abs()));
        });
    }
}

/// The activation scales (row-major (G, 4B+3)) of `groups` timestep groups: each activation's
/// largest |value| over the calibration points of the group, over the largest code (127 for
/// int8; the int16 residual stream gets 8 more bits: max/(127·256)).
pub fn activation_scales(dims: &Dims, params: &[f32], points: &[CalibPoint], groups: usize) -> Vec<f32> {
    let cols = layout::scale_cols(dims.blocks);
    let mut maxima = vec![0.0f32; groups * cols];
    record_maxima(dims, params, points, groups, &mut maxima);
    let residual = (1u32 << quant::RESIDUAL_EXTRA_BITS) as f32;
    let mut scales = vec![0.0f32; groups * cols];
    for g in 0..groups {
        for c in 0..cols {
            // A group no point reached, or an activation that is always 0, keeps a harmless scale.
            let m = maxima[g * cols + c].max(1e-6);
            let is_residual = (0..=dims.blocks).any(|b| layout::s_h(b) == c);
            scales[g * cols + c] = if is_residual { m / (127.0 * residual) } else { m / 127.0 };
        }
    }
    scales
}

/// The i32 `act.requant` values (row-major (G, cols)) and the int8 `act.lut` tables of a w8a8
/// file with parameters `params` and activation scales `scales`, computed with the engine's
/// functions so that engine and converter share one rounding rule.
pub fn integer_params(dims: &Dims, params: &[f32], scales: &[f32], groups: usize) -> (Vec<i32>, Vec<i8>) {
    let Dims { dim: d, hidden: h, blocks: nb, .. } = *dims;
    let scols = layout::scale_cols(nb);
    let rcols = layout::requant_cols(d, h, nb);
    // Offsets of the layers in the flat parameter vector (Dims::params order).
    let mut offsets = std::collections::HashMap::new();
    let mut off = 0;
    for (role, rows, cols) in dims.params() {
        offsets.insert(role, (off, rows, cols));
        off += rows * cols;
    }
    let layer = |role| {
        let (o, rows, cols) = offsets[&role];
        let (_, ws) = quantize_rows_i8(&params[o..o + rows * cols], rows, cols);
        ws
    };
    let bias = |role| {
        let (o, rows, _) = offsets[&role];
        params[o..o + rows].to_vec()
    };
    use tinyscore_engine::format::Role;
    let mult = |real: f64| {
        // Scales come from finite, positive maxima; clamp into the representable range.
        let real = real.clamp(1e-9, 1e9);
        quant::quantize_multiplier(real).expect("clamped factor is representable")
    };
    let mut rq = vec![0i32; groups * rcols];
    let mut luts = vec![0i8; groups * 256 * layout::lut_count(nb)];
    for g in 0..groups {
        let s = |c: usize| scales[g * scols + c];
        let row = &mut rq[g * rcols..(g + 1) * rcols];
        let triples = |row: &mut [i32], base: usize, w_role: Role, b_role: Role, s_in: f32, s_out: f32| {
            let (ws, bs) = (layer(w_role), bias(b_role));
            for r in 0..h {
                let acc_scale = ws[r] * s_in;
                let (m, n) = mult(acc_scale as f64 / s_out as f64);
                row[base + 3 * r] = quant::quantize_bias(bs[r], acc_scale);
                row[base + 3 * r + 1] = m;
                row[base + 3 * r + 2] = n as i32;
            }
        };
        triples(row, layout::input(h), Role::InputW, Role::InputB, s(layout::s_x()), s(layout::s_h(0)));
        for b in 0..nb {
            let bb = b as u8;
            let (s_a, s_u, s_v) = (s(layout::s_a(nb, b)), s(layout::s_u(nb, b)), s(layout::s_v(nb, b)));
            triples(row, layout::w1(h, b), Role::BlockW1(bb), Role::BlockB1(bb), s_a, s_u);
            triples(row, layout::w2(h, b), Role::BlockW2(bb), Role::BlockB2(bb), s_v, s(layout::s_h(b + 1)));
            let (m, n) = mult(s(layout::s_h(b)) as f64 / s(layout::s_h(b + 1)) as f64);
            row[layout::residual(h, b)] = m;
            row[layout::residual(h, b) + 1] = n as i32;
        }
        let (ws, bs) = (layer(Role::OutputW), bias(Role::OutputB));
        let s_a = s(layout::s_a(nb, nb));
        for r in 0..d {
            row[layout::output(h, nb) + r] = quant::quantize_bias(bs[r], ws[r] * s_a);
        }
        let tables = &mut luts[g * 256 * layout::lut_count(nb)..(g + 1) * 256 * layout::lut_count(nb)];
        let residual = (1u32 << quant::RESIDUAL_EXTRA_BITS) as f32;
        for b in 0..=nb {
            let (s_in, s_out) = (s(layout::s_h(b)) * residual, s(layout::s_a(nb, b)));
            let t = &mut tables[256 * layout::lut_h(b)..256 * layout::lut_h(b) + 256];
            for (i, e) in t.iter_mut().enumerate() {
                *e = quant::silu_lut_entry(i as i32 - 128, s_in, s_out);
            }
        }
        for b in 0..nb {
            let (s_in, s_out) = (s(layout::s_u(nb, b)), s(layout::s_v(nb, b)));
            let t = &mut tables[256 * layout::lut_u(nb, b)..256 * layout::lut_u(nb, b) + 256];
            for (i, e) in t.iter_mut().enumerate() {
                *e = quant::silu_lut_entry(i as i32 - 128, s_in, s_out);
            }
        }
    }
    (rq, luts)
}

/// Signal-to-noise ratio (dB) of `model`'s ε̂ against `reference`'s over `points`:
/// 10·log10(Σ ε_ref² / Σ (ε − ε_ref)²); +∞ when they agree exactly.
pub fn score_snr(model: &Model<'_>, reference: &Model<'_>, points: &[CalibPoint]) -> f64 {
    let (mut net, mut refnet) = (
        HostNet::new(model.clone()).expect("host capacities"),
        HostNet::new(reference.clone()).expect("host capacities"),
    );
    let d = model.dims().dim;
    let (mut e, mut r) = (vec![0.0f32; d], vec![0.0f32; d]);
    let (mut signal, mut noise) = (0.0f64, 0.0f64);
    for p in points {
        net.eps(&p.x, p.t, &mut e);
        refnet.eps(&p.x, p.t, &mut r);
        for (a, b) in e.iter().zip(&r) {
            signal += (*b as f64).powi(2);
            noise += (*a as f64 - *b as f64).powi(2);
        }
    }
    10.0 * (signal / noise).log10()
}
