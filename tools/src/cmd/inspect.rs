//! `tinyscore inspect`: the header, every tensor (dtype, shape, scale range, bytes), and totals:
//! file size, flash bytes, the activations the file declares and the RAM the engine holds for it
//! (`tinyscore_engine::footprint`).

use anyhow::Result;
use std::path::PathBuf;
use tinyscore_engine::footprint::WorkingSet;
use tinyscore_engine::format::{Model, Process, Role};
use tinyscore_engine::schedule::{BetaSchedule, Sde};

use super::{parse_model, read_file};

/// Arguments of `tinyscore inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Model file (.tsm).
    pub model: PathBuf,
}

/// Runs `tinyscore inspect`.
pub fn run_inspect(args: &InspectArgs) -> Result<()> {
    let bytes = read_file(&args.model)?;
    let model = parse_model(&args.model, &bytes)?;
    print!("{}", report(&args.model.display().to_string(), &model));
    Ok(())
}

/// The text `inspect` prints.
pub fn report(name: &str, model: &Model<'_>) -> String {
    use std::fmt::Write;
    let h = model.header();
    let d = h.dims;
    let mut s = String::new();
    let _ = writeln!(s, "{name}: tinyscore model, format v{} (quantization v{})", h.version, h.quant_version);
    let _ = writeln!(
        s,
        "network   ScoreNet v1  D={} H={} F={} B={}  ({} parameters, {} MACs per evaluation)",
        d.dim,
        d.hidden,
        d.freqs,
        d.blocks,
        d.param_count(),
        d.macs()
    );
    match h.process {
        Process::VpDiscrete { steps, schedule } => {
            let sched = match schedule {
                BetaSchedule::Linear { beta_start, beta_end } => {
                    format!("linear beta {beta_start}..{beta_end}")
                }
                BetaSchedule::Cosine { s } => format!("cosine s={s}"),
            };
            let _ = writeln!(s, "process   VP discrete (DDPM), N={steps}, {sched}");
        }
        Process::Sde { steps, sde, t_eps } => {
            let what = match sde {
                Sde::Vp { beta_min, beta_max } => format!("VP SDE, beta {beta_min}..{beta_max}"),
                Sde::SubVp { beta_min, beta_max } => format!("sub-VP SDE, beta {beta_min}..{beta_max}"),
                Sde::Ve { sigma_min, sigma_max } => format!("VE SDE, sigma {sigma_min}..{sigma_max}"),
            };
            let _ = writeln!(s, "process   {what}, t_eps={t_eps}, default sampler steps {steps}");
        }
    }
    let _ = writeln!(s, "crc32     {:#010x}", h.crc);
    let _ = writeln!(s);
    let _ =
        writeln!(s, "{:<14} {:<5} {:>9} {:>21} {:>9}", "tensor", "dtype", "shape", "scale range", "bytes");
    let mut weights = 0usize;
    for t in model.tensors() {
        let shape = if t.cols == 1 { format!("{}", t.rows) } else { format!("{}x{}", t.rows, t.cols) };
        let range = match t.role {
            // The activation scales are the values themselves.
            Role::ActScales => {
                let n = t.rows * t.cols;
                let lo = (0..n).map(|i| t.get(i)).fold(f32::INFINITY, f32::min);
                let hi = (0..n).map(|i| t.get(i)).fold(0.0, f32::max);
                Some((lo, hi))
            }
            _ => t.scale_range(),
        };
        let scales = match range {
            Some((lo, hi)) => format!("{lo:.3e}..{hi:.3e}"),
            None => "-".into(),
        };
        weights += t.byte_len();
        let _ = writeln!(
            s,
            "{:<14} {:<5} {:>9} {:>21} {:>9}",
            t.role.name(),
            t.dtype.name(),
            shape,
            scales,
            t.byte_len()
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "file      {} bytes ({} of tensor data, the rest header, table and padding)",
        h.file_len, weights
    );
    let _ = writeln!(s, "flash     {} bytes (the file is used in place, zero-copy)", h.file_len);
    if model.is_int8() {
        let _ = writeln!(
            s,
            "quant     w8a8 integer path, {} timestep group(s) of activation scales",
            model.groups()
        );
        let _ = writeln!(
            s,
            "act       {} bytes of activations (the file's figure): time embedding 4*(F+3H) f32 + integer \
             activations 2H (i16) + 2H + D (i8) + sampler state 4*2D (f32)",
            h.ram_bytes
        );
    } else {
        let _ = writeln!(
            s,
            "act       {} bytes of activations (the file's figure): 4*(F+4H) + sampler state 4*2D (f32)",
            h.ram_bytes
        );
    }
    let ws = WorkingSet::of(d);
    let _ = writeln!(
        s,
        "ram       {} bytes the engine holds on a 32-bit MCU: network buffers {} + model table {} + \
         process {} + run vectors {}; add call frames (firmware: docs/BENCHMARKS.md)",
        ws.total(),
        ws.network,
        ws.model,
        ws.process,
        ws.vectors
    );
    s
}
