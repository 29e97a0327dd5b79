#include "ops/cpu/softmax.h"

#include "ops/cpu/fast_math.h"

namespace msmix::cpu {
namespace {

constexpr int64_t kParallelMin = 1 << 14;  // elements below which threads cost more than they save

}  // namespace

void softmax_forward(const float* x, float* y, int64_t R, int64_t C, bool log) {
  const VecKernels& k = vec_kernels();
#pragma omp parallel for if (R * C > kParallelMin)
  for (int64_t r = 0; r < R; ++r) k.softmax_row(x + r * C, y + r * C, C, log);
}

void softmax_backward(const float* y, const float* g, float* gx, int64_t R, int64_t C, bool log) {
  const VecKernels& k = vec_kernels();
#pragma omp parallel for if (R * C > kParallelMin)
  for (int64_t r = 0; r < R; ++r) k.softmax_row_backward(y + r * C, g + r * C, gx + r * C, C, log);
}

}  // namespace msmix::cpu
