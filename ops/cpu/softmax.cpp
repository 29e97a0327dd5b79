#include "ops/cpu/softmax.h"

#include <cmath>

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
    float s = 0;
    if (log) {
#pragma omp simd reduction(+ : s)
      for (int64_t c = 0; c < C; ++c) s += std::exp(xr[c] - m);
      const float shift = m + std::log(s);
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) yr[c] = xr[c] - shift;
    } else {
#pragma omp simd reduction(+ : s)
      for (int64_t c = 0; c < C; ++c) {
        yr[c] = std::exp(xr[c] - m);
        s += yr[c];
      }
      const float inv = 1.0f / s;
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
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) gxr[c] = gr[c] - std::exp(yr[c]) * s;
    } else {
#pragma omp simd reduction(+ : s)
      for (int64_t c = 0; c < C; ++c) s += gr[c] * yr[c];
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) gxr[c] = yr[c] * (gr[c] - s);
    }
  }
}

}  // namespace msmix::cpu
