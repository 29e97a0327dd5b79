// Descending ranks within rows on the GPU (twin: ops/cpu/row_ranks.cpp, the same comparisons): one thread per
// (row, column) entry, counting the row's entries that sort before it. For the few columns of a gate.
#include "ops/cuda/common.cuh"
#include "ops/cuda/kernels.h"

namespace msmix::cuda {
namespace {

__global__ void row_ranks_kernel(const float* x, int64_t R, int64_t C, float* ranks) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= R * C) return;
  const int64_t r = i / C, c = i % C;
  const float* row = x + r * C;
  const float v = row[c];
  int64_t before = 0;
  for (int64_t j = 0; j < C; ++j) before += row[j] > v || (j < c && row[j] == v);
  ranks[i] = float(before);
}

}  // namespace

void row_ranks(const float* x, int64_t R, int64_t C, float* ranks) {
  const int64_t n = R * C;
  if (n == 0) return;
  const int threads = 256;
  row_ranks_kernel<<<unsigned((n + threads - 1) / threads), threads>>>(x, R, C, ranks);
  CUDA_CHECK_LAUNCH("row_ranks_kernel");
}

}  // namespace msmix::cuda
