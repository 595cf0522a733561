//! Exact-score tests: data from a 2-D Gaussian mixture, whose noised marginal under every process
//! is again a Gaussian mixture with a closed-form score. Each sampler is driven by that exact ε
//! (through the same `EpsModel` trait the ScoreNet implements) and, with fixed seeds, must give
//! samples whose mixture weight, component means and component variances match the data.
//!
//! Data: w = (0.3, 0.7), μ = ((−2, 0), (2, 1)), per-component std s = 0.5 (isotropic).
//! Marginal at t: Σ w_k N(α_t μ_k, v_t I), v_t = α_t² s² + σ_t²; ε = −σ_t ∇log p_t.
//! Tolerances (1500 samples): weight ± 0.05, component means ± 0.1, component std within
//! 0.5 ± 0.1 (the finite step counts and t_min > 0 bias them slightly; Monte Carlo error is
//! ≈ 0.02 on the means).

use tinyscore_engine::rng::{NoiseSource, Philox};
use tinyscore_engine::sampler::{
    sample, Ddim, Ddpm, Em, EpsModel, Langevin, OdeEuler, OdeHeun, Pc, Plan, Predictor, Sampler, State,
    Variance,
};
use tinyscore_engine::schedule::{BetaSchedule, Diffusion, Sde, VpDiscrete};

const W: [f64; 2] = [0.3, 0.7];
const MU: [[f64; 2]; 2] = [[-2.0, 0.0], [2.0, 1.0]];
const S: f64 = 0.5;

struct Exact {
    process: Diffusion,
}

impl EpsModel for Exact {
    fn dim(&self) -> usize {
        2
    }

    fn eps(&mut self, x: &[f32], t: f32, out: &mut [f32]) {
        let (a, s) = self.process.marginal(t);
        let (a, s) = (a as f64, s as f64);
        let v = a * a * S * S + s * s;
        let mut logr = [0.0f64; 2];
        for k in 0..2 {
            let d2: f64 = (0..2).map(|i| (x[i] as f64 - a * MU[k][i]).powi(2)).sum();
            logr[k] = W[k].ln() - 0.5 * d2 / v;
        }
        let m = logr[0].max(logr[1]);
        let r: Vec<f64> = logr.iter().map(|l| (l - m).exp()).collect();
        let z = r[0] + r[1];
        for i in 0..2 {
            let score: f64 = (0..2).map(|k| r[k] / z * -(x[i] as f64 - a * MU[k][i]) / v).sum();
            out[i] = (-s * score) as f32;
        }
    }
}

fn processes() -> Vec<(&'static str, Diffusion)> {
    vec![
        ("vp", Diffusion::Discrete(VpDiscrete::new(1000, BetaSchedule::DDPM_LINEAR).unwrap())),
        ("vpsde", Diffusion::sde(Sde::VP, 1e-3).unwrap()),
        ("subvp", Diffusion::sde(Sde::SUB_VP, 1e-3).unwrap()),
        ("ve", Diffusion::sde(Sde::Ve { sigma_min: 0.01, sigma_max: 20.0 }, 1e-5).unwrap()),
    ]
}

fn check(label: &str, xs: &[[f32; 2]]) {
    let (mut n, mut m, mut q) = ([0.0f64; 2], [[0.0f64; 2]; 2], [[0.0f64; 2]; 2]);
    for x in xs {
        assert!(x[0].is_finite() && x[1].is_finite(), "{label}: non-finite sample");
        let k = usize::from(x[0] > 0.0);
        n[k] += 1.0;
        for i in 0..2 {
            m[k][i] += x[i] as f64;
            q[k][i] += (x[i] as f64).powi(2);
        }
    }
    let w = n[0] / xs.len() as f64;
    assert!((w - W[0]).abs() < 0.05, "{label}: weight {w}");
    for k in 0..2 {
        for i in 0..2 {
            let mean = m[k][i] / n[k];
            let std = (q[k][i] / n[k] - mean * mean).sqrt();
            assert!((mean - MU[k][i]).abs() < 0.1, "{label}: mean[{k}][{i}] = {mean}");
            assert!((std - S).abs() < 0.1, "{label}: std[{k}][{i}] = {std}");
        }
    }
}

fn run(process: &Diffusion, plan: &Plan, n: u32) -> Vec<[f32; 2]> {
    let mut model = Exact { process: process.clone() };
    (0..n)
        .map(|i| {
            let mut x = [0.0f32; 2];
            sample::<2, _>(&mut model, process, plan, &mut Philox::new(17, i), &mut x).unwrap();
            x
        })
        .collect()
}

#[test]
fn every_sampler_on_every_process_matches_the_mixture() {
    for (name, process) in processes() {
        let mut samplers = vec![
            Sampler::Ddim(Ddim { steps: 50, eta: 0.0 }),
            Sampler::Ddim(Ddim { steps: 50, eta: 1.0 }),
            Sampler::Em(Em { steps: 200 }),
            Sampler::OdeEuler(OdeEuler { steps: 100 }),
            Sampler::OdeHeun(OdeHeun { steps: 25 }),
            Sampler::Langevin(Langevin { steps: 50, per_level: 10, step: 0.5 }),
            Sampler::Pc(Pc {
                steps: 100,
                predictor: Predictor::ReverseDiffusion,
                corrector_steps: 1,
                snr: 0.16,
            }),
            Sampler::Pc(Pc {
                steps: 100,
                predictor: Predictor::EulerMaruyama,
                corrector_steps: 1,
                snr: 0.16,
            }),
        ];
        if process.discrete().is_some() {
            samplers.push(Sampler::Ddpm(Ddpm { steps: 100, variance: Variance::Posterior }));
            samplers.push(Sampler::Ddpm(Ddpm { steps: 100, variance: Variance::Beta }));
        }
        for sampler in samplers {
            for denoise_final in [false, true] {
                let plan = Plan { sampler, denoise_final };
                let xs = run(&process, &plan, 1500);
                check(&format!("{name}/{sampler:?}/denoise={denoise_final}"), &xs);
            }
        }
    }
}

#[test]
fn ddpm_refuses_continuous_processes_and_names_what_fits() {
    let process = Diffusion::sde(Sde::VP, 1e-3).unwrap();
    let err = Sampler::Ddpm(Ddpm { steps: 10, variance: Variance::Posterior }).check(&process).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("ddim") && text.contains("discrete"), "{text}");
}

/// Stopping between units, keeping only the copied `State`, and resuming gives the same bits.
#[test]
fn stop_and_resume_is_bit_identical() {
    for (_, process) in processes() {
        let plan: Plan = Sampler::Pc(Pc {
            steps: 20,
            predictor: Predictor::ReverseDiffusion,
            corrector_steps: 2,
            snr: 0.16,
        })
        .into();
        for sampler in [
            plan.sampler,
            Sampler::Langevin(Langevin { steps: 10, per_level: 3, step: 0.1 }),
            Sampler::OdeHeun(OdeHeun { steps: 7 }),
        ] {
            let mut model = Exact { process: process.clone() };
            let mut straight = [0.0f32; 2];
            sample::<2, _>(
                &mut model,
                &process,
                &Plan { sampler, denoise_final: true },
                &mut Philox::new(3, 1),
                &mut straight,
            )
            .unwrap();

            let mut noise = Philox::new(3, 1);
            let mut state: State<2> = sampler.start(&process, &mut noise, 2);
            let mut saved = Vec::new();
            while state.unit < sampler.units() {
                sampler.step(&mut Exact { process: process.clone() }, &process, &mut noise, &mut state);
                saved.push(state); // "sleep": only the copy survives
                state = *saved.last().unwrap();
            }
            let mut resumed = [0.0f32; 2];
            sampler.finish(&mut model, &process, true, &state, &mut resumed);
            assert_eq!(straight.map(f32::to_bits), resumed.map(f32::to_bits));
        }
    }
}

/// Zero noise turns a stochastic sampler into its mean path: it must be deterministic and differ
/// from the noisy run (the noise is really used).
#[test]
fn injected_noise_is_used() {
    struct Zero;
    impl NoiseSource for Zero {
        fn fill(&mut self, _: u32, _: u32, out: &mut [f32]) {
            out.fill(0.0);
        }
    }
    let process = Diffusion::sde(Sde::VP, 1e-3).unwrap();
    let plan: Plan = Sampler::Em(Em { steps: 20 }).into();
    let mut model = Exact { process: process.clone() };
    let (mut a, mut b) = ([0.0f32; 2], [0.0f32; 2]);
    sample::<2, _>(&mut model, &process, &plan, &mut Zero, &mut a).unwrap();
    sample::<2, _>(&mut model, &process, &plan, &mut Philox::new(1, 0), &mut b).unwrap();
    let mut again = [0.0f32; 2];
    sample::<2, _>(&mut model, &process, &plan, &mut Zero, &mut again).unwrap();
    assert_eq!(a, again);
    assert_ne!(a, b);
}
