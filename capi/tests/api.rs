//! The C API through its Rust symbols: the bits of the safe Rust API, and every status.

use std::ffi::CStr;
use std::path::Path;
use std::ptr::{null, null_mut};

use tinyscore_capi::*;
use tinyscore_engine::denoise::{self, Method};
use tinyscore_engine::format::Model;
use tinyscore_engine::net::ScoreNet;
use tinyscore_engine::sampler::{draw, Ddim, Ddpm, Sampler, Variance};

/// A model file in 16-byte aligned memory (the `.tsm` tensors are aligned from the file's start).
struct Aligned(Vec<u128>, usize);

impl Aligned {
    fn load(rel: &str) -> Self {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut words = vec![0u128; bytes.len().div_ceil(16)];
        bytemuck_copy(&mut words, &bytes);
        Self(words, bytes.len())
    }
    fn bytes(&self) -> &[u8] {
        // SAFETY: the Vec holds at least `self.1` initialised bytes; u8 has no alignment needs.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast::<u8>(), self.1) }
    }
}

fn bytemuck_copy(words: &mut [u128], bytes: &[u8]) {
    for (w, chunk) in words.iter_mut().zip(bytes.chunks(16)) {
        let mut b = [0u8; 16];
        b[..chunk.len()].copy_from_slice(chunk);
        *w = u128::from_le_bytes(b);
    }
}

fn new_error() -> TsError {
    TsError { status: TsStatus::Ok, message: [0; TS_MESSAGE_LEN] }
}

fn message(err: &TsError) -> String {
    // SAFETY: the library always NUL-terminates the message within TS_MESSAGE_LEN.
    unsafe { CStr::from_ptr(err.message.as_ptr()) }.to_string_lossy().into_owned()
}

/// A session's memory (aligned as ts_required_align asks) and its handle.
struct Session {
    _memory: Vec<u64>,
    handle: *mut TsSession,
}

fn open(model: &Aligned) -> Session {
    let mut err = new_error();
    let bytes = model.bytes();
    // SAFETY: valid pointers and lengths for every call; `memory` and `model` outlive `handle`.
    unsafe {
        let need = ts_required_bytes(bytes.as_ptr(), bytes.len(), &mut err);
        assert!(need > 0, "{}", message(&err));
        assert!(ts_required_align() <= 8);
        let mut memory = vec![0u64; need.div_ceil(8)];
        let mut handle = null_mut();
        let st =
            ts_open(memory.as_mut_ptr().cast(), need, bytes.as_ptr(), bytes.len(), &mut handle, &mut err);
        assert_eq!(st, TsStatus::Ok, "{}", message(&err));
        assert_eq!(err.status, TsStatus::Ok);
        assert!(!handle.is_null());
        Session { _memory: memory, handle }
    }
}

fn rust_draw(model: &Aligned, sampler: Sampler, seed: u64, index: u32) -> Vec<f32> {
    let m = Model::parse(model.bytes()).unwrap();
    let diff = m.process().diffusion().unwrap();
    let mut arena = vec![0.0f32; ScoreNet::<256, 512, 64>::arena_len(&m)];
    let mut net: ScoreNet<'_, 256, 512, 64> = ScoreNet::new(m, &mut arena[..]).unwrap();
    let mut x = vec![0.0f32; net.dims().dim];
    draw(&mut net, &diff, &sampler.into(), seed, index, &mut x).unwrap();
    x
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn sampling_gives_the_rust_apis_bits_whole_and_step_by_step() {
    for rel in ["firmware-example/models/moons-f32.tsm", "firmware-example/models/moons-w8a8.tsm"] {
        let model = Aligned::load(rel);
        let s = open(&model);
        let mut err = new_error();
        // SAFETY: a live session and buffers of the lengths given.
        unsafe {
            let d = ts_dim(s.handle);
            assert_eq!(d, 2);
            assert_eq!(ts_process_steps(s.handle), 1000);
            for index in 0..3 {
                let expected = rust_draw(
                    &model,
                    Sampler::Ddpm(Ddpm { steps: 20, variance: Variance::Posterior }),
                    7,
                    index,
                );
                let mut whole = [0.0f32; 2];
                let st = ts_sample(
                    s.handle,
                    TsSampler::Ddpm as u32,
                    20,
                    7,
                    index,
                    whole.as_mut_ptr(),
                    2,
                    &mut err,
                );
                assert_eq!(st, TsStatus::Ok, "{}", message(&err));
                assert_eq!(bits(&whole), bits(&expected), "{rel} sample {index}");

                let mut units = 0;
                assert_eq!(
                    ts_sampler_start(s.handle, TsSampler::Ddpm as u32, 20, 7, index, &mut units, &mut err),
                    TsStatus::Ok
                );
                assert_eq!(units, 20);
                let mut left = u32::MAX;
                for k in 0..units {
                    assert_eq!(ts_sampler_step(s.handle, &mut left, &mut err), TsStatus::Ok);
                    assert_eq!(left, units - k - 1);
                }
                let mut stepped = [0.0f32; 2];
                assert_eq!(ts_sampler_read(s.handle, stepped.as_mut_ptr(), 2, &mut err), TsStatus::Ok);
                assert_eq!(bits(&stepped), bits(&expected), "{rel} sample {index}, step by step");
            }
            let expected = rust_draw(&model, Sampler::Ddim(Ddim { steps: 10, eta: 0.0 }), 3, 1);
            let mut x = [0.0f32; 2];
            assert_eq!(
                ts_sample(s.handle, TsSampler::Ddim as u32, 10, 3, 1, x.as_mut_ptr(), 2, &mut err),
                TsStatus::Ok
            );
            assert_eq!(bits(&x), bits(&expected), "{rel} DDIM");
        }
    }
}

#[test]
fn denoising_gives_the_rust_apis_bits() {
    let model = Aligned::load("firmware-example/models/ecg-w8a8.tsm");
    let s = open(&model);
    let m = Model::parse(model.bytes()).unwrap();
    let diff = m.process().diffusion().unwrap();
    let mut arena = vec![0.0f32; ScoreNet::<256, 512, 64>::arena_len(&m)];
    let mut net: ScoreNet<'_, 256, 512, 64> = ScoreNet::new(m, &mut arena[..]).unwrap();
    let window: Vec<f32> = (0..64).map(|i| (i as f32 * 0.3).sin() * 0.5).collect();
    for (method, code) in
        [(Method::Tweedie, TsMethod::Tweedie), (Method::Sdedit { steps: 5, draws: 2 }, TsMethod::Sdedit)]
    {
        let mut expected = window.clone();
        denoise::denoise(&mut net, &diff, method, 0.1, 9, 2, &mut expected).unwrap();
        let mut got = window.clone();
        let mut err = new_error();
        // SAFETY: a live session and a window of 64 values.
        let st =
            unsafe { ts_denoise(s.handle, code as u32, 5, 2, 0.1, 9, 2, got.as_mut_ptr(), 64, &mut err) };
        assert_eq!(st, TsStatus::Ok, "{}", message(&err));
        assert_eq!(bits(&got), bits(&expected), "{method:?}");
    }
    let mut diffs: Vec<f32> = window.windows(2).map(|p| p[1] - p[0]).collect();
    let mut diffs2 = diffs.clone();
    // SAFETY: a buffer of its own length.
    let sigma = unsafe { ts_sigma_from_differences(diffs.as_mut_ptr(), diffs.len()) };
    assert_eq!(sigma.to_bits(), denoise::sigma_from_differences(&mut diffs2).to_bits());
}

/// Every status the API returns, each from the call that should return it, with its message.
#[test]
fn every_status_has_its_cause() {
    let model = Aligned::load("firmware-example/models/moons-f32.tsm");
    let bytes = model.bytes();
    let s = open(&model);
    let mut err = new_error();
    let mut x = [0.0f32; 2];
    let check = |st: TsStatus, err: &TsError, want: TsStatus, text: &str| {
        assert_eq!(st, want, "{}", message(err));
        assert_eq!(err.status, want);
        assert!(message(err).contains(text), "{want:?}: message {:?} lacks {text:?}", message(err));
    };
    // SAFETY: every pointer is null on purpose or valid for the length given.
    unsafe {
        let mut handle = null_mut();
        let mut memory = vec![0u64; 1 << 16];
        let mem = memory.as_mut_ptr().cast::<u8>();
        let st = ts_open(mem, 8 << 16, null(), 0, &mut handle, &mut err);
        check(st, &err, TsStatus::NullArgument, "null");
        let st = ts_open(null_mut(), 0, bytes.as_ptr(), bytes.len(), &mut handle, &mut err);
        check(st, &err, TsStatus::NullArgument, "null");
        // Bad magic.
        let mut broken = Aligned::load("firmware-example/models/moons-f32.tsm");
        broken.0[0] ^= 0xFF;
        let st = ts_open(mem, 8 << 16, broken.bytes().as_ptr(), bytes.len(), &mut handle, &mut err);
        check(st, &err, TsStatus::Format, "");
        assert_eq!(ts_required_bytes(broken.bytes().as_ptr(), bytes.len(), &mut err), 0);
        assert_eq!(err.status, TsStatus::Format);
        // Truncated.
        let st = ts_open(mem, 8 << 16, bytes.as_ptr(), 100, &mut handle, &mut err);
        check(st, &err, TsStatus::Format, "");
        let need = ts_required_bytes(bytes.as_ptr(), bytes.len(), &mut err);
        let st = ts_open(mem, need - 1, bytes.as_ptr(), bytes.len(), &mut handle, &mut err);
        check(st, &err, TsStatus::MemoryTooSmall, "needs");
        let st = ts_open(mem.add(1), need, bytes.as_ptr(), bytes.len(), &mut handle, &mut err);
        check(st, &err, TsStatus::MemoryAlignment, "aligned");

        let st = ts_sample(s.handle, TsSampler::Ddpm as u32, 0, 1, 0, x.as_mut_ptr(), 2, &mut err);
        check(st, &err, TsStatus::Sampler, "steps");
        let st = ts_sample(s.handle, TsSampler::Ddpm as u32, 1001, 1, 0, x.as_mut_ptr(), 2, &mut err);
        check(st, &err, TsStatus::Sampler, "steps");
        let st = ts_sample(s.handle, 99, 10, 1, 0, x.as_mut_ptr(), 2, &mut err);
        check(st, &err, TsStatus::Sampler, "unknown");
        let st = ts_sample(s.handle, TsSampler::Ddpm as u32, 10, 1, 0, x.as_mut_ptr(), 1, &mut err);
        check(st, &err, TsStatus::BufferTooShort, "needs 2");
        let st = ts_sample(s.handle, TsSampler::Ddpm as u32, 10, 1, 0, null_mut(), 2, &mut err);
        check(st, &err, TsStatus::NullArgument, "null");
        let st = ts_sample(null_mut(), TsSampler::Ddpm as u32, 10, 1, 0, x.as_mut_ptr(), 2, &mut err);
        check(st, &err, TsStatus::NullArgument, "null");
        // A failed start leaves no run.
        let st = ts_sampler_start(s.handle, TsSampler::Ddpm as u32, 0, 1, 0, null_mut(), &mut err);
        check(st, &err, TsStatus::Sampler, "steps");
        let st = ts_sampler_step(s.handle, null_mut(), &mut err);
        check(st, &err, TsStatus::NoRun, "ts_sampler_start");
        let st = ts_sampler_read(s.handle, x.as_mut_ptr(), 2, &mut err);
        check(st, &err, TsStatus::NoRun, "ts_sampler_start");

        let st =
            ts_denoise(s.handle, TsMethod::Tweedie as u32, 0, 0, -1.0, 0, 0, x.as_mut_ptr(), 2, &mut err);
        check(st, &err, TsStatus::Denoise, "sigma");
        let st = ts_denoise(s.handle, TsMethod::Sdedit as u32, 0, 1, 0.1, 0, 0, x.as_mut_ptr(), 2, &mut err);
        check(st, &err, TsStatus::Denoise, "steps");
        let st = ts_denoise(s.handle, 7, 1, 1, 0.1, 0, 0, x.as_mut_ptr(), 2, &mut err);
        check(st, &err, TsStatus::Denoise, "unknown");

        // A null error pointer is allowed everywhere.
        assert_eq!(
            ts_sample(s.handle, TsSampler::Ddpm as u32, 0, 1, 0, x.as_mut_ptr(), 2, null_mut()),
            TsStatus::Sampler
        );
        assert_eq!(ts_dim(null()), 0);
        assert_eq!(ts_sigma_from_differences(null_mut(), 3), -1.0);
        // Success clears the message.
        let st = ts_sample(s.handle, TsSampler::Ddpm as u32, 5, 1, 0, x.as_mut_ptr(), 2, &mut err);
        check(st, &err, TsStatus::Ok, "");
        assert_eq!(message(&err), "");
    }
    // Every status has its name.
    for (st, name) in [
        (TsStatus::Ok, "TS_STATUS_OK"),
        (TsStatus::Format, "TS_STATUS_FORMAT"),
        (TsStatus::NoRun, "TS_STATUS_NO_RUN"),
    ] {
        // SAFETY: the names are static NUL-terminated strings.
        assert_eq!(unsafe { CStr::from_ptr(ts_status_name(st)) }.to_str().unwrap(), name);
    }
}

#[test]
fn the_message_is_the_engines_text_and_overwrites_the_last() {
    let mut err = new_error();
    err.message = [b'x' as std::ffi::c_char; TS_MESSAGE_LEN];
    let junk = vec![0u8; 64];
    // SAFETY: a buffer of the length given.
    let need = unsafe { ts_required_bytes(junk.as_ptr(), junk.len(), &mut err) };
    assert_eq!(need, 0);
    assert_eq!(err.status, TsStatus::Format);
    assert_eq!(message(&err), Model::parse(&junk).unwrap_err().to_string());
}

#[test]
fn format_f32_writes_the_hosts_text() {
    let values = [
        0.0f32,
        -0.0,
        1.0,
        -0.7356874,
        0.0072936416,
        1e-45,
        f32::MAX,
        f32::MIN_POSITIVE,
        123456.79,
        f32::NAN,
        f32::INFINITY,
        -f32::INFINITY,
        0.1,
    ];
    let mut state = 0x1234_5678u32;
    let randoms = (0..2000).map(|_| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        f32::from_bits(state)
    });
    for v in values.into_iter().chain(randoms) {
        let mut buf = [0 as std::ffi::c_char; 64];
        // SAFETY: a buffer of 64 bytes.
        let n = unsafe { ts_format_f32(v, buf.as_mut_ptr(), buf.len()) };
        let text = format!("{v}");
        assert_eq!(n, text.len());
        // SAFETY: NUL-terminated by the call.
        assert_eq!(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap(), text);
        // Too short for the text and its NUL: 0 and an empty string.
        let mut short = [b'x' as std::ffi::c_char; 64];
        // SAFETY: the buffer is longer than the length given.
        let n = unsafe { ts_format_f32(v, short.as_mut_ptr(), text.len()) };
        assert_eq!(n, 0);
        assert_eq!(short[0], 0);
    }
    // SAFETY: null is refused.
    assert_eq!(unsafe { ts_format_f32(1.0, null_mut(), 10) }, 0);
}
