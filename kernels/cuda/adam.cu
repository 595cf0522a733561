// Gradient clipping and the fused Adam + EMA update over the flat parameter buffers: twins of
// `cpu::clip_grad_norm` and `cpu::adam_ema_update`, with the step's scalars on the device.
//
//   sq_partials   one f64 partial Σ g² per block
//   step_scalars  one thread block: ‖g‖ = √Σ partials; the clip scale; t = step + 1; the learning
//                 rate of step t (linear warm-up); the bias corrections 1 − β₁ᵗ, 1 − β₂ᵗ (f64,
//                 rounded once); then step ← t
//   adam_ema      θ, m, v, EMA element-wise with g·scale
#include "common.cuh"

#define ADAM_THREADS 256

extern "C" __global__ void __launch_bounds__(ADAM_THREADS) sq_partials(const float* g, i64 n, double* partials) {
  __shared__ double red[ADAM_THREADS];
  double s = 0.0;
  // Grid-stride in a fixed pattern: block b sums elements b·256 + tid + k·(grid·256).
  for (i64 i = (i64)blockIdx.x * ADAM_THREADS + threadIdx.x; i < n; i += (i64)gridDim.x * ADAM_THREADS) {
    const double v = (double)g[i];
    s += v * v;
  }
  const double sum = block_sum<ADAM_THREADS>(s, red);
  if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

extern "C" __global__ void __launch_bounds__(ADAM_THREADS)
    step_scalars(const double* partials, int count, float max_norm, float lr, u64 warmup, float beta1, float beta2,
                 u64* state) {
  __shared__ double red[ADAM_THREADS];
  double s = 0.0;
  for (int i = threadIdx.x; i < count; i += ADAM_THREADS) s += partials[i];
  const double sum = block_sum<ADAM_THREADS>(s, red);
  if (threadIdx.x != 0) return;
  const double norm = sqrt(sum);
  float scale = 1.0f;
  // max_norm not finite or not positive: no clipping (as `cpu::clip_grad_norm`).
  if (isfinite(max_norm) && max_norm > 0.0f && norm > (double)max_norm) scale = (float)((double)max_norm / (norm + 1e-6));
  const u64 t = state[STATE_STEP] + 1;
  const float lr_t = (warmup > 0 && t < warmup) ? lr * ((float)t / (float)warmup) : lr;
  const int ti = t > 2147483647ull ? 2147483647 : (int)t;
  const float bc1 = (float)(1.0 - pow((double)beta1, (double)ti));
  const float bc2 = (float)(1.0 - pow((double)beta2, (double)ti));
  state[STATE_LR] = (u64)__float_as_uint(lr_t);
  state[STATE_BC1] = (u64)__float_as_uint(bc1);
  state[STATE_BC2] = (u64)__float_as_uint(bc2);
  state[STATE_CLIP] = (u64)__float_as_uint(scale);
  state[STATE_NORM] = (u64)__double_as_longlong(norm);
  state[STATE_STEP] = t;
}

extern "C" __global__ void __launch_bounds__(ADAM_THREADS)
    adam_ema(float* params, const float* grads, float* m, float* v, float* ema, i64 n, const u64* state, float beta1,
             float beta2, float eps, float decay) {
  const i64 i = (i64)blockIdx.x * ADAM_THREADS + threadIdx.x;
  if (i >= n) return;
  const float lr = __uint_as_float((u32)state[STATE_LR]);
  const float bc1 = __uint_as_float((u32)state[STATE_BC1]);
  const float bc2 = __uint_as_float((u32)state[STATE_BC2]);
  const float scale = __uint_as_float((u32)state[STATE_CLIP]);
  const float g = scale == 1.0f ? grads[i] : grads[i] * scale;
  const float mi = beta1 * m[i] + (1.0f - beta1) * g;
  const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
  m[i] = mi;
  v[i] = vi;
  const float m_hat = mi / bc1, v_hat = vi / bc2;
  const float p = params[i] - lr * m_hat / (sqrtf(v_hat) + eps);
  params[i] = p;
  ema[i] = decay * ema[i] + (1.0f - decay) * p;
}
