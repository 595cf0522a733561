#!/usr/bin/env bash
# The C example prints the host's bits and the Rust firmware's: for each model below, builds
# the C firmware (./build.sh) and the Rust firmware (../run-qemu.sh) with the same settings, runs
# both on QEMU's mps2-an386 (Cortex-M4F), and requires their sample lines to equal, byte for byte,
# `tinyscore sample MODEL --sampler ddpm --steps S --n N --seed K --out -` on the host.
#
#   ./test-c.sh                                   (TINYSCORE=path/to/tinyscore: the host binary)
#
# Prints "skipped: <why>" without arm-none-eabi-gcc, qemu-system-arm or the Rust target.
set -euo pipefail
cd "$(dirname "$0")"

# The models the C example is checked on (one line each: path from firmware-example/).
models=(
  models/moons-f32.tsm
  models/moons-w8a8.tsm
)
steps=10 n=2 seed=2024

for tool in arm-none-eabi-gcc qemu-system-arm; do
  command -v "$tool" >/dev/null 2>&1 || { echo "skipped: $tool is not installed (apt-get install gcc-arm-none-eabi qemu-system-arm)"; exit 0; }
done
if ! ls "$(rustc --print target-libdir --target thumbv7em-none-eabihf)"/libcore-* >/dev/null 2>&1; then
  echo "skipped: the Rust target thumbv7em-none-eabihf is not installed"; exit 0
fi
if [[ -z "${TINYSCORE:-}" ]]; then
  (cd ../.. && cargo build --quiet -p tinyscore-tools --bin tinyscore)
  TINYSCORE=$(cd ../.. && pwd)/target/debug/tinyscore
fi
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_BUILD_TARGET CARGO_TARGET_DIR
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

for model in "${models[@]}"; do
  name=$(basename "$model")
  "$TINYSCORE" sample "../$model" --sampler ddpm --steps "$steps" --n "$n" --seed "$seed" --out - >"$work/host.csv"
  [[ $(wc -l <"$work/host.csv") -eq $n ]] || fail "$name: the host printed $(wc -l <"$work/host.csv") lines"

  elf=$(MODEL="../$model" STEPS=$steps SEED=$seed N=$n ./build.sh)
  status=0
  timeout 120 qemu-system-arm -cpu cortex-m4 -machine mps2-an386 -nographic \
    -semihosting-config enable=on,target=native -kernel "$elf" </dev/null >"$work/c.txt" 2>"$work/c.err" || status=$?
  [[ $status -eq 0 ]] || fail "$name: the C firmware exited $status: $(cat "$work/c.txt" "$work/c.err")"
  head -n 1 "$work/c.txt" | grep -q "^# tinyscore C firmware: model=$name sampler=ddpm steps=$steps seed=$seed n=$n ram=" \
    || fail "$name: bad header: $(head -n 1 "$work/c.txt")"
  grep -v '^#' "$work/c.txt" >"$work/c.csv" || true
  cmp -s "$work/host.csv" "$work/c.csv" || { diff "$work/host.csv" "$work/c.csv" >&2; fail "$name: C firmware and host differ"; }

  status=0
  env TINYSCORE_MODEL="$model" TINYSCORE_STEPS=$steps TINYSCORE_N=$n TINYSCORE_SEED=$seed TINYSCORE_SAMPLER=ddpm \
    ../run-qemu.sh </dev/null >"$work/rust.txt" 2>"$work/rust.err" || status=$?
  [[ $status -eq 0 ]] || fail "$name: the Rust firmware exited $status: $(cat "$work/rust.err")"
  grep -v '^#' "$work/rust.txt" >"$work/rust.csv" || true
  cmp -s "$work/rust.csv" "$work/c.csv" || { diff "$work/rust.csv" "$work/c.csv" >&2; fail "$name: C and Rust firmware differ"; }
  echo "ok: C firmware $name: $n lines equal the host's and the Rust firmware's ($(head -n 1 "$work/c.txt" | sed 's/.* ram=/ram=/') bytes)"
done
