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
  const double sum = block_sum<LOSS_THREADS>(sq, red);
  if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

// One block: state[LOSS_SUM] += (Σ partials)/total, state[LOSS_COUNT] += 1.
extern "C" __global__ void __launch_bounds__(LOSS_THREADS)
    loss_finish(const double* partials, int count, double inv_total, u64* state) {
  __shared__ double red[LOSS_THREADS];
  double s = 0.0;
  for (int i = threadIdx.x; i < count; i += LOSS_THREADS) s += partials[i];
  const double sum = block_sum<LOSS_THREADS>(s, red);
  if (threadIdx.x == 0) {
    const double total = __longlong_as_double((long long)state[STATE_LOSS_SUM]) + sum * inv_total;
    state[STATE_LOSS_SUM] = (u64)__double_as_longlong(total);
    state[STATE_LOSS_COUNT] += 1;
  }
}
