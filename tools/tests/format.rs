//! The `.tsm` writer against the engine's reader in the first structural version (ScoreNet v1
//! without layer records, which readers keep reading): round trips, the checked-in test vector,
//! and one hand-made malicious file per `FormatError` variant of that layout (each behind a valid
//! CRC where the check sits behind the CRC, so the field checks themselves are exercised). The
//! version-3 layer graph has its own file, `tests/graph_format.rs`.

use tinyscore_engine::format::layout;
use tinyscore_engine::format::{field, DType, FormatError, Model, Process, Role, ENTRY_LEN, HEADER_LEN};
use tinyscore_engine::net::Dims;
use tinyscore_engine::schedule::{BetaSchedule, ScheduleError, Sde};
use tinyscore_tools::calib;
use tinyscore_tools::tsm::{reseal, write_v1 as write, write_w8a8_v1 as write_w8a8, ModelSpec, Quant};

const TINY: Dims = Dims { dim: 2, hidden: 8, freqs: 4, blocks: 1 };
const MEAN: [f32; 2] = [0.5, -0.25];
const STD: [f32; 2] = [2.0, 0.5];

fn tiny_params() -> Vec<f32> {
    (0..TINY.param_count()).map(|i| (i as f32).sin() * 0.5).collect()
}

fn tiny_file(quant: Quant) -> Vec<u8> {
    let params = tiny_params();
    let spec = ModelSpec {
        dims: TINY,
        process: Process::VpDiscrete { steps: 10, schedule: BetaSchedule::DDPM_LINEAR },
        norm_mean: &MEAN,
        norm_std: &STD,
        params: &params,
    };
    write(&spec, quant).unwrap()
}

/// A w8a8 file of the tiny network, calibrated on points around the normalised data.
fn tiny_w8a8(groups: usize) -> Vec<u8> {
    let params = tiny_params();
    let spec = ModelSpec {
        dims: TINY,
        process: Process::VpDiscrete { steps: 10, schedule: BetaSchedule::DDPM_LINEAR },
        norm_mean: &MEAN,
        norm_std: &STD,
        params: &params,
    };
    let examples: Vec<f32> = (0..64).map(|i| (i as f32 * 0.7).sin()).collect();
    let points = calib::calibration_points(&examples, 2, &spec.process, 10, 1);
    let scales = calib::activation_scales(&TINY, &params, &points, groups);
    let (rq, luts) = calib::integer_params(&TINY, &params, &scales, groups);
    write_w8a8(&spec, groups, &scales, &rq, &luts).unwrap()
}

fn entry_off(i: usize) -> usize {
    HEADER_LEN + ENTRY_LEN * i
}

fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn get_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn parse_err(b: &[u8]) -> FormatError {
    Model::parse(b).map(|_| ()).unwrap_err()
}

#[test]
fn test_vector_is_what_the_writer_writes() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../engine/tests/data/tiny.tsm");
    let bytes = tiny_file(Quant::F32);
    if std::env::var_os("TINYSCORE_BLESS").is_some() {
        std::fs::write(path, &bytes).unwrap();
    }
    let stored = std::fs::read(path).expect("engine/tests/data/tiny.tsm (regenerate with TINYSCORE_BLESS=1)");
    assert_eq!(stored, bytes, "the writer's output changed: bless it only if the format changed on purpose");
}

#[test]
fn round_trip_every_quantization() {
    let params = tiny_params();
    for quant in [Quant::F32, Quant::F16, Quant::W8] {
        let bytes = tiny_file(quant);
        let m = Model::parse(&bytes).unwrap_or_else(|e| panic!("{quant:?}: {e}"));
        assert_eq!(m.dims(), TINY);
        let mut offset = 0;
        for t in m.tensors() {
            let want_dtype = quant.dtype(t.role);
            assert_eq!(t.dtype, want_dtype);
            let (values, tol): (Vec<f32>, f32) = match t.role {
                Role::NormMean => (MEAN.to_vec(), 0.0),
                Role::NormStd => (STD.to_vec(), 0.0),
                _ => {
                    let n = t.rows * t.cols;
                    offset += n;
                    let tol = match want_dtype {
                        DType::F32 => 0.0,
                        DType::F16 => 1e-3,
                        DType::I8 => 0.5 / 127.0 + 1e-6,
                        DType::I32 | DType::Lut8 => unreachable!("not a parameter dtype"),
                    };
                    (params[offset - n..offset].to_vec(), tol)
                }
            };
            for (i, v) in values.iter().enumerate() {
                assert!((t.get(i) - v).abs() <= tol, "{quant:?} {} [{i}]", t.role.name());
            }
        }
        assert_eq!(offset, params.len());
    }
}

#[test]
fn w8_files_are_under_30_percent_of_f32() {
    let dims = Dims { dim: 2, hidden: 128, freqs: 32, blocks: 3 };
    let params: Vec<f32> = (0..dims.param_count()).map(|i| (i as f32 * 0.37).sin()).collect();
    let mean = [0.0f32; 2];
    let std = [1.0f32; 2];
    let spec = ModelSpec {
        dims,
        process: Process::VpDiscrete { steps: 1000, schedule: BetaSchedule::COSINE },
        norm_mean: &mean,
        norm_std: &std,
        params: &params,
    };
    let f32_len = write(&spec, Quant::F32).unwrap().len();
    let w8_len = write(&spec, Quant::W8).unwrap().len();
    assert!((w8_len as f64) < 0.30 * f32_len as f64, "{w8_len} vs {f32_len}");
    // w8a8 with one timestep group (each further group adds 12.6 kB here: docs/quantization.md).
    let examples: Vec<f32> = (0..64).map(|i| (i as f32 * 0.7).sin()).collect();
    let points = calib::calibration_points(&examples, 2, &spec.process, 16, 1);
    let scales = calib::activation_scales(&dims, &params, &points, 1);
    let (rq, luts) = calib::integer_params(&dims, &params, &scales, 1);
    let w8a8_len = write_w8a8(&spec, 1, &scales, &rq, &luts).unwrap().len();
    assert!((w8a8_len as f64) < 0.30 * f32_len as f64, "{w8a8_len} vs {f32_len}");
}

#[test]
fn w8a8_round_trips_and_tracks_the_float_network() {
    for groups in [1, 3] {
        let bytes = tiny_w8a8(groups);
        let m = Model::parse(&bytes).unwrap();
        assert!(m.is_int8());
        assert_eq!(m.groups(), groups);
        assert_eq!(m.header().quant_version, 2);
        assert_eq!(m.header().ram_bytes as usize, TINY.ram_bytes_int8());
        assert_eq!(m.tensor_count(), 14 + 3);
        let float = tiny_file(Quant::F32);
        let float = Model::parse(&float).unwrap();
        let examples: Vec<f32> = (0..64).map(|i| (i as f32 * 0.7).sin()).collect();
        let points = calib::calibration_points(&examples, 2, &m.process(), 10, 1);
        let snr = calib::score_snr(&m, &float, &points);
        assert!(snr > 20.0, "groups {groups}: score SNR {snr} dB");
    }
    // A float writer call for w8a8 is refused, not silently wrong.
    let params = tiny_params();
    let spec = ModelSpec {
        dims: TINY,
        process: Process::VpDiscrete { steps: 10, schedule: BetaSchedule::DDPM_LINEAR },
        norm_mean: &MEAN,
        norm_std: &STD,
        params: &params,
    };
    assert!(write(&spec, Quant::W8A8).is_err());
    assert!(write_w8a8(&spec, 0, &[], &[], &[]).is_err());
}

/// Applies `edit` to a fresh w8a8 file (2 groups), reseals the CRC, and returns the parse error.
fn mutated_w8a8(edit: impl FnOnce(&mut Vec<u8>)) -> FormatError {
    let mut b = tiny_w8a8(2);
    edit(&mut b);
    reseal(&mut b);
    parse_err(&b)
}

#[test]
fn one_malicious_w8a8_file_per_new_error() {
    use FormatError::*;
    let base = tiny_w8a8(2);
    // Slots: 14 parameter tensors, then act.scales (14), act.requant (15), act.lut (16).
    let (scales_slot, rq_slot, lut_slot) = (14, 15, 16);
    let data_of = |slot: usize| get_u32(&base, entry_off(slot) + 12) as usize;
    let rq_cols = layout::requant_cols(TINY.dim, TINY.hidden, TINY.blocks);
    let rq_at = |g: usize, c: usize| data_of(rq_slot) + 4 * (g * rq_cols + c);

    // Groups: 0 and above the maximum.
    assert_eq!(mutated_w8a8(|b| put_u32(b, entry_off(scales_slot) + 4, 0)), BadGroups { found: 0, max: 16 });
    assert_eq!(
        mutated_w8a8(|b| put_u32(b, entry_off(scales_slot) + 4, 17)),
        BadGroups { found: 17, max: 16 }
    );
    // Groups that disagree between the activation tensors.
    assert!(matches!(
        mutated_w8a8(|b| put_u32(b, entry_off(rq_slot) + 4, 3)),
        ShapeMismatch { index: 15, .. }
    ));
    // A v2 file whose weight matrix is f32 is refused (the integer path needs int8 weights).
    assert_eq!(mutated_w8a8(|b| b[entry_off(2) + 2] = 0), BadDtype { index: 2, code: 0 });
    // An activation tensor with another dtype.
    assert_eq!(mutated_w8a8(|b| b[entry_off(lut_slot) + 2] = 2), BadDtype { index: 16, code: 2 });
    // Activation scales: zero, negative, NaN, infinite.
    let s_at = data_of(scales_slot);
    for bad in [0.0f32, -1.0, f32::NAN, f32::INFINITY] {
        assert_eq!(
            mutated_w8a8(|b| put_u32(b, s_at + 4 * 2, bad.to_bits())),
            BadActScale { group: 0, column: 2 }
        );
    }
    let cols = layout::scale_cols(TINY.blocks);
    assert_eq!(mutated_w8a8(|b| put_u32(b, s_at + 4 * (cols + 1), 0)), BadActScale { group: 1, column: 1 });
    // Multipliers below 2^30 or negative, shifts outside 1..=62, biases beyond ±2^30.
    let w1 = layout::w1(TINY.hidden, 0);
    assert_eq!(mutated_w8a8(|b| put_u32(b, rq_at(1, w1 + 1), 5)), BadMultiplier { group: 1, column: w1 + 1 });
    assert_eq!(
        mutated_w8a8(|b| put_u32(b, rq_at(0, 1), (-7i32) as u32)),
        BadMultiplier { group: 0, column: 1 }
    );
    for shift in [0i32, 63, -1] {
        assert_eq!(mutated_w8a8(|b| put_u32(b, rq_at(0, 2), shift as u32)), BadShift { group: 0, column: 2 });
    }
    let res = layout::residual(TINY.hidden, 0);
    assert_eq!(mutated_w8a8(|b| put_u32(b, rq_at(0, res + 1), 99)), BadShift { group: 0, column: res + 1 });
    assert_eq!(mutated_w8a8(|b| put_u32(b, rq_at(0, res), 1)), BadMultiplier { group: 0, column: res });
    assert_eq!(mutated_w8a8(|b| put_u32(b, rq_at(0, 3), (1u32 << 30) + 1)), BadBias { group: 0, column: 3 });
    let out = layout::output(TINY.hidden, TINY.blocks);
    assert_eq!(
        mutated_w8a8(|b| put_u32(b, rq_at(1, out + 1), i32::MIN as u32)),
        BadBias { group: 1, column: out + 1 }
    );
    // A table entry of −128.
    assert_eq!(mutated_w8a8(|b| b[data_of(lut_slot) + 5] = 0x80), Int8OutOfRange { index: 16 });
    // The RAM figure of a v2 file is the integer path's.
    assert!(matches!(
        mutated_w8a8(|b| put_u32(b, field::RAM_BYTES, TINY.ram_bytes() as u32)),
        RamMismatch { .. }
    ));
    // A v1 header over a v2 body: the tensor count no longer matches.
    assert!(matches!(mutated_w8a8(|b| b[field::QUANT_VERSION] = 1), RamMismatch { .. } | TensorCount { .. }));
}

/// Applies `edit` to a fresh file, optionally reseals the CRC, and returns the parse error.
fn mutated(quant: Quant, seal: bool, edit: impl FnOnce(&mut Vec<u8>)) -> FormatError {
    let mut b = tiny_file(quant);
    edit(&mut b);
    if seal {
        reseal(&mut b);
    }
    parse_err(&b)
}

#[test]
fn one_malicious_file_per_error() {
    use FormatError::*;
    let len = tiny_file(Quant::F32).len();

    assert_eq!(mutated(Quant::F32, false, |b| b.truncate(10)), Truncated { needed: 64, found: 10 });
    assert!(matches!(mutated(Quant::F32, false, |b| b.truncate(300)), Truncated { .. }));
    assert_eq!(mutated(Quant::F32, false, |b| b[0] = b'X'), BadMagic);
    assert_eq!(
        mutated(Quant::F32, false, |b| b[field::VERSION] = 2),
        UnsupportedVersion { found: 2, supported: 3 }
    );
    assert_eq!(
        mutated(Quant::F32, false, |b| b[field::QUANT_VERSION] = 9),
        UnsupportedQuantVersion { found: 9, supported: 2 }
    );
    assert_eq!(
        mutated(Quant::F32, false, |b| b.push(0)),
        LengthMismatch { header: len as u32, actual: len + 1 }
    );
    assert!(matches!(
        mutated(Quant::F32, false, |b| {
            let n = b.len();
            b[n - 3] ^= 0x40
        }),
        CrcMismatch { .. }
    ));
    assert_eq!(mutated(Quant::F32, true, |b| put_u32(b, field::FLAGS, 4)), UnknownFlags(4));
    assert_eq!(mutated(Quant::F32, true, |b| b[field::RESERVED0] = 1), ReservedNonZero(field::RESERVED0));
    assert_eq!(mutated(Quant::F32, true, |b| b[field::FREQS] = 3), BadDims { what: "freqs", found: 3 });
    assert_eq!(mutated(Quant::F32, true, |b| b[field::DIM] = 0), BadDims { what: "dim", found: 0 });
    assert_eq!(mutated(Quant::F32, true, |b| b[field::BLOCKS] = 9), BadDims { what: "blocks", found: 9 });
    assert_eq!(
        mutated(Quant::F32, true, |b| b[field::HIDDEN..field::HIDDEN + 2]
            .copy_from_slice(&513u16.to_le_bytes())),
        BadDims { what: "hidden", found: 513 }
    );
    assert_eq!(mutated(Quant::F32, true, |b| b[field::PROCESS] = 5), UnknownProcess(5));
    assert_eq!(mutated(Quant::F32, true, |b| b[field::SCHEDULE] = 7), UnknownSchedule(7));
    assert!(matches!(mutated(Quant::F32, true, |b| put_u32(b, field::STEPS, 0)), BadSchedule(_)));
    assert!(matches!(mutated(Quant::F32, true, |b| put_u32(b, field::STEPS, 1001)), BadSchedule(_)));
    assert!(matches!(
        mutated(Quant::F32, true, |b| put_u32(b, field::PARAMS, f32::NAN.to_bits())),
        BadSchedule(_)
    ));
    assert_eq!(
        mutated(Quant::F32, true, |b| put_u32(b, field::PARAMS + 8, 1.0f32.to_bits())),
        ReservedNonZero(field::PARAMS + 8)
    );
    assert!(matches!(
        mutated(Quant::F32, true, |b| put_u32(b, field::RAM_BYTES, 1)),
        RamMismatch { stored: 1, .. }
    ));
    assert_eq!(
        mutated(Quant::F32, true, |b| put_u32(b, field::TENSOR_COUNT, 99)),
        TensorCount { found: 99, expected: 14 }
    );
    assert_eq!(
        mutated(Quant::F32, true, |b| b[entry_off(3)] = 2),
        UnexpectedTensor { index: 3, found: 2, expected: 3 }
    );
    assert_eq!(mutated(Quant::F32, true, |b| b[entry_off(2) + 2] = 9), BadDtype { index: 2, code: 9 });
    // Only matrices may be quantized: an f16 bias is refused.
    assert_eq!(mutated(Quant::F32, true, |b| b[entry_off(3) + 2] = 1), BadDtype { index: 3, code: 1 });
    assert_eq!(mutated(Quant::F32, true, |b| b[entry_off(3) + 3] = 1), ReservedNonZero(entry_off(3) + 3));
    assert_eq!(
        mutated(Quant::F32, true, |b| put_u32(b, entry_off(2) + 4, 9)),
        ShapeMismatch { index: 2, rows: 9, cols: 4 }
    );
    assert_eq!(
        mutated(Quant::F32, true, |b| {
            let v = get_u32(b, entry_off(2) + 16);
            put_u32(b, entry_off(2) + 16, v + 4)
        }),
        BadLength { index: 2 }
    );
    let moved = mutated(Quant::F32, true, |b| {
        let v = get_u32(b, entry_off(2) + 12);
        put_u32(b, entry_off(2) + 12, v + 16)
    });
    assert!(matches!(moved, Misplaced { index: 2, .. }), "{moved:?}");
    // Overlap: the second tensor claims the first tensor's offset.
    let overlap = mutated(Quant::F32, true, |b| {
        let v = get_u32(b, entry_off(0) + 12);
        put_u32(b, entry_off(1) + 12, v)
    });
    assert!(matches!(overlap, Misplaced { index: 1, .. }), "{overlap:?}");
    // Misaligned: an offset that is not a multiple of 16.
    let misaligned = mutated(Quant::F32, true, |b| {
        let v = get_u32(b, entry_off(1) + 12);
        put_u32(b, entry_off(1) + 12, v - 8)
    });
    assert!(matches!(misaligned, Misplaced { index: 1, .. }), "{misaligned:?}");
    // An offset near u32::MAX must not overflow.
    let huge = mutated(Quant::F32, true, |b| put_u32(b, entry_off(1) + 12, u32::MAX));
    assert!(matches!(huge, Misplaced { index: 1, .. }), "{huge:?}");
    let oob = mutated(Quant::F32, true, |b| {
        let n = b.len() - 4;
        b.truncate(n);
        put_u32(b, field::FILE_LEN, n as u32);
    });
    assert!(matches!(oob, OutOfBounds { .. }), "{oob:?}");
    assert_eq!(
        mutated(Quant::F32, true, |b| {
            b.extend_from_slice(&[0; 16]);
            let n = b.len() as u32;
            put_u32(b, field::FILE_LEN, n);
        }),
        TrailingBytes { end: len, file_len: len + 16 }
    );
    // norm.mean is 8 bytes, so 8 padding bytes follow it.
    let pad_at = get_u32(&tiny_file(Quant::F32), entry_off(0) + 12) as usize + 8;
    assert_eq!(mutated(Quant::F32, true, |b| b[pad_at] = 1), NonZeroPadding(pad_at));
    let std_at = get_u32(&tiny_file(Quant::F32), entry_off(1) + 12) as usize;
    assert_eq!(mutated(Quant::F32, true, |b| put_u32(b, std_at, (-1.0f32).to_bits())), BadValue { index: 1 });
    let w_at = get_u32(&tiny_file(Quant::F32), entry_off(2) + 12) as usize;
    assert_eq!(
        mutated(Quant::F32, true, |b| put_u32(b, w_at, f32::INFINITY.to_bits())),
        BadValue { index: 2 }
    );
    let w8 = tiny_file(Quant::W8);
    let q_at = get_u32(&w8, entry_off(2) + 12) as usize;
    let s_at = get_u32(&w8, entry_off(2) + 20) as usize;
    assert_eq!(mutated(Quant::W8, true, |b| b[q_at] = 0x80), Int8OutOfRange { index: 2 });
    assert_eq!(mutated(Quant::W8, true, |b| put_u32(b, s_at, 0)), BadScale { index: 2 });
    assert_eq!(mutated(Quant::W8, true, |b| put_u32(b, s_at + 4, f32::NAN.to_bits())), BadScale { index: 2 });
    assert_eq!(
        mutated(Quant::W8, true, |b| put_u32(b, entry_off(2) + 20, 0)),
        Misplaced { index: 2, offset: 0, expected: s_at }
    );
}

/// The tiny network on a continuous process (N = 10 default sampler steps).
fn tiny_sde_file(sde: Sde, t_eps: f32) -> Vec<u8> {
    let params = tiny_params();
    let spec = ModelSpec {
        dims: TINY,
        process: Process::Sde { steps: 10, sde, t_eps },
        norm_mean: &MEAN,
        norm_std: &STD,
        params: &params,
    };
    write(&spec, Quant::F32).unwrap()
}

/// Applies `edit` to a fresh file of `sde`, reseals the CRC, and returns the parse error.
fn mutated_sde(sde: Sde, edit: impl FnOnce(&mut Vec<u8>)) -> FormatError {
    let mut b = tiny_sde_file(sde, 1e-3);
    edit(&mut b);
    reseal(&mut b);
    parse_err(&b)
}

#[test]
fn sde_processes_round_trip() {
    for (kind, sde, t_eps) in [(1u8, Sde::VP, 1e-3f32), (2, Sde::SUB_VP, 1e-3), (3, Sde::VE, 1e-5)] {
        let bytes = tiny_sde_file(sde, t_eps);
        assert_eq!(bytes[field::PROCESS], kind);
        assert_eq!(bytes[field::SCHEDULE], 0);
        let m = Model::parse(&bytes).unwrap_or_else(|e| panic!("{sde:?}: {e}"));
        assert_eq!(m.process(), Process::Sde { steps: 10, sde, t_eps });
        // params = [β_min | σ_min, β_max | σ_max, t_ε, 0].
        let p = |i: usize| f32::from_bits(get_u32(&bytes, field::PARAMS + 4 * i));
        let (a, b) = match sde {
            Sde::Vp { beta_min, beta_max } | Sde::SubVp { beta_min, beta_max } => (beta_min, beta_max),
            Sde::Ve { sigma_min, sigma_max } => (sigma_min, sigma_max),
        };
        assert_eq!([p(0), p(1), p(2), p(3)], [a, b, t_eps, 0.0]);
        assert_eq!(p(3).to_bits(), 0);
    }
}

#[test]
fn one_malicious_file_per_sde_rule() {
    use FormatError::*;
    use ScheduleError::{Parameters, Steps};
    let f = |v: f32| v.to_bits();
    let param = |i: usize| field::PARAMS + 4 * i;
    // Kinds past the last one (VE = 3) are unknown, and the check precedes the parameters.
    for kind in [4u8, 255] {
        assert_eq!(mutated_sde(Sde::VP, |b| b[field::PROCESS] = kind), UnknownProcess(kind));
    }
    // The SDEs have one schedule each (byte 0): the cosine byte, or any other, is refused.
    for sde in [Sde::VP, Sde::SUB_VP, Sde::VE] {
        for sched in [1u8, 2, 255] {
            assert_eq!(mutated_sde(sde, |b| b[field::SCHEDULE] = sched), UnknownSchedule(sched), "{sde:?}");
        }
    }
    // The fourth parameter is reserved: any bit set is refused, −0.0 included.
    for sde in [Sde::VP, Sde::SUB_VP, Sde::VE] {
        for bits in [f(1.0), f(-0.0), f(f32::NAN), 1] {
            assert_eq!(
                mutated_sde(sde, |b| put_u32(b, param(3), bits)),
                ReservedNonZero(param(3)),
                "{sde:?}"
            );
        }
    }
    // N (the default sampler steps) must be in 1..=1000, as for the discrete process.
    assert_eq!(mutated_sde(Sde::VP, |b| put_u32(b, field::STEPS, 0)), BadSchedule(Steps { found: 0 }));
    assert_eq!(mutated_sde(Sde::VE, |b| put_u32(b, field::STEPS, 1001)), BadSchedule(Steps { found: 1001 }));
    // β_min, β_max: finite, 0 < β_min ≤ β_max ≤ 100.
    for sde in [Sde::VP, Sde::SUB_VP] {
        for (i, bad) in [
            (0, f32::NAN),
            (1, f32::NAN),
            (0, f32::INFINITY),
            (1, f32::INFINITY),
            (0, -0.1),
            (0, 0.0),
            (1, -20.0),
            (0, 25.0),  // β_min > β_max = 20: out of order
            (1, 0.05),  // β_max < β_min = 0.1: out of order
            (1, 100.5), // above MAX_SDE_BETA
        ] {
            assert_eq!(
                mutated_sde(sde, |b| put_u32(b, param(i), f(bad))),
                BadSchedule(Parameters),
                "{sde:?} param {i} = {bad}"
            );
        }
    }
    // σ_min, σ_max: finite, 0 < σ_min < σ_max ≤ 1e4 (equal is out of order too).
    for (i, bad) in [
        (0, f32::NAN),
        (1, f32::NAN),
        (1, f32::INFINITY),
        (0, -0.01),
        (0, 0.0),
        (0, 50.0),  // σ_min = σ_max
        (0, 60.0),  // σ_min > σ_max
        (1, 0.001), // σ_max < σ_min
        (1, 1.5e4), // above MAX_VE_SIGMA
    ] {
        assert_eq!(
            mutated_sde(Sde::VE, |b| put_u32(b, param(i), f(bad))),
            BadSchedule(Parameters),
            "VE param {i} = {bad}"
        );
    }
    // t_ε: finite, 0 < t_ε < 0.5.
    for sde in [Sde::VP, Sde::SUB_VP, Sde::VE] {
        for bad in [0.0f32, -0.0, -1e-3, 0.5, 1.0, f32::NAN, f32::INFINITY] {
            assert_eq!(
                mutated_sde(sde, |b| put_u32(b, param(2), f(bad))),
                BadSchedule(Parameters),
                "{sde:?} t_eps = {bad}"
            );
        }
    }
    // A discrete file relabelled as an SDE: its third parameter (t_ε) is 0.
    assert_eq!(mutated(Quant::F32, true, |b| b[field::PROCESS] = 1), BadSchedule(Parameters));
    // And the edges that are valid stay valid: β_min = β_max, t_ε just under 0.5.
    for edit in [(0usize, 20.0f32), (2, 0.499)] {
        let mut b = tiny_sde_file(Sde::VP, 1e-3);
        put_u32(&mut b, param(edit.0), f(edit.1));
        reseal(&mut b);
        assert!(Model::parse(&b).is_ok(), "{edit:?}");
    }
}

#[test]
fn random_corruption_never_panics() {
    // A cheap in-test fuzz: change bytes (resealed half the time, so the field checks run) and cut
    // lengths. The fuzz target of the hardening issue goes further.
    let base = tiny_file(Quant::W8);
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let mut b = base.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() % b.len() as u64) as usize;
            b[i] = next() as u8;
        }
        if next() % 2 == 0 {
            reseal(&mut b);
        }
        if next() % 8 == 0 {
            b.truncate((next() % b.len() as u64) as usize);
        }
        let _ = Model::parse(&b);
    }
}
