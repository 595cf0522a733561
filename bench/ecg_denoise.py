#!/usr/bin/env python3
"""ECG denoising and imputation benchmark: tinyscore's denoisers beside tuned classical methods.

Data: MIT-BIH record 208 (`ecg-mitbih-208.csv`, one sample a line, mV, 360 Hz), found at `--data`,
else `$TINYSCORE_DATA/ecg-mitbih-208.csv`, else `<repo>/../shared/data/` (or that of the main
worktree when run from a git worktree).

Split rule (by samples of the recording, not by windows, so no training sample leaks in):
  - held-out (test) = the last 20% of the recording: samples [n - round(0.2 n), n) = [69120, 86400)
    for the 86400-sample recording. `tinyscore train --data ecg --window L` cuts windows with hop L/2
    and holds out the last round(20%) of its *windows*; for n = 86400 and L in {64, 128, 256, 512}
    its training windows end exactly at sample 69120, so they never see a held-out sample (for other
    L they end at or before it; the script checks and warns otherwise).
  - validation (tuning the classical methods) = samples [0.6 n, 0.8 n), inside the training part.
  - windows of L samples are cut from each part with hop `--hop`: by default (`auto`) the largest of
    L, L/2, L/4, ... that gives at least `--min-windows` (200) held-out windows. The last 20% holds
    17280 samples: at L = 256 that is 67 non-overlapping windows, 134 at hop 128, and 267 at hop 64,
    so the default at L = 256 is hop 64 (windows overlap by 3/4; each window gets its own noise and
    its own gap, so overlapping windows are distinct test cases but not independent ones). At L = 64
    the default is hop 64 (270 non-overlapping windows). `--hop L` forces non-overlapping windows.
    The validation part is cut with hop L (non-overlapping: 67 windows at L = 256).
  - `--max-windows N` keeps the first N held-out windows (noise and gaps of window i do not depend
    on N).

Denoising: y = x + sigma n, n ~ N(0, 1), sigma in {0.05, 0.1, 0.2, 0.4} mV, numpy seed (`--seed`,
sigma index). Score: output SNR in dB, 10 log10(sum x^2 / sum (xhat - x)^2) over all held-out windows.
Classical baselines work on the same L-sample windows the model sees, each with its parameters tuned
at each sigma on the validation windows (with their own noise), so the comparison is fair to them:
  - Savitzky-Golay (scipy.signal.savgol_filter): window length and polynomial order;
  - Wiener (scipy.signal.wiener): window size, noise power = sigma^2 (known);
  - Butterworth low-pass (scipy.signal.butter + filtfilt, zero phase): order 2..6 and cutoff;
  - wavelet thresholding (PyWavelets, if installed): wavelet (db4/db6/db8/sym4/sym6/sym8/coif2/
    coif3), decimated (DWT) or translation-invariant (SWT) transform, levels, soft or hard
    threshold c * sigma * sqrt(2 ln L) on the detail coefficients (the universal threshold of
    Donoho & Johnstone with a tuned factor c; sigma known).
tinyscore: `tinyscore denoise M --input noisy.csv --sigma S --method {tweedie,sdedit} --out out.csv`
per model, method and sigma (`--sdedit-args` for sdedit's --steps/--draws, `--extra` for all).

Imputation (`--impute`): each held-out window loses `g` consecutive samples for each g in `--gaps`
(default 32,64) at a seeded random position that never touches the window's ends; RMSE (mV) over
the missing samples of all windows, for
  - linear interpolation between the gap's two neighbours;
  - cubic spline (scipy CubicSpline, not-a-knot) through all known samples of the window, and
    through only k known samples each side of the gap with k tuned on the validation windows per
    gap (k in 2, 3, 4, 6, 8, 12, 16, 24, 32, all); the ratio "/ spline" uses the better of the two
    on the held-out set (the stronger baseline, which only makes the comparison stricter);
  - PCHIP (shape-preserving cubic, scipy PchipInterpolator) through k known samples each side,
    k tuned the same way (an extra reference);
  - tinyscore: `tinyscore denoise M --input observed.csv --mask mask.csv --out filled.csv` plus
    `--impute-args` (default `--steps 50 --draws 4 --resample 5`; repeat the flag to compare several
    settings, e.g. `--impute-args "--impute-from linear --t-start 0.3 --steps 10 --draws 8
    --resample 10"`); mask: 1 known, 0 missing. With `--impute-from input` in the arguments the
    input CSV holds the tuned PCHIP fill at the missing samples (the fill the model starts from);
    otherwise 0 there (ignored).
Ratios to linear interpolation and to the better spline are reported.

Output: markdown tables on stdout, every command line it runs with its wall time, and with
`--json out.json` a JSON of all numbers, tuned parameters, commands and timings.

Usage:
  python3 -m venv /tmp/venv && /tmp/venv/bin/pip install numpy scipy PyWavelets
  /tmp/venv/bin/python bench/ecg_denoise.py --tinyscore target/release/tinyscore \\
      --window 256 --model ecg256-f32.tsm [--model other.tsm] [--methods tweedie,sdedit] \\
      [--impute --gaps 32,64] [--max-windows 20] [--json out.json] [--out-dir /tmp/ecgbench]
"""
import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time

try:
    import numpy as np
    from scipy import signal
    from scipy.interpolate import CubicSpline, PchipInterpolator
except ImportError as e:  # pragma: no cover
    sys.exit(f"ecg_denoise.py needs numpy and scipy ({e}); pip install numpy scipy [PyWavelets]")

try:
    import pywt
except ImportError:
    pywt = None

SIGMAS = [0.05, 0.1, 0.2, 0.4]
FS = 360.0
HOLDOUT = 0.2
VAL_FROM = 0.6
DATA_FILE = "ecg-mitbih-208.csv"


class BenchError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# data


def find_data(arg):
    if arg:
        if not os.path.isfile(arg):
            raise BenchError(f"--data {arg}: no such file")
        return arg
    tried = []
    env = os.environ.get("TINYSCORE_DATA")
    if env:
        p = os.path.join(env, DATA_FILE)
        if os.path.isfile(p):
            return p
        raise BenchError(f"$TINYSCORE_DATA is set but {p} does not exist")
    repo = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    cands = [os.path.join(repo, "..", "shared", "data", DATA_FILE),
             os.path.join("shared", "data", DATA_FILE), os.path.join("..", "shared", "data", DATA_FILE)]
    try:  # a git worktree: also look beside the main worktree
        common = subprocess.run(["git", "-C", repo, "rev-parse", "--path-format=absolute", "--git-common-dir"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
        if common:
            cands.append(os.path.join(os.path.dirname(common), "..", "shared", "data", DATA_FILE))
    except (OSError, subprocess.SubprocessError):
        pass
    for p in cands:
        tried.append(os.path.abspath(p))
        if os.path.isfile(p):
            return os.path.abspath(p)
    raise BenchError("cannot find the ECG recording; pass --data PATH or set $TINYSCORE_DATA. Tried:\n  "
                     + "\n  ".join(tried))


def cut(x, lo, hi, window, hop):
    """Windows of `window` samples with hop `hop` inside samples [lo, hi)."""
    if hi - lo < window:
        return np.zeros((0, window))
    n = (hi - lo - window) // hop + 1
    return np.stack([x[lo + i * hop:lo + i * hop + window] for i in range(n)])


def auto_hop(held, window, min_windows):
    hop = window
    while True:
        n = (held - window) // hop + 1 if held >= window else 0
        if n >= min_windows or hop == 1:
            return hop
        hop = max(1, hop // 2)


def load_ecg(path, window, hop_arg, min_windows):
    try:
        x = np.loadtxt(path, comments="#", dtype=np.float64, delimiter=",", ndmin=1).ravel()
    except ValueError as e:
        raise BenchError(f"{path}: not a one-column CSV of numbers ({e})")
    n = len(x)
    split = n - int(round(HOLDOUT * n))
    val_lo = int(VAL_FROM * n)
    if n - split < window:
        raise BenchError(f"--window {window}: the held-out part has only {n - split} samples")
    try:
        hop = auto_hop(n - split, window, min_windows) if hop_arg == "auto" else int(hop_arg)
    except ValueError:
        raise BenchError(f"--hop must be an integer or auto, got {hop_arg!r}")
    if not 1 <= hop <= window:
        raise BenchError(f"--hop must be in 1..={window} or auto, got {hop_arg}")
    # what `tinyscore train --data ecg --window L` trains on: windows of hop L/2, all but the last
    # round(20%) of them
    thop = max(1, window // 2)
    tn = (n - window) // thop + 1
    t_train = tn - int(round(HOLDOUT * tn))
    train_end = (t_train - 1) * thop + window if t_train > 0 else 0
    info = {
        "samples": n, "heldout_samples": [split, n], "validation_samples": [val_lo, split],
        "window": window, "hop": hop, "train_windows_end_sample": train_end,
    }
    if train_end > split:
        print(f"warning: tinyscore's training windows at L = {window} reach sample {train_end}, "
              f"{train_end - split} samples into the held-out part", file=sys.stderr)
    # validation windows never overlap (hop L): the tuning grids are large and the machine small
    return cut(x, val_lo, split, window, window), cut(x, split, n, window, hop), info


# ---------------------------------------------------------------------------------------------
# classical denoisers


def snr_db(clean, est):
    return float(10.0 * np.log10(np.sum(clean ** 2) / np.sum((est - clean) ** 2)))


def savgol(y, p, sigma):
    length, order = p
    return signal.savgol_filter(y, length, order, axis=1, mode="interp")


def wiener(y, p, sigma):
    return signal.wiener(y, mysize=[1, p], noise=sigma ** 2)


def butter(y, p, sigma):
    order, cutoff = p
    b, a = signal.butter(order, cutoff / (FS / 2.0))
    return signal.filtfilt(b, a, y, axis=1, padtype="odd", padlen=min(3 * max(len(a), len(b)), y.shape[1] - 1))


def wavelet(y, p, sigma):
    name, transform, level, mode, c = p
    thr = c * sigma * np.sqrt(2.0 * np.log(y.shape[1]))
    if transform == "dwt":
        coeffs = pywt.wavedec(y, name, level=level, axis=1)
        coeffs = [coeffs[0]] + [pywt.threshold(d, thr, mode=mode) for d in coeffs[1:]]
        return pywt.waverec(coeffs, name, axis=1)[:, :y.shape[1]]
    coeffs = pywt.swt(y, name, level=level, axis=1, trim_approx=True, norm=True)
    coeffs = [coeffs[0]] + [pywt.threshold(d, thr, mode=mode) for d in coeffs[1:]]
    return pywt.iswt(coeffs, name, axis=1, norm=True)


def filters(window):
    sg = [(l, o) for l in range(5, min(window, 129), 2) for o in range(0, 7) if o < l - 1]
    wi = list(range(3, min(window, 80), 2))
    bu = [(o, float(c)) for o in (2, 3, 4, 5, 6) for c in np.arange(5.0, 150.0, 2.5)]
    out = {"Savitzky-Golay": (savgol, sg), "Wiener": (wiener, wi), "Butterworth low-pass (filtfilt)": (butter, bu)}
    if pywt is not None:
        wv = []
        for name in ("db4", "db6", "db8", "sym4", "sym6", "sym8", "coif2", "coif3"):
            flen = pywt.Wavelet(name).dec_len
            for transform in ("dwt", "swt"):
                for level in range(2, 7):
                    if transform == "dwt" and level > pywt.dwt_max_level(window, flen):
                        continue
                    if transform == "swt" and (window % (2 ** level) != 0):
                        continue
                    for mode in ("soft", "hard"):
                        for c in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2):
                            wv.append((name, transform, level, mode, c))
        out["wavelet thresholding"] = (wavelet, wv)
    return out


def tune(fn, grid, clean, noisy, sigma):
    return max(grid, key=lambda p: snr_db(clean, fn(noisy, p, sigma)))


# ---------------------------------------------------------------------------------------------
# tinyscore


class Runner:
    def __init__(self, exe, log):
        self.exe = exe
        self.log = log

    def __call__(self, args, what):
        cmd = [self.exe] + [str(a) for a in args]
        line = shlex.join(cmd)
        print(f"$ {line}", flush=True)
        t0 = time.perf_counter()
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        dt = time.perf_counter() - t0
        if r.returncode != 0:
            raise BenchError(f"{what}: tinyscore exited with {r.returncode}\n$ {line}\n{r.stderr.strip()}")
        print(f"  ({dt:.2f} s)", flush=True)
        self.log.append({"what": what, "command": line, "seconds": round(dt, 3)})
        return dt


def check_exe(path):
    exe = path if os.sep in path else (shutil.which(path) or path)
    if not os.path.isfile(exe):
        raise BenchError(f"tinyscore binary not found at '{path}' (build it with "
                         f"`cargo build --release -p tinyscore-tools`, or pass --tinyscore PATH)")
    if not os.access(exe, os.X_OK):
        raise BenchError(f"tinyscore binary '{exe}' is not executable")
    return os.path.abspath(exe)


def write_csv(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(",".join(repr(float(np.float32(v))) for v in r) + "\n")


def read_csv(path, shape):
    try:
        a = np.loadtxt(path, delimiter=",", ndmin=2)
    except (OSError, ValueError) as e:
        raise BenchError(f"{path}: cannot read tinyscore's output ({e})")
    if a.shape != shape:
        raise BenchError(f"{path}: tinyscore wrote shape {a.shape}, expected {shape}")
    return a


def tag(model):
    return os.path.basename(model)


# ---------------------------------------------------------------------------------------------
# imputation


def gap_masks(n, window, gap, seed):
    if not 1 <= gap <= window - 2:
        raise BenchError(f"gap {gap} does not fit inside a window of {window} without touching its ends")
    rng = np.random.default_rng([seed, 1, gap])
    starts = rng.integers(1, window - gap, size=n)  # first missing index in [1, L-g-1]: ends kept
    mask = np.ones((n, window))
    for r, a in enumerate(starts):
        mask[r, a:a + gap] = 0.0
    return mask


def interp_fill(x, mask, kind, k):
    """Fills each window's gap by `kind` through k known samples each side (None: all)."""
    out = x.copy()
    idx = np.arange(x.shape[1])
    for r in range(len(x)):
        miss = np.flatnonzero(mask[r] == 0.0)
        a, b = miss[0], miss[-1]
        known = idx[mask[r] == 1.0]
        if k is not None:
            known = known[(known >= a - k) & (known <= b + k)]
        xs, ys = known, x[r, known]
        if kind == "linear":
            out[r, miss] = np.interp(miss, xs, ys)
        elif kind == "spline":
            out[r, miss] = CubicSpline(xs, ys)(miss)
        else:
            out[r, miss] = PchipInterpolator(xs, ys)(miss)
    return out


def gap_rmse(truth, est, mask):
    g = mask == 0.0
    return float(np.sqrt(np.mean((est[g] - truth[g]) ** 2)))


KS = [2, 3, 4, 6, 8, 12, 16, 24, 32, None]


def tune_k(val, vmask, kind):
    scores = {k: gap_rmse(val, interp_fill(val, vmask, kind, k), vmask) for k in KS}
    return min(scores, key=lambda k: scores[k])


def impute(args, run, val, test, results, outdir):
    window = test.shape[1]
    rows_all = {}
    for gap in args.gaps:
        mask = gap_masks(len(test), window, gap, args.seed)
        vmask = gap_masks(len(val), window, gap, args.seed + 7919)
        t0 = time.perf_counter()
        rows = {"linear interpolation": gap_rmse(test, interp_fill(test, mask, "linear", 1), mask)}
        rows["cubic spline (all known samples)"] = gap_rmse(test, interp_fill(test, mask, "spline", None), mask)
        ks = tune_k(val, vmask, "spline")
        kname = "all" if ks is None else str(ks)
        rows[f"cubic spline ({kname} known samples each side, tuned)"] = gap_rmse(
            test, interp_fill(test, mask, "spline", ks), mask)
        kp = tune_k(val, vmask, "pchip")
        pname = "all" if kp is None else str(kp)
        rows[f"PCHIP ({pname} known samples each side, tuned)"] = gap_rmse(
            test, interp_fill(test, mask, "pchip", kp), mask)
        print(f"classical imputation, gap {gap}: {time.perf_counter() - t0:.1f} s")
        obs_csv = os.path.join(outdir, f"impute-{gap}-observed.csv")
        mask_csv = os.path.join(outdir, f"impute-{gap}-mask.csv")
        pchip_csv = os.path.join(outdir, f"impute-{gap}-pchip-filled.csv")
        write_csv(obs_csv, np.where(mask == 0.0, 0.0, test))
        write_csv(pchip_csv, interp_fill(np.where(mask == 0.0, 0.0, test), mask, "pchip", kp))
        write_csv(mask_csv, mask)
        for model in args.model:
            for k, iargs in enumerate(args.impute_args):
                out_csv = os.path.join(outdir, f"{tag(model)}-impute-{gap}-{k}.csv")
                given = "input" in shlex.split(iargs)
                run(["denoise", model, "--input", pchip_csv if given else obs_csv, "--mask", mask_csv,
                     "--out", out_csv] + shlex.split(iargs), f"impute gap {gap} {tag(model)}")
                est = read_csv(out_csv, test.shape)
                rows[f"tinyscore impute ({tag(model)}, {iargs})"] = gap_rmse(test, est, mask)
        lin = rows["linear interpolation"]
        spl = min(v for name, v in rows.items() if name.startswith("cubic spline"))
        rows_all[gap] = {name: {"rmse_mv": v, "vs_linear": v / lin, "vs_spline": v / spl}
                         for name, v in rows.items()}
        rows_all[gap]["_tuned"] = {"spline_k_each_side": kname, "pchip_k_each_side": pname}
    results["impute"] = {str(g): v for g, v in rows_all.items()}
    for gap, rows in rows_all.items():
        print(f"\n**Imputation, gap of {gap} samples ({1000 * gap / FS:.0f} ms)** — {len(test)} held-out "
              f"windows, RMSE over the missing samples (mV); ratios to linear interpolation and to the "
              f"better cubic spline\n")
        print("| method | RMSE (mV) | / linear | / spline |")
        print("| --- | --- | --- | --- |")
        for name, v in rows.items():
            if not name.startswith("_"):
                print(f"| {name} | {v['rmse_mv']:.4f} | {v['vs_linear']:.3f} | {v['vs_spline']:.3f} |")


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("--data", default=None, help="the recording (default: see below)")
    ap.add_argument("--tinyscore", default="target/release/tinyscore", help="the tinyscore binary")
    ap.add_argument("--model", action="append", default=[], help=".tsm model file (repeatable)")
    ap.add_argument("--window", type=int, default=256, help="window length L in samples (default 256)")
    ap.add_argument("--hop", default="auto", help="hop between held-out windows (default auto, see below)")
    ap.add_argument("--min-windows", type=int, default=200, help="held-out windows --hop auto aims for")
    ap.add_argument("--max-windows", type=int, default=None, help="use only the first N held-out windows")
    ap.add_argument("--methods", default="tweedie,sdedit", help="tinyscore denoise methods, comma-separated")
    ap.add_argument("--sigmas", default=",".join(map(str, SIGMAS)), help="noise levels in mV")
    ap.add_argument("--sdedit-args", default="--steps 50 --draws 4", help="tinyscore arguments of sdedit runs")
    ap.add_argument("--extra", default="", help="extra arguments for every tinyscore denoise run")
    ap.add_argument("--seed", type=int, default=208)
    ap.add_argument("--out-dir", default="/tmp/ecg-denoise-bench", help="scratch directory of CSVs")
    ap.add_argument("--no-denoise", action="store_true", help="skip the denoising benchmark")
    ap.add_argument("--impute", action="store_true", help="also run the gap imputation benchmark")
    ap.add_argument("--gaps", default="32,64", help="gap lengths in samples, comma-separated")
    ap.add_argument("--impute-args", action="append", default=None,
                    help="tinyscore denoise arguments of the imputation runs")
    ap.add_argument("--json", default=None, help="write every number to this JSON file")
    args = ap.parse_args()
    try:
        return bench(args)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def bench(args):
    t_start = time.perf_counter()
    args.gaps = [int(g) for g in args.gaps.split(",") if g.strip()]
    args.impute_args = args.impute_args or ["--steps 50 --draws 4 --resample 5"]
    sigmas = [float(s) for s in args.sigmas.split(",") if s.strip()]
    methods = [m for m in args.methods.split(",") if m.strip()]
    if args.window < 8:
        raise BenchError("--window must be at least 8")
    exe = None
    if args.model:
        exe = check_exe(args.tinyscore)
        for m in args.model:
            if not os.path.isfile(m):
                raise BenchError(f"--model {m}: no such file")
    data = find_data(args.data)
    val, test, info = load_ecg(data, args.window, args.hop, args.min_windows)
    info["heldout_windows_all"] = len(test)
    if args.max_windows is not None:
        test = test[:args.max_windows]
    if len(test) == 0 or len(val) == 0:
        raise BenchError("no windows to evaluate")
    os.makedirs(args.out_dir, exist_ok=True)
    log = []
    run = Runner(exe, log)
    n, split = info["samples"], info["heldout_samples"][0]
    print(f"data: {data} ({n} samples, {FS:.0f} Hz)")
    print(f"held-out: samples [{split}, {n}) (last {HOLDOUT:.0%}), {len(test)} of {info['heldout_windows_all']} "
          f"windows of {args.window} "
          f"samples, hop {info['hop']}" + (" (non-overlapping)" if info["hop"] == args.window else
                                            f" (overlapping; --hop auto: fewer than {args.min_windows} "
                                            f"windows at hop {args.window})" if args.hop == "auto" else ""))
    held = n - split
    print("held-out windows by hop: " + ", ".join(
        f"{h}: {(held - args.window) // h + 1}" for h in sorted({args.window, max(1, args.window // 2),
                                                                  max(1, args.window // 4)}, reverse=True)))
    print(f"validation (tuning): samples [{info['validation_samples'][0]}, {split}), {len(val)} windows; "
          f"tinyscore train --window {args.window} trains on samples [0, {info['train_windows_end_sample']})")
    results = {
        "data": os.path.abspath(data), "split": info, "heldout_windows": len(test), "validation_windows": len(val),
        "seed": args.seed, "sigmas_mv": sigmas, "models": [os.path.abspath(m) for m in args.model],
        "tinyscore": exe, "methods": methods, "sdedit_args": args.sdedit_args, "extra": args.extra,
        "impute_args": args.impute_args, "gaps": args.gaps, "pywt": pywt.__version__ if pywt else None,
        "machine": platform.node(), "python": platform.python_version(),
    }
    if not args.no_denoise:
        denoise(args, run, sigmas, methods, val, test, results)
    if args.impute:
        impute(args, run, val, test, results, args.out_dir)
    total = time.perf_counter() - t_start
    results["commands"] = log
    results["seconds_total"] = round(total, 2)
    print(f"\ntotal wall time {total:.1f} s (tinyscore runs: {sum(c['seconds'] for c in log):.1f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
        print(f"wrote {args.json}")
    return 0


def denoise(args, run, sigmas, methods, val, test, results):
    table, params = {}, {}
    fl = filters(args.window)
    if pywt is None:
        print("note: PyWavelets not installed; no wavelet baseline (pip install PyWavelets)")
    for si, sigma in enumerate(sigmas):
        # the noise of window i does not depend on --max-windows: draw for the full set, then cut
        rng = np.random.default_rng([args.seed, si])
        val_noisy = val + sigma * rng.standard_normal(val.shape)
        rng = np.random.default_rng([args.seed, 1000 + si])
        test_noisy = test + sigma * rng.standard_normal(test.shape)  # rows in order: a prefix of the full draw
        table.setdefault("noisy input", {})[sigma] = snr_db(test, test_noisy)
        t0 = time.perf_counter()
        params[sigma] = {}
        for name, (fn, grid) in fl.items():
            p = tune(fn, grid, val, val_noisy, sigma)
            params[sigma][name] = p
            table.setdefault(f"{name} (tuned)", {})[sigma] = snr_db(test, fn(test_noisy, p, sigma))
        print(f"σ = {sigma}: classical filters tuned in {time.perf_counter() - t0:.1f} s")
        noisy_csv = os.path.join(args.out_dir, f"noisy-{sigma}.csv")
        write_csv(noisy_csv, test_noisy)
        write_csv(os.path.join(args.out_dir, f"clean-{sigma}.csv"), test)
        for model in args.model:
            for method in methods:
                out_csv = os.path.join(args.out_dir, f"{tag(model)}-{method}-{sigma}.csv")
                extra = shlex.split(args.extra) + (shlex.split(args.sdedit_args) if method == "sdedit" else [])
                run(["denoise", model, "--input", noisy_csv, "--sigma", sigma, "--method", method,
                     "--out", out_csv] + extra, f"denoise {method} σ={sigma} {tag(model)}")
                est = read_csv(out_csv, test.shape)
                label = f"tinyscore {method}" + (f" ({args.sdedit_args})" if method == "sdedit" else "")
                table.setdefault(f"{label}, {tag(model)}", {})[sigma] = snr_db(test, est)
    classical = [k for k in table if k.endswith("(tuned)")]
    best = {s: max(table[k][s] for k in classical) for s in sigmas}
    results["denoise_snr_db"] = table
    results["best_classical_snr_db"] = best
    results["tuned_params"] = {str(s): {k: list(v) if isinstance(v, tuple) else v for k, v in p.items()}
                               for s, p in params.items()}
    print(f"\n**Denoising** — output SNR (dB), {len(test)} held-out windows of {args.window} samples\n")
    print("| method | " + " | ".join(f"σ = {s} mV" for s in sigmas) + " |")
    print("| --- |" + " --- |" * len(sigmas))
    for name, row in table.items():
        print(f"| {name} | " + " | ".join(f"{row[s]:.2f}" for s in sigmas) + " |")
    models = [k for k in table if k.startswith("tinyscore")]
    if models:
        print("\nmargin over the best tuned classical method (dB):\n")
        print("| method | " + " | ".join(f"σ = {s} mV" for s in sigmas) + " |")
        print("| --- |" + " --- |" * len(sigmas))
        for name in models:
            print(f"| {name} | " + " | ".join(f"{table[name][s] - best[s]:+.2f}" for s in sigmas) + " |")
    print("\ntuned parameters:")
    for s in sigmas:
        print(f"  σ = {s}: " + "; ".join(f"{k} {v}" for k, v in params[s].items()))


if __name__ == "__main__":
    sys.exit(main())
