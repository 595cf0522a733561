//! One module per subcommand, each with its arguments and one `run_*` entry point, and the few
//! helpers they share (reading a model file, the engine's host capacities). Outputs go through
//! [`crate::output`].

pub mod bench;
pub mod bench_train;
pub mod convert;
pub mod data;
pub mod denoise;
pub mod eval;
pub mod inspect;
pub mod likelihood;
pub mod quickstart;
pub mod sample;
pub mod train;

use std::path::Path;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use tinyscore_engine::format::Model;
use tinyscore_engine::net::{limits, ScoreNet};

/// The host engine compiled at the format's largest capacities, so it runs every valid file.
pub type HostNet<'a> =
    ScoreNet<'a, { limits::MAX_DIM }, { limits::MAX_HIDDEN }, { limits::MAX_FREQS }, Vec<f32>>;

/// A [`HostNet`] for `model`, with an arena of the size its graph plans.
/// The most f32 words of arena the host gives a model, for a batch of 16 vectors (1 GiB): a file
/// may state a large arena, and the host refuses it before allocating.
pub const HOST_ARENA_LIMIT_WORDS: usize = 1 << 28;

/// A [`HostNet`] for `model`, with an arena of the size its graph plans; refuses a model whose
/// 16-vector arena exceeds [`HOST_ARENA_LIMIT_WORDS`].
pub fn host_net(model: Model<'_>) -> Result<HostNet<'_>> {
    let batch = tinyscore_engine::walk::arena_len(model.graph(), 16);
    if batch > HOST_ARENA_LIMIT_WORDS {
        bail!(
            "the model's layers need {} MiB of activations for 16 vectors, more than the host's limit of {} MiB",
            batch / (1 << 18),
            HOST_ARENA_LIMIT_WORDS / (1 << 18)
        );
    }
    let words = HostNet::arena_len(&model);
    Ok(HostNet::new(model, vec![0.0; words])?)
}

/// Reads a whole file, with errors that name it (missing, a directory, unreadable, empty).
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    if path.is_dir() {
        bail!("{}: is a directory, expected a file", path.display());
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.is_empty() {
        bail!("{}: file is empty", path.display());
    }
    Ok(bytes)
}

/// Parses a `.tsm` file's bytes, naming the file in the error.
pub fn parse_model<'a>(path: &Path, bytes: &'a [u8]) -> Result<Model<'a>> {
    Model::parse(bytes).map_err(|e| anyhow::anyhow!("{}: invalid model file: {e}", path.display()))
}

/// Runs `work(net, i, row)` for every `dim`-long row i of `rows` on all cores, each thread with its
/// own copy of `net`, ticking `pb` once per row. Rows are cut into contiguous chunks, and row i's
/// result depends only on i, so the output is the same for any thread count.
pub fn par_rows<N, W>(rows: &mut [f32], dim: usize, net: &N, pb: &ProgressBar, work: W) -> Result<()>
where
    N: Clone + Send,
    W: Fn(&mut N, usize, &mut [f32]) -> Result<()> + Sync,
{
    let n = rows.len() / dim.max(1);
    let threads = std::thread::available_parallelism().map(|t| t.get()).unwrap_or(1).min(n.max(1));
    let chunk = n.div_ceil(threads).max(1);
    std::thread::scope(|scope| -> Result<()> {
        let mut handles = Vec::new();
        for (c, part) in rows.chunks_mut(chunk * dim).enumerate() {
            let (mut net, pb, work) = (net.clone(), pb.clone(), &work);
            handles.push(scope.spawn(move || -> Result<()> {
                for (j, row) in part.chunks_mut(dim).enumerate() {
                    work(&mut net, c * chunk + j, row)?;
                    pb.inc(1);
                }
                Ok(())
            }));
        }
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("a worker thread panicked"))??;
        }
        Ok(())
    })
}

/// A progress bar on standard error (hidden when standard error is not a terminal).
pub fn progress(len: u64, template: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}
