#!/usr/bin/env bash
# The C API from C on the host: builds the static library for the host, compiles
# tests/c/errors.c with gcc against include/tinyscore.h, and runs it on the moons model with the
# host's first sample line (`tinyscore sample ... --steps 10 --seed 2024 --n 1`) to match.
#   capi/test-c-host.sh            (TINYSCORE=path/to/tinyscore: the host binary)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v gcc >/dev/null 2>&1 || { echo "skipped: gcc is not installed"; exit 0; }
cargo build --quiet -p tinyscore-capi
if [[ -z "${TINYSCORE:-}" ]]; then
  cargo build --quiet -p tinyscore-tools --bin tinyscore
  TINYSCORE=target/debug/tinyscore
fi
model=firmware-example/models/moons-w8a8.tsm
expected=$("$TINYSCORE" sample "$model" --sampler ddpm --steps 10 --n 1 --seed 2024 --out -)
mkdir -p target/c-example
gcc -std=c11 -O1 -Wall -Wextra -Werror -I capi/include capi/tests/c/errors.c \
  target/debug/libtinyscore_capi.a -lpthread -ldl -lm -o target/c-example/errors
target/c-example/errors "$model" "$expected"
