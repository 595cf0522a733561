//! How the integration tests start the `tinyscore` binary: directly, or behind the runner named by
//! `TINYSCORE_TEST_RUNNER` (a command and its arguments, split at whitespace). `scripts/test.sh`
//! sets it to `qemu-aarch64 -L /usr/aarch64-linux-gnu` when it runs these tests for
//! `aarch64-unknown-linux-gnu`: the test binary itself runs under cargo's runner, but a process
//! emulated by `qemu-aarch64` cannot start another aarch64 binary (that needs binfmt_misc), so
//! each start of the CLI goes through the same emulator.
//!
//! Each test file uses part of this module (`mod common;`), hence the `dead_code` allowance.
#![allow(dead_code)]

use std::process::Command;

/// The variable that holds the runner prefix.
pub const RUNNER_VAR: &str = "TINYSCORE_TEST_RUNNER";

/// The `tinyscore` binary that cargo built with these tests.
pub const EXE: &str = env!("CARGO_BIN_EXE_tinyscore");

/// The runner prefix (command and arguments), when `TINYSCORE_TEST_RUNNER` holds one.
pub fn runner() -> Option<Vec<String>> {
    let words: Vec<String> = std::env::var(RUNNER_VAR).ok()?.split_whitespace().map(str::to_string).collect();
    (!words.is_empty()).then_some(words)
}

/// A command that starts the `tinyscore` binary, behind the runner when there is one; the caller
/// adds the CLI's arguments.
pub fn tinyscore() -> Command {
    match runner() {
        Some(words) => {
            let mut c = Command::new(&words[0]);
            c.args(&words[1..]).arg(EXE);
            c
        }
        None => Command::new(EXE),
    }
}

/// Why a test that hands the binary's path to another program (which then starts it itself,
/// without the runner) cannot run here; `None` when no runner is set.
pub fn cannot_hand_over_the_binary() -> Option<String> {
    runner().map(|w| {
        format!(
            "{RUNNER_VAR} is set ({}): another program could not start the binary without it",
            w.join(" ")
        )
    })
}
