//! Checkpoints: bit-exact round trip, bit-exact resume, and refusal of bad files.

use std::path::PathBuf;

use tinyscore_engine::format::Role;
use tinyscore_train::checkpoint::{tensor_names, Checkpoint, CheckpointError};
use tinyscore_train::data;
use tinyscore_train::train::{Arch, Network, TimeDraw, TrainConfig, Trainer};

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tinyscore-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn config() -> TrainConfig {
    TrainConfig { hidden: 32, blocks: 2, freqs: 8, batch: 96, warmup: 4, seed: 3, ..TrainConfig::default() }
}

/// A path in a folder of its own (the round-trip test checks its folder for temporary files, so
/// tests that save checkpoints at the same time keep out of it).
fn tmp_apart(name: &str) -> PathBuf {
    let dir = tmp("apart");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn save_load_round_trip_is_bit_exact() {
    let moons = data::load("moons", 400, 1).unwrap();
    let mut tr = Trainer::new(config(), &moons, "moons").unwrap();
    for _ in 0..3 {
        tr.step();
    }
    let ck = tr.checkpoint();
    let path = tmp("round.safetensors");
    ck.save(&path).unwrap();
    let back = Checkpoint::load(&path).unwrap();
    assert_eq!(back, ck);
    assert_eq!(bits(&back.params), bits(&ck.params));
    assert_eq!(bits(&back.adam_v), bits(&ck.adam_v));
    assert_eq!(back.step, 3);
    assert_eq!(back.data_spec, "moons");
    // Named tensors are the slices of the flat vectors.
    assert_eq!(back.tensor(Role::OutputB, false).len(), 2);
    assert_eq!(back.tensor(Role::BlockW1(1), true).len(), 32 * 32);
    assert_eq!(back.tensor(Role::NormStd, false), &ck.norm.std[..]);
    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn resume_continues_bit_exactly() {
    let moons = data::load("moons", 400, 2).unwrap();
    let mut straight = Trainer::new(config(), &moons, "moons").unwrap();
    let losses: Vec<u32> = (0..8).map(|_| straight.step().to_bits()).collect();

    let mut first = Trainer::new(config(), &moons, "moons").unwrap();
    let mut resumed_losses: Vec<u32> = (0..3).map(|_| first.step().to_bits()).collect();
    let path = tmp("resume.safetensors");
    first.checkpoint().save(&path).unwrap();
    drop(first);
    let mut second = Trainer::resume(Checkpoint::load(&path).unwrap(), &moons).unwrap();
    assert_eq!(second.steps_done(), 3);
    resumed_losses.extend((0..5).map(|_| second.step().to_bits()));

    assert_eq!(resumed_losses, losses);
    let (a, b) = (straight.checkpoint(), second.checkpoint());
    assert_eq!(bits(&a.params), bits(&b.params));
    assert_eq!(bits(&a.ema), bits(&b.ema));
    assert_eq!(bits(&a.adam_m), bits(&b.adam_m));
    assert_eq!(a, b);
}

/// A conv run on 1-channel signals of 32 samples.
fn conv_run() -> (TrainConfig, data::Dataset) {
    let rows = 24;
    let values = (0..rows * 32).map(|i| ((i % 32) as f32 * 0.3 + (i / 32) as f32).sin()).collect();
    let cfg = TrainConfig {
        arch: Arch::Conv { channels: 1, levels: 1, kernel: 3, temb: 8 },
        hidden: 4,
        blocks: 1,
        freqs: 4,
        batch: 12,
        warmup: 2,
        seed: 5,
        ..TrainConfig::default()
    };
    (cfg, data::Dataset::from_rows(32, values, "wave"))
}

#[test]
fn a_conv_checkpoint_round_trips_and_resumes_bit_exactly() {
    let (cfg, wave) = conv_run();
    let mut straight = Trainer::new(cfg.clone(), &wave, "wave").unwrap();
    let losses: Vec<u32> = (0..6).map(|_| straight.step().to_bits()).collect();
    let mut first = Trainer::new(cfg, &wave, "wave").unwrap();
    let mut resumed: Vec<u32> = (0..2).map(|_| first.step().to_bits()).collect();
    let path = tmp("conv.safetensors");
    let ck = first.checkpoint();
    ck.save(&path).unwrap();
    let back = Checkpoint::load(&path).unwrap();
    assert_eq!(back, ck);
    assert!(matches!(back.network, Network::Conv(_)));
    let mut second = Trainer::resume(back, &wave).unwrap();
    resumed.extend((0..4).map(|_| second.step().to_bits()));
    assert_eq!(resumed, losses);
    assert_eq!(bits(straight.params()), bits(second.params()));
    // The tensors are named by layer, conv weights in PyTorch's (C_out, C_in, K) shape.
    let names = tensor_names(&ck.network).unwrap();
    assert!(names.iter().any(|(n, s)| n.ends_with(".weight") && s.len() == 3 && s[2] == 3), "{names:?}");
    assert_eq!(names.iter().map(|(_, s)| s.iter().product::<usize>()).sum::<usize>(), ck.params.len());
    let bytes = std::fs::read(&path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let md = meta.metadata().as_ref().unwrap();
    assert_eq!(md["arch"], "conv");
    assert_eq!(md["levels"], "1");
}

#[test]
fn a_conv_checkpoint_must_state_its_sizes() {
    let (cfg, wave) = conv_run();
    let tr = Trainer::new(cfg, &wave, "wave").unwrap();
    let ck = tr.checkpoint();
    let path = tmp("conv-sizes.safetensors");
    ck.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let tensors: Vec<(String, safetensors::tensor::TensorView<'_>)> = st.tensors();
    for (key, value) in
        [("levels", None), ("kernel", Some("4")), ("channels", Some("3")), ("arch", Some("rnn"))]
    {
        let mut md = meta.metadata().clone().unwrap();
        match value {
            Some(v) => md.insert(key.to_string(), v.to_string()),
            None => md.remove(key),
        };
        let out =
            safetensors::serialize(tensors.iter().map(|(n, v)| (n.as_str(), v.clone())), &Some(md)).unwrap();
        let bad = tmp(&format!("conv-bad-{key}.safetensors"));
        std::fs::write(&bad, out).unwrap();
        let e = Checkpoint::load(&bad).unwrap_err();
        assert!(
            matches!(e, CheckpointError::BadMetadata { .. } | CheckpointError::BadDims { .. }),
            "{key}: {e}"
        );
    }
}

#[test]
fn resume_refuses_other_data_dimension() {
    let moons = data::load("moons", 100, 2).unwrap();
    let tr = Trainer::new(config(), &moons, "moons").unwrap();
    let other = data::Dataset::from_rows(3, vec![0.0; 30], "three");
    let e = Trainer::resume(tr.checkpoint(), &other).unwrap_err();
    assert!(e.to_string().contains("dimension 3"), "{e}");
}

/// Writes a safetensors file with the given f32 tensors and metadata.
fn write_st(path: &PathBuf, tensors: &[(String, Vec<usize>, Vec<f32>)], meta: Option<Vec<(&str, &str)>>) {
    use safetensors::tensor::{Dtype, TensorView};
    let bytes: Vec<Vec<u8>> =
        tensors.iter().map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, s, _), b)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), b).unwrap()))
        .collect();
    let meta = meta.map(|m| m.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    std::fs::write(path, safetensors::serialize(views, &meta).unwrap()).unwrap();
}

/// The weights of `ck` as (name, shape, values).
fn weights(ck: &Checkpoint) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    ck.network
        .mlp()
        .unwrap()
        .params()
        .map(|(role, rows, cols)| {
            let shape = if role.is_matrix() { vec![rows, cols] } else { vec![rows] };
            (role.name().to_string(), shape, ck.tensor(role, false).to_vec())
        })
        .collect()
}

#[test]
fn weights_only_file_loads_with_defaults() {
    let moons = data::load("moons", 100, 2).unwrap();
    let mut tr = Trainer::new(config(), &moons, "moons").unwrap();
    tr.step();
    let ck = tr.checkpoint();
    let path = tmp("weights-only.safetensors");
    write_st(&path, &weights(&ck), None);
    let back = Checkpoint::load(&path).unwrap();
    assert_eq!(back.network, ck.network, "sizes inferred from shapes");
    assert_eq!(back.params, ck.params);
    assert_eq!(back.ema, ck.params, "missing EMA copies the weights");
    assert!(back.adam_m.iter().chain(&back.adam_v).all(|&v| v == 0.0));
    assert_eq!(back.norm.std, vec![1.0; 2]);
    assert_eq!(back.step, 0);
}

#[test]
fn bad_files_are_typed_errors() {
    let moons = data::load("moons", 100, 2).unwrap();
    let tr = Trainer::new(config(), &moons, "moons").unwrap();
    let ck = tr.checkpoint();
    let good = tmp("good.safetensors");
    ck.save(&good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let check = |name: &str, contents: &[u8], want: fn(&CheckpointError) -> bool| {
        let p = tmp(name);
        std::fs::write(&p, contents).unwrap();
        let e = Checkpoint::load(&p).unwrap_err();
        let msg = e.to_string();
        assert!(want(&e), "{name}: {msg}");
        assert!(msg.contains(name) && !msg.contains('\n'), "{name}: {msg}");
    };
    check("truncated.safetensors", &bytes[..bytes.len() - 10], |e| {
        matches!(e, CheckpointError::NotSafetensors { .. })
    });
    check("garbage.safetensors", b"definitely not a checkpoint", |e| {
        matches!(e, CheckpointError::NotSafetensors { .. })
    });
    check("empty.safetensors", b"", |e| matches!(e, CheckpointError::NotSafetensors { .. }));
    // Corrupt a weight value to NaN: the last 4 bytes are the last tensor's last value.
    let mut nan = bytes.clone();
    let n = nan.len();
    nan[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    check("nan.safetensors", &nan, |e| matches!(e, CheckpointError::BadValue { .. }));

    let mut w = weights(&ck);
    w.retain(|(n, ..)| n != "blocks.1.w2");
    let p = tmp("missing.safetensors");
    write_st(&p, &w, Some(vec![("dim", "2"), ("hidden", "32"), ("freqs", "8"), ("blocks", "2")]));
    assert!(
        matches!(Checkpoint::load(&p), Err(CheckpointError::MissingTensor { ref name, .. }) if name == "blocks.1.w2")
    );

    // Another architecture: metadata says hidden 64.
    let p = tmp("arch.safetensors");
    write_st(&p, &weights(&ck), Some(vec![("dim", "2"), ("hidden", "64"), ("freqs", "8"), ("blocks", "2")]));
    let e = Checkpoint::load(&p).unwrap_err();
    assert!(matches!(e, CheckpointError::WrongShape { .. }), "{e}");
    // Fewer blocks declared than present.
    write_st(&p, &weights(&ck), Some(vec![("blocks", "1")]));
    assert!(matches!(Checkpoint::load(&p), Err(CheckpointError::BadMetadata { key: "blocks", .. })));
    write_st(&p, &weights(&ck), Some(vec![("format", "something-else")]));
    assert!(matches!(Checkpoint::load(&p), Err(CheckpointError::Format { .. })));
    write_st(&p, &weights(&ck), Some(vec![("lr", "fast")]));
    assert!(matches!(Checkpoint::load(&p), Err(CheckpointError::BadMetadata { key: "lr", .. })));
    write_st(&p, &weights(&ck), Some(vec![("schedule", "linear:0.5:0.1")]));
    assert!(matches!(Checkpoint::load(&p), Err(CheckpointError::BadMetadata { key: "schedule", .. })));
    write_st(&p, &weights(&ck), Some(vec![("freqs", "7")]));
    assert!(matches!(Checkpoint::load(&p), Err(CheckpointError::BadDims { .. })));
    // Wrong dtype.
    {
        use safetensors::tensor::{Dtype, TensorView};
        let data = vec![0u8; 16];
        let v = TensorView::new(Dtype::F64, vec![2], &data).unwrap();
        std::fs::write(&p, safetensors::serialize(vec![("input.w", v)], &None).unwrap()).unwrap();
        assert!(Checkpoint::load(&p).is_err());
    }
    // A directory and a missing file.
    assert!(matches!(Checkpoint::load(&std::env::temp_dir()), Err(CheckpointError::Io { .. })));
    assert!(matches!(Checkpoint::load(&tmp("absent.safetensors")), Err(CheckpointError::Io { .. })));
}

#[test]
fn the_time_draw_is_recorded_and_resumed() {
    let moons = data::load("moons", 400, 2).unwrap();
    let draw = TimeDraw::new(0.5, 0.3).unwrap();
    let cfg = TrainConfig { time_draw: draw, ..config() };
    // A default run's file names no draw (its bytes are as before the option); this one does.
    let plain = tmp_apart("draw-plain.safetensors");
    Trainer::new(config(), &moons, "moons").unwrap().checkpoint().save(&plain).unwrap();
    assert!(!String::from_utf8_lossy(&std::fs::read(&plain).unwrap()).contains("low_noise"));
    assert_eq!(Checkpoint::load(&plain).unwrap().config.time_draw, TimeDraw::UNIFORM);

    let mut straight = Trainer::new(cfg.clone(), &moons, "moons").unwrap();
    let losses: Vec<u32> = (0..6).map(|_| straight.step().to_bits()).collect();
    let mut first = Trainer::new(cfg, &moons, "moons").unwrap();
    let mut resumed: Vec<u32> = (0..2).map(|_| first.step().to_bits()).collect();
    let path = tmp_apart("draw.safetensors");
    first.checkpoint().save(&path).unwrap();
    let back = Checkpoint::load(&path).unwrap();
    assert_eq!(back.config.time_draw, draw);
    let mut second = Trainer::resume(back, &moons).unwrap();
    resumed.extend((0..4).map(|_| second.step().to_bits()));
    assert_eq!(resumed, losses, "a resumed run keeps its draw, bit for bit");
    assert_eq!(bits(straight.params()), bits(second.params()));

    // The draw reaches the steps: the uniform run from the same seed differs.
    let mut uniform = Trainer::new(config(), &moons, "moons").unwrap();
    let other: Vec<u32> = (0..6).map(|_| uniform.step().to_bits()).collect();
    assert_ne!(other, losses);

    // A fine-tune changes the draw of the following steps, and its checkpoints record it.
    let mut tune = Trainer::resume(Checkpoint::load(&plain).unwrap(), &moons).unwrap();
    tune.set_time_draw(draw).unwrap();
    assert_eq!(tune.checkpoint().config.time_draw, draw);
    assert!(tune.set_time_draw(TimeDraw { share: 2.0, max: 0.3 }).is_err());
    assert!(tune.set_time_draw(TimeDraw { share: 0.5, max: 0.0 }).is_err());
    assert_eq!(tune.config().time_draw, draw, "a refused draw changes nothing");
    // A config with a bad draw is refused by the trainer.
    let bad = TrainConfig { time_draw: TimeDraw { share: -1.0, max: 0.3 }, ..config() };
    assert!(Trainer::new(bad, &moons, "moons").is_err());
}

#[test]
fn bad_time_draw_metadata_is_refused() {
    let moons = data::load("moons", 100, 2).unwrap();
    let ck = Trainer::new(config(), &moons, "moons").unwrap().checkpoint();
    let p = tmp_apart("bad-draw.safetensors");
    for (meta, key) in [
        (vec![("low_noise_share", "1.5"), ("low_noise_max", "0.3")], "low_noise_share"),
        (vec![("low_noise_share", "0.5"), ("low_noise_max", "0")], "low_noise_max"),
        (vec![("low_noise_share", "lots"), ("low_noise_max", "0.3")], "low_noise_share"),
        (vec![("low_noise_share", "0.5")], "low_noise_max"),
    ] {
        write_st(&p, &weights(&ck), Some(meta.clone()));
        match Checkpoint::load(&p) {
            Err(CheckpointError::BadMetadata { key: k, .. }) => assert_eq!(k, key, "{meta:?}"),
            other => panic!("{meta:?}: {other:?}"),
        }
    }
    write_st(&p, &weights(&ck), Some(vec![("low_noise_share", "0.25"), ("low_noise_max", "0.1")]));
    assert_eq!(Checkpoint::load(&p).unwrap().config.time_draw, TimeDraw::new(0.25, 0.1).unwrap());
}
