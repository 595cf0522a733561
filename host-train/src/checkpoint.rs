//! Training checkpoints as `.safetensors` files (f32), written atomically.
//!
//! Layout (`tinyscore-ckpt-v1`):
//!
//! * the weights. ScoreNet v1 (`arch` = `mlp`, or absent): one tensor per [`Role`] of
//!   `Dims::params()`, named by [`Role::name`] (`time.w1`, `blocks.0.w1`, `output.b`, …), shape
//!   `[rows, cols]` for a matrix (row-major, `(out, in)`) and `[rows]` for a vector.
//!   ScoreNet-conv (`arch` = `conv`): `layers.<i>.weight` and `layers.<i>.bias` for each
//!   `linear` and `conv1d` layer i of the layer graph (`graph::unet`, layers counted from 0 in
//!   the graph's order), shape `[out, in]` for a linear weight, `[C_out, C_in, K]` for a conv
//!   weight (PyTorch's `Conv1d` layout) and `[out]` for a bias;
//! * `ema.<name>`, `adam_m.<name>`, `adam_v.<name>`: the EMA weights and Adam's moments;
//! * `norm.mean`, `norm.std`: `[dim]`, the data normalisation;
//! * string metadata: `format` = `tinyscore-ckpt-v1`, `dim`, `hidden`, `freqs`, `blocks`,
//!   `step`, `lr`, `batch`, `ema`, `seed`, `grad_clip`, `warmup`, `steps`, `diffusion_steps`,
//!   `schedule` (`linear:<β_start>:<β_end>` or `cosine:<s>`), `process` (`vp` for the
//!   discrete process, `vpsde:<β_min>:<β_max>`, `subvp:<β_min>:<β_max>` or `ve:<σ_min>:<σ_max>`),
//!   `t_eps`, `weighting` (`simple` or `likelihood`), `loss` (`dsm`, `ssm` or `ssm-vr`; absent: `dsm`), `data`;
//!   `low_noise_share` and `low_noise_max` (the time draw `TimeDraw`; written only when the share
//!   is above 0, absent: the uniform draw);
//!   and for `arch` = `conv`: `channels` (C), `width` (c_0, also stored as `hidden`), `levels`,
//!   `kernel`, `temb` (`blocks` and `freqs` as above; L = dim/C). A checkpoint without `process`
//!   (written before these keys existed) is the discrete VP process with the simple weighting. Floats use Rust's
//!   shortest round-trip formatting, so they read back bit-exactly.
//!
//! Loading is tolerant of a weights-only file (from PyTorch, say): missing ScoreNet v1 sizes are
//! inferred from the tensors' shapes (a conv checkpoint must state its sizes), missing optimizer state is zero, a missing EMA copies the weights,
//! a missing normalisation is the identity and missing settings take their defaults. Anything
//! present must be consistent; every problem is a [`CheckpointError`], never a panic.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use tinyscore_engine::format::Role;
use tinyscore_engine::graph::unet::UNet;
use tinyscore_engine::graph::Op;
use tinyscore_engine::net::{limits, Dims};
use tinyscore_engine::schedule::{BetaSchedule, Sde};

use crate::config::{Arch, Loss, Network, TimeDraw, TimeDrawError, TrainConfig, Weighting};
use crate::data::Normalization;

/// The `format` metadata value of this layout.
pub const FORMAT: &str = "tinyscore-ckpt-v1";

/// The whole state of a training run.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// The network's sizes.
    pub network: Network,
    /// The run's settings.
    pub config: TrainConfig,
    /// Optimisation steps done.
    pub step: u64,
    /// (P,) weights, flat in the layer graph's tensor order (ScoreNet v1: `Dims::params()`).
    pub params: Vec<f32>,
    /// (P,) EMA of the weights.
    pub ema: Vec<f32>,
    /// (P,) Adam's first moment.
    pub adam_m: Vec<f32>,
    /// (P,) Adam's second moment.
    pub adam_v: Vec<f32>,
    /// The data normalisation.
    pub norm: Normalization,
    /// The data set the run trained on (a built-in name or a path).
    pub data_spec: String,
}

/// Why a checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The file could not be read or written.
    #[error("{}: {what}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The bytes are not a valid safetensors file.
    #[error("{}: not a valid safetensors file: {reason}", path.display())]
    NotSafetensors {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        reason: String,
    },
    /// The `format` metadata names another layout.
    #[error("{}: format '{found}' is not {FORMAT}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// The format found.
        found: String,
    },
    /// A metadata value cannot be parsed or is out of range.
    #[error("{}: metadata '{key}' = '{value}' is invalid", path.display())]
    BadMetadata {
        /// The file.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// Its value.
        value: String,
    },
    /// A required tensor is absent.
    #[error("{}: tensor '{name}' is missing", path.display())]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
    },
    /// A tensor has the wrong shape (another architecture).
    #[error("{}: tensor '{name}' has shape {found:?}, expected {expected:?} for {dims}", path.display())]
    WrongShape {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Its shape.
        found: Vec<usize>,
        /// The shape the sizes call for.
        expected: Vec<usize>,
        /// The sizes, as text.
        dims: String,
    },
    /// A tensor is not F32.
    #[error("{}: tensor '{name}' has dtype {dtype}, expected F32", path.display())]
    WrongDtype {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Its dtype.
        dtype: String,
    },
    /// A tensor holds NaN or infinity (or a non-positive std).
    #[error("{}: tensor '{name}' holds a non-finite or invalid value", path.display())]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
    },
    /// The sizes are outside the engine's limits.
    #[error("{}: network sizes {dims} are outside the supported range", path.display())]
    BadDims {
        /// The file.
        path: PathBuf,
        /// The sizes, as text.
        dims: String,
    },
    /// The checkpoint's buffers disagree with its sizes (a caller bug when saving).
    #[error("{}: cannot save: {reason}", path.display())]
    Inconsistent {
        /// The file.
        path: PathBuf,
        /// What disagrees.
        reason: String,
    },
}

fn dims_text(d: &Dims) -> String {
    format!("dim {} hidden {} freqs {} blocks {}", d.dim, d.hidden, d.freqs, d.blocks)
}

fn network_text(n: &Network) -> String {
    match n {
        Network::Mlp(d) => dims_text(d),
        Network::Conv(u) => format!("dim {} {}", u.channels * u.length, n.describe()),
    }
}

/// The parameter tensors of `network` in the flat vector's order: (name, shape in the file).
/// `None` if its layer graph cannot be built.
pub fn tensor_names(network: &Network) -> Option<Vec<(String, Vec<usize>)>> {
    match network {
        Network::Mlp(d) => Some(
            d.params()
                .map(|(role, rows, cols)| (role.name().to_string(), shape_of(role, rows, cols)))
                .collect(),
        ),
        Network::Conv(_) => {
            let plan = network.plan().ok()?;
            let graph = plan.graph().ok()?;
            let first = plan.first_tensor() as usize;
            let mut names = vec![(String::new(), Vec::new()); plan.tensors().len()];
            for (i, layer) in graph.layers().enumerate() {
                let (weight, bias, kernel) = match layer.op {
                    Op::Linear { weight, bias, .. } => (weight, bias, None),
                    Op::Conv1d { weight, bias, kernel, .. } => (weight, bias, Some(kernel)),
                    _ => continue,
                };
                let (w, b) = (weight as usize - first, bias as usize - first);
                let (rows, cols) = plan.tensors()[w];
                let shape = match kernel {
                    Some(k) => vec![rows, cols / k, k],
                    None => vec![rows, cols],
                };
                names[w] = (format!("layers.{i}.weight"), shape);
                names[b] = (format!("layers.{i}.bias"), vec![rows]);
            }
            Some(names)
        }
    }
}

/// The shape of `role`'s tensor in the file.
fn shape_of(role: Role, rows: usize, cols: usize) -> Vec<usize> {
    if role.is_matrix() {
        vec![rows, cols]
    } else {
        vec![rows]
    }
}

fn schedule_text(s: &BetaSchedule) -> String {
    match *s {
        BetaSchedule::Linear { beta_start, beta_end } => format!("linear:{beta_start}:{beta_end}"),
        BetaSchedule::Cosine { s } => format!("cosine:{s}"),
    }
}

fn parse_schedule(text: &str) -> Option<BetaSchedule> {
    let parts: Vec<&str> = text.split(':').collect();
    let s = match parts[..] {
        ["linear", a, b] => BetaSchedule::Linear { beta_start: a.parse().ok()?, beta_end: b.parse().ok()? },
        ["cosine", s] => BetaSchedule::Cosine { s: s.parse().ok()? },
        _ => return None,
    };
    s.is_valid().then_some(s)
}

fn process_text(sde: &Option<Sde>) -> String {
    match *sde {
        None => "vp".into(),
        Some(Sde::Vp { beta_min, beta_max }) => format!("vpsde:{beta_min}:{beta_max}"),
        Some(Sde::SubVp { beta_min, beta_max }) => format!("subvp:{beta_min}:{beta_max}"),
        Some(Sde::Ve { sigma_min, sigma_max }) => format!("ve:{sigma_min}:{sigma_max}"),
    }
}

fn parse_process(text: &str) -> Option<Option<Sde>> {
    let parts: Vec<&str> = text.split(':').collect();
    let sde = match parts[..] {
        ["vp"] => return Some(None),
        ["vpsde", a, b] => Sde::Vp { beta_min: a.parse().ok()?, beta_max: b.parse().ok()? },
        ["subvp", a, b] => Sde::SubVp { beta_min: a.parse().ok()?, beta_max: b.parse().ok()? },
        ["ve", a, b] => Sde::Ve { sigma_min: a.parse().ok()?, sigma_max: b.parse().ok()? },
        _ => return None,
    };
    sde.is_valid().then_some(Some(sde))
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl Checkpoint {
    /// The tensor of `role` of a ScoreNet v1 checkpoint from the weights (`ema = false`) or
    /// their EMA (`ema = true`); for `NormMean` / `NormStd`, the normalisation.
    ///
    /// # Panics
    /// If the network has no such tensor (a block index ≥ B, or a conv network).
    pub fn tensor(&self, role: Role, ema: bool) -> &[f32] {
        match role {
            Role::NormMean => &self.norm.mean,
            Role::NormStd => &self.norm.std,
            _ => {
                let mut off = 0;
                let dims = self.network.mlp().expect("a ScoreNet v1 checkpoint");
                for (r, rows, cols) in dims.params() {
                    if r == role {
                        let src = if ema { &self.ema } else { &self.params };
                        return &src[off..off + rows * cols];
                    }
                    off += rows * cols;
                }
                panic!("checkpoint has no tensor {}", role.name())
            }
        }
    }

    /// The metadata map of this checkpoint.
    fn metadata(&self) -> HashMap<String, String> {
        let c = &self.config;
        let n = &self.network;
        let (hidden, blocks) = match n {
            Network::Mlp(d) => (d.hidden, d.blocks),
            Network::Conv(u) => (u.width, u.blocks),
        };
        // Written only for a non-uniform draw, so that a default run's file is unchanged.
        let draw: Vec<(&str, String)> = if c.time_draw.is_uniform() {
            Vec::new()
        } else {
            vec![
                ("low_noise_share", c.time_draw.share.to_string()),
                ("low_noise_max", c.time_draw.max.to_string()),
            ]
        };
        let conv: Vec<(&str, String)> = match n {
            Network::Mlp(_) => Vec::new(),
            Network::Conv(u) => vec![
                ("channels", u.channels.to_string()),
                ("width", u.width.to_string()),
                ("levels", u.levels.to_string()),
                ("kernel", u.kernel.to_string()),
                ("temb", u.temb.to_string()),
            ],
        };
        [
            ("format", FORMAT.to_string()),
            ("arch", c.arch.name().to_string()),
            ("dim", n.dim().to_string()),
            ("hidden", hidden.to_string()),
            ("freqs", n.freqs().to_string()),
            ("blocks", blocks.to_string()),
            ("step", self.step.to_string()),
            ("steps", c.steps.to_string()),
            ("lr", c.lr.to_string()),
            ("batch", c.batch.to_string()),
            ("ema", c.ema.to_string()),
            ("seed", c.seed.to_string()),
            ("grad_clip", c.grad_clip.to_string()),
            ("warmup", c.warmup.to_string()),
            ("diffusion_steps", c.diffusion_steps.to_string()),
            ("schedule", schedule_text(&c.schedule)),
            ("process", process_text(&c.sde)),
            ("t_eps", c.t_eps.to_string()),
            ("weighting", c.weighting.name().to_string()),
            ("loss", c.loss.name().to_string()),
            ("data", self.data_spec.clone()),
        ]
        .into_iter()
        .chain(conv)
        .chain(draw)
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Writes the checkpoint to `path` atomically: to a temporary file in the same directory,
    /// flushed to disk, then renamed over `path`.
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        let names = tensor_names(&self.network).ok_or_else(|| CheckpointError::Inconsistent {
            path: path.to_path_buf(),
            reason: format!("the network {} cannot be built", network_text(&self.network)),
        })?;
        let n: usize = names.iter().map(|(_, shape)| shape.iter().product::<usize>()).sum();
        let dim = self.network.dim();
        for (what, len) in [
            ("params", self.params.len()),
            ("ema", self.ema.len()),
            ("adam_m", self.adam_m.len()),
            ("adam_v", self.adam_v.len()),
        ] {
            if len != n {
                return Err(CheckpointError::Inconsistent {
                    path: path.to_path_buf(),
                    reason: format!("{what} has {len} values, the sizes need {n}"),
                });
            }
        }
        if self.norm.mean.len() != dim || self.norm.std.len() != dim {
            return Err(CheckpointError::Inconsistent {
                path: path.to_path_buf(),
                reason: "normalisation length differs from dim".into(),
            });
        }
        // (name, shape, little-endian bytes)
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        let mut off = 0;
        for (name, shape) in names {
            let r = off..off + shape.iter().product::<usize>();
            off = r.end;
            tensors.push((name.clone(), shape.clone(), le_bytes(&self.params[r.clone()])));
            tensors.push((format!("ema.{name}"), shape.clone(), le_bytes(&self.ema[r.clone()])));
            tensors.push((format!("adam_m.{name}"), shape.clone(), le_bytes(&self.adam_m[r.clone()])));
            tensors.push((format!("adam_v.{name}"), shape, le_bytes(&self.adam_v[r])));
        }
        tensors.push((Role::NormMean.name().into(), vec![dim], le_bytes(&self.norm.mean)));
        tensors.push((Role::NormStd.name().into(), vec![dim], le_bytes(&self.norm.std)));
        let views = tensors
            .iter()
            .map(|(name, shape, bytes)| {
                TensorView::new(Dtype::F32, shape.clone(), bytes).map(|v| (name.as_str(), v))
            })
            .collect::<Result<Vec<_>, _>>()
            .and_then(|views| safetensors::serialize(views, &Some(self.metadata())))
            .map_err(|e| CheckpointError::Inconsistent { path: path.to_path_buf(), reason: e.to_string() })?;

        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let file_name =
            path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "checkpoint".into());
        let tmp = dir.join(format!(".{file_name}.tmp{}", std::process::id()));
        let io =
            |what: &'static str| move |source| CheckpointError::Io { path: path.to_path_buf(), what, source };
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&views)?;
            f.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(io("cannot write the temporary file")(e));
        }
        fs::rename(&tmp, path).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io("cannot rename the temporary file into place")(e)
        })?;
        // Make the rename itself durable (the directory entry); best effort, as not every
        // platform can open a directory for syncing. The old or the new file is whole either way.
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Reads a checkpoint written by [`Checkpoint::save`] or a weights-only safetensors file
    /// (see the module doc for what may be missing).
    pub fn load(path: &Path) -> Result<Self, CheckpointError> {
        let p = || path.to_path_buf();
        if path.is_dir() {
            return Err(CheckpointError::Io {
                path: p(),
                what: "cannot read",
                source: std::io::Error::other("is a directory"),
            });
        }
        let bytes = fs::read(path).map_err(|source| CheckpointError::Io {
            path: p(),
            what: "cannot read",
            source,
        })?;
        let not_st = |e: safetensors::SafeTensorError| CheckpointError::NotSafetensors {
            path: p(),
            reason: e.to_string(),
        };
        let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(not_st)?;
        let st = SafeTensors::deserialize(&bytes).map_err(not_st)?;
        let empty = HashMap::new();
        let md = meta.metadata().as_ref().unwrap_or(&empty);
        if let Some(f) = md.get("format") {
            if f != FORMAT {
                return Err(CheckpointError::Format { path: p(), found: f.clone() });
            }
        }

        // A present tensor's f32 values, checked against `shape`.
        let read = |name: &str,
                    shape: &[usize],
                    net: &Network|
         -> Result<Option<Vec<f32>>, CheckpointError> {
            let view = match st.tensor(name) {
                Ok(v) => v,
                Err(_) => return Ok(None),
            };
            if view.dtype() != Dtype::F32 {
                return Err(CheckpointError::WrongDtype {
                    path: p(),
                    name: name.into(),
                    dtype: format!("{:?}", view.dtype()),
                });
            }
            if view.shape() != shape {
                return Err(CheckpointError::WrongShape {
                    path: p(),
                    name: name.into(),
                    found: view.shape().to_vec(),
                    expected: shape.to_vec(),
                    dims: network_text(net),
                });
            }
            let values: Vec<f32> =
                view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            if values.iter().any(|v| !v.is_finite()) {
                return Err(CheckpointError::BadValue { path: p(), name: name.into() });
            }
            Ok(Some(values))
        };

        let network = Self::network_of(path, md, &st)?;
        let names = tensor_names(&network)
            .ok_or_else(|| CheckpointError::BadDims { path: p(), dims: network_text(&network) })?;
        let count: usize = names.iter().map(|(_, shape)| shape.iter().product::<usize>()).sum();
        let dim = network.dim();
        let (mut params, mut ema, mut m, mut v) = (
            Vec::with_capacity(count),
            Vec::with_capacity(count),
            Vec::with_capacity(count),
            Vec::with_capacity(count),
        );
        let (mut has_ema, mut has_m, mut has_v) = (true, true, true);
        for (name, shape) in &names {
            let name = name.as_str();
            let w = read(name, shape, &network)?
                .ok_or_else(|| CheckpointError::MissingTensor { path: p(), name: name.into() })?;
            for (buf, prefix, present) in [
                (&mut ema, "ema.", &mut has_ema),
                (&mut m, "adam_m.", &mut has_m),
                (&mut v, "adam_v.", &mut has_v),
            ] {
                match read(&format!("{prefix}{name}"), shape, &network)? {
                    Some(x) if *present => buf.extend(x),
                    Some(_) => {}
                    None => *present = false,
                }
            }
            params.extend(w);
        }
        // A partial optimizer state would not resume correctly: all or nothing per kind.
        let ema = if has_ema { ema } else { params.clone() };
        let adam_m = if has_m { m } else { vec![0.0; count] };
        let adam_v = if has_v { v } else { vec![0.0; count] };
        if adam_v.iter().any(|&x| x < 0.0) {
            return Err(CheckpointError::BadValue { path: p(), name: "adam_v".into() });
        }
        let norm = match (read("norm.mean", &[dim], &network)?, read("norm.std", &[dim], &network)?) {
            (Some(mean), Some(std)) => {
                if std.iter().any(|&s| s <= 0.0) {
                    return Err(CheckpointError::BadValue { path: p(), name: "norm.std".into() });
                }
                Normalization { mean, std }
            }
            (None, None) => Normalization::identity(dim),
            (None, Some(_)) => {
                return Err(CheckpointError::MissingTensor { path: p(), name: "norm.mean".into() })
            }
            (Some(_), None) => {
                return Err(CheckpointError::MissingTensor { path: p(), name: "norm.std".into() })
            }
        };

        let def = TrainConfig::default();
        macro_rules! field {
            ($key:literal, $default:expr) => {
                match md.get($key) {
                    None => $default,
                    Some(s) => s.parse().map_err(|_| CheckpointError::BadMetadata {
                        path: p(),
                        key: $key,
                        value: s.clone(),
                    })?,
                }
            };
        }
        let schedule = match md.get("schedule") {
            None => def.schedule,
            Some(s) => parse_schedule(s).ok_or_else(|| CheckpointError::BadMetadata {
                path: p(),
                key: "schedule",
                value: s.clone(),
            })?,
        };
        let sde = match md.get("process") {
            None => None,
            Some(s) => parse_process(s).ok_or_else(|| CheckpointError::BadMetadata {
                path: p(),
                key: "process",
                value: s.clone(),
            })?,
        };
        let weighting = match md.get("weighting").map(String::as_str) {
            None | Some("simple") => Weighting::Simple,
            Some("likelihood") => Weighting::Likelihood,
            Some(other) => {
                return Err(CheckpointError::BadMetadata { path: p(), key: "weighting", value: other.into() })
            }
        };
        // Absent: the uniform draw (every checkpoint before issue 16's option).
        let time_draw = match (md.get("low_noise_share"), md.get("low_noise_max")) {
            (None, None) => TimeDraw::UNIFORM,
            (share, max) => {
                let num = |key: &'static str, v: Option<&String>| -> Result<f32, CheckpointError> {
                    let text = v.map_or("(missing)", String::as_str);
                    text.parse().map_err(|_| CheckpointError::BadMetadata {
                        path: p(),
                        key,
                        value: text.into(),
                    })
                };
                let (s, m) = (num("low_noise_share", share)?, num("low_noise_max", max)?);
                TimeDraw::new(s, m).map_err(|e| CheckpointError::BadMetadata {
                    path: p(),
                    key: if matches!(e, TimeDrawError::Share(_)) {
                        "low_noise_share"
                    } else {
                        "low_noise_max"
                    },
                    value: e.to_string(),
                })?
            }
        };
        let loss = match md.get("loss") {
            None => Loss::Dsm,
            Some(s) => Loss::from_name(s).ok_or_else(|| CheckpointError::BadMetadata {
                path: p(),
                key: "loss",
                value: s.clone(),
            })?,
        };
        let (arch, hidden, blocks) = match network {
            Network::Mlp(d) => (Arch::Mlp, d.hidden, d.blocks),
            Network::Conv(u) => (
                Arch::Conv { channels: u.channels, levels: u.levels, kernel: u.kernel, temb: u.temb },
                u.width,
                u.blocks,
            ),
        };
        let config = TrainConfig {
            arch,
            loss,
            hidden,
            blocks,
            freqs: network.freqs(),
            steps: field!("steps", def.steps),
            batch: field!("batch", def.batch),
            lr: field!("lr", def.lr),
            ema: field!("ema", def.ema),
            seed: field!("seed", def.seed),
            grad_clip: field!("grad_clip", def.grad_clip),
            warmup: field!("warmup", def.warmup),
            diffusion_steps: field!("diffusion_steps", def.diffusion_steps),
            schedule,
            sde,
            t_eps: field!("t_eps", def.t_eps),
            weighting,
            time_draw,
        };
        let step: u64 = field!("step", 0);
        let data_spec = md.get("data").cloned().unwrap_or_default();
        Ok(Self { network, config, step, params, ema, adam_m, adam_v, norm, data_spec })
    }

    /// The network from the metadata: a conv network's sizes all stated, ScoreNet v1's inferred
    /// from the tensors' shapes where absent.
    fn network_of(
        path: &Path,
        md: &HashMap<String, String>,
        st: &SafeTensors<'_>,
    ) -> Result<Network, CheckpointError> {
        match md.get("arch").map(String::as_str) {
            None | Some("mlp") => return Self::dims_of(path, md, st).map(Network::Mlp),
            Some("conv") => {}
            Some(other) => {
                return Err(CheckpointError::BadMetadata {
                    path: path.to_path_buf(),
                    key: "arch",
                    value: other.into(),
                })
            }
        }
        let get = |key: &'static str| -> Result<usize, CheckpointError> {
            let value = md.get(key).cloned();
            value.as_deref().and_then(|s| s.parse().ok()).ok_or_else(|| CheckpointError::BadMetadata {
                path: path.to_path_buf(),
                key,
                value: value.unwrap_or_else(|| "(absent; a conv checkpoint must state it)".into()),
            })
        };
        let (dim, channels) = (get("dim")?, get("channels")?);
        let unet = UNet {
            channels,
            length: dim.checked_div(channels).unwrap_or(0),
            width: get("width")?,
            levels: get("levels")?,
            blocks: get("blocks")?,
            kernel: get("kernel")?,
            freqs: get("freqs")?,
            temb: get("temb")?,
        };
        let network = Network::Conv(unet);
        let ok = channels > 0
            && dim % channels == 0
            && (1..=limits::MAX_DIM).contains(&dim)
            && unet.freqs % 2 == 0
            && unet.freqs > 0
            && network.plan().is_ok();
        if !ok {
            return Err(CheckpointError::BadDims { path: path.to_path_buf(), dims: network_text(&network) });
        }
        Ok(network)
    }

    /// ScoreNet v1's sizes from the metadata, or inferred from the tensors' shapes where absent.
    fn dims_of(
        path: &Path,
        md: &HashMap<String, String>,
        st: &SafeTensors<'_>,
    ) -> Result<Dims, CheckpointError> {
        let shape = |name: &str| st.tensor(name).ok().map(|v| v.shape().to_vec());
        let missing =
            |name: &str| CheckpointError::MissingTensor { path: path.to_path_buf(), name: name.into() };
        // Inferred: dim and hidden from input.w (H, D), freqs from time.w1 (H, F), blocks by
        // counting blocks.<b>.w1.
        let input = shape(Role::InputW.name()).ok_or_else(|| missing(Role::InputW.name()))?;
        let time = shape(Role::TimeW1.name()).ok_or_else(|| missing(Role::TimeW1.name()))?;
        let inferred_blocks =
            (0..limits::MAX_BLOCKS as u8).take_while(|&b| shape(Role::BlockW1(b).name()).is_some()).count();
        let pick = |key: &'static str, inferred: Option<usize>| -> Result<usize, CheckpointError> {
            match md.get(key) {
                Some(s) => s.parse().map_err(|_| CheckpointError::BadMetadata {
                    path: path.to_path_buf(),
                    key,
                    value: s.clone(),
                }),
                None => inferred.ok_or_else(|| CheckpointError::BadMetadata {
                    path: path.to_path_buf(),
                    key,
                    value: "(absent, and not inferable from the tensors)".into(),
                }),
            }
        };
        let two = |s: &[usize], i: usize| if s.len() == 2 { Some(s[i]) } else { None };
        let dims = Dims {
            dim: pick("dim", two(&input, 1))?,
            hidden: pick("hidden", two(&input, 0))?,
            freqs: pick("freqs", two(&time, 1))?,
            blocks: pick("blocks", Some(inferred_blocks))?,
        };
        let ok = (1..=limits::MAX_DIM).contains(&dims.dim)
            && (1..=limits::MAX_HIDDEN).contains(&dims.hidden)
            && (2..=limits::MAX_FREQS).contains(&dims.freqs)
            && dims.freqs % 2 == 0
            && (1..=limits::MAX_BLOCKS).contains(&dims.blocks);
        if !ok {
            return Err(CheckpointError::BadDims { path: path.to_path_buf(), dims: dims_text(&dims) });
        }
        // More blocks in the file than the metadata says: another architecture.
        if dims.blocks < limits::MAX_BLOCKS {
            let extra = Role::BlockW1(dims.blocks as u8).name();
            if shape(extra).is_some() {
                return Err(CheckpointError::BadMetadata {
                    path: path.to_path_buf(),
                    key: "blocks",
                    value: format!("{} (but the file has tensor {extra})", dims.blocks),
                });
            }
        }
        Ok(dims)
    }
}
