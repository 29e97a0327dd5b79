// Compiled with -mavx2 -mfma (see the Makefile): only reached after a run-time CPU check.
#include "ops/cpu/fast_exp_impl.h"

namespace msmix::cpu {

typedef float Vec8 __attribute__((vector_size(32)));
typedef int32_t IVec8 __attribute__((vector_size(32)));

double exp_shift_sum_avx2(const float* x, float* y, int64_t n, float shift) {
  return exp_shift_sum_vec<Vec8, IVec8>(x, y, n, shift);
}

}  // namespace msmix::cpu
