//! Argument parsing (clap derive) and dispatch to one `run_*` function per subcommand.

use anyhow::Result;
use clap::parser::ValueSource;
use clap::{ArgMatches, Parser, Subcommand, ValueEnum};

use crate::cmd;

/// tinyscore: score-based diffusion models for microcontrollers and edge CPUs.
#[derive(Debug, Parser)]
#[command(name = "tinyscore", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a ScoreNet with denoising score matching and write a checkpoint.
    Train(cmd::train::TrainArgs),
    /// Convert a checkpoint (.safetensors) into a .tsm model file.
    Convert(cmd::convert::ConvertArgs),
    /// Show a model file's header, tensors, size and RAM needs.
    Inspect(cmd::inspect::InspectArgs),
    /// Draw samples with the engine (the same code the firmware runs).
    Sample(cmd::sample::SampleArgs),
    /// Denoise noisy windows (one per CSV line), or fill their missing entries with --mask.
    Denoise(cmd::denoise::DenoiseArgs),
    /// Sliced Wasserstein distance between samples and held-out data, beside its floor.
    Eval(cmd::eval::EvalArgs),
    /// Write a built-in data set to CSV.
    Data(cmd::data::DataArgs),
    /// Held-out negative log-likelihood (nats and bits per dimension) via the probability-flow ODE.
    Likelihood(cmd::likelihood::LikelihoodArgs),
    /// Train moons on the CPU, convert, sample, plot and evaluate, in one go.
    Quickstart(cmd::quickstart::QuickstartArgs),
    /// Training throughput (steps/s, TFLOP/s) over a grid of widths and batch sizes.
    BenchTrain(cmd::bench_train::BenchTrainArgs),
    /// Network evaluations per second of model files, one thread, per precision.
    Bench(cmd::bench::BenchArgs),
}

/// Where training runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Device {
    /// The CPU backend (all cores).
    Cpu,
    /// The CUDA backend.
    Cuda,
}

/// The β schedule of the discrete VP process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Schedule {
    /// β linear from 1e-4 to 0.02 (Ho et al. 2020).
    Linear,
    /// Cosine ᾱ with s = 0.008 (Nichol & Dhariwal 2021).
    Cosine,
}

/// The diffusion process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProcessArg {
    /// Discrete variance-preserving (DDPM): N steps of --schedule.
    Vp,
    /// VP SDE, β(t) linear from 0.1 to 20, t continuous on [1e-3, 1].
    Vpsde,
    /// Sub-VP SDE, β(t) linear from 0.1 to 20, t continuous on [1e-3, 1].
    Subvp,
    /// VE SDE, σ(t) geometric from 0.01 to 50 (data units normalised), t on [1e-5, 1].
    Ve,
}

/// The weighting of the noise levels in the loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WeightingArg {
    /// The plain ε-loss (λ(t) = σ_t² in score terms).
    Simple,
    /// Likelihood weighting λ(t) = g(t)² (Song et al. 2021); SDE processes only.
    Likelihood,
}

/// The training objective.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LossArg {
    /// Denoising score matching (the ε-loss).
    Dsm,
    /// Sliced score matching with Rademacher projections (Song et al. 2019).
    Ssm,
    /// Sliced score matching, variance-reduced form.
    SsmVr,
}

/// Weight storage of `tinyscore convert`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum QuantArg {
    /// f32 weights.
    F32,
    /// f16 weights, f32 arithmetic.
    F16,
    /// int8 weights with per-output-channel scales, f32 activations.
    W8,
    /// int8 weights and activations, int32 accumulation, calibrated per timestep group.
    W8a8,
}

/// The samplers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SamplerArg {
    /// DDPM ancestral sampling (Ho et al. 2020); discrete VP models.
    Ddpm,
    /// DDIM with --eta (Song et al. 2021); every process.
    Ddim,
    /// Euler–Maruyama on the reverse SDE; every process.
    Em,
    /// Euler on the probability-flow ODE; every process.
    OdeEuler,
    /// Heun on the probability-flow ODE (2 evaluations per step); every process.
    OdeHeun,
    /// Annealed Langevin dynamics (Song & Ermon 2019), --steps levels × --corrector-steps.
    Langevin,
    /// Predictor–corrector (reverse-diffusion predictor, Langevin corrector with --snr).
    Pc,
    /// DPM-Solver++(2M) (Lu et al. 2022), 1 evaluation per step; every process.
    #[value(name = "dpmpp-2m")]
    Dpmpp2m,
    /// DPM-Solver++(3M), third-order multistep; every process.
    #[value(name = "dpmpp-3m")]
    Dpmpp3m,
    /// SDE-DPM-Solver++(2M), the stochastic variant; every process.
    #[value(name = "dpmpp-sde")]
    DpmppSde,
    /// UniPC, order-2 predictor–corrector (Zhao et al. 2023); every process.
    Unipc,
}

impl SamplerArg {
    /// Whether it is one of the few-step solvers, which take --spacing and --karras.
    pub fn is_few_step(self) -> bool {
        matches!(self, Self::Dpmpp2m | Self::Dpmpp3m | Self::DpmppSde | Self::Unipc)
    }
}

/// Which of the N discrete steps the few-step solvers visit (diffusers' `timestep_spacing`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SpacingArg {
    /// k_j = (S − j)·⌊N/(S + 1)⌋.
    Leading,
    /// k_j = round(N − j·N/S) − 1: starts at the last step (the default).
    Trailing,
    /// k_j = round((S − j)·(N − 1)/S).
    Linspace,
}

/// The predictor of `--sampler pc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PredictorArg {
    /// The discretised reverse SDE.
    ReverseDiffusion,
    /// Euler–Maruyama.
    Em,
}

/// DDPM reverse variance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum VarianceArg {
    /// σ² = β ("fixed large").
    Beta,
    /// σ² = β̃, the posterior variance ("fixed small").
    Posterior,
}

/// Denoising methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DenoiseMethod {
    /// One network evaluation: Tweedie's posterior mean at the matched noise level.
    Tweedie,
    /// Reverse diffusion from the matched noise level (SDEdit), averaged over --draws runs.
    Sdedit,
}

/// Runs one parsed command line; `matches` tells the flags given from their defaults.
pub fn run(cli: Cli, matches: &ArgMatches) -> Result<()> {
    let given = matches.subcommand().map(|(_, m)| Given::from_matches(m)).unwrap_or_default();
    match cli.command {
        Command::Train(a) => cmd::train::run_train(&a, &given),
        Command::Convert(a) => cmd::convert::run_convert(&a, &given),
        Command::Inspect(a) => cmd::inspect::run_inspect(&a),
        Command::Sample(a) => cmd::sample::run_sample(&a, &given),
        Command::Denoise(a) => cmd::denoise::run_denoise(&a, &given),
        Command::Eval(a) => cmd::eval::run_eval(&a),
        Command::Data(a) => cmd::data::run_data(&a, &given),
        Command::Likelihood(a) => cmd::likelihood::run_likelihood(&a),
        Command::Quickstart(a) => cmd::quickstart::run_quickstart(&a),
        Command::BenchTrain(a) => cmd::bench_train::run_bench_train(&a),
        Command::Bench(a) => cmd::bench::run_bench(&a),
    }
}

/// The flags of a subcommand that were given on the command line (not left at their defaults),
/// so that a flag without effect in a combination can be refused by name.
#[derive(Clone, Debug, Default)]
pub struct Given(Vec<String>);

impl Given {
    /// The flags given in `m` (clap's `ValueSource::CommandLine`).
    pub fn from_matches(m: &ArgMatches) -> Self {
        Given(
            m.ids()
                .filter(|id| m.value_source(id.as_str()) == Some(ValueSource::CommandLine))
                .map(|id| id.as_str().to_string())
                .collect(),
        )
    }

    /// As if these flags (argument ids: `sample_steps`) had been given.
    pub fn of(ids: &[&str]) -> Self {
        Given(ids.iter().map(|s| s.to_string()).collect())
    }

    /// Whether the flag with argument id `id` (`sample_steps`) was given.
    pub fn has(&self, id: &str) -> bool {
        self.0.iter().any(|g| g == id)
    }

    /// Fails naming the first of `ids` that was given: it has no effect `why`.
    pub fn refuse(&self, ids: &[&str], why: &str) -> Result<()> {
        match ids.iter().find(|id| self.has(id)) {
            Some(id) => anyhow::bail!("{} has no effect {why}", flag(id)),
            None => Ok(()),
        }
    }
}

/// The flag of an argument id: `sample_steps` → `--sample-steps`.
pub fn flag(id: &str) -> String {
    format!("--{}", id.replace('_', "-"))
}

/// An error and its causes on one line ("x.csv: line 3: ..."), each text once: a cause that the
/// message before it already quotes (an OS error inside a file error) is not repeated, and Rust's
/// " (os error N)" suffixes are dropped, so a file error reads `<path>: <reason>`.
pub fn error_line(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = strip_os_error(&cause.to_string()).replace('\n', " ");
        if msg.contains(&text) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&text);
    }
    msg
}

fn strip_os_error(text: &str) -> String {
    let mut out = text.to_string();
    while let Some(i) = out.find(" (os error ") {
        match out[i..].find(')') {
            Some(j) => out.replace_range(i..i + j + 1, ""),
            None => break,
        }
    }
    out
}

/// clap's message on one line: everything but its usage and help hints, so that a missing
/// argument is named (`the following required arguments were not provided: --data <DATA>`).
pub fn one_line(rendered: &str) -> String {
    let mut parts = Vec::new();
    for line in rendered.lines() {
        let line = line.trim();
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if !line.is_empty() {
            parts.push(line.strip_prefix("error: ").unwrap_or(line).to_string());
        }
    }
    let text = if parts.is_empty() { "invalid arguments".to_string() } else { parts.join(" ") };
    format!("{text} (see 'tinyscore --help')")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_file_error_names_its_reason_once() {
        let io = std::io::Error::from_raw_os_error(2);
        let text = format!("x.csv: cannot read: {io}");
        let e = anyhow::Error::new(io).context(text);
        assert_eq!(error_line(&e), "x.csv: cannot read: No such file or directory");
    }

    #[test]
    fn a_missing_argument_is_named_on_one_line() {
        let e = Cli::command().try_get_matches_from(["tinyscore", "train"]).unwrap_err();
        let line = one_line(&e.render().to_string());
        assert!(line.contains("--data") && line.contains("--out") && !line.contains('\n'), "{line}");
    }

    #[test]
    fn given_tells_flags_from_defaults() {
        let m = Cli::command()
            .try_get_matches_from(["tinyscore", "sample", "m.tsm", "--eta", "0.5", "--out", "-"])
            .unwrap();
        let g = Given::from_matches(m.subcommand().unwrap().1);
        assert!(g.has("eta") && g.has("out") && !g.has("snr") && !g.has("n"));
    }
}
