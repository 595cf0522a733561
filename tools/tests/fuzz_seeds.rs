//! The fuzzer's seed files (`fuzz/seeds/*.tsm`): valid models of every quantization mode the writer
//! supports, at two shapes (linear and cosine schedules). They are checked in because the
//! structure-aware fuzz target embeds them; this test keeps them equal to the writer's output.
//! Regenerate after a deliberate format change with
//! `TINYSCORE_BLESS=1 cargo test -p tinyscore-tools --test fuzz_seeds`.

use std::path::Path;

use tinyscore_engine::format::{Model, Process};
use tinyscore_engine::net::Dims;
use tinyscore_engine::schedule::BetaSchedule;
use tinyscore_tools::tsm::{write, ModelSpec, Quant};

fn seed(dims: Dims, schedule: BetaSchedule, steps: u32, quant: Quant) -> Vec<u8> {
    let params: Vec<f32> = (0..dims.param_count()).map(|i| (i as f32 * 0.61).sin() * 0.4).collect();
    let mean: Vec<f32> = (0..dims.dim).map(|i| i as f32 * 0.5 - 0.25).collect();
    let std: Vec<f32> = (0..dims.dim).map(|i| 0.5 + i as f32).collect();
    let spec = ModelSpec {
        dims,
        process: Process::VpDiscrete { steps, schedule },
        norm_mean: &mean,
        norm_std: &std,
        params: &params,
    };
    write(&spec, quant).expect("seed spec is consistent")
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
}
