//! Checkpoints and conversion: `tinyscore.torch.export` writes its checkpoint through
//! `Checkpoint::save` (the trainer's writer, so `tinyscore convert` reads it as one of its own),
//! `load_checkpoint` reads through `Checkpoint::load`, and `tinyscore.convert` is
//! `tinyscore convert`'s code. Also the built-in data sets and the sliced Wasserstein evaluation,
//! so a notebook measures as the command does.

use std::path::Path;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use tinyscore_engine::format::Model;
use tinyscore_engine::net::{limits, Dims};
use tinyscore_tools::cli::{Cli, Command};
use tinyscore_tools::cmd::convert as conv;
use tinyscore_tools::tsm::Quant;
use tinyscore_train::checkpoint::Checkpoint;
use tinyscore_train::data::{Dataset, Normalization};

use crate::error::{to_py, Error, Result};
use crate::{f32_bytes, f32s};

/// Parses a file the converter wrote (a failure is a converter bug, still never a panic).
fn parse_written(b: &[u8]) -> Result<Model<'_>> {
    Model::parse(b)
        .map_err(|e| Error::typed("ModelFileError", &e, format!("converter wrote an invalid file: {e}")))
}

fn checkpoint_error(e: tinyscore_train::checkpoint::CheckpointError) -> Error {
    let message = e.to_string();
    Error::typed("CheckpointError", &e, message)
}

/// Sizes from Python, checked against the engine's capacities (as the checkpoint reader does).
fn dims_of(dim: usize, hidden: usize, freqs: usize, blocks: usize) -> Result<Dims> {
    let dims = Dims { dim, hidden, freqs, blocks };
    let ok = (1..=limits::MAX_DIM).contains(&dim)
        && (1..=limits::MAX_HIDDEN).contains(&hidden)
        && (2..=limits::MAX_FREQS).contains(&freqs)
        && freqs % 2 == 0
        && (1..=limits::MAX_BLOCKS).contains(&blocks);
    if !ok {
        return Err(Error::argument(format!(
            "sizes dim {dim} hidden {hidden} freqs {freqs} blocks {blocks} are outside the engine's capacities \
             (dim 1..={}, hidden 1..={}, freqs even 2..={}, blocks 1..={})",
            limits::MAX_DIM,
            limits::MAX_HIDDEN,
            limits::MAX_FREQS,
            limits::MAX_BLOCKS
        )));
    }
    Ok(dims)
}

/// ScoreNet v1's tensors in the checkpoint's order: (name, shape) for sizes D, H, F, B.
#[pyfunction]
pub fn param_shapes(
    py: Python<'_>,
    dim: usize,
    hidden: usize,
    freqs: usize,
    blocks: usize,
) -> PyResult<Vec<(String, Vec<usize>)>> {
    let dims = to_py(py, dims_of(dim, hidden, freqs, blocks))?;
    Ok(dims
        .params()
        .map(|(role, rows, cols)| {
            let shape = if role.is_matrix() { vec![rows, cols] } else { vec![rows] };
            (role.name().to_string(), shape)
        })
        .collect())
}

/// The engine's time-feature frequencies ω_k (F/2 values, `net::time::frequencies`), f32 bytes:
/// the PyTorch module uses these exact values so that its φ(t) matches the engine's.
#[pyfunction]
pub fn frequencies<'py>(py: Python<'py>, freqs: usize) -> PyResult<Bound<'py, PyBytes>> {
    if freqs == 0 || freqs % 2 != 0 || freqs > limits::MAX_FREQS {
        return Err(Error::argument(format!("freqs must be even in 2..={}, got {freqs}", limits::MAX_FREQS))
            .into_py(py));
    }
    let mut w = vec![0.0f32; freqs / 2];
    tinyscore_engine::net::frequencies(freqs, &mut w);
    Ok(PyBytes::new(py, &f32_bytes(&w)))
}

/// Writes a checkpoint of ScoreNet v1 weights `params` (f32 bytes in `Dims::params()` order)
/// and `ema` (or None: the same), normalisation `mean`/`std`, training data `data` (a built-in
/// name or a path, for the converter's calibration; may be empty) and `flags`, the
/// `tinyscore train` flags that set the process (`--process`, `--schedule`,
/// `--diffusion-steps`, …), parsed and defaulted by the command's own parser.
#[pyfunction]
#[pyo3(signature = (path, dims, params, ema, mean, std, data, flags, step))]
#[allow(clippy::too_many_arguments)]
pub fn write_checkpoint(
    py: Python<'_>,
    path: &str,
    dims: (usize, usize, usize, usize),
    params: &[u8],
    ema: Option<&[u8]>,
    mean: &[u8],
    std: &[u8],
    data: &str,
    flags: Vec<String>,
    step: u64,
) -> PyResult<()> {
    let r = (|| -> Result<()> {
        let dims = dims_of(dims.0, dims.1, dims.2, dims.3)?;
        let (params, mean, std) = (f32s(params), f32s(mean), f32s(std));
        let ema = ema.map(f32s).unwrap_or_else(|| params.clone());
        let count = dims.param_count();
        for (what, found, expected) in [
            ("params", params.len(), count),
            ("ema", ema.len(), count),
            ("mean", mean.len(), dims.dim),
            ("std", std.len(), dims.dim),
        ] {
            if found != expected {
                return Err(Error::argument(format!(
                    "{what} has {found} values, the network needs {expected}"
                )));
            }
        }
        if params.iter().chain(&ema).chain(&mean).any(|v| !v.is_finite()) {
            return Err(Error::argument("weights and normalisation must be finite"));
        }
        if std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(Error::argument("std must be finite and > 0"));
        }
        let config = train_config(&dims, data, &flags)?;
        let ckpt = Checkpoint {
            network: tinyscore_train::config::Network::Mlp(dims),
            config,
            step,
            adam_m: vec![0.0; count],
            adam_v: vec![0.0; count],
            params,
            ema,
            norm: Normalization { mean, std },
            data_spec: data.to_string(),
        };
        ckpt.save(Path::new(path)).map_err(checkpoint_error)
    })();
    to_py(py, r)
}

/// The training configuration `tinyscore train FLAGS` would record for `dims` and `data`.
fn train_config(dims: &Dims, data: &str, flags: &[String]) -> Result<tinyscore_train::config::TrainConfig> {
    use clap::{CommandFactory, FromArgMatches};
    let (h, f, b) = (dims.hidden.to_string(), dims.freqs.to_string(), dims.blocks.to_string());
    let data = if data.is_empty() { "moons" } else { data };
    let mut argv: Vec<&str> = vec![
        "tinyscore",
        "train",
        "--data",
        data,
        "--out",
        "x.safetensors",
        "--hidden",
        &h,
        "--freqs",
        &f,
        "--blocks",
        &b,
    ];
    argv.extend(flags.iter().map(String::as_str));
    let matches = Cli::command()
        .try_get_matches_from(argv)
        .map_err(|e| Error::argument(tinyscore_tools::cli::one_line(&e.render().to_string())))?;
    let cli = Cli::from_arg_matches(&matches).map_err(|e| Error::argument(e.to_string()))?;
    match cli.command {
        Command::Train(a) => {
            tinyscore_tools::cmd::train::config(&a).map_err(|e| Error::argument(e.to_string()))
        }
        _ => Err(Error::argument("not a train command")),
    }
}

/// Reads a checkpoint: a dict of its sizes, weights (`params`, `ema`: f32 bytes), normalisation,
/// process settings (as `tinyscore train` flags), step and data.
#[pyfunction]
pub fn read_checkpoint<'py>(py: Python<'py>, path: &str) -> PyResult<Bound<'py, PyDict>> {
    let ckpt = to_py(py, Checkpoint::load(Path::new(path)).map_err(checkpoint_error))?;
    let d = PyDict::new(py);
    let Some(dims) = ckpt.network.mlp() else {
        return to_py(
            py,
            Err(Error::argument(format!(
                "{path}: a conv network ({}); read_checkpoint reads ScoreNet v1 (mlp) checkpoints",
                ckpt.network.describe()
            ))),
        );
    };
    d.set_item("dims", (dims.dim, dims.hidden, dims.freqs, dims.blocks))?;
    d.set_item("params", PyBytes::new(py, &f32_bytes(&ckpt.params)))?;
    d.set_item("ema", PyBytes::new(py, &f32_bytes(&ckpt.ema)))?;
    d.set_item("mean", PyBytes::new(py, &f32_bytes(&ckpt.norm.mean)))?;
    d.set_item("std", PyBytes::new(py, &f32_bytes(&ckpt.norm.std)))?;
    d.set_item("step", ckpt.step)?;
    d.set_item("data", ckpt.data_spec.clone())?;
    let c = &ckpt.config;
    let process = match c.sde {
        None => "vp",
        Some(tinyscore_engine::schedule::Sde::Vp { .. }) => "vpsde",
        Some(tinyscore_engine::schedule::Sde::SubVp { .. }) => "subvp",
        Some(tinyscore_engine::schedule::Sde::Ve { .. }) => "ve",
    };
    d.set_item("process", process)?;
    d.set_item("diffusion_steps", c.diffusion_steps)?;
    let schedule = match c.schedule {
        tinyscore_engine::schedule::BetaSchedule::Cosine { .. } => "cosine",
        tinyscore_engine::schedule::BetaSchedule::Linear { .. } => "linear",
    };
    d.set_item("schedule", schedule)?;
    Ok(d)
}

/// `tinyscore convert CHECKPOINT --quant Q [--raw] [--calib SPEC] [--groups G]`: the `.tsm`
/// bytes, the timestep groups chosen (0 unless w8a8) and the score SNR vs float (dB).
#[pyfunction]
#[pyo3(signature = (checkpoint, quant, raw, calib, groups))]
pub fn convert<'py>(
    py: Python<'py>,
    checkpoint: &str,
    quant: &str,
    raw: bool,
    calib: Option<String>,
    groups: Option<usize>,
) -> PyResult<(Bound<'py, PyBytes>, usize, f64)> {
    let quant = match quant {
        "f32" => Quant::F32,
        "f16" => Quant::F16,
        "w8" => Quant::W8,
        "w8a8" => Quant::W8A8,
        other => {
            return Err(
                Error::argument(format!("quant must be f32, f16, w8 or w8a8, got '{other}'")).into_py(py)
            )
        }
    };
    if groups.is_some() && quant != Quant::W8A8 {
        return Err(Error::argument("groups has no effect without quant='w8a8'").into_py(py));
    }
    if let Some(g) = groups {
        if g == 0 || g > tinyscore_engine::quant::MAX_GROUPS {
            return Err(Error::argument(format!(
                "groups {g}: expected 1..={}",
                tinyscore_engine::quant::MAX_GROUPS
            ))
            .into_py(py));
        }
    }
    let path = checkpoint.to_string();
    let r = py.detach(move || -> Result<(Vec<u8>, usize, f64)> {
        let ckpt = Checkpoint::load(Path::new(&path)).map_err(checkpoint_error)?;
        let spec = calib.unwrap_or_else(|| ckpt.data_spec.clone());
        let points =
            conv::calibration(&ckpt, &spec).map_err(|e| Error::from_anyhow("CalibrationError", &e))?;
        let (bytes, groups) = conv::convert_calibrated(&ckpt, quant, !raw, &points, groups)
            .map_err(|e| Error::from_anyhow("TinyscoreError", &e))?;
        let float =
            conv::convert(&ckpt, Quant::F32, !raw).map_err(|e| Error::from_anyhow("TinyscoreError", &e))?;
        let snr =
            tinyscore_tools::calib::score_snr(&parse_written(&bytes)?, &parse_written(&float)?, &points);
        Ok((bytes, groups, snr))
    });
    let (bytes, groups, snr) = to_py(py, r)?;
    Ok((PyBytes::new(py, &bytes), groups, snr))
}

/// `n` examples of the data set `spec` (a built-in name or a CSV/.npy file) as the trainer draws
/// them from `seed` (a recording's training part): (bytes of f32, D).
#[pyfunction]
pub fn dataset<'py>(
    py: Python<'py>,
    spec: &str,
    n: usize,
    seed: u64,
) -> PyResult<(Bound<'py, PyBytes>, usize)> {
    if n == 0 || n > tinyscore_tools::cmd::train::MAX_EXAMPLES {
        return Err(Error::argument(format!(
            "n must be in 1..={}, got {n}",
            tinyscore_tools::cmd::train::MAX_EXAMPLES
        ))
        .into_py(py));
    }
    let set = to_py(
        py,
        tinyscore_tools::cmd::data::training_set(spec, n, seed)
            .map_err(|e| Error::from_anyhow("DataError", &e)),
    )?;
    Ok((PyBytes::new(py, &f32_bytes(&set.values)), set.dim))
}

/// `tinyscore eval`: the sliced Wasserstein distance of `samples` ((n, D) f32 bytes) to held-out
/// data of `spec`, its floor (held-out vs held-out) and a fitted Gaussian's, as a dict.
#[pyfunction]
pub fn evaluate<'py>(
    py: Python<'py>,
    samples: &[u8],
    dim: usize,
    spec: &str,
    projections: usize,
    seed: u64,
) -> PyResult<Bound<'py, PyDict>> {
    let values = f32s(samples);
    if dim == 0 || values.len() % dim != 0 {
        return Err(Error::argument("samples are not whole rows").into_py(py));
    }
    let set = Dataset::from_rows(dim, values, "samples");
    let report = to_py(
        py,
        tinyscore_tools::cmd::eval::evaluate(&set, spec, projections, seed)
            .map_err(|e| Error::from_anyhow("DataError", &e)),
    )?;
    let d = PyDict::new(py);
    d.set_item("distance", report.distance)?;
    d.set_item("floor", report.floor)?;
    d.set_item("gaussian", report.gaussian)?;
    d.set_item("points", report.m)?;
    d.set_item("text", report.to_string())?;
    Ok(d)
}

/// The diffusion process `tinyscore train FLAGS` would train (for the PyTorch side's loss): a
/// dict with `kind` (`vp`, `vpsde`, `subvp`, `ve`), `steps`, `t_eps`, and for the discrete
/// process the tables α_n = √ᾱ_n and σ_n = √(1 − ᾱ_n), n = 0..=N (f32 bytes), the trainer's
/// own (`kernels::cpu::dsm_inputs`).
#[pyfunction]
pub fn process_table<'py>(py: Python<'py>, flags: Vec<String>) -> PyResult<Bound<'py, PyDict>> {
    let dims = Dims { dim: 1, hidden: 1, freqs: 2, blocks: 1 };
    let config = to_py(py, train_config(&dims, "", &flags))?;
    let diffusion = to_py(
        py,
        config.diffusion().map_err(|e| Error::typed("ArgumentError", &e, format!("invalid process: {e}"))),
    )?;
    let d = PyDict::new(py);
    let kind = match config.sde {
        None => "vp",
        Some(tinyscore_engine::schedule::Sde::Vp { .. }) => "vpsde",
        Some(tinyscore_engine::schedule::Sde::SubVp { .. }) => "subvp",
        Some(tinyscore_engine::schedule::Sde::Ve { .. }) => "ve",
    };
    d.set_item("kind", kind)?;
    d.set_item("steps", config.diffusion_steps)?;
    d.set_item("t_eps", config.t_eps)?;
    if let tinyscore_engine::schedule::Diffusion::Discrete(s) = &diffusion {
        let n = s.steps() as usize;
        let alpha: Vec<f32> = (0..=n).map(|i| s.alpha(i)).collect();
        let sigma: Vec<f32> = (0..=n).map(|i| s.sigma(i)).collect();
        d.set_item("alpha", PyBytes::new(py, &f32_bytes(&alpha)))?;
        d.set_item("sigma", PyBytes::new(py, &f32_bytes(&sigma)))?;
    }
    Ok(d)
}

/// (α_t, σ_t) of the process of `tinyscore train FLAGS` at the times `t` (f32 bytes), by the
/// engine's `Diffusion::marginal`.
#[pyfunction]
pub fn marginal<'py>(
    py: Python<'py>,
    flags: Vec<String>,
    t: &[u8],
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let dims = Dims { dim: 1, hidden: 1, freqs: 2, blocks: 1 };
    let config = to_py(py, train_config(&dims, "", &flags))?;
    let diffusion = to_py(
        py,
        config.diffusion().map_err(|e| Error::typed("ArgumentError", &e, format!("invalid process: {e}"))),
    )?;
    let (alpha, sigma): (Vec<f32>, Vec<f32>) = f32s(t).into_iter().map(|t| diffusion.marginal(t)).unzip();
    Ok((PyBytes::new(py, &f32_bytes(&alpha)), PyBytes::new(py, &f32_bytes(&sigma))))
}
