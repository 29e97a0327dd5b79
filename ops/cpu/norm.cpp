#include "ops/cpu/norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/cpu/fast_math.h"

namespace msmix::cpu {
namespace {

constexpr int64_t kParallelMin = 1 << 14;  // elements below which threads cost more than they save
constexpr int64_t kMaxChunks = 64;         // row chunks for the race-free gweight / gbias partial sums

}  // namespace

// ---------------------------------------------------------------- layer norm

void layer_norm_forward(const float* x, const float* weight, const float* bias, float* y, float* mean, float* rstd,
                        int64_t R, int64_t C, float eps) {
  // Per row (fast_math.h, row_kernels_impl.h): two blocked-sum passes for the mean and the biased variance
  // around it, then one pass writing y.
  const VecKernels& k = vec_kernels();
#pragma omp parallel for if (R * C > kParallelMin)
  for (int64_t r = 0; r < R; ++r) k.layer_norm_row(x + r * C, weight, bias, y + r * C, C, eps, mean + r, rstd + r);
}

void layer_norm_backward(const float* x, const float* weight, const float* mean, const float* rstd, const float* g,
                         float* gx, float* gweight, float* gbias, int64_t R, int64_t C) {
  // Rows are split into a fixed number of chunks (independent of the thread count, so results are
  // deterministic); each chunk sums its rows' g * xhat and g into its own partial row, then the partial
  // rows are added up column by column.
  const int64_t rows_per_chunk = R > 0 ? (R + kMaxChunks - 1) / kMaxChunks : 1;
  const int64_t chunks = (R + rows_per_chunk - 1) / rows_per_chunk;
  const bool partials = gweight || gbias;
  std::vector<float> pw(partials ? size_t(chunks * C) : 0, 0.0f), pb(pw.size(), 0.0f);
  const VecKernels& k = vec_kernels();

#pragma omp parallel for if (R * C > kParallelMin)
  for (int64_t c = 0; c < chunks; ++c) {
    float* pwc = partials ? pw.data() + c * C : nullptr;
    float* pbc = partials ? pb.data() + c * C : nullptr;
    const int64_t r_end = std::min(R, (c + 1) * rows_per_chunk);
    for (int64_t r = c * rows_per_chunk; r < r_end; ++r)
      k.layer_norm_row_backward(x + r * C, weight, mean[r], rstd[r], g + r * C, gx ? gx + r * C : nullptr, pwc, pbc, C);
  }
  if (!partials) return;
#pragma omp parallel for if (chunks * C > kParallelMin)
  for (int64_t c = 0; c < C; ++c) {
    float sw = 0, sb = 0;
    for (int64_t j = 0; j < chunks; ++j) {
      sw += pw[size_t(j * C + c)];
      sb += pb[size_t(j * C + c)];
    }
    if (gweight) gweight[c] = sw;
    if (gbias) gbias[c] = sb;
  }
}

// ---------------------------------------------------------------- batch norm
// Element (n, c, l) sits at (n * C + c) * L + l: channel c is N runs of L contiguous values.

void batch_norm_stats(const float* x, float eps, float momentum, float* running_mean, float* running_var, float* mean,
                      float* rstd, int64_t N, int64_t C, int64_t L) {
  const int64_t M = N * L;
#pragma omp parallel for if (N * C * L > kParallelMin)
  for (int64_t c = 0; c < C; ++c) {
    // Two passes in double: the mean, then the biased variance around it.
    double s = 0;
    for (int64_t n = 0; n < N; ++n) {
      const float* run = x + (n * C + c) * L;
#pragma omp simd reduction(+ : s)
      for (int64_t l = 0; l < L; ++l) s += run[l];
    }
    const double m = M > 0 ? s / double(M) : 0.0;
    double v = 0;
    for (int64_t n = 0; n < N; ++n) {
      const float* run = x + (n * C + c) * L;
#pragma omp simd reduction(+ : v)
      for (int64_t l = 0; l < L; ++l) v += (run[l] - m) * (run[l] - m);
    }
    const double var = M > 0 ? v / double(M) : 0.0;
    mean[c] = float(m);
    rstd[c] = float(1.0 / std::sqrt(var + double(eps)));
    if (running_mean && running_var && M > 1) {
      running_mean[c] = float((1.0 - momentum) * running_mean[c] + momentum * m);
      running_var[c] = float((1.0 - momentum) * running_var[c] + momentum * var * double(M) / double(M - 1));
    }
  }
}

void batch_norm_running_stats(const float* running_mean, const float* running_var, float eps, float* mean, float* rstd,
                              int64_t C) {
  for (int64_t c = 0; c < C; ++c) {
    mean[c] = running_mean[c];
    rstd[c] = float(1.0 / std::sqrt(double(running_var[c]) + double(eps)));
  }
}

void batch_norm_apply(const float* x, const float* mean, const float* rstd, const float* weight, const float* bias,
                      float* y, int64_t N, int64_t C, int64_t L) {
#pragma omp parallel for if (N * C * L > kParallelMin)
  for (int64_t nc = 0; nc < N * C; ++nc) {
    const int64_t c = nc % C;
    // y = x * scale + shift, with the channel's statistics and affine folded into two numbers.
    const float scale = rstd[c] * (weight ? weight[c] : 1.0f);
    const float shift = (bias ? bias[c] : 0.0f) - mean[c] * scale;
    const float* xr = x + nc * L;
    float* yr = y + nc * L;
    for (int64_t l = 0; l < L; ++l) yr[l] = xr[l] * scale + shift;
  }
}

void batch_norm_backward(const float* x, const float* mean, const float* rstd, const float* weight, const float* g,
                         bool batch_stats, float* gx, float* gweight, float* gbias, int64_t N, int64_t C, int64_t L) {
  const double M = double(N * L);
#pragma omp parallel for if (N * C * L > kParallelMin)
  for (int64_t c = 0; c < C; ++c) {
    const float m = mean[c], rs = rstd[c];
    double sum_g = 0, sum_gxhat = 0;
    for (int64_t n = 0; n < N; ++n) {
      const float* xr = x + (n * C + c) * L;
      const float* gr = g + (n * C + c) * L;
#pragma omp simd reduction(+ : sum_g, sum_gxhat)
      for (int64_t l = 0; l < L; ++l) {
        sum_g += gr[l];
        sum_gxhat += double(gr[l]) * double((xr[l] - m) * rs);
      }
    }
    if (gweight) gweight[c] = float(sum_gxhat);
    if (gbias) gbias[c] = float(sum_g);
    if (!gx) continue;
    const float scale = rs * (weight ? weight[c] : 1.0f);
    // Batch statistics depend on x too: subtract the grad's mean and its projection on xhat.
    const float a = batch_stats ? float(sum_g / M) : 0.0f;
    const float b = batch_stats ? float(sum_gxhat / M) : 0.0f;
    for (int64_t n = 0; n < N; ++n) {
      const float* xr = x + (n * C + c) * L;
      const float* gr = g + (n * C + c) * L;
      float* gxr = gx + (n * C + c) * L;
      for (int64_t l = 0; l < L; ++l) gxr[l] = scale * (gr[l] - a - (xr[l] - m) * rs * b);
    }
  }
}

}  // namespace msmix::cpu
