// CUDA_CHECK(call): throws msmix::Error naming the call, file:line and CUDA's error string.
#pragma once
#include <cuda_runtime.h>

#include "engine/error.h"

#define CUDA_CHECK(call)                                                                          \
  do {                                                                                            \
    cudaError_t err_ = (call);                                                                    \
    if (err_ != cudaSuccess)                                                                      \
      throw ::msmix::Error(fmt::format("{} failed at {}:{}: {}", #call, __FILE__, __LINE__,       \
                                       cudaGetErrorString(err_)));                                \
  } while (0)
