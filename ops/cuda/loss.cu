// The losses' kernels with the CPU twin's formulas (ops/cpu/loss.cpp): the pointwise regression losses and
// kl_div (forward and backward, one thread per element, grid-stride), and cross-entropy over logits [N, C]:
// forward one warp per row (max, then the sum of exp(x - max), lse = max + log(sum)), backward one thread per
// logit (softmax rebuilt as exp(x - lse)). Target classes were validated by the op layer.
// Bound: memory.
#include <cmath>

#include "ops/cuda/common.cuh"
#include "ops/cuda/kernels.h"

namespace msmix::cuda {
namespace {

__device__ float sign_of(float d) { return d > 0 ? 1.0f : (d < 0 ? -1.0f : 0.0f); }

__global__ void pointwise_forward_kernel(PointwiseLoss kind, float beta, const float* p, const float* t, float* out,
                                         int64_t n) {
  MSMIX_GRID_LOOP(i, n) {
    const float d = p[i] - t[i];
    switch (kind) {
      case PointwiseLoss::L1: out[i] = fabsf(d); break;
      case PointwiseLoss::Mse: out[i] = d * d; break;
      case PointwiseLoss::SmoothL1: {
        const float a = fabsf(d);
        out[i] = a < beta ? 0.5f * a * a / beta : a - 0.5f * beta;
        break;
      }
      case PointwiseLoss::KlDiv: out[i] = t[i] == 0 ? 0.0f : t[i] * (logf(t[i]) - p[i]); break;
    }
  }
}

__global__ void pointwise_backward_kernel(PointwiseLoss kind, float beta, const float* p, const float* t,
                                          const float* g, float* gp, float* gt, int64_t n) {
  MSMIX_GRID_LOOP(i, n) {
    if (kind == PointwiseLoss::KlDiv) {
      if (gp) gp[i] = -g[i] * t[i];
      if (gt) gt[i] = t[i] == 0 ? 0.0f : g[i] * (logf(t[i]) + 1.0f - p[i]);
      continue;
    }
    const float d = p[i] - t[i];
    float v = 0;
    switch (kind) {
      case PointwiseLoss::L1: v = g[i] * sign_of(d); break;
      case PointwiseLoss::Mse: v = 2.0f * g[i] * d; break;
      case PointwiseLoss::SmoothL1: v = g[i] * (fabsf(d) < beta ? d / beta : sign_of(d)); break;
      case PointwiseLoss::KlDiv: break;
    }
    if (gp) gp[i] = v;  // the regression losses depend on d = p - t only: gt = -gp
    if (gt) gt[i] = -v;
  }
}

// One warp per row, 8 rows per block, rows grid-stride.
__global__ void cross_entropy_forward_kernel(const float* logits, const float* target, float* loss, float* lse,
                                             int64_t N, int64_t C) {
  const int lane = threadIdx.x % 32;
  const int64_t rows_per_block = blockDim.x / 32;
  for (int64_t r = blockIdx.x * rows_per_block + threadIdx.x / 32; r < N; r += gridDim.x * rows_per_block) {
    const float* x = logits + r * C;
    float m = -INFINITY;
    for (int64_t c = lane; c < C; c += 32) m = x[c] > m ? x[c] : m;
    m = group_reduce<32>(m, MaxOp(), static_cast<float*>(nullptr));
    double s = 0;  // the CPU twin's exp_shift_sum accumulates in double too
    for (int64_t c = lane; c < C; c += 32) s += expf(x[c] - m);
    s = group_reduce<32>(s, SumOp(), static_cast<double*>(nullptr));
    if (lane == 0) {
      const float l = m + logf(float(s));
      lse[r] = l;
      loss[r] = l - x[int64_t(target[r])];
    }
  }
}

__global__ void cross_entropy_backward_kernel(const float* logits, const float* target, const float* lse,
                                              const float* g, float* gx, int64_t C, int64_t n) {
  MSMIX_GRID_LOOP(i, n) {
    const int64_t r = i / C, c = i - r * C;
    const float gr = g[r];
    float v = expf(logits[i] - lse[r]) * gr;
    if (c == int64_t(target[r])) v -= gr;
    gx[i] = v;
  }
}

}  // namespace

void pointwise_loss_forward(PointwiseLoss kind, float beta, const float* p, const float* t, float* out, int64_t n) {
  if (n == 0) return;
  pointwise_forward_kernel<<<blocks_for(n), kThreads>>>(kind, beta, p, t, out, n);
  CUDA_CHECK_LAUNCH("pointwise_forward_kernel");
}

void pointwise_loss_backward(PointwiseLoss kind, float beta, const float* p, const float* t, const float* g, float* gp,
                             float* gt, int64_t n) {
  if (n == 0 || (!gp && !gt)) return;
  pointwise_backward_kernel<<<blocks_for(n), kThreads>>>(kind, beta, p, t, g, gp, gt, n);
  CUDA_CHECK_LAUNCH("pointwise_backward_kernel");
}

void cross_entropy_forward(const float* logits, const float* target, float* loss, float* lse, int64_t N, int64_t C) {
  if (N == 0) return;
  cross_entropy_forward_kernel<<<blocks_for(N * 32), kThreads>>>(logits, target, loss, lse, N, C);
  CUDA_CHECK_LAUNCH("cross_entropy_forward_kernel");
}

void cross_entropy_backward(const float* logits, const float* target, const float* lse, const float* g, float* gx,
                            int64_t N, int64_t C) {
  const int64_t n = N * C;
  if (n == 0) return;
  cross_entropy_backward_kernel<<<blocks_for(n), kThreads>>>(logits, target, lse, g, gx, C, n);
  CUDA_CHECK_LAUNCH("cross_entropy_backward_kernel");
}

}  // namespace msmix::cuda
