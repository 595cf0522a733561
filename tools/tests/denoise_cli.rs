//! `tinyscore denoise` as users run it: denoising and imputation end to end on a small model, and
//! its bad inputs (exit 1, one line naming the problem).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use tinyscore_engine::format::Process;
use tinyscore_engine::net::Dims;
use tinyscore_engine::schedule::BetaSchedule;
use tinyscore_tools::tsm::{write, ModelSpec, Quant};

const D: usize = 8;

fn tinyscore(args: &[&str]) -> Output {
    common::tinyscore().args(args).output().expect("run tinyscore")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn files(dir: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let dims = Dims { dim: D, hidden: 16, freqs: 8, blocks: 1 };
    let params: Vec<f32> = (0..dims.param_count()).map(|i| (i as f32 * 0.41).sin() * 0.2).collect();
    let spec = ModelSpec {
        dims,
        process: Process::VpDiscrete { steps: 100, schedule: BetaSchedule::DDPM_LINEAR },
        norm_mean: &[0.1; D],
        norm_std: &[0.5; D],
        params: &params,
    };
    let model = dir.join("m.tsm");
    std::fs::write(&model, write(&spec, Quant::F32).unwrap()).unwrap();
    let row = |r: usize, noise: f32| -> String {
        (0..D)
            .map(|i| {
                format!("{}", (i as f32 * 0.7 + r as f32).sin() + noise * ((i * 7 + r * 3) as f32).cos())
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    let noisy = dir.join("noisy.csv");
    let clean = dir.join("clean.csv");
    let mask = dir.join("mask.csv");
    std::fs::write(&noisy, (0..5).map(|r| row(r, 0.2) + "\n").collect::<String>()).unwrap();
    std::fs::write(&clean, (0..5).map(|r| row(r, 0.0) + "\n").collect::<String>()).unwrap();
    let m = "1,1,1,0,0,1,1,1\n".repeat(5);
    std::fs::write(&mask, m).unwrap();
    (model, noisy, clean, mask)
}

fn rows(text: &str) -> Vec<Vec<f32>> {
    text.lines().map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect()
}

#[test]
fn denoise_and_impute_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let (model, noisy, clean, mask) = files(dir.path());
    for args in [
        vec!["--sigma", "0.2"],
        vec!["--sigma", "auto"],
        vec!["--sigma", "0.2", "--method", "sdedit", "--steps", "10", "--draws", "2"],
    ] {
        let mut a = vec!["denoise", s(&model), "--input", s(&noisy), "--clean", s(&clean), "--out", "-"];
        a.extend(args.iter());
        let out = tinyscore(&a);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {err}");
        assert!(err.contains("SNR vs clean: input"), "{err}");
        let got = rows(&String::from_utf8(out.stdout.clone()).unwrap());
        assert_eq!(got.len(), 5);
        assert!(got.iter().all(|r| r.len() == D && r.iter().all(|v| v.is_finite())));
        // Deterministic: the same command gives the same bytes.
        assert_eq!(tinyscore(&a).stdout, out.stdout, "{args:?}");
    }

    let png = dir.path().join("d.png");
    let out = tinyscore(&[
        "denoise",
        s(&model),
        "--input",
        s(&noisy),
        "--mask",
        s(&mask),
        "--steps",
        "20",
        "--out",
        "-",
        "--plot",
        s(&png),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::metadata(&png).unwrap().len() > 1000);
    let got = rows(&String::from_utf8(out.stdout).unwrap());
    let input = rows(&std::fs::read_to_string(&noisy).unwrap());
    for (g, i) in got.iter().zip(&input) {
        for k in [0, 1, 2, 5, 6, 7] {
            assert_eq!(g[k].to_bits(), i[k].to_bits(), "known entries come back unchanged");
        }
        assert!(g[3] != i[3] && g[4] != i[4], "missing entries are filled");
    }
}

#[test]
fn imputation_from_a_linear_fill_keeps_known_values_and_depends_on_t_start() {
    let dir = tempfile::tempdir().unwrap();
    let (model, noisy, _clean, mask) = files(dir.path());
    let run = |extra: &[&str]| {
        let mut a = vec!["denoise", s(&model), "--input", s(&noisy), "--mask", s(&mask), "--out", "-"];
        a.extend(extra);
        let out = tinyscore(&a);
        assert!(out.status.success(), "{extra:?}: {}", String::from_utf8_lossy(&out.stderr));
        rows(&String::from_utf8(out.stdout).unwrap())
    };
    let input = rows(&std::fs::read_to_string(&noisy).unwrap());
    let base = ["--impute-from", "linear", "--steps", "5", "--draws", "2", "--resample", "2"];
    let low = run(&[&base[..], &["--t-start", "0.05"]].concat());
    let high = run(&[&base[..], &["--t-start", "0.6", "--rounds", "2"]].concat());
    let noise = run(&["--steps", "5", "--draws", "2", "--resample", "2"]);
    for (r, i) in low.iter().zip(&input) {
        for k in [0, 1, 2, 5, 6, 7] {
            assert_eq!(r[k].to_bits(), i[k].to_bits(), "known entries come back unchanged");
        }
        // At a low start the result stays near the straight line between entries 2 and 5.
        for (k, w) in [(3, 1.0 / 3.0), (4, 2.0 / 3.0)] {
            let line = i[2] + (i[5] - i[2]) * w;
            assert!((r[k] - line).abs() < 0.5, "entry {k}: {} vs the line's {line}", r[k]);
        }
    }
    assert_ne!(low, high, "--t-start and --rounds change the result");
    assert_ne!(low, noise, "--impute-from linear is not the default");
    // `input`: the input's own values at the missing entries are the fill (a fill of straight
    // lines gives what `linear` gives).
    let lined = dir.path().join("lined.csv");
    let text: String = input
        .iter()
        .map(|i| {
            let mut r = i.clone();
            r[3] = i[2] + (i[5] - i[2]) / 3.0;
            r[4] = i[2] + (i[5] - i[2]) * 2.0 / 3.0;
            r.iter().map(|v| format!("{v}")).collect::<Vec<_>>().join(",") + "\n"
        })
        .collect();
    std::fs::write(&lined, text).unwrap();
    let mut a = vec!["denoise", s(&model), "--input", s(&lined), "--mask", s(&mask), "--out", "-"];
    a.extend([
        "--impute-from",
        "input",
        "--t-start",
        "0.6",
        "--steps",
        "5",
        "--draws",
        "2",
        "--resample",
        "2",
    ]);
    let out = tinyscore(&a);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let given = rows(&String::from_utf8(out.stdout).unwrap());
    let linear = run(&[&base[..], &["--t-start", "0.6"]].concat());
    for (g, l) in given.iter().zip(&linear) {
        for k in [3, 4] {
            assert!((g[k] - l[k]).abs() < 1e-4, "{} vs {}", g[k], l[k]);
        }
    }
}

#[test]
fn denoise_bad_inputs_exit_1_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (model, noisy, _clean, mask) = files(d);
    let w = |name: &str, content: &str| {
        let p = d.join(name);
        std::fs::write(&p, content).unwrap();
        p
    };
    let short = w("short.csv", "1,2,3\n");
    let bad_mask = w("badmask.csv", &"1,1,1,2,0,1,1,1\n".repeat(5));
    let few_rows = w("few.csv", "1,1,1,1,1,1,1,1\n");
    let (m, n) = (s(&model), s(&noisy));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--sigma", "-1"], "--sigma"),
        (vec!["--sigma", "NaN"], "--sigma"),
        (vec!["--sigma", "inf"], "--sigma"),
        (vec!["--sigma", "loud"], "--sigma"),
        (vec!["--steps", "0"], "--steps"),
        (vec!["--method", "sdedit", "--draws", "0"], "--draws"),
        (vec!["--mask", s(&bad_mask)], "0 or 1"),
        (vec!["--mask", s(&few_rows)], "rows"),
        (vec!["--clean", s(&few_rows)], "rows"),
        (vec!["--method", "nosuch"], "nosuch"),
        (vec!["--t-start", "0.3"], "--t-start has no effect without --mask"),
        (vec!["--mask", s(&mask), "--impute-from", "linear"], "needs --t-start"),
        (
            vec!["--mask", s(&mask), "--impute-from", "linear", "--t-start", "0"],
            "--t-start must be in (0, 1]",
        ),
        (
            vec!["--mask", s(&mask), "--impute-from", "input", "--t-start", "1.5"],
            "--t-start must be in (0, 1]",
        ),
        (
            vec!["--mask", s(&mask), "--impute-from", "linear", "--t-start", "NaN"],
            "--t-start must be in (0, 1]",
        ),
        (
            vec!["--mask", s(&mask), "--impute-from", "linear", "--t-start", "0.3", "--rounds", "9"],
            "--rounds",
        ),
        (vec!["--mask", s(&mask), "--t-start", "0.3"], "with --impute-from noise"),
        (vec!["--mask", s(&mask), "--impute-from", "spline"], "spline"),
    ];
    for (extra, needle) in cases {
        let mut a = vec!["denoise", m, "--input", n, "--out", "-"];
        a.extend(extra.iter());
        let out = tinyscore(&a);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{extra:?}: {err}");
        assert!(err.contains(needle), "{extra:?}: {err}");
    }
    let out = tinyscore(&["denoise", m, "--input", s(&short), "--out", "-"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the model needs 8"), "{err}");
}
