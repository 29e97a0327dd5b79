#include "msmix/grad_clip.h"

#include <cmath>

#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/profile.h"
#include "ops/cpu/optimizer.h"
#include "ops/cuda/kernels.h"

namespace msmix {

void clip_grad_value(const std::vector<Tensor>& params, float clip_value) {
  MSMIX_CHECK(clip_value >= 0, "clip_grad_value: clip_value must be >= 0, got {}", clip_value);
  NoGradGuard no_grad;
  ProfileRange range("clip_grad_value");
  for (const Tensor& p : params) {
    Tensor grad = p.defined() ? p.grad() : Tensor();
    if (!grad.defined()) continue;
    if (grad.is_cuda()) cuda::clamp_inplace(grad.data(), grad.numel(), -clip_value, clip_value);
    else cpu::clamp_inplace(grad.data(), grad.numel(), -clip_value, clip_value);
  }
}

float clip_grad_norm(const std::vector<Tensor>& params, float max_norm) {
  MSMIX_CHECK(max_norm >= 0, "clip_grad_norm: max_norm must be >= 0, got {}", max_norm);
  NoGradGuard no_grad;
  ProfileRange range("clip_grad_norm");
  std::vector<Tensor> grads;
  for (const Tensor& p : params)
    if (p.defined() && p.grad().defined()) grads.push_back(p.grad());
  double squares = 0;  // summed over tensors in order on the host: the same on both devices' kernels
  for (const Tensor& grad : grads)
    squares += grad.is_cuda() ? cuda::sum_of_squares(grad.data(), grad.numel())
                              : cpu::sum_of_squares(grad.data(), grad.numel());
  const float norm = float(std::sqrt(squares));
  if (!std::isfinite(norm)) return norm;  // reported, not applied: see the header
  const float coef = max_norm / (norm + 1e-6f);  // float arithmetic, as PyTorch's tensor ops
  if (coef >= 1.0f) return norm;
  for (Tensor& grad : grads) {
    if (grad.is_cuda()) cuda::scale_inplace(grad.data(), grad.numel(), coef);
    else cpu::scale_inplace(grad.data(), grad.numel(), coef);
  }
  return norm;
}

}  // namespace msmix
