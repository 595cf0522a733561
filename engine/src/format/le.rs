//! Little-endian reads at a byte offset that never panic: a short slice reads as 0, and the
//! parser checks every length before it reads. A leaf module of the parser.

#[inline]
pub(crate) fn u16_at(b: &[u8], o: usize) -> u16 {
    // Callers check the length first; a short slice would read as 0, never panic.
    b.get(o..o + 2).and_then(|s| s.try_into().ok()).map_or(0, u16::from_le_bytes)
}

#[inline]
pub(crate) fn u32_at(b: &[u8], o: usize) -> u32 {
    b.get(o..o + 4).and_then(|s| s.try_into().ok()).map_or(0, u32::from_le_bytes)
}
