#!/usr/bin/env bash
# Builds the firmware (QEMU profile) and runs it on the QEMU machine of its target, the way CI does.
#
#   ./run-qemu.sh                      Cortex-M4F on mps2-an386 (the default target)
#   ./run-qemu.sh --target TRIPLE      another target, on its machine (table below)
#   ./run-qemu.sh --icount             run with -icount shift=0: deterministic counts, and the
#                                      instruction count printed at the end
#
#   TINYSCORE_MODEL=path/to/model.tsm TINYSCORE_STEPS=50 TINYSCORE_N=4 TINYSCORE_SEED=7 ./run-qemu.sh
#   TINYSCORE_MODE=stream TINYSCORE_RATE=0 ./run-qemu.sh --icount   stream mode, unpaced, counted
#
# | target                       | core                | QEMU                                     | ns per `# cycles=` tick |
# | thumbv7em-none-eabihf        | Cortex-M4F          | qemu-system-arm -machine mps2-an386      | 40 (SysTick, 25 MHz)    |
# | thumbv6m-none-eabi           | Cortex-M0/M0+ code  | qemu-system-arm -machine mps2-an385 (M3) | 40 (SysTick, 25 MHz)    |
# |   + TINYSCORE_MACHINE=microbit | Cortex-M0 (nRF51) | qemu-system-arm -machine microbit        | 62.5 (SysTick, 16 MHz)  |
# | thumbv8m.main-none-eabihf    | Cortex-M33          | qemu-system-arm -machine mps2-an505      | 50 (SysTick, 20 MHz)    |
# | riscv32imac-unknown-none-elf | RV32IMAC            | qemu-system-riscv32 -machine virt        | 1 (mcycle)              |
# TINYSCORE_MACHINE=microbit with thumbv6m-none-eabi: QEMU's real Cortex-M0 board (16 KiB of RAM,
# the smallest models only). (boards/*/memory.x say why each machine.) Under -icount shift=0 one
# instruction is one virtual nanosecond, so instructions = ns per tick × cycles.
#
# QEMU gets a wall-clock limit (TIMEOUT, default 120 s), so a firmware that neither finishes nor
# fails can never hang a script; the exit status is QEMU's (0 success, 1 panic/fault, 124 timeout).
set -euo pipefail
cd "$(dirname "$0")"

icount=()
target=thumbv7em-none-eabihf
while [[ $# -gt 0 ]]; do
  case "$1" in
    --icount) icount=(-icount shift=0); shift ;;
    --target) target="$2"; shift 2 ;;
    *) echo "run-qemu.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

case "$target" in
  thumbv7em-none-eabihf) qemu=(qemu-system-arm -cpu cortex-m4 -machine mps2-an386); ns_per_tick=40 ;;
  thumbv6m-none-eabi)
    if [[ "${TINYSCORE_MACHINE:-}" == microbit ]]; then
      # SysTick at the nRF51's 16 MHz: 62.5 ns a tick (checked against the AN385's count of the same code)
      qemu=(qemu-system-arm -machine microbit); ns_per_tick=125/2
    else
      qemu=(qemu-system-arm -cpu cortex-m3 -machine mps2-an385); ns_per_tick=40
    fi ;;
  thumbv8m.main-none-eabihf) qemu=(qemu-system-arm -cpu cortex-m33 -machine mps2-an505); ns_per_tick=50 ;;
  riscv32imac-unknown-none-elf) qemu=(qemu-system-riscv32 -machine virt -bios none); ns_per_tick=1 ;;
  *) echo "run-qemu.sh: no QEMU machine for target $target" >&2; exit 2 ;;
esac

# TINYSCORE_CARGO_ARGS: extra cargo arguments, e.g. "--no-default-features --features qemu" (a
# ScoreNet v1 model on a small part: the engine without its conv layers). TINYSCORE_FEATURES=F
# (one word, for the KEY=VALUE lines of qemu-runs.txt) is the same as "--no-default-features
# --features F".
features=()
[[ -n "${TINYSCORE_FEATURES:-}" ]] && features=(--no-default-features --features "$TINYSCORE_FEATURES")
# shellcheck disable=SC2086
cargo build --release --quiet --target "$target" "${features[@]}" ${TINYSCORE_CARGO_ARGS:-}
elf=target/$target/release/tinyscore-firmware-example

status=0
out=$(timeout "${TIMEOUT:-120}" "${qemu[@]}" -nographic \
  -semihosting-config enable=on,target=native "${icount[@]}" -kernel "$elf") || status=$?
printf '%s\n' "$out"
if [[ ${#icount[@]} -gt 0 && $status -eq 0 ]]; then
  cycles=$(printf '%s\n' "$out" | sed -n 's/^# cycles=//p')
  echo "# instructions=$((cycles * ns_per_tick)) (-icount shift=0)"  # ns_per_tick may be a fraction
  # stream mode: the worst single push as well
  push=$(printf '%s\n' "$out" | sed -n 's/^# push_cycles_max=//p')
  if [[ -n "$push" ]]; then
    echo "# push_instructions_max=$((push * ns_per_tick)) (-icount shift=0)"
  fi
fi
exit "$status"
