//! Stack high-water mark by stack painting.
//!
//! cortex-m-rt's `paint-stack` feature (on RISC-V: `_start` in `platform/riscv.rs`) fills RAM from `_stack_end` (the end of `.bss`/`.uninit`)
//! up to `_stack_start` (the top of RAM, where the stack begins) with `STACK_PAINT_VALUE` before
//! `main` runs. The stack grows down, so the lowest word that no longer holds the paint marks the
//! deepest the stack has been; everything from there to `_stack_start` has been used.

use crate::platform::STACK_PAINT_VALUE;

extern "C" {
    static _stack_start: u32;
    static _stack_end: u32;
}

/// Bytes of stack used so far (deepest point since reset).
pub fn high_water_bytes() -> usize {
    // SAFETY: the two symbols are defined by cortex-m-rt's link.x (on RISC-V by
    // boards/qemu-virt-rv32/link.x); only their addresses are
    // taken. The words between them are RAM owned by this program (the stack and the painted
    // gap below it), aligned to 4 bytes by the linker script's asserts, and read with volatile
    // loads because the compiler cannot know the stack writes them.
    unsafe {
        let top = core::ptr::addr_of!(_stack_start) as usize;
        let mut p = core::ptr::addr_of!(_stack_end);
        while (p as usize) < top && core::ptr::read_volatile(p) == STACK_PAINT_VALUE {
            p = p.add(1);
        }
        top - p as usize
    }
}
