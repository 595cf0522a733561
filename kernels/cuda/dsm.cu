// The fused inputs of the denoising score matching loss: twin of `cpu::dsm_inputs` (and of the
// likelihood weights the CPU trainer computes beside it). Two launches per step:
//
// * `dsm_rows`, one thread per example r: data index j, time t, (α, σ), the loss weight w and the
//   time features φ(t);
// * `dsm_noise`, one thread per (example, block of four elements): ε from Philox + Box–Muller
//   and x_t = α·x₀ + σ·ε.
//
// The example's index in the run is e = step·batch + r with `step` read from the device state,
// so the draws are those of the CPU trainer (same integers; the floats within an ulp or two).
#include "common.cuh"

// process: 0 discrete VP (tables indexed by n = 1..N: time, α, σ, likelihood weight), 1..3 the
// SDEs of `sde_marginal`. weighting: 0 simple (w = 1), 1 likelihood (w = g²/σ²).
extern "C" __global__ void dsm_rows(const u64* state, u64 seed, u32 batch, u32 n_data, int process, u32 n_steps,
                                    const float* tab_time, const float* tab_alpha, const float* tab_sigma,
                                    const float* tab_weight, float p0, float p1, float t_eps, int weighting,
                                    const float* freqs, int half, float time_scale, u32* index, float* t_out,
                                    float* alpha_out, float* sigma_out, float* weight_out, float* phi) {
  const u32 r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= batch) return;
  const u64 e = state[STATE_STEP] * (u64)batch + (u64)r;
  const u32 lo = (u32)e, hi = (u32)(e >> 32);
  uint4 w = bits4(seed, 0, lo, hi, STREAM_TRAIN_INDEX);
  // j = ⌊(w₀·2³² + w₁)·n / 2⁶⁴⌋: the high 64 bits of a 64×32-bit product.
  const u64 wide = ((u64)w.x << 32) | (u64)w.y;
  const u64 lo_prod = (wide & 0xffffffffull) * (u64)n_data;
  const u64 hi_prod = (wide >> 32) * (u64)n_data + (lo_prod >> 32);
  index[r] = (u32)(hi_prod >> 32);

  w = bits4(seed, 0, lo, hi, STREAM_TRAIN_TIME);
  float time, alpha, sigma, weight = 1.0f;
  if (process == 0) {
    const u32 n = 1u + (u32)(((u64)w.x * (u64)n_steps) >> 32);
    time = tab_time[n];
    alpha = tab_alpha[n];
    sigma = tab_sigma[n];
    if (weighting == 1) weight = tab_weight[n];
  } else {
    time = t_eps + (1.0f - t_eps) * uniform01(w.x);
    const float2 m = sde_marginal(process, p0, p1, time);
    alpha = m.x;
    sigma = m.y;
    if (weighting == 1) {
      const float2 c = sde_coefficients(process, p0, p1, time);
      weight = c.y / (sigma * sigma);
    }
  }
  t_out[r] = time;
  alpha_out[r] = alpha;
  sigma_out[r] = sigma;
  weight_out[r] = weight;
  // φ_k = sin(ω_k·s), φ_{F/2+k} = cos(ω_k·s), s = 1000·t (`net::time_features`; ω from the engine).
  const float s = time_scale * time;
  float* row = phi + (u64)r * (u64)(2 * half);
  for (int k = 0; k < half; ++k) {
    const float arg = freqs[k] * s;
    row[k] = sinf(arg);
    row[half + k] = cosf(arg);
  }
}

extern "C" __global__ void dsm_noise(const u64* state, u64 seed, u32 batch, u32 dim, const float* data,
                                     const u32* index, const float* alpha, const float* sigma, float* x_t,
                                     float* eps) {
  const u32 blocks = (dim + 3u) / 4u;
  const u64 id = (u64)blockIdx.x * blockDim.x + threadIdx.x;
  if (id >= (u64)batch * blocks) return;
  const u32 r = (u32)(id / blocks), blk = (u32)(id % blocks);
  const u64 e = state[STATE_STEP] * (u64)batch + (u64)r;
  const uint4 w = bits4(seed, blk, (u32)e, (u32)(e >> 32), STREAM_TRAIN_EPS);
  const float2 z01 = box_muller(w.x, w.y), z23 = box_muller(w.z, w.w);
  const float z[4] = {z01.x, z01.y, z23.x, z23.y};
  const float* x0 = data + (u64)index[r] * dim;
  const float a = alpha[r], s = sigma[r];
  for (u32 q = 0; q < 4; ++q) {
    const u32 d = blk * 4u + q;
    if (d >= dim) break;
    const u64 at = (u64)r * dim + d;
    eps[at] = z[q];
    x_t[at] = a * x0[d] + s * z[q];
  }
}
