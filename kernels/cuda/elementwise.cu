// The element-wise and layout kernels of the layer-graph walk (`host-train/src/cuda.rs`) that no
// GEMM epilogue covers: a SiLU that is not fused into the layer before it (after a convolution,
// or a second reader), its backward from the kept σ, a zero fill (the first contribution to a
// gradient that a kernel can only accumulate into), a two-operand add, and the transposition
// between the network's channel-major edges and the channels-last activations. Twins:
//
//   silu_fwd_sig   y = silu(x), sig = σ(x)                      cpu::silu_fwd_sig
//   silu_bwd_sig   dx (+)= dy·σ·(1 + x·(1 − σ))                  cpu::silu_bwd_sig / cpu::silu_bwd_sig_acc
//   fill_zero      y = 0                                         <[f32]>::fill(0.0)
//   add2           y = a + b                                     elementwise::add
//   transpose_rows dst[r, j, i] = src[r, i, j], src (rows, A, B) elementwise::transpose_rows
//
// One thread per element, nothing summed across threads: the results are the twins' to the ulp of
// CUDA's expf (the SiLU) and exact otherwise; deterministic. Memory-bound; no version but the
// plain one was tried (each moves the minimum bytes once, coalesced; the transposition runs once
// per step on the input and output only).
//
// Check: `cargo test -p tinyscore-kernels --test cuda elementwise::` (GPU; "skipped: …" without
// one), `--test nvrtc` (compiles this file, no GPU needed), `bash kernels/cuda/emu/run.sh` (these
// kernels on the CPU through a small CUDA shim: the index arithmetic without a GPU).
#include "common.cuh"

// y = silu(x), sig = σ(x) (common.cuh's `silu_sig`, the GEMM epilogue's very operations).
extern "C" __global__ void silu_fwd_sig(const float* x, float* y, float* sig, i64 n) {
  const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  silu_sig(x[i], &y[i], &sig[i]);
}

// dx = dy·silu'(x) from the kept σ, or dx += that (accumulate).
extern "C" __global__ void silu_bwd_sig(const float* x, const float* sig, const float* dy, float* dx, i64 n,
                                        int accumulate) {
  const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float g = dy[i] * silu_grad_sig(x[i], sig[i]);
  dx[i] = accumulate ? dx[i] + g : g;
}

// y = 0.
extern "C" __global__ void fill_zero(float* y, i64 n) {
  const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  y[i] = 0.0f;
}

// y = a + b (y may be a or b).
extern "C" __global__ void add2(const float* a, const float* b, float* y, i64 n) {
  const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  y[i] = a[i] + b[i];
}

// dst (rows, B, A)[r, j, i] = src (rows, A, B)[r, i, j]. One thread per destination element, so
// the writes coalesce; channel-major (C, L) → channels-last (L, C) is A = C, B = L, and back A = L,
// B = C.
extern "C" __global__ void transpose_rows(const float* src, float* dst, i64 n, int a, int b) {
  const i64 k = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= n) return;
  const i64 per = (i64)a * b;
  const i64 r = k / per, rem = k - r * per;
  const int j = (int)(rem / a), i = (int)(rem - (i64)j * a);
  dst[k] = src[r * per + (i64)i * b + j];
}
