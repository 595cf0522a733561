"""Makes ecg-stream-noisy.csv and ecg-stream-clean.csv, the firmware's `stream` mode input.

    python3 firmware-example/inputs/make-ecg-stream.py /work/shared/data/ecg-mitbih-208.csv firmware-example/inputs

The recording (MIT-BIH record 208, 360 Hz, one value in mV per line) is split as `tinyscore data
ecg` splits it: the last 20% is held out. From that part, samples 72000..73024 (1024 samples,
2.84 s) plus white Gaussian noise of sigma = 0.1 mV from Python's random.Random(18).gauss (no
numpy needed), 6 significant digits. Six samples are then replaced by bad values, to test the
stream's input rule: NaN at 200 and 201, +inf at 400, -inf at 600, 1e30 at 800 and -1e30 at 900
(the clean file keeps the clean values there).
"""
import random
import sys

src, dst = sys.argv[1], sys.argv[2]
signal = [float(l) for l in open(src) if l.strip() and not l.startswith("#")]
held_out = int(len(signal) * 0.8)
start, n = 72000, 1024
assert start >= held_out, (start, held_out)
clean = signal[start : start + n]
rng = random.Random(18)
noisy = ["%.6g" % (v + 0.1 * rng.gauss(0.0, 1.0)) for v in clean]
bad = {200: "nan", 201: "nan", 400: "inf", 600: "-inf", 800: "1e30", 900: "-1e30"}
for i, v in bad.items():
    noisy[i] = v
header = (
    "# Noisy ECG stream for the firmware's stream mode: samples %d..%d of MIT-BIH record 208\n"
    "# (360 Hz, mV; in the held-out last 20%%, which starts at %d), plus white Gaussian noise of\n"
    "# sigma = 0.1 mV from Python's random.Random(18), 6 significant digits; bad samples: %s.\n"
    "# Made by firmware-example/inputs/make-ecg-stream.py.\n"
    % (start, start + n, held_out, ", ".join("%s at %d" % (v, i) for i, v in bad.items()))
)
with open(f"{dst}/ecg-stream-noisy.csv", "w") as f:
    f.write(header)
    f.write("\n".join(noisy) + "\n")
with open(f"{dst}/ecg-stream-clean.csv", "w") as f:
    f.write("# The clean samples behind ecg-stream-noisy.csv (same provenance), for `--clean`.\n")
    f.write("\n".join("%.6g" % v for v in clean) + "\n")
