// Elementwise unary ops. Each saves its input and output (both detached) and calls one backward kernel.
#include "engine/error.h"
#include "engine/profile.h"
#include "ops/cpu/unary.h"
#include "ops/cuda/kernels.h"
#include "ops/ops.h"

namespace msmix {
namespace {

Tensor unary(UnaryOp op, const char* name, const Tensor& x, UnaryParams params = {}) {
  MSMIX_OP_RANGE(name);
  MSMIX_CHECK(x.defined(), "{}: undefined input", name);
  Tensor y = Tensor::empty(x.shape(), x.device());
  if (x.is_cuda()) cuda::unary_forward(op, params, x.data(), y.data(), x.numel());
  else cpu::unary_forward(op, params, x.data(), y.data(), x.numel());

  if (any_requires_grad({&x})) {
    Tensor x_ = x.detach(), y_ = y.detach();
    record(y, name, {x}, [=](const Tensor& g, const std::vector<bool>&) {
      Tensor gx = Tensor::empty(x_.shape(), x_.device());
      if (g.is_cuda()) cuda::unary_backward(op, params, x_.data(), y_.data(), g.data(), gx.data(), gx.numel());
      else cpu::unary_backward(op, params, x_.data(), y_.data(), g.data(), gx.data(), gx.numel());
      return Grads{gx};
    });
  }
  return y;
}

}  // namespace

Tensor neg(const Tensor& x) { return unary(UnaryOp::Neg, "neg", x); }
Tensor exp(const Tensor& x) { return unary(UnaryOp::Exp, "exp", x); }
Tensor log(const Tensor& x) { return unary(UnaryOp::Log, "log", x); }
Tensor sqrt(const Tensor& x) { return unary(UnaryOp::Sqrt, "sqrt", x); }
Tensor rsqrt(const Tensor& x) { return unary(UnaryOp::Rsqrt, "rsqrt", x); }
Tensor pow(const Tensor& x, float exponent) { return unary(UnaryOp::Pow, "pow", x, {exponent, 0}); }
Tensor abs(const Tensor& x) { return unary(UnaryOp::Abs, "abs", x); }
Tensor relu(const Tensor& x) { return unary(UnaryOp::Relu, "relu", x); }
Tensor gelu(const Tensor& x) { return unary(UnaryOp::Gelu, "gelu", x); }
Tensor tanh(const Tensor& x) { return unary(UnaryOp::Tanh, "tanh", x); }
Tensor sigmoid(const Tensor& x) { return unary(UnaryOp::Sigmoid, "sigmoid", x); }
Tensor normal_cdf(const Tensor& x) { return unary(UnaryOp::NormalCdf, "normal_cdf", x); }

Tensor softplus(const Tensor& x, float beta, float threshold) {
  MSMIX_CHECK(beta > 0, "softplus: beta must be positive, got {}", beta);
  return unary(UnaryOp::Softplus, "softplus", x, {beta, threshold});
}

Tensor clamp(const Tensor& x, float lo, float hi) {
  MSMIX_CHECK(!(lo > hi), "clamp: lo {} > hi {}", lo, hi);
  return unary(UnaryOp::Clamp, "clamp", x, {lo, hi});
}

}  // namespace msmix
