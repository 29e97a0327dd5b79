#include "models/init.h"

#include "engine/autograd.h"
#include "engine/error.h"

namespace msmix::init {

std::pair<int64_t, int64_t> fan_in_and_fan_out(const Tensor& t) {
  MSMIX_CHECK(t.defined(), "init: undefined tensor");
  MSMIX_CHECK(t.dim() >= 2, "init: fan in and fan out need a tensor with at least 2 dims, got {}", describe(t));
  int64_t receptive = 1;
  for (int64_t d = 2; d < t.dim(); ++d) receptive *= t.size(d);
  return {t.size(1) * receptive, t.size(0) * receptive};
}

// Draws are made into a fresh tensor on t's device and copied in: t keeps its impl, so every handle
// (a module member, the registry, an optimizer) sees the new values.
void uniform_(Tensor& t, float lo, float hi) {
  MSMIX_CHECK(t.defined(), "uniform_: undefined tensor");
  MSMIX_CHECK(lo <= hi, "uniform_: lo {} must not exceed hi {} for {}", lo, hi, describe(t));
  NoGradGuard no_grad;
  t.copy_(Tensor::rand(t.shape(), lo, hi, t.device()));
}

void normal_(Tensor& t, float mean, float std) {
  MSMIX_CHECK(t.defined(), "normal_: undefined tensor");
  MSMIX_CHECK(std >= 0, "normal_: std must be >= 0, got {} for {}", std, describe(t));
  NoGradGuard no_grad;
  t.copy_(Tensor::randn(t.shape(), mean, std, t.device()));
}

void zeros_(Tensor& t) {
  MSMIX_CHECK(t.defined(), "zeros_: undefined tensor");
  NoGradGuard no_grad;
  t.fill_(0);
}

void ones_(Tensor& t) {
  MSMIX_CHECK(t.defined(), "ones_: undefined tensor");
  NoGradGuard no_grad;
  t.fill_(1);
}

void kaiming_uniform_(Tensor& t, float a) {
  auto [fan_in, fan_out] = fan_in_and_fan_out(t);
  (void)fan_out;
  if (t.numel() == 0) return;  // nothing to fill (and fan_in may be 0), as PyTorch
  float gain = std::sqrt(2.0f / (1 + a * a));
  float bound = gain * std::sqrt(3.0f / float(fan_in));
  uniform_(t, -bound, bound);
}

void xavier_uniform_(Tensor& t, float gain) {
  auto [fan_in, fan_out] = fan_in_and_fan_out(t);
  if (t.numel() == 0) return;
  float bound = gain * std::sqrt(6.0f / float(fan_in + fan_out));
  uniform_(t, -bound, bound);
}

}  // namespace msmix::init
