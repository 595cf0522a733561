//! `tinyscore bench-train`: steps per second of the training step over a grid of widths and batch
//! sizes, on the CPU or the CUDA backend, with the FLOP count of a step and the fraction of the
//! device's peak. `host-train/bench/pytorch_baseline.py` prints the same table for PyTorch.

use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use tinyscore_engine::graph::build::Plan;
use tinyscore_engine::graph::{op, Op};
use tinyscore_engine::net::limits;
use tinyscore_kernels::cuda::Gpu;
use tinyscore_train::cuda::CudaTrainer;
use tinyscore_train::data;
use tinyscore_train::train::{Arch, TrainConfig, Trainer};

use super::train::{ArchArg, CONV_DEFAULTS};
use crate::cli::Device;

/// Arguments of `tinyscore bench-train`.
#[derive(Debug, clap::Args)]
pub struct BenchTrainArgs {
    /// Training backend.
    #[arg(long, value_enum, default_value_t = Device::Cuda)]
    pub device: Device,
    /// Network: `mlp` on moons (D = 2) or `conv` on ECG windows of --window samples.
    #[arg(long, value_enum, default_value_t = ArchArg::Mlp)]
    pub arch: ArchArg,
    /// Hidden widths H (default 128,256,512), or with --arch conv the first level's channels c_0
    /// (default 16,32,64); comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub widths: Option<Vec<usize>>,
    /// --arch conv: ECG window length L.
    #[arg(long, default_value_t = 256)]
    pub window: usize,
    /// --arch conv: downsamplings.
    #[arg(long, default_value_t = CONV_DEFAULTS.levels)]
    pub levels: usize,
    /// --arch conv: kernel size K (odd).
    #[arg(long, default_value_t = CONV_DEFAULTS.kernel)]
    pub kernel: usize,
    /// --arch conv: time-embedding width T (default: 4 × the width).
    #[arg(long)]
    pub temb: Option<usize>,
    /// Batch sizes (comma-separated; each 1..=262144).
    #[arg(long, value_delimiter = ',', default_values_t = [256usize, 4096, 65536])]
    pub batches: Vec<usize>,
    /// Residual blocks B (mlp: 3; conv: per level, 1).
    #[arg(long)]
    pub blocks: Option<usize>,
    /// Time features F.
    #[arg(long, default_value_t = 32)]
    pub freqs: usize,
    /// Timed steps per configuration (after 10 warm-up steps).
    #[arg(long, default_value_t = 200)]
    pub steps: u64,
    /// --device cuda: replay each step as a CUDA graph.
    #[arg(long)]
    pub cuda_graph: bool,
    /// Peak FP32 throughput of the device in TFLOP/s, for the "% of peak" column (default: 67 for
    /// an H100 SXM, 51 for an H100 PCIe, none otherwise).
    #[arg(long)]
    pub peak_tflops: Option<f64>,
}

/// Warm-up steps before timing (kernel compilation, caches, graph capture).
const WARMUP: u64 = 10;

/// FLOPs of one training step of the graph `plan` on `batch` examples: for every linear and
/// conv layer, 2·batch·MACs for the forward product, as many for the weight gradient, and as many
/// for the input gradient except where the input needs none (x_t, or the time features φ).
/// Element-wise work (SiLU, loss, Adam) is not counted.
pub fn step_flops(plan: &Plan, batch: usize) -> f64 {
    let g = plan.graph().expect("a built plan validates");
    let layers: Vec<_> = g.layers().collect();
    let mut macs = 0.0;
    for l in &layers {
        let x = match l.op {
            Op::Linear { x, .. } | Op::Conv1d { x, .. } => x,
            _ => continue,
        };
        let m = op::macs(&l.op, g.value_shape(x), l.shape) as f64;
        let leaf = x == 0 || matches!(layers[x as usize - 1].op, Op::TimeFeatures { .. });
        macs += if leaf { 2.0 * m } else { 3.0 * m };
    }
    2.0 * batch as f64 * macs
}

/// Runs `tinyscore bench-train`.
pub fn run_bench_train(args: &BenchTrainArgs) -> Result<()> {
    if args.steps == 0 {
        bail!("--steps must be at least 1");
    }
    let conv = args.arch == ArchArg::Conv;
    if args.temb == Some(0) {
        bail!("--temb must be at least 1");
    }
    let max_width = if conv { op::MAX_CHANNELS / 2 } else { limits::MAX_HIDDEN };
    let default_widths = if conv { vec![16, 32, 64] } else { vec![128, 256, 512] };
    let widths = args.widths.clone().unwrap_or(default_widths);
    for &w in &widths {
        if w == 0 || w > max_width {
            bail!("--widths: {w} is outside 1..={max_width}");
        }
    }
    let blocks = args.blocks.unwrap_or(if conv { CONV_DEFAULTS.blocks } else { 3 });
    if blocks == 0 || blocks > limits::MAX_BLOCKS {
        bail!("--blocks must be in 1..={}, got {blocks}", limits::MAX_BLOCKS);
    }
    let arch = if conv {
        if !(2..=4096).contains(&args.window) {
            bail!("--window must be in 2..=4096, got {}", args.window);
        }
        Arch::Conv { channels: 1, levels: args.levels, kernel: args.kernel, temb: args.temb.unwrap_or(0) }
    } else {
        Arch::Mlp
    };
    let max_batch = super::train::MAX_BATCH;
    if let Some(b) = args.batches.iter().find(|&&b| b == 0 || b > max_batch) {
        bail!("--batches: {b} is outside 1..={max_batch}");
    }
    let spec = if conv { format!("ecg:{}", args.window) } else { "moons".to_string() };
    let examples = data::load(&spec, 20_000, 0).with_context(|| format!("loading {spec}"))?;
    let gpu = match args.device {
        Device::Cpu => None,
        Device::Cuda => Some(Gpu::open(0).map_err(|e| anyhow!("--device cuda: {e}"))?),
    };
    let device_name = gpu.as_ref().map_or("CPU".to_string(), |g| g.name().to_string());
    let peak = args.peak_tflops.or_else(|| known_peak(&device_name));
    println!(
        "{:>6} {:>7} {:>11} {:>14} {:>11} {:>9} {:>8}",
        "width", "batch", "steps/s", "examples/s", "GFLOP/step", "TFLOP/s", "% peak"
    );
    for &width in &widths {
        for &batch in &args.batches {
            let arch = match arch {
                Arch::Conv { temb: 0, channels, levels, kernel } => {
                    Arch::Conv { channels, levels, kernel, temb: 4 * width }
                }
                a => a,
            };
            let cfg = TrainConfig {
                arch,
                hidden: width,
                blocks,
                freqs: args.freqs,
                batch,
                ..TrainConfig::default()
            };
            let mut trainer = Trainer::new(cfg, &examples, &spec)?;
            let plan = trainer.network().plan()?;
            let secs = match args.device {
                Device::Cpu => {
                    for _ in 0..WARMUP.min(args.steps) {
                        trainer.step();
                    }
                    let t0 = Instant::now();
                    for _ in 0..args.steps {
                        trainer.step();
                    }
                    t0.elapsed().as_secs_f64()
                }
                Device::Cuda => {
                    let dev = gpu.clone().ok_or_else(|| anyhow!("no GPU"))?;
                    let mut gpu =
                        CudaTrainer::on(dev, &trainer).map_err(|e| anyhow!("--device cuda: {e}"))?;
                    gpu.use_graph(args.cuda_graph);
                    for _ in 0..WARMUP {
                        gpu.step()?;
                    }
                    gpu.gpu().synchronize()?;
                    let t0 = Instant::now();
                    for _ in 0..args.steps {
                        gpu.step()?;
                    }
                    gpu.gpu().synchronize()?;
                    let secs = t0.elapsed().as_secs_f64();
                    if let Some(loss) = gpu.read_loss()? {
                        if !loss.is_finite() {
                            bail!("width {width} batch {batch}: the loss is {loss}");
                        }
                    }
                    secs
                }
            };
            let rate = args.steps as f64 / secs.max(1e-12);
            let flops = step_flops(&plan, batch);
            let tflops = flops * rate / 1e12;
            let pct = peak.map_or("-".to_string(), |p| format!("{:.1}", 100.0 * tflops / p));
            println!(
                "{width:>6} {batch:>7} {rate:>11.1} {:>14.0} {:>11.3} {tflops:>9.3} {pct:>8}",
                rate * batch as f64,
                flops / 1e9
            );
        }
    }
    println!(
        "# device: {device_name}; {}; {} timed steps after {WARMUP} warm-up; graph: {}; peak: {}",
        if conv {
            format!(
                "conv (width = c_0) levels={} blocks={blocks} K={} T={} F={} on {spec}",
                args.levels,
                args.kernel,
                args.temb.map_or("4·width".to_string(), |t| t.to_string()),
                args.freqs
            )
        } else {
            format!("mlp B={blocks} F={} D=2 (moons)", args.freqs)
        },
        args.steps,
        args.cuda_graph,
        peak.map_or("unknown (pass --peak-tflops)".to_string(), |p| format!("{p} TFLOP/s FP32"))
    );
    Ok(())
}

/// FP32 (non-tensor-core) peak of known devices, TFLOP/s.
fn known_peak(name: &str) -> Option<f64> {
    let n = name.to_ascii_lowercase();
    if n.contains("h100") && n.contains("pcie") {
        Some(51.2)
    } else if n.contains("h100") || n.contains("h200") {
        Some(66.9)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flop_count_is_three_products_per_layer_less_two_input_gradients() {
        // D=2, H=4, F=2, B=1: layers (in, out) = (2,4) time1, (4,4) time2, (2,4) input,
        // (4,4) ×2 block, (4,2) output. MACs = 8 + 16 + 8 + 32 + 8 = 72.
        let dims = tinyscore_engine::net::Dims { dim: 2, hidden: 4, freqs: 2, blocks: 1 };
        assert_eq!(dims.macs(), 72);
        // 3 products of every layer minus the input gradients of time1 (8) and input (8).
        let plan = tinyscore_engine::graph::mlp::build(&dims).unwrap();
        assert_eq!(step_flops(&plan, 10), 2.0 * 10.0 * (3.0 * 72.0 - 16.0));
    }
}
