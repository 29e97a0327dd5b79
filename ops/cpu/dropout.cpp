#include "ops/cpu/dropout.h"

#include <algorithm>

#include "engine/philox.h"

namespace msmix::cpu {

void dropout_apply(const float* in, float* out, int64_t n, float p, float scale, uint64_t seed, uint64_t offset) {
  // One Philox block gives the draws of four consecutive elements: word j of block b is element 4b + j,
  // exactly philox::uniform(seed, offset, 4b + j). Work goes in tiles of blocks: first the Philox words of
  // the whole tile (a loop over independent blocks, which vectorises), then the mask-and-scale pass.
  constexpr int64_t kTile = 256;  // blocks per tile: 4 KiB of words, stays in L1
  const int64_t blocks = (n + 3) / 4, tiles = (blocks + kTile - 1) / kTile;
#pragma omp parallel for if (n > (1 << 14))
  for (int64_t tile = 0; tile < tiles; ++tile) {
    alignas(64) uint32_t words[4 * kTile];
    const int64_t b0 = tile * kTile, nb = std::min(kTile, blocks - b0);
#pragma omp simd
    for (int64_t j = 0; j < nb; ++j) {
      const philox::U32x4 w = philox::block(seed, offset, uint64_t(b0 + j));
      for (int k = 0; k < 4; ++k) words[4 * j + k] = w.v[k];
    }
    const int64_t i0 = 4 * b0, count = std::min(4 * nb, n - i0);
    for (int64_t k = 0; k < count; ++k) out[i0 + k] = philox::to_unit(words[k]) >= p ? in[i0 + k] * scale : 0.0f;
  }
}

}  // namespace msmix::cpu
