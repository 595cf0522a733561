//! The PyTorch path to the device (`host-train/bench/pytorch_baseline.py`): the tensors its `train`
//! mode saves carry tinyscore's names and shapes, and `tinyscore convert` takes the file.
//!
//! The names check needs only `python3`; the end-to-end check needs `torch`, `safetensors` and
//! `numpy` in that Python and says "skipped" without them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tinyscore_engine::net::Dims;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../host-train/bench/pytorch_baseline.py")
}

fn python(args: &[&str]) -> Option<Output> {
    Command::new("python3").arg(script()).args(args).output().ok()
}

fn tinyscore(args: &[&str]) -> Output {
    common::tinyscore().args(args).output().expect("run tinyscore")
}

#[test]
fn script_writes_the_engine_tensor_names_and_shapes() {
    for dims in
        [Dims { dim: 3, hidden: 8, freqs: 4, blocks: 2 }, Dims { dim: 64, hidden: 256, freqs: 32, blocks: 5 }]
    {
        let a = |v: usize| v.to_string();
        let (d, h, f, b) = (a(dims.dim), a(dims.hidden), a(dims.freqs), a(dims.blocks));
        let Some(out) = python(&["names", "--dim", &d, "--hidden", &h, "--freqs", &f, "--blocks", &b]) else {
            eprintln!("skipped: python3 is not installed");
            return;
        };
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let got: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect();
        let want: Vec<String> = dims
            .params()
            .map(|(role, rows, cols)| {
                if role.is_matrix() {
                    format!("{} {rows} {cols}", role.name())
                } else {
                    format!("{} {rows}", role.name())
                }
            })
            .collect();
        assert_eq!(got, want, "{dims:?}");
    }
}

#[test]
fn weights_trained_in_pytorch_convert_and_sample() {
    let probe = Command::new("python3").args(["-c", "import torch, safetensors, numpy"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: python3 with torch, safetensors and numpy is not available");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (csv, ckpt, tsm) = (p("moons.csv"), p("torch.safetensors"), p("torch.tsm"));
    let out = tinyscore(&["data", "moons", "--n", "2000", "--out", &csv]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = python(&[
        "train", "--data", &csv, "--save", &ckpt, "--steps", "600", "--hidden", "32", "--blocks", "2",
        "--freqs", "8", "--ema", "0.9",
    ])
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = tinyscore(&["convert", &ckpt, "--out", &tsm]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = tinyscore(&["sample", &tsm, "--n", "50", "--steps", "50", "--out", "-"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<f32>> =
        text.lines().map(|l| l.split(',').map(|v| v.trim().parse::<f32>().unwrap()).collect()).collect();
    assert_eq!(rows.len(), 50);
    // Samples of a model trained 600 steps on moons lie near the data (within ±5 of it).
    assert!(rows.iter().all(|r| r.len() == 2 && r.iter().all(|v| v.is_finite() && v.abs() < 5.0)), "{text}");
}
