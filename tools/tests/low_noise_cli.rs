//! `tinyscore train --low-noise-share P --low-noise-max F` (issue 16): bad values are one-line
//! errors before any work, the draw is recorded in the checkpoint, a resumed run keeps it unless
//! the flags change it, and `--device cuda` refuses it by name.

mod common;

use std::path::Path;
use std::process::Output;

use tinyscore_train::checkpoint::Checkpoint;
use tinyscore_train::train::TimeDraw;

fn tinyscore(args: &[&str]) -> Output {
    common::tinyscore().args(args).output().expect("run tinyscore")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A tiny run on moons to `out` with `extra` flags.
fn train(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "--data",
        "moons",
        "--n",
        "300",
        "--hidden",
        "8",
        "--blocks",
        "1",
        "--freqs",
        "4",
        "--batch",
        "16",
        "--diffusion-steps",
        "20",
        "--out",
    ];
    args.push(s(out));
    args.extend_from_slice(extra);
    tinyscore(&args)
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn draw(p: &Path) -> TimeDraw {
    Checkpoint::load(p).unwrap().config.time_draw
}

#[test]
fn bad_low_noise_values_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.safetensors");
    let cases: &[(&[&str], &str)] = &[
        (&["--low-noise-share", "1.5"], "--low-noise-share must be in [0, 1], got 1.5"),
        (&["--low-noise-share", "-0.1"], "--low-noise-share must be in [0, 1]"),
        (&["--low-noise-share", "NaN"], "--low-noise-share must be in [0, 1]"),
        (&["--low-noise-share", "0.5", "--low-noise-max", "0"], "--low-noise-max must be in (0, 1], got 0"),
        (&["--low-noise-share", "0.5", "--low-noise-max", "1.2"], "--low-noise-max must be in (0, 1]"),
        (
            &["--low-noise-share", "0.5", "--low-noise-max", "-0.3"],
            "--low-noise-max must be in (0, 1], got -0.3",
        ),
        (&["--low-noise-max", "0.2"], "--low-noise-max has no effect without a --low-noise-share above 0"),
        (&["--low-noise-share", "0", "--low-noise-max", "0.2"], "--low-noise-max has no effect"),
        (&["--low-noise-share", "0.5", "--device", "cuda"], "--low-noise-share runs on the CPU backend only"),
    ];
    for (extra, want) in cases {
        let mut args = extra.to_vec();
        args.extend(["--steps", "3"]);
        let o = train(&out, &args);
        let e = err(&o);
        assert_eq!(o.status.code(), Some(1), "{extra:?}: {e}");
        assert!(e.contains(want) && e.trim_end().lines().count() == 1, "{extra:?}: {e}");
        assert!(!out.exists(), "{extra:?}: refused before any work");
    }
}

#[test]
fn the_draw_survives_resume_and_a_fine_tune_changes_it() {
    let dir = tempfile::tempdir().unwrap();
    let [a, b, c, d, u] = ["a", "b", "c", "d", "u"].map(|n| dir.path().join(format!("{n}.safetensors")));
    let o = train(&a, &["--steps", "4", "--low-noise-share", "0.5"]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(draw(&a), TimeDraw::new(0.5, 0.3).unwrap(), "the default range is 0.3");

    // Resumed without the flags: the checkpoint's draw, bit for bit the run that never stopped.
    let o = train(&b, &["--steps", "8", "--resume", s(&a)]);
    assert!(o.status.success() && !err(&o).contains("changing the time draw"), "{}", err(&o));
    assert_eq!(draw(&b), TimeDraw::new(0.5, 0.3).unwrap());
    let o = train(&c, &["--steps", "8", "--low-noise-share", "0.5"]);
    assert!(o.status.success(), "{}", err(&o));
    let (rb, rc) = (Checkpoint::load(&b).unwrap(), Checkpoint::load(&c).unwrap());
    assert_eq!(rb.params, rc.params, "resumed = straight");

    // A resumed run on the GPU would drop the draw: refused, naming the checkpoint's share.
    let o = train(&d, &["--steps", "8", "--resume", s(&a), "--device", "cuda"]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("the checkpoint's low-noise share runs on the CPU backend only"), "{}", err(&o));

    // Only the range given: the checkpoint's share with the new range.
    let o = train(&d, &["--steps", "6", "--resume", s(&a), "--low-noise-max", "0.1"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(err(&o).contains("changing the time draw from --low-noise-share 0.5 --low-noise-max 0.3 to --low-noise-share 0.5 --low-noise-max 0.1"), "{}", err(&o));
    assert_eq!(draw(&d), TimeDraw::new(0.5, 0.1).unwrap());
    // Back to uniform: no draw is recorded.
    let o = train(&u, &["--steps", "6", "--resume", s(&a), "--low-noise-share", "0"]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(draw(&u), TimeDraw::UNIFORM);
    assert!(!String::from_utf8_lossy(&std::fs::read(&u).unwrap()).contains("low_noise"));
    // A fine-tune of a uniform run takes the default range; the fine-tuned steps differ.
    let o = train(&d, &["--steps", "10", "--resume", s(&u), "--low-noise-share", "1"]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(draw(&d), TimeDraw::new(1.0, 0.3).unwrap());
    let o = train(&c, &["--steps", "10", "--resume", s(&u)]);
    assert!(o.status.success(), "{}", err(&o));
    assert_ne!(Checkpoint::load(&c).unwrap().params, Checkpoint::load(&d).unwrap().params);
}
