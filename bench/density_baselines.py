#!/usr/bin/env python3
"""Held-out NLL of two classical density estimates, beside `tinyscore likelihood`.

Baselines, fitted on the same training data the models train on, evaluated on the same held-out
points `tinyscore likelihood` uses, in the data's original units, nats per dimension:
  - a Gaussian with the training set's mean and full (maximum-likelihood) covariance;
  - a Gaussian kernel density estimate (scipy.stats.gaussian_kde: kernel covariance = h^2 times the
    data covariance), h chosen on a validation split (the last 20% of the training examples, with all their
    dequantised copies) from a grid
    around Scott's rule, then refitted on the whole training set.
Standard errors are over held-out points.

Data:
  - generated toys (moons, 8gaussians): training = `tinyscore data NAME --n 20000 --seed 0` (what
    `tinyscore train --data NAME` draws by default); held-out = `--n 1000 --seed 1 + 0x5eed0ff5`
    (what `tinyscore likelihood --data NAME` draws with its default --seed 1 and --n 1000);
  - digits: integer grey levels 0..16, on which a continuous density is unbounded (three pixels are
    always 0). --prepare-digits DIR writes *uniformly dequantised* copies, x + u with u ~ U[0, 1)^64
    (numpy seed 0): DIR/digits-deq-train.csv (the first 80% of the images, 4 noisy copies each) and
    DIR/digits-deq-test.csv (the last 20%, one copy). Models train on the first and are measured
    on the second with --data FILE; the NLL of dequantised data bounds the discrete one
    (-log P(x) <= E_u[-log p(x + u)]; Theis et al. 2016).

Usage:
  pip install numpy scipy
  python3 bench/density_baselines.py --tinyscore target/release/tinyscore --prepare-digits /tmp/lik
  python3 bench/density_baselines.py --tinyscore target/release/tinyscore --data moons
  python3 bench/density_baselines.py --train /tmp/lik/digits-deq-train.csv --test /tmp/lik/digits-deq-test.csv --copies 4
"""
import argparse
import gzip
import os
import subprocess
import tempfile

import numpy as np
from scipy.stats import gaussian_kde

HELDOUT_SEED_OFFSET = 0x5EED0FF5


def dump(tinyscore, name, n, seed):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "x.csv")
        subprocess.run([tinyscore, "data", name, "--n", str(n), "--seed", str(seed), "--out", path], check=True)
        return np.loadtxt(path, delimiter=",", ndmin=2)


def gaussian_nll(train, test):
    mu = train.mean(0)
    cov = np.cov(train, rowvar=False, bias=True)
    d = train.shape[1]
    sign, logdet = np.linalg.slogdet(cov)
    assert sign > 0, "singular covariance"
    diff = test - mu
    maha = np.einsum("ij,ij->i", diff @ np.linalg.inv(cov), diff)
    logp = -0.5 * (d * np.log(2 * np.pi) + logdet + maha)
    return -logp / d


def kde_nll(train, test, h):
    kde = gaussian_kde(train.T, bw_method=h)
    return -kde.logpdf(test.T) / train.shape[1]


def mean_se(v):
    return v.mean(), v.std(ddof=1) / np.sqrt(len(v))


def baselines(train, test, copies):
    n, d = train.shape
    # Validation: the last 20% of the distinct examples (with all their noisy copies, so no copy
    # of a validation example is in the fitting part).
    distinct = n // copies
    example = np.arange(n) % distinct
    val_mask = example >= int(round(0.8 * distinct))
    fit, val = train[~val_mask], train[val_mask]
    scott = len(fit) ** (-1.0 / (d + 4))
    grid = scott * 2.0 ** np.arange(-4.0, 1.01, 0.5)
    scores = [kde_nll(fit, val, h).mean() for h in grid]
    h = grid[int(np.argmin(scores))]
    g = mean_se(gaussian_nll(train, test))
    k = mean_se(kde_nll(train, test, h))
    print(f"Gaussian fit: NLL {g[0]:.4f} ± {g[1]:.4f} nats/dim")
    print(f"KDE (h = {h:.4f}, Scott {scott:.4f}; validation NLL per h: "
          + ", ".join(f"{a:.3f}:{b:.3f}" for a, b in zip(grid, scores)) + ")")
    print(f"KDE: NLL {k[0]:.4f} ± {k[1]:.4f} nats/dim ({len(test)} held-out points, {n} training points, D = {d})")


def prepare_digits(out):
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.environ.get("TINYSCORE_DATA", os.path.join(here, "..", "..", "shared", "data"))
    a = np.loadtxt(gzip.open(os.path.join(path, "digits.csv.gz")), delimiter=",", comments="#")
    x = a[:, :64]
    n = len(x)
    held = int(round(0.2 * n))
    train, test = x[: n - held], x[n - held:]
    rng = np.random.default_rng(0)
    train_deq = np.concatenate([train + rng.random(train.shape) for _ in range(4)])
    test_deq = test + rng.random(test.shape)
    os.makedirs(out, exist_ok=True)
    np.savetxt(os.path.join(out, "digits-deq-train.csv"), train_deq, delimiter=",", fmt="%.6f")
    np.savetxt(os.path.join(out, "digits-deq-test.csv"), test_deq, delimiter=",", fmt="%.6f")
    print(f"wrote {out}/digits-deq-train.csv ({len(train_deq)} rows) and digits-deq-test.csv ({len(test_deq)} rows)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tinyscore", default="target/release/tinyscore")
    ap.add_argument("--data", help="built-in generated data set")
    ap.add_argument("--train", help="training CSV")
    ap.add_argument("--test", help="held-out CSV")
    ap.add_argument("--copies", type=int, default=1, help="noisy copies per example in --train (4 for digits)")
    ap.add_argument("--prepare-digits", metavar="DIR")
    args = ap.parse_args()
    if args.prepare_digits:
        prepare_digits(args.prepare_digits)
        return
    if args.data:
        train = dump(args.tinyscore, args.data, 20000, 0)
        test = dump(args.tinyscore, args.data, 1000, 1 + HELDOUT_SEED_OFFSET)
    else:
        train = np.loadtxt(args.train, delimiter=",", ndmin=2)
        test = np.loadtxt(args.test, delimiter=",", ndmin=2)
    baselines(train, test, args.copies)


if __name__ == "__main__":
    main()
