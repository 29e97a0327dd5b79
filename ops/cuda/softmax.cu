// softmax and log_softmax over the last dim of [R, C], forward and backward, with the CPU twin's formulas
// (ops/cpu/softmax.h): rows shifted by their max; -inf entries give probability 0; an all -inf row gives NaN.
// Launch: a group of G threads per row, G = 32 (a warp, 8 rows per 256-thread block) for C <= 1024, else
// G = 256 (a block per row); rows are looped grid-stride. Each row is read three times (max, sum, write), the
// rereads hitting L1/L2 for the row lengths attention uses. Bound: memory.
// An opt-in forward (MSMIX_CUDA_SOFTMAX=registers) holds a row of up to 1024 in a warp's registers, as
// layer_norm does: one read of x, one exp per entry, the same sums in the same order (so the same bits). A first
// try of it measured 2.5x slower on an H200 (0.132 vs 0.054 ms at 16384 x 1024, cause not found); this one
// takes exp once per entry and the log choice at compile time, and waits for gpucheck to be timed beside the
// three-pass kernel (PyTorch's register-held kernel ran at 91% of copy there, ours at 65%).
#include <cmath>

#include "engine/env_choice.h"
#include "ops/cuda/common.cuh"
#include "ops/cuda/kernels.h"

namespace msmix::cuda {
namespace {

constexpr int64_t kWarpRowMax = 1024;  // longest row given to one warp

struct MaxIgnoringNan {  // the CPU's `x > m ? x : m`: a NaN input does not become the max (it poisons the sum)
  __device__ float operator()(float a, float b) const { return b > a ? b : a; }
};

template <int G>
__global__ void forward_kernel(const float* x, float* y, int64_t R, int64_t C, bool log) {
  __shared__ float scratch[32];
  const int t = threadIdx.x % G;
  const int64_t rows_per_block = blockDim.x / G;
  for (int64_t r = blockIdx.x * rows_per_block + threadIdx.x / G; r < R; r += gridDim.x * rows_per_block) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    float m = -INFINITY;
    for (int64_t c = t; c < C; c += G) m = xr[c] > m ? xr[c] : m;
    m = group_reduce<G>(m, MaxIgnoringNan(), scratch);
    float s = 0;
    for (int64_t c = t; c < C; c += G) s += expf(xr[c] - m);
    s = group_reduce<G>(s, SumOp(), scratch);
    if (log) {
      const float shift = m + logf(s);
      for (int64_t c = t; c < C; c += G) yr[c] = xr[c] - shift;
    } else {
      const float inv = 1.0f / s;
      for (int64_t c = t; c < C; c += G) yr[c] = expf(xr[c] - m) * inv;
    }
  }
}

// Rows of C <= 1024 in a warp's registers (WarpRow<N>, padded with -inf; at most 80 registers, three blocks an
// SM, as layer_norm's forward_warp_kernel): the max, then each entry's exp kept in its register (softmax) while
// summing, then one write. Lane sums run over k in the order forward_kernel<32> takes the lane's columns, and
// the lanes' sums meet in the same tree: the same values.
template <int N, bool kLog>
__global__ void __launch_bounds__(kThreads, 3)
    forward_registers_kernel(const float* x, float* y, int64_t R, int64_t C) {
  const int lane = threadIdx.x % 32;
  const int64_t rows_per_block = blockDim.x / 32;
  for (int64_t r = blockIdx.x * rows_per_block + threadIdx.x / 32; r < R; r += gridDim.x * rows_per_block) {
    WarpRow<N> row;
    row.load(x + r * C, C, lane, -INFINITY);
    float m = -INFINITY;
#pragma unroll
    for (int k = 0; k < N; ++k) m = row.v[k] > m ? row.v[k] : m;
    m = group_reduce<32>(m, MaxIgnoringNan(), static_cast<float*>(nullptr));
    float s = 0;
#pragma unroll
    for (int k = 0; k < N; ++k) {
      const float e = expf(row.v[k] - m);
      if (lane + 32 * k < C) s += e;
      if (!kLog) row.v[k] = e;
    }
    s = group_reduce<32>(s, SumOp(), static_cast<float*>(nullptr));
    float* yr = y + r * C;
    const float shift = m + logf(s), inv = 1.0f / s;
#pragma unroll
    for (int k = 0; k < N; ++k)
      if (lane + 32 * k < C) yr[lane + 32 * k] = kLog ? row.v[k] - shift : row.v[k] * inv;
  }
}

// softmax: gx = y * (g - sum(g * y));  log_softmax: gx = g - exp(y) * sum(g).
template <int G>
__global__ void backward_kernel(const float* y, const float* g, float* gx, int64_t R, int64_t C, bool log) {
  __shared__ float scratch[32];
  const int t = threadIdx.x % G;
  const int64_t rows_per_block = blockDim.x / G;
  for (int64_t r = blockIdx.x * rows_per_block + threadIdx.x / G; r < R; r += gridDim.x * rows_per_block) {
    const float* yr = y + r * C;
    const float* gr = g + r * C;
    float* gxr = gx + r * C;
    float s = 0;
    for (int64_t c = t; c < C; c += G) s += log ? gr[c] : gr[c] * yr[c];
    s = group_reduce<G>(s, SumOp(), scratch);
    if (log) {
      for (int64_t c = t; c < C; c += G) gxr[c] = gr[c] - expf(yr[c]) * s;
    } else {
      for (int64_t c = t; c < C; c += G) gxr[c] = yr[c] * (gr[c] - s);
    }
  }
}

// Blocks of 256 threads for R rows at G threads each.
unsigned row_blocks(int64_t R, int G) { return blocks_for(R, kThreads / G); }

int g_registers = -1;  // softmax_rows_in_registers(): -1 until MSMIX_CUDA_SOFTMAX is read

}  // namespace

bool softmax_rows_in_registers() {
  if (g_registers < 0) g_registers = env_choice("MSMIX_CUDA_SOFTMAX", {"passes", "registers"});
  return g_registers == 1;
}
void set_softmax_rows_in_registers(bool on) { g_registers = on; }

void softmax_forward(const float* x, float* y, int64_t R, int64_t C, bool log) {
  if (R == 0 || C == 0) return;
  if (C <= kWarpRowMax && softmax_rows_in_registers()) {
    with_warp_row_regs(C, [&](auto n) {
      constexpr int N = decltype(n)::value;
      if (log) forward_registers_kernel<N, true><<<row_blocks(R, 32), kThreads>>>(x, y, R, C);
      else forward_registers_kernel<N, false><<<row_blocks(R, 32), kThreads>>>(x, y, R, C);
    });
  } else if (C <= kWarpRowMax) {
    forward_kernel<32><<<row_blocks(R, 32), kThreads>>>(x, y, R, C, log);
  } else {
    forward_kernel<kThreads><<<row_blocks(R, kThreads), kThreads>>>(x, y, R, C, log);
  }
  CUDA_CHECK_LAUNCH("softmax forward_kernel");
}

void softmax_backward(const float* y, const float* g, float* gx, int64_t R, int64_t C, bool log) {
  if (R == 0 || C == 0) return;
  if (C <= kWarpRowMax) {
    backward_kernel<32><<<row_blocks(R, 32), kThreads>>>(y, g, gx, R, C, log);
  } else {
    backward_kernel<kThreads><<<row_blocks(R, kThreads), kThreads>>>(y, g, gx, R, C, log);
  }
  CUDA_CHECK_LAUNCH("softmax backward_kernel");
}

}  // namespace msmix::cuda
