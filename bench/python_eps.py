#!/usr/bin/env python3
"""Model.eps from Python beside `tinyscore bench`: the cost of the binding (issue 22).

Both run the same network call (`ScoreNet::eps_batch`, AVX2 where the CPU has it) on one thread
at a batch of 4096 vectors: `tinyscore bench MODEL --batch 4096` times the call alone, this
script times `Model.eps(x, t, threads=1)` (numpy → bytes → Rust → bytes → numpy, the GIL released).
The two measure alike: the fastest of rounds of about 50 ms, after a warm-up, with the time changing
every call. Run the two alternately (`--rounds`) since the machine is shared.

    python bench/python_eps.py firmware-example/models/moons-f32.tsm [--cli target/release/tinyscore]
"""

import argparse
import subprocess
import time

import numpy as np

import tinyscore


def python_rate(model: tinyscore.Model, batch: int, seconds: float) -> float:
    d = model.dim
    x = ((np.arange(batch * d, dtype=np.float32) * np.float32(0.618034)) % 1.0 * 4.0 - 2.0).reshape(batch, d)
    calls = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds / 10:  # warm-up
        model.eps(x, ((calls % 1000) + 1) / 1000.0, threads=1)
        calls += 1
    best = float("inf")
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        n = 0
        while time.perf_counter() - t0 < 0.05:
            model.eps(x, ((calls % 1000) + 1) / 1000.0, threads=1)
            calls += 1
            n += 1
        best = min(best, (time.perf_counter() - t0) / n)
    return batch / best


def cli_rate(cli: str, path: str, batch: int, seconds: float) -> float:
    out = subprocess.run([cli, "bench", path, "--batch", str(batch), "--seconds", str(seconds)],
                         capture_output=True, text=True, check=True).stdout
    # The first row is the file as it is (later rows are an f32 file re-encoded as f16 and w8):
    # "NAME PRECISION BATCH EVALS/S NS/EVAL GMAC/S".
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("model precision"))
    return float(lines[header + 1].split()[3])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+")
    p.add_argument("--cli", default="target/release/tinyscore")
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    print(f"{'model':<28} {'batch':>6} {'bench evals/s':>14} {'Model.eps evals/s':>18} {'binding':>8}")
    for path in a.models:
        model = tinyscore.Model.load(path)
        cli, py = [], []
        for _ in range(a.rounds):
            cli.append(cli_rate(a.cli, path, a.batch, a.seconds))
            py.append(python_rate(model, a.batch, a.seconds))
        c, q = max(cli), max(py)
        name = path.split("/")[-1] + " " + model.info["precision"]
        print(f"{name:<28} {a.batch:>6} {c:>14.0f} {q:>18.0f} {100 * (c / q - 1):>7.1f}%")


if __name__ == "__main__":
    main()
