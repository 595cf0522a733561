//! nRF52840-DK: text through defmt over RTT, read by probe-rs (`probe-rs run --chip
//! nRF52840_xxAA`). No peripheral of the nRF is touched (SysTick is the core's), so no HAL or PAC
//! is needed.
//!
//! `panic-probe` prints a panic over defmt and stops the core with a breakpoint; probe-rs then
//! exits with a failure status. A HardFault does the same through `panic_probe::hard_fault`.

use cortex_m_rt::{exception, ExceptionFrame};
use defmt_rtt as _; // the RTT transport behind defmt's global logger
use panic_probe as _; // the panic handler

/// defmt's text frames. Each chunk of the line buffer is one `println!` frame; probe-rs prints
/// each frame on its own line.
pub struct Console;

impl Console {
    /// The RTT console (defmt-rtt sets it up on first use).
    pub fn open() -> Self {
        Self
    }

    /// Sends `bytes` (ASCII, one line without its newline when it fits the buffer).
    pub fn write(&mut self, bytes: &[u8]) {
        let text = core::str::from_utf8(bytes).unwrap_or("<non-UTF-8 output>");
        defmt::println!("{=str}", text.trim_end_matches('\n'));
    }
}

/// Ends the program: a breakpoint, which probe-rs takes as the end of the run.
pub fn exit_success() -> ! {
    loop {
        cortex_m::asm::bkpt();
    }
}

#[exception]
unsafe fn HardFault(_frame: &ExceptionFrame) -> ! {
    panic_probe::hard_fault()
}
