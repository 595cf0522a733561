//! Issue 17: outputs never destroy what they replace, settings are never silently ignored, and
//! errors name the problem before the work. Every case exits 1 with one line naming the problem,
//! and a snapshot of every file involved (regular files by checksum, symbolic links by target,
//! device nodes by type) is the same before and after the whole table: nothing was replaced,
//! nothing half-written was left behind.

mod common;

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Output;

fn tinyscore(args: &[&str]) -> Output {
    common::tinyscore().args(args).output().expect("run tinyscore")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// What is at `path`: its type, and for a regular file a checksum, for a link its target.
fn describe(path: &Path) -> String {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return "absent".into() };
    let ft = meta.file_type();
    if ft.is_symlink() {
        return format!("symlink -> {}", std::fs::read_link(path).unwrap().display());
    }
    if ft.is_dir() {
        return "directory".into();
    }
    if ft.is_file() {
        let mut h = DefaultHasher::new();
        std::fs::read(path).unwrap().hash(&mut h);
        return format!("file {} bytes, hash {:016x}", meta.len(), h.finish());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        if ft.is_char_device() {
            return format!("char device {:x}", meta.rdev());
        }
    }
    "other".into()
}

/// Everything under `dir` (recursively) and the extra paths.
fn snapshot(dir: &Path, extra: &[&Path]) -> BTreeMap<PathBuf, String> {
    let mut map = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p.clone());
            }
            map.insert(p.clone(), describe(&p));
        }
    }
    for p in extra {
        map.insert(p.to_path_buf(), describe(p));
    }
    map
}

/// A tiny checkpoint (20 steps on moons) and its f32 model file.
fn trained(d: &Path) -> (PathBuf, PathBuf) {
    let ckpt = d.join("m.safetensors");
    let out = tinyscore(&[
        "train",
        "--data",
        "moons",
        "--n",
        "500",
        "--steps",
        "20",
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
        s(&ckpt),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let model = d.join("m.tsm");
    let out = tinyscore(&["convert", s(&ckpt), "--out", s(&model)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (ckpt, model)
}

#[test]
fn refused_outputs_and_flags_exit_1_before_the_work_and_replace_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ckpt, model) = trained(d);
    let (c, m) = (s(&ckpt), s(&model));
    let put = |name: &str, content: &[u8]| {
        let p = d.join(name);
        std::fs::write(&p, content).unwrap();
        p
    };
    let existing_png = put("x.png", b"not really a png, and it must stay so");
    let existing_csv = put("keep.csv", b"1,2\n3,4\n");
    let noisy = put("noisy.csv", b"0.1,0.2\n0.3,0.4\n");
    let mask = put("mask.csv", b"1,0\n0,1\n");
    let target = put("target.csv", b"9,9\n");
    let link = d.join("link.csv");
    #[cfg(unix)]
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let sub = d.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let qs = d.join("qs");
    let p = |name: &str| d.join(name).to_str().unwrap().to_string();
    let (csv, nodir_png, png_noext) = (p("s.csv"), p("nodir/p.png"), p("p"));

    let mut cases: Vec<(Vec<String>, &str)> = Vec::new();
    let mut case = |args: &[&str], needle: &'static str| {
        cases.push((args.iter().map(|a| a.to_string()).collect(), needle));
    };
    // 1. outputs that would replace what they must not
    case(&["convert", c, "--out", "/dev/full"], "No space left on device");
    case(&["sample", m, "--n", "3", "--out", m], "also an input");
    case(&["sample", m, "--n", "3", "--out", s(&existing_png), "--plot", s(&existing_png)], "same file");
    case(&["train", "--data", "moons", "--steps", "5", "--out", &p("t.tsm")], ".safetensors");
    case(&["train", "--data", "moons", "--steps", "5", "--out", m], ".safetensors");
    case(&["convert", c, "--out", c], "also an input");
    case(&["convert", c, "--out", &p("o.csv")], ".tsm");
    case(&["sample", m, "--n", "3", "--out", s(&link)], "symbolic link");
    case(&["sample", m, "--n", "3", "--out", s(&sub)], "directory");
    case(&["denoise", m, "--input", s(&noisy), "--out", s(&noisy)], "also an input");
    case(
        &["data", "moons", "--noise", "0.1", "--out", s(&existing_csv), "--clean-out", s(&existing_csv)],
        "same file",
    );
    case(&["data", "moons", "--noise", "0.1", "--out", "-", "--clean-out", "-"], "standard output");
    // 2. settings that would be ignored
    case(&["convert", c, "--quant", "f32", "--groups", "4", "--out", &p("o.tsm")], "--groups");
    case(
        &["train", "--resume", c, "--data", "swissroll", "--steps", "40", "--out", &p("r.safetensors")],
        "--data",
    );
    case(
        &["train", "--resume", c, "--hidden", "64", "--steps", "40", "--out", &p("r.safetensors")],
        "--hidden",
    );
    case(&["train", "--data", "moons", "--cuda-graph", "--out", &p("r.safetensors")], "--cuda-graph");
    case(
        &[
            "train",
            "--data",
            "moons",
            "--process",
            "ve",
            "--schedule",
            "cosine",
            "--out",
            &p("r.safetensors"),
        ],
        "--schedule",
    );
    case(&["sample", m, "--n", "3", "--eta", "0.5", "--out", "-"], "--eta");
    case(&["sample", m, "--n", "3", "--sampler", "ddim", "--snr", "0.2", "--out", "-"], "--snr");
    case(
        &["denoise", m, "--input", s(&noisy), "--mask", s(&mask), "--sigma", "0.1", "--out", "-"],
        "--sigma",
    );
    case(&["denoise", m, "--input", s(&noisy), "--draws", "2", "--out", "-"], "--draws");
    case(&["data", "moons", "--clean-out", &p("c.csv"), "--out", &p("o.csv")], "--clean-out");
    // 3. allocations sized by arguments
    case(&["train", "--data", "moons", "--batch", "4000000000", "--out", &p("r.safetensors")], "--batch");
    case(&["train", "--data", "moons", "--n", "4000000000", "--out", &p("r.safetensors")], "--n");
    case(&["sample", m, "--n", "4000000000", "--out", "-"], "--n");
    case(&["data", "moons", "--n", "4000000000", "--out", "-"], "--n");
    case(
        &["eval", "--samples", s(&existing_csv), "--data", "moons", "--projections", "4000000000"],
        "--projections",
    );
    case(&["likelihood", m, "--data", "moons", "--n", "4000000000"], "--n");
    case(&["bench-train", "--device", "cpu", "--batches", "4000000000"], "--batches");
    // 4. errors before the work, and not misleading
    case(&["train", "--data", "moons", "--out", s(d)], "directory");
    case(&["sample", m, "--n", "3", "--out", &csv, "--plot", &nodir_png], "does not exist");
    case(&["sample", m, "--n", "3", "--out", &csv, "--plot", &png_noext], ".png");
    case(&["quickstart", "--dir", s(&qs), "--n", "0"], "--n");
    case(&["quickstart", "--dir", s(&qs), "--sample-steps", "0"], "--sample-steps");
    case(&["train"], "--data");
    case(&["sample", m], "--out");
    case(&["eval", "--samples", &p("nope.csv"), "--data", "moons"], "nope.csv: No such file");
    case(&["train", "--data", &p("nope.csv"), "--out", &p("r.safetensors")], "nope.csv: No such file");
    case(&["convert", &p("missing.safetensors"), "--out", &p("o.tsm")], "missing.safetensors: No such file");
    if Path::new("/proc/version").exists() {
        case(&["sample", m, "--n", "3", "--out", "/proc/version"], "/proc/version");
    }

    let devices = [Path::new("/dev/null"), Path::new("/dev/full")];
    let before = snapshot(d, &devices);
    let mut failures = Vec::new();
    for (args, needle) in &cases {
        let out = common::tinyscore().args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let mut ok = out.status.code() == Some(1)
            && err.trim_end().lines().count() == 1
            && err.starts_with("error: ")
            && err.contains(needle);
        // One voice for file errors: the path once, the OS reason once, never a wrong reason.
        if let Some(path) =
            args.iter().find(|a| a.ends_with("missing.safetensors") || a.ends_with("nope.csv"))
        {
            ok &= err.matches(path.as_str()).count() == 1 && err.matches("No such file").count() == 1;
        }
        if args.iter().any(|a| a == "/proc/version") {
            ok &= !err.contains("No such file");
        }
        if !ok {
            failures.push(format!("{args:?}: status {:?}, wanted {needle:?} in {err:?}", out.status.code()));
        }
    }
    let after = snapshot(d, &devices);
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_eq!(before, after, "a refused command changed files");
    assert!(!qs.exists(), "quickstart made its folder before checking its arguments");
    assert!(describe(Path::new("/dev/null")).starts_with("char device"));
}

#[test]
fn devices_are_written_straight_and_files_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ckpt, model) = trained(d);
    for args in [
        vec!["convert", s(&ckpt), "--out", "/dev/null"],
        vec!["sample", s(&model), "--n", "3", "--out", "/dev/null", "--plot", "/dev/null"],
        vec!["data", "moons", "--n", "3", "--out", "/dev/null"],
    ] {
        let out = tinyscore(&args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(describe(Path::new("/dev/null")).starts_with("char device"));
    // A regular file is replaced whole, and no temporary file is left beside it.
    let csv = d.join("s.csv");
    std::fs::write(&csv, b"old").unwrap();
    let out = tinyscore(&["sample", s(&model), "--n", "3", "--out", s(&csv)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(&csv).unwrap().lines().count(), 3);
    let leftovers: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn resume_continues_with_the_checkpoint_settings_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ckpt, _) = trained(d);
    let next = d.join("next.safetensors");
    // No --data, no sizes: all from the checkpoint; equal values given again are accepted.
    for extra in [vec![], vec!["--data", "moons", "--hidden", "8", "--n", "500"]] {
        let mut args = vec!["train", "--resume", s(&ckpt), "--steps", "30", "--out", s(&next)];
        args.extend(extra.iter());
        let out = tinyscore(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {err}");
        assert!(err.contains("with the checkpoint's settings") && err.contains("data moons"), "{err}");
    }
}

#[test]
fn data_makes_the_denoising_and_imputation_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let args = [
        "data",
        "moons",
        "--n",
        "20",
        "--noise",
        "0.1",
        "--out",
        &p("noisy.csv"),
        "--clean-out",
        &p("clean.csv"),
    ];
    let out = tinyscore(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = tinyscore(&[
        "data",
        "moons",
        "--n",
        "20",
        "--gap",
        "1",
        "--mask-out",
        &p("mask.csv"),
        "--out",
        &p("gappy.csv"),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let read = |n: &str| std::fs::read_to_string(p(n)).unwrap();
    let (noisy, clean, mask) = (read("noisy.csv"), read("clean.csv"), read("mask.csv"));
    assert_eq!(noisy.lines().count(), 20);
    assert_ne!(noisy, clean);
    // One missing value per row of two.
    assert!(mask.lines().all(|l| l == "1,0" || l == "0,1"), "{mask}");
}
