// Tiled single-precision GEMM with fused epilogues: the forward and both backward products of
// every linear layer. Twin: `fused::gemm` and the layer functions of `kernels/src/fused.rs`.
//
//   C(m, n) = Σ_k A(m, k)·B(n, k)       A(m, k) = A[m·a_sm + k·a_sk],  B(n, k) = B[n·b_sn + k·b_sk]
//
// Strides make one kernel serve the three products of a layer y = x·Wᵀ + b:
//   forward       y  = x·Wᵀ     A = x (rows, in),  B = W (out, in)       k = in
//   data grad     dx = dy·W     A = dy (rows, out), B = Wᵀ               k = out
//   weight grad   dW = dyᵀ·x    A = dyᵀ, B = xᵀ                          k = rows (split-K)
//
// Tiles of 64×64 outputs, 16 deep; 256 threads, each owning a 4×4 strided micro-tile, so that
// shared-memory reads are conflict-free and global loads coalesce along whichever index is
// contiguous. Each output is summed by one thread in a fixed k order (and, split-K, the slices
// are added in slice order by `sum_splits`): deterministic, no atomics.
//
// Epilogue, in this order (a null pointer skips a stage; all matrices (M, N) with row stride ldc):
//   v = acc (+ bias[n]) (+ add[m, n])
//   if pre:  v = v·silu'(pre[m, n]) from the kept σ pre_sig[m, n]       (backward through SiLU)
//   C = v, or C += v when accumulate
//   if act:  act[m, n] = silu(v), sig[m, n] = σ(v)                        (forward into SiLU)
// With split-K (gridDim.z > 1) slice z writes its raw sum to C + z·split_stride and no epilogue.
#include "common.cuh"

#define BM 64
#define BN 64
#define BK 16
#define TM 4
#define TN 4

extern "C" __global__ void __launch_bounds__(256) gemm(int M, int N, int K, const float* __restrict__ A, i64 a_sm,
                                                       i64 a_sk, const float* __restrict__ B, i64 b_sn, i64 b_sk,
                                                       float* C, i64 ldc, i64 split_stride, int k_per_split,
                                                       const float* bias, const float* add, const float* pre,
                                                       const float* pre_sig, int accumulate, float* act,
                                                       float* sig) {
  __shared__ float As[BK][BM + 4];
  __shared__ float Bs[BK][BN + 4];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int k_begin = blockIdx.z * k_per_split;
  const int k_end = min(K, k_begin + k_per_split);

  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

  for (int k0 = k_begin; k0 < k_end; k0 += BK) {
    // Load the A and B tiles, 4 elements per thread each, along the contiguous index.
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int idx = threadIdx.x + 256 * q;
      int mm, kk;
      if (a_sk == 1) { mm = idx / BK; kk = idx % BK; } else { kk = idx / BM; mm = idx % BM; }
      const int gm = m0 + mm, gk = k0 + kk;
      As[kk][mm] = (gm < M && gk < k_end) ? A[(i64)gm * a_sm + (i64)gk * a_sk] : 0.0f;
      int nn;
      if (b_sk == 1) { nn = idx / BK; kk = idx % BK; } else { kk = idx / BN; nn = idx % BN; }
      const int gn = n0 + nn, gk2 = k0 + kk;
      Bs[kk][nn] = (gn < N && gk2 < k_end) ? B[(i64)gn * b_sn + (i64)gk2 * b_sk] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float a[TM], b[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) a[i] = As[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < TN; ++j) b[j] = Bs[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] += a[i] * b[j];
    }
    __syncthreads();
  }

  const bool split = gridDim.z > 1;
  float* out = C + (split ? (i64)blockIdx.z * split_stride : 0);
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int m = m0 + ty + 16 * i;
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int n = n0 + tx + 16 * j;
      if (n >= N) continue;
      const i64 at = (i64)m * ldc + n;
      float v = acc[i][j];
      if (split) { out[at] = v; continue; }
      if (bias) v = v + bias[n];
      if (add) v = v + add[at];
      if (pre) v = v * silu_grad_sig(pre[at], pre_sig[at]);
      if (accumulate) v = out[at] + v;
      out[at] = v;
      if (act) silu_sig(v, &act[at], &sig[at]);
    }
  }
}

// out[i] = Σ_z ws[z·stride + i] for z = 0..splits−1 in order (the split-K and column-sum slices).
extern "C" __global__ void sum_splits(const float* ws, int splits, i64 stride, i64 n, float* out) {
  const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float s = ws[i];
  for (int z = 1; z < splits; ++z) s = s + ws[(i64)z * stride + i];
  out[i] = s;
}

// Column sums of a (rows, cols) matrix over row slices: slice z (blockIdx.y) sums rows
// z·rows_per_split .. in order into ws[z·cols + c]; `sum_splits` adds the slices. (db = Σ_rows dy.)
extern "C" __global__ void col_sum(const float* x, int rows, int cols, int rows_per_split, float* ws) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  const int r0 = blockIdx.y * rows_per_split;
  const int r1 = min(rows, r0 + rows_per_split);
  float s = 0.0f;
  for (int r = r0; r < r1; ++r) s = s + x[(i64)r * cols + c];
  ws[(i64)blockIdx.y * cols + c] = s;
}

// y = x (overwrite) or y += x, element-wise.
extern "C" __global__ void add_into(float* y, const float* x, i64 n, int overwrite) {
  const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  y[i] = overwrite ? x[i] : y[i] + x[i];
}
