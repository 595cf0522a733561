//! `tinyscore sample` as users see it: a sample depends only on (model, seed, index, settings) —
//! not on `--n`, the thread split, or the run — for every sampler's noise streams; and a sampler
//! that does not fit the file's process is refused with exit status 1 and one line naming what fits.
//!
//! The models are small (H = 16) with fixed weights written by `tools::tsm::write`, so each run takes
//! milliseconds.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use tinyscore_engine::format::Process;
use tinyscore_engine::net::Dims;
use tinyscore_engine::schedule::{BetaSchedule, Sde};
use tinyscore_tools::tsm::{write, ModelSpec, Quant};

fn tinyscore(args: &[&str]) -> Output {
    common::tinyscore().args(args).output().expect("run tinyscore")
}

/// A model of `process` with fixed weights, written to `dir/name`.
fn model_file(dir: &Path, name: &str, process: Process) -> PathBuf {
    let dims = Dims { dim: 2, hidden: 16, freqs: 8, blocks: 1 };
    let params: Vec<f32> = (0..dims.param_count()).map(|i| (i as f32 * 0.37).sin() * 0.3).collect();
    let spec = ModelSpec { dims, process, norm_mean: &[0.5, -0.25], norm_std: &[1.5, 0.5], params: &params };
    let path = dir.join(name);
    std::fs::write(&path, write(&spec, Quant::F32).unwrap()).unwrap();
    path
}

/// `tinyscore sample MODEL EXTRA --n N --seed 5 --out -`, its standard output.
fn sample(model: &Path, extra: &[&str], n: u32) -> String {
    let n = n.to_string();
    let mut args = vec!["sample", model.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--n", &n, "--seed", "5", "--out", "-"]);
    let out = tinyscore(&args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn samples_do_not_depend_on_n_and_runs_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let vp = model_file(
        dir.path(),
        "vp.tsm",
        Process::VpDiscrete { steps: 50, schedule: BetaSchedule::DDPM_LINEAR },
    );
    let ve = model_file(dir.path(), "ve.tsm", Process::Sde { steps: 10, sde: Sde::VE, t_eps: 1e-5 });
    // Each case draws on a different noise stream: the initial x, per-step noise (ddpm, ddim η > 0,
    // em, langevin), corrector noise (pc); ode-heun has none after the start.
    let cases: [(&Path, &[&str]); 6] = [
        (&vp, &["--sampler", "ddpm", "--steps", "10"]),
        (&vp, &["--sampler", "ddim", "--steps", "10", "--eta", "1"]),
        (&ve, &["--sampler", "em", "--steps", "10"]),
        (&ve, &["--sampler", "ode-heun", "--steps", "5"]),
        (&ve, &["--sampler", "pc", "--steps", "5", "--corrector-steps", "2", "--denoise-final"]),
        (&vp, &["--sampler", "langevin", "--steps", "4", "--corrector-steps", "2"]),
    ];
    for (model, extra) in cases {
        let small = sample(model, extra, 1000);
        let large = sample(model, extra, 5000);
        assert_eq!(small.lines().count(), 1000, "{extra:?}");
        assert_eq!(large.lines().count(), 5000, "{extra:?}");
        let head: Vec<&str> = large.lines().take(1000).collect();
        assert!(head == small.lines().collect::<Vec<_>>(), "{extra:?}: --n 1000 is not the head of --n 5000");
        assert!(sample(model, extra, 1000) == small, "{extra:?}: two runs differ");
        // Not a degenerate stream: the samples differ from each other.
        assert_ne!(head[0], head[1], "{extra:?}");
    }
}

#[test]
fn a_sampler_that_does_not_fit_the_process_exits_1_naming_what_fits() {
    let dir = tempfile::tempdir().unwrap();
    for (name, sde) in [("vpsde.tsm", Sde::VP), ("subvp.tsm", Sde::SUB_VP), ("ve.tsm", Sde::VE)] {
        let model = model_file(dir.path(), name, Process::Sde { steps: 10, sde, t_eps: 1e-3 });
        let m = model.to_str().unwrap();
        let out = tinyscore(&["sample", m, "--sampler", "ddpm", "--n", "2", "--out", "-"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: status {:?}, stderr {err}", out.status);
        assert_eq!(err.trim_end().lines().count(), 1, "{name}: not one line: {err}");
        assert!(err.starts_with("error: ") && err.contains("ddpm"), "{name}: {err}");
        // What fits: the process ddpm needs, and the samplers that serve this model.
        assert!(err.contains("discrete VP process (--process vp)"), "{name}: {err}");
        for other in ["ddim", "em", "ode-euler", "ode-heun", "langevin", "pc"] {
            assert!(err.contains(other), "{name}: {err} does not name {other}");
        }
        assert!(out.stdout.is_empty(), "{name}: wrote samples before failing");
    }
}
