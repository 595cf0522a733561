#!/usr/bin/env python3
"""Streaming denoiser against window-at-a-time denoising on the held-out ECG (issue 18).

Data: MIT-BIH record 208 (`ecg-mitbih-208.csv`, one sample a line, mV, 360 Hz) at `--data`, else
`<repo>/../shared/data/` (or that of the main worktree when run from a git worktree). Held out: the
last 20% of the recording, samples [n - round(0.2 n), n) (the split of `bench/ecg_denoise.py`, which
`tinyscore train --data ecg` never trains on).

For each sigma in `--sigmas` (mV), y = x + sigma n with n from Python's `random.Random(seed + 1000
sigma)` Gaussian draws (standard library only: the script needs no packages), then, for the model
`--model` of window W:
  - window at a time: the segment cut into non-overlapping W-sample windows (one CSV row each;
    if W does not divide the length, the last window is the last W samples and only its new samples
    are kept), `tinyscore denoise M --input windows.csv --sigma S`;
  - streaming: `tinyscore denoise M --stream --input signal.csv --sigma S [--hop H --taper T]` for
    each of: hop W/2 and W/4, Hann; hop W flat, which must equal window at a time bit for bit on
    the whole windows from sample 0 (the script stops if not; the last partial window is padded
    by the stream and aligned to the end by window at a time); hop W/2 with `--sigma auto`.
`--hops H1,H2,...` replaces the streaming runs' hops W/2, W/4 by these (Hann; the hop W flat run and
the `--sigma auto` run at hop W/2 stay). With `--filters` (needs numpy, scipy and, for wavelets,
PyWavelets) the tuned classical filters of `bench/ecg_denoise.py` run on the same noisy segment as one
long signal, each with its parameters tuned per sigma on the validation part of the recording
(samples [0.6 n, 0.8 n), inside the training part, as one long signal with its own noise): the fair
baseline of the streaming denoiser, which also sees the signal around each window.
SNR over the whole segment, 10 log10(sum x^2 / sum (xhat - x)^2) in dB, and the seam ratio: the RMS
error of the samples within 2 of a multiple of W (the window-at-a-time borders) over the RMS error of
all samples (about 1 without seams). Prints a markdown table and each command with its wall time;
`--plot-dir D` also writes D/stream-sigma{S}.png (the hop W/2 streaming run's `--plot`: the first 4 W
samples, noisy, clean, denoised, window borders) and D/windowed-sigma{S}.png (the same of the hop W
flat run, which on those samples is window at a time).

Usage:
  cargo build --release -p tinyscore-tools
  python3 bench/stream_denoise.py --tinyscore target/release/tinyscore \\
      --model firmware-example/models/ecg-conv-f32.tsm [--sigmas 0.1,0.2] [--plot-dir /tmp/stream]
"""
import argparse
import math
import os
import random
import subprocess
import sys
import tempfile
import time


def find_data(arg):
    if arg:
        return arg
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(here)
    for base in [os.path.join(repo, "..", "shared", "data"), "/work/shared/data"]:
        p = os.path.join(base, "ecg-mitbih-208.csv")
        if os.path.exists(p):
            return p
    sys.exit("ecg-mitbih-208.csv not found: give --data")


def load(path):
    with open(path) as f:
        return [float(l) for l in f if l.strip() and not l.startswith("#")]


def write_column(path, values):
    with open(path, "w") as f:
        f.write("".join(f"{v!r}\n" for v in values))


def snr_db(clean, est):
    s = sum(c * c for c in clean)
    e = sum((a - c) ** 2 for a, c in zip(est, clean))
    return 10 * math.log10(s / max(e, 1e-300))


def seam_ratio(clean, est, w):
    err = [(a - c) ** 2 for a, c in zip(est, clean)]
    near = [e for i, e in enumerate(err) if min(i % w, w - i % w) <= 2 and i >= w - 2]
    return math.sqrt(sum(near) / len(near)) / math.sqrt(sum(err) / len(err))


def run(cmd):
    t = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.time() - t
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr}")
    print(f"  $ {' '.join(cmd)}   # {dt:.1f} s", file=sys.stderr)
    return p.stderr


def model_window(tinyscore, model):
    out = subprocess.run([tinyscore, "inspect", model], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("data") and "(D=" in line:
            return int(line.split("(D=")[1].split(")")[0])
    sys.exit("cannot read D from tinyscore inspect")


def segment_filters(x, held, noisy, sigma, seed):
    """The classical filters of `ecg_denoise.py` on the noisy held-out segment as one signal, each
    tuned at `sigma` on the validation segment [0.6 n, 0.8 n) with its own noise."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import numpy as np
    import ecg_denoise as ed

    n = len(x)
    val = np.array(x[int(ed.VAL_FROM * n):n - round(ed.HOLDOUT * n)])[None, :]
    vnoisy = val + sigma * np.random.default_rng([seed, 7, round(1000 * sigma)]).standard_normal(val.shape)
    y = np.array(noisy)[None, :]
    out = {}
    for name, (fn, grid) in ed.filters(256).items():
        t = time.time()
        p = ed.tune(fn, grid, val, vnoisy, sigma)
        out[f"{name} (tuned)"] = [float(v) for v in fn(y, p, sigma)[0]]
        print(f"  sigma {sigma}: {name} tuned to {p} in {time.time() - t:.0f} s", file=sys.stderr)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tinyscore", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data")
    ap.add_argument("--sigmas", default="0.1,0.2")
    ap.add_argument("--seed", type=int, default=18)
    ap.add_argument("--plot-dir")
    ap.add_argument("--hops", help="streaming hops (Hann), comma-separated (default W/2,W/4)")
    ap.add_argument("--filters", action="store_true",
                    help="also the classical filters, tuned on the validation segment (numpy, scipy)")
    a = ap.parse_args()
    x = load(find_data(a.data))
    n = len(x)
    held = x[n - round(0.2 * n):]
    w = model_window(a.tinyscore, a.model)
    m = len(held)
    hops = [int(h) for h in a.hops.split(",")] if a.hops else []
    if any(not 1 <= h <= w for h in hops):
        sys.exit(f"--hops must be in 1..={w}")
    hann = [(f"stream, hop {w // 2}, Hann", ["--hop", str(w // 2)], None),
            (f"stream, hop {w // 4}, Hann", ["--hop", str(w // 4), "--taper", "hann"], None)]
    if hops:
        hann = [(f"stream, hop {h}, Hann", ["--hop", str(h), "--taper", "hann"], None) for h in hops]
    streams = hann + [
        (f"stream, hop {w}, flat (= window at a time)", ["--hop", str(w), "--taper", "flat"], None),
        (f"stream, hop {w // 2}, Hann, --sigma auto", ["--hop", str(w // 2)], "auto"),
    ]
    rows = {}
    tmp = tempfile.mkdtemp(prefix="stream-bench-")
    print(f"held-out: {m} samples ({m / 360:.1f} s), window W = {w}, model {a.model}", file=sys.stderr)
    for sigma in [float(s) for s in a.sigmas.split(",")]:
        rng = random.Random(a.seed + round(1000 * sigma))
        noisy = [v + sigma * rng.gauss(0.0, 1.0) for v in held]
        sig_path = os.path.join(tmp, f"noisy-{sigma}.csv")
        clean_path = os.path.join(tmp, f"clean-{sigma}.csv")
        write_column(sig_path, noisy)
        write_column(clean_path, held)
        rows.setdefault("noisy input", {})[sigma] = (snr_db(held, noisy), seam_ratio(held, noisy, w))
        if a.filters:
            for name, est in segment_filters(x, held, noisy, sigma, a.seed).items():
                rows.setdefault(name, {})[sigma] = (snr_db(held, est), seam_ratio(held, est, w))
        # Window at a time.
        starts = list(range(0, m - w + 1, w))
        if starts[-1] + w < m:
            starts.append(m - w)
        win_path = os.path.join(tmp, f"windows-{sigma}.csv")
        with open(win_path, "w") as f:
            for s in starts:
                f.write(",".join(repr(v) for v in noisy[s:s + w]) + "\n")
        out_path = os.path.join(tmp, f"windows-out-{sigma}.csv")
        run([a.tinyscore, "denoise", a.model, "--input", win_path, "--sigma", str(sigma), "--out", out_path])
        est = [0.0] * m
        with open(out_path) as f:
            for s, line in zip(starts, f):
                for i, v in enumerate(line.split(",")):
                    est[s + i] = float(v)
        windowed = est
        rows.setdefault("window at a time (non-overlapping)", {})[sigma] = (
            snr_db(held, est), seam_ratio(held, est, w))
        if a.plot_dir:
            os.makedirs(a.plot_dir, exist_ok=True)
        for k, (name, extra, sig) in enumerate(streams):
            out_path = os.path.join(tmp, f"stream-{sigma}-{k}.csv")
            cmd = [a.tinyscore, "denoise", a.model, "--stream", "--input", sig_path,
                   "--sigma", sig or str(sigma), "--out", out_path] + extra
            if a.plot_dir and extra == ["--hop", str(w // 2)] and sig is None:
                cmd += ["--clean", clean_path, "--plot", os.path.join(a.plot_dir, f"stream-sigma{sigma}.png")]
            if a.plot_dir and "flat" in name:
                # Hop W, flat: window at a time (the first 4 W samples are the same windows).
                cmd += ["--clean", clean_path, "--plot", os.path.join(a.plot_dir, f"windowed-sigma{sigma}.png")]
            err = run(cmd)
            est = load(out_path)
            assert len(est) == m, (len(est), m)
            rows.setdefault(name, {})[sigma] = (snr_db(held, est), seam_ratio(held, est, w))
            if "flat" in name:
                # The same windows (the whole windows from sample 0, up to where the window aligned
                # to the end takes over) must give the same bits (the CSVs hold the shortest text
                # that reads back as the same f32).
                whole = m if m % w == 0 else m - w
                same = all(p == q for p, q in zip(est[:whole], windowed[:whole]))
                print(f"  hop W flat == window at a time on the first {whole} samples, bit for bit: {same}",
                      file=sys.stderr)
                if not same:
                    sys.exit("hop W flat differs from window at a time")
            if sig == "auto":
                for line in err.splitlines():
                    if line.startswith("stream:"):
                        print(f"  sigma {sigma}: {line}", file=sys.stderr)
    sigmas = [float(s) for s in a.sigmas.split(",")]
    if a.filters:
        best = {sg: max((r[sg] for name, r in rows.items() if name.endswith("(tuned)")), key=lambda v: v[0])
                for sg in sigmas}
        rows["best tuned filter"] = best
    print(f"\nHeld-out {m} samples, W = {w}; SNR (dB) over the whole segment / seam ratio\n")
    print("| method | " + " | ".join(f"σ = {s} mV" for s in sigmas) + " |")
    print("| --- |" + " --- |" * len(sigmas))
    for name, r in rows.items():
        print(f"| {name} | " + " | ".join(f"{r[s][0]:.2f} / {r[s][1]:.2f}" for s in sigmas) + " |")


if __name__ == "__main__":
    main()
