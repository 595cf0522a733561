//! `tinyscore bench` as users run it: a short measurement prints one row per precision (an f32
//! file also as f16 and w8), `--eval-csv` prints the engine's ε̂, and bad input is one line on
//! standard error with exit status 1.

mod common;

use std::process::Output;

use tinyscore_engine::format::Model;
use tinyscore_engine::net::ScoreNet;

const F32: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../firmware-example/models/moons-f32.tsm");
const W8A8: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../firmware-example/models/moons-w8a8.tsm");

fn tinyscore(args: &[&str]) -> Output {
    common::tinyscore().args(args).output().expect("run tinyscore")
}

fn one_line_error(out: &Output, needle: &str) {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "not one line: {err:?}");
    assert!(err.starts_with("error: ") && err.contains(needle), "{err:?}");
}

#[test]
fn bench_prints_a_row_per_precision() {
    let out = tinyscore(&["bench", F32, W8A8, "--batch", "3", "--seconds", "0.05"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = text.lines().filter(|l| l.contains("moons-")).collect();
    assert_eq!(rows.len(), 4, "{text}");
    for (row, precision) in rows.iter().zip(["f32", "f16", "w8", "w8a8"]) {
        assert!(row.contains(precision), "{row}");
        let cells: Vec<&str> = row.split_whitespace().collect();
        let evals: f64 = cells[cells.len() - 3].parse().unwrap();
        assert!(evals > 0.0 && cells[cells.len() - 4] == "3", "{row}");
    }
}

#[test]
fn cpu_time_rounds_say_so_and_measure() {
    let out = tinyscore(&["bench", W8A8, "--batch", "2", "--seconds", "0.05", "--cpu-time"]);
    if cfg!(all(target_os = "linux", target_pointer_width = "64")) {
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.lines().next().unwrap_or("").contains("(thread CPU time)"), "{text}");
        let row = text.lines().find(|l| l.contains("moons-")).expect("a row");
        let cells: Vec<&str> = row.split_whitespace().collect();
        let evals: f64 = cells[cells.len() - 3].parse().unwrap();
        assert!(evals.is_finite() && evals > 0.0, "{row}");
    } else {
        one_line_error(&out, "--cpu-time");
    }
}

#[test]
fn eval_csv_prints_the_engines_eps() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("in.csv");
    std::fs::write(&csv, "0.5,0.25,-1.5\n1,2,3\n").unwrap();
    let out = tinyscore(&["bench", W8A8, "--eval-csv", csv.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let bytes = std::fs::read(W8A8).unwrap();
    let mut net: ScoreNet<'_, 2, 128, 32, Vec<f32>> =
        ScoreNet::new(Model::parse(&bytes).unwrap(), vec![0.0; 1 << 16]).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    for (line, (t, x)) in lines.iter().zip([(0.5f32, [0.25f32, -1.5]), (1.0, [2.0, 3.0])]) {
        let mut eps = [0.0f32; 2];
        net.eps(&x, t, &mut eps);
        assert_eq!(*line, format!("{},{}", eps[0], eps[1]));
    }
    assert_eq!(lines.len(), 2);
    std::fs::write(&csv, "0.5,1\n").unwrap();
    one_line_error(
        &tinyscore(&["bench", W8A8, "--eval-csv", csv.to_str().unwrap()]),
        "expected t and 2 values",
    );
}

#[test]
fn bad_input_is_one_line() {
    one_line_error(&tinyscore(&["bench", F32, "--batch", "0"]), "--batch");
    one_line_error(&tinyscore(&["bench", F32, "--seconds", "0"]), "--seconds");
    one_line_error(&tinyscore(&["bench", "/nonexistent/m.tsm"]), "/nonexistent/m.tsm");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.tsm");
    std::fs::write(&bad, b"not a model").unwrap();
    one_line_error(&tinyscore(&["bench", bad.to_str().unwrap()]), "invalid model file");
}
