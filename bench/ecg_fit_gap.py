#!/usr/bin/env python3
"""Denoising on training windows against held-out windows: is the ECG U-Net data-limited?

`tinyscore train --data ecg --window 256` trains on the first 80% of record 208 (539 windows of
hop 128). This script adds noise (σ in mV, numpy seed 208) to the 67 non-overlapping windows of
samples [0.6 n, 0.8 n) -- inside the training part, the validation windows of
`bench/ecg_denoise.py` -- and to the 67 non-overlapping windows of the held-out last 20%, runs
`tinyscore denoise --method tweedie` on both, and prints the model's output SNR and its margin
over the Butterworth low-pass and wavelet thresholding tuned on each set itself (an oracle
tuning, the same on both sets). A margin much larger on the training windows than on the
held-out ones means the network fits its 539 training windows better than it generalises.

Usage: python3 bench/ecg_fit_gap.py --tinyscore target/release/tinyscore --model M.tsm [--model ...]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ecg_denoise as E  # noqa: E402
import numpy as np  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tinyscore", default="target/release/tinyscore")
    ap.add_argument("--model", action="append", default=[])
    ap.add_argument("--sigmas", default="0.05,0.1")
    ap.add_argument("--out-dir", default="/tmp/ecg-fit-gap")
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    exe = E.check_exe(args.tinyscore)
    x = np.loadtxt(E.find_data(None), comments="#", dtype=np.float64, delimiter=",", ndmin=1).ravel()
    n = len(x)
    split = n - int(round(E.HOLDOUT * n))
    sets = {"training (val. windows)": E.cut(x, int(E.VAL_FROM * n), split, 256, 256),
            "held-out": E.cut(x, split, n, 256, 256)}
    fl = E.filters(256)
    run = E.Runner(exe, [])
    print("| set | σ (mV) | best tuned filter | " + " | ".join(E.tag(m) for m in args.model) + " |")
    print("| --- | --- | --- |" + " --- |" * len(args.model))
    for si, sigma in enumerate(float(s) for s in args.sigmas.split(",")):
        for ki, (name, clean) in enumerate(sets.items()):
            noisy = clean + sigma * np.random.default_rng([208, si, ki]).standard_normal(clean.shape)
            best = max(E.snr_db(clean, fn(noisy, E.tune(fn, grid, clean, noisy, sigma), sigma))
                       for k, (fn, grid) in fl.items() if k.startswith(("Butterworth", "wavelet")))
            path = os.path.join(args.out_dir, f"noisy-{ki}-{sigma}.csv")
            E.write_csv(path, noisy)
            cells = []
            for m in args.model:
                out = os.path.join(args.out_dir, f"{E.tag(m)}-{ki}-{sigma}.csv")
                run(["denoise", m, "--input", path, "--sigma", sigma, "--method", "tweedie", "--out", out], "fit gap")
                snr = E.snr_db(clean, E.read_csv(out, clean.shape))
                cells.append(f"{snr:.2f} ({snr - best:+.2f})")
            print(f"| {name} | {sigma} | {best:.2f} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
