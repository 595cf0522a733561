//! Kernel check and network cost on the Cortex-M4F (QEMU `mps2-an386`).
//!
//! 1. Property test of the engine's int8 dot-product kernels: the Cortex-M4 DSP kernel
//!    (`SMLAD`/`SXTB16`, inline assembly) against the portable one on random vectors of every
//!    length 0..=512 (every capacity the engine allows), with the extreme values −128 and 127
//!    mixed in, and on the all-extreme vectors. Prints `# kernel_cases=… kernel_mismatches=…`;
//!    a mismatch also ends the run with status 1.
//!    The same for the multi-vector DSP kernel (one weight word unpacked once for 2 or 4
//!    vectors): through `quant::matmul_prepared` as the network calls it, tiles of 1–4 vectors,
//!    and directly against its instruction model (`# tile_cases=… tile_mismatches=…`).
//!    The same for the M4 epilogue of the int8 layers (`quant::epilogue_tile`, and the convolution's twin `quant::epilogue_vectors`; requantization
//!    and the assembly of its second pass) against the scalar `quant::epilogue`, random layers
//!    of the three kinds (`# epilogue_cases=… epilogue_mismatches=…`).
//! 2. Property test of the engine's f32-activation dot product on the M4F FPU (`VLDM`,
//!    `VMLA.F32`, inline assembly, `engine/src/linalg/vfp.rs`) against the portable
//!    `linalg::dot`, f32 and int8 weights, 2 565 cases (every length 0..=512, five kinds of
//!    values, odd alignments); the results must have the same bits (NaN payloads are counted
//!    apart). Prints `# vfp_cases=… vfp_mismatches=…` and FPSCR (flush-to-zero, default NaN);
//!    a mismatch ends the run with status 1. Then the instructions per MAC of one row's dot
//!    product, portable and kernel (`# dot_cost …`), and of the int8 × int8 kernels for one
//!    vector and tiles of 2 and 4 (`# int8_dot_cost …`).
//! 3. The cost of one whole network evaluation of the embedded model (`TINYSCORE_MODEL`):
//!    `EVALS` calls of `ScoreNet::eps` at different `x` and `t`, timed with SysTick. Under
//!    `-icount shift=0` one instruction is one virtual nanosecond and SysTick ticks every 40, so
//!    `# instructions_per_eval=` is exact to 40/`EVALS` instructions. Then the same `EVALS`
//!    evaluations as `ScoreNet::eps_batch` calls of 4, 8, 16, 32 and 64 vectors
//!    (`# eps_batch n=…`; their outputs must have `eps`'s bits, `batch_mismatches=0`). For a `w8a8` model, where
//!    those instructions go (`# breakdown …`): the parts of the time embedding run alone with the
//!    engine's own functions (φ(t), the two matrix–vector products, SiLU), and the int8 dot
//!    products of every layer (`quant::matmul_prepared`: one vector through `quant::Prepared`, as the
//!    network's one-vector loop forms them); the rest of the
//!    evaluation (requantization, tables, quantizing x and temb, loops) is the difference; and
//!    for `eps_batch` of 4 (`# breakdown_x4`): a quarter of the time embedding, the dot
//!    products of four vectors at a time, per evaluation, and the rest.
//!
//! Build and run: `cargo build --release --example kernels` in `firmware-example/`, then
//! `qemu-system-arm -cpu cortex-m4 -machine mps2-an386 -nographic -semihosting-config
//! enable=on,target=native -icount shift=0 -kernel target/thumbv7em-none-eabihf/release/examples/kernels`
//! (`tools/tests/firmware.rs` does both; `docs/BENCHMARKS.md` has the figures).
#![no_std]
#![no_main]

#[path = "../src/cycles.rs"]
mod cycles;
#[path = "../src/out.rs"]
mod out;
#[path = "../src/platform/mod.rs"]
mod platform;

use core::fmt::Write as _;

use core::hint::black_box;
use cortex_m_rt::entry;

use tinyscore_engine::format::{layout, Model, Role};
use tinyscore_engine::linalg::{self, MatVec};
use tinyscore_engine::net::{self, ScoreNet};
use tinyscore_engine::quant::{self, Epilogue, Silu, TileEpilogue};

mod config {
    #![allow(dead_code)]
    include!(concat!(env!("OUT_DIR"), "/config.rs"));
}

#[repr(C, align(16))]
struct Aligned<T: ?Sized>(T);

static MODEL: Aligned<[u8; config::MODEL_LEN]> =
    Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/model.tsm")));

/// Network evaluations timed.
const EVALS: u32 = 64;
/// Vectors per call of `eps_batch` timed (the same `EVALS` evaluations, in `EVALS / n` calls).
const BATCHES: [usize; 5] = [4, 8, 16, 32, 64];
/// The largest of [`BATCHES`].
const MAX_BATCH: usize = 64;

#[entry]
fn main() -> ! {
    let mut out = out::Line::new(platform::Console::open());
    let mut clock = cycles::Counter::start();

    let (cases, mismatches) = kernel_property_test(&mut out);
    let _ = writeln!(out, "# kernel_cases={cases} kernel_mismatches={mismatches}");
    if mismatches > 0 {
        panic!("the DSP kernel disagrees with the portable one in {mismatches} cases");
    }
    let (cases, mismatches) = tile_property_test(&mut out);
    let _ = writeln!(out, "# tile_cases={cases} tile_mismatches={mismatches}");
    if mismatches > 0 {
        panic!("the multi-vector DSP kernel disagrees with the portable one in {mismatches} cases");
    }

    let (cases, mismatches) = epilogue_property_test(&mut out);
    let _ = writeln!(out, "# epilogue_cases={cases} epilogue_mismatches={mismatches}");
    if mismatches > 0 {
        panic!("the M4 epilogue disagrees with quant::epilogue in {mismatches} cases");
    }

    let (cases, direct, mismatches) = conv_property_test(&mut out);
    let _ = writeln!(out, "# conv_cases={cases} conv_direct={direct} conv_mismatches={mismatches}");
    if mismatches > 0 {
        panic!("the DSP convolution disagrees with the portable one in {mismatches} cases");
    }
    conv_costs(&mut out, &mut clock);

    let fpscr = cortex_m::register::fpscr::read().bits();
    let v = vfp_property_test(&mut out);
    let _ = writeln!(
        out,
        "# vfp_cases={} vfp_mismatches={} vfp_direct={} vfp_nan_cases={} vfp_nan_payload_diffs={} fpscr={fpscr:08x} fz={} dn={}",
        v.cases,
        v.mismatches,
        v.direct,
        v.nan_cases,
        v.payload_diffs,
        fpscr >> 24 & 1,
        fpscr >> 25 & 1
    );
    if v.mismatches > 0 {
        panic!("the FPU kernel disagrees with the portable dot in {} cases", v.mismatches);
    }
    dot_costs(&mut out, &mut clock);

    let model = Model::parse(&MODEL.0).unwrap_or_else(|e| panic!("{}: {e}", config::MODEL_FILE));
    let macs = model.dims().macs();
    let mut net: ScoreNet<'_, { config::DIM }, { config::HIDDEN }, { config::FREQS }, [f32; config::ARENA]> =
        ScoreNet::new(model, [0.0; config::ARENA]).unwrap_or_else(|e| panic!("{}: {e}", config::MODEL_FILE));
    let mut x = [0.0f32; config::DIM];
    let mut eps = [0.0f32; config::DIM];
    let mut check = 0u32;
    let t0 = clock.now();
    for i in 0..EVALS {
        for (k, v) in x.iter_mut().enumerate() {
            *v = (i as f32 * 0.37 + k as f32 * 0.11) % 2.0 - 1.0;
        }
        let t = (i as f32 + 0.5) / EVALS as f32;
        net.eps(&x, t, &mut eps);
        for v in &eps {
            check = check.rotate_left(5) ^ v.to_bits();
        }
    }
    let cycles = clock.now() - t0;
    let instructions = cycles * 40;
    let per_eval = instructions / u64::from(EVALS);
    let _ = writeln!(
        out,
        "# model={} evals={EVALS} macs={macs} instructions_per_eval={per_eval} instr_per_mac_x1000={} check={check:08x}",
        config::MODEL_FILE,
        per_eval * 1000 / macs as u64
    );
    let mut batch = [0u64; BATCHES.len()];
    for (cost, n) in batch.iter_mut().zip(BATCHES) {
        let (per_eval, mismatches) = batch_cost(&mut clock, &mut net, n);
        let _ = writeln!(
            out,
            "# eps_batch n={n} instructions_per_eval={per_eval} instr_per_mac_x1000={} batch_mismatches={mismatches}",
            per_eval * 1000 / macs as u64
        );
        if mismatches > 0 {
            panic!("eps_batch of {n} differs from eps in {mismatches} outputs");
        }
        *cost = per_eval;
    }
    if net.model().is_int8() {
        breakdown(&mut out, &mut clock, net.model(), per_eval, batch[0]);
    }
    out.flush();
    platform::exit_success()
}

/// xorshift64: the property test's inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// An int8 value; one in eight is −128, one in eight 127.
    fn i8(&mut self) -> i8 {
        match self.next() % 8 {
            0 => -128,
            1 => 127,
            _ => (self.next() >> 24) as u8 as i8,
        }
    }
}

/// Weights at offsets 0..4 of a word-aligned buffer, so unaligned rows are exercised too.
#[repr(C, align(4))]
struct Row([u8; 516]);

/// Runs the DSP kernel ([`quant::dot16_dsp`], through [`quant::Prepared::dot`] as the network
/// does, and directly) against the portable [`quant::dot_i8`] and the instruction model
/// [`quant::dot16_model`]: every length 0..=512, random and extreme values, aligned and unaligned
/// rows. Returns (cases, mismatches) and prints the first few mismatches.
fn kernel_property_test(out: &mut out::Line) -> (u32, u32) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut row = Row([0; 516]);
    let mut x = [0i8; 512];
    let mut words = [0u32; quant::prepared_words(512)];
    let (mut cases, mut mismatches) = (0u32, 0u32);
    for round in 0..4usize {
        for cols in 0..=512usize {
            let offset = if round == 3 { cols % 4 } else { 0 };
            for b in row.0.iter_mut() {
                *b = match round {
                    // All extremes: the largest sums of either sign.
                    0 => 0x80,
                    1 => 0x7f,
                    _ => rng.i8() as u8,
                };
            }
            for v in x.iter_mut() {
                *v = if round < 2 { -128 } else { rng.i8() };
            }
            let w = &row.0[offset..offset + cols];
            let xs = &x[..cols];
            let want = quant::dot_i8(w, xs);
            let prepared = quant::Prepared::new(xs, &mut words).dot(w);
            let n = quant::prepared_words(cols);
            quant::prepare_into(xs, &mut words[..n]);
            let full = cols / quant::CHUNK * quant::CHUNK;
            let tail = quant::dot_i8(&w[full..], &xs[full..]);
            let model = quant::dot16_model(&w[..full], &words[..n]) + tail;
            let direct = quant::dot16_dsp(&w[..full], &words[..n]).map(|v| v + tail);
            // The direct kernel refuses an unaligned row (None); aligned rows must give a value.
            let direct_ok = match direct {
                Some(v) => v == want,
                None => offset % 4 != 0,
            };
            cases += 1;
            if prepared != want || model != want || !direct_ok {
                mismatches += 1;
                if mismatches <= 5 {
                    let _ = writeln!(
                        out,
                        "# mismatch cols={cols} offset={offset}: portable {want} prepared {prepared} model {model} dsp {direct:?}"
                    );
                }
            }
        }
    }
    (cases, mismatches)
}

/// Two weight rows of up to 512 columns at offsets 0..4 of a word-aligned buffer.
#[repr(C, align(4))]
struct Rows([u8; 2 * 512 + 4]);

/// Runs the multi-vector DSP kernel against the portable [`quant::dot_i8`]: through
/// [`quant::matmul_prepared`] as the network calls it, for tiles of 1, 2, 3 and 4 vectors and
/// two rows (the second row starts `cols` bytes after the first, so it is unaligned for
/// `cols mod 4 ≠ 0`), and directly ([`quant::dot16_tile_dsp`]) and as its instruction model
/// ([`quant::dot16_tile_model`]) for 2 and 4 vectors, and the `SXTB16` preparation of the
/// activations ([`quant::prepare_tile_dsp`]) against [`quant::prepare_tile_into`], vectors at
/// byte offsets 0–3; every length 0..=512, rounds as in
/// [`kernel_property_test`] (all-extreme rows and vectors, random values with −128 and 127 mixed
/// in, rows at byte offsets 0–3). Returns (cases, mismatches).
fn tile_property_test(out: &mut out::Line) -> (u32, u32) {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut rows = Rows([0; 2 * 512 + 4]);
    let mut xs = [[0i8; 512]; 4];
    let mut buf = [0u32; 4 * quant::prepared_words(512)];
    let mut layout = [0u32; 4 * quant::prepared_words(512)];
    let (mut cases, mut mismatches) = (0u32, 0u32);
    for round in 0..4usize {
        for cols in 0..=512usize {
            let offset = if round == 3 { cols % 4 } else { 0 };
            for b in rows.0.iter_mut() {
                *b = match round {
                    0 => 0x80,
                    1 => 0x7f,
                    _ => rng.i8() as u8,
                };
            }
            for (i, x) in xs.iter_mut().enumerate() {
                for v in x.iter_mut() {
                    *v = match round {
                        // All extremes, of both signs across the vectors.
                        0 | 1 => [-128, 127][i % 2],
                        _ => rng.i8(),
                    };
                }
            }
            let w = &rows.0[offset..offset + 2 * cols];
            let want = |i: usize, r: usize| quant::dot_i8(&w[r * cols..(r + 1) * cols], &xs[i][..cols]);
            let mut bad = false;
            // Through the network's entry point, every tile size.
            for n in 1..=4usize {
                let mut acc = [[0i32; 2]; 4];
                quant::matmul_prepared(w, cols, 2, cols, &xs[..n], &mut acc[..n], &mut buf);
                for (i, a) in acc[..n].iter().enumerate() {
                    bad |= a[0] != want(i, 0) || a[1] != want(i, 1);
                }
            }
            // The kernels directly and their model (first row).
            let full = cols / quant::CHUNK * quant::CHUNK;
            let tail = |i: usize| quant::dot_i8(&w[full..cols], &xs[i][full..cols]);
            let x = |i: usize| &xs[i][..cols];
            let n2 = 2 * quant::prepared_words(cols);
            quant::prepare_tile_into([x(0), x(1)], &mut buf[..n2]);
            let model = quant::dot16_tile_model::<2>(&w[..full], &buf[..n2]);
            let direct = quant::dot16_tile_dsp::<2>(&w[..full], &buf[..n2]);
            for i in 0..2 {
                bad |= model[i] + tail(i) != want(i, 0);
                bad |= match direct {
                    Some(v) => v[i] + tail(i) != want(i, 0),
                    None => offset % 4 == 0,
                };
            }
            let n4 = 4 * quant::prepared_words(cols);
            quant::prepare_tile_into([x(0), x(1), x(2), x(3)], &mut buf[..n4]);
            let model = quant::dot16_tile_model::<4>(&w[..full], &buf[..n4]);
            let direct = quant::dot16_tile_dsp::<4>(&w[..full], &buf[..n4]);
            for i in 0..4 {
                bad |= model[i] + tail(i) != want(i, 0);
                bad |= match direct {
                    Some(v) => v[i] + tail(i) != want(i, 0),
                    None => offset % 4 == 0,
                };
            }
            // The `SXTB16` preparation (what `PreparedTile::new` runs here) against the portable
            // layout, vectors at byte offsets 0–3.
            let off = (cols % 4).min(512 - cols);
            let xo = |i: usize| &xs[i][off..off + cols];
            quant::prepare_tile_into([xo(0), xo(1), xo(2), xo(3)], &mut layout[..n4]);
            bad |= !quant::prepare_tile_dsp::<4>([xo(0), xo(1), xo(2), xo(3)], &mut buf[..n4]);
            bad |= layout[..n4] != buf[..n4];
            quant::prepare_tile_into([xo(1), xo(2)], &mut layout[..n2]);
            bad |= !quant::prepare_tile_dsp::<2>([xo(1), xo(2)], &mut buf[..n2]);
            bad |= layout[..n2] != buf[..n2];
            cases += 1;
            if bad {
                mismatches += 1;
                if mismatches <= 5 {
                    let _ = writeln!(out, "# tile mismatch round={round} cols={cols} offset={offset}");
                }
            }
        }
    }
    (cases, mismatches)
}

/// Largest operands of [`conv_property_test`] and [`conv_costs`].
const CONV_W: usize = 16 * 512;
const CONV_X: usize = 2048;
const CONV_ACC: usize = 2048;
const CONV_COL: usize = 2048;

/// Column scratch of the convolutions (word-aligned, as the network's scratch is).
#[repr(C, align(4))]
struct ColBytes([i8; 4 * CONV_COL]);

/// The convolution shapes of `firmware-example/models/ecg-conv-w8a8.tsm` (C_in, L_in, C_out,
/// K, stride, upsample: L_in the upsampled length), in the network's order: the MACs of a
/// whole evaluation (418 816), for [`conv_costs`].
const ECG_CONV: [(usize, usize, usize, usize, usize, bool); 16] = [
    (1, 64, 8, 5, 1, false),
    (8, 64, 8, 5, 1, false),
    (8, 64, 8, 5, 1, false),
    (8, 64, 16, 5, 2, false),
    (16, 32, 16, 5, 1, false),
    (16, 32, 16, 5, 1, false),
    (16, 32, 16, 5, 2, false),
    (16, 16, 16, 5, 1, false),
    (16, 16, 16, 5, 1, false),
    (16, 32, 16, 5, 1, true),
    (16, 32, 16, 5, 1, false),
    (16, 32, 16, 5, 1, false),
    (16, 64, 8, 5, 1, true),
    (8, 64, 8, 5, 1, false),
    (8, 64, 8, 5, 1, false),
    (8, 64, 1, 5, 1, false),
];

/// The packed DSP convolution (`quant::conv_packed::conv_i8_packed` with the `SMLAD` rows
/// kernel `quant::conv_rows_dsp`, as the network's convolution steps run it) against the
/// portable `quant::conv::conv_i8_from` and against the packed form with the kernel's portable
/// model: the ECG model's shapes and 400 random ones (C_in 1–40 so C_in·K of every residue,
/// C_in not a multiple of 4 included; C_out 1–13, not a multiple of 4 included; K 1–9; stride
/// 1 and 2; int8 and int16 sources, upsampled or not; one case of C_in·K = 510; extreme
/// values), with garbage left in the scratch. Returns (cases, cases the DSP form ran, mismatches).
fn conv_property_test(out: &mut out::Line) -> (u32, u32, u32) {
    use quant::conv::{conv_i8_from, ConvShape, Source};
    use quant::conv_packed::{col_words, conv_i8_packed, rows_model};
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut w = [0u8; CONV_W];
    let mut x8 = [0i8; CONV_X];
    let mut x16 = [0i16; CONV_X];
    let (mut want, mut got, mut model) = ([0i32; CONV_ACC], [0i32; CONV_ACC], [0i32; CONV_ACC]);
    let mut col = ColBytes([0; 4 * CONV_COL]);
    let (mut cases, mut direct, mut mismatches) = (0u32, 0u32, 0u32);
    for case in 0..ECG_CONV.len() + 400 + 1 {
        let (c_in, l_in, c_out, k, st, up) = if let Some(&sh) = ECG_CONV.get(case) {
            sh
        } else if case == ECG_CONV.len() + 400 {
            (170, 6, 3, 3, 2, false)
        } else {
            let k = [1, 3, 5, 7, 9][(rng.next() % 5) as usize];
            let up = rng.next() % 3 == 0;
            let l = 1 + (rng.next() % 40) as usize;
            (
                1 + (rng.next() % 40) as usize,
                if up { 2 * l } else { l },
                1 + (rng.next() % 13) as usize,
                k,
                1 + (rng.next() % 2) as usize,
                up,
            )
        };
        let Some(s) = ConvShape::new(c_in, l_in, c_out, k, 1, st) else { continue };
        let src = (if up { l_in / 2 } else { l_in }) * c_in;
        if c_out * s.cols() > CONV_W || src > CONV_X || s.acc_len() > CONV_ACC || col_words(&s) > CONV_COL {
            continue;
        }
        let extreme = rng.next() % 8 == 0;
        for v in w[..c_out * s.cols()].iter_mut() {
            *v = if extreme { 0x80 } else { rng.i8() as u8 };
        }
        for (a, b) in x8[..src].iter_mut().zip(x16[..src].iter_mut()) {
            *a = if extreme { -128 } else { rng.i8() };
            *b = if extreme { i16::MAX } else { rng.next() as u16 as i16 };
        }
        for i16_source in [false, true] {
            let source = if i16_source { Source::I16(&x16[..src]) } else { Source::I8(&x8[..src]) };
            let n = s.acc_len();
            let col = &mut col.0[..4 * col_words(&s)];
            col.fill(-91);
            let a = conv_i8_from(&s, &w, source, up, col, &mut want[..n]);
            col.fill(90);
            got[..n].fill(0x1234_5678);
            let b = conv_i8_packed(&s, &w, source, up, col, &mut got[..n], quant::conv_rows_dsp);
            col.fill(-91);
            let m = conv_i8_packed(&s, &w, source, up, col, &mut model[..n], rows_model);
            cases += 1;
            direct += u32::from(b == Ok(true));
            if a.is_err()
                || b != Ok(true)
                || m != Ok(true)
                || got[..n] != want[..n]
                || model[..n] != want[..n]
            {
                mismatches += 1;
                if mismatches <= 5 {
                    let _ = writeln!(
                        out,
                        "# conv mismatch c_in={c_in} l_in={l_in} c_out={c_out} k={k} stride={st} upsample={up} i16={i16_source} {b:?} {m:?}"
                    );
                }
            }
        }
    }
    (cases, direct, mismatches)
}

/// Instructions per MAC of the accumulators of every convolution of the ECG conv model's
/// evaluation (the shapes of [`ECG_CONV`], int16 sources where the network reads a stream):
/// the portable `conv_i8_from` and the packed DSP form, the gather/copy and the weights'
/// preparation included (not the epilogues), and of that the packing alone (`dsp_packing`: the
/// input's copy and the weights' preparation, the packed form with a kernel that does nothing).
/// `# conv_cost …` per shape and in all.
fn conv_costs(out: &mut out::Line, clock: &mut cycles::Counter) {
    use quant::conv::{conv_i8_from, ConvShape, Source};
    use quant::conv_packed::{col_words, conv_i8_packed};
    const CALLS: u64 = 4;
    let w = [0x35u8; CONV_W];
    let x8 = [0x17i8; CONV_X];
    let x16 = [0x1717i16; CONV_X];
    let mut acc = [0i32; CONV_ACC];
    let mut col = ColBytes([0; 4 * CONV_COL]);
    let (mut total, mut t_port, mut t_dsp, mut t_pack) = (0u64, 0u64, 0u64, 0u64);
    for &(c_in, l_in, c_out, k, st, up) in &ECG_CONV {
        let Some(s) = ConvShape::new(c_in, l_in, c_out, k, 1, st) else { continue };
        let src = (if up { l_in / 2 } else { l_in }) * c_in;
        // The strided and upsampling convolutions read an int16 stream.
        let source = if st == 2 || up { Source::I16(&x16[..src]) } else { Source::I8(&x8[..src]) };
        let macs = (s.acc_len() * s.cols()) as u64;
        let col = &mut col.0[..4 * col_words(&s)];
        let n = s.acc_len();
        let t0 = clock.now();
        for _ in 0..CALLS {
            let _ = black_box(conv_i8_from(&s, black_box(&w), source, up, col, &mut acc[..n]));
        }
        let port = (clock.now() - t0) * 40 / CALLS;
        let t0 = clock.now();
        for _ in 0..CALLS {
            let _ = black_box(conv_i8_packed(
                &s,
                black_box(&w),
                source,
                up,
                col,
                &mut acc[..n],
                quant::conv_rows_dsp,
            ));
        }
        let dsp = (clock.now() - t0) * 40 / CALLS;
        // The packing alone: the same call with a kernel that does nothing.
        let none = |_: &[u8], _: usize, _: usize, _: usize, _: &[u32], _: &mut [i32], _: usize| true;
        let t0 = clock.now();
        for _ in 0..CALLS {
            let _ = black_box(conv_i8_packed(&s, black_box(&w), source, up, col, &mut acc[..n], none));
        }
        let pack = (clock.now() - t0) * 40 / CALLS;
        let _ = writeln!(
            out,
            "# conv_cost c_in={c_in} l_in={l_in} c_out={c_out} k={k} stride={st} upsample={up} macs={macs} instructions: portable={port} dsp={dsp} dsp_packing={pack} per_mac_x1000: portable={} dsp={}",
            port * 1000 / macs,
            dsp * 1000 / macs
        );
        total += macs;
        t_port += port;
        t_dsp += dsp;
        t_pack += pack;
    }
    let _ = writeln!(
        out,
        "# conv_cost all macs={total} instructions: portable={t_port} dsp={t_dsp} dsp_packing={t_pack} per_mac_x1000: portable={} dsp={} dsp_packing={}",
        t_port * 1000 / total,
        t_dsp * 1000 / total,
        t_pack * 1000 / total
    );
}

/// Rows of the layers of [`epilogue_property_test`].
const EPI_H: usize = 24;

impl Rng {
    /// A value in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

/// Runs the M4 epilogue ([`quant::epilogue_tile`]: its requantization pass and the assembly
/// of its second pass, `SSAT`/`QADD`/`SMMLA`) against the scalar definition
/// [`quant::epilogue`] on random layers of up to 24 rows and 0–9 vectors, the three kinds each
/// (and the convolution's twin on the same vectors side by side, [`quant::epilogue_vectors`]):
/// accumulators up to their bound `cols·2^14` (the bound itself mixed in), biases small or up
/// to ±2^30, shifts all in 28..=44 (one pre-shift per layer) or some anywhere in 1..=62,
/// residual shifts in 1..=62 (the assembly takes 17..=46), random tables and residual streams.
/// Returns (cases, mismatches).
fn epilogue_property_test(out: &mut out::Line) -> (u32, u32) {
    let mut r = Rng(0x0E91_0605_5EED_F0A4);
    let (mut cases, mut mismatches) = (0u32, 0u32);
    for case in 0..600usize {
        let n = case % 10;
        let rows = r.range(0, EPI_H as i64) as usize;
        let cols = r.range(1, 512) as u32;
        let acc_max = cols * (1 << 14);
        let m = acc_max as i64;
        let (wide_shifts, large_biases) = (case % 3 == 0, case % 5 == 0);
        let mut rq = [0u8; 12 * EPI_H];
        for t in rq.chunks_exact_mut(12) {
            let bias = match r.range(0, 2) {
                0 if large_biases => r.range(-(1 << 30), 1 << 30),
                _ => r.range(-100_000, 100_000),
            } as i32;
            let mul = r.range(quant::MULT_MIN as i64, i32::MAX as i64) as i32;
            let shift = match r.range(0, 2) {
                0 if wide_shifts => r.range(1, 62),
                _ => r.range(28, 44),
            } as i32;
            for (k, v) in [bias, mul, shift].into_iter().enumerate() {
                t[4 * k..4 * k + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
        let mut acc = [[0i32; EPI_H]; 9];
        for (k, v) in acc.as_flattened_mut().iter_mut().enumerate() {
            *v = match k % 7 {
                0 => -m,
                1 => m,
                _ => r.range(-m, m),
            } as i32;
        }
        let table: [u8; 256] = core::array::from_fn(|_| r.next() as u8);
        let add: [i32; EPI_H] = core::array::from_fn(|_| r.range(-(1 << 29), 1 << 29) as i32);
        let h0: [[i16; EPI_H]; 9] = core::array::from_fn(|_| core::array::from_fn(|_| r.next() as i16));
        let (mr, nr) = (r.range(quant::MULT_MIN as i64, i32::MAX as i64) as i32, r.range(1, 62) as u32);
        for kind in 0..3 {
            let (mut want_h, mut want_o) = (h0, [[0i8; EPI_H]; 9]);
            let (mut got_h, mut got_o) = (h0, [[0i8; EPI_H]; 9]);
            let make = |h: &mut [[i16; EPI_H]],
                        o: &mut [[i8; EPI_H]],
                        f: &mut dyn FnMut(TileEpilogue<'_, EPI_H>)| {
                f(match kind {
                    0 => TileEpilogue::ToI16 { out: h, table: &table, silu: o },
                    1 => TileEpilogue::Table { add: &add, table: &table, out: o },
                    _ => TileEpilogue::Residual { mr, nr, h, table: &table, silu: o },
                })
            };
            make(&mut want_h[..n], &mut want_o[..n], &mut |e| {
                quant::epilogue(&rq, acc[..n].as_flattened(), EPI_H, n, 0..rows, EPI_H, &mut e.flat())
            });
            let mut acc2 = acc;
            make(&mut got_h[..n], &mut got_o[..n], &mut |e| {
                let form = quant::LayerForm::new(&rq, rows, e.add(), acc_max);
                quant::epilogue_tile(&rq, &mut acc2[..n], rows, form, e)
            });
            // The convolution's twin (`quant::epilogue_vectors`): the n vectors of `rows` values
            // side by side; in odd cases requantized at once and finished vector by vector.
            let mut accf = [0i32; 9 * EPI_H];
            let (mut hf, mut of) = ([0i16; 9 * EPI_H], [0i8; 9 * EPI_H]);
            for s in 0..n {
                accf[s * rows..(s + 1) * rows].copy_from_slice(&acc[s][..rows]);
                hf[s * rows..(s + 1) * rows].copy_from_slice(&h0[s][..rows]);
            }
            let len = n * rows;
            let vectors = |h: &mut [i16], o: &mut [i8], f: &mut dyn FnMut(Epilogue<'_>)| {
                f(match kind {
                    0 => Epilogue::ToI16 { out: h, silu: Silu { table: &table, out: o } },
                    1 => Epilogue::Table { add: &add, table: &table, out: o },
                    _ => Epilogue::Residual { mr, nr, h, silu: Silu { table: &table, out: o } },
                })
            };
            let add_of = (kind == 1).then_some(&add[..]);
            let form = quant::LayerForm::new(&rq, rows, add_of, acc_max);
            if case % 2 == 0 {
                vectors(&mut hf[..len], &mut of[..len], &mut |mut e| {
                    quant::epilogue_vectors(&rq, &mut accf[..len], rows, form, &mut e)
                });
            } else if rows > 0 {
                quant::requantize_vectors(&rq, &mut accf[..len], rows, add_of, form);
                for s in 0..n {
                    let (h, o) = (&mut hf[s * rows..(s + 1) * rows], &mut of[s * rows..(s + 1) * rows]);
                    vectors(h, o, &mut |mut e| {
                        quant::finish_vectors(&accf[s * rows..(s + 1) * rows], rows, &mut e)
                    });
                }
            }
            let flat_same = (0..n).all(|s| {
                hf[s * rows..(s + 1) * rows] == want_h[s][..rows]
                    && of[s * rows..(s + 1) * rows] == want_o[s][..rows]
            });
            cases += 1;
            let same = flat_same
                && got_h == want_h
                && got_o.iter().zip(&want_o).all(|(g, w)| g[..rows] == w[..rows]);
            if !same {
                mismatches += 1;
                if mismatches <= 5 {
                    let _ = writeln!(
                        out,
                        "# epilogue mismatch case={case} kind={kind} n={n} rows={rows} nr={nr}"
                    );
                }
            }
        }
    }
    (cases, mismatches)
}

/// Largest of D and H: the vectors and outputs of [`breakdown`]'s int8 layers.
const WIDE: usize = if config::DIM > config::HIDDEN { config::DIM } else { config::HIDDEN };

/// `EVALS` evaluations as `EVALS / n` calls of [`ScoreNet::eps_batch`] with `n` vectors each (at
/// the inputs of the single-vector timing): instructions per evaluation, and the outputs whose
/// bits differ from [`ScoreNet::eps`] of the same input (computed outside the timing).
fn batch_cost(
    clock: &mut cycles::Counter,
    net: &mut ScoreNet<'_, { config::DIM }, { config::HIDDEN }, { config::FREQS }, [f32; config::ARENA]>,
    n: usize,
) -> (u64, u32) {
    let d = config::DIM;
    let mut xs = [0.0f32; MAX_BATCH * config::DIM];
    let mut outs = [0.0f32; MAX_BATCH * config::DIM];
    let mut scratch = [0.0f32; config::ARENA_BATCH];
    let mut one = [0.0f32; config::DIM];
    let (mut cycles, mut mismatches) = (0u64, 0u32);
    let calls = EVALS as usize / n;
    for c in 0..calls {
        let t = (c as f32 + 0.5) / calls as f32;
        for (j, x) in xs[..n * d].chunks_exact_mut(d).enumerate() {
            let i = c * n + j;
            for (k, v) in x.iter_mut().enumerate() {
                *v = (i as f32 * 0.37 + k as f32 * 0.11) % 2.0 - 1.0;
            }
        }
        let t0 = clock.now();
        net.eps_batch(&xs[..n * d], t, &mut outs[..n * d], &mut scratch[..net.batch_scratch_len(n)]);
        cycles += clock.now() - t0;
        for (x, o) in xs[..n * d].chunks_exact(d).zip(outs[..n * d].chunks_exact(d)) {
            net.eps(x, t, &mut one);
            mismatches += one.iter().zip(o).filter(|(a, b)| a.to_bits() != b.to_bits()).count() as u32;
        }
    }
    (cycles * 40 / (calls * n) as u64, mismatches)
}

impl Rng {
    /// An f32 of the property test: one in 16 is ±0, one in 16 subnormal, the rest normal with
    /// an exponent in `-e..=e` (e = 127: the whole range, products overflow to ±inf and give
    /// NaN); with `specials`, one in 32 is ±inf and one in 32 a NaN with a random payload.
    fn f32(&mut self, e: i32, specials: bool) -> f32 {
        let r = self.next();
        let sign = ((r >> 63) as u32) << 31;
        let man = (r >> 8) as u32 & 0x007F_FFFF;
        let bits = match r % 32 {
            0 | 1 => sign,
            2 | 3 => sign | man.max(1),
            4 if specials => sign | 0x7F80_0000,
            5 if specials => sign | 0x7F80_0000 | man.max(1),
            _ => {
                let exp = ((r >> 32) % (2 * e as u64 + 1)) as i32 - e;
                sign | (((exp + 127).clamp(1, 254) as u32) << 23) | man
            }
        };
        f32::from_bits(bits)
    }
}

/// Weights at byte offsets 0..4 of a word-aligned buffer (f32: 512 columns).
#[repr(C, align(4))]
struct RowF32([u8; 4 * 512 + 4]);

/// What [`vfp_property_test`] found.
struct VfpResult {
    cases: u32,
    mismatches: u32,
    /// Cases the assembly computed directly (aligned f32 rows, every int8 row).
    direct: u32,
    /// Cases whose portable result is a NaN, and those where the kernel's NaN has other bits.
    nan_cases: u32,
    payload_diffs: u32,
}

/// Runs the FPU kernel ([`linalg::vfp_dot_f32w`], [`linalg::vfp_dot_i8w`], and through the
/// dispatching [`linalg::dot_f32w`] / [`linalg::dot_i8w`] the network uses) against the portable
/// [`linalg::dot`] on every length 0..=512: f32 weights with moderate values (exponents ±20),
/// wide ones (±60: cancellation, no overflow), the whole range with ±inf and NaNs mixed in
/// (overflow, underflow); ±0 and subnormals in every round; rows at
/// byte offsets 0–3 (the kernel refuses unaligned f32 rows; the dispatch must still agree); int8
/// weights with −128 and 127 mixed in at every byte offset. Activations start at element offsets
/// 0–2. Results must have the same bits; where the portable result is a NaN, any NaN counts as
/// agreeing and differing bits are counted apart (`nan_payload_diffs`).
fn vfp_property_test(out: &mut out::Line) -> VfpResult {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut row = RowF32([0; 4 * 512 + 4]);
    let mut xbuf = [0.0f32; 514];
    let mut v = VfpResult { cases: 0, mismatches: 0, direct: 0, nan_cases: 0, payload_diffs: 0 };
    for round in 0..5usize {
        for cols in 0..=512usize {
            let int8 = round >= 3;
            let (e, specials) = match round {
                0 | 3 => (20, false),
                1 => (60, false),
                _ => (127, true),
            };
            let offset = if round == 0 { 0 } else { cols % 4 };
            let xo = cols % 3;
            for b in row.0.chunks_exact_mut(4) {
                if int8 {
                    for byte in b.iter_mut() {
                        *byte = rng.i8() as u8;
                    }
                } else {
                    b.copy_from_slice(&rng.f32(e, specials).to_le_bytes());
                }
            }
            for x in xbuf.iter_mut() {
                *x = rng.f32(e, specials);
            }
            let x = &xbuf[xo..xo + cols];
            let (want, via, direct) = if int8 {
                let w = &row.0[offset..offset + cols];
                let want = linalg::dot::<1>(w, x, |b| b[0] as i8 as f32);
                (want, linalg::dot_i8w(w, x), linalg::vfp_dot_i8w(w, x))
            } else {
                let w = &row.0[offset..offset + 4 * cols];
                let want = linalg::dot::<4>(w, x, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                (want, linalg::dot_f32w(w, x), linalg::vfp_dot_f32w(w, x))
            };
            v.cases += 1;
            v.direct += u32::from(direct.is_some());
            // The direct kernel refuses exactly the unaligned f32 rows.
            let refused_ok = direct.is_some() == (int8 || offset == 0);
            let mut bad = !refused_ok;
            for got in [Some(via), direct].into_iter().flatten() {
                if want.is_nan() {
                    bad |= !got.is_nan();
                    v.payload_diffs += u32::from(got.is_nan() && got.to_bits() != want.to_bits());
                } else {
                    bad |= got.to_bits() != want.to_bits();
                }
            }
            v.nan_cases += u32::from(want.is_nan());
            if bad {
                v.mismatches += 1;
                if v.mismatches <= 5 {
                    let _ = writeln!(
                        out,
                        "# vfp mismatch round={round} cols={cols} offset={offset}: portable {:08x} dispatch {:08x} kernel {:?}",
                        want.to_bits(),
                        via.to_bits(),
                        direct.map(f32::to_bits)
                    );
                }
            }
        }
    }
    v
}

/// Instructions per MAC of one row's dot product, f32 and int8 weights, portable and FPU kernel,
/// at 128 and 512 columns (`-icount shift=0`: 40 instructions per SysTick cycle), call included.
fn dot_costs(out: &mut out::Line, clock: &mut cycles::Counter) {
    const CALLS: u64 = 200;
    let row = RowF32([0x3c; 4 * 512 + 4]);
    let x = [0.5f32; 512];
    for cols in [128usize, 512] {
        let (w4, w1, x) = (&row.0[..4 * cols], &row.0[..cols], &x[..cols]);
        let mut per_mac = [0u64; 4];
        for (k, cost) in per_mac.iter_mut().enumerate() {
            let t0 = clock.now();
            for _ in 0..CALLS {
                let (w4, w1, x) = (black_box(w4), black_box(w1), black_box(x));
                black_box(match k {
                    0 => linalg::dot::<4>(w4, x, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                    1 => linalg::dot_f32w(w4, x),
                    2 => linalg::dot::<1>(w1, x, |b| b[0] as i8 as f32),
                    _ => linalg::dot_i8w(w1, x),
                });
            }
            *cost = (clock.now() - t0) * 40 * 1000 / (CALLS * cols as u64);
        }
        let _ = writeln!(
            out,
            "# dot_cost cols={cols} instr_per_mac_x1000: f32 portable={} kernel={} int8 portable={} kernel={}",
            per_mac[0], per_mac[1], per_mac[2], per_mac[3]
        );
    }
    // The int8 × int8 kernels on prepared activations: one vector (`Prepared::dot`, the
    // `SMLAD` kernel), tiles of 2 and 4 (`PreparedTile::dots`, the multi-vector kernel).
    let xs = [[0x15i8; 512]; 4];
    let mut buf = [0u32; 4 * quant::prepared_words(512)];
    for cols in [128usize, 512] {
        let (w, x) = (&row.0[..cols], |i: usize| &xs[i][..cols]);
        let per_mac = |clock: &mut cycles::Counter, t0: u64, s: usize| {
            (clock.now() - t0) * 40 * 1000 / (CALLS * (s * cols) as u64)
        };
        let p = quant::Prepared::new(x(0), &mut buf);
        let t0 = clock.now();
        for _ in 0..CALLS {
            black_box(p.dot(black_box(w)));
        }
        let one = per_mac(clock, t0, 1);
        let p = quant::PreparedTile::new([x(0), x(1)], &mut buf);
        let t0 = clock.now();
        for _ in 0..CALLS {
            black_box(p.dots(black_box(w)));
        }
        let two = per_mac(clock, t0, 2);
        let p = quant::PreparedTile::new([x(0), x(1), x(2), x(3)], &mut buf);
        let t0 = clock.now();
        for _ in 0..CALLS {
            black_box(p.dots(black_box(w)));
        }
        let four = per_mac(clock, t0, 4);
        let _ = writeln!(
            out,
            "# int8_dot_cost cols={cols} instr_per_mac_x1000: one_vector={one} tile2={two} tile4={four}"
        );
    }
}

/// Instructions per evaluation of the parts of a `w8a8` evaluation (see the module comment),
/// averaged over `EVALS` runs; each section's SysTick reads are subtracted.
fn breakdown(
    out: &mut out::Line,
    clock: &mut cycles::Counter,
    model: &Model<'_>,
    per_eval: u64,
    per_eval_x4: u64,
) {
    let dims = model.dims();
    let (d, h, f, nb) = (dims.dim, dims.hidden, dims.freqs, dims.blocks);
    let (mut freqs, mut phi) = ([0.0f32; config::FREQS], [0.0f32; config::FREQS]);
    net::frequencies(f, &mut freqs);
    let (mut u, mut a, mut temb) =
        ([0.0f32; config::HIDDEN], [0.0f32; config::HIDDEN], [0.0f32; config::HIDDEN]);
    let mut act = [[0i8; WIDE]; 4];
    let mut acc = [[0i32; WIDE]; 4];
    let mut words = [0u32; 4 * quant::prepared_words(WIDE)];
    let (phi, u, a, temb) = (&mut phi[..f], &mut u[..h], &mut a[..h], &mut temb[..h]);
    let mut layers = [(Role::InputW, d); 2 + 2 * 8];
    let n_layers = 2 + 2 * nb.min(8);
    for b in 0..nb.min(8) {
        layers[1 + 2 * b] = (Role::BlockW1(b as u8), h);
        layers[2 + 2 * b] = (Role::BlockW2(b as u8), h);
    }
    layers[n_layers - 1] = (Role::OutputW, h);
    // The int8 layers' dot products of `n` vectors as the network forms them.
    let mut int8_dots = |act: &[[i8; WIDE]], acc: &mut [[i32; WIDE]]| {
        for &(role, cols) in &layers[..n_layers] {
            let w = model.tensor(role);
            quant::matmul_prepared(w.data(), w.cols, w.rows, cols, act, acc, &mut words);
        }
    };
    // The int8 layers' epilogues (requantization, saturation, SiLU tables, the residual add) of
    // `n` vectors, as the network runs them on the M4 (`quant::epilogue_tile`; group 0's
    // constants), on the dot products in `acc`.
    let rq = model.tensor(Role::ActRequant).row_bytes(0);
    let luts = model.tensor(Role::ActLut).row_bytes(0);
    let table = |k: usize| &luts[256 * k..256 * k + 256];
    let triples = |c: usize| &rq[4 * c..4 * (c + 3 * h)];
    let rq_at = |c: usize| i32::from_le_bytes([rq[4 * c], rq[4 * c + 1], rq[4 * c + 2], rq[4 * c + 3]]);
    let tq = [0x1234i32; WIDE];
    let mut h16 = [[0i16; WIDE]; 4];
    let epilogues = |acc: &mut [[i32; WIDE]], h16: &mut [[i16; WIDE]], act: &mut [[i8; WIDE]]| {
        // (Each layer's form found here, as `eps` does; `eps_batch` finds them once per call.)
        let run = |rq: &[u8], acc: &mut [[i32; WIDE]], cols: usize, e: TileEpilogue<'_, WIDE>| {
            let form = quant::LayerForm::new(rq, h, e.add(), cols as u32 * (1 << 14));
            quant::epilogue_tile(rq, acc, h, form, e);
        };
        let e = TileEpilogue::ToI16 { out: &mut *h16, table: table(layout::lut_h(0)), silu: &mut *act };
        run(triples(layout::input(h)), &mut *acc, d, e);
        for b in 0..nb {
            let e = TileEpilogue::Table { add: &tq[..h], table: table(layout::lut_u(nb, b)), out: &mut *act };
            run(triples(layout::w1(h, b)), &mut *acc, h, e);
            let c = layout::residual(h, b);
            let (mr, nr) = (rq_at(c), rq_at(c + 1) as u32);
            let e = TileEpilogue::Residual {
                mr,
                nr,
                h: &mut *h16,
                table: table(layout::lut_h(b + 1)),
                silu: &mut *act,
            };
            run(triples(layout::w2(h, b)), &mut *acc, h, e);
        }
    };
    // [clock reads, φ(t), W_t1·φ + b, SiLU, W_t2·a + b, int8 dots, int8 dots of 4 vectors,
    //  epilogues, epilogues of 4 vectors]
    let mut sum = [0u64; 9];
    for i in 0..EVALS {
        let t = (i as f32 + 0.5) / EVALS as f32;
        for (j, a) in act.iter_mut().enumerate() {
            for (k, v) in a.iter_mut().enumerate() {
                *v = ((i as usize * 7 + j * 3 + k * 13) % 255) as i8;
            }
        }
        let c0 = clock.now();
        let c1 = clock.now();
        net::time_features_from(&freqs, black_box(t), phi);
        let c2 = clock.now();
        u.fill(0.0);
        model.tensor(Role::TimeW1).matvec_acc(phi, u);
        model.tensor(Role::TimeB1).add_to(u);
        let c3 = clock.now();
        for (o, &v) in a.iter_mut().zip(u.iter()) {
            *o = net::silu(v);
        }
        let c4 = clock.now();
        temb.fill(0.0);
        model.tensor(Role::TimeW2).matvec_acc(a, temb);
        model.tensor(Role::TimeB2).add_to(temb);
        let c5 = clock.now();
        int8_dots(&act[..1], &mut acc[..1]);
        let c6 = clock.now();
        int8_dots(&act, &mut acc);
        let c7 = clock.now();
        // (The epilogues requantize in place: copies of the dot products, made untimed.)
        let (mut acc1, mut acc4, mut act2) = (acc, acc, act);
        let c7b = clock.now();
        epilogues(&mut acc1[..1], &mut h16[..1], &mut act2[..1]);
        let c8 = clock.now();
        epilogues(&mut acc4, &mut h16, &mut act2);
        let c9 = clock.now();
        black_box((&acc, &temb, &act2, &h16, &acc1, &acc4));
        let d = [c1 - c0, c2 - c1, c3 - c2, c4 - c3, c5 - c4, c6 - c5, c7 - c6, c8 - c7b, c9 - c8];
        for (s, dc) in sum.iter_mut().zip(d) {
            *s += dc;
        }
    }
    let read = sum[0];
    let part = |k: usize| (sum[k].saturating_sub(read)) * 40 / u64::from(EVALS);
    let parts = [part(1), part(2), part(3), part(4), part(5), part(7)];
    let rest = per_eval.saturating_sub(parts.iter().sum::<u64>());
    let _ = writeln!(
        out,
        "# breakdown instructions_per_eval: time_features={} temb_w1={} silu={} temb_w2={} int8_dots={} epilogues={} rest={rest} (total {per_eval})",
        parts[0], parts[1], parts[2], parts[3], parts[4], parts[5]
    );
    // eps_batch of 4: the time embedding once per call (a quarter per evaluation), the dot
    // products of four vectors at a time.
    let temb4 = (parts[0] + parts[1] + parts[2] + parts[3]) / 4;
    let dots4 = part(6) / 4;
    let epilogues4 = part(8) / 4;
    let rest4 = per_eval_x4.saturating_sub(temb4 + dots4 + epilogues4);
    let _ = writeln!(
        out,
        "# breakdown_x4 instructions_per_eval: time_embedding={temb4} int8_dots={dots4} epilogues={epilogues4} rest={rest4} (total {per_eval_x4})"
    );
}
