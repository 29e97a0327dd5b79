// layer_norm over the last dim of [R, C]: forward y = (x - mean) * rstd * weight + bias, saving mean and
// rstd per row; backward gx per row, and gweight = sum_r g * xhat, gbias = sum_r g (the CPU twin's formulas,
// ops/cpu/norm.h, with its double accumulation of the row statistics).
// Launch: a group of G threads per row, G = 32 (a warp, 8 rows per 256-thread block) for C <= 1024, else
// G = 256 (a block per row), rows looped grid-stride. The column sums for gweight / gbias go through
// reduce_dim (ops/cuda/reduce.cu) over [R, C]: g directly, and g * xhat written by the row kernel.
// Bound: memory (forward: x read twice from cache, once from DRAM; backward: x, g read, gx written).
#include <cmath>

#include "ops/cuda/common.cuh"
#include "ops/cuda/kernels.h"

namespace msmix::cuda {
namespace {

constexpr int64_t kWarpRowMax = 1024;  // longest row given to one warp

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

// dxhat = g * weight;  gx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)). gx or gxhat may be null;
// gxhat [R, C] = g * xhat, the terms of gweight's column sums.
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
    forward_kernel<32><<<row_blocks(R, 32), kThreads>>>(x, weight, bias, y, mean, rstd, R, C, eps);
  } else {
    forward_kernel<kThreads><<<row_blocks(R, kThreads), kThreads>>>(x, weight, bias, y, mean, rstd, R, C, eps);
  }
  CUDA_CHECK_LAUNCH("layer_norm forward_kernel");
}

void layer_norm_backward(const float* x, const float* weight, const float* mean, const float* rstd, const float* g,
                         float* gx, float* gweight, float* gbias, int64_t R, int64_t C) {
  if (C == 0) return;
  if (R > 0 && (gx || gweight)) {
    DeviceBuffer gxhat(gweight ? size_t(R * C) : 0);
    float* gxhat_ptr = gweight ? gxhat.get() : nullptr;
    if (C <= kWarpRowMax) {
      backward_kernel<32><<<row_blocks(R, 32), kThreads>>>(x, weight, mean, rstd, g, gx, gxhat_ptr, R, C);
    } else {
      backward_kernel<kThreads><<<row_blocks(R, kThreads), kThreads>>>(x, weight, mean, rstd, g, gx, gxhat_ptr, R, C);
    }
    CUDA_CHECK_LAUNCH("layer_norm backward_kernel");
    if (gweight) reduce_dim(ReduceOp::Sum, gxhat_ptr, gweight, 1, R, C);
  } else if (gweight) {
    reduce_dim(ReduceOp::Sum, nullptr, gweight, 1, 0, C);  // no rows: zeros
  }
  if (gbias) reduce_dim(ReduceOp::Sum, g, gbias, 1, R, C);
}

}  // namespace msmix::cuda
