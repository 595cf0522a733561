//! Why this build script exists:
//!
//! 1. **Linker setup.** cortex-m-rt's `link.x` includes a `memory.x`; the file depends on the
//!    target and the profile (`boards/mps2-an386/memory.x` for QEMU on the Cortex-M4F,
//!    `boards/nrf52840-dk/memory.x` for the board, `boards/mps2-an385/memory.x` for the
//!    Cortex-M0, `boards/mps2-an505/memory.x` for the Cortex-M33), so the chosen one is copied to
//!    `OUT_DIR/memory.x` and `OUT_DIR` put on the linker's search path. RISC-V has no
//!    cortex-m-rt: its whole script, `boards/qemu-virt-rv32/link.x`, becomes `OUT_DIR/riscv.x`. (Neither may sit at the crate root as `memory.x`: the linker looks in its
//!    working directory, the crate root, before the search path, so that file would win for
//!    both profiles.) The linker scripts (`link.x`, and `defmt.x` for the board) are passed here as
//!    link arguments rather than in `.cargo/config.toml`, so a `RUSTFLAGS` set in the environment
//!    (which replaces the config's rustflags) cannot silently drop them.
//! 2. **The embedded model.** `TINYSCORE_MODEL` names any `.tsm` file (relative paths are taken
//!    from this crate's directory); it is copied to `OUT_DIR/model.tsm`, the fixed path that
//!    `include_bytes!` in `src/main.rs` embeds. The file is parsed here with the engine's own
//!    parser, so a broken model fails the build, not the board, and its sizes D, H, F become the
//!    network's const-generic capacities: exactly what the model needs, no more RAM.
//! 3. **Settings.** `TINYSCORE_MODE` (`sample`, `denoise`, `stream` or `impute`), then for
//!    sampling `TINYSCORE_SAMPLER`, `TINYSCORE_STEPS`, `TINYSCORE_SEED`, `TINYSCORE_N` and
//!    `TINYSCORE_BATCH` (samples in lockstep; 8 for a w8a8 file, else 1), for imputation
//!    `TINYSCORE_INPUT`, `TINYSCORE_MASK`, `TINYSCORE_STEPS`, `TINYSCORE_DRAWS`,
//!    `TINYSCORE_RESAMPLE` and `TINYSCORE_SEED`, for denoising
//!    `TINYSCORE_INPUT`, `TINYSCORE_METHOD`, `TINYSCORE_SIGMA`, `TINYSCORE_STEPS`,
//!    `TINYSCORE_DRAWS` and `TINYSCORE_SEED` (the defaults of `tinyscore denoise`), are parsed and
//!    written as constants to `OUT_DIR/config.rs`. Cargo re-runs this script when any of them, the
//!    model file or the input file changes.
//! 4. **The denoise input.** The noisy windows (a CSV file, read by the same rules as the host's
//!    `tinyscore denoise --input`: one window per line, `#` lines skipped, values parsed as f32)
//!    become a `static` array in flash, each value written by its bits so nothing is re-rounded;
//!    in `impute` mode the mask (`TINYSCORE_MASK`, 0/1 of the input's shape) a `static [bool]`.
//! 5. **The stream input.** In `stream` mode, a one-column signal (`TINYSCORE_INPUT`, default
//!    `inputs/ecg-stream-noisy.csv`; read as `tinyscore denoise --stream --input` reads it, NaN
//!    and infinities kept) becomes the `static SIGNAL`, with `TINYSCORE_HOP` (default W/2),
//!    `TINYSCORE_TAPER` (`hann` or `flat`), `TINYSCORE_RATE` (samples per second, default 360,
//!    0 = unpaced) and the denoise settings above; `TICK_HZ` is the cycle counter's rate on the
//!    chosen machine, for the pacing.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use tinyscore_engine::format::Model;

/// The model embedded when `TINYSCORE_MODEL` is not set (relative to this crate), per mode.
const DEFAULT_MODEL: &str = "models/moons-f32.tsm";
const DEFAULT_DENOISE_MODEL: &str = "models/ecg-f32.tsm";
/// `stream` mode's default: the conv ECG model of 64-sample windows (ScoreNet-conv, 72 KB).
const DEFAULT_STREAM_MODEL: &str = "models/ecg-conv-f32.tsm";
/// The noisy signal embedded in `stream` mode when `TINYSCORE_INPUT` is not set.
const DEFAULT_STREAM_INPUT: &str = "inputs/ecg-stream-noisy.csv";
/// The noisy windows embedded in `denoise` mode when `TINYSCORE_INPUT` is not set.
const DEFAULT_INPUT: &str = "inputs/ecg-noisy.csv";
/// The windows embedded in `impute` mode when `TINYSCORE_INPUT` is not set: the clean held-out
/// windows (their values in the gap are not used).
const DEFAULT_IMPUTE_INPUT: &str = "inputs/ecg-clean.csv";
/// The mask embedded in `impute` mode when `TINYSCORE_MASK` is not set: a gap in each window.
const DEFAULT_MASK: &str = "inputs/ecg-gap-mask.csv";
/// Samples drawn in lockstep when `TINYSCORE_BATCH` is not set, for a `w8a8` file (the
/// Cortex-M4's integer tile; other files: 1).
const DEFAULT_BATCH: usize = 8;
/// Samplers this firmware knows, by their `tinyscore sample --sampler` names.
const SAMPLERS: &[&str] = &[
    "ddpm",
    "ddim",
    "em",
    "ode-euler",
    "ode-heun",
    "langevin",
    "pc",
    "dpmpp-2m",
    "dpmpp-3m",
    "dpmpp-sde",
    "unipc",
];

fn main() {
    if let Err(msg) = run() {
        // One clear line instead of a backtrace: cargo shows it under "error: failed to run
        // custom build command".
        eprintln!("error: {msg}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let out_dir = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);

    // --- 1. profile, machine and linker ------------------------------------------------------
    let qemu = env::var_os("CARGO_FEATURE_QEMU").is_some();
    let board = env::var_os("CARGO_FEATURE_BOARD").is_some();
    let target = env::var("TARGET").map_err(|e| e.to_string())?;
    match (qemu, board) {
        (true, true) => {
            return Err("features `qemu` and `board` exclude each other: build the board with \
                        `--no-default-features --features board`"
                .into())
        }
        (false, false) => return Err("enable one profile: feature `qemu` (default) or `board`".into()),
        _ => {}
    }
    // One memory map per (target, profile); the QEMU machine of each target is named in
    // src/platform/mod.rs and in run-qemu.sh.
    // TINYSCORE_MACHINE=microbit: the M0 build on QEMU's real Cortex-M0 board (16 KiB of RAM,
    // the smallest models only; boards/microbit/memory.x). Re-run when it changes.
    let machine = setting("TINYSCORE_MACHINE");
    // TINYSCORE_MACHINE=m4f-256k-64k: the Cortex-M4F build in the memory of a 256 KiB-flash /
    // 64 KiB-RAM part (nRF52832, STM32L4 class), run on mps2-an386 (boards/m4f-256k-64k/memory.x).
    let (map, script) = match (target.as_str(), board, machine.as_deref()) {
        ("thumbv6m-none-eabi", false, Some("microbit")) => ("boards/microbit/memory.x", "memory.x"),
        ("thumbv7em-none-eabihf", false, Some("m4f-256k-64k")) => {
            ("boards/m4f-256k-64k/memory.x", "memory.x")
        }
        (_, _, Some(m)) => {
            return Err(format!(
                "TINYSCORE_MACHINE={m}: only `microbit` (thumbv6m-none-eabi) and `m4f-256k-64k` \
                 (thumbv7em-none-eabihf, QEMU profile) are known"
            ))
        }
        ("thumbv7em-none-eabihf", false, _) => ("boards/mps2-an386/memory.x", "memory.x"),
        ("thumbv7em-none-eabihf", true, _) => ("boards/nrf52840-dk/memory.x", "memory.x"),
        ("thumbv6m-none-eabi", false, _) => ("boards/mps2-an385/memory.x", "memory.x"),
        ("thumbv8m.main-none-eabihf", false, _) => ("boards/mps2-an505/memory.x", "memory.x"),
        // No cortex-m-rt here: the whole linker script is ours (start-up code in
        // src/platform/riscv.rs), under a name of its own.
        ("riscv32imac-unknown-none-elf", false, _) => ("boards/qemu-virt-rv32/link.x", "riscv.x"),
        (t, true, _) => {
            return Err(format!("the `board` profile is the nRF52840-DK (thumbv7em-none-eabihf), not {t}"))
        }
        (t, false, _) => {
            return Err(format!(
                "no QEMU machine for target {t}: use thumbv7em-none-eabihf, thumbv6m-none-eabi, \
                 thumbv8m.main-none-eabihf or riscv32imac-unknown-none-elf"
            ))
        }
    };
    let memory = manifest_dir.join(map);
    copy(&memory, &out_dir.join(script))?;
    println!("cargo:rustc-link-search={}", out_dir.display());
    println!("cargo:rerun-if-changed={}", memory.display());
    println!("cargo:rerun-if-changed=build.rs");
    // Keep sections page-aligned in the file only where the ELF needs it (smaller images).
    println!("cargo:rustc-link-arg=--nmagic");
    if script == "memory.x" {
        println!("cargo:rustc-link-arg=-Tlink.x");
    } else {
        println!("cargo:rustc-link-arg=-T{script}");
    }
    if board {
        println!("cargo:rustc-link-arg=-Tdefmt.x");
    }

    // --- 2. the model ------------------------------------------------------------------------
    let mode = setting("TINYSCORE_MODE").unwrap_or_else(|| "sample".into());
    let (denoise, stream, impute) = match mode.as_str() {
        "sample" => (false, false, false),
        "denoise" => (true, false, false),
        "stream" => (false, true, false),
        "impute" => (false, false, true),
        _ => return Err(format!("TINYSCORE_MODE={mode}: use `sample`, `denoise`, `stream` or `impute`")),
    };
    let model_path = match setting("TINYSCORE_MODEL") {
        Some(p) => manifest_dir.join(p), // an absolute `p` replaces the base
        None if denoise || impute => manifest_dir.join(DEFAULT_DENOISE_MODEL),
        None if stream => manifest_dir.join(DEFAULT_STREAM_MODEL),
        None => manifest_dir.join(DEFAULT_MODEL),
    };
    println!("cargo:rerun-if-changed={}", model_path.display());
    let bytes = fs::read(&model_path).map_err(|e| {
        format!(
            "cannot read the model {}: {e} (set TINYSCORE_MODEL to a .tsm file; \
             `tinyscore convert` writes one)",
            model_path.display()
        )
    })?;
    let model = Model::parse(&bytes).map_err(|e| format!("{}: {e}", model_path.display()))?;
    let dims = model.dims();
    let n_max = model.process().steps();
    fs::write(out_dir.join("model.tsm"), &bytes).map_err(|e| format!("writing OUT_DIR/model.tsm: {e}"))?;
    let file_name = model_path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{}: the model's file name is not UTF-8", model_path.display()))?;

    // --- 3. settings ------------------------------------------------------------------------
    let sampler = setting("TINYSCORE_SAMPLER").unwrap_or_else(|| "ddpm".into());
    if !SAMPLERS.contains(&sampler.as_str()) {
        return Err(format!("TINYSCORE_SAMPLER={sampler}: this firmware knows {SAMPLERS:?}"));
    }
    // The step count is only parsed here, not checked against the model's N: the engine refuses
    // a bad count at run time, and that path (panic → semihosting exit 1) is what the host test
    // drives to prove a failing firmware cannot hang CI. Defaults: the firmware's own for
    // sampling, `tinyscore denoise`'s for denoising.
    let windowed = denoise || stream || impute;
    let steps: u32 = number("TINYSCORE_STEPS", if windowed { 50 } else { 100 })?;
    let seed: u64 = number("TINYSCORE_SEED", if windowed { 0 } else { 42 })?;
    let n: u32 = number("TINYSCORE_N", 8)?;
    // Samples drawn in lockstep (`sampler::draw_batch`), at most N; 1: one at a time (`draw`).
    // The default: 8 for a w8a8 file, whose integer tiles make a lockstep step ~3x cheaper per
    // sample on the M4; 1 otherwise (the f32 batch path skips the M4's FPU kernel: slower there).
    let batch: usize = number("TINYSCORE_BATCH", if model.is_int8() { DEFAULT_BATCH } else { 1 })?;
    if batch == 0 || batch > 64 {
        return Err(format!("TINYSCORE_BATCH={batch}: must be in 1..=64"));
    }
    let batch = if windowed { 1 } else { batch.min(n.max(1) as usize) };
    // Imputation: RePaint resamplings per step (`tinyscore denoise --resample`).
    let resample: u32 = number("TINYSCORE_RESAMPLE", 1)?;
    if impute && !(1..=tinyscore_engine::denoise::MAX_RESAMPLE).contains(&resample) {
        return Err(format!(
            "TINYSCORE_RESAMPLE={resample}: must be in 1..={}",
            tinyscore_engine::denoise::MAX_RESAMPLE
        ));
    }
    let method = setting("TINYSCORE_METHOD").unwrap_or_else(|| "tweedie".into());
    if !["tweedie", "sdedit"].contains(&method.as_str()) {
        return Err(format!("TINYSCORE_METHOD={method}: use `tweedie` or `sdedit`"));
    }
    let draws: u32 = number("TINYSCORE_DRAWS", 4)?;
    if impute && !(1..=tinyscore_engine::denoise::MAX_DRAWS).contains(&draws) {
        return Err(format!(
            "TINYSCORE_DRAWS={draws}: must be in 1..={}",
            tinyscore_engine::denoise::MAX_DRAWS
        ));
    }
    // `auto` (the default): estimated on the device from the windows, as the host does.
    let sigma = match setting("TINYSCORE_SIGMA").as_deref() {
        None | Some("auto") => None,
        Some(v) => match v.parse::<f32>() {
            Ok(x) if x.is_finite() && x >= 0.0 => Some(x),
            _ => return Err(format!("TINYSCORE_SIGMA={v}: a finite number >= 0, or `auto`")),
        },
    };

    // --- 4. the denoise and impute input -----------------------------------------------------
    let (input_name, windows) = if denoise || impute {
        let path = match setting("TINYSCORE_INPUT") {
            Some(p) => manifest_dir.join(p),
            None if impute => manifest_dir.join(DEFAULT_IMPUTE_INPUT),
            None => manifest_dir.join(DEFAULT_INPUT),
        };
        println!("cargo:rerun-if-changed={}", path.display());
        if denoise && sigma.is_none() && dims.dim < 2 {
            return Err("TINYSCORE_SIGMA=auto needs windows of at least 2 values; give a number".into());
        }
        let values = read_windows(&path, dims.dim)?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("input").to_owned();
        (name, values)
    } else {
        (String::new(), Vec::new())
    };

    // --- 4b. the impute mask: 1 where a value is known, 0 where it is missing -------------------
    let (mask_name, mask) = if impute {
        let path = match setting("TINYSCORE_MASK") {
            Some(p) => manifest_dir.join(p),
            None => manifest_dir.join(DEFAULT_MASK),
        };
        println!("cargo:rerun-if-changed={}", path.display());
        let values = read_windows(&path, dims.dim)?;
        if values.len() != windows.len() {
            return Err(format!(
                "{}: {} rows, the input has {}",
                path.display(),
                values.len() / dims.dim,
                windows.len() / dims.dim
            ));
        }
        if let Some(v) = values.iter().find(|v| **v != 0.0 && **v != 1.0) {
            return Err(format!("{}: mask values must be 0 or 1, found {v}", path.display()));
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("mask").to_owned();
        (name, values.iter().map(|v| *v == 1.0).collect::<Vec<bool>>())
    } else {
        (String::new(), Vec::new())
    };

    // --- 5. the stream input and its settings ------------------------------------------------
    let (signal_name, signal) = if stream {
        if dims.dim < 2 {
            return Err(format!(
                "{}: stream mode needs a model of windows of 2 values or more, this one has {}",
                model_path.display(),
                dims.dim
            ));
        }
        let path = match setting("TINYSCORE_INPUT") {
            Some(p) => manifest_dir.join(p),
            None => manifest_dir.join(DEFAULT_STREAM_INPUT),
        };
        println!("cargo:rerun-if-changed={}", path.display());
        let values = read_signal(&path)?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("input").to_owned();
        (name, values)
    } else {
        (String::new(), Vec::new())
    };
    // `tinyscore denoise --stream`'s defaults: hop W/2, Hann taper.
    let hop: usize = number("TINYSCORE_HOP", dims.dim / 2)?;
    if stream && (hop == 0 || hop > dims.dim) {
        return Err(format!("TINYSCORE_HOP={hop}: must be in 1..={} (the model's window)", dims.dim));
    }
    let taper = setting("TINYSCORE_TAPER").unwrap_or_else(|| "hann".into());
    if !["hann", "flat"].contains(&taper.as_str()) {
        return Err(format!("TINYSCORE_TAPER={taper}: use `hann` or `flat`"));
    }
    // Samples per second at which the stream's samples arrive (0: as fast as the device goes).
    let rate: u32 = number("TINYSCORE_RATE", 360)?;
    // Ticks per second of the cycle counter (src/cycles.rs) on this machine, for the pacing.
    let tick_hz: u64 = match (target.as_str(), board, machine.as_deref()) {
        (_, true, _) => 64_000_000,
        ("thumbv6m-none-eabi", false, Some("microbit")) => 16_000_000,
        ("thumbv8m.main-none-eabihf", false, _) => 20_000_000,
        ("riscv32imac-unknown-none-elf", false, _) => 1_000_000_000,
        _ => 25_000_000,
    };

    let mut config = String::new();
    let _ = writeln!(config, "// Generated by build.rs from the model file and TINYSCORE_* settings.");
    let _ = writeln!(config, "/// File name of the embedded model.");
    let _ = writeln!(config, "pub const MODEL_FILE: &str = {file_name:?};");
    let _ = writeln!(config, "/// `denoise` mode (else `sample`).");
    let _ = writeln!(config, "pub const DENOISE: bool = {denoise};");
    let _ = writeln!(config, "/// `impute` mode.");
    let _ = writeln!(config, "pub const IMPUTE: bool = {impute};");
    let _ = writeln!(config, "/// Impute: RePaint resamplings per step.");
    let _ = writeln!(config, "pub const RESAMPLE: u32 = {resample};");
    let _ = writeln!(config, "/// Impute: file name of the embedded mask.");
    let _ = writeln!(config, "pub const MASK_FILE: &str = {mask_name:?};");
    let _ = writeln!(config, "/// Impute: the mask, row-major (WINDOWS, DIM), true where a value is known.");
    let _ = write!(config, "pub static MASK: [bool; {}] = [", mask.len());
    for k in &mask {
        let _ = write!(config, "{k},");
    }
    let _ = writeln!(config, "];");
    let _ = writeln!(config, "/// Sample: samples drawn in lockstep (1: one at a time).");
    let _ = writeln!(config, "pub const BATCH: usize = {batch};");
    let lockstep_arena = if batch > 1 { tinyscore_engine::walk::arena_len(model.graph(), batch) } else { 0 };
    let _ =
        writeln!(config, "/// Sample: words of the lockstep batch's f32 arena (`batch_scratch_len(BATCH)`).");
    let _ = writeln!(config, "pub const LOCKSTEP_ARENA: usize = {lockstep_arena};");
    let _ = writeln!(config, "/// `stream` mode.");
    let _ = writeln!(config, "pub const STREAM: bool = {stream};");
    let _ = writeln!(config, "/// Stream: a window starts every HOP samples.");
    let _ = writeln!(config, "pub const HOP: usize = {hop};");
    let _ = writeln!(config, "/// Stream: the overlap-add taper, as `--taper` spells it.");
    let _ = writeln!(config, "pub const TAPER: &str = {taper:?};");
    let _ = writeln!(config, "/// Stream: samples per second (0: unpaced).");
    let _ = writeln!(config, "pub const RATE_HZ: u64 = {rate};");
    let _ = writeln!(config, "/// Ticks per second of `cycles::Counter` on this machine.");
    let _ = writeln!(config, "pub const TICK_HZ: u64 = {tick_hz};");
    let _ = writeln!(config, "/// Stream: file name of the embedded signal.");
    let _ = writeln!(config, "pub const SIGNAL_FILE: &str = {signal_name:?};");
    let _ = writeln!(config, "/// Stream: the embedded signal as f32 bit patterns, NaN and infinities kept.");
    // Bits, not `f32::from_bits` calls: those are const only since Rust 1.83 (MSRV 1.80).
    let _ = write!(config, "pub static SIGNAL: [u32; {}] = [", signal.len());
    for v in &signal {
        let _ = write!(config, "{:#010x},", v.to_bits());
    }
    let _ = writeln!(config, "];");
    let _ = writeln!(config, "/// Sampler name, as `tinyscore sample --sampler` spells it.");
    let _ = writeln!(config, "pub const SAMPLER: &str = {sampler:?};");
    let _ = writeln!(config, "/// Reverse steps S (the model's N is {n_max}).");
    let _ = writeln!(config, "pub const STEPS: u32 = {steps};");
    let _ = writeln!(config, "/// Seed of the Philox noise stream.");
    let _ = writeln!(config, "pub const SEED: u64 = {seed};");
    let _ = writeln!(config, "/// Number of samples drawn (indices 0..N).");
    let _ = writeln!(config, "pub const N: u32 = {n};");
    let _ = writeln!(config, "/// Denoising method, as `tinyscore denoise --method` spells it.");
    let _ = writeln!(config, "pub const METHOD: &str = {method:?};");
    let _ = writeln!(config, "/// SDEdit's independent draws averaged.");
    let _ = writeln!(config, "pub const DRAWS: u32 = {draws};");
    let _ = writeln!(
        config,
        "/// The bits of the noise level σ in data units; `None`: estimated from the input (`auto`)."
    );
    match sigma {
        Some(v) => {
            let _ = writeln!(config, "pub const SIGMA_BITS: Option<u32> = Some({:#010x});", v.to_bits());
        }
        None => {
            let _ = writeln!(config, "pub const SIGMA_BITS: Option<u32> = None;");
        }
    }
    let _ = writeln!(config, "/// File name of the embedded noisy windows.");
    let _ = writeln!(config, "pub const INPUT_FILE: &str = {input_name:?};");
    let _ = writeln!(config, "/// Number of embedded windows (0 in `sample` mode).");
    let _ = writeln!(config, "pub const WINDOWS: usize = {};", windows.len() / dims.dim.max(1));
    let _ = writeln!(config, "/// Capacity D = the model's data dimension.");
    let _ = writeln!(config, "pub const DIM: usize = {};", dims.dim);
    let _ = writeln!(config, "/// Capacity H = the model's hidden width.");
    // (A convolutional w8a8 file: its integer plan's widest output, C_out.)
    let plan = tinyscore_engine::quant::Int8Plan::new(model.graph()).unwrap_or_default();
    let hidden = if model.is_int8() && plan.is_conv() { plan.width() } else { dims.hidden };
    let _ = writeln!(config, "pub const HIDDEN: usize = {hidden};");
    let _ = writeln!(config, "/// Capacity F = the model's number of time features.");
    let _ = writeln!(config, "pub const FREQS: usize = {};", dims.freqs);
    let arena = tinyscore_engine::net::ScoreNet::<0, 0, 0>::arena_len(&model);
    let _ = writeln!(
        config,
        "/// Words of the network's arena (`ScoreNet::arena_len`: the layer graph's planned time, data and \
         scratch, or a conv w8a8 file's integer arena)."
    );
    let _ = writeln!(config, "pub const ARENA: usize = {arena};");
    let batch = tinyscore_engine::walk::arena_len(model.graph(), 64);
    let _ = writeln!(
        config,
        "/// Words of the f32 arena of a 64-vector batch (the kernels example's largest call)."
    );
    let _ = writeln!(config, "#[allow(dead_code)] // used by examples/kernels.rs only");
    let _ = writeln!(config, "pub const ARENA_BATCH: usize = {batch};");
    let _ = writeln!(config, "/// Length of the model file in bytes.");
    let _ = writeln!(config, "pub const MODEL_LEN: usize = {};", bytes.len());
    // Bits, not `f32::from_bits` calls: those are const only since Rust 1.83 (MSRV 1.80).
    let _ = writeln!(config, "/// The bits of the noisy windows, row-major (WINDOWS, DIM), as parsed.");
    let _ = write!(config, "pub static INPUT_BITS: [u32; WINDOWS * DIM] = [");
    for v in &windows {
        let _ = write!(config, "{:#010x},", v.to_bits());
    }
    let _ = writeln!(config, "];");
    fs::write(out_dir.join("config.rs"), config).map_err(|e| format!("writing OUT_DIR/config.rs: {e}"))?;
    Ok(())
}

/// A build setting from the environment (unset or empty = default), re-run on change.
fn setting(name: &str) -> Option<String> {
    println!("cargo:rerun-if-env-changed={name}");
    env::var(name).ok().filter(|v| !v.trim().is_empty()).map(|v| v.trim().to_owned())
}

fn number<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match setting(name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| format!("{name}={v} is not a valid number")),
    }
}

/// The windows of a CSV file as `tinyscore denoise --input` reads them: one per line, values
/// separated by commas, blank lines and lines starting with `#` skipped, each value parsed as an
/// f32 and finite, every line `dim` values long.
fn read_windows(path: &Path, dim: usize) -> Result<Vec<f32>, String> {
    let text = fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the input {}: {e} (set TINYSCORE_INPUT to a CSV of noisy windows)",
            path.display()
        )
    })?;
    let mut values = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let start = values.len();
        for field in line.split(',') {
            match field.trim().parse::<f32>() {
                Ok(v) if v.is_finite() => values.push(v),
                _ => {
                    return Err(format!(
                        "{}: line {}: `{}` is not a finite number",
                        path.display(),
                        i + 1,
                        field.trim()
                    ))
                }
            }
        }
        if values.len() - start != dim {
            return Err(format!(
                "{}: line {}: {} values, the model's windows have {dim}",
                path.display(),
                i + 1,
                values.len() - start
            ));
        }
    }
    if values.is_empty() {
        return Err(format!("{}: no windows", path.display()));
    }
    Ok(values)
}

/// A one-column signal as `tinyscore denoise --stream --input` reads a CSV: one value per line,
/// blank lines and lines starting with `#` skipped, each parsed as an f32 (`nan`, `inf`, `-inf`
/// accepted: the stream's input check handles them on the device).
fn read_signal(path: &Path) -> Result<Vec<f32>, String> {
    let text = fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the input {}: {e} (set TINYSCORE_INPUT to a CSV of one value per line)",
            path.display()
        )
    })?;
    let mut values = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.contains(',') {
            return Err(format!(
                "{}: line {}: several values; stream mode reads a signal of one value per line",
                path.display(),
                i + 1
            ));
        }
        match line.parse::<f32>() {
            Ok(v) => values.push(v),
            Err(_) => return Err(format!("{}: line {}: `{line}` is not a number", path.display(), i + 1)),
        }
    }
    if values.is_empty() {
        return Err(format!("{}: no samples", path.display()));
    }
    Ok(values)
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    fs::copy(from, to).map(drop).map_err(|e| format!("copying {} to {}: {e}", from.display(), to.display()))
}
