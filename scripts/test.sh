#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs (the thumbv7em target, QEMU),
# then formatting, lints, docs, the no_std engine's Cortex-M4F build, the firmware, and every test
# (the firmware's bit-exact run in QEMU among them).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "installing what the tests need"
if command -v rustup >/dev/null 2>&1; then
  rustup target list --installed | grep -qx thumbv7em-none-eabihf || rustup target add thumbv7em-none-eabihf
  rustup component list --installed | grep -q '^clippy' || rustup component add clippy rustfmt
fi
# --no-install-recommends: only what the tests run (and fewer downloads); with the recommends, apt
# cannot resolve Debian 12's QEMU beside a newer qemu-utils from backports ("generated breaks").
if ! command -v qemu-system-arm >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-arm >/dev/null
fi
qemu-system-arm --version | head -n 1
# --- issue 19 (more targets): the Cortex-M0, Cortex-M33 and RISC-V Rust targets, QEMU's RISC-V
# machines (qemu-system-misc) for the firmware on them, arm-none-eabi-gcc for the C example, and
# the aarch64 Linux target, its cross linker and qemu-aarch64 for the engine's tests.
if command -v rustup >/dev/null 2>&1; then
  for t in thumbv6m-none-eabi thumbv8m.main-none-eabihf riscv32imac-unknown-none-elf aarch64-unknown-linux-gnu; do
    rustup target list --installed | grep -qx "$t" || rustup target add "$t"
  done
fi
if ! command -v qemu-system-riscv32 >/dev/null 2>&1 || ! command -v arm-none-eabi-gcc >/dev/null 2>&1 \
    || ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || ! command -v qemu-aarch64 >/dev/null 2>&1 \
    || [ ! -e /usr/aarch64-linux-gnu/lib/Scrt1.o ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
  # qemu-system-misc: qemu-system-riscv32; gcc-arm-none-eabi: the C API's firmware example;
  # gcc-aarch64-linux-gnu + libc6-dev-arm64-cross (its C runtime and libc, only recommended by the
  # compiler, so not installed with it here) + qemu-user: the engine's tests on aarch64 Linux
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    qemu-system-misc gcc-arm-none-eabi gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user >/dev/null
fi
# --- end issue 19

step "format"
cargo fmt --all -- --check
(cd firmware-example && cargo fmt -- --check)
(cd fuzz && cargo fmt -- --check)

step "lints"
cargo clippy --workspace --all-targets -- -D warnings

step "engine for Cortex-M4F (no_std, thumbv7em-none-eabihf)"
cargo build -p tinyscore-engine --target thumbv7em-none-eabihf --release

step "firmware (QEMU profile and board profile)"
(cd firmware-example && cargo clippy --release -- -D warnings && cargo build --release \
  && cargo clippy --release --features terse-panic -- -D warnings)
(cd firmware-example && cargo build --release --no-default-features --features board)

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

step "NVRTC, to compile-check the CUDA kernels (no GPU needed; GPU tests skip without one)"
NVRTC_LIB="$PWD/target/nvrtc/nvidia/cu13/lib"
if [ ! -e "$NVRTC_LIB/libnvrtc.so.13" ]; then
  python3 -m pip install -q --disable-pip-version-check --target "$PWD/target/nvrtc" "nvidia-cuda-nvrtc>=13,<14" >/dev/null 2>&1 \
    || echo "skipped: nvidia-cuda-nvrtc could not be fetched from PyPI; the CUDA sources will not be compile-checked"
fi
if [ -e "$NVRTC_LIB/libnvrtc.so.13" ]; then
  export LD_LIBRARY_PATH="$NVRTC_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "NVRTC: $NVRTC_LIB"
fi

step "tests"
# Tests that need what this machine may lack (a GPU, NVRTC, PyTorch, QEMU) pass as "ok" and say
# "skipped: <why>" in their output. libtest shows that output only with --show-output; this filter
# drops the rest of it, prints each "skipped:" line under its test's name, and collects them for
# the summary below, so the count of what really ran is honest.
skips=$(mktemp)
# show_skips [PREFIX]: that filter on `cargo test ... -- --show-output`'s output (PREFIX before each name).
show_skips() {
  awk -v skipfile="$skips" -v prefix="${1:-}" '
    /^successes:$/ { quiet = 1; next }
    /^failures:$/ || /^test result:/ { quiet = 0 }
    quiet && /^---- .* stdout ----$/ { name = prefix $2; next }
    quiet && /^skipped: / { sub(/^skipped: /, ""); line = "skipped: " name ": " $0; print "    " line; print line >> skipfile; next }
    quiet { next }
    { print }
  '
}
cargo test --workspace -- --show-output 2>&1 | show_skips

# --- issue 19 (more targets): the firmware's sample and denoise runs of
# firmware-example/qemu-runs.txt on the Cortex-M0 (ARMv6-M code on mps2-an385), the Cortex-M33
# (mps2-an505) and RISC-V rv32imac (virt), each compared byte for byte with the host's output.
step "firmware on more targets in QEMU: Cortex-M0, Cortex-M33, RISC-V (the host's bits)"
issue19_out=$(mktemp)  # each script's output, for its "skipped:" lines
# The host binary `cargo test` built above (the scripts would otherwise build it in the dev profile).
[ -x target/debug/tinyscore ] && export TINYSCORE="$PWD/target/debug/tinyscore"
(cd firmware-example && cargo clippy --quiet --release --target thumbv6m-none-eabi -- -D warnings \
  && cargo clippy --quiet --release --target thumbv8m.main-none-eabihf -- -D warnings \
  && cargo clippy --quiet --release --target riscv32imac-unknown-none-elf -- -D warnings)
firmware-example/test-targets.sh | tee "$issue19_out"
sed -n 's/^skipped: /skipped: test-targets.sh: /p' "$issue19_out" >>"$skips"
step "C API: the C example (arm-none-eabi-gcc + libtinyscore_capi.a) on the Cortex-M4F in QEMU equals the host and the Rust firmware; every status from C (gcc, host)"
cargo clippy --quiet -p tinyscore-capi --target thumbv7em-none-eabihf -- -D warnings
firmware-example/c/test-c.sh | tee "$issue19_out"
sed -n 's/^skipped: /skipped: test-c.sh: /p' "$issue19_out" >>"$skips"
capi/test-c-host.sh | tee "$issue19_out"
sed -n 's/^skipped: /skipped: test-c-host.sh: /p' "$issue19_out" >>"$skips"
step "aarch64 Linux (cross gcc linker, tests under qemu-aarch64): the engine's golden hashes of x86-64, the CLI's and trainer's tests"
# The engine's unit tests and tests/vector.rs (the golden hashes of the noise, a forward pass and
# whole sampling runs); tests/exact_score.rs (statistical, no bits; ~4 min under QEMU) runs natively
# above. Then the tinyscore CLI's tests (its unit tests and every tools/tests file but firmware.rs,
# which builds and runs the Cortex-M4F firmware: its bits are checked natively above, and
# firmware_float.rs, the firmware's f32 printer against format!("{}"), millions of values that
# no host's kernels touch: natively only) and the
# trainer's unit tests and tests/checkpoint.rs (bit-exact save, load and resume), with the CLI they
# start behind qemu-aarch64 too (TINYSCORE_TEST_RUNNER, tools/tests/common/mod.rs: an emulated
# process cannot exec an aarch64 binary without binfmt_misc); host-train/tests/train_smoke.rs
# (statistical, no bits; ~4 min under QEMU) and the C API's tests (they pass under QEMU in 0.6 s,
# but their cross-build costs ~2 CPU minutes) run natively only. docs/targets.md has the timings.
if command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 && command -v qemu-aarch64 >/dev/null 2>&1 \
    && rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
  a64_started=$(date +%s)
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
  a64_run="qemu-aarch64 -L /usr/aarch64-linux-gnu"
  a64_test() { CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$a64_run" TINYSCORE_TEST_RUNNER="$a64_run" \
    cargo test -q --release --target aarch64-unknown-linux-gnu "$@" -- --show-output 2>&1 | show_skips "aarch64: "; }
  a64_test -p tinyscore-engine --lib --test vector
  tools_tests=()
  for f in tools/tests/*.rs; do
    t=$(basename "$f" .rs); [ "$t" = firmware ] || [ "$t" = firmware_float ] || tools_tests+=(--test "$t")
  done
  a64_test -p tinyscore-tools --lib --bins "${tools_tests[@]}"
  a64_test -p tinyscore-train --lib --test checkpoint
  # The tinyscore binary for aarch64 (NEON f32 and int8 kernels): sampling gives the host's bytes.
  cargo build -q --release -p tinyscore-tools --target aarch64-unknown-linux-gnu
  a64="$a64_run target/aarch64-unknown-linux-gnu/release/tinyscore"
  for m in moons-f32 moons-w8a8 ecg-f32 ecg-w8a8 ecg-conv-f32 ecg-conv-w8a8; do
    for s in ddpm dpmpp-2m; do
      args="sample firmware-example/models/$m.tsm --n 3 --steps 12 --sampler $s --seed 7 --out -"
      want=$(target/debug/tinyscore $args) && got=$($a64 $args) && [ -n "$want" ] && [ "$want" = "$got" ] \
        || { echo "aarch64 tinyscore: $args differs from x86-64 (or failed)"; exit 1; }
    done
  done
  echo "aarch64 tinyscore: 12 sampling runs (6 models x 2 samplers) byte-identical to x86-64"
  echo "aarch64 step: $(( $(date +%s) - a64_started )) s"
else
  echo "skipped: aarch64: needs aarch64-linux-gnu-gcc, qemu-aarch64 and the Rust target" | tee -a "$skips"
fi
rm -f "$issue19_out"
# --- end issue 19

# --- python package (issue 22): a labelled block owned by python/ ---------------------------------
step "python package (python/: maturin wheel, pytest; the tinyscore.torch tests need PyTorch)"
# A virtual environment kept outside the work tree, so that PyTorch (about 5 GB from PyPI with its
# CUDA libraries, 6-7 minutes to install here) is installed once per machine;
# TINYSCORE_PYENV moves it, TINYSCORE_PYTHON_TORCH=0 leaves PyTorch out (its tests then say skipped,
# even where the cached environment has it).
PYENV="${TINYSCORE_PYENV:-${XDG_CACHE_HOME:-$HOME/.cache}/tinyscore/pyenv}"
[ -x "$PYENV/bin/python" ] || python3 -m venv "$PYENV"
"$PYENV/bin/pip" install -q --disable-pip-version-check maturin numpy pytest
if [ "${TINYSCORE_PYTHON_TORCH:-1}" != 0 ] && ! "$PYENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  "$PYENV/bin/pip" install -q --disable-pip-version-check torch >/dev/null 2>&1 \
    || echo "skipped: PyTorch could not be installed from PyPI; the tinyscore.torch tests will say skipped"
fi
# The dev profile shares the dependencies' artifacts with the `cargo test --workspace` above (its
# `profile.dev.package."*"` is the test profile's opt-level): the workspace crates, PyO3 and the
# extension compile here (`--profile test` would build the library as a test harness). The CLI
# the tests compare against is that run's binary; the bits do not depend on the opt-level.
rm -rf target/python-wheels
"$PYENV/bin/maturin" build --profile dev -m python/Cargo.toml -o target/python-wheels
"$PYENV/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps target/python-wheels/tinyscore-*.whl
# Each skipped pytest test (or module skipped whole) appends "skipped: python/<test id>: <reason>"
# to $skips (python/tests/conftest.py), for the summary below.
(cd python && TINYSCORE_SKIPS="$skips" TINYSCORE_CLI="$PWD/../target/debug/tinyscore" "$PYENV/bin/pytest" -q -rs tests)
# --- end of the python package block ----------------------------------------------------------------

# Every step's skips: cargo's tests (counted as ok there), the QEMU and C scripts', pytest's.
step "skipped tests (counted as ok or skipped above, their check did not run)"
if [ -s "$skips" ]; then
  echo "$(awk '{ print $2 }' "$skips" | sort -u | wc -l) skipped:"
  sort -u "$skips" | sed 's/^/  /'
else
  echo "0 skipped: every test ran its check"
fi
rm -f "$skips"

step "fuzz smoke run (cargo-fuzz on nightly: 3 targets × 20 s; the long campaign is in docs/BENCHMARKS.md)"
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "skipped: no nightly toolchain (cargo +nightly is unavailable; cargo-fuzz needs it)"
else
  command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
  # No sanitizer: the engine is #![forbid(unsafe_code)], so an out-of-bounds access is a bounds-check
  # panic, which libFuzzer reports as a crash; overflow checks are on (cargo fuzz's debug assertions).
  # The harness's own tests: every seed loads and runs, the graph mutations reach the graph's checks.
  (cd fuzz && cargo +nightly test -q --lib)
  (cd fuzz && cargo +nightly fuzz build -s none)
  for target in parse load_and_run structured; do
    mkdir -p fuzz/corpus/$target
    seeds=""; [ "$target" != structured ] && seeds=seeds
    log=$(mktemp)
    if ! (cd fuzz && cargo +nightly fuzz run -s none "$target" "corpus/$target" $seeds -- \
        -max_total_time=20 -timeout=10 -rss_limit_mb=1024 -print_final_stats=1) >"$log" 2>&1; then
      tail -n 40 "$log"; echo "fuzz target $target failed (crash input under fuzz/artifacts/$target)"; exit 1
    fi
    echo "$target: $(grep -h '^stat::number_of_executed_units' "$log") $(grep -h '^Done' "$log")"
    rm -f "$log"
  done
fi
