//! Kernel check and network cost on the Cortex-M4F (QEMU `mps2-an386`).
//!
//! 1. Property test of the engine's int8 dot-product kernels: the Cortex-M4 DSP kernel
//!    (`SMLAD`/`SXTB16`, inline assembly) against the portable one on random vectors of every
//!    length 0..=512 (every capacity the engine allows), with the extreme values −128 and 127
//!    mixed in, and on the all-extreme vectors. Prints `# kernel_cases=… kernel_mismatches=…`;
//!    a mismatch also ends the run with status 1.
//! 2. The cost of one whole network evaluation of the embedded model (`TINYSCORE_MODEL`):
//!    `EVALS` calls of `ScoreNet::eps` at different `x` and `t`, timed with SysTick. Under
//!    `-icount shift=0` one instruction is one virtual nanosecond and SysTick ticks every 40, so
//!    `# instructions_per_eval=` is exact to 40/`EVALS` instructions.
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

use cortex_m_rt::entry;
use tinyscore_engine::format::Model;
use tinyscore_engine::net::ScoreNet;
use tinyscore_engine::quant;

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

#[entry]
fn main() -> ! {
    let mut out = out::Line::new(platform::Console::open());
    let mut clock = cycles::Counter::start();

    let (cases, mismatches) = kernel_property_test(&mut out);
    let _ = writeln!(out, "# kernel_cases={cases} kernel_mismatches={mismatches}");
    if mismatches > 0 {
        panic!("the DSP kernel disagrees with the portable one in {mismatches} cases");
    }

    let model = Model::parse(&MODEL.0).unwrap_or_else(|e| panic!("{}: {e}", config::MODEL_FILE));
    let macs = model.dims().macs();
    let mut net: ScoreNet<'_, { config::DIM }, { config::HIDDEN }, { config::FREQS }> =
        ScoreNet::new(model).unwrap_or_else(|e| panic!("{}: {e}", config::MODEL_FILE));
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
