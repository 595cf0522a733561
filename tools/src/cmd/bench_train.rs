//! `tinyscore bench-train`: steps per second of the training step over a grid of widths and batch
//! sizes, on the CPU or the CUDA backend, with the FLOP count of a step and the fraction of the
//! device's peak. `host-train/bench/pytorch_baseline.py` prints the same table for PyTorch.

use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use tinyscore_engine::net::{limits, Dims};
use tinyscore_kernels::cuda::Gpu;
use tinyscore_train::cuda::CudaTrainer;
use tinyscore_train::data;
use tinyscore_train::train::{TrainConfig, Trainer};

use crate::cli::Device;

/// Arguments of `tinyscore bench-train`.
#[derive(Debug, clap::Args)]
pub struct BenchTrainArgs {
    /// Training backend.
    #[arg(long, value_enum, default_value_t = Device::Cuda)]
    pub device: Device,
    /// Hidden widths H (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [128usize, 256, 512])]
    pub widths: Vec<usize>,
    /// Batch sizes (comma-separated; each 1..=262144).
    #[arg(long, value_delimiter = ',', default_values_t = [256usize, 4096, 65536])]
    pub batches: Vec<usize>,
    /// Residual blocks B.
    #[arg(long, default_value_t = 3)]
    pub blocks: usize,
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

/// FLOPs of one training step of `dims` on `batch` examples: for every linear layer (in, out),
/// 2·batch·in·out for the forward product, as many for the weight gradient, and as many for the
/// input gradient except for the two layers whose inputs need none (the input layer's x_t and the
/// first time layer's φ). Element-wise work (SiLU, loss, Adam) is not counted.
pub fn step_flops(dims: &Dims, batch: usize) -> f64 {
    let (d, h, f) = (dims.dim as f64, dims.hidden as f64, dims.freqs as f64);
    let macs = dims.macs() as f64; // F·H + H² + D·H + 2B·H² + H·D
    let no_input_grad = f * h + d * h;
    2.0 * batch as f64 * (3.0 * macs - no_input_grad)
}

/// Runs `tinyscore bench-train`.
pub fn run_bench_train(args: &BenchTrainArgs) -> Result<()> {
    if args.steps == 0 {
        bail!("--steps must be at least 1");
    }
    for &w in &args.widths {
        if w == 0 || w > limits::MAX_HIDDEN {
            bail!("--widths: {w} is outside 1..={}", limits::MAX_HIDDEN);
        }
    }
    let max_batch = super::train::MAX_BATCH;
    if let Some(b) = args.batches.iter().find(|&&b| b == 0 || b > max_batch) {
        bail!("--batches: {b} is outside 1..={max_batch}");
    }
    let moons = data::load("moons", 20_000, 0).context("generating moons")?;
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
    for &width in &args.widths {
        for &batch in &args.batches {
            let cfg = TrainConfig {
                hidden: width,
                blocks: args.blocks,
                freqs: args.freqs,
                batch,
                ..TrainConfig::default()
            };
            let mut trainer = Trainer::new(cfg, &moons, "moons")?;
            let dims = trainer.dims();
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
            let flops = step_flops(&dims, batch);
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
        "# device: {device_name}; B={} F={} D=2 (moons); {} timed steps after {WARMUP} warm-up; graph: {}; peak: {}",
        args.blocks,
        args.freqs,
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
        let dims = Dims { dim: 2, hidden: 4, freqs: 2, blocks: 1 };
        assert_eq!(dims.macs(), 72);
        // 3 products of every layer minus the input gradients of time1 (8) and input (8).
        assert_eq!(step_flops(&dims, 10), 2.0 * 10.0 * (3.0 * 72.0 - 16.0));
    }
}
