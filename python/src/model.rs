//! `tinyscore.Model`'s native half: a parsed `.tsm` file and the engine's calls on it. Inputs and
//! outputs are flat little-endian f32 buffers, row-major (n, D); the Python side shapes them.
//!
//! Each call runs the code of the matching `tinyscore` command on the same inputs: `eps` is
//! `bench --eval-csv`'s network call (batched: `eps_batch`, the same bits as one vector at a
//! time), `sample` is `sample`'s lockstep draw, `denoise`/`impute` are `denoise`'s per-window
//! calls, `likelihood` is `likelihood`'s ODE, `report` is `inspect`'s text.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use tinyscore_engine::denoise::{self, Method};
use tinyscore_engine::footprint::WorkingSet;
use tinyscore_engine::format::{DType, DataKind, Model, Process, Role};
use tinyscore_engine::sampler::draw_batch_with;
use tinyscore_engine::schedule::{BetaSchedule, Sde};
use tinyscore_tools::cli::{Cli, Command, Given, SamplerArg};
use tinyscore_tools::cmd::likelihood::{self as lik, FloatModel, TraceMode};
use tinyscore_tools::cmd::{host_net, par_rows, sample};

use crate::error::{to_py, Error, Result};
use crate::progress;
use crate::{f32_bytes, f32s};

/// The most vectors one `eps_batch` call takes (`tinyscore bench --batch`'s bound); a larger
/// batch is cut into calls of this many.
pub const MAX_EPS_BATCH: usize = tinyscore_tools::cmd::bench::MAX_BATCH;

/// Capacity of the lockstep vector of `sample` (`BATCH` samples of D ≤ 256): the bits do not
/// depend on it (`draw_batch_with` equals one sample at a time), only the stack use does.
const LOCKSTEP_CAPACITY: usize = sample::BATCH * 256;

/// A model as parsed from its bytes.
type Parsed<'a> = Model<'a>;

self_cell::self_cell!(
    /// The file's bytes and the model parsed from them (parsing checks the CRC of the whole file,
    /// about 2 ms for 250 KB: once, at load, not on every call).
    struct Loaded {
        owner: Vec<u8>,
        #[covariant]
        dependent: Parsed,
    }
);

/// A validated model file.
#[pyclass(frozen, module = "tinyscore._native")]
pub struct NativeModel {
    loaded: Loaded,
    /// `eps`'s arenas (one per thread), kept between calls: a batch of 4096 needs megabytes, and
    /// fresh zeroed pages on every call cost about 15 % of an f32 network's time.
    scratch: std::sync::Mutex<Vec<Vec<f32>>>,
}

impl NativeModel {
    /// The parsed file (parsed and checked once, in [`NativeModel::load`]).
    fn model(&self) -> Result<Model<'_>> {
        Ok(self.loaded.borrow_dependent().clone())
    }
}

/// Rows of `bytes` (f32) for a model of dimension `d`: the values and their count.
fn rows(bytes: &[u8], d: usize, what: &str) -> Result<(Vec<f32>, usize)> {
    if bytes.len() % (4 * d.max(1)) != 0 {
        return Err(Error::argument(format!(
            "{what}: {} bytes is not a whole number of rows of D={d} f32",
            bytes.len()
        )));
    }
    let v = f32s(bytes);
    let n = v.len() / d.max(1);
    Ok((v, n))
}

fn anyhow_err(class: &'static str) -> impl Fn(anyhow::Error) -> Error {
    move |e| Error::from_anyhow(class, &e)
}

#[pymethods]
impl NativeModel {
    /// Parses and checks `data` (the bytes of a `.tsm` file) and that the host engine runs it.
    #[staticmethod]
    fn load(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        let loaded = Loaded::try_new(data.to_vec(), |bytes| {
            Model::parse(bytes)
                .map_err(|e| Error::typed("ModelFileError", &e, format!("invalid model file: {e}")))
        });
        let me = Self { loaded: to_py(py, loaded)?, scratch: std::sync::Mutex::new(Vec::new()) };
        let checked = (|| -> Result<()> {
            let model = me.model()?;
            model
                .process()
                .diffusion()
                .map_err(|e| Error::typed("ModelFileError", &e, format!("invalid diffusion process: {e}")))?;
            host_net(model).map_err(anyhow_err("CapacityError"))?;
            Ok(())
        })();
        to_py(py, checked)?;
        Ok(me)
    }

    /// The file's bytes.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.loaded.borrow_owner())
    }

    /// D, the values per sample.
    #[getter]
    fn dim(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(to_py(py, self.model())?.dim())
    }

    /// What `tinyscore inspect` prints for this file, named `name`.
    fn report(&self, py: Python<'_>, name: &str) -> PyResult<String> {
        let model = to_py(py, self.model())?;
        Ok(tinyscore_tools::cmd::inspect::report(name, &model))
    }

    /// The header, network, process, flash and RAM as a dict.
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let model = to_py(py, self.model())?;
        let h = model.header();
        let g = model.graph();
        let info = PyDict::new(py);
        info.set_item("version", h.version)?;
        info.set_item("quant_version", h.quant_version)?;
        info.set_item("precision", tinyscore_tools::cmd::bench::precision(&model))?;
        info.set_item("crc32", h.crc)?;
        let data = model.data();
        let kind = match data.kind {
            DataKind::Points => "points",
            DataKind::Signal => "signal",
            DataKind::Image { .. } => "image",
        };
        info.set_item("data", kind)?;
        info.set_item("dim", data.dim())?;
        info.set_item("channels", data.channels)?;
        info.set_item("length", data.length)?;
        match g.mlp_dims() {
            Some(d) => {
                info.set_item("network", "scorenet-v1")?;
                info.set_item("hidden", d.hidden)?;
                info.set_item("freqs", d.freqs)?;
                info.set_item("blocks", d.blocks)?;
            }
            None => info.set_item("network", "graph")?,
        }
        info.set_item("layers", g.len())?;
        // The layer graph as the file plans it: each layer's op, output shape, branch and offset.
        let graph = pyo3::types::PyList::empty(py);
        for l in g.layers() {
            let layer = PyDict::new(py);
            layer.set_item("op", crate::error::variant(&l.op))?;
            layer.set_item("channels", l.shape.channels)?;
            layer.set_item("length", l.shape.length)?;
            layer.set_item("branch", crate::error::variant(&l.branch).to_lowercase())?;
            layer.set_item("offset", l.offset)?;
            graph.append(layer)?;
        }
        info.set_item("graph", graph)?;
        info.set_item("macs", g.macs())?;
        let params: usize = model
            .tensors()
            .skip(2)
            .filter(|t| !matches!(t.role, Role::ActScales | Role::ActRequant | Role::ActLut))
            .map(|t| t.rows * t.cols)
            .sum();
        info.set_item("parameters", params)?;
        let process = PyDict::new(py);
        match model.process() {
            Process::VpDiscrete { steps, schedule } => {
                process.set_item("kind", "vp")?;
                process.set_item("steps", steps)?;
                match schedule {
                    BetaSchedule::Linear { beta_start, beta_end } => {
                        process.set_item("schedule", "linear")?;
                        process.set_item("beta_start", beta_start)?;
                        process.set_item("beta_end", beta_end)?;
                    }
                    BetaSchedule::Cosine { s } => {
                        process.set_item("schedule", "cosine")?;
                        process.set_item("s", s)?;
                    }
                }
            }
            Process::Sde { steps, sde, t_eps } => {
                process.set_item("steps", steps)?;
                process.set_item("t_eps", t_eps)?;
                let (kind, a, b, names) = match sde {
                    Sde::Vp { beta_min, beta_max } => ("vpsde", beta_min, beta_max, ["beta_min", "beta_max"]),
                    Sde::SubVp { beta_min, beta_max } => {
                        ("subvp", beta_min, beta_max, ["beta_min", "beta_max"])
                    }
                    Sde::Ve { sigma_min, sigma_max } => {
                        ("ve", sigma_min, sigma_max, ["sigma_min", "sigma_max"])
                    }
                };
                process.set_item("kind", kind)?;
                process.set_item(names[0], a)?;
                process.set_item(names[1], b)?;
            }
        }
        info.set_item("process", process)?;
        if model.is_int8() {
            info.set_item("groups", model.groups())?;
        }
        info.set_item("file_bytes", h.file_len)?;
        info.set_item("flash_bytes", h.file_len)?;
        info.set_item("activation_bytes", h.ram_bytes)?;
        let ws = WorkingSet::of_model(&model);
        let ram = PyDict::new(py);
        ram.set_item("arena", ws.arena)?;
        ram.set_item("network", ws.network)?;
        ram.set_item("model", ws.model)?;
        ram.set_item("process", ws.process)?;
        ram.set_item("vectors", ws.vectors)?;
        ram.set_item("total", ws.total())?;
        info.set_item("ram_bytes", ram)?;
        Ok(info)
    }

    /// ε̂ for each row of `x` (normalised, (n, D) f32) at the time of its row in `t` (n values,
    /// or one for all), on `threads` threads; rows with equal consecutive times go through
    /// `eps_batch` together (up to [`MAX_EPS_BATCH`] at once).
    #[pyo3(signature = (x, t, threads, progress=None))]
    fn eps<'py>(
        &self,
        py: Python<'py>,
        x: &[u8],
        t: &[u8],
        threads: usize,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let model = to_py(py, self.model())?;
        let d = model.dim();
        let (xs, n) = to_py(py, rows(x, d, "x"))?;
        let ts = f32s(t);
        if ts.len() != 1 && ts.len() != n {
            return Err(Error::argument(format!("t has {} values, expected 1 or {n}", ts.len())).into_py(py));
        }
        let net = to_py(py, host_net(model).map_err(anyhow_err("CapacityError")))?;
        let threads = threads.clamp(1, n.max(1));
        let chunk = n.div_ceil(threads).max(1);
        let scratch_rows = chunk.min(MAX_EPS_BATCH);
        let scratch_len = net.batch_scratch_len(scratch_rows);
        let mut arenas: Vec<Vec<f32>> = {
            let mut pool = self.scratch.lock().unwrap_or_else(|p| p.into_inner());
            (0..n.div_ceil(chunk)).map(|_| pool.pop().unwrap_or_default()).collect()
        };
        let out = progress::run(py, n as u64, progress, |tick| {
            let mut out = vec![0.0f32; n * d];
            let time = |i: usize| if ts.len() == 1 { ts[0] } else { ts[i] };
            std::thread::scope(|scope| {
                let mut handles = Vec::new();
                let parts = xs.chunks(chunk * d).zip(out.chunks_mut(chunk * d)).zip(arenas.iter_mut());
                for (c, ((xs, outs), scratch)) in parts.enumerate() {
                    let mut net = net.clone();
                    handles.push(scope.spawn(move || -> anyhow::Result<()> {
                        // The walk overwrites what it reads, so an arena is reused as it is.
                        if scratch.len() < scratch_len {
                            scratch.resize(scratch_len, 0.0);
                        }
                        let rows = xs.len() / d;
                        let mut i = 0;
                        while i < rows {
                            tick.check()?;
                            // A run of rows at the same time, at most MAX_EPS_BATCH long.
                            let t0 = time(c * chunk + i);
                            let mut j = i + 1;
                            while j < rows
                                && j - i < scratch_rows
                                && time(c * chunk + j).to_bits() == t0.to_bits()
                            {
                                j += 1;
                            }
                            tinyscore_tools::simd::eps_batch(
                                &mut net,
                                &xs[i * d..j * d],
                                t0,
                                &mut outs[i * d..j * d],
                                scratch,
                            );
                            tick.pb.inc((j - i) as u64);
                            i = j;
                        }
                        Ok(())
                    }));
                }
                for h in handles {
                    h.join().map_err(|_| anyhow::anyhow!("a worker thread panicked"))??;
                }
                Ok(())
            })
            .map_err(anyhow_err("TinyscoreError"))?;
            Ok(out)
        });
        self.scratch.lock().unwrap_or_else(|p| p.into_inner()).extend(arenas);
        Ok(PyBytes::new(py, &f32_bytes(&out?)))
    }

    /// `tinyscore sample MODEL --n N --seed SEED FLAGS…` (flags as on the command line, e.g.
    /// `["--sampler", "ddim", "--steps", "50"]`): the samples, (n, D) f32 in data units.
    #[pyo3(signature = (n, seed, flags, progress=None))]
    fn sample<'py>(
        &self,
        py: Python<'py>,
        n: u32,
        seed: u64,
        flags: Vec<String>,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let model = to_py(py, self.model())?;
        let (args, given) = to_py(py, sample_args(n, seed, &flags))?;
        to_py(py, check_sampler_flags(args.sampler, &given))?;
        let d = model.dim();
        if n == 0 {
            return Err(Error::argument("n must be at least 1").into_py(py));
        }
        if n as usize > sample::MAX_VALUES / d {
            return Err(Error::argument(format!(
                "n {n} x D={d} is more than {} values; draw at most {} samples per call",
                sample::MAX_VALUES,
                sample::MAX_VALUES / d
            ))
            .into_py(py));
        }
        let plan = sample::plan(&args, model.process().steps());
        let schedule = to_py(
            py,
            model
                .process()
                .diffusion()
                .map_err(|e| Error::typed("ModelFileError", &e, format!("invalid diffusion process: {e}"))),
        )?;
        let file_steps = model.process().steps();
        to_py(
            py,
            plan.sampler.check(&schedule).map_err(|e| {
                let msg = match e {
                    tinyscore_engine::sampler::SamplerError::Steps { .. } => {
                        format!("steps: {e} (the file's N is {file_steps})")
                    }
                    _ => format!("sampler {}: {e}", plan.sampler.name()),
                };
                Error::typed("SamplerError", &e, msg)
            }),
        )?;
        let net = to_py(py, host_net(model).map_err(anyhow_err("CapacityError")))?;
        let samples = progress::run(py, n as u64, progress, |tick| {
            let mut samples = vec![0.0f32; n as usize * d];
            // `tinyscore sample`'s draw (`cmd::sample::draw_samples`), with the progress and
            // cancellation of a Python call: blocks of k samples in lockstep, in parallel.
            let k = sample::lockstep_batch(d);
            let scratch = vec![0.0f32; net.batch_scratch_len(k)];
            let hidden = indicatif::ProgressBar::hidden();
            par_rows(&mut samples, k * d, &(net, scratch), &hidden, |(net, scratch), b, block| {
                tick.check()?;
                draw_batch_with::<LOCKSTEP_CAPACITY, _, _, _, _>(
                    net,
                    &schedule,
                    &plan,
                    seed,
                    (b * k) as u32,
                    scratch,
                    block,
                    tinyscore_tools::simd::eps_batch,
                )
                .map_err(|e| anyhow::Error::new(SamplerFailure(e)))?;
                tick.pb.inc((block.len() / d) as u64);
                Ok(())
            })
            .map_err(|e| match e.downcast_ref::<SamplerFailure>() {
                Some(SamplerFailure(s)) => Error::typed("SamplerError", s, format!("sampling: {s}")),
                None => Error::from_anyhow("TinyscoreError", &e),
            })?;
            Ok(samples)
        })?;
        Ok(PyBytes::new(py, &f32_bytes(&samples)))
    }

    /// `tinyscore denoise` on the rows of `y` (data units): `sigma` None is `--sigma auto`;
    /// method `tweedie` or `sdedit` (with `steps`, `draws`, `seed`).
    #[pyo3(signature = (y, sigma, method, steps, draws, seed, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn denoise<'py>(
        &self,
        py: Python<'py>,
        y: &[u8],
        sigma: Option<f32>,
        method: &str,
        steps: u32,
        draws: u32,
        seed: u64,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let model = to_py(py, self.model())?;
        let d = model.dim();
        let (values, _) = to_py(py, rows(y, d, "y"))?;
        let method = match method {
            "tweedie" => Method::Tweedie,
            "sdedit" => Method::Sdedit { steps, draws },
            other => {
                return Err(Error::argument(format!("method must be 'tweedie' or 'sdedit', got '{other}'"))
                    .into_py(py))
            }
        };
        if let Method::Sdedit { .. } = method {
            to_py(py, check_settings(steps, draws, 1))?;
        }
        let sigma = match sigma {
            Some(s) if s.is_finite() && s >= 0.0 => s,
            Some(s) => {
                return Err(
                    Error::argument(format!("sigma must be a finite number >= 0, got {s}")).into_py(py)
                )
            }
            None => {
                // `--sigma auto`: the pooled MAD of the first differences of every window.
                let mut diffs: Vec<f32> =
                    values.chunks_exact(d).flat_map(|w| w.windows(2).map(|p| p[1] - p[0])).collect();
                if diffs.is_empty() {
                    return Err(
                        Error::argument("sigma=None (auto) needs windows of at least 2 values").into_py(py)
                    );
                }
                denoise::sigma_from_differences(&mut diffs)
            }
        };
        let out = self.per_window(py, model, values, progress, |net, diffusion, i, row| {
            denoise::denoise(net, diffusion, method, sigma, seed, i as u32, row)
        })?;
        Ok(PyBytes::new(py, &f32_bytes(&out)))
    }

    /// `tinyscore denoise --mask`: fills the entries of the rows of `y` whose `mask` byte is 0.
    #[pyo3(signature = (y, mask, steps, draws, resample, seed, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn impute<'py>(
        &self,
        py: Python<'py>,
        y: &[u8],
        mask: &[u8],
        steps: u32,
        draws: u32,
        resample: u32,
        seed: u64,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let model = to_py(py, self.model())?;
        let d = model.dim();
        let (values, _) = to_py(py, rows(y, d, "y"))?;
        if mask.len() != values.len() {
            return Err(Error::argument(format!("mask has {} values, y has {}", mask.len(), values.len()))
                .into_py(py));
        }
        if let Some(v) = mask.iter().find(|v| **v > 1) {
            return Err(Error::argument(format!("mask values must be 0 or 1, found {v}")).into_py(py));
        }
        to_py(py, check_settings(steps, draws, resample))?;
        let known: Vec<bool> = mask.iter().map(|v| *v == 1).collect();
        let out = self.per_window(py, model, values, progress, |net, diffusion, i, row| {
            denoise::impute(
                net,
                diffusion,
                steps,
                draws,
                resample,
                seed,
                i as u32,
                &known[i * d..(i + 1) * d],
                row,
            )
        })?;
        Ok(PyBytes::new(py, &f32_bytes(&out)))
    }

    /// `tinyscore likelihood` on the rows of `x` (data units): log p(x) in nats per point, data
    /// units (f64), and the trace mode used. `hutchinson` None and `exact` false: exact for
    /// D ≤ 64, else 16 probes (the command's default).
    #[pyo3(signature = (x, steps, exact, hutchinson, seed, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn likelihood<'py>(
        &self,
        py: Python<'py>,
        x: &[u8],
        steps: u32,
        exact: bool,
        hutchinson: Option<usize>,
        seed: u64,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<(Bound<'py, PyBytes>, String)> {
        let model = to_py(py, self.model())?;
        let fm = to_py(py, float_model(&model))?;
        let d = fm.dims.dim;
        let (mut xs, n) = to_py(py, rows(x, d, "x"))?;
        if steps == 0 || steps > lik::MAX_STEPS {
            return Err(
                Error::argument(format!("steps must be in 1..={}, got {steps}", lik::MAX_STEPS)).into_py(py)
            );
        }
        if n > lik::MAX_POINTS {
            return Err(
                Error::argument(format!("at most {} points per call, got {n}", lik::MAX_POINTS)).into_py(py)
            );
        }
        let mode = match (exact, hutchinson) {
            (true, Some(_)) => {
                return Err(Error::argument("exact=True and hutchinson=K exclude each other").into_py(py))
            }
            (true, None) => TraceMode::Exact,
            (false, Some(k)) if k == 0 || k > lik::MAX_PROBES => {
                return Err(Error::argument(format!(
                    "hutchinson must be in 1..={}, got {k}",
                    lik::MAX_PROBES
                ))
                .into_py(py))
            }
            (false, Some(k)) => TraceMode::Hutchinson(k),
            (false, None) if d <= lik::AUTO_EXACT_MAX_DIM => TraceMode::Exact,
            (false, None) => TraceMode::Hutchinson(lik::DEFAULT_PROBES),
        };
        for row in xs.chunks_exact_mut(d) {
            for ((v, &m), &s) in row.iter_mut().zip(&fm.mean).zip(&fm.std) {
                *v = (*v - m) / s;
            }
        }
        let log_det: f64 = -fm.std.iter().map(|&s| (s as f64).ln()).sum::<f64>();
        let logp = progress::run(py, n as u64, progress, |tick| {
            lik::log_likelihoods(&fm, &xs, steps, mode, seed, tick.pb).map_err(anyhow_err("TinyscoreError"))
        })?;
        let bytes: Vec<u8> = logp.iter().flat_map(|l| (l + log_det).to_le_bytes()).collect();
        let mode = match mode {
            TraceMode::Exact => "exact".to_string(),
            TraceMode::Hutchinson(k) => format!("hutchinson:{k}"),
        };
        Ok((PyBytes::new(py, &bytes), mode))
    }
}

impl NativeModel {
    /// Runs `work(net, diffusion, i, row)` on every row (data units) in parallel, as
    /// `tinyscore denoise` does; returns the rows.
    fn per_window<'py>(
        &self,
        py: Python<'py>,
        model: Model<'_>,
        mut values: Vec<f32>,
        progress: Option<&Bound<'py, PyAny>>,
        work: impl Fn(
                &mut tinyscore_tools::cmd::HostNet<'_>,
                &tinyscore_engine::schedule::Diffusion,
                usize,
                &mut [f32],
            ) -> std::result::Result<(), denoise::DenoiseError>
            + Sync
            + Send,
    ) -> PyResult<Vec<f32>> {
        let d = model.dim();
        let n = values.len() / d.max(1);
        let diffusion = to_py(
            py,
            model
                .process()
                .diffusion()
                .map_err(|e| Error::typed("ModelFileError", &e, format!("invalid diffusion process: {e}"))),
        )?;
        let net = to_py(py, host_net(model).map_err(anyhow_err("CapacityError")))?;
        progress::run(py, n as u64, progress, |tick| {
            par_rows(&mut values, d, &net, tick.pb, |net, i, row| {
                tick.check()?;
                work(net, &diffusion, i, row).map_err(|e| anyhow::Error::new(DenoiseFailure(e, i)))
            })
            .map_err(|e| match e.downcast_ref::<DenoiseFailure>() {
                Some(DenoiseFailure(f, i)) => Error::typed("DenoiseError", f, format!("window {i}: {f}")),
                None => Error::from_anyhow("TinyscoreError", &e),
            })?;
            Ok(values)
        })
    }
}

/// A sampler error, carried through `anyhow` so that its variant reaches Python.
#[derive(Debug)]
struct SamplerFailure(tinyscore_engine::sampler::SamplerError);

impl std::fmt::Display for SamplerFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for SamplerFailure {}

/// A denoiser error of window `.1`, carried through `anyhow`.
#[derive(Debug)]
struct DenoiseFailure(denoise::DenoiseError, usize);

impl std::fmt::Display for DenoiseFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "window {}: {}", self.1, self.0)
    }
}

impl std::error::Error for DenoiseFailure {}

/// `tinyscore denoise`'s checks of steps, draws and resample.
fn check_settings(steps: u32, draws: u32, resample: u32) -> Result<()> {
    if steps == 0 || steps > 1000 {
        return Err(Error::argument(format!("steps must be in 1..=1000, got {steps}")));
    }
    if draws == 0 || draws > denoise::MAX_DRAWS {
        return Err(Error::argument(format!("draws must be in 1..={}, got {draws}", denoise::MAX_DRAWS)));
    }
    if resample == 0 || resample > denoise::MAX_RESAMPLE {
        return Err(Error::argument(format!(
            "resample must be in 1..={}, got {resample}",
            denoise::MAX_RESAMPLE
        )));
    }
    Ok(())
}

/// The `tinyscore sample` arguments of `flags`, parsed by the command's own parser (so defaults
/// and value names are the command's), with the flags given.
fn sample_args(n: u32, seed: u64, flags: &[String]) -> Result<(sample::SampleArgs, Given)> {
    use clap::{CommandFactory, FromArgMatches};
    let (n, seed) = (n.to_string(), seed.to_string());
    let mut argv: Vec<&str> =
        vec!["tinyscore", "sample", "model.tsm", "--out", "-", "--n", &n, "--seed", &seed];
    argv.extend(flags.iter().map(String::as_str));
    let matches = Cli::command()
        .try_get_matches_from(argv)
        .map_err(|e| Error::argument(tinyscore_tools::cli::one_line(&e.render().to_string())))?;
    let cli = Cli::from_arg_matches(&matches).map_err(|e| Error::argument(e.to_string()))?;
    let given = matches.subcommand().map(|(_, m)| Given::from_matches(m)).unwrap_or_default();
    match cli.command {
        Command::Sample(a) => Ok((a, given)),
        _ => Err(Error::argument("not a sample command")),
    }
}

/// Refuses a sampler setting given for a sampler that does not use it (as `tinyscore sample`).
fn check_sampler_flags(sampler: SamplerArg, given: &Given) -> Result<()> {
    let uses = |id: &str| match id {
        "variance" => sampler == SamplerArg::Ddpm,
        "eta" => sampler == SamplerArg::Ddim,
        "snr" | "predictor" => sampler == SamplerArg::Pc,
        "corrector_steps" => matches!(sampler, SamplerArg::Pc | SamplerArg::Langevin),
        "langevin_step" => sampler == SamplerArg::Langevin,
        _ => true,
    };
    for id in ["variance", "eta", "snr", "predictor", "corrector_steps", "langevin_step"] {
        if given.has(id) && !uses(id) {
            let name = clap::ValueEnum::to_possible_value(&sampler)
                .map(|v| v.get_name().to_string())
                .unwrap_or_default();
            return Err(Error::argument(format!("{id} has no effect with sampler '{name}'")));
        }
    }
    Ok(())
}

/// The f32 network of `tinyscore likelihood` for a `.tsm` file (`cmd::likelihood::load_float_model`
/// reads a path; this is its `.tsm` branch on bytes already parsed).
fn float_model(model: &Model<'_>) -> Result<FloatModel> {
    if model.is_int8() {
        return Err(Error::new(
            "TinyscoreError",
            "Int8Likelihood",
            "a w8a8 model runs integer activations, which have no Jacobian; measure the f32, f16 or w8 file or the checkpoint",
        ));
    }
    if model.graph().mlp_dims().is_none() {
        return Err(Error::new(
            "TinyscoreError",
            "Unsupported",
            "the likelihood needs a ScoreNet v1 (MLP) model",
        ));
    }
    let dims = model.dims();
    let mut params = Vec::with_capacity(dims.param_count());
    for (role, rows, cols) in dims.params() {
        let t = model.tensor(role);
        if !matches!(t.dtype, DType::F32 | DType::F16 | DType::I8) {
            return Err(Error::new(
                "ModelFileError",
                "WrongDtype",
                format!("tensor {} has dtype {}, not a weight dtype", role.name(), t.dtype.name()),
            ));
        }
        params.extend((0..rows * cols).map(|i| t.get(i)));
    }
    let diffusion = model
        .process()
        .diffusion()
        .map_err(|e| Error::typed("ModelFileError", &e, format!("invalid diffusion process: {e}")))?;
    let norm = |role| {
        let t = model.tensor(role);
        (0..dims.dim).map(|i| t.get(i)).collect::<Vec<f32>>()
    };
    Ok(FloatModel {
        dims,
        params,
        diffusion,
        mean: norm(Role::NormMean),
        std: norm(Role::NormStd),
        source: "dequantised .tsm weights".into(),
    })
}
