//! What the fuzz targets share: the checked parse, the bounded load-and-run path, and the
//! structure-aware mutation of valid seed files.
//!
//! The seeds (`seeds/*.tsm`) are written by the tools' `.tsm` writer, every quantization mode it
//! supports, and checked in; `cargo test -p tinyscore-tools --test fuzz_seeds` keeps them equal to
//! the writer's output (`TINYSCORE_BLESS=1` regenerates them). The mutation uses only the engine's
//! own layout constants (`format::field`, `HEADER_LEN`, `ENTRY_LEN`) and its `crc32`, so this crate
//! does not pull in the host tools.

use arbitrary::Arbitrary;
use tinyscore_engine::format::{crc32, field, FormatError, Model, CRC_START, ENTRY_LEN, HEADER_LEN};
use tinyscore_engine::net::{limits, ScoreNet};
use tinyscore_engine::sampler::{draw, Ddpm, Em, Plan, Sampler, Variance};

/// Valid files, one per (shape, quantization): the starting points of [`Mutation`].
pub const SEEDS: [&[u8]; 9] = [
    include_bytes!("../seeds/tiny-f32.tsm"),
    include_bytes!("../seeds/tiny-f16.tsm"),
    include_bytes!("../seeds/tiny-w8.tsm"),
    include_bytes!("../seeds/small-f32.tsm"),
    include_bytes!("../seeds/small-f16.tsm"),
    include_bytes!("../seeds/small-w8.tsm"),
    include_bytes!("../seeds/tiny-w8a8.tsm"),
    include_bytes!("../seeds/tiny-vpsde-w8a8.tsm"),
    include_bytes!("../seeds/tiny-ve-f32.tsm"),
];

/// A `core::fmt::Write` that discards, so formatting an error is exercised without allocating.
struct Sink;

impl core::fmt::Write for Sink {
    fn write_str(&mut self, _: &str) -> core::fmt::Result {
        Ok(())
    }
}

/// `Model::parse`, plus the invariants an accepted file must satisfy, plus `Display` of a refusal
/// (the CLI prints it, so it must not panic either).
pub fn parse_checked(bytes: &[u8]) -> Result<Model<'_>, FormatError> {
    use core::fmt::Write;
    match Model::parse(bytes) {
        Ok(model) => {
            let h = model.header();
            assert_eq!(h.file_len as usize, bytes.len());
            assert!((1..=limits::MAX_DIM).contains(&model.dim()));
            if let Some(d) = model.graph().mlp_dims() {
                assert!((1..=limits::MAX_HIDDEN).contains(&d.hidden));
                assert!((2..=limits::MAX_FREQS).contains(&d.freqs) && d.freqs % 2 == 0);
                assert!((1..=limits::MAX_BLOCKS).contains(&d.blocks));
            }
            assert_eq!(model.tensor_count(), h.tensor_count as usize);
            let payload: usize = model.tensors().map(|t| t.byte_len()).sum();
            assert!(HEADER_LEN + ENTRY_LEN * model.tensor_count() + payload <= bytes.len());
            // Every layer's output fits its region, as the engine relies on.
            let g = model.graph();
            let r = g.regions();
            for (i, l) in g.layers().enumerate().take(g.len().saturating_sub(1)) {
                let region = if i < g.time_layers() { r.time } else { r.data };
                assert!(l.offset + l.shape.len() <= region);
            }
            Ok(model)
        }
        Err(e) => {
            let _ = write!(Sink, "{e}");
            Err(e)
        }
    }
}

/// Parse, then for a file that validates: `ScoreNet::new` at the engine's largest capacities, one
/// ε evaluation at time `t`, and a draw of at most two steps (DDPM or Euler–Maruyama) (one noisy step and the final
/// one). The work is bounded by the file's size, which the fuzzer bounds.
pub fn load_and_run(bytes: &[u8], t: f32, seed: u64) {
    let Ok(model) = parse_checked(bytes) else { return };
    // parse builds the schedule once to validate it, so building it again cannot fail.
    let diffusion = model.process().diffusion().expect("parse accepted a process that does not build");
    let words = ScoreNet::<'_, { limits::MAX_DIM }, { limits::MAX_HIDDEN }, { limits::MAX_FREQS }, Vec<f32>>::arena_len(&model);
    // A valid file may plan a large arena (its layers' values, up to 1024 × 4096 words each):
    // beyond 64 MiB the harness does not allocate it, as `tinyscore` refuses beyond its limit.
    if words > 1 << 24 {
        return;
    }
    let mut net: ScoreNet<'_, { limits::MAX_DIM }, { limits::MAX_HIDDEN }, { limits::MAX_FREQS }, Vec<f32>> =
        ScoreNet::new(model, vec![0.0; words]).expect("a valid file fits the largest capacities");
    let d = net.dims().dim;
    let mut x = [0.0f32; limits::MAX_DIM];
    for (i, v) in x.iter_mut().enumerate().take(d) {
        *v = (i as f32 * 0.37 + t).sin();
    }
    let mut eps = [0.0f32; limits::MAX_DIM];
    net.eps(&x[..d], t, &mut eps[..d]);
    // The discrete process runs DDPM, an SDE runs Euler–Maruyama: each the sampler that fits it.
    let sampler = match diffusion.discrete() {
        Some(schedule) => Sampler::Ddpm(Ddpm { steps: schedule.steps().min(2), variance: Variance::Beta }),
        None => Sampler::Em(Em { steps: 2 }),
    };
    let plan = Plan { sampler, denoise_final: true };
    draw(&mut net, &diffusion, &plan, seed, 0, &mut x).expect("a fitting sampler and a D-long output");
}

/// Where a rewrite lands and how wide the field is.
#[derive(Clone, Copy, Debug)]
struct Field {
    offset: usize,
    width: usize,
}

const fn f(offset: usize, width: usize) -> Field {
    Field { offset, width }
}

/// Every header field (docs/format.md §3).
const HEADER_FIELDS: [Field; 19] = [
    f(field::MAGIC, 4),
    f(field::VERSION, 2),
    f(field::QUANT_VERSION, 2),
    f(field::FILE_LEN, 4),
    f(field::FLAGS, 4),
    f(field::DIM, 2),
    f(field::HIDDEN, 2),
    f(field::FREQS, 2),
    f(field::BLOCKS, 2),
    f(field::PROCESS, 1),
    f(field::SCHEDULE, 1),
    f(field::RESERVED0, 2),
    f(field::STEPS, 4),
    f(field::PARAMS, 4),
    f(field::PARAMS + 4, 4),
    f(field::PARAMS + 8, 4),
    f(field::PARAMS + 12, 4),
    f(field::RAM_BYTES, 4),
    f(field::TENSOR_COUNT, 4),
];

/// Every field of a table entry (docs/format.md §4): role, dtype, reserved byte, rows, cols,
/// data offset and length, scale offset and length, reserved word.
const ENTRY_FIELDS: [Field; 10] =
    [f(0, 2), f(2, 1), f(3, 1), f(4, 4), f(8, 4), f(12, 4), f(16, 4), f(20, 4), f(24, 4), f(28, 4)];

/// Values that sit on the checks' boundaries: sizes and their capacities, alignments, the f32
/// specials (NaN, ±∞, −0, subnormal, largest), sign bits and all-ones.
const SPECIALS: [u32; 28] = [
    0,
    1,
    2,
    3,
    7,
    8,
    9,
    15,
    16,
    17,
    64,
    65,
    256,
    257,
    512,
    513,
    1000,
    1001,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFF,
    0xFFFF_FFF0,
    f32::NAN.to_bits(),
    f32::INFINITY.to_bits(),
    f32::NEG_INFINITY.to_bits(),
    (-0.0f32).to_bits(),
    1, // smallest subnormal f32 as bits, kept for its float meaning
    f32::MAX.to_bits(),
];

/// How a field is rewritten.
#[derive(Clone, Copy, Debug, Arbitrary)]
pub enum Value {
    /// Any value (truncated to the field's width).
    Raw(u32),
    /// The current value plus a small signed step (wrapping): shifts offsets by a few bytes or one
    /// alignment unit, sizes by one.
    Add(i16),
    /// One of the boundary values.
    Special(u8),
    /// The file's length, or the length minus a small amount (for offsets and FILE_LEN).
    FileLen(u8),
}

/// One rewrite.
#[derive(Clone, Copy, Debug, Arbitrary)]
pub enum Edit {
    /// A header field.
    Header {
        /// Which (modulo the number of fields).
        which: u8,
        /// The new value.
        value: Value,
    },
    /// A field of a table entry.
    Entry {
        /// Which entry (modulo the seed's tensor count).
        index: u8,
        /// Which field (modulo the number of entry fields).
        which: u8,
        /// The new value.
        value: Value,
    },
    /// Any byte (values, scales, padding).
    Byte {
        /// Where (modulo the length).
        pos: u16,
        /// The new byte.
        value: u8,
    },
}

/// A change of the file's length.
#[derive(Clone, Copy, Debug, Arbitrary)]
pub enum Resize {
    /// Keep it.
    Keep,
    /// Cut this many bytes off the end (modulo the length).
    Truncate(u16),
    /// Append this many zero bytes.
    Extend(u8),
}

/// A structure-aware input: a seed, up to eight rewrites, a length change, then a fresh CRC.
#[derive(Clone, Debug, Arbitrary)]
pub struct Mutation {
    /// Which seed (modulo [`SEEDS`]).
    pub seed_file: u8,
    /// The rewrites, applied in order.
    pub edits: Vec<Edit>,
    /// The length change.
    pub resize: Resize,
    /// Whether FILE_LEN is set to the new length after a resize (else the length check fires).
    pub fix_len: bool,
    /// Diffusion time of the ε evaluation.
    pub t: f32,
    /// Sampler seed.
    pub seed: u64,
}

fn write_le(b: &mut [u8], at: Field, v: u32) {
    if let Some(dst) = b.get_mut(at.offset..at.offset + at.width) {
        dst.copy_from_slice(&v.to_le_bytes()[..at.width]);
    }
}

fn read_le(b: &[u8], at: Field) -> u32 {
    let mut w = [0u8; 4];
    if let Some(src) = b.get(at.offset..at.offset + at.width) {
        w[..at.width].copy_from_slice(src);
    }
    u32::from_le_bytes(w)
}

impl Mutation {
    /// The mutated, re-sealed file.
    pub fn apply(&self) -> Vec<u8> {
        let mut b = SEEDS[self.seed_file as usize % SEEDS.len()].to_vec();
        let count = read_le(&b, f(field::TENSOR_COUNT, 4)).max(1) as usize;
        for edit in self.edits.iter().take(8) {
            let (at, value) = match *edit {
                Edit::Header { which, value } => (HEADER_FIELDS[which as usize % HEADER_FIELDS.len()], value),
                Edit::Entry { index, which, value } => {
                    let e = ENTRY_FIELDS[which as usize % ENTRY_FIELDS.len()];
                    let base = HEADER_LEN + ENTRY_LEN * (index as usize % count);
                    (f(base + e.offset, e.width), value)
                }
                Edit::Byte { pos, value } => {
                    let n = b.len();
                    b[pos as usize % n] = value;
                    continue;
                }
            };
            let old = read_le(&b, at);
            let new = match value {
                Value::Raw(v) => v,
                Value::Add(d) => old.wrapping_add(d as i32 as u32),
                Value::Special(k) => SPECIALS[k as usize % SPECIALS.len()],
                Value::FileLen(k) => (b.len() as u32).wrapping_sub(k as u32 % 32),
            };
            write_le(&mut b, at, new);
        }
        match self.resize {
            Resize::Keep => {}
            Resize::Truncate(k) => {
                let n = b.len();
                b.truncate(n - k as usize % n);
            }
            Resize::Extend(k) => b.resize(b.len() + k as usize, 0),
        }
        if self.fix_len {
            let len = b.len() as u32;
            write_le(&mut b, f(field::FILE_LEN, 4), len);
        }
        reseal(&mut b);
        b
    }
}

/// Recomputes the CRC (the engine's `crc32` over `CRC_START..`), as the tools' `tsm::reseal` does.
pub fn reseal(b: &mut [u8]) {
    if let Some(rest) = b.get(CRC_START..) {
        let crc = crc32(rest);
        write_le(b, f(field::CRC, 4), crc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_loads_and_runs() {
        for (i, s) in SEEDS.iter().enumerate() {
            assert!(Model::parse(s).is_ok(), "seed {i}");
            load_and_run(s, 0.3, 1);
        }
    }

    #[test]
    fn an_unedited_mutation_is_the_seed() {
        let m =
            Mutation { seed_file: 2, edits: vec![], resize: Resize::Keep, fix_len: false, t: 0.0, seed: 0 };
        assert_eq!(m.apply(), SEEDS[2]);
    }
}
