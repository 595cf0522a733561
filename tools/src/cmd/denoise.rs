//! `tinyscore denoise`: denoises windows of a signal with the engine (Tweedie or SDEdit), or fills
//! their missing entries (`--mask`, the replacement method), in parallel over windows. Window i
//! depends only on (model, seed, i, settings). With `--stream`, a one-column signal of any length
//! goes through the engine's streaming denoiser (`tinyscore_engine::stream`), sample by sample,
//! as firmware runs it.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use tinyscore_engine::denoise::{self, Fill, ImputeStart, Method};
use tinyscore_engine::format::DataKind;
use tinyscore_engine::net::limits;
use tinyscore_engine::stream::{NetDenoiser, Sigma, Stream, Taper};
use tinyscore_train::data::{self, Dataset};

use super::{host_net, parse_model, read_file};
use crate::cli::{DenoiseMethod, Given};
use crate::output::{self, Kind};
use crate::plot;

/// Arguments of `tinyscore denoise`.
#[derive(Debug, clap::Args)]
pub struct DenoiseArgs {
    /// Model file (.tsm) trained on clean windows of the same length.
    pub model: PathBuf,
    /// Noisy windows: CSV (or .npy), one window per line, in the data's units.
    #[arg(long)]
    pub input: PathBuf,
    /// Noise standard deviation in the data's units, or `auto` to estimate it from the input
    /// (median absolute deviation of the first difference, pooled over all windows).
    #[arg(long, default_value = "auto", allow_hyphen_values = true)]
    pub sigma: String,
    /// Denoising method.
    #[arg(long, value_enum, default_value_t = DenoiseMethod::Tweedie)]
    pub method: DenoiseMethod,
    /// Reverse steps of `sdedit` (from the matched level down) and of imputation (from t = 1, or
    /// from `--t-start`).
    #[arg(long, default_value_t = 50)]
    pub steps: u32,
    /// Independent runs averaged, for `sdedit` and imputation (1..=16).
    #[arg(long, default_value_t = 4)]
    pub draws: u32,
    /// Imputation instead of denoising: a CSV of the input's shape, 1 where a value is known and 0
    /// where it is missing (the input's value there is ignored).
    #[arg(long)]
    pub mask: Option<PathBuf>,
    /// Imputation: RePaint resamplings per step (1 = the plain replacement method).
    #[arg(long, default_value_t = 1)]
    pub resample: u32,
    /// Imputation: where the reverse process starts. `noise`: from the prior at t = 1 (the
    /// replacement method as published). `linear`: from straight lines across each gap, diffused
    /// to `--t-start` (SDEdit-style imputation). `input`: from the input's own values at the
    /// missing entries (your fill, e.g. PCHIP), diffused to `--t-start`.
    #[arg(long, value_enum, default_value_t = ImputeFrom::Noise)]
    pub impute_from: ImputeFrom,
    /// Imputation from a fill: the process time the fill is diffused to, in (0, 1] (required
    /// with `--impute-from linear|input`).
    #[arg(long)]
    pub t_start: Option<f32>,
    /// Imputation from a fill: passes fill → diffuse to t_start → reverse with replacement, each
    /// later pass starting from the previous pass's average (1..=8).
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
    /// Seed of the stochastic methods (window i uses the noise of (seed, i)).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The clean windows, if known: prints the SNR (dB) of the input and of the output.
    #[arg(long)]
    pub clean: Option<PathBuf>,
    /// Output CSV of the input's shape; `-` for standard output.
    #[arg(long)]
    pub out: PathBuf,
    /// Also draw noisy / denoised (/ clean) traces of the first windows to this PNG (with
    /// `--stream`: the first 4 windows' worth of samples, window borders marked).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Streaming: the input is one signal, one value per line, of any length (NaN and inf
    /// allowed: replaced and clamped as `docs/denoising.md` says); the output has its length.
    /// `--sigma auto` is then a running estimate.
    #[arg(long)]
    pub stream: bool,
    /// Streaming: a window starts every HOP samples (1..=W; default W/2).
    #[arg(long)]
    pub hop: Option<usize>,
    /// Streaming: the weight of a window's samples where windows overlap.
    #[arg(long, value_enum, default_value_t = StreamTaper::Hann)]
    pub taper: StreamTaper,
}

/// Where imputation starts (`--impute-from`; `tinyscore_engine::denoise::ImputeStart`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ImputeFrom {
    /// The prior at t = 1.
    Noise,
    /// Straight lines across each gap, diffused to `--t-start`.
    Linear,
    /// The input's values at the missing entries, diffused to `--t-start`.
    Input,
}

/// The overlap-add weight of `--stream` (`tinyscore_engine::stream::Taper`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StreamTaper {
    /// sin²(π(a + ½)/W): each window's centre counts most.
    Hann,
    /// Every window counts the same (hop = W: window at a time).
    Flat,
}

/// The imputation start of `--impute-from`, `--t-start` and `--rounds`, checked.
fn impute_start(args: &DenoiseArgs, given: &Given) -> Result<ImputeStart> {
    let fill = match args.impute_from {
        ImputeFrom::Noise => {
            given.refuse(&["t_start", "rounds"], "with --impute-from noise (it starts at t = 1)")?;
            return Ok(ImputeStart::Noise);
        }
        ImputeFrom::Linear => Fill::Linear,
        ImputeFrom::Input => Fill::Given,
    };
    let Some(t_start) = args.t_start else {
        bail!("--impute-from {} needs --t-start T (in (0, 1], e.g. 0.3)", args.impute_from.name());
    };
    if !(t_start > 0.0 && t_start <= 1.0) {
        bail!("--t-start must be in (0, 1], got {t_start}");
    }
    if args.rounds == 0 || args.rounds > denoise::MAX_ROUNDS {
        bail!("--rounds must be in 1..={}, got {}", denoise::MAX_ROUNDS, args.rounds);
    }
    Ok(ImputeStart::Fill { fill, t_start, rounds: args.rounds })
}

impl ImputeFrom {
    fn name(self) -> &'static str {
        match self {
            Self::Noise => "noise",
            Self::Linear => "linear",
            Self::Input => "input",
        }
    }
}

/// Runs `tinyscore denoise` (`given`: the flags given on the command line).
pub fn run_denoise(args: &DenoiseArgs, given: &Given) -> Result<()> {
    if args.stream {
        return run_stream(args, given);
    }
    given.refuse(&["hop", "taper"], "without --stream")?;
    if args.mask.is_some() {
        given.refuse(&["sigma", "method"], "with --mask (imputation keeps the known values as they are)")?;
    } else {
        given.refuse(
            &["resample", "impute_from", "t_start", "rounds"],
            "without --mask (it is a setting of imputation)",
        )?;
        if args.method == DenoiseMethod::Tweedie {
            given.refuse(
                &["steps", "draws", "seed"],
                "with --method tweedie (one deterministic network evaluation)",
            )?;
        }
    }
    let impute_start = impute_start(args, given)?;
    let (mut out, plot_out) = plan_outputs(args)?;
    let bytes = read_file(&args.model)?;
    let model = parse_model(&args.model, &bytes)?;
    let d = model.dims().dim;
    let input = load_windows(&args.input, d)?;
    let mask = match &args.mask {
        Some(path) => {
            let m = load_windows(path, d)?;
            if m.len() != input.len() {
                bail!("{}: {} rows, the input has {}", path.display(), m.len(), input.len());
            }
            if let Some(v) = m.values.iter().find(|v| **v != 0.0 && **v != 1.0) {
                bail!("{}: mask values must be 0 or 1, found {v}", path.display());
            }
            Some(m.values.iter().map(|v| *v == 1.0).collect::<Vec<bool>>())
        }
        None => None,
    };
    if args.steps == 0 || args.steps > 1000 {
        bail!("--steps must be in 1..=1000, got {}", args.steps);
    }
    if args.resample == 0 || args.resample > denoise::MAX_RESAMPLE {
        bail!("--resample must be in 1..={}, got {}", denoise::MAX_RESAMPLE, args.resample);
    }
    if args.draws == 0 || args.draws > denoise::MAX_DRAWS {
        bail!("--draws must be in 1..={}, got {}", denoise::MAX_DRAWS, args.draws);
    }
    let sigma = if mask.is_some() { 0.0 } else { parse_sigma(&args.sigma, &input)? };
    let clean = match &args.clean {
        Some(path) => {
            let c = load_windows(path, d)?;
            if c.len() != input.len() {
                bail!("{}: {} rows, the input has {}", path.display(), c.len(), input.len());
            }
            Some(c)
        }
        None => None,
    };
    let method = match args.method {
        DenoiseMethod::Tweedie => Method::Tweedie,
        DenoiseMethod::Sdedit => Method::Sdedit { steps: args.steps, draws: args.draws },
    };
    let diffusion = model.process().diffusion().context("invalid process")?;
    let net = host_net(model.clone())?;
    let mut result = input.values.clone();
    let n = input.len();
    let pb = super::progress(n as u64, "denoising {bar:30} {pos}/{len} windows {per_sec} eta {eta}");
    let mask = mask.as_deref();
    super::par_rows(&mut result, d, &net, &pb, |net, i, row| {
        let r = match mask {
            Some(m) => denoise::impute_with(
                net,
                &diffusion,
                &denoise::Imputation {
                    steps: args.steps,
                    draws: args.draws,
                    resample: args.resample,
                    start: impute_start,
                },
                args.seed,
                i as u32,
                &m[i * d..(i + 1) * d],
                row,
            ),
            None => denoise::denoise(net, &diffusion, method, sigma, args.seed, i as u32, row),
        };
        r.map_err(|e| anyhow::anyhow!("window {i}: {e}"))
    })?;
    pb.finish_and_clear();
    out.write(|mut w| data::write_csv(&mut w, d, &result))?;
    if mask.is_none() {
        eprintln!(
            "sigma {sigma} ({}), method {:?}",
            if args.sigma == "auto" { "estimated" } else { "given" },
            args.method
        );
    }
    if let Some(c) = &clean {
        eprintln!(
            "SNR vs clean: input {:.2} dB, output {:.2} dB",
            snr_db(&c.values, &input.values),
            snr_db(&c.values, &result)
        );
    }
    if let Some(mut png) = plot_out {
        let shape = plot::DataShape::of_model(&model);
        let title = match mask {
            Some(_) => format!("imputation ({} steps, {} draws)", args.steps, args.draws),
            None => format!("denoising, {:?}, sigma {sigma:.3}", args.method).to_lowercase(),
        };
        let png_bytes = plot::denoise_png(
            shape,
            &input.values,
            &result,
            clean.as_ref().map(|c| c.values.as_slice()),
            &title,
        )?;
        png.write_bytes(&png_bytes)?;
        eprintln!("plot: {} ({})", png.path.display(), shape.describe());
    }
    Ok(())
}

/// `--out` and, if given, `--plot`, checked against every input before any work starts.
fn plan_outputs(args: &DenoiseArgs) -> Result<(output::Output, Option<output::Output>)> {
    let mut wanted = vec![("--out", args.out.as_path(), Kind::Csv)];
    if let Some(png) = &args.plot {
        wanted.push(("--plot", png, Kind::Png));
    }
    let mut inputs = vec![args.model.as_path(), args.input.as_path()];
    inputs.extend(args.mask.as_deref());
    inputs.extend(args.clean.as_deref());
    let mut outs = output::plan(&wanted, &inputs)?.into_iter();
    Ok((outs.next().expect("--out"), outs.next()))
}

/// `tinyscore denoise --stream`: the engine's streaming denoiser over a one-column signal.
fn run_stream(args: &DenoiseArgs, given: &Given) -> Result<()> {
    given.refuse(
        &["mask", "resample", "impute_from", "t_start", "rounds"],
        "with --stream (imputation works on windows)",
    )?;
    if args.method == DenoiseMethod::Tweedie {
        given.refuse(
            &["steps", "draws", "seed"],
            "with --method tweedie (one deterministic network evaluation)",
        )?;
    }
    let (mut out, plot_out) = plan_outputs(args)?;
    let bytes = read_file(&args.model)?;
    let model = parse_model(&args.model, &bytes)?;
    let w = model.dims().dim;
    let shape = model.data();
    match shape.kind {
        DataKind::Signal if shape.channels > 1 => bail!(
            "{}: a model of {}-channel signals; --stream denoises a one-channel signal",
            args.model.display(),
            shape.channels
        ),
        DataKind::Image { .. } => {
            bail!("{}: a model of images; --stream denoises a one-channel signal", args.model.display())
        }
        _ => {}
    }
    if w < 2 {
        bail!(
            "{}: --stream needs a model of windows of 2 values or more, this one has {w}",
            args.model.display()
        );
    }
    let hop = args.hop.unwrap_or(w / 2);
    if hop == 0 || hop > w {
        bail!("--hop must be in 1..={w} (the model's window), got {hop}");
    }
    if args.steps == 0 || args.steps > 1000 {
        bail!("--steps must be in 1..=1000, got {}", args.steps);
    }
    if args.draws == 0 || args.draws > denoise::MAX_DRAWS {
        bail!("--draws must be in 1..={}, got {}", denoise::MAX_DRAWS, args.draws);
    }
    let sigma = match args.sigma.as_str() {
        "auto" => Sigma::Auto,
        text => match text.parse::<f32>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Sigma::Given(v),
            _ => bail!("--sigma must be a finite number >= 0 or 'auto', got '{text}'"),
        },
    };
    let input = load_signal(&args.input)?;
    let clean = match &args.clean {
        Some(path) => {
            let c = load_signal(path)?;
            if c.len() != input.len() {
                bail!("{}: {} samples, the input has {}", path.display(), c.len(), input.len());
            }
            Some(c)
        }
        None => None,
    };
    let method = match args.method {
        DenoiseMethod::Tweedie => Method::Tweedie,
        DenoiseMethod::Sdedit => Method::Sdedit { steps: args.steps, draws: args.draws },
    };
    let taper = match args.taper {
        StreamTaper::Hann => Taper::Hann,
        StreamTaper::Flat => Taper::Flat,
    };
    let diffusion = model.process().diffusion().context("invalid process")?;
    let mut net = host_net(model.clone())?;
    let mut den =
        NetDenoiser::new(&mut net, &diffusion, method, args.seed).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut stream: Box<Stream<{ limits::MAX_DIM }>> =
        Box::new(Stream::new(&den, hop, taper, sigma).map_err(|e| anyhow::anyhow!("{e}"))?);
    let mut result = vec![0.0f32; input.len()];
    let pb =
        super::progress(input.len() as u64, "denoising {bar:30} {pos}/{len} samples {per_sec} eta {eta}");
    let mut n = 0;
    // Blocks of any size give the same bits; 1024 keeps the progress bar moving.
    for block in input.chunks(1024) {
        n += stream.push_block(&mut den, block, &mut result[n..]).map_err(|e| anyhow::anyhow!("{e}"))?;
        pb.inc(block.len() as u64);
    }
    let flags = stream.flags();
    let sigma_used = stream.sigma();
    n += stream.flush(&mut den, &mut result[n..]).map_err(|e| anyhow::anyhow!("{e}"))?;
    pb.finish_and_clear();
    debug_assert_eq!(n, input.len());
    out.write(|mut w| data::write_csv(&mut w, 1, &result))?;
    let windows = if input.is_empty() { 0 } else { (input.len() - 1) / hop + 1 };
    eprintln!(
        "stream: window {w}, hop {hop}, latency {} samples, {windows} windows, sigma {} ({}), method {:?}",
        w - 1,
        sigma_used.map_or("-".to_string(), |s| s.to_string()),
        if sigma == Sigma::Auto { "running estimate, last window" } else { "given" },
        args.method
    );
    if flags.nan > 0 || flags.clamped > 0 {
        eprintln!(
            "input check: {} NaN sample(s) replaced by the previous one, {} infinite or out-of-range sample(s) clamped",
            flags.nan, flags.clamped
        );
    }
    if let Some(c) = &clean {
        eprintln!("SNR vs clean: input {:.2} dB, output {:.2} dB", snr_db(c, &input), snr_db(c, &result));
    }
    if let Some(mut png) = plot_out {
        let title =
            format!("streaming denoiser, {:?}, window {w}, hop {hop}, {:?} taper", args.method, args.taper)
                .to_lowercase();
        let png_bytes = plot::stream_png(&input, &result, clean.as_deref(), hop, 4 * w, &title)?;
        png.write_bytes(&png_bytes)?;
        eprintln!("plot: {}", png.path.display());
    }
    Ok(())
}

/// Reads a one-column signal: CSV (one value per line, `#` lines and blank lines skipped; `nan`,
/// `inf`, `-inf` accepted, the stream's input check handles them) or a `.npy` of shape (N,),
/// (N, 1) or (1, N).
fn load_signal(path: &std::path::Path) -> Result<Vec<f32>> {
    if path.extension().is_some_and(|e| e == "npy") {
        let set = super::data::load_file(path)?;
        if set.dim != 1 && set.len() != 1 {
            bail!(
                "{}: {} rows of {} values; --stream reads one signal (one column)",
                path.display(),
                set.len(),
                set.dim
            );
        }
        return Ok(set.values);
    }
    let bytes = read_file(path)?;
    let text =
        std::str::from_utf8(&bytes).map_err(|_| anyhow::anyhow!("{}: not UTF-8 text", path.display()))?;
    let mut values = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let columns = line.split(',').count();
        if columns != 1 {
            bail!(
                "{}: line {}: {columns} values; --stream reads a signal of one value per line",
                path.display(),
                i + 1
            );
        }
        match line.parse::<f32>() {
            Ok(v) => values.push(v),
            Err(_) => bail!("{}: line {}: '{line}' is not a number", path.display(), i + 1),
        }
    }
    if values.is_empty() {
        bail!("{}: no samples", path.display());
    }
    Ok(values)
}

/// Reads windows and checks their length against the model's D.
fn load_windows(path: &std::path::Path, d: usize) -> Result<Dataset> {
    let set = super::data::load_file(path)?;
    if set.dim != d {
        bail!("{}: windows of {} values, the model needs {d}", path.display(), set.dim);
    }
    Ok(set)
}

/// `--sigma`: a finite number ≥ 0, or `auto` (pooled MAD of the first differences).
fn parse_sigma(text: &str, input: &Dataset) -> Result<f32> {
    if text == "auto" {
        let mut diffs: Vec<f32> =
            input.values.chunks_exact(input.dim).flat_map(|w| w.windows(2).map(|p| p[1] - p[0])).collect();
        if diffs.is_empty() {
            bail!("--sigma auto needs windows of at least 2 values");
        }
        return Ok(denoise::sigma_from_differences(&mut diffs));
    }
    match text.parse::<f32>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => bail!("--sigma must be a finite number >= 0 or 'auto', got '{text}'"),
    }
}

/// 10·log10(Σ clean² / Σ (est − clean)²).
pub fn snr_db(clean: &[f32], est: &[f32]) -> f64 {
    let (mut s, mut e) = (0.0f64, 0.0f64);
    for (c, x) in clean.iter().zip(est) {
        s += (*c as f64).powi(2);
        e += (*x as f64 - *c as f64).powi(2);
    }
    10.0 * (s / e.max(1e-300)).log10()
}
