//! `tinyscore denoise --stream` as users run it: the streaming denoiser over a one-column signal,
//! tied to window-at-a-time `tinyscore denoise`, its input check (NaN, infinities, huge values) and
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

/// A small MLP model of D = 8 (normalisation mean 0.1, std 0.5: input range 0.1 ± 8).
fn model(dir: &Path) -> PathBuf {
    let dims = Dims { dim: D, hidden: 16, freqs: 8, blocks: 1 };
    let params: Vec<f32> = (0..dims.param_count()).map(|i| (i as f32 * 0.41).sin() * 0.2).collect();
    let spec = ModelSpec {
        dims,
        process: Process::VpDiscrete { steps: 100, schedule: BetaSchedule::DDPM_LINEAR },
        norm_mean: &[0.1; D],
        norm_std: &[0.5; D],
        params: &params,
    };
    let path = dir.join("m.tsm");
    std::fs::write(&path, write(&spec, Quant::F32).unwrap()).unwrap();
    path
}

fn signal(n: usize) -> Vec<f32> {
    (0..n).map(|i| (i as f32 * 0.3).sin() + 0.2 * ((i * 7) as f32).cos()).collect()
}

fn column(dir: &Path, name: &str, v: &[String]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, v.iter().map(|x| format!("{x}\n")).collect::<String>()).unwrap();
    p
}

fn values(v: &[f32]) -> Vec<String> {
    v.iter().map(|x| format!("{x}")).collect()
}

fn parse(out: &Output) -> Vec<f32> {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap().lines().map(|l| l.parse().unwrap()).collect()
}

#[test]
fn hop_w_flat_stream_is_window_at_a_time_denoise_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let x = signal(5 * D + 3);
    let sig = column(dir.path(), "x.csv", &values(&x));
    // The same windows as rows; the last one padded with its last sample, as the stream does.
    let rows: Vec<String> = x
        .chunks(D)
        .map(|c| (0..D).map(|i| format!("{}", c[i.min(c.len() - 1)])).collect::<Vec<_>>().join(","))
        .collect();
    let win = column(dir.path(), "w.csv", &rows);
    let d = D.to_string();
    for method in [
        vec!["--sigma", "0.2"],
        vec!["--sigma", "0.3", "--method", "sdedit", "--steps", "7", "--draws", "2", "--seed", "5"],
    ] {
        let mut a = vec![
            "denoise",
            s(&m),
            "--stream",
            "--hop",
            &d,
            "--taper",
            "flat",
            "--input",
            s(&sig),
            "--out",
            "-",
        ];
        a.extend(&method);
        let got = parse(&tinyscore(&a));
        let mut b = vec!["denoise", s(&m), "--input", s(&win), "--out", "-"];
        b.extend(&method);
        let out = tinyscore(&b);
        assert!(out.status.success());
        let want: Vec<f32> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .flat_map(|l| l.split(',').map(|v| v.parse::<f32>().unwrap()).collect::<Vec<_>>())
            .take(x.len())
            .collect();
        assert_eq!(got.len(), x.len());
        assert!(got.iter().zip(&want).all(|(p, q)| p.to_bits() == q.to_bits()), "{method:?}");
        // And overlapping windows change the output (the test above is not vacuous).
        let mut c = vec!["denoise", s(&m), "--stream", "--input", s(&sig), "--out", "-"];
        c.extend(&method);
        assert_ne!(parse(&tinyscore(&c)), got);
    }
}

#[test]
fn output_is_as_long_as_the_input_and_repeatable() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    for n in [1usize, D - 1, D, 3 * D + 5] {
        let sig = column(dir.path(), "x.csv", &values(&signal(n)));
        for extra in [vec!["--sigma", "auto"], vec!["--sigma", "0.1", "--hop", "3"]] {
            let mut a = vec!["denoise", s(&m), "--stream", "--input", s(&sig), "--out", "-"];
            a.extend(&extra);
            let out = tinyscore(&a);
            let got = parse(&out);
            assert_eq!(got.len(), n, "{extra:?}");
            assert!(got.iter().all(|v| v.is_finite()));
            assert_eq!(tinyscore(&a).stdout, out.stdout);
        }
    }
}

#[test]
fn nan_and_infinities_are_replaced_clamped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let x = signal(4 * D);
    let mut bad = values(&x);
    let mut fixed = x.clone();
    // The model's range is 0.1 ± 16·0.5 = [-7.9, 8.1].
    for (i, v) in [(0, "nan"), (3, "NaN"), (4, "inf"), (9, "-inf"), (20, "1e30"), (31, "nan")] {
        bad[i] = v.to_string();
    }
    let (lo, hi) = (0.1f32 - 16.0 * 0.5, 0.1f32 + 16.0 * 0.5);
    fixed[0] = 0.5 * (lo + hi); // NaN first: the range's centre
    fixed[3] = fixed[2];
    fixed[4] = hi;
    fixed[9] = lo;
    fixed[20] = hi;
    fixed[31] = fixed[30];
    let bad_path = column(dir.path(), "bad.csv", &bad);
    let fixed_path = column(dir.path(), "fixed.csv", &values(&fixed));
    let out =
        tinyscore(&["denoise", s(&m), "--stream", "--input", s(&bad_path), "--sigma", "auto", "--out", "-"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("3 NaN sample(s) replaced"), "{err}");
    assert!(err.contains("3 infinite or out-of-range sample(s) clamped"), "{err}");
    let got = parse(&out);
    assert!(got.iter().all(|v| v.is_finite()));
    let want = parse(&tinyscore(&[
        "denoise",
        s(&m),
        "--stream",
        "--input",
        s(&fixed_path),
        "--sigma",
        "auto",
        "--out",
        "-",
    ]));
    assert_eq!(got, want);
}

#[test]
fn plot_marks_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let sig = column(dir.path(), "x.csv", &values(&signal(50)));
    let png = dir.path().join("s.png");
    let out = tinyscore(&[
        "denoise",
        s(&m),
        "--stream",
        "--input",
        s(&sig),
        "--clean",
        s(&sig),
        "--sigma",
        "0.1",
        "--out",
        s(&dir.path().join("o.csv")),
        "--plot",
        s(&png),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(&std::fs::read(&png).unwrap()[1..4], b"PNG");
    assert!(String::from_utf8_lossy(&out.stderr).contains("SNR vs clean"));
}

#[test]
fn bad_stream_input_is_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let p = dir.path();
    let good = column(p, "x.csv", &values(&signal(20)));
    let two = column(p, "two.csv", &["1,2".to_string(), "3,4".to_string()]);
    let text = column(p, "text.csv", &["1".to_string(), "abc".to_string()]);
    let empty = column(p, "empty.csv", &["# only a comment".to_string()]);
    let short = column(p, "short.csv", &values(&signal(5)));
    let out = p.join("o.csv");
    let missing = p.join("missing.csv");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--input", s(&two)], "line 1: 2 values; --stream reads a signal of one value per line"),
        (vec!["--input", s(&text)], "line 2: 'abc' is not a number"),
        (vec!["--input", s(&empty)], "no samples"),
        (vec!["--input", s(&good), "--hop", "0"], "--hop must be in 1..=8"),
        (vec!["--input", s(&good), "--hop", "9"], "--hop must be in 1..=8"),
        (vec!["--input", s(&good), "--sigma", "-1"], "--sigma must be a finite number"),
        (vec!["--input", s(&good), "--mask", s(&good)], "--mask has no effect with --stream"),
        (vec!["--input", s(&good), "--clean", s(&short)], "5 samples, the input has 20"),
        (vec!["--input", s(&missing)], "missing.csv"),
    ];
    for (args, want) in cases {
        let mut a = vec!["denoise", s(&m), "--stream", "--out", s(&out)];
        a.extend(&args);
        let r = tinyscore(&a);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(!out.exists(), "{args:?}: nothing written on error");
    }
    // --hop and --taper belong to --stream.
    let r = tinyscore(&["denoise", s(&m), "--input", s(&good), "--hop", "4", "--out", s(&out)]);
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("--hop has no effect without --stream"));
}

#[test]
fn inspect_counts_the_stream_buffers() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let out = tinyscore(&["inspect", s(&m)]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text.lines().find(|l| l.starts_with("stream ")).expect("a stream line");
    let bytes = tinyscore_engine::footprint::stream_bytes(D);
    assert_eq!(bytes, 16 * D + tinyscore_engine::footprint::STREAM_STATE_BYTES_32);
    assert!(line.contains(&format!("{bytes} bytes more")), "{line}");
}

/// The integer conv walk's outputs do not depend on where its values live: the stream of the
/// firmware's w8a8 conv model (`firmware-example/models/ecg-conv-w8a8.tsm`, W = 64, convolutions
/// of more than `ACC_TILE` output positions run in tiles since session 10) over the firmware's
/// stream input has the bytes it had when every value lived in the f32 walk's blocks and a
/// convolution's accumulators were kept whole (FNV-1a 64 of the CSV, from session 9's binary).
#[test]
fn the_conv_w8a8_stream_has_its_bits_from_before_the_integer_arena() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let model = root.join("firmware-example/models/ecg-conv-w8a8.tsm");
    let input = root.join("firmware-example/inputs/ecg-stream-noisy.csv");
    let out =
        tinyscore(&["denoise", s(&model), "--stream", "--input", s(&input), "--sigma", "auto", "--out", "-"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let fnv = out
        .stdout
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    assert_eq!((fnv, out.stdout.len()), (0x3e73_c6b6_a5ff_a1da, 11_882));
}
