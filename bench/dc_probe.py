#!/usr/bin/env python3
"""How much of the noise along a few directions a ScoreNet v1 model file predicts, per noise level.

Why: sampling `firmware-example/models/ecg-f32.tsm` from noise gives windows whose mean level (DC)
is spread over ±16 mV (the data's: ±0.54 mV) whatever the sampler (docs/samplers.md §6.2). This
script shows the cause without the engine: a plain-Python forward pass of the file's network
(docs/scorenet.md, ScoreNet v1; format v1 files with f32 tensors, docs/format.md §3-5) evaluated
at x = z + v, z ~ N(0, I) and v one direction of the window (normalised units), at diffusion
steps n = 1000, 900, ...: the gain <eps_hat, v>/<v, v>. An exact model predicts
eps_hat = sigma·x/(alpha²·s² + sigma²) along a direction whose data variance is s², so near
n = 1000 (alpha ≈ 0.006) its gain is ≈ 1 along every direction. It then prints what DDPM gives
if the gain along the DC direction u = (1, ..., 1)/√D is 0 at every step: each step divides x_u by
√(1 − β'), so the start's N(0, 1) grows by 1/α_N, plus the noise the steps add.

No dependency beyond the standard library (it is slow: seconds per evaluation for D = 64).

    python3 bench/dc_probe.py firmware-example/models/ecg-f32.tsm
"""

import math
import random
import struct
import sys


def load(path):
    b = open(path, "rb").read()
    if b[:4] != b"TSM\0" or struct.unpack_from("<H", b, 4)[0] != 1:
        sys.exit(f"{path}: not a format-v1 .tsm file")
    d, h, f, nb = struct.unpack_from("<4H", b, 20)
    process, schedule = b[28], b[29]
    n_steps = struct.unpack_from("<I", b, 32)[0]
    beta0, beta1 = struct.unpack_from("<2f", b, 36)
    if process != 0 or schedule != 0:
        sys.exit("only the discrete VP process with the linear schedule is handled")
    names = ["norm.mean", "norm.std", "time.w1", "time.b1", "time.w2", "time.b2", "input.w", "input.b"]
    for k in range(nb):
        names += [f"b{k}.w1", f"b{k}.b1", f"b{k}.w2", f"b{k}.b2"]
    names += ["out.w", "out.b"]
    count = struct.unpack_from("<I", b, 56)[0]
    if count != len(names):
        sys.exit("w8a8 files are not handled")
    t = {}
    for i, name in enumerate(names):
        _, dtype, _, rows, cols, off, _, _, _, _ = struct.unpack_from("<HBBIIIIIII", b, 64 + 32 * i)
        if dtype != 0:
            sys.exit("only f32 tensors are handled")
        v = struct.unpack_from(f"<{rows * cols}f", b, off)
        t[name] = [list(v[r * cols:(r + 1) * cols]) for r in range(rows)] if cols > 1 else list(v)
    return (d, f, nb, n_steps, beta0, beta1), t


def eps_hat(sizes, t, x, time):
    """ScoreNet v1 (docs/scorenet.md) at normalised x and time t in [0, 1]."""
    d, f, nb = sizes[:3]
    mv = lambda w, v, bias: [sum(a * c for a, c in zip(row, v)) + bb for row, bb in zip(w, bias)]
    silu = lambda v: [a / (1.0 + math.exp(-a)) for a in v]
    half = f // 2
    omega = [math.exp(-math.log(10000.0) * k / half) for k in range(half)]
    phi = [math.sin(o * 1000.0 * time) for o in omega] + [math.cos(o * 1000.0 * time) for o in omega]
    temb = mv(t["time.w2"], silu(mv(t["time.w1"], phi, t["time.b1"])), t["time.b2"])
    hid = mv(t["input.w"], x, t["input.b"])
    for k in range(nb):
        u = [a + c for a, c in zip(mv(t[f"b{k}.w1"], silu(hid), t[f"b{k}.b1"]), temb)]
        hid = [a + c for a, c in zip(hid, mv(t[f"b{k}.w2"], silu(u), t[f"b{k}.b2"]))]
    return mv(t["out.w"], silu(hid), t["out.b"])


def main():
    sizes, t = load(sys.argv[1])
    d, _, _, n_steps, beta0, beta1 = sizes
    log_abar = [0.0]
    for i in range(1, n_steps + 1):
        beta = beta0 + (beta1 - beta0) * (i - 1) / max(n_steps - 1, 1)
        log_abar.append(log_abar[-1] + math.log1p(-beta))
    abar = [math.exp(v) for v in log_abar]
    directions = {
        "DC (window mean)": [1.0] * d,
        "ramp": [(i - (d - 1) / 2) / (d / math.sqrt(12)) for i in range(d)],
        "sine, 2 periods": [math.sqrt(2) * math.sin(2 * math.pi * 2 * i / d) for i in range(d)],
        "sine, d/4 periods": [math.sqrt(2) * math.sin(2 * math.pi * (d // 4) * i / d) for i in range(d)],
    }
    rng = random.Random(1)
    print(f"gain <eps_hat, v>/<v, v> at x = z + v (mean of 4 draws of z); D = {d}")
    print("step n  alpha   " + "  ".join(f"{k:>18}" for k in directions))
    for n in [n_steps, (9 * n_steps) // 10, (7 * n_steps) // 10, n_steps // 2]:
        gains = []
        for v in directions.values():
            vv = sum(a * a for a in v)
            g = 0.0
            for _ in range(4):
                x = [rng.gauss(0.0, 1.0) + a for a in v]
                e = eps_hat(sizes, t, x, n / n_steps)
                g += sum(a * b for a, b in zip(e, v)) / vv / 4
            gains.append(g)
        print(f"{n:6d}  {math.sqrt(abar[n]):.4f}  " + "  ".join(f"{g:18.3f}" for g in gains))
    mean_std = sum(t["norm.std"]) / d
    for s in [100, n_steps]:
        tau = [i * n_steps // s for i in range(s + 1)]
        var = 1.0  # x_u at the start: N(0, 1)
        for i in range(s, 0, -1):
            a, p = tau[i], tau[i - 1]
            bp = 1.0 - abar[a] / abar[p]
            var /= 1.0 - bp  # eps_hat_u = 0: x_u <- x_u/sqrt(1 - beta')
            if i > 1:
                var += bp * (1.0 - abar[p]) / (1.0 - abar[a])  # the posterior variance's noise
        window_mean = math.sqrt(var) / math.sqrt(d)
        print(f"DDPM-{s} with gain 0 along DC: std of x_u {math.sqrt(var):.1f}, of the window mean "
              f"{window_mean:.1f} normalised = {window_mean * mean_std:.1f} data units")


if __name__ == "__main__":
    main()
