//! The `w8a8` mode through the `tinyscore` binary as users run it: train a tiny model briefly,
//! convert it with `--quant w8a8 --calib moons`, read the printed score SNR, inspect the file
//! (integer weights and the `act.` tensors), and sample from it. A few seconds.

mod common;

use std::path::Path;
use std::process::Output;

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

/// The dB value of the `score SNR vs float: X dB` line convert prints.
fn snr_db(stdout: &str) -> f64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("score SNR vs float: "))
        .unwrap_or_else(|| panic!("no score SNR line in {stdout:?}"));
    let value = line["score SNR vs float: ".len()..].split(" dB").next().unwrap();
    value.parse().unwrap_or_else(|_| panic!("not a dB value: {line:?}"))
}

#[test]
fn w8a8_convert_inspect_sample() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("m.safetensors");
    ok(&tinyscore(&[
        "train",
        "--data",
        "moons",
        "--steps",
        "150",
        "--hidden",
        "32",
        "--blocks",
        "2",
        "--batch",
        "128",
        "--diffusion-steps",
        "100",
        "--out",
        s(&ckpt),
    ]));

    // Automatic choice of timestep groups.
    let tsm = dir.path().join("m.tsm");
    let out = tinyscore(&["convert", s(&ckpt), "--quant", "w8a8", "--calib", "moons", "--out", s(&tsm)]);
    let text = ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    let snr = snr_db(&text);
    assert!(snr.is_finite() && snr > 25.0, "w8a8 score SNR {snr} dB: {text}");
    assert!(text.contains("calibration inputs from moons"), "{text}");
    assert!(err.contains("w8a8 with 1 timestep group(s)"), "{err}");
    assert!(err.contains("timestep groups"), "{err}");

    // A forced group count; the SNR is again finite and sensible.
    let tsm4 = dir.path().join("m4.tsm");
    let text4 = ok(&tinyscore(&[
        "convert",
        s(&ckpt),
        "--quant",
        "w8a8",
        "--calib",
        "moons",
        "--groups",
        "4",
        "--out",
        s(&tsm4),
    ]));
    let snr4 = snr_db(&text4);
    assert!(snr4.is_finite() && snr4 > 25.0, "w8a8 G=4 score SNR {snr4} dB: {text4}");

    // The f32 file of the same checkpoint reports an exact match, and is much larger.
    let f32_tsm = dir.path().join("f.tsm");
    let text_f = ok(&tinyscore(&["convert", s(&ckpt), "--quant", "f32", "--out", s(&f32_tsm)]));
    assert!(text_f.contains("score SNR vs float: exact"), "{text_f}");
    let (q_len, f_len) = (std::fs::metadata(&tsm).unwrap().len(), std::fs::metadata(&f32_tsm).unwrap().len());
    assert!(q_len < f_len / 2, "w8a8 {q_len} bytes vs f32 {f_len}");

    let info = ok(&tinyscore(&["inspect", s(&tsm4)]));
    for needle in ["act.scales", "act.requant", "act.lut", "blocks.1.w2", "i8", "w8a8 integer path", "ram"] {
        assert!(info.contains(needle), "inspect lacks {needle:?}: {info}");
    }
    assert!(info.contains("4 timestep group(s)"), "{info}");

    for (sampler, steps) in [("ddpm", "50"), ("ddim", "20")] {
        let csv = ok(&tinyscore(&[
            "sample",
            s(&tsm),
            "--sampler",
            sampler,
            "--steps",
            steps,
            "--n",
            "64",
            "--seed",
            "5",
            "--out",
            "-",
        ]));
        assert_eq!(csv.lines().count(), 64, "{sampler}");
        for line in csv.lines() {
            let v: Vec<f32> = line.split(',').map(|x| x.parse().unwrap()).collect();
            assert_eq!(v.len(), 2, "{sampler}: {line}");
            // Moons live in about [-1.5, 2.5] x [-1, 1.5]; a broken integer path explodes or
            // collapses, a working one stays near the data.
            assert!(v.iter().all(|x| x.is_finite() && x.abs() < 10.0), "{sampler}: {line}");
        }
    }
}
