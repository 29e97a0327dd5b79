#include "ops/cpu/optimizer.h"

#include <algorithm>
#include <cmath>

namespace msmix {

namespace cpu {
namespace {

// Large tensors are split into chunks for OpenMP; each chunk runs a plain loop over restrict pointers with
// the scalars held by value, which GCC vectorises (a loop reading the scalars through a reference was kept
// scalar: a store to param could have changed them). Every element gets the same float operations in the
// same order as PyTorch's kernels, so the vectorised results are the scalar ones, bit for bit.
constexpr int64_t kChunk = 1 << 14, kParallelMin = 1 << 15;

template <typename Range>
void for_chunks(int64_t n, const Range& range) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for if (n > kParallelMin)
  for (int64_t c = 0; c < chunks; ++c) range(c * kChunk, std::min(kChunk, n - c * kChunk));
}

// kDecay: weight decay != 0 (skipping `g + 0 * p` keeps an inf parameter from turning its update into NaN, as
// PyTorch); kMomentum: momentum_buf given. The first-step and Nesterov choices are selects in the loop.
template <bool kDecay, bool kMomentum>
void sgd_range(float* __restrict param, const float* __restrict grad, float* __restrict momentum_buf, int64_t n,
               const SGDScalars s) {
  for (int64_t i = 0; i < n; ++i) {
    float g = grad[i];
    if (kDecay) g = g + s.weight_decay * param[i];
    if (kMomentum) {
      const float buf = s.first_step ? g : momentum_buf[i] * s.momentum + s.one_minus_dampening * g;
      momentum_buf[i] = buf;
      g = s.nesterov ? g + s.momentum * buf : buf;
    }
    param[i] = param[i] - s.lr * g;
  }
}

template <bool kDecay>
void adam_range(float* __restrict param, const float* __restrict grad, float* __restrict exp_avg,
                float* __restrict exp_avg_sq, int64_t n, const AdamScalars s) {
  for (int64_t i = 0; i < n; ++i) {
    const float p = param[i] * s.param_scale;  // AdamW's decoupled decay; exact when the scale is 1
    float g = grad[i];
    if (kDecay) g = g + s.l2_weight_decay * p;
    const float m = exp_avg[i] * s.beta1 + s.one_minus_beta1 * g;
    const float v = exp_avg_sq[i] * s.beta2 + s.one_minus_beta2 * g * g;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    const float denom = std::sqrt(v) / s.bias_correction2_sqrt + s.eps;
    param[i] = p - s.step_size * m / denom;
  }
}

}  // namespace

void sgd_update(float* param, const float* grad, float* momentum_buf, int64_t n, const SGDScalars& s) {
  const SGDScalars c = s;
  const bool decay = c.weight_decay != 0;
  for_chunks(n, [&](int64_t i0, int64_t len) {
    float* buf = momentum_buf ? momentum_buf + i0 : nullptr;
    if (decay && buf) sgd_range<true, true>(param + i0, grad + i0, buf, len, c);
    else if (decay) sgd_range<true, false>(param + i0, grad + i0, nullptr, len, c);
    else if (buf) sgd_range<false, true>(param + i0, grad + i0, buf, len, c);
    else sgd_range<false, false>(param + i0, grad + i0, nullptr, len, c);
  });
}

void adam_update(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                 const AdamScalars& s) {
  const AdamScalars c = s;
  const bool decay = c.l2_weight_decay != 0;
  for_chunks(n, [&](int64_t i0, int64_t len) {
    if (decay) adam_range<true>(param + i0, grad + i0, exp_avg + i0, exp_avg_sq + i0, len, c);
    else adam_range<false>(param + i0, grad + i0, exp_avg + i0, exp_avg_sq + i0, len, c);
  });
}

void adam_update_many(const std::vector<AdamTensor>& tensors) {
  for (const AdamTensor& t : tensors) adam_update(t.param, t.grad, t.exp_avg, t.exp_avg_sq, t.n, t.s);
}

void clamp_inplace(float* g, int64_t n, float lo, float hi) {
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) g[i] = g[i] < lo ? lo : (g[i] > hi ? hi : g[i]);  // NaN passes through
}

// In double: a float sum over millions of elements loses digits.
double sum_of_squares(const float* g, int64_t n) {
  double s = 0;
#pragma omp parallel for simd reduction(+ : s) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) s += double(g[i]) * double(g[i]);
  return s;
}

void scale_inplace(float* g, int64_t n, float coef) {
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) g[i] *= coef;
}

}  // namespace cpu
}  // namespace msmix
