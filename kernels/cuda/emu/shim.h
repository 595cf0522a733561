// A CPU emulation of the few CUDA features conv.cu uses, for `conv_check.cpp`: one block at a
// time, its threads as std::threads (kernels with __syncthreads) or a plain loop (kernels without).
#pragma once
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;
struct dim3 { unsigned x = 1, y = 1, z = 1; };
inline thread_local dim3 threadIdx, blockIdx;
inline dim3 gridDim, blockDim;
inline std::barrier<>* g_bar = nullptr;
inline void __syncthreads() { g_bar->arrive_and_wait(); }
using std::min;
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(x)
#define __restrict__
#define __shared__ static

inline void launch(dim3 grid, unsigned threads, bool sync, const std::function<void()>& k) {
  gridDim = grid;
  blockDim = dim3{threads, 1, 1};
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        dim3 b{x, y, z};
        if (sync) {
          std::barrier<> bar(threads);
          g_bar = &bar;
          std::vector<std::thread> ts;
          for (unsigned t = 0; t < threads; ++t)
            ts.emplace_back([&, t] { blockIdx = b; threadIdx = dim3{t, 0, 0}; k(); });
          for (auto& t : ts) t.join();
        } else {
          blockIdx = b;
          for (unsigned t = 0; t < threads; ++t) { threadIdx = dim3{t, 0, 0}; k(); }
        }
      }
}
