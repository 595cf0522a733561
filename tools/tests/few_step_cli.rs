//! `tinyscore sample` with the few-step solvers (`dpmpp-2m`, `dpmpp-3m`, `dpmpp-sde`, `unipc`) and
//! their grids (`--spacing`, `--karras`): samples depend only on (model, seed, index, settings),
//! `--trace` writes each sample's path ending where the samples end, settings that do not apply
//! are refused with exit status 1 and one line; and, where a Python with torch and diffusers is
//! at hand, `bench/diffusers_peer.py` (the paths of ddim, dpmpp-2m, dpmpp-3m and unipc against
//! diffusers' schedulers, step by step, to 1e-4).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tinyscore_engine::format::Process;
use tinyscore_engine::net::Dims;
use tinyscore_engine::schedule::{BetaSchedule, Sde};
use tinyscore_tools::tsm::{write, ModelSpec, Quant};

const MEAN: [f32; 2] = [0.5, -0.25];
const STD: [f32; 2] = [1.5, 0.5];

fn tinyscore(args: &[&str]) -> Output {
    common::tinyscore().args(args).output().expect("run tinyscore")
}

fn model_file(dir: &Path, name: &str, process: Process) -> PathBuf {
    let dims = Dims { dim: 2, hidden: 16, freqs: 8, blocks: 1 };
    let params: Vec<f32> = (0..dims.param_count()).map(|i| (i as f32 * 0.37).sin() * 0.3).collect();
    let spec = ModelSpec { dims, process, norm_mean: &MEAN, norm_std: &STD, params: &params };
    let path = dir.join(name);
    std::fs::write(&path, write(&spec, Quant::F32).unwrap()).unwrap();
    path
}

fn sample(model: &Path, extra: &[&str], n: u32) -> String {
    let n = n.to_string();
    let mut args = vec!["sample", model.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--n", &n, "--seed", "5", "--out", "-"]);
    let out = tinyscore(&args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn rows(text: &str) -> Vec<Vec<f32>> {
    text.lines().map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect()
}

#[test]
fn few_step_samples_do_not_depend_on_n_and_runs_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let vp = model_file(
        dir.path(),
        "vp.tsm",
        Process::VpDiscrete { steps: 50, schedule: BetaSchedule::DDPM_LINEAR },
    );
    let ve = model_file(dir.path(), "ve.tsm", Process::Sde { steps: 10, sde: Sde::VE, t_eps: 1e-5 });
    let cases: [(&Path, &[&str]); 8] = [
        (&vp, &["--sampler", "dpmpp-2m", "--steps", "10"]),
        (&vp, &["--sampler", "dpmpp-3m", "--steps", "10", "--spacing", "leading"]),
        (&vp, &["--sampler", "dpmpp-sde", "--steps", "10", "--karras"]),
        (&vp, &["--sampler", "unipc", "--steps", "10", "--spacing", "linspace"]),
        (&ve, &["--sampler", "dpmpp-2m", "--steps", "8", "--karras"]),
        (&ve, &["--sampler", "dpmpp-sde", "--steps", "8", "--denoise-final"]),
        (&ve, &["--sampler", "unipc", "--steps", "8"]),
        (&ve, &["--sampler", "dpmpp-3m", "--steps", "8"]),
    ];
    for (model, extra) in cases {
        let small = sample(model, extra, 100);
        let large = sample(model, extra, 300);
        let head: Vec<&str> = large.lines().take(100).collect();
        assert!(head == small.lines().collect::<Vec<_>>(), "{extra:?}: --n 100 is not the head of --n 300");
        assert!(sample(model, extra, 100) == small, "{extra:?}: two runs differ");
        assert_ne!(head[0], head[1], "{extra:?}");
        assert!(rows(&small).iter().flatten().all(|v| v.is_finite()), "{extra:?}");
    }
    // The spacings visit different steps, so they give different samples.
    let spaced: Vec<String> = ["leading", "trailing", "linspace"]
        .iter()
        .map(|s| sample(&vp, &["--sampler", "unipc", "--steps", "10", "--spacing", s], 4))
        .collect();
    assert!(spaced[0] != spaced[1] && spaced[1] != spaced[2] && spaced[0] != spaced[2]);
    // trailing is the default.
    assert_eq!(spaced[1], sample(&vp, &["--sampler", "unipc", "--steps", "10"], 4));
}

#[test]
fn the_trace_ends_where_the_samples_end() {
    let dir = tempfile::tempdir().unwrap();
    let vp = model_file(
        dir.path(),
        "vp.tsm",
        Process::VpDiscrete { steps: 50, schedule: BetaSchedule::DDPM_LINEAR },
    );
    let trace = dir.path().join("trace.csv");
    for sampler in ["dpmpp-2m", "unipc", "ddim", "ode-heun"] {
        let out = tinyscore(&[
            "sample",
            vp.to_str().unwrap(),
            "--sampler",
            sampler,
            "--steps",
            "5",
            "--n",
            "3",
            "--out",
            "-",
            "--trace",
            trace.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let samples = rows(&String::from_utf8(out.stdout).unwrap());
        let path = rows(&std::fs::read_to_string(&trace).unwrap());
        assert_eq!(path.len(), 3 * 6, "{sampler}: units 0..=5 of 3 samples");
        for (i, sample) in samples.iter().enumerate() {
            let last = path.iter().find(|r| r[0] == 5.0 && r[1] == i as f32).expect("the last unit");
            for k in 0..2 {
                let data = last[2 + k] * STD[k] + MEAN[k];
                assert!(
                    (data - sample[k]).abs() <= 1e-5 * (1.0 + data.abs()),
                    "{sampler} {i}: {data} vs {}",
                    sample[k]
                );
            }
            let first = path.iter().find(|r| r[0] == 0.0 && r[1] == i as f32).expect("unit 0");
            assert_ne!(first[2..], last[2..], "{sampler}: the path moved");
        }
    }
}

#[test]
fn settings_that_do_not_apply_exit_1_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let vp = model_file(
        dir.path(),
        "vp.tsm",
        Process::VpDiscrete { steps: 50, schedule: BetaSchedule::DDPM_LINEAR },
    );
    let ve = model_file(dir.path(), "ve.tsm", Process::Sde { steps: 10, sde: Sde::VE, t_eps: 1e-5 });
    let (vp, ve) = (vp.to_str().unwrap(), ve.to_str().unwrap());
    let cases: [(&[&str], &str); 6] = [
        (&["sample", ve, "--sampler", "dpmpp-2m", "--spacing", "leading"], "continuous"),
        (&["sample", ve, "--sampler", "unipc", "--spacing", "linspace"], "spacing linspace"),
        (
            &["sample", vp, "--sampler", "ddim", "--spacing", "leading"],
            "--spacing has no effect with --sampler ddim",
        ),
        (&["sample", vp, "--sampler", "ddpm", "--karras"], "--karras has no effect with --sampler ddpm"),
        (&["sample", vp, "--sampler", "unipc", "--karras", "--spacing", "trailing"], "not both"),
        (&["sample", vp, "--sampler", "dpmpp-2m", "--spacing", "leading", "--steps", "50"], "--steps"),
    ];
    for (args, want) in cases {
        let mut args = args.to_vec();
        args.extend_from_slice(&["--n", "2", "--out", "-"]);
        let out = tinyscore(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: not one line: {err}");
        assert!(err.starts_with("error: ") && err.contains(want), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: wrote samples before failing");
    }
}

/// `bench/diffusers_peer.py` with the Python in `TINYSCORE_PEER_PYTHON`, else the repository's
/// `target/venv` (see the script for the install); skipped without torch and diffusers.
#[test]
fn paths_agree_with_diffusers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = std::env::var_os("TINYSCORE_PEER_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/venv/bin/python"));
    if let Some(why) = common::cannot_hand_over_the_binary() {
        println!("skipped: bench/diffusers_peer.py starts tinyscore itself; {why}");
        return;
    }
    let has = Command::new(&python)
        .args(["-c", "import torch, diffusers, safetensors"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        println!("skipped: no Python with torch, diffusers and safetensors at {}", python.display());
        return;
    }
    let out = Command::new(&python)
        .arg(root.join("bench/diffusers_peer.py"))
        .args(["--tinyscore", common::EXE, "--n", "8"])
        .output()
        .expect("run the peer script");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("| unipc | linspace | 50 |") && text.contains("within"), "{text}");
}
