//! The two profiles, chosen by cargo feature: where text goes, how the program ends, and what
//! happens on a panic or a fault.
//!
//! | | `qemu` (default) | `board` |
//! | --- | --- | --- |
//! | machine | QEMU `mps2-an386` | nRF52840-DK |
//! | text | semihosting (QEMU's stdout) | defmt over RTT (probe-rs) |
//! | success | semihosting exit, status 0 | breakpoint, probe-rs stops |
//! | panic, HardFault | message, semihosting exit, status 1 | panic-probe |

#[cfg(feature = "qemu")]
mod qemu;
#[cfg(feature = "qemu")]
pub use qemu::{exit_success, Console};

#[cfg(feature = "board")]
mod board;
#[cfg(feature = "board")]
pub use board::{exit_success, Console};
