//! The CUDA versions of the training kernels, compiled at start-up by NVRTC and launched through
//! `cudarc` (driver API, loaded at run time: the project builds, and runs as "no GPU", on
//! machines without CUDA).
//!
//! Sources: `kernels/cuda/` (`common.cuh` and one file per family). Each kernel's meaning is its
//! CPU twin ([`crate::cpu`], composed in [`crate::fused`]); `kernels/tests/cuda.rs` holds every
//! kernel against its twin on awkward sizes.
//!
//! Buffers are addressed by raw device pointers ([`DPtr`]) so that layers can be views into one
//! flat parameter buffer; [`DevBuf`] owns the memory. Every launch goes to one stream, in order,
//! and nothing here synchronises with the host except the explicit downloads.

use std::fmt;
use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DeviceRepr, LaunchConfig};
use cudarc::driver::{PushKernelArg, ValidAsZeroBits};
use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};
use tinyscore_engine::schedule::{Diffusion, Sde};

use crate::conv::Conv1d;

mod elementwise;

/// The common header, pasted in place of `#include "common.cuh"` (NVRTC gets one string).
pub const COMMON: &str = include_str!("../cuda/common.cuh");

/// Every kernel source: (file name, text, kernels it defines).
pub const SOURCES: [(&str, &str, &[&str]); 6] = [
    ("dsm.cu", include_str!("../cuda/dsm.cu"), &["dsm_rows", "dsm_noise"]),
    ("gemm.cu", include_str!("../cuda/gemm.cu"), &["gemm", "sum_splits", "col_sum", "add_into"]),
    ("loss.cu", include_str!("../cuda/loss.cu"), &["mse_grad", "loss_finish"]),
    ("adam.cu", include_str!("../cuda/adam.cu"), &["sq_partials", "step_scalars", "adam_ema"]),
    (
        "conv.cu",
        include_str!("../cuda/conv.cu"),
        &[
            "conv1d_fwd",
            "conv1d_bwd_input",
            "conv1d_bwd_weight",
            "conv_sum_splits",
            "upsample2_fwd",
            "upsample2_bwd",
            "channel_bias_fwd",
            "channel_bias_bwd",
        ],
    ),
    (
        "elementwise.cu",
        include_str!("../cuda/elementwise.cu"),
        &["silu_fwd_sig", "silu_bwd_sig", "fill_zero", "add2", "transpose_rows"],
    ),
];

/// Slots of the device-resident run state (`u64` each; `STATE_*` in `common.cuh`).
pub mod state {
    /// Optimisation steps done.
    pub const STEP: usize = 0;
    /// Learning rate of the last step (f32 bits).
    pub const LR: usize = 1;
    /// Gradient scale of the last step (f32 bits).
    pub const CLIP: usize = 4;
    /// Σ loss since the last reset (f64 bits).
    pub const LOSS_SUM: usize = 5;
    /// Steps since the last reset.
    pub const LOSS_COUNT: usize = 6;
    /// ‖g‖ before clipping of the last step (f64 bits).
    pub const NORM: usize = 7;
    /// Number of slots.
    pub const LEN: usize = 8;
}

/// Threads per block of the element-wise and reduction kernels (`LOSS_THREADS`, `ADAM_THREADS`).
pub const THREADS: u32 = 256;
/// Output tile of the GEMM (`BM`, `BN`) and its depth (`BK`).
pub const GEMM_TILE: usize = 64;
/// Depth of one GEMM tile step: split-K slices are multiples of it.
pub const GEMM_BK: usize = 16;

/// Why the GPU could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GpuError {
    /// The CUDA driver library (`libcuda.so`) could not be loaded.
    NoDriver,
    /// The driver loaded but reports no usable device.
    NoDevice(String),
    /// NVRTC (`libnvrtc.so`) could not be loaded.
    NoNvrtc,
    /// A kernel source did not compile (file, NVRTC log).
    Compile(String, String),
    /// A driver call failed.
    Driver(String),
    /// The run asks for something the GPU backend does not do.
    Unsupported(String),
}

impl fmt::Display for GpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoDriver => write!(
                f,
                "no CUDA driver found (libcuda.so could not be loaded): --device cuda needs an NVIDIA GPU \
                 and its driver; use --device cpu"
            ),
            Self::NoDevice(e) => write!(f, "no CUDA device found (the driver says {e}); use --device cpu"),
            Self::NoNvrtc => write!(
                f,
                "NVRTC (libnvrtc.so, CUDA 13) could not be loaded: it compiles the kernels at start-up; \
                 install the CUDA runtime compiler or add its directory to LD_LIBRARY_PATH"
            ),
            Self::Compile(file, log) => write!(f, "kernels/cuda/{file} did not compile: {log}"),
            Self::Driver(e) => write!(f, "CUDA driver error: {e}"),
            Self::Unsupported(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for GpuError {}

fn driver<E: fmt::Debug>(e: E) -> GpuError {
    GpuError::Driver(format!("{e:?}"))
}

/// A launch's result without its (unused) timing events.
fn done<T, E: fmt::Debug>(r: Result<T, E>) -> Result<(), GpuError> {
    r.map(|_| ()).map_err(driver)
}

/// The source of `file` with the common header pasted in.
pub fn full_source(src: &str) -> String {
    let header = COMMON.replace("#pragma once", "");
    src.replace("#include \"common.cuh\"", &header)
}

/// Whether the NVRTC library can be loaded (without loading the driver).
pub fn nvrtc_available() -> bool {
    // SAFETY: `is_culib_present` only tries `dlopen` on candidate names; it has no other effect.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Whether the CUDA driver library can be loaded.
pub fn driver_available() -> bool {
    // SAFETY: as above, a `dlopen` attempt.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// The number of CUDA devices (0 without a driver or device; never panics).
pub fn device_count() -> usize {
    if !driver_available() {
        return 0;
    }
    CudaContext::device_count().map(|n| n.max(0) as usize).unwrap_or(0)
}

/// Compiles every source to PTX for `arch` (e.g. `"compute_90"`): the check that needs NVRTC but
/// no GPU. Returns (file, PTX text) pairs.
pub fn compile_all(arch: Option<&'static str>) -> Result<Vec<(&'static str, String)>, GpuError> {
    if !nvrtc_available() {
        return Err(GpuError::NoNvrtc);
    }
    SOURCES
        .iter()
        .map(|&(file, src, _)| {
            let opts = CompileOptions {
                // a·b + c rounds twice, as in the CPU twins.
                fmad: Some(false),
                arch,
                options: vec!["--std=c++17".into()],
                ..Default::default()
            };
            let ptx = compile_ptx_with_opts(full_source(src), opts)
                .map_err(|e| GpuError::Compile(file.to_string(), format!("{e:?}")))?;
            Ok((file, ptx.to_src()))
        })
        .collect()
}

/// A device address (bytes), possibly null (an absent optional operand).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DPtr(pub u64);

impl DPtr {
    /// The null pointer: "no such operand".
    pub const NULL: Self = Self(0);

    /// The address `elems` f32 (4-byte) elements further.
    pub fn f32_at(self, elems: usize) -> Self {
        Self(self.0 + 4 * elems as u64)
    }
}

/// Owned device memory of `len` elements of `T`, with its address.
#[derive(Debug)]
pub struct DevBuf<T> {
    slice: CudaSlice<T>,
    ptr: DPtr,
}

impl<T> DevBuf<T> {
    /// Its address.
    pub fn ptr(&self) -> DPtr {
        self.ptr
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.slice.len()
    }

    /// Whether it holds no element.
    pub fn is_empty(&self) -> bool {
        self.slice.len() == 0
    }
}

/// The loaded kernels.
#[derive(Clone, Debug)]
struct Funcs {
    dsm_rows: CudaFunction,
    dsm_noise: CudaFunction,
    gemm: CudaFunction,
    sum_splits: CudaFunction,
    col_sum: CudaFunction,
    add_into: CudaFunction,
    mse_grad: CudaFunction,
    loss_finish: CudaFunction,
    sq_partials: CudaFunction,
    step_scalars: CudaFunction,
    adam_ema: CudaFunction,
    conv1d_fwd: CudaFunction,
    conv1d_bwd_input: CudaFunction,
    conv1d_bwd_weight: CudaFunction,
    conv_sum_splits: CudaFunction,
    upsample2_fwd: CudaFunction,
    upsample2_bwd: CudaFunction,
    channel_bias_fwd: CudaFunction,
    channel_bias_bwd: CudaFunction,
    silu_fwd_sig: CudaFunction,
    silu_bwd_sig: CudaFunction,
    fill_zero: CudaFunction,
    add2: CudaFunction,
    transpose_rows: CudaFunction,
}

/// One GPU: its context, the one stream every launch goes to, and the compiled kernels. A clone
/// shares all three.
#[derive(Clone, Debug)]
pub struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    f: Funcs,
    name: String,
    sms: u32,
}

/// One GEMM launch (see `kernels/cuda/gemm.cu`): `C(m, n) = Σ_k A(m, k)·B(n, k)` with strides,
/// then the epilogue. Pointers that are [`DPtr::NULL`] skip their stage.
#[derive(Clone, Copy, Debug, Default)]
pub struct Gemm {
    /// Rows of C.
    pub m: usize,
    /// Columns of C.
    pub n: usize,
    /// The summed dimension.
    pub k: usize,
    /// A and its strides (row m, column k).
    pub a: DPtr,
    /// Stride of A's m index.
    pub a_sm: usize,
    /// Stride of A's k index.
    pub a_sk: usize,
    /// B and its strides.
    pub b: DPtr,
    /// Stride of B's n index.
    pub b_sn: usize,
    /// Stride of B's k index.
    pub b_sk: usize,
    /// C, row-major with row stride `n`.
    pub c: DPtr,
    /// `+ bias[n]`.
    pub bias: DPtr,
    /// `+ add[m, n]`.
    pub add: DPtr,
    /// `· silu'(pre[m, n])` with the kept σ `pre_sig`.
    pub pre: DPtr,
    /// σ(pre).
    pub pre_sig: DPtr,
    /// `C += v` instead of `C = v`.
    pub accumulate: bool,
    /// Also write `silu(v)` here and σ(v) to `sig`.
    pub act: DPtr,
    /// σ(v).
    pub sig: DPtr,
}

fn blocks(n: usize, per: u32) -> u32 {
    n.div_ceil(per as usize).max(1) as u32
}

fn linear_cfg(n: usize) -> LaunchConfig {
    LaunchConfig { grid_dim: (blocks(n, THREADS), 1, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 }
}

/// The process of a DSM draw as the kernel sees it.
#[derive(Clone, Copy, Debug)]
pub enum DsmProcess {
    /// Discrete VP: N and tables indexed by n = 0..=N (time, α, σ, likelihood weight).
    Discrete {
        /// N.
        steps: u32,
        /// (N + 1,) t_n.
        time: DPtr,
        /// (N + 1,) √ᾱ_n.
        alpha: DPtr,
        /// (N + 1,) √(1 − ᾱ_n).
        sigma: DPtr,
        /// (N + 1,) g²/σ² at t_n.
        weight: DPtr,
    },
    /// A continuous SDE: kind 1 VP, 2 sub-VP, 3 VE, its two parameters, and t_ε.
    Sde {
        /// 1, 2 or 3.
        kind: i32,
        /// β_min or σ_min.
        p0: f32,
        /// β_max or σ_max.
        p1: f32,
        /// t_ε.
        t_eps: f32,
    },
}

/// The discrete VP process's tables for `dsm_rows`, indexed by n = 0..=N (entry 0 unused):
/// t_n, √ᾱ_n, √(1 − ᾱ_n), and the likelihood weight g²/σ² at t_n, all from the engine's
/// schedule (its one definition). `None` for a continuous SDE.
pub fn discrete_tables(process: &Diffusion) -> Option<[Vec<f32>; 4]> {
    let Diffusion::Discrete(d) = process else { return None };
    let n = d.steps() as usize;
    let table =
        |f: &dyn Fn(usize) -> f32| (0..=n).map(|k| if k == 0 { 0.0 } else { f(k) }).collect::<Vec<f32>>();
    let weight = |k: usize| {
        let t = d.time(k);
        let (_, g2) = process.coefficients(t);
        let (_, s) = process.marginal(t);
        g2 / (s * s)
    };
    Some([table(&|k| d.time(k)), table(&|k| d.alpha(k)), table(&|k| d.sigma(k)), table(&weight)])
}

/// The [`DsmProcess`] of `process`, with the device addresses of its [`discrete_tables`]
/// (time, α, σ, weight) for the discrete process.
pub fn dsm_process(process: &Diffusion, tables: Option<[DPtr; 4]>) -> DsmProcess {
    match process {
        Diffusion::Discrete(d) => {
            let [time, alpha, sigma, weight] = tables.unwrap_or_default();
            DsmProcess::Discrete { steps: d.steps(), time, alpha, sigma, weight }
        }
        Diffusion::Sde { sde, t_eps } => {
            let (kind, p0, p1) = match *sde {
                Sde::Vp { beta_min, beta_max } => (1, beta_min, beta_max),
                Sde::SubVp { beta_min, beta_max } => (2, beta_min, beta_max),
                Sde::Ve { sigma_min, sigma_max } => (3, sigma_min, sigma_max),
            };
            DsmProcess::Sde { kind, p0, p1, t_eps: *t_eps }
        }
    }
}

/// Where the DSM input kernels write, and what they read.
#[derive(Clone, Copy, Debug)]
pub struct DsmBuffers {
    /// The run state (`u64`, [`state::LEN`]), whose step counter sets the example indices.
    pub state: DPtr,
    /// (n_data, D) normalised data.
    pub data: DPtr,
    /// Examples in the data.
    pub n_data: u32,
    /// (F/2,) the frequencies ω_k of `net::frequency`.
    pub freqs: DPtr,
    /// (batch,) u32 data index.
    pub index: DPtr,
    /// (batch,) t.
    pub t: DPtr,
    /// (batch,) α.
    pub alpha: DPtr,
    /// (batch,) σ.
    pub sigma: DPtr,
    /// (batch,) loss weight.
    pub weight: DPtr,
    /// (batch, F) φ(t).
    pub phi: DPtr,
    /// (batch, D) x_t.
    pub x_t: DPtr,
    /// (batch, D) ε.
    pub eps: DPtr,
}

impl Gpu {
    /// Opens GPU `ordinal`, compiles every kernel with NVRTC for its architecture, and loads
    /// them. Never panics: a missing driver, device or NVRTC is a [`GpuError`].
    pub fn open(ordinal: usize) -> Result<Self, GpuError> {
        if !driver_available() {
            return Err(GpuError::NoDriver);
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| GpuError::NoDevice(format!("{e:?}")))?;
        // SAFETY: every buffer of this crate is used on the one stream below, in launch order,
        // so cudarc's cross-stream event tracking is not needed (and would break graph capture).
        unsafe { ctx.disable_event_tracking() };
        // A stream of our own: the legacy default stream cannot be captured into a CUDA graph.
        let stream = ctx.new_stream().map_err(driver)?;
        let (major, minor) = ctx.compute_capability().map_err(driver)?;
        // PTX for the device's virtual architecture; the driver compiles it to machine code on load.
        let arch: &'static str = Box::leak(format!("compute_{major}{minor}").into_boxed_str());
        let name = ctx.name().map_err(driver)?;
        let sms = ctx
            .attribute(cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(driver)? as u32;
        let mut loaded = std::collections::HashMap::new();
        for (file, ptx) in compile_all(Some(arch))? {
            let module = ctx.load_module(cudarc::nvrtc::Ptx::from_src(ptx)).map_err(driver)?;
            let names = SOURCES.iter().find(|s| s.0 == file).map(|s| s.2).unwrap_or(&[]);
            for &k in names {
                loaded.insert(k, module.load_function(k).map_err(driver)?);
            }
        }
        let mut take =
            |k: &str| loaded.remove(k).ok_or_else(|| GpuError::Driver(format!("kernel {k} missing")));
        let f = Funcs {
            dsm_rows: take("dsm_rows")?,
            dsm_noise: take("dsm_noise")?,
            gemm: take("gemm")?,
            sum_splits: take("sum_splits")?,
            col_sum: take("col_sum")?,
            add_into: take("add_into")?,
            mse_grad: take("mse_grad")?,
            loss_finish: take("loss_finish")?,
            sq_partials: take("sq_partials")?,
            step_scalars: take("step_scalars")?,
            adam_ema: take("adam_ema")?,
            conv1d_fwd: take("conv1d_fwd")?,
            conv1d_bwd_input: take("conv1d_bwd_input")?,
            conv1d_bwd_weight: take("conv1d_bwd_weight")?,
            conv_sum_splits: take("conv_sum_splits")?,
            upsample2_fwd: take("upsample2_fwd")?,
            upsample2_bwd: take("upsample2_bwd")?,
            channel_bias_fwd: take("channel_bias_fwd")?,
            channel_bias_bwd: take("channel_bias_bwd")?,
            silu_fwd_sig: take("silu_fwd_sig")?,
            silu_bwd_sig: take("silu_bwd_sig")?,
            fill_zero: take("fill_zero")?,
            add2: take("add2")?,
            transpose_rows: take("transpose_rows")?,
        };
        Ok(Self { ctx, stream, f, name, sms })
    }

    /// [`Gpu::open`], or `None` after printing "skipped: " and the reason to standard error: the first line
    /// of every GPU test, which passes as skipped on machines without a GPU.
    pub fn open_or_skip(ordinal: usize) -> Option<Self> {
        match Self::open(ordinal) {
            Ok(g) => Some(g),
            Err(e) => {
                eprintln!("skipped: {e}");
                None
            }
        }
    }

    /// The CUDA context.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// The device's name (e.g. "NVIDIA H100 80GB HBM3").
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Streaming multiprocessors.
    pub fn sm_count(&self) -> u32 {
        self.sms
    }

    /// The stream every launch goes to (for CUDA graph capture).
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Waits for every launch so far.
    pub fn synchronize(&self) -> Result<(), GpuError> {
        self.stream.synchronize().map_err(driver)
    }

    /// `len` zeroed elements.
    pub fn zeros<T: DeviceRepr + ValidAsZeroBits>(&self, len: usize) -> Result<DevBuf<T>, GpuError> {
        let slice = self.stream.alloc_zeros::<T>(len.max(1)).map_err(driver)?;
        let ptr = DPtr(slice.device_ptr(&self.stream).0);
        Ok(DevBuf { slice, ptr })
    }

    /// A copy of `host` on the device.
    pub fn upload<T: DeviceRepr + ValidAsZeroBits + Copy>(&self, host: &[T]) -> Result<DevBuf<T>, GpuError> {
        let mut buf = self.zeros::<T>(host.len())?;
        self.write(&mut buf, host)?;
        Ok(buf)
    }

    /// Overwrites the first `host.len()` elements of `buf`.
    pub fn write<T: DeviceRepr + Copy>(&self, buf: &mut DevBuf<T>, host: &[T]) -> Result<(), GpuError> {
        if host.is_empty() {
            return Ok(());
        }
        let mut view = buf.slice.slice_mut(..host.len());
        self.stream.memcpy_htod(host, &mut view).map_err(driver)
    }

    /// The first `len` elements of `buf` (synchronises).
    pub fn download<T: DeviceRepr + Default + Clone>(
        &self,
        buf: &DevBuf<T>,
        len: usize,
    ) -> Result<Vec<T>, GpuError> {
        let mut out = vec![T::default(); len];
        if len > 0 {
            self.stream.memcpy_dtoh(&buf.slice.slice(..len), &mut out).map_err(driver)?;
        }
        self.synchronize()?;
        Ok(out)
    }

    /// `len` f32 at device address `p` (synchronises).
    pub fn download_raw(&self, p: DPtr, len: usize) -> Result<Vec<f32>, GpuError> {
        let mut out = vec![0.0f32; len];
        if len > 0 {
            // SAFETY: the caller's `p` addresses at least `len` f32 of live device memory
            // allocated through this `Gpu`; the copy is ordered after every launch on the stream.
            unsafe { cudarc::driver::result::memcpy_dtoh_async(&mut out, p.0, self.stream.cu_stream()) }
                .map_err(driver)?;
        }
        self.synchronize()?;
        Ok(out)
    }

    /// The fused DSM inputs of one step (twin: `cpu::dsm_inputs` and the likelihood weights).
    #[allow(clippy::too_many_arguments)]
    pub fn dsm_inputs(
        &self,
        seed: u64,
        batch: usize,
        dim: usize,
        freqs: usize,
        process: DsmProcess,
        likelihood: bool,
        b: &DsmBuffers,
    ) -> Result<(), GpuError> {
        let (batch32, dim32) = (batch as u32, dim as u32);
        let (mut proc_kind, mut steps) = (0i32, 0u32);
        let (mut tt, mut ta, mut ts, mut tw) = (DPtr::NULL, DPtr::NULL, DPtr::NULL, DPtr::NULL);
        let (mut p0, mut p1, mut t_eps) = (0.0f32, 0.0f32, 0.0f32);
        match process {
            DsmProcess::Discrete { steps: n, time, alpha, sigma, weight } => {
                (steps, tt, ta, ts, tw) = (n, time, alpha, sigma, weight);
            }
            DsmProcess::Sde { kind, p0: a, p1: c, t_eps: e } => {
                (proc_kind, p0, p1, t_eps) = (kind, a, c, e);
            }
        }
        let weighting = likelihood as i32;
        let half = (freqs / 2) as i32;
        let scale = tinyscore_engine::net::TIME_SCALE;
        let mut l = self.stream.launch_builder(&self.f.dsm_rows);
        l.arg(&b.state.0).arg(&seed).arg(&batch32).arg(&b.n_data).arg(&proc_kind).arg(&steps);
        l.arg(&tt.0).arg(&ta.0).arg(&ts.0).arg(&tw.0).arg(&p0).arg(&p1).arg(&t_eps).arg(&weighting);
        l.arg(&b.freqs.0).arg(&half).arg(&scale).arg(&b.index.0).arg(&b.t.0).arg(&b.alpha.0);
        l.arg(&b.sigma.0).arg(&b.weight.0).arg(&b.phi.0);
        // SAFETY: the kernel reads `state` (8 u64), the tables (N + 1 f32) or nothing, `freqs`
        // (F/2), `data` via indices < n_data, and writes `batch` rows of each output, all of which
        // the caller allocated with these sizes (`DsmBuffers` docs); threads past `batch` return.
        done(unsafe { l.launch(linear_cfg(batch)) })?;
        let mut l = self.stream.launch_builder(&self.f.dsm_noise);
        l.arg(&b.state.0).arg(&seed).arg(&batch32).arg(&dim32).arg(&b.data.0).arg(&b.index.0);
        l.arg(&b.alpha.0).arg(&b.sigma.0).arg(&b.x_t.0).arg(&b.eps.0);
        // SAFETY: one thread per (row, block of 4) of a (batch, D) output; indices come from
        // `dsm_rows` and are < n_data; elements past D are skipped.
        done(unsafe { l.launch(linear_cfg(batch * dim.div_ceil(4))) })
    }

    /// One GEMM with its epilogue (no split-K).
    pub fn gemm(&self, g: &Gemm) -> Result<(), GpuError> {
        self.gemm_split(g, 1, DPtr::NULL)
    }

    /// One GEMM whose k range is cut into `splits` slices summed into `ws` (`splits·m·n` f32),
    /// then added in slice order into C (no epilogue: `bias`, `add`, `pre`, `act` must be null
    /// and `accumulate` false when `splits > 1`).
    pub fn gemm_split(&self, g: &Gemm, splits: usize, ws: DPtr) -> Result<(), GpuError> {
        if g.m == 0 || g.n == 0 {
            return Ok(());
        }
        let splits = splits.max(1);
        let k_per = g.k.div_ceil(splits).div_ceil(GEMM_BK) * GEMM_BK;
        let splits = g.k.div_ceil(k_per.max(1)).max(1);
        let epilogue = g.bias != DPtr::NULL
            || g.add != DPtr::NULL
            || g.pre != DPtr::NULL
            || g.act != DPtr::NULL
            || g.accumulate;
        if splits > 1 && (epilogue || ws == DPtr::NULL) {
            return Err(GpuError::Driver("split-K GEMM with an epilogue or no workspace".into()));
        }
        let (m, n, k) = (g.m as i32, g.n as i32, g.k as i32);
        let (a_sm, a_sk, b_sn, b_sk) = (g.a_sm as i64, g.a_sk as i64, g.b_sn as i64, g.b_sk as i64);
        let ldc = g.n as i64;
        let split_stride = (g.m * g.n) as i64;
        let k_per = k_per.max(GEMM_BK) as i32;
        let c = if splits > 1 { ws } else { g.c };
        let acc = g.accumulate as i32;
        let mut l = self.stream.launch_builder(&self.f.gemm);
        l.arg(&m).arg(&n).arg(&k).arg(&g.a.0).arg(&a_sm).arg(&a_sk).arg(&g.b.0).arg(&b_sn).arg(&b_sk);
        l.arg(&c.0).arg(&ldc).arg(&split_stride).arg(&k_per).arg(&g.bias.0).arg(&g.add.0).arg(&g.pre.0);
        l.arg(&g.pre_sig.0).arg(&acc).arg(&g.act.0).arg(&g.sig.0);
        let cfg = LaunchConfig {
            grid_dim: (blocks(g.n, GEMM_TILE as u32), blocks(g.m, GEMM_TILE as u32), splits as u32),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the kernel reads A at m·a_sm + k·a_sk for m < M, k < K and B likewise, writes
        // C (or slice z of ws) at m·n + n' for m < M, n' < N, and reads the epilogue operands at
        // the same (m, n) positions; the caller passes buffers of these extents (`Gemm` docs).
        done(unsafe { l.launch(cfg) })?;
        if splits > 1 {
            self.sum_splits(ws, splits, g.m * g.n, g.c)?;
        }
        Ok(())
    }

    /// `out[i] = Σ_z ws[z·len + i]` in slice order, for i < len.
    pub fn sum_splits(&self, ws: DPtr, splits: usize, len: usize, out: DPtr) -> Result<(), GpuError> {
        let (splits, stride, n) = (splits as i32, len as i64, len as i64);
        let mut l = self.stream.launch_builder(&self.f.sum_splits);
        l.arg(&ws.0).arg(&splits).arg(&stride).arg(&n).arg(&out.0);
        // SAFETY: reads splits·len elements of ws, writes len of out.
        done(unsafe { l.launch(linear_cfg(len)) })
    }

    /// Column sums of x (rows, cols) into out (cols), over `splits` row slices summed in order;
    /// `ws` holds `splits·cols` f32.
    pub fn col_sum(
        &self,
        x: DPtr,
        rows: usize,
        cols: usize,
        splits: usize,
        ws: DPtr,
        out: DPtr,
    ) -> Result<(), GpuError> {
        let splits = splits.clamp(1, rows.max(1));
        let per = rows.div_ceil(splits).max(1);
        let splits = rows.div_ceil(per).max(1);
        let (r, c, p) = (rows as i32, cols as i32, per as i32);
        let mut l = self.stream.launch_builder(&self.f.col_sum);
        l.arg(&x.0).arg(&r).arg(&c).arg(&p).arg(&ws.0);
        let cfg = LaunchConfig {
            grid_dim: (blocks(cols, THREADS), splits as u32, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: reads rows·cols of x, writes splits·cols of ws.
        done(unsafe { l.launch(cfg) })?;
        self.sum_splits(ws, splits, cols, out)
    }

    /// `y = x` (overwrite) or `y += x`, n elements.
    pub fn add_into(&self, y: DPtr, x: DPtr, n: usize, overwrite: bool) -> Result<(), GpuError> {
        let (len, ow) = (n as i64, overwrite as i32);
        let mut l = self.stream.launch_builder(&self.f.add_into);
        l.arg(&y.0).arg(&x.0).arg(&len).arg(&ow);
        // SAFETY: n elements of each.
        done(unsafe { l.launch(linear_cfg(n)) })
    }

    /// The loss gradient of `n` scalars (rows of `dim`) and one f64 partial per block of
    /// [`THREADS`] into `partials`; returns the number of partials. Twin: `cpu::mse_loss_grad`
    /// (`weights` null) or `cpu::weighted_mse_loss_grad`.
    #[allow(clippy::too_many_arguments)]
    pub fn mse_grad(
        &self,
        pred: DPtr,
        target: DPtr,
        weights: DPtr,
        n: usize,
        dim: usize,
        total: usize,
        grad: DPtr,
        partials: DPtr,
    ) -> Result<usize, GpuError> {
        let (len, d, inv) = (n as i64, dim as i32, 1.0f32 / total as f32);
        let mut l = self.stream.launch_builder(&self.f.mse_grad);
        l.arg(&pred.0)
            .arg(&target.0)
            .arg(&weights.0)
            .arg(&len)
            .arg(&d)
            .arg(&inv)
            .arg(&grad.0)
            .arg(&partials.0);
        // SAFETY: n elements of pred, target, grad; n/dim of weights; one partial per block.
        done(unsafe { l.launch(linear_cfg(n)) })?;
        Ok(blocks(n, THREADS) as usize)
    }

    /// Adds (Σ partials)/total to the state's running loss and counts the step.
    pub fn loss_finish(
        &self,
        partials: DPtr,
        count: usize,
        total: usize,
        state: DPtr,
    ) -> Result<(), GpuError> {
        let (c, inv) = (count as i32, 1.0f64 / total as f64);
        let mut l = self.stream.launch_builder(&self.f.loss_finish);
        l.arg(&partials.0).arg(&c).arg(&inv).arg(&state.0);
        // SAFETY: reads `count` f64 partials, updates two state slots.
        done(unsafe {
            l.launch(LaunchConfig { grid_dim: (1, 1, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 })
        })
    }

    /// The partial sums of g² (`blocks` of them, f64) for the global norm.
    pub fn sq_partials(&self, g: DPtr, n: usize, blocks_: usize, partials: DPtr) -> Result<(), GpuError> {
        let len = n as i64;
        let mut l = self.stream.launch_builder(&self.f.sq_partials);
        l.arg(&g.0).arg(&len).arg(&partials.0);
        let cfg = LaunchConfig {
            grid_dim: (blocks_.max(1) as u32, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: grid-stride over n elements; one partial per block.
        done(unsafe { l.launch(cfg) })
    }

    /// The step's scalars from the norm partials: clip scale, t = step + 1, lr, bias corrections.
    #[allow(clippy::too_many_arguments)]
    pub fn step_scalars(
        &self,
        partials: DPtr,
        count: usize,
        max_norm: f32,
        lr: f32,
        warmup: u64,
        beta1: f32,
        beta2: f32,
        state: DPtr,
    ) -> Result<(), GpuError> {
        let c = count as i32;
        let mut l = self.stream.launch_builder(&self.f.step_scalars);
        l.arg(&partials.0).arg(&c).arg(&max_norm).arg(&lr).arg(&warmup).arg(&beta1).arg(&beta2).arg(&state.0);
        // SAFETY: reads `count` partials, writes the state slots.
        done(unsafe {
            l.launch(LaunchConfig { grid_dim: (1, 1, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 })
        })
    }

    /// Adam + EMA over n parameters with the scalars of [`Gpu::step_scalars`].
    #[allow(clippy::too_many_arguments)]
    pub fn adam_ema(
        &self,
        params: DPtr,
        grads: DPtr,
        m: DPtr,
        v: DPtr,
        ema: DPtr,
        n: usize,
        state: DPtr,
        beta1: f32,
        beta2: f32,
        eps: f32,
        decay: f32,
    ) -> Result<(), GpuError> {
        let len = n as i64;
        let mut l = self.stream.launch_builder(&self.f.adam_ema);
        l.arg(&params.0).arg(&grads.0).arg(&m.0).arg(&v.0).arg(&ema.0).arg(&len).arg(&state.0);
        l.arg(&beta1).arg(&beta2).arg(&eps).arg(&decay);
        // SAFETY: n elements of each of the five buffers.
        done(unsafe { l.launch(linear_cfg(n)) })
    }
}

impl Gpu {
    /// A linear layer's forward pass with its epilogue: `y = x·Wᵀ + b (+ add)`, and with `act`
    /// non-null also `act = silu(y)`, `sig = σ(y)`. Twin: [`crate::fused::linear_fwd`].
    /// x (rows, inp), w (out, inp), b (out,), y / add / act / sig (rows, out).
    #[allow(clippy::too_many_arguments)]
    pub fn linear_fwd(
        &self,
        x: DPtr,
        w: DPtr,
        b: DPtr,
        y: DPtr,
        (rows, inp, out): (usize, usize, usize),
        add: DPtr,
        act: DPtr,
        sig: DPtr,
    ) -> Result<(), GpuError> {
        self.gemm(&Gemm {
            m: rows,
            n: out,
            k: inp,
            a: x,
            a_sm: inp,
            a_sk: 1,
            b: w,
            b_sn: inp,
            b_sk: 1,
            c: y,
            bias: b,
            add,
            act,
            sig,
            ..Gemm::default()
        })
    }

    /// A linear layer's input gradient `dx = dy·W`, optionally through a SiLU (`· silu'(pre)`
    /// with the kept σ) and accumulated. Twin: [`crate::fused::linear_bwd_input`].
    /// dy (rows, out), w (out, inp), dx / pre / pre_sig (rows, inp).
    #[allow(clippy::too_many_arguments)]
    pub fn linear_bwd_input(
        &self,
        dy: DPtr,
        w: DPtr,
        dx: DPtr,
        (rows, inp, out): (usize, usize, usize),
        pre: DPtr,
        pre_sig: DPtr,
        accumulate: bool,
    ) -> Result<(), GpuError> {
        self.gemm(&Gemm {
            m: rows,
            n: inp,
            k: out,
            a: dy,
            a_sm: out,
            a_sk: 1,
            b: w,
            b_sn: 1,
            b_sk: inp,
            c: dx,
            pre,
            pre_sig,
            accumulate,
            ..Gemm::default()
        })
    }

    /// A linear layer's parameter gradients, overwritten: `dW = dyᵀ·x`, `db = Σ_rows dy`, with
    /// split-K over the rows through `ws` (at least [`ws_len`] f32). Twin:
    /// [`crate::fused::linear_bwd_params`].
    #[allow(clippy::too_many_arguments)]
    pub fn linear_bwd_params(
        &self,
        dy: DPtr,
        x: DPtr,
        dw: DPtr,
        db: DPtr,
        (rows, inp, out): (usize, usize, usize),
        ws: DPtr,
    ) -> Result<(), GpuError> {
        let tiles = out.div_ceil(GEMM_TILE) * inp.div_ceil(GEMM_TILE);
        let splits = split_for(tiles, rows, self.sms);
        self.gemm_split(
            &Gemm {
                m: out,
                n: inp,
                k: rows,
                a: dy,
                a_sm: 1,
                a_sk: out,
                b: x,
                b_sn: 1,
                b_sk: inp,
                c: dw,
                ..Gemm::default()
            },
            splits,
            ws,
        )?;
        let col_splits = (rows / 1024).clamp(1, MAX_SPLITS);
        self.col_sum(dy, rows, out, col_splits, ws, db)
    }
}

/// The most split-K slices (and column-sum slices) a layer uses.
pub const MAX_SPLITS: usize = 32;

/// f32 elements of the workspace that [`Gpu::linear_bwd_params`] needs for a layer (out, inp).
pub fn ws_len(inp: usize, out: usize) -> usize {
    MAX_SPLITS * out * inp.max(1)
}

/// Rounds a split count so that a GEMM of `tiles` output tiles over `k` fills the device about
/// twice: `splits·tiles ≥ 2·sms`, each slice at least 256 deep, at most 32 slices.
pub fn split_for(tiles: usize, k: usize, sms: u32) -> usize {
    let want = (2 * sms as usize).div_ceil(tiles.max(1));
    want.min(k / 256).clamp(1, MAX_SPLITS)
}

/// f32 elements of the workspace that [`Gpu::conv1d_bwd_params`] needs for a layer of shape `s`:
/// [`MAX_SPLITS`] slices of the weight gradient (C_out, C_in, K) or of the bias gradient.
pub fn conv_ws_len(s: &Conv1d) -> usize {
    MAX_SPLITS * (s.c_out * s.c_in * s.k).max(s.c_out).max(1)
}

/// The geometry arguments every conv kernel takes (rows, L_in, C_in, C_out, K, dil, stride), after
/// checking the invariants of [`Conv1d`] and that every index fits the kernels' `int`.
fn conv_geo(s: &Conv1d) -> Result<[i32; 7], GpuError> {
    if s.k % 2 == 0 || s.dil == 0 || !(s.stride == 1 || s.stride == 2) {
        return Err(GpuError::Unsupported(format!(
            "conv1d: kernel size {} (must be odd), dilation {} (≥ 1), stride {} (1 or 2)",
            s.k, s.dil, s.stride
        )));
    }
    let biggest = [
        s.x_len(),
        s.y_len(),
        s.w_len(),
        s.rows * s.l_in * s.k.max(1),
        s.rows * s.l_out() * s.k.max(1),
        s.c_in.max(s.c_out) * s.k * MAX_SPLITS,
        s.dil * s.k + 2 * s.l_in,
    ];
    if biggest.iter().any(|&n| n > i32::MAX as usize) {
        return Err(GpuError::Unsupported(format!("conv1d: {s:?} is too large for 32-bit indices")));
    }
    Ok([s.rows, s.l_in, s.c_in, s.c_out, s.k, s.dil, s.stride].map(|v| v as i32))
}

/// The grid of a conv GEMM: x over M tiles, y over N tiles, z over split-K slices.
fn conv_grid(m: usize, n: usize, splits: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (blocks(m, GEMM_TILE as u32), blocks(n, GEMM_TILE as u32), splits as u32),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The 1-D convolutional network's layers (`kernels/cuda/conv.cu`). Activations channels-last
/// (rows, L, C), weights (C_out, C_in, K): the contract is the module doc of [`crate::conv`],
/// and each launcher names its twin there.
impl Gpu {
    /// Conv1d forward: `y = conv(x) + b`, or the tangent `ẏ = conv(ẋ)` when `b` is null.
    /// Twins: [`crate::conv::conv1d_fwd`], [`crate::conv::conv1d_tangent`].
    /// x (rows, L_in, C_in), w (C_out, C_in, K), b (C_out,) or null, y (rows, L_out, C_out) overwritten.
    pub fn conv1d_fwd(&self, x: DPtr, w: DPtr, b: DPtr, y: DPtr, s: &Conv1d) -> Result<(), GpuError> {
        let [rows, l_in, c_in, c_out, k, dil, stride] = conv_geo(s)?;
        let (m, n) = (s.rows * s.l_out(), s.c_out);
        if m == 0 || n == 0 {
            return Ok(());
        }
        let mut l = self.stream.launch_builder(&self.f.conv1d_fwd);
        l.arg(&x.0).arg(&w.0).arg(&b.0).arg(&y.0);
        l.arg(&rows).arg(&l_in).arg(&c_in).arg(&c_out).arg(&k).arg(&dil).arg(&stride);
        // SAFETY: the kernel reads x at (r·L_in + pos)·C_in + ci with 0 ≤ pos < L_in, r < rows,
        // ci < C_in, w below C_out·C_in·K, b below C_out (if non-null), and writes y at
        // m·C_out + co for m < rows·L_out: the extents of the caller's buffers (docs above);
        // `conv_geo` keeps every index inside i32.
        done(unsafe { l.launch(conv_grid(m, n, 1)) })
    }

    /// Conv1d input gradient `dx = convᵀ(dy)`, overwritten or (`accumulate`) added to dx.
    /// Twins: [`crate::conv::conv1d_bwd_input`], [`crate::conv::conv1d_bwd_input_acc`].
    /// dy (rows, L_out, C_out), w (C_out, C_in, K), dx (rows, L_in, C_in).
    pub fn conv1d_bwd_input(
        &self,
        dy: DPtr,
        w: DPtr,
        dx: DPtr,
        s: &Conv1d,
        accumulate: bool,
    ) -> Result<(), GpuError> {
        let [rows, l_in, c_in, c_out, k, dil, stride] = conv_geo(s)?;
        let (m, n) = (s.rows * s.l_in, s.c_in);
        if m == 0 || n == 0 {
            return Ok(());
        }
        let acc = accumulate as i32;
        let mut l = self.stream.launch_builder(&self.f.conv1d_bwd_input);
        l.arg(&dy.0).arg(&w.0).arg(&dx.0).arg(&acc);
        l.arg(&rows).arg(&l_in).arg(&c_in).arg(&c_out).arg(&k).arg(&dil).arg(&stride);
        // SAFETY: reads dy at (r·L_out + l)·C_out + co with l < L_out, w below C_out·C_in·K;
        // reads (when accumulating) and writes dx at m·C_in + ci for m < rows·L_in.
        done(unsafe { l.launch(conv_grid(m, n, 1)) })
    }

    /// Conv1d parameter gradients: `dw = Σ_{r,l} dy·x tap` and, when `db` is non-null,
    /// `db = Σ_{r,l} dy`, overwritten or (`accumulate`) added to dw and db. The sum over the
    /// rows·L_out positions is split into slices (as many as fill the device, at most
    /// [`MAX_SPLITS`]) written to `ws` (at least [`conv_ws_len`] f32) and added in slice order.
    /// Twins: [`crate::conv::conv1d_bwd_params`] (into zeros unless `accumulate`) and, with `db`
    /// null, [`crate::conv::conv1d_bwd_weight`].
    /// dy (rows, L_out, C_out), x (rows, L_in, C_in), dw (C_out, C_in, K), db (C_out,).
    #[allow(clippy::too_many_arguments)]
    pub fn conv1d_bwd_params(
        &self,
        dy: DPtr,
        x: DPtr,
        dw: DPtr,
        db: DPtr,
        s: &Conv1d,
        accumulate: bool,
        ws: DPtr,
    ) -> Result<(), GpuError> {
        let [rows, l_in, c_in, c_out, k, dil, stride] = conv_geo(s)?;
        if ws == DPtr::NULL {
            return Err(GpuError::Unsupported("conv1d_bwd_params: no workspace (ws is null)".into()));
        }
        let (m, n, depth) = (s.c_out, s.c_in * s.k, s.rows * s.l_out());
        let acc = accumulate as i32;
        if m > 0 && n > 0 {
            let tiles = m.div_ceil(GEMM_TILE) * n.div_ceil(GEMM_TILE);
            let splits = split_for(tiles, depth, self.sms);
            let k_per = (depth.div_ceil(splits).div_ceil(GEMM_BK) * GEMM_BK).max(GEMM_BK);
            let splits = depth.div_ceil(k_per).max(1);
            let out = if splits > 1 { ws } else { dw };
            let k_per = k_per as i32;
            let mut l = self.stream.launch_builder(&self.f.conv1d_bwd_weight);
            l.arg(&dy.0).arg(&x.0).arg(&out.0).arg(&acc).arg(&k_per);
            l.arg(&rows).arg(&l_in).arg(&c_in).arg(&c_out).arg(&k).arg(&dil).arg(&stride);
            // SAFETY: reads dy (rows·L_out·C_out) and x taps inside (rows, L_in, C_in); writes
            // dw (C_out·C_in·K) or, split, `splits` ≤ MAX_SPLITS slices of it into ws, which
            // holds conv_ws_len(s) f32.
            done(unsafe { l.launch(conv_grid(m, n, splits)) })?;
            if splits > 1 {
                self.conv_sum_splits(ws, splits, m * n, dw, accumulate)?;
            }
        }
        if db != DPtr::NULL && m > 0 {
            let splits = (depth / 1024).clamp(1, MAX_SPLITS);
            let per = depth.div_ceil(splits).max(1);
            let splits = depth.div_ceil(per).max(1);
            let (r, c, p) = (depth as i32, m as i32, per as i32);
            let mut l = self.stream.launch_builder(&self.f.col_sum);
            l.arg(&dy.0).arg(&r).arg(&c).arg(&p).arg(&ws.0);
            let cfg = LaunchConfig {
                grid_dim: (blocks(m, THREADS), splits as u32, 1),
                block_dim: (THREADS, 1, 1),
                shared_mem_bytes: 0,
            };
            // SAFETY: reads dy as (rows·L_out, C_out), writes splits·C_out ≤ conv_ws_len f32 of ws
            // (after the weight GEMM's slices were summed: the stream orders the launches).
            done(unsafe { l.launch(cfg) })?;
            self.conv_sum_splits(ws, splits, m, db, accumulate)?;
        }
        Ok(())
    }

    /// `out[i] = Σ_z ws[z·len + i]` in slice order (or `out[i] += that sum`), i < len.
    fn conv_sum_splits(
        &self,
        ws: DPtr,
        splits: usize,
        len: usize,
        out: DPtr,
        accumulate: bool,
    ) -> Result<(), GpuError> {
        let (z, stride, n, acc) = (splits as i32, len as i64, len as i64, accumulate as i32);
        let mut l = self.stream.launch_builder(&self.f.conv_sum_splits);
        l.arg(&ws.0).arg(&z).arg(&stride).arg(&n).arg(&out.0).arg(&acc);
        // SAFETY: reads splits·len f32 of ws, reads and writes len f32 of out.
        done(unsafe { l.launch(linear_cfg(len)) })
    }

    /// 2× nearest upsampling `y[r, l, c] = x[r, ⌊l/2⌋, c]`. Twin: [`crate::conv::upsample2_fwd`].
    /// x (rows, L_in, C), y (rows, 2·L_in, C) overwritten.
    pub fn upsample2_fwd(
        &self,
        x: DPtr,
        y: DPtr,
        rows: usize,
        l_in: usize,
        c: usize,
    ) -> Result<(), GpuError> {
        let n_out = 2 * rows * l_in * c;
        if n_out == 0 {
            return Ok(());
        }
        let (n, c32) = (n_out as i64, c as i32);
        let mut l = self.stream.launch_builder(&self.f.upsample2_fwd);
        l.arg(&x.0).arg(&y.0).arg(&n).arg(&c32);
        // SAFETY: writes n_out f32 of y, reads n_out/2 of x.
        done(unsafe { l.launch(linear_cfg(n_out)) })
    }

    /// Backward of the upsampling, `dx[r, l, c] = dy[r, 2l, c] + dy[r, 2l+1, c]`, overwritten or
    /// (`accumulate`) added to dx. Twins: [`crate::conv::upsample2_bwd`],
    /// [`crate::conv::upsample2_bwd_acc`]. dy (rows, 2·L_in, C), dx (rows, L_in, C).
    pub fn upsample2_bwd(
        &self,
        dy: DPtr,
        dx: DPtr,
        rows: usize,
        l_in: usize,
        c: usize,
        accumulate: bool,
    ) -> Result<(), GpuError> {
        let n_in = rows * l_in * c;
        if n_in == 0 {
            return Ok(());
        }
        let (n, c32, acc) = (n_in as i64, c as i32, accumulate as i32);
        let mut l = self.stream.launch_builder(&self.f.upsample2_bwd);
        l.arg(&dy.0).arg(&dx.0).arg(&n).arg(&c32).arg(&acc);
        // SAFETY: reads 2·n_in f32 of dy, reads and writes n_in of dx.
        done(unsafe { l.launch(linear_cfg(n_in)) })
    }

    /// The time-embedding injection `y[r, l, c] += v[r, c]`. Twin: [`crate::conv::channel_bias_fwd`].
    /// y (rows, L, C) in place, v (rows, C).
    pub fn channel_bias_fwd(
        &self,
        y: DPtr,
        v: DPtr,
        rows: usize,
        l: usize,
        c: usize,
    ) -> Result<(), GpuError> {
        let len = rows * l * c;
        if len == 0 {
            return Ok(());
        }
        let (n, l32, c32) = (len as i64, l as i32, c as i32);
        let mut b = self.stream.launch_builder(&self.f.channel_bias_fwd);
        b.arg(&y.0).arg(&v.0).arg(&n).arg(&l32).arg(&c32);
        // SAFETY: reads and writes rows·L·C f32 of y, reads rows·C of v.
        done(unsafe { b.launch(linear_cfg(len)) })
    }

    /// Its backward to the bias, accumulated: `dv[r, c] += Σ_l dy[r, l, c]` in increasing l (the
    /// twin's bits). Twin: [`crate::conv::channel_bias_bwd`]. dy (rows, L, C), dv (rows, C).
    pub fn channel_bias_bwd(
        &self,
        dy: DPtr,
        dv: DPtr,
        rows: usize,
        l: usize,
        c: usize,
    ) -> Result<(), GpuError> {
        if rows * c == 0 {
            return Ok(());
        }
        let (r32, l32, c32) = (rows as i32, l as i32, c as i32);
        let mut b = self.stream.launch_builder(&self.f.channel_bias_bwd);
        b.arg(&dy.0).arg(&dv.0).arg(&r32).arg(&l32).arg(&c32);
        // SAFETY: reads rows·L·C f32 of dy, reads and writes rows·C of dv.
        done(unsafe { b.launch(linear_cfg(rows * c)) })
    }
}
