//! The Cortex-M4 DSP kernel equals the portable one, on the M4 (QEMU `mps2-an386`).
//!
//! Builds `firmware-example/examples/kernels.rs` with the checked-in w8a8 moons model and runs
//! it in QEMU with `-icount shift=0`: its property test puts random and extreme int8 vectors of
//! every length 0..=512, aligned and unaligned, through the `SMLAD` kernel, its instruction
//! model and the portable kernel, and must report no mismatch; then it times whole network
//! evaluations, whose instruction count this test prints (the figure in docs/BENCHMARKS.md).
//!
//! Needs `qemu-system-arm` and the `thumbv7em-none-eabihf` target, like `tests/firmware.rs`;
//! without either it prints `skipped: <why>` and passes (CI installs both).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const TARGET: &str = "thumbv7em-none-eabihf";

fn missing_tools(firmware_dir: &Path) -> Option<String> {
    let qemu =
        Command::new("qemu-system-arm").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if qemu.is_err() {
        return Some("qemu-system-arm is not installed (apt-get install qemu-system-arm)".into());
    }
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
    (!has_core).then(|| format!("the Rust target {TARGET} is not installed (rustup target add {TARGET})"))
}

#[test]
fn dsp_kernel_equals_portable_kernel_on_the_m4() {
    let firmware_dir = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("firmware-example");
    if let Some(why) = missing_tools(&firmware_dir) {
        println!("skipped: {why}");
        return;
    }
    let target_dir = firmware_dir.join("target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--release", "--example", "kernels", "--target", TARGET, "--target-dir"])
        .arg(&target_dir)
        .current_dir(&firmware_dir)
        .env("TINYSCORE_MODEL", firmware_dir.join("models/moons-w8a8.tsm"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("cannot run cargo");
    assert!(out.status.success(), "building the example failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let elf = target_dir.join(TARGET).join("release/examples/kernels");
    let run = Command::new("timeout")
        .args(["120", "qemu-system-arm", "-cpu", "cortex-m4", "-machine", "mps2-an386", "-nographic"])
        .args(["-semihosting-config", "enable=on,target=native", "-icount", "shift=0", "-kernel"])
        .arg(&elf)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run qemu-system-arm");
    let stdout = String::from_utf8_lossy(&run.stdout);
    println!("{stdout}");
    assert!(
        run.status.success(),
        "the kernel check failed ({}):\n{stdout}{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    let field = |name: &str| -> u64 {
        let key = format!("{name}=");
        let at = stdout.find(&key).unwrap_or_else(|| panic!("no {name} in {stdout:?}"));
        stdout[at + key.len()..].split_whitespace().next().unwrap().parse().unwrap()
    };
    assert_eq!(field("kernel_mismatches"), 0);
    assert_eq!(field("kernel_cases"), 4 * 513);
    let per_eval = field("instructions_per_eval");
    assert!(per_eval > 0, "no evaluation was timed");
}
