#!/usr/bin/env python3
"""tinyscore's CPU trainer against PyTorch on the same training step, on this machine.

The step: ScoreNet v1 (H = 128, B = 3, F = 32) on moons, batch 256, DSM loss (discrete VP,
N = 1000, linear β), gradient clipping at global norm 1.0, Adam (0.9, 0.999, 1e-8, lr 1e-3 with a
100-step linear warm-up) and an EMA of the weights (0.999): `tinyscore train`'s defaults
(`host-train/src/train.rs`, `docs/training.md`). PyTorch runs `tinyscore.torch.ScoreNet` and
`tinyscore.torch.dsm_loss` (python/).

1. **Same step.** The Rust side (`host-train/examples/train_step_io.rs dump`) writes its initial
   weights, the inputs (x_t, ε, t) that each of its first 10 steps draws, the losses it returns
   and its weights after them. PyTorch starts from those weights and steps on the same inputs;
   the script checks every step's loss and the loss after the 10 steps (both networks on the
   first batch) agree within 1e-4, and prints the largest weight difference.
2. **Speed.** steps/s of both, alternating, `--runs` runs each (best and worst): the Rust trainer
   on all cores (rayon), PyTorch eager with `torch.set_num_threads(n)` for each n of `--threads`
   and OMP_WAIT_POLICY=PASSIVE, each run in its own process after 20 warm-up steps.

    cargo build --release -p tinyscore-train --example train_step_io
    python3 -m venv .venv-bench && .venv-bench/bin/pip install torch numpy safetensors maturin
    .venv-bench/bin/maturin build --release -m python/Cargo.toml -o /tmp/wheels
    .venv-bench/bin/pip install /tmp/wheels/tinyscore-*.whl
    .venv-bench/bin/python bench/train_vs_pytorch.py [--steps 400] [--runs 3] [--threads 1,2]

Without torch (or the tinyscore package, or the Rust example) it prints "skipped: <why>" and
exits 0.
"""

import argparse
import os
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUST = os.path.join(ROOT, "target", "release", "examples", "train_step_io")
CHECK_STEPS = 10
TOLERANCE = 1e-4


def skip(why):
    print(f"skipped: {why}")
    sys.exit(0)


def imports():
    try:
        import numpy as np
        import torch
        from tinyscore import torch as tst
    except ImportError as e:
        skip(f"needs torch, numpy and the tinyscore package (python/) in this interpreter: {e}")
    return np, torch, tst


def read_dump(np, path):
    raw = open(path, "rb").read()
    magic, d, p, batch, steps = struct.unpack_from("<5I", raw)
    assert magic == 0x74735031, "not a train_step_io dump"
    v = np.frombuffer(raw, dtype="<f4", offset=20)
    at = 0

    def take(n):
        nonlocal at
        out = v[at : at + n].copy()
        at += n
        return out

    init = take(p)
    batches = []
    for _ in range(steps):
        xt, eps, t, loss = take(batch * d).reshape(batch, d), take(batch * d).reshape(batch, d), take(batch), take(1)[0]
        batches.append((xt, eps, t, float(loss)))
    final, ema = take(p), take(p)
    lr, warmup, clip, decay = (float(x) for x in take(4))
    return dict(d=d, init=init, batches=batches, final=final, ema=ema, lr=lr, warmup=int(warmup), clip=clip, decay=decay)


def new_net(tst, d):
    return tst.ScoreNet(d, hidden=128, blocks=3, freqs=32)


def check(np, torch, tst):
    """Part 1: PyTorch's step on the Rust trainer's inputs gives its losses."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "steps.bin")
        subprocess.run([RUST, "dump", str(CHECK_STEPS), path], check=True)
        r = read_dump(np, path)
    torch.set_num_threads(1)
    net = new_net(tst, r["d"])
    net.load_flat_parameters(r["init"])
    params = list(net.parameters())
    opt = torch.optim.Adam(params, lr=r["lr"], betas=(0.9, 0.999), eps=1e-8)
    ema = [p.detach().clone() for p in params]
    worst = 0.0
    print(f"same step: {CHECK_STEPS} steps from the Rust trainer's weights and inputs")
    for s, (xt, eps, t, rust_loss) in enumerate(r["batches"]):
        step = s + 1
        lr = r["lr"] * step / r["warmup"] if 0 < step < r["warmup"] else r["lr"]
        for g in opt.param_groups:
            g["lr"] = lr
        xt_, eps_, t_ = torch.from_numpy(xt), torch.from_numpy(eps), torch.from_numpy(t)
        loss = ((net(xt_, t_) - eps_) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, r["clip"])
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema, params):
                e.mul_(r["decay"]).add_(p, alpha=1.0 - r["decay"])
        diff = abs(loss.item() - rust_loss)
        worst = max(worst, diff)
        print(f"  step {step:2d}: loss tinyscore {rust_loss:.7f}  torch {loss.item():.7f}  |diff| {diff:.2e}")
    xt, eps, t, _ = r["batches"][0]
    with torch.no_grad():
        after_torch = float(((net(torch.from_numpy(xt), torch.from_numpy(t)) - torch.from_numpy(eps)) ** 2).mean())
        ref = new_net(tst, r["d"])
        ref.load_flat_parameters(r["final"])
        after_rust = float(((ref(torch.from_numpy(xt), torch.from_numpy(t)) - torch.from_numpy(eps)) ** 2).mean())
    dw = float(np.abs(net.flat_parameters() - r["final"]).max())
    # The EMA tensors follow net.parameters(), which is not the flat order: compare via a module.
    ema_net = new_net(tst, r["d"])
    with torch.no_grad():
        for dst, src in zip(ema_net.parameters(), ema):
            dst.copy_(src)
    de = float(np.abs(ema_net.flat_parameters() - r["ema"]).max())
    after = abs(after_torch - after_rust)
    worst = max(worst, after)
    print(f"  loss after {CHECK_STEPS} steps (first batch): tinyscore {after_rust:.7f}  torch {after_torch:.7f}"
          f"  |diff| {after:.2e}")
    print(f"  largest |weight difference| {dw:.2e}, |EMA difference| {de:.2e}")
    ok = worst <= TOLERANCE
    print(f"  {'OK' if ok else 'FAILED'}: largest loss difference {worst:.2e} (tolerance {TOLERANCE:g})")
    return ok


def torch_worker(threads, steps):
    """One timed PyTorch run (its own process, so OMP_WAIT_POLICY applies before torch loads)."""
    np, torch, tst = imports()
    import tinyscore

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x = torch.from_numpy(np.asarray(tinyscore.dataset("moons", 20000, seed=0), dtype=np.float32))
    net = tst.ScoreNet(2, hidden=128, blocks=3, freqs=32).normalize_to(x.numpy())
    params = list(net.parameters())
    try:
        opt = torch.optim.Adam(params, lr=1e-3, fused=True)
    except (RuntimeError, TypeError):
        opt = torch.optim.Adam(params, lr=1e-3, foreach=True)
    ema = [p.detach().clone() for p in params]
    n = 0

    def step():
        nonlocal n
        n += 1
        lr = 1e-3 * n / 100 if n < 100 else 1e-3
        for g in opt.param_groups:
            g["lr"] = lr
        loss = tst.dsm_loss(net, x[torch.randint(len(x), (256,))])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            torch._foreach_mul_(ema, 0.999)
            torch._foreach_add_(ema, params, alpha=0.001)

    for _ in range(20):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    print(f"steps/s {steps / (time.perf_counter() - start):.3f}")


def timed(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return float([ln for ln in out.splitlines() if ln.startswith("steps/s")][-1].split()[1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=400, help="timed steps per run")
    ap.add_argument("--runs", type=int, default=3, help="runs of each (alternating)")
    ap.add_argument("--threads", default="1,2", help="PyTorch thread counts to time")
    ap.add_argument("--no-check", action="store_true", help="skip part 1")
    ap.add_argument("--torch-worker", type=int, metavar="THREADS", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.torch_worker:
        torch_worker(a.torch_worker, a.steps)
        return 0
    np, torch, tst = imports()
    if not os.access(RUST, os.X_OK):
        skip(f"{RUST} missing: cargo build --release -p tinyscore-train --example train_step_io")
    ok = True if a.no_check else check(np, torch, tst)
    threads = [int(t) for t in a.threads.split(",")]
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    times = {"tinyscore": []} | {f"torch {t} thr": [] for t in threads}
    print(f"speed: {a.steps} steps per run, {a.runs} runs each, alternating; load {os.getloadavg()}")
    for _ in range(a.runs):
        times["tinyscore"].append(timed([RUST, "time", str(a.steps)]))
        for t in threads:
            cmd = [sys.executable, os.path.abspath(__file__), "--torch-worker", str(t), "--steps", str(a.steps)]
            times[f"torch {t} thr"].append(timed(cmd, env))
    for k, v in times.items():
        print(f"  {k:12s} steps/s best {max(v):8.1f}  worst {min(v):8.1f}  ({', '.join(f'{x:.1f}' for x in v)})")
    best_torch = max(max(v) for k, v in times.items() if k != "tinyscore")
    rs = times["tinyscore"]
    print(f"  ratio tinyscore / best PyTorch: best runs {max(rs) / best_torch:.2f}x, "
          f"tinyscore's worst vs PyTorch's best {min(rs) / best_torch:.2f}x; load {os.getloadavg()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
