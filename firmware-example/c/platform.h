/* What main.c needs from the board (startup.c: QEMU mps2-an386 with semihosting). */
#ifndef PLATFORM_H
#define PLATFORM_H

/* Prints a NUL-terminated string on the host's stdout. */
void platform_print(const char *text);
/* Ends the program: QEMU exits 0 if `success`, else 1. */
void platform_exit(int success);
/* Prints `what` on the host's stderr and exits with status 1. */
void platform_fail(const char *what);

#endif
