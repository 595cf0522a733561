//! The platform layer: where text goes, how the program starts and ends, what happens on a panic
//! or a fault, the cycle counter and the stack paint. Everything else in the firmware (and the
//! whole engine) is the same source on every target; the engine itself only tells ISA features
//! apart (DSP, FPU: engine/build.rs), never boards.
//!
//! | target | profile | machine | text, exit | module |
//! | --- | --- | --- | --- | --- |
//! | thumbv7em-none-eabihf (Cortex-M4F) | `qemu` (default) | QEMU `mps2-an386` | Arm semihosting | `cortex_m` |
//! | thumbv7em-none-eabihf (Cortex-M4F) | `board` | nRF52840-DK | defmt over RTT, probe-rs | `board` |
//! | thumbv6m-none-eabi (Cortex-M0/M0+) | `qemu` | QEMU `mps2-an385` (its M3 core runs the ARMv6-M code) | Arm semihosting | `cortex_m` |
//! | thumbv8m.main-none-eabihf (Cortex-M33) | `qemu` | QEMU `mps2-an505` | Arm semihosting | `cortex_m` |
//! | riscv32imac-unknown-none-elf | `qemu` | QEMU `virt` (`-bios none`) | RISC-V semihosting | `riscv` |
//!
//! Each module gives `Console` (`open`, `write`), `exit_success` and `STACK_PAINT_VALUE`; the
//! Cortex-M ones start through cortex-m-rt (`#[entry]` on `main`), the RISC-V one through its
//! own `_start`, which calls `crate::main`. On every QEMU machine a panic or a fault prints a
//! message on stderr and exits QEMU with status 1, so a broken firmware cannot hang CI.

#[cfg(all(feature = "qemu", target_arch = "arm"))]
mod cortex_m;
#[cfg(all(feature = "qemu", target_arch = "arm"))]
pub use cortex_m::{exit_success, Console};

#[cfg(all(feature = "qemu", target_arch = "riscv32"))]
mod riscv;
#[cfg(all(feature = "qemu", target_arch = "riscv32"))]
pub use riscv::{exit_success, Console, CycleCounter, STACK_PAINT_VALUE};

#[cfg(feature = "board")]
mod board;
#[cfg(feature = "board")]
pub use board::{exit_success, Console};

/// The value cortex-m-rt's `paint-stack` writes below the stack at reset (unused by
/// examples/kernels.rs, which includes this module without `stack.rs`).
#[cfg(target_arch = "arm")]
#[allow(unused_imports)]
pub use cortex_m_rt::STACK_PAINT_VALUE;
