// CPU kernels for the losses: one pointwise kernel pair for the regression losses and kl_div (the reduction
// is a separate sum / mean), and a fused cross-entropy pair over logits [N, C].
#pragma once
#include <cstdint>

namespace msmix {

// Pointwise loss of prediction p and target t, with d = p - t:
//   L1: |d|    Mse: d^2    SmoothL1: 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (beta 0: |d|)
//   KlDiv (p holds log-probabilities, t probabilities): t * (log t - p), and 0 where t == 0 (even for p = -inf)
enum class PointwiseLoss { L1, Mse, SmoothL1, KlDiv };

namespace cpu {
void pointwise_loss_forward(PointwiseLoss kind, float beta, const float* p, const float* t, float* out, int64_t n);
// gp = g * dloss/dp, gt = g * dloss/dt; either may be null (not wanted). The grad of |d| at d = 0 is 0, as
// PyTorch's. kl_div's target grad is log t + 1 - p, and 0 where t == 0 (the forward treats those terms as
// constant 0; PyTorch gives NaN there).
void pointwise_loss_backward(PointwiseLoss kind, float beta, const float* p, const float* t, const float* g, float* gp,
                             float* gt, int64_t n);

// The first n whose target[n] is not an integer class in [0, C) (NaN included), or -1 when all are.
int64_t cross_entropy_bad_target(const float* target, int64_t N, int64_t C);
// loss[n] = lse[n] - logits[n, target[n]] with lse[n] = log(sum_c exp(logits[n, c])), computed stably.
void cross_entropy_forward(const float* logits, const float* target, float* loss, float* lse, int64_t N, int64_t C);
// gx[n, c] = g[n] * (softmax(logits[n])[c] - [c == target[n]]), the softmax rebuilt as exp(logits - lse).
void cross_entropy_backward(const float* logits, const float* target, const float* lse, const float* g, float* gx,
                            int64_t N, int64_t C);
}  // namespace cpu
}  // namespace msmix
