#!/usr/bin/env bash
# The quantization table of docs/quantization.md and docs/BENCHMARKS.md ("Quantization"):
# for each data set, convert its checkpoint in every mode (and w8a8 with --groups 2/4/8), sample
# with DDPM 200 and DDIM 50 (seed 7), and evaluate against held-out data.
#
#   scripts/quant-table.sh DIR [DATA...]     (DIR holds DATA.safetensors; default: moons swissroll digits)
#
# Train the checkpoints first, e.g. `tinyscore train --data moons --steps 8000 --out DIR/moons.safetensors`.
# One line per (data, mode) is appended to DIR/results.txt.
set -euo pipefail
T=${TINYSCORE:-$(cd "$(dirname "$0")/.." && pwd)/target/release/tinyscore}
dir=$1
shift
cd "$dir"
sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=(moons swissroll digits)
for d in "${sets[@]}"; do
  if [ "$d" = digits ]; then n=360; else n=2000; fi
  for m in f32 f16 w8 w8a8 w8a8g2 w8a8g4 w8a8g8; do
    case $m in
      w8a8g*) "$T" convert "$d.safetensors" --quant w8a8 --groups "${m#w8a8g}" --out "$d-$m.tsm" > "conv-$d-$m.txt" 2> "conv-$d-$m.err" ;;
      *) "$T" convert "$d.safetensors" --quant "$m" --out "$d-$m.tsm" > "conv-$d-$m.txt" 2> "conv-$d-$m.err" ;;
    esac
    for sm in ddpm:200 ddim:50; do
      s=${sm%:*}
      k=${sm#*:}
      "$T" sample "$d-$m.tsm" --sampler "$s" --steps "$k" --n "$n" --seed 7 --out "$d-$m-$s.csv" 2> "sample-$d-$m-$s.err"
      "$T" eval --samples "$d-$m-$s.csv" --data "$d" > "eval-$d-$m-$s.txt"
    done
    echo "$d $m $(stat -c %s "$d-$m.tsm") | $(grep 'score SNR vs' "conv-$d-$m.txt" | cut -d'(' -f1) | ddpm $(cat "eval-$d-$m-ddpm.txt") | ddim $(cat "eval-$d-$m-ddim.txt")" >> results.txt
  done
done
