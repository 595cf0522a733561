#!/usr/bin/env python3
"""A model trained by a plain PyTorch loop against the same network trained by `tinyscore train`
(issue 22): both converted to w8a8, sampled by the engine, measured by the sliced Wasserstein
distance to held-out data (`tinyscore eval`'s).

The PyTorch loop is the recipe of `tinyscore train`'s defaults written in plain PyTorch: Adam
(lr 1e-3 after a 100-step linear warm-up), global gradient-norm clipping at 1, an EMA of the
weights with decay 0.999 (exported as the EMA the converter uses), batches of 256 drawn with
replacement, the DSM ε-loss (`tinyscore.torch.dsm_loss`). Only the random streams differ.

    python bench/python_quality.py [--steps 4000] [--hidden 64] [--blocks 2] [--cli target/release/tinyscore]
"""

import argparse
import copy
import subprocess
import tempfile
import time
from pathlib import Path

import torch

import tinyscore
from tinyscore.torch import ScoreNet, dsm_loss, export


def train_torch(args, x):
    torch.manual_seed(args.seed)
    net = ScoreNet(2, args.hidden, args.blocks, args.freqs).normalize_to(x)
    ema = copy.deepcopy(net)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = args.lr * min(1.0, (step + 1) / 100)
        loss = dsm_loss(net, x[torch.randint(len(x), (args.batch,))])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema.parameters(), net.parameters()):
                e.mul_(0.999).add_(p, alpha=0.001)
    return net, ema


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--freqs", type=int, default=32)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--cli", default="target/release/tinyscore")
    a = p.parse_args()
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="tinyscore-quality-"))
    x = torch.from_numpy(tinyscore.dataset("moons", 20000, seed=a.seed))

    t0 = time.time()
    net, ema = train_torch(a, x)
    export(net, tmp / "torch.safetensors", ema=ema, data="moons", step=a.steps)
    t_torch = time.time() - t0
    t0 = time.time()
    subprocess.run([a.cli, "train", "--data", "moons", "--hidden", str(a.hidden), "--blocks", str(a.blocks),
                    "--freqs", str(a.freqs), "--steps", str(a.steps), "--batch", str(a.batch), "--lr", str(a.lr),
                    "--seed", str(a.seed), "--out", str(tmp / "cli.safetensors")], check=True, capture_output=True)
    t_cli = time.time() - t0

    print(f"moons, ScoreNet v1 H={a.hidden} B={a.blocks} F={a.freqs}, {a.steps} steps of batch {a.batch}; "
          f"w8a8, {a.samples} samples (ddpm, 1000 steps, seed 0)")
    rows = {}
    for name, seconds in [("torch", t_torch), ("cli", t_cli)]:
        model = tinyscore.convert(tmp / f"{name}.safetensors", tmp / f"{name}.tsm", quant="w8a8")
        samples = model.sample(a.samples, seed=0)
        r = tinyscore.evaluate(samples, "moons")
        rows[name] = r["distance"]
        label = "plain PyTorch loop" if name == "torch" else "tinyscore train"
        print(f"  {label:<20} train {seconds:6.1f} s   {r['text']}")
    print(f"  ratio PyTorch / tinyscore train: {rows['torch'] / rows['cli']:.3f}")


if __name__ == "__main__":
    main()
