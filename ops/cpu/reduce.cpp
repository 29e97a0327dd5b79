#include "ops/cpu/reduce.h"

#include <cmath>
#include <limits>

namespace msmix::cpu {

void reduce_dim(ReduceOp op, const float* x, float* out, int64_t outer, int64_t D, int64_t inner) {
  const bool is_max = op == ReduceOp::Max;
  const float init = is_max ? -std::numeric_limits<float>::infinity() : 0.0f;
  const int64_t work = outer * D * inner;
  if (inner == 1) {
    // Reducing the last dim: one contiguous row per output. Sum accumulates in double for accuracy on
    // long rows; vectorises as a reduction.
#pragma omp parallel for if (work > (1 << 15))
    for (int64_t o = 0; o < outer; ++o) {
      const float* row = x + o * D;
      if (is_max) {
        float m = init;
        for (int64_t d = 0; d < D; ++d) m = std::isnan(row[d]) || row[d] > m ? row[d] : m;
        out[o] = m;
      } else {
        double s = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t d = 0; d < D; ++d) s += row[d];
        out[o] = float(s);
      }
    }
    return;
  }
  // Reducing a middle dim: add whole rows of length `inner` (contiguous, vectorisable).
#pragma omp parallel for if (work > (1 << 15))
  for (int64_t o = 0; o < outer; ++o) {
    float* dst = out + o * inner;
    for (int64_t i = 0; i < inner; ++i) dst[i] = init;
    for (int64_t d = 0; d < D; ++d) {
      const float* src = x + (o * D + d) * inner;
      if (is_max) {
        for (int64_t i = 0; i < inner; ++i) dst[i] = std::isnan(src[i]) || src[i] > dst[i] ? src[i] : dst[i];
      } else {
        for (int64_t i = 0; i < inner; ++i) dst[i] += src[i];
      }
    }
  }
}

}  // namespace msmix::cpu
