// The layers of the 1-D convolutional score network: Conv1d forward, input gradient and weight
// gradient, 2× nearest upsampling and its backward, the per-example channel bias (time-embedding
// injection) and its backward. Twins: `conv::conv1d_fwd`, `conv::conv1d_tangent`,
// `conv::conv1d_bwd_input{,_acc}`, `conv::conv1d_bwd_params` / `conv1d_bwd_weight`,
// `conv::upsample2_*`, `conv::channel_bias_*` in `kernels/src/conv.rs`, whose module doc is the
// contract (layout, padding, lengths). In short, channels-last activations (rows, L, C), weight
// (C_out, C_in, K) row-major, K odd, p = dil·(K−1)/2, L_out = ⌈L_in/stride⌉:
//
//   y[r, l, co]    = b[co] + Σ_{ci, j} w[co, ci, j]·x[r, stride·l + j·dil − p, ci]     (0 outside)
//   dx[r, i, ci]   = Σ_{j, co} w[co, ci, j]·dy[r, (i + p − j·dil)/stride, co]          (where that is
//                                                                                      a whole l < L_out)
//   dw[co, ci, j]  = Σ_{r, l} dy[r, l, co]·x[r, stride·l + j·dil − p, ci]
//
// Why implicit GEMM (not im2col into gemm.cu's tiled GEMM): the three products are GEMMs whose
// operand is the im2col matrix of x (or of dy), (rows·L_out, C_in·K): K times the size of x.
// Materialising it costs a write and a read of K·|x| through DRAM per product and a workspace of
// that size (at the ECG model's rows·L = 2^20 positions, C = 64, K = 5: 1.3 GB per layer, per
// product); the implicit version gathers the same elements straight from x into the shared-memory
// tile, where the K-fold reuse hits L1/L2 instead. The price is an integer division or two per
// loaded element, small beside the 4×4 micro-tile's 16 FMAs per pair of loads. Nothing here was
// measured (no GPU at hand when it was written): the tile shape is gemm.cu's, so the two share
// their tuning, and a benchmark against im2col + `gemm` is owed (issue 23).
//
// The input gradient is a gather (a transposed convolution), not col2im's scatter: each dx element
// is owned by one thread, so no atomics and no zero-fill pass; for stride 2 about half the taps
// of each output are structurally zero and are loaded as zeros (up to 2× wasted FMAs, accepted
// for one kernel instead of one per parity).
//
// One kernel template, three products (64×64 outputs × 16-deep tiles, 256 threads, each owning a
// 4×4 strided micro-tile, as gemm.cu):
//
//   mode        C (M, N)                         reduction index kk (its order is the sum order)
//   FWD         y (rows·L_out, C_out)            kk = j·C_in + ci   (x gathered contiguous in ci)
//   BWD_INPUT   dx (rows·L_in, C_in)             kk = j·C_out + co  (dy gathered contiguous in co)
//   BWD_WEIGHT  dw (C_out, C_in·K), column n     kk = q = r·L_out + l, split-K over q; the column
//               held internally as j·C_in + ci   index is stored back as ci·K + j (weight order)
//
// Determinism: each output is summed by one thread over kk in order; split-K slices (weight
// gradient) go to a workspace and `conv_sum_splits` adds them in slice order; db and the channel
// bias gradient are plain per-column loops in row order. No float atomics: two runs give the same
// bits (on one device model: the split count follows the SM count).
//
// Check: `cargo test -p tinyscore-kernels --test cuda conv::` (every kernel against its twin on a
// GPU, `kernels/tests/cuda/conv.rs`; "skipped: …" without one), `--test nvrtc` (compiles this
// file, no GPU needed), and `bash kernels/cuda/emu/run.sh` (these kernels run on the CPU through a
// small CUDA shim against an f64 loop: the index arithmetic without a GPU). Benchmark: none yet.
#include "common.cuh"

#define CBM 64
#define CBN 64
#define CBK 16
#define CTM 4
#define CTN 4
#define CONV_THREADS 256

#define MODE_FWD 0
#define MODE_BWD_INPUT 1
#define MODE_BWD_WEIGHT 2

// The geometry of one call (every length in elements).
struct Geo {
  int rows, l_in, c_in, c_out, k, dil, stride, pad, l_out;
};

// x[r, stride·l + j·dil − p, ci] for output position q = r·L_out + l, or 0 in the padding.
__device__ __forceinline__ float x_tap(const float* __restrict__ x, const Geo& g, int q, int j, int ci) {
  const int r = q / g.l_out, l = q - r * g.l_out;
  const int pos = g.stride * l + j * g.dil - g.pad;
  if (pos < 0 || pos >= g.l_in) return 0.0f;
  return x[((i64)r * g.l_in + pos) * g.c_in + ci];
}

// dy[r, (i + p − j·dil)/stride, co] for input position m = r·L_in + i, or 0 where no output
// position reads x[r, i] through tap j.
__device__ __forceinline__ float dy_tap(const float* __restrict__ dy, const Geo& g, int m, int j, int co) {
  const int r = m / g.l_in, i = m - r * g.l_in;
  const int t = i + g.pad - j * g.dil;
  if (t < 0) return 0.0f;
  const int l = t / g.stride;
  if (l * g.stride != t || l >= g.l_out) return 0.0f;
  return dy[((i64)r * g.l_out + l) * g.c_out + co];
}

// A(m, kk) and B(n, kk) of each mode; P is A's tensor and Q is B's (see the table above).
template <int MODE>
__device__ __forceinline__ float a_elem(const float* __restrict__ P, const Geo& g, int m, int kk) {
  if constexpr (MODE == MODE_FWD) {
    const int j = kk / g.c_in;
    return x_tap(P, g, m, j, kk - j * g.c_in);
  } else if constexpr (MODE == MODE_BWD_INPUT) {
    const int j = kk / g.c_out;
    return dy_tap(P, g, m, j, kk - j * g.c_out);
  } else {
    return P[(i64)kk * g.c_out + m];  // dy[q, co], m = co, kk = q
  }
}

template <int MODE>
__device__ __forceinline__ float b_elem(const float* __restrict__ Q, const Geo& g, int n, int kk) {
  if constexpr (MODE == MODE_FWD) {
    const int j = kk / g.c_in, ci = kk - j * g.c_in;
    return Q[((i64)n * g.c_in + ci) * g.k + j];  // w[co = n, ci, j]
  } else if constexpr (MODE == MODE_BWD_INPUT) {
    const int j = kk / g.c_out, co = kk - j * g.c_out;
    return Q[((i64)co * g.c_in + n) * g.k + j];  // w[co, ci = n, j]
  } else {
    const int j = n / g.c_in;
    return x_tap(Q, g, kk, j, n - j * g.c_in);  // x tap of (ci, j) at q = kk
  }
}

// C(M, N) = Σ_kk A(m, kk)·B(n, kk) over this block's split of kk, then the mode's epilogue:
//   FWD          y[m, n] = acc (+ bias[n])
//   BWD_INPUT    dx[m, n] = acc, or += acc when accumulate
//   BWD_WEIGHT   dw[m, ci·K + j] (n = j·C_in + ci) = acc / += acc; with split-K (gridDim.z > 1)
//                slice z writes acc to out + z·M·N instead (in weight order, no epilogue).
// Grid: x over M tiles (M = rows·L can pass 65 535 tiles), y over N tiles, z over splits.
template <int MODE>
__device__ __forceinline__ void conv_gemm(const float* __restrict__ P, const float* __restrict__ Q, float* out,
                                          const float* bias, int accumulate, const Geo g, int M, int N, int K,
                                          int k_per_split) {
  __shared__ float As[CBK][CBM + 4];
  __shared__ float Bs[CBK][CBN + 4];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int m0 = blockIdx.x * CBM, n0 = blockIdx.y * CBN;
  const int k_begin = blockIdx.z * k_per_split;
  const int k_end = min(K, k_begin + k_per_split);

  float acc[CTM][CTN];
#pragma unroll
  for (int i = 0; i < CTM; ++i)
#pragma unroll
    for (int j = 0; j < CTN; ++j) acc[i][j] = 0.0f;

  for (int k0 = k_begin; k0 < k_end; k0 += CBK) {
    // 4 elements of each tile per thread; consecutive threads along the operand's contiguous
    // index (kk for the gathers of FWD / BWD_INPUT, m or n for BWD_WEIGHT's dy and x).
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      const int idx = threadIdx.x + CONV_THREADS * s;
      int mm, kk;
      if (MODE == MODE_BWD_WEIGHT) { kk = idx / CBM; mm = idx % CBM; } else { mm = idx / CBK; kk = idx % CBK; }
      const int gm = m0 + mm, gk = k0 + kk;
      As[kk][mm] = (gm < M && gk < k_end) ? a_elem<MODE>(P, g, gm, gk) : 0.0f;
      int nn;
      if (MODE == MODE_BWD_WEIGHT) { kk = idx / CBN; nn = idx % CBN; } else { nn = idx / CBK; kk = idx % CBK; }
      const int gn = n0 + nn, gk2 = k0 + kk;
      Bs[kk][nn] = (gn < N && gk2 < k_end) ? b_elem<MODE>(Q, g, gn, gk2) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < CBK; ++kk) {
      float a[CTM], b[CTN];
#pragma unroll
      for (int i = 0; i < CTM; ++i) a[i] = As[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < CTN; ++j) b[j] = Bs[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < CTM; ++i)
#pragma unroll
        for (int j = 0; j < CTN; ++j) acc[i][j] += a[i] * b[j];
    }
    __syncthreads();
  }

  const bool split = gridDim.z > 1;
#pragma unroll
  for (int i = 0; i < CTM; ++i) {
    const int m = m0 + ty + 16 * i;
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < CTN; ++j) {
      const int n = n0 + tx + 16 * j;
      if (n >= N) continue;
      float v = acc[i][j];
      if (MODE == MODE_FWD) {
        if (bias) v = v + bias[n];
        out[(i64)m * N + n] = v;
      } else if (MODE == MODE_BWD_INPUT) {
        const i64 at = (i64)m * N + n;
        out[at] = accumulate ? out[at] + v : v;
      } else {
        const int tap = n / g.c_in, ci = n - tap * g.c_in;
        const i64 at = (i64)m * N + (i64)ci * g.k + tap;
        if (split) {
          out[(i64)blockIdx.z * M * N + at] = v;
        } else {
          out[at] = accumulate ? out[at] + v : v;
        }
      }
    }
  }
}

#define GEO_PARAMS int rows, int l_in, int c_in, int c_out, int k, int dil, int stride
#define GEO_MAKE \
  Geo { rows, l_in, c_in, c_out, k, dil, stride, dil * (k - 1) / 2, (l_in + stride - 1) / stride }

// y (rows, L_out, C_out) = conv(x (rows, L_in, C_in), w (C_out, C_in, K)) (+ b (C_out,); null: the
// tangent, no bias).
extern "C" __global__ void __launch_bounds__(CONV_THREADS)
    conv1d_fwd(const float* __restrict__ x, const float* __restrict__ w, const float* b, float* y, GEO_PARAMS) {
  const Geo g = GEO_MAKE;
  conv_gemm<MODE_FWD>(x, w, y, b, 0, g, rows * g.l_out, c_out, k * c_in, k * c_in);
}

// dx (rows, L_in, C_in) = (or +=) convᵀ(dy (rows, L_out, C_out)) with w (C_out, C_in, K).
extern "C" __global__ void __launch_bounds__(CONV_THREADS)
    conv1d_bwd_input(const float* __restrict__ dy, const float* __restrict__ w, float* dx, int accumulate,
                     GEO_PARAMS) {
  const Geo g = GEO_MAKE;
  conv_gemm<MODE_BWD_INPUT>(dy, w, dx, nullptr, accumulate, g, rows * l_in, c_in, k * c_out, k * c_out);
}

// dw (C_out, C_in, K) = (or +=) Σ_q dy[q, co]·x tap, over q < rows·L_out in slices of k_per_split
// (gridDim.z slices: raw sums into ws, added by `conv_sum_splits`).
extern "C" __global__ void __launch_bounds__(CONV_THREADS)
    conv1d_bwd_weight(const float* __restrict__ dy, const float* __restrict__ x, float* out, int accumulate,
                      int k_per_split, GEO_PARAMS) {
  const Geo g = GEO_MAKE;
  conv_gemm<MODE_BWD_WEIGHT>(dy, x, out, nullptr, accumulate, g, c_out, c_in * k, rows * g.l_out, k_per_split);
}

// out[i] = Σ_z ws[z·stride + i] in slice order z = 0, 1, …, written (or added to out[i] once,
// after the sum, when accumulate).
extern "C" __global__ void conv_sum_splits(const float* ws, int splits, i64 stride, i64 n, float* out,
                                           int accumulate) {
  const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float s = ws[i];
  for (int z = 1; z < splits; ++z) s = s + ws[(i64)z * stride + i];
  out[i] = accumulate ? out[i] + s : s;
}

// y (rows, 2·L, C)[r, l, c] = x (rows, L, C)[r, ⌊l/2⌋, c]. With p = r·2L + l the output position,
// ⌊p/2⌋ = r·L + ⌊l/2⌋ is the input position, so the kernel needs only C. One thread per output.
extern "C" __global__ void upsample2_fwd(const float* x, float* y, i64 n_out, int c) {
  const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n_out) return;
  const i64 p = i / c;
  y[i] = x[(p / 2) * c + (i - p * c)];
}

// dx (rows, L, C)[r, l, c] = (or += ) dy[r, 2l, c] + dy[r, 2l+1, c], the pair summed first, as
// the twin. One thread per input element.
extern "C" __global__ void upsample2_bwd(const float* dy, float* dx, i64 n_in, int c, int accumulate) {
  const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n_in) return;
  const i64 p = i / c, ch = i - p * c;
  const float s = dy[2 * p * c + ch] + dy[(2 * p + 1) * c + ch];
  dx[i] = accumulate ? dx[i] + s : s;
}

// y (rows, L, C)[r, l, c] += v (rows, C)[r, c]. One thread per element of y.
extern "C" __global__ void channel_bias_fwd(float* y, const float* v, i64 n, int l, int c) {
  const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const i64 r = i / ((i64)l * c);
  y[i] = y[i] + v[r * c + i % c];
}

// dv (rows, C)[r, c] += Σ_l dy (rows, L, C)[r, l, c], adding l = 0, 1, … into dv in order (the
// twin's operations exactly). One thread per (r, c); a warp reads consecutive c.
extern "C" __global__ void channel_bias_bwd(const float* dy, float* dv, int rows, int l, int c) {
  const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (i64)rows * c) return;
  const i64 r = i / c, ch = i - r * c;
  const float* src = dy + r * l * c + ch;
  float s = dv[i];
  for (int p = 0; p < l; ++p) s = s + src[(i64)p * c];
  dv[i] = s;
}
