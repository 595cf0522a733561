// elementwise.cu's kernels run on the CPU through `shim.h` (no __syncthreads: a plain loop over a
// block's threads) with the launch shapes of `Gpu::silu_fwd_sig` … `Gpu::transpose_rows`
// (256 threads, one per element), against loops written from the formulas of their twins. It
// checks the index arithmetic (the per-row transposition above all) where no GPU is at hand.
// Run: `bash kernels/cuda/emu/run.sh`.
#include "shim.h"
#include "silu.h"              // common.cuh's silu_sig and silu_grad_sig (run.sh extracts them)
#include "elementwise_emu.cu.h"  // elementwise.cu with shim.h for common.cuh (run.sh writes it)
#include <cstdio>
#include <string>

static int fails = 0;
static void expect(const std::string& what, bool ok) {
  if (!ok) { printf("MISMATCH %s\n", what.c_str()); ++fails; }
}
static unsigned blocks(size_t n) { return std::max<size_t>(1, (n + 255) / 256); }
static std::vector<float> vals(size_t n, unsigned salt) {
  std::vector<float> v(n); unsigned s = salt * 2654435761u + 1;
  for (auto& x : v) { s = s * 1664525u + 1013904223u; x = (float)((s >> 8) / 8388608.0 - 1.0) * 6.0f; }
  return v;
}

int main() {
  for (size_t n : {1u, 255u, 257u, 10007u}) {
    auto x = vals(n, 1), dy = vals(n, 2), prior = vals(n, 3);
    std::vector<float> y(n, NAN), sig(n, NAN);
    i64 len = (i64)n;
    launch({blocks(n), 1, 1}, 256, false, [&] { silu_fwd_sig(x.data(), y.data(), sig.data(), len); });
    bool ok = true;
    for (size_t i = 0; i < n; ++i) {
      const float d = 1.0f + std::exp(-x[i]);
      ok = ok && y[i] == x[i] / d && sig[i] == 1.0f / d;
    }
    expect("silu_fwd_sig n=" + std::to_string(n), ok);
    for (int acc : {0, 1}) {
      auto dx = prior;
      launch({blocks(n), 1, 1}, 256, false, [&] { silu_bwd_sig(x.data(), sig.data(), dy.data(), dx.data(), len, acc); });
      ok = true;
      for (size_t i = 0; i < n; ++i) {
        const float g = dy[i] * (sig[i] * (1.0f + x[i] * (1.0f - sig[i])));
        ok = ok && dx[i] == (acc ? prior[i] + g : g);
      }
      expect("silu_bwd_sig n=" + std::to_string(n) + " acc=" + std::to_string(acc), ok);
    }
    std::vector<float> s(n, NAN);
    launch({blocks(n), 1, 1}, 256, false, [&] { add2(x.data(), dy.data(), s.data(), len); });
    ok = true;
    for (size_t i = 0; i < n; ++i) ok = ok && s[i] == x[i] + dy[i];
    expect("add2 n=" + std::to_string(n), ok);
    launch({blocks(n), 1, 1}, 256, false, [&] { fill_zero(s.data(), len); });
    ok = true;
    for (size_t i = 0; i < n; ++i) ok = ok && s[i] == 0.0f;
    expect("fill_zero n=" + std::to_string(n), ok);
  }
  const int shapes[][3] = {{1, 1, 1}, {3, 1, 17}, {5, 17, 1}, {7, 3, 256}, {33, 65, 129}, {2, 256, 3}};
  for (auto& sh : shapes) {
    const int rows = sh[0], a = sh[1], b = sh[2];
    const size_t n = (size_t)rows * a * b;
    auto src = vals(n, 4);
    std::vector<float> dst(n, NAN);
    launch({blocks(n), 1, 1}, 256, false, [&] { transpose_rows(src.data(), dst.data(), (i64)n, a, b); });
    bool ok = true;
    for (int r = 0; r < rows; ++r)
      for (int i = 0; i < a; ++i)
        for (int j = 0; j < b; ++j)
          ok = ok && dst[((size_t)r * b + j) * a + i] == src[((size_t)r * a + i) * b + j];
    expect("transpose_rows (" + std::to_string(rows) + ", " + std::to_string(a) + ", " + std::to_string(b) + ")", ok);
  }
  printf(fails ? "elementwise.cu: %d checks FAILED\n" : "elementwise.cu: every check passed%.0d\n", fails);
  return fails ? 1 : 0;
}
