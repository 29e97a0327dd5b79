#include "ops/cpu/fast_math.h"

namespace msmix::cpu {

static const bool kHasAvx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");

double exp_shift_sum(const float* x, float* y, int64_t n, float shift) {
  if (kHasAvx2) return exp_shift_sum_avx2(x, y, n, shift);
  return exp_shift_sum_vec<Vec4, IVec4>(x, y, n, shift);
}

}  // namespace msmix::cpu
