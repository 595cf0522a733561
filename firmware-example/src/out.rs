//! Line-buffered text output over the platform's console.
//!
//! Formatting with `core::fmt` writes many small pieces; sending each to the host is slow over
//! semihosting (one trap per piece) and noisy over defmt (one frame per piece), so pieces are
//! gathered here and sent a line at a time. A line longer than the buffer goes out in chunks.

use core::fmt;

use crate::platform::Console;

/// Bytes gathered before a line is sent (fits a line of 2-D or 3-D samples many times over).
const CAPACITY: usize = 256;

/// A `fmt::Write` that sends whole lines (or full buffers) to a [`Console`].
pub struct Line {
    console: Console,
    buf: [u8; CAPACITY],
    len: usize,
}

impl Line {
    /// An empty line over `console`.
    pub fn new(console: Console) -> Self {
        Self { console, buf: [0; CAPACITY], len: 0 }
    }

    /// Sends whatever is buffered.
    pub fn flush(&mut self) {
        if self.len > 0 {
            self.console.write(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == CAPACITY {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
            if b == b'\n' {
                self.flush();
            }
        }
        Ok(())
    }
}
