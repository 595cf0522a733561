// The DSM loss and its gradient: twin of `cpu::mse_loss_grad` / `cpu::weighted_mse_loss_grad`.
//
//   grad[r, d] = 2·w_r·(pred − target)/total          loss = Σ w_r·(pred − target)² / total
//
// `mse_grad` writes the gradient and one f64 partial sum per block (a fixed tree inside the
// block); `loss_finish` adds the partials in block order and adds the step's loss to the
// device-resident running sum that the host reads every N steps. Deterministic.
#include "common.cuh"

#define LOSS_THREADS 256

extern "C" __global__ void __launch_bounds__(LOSS_THREADS)
    mse_grad(const float* pred, const float* target, const float* weights, i64 n, int dim, float inv_total,
             float* grad, double* partials) {
  __shared__ double red[LOSS_THREADS];
  const i64 i = (i64)blockIdx.x * LOSS_THREADS + threadIdx.x;
  double sq = 0.0;
  if (i < n) {
    const float w = weights ? weights[i / dim] : 1.0f;
    const float diff = pred[i] - target[i];
    sq = (double)w * (double)diff * (double)diff;
    grad[i] = weights ? 2.0f * w * diff * inv_total : 2.0f * diff * inv_total;
  }
  red[threadIdx.x] = sq;
  __syncthreads();
  for (int s = LOSS_THREADS / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) red[threadIdx.x] += red[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) partials[blockIdx.x] = red[0];
}

// One block: state[LOSS_SUM] += (Σ partials)/total, state[LOSS_COUNT] += 1.
extern "C" __global__ void __launch_bounds__(LOSS_THREADS)
    loss_finish(const double* partials, int count, double inv_total, u64* state) {
  __shared__ double red[LOSS_THREADS];
  double s = 0.0;
  for (int i = threadIdx.x; i < count; i += LOSS_THREADS) s += partials[i];
  red[threadIdx.x] = s;
  __syncthreads();
  for (int k = LOSS_THREADS / 2; k > 0; k >>= 1) {
    if (threadIdx.x < k) red[threadIdx.x] += red[threadIdx.x + k];
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    const double total = __longlong_as_double((long long)state[STATE_LOSS_SUM]) + red[0] * inv_total;
    state[STATE_LOSS_SUM] = (u64)__double_as_longlong(total);
    state[STATE_LOSS_COUNT] += 1;
  }
}
