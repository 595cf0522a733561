#!/usr/bin/env python3
"""ECG denoising benchmark: tinyscore's denoisers beside tuned classical filters.

Held-out data: the last 20% of the 64-sample windows of MIT-BIH record 208 (as `--data ecg`:
window 64, hop 32). Noise: y = x + sigma * n, n ~ N(0, 1), sigma in mV, fixed numpy seed.
Score: output SNR in dB, 10 log10(sum x^2 / sum (xhat - x)^2) over all held-out windows, x the clean
signal in mV (the same definition for every method).

Classical baselines work on the same 64-sample windows the model sees, each with its parameter
tuned on a validation set drawn from the *training* part of the recording (windows between 60% and
80%), at each sigma, so the comparison is fair to them:
  - Savitzky-Golay (scipy.signal.savgol_filter): window length and polynomial order;
  - Wiener (scipy.signal.wiener): window size, noise power = sigma^2 (known);
  - Butterworth low-pass (scipy.signal.butter + filtfilt): order 2..6 and cutoff frequency.

Imputation (--impute): each held-out window loses a span of 16 consecutive samples at a seeded
random position (never touching the window's ends); RMSE (mV) of the filled span against the truth,
for tinyscore's replacement-method imputation and for linear and cubic-spline interpolation over
the known samples.

Usage:
  pip install numpy scipy
  python3 bench/ecg_denoise.py --tinyscore target/release/tinyscore \
      --model ecg-f32.tsm [--model ecg-w8a8.tsm] [--methods tweedie,sdedit] [--out-dir /tmp/ecgbench]
Prints a markdown table (rows: method, columns: sigma).
"""
import argparse
import os
import subprocess
import sys

import numpy as np
from scipy import signal

WINDOW, HOP = 64, 32
SIGMAS = [0.05, 0.1, 0.2, 0.4]
FS = 360.0


def windows(x):
    n = (len(x) - WINDOW) // HOP + 1
    return np.stack([x[i * HOP:i * HOP + WINDOW] for i in range(n)])


def load_ecg(path):
    x = np.loadtxt(path, comments="#", dtype=np.float64).ravel()
    w = windows(x)
    n = len(w)
    split = n - int(round(0.2 * n))  # the last 20% is held out (host-train's split_holdout)
    val_lo = int(0.6 * n)
    return w[val_lo:split], w[split:]


def snr_db(clean, est):
    return 10.0 * np.log10(np.sum(clean ** 2) / np.sum((est - clean) ** 2))


def savgol(y, p):
    length, order = p
    return signal.savgol_filter(y, length, order, axis=1, mode="interp")


def wiener(y, p, sigma):
    return np.stack([signal.wiener(r, mysize=p, noise=sigma ** 2) for r in y])


def butter(y, p):
    order, cutoff = p
    b, a = signal.butter(order, cutoff / (FS / 2.0))
    return signal.filtfilt(b, a, y, axis=1, padtype="odd", padlen=min(3 * max(len(a), len(b)), WINDOW - 1))


def grids():
    sg = [(l, o) for l in range(5, WINDOW, 2) for o in range(0, 6) if o < l]
    wi = list(range(3, 32, 2))
    bu = [(o, c) for o in (2, 3, 4, 5, 6) for c in np.arange(5.0, 150.0, 2.5)]
    return sg, wi, bu


def tune(val_clean, val_noisy, sigma):
    sg, wi, bu = grids()
    best = {}
    best["Savitzky-Golay"] = max(sg, key=lambda p: snr_db(val_clean, savgol(val_noisy, p)))
    best["Wiener"] = max(wi, key=lambda p: snr_db(val_clean, wiener(val_noisy, p, sigma)))
    best["Butterworth"] = max(bu, key=lambda p: snr_db(val_clean, butter(val_noisy, p)))
    return best


def write_csv(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(",".join(repr(float(np.float32(v))) for v in r) + "\n")


def run_tinyscore(exe, model, method, noisy_csv, sigma, out_csv, extra):
    cmd = [exe, "denoise", model, "--input", noisy_csv, "--sigma", str(sigma), "--method", method,
           "--out", out_csv] + extra
    subprocess.run(cmd, check=True)
    return np.loadtxt(out_csv, delimiter=",", ndmin=2)


def impute_table(args, test):
    from scipy.interpolate import CubicSpline
    rng = np.random.default_rng(args.seed + 1)
    starts = rng.integers(1, WINDOW - args.gap, size=len(test))
    mask = np.ones_like(test)
    for r, a in enumerate(starts):
        mask[r, a:a + args.gap] = 0.0
    gaps = mask == 0.0
    idx = np.arange(WINDOW)
    lin = test.copy()
    cub = test.copy()
    for r in range(len(test)):
        k = mask[r] == 1.0
        lin[r, ~k] = np.interp(idx[~k], idx[k], test[r, k])
        cub[r, ~k] = CubicSpline(idx[k], test[r, k])(idx[~k])
    rmse = lambda est: float(np.sqrt(np.mean((est[gaps] - test[gaps]) ** 2)))
    rows = {"linear interpolation": rmse(lin), "cubic spline": rmse(cub)}
    observed = np.where(gaps, 0.0, test)
    obs_csv = os.path.join(args.out_dir, "impute-observed.csv")
    mask_csv = os.path.join(args.out_dir, "impute-mask.csv")
    write_csv(obs_csv, observed)
    write_csv(mask_csv, mask)
    for model in args.model:
        out_csv = os.path.join(args.out_dir, f"{os.path.basename(model)}-impute.csv")
        subprocess.run([args.tinyscore, "denoise", model, "--input", obs_csv, "--mask", mask_csv, "--out", out_csv]
                       + args.impute_args.split(), check=True)
        rows[f"tinyscore impute ({os.path.basename(model)}, {args.impute_args})"] = rmse(
            np.loadtxt(out_csv, delimiter=",", ndmin=2))
    print(f"\nimputation: {len(test)} held-out windows, a {args.gap}-sample gap each (RMSE of the gap, mV)\n")
    print("| method | RMSE (mV) |")
    print("| --- | --- |")
    for name, v in rows.items():
        print(f"| {name} | {v:.4f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                                                   "ecg-mitbih-208.csv"))
    ap.add_argument("--tinyscore", default="target/release/tinyscore")
    ap.add_argument("--model", action="append", default=[])
    ap.add_argument("--methods", default="tweedie,sdedit")
    ap.add_argument("--extra", default="", help="extra arguments for tinyscore denoise")
    ap.add_argument("--seed", type=int, default=208)
    ap.add_argument("--out-dir", default="/tmp/ecg-denoise-bench")
    ap.add_argument("--impute", action="store_true", help="also run the 16-sample gap imputation benchmark")
    ap.add_argument("--gap", type=int, default=16)
    ap.add_argument("--impute-args", default="--steps 50 --draws 4 --resample 5",
                    help="tinyscore denoise arguments of the imputation runs")
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    val, test = load_ecg(args.data)
    rng = np.random.default_rng(args.seed)
    table = {}
    params = {}
    for sigma in SIGMAS:
        val_noisy = val + sigma * rng.standard_normal(val.shape)
        test_noisy = test + sigma * rng.standard_normal(test.shape)
        table.setdefault("noisy input", {})[sigma] = snr_db(test, test_noisy)
        best = tune(val, val_noisy, sigma)
        params[sigma] = best
        table.setdefault("Savitzky-Golay", {})[sigma] = snr_db(test, savgol(test_noisy, best["Savitzky-Golay"]))
        table.setdefault("Wiener", {})[sigma] = snr_db(test, wiener(test_noisy, best["Wiener"], sigma))
        table.setdefault("Butterworth", {})[sigma] = snr_db(test, butter(test_noisy, best["Butterworth"]))
        noisy_csv = os.path.join(args.out_dir, f"noisy-{sigma}.csv")
        write_csv(noisy_csv, test_noisy)
        write_csv(os.path.join(args.out_dir, f"clean-{sigma}.csv"), test)
        for model in args.model:
            for method in args.methods.split(","):
                out_csv = os.path.join(args.out_dir, f"{os.path.basename(model)}-{method}-{sigma}.csv")
                est = run_tinyscore(args.tinyscore, model, method, noisy_csv, sigma, out_csv, args.extra.split())
                table.setdefault(f"tinyscore {method} ({os.path.basename(model)})", {})[sigma] = snr_db(test, est)
    print(f"held-out windows: {len(test)} x {WINDOW} samples; validation windows: {len(val)}\n")
    print("| method | " + " | ".join(f"σ = {s} mV" for s in SIGMAS) + " |")
    print("| --- |" + " --- |" * len(SIGMAS))
    for name, row in table.items():
        print(f"| {name} | " + " | ".join(f"{row[s]:.2f}" for s in SIGMAS) + " |")
    if args.impute:
        impute_table(args, test)
    print("\ntuned parameters:")
    for s in SIGMAS:
        print(f"  σ = {s}: " + ", ".join(f"{k} {v}" for k, v in params[s].items()))


if __name__ == "__main__":
    sys.exit(main())
