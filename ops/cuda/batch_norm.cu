// Batch norm over x [N, C, L] (L = 1 for [N, C]), statistics per channel over M = N * L values, with the CPU
// twin's formulas and accumulation types (ops/cpu/norm.cpp): two-pass mean / biased variance in double, the
// running stats updated with the unbiased variance, sums of g and g * xhat in double for backward.
// Launch: stats and backward run one 256-thread block per channel (grid-stride over channels), each thread
// striding over the channel's M values and the block reducing in shared memory; apply and eval stats are one
// thread per element. Bound: memory (x read twice for stats, x and g once plus gx written for backward).
#include "ops/cuda/common.cuh"
#include "ops/cuda/kernels.h"

namespace msmix::cuda {
namespace {

constexpr int kBlock = 256;

__device__ float value_at(const float* x, int64_t i, int64_t c, int64_t C, int64_t L) {
  const int64_t n = i / L, l = i - n * L;
  return x[(n * C + c) * L + l];
}

__global__ void stats_kernel(const float* x, float eps, float momentum, float* running_mean, float* running_var,
                             float* mean, float* rstd, int64_t N, int64_t C, int64_t L) {
  __shared__ double scratch[kBlock / 32];
  const int64_t M = N * L;
  for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
    double s = 0;
    for (int64_t i = threadIdx.x; i < M; i += kBlock) s += value_at(x, i, c, C, L);
    s = group_reduce<kBlock>(s, SumOp(), scratch);
    const double m = M > 0 ? s / double(M) : 0.0;
    double v = 0;
    for (int64_t i = threadIdx.x; i < M; i += kBlock) {
      const double d = value_at(x, i, c, C, L) - m;
      v += d * d;
    }
    v = group_reduce<kBlock>(v, SumOp(), scratch);
    if (threadIdx.x == 0) {
      const double var = M > 0 ? v / double(M) : 0.0;
      mean[c] = float(m);
      rstd[c] = float(1.0 / sqrt(var + double(eps)));
      if (running_mean && running_var && M > 1) {
        running_mean[c] = float((1.0 - momentum) * running_mean[c] + momentum * m);
        running_var[c] = float((1.0 - momentum) * running_var[c] + momentum * var * double(M) / double(M - 1));
      }
    }
  }
}

__global__ void running_stats_kernel(const float* running_mean, const float* running_var, float eps, float* mean,
                                     float* rstd, int64_t C) {
  MSMIX_GRID_LOOP(c, C) {
    mean[c] = running_mean[c];
    rstd[c] = float(1.0 / sqrt(double(running_var[c]) + double(eps)));
  }
}

__global__ void apply_kernel(const float* x, const float* mean, const float* rstd, const float* weight,
                             const float* bias, float* y, int64_t C, int64_t L, int64_t n) {
  MSMIX_GRID_LOOP(i, n) {
    const int64_t c = (i / L) % C;
    const float scale = rstd[c] * (weight ? weight[c] : 1.0f);
    const float shift = (bias ? bias[c] : 0.0f) - mean[c] * scale;
    y[i] = x[i] * scale + shift;
  }
}

__global__ void backward_kernel(const float* x, const float* mean, const float* rstd, const float* weight,
                                const float* g, bool batch_stats, float* gx, float* gweight, float* gbias, int64_t N,
                                int64_t C, int64_t L) {
  __shared__ double scratch[kBlock / 32];
  const int64_t M = N * L;
  for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
    const float m = mean[c], rs = rstd[c];
    double sum_g = 0, sum_gxhat = 0;
    for (int64_t i = threadIdx.x; i < M; i += kBlock) {
      const float gv = value_at(g, i, c, C, L);
      sum_g += gv;
      sum_gxhat += double(gv) * double((value_at(x, i, c, C, L) - m) * rs);
    }
    sum_g = group_reduce<kBlock>(sum_g, SumOp(), scratch);
    sum_gxhat = group_reduce<kBlock>(sum_gxhat, SumOp(), scratch);
    if (threadIdx.x == 0) {
      if (gweight) gweight[c] = float(sum_gxhat);
      if (gbias) gbias[c] = float(sum_g);
    }
    if (!gx) continue;
    const float scale = rs * (weight ? weight[c] : 1.0f);
    const float a = batch_stats ? float(sum_g / double(M)) : 0.0f;
    const float b = batch_stats ? float(sum_gxhat / double(M)) : 0.0f;
    for (int64_t i = threadIdx.x; i < M; i += kBlock) {
      const int64_t n = i / L, l = i - n * L, at = (n * C + c) * L + l;
      gx[at] = scale * (g[at] - a - (x[at] - m) * rs * b);
    }
  }
}

}  // namespace

void batch_norm_stats(const float* x, float eps, float momentum, float* running_mean, float* running_var, float* mean,
                      float* rstd, int64_t N, int64_t C, int64_t L) {
  if (C == 0) return;
  stats_kernel<<<blocks_for(C, 1), kBlock>>>(x, eps, momentum, running_mean, running_var, mean, rstd, N, C, L);
  CUDA_CHECK_LAUNCH("batch_norm stats_kernel");
}

void batch_norm_running_stats(const float* running_mean, const float* running_var, float eps, float* mean, float* rstd,
                              int64_t C) {
  if (C == 0) return;
  running_stats_kernel<<<blocks_for(C), kThreads>>>(running_mean, running_var, eps, mean, rstd, C);
  CUDA_CHECK_LAUNCH("batch_norm running_stats_kernel");
}

void batch_norm_apply(const float* x, const float* mean, const float* rstd, const float* weight, const float* bias,
                      float* y, int64_t N, int64_t C, int64_t L) {
  const int64_t n = N * C * L;
  if (n == 0) return;
  apply_kernel<<<blocks_for(n), kThreads>>>(x, mean, rstd, weight, bias, y, C, L, n);
  CUDA_CHECK_LAUNCH("batch_norm apply_kernel");
}

void batch_norm_backward(const float* x, const float* mean, const float* rstd, const float* weight, const float* g,
                         bool batch_stats, float* gx, float* gweight, float* gbias, int64_t N, int64_t C, int64_t L) {
  if (C == 0) return;
  backward_kernel<<<blocks_for(C, 1), kBlock>>>(x, mean, rstd, weight, g, batch_stats, gx, gweight, gbias, N, C, L);
  CUDA_CHECK_LAUNCH("batch_norm backward_kernel");
}

}  // namespace msmix::cuda
