// Reverse-mode autograd, define-by-run. An op that sees an input requiring grad records one Node on its
// output: the inputs, and a backward function from the output's grad to each input's grad. backward()
// walks the graph in reverse topological order without recursion, accumulates into every tensor's grad,
// and frees each node (and what it saved) as soon as it has run.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "engine/tensor.h"

namespace msmix {

using Grads = std::vector<Tensor>;  // one per input; undefined where the input needs no grad
// needs[i]: whether input i wants a grad, so backward can skip work (e.g. a GEMM for a frozen input).
using BackwardFn = std::function<Grads(const Tensor& grad_output, const std::vector<bool>& needs)>;

struct Node {
  const char* op = "";
  std::vector<std::shared_ptr<TensorImpl>> inputs;
  std::vector<bool> needs;
  BackwardFn backward;
  ~Node();  // iterative release of long chains (an unrolled LSTM must not overflow the stack)
};

// Is grad recording on (no NoGradGuard alive on this thread)?
bool grad_mode_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// True when grad mode is on and some input requires grad: the op should call record().
bool any_requires_grad(std::initializer_list<const Tensor*> inputs);
bool any_requires_grad(const std::vector<Tensor>& inputs);
// Attach a Node to `output`. Capture saved tensors in `fn` by value after .detach(), never `output`
// itself (that would be a reference cycle).
void record(Tensor& output, const char* op, const std::vector<Tensor>& inputs, BackwardFn fn);

// Runs backward from `root` with the given output grad (same shape as root).
void run_backward(const Tensor& root, const Tensor& grad_output);

}  // namespace msmix
