//! tinyscore firmware example: draws samples from a score-based diffusion model embedded in
//! flash, on a Cortex-M4F, M0, M33 or a 32-bit RISC-V core (`src/platform/`), bit for bit what `tinyscore sample` prints on the host; or (built with
//! `TINYSCORE_MODE=denoise`) denoises windows of a signal embedded in flash, bit for bit what
//! `tinyscore denoise` prints; or (built with `TINYSCORE_MODE=stream`) takes the samples of a
//! noisy signal embedded in flash one by one, at a paced rate, through the engine's streaming
//! denoiser and prints each denoised sample as it comes out, bit for bit what
//! `tinyscore denoise --stream` prints; or (built with `TINYSCORE_MODE=impute`) fills the masked
//! gaps of windows embedded in flash, bit for bit what `tinyscore denoise --mask` prints. Samples
//! are drawn `TINYSCORE_BATCH` at a time in lockstep (`sampler::draw_batch`; 8 for a w8a8 file).
//!
//! What it prints (plain text; see README.md for why):
//!
//! ```text
//! # tinyscore firmware: model=moons-f32.tsm sampler=ddpm steps=100 seed=42 n=8 batch=1
//! -0.7356874,0.6275866     one CSV line per sample i = 0..N, values as Rust's `{}` for f32
//! ...
//! # cycles=...             SysTick cycles spent sampling (see README.md: meaning under QEMU)
//! # stack_bytes=...        stack high-water mark, from the painted stack
//! ```
//!
//! In `denoise` mode the first line is
//! `# tinyscore firmware: mode=denoise model=FILE input=FILE method=M sigma=S seed=K n=W`
//! (`method=sdedit steps=S draws=K` for SDEdit; `sigma=auto` when estimated), one CSV line per
//! denoised window, then `# sigma=...` (the noise level used), `# cycles=`, `# stack_bytes=`.
//!
//! In `stream` mode the first line is
//! `# tinyscore firmware: mode=stream model=FILE input=FILE method=M sigma=S hop=H taper=T seed=K
//! rate=R n=N`, then one line per output sample (N in all, the last W − 1 from the final flush),
//! then `# sigma=` (the level of the last window, `-` before any), `# nan=A clamped=B` (the input
//! check's counts), `# push_cycles_max=` (the worst `push`), `# flush_cycles=`, `# late=` (samples
//! that arrived before the previous one was done: the device fell behind), `# cycles=` (all pushes
//! and the flush), `# stack_bytes=`.
//!
//! In `impute` mode the first line is `# tinyscore firmware: mode=impute model=FILE input=FILE
//! mask=FILE steps=S draws=K resample=R seed=K n=W`, one CSV line per window with its gaps
//! filled, then `# cycles=`, `# stack_bytes=`.
//!
//! Everything is static or on the stack: the model stays in flash (parsed zero-copy), the
//! network's buffers live in the `ScoreNet` on main's stack, sized by const generics that
//! build.rs sets to the model's own D, H, F.
#![no_std]
#![no_main]
#![deny(missing_docs)]

mod cycles;
mod float;
mod out;
mod platform;
mod stack;

use core::fmt::Write as _;

use tinyscore_engine::denoise::{self, Method};
use tinyscore_engine::format::Model;
use tinyscore_engine::net::ScoreNet;
use tinyscore_engine::sampler::{
    draw, draw_batch, Ddim, Ddpm, Dpmpp, DpmppSde, Em, Langevin, OdeEuler, OdeHeun, Pc, Plan, Predictor,
    Sampler, Timesteps, UniPc, Variance,
};
use tinyscore_engine::schedule::Diffusion;
use tinyscore_engine::stream::{NetDenoiser, Sigma, Stream, Taper};

/// Build-time configuration: `MODEL_FILE`, `DENOISE`, `STREAM`, `SAMPLER`, `STEPS`, `SEED`, `N`, the
/// denoise settings `METHOD`, `SIGMA_BITS`, `DRAWS`, the input `INPUT_FILE`, `WINDOWS`,
/// `INPUT_BITS`, and the stream settings `HOP`, `TAPER`, `RATE_HZ`, `TICK_HZ`, `SIGNAL_FILE`,
/// `SIGNAL`, and the capacities `DIM`, `HIDDEN`, `FREQS` read from the model by build.rs.
mod config {
    include!(concat!(env!("OUT_DIR"), "/config.rs"));
}

/// Bytes with the 16-byte alignment the `.tsm` format gives its tensors, so the engine can
/// read them in place. `#[repr(C)]` keeps the bytes at offset 0 of the wrapper.
#[repr(C, align(16))]
struct Aligned<T: ?Sized>(T);

/// The model file, in flash (`.rodata`), never copied to RAM.
static MODEL: Aligned<[u8; config::MODEL_LEN]> =
    Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/model.tsm")));

/// The network type for this model: capacities D, H, F equal to the model's own sizes, and its
/// f32 arena (the words its layer graph plans) borrowed from `main`'s frame.
type Net<'a> = ScoreNet<'a, { config::DIM }, { config::HIDDEN }, { config::FREQS }>;

/// The sampler named by `TINYSCORE_SAMPLER`, with `tinyscore sample`'s default settings.
fn plan(name: &str, steps: u32) -> Plan {
    let sampler = match name {
        "ddim" => Sampler::Ddim(Ddim { steps, eta: 0.0 }),
        "em" => Sampler::Em(Em { steps }),
        "ode-euler" => Sampler::OdeEuler(OdeEuler { steps }),
        "ode-heun" => Sampler::OdeHeun(OdeHeun { steps }),
        "langevin" => Sampler::Langevin(Langevin { steps, per_level: 10, step: 0.1 }),
        "pc" => {
            Sampler::Pc(Pc { steps, predictor: Predictor::ReverseDiffusion, corrector_steps: 1, snr: 0.16 })
        }
        "dpmpp-2m" => Sampler::Dpmpp(Dpmpp { steps, order: 2, timesteps: Timesteps::default() }),
        "dpmpp-3m" => Sampler::Dpmpp(Dpmpp { steps, order: 3, timesteps: Timesteps::default() }),
        "dpmpp-sde" => Sampler::DpmppSde(DpmppSde { steps, order: 2, timesteps: Timesteps::default() }),
        "unipc" => Sampler::UniPc(UniPc { steps, order: 2, timesteps: Timesteps::default() }),
        _ => Sampler::Ddpm(Ddpm { steps, variance: Variance::Posterior }),
    };
    sampler.into()
}

/// The program: cortex-m-rt's entry on Cortex-M; on RISC-V `platform::riscv`'s `_start` calls it.
#[cfg_attr(target_arch = "arm", cortex_m_rt::entry)]
fn main() -> ! {
    let mut out = out::Line::new(platform::Console::open());
    let mut clock = cycles::Counter::start();
    if config::STREAM {
        stream_header(&mut out);
    } else if config::IMPUTE {
        impute_header(&mut out);
    } else if config::DENOISE {
        denoise_header(&mut out);
    } else {
        sample_header(&mut out);
    }
    // The network lives here; the process (8 KiB) only in the frame of the run below, so the
    // stack never holds it together with the temporaries of parsing (see `build_schedule`).
    let mut arena = [0.0f32; config::ARENA];
    let mut net = None;
    let net = build_net(&mut net, &mut arena);
    let busy = if config::STREAM {
        run_stream(net, &mut out, &mut clock)
    } else if config::IMPUTE {
        run_impute(net, &mut out, &mut clock)
    } else if config::DENOISE {
        run_denoise(net, &mut out, &mut clock)
    } else {
        run_sample(net, &mut out, &mut clock)
    };
    let _ = writeln!(out, "# cycles={busy}");
    let _ = writeln!(out, "# stack_bytes={}", stack::high_water_bytes());
    out.flush();
    platform::exit_success()
}

/// One CSV line as the host writes it: `{}` of each f32 ([`write_f32`]), comma-separated.
fn write_row(out: &mut out::Line, row: &[f32]) {
    for (k, &v) in row.iter().enumerate() {
        if k > 0 {
            let _ = out.write_str(",");
        }
        let _ = write_f32(out, v);
    }
    let _ = writeln!(out);
}

/// `v` as the host prints it, `format!("{v}")`. Where panics print their messages, core links
/// its float formatting anyway (its own messages format floats, `f32::clamp`'s for one), so
/// `{}` costs nothing more; built with `terse-panic` nothing else needs it, and `float.rs`
/// writes the same text in 2.5 KB of flash instead of 11.6 KB.
fn write_f32(out: &mut out::Line, v: f32) -> core::fmt::Result {
    if cfg!(feature = "terse-panic") {
        float::write_f32(out, v)
    } else {
        write!(out, "{v}")
    }
}

/// Parses the embedded model (validated once, at the edge: after this nothing can fail on the
/// file) and wraps it in the network, in `slot`; returns the network.
#[inline(never)]
fn build_net<'s>(slot: &'s mut Option<Net<'s>>, arena: &'s mut [f32]) -> &'s mut Net<'s> {
    match Model::parse(&MODEL.0) {
        Ok(model) => match ScoreNet::new(model, arena) {
            Ok(net) => slot.insert(net),
            Err(e) => panic!("{}: {e}", config::MODEL_FILE),
        },
        Err(e) => panic!("{}: {e}", config::MODEL_FILE),
    }
}

/// Builds the model's diffusion process in `slot`, in place (`Process::diffusion_into`).
///
/// Built by value (`process().diffusion()`) and unwrapped, the process (two ᾱ tables of 1001
/// f32, 8 KiB) is moved, and sat on the stack about three times at the peak, beside the
/// temporaries of parsing: 26.5 KiB of stack for the moons model then, 15–17 KiB now.
#[inline(never)]
fn build_schedule(net: &Net<'_>, slot: &mut Diffusion) {
    if let Err(e) = net.model().process().diffusion_into(slot) {
        panic!("{}: {e}", config::MODEL_FILE)
    }
}

/// `# tinyscore firmware: model=FILE sampler=NAME steps=S seed=K n=N batch=K`.
fn sample_header(out: &mut out::Line) {
    let _ = writeln!(
        out,
        "# tinyscore firmware: model={} sampler={} steps={} seed={} n={} batch={}",
        config::MODEL_FILE,
        config::SAMPLER,
        config::STEPS,
        config::SEED,
        config::N,
        config::BATCH
    );
}

/// Draws samples i = 0..N and prints them; returns the cycles spent in `draw`.
#[inline(never)]
fn run_sample(net: &mut Net<'_>, out: &mut out::Line, clock: &mut cycles::Counter) -> u64 {
    let mut schedule = Diffusion::UNBUILT;
    build_schedule(net, &mut schedule);
    let sampler = plan(config::SAMPLER, config::STEPS);
    if config::BATCH > 1 {
        return run_sample_lockstep(net, &schedule, &sampler, out, clock);
    }
    // (D,) one sample in data units.
    let mut x = [0.0f32; config::DIM];
    let mut busy: u64 = 0;
    for i in 0..config::N {
        let t0 = clock.now();
        draw(net, &schedule, &sampler, config::SEED, i, &mut x).unwrap_or_else(|e| panic!("sample {i}: {e}"));
        busy += clock.now() - t0;
        write_row(out, &x);
    }
    busy
}

/// Draws samples i = 0..N in blocks of BATCH in lockstep (`draw_batch`: one batched network
/// evaluation per step for the block, each sample's noise its own Philox stream, so the bits of
/// `draw` one at a time) and prints them; returns the cycles spent in `draw_batch`.
#[inline(never)]
fn run_sample_lockstep(
    net: &mut Net<'_>,
    schedule: &Diffusion,
    sampler: &Plan,
    out: &mut out::Line,
    clock: &mut cycles::Counter,
) -> u64 {
    // (BATCH, D) a block's samples in data units, and the batch's f32 arena
    // (footprint::lockstep_bytes counts both, with the chains' state inside `draw_batch`).
    let mut xs = [0.0f32; config::BATCH * config::DIM];
    let mut scratch = [0.0f32; config::LOCKSTEP_ARENA];
    let mut busy: u64 = 0;
    let mut first = 0u32;
    while first < config::N {
        let k = (config::N - first).min(config::BATCH as u32) as usize;
        let block = &mut xs[..k * config::DIM];
        let t0 = clock.now();
        draw_batch::<{ config::BATCH * config::DIM }, _, _, _, _>(
            net,
            schedule,
            sampler,
            config::SEED,
            first,
            &mut scratch,
            block,
        )
        .unwrap_or_else(|e| panic!("samples {first}..: {e}"));
        busy += clock.now() - t0;
        for row in block.chunks_exact(config::DIM) {
            write_row(out, row);
        }
        first += k as u32;
    }
    busy
}

/// The denoising method of the build settings.
fn method() -> Method {
    match config::METHOD {
        "sdedit" => Method::Sdedit { steps: config::STEPS, draws: config::DRAWS },
        _ => Method::Tweedie,
    }
}

/// `# tinyscore firmware: mode=MODE model=FILE input=FILE method=M [steps=S draws=K] sigma=S`,
/// the start of the denoise and stream headers.
fn denoiser_header(out: &mut out::Line, mode: &str, input: &str) {
    let _ = write!(
        out,
        "# tinyscore firmware: mode={mode} model={} input={input} method={}",
        config::MODEL_FILE,
        config::METHOD
    );
    if let Method::Sdedit { steps, draws } = method() {
        let _ = write!(out, " steps={steps} draws={draws}");
    }
    let _ = match sigma_setting() {
        Some(s) => out.write_str(" sigma=").and_then(|()| write_f32(out, s)),
        None => write!(out, " sigma=auto"),
    };
}

/// `# tinyscore firmware: mode=denoise model=FILE input=FILE method=M [steps=S draws=K]
/// sigma=S seed=K n=W`.
fn denoise_header(out: &mut out::Line) {
    denoiser_header(out, "denoise", config::INPUT_FILE);
    let _ = writeln!(out, " seed={} n={}", config::SEED, config::WINDOWS);
}

/// Denoises the embedded windows and prints them as `tinyscore denoise --out -` does, then
/// `# sigma=` (the level used); returns the cycles spent estimating σ and denoising.
#[inline(never)]
fn run_denoise(net: &mut Net<'_>, out: &mut out::Line, clock: &mut cycles::Counter) -> u64 {
    let mut schedule = Diffusion::UNBUILT;
    build_schedule(net, &mut schedule);
    let t0 = clock.now();
    let sigma = sigma_setting().unwrap_or_else(estimate_sigma);
    let mut busy = clock.now() - t0;
    // (D,) one window, denoised in place in data units.
    let mut window = [0.0f32; config::DIM];
    for (i, row) in config::INPUT_BITS.chunks_exact(config::DIM).enumerate() {
        for (w, &bits) in window.iter_mut().zip(row) {
            *w = f32::from_bits(bits);
        }
        let t0 = clock.now();
        denoise::denoise(net, &schedule, method(), sigma, config::SEED, i as u32, &mut window)
            .unwrap_or_else(|e| panic!("window {i}: {e}"));
        busy += clock.now() - t0;
        write_row(out, &window);
    }
    let _ = out.write_str("# sigma=").and_then(|()| write_f32(out, sigma));
    let _ = writeln!(out);
    busy
}

/// `TINYSCORE_SIGMA`: σ in data units, or `None` for `auto`.
fn sigma_setting() -> Option<f32> {
    config::SIGMA_BITS.map(f32::from_bits)
}

/// `--sigma auto`: the engine's MAD estimate over the first differences of all windows pooled,
/// as `tinyscore denoise` computes it. Its scratch, (WINDOWS·(D − 1),) f32, lives only in this
/// call.
#[inline(never)]
fn estimate_sigma() -> f32 {
    let mut diffs = [0.0f32; config::WINDOWS * (config::DIM - 1)];
    let mut k = 0;
    for row in config::INPUT_BITS.chunks_exact(config::DIM) {
        for pair in row.windows(2) {
            diffs[k] = f32::from_bits(pair[1]) - f32::from_bits(pair[0]);
            k += 1;
        }
    }
    denoise::sigma_from_differences(&mut diffs)
}

/// `# tinyscore firmware: mode=impute model=FILE input=FILE mask=FILE steps=S draws=K
/// resample=R seed=K n=W`.
fn impute_header(out: &mut out::Line) {
    let _ = writeln!(
        out,
        "# tinyscore firmware: mode=impute model={} input={} mask={} steps={} draws={} resample={} seed={} n={}",
        config::MODEL_FILE,
        config::INPUT_FILE,
        config::MASK_FILE,
        config::STEPS,
        config::DRAWS,
        config::RESAMPLE,
        config::SEED,
        config::WINDOWS
    );
}

/// Fills the gaps of the embedded windows (the mask's 0 entries) by the engine's imputation and
/// prints the windows as `tinyscore denoise --mask M --out -` does; returns the cycles spent in
/// `impute`.
#[inline(never)]
fn run_impute(net: &mut Net<'_>, out: &mut out::Line, clock: &mut cycles::Counter) -> u64 {
    let mut schedule = Diffusion::UNBUILT;
    build_schedule(net, &mut schedule);
    // (D,) one window in data units, its gap filled in place.
    let mut window = [0.0f32; config::DIM];
    let mut busy: u64 = 0;
    let rows = config::INPUT_BITS.chunks_exact(config::DIM).zip(config::MASK.chunks_exact(config::DIM));
    for (i, (row, known)) in rows.enumerate() {
        for (w, &bits) in window.iter_mut().zip(row) {
            *w = f32::from_bits(bits);
        }
        let t0 = clock.now();
        denoise::impute(
            net,
            &schedule,
            config::STEPS,
            config::DRAWS,
            config::RESAMPLE,
            config::SEED,
            i as u32,
            known,
            &mut window,
        )
        .unwrap_or_else(|e| panic!("window {i}: {e}"));
        busy += clock.now() - t0;
        write_row(out, &window);
    }
    busy
}

/// `# tinyscore firmware: mode=stream model=FILE input=FILE method=M [steps=S draws=K] sigma=S
/// hop=H taper=T seed=K rate=R n=N`.
fn stream_header(out: &mut out::Line) {
    denoiser_header(out, "stream", config::SIGNAL_FILE);
    let _ = writeln!(
        out,
        " hop={} taper={} seed={} rate={} n={}",
        config::HOP,
        config::TAPER,
        config::SEED,
        config::RATE_HZ,
        config::SIGNAL.len()
    );
}

/// Streams the embedded signal through the engine's streaming denoiser, as `tinyscore denoise
/// --stream --out -` does: sample i is taken when its arrival time, i / RATE_HZ seconds after the
/// start, has come (a paced loop on the cycle counter; no pacing with RATE_HZ = 0), pushed, and
/// the sample that comes out (W − 1 samples older) is printed at once; the last W − 1 come from
/// the flush. Returns the cycles spent in `push` and `flush`.
#[inline(never)]
fn run_stream(net: &mut Net<'_>, out: &mut out::Line, clock: &mut cycles::Counter) -> u64 {
    let mut schedule = Diffusion::UNBUILT;
    build_schedule(net, &mut schedule);
    let mut den = NetDenoiser::new(net, &schedule, method(), config::SEED)
        .unwrap_or_else(|e| panic!("{}: {e}", config::MODEL_FILE));
    let sigma = match sigma_setting() {
        Some(s) => Sigma::Given(s),
        None => Sigma::Auto,
    };
    let taper = if config::TAPER == "flat" { Taper::Flat } else { Taper::Hann };
    // Capacity C = the model's W: 4 buffers of W f32 on this frame (footprint::stream_bytes).
    let mut stream: Stream<{ config::DIM }> =
        Stream::new(&den, config::HOP, taper, sigma).unwrap_or_else(|e| panic!("stream: {e}"));
    // Ticks between two samples' arrivals (0: unpaced).
    let period = config::TICK_HZ.checked_div(config::RATE_HZ).unwrap_or(0);
    let (mut busy, mut worst, mut late) = (0u64, 0u64, 0u32);
    let start = clock.now();
    for (i, &bits) in config::SIGNAL.iter().enumerate() {
        let x = f32::from_bits(bits);
        let due = start + i as u64 * period;
        let mut now = clock.now();
        if period > 0 && now >= due + period {
            late += 1; // the next sample has arrived already: this one waited in a buffer
        }
        while now < due {
            now = clock.now();
        }
        let y = stream.push(&mut den, x);
        let spent = clock.now() - now;
        busy += spent;
        worst = worst.max(spent);
        if let Some(y) = y {
            write_row(out, &[y]);
        }
    }
    // Read before the flush, which resets the stream (as the host reports them).
    let (flags, used) = (stream.flags(), stream.sigma());
    let mut tail = [0.0f32; config::DIM];
    let t0 = clock.now();
    let n = stream.flush(&mut den, &mut tail).unwrap_or_else(|e| panic!("flush: {e}"));
    let flush = clock.now() - t0;
    busy += flush;
    for y in &tail[..n] {
        write_row(out, &[*y]);
    }
    let _ = match used {
        Some(s) => out.write_str("# sigma=").and_then(|()| write_f32(out, s)).and_then(|()| writeln!(out)),
        None => writeln!(out, "# sigma=-"),
    };
    let _ = writeln!(out, "# nan={} clamped={}", flags.nan, flags.clamped);
    let _ = writeln!(out, "# push_cycles_max={worst}");
    let _ = writeln!(out, "# flush_cycles={flush}");
    let _ = writeln!(out, "# late={late}");
    busy
}
