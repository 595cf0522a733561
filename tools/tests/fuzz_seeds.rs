//! The fuzzer's seed files (`fuzz/seeds/*.tsm`): valid models of every quantization mode the writer
//! supports, at two shapes (linear and cosine schedules), the integer path and the continuous
//! processes, and version-3 conv graphs (a U-Net in f32, f16 and w8a8, a three-channel one); the
//! version-1 and conv test vectors of `engine/tests/data` are seeds too. They are checked in because the
//! structure-aware fuzz target embeds them; this test keeps them equal to the writer's output.
//! Regenerate after a deliberate format change with
//! `TINYSCORE_BLESS=1 cargo test -p tinyscore-tools --test fuzz_seeds`.

use std::path::Path;

use tinyscore_engine::format::{DataKind, DataShape, Model, Process};
use tinyscore_engine::graph::unet::UNet;
use tinyscore_engine::net::Dims;
use tinyscore_engine::schedule::{BetaSchedule, Sde};
use tinyscore_tools::calib;
use tinyscore_tools::tsm::{write, write_graph, write_graph_w8a8, write_w8a8, GraphSpec, ModelSpec, Quant};

fn seed(dims: Dims, schedule: BetaSchedule, steps: u32, quant: Quant) -> Vec<u8> {
    seed_with(dims, Process::VpDiscrete { steps, schedule }, quant)
}

/// A seed of any process; `w8a8` is calibrated on a few fixed points with two timestep groups.
fn seed_with(dims: Dims, process: Process, quant: Quant) -> Vec<u8> {
    let params: Vec<f32> = (0..dims.param_count()).map(|i| (i as f32 * 0.61).sin() * 0.4).collect();
    let mean: Vec<f32> = (0..dims.dim).map(|i| i as f32 * 0.5 - 0.25).collect();
    let std: Vec<f32> = (0..dims.dim).map(|i| 0.5 + i as f32).collect();
    let spec = ModelSpec { dims, process, norm_mean: &mean, norm_std: &std, params: &params };
    if quant == Quant::W8A8 {
        let xs: Vec<f32> = (0..16 * dims.dim).map(|i| (i as f32 * 0.37).cos()).collect();
        let points = calib::calibration_points(&xs, dims.dim, &process, 8, 1);
        let scales = calib::activation_scales(&dims, &params, &points, 2);
        let (requant, luts) = calib::integer_params(&dims, &params, &scales, 2);
        return write_w8a8(&spec, 2, &scales, &requant, &luts).expect("seed spec is consistent");
    }
    write(&spec, quant).expect("seed spec is consistent")
}

/// A conv U-Net file of `u` (weights `sin(0.53·i)·0.35`, a cosine schedule).
fn conv_seed(u: &UNet, quant: Quant) -> Vec<u8> {
    let plan = u.build().expect("seed U-Net is consistent");
    let params: Vec<f32> = (0..plan.param_count()).map(|i| (i as f32 * 0.53).sin() * 0.35).collect();
    let d = u.channels * u.length;
    let mean: Vec<f32> = (0..d).map(|i| (i as f32 * 0.3).cos() * 0.2).collect();
    let std: Vec<f32> = (0..d).map(|i| 0.8 + 0.03 * i as f32).collect();
    let data = DataShape { kind: DataKind::Signal, channels: u.channels, length: u.length };
    let process = Process::VpDiscrete { steps: 20, schedule: BetaSchedule::COSINE };
    let spec = GraphSpec { plan: &plan, data, process, norm_mean: &mean, norm_std: &std, params: &params };
    if quant == Quant::W8A8 {
        // Calibrated on a few fixed signals with two timestep groups, by the converter's functions.
        let float = write_graph(&spec, Quant::F32).expect("seed spec is consistent");
        let float = Model::parse(&float).expect("the writer's file parses");
        let xs: Vec<f32> = (0..16 * d).map(|i| (i as f32 * 0.37).cos()).collect();
        let points = calib::calibration_points(&xs, d, &process, 8, 1);
        let scales = calib::activation_scales_of(&float, &points, 2);
        let (requant, luts) = calib::integer_params_of(&float, &scales, 2);
        return write_graph_w8a8(&spec, 2, &scales, &requant, &luts).expect("seed spec is consistent");
    }
    write_graph(&spec, quant).expect("seed spec is consistent")
}

fn check_or_bless(path: &Path, bytes: &[u8], bless: bool) {
    assert!(Model::parse(bytes).is_ok(), "{}", path.display());
    if bless {
        std::fs::write(path, bytes).unwrap();
    }
    let stored = std::fs::read(path)
        .unwrap_or_else(|e| panic!("{}: {e} (regenerate with TINYSCORE_BLESS=1)", path.display()));
    assert_eq!(stored, bytes, "{}: the writer's output changed; bless if deliberate", path.display());
}

#[test]
fn conv_seeds_are_what_the_writer_writes() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/seeds"));
    let bless = std::env::var_os("TINYSCORE_BLESS").is_some();
    // The U-Net of the conv test vector (two levels), in f16; and one on three channels whose
    // layout transposes at the edges, with a dilation-free K = 5 and two blocks.
    let tiny = UNet { channels: 1, length: 16, width: 4, levels: 2, blocks: 1, kernel: 3, freqs: 4, temb: 8 };
    let three = UNet { channels: 3, length: 8, width: 3, levels: 1, blocks: 2, kernel: 5, freqs: 6, temb: 4 };
    check_or_bless(&dir.join("conv-tiny-f16.tsm"), &conv_seed(&tiny, Quant::F16), bless);
    check_or_bless(&dir.join("conv-3ch-f32.tsm"), &conv_seed(&three, Quant::F32), bless);
    check_or_bless(&dir.join("conv-tiny-w8a8.tsm"), &conv_seed(&tiny, Quant::W8A8), bless);
    // The test vectors of docs/format.md §9 and §11.8 are seeds as they are.
    let data = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../engine/tests/data"));
    for (seed, vector) in [("v1-tiny-f32.tsm", "tiny.tsm"), ("conv-tiny-f32.tsm", "tiny-conv.tsm")] {
        let want = std::fs::read(data.join(vector)).unwrap();
        check_or_bless(&dir.join(seed), &want, bless);
    }
}

#[test]
fn fuzz_seeds_are_what_the_writer_writes() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/seeds"));
    let bless = std::env::var_os("TINYSCORE_BLESS").is_some();
    let shapes = [
        ("tiny", Dims { dim: 2, hidden: 8, freqs: 4, blocks: 1 }, BetaSchedule::DDPM_LINEAR, 10),
        ("small", Dims { dim: 3, hidden: 16, freqs: 8, blocks: 2 }, BetaSchedule::COSINE, 50),
    ];
    for (shape, dims, schedule, steps) in shapes {
        for (name, quant) in [("f32", Quant::F32), ("f16", Quant::F16), ("w8", Quant::W8)] {
            let bytes = seed(dims, schedule, steps, quant);
            assert!(Model::parse(&bytes).is_ok());
            let path = dir.join(format!("{shape}-{name}.tsm"));
            if bless {
                std::fs::write(&path, &bytes).unwrap();
            }
            let stored = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (regenerate with TINYSCORE_BLESS=1)", path.display()));
            assert_eq!(stored, bytes, "{}: the writer's output changed; bless if deliberate", path.display());
        }
    }
    // The integer path and the continuous processes.
    let tiny = Dims { dim: 2, hidden: 8, freqs: 4, blocks: 1 };
    let vpsde = Process::Sde { steps: 20, sde: Sde::Vp { beta_min: 0.1, beta_max: 20.0 }, t_eps: 1e-3 };
    let ve = Process::Sde { steps: 20, sde: Sde::Ve { sigma_min: 0.01, sigma_max: 10.0 }, t_eps: 1e-3 };
    let discrete = Process::VpDiscrete { steps: 10, schedule: BetaSchedule::DDPM_LINEAR };
    for (name, process, quant) in [
        ("tiny-w8a8", discrete, Quant::W8A8),
        ("tiny-vpsde-w8a8", vpsde, Quant::W8A8),
        ("tiny-ve-f32", ve, Quant::F32),
    ] {
        let bytes = seed_with(tiny, process, quant);
        assert!(Model::parse(&bytes).is_ok(), "{name}");
        let path = dir.join(format!("{name}.tsm"));
        if bless {
            std::fs::write(&path, &bytes).unwrap();
        }
        let stored = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (regenerate with TINYSCORE_BLESS=1)", path.display()));
        assert_eq!(stored, bytes, "{}: the writer's output changed; bless if deliberate", path.display());
    }
}
