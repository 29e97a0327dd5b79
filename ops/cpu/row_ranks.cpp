#include "ops/cpu/row_ranks.h"

namespace msmix::cpu {

void row_ranks(const float* x, int64_t R, int64_t C, float* ranks) {
#pragma omp parallel for if (R * C * C > (1 << 16))
  for (int64_t r = 0; r < R; ++r) {
    const float* row = x + r * C;
    for (int64_t c = 0; c < C; ++c) {
      int64_t before = 0;
      for (int64_t j = 0; j < C; ++j) before += row[j] > row[c] || (j < c && row[j] == row[c]);
      ranks[r * C + c] = float(before);
    }
  }
}

}  // namespace msmix::cpu
