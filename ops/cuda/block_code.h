// Kernel code written once for two compilers (the ops/cuda/*_block.h headers): nvcc builds it into CUDA
// kernels, and CPU tests (tests/ops/test_*_block.cpp, through tests/ops/emulated_block.h) run the same code
// with one std::thread per CUDA thread, so the kernels' indexing, phases and warp exchanges are checked in CI,
// where no GPU is.
//
// The code reaches the hardware only through a Block (a template parameter):
//   block(), blocks()    blockIdx.x, gridDim.x
//   thread(), threads()  threadIdx.x, blockDim.x
//   sync()               __syncthreads()
//   shfl_xor(v, mask)    __shfl_xor_sync(all lanes, v, mask), v a float or a double: every lane of the warp
//                        must call it
//   shfl(v, src_lane)    __shfl_sync(all lanes, v, src_lane), v a float: lane src_lane's v, likewise
//   shared()             the block's dynamic shared memory (floats)
// On the GPU that is ops/cuda/device_block.cuh's DeviceBlock.
#pragma once
#include <math.h>

#ifdef __CUDACC__
#define MSMIX_BLOCK_FN __device__ __forceinline__
#define MSMIX_HOST_DEVICE __host__ __device__
#define MSMIX_UNROLL _Pragma("unroll")
#else
#define MSMIX_BLOCK_FN inline
#define MSMIX_HOST_DEVICE
#define MSMIX_UNROLL
#endif

namespace msmix::rn {
// Float operations rounded one by one, which nvcc may not contract into an FMA (the optimizers' updates equal
// the CPU's bit for bit): the __f*_rn intrinsics on the device, the plain operations on the host.
#ifdef __CUDACC__
__device__ __forceinline__ float add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ float sub(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ float mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ float div(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ float sqrt(float a) { return __fsqrt_rn(a); }
#else
inline float add(float a, float b) { return a + b; }
inline float sub(float a, float b) { return a - b; }
inline float mul(float a, float b) { return a * b; }
inline float div(float a, float b) { return a / b; }
inline float sqrt(float a) { return sqrtf(a); }
#endif
}  // namespace msmix::rn
