//! The few-step solvers (`dpmpp`, `dpmpp-sde`, `unipc`) driven by exact scores:
//!
//! * on a 1-D Gaussian, whose probability-flow ODE has a closed-form solution (x_t = α_t μ +
//!   √(α_t² s² + σ_t²)·ξ with ξ constant along a path), the deterministic solvers' error at the
//!   end falls with their order, and order 1 is DDIM;
//! * on the 2-D mixture of `exact_score.rs`, every solver on every process and grid gives the
//!   mixture's weights, means and spreads at 20 steps;
//! * runs resume bit for bit from a copied `State`, the SDE variant uses its noise, and settings
//!   that a process does not define are refused with a typed error.

use tinyscore_engine::rng::{NoiseSource, Philox};
use tinyscore_engine::sampler::{
    sample, Ddim, Dpmpp, DpmppSde, EpsModel, Plan, Sampler, SamplerError, State, Timesteps, UniPc,
};
use tinyscore_engine::schedule::{BetaSchedule, Diffusion, Sde, Spacing, VpDiscrete};

/// N(μ, s²) in 1-D: ε̂(x, t) = σ_t (x − α_t μ)/(α_t² s² + σ_t²).
struct Gauss {
    process: Diffusion,
    mu: f64,
    s: f64,
}

impl Gauss {
    /// The probability-flow ODE's exact map from x at t_from to t_to.
    fn flow(&self, x: f64, t_from: f32, (a1, s1): (f32, f32)) -> f64 {
        let (a0, s0) = self.process.marginal(t_from);
        let sd = |a: f32, s: f32| ((a as f64 * self.s).powi(2) + (s as f64).powi(2)).sqrt();
        let xi = (x - a0 as f64 * self.mu) / sd(a0, s0);
        a1 as f64 * self.mu + sd(a1, s1) * xi
    }
}

impl EpsModel for Gauss {
    fn dim(&self) -> usize {
        1
    }
    fn eps(&mut self, x: &[f32], t: f32, out: &mut [f32]) {
        let (a, s) = self.process.marginal(t);
        let (a, s) = (a as f64, s as f64);
        out[0] = (s * (x[0] as f64 - a * self.mu) / (a * a * self.s * self.s + s * s)) as f32;
    }
}

fn discrete() -> Diffusion {
    Diffusion::Discrete(VpDiscrete::new(1000, BetaSchedule::DDPM_LINEAR).unwrap())
}

fn processes() -> Vec<(&'static str, Diffusion)> {
    vec![
        ("vp", discrete()),
        ("vpsde", Diffusion::sde(Sde::VP, 1e-3).unwrap()),
        ("subvp", Diffusion::sde(Sde::SUB_VP, 1e-3).unwrap()),
        ("ve", Diffusion::sde(Sde::Ve { sigma_min: 0.01, sigma_max: 20.0 }, 1e-5).unwrap()),
    ]
}

fn dpmpp(steps: u32, order: u32, timesteps: Timesteps) -> Sampler {
    Sampler::Dpmpp(Dpmpp { steps, order, timesteps })
}

fn unipc(steps: u32, order: u32, timesteps: Timesteps) -> Sampler {
    Sampler::UniPc(UniPc { steps, order, timesteps })
}

/// Mean |x − exact flow| over starting points for a deterministic sampler on `process`, at the
/// end of a continuous process, or one unit before the end of the discrete one (its last step
/// jumps to σ = 0 with x ← x̂₀, Tweedie's mean, which no ODE solver reaches: that error is the
/// same for every order and would hide their differences).
fn ode_error(process: &Diffusion, sampler: Sampler, ts: Timesteps, steps: u32) -> f64 {
    let mut model = Gauss { process: process.clone(), mu: 1.5, s: 0.3 };
    let units = if process.discrete().is_some() { steps - 1 } else { steps };
    let p = ts.point(process, steps, units);
    let t_start = ts.point(process, steps, 0).t;
    let mut err = 0.0;
    for i in 0..16 {
        let mut noise = Philox::new(5, i);
        let mut state: State<1> = sampler.start(process, &mut noise, 1);
        let x_start = state.x[0] as f64;
        for _ in 0..units {
            sampler.step(&mut model, process, &mut noise, &mut state);
        }
        err += (state.x[0] as f64 - model.flow(x_start, t_start, (p.alpha, p.sigma))).abs();
    }
    err / 16.0
}

/// At 16 steps on every process and grid the second-order solvers beat the first-order ones;
/// third order (3M) and UniPC-2 are about as good as 2M: within 20 % on every grid (better on
/// most; on the Karras levels the error at 16 steps is dominated by the few long steps at high σ,
/// where the Gaussian's x̂₀ bends most).
#[test]
fn error_falls_with_the_order_on_a_gaussian() {
    let karras = Timesteps { spacing: Spacing::Trailing, karras: true };
    for (name, process) in processes() {
        for ts in [Timesteps::default(), karras] {
            let steps = 16;
            let e = |s: Sampler| ode_error(&process, s, ts, steps);
            let (e1, e2, e3) = (e(dpmpp(steps, 1, ts)), e(dpmpp(steps, 2, ts)), e(dpmpp(steps, 3, ts)));
            let (eu1, eu2) = (e(unipc(steps, 1, ts)), e(unipc(steps, 2, ts)));
            println!(
                "{name} {ts:?}: 1M {e1:.2e} 2M {e2:.2e} 3M {e3:.2e} UniPC-1 {eu1:.2e} UniPC-2 {eu2:.2e}"
            );
            for err in [e1, e2, e3, eu1, eu2] {
                assert!(err < 0.1, "{name} {ts:?}: error {err}");
            }
            let gain = if ts.karras { 0.75 } else { 0.5 };
            assert!(e2 < gain * e1, "{name} {ts:?}: 2M {e2} vs 1M {e1}");
            assert!(eu1 < e1, "{name} {ts:?}: UniPC-1 {eu1} vs 1M {e1}");
            assert!(e3 < 1.2 * e2, "{name} {ts:?}: 3M {e3} vs 2M {e2}");
            assert!(eu2 < 1.2 * e2, "{name} {ts:?}: UniPC-2 {eu2} vs 2M {e2}");
        }
    }
}

#[test]
fn first_order_dpm_solver_is_ddim() {
    // On the discrete process with S dividing N, trailing visits DDIM's steps ⌊i·N/S⌋.
    let process = discrete();
    for steps in [10u32, 50] {
        let a: Plan = dpmpp(steps, 1, Timesteps::default()).into();
        let b: Plan = Sampler::Ddim(Ddim { steps, eta: 0.0 }).into();
        let mut model = Gauss { process: process.clone(), mu: -0.7, s: 0.5 };
        for i in 0..8 {
            let (mut xa, mut xb) = ([0.0f32], [0.0f32]);
            sample::<1, _>(&mut model, &process, &a, &mut Philox::new(9, i), &mut xa).unwrap();
            sample::<1, _>(&mut model, &process, &b, &mut Philox::new(9, i), &mut xb).unwrap();
            assert!((xa[0] - xb[0]).abs() < 1e-5, "S={steps} sample {i}: {} vs {}", xa[0], xb[0]);
        }
    }
}

// --- The 2-D mixture of exact_score.rs ---

const W: [f64; 2] = [0.3, 0.7];
const MU: [[f64; 2]; 2] = [[-2.0, 0.0], [2.0, 1.0]];
const S: f64 = 0.5;

struct Mixture {
    process: Diffusion,
}

impl EpsModel for Mixture {
    fn dim(&self) -> usize {
        2
    }
    fn eps(&mut self, x: &[f32], t: f32, out: &mut [f32]) {
        let (a, s) = self.process.marginal(t);
        let (a, s) = (a as f64, s as f64);
        let v = a * a * S * S + s * s;
        let logr: Vec<f64> = (0..2)
            .map(|k| W[k].ln() - 0.5 * (0..2).map(|i| (x[i] as f64 - a * MU[k][i]).powi(2)).sum::<f64>() / v)
            .collect();
        let m = logr[0].max(logr[1]);
        let r: Vec<f64> = logr.iter().map(|l| (l - m).exp()).collect();
        for i in 0..2 {
            let score: f64 = (0..2).map(|k| r[k] / (r[0] + r[1]) * -(x[i] as f64 - a * MU[k][i]) / v).sum();
            out[i] = (-s * score) as f32;
        }
    }
}

fn check_mixture(label: &str, xs: &[[f32; 2]]) {
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

fn few_step_samplers(process: &Diffusion, steps: u32) -> Vec<Sampler> {
    let mut grids = vec![Timesteps::default(), Timesteps { spacing: Spacing::Trailing, karras: true }];
    if process.discrete().is_some() {
        grids.push(Timesteps { spacing: Spacing::Leading, karras: false });
        grids.push(Timesteps { spacing: Spacing::Linspace, karras: false });
    }
    let mut out = Vec::new();
    for ts in grids {
        out.push(dpmpp(steps, 2, ts));
        out.push(dpmpp(steps, 3, ts));
        // The SDE solver's discretisation error at 20 steps moves the far component's mean by
        // up to 0.15 (it converges: 0.06 at 40 steps, 0.00 at 80); it gets twice the steps.
        out.push(Sampler::DpmppSde(DpmppSde { steps: 2 * steps, order: 2, timesteps: ts }));
        out.push(unipc(steps, 2, ts));
    }
    out
}

#[test]
fn every_few_step_solver_on_every_process_matches_the_mixture() {
    for (name, process) in processes() {
        for sampler in few_step_samplers(&process, 20) {
            sampler.check(&process).unwrap();
            assert_eq!(sampler.evaluations(), sampler.units());
            let mut model = Mixture { process: process.clone() };
            let plan: Plan = sampler.into();
            let xs: Vec<[f32; 2]> = (0..1500)
                .map(|i| {
                    let mut x = [0.0f32; 2];
                    sample::<2, _>(&mut model, &process, &plan, &mut Philox::new(17, i), &mut x).unwrap();
                    x
                })
                .collect();
            check_mixture(&format!("{name}/{sampler:?}"), &xs);
        }
    }
}

#[test]
fn stop_and_resume_is_bit_identical() {
    for (_, process) in processes() {
        for sampler in few_step_samplers(&process, 7) {
            let mut model = Mixture { process: process.clone() };
            let plan = Plan { sampler, denoise_final: true };
            let mut straight = [0.0f32; 2];
            sample::<2, _>(&mut model, &process, &plan, &mut Philox::new(3, 1), &mut straight).unwrap();
            let mut noise = Philox::new(3, 1);
            let mut state: State<2> = sampler.start(&process, &mut noise, 2);
            let mut saved = Vec::new();
            while state.unit < sampler.units() {
                sampler.step(&mut Mixture { process: process.clone() }, &process, &mut noise, &mut state);
                saved.push(state); // "sleep": only the copy survives
                state = *saved.last().unwrap();
            }
            let mut resumed = [0.0f32; 2];
            sampler.finish(&mut model, &process, true, &state, &mut resumed);
            assert_eq!(straight.map(f32::to_bits), resumed.map(f32::to_bits), "{sampler:?}");
            assert!(state.history[0] != [0.0; 2], "{sampler:?}: the history must be kept in the state");
        }
    }
}

#[test]
fn the_sde_variant_uses_its_noise() {
    struct Zero;
    impl NoiseSource for Zero {
        fn fill(&mut self, _: u32, _: u32, out: &mut [f32]) {
            out.fill(0.0);
        }
    }
    let process = discrete();
    let plan: Plan =
        Sampler::DpmppSde(DpmppSde { steps: 10, order: 2, timesteps: Timesteps::default() }).into();
    let mut model = Mixture { process: process.clone() };
    let (mut a, mut b, mut again) = ([0.0f32; 2], [0.0f32; 2], [0.0f32; 2]);
    sample::<2, _>(&mut model, &process, &plan, &mut Zero, &mut a).unwrap();
    sample::<2, _>(&mut model, &process, &plan, &mut Philox::new(1, 0), &mut b).unwrap();
    sample::<2, _>(&mut model, &process, &plan, &mut Zero, &mut again).unwrap();
    assert_eq!(a, again);
    assert_ne!(a, b);
}

#[test]
fn undefined_settings_are_refused_with_typed_errors() {
    let vp = Diffusion::sde(Sde::VP, 1e-3).unwrap();
    let lead = Timesteps { spacing: Spacing::Leading, karras: false };
    for sampler in [
        dpmpp(10, 2, lead),
        unipc(10, 2, lead),
        Sampler::DpmppSde(DpmppSde { steps: 10, order: 2, timesteps: lead }),
    ] {
        let err = sampler.check(&vp).unwrap_err();
        assert!(matches!(err, SamplerError::Spacing { spacing: "leading", .. }), "{err:?}");
        assert!(err.to_string().contains("continuous"), "{err}");
    }
    let d = discrete();
    assert!(matches!(dpmpp(10, 4, Timesteps::default()).check(&d), Err(SamplerError::Parameter { .. })));
    assert!(matches!(dpmpp(10, 0, Timesteps::default()).check(&d), Err(SamplerError::Parameter { .. })));
    assert!(matches!(unipc(10, 3, Timesteps::default()).check(&d), Err(SamplerError::Parameter { .. })));
    let sde3 = Sampler::DpmppSde(DpmppSde { steps: 10, order: 3, timesteps: Timesteps::default() });
    assert!(matches!(sde3.check(&d), Err(SamplerError::Parameter { .. })));
    assert_eq!(
        dpmpp(1001, 2, Timesteps::default()).check(&d),
        Err(SamplerError::Steps { found: 1001, max: 1000 })
    );
    assert_eq!(unipc(1000, 2, lead).check(&d), Err(SamplerError::Steps { found: 1000, max: 999 }));
    let both = Timesteps { spacing: Spacing::Linspace, karras: true };
    assert!(matches!(unipc(10, 2, both).check(&d), Err(SamplerError::Parameter { .. })));
}
