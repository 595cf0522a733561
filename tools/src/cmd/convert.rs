//! `tinyscore convert`: checkpoint (.safetensors, f32) → model file (.tsm), with the score SNR of
//! the quantized network against float over calibration inputs.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use tinyscore_engine::format::{Model, Process};
use tinyscore_train::checkpoint::{Checkpoint, CheckpointError};

use super::parse_model;
use crate::calib::{self, CalibPoint};
use crate::cli::{Given, QuantArg};
use crate::output::{self, Kind};
use crate::tsm::{self, GraphSpec, ModelSpec, Quant};
use tinyscore_engine::format::{DataKind, DataShape};
use tinyscore_engine::graph::build::Plan;
use tinyscore_train::config::Network;

/// Arguments of `tinyscore convert`.
#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// Checkpoint to convert (.safetensors).
    pub checkpoint: PathBuf,
    /// Weight storage.
    #[arg(long, value_enum, default_value_t = QuantArg::F32)]
    pub quant: QuantArg,
    /// Use the raw weights instead of their EMA.
    #[arg(long)]
    pub raw: bool,
    /// Calibration data (built-in name or CSV/.npy file) for w8a8 and the SNR report; default:
    /// the training data recorded in the checkpoint.
    #[arg(long)]
    pub calib: Option<String>,
    /// Timestep groups of the w8a8 activation scales (1..=16); default: chosen by measured SNR
    /// among 1, 2, 4, 8.
    #[arg(long)]
    pub groups: Option<usize>,
    /// Model file to write (.tsm).
    #[arg(long)]
    pub out: PathBuf,
}

/// Calibration examples drawn from the data set.
pub const CALIB_EXAMPLES: usize = 256;
/// Timesteps of the calibration grid, spread evenly over 1..=N.
pub const CALIB_TIMESTEPS: usize = 32;
/// Seed of the calibration draw and noise.
pub const CALIB_SEED: u64 = 0x5eed_ca1b;
/// More groups must buy at least this much SNR (dB) to be chosen.
pub const GROUP_GAIN_DB: f64 = 0.5;
/// Network MACs the SNR report of a non-f32 file may spend (a large conv network is measured on
/// fewer of the calibration inputs).
pub const REPORT_MACS: u64 = 1 << 32;
/// The automatic choice of groups keeps a w8a8 file within this fraction of the f32 file.
pub const SIZE_BUDGET: f64 = 0.30;

/// Runs `tinyscore convert` (`given`: the flags given on the command line).
pub fn run_convert(args: &ConvertArgs, given: &Given) -> Result<()> {
    if args.quant != QuantArg::W8a8 {
        given.refuse(&["groups"], "without --quant w8a8 (only integer activations have timestep groups)")?;
    }
    let calib_file = args.calib.as_deref().map(std::path::Path::new).filter(|p| p.exists());
    let mut inputs = vec![args.checkpoint.as_path()];
    inputs.extend(calib_file);
    let mut out = output::plan(&[("--out", &args.out, Kind::Model)], &inputs)?.remove(0);
    let ckpt = load_checkpoint(&args.checkpoint)?;
    let quant = match args.quant {
        QuantArg::F32 => Quant::F32,
        QuantArg::F16 => Quant::F16,
        QuantArg::W8 => Quant::W8,
        QuantArg::W8a8 => Quant::W8A8,
    };
    if let Some(g) = args.groups {
        if g == 0 || g > tinyscore_engine::quant::MAX_GROUPS {
            bail!("--groups {g}: expected 1..={}", tinyscore_engine::quant::MAX_GROUPS);
        }
    }
    let spec_name = args.calib.clone().unwrap_or_else(|| ckpt.data_spec.clone());
    let points = calibration(&ckpt, &spec_name)?;
    let (bytes, groups) = convert_calibrated(&ckpt, quant, !args.raw, &points, args.groups)?;
    // Prove the file reads back before it replaces anything.
    let model = parse_model(&args.out, &bytes)?;
    let float = convert(&ckpt, Quant::F32, !args.raw)?;
    // An f32 file is the float model: its score SNR is exact without evaluating it. Otherwise a
    // large network is measured on an even subset of the points (about REPORT_MACS in all).
    let macs = model.graph().macs().max(1);
    let used = (REPORT_MACS / macs).clamp(64, points.len() as u64) as usize;
    let subset: Vec<CalibPoint> = points.iter().step_by(points.len().div_ceil(used)).cloned().collect();
    let snr = if bytes == float {
        f64::INFINITY
    } else {
        calib::score_snr(&model, &Model::parse(&float)?, &subset)
    };
    out.write_bytes(&bytes)?;
    eprintln!(
        "wrote {} ({} bytes, {} weights{}, {} from {} at step {})",
        args.out.display(),
        bytes.len(),
        format!("{quant:?}").to_lowercase(),
        if groups > 0 { format!(", {groups} timestep groups") } else { String::new() },
        if args.raw { "raw weights" } else { "EMA weights" },
        args.checkpoint.display(),
        ckpt.step
    );
    if bytes == float {
        println!("score SNR vs float: {} (f32 weights are the float model)", fmt_db(snr));
    } else {
        println!(
            "score SNR vs float: {} ({} calibration inputs from {spec_name}: {CALIB_EXAMPLES} examples x {CALIB_TIMESTEPS} timesteps{})",
            fmt_db(snr),
            subset.len(),
            if subset.len() < points.len() { format!(", every {}th", points.len().div_ceil(used)) } else { String::new() }
        );
    }
    Ok(())
}

/// "12.3 dB", or "exact" for +∞.
pub fn fmt_db(db: f64) -> String {
    if db.is_infinite() && db > 0.0 {
        "exact (identical outputs)".into()
    } else {
        format!("{db:.2} dB")
    }
}

/// Loads a checkpoint with an error that names the file once and the reason once
/// (`CheckpointError` carries the path).
pub fn load_checkpoint(path: &std::path::Path) -> Result<Checkpoint> {
    if path.is_dir() {
        anyhow::bail!("{}: is a directory, expected a checkpoint file", path.display());
    }
    Checkpoint::load(path).map_err(|e| match e {
        CheckpointError::Io { path, source, .. } => {
            anyhow::anyhow!("{}: {}", path.display(), crate::output::reason(&source))
        }
        e => anyhow::anyhow!("{e}"),
    })
}

/// The calibration inputs of `ckpt` from the data set or file `spec`: [`CALIB_EXAMPLES`]
/// normalised examples (of a recording, from its training part only), each noised at
/// [`CALIB_TIMESTEPS`] steps of the checkpoint's process.
pub fn calibration(ckpt: &Checkpoint, spec: &str) -> Result<Vec<CalibPoint>> {
    if spec.is_empty() {
        bail!("the checkpoint records no training data: pass --calib NAME|FILE");
    }
    // The training part of the data: a recording's held-out last 20% stays unseen, so that
    // `tinyscore eval` against it measures the converted model on data calibration never saw.
    let data = super::data::training_set(spec, 4 * CALIB_EXAMPLES, CALIB_SEED)
        .with_context(|| format!("{spec}: cannot load calibration data"))?;
    let d = ckpt.network.dim();
    if data.dim != d {
        bail!("{spec}: calibration data has {} values per example, the model needs {d}", data.dim);
    }
    if data.is_empty() {
        bail!("{spec}: calibration data is empty");
    }
    // Evenly strided examples, so a recording contributes from its whole length.
    let stride = (data.len() / CALIB_EXAMPLES).max(1);
    let mut xs: Vec<f32> =
        (0..data.len()).step_by(stride).take(CALIB_EXAMPLES).flat_map(|i| data.row(i).to_vec()).collect();
    ckpt.norm.apply(&mut xs);
    Ok(calib::calibration_points(&xs, d, &process_of(ckpt), CALIB_TIMESTEPS, CALIB_SEED))
}

fn process_of(ckpt: &Checkpoint) -> Process {
    let c = &ckpt.config;
    match c.sde {
        None => Process::VpDiscrete { steps: c.diffusion_steps, schedule: c.schedule },
        Some(sde) => Process::Sde { steps: c.diffusion_steps, sde, t_eps: c.t_eps },
    }
}

/// The `.tsm` bytes of a checkpoint in mode `f32`, `f16` or `w8` (a conv network too: its `w8`
/// weights are int8 with one scale per output channel, the rows of its (C_out, C_in·K) matrices).
pub fn convert(ckpt: &Checkpoint, quant: Quant, use_ema: bool) -> Result<Vec<u8>> {
    match ckpt.network {
        Network::Mlp(_) => Ok(tsm::write_with(&spec_of(ckpt, use_ema)?, data_of(ckpt), quant)?),
        Network::Conv(_) => {
            if quant == Quant::W8A8 {
                bail!("a conv network's w8a8 file needs calibration inputs (convert_calibrated)");
            }
            let plan = ckpt.network.plan().map_err(|e| anyhow::anyhow!("the conv network: {e}"))?;
            Ok(tsm::write_graph(&graph_spec(ckpt, &plan, use_ema), quant)?)
        }
    }
}

/// What a conv network's model file holds: its graph `plan`, data, process, normalisation and
/// the EMA or raw weights.
fn graph_spec<'c>(ckpt: &'c Checkpoint, plan: &'c Plan, use_ema: bool) -> GraphSpec<'c> {
    GraphSpec {
        plan,
        data: data_of(ckpt),
        process: process_of(ckpt),
        norm_mean: &ckpt.norm.mean,
        norm_std: &ckpt.norm.std,
        params: if use_ema { &ckpt.ema } else { &ckpt.params },
    }
}

/// What the checkpoint's data is, for the model file's description (the tools plot by it).
fn data_of(ckpt: &Checkpoint) -> DataShape {
    if let Network::Conv(u) = ckpt.network {
        return DataShape { kind: DataKind::Signal, channels: u.channels, length: u.length };
    }
    let d = ckpt.network.dim();
    match crate::plot::data_shape_for(Some(&ckpt.data_spec), d) {
        crate::plot::DataShape::Image { channels, height, width } if channels * height * width == d => {
            DataShape { kind: DataKind::Image { width }, channels, length: height * width }
        }
        crate::plot::DataShape::Signal { channels, length } if channels * length == d => {
            DataShape { kind: DataKind::Signal, channels, length }
        }
        _ => DataShape { kind: DataKind::Points, channels: d, length: 1 },
    }
}

/// What a ScoreNet v1 model file of `ckpt` holds: its sizes, process, normalisation and the EMA
/// or raw weights.
fn spec_of(ckpt: &Checkpoint, use_ema: bool) -> Result<ModelSpec<'_>> {
    let dims = ckpt.network.mlp().context("not a ScoreNet v1 (mlp) network")?;
    Ok(ModelSpec {
        dims,
        process: process_of(ckpt),
        norm_mean: &ckpt.norm.mean,
        norm_std: &ckpt.norm.std,
        params: if use_ema { &ckpt.ema } else { &ckpt.params },
    })
}

/// The `.tsm` bytes in any mode; `w8a8` is calibrated on `points` with `groups` timestep groups,
/// or, when `None`, among those of 1, 2, 4, 8 whose file stays within [`SIZE_BUDGET`] of the f32
/// file (1 always qualifies), the fewest within [`GROUP_GAIN_DB`] of the best measured score SNR.
/// Returns the bytes and the groups (0 for other modes).
pub fn convert_calibrated(
    ckpt: &Checkpoint,
    quant: Quant,
    use_ema: bool,
    points: &[CalibPoint],
    groups: Option<usize>,
) -> Result<(Vec<u8>, usize)> {
    if quant != Quant::W8A8 {
        return Ok((convert(ckpt, quant, use_ema)?, 0));
    }
    // Calibration runs the engine's own f32 network of these weights.
    let float_bytes = convert(ckpt, Quant::F32, use_ema)?;
    let float = Model::parse(&float_bytes)?;
    let conv_plan = match ckpt.network {
        Network::Conv(_) => Some(ckpt.network.plan().map_err(|e| anyhow::anyhow!("the conv network: {e}"))?),
        Network::Mlp(_) => None,
    };
    let build = |g: usize| -> Result<Vec<u8>> {
        let scales = calib::activation_scales_of(&float, points, g);
        let (rq, luts) = calib::integer_params_of(&float, &scales, g);
        Ok(match &conv_plan {
            Some(plan) => tsm::write_graph_w8a8(&graph_spec(ckpt, plan, use_ema), g, &scales, &rq, &luts)?,
            None => tsm::write_w8a8_with(&spec_of(ckpt, use_ema)?, data_of(ckpt), g, &scales, &rq, &luts)?,
        })
    };
    if let Some(g) = groups {
        return Ok((build(g)?, g));
    }
    let budget = SIZE_BUDGET * float_bytes.len() as f64;
    let mut tried = Vec::new();
    for g in [1usize, 2, 4, 8] {
        let bytes = build(g)?;
        let snr = calib::score_snr(&Model::parse(&bytes)?, &float, points);
        let fits = g == 1 || bytes.len() as f64 <= budget;
        eprintln!(
            "  w8a8 with {g} timestep group(s): score SNR {}, {} bytes ({:.1}% of f32){}",
            fmt_db(snr),
            bytes.len(),
            100.0 * bytes.len() as f64 / float_bytes.len() as f64,
            if fits {
                String::new()
            } else {
                format!(
                    ", over the size budget ({:.0}% of f32 = {budget:.0} bytes; not chosen)",
                    100.0 * SIZE_BUDGET
                )
            }
        );
        if fits {
            tried.push((g, snr, bytes));
        }
    }
    let best = tried.iter().map(|t| t.1).fold(f64::NEG_INFINITY, f64::max);
    let pick = tried.into_iter().find(|t| t.1 >= best - GROUP_GAIN_DB).expect("one is the best");
    Ok((pick.2, pick.0))
}
