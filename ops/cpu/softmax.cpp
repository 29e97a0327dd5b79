#include "ops/cpu/softmax.h"

#include <cmath>

#include "ops/cpu/fast_math.h"

namespace msmix::cpu {
namespace {

constexpr int64_t kParallelMin = 1 << 14;  // elements below which threads cost more than they save

}  // namespace

void softmax_forward(const float* x, float* y, int64_t R, int64_t C, bool log) {
#pragma omp parallel for if (R * C > kParallelMin)
  for (int64_t r = 0; r < R; ++r) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    float m = -INFINITY;
#pragma omp simd reduction(max : m)
    for (int64_t c = 0; c < C; ++c) m = xr[c] > m ? xr[c] : m;
    // An all -inf row has m = -inf and x - m = NaN: the NaN row PyTorch gives too.
    if (log) {
      float s = float(exp_shift_sum(xr, yr, C, -m));  // yr is scratch here
      const float shift = m + std::log(s);
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) yr[c] = xr[c] - shift;
    } else {
      const float inv = float(1.0 / exp_shift_sum(xr, yr, C, -m));
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) yr[c] *= inv;
    }
  }
}

void softmax_backward(const float* y, const float* g, float* gx, int64_t R, int64_t C, bool log) {
#pragma omp parallel for if (R * C > kParallelMin)
  for (int64_t r = 0; r < R; ++r) {
    const float* yr = y + r * C;
    const float* gr = g + r * C;
    float* gxr = gx + r * C;
    float s = 0;
    if (log) {
#pragma omp simd reduction(+ : s)
      for (int64_t c = 0; c < C; ++c) s += gr[c];
      exp_array(yr, gxr, C);  // softmax probabilities from the log-probabilities
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) gxr[c] = gr[c] - gxr[c] * s;
    } else {
#pragma omp simd reduction(+ : s)
      for (int64_t c = 0; c < C; ++c) s += gr[c] * yr[c];
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) gxr[c] = yr[c] * (gr[c] - s);
    }
  }
}

}  // namespace msmix::cpu
