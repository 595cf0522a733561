#!/usr/bin/env bash
# The firmware on every QEMU target prints the host's bits (DESIGN.md §4): for each target and
# each run of qemu-runs.txt, builds the firmware with the run's settings, runs it with
# ./run-qemu.sh --icount, and checks
#   - QEMU exits 0;
#   - the CSV lines equal, byte for byte, what the host's `tinyscore sample|denoise ... --out -`
#     (`denoise --stream` for stream mode, `denoise --mask` for impute mode) prints for the same file and settings (and `# sigma=`
#     the σ the host reports);
#   - the stack high-water mark lies within [RAM, RAM + 8 KiB], RAM being `tinyscore inspect`'s
#     figure (as tools/tests/firmware.rs holds the Cortex-M4F);
# on the Cortex-M33 (built with +dsp), that examples/kernels.rs finds its DSP int8 kernels equal
# to the portable ones; and, on RISC-V (whose start-up and trap code are the firmware's own), that
# a panicking firmware makes QEMU exit with status 1. Prints one line per run with its instruction count.
#
#   ./test-targets.sh                               every target below
#   ./test-targets.sh thumbv6m-none-eabi            some of them
#   TINYSCORE=path/to/tinyscore ./test-targets.sh   the host binary (default: cargo build's debug one)
#
# A target whose Rust standard library or QEMU is missing is reported as "skipped: <why>".
set -euo pipefail
cd "$(dirname "$0")"

all_targets=(thumbv6m-none-eabi thumbv8m.main-none-eabihf riscv32imac-unknown-none-elf)
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=("${all_targets[@]}")

if [[ -z "${TINYSCORE:-}" ]]; then
  (cd .. && cargo build --quiet -p tinyscore-tools --bin tinyscore)
  TINYSCORE=../target/debug/tinyscore
fi
# The firmware's own build must not inherit a host build's flags or target directory.
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_BUILD_TARGET CARGO_TARGET_DIR

fail() { echo "FAIL: $*" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The `ram N bytes` figure of `tinyscore inspect`.
ram_of() { "$TINYSCORE" inspect "$1" | sed -n 's/^ram  *\([0-9][0-9]*\) bytes.*/\1/p'; }

# The value of setting $1 among the run's settings ($2...), or $default.
get() {
  local key=$1 default=$2; shift 2
  local kv
  for kv in "$@"; do [[ "${kv%%=*}" == "$key" ]] && { echo "${kv#*=}"; return; }; done
  echo "$default"
}

for target in "${targets[@]}"; do
  case "$target" in
    riscv32*) qemu=qemu-system-riscv32 ;;
    *) qemu=qemu-system-arm ;;
  esac
  if ! command -v "$qemu" >/dev/null 2>&1; then
    echo "skipped: $target: $qemu is not installed (apt-get install qemu-system-arm qemu-system-misc)"
    continue
  fi
  if ! rustc --print target-libdir --target "$target" >/dev/null 2>&1 \
      || ! ls "$(rustc --print target-libdir --target "$target")"/libcore-* >/dev/null 2>&1; then
    echo "skipped: $target: the Rust target is not installed (rustup target add $target)"
    continue
  fi

  # The list is read on descriptor 3: QEMU (-nographic) and cargo get /dev/null as stdin.
  while read -r -u 3 mode model settings; do
    [[ -z "$mode" || "$mode" == \#* ]] && continue
    read -r -a kv <<<"$settings"
    name=$(basename "$model")
    machine=$(get TINYSCORE_MACHINE "" "${kv[@]}")
    # A line for a particular machine runs on that machine's target only (microbit: the M0).
    [[ -n "$machine" && "$target" != thumbv6m-none-eabi ]] && continue
    where=$target${machine:+ on $machine}
    case "$mode" in
      sample)
        sampler=$(get TINYSCORE_SAMPLER ddpm "${kv[@]}"); steps=$(get TINYSCORE_STEPS 100 "${kv[@]}")
        n=$(get TINYSCORE_N 8 "${kv[@]}"); seed=$(get TINYSCORE_SEED 42 "${kv[@]}")
        "$TINYSCORE" sample "$model" --sampler "$sampler" --steps "$steps" --n "$n" --seed "$seed" \
          --out - >"$work/host.csv" 2>"$work/host.err" || fail "$target $name: tinyscore sample: $(cat "$work/host.err")"
        evals=$((steps * n))
        ;;
      denoise)
        input=$(get TINYSCORE_INPUT inputs/ecg-noisy.csv "${kv[@]}"); method=$(get TINYSCORE_METHOD tweedie "${kv[@]}")
        sigma=$(get TINYSCORE_SIGMA auto "${kv[@]}"); seed=$(get TINYSCORE_SEED 0 "${kv[@]}")
        args=(--input "$input" --method "$method" --sigma "$sigma")
        # Tweedie is one deterministic evaluation: `denoise` refuses a --seed it would ignore.
        if [[ "$method" == sdedit ]]; then
          args+=(--seed "$seed" --steps "$(get TINYSCORE_STEPS 50 "${kv[@]}")" --draws "$(get TINYSCORE_DRAWS 4 "${kv[@]}")")
        fi
        "$TINYSCORE" denoise "$model" "${args[@]}" --out - >"$work/host.csv" 2>"$work/host.err" \
          || fail "$target $name: tinyscore denoise: $(cat "$work/host.err")"
        evals=""
        ;;
      impute)
        input=$(get TINYSCORE_INPUT inputs/ecg-clean.csv "${kv[@]}"); mask=$(get TINYSCORE_MASK inputs/ecg-gap-mask.csv "${kv[@]}")
        args=(--input "$input" --mask "$mask" --steps "$(get TINYSCORE_STEPS 50 "${kv[@]}")" --draws "$(get TINYSCORE_DRAWS 4 "${kv[@]}")")
        args+=(--resample "$(get TINYSCORE_RESAMPLE 1 "${kv[@]}")" --seed "$(get TINYSCORE_SEED 0 "${kv[@]}")")
        "$TINYSCORE" denoise "$model" "${args[@]}" --out - >"$work/host.csv" 2>"$work/host.err" \
          || fail "$target $name: tinyscore denoise --mask: $(cat "$work/host.err")"
        evals=""
        ;;
      stream)
        input=$(get TINYSCORE_INPUT inputs/ecg-stream-noisy.csv "${kv[@]}"); method=$(get TINYSCORE_METHOD tweedie "${kv[@]}")
        sigma=$(get TINYSCORE_SIGMA auto "${kv[@]}"); seed=$(get TINYSCORE_SEED 0 "${kv[@]}")
        args=(--stream --input "$input" --method "$method" --sigma "$sigma" --taper "$(get TINYSCORE_TAPER hann "${kv[@]}")")
        hop=$(get TINYSCORE_HOP "" "${kv[@]}")
        [[ -n "$hop" ]] && args+=(--hop "$hop")
        if [[ "$method" == sdedit ]]; then
          args+=(--seed "$seed" --steps "$(get TINYSCORE_STEPS 50 "${kv[@]}")" --draws "$(get TINYSCORE_DRAWS 4 "${kv[@]}")")
        fi
        "$TINYSCORE" denoise "$model" "${args[@]}" --out - >"$work/host.csv" 2>"$work/host.err" \
          || fail "$target $name: tinyscore denoise --stream: $(cat "$work/host.err")"
        evals=""
        ;;
      *) fail "qemu-runs.txt: unknown mode $mode" ;;
    esac

    start=$SECONDS
    status=0
    env TINYSCORE_MODE="$mode" TINYSCORE_MODEL="$model" "${kv[@]}" ./run-qemu.sh --icount --target "$target" \
      </dev/null >"$work/device.txt" 2>"$work/device.err" || status=$?
    [[ $status -eq 0 ]] || fail "$target $name $mode: QEMU exited $status: $(cat "$work/device.txt" "$work/device.err")"
    grep -v '^#' "$work/device.txt" >"$work/device.csv" || true
    [[ -s "$work/host.csv" ]] || fail "$target $name: the host printed nothing"
    if ! cmp -s "$work/host.csv" "$work/device.csv"; then
      diff "$work/host.csv" "$work/device.csv" | head -n 10 >&2
      fail "$target $name $mode: the firmware's lines differ from the host's"
    fi
    if [[ "$mode" == denoise || "$mode" == stream ]]; then
      device_sigma=$(sed -n 's/^# sigma=//p' "$work/device.txt")
      grep -q "sigma $device_sigma (" "$work/host.err" \
        || fail "$target $name: device sigma $device_sigma, host: $(cat "$work/host.err")"
    fi
    stack=$(sed -n 's/^# stack_bytes=//p' "$work/device.txt")
    ram=$(ram_of "$model")
    # Stream mode: the Stream<W> (inspect's `stream` line) is on the stack too.
    if [[ "$mode" == stream ]]; then
      ram=$((ram + $("$TINYSCORE" inspect "$model" | sed -n 's/^stream  *\([0-9][0-9]*\) bytes.*/\1/p')))
    fi
    # Sample mode in lockstep blocks of K (the header's batch=K): inspect's `lockstep` line too.
    k=$(sed -n '1s/.* batch=\([0-9]*\)$/\1/p' "$work/device.txt")
    if [[ "$mode" == sample && ${k:-1} -gt 1 ]]; then
      ram=$((ram + $("$TINYSCORE" inspect "$model" --batch "$k" | sed -n 's/^lockstep  *\([0-9][0-9]*\) bytes.*/\1/p')))
    fi
    [[ -n "$stack" && -n "$ram" ]] || fail "$target $name: no stack or RAM figure"
    ((ram <= stack && stack <= ram + 8192)) \
      || fail "$target $name $mode: stack $stack B outside inspect's RAM $ram B .. +8 KiB"
    instructions=$(sed -n 's/^# instructions=\([0-9]*\).*/\1/p' "$work/device.txt")
    per_eval=""
    [[ -n "$evals" ]] && per_eval=" ($((instructions / evals)) per step, $evals steps)"
    echo "ok: $where $mode $name: $(wc -l <"$work/host.csv") lines equal the host's, stack $stack B (RAM $ram B), $instructions instructions$per_eval, $((SECONDS - start)) s"
  done 3<qemu-runs.txt

  if [[ "$target" == thumbv8m.main-none-eabihf ]]; then
    # The Cortex-M33 build has the DSP extension (+dsp, .cargo/config.toml) and so the engine's
    # DSP int8 kernels: examples/kernels.rs holds them against the portable ones (one vector,
    # tiles of 2 and 4, the epilogue, the convolution), as tools/tests/firmware.rs does on the M4F. Its FPU part
    # has no kernel to test here (the VFP kernel is built for ARMv7E-M hard-float only) and
    # counts every case as a mismatch, so the status is not the check: the four DSP lines are.
    start=$SECONDS
    cargo build --quiet --release --example kernels --target "$target" 2>"$work/build.err" \
      || fail "$target: building examples/kernels: $(cat "$work/build.err")"
    timeout 300 qemu-system-arm -cpu cortex-m33 -machine mps2-an505 -nographic \
      -semihosting-config enable=on,target=native -kernel "target/$target/release/examples/kernels" \
      </dev/null >"$work/kernels.txt" 2>&1 || true
    for check in kernel tile epilogue conv; do
      line=$(grep "^# ${check}_cases=" "$work/kernels.txt") || fail "$target: examples/kernels printed no ${check} line"
      [[ "$line" =~ ${check}_cases=([0-9]+)\ (conv_direct=[0-9]+\ )?${check}_mismatches=0$ && ${BASH_REMATCH[1]} -gt 0 ]] \
        || fail "$target: the DSP kernel differs from the portable one: $line"
    done
    line=$(grep "^# conv_cases=" "$work/kernels.txt")
    [[ "$line" =~ conv_cases=([0-9]+)\ conv_direct=([0-9]+) && ${BASH_REMATCH[1]} == "${BASH_REMATCH[2]}" ]] \
      || fail "$target: the DSP convolution did not run every case: $line"
    echo "ok: $target: DSP int8 kernels equal the portable ones ($(grep -h '^# \(kernel\|tile\|epilogue\|conv\)_cases=' "$work/kernels.txt" | tr '\n' ' ')), $((SECONDS - start)) s"
  fi

  if [[ "$target" == riscv32* ]]; then
    # More steps than the model's N: the engine refuses them, the firmware panics, and the panic
    # handler must end QEMU through semihosting with status 1 (never hang, never exit 0).
    status=0
    env TINYSCORE_MODE=sample TINYSCORE_MODEL=models/moons-w8a8.tsm TINYSCORE_STEPS=1000000 TINYSCORE_N=1 \
      ./run-qemu.sh --target "$target" </dev/null >"$work/device.txt" 2>"$work/device.err" || status=$?
    [[ $status -eq 1 ]] || fail "$target: a panicking firmware exited $status, not 1"
    grep -q 'sample 0:' "$work/device.err" || fail "$target: no panic message: $(cat "$work/device.err")"
    echo "ok: $target: a panicking firmware exits QEMU with status 1"
  fi
done
