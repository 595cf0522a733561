"""tinyscore.torch: the module computes the engine's function, export → convert gives the
engine's ε̂ within 1e-5 + 1e-5·|ref| of the module's, checkpoints read back, and the README's
example runs as written. Skipped (with the reason shown by -rs) without PyTorch."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

if os.environ.get("TINYSCORE_PYTHON_TORCH") == "0":
    pytest.skip("TINYSCORE_PYTHON_TORCH=0 leaves the PyTorch tests out", allow_module_level=True)
torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install 'tinyscore[torch]')")

import tinyscore  # noqa: E402
from tinyscore.torch import ScoreNet, dsm_loss, export, load_checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

# One intra-op thread: these networks are small, and on a shared two-core machine PyTorch's
# thread pool makes a training step 15 times slower, not faster.
torch.set_num_threads(1)


def close(got, ref, atol=1e-5, rtol=1e-5):
    err = np.abs(np.asarray(got, np.float64) - np.asarray(ref, np.float64))
    bound = atol + rtol * np.abs(np.asarray(ref, np.float64))
    bad = np.argwhere(err > bound)
    assert bad.size == 0, f"{len(bad)} mismatches, first {bad[:5].tolist()}, max err {err.max():.3g}"


def randomized(net, seed):
    """Weights drawn larger than PyTorch's default, so that every layer matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        net.norm_mean.copy_(torch.randn(net.dim, generator=g))
        net.norm_std.copy_(torch.rand(net.dim, generator=g) + 0.5)
    return net


@pytest.mark.parametrize(
    "sizes,process",
    [((2, 32, 2, 16), "vp"), ((3, 24, 3, 8), "vpsde"), ((16, 64, 1, 32), "ve"), ((5, 8, 4, 4), "subvp")],
)
def test_export_convert_gives_the_modules_eps(cli, tmp_path, sizes, process):
    dim, hidden, blocks, freqs = sizes
    net = randomized(ScoreNet(dim, hidden, blocks, freqs, process=process), seed=dim)
    ckpt, tsm = tmp_path / "n.safetensors", tmp_path / "n.tsm"
    export(net, ckpt)
    calib = _calib_file(tmp_path, dim)
    cli("convert", ckpt, "--quant", "f32", "--calib", calib, "--out", tsm)
    model = tinyscore.convert(ckpt, quant="f32", calib=calib)
    assert model.to_bytes() == tsm.read_bytes()
    assert model.info["process"]["kind"] == process
    rng = np.random.default_rng(1)
    x = rng.normal(size=(256, dim)).astype(np.float32)
    t = rng.uniform(0.0, 1.0, size=256).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x), torch.from_numpy(t)).numpy()
    close(model.eps(x, t), ref)
    # The normalisation travels with the file: the samples come back in data units.
    assert model.sample(4, sampler="ddim", steps=5).shape == (4, dim)


def _calib_file(tmp_path, dim):
    path = tmp_path / "calib.csv"
    np.savetxt(path, np.random.default_rng(0).normal(size=(64, dim)), delimiter=",")
    return str(path)


def test_load_checkpoint_reads_a_trained_checkpoint_as_the_engine_runs_it(models):
    net = load_checkpoint(models["vp.ckpt"])
    assert (net.dim, net.hidden, net.n_blocks, net.freqs) == (2, 16, 2, 8)
    assert net.checkpoint["step"] == 300 and net.checkpoint["data"] == "moons"
    model = tinyscore.Model.load(models["vp-f32"])
    rng = np.random.default_rng(2)
    x = rng.normal(size=(128, 2)).astype(np.float32)
    t = rng.uniform(size=128).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x), torch.from_numpy(t)).numpy()
    close(model.eps(x, t), ref)
    raw = load_checkpoint(models["vp.ckpt"], ema=False)
    assert not torch.equal(raw.output.weight, net.output.weight)


def test_export_then_load_checkpoint_round_trips_every_tensor(tmp_path):
    net = randomized(ScoreNet(4, 16, 2, 8, process="vp", schedule="cosine", diffusion_steps=500), seed=3)
    ema = randomized(ScoreNet(4, 16, 2, 8), seed=4)
    export(net, tmp_path / "c.safetensors", ema=ema, data="8gaussians", step=17)
    back = load_checkpoint(tmp_path / "c.safetensors", ema=False)
    for (name, a), b in zip(net.tensors().items(), back.tensors().values()):
        assert torch.equal(a, b), name
    assert torch.equal(back.norm_std, net.norm_std) and torch.equal(back.norm_mean, net.norm_mean)
    assert back.checkpoint == {"step": 17, "data": "8gaussians"}
    assert back.process_flags[:2] == ["--process", "vp"]
    info = tinyscore.convert(tmp_path / "c.safetensors", calib=_calib_file(tmp_path, 4)).info
    assert info["process"] == {"kind": "vp", "steps": 500, "schedule": "cosine", "s": pytest.approx(0.008)}
    assert torch.equal(load_checkpoint(tmp_path / "c.safetensors").output.weight, ema.output.weight)


def test_dsm_loss_trains_and_the_module_checks_its_arguments(tmp_path):
    x = torch.from_numpy(tinyscore.dataset("moons", 2000, seed=0))
    for process in ["vp", "vpsde", "ve"]:
        net = ScoreNet(2, 16, 1, 8, process=process).normalize_to(x)
        g = torch.Generator().manual_seed(0)
        loss = dsm_loss(net, x[:64], generator=g)
        assert loss.ndim == 0 and torch.isfinite(loss)
        loss.backward()
        assert net.input.weight.grad is not None
    with pytest.raises(tinyscore.ArgumentError):
        ScoreNet(2, 1024)
    with pytest.raises(tinyscore.ArgumentError):
        ScoreNet(2, 16, freqs=7)
    with pytest.raises(tinyscore.ArgumentError):
        ScoreNet(2, process="magic")
    with pytest.raises(tinyscore.ArgumentError):
        export(torch.nn.Linear(2, 2), tmp_path / "x.safetensors")


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- python-example -->\s*```python\n(.*?)```", text, re.S)
    assert m, "README.md has the Python example after <!-- python-example -->"
    return m.group(1)


def test_the_readme_example_runs_as_written(tmp_path):
    code = readme_example()
    assert len([l for l in code.splitlines() if l.strip()]) <= 12
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    print(r.stdout.strip())
    assert "sliced Wasserstein distance" in r.stdout
    assert (tmp_path / "moons.tsm").exists()
    model = tinyscore.Model.load(tmp_path / "moons.tsm")
    assert model.info["precision"] == "w8a8"
