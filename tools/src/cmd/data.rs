//! `tinyscore data`: writes a built-in data set to CSV, and the rules every command uses to pick
//! training and held-out data from a `--data` argument.

use std::path::PathBuf;

use anyhow::{bail, Result};
use tinyscore_engine::rng;
use tinyscore_train::data::{self, Dataset};

use crate::cli::Given;
use crate::output::{self, Kind};

/// Arguments of `tinyscore data`.
#[derive(Debug, clap::Args)]
pub struct DataArgs {
    /// Built-in data set.
    pub name: String,
    /// Window length of the `ecg` data set (default 64; hop: half a window).
    #[arg(long)]
    pub window: Option<usize>,
    /// Number of examples (generated sets only, at most 67108864; recordings give all their
    /// windows).
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// Only the held-out part (a recording's last 20%, a fresh draw of a generated set): the
    /// examples `eval`, and a model trained on the set, never saw.
    #[arg(long)]
    pub heldout: bool,
    /// Add Gaussian noise of this standard deviation (data units) to --out: a denoising input.
    #[arg(long, value_name = "SIGMA")]
    pub noise: Option<f32>,
    /// Blank a run of this many consecutive values in every example of --out (written as 0,
    /// placed by the seed): an imputation input. Needs --mask-out.
    #[arg(long, value_name = "K")]
    pub gap: Option<usize>,
    /// With --gap: write the mask (1 known, 0 missing) of --out to this CSV.
    #[arg(long, value_name = "CSV")]
    pub mask_out: Option<PathBuf>,
    /// With --noise or --gap: also write the clean examples to this CSV.
    #[arg(long, value_name = "CSV")]
    pub clean_out: Option<PathBuf>,
    /// Seed of a generated set, of --noise and of --gap.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output CSV; `-` for standard output.
    #[arg(long)]
    pub out: PathBuf,
}

/// The most values `tinyscore data` writes (examples × dimension): 512 MiB of f32.
pub const MAX_VALUES: usize = 1 << 27;
/// Stream word of the noise `--noise` adds (tools-only; the engine's words stay below 96).
const NOISE_STREAM: u32 = 96;
/// Stream word of the gap positions of `--gap`.
const GAP_STREAM: u32 = 97;

/// Built-in sets that are recordings (fixed data): their last 20% is held out of training.
const RECORDINGS: &[&str] = &["digits", "ecg"];

/// Fraction of a recording held out of training.
pub const HOLDOUT: f64 = 0.2;

/// Seed offset of the held-out draw of a generated data set (never the training draw).
pub const HELDOUT_SEED_OFFSET: u64 = 0x5eed_0ff5;

/// Runs `tinyscore data` (`given`: the flags given on the command line).
pub fn run_data(args: &DataArgs, given: &Given) -> Result<()> {
    if !data::BUILTIN.contains(&args.name.as_str()) {
        bail!("unknown data set '{}' (built-in: {})", args.name, data::BUILTIN.join(", "));
    }
    if args.n == 0 || args.n > MAX_VALUES / 2 {
        bail!("--n must be in 1..={}, got {}", MAX_VALUES / 2, args.n);
    }
    let spec = with_window(&args.name, args.window)?;
    if given.has("n") && !is_generated(&spec) {
        bail!("--n has no effect with the recording '{}': it gives all its windows", args.name);
    }
    if let Some(s) = args.noise {
        if !(s.is_finite() && s > 0.0) {
            bail!("--noise must be a positive number, got {s}");
        }
    }
    if args.gap.is_some() != args.mask_out.is_some() {
        bail!("--gap and --mask-out go together (the mask says where the gap is)");
    }
    if args.clean_out.is_some() && args.noise.is_none() && args.gap.is_none() {
        bail!("--clean-out has no effect without --noise or --gap (--out is clean already)");
    }
    let mut wanted = vec![("--out", args.out.as_path(), Kind::Csv)];
    if let Some(p) = &args.mask_out {
        wanted.push(("--mask-out", p, Kind::Csv));
    }
    if let Some(p) = &args.clean_out {
        wanted.push(("--clean-out", p, Kind::Csv));
    }
    let mut outs = output::plan(&wanted, &[])?;
    let set =
        if args.heldout { heldout_set(&spec, args.n, args.seed)? } else { load(&spec, args.n, args.seed)? };
    let d = set.dim;
    if let Some(k) = args.gap {
        if k == 0 || k >= d {
            bail!("--gap must be in 1..{d} (the examples have {d} values), got {k}");
        }
    }
    let clean = set.values.clone();
    let mut values = set.values;
    let mut mask = vec![1.0f32; if args.gap.is_some() { values.len() } else { 0 }];
    let mut z = vec![0.0f32; d];
    for (i, row) in values.chunks_exact_mut(d).enumerate() {
        if let Some(s) = args.noise {
            rng::fill_normal(args.seed, i as u32, 0, NOISE_STREAM, &mut z);
            row.iter_mut().zip(&z).for_each(|(v, z)| *v += s * z);
        }
        if let Some(k) = args.gap {
            let bits = rng::philox4x32_10([i as u32, 0, 0, GAP_STREAM], rng::key_of(args.seed))[0];
            let start = bits as usize % (d - k + 1);
            row[start..start + k].fill(0.0);
            mask[i * d + start..i * d + start + k].fill(0.0);
        }
    }
    for out in outs.iter_mut() {
        let rows: &[f32] = match out.flag {
            "--mask-out" => &mask,
            "--clean-out" => &clean,
            _ => &values,
        };
        out.write(|mut w| data::write_csv(&mut w, d, rows))?;
    }
    Ok(())
}

/// Loads `spec` (a built-in name or a file). A spec that names a file (it has a folder or an
/// extension) and does not exist is a missing file, not an unknown data set.
pub fn load(spec: &str, n: usize, seed: u64) -> Result<Dataset> {
    let builtin = data::BUILTIN.contains(&spec) || spec.starts_with("ecg:");
    let path = std::path::Path::new(spec);
    let looks_like_file = path.extension().is_some() || path.components().count() > 1;
    if !builtin && looks_like_file {
        if let Err(e) = std::fs::symlink_metadata(path) {
            bail!("{spec}: {}", crate::output::reason(&e));
        }
    }
    match data::load(spec, n, seed) {
        Err(data::DataError::Io { path, source }) if is_recording(spec) => bail!(
            "{}: {} (the '{}' recording is read from the shared data folder; set TINYSCORE_DATA to the folder that holds it, see the README's \"Data\")",
            path.display(),
            crate::output::reason(&source),
            spec.split(':').next().unwrap_or(spec)
        ),
        r => Ok(r?),
    }
}

/// Loads a file that must be a file (`eval --samples`, `denoise --input`): a missing path is
/// reported as such, never as an unknown data set.
pub fn load_file(path: &std::path::Path) -> Result<Dataset> {
    if let Err(e) = std::fs::symlink_metadata(path) {
        bail!("{}: {}", path.display(), crate::output::reason(&e));
    }
    Ok(data::load(&path.to_string_lossy(), 0, 0)?)
}

/// Whether `spec` is a built-in set generated from the seed (it takes a size, --n).
pub fn is_generated(spec: &str) -> bool {
    data::BUILTIN.contains(&spec) && !is_recording(spec)
}

fn is_recording(spec: &str) -> bool {
    RECORDINGS.contains(&spec.split(':').next().unwrap_or(spec))
}

/// The data spec of `--data NAME [--window N]`: `ecg:N` for a window length, which only the `ecg`
/// data set has.
pub fn with_window(data: &str, window: Option<usize>) -> Result<String> {
    match window {
        None => Ok(data.to_string()),
        Some(w) if data == "ecg" => {
            if !(2..=4096).contains(&w) {
                bail!("--window must be in 2..=4096, got {w}");
            }
            Ok(format!("ecg:{w}"))
        }
        Some(_) => bail!("--window applies to the ecg data set only, not '{data}'"),
    }
}

/// The training data of `spec`: a generated set's draw from `seed`, a recording's first 80%, or
/// a whole file.
pub fn training_set(spec: &str, n: usize, seed: u64) -> Result<Dataset> {
    let set = load(spec, n, seed)?;
    Ok(if is_recording(spec) { set.split_holdout(HOLDOUT).0 } else { set })
}

/// Held-out data of `spec`: a fresh draw of a generated set (another seed than any training
/// draw), a recording's last 20%, or a whole file.
pub fn heldout_set(spec: &str, n: usize, seed: u64) -> Result<Dataset> {
    let set = load(spec, n, seed.wrapping_add(HELDOUT_SEED_OFFSET))?;
    Ok(if is_recording(spec) { set.split_holdout(HOLDOUT).1 } else { set })
}
