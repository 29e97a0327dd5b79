// Error checks for CUDA builds (included by .cu files only).
// CUDA_CHECK(call): throws msmix::Error naming the call, file:line and CUDA's error string.
// CUDA_CHECK_LAUNCH("kernel"): after a <<<...>>> launch; throws on a bad launch. With MSMIX_CUDA_SYNC=1 in the
// environment it also synchronises, so an asynchronous fault (illegal address, ...) is blamed on the kernel
// that caused it instead of on the next copy (slow: for debugging and bench/gpucheck.sh's first test pass).
#pragma once
#include <cuda_runtime.h>

#include "engine/cuda_runtime.h"
#include "engine/error.h"

#define CUDA_CHECK(call)                                                                          \
  do {                                                                                            \
    cudaError_t err_ = (call);                                                                    \
    if (err_ != cudaSuccess)                                                                      \
      throw ::msmix::Error(fmt::format("{} failed at {}:{}: {}", #call, __FILE__, __LINE__,       \
                                       cudaGetErrorString(err_)));                                \
  } while (0)

#define CUDA_CHECK_LAUNCH(kernel) ::msmix::cuda::check_launch(kernel, __FILE__, __LINE__)

namespace msmix::cuda {

bool sync_after_launch();  // MSMIX_CUDA_SYNC=1, read once (engine/cuda/runtime.cu)

inline void check_launch(const char* kernel, const char* file, int line) {
  count_queued();
  cudaError_t err = cudaGetLastError();
  if (err == cudaSuccess && sync_after_launch() && !capturing()) err = cudaDeviceSynchronize();
  if (err != cudaSuccess)
    throw ::msmix::Error(
        fmt::format("CUDA kernel {} failed at {}:{}: {}", kernel, file, line, cudaGetErrorString(err)));
}

}  // namespace msmix::cuda
