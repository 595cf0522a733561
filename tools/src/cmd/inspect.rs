//! `tinyscore inspect`: the header, every tensor (dtype, shape, scale range, bytes), and totals:
//! file size, flash bytes, the activations the file declares and the RAM the engine holds for it
//! (`tinyscore_engine::footprint`).

use anyhow::Result;
use std::path::PathBuf;
use tinyscore_engine::footprint::{self, WorkingSet};
use tinyscore_engine::format::{DataKind, Model, Process, Role};
use tinyscore_engine::graph::{Branch, Op};
use tinyscore_engine::schedule::{BetaSchedule, Sde};

use super::{parse_model, read_file};

/// Arguments of `tinyscore inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Model file (.tsm).
    pub model: PathBuf,
    /// Samples drawn in lockstep for the `lockstep` RAM line (the firmware's `TINYSCORE_BATCH`).
    #[arg(long, default_value_t = DEFAULT_BATCH as u32, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub batch: u32,
}

/// Runs `tinyscore inspect`.
pub fn run_inspect(args: &InspectArgs) -> Result<()> {
    let bytes = read_file(&args.model)?;
    let model = parse_model(&args.model, &bytes)?;
    print!("{}", report_for_batch(&args.model.display().to_string(), &model, args.batch as usize));
    Ok(())
}

/// Samples in lockstep of the `lockstep` line by default (the firmware's default for w8a8).
pub const DEFAULT_BATCH: usize = 8;

/// The text `inspect` prints (its `lockstep` line for [`DEFAULT_BATCH`] samples).
pub fn report(name: &str, model: &Model<'_>) -> String {
    report_for_batch(name, model, DEFAULT_BATCH)
}

/// The text `inspect --batch BATCH` prints: `batch` samples drawn in lockstep on the `lockstep`
/// line.
pub fn report_for_batch(name: &str, model: &Model<'_>, batch: usize) -> String {
    use std::fmt::Write;
    let h = model.header();
    let mut s = String::new();
    let _ = writeln!(s, "{name}: tinyscore model, format v{} (quantization v{})", h.version, h.quant_version);
    let g = model.graph();
    let params: usize = model
        .tensors()
        .skip(2)
        .filter(|t| t.role == Role::Param || t.role.is_matrix() || is_bias(t.role))
        .map(|t| t.rows * t.cols)
        .sum();
    let data = model.data();
    let what = match data.kind {
        DataKind::Points => format!("points in R^{}", data.dim()),
        DataKind::Signal => {
            format!("signal, {} channel(s) x {} samples (D={})", data.channels, data.length, data.dim())
        }
        DataKind::Image { width } => format!(
            "image, {} channel(s) x {}x{} (D={})",
            data.channels,
            data.length / width.max(1),
            width,
            data.dim()
        ),
    };
    let _ = writeln!(s, "data      {what}");
    match g.mlp_dims() {
        Some(d) => {
            let _ = writeln!(
                s,
                "network   ScoreNet v1  D={} H={} F={} B={}  ({} layers, {} parameters, {} MACs per evaluation)",
                d.dim,
                d.hidden,
                d.freqs,
                d.blocks,
                g.len(),
                params,
                g.macs()
            );
        }
        None => {
            let _ = writeln!(
                s,
                "network   layer graph, input {}x{}  ({} layers, {} parameters, {} MACs per evaluation)",
                g.input().channels,
                g.input().length,
                g.len(),
                params,
                g.macs()
            );
        }
    }
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
    graph_table(&mut s, model);
    let _ = writeln!(s);
    let _ =
        writeln!(s, "{:<14} {:<5} {:>9} {:>21} {:>9}", "tensor", "dtype", "shape", "scale range", "bytes");
    let mut weights = 0usize;
    let names = tensor_names(model);
    for (t, name) in model.tensors().zip(&names) {
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
        let _ =
            writeln!(s, "{:<14} {:<5} {:>9} {:>21} {:>9}", name, t.dtype.name(), shape, scales, t.byte_len());
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "file      {} bytes ({} of tensor data, the rest header, table and padding)",
        h.file_len, weights
    );
    let _ = writeln!(s, "flash     {} bytes (the file is used in place, zero-copy)", h.file_len);
    let conv_int8 = model.is_int8() && model.dims().hidden == 0;
    if conv_int8 {
        let _ = writeln!(
            s,
            "quant     w8a8 integer path (int8 convolutions), {} timestep group(s) of activation scales",
            model.groups()
        );
        // The engine's integer walk: its own arena (docs/quantization.md, "Convolutions").
        let plan = tinyscore_engine::quant::Int8Plan::new(model.graph()).unwrap_or_default();
        let words = tinyscore_engine::net::ScoreNet::<'_, 0, 0, 0>::arena_len(model);
        let time = model.graph().regions().time;
        let places = tinyscore_engine::quant::plan::PLACES_WORDS;
        let _ = writeln!(
            s,
            "int arena time {time} + integer data {} + scratch {} + places {places} words = {} bytes (int8/int16 \
             values placed by their lives in the integer walk; one call's int32 accumulators, at most {} positions)",
            plan.data_words(),
            words - time - plan.data_words() - places,
            4 * words,
            tinyscore_engine::quant::plan::ACC_TILE
        );
        let _ = writeln!(
            s,
            "act       {} bytes of activations: the integer arena + sampler state 4*2D (f32); the file states {} \
             (act (file): the values in the f32 walk's blocks, the int32 accumulators of a whole convolution)",
            4 * (words + 2 * model.dims().dim),
            h.ram_bytes
        );
    } else if model.is_int8() {
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
            "act       {} bytes of activations (the file's figure): the arena + sampler state 4*2D (f32)",
            h.ram_bytes
        );
    }
    let ws = WorkingSet::of_model(model);
    let _ = writeln!(
        s,
        "ram       {} bytes the engine holds on a 32-bit MCU: arena {} + network buffers {} + model {} + \
         process {} + run vectors {}; add call frames (firmware: docs/BENCHMARKS.md)",
        ws.total(),
        ws.arena,
        ws.network,
        ws.model,
        ws.process,
        ws.vectors
    );
    let d = model.dims().dim;
    let _ = writeln!(
        s,
        "lockstep  {} bytes more to draw K = {batch} samples in lockstep (the firmware's TINYSCORE_BATCH, \
         --batch K): the other chains' run vectors, the batch arena, the integer tiles",
        footprint::lockstep_bytes_of(model, batch)
    );
    if d >= 2 {
        let _ = writeln!(
            s,
            "stream    {} bytes more for the streaming denoiser (denoise --stream) at capacity W = {d}: 4 buffers \
             of W f32 + {} bytes of state",
            footprint::stream_bytes(d),
            footprint::STREAM_STATE_BYTES_32
        );
    }
    s
}

/// Every tensor's name: ScoreNet v1's (`time.w1`, `blocks.0.w1`, …) when the graph is that
/// network, else `layers.{i}.w` / `layers.{i}.b` after the layer that owns it (the checkpoints'
/// names, `docs/scorenet.md`).
fn tensor_names(model: &Model<'_>) -> Vec<String> {
    let n = model.tensor_count();
    let mut names: Vec<String> = model.tensors().map(|t| t.role.name().to_string()).collect();
    match model.graph().mlp_dims() {
        Some(dims) => {
            for (slot, (role, _, _)) in tinyscore_engine::format::file_tensors(&dims).enumerate() {
                if slot < n {
                    names[slot] = role.name().to_string();
                }
            }
        }
        None => {
            for (i, l) in model.graph().layers().enumerate() {
                if let Some((w, b)) = l.op.params() {
                    names[w as usize] = format!("layers.{i}.w");
                    names[b as usize] = format!("layers.{i}.b");
                }
            }
        }
    }
    names
}

/// Whether `role` is a bias of ScoreNet v1 (version-1 roles).
fn is_bias(role: Role) -> bool {
    matches!(
        role,
        Role::TimeB1 | Role::TimeB2 | Role::InputB | Role::BlockB1(_) | Role::BlockB2(_) | Role::OutputB
    )
}

/// The layer graph as a table: layer, op, inputs, output shape, parameters, MACs, and where its
/// output lives in the arena (region, offset and size in 4-byte words).
fn graph_table(s: &mut String, model: &Model<'_>) {
    use std::fmt::Write;
    let g = model.graph();
    let r = g.regions();
    let _ = writeln!(
        s,
        "{:>5} {:<10} {:<11} {:>10} {:>9} {:>10}  {:<6} {:>8} {:>8}",
        "layer", "op", "inputs", "output", "params", "MACs", "region", "offset", "words"
    );
    for (i, l) in g.layers().enumerate() {
        let inputs = l.op.inputs().iter().flatten().map(|v| format!("v{v}")).collect::<Vec<_>>().join(",");
        let (name, params) = match l.op {
            Op::Conv1d { kernel, dilation, stride, weight, bias, .. } => {
                let (w, b) = (model.tensor_at(weight as usize), model.tensor_at(bias as usize));
                let mut n = format!("conv{kernel}");
                if dilation > 1 {
                    n += &format!("d{dilation}");
                }
                if stride > 1 {
                    n += &format!("s{stride}");
                }
                (n, w.rows * w.cols + b.rows)
            }
            Op::Linear { weight, bias, .. } => {
                let (w, b) = (model.tensor_at(weight as usize), model.tensor_at(bias as usize));
                ("linear".to_string(), w.rows * w.cols + b.rows)
            }
            op => (op.name().to_string(), 0),
        };
        let input = l.op.inputs()[0].map(|v| g.value_shape(v)).unwrap_or(l.shape);
        let macs = tinyscore_engine::graph::op::macs(&l.op, input, l.shape);
        let (region, offset) = if i + 1 == g.len() {
            ("output", "-".to_string())
        } else {
            (if l.branch == Branch::Time { "time" } else { "data" }, l.offset.to_string())
        };
        let _ = writeln!(
            s,
            "{:>5} {:<10} {:<11} {:>10} {:>9} {:>10}  {:<6} {:>8} {:>8}",
            i,
            name,
            inputs,
            format!("{}x{}", l.shape.channels, l.shape.length),
            params,
            macs,
            region,
            offset,
            l.shape.len()
        );
    }
    let _ = writeln!(
        s,
        "arena     time {} + data {} + scratch {} words = {} bytes (values that are never live together share words)",
        r.time,
        r.data,
        r.scratch,
        4 * r.total()
    );
}
