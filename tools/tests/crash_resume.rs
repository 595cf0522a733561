//! Nothing lost on a crash: `tinyscore train` writes every checkpoint to a temporary file, syncs
//! it and renames it into place, so a run killed (SIGKILL) at any moment leaves the previous
//! checkpoint whole, loadable and resumable — and resuming gives the very bits an uninterrupted
//! run gives (the CPU backend is deterministic).
#![cfg(unix)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use tinyscore_train::checkpoint::Checkpoint;

const NET: [&str; 14] = [
    "--data",
    "moons",
    "--n",
    "2000",
    "--hidden",
    "16",
    "--blocks",
    "1",
    "--freqs",
    "8",
    "--batch",
    "32",
    "--diffusion-steps",
    "50",
];

fn train(extra: &[&str]) -> Command {
    let mut c = common::tinyscore();
    c.arg("train").args(NET).args(extra).stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

fn run(extra: &[&str]) -> Output {
    train(extra).output().expect("run tinyscore train")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn killed_training_leaves_a_resumable_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("run.safetensors");
    let out = run(&["--steps", "20", "--out", s(&ckpt)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let first = dir.path().join("first.safetensors");
    std::fs::copy(&ckpt, &first).unwrap();

    // Resume with a checkpoint after every step and kill the process at several moments: the file
    // on disk must always load, and never go backwards.
    let mut last_step = 20;
    for delay_ms in [30u64, 90, 170, 260, 400] {
        let mut child =
            train(&["--steps", "1000000", "--save-every", "1", "--resume", s(&ckpt), "--out", s(&ckpt)])
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn tinyscore train");
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().expect("SIGKILL"); // Child::kill is SIGKILL on unix
        child.wait().unwrap();
        let c = Checkpoint::load(&ckpt).unwrap_or_else(|e| panic!("after a kill at {delay_ms} ms: {e}"));
        assert!(c.step >= last_step, "checkpoint went back from step {last_step} to {}", c.step);
        last_step = c.step;
    }
    assert!(last_step > 20, "no checkpoint was written while the runs were alive; lengthen the delays");

    // Resume to completion, and compare with an uninterrupted run from the same start.
    let target = (last_step + 15).to_string();
    let out = run(&["--steps", &target, "--resume", s(&ckpt), "--out", s(&ckpt)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("trained {target} steps")), "{err}");
    let straight = dir.path().join("straight.safetensors");
    let out = run(&["--steps", &target, "--resume", s(&first), "--out", s(&straight)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (a, b) = (Checkpoint::load(&ckpt).unwrap(), Checkpoint::load(&straight).unwrap());
    assert_eq!(a.step, b.step);
    assert!(
        a.params == b.params && a.ema == b.ema && a.adam_m == b.adam_m && a.adam_v == b.adam_v,
        "killed-and-resumed training differs from the uninterrupted run"
    );
}
