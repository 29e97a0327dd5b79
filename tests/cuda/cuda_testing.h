// Helpers for the CUDA parity tests: each op runs on CPU leaves and on CUDA copies of them, and the outputs
// and every input's grad must agree with the CPU result (the CPU kernels are the CUDA kernels' twins).
#pragma once
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "engine/cuda_runtime.h"
#include "ops/cuda/kernels.h"
#include "tests/testing.h"

namespace msmix::testing {

// Every GPU test starts with this: without a visible GPU it reports the skip and returns.
#define MSMIX_REQUIRE_GPU()                                                            \
  do {                                                                                 \
    if (::msmix::cuda::device_count() == 0) {                                          \
      MESSAGE("no GPU (" << ::msmix::cuda::runtime_info() << "): skipped");            \
      return;                                                                          \
    }                                                                                  \
  } while (0)

struct Tol {
  double rtol, atol;
};
// Elementwise kernels: same formula per element, float math on both sides.
constexpr Tol kElementwise{1e-5, 1e-6};
// Sums over L terms of O(1) values: the CPU's float accumulation drifts by about eps * L / sqrt(2) (one
// sigma of a sequential sum), the GPU's double accumulation by far less; 4 sigma, relative 1e-4.
inline Tol reduction_tol(int64_t L) { return {1e-4, 1e-5 + 2.4e-7 * double(L)}; }

// Sets a process-wide GPU kernel choice for a scope (MSMIX_CUDA_LSTM, MSMIX_CUDA_CONV); the previous one comes
// back at its end, even when a check throws.
template <class Kernel, Kernel (*Get)(), void (*Set)(Kernel)>
class KernelChoiceScope {
 public:
  explicit KernelChoiceScope(Kernel kernel) { Set(kernel); }
  ~KernelChoiceScope() { Set(before_); }
  KernelChoiceScope(const KernelChoiceScope&) = delete;
  KernelChoiceScope& operator=(const KernelChoiceScope&) = delete;

 private:
  Kernel before_ = Get();
};
using LstmKernelScope = KernelChoiceScope<cuda::LstmKernel, cuda::lstm_kernel, cuda::set_lstm_kernel>;
using ConvKernelScope = KernelChoiceScope<cuda::ConvKernel, cuda::conv_kernel, cuda::set_conv_kernel>;

// True (with a message) when this build has no cuDNN: the cuDNN cases then skip.
inline bool skip_without_cudnn() {
  if (cuda::cudnn_compiled()) return false;
  MESSAGE("this msmix has no cuDNN: " << cuda::cudnn_version() << "; skipped");
  return true;
}

// The same tensor on the GPU, as a fresh leaf that requires grad when `like` does.
inline Tensor gpu_leaf(const Tensor& like) {
  Tensor t = like.detach().to(Device::cuda());
  t.set_requires_grad(like.requires_grad());
  return t;
}

// Runs f on `inputs` (CPU leaves) and on GPU copies, backpropagates the same random weights through both, and
// compares the output (tolerance fwd) and each grad (tolerance bwd). Also checks that the GPU results live on
// the GPU, so a silent fall-back to the host would fail.
inline void check_twins(const std::string& what, const std::function<Tensor(const std::vector<Tensor>&)>& f,
                        const std::vector<Tensor>& inputs, Tol fwd, Tol bwd) {
  CAPTURE(what);
  std::vector<Tensor> gpu;
  for (const Tensor& x : inputs) gpu.push_back(gpu_leaf(x));
  for (Tensor x : inputs) x.zero_grad();  // a copy is the same handle
  Tensor y_cpu = f(inputs), y_gpu = f(gpu);
  REQUIRE(y_gpu.is_cuda());
  check_close(y_gpu, y_cpu, fwd.rtol, fwd.atol, what + " forward");
  bool any_grad = false;
  for (const Tensor& x : inputs) any_grad = any_grad || x.requires_grad();
  if (!any_grad || !y_cpu.requires_grad()) return;
  Generator gen(777);
  Tensor w = Tensor::randn(y_cpu.shape(), gen);
  y_cpu.backward(w);
  y_gpu.backward(w.to(Device::cuda()));
  for (size_t k = 0; k < inputs.size(); ++k) {
    if (!inputs[k].requires_grad()) continue;
    CAPTURE(k);
    REQUIRE(inputs[k].grad().defined());
    REQUIRE(gpu[k].grad().defined());
    CHECK(gpu[k].grad().is_cuda());
    check_close(gpu[k].grad(), inputs[k].grad(), bwd.rtol, bwd.atol, what + " grad of input " + std::to_string(k));
  }
}

}  // namespace msmix::testing
