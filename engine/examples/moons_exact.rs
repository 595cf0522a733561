//! The samplers on the *exact* score of the moons distribution: how close each sampler gets to the
//! data when the network makes no error, i.e. its own discretisation error (docs/samplers.md §6.4).
//!
//! The moons distribution of `tinyscore train --data moons` (docs/training.md) is a continuous
//! mixture over θ ~ U[0, π) of N(c(θ), s² I), s = 0.05, with c the upper curve (cos θ, sin θ) or
//! the lower one (1 − cos θ, 0.5 − sin θ). Here θ runs over a grid of M points per curve
//! (θ_j = π(j + ½)/M, spacing π/M ≪ s), so the data are a mixture of 2M Gaussians whose noised
//! marginal on the discrete VP process is Σ_k N(α_t μ_k, (α_t² s² + σ_t²) I)/2M and whose ε is
//! exact: ε(x, t) = σ_t (x − α_t E[μ | x]) / v_t + … (below, with the posterior weights of the
//! components). The samples are in the data's units, the process is the checked-in models' one
//! (N = 1000, linear β from 1e-4 to 0.02), and each sample i has the Philox noise (seed, i).
//!
//! ```sh
//! cargo run --release -p tinyscore-engine --example moons_exact -- dpmpp-sde 10 7 10000 s.csv
//! target/release/tinyscore eval --samples s.csv --data moons
//! ```
//!
//! Arguments: SAMPLER (ddpm, ddim, dpmpp-2m, dpmpp-3m, dpmpp-sde, unipc; `:leading`,
//! `:linspace` or `:karras` after a few-step solver's name for that spacing, trailing otherwise), STEPS, SEED,
//! N, OUT.csv.

use std::io::Write;

use tinyscore_engine::rng::Philox;
use tinyscore_engine::sampler::{
    sample, Ddim, Ddpm, Dpmpp, DpmppSde, EpsModel, Plan, Sampler, Timesteps, UniPc, Variance,
};
use tinyscore_engine::schedule::{BetaSchedule, Diffusion, Spacing, VpDiscrete};

/// Components per curve.
const M: usize = 400;
/// The data's noise (docs/training.md: `make_moons` with noise 0.05).
const S: f64 = 0.05;

struct Moons {
    process: Diffusion,
    mu: Vec<[f64; 2]>,
    logr: Vec<f64>,
}

impl Moons {
    fn new(process: Diffusion) -> Self {
        let mut mu = Vec::with_capacity(2 * M);
        for j in 0..M {
            let th = core::f64::consts::PI * (j as f64 + 0.5) / M as f64;
            mu.push([th.cos(), th.sin()]);
            mu.push([1.0 - th.cos(), 0.5 - th.sin()]);
        }
        let logr = vec![0.0; mu.len()];
        Self { process, mu, logr }
    }
}

impl EpsModel for Moons {
    fn dim(&self) -> usize {
        2
    }

    fn eps(&mut self, x: &[f32], t: f32, out: &mut [f32]) {
        let (a, s) = self.process.marginal(t);
        let (a, s) = (a as f64, s as f64);
        let v = a * a * S * S + s * s;
        let (x0, x1) = (x[0] as f64, x[1] as f64);
        let mut top = f64::NEG_INFINITY;
        for (l, m) in self.logr.iter_mut().zip(&self.mu) {
            *l = -0.5 * ((x0 - a * m[0]).powi(2) + (x1 - a * m[1]).powi(2)) / v;
            top = top.max(*l);
        }
        // E[μ | x_t] under the components' posterior weights.
        let (mut z, mut e0, mut e1) = (0.0, 0.0, 0.0);
        for (l, m) in self.logr.iter().zip(&self.mu) {
            let r = (l - top).exp();
            z += r;
            e0 += r * m[0];
            e1 += r * m[1];
        }
        // ε = −σ ∇log p_t = σ (x − α E[μ | x]) / v.
        out[0] = (s * (x0 - a * e0 / z) / v) as f32;
        out[1] = (s * (x1 - a * e1 / z) / v) as f32;
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 5 {
        eprintln!("usage: moons_exact SAMPLER[:leading|:linspace] STEPS SEED N OUT.csv");
        std::process::exit(2);
    }
    let (name, spacing, karras) = match args[0].split_once(':') {
        None => (args[0].as_str(), Spacing::Trailing, false),
        Some((n, "leading")) => (n, Spacing::Leading, false),
        Some((n, "linspace")) => (n, Spacing::Linspace, false),
        Some((n, "karras")) => (n, Spacing::Trailing, true),
        Some((_, other)) => fail(&format!("unknown spacing `{other}`")),
    };
    let num = |i: usize| -> u64 {
        args[i].parse().unwrap_or_else(|_| fail(&format!("`{}` is not a number", args[i])))
    };
    let (steps, seed, n) = (num(1) as u32, num(2), num(3));
    let timesteps = Timesteps { spacing, karras };
    let sampler = match name {
        "ddpm" => Sampler::Ddpm(Ddpm { steps, variance: Variance::Posterior }),
        "ddim" => Sampler::Ddim(Ddim { steps, eta: 0.0 }),
        "dpmpp-2m" => Sampler::Dpmpp(Dpmpp { steps, order: 2, timesteps }),
        "dpmpp-3m" => Sampler::Dpmpp(Dpmpp { steps, order: 3, timesteps }),
        "dpmpp-sde" => Sampler::DpmppSde(DpmppSde { steps, order: 2, timesteps }),
        "unipc" => Sampler::UniPc(UniPc { steps, order: 2, timesteps }),
        other => fail(&format!("unknown sampler `{other}`")),
    };
    let process =
        Diffusion::Discrete(VpDiscrete::new(1000, BetaSchedule::DDPM_LINEAR).expect("the linear schedule"));
    sampler.check(&process).unwrap_or_else(|e| fail(&format!("{e:?}")));
    let plan: Plan = sampler.into();
    let mut model = Moons::new(process.clone());
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(&args[4]).unwrap_or_else(|e| fail(&e.to_string())));
    for i in 0..n as u32 {
        let mut x = [0.0f32; 2];
        sample::<2, _>(&mut model, &process, &plan, &mut Philox::new(seed, i), &mut x)
            .unwrap_or_else(|e| fail(&format!("{e:?}")));
        writeln!(out, "{},{}", x[0], x[1]).unwrap_or_else(|e| fail(&e.to_string()));
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2);
}
