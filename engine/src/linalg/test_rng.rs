//! The random sizes and values of the SIMD kernels' property tests (`x86.rs`, `neon.rs`): one
//! xorshift generator, and f32 values over many magnitudes, signs, zeros and subnormals. Tests only.

/// A small deterministic generator (no dev-dependency in a `no_std` crate's unit tests).
pub struct Rng(pub u64);
impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// A random f32 (see the module doc).
    pub fn f32(&mut self) -> f32 {
        // Values over many magnitudes, signs, zeros and subnormals.
        match self.next() % 16 {
            0 => 0.0,
            1 => -0.0,
            2 => f32::from_bits(self.next() as u32 & 0x007f_ffff),
            _ => {
                let m = (self.next() % 2001) as f32 / 1000.0 - 1.0;
                let e = (self.next() % 40) as i32 - 20;
                m * libm::powf(2.0, e as f32)
            }
        }
    }
}
