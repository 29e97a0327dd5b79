// MS-Mix's pair selection on the GPU (twin: ops/cpu/pair_selection.cpp): one launch of one block, whose body
// lives in ops/cuda/pair_selection_block.h (a CPU test runs the same code against the twin). Nothing is read back
// and nothing allocated here: the caller passes the workspace, so a captured CUDA graph replays it.
#include "ops/cuda/common.cuh"
#include "ops/cuda/device_block.cuh"
#include "ops/cuda/kernels.h"
#include "ops/cuda/pair_selection_block.h"

namespace msmix::cuda {
namespace {

__global__ void __launch_bounds__(pair_selection_block::kThreads)
    select_pairs_kernel(const float* similarity, int64_t B, float delta, const float* draws, float* pairs, float* stats,
                        float* workspace) {
  pair_selection_block::select_pairs(DeviceBlock{}, similarity, B, delta, draws, pairs, stats, workspace);
}

}  // namespace

int64_t pair_selection_workspace(int64_t B) { return pair_selection_block::workspace_floats(B); }

void select_pairs(const float* similarity, int64_t B, float delta, const float* draws, float* pairs, float* stats,
                  float* workspace) {
  constexpr int threads = pair_selection_block::kThreads;  // 512; not cuda::kThreads (256)
  const size_t shared_bytes = size_t(pair_selection_block::shared_floats(threads)) * sizeof(float);
  select_pairs_kernel<<<1, threads, shared_bytes>>>(similarity, B, delta, draws, pairs, stats, workspace);
  CUDA_CHECK_LAUNCH("select_pairs_kernel");
}

}  // namespace msmix::cuda
