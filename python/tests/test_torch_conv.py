"""tinyscore.torch.ScoreNetConv: the 1-D U-Net module computes the engine's function, export →
convert gives the engine's ε̂ within 1e-5 + 1e-5·|ref| of the module's (1 and several signal
channels, several levels and kernels, f32 and f16), `tinyscore train --arch conv` checkpoints read
back into a module that matches the engine, and every error path raises a typed exception.
Skipped (with the reason shown by -rs) without PyTorch."""

import json
import os
import struct

import numpy as np
import pytest

if os.environ.get("TINYSCORE_PYTHON_TORCH") == "0":
    pytest.skip("TINYSCORE_PYTHON_TORCH=0 leaves the PyTorch tests out", allow_module_level=True)
torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install 'tinyscore[torch]')")

import tinyscore  # noqa: E402
from tinyscore.torch import ScoreNetConv, dsm_loss, export, load_checkpoint  # noqa: E402

# See test_torch.py: one intra-op thread on a shared machine.
torch.set_num_threads(1)


def close(got, ref, atol=1e-5, rtol=1e-5):
    err = np.abs(np.asarray(got, np.float64) - np.asarray(ref, np.float64))
    bound = atol + rtol * np.abs(np.asarray(ref, np.float64))
    bad = np.argwhere(err > bound)
    assert bad.size == 0, f"{len(bad)} mismatches, first {bad[:5].tolist()}, max err {err.max():.3g}"
    return err.max(), np.abs(ref).max()


def randomized(net, seed):
    """Weights of a trained network's size (std 1/√fan_in, √3 times PyTorch's initial draw;
    biases 0.3; the output convolution, which starts at zero, too), so that every layer matters
    and the activations stay O(1): with a fixed std of 0.3 a deep U-Net's activations grow to
    1e5, and then f32 rounding alone (the engine's or PyTorch's, each as far from an f64
    evaluation) exceeds any fixed tolerance."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            fan_in = int(np.prod(p.shape[1:])) if p.dim() > 1 else 0
            p.copy_(torch.randn(p.shape, generator=g) * (fan_in**-0.5 if fan_in else 0.3))
        mean = torch.randn(net.channels, generator=g).repeat_interleave(net.length)
        net.norm_mean.copy_(mean)
        net.norm_std.copy_(torch.rand(net.dim, generator=g) + 0.5)
    return net


def signals(n, channels, length, seed):
    """Noisy sines, (n, C·L) channel-major: a channel's L samples contiguous."""
    rng = np.random.default_rng(seed)
    pos = np.arange(length)
    rows = []
    for _ in range(n):
        chans = [
            (c + 1) * np.sin(2 * np.pi * pos / length * rng.uniform(1, 4) + rng.uniform(0, 6)) + c
            for c in range(channels)
        ]
        rows.append(np.concatenate(chans) + 0.05 * rng.normal(size=channels * length))
    return np.asarray(rows, dtype=np.float32)


def csv_of(path, rows):
    np.savetxt(path, rows, delimiter=",", fmt="%.9g")
    return str(path)


def eps_of(net, x, t):
    with torch.no_grad():
        return net(torch.from_numpy(x), torch.from_numpy(t)).numpy()


# (channels, length, width, levels, blocks, kernel, temb, freqs, process)
SIZES = [
    (1, 32, 4, 2, 1, 3, 8, 8, "vp"),
    (2, 32, 4, 1, 2, 5, 16, 16, "vpsde"),
    (3, 16, 3, 0, 1, 1, 6, 4, "ve"),
    (1, 64, 6, 3, 1, 7, None, 32, "subvp"),
    (4, 8, 5, 3, 1, 3, 12, 8, "vp"),
]


@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: f"C{s[0]}-L{s[1]}-levels{s[3]}-K{s[5]}-{s[8]}")
def test_conv_export_convert_gives_the_modules_eps(cli, tmp_path, sizes):
    channels, length, width, levels, blocks, kernel, temb, freqs, process = sizes
    net = ScoreNetConv(length, channels, width, levels, blocks, kernel, temb, freqs, process=process)
    net = randomized(net, seed=channels * 100 + length)
    ckpt, tsm = tmp_path / "c.safetensors", tmp_path / "c.tsm"
    export(net, ckpt)
    calib = csv_of(tmp_path / "calib.csv", signals(16, channels, length, 0))
    cli("convert", ckpt, "--quant", "f32", "--calib", calib, "--out", tsm)
    model = tinyscore.convert(ckpt, quant="f32", calib=calib)
    assert model.to_bytes() == tsm.read_bytes()
    assert model.dim == channels * length
    assert model.info["process"]["kind"] == process
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, channels * length)).astype(np.float32)
    t = rng.uniform(0.0, 1.0, size=64).astype(np.float32)
    ref = eps_of(net, x, t)
    err, top = close(model.eps(x, t), ref)
    print(f"largest |engine − module| {err:.2g} for |ε̂| up to {top:.2g}")  # docs/BENCHMARKS.md
    # (batch, C, L), as nn.Conv1d takes signals, is the same function.
    with torch.no_grad():
        three = net(torch.from_numpy(x).reshape(64, channels, length), torch.from_numpy(t))
    assert three.shape == (64, channels, length)
    assert torch.equal(three.reshape(64, -1), torch.from_numpy(ref))
    assert model.sample(2, sampler="ddim", steps=3).shape == (2, channels * length)


def test_conv_f16_file_runs_the_modules_f16_weights(cli, tmp_path):
    """An f16 file stores the weights rounded to half precision: a module holding those rounded
    weights is the function the engine runs."""
    net = randomized(ScoreNetConv(32, 2, width=4, levels=2, kernel=3, temb=8, freqs=8), seed=5)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(p.half().float())
    ckpt = tmp_path / "h.safetensors"
    export(net, ckpt, data=csv_of(tmp_path / "calib.csv", signals(16, 2, 32, 0)))
    cli("convert", ckpt, "--quant", "f16", "--out", tmp_path / "h.tsm")
    model, groups, snr = tinyscore.convert_report(ckpt, quant="f16")
    assert model.to_bytes() == (tmp_path / "h.tsm").read_bytes()
    assert model.info["precision"] == "f16" and groups == 0 and snr > 20
    rng = np.random.default_rng(2)
    x = rng.normal(size=(32, 64)).astype(np.float32)
    t = rng.uniform(size=32).astype(np.float32)
    close(model.eps(x, t), eps_of(net, x, t))


def train_conv(cli, tmp_path, channels):
    data = csv_of(tmp_path / f"train{channels}.csv", signals(64, channels, 32, channels))
    ckpt = tmp_path / f"trained{channels}.safetensors"
    cli("train", "--data", data, "--arch", "conv", "--signal-channels", channels, "--steps", 5, "--width", 4,
        "--levels", 2, "--kernel", 3, "--freqs", 8, "--batch", 8, "--lr", 0.05, "--ema", 0.5, "--out", ckpt)
    return ckpt, data


@pytest.mark.parametrize("channels", [1, 2])
def test_load_checkpoint_reads_what_train_arch_conv_wrote(cli, tmp_path, channels):
    ckpt, data = train_conv(cli, tmp_path, channels)
    net = load_checkpoint(ckpt)
    assert isinstance(net, ScoreNetConv)
    assert net.sizes == {"channels": channels, "length": 32, "width": 4, "levels": 2, "blocks": 1, "kernel": 3,
                         "freqs": 8, "temb": 16}
    assert net.checkpoint == {"step": 5, "data": data}
    # The trainer's normalisation is per channel; normalize_to computes the same one.
    x = np.loadtxt(data, delimiter=",", dtype=np.float32, ndmin=2)
    fitted = ScoreNetConv(32, channels, width=4, levels=2, kernel=3, freqs=8).normalize_to(x)
    assert torch.allclose(fitted.norm_mean, net.norm_mean, rtol=1e-6, atol=1e-6)
    assert torch.allclose(fitted.norm_std, net.norm_std, rtol=1e-6, atol=1e-6)
    tsm = tmp_path / "t.tsm"
    cli("convert", ckpt, "--quant", "f32", "--out", tsm)
    model = tinyscore.Model.load(tsm)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(48, 32 * channels)).astype(np.float32)
    t = rng.uniform(size=48).astype(np.float32)
    close(model.eps(x, t), eps_of(net, x, t))
    raw = load_checkpoint(ckpt, ema=False)
    assert not torch.equal(raw.output.weight, net.output.weight)
    close(tinyscore.convert(ckpt, raw=True).eps(x, t), eps_of(raw, x, t))
    # Export of what was read gives the trainer's file back: the same .tsm bytes.
    again = tmp_path / "again.safetensors"
    export(raw, again, ema=net, data=net.checkpoint["data"], step=5)
    assert tinyscore.convert(again).to_bytes() == tsm.read_bytes()
    back = load_checkpoint(again, ema=False)
    for (name, a), b in zip(raw.tensors().items(), back.tensors().values()):
        assert torch.equal(a, b), name


def test_a_pytorch_loop_trains_the_conv_module_and_the_engine_samples_it(tmp_path):
    x = torch.from_numpy(signals(256, 2, 16, 7))
    net = ScoreNetConv(16, 2, width=4, levels=2, kernel=3, freqs=8).normalize_to(x)
    assert torch.equal(net.output.weight, torch.zeros_like(net.output.weight))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(30):
        loss = dsm_loss(net, x[torch.randint(len(x), (32,), generator=g)], generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.detach().item())
    assert all(np.isfinite(losses)) and np.mean(losses[-5:]) < np.mean(losses[:5])
    # (batch, C, L) batches train as (batch, C·L) ones.
    assert torch.isfinite(dsm_loss(net, x[:8].reshape(8, 2, 16), generator=g))
    export(net, tmp_path / "loop.safetensors", data=csv_of(tmp_path / "d.csv", x.numpy()))
    model = tinyscore.convert(tmp_path / "loop.safetensors", tmp_path / "loop.tsm", quant="f16")
    samples = model.sample(8, sampler="ddim", steps=10, seed=1)
    assert samples.shape == (8, 32) and np.isfinite(samples).all()


def test_every_quant_converts_a_conv_network(cli, tmp_path):
    net = randomized(ScoreNetConv(16, 1, width=2, levels=1, kernel=3, freqs=4), seed=1)
    ckpt = tmp_path / "q.safetensors"
    export(net, ckpt, data=csv_of(tmp_path / "calib.csv", signals(8, 1, 16, 0)))
    # w8a8 (integer activations, calibrated on the recorded data) as the command writes it.
    model = tinyscore.convert(ckpt, tmp_path / "py.tsm", quant="w8a8")
    assert model.info["precision"] == "w8a8"
    r = cli("convert", ckpt, "--quant", "w8a8", "--out", tmp_path / "q.tsm", check=False)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "q.tsm").read_bytes() == (tmp_path / "py.tsm").read_bytes()
    assert np.isfinite(model.sample(4, sampler="ddim", steps=5, seed=1)).all()
    # f32, f16 and w8 (int8 weights, one scale per output channel) convert.
    assert tinyscore.convert(ckpt, quant="f16").info["precision"] == "f16"
    assert tinyscore.convert(ckpt, quant="w8").info["precision"] == "w8"


@pytest.mark.parametrize(
    "kwargs,words",
    [
        (dict(length=30, levels=2), "multiple of 2^levels"),
        (dict(length=32, kernel=4), "kernel"),
        (dict(length=32, width=0), "width"),
        (dict(length=32, channels=0), "channels"),
        (dict(length=32, levels=7), "levels"),
        (dict(length=32, freqs=7), "freqs"),
        (dict(length=32, temb=0), "temb"),
        (dict(length=4096, channels=2, levels=1), "capacities"),
        (dict(length=32, process="magic"), "process"),
    ],
)
def test_conv_sizes_are_checked_as_the_trainer_checks_them(kwargs, words):
    with pytest.raises(tinyscore.ArgumentError) as e:
        ScoreNetConv(**kwargs)
    assert words in str(e.value)


def test_export_checks_its_modules(tmp_path):
    net = ScoreNetConv(16, 1, width=2, levels=1, kernel=3, freqs=4)
    with pytest.raises(tinyscore.ArgumentError, match="same sizes"):
        export(net, tmp_path / "x.safetensors", ema=ScoreNetConv(16, 1, width=3, levels=1, kernel=3, freqs=4))
    with pytest.raises(tinyscore.ArgumentError, match="same sizes"):
        export(net, tmp_path / "x.safetensors", ema=tinyscore.torch.ScoreNet(16, 8, 1, 4))
    with pytest.raises(tinyscore.ArgumentError, match="ScoreNetConv"):
        export(torch.nn.Conv1d(1, 1, 3), tmp_path / "x.safetensors")
    with torch.no_grad():
        net.input.bias[0] = float("nan")
    with pytest.raises(tinyscore.ArgumentError, match="finite"):
        export(net, tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def edited(src, dst, edit):
    """A copy of safetensors file `src` whose JSON header `edit` changed (the data untouched)."""
    raw = src.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    edit(header)
    text = json.dumps(header).encode()
    dst.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n :])
    return dst


def test_a_bad_conv_checkpoint_raises_checkpoint_error(tmp_path):
    good = tmp_path / "good.safetensors"
    export(ScoreNetConv(16, 1, width=2, levels=1, kernel=3, freqs=4), good)
    assert isinstance(load_checkpoint(good), ScoreNetConv)

    def drop_temb(h):
        del h["__metadata__"]["temb"]

    def odd_kernel(h):
        h["__metadata__"]["kernel"] = "4"

    def transposed(h):
        h["layers.1.weight"]["shape"] = h["layers.1.weight"]["shape"][::-1]

    def unknown_arch(h):
        h["__metadata__"]["arch"] = "transformer"

    for edit, kind in [(drop_temb, "BadMetadata"), (odd_kernel, "BadDims"), (transposed, "WrongShape"),
                       (unknown_arch, "BadMetadata")]:
        bad = edited(good, tmp_path / f"{edit.__name__}.safetensors", edit)
        with pytest.raises(tinyscore.CheckpointError) as e:
            load_checkpoint(bad)
        assert e.value.kind == kind, (edit.__name__, e.value.kind, str(e.value))
        assert str(bad) in str(e.value)
        with pytest.raises(tinyscore.CheckpointError):
            tinyscore.convert(bad, calib="moons")
