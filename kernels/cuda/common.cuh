// tinyscore training kernels: the common header.
//
// Every kernel in this directory has a CPU twin in `kernels/src/cpu.rs` or `kernels/src/fused.rs`
// that defines what it computes; `kernels/tests/cuda.rs` holds each against its twin with the
// tolerance atol + rtol·|ref|. The sources are compiled at start-up by NVRTC (no CUDA toolkit is
// needed to build the project), so this header must stay free of system includes.
//
// Floating point: the kernels are compiled with --fmad=false so that a·b + c rounds twice, as the
// CPU twins do; transcendental functions (expf, logf, sinf, cosf, sqrtf) are CUDA's, which differ
// from `libm` by an ulp or two. A GPU run is bitwise repeatable (no atomics on floats, fixed
// reduction orders), but it is not bitwise equal to the CPU run.
#pragma once

typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;

// ---------------------------------------------------------------------------------------------
// Philox4x32-10 (Salmon et al. 2011), exactly the engine's `rng::philox4x32_10`.
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

__device__ __forceinline__ uint4 philox4x32_10(uint4 c, uint2 k) {
#pragma unroll
  for (int round = 0; round < 10; ++round) {
    const u32 hi0 = __umulhi(PHILOX_M0, c.x), lo0 = PHILOX_M0 * c.x;
    const u32 hi1 = __umulhi(PHILOX_M1, c.z), lo1 = PHILOX_M1 * c.z;
    c = make_uint4(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
    k.x += PHILOX_W0;
    k.y += PHILOX_W1;
  }
  return c;
}

// `rng::bits4(seed, block, sample, step, stream)`.
__device__ __forceinline__ uint4 bits4(u64 seed, u32 block, u32 sample, u32 step, u32 stream) {
  return philox4x32_10(make_uint4(block, sample, step, stream), make_uint2((u32)seed, (u32)(seed >> 32)));
}

// `rng::uniform_open0`: (0, 1] from the top 24 bits.
__device__ __forceinline__ float uniform_open0(u32 bits) {
  return (float)((bits >> 8) + 1u) * (1.0f / 16777216.0f);
}

// `rng::uniform`: [0, 1) from the top 24 bits.
__device__ __forceinline__ float uniform01(u32 bits) { return (float)(bits >> 8) * (1.0f / 16777216.0f); }

// `rng::box_muller`, same operations in the same order (CUDA's logf/cosf/sinf instead of libm).
__device__ __forceinline__ float2 box_muller(u32 b1, u32 b2) {
  const float u1 = uniform_open0(b1), u2 = uniform01(b2);
  const float r = sqrtf(-2.0f * logf(u1));
  const float theta = 6.28318530717958647692f * u2;
  return make_float2(r * cosf(theta), r * sinf(theta));
}

// ---------------------------------------------------------------------------------------------
// SiLU, as `net::silu` and `cpu::silu_fwd_sig`: y = x / (1 + e^−x), σ = 1 / (1 + e^−x).
__device__ __forceinline__ void silu_sig(float x, float* y, float* s) {
  const float denom = 1.0f + expf(-x);
  *y = x / denom;
  *s = 1.0f / denom;
}

// silu'(x) from the kept σ, as `cpu::silu_bwd_sig`: σ·(1 + x·(1 − σ)).
__device__ __forceinline__ float silu_grad_sig(float x, float s) { return s * (1.0f + x * (1.0f - s)); }

// ---------------------------------------------------------------------------------------------
// The continuous processes of `schedule::Sde` (kind: 1 VP, 2 sub-VP, 3 VE; p0, p1 = β_min, β_max
// or σ_min, σ_max), the same formulas as the engine's `Sde::marginal` and `Sde::coefficients`.
__device__ __forceinline__ float2 sde_marginal(int kind, float p0, float p1, float t) {
  if (kind == 3) {
    const float a = logf(p0), b = logf(p1);
    return make_float2(1.0f, expf(a + t * (b - a)));
  }
  const float b = p0 * t + 0.5f * (p1 - p0) * t * t;
  const float alpha = expf(-0.5f * b);
  return kind == 1 ? make_float2(alpha, sqrtf(-expm1f(-b))) : make_float2(alpha, -expm1f(-b));
}

// (f(t), g(t)²).
__device__ __forceinline__ float2 sde_coefficients(int kind, float p0, float p1, float t) {
  if (kind == 3) {
    const float a = logf(p0), b = logf(p1);
    const float s = expf(a + t * (b - a));
    return make_float2(0.0f, 2.0f * s * s * (b - a));
  }
  const float beta = p0 + t * (p1 - p0);
  if (kind == 1) return make_float2(-0.5f * beta, beta);
  const float b = p0 * t + 0.5f * (p1 - p0) * t * t;
  return make_float2(-0.5f * beta, beta * -expm1f(-2.0f * b));
}

// The sum of `v` over a block of BLOCK threads (a power of two) in a fixed tree order, valid in
// thread 0; `red` is BLOCK doubles of shared memory. Deterministic for a given launch shape.
template <int BLOCK>
__device__ __forceinline__ double block_sum(double v, double* red) {
  red[threadIdx.x] = v;
  __syncthreads();
  for (int s = BLOCK / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) red[threadIdx.x] += red[threadIdx.x + s];
    __syncthreads();
  }
  return red[0];
}

// Streams of `rng::stream` used by the training kernels.
#define STREAM_TRAIN_EPS 16u
#define STREAM_TRAIN_TIME 17u
#define STREAM_TRAIN_INDEX 18u

// The device-resident scalars of a run (one per training run, `u64 state[STATE_LEN]`): the step
// counter lives on the device so that a whole step is a fixed sequence of launches (a CUDA graph
// can replay it). Float values are stored as their bits in the low word.
#define STATE_STEP 0        // optimisation steps done (the 0-based index of the running step)
#define STATE_LR 1          // learning rate of the running step (f32 bits)
#define STATE_BC1 2         // 1 − β₁ᵗ (f32 bits)
#define STATE_BC2 3         // 1 − β₂ᵗ (f32 bits)
#define STATE_CLIP 4        // gradient scale of the running step (f32 bits)
#define STATE_LOSS_SUM 5    // Σ loss since the last read (f64 bits)
#define STATE_LOSS_COUNT 6  // steps since the last read
#define STATE_NORM 7        // ‖g‖ of the last step (f64 bits)
#define STATE_LEN 8
