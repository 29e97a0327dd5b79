// Shared pieces of the CUDA kernels: launch sizes, the grid-stride loop, group reductions, scratch memory.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "engine/allocator.h"
#include "engine/cuda/check.h"

namespace msmix::cuda {

constexpr int kThreads = 256;              // threads per block for flat (elementwise) kernels
constexpr int64_t kMaxBlocks = 1 << 16;    // grid cap: larger inputs loop (grid-stride), 16M elements per pass

// Blocks for n independent items at `threads` per block, at least 1 and at most kMaxBlocks.
inline unsigned blocks_for(int64_t n, int threads = kThreads) {
  return unsigned(std::max<int64_t>(1, std::min<int64_t>((n + threads - 1) / threads, kMaxBlocks)));
}

// Every index in [0, n) exactly once, whatever the grid size.
#define MSMIX_GRID_LOOP(i, n)                                                                 \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n);                   \
       i += int64_t(blockDim.x) * gridDim.x)

// Elementwise work over [0, n) with kUnroll items per thread per round, a grid-stride apart (so each load is
// still coalesced): `load(i)` for all of a round's items is issued before any `store(i, value)`, so a thread
// keeps kUnroll loads in flight. With one item per thread the unary kernels reached about half of an H200's
// copy bandwidth (gpucheck, 2026-11-27). Launch with blocks_for_unrolled(n).
constexpr int kUnroll = 4;
inline unsigned blocks_for_unrolled(int64_t n) { return blocks_for((n + kUnroll - 1) / kUnroll); }

template <class Load, class Store>
__device__ __forceinline__ void unrolled_map(int64_t n, Load load, Store store) {
  const int64_t stride = int64_t(blockDim.x) * gridDim.x;
  for (int64_t base = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; base < n; base += kUnroll * stride) {
    decltype(load(base)) v[kUnroll];
#pragma unroll
    for (int k = 0; k < kUnroll; ++k)
      if (base + k * stride < n) v[k] = load(base + k * stride);
#pragma unroll
    for (int k = 0; k < kUnroll; ++k)
      if (base + k * stride < n) store(base + k * stride, v[k]);
  }
}

// A row of at most 32 * N floats held in one warp's registers: lane l keeps columns l, l + 32, ..., so each
// load is coalesced and all N are in flight at once; the row kernels then read DRAM once per row instead of
// once per pass. Columns past C hold `pad`. Dispatch on C with warp_row_regs (below).
template <int N>
struct WarpRow {
  float v[N];
  __device__ __forceinline__ void load(const float* row, int64_t C, int lane, float pad) {
#pragma unroll
    for (int k = 0; k < N; ++k) v[k] = lane + 32 * k < C ? row[lane + 32 * k] : pad;
  }
};
// The N of a row of C <= 1024 columns: the smallest power of two with 32 * N >= C.
inline int warp_row_regs(int64_t C) {
  int n = 1;
  while (32 * n < C) n *= 2;
  return n;
}
// Calls launch(std::integral_constant<int, N>{}) for the N that fits C (C <= 1024).
template <class Launch>
void with_warp_row_regs(int64_t C, Launch launch) {
  switch (warp_row_regs(C)) {
    case 1: return launch(std::integral_constant<int, 1>{});
    case 2: return launch(std::integral_constant<int, 2>{});
    case 4: return launch(std::integral_constant<int, 4>{});
    case 8: return launch(std::integral_constant<int, 8>{});
    case 16: return launch(std::integral_constant<int, 16>{});
    default: return launch(std::integral_constant<int, 32>{});
  }
}

// Reduction of one value per thread over a group of G consecutive threads (G = 32: a warp; G = blockDim.x:
// the block, up to 1024). Every thread of the group gets the result. `scratch` holds one T per warp of the
// block (shared memory; used only when G > 32); all threads of the block must call it together.
template <int G, class T, class Op>
__device__ T group_reduce(T v, Op op, T* scratch) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  if (G <= 32) return v;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = G / 32;
  __syncthreads();  // the previous call's readers are done with scratch
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T r = scratch[0];
  for (int w = 1; w < warps; ++w) r = op(r, scratch[w]);
  return r;
}

struct SumOp {
  template <class T>
  __device__ T operator()(T a, T b) const { return a + b; }
};
// max that lets a NaN through, as the CPU twin (`isnan(v) || v > m ? v : m`).
struct MaxOp {
  __device__ float operator()(float a, float b) const { return isnan(b) || b > a ? b : a; }
};

// Device scratch from the caching allocator, freed at scope exit. Safe to free while kernels that use it
// are queued: everything runs on one stream, so a later owner of the block is ordered after them.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t count) : bytes_(std::max<size_t>(count, 1) * sizeof(float)) {
    ptr_ = static_cast<float*>(allocate(Device::cuda(), bytes_));
  }
  ~DeviceBuffer() { deallocate(Device::cuda(), ptr_, bytes_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  float* get() const { return ptr_; }

 private:
  size_t bytes_;
  float* ptr_;
};

}  // namespace msmix::cuda
