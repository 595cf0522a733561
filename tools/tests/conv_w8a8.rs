//! The integer (`w8a8`) path of a convolutional network (issue 18): a U-Net calibrated with the
//! converter's own functions, its integer walk against the f32 network of the same weights, and
//! one hand-made malicious file per new way a quant-2 conv file can be wrong (behind a valid CRC).

use tinyscore_engine::format::{
    field, field3, DataKind, DataShape, FormatError, Model, Process, Role, CRC_START,
};
use tinyscore_engine::graph::op::RECORD_LEN;
use tinyscore_engine::graph::unet::UNet;
use tinyscore_engine::graph::Op;
use tinyscore_engine::net::ScoreNet;
use tinyscore_engine::quant::plan::{self as quant_plan, Kind};
use tinyscore_engine::quant::Int8Plan;
use tinyscore_engine::schedule::BetaSchedule;
use tinyscore_tools::calib;
use tinyscore_tools::tsm::{reseal, write_graph, write_graph_w8a8, GraphSpec, Quant};

const PROCESS: Process = Process::VpDiscrete { steps: 50, schedule: BetaSchedule::DDPM_LINEAR };

/// The U-Net of the conv test vector (two levels), and a three-channel one (K = 5, two blocks).
const UNETS: [UNet; 2] = [
    UNet { channels: 1, length: 16, width: 4, levels: 2, blocks: 1, kernel: 3, freqs: 4, temb: 8 },
    UNet { channels: 3, length: 8, width: 5, levels: 1, blocks: 2, kernel: 5, freqs: 6, temb: 4 },
];

type Net<'a> = ScoreNet<'a, 64, 64, 32, Vec<f32>>;

fn net(bytes: &[u8]) -> Net<'_> {
    let model = Model::parse(bytes).unwrap();
    let words = Net::arena_len(&model);
    ScoreNet::new(model, vec![0.0; words]).unwrap()
}

/// Signals: a few sines of each channel, noised at times across (0, 1].
fn points(u: &UNet, n: usize, seed: u64) -> Vec<calib::CalibPoint> {
    let d = u.channels * u.length;
    let xs: Vec<f32> = (0..n * d)
        .map(|i| ((i as f32) * 0.37 + seed as f32).sin() * 1.3 + ((i / d) as f32 * 0.11).cos())
        .collect();
    calib::calibration_points(&xs, d, &PROCESS, 8, seed)
}

/// The f32 and w8a8 files of `u` (weights `sin(0.71·i)·0.3`), the latter calibrated on
/// `points(u, 16, 1)` with `groups` timestep groups.
fn files(u: &UNet, groups: usize) -> (Vec<u8>, Vec<u8>) {
    let plan = u.build().unwrap();
    let params: Vec<f32> = (0..plan.param_count()).map(|i| (i as f32 * 0.71).sin() * 0.3).collect();
    let d = u.channels * u.length;
    let (mean, std) = (vec![0.0; d], vec![1.0; d]);
    let data = DataShape { kind: DataKind::Signal, channels: u.channels, length: u.length };
    let spec =
        GraphSpec { plan: &plan, data, process: PROCESS, norm_mean: &mean, norm_std: &std, params: &params };
    let f32_bytes = write_graph(&spec, Quant::F32).unwrap();
    let float = Model::parse(&f32_bytes).unwrap();
    let scales = calib::activation_scales_of(&float, &points(u, 16, 1), groups);
    let (rq, luts) = calib::integer_params_of(&float, &scales, groups);
    let w8a8 = write_graph_w8a8(&spec, groups, &scales, &rq, &luts).unwrap();
    (f32_bytes, w8a8)
}

/// The integer walk follows the float network within a stated tolerance: score SNR ≥ 20 dB over
/// held-out points (the ECG model: 24 dB, `docs/quantization.md`); a batch has the bits of
/// single evaluations; every value is finite.
#[test]
fn the_integer_conv_walk_follows_the_float_network() {
    for u in UNETS {
        let (f, q) = files(&u, 2);
        let model = Model::parse(&q).unwrap();
        assert!(model.is_int8() && model.groups() == 2);
        let plan = Int8Plan::new(model.graph()).unwrap();
        assert!(plan.is_conv());
        let (mut fnet, mut qnet) = (net(&f), net(&q));
        let d = u.channels * u.length;
        let held_out = points(&u, 8, 9);
        let (mut a, mut b) = (vec![0.0f32; d], vec![0.0f32; d]);
        let (mut signal, mut noise) = (0.0f64, 0.0f64);
        for p in &held_out {
            fnet.eps(&p.x, p.t, &mut a);
            qnet.eps(&p.x, p.t, &mut b);
            assert!(b.iter().all(|v| v.is_finite()));
            for (x, y) in a.iter().zip(&b) {
                signal += (*x as f64).powi(2);
                noise += (*x as f64 - *y as f64).powi(2);
            }
        }
        let snr = 10.0 * (signal / noise).log10();
        println!("{u:?}: score SNR {snr:.2} dB");
        assert!(snr >= 20.0, "{u:?}: score SNR {snr:.2} dB");
        assert!(snr.is_finite(), "the integer path is not the float one");
        // The fastest kernels this CPU has (AVX2, NEON) give the portable bits.
        let best = tinyscore_tools::simd::best_kernels();
        if best == tinyscore_engine::net::Kernels::Portable {
            println!("skipped: SIMD int8 conv: this CPU has no AVX2 or NEON");
        }
        let mut fast = net(&q);
        fast.set_kernels(best);
        for p in &held_out {
            qnet.eps(&p.x, p.t, &mut a);
            fast.eps(&p.x, p.t, &mut b);
            assert_eq!(
                a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
        // eps_batch: the same bits as one at a time.
        let k = 5;
        let xs: Vec<f32> = held_out[..k].iter().flat_map(|p| p.x.clone()).collect();
        let mut outs = vec![0.0f32; k * d];
        qnet.eps_batch(&xs, 0.3, &mut outs, &mut []);
        for (i, x) in xs.chunks(d).enumerate() {
            qnet.eps(x, 0.3, &mut b);
            assert_eq!(
                outs[i * d..(i + 1) * d].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
    }
}

/// The plan of a U-Net: one step per convolution, the kinds of `docs/quantization.md`.
#[test]
fn a_unets_plan_has_a_step_per_convolution() {
    for u in UNETS {
        let plan_g = u.build().unwrap();
        let g = plan_g.graph().unwrap();
        let plan = Int8Plan::new(&g).unwrap();
        let convs = g.layers().filter(|l| matches!(l.op, Op::Conv1d { .. })).count();
        assert_eq!(plan.steps().len(), convs);
        let count = |f: fn(&Kind) -> bool| plan.steps().iter().filter(|s| f(&s.kind)).count();
        let blocks = u.blocks * (2 * u.levels + 1);
        assert_eq!(count(|k| matches!(k, Kind::Table { .. })), blocks);
        assert_eq!(count(|k| matches!(k, Kind::Residual { .. })), blocks + u.levels);
        assert_eq!(count(|k| matches!(k, Kind::ToI16 { .. })), 1 + u.levels);
        assert_eq!(count(|k| matches!(k, Kind::Output)), 1);
        // Every table and scale column is used once; the requant columns are the steps'.
        let rq: usize = plan
            .steps()
            .iter()
            .map(|s| match s.kind {
                Kind::Output => s.rows(),
                Kind::Residual { .. } => 3 * s.rows() + 2,
                _ => 3 * s.rows(),
            })
            .sum();
        assert_eq!(plan.requant_cols(), rq);
        assert!(plan.file_scratch_words() >= u.length * u.width);
        // The walk keeps at most ACC_TILE positions of accumulators.
        assert!(plan.scratch_words() < plan.file_scratch_words() || u.length <= quant_plan::ACC_TILE);
    }
}

#[track_caller]
fn int8_err(bytes: &[u8]) -> FormatError {
    Model::parse(bytes).map(|_| ()).unwrap_err()
}

/// The table entry of tensor `index`.
fn entry_at(b: &[u8], index: usize) -> usize {
    let layers = u16::from_le_bytes(b[field3::LAYERS..field3::LAYERS + 2].try_into().unwrap()) as usize;
    field3::RECORDS + RECORD_LEN * layers + tinyscore_engine::format::ENTRY_LEN * index
}

/// One hand-made malicious file per new way a quant-2 conv file can be wrong, each behind a
/// valid CRC; and no byte of the file, changed, makes the parser or the walk panic.
#[test]
fn malicious_conv_w8a8_files_are_refused() {
    let u = UNETS[0];
    let (_, good) = files(&u, 1);
    let model = Model::parse(&good).unwrap();
    let g = *model.graph();
    let count =
        u32::from_le_bytes(good[field::TENSOR_COUNT..field::TENSOR_COUNT + 4].try_into().unwrap()) as usize;
    // The RAM figure without the integer scratch (the f32 file's).
    let mut b = good.clone();
    let ram = u32::from_le_bytes(b[field::RAM_BYTES..field::RAM_BYTES + 4].try_into().unwrap());
    b[field::RAM_BYTES..field::RAM_BYTES + 4].copy_from_slice(&(ram - 4).to_le_bytes());
    reseal(&mut b);
    assert!(matches!(int8_err(&b), FormatError::RamMismatch { stored, computed } if stored + 4 == computed));
    // act.scales with one column fewer than the plan indexes.
    let mut b = good.clone();
    let o = entry_at(&b, count - 3) + 8;
    let cols = u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    b[o..o + 4].copy_from_slice(&(cols - 1).to_le_bytes());
    reseal(&mut b);
    assert!(matches!(int8_err(&b), FormatError::BadLength { .. } | FormatError::ShapeMismatch { .. }));
    // A multiplier below 2^30 in the first convolution's triples.
    let rq = model.tensor(Role::ActRequant);
    let off = rq.data().as_ptr() as usize - good.as_ptr() as usize;
    let mut b = good.clone();
    b[off + 4..off + 8].copy_from_slice(&5i32.to_le_bytes());
    reseal(&mut b);
    assert_eq!(int8_err(&b), FormatError::BadMultiplier { group: 0, column: 1 });
    // The output convolution given a residual (x itself: a valid graph, which the f32 walk
    // runs): the integer plan's output step has none.
    let last = g.len() - 1;
    let mut b = good.clone();
    let o = field3::RECORDS + RECORD_LEN * last + 6;
    b[o..o + 2].copy_from_slice(&0u16.to_le_bytes());
    reseal(&mut b);
    match int8_err(&b) {
        e @ FormatError::Int8ConvPattern { layer, .. } => {
            assert_eq!(layer, last);
            assert!(e.to_string().contains("output convolution has a residual"), "{e}");
        }
        e => panic!("{e:?}"),
    }
    // Every byte of the header, records and table, and every 7th after, changed (CRC
    // resealed): a clean error or a network that evaluates to
    // something, never a panic.
    let x: Vec<f32> = (0..16).map(|i| (i as f32 * 0.4).sin()).collect();
    let mut eps = vec![0.0f32; 16];
    let table_end = entry_at(&good, count);
    for i in (CRC_START..good.len()).filter(|&i| i < table_end || i % 7 == 0) {
        for v in [0x00u8, 0x7f, 0x80, 0xff] {
            let mut b = good.clone();
            b[i] = v;
            reseal(&mut b);
            if let Ok(m) = Model::parse(&b) {
                let words = Net::arena_len(&m);
                if let Ok(mut n) = Net::new(m, vec![0.0; words]) {
                    n.eps(&x, 0.5, &mut eps);
                }
            }
        }
    }
}

/// `firmware-example/models/ecg-conv-w8a8.tsm`, the firmware's int8 conv model (QEMU runs it
/// bit for bit against the host: `qemu-runs.txt`), is the small ECG U-Net of `ecg-conv-f32.tsm`
/// (its weights, read back from the file, which the writer reproduces byte for byte) converted
/// to w8a8 as `tinyscore convert` does: calibrated on the ECG recording's training part (256
/// examples × 32 timesteps, one timestep group). Regenerate with `TINYSCORE_BLESS=1`.
#[test]
fn the_firmware_conv_model_is_what_the_converter_writes() {
    use tinyscore_tools::cmd::convert::{CALIB_EXAMPLES, CALIB_SEED, CALIB_TIMESTEPS};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../firmware-example/models/");
    let f32_bytes = std::fs::read(format!("{dir}ecg-conv-f32.tsm")).unwrap();
    let float = Model::parse(&f32_bytes).unwrap();
    let u = UNet { channels: 1, length: 64, width: 8, levels: 2, blocks: 1, kernel: 5, freqs: 32, temb: 32 };
    let plan = u.build().unwrap();
    let get = |i: usize| {
        let t = float.tensor_at(i);
        (0..t.rows * t.cols).map(|k| t.get(k)).collect::<Vec<f32>>()
    };
    let params: Vec<f32> = (2..2 + plan.tensors().len()).flat_map(get).collect();
    let (mean, std) = (get(0), get(1));
    let data = DataShape { kind: DataKind::Signal, channels: 1, length: 64 };
    let process = float.header().process;
    let spec = GraphSpec { plan: &plan, data, process, norm_mean: &mean, norm_std: &std, params: &params };
    assert_eq!(write_graph(&spec, Quant::F32).unwrap(), f32_bytes, "the U-Net's sizes");
    let set = match tinyscore_tools::cmd::data::training_set("ecg:64", 4 * CALIB_EXAMPLES, CALIB_SEED) {
        Ok(set) => set,
        Err(e) => {
            println!("skipped: the ECG recording is not available ({e})");
            return;
        }
    };
    let stride = (set.len() / CALIB_EXAMPLES).max(1);
    let mut xs: Vec<f32> =
        (0..set.len()).step_by(stride).take(CALIB_EXAMPLES).flat_map(|i| set.row(i).to_vec()).collect();
    for row in xs.chunks_exact_mut(64) {
        for ((x, m), s) in row.iter_mut().zip(&mean).zip(&std) {
            *x = (*x - m) / s;
        }
    }
    let points = calib::calibration_points(&xs, 64, &process, CALIB_TIMESTEPS, CALIB_SEED);
    let scales = calib::activation_scales_of(&float, &points, 1);
    let (rq, luts) = calib::integer_params_of(&float, &scales, 1);
    let bytes = write_graph_w8a8(&spec, 1, &scales, &rq, &luts).unwrap();
    let path = format!("{dir}ecg-conv-w8a8.tsm");
    if std::env::var_os("TINYSCORE_BLESS").is_some() {
        std::fs::write(&path, &bytes).unwrap();
    }
    let stored = std::fs::read(&path).unwrap();
    assert!(stored == bytes, "{path}: the converter's output changed; bless if deliberate");
    // Within the tolerance of the test above against its f32 model.
    let (mut fnet, mut qnet) = (net(&f32_bytes), net(&bytes));
    let (mut a, mut b) = (vec![0.0f32; 64], vec![0.0f32; 64]);
    let (mut signal, mut noise) = (0.0f64, 0.0f64);
    for p in points.iter().step_by(97) {
        fnet.eps(&p.x, p.t, &mut a);
        qnet.eps(&p.x, p.t, &mut b);
        for (x, y) in a.iter().zip(&b) {
            signal += (*x as f64).powi(2);
            noise += (*x as f64 - *y as f64).powi(2);
        }
    }
    let snr = 10.0 * (signal / noise).log10();
    println!("ecg-conv-w8a8.tsm: score SNR {snr:.2} dB against ecg-conv-f32.tsm");
    assert!(snr >= 20.0, "score SNR {snr:.2} dB");
}
