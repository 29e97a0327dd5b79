// CPU kernels for layer norm and batch norm. Each forward saves the per-row / per-channel mean and rstd
// (1 / sqrt(var + eps)) so its backward is one fused pass without recomputing statistics.
#pragma once
#include <cstdint>

namespace msmix::cpu {

// ---- layer norm over the last dim: x, y [R, C]; weight, bias [C] or null (no affine); mean, rstd [R].
void layer_norm_forward(const float* x, const float* weight, const float* bias, float* y, float* mean, float* rstd,
                        int64_t R, int64_t C, float eps);
// g [R, C] -> gx [R, C], gweight / gbias [C]. Any output may be null (not wanted); gweight needs weight.
// Uses per-row-chunk partial sums for gweight / gbias: race-free and the same result for any thread count.
void layer_norm_backward(const float* x, const float* weight, const float* mean, const float* rstd, const float* g,
                         float* gx, float* gweight, float* gbias, int64_t R, int64_t C);

// ---- batch norm over x [N, C, L] (L = 1 for [N, C]); statistics per channel over N * L values.
// Training statistics: per channel the batch mean and rstd = 1 / sqrt(biased var + eps). When running_mean /
// running_var are non-null (and N * L > 1) they are updated in place with the unbiased variance:
//   running = (1 - momentum) * running + momentum * batch statistic.
// N * L == 0 gives mean 0 and rstd 1 / sqrt(eps), and leaves the running stats alone.
void batch_norm_stats(const float* x, float eps, float momentum, float* running_mean, float* running_var, float* mean,
                      float* rstd, int64_t N, int64_t C, int64_t L);
// Eval statistics: mean = running_mean, rstd = 1 / sqrt(running_var + eps), [C].
void batch_norm_running_stats(const float* running_mean, const float* running_var, float eps, float* mean, float* rstd,
                              int64_t C);
// y = (x - mean[c]) * rstd[c] * weight[c] + bias[c]; weight / bias may be null.
void batch_norm_apply(const float* x, const float* mean, const float* rstd, const float* weight, const float* bias,
                      float* y, int64_t N, int64_t C, int64_t L);
// With M = N * L and xhat = (x - mean) * rstd:
//   batch_stats (training): gx = weight * rstd * (g - (sum g + xhat * sum(g * xhat)) / M)
//   running stats (eval):   gx = weight * rstd * g (the forward is an affine map of x)
// gweight = sum(g * xhat), gbias = sum(g) per channel. Any output may be null.
void batch_norm_backward(const float* x, const float* mean, const float* rstd, const float* weight, const float* g,
                         bool batch_stats, float* gx, float* gweight, float* gbias, int64_t N, int64_t C, int64_t L);

}  // namespace msmix::cpu
