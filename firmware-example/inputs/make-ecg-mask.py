"""Makes ecg-gap-mask.csv, the firmware's impute-mode mask for ecg-clean.csv's 4 windows of 64.

    python3 firmware-example/inputs/make-ecg-mask.py firmware-example/inputs

1 where a value is known, 0 where it is missing: window i misses the 16 samples from 8 + 12·i
(a gap of 44 ms at 360 Hz, a different place in each window).
"""
import sys

dst = sys.argv[1]
with open(f"{dst}/ecg-gap-mask.csv", "w") as f:
    f.write(
        "# Impute mask for ecg-clean.csv (1 known, 0 missing): window i misses samples 8+12i..24+12i.\n"
        "# Made by firmware-example/inputs/make-ecg-mask.py.\n"
    )
    for i in range(4):
        gap = range(8 + 12 * i, 24 + 12 * i)
        f.write(",".join("0" if j in gap else "1" for j in range(64)) + "\n")
