#!/usr/bin/env bash
# Builds the firmware (QEMU profile) and runs it on QEMU's mps2-an386, the way CI does.
#
#   ./run-qemu.sh              build with the TINYSCORE_* variables in the environment, then run
#   ./run-qemu.sh --icount     run with -icount shift=0: deterministic SysTick counts, and the
#                              instruction count (40 × cycles) printed at the end
#
#   TINYSCORE_MODEL=path/to/model.tsm TINYSCORE_STEPS=50 TINYSCORE_N=4 TINYSCORE_SEED=7 ./run-qemu.sh
#
# QEMU gets a wall-clock limit (TIMEOUT, default 120 s), so a firmware that neither finishes nor
# fails can never hang a script; the exit status is QEMU's (0 success, 1 panic/fault, 124 timeout).
set -euo pipefail
cd "$(dirname "$0")"

icount=()
if [[ "${1:-}" == "--icount" ]]; then
  icount=(-icount shift=0)
  shift
fi

# TINYSCORE_CARGO_ARGS: extra cargo arguments, e.g. "--no-default-features --features qemu" (a
# ScoreNet v1 model on a small part: the engine without its conv layers).
# shellcheck disable=SC2086
cargo build --release --quiet ${TINYSCORE_CARGO_ARGS:-}
elf=target/thumbv7em-none-eabihf/release/tinyscore-firmware-example

status=0
out=$(timeout "${TIMEOUT:-120}" qemu-system-arm -cpu cortex-m4 -machine mps2-an386 -nographic \
  -semihosting-config enable=on,target=native "${icount[@]}" -kernel "$elf") || status=$?
printf '%s\n' "$out"
if [[ ${#icount[@]} -gt 0 && $status -eq 0 ]]; then
  cycles=$(printf '%s\n' "$out" | sed -n 's/^# cycles=//p')
  # -icount shift=0: one instruction = 1 ns of virtual time; SysTick runs at 25 MHz (40 ns).
  echo "# instructions=$((cycles * 40)) (-icount shift=0)"
fi
exit "$status"
