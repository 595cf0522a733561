//! QEMU Cortex-M machines (`mps2-an386` M4F, `mps2-an385` M3 running the ARMv6-M build, `mps2-an505` M33): text
//! and exit status through Arm semihosting.
//!
//! QEMU must run with `-semihosting-config enable=on,target=native` (the runner in
//! `.cargo/config.toml`): a semihosting call is a `BKPT 0xAB`, and without a host to answer it
//! the core faults. Every way out of this program ends in a semihosting `SYS_EXIT`, so QEMU never
//! keeps running after the firmware is done or broken: status 0 after the last line, 1 after a
//! panic, a HardFault or any unexpected exception.

use core::fmt::Write as _;
use core::panic::PanicInfo;

use cortex_m_rt::{exception, ExceptionFrame};
use cortex_m_semihosting::{debug, hio};

/// Semihosting standard output (QEMU's stdout).
pub struct Console(Option<hio::HostStream>);

impl Console {
    /// Opens the host's stdout; without semihosting the text is dropped.
    pub fn open() -> Self {
        Self(hio::hstdout().ok())
    }

    /// Writes `bytes` to the host.
    pub fn write(&mut self, bytes: &[u8]) {
        if let Some(stream) = &mut self.0 {
            let _ = stream.write_all(bytes);
        }
    }
}

/// Ends the program: QEMU exits with status 0.
pub fn exit_success() -> ! {
    debug::exit(debug::EXIT_SUCCESS);
    // Only reached when no host answers the exit call.
    halt()
}

/// Prints `args` on the host's stderr and makes QEMU exit with status 1.
fn fail(args: core::fmt::Arguments<'_>) -> ! {
    cortex_m::interrupt::disable();
    if let Ok(mut err) = hio::hstderr() {
        let _ = err.write_fmt(args);
    }
    debug::exit(debug::EXIT_FAILURE);
    halt()
}

fn halt() -> ! {
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    if cfg!(feature = "terse-panic") {
        // No message, no location: see the feature in Cargo.toml (17 KB of flash).
        fail(format_args!("panicked (built with `terse-panic`: no message)\n"))
    } else {
        fail(format_args!("{info}\n"))
    }
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    // The faulting pc and lr only: `{frame:?}` would link core::fmt's struct Debug machinery
    // (about 1.5 KiB of flash) for a message no test reads; with `terse-panic`, not even those.
    if cfg!(feature = "terse-panic") {
        fail(format_args!("HardFault\n"))
    } else {
        fail(format_args!("HardFault at pc={:#010x} lr={:#010x}\n", frame.pc(), frame.lr()))
    }
}

#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    if cfg!(feature = "terse-panic") {
        fail(format_args!("unexpected exception or interrupt\n"))
    } else {
        fail(format_args!("unexpected exception or interrupt {irqn}\n"))
    }
}
