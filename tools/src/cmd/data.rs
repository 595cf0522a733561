//! `tinyscore data`: writes a built-in data set to CSV, and the rules every command uses to pick
//! training and held-out data from a `--data` argument.

use std::io::Write as _;

use anyhow::{bail, Context, Result};
use tinyscore_train::data::{self, Dataset};

use super::create_output;
use crate::cli::DataArgs;

/// Built-in sets that are recordings (fixed data): their last 20% is held out of training.
const RECORDINGS: &[&str] = &["digits", "ecg"];

/// Fraction of a recording held out of training.
pub const HOLDOUT: f64 = 0.2;

/// Seed offset of the held-out draw of a generated data set (never the training draw).
pub const HELDOUT_SEED_OFFSET: u64 = 0x5eed_0ff5;

/// Runs `tinyscore data`.
pub fn run_data(args: &DataArgs) -> Result<()> {
    if !data::BUILTIN.contains(&args.name.as_str()) {
        bail!("unknown data set '{}' (built-in: {})", args.name, data::BUILTIN.join(", "));
    }
    if args.n == 0 {
        bail!("--n must be at least 1");
    }
    let set = load(&with_window(&args.name, args.window)?, args.n, args.seed)?;
    let mut out = create_output(&args.out)?;
    data::write_csv(&mut out, set.dim, &set.values)
        .and_then(|_| out.flush())
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    Ok(())
}

/// Loads `spec` (a built-in name or a file).
pub fn load(spec: &str, n: usize, seed: u64) -> Result<Dataset> {
    Ok(data::load(spec, n, seed)?)
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
