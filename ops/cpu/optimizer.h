// The optimizers' per-parameter update kernels and gradient clipping's passes (twins: ops/cuda/kernels.h).
// One fused pass over n floats, in place. Scalars are precomputed on the host in double and rounded to float
// once, as PyTorch passes Python floats to its float kernels; msmix/optimizer.h says what each update computes.
#pragma once
#include <cstdint>
#include <vector>

namespace msmix {

namespace cpu {

struct SGDScalars {
  float lr, momentum, one_minus_dampening, weight_decay;
  bool nesterov;
  bool first_step;  // buf = g (no dampening) instead of buf = m * buf + (1 - d) * g
};
// momentum_buf: n floats, or null when momentum == 0.
void sgd_update(float* param, const float* grad, float* momentum_buf, int64_t n, const SGDScalars& s);

struct AdamScalars {
  float beta1, one_minus_beta1, beta2, one_minus_beta2, eps;
  float l2_weight_decay;  // Adam: added to the grad; 0 for AdamW
  float param_scale;      // AdamW: 1 - lr * weight_decay; 1 for Adam
  float step_size;        // lr / (1 - beta1^t)
  float bias_correction2_sqrt;  // sqrt(1 - beta2^t)
};
void adam_update(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                 const AdamScalars& s);
// One tensor of a multi-tensor Adam step: its arrays and its own scalars (its own step count).
struct AdamTensor {
  float* param;
  const float* grad;
  float* exp_avg;
  float* exp_avg_sq;
  int64_t n;
  AdamScalars s;
};
// adam_update on each tensor in turn (the CUDA twin updates them all in one launch).
void adam_update_many(const std::vector<AdamTensor>& tensors);

// ---- gradient clipping's passes (msmix/grad_clip): clamp to [lo, hi] (NaN stays NaN), the sum of squares
// accumulated in double, and g *= coef.
void clamp_inplace(float* g, int64_t n, float lo, float hi);
double sum_of_squares(const float* g, int64_t n);
void scale_inplace(float* g, int64_t n, float coef);

}  // namespace cpu
}  // namespace msmix
