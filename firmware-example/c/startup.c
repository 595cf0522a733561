/* Start-up, semihosting and faults of the C example on QEMU's mps2-an386 (Cortex-M4F).
 * No C library: the Rust static library brings memcpy/memset (compiler-builtins). */
#include <stdint.h>
#include <stddef.h>

#include "platform.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);

/* Arm semihosting: operation in r0, argument block in r1, `bkpt 0xAB`. QEMU needs
 * -semihosting-config enable=on,target=native. */
static int semihosting(int op, const void *args) {
  register int r0 __asm__("r0") = op;
  register const void *r1 __asm__("r1") = args;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

enum { SYS_OPEN = 0x01, SYS_WRITE = 0x05, SYS_EXIT = 0x18 };
enum { APPLICATION_EXIT = 0x20026, RUNTIME_ERROR = 0x20023 };

static int open_tt(int mode) {
  const uintptr_t args[3] = {(uintptr_t)":tt", (uintptr_t)mode, 3};
  return semihosting(SYS_OPEN, args);
}

static void write_to(int handle, const char *text) {
  size_t len = 0;
  while (text[len] != '\0') len++;
  const uintptr_t args[3] = {(uintptr_t)handle, (uintptr_t)text, len};
  semihosting(SYS_WRITE, args);
}

static int stdout_handle = -1;

void platform_print(const char *text) {
  if (stdout_handle < 0) stdout_handle = open_tt(4); /* "w": the host's stdout */
  write_to(stdout_handle, text);
}

void platform_exit(int success) {
  /* On 32-bit Arm the argument is the reason itself: QEMU exits 0 for ApplicationExit, else 1. */
  semihosting(SYS_EXIT, (const void *)(uintptr_t)(success ? APPLICATION_EXIT : RUNTIME_ERROR));
  for (;;) __asm__ volatile("wfi");
}

void platform_fail(const char *what) {
  write_to(open_tt(8), what); /* "a": the host's stderr */
  write_to(open_tt(8), "\n");
  platform_exit(0);
}

static void fault_handler(void) { platform_fail("fault (HardFault or another exception)"); }

void reset_handler(void) {
  uint32_t *src = &_sidata, *dst = &_sdata;
  while (dst < &_edata) *dst++ = *src++;
  for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
  /* CPACR: full access to CP10/CP11, the FPU, before any float instruction (the library is
   * built for the hard-float ABI). */
  *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20;
  __asm__ volatile("dsb\n\tisb" ::: "memory");
  platform_exit(main() == 0);
}

/* The vector table: initial stack pointer, reset, then every exception to the fault handler. */
__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&_estack), reset_handler, fault_handler, fault_handler, fault_handler,
    fault_handler, fault_handler, 0, 0, 0, 0, fault_handler, fault_handler, 0, fault_handler,
    fault_handler,
};
