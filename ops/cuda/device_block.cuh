// The CUDA block as the Block of ops/cuda/block_code.h, for the kernels whose bodies live in *_block.h headers.
#pragma once
#include <cuda_runtime.h>

namespace msmix::cuda {

struct DeviceBlock {
  __device__ int block() const { return blockIdx.x; }
  __device__ int blocks() const { return gridDim.x; }
  __device__ int thread() const { return threadIdx.x; }
  __device__ int threads() const { return blockDim.x; }
  __device__ void sync() const { __syncthreads(); }
  __device__ float shfl_xor(float v, int mask) const { return __shfl_xor_sync(0xffffffffu, v, mask); }
  __device__ double shfl_xor(double v, int mask) const { return __shfl_xor_sync(0xffffffffu, v, mask); }
  __device__ float shfl(float v, int src_lane) const { return __shfl_sync(0xffffffffu, v, src_lane); }
  __device__ float* shared() const {
    extern __shared__ float dynamic_shared[];
    return dynamic_shared;
  }
};

}  // namespace msmix::cuda
