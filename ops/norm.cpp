// layer_norm and batch_norm: shape checks, dispatch, and one fused backward kernel each. The forward saves
// the statistics it used (mean and rstd per row or channel), so backward never recomputes them.
#include "engine/error.h"
#include "engine/profile.h"
#include "ops/cpu/norm.h"
#include "ops/cuda/kernels.h"
#include "ops/ops.h"

namespace msmix {
namespace {

// Undefined stays undefined, so optional tensors can be captured by backward closures.
Tensor detach_opt(const Tensor& t) { return t.defined() ? t.detach() : Tensor(); }
float* data_opt(const Tensor& t) { return t.defined() ? t.data() : nullptr; }
float* data_if(bool wanted, Tensor& t) { return wanted ? t.data() : nullptr; }

// Optional per-channel tensor `t` ("weight", "bias", ...) must be [C].
void check_channel_vector(const char* op, const char* what, const Tensor& t, int64_t C, const Tensor& x) {
  if (!t.defined()) return;
  MSMIX_CHECK(t.shape() == Shape{C}, "{}: {} {} does not match the {} channels of x {}", op, what, describe(t), C,
              describe(x));
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
  MSMIX_OP_RANGE("layer_norm");
  MSMIX_CHECK(x.defined(), "layer_norm: undefined input");
  MSMIX_CHECK(x.dim() >= 1, "layer_norm: expected x with at least one dim, got {}", describe(x));
  MSMIX_CHECK(eps >= 0, "layer_norm: eps must be >= 0, got {}", eps);
  const int64_t C = x.size(-1);
  const int64_t R = shape_numel(Shape(x.shape().begin(), x.shape().end() - 1));
  check_channel_vector("layer_norm", "weight", weight, C, x);
  check_channel_vector("layer_norm", "bias", bias, C, x);
  Device dev = common_device("layer_norm", {&x, &weight, &bias});

  Tensor y = Tensor::empty(x.shape(), dev);
  Tensor mean = Tensor::empty({R}, dev), rstd = Tensor::empty({R}, dev);
  if (dev.is_cuda())
    cuda::layer_norm_forward(x.data(), data_opt(weight), data_opt(bias), y.data(), mean.data(), rstd.data(), R, C, eps);
  else
    cpu::layer_norm_forward(x.data(), data_opt(weight), data_opt(bias), y.data(), mean.data(), rstd.data(), R, C, eps);

  if (any_requires_grad({&x, &weight, &bias})) {
    Tensor x_ = x.detach(), w_ = detach_opt(weight);
    record(y, "layer_norm", {x, weight, bias},
           [x_, w_, mean, rstd, R, C](const Tensor& g, const std::vector<bool>& needs) {
             Tensor gx = needs[0] ? Tensor::empty(x_.shape(), g.device()) : Tensor();
             Tensor gw = needs[1] ? Tensor::empty({C}, g.device()) : Tensor();
             Tensor gb = needs[2] ? Tensor::empty({C}, g.device()) : Tensor();
             if (g.is_cuda()) cuda::layer_norm_backward(x_.data(), data_opt(w_), mean.data(), rstd.data(), g.data(),
                                                        data_if(needs[0], gx), data_if(needs[1], gw),
                                                        data_if(needs[2], gb), R, C);
             else cpu::layer_norm_backward(x_.data(), data_opt(w_), mean.data(), rstd.data(), g.data(),
                                           data_if(needs[0], gx), data_if(needs[1], gw), data_if(needs[2], gb), R, C);
             return Grads{gx, gw, gb};
           });
  }
  return y;
}

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, bool training, float momentum, float eps) {
  MSMIX_OP_RANGE("batch_norm");
  MSMIX_CHECK(x.defined(), "batch_norm: undefined input");
  MSMIX_CHECK(x.dim() == 2 || x.dim() == 3, "batch_norm: expected x [N, C] or [N, C, L], got {}", describe(x));
  MSMIX_CHECK(running_mean.defined() == running_var.defined(),
              "batch_norm: running_mean and running_var must both be defined or both undefined");
  MSMIX_CHECK(eps >= 0, "batch_norm: eps must be >= 0, got {}", eps);
  const int64_t N = x.size(0), C = x.size(1), L = x.dim() == 3 ? x.size(2) : 1;
  check_channel_vector("batch_norm", "weight", weight, C, x);
  check_channel_vector("batch_norm", "bias", bias, C, x);
  check_channel_vector("batch_norm", "running_mean", running_mean, C, x);
  check_channel_vector("batch_norm", "running_var", running_var, C, x);
  Device dev = common_device("batch_norm", {&x, &weight, &bias, &running_mean, &running_var});
  // Without running stats there is nothing else to normalise with: batch statistics even in eval, as
  // PyTorch's BatchNorm with track_running_stats=False.
  const bool batch_stats = training || !running_mean.defined();
  MSMIX_CHECK(!batch_stats || N * L != 1,
              "batch_norm: expected more than 1 value per channel when training, got input {}", shape_str(x.shape()));

  Tensor y = Tensor::empty(x.shape(), dev);
  Tensor mean = Tensor::empty({C}, dev), rstd = Tensor::empty({C}, dev);
  {
    const bool gpu = dev.is_cuda();  // the dispatch point of each kernel below
    // Running stats are buffers: updated in place, never recorded by autograd.
    if (batch_stats)
      (gpu ? cuda::batch_norm_stats : cpu::batch_norm_stats)(
          x.data(), eps, momentum, training ? data_opt(running_mean) : nullptr,
          training ? data_opt(running_var) : nullptr, mean.data(), rstd.data(), N, C, L);
    else
      (gpu ? cuda::batch_norm_running_stats : cpu::batch_norm_running_stats)(running_mean.data(), running_var.data(),
                                                                             eps, mean.data(), rstd.data(), C);
    (gpu ? cuda::batch_norm_apply : cpu::batch_norm_apply)(x.data(), mean.data(), rstd.data(), data_opt(weight),
                                                           data_opt(bias), y.data(), N, C, L);
  }

  if (any_requires_grad({&x, &weight, &bias})) {
    Tensor x_ = x.detach(), w_ = detach_opt(weight);
    record(y, "batch_norm", {x, weight, bias},
           [x_, w_, mean, rstd, batch_stats, N, C, L](const Tensor& g, const std::vector<bool>& needs) {
             Tensor gx = needs[0] ? Tensor::empty(x_.shape(), g.device()) : Tensor();
             Tensor gw = needs[1] ? Tensor::empty({C}, g.device()) : Tensor();
             Tensor gb = needs[2] ? Tensor::empty({C}, g.device()) : Tensor();
             (g.is_cuda() ? cuda::batch_norm_backward : cpu::batch_norm_backward)(
                 x_.data(), mean.data(), rstd.data(), data_opt(w_), g.data(), batch_stats, data_if(needs[0], gx),
                 data_if(needs[1], gw), data_if(needs[2], gb), N, C, L);
             return Grads{gx, gw, gb};
           });
  }
  return y;
}

}  // namespace msmix
