//! Checkpoints and conversion: `tinyscore.torch.export` writes its checkpoint through
//! `Checkpoint::save` (the trainer's writer, so `tinyscore convert` reads it as one of its own),
//! `load_checkpoint` reads through `Checkpoint::load`, and `tinyscore.convert` is
//! `tinyscore convert`'s code. Both network families travel: ScoreNet v1 (`mlp`, sizes `dim`,
//! `hidden`, `freqs`, `blocks`) and ScoreNet-conv (`conv`, sizes [`CONV_SIZES`]), named as the
//! trainer names them (`host-train/src/config.rs`, `Network`). Also the built-in data sets and
//! the sliced Wasserstein evaluation, so a notebook measures as the command does.

use std::collections::HashMap;
use std::path::Path;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use tinyscore_engine::format::Model;
use tinyscore_engine::graph::op::MAX_LENGTH;
use tinyscore_engine::graph::unet::UNet;
use tinyscore_engine::net::{limits, Dims};
use tinyscore_tools::cli::{Cli, Command};
use tinyscore_tools::cmd::convert as conv;
use tinyscore_tools::tsm::Quant;
use tinyscore_train::checkpoint::{tensor_names, Checkpoint};
use tinyscore_train::config::Network;
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

/// The sizes of ScoreNet-conv, by the names its checkpoints' metadata use (`length` is L = D/C,
/// which a checkpoint stores as `dim` = C·L).
pub const CONV_SIZES: [&str; 8] =
    ["channels", "length", "width", "levels", "blocks", "kernel", "freqs", "temb"];

/// The sizes of ScoreNet v1, by name.
const MLP_SIZES: [&str; 4] = ["dim", "hidden", "freqs", "blocks"];

/// A network from Python: its family (`mlp` or `conv`) and its sizes by name, exactly the
/// family's names, checked as `tinyscore train` checks its flags and as the checkpoint reader
/// checks a file's sizes.
fn network_of(arch: &str, sizes: &HashMap<String, usize>) -> Result<Network> {
    let names: &[&str] = match arch {
        "mlp" => &MLP_SIZES,
        "conv" => &CONV_SIZES,
        other => return Err(Error::argument(format!("arch must be 'mlp' or 'conv', got '{other}'"))),
    };
    let mut unknown: Vec<&str> = sizes.keys().map(String::as_str).filter(|k| !names.contains(k)).collect();
    unknown.sort_unstable();
    let missing: Vec<&str> = names.iter().copied().filter(|k| !sizes.contains_key(*k)).collect();
    if !unknown.is_empty() || !missing.is_empty() {
        return Err(Error::argument(format!(
            "{arch} sizes are {}; missing: [{}], unknown: [{}]",
            names.join(", "),
            missing.join(", "),
            unknown.join(", ")
        )));
    }
    let get = |k: &str| sizes[k];
    if arch == "mlp" {
        return dims_of(get("dim"), get("hidden"), get("freqs"), get("blocks")).map(Network::Mlp);
    }
    let unet = UNet {
        channels: get("channels"),
        length: get("length"),
        width: get("width"),
        levels: get("levels"),
        blocks: get("blocks"),
        kernel: get("kernel"),
        freqs: get("freqs"),
        temb: get("temb"),
    };
    let network = Network::Conv(unet);
    // The trainer's checks of its flags, with their messages (`--width must be in 1..=512, got
    // 0`), spelled as the Python sizes are named.
    train_config(&network, "", &[])
        .map_err(|e| Error::argument(e.message.replace("--signal-channels", "channels").replace("--", "")))?;
    let dim = unet.channels.saturating_mul(unet.length);
    if !(1..=limits::MAX_DIM).contains(&dim) || unet.length > MAX_LENGTH {
        return Err(Error::argument(format!(
            "channels·length = {} × {} is outside the engine's capacities (at most {} values, length ≤ {MAX_LENGTH})",
            unet.channels,
            unet.length,
            limits::MAX_DIM
        )));
    }
    if unet.length % (1 << unet.levels.min(6)) != 0 {
        return Err(Error::argument(format!(
            "length {} with {} levels: the length must be a multiple of 2^levels = {}",
            unet.length,
            unet.levels,
            1usize << unet.levels.min(6)
        )));
    }
    network.plan().map_err(|e| {
        Error::typed(
            "ArgumentError",
            &e,
            format!("the conv network {} cannot be built: {e}", network.describe()),
        )
    })?;
    Ok(network)
}

/// A network's sizes by name (the inverse of [`network_of`]).
fn sizes_of(network: &Network) -> Vec<(&'static str, usize)> {
    match network {
        Network::Mlp(d) => {
            vec![("dim", d.dim), ("hidden", d.hidden), ("freqs", d.freqs), ("blocks", d.blocks)]
        }
        Network::Conv(u) => CONV_SIZES
            .iter()
            .zip([u.channels, u.length, u.width, u.levels, u.blocks, u.kernel, u.freqs, u.temb])
            .map(|(k, v)| (*k, v))
            .collect(),
    }
}

/// A network's parameter tensors in the checkpoint's (the flat vector's) order: (name, shape).
fn shapes_of(network: &Network) -> Result<Vec<(String, Vec<usize>)>> {
    tensor_names(network)
        .ok_or_else(|| Error::argument(format!("the network {} cannot be built", network.describe())))
}

/// ScoreNet-conv's tensors in the checkpoint's order, (name, shape): `layers.{i}.weight`
/// ((C_out, C_in, K) for a convolution, (out, in) for a linear layer) and `layers.{i}.bias`,
/// for `sizes` (the names of [`CONV_SIZES`]).
#[pyfunction]
pub fn conv_param_shapes(
    py: Python<'_>,
    sizes: HashMap<String, usize>,
) -> PyResult<Vec<(String, Vec<usize>)>> {
    to_py(py, network_of("conv", &sizes).and_then(|n| shapes_of(&n)))
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

/// Writes a checkpoint of a network `arch` (`mlp` or `conv`) of `sizes` (by name), weights
/// `params` (f32 bytes in the checkpoint's order: `Dims::params()`, or the conv graph's tensor
/// order) and `ema` (or None: the same), normalisation `mean`/`std` (D values each), training
/// data `data` (a built-in name or a path, for the converter's calibration; may be empty) and
/// `flags`, the `tinyscore train` flags that set the process (`--process`, `--schedule`,
/// `--diffusion-steps`, …), parsed and defaulted by the command's own parser.
#[pyfunction]
#[pyo3(signature = (path, arch, sizes, params, ema, mean, std, data, flags, step))]
#[allow(clippy::too_many_arguments)]
pub fn write_checkpoint(
    py: Python<'_>,
    path: &str,
    arch: &str,
    sizes: HashMap<String, usize>,
    params: &[u8],
    ema: Option<&[u8]>,
    mean: &[u8],
    std: &[u8],
    data: &str,
    flags: Vec<String>,
    step: u64,
) -> PyResult<()> {
    let r = (|| -> Result<()> {
        let network = network_of(arch, &sizes)?;
        let (params, mean, std) = (f32s(params), f32s(mean), f32s(std));
        let ema = ema.map(f32s).unwrap_or_else(|| params.clone());
        let count: usize = shapes_of(&network)?.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
        let dim = network.dim();
        for (what, found, expected) in [
            ("params", params.len(), count),
            ("ema", ema.len(), count),
            ("mean", mean.len(), dim),
            ("std", std.len(), dim),
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
        let config = train_config(&network, data, &flags)?;
        let ckpt = Checkpoint {
            network,
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

/// The training configuration `tinyscore train FLAGS` would record for `network` and `data`.
fn train_config(
    network: &Network,
    data: &str,
    flags: &[String],
) -> Result<tinyscore_train::config::TrainConfig> {
    use clap::{CommandFactory, FromArgMatches};
    let data = if data.is_empty() { "moons" } else { data };
    let mut argv: Vec<String> =
        ["tinyscore", "train", "--data", data, "--out", "x.safetensors"].map(String::from).to_vec();
    let sized = |argv: &mut Vec<String>, pairs: &[(&str, usize)]| {
        for (flag, v) in pairs {
            argv.extend([flag.to_string(), v.to_string()]);
        }
    };
    match network {
        Network::Mlp(d) => {
            sized(&mut argv, &[("--hidden", d.hidden), ("--freqs", d.freqs), ("--blocks", d.blocks)])
        }
        Network::Conv(u) => {
            argv.extend(["--arch".into(), "conv".into()]);
            sized(
                &mut argv,
                &[
                    ("--signal-channels", u.channels),
                    ("--width", u.width),
                    ("--levels", u.levels),
                    ("--blocks", u.blocks),
                    ("--kernel", u.kernel),
                    ("--temb", u.temb),
                    ("--freqs", u.freqs),
                ],
            )
        }
    }
    argv.extend(flags.iter().cloned());
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

/// Reads a checkpoint: a dict of its network (`arch`: `mlp` or `conv`; `sizes` by name; for
/// ScoreNet v1 also `dims` = (D, H, F, B)), weights (`params`, `ema`: f32 bytes in the
/// checkpoint's order), normalisation, process settings (as `tinyscore train` flags), step and
/// data.
#[pyfunction]
pub fn read_checkpoint<'py>(py: Python<'py>, path: &str) -> PyResult<Bound<'py, PyDict>> {
    let ckpt = to_py(py, Checkpoint::load(Path::new(path)).map_err(checkpoint_error))?;
    let d = PyDict::new(py);
    d.set_item("arch", ckpt.config.arch.name())?;
    let sizes = PyDict::new(py);
    for (k, v) in sizes_of(&ckpt.network) {
        sizes.set_item(k, v)?;
    }
    d.set_item("sizes", sizes)?;
    if let Some(dims) = ckpt.network.mlp() {
        d.set_item("dims", (dims.dim, dims.hidden, dims.freqs, dims.blocks))?;
    }
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
        // The command's report: an f32 file is the float model (exact); otherwise a large network
        // is measured on an even subset of the points (about `REPORT_MACS` in all).
        let model = parse_written(&bytes)?;
        let snr = if bytes == float {
            f64::INFINITY
        } else {
            let used =
                (conv::REPORT_MACS / model.graph().macs().max(1)).clamp(64, points.len() as u64) as usize;
            let subset: Vec<_> = points.iter().step_by(points.len().div_ceil(used).max(1)).cloned().collect();
            tinyscore_tools::calib::score_snr(&model, &parse_written(&float)?, &subset)
        };
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

/// The smallest network: the process functions parse the train flags with it.
const PROCESS_ONLY: Network = Network::Mlp(Dims { dim: 1, hidden: 1, freqs: 2, blocks: 1 });

/// The diffusion process `tinyscore train FLAGS` would train (for the PyTorch side's loss): a
/// dict with `kind` (`vp`, `vpsde`, `subvp`, `ve`), `steps`, `t_eps`, and for the discrete
/// process the tables α_n = √ᾱ_n and σ_n = √(1 − ᾱ_n), n = 0..=N (f32 bytes), the trainer's
/// own (`kernels::cpu::dsm_inputs`).
#[pyfunction]
pub fn process_table<'py>(py: Python<'py>, flags: Vec<String>) -> PyResult<Bound<'py, PyDict>> {
    let config = to_py(py, train_config(&PROCESS_ONLY, "", &flags))?;
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
    let config = to_py(py, train_config(&PROCESS_ONLY, "", &flags))?;
    let diffusion = to_py(
        py,
        config.diffusion().map_err(|e| Error::typed("ArgumentError", &e, format!("invalid process: {e}"))),
    )?;
    let (alpha, sigma): (Vec<f32>, Vec<f32>) = f32s(t).into_iter().map(|t| diffusion.marginal(t)).unzip();
    Ok((PyBytes::new(py, &f32_bytes(&alpha)), PyBytes::new(py, &f32_bytes(&sigma))))
}
