#include "msmix/grad_clip.h"

#include <cmath>

#include "engine/autograd.h"
#include "engine/error.h"
#include "ops/dispatch.h"

namespace msmix {
namespace {

constexpr int64_t kParallelMin = 1 << 15;

// Sum of squares in double: a float sum over millions of elements loses digits.
double sum_of_squares(const float* g, int64_t n) {
  double s = 0;
#pragma omp parallel for simd reduction(+ : s) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) s += double(g[i]) * double(g[i]);
  return s;
}

}  // namespace

void clip_grad_value(const std::vector<Tensor>& params, float clip_value) {
  MSMIX_CHECK(clip_value >= 0, "clip_grad_value: clip_value must be >= 0, got {}", clip_value);
  NoGradGuard no_grad;
  const float lo = -clip_value, hi = clip_value;
  for (const Tensor& p : params) {
    Tensor grad = p.defined() ? p.grad() : Tensor();
    if (!grad.defined()) continue;
    if (grad.is_cuda()) cuda_kernel_missing("clip_grad_value");
    float* g = grad.data();
    int64_t n = grad.numel();
#pragma omp parallel for simd if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) g[i] = g[i] < lo ? lo : (g[i] > hi ? hi : g[i]);  // NaN passes through
  }
}

float clip_grad_norm(const std::vector<Tensor>& params, float max_norm) {
  MSMIX_CHECK(max_norm >= 0, "clip_grad_norm: max_norm must be >= 0, got {}", max_norm);
  NoGradGuard no_grad;
  std::vector<Tensor> grads;
  for (const Tensor& p : params)
    if (p.defined() && p.grad().defined()) grads.push_back(p.grad());
  double squares = 0;
  for (const Tensor& grad : grads) {
    if (grad.is_cuda()) cuda_kernel_missing("clip_grad_norm");
    squares += sum_of_squares(grad.data(), grad.numel());
  }
  const float norm = float(std::sqrt(squares));
  if (!std::isfinite(norm)) return norm;  // reported, not applied: see the header
  const float coef = max_norm / (norm + 1e-6f);  // float arithmetic, as PyTorch's tensor ops
  if (coef >= 1.0f) return norm;
  for (Tensor& grad : grads) {
    float* g = grad.data();
    int64_t n = grad.numel();
#pragma omp parallel for simd if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) g[i] *= coef;
  }
  return norm;
}

}  // namespace msmix
