#!/usr/bin/env bash
# Flash and RAM of each firmware mode on the Cortex-M4F (QEMU mps2-an386), the table of
# README.md ("Flash and RAM of each mode") and docs/BENCHMARKS.md: for each run below, builds the
# firmware with its defaults (plus the run's settings), runs it with ./run-qemu.sh --icount and
# prints flash (text + data: `arm-none-eabi-size`), static RAM (data + bss), the stack it
# measured and the instructions it counted.
#
#   ./mode-sizes.sh                   the default runs
#   ./mode-sizes.sh "stream path/to/model.tsm TINYSCORE_RATE=0" ...   these runs instead
#   TINYSCORE_MACHINE=m4f-256k-64k CARGO_PROFILE_RELEASE_OPT_LEVEL=z \
#     TINYSCORE_CARGO_ARGS="--features terse-panic" ./mode-sizes.sh
#                                     the same in the 256 KiB-flash build (README.md, "The 256
#                                     KiB / 64 KiB profile"); a run whose image the
#                                     linker refuses (over 256 KiB of flash or 64 KiB of static
#                                     RAM) or that fails in QEMU prints "does not fit"
#
# Needs arm-none-eabi-size (binutils-arm-none-eabi) besides what run-qemu.sh needs.
set -euo pipefail
cd "$(dirname "$0")"
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_BUILD_TARGET CARGO_TARGET_DIR
elf=target/thumbv7em-none-eabihf/release/tinyscore-firmware-example
err=$(mktemp)
trap 'rm -f "$err"' EXIT
runs=(
  "sample  models/moons-f32.tsm"
  "sample  models/moons-w8a8.tsm  TINYSCORE_BATCH=1"
  "sample  models/moons-w8a8.tsm  TINYSCORE_BATCH=8"
  "sample  models/ecg-w8a8.tsm    TINYSCORE_BATCH=8 TINYSCORE_STEPS=20 TINYSCORE_N=8"
  "denoise models/ecg-w8a8.tsm"
  "denoise models/ecg-conv-f32.tsm"
  "stream  models/ecg-w8a8.tsm    TINYSCORE_RATE=0"
  "stream  models/ecg-conv-f32.tsm TINYSCORE_RATE=0"
  "stream  models/ecg-conv-w8a8.tsm TINYSCORE_RATE=0"
  "impute  models/ecg-w8a8.tsm    TINYSCORE_STEPS=20 TINYSCORE_DRAWS=1"
  "impute  models/ecg-conv-f32.tsm TINYSCORE_STEPS=20 TINYSCORE_DRAWS=1"
)
[[ $# -gt 0 ]] && runs=("$@")
printf '| mode | model | settings | flash B | static RAM B | stack B | instructions |\n'
printf '| --- | --- | --- | ---: | ---: | ---: | ---: |\n'
for run in "${runs[@]}"; do
  read -r mode model settings <<<"$run"
  read -r -a kv <<<"${settings:-}"
  if ! out=$(env TINYSCORE_MODE="$mode" TINYSCORE_MODEL="$model" "${kv[@]}" ./run-qemu.sh --icount \
      </dev/null 2>"$err"); then
    # The linker's "region `FLASH' overflowed" (or RAM): a row of its own; any other failure stops.
    grep -q "overflowed" "$err" || { cat "$err" >&2; exit 1; }
    printf '| %s | %s | %s | does not fit | | | |\n' "$mode" "$(basename "$model")" "${settings:--}"
    continue
  fi
  read -r text data bss _ < <(arm-none-eabi-size "$elf" | tail -n 1)
  stack=$(sed -n 's/^# stack_bytes=//p' <<<"$out")
  instructions=$(sed -n 's/^# instructions=\([0-9]*\).*/\1/p' <<<"$out")
  printf '| %s | %s | %s | %d | %d | %s | %s |\n' "$mode" "$(basename "$model")" "${settings:--}" \
    $((text + data)) $((data + bss)) "$stack" "$instructions"
done
