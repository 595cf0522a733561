//! What the fuzz targets share: the checked parse, the bounded load-and-run path, and the
//! structure-aware mutation of valid seed files.
//!
//! The seeds (`seeds/*.tsm`) are written by the tools' `.tsm` writer, every quantization mode it
//! supports, version 1 and version 3 (ScoreNet v1 and conv U-Nets as layer graphs), and checked
//! in; `cargo test -p tinyscore-tools --test fuzz_seeds` keeps them equal to the writer's output
//! (`TINYSCORE_BLESS=1` regenerates them). The mutation uses only the engine's own layout
//! constants (`format::field`, `field3`, `HEADER_LEN`, `ENTRY_LEN`, `RECORD_LEN`) and its `crc32`,
//! so this crate does not pull in the host tools.

use arbitrary::Arbitrary;
use tinyscore_engine::format::{crc32, field, field3, FormatError, Model, CRC_START, ENTRY_LEN, HEADER_LEN};
use tinyscore_engine::graph::op::{NONE, RECORD_LEN};
use tinyscore_engine::net::{limits, ScoreNet};
use tinyscore_engine::sampler::{draw, Ddpm, Em, Plan, Sampler, Variance};

/// Valid files, one per (shape, quantization, version): the starting points of [`Mutation`].
pub const SEEDS: [&[u8]; 14] = [
    include_bytes!("../seeds/tiny-f32.tsm"),
    include_bytes!("../seeds/tiny-f16.tsm"),
    include_bytes!("../seeds/tiny-w8.tsm"),
    include_bytes!("../seeds/small-f32.tsm"),
    include_bytes!("../seeds/small-f16.tsm"),
    include_bytes!("../seeds/small-w8.tsm"),
    include_bytes!("../seeds/tiny-w8a8.tsm"),
    include_bytes!("../seeds/tiny-vpsde-w8a8.tsm"),
    include_bytes!("../seeds/tiny-ve-f32.tsm"),
    include_bytes!("../seeds/v1-tiny-f32.tsm"),
    include_bytes!("../seeds/conv-tiny-f32.tsm"),
    include_bytes!("../seeds/conv-tiny-f16.tsm"),
    include_bytes!("../seeds/conv-3ch-f32.tsm"),
    include_bytes!("../seeds/conv-tiny-w8a8.tsm"),
    // Not the firmware's ECG U-Net (`ecg-conv-f32.tsm`, 72 kB): parsing and running it costs
    // ten times a small seed's execution, and its layers are the tiny U-Net's at other sizes.
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
            // Every layer's output fits its region, reads only earlier values, and has a shape
            // within the format's bounds, as the engine relies on.
            let g = model.graph();
            let r = g.regions();
            assert!(g.time_layers() < g.len());
            assert_eq!(g.input().len(), model.dim());
            for (i, l) in g.layers().enumerate() {
                assert!(l.shape.channels >= 1 && l.shape.channels <= 1024 && l.shape.length <= 4096);
                for v in l.op.inputs().into_iter().flatten() {
                    assert!((v as usize) <= i, "layer {i} reads value {v}");
                }
                if i + 1 < g.len() {
                    let region = if i < g.time_layers() { r.time } else { r.data };
                    assert!(l.offset + l.shape.len() <= region);
                } else {
                    assert_eq!(l.shape, g.input());
                }
            }
            Ok(model)
        }
        Err(e) => {
            let _ = write!(Sink, "{e}");
            Err(e)
        }
    }
}

/// The most arena words the harness allocates (16 MiB of f32): a valid file may plan a larger
/// arena (up to 192 values of 1024 × 4096 words), which the harness refuses before allocating,
/// as `tinyscore` refuses beyond its limit and firmware beyond its compiled capacity.
pub const MAX_ARENA_WORDS: usize = 1 << 22;

/// The most work (multiply–accumulates plus values written, per evaluation) the harness runs:
/// a valid file of a few kilobytes may state a graph of 10¹⁴ MACs (a 1024-channel convolution
/// over 4096 samples). Beyond it the file is parsed and checked but not run.
pub const MAX_WORK: u64 = 1 << 22;

/// Parse, then for a file that validates and whose arena and work are within the harness's
/// caps ([`MAX_ARENA_WORDS`], [`MAX_WORK`]): `ScoreNet::new` at the engine's largest
/// capacities, one ε evaluation at time `t`, and a draw of at most two steps (DDPM or
/// Euler–Maruyama) (one noisy step and the final one).
pub fn load_and_run(bytes: &[u8], t: f32, seed: u64) {
    let Ok(model) = parse_checked(bytes) else { return };
    // parse builds the schedule once to validate it, so building it again cannot fail.
    let diffusion = model.process().diffusion().expect("parse accepted a process that does not build");
    type Net<'a> = ScoreNet<'a, { limits::MAX_DIM }, { limits::MAX_HIDDEN }, { limits::MAX_FREQS }, Vec<f32>>;
    let words = Net::arena_len(&model);
    let g = model.graph();
    let written: u64 = g.layers().map(|l| l.shape.len() as u64).sum();
    if words > MAX_ARENA_WORDS || g.macs().saturating_add(written) > MAX_WORK {
        return;
    }
    let mut net: Net<'_> =
        ScoreNet::new(model, vec![0.0; words]).expect("a valid file fits the largest capacities");
    let d = net.dims().dim;
    let mut x = vec![0.0f32; d];
    for (i, v) in x.iter_mut().enumerate() {
        *v = (i as f32 * 0.37 + t).sin();
    }
    let mut eps = vec![0.0f32; d];
    net.eps(&x, t, &mut eps);
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

/// Every header field (docs/format.md §3; in version 3, bytes 20..28 and 60..64 are §11.2's,
/// listed in [`GRAPH_FIELDS`]).
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

/// The version-3 fields outside the records (docs/format.md §11.2, §11.3): the data
/// description (C, L, kind, its reserved byte, width), the layer count and its reserved word,
/// the arena's regions (time, data, scratch) and the graph's input shape.
const GRAPH_FIELDS: [Field; 12] = [
    f(field3::CHANNELS, 2),
    f(field3::LENGTH, 2),
    f(field3::DATA_KIND, 1),
    f(field3::RESERVED_KIND, 1),
    f(field3::WIDTH, 2),
    f(field3::LAYERS, 2),
    f(field3::RESERVED2, 2),
    f(field3::TIME_WORDS, 4),
    f(field3::DATA_WORDS, 4),
    f(field3::SCRATCH_WORDS, 4),
    f(field3::INPUT_CHANNELS, 2),
    f(field3::INPUT_LENGTH, 2),
];

/// Every field of a layer record (docs/format.md §11.4): op, kernel, dilation, stride, the
/// inputs a and b, the weight and bias tensor references, the output's channels and length,
/// its arena offset, and the reserved bytes (as three words).
const RECORD_FIELDS: [Field; 14] = [
    f(0, 1),
    f(1, 1),
    f(2, 1),
    f(3, 1),
    f(4, 2),
    f(6, 2),
    f(8, 2),
    f(10, 2),
    f(12, 2),
    f(14, 2),
    f(16, 4),
    f(20, 4),
    f(24, 4),
    f(28, 4),
];

/// Every field of a table entry (docs/format.md §4): role, dtype, reserved byte, rows, cols,
/// data offset and length, scale offset and length, reserved word.
const ENTRY_FIELDS: [Field; 10] =
    [f(0, 2), f(2, 1), f(3, 1), f(4, 4), f(8, 4), f(12, 4), f(16, 4), f(20, 4), f(24, 4), f(28, 4)];

/// Offsets in a table entry of the data and scale offsets (relocated when records move).
const DATA_OFFSET: usize = 12;
const SCALE_OFFSET: usize = 20;

/// Values that sit on the checks' boundaries: sizes and their capacities (channels 1024,
/// lengths 4096, kernel 31, dilation 64, layers 192), alignments, the f32 specials (NaN, ±∞,
/// −0, subnormal, largest), sign bits, "none" (0xFFFF) and all-ones.
const SPECIALS: [u32; 40] = [
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    9,
    15,
    16,
    17,
    31,
    32,
    33,
    63,
    64,
    65,
    191,
    192,
    193,
    256,
    257,
    512,
    513,
    1000,
    1001,
    1024,
    1025,
    4096,
    4097,
    0xFFFF,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFF,
    0xFFFF_FFF0,
    f32::NAN.to_bits(),
    f32::INFINITY.to_bits(),
    f32::NEG_INFINITY.to_bits(),
    (-0.0f32).to_bits(),
    f32::MAX.to_bits(),
];

/// How a field is rewritten.
#[derive(Clone, Copy, Debug, Arbitrary)]
pub enum Value {
    /// Any value (truncated to the field's width).
    Raw(u32),
    /// The current value plus a small signed step (wrapping): shifts offsets by a few bytes or one
    /// alignment unit, sizes by one, references to the neighbouring value.
    Add(i16),
    /// One of the boundary values.
    Special(u8),
    /// The file's length, or the length minus a small amount (for offsets and FILE_LEN).
    FileLen(u8),
    /// An op code, 0..=9 (0, 8 and 9 are unknown; 1..=7 the ops of docs/format.md §11.4).
    Op(u8),
    /// A value reference near the record's own output: layer i's output is value i + 1, so 0
    /// is the record's own output (a cycle), −1 the value just before it, +1 the next layer's.
    /// Outside a record: near the layer count.
    Layer(i8),
    /// A tensor index: from the start of the table (≥ 0: 0 and 1 are the normalisation), or
    /// from its end (< 0: −1 is the last entry).
    Tensor(i8),
    /// The same field of another record (shapes, offsets and references that are right for
    /// another layer).
    Like(u8),
}

/// A change to the list of records that keeps the file's layout consistent: the table and
/// the tensors move with the records (every data and scale offset relocated, FILE_LEN and the
/// layer count updated), so the file gets past the placement checks and reaches the graph's.
#[derive(Clone, Copy, Debug, Arbitrary)]
pub enum Restructure {
    /// Exchange two records.
    Swap(u8, u8),
    /// Overwrite record `to` with record `from`.
    Copy {
        /// The record copied.
        from: u8,
        /// The record overwritten.
        to: u8,
    },
    /// Drop record `at`; with `renumber`, later references follow their values down by one (a
    /// reference to the dropped value then names the value before it).
    Remove {
        /// The record dropped.
        at: u8,
        /// Whether references are renumbered.
        renumber: bool,
    },
    /// Insert a copy of record `from` before record `at`; with `renumber`, references to
    /// values from `at` on follow them up by one.
    Duplicate {
        /// The record copied.
        from: u8,
        /// Where the copy goes.
        at: u8,
        /// Whether references are renumbered.
        renumber: bool,
    },
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
    /// A version-3 field outside the records: data description, layer count, arena, input
    /// shape (on a version-1 seed: the same bytes, which are D, H, F, B there).
    Graph {
        /// Which (modulo the number of fields).
        which: u8,
        /// The new value.
        value: Value,
    },
    /// A field of a layer record (version-3 seeds; ignored on version 1).
    Record {
        /// Which record (modulo the layer count).
        layer: u8,
        /// Which field (modulo the number of record fields).
        which: u8,
        /// The new value.
        value: Value,
    },
    /// Records swapped, copied, dropped or duplicated (version-3 seeds; ignored on version 1).
    Layers(Restructure),
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
    /// Whether a version-3, quantization-1 file's RAM figure is recomputed from its (possibly
    /// rewritten) arena and data sizes, so a wrong arena gets past `RamMismatch` to the checks
    /// behind it.
    pub fix_ram: bool,
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

/// Where the records and the table are, as the mutation has laid them out so far (header
/// edits of the layer or tensor count are "wrong fields" and do not move them).
#[derive(Clone, Copy, Debug)]
struct Layout {
    v3: bool,
    layers: usize,
    tensors: usize,
}

impl Layout {
    fn of(b: &[u8]) -> Self {
        let v3 = read_le(b, f(field::VERSION, 2)) == 3;
        let layers = if v3 { read_le(b, f(field3::LAYERS, 2)) as usize } else { 0 };
        Self { v3, layers, tensors: read_le(b, f(field::TENSOR_COUNT, 4)).max(1) as usize }
    }

    fn table(&self) -> usize {
        if self.v3 {
            field3::RECORDS + RECORD_LEN * self.layers
        } else {
            HEADER_LEN
        }
    }

    fn record(&self, layer: usize) -> usize {
        field3::RECORDS + RECORD_LEN * layer
    }
}

/// The value `value` gives a field whose current value is `old`; `layer` is the record's index
/// for a record field.
fn resolve(b: &[u8], lay: &Layout, at: Field, layer: Option<usize>, value: Value) -> u32 {
    let old = read_le(b, at);
    match value {
        Value::Raw(v) => v,
        Value::Add(d) => old.wrapping_add(d as i32 as u32),
        Value::Special(k) => SPECIALS[k as usize % SPECIALS.len()],
        Value::FileLen(k) => (b.len() as u32).wrapping_sub(k as u32 % 32),
        Value::Op(k) => u32::from(k % 10),
        Value::Layer(d) => (layer.map_or(lay.layers, |i| i + 1) as i64 + i64::from(d)) as u32,
        Value::Tensor(d) => {
            if d >= 0 {
                d as u32
            } else {
                (lay.tensors as i64 + i64::from(d)) as u32
            }
        }
        Value::Like(other) => match layer {
            Some(_) if lay.layers > 0 => {
                let o = lay.record(other as usize % lay.layers) + (at.offset - field3::RECORDS) % RECORD_LEN;
                read_le(b, f(o, at.width))
            }
            _ => old,
        },
    }
}

/// Moves every tensor region by `delta` bytes (the table's entries' data offsets and their
/// non-zero scale offsets), for records inserted or removed before the table.
fn relocate(b: &mut [u8], lay: &Layout, delta: i32) {
    let table = lay.table();
    for k in 0..lay.tensors {
        for (o, keep_zero) in [(DATA_OFFSET, false), (SCALE_OFFSET, true)] {
            let at = f(table + ENTRY_LEN * k + o, 4);
            let v = read_le(b, at);
            if !(keep_zero && v == 0) {
                write_le(b, at, v.wrapping_add(delta as u32));
            }
        }
    }
}

/// Renumbers the value references (a, b) of records `from..` : each reference `v ≥ first` is
/// moved by `delta` (wrapping; 0xFFFF, "none", is left alone).
fn renumber(b: &mut [u8], lay: &Layout, from: usize, first: u32, delta: i32) {
    for i in from..lay.layers {
        for o in [4, 6] {
            let at = f(lay.record(i) + o, 2);
            let v = read_le(b, at);
            if v != u32::from(NONE) && v >= first {
                write_le(b, at, (v as i32 + delta) as u32 & 0xFFFF);
            }
        }
    }
}

fn restructure(b: &mut Vec<u8>, lay: &mut Layout, r: Restructure) {
    let n = lay.layers;
    if !lay.v3 || n == 0 {
        return;
    }
    let rec = |i: u8| i as usize % n;
    match r {
        Restructure::Swap(i, j) => {
            let (i, j) = (rec(i), rec(j));
            for k in 0..RECORD_LEN {
                b.swap(lay.record(i) + k, lay.record(j) + k);
            }
        }
        Restructure::Copy { from, to } => {
            let (from, to) = (lay.record(rec(from)), lay.record(rec(to)));
            b.copy_within(from..from + RECORD_LEN, to);
        }
        Restructure::Remove { at, renumber: re } => {
            let at = rec(at);
            let start = lay.record(at);
            b.drain(start..start + RECORD_LEN);
            lay.layers -= 1;
            relocate(b, lay, -(RECORD_LEN as i32));
            if re {
                // Value at + 1 is gone: references above it move down by one.
                renumber(b, lay, at, at as u32 + 1, -1);
            }
            finish_move(b, lay);
        }
        Restructure::Duplicate { from, at, renumber: re } => {
            let (from, at) = (rec(from), rec(at));
            let copy: [u8; RECORD_LEN] =
                b[lay.record(from)..lay.record(from) + RECORD_LEN].try_into().unwrap();
            let start = lay.record(at);
            b.splice(start..start, copy);
            lay.layers += 1;
            relocate(b, lay, RECORD_LEN as i32);
            if re {
                // The copy is value at + 1; the values from there on move up by one.
                renumber(b, lay, at + 1, at as u32 + 1, 1);
            }
            finish_move(b, lay);
        }
    }
}

/// After records were inserted or removed: the layer count and FILE_LEN follow.
fn finish_move(b: &mut [u8], lay: &Layout) {
    write_le(b, f(field3::LAYERS, 2), lay.layers as u32);
    let len = b.len() as u32;
    write_le(b, f(field::FILE_LEN, 4), len);
}

impl Mutation {
    /// The mutated, re-sealed file.
    pub fn apply(&self) -> Vec<u8> {
        let mut b = SEEDS[self.seed_file as usize % SEEDS.len()].to_vec();
        let mut lay = Layout::of(&b);
        for edit in self.edits.iter().take(8) {
            let (at, layer, value) = match *edit {
                Edit::Header { which, value } => {
                    (HEADER_FIELDS[which as usize % HEADER_FIELDS.len()], None, value)
                }
                Edit::Graph { which, value } => {
                    (GRAPH_FIELDS[which as usize % GRAPH_FIELDS.len()], None, value)
                }
                Edit::Entry { index, which, value } => {
                    let e = ENTRY_FIELDS[which as usize % ENTRY_FIELDS.len()];
                    let base = lay.table() + ENTRY_LEN * (index as usize % lay.tensors);
                    (f(base + e.offset, e.width), None, value)
                }
                Edit::Record { layer, which, value } => {
                    if !lay.v3 || lay.layers == 0 {
                        continue;
                    }
                    let layer = layer as usize % lay.layers;
                    let r = RECORD_FIELDS[which as usize % RECORD_FIELDS.len()];
                    (f(lay.record(layer) + r.offset, r.width), Some(layer), value)
                }
                Edit::Byte { pos, value } => {
                    let n = b.len();
                    b[pos as usize % n] = value;
                    continue;
                }
                Edit::Layers(r) => {
                    restructure(&mut b, &mut lay, r);
                    continue;
                }
            };
            let new = resolve(&b, &lay, at, layer, value);
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
        if self.fix_ram && lay.v3 && read_le(&b, f(field::QUANT_VERSION, 2)) == 1 {
            // RAM = 4·(time + data + scratch + 2·C·L) (docs/format.md §11.2), wrapping.
            let w = |o: usize| read_le(&b, f(o, 4));
            let h = |o: usize| read_le(&b, f(o, 2));
            let words = w(field3::TIME_WORDS)
                .wrapping_add(w(field3::DATA_WORDS))
                .wrapping_add(w(field3::SCRATCH_WORDS))
                .wrapping_add(2u32.wrapping_mul(h(field3::CHANNELS)).wrapping_mul(h(field3::LENGTH)));
            write_le(&mut b, f(field::RAM_BYTES, 4), words.wrapping_mul(4));
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
        for seed_file in 0..SEEDS.len() as u8 {
            assert_eq!(mutation(seed_file, vec![]).apply(), SEEDS[seed_file as usize]);
        }
    }

    fn mutation(seed_file: u8, edits: Vec<Edit>) -> Mutation {
        Mutation { seed_file, edits, resize: Resize::Keep, fix_len: false, fix_ram: false, t: 0.3, seed: 1 }
    }

    const CONV: u8 = 10;

    fn graph_error(m: &Mutation) -> tinyscore_engine::graph::GraphError {
        match Model::parse(&m.apply()).map(|_| ()) {
            Err(FormatError::Graph(e)) => e,
            other => panic!("{m:?}: expected a graph error, got {other:?}"),
        }
    }

    #[test]
    fn restructures_keep_the_layout() {
        use tinyscore_engine::graph::GraphError;
        let layers = Layout::of(SEEDS[CONV as usize]).layers;
        assert!(layers > 10);
        // A duplicate then its removal, both renumbered, is the seed; so is swapping a record
        // with itself.
        for at in [0u8, 3, 7] {
            let dup = Edit::Layers(Restructure::Duplicate { from: at + 2, at, renumber: true });
            let rm = Edit::Layers(Restructure::Remove { at, renumber: true });
            assert_eq!(mutation(CONV, vec![dup, rm]).apply(), SEEDS[CONV as usize]);
            let swap = Edit::Layers(Restructure::Swap(at, at));
            assert_eq!(mutation(CONV, vec![swap]).apply(), SEEDS[CONV as usize]);
        }
        // The tensors moved with the records: a removed or duplicated record is refused by the
        // graph's checks, not by the placement of the tensors (Misplaced) or the CRC.
        let last = (layers - 1) as u8;
        let rm = Edit::Layers(Restructure::Remove { at: last, renumber: false });
        // (The last layer's weight and bias are then read by no layer.)
        assert!(matches!(graph_error(&mutation(CONV, vec![rm])), GraphError::UnusedTensor { .. }));
        let dup = Edit::Layers(Restructure::Duplicate { from: 5, at: 5, renumber: false });
        let _ = graph_error(&mutation(CONV, vec![dup]));
        let swap = Edit::Layers(Restructure::Swap(3, 9));
        let _ = graph_error(&mutation(CONV, vec![swap]));
    }

    #[test]
    fn record_and_graph_edits_reach_the_graph_checks() {
        use tinyscore_engine::graph::GraphError;
        let rec = |layer: u8, which: u8, value: Value| Edit::Record { layer, which, value };
        assert_eq!(
            graph_error(&mutation(CONV, vec![rec(4, 0, Value::Op(9))])),
            GraphError::UnknownOp { layer: 4, code: 9 }
        );
        // A layer reading its own output: a cycle.
        let e = graph_error(&mutation(CONV, vec![rec(6, 4, Value::Layer(0))]));
        assert_eq!(e, GraphError::Reference { layer: 6, value: 7 });
        // A tensor reference past the table's end.
        let e = graph_error(&mutation(CONV, vec![rec(6, 6, Value::Tensor(-1)), rec(6, 6, Value::Add(1))]));
        assert!(
            matches!(e, GraphError::Tensor { layer: 6, .. } | GraphError::Shape { layer: 6, .. }),
            "{e:?}"
        );
        // An arena region one word larger, with the RAM figure following it: ArenaSize, not
        // RamMismatch.
        let grow = Edit::Graph { which: 8, value: Value::Add(1) };
        let mut m = mutation(CONV, vec![grow]);
        m.fix_ram = true;
        assert!(matches!(graph_error(&m), GraphError::ArenaSize { region: "data", .. }));
        // An edit that changes nothing leaves the file valid, and it runs.
        let same = mutation(CONV, vec![rec(5, 10, Value::Like(5))]);
        assert_eq!(same.apply(), SEEDS[CONV as usize]);
        load_and_run(&same.apply(), 0.5, 3);
    }
}
