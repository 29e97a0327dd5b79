#include "msmix/grad_clip.h"

#include <cmath>

#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/profile.h"
#include "ops/cpu/optimizer.h"
#include "ops/cuda/kernels.h"
#include "ops/ops.h"

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

Tensor clip_grad_norm(const std::vector<Tensor>& params, float max_norm) {
  MSMIX_CHECK(max_norm >= 0, "clip_grad_norm: max_norm must be >= 0, got {}", max_norm);
  NoGradGuard no_grad;
  ProfileRange range("clip_grad_norm");
  std::vector<Tensor> grads;
  for (const Tensor& p : params)
    if (p.defined() && p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return Tensor::scalar(0.0f);
  const Device device = grads[0].device();
  for (const Tensor& g : grads)
    MSMIX_CHECK(g.device() == device, "clip_grad_norm: grads on two devices: {} and {}", describe(grads[0]),
                describe(g));
  if (device.is_cuda()) {  // decided and applied on the device: nothing read back
    std::vector<std::pair<float*, int64_t>> arrays;
    for (const Tensor& g : grads) arrays.emplace_back(g.data(), g.numel());
    Tensor decision = Tensor::empty({2}, device);  // norm, coefficient
    cuda::clip_grad_norm_many(arrays, max_norm, decision.data());
    return reshape(slice(decision, 0, 0, 1), {});
  }
  double squares = 0;  // summed over tensors in order, in double
  for (const Tensor& grad : grads) squares += cpu::sum_of_squares(grad.data(), grad.numel());
  const float norm = float(std::sqrt(squares));
  const float coef = max_norm / (norm + 1e-6f);  // float arithmetic, as PyTorch's tensor ops
  if (std::isfinite(norm) && coef < 1.0f)  // a non-finite norm is reported, not applied: see the header
    for (const Tensor& grad : grads) cpu::scale_inplace(grad.data(), grad.numel(), coef);
  return Tensor::scalar(norm);
}

}  // namespace msmix
