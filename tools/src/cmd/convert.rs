//! `tinyscore convert`: checkpoint (.safetensors, f32) → model file (.tsm).

use anyhow::{Context, Result};
use tinyscore_engine::format::Process;
use tinyscore_train::checkpoint::Checkpoint;

use super::{parse_model, write_atomic};
use crate::cli::{ConvertArgs, QuantArg};
use crate::tsm::{self, ModelSpec, Quant};

/// Runs `tinyscore convert`.
pub fn run_convert(args: &ConvertArgs) -> Result<()> {
    super::check_parent(&args.out)?;
    let ckpt = load_checkpoint(&args.checkpoint)?;
    let quant = match args.quant {
        QuantArg::F32 => Quant::F32,
        QuantArg::F16 => Quant::F16,
        QuantArg::W8 => Quant::W8,
    };
    let bytes = convert(&ckpt, quant, !args.raw)?;
    // Prove the file reads back before it replaces anything.
    parse_model(&args.out, &bytes)?;
    write_atomic(&args.out, &bytes)?;
    eprintln!(
        "wrote {} ({} bytes, {} weights, {} from {} at step {})",
        args.out.display(),
        bytes.len(),
        format!("{quant:?}").to_lowercase(),
        if args.raw { "raw weights" } else { "EMA weights" },
        args.checkpoint.display(),
        ckpt.step
    );
    Ok(())
}

/// Loads a checkpoint with an error that names the file.
pub fn load_checkpoint(path: &std::path::Path) -> Result<Checkpoint> {
    if path.is_dir() {
        anyhow::bail!("{}: is a directory, expected a checkpoint file", path.display());
    }
    Checkpoint::load(path).with_context(|| format!("{}: cannot load checkpoint", path.display()))
}

/// The `.tsm` bytes of a checkpoint.
pub fn convert(ckpt: &Checkpoint, quant: Quant, use_ema: bool) -> Result<Vec<u8>> {
    let params = if use_ema { &ckpt.ema } else { &ckpt.params };
    let c = &ckpt.config;
    let process = match c.sde {
        None => Process::VpDiscrete { steps: c.diffusion_steps, schedule: c.schedule },
        Some(sde) => Process::Sde { steps: c.diffusion_steps, sde, t_eps: c.t_eps },
    };
    let spec =
        ModelSpec { dims: ckpt.dims, process, norm_mean: &ckpt.norm.mean, norm_std: &ckpt.norm.std, params };
    Ok(tsm::write(&spec, quant)?)
}
