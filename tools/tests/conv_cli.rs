//! `--arch conv` as users run it: train a small U-Net on two-channel signals from a CSV, convert
//! it (f32, f16, w8 and w8a8), inspect, sample, denoise and impute with it,
//! resume its run; and the flags that do not fit the architecture, each a one-line error.

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
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The one-line error of a failed run (exit status 1, never a panic).
fn refused(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    err
}

/// 60 examples of a two-channel signal of 16 samples, channel-major (32 columns).
fn signals(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("signals.csv");
    let rows: Vec<String> = (0..60)
        .map(|r| {
            (0..32)
                .map(|i| {
                    let (c, l) = (i / 16, i % 16);
                    format!("{:.5}", ((l as f32 * 0.5 + r as f32 * 0.3).sin() * (1.0 + c as f32)))
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    std::fs::write(&path, rows.join("\n") + "\n").unwrap();
    path
}

#[test]
fn a_conv_network_trains_converts_samples_denoises_and_imputes() {
    let dir = tempfile::tempdir().unwrap();
    let data = signals(dir.path());
    let ckpt = dir.path().join("c.safetensors");
    let train = |steps: &str, extra: &[&str]| {
        let mut args = vec!["train", "--data", s(&data), "--steps", steps, "--out", s(&ckpt)];
        args.extend_from_slice(extra);
        tinyscore(&args)
    };
    let sizes = [
        "--arch",
        "conv",
        "--signal-channels",
        "2",
        "--width",
        "4",
        "--levels",
        "2",
        "--kernel",
        "3",
        "--freqs",
        "8",
        "--batch",
        "16",
        "--diffusion-steps",
        "50",
    ];
    ok(&train("20", &sizes));
    // Resuming continues the conv run with its recorded sizes; a conflicting size is refused.
    let resumed = tinyscore(&["train", "--resume", s(&ckpt), "--steps", "30", "--out", s(&ckpt)]);
    let err = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success() && err.contains("conv C=2 L=16 width=4"), "{err}");
    let e = refused(&tinyscore(&[
        "train",
        "--resume",
        s(&ckpt),
        "--steps",
        "40",
        "--kernel",
        "5",
        "--out",
        s(&ckpt),
    ]));
    assert!(e.contains("--kernel 5 conflicts"), "{e}");

    let tsm = dir.path().join("c.tsm");
    let text = ok(&tinyscore(&["convert", s(&ckpt), "--out", s(&tsm)]));
    assert!(text.contains("exact"), "{text}");
    let f16 = dir.path().join("c16.tsm");
    ok(&tinyscore(&["convert", s(&ckpt), "--quant", "f16", "--out", s(&f16)]));
    assert!(std::fs::metadata(&f16).unwrap().len() < std::fs::metadata(&tsm).unwrap().len());
    // w8: int8 weights, one scale per output channel; the f32 walk runs it. Its score SNR
    // against the f32 file is reported, and a file a quarter the size keeps the score close.
    let w8 = dir.path().join("w8.tsm");
    let text = ok(&tinyscore(&["convert", s(&ckpt), "--quant", "w8", "--out", s(&w8)]));
    let snr: f64 = text
        .split("score SNR vs float: ")
        .nth(1)
        .and_then(|t| t.split(" dB").next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no score SNR in {text}"));
    assert!(snr > 20.0, "w8 score SNR {snr} dB");
    assert!(std::fs::metadata(&w8).unwrap().len() < std::fs::metadata(&f16).unwrap().len());
    let info = ok(&tinyscore(&["inspect", s(&w8)]));
    assert!(info.contains("i8"), "{info}");
    let w8_samples = dir.path().join("w8-samples.csv");
    ok(&tinyscore(&["sample", s(&w8), "--n", "2", "--steps", "5", "--out", s(&w8_samples)]));
    assert_eq!(std::fs::read_to_string(&w8_samples).unwrap().lines().count(), 2);
    // w8a8: int8 convolutions, calibrated; inspect names the path; sample and denoise run it.
    let w8a8 = dir.path().join("w8a8.tsm");
    let text = ok(&tinyscore(&["convert", s(&ckpt), "--quant", "w8a8", "--groups", "1", "--out", s(&w8a8)]));
    assert!(text.contains("score SNR vs float: "), "{text}");
    let info = ok(&tinyscore(&["inspect", s(&w8a8)]));
    assert!(info.contains("w8a8 integer path (int8 convolutions)"), "{info}");
    let q_samples = dir.path().join("w8a8-samples.csv");
    ok(&tinyscore(&["sample", s(&w8a8), "--n", "2", "--steps", "5", "--out", s(&q_samples)]));
    assert_eq!(std::fs::read_to_string(&q_samples).unwrap().lines().count(), 2);

    let info = ok(&tinyscore(&["inspect", s(&tsm)]));
    assert!(info.contains("signal, 2 channel(s) x 16 samples"), "{info}");
    assert!(info.contains("conv3"), "{info}");

    let samples = dir.path().join("samples.csv");
    ok(&tinyscore(&["sample", s(&tsm), "--n", "3", "--steps", "10", "--out", s(&samples)]));
    let lines: Vec<String> = std::fs::read_to_string(&samples).unwrap().lines().map(String::from).collect();
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|l| l.split(',').count() == 32));

    // Denoise and impute two of the training signals.
    let noisy = dir.path().join("noisy.csv");
    let clean: Vec<&str> = std::fs::read_to_string(&data).unwrap().leak().lines().take(2).collect();
    std::fs::write(&noisy, clean.join("\n") + "\n").unwrap();
    let out = dir.path().join("clean.csv");
    ok(&tinyscore(&["denoise", s(&tsm), "--input", s(&noisy), "--sigma", "0.1", "--out", s(&out)]));
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 2);
    // The streaming denoiser takes one-channel signals only.
    let column = dir.path().join("column.csv");
    std::fs::write(&column, "0.1\n0.2\n0.3\n").unwrap();
    let streamed = dir.path().join("streamed.csv");
    let e =
        refused(&tinyscore(&["denoise", s(&tsm), "--stream", "--input", s(&column), "--out", s(&streamed)]));
    assert!(e.contains("2-channel signals; --stream denoises a one-channel signal"), "{e}");
    assert!(!streamed.exists());
    let mask = dir.path().join("mask.csv");
    let row: Vec<&str> = (0..32).map(|i| if (6..10).contains(&(i % 16)) { "0" } else { "1" }).collect();
    std::fs::write(&mask, format!("{0}\n{0}\n", row.join(","))).unwrap();
    let filled = dir.path().join("filled.csv");
    ok(&tinyscore(&[
        "denoise",
        s(&tsm),
        "--input",
        s(&noisy),
        "--mask",
        s(&mask),
        "--steps",
        "5",
        "--draws",
        "1",
        "--out",
        s(&filled),
    ]));
    let got: Vec<f32> = std::fs::read_to_string(&filled)
        .unwrap()
        .lines()
        .flat_map(|l| l.split(',').map(|v| v.parse::<f32>().unwrap()).collect::<Vec<_>>())
        .collect();
    assert_eq!(got.len(), 64);
    assert!(got.iter().all(|v| v.is_finite()));

    // Likelihoods are ScoreNet v1's only.
    let e = refused(&tinyscore(&["likelihood", s(&tsm), "--data", s(&data)]));
    assert!(e.contains("conv network"), "{e}");
}

#[test]
fn flags_of_the_other_architecture_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = signals(dir.path());
    let out = dir.path().join("x.safetensors");
    let cases: [(&[&str], &str); 6] = [
        (&["--arch", "conv", "--hidden", "8"], "--hidden has no effect with --arch conv"),
        (&["--width", "8"], "--width has no effect with --arch mlp"),
        (&["--signal-channels", "2"], "--signal-channels has no effect with --arch mlp"),
        (&["--arch", "conv", "--signal-channels", "3"], "3 signal channels do not divide"),
        (&["--arch", "conv", "--levels", "6"], "multiple of 2^levels"),
        (&["--arch", "conv", "--kernel", "4"], "--kernel must be odd"),
    ];
    for (extra, want) in cases {
        let mut args = vec!["train", "--data", s(&data), "--steps", "1", "--out", s(&out)];
        args.extend_from_slice(extra);
        let e = refused(&tinyscore(&args));
        assert!(e.contains(want), "{extra:?}: {e}");
        assert!(!out.exists(), "{extra:?}");
    }
}
