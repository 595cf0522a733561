//! Version 3 of the `.tsm` format: the network as a layer graph. The writer against the engine's
//! reader (ScoreNet v1 written as a graph keeps the bits of its version-1 file; a conv U-Net
//! evaluates as the trainer's walk of the same graph), the checked-in test vectors, and one
//! hand-made malicious file per way a graph can be wrong (`GraphError`, behind a valid CRC).

use tinyscore_engine::format::{field, field3, DataKind, DataShape, FormatError, Model, Process};
use tinyscore_engine::graph::build::Plan;
use tinyscore_engine::graph::op::RECORD_LEN;
use tinyscore_engine::graph::unet::UNet;
use tinyscore_engine::graph::GraphError;
use tinyscore_engine::graph::{Op, Shape};
use tinyscore_engine::net::{Dims, ScoreNet};
use tinyscore_engine::schedule::BetaSchedule;
use tinyscore_tools::tsm::{reseal, write, write_graph, write_v1, GraphSpec, ModelSpec, Quant};

const PROCESS: Process = Process::VpDiscrete { steps: 10, schedule: BetaSchedule::DDPM_LINEAR };

/// A small U-Net on one-channel signals of 16 samples.
const TINY_UNET: UNet =
    UNet { channels: 1, length: 16, width: 4, levels: 2, blocks: 1, kernel: 3, freqs: 4, temb: 8 };

/// A U-Net on three-channel signals (an accelerometer's x, y, z): the layout transposes at
/// the network's edges.
const THREE_CHANNELS: UNet =
    UNet { channels: 3, length: 8, width: 5, levels: 1, blocks: 2, kernel: 5, freqs: 6, temb: 4 };

type Net<'a> = ScoreNet<'a, 64, 64, 8, Vec<f32>>;

fn params(n: usize) -> Vec<f32> {
    (0..n).map(|i| (i as f32 * 0.71).sin() * 0.3).collect()
}

/// A conv model file of `u` and its plan and parameters.
fn conv_file(u: &UNet, quant: Quant) -> (Plan, Vec<f32>, Vec<u8>) {
    let plan = u.build().unwrap();
    let p = params(plan.param_count());
    let d = u.channels * u.length;
    let mean: Vec<f32> = (0..d).map(|i| 0.1 * i as f32).collect();
    let std: Vec<f32> = (0..d).map(|i| 1.0 + 0.05 * i as f32).collect();
    let data = DataShape { kind: DataKind::Signal, channels: u.channels, length: u.length };
    let spec =
        GraphSpec { plan: &plan, data, process: PROCESS, norm_mean: &mean, norm_std: &std, params: &p };
    let bytes = write_graph(&spec, quant).unwrap();
    (plan, p, bytes)
}

fn net(bytes: &[u8]) -> Net<'_> {
    let model = Model::parse(bytes).unwrap();
    let words = Net::arena_len(&model);
    ScoreNet::new(model, vec![0.0; words]).unwrap()
}

#[test]
fn scorenet_v1_as_a_graph_keeps_its_bits() {
    let dims = Dims { dim: 3, hidden: 16, freqs: 8, blocks: 2 };
    let p = params(dims.param_count());
    let spec = ModelSpec {
        dims,
        process: PROCESS,
        norm_mean: &[0.0, 1.0, -1.0],
        norm_std: &[1.0, 2.0, 0.5],
        params: &p,
    };
    let (v3, v1) = (write(&spec, Quant::F32).unwrap(), write_v1(&spec, Quant::F32).unwrap());
    assert_eq!(Model::parse(&v3).unwrap().header().version, 3);
    assert_eq!(Model::parse(&v1).unwrap().header().version, 1);
    assert_eq!(Model::parse(&v3).unwrap().graph().mlp_dims(), Some(dims));
    let (mut a, mut b) = (net(&v3), net(&v1));
    let xs: Vec<f32> = (0..15).map(|i| (i as f32 * 0.9).cos() * 2.0).collect();
    for t in [0.0f32, 0.1, 0.5, 1.0] {
        let (mut ea, mut eb) = ([0.0f32; 15], [0.0f32; 15]);
        for i in 0..5 {
            a.eps(&xs[3 * i..3 * i + 3], t, &mut ea[3 * i..3 * i + 3]);
            b.eps(&xs[3 * i..3 * i + 3], t, &mut eb[3 * i..3 * i + 3]);
        }
        assert_eq!(ea.map(f32::to_bits), eb.map(f32::to_bits), "t={t}");
        let mut batch = [0.0f32; 15];
        let mut scratch = vec![0.0; a.batch_scratch_len(5)];
        a.eps_batch(&xs, t, &mut batch, &mut scratch);
        assert_eq!(batch.map(f32::to_bits), ea.map(f32::to_bits), "batch t={t}");
    }
}

#[test]
fn a_conv_graph_evaluates_as_the_trainer_walks_it() {
    for u in [TINY_UNET, THREE_CHANNELS] {
        let (plan, p, bytes) = conv_file(&u, Quant::F32);
        let mut net = net(&bytes);
        assert_eq!(net.model().data().kind, DataKind::Signal);
        assert_eq!(net.model().graph().mlp_dims(), None);
        let d = u.channels * u.length;
        let rows = 4;
        let xs: Vec<f32> = (0..rows * d).map(|i| (i as f32 * 0.37).sin() * 1.5).collect();
        let ts: Vec<f32> = (0..rows).map(|r| 0.05 + 0.3 * r as f32).collect();
        let want = tinyscore_train::train::forward_graph(&plan, &p, &xs, &ts);
        for r in 0..rows {
            let mut eps = vec![0.0f32; d];
            net.eps(&xs[r * d..(r + 1) * d], ts[r], &mut eps);
            for (i, (g, w)) in eps.iter().zip(&want[r * d..(r + 1) * d]).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-4 + 1e-4 * w.abs(),
                    "{u:?} row {r} [{i}]: engine {g}, trainer {w}"
                );
            }
            // k vectors at once: the bits of one at a time.
            let k = 3;
            let batch_x: Vec<f32> = xs[r * d..(r + 1) * d].iter().cycle().take(k * d).copied().collect();
            let mut outs = vec![0.0f32; k * d];
            let mut scratch = vec![0.0; net.batch_scratch_len(k)];
            net.eps_batch(&batch_x, ts[r], &mut outs, &mut scratch);
            for c in outs.chunks_exact(d) {
                assert_eq!(
                    c.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    eps.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                );
            }
        }
    }
}

#[test]
fn f16_conv_files_round_trip_and_int8_is_refused() {
    let (_, _, f16) = conv_file(&TINY_UNET, Quant::F16);
    let (_, _, f32) = conv_file(&TINY_UNET, Quant::F32);
    assert!(f16.len() < f32.len());
    let (mut a, mut b) = (net(&f16), net(&f32));
    let x: Vec<f32> = (0..16).map(|i| (i as f32).sin()).collect();
    let (mut ea, mut eb) = (vec![0.0; 16], vec![0.0; 16]);
    a.eps(&x, 0.3, &mut ea);
    b.eps(&x, 0.3, &mut eb);
    for (p, q) in ea.iter().zip(&eb) {
        assert!((p - q).abs() < 1e-2, "{p} vs {q}");
    }
}

/// `w8` conv files (issue 18): every `conv1d` weight int8 with one scale per output channel
/// (max|w_row|/127 of its (C_out, C_in·K) matrix), the f32 walk close to the f32 file's, and the
/// integer path refused by the name of the first convolution (a hand-made quant-2 file).
#[test]
fn w8_conv_files_have_per_channel_scales_and_no_integer_activations() {
    for u in [TINY_UNET, THREE_CHANNELS] {
        let (plan, p, w8) = conv_file(&u, Quant::W8);
        let (_, _, f32) = conv_file(&u, Quant::F32);
        assert!(3 * w8.len() < 2 * f32.len(), "{} vs {}", w8.len(), f32.len());
        let model = Model::parse(&w8).unwrap();
        assert_eq!(model.header().quant_version, 1);
        let mut offset = 0;
        let mut convs = 0;
        for (k, &(rows, cols)) in plan.tensors().iter().enumerate() {
            let t = model.tensor_at(2 + k);
            let v = &p[offset..offset + rows * cols];
            offset += rows * cols;
            if k % 2 == 1 {
                assert_eq!(t.dtype, tinyscore_engine::format::DType::F32, "bias {k}");
                continue;
            }
            assert_eq!(t.dtype, tinyscore_engine::format::DType::I8, "weight {k}");
            assert_eq!((t.rows, t.cols), (rows, cols));
            convs += usize::from(cols % u.kernel == 0 && cols >= u.kernel);
            for (r, row) in v.chunks_exact(cols).enumerate() {
                let max = row.iter().fold(0.0f32, |m, w| m.max(w.abs()));
                assert_eq!(t.scale(r), max / 127.0, "weight {k} row {r}");
                for (c, &w) in row.iter().enumerate() {
                    let q = t.get(r * cols + c);
                    assert!((q - w).abs() <= 0.5 * t.scale(r) * (1.0 + 1e-5), "weight {k} [{r}, {c}]");
                }
            }
        }
        assert!(convs > 0);
        let (mut a, mut b) = (net(&w8), net(&f32));
        let d = u.channels * u.length;
        let x: Vec<f32> = (0..d).map(|i| (i as f32 * 0.61).sin() * 1.2).collect();
        let (mut ea, mut eb) = (vec![0.0; d], vec![0.0; d]);
        for t in [0.1f32, 0.7] {
            a.eps(&x, t, &mut ea);
            b.eps(&x, t, &mut eb);
            let err: f32 = ea.iter().zip(&eb).map(|(p, q)| (p - q) * (p - q)).sum();
            let sig: f32 = eb.iter().map(|q| q * q).sum();
            assert!(err > 0.0 && err < 1e-3 * sig, "{u:?} t={t}: error {err} of {sig}");
        }
    }
}

/// A hand-made `w8a8` file with a convolution among dense layers: ScoreNet v1's quant-2 test
/// file with its input layer turned into a `conv1d` of kernel 1 (the same (H, D) weight; a valid
/// graph over signals of length 1, with the scratch the gathering needs) is refused by the name
/// of the first dense layer, which a convolutional plan has no step for (issue 18); the same
/// edit of the f32 file runs.
#[test]
fn a_w8a8_file_with_a_convolution_is_refused_by_name() {
    let seeds = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/seeds/");
    for (name, int8) in [("tiny-w8a8.tsm", true), ("tiny-f32.tsm", false)] {
        let good = std::fs::read(format!("{seeds}{name}")).unwrap();
        let model = Model::parse(&good).unwrap();
        let g = model.graph();
        let first = g.layers().position(|l| matches!(l.op, Op::Linear { x: 0, .. })).unwrap();
        let d = 4 * model.dims().dim as u32;
        let mut b = patched(&good, first, 0, &[3, 1, 1, 1]);
        let word = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        let grown = d - word(&b, field3::SCRATCH_WORDS);
        b[field3::SCRATCH_WORDS..field3::SCRATCH_WORDS + 4].copy_from_slice(&d.to_le_bytes());
        // An f32 file states its arena in its RAM figure (a w8a8 one ScoreNet v1's buffers).
        if !int8 {
            let ram = word(&b, field::RAM_BYTES) + 4 * grown;
            b[field::RAM_BYTES..field::RAM_BYTES + 4].copy_from_slice(&ram.to_le_bytes());
        }
        reseal(&mut b);
        match Model::parse(&b) {
            Err(e @ FormatError::Int8Unsupported { layer, op }) if int8 => {
                let dense =
                    (first + 1..g.len()).find(|&i| matches!(g.layer(i).op, Op::Linear { .. })).unwrap();
                assert_eq!((layer, op), (dense, "linear"));
                assert!(e.to_string().contains("(linear) has no integer kernel (use f32, f16 or w8)"), "{e}");
            }
            Ok(m) if !int8 => assert!(matches!(m.graph().layer(first).op, Op::Conv1d { kernel: 1, .. })),
            other => panic!("{name}: {:?}", other.map(|_| ())),
        }
    }
}

#[test]
fn the_arena_must_fit_the_engine() {
    let (_, _, bytes) = conv_file(&TINY_UNET, Quant::F32);
    let model = Model::parse(&bytes).unwrap();
    let words = Net::arena_len(&model);
    let err = Net::new(model, vec![0.0; words - 1]).unwrap_err();
    assert_eq!((err.what, err.found, err.capacity), ("arena", words, words - 1));
    // The header's RAM is the arena and the sampler's state.
    let h = Model::parse(&bytes).unwrap().header().ram_bytes as usize;
    assert_eq!(h, 4 * (words + 2 * 16));
}

/// The test vectors of `docs/format.md` §9 (version 3): ScoreNet v1 and a conv U-Net.
#[test]
fn test_vectors_are_what_the_writer_writes() {
    let dims = Dims { dim: 2, hidden: 8, freqs: 4, blocks: 1 };
    let p: Vec<f32> = (0..dims.param_count()).map(|i| (i as f32).sin() * 0.5).collect();
    let spec =
        ModelSpec { dims, process: PROCESS, norm_mean: &[0.5, -0.25], norm_std: &[2.0, 0.5], params: &p };
    let mlp = write(&spec, Quant::F32).unwrap();
    let (_, _, conv) = conv_file(&TINY_UNET, Quant::F32);
    for (name, bytes) in [("tiny-v3.tsm", mlp), ("tiny-conv.tsm", conv)] {
        let path = format!("{}/../engine/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
        if std::env::var_os("TINYSCORE_BLESS").is_some() {
            std::fs::write(&path, &bytes).unwrap();
        }
        let stored =
            std::fs::read(&path).unwrap_or_else(|_| panic!("{path} (regenerate with TINYSCORE_BLESS=1)"));
        assert_eq!(stored, bytes, "{name}: the writer's output changed; bless only on purpose");
    }
}

/// The file with record `layer`'s bytes at `at` replaced, resealed.
fn patched(bytes: &[u8], layer: usize, at: usize, new: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let o = field3::RECORDS + RECORD_LEN * layer + at;
    b[o..o + new.len()].copy_from_slice(new);
    reseal(&mut b);
    b
}

fn graph_err(bytes: &[u8]) -> FormatError {
    Model::parse(bytes).map(|_| ()).unwrap_err()
}

#[test]
fn one_malicious_file_per_graph_error() {
    let (plan, _, good) = conv_file(&TINY_UNET, Quant::F32);
    let g = plan.graph().unwrap();
    assert!(Model::parse(&good).is_ok());
    let n = g.len();
    let t = g.time_layers();
    // First data layer: the input conv (reads x); the next, silu over its output.
    let (conv_in, silu) = (t, t + 1);
    let e = |err: GraphError| FormatError::Graph(err);
    // An unknown op code.
    assert_eq!(
        graph_err(&patched(&good, silu, 0, &[99])),
        e(GraphError::UnknownOp { layer: silu, code: 99 })
    );
    // A field the op has no use for (a kernel on a silu), and a bad conv field.
    assert_eq!(
        graph_err(&patched(&good, silu, 1, &[3])),
        e(GraphError::BadField { layer: silu, field: "kernel" })
    );
    assert_eq!(
        graph_err(&patched(&good, conv_in, 3, &[3])),
        e(GraphError::BadField { layer: conv_in, field: "stride" })
    );
    assert_eq!(
        graph_err(&patched(&good, conv_in, 1, &[4])),
        e(GraphError::BadField { layer: conv_in, field: "kernel" })
    );
    // A reference to a value not yet written (a cycle written down).
    let later = (silu + 3) as u16;
    assert_eq!(
        graph_err(&patched(&good, silu, 4, &later.to_le_bytes())),
        e(GraphError::Reference { layer: silu, value: later })
    );
    // A dangling tensor reference, and a tensor used twice.
    assert_eq!(
        graph_err(&patched(&good, conv_in, 8, &999u16.to_le_bytes())),
        e(GraphError::Tensor { layer: conv_in, tensor: 999 })
    );
    assert_eq!(
        graph_err(&patched(&good, conv_in, 8, &2u16.to_le_bytes())),
        e(GraphError::Tensor { layer: conv_in, tensor: 2 })
    );
    // A stated shape the rule does not give.
    assert_eq!(
        graph_err(&patched(&good, silu, 12, &9u16.to_le_bytes())),
        e(GraphError::Shape { layer: silu, what: "stated shape" })
    );
    // A time-branch layer after the data branch: make the first data layer a time layer.
    let mut time = [0u8; RECORD_LEN];
    time[0] = 1;
    time[4..12].copy_from_slice(&[0xFF; 8]);
    time[12..14].copy_from_slice(&4u16.to_le_bytes());
    time[14..16].copy_from_slice(&1u16.to_le_bytes());
    let err = graph_err(&patched(&good, silu, 0, &time));
    assert!(
        matches!(err, FormatError::Graph(GraphError::TimeAfterData { layer }) if layer == silu),
        "{err:?}"
    );
    // Arena: a value outside its region; two live values on the same words.
    assert_eq!(
        graph_err(&patched(&good, conv_in, 16, &100_000u32.to_le_bytes())),
        e(GraphError::ArenaOverflow { layer: conv_in })
    );
    let silu_at = g.layer(silu).offset as u32;
    let err = graph_err(&patched(&good, conv_in, 16, &silu_at.to_le_bytes()));
    assert!(matches!(err, FormatError::Graph(GraphError::ArenaOverlap { .. })), "{err:?}");
    // The last layer's output is not the input's shape.
    let last_ch = 2u16.to_le_bytes();
    let err = graph_err(&patched(&good, n - 1, 12, &last_ch));
    assert!(matches!(err, FormatError::Graph(GraphError::Shape { .. } | GraphError::Output)), "{err:?}");
    // The scratch and the layer count in the header.
    let mut b = good.clone();
    let s = u32::from_le_bytes(b[field3::SCRATCH_WORDS..field3::SCRATCH_WORDS + 4].try_into().unwrap());
    b[field3::SCRATCH_WORDS..field3::SCRATCH_WORDS + 4].copy_from_slice(&(s + 1).to_le_bytes());
    reseal(&mut b);
    assert!(matches!(graph_err(&b), FormatError::Graph(GraphError::Scratch { .. })));
    let mut b = good.clone();
    b[field3::LAYERS..field3::LAYERS + 2].copy_from_slice(&0u16.to_le_bytes());
    reseal(&mut b);
    assert_eq!(graph_err(&b), e(GraphError::LayerCount { found: 0 }));
    // A region larger than its values reach (a file asking for an arena its layers do not use).
    let mut b = good.clone();
    let w = u32::from_le_bytes(b[field3::DATA_WORDS..field3::DATA_WORDS + 4].try_into().unwrap());
    b[field3::DATA_WORDS..field3::DATA_WORDS + 4].copy_from_slice(&(w + 1_000_000).to_le_bytes());
    reseal(&mut b);
    assert!(matches!(graph_err(&b), FormatError::Graph(GraphError::ArenaSize { region: "data", .. })));
    // The data description: an unknown kind, and a graph input that is not C·L.
    let mut b = good.clone();
    b[field3::DATA_KIND] = 7;
    reseal(&mut b);
    assert_eq!(graph_err(&b), FormatError::BadData { what: "kind" });
    let mut b = good.clone();
    b[field3::INPUT_LENGTH..field3::INPUT_LENGTH + 2].copy_from_slice(&15u16.to_le_bytes());
    reseal(&mut b);
    assert_eq!(graph_err(&b), FormatError::BadData { what: "graph input" });
    // The RAM figure must be the planned arena's.
    let mut b = good.clone();
    let ram = u32::from_le_bytes(b[field::RAM_BYTES..field::RAM_BYTES + 4].try_into().unwrap());
    b[field::RAM_BYTES..field::RAM_BYTES + 4].copy_from_slice(&(ram - 4).to_le_bytes());
    reseal(&mut b);
    assert!(matches!(graph_err(&b), FormatError::RamMismatch { .. }));
}

/// The record of `op` with output `shape` at `offset`, as bytes to patch in.
fn record(op: Op, shape: Shape, offset: u32) -> [u8; RECORD_LEN] {
    op.encode(shape, offset)
}

/// The value that layer `i` makes.
fn value(i: usize) -> u16 {
    i as u16 + 1
}

/// More malicious files, one per remaining way a graph can be wrong: cycles and references
/// past the end, tensor references that are not parameters or have the wrong shape, tensors
/// and values that nothing reads, an output of the wrong shape, offsets that would overflow a
/// 32-bit size, a w8a8 graph that is not ScoreNet v1, and the data description's sizes.
#[test]
fn one_malicious_file_per_graph_error_continued() {
    let (plan, _, good) = conv_file(&TINY_UNET, Quant::F32);
    let g = plan.graph().unwrap();
    let n = g.len();
    let t = g.time_layers();
    let (conv_in, silu) = (t, t + 1);
    let e = |err: GraphError| FormatError::Graph(err);
    // A cycle: a layer reading its own output; and a reference far past the end.
    assert_eq!(
        graph_err(&patched(&good, silu, 4, &value(silu).to_le_bytes())),
        e(GraphError::Reference { layer: silu, value: value(silu) })
    );
    assert_eq!(
        graph_err(&patched(&good, silu, 4, &0xFFFEu16.to_le_bytes())),
        e(GraphError::Reference { layer: silu, value: 0xFFFE })
    );
    // A tensor reference to the normalisation (not a parameter tensor).
    assert_eq!(
        graph_err(&patched(&good, conv_in, 8, &1u16.to_le_bytes())),
        e(GraphError::Tensor { layer: conv_in, tensor: 1 })
    );
    // Weight and bias references exchanged: the weight has the bias's shape.
    let (w, b) = g.layer(conv_in).op.params().unwrap();
    let mut refs = [0u8; 4];
    refs[..2].copy_from_slice(&b.to_le_bytes());
    refs[2..].copy_from_slice(&w.to_le_bytes());
    assert_eq!(
        graph_err(&patched(&good, conv_in, 8, &refs)),
        e(GraphError::Shape { layer: conv_in, what: "weight" })
    );
    // The time branch: ts = silu(temb) is its last silu; the projections p_k = linear(ts).
    let ts = (0..t).rev().find(|&i| matches!(g.layer(i).op, Op::Silu { .. })).unwrap();
    let projections: Vec<usize> =
        (ts + 1..t).filter(|&i| matches!(g.layer(i).op, Op::Linear { x, .. } if x == value(ts))).collect();
    let ts_shape = g.layer(ts).shape;
    let same = |i: &&usize| g.layer(**i).shape == ts_shape;
    let (p, q) = {
        let mut it = projections.iter().filter(same);
        (*it.next().unwrap(), *it.next().unwrap())
    };
    // A projection replaced by silu(ts) (the same shape): its weight and bias are read by no
    // layer.
    let l = g.layer(p);
    let silu_ts = record(Op::Silu { x: value(ts) }, l.shape, l.offset as u32);
    let (pw, _) = l.op.params().unwrap();
    assert_eq!(
        graph_err(&patched(&good, p, 0, &silu_ts)),
        e(GraphError::UnusedTensor { tensor: pw as usize })
    );
    // The block that adds p's output adding q's instead: p's output is read by no layer.
    let reader =
        (t..n).find(|&i| matches!(g.layer(i).op, Op::ChannelBias { v, .. } if v == value(p))).unwrap();
    assert_eq!(
        graph_err(&patched(&good, reader, 6, &value(q).to_le_bytes())),
        e(GraphError::UnusedValue { value: value(p) as usize })
    );
    // The last convolution with stride 2 (its stated length halved): the output is not the
    // input's shape.
    let mut last = patched(&good, n - 1, 3, &[2]);
    let o = field3::RECORDS + RECORD_LEN * (n - 1) + 14;
    last[o..o + 2].copy_from_slice(&8u16.to_le_bytes());
    reseal(&mut last);
    assert_eq!(graph_err(&last), e(GraphError::Output));
    // An offset near 2³²: offset + length would wrap in a 32-bit size; it lies outside the
    // region on every target.
    assert_eq!(
        graph_err(&patched(&good, silu, 16, &0xFFFF_FFF0u32.to_le_bytes())),
        e(GraphError::ArenaOverflow { layer: silu })
    );
    // The data description: C·L beyond the engine's 4096, no channels, a width on a signal.
    for (at, v, what) in [
        (field3::LENGTH, 4097u16, "channels × length"),
        (field3::CHANNELS, 0, "channels × length"),
        (field3::WIDTH, 4, "width"),
    ] {
        let mut b = good.clone();
        b[at..at + 2].copy_from_slice(&v.to_le_bytes());
        reseal(&mut b);
        assert_eq!(graph_err(&b), FormatError::BadData { what }, "{what}");
    }
}

/// A w8a8 file whose graph is valid but is not exactly ScoreNet v1 (its last silu written to
/// other, free words of the arena): the integer path cannot run it.
#[test]
fn a_w8a8_graph_other_than_scorenet_v1_is_refused() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/seeds/tiny-w8a8.tsm");
    let good = std::fs::read(path).unwrap();
    let model = Model::parse(&good).unwrap();
    let dims = model.graph().mlp_dims().unwrap();
    assert_eq!((dims.hidden, dims.blocks), (8, 1));
    // Layer 10 (silu(h) after the last block) at words H..2H instead of over h at 0.
    let h = dims.hidden as u32;
    let b = patched(&good, 10, 16, &h.to_le_bytes());
    assert_eq!(graph_err(&b), FormatError::Int8NotMlp);
    // The same change in an f32 file is a valid graph (the f32 walk runs any graph), with the
    // same bits.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/seeds/tiny-f32.tsm");
    let f32_good = std::fs::read(path).unwrap();
    let moved = patched(&f32_good, 10, 16, &h.to_le_bytes());
    let m = Model::parse(&moved).unwrap();
    assert_eq!(m.graph().mlp_dims(), None);
    let mut eps = [0.0f32; 2];
    let (mut a, mut o) = (net(&moved), net(&f32_good));
    let mut want = [0.0f32; 2];
    a.eps(&[0.3, -0.2], 0.4, &mut eps);
    o.eps(&[0.3, -0.2], 0.4, &mut want);
    assert_eq!(eps.map(f32::to_bits), want.map(f32::to_bits));
}

/// Sizes at the format's bounds do not overflow: a graph of more than 2³² multiply–
/// accumulates (1024 channels in and out over 4096 samples) is counted exactly, in 64 bits on
/// every target (a 32-bit size would wrap), and its arena of 8 Mi words is stated, not
/// allocated, by parsing.
#[test]
fn macs_beyond_32_bits_are_counted_exactly() {
    let (c, l) = (1024, 4096);
    let mut b = tinyscore_engine::graph::build::Builder::new(Shape { channels: 1, length: l }, 2);
    let wide = b.conv1d(0, c, 1, 1, 1, None).unwrap();
    let wider = b.conv1d(wide, c, 1, 1, 1, None).unwrap();
    b.conv1d(wider, 1, 1, 1, 1, None).unwrap();
    let plan = b.finish().unwrap();
    let p = vec![0.01f32; plan.param_count()];
    let data = DataShape { kind: DataKind::Signal, channels: 1, length: l };
    let (mean, std) = (vec![0.0f32; l], vec![1.0f32; l]);
    let spec =
        GraphSpec { plan: &plan, data, process: PROCESS, norm_mean: &mean, norm_std: &std, params: &p };
    let bytes = write_graph(&spec, Quant::F16).unwrap();
    let model = Model::parse(&bytes).unwrap();
    let (c, l) = (c as u64, l as u64);
    let macs = l * c + l * c * c + l * c;
    assert!(macs > u64::from(u32::MAX));
    assert_eq!(model.graph().macs(), macs);
    assert_eq!(model.graph().regions().data, 2 * (c * l) as usize);
}

#[test]
fn random_corruption_of_graph_files_never_panics() {
    let (_, _, good) = conv_file(&TINY_UNET, Quant::F32);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut parsed = 0;
    for _ in 0..3000 {
        let mut b = good.clone();
        for _ in 0..1 + next() % 4 {
            // Mostly the header, arena section and records, where the graph lives.
            let span = if next() % 4 == 0 { b.len() } else { 80 + 32 * 60 };
            let at = (next() as usize) % span.min(b.len());
            b[at] = next() as u8;
        }
        reseal(&mut b);
        if let Ok(model) = Model::parse(&b) {
            parsed += 1;
            let words = Net::arena_len(&model);
            if let Ok(mut net) = Net::new(model, vec![0.0; words]) {
                let d = net.dim();
                let mut eps = vec![0.0; d];
                net.eps(&vec![0.5; d], 0.5, &mut eps);
            }
        }
    }
    // Some corruptions hit padding or values and still parse: the loop ran the network too.
    assert!(parsed > 0);
}
