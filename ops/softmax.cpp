// softmax and log_softmax over the last dim. Each saves only its output: both backward formulas need y alone.
#include "engine/error.h"
#include "engine/profile.h"
#include "ops/cpu/softmax.h"
#include "ops/cuda/kernels.h"
#include "ops/ops.h"

namespace msmix {
namespace {

Tensor softmax_impl(const Tensor& x, bool log) {
  MSMIX_OP_RANGE(log ? "log_softmax" : "softmax");
  const char* name = log ? "log_softmax" : "softmax";
  MSMIX_CHECK(x.defined(), "{}: undefined input", name);
  // A rank-0 tensor is one row of one value (softmax gives 1, as PyTorch's dim=-1 on a scalar).
  const int64_t C = x.dim() == 0 ? 1 : x.size(-1);
  const int64_t R = C == 0 ? 0 : x.numel() / C;
  Tensor y = Tensor::empty(x.shape(), x.device());
  if (x.is_cuda()) cuda::softmax_forward(x.data(), y.data(), R, C, log);
  else cpu::softmax_forward(x.data(), y.data(), R, C, log);

  if (any_requires_grad({&x})) {
    Tensor y_ = y.detach();
    record(y, name, {x}, [y_, R, C, log](const Tensor& g, const std::vector<bool>&) {
      Tensor gx = Tensor::empty(y_.shape(), g.device());
      if (g.is_cuda()) cuda::softmax_backward(y_.data(), g.data(), gx.data(), R, C, log);
      else cpu::softmax_backward(y_.data(), g.data(), gx.data(), R, C, log);
      return Grads{gx};
    });
  }
  return y;
}

}  // namespace

Tensor softmax(const Tensor& x) { return softmax_impl(x, false); }
Tensor log_softmax(const Tensor& x) { return softmax_impl(x, true); }

}  // namespace msmix
