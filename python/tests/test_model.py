"""tinyscore.Model against the `tinyscore` command: every method returns the command's bits for
the same inputs (or, for the likelihood, its printed figure), and the wheel is what it says."""

import re
import sys
from pathlib import Path

import numpy as np
import pytest

import tinyscore
from conftest import read_csv, same_bits, write_csv


def test_the_wheel_imports_its_compiled_abi3_module():
    native = tinyscore._native
    path = Path(native.__file__)
    assert path.suffix == ".so" and ".abi3" in path.name, path.name
    assert Path(tinyscore.__file__).parent == path.parent
    stubs = Path(tinyscore.__file__).parent
    assert (stubs / "_native.pyi").exists() and (stubs / "py.typed").exists()


def test_load_from_path_and_bytes_is_the_same_file(models):
    path = models["vp-f32"]
    a = tinyscore.Model.load(path)
    b = tinyscore.Model.load(Path(path).read_bytes())
    assert a.to_bytes() == b.to_bytes() == Path(path).read_bytes()
    assert a.dim == 2 and a.info == b.info


@pytest.mark.parametrize("quant", ["f32", "f16", "w8", "w8a8"])
def test_report_is_what_inspect_prints(cli, models, quant):
    path = models[f"vp-{quant}"]
    model = tinyscore.Model.load(str(path))
    assert model.report() == cli("inspect", path).stdout


def test_info_describes_the_file(cli, models):
    for quant in ["f32", "w8a8"]:
        path = models[f"vp-{quant}"]
        info = tinyscore.Model.load(path).info
        assert info["precision"] == quant
        assert info["file_bytes"] == Path(path).stat().st_size == info["flash_bytes"]
        assert (info["dim"], info["hidden"], info["freqs"], info["blocks"]) == (2, 16, 8, 2)
        assert info["process"]["kind"] == "vp" and info["process"]["steps"] == 1000
        text = cli("inspect", path).stdout
        assert f"ram       {info['ram_bytes']['total']} bytes" in text
        assert f"{info['macs']} MACs per evaluation" in text
        assert ("groups" in info) == (quant == "w8a8")
        assert len(info["graph"]) == info["layers"] == 17
        assert info["graph"][-1]["channels"] == 2 and info["graph"][-1]["branch"] == "data"
        assert {l["branch"] for l in info["graph"]} == {"time", "data"}
    sde = tinyscore.Model.load(models["vpsde-f32"]).info["process"]
    assert sde["kind"] == "vpsde" and sde["beta_min"] == pytest.approx(0.1) and sde["beta_max"] == pytest.approx(20)


@pytest.mark.parametrize("quant", ["f32", "f16", "w8", "w8a8"])
def test_eps_has_the_bits_of_bench_eval_csv(cli, models, tmp_path, quant):
    path = models[f"vp-{quant}"]
    model = tinyscore.Model.load(path)
    rng = np.random.default_rng(7)
    n = 300
    x = rng.normal(size=(n, 2)).astype(np.float32) * 1.5
    # Runs of equal times (batched together) and lone ones.
    t = np.repeat(rng.uniform(0.001, 1.0, size=n // 10), 10).astype(np.float32)
    t[::7] = rng.uniform(0.0, 1.0, size=len(t[::7]))
    csv = tmp_path / "in.csv"
    write_csv(csv, np.column_stack([t, x]))
    want = read_csv_text(cli("bench", path, "--eval-csv", csv).stdout)
    got = model.eps(x, t)
    assert got.dtype == np.float32 and got.shape == (n, 2)
    assert same_bits(got, want)
    # One thread or many, one time for all or per row: the same bits.
    assert same_bits(model.eps(x, t, threads=1), want)
    assert same_bits(model.eps(x, t, threads=3), want)
    one_t = model.eps(x, 0.25)
    assert same_bits(one_t, model.eps(x, np.full(n, 0.25, np.float32), threads=2))
    assert same_bits(model.eps(x[5], t[5]), want[5])


def read_csv_text(text):
    return np.array([[np.float32(v) for v in line.split(",")] for line in text.strip().splitlines()], dtype=np.float32)


SAMPLERS = [
    ("vp-f32", "ddpm", {}),
    ("vp-f32", "ddpm", {"variance": "beta", "steps": 100}),
    ("vp-w8a8", "ddpm", {"steps": 50}),
    ("vp-f32", "ddim", {"steps": 20, "eta": 0.5}),
    ("vpsde-f32", "em", {"steps": 40}),
    ("vpsde-f32", "ode-euler", {"steps": 40}),
    ("vpsde-f32", "ode-heun", {"steps": 20, "denoise_final": True}),
    ("vpsde-f32", "pc", {"steps": 20, "snr": 0.1, "predictor": "em", "corrector_steps": 2}),
    ("vpsde-f32", "langevin", {"steps": 10, "corrector_steps": 3, "langevin_step": 0.05}),
]


@pytest.mark.parametrize("name,sampler,settings", SAMPLERS)
def test_sample_has_the_bits_of_the_command(cli, models, tmp_path, name, sampler, settings):
    path = models[name]
    n, seed = 37, 11
    flags = []
    for k, v in settings.items():
        flag = "--" + k.replace("_", "-")
        flags += [flag] if v is True else [flag, v]
    out = tmp_path / "s.csv"
    cli("sample", path, "--sampler", sampler, "--n", n, "--seed", seed, *flags, "--out", out)
    got = tinyscore.Model.load(path).sample(n, sampler=sampler, seed=seed, **settings)
    assert got.shape == (n, 2) and np.isfinite(got).all()
    assert same_bits(got, read_csv(out))


def test_sample_i_does_not_depend_on_n(models):
    model = tinyscore.Model.load(models["vp-f32"])
    a = model.sample(40, sampler="ddim", steps=10, seed=3)
    b = model.sample(17, sampler="ddim", steps=10, seed=3)
    assert same_bits(a[:17], b)
    assert not same_bits(a[:17], model.sample(17, sampler="ddim", steps=10, seed=4))


def noisy_windows(n=23, sigma=0.2, seed=5):
    rng = np.random.default_rng(seed)
    clean = tinyscore.dataset("moons", n, seed=seed)
    return (clean + sigma * rng.normal(size=clean.shape)).astype(np.float32)


@pytest.mark.parametrize(
    "py_args,cli_args",
    [
        ({"sigma": 0.2}, ["--sigma", "0.2"]),
        ({}, []),  # --sigma auto
        ({"sigma": 0.3, "method": "sdedit", "steps": 20, "draws": 2, "seed": 9},
         ["--sigma", "0.3", "--method", "sdedit", "--steps", "20", "--draws", "2", "--seed", "9"]),
    ],
)
def test_denoise_has_the_bits_of_the_command(cli, models, tmp_path, py_args, cli_args):
    path = models["vp-f32"]
    y = noisy_windows()
    inp, out = tmp_path / "y.csv", tmp_path / "o.csv"
    write_csv(inp, y)
    cli("denoise", path, "--input", inp, *cli_args, "--out", out)
    got = tinyscore.Model.load(path).denoise(y, **py_args)
    assert same_bits(got, read_csv(out))
    assert not same_bits(got, y)


def test_impute_has_the_bits_of_the_command_and_keeps_known_values(cli, models, tmp_path):
    path = models["vp-f32"]
    y = noisy_windows(n=19, sigma=0.0)
    mask = np.ones_like(y, dtype=np.uint8)
    mask[::2, 1] = 0
    mask[1::3, 0] = 0
    inp, m, out = tmp_path / "y.csv", tmp_path / "m.csv", tmp_path / "o.csv"
    write_csv(inp, y)
    write_csv(m, mask)
    cli("denoise", path, "--input", inp, "--mask", m, "--steps", 30, "--draws", 2, "--resample", 2,
        "--seed", 4, "--out", out)
    got = tinyscore.Model.load(path).impute(y, mask.astype(bool), steps=30, draws=2, resample=2, seed=4)
    assert same_bits(got, read_csv(out))
    known = mask == 1
    assert same_bits(got[known], y[known])
    assert not same_bits(got[~known], y[~known])


def test_likelihood_matches_the_command(cli, models, tmp_path):
    path = models["vp-f32"]
    x = tinyscore.dataset("moons", 40, seed=12)
    csv = tmp_path / "x.csv"
    write_csv(csv, x)
    text = cli("likelihood", path, "--data", csv, "--n", 40, "--steps", 20).stdout
    nll = float(re.search(r"NLL (-?[0-9.]+) ±", text).group(1))
    logp = tinyscore.Model.load(path).likelihood(x, steps=20)
    assert logp.shape == (40,) and logp.dtype == np.float64 and np.isfinite(logp).all()
    # The command prints -mean(log p)/D to 4 decimals.
    assert abs(-logp.mean() / 2 - nll) <= 0.5e-4 + 1e-12
    # The Hutchinson estimate is another figure of the same quantity.
    h = tinyscore.Model.load(path).likelihood(x[:5], steps=20, hutchinson=8, seed=3)
    assert h.shape == (5,) and not same_bits(h.astype(np.float32), logp[:5].astype(np.float32))


@pytest.mark.parametrize("quant", ["f32", "f16", "w8", "w8a8"])
def test_convert_writes_the_bytes_of_the_command(cli, models, tmp_path, quant):
    ckpt = models["vp.ckpt"]
    out = tmp_path / f"py-{quant}.tsm"
    model, groups, snr = tinyscore.convert_report(ckpt, out, quant=quant)
    want = Path(models[f"vp-{quant}"]).read_bytes()
    assert out.read_bytes() == want == model.to_bytes()
    assert (groups > 0) == (quant == "w8a8")
    printed = cli("convert", ckpt, "--quant", quant, "--out", tmp_path / "cli.tsm").stdout
    if quant == "f32":
        assert snr == float("inf") and "exact" in printed
    else:
        assert f"{snr:.2f} dB" in printed


def test_convert_with_raw_weights_and_groups(cli, models, tmp_path):
    ckpt = models["vp.ckpt"]
    cli("convert", ckpt, "--quant", "w8a8", "--raw", "--groups", 2, "--out", tmp_path / "c.tsm")
    model = tinyscore.convert(ckpt, quant="w8a8", raw=True, groups=2)
    assert model.to_bytes() == (tmp_path / "c.tsm").read_bytes()
    assert model.info["groups"] == 2


def test_progress_is_reported_and_ends_at_the_total(models):
    model = tinyscore.Model.load(models["vp-f32"])
    seen = []
    model.sample(64, sampler="ddpm", seed=1, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1] == (64, 64)
    assert all(b[0] >= a[0] for a, b in zip(seen, seen[1:]))
    seen.clear()
    model.denoise(noisy_windows(), sigma=0.1, method="sdedit", steps=10, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (23, 23)


def test_an_exception_in_the_progress_callback_stops_the_call(models):
    model = tinyscore.Model.load(models["vp-f32"])

    class Stop(Exception):
        pass

    calls = []

    def stop(done, total):
        calls.append(done)
        raise Stop("enough")

    with pytest.raises(Stop):
        model.sample(20000, sampler="ddpm", seed=1, progress=stop)
    assert len(calls) == 1
    # The model is still usable afterwards.
    assert model.sample(3, sampler="ddim", steps=5).shape == (3, 2)


def test_dataset_and_evaluate_are_the_commands(cli, tmp_path, models):
    x = tinyscore.dataset("moons", 500, seed=3)
    assert x.shape == (500, 2) and x.dtype == np.float32
    samples = tinyscore.Model.load(models["vp-f32"]).sample(300, sampler="ddim", steps=20, seed=2)
    csv = tmp_path / "s.csv"
    write_csv(csv, samples)
    report = tinyscore.evaluate(samples, "moons")
    assert cli("eval", "--samples", csv, "--data", "moons").stdout.strip() == report["text"]
    assert report["floor"] > 0 and report["distance"] > 0
