//! `tinyscore bench`: how fast the engine evaluates a model's network on this machine, on one
//! thread: evaluations per second, nanoseconds per evaluation and MACs per second, at batch 1
//! (`ScoreNet::eps`) or batch N (`ScoreNet::eps_batch`), for each file given and, for an f32
//! file, the same weights re-encoded as f16 and w8. `bench/onnx_compare.py` puts these figures
//! beside ONNX Runtime's; `docs/BENCHMARKS.md` has the measured ones.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use tinyscore_engine::format::{DType, Model, Role};

use super::{host_net, parse_model, read_file, HostNet};
use crate::tsm::{write, ModelSpec, Quant};

/// Arguments of `tinyscore bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Model files (.tsm). An f32 file is also measured re-encoded as f16 and w8 (in memory).
    #[arg(required = true)]
    pub models: Vec<PathBuf>,
    /// Vectors per network call (1..=4096): 1 is `ScoreNet::eps`, more is `ScoreNet::eps_batch`.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Seconds of measurement per row (after a warm-up of a tenth of that).
    #[arg(long, default_value_t = 1.0)]
    pub seconds: f64,
    /// Measure the engine's portable kernels (as compiled for any x86-64: SSE2), not its AVX2 build
    /// (or, on AArch64, its NEON kernels). Also applies to `--eval-csv`.
    #[arg(long)]
    pub portable: bool,
    /// Time the rounds by this thread's CPU time (Linux `CLOCK_THREAD_CPUTIME_ID`) instead of the
    /// wall clock, so that time spent waiting for a core on a loaded machine does not count.
    #[arg(long)]
    pub cpu_time: bool,
    /// Instead of timing: evaluate ε̂ of the first model for each line `t,x_1,…,x_D` of this CSV
    /// (x normalised) and print one CSV line of ε̂ per input (for cross-checks with other runtimes).
    #[arg(long, value_name = "CSV")]
    pub eval_csv: Option<PathBuf>,
}

/// Largest `--batch`.
pub const MAX_BATCH: usize = 4096;

/// One measured row.
#[derive(Clone, Debug)]
pub struct Row {
    /// File and precision, e.g. `moons-f32.tsm f16`.
    pub label: String,
    /// Vectors per call.
    pub batch: usize,
    /// Network evaluations (vectors) per second.
    pub evals_per_s: f64,
    /// MACs of one evaluation.
    pub macs: usize,
}

/// Runs `tinyscore bench`.
pub fn run_bench(args: &BenchArgs) -> Result<()> {
    if args.batch == 0 || args.batch > MAX_BATCH {
        bail!("--batch must be in 1..={MAX_BATCH}, got {}", args.batch);
    }
    if !(args.seconds.is_finite() && args.seconds > 0.0 && args.seconds <= 600.0) {
        bail!("--seconds must be in (0, 600], got {}", args.seconds);
    }
    if args.cpu_time && thread_cpu_seconds().is_none() {
        bail!("--cpu-time needs 64-bit Linux (CLOCK_THREAD_CPUTIME_ID)");
    }
    if let Some(csv) = &args.eval_csv {
        return eval_csv(&args.models[0], csv, args.portable);
    }
    // Read and parse every file first, so a bad one fails before any measurement.
    let mut files = Vec::new();
    for path in &args.models {
        let bytes = read_file(path)?;
        parse_model(path, &bytes)?;
        files.push((path.file_name().unwrap_or_default().to_string_lossy().into_owned(), bytes));
    }
    let mut jobs: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, bytes) in files {
        let model = Model::parse(&bytes).expect("parsed above");
        let precision = precision(&model);
        let extra = if precision == "f32" { reencoded(&model)? } else { Vec::new() };
        jobs.push((format!("{name} {precision}"), bytes));
        jobs.extend(extra.into_iter().map(|(p, b)| (format!("{name} → {p}"), b)));
    }
    let pb = super::progress(jobs.len() as u64, "benchmarking {bar:30} {pos}/{len} {msg}");
    let mut rows = Vec::new();
    for (label, bytes) in &jobs {
        pb.set_message(label.clone());
        let model = Model::parse(bytes).expect("written by the converter or parsed above");
        let time = Duration::from_secs_f64(args.seconds);
        rows.push(measure_with(label, &model, args.batch, time, args.portable, args.cpu_time)?);
        pb.inc(1);
    }
    pb.finish_and_clear();
    let path = if args.portable {
        "portable build"
    } else if crate::simd::has_avx2() {
        "AVX2 build"
    } else if cfg!(target_arch = "aarch64") {
        "NEON f32 kernels"
    } else {
        "portable build"
    };
    let clock = if args.cpu_time { "thread CPU time" } else { "wall clock" };
    println!("one thread, {path}; rates of the fastest ~50 ms round in {} s ({clock})", args.seconds);
    print!("{}", table(&rows));
    Ok(())
}

/// `--eval-csv`: ε̂ of `model` for each line `t,x_1,…,x_D` of `csv`, printed as CSV (with the
/// portable kernels if `portable`; the bits are the same either way).
fn eval_csv(model_path: &std::path::Path, csv: &std::path::Path, portable: bool) -> Result<()> {
    use std::fmt::Write as _;
    let bytes = read_file(model_path)?;
    let model = parse_model(model_path, &bytes)?;
    let d = model.dim();
    let text =
        std::fs::read_to_string(csv).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", csv.display()))?;
    let mut net = host_net(model.clone())?;
    let mut out = String::new();
    let mut eps = vec![0.0f32; d];
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let values: Vec<f32> = line
            .split(',')
            .map(|v| v.trim().parse::<f32>())
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("{}: line {}: {e}", csv.display(), n + 1))?;
        if values.len() != d + 1 {
            bail!(
                "{}: line {}: expected t and {d} values, found {} values",
                csv.display(),
                n + 1,
                values.len()
            );
        }
        if portable {
            net.eps(&values[1..], values[0], &mut eps);
        } else {
            crate::simd::eps(&mut net, &values[1..], values[0], &mut eps);
        }
        let cells: Vec<String> = eps.iter().map(|v| format!("{v}")).collect();
        let _ = writeln!(out, "{}", cells.join(","));
    }
    print!("{out}");
    Ok(())
}

/// The precision of a file: `f32`, `f16`, `w8` or `w8a8`.
pub fn precision(model: &Model<'_>) -> &'static str {
    if model.is_int8() {
        return "w8a8";
    }
    // The first layer's weight: every weight of a file has the same dtype.
    use tinyscore_engine::graph::Op;
    let first = model.graph().layers().find_map(|l| match l.op {
        Op::Linear { weight, .. } | Op::Conv1d { weight, .. } => Some(weight as usize),
        _ => None,
    });
    match model.tensor_at(first.unwrap_or(2)).dtype {
        DType::F16 => "f16",
        DType::I8 => "w8",
        _ => "f32",
    }
}

/// An f32 ScoreNet v1 file's weights written as f16 and as w8 (none for other graphs).
fn reencoded(model: &Model<'_>) -> Result<Vec<(&'static str, Vec<u8>)>> {
    let Some(dims) = model.graph().mlp_dims() else {
        return Ok(Vec::new());
    };
    let mut params = Vec::with_capacity(dims.param_count());
    for (role, r, c) in dims.params() {
        let t = model.tensor(role);
        params.extend((0..r * c).map(|i| t.get(i)));
    }
    let vector = |role: Role| {
        let t = model.tensor(role);
        (0..t.rows).map(|i| t.get(i)).collect::<Vec<f32>>()
    };
    let (mean, std) = (vector(Role::NormMean), vector(Role::NormStd));
    let spec =
        ModelSpec { dims, process: model.process(), norm_mean: &mean, norm_std: &std, params: &params };
    let mut out = Vec::new();
    for (name, q) in [("f16", Quant::F16), ("w8", Quant::W8)] {
        out.push((name, write(&spec, q).map_err(|e| anyhow::anyhow!("re-encoding as {name}: {e:?}"))?));
    }
    Ok(out)
}

/// Times `model` at `batch` vectors per call for about `time` on this thread (after a tenth of
/// that as warm-up): the rate of the fastest round of about 50 ms.
/// `portable` measures the engine as built (baseline SSE2 on x86-64) instead of the AVX2 path.
pub fn measure(label: &str, model: &Model<'_>, batch: usize, time: Duration, portable: bool) -> Result<Row> {
    measure_with(label, model, batch, time, portable, false)
}

/// [`measure`], the rounds timed by this thread's CPU time where `cpu_time` is set (the wall
/// clock still bounds the whole measurement).
fn measure_with(
    label: &str,
    model: &Model<'_>,
    batch: usize,
    time: Duration,
    portable: bool,
    cpu_time: bool,
) -> Result<Row> {
    let clock = || if cpu_time { thread_cpu_seconds().unwrap_or(0.0) } else { 0.0 };
    let mut net = host_net(model.clone())?;
    let d = model.dim();
    // Inputs of the size of normalised data; times spread over (0, 1] so the time embedding
    // changes with every call as in a sampler.
    let xs: Vec<f32> = (0..batch * d).map(|i| ((i as f32) * 0.618_034).fract() * 4.0 - 2.0).collect();
    let mut outs = vec![0.0f32; batch * d];
    let mut scratch = vec![0.0f32; net.batch_scratch_len(batch)];
    let mut call = |net: &mut HostNet<'_>, i: u64| {
        let t = ((i % 1000) as f32 + 1.0) / 1000.0;
        match (batch, portable) {
            (1, false) => crate::simd::eps(net, &xs, t, &mut outs),
            (1, true) => net.eps(&xs, t, &mut outs),
            (_, false) => crate::simd::eps_batch(net, &xs, t, &mut outs, &mut scratch),
            (_, true) => net.eps_batch(&xs, t, &mut outs, &mut scratch),
        }
        std::hint::black_box(&mut outs);
    };
    let mut calls = 0u64;
    let warm = Instant::now();
    while warm.elapsed() < time / 10 {
        call(&mut net, calls);
        calls += 1;
    }
    // Rounds of about 50 ms; the fastest round counts (other processes on the machine only ever
    // slow a round down, so the fastest is the least disturbed).
    let per_round = (calls as f64 / (time / 10).as_secs_f64().max(1e-9) * 0.05).ceil().max(1.0) as u64;
    let mut best = f64::INFINITY;
    let start = Instant::now();
    while start.elapsed() < time {
        let (round, cpu) = (Instant::now(), clock());
        for _ in 0..per_round {
            call(&mut net, calls);
            calls += 1;
        }
        let spent = if cpu_time { clock() - cpu } else { round.elapsed().as_secs_f64() };
        best = best.min(spent.max(1e-12) / per_round as f64);
    }
    let evals_per_s = batch as f64 / best;
    Ok(Row { label: label.to_string(), batch, evals_per_s, macs: model.graph().macs() as usize })
}

/// This thread's CPU time in seconds (`clock_gettime(CLOCK_THREAD_CPUTIME_ID)`), on 64-bit Linux.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
#[allow(unsafe_code)]
fn thread_cpu_seconds() -> Option<f64> {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
    }
    /// Linux's `CLOCK_THREAD_CPUTIME_ID`.
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: `clock_gettime` (libc, linked by std on Linux) writes one `struct timespec` — two
    // 64-bit fields on the 64-bit Linux targets this is built for — to the pointer, which is a
    // live local of that layout.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then_some(ts.sec as f64 + ts.nsec as f64 * 1e-9)
}

/// No thread CPU clock off 64-bit Linux.
#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn thread_cpu_seconds() -> Option<f64> {
    None
}

/// The table `bench` prints.
pub fn table(rows: &[Row]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<32} {:>6} {:>14} {:>12} {:>10}",
        "model precision", "batch", "evals/s", "ns/eval", "GMAC/s"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:<32} {:>6} {:>14.0} {:>12.1} {:>10.2}",
            r.label,
            r.batch,
            r.evals_per_s,
            1e9 / r.evals_per_s,
            r.evals_per_s * r.macs as f64 / 1e9
        );
    }
    s
}
