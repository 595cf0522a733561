"""Shared fixtures: the `tinyscore` command to compare against, and small models it trains.

The command is `$TINYSCORE_CLI`, else the newest of target/release/tinyscore and
target/debug/tinyscore (build one with `cargo build --release -p tinyscore-tools`). Its models
are trained in a few hundred steps: the tests compare bits, not quality.
"""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _record_skip(report) -> None:
    """Appends "skipped: python/<test id>: <reason>" to the file `$TINYSCORE_SKIPS` names, for the
    skip summary of scripts/test.sh (one line per skipped test, or per module skipped whole)."""
    path = os.environ.get("TINYSCORE_SKIPS")
    if not path or not report.skipped:
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    reason = str(reason).removeprefix("Skipped: ")
    name = "python/" + report.nodeid.replace(" ", "_")
    with open(path, "a") as f:
        f.write(f"skipped: {name}: {' '.join(reason.split())}\n")


def pytest_runtest_logreport(report):
    if report.when in ("setup", "call"):
        _record_skip(report)


def pytest_collectreport(report):
    _record_skip(report)


def cli_path() -> Path:
    env = os.environ.get("TINYSCORE_CLI")
    if env:
        return Path(env)
    found = [p for p in (ROOT / "target/release/tinyscore", ROOT / "target/debug/tinyscore") if p.exists()]
    if not found:
        pytest.exit("no tinyscore binary: set TINYSCORE_CLI or run cargo build --release -p tinyscore-tools", 2)
    return max(found, key=lambda p: p.stat().st_mtime)


@pytest.fixture(scope="session")
def cli():
    path = cli_path()

    def run(*args, check=True):
        r = subprocess.run([str(path), *map(str, args)], capture_output=True, text=True)
        if check and r.returncode != 0:
            raise AssertionError(f"tinyscore {' '.join(map(str, args))} failed ({r.returncode}): {r.stderr}")
        return r

    return run


@pytest.fixture(scope="session")
def models(cli, tmp_path_factory):
    """Checkpoints and .tsm files of tiny moons models: `vp` (discrete DDPM) in f32, f16, w8 and
    w8a8, and `vpsde` in f32 (for the SDE samplers)."""
    d = tmp_path_factory.mktemp("models")
    out = {}
    for process in ["vp", "vpsde"]:
        ckpt = d / f"{process}.safetensors"
        cli("train", "--data", "moons", "--process", process, "--hidden", 16, "--blocks", 2, "--freqs", 8,
            "--steps", 300, "--batch", 64, "--ema", 0.9, "--out", ckpt)
        out[f"{process}.ckpt"] = ckpt
        for quant in (["f32", "f16", "w8", "w8a8"] if process == "vp" else ["f32"]):
            tsm = d / f"{process}-{quant}.tsm"
            cli("convert", ckpt, "--quant", quant, "--out", tsm)
            out[f"{process}-{quant}"] = tsm
    out["dir"] = d
    return out


def read_csv(path) -> np.ndarray:
    """A CSV the command wrote: shortest round-trip decimals, read back to the same float32."""
    return np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2).astype(np.float32)


def write_csv(path, rows) -> None:
    """Rows as shortest round-trip float32 decimals (repr of numpy float32)."""
    with open(path, "w") as f:
        for row in np.atleast_2d(rows):
            f.write(",".join(str(np.float32(v)) for v in row) + "\n")


def same_bits(a, b) -> bool:
    a, b = np.ascontiguousarray(a, dtype=np.float32), np.ascontiguousarray(b, dtype=np.float32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))
