// conv1d: shape checks, dispatch, and backward for x, weight and bias (ops/cpu/conv.cpp has the im2col +
// GEMM kernels). Backward recomputes im2col from the saved x rather than keeping the [Cin * K, N * Lout]
// buffer alive between forward and backward: K times less memory, one cheap copy more.
#include <climits>

#include "engine/error.h"
#include "engine/profile.h"
#include "ops/cpu/conv.h"
#include "ops/cuda/kernels.h"
#include "ops/ops.h"

namespace msmix {

Tensor conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t padding) {
  MSMIX_OP_RANGE("conv1d");
  MSMIX_CHECK(x.defined() && weight.defined(), "conv1d: undefined input");
  MSMIX_CHECK(x.dim() == 3, "conv1d: expected x [N, Cin, L], got {}", describe(x));
  MSMIX_CHECK(weight.dim() == 3, "conv1d: expected weight [Cout, Cin, K], got {}", describe(weight));
  MSMIX_CHECK(padding >= 0, "conv1d: padding must be >= 0, got {}", padding);
  const int64_t N = x.size(0), Cin = x.size(1), L = x.size(2);
  const int64_t Cout = weight.size(0), K = weight.size(2);
  MSMIX_CHECK(weight.size(1) == Cin, "conv1d: weight {} expects {} input channels, but x {} has {}", describe(weight),
              weight.size(1), describe(x), Cin);
  MSMIX_CHECK(Cin > 0 && K > 0, "conv1d: empty channel or kernel dim in weight {}", describe(weight));
  MSMIX_CHECK(K <= L + 2 * padding,
              "conv1d: kernel size {} is wider than the padded input length {} (L={}, padding={})", K, L + 2 * padding,
              L, padding);
  MSMIX_CHECK(!bias.defined() || bias.shape() == Shape{Cout},
              "conv1d: bias {} does not match the {} output channels of weight {}", describe(bias), Cout,
              describe(weight));
  const int64_t Lout = L + 2 * padding - K + 1;
  // BLAS takes int sizes: the largest GEMM dim is one chunk's N * Lout (at least one sample's Lout).
  MSMIX_CHECK(Cin * K < INT_MAX && N * Lout < INT_MAX && Cout < INT_MAX,
              "conv1d: sizes too large for BLAS: x {}, weight {}", describe(x), describe(weight));
  Device dev = common_device("conv1d", {&x, &weight, &bias});
  const cpu::Conv1dShape s{N, Cin, L, Cout, K, padding, Lout};

  Tensor y = Tensor::empty({N, Cout, Lout}, dev);
  (dev.is_cuda() ? cuda::conv1d_forward : cpu::conv1d_forward)(x.data(), weight.data(),
                                                               bias.defined() ? bias.data() : nullptr, y.data(), s);

  if (any_requires_grad({&x, &weight, &bias})) {
    Tensor x_ = x.detach(), w_ = weight.detach();
    record(y, "conv1d", {x, weight, bias}, [x_, w_, s](const Tensor& g, const std::vector<bool>& needs) {
      Tensor gx = needs[0] ? Tensor::empty(x_.shape(), g.device()) : Tensor();
      Tensor gw = needs[1] ? Tensor::empty(w_.shape(), g.device()) : Tensor();
      Tensor gb = needs[2] ? Tensor::empty({s.Cout}, g.device()) : Tensor();
      (g.is_cuda() ? cuda::conv1d_backward : cpu::conv1d_backward)(x_.data(), w_.data(), g.data(),
                                                                   needs[0] ? gx.data() : nullptr,
                                                                   needs[1] ? gw.data() : nullptr,
                                                                   needs[2] ? gb.data() : nullptr, s);
      return Grads{gx, gw, gb};
    });
  }
  return y;
}

}  // namespace msmix
