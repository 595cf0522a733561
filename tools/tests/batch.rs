//! The batched network and lockstep sampling give the same bits as one vector at a time:
//! `ScoreNet::eps_batch` against `ScoreNet::eps`, and the CLI's AVX2 builds of both
//! (`tinyscore_tools::simd`, when the CPU has AVX2) against them, for f32, f16, w8 and w8a8 files (the checked-in
//! moons models and a small model whose sizes leave every remainder of the blocked kernels), and
//! `sampler::draw_batch` against `sampler::draw` for every sampler on the processes it fits.

use tinyscore_engine::format::{Model, Process, Role};
use tinyscore_engine::net::{Dims, ScoreNet};
use tinyscore_engine::sampler::{
    draw, draw_batch, Ddim, Ddpm, Dpmpp, DpmppSde, Em, Langevin, OdeEuler, OdeHeun, Pc, Plan, Predictor,
    Sampler, Timesteps, UniPc, Variance,
};
use tinyscore_engine::schedule::{BetaSchedule, Sde, Spacing};
use tinyscore_tools::tsm::{write, ModelSpec, Quant};

type Net<'a> = ScoreNet<'a, 64, 128, 32, Vec<f32>>;

fn moons(name: &str) -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../firmware-example/models/");
    std::fs::read(format!("{path}{name}")).unwrap()
}

/// A file's parameters (dequantized), in `Dims::params()` order, and its normalisation.
fn params_of(m: &Model<'_>) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let dims = m.dims();
    let mut params = Vec::new();
    for (role, r, c) in dims.params() {
        let t = m.tensor(role);
        params.extend((0..r * c).map(|i| t.get(i)));
    }
    let get = |role| {
        let t = m.tensor(role);
        (0..t.rows).map(|i| t.get(i)).collect::<Vec<f32>>()
    };
    (params, get(Role::NormMean), get(Role::NormStd))
}

fn file(dims: Dims, process: Process, params: &[f32], mean: &[f32], std: &[f32], quant: Quant) -> Vec<u8> {
    write(&ModelSpec { dims, process, norm_mean: mean, norm_std: std, params }, quant).unwrap()
}

/// Every file the test runs: (label, bytes).
fn files() -> Vec<(String, Vec<u8>)> {
    let f32_moons = moons("moons-f32.tsm");
    let m = Model::parse(&f32_moons).unwrap();
    let (params, mean, std) = params_of(&m);
    let mut out = vec![("moons w8a8".to_string(), moons("moons-w8a8.tsm"))];
    for q in [Quant::F16, Quant::W8] {
        out.push((format!("moons {q:?}"), file(m.dims(), m.process(), &params, &mean, &std, q)));
    }
    out.push(("moons F32".into(), f32_moons.clone()));
    // Odd sizes: H = 20 and F = 6 (not multiples of the 8 lanes), 3 rows of output.
    let dims = Dims { dim: 3, hidden: 20, freqs: 6, blocks: 2 };
    let params: Vec<f32> = (0..dims.param_count()).map(|i| (i as f32 * 0.618).sin() * 0.4).collect();
    let process = Process::VpDiscrete { steps: 100, schedule: BetaSchedule::DDPM_LINEAR };
    for q in [Quant::F32, Quant::F16, Quant::W8] {
        out.push((format!("odd {q:?}"), file(dims, process, &params, &[0.1; 3], &[2.0; 3], q)));
    }
    out
}

#[test]
fn eps_batch_equals_eps_bit_for_bit() {
    for (label, bytes) in files() {
        let mut net: Net<'_> = ScoreNet::new(Model::parse(&bytes).unwrap(), vec![0.0; 1 << 16]).unwrap();
        let d = net.dims().dim;
        for k in [1usize, 2, 3, 4, 5, 8, 17, 40] {
            let xs: Vec<f32> = (0..k * d).map(|i| (i as f32 * 0.77 + k as f32).cos() * 1.7).collect();
            let mut scratch = vec![0.0f32; net.batch_scratch_len(k)];
            for t in [0.0f32, 0.013, 0.5, 0.97, 1.0] {
                let mut batch = vec![f32::NAN; k * d];
                net.eps_batch(&xs, t, &mut batch, &mut scratch);
                // The AVX2 build the CLI picks at run time (the portable one without AVX2).
                let mut fast = vec![f32::NAN; k * d];
                tinyscore_tools::simd::eps_batch(&mut net, &xs, t, &mut fast, &mut scratch);
                assert_eq!(
                    fast.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    batch.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "{label}: simd::eps_batch, k {k}, t {t}"
                );
                for i in 0..k {
                    let mut one = vec![0.0f32; d];
                    net.eps(&xs[i * d..(i + 1) * d], t, &mut one);
                    let mut one_fast = vec![0.0f32; d];
                    tinyscore_tools::simd::eps(&mut net, &xs[i * d..(i + 1) * d], t, &mut one_fast);
                    assert_eq!(
                        one_fast.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        one.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        "{label}: simd::eps, vector {i}, t {t}"
                    );
                    let got: Vec<u32> = batch[i * d..(i + 1) * d].iter().map(|v| v.to_bits()).collect();
                    let want: Vec<u32> = one.iter().map(|v| v.to_bits()).collect();
                    assert_eq!(got, want, "{label}: k {k}, vector {i}, t {t}");
                }
            }
        }
    }
}

#[test]
fn lockstep_sampling_equals_one_sample_at_a_time() {
    let dims = Dims { dim: 3, hidden: 20, freqs: 6, blocks: 2 };
    let params: Vec<f32> = (0..dims.param_count()).map(|i| (i as f32 * 0.618).sin() * 0.4).collect();
    let processes = [
        Process::VpDiscrete { steps: 100, schedule: BetaSchedule::DDPM_LINEAR },
        Process::Sde { steps: 100, sde: Sde::VP, t_eps: 1e-3 },
        Process::Sde { steps: 100, sde: Sde::VE, t_eps: 1e-3 },
    ];
    let samplers = [
        Sampler::Ddpm(Ddpm { steps: 20, variance: Variance::Posterior }),
        Sampler::Ddim(Ddim { steps: 10, eta: 0.5 }),
        Sampler::Em(Em { steps: 10 }),
        Sampler::OdeEuler(OdeEuler { steps: 10 }),
        Sampler::OdeHeun(OdeHeun { steps: 5 }),
        Sampler::Langevin(Langevin { steps: 4, per_level: 3, step: 0.1 }),
        Sampler::Pc(Pc { steps: 5, predictor: Predictor::ReverseDiffusion, corrector_steps: 1, snr: 0.16 }),
        Sampler::Dpmpp(Dpmpp { steps: 6, order: 3, timesteps: Timesteps::default() }),
        Sampler::Dpmpp(Dpmpp {
            steps: 6,
            order: 2,
            timesteps: Timesteps { spacing: Spacing::Trailing, karras: true },
        }),
        Sampler::DpmppSde(DpmppSde { steps: 6, order: 2, timesteps: Timesteps::default() }),
        Sampler::UniPc(UniPc { steps: 6, order: 2, timesteps: Timesteps::default() }),
        Sampler::UniPc(UniPc {
            steps: 6,
            order: 2,
            timesteps: Timesteps { spacing: Spacing::Linspace, karras: false },
        }),
    ];
    let mut ran = vec![0; samplers.len()];
    for process in processes {
        for quant in [Quant::F32, Quant::W8] {
            let bytes = file(dims, process, &params, &[0.1; 3], &[2.0; 3], quant);
            let model = Model::parse(&bytes).unwrap();
            let diff = model.process().diffusion().unwrap();
            let mut net: Net<'_> = ScoreNet::new(model, vec![0.0; 1 << 16]).unwrap();
            for (s, sampler) in samplers.iter().enumerate() {
                if sampler.check(&diff).is_err() {
                    continue;
                }
                ran[s] += 1;
                let plan = Plan { sampler: *sampler, denoise_final: true };
                let (first, k) = (7u32, 5usize);
                let mut scratch = vec![0.0f32; net.batch_scratch_len(k)];
                let mut batch = vec![0.0f32; k * 3];
                draw_batch::<15, 64, 128, 32, _>(&mut net, &diff, &plan, 42, first, &mut scratch, &mut batch)
                    .unwrap();
                for i in 0..k {
                    let mut one = [0.0f32; 3];
                    draw(&mut net, &diff, &plan, 42, first + i as u32, &mut one).unwrap();
                    let got: Vec<u32> = batch[i * 3..(i + 1) * 3].iter().map(|v| v.to_bits()).collect();
                    let want: Vec<u32> = one.iter().map(|v| v.to_bits()).collect();
                    assert_eq!(got, want, "{} on {process:?} ({quant:?}), sample {i}", sampler.name());
                }
            }
        }
    }
    assert!(ran.iter().all(|&r| r > 0), "every sampler must have run on some process: {ran:?}");
}
