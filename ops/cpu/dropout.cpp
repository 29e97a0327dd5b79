#include "ops/cpu/dropout.h"

#include "engine/philox.h"

namespace msmix::cpu {

void dropout_apply(const float* in, float* out, int64_t n, float p, float scale, uint64_t seed, uint64_t offset) {
  // One Philox block gives the draws of four consecutive elements: word j of block b is element 4b + j,
  // exactly philox::uniform(seed, offset, 4b + j).
  const int64_t blocks = (n + 3) / 4;
#pragma omp parallel for if (n > (1 << 14))
  for (int64_t b = 0; b < blocks; ++b) {
    const philox::U32x4 words = philox::block(seed, offset, uint64_t(b));
    const int64_t end = n - 4 * b < 4 ? n - 4 * b : 4;
    for (int64_t j = 0; j < end; ++j) {
      const int64_t i = 4 * b + j;
      out[i] = philox::to_unit(words.v[j]) >= p ? in[i] * scale : 0.0f;
    }
  }
}

}  // namespace msmix::cpu
