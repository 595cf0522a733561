//! The `tinyscore` binary as users run it: an end-to-end train → convert → inspect → sample → eval,
//! and a table of bad inputs, each of which must exit with status 1 and a one-line message (a panic,
//! status 101, is a bug whatever the input).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use tinyscore_engine::format::Process;
use tinyscore_engine::net::Dims;
use tinyscore_engine::schedule::BetaSchedule;
use tinyscore_tools::tsm::{write, ModelSpec, Quant};

fn tinyscore(args: &[&str]) -> Output {
    common::tinyscore().args(args).output().expect("run tinyscore")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A small valid model (random weights) for the commands that read one.
fn model_file(dir: &Path) -> PathBuf {
    let dims = Dims { dim: 2, hidden: 16, freqs: 8, blocks: 2 };
    let params: Vec<f32> = (0..dims.param_count()).map(|i| (i as f32 * 0.7).sin() * 0.2).collect();
    let spec = ModelSpec {
        dims,
        process: Process::VpDiscrete { steps: 50, schedule: BetaSchedule::DDPM_LINEAR },
        norm_mean: &[0.1, -0.2],
        norm_std: &[1.5, 0.5],
        params: &params,
    };
    let path = dir.join("model.tsm");
    std::fs::write(&path, write(&spec, Quant::F32).unwrap()).unwrap();
    path
}

#[test]
fn end_to_end_train_convert_inspect_sample_eval() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("m.safetensors");
    let tsm = dir.path().join("m.tsm");
    let out = tinyscore(&[
        "train",
        "--data",
        "moons",
        "--steps",
        "150",
        "--hidden",
        "32",
        "--blocks",
        "1",
        "--batch",
        "128",
        "--diffusion-steps",
        "100",
        "--out",
        s(&ckpt),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = tinyscore(&["convert", s(&ckpt), "--quant", "w8", "--out", s(&tsm)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = tinyscore(&["inspect", s(&tsm)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("D=2 H=32 F=32 B=1"), "{text}");
    assert!(text.contains("blocks.0.w1") && text.contains("i8"), "{text}");
    assert!(text.contains("ram"), "{text}");

    let five = tinyscore(&["sample", s(&tsm), "--steps", "20", "--n", "5", "--seed", "3", "--out", "-"]);
    assert!(five.status.success(), "{}", String::from_utf8_lossy(&five.stderr));
    let three = tinyscore(&["sample", s(&tsm), "--steps", "20", "--n", "3", "--seed", "3", "--out", "-"]);
    let five = String::from_utf8(five.stdout).unwrap();
    let three = String::from_utf8(three.stdout).unwrap();
    assert_eq!(five.lines().count(), 5);
    // Sample i does not depend on how many are drawn.
    assert_eq!(five.lines().take(3).collect::<Vec<_>>(), three.lines().collect::<Vec<_>>());
    for line in five.lines() {
        let v: Vec<f32> = line.split(',').map(|x| x.parse().unwrap()).collect();
        assert_eq!(v.len(), 2);
        assert!(v.iter().all(|x| x.is_finite()));
    }

    let samples = dir.path().join("s.csv");
    let png = dir.path().join("s.png");
    let out = tinyscore(&[
        "sample",
        s(&tsm),
        "--steps",
        "20",
        "--n",
        "200",
        "--out",
        s(&samples),
        "--plot",
        s(&png),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::metadata(&png).unwrap().len() > 1000);
    let out = tinyscore(&["eval", "--samples", s(&samples), "--data", "moons"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("sliced Wasserstein distance") && text.contains("floor"), "{text}");

    // Resume continues to the new step count.
    let out = tinyscore(&[
        "train",
        "--data",
        "moons",
        "--steps",
        "160",
        "--hidden",
        "32",
        "--blocks",
        "1",
        "--batch",
        "128",
        "--diffusion-steps",
        "100",
        "--resume",
        s(&ckpt),
        "--out",
        s(&ckpt),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("trained 160 steps"));
}

#[test]
fn bad_inputs_exit_1_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = model_file(d);
    let bytes = std::fs::read(&model).unwrap();
    let write = |name: &str, content: &[u8]| {
        let p = d.join(name);
        std::fs::write(&p, content).unwrap();
        p
    };
    let truncated = write("truncated.tsm", &bytes[..bytes.len() / 2]);
    let mut c = bytes.clone();
    let n = c.len();
    c[n - 5] ^= 0xFF;
    let corrupted = write("corrupted.tsm", &c);
    let mut m = bytes.clone();
    m[..4].copy_from_slice(b"GGUF");
    let magic = write("magic.tsm", &m);
    let empty = write("empty.tsm", b"");
    let text_csv = write("text.csv", b"1.0,2.0\n3.0,hello\n");
    let nan_csv = write("nan.csv", b"1.0,2.0\nNaN,1.0\n");
    let inf_csv = write("inf.csv", b"1.0,inf\n");
    let ragged_csv = write("ragged.csv", b"1.0,2.0\n1.0,2.0,3.0\n");
    let three_d = write("three.csv", b"1,2,3\n4,5,6\n7,8,9\n1,1,1\n");
    let bad_ckpt = write("bad.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}");
    let missing = d.join("missing.tsm");
    let in_missing_dir = d.join("no/such/dir/out.csv");
    let x_tsm = d.join("x.tsm");

    let m = s(&model);
    let mut cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["inspect", s(&truncated)], "truncated"),
        (vec!["inspect", s(&corrupted)], "CRC mismatch"),
        (vec!["inspect", s(&magic)], "bad magic"),
        (vec!["inspect", s(&missing)], "missing.tsm"),
        (vec!["inspect", s(&empty)], "empty"),
        (vec!["inspect", s(d)], "directory"),
        (vec!["sample", s(&truncated), "--n", "2", "--out", "-"], "truncated"),
        (vec!["sample", m, "--n", "0", "--out", "-"], "--n"),
        (vec!["sample", m, "--steps", "0", "--n", "1", "--out", "-"], "steps"),
        (vec!["sample", m, "--steps", "51", "--n", "1", "--out", "-"], "steps"),
        (vec!["sample", m, "--n", "1", "--out", s(&in_missing_dir)], "does not exist"),
        (vec!["eval", "--samples", s(&text_csv), "--data", "moons"], "text.csv"),
        (vec!["eval", "--samples", s(&nan_csv), "--data", "moons"], "nan.csv"),
        (vec!["eval", "--samples", s(&inf_csv), "--data", "moons"], "inf.csv"),
        (vec!["eval", "--samples", s(&ragged_csv), "--data", "moons"], "ragged.csv"),
        (vec!["eval", "--samples", s(&three_d), "--data", "moons"], "dimensions"),
        (vec!["eval", "--samples", s(&missing), "--data", "moons"], "missing.tsm"),
        (vec!["eval", "--samples", s(&three_d), "--data", "nosuchset"], "nosuchset"),
        (vec!["train", "--data", "nosuchset", "--out", "x.safetensors"], "nosuchset"),
        (vec!["train", "--data", s(&text_csv), "--out", "x.safetensors"], "text.csv"),
        (vec!["train", "--data", "moons", "--steps", "0", "--out", "x.safetensors"], "--steps"),
        (vec!["train", "--data", "moons", "--freqs", "7", "--out", "x.safetensors"], "--freqs"),
        (vec!["train", "--data", "moons", "--out", s(&in_missing_dir)], "does not exist"),
        (vec!["convert", s(&bad_ckpt), "--out", s(&x_tsm)], "bad.safetensors"),
        (vec!["convert", s(&missing), "--out", s(&x_tsm)], "missing.tsm"),
        (vec!["data", "nosuchset", "--out", "-"], "nosuchset"),
        (vec!["data", "moons", "--window", "32", "--out", "-"], "--window"),
        (vec!["data", "ecg", "--window", "1", "--out", "-"], "--window"),
    ];
    if tinyscore_train::cuda::device_count() == 0 {
        cases.push((
            vec!["train", "--data", "moons", "--device", "cuda", "--out", "x.safetensors"],
            "no CUDA",
        ));
    } else {
        eprintln!("skipped: the no-GPU message of --device cuda (this machine has a GPU)");
    }
    for (args, needle) in cases {
        let out = tinyscore(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: status {:?}, stderr {err}", out.status);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: not one line: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err:?} does not mention {needle:?}");
    }
}

#[test]
fn argument_errors_exit_1_with_one_line() {
    for args in [
        vec!["sample", "x.tsm", "--sampler", "nosuch", "--out", "-"],
        vec!["sample", "x.tsm", "--n", "-3", "--out", "-"],
        vec!["frobnicate"],
        vec!["train", "--data", "moons"],
    ] {
        let out = tinyscore(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
}
