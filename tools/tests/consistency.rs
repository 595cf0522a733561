//! The engine and the trainer compute the same network: the same weights through the `.tsm`
//! writer and the engine's reader give the trainer's batched forward pass within a stated tolerance.

use tinyscore_engine::format::{Model, Process};
use tinyscore_engine::net::{Dims, ScoreNet};
use tinyscore_engine::schedule::BetaSchedule;
use tinyscore_tools::tsm::{write, ModelSpec, Quant};

#[test]
fn engine_forward_equals_trainer_forward() {
    for dims in [
        Dims { dim: 2, hidden: 32, freqs: 16, blocks: 2 },
        Dims { dim: 64, hidden: 96, freqs: 32, blocks: 3 },
        Dims { dim: 3, hidden: 8, freqs: 2, blocks: 1 },
    ] {
        let n = dims.param_count();
        let params: Vec<f32> = (0..n).map(|i| (i as f32 * 1.618).sin() * 0.3).collect();
        let mean = vec![0.0f32; dims.dim];
        let std = vec![1.0f32; dims.dim];
        let spec = ModelSpec {
            dims,
            process: Process::VpDiscrete { steps: 1000, schedule: BetaSchedule::DDPM_LINEAR },
            norm_mean: &mean,
            norm_std: &std,
            params: &params,
        };
        let bytes = write(&spec, Quant::F32).unwrap();
        let mut net: ScoreNet<'_, 64, 96, 32, Vec<f32>> =
            ScoreNet::new(Model::parse(&bytes).unwrap(), vec![0.0; 1 << 16]).unwrap();

        let batch = 17;
        let x: Vec<f32> = (0..batch * dims.dim).map(|i| (i as f32 * 0.77).cos() * 1.5).collect();
        let t: Vec<f32> = (0..batch).map(|i| i as f32 / (batch - 1) as f32).collect();
        let trainer = tinyscore_train::train::forward(&dims, &params, &x, &t);
        let mut worst = 0.0f32;
        for b in 0..batch {
            let mut eps = vec![0.0f32; dims.dim];
            net.eps(&x[b * dims.dim..(b + 1) * dims.dim], t[b], &mut eps);
            for (e, r) in eps.iter().zip(&trainer[b * dims.dim..(b + 1) * dims.dim]) {
                let err = (e - r).abs();
                assert!(err <= 1e-4 + 1e-4 * r.abs(), "{dims:?} sample {b}: engine {e} trainer {r}");
                worst = worst.max(err);
            }
        }
        println!("{dims:?}: max |engine - trainer| = {worst:e}");
    }
}
