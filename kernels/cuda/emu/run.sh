#!/usr/bin/env bash
# Checks kernels/cuda/conv.cu and elementwise.cu on the CPU (no GPU needed): see conv_check.cpp
# and elementwise_check.cpp.
set -euo pipefail
cd "$(dirname "$0")"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
sed 's/#include "common.cuh"/#include "shim.h"/' ../elementwise.cu > "$out/elementwise_emu.cu.h"
{
  awk '/^__device__ __forceinline__ void silu_sig/,/^}/' ../common.cuh
  grep '^__device__ __forceinline__ float silu_grad_sig' ../common.cuh
} > "$out/silu.h"
g++ -std=c++20 -O2 -Wall -Wno-unknown-pragmas -I"$out" -I. elementwise_check.cpp -o "$out/elementwise_check"
"$out/elementwise_check"
sed 's/#include "common.cuh"/#include "shim.h"/' ../conv.cu > "$out/conv_emu.cu.h"
awk '/^extern "C" __global__ void col_sum/,/^}/' ../gemm.cu > "$out/colsum.h"
g++ -std=c++20 -O2 -pthread -Wall -Wno-unknown-pragmas -I"$out" -I. conv_check.cpp -o "$out/conv_check"
"$out/conv_check"
