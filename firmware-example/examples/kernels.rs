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
//! (`tools/tests/firmware_kernels.rs` does both; `docs/BENCHMARKS.md` has the figures).
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
