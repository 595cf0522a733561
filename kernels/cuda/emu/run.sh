#!/usr/bin/env bash
# Checks kernels/cuda/conv.cu on the CPU (no GPU needed): see conv_check.cpp.
set -euo pipefail
cd "$(dirname "$0")"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
sed 's/#include "common.cuh"/#include "shim.h"/' ../conv.cu > "$out/conv_emu.cu.h"
awk '/^extern "C" __global__ void col_sum/,/^}/' ../gemm.cu > "$out/colsum.h"
g++ -std=c++20 -O2 -pthread -Wall -Wno-unknown-pragmas -I"$out" -I. conv_check.cpp -o "$out/conv_check"
"$out/conv_check"
