// dropout (twin: ops/cpu/dropout.h): out[i] = in[i] * scale where philox::uniform(seed, offset, i) >= p,
// else in[i] * 0 (a NaN stays NaN). The mask is the CPU's bit for bit: both evaluate engine/philox.h (host + device) on
// the same (seed, offset, i). Launch: one thread per Philox block (4 elements: one 10-round block gives all four
// words), grid-stride. Bound: Philox's integer multiplies for small inputs, memory for large.
#include "engine/philox.h"
#include "ops/cuda/common.cuh"
#include "ops/cuda/kernels.h"

namespace msmix::cuda {
namespace {

// offset_base (a graph step's, engine/random.h) is added to offset when given.
__global__ void dropout_kernel(const float* in, float* out, int64_t n, float p, float scale, uint64_t seed,
                               uint64_t offset, const uint64_t* offset_base) {
  if (offset_base) offset += *offset_base;
  const int64_t blocks = (n + 3) / 4;
  MSMIX_GRID_LOOP(k, blocks) {
    const philox::U32x4 b = philox::block(seed, offset, uint64_t(k));
    for (int w = 0; w < 4; ++w) {
      const int64_t i = 4 * k + w;
      if (i < n) out[i] = in[i] * (philox::to_unit(b.v[w]) >= p ? scale : 0.0f);  // NaN stays NaN
    }
  }
}

}  // namespace

void dropout_apply(const float* in, float* out, int64_t n, float p, float scale, uint64_t seed, uint64_t offset,
                   const uint64_t* offset_base) {
  if (n == 0) return;
  dropout_kernel<<<blocks_for((n + 3) / 4), kThreads>>>(in, out, n, p, scale, seed, offset, offset_base);
  CUDA_CHECK_LAUNCH("dropout_kernel");
}

}  // namespace msmix::cuda
