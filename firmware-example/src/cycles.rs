//! A 64-bit cycle counter: SysTick on Cortex-M (below), `mcycle` on RISC-V
//! (`platform::CycleCounter`).
//!
//! SysTick is a 24-bit down-counter clocked by the core clock (CLKSOURCE = processor); its
//! exception counts the wraps. On a board that gives core cycles. QEMU has no cycle-accurate
//! model (and no DWT cycle counter): SysTick there follows QEMU's virtual clock at the MPS2's
//! 25 MHz, i.e. host time, unless QEMU runs with `-icount shift=0`, where one instruction is one
//! virtual nanosecond and the count is deterministic: instructions = 40 × cycles (DESIGN.md §8).
//! The MPS2 machines differ in clock: 25 MHz on `mps2-an385`/`mps2-an386` (40 ns a tick), 20 MHz
//! on `mps2-an505` (50 ns); run-qemu.sh knows each.

#[cfg(not(target_arch = "arm"))]
pub use crate::platform::CycleCounter as Counter;

#[cfg(target_arch = "arm")]
pub use systick::Counter;

#[cfg(target_arch = "arm")]
mod systick {

    use core::sync::atomic::{AtomicU32, Ordering};

    use cortex_m::peripheral::syst::SystClkSource;
    use cortex_m::peripheral::SYST;
    use cortex_m_rt::exception;

    /// SysTick counts from RELOAD down to 0, so one wrap is RELOAD + 1 cycles.
    const RELOAD: u32 = 0x00FF_FFFF;

    /// Wraps of SysTick since [`Counter::start`].
    static WRAPS: AtomicU32 = AtomicU32::new(0);

    #[exception]
    fn SysTick() {
        // Load and store, not `fetch_add`: ARMv6-M has no atomic read-modify-write, and this handler
        // is the only writer (one core), so nothing can come between the two.
        WRAPS.store(WRAPS.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }

    /// The running SysTick and its wrap count.
    pub struct Counter {
        /// Owned so nothing else reconfigures SysTick while it counts.
        _syst: SYST,
    }

    impl Counter {
        /// Takes SysTick and starts it from RELOAD. Call once.
        pub fn start() -> Self {
            let mut syst = cortex_m::Peripherals::take().expect("peripherals are taken once").SYST;
            syst.set_clock_source(SystClkSource::Core);
            syst.set_reload(RELOAD);
            syst.clear_current();
            syst.enable_interrupt();
            syst.enable_counter();
            Self { _syst: syst }
        }

        /// Cycles since [`Counter::start`].
        pub fn now(&mut self) -> u64 {
            loop {
                let wraps = WRAPS.load(Ordering::Relaxed);
                let current = SYST::get_current();
                // A wrap between the two reads would pair the new count with the old wrap number;
                // read again until the wrap count is stable around the counter read.
                if WRAPS.load(Ordering::Relaxed) == wraps {
                    return u64::from(wraps) * (u64::from(RELOAD) + 1) + u64::from(RELOAD - current);
                }
            }
        }
    }
}
