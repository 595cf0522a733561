//! The firmware in QEMU samples and denoises the same bits as the host (DESIGN.md §4).
//!
//! Builds `firmware-example/` for thumbv7em-none-eabihf with the model and settings passed as its
//! `TINYSCORE_*` build variables, runs the ELF on QEMU's `mps2-an386` (Cortex-M4F) with
//! semihosting, and compares its CSV lines byte for byte with `tinyscore sample ... --out -` (or
//! `tinyscore denoise ... --out -`) for the same file, seed and settings, f32 and w8a8. Each run
//! also checks the stack high-water mark the firmware measured against the RAM figure
//! `tinyscore inspect` prints for the file. A last run checks that a firmware that fails
//! (here: a step count the engine refuses, which panics) makes QEMU exit with a failure status
//! instead of hanging. Stream mode: the firmware streams a noisy ECG signal with NaN and
//! infinite samples, paced at 360 Hz, bit for bit what `tinyscore denoise --stream` prints.
//!
//! Needs `qemu-system-arm` on PATH and the `thumbv7em-none-eabihf` Rust target; without either
//! it prints `skipped: <why>` and passes (CI installs both). Run it alone with
//! `cargo test -p tinyscore-tools --release --test firmware -- --nocapture`.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The model the firmware embeds (checked in; D = 2).
const MODEL: &str = "firmware-example/models/moons-f32.tsm";
/// The same network's w8a8 file (int8 path; checked in).
const MODEL_W8A8: &str = "firmware-example/models/moons-w8a8.tsm";
/// A small ECG model (D = 64 samples, H = 64, B = 3), f32 and w8a8, and noisy windows for it.
const ECG_F32: &str = "firmware-example/models/ecg-f32.tsm";
const ECG_W8A8: &str = "firmware-example/models/ecg-w8a8.tsm";
const ECG_INPUT: &str = "firmware-example/inputs/ecg-noisy.csv";
/// A small ScoreNet-conv (U-Net) of the same 64-sample ECG windows, f32 (c_0 = 8, 2 levels, K = 5;
/// `tinyscore train --data ecg --arch conv --width 8 --levels 2 --steps 600 --batch 32`).
const ECG_CONV_F32: &str = "firmware-example/models/ecg-conv-f32.tsm";
/// The stream mode's noisy ECG signal (1024 samples at 360 Hz, with NaN, ±inf and ±1e30 samples;
/// made by `firmware-example/inputs/make-ecg-stream.py`).
const ECG_STREAM_INPUT: &str = "firmware-example/inputs/ecg-stream-noisy.csv";
/// Impute mode: the 4 clean held-out windows of `ECG_INPUT` and a mask with a 16-sample gap in
/// each (made by `firmware-example/inputs/make-ecg-mask.py`).
const ECG_CLEAN: &str = "firmware-example/inputs/ecg-clean.csv";
const ECG_GAP_MASK: &str = "firmware-example/inputs/ecg-gap-mask.csv";
/// Stack the firmware may use beyond `tinyscore inspect`'s working set: the call frames of
/// parsing, sampling and printing (core::fmt's formatting machinery), the
/// output line buffer and the runtime. Documented in docs/BENCHMARKS.md ("Firmware").
const STACK_ALLOWANCE: u64 = 8 * 1024;
const TARGET: &str = "thumbv7em-none-eabihf";
/// Small enough to keep the test quick: a few hundred network evaluations in QEMU.
const STEPS: u32 = 50;
const N: u32 = 4;
const SEED: u64 = 2024;
/// QEMU is killed after this long; the run itself takes well under a second.
const QEMU_TIMEOUT: Duration = Duration::from_secs(120);

/// The tests share one firmware build directory and rebuild it with different settings, so
/// they take turns: a build and the run of its ELF must not interleave with another build.
static FIRMWARE: Mutex<()> = Mutex::new(());

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tools/ has a parent").to_path_buf()
}

/// Why the firmware cannot be run on this machine, if it cannot.
fn missing_tools(firmware_dir: &Path) -> Option<String> {
    if Command::new("qemu-system-arm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        return Some("qemu-system-arm is not installed (apt-get install qemu-system-arm)".into());
    }
    // Ask the rustc that cargo will use in firmware-example/ (rust-toolchain.toml applies)
    // where the target's libraries live, and whether they are there.
    let libdir = Command::new("rustc")
        .args(["--print", "target-libdir", "--target", TARGET])
        .current_dir(firmware_dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let has_core = libdir.and_then(|d| std::fs::read_dir(d).ok()).is_some_and(|entries| {
        entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with("libcore-"))
    });
    if !has_core {
        return Some(format!("the Rust target {TARGET} is not installed (rustup target add {TARGET})"));
    }
    None
}

/// Builds the firmware with `settings` as its build variables; returns the ELF's path.
/// A setting (not passed on) that builds the firmware without the engine's `conv` feature.
const NO_CONV: &str = "TINYSCORE_TEST_NO_CONV";
/// A setting (not passed on) whose value the build passes as `--features` (more of the
/// firmware's features, comma-separated).
const FEATURES: &str = "TINYSCORE_TEST_FEATURES";

fn build_firmware(firmware_dir: &Path, model: &Path, settings: &[(&str, String)]) -> PathBuf {
    build(firmware_dir, model, settings, None)
}

/// Builds the firmware, or its example `example`, with `settings`; returns the ELF's path.
fn build(firmware_dir: &Path, model: &Path, settings: &[(&str, String)], example: Option<&str>) -> PathBuf {
    let target_dir = firmware_dir.join("target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--target", TARGET]);
    if settings.iter().any(|(k, _)| *k == NO_CONV) {
        // The engine without its `conv` layers: a ScoreNet v1 firmware for a small part.
        cmd.args(["--no-default-features", "--features", "qemu"]);
    }
    if let Some((_, features)) = settings.iter().find(|(k, _)| *k == FEATURES) {
        cmd.args(["--features", features]);
    }
    if let Some(name) = example {
        cmd.args(["--example", name]);
    }
    cmd.arg("--target-dir")
        .arg(&target_dir)
        .current_dir(firmware_dir)
        .env("TINYSCORE_MODEL", model)
        // The firmware's build must not inherit the host build's flags or redirections.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR");
    for (k, v) in settings.iter().filter(|(k, _)| *k != NO_CONV && *k != FEATURES) {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("cannot run cargo");
    assert!(
        out.status.success(),
        "building the firmware failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let release = target_dir.join(TARGET).join("release");
    match example {
        Some(name) => release.join("examples").join(name),
        None => release.join("tinyscore-firmware-example"),
    }
}

/// What a QEMU run left: exit status, stdout, stderr, wall time.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    seconds: f64,
}

/// Runs `elf` in QEMU as the firmware's `.cargo/config.toml` runner does, killing it after
/// [`QEMU_TIMEOUT`] (a failure: the firmware must always end through semihosting).
fn run_in_qemu(elf: &Path) -> Run {
    run_in_qemu_with(elf, &[])
}

/// [`run_in_qemu`] with extra QEMU arguments (`-icount shift=0` for instruction counts).
fn run_in_qemu_with(elf: &Path, extra: &[&str]) -> Run {
    let start = Instant::now();
    let mut child = Command::new("qemu-system-arm")
        .args(["-cpu", "cortex-m4", "-machine", "mps2-an386", "-nographic"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .args(extra)
        .arg("-kernel")
        .arg(elf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start qemu-system-arm");
    // Drain both pipes on threads so a chatty run cannot block on a full pipe.
    let mut pipe_out = child.stdout.take().expect("piped stdout");
    let mut pipe_err = child.stderr.take().expect("piped stderr");
    let reader_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe_out.read_to_string(&mut s);
        s
    });
    let reader_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe_err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for qemu") {
            break status;
        }
        if start.elapsed() > QEMU_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            let (out, err) = (reader_out.join().unwrap_or_default(), reader_err.join().unwrap_or_default());
            panic!("QEMU did not exit within {QEMU_TIMEOUT:?}; stdout:\n{out}\nstderr:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let seconds = start.elapsed().as_secs_f64();
    Run {
        status,
        stdout: reader_out.join().expect("stdout reader"),
        stderr: reader_err.join().expect("stderr reader"),
        seconds,
    }
}

fn settings(sampler: &str, steps: u32) -> Vec<(&'static str, String)> {
    vec![
        ("TINYSCORE_SAMPLER", sampler.into()),
        ("TINYSCORE_STEPS", steps.to_string()),
        ("TINYSCORE_SEED", SEED.to_string()),
        ("TINYSCORE_N", N.to_string()),
    ]
}

#[test]
fn firmware_in_qemu_prints_the_hosts_samples_bit_for_bit() {
    bit_exact_in_qemu(MODEL, "ddpm", STEPS, N, None);
}

#[test]
fn firmware_in_qemu_runs_the_int8_path_bit_for_bit() {
    // A w8a8 file draws in lockstep by default (8, here all N = 4 in one block).
    bit_exact_in_qemu(MODEL_W8A8, "ddpm", STEPS, N, None);
}

#[test]
fn firmware_in_qemu_samples_a_conv_network_bit_for_bit() {
    bit_exact_in_qemu(ECG_CONV_F32, "ddpm", 20, N, None);
}

#[test]
fn firmware_in_qemu_runs_a_few_step_solver_bit_for_bit() {
    bit_exact_in_qemu(MODEL, "dpmpp-2m", 10, N, None);
    bit_exact_in_qemu(MODEL_W8A8, "unipc", 10, N, None);
    bit_exact_in_qemu(MODEL_W8A8, "dpmpp-3m", 10, N, None);
    bit_exact_in_qemu(MODEL, "dpmpp-sde", 10, N, None);
}

/// Sample mode in lockstep blocks (`draw_batch`, one batched network evaluation per step for a
/// block): the host's bits, with a last block shorter than the others; the stack within
/// inspect's RAM + `lockstep` figures.
#[test]
fn firmware_samples_in_lockstep_blocks_bit_for_bit() {
    // MLP f32: blocks of 3, 3 and 1; w8a8: blocks of 8 and 2 (the integer tiles), and one at a
    // time for the same file (the baseline of docs/BENCHMARKS.md's per-sample figures).
    bit_exact_in_qemu(MODEL, "ddpm", 20, 7, Some(3));
    bit_exact_in_qemu(MODEL_W8A8, "ddpm", 20, 10, Some(8));
    bit_exact_in_qemu(MODEL_W8A8, "ddpm", 20, 10, Some(1));
    // A conv network in lockstep (the batched walk of the layer graph).
    bit_exact_in_qemu(ECG_CONV_F32, "ddim", 5, 3, Some(2));
}

/// Builds the firmware in sample mode (`batch`: `TINYSCORE_BATCH`, `None` for the default) and
/// compares its `n` samples with `tinyscore sample`'s.
fn bit_exact_in_qemu(model_rel: &str, sampler: &str, steps: u32, n: u32, batch: Option<usize>) {
    let root = repo_root();
    let firmware_dir = root.join("firmware-example");
    if let Some(why) = missing_tools(&firmware_dir) {
        println!("skipped: {why}");
        return;
    }
    let model = root.join(model_rel);
    let file_name = model.file_name().expect("a file").to_string_lossy().into_owned();
    assert!(model.is_file(), "{} is missing: the firmware test embeds it", model.display());

    // The host's samples: exactly the CSV lines, nothing else, on stdout.
    let host = common::tinyscore()
        .arg("sample")
        .arg(&model)
        .args(["--sampler", sampler, "--steps", &steps.to_string(), "--n", &n.to_string()])
        .args(["--seed", &SEED.to_string(), "--out", "-"])
        .output()
        .expect("cannot run tinyscore");
    assert!(host.status.success(), "tinyscore sample failed: {}", String::from_utf8_lossy(&host.stderr));
    let host_csv = String::from_utf8(host.stdout).expect("host output is UTF-8");
    assert_eq!(host_csv.lines().count(), n as usize, "host output:\n{host_csv}");

    let mut build_settings = settings(sampler, steps);
    build_settings.retain(|(k, _)| *k != "TINYSCORE_N");
    build_settings.push(("TINYSCORE_N", n.to_string()));
    if let Some(k) = batch {
        build_settings.push(("TINYSCORE_BATCH", k.to_string()));
    }
    let run = {
        let _turn = FIRMWARE.lock().unwrap_or_else(|e| e.into_inner());
        let elf = build_firmware(&firmware_dir, &model, &build_settings);
        run_in_qemu(&elf)
    };
    println!("QEMU run: {:.2} s\n{}", run.seconds, run.stdout);
    assert!(run.status.success(), "firmware failed ({}):\n{}{}", run.status, run.stdout, run.stderr);

    // Header, N sample lines, then the `#` measurement lines. The block size: the setting (or
    // the default, 8 for a w8a8 file and 1 otherwise), at most N.
    let int8 = inspect_text(&model, 1).lines().any(|l| l.starts_with("quant     w8a8"));
    let k = batch.unwrap_or(if int8 { 8 } else { 1 }).min(n as usize);
    let header = format!(
        "# tinyscore firmware: model={file_name} sampler={sampler} steps={steps} seed={SEED} n={n} batch={k}\n"
    );
    let (device_csv, trailer) = split_output(&run.stdout, &header);
    assert_eq!(device_csv, host_csv, "firmware and host samples differ");
    assert!(trailer_value(trailer, "# cycles=") > 0);
    let stack = trailer_value(trailer, "# stack_bytes=");

    // In lockstep the other chains, the batch arena and the integer tiles are on the stack too.
    let extra = if k > 1 { inspect_figure(&model, k, "lockstep ") } else { 0 };
    stack_within(&model, stack, extra, "lockstep");
}

/// `tinyscore inspect --batch K MODEL`'s text.
fn inspect_text(model: &Path, batch: usize) -> String {
    let inspect = common::tinyscore()
        .arg("inspect")
        .arg(model)
        .args(["--batch", &batch.to_string()])
        .output()
        .expect("inspect");
    assert!(inspect.status.success(), "{}", String::from_utf8_lossy(&inspect.stderr));
    String::from_utf8_lossy(&inspect.stdout).into_owned()
}

/// The bytes on the `key` line (`ram `, `lockstep `, `stream `) of `tinyscore inspect --batch K`.
fn inspect_figure(model: &Path, batch: usize, key: &str) -> u64 {
    let text = inspect_text(model, batch);
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no `{key}N bytes` line in:\n{text}"))
}

/// The measured `stack` covers inspect's RAM figure plus `extra` (its `what` line), and exceeds
/// them by no more than [`STACK_ALLOWANCE`].
fn stack_within(model: &Path, stack: u64, extra: u64, what: &str) {
    let ram = inspect_figure(model, 1, "ram ") + extra;
    println!("stack {stack} B, inspect's RAM (+ {what}) figure {ram} B");
    assert!(ram <= stack, "inspect says {ram} B but the firmware used only {stack} B of stack");
    assert!(
        stack <= ram + STACK_ALLOWANCE,
        "the firmware used {stack} B of stack, more than inspect's {ram} B + {STACK_ALLOWANCE} B"
    );
}

/// The RAM figure of `tinyscore inspect` is the engine's working set (network buffers and tensor
/// table, the process, a run's vectors), all of which live on the firmware's stack at once: the
/// measured `stack` must cover it, and exceed it by no more than the frames and the runtime.
fn stack_within_inspects_figure(model: &Path, stack: u64) {
    stack_within(model, stack, 0, "nothing");
}

/// Splits the firmware's output after `header` into the CSV lines and the `#` lines after them.
fn split_output<'a>(stdout: &'a str, header: &str) -> (&'a str, &'a str) {
    let body = stdout.strip_prefix(header).unwrap_or_else(|| panic!("bad first line:\n{stdout}"));
    let split = body.find("\n#").map_or(body.len(), |i| i + 1);
    body.split_at(split)
}

/// The number on the trailer line starting with `key`.
fn trailer_value(trailer: &str, key: &str) -> u64 {
    let line = trailer.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("no `{key}` line"));
    line[key.len()..].trim().parse().unwrap_or_else(|_| panic!("bad line `{line}`"))
}

#[test]
fn firmware_denoises_like_the_host_sdedit_f32_sigma_auto() {
    // SDEdit exercises the noise streams and the posterior steps; `auto` the σ estimate.
    denoise_in_qemu(
        ECG_F32,
        &[("TINYSCORE_METHOD", "sdedit"), ("TINYSCORE_STEPS", "8"), ("TINYSCORE_DRAWS", "2")],
    );
}

#[test]
fn firmware_denoises_a_conv_network_like_the_host() {
    denoise_in_qemu(ECG_CONV_F32, &[("TINYSCORE_METHOD", "tweedie"), ("TINYSCORE_SIGMA", "0.1")]);
    denoise_in_qemu(
        ECG_CONV_F32,
        &[("TINYSCORE_METHOD", "sdedit"), ("TINYSCORE_STEPS", "4"), ("TINYSCORE_DRAWS", "1")],
    );
}

/// The int8 convolutions (issue 18): a w8a8 U-Net, bit for bit the host's.
#[test]
fn firmware_denoises_a_w8a8_conv_network_like_the_host() {
    let m = "firmware-example/models/ecg-conv-w8a8.tsm";
    denoise_in_qemu(m, &[("TINYSCORE_METHOD", "tweedie"), ("TINYSCORE_SIGMA", "0.1")]);
}

#[test]
fn firmware_denoises_like_the_host_tweedie_w8a8() {
    denoise_in_qemu(ECG_W8A8, &[("TINYSCORE_METHOD", "tweedie"), ("TINYSCORE_SIGMA", "0.1")]);
}

/// Builds the firmware in `denoise` mode with `extra` settings (seed 5) and compares its output
/// with `tinyscore denoise` on the same file, input and settings.
fn denoise_in_qemu(model_rel: &str, extra: &[(&str, &str)]) {
    let root = repo_root();
    let firmware_dir = root.join("firmware-example");
    if let Some(why) = missing_tools(&firmware_dir) {
        println!("skipped: {why}");
        return;
    }
    let (model, input) = (root.join(model_rel), root.join(ECG_INPUT));
    assert!(model.is_file() && input.is_file(), "{} or {} is missing", model.display(), input.display());
    let get = |k: &str| extra.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    let method = get("TINYSCORE_METHOD").unwrap_or("tweedie");
    let sigma = get("TINYSCORE_SIGMA").unwrap_or("auto");

    let mut host = common::tinyscore();
    host.arg("denoise").arg(&model).arg("--input").arg(&input);
    host.args(["--method", method, "--sigma", sigma, "--out", "-"]);
    if method != "tweedie" {
        // Tweedie is one deterministic evaluation: `denoise` refuses a --seed it would ignore.
        host.args(["--seed", "5"]);
    }
    if let Some(steps) = get("TINYSCORE_STEPS") {
        host.args(["--steps", steps]);
    }
    if let Some(draws) = get("TINYSCORE_DRAWS") {
        host.args(["--draws", draws]);
    }
    let host = host.output().expect("cannot run tinyscore");
    assert!(host.status.success(), "tinyscore denoise failed: {}", String::from_utf8_lossy(&host.stderr));
    let host_csv = String::from_utf8(host.stdout).expect("host output is UTF-8");
    let host_err = String::from_utf8_lossy(&host.stderr);
    let windows = host_csv.lines().count();
    assert!(windows > 0);

    let mut settings: Vec<(&str, String)> =
        vec![("TINYSCORE_MODE", "denoise".into()), ("TINYSCORE_SEED", "5".into())];
    settings.push(("TINYSCORE_INPUT", input.display().to_string()));
    settings.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let run = {
        let _turn = FIRMWARE.lock().unwrap_or_else(|e| e.into_inner());
        let elf = build_firmware(&firmware_dir, &model, &settings);
        run_in_qemu(&elf)
    };
    println!("QEMU run: {:.2} s\n{}", run.seconds, run.stdout);
    assert!(run.status.success(), "firmware failed ({}):\n{}{}", run.status, run.stdout, run.stderr);

    let file_name = model.file_name().expect("a file").to_string_lossy().into_owned();
    let steps = match method {
        "sdedit" => format!(
            " steps={} draws={}",
            get("TINYSCORE_STEPS").unwrap_or("50"),
            get("TINYSCORE_DRAWS").unwrap_or("4")
        ),
        _ => String::new(),
    };
    let header = format!(
        "# tinyscore firmware: mode=denoise model={file_name} input=ecg-noisy.csv method={method}{steps} sigma={sigma} seed=5 n={windows}\n"
    );
    let (device_csv, trailer) = split_output(&run.stdout, &header);
    assert_eq!(device_csv, host_csv, "firmware and host denoised windows differ");
    // The σ used, as the host reports it on stderr ("sigma 0.0929 (estimated), ...").
    let device_sigma = trailer.lines().find_map(|l| l.strip_prefix("# sigma=")).expect("a `# sigma=` line");
    assert!(
        host_err.contains(&format!("sigma {device_sigma} (")),
        "device sigma {device_sigma}, host: {host_err}"
    );
    // The σ estimate's scratch (all windows' differences, 1 KiB here) is on the stack too.
    stack_within_inspects_figure(&model, trailer_value(trailer, "# stack_bytes="));
}

/// Impute mode: the firmware fills the gaps of held-out ECG windows (the mask's 0 entries) by the
/// engine's imputation, bit for bit what `tinyscore denoise --mask` prints with the same steps,
/// draws, RePaint resamplings and seed; the known values come back unchanged.
#[test]
fn firmware_imputes_like_the_host() {
    impute_in_qemu(ECG_F32, 8, 2, 1);
    impute_in_qemu(ECG_W8A8, 6, 1, 2);
    impute_in_qemu(ECG_CONV_F32, 4, 1, 1);
}

fn impute_in_qemu(model_rel: &str, steps: u32, draws: u32, resample: u32) {
    let root = repo_root();
    let firmware_dir = root.join("firmware-example");
    if let Some(why) = missing_tools(&firmware_dir) {
        println!("skipped: {why}");
        return;
    }
    let (model, input, mask) = (root.join(model_rel), root.join(ECG_CLEAN), root.join(ECG_GAP_MASK));
    assert!(model.is_file() && input.is_file() && mask.is_file(), "a test file is missing");
    let (steps, draws, resample) = (steps.to_string(), draws.to_string(), resample.to_string());
    let host = common::tinyscore()
        .arg("denoise")
        .arg(&model)
        .arg("--input")
        .arg(&input)
        .arg("--mask")
        .arg(&mask)
        .args(["--steps", &steps, "--draws", &draws, "--resample", &resample, "--seed", "9", "--out", "-"])
        .output()
        .expect("cannot run tinyscore");
    assert!(
        host.status.success(),
        "tinyscore denoise --mask failed: {}",
        String::from_utf8_lossy(&host.stderr)
    );
    let host_csv = String::from_utf8(host.stdout).expect("host output is UTF-8");
    let windows = host_csv.lines().count();
    assert!(windows > 0);

    let settings: Vec<(&str, String)> = vec![
        ("TINYSCORE_MODE", "impute".into()),
        ("TINYSCORE_INPUT", input.display().to_string()),
        ("TINYSCORE_MASK", mask.display().to_string()),
        ("TINYSCORE_STEPS", steps.clone()),
        ("TINYSCORE_DRAWS", draws.clone()),
        ("TINYSCORE_RESAMPLE", resample.clone()),
        ("TINYSCORE_SEED", "9".into()),
    ];
    let run = {
        let _turn = FIRMWARE.lock().unwrap_or_else(|e| e.into_inner());
        let elf = build_firmware(&firmware_dir, &model, &settings);
        run_in_qemu(&elf)
    };
    println!("QEMU run: {:.2} s\n{}", run.seconds, run.stdout);
    assert!(run.status.success(), "firmware failed ({}):\n{}{}", run.status, run.stdout, run.stderr);

    let file_name = model.file_name().expect("a file").to_string_lossy().into_owned();
    let header = format!(
        "# tinyscore firmware: mode=impute model={file_name} input=ecg-clean.csv mask=ecg-gap-mask.csv \
         steps={steps} draws={draws} resample={resample} seed=9 n={windows}\n"
    );
    let (device_csv, trailer) = split_output(&run.stdout, &header);
    assert_eq!(device_csv, host_csv, "firmware and host imputed windows differ");
    // The known values are the input's, the gap's are new.
    let text = std::fs::read_to_string(&input).expect("the input");
    let mask_text = std::fs::read_to_string(&mask).expect("the mask");
    let rows = |t: &str| -> Vec<Vec<String>> {
        t.lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| l.split(',').map(|v| v.trim().to_string()).collect())
            .collect()
    };
    let (inputs, masks, outputs) = (rows(&text), rows(&mask_text), rows(device_csv));
    let mut filled = 0;
    for ((x, m), y) in inputs.iter().zip(&masks).zip(&outputs) {
        for ((xv, mv), yv) in x.iter().zip(m).zip(y) {
            let (xv, yv): (f32, f32) = (xv.parse().unwrap(), yv.parse().unwrap());
            if mv == "1" {
                assert_eq!(xv.to_bits(), yv.to_bits(), "a known value changed");
            } else {
                assert!(yv.is_finite());
                filled += usize::from(xv != yv);
            }
        }
    }
    assert!(filled > 0, "no missing value was filled");
    // Imputation's vectors (7·D) are the working set's run vectors; its mask stays in flash.
    stack_within_inspects_figure(&model, trailer_value(trailer, "# stack_bytes="));
}

/// Stream mode: the firmware takes the embedded signal sample by sample at 360 Hz (paced on its
/// cycle counter), through the engine's streaming denoiser, and prints what comes out; that must
/// be `tinyscore denoise --stream --out -` on the same file, bit for bit. The signal holds NaN,
/// ±inf and ±1e30 samples: the documented input rule (NaN → the previous sample, the rest clamped
/// to the model's range) must count them as the host does, and every output must be finite.
#[test]
fn firmware_streams_like_the_host_with_bad_samples() {
    let root = repo_root();
    let firmware_dir = root.join("firmware-example");
    if let Some(why) = missing_tools(&firmware_dir) {
        println!("skipped: {why}");
        return;
    }
    let (model, input) = (root.join(ECG_CONV_F32), root.join(ECG_STREAM_INPUT));
    assert!(model.is_file() && input.is_file(), "{} or {} is missing", model.display(), input.display());
    // The bad samples of the input, by the documented rule's two cases.
    let text = std::fs::read_to_string(&input).expect("the input");
    let values: Vec<f32> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.trim().parse().expect("a number"))
        .collect();
    let nans = values.iter().filter(|v| v.is_nan()).count();
    let huge = values.iter().filter(|v| !v.is_nan() && v.abs() > 1e6).count();
    assert!(nans > 0 && huge > 0, "the stream input must hold NaN and huge/infinite samples");

    let host = common::tinyscore()
        .arg("denoise")
        .arg(&model)
        .arg("--stream")
        .arg("--input")
        .arg(&input)
        .args(["--sigma", "auto", "--out", "-"])
        .output()
        .expect("cannot run tinyscore");
    assert!(
        host.status.success(),
        "tinyscore denoise --stream failed: {}",
        String::from_utf8_lossy(&host.stderr)
    );
    let host_csv = String::from_utf8(host.stdout).expect("host output is UTF-8");
    let host_err = String::from_utf8_lossy(&host.stderr);
    assert_eq!(host_csv.lines().count(), values.len(), "one output per input sample");

    let settings: Vec<(&str, String)> = vec![
        ("TINYSCORE_MODE", "stream".into()),
        ("TINYSCORE_INPUT", input.display().to_string()),
        ("TINYSCORE_SIGMA", "auto".into()),
        ("TINYSCORE_RATE", "360".into()),
    ];
    let run = {
        let _turn = FIRMWARE.lock().unwrap_or_else(|e| e.into_inner());
        let elf = build_firmware(&firmware_dir, &model, &settings);
        run_in_qemu(&elf)
    };
    println!("QEMU run: {:.2} s", run.seconds);
    assert!(run.status.success(), "firmware failed ({}):\n{}{}", run.status, run.stdout, run.stderr);

    let file_name = model.file_name().expect("a file").to_string_lossy().into_owned();
    let header = format!(
        "# tinyscore firmware: mode=stream model={file_name} input=ecg-stream-noisy.csv method=tweedie \
         sigma=auto hop=32 taper=hann seed=0 rate=360 n={}\n",
        values.len()
    );
    let (device_csv, trailer) = split_output(&run.stdout, &header);
    println!("{trailer}");
    assert_eq!(device_csv, host_csv, "firmware and host streams differ");
    for line in device_csv.lines() {
        let y: f32 = line.parse().unwrap_or_else(|_| panic!("bad output line `{line}`"));
        assert!(y.is_finite(), "the stream emitted {y}");
    }
    // The input check counted the bad samples, as the host reports them.
    assert!(trailer.contains(&format!("# nan={nans} clamped={huge}\n")), "trailer:\n{trailer}");
    assert!(
        host_err.contains(&format!("{nans} NaN sample(s) replaced by the previous one, {huge} infinite")),
        "host: {host_err}"
    );
    // The running σ of the last window, as the host reports it.
    let device_sigma = trailer.lines().find_map(|l| l.strip_prefix("# sigma=")).expect("a `# sigma=` line");
    assert!(
        host_err.contains(&format!("sigma {device_sigma} (")),
        "device sigma {device_sigma}, host: {host_err}"
    );
    assert!(trailer_value(trailer, "# push_cycles_max=") > 0);
    // The stream's four buffers of W f32 are on the stack beside the engine's working set.
    stream_stack_within_inspects_figures(&model, trailer_value(trailer, "# stack_bytes="));
}

/// As [`stack_within_inspects_figure`], with `tinyscore inspect`'s `stream` figure (the
/// `Stream<W>`, on the firmware's stack in stream mode) added to its RAM figure.
fn stream_stack_within_inspects_figures(model: &Path, stack: u64) {
    stack_within(model, stack, inspect_figure(model, 1, "stream "), "stream");
}

#[test]
fn a_failing_firmware_exits_qemu_with_a_failure_status() {
    let root = repo_root();
    let firmware_dir = root.join("firmware-example");
    if let Some(why) = missing_tools(&firmware_dir) {
        println!("skipped: {why}");
        return;
    }
    let model = root.join(MODEL);
    assert!(model.is_file(), "{} is missing: the firmware test embeds it", model.display());

    // More steps than any model's N: the engine refuses them at run time and the firmware
    // panics; the panic handler must end QEMU through semihosting with status 1, printing the
    // panic's message, or with `terse-panic` (the 256 KiB-flash build) its one fixed line.
    for (features, says) in [(None, "sample 0:"), (Some("terse-panic"), "panicked (built with `terse-panic`")]
    {
        let mut failing = settings("ddpm", 1_000_000);
        failing.extend(features.map(|f| (FEATURES, f.to_string())));
        let run = {
            let _turn = FIRMWARE.lock().unwrap_or_else(|e| e.into_inner());
            let elf = build_firmware(&firmware_dir, &model, &failing);
            run_in_qemu(&elf)
        };
        assert_eq!(run.status.code(), Some(1), "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
        assert!(run.stderr.contains(says), "{features:?}: stderr:\n{}", run.stderr);
    }
}

/// The smallest configuration the docs give (README, docs/BENCHMARKS.md "Firmware"): moons w8a8
/// H=32 B=2 F=8 at `opt-level = "z"`, the engine without its `conv` feature, fits in 80 KiB of
/// flash, and still samples. (It fitted 64 KiB before the layer graph: the version-3 parser,
/// the graph's checks and its walk added about 12 KB; winning them back is open work.) Flash is
/// what `arm-none-eabi-size` calls text + data: the ELF's allocated sections that hold bytes.
#[test]
fn the_small_configuration_fits_in_80_kib_of_flash() {
    let root = repo_root();
    let firmware_dir = root.join("firmware-example");
    if let Some(why) = missing_tools(&firmware_dir) {
        println!("skipped: {why}");
        return;
    }
    let model = root.join("firmware-example/models/moons-h32b2f8-w8a8.tsm");
    let mut small = settings("ddpm", 20);
    small.push(("CARGO_PROFILE_RELEASE_OPT_LEVEL", "z".into()));
    small.push((NO_CONV, "1".into()));
    // One sample at a time: the lockstep path's code stays out of the image.
    small.push(("TINYSCORE_BATCH", "1".into()));
    let (flash, run) = {
        let _turn = FIRMWARE.lock().unwrap_or_else(|e| e.into_inner());
        let elf = build_firmware(&firmware_dir, &model, &small);
        (flash_bytes(&std::fs::read(&elf).expect("the ELF")), run_in_qemu(&elf))
    };
    println!("small configuration: {flash} bytes of flash");
    assert!(flash <= 80 * 1024, "{flash} bytes of flash: the small configuration no longer fits 80 KiB");
    assert!(run.status.success(), "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert_eq!(run.stdout.lines().filter(|l| !l.starts_with('#')).count(), N as usize, "{}", run.stdout);
}

/// The 256 KiB-flash / 64 KiB-RAM profile (`TINYSCORE_MACHINE=m4f-256k-64k`: nRF52832 /
/// STM32L4 class, `firmware-example/boards/m4f-256k-64k/memory.x`, run on mps2-an386): the ECG
/// conv model with the streaming denoiser must fit: flash (text + rodata with the model + data)
/// ≤ 256 KiB, static RAM (data + bss) plus the stack the firmware measured ≤ 64 KiB, and the
/// stream still the host's bits. The model is `TINYSCORE_FIT_MODEL` if set (any `.tsm` file;
/// firmware-example/README.md says which fit), else the conv test model of 64-sample windows;
/// `TINYSCORE_FIT_OPT_LEVEL=s` builds the firmware for size.
#[test]
fn the_256k_64k_profile_fits() {
    let root = repo_root();
    let firmware_dir = root.join("firmware-example");
    if let Some(why) = missing_tools(&firmware_dir) {
        println!("skipped: {why}");
        return;
    }
    let model = match std::env::var_os("TINYSCORE_FIT_MODEL") {
        Some(p) => PathBuf::from(p),
        None => root.join(ECG_CONV_F32),
    };
    let input = root.join(ECG_STREAM_INPUT);
    assert!(model.is_file(), "{} is missing", model.display());
    let mut settings: Vec<(&str, String)> = vec![("TINYSCORE_MACHINE", "m4f-256k-64k".into())];
    // `s` or `z` for a model of 170 KB or more: the code shrinks from ~150 KB to ~85 KB.
    if let Ok(level) = std::env::var("TINYSCORE_FIT_OPT_LEVEL") {
        settings.push(("CARGO_PROFILE_RELEASE_OPT_LEVEL", level));
    }
    let StreamFit { host_csv, device_csv, flash, ram, stack } =
        stream_fit(&firmware_dir, &model, &input, settings);
    println!(
        "{}: flash {flash} B of 262144, RAM {} B (static {ram} + stack {stack}) of 65536",
        model.display(),
        ram + stack
    );
    assert_eq!(device_csv, host_csv, "firmware and host streams differ");
    assert!(flash <= 256 * 1024, "{flash} bytes of flash: more than 256 KiB");
    assert!(ram + stack <= 64 * 1024, "{ram} B static RAM + {stack} B stack: more than 64 KiB");
}

/// What [`stream_fit`] measured: the host's `denoise --stream` output and the firmware's, its
/// flash and static RAM, and its measured stack.
struct StreamFit {
    host_csv: String,
    device_csv: String,
    flash: u64,
    ram: u64,
    stack: u64,
}

/// `model` streaming `input` (σ auto, unpaced) on the host and in the firmware built with
/// `extra` settings besides the stream mode's, run in QEMU (which must succeed).
fn stream_fit(firmware_dir: &Path, model: &Path, input: &Path, extra: Vec<(&str, String)>) -> StreamFit {
    let host = common::tinyscore()
        .arg("denoise")
        .arg(model)
        .arg("--stream")
        .arg("--input")
        .arg(input)
        .args(["--sigma", "auto", "--out", "-"])
        .output()
        .expect("cannot run tinyscore");
    assert!(host.status.success(), "tinyscore denoise --stream: {}", String::from_utf8_lossy(&host.stderr));
    let host_csv = String::from_utf8(host.stdout).expect("host output is UTF-8");
    let mut settings: Vec<(&str, String)> = vec![
        ("TINYSCORE_MODE", "stream".into()),
        ("TINYSCORE_INPUT", input.display().to_string()),
        ("TINYSCORE_SIGMA", "auto".into()),
        ("TINYSCORE_RATE", "0".into()),
    ];
    settings.extend(extra);
    let (flash, ram, run) = {
        let _turn = FIRMWARE.lock().unwrap_or_else(|e| e.into_inner());
        let elf = build_firmware(firmware_dir, model, &settings);
        let bytes = std::fs::read(&elf).expect("the ELF");
        (flash_bytes(&bytes), static_ram_bytes(&bytes), run_in_qemu(&elf))
    };
    assert!(run.status.success(), "firmware failed ({}):\n{}{}", run.status, run.stdout, run.stderr);
    let stack = trailer_value(&run.stdout, "# stack_bytes=");
    let device_csv: String =
        run.stdout.lines().filter(|l| !l.starts_with('#')).map(|l| format!("{l}\n")).collect();
    StreamFit { host_csv, device_csv, flash, ram, stack }
}

/// Bytes of an ELF32 (little-endian) file's allocated sections in RAM (address ≥ 0x2000_0000 on
/// the Cortex-M memory maps here: .data, .bss, .uninit).
fn static_ram_bytes(elf: &[u8]) -> u64 {
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes([elf[o], elf[o + 1], elf[o + 2], elf[o + 3]]);
    assert_eq!(&elf[..5], b"\x7fELF\x01", "not an ELF32 file");
    let (shoff, shentsize, shnum) = (u32_at(0x20) as usize, u16_at(0x2E), u16_at(0x30));
    const SHF_ALLOC: u32 = 2;
    (0..shnum)
        .map(|i| shoff + i * shentsize)
        .filter(|&h| u32_at(h + 8) & SHF_ALLOC != 0 && u32_at(h + 0x0C) >= 0x2000_0000)
        .map(|h| u32_at(h + 0x14) as u64)
        .sum()
}

/// A board build: mode, model, extra settings.
type BoardRun = (&'static str, &'static str, &'static [(&'static str, &'static str)]);

/// The nRF52840-DK profile (`--no-default-features --features board,conv`: defmt over RTT,
/// panic-probe, `boards/nrf52840-dk/memory.x`) builds in every mode: sample (one at a time and in
/// lockstep), denoise, stream and impute. There is no board here to run them on; what a user sees
/// over RTT is in firmware-example/README.md ("nRF52840-DK").
#[test]
fn the_nrf52840_dk_profile_builds_every_mode() {
    let root = repo_root();
    let firmware_dir = root.join("firmware-example");
    if let Some(why) = missing_tools(&firmware_dir) {
        println!("skipped: {why}");
        return;
    }
    let runs: [BoardRun; 6] = [
        ("sample", MODEL, &[]),
        ("sample", MODEL_W8A8, &[("TINYSCORE_BATCH", "8")]),
        ("denoise", ECG_W8A8, &[]),
        ("stream", ECG_CONV_F32, &[]),
        ("stream", ECG_W8A8, &[]),
        ("impute", ECG_F32, &[]),
    ];
    // Its own target directory: the QEMU builds' features differ, and sharing would rebuild both.
    let target_dir = firmware_dir.join("target").join("nrf52840-dk");
    for (mode, model_rel, extra) in runs {
        let model = root.join(model_rel);
        let _turn = FIRMWARE.lock().unwrap_or_else(|e| e.into_inner());
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--release",
            "--target",
            TARGET,
            "--no-default-features",
            "--features",
            "board,conv",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(&firmware_dir)
        .env("TINYSCORE_MODE", mode)
        .env("TINYSCORE_MODEL", &model)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("cannot run cargo");
        assert!(
            out.status.success(),
            "the nRF52840-DK build of {mode} mode ({model_rel}) failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let elf = std::fs::read(target_dir.join(TARGET).join("release").join("tinyscore-firmware-example"))
            .expect("the ELF");
        let (flash, ram) = (flash_bytes(&elf), static_ram_bytes(&elf));
        println!("nRF52840-DK {mode} {model_rel} {extra:?}: flash {flash} B, static RAM {ram} B");
        assert!(flash <= 1024 * 1024 && ram <= 256 * 1024, "does not fit the nRF52840's 1 MiB / 256 KiB");
    }
}

/// Bytes of an ELF32 (little-endian) file's allocated sections that are not NOBITS (.bss).
fn flash_bytes(elf: &[u8]) -> u64 {
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes([elf[o], elf[o + 1], elf[o + 2], elf[o + 3]]);
    assert_eq!(&elf[..5], b"\x7fELF\x01", "not an ELF32 file");
    let (shoff, shentsize, shnum) = (u32_at(0x20) as usize, u16_at(0x2E), u16_at(0x30));
    const SHT_NOBITS: u32 = 8;
    const SHF_ALLOC: u32 = 2;
    (0..shnum)
        .map(|i| shoff + i * shentsize)
        .filter(|&h| u32_at(h + 8) & SHF_ALLOC != 0 && u32_at(h + 4) != SHT_NOBITS)
        .map(|h| u32_at(h + 0x14) as u64)
        .sum()
}

/// The Cortex-M4 DSP kernel equals the portable one, on the M4: `firmware-example/examples/
/// kernels.rs` (built with the w8a8 moons model, run with `-icount shift=0`) puts random and
/// extreme int8 vectors of every length 0..=512, aligned and unaligned, through the `SMLAD`
/// kernel, its instruction model and the portable kernel, and must report no mismatch; the same
/// for the multi-vector kernel (tiles of 1–4 vectors), for the M4 epilogue of the int8 layers
/// against `quant::epilogue`, for the DSP int8 convolution against the portable one, for
/// `eps_batch` against `eps`, and for
/// the FPU kernel of the f32-activation dot product (`VMLA.F32`) against `linalg::dot`; then it
/// times whole network evaluations (the instruction count printed here is the figure in
/// docs/BENCHMARKS.md, "Engine speed").
#[test]
fn dsp_kernel_equals_portable_kernel_on_the_m4() {
    let firmware_dir = repo_root().join("firmware-example");
    if let Some(why) = missing_tools(&firmware_dir) {
        println!("skipped: {why}");
        return;
    }
    let run = {
        let _turn = FIRMWARE.lock().unwrap_or_else(|e| e.into_inner());
        let elf = build(&firmware_dir, &repo_root().join(MODEL_W8A8), &[], Some("kernels"));
        run_in_qemu_with(&elf, &["-icount", "shift=0"])
    };
    println!("{}", run.stdout);
    assert!(run.status.success(), "the kernel check failed ({}):\n{}{}", run.status, run.stdout, run.stderr);
    let field = |name: &str| -> u64 {
        let key = format!("{name}=");
        let at = run.stdout.find(&key).unwrap_or_else(|| panic!("no {name} in {:?}", run.stdout));
        run.stdout[at + key.len()..].split_whitespace().next().unwrap().parse().unwrap()
    };
    assert_eq!(field("kernel_mismatches"), 0);
    assert_eq!(field("kernel_cases"), 4 * 513);
    // The multi-vector kernel (tiles of 2 and 4 vectors; through the network's entry point for
    // 1 to 4 vectors): 4 rounds of every length 0..=512.
    assert_eq!(field("tile_mismatches"), 0);
    assert_eq!(field("tile_cases"), 4 * 513);
    // The M4 epilogue (requantization, SSAT/QADD/SMMLA assembly) against quant::epilogue:
    // 600 random layers, three kinds each.
    assert_eq!(field("epilogue_mismatches"), 0);
    assert_eq!(field("epilogue_cases"), 3 * 600);
    // The DSP int8 convolution (packed form, SMLAD rows kernel) against the portable one and
    // the kernel's model: 417 shapes × 2 sources, every one run by the DSP form.
    assert_eq!(field("conv_mismatches"), 0);
    assert_eq!(field("conv_cases"), 834);
    assert_eq!(field("conv_direct"), 834);
    // eps_batch of 4, 8, 16, 32 and 64 vectors gives eps's bits on the M4.
    let batches: Vec<&str> = run.stdout.lines().filter(|l| l.starts_with("# eps_batch ")).collect();
    assert_eq!(batches.len(), 5, "{}", run.stdout);
    assert!(batches.iter().all(|l| l.ends_with(" batch_mismatches=0")), "{batches:?}");
    // The FPU kernel (f32 activations): 5 rounds of every length 0..=512, all with the portable
    // bits. It computes every int8 row (2 rounds) and the aligned f32 rows (1 round all, 2
    // rounds at byte offset cols mod 4), so a dispatch that always fell back would show here.
    assert_eq!(field("vfp_mismatches"), 0);
    assert_eq!(field("vfp_cases"), 5 * 513);
    assert_eq!(field("vfp_direct"), 513 + 2 * 129 + 2 * 513);
    assert!(field("vfp_nan_cases") > 0, "no NaN/inf case was exercised");
    // Flush-to-zero and default-NaN off, as on x86-64 (subnormals kept).
    assert_eq!(field("fz"), 0);
    assert_eq!(field("dn"), 0);
    assert!(field("instructions_per_eval") > 0, "no evaluation was timed");
}

/// The ECG conv model of c_0 = 20 (the U-Net `tinyscore train --arch conv --width 20` makes at
/// W = 256: 3 levels × 1 block of width 20, K = 5; the default until session 11, four times the
/// MACs and three times the file of today's c_0 = 10, so it bounds the default's flash, RAM and
/// stack from above) in w8a8 with the streaming denoiser fits a 256 KiB-flash
/// / 64 KiB-RAM part, built in the 256 KiB profile ([`PROFILE_256K`]: the part's memory map, for
/// size, `terse-panic`): flash (text + rodata with the 184 272 B file and the signal + data)
/// ≤ 256 KiB, static RAM + the stack the firmware measured ≤ 64 KiB, the stack within inspect's
/// `ram` + `stream` figures + the allowance, and the stream the host's bits
/// (firmware-example/README.md, "The 256 KiB / 64 KiB profile"). The file is made here with
/// the converter's own writer and calibration, weights `sin(0.71·i)·0.3` (flash and RAM depend on
/// the network's shapes alone; the trained checkpoint is not in the repository);
/// `TINYSCORE_FIT_SAVE=path` writes a copy of it there.
#[test]
fn the_c0_20_ecg_conv_w8a8_stream_fits_256k_of_flash_and_64k_of_ram() {
    use tinyscore_engine::format::{DataKind, DataShape, Model, Process};
    use tinyscore_engine::graph::unet::UNet;
    use tinyscore_engine::schedule::BetaSchedule;
    use tinyscore_tools::{calib, tsm};
    let root = repo_root();
    let firmware_dir = root.join("firmware-example");
    if let Some(why) = missing_tools(&firmware_dir) {
        println!("skipped: {why}");
        return;
    }
    let u =
        UNet { channels: 1, length: 256, width: 20, levels: 3, blocks: 1, kernel: 5, freqs: 32, temb: 80 };
    let plan = u.build().unwrap();
    let params: Vec<f32> = (0..plan.param_count()).map(|i| (i as f32 * 0.71).sin() * 0.3).collect();
    let (mean, std) = (vec![0.0; 256], vec![0.5; 256]);
    let data = DataShape { kind: DataKind::Signal, channels: 1, length: 256 };
    let process = Process::VpDiscrete { steps: 1000, schedule: BetaSchedule::DDPM_LINEAR };
    let spec =
        tsm::GraphSpec { plan: &plan, data, process, norm_mean: &mean, norm_std: &std, params: &params };
    let f32_bytes = tsm::write_graph(&spec, tsm::Quant::F32).unwrap();
    let float = Model::parse(&f32_bytes).unwrap();
    let xs: Vec<f32> =
        (0..4 * 256).map(|i| (i as f32 * 0.05).sin() * 0.8 + (i as f32 * 0.37).cos() * 0.1).collect();
    let points = calib::calibration_points(&xs, 256, &process, 4, 1);
    let scales = calib::activation_scales_of(&float, &points, 1);
    let (rq, luts) = calib::integer_params_of(&float, &scales, 1);
    let w8a8 = tsm::write_graph_w8a8(&spec, 1, &scales, &rq, &luts).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("ecg256-conv-w8a8.tsm");
    std::fs::write(&model, &w8a8).unwrap();
    // A copy for `mode-sizes.sh` and the figures of docs/BENCHMARKS.md, where asked for.
    if let Some(path) = std::env::var_os("TINYSCORE_FIT_SAVE") {
        std::fs::write(&path, &w8a8).expect("writing TINYSCORE_FIT_SAVE");
    }
    let input = root.join(ECG_STREAM_INPUT);
    let profile = PROFILE_256K.iter().map(|&(k, v)| (k, v.to_string())).collect();
    let StreamFit { host_csv, device_csv, flash, ram, stack } =
        stream_fit(&firmware_dir, &model, &input, profile);
    println!(
        "W = 256 ECG conv w8a8 ({} B): flash {flash} B of 262144, RAM {} B (static {ram} + stack {stack}) of 65536",
        w8a8.len(),
        ram + stack
    );
    assert_eq!(device_csv, host_csv, "firmware and host streams differ");
    stack_within(&model, stack, inspect_figure(&model, 1, "stream "), "stream");
    assert!(flash <= 256 * 1024, "{flash} bytes of flash: more than 256 KiB");
    assert!(ram + stack <= 64 * 1024, "{ram} B static RAM + {stack} B stack: more than 64 KiB");
}

/// The 256 KiB-flash build settings (firmware-example/README.md, "The 256 KiB / 64 KiB
/// profile"): the part's memory map (the linker refuses more than 256 KiB of flash or 64 KiB of
/// static RAM), built for size, panics without their messages.
const PROFILE_256K: [(&str, &str); 3] = [
    ("TINYSCORE_MACHINE", "m4f-256k-64k"),
    ("CARGO_PROFILE_RELEASE_OPT_LEVEL", "z"),
    (FEATURES, "terse-panic"),
];
