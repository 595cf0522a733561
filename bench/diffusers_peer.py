#!/usr/bin/env python3
"""tinyscore's DDIM, DPM-Solver++(2M, 3M) and UniPC paths beside diffusers' schedulers, step by step.

One trained model, two implementations of everything around it:

  network     the checkpoint's EMA weights (what `tinyscore convert` writes into the .tsm) in a
              PyTorch module of ScoreNet v1 as docs/scorenet.md defines it, in f32, normalised
              units; diffusers' 0-based timestep k is our step n = k + 1, network time t = n/N
  schedulers  DDIMScheduler            (eta 0, clip_sample off, set_alpha_to_one, trailing)
              DPMSolverMultistepScheduler (dpmsolver++, orders 2 and 3, midpoint,
                                          lower_order_final, final_sigmas_type "zero")
              UniPCMultistepScheduler  (bh2, order 2, predict_x0, lower_order_final)
              configured to the model file's betas (`tinyscore inspect`), epsilon prediction,
              each of the spacings leading / trailing / linspace where the scheduler has them
  noise       the initial x of every sample is tinyscore's (unit 0 of `tinyscore sample --trace`)

For every case it compares the iterate after every step (tinyscore's `--trace` rows against the
scheduler's `prev_sample`) and prints the largest |difference| over steps and samples; it exits 1
if any exceeds --tol (1e-4). The two sides use the same formulas in different orders of f32
operations (and diffusers computes its alpha-bar table in f32, ours in f64), so they agree to
rounding, not bits.

Install (CPU; a few minutes, the PyPI torch wheel is large):
    python3 -m venv target/venv
    target/venv/bin/pip install torch diffusers safetensors numpy
Run (trains a small moons model in a temporary folder unless --checkpoint and --model are given):
    cargo build --release -p tinyscore-tools
    target/venv/bin/python bench/diffusers_peer.py [--tinyscore target/release/tinyscore]
        [--checkpoint CKPT.safetensors --model MODEL.tsm] [--n 16] [--tol 1e-4]
"""
import argparse
import csv
import math
import os
import re
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler
    from safetensors.numpy import load_file
except ImportError as e:  # pragma: no cover - a missing dependency is a user error
    print(f"skipped: {e.name} is missing (pip install torch diffusers safetensors numpy)")
    sys.exit(2)


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed:\n{out.stderr}")
    return out.stdout


class ScoreNet(torch.nn.Module):
    """ScoreNet v1 (docs/scorenet.md): eps = W_out silu(h_B) + b_out, f32."""

    def __init__(self, weights):
        super().__init__()
        self.w = {k: torch.from_numpy(v.astype(np.float32)) for k, v in weights.items()}
        self.blocks = sum(1 for k in self.w if k.endswith(".w1") and k.startswith("blocks."))
        freqs = self.w["time.w1"].shape[1]
        half = freqs // 2
        k = torch.arange(half, dtype=torch.float32)
        self.omega = torch.exp(-math.log(10000.0) * k / half)

    def forward(self, x, t):
        lin = lambda name, v: v @ self.w[name + ".w"].T + self.w[name + ".b"]
        s = 1000.0 * t * self.omega
        phi = torch.cat([torch.sin(s), torch.cos(s)])[None, :]
        silu = torch.nn.functional.silu
        temb = silu(phi @ self.w["time.w1"].T + self.w["time.b1"]) @ self.w["time.w2"].T + self.w["time.b2"]
        h = lin("input", x)
        for b in range(self.blocks):
            p = f"blocks.{b}"
            u = silu(h) @ self.w[p + ".w1"].T + self.w[p + ".b1"] + temb
            h = h + silu(u) @ self.w[p + ".w2"].T + self.w[p + ".b2"]
        return lin("output", silu(h))


def load_weights(path):
    raw = load_file(path)
    ema = {k[4:]: v for k, v in raw.items() if k.startswith("ema.")}
    return ema if ema else {k: v for k, v in raw.items() if not k.startswith(("adam_", "norm."))}


def process_of(tinyscore, model):
    text = run([tinyscore, "inspect", model])
    m = re.search(r"VP discrete \(DDPM\), N=(\d+), linear beta ([0-9.e-]+)\.\.([0-9.e-]+)", text)
    if not m:
        sys.exit(f"error: {model}: the peer test needs a discrete VP model with linear betas:\n{text}")
    return int(m.group(1)), float(m.group(2)), float(m.group(3))


def trace(tinyscore, model, args, n, seed, path):
    run([tinyscore, "sample", model, *args, "--n", str(n), "--seed", str(seed), "--out", os.devnull,
         "--trace", path])
    rows = {}
    with open(path) as f:
        for r in csv.reader(f):
            unit, i = int(r[0]), int(r[1])
            rows.setdefault(unit, {})[i] = [float(v) for v in r[2:]]
    units = sorted(rows)
    return np.array([[rows[u][i] for i in range(n)] for u in units], dtype=np.float64)


def diffusers_path(net, scheduler, steps, big_n, x_init):
    scheduler.set_timesteps(steps)
    x = torch.tensor(x_init, dtype=torch.float32)
    path = [x.numpy().astype(np.float64)]
    with torch.no_grad():
        for k in scheduler.timesteps:
            t = torch.tensor((int(k) + 1) / big_n, dtype=torch.float32)
            eps = net(x, t)
            x = scheduler.step(eps, k, x).prev_sample
            path.append(x.numpy().astype(np.float64))
    return np.array(path)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tinyscore", default="target/release/tinyscore")
    p.add_argument("--checkpoint", help="a tinyscore checkpoint (.safetensors)")
    p.add_argument("--model", help="the .tsm converted from it with --quant f32")
    p.add_argument("--n", type=int, default=16, help="samples per case")
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--tol", type=float, default=1e-4)
    a = p.parse_args()
    torch.set_num_threads(1)
    tmp = tempfile.mkdtemp(prefix="tinyscore-peer-")
    if not (a.checkpoint and a.model):
        a.checkpoint = os.path.join(tmp, "peer.safetensors")
        a.model = os.path.join(tmp, "peer.tsm")
        run([a.tinyscore, "train", "--data", "moons", "--hidden", "32", "--blocks", "2", "--steps", "3000",
             "--seed", "1", "--out", a.checkpoint])
        run([a.tinyscore, "convert", a.checkpoint, "--quant", "f32", "--out", a.model])
    big_n, beta_start, beta_end = process_of(a.tinyscore, a.model)
    net = ScoreNet(load_weights(a.checkpoint))
    base = dict(num_train_timesteps=big_n, beta_start=beta_start, beta_end=beta_end, beta_schedule="linear",
                prediction_type="epsilon")
    cases = []
    for steps in (5, 10, 20, 50):
        if big_n % steps == 0:
            cases.append(("ddim", "trailing", steps, ["--sampler", "ddim", "--steps", str(steps)],
                          lambda: DDIMScheduler(**base, clip_sample=False, set_alpha_to_one=True,
                                                timestep_spacing="trailing")))
        for spacing in ("leading", "trailing", "linspace"):
            cases.append(("dpmpp-2m", spacing, steps,
                          ["--sampler", "dpmpp-2m", "--steps", str(steps), "--spacing", spacing],
                          lambda spacing=spacing: DPMSolverMultistepScheduler(
                              **base, algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint",
                              lower_order_final=True, final_sigmas_type="zero", timestep_spacing=spacing)))
            cases.append(("dpmpp-3m", spacing, steps,
                          ["--sampler", "dpmpp-3m", "--steps", str(steps), "--spacing", spacing],
                          lambda spacing=spacing: DPMSolverMultistepScheduler(
                              **base, algorithm_type="dpmsolver++", solver_order=3, solver_type="midpoint",
                              lower_order_final=True, final_sigmas_type="zero", timestep_spacing=spacing)))
            cases.append(("unipc", spacing, steps,
                          ["--sampler", "unipc", "--steps", str(steps), "--spacing", spacing],
                          lambda spacing=spacing: UniPCMultistepScheduler(
                              **base, solver_order=2, solver_type="bh2", predict_x0=True,
                              lower_order_final=True, timestep_spacing=spacing)))
    print(f"model {a.model}: N={big_n}, linear beta {beta_start}..{beta_end}; {a.n} samples per case")
    print(f"| sampler | spacing | steps | max abs difference over all steps | at the last step |")
    print(f"| --- | --- | --- | --- | --- |")
    worst = 0.0
    for i, (name, spacing, steps, args, make) in enumerate(cases):
        ours = trace(a.tinyscore, a.model, args, a.n, a.seed, os.path.join(tmp, f"trace{i}.csv"))
        theirs = diffusers_path(net, make(), steps, big_n, ours[0])
        if ours.shape != theirs.shape:
            sys.exit(f"error: {name} {spacing} {steps}: {ours.shape[0]} rows against {theirs.shape[0]}")
        diff = np.abs(ours - theirs).max(axis=(1, 2))
        worst = max(worst, diff.max())
        print(f"| {name} | {spacing} | {steps} | {diff.max():.2e} | {diff[-1]:.2e} |")
    ok = worst <= a.tol
    print(f"worst {worst:.2e}: {'within' if ok else 'OUTSIDE'} {a.tol:g}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
