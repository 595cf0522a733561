// conv.cu's kernels run on the CPU through `shim.h` (a block at a time, its 256 threads as
// std::threads meeting at __syncthreads), against an f64 loop written from the formulas of
// `kernels/src/conv.rs`; the launch logic (grids, split-K counts for 132 SMs, the db column sums)
// is ported from `Gpu::conv1d_*` in `kernels/src/cuda.rs`. Not a GPU test: it checks the
// kernels' index arithmetic, padding, strides, split-K and epilogues where no GPU is at hand.
// Run: `bash kernels/cuda/emu/run.sh` (g++ ≥ 12, a few minutes on 2 cores).
#include "shim.h"
#include "conv_emu.cu.h"  // conv.cu with shim.h for common.cuh (run.sh writes it)
#include "colsum.h"
#include <cstdio>
#include <cstdlib>
#include <string>

struct S { int rows, l_in, c_in, c_out, k, dil, stride; int l_out() const { return (l_in + stride - 1) / stride; } int pad() const { return dil * (k - 1) / 2; } };
static std::vector<float> vals(size_t n, unsigned salt) {
  std::vector<float> v(n); unsigned s = salt * 2654435761u + 1;
  for (auto& x : v) { s = s * 1664525u + 1013904223u; x = (float)((s >> 8) / 8388608.0 - 1.0); }
  return v;
}
static double at(const std::vector<float>& x, const S& s, int r, int pos, int ci) {
  if (pos < 0 || pos >= s.l_in) return 0;
  return x[((size_t)r * s.l_in + pos) * s.c_in + ci];
}
static int fails = 0;
static void check(const std::string& what, const std::vector<float>& got, const std::vector<double>& want, double atol, double rtol) {
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!(std::fabs(got[i] - want[i]) <= atol + rtol * std::fabs(want[i]))) {
      if (bad < 3) printf("MISMATCH %s [%zu] got %g want %g\n", what.c_str(), i, got[i], want[i]);
      ++bad;
    }
  }
  if (bad) ++fails;
}
static unsigned blocks(size_t n, unsigned per) { return std::max<size_t>(1, (n + per - 1) / per); }
static const int SMS = 132, MAX_SPLITS = 32;

static void run(const S& s, bool quiet) {
  char tag[200]; snprintf(tag, sizeof tag, "(%d,%d,%d,%d,%d,%d,%d)", s.rows, s.l_in, s.c_in, s.c_out, s.k, s.dil, s.stride);
  const int L = s.l_out();
  size_t xn = (size_t)s.rows * s.l_in * s.c_in, yn = (size_t)s.rows * L * s.c_out, wn = (size_t)s.c_out * s.c_in * s.k;
  auto x = vals(xn, 1), w = vals(wn, 2), b = vals(s.c_out, 3), dy = vals(yn, 4), prior = vals(xn, 5), dw0 = vals(wn, 6), db0 = vals(s.c_out, 7);
  // references
  std::vector<double> ry(yn), rt(yn), rdx(xn, 0), rdw(wn, 0), rdb(s.c_out, 0);
  for (int r = 0; r < s.rows; ++r) for (int l = 0; l < L; ++l) for (int co = 0; co < s.c_out; ++co) {
    double acc = 0; double g = dy[((size_t)r * L + l) * s.c_out + co]; rdb[co] += g;
    for (int ci = 0; ci < s.c_in; ++ci) for (int j = 0; j < s.k; ++j) {
      int pos = s.stride * l + j * s.dil - s.pad();
      double wv = w[((size_t)co * s.c_in + ci) * s.k + j];
      acc += wv * at(x, s, r, pos, ci);
      rdw[((size_t)co * s.c_in + ci) * s.k + j] += g * at(x, s, r, pos, ci);
      if (pos >= 0 && pos < s.l_in) rdx[((size_t)r * s.l_in + pos) * s.c_in + ci] += wv * g;
    }
    ry[((size_t)r * L + l) * s.c_out + co] = acc + b[co]; rt[((size_t)r * L + l) * s.c_out + co] = acc;
  }
  // forward with and without bias
  size_t M = (size_t)s.rows * L, N = s.c_out;
  std::vector<float> y(yn, NAN);
  if (M && N) {
    launch({blocks(M, 64), blocks(N, 64), 1}, 256, true, [&] { conv1d_fwd(x.data(), w.data(), b.data(), y.data(), s.rows, s.l_in, s.c_in, s.c_out, s.k, s.dil, s.stride); });
    check(std::string("fwd ") + tag, y, ry, 1e-5, 1e-4);
    launch({blocks(M, 64), blocks(N, 64), 1}, 256, true, [&] { conv1d_fwd(x.data(), w.data(), nullptr, y.data(), s.rows, s.l_in, s.c_in, s.c_out, s.k, s.dil, s.stride); });
    check(std::string("tangent ") + tag, y, rt, 1e-5, 1e-4);
  }
  // input gradient
  for (int acc = 0; acc < 2; ++acc) {
    std::vector<float> dx = prior; size_t M2 = (size_t)s.rows * s.l_in;
    if (M2 && s.c_in) launch({blocks(M2, 64), blocks(s.c_in, 64), 1}, 256, true, [&] { conv1d_bwd_input(dy.data(), w.data(), dx.data(), acc, s.rows, s.l_in, s.c_in, s.c_out, s.k, s.dil, s.stride); });
    std::vector<double> want = rdx; if (acc) for (size_t i = 0; i < xn; ++i) want[i] += prior[i];
    check(std::string("bwd_input acc=") + std::to_string(acc) + " " + tag, dx, want, 1e-5, 1e-4);
  }
  // parameter gradients (port of Gpu::conv1d_bwd_params)
  for (int acc = 0; acc < 2; ++acc) {
    std::vector<float> dw = dw0, db = db0, ws(MAX_SPLITS * std::max<size_t>(std::max<size_t>(wn, s.c_out), 1), NAN);
    size_t m = s.c_out, n = (size_t)s.c_in * s.k, depth = (size_t)s.rows * L;
    int used_splits = 0;
    if (m && n) {
      size_t tiles = ((m + 63) / 64) * ((n + 63) / 64);
      size_t want = (2 * SMS + tiles - 1) / tiles;
      size_t splits = std::clamp<size_t>(std::min(want, depth / 256), 1, MAX_SPLITS);
      size_t k_per = std::max<size_t>(((depth + splits - 1) / splits + 15) / 16 * 16, 16);
      splits = std::max<size_t>((depth + k_per - 1) / k_per, 1);
      used_splits = splits;
      float* out = splits > 1 ? ws.data() : dw.data();
      launch({blocks(m, 64), blocks(n, 64), (unsigned)splits}, 256, true, [&] { conv1d_bwd_weight(dy.data(), x.data(), out, acc, (int)k_per, s.rows, s.l_in, s.c_in, s.c_out, s.k, s.dil, s.stride); });
      if (splits > 1) launch({blocks(m * n, 256), 1, 1}, 256, false, [&] { conv_sum_splits(ws.data(), splits, m * n, m * n, dw.data(), acc); });
    }
    if (m) {
      size_t splits = std::clamp<size_t>(depth / 1024, 1, MAX_SPLITS);
      size_t per = std::max<size_t>((depth + splits - 1) / splits, 1);
      splits = std::max<size_t>((depth + per - 1) / per, 1);
      launch({blocks(m, 256), (unsigned)splits, 1}, 256, false, [&] { col_sum(dy.data(), depth, m, per, ws.data()); });
      launch({blocks(m, 256), 1, 1}, 256, false, [&] { conv_sum_splits(ws.data(), splits, m, m, db.data(), acc); });
    }
    std::vector<double> ww = rdw, wb = rdb;
    if (acc) { for (size_t i = 0; i < wn; ++i) ww[i] += dw0[i]; for (int i = 0; i < s.c_out; ++i) wb[i] += db0[i]; }
    double atol = 1e-5 * std::max(1.0, std::sqrt((double)depth));
    check(std::string("dw acc=") + std::to_string(acc) + " splits=" + std::to_string(used_splits) + " " + tag, dw, ww, atol, 1e-4);
    check(std::string("db acc=") + std::to_string(acc) + " " + tag, db, wb, atol, 1e-4);
  }
  if (!quiet) printf("done %s\n", tag);
}

static void elementwise(int rows, int l, int c) {
  size_t n = (size_t)rows * l * c;
  auto x = vals(n, 11), dy2 = vals(2 * n, 12), prior = vals(n, 13), v = vals((size_t)rows * c, 14);
  std::vector<float> up(2 * n);
  launch({blocks(2 * n, 256), 1, 1}, 256, false, [&] { upsample2_fwd(x.data(), up.data(), 2 * n, c); });
  for (int r = 0; r < rows; ++r) for (int p = 0; p < 2 * l; ++p) for (int ch = 0; ch < c; ++ch)
    if (up[((size_t)r * 2 * l + p) * c + ch] != x[((size_t)r * l + p / 2) * c + ch]) { printf("upsample fwd mismatch\n"); ++fails; return; }
  for (int acc = 0; acc < 2; ++acc) {
    auto dx = prior;
    launch({blocks(n, 256), 1, 1}, 256, false, [&] { upsample2_bwd(dy2.data(), dx.data(), n, c, acc); });
    for (int r = 0; r < rows; ++r) for (int p = 0; p < l; ++p) for (int ch = 0; ch < c; ++ch) {
      size_t i = ((size_t)r * l + p) * c + ch;
      float s = dy2[((size_t)r * 2 * l + 2 * p) * c + ch] + dy2[((size_t)r * 2 * l + 2 * p + 1) * c + ch];
      float want = acc ? prior[i] + s : s;
      if (dx[i] != want) { printf("upsample bwd mismatch\n"); ++fails; return; }
    }
  }
  auto y = x;
  launch({blocks(n, 256), 1, 1}, 256, false, [&] { channel_bias_fwd(y.data(), v.data(), n, l, c); });
  for (int r = 0; r < rows; ++r) for (int p = 0; p < l; ++p) for (int ch = 0; ch < c; ++ch) {
    size_t i = ((size_t)r * l + p) * c + ch;
    if (y[i] != x[i] + v[(size_t)r * c + ch]) { printf("channel bias fwd mismatch\n"); ++fails; return; }
  }
  auto dv = v;
  launch({blocks((size_t)rows * c, 256), 1, 1}, 256, false, [&] { channel_bias_bwd(x.data(), dv.data(), rows, l, c); });
  for (int r = 0; r < rows; ++r) for (int ch = 0; ch < c; ++ch) {
    float s = v[(size_t)r * c + ch]; for (int p = 0; p < l; ++p) s = s + x[((size_t)r * l + p) * c + ch];
    if (dv[(size_t)r * c + ch] != s) { printf("channel bias bwd mismatch\n"); ++fails; return; }
  }
}

int main() {
  int n = 0;
  for (int rows : {1, 3}) for (int l_in : {1, 2, 5, 16}) for (auto cc : {std::pair{1, 1}, std::pair{3, 5}})
    for (int k : {1, 3, 5, 7}) for (int dil : {1, 3}) for (int stride : {1, 2}) { run({rows, l_in, cc.first, cc.second, k, dil, stride}, true); ++n; }
  printf("small sweep: %d shapes, failures so far %d\n", n, fails);
  S big[] = {{2, 9, 70, 65, 3, 1, 1}, {3, 301, 4, 5, 5, 2, 2}, {33, 129, 3, 130, 3, 1, 2}, {5, 200, 66, 17, 1, 1, 1},
             {4, 64, 17, 33, 1, 1, 2}, {7, 257, 2, 3, 7, 3, 1}, {64, 512, 8, 16, 5, 2, 1}, {256, 255, 1, 3, 7, 1, 2}};
  for (auto& s : big) run(s, false);
  for (auto [r, l, c] : {std::tuple{1, 1, 1}, std::tuple{3, 5, 2}, std::tuple{7, 128, 65}, std::tuple{130, 33, 3}}) elementwise(r, l, c);
  printf("failures: %d\n", fails);
  return fails != 0;
}
