"""Makes ecg-noisy.csv and ecg-clean.csv, the firmware's denoise test input.

    cargo run --release -p tinyscore-tools -- data ecg --out /tmp/ecg-all.csv
    python3 firmware-example/inputs/make-ecg-input.py /tmp/ecg-all.csv firmware-example/inputs

Windows 2200, 2300, 2400, 2500 (of 2699; the held-out last 20% starts at 2160) plus white
Gaussian noise of sigma = 0.1 mV from numpy's default_rng(6), 6 significant digits.
"""
import sys

import numpy as np

src, dst = sys.argv[1], sys.argv[2]
rows = [l for l in open(src) if l.strip() and not l.startswith("#")]
idx = [2200, 2300, 2400, 2500]
clean = np.array([[float(v) for v in rows[i].split(",")] for i in idx])
noisy = clean + 0.1 * np.random.default_rng(6).standard_normal(clean.shape)
header = (
    "# Noisy ECG windows for the firmware's denoise mode: windows 2200, 2300, 2400, 2500 of\n"
    "# `tinyscore data ecg --out ecg.csv` (MIT-BIH record 208, 64 samples, hop 32; all four in the\n"
    "# held-out last 20%), plus white Gaussian noise of sigma = 0.1 mV from numpy default_rng(6),\n"
    "# rounded to 6 significant digits. Made by firmware-example/inputs/make-ecg-input.py.\n"
)
with open(f"{dst}/ecg-noisy.csv", "w") as f:
    f.write(header)
    for r in noisy:
        f.write(",".join("%.6g" % v for v in r) + "\n")
with open(f"{dst}/ecg-clean.csv", "w") as f:
    f.write("# The clean windows behind ecg-noisy.csv (same provenance), for `tinyscore denoise --clean`.\n")
    for r in clean:
        f.write(",".join("%.6g" % v for v in r) + "\n")
