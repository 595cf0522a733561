//! QEMU `virt` with a 32-bit RISC-V core (`qemu-system-riscv32 -machine virt -bios none`):
//! start-up, traps, text and exit status through RISC-V semihosting, and the cycle counter.
//!
//! No runtime crate: the start-up code is the dozen instructions below (stack pointer, `gp`,
//! `.data` copied from flash, `.bss` zeroed, the stack painted as cortex-m-rt's `paint-stack`
//! does, the trap vector set) and the linker script is `boards/qemu-virt-rv32/link.x`.
//!
//! Semihosting on RISC-V (the RISC-V semihosting spec, which reuses Arm's calls): the operation
//! in `a0`, a pointer to its arguments in `a1`, then the three instructions `slli zero, zero,
//! 0x1f; ebreak; srai zero, zero, 7`, uncompressed and in one page. QEMU must run with
//! `-semihosting-config enable=on,target=native`. Every way out ends in `SYS_EXIT`: QEMU exits
//! 0 after the last line, 1 after a panic or any trap (exception or interrupt; none is enabled).

use core::fmt::{self, Write as _};
use core::panic::PanicInfo;

/// What `_start` writes below the stack (cortex-m-rt's value, so both read alike).
pub const STACK_PAINT_VALUE: u32 = 0xCCCC_CCCC;

core::arch::global_asm!(
    r#"
    .section .text.start, "ax"
    .global _start
_start:
    .option push
    .option norelax
    la gp, __global_pointer$
    .option pop
    csrr t0, mhartid
    bnez t0, 9f
    la sp, _stack_start
    la t0, tinyscore_trap
    csrw mtvec, t0
    # .data: from its load address in flash to RAM
    la t0, __sdata
    la t1, __edata
    la t2, __sidata
1:  bgeu t0, t1, 2f
    lw t3, 0(t2)
    sw t3, 0(t0)
    addi t0, t0, 4
    addi t2, t2, 4
    j 1b
    # .bss: zeros
2:  la t0, __sbss
    la t1, __ebss
3:  bgeu t0, t1, 4f
    sw zero, 0(t0)
    addi t0, t0, 4
    j 3b
    # the stack's paint, from the end of .bss up to the stack pointer (src/stack.rs)
4:  la t0, _stack_end
    li t2, 0xCCCCCCCC
5:  bgeu t0, sp, 6f
    sw t2, 0(t0)
    addi t0, t0, 4
    j 5b
6:  call tinyscore_start_rust
    # other harts (none on the default machine) and a return that cannot happen: park
9:  wfi
    j 9b

    .balign 4
tinyscore_trap:
    csrr a0, mcause
    csrr a1, mepc
    csrr a2, mtval
    j tinyscore_trap_rust

    .section .text.semihosting, "ax"
    .balign 16
    .global tinyscore_semihosting_call
tinyscore_semihosting_call:
    .option push
    .option norvc
    slli zero, zero, 0x1f
    ebreak
    srai zero, zero, 0x7
    .option pop
    ret
"#
);

extern "C" {
    /// The semihosting trap: `op` in a0, `args` in a1 (a pointer to the arguments, or for
    /// `SYS_EXIT` on RV32 the value itself), the result in a0.
    fn tinyscore_semihosting_call(op: usize, args: *const usize) -> isize;
}

/// `SYS_OPEN`, `SYS_WRITE`, `SYS_EXIT` and the exit reasons (Arm semihosting numbering).
const SYS_OPEN: usize = 0x01;
const SYS_WRITE: usize = 0x05;
const SYS_EXIT: usize = 0x18;
const ADP_STOPPED_APPLICATION_EXIT: usize = 0x2_0026;
const ADP_STOPPED_RUNTIME_ERROR_UNKNOWN: usize = 0x2_0023;

fn semihosting(op: usize, args: &[usize]) -> isize {
    // SAFETY: `tinyscore_semihosting_call` is the three-instruction semihosting sequence above
    // followed by `ret`, with the C calling convention; QEMU reads `args` (a live slice, as long
    // as the call lasts) and the memory its words point to, which every caller below keeps alive
    // and in bounds (a name and its length, a buffer and its length).
    unsafe { tinyscore_semihosting_call(op, args.as_ptr()) }
}

/// `SYS_OPEN(":tt", mode)`: mode 4 ("w") is the host's stdout, 8 ("a") its stderr.
fn open_tt(mode: usize) -> Option<usize> {
    let name = b":tt\0";
    let handle = semihosting(SYS_OPEN, &[name.as_ptr() as usize, mode, 3]);
    (handle >= 0).then_some(handle as usize)
}

fn write_all(handle: usize, bytes: &[u8]) {
    // SYS_WRITE returns the number of bytes *not* written; QEMU writes all or fails.
    let _ = semihosting(SYS_WRITE, &[handle, bytes.as_ptr() as usize, bytes.len()]);
}

fn exit(reason: usize) -> ! {
    // On RV32 `a1` is the reason itself, not a pointer to it: QEMU exits 0 for
    // ApplicationExit, else 1.
    // SAFETY: the semihosting sequence (see `semihosting`); SYS_EXIT reads no memory.
    let _ = unsafe { tinyscore_semihosting_call(SYS_EXIT, reason as *const usize) };
    // Only reached when no host answers the exit call: park the hart.
    loop {
        // SAFETY: `wfi` only waits for an interrupt; none is enabled.
        unsafe { core::arch::asm!("wfi") };
    }
}

/// Semihosting standard output (QEMU's stdout).
pub struct Console(Option<usize>);

impl Console {
    /// Opens the host's stdout; without an answer the text is dropped.
    pub fn open() -> Self {
        Self(open_tt(4))
    }

    /// Writes `bytes` to the host.
    pub fn write(&mut self, bytes: &[u8]) {
        if let Some(handle) = self.0 {
            write_all(handle, bytes);
        }
    }
}

/// Ends the program: QEMU exits with status 0.
pub fn exit_success() -> ! {
    exit(ADP_STOPPED_APPLICATION_EXIT)
}

/// The host's stderr, for the messages of a failure.
struct Stderr(usize);

impl fmt::Write for Stderr {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_all(self.0, s.as_bytes());
        Ok(())
    }
}

/// Prints `args` on the host's stderr and makes QEMU exit with status 1.
fn fail(args: fmt::Arguments<'_>) -> ! {
    if let Some(handle) = open_tt(8) {
        let _ = Stderr(handle).write_fmt(args);
    }
    exit(ADP_STOPPED_RUNTIME_ERROR_UNKNOWN)
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    if cfg!(feature = "terse-panic") {
        // No message, no location: see the feature in Cargo.toml.
        fail(format_args!("panicked (built with `terse-panic`: no message)\n"))
    } else {
        fail(format_args!("{info}\n"))
    }
}

/// Called by `_start` once RAM is ready.
#[no_mangle]
extern "C" fn tinyscore_start_rust() -> ! {
    crate::main()
}

/// Called by the trap vector with the trap's cause, pc and value.
#[no_mangle]
extern "C" fn tinyscore_trap_rust(mcause: usize, mepc: usize, mtval: usize) -> ! {
    if cfg!(feature = "terse-panic") {
        fail(format_args!("trap\n"))
    } else {
        fail(format_args!("trap mcause={mcause:#010x} at pc={mepc:#010x} mtval={mtval:#010x}\n"))
    }
}

/// The 64-bit `mcycle` counter. On hardware: core cycles. QEMU has no cycle model: without
/// `-icount` it counts host time stamps, with `-icount shift=0` one per instruction, so there
/// instructions = cycles.
pub struct CycleCounter;

impl CycleCounter {
    /// The counter runs from reset; nothing to set up.
    pub fn start() -> Self {
        Self
    }

    /// Cycles since reset.
    pub fn now(&mut self) -> u64 {
        loop {
            let (hi, lo, hi_again): (u32, u32, u32);
            // SAFETY: reads of the machine-mode cycle counter CSRs, which this M-mode program
            // may read; no memory is touched.
            unsafe {
                core::arch::asm!(
                    "csrr {0}, mcycleh", "csrr {1}, mcycle", "csrr {2}, mcycleh",
                    out(reg) hi, out(reg) lo, out(reg) hi_again,
                    options(nomem, nostack)
                );
            }
            // A carry between the reads: read again.
            if hi == hi_again {
                return (u64::from(hi) << 32) | u64::from(lo);
            }
        }
    }
}
