"""Every error path raises a typed exception of tinyscore.errors carrying the engine's error
variant, and no input crashes the interpreter."""

import os
from pathlib import Path

import numpy as np
import pytest

import tinyscore
from tinyscore import errors


def valid(models, name="vp-f32"):
    return bytearray(Path(models[name]).read_bytes())


def test_the_exception_classes_form_one_hierarchy():
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.TinyscoreError)
        assert getattr(tinyscore, name) is getattr(errors, name)
    assert issubclass(errors.ArgumentError, ValueError)
    e = errors.ModelFileError("message", "BadMagic")
    assert str(e) == "message" and e.kind == "BadMagic"


@pytest.mark.parametrize(
    "edit,kind",
    [
        (lambda b: b"", "Truncated"),
        (lambda b: b[:10], "Truncated"),
        (lambda b: b"XXXX" + b[4:], "BadMagic"),
        (lambda b: b[:-1], None),
        (lambda b: b + b"\0" * 16, None),
        (lambda b: b[:200] + bytes([b[200] ^ 0xFF]) + b[201:], None),
    ],
)
def test_a_bad_file_raises_model_file_error(models, edit, kind):
    data = bytes(edit(valid(models)))
    with pytest.raises(tinyscore.ModelFileError) as e:
        tinyscore.Model.load(data)
    assert e.value.kind, "the engine's variant is named"
    if kind:
        assert e.value.kind == kind
    assert "invalid model file" in str(e.value)


def test_a_flipped_byte_anywhere_never_crashes(models):
    """Every single-byte corruption either loads (and runs) or raises a typed error."""
    data = valid(models)
    rng = np.random.default_rng(0)
    kinds = set()
    for pos in rng.choice(len(data), size=300, replace=False):
        bad = bytearray(data)
        bad[pos] ^= int(rng.integers(1, 256))
        try:
            model = tinyscore.Model.load(bytes(bad))
        except (tinyscore.ModelFileError, tinyscore.CapacityError) as e:
            kinds.add(e.kind)
            continue
        model.eps(np.zeros((2, model.dim), np.float32), 0.5)
    assert "CrcMismatch" in kinds, kinds


def test_a_missing_path_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        tinyscore.Model.load(tmp_path / "nope.tsm")
    with pytest.raises(IsADirectoryError):
        tinyscore.Model.load(tmp_path)


def test_eps_arguments_are_checked(models):
    model = tinyscore.Model.load(models["vp-f32"])
    with pytest.raises(tinyscore.ArgumentError):
        model.eps(np.zeros((4, 3)), 0.5)
    with pytest.raises(tinyscore.ArgumentError):
        model.eps(np.zeros((4, 2)), np.zeros(3))
    with pytest.raises(tinyscore.ArgumentError):
        model.eps(np.zeros((4, 2)), 0.5, threads=0)
    with pytest.raises(tinyscore.ArgumentError):
        model.eps(np.zeros((2, 2, 2)), 0.5)
    assert model.eps(np.zeros((0, 2)), 0.5).shape == (0, 2)


def test_sample_arguments_are_checked(models):
    vp = tinyscore.Model.load(models["vp-f32"])
    sde = tinyscore.Model.load(models["vpsde-f32"])
    with pytest.raises(tinyscore.ArgumentError, match="sampler"):
        vp.sample(4, sampler="magic")
    with pytest.raises(tinyscore.ArgumentError, match="eta"):
        vp.sample(4, sampler="ddpm", eta=0.5)
    with pytest.raises(tinyscore.ArgumentError):
        vp.sample(0)
    with pytest.raises(tinyscore.ArgumentError):
        vp.sample(-1)
    with pytest.raises(tinyscore.ArgumentError):
        vp.sample(10**9)
    with pytest.raises(tinyscore.SamplerError) as e:
        vp.sample(4, sampler="ddpm", steps=1001)
    assert e.value.kind == "Steps" and "N is 1000" in str(e.value)
    with pytest.raises(tinyscore.SamplerError) as e:
        sde.sample(4, sampler="ddpm")
    assert e.value.kind == "Unsupported"
    with pytest.raises(tinyscore.SamplerError):
        vp.sample(4, sampler="ddim", steps=10, eta=1.5)


def test_denoise_and_impute_arguments_are_checked(models):
    model = tinyscore.Model.load(models["vp-f32"])
    y = np.zeros((3, 2), np.float32)
    with pytest.raises(tinyscore.ArgumentError):
        model.denoise(y, sigma=-1.0)
    with pytest.raises(tinyscore.ArgumentError):
        model.denoise(y, sigma=float("nan"))
    with pytest.raises(tinyscore.ArgumentError):
        model.denoise(y, sigma=0.1, method="median")
    with pytest.raises(tinyscore.ArgumentError):
        model.denoise(y, sigma=0.1, method="sdedit", steps=0)
    with pytest.raises(tinyscore.ArgumentError):
        model.denoise(y, sigma=0.1, method="sdedit", draws=17)
    with pytest.raises(tinyscore.ArgumentError):
        model.impute(y, np.ones((3, 3)))
    with pytest.raises(tinyscore.ArgumentError):
        model.impute(y, np.full((3, 2), 2))
    with pytest.raises(tinyscore.ArgumentError):
        model.impute(y, np.ones((3, 2)), resample=0)


def test_likelihood_refuses_an_integer_model_and_bad_settings(models):
    with pytest.raises(tinyscore.TinyscoreError) as e:
        tinyscore.Model.load(models["vp-w8a8"]).likelihood(np.zeros((2, 2)))
    assert e.value.kind == "Int8Likelihood"
    model = tinyscore.Model.load(models["vp-f32"])
    with pytest.raises(tinyscore.ArgumentError):
        model.likelihood(np.zeros((2, 2)), steps=0)
    with pytest.raises(tinyscore.ArgumentError):
        model.likelihood(np.zeros((2, 2)), exact=True, hutchinson=4)
    with pytest.raises(tinyscore.ArgumentError):
        model.likelihood(np.zeros((2, 2)), hutchinson=0)


def test_convert_errors_name_the_checkpoint_problem(models, tmp_path):
    with pytest.raises(tinyscore.CheckpointError) as e:
        tinyscore.convert(tmp_path / "missing.safetensors")
    assert e.value.kind == "Io" and "missing.safetensors" in str(e.value)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x08\0\0\0\0\0\0\0not json")
    with pytest.raises(tinyscore.CheckpointError) as e:
        tinyscore.convert(junk)
    assert e.value.kind == "NotSafetensors"
    with pytest.raises(tinyscore.ArgumentError):
        tinyscore.convert(models["vp.ckpt"], quant="int4")
    with pytest.raises(tinyscore.ArgumentError):
        tinyscore.convert(models["vp.ckpt"], quant="f32", groups=2)
    with pytest.raises(tinyscore.ArgumentError):
        tinyscore.convert(models["vp.ckpt"], quant="w8a8", groups=99)
    with pytest.raises(tinyscore.CalibrationError):
        tinyscore.convert(models["vp.ckpt"], quant="w8a8", calib="no-such-set")
    out = tmp_path / "never.tsm"
    with pytest.raises(tinyscore.CheckpointError):
        tinyscore.convert(junk, out)
    assert not out.exists()


def test_dataset_errors(tmp_path):
    with pytest.raises(tinyscore.DataError):
        tinyscore.dataset("no-such-set", 10)
    with pytest.raises(tinyscore.DataError):
        tinyscore.dataset(str(tmp_path / "missing.csv"), 10)
    with pytest.raises(tinyscore.ArgumentError):
        tinyscore.dataset("moons", 0)


@pytest.mark.parametrize("name", ["vp-f32", "vp-w8a8"])
def test_non_finite_and_out_of_range_inputs_never_crash(models, name):
    model = tinyscore.Model.load(models[name])
    x = np.array([[np.nan, np.inf], [1e30, -1e30], [0.0, 0.0]], np.float32)
    for t in [np.nan, np.inf, -np.inf, -3.0, 5.0, 1e30]:
        assert model.eps(x, t).shape == (3, 2)
    assert model.denoise(x, sigma=1e30).shape == (3, 2)
    with pytest.raises(tinyscore.ArgumentError):
        model.denoise(x, sigma=np.inf)
