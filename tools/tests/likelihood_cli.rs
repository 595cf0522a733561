//! `tinyscore likelihood` and `tinyscore train --loss` through the binary: a checkpoint and its
//! f32 model file give the same NLL, f16 a nearby one, Hutchinson a nearby one; an SSM run
//! trains and records its loss; bad input exits 1 with one line; `--exact` with a large D warns.
//! A few seconds.

mod common;

use std::path::Path;
use std::process::Output;

use tinyscore_engine::format::Process;
use tinyscore_engine::net::Dims;
use tinyscore_engine::schedule::Sde;
use tinyscore_tools::tsm::{write, ModelSpec, Quant};

fn tinyscore(args: &[&str]) -> Output {
    common::tinyscore().args(args).output().expect("run tinyscore")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "status {:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (NLL nats/dim, standard error) from the report line.
fn nll(stdout: &str) -> (f64, f64) {
    let line =
        stdout.lines().find(|l| l.starts_with("NLL ")).unwrap_or_else(|| panic!("no NLL line: {stdout:?}"));
    let mut w = line.split_whitespace();
    let v: f64 = w.nth(1).unwrap().parse().unwrap();
    let se: f64 = w.nth(1).unwrap().parse().unwrap();
    (v, se)
}

fn fails_with(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "expected exit 1, stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line expected: {err}");
    assert!(err.starts_with("error: ") && err.contains(needle), "{needle:?} not in {err:?}");
}

#[test]
fn likelihood_of_checkpoint_and_model_files() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("m.safetensors");
    let common = ["--data", "moons", "--hidden", "16", "--blocks", "1", "--freqs", "8", "--batch", "64"];
    let mut args = vec!["train", "--process", "vpsde", "--steps", "60", "--out", s(&ckpt)];
    args.extend(common);
    ok(&tinyscore(&args));
    let tsm = dir.path().join("m.tsm");
    ok(&tinyscore(&["convert", s(&ckpt), "--out", s(&tsm)]));
    let run = |model: &Path, extra: &[&str]| {
        let mut a = vec!["likelihood", s(model), "--data", "moons", "--n", "40", "--steps", "10"];
        a.extend(extra);
        nll(&ok(&tinyscore(&a)))
    };
    let from_ckpt = run(&ckpt, &[]);
    assert!(from_ckpt.0.is_finite() && from_ckpt.1 > 0.0, "{from_ckpt:?}");
    // The f32 file holds the same EMA weights: the same NLL to the printed digits.
    assert_eq!(run(&tsm, &[]), from_ckpt);
    assert_eq!(run(&tsm, &["--exact"]), from_ckpt);
    // f16 weights: close, not necessarily equal.
    let f16 = dir.path().join("m16.tsm");
    ok(&tinyscore(&["convert", s(&ckpt), "--quant", "f16", "--out", s(&f16)]));
    let h = run(&f16, &[]);
    assert!((h.0 - from_ckpt.0).abs() < 0.05, "f16 {h:?} vs f32 {from_ckpt:?}");
    // Hutchinson: unbiased; with 8 probes within 4 standard errors of the exact value.
    let hu = run(&ckpt, &["--hutchinson", "8"]);
    assert!((hu.0 - from_ckpt.0).abs() < 4.0 * hu.1.max(from_ckpt.1), "{hu:?} vs {from_ckpt:?}");
    assert_ne!(hu, from_ckpt);
    // Raw weights differ from the EMA.
    assert_ne!(run(&ckpt, &["--raw"]), from_ckpt);

    // Sliced score matching trains (finite loss) and is recorded in the checkpoint.
    let ssm = dir.path().join("ssm.safetensors");
    let mut args = vec!["train", "--loss", "ssm-vr", "--steps", "30", "--out", s(&ssm)];
    args.extend(common);
    let out = tinyscore(&args);
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("trained 30 steps"), "{err}");
    let bytes = std::fs::read(&ssm).unwrap();
    let text = String::from_utf8_lossy(&bytes[..4096.min(bytes.len())]).into_owned();
    assert!(text.contains("\"loss\":\"ssm-vr\""), "loss not recorded");
    // Resuming keeps the recorded loss and continues.
    let mut args = vec!["train", "--steps", "40", "--resume", s(&ssm), "--out", s(&ssm)];
    args.extend(common);
    ok(&tinyscore(&args));

    // Bad input: one line, exit 1.
    let bad = |extra: &[&str]| {
        let mut a = vec!["likelihood", s(&tsm), "--data", "moons", "--n", "5", "--steps", "2"];
        a.extend(extra);
        tinyscore(&a)
    };
    fails_with(&bad(&["--steps", "0"]), "--steps");
    fails_with(&bad(&["--hutchinson", "0"]), "--hutchinson");
    fails_with(&bad(&["--n", "0"]), "--n");
    fails_with(&bad(&["--exact", "--hutchinson", "4"]), "cannot be used with");
    fails_with(&bad(&["--raw"]), "--raw applies to checkpoints");
    fails_with(&tinyscore(&["likelihood", s(&tsm), "--data", "digits", "--steps", "2"]), "the model needs 2");
    fails_with(&tinyscore(&["likelihood", "/nonexistent.tsm", "--data", "moons"]), "/nonexistent.tsm");
    let w8a8 = dir.path().join("q.tsm");
    ok(&tinyscore(&[
        "convert",
        s(&ckpt),
        "--quant",
        "w8a8",
        "--groups",
        "1",
        "--calib",
        "moons",
        "--out",
        s(&w8a8),
    ]));
    fails_with(&tinyscore(&["likelihood", s(&w8a8), "--data", "moons"]), "w8a8");
    fails_with(&tinyscore(&["train", "--data", "moons", "--loss", "nope", "--out", "x"]), "nope");
}

/// `--exact` with D > 64 warns about its cost (and still runs); with no flag it picks Hutchinson.
#[test]
fn exact_with_large_dimension_warns() {
    let dir = tempfile::tempdir().unwrap();
    let d = 80;
    let dims = Dims { dim: d, hidden: 8, freqs: 4, blocks: 1 };
    let params: Vec<f32> = (0..dims.param_count()).map(|i| (i as f32 * 0.37).sin() * 0.1).collect();
    let (mean, std) = (vec![0.0f32; d], vec![1.0f32; d]);
    let spec = ModelSpec {
        dims,
        process: Process::Sde { steps: 20, sde: Sde::SUB_VP, t_eps: 1e-3 },
        norm_mean: &mean,
        norm_std: &std,
        params: &params,
    };
    let model = dir.path().join("wide.tsm");
    std::fs::write(&model, write(&spec, Quant::F32).unwrap()).unwrap();
    let csv = dir.path().join("x.csv");
    let row: Vec<String> = (0..d).map(|k| format!("{}", (k as f32 * 0.1).cos())).collect();
    std::fs::write(&csv, format!("{}\n{}\n", row.join(","), row.join(","))).unwrap();
    let out = tinyscore(&["likelihood", s(&model), "--data", s(&csv), "--exact", "--steps", "2"]);
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning: --exact with D = 80"), "{err}");
    let out = tinyscore(&["likelihood", s(&model), "--data", s(&csv), "--steps", "2"]);
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Hutchinson trace, 16 Rademacher probes") && !err.contains("warning"), "{err}");
}
