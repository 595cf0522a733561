//! Calibration of the `w8a8` mode: activation ranges measured by running the float network on
//! calibration inputs across the timesteps that sampling visits, per timestep group; the integer
//! parameters (folded biases, multipliers, shifts, SiLU tables) built from them with the engine's
//! own functions (`tinyscore_engine::quant`); and the score SNR of a quantized file against float.
//!
//! `docs/quantization.md` explains the choices and holds the measurements.

use tinyscore_engine::format::{Model, Process};
use tinyscore_engine::graph::Op;
use tinyscore_engine::net::{Activation, Dims};
use tinyscore_engine::quant::plan::{Kind, NO_LUT};
use tinyscore_engine::quant::{self, Int8Plan};
use tinyscore_engine::rng::{fill_normal, stream};
use tinyscore_engine::schedule::BetaSchedule;

use crate::cmd::host_net;
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

/// An f32 file of ScoreNet v1 with sizes `dims` and parameters `params`: the normalisation and
/// the process do not enter ε̂(x, t) on a normalised x, so identity and a one-step schedule serve.
fn float_mlp(dims: &Dims, params: &[f32]) -> Vec<u8> {
    let (mean, std) = (vec![0.0f32; dims.dim], vec![1.0f32; dims.dim]);
    let spec = ModelSpec {
        dims: *dims,
        process: Process::VpDiscrete { steps: 1, schedule: BetaSchedule::DDPM_LINEAR },
        norm_mean: &mean,
        norm_std: &std,
        params,
    };
    crate::tsm::write(&spec, Quant::F32).expect("the calibrated weights fit their sizes")
}

/// The integer plan of `model`'s graph: the one definition of the steps, their weights and
/// their columns that calibration walks (`Int8Plan::steps()`).
fn plan_of(model: &Model<'_>) -> Int8Plan {
    Int8Plan::new(model.graph()).expect("the network has an integer plan")
}

/// Raises `maxima` (one per `act.scales` column) to the largest |activation| the engine's own f32
/// network `model` shows over `points`, per timestep group; returns which columns hold an int16
/// residual stream. The columns are the integer plan's ([`Int8Plan::scale_of`]).
fn record_maxima(model: &Model<'_>, points: &[CalibPoint], groups: usize, maxima: &mut [f32]) -> Vec<bool> {
    let plan = plan_of(model);
    let cols = plan.scale_cols();
    // The column (and stream flag) of each activation the network names, from the plan.
    let mut columns: Vec<(Activation, usize)> = Vec::new();
    let mut residual = vec![false; cols];
    let input = plan.input_scale().expect("the network reads x");
    columns.push((Activation::Input, input));
    for layer in 0..model.graph().len() {
        if let (Some(a), Some((c, stream))) = (plan.activation(layer), plan.scale_of(layer)) {
            columns.push((a, c));
            residual[c] = stream;
        }
    }
    let mut net = host_net(model.clone()).expect("a valid file fits the host capacities");
    let mut eps = vec![0.0f32; model.dim()];
    for p in points {
        let g = quant::time_group(p.t, groups);
        let m = &mut maxima[g * cols..(g + 1) * cols];
        net.eps_observed(&p.x, p.t, &mut eps, |act, v| {
            if let Some(&(_, c)) = columns.iter().find(|(a, _)| *a == act) {
                m[c] = v.iter().fold(m[c], |acc, x| acc.max(x.abs()));
            }
        });
    }
    residual
}

/// The activation scales (row-major (G, 4B+3)) of `groups` timestep groups of ScoreNet v1 with
/// sizes `dims` and parameters `params` ([`activation_scales_of`]).
pub fn activation_scales(dims: &Dims, params: &[f32], points: &[CalibPoint], groups: usize) -> Vec<f32> {
    let bytes = float_mlp(dims, params);
    activation_scales_of(&Model::parse(&bytes).expect("the writer's f32 file parses"), points, groups)
}

/// The activation scales (row-major (G, columns of the plan)) of `groups` timestep groups of the
/// f32 network `model` (any graph with an integer plan: ScoreNet v1 or a U-Net): each
/// activation's largest |value| over the calibration points of the group, over the largest
/// code (127 for int8; the int16 residual stream gets 8 more bits: max/(127·256)).
pub fn activation_scales_of(model: &Model<'_>, points: &[CalibPoint], groups: usize) -> Vec<f32> {
    let cols = plan_of(model).scale_cols();
    let mut maxima = vec![0.0f32; groups * cols];
    let is_residual = record_maxima(model, points, groups, &mut maxima);
    let residual = (1u32 << quant::RESIDUAL_EXTRA_BITS) as f32;
    let mut scales = vec![0.0f32; groups * cols];
    for g in 0..groups {
        for c in 0..cols {
            // A group no point reached, or an activation that is always 0, keeps a harmless scale.
            let m = maxima[g * cols + c].max(1e-6);
            scales[g * cols + c] = if is_residual[c] { m / (127.0 * residual) } else { m / 127.0 };
        }
    }
    scales
}

/// [`integer_params_of`] for ScoreNet v1 with sizes `dims` and parameters `params`.
pub fn integer_params(dims: &Dims, params: &[f32], scales: &[f32], groups: usize) -> (Vec<i32>, Vec<i8>) {
    let bytes = float_mlp(dims, params);
    integer_params_of(&Model::parse(&bytes).expect("the writer's f32 file parses"), scales, groups)
}

/// The i32 `act.requant` values (row-major (G, cols)) and the int8 `act.lut` tables of a w8a8
/// file of the f32 network `model` with activation scales `scales`, computed with the engine's
/// functions so that engine and converter share one rounding rule. Walks the integer plan's
/// steps (`Int8Plan::steps()`): each step's weight and bias (read from `model`, quantized per
/// row as the writer quantizes them), its columns and its tables are the plan's, so the
/// converter writes exactly what the engine's walk of the same plan reads.
pub fn integer_params_of(model: &Model<'_>, scales: &[f32], groups: usize) -> (Vec<i32>, Vec<i8>) {
    let plan = plan_of(model);
    let graph = model.graph();
    let (scols, rcols, nluts) = (plan.scale_cols(), plan.requant_cols(), plan.lut_count());
    let weight_scales = |tensor: usize| {
        let t = model.tensor_at(tensor);
        let values: Vec<f32> = (0..t.rows * t.cols).map(|i| t.get(i)).collect();
        quantize_rows_i8(&values, t.rows, t.cols).1
    };
    let bias = |tensor: usize| {
        let t = model.tensor_at(tensor);
        (0..t.rows * t.cols).map(|i| t.get(i)).collect::<Vec<f32>>()
    };
    let mult = |real: f64| {
        // Scales come from finite, positive maxima; clamp into the representable range.
        let real = real.clamp(1e-9, 1e9);
        quant::quantize_multiplier(real).expect("clamped factor is representable")
    };
    let extra = (1u32 << quant::RESIDUAL_EXTRA_BITS) as f32;
    let mut rq = vec![0i32; groups * rcols];
    let mut luts = vec![0i8; groups * 256 * nluts];
    // Per step: its weights' row scales and its biases (the same in every group).
    let params: Vec<(Vec<f32>, Vec<f32>)> = plan
        .steps()
        .iter()
        .map(|step| {
            let (Op::Linear { bias: b, .. } | Op::Conv1d { bias: b, .. }) =
                graph.layer(step.layer as usize).op
            else {
                unreachable!("a plan step is a linear or conv1d layer")
            };
            (weight_scales(step.weight()), bias(b as usize))
        })
        .collect();
    for g in 0..groups {
        let s = |c: usize| scales[g * scols + c];
        let row = &mut rq[g * rcols..(g + 1) * rcols];
        let tables = &mut luts[g * 256 * nluts..(g + 1) * 256 * nluts];
        for (step, (ws, bs)) in plan.steps().iter().zip(&params) {
            let (base, s_in) = (step.rq(), s(step.in_scale()) * step.in_factor());
            if step.kind == Kind::Output {
                for r in 0..step.rows() {
                    row[base + r] = quant::quantize_bias(bs[r], ws[r] * s_in);
                }
                continue;
            }
            let s_out = s(step.out_scale());
            for r in 0..step.rows() {
                let acc_scale = ws[r] * s_in;
                let (m, n) = mult(acc_scale as f64 / s_out as f64);
                row[base + 3 * r] = quant::quantize_bias(bs[r], acc_scale);
                row[base + 3 * r + 1] = m;
                row[base + 3 * r + 2] = n as i32;
            }
            let (lut, table_in) = match step.kind {
                Kind::ToI16 { lut } => (lut, s_out * extra),
                Kind::Residual { lut } => {
                    let (m, n) = mult(s(step.res_scale()) as f64 / s_out as f64);
                    let at = base + 3 * step.rows();
                    row[at] = m;
                    row[at + 1] = n as i32;
                    (lut, s_out * extra)
                }
                Kind::Table { lut, .. } => (lut, s_out),
                Kind::Output => unreachable!("handled above"),
            };
            if lut == NO_LUT {
                continue;
            }
            let t = &mut tables[256 * lut as usize..256 * lut as usize + 256];
            for (i, e) in t.iter_mut().enumerate() {
                *e = quant::silu_lut_entry(i as i32 - 128, table_in, s(step.silu_scale()));
            }
        }
    }
    (rq, luts)
}

/// Signal-to-noise ratio (dB) of `model`'s ε̂ against `reference`'s over `points`:
/// 10·log10(Σ ε_ref² / Σ (ε − ε_ref)²); +∞ when they agree exactly.
pub fn score_snr(model: &Model<'_>, reference: &Model<'_>, points: &[CalibPoint]) -> f64 {
    let (mut net, mut refnet) = (
        host_net(model.clone()).expect("host capacities"),
        host_net(reference.clone()).expect("host capacities"),
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
