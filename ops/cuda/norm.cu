// layer_norm over the last dim of [R, C]: forward y = (x - mean) * rstd * weight + bias, saving mean and
// rstd per row; backward gx per row, and gweight = sum_r g * xhat, gbias = sum_r g (the CPU twin's formulas,
// ops/cpu/norm.h, with its double accumulation of the row statistics).
// Launch: rows of C <= 1024 go to a warp each (8 rows per 256-thread block, grid-stride), held in its
// registers so x and g are read from memory once; the backward's gweight / gbias are per-warp partial column
// sums over a capped grid, summed by reduce_dim (ops/cuda/reduce.cu). Longer rows get a block each, and
// their column sums go through reduce_dim over [R, C] (g directly, g * xhat written by the row kernel).
// Bound: memory.
#include <cmath>

#include "ops/cuda/common.cuh"
#include "ops/cuda/kernels.h"

namespace msmix::cuda {
namespace {

constexpr int64_t kWarpRowMax = 1024;  // longest row given to one warp
constexpr unsigned kPartialBlocks = 128;  // grid of the backward with affine grads: 1024 warps' partial sums

template <int G>
__global__ void forward_kernel(const float* x, const float* weight, const float* bias, float* y, float* mean,
                               float* rstd, int64_t R, int64_t C, float eps) {
  __shared__ double scratch[32];
  const int t = threadIdx.x % G;
  const int64_t rows_per_block = blockDim.x / G;
  for (int64_t r = blockIdx.x * rows_per_block + threadIdx.x / G; r < R; r += gridDim.x * rows_per_block) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    // Two passes in double: the mean, then the biased variance around it (no catastrophic cancellation).
    double s = 0;
    for (int64_t c = t; c < C; c += G) s += xr[c];
    s = group_reduce<G>(s, SumOp(), scratch);
    const float m = float(s / double(C));
    double v = 0;
    for (int64_t c = t; c < C; c += G) v += double(xr[c] - m) * double(xr[c] - m);
    v = group_reduce<G>(v, SumOp(), scratch);
    const float rs = float(1.0 / sqrt(v / double(C) + double(eps)));
    if (t == 0) mean[r] = m, rstd[r] = rs;
    for (int64_t c = t; c < C; c += G) {
      const float xhat = (xr[c] - m) * rs;
      yr[c] = weight ? (bias ? xhat * weight[c] + bias[c] : xhat * weight[c]) : (bias ? xhat + bias[c] : xhat);
    }
  }
}

// Rows of C <= 1024 in a warp's registers (WarpRow<N>): x read once; the same sums in the same order as
// forward_kernel<32>, so the same results. At most 80 registers (three blocks an SM; ptxas: no spills): left
// alone, nvcc took 92 at N = 32, two blocks, 16 warps an SM, too few loads in flight for the bandwidth (the
// H200 measured 62% of copy).
template <int N>
__global__ void __launch_bounds__(kThreads, 3)
    forward_warp_kernel(const float* x, const float* weight, const float* bias, float* y, float* mean, float* rstd,
                        int64_t R, int64_t C, float eps) {
  const int lane = threadIdx.x % 32;
  const int64_t rows_per_block = blockDim.x / 32;
  for (int64_t r = blockIdx.x * rows_per_block + threadIdx.x / 32; r < R; r += gridDim.x * rows_per_block) {
    WarpRow<N> row;
    row.load(x + r * C, C, lane, 0.0f);
    double s = 0;
#pragma unroll
    for (int k = 0; k < N; ++k) s += row.v[k];  // the padding adds zeros
    s = group_reduce<32>(s, SumOp(), static_cast<double*>(nullptr));
    const float m = float(s / double(C));
    double v = 0;
#pragma unroll
    for (int k = 0; k < N; ++k)
      if (lane + 32 * k < C) v += double(row.v[k] - m) * double(row.v[k] - m);
    v = group_reduce<32>(v, SumOp(), static_cast<double*>(nullptr));
    const float rs = float(1.0 / sqrt(v / double(C) + double(eps)));
    if (lane == 0) mean[r] = m, rstd[r] = rs;
    float* yr = y + r * C;
#pragma unroll
    for (int k = 0; k < N; ++k) {
      const int64_t c = lane + 32 * k;
      if (c >= C) continue;
      const float xhat = (row.v[k] - m) * rs;
      yr[c] = weight ? (bias ? xhat * weight[c] + bias[c] : xhat * weight[c]) : (bias ? xhat + bias[c] : xhat);
    }
  }
}

// dxhat = g * weight;  gx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)). gx or gxhat may be null;
// gxhat [R, C] = g * xhat, the terms of gweight's column sums.
// Rows of C <= 1024 with x and g in a warp's registers (one read of each). gx may be null. gw_part / gb_part,
// when given, are [warps, C]: each warp's column sums of g * xhat / g over the rows it visited (its lane's
// columns stay in registers across rows), which the launcher sums over warps. A fixed grid keeps that order,
// and so the result, the same on every run.
template <int N>
__global__ void backward_warp_kernel(const float* x, const float* weight, const float* mean, const float* rstd,
                                     const float* g, float* gx, float* gw_part, float* gb_part, int64_t R, int64_t C) {
  const int lane = threadIdx.x % 32;
  const int64_t rows_per_block = blockDim.x / 32, warp = blockIdx.x * rows_per_block + threadIdx.x / 32;
  float gw_acc[N] = {}, gb_acc[N] = {};
  for (int64_t r = warp; r < R; r += gridDim.x * rows_per_block) {
    WarpRow<N> xhat, d;
    xhat.load(x + r * C, C, lane, 0.0f);
    d.load(g + r * C, C, lane, 0.0f);
    const float m = mean[r], rs = rstd[r];
#pragma unroll
    for (int k = 0; k < N; ++k) {
      xhat.v[k] = (xhat.v[k] - m) * rs;
      gw_acc[k] += d.v[k] * xhat.v[k];
      gb_acc[k] += d.v[k];
    }
    if (!gx) continue;
    double sum_d = 0, sum_dx = 0;
#pragma unroll
    for (int k = 0; k < N; ++k) {
      const int64_t c = lane + 32 * k;
      if (c >= C) continue;
      if (weight) d.v[k] *= weight[c];
      sum_d += d.v[k];
      sum_dx += double(d.v[k]) * double(xhat.v[k]);
    }
    sum_d = group_reduce<32>(sum_d, SumOp(), static_cast<double*>(nullptr));
    sum_dx = group_reduce<32>(sum_dx, SumOp(), static_cast<double*>(nullptr));
    const float a = float(sum_d / double(C)), b = float(sum_dx / double(C));
    float* gxr = gx + r * C;
#pragma unroll
    for (int k = 0; k < N; ++k) {
      const int64_t c = lane + 32 * k;
      if (c < C) gxr[c] = rs * (d.v[k] - a - xhat.v[k] * b);
    }
  }
#pragma unroll
  for (int k = 0; k < N; ++k) {
    const int64_t c = lane + 32 * k;
    if (c >= C) continue;
    if (gw_part) gw_part[warp * C + c] = gw_acc[k];
    if (gb_part) gb_part[warp * C + c] = gb_acc[k];
  }
}

template <int G>
__global__ void backward_kernel(const float* x, const float* weight, const float* mean, const float* rstd,
                                const float* g, float* gx, float* gxhat, int64_t R, int64_t C) {
  __shared__ double scratch[32];
  const int t = threadIdx.x % G;
  const int64_t rows_per_block = blockDim.x / G;
  for (int64_t r = blockIdx.x * rows_per_block + threadIdx.x / G; r < R; r += gridDim.x * rows_per_block) {
    const float* xr = x + r * C;
    const float* gr = g + r * C;
    const float m = mean[r], rs = rstd[r];
    if (gxhat)
      for (int64_t c = t; c < C; c += G) gxhat[r * C + c] = gr[c] * (xr[c] - m) * rs;
    if (!gx) continue;
    double sum_d = 0, sum_dx = 0;
    for (int64_t c = t; c < C; c += G) {
      const float d = weight ? gr[c] * weight[c] : gr[c];
      sum_d += d;
      sum_dx += double(d) * double((xr[c] - m) * rs);
    }
    sum_d = group_reduce<G>(sum_d, SumOp(), scratch);
    sum_dx = group_reduce<G>(sum_dx, SumOp(), scratch);
    const float a = float(sum_d / double(C)), b = float(sum_dx / double(C));
    float* gxr = gx + r * C;
    for (int64_t c = t; c < C; c += G) {
      const float d = weight ? gr[c] * weight[c] : gr[c];
      gxr[c] = rs * (d - a - (xr[c] - m) * rs * b);
    }
  }
}

unsigned row_blocks(int64_t R, int G) { return blocks_for(R, kThreads / G); }

}  // namespace

void layer_norm_forward(const float* x, const float* weight, const float* bias, float* y, float* mean, float* rstd,
                        int64_t R, int64_t C, float eps) {
  if (R == 0) return;
  if (C <= kWarpRowMax) {
    with_warp_row_regs(C, [&](auto n) {
      forward_warp_kernel<decltype(n)::value><<<row_blocks(R, 32), kThreads>>>(x, weight, bias, y, mean, rstd, R, C,
                                                                                eps);
    });
  } else {
    forward_kernel<kThreads><<<row_blocks(R, kThreads), kThreads>>>(x, weight, bias, y, mean, rstd, R, C, eps);
  }
  CUDA_CHECK_LAUNCH("layer_norm forward_kernel");
}

void layer_norm_backward(const float* x, const float* weight, const float* mean, const float* rstd, const float* g,
                         float* gx, float* gweight, float* gbias, int64_t R, int64_t C) {
  if (C == 0) return;
  if (R > 0 && C <= kWarpRowMax && (gx || gweight)) {
    // One pass over x and g; the affine grads as per-warp partial column sums over a capped grid, then summed.
    const unsigned blocks = gweight ? std::min(row_blocks(R, 32), kPartialBlocks) : row_blocks(R, 32);
    const int64_t warps = int64_t(blocks) * (kThreads / 32);
    DeviceBuffer gw_part(gweight ? size_t(warps * C) : 0), gb_part(gweight && gbias ? size_t(warps * C) : 0);
    float* gw = gweight ? gw_part.get() : nullptr;
    float* gb = gweight && gbias ? gb_part.get() : nullptr;
    with_warp_row_regs(C, [&](auto n) {
      backward_warp_kernel<decltype(n)::value><<<blocks, kThreads>>>(x, weight, mean, rstd, g, gx, gw, gb, R, C);
    });
    CUDA_CHECK_LAUNCH("layer_norm backward_warp_kernel");
    if (gw) reduce_dim(ReduceOp::Sum, gw, gweight, 1, warps, C);
    if (gb) reduce_dim(ReduceOp::Sum, gb, gbias, 1, warps, C);
    else if (gbias) reduce_dim(ReduceOp::Sum, g, gbias, 1, R, C);
    return;
  }
  if (R > 0 && (gx || gweight)) {  // rows longer than a warp holds: a block per row, g * xhat summed after
    DeviceBuffer gxhat(gweight ? size_t(R * C) : 0);
    float* gxhat_ptr = gweight ? gxhat.get() : nullptr;
    backward_kernel<kThreads><<<row_blocks(R, kThreads), kThreads>>>(x, weight, mean, rstd, g, gx, gxhat_ptr, R, C);
    CUDA_CHECK_LAUNCH("layer_norm backward_kernel");
    if (gweight) reduce_dim(ReduceOp::Sum, gxhat_ptr, gweight, 1, R, C);
  } else if (gweight) {
    reduce_dim(ReduceOp::Sum, nullptr, gweight, 1, 0, C);  // no rows: zeros
  }
  if (gbias) reduce_dim(ReduceOp::Sum, g, gbias, 1, R, C);
}

}  // namespace msmix::cuda
