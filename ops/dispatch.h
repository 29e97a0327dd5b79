// The device dispatch point of every op: `if (dev.is_cuda()) <cuda kernel> else <cpu kernel>`.
// Until an op's CUDA kernel exists (the CUDA backend issue), its CUDA branch calls cuda_kernel_missing,
// which throws a clear error instead of touching device memory from the host.
#pragma once
#include "engine/error.h"
#include "engine/tensor.h"

namespace msmix {

[[noreturn]] inline void cuda_kernel_missing(const char* op) {
  throw Error(fmt::format("{}: no CUDA kernel yet; move the tensors to the CPU with .to(Device::cpu())", op));
}

}  // namespace msmix
